#!/usr/bin/env python3
"""Write demo customers, activities, deals and orders as CSV for `crm import`
(deterministic). Customers carry no tier and no active/at-risk/churned stage:
those are derived by the server from the orders imported after them.

usage: demo_data.py OUTDIR [COUNT]
Writes OUTDIR/users.csv (the demo's people: name, department, role, full
name), then customers.csv, activities.csv, deals.csv, orders.csv,
tickets.csv, feedback.csv and tasks.csv. Records refer to customers
c1..cCOUNT and to the users by name (customer and deal owners are the sales
users, ticket assignees support staff, task assignees anyone), so make the
users first, then import into a fresh data dir, customers first
(tools/demo.sh does all of it).
"""
import csv
import datetime
import os
import random
import sys

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
         "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "建华", "志强", "晓东", "海燕", "雪梅"]
EN_FIRST = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Ivy", "Jack",
            "Karen", "Leo", "Mia", "Noah", "Olivia", "Peter", "Quinn", "Rachel", "Sam", "Tina"]
EN_LAST = ["Smith", "Johnson", "Brown", "Taylor", "Miller", "Wilson", "Moore", "Clark", "Lewis",
           "Walker", "Young", "King", "Wright", "Green", "Baker", "Adams"]
REGIONS = [("北京", "北京"), ("上海", "上海"), ("广东", "广州"), ("广东", "深圳"), ("浙江", "杭州"),
           ("江苏", "南京"), ("江苏", "苏州"), ("四川", "成都"), ("湖北", "武汉"), ("山东", "青岛"),
           ("福建", "厦门"), ("陕西", "西安"), ("天津", "天津"), ("重庆", "重庆")]
INDUSTRIES = ["制造", "零售", "教育", "医疗", "金融", "物流", "餐饮", "软件", "房地产", "能源"]
CO_WORDS = ["华", "鑫", "泰", "盛", "达", "通", "恒", "信", "宏", "安", "诚", "远", "博", "创"]
CO_KINDS = ["科技有限公司", "贸易有限公司", "实业有限公司", "信息技术有限公司", "电子有限公司"]
EN_CO = ["Acme Ltd", "Globex Corp", "Initech", "Umbrella Trading", "Stark Supplies",
         "Wayne Logistics", "Hooli Asia", "Vandelay Imports"]
SOURCES = ["ad", "event", "referral", "website", "social", "walk-in"]
TAGS = ["vip", "wholesale", "retail", "newsletter", "trade-show", "key-account", "price-sensitive"]
TYPES = ["call", "email", "meeting", "visit", "wechat", "sms", "note"]
SUMMARIES = {
    "call": ["电话跟进报价", "Called about the renewal", "回访产品使用情况", "Discussed delivery dates"],
    "email": ["发送产品目录", "Sent the quote", "Follow-up on invoice"],
    "meeting": ["季度业务回顾", "Kick-off meeting", "需求沟通会"],
    "visit": ["上门拜访", "Site visit to the warehouse", "展会现场交流"],
    "wechat": ["微信沟通新品", "WeChat: asked for samples", "发送优惠信息"],
    "sms": ["短信提醒付款", "SMS: delivery notice"],
    "note": ["客户对价格敏感", "Prefers calls in the morning", "决策人是采购经理"],
}


# The demo's people: one of each (department, role) worth trying, sales twice
# so that "own" means something. Owners come from SALES_OWNERS; a third of the
# customers have none (the pool sales may claim from).
USERS = [("lina", "sales", "staff", "李娜"), ("zhaolei", "sales", "staff", "赵磊"),
         ("wangfang", "sales", "manager", "王芳"), ("chenjie", "support", "staff", "陈杰"),
         ("liuyang", "support", "manager", "刘洋"), ("sunli", "marketing", "staff", "孙丽"),
         ("zhoumin", "marketing", "manager", "周敏")]
SALES_OWNERS = ["lina", "lina", "zhaolei", "zhaolei", "wangfang", "", "", ""]


# Orders and contacts happened (the server refuses one dated ahead): the demo's months are
# counted back from today, so the data is as fresh on any day it is loaded.
TODAY = datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=0, second=0,
                                                             microsecond=0)


