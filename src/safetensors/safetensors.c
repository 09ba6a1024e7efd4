/* safetensors.c — the safetensors reader (mmap, every header field checked against the file size),
 * sharded model directories (model.safetensors.index.json) and the atomic writer.
 *
 * Format (huggingface/safetensors, README "Format"): an unsigned little-endian 64-bit header
 * length N, N bytes of JSON, then the data buffer. Each tensor entry has "dtype", "shape" and
 * "data_offsets" [begin, end) relative to the data buffer; "__metadata__" is a string->string map.
 * The reference implementation also rejects holes between tensors; we accept holes (nothing is
 * read from them) but reject overlaps, which is what safety needs. */
#define _POSIX_C_SOURCE 200809L
#include "../check.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SG_ST_MAX_HEADER (100u * 1000u * 1000u) /* the reference reader's limit: 100 MB */

// ----------------------------------------------------------------------------
// dtypes

static const struct {
    const char *name;
    size_t size;
} sg_st_types[] = {
    [SEGRL_ST_F32] = {"F32", 4},         [SEGRL_ST_F16] = {"F16", 2},
    [SEGRL_ST_BF16] = {"BF16", 2},       [SEGRL_ST_I32] = {"I32", 4},
    [SEGRL_ST_I64] = {"I64", 8},         [SEGRL_ST_U8] = {"U8", 1},
    [SEGRL_ST_F64] = {"F64", 8},         [SEGRL_ST_BOOL] = {"BOOL", 1},
    [SEGRL_ST_I8] = {"I8", 1},           [SEGRL_ST_I16] = {"I16", 2},
    [SEGRL_ST_U16] = {"U16", 2},         [SEGRL_ST_U32] = {"U32", 4},
    [SEGRL_ST_U64] = {"U64", 8},         [SEGRL_ST_F8_E4M3] = {"F8_E4M3", 1},
    [SEGRL_ST_F8_E5M2] = {"F8_E5M2", 1},
};
#define SG_ST_NTYPES ((int)(sizeof sg_st_types / sizeof sg_st_types[0]))

size_t segrl_st_dtype_size(segrl_st_dtype dtype) {
    return ((int)dtype >= 0 && (int)dtype < SG_ST_NTYPES) ? sg_st_types[dtype].size : 0;
}

const char *segrl_st_dtype_name(segrl_st_dtype dtype) {
    return ((int)dtype >= 0 && (int)dtype < SG_ST_NTYPES) ? sg_st_types[dtype].name : "?";
}

static int sg_st_type_of(const char *name) {
    for (int i = 0; i < SG_ST_NTYPES; i++)
        if (strcmp(name, sg_st_types[i].name) == 0) return i;
    return -1;
}

// ----------------------------------------------------------------------------
// the handle

typedef struct sg_st_entry {
    char *name;
    int32_t dtype, ndim;
    int64_t shape[SEGRL_ST_MAX_DIMS];
    uint64_t begin, end; /* in the file's data buffer */
    int32_t file;
} sg_st_entry;

typedef struct sg_st_file {
    void *map;
    size_t size;
    const uint8_t *data; /* the data buffer: map + 8 + N */
    uint64_t data_size;
} sg_st_file;

struct segrl_safetensors {
    sg_st_file *files;
    int32_t nfiles;
    sg_st_entry *ents;
    int64_t n, cap;
    int64_t *slots; /* open addressing: entry index or -1 */
    uint64_t nslots;
    char **mkeys, **mvals;
    int64_t nmeta;
};

static char *sg_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = segrl_malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void segrl_safetensors_close(segrl_safetensors *st) {
    if (!st) return;
    for (int32_t i = 0; i < st->nfiles; i++)
        if (st->files[i].map) munmap(st->files[i].map, st->files[i].size);
    for (int64_t i = 0; i < st->n; i++)
        segrl_free(st->ents[i].name);
    for (int64_t i = 0; i < st->nmeta; i++) {
        segrl_free(st->mkeys[i]);
        segrl_free(st->mvals[i]);
    }
    segrl_free(st->files);
    segrl_free(st->ents);
    segrl_free(st->slots);
    segrl_free(st->mkeys);
    segrl_free(st->mvals);
    segrl_free(st);
}

