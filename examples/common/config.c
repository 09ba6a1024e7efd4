/* config.c — typed configuration keys, JSON files and command-line overrides; see ex_config.h. */
#define _POSIX_C_SOURCE 200809L
#include "ex_config.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST 16

static char *dup_s(const char *s) {
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

const char *ex_cfg_type_name(int32_t type) {
    switch (type) {
    case EX_CFG_BOOL: return "bool";
    case EX_CFG_INT: return "int";
    case EX_CFG_FLOAT: return "float";
    case EX_CFG_STRING: return "string";
    case EX_CFG_ENUM: return "enum";
    case EX_CFG_INTLIST: return "intlist";
    case EX_CFG_JSON: return "json";
    }
    return "?";
}

// ----------------------------------------------------------------------------
// errors

/* Records the full message on c and a one-line version (up to the first '\n') as the thread's
 * segrl error. */
static segrl_status fail(ex_config *c, const char *fmt, ...) {
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(c->error);
    c->error = dup_s(buf);
    char *nl = strchr(buf, '\n');
    if (nl) *nl = 0;
    return segrl_set_error(SEGRL_ERR_INVALID, "%s", buf);
}

const char *ex_config_error(const ex_config *c) { return c && c->error ? c->error : ""; }

// ----------------------------------------------------------------------------
// keys

/* key names compare with '-' and '_' equal */
static int key_eq(const char *a, const char *b) {
    for (;; a++, b++) {
        char x = *a == '-' ? '_' : *a, y = *b == '-' ? '_' : *b;
        if (x != y) return 0;
        if (!x) return 1;
    }
}

int32_t ex_config_find(const ex_config *c, const char *key) {
    if (!c || !key) return -1;
    for (int32_t i = 0; i < c->num_keys; i++)
        if (key_eq(c->keys[i].key, key)) return i;
    return -1;
}

static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return 99;
    int d[65][65];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int x = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            int v = d[i - 1][j - 1] + x;
            if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

static const char *last_part(const char *k) {
    const char *d = strrchr(k, '.');
    return d ? d + 1 : k;
}

/* Writes a hint into buf: every key with the same last component ("lr" -> "optim.lr" or
 * "sft.lr"), else the closest key within edit distance 2; "" when there is none. */
static void suggest(const ex_config *c, const char *key, char *buf, size_t cap) {
    char norm[128];
    snprintf(norm, sizeof norm, "%s", key);
    for (char *p = norm; *p; p++)
        if (*p == '-') *p = '_';
    buf[0] = 0;
    size_t o = 0;
    int n = 0;
    for (int32_t i = 0; i < c->num_keys && o < cap; i++) {
        const char *k = c->keys[i].key;
        if (strcmp(last_part(k), last_part(norm)) == 0 && strcmp(k, norm) != 0) {
            int w = snprintf(buf + o, cap - o, "%s\"%s\"", n ? " or " : "; did you mean ", k);
            if (w < 0) break;
            o += (size_t)w;
            n++;
        }
    }
    if (n) {
        if (o < cap) snprintf(buf + o, cap - o, "?");
        return;
    }
    const char *best = NULL;
    int bestd = 3;
    for (int32_t i = 0; i < c->num_keys; i++) {
        int d = edit_distance(c->keys[i].key, norm);
        if (d < bestd) bestd = d, best = c->keys[i].key;
    }
    if (best) snprintf(buf, cap, "; did you mean \"%s\"?", best);
}

static segrl_status fail_unknown(ex_config *c, const char *key, const char *origin) {
    char list[6144];
    size_t o = 0;
    list[0] = 0;
    for (int32_t i = 0; i < c->num_keys && o + 2 < sizeof list; i++) {
        int w = snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", c->keys[i].key);
        if (w < 0) break;
        o += (size_t)w;
    }
    char hint[256];
    suggest(c, key, hint, sizeof hint);
    return fail(c, "ex_config: %s: unknown key \"%s\"%s (--help lists the %d valid keys)\n"
                   "valid keys: %s",
                origin, key, hint, (int)c->num_keys, list);
}

// ----------------------------------------------------------------------------
// values

/* shortest "%.Ng" that reads back to the same double */
static void format_double(double x, char *buf, size_t cap) {
    for (int p = 6; p <= 17; p++) {
        snprintf(buf, cap, "%.*g", p, x);
        if (strtod(buf, NULL) == x) return;
    }
}

static int parse_bool(const char *s, int *out) {
    static const char *t[] = {"true", "1", "yes", "on"}, *f[] = {"false", "0", "no", "off"};
    char low[8];
    size_t n = strlen(s);
    if (n >= sizeof low) return 0;
    for (size_t i = 0; i < n && i < sizeof low - 1; i++) low[i] = (char)tolower((unsigned char)s[i]);
    low[n] = 0;
    for (int i = 0; i < 4; i++) {
        if (strcmp(low, t[i]) == 0) return *out = 1, 1;
        if (strcmp(low, f[i]) == 0) return *out = 0, 1;
    }
    return 0;
}

/* Parses text as key k's type into *v (text owned by v). msg receives the problem. */
static int parse_value(const ex_cfg_key *k, const char *text, ex_cfg_value *v, char *msg,
                       size_t cap) {
    char buf[64];
    memset(v, 0, sizeof *v);
    switch (k->type) {
    case EX_CFG_BOOL: {
        int b;
        if (!parse_bool(text, &b)) {
            snprintf(msg, cap, "expected a bool (true/false, 1/0, yes/no, on/off), got \"%s\"",
                     text);
            return 0;
        }
        v->i = b;
        v->f = b;
        v->text = dup_s(b ? "true" : "false");
        break;
    }
    case EX_CFG_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(text, &end, 10);
        while (*end && isspace((unsigned char)*end)) end++;
        if (end == text || *end || errno == ERANGE) {
            snprintf(msg, cap, "expected an integer, got \"%s\"", text);
            return 0;
        }
        if (k->lo < k->hi && ((double)x < k->lo || (double)x > k->hi)) {
            snprintf(msg, cap, "%lld is outside [%g, %g]", x, k->lo, k->hi);
            return 0;
        }
        v->i = x;
        v->f = (double)x;
        snprintf(buf, sizeof buf, "%lld", x);
        v->text = dup_s(buf);
        break;
    }
    case EX_CFG_FLOAT: {
        char *end;
        double x = strtod(text, &end);
        while (*end && isspace((unsigned char)*end)) end++;
        if (end == text || *end || !isfinite(x)) {
            snprintf(msg, cap, "expected a finite number, got \"%s\"", text);
            return 0;
        }
        if (k->lo < k->hi && (x < k->lo || x > k->hi)) {
            snprintf(msg, cap, "%g is outside [%g, %g]", x, k->lo, k->hi);
            return 0;
        }
        v->f = x;
        format_double(x, buf, sizeof buf);
        v->text = dup_s(buf);
        break;
    }
    case EX_CFG_STRING: v->text = dup_s(text); break;
    case EX_CFG_ENUM: {
        const char *p = k->choices ? k->choices : "";
        size_t n = strlen(text);
        int64_t idx = 0, found = -1;
        while (*p) {
            const char *bar = strchr(p, '|');
            size_t len = bar ? (size_t)(bar - p) : strlen(p);
            if (len == n && strncmp(p, text, n) == 0) {
                found = idx;
                break;
            }
            idx++;
            p += len + (bar ? 1 : 0);
        }
        if (found < 0) {
            snprintf(msg, cap, "\"%s\" is not one of %s", text, k->choices ? k->choices : "");
            return 0;
        }
        v->i = found;
        v->text = dup_s(text);
        break;
    }
    case EX_CFG_INTLIST: {
        char out[MAX_LIST * 12] = "";
        size_t o = 0;
        int count = 0;
        const char *p = text;
        for (;;) {
            char *end;
            errno = 0;
            long x = strtol(p, &end, 10);
            if (end == p || errno == ERANGE || x < 1 || x > 1000000 || count == MAX_LIST) {
                snprintf(msg, cap, "expected up to %d positive integers like \"6-6-6\", got \"%s\"",
                         MAX_LIST, text);
                return 0;
            }
            o += (size_t)snprintf(out + o, sizeof out - o, "%s%ld", count ? "-" : "", x);
            count++;
            if (*end == 0) break;
            if (*end != '-' && *end != ',') {
                snprintf(msg, cap, "expected positive integers separated by '-', got \"%s\"",
                         text);
                return 0;
            }
            p = end + 1;
        }
        v->i = count;
        v->text = dup_s(out);
        break;
    }
    case EX_CFG_JSON: {
        cJSON *j = cJSON_Parse(text);
        if (!j || !cJSON_IsObject(j)) {
            cJSON_Delete(j);
            snprintf(msg, cap, "expected a JSON object, got \"%s\"", text);
            return 0;
        }
        v->text = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        break;
    }
    default: snprintf(msg, cap, "unknown type %d in the schema", (int)k->type); return 0;
    }
    if (!v->text) {
        snprintf(msg, cap, "out of memory");
        return 0;
    }
    return 1;
}

