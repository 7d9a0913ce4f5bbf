/* xml.h: the S3 XML replies we read, parsed with expat.
 *
 * A generic walker hands each element's path ("ListBucketResult/Contents/Key")
 * and text to a callback; the readers below build on it. Every reader fails
 * with S3S_EPARSE and "XML line L column C: why" for malformed input (DOCTYPEs
 * are refused outright, so no entity expansion), S3S_ETOOBIG past the caps,
 * and never crashes on any input (fuzzed: tests/fuzz/s3_xml_fuzz.c). */
#ifndef S3S_S3_XML_H
#define S3S_S3_XML_H

#include <stddef.h>
#include <stdint.h>

#include "common/util/errbuf.h"

#define S3S_XML_MAX_TEXT (64u << 10) /* per element */
#define S3S_XML_MAX_DEPTH 32
#define S3S_XML_MAX_ENTRIES 100000 /* per list page (S3 sends at most 1000) */

/* s3s__xml_end_cb is called at each element end. path is '/'-joined from the
 * root; text is the element's own character data (NUL-terminated). Return 0
 * to go on or an S3S_E* code to stop (after setting eb). */
typedef int (*s3s__xml_end_cb)(void *ud, const char *path, const char *text, size_t len,
                               s3s__errbuf *eb);
int s3s__xml_walk(const char *xml, size_t len, s3s__xml_end_cb cb, void *ud, s3s__errbuf *eb);

typedef struct s3s__list_entry {
    char *key;
    uint64_t size;
    char etag[72]; /* without quotes */
    int64_t mtime;
} s3s__list_entry;

/* One ListObjectsV2 page. Keys and prefixes are already URL-decoded when the
 * reply says EncodingType=url. */
typedef struct s3s__list_page {
    s3s__list_entry *items;
    size_t n, cap;
    char **prefixes; /* CommonPrefixes (with a delimiter) */
    size_t nprefixes, pcap;
    int truncated;
    char *next_token; /* NULL when absent */
    int url_encoded;
} s3s__list_page;

int s3s__xml_parse_list(s3s__list_page *out, const char *xml, size_t len, s3s__errbuf *eb);
void s3s__list_page_fini(s3s__list_page *p);

/* An S3 <Error> body. */
typedef struct s3s__xml_error {
    char code[128];
    char message[512];
} s3s__xml_error;

/* s3s__xml_parse_error reads an <Error> document; returns 0 (fields may be
 * empty when absent) or S3S_EPARSE. */
int s3s__xml_parse_error(s3s__xml_error *out, const char *xml, size_t len, s3s__errbuf *eb);

/* s3s__xml_parse_upload_id reads InitiateMultipartUploadResult/UploadId into
 * *out (heap). S3S_EPARSE when missing. */
int s3s__xml_parse_upload_id(char **out, const char *xml, size_t len, s3s__errbuf *eb);

/* s3s__xml_parse_complete reads CompleteMultipartUploadResult/ETag. A 200
 * reply can still be an <Error> document: then S3S_EHTTP with its code and
 * message in eb. */
int s3s__xml_parse_complete(char etag[72], const char *xml, size_t len, s3s__errbuf *eb);

/* s3s__iso8601_parse turns "2009-10-12T17:50:30.000Z" into seconds since the
 * epoch; returns 0 for anything it cannot read. */
int64_t s3s__iso8601_parse(const char *s);
/* s3s__etag_copy strips quotes (and &quot; leftovers) into out (72 bytes). */
void s3s__etag_copy(char out[72], const char *s, size_t n);

#endif
