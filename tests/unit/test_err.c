/*  test_err - the C error list and the wire enum agree, name for name */
#include "test_common.h"

#include "crm_err.h"
#include "dispatch.h"
#include "errors.pb-c.h"

static void
test_err_matches_proto_enum(void **state)
{
    (void)state;
    const ProtobufCEnumDescriptor *d = &crm__error_code__descriptor;
    assert_int_equal(d->n_values, crm_err_count());
    for (unsigned i = 0; i < d->n_values; i++) {
        const ProtobufCEnumValue *v = &d->values[i];
        assert_string_equal(crm_err_name(v->value), v->name);
    }
}

static void
test_err_out_of_range(void **state)
{
    (void)state;
    assert_string_equal(crm_err_name(-1), "UNKNOWN");
    assert_string_equal(crm_err_name(crm_err_count()), "UNKNOWN");
    assert_string_equal(crm_err_str(CRM_ERR_NOT_FOUND), "no such record");
    assert_int_equal(CRM_OK, 0);
}

/* The log's copy of an error: quoted values out, field names and apostrophes in */
static void
test_err_log_text(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"field 'emails': 'wang@' is not an e-mail address",
         "field 'emails': '...' is not an e-mail address"},
        {"'c9zz' is not a customer id (they look like c123)",
         "'...' is not a customer id (they look like c123)"},
        {"field 'name': unknown value 'O'Brien' (use one of: a, b)",
         "field 'name': unknown value '...' (use one of: a, b)"},
        {"request of 100000 bytes is over this server's limit of 65536 bytes",
         "request of 100000 bytes is over this server's limit of 65536 bytes"},
        {"takes key=value, not 'unclosed 13912345678", "takes key=value, not '...'"},
        {"", ""},
        /* a value with quotes of its own cannot end the span early, nor pass for a name */
        {"field 'name': unknown value 'x' 13912345678' (use one of: a)",
         "field 'name': unknown value '...' (use one of: a)"},
        {"field 'name': unknown value 'x' field 'leak123' y' (use one of: a)",
         "field 'name': unknown value '...' (use one of: a)"},
        {"field 'Zhang San 139': bad", "field '...': bad"},
        {"'D'\xc3\x81ngelo' is not a customer id", "'...' is not a customer id"},
        {"'a', 'b' and 'c13912345678' are unknown", "'...' are unknown"},
    };
    char out[CRM_ERRBUF];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        dispatch_log_text(cases[i].in, out, sizeof out);
        assert_string_equal(out, cases[i].out);
    }
    /* a small buffer: cut, terminated, no value half-shown */
    dispatch_log_text("field 'phones': '13912345678' is bad", out, 24);
    assert_true(strlen(out) < 24);
    assert_null(strstr(out, "1391"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_matches_proto_enum),
        cmocka_unit_test(test_err_out_of_range),
        cmocka_unit_test(test_err_log_text),
    };
    return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
