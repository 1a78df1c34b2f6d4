#!/usr/bin/env bash
# demo.sh - the demo of the README's set-up: people in each department, then about
# COUNT customers with their activities, deals, orders, tickets, feedback and tasks.
#
# usage: tools/demo.sh DATA_DIR [COUNT]      (default 200; the server must be running)
#
# The users (tools/demo_data.py's USERS: sales staff lina and zhaolei, sales manager
# wangfang, support staff chenjie, support manager liuyang, marketing staff sunli and
# marketing manager zhoumin) are made through the running server as the data dir's
# admin, each with an enrollment file DATA_DIR/demo/users/NAME.enroll (0600). Customers
# and deals are owned by the sales users (a third of the customers by nobody: the pool),
# tickets assigned to support, tasks to anyone - so that ownership, departments and
# masking can be tried at once:  crm enroll DATA_DIR/demo/users/lina.enroll --profile lina
# Uses CRM_BIN (default ./build) and CRM_SERVER (default: the admin enrollment's endpoint).
set -euo pipefail
DATA=${1:?usage: tools/demo.sh DATA_DIR [COUNT]}
COUNT=${2:-200}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${CRM_BIN:-$HERE/../build}
crm() { "$BIN/crm" --config "$DATA/admin.enroll" "$@"; }

python3 "$HERE/demo_data.py" "$DATA/demo" "$COUNT"
mkdir -p "$DATA/demo/users"
chmod 700 "$DATA/demo/users"
while IFS=, read -r name dept role full; do
    [ "$name" = name ] && continue
    if [ -e "$DATA/demo/users/$name.enroll" ]; then
        echo "demo: user $name exists ($DATA/demo/users/$name.enroll)"
        continue
    fi
    "$BIN/crm-admin" user add "$name" --dept "$dept" --role "$role" --data "$DATA" \
        --out "$DATA/demo/users/$name.enroll" >/dev/null
    echo "demo: user $name ($full), $dept $role: $DATA/demo/users/$name.enroll"
done <"$DATA/demo/users.csv"

crm import "$DATA/demo/customers.csv"
crm import --kind activity "$DATA/demo/activities.csv"
crm import --kind deal "$DATA/demo/deals.csv"
crm import --kind order "$DATA/demo/orders.csv"
crm import --kind ticket "$DATA/demo/tickets.csv"
crm import --kind feedback "$DATA/demo/feedback.csv"
crm import --kind task "$DATA/demo/tasks.csv"