/* FNV-1a */
static uint64_t sg_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int64_t sg_lookup(const segrl_safetensors *st, const char *name) {
    if (!st || !st->nslots) return -1;
    uint64_t m = st->nslots - 1;
    for (uint64_t i = sg_hash(name) & m;; i = (i + 1) & m) {
        int64_t e = st->slots[i];
        if (e < 0) return -1;
        if (strcmp(st->ents[e].name, name) == 0) return e;
    }
}

/* Builds the name table; a name seen twice is an error. */
static segrl_status sg_index(const char *fn, const char *where, segrl_safetensors *st) {
    uint64_t ns = 16;
    while (ns < 2 * (uint64_t)st->n)
        ns *= 2;
    segrl_free(st->slots);
    st->slots = segrl_malloc(ns * sizeof *st->slots);
    if (!st->slots) return sg_fail(SEGRL_ERR_ALLOC, "%s: %s: out of memory", fn, where);
    st->nslots = ns;
    for (uint64_t i = 0; i < ns; i++)
        st->slots[i] = -1;
    for (int64_t e = 0; e < st->n; e++) {
        uint64_t i = sg_hash(st->ents[e].name) & (ns - 1);
        for (; st->slots[i] >= 0; i = (i + 1) & (ns - 1))
            if (strcmp(st->ents[st->slots[i]].name, st->ents[e].name) == 0)
                return sg_fail(SEGRL_ERR_INVALID, "%s: %s: tensor '%s' appears twice", fn, where,
                               st->ents[e].name);
        st->slots[i] = e;
    }
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// parsing one file

/* A JSON number that is a non-negative integer exactly representable (<= 2^53). */
static int sg_json_u64(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0.0) || v > 9007199254740992.0 || v != floor(v)) return 0;
    *out = (uint64_t)v;
    return 1;
}

