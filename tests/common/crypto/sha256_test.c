/* sha256_test.c: SHA-256 (one-shot and streaming), HMAC-SHA256 (RFC 4231), hex,
 * constant-time compare and random bytes. */
#include "tests/support/testenv.h"

#include "common/crypto/hex.h"
#include "common/crypto/hmac.h"
#include "common/crypto/random.h"
#include "common/crypto/sha256.h"

#include <string.h>

static void test_sha256_known(void **state)
{
    (void)state;
    char h[65];
    s3s__sha256_hex("", 0, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    s3s__sha256_hex("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_sha256_streaming_equals_oneshot(void **state)
{
    (void)state;
    char data[10000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7 + 3);
    uint8_t a[32], b[32];
    s3s__sha256(data, sizeof data, a);
    s3s__sha256_ctx c;
    assert_int_equal(s3s__sha256_init(&c), 0);
    for (size_t off = 0; off < sizeof data; off += 333)
        s3s__sha256_update(&c, data + off, sizeof data - off < 333 ? sizeof data - off : 333);
    s3s__sha256_final(&c, b);
    assert_memory_equal(a, b, 32);
    assert_null(c.md);
    /* fini without final frees too (ASan would see a leak otherwise). */
    assert_int_equal(s3s__sha256_init(&c), 0);
    s3s__sha256_update(&c, "x", 1);
    s3s__sha256_fini(&c);
    s3s__sha256_fini(&c);
    s3s__sha256_fini(NULL);
}

static void test_hmac_rfc4231(void **state)
{
    (void)state;
    /* RFC 4231 test case 2. */
    uint8_t out[32];
    char hex[65];
    assert_int_equal(s3s__hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, out), 0);
    s3s__hex_encode(out, 32, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* Test case 1: key 20 x 0x0b, "Hi There". */
    uint8_t key[20];
    memset(key, 0x0b, sizeof key);
    assert_int_equal(s3s__hmac_sha256(key, sizeof key, "Hi There", 8, out), 0);
    s3s__hex_encode(out, 32, hex);
    assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

static void test_hex_and_compare(void **state)
{
    (void)state;
    uint8_t in[4] = {0x00, 0xab, 0x7f, 0xff}, back[4];
    char h[9];
    s3s__hex_encode(in, 4, h);
    assert_string_equal(h, "00ab7fff");
    assert_int_equal(s3s__hex_decode("00AB7fff", back, 4), 0);
    assert_memory_equal(in, back, 4);
    assert_int_equal(s3s__hex_decode("00ab7fzz", back, 4), -1);
    assert_int_equal(s3s__hex_decode("00ab", back, 4), -1); /* short string */
    assert_true(s3s__ct_equal(in, back, 4));
    back[3] ^= 1;
    assert_false(s3s__ct_equal(in, back, 4));
}

static void test_random(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    assert_int_equal(s3s__random_bytes(a, sizeof a), 0);
    assert_int_equal(s3s__random_bytes(b, sizeof b), 0);
    assert_memory_not_equal(a, b, 32);
    assert_true(s3s__random_u64() != s3s__random_u64());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_known), cmocka_unit_test(test_sha256_streaming_equals_oneshot),
        cmocka_unit_test(test_hmac_rfc4231), cmocka_unit_test(test_hex_and_compare),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
