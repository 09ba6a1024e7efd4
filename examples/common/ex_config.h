/* ex_config.h — configuration for the example trainers: a table of typed keys with defaults,
 * JSON config files, command-line overrides, and the effective config printed and saved.
 *
 * Precedence: defaults < each --config FILE (in order) < every other flag (in order).
 *
 * Files (cJSON): one JSON object. Nested objects are flattened with '.', so
 *   {"optim": {"lr": 1e-4}}  and  {"optim.lr": 1e-4}  set the same key "optim.lr".
 *   Types: bool <- true/false; int <- an integral number; float <- a number; string/enum <- a
 *   string; intlist <- "6-6-6" or [6, 6, 6]; json <- an object (kept whole, not flattened).
 *
 * Command line: --key value, --key=value; '-' and '_' are the same in key names
 *   (--algo.group-size 4); a bool may be given alone (--run.plot) or negated (--no-run.plot), and
 *   takes true/false/1/0/yes/no/on/off; --config FILE loads a file; --help / -h is reported to
 *   the caller. Any other argument is an error.
 *
 * Errors (unknown key, wrong type, value out of range, not one of an enum's choices) are
 * SEGRL_ERR_INVALID. segrl_last_error() gets a one-line message (with a "did you mean" hint);
 * ex_config_error() the full message, which for an unknown key lists every valid key. */
#ifndef SEGRL_EX_CONFIG_H
#define SEGRL_EX_CONFIG_H

#include <segrl/core.h>

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ex_cfg_type {
    EX_CFG_BOOL = 0,
    EX_CFG_INT = 1,
    EX_CFG_FLOAT = 2,
    EX_CFG_STRING = 3,
    EX_CFG_ENUM = 4,    /* a string, one of `choices` ("a|b|c") */
    EX_CFG_INTLIST = 5, /* positive integers "6-6-6" (also "6,6,6" or a JSON array) */
    EX_CFG_JSON = 6,    /* a JSON object, kept as compact JSON text */
} ex_cfg_type;

/* One key of a schema. Numbers: when lo < hi the value must lie in [lo, hi]. */
typedef struct ex_cfg_key {
    const char *key;     /* "section.name", lower case, '_' between words */
    int32_t type;        /* ex_cfg_type */
    const char *def;     /* default, as it would be written on the command line */
    const char *choices; /* EX_CFG_ENUM: "a|b|c"; else NULL */
    double lo, hi;       /* numeric range when lo < hi */
    const char *help;    /* one line for --help and docs/training.md */
} ex_cfg_key;

/* Where a key's value came from. */
typedef enum ex_cfg_source {
    EX_CFG_FROM_DEFAULT = 0,
    EX_CFG_FROM_FILE = 1,
    EX_CFG_FROM_FLAG = 2,
} ex_cfg_source;

typedef struct ex_cfg_value {
    char *text; /* canonical text ("0.0001", "true", "6-6-6", "{\"a\":1}") */
    int64_t i;  /* INT; BOOL (0/1) */
    double f;   /* FLOAT (INT too, as a double) */
    int32_t source; /* ex_cfg_source */
} ex_cfg_value;

typedef struct ex_config {
    const ex_cfg_key *keys; /* borrowed schema */
    int32_t num_keys;
    ex_cfg_value *values;   /* num_keys */
    char *error;            /* full message of the last failure (owned), NULL when none */
} ex_config;

/* Sets every key to its default. The schema is borrowed and must outlive c. Errors: a default
 * that does not parse as its type (a schema bug), duplicate keys, SEGRL_ERR_ALLOC. */
segrl_status ex_config_init(ex_config *c, const ex_cfg_key *keys, int32_t num_keys);
void ex_config_free(ex_config *c);
/* The full message of the last failed call on c ("" when none). Borrowed. */
const char *ex_config_error(const ex_config *c);