// ----------------------------------------------------------------------------
// init / set

segrl_status ex_config_init(ex_config *c, const ex_cfg_key *keys, int32_t num_keys) {
    if (!c) return segrl_set_error(SEGRL_ERR_INVALID, "ex_config_init: c: NULL");
    memset(c, 0, sizeof *c);
    if (!keys || num_keys < 1)
        return segrl_set_error(SEGRL_ERR_INVALID, "ex_config_init: keys: empty schema");
    c->keys = keys;
    c->num_keys = num_keys;
    c->values = calloc((size_t)num_keys, sizeof *c->values);
    if (!c->values) return segrl_set_error(SEGRL_ERR_ALLOC, "ex_config_init: out of memory");
    char msg[512];
    for (int32_t i = 0; i < num_keys; i++) {
        for (int32_t j = 0; j < i; j++)
            if (key_eq(keys[i].key, keys[j].key)) {
                segrl_status st = fail(c, "ex_config_init: schema: key \"%s\" twice", keys[i].key);
                ex_config_free(c);
                return st;
            }
        if (!parse_value(&keys[i], keys[i].def ? keys[i].def : "", &c->values[i], msg,
                         sizeof msg)) {
            segrl_status st = fail(c, "ex_config_init: schema: default of \"%s\": %s",
                                   keys[i].key, msg);
            ex_config_free(c);
            return st;
        }
    }
    return SEGRL_OK;
}

