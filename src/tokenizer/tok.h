/* tok.h — private to src/tokenizer/: the loaded tokenizer, its hash maps, the byte-level
 * alphabet, the pre-tokenizer pipeline and the growable buffers encode, chat and train share. */
#ifndef SEGRL_TOK_H
#define SEGRL_TOK_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include "../check.h"

#include <pcre2.h>

// ----------------------------------------------------------------------------
// the byte-level alphabet (GPT-2's bytes_to_unicode)

/* Byte b is written as code point tk_byte_cp[b]: the printable bytes 33..126, 161..172 and
 * 174..255 as themselves, the other 68 bytes as 256, 257, ... in byte order, so that no token
 * string contains whitespace or control characters. */
extern uint16_t tk_byte_cp[256];
/* code point (< 324) -> byte, or -1 */
extern int16_t tk_cp_byte[324];
void tk_alphabet_init(void);

/* Appends the UTF-8 of code point cp to p (at most 4 bytes); returns the byte count. */
int tk_put_utf8(uint32_t cp, char *p);
/* Decodes one UTF-8 character at s (n bytes left): the code point, or -1 when invalid;
 * *adv: bytes consumed (at least 1). */
int32_t tk_get_utf8(const uint8_t *s, size_t n, size_t *adv);
/* Unicode White_Space */
int tk_is_space(uint32_t cp);

// ----------------------------------------------------------------------------
// growable buffers

typedef struct tk_bytes {
    char *p;
    size_t n, cap;
    int oom;
} tk_bytes;
void tk_bytes_put(tk_bytes *b, const void *s, size_t n);
void tk_bytes_free(tk_bytes *b);

typedef struct tk_ids {
    int32_t *p;
    int64_t n, cap;
    int oom;
} tk_ids;
void tk_ids_push(tk_ids *v, int32_t id);

// ----------------------------------------------------------------------------
// maps

/* bytes -> int32, open addressing; keys are borrowed (they live in the tokenizer's arena). */
typedef struct tk_map {
    const char **key;
    uint32_t *klen;
    int32_t *val;
    uint64_t cap, n;
} tk_map;
int tk_map_init(tk_map *m, uint64_t expect);
void tk_map_free(tk_map *m);
/* returns 0 on success, 1 when the key was present (value kept), -1 out of memory */
int tk_map_put(tk_map *m, const char *key, uint32_t klen, int32_t val);
int32_t tk_map_get(const tk_map *m, const char *key, uint32_t klen); /* -1 when absent */

/* (left id, right id) -> (rank, merged id) */
typedef struct tk_pairs {
    uint64_t *key; /* (left << 32 | right) + 1; 0 empty */
    int32_t *rank, *merged;
    uint64_t cap, n;
} tk_pairs;
int tk_pairs_init(tk_pairs *m, uint64_t expect);
void tk_pairs_free(tk_pairs *m);
int tk_pairs_put(tk_pairs *m, int32_t l, int32_t r, int32_t rank, int32_t merged);
/* rank or -1; *merged set when found */
int32_t tk_pairs_get(const tk_pairs *m, int32_t l, int32_t r, int32_t *merged);

// ----------------------------------------------------------------------------
// pre-tokenizer

enum { TK_STEP_SPLIT = 0, TK_STEP_PREFIX_SPACE = 1 };

typedef struct tk_step {
    int kind;
    pcre2_code *re; /* TK_STEP_SPLIT: behaviour Isolated */
} tk_step;

#define TK_MAX_STEPS 8

/* The GPT-2 regex (ByteLevel's use_regex) and the Qwen2 regex (the trainer's). */
extern const char *const tk_gpt2_pattern;
extern const char *const tk_qwen2_pattern;

/* Compiles a split pattern (UTF, UCP, MATCH_INVALID_UTF; JIT when available). literal: the
 * pattern is a plain string. NULL on failure with msg filled. */
pcre2_code *tk_compile(const char *pattern, int literal, char *msg, size_t msg_len);

/* Pieces as (offset, length) into a working byte buffer. */
typedef struct tk_pieces {
    int64_t *off, *len;
    int64_t n, cap;
    int oom;
} tk_pieces;
void tk_pieces_free(tk_pieces *p);

/* Runs the steps over buf[off, off + len): the final pieces in *out (may append to buf). */
int tk_pretokenize(const tk_step *steps, int nsteps, tk_bytes *buf, int64_t off, int64_t len,
                   pcre2_match_data *md, tk_pieces *out, tk_pieces *tmp);

// ----------------------------------------------------------------------------
// the tokenizer

enum {
    TK_PRESENT = 1,
    TK_ADDED = 2,
    TK_SPECIAL = 4,
    TK_LSTRIP = 8,
    TK_RSTRIP = 16,
    TK_SINGLE_WORD = 32
};

typedef struct tk_token {
    const char *str;   /* as written in tokenizer.json (NUL-terminated) */
    const char *bytes; /* what it decodes to */
    uint32_t str_len, bytes_len;
    uint32_t flags;
} tk_token;

typedef struct tk_arena {
    struct tk_chunk *head;
} tk_arena;
char *tk_arena_dup(tk_arena *a, const char *s, size_t n); /* NUL-terminated copy */
void tk_arena_free(tk_arena *a);

struct segrl_tokenizer {
    tk_arena arena;
    tk_token *tok; /* [vocab_size] */
    int64_t vocab_size;
    tk_map by_str;   /* tokenizer.json spelling -> id (added tokens win) */
    tk_map by_bytes; /* byte string -> id, for BPE (vocab entries in the byte-level alphabet) */
    tk_pairs merges;
    int32_t byte_id[256]; /* the single-byte tokens, or -1 */
    int32_t unk_id;       /* or -1: bytes without a token are dropped, as HF does */
    int ignore_merges;
    tk_step steps[TK_MAX_STEPS];
    int nsteps;
    int32_t *added; /* ids of added tokens, longest content first */
    int64_t nadded;
    uint8_t added_first[256]; /* some added token starts with this byte */
};

/* Encodes text, splitting out added tokens first (special ones unless special_as_text). */
segrl_status tk_encode(const segrl_tokenizer *t, const char *fn, const char *text, size_t len,
                       int special_as_text, tk_ids *out);

#endif /* SEGRL_TOK_H */
