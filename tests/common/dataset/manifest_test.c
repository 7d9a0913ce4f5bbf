/* manifest_test.c: ManifestFile and AugmentedManifestFile parsing, with the
 * file:line:column of every malformed input, the caps and SkipBadRecords. */
#include "tests/support/testenv.h"

#include "common/dataset/manifest.h"
#include "s3shard/error.h"

#include <stdio.h>
#include <string.h>

typedef struct got {
    char items[16][256];
    size_t lines[16];
    size_t n;
} got;

static int on_item(void *ud, const char *s, size_t len, size_t line)
{
    got *g = ud;
    if (g->n >= 16 || len >= 256)
        return S3S_ETOOBIG;
    memcpy(g->items[g->n], s, len);
    g->items[g->n][len] = '\0';
    g->lines[g->n++] = line;
    return 0;
}

static int man(const char *text, got *g, s3s_errinfo *e, int skip, size_t *skipped)
{
    char *b = NULL, *p = NULL;
    memset(g, 0, sizeof(*g));
    memset(e, 0, sizeof(*e));
    int rc = s3s__manifest_parse(text, strlen(text), "m.json", 1 << 20, skip, on_item, g, &b, &p,
                                 skipped, e);
    if (rc == 0) {
        assert_string_equal(b, "bkt");
    }
    free(b);
    free(p);
    return rc;
}

static void expect_err(const char *text, int code, const char *want)
{
    got g;
    s3s_errinfo e;
    int rc = man(text, &g, &e, 0, NULL);
    if (rc != code || strstr(e.msg, want) == NULL)
        fprintf(stderr, "rc %d msg: %s\nwanted %d: %s\n", rc, e.msg, code, want);
    assert_int_equal(rc, code);
    assert_non_null(strstr(e.msg, want));
}

static void test_manifest_ok(void **state)
{
    (void)state;
    got g;
    s3s_errinfo e;
    assert_int_equal(man("[{\"prefix\": \"s3://bkt/data/\"},\n \"a.jpg\",\n \"sub/b\\u00e9.jpg\","
                         " \"a.jpg\"]\n",
                         &g, &e, 0, NULL),
                     0);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.items[0], "data/a.jpg");
    assert_string_equal(g.items[1], "data/sub/b\xc3\xa9.jpg");
    assert_string_equal(g.items[2], "data/a.jpg"); /* repeats kept, in order */
    assert_int_equal(g.lines[0], 2);
    assert_int_equal(g.lines[1], 3);
    assert_int_equal(man("[{\"prefix\": \"s3://bkt/\"}]", &g, &e, 0, NULL), 0);
    assert_int_equal(g.n, 0); /* prefix only: an empty dataset */
}

static void test_manifest_errors(void **state)
{
    (void)state;
    expect_err("", S3S_EPARSE, "m.json:1:1: expected '['");
    expect_err("  {\"prefix\": \"s3://bkt/\"}", S3S_EPARSE, "m.json:1:3: expected '['");
    expect_err("[]", S3S_EPARSE, "m.json:1:2: empty manifest");
    expect_err("[\"a\", \"b\"]", S3S_EPARSE, "m.json:1:2: expected {\"prefix\"");
    expect_err("[{\"prefix\": \"s3://bkt/\", \"x\": 1}]", S3S_EPARSE, "expected {\"prefix\"");
    expect_err("[{\"prefix\": \"http://bkt/\"}]", S3S_EPARSE, "manifest prefix: expected an s3://");
    expect_err("[{\"prefix\": \"s3://bkt/p/\"},\n  \"s3://other/k\"]", S3S_EPARSE,
               "m.json:2:3: manifest element 1: expected a key relative to the prefix");
    expect_err("[{\"prefix\": \"s3://bkt/p/\"},\n  \"a\",\n    7]", S3S_EPARSE,
               "m.json:3:5: manifest element 2: expected a string");
    expect_err("[{\"prefix\": \"s3://bkt/p/\"}, \"\"]", S3S_EPARSE, "expected a non-empty key");
    expect_err("[{\"prefix\": \"s3://bkt/p/\"},\n \"a\" \"b\"]", S3S_EPARSE,
               "m.json:2:6: expected ',' or ']' after manifest element 1");
    expect_err("[{\"prefix\": \"s3://bkt/p/\"}, \"a\"", S3S_EPARSE, "found the end of the file");
    expect_err("[{\"prefix\": \"s3://bkt/p/\"}, \"a\"] x", S3S_EPARSE,
               "expected the end of the file after");
    expect_err("[{\"prefix\": \"s3://bkt/p/\"},\n \"unterminated]", S3S_EPARSE, "m.json:2:");
    expect_err("[{\"prefix\": \"s3://bkt/p/\"}, \"a\\u0000b\"]", S3S_EPARSE, "NUL");
}