void ex_config_free(ex_config *c) {
    if (!c) return;
    if (c->values)
        for (int32_t i = 0; i < c->num_keys; i++) free(c->values[i].text);
    free(c->values);
    free(c->error);
    memset(c, 0, sizeof *c);
}

/* origin: "command line" or a file name, for messages */
static segrl_status set_from(ex_config *c, const char *key, const char *value, int32_t source,
                             const char *origin) {
    int32_t i = ex_config_find(c, key);
    if (i < 0) return fail_unknown(c, key, origin);
    char msg[512];
    ex_cfg_value v;
    if (!parse_value(&c->keys[i], value, &v, msg, sizeof msg))
        return fail(c, "ex_config: %s: %s (%s): %s", origin, c->keys[i].key,
                    ex_cfg_type_name(c->keys[i].type), msg);
    v.source = source;
    free(c->values[i].text);
    c->values[i] = v;
    return SEGRL_OK;
}

segrl_status ex_config_set(ex_config *c, const char *key, const char *value, int32_t source) {
    if (!c || !c->values) return segrl_set_error(SEGRL_ERR_INVALID, "ex_config_set: c: NULL");
    if (!key || !value) return fail(c, "ex_config_set: key/value: NULL");
    return set_from(c, key, value, source, source == EX_CFG_FROM_FILE ? "file" : "command line");
}

