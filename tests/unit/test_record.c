/*  test_record - generic field handling and the entity table */
#include "test_common.h"

#include <time.h>

#include "crm_entity.h"
#include "crm_proto.h"
#include "crm_record.h"
#include "entities.pb-c.h"

static const crm_entity_t *
s_customer(void)
{
    const crm_entity_t *e = crm_entity_by_name("customer");
    assert_non_null(e);
    return e;
}

static void
test_entity_table_is_consistent(void **state)
{
    (void)state;
    static const char *const common[] = {"id", "version", "created_at", "updated_at",
                                         "created_by", "updated_by"};
    for (const crm_entity_t *e = crm_entity_all(); e->name; e++) {
        assert_ptr_equal(crm_entity_by_name(e->name), e);
        assert_ptr_equal(crm_entity_by_prefix(e->prefix), e);
        for (size_t i = 0; i < 6; i++) { /* the generic path relies on these */
            const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, common[i]);
            assert_non_null(fd);
            assert_int_equal(fd->id, (unsigned)i + 1);
            assert_true(crm_entity_flags(e, common[i]) & CRM_F_SYSTEM);
        }
        for (const crm_rule_t *r = e->rules; r->field; r++)
            assert_non_null(crm_record_field(e->desc, r->field));
        for (const crm_index_t *x = e->indexes; x->field; x++) {
            assert_non_null(crm_record_field(e->desc, x->field));
            if (x->kind == CRM_IDX_PARENT)
                assert_non_null(crm_record_field(e->desc, x->sort_field));
            /* the descriptors kept for the index paths are the fields named */
            assert_ptr_equal(crm_entity_index_field(e, x), crm_record_field(e->desc, x->field));
            assert_ptr_equal(crm_entity_index_sort_field(e, x),
                             x->sort_field ? crm_record_field(e->desc, x->sort_field) : NULL);
        }
        if (e->parent)
            assert_non_null(crm_entity_by_name(e->parent));
        char cols[256];
        snprintf(cols, sizeof cols, "%s", e->columns);
        for (char *save = NULL, *c = strtok_r(cols, ",", &save); c;
             c = strtok_r(NULL, ",", &save))
            assert_non_null(crm_record_field(e->desc, c));
    }
    assert_null(crm_entity_by_name("nope"));
}

/* Rules looked up by field number agree with the lookup by name, for every field
   of every kind; a descriptor or row from elsewhere is looked up by name. */
static void
test_entity_rule_by_number(void **state)
{
    (void)state;
    const crm_entity_t *other = crm_entity_by_name("activity");
    assert_non_null(other);
    for (const crm_entity_t *e = crm_entity_all(); e->name; e++) {
        crm_entity_t copy = *e; /* not a row of the table */
        for (unsigned i = 0; i < e->desc->n_fields; i++) {
            const ProtobufCFieldDescriptor *fd = &e->desc->fields[i];
            const crm_rule_t *r = crm_entity_rule(e, fd->name);
            assert_ptr_equal(crm_entity_rule_of(e, fd), r);
            assert_int_equal(crm_entity_flags_of(e, fd), r ? r->flags : 0);
            assert_ptr_equal(crm_entity_rule_of(&copy, fd), r);
        }
        for (unsigned i = 0; i < other->desc->n_fields; i++) {
            const ProtobufCFieldDescriptor *fd = &other->desc->fields[i];
            assert_ptr_equal(crm_entity_rule_of(e, fd), crm_entity_rule(e, fd->name));
        }
    }
    /* a rule that differs between two kinds for the same field name */
    const crm_entity_t *c = s_customer();
    const ProtobufCFieldDescriptor *cname = crm_record_field(c->desc, "name");
    assert_true(crm_entity_flags_of(c, cname) & CRM_F_REQUIRED);
}

/* Which int64 fields are times: an entity's by its CRM_F_TIME rule, a refund's,
   an audit entry's or an event's by the other table - --json prints each as
   RFC 3339 and imports read it back */
