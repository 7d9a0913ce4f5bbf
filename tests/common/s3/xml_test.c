/* xml_test.c: S3 XML replies: list pages (pagination fields, url encoding,
 * prefixes), error bodies, multipart results, and malformed input. */
#include "tests/support/testenv.h"

#include "common/s3/xml.h"
#include "s3shard/error.h"

#include <stdio.h>
#include <string.h>

#define PAGE                                                                                       \
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                                                 \
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"                         \
    "<Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>"               \
    "<IsTruncated>true</IsTruncated>"                                                              \
    "<Contents><Key>p/a</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>"                \
    "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"                 \
    "<StorageClass>STANDARD</StorageClass></Contents>"                                             \
    "<Contents><Key>p/b &amp; c</Key><ETag>\"x\"</ETag><Size>0</Size></Contents>"                  \
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>" \
    "</ListBucketResult>"

static void test_list_page(void **state)
{
    (void)state;
    s3s__list_page p;
    s3s__errbuf eb;
    assert_int_equal(s3s__xml_parse_list(&p, PAGE, strlen(PAGE), &eb), 0);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.items[0].key, "p/a");
    assert_int_equal(p.items[0].size, 434234);
    assert_string_equal(p.items[0].etag, "fba9dede5f27731c9771645a39863328");
    assert_int_equal(p.items[0].mtime, 1255369830);
    assert_string_equal(p.items[1].key, "p/b & c");
    assert_string_equal(p.items[1].etag, "x");
    assert_true(p.truncated);
    assert_string_equal(p.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    s3s__list_page_fini(&p);
}

static void test_list_url_encoding_and_prefixes(void **state)
{
    (void)state;
    const char *x = "<ListBucketResult><IsTruncated>false</IsTruncated>"
                    "<Contents><Key>a%20b%2Bc+d%E1%88%B4</Key><Size>1</Size></Contents>"
                    "<CommonPrefixes><Prefix>dir%3F/</Prefix></CommonPrefixes>"
                    "<EncodingType>url</EncodingType></ListBucketResult>";
    s3s__list_page p;
    s3s__errbuf eb;
    assert_int_equal(s3s__xml_parse_list(&p, x, strlen(x), &eb), 0);
    assert_string_equal(p.items[0].key, "a b+c d\xe1\x88\xb4");
    assert_int_equal(p.nprefixes, 1);
    assert_string_equal(p.prefixes[0], "dir?/");
    assert_false(p.truncated);
    assert_null(p.next_token);
    s3s__list_page_fini(&p);
    /* Without EncodingType the keys are taken as they are. */
    const char *y = "<ListBucketResult><Contents><Key>100%+x</Key><Size>1</Size></Contents>"
                    "</ListBucketResult>";
    assert_int_equal(s3s__xml_parse_list(&p, y, strlen(y), &eb), 0);
    assert_string_equal(p.items[0].key, "100%+x");
    s3s__list_page_fini(&p);
}

static void expect_parse_error(const char *x, const char *what)
{
    s3s__list_page p;
    s3s__errbuf eb;
    s3s__err_clear(&eb);
    int rc = s3s__xml_parse_list(&p, x, strlen(x), &eb);
    if (rc == 0)
        fail_msg("accepted: %s", x);
    if (strstr(eb.msg, what) == NULL)
        fail_msg("message '%s' lacks '%s'", eb.msg, what);
    assert_null(p.items);
}