// ----------------------------------------------------------------------------
// JSON files

static int has_prefix_key(const ex_config *c, const char *prefix) {
    size_t n = strlen(prefix);
    for (int32_t i = 0; i < c->num_keys; i++) {
        const char *k = c->keys[i].key;
        if (strlen(k) > n && k[n] == '.') {
            char tmp[128];
            if (n >= sizeof tmp) continue;
            memcpy(tmp, k, n);
            tmp[n] = 0;
            if (key_eq(tmp, prefix)) return 1;
        }
    }
    return 0;
}

static const char *json_kind(const cJSON *j) {
    if (cJSON_IsBool(j)) return "a bool";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    if (cJSON_IsNull(j)) return "null";
    return "an invalid value";
}

static segrl_status apply_json_value(ex_config *c, int32_t i, const cJSON *j, const char *origin) {
    const ex_cfg_key *k = &c->keys[i];
    char buf[64];
    char *owned = NULL;
    const char *text = NULL;
    const char *want = NULL;
    switch (k->type) {
    case EX_CFG_BOOL:
        if (cJSON_IsBool(j)) text = cJSON_IsTrue(j) ? "true" : "false";
        else want = "true or false";
        break;
    case EX_CFG_INT:
        if (cJSON_IsNumber(j) && j->valuedouble == floor(j->valuedouble) &&
            fabs(j->valuedouble) <= 9007199254740992.0) {
            snprintf(buf, sizeof buf, "%.0f", j->valuedouble);
            text = buf;
        } else {
            want = "an integer";
        }
        break;
    case EX_CFG_FLOAT:
        if (cJSON_IsNumber(j)) {
            snprintf(buf, sizeof buf, "%.17g", j->valuedouble);
            text = buf;
        } else {
            want = "a number";
        }
        break;
    case EX_CFG_STRING:
    case EX_CFG_ENUM:
        if (cJSON_IsString(j)) text = j->valuestring;
        else want = "a string";
        break;
    case EX_CFG_INTLIST:
        if (cJSON_IsString(j)) {
            text = j->valuestring;
        } else if (cJSON_IsArray(j)) {
            char list[MAX_LIST * 24] = "";
            size_t o = 0;
            int n = 0;
            const cJSON *e;
            cJSON_ArrayForEach(e, j) {
                if (!cJSON_IsNumber(e) || n == MAX_LIST) {
                    want = "an array of up to 16 positive integers";
                    break;
                }
                o += (size_t)snprintf(list + o, sizeof list - o, "%s%.17g", n ? "-" : "",
                                      e->valuedouble);
                n++;
            }
            if (!want && n == 0) want = "a non-empty array";
            if (!want) text = owned = dup_s(list);
        } else {
            want = "\"6-6-6\" or [6, 6, 6]";
        }
        break;
    case EX_CFG_JSON:
        if (cJSON_IsObject(j)) text = owned = cJSON_PrintUnformatted(j);
        else want = "a JSON object";
        break;
    }
    if (want)
        return fail(c, "ex_config: %s: %s (%s): expected %s, got %s", origin, k->key,
                    ex_cfg_type_name(k->type), want, json_kind(j));
    if (!text) return fail(c, "ex_config: %s: out of memory", origin);
    segrl_status st = set_from(c, k->key, text, EX_CFG_FROM_FILE, origin);
    free(owned);
    return st;
}

static segrl_status apply_object(ex_config *c, const cJSON *obj, const char *prefix,
                                 const char *origin) {
    const cJSON *e;
    cJSON_ArrayForEach(e, obj) {
        char name[256];
        int w = snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "",
                         e->string ? e->string : "");
        if (w < 0 || (size_t)w >= sizeof name) return fail_unknown(c, e->string, origin);
        int32_t i = ex_config_find(c, name);
        if (i >= 0) {
            segrl_status st = apply_json_value(c, i, e, origin);
            if (st != SEGRL_OK) return st;
        } else if (cJSON_IsObject(e) && has_prefix_key(c, name)) {
            segrl_status st = apply_object(c, e, name, origin);
            if (st != SEGRL_OK) return st;
        } else {
            return fail_unknown(c, name, origin);
        }
    }
    return SEGRL_OK;
}