static void
test_entity_times(void **state)
{
    (void)state;
    for (const crm_entity_t *e = crm_entity_all(); e->name; e++) {
        /* every kind's common times are times, its id and version are not */
        assert_true(crm_entity_is_time(e->desc, crm_record_field(e->desc, "created_at")));
        assert_true(crm_entity_is_time(e->desc, crm_record_field(e->desc, "updated_at")));
        assert_false(crm_entity_is_time(e->desc, crm_record_field(e->desc, "version")));
        /* a time flag on a field that is no int64 would print garbage */
        for (unsigned i = 0; i < e->desc->n_fields; i++) {
            const ProtobufCFieldDescriptor *fd = &e->desc->fields[i];
            if (crm_entity_flags_of(e, fd) & CRM_F_TIME)
                assert_int_equal(fd->type, PROTOBUF_C_TYPE_INT64);
        }
    }
    /* the customer's own times, by its rules */
    assert_true(crm_entity_is_time(&crm__customer__descriptor,
                                   crm_record_field(&crm__customer__descriptor, "last_order_at")));
    assert_false(crm_entity_is_time(&crm__customer__descriptor,
                                    crm_record_field(&crm__customer__descriptor, "order_count")));
    assert_true(crm_entity_is_time(&crm__refund__descriptor,
                                   crm_record_field(&crm__refund__descriptor, "at")));
    assert_false(crm_entity_is_time(&crm__refund__descriptor,
                                    crm_record_field(&crm__refund__descriptor, "by")));
    assert_true(crm_entity_is_time(&crm__audit_entry__descriptor,
                                   crm_record_field(&crm__audit_entry__descriptor, "time")));
    /* a money amount's minor units are an int64 and no time */
    assert_false(crm_entity_is_time(&crm__money__descriptor,
                                    crm_record_field(&crm__money__descriptor, "minor")));
    /* every link names a kind of the table through a string field with an exact index */
    for (const crm_link_t *l = crm_entity_links(); l->kind; l++) {
        const crm_entity_t *k = crm_entity_by_name(l->kind);
        assert_non_null(k);
        assert_non_null(crm_entity_by_name(l->target));
        const ProtobufCFieldDescriptor *fd = crm_record_field(k->desc, l->field);
        assert_non_null(fd);
        assert_int_equal(fd->type, PROTOBUF_C_TYPE_STRING);
        const crm_index_t *ix = crm_entity_index(k, l->field);
        assert_non_null(ix);
        assert_int_equal(ix->kind, CRM_IDX_EXACT);
    }
}

static void
test_entity_ids(void **state)
{
    (void)state;
    const crm_entity_t *e = s_customer();
    char id[24];
    crm_entity_format_id(e, 42, id);
    assert_string_equal(id, "c42");
    assert_int_equal(crm_entity_parse_id(e, "c42"), 42);
    assert_int_equal(crm_entity_parse_id(e, "c0"), 0);
    assert_int_equal(crm_entity_parse_id(e, "c042"), 0);
    assert_int_equal(crm_entity_parse_id(e, "a42"), 0);
    assert_int_equal(crm_entity_parse_id(e, "c4x"), 0);
    assert_int_equal(crm_entity_parse_id(e, ""), 0);
    assert_int_equal(crm_entity_parse_id(e, "c123456789012345678901"), 0);
}

