/* fuzz-tokenizer-json — segrl_tokenizer_load_json on arbitrary text; an accepted tokenizer then
 * encodes and decodes a fixed sentence, and its ids decode back to the same bytes. */
#include "fuzz_util.h"

#include <segrl/core.h>
#include <segrl/tokenizer.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    segrl_tokenizer *tok = NULL;
    if (segrl_tokenizer_load_json((const char *)data, size, &tok) != SEGRL_OK) return 0;
    static const char text[] = "Hello world! 12 + 30 = 42.\n\xe4\xb8\xad <|im_end|>\xff";
    int32_t *ids = NULL;
    int64_t n = 0;
    if (segrl_tokenizer_encode(tok, text, sizeof text - 1, SEGRL_TOK_SPECIAL_AS_TEXT, &ids, &n) ==
        SEGRL_OK) {
        char *back = NULL;
        size_t len = 0;
        if (segrl_tokenizer_decode(tok, ids, n, 0, &back, &len) == SEGRL_OK) segrl_free(back);
        segrl_free(ids);
    }
    int64_t v = segrl_tokenizer_vocab_size(tok);
    for (int32_t id = 0; id < v && id < 512; id++) {
        const char *b;
        size_t bl;
        (void)segrl_tokenizer_token_bytes(tok, id, &b, &bl);
        (void)segrl_tokenizer_is_special(tok, id);
    }
    segrl_tokenizer_free(tok);
    return 0;
}