segrl_status ex_config_load_json(ex_config *c, const char *json, const char *origin) {
    if (!c || !c->values) return segrl_set_error(SEGRL_ERR_INVALID, "ex_config_load_json: c: NULL");
    if (!origin) origin = "json";
    if (!json) return fail(c, "ex_config: %s: no text", origin);
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        const char *ep = cJSON_GetErrorPtr();
        int line = 1;
        if (ep)
            for (const char *p = json; p < ep && *p; p++) line += *p == '\n';
        return fail(c, "ex_config: %s:%d: not valid JSON", origin, line);
    }
    segrl_status st;
    if (!cJSON_IsObject(root)) st = fail(c, "ex_config: %s: the top level is not a JSON object",
                                         origin);
    else st = apply_object(c, root, "", origin);
    cJSON_Delete(root);
    return st;
}

segrl_status ex_config_load_file(ex_config *c, const char *path) {
    if (!c || !c->values) return segrl_set_error(SEGRL_ERR_INVALID, "ex_config_load_file: c: NULL");
    if (!path) return fail(c, "ex_config_load_file: path: NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return fail(c, "ex_config: %s: cannot open for reading", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) return fail(c, "ex_config: %s: out of memory", path);
    buf[n] = 0;
    segrl_status st = ex_config_load_json(c, buf, path);
    free(buf);
    return st;
}

// ----------------------------------------------------------------------------
// command line

segrl_status ex_config_parse_args(ex_config *c, int argc, char *const *argv, int *out_help) {
    if (!c || !c->values)
        return segrl_set_error(SEGRL_ERR_INVALID, "ex_config_parse_args: c: NULL");
    if (out_help) *out_help = 0;
    /* pass 1: config files, in order; pass 2: every other flag, in order */
    for (int pass = 0; pass < 2; pass++) {
        for (int a = 1; a < argc; a++) {
            const char *arg = argv[a];
            if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
                if (out_help) *out_help = 1;
                continue;
            }
            if (strncmp(arg, "--", 2) != 0 || arg[2] == 0)
                return fail(c, "ex_config: command line: unexpected argument \"%s\" (options are "
                               "--key value or --key=value; --help lists them)",
                            arg);
            char key[256];
            const char *eq = strchr(arg + 2, '=');
            size_t klen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
            if (klen >= sizeof key) return fail_unknown(c, arg + 2, "command line");
            memcpy(key, arg + 2, klen);
            key[klen] = 0;
            const char *value = eq ? eq + 1 : NULL;
            int is_config = strcmp(key, "config") == 0;
            int32_t i = is_config ? -1 : ex_config_find(c, key);
            int negated = 0;
            if (!is_config && i < 0 && strncmp(key, "no-", 3) == 0 && !value) {
                int32_t j = ex_config_find(c, key + 3);
                if (j >= 0 && c->keys[j].type == EX_CFG_BOOL) i = j, negated = 1;
            }
            if (!is_config && i < 0) return fail_unknown(c, key, "command line");
            if (!value && !negated) {
                int lone_bool = !is_config && c->keys[i].type == EX_CFG_BOOL &&
                                (a + 1 >= argc || strncmp(argv[a + 1], "--", 2) == 0);
                if (lone_bool) {
                    value = "true";
                } else {
                    if (a + 1 >= argc)
                        return fail(c, "ex_config: command line: --%s needs a value", key);
                    value = argv[++a];
                }
            }
            if (negated) value = "false";
            if (is_config) {
                if (pass == 0) {
                    segrl_status st = ex_config_load_file(c, value);
                    if (st != SEGRL_OK) return st;
                }
            } else if (pass == 1) {
                segrl_status st = set_from(c, c->keys[i].key, value, EX_CFG_FROM_FLAG,
                                           "command line");
                if (st != SEGRL_OK) return st;
            }
        }
    }
    return SEGRL_OK;
}

