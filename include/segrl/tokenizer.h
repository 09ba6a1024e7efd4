/* segrl/tokenizer.h — byte-level BPE tokenizers from Hugging Face tokenizer.json files (GPT-2,
 * Qwen2, Llama 3), chat templates without a template engine, and a small BPE trainer.
 *
 * Byte-level BPE (Radford et al. 2019, "Language Models are Unsupervised Multitask Learners",
 * section 2.2; Sennrich et al. 2016, arXiv 1508.07909): text is split into pieces by a regular
 * expression, each piece's bytes start as one symbol per byte, and the merge list is applied
 * lowest rank first (leftmost first among equal ranks) until no adjacent pair has a merge. Every
 * byte has a token, so every byte string encodes and decodes back to itself.
 *
 * Supported tokenizer.json: model.type "BPE" (vocab; merges as "a b" strings or [a, b] arrays;
 * ignore_merges; unk_token), added_tokens (special, lstrip, rstrip, single_word), pre_tokenizer
 * ByteLevel (use_regex: the GPT-2 regex; add_prefix_space) or Sequence of Split (Regex or String
 * pattern, behavior Isolated, invert false) and ByteLevel steps, decoder ByteLevel. Split regexes
 * run in PCRE2 with Unicode properties; input that is not valid UTF-8 is still encoded (its
 * invalid bytes become pieces of their own) and round-trips. The NFC normalizer (Qwen2) is
 * accepted but not applied: text is taken as given (see docs/tokenizer.md). Other normalizers,
 * pre-tokenizers and models give SEGRL_ERR_UNSUPPORTED naming the field.
 *
 * A loaded tokenizer is read-only: one handle may encode and decode from many threads at once. */
#ifndef SEGRL_TOKENIZER_H
#define SEGRL_TOKENIZER_H

#include "segrl/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct segrl_tokenizer segrl_tokenizer;

/* Loads a tokenizer.json file, or "<path>/tokenizer.json" when `path` is a directory. *out is
 * written only on success; free with segrl_tokenizer_free. Errors: SEGRL_ERR_INVALID (path, bad
 * JSON, a bad field: the message names it), SEGRL_ERR_UNSUPPORTED, SEGRL_ERR_ALLOC. */
SEGRL_API segrl_status segrl_tokenizer_load(const char *path, segrl_tokenizer **out);
/* The same from the file's text (`len` bytes, need not be NUL-terminated). */
SEGRL_API segrl_status segrl_tokenizer_load_json(const char *json, size_t len,
                                                 segrl_tokenizer **out);
/* NULL does nothing. */
SEGRL_API void segrl_tokenizer_free(segrl_tokenizer *tok);

/* Largest token id + 1 (vocab and added tokens); 0 for NULL. */
SEGRL_API int64_t segrl_tokenizer_vocab_size(const segrl_tokenizer *tok);

/* Flags for encode and decode. */
typedef enum segrl_tok_flags {
    /* encode: special added tokens written in the text are plain text (HF's
     * split_special_tokens / encode_special_tokens); default: recognised, like HF's encode */
    SEGRL_TOK_SPECIAL_AS_TEXT = 1,
    /* decode: leave out special added tokens (HF's skip_special_tokens) */
    SEGRL_TOK_SKIP_SPECIAL = 2,
} segrl_tok_flags;

/* Encodes `len` bytes of `text` (any bytes; NULs included). No BOS/EOS is added (HF's
 * add_special_tokens=False). *out_ids: a new array of *out_n ids allocated with segrl_malloc
 * (free with segrl_free; may be NULL when *out_n is 0). */
SEGRL_API segrl_status segrl_tokenizer_encode(const segrl_tokenizer *tok, const char *text,
                                              size_t len, uint32_t flags, int32_t **out_ids,
                                              int64_t *out_n);

/* Decodes ids to bytes. *out_text: new, NUL-terminated, *out_len bytes without the NUL
 * (segrl_free). May be invalid UTF-8 when the ids cut a character. An id outside
 * [0, vocab_size) or without a token is SEGRL_ERR_INVALID naming its position. */
