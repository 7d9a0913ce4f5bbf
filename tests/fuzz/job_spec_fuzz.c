/* job_spec_fuzz.c: libFuzzer target for the job spec parser. A spec that
 * parses must print resolved and parse again to the same text. */
#include "s3shard/dataset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s3s_job *job = NULL, *again = NULL;
    s3s_errinfo e = {0};
    if (s3s_job_parse(&job, (const char *)data, size, "fuzz.json", &e) != 0)
        return 0;
    char *a = NULL, *b = NULL;
    if (s3s_job_to_json(job, &a, &e) != 0)
        abort();
    if (s3s_job_parse(&again, a, strlen(a), "resolved", &e) != 0)
        abort();
    if (s3s_job_to_json(again, &b, &e) != 0 || strcmp(a, b) != 0)
        abort();
    free(a);
    free(b);
    s3s_job_destroy(again);
    s3s_job_destroy(job);
    return 0;
}