int ex_config_setup(ex_config *c, const ex_cfg_key *keys, int32_t num_keys, int argc,
                    char *const *argv, const char *program) {
    if (!program) program = argc > 0 && argv[0] ? argv[0] : "program";
    if (ex_config_init(c, keys, num_keys) != SEGRL_OK) {
        fprintf(stderr, "%s: %s\n", program, segrl_last_error());
        return 2;
    }
    int help = 0;
    if (ex_config_parse_args(c, argc, argv, &help) != SEGRL_OK) {
        fprintf(stderr, "%s: %s\n", program, ex_config_error(c));
        ex_config_free(c);
        return 2;
    }
    if (help) {
        ex_config_print_help(c, stdout, program);
        ex_config_free(c);
        return 1;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// getters

static segrl_status lookup(const ex_config *c, const char *key, const char *fn, unsigned types,
                           int32_t *out) {
    if (!c || !c->values) return segrl_set_error(SEGRL_ERR_INVALID, "%s: c: NULL", fn);
    int32_t i = ex_config_find(c, key);
    if (i < 0) return segrl_set_error(SEGRL_ERR_INVALID, "%s: key: unknown key \"%s\"", fn,
                                      key ? key : "(null)");
    if (!(types & (1u << c->keys[i].type)))
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: %s: the key is of type %s", fn, key,
                               ex_cfg_type_name(c->keys[i].type));
    *out = i;
    return SEGRL_OK;
}

segrl_status ex_config_get_int(const ex_config *c, const char *key, int64_t *out) {
    int32_t i = -1;
    segrl_status st = lookup(c, key, "ex_config_get_int",
                             (1u << EX_CFG_INT) | (1u << EX_CFG_BOOL), &i);
    if (st == SEGRL_OK) *out = c->values[i].i;
    return st;
}

segrl_status ex_config_get_float(const ex_config *c, const char *key, double *out) {
    int32_t i = -1;
    segrl_status st = lookup(c, key, "ex_config_get_float",
                             (1u << EX_CFG_INT) | (1u << EX_CFG_FLOAT), &i);
    if (st == SEGRL_OK) *out = c->values[i].f;
    return st;
}

segrl_status ex_config_get_bool(const ex_config *c, const char *key, int *out) {
    int32_t i = -1;
    segrl_status st = lookup(c, key, "ex_config_get_bool", 1u << EX_CFG_BOOL, &i);
    if (st == SEGRL_OK) *out = (int)c->values[i].i;
    return st;
}

segrl_status ex_config_get_str(const ex_config *c, const char *key, const char **out) {
    int32_t i = -1;
    segrl_status st = lookup(c, key, "ex_config_get_str", 0x7fu, &i);
    if (st == SEGRL_OK) *out = c->values[i].text;
    return st;
}

segrl_status ex_config_get_intlist(const ex_config *c, const char *key, int64_t *out, int32_t cap,
                                   int32_t *out_n) {
    int32_t i = -1;
    segrl_status st = lookup(c, key, "ex_config_get_intlist", 1u << EX_CFG_INTLIST, &i);
    if (st != SEGRL_OK) return st;
    if (!out_n || (cap > 0 && !out))
        return segrl_set_error(SEGRL_ERR_INVALID, "ex_config_get_intlist: out: NULL");
    int32_t n = 0;
    const char *p = c->values[i].text;
    while (*p) {
        char *end;
        long x = strtol(p, &end, 10);
        if (n < cap) out[n] = x;
        n++;
        p = *end ? end + 1 : end;
    }
    if (n > cap)
        return segrl_set_error(SEGRL_ERR_INVALID, "ex_config_get_intlist: cap: %s has %d values, "
                               "room for %d", key, (int)n, (int)cap);
    *out_n = n;
    return SEGRL_OK;
}

static void die(void) {
    fprintf(stderr, "ex_config: programming error: %s\n", segrl_last_error());
    abort();
}

int64_t ex_config_int(const ex_config *c, const char *key) {
    int64_t v = 0;
    if (ex_config_get_int(c, key, &v) != SEGRL_OK) die();
    return v;
}

double ex_config_float(const ex_config *c, const char *key) {
    double v = 0;
    if (ex_config_get_float(c, key, &v) != SEGRL_OK) die();
    return v;
}

int ex_config_bool(const ex_config *c, const char *key) {
    int v = 0;
    if (ex_config_get_bool(c, key, &v) != SEGRL_OK) die();
    return v;
}

const char *ex_config_str(const ex_config *c, const char *key) {
    const char *v = NULL;
    if (ex_config_get_str(c, key, &v) != SEGRL_OK) die();
    return v;
}

int32_t ex_config_enum(const ex_config *c, const char *key) {
    int32_t i = -1;
    if (lookup(c, key, "ex_config_enum", 1u << EX_CFG_ENUM, &i) != SEGRL_OK) die();
    return (int32_t)c->values[i].i;
}

int32_t ex_config_source(const ex_config *c, const char *key) {
    int32_t i = ex_config_find(c, key);
    return i < 0 ? -1 : c->values[i].source;
}

// ----------------------------------------------------------------------------
// output

/* s with newlines and tabs shown as \n and \t (and '|' as \| when md): for one-line displays */
static const char *show(const char *s, int md, char *buf, size_t cap) {
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (*s == '\n') buf[o++] = '\\', buf[o++] = 'n';
        else if (*s == '\t') buf[o++] = '\\', buf[o++] = 't';
        else if (*s == '|' && md) buf[o++] = '\\', buf[o++] = '|';
        else buf[o++] = *s;
    }
    buf[o] = 0;
    return buf;
}