static void
test_record_set_and_format(void **state)
{
    (void)state;
    const crm_entity_t *e = s_customer();
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *m = crm_proto_new(e->desc);
    const ProtobufCFieldDescriptor *stage = crm_record_field(e->desc, "stage");
    const ProtobufCFieldDescriptor *tags = crm_record_field(e->desc, "tags");
    const ProtobufCFieldDescriptor *custom = crm_record_field(e->desc, "custom");
    const ProtobufCFieldDescriptor *consent = crm_record_field(e->desc, "consent");
    const ProtobufCFieldDescriptor *at = crm_record_field(e->desc, "consent-at");
    assert_non_null(at); /* '-' stands for '_' */
    assert_int_equal(crm_record_set_text(m, stage, "At-Risk", false, errbuf), CRM_OK);
    assert_int_equal(crm_record_get_enum(m, "stage"), CRM__STAGE__AT_RISK);
    assert_int_equal(crm_record_set_text(m, stage, "nonsense", false, errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(errbuf, "lead, prospect, active, at-risk, churned"));
    assert_int_equal(crm_record_get_enum(m, "stage"), CRM__STAGE__AT_RISK); /* untouched */
    assert_int_equal(crm_record_set_text(m, tags, "a", false, errbuf), CRM_OK);
    assert_int_equal(crm_record_set_text(m, tags, "b", false, errbuf), CRM_OK);
    assert_int_equal(crm_record_set_text(m, custom, "k=v", false, errbuf), CRM_OK);
    assert_int_equal(crm_record_set_text(m, custom, "k=w", false, errbuf), CRM_OK);
    assert_int_equal(crm_record_set_text(m, custom, "z=1", false, errbuf), CRM_OK);
    assert_int_equal(crm_record_set_text(m, custom, "z=", false, errbuf), CRM_OK); /* removes */
    assert_int_equal(crm_record_set_text(m, custom, "novalue", false, errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    assert_int_equal(crm_record_set_text(m, consent, "yes", false, errbuf), CRM_OK);
    assert_int_equal(crm_record_set_text(m, consent, "maybe", false, errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    assert_int_equal(crm_record_set_text(m, at, "2026-01-02T03:04:05Z", true, errbuf), CRM_OK);
    assert_int_equal(crm_record_get_i64(m, "consent_at"), 1767323045000LL);
    assert_int_equal(crm_record_set_text(m, at, "2026-13-01", true, errbuf),
                     CRM_ERR_INVALID_ARGUMENT);

    char *s;
    assert_string_equal(s = crm_record_format(m, stage, false, false), "at-risk");
    free(s);
    assert_string_equal(s = crm_record_format(m, tags, false, false), "a;b");
    free(s);
    assert_string_equal(s = crm_record_format(m, custom, false, false), "k=w");
    free(s);
    assert_string_equal(s = crm_record_format(m, at, true, false), "2026-01-02T03:04:05Z");
    free(s);
    assert_string_equal(s = crm_record_format(m, consent, false, true), "yes");
    free(s);

    /* a built message packs, unpacks to the same, and frees cleanly */
    size_t len;
    uint8_t *buf = crm_proto_pack(m, &len);
    ProtobufCMessage *back = NULL;
    assert_int_equal(crm_proto_unpack(e->desc, buf, len, &back, errbuf), CRM_OK);
    assert_string_equal(s = crm_record_format(back, tags, false, false), "a;b");
    free(s);
    free(buf);
    crm_record_clear(back, tags);
    assert_false(crm_record_is_set(back, tags));
    crm_record_swap(m, back, tags); /* m: none, back: a;b */
    assert_int_equal(crm_record_count(m, tags), 0);
    assert_string_equal(crm_record_str_at(back, tags, 1), "b");
    crm_proto_free(&back);
    crm_proto_free(&m);
}

static void
test_record_phone(void **state)
{
    (void)state;
    char out[24];
    assert_true(crm_record_phone("138 0013 8000", out));
    assert_string_equal(out, "13800138000");
    assert_true(crm_record_phone("+86 138-0013-8000", out));
    assert_string_equal(out, "13800138000");
    assert_true(crm_record_phone("0086 13800138000", out));
    assert_string_equal(out, "13800138000");
    assert_true(crm_record_phone("+1 (415) 555-0101", out));
    assert_string_equal(out, "+14155550101");
    assert_true(crm_record_phone("010-6552 1234", out));
    assert_string_equal(out, "01065521234");
    assert_false(crm_record_phone("12ab", out));
    assert_false(crm_record_phone("1234", out));               /* too short */
    assert_false(crm_record_phone("1234567890123456", out));   /* too long */
    assert_false(crm_record_phone("++8613800138000", out));
}

static void
test_record_normalize(void **state)
{
    (void)state;
    const crm_entity_t *e = s_customer();
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *m = crm_proto_new(e->desc);
    const ProtobufCFieldDescriptor *phones = crm_record_field(e->desc, "phones");
    const ProtobufCFieldDescriptor *emails = crm_record_field(e->desc, "emails");
    const ProtobufCFieldDescriptor *tags = crm_record_field(e->desc, "tags");
    assert_int_equal(crm_record_normalize(e, m, errbuf), CRM_ERR_INVALID_ARGUMENT);
    assert_string_equal(errbuf, "field 'name' is required");
    crm_record_set_str(m, "name", "  张伟  ");
    crm_record_set_text(m, phones, "138 0013 8000", false, errbuf);
    crm_record_set_text(m, phones, "+8613800138000", false, errbuf); /* the same number */
    crm_record_set_text(m, emails, " Zhang@Example.COM ", false, errbuf);
    crm_record_set_text(m, tags, "VIP", false, errbuf);
    crm_record_set_text(m, tags, "", false, errbuf);
    assert_int_equal(crm_record_normalize(e, m, errbuf), CRM_OK);
    assert_string_equal(crm_record_get_str(m, "name"), "张伟");
    assert_int_equal(crm_record_count(m, phones), 1);
    assert_string_equal(crm_record_str_at(m, phones, 0), "13800138000");
    assert_string_equal(crm_record_str_at(m, emails, 0), "zhang@example.com");
    assert_int_equal(crm_record_count(m, tags), 1);
    assert_string_equal(crm_record_str_at(m, tags, 0), "vip");

    static const struct {
        const char *field, *value, *want;
    } bad[] = {
        {"emails", "no-at-sign", "not an e-mail"},
        {"emails", "a@b", "not an e-mail"},
        {"birthday", "1990-02-30", "not a date"},
        {"birthday", "2024/01/01", "not a date"},
        {"tags", "a;b", "may not contain"},
        {"phones", "call me", "not a phone number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ProtobufCMessage *b = crm_proto_new(e->desc);
        crm_record_set_str(b, "name", "x");
        assert_int_equal(crm_record_set_text(b, crm_record_field(e->desc, bad[i].field),
                                             bad[i].value, false, errbuf),
                         CRM_OK);
        assert_int_equal(crm_record_normalize(e, b, errbuf), CRM_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(errbuf, bad[i].want));
        assert_non_null(strstr(errbuf, bad[i].field));
        crm_proto_free(&b);
    }
    crm_record_set_str(m, "name", "x");
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    crm_record_set_str(m, "name", longname);
    assert_int_equal(crm_record_normalize(e, m, errbuf), CRM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(errbuf, "too long"));
    crm_proto_free(&m);
}

static void
test_money_parse_and_format(void **state)
{
    (void)state;
    int64_t minor;
    char code[4], out[64];
    static const struct {
        const char *in;
        int64_t minor;
        const char *code;
    } ok[] = {
        {"1234.50", 123450, "CNY"},   {"1,234.5", 123450, "CNY"}, {"¥1,234.50", 123450, "CNY"},
        {"1234.50 CNY", 123450, "CNY"}, {"USD 12", 1200, "USD"},  {"$0.99", 99, "USD"},
        {"99 JPY", 99, "JPY"},          {"€3", 300, "EUR"},       {"0", 0, "CNY"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_true(crm_money_parse(ok[i].in, &minor, code));
        assert_int_equal(minor, ok[i].minor);
        assert_string_equal(code, ok[i].code);
    }
    static const char *const bad[] = {"", "abc", "1.234", "1.5 JPY", "12 XYZ", "-5", "1..2",
                                      "1 2", "99999999999999999999", "12 CNYX"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(crm_money_parse(bad[i], &minor, code));
    crm_money_format(123450, "CNY", true, out, sizeof out);
    assert_string_equal(out, "¥1,234.50");
    crm_money_format(123450, "CNY", false, out, sizeof out);
    assert_string_equal(out, "1234.50 CNY");
    crm_money_format(5, "USD", true, out, sizeof out);
    assert_string_equal(out, "$0.05");
    crm_money_format(1234567, "JPY", true, out, sizeof out);
    assert_string_equal(out, "JP¥1,234,567");
    crm_money_format(-100, "EUR", true, out, sizeof out);
    assert_string_equal(out, "-€1.00");
    /* what is printed for machines parses back to the same amount */
    for (int64_t v = 0; v < 200000; v += 997) {
        crm_money_format(v, "CNY", false, out, sizeof out);
        assert_true(crm_money_parse(out, &minor, code));
        assert_int_equal(minor, v);
    }
}

static void
test_record_lines_and_diff(void **state)
{
    (void)state;
    const crm_entity_t *e = crm_entity_by_name("order");
    char errbuf[CRM_ERRBUF];
    const ProtobufCFieldDescriptor *lines = crm_record_field(e->desc, "lines");
    ProtobufCMessage *a = crm_proto_new(e->desc), *b = crm_proto_new(e->desc);
    /* a comma inside a value does not split it: only ",name=" with a known part does */
    assert_int_equal(crm_record_set_text(a, lines, "sku=A1,name=Widget, large,quantity=2,"
                                                   "unit_price=¥1,200.50", false, errbuf),
                     CRM_OK);
    Crm__Order *o = (Crm__Order *)a;
    assert_int_equal(o->n_lines, 1);
    assert_string_equal(o->lines[0]->name, "Widget, large");
    assert_int_equal(o->lines[0]->quantity, 2);
    assert_int_equal(o->lines[0]->unit_price->minor, 120050);
    assert_int_equal(crm_record_set_text(a, lines, "sku=B,colour=red", false, errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(errbuf, "unknown part 'colour'"));
    assert_int_equal(o->n_lines, 1); /* a refused line leaves the record as it was */
    assert_int_equal(crm_record_set_text(a, lines, "sku=B,quantity=x", false, errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    char *text = crm_record_format(a, lines, false, false);
    assert_string_equal(text, "sku=A1,name=Widget, large,quantity=2,unit_price=1200.50 CNY");
    /* the formatted line parses back to an equal line */
    assert_int_equal(crm_record_set_text(b, lines, text, false, errbuf), CRM_OK);
    char *diff[8];
    crm_record_set_str(b, "customer_id", "");
    assert_int_equal(crm_record_diff(e, a, b, diff, 8), 0);
    ((Crm__Order *)b)->lines[0]->quantity = 3; /* a quantity inside a line is a change */
    assert_int_equal(crm_record_diff(e, a, b, diff, 8), 1);
    assert_string_equal(diff[0], "lines");
    free(text);
    /* normalize: lines are bounded and their money checked */
    assert_int_equal(crm_record_normalize(e, a, errbuf), CRM_ERR_INVALID_ARGUMENT); /* no customer */
    crm_record_set_str(a, "customer_id", "c1");
    assert_int_equal(crm_record_normalize(e, a, errbuf), CRM_OK);
    assert_int_equal(crm_record_set_text(a, lines, "sku=C,quantity=1,unit_price=1 XXX", false,
                                         errbuf),
                     CRM_ERR_INVALID_ARGUMENT);
    crm_proto_free(&a);
    crm_proto_free(&b);
}

/* crm_record_diff compares values, not their text: a time moved within one second, a list
   whose items join to the same text and a derived count are changes; equal records are not */
static void
test_record_diff_by_value(void **state)
{
    (void)state;
    const crm_entity_t *e = crm_entity_by_name("customer");
    ProtobufCMessage *a = crm_proto_new(e->desc), *b = crm_proto_new(e->desc);
    char errbuf[CRM_ERRBUF], *diff[8];
    crm_record_set_str(a, "name", "Li Na");
    crm_record_set_str(b, "name", "Li Na");
    const ProtobufCFieldDescriptor *tags = crm_record_field(e->desc, "tags");
    assert_int_equal(crm_record_set_text(a, tags, "vip", false, errbuf), CRM_OK);
    assert_int_equal(crm_record_set_text(b, tags, "vip", false, errbuf), CRM_OK);
    assert_int_equal(crm_record_diff(e, a, b, diff, 8), 0);
    Crm__Customer *ca = (Crm__Customer *)a, *cb = (Crm__Customer *)b;
    ca->last_contact_at = 1764590400000; /* 2025-12-01T12:00:00.000Z */
    cb->last_contact_at = 1764590400500; /* half a second later: the same text */
    assert_int_equal(crm_record_diff(e, a, b, diff, 8), 1);
    assert_string_equal(diff[0], "last_contact_at");
    cb->last_contact_at = ca->last_contact_at;
    /* ["a;b"] and ["a", "b"] format alike (items joined by ';') */
    crm_record_clear(a, tags);
    crm_record_clear(b, tags);
    assert_int_equal(crm_record_set_text(a, tags, "a;b", false, errbuf), CRM_OK); /* appends */
    assert_int_equal(crm_record_set_text(b, tags, "a", false, errbuf), CRM_OK);
    assert_int_equal(crm_record_set_text(b, tags, "b", false, errbuf), CRM_OK);
    char *ta = crm_record_format(a, tags, false, false), *tb = crm_record_format(b, tags, false, false);
    assert_string_equal(ta, tb);
    free(ta);
    free(tb);
    assert_int_equal(crm_record_diff(e, a, b, diff, 8), 1);
    assert_string_equal(diff[0], "tags");
    /* an unset string and an empty one are the same; system fields are not compared */
    crm_record_clear(b, tags);
    assert_int_equal(crm_record_set_text(b, tags, "a;b", false, errbuf), CRM_OK);
    crm_record_set_str(a, "industry", "");
    cb->version = 9;
    assert_int_equal(crm_record_diff(e, a, b, diff, 8), 0);
    crm_proto_free(&a);
    crm_proto_free(&b);
}

static void
test_record_ranges(void **state)
{
    (void)state;
    const crm_entity_t *e = crm_entity_by_name("deal");
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *d = crm_proto_new(e->desc);
    crm_record_set_str(d, "customer_id", "c1");
    crm_record_set_str(d, "title", "t");
    assert_int_equal(crm_record_set_text(d, crm_record_field(e->desc, "amount"),
                                         "2000000000000", false, errbuf),
                     CRM_OK);
    assert_int_equal(crm_record_normalize(e, d, errbuf), CRM_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(errbuf, "between 0 and"));
    assert_int_equal(crm_record_set_text(d, crm_record_field(e->desc, "amount"), "20000", false,
                                         errbuf),
                     CRM_OK);
    assert_int_equal(crm_record_normalize(e, d, errbuf), CRM_OK);
    crm_proto_free(&d);
}

/* Text that cannot lie: single-line fields hold no control character (newline
   and tab included), multi-line ones only newline and tab; a required field
   of invisible characters is empty. */
static void
test_record_text_rules(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF];
    static const struct {
        const char *kind, *field, *value, *want;
    } bad[] = {
        {"customer", "name", "Zhang\nstage  won", "may not hold U+000A"},
        {"customer", "company", "a\tb", "may not hold U+0009"},
        {"customer", "city", "x\xc2\x9b" "2J", "may not hold U+009B"},
        {"customer", "name", "\xe2\x80\x8b\xe2\x80\x8b", "is required"}, /* invisible: removed */
        {"customer", "name", "\xe3\x85\xa4", "is required"}, /* a Hangul filler: removed */
        {"customer", "name", "\xe2\xa0\x80", "no visible character"}, /* a blank braille cell */
        {"activity", "summary", "x\ny", "one line"},
        {"activity", "body", "x\ry", "may not hold U+000D"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const crm_entity_t *e = crm_entity_by_name(bad[i].kind);
        ProtobufCMessage *b = crm_proto_new(e->desc);
        if (!strcmp(bad[i].kind, "customer"))
            crm_record_set_str(b, "name", "x");
        else {
            crm_record_set_str(b, "customer_id", "c1");
            crm_record_set_str(b, "summary", "call");
        }
        crm_record_set_str(b, bad[i].field, bad[i].value);
        assert_int_equal(crm_record_normalize(e, b, errbuf), CRM_ERR_INVALID_ARGUMENT);
        if (!strstr(errbuf, bad[i].want))
            fail_msg("%s: '%s' not in '%s'", bad[i].field, bad[i].want, errbuf);
        crm_proto_free(&b);
    }
    const crm_entity_t *act = crm_entity_by_name("activity");
    ProtobufCMessage *a = crm_proto_new(act->desc);
    crm_record_set_str(a, "customer_id", "c1");
    crm_record_set_str(a, "summary", "call");
    crm_record_set_str(a, "body", "first line\n\tsecond line");
    assert_int_equal(crm_record_normalize(act, a, errbuf), CRM_OK);
    crm_proto_free(&a);
}

/* A map far over its size limit is refused by its count, before the pairwise
   duplicate check: 20000 keys are refused in well under 50 ms (checked
   pairwise first, they took about a second). */
static void
test_record_map_count_first(void **state)
{
    (void)state;
    const crm_entity_t *e = s_customer();
    const ProtobufCFieldDescriptor *custom = crm_record_field(e->desc, "custom");
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *m = crm_proto_new(e->desc);
    crm_record_set_str(m, "name", "x");
    /* built directly: crm_record_set_text checks each new key against the others */
    enum { N = 20000 };
    const ProtobufCMessageDescriptor *sub = custom->descriptor;
    ProtobufCMessage **entries = crm_proto_alloc(N * sizeof *entries);
    for (int i = 0; i < N; i++) {
        char k[32];
        snprintf(k, sizeof k, "key%d", i);
        entries[i] = crm_proto_new(sub);
        *(char **)((char *)entries[i] + sub->fields[0].offset) = crm_proto_strdup(k);
        *(char **)((char *)entries[i] + sub->fields[1].offset) = crm_proto_strdup("v");
    }
    *(ProtobufCMessage ***)((char *)m + custom->offset) = entries;
    *(size_t *)((char *)m + custom->quantifier_offset) = N;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(crm_record_normalize(e, m, errbuf), CRM_ERR_INVALID_ARGUMENT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_non_null(strstr(errbuf, "at most 100"));
    if (ms >= 50)
        fail_msg("normalizing a 20000-key map took %.1f ms", ms);
    crm_proto_free(&m);
}

/* The spreadsheet labels (issue 12): every label names a real field, every
   value label a value the field takes, no key means two fields, and headers
   as people type them find their field. */
static void
test_entity_labels(void **state)
{
    (void)state;
    char errbuf[CRM_ERRBUF], key[256], other[256];
    for (const crm_entity_t *e = crm_entity_all(); e->name; e++) {
        for (const crm_label_t *l = e->labels; l && l->field; l++) {
            const ProtobufCFieldDescriptor *fd = crm_record_field(e->desc, l->field);
            assert_non_null(fd);
            for (const char *p = l->labels; *p;) {
                size_t len = strcspn(p, "|");
                char one[128];
                snprintf(one, sizeof one, "%.*s", (int)len, p);
                if (!l->value) {
                    /* the label finds its own field, never another's */
                    const char *f = crm_entity_field_by_label(e, one);
                    if (!f || strcmp(f, l->field))
                        fail_msg("%s: label '%s' finds '%s', not '%s'", e->name, one,
                                 f ? f : "(none)", l->field);
                } else {
                    const char *v = crm_entity_value_by_label(e, l->field, one);
                    assert_non_null(v);
                    if (strcmp(v, l->value))
                        fail_msg("%s.%s: '%s' means '%s' and '%s'", e->name, l->field, one, v,
                                 l->value);
                }
                p += len + (p[len] == '|');
            }
            if (l->value) {
                ProtobufCMessage *m = crm_proto_new(e->desc);
                assert_int_equal(crm_record_set_text(m, fd, l->value, false, errbuf), CRM_OK);
                crm_proto_free(&m);
            }
        }
        /* no field's own name is another field's label */
        for (unsigned i = 0; i < e->desc->n_fields; i++) {
            const char *f = crm_entity_field_by_label(e, e->desc->fields[i].name);
            assert_non_null(f);
            assert_string_equal(f, e->desc->fields[i].name);
        }
    }
    const crm_entity_t *c = crm_entity_by_name("customer");
    static const char *const cases[][2] = {
        {"姓名", "name"},         {"手机", "phones"},      {"电话", "phones"},
        {"邮箱", "emails"},       {"公司", "company"},     {"省份", "province"},
        {"城市", "city"},         {"行业", "industry"},    {"来源", "source"},
        {"阶段", "stage"},        {"标签", "tags"},        {"负责人", "owner"},
        {"Phone", "phones"},      {"E-Mail", "emails"},    {"e_mail", "emails"},
        {" Full Name ", "name"},  {"NAME *", "name"},      {"姓名\xe3\x80\x80", "name"},
        {"Phone Number", "phones"}, {"consent-channel", "consent_channel"},
        {"Consent_Channel", "consent_channel"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *f = crm_entity_field_by_label(c, cases[i][0]);
        if (!f || strcmp(f, cases[i][1]))
            fail_msg("'%s' finds '%s', not '%s'", cases[i][0], f ? f : "(none)", cases[i][1]);
    }
    assert_null(crm_entity_field_by_label(c, "备注"));
    assert_null(crm_entity_field_by_label(c, ""));
    assert_null(crm_entity_field_by_label(c, " - "));
    assert_null(crm_entity_field_by_label(c, "phoness"));
    assert_string_equal(crm_entity_value_by_label(c, "stage", "潜在客户"), "prospect");
    assert_string_equal(crm_entity_value_by_label(c, "source", "转介绍"), "referral");
    assert_null(crm_entity_value_by_label(c, "city", "潜在客户"));
    assert_null(crm_entity_value_by_label(c, "stage", "好客户"));
    crm_entity_label_key("E-Mail Address *", key, sizeof key);
    crm_entity_label_key("email_address", other, sizeof other);
    assert_string_equal(key, other);
    crm_entity_label_key("ABCDEFGH", key, 4); /* cut to the buffer */
    assert_string_equal(key, "abc");
}

/* crm_record_erase: every CRM_F_PERSONAL field of a customer is blanked (a required
   text becomes CRM_ERASED, the rest cleared), nothing else is touched, the names of
   what changed are given, and erasing again changes nothing. */
static void
test_record_erase(void **state)
{
    (void)state;
    const crm_entity_t *e = crm_entity_by_name("customer");
    char errbuf[CRM_ERRBUF];
    ProtobufCMessage *c = crm_proto_new(e->desc);
    const char *set[][2] = {{"name", "王秘密"}, {"company", "秘密贸易"}, {"phones", "13911112222"},
                            {"emails", "w@example.com"}, {"address", "秘密路1号"},
                            {"tags", "vip"}, {"birthday", "1980-02-03"}, {"city", "上海"},
                            {"custom", "会员号=123"}, {"stage", "active"}};
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        assert_int_equal(crm_record_set_text(c, crm_record_field(e->desc, set[i][0]), set[i][1],
                                             false, errbuf),
                         CRM_OK);
    crm_record_set_str(c, "id", "c7");
    const char *names[16];
    size_t n = crm_record_erase(e, c, names, 16);
    assert_int_equal(n, 8); /* name, company, phones, emails, address, tags, birthday, custom */
    assert_string_equal(crm_record_get_str(c, "name"), CRM_ERASED);
    assert_string_equal(crm_record_get_str(c, "company"), "");
    assert_string_equal(crm_record_get_str(c, "address"), "");
    assert_int_equal(crm_record_count(c, crm_record_field(e->desc, "phones")), 0);
    assert_int_equal(crm_record_count(c, crm_record_field(e->desc, "custom")), 0);
    assert_string_equal(crm_record_get_str(c, "city"), "上海"); /* coarse, kept for reports */
    assert_string_equal(crm_record_get_str(c, "id"), "c7");
    assert_int_equal(crm_record_get_enum(c, "stage"), CRM__STAGE__ACTIVE);
    bool named_phones = false;
    for (size_t i = 0; i < n; i++)
        named_phones |= !strcmp(names[i], "phones");
    assert_true(named_phones);
    assert_int_equal(crm_record_erase(e, c, names, 16), 0); /* erased before */
    crm_proto_free(&c);
    /* every kind with a parent customer names some free text as personal */
    for (const crm_entity_t *k = crm_entity_all(); k->name; k++)
        if (k->parent && !strcmp(k->parent, "customer"))
            assert_non_null(crm_entity_field_with(k, CRM_F_PERSONAL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entity_table_is_consistent),
        cmocka_unit_test(test_record_diff_by_value),
        cmocka_unit_test(test_entity_rule_by_number),
        cmocka_unit_test(test_entity_ids),
        cmocka_unit_test(test_entity_times),
        cmocka_unit_test(test_entity_labels),
        cmocka_unit_test(test_record_set_and_format),
        cmocka_unit_test(test_record_phone),
        cmocka_unit_test(test_record_normalize),
        cmocka_unit_test(test_money_parse_and_format),
        cmocka_unit_test(test_record_lines_and_diff),
        cmocka_unit_test(test_record_ranges),
        cmocka_unit_test(test_record_text_rules),
        cmocka_unit_test(test_record_map_count_first),
        cmocka_unit_test(test_record_erase),
    };
    return cmocka_run_group_tests_name("record", tests, NULL, NULL);
}
