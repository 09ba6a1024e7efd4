/* test-safetensors.c — the safetensors reader and writer: round trips of every dtype, metadata,
 * the file layout the format prescribes, every malformation the reader must reject (with a
 * message naming the tensor), sharded model directories, and the writer's own argument checks. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include "segrl/segrl.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[256];

static const char *path_in(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        printf("cannot write %s\n", path);
        exit(2);
    }
    fwrite(p, 1, n, f);
    fclose(f);
}

/* A raw file: 8-byte length, the header text as given, then `data_bytes` zero bytes. */
static void write_raw(const char *path, const char *header, size_t data_bytes) {
    size_t hn = strlen(header);
    uint8_t *buf = h_alloc(8 + hn + data_bytes);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hn >> (8 * i));
    memcpy(buf + 8, header, hn);
    write_bytes(path, buf, 8 + hn + data_bytes);
    free(buf);
}

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

// ----------------------------------------------------------------------------

static void test_round_trip(void) {
    enum { NT = 15 };
    segrl_st_tensor t[NT + 2];
    void *bufs[NT + 2];
    memset(t, 0, sizeof t);
    char names[NT + 2][32];
    h_seed(11);
    for (int i = 0; i < NT; i++) {
        snprintf(names[i], sizeof names[i], "layer.%d.%s", i, segrl_st_dtype_name(i));
        t[i].name = names[i];
        t[i].dtype = i;
        t[i].ndim = 1 + i % 3;
        for (int d = 0; d < t[i].ndim; d++)
            t[i].shape[d] = h_int(1, 5);
        size_t n = segrl_st_dtype_size(i);
        CHECK(n > 0, "dtype %d has a size", i);
        for (int d = 0; d < t[i].ndim; d++)
            n *= (size_t)t[i].shape[d];
        uint8_t *b = h_alloc(n);
        for (size_t k = 0; k < n; k++)
            b[k] = (uint8_t)h_next();
        bufs[i] = b;
        t[i].data = b;
        t[i].nbytes = n;
    }
    /* a scalar and an empty tensor */
    float scalar = 3.5f;
    t[NT] = (segrl_st_tensor){
        .name = "scalar", .dtype = SEGRL_ST_F32, .ndim = 0, .data = &scalar, .nbytes = 4};
    bufs[NT] = NULL;
    t[NT + 1] = (segrl_st_tensor){.name = "empty \"quoted\"\\name",
                                  .dtype = SEGRL_ST_BF16,
                                  .ndim = 2,
                                  .shape = {3, 0},
                                  .data = NULL,
                                  .nbytes = 0};
    bufs[NT + 1] = NULL;
    const char *keys[] = {"format", "note"};
    const char *vals[] = {"pt", "tab\there \"q\" \xc3\xa9"};
    const char *p = path_in("rt.safetensors");
    segrl_status s = segrl_safetensors_write(p, t, NT + 2, keys, vals, 2);
    CHECK(s == SEGRL_OK, "write: %s", segrl_last_error());
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    CHECK(!file_exists(tmp), "no .tmp left behind");

    /* layout: header length + header is a multiple of 8; header padded with spaces */
    FILE *f = fopen(p, "rb");
    uint8_t len8[8] = {0};
    CHECK(f && fread(len8, 1, 8, f) == 8, "read length");
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | len8[i];
    CHECK((8 + hl) % 8 == 0, "header padded to 8 bytes (N = %llu)", (unsigned long long)hl);
    if (f) fclose(f);

    segrl_safetensors *st = NULL;
    s = segrl_safetensors_open(p, &st);
    CHECK(s == SEGRL_OK, "open: %s", segrl_last_error());
    if (!st) return;
    CHECK(segrl_safetensors_count(st) == NT + 2, "count %lld",
          (long long)segrl_safetensors_count(st));
    for (int i = 0; i < NT + 2; i++) {
        segrl_st_tensor g;
        s = segrl_safetensors_find(st, t[i].name, &g);
        CHECK(s == SEGRL_OK, "find %s: %s", t[i].name, segrl_last_error());
        if (s) continue;
        CHECK(strcmp(g.name, t[i].name) == 0, "name");
        CHECK(g.dtype == t[i].dtype, "%s dtype %d vs %d", t[i].name, g.dtype, t[i].dtype);
        CHECK(g.ndim == t[i].ndim, "%s ndim", t[i].name);
        CHECK(memcmp(g.shape, t[i].shape, sizeof g.shape) == 0, "%s shape", t[i].name);
        CHECK(g.nbytes == t[i].nbytes, "%s nbytes %zu vs %zu", t[i].name, g.nbytes, t[i].nbytes);
        CHECK(g.nbytes == 0 || memcmp(g.data, t[i].data, g.nbytes) == 0, "%s data", t[i].name);
        /* every tensor starts at a multiple of its element size in the file (mmap is page
         * aligned, so the pointer is too) */
        CHECK((uintptr_t)g.data % segrl_st_dtype_size(g.dtype) == 0, "%s aligned", t[i].name);
        CHECK(segrl_safetensors_index(st, t[i].name) >= 0, "index");
    }
    /* get() walks file order: ascending offsets, descending element size */
    size_t prev = 16;
    for (int64_t i = 0; i < segrl_safetensors_count(st); i++) {
        segrl_st_tensor g;
        CHECK(segrl_safetensors_get(st, i, &g) == SEGRL_OK, "get %lld", (long long)i);
        size_t es = segrl_st_dtype_size(g.dtype);
        if (g.nbytes) {
            CHECK(es <= prev, "order by element size");
            prev = es;
        }
    }
    segrl_st_tensor g;
    CHECK(segrl_safetensors_get(st, NT + 2, &g) == SEGRL_ERR_INVALID, "get out of range");
    CHECK(segrl_safetensors_find(st, "nope", &g) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "'nope' not found"),
          "find missing: %s", segrl_last_error());
    CHECK(segrl_safetensors_index(st, "nope") == -1, "index missing");
    CHECK(segrl_safetensors_metadata_count(st) == 2, "meta count");
    const char *v = segrl_safetensors_metadata(st, "note");
    CHECK(v && strcmp(v, vals[1]) == 0, "meta value escaped and back: %s", v ? v : "(null)");
    CHECK(segrl_safetensors_metadata(st, "none") == NULL, "meta missing");
    const char *k0 = NULL, *v0 = NULL;
    CHECK(segrl_safetensors_metadata_at(st, 0, &k0, &v0) == SEGRL_OK && strcmp(k0, "format") == 0 &&
              strcmp(v0, "pt") == 0,
          "meta_at");
    segrl_safetensors_close(st);

    /* rewriting replaces the file in one step */
    s = segrl_safetensors_write(p, t, 1, NULL, NULL, 0);
    CHECK(s == SEGRL_OK, "rewrite: %s", segrl_last_error());
    s = segrl_safetensors_open(p, &st);
    CHECK(s == SEGRL_OK && segrl_safetensors_count(st) == 1, "rewritten file has 1 tensor");
    CHECK(segrl_safetensors_metadata_count(st) == 0, "no metadata");
    segrl_safetensors_close(st);

    /* an empty file set is legal */
    s = segrl_safetensors_write(path_in("none.safetensors"), NULL, 0, NULL, NULL, 0);
    CHECK(s == SEGRL_OK, "write 0 tensors: %s", segrl_last_error());
    s = segrl_safetensors_open(path_in("none.safetensors"), &st);
    CHECK(s == SEGRL_OK && segrl_safetensors_count(st) == 0, "open 0 tensors: %s",
          segrl_last_error());
    segrl_safetensors_close(st);
    for (int i = 0; i < NT + 2; i++)
        free(bufs[i]);
}