/* Sets one key from text (command-line syntax). source: ex_cfg_source. */
segrl_status ex_config_set(ex_config *c, const char *key, const char *value, int32_t source);
/* Applies a JSON object given as text; `origin` names it in messages (a file name). */
segrl_status ex_config_load_json(ex_config *c, const char *json, const char *origin);
/* Reads and applies a JSON config file. */
segrl_status ex_config_load_file(ex_config *c, const char *path);
/* Applies argv[1..argc-1] as described above. *out_help (may be NULL) is set to 1 when --help or
 * -h was given (the other flags are still applied). On failure c may hold part of the flags. */
segrl_status ex_config_parse_args(ex_config *c, int argc, char *const *argv, int *out_help);

/* The usual start of a program: init with the schema, apply argv, print --help or the error.
 * Returns 0: go on (c is set up); 1: --help was printed to stdout (exit 0); 2: an error was
 * printed to stderr as "<program>: <message>" (exit 2). c is freed unless 0 is returned. */
int ex_config_setup(ex_config *c, const ex_cfg_key *keys, int32_t num_keys, int argc,
                    char *const *argv, const char *program);

/* Checked getters: SEGRL_ERR_INVALID for an unknown key or a key of another type.
 * get_int accepts INT and BOOL keys; get_float INT and FLOAT; get_str every type (the text). */
segrl_status ex_config_get_int(const ex_config *c, const char *key, int64_t *out);
segrl_status ex_config_get_float(const ex_config *c, const char *key, double *out);
segrl_status ex_config_get_bool(const ex_config *c, const char *key, int *out);
segrl_status ex_config_get_str(const ex_config *c, const char *key, const char **out);
/* INTLIST: writes up to cap values to out and the count to *out_n. */
segrl_status ex_config_get_intlist(const ex_config *c, const char *key, int64_t *out, int32_t cap,
                                   int32_t *out_n);

/* Short getters for keys the program knows exist: a wrong key or type is a programming error,
 * reported on stderr, then abort(). Strings are borrowed (valid until c changes). */
int64_t ex_config_int(const ex_config *c, const char *key);
double ex_config_float(const ex_config *c, const char *key);
int ex_config_bool(const ex_config *c, const char *key);
const char *ex_config_str(const ex_config *c, const char *key);
/* ENUM: index of the value in the key's choices (0-based). */
int32_t ex_config_enum(const ex_config *c, const char *key);
/* Source of a key's value (ex_cfg_source), -1 for an unknown key. */
int32_t ex_config_source(const ex_config *c, const char *key);
/* Index of key in the schema ('-' and '_' equal), -1 when unknown. */
int32_t ex_config_find(const ex_config *c, const char *key);

/* The effective config, one "key = value" line per key, "(file)" / "(flag)" after values that are
 * not defaults. only_changed: print just those. */
void ex_config_print(const ex_config *c, FILE *f, int only_changed);
/* --help text: every key with its type, default and help line. */
void ex_config_print_help(const ex_config *c, FILE *f, const char *program);
/* The effective config as a nested JSON object that ex_config_load_file reads back to the same
 * values. New string (free()); NULL when out of memory. */
char *ex_config_to_json(const ex_config *c);
/* Writes ex_config_to_json to path atomically (path.tmp, then rename). */
segrl_status ex_config_write_json(const ex_config *c, const char *path);
/* A Markdown table of a schema (| key | type | default | meaning |): docs/training.md's table. */
void ex_config_print_markdown(const ex_cfg_key *keys, int32_t num_keys, FILE *f);
/* "bool", "int", "float", "string", "enum", "intlist", "json". */
const char *ex_cfg_type_name(int32_t type);

// ----------------------------------------------------------------------------
// the trainers' schema

/* The keys of the GSM8K / MATH trainers (docs/training.md documents them). */
const ex_cfg_key *ex_trainer_keys(int32_t *out_num_keys);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_EX_CONFIG_H */
