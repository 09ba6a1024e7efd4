/* fuzz-jsonl — the examples' GSM8K/MATH JSONL loader (ex_dataset_load on a scratch file, each
 * format, strict and skip_bad), and its text helpers: ex_gsm8k_final_answer, ex_math_last_boxed,
 * ex_utf8_sanitize. */
#include "fuzz_util.h"

#include "ex_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_file("jsonl", data, size);
    for (int fmt = 0; fmt < 3; fmt++) {
        for (int skip = 0; skip < 2; skip++) {
            ex_dataset d;
            memset(&d, 0xA5, sizeof d);
            if (ex_dataset_load(path, (ex_data_format)fmt, skip, &d) == SEGRL_OK) {
                if (d.n <= 0) abort(); /* "no problems at all" is an error */
                for (int64_t i = 0; i < d.n; i++)
                    if (!d.items[i].question || !d.items[i].reference) abort();
                ex_dataset_free(&d);
            }
        }
    }
    unlink(path);

    char *s = fz_cstr(data, size);
    free(ex_gsm8k_final_answer(s));
    free(ex_math_last_boxed(s));
    size_t len = 0;
    int64_t fixed = 0;
    char *u = ex_utf8_sanitize((const char *)data, size, &len, &fixed);
    if (!u || strlen(u) > len) abort();
    /* sanitizing valid UTF-8 changes nothing */
    char *u2 = ex_utf8_sanitize(u, len, NULL, &fixed);
    if (!u2 || fixed != 0 || memcmp(u, u2, len) != 0) abort();
    free(u2);
    free(u);
    free(s);
    return 0;
}