static int sg_cmp_begin(const void *a, const void *b) {
    const sg_st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static segrl_status sg_grow(const char *fn, const char *path, segrl_safetensors *st, int64_t add) {
    if (st->n + add <= st->cap) return SEGRL_OK;
    int64_t cap = st->cap ? st->cap : 16;
    while (cap < st->n + add)
        cap *= 2;
    sg_st_entry *e = segrl_realloc(st->ents, (size_t)cap * sizeof *e);
    if (!e) return sg_fail(SEGRL_ERR_ALLOC, "%s: %s: out of memory", fn, path);
    st->ents = e;
    st->cap = cap;
    return SEGRL_OK;
}

/* The header's tensor entries (and, when want_meta, its __metadata__) into st. */
static segrl_status sg_parse_header(const char *fn, const char *path, segrl_safetensors *st,
                                    int32_t file, const cJSON *root, int want_meta) {
    const sg_st_file *f = &st->files[file];
    if (!cJSON_IsObject(root))
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: header is not a JSON object", fn, path);
    int64_t first = st->n;
    for (const cJSON *it = root->child; it; it = it->next) {
        const char *name = it->string;
        if (!name)
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: header entry without a name", fn, path);
        if (strcmp(name, "__metadata__") == 0) {
            if (!cJSON_IsObject(it))
                return sg_fail(SEGRL_ERR_INVALID, "%s: %s: __metadata__ is not an object", fn,
                               path);
            int64_t k = 0;
            for (const cJSON *m = it->child; m; m = m->next, k++)
                if (!cJSON_IsString(m) || !m->string)
                    return sg_fail(SEGRL_ERR_INVALID,
                                   "%s: %s: __metadata__ entry '%s' is not a string", fn, path,
                                   m->string ? m->string : "?");
            if (!want_meta || k == 0) continue;
            if (st->mkeys)
                return sg_fail(SEGRL_ERR_INVALID, "%s: %s: __metadata__ given twice", fn, path);
            st->mkeys = segrl_malloc((size_t)k * sizeof(char *));
            st->mvals = segrl_malloc((size_t)k * sizeof(char *));
            if (!st->mkeys || !st->mvals)
                return sg_fail(SEGRL_ERR_ALLOC, "%s: %s: out of memory", fn, path);
            for (const cJSON *m = it->child; m; m = m->next) {
                st->mkeys[st->nmeta] = sg_strdup(m->string);
                st->mvals[st->nmeta] = sg_strdup(m->valuestring);
                st->nmeta++;
                if (!st->mkeys[st->nmeta - 1] || !st->mvals[st->nmeta - 1])
                    return sg_fail(SEGRL_ERR_ALLOC, "%s: %s: out of memory", fn, path);
            }
            continue;
        }
        if (!cJSON_IsObject(it))
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: tensor '%s': entry is not an object", fn,
                           path, name);
        const cJSON *jd = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *jo = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(jd))
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: tensor '%s': missing or non-string dtype",
                           fn, path, name);
        int dtype = sg_st_type_of(jd->valuestring);
        if (dtype < 0)
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: tensor '%s': unknown dtype '%s'", fn, path,
                           name, jd->valuestring);
        if (!cJSON_IsArray(js))
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: tensor '%s': missing or non-array shape", fn,
                           path, name);
        int nd = cJSON_GetArraySize(js);
        if (nd > SEGRL_ST_MAX_DIMS)
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: tensor '%s': %d dimensions (at most %d)", fn,
                           path, name, nd, SEGRL_ST_MAX_DIMS);
        sg_st_entry e;
        memset(&e, 0, sizeof e);
        e.dtype = dtype;
        e.ndim = nd;
        e.file = file;
        /* product(shape) * size, refusing overflow of 64 bits */
        uint64_t bytes = sg_st_types[dtype].size, prod_zero = 0;
        int d = 0;
        for (const cJSON *x = js->child; x; x = x->next, d++) {
            uint64_t v;
            if (!sg_json_u64(x, &v))
                return sg_fail(SEGRL_ERR_INVALID,
                               "%s: %s: tensor '%s': shape[%d] is not a non-negative integer", fn,
                               path, name, d);
            e.shape[d] = (int64_t)v;
            if (v == 0)
                prod_zero = 1;
            else if (!prod_zero && bytes > UINT64_MAX / v)
                return sg_fail(SEGRL_ERR_INVALID,
                               "%s: %s: tensor '%s': declared size overflows 64 bits", fn, path,
                               name);
            else if (!prod_zero)
                bytes *= v;
        }
        if (prod_zero) bytes = 0;
        uint64_t b, en;
        if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !sg_json_u64(jo->child, &b) ||
            !sg_json_u64(jo->child->next, &en))
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: %s: tensor '%s': data_offsets must be [begin, end] integers", fn,
                           path, name);
        if (b > en)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: %s: tensor '%s': data_offsets [%llu, %llu] has begin > end", fn,
                           path, name, (unsigned long long)b, (unsigned long long)en);
        if (en > f->data_size)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: %s: tensor '%s': data_offsets [%llu, %llu] past the end of the "
                           "data buffer (%llu bytes)",
                           fn, path, name, (unsigned long long)b, (unsigned long long)en,
                           (unsigned long long)f->data_size);
        if (en - b != bytes)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: %s: tensor '%s': data_offsets span %llu bytes but shape and dtype "
                           "%s need %llu",
                           fn, path, name, (unsigned long long)(en - b), sg_st_types[dtype].name,
                           (unsigned long long)bytes);
        e.begin = b;
        e.end = en;
        SG_TRY(sg_grow(fn, path, st, 1));
        e.name = sg_strdup(name);
        if (!e.name) return sg_fail(SEGRL_ERR_ALLOC, "%s: %s: out of memory", fn, path);
        st->ents[st->n++] = e;
    }
    /* file order, then no two non-empty tensors may share a byte */
    if (st->n > first)
        qsort(st->ents + first, (size_t)(st->n - first), sizeof *st->ents, sg_cmp_begin);
    const sg_st_entry *prev = NULL;
    for (int64_t i = first; i < st->n; i++) {
        const sg_st_entry *e = &st->ents[i];
        if (e->begin == e->end) continue;
        if (prev && e->begin < prev->end)
            return sg_fail(SEGRL_ERR_INVALID,
                           "%s: %s: tensor '%s' [%llu, %llu) overlaps tensor '%s' [%llu, %llu)", fn,
                           path, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
                           prev->name, (unsigned long long)prev->begin,
                           (unsigned long long)prev->end);
        prev = e;
    }
    return SEGRL_OK;
}