void ex_config_print(const ex_config *c, FILE *f, int only_changed) {
    int w = 0;
    for (int32_t i = 0; i < c->num_keys; i++) {
        int n = (int)strlen(c->keys[i].key);
        if (n > w) w = n;
    }
    for (int32_t i = 0; i < c->num_keys; i++) {
        const ex_cfg_value *v = &c->values[i];
        if (only_changed && v->source == EX_CFG_FROM_DEFAULT) continue;
        const char *src = v->source == EX_CFG_FROM_FILE ? "  (file)"
                          : v->source == EX_CFG_FROM_FLAG ? "  (flag)"
                                                          : "";
        int quote = c->keys[i].type == EX_CFG_STRING;
        char b[1024];
        fprintf(f, "  %-*s = %s%s%s%s\n", w, c->keys[i].key, quote ? "\"" : "",
                show(v->text, 0, b, sizeof b), quote ? "\"" : "", src);
    }
}

static const char *type_meta(const ex_cfg_key *k) {
    switch (k->type) {
    case EX_CFG_BOOL: return "[true|false]";
    case EX_CFG_INT: return "INT";
    case EX_CFG_FLOAT: return "FLOAT";
    case EX_CFG_STRING: return "STR";
    case EX_CFG_ENUM: return k->choices ? k->choices : "";
    case EX_CFG_INTLIST: return "N-N-...";
    case EX_CFG_JSON: return "JSON";
    }
    return "?";
}

