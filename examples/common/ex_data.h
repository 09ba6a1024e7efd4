/* ex_data.h — GSM8K and MATH JSONL loaders for the example trainers.
 *
 * GSM8K (Cobbe et al. 2021, arXiv 2110.14168), one JSON object per line:
 *   {"question": "...", "answer": "<worked solution>\n#### 72"}
 *   reference = the text after the last "####", trimmed, thousands commas removed ("1,000" -> "1000").
 * MATH (Hendrycks et al. 2021, arXiv 2103.03874), one JSON object per line:
 *   {"problem": "...", "solution": "... \\boxed{\\frac{1}{2}} ...", "level": "Level 3",
 *    "type": "Algebra"}
 *   reference = the "answer" string when the line has one (MATH-500 style files), else the content
 *   of the last well-formed \boxed{...} (or \fbox{...}) of the solution, braces balanced, "\{" and
 *   "\}" not counted; "\boxed 5" (no braces) gives "5". level: "Level N" or an integer N (0 when
 *   absent, "Level ?" or outside [0, 1000]); type: "type" or "subject" (NULL when absent).
 *
 * Lines may be any length (10^6 characters and more). Empty lines are skipped. Invalid UTF-8
 * byte sequences are replaced by U+FFFD and counted (utf8_fixed), so later stages (tokenizer)
 * always see valid UTF-8. A bad line (not JSON, not an object, a missing or non-string field, no
 * final answer) is an error "ex_dataset_load: <file>:<line>: <problem>" unless skip_bad is set:
 * then it is counted in `skipped` and the first such message is kept in first_error. */
#ifndef SEGRL_EX_DATA_H
#define SEGRL_EX_DATA_H

#include <segrl/core.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ex_data_format {
    EX_DATA_AUTO = 0,  /* decided by the first non-empty line: "question" -> GSM8K, "problem" -> MATH */
    EX_DATA_GSM8K = 1,
    EX_DATA_MATH = 2,
} ex_data_format;

typedef struct ex_problem {
    char *question;  /* GSM8K "question" / MATH "problem" */
    char *solution;  /* GSM8K "answer" (worked solution with "#### N") / MATH "solution" */
    char *reference; /* the final answer, as described above */
    char *type;      /* MATH subject, NULL when absent (always NULL for GSM8K) */
    int32_t level;   /* MATH level 1..5, 0 when absent */
    int64_t line;    /* 1-based line number in the file */
} ex_problem;

typedef struct ex_dataset {
    ex_problem *items;
    int64_t n;
    int32_t format;        /* ex_data_format actually used (GSM8K or MATH) */
    int64_t skipped;       /* bad lines skipped (skip_bad only) */
    int64_t utf8_fixed;    /* invalid UTF-8 sequences replaced by U+FFFD */
    char first_error[512]; /* message of the first skipped line, "" when none */
} ex_dataset;

/* Loads a JSONL file. On success *out owns its strings (free with ex_dataset_free); on failure
 * *out is untouched and segrl_last_error() names the file and line. Errors: SEGRL_ERR_INVALID
 * (unreadable file, bad line, no problems at all), SEGRL_ERR_ALLOC. */
segrl_status ex_dataset_load(const char *path, ex_data_format format, int skip_bad,
                             ex_dataset *out);
void ex_dataset_free(ex_dataset *d);
/* "gsm8k", "math", "auto"; and the reverse (-1 for an unknown name). */
const char *ex_data_format_name(ex_data_format f);
int ex_data_format_from_name(const char *name);

/* The GSM8K final answer of a worked solution (after the last "####", trimmed, commas removed).
 * New string (caller frees with free()), NULL when there is no "####" or nothing after it. */
char *ex_gsm8k_final_answer(const char *solution);
/* The content of the last well-formed \boxed{...} / \fbox{...} in s. New string (free()), NULL
 * when there is none. */
char *ex_math_last_boxed(const char *s);

/* Copies n bytes of s replacing each invalid UTF-8 sequence (bad lead or continuation byte,
 * overlong form, surrogate, > U+10FFFF, truncated) by U+FFFD. Returns a new NUL-terminated
 * string (free()) and its length in *out_len (may be NULL); *out_fixed (may be NULL) receives the
 * number of replacements. NULL when out of memory. */
char *ex_utf8_sanitize(const char *s, size_t n, size_t *out_len, int64_t *out_fixed);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_EX_DATA_H */