/* A file the reader must refuse; `needle` must appear in the message. */
static void expect_bad(const char *what, const char *header, size_t data_bytes,
                       const char *needle) {
    const char *p = path_in("bad.safetensors");
    write_raw(p, header, data_bytes);
    segrl_safetensors *st = (segrl_safetensors *)(uintptr_t)0x1;
    segrl_status s = segrl_safetensors_open(p, &st);
    CHECK(s == SEGRL_ERR_INVALID, "%s: status %d", what, (int)s);
    CHECK(st == (segrl_safetensors *)(uintptr_t)0x1, "%s: out untouched", what);
    CHECK(strstr(segrl_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", what,
          segrl_last_error(), needle);
}

static void test_malformed(void) {
    expect_bad("bad JSON", "{\"a\":{\"dtype\":\"F32\",", 0, "not valid JSON");
    expect_bad("not an object", "[1,2,3]", 0, "not a JSON object");
    expect_bad("offsets past the end",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
               "tensor 'w': data_offsets [0, 16] past the end");
    expect_bad("overlap",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
               16, "overlaps");
    expect_bad("huge declared size",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
               "\"data_offsets\":[0,16]}}",
               16, "tensor 'w': declared size overflows");
    expect_bad("size mismatch", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,8]}}",
               8, "tensor 'w': data_offsets span 8 bytes but shape and dtype BF16 need 6");
    expect_bad("begin > end", "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8,
               "begin > end");
    expect_bad("unknown dtype", "{\"w\":{\"dtype\":\"F12\",\"shape\":[1],\"data_offsets\":[0,1]}}",
               1, "tensor 'w': unknown dtype 'F12'");
    expect_bad("negative shape", "{\"w\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}",
               0, "tensor 'w': shape[0]");
    expect_bad("fractional shape",
               "{\"w\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 1,
               "tensor 'w': shape[0]");
    expect_bad("too many dims",
               "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
               "tensor 'w': 9 dimensions");
    expect_bad("missing offsets", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1,
               "tensor 'w': data_offsets");
    expect_bad("three offsets", "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}",
               2, "tensor 'w': data_offsets");
    expect_bad("missing shape", "{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1,
               "tensor 'w': missing or non-array shape");
    expect_bad("entry not object", "{\"w\":5}", 0, "tensor 'w'");
    expect_bad("metadata not strings", "{\"__metadata__\":{\"a\":1}}", 0,
               "__metadata__ entry 'a' is not a string");
    expect_bad("metadata not object", "{\"__metadata__\":[]}", 0, "__metadata__ is not an object");
    expect_bad("duplicate names",
               "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
               "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
               2, "tensor 'w' appears twice");
    expect_bad("metadata twice", "{\"__metadata__\":{\"a\":\"1\"},\"__metadata__\":{\"b\":\"2\"}}",
               0, "__metadata__ given twice");
    expect_bad("trailing garbage",
               "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}  x", 1,
               "trailing bytes");
    expect_bad("offsets beyond 2^53",
               "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1e300]}}", 1,
               "tensor 'w': data_offsets");

    /* the length field itself */
    const char *p = path_in("bad.safetensors");
    segrl_safetensors *st = NULL;
    uint8_t shortf[5] = {1, 0, 0, 0, 0};
    write_bytes(p, shortf, sizeof shortf);
    CHECK(segrl_safetensors_open(p, &st) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "too short"),
          "short file: %s", segrl_last_error());
    uint8_t longlen[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    write_bytes(p, longlen, sizeof longlen);
    CHECK(segrl_safetensors_open(p, &st) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "100 MB"),
          "huge header length: %s", segrl_last_error());
    uint8_t pastend[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(p, pastend, sizeof pastend);
    CHECK(segrl_safetensors_open(p, &st) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "past the end of the file"),
          "header past the end: %s", segrl_last_error());
    CHECK(segrl_safetensors_open(path_in("missing.safetensors"), &st) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "cannot open"),
          "missing file: %s", segrl_last_error());
    CHECK(segrl_safetensors_open(g_dir, &st) == SEGRL_ERR_INVALID, "a directory");
    CHECK(segrl_safetensors_open(NULL, &st) == SEGRL_ERR_INVALID, "NULL path");

    /* accepted edge cases: holes between tensors, zero-size tensors sharing an offset */
    write_raw(p,
              "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
              "\"b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]},"
              "\"c\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
              6);
    segrl_status s = segrl_safetensors_open(p, &st);
    CHECK(s == SEGRL_OK, "holes and empty tensors accepted: %s", segrl_last_error());
    if (!s) {
        segrl_st_tensor g;
        segrl_safetensors_get(st, 0, &g);
        CHECK(strcmp(g.name, "c") == 0, "file order starts at offset 0 (%s)", g.name);
        segrl_safetensors_close(st);
    }

    /* random corruption of a valid file never crashes and never reads out of bounds */
    segrl_st_tensor t[3];
    float a[6] = {1, 2, 3, 4, 5, 6};
    int64_t b[2] = {7, 8};
    t[0] = (segrl_st_tensor){
        .name = "a", .dtype = SEGRL_ST_F32, .ndim = 2, .shape = {2, 3}, .data = a};
    t[1] =
        (segrl_st_tensor){.name = "b", .dtype = SEGRL_ST_I64, .ndim = 1, .shape = {2}, .data = b};
    t[2] = (segrl_st_tensor){
        .name = "c", .dtype = SEGRL_ST_U8, .ndim = 1, .shape = {3}, .data = "xyz"};
    const char *good = path_in("good.safetensors");
    CHECK(segrl_safetensors_write(good, t, 3, NULL, NULL, 0) == SEGRL_OK, "write good");
    FILE *f = fopen(good, "rb");
    uint8_t img[4096];
    size_t n = f ? fread(img, 1, sizeof img, f) : 0;
    if (f) fclose(f);
    int opened = 0;
    h_seed(5);
    for (int trial = 0; trial < 300; trial++) {
        uint8_t cpy[4096];
        memcpy(cpy, img, n);
        int flips = (int)h_int(1, 3);
        for (int k = 0; k < flips; k++)
            cpy[h_int(0, (int64_t)n - 1)] = (uint8_t)h_next();
        size_t len = trial % 5 == 0 ? (size_t)h_int(0, (int64_t)n) : n; /* truncations too */
        write_bytes(p, cpy, len);
        if (segrl_safetensors_open(p, &st) == SEGRL_OK) {
            opened++;
            for (int64_t i = 0; i < segrl_safetensors_count(st); i++) {
                segrl_st_tensor g;
                segrl_safetensors_get(st, i, &g);
                volatile uint8_t sum = 0;
                for (size_t k = 0; k < g.nbytes; k++)
                    sum += ((const uint8_t *)g.data)[k];
                (void)sum;
            }
            segrl_safetensors_close(st);
        }
    }
    CHECK(opened < 300, "corruption is detected at least sometimes (%d of 300 opened)", opened);
}