def past(month, day, hour, minute=0):
    """Month 1-11 and day 1-28 of the demo's year, as that many weeks and days before today."""
    t = TODAY - datetime.timedelta(days=(11 - month) * 28 + (28 - day) + 1, hours=-hour,
                                   minutes=-minute)
    return t.strftime("%Y-%m-%dT%H:%M:00Z")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rnd = random.Random(20261123)
    own = random.Random(20261130)  # owners and assignees: the rest of the data stays as it was
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "users.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "department", "role", "full_name"])
        w.writerows(USERS)
    owners = []
    with open(os.path.join(out, "customers.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "kind", "company", "phones", "emails", "province", "city",
                    "industry", "source", "stage", "tier", "tags", "birthday", "consent",
                    "consent_at", "consent_channel", "custom", "owner"])
        seen = set()
        for i in range(count):
            chinese = rnd.random() < 0.7
            if chinese:
                name = rnd.choice(SURNAMES) + rnd.choice(GIVEN)
                company = rnd.choice(REGIONS)[1] + "".join(rnd.sample(CO_WORDS, 2)) + rnd.choice(CO_KINDS)
                email = "c%d@%s.cn" % (i + 1, rnd.choice(["qq", "163", "sina", "corp"]))
            else:
                first, last = rnd.choice(EN_FIRST), rnd.choice(EN_LAST)
                name = "%s %s" % (first, last)
                company = rnd.choice(EN_CO)
                email = "%s.%s%d@example.com" % (first.lower(), last.lower(), i + 1)
            # the same name at the same company is a likely duplicate: the server refuses it
            while (name.replace(" ", "").lower(), company.replace(" ", "").lower()) in seen:
                company = rnd.choice(EN_CO) if not chinese else company + "分公司"
            seen.add((name.replace(" ", "").lower(), company.replace(" ", "").lower()))
            kind = "company" if rnd.random() < 0.2 else "person"
            province, city = rnd.choice(REGIONS)
            phone = "1%d%d %04d %04d" % (rnd.choice([3, 5, 8]), rnd.randint(0, 9),
                                          rnd.randint(0, 9999), rnd.randint(0, 9999))
            consent = rnd.random() < 0.6
            owner = own.choice(SALES_OWNERS)
            owners.append(owner)
            w.writerow([
                name, kind, company, phone, email, province, city, rnd.choice(INDUSTRIES),
                rnd.choice(SOURCES), rnd.choice(["lead", "prospect"]), "",
                ";".join(rnd.sample(TAGS, rnd.randint(0, 2))),
                "%d-%02d-%02d" % (rnd.randint(1960, 2000), rnd.randint(1, 12), rnd.randint(1, 28))
                if rnd.random() < 0.5 else "",
                "yes" if consent else "no",
                "2026-%02d-%02d" % (rnd.randint(1, 10), rnd.randint(1, 28)) if consent else "",
                rnd.choice(["wechat", "web form", "event", "phone"]) if consent else "",
                "erp_code=ERP%05d" % (i + 1) if rnd.random() < 0.3 else "",
                owner,
            ])
    with open(os.path.join(out, "activities.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "type", "direction", "summary", "occurred_at"])
        for _ in range(count * 3 // 2):
            t = rnd.choice(TYPES)
            w.writerow(["c%d" % rnd.randint(1, count), t,
                        "" if t == "note" else rnd.choice(["inbound", "outbound"]),
                        rnd.choice(SUMMARIES[t]),
                        past(rnd.randint(1, 11), rnd.randint(1, 28), rnd.randint(8, 18),
                             rnd.randint(0, 59))])

    with open(os.path.join(out, "deals.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "title", "amount", "stage", "lost_reason", "expected_close",
                    "owner"])
        for i in range(count // 2):
            stage = rnd.choice(["qualify", "proposal", "negotiation", "won", "lost"])
            cust = rnd.randint(1, count)
            w.writerow(["c%d" % cust, rnd.choice(DEAL_TITLES),
                        "%d.00" % (rnd.randint(5, 500) * 1000), stage,
                        rnd.choice(["预算不足", "chose a competitor", "项目延期"]) if stage == "lost" else "",
                        "2026-%02d-%02d" % (rnd.randint(11, 12), rnd.randint(1, 28)),
                        owners[cust - 1] or own.choice(["lina", "zhaolei"])])
    order_customers = []
    with open(os.path.join(out, "orders.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "lines", "ordered_at"])
        for _ in range(count):
            lines = []
            for _ in range(rnd.randint(1, 3)):
                sku, item, price = rnd.choice(PRODUCTS)
                lines.append("sku=%s,name=%s,quantity=%d,unit_price=%s" % (sku, item, rnd.randint(1, 5), price))
            order_customers.append("c%d" % rnd.randint(1, count // 2))
            w.writerow([order_customers[-1], ";".join(lines),
                        past(rnd.randint(1, 11), rnd.randint(1, 28), rnd.randint(9, 17))])

    with open(os.path.join(out, "tickets.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "kind", "subject", "body", "priority", "order_id", "assignee"])
        for _ in range(count // 4):
            kind, subject = rnd.choice(TICKETS)
            order = rnd.randrange(len(order_customers))
            w.writerow([order_customers[order], kind, subject, "", rnd.choice(PRIORITIES),
                        "o%d" % (order + 1) if kind in ("return", "exchange", "repair") else "",
                        own.choice(["chenjie", "chenjie", "liuyang", ""])])
    with open(os.path.join(out, "feedback.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "channel", "score_kind", "score", "comment"])
        for _ in range(count // 2):
            nps = rnd.random() < 0.4
            w.writerow([rnd.choice(order_customers), rnd.choice(["wechat", "phone", "survey"]),
                        "nps" if nps else "csat",
                        rnd.choice([10, 9, 9, 8, 7, 6, 3]) if nps else rnd.choice([5, 5, 4, 4, 3, 2]),
                        rnd.choice(["", "安装很快", "客服态度好", "delivery was late"])])
    with open(os.path.join(out, "tasks.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "title", "due", "assignee"])
        for i in range(count // 10):
            w.writerow(["c%d" % rnd.randint(1, count), rnd.choice(["回访", "Send the quote", "确认发货"]),
                        "2026-%02d-%02dT09:00:00Z" % (rnd.randint(11, 12), rnd.randint(1, 28)),
                        own.choice([u[0] for u in USERS])])


TICKETS = [("repair", "屏幕不亮"), ("return", "尺寸不合适要退货"), ("question", "发票怎么开"),
           ("complaint", "送货太慢"), ("exchange", "换成黑色"), ("question", "How do I reset it?")]
PRIORITIES = ["low", "normal", "normal", "high", "urgent"]
DEAL_TITLES = ["年度采购", "设备升级", "Annual renewal", "试点项目", "Expansion order", "维保合同"]
PRODUCTS = [("HW-100", "工业传感器", "1299.00"), ("HW-200", "控制器", "4800.00"),
            ("SV-1", "安装服务", "800.00"), ("SW-9", "软件授权", "12000.00"),
            ("AC-3", "Cable kit", "59.90")]


if __name__ == "__main__":
    main()
