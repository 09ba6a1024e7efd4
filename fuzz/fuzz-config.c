/* fuzz-config — the examples' config JSON (ex_config_load_json against the trainer's real key
 * table: flattening of nested objects, every key type, ranges, enums, int lists), then the
 * effective config printed back and reloaded. */
#include "fuzz_util.h"

#include "ex_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int32_t nk = 0;
    const ex_cfg_key *keys = ex_trainer_keys(&nk);
    ex_config c;
    if (ex_config_init(&c, keys, nk) != SEGRL_OK) abort();
    char *s = fz_cstr(data, size);
    if (ex_config_load_json(&c, s, "fuzz.json") == SEGRL_OK) {
        /* the effective config, saved and loaded again, is the same config */
        char *j = ex_config_to_json(&c);
        if (!j) abort();
        ex_config c2;
        if (ex_config_init(&c2, keys, nk) != SEGRL_OK) abort();
        if (ex_config_load_json(&c2, j, "saved.json") != SEGRL_OK) {
            fprintf(stderr, "reload failed: %s\n%s\n", segrl_last_error(), j);
            abort();
        }
        char *j2 = ex_config_to_json(&c2);
        if (!j2 || strcmp(j, j2) != 0) {
            fprintf(stderr, "round trip differs:\n%s\n%s\n", j, j2 ? j2 : "(null)");
            abort();
        }
        free(j2);
        free(j);
        ex_config_free(&c2);
    } else {
        (void)ex_config_error(&c);
    }
    /* the first line as a command-line override too */
    char *nl = strchr(s, '\n');
    if (nl) {
        *nl = '\0';
        char *eq = strchr(s, '=');
        if (eq) {
            *eq = '\0';
            (void)ex_config_set(&c, s, eq + 1, EX_CFG_FROM_FLAG);
        }
    }
    free(s);
    ex_config_free(&c);
    return 0;
}