static void test_malformed(void **state)
{
    (void)state;
    expect_parse_error("", "XML line 1");
    expect_parse_error("<ListBucketResult><Contents><Key>a</Key>", "XML line 1 column");
    expect_parse_error("<ListBucketResult>\n<Contents><Key>a</Kez></Contents>", "XML line 2");
    expect_parse_error("<Error><Code>x</Code></Error>", "expected a ListBucketResult");
    expect_parse_error("<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
                       "without <Key>");
    expect_parse_error(
        "<ListBucketResult><Contents><Key>a</Key><Size>-1</Size></Contents></ListBucketResult>",
        "bad <Size>");
    expect_parse_error(
        "<ListBucketResult><Contents><Key>a</Key><Size>99999999999999999999999</Size></Contents>"
        "</ListBucketResult>",
        "bad <Size>");
    expect_parse_error("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
                       "without NextContinuationToken");
    expect_parse_error("<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
                       "IsTruncated");
    expect_parse_error("<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\">]>"
                       "<ListBucketResult>&a;</ListBucketResult>",
                       "DOCTYPE");
    expect_parse_error("<ListBucketResult><Contents><Key>\xff\xfe</Key></Contents>"
                       "</ListBucketResult>",
                       "XML line 1");
    /* Too deep. */
    char deep[2000] = "<ListBucketResult>";
    for (int i = 0; i < 40; i++)
        strcat(deep, "<a>");
    expect_parse_error(deep, "nested deeper");
    /* A key past the text cap. */
    size_t n = S3S_XML_MAX_TEXT + 100;
    char *big = malloc(n + 100);
    strcpy(big, "<ListBucketResult><Contents><Key>");
    memset(big + strlen(big), 'k', n);
    big[33 + n] = '\0';
    strcat(big, "</Key></Contents></ListBucketResult>");
    expect_parse_error(big, "longer than");
    free(big);
}

static void test_error_body(void **state)
{
    (void)state;
    const char *x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
                    "<Message>The resource you requested does not exist</Message>"
                    "<Resource>/mybucket/myfoto.jpg</Resource><RequestId>4442587FB7D0A2F9"
                    "</RequestId></Error>";
    s3s__xml_error e;
    s3s__errbuf eb;
    assert_int_equal(s3s__xml_parse_error(&e, x, strlen(x), &eb), 0);
    assert_string_equal(e.code, "NoSuchKey");
    assert_string_equal(e.message, "The resource you requested does not exist");
    assert_int_equal(s3s__xml_parse_error(&e, "<Error><Code>", 13, &eb), S3S_EPARSE);
    assert_int_equal(s3s__xml_parse_error(&e, "not xml", 7, &eb), S3S_EPARSE);
}

static void test_multipart_results(void **state)
{
    (void)state;
    const char *init = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                       "<UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA"
                       "</UploadId></InitiateMultipartUploadResult>";
    char *id = NULL;
    s3s__errbuf eb;
    assert_int_equal(s3s__xml_parse_upload_id(&id, init, strlen(init), &eb), 0);
    assert_string_equal(id, "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA");
    free(id);
    assert_int_equal(s3s__xml_parse_upload_id(&id, "<X/>", 4, &eb), S3S_EPARSE);
    const char *done = "<CompleteMultipartUploadResult><Location>l</Location>"
                       "<ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag>"
                       "</CompleteMultipartUploadResult>";
    char etag[72];
    assert_int_equal(s3s__xml_parse_complete(etag, done, strlen(done), &eb), 0);
    assert_string_equal(etag, "3858f62230ac3c915f300c664312c11f-9");
    /* A 200 reply that is an error after all. */
    const char *err = "<Error><Code>InternalError</Code><Message>We encountered an internal "
                      "error. Please try again.</Message></Error>";
    s3s__err_clear(&eb);
    assert_int_equal(s3s__xml_parse_complete(etag, err, strlen(err), &eb), S3S_EHTTP);
    assert_non_null(strstr(eb.msg, "InternalError"));
}

static void test_helpers(void **state)
{
    (void)state;
    assert_int_equal(s3s__iso8601_parse("1970-01-01T00:00:00.000Z"), 0);
    assert_int_equal(s3s__iso8601_parse("2024-02-29T00:00:00Z"), 1709164800);
    assert_int_equal(s3s__iso8601_parse("garbage"), 0);
    assert_int_equal(s3s__iso8601_parse("2024-13-01T00:00:00Z"), 0);
    char e[72];
    s3s__etag_copy(e, "\"abc\"", 5);
    assert_string_equal(e, "abc");
    s3s__etag_copy(e, "abc", 3);
    assert_string_equal(e, "abc");
    s3s__etag_copy(e, "\"", 1);
    assert_string_equal(e, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_page),
        cmocka_unit_test(test_list_url_encoding_and_prefixes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_multipart_results),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
