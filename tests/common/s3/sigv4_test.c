/* sigv4_test.c: SigV4 canonicalization and signatures against AWS's published
 * examples (the S3 API reference examples and the aws-sig-v4-test-suite). */
#include "tests/support/testenv.h"

#include "common/crypto/sha256.h"
#include "common/s3/pct.h"
#include "common/s3/rawreq.h"
#include "common/s3/sigv4.h"
#include "s3shard/error.h"

#include <string.h>

/* ---- helpers ----------------------------------------------------------------- */

static char *canon_uri(const char *path, int normalize)
{
    s3s__buf b;
    s3s__buf_init(&b, 1 << 20);
    assert_int_equal(s3s__sigv4_canonical_uri(&b, path, normalize), 0);
    return s3s__buf_detach(&b, NULL);
}

static char *canon_query(const char *q)
{
    s3s__buf b;
    s3s__buf_init(&b, 1 << 20);
    assert_int_equal(s3s__sigv4_canonical_query(&b, q), 0);
    return s3s__buf_detach(&b, NULL);
}

#define ASSERT_URI(path, norm, want)                                                               \
    do {                                                                                           \
        char *got_ = canon_uri(path, norm);                                                        \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

#define ASSERT_QUERY(q, want)                                                                      \
    do {                                                                                           \
        char *got_ = canon_query(q);                                                               \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

/* ---- canonicalization ------------------------------------------------------------ */

static void test_query_ordering(void **state)
{
    (void)state;
    ASSERT_QUERY("Param2=value2&Param1=value1", "Param1=value1&Param2=value2");
    ASSERT_QUERY("Param1=value2&Param1=Value1", "Param1=Value1&Param1=value2");
    ASSERT_QUERY("b=2&a=1&a=0&B=3", "B=3&a=0&a=1&b=2");
    ASSERT_QUERY("max-keys=2&prefix=J", "max-keys=2&prefix=J");
    ASSERT_QUERY(NULL, "");
    ASSERT_QUERY("", "");
}

static void test_query_empty_values(void **state)
{
    (void)state;
    ASSERT_QUERY("lifecycle", "lifecycle=");
    ASSERT_QUERY("uploads&prefix=", "prefix=&uploads=");
    ASSERT_QUERY("a=&&b", "a=&b="); /* empty pairs vanish */
    ASSERT_QUERY("k=v=w", "k=v%3Dw"); /* split on the first '=' only */
}

static void test_query_encoding(void **state)
{
    (void)state;
    /* Reserved characters are encoded; raw and already-encoded give the same text. */
    ASSERT_QUERY("continuation-token=ab+c/d==", "continuation-token=ab%2Bc%2Fd%3D%3D");
    ASSERT_QUERY("continuation-token=ab%2Bc%2Fd%3D%3D", "continuation-token=ab%2Bc%2Fd%3D%3D");
    ASSERT_QUERY("prefix=a b", "prefix=a%20b");
    ASSERT_QUERY("prefix=a%20b", "prefix=a%20b");
    ASSERT_QUERY("\xe1\x88\xb4=bar", "%E1%88%B4=bar");
    ASSERT_QUERY("%e1%88%b4=bar", "%E1%88%B4=bar"); /* lowercase hex becomes uppercase */
    ASSERT_QUERY("-._~AZaz09=-._~", "-._~AZaz09=-._~");
    ASSERT_QUERY("x=100%", "x=100%25"); /* a lone '%' is a literal */
    ASSERT_QUERY("x=%zz", "x=%25zz");
}

static void test_path_encoding(void **state)
{
    (void)state;
    ASSERT_URI("/test$file.text", 0, "/test%24file.text");
    ASSERT_URI("/test%24file.text", 0, "/test%24file.text");
    ASSERT_URI("/example space/", 0, "/example%20space/");
    ASSERT_URI("/example%20space/", 0, "/example%20space/");
    ASSERT_URI("/\xe1\x88\xb4", 0, "/%E1%88%B4");
    ASSERT_URI("/a+b=c?", 0, "/a%2Bb%3Dc%3F");
    ASSERT_URI("/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", 0,
               "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    ASSERT_URI("", 0, "/");
    ASSERT_URI(NULL, 0, "/");
    ASSERT_URI("/key%25with%25percent", 0, "/key%25with%25percent");
}

static void test_path_normalization_off(void **state)
{
    (void)state;
    /* S3 never normalizes: "a//b" and "./" are parts of keys. */
    ASSERT_URI("//", 0, "//");
    ASSERT_URI("/a//b/./c/../d", 0, "/a//b/./c/../d");
    ASSERT_URI("/bucket/dir/", 0, "/bucket/dir/");
}

static void test_path_normalization_on(void **state)
{
    (void)state;
    ASSERT_URI("//", 1, "/");
    ASSERT_URI("/./", 1, "/");
    ASSERT_URI("/example/..", 1, "/");
    ASSERT_URI("/example1/example2/../..", 1, "/");
    ASSERT_URI("/example/.././", 1, "/");
    ASSERT_URI("/a//b/./c/../d", 1, "/a/b/d");
    ASSERT_URI("/a/b/", 1, "/a/b/");
    ASSERT_URI("/a/b/.", 1, "/a/b/");
    ASSERT_URI("/../../x", 1, "/x");
    ASSERT_URI("/example space/./", 1, "/example%20space/");
}

static void test_header_trim_and_join(void **state)
{
    (void)state;
    const s3s__sigv4_header h[] = {
        {"Host", "example.amazonaws.com"}, {"My-Header2", "  \"a   b   c\"  "},
        {"my-header1", "value4"},          {"MY-HEADER1", " value1 "},
        {"My-Header1", "x\t\ty"},          {"X-Amz-Date", "20150830T123600Z"},
    };
    s3s__buf c, s;
    s3s__buf_init(&c, 1 << 20);
    s3s__buf_init(&s, 1 << 20);
    assert_int_equal(s3s__sigv4_canonical_headers(&c, &s, h, 6), 0);
    assert_string_equal(c.data,
                        "host:example.amazonaws.com\n"
                        "my-header1:value4,value1,x y\n"
                        "my-header2:\"a b c\"\n"
                        "x-amz-date:20150830T123600Z\n");
    assert_string_equal(s.data, "host;my-header1;my-header2;x-amz-date");
    s3s__buf_fini(&c);
    s3s__buf_fini(&s);
}

static void test_pct_roundtrip(void **state)
{
    (void)state;
    /* Every byte value survives encode then decode. */
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    s3s__buf e, d;
    s3s__buf_init(&e, 4096);
    s3s__buf_init(&d, 4096);
    assert_int_equal(s3s__pct_encode(&e, all, 256, 0), 0);
    assert_int_equal(s3s__pct_decode(&d, e.data, e.len), 0);
    assert_int_equal(d.len, 256);
    assert_memory_equal(d.data, all, 256);
    s3s__buf_fini(&e);
    s3s__buf_fini(&d);
}

/* ---- AWS test suite vectors (service "service", us-east-1) ----------------------------- */

typedef struct vector {
    const char *name;
    const char *req;
    int normalize;
    const char *creq;
    const char *authz;
} vector;

#define SUITE_CRED                                                                                 \
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
#define HD "Host:example.amazonaws.com\nX-Amz-Date:20150830T123600Z"
#define CHD                                                                                        \
    "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-"                       \
    "date\n" S3S_EMPTY_SHA256

static const vector suite[] = {
    {"get-vanilla", "GET / HTTP/1.1\n" HD, 0, "GET\n/\n\n" CHD,
     SUITE_CRED "SignedHeaders=host;x-amz-date, "
                "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-vanilla-crlf",
     "GET / HTTP/1.1\r\nHost:example.amazonaws.com\r\nX-Amz-Date:20150830T123600Z\r\n\r\n", 0,
     "GET\n/\n\n" CHD,
     SUITE_CRED "SignedHeaders=host;x-amz-date, "
                "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-relative-relative (normalized)", "GET /example1/example2/../.. HTTP/1.1\n" HD, 1,
     "GET\n/\n\n" CHD,
     SUITE_CRED "SignedHeaders=host;x-amz-date, "
                "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-slashes (normalized)", "GET // HTTP/1.1\n" HD, 1, "GET\n/\n\n" CHD,
     SUITE_CRED "SignedHeaders=host;x-amz-date, "
                "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-header-key-duplicate",
     "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value2\nMy-Header1:value2\n"
     "My-Header1:value1\nX-Amz-Date:20150830T123600Z",
     0,
     "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\n"
     "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" S3S_EMPTY_SHA256,
     SUITE_CRED "SignedHeaders=host;my-header1;x-amz-date, "
                "Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
    {"get-header-value-order",
     "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value4\nMy-Header1:value1\n"
     "My-Header1:value3\nMy-Header1:value2\nX-Amz-Date:20150830T123600Z",
     0,
     "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1,value3,value2\n"
     "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" S3S_EMPTY_SHA256,
     SUITE_CRED "SignedHeaders=host;my-header1;x-amz-date, "
                "Signature=08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
    {"get-header-value-trim",
     "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1: value1\nMy-Header2: \"a   b   c\"\n"
     "X-Amz-Date:20150830T123600Z",
     0,
     "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\n"
     "x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n" S3S_EMPTY_SHA256,
     SUITE_CRED "SignedHeaders=host;my-header1;my-header2;x-amz-date, "
                "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
    {"get-unreserved",
     "GET /-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\n" HD, 0,
     "GET\n/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n\n" CHD,
     SUITE_CRED "SignedHeaders=host;x-amz-date, "
                "Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
    {"get-vanilla-query-order-key", "GET /?Param1=value2&Param1=Value1 HTTP/1.1\n" HD, 0,
     "GET\n/\nParam1=Value1&Param1=value2\n" CHD,
     SUITE_CRED "SignedHeaders=host;x-amz-date, "
                "Signature=eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"},
    {"get-vanilla-query-order-key-case", "GET /?Param2=value2&Param1=value1 HTTP/1.1\n" HD, 0,
     "GET\n/\nParam1=value1&Param2=value2\n" CHD,
     SUITE_CRED "SignedHeaders=host;x-amz-date, "
                "Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
    {"get-vanilla-query-order-value", "GET /?Param1=value2&Param1=value1 HTTP/1.1\n" HD, 0,
     "GET\n/\nParam1=value1&Param1=value2\n" CHD,
     SUITE_CRED "SignedHeaders=host;x-amz-date, "
                "Signature=5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"},
    {"get-vanilla-query-unreserved",
     "GET /?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
     "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\n" HD,
     0,
     "GET\n/\n-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
     "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n" CHD,
     SUITE_CRED "SignedHeaders=host;x-amz-date, "
                "Signature=9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
    {"get-vanilla-utf8-query", "GET /?\xe1\x88\xb4=bar HTTP/1.1\n" HD, 0,
     "GET\n/\n%E1%88%B4=bar\n" CHD,
     SUITE_CRED "SignedHeaders=host;x-amz-date, "
                "Signature=2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
    {"get-vanilla-empty-query-key", "GET /?Param1=value1 HTTP/1.1\n" HD, 0,
     "GET\n/\nParam1=value1\n" CHD,
     SUITE_CRED "SignedHeaders=host;x-amz-date, "
                "Signature=a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
    {"post-vanilla", "POST / HTTP/1.1\n" HD, 0, "POST\n/\n\n" CHD,
     SUITE_CRED "SignedHeaders=host;x-amz-date, "
                "Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-header-value-case",
     "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:VALUE1\nX-Amz-Date:20150830T123600Z",
     0,
     "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\nx-amz-date:20150830T123600Z\n\n"
     "host;my-header1;x-amz-date\n" S3S_EMPTY_SHA256,
     SUITE_CRED "SignedHeaders=host;my-header1;x-amz-date, "
                "Signature=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
};

static void sign_raw(const char *req, int normalize, const char *akid, const char *secret,
                     const char *region, const char *service, s3s__sigv4_result *res)
{
    s3s__rawreq r;
    s3s__errbuf eb;
    assert_int_equal(s3s__rawreq_parse(&r, req, strlen(req), &eb), 0);
    char hash[65];
    const char *ph = s3s__rawreq_header(&r, "x-amz-content-sha256");
    if (ph == NULL) {
        s3s__sha256_hex(r.body, r.body_len, hash);
        ph = hash;
    }
    s3s__sigv4_request sr = {r.method, r.path, r.query, r.headers, r.nheaders, ph, normalize};
    s3s__sigv4_creds cr = {akid, secret, NULL};
    const char *date = s3s__rawreq_header(&r, "x-amz-date");
    assert_non_null(date);
    assert_int_equal(s3s__sigv4_sign_header(res, NULL, &cr, region, service, date, &sr), 0);
    s3s__rawreq_fini(&r);
}

static void test_aws_suite(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof suite / sizeof suite[0]; i++) {
        s3s__sigv4_result res;
        s3s__sigv4_result_init(&res);
        sign_raw(suite[i].req, suite[i].normalize, "AKIDEXAMPLE",
                 "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "service", &res);
        if (strcmp(res.canonical_request.data, suite[i].creq) != 0 ||
            strcmp(res.out.data, suite[i].authz) != 0)
            fail_msg("%s:\ncreq got\n%s\nwant\n%s\nauthz got %s", suite[i].name,
                     res.canonical_request.data, suite[i].creq, res.out.data);
        s3s__sigv4_result_fini(&res);
    }
}

/* ---- the S3 API reference examples (AKIAIOSFODNN7EXAMPLE, 20130524) ---------------------- */

#define S3_AKID "AKIAIOSFODNN7EXAMPLE"
#define S3_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define S3_CRED                                                                                    \
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "

static void check_s3(const char *req, const char *want_creq, const char *want_sts,
                     const char *want_authz)
{
    s3s__sigv4_result res;
    s3s__sigv4_result_init(&res);
    sign_raw(req, 0, S3_AKID, S3_SECRET, "us-east-1", "s3", &res);
    if (want_creq != NULL)
        assert_string_equal(res.canonical_request.data, want_creq);
    if (want_sts != NULL)
        assert_string_equal(res.string_to_sign.data, want_sts);
    assert_string_equal(res.out.data, want_authz);
    s3s__sigv4_result_fini(&res);
}

static void test_s3_get_object_range(void **state)
{
    (void)state;
    check_s3("GET /test.txt HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\n"
             "Range: bytes=0-9 \nx-amz-content-sha256:" S3S_EMPTY_SHA256 "\n"
             "x-amz-date: 20130524T000000Z \n",
             "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
             "x-amz-content-sha256:" S3S_EMPTY_SHA256 "\nx-amz-date:20130524T000000Z\n\n"
             "host;range;x-amz-content-sha256;x-amz-date\n" S3S_EMPTY_SHA256,
             "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
             "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
             S3_CRED "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                     "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

static void test_s3_put_object(void **state)
{
    (void)state;
    check_s3(
        "PUT test$file.text HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\n"
        "Date: Fri, 24 May 2013 00:00:00 GMT\nx-amz-date: 20130524T000000Z \n"
        "x-amz-storage-class: REDUCED_REDUNDANCY\n"
        "x-amz-content-sha256: "
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
        "\nWelcome to Amazon S3.",
        "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
        "host:examplebucket.s3.amazonaws.com\n"
        "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
        "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
        NULL,
        S3_CRED "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
                "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    /* The body's own hash is what the example's x-amz-content-sha256 says. */
    char h[65];
    s3s__sha256_hex("Welcome to Amazon S3.", 21, h);
    assert_string_equal(h, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
}

static void test_s3_get_lifecycle(void **state)
{
    (void)state;
    check_s3("GET /?lifecycle HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\n"
             "x-amz-date: 20130524T000000Z\nx-amz-content-sha256:" S3S_EMPTY_SHA256 "\n",
             "GET\n/\nlifecycle=\nhost:examplebucket.s3.amazonaws.com\n"
             "x-amz-content-sha256:" S3S_EMPTY_SHA256 "\nx-amz-date:20130524T000000Z\n\n"
             "host;x-amz-content-sha256;x-amz-date\n" S3S_EMPTY_SHA256,
             NULL,
             S3_CRED "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                     "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

static void test_s3_list_objects(void **state)
{
    (void)state;
    check_s3("GET /?max-keys=2&prefix=J HTTP/1.1\nHost: examplebucket.s3.amazonaws.com\n"
             "x-amz-date: 20130524T000000Z\nx-amz-content-sha256:" S3S_EMPTY_SHA256 "\n",
             "GET\n/\nmax-keys=2&prefix=J\nhost:examplebucket.s3.amazonaws.com\n"
             "x-amz-content-sha256:" S3S_EMPTY_SHA256 "\nx-amz-date:20130524T000000Z\n\n"
             "host;x-amz-content-sha256;x-amz-date\n" S3S_EMPTY_SHA256,
             NULL,
             S3_CRED "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                     "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

static void test_s3_presigned_url(void **state)
{
    (void)state;
    const s3s__sigv4_header h[] = {{"Host", "examplebucket.s3.amazonaws.com"}};
    s3s__sigv4_request r = {"GET", "/test.txt", NULL, h, 1, S3S_UNSIGNED_PAYLOAD, 0};
    s3s__sigv4_creds cr = {S3_AKID, S3_SECRET, NULL};
    s3s__sigv4_result res;
    s3s__sigv4_result_init(&res);
    assert_int_equal(
        s3s__sigv4_presign(&res, NULL, &cr, "us-east-1", "s3", "20130524T000000Z", 86400, &r), 0);
    assert_string_equal(res.canonical_request.data,
                        "GET\n/test.txt\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
                        "AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-"
                        "Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\n"
                        "host:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD");
    assert_string_equal(
        res.out.data,
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-"
        "east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-"
        "SignedHeaders=host&X-Amz-Signature="
        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    s3s__sigv4_result_fini(&res);
}

static void test_presign_session_token_and_query(void **state)
{
    (void)state;
    const s3s__sigv4_header h[] = {{"Host", "examplebucket.s3.amazonaws.com"}};
    s3s__sigv4_request r = {"GET", "/a b", "versionId=3", h, 1, S3S_UNSIGNED_PAYLOAD, 0};
    s3s__sigv4_creds cr = {S3_AKID, S3_SECRET, "tok/en+=="};
    s3s__sigv4_result res;
    s3s__sigv4_result_init(&res);
    assert_int_equal(
        s3s__sigv4_presign(&res, NULL, &cr, "us-east-1", "s3", "20130524T000000Z", 60, &r), 0);
    /* The token is signed (in the canonical query) and encoded in the URL. */
    assert_non_null(strstr(res.canonical_request.data, "X-Amz-Security-Token=tok%2Fen%2B%3D%3D"));
    assert_non_null(strstr(res.out.data, "&X-Amz-Security-Token=tok%2Fen%2B%3D%3D&"));
    assert_non_null(strstr(res.out.data, "&versionId=3&X-Amz-Signature="));
    assert_int_equal(strncmp(res.canonical_request.data, "GET\n/a%20b\n", 11), 0);
    char with_token[65];
    strcpy(with_token, res.signature);
    cr.session_token = NULL;
    assert_int_equal(
        s3s__sigv4_presign(&res, NULL, &cr, "us-east-1", "s3", "20130524T000000Z", 60, &r), 0);
    assert_null(strstr(res.out.data, "Security-Token"));
    assert_string_not_equal(with_token, res.signature);
    s3s__sigv4_result_fini(&res);
}

static void test_unsigned_payload_header(void **state)
{
    (void)state;
    /* UNSIGNED-PAYLOAD is the last line of the canonical request. */
    const s3s__sigv4_header h[] = {{"Host", "h"},
                                   {"x-amz-content-sha256", S3S_UNSIGNED_PAYLOAD},
                                   {"x-amz-date", "20130524T000000Z"}};
    s3s__sigv4_request r = {"GET", "/k", NULL, h, 3, S3S_UNSIGNED_PAYLOAD, 0};
    s3s__sigv4_creds cr = {S3_AKID, S3_SECRET, NULL};
    s3s__sigv4_result res;
    s3s__sigv4_result_init(&res);
    assert_int_equal(
        s3s__sigv4_sign_header(&res, NULL, &cr, "us-east-1", "s3", "20130524T000000Z", &r), 0);
    size_t n = res.canonical_request.len;
    assert_true(n > 17);
    assert_string_equal(res.canonical_request.data + n - 17, "\nUNSIGNED-PAYLOAD");
    s3s__sigv4_result_fini(&res);
}

static void test_signing_key_cache(void **state)
{
    (void)state;
    s3s__sigv4_keycache kc;
    memset(&kc, 0, sizeof kc);
    uint8_t k1[32], k2[32], k3[32];
    assert_int_equal(s3s__sigv4_signing_key(&kc, S3_SECRET, "20130524", "us-east-1", "s3", k1), 0);
    assert_int_equal(kc.derivations, 1);
    assert_int_equal(s3s__sigv4_signing_key(&kc, S3_SECRET, "20130524", "us-east-1", "s3", k2), 0);
    assert_int_equal(kc.derivations, 1); /* cached */
    assert_memory_equal(k1, k2, 32);
    assert_int_equal(s3s__sigv4_signing_key(&kc, S3_SECRET, "20130525", "us-east-1", "s3", k3), 0);
    assert_int_equal(kc.derivations, 2); /* new day */
    assert_memory_not_equal(k1, k3, 32);
    assert_int_equal(s3s__sigv4_signing_key(&kc, S3_SECRET, "20130525", "eu-west-1", "s3", k3), 0);
    assert_int_equal(kc.derivations, 3); /* new region */
    assert_int_equal(s3s__sigv4_signing_key(&kc, "other", "20130525", "eu-west-1", "s3", k3), 0);
    assert_int_equal(kc.derivations, 4); /* new secret */
    /* A cached key signs exactly like a fresh one. */
    uint8_t k4[32];
    assert_int_equal(s3s__sigv4_signing_key(NULL, S3_SECRET, "20130524", "us-east-1", "s3", k4), 0);
    assert_memory_equal(k1, k4, 32);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    const s3s__sigv4_header h[] = {{"Host", "h"}};
    s3s__sigv4_request r = {"GET", "/", NULL, h, 1, S3S_EMPTY_SHA256, 0};
    s3s__sigv4_creds cr = {S3_AKID, S3_SECRET, NULL};
    s3s__sigv4_result res;
    s3s__sigv4_result_init(&res);
    assert_int_equal(s3s__sigv4_sign_header(&res, NULL, &cr, "us-east-1", "s3", "2013", &r),
                     S3S_EINVAL);
    assert_int_equal(
        s3s__sigv4_sign_header(&res, NULL, &cr, "us-east-1", "s3", "20130524X000000Z", &r),
        S3S_EINVAL);
    cr.secret_access_key = NULL;
    assert_int_equal(
        s3s__sigv4_sign_header(&res, NULL, &cr, "us-east-1", "s3", "20130524T000000Z", &r),
        S3S_EINVAL);
    s3s__sigv4_result_fini(&res);
    char d[17];
    s3s__sigv4_amz_date(1440938160, d);
    assert_string_equal(d, "20150830T123600Z");
}

static void test_rawreq_errors(void **state)
{
    (void)state;
    s3s__rawreq r;
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    assert_int_equal(s3s__rawreq_parse(&r, "", 0, &eb), S3S_EPARSE);
    assert_int_equal(s3s__rawreq_parse(&r, "GET / HTTP/1.1\nno colon here\n", 30, &eb), S3S_EPARSE);
    assert_non_null(strstr(eb.msg, "line 2"));
    assert_int_equal(s3s__rawreq_parse(&r, "GET\n", 4, &eb), S3S_EPARSE);
    /* Target with raw spaces runs to the last space. */
    const char *req = "GET /a b c?x=1 y HTTP/1.1\nHost: h\n  folded\n\nbody\n";
    assert_int_equal(s3s__rawreq_parse(&r, req, strlen(req), &eb), 0);
    assert_string_equal(r.path, "/a b c");
    assert_string_equal(r.query, "x=1 y");
    assert_string_equal(s3s__rawreq_header(&r, "HOST"), "h,folded");
    assert_int_equal(r.body_len, 5);
    s3s__rawreq_fini(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_ordering),
        cmocka_unit_test(test_query_empty_values),
        cmocka_unit_test(test_query_encoding),
        cmocka_unit_test(test_path_encoding),
        cmocka_unit_test(test_path_normalization_off),
        cmocka_unit_test(test_path_normalization_on),
        cmocka_unit_test(test_header_trim_and_join),
        cmocka_unit_test(test_pct_roundtrip),
        cmocka_unit_test(test_aws_suite),
        cmocka_unit_test(test_s3_get_object_range),
        cmocka_unit_test(test_s3_put_object),
        cmocka_unit_test(test_s3_get_lifecycle),
        cmocka_unit_test(test_s3_list_objects),
        cmocka_unit_test(test_s3_presigned_url),
        cmocka_unit_test(test_presign_session_token_and_query),
        cmocka_unit_test(test_unsigned_payload_header),
        cmocka_unit_test(test_signing_key_cache),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_rawreq_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
