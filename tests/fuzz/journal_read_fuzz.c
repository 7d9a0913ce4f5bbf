/* journal_read_fuzz.c: libFuzzer target for journal recovery: the scan of a
 * whole journal image (header, framing, checksums, record payloads, torn-tail
 * and corruption classification), with and without repair. Whatever the
 * bytes, the scan ends, never reads past them, and a replay that succeeds
 * never reports more good bytes than the input has. Seeds:
 * tests/fuzz/corpus/journal_read_fuzz/ (written by journal_test with
 * S3SHARD_WRITE_CORPUS=DIR). */
#include "common/journal/journal.h"
#include "s3shard/error.h"

#include <stdint.h>
#include <stdlib.h>

static int count(void *arg, const s3s__jrec *r, uint64_t off)
{
    (void)r;
    (void)off;
    (*(uint64_t *)arg)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int repair = 0; repair < 2; repair++) {
        uint64_t n = 0;
        s3s__journal_report rep;
        s3s__errbuf eb;
        int rc = s3s__journal_scan(data, size, NULL, NULL, 4096, repair, count, &n, &rep, &eb);
        if (rc == 0 &&
            (rep.good_end > size || rep.records != n ||
             (rep.cut && repair == 0 && rep.next_good != 0)))
            abort();
    }
    return 0;
}
