/* jrec_test.c: journal record payloads: extra fields skipped, every rule refused. */
#include "tests/support/testenv.h"

#include "common/journal/jrec.h"
#include "common/proto/mp.h"
#include "s3shard/error.h"

#include <string.h>

/* A payload written by hand: type, time, then fields as uints, then extra. */
static void payload(s3s__buf *b, uint32_t type, const uint64_t *f, int nf, int extra)
{
    s3s__buf_init(b, 4096);
    s3s__mpw w;
    s3s__mpw_init(&w, b);
    s3s__mpw_array(&w, (uint32_t)(2 + nf + extra));
    s3s__mpw_uint(&w, type);
    s3s__mpw_uint(&w, 99);
    for (int k = 0; k < nf; k++)
        s3s__mpw_uint(&w, f[k]);
    for (int k = 0; k < extra; k++) {
        s3s__mpw_map(&w, 1);
        s3s__mpw_cstr(&w, "later");
        s3s__mpw_array(&w, 0);
    }
    assert_int_equal(w.err, 0);
}

static void test_extra_fields_skipped(void **state)
{
    (void)state;
    uint64_t f[] = {2, 7, 11, 0, 100, 5, 42, 3};
    s3s__buf b;
    payload(&b, S3S_JREC_GRANTED, f, 8, 2);
    s3s__jrec r;
    s3s__errbuf eb;
    assert_int_equal(s3s__jrec_decode(&r, b.data, b.len, &eb), 0);
    assert_int_equal(r.type, S3S_JREC_GRANTED);
    assert_int_equal(r.time_ms, 99);
    assert_int_equal(r.channel, 2);
    assert_int_equal(r.epoch, 7);
    assert_int_equal(r.shard, 11);
    assert_int_equal(r.end, 100);
    assert_int_equal(r.token, 5);
    assert_int_equal(r.rank, 3);
    s3s__buf_fini(&b);
}

static void test_rules_refused(void **state)
{
    (void)state;
    s3s__buf b;
    s3s__jrec r;
    s3s__errbuf eb;
    struct {
        uint32_t type;
        uint64_t f[8];
        int nf;
        const char *needle;
    } cases[] = {
        {S3S_JREC_GRANTED, {2, 7, 11, 0, 100, 5, 42}, 7, "10 expected"},
        {S3S_JREC_GRANTED, {2, 7, 11, 101, 100, 5, 42, 3}, 8, "start after end"},
        {S3S_JREC_GRANTED, {2, 7, 11, 0, 100, 0, 42, 3}, 8, "token 0"},
        {S3S_JREC_COMMITTED, {20, 7, 11, 5, 42, 1}, 6, "channel"},
        {S3S_JREC_EPOCH_DONE, {0, 1ull << 40}, 2, NULL}, /* fine: epochs are u64 */
        {77, {0}, 0, "unknown record type 77"},
        {S3S_JREC_JOB_STARTED, {1, 2, 3}, 3, "job_hash"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        payload(&b, cases[k].type, cases[k].f, cases[k].nf, 0);
        int rc = s3s__jrec_decode(&r, b.data, b.len, &eb);
        if (cases[k].needle == NULL) {
            assert_int_equal(rc, 0);
        } else {
            if (rc != S3S_EPARSE || strstr(eb.msg, cases[k].needle) == NULL)
                fail_msg("case %zu: rc %d '%s'", k, rc, eb.msg);
        }
        s3s__buf_fini(&b);
    }
    static const uint8_t trailing[] = {0x92, 0x06, 0x00, 0x00};
    assert_int_equal(s3s__jrec_decode(&r, trailing, sizeof trailing, &eb), S3S_EPARSE);
    static const uint8_t notarray[] = {0x06};
    assert_int_equal(s3s__jrec_decode(&r, notarray, 1, &eb), S3S_EPARSE);
    static const uint8_t one[] = {0x91, 0x06};
    assert_int_equal(s3s__jrec_decode(&r, one, sizeof one, &eb), S3S_EPARSE);
    /* the encoder refuses the same rules */
    s3s__buf_init(&b, 4096);
    memset(&r, 0, sizeof r);
    r.type = S3S_JREC_SHARD_DONE;
    assert_int_equal(s3s__jrec_encode(&b, &r, &eb), S3S_EINVAL);
    r.token = 1;
    assert_int_equal(s3s__jrec_encode(&b, &r, &eb), 0);
    r.type = S3S_JREC_JOB_STARTED;
    assert_int_equal(s3s__jrec_encode(&b, &r, &eb), S3S_EINVAL); /* n_channels 0 */
    s3s__buf small;
    s3s__buf_init(&small, 4);
    r.type = S3S_JREC_EPOCH_DONE;
    r.epoch = UINT64_MAX;
    assert_int_equal(s3s__jrec_encode(&small, &r, &eb), S3S_ETOOBIG);
    assert_int_equal(small.len, 0);
    s3s__buf_fini(&small);
    s3s__buf_fini(&b);
    assert_string_equal(s3s__jrec_type_name(S3S_JREC_OPAQUE), "opaque");
    assert_string_equal(s3s__jrec_type_name(1234), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extra_fields_skipped),
        cmocka_unit_test(test_rules_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