static void test_manifest_skip_and_cap(void **state)
{
    (void)state;
    got g;
    s3s_errinfo e;
    size_t skipped = 0;
    assert_int_equal(man("[{\"prefix\": \"s3://bkt/p/\"}, 1, \"a\", null, \"s3://x/y\", \"b\"]", &g,
                         &e, 1, &skipped),
                     0);
    assert_int_equal(g.n, 2);
    assert_int_equal(skipped, 3);
    /* an element past the cap */
    char *big = malloc(5000);
    strcpy(big, "[{\"prefix\": \"s3://bkt/p/\"}, \"");
    memset(big + strlen(big), 'k', 3000);
    strcpy(big + 3029, "\"]");
    char *b = NULL, *p = NULL;
    memset(&g, 0, sizeof(g));
    assert_int_equal(
        s3s__manifest_parse(big, strlen(big), "m.json", 1000, 0, on_item, &g, &b, &p, NULL, &e),
        S3S_ETOOBIG);
    assert_non_null(strstr(e.msg, "over the cap of 1000"));
    free(b);
    free(p);
    free(big);
}

static const char *const attrs[] = {"source-ref", "class"};

static int aug(const char *text, got *g, s3s_errinfo *e, uint64_t cap, int skip, size_t *skipped)
{
    memset(g, 0, sizeof(*g));
    memset(e, 0, sizeof(*e));
    return s3s__augmented_parse(text, strlen(text), "a.jsonl", attrs, 2, cap, skip, on_item, g,
                                skipped, e);
}

static void test_augmented(void **state)
{
    (void)state;
    got g;
    s3s_errinfo e;
    size_t skipped = 0;
    assert_int_equal(aug("{\"class\": 1, \"x\": 2, \"source-ref\": \"s3://bkt/a.jpg\"}\n\n"
                         "  {\"source-ref\": \"s3://bkt/b.jpg\", \"class\": {\"k\": [1]}}\r\n",
                         &g, &e, 1 << 20, 0, NULL),
                     0);
    assert_int_equal(g.n, 2);
    /* attributes in AttributeNames order, others dropped */
    assert_string_equal(g.items[0], "{\"source-ref\":\"s3://bkt/a.jpg\",\"class\":1}");
    assert_string_equal(g.items[1], "{\"source-ref\":\"s3://bkt/b.jpg\",\"class\":{\"k\":[1]}}");
    assert_int_equal(g.lines[1], 3);
    assert_int_equal(aug("{\"class\": 1}\n", &g, &e, 1 << 20, 0, NULL), S3S_EPARSE);
    assert_non_null(strstr(e.msg, "a.jsonl:1:1: attribute \"source-ref\" missing"));
    assert_int_equal(aug("{\"source-ref\": \"s3://bkt/a\", \"class\": 1}\n{\"source-ref\": "
                         "\"s3://bkt/b\", \"class\": 1,}\n",
                         &g, &e, 1 << 20, 0, NULL),
                     S3S_EPARSE);
    assert_non_null(strstr(e.msg, "a.jsonl:2:"));
    assert_non_null(strstr(e.msg, "invalid JSON"));
    assert_int_equal(aug("[1]\n", &g, &e, 1 << 20, 0, NULL), S3S_EPARSE);
    assert_non_null(strstr(e.msg, "expected a JSON object"));
    assert_int_equal(
        aug("{\"source-ref\": \"/local/a\", \"class\": 1}\n", &g, &e, 1 << 20, 0, NULL),
        S3S_EPARSE);
    assert_non_null(strstr(e.msg, "attribute \"source-ref\": expected an s3://"));
    assert_int_equal(aug("{\"source-ref\": 5, \"class\": 1}\n", &g, &e, 1 << 20, 0, NULL),
                     S3S_EPARSE);
    assert_int_equal(
        aug("{\"source-ref\": \"s3://bkt/\", \"class\": 1}\n", &g, &e, 1 << 20, 0, NULL),
        S3S_EPARSE);
    /* skipping, when asked */
    assert_int_equal(aug("{\"class\": 1}\nnot json\n{\"source-ref\": \"s3://bkt/a\", \"class\": 1}",
                         &g, &e, 1 << 20, 1, &skipped),
                     0);
    assert_int_equal(g.n, 1);
    assert_int_equal(skipped, 2);
}

static void test_augmented_long_line(void **state)
{
    (void)state;
    /* a 50 MB line against the default 8 MiB cap: an error naming the line */
    size_t n = 50u << 20;
    char *big = malloc(n + 64);
    strcpy(big, "{\"source-ref\": \"s3://bkt/a\", \"class\": 1}\n{\"class\": \"");
    size_t at = strlen(big);
    memset(big + at, 'x', n);
    strcpy(big + at + n, "\"}\n");
    got g;
    s3s_errinfo e;
    size_t skipped = 0;
    assert_int_equal(aug(big, &g, &e, 8u << 20, 0, NULL), S3S_ETOOBIG);
    assert_non_null(strstr(e.msg, "a.jsonl:2:1: line is"));
    assert_non_null(strstr(e.msg, "over the cap of 8388608"));
    assert_int_equal(aug(big, &g, &e, 8u << 20, 1, &skipped), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(skipped, 1);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_ok),           cmocka_unit_test(test_manifest_errors),
        cmocka_unit_test(test_manifest_skip_and_cap), cmocka_unit_test(test_augmented),
        cmocka_unit_test(test_augmented_long_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