/* Maps `path` as file number st->nfiles and parses its header. */
static segrl_status sg_open_file(const char *fn, const char *path, segrl_safetensors *st,
                                 int want_meta) {
    sg_st_file *files = segrl_realloc(st->files, (size_t)(st->nfiles + 1) * sizeof *files);
    if (!files) return sg_fail(SEGRL_ERR_ALLOC, "%s: %s: out of memory", fn, path);
    st->files = files;
    int32_t fi = st->nfiles;
    sg_st_file *f = &files[fi];
    memset(f, 0, sizeof *f);
    st->nfiles++;

    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: cannot open: %s", fn, path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: not a regular file", fn, path);
    }
    if (sb.st_size < 8) {
        close(fd);
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: %s: %lld bytes, too short for the 8-byte header length", fn, path,
                       (long long)sb.st_size);
    }
    void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (map == MAP_FAILED)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: mmap failed: %s", fn, path, strerror(err));
    f->map = map;
    f->size = (size_t)sb.st_size;
    const uint8_t *p = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i]; /* little-endian */
    if (hlen > SG_ST_MAX_HEADER)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: header length %llu exceeds the 100 MB limit", fn,
                       path, (unsigned long long)hlen);
    if (hlen > f->size - 8)
        return sg_fail(SEGRL_ERR_INVALID,
                       "%s: %s: header length %llu runs past the end of the file (%llu bytes)", fn,
                       path, (unsigned long long)hlen, (unsigned long long)f->size);
    if (hlen < 2)
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: header length %llu is too short for JSON", fn,
                       path, (unsigned long long)hlen);
    f->data = p + 8 + hlen;
    f->data_size = f->size - 8 - hlen;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)p + 8, (size_t)hlen, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - ((const char *)p + 8)) : 0;
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: header is not valid JSON (near byte %zu)", fn,
                       path, at);
    }
    /* only trailing spaces (the writer's padding) may follow the JSON */
    for (const char *q = end; q < (const char *)p + 8 + hlen; q++)
        if (*q != ' ' && *q != '\n' && *q != '\r' && *q != '\t' && *q != '\0') {
            cJSON_Delete(root);
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: trailing bytes after the header JSON", fn,
                           path);
        }
    segrl_status s = sg_parse_header(fn, path, st, fi, root, want_meta);
    cJSON_Delete(root);
    return s;
}

