/*  test_err - the C error list and the wire enum agree, name for name */
#include "test_common.h"

#include "crm_err.h"
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_matches_proto_enum),
        cmocka_unit_test(test_err_out_of_range),
    };
    return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