static void test_writer_errors(void) {
    float a[2] = {1, 2};
    segrl_st_tensor t[2];
    t[0] =
        (segrl_st_tensor){.name = "x", .dtype = SEGRL_ST_F32, .ndim = 1, .shape = {2}, .data = a};
    t[1] = (segrl_st_tensor){.name = "x", .dtype = SEGRL_ST_U8, .ndim = 1, .shape = {2}, .data = a};
    const char *p = path_in("w.safetensors");
    CHECK(segrl_safetensors_write(p, t, 2, NULL, NULL, 0) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "'x': name given twice"),
          "duplicate across dtypes: %s", segrl_last_error());
    CHECK(!file_exists(p), "nothing written on error");
    t[1].name = "y";
    t[1].data = NULL;
    CHECK(segrl_safetensors_write(p, t, 2, NULL, NULL, 0) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "'y': data NULL"),
          "NULL data: %s", segrl_last_error());
    t[1].data = a;
    t[1].dtype = 99;
    CHECK(segrl_safetensors_write(p, t, 2, NULL, NULL, 0) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "'y': unknown dtype"),
          "bad dtype: %s", segrl_last_error());
    t[1].dtype = SEGRL_ST_U8;
    t[1].shape[0] = -2;
    CHECK(segrl_safetensors_write(p, t, 2, NULL, NULL, 0) == SEGRL_ERR_INVALID, "negative shape");
    t[1].shape[0] = 2;
    t[1].ndim = 9;
    CHECK(segrl_safetensors_write(p, t, 2, NULL, NULL, 0) == SEGRL_ERR_INVALID, "ndim 9");
    t[1].ndim = 1;
    t[1].name = "__metadata__";
    CHECK(segrl_safetensors_write(p, t, 2, NULL, NULL, 0) == SEGRL_ERR_INVALID, "reserved name");
    t[1].name = "y";
    const char *k[] = {"a", "a"}, *v[] = {"1", "2"};
    CHECK(segrl_safetensors_write(p, t, 2, k, v, 2) == SEGRL_ERR_INVALID, "duplicate meta key");
    CHECK(!file_exists(p), "still nothing written");
    CHECK(segrl_safetensors_write(path_in("no/such/dir/x.safetensors"), t, 2, NULL, NULL, 0) ==
                  SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "cannot create"),
          "unwritable path: %s", segrl_last_error());
    CHECK(segrl_safetensors_write(p, t, 2, NULL, NULL, 0) == SEGRL_OK, "then fine");
}