segrl_status segrl_safetensors_open(const char *path, segrl_safetensors **out) {
    const char *fn = "segrl_safetensors_open";
    if (!path) return sg_fail(SEGRL_ERR_INVALID, "%s: path: NULL", fn);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    segrl_safetensors *st = segrl_malloc(sizeof *st);
    if (!st) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    memset(st, 0, sizeof *st);
    segrl_status s = sg_open_file(fn, path, st, 1);
    if (!s) s = sg_index(fn, path, st);
    if (s) {
        segrl_safetensors_close(st);
        return s;
    }
    *out = st;
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// model directories

static char *sg_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = segrl_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* The whole of a small text file, NUL-terminated. */
static segrl_status sg_slurp(const char *fn, const char *path, char **out, size_t *out_len) {
    FILE *f = fopen(path, "rb");
    if (!f) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: cannot open: %s", fn, path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = segrl_malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n < cap - 1) break;
        if (cap > SG_ST_MAX_HEADER) {
            fclose(f);
            segrl_free(buf);
            return sg_fail(SEGRL_ERR_INVALID, "%s: %s: larger than 100 MB", fn, path);
        }
        char *nb = segrl_realloc(buf, cap * 2);
        if (!nb) segrl_free(buf);
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return sg_fail(SEGRL_ERR_ALLOC, "%s: %s: out of memory", fn, path);
    if (bad) {
        segrl_free(buf);
        return sg_fail(SEGRL_ERR_INVALID, "%s: %s: read error", fn, path);
    }
    buf[n] = '\0';
    *out = buf;
    if (out_len) *out_len = n;
    return SEGRL_OK;
}

static int sg_cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static segrl_status sg_open_index(const char *fn, const char *dir, const char *ipath,
                                  segrl_safetensors *st) {
    char *text = NULL;
    size_t len = 0;
    SG_TRY(sg_slurp(fn, ipath, &text, &len));
    cJSON *root = cJSON_ParseWithLength(text, len);
    segrl_free(text);
    if (!root) return sg_fail(SEGRL_ERR_INVALID, "%s: %s: not valid JSON", fn, ipath);
    segrl_status s = SEGRL_OK;
    const char **shards = NULL;
    int64_t nsh = 0;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        s = sg_fail(SEGRL_ERR_INVALID, "%s: %s: no \"weight_map\" object", fn, ipath);
        goto done;
    }
    int64_t nw = cJSON_GetArraySize(wm);
    if (nw == 0) {
        s = sg_fail(SEGRL_ERR_INVALID, "%s: %s: weight_map is empty", fn, ipath);
        goto done;
    }
    shards = segrl_malloc((size_t)nw * sizeof *shards);
    if (!shards) {
        s = sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
        goto done;
    }
    for (const cJSON *it = wm->child; it; it = it->next) {
        if (!cJSON_IsString(it) || !it->string) {
            s = sg_fail(SEGRL_ERR_INVALID, "%s: %s: weight_map['%s'] is not a string", fn, ipath,
                        it->string ? it->string : "?");
            goto done;
        }
        const char *v = it->valuestring;
        /* a shard is a plain file name inside the directory */
        if (!v[0] || strchr(v, '/') || strchr(v, '\\') || strcmp(v, ".") == 0 ||
            strcmp(v, "..") == 0) {
            s = sg_fail(SEGRL_ERR_INVALID,
                        "%s: %s: weight_map['%s']: shard '%s' is not a file "
                        "name inside the directory",
                        fn, ipath, it->string, v);
            goto done;
        }
        shards[nsh++] = v;
    }
    qsort(shards, (size_t)nsh, sizeof *shards, sg_cmp_str);
    int64_t u = 0;
    for (int64_t i = 0; i < nsh; i++)
        if (u == 0 || strcmp(shards[u - 1], shards[i]) != 0) shards[u++] = shards[i];
    nsh = u;
    for (int64_t i = 0; i < nsh; i++) {
        char *p = sg_join(dir, shards[i]);
        if (!p) {
            s = sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
            goto done;
        }
        s = sg_open_file(fn, p, st, i == 0);
        segrl_free(p);
        if (s) goto done;
    }
    s = sg_index(fn, dir, st);
    if (s) goto done;
    for (const cJSON *it = wm->child; it; it = it->next) {
        int64_t e = sg_lookup(st, it->string);
        int32_t want = -1;
        for (int64_t i = 0; i < nsh; i++)
            if (strcmp(shards[i], it->valuestring) == 0) want = (int32_t)i;
        if (e < 0 || st->ents[e].file != want) {
            s = sg_fail(SEGRL_ERR_INVALID, "%s: %s: tensor '%s' is not in its shard '%s'", fn,
                        ipath, it->string, it->valuestring);
            goto done;
        }
    }
done:
    segrl_free(shards);
    cJSON_Delete(root);
    return s;
}