SEGRL_API segrl_status segrl_tokenizer_decode(const segrl_tokenizer *tok, const int32_t *ids,
                                              int64_t n, uint32_t flags, char **out_text,
                                              size_t *out_len);

/* The id of a token given as written in tokenizer.json (an added token's content such as
 * "<|im_end|>", or a vocab key such as "Ġthe"); -1 when there is none. */
SEGRL_API int32_t segrl_tokenizer_token_id(const segrl_tokenizer *tok, const char *token);
/* The bytes one token decodes to (borrowed, valid until free; not NUL-terminated). */
SEGRL_API segrl_status segrl_tokenizer_token_bytes(const segrl_tokenizer *tok, int32_t id,
                                                   const char **out_bytes, size_t *out_len);
/* 1 when `id` is a special added token, else 0. */
SEGRL_API int segrl_tokenizer_is_special(const segrl_tokenizer *tok, int32_t id);

// ----------------------------------------------------------------------------
// chat templates

typedef enum segrl_chat_format {
    /* the messages' contents joined by "\n"; roles ignored; no generation prompt */
    SEGRL_CHAT_PLAIN = 0,
    /* ChatML (Qwen2/2.5): "<|im_start|>" role "\n" content "<|im_end|>\n" per message;
     * generation prompt "<|im_start|>assistant\n". No default system message is inserted. */
    SEGRL_CHAT_CHATML = 1,
    /* Llama 3: "<|begin_of_text|>" then "<|start_header_id|>" role "<|end_header_id|>\n\n"
     * content (leading/trailing whitespace trimmed) "<|eot_id|>" per message; generation prompt
     * "<|start_header_id|>assistant<|end_header_id|>\n\n" */
    SEGRL_CHAT_LLAMA3 = 2,
} segrl_chat_format;

typedef struct segrl_chat_message {
    const char *role;    /* "system", "user", "assistant", ... */
    const char *content; /* NUL-terminated */
} segrl_chat_message;

/* The template's text. *out_text: new, NUL-terminated (segrl_free). */
SEGRL_API segrl_status segrl_chat_render(int32_t format, const segrl_chat_message *messages,
                                         int64_t n, int add_generation_prompt, char **out_text,
                                         size_t *out_len);

/* Encodes the template: the markers become their special token ids (the tokenizer must have
 * them, else SEGRL_ERR_INVALID naming the token), and roles and contents are encoded with
 * SEGRL_TOK_SPECIAL_AS_TEXT, so a message cannot inject markers. Gives the same ids as HF's
 * encode of segrl_chat_render's text whenever the contents contain no marker. */
SEGRL_API segrl_status segrl_tokenizer_encode_chat(const segrl_tokenizer *tok, int32_t format,
                                                   const segrl_chat_message *messages, int64_t n,
                                                   int add_generation_prompt, int32_t **out_ids,
                                                   int64_t *out_n);

// ----------------------------------------------------------------------------
// training

/* Trains a byte-level BPE tokenizer on `len` bytes of `corpus` and writes its tokenizer.json to
 * `out_path` (through "<out_path>.tmp" and a rename). Ids: the special tokens first (in the order
 * given), then the 256 bytes, then one token per merge. Pre-tokenizer: the Qwen2 split regex then
 * ByteLevel; special tokens in the corpus are cut out before counting. Each step merges the most
 * frequent adjacent pair (ties: the smaller left id, then the smaller right id); training stops at
 * `vocab_size` tokens or when no pair occurs twice. The file loads in Hugging Face `tokenizers`
 * (checked by tests/fixtures/tokenizer/make_fixtures.py). vocab_size >= n_special + 256. */
SEGRL_API segrl_status segrl_tokenizer_train(const char *corpus, size_t len, int64_t vocab_size,
                                             const char *const *special_tokens, int64_t n_special,
                                             const char *out_path);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_TOKENIZER_H */
