/* fuzz_util.h — helpers shared by the libFuzzer targets in fuzz/. */
#ifndef SEGRL_FUZZ_UTIL_H
#define SEGRL_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* a NUL-terminated copy of the input (free()) */
static inline char *fz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* writes the input to a per-process scratch file and returns its path (static storage) */
static inline const char *fz_file(const char *tag, const uint8_t *data, size_t size) {
    static char path[256];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/segrl-fuzz-%s-%ld", dir && *dir ? dir : "/tmp", tag,
             (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    if (fclose(f) != 0) abort();
    return path;
}

/* splits the input at the first byte `sep`: the part before and after (both NUL-terminated,
 * one allocation: free(*a)) */
static inline void fz_split(const uint8_t *data, size_t size, uint8_t sep, char **a, char **b) {
    char *s = fz_cstr(data, size);
    char *p = memchr(s, sep, size);
    if (p) {
        *p = '\0';
        *b = p + 1;
    } else {
        *b = s + size;
    }
    *a = s;
}

#endif