void ex_config_print_help(const ex_config *c, FILE *f, const char *program) {
    fprintf(f, "usage: %s [--config FILE.json]... [--key value | --key=value]...\n"
               "Later flags override earlier ones; flags override config files; '-' and '_' are "
               "the same in keys.\n",
            program ? program : "trainer");
    const char *section = "";
    size_t slen = 0;
    for (int32_t i = 0; i < c->num_keys; i++) {
        const ex_cfg_key *k = &c->keys[i];
        const char *dot = strchr(k->key, '.');
        size_t n = dot ? (size_t)(dot - k->key) : 0;
        if (n != slen || strncmp(section, k->key, n) != 0) {
            fprintf(f, "\n%.*s:\n", (int)n, k->key);
            section = k->key;
            slen = n;
        }
        char head[160];
        snprintf(head, sizeof head, "--%s %s", k->key, type_meta(k));
        char b[1024];
        fprintf(f, "  %-44s %s (default: %s)\n", head, k->help ? k->help : "",
                k->def && *k->def ? show(k->def, 0, b, sizeof b) : "\"\"");
    }
}

void ex_config_print_markdown(const ex_cfg_key *keys, int32_t num_keys, FILE *f) {
    fprintf(f, "| key | type | default | meaning |\n|---|---|---|---|\n");
    for (int32_t i = 0; i < num_keys; i++) {
        const ex_cfg_key *k = &keys[i];
        char type[512], def[512], help[1024];
        if (k->type == EX_CFG_ENUM) {
            char t[400];
            snprintf(type, sizeof type, "`%s`", show(k->choices ? k->choices : "", 1, t, sizeof t));
        } else {
            snprintf(type, sizeof type, "%s", ex_cfg_type_name(k->type));
        }
        fprintf(f, "| `%s` | %s | `%s` | %s |\n", k->key, type,
                k->def && *k->def ? show(k->def, 1, def, sizeof def) : "\"\"",
                show(k->help ? k->help : "", 1, help, sizeof help));
    }
}

char *ex_config_to_json(const ex_config *c) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    for (int32_t i = 0; i < c->num_keys; i++) {
        const ex_cfg_key *k = &c->keys[i];
        const ex_cfg_value *v = &c->values[i];
        cJSON *parent = root;
        char part[128];
        const char *p = k->key;
        const char *dot;
        while ((dot = strchr(p, '.')) != NULL) { /* find or create the section objects */
            size_t n = (size_t)(dot - p) < sizeof part - 1 ? (size_t)(dot - p) : sizeof part - 1;
            memcpy(part, p, n);
            part[n] = 0;
            cJSON *child = cJSON_GetObjectItemCaseSensitive(parent, part);
            if (!child) {
                child = cJSON_CreateObject();
                if (!child || !cJSON_AddItemToObject(parent, part, child)) {
                    cJSON_Delete(child);
                    cJSON_Delete(root);
                    return NULL;
                }
            }
            parent = child;
            p = dot + 1;
        }
        cJSON *item;
        switch (k->type) {
        case EX_CFG_BOOL: item = cJSON_CreateBool((int)v->i); break;
        case EX_CFG_INT: item = cJSON_CreateNumber((double)v->i); break;
        case EX_CFG_FLOAT: item = cJSON_CreateNumber(v->f); break;
        case EX_CFG_JSON: item = cJSON_Parse(v->text); break;
        default: item = cJSON_CreateString(v->text); break;
        }
        if (!item || !cJSON_AddItemToObject(parent, p, item)) {
            cJSON_Delete(item);
            cJSON_Delete(root);
            return NULL;
        }
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

segrl_status ex_config_write_json(const ex_config *c, const char *path) {
    if (!c || !c->values || !path)
        return segrl_set_error(SEGRL_ERR_INVALID, "ex_config_write_json: c or path: NULL");
    char *s = ex_config_to_json(c);
    if (!s) return segrl_set_error(SEGRL_ERR_ALLOC, "ex_config_write_json: out of memory");
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (!tmp) {
        free(s);
        return segrl_set_error(SEGRL_ERR_ALLOC, "ex_config_write_json: out of memory");
    }
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fputs(s, f) >= 0 && fputc('\n', f) != EOF;
    if (f && fclose(f) != 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) remove(tmp);
    free(tmp);
    free(s);
    if (!ok) return segrl_set_error(SEGRL_ERR_INVALID, "ex_config_write_json: %s: cannot write",
                                    path);
    return SEGRL_OK;
}
