/* ledger_test.c: the coverage ledger's storage and key order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "coordinator/ledger.h"

static void test_add_grows_and_keeps_entries(void **state)
{
    (void)state;
    s3s__ledger l;
    s3s__ledger_init(&l);
    size_t idx = 99;
    for (uint32_t i = 0; i < 5000; i++) {
        assert_int_equal(s3s__ledger_add(&l, i, i % 7, 1000 + i, i, i + 10, &idx), 0);
        assert_int_equal(idx, i);
    }
    assert_int_equal(l.n, 5000);
    assert_true(l.alloc >= 5000);
    assert_int_equal(l.v[4321].pos, 4321);
    assert_int_equal(l.v[4321].who, 4321 % 7);
    assert_int_equal(l.v[4321].token, 5321);
    assert_int_equal(l.v[4321].end, 4331);
    assert_int_equal(s3s__ledger_add(&l, 1, 2, 3, 4, 5, NULL), 0);
    size_t alloc = l.alloc;
    s3s__ledger_reset(&l);
    assert_int_equal(l.n, 0);
    assert_int_equal(l.alloc, alloc); /* memory kept for the next epoch */
    s3s__ledger_fini(&l);
    s3s__ledger_fini(NULL);
}

static void test_reserve_never_shrinks(void **state)
{
    (void)state;
    s3s__ledger l;
    s3s__ledger_init(&l);
    assert_int_equal(s3s__ledger_reserve(&l, 100), 0);
    assert_int_equal(l.alloc, 100);
    assert_int_equal(s3s__ledger_add(&l, 1, 2, 3, 4, 5, NULL), 0);
    assert_int_equal(s3s__ledger_reserve(&l, 10), 0);
    assert_int_equal(l.alloc, 100);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.v[0].start, 4);
    s3s__ledger_fini(&l);
}

static void test_keys_sort_by_lane_pos_start(void **state)
{
    (void)state;
    s3s__ledger_key k[5] = {
        {1, 0, 0, 5}, {0, 2, 50, 60}, {0, 2, 0, 50}, {0, 1, 0, 9}, {1, 0, 5, 9},
    };
    s3s__ledger_sort_keys(k, 5);
    assert_int_equal(k[0].pos, 1);
    assert_int_equal(k[1].start, 0);
    assert_int_equal(k[1].pos, 2);
    assert_int_equal(k[2].start, 50);
    assert_int_equal(k[3].lane, 1);
    assert_int_equal(k[3].start, 0);
    assert_int_equal(k[4].start, 5);
    s3s__ledger_sort_keys(k, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_grows_and_keeps_entries),
        cmocka_unit_test(test_reserve_never_shrinks),
        cmocka_unit_test(test_keys_sort_by_lane_pos_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
