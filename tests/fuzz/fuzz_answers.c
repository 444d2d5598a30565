/*
 * fuzz_answers.c - libFuzzer target: what targets send back (scripts/fuzz). The first
 * byte picks the parser: a DHIS2 import summary (either shape), or an OpenHIM mediator
 * answer (application/json+openhim) as delivery unwraps it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hibus/alloc.h"
#include "hibus/delivery.h"
#include "hibus/dhis2.h"
#include "hibus/mediator.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1 << 20) + 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] & 1) {
        struct dhis2_summary s;
        struct hibus_error err = {0};
        memset(&s, 0, sizeof s);
        if (dhis2_parse_summary(body, len, &s, &err) == HIBUS_OK) {
            json_decref(dhis2_summary_json(&s));
            (void)dhis2_outcome(200, &s);
            (void)dhis2_rejected_count(&s);
            dhis2_summary_free(&s);
        }
    } else {
        struct delivery_route_result rr;
        memset(&rr, 0, sizeof rr);
        rr.resp.status = 200;
        rr.resp.body = hibus_xmalloc(len + 1);
        memcpy(rr.resp.body, body, len);
        rr.resp.body[len] = '\0';
        rr.resp.body_len = len;
        delivery_openhim_unwrap(&rr);
        mediator_response_free(&rr.resp);
        if (rr.unwrapped)
            mediator_response_free(&rr.answer);
        json_decref(rr.details);
        free(rr.error);
    }
    return 0;
}
