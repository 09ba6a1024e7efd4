/* fuzz-safetensors — segrl_safetensors_open on arbitrary files (header parser and every check
 * against the file size), then every accessor on what it accepted. */
#include "fuzz_util.h"

#include <segrl/safetensors.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fz_file("st", data, size);
    segrl_safetensors *st = NULL;
    if (segrl_safetensors_open(path, &st) == SEGRL_OK) {
        int64_t n = segrl_safetensors_count(st);
        for (int64_t i = 0; i < n; i++) {
            segrl_st_tensor t;
            if (segrl_safetensors_get(st, i, &t) != SEGRL_OK) abort();
            if (segrl_safetensors_index(st, t.name) < 0) abort();
            /* every accepted tensor's bytes are readable */
            volatile uint8_t acc = 0;
            for (size_t k = 0; k < t.nbytes; k += 97) acc ^= ((const uint8_t *)t.data)[k];
            if (t.nbytes) acc ^= ((const uint8_t *)t.data)[t.nbytes - 1];
            (void)acc;
        }
        int64_t m = segrl_safetensors_metadata_count(st);
        for (int64_t i = 0; i < m; i++) {
            const char *k = NULL, *v = NULL;
            if (segrl_safetensors_metadata_at(st, i, &k, &v) != SEGRL_OK) abort();
            if (segrl_safetensors_metadata(st, k) == NULL) abort();
        }
        segrl_safetensors_close(st);
    }
    unlink(path);
    return 0;
}
