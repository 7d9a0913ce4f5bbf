/* s3_xml_fuzz.c: libFuzzer target for every S3 XML reader (list pages, error
 * bodies, multipart results). The first byte picks the reader. */
#include "common/s3/xml.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *xml = (const char *)data + 1;
    size_t len = size - 1;
    s3s__errbuf eb;
    switch (data[0] % 4) {
    case 0: {
        s3s__list_page p;
        if (s3s__xml_parse_list(&p, xml, len, &eb) == 0)
            s3s__list_page_fini(&p);
        break;
    }
    case 1: {
        s3s__xml_error e;
        s3s__xml_parse_error(&e, xml, len, &eb);
        break;
    }
    case 2: {
        char *id = NULL;
        if (s3s__xml_parse_upload_id(&id, xml, len, &eb) == 0)
            free(id);
        break;
    }
    default: {
        char etag[72];
        s3s__xml_parse_complete(etag, xml, len, &eb);
        break;
    }
    }
    return 0;
}