segrl_status segrl_safetensors_open_dir(const char *dir, segrl_safetensors **out) {
    const char *fn = "segrl_safetensors_open_dir";
    if (!dir) return sg_fail(SEGRL_ERR_INVALID, "%s: dir: NULL", fn);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    segrl_safetensors *st = segrl_malloc(sizeof *st);
    char *single = sg_join(dir, "model.safetensors");
    char *index = sg_join(dir, "model.safetensors.index.json");
    segrl_status s = SEGRL_OK;
    if (st) memset(st, 0, sizeof *st);
    if (!st || !single || !index) {
        s = sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
        goto done;
    }
    struct stat sb;
    if (stat(single, &sb) == 0) {
        s = sg_open_file(fn, single, st, 1);
        if (!s) s = sg_index(fn, single, st);
    } else if (stat(index, &sb) == 0) {
        s = sg_open_index(fn, dir, index, st);
    } else {
        s = sg_fail(SEGRL_ERR_INVALID,
                    "%s: %s: neither model.safetensors nor model.safetensors.index.json found", fn,
                    dir);
    }
done:
    segrl_free(single);
    segrl_free(index);
    if (s) {
        segrl_safetensors_close(st);
        return s;
    }
    *out = st;
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// queries

int64_t segrl_safetensors_count(const segrl_safetensors *st) { return st ? st->n : 0; }

static void sg_fill(const segrl_safetensors *st, int64_t i, segrl_st_tensor *out) {
    const sg_st_entry *e = &st->ents[i];
    segrl_st_tensor t;
    memset(&t, 0, sizeof t);
    t.name = e->name;
    t.dtype = e->dtype;
    t.ndim = e->ndim;
    memcpy(t.shape, e->shape, sizeof t.shape);
    t.data = st->files[e->file].data + e->begin;
    t.nbytes = (size_t)(e->end - e->begin);
    *out = t;
}

segrl_status segrl_safetensors_get(const segrl_safetensors *st, int64_t index,
                                   segrl_st_tensor *out) {
    const char *fn = "segrl_safetensors_get";
    if (!st) return sg_fail(SEGRL_ERR_INVALID, "%s: st: NULL", fn);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    if (index < 0 || index >= st->n)
        return sg_fail(SEGRL_ERR_INVALID, "%s: index: %lld out of range [0, %lld)", fn,
                       (long long)index, (long long)st->n);
    sg_fill(st, index, out);
    return SEGRL_OK;
}

int64_t segrl_safetensors_index(const segrl_safetensors *st, const char *name) {
    return name ? sg_lookup(st, name) : -1;
}

segrl_status segrl_safetensors_find(const segrl_safetensors *st, const char *name,
                                    segrl_st_tensor *out) {
    const char *fn = "segrl_safetensors_find";
    if (!st) return sg_fail(SEGRL_ERR_INVALID, "%s: st: NULL", fn);
    if (!name) return sg_fail(SEGRL_ERR_INVALID, "%s: name: NULL", fn);
    if (!out) return sg_fail(SEGRL_ERR_INVALID, "%s: out: NULL", fn);
    int64_t i = sg_lookup(st, name);
    if (i < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: name: tensor '%s' not found", fn, name);
    sg_fill(st, i, out);
    return SEGRL_OK;
}

const char *segrl_safetensors_metadata(const segrl_safetensors *st, const char *key) {
    if (!st || !key) return NULL;
    for (int64_t i = 0; i < st->nmeta; i++)
        if (strcmp(st->mkeys[i], key) == 0) return st->mvals[i];
    return NULL;
}

int64_t segrl_safetensors_metadata_count(const segrl_safetensors *st) { return st ? st->nmeta : 0; }

segrl_status segrl_safetensors_metadata_at(const segrl_safetensors *st, int64_t index,
                                           const char **out_key, const char **out_value) {
    const char *fn = "segrl_safetensors_metadata_at";
    if (!st) return sg_fail(SEGRL_ERR_INVALID, "%s: st: NULL", fn);
    if (index < 0 || index >= st->nmeta)
        return sg_fail(SEGRL_ERR_INVALID, "%s: index: %lld out of range [0, %lld)", fn,
                       (long long)index, (long long)st->nmeta);
    if (out_key) *out_key = st->mkeys[index];
    if (out_value) *out_value = st->mvals[index];
    return SEGRL_OK;
}

// ----------------------------------------------------------------------------
// writing

typedef struct sg_buf {
    char *p;
    size_t n, cap;
    int oom;
} sg_buf;

static void sg_put(sg_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = segrl_realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sg_puts(sg_buf *b, const char *s) { sg_put(b, s, strlen(s)); }

/* A JSON string literal: quotes, backslashes and control bytes escaped, other bytes as they are. */
static void sg_put_json_str(sg_buf *b, const char *s) {
    sg_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[8];
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            sg_put(b, tmp, 2);
        } else if (c < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            sg_puts(b, tmp);
        } else {
            sg_put(b, (const char *)&c, 1);
        }
    }
    sg_puts(b, "\"");
}

typedef struct sg_went {
    const segrl_st_tensor *t;
    uint64_t nbytes;
} sg_went;

static int sg_cmp_write(const void *a, const void *b) {
    const sg_went *x = a, *y = b;
    size_t sx = segrl_st_dtype_size((segrl_st_dtype)x->t->dtype);
    size_t sy = segrl_st_dtype_size((segrl_st_dtype)y->t->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->t->name, y->t->name);
}

static int sg_cmp_name(const void *a, const void *b) {
    return strcmp(((const sg_went *)a)->t->name, ((const sg_went *)b)->t->name);
}

static int sg_write_all(int fd, const void *p, uint64_t n) {
    const char *c = p;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t w = write(fd, c, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        c += w;
        n -= (uint64_t)w;
    }
    return 0;
}

segrl_status segrl_safetensors_write(const char *path, const segrl_st_tensor *tensors, int64_t n,
                                     const char *const *meta_keys, const char *const *meta_values,
                                     int64_t n_meta) {
    const char *fn = "segrl_safetensors_write";
    if (!path || !path[0]) return sg_fail(SEGRL_ERR_INVALID, "%s: path: NULL or empty", fn);
    if (n < 0) return sg_fail(SEGRL_ERR_INVALID, "%s: n: %lld < 0", fn, (long long)n);
    if (n > 0 && !tensors) return sg_fail(SEGRL_ERR_INVALID, "%s: tensors: NULL", fn);
    if (n_meta < 0)
        return sg_fail(SEGRL_ERR_INVALID, "%s: n_meta: %lld < 0", fn, (long long)n_meta);
    if (n_meta > 0 && (!meta_keys || !meta_values))
        return sg_fail(SEGRL_ERR_INVALID, "%s: meta_keys/meta_values: NULL", fn);
    for (int64_t i = 0; i < n_meta; i++)
        if (!meta_keys[i] || !meta_values[i])
            return sg_fail(SEGRL_ERR_INVALID, "%s: meta_keys[%lld]: NULL key or value", fn,
                           (long long)i);

    sg_went *w = segrl_malloc((size_t)(n ? n : 1) * sizeof *w);
    if (!w) return sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    segrl_status s = SEGRL_OK;
    sg_buf hb = {0};
    char *tmp = NULL;
    int fd = -1;
    for (int64_t i = 0; i < n; i++) {
        const segrl_st_tensor *t = &tensors[i];
        if (!t->name || !t->name[0] || strcmp(t->name, "__metadata__") == 0) {
            s = sg_fail(SEGRL_ERR_INVALID, "%s: tensors[%lld]: name NULL, empty or __metadata__",
                        fn, (long long)i);
            goto done;
        }
        size_t es = segrl_st_dtype_size((segrl_st_dtype)t->dtype);
        if (es == 0) {
            s = sg_fail(SEGRL_ERR_INVALID, "%s: tensor '%s': unknown dtype %d", fn, t->name,
                        t->dtype);
            goto done;
        }
        if (t->ndim < 0 || t->ndim > SEGRL_ST_MAX_DIMS) {
            s = sg_fail(SEGRL_ERR_INVALID, "%s: tensor '%s': ndim %d out of range [0, %d]", fn,
                        t->name, t->ndim, SEGRL_ST_MAX_DIMS);
            goto done;
        }
        uint64_t bytes = es;
        int zero = 0;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) {
                s = sg_fail(SEGRL_ERR_INVALID, "%s: tensor '%s': shape[%d] = %lld < 0", fn, t->name,
                            d, (long long)t->shape[d]);
                goto done;
            }
            uint64_t v = (uint64_t)t->shape[d];
            if (v == 0)
                zero = 1;
            else if (!zero && bytes > ((uint64_t)1 << 53) / v) {
                s = sg_fail(SEGRL_ERR_INVALID, "%s: tensor '%s': size overflows", fn, t->name);
                goto done;
            } else if (!zero)
                bytes *= v;
        }
        if (zero) bytes = 0;
        if (bytes > 0 && !t->data) {
            s = sg_fail(SEGRL_ERR_INVALID, "%s: tensor '%s': data NULL", fn, t->name);
            goto done;
        }
        w[i].t = t;
        w[i].nbytes = bytes;
    }
    qsort(w, (size_t)n, sizeof *w, sg_cmp_name);
    for (int64_t i = 1; i < n; i++)
        if (strcmp(w[i - 1].t->name, w[i].t->name) == 0) {
            s = sg_fail(SEGRL_ERR_INVALID, "%s: tensor '%s': name given twice", fn, w[i].t->name);
            goto done;
        }
    for (int64_t i = 0; i < n_meta; i++)
        for (int64_t j = i + 1; j < n_meta; j++)
            if (strcmp(meta_keys[i], meta_keys[j]) == 0) {
                s = sg_fail(SEGRL_ERR_INVALID, "%s: meta_keys[%lld]: '%s' given twice", fn,
                            (long long)j, meta_keys[j]);
                goto done;
            }
    qsort(w, (size_t)n, sizeof *w, sg_cmp_write);

    /* header */
    sg_puts(&hb, "{");
    if (n_meta > 0) {
        sg_puts(&hb, "\"__metadata__\":{");
        for (int64_t i = 0; i < n_meta; i++) {
            if (i) sg_puts(&hb, ",");
            sg_put_json_str(&hb, meta_keys[i]);
            sg_puts(&hb, ":");
            sg_put_json_str(&hb, meta_values[i]);
        }
        sg_puts(&hb, "}");
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        const segrl_st_tensor *t = w[i].t;
        char num[64];
        if (i || n_meta > 0) sg_puts(&hb, ",");
        sg_put_json_str(&hb, t->name);
        sg_puts(&hb, ":{\"dtype\":\"");
        sg_puts(&hb, segrl_st_dtype_name((segrl_st_dtype)t->dtype));
        sg_puts(&hb, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            sg_puts(&hb, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + w[i].nbytes));
        sg_puts(&hb, num);
        off += w[i].nbytes;
    }
    sg_puts(&hb, "}");
    while ((8 + hb.n) % 8)
        sg_puts(&hb, " ");
    if (hb.oom) {
        s = sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
        goto done;
    }
    if (hb.n > SG_ST_MAX_HEADER) {
        s = sg_fail(SEGRL_ERR_INVALID, "%s: header of %zu bytes exceeds the 100 MB limit", fn,
                    hb.n);
        goto done;
    }

    size_t pl = strlen(path);
    tmp = segrl_malloc(pl + 5);
    if (!tmp) {
        s = sg_fail(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
        goto done;
    }
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        s = sg_fail(SEGRL_ERR_INVALID, "%s: %s: cannot create: %s", fn, tmp, strerror(errno));
        goto done;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)hb.n >> (8 * i));
    int bad = sg_write_all(fd, len8, 8) || sg_write_all(fd, hb.p, hb.n);
    for (int64_t i = 0; i < n && !bad; i++)
        if (w[i].nbytes) bad = sg_write_all(fd, w[i].t->data, w[i].nbytes);
    if (!bad) bad = fsync(fd);
    int err = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    fd = -1;
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        unlink(tmp);
        s = sg_fail(SEGRL_ERR_INVALID, "%s: %s: write failed: %s", fn, path, strerror(err));
        goto done;
    }
    /* make the rename itself durable */
    {
        char *dir = sg_strdup(path);
        if (dir) {
            char *slash = strrchr(dir, '/');
            const char *d = ".";
            if (slash == dir)
                d = "/";
            else if (slash) {
                *slash = '\0';
                d = dir;
            }
            int dfd = open(d, O_RDONLY);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
            segrl_free(dir);
        }
    }
done:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    segrl_free(tmp);
    segrl_free(hb.p);
    segrl_free(w);
    return s;
}
