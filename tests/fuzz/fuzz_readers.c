/*
 * fuzz_readers.c - libFuzzer target: every reader (scripts/fuzz). The first byte picks
 * the reader, the rest (up to 1 MiB) is the body. Any crash, leak or sanitizer report
 * is a defect; problems in the payload are the expected outcome.
 */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "hibus/readers.h"
#include "hibus/report.h"

static const char *const readers[] = {"lmis-report", "openlmis-requisition", "dhis2-json",
                                      "dhis2-csv", "adx"};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    reader_global_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1 << 20) + 1)
        return 0;
    const char *name = readers[data[0] % (sizeof readers / sizeof readers[0])];
    json_t *problems = json_array();
    struct report *r = NULL;
    if (reader_parse(name, data + 1, size - 1, &r, problems) == 0)
        report_free(r);
    json_decref(problems);
    return 0;
}