static void test_sharded(void) {
    /* model dir with two shards and an index */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/model", g_dir);
    mkdir(dir, 0755);
    float w0[4] = {1, 2, 3, 4}, w1[2] = {5, 6}, w2[3] = {7, 8, 9};
    segrl_st_tensor s1[2] = {
        {.name = "model.embed_tokens.weight",
         .dtype = SEGRL_ST_F32,
         .ndim = 2,
         .shape = {2, 2},
         .data = w0},
        {.name = "model.norm.weight", .dtype = SEGRL_ST_F32, .ndim = 1, .shape = {2}, .data = w1}};
    segrl_st_tensor s2[1] = {
        {.name = "lm_head.weight", .dtype = SEGRL_ST_F32, .ndim = 1, .shape = {3}, .data = w2}};
    char p1[700], p2[700], pi[700];
    snprintf(p1, sizeof p1, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", dir);
    snprintf(pi, sizeof pi, "%s/model.safetensors.index.json", dir);
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    CHECK(segrl_safetensors_write(p1, s1, 2, mk, mv, 1) == SEGRL_OK, "shard 1");
    CHECK(segrl_safetensors_write(p2, s2, 1, NULL, NULL, 0) == SEGRL_OK, "shard 2");
    const char *index = "{\"metadata\":{\"total_size\":36},\"weight_map\":{"
                        "\"lm_head.weight\":\"model-00002-of-00002.safetensors\","
                        "\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\","
                        "\"model.norm.weight\":\"model-00001-of-00002.safetensors\"}}";
    write_bytes(pi, index, strlen(index));
    segrl_safetensors *st = NULL;
    segrl_status s = segrl_safetensors_open_dir(dir, &st);
    CHECK(s == SEGRL_OK, "open_dir sharded: %s", segrl_last_error());
    if (!s) {
        CHECK(segrl_safetensors_count(st) == 3, "3 tensors");
        segrl_st_tensor g;
        CHECK(segrl_safetensors_find(st, "lm_head.weight", &g) == SEGRL_OK && g.nbytes == 12 &&
                  ((const float *)g.data)[2] == 9.0f,
              "tensor from shard 2");
        CHECK(segrl_safetensors_find(st, "model.norm.weight", &g) == SEGRL_OK &&
                  ((const float *)g.data)[1] == 6.0f,
              "tensor from shard 1");
        const char *fmt = segrl_safetensors_metadata(st, "format");
        CHECK(fmt && strcmp(fmt, "pt") == 0, "metadata of the first shard");
        segrl_safetensors_close(st);
    }
    /* index naming a tensor its shard lacks */
    const char *bad1 = "{\"weight_map\":{\"lm_head.weight\":\"model-00001-of-00002.safetensors\"}}";
    write_bytes(pi, bad1, strlen(bad1));
    CHECK(segrl_safetensors_open_dir(dir, &st) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "'lm_head.weight' is not in its shard"),
          "wrong shard: %s", segrl_last_error());
    const char *bad2 = "{\"weight_map\":{\"x\":\"../etc/passwd\"}}";
    write_bytes(pi, bad2, strlen(bad2));
    CHECK(segrl_safetensors_open_dir(dir, &st) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "not a file name inside"),
          "path traversal: %s", segrl_last_error());
    const char *bad3 = "{\"weight_map\":{\"x\":\"model-00003-of-00002.safetensors\"}}";
    write_bytes(pi, bad3, strlen(bad3));
    CHECK(segrl_safetensors_open_dir(dir, &st) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "cannot open"),
          "missing shard: %s", segrl_last_error());
    write_bytes(pi, "{\"weight_map\": 3", 16);
    CHECK(segrl_safetensors_open_dir(dir, &st) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "not valid JSON"),
          "bad index JSON: %s", segrl_last_error());
    /* the same name in two shards */
    CHECK(segrl_safetensors_write(p2, s1, 1, NULL, NULL, 0) == SEGRL_OK, "dup shard");
    const char *dup =
        "{\"weight_map\":{\"model.embed_tokens.weight\":\"model-00001-of-00002.safetensors\","
        "\"model.norm.weight\":\"model-00002-of-00002.safetensors\"}}";
    write_bytes(pi, dup, strlen(dup));
    CHECK(segrl_safetensors_open_dir(dir, &st) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "appears twice"),
          "name in two shards: %s", segrl_last_error());

    /* a single-file directory is preferred */
    char ps[700];
    snprintf(ps, sizeof ps, "%s/model.safetensors", dir);
    CHECK(segrl_safetensors_write(ps, s2, 1, NULL, NULL, 0) == SEGRL_OK, "single");
    s = segrl_safetensors_open_dir(dir, &st);
    CHECK(s == SEGRL_OK && segrl_safetensors_count(st) == 1, "open_dir single: %s",
          segrl_last_error());
    if (!s) segrl_safetensors_close(st);
    CHECK(segrl_safetensors_open_dir(g_dir, &st) == SEGRL_ERR_INVALID &&
              strstr(segrl_last_error(), "neither model.safetensors"),
          "empty dir: %s", segrl_last_error());
    unlink(ps);
    unlink(p1);
    unlink(p2);
    unlink(pi);
    rmdir(dir);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/segrl-st-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        printf("mkdtemp failed\n");
        return 2;
    }
    CHECK(segrl_st_dtype_size(SEGRL_ST_BF16) == 2 && segrl_st_dtype_size(SEGRL_ST_F64) == 8 &&
              segrl_st_dtype_size(SEGRL_ST_BOOL) == 1 && segrl_st_dtype_size(99) == 0,
          "dtype sizes");
    CHECK((int)SEGRL_ST_BF16 == (int)SEGRL_DTYPE_BF16 && (int)SEGRL_ST_U8 == (int)SEGRL_DTYPE_U8,
          "first six match segrl_dtype");
    CHECK(strcmp(segrl_st_dtype_name(SEGRL_ST_F8_E4M3), "F8_E4M3") == 0, "dtype name");
    test_round_trip();
    test_malformed();
    test_writer_errors();
    test_sharded();
    const char *files[] = {"rt.safetensors", "none.safetensors", "bad.safetensors",
                           "good.safetensors", "w.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(path_in(files[i]));
    rmdir(g_dir);
    return h_finish();
}
