/* st-diff — compares the tensors of two safetensors model directories (or files) for
 * tests/test-train-dist.sh: the same names, dtypes and shapes, and every f32/bf16/f16 element
 * within `atol + rtol * |b|`.
 *   st-diff A B ATOL RTOL
 * Prints the largest absolute difference (and where) and the number of elements compared; exit
 * status 0 when everything is within tolerance, 1 when not, 2 on an unreadable input. */
#include <segrl/safetensors.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static segrl_safetensors *open_any(const char *path) {
    struct stat sb;
    segrl_safetensors *st = NULL;
    segrl_status s = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)
                         ? segrl_safetensors_open_dir(path, &st)
                         : segrl_safetensors_open(path, &st);
    if (s != SEGRL_OK) {
        fprintf(stderr, "st-diff: %s: %s\n", path, segrl_last_error());
        exit(2);
    }
    return st;
}

static double elem(const segrl_st_tensor *t, int64_t i) {
    if (t->dtype == SEGRL_ST_F32) {
        float f;
        memcpy(&f, (const char *)t->data + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const char *)t->data + 2 * i, 2);
    if (t->dtype == SEGRL_ST_BF16) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    /* f16 */
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
    return (h & 0x8000) ? -v : v;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: st-diff A B ATOL RTOL\n");
        return 2;
    }
    double atol = atof(argv[3]), rtol = atof(argv[4]);
    segrl_safetensors *a = open_any(argv[1]), *b = open_any(argv[2]);
    int64_t n = segrl_safetensors_count(a), bad = 0, compared = 0;
    if (n != segrl_safetensors_count(b)) {
        printf("st-diff: %lld tensors vs %lld\n", (long long)n,
               (long long)segrl_safetensors_count(b));
        return 1;
    }
    double worst = 0;
    char where[256] = "";
    for (int64_t k = 0; k < n; k++) {
        segrl_st_tensor ta, tb;
        if (segrl_safetensors_get(a, k, &ta) != SEGRL_OK ||
            segrl_safetensors_find(b, ta.name, &tb) != SEGRL_OK) {
            printf("st-diff: tensor %s: %s\n", ta.name ? ta.name : "?", segrl_last_error());
            return 1;
        }
        if (ta.dtype != tb.dtype || ta.nbytes != tb.nbytes || ta.ndim != tb.ndim ||
            memcmp(ta.shape, tb.shape, sizeof ta.shape) != 0) {
            printf("st-diff: %s: dtype or shape differs\n", ta.name);
            return 1;
        }
        if (ta.dtype != SEGRL_ST_F32 && ta.dtype != SEGRL_ST_BF16 && ta.dtype != SEGRL_ST_F16) {
            bad += memcmp(ta.data, tb.data, ta.nbytes) != 0;
            continue;
        }
        int64_t m = (int64_t)(ta.nbytes / segrl_st_dtype_size((segrl_st_dtype)ta.dtype));
        for (int64_t i = 0; i < m; i++) {
            double x = elem(&ta, i), y = elem(&tb, i), d = fabs(x - y);
            compared++;
            if (!(d <= atol + rtol * fabs(y))) bad++;
            if (d > worst || d != d) {
                worst = d;
                snprintf(where, sizeof where, "%s[%lld]: %.9g vs %.9g", ta.name, (long long)i, x, y);
            }
        }
    }
    printf("st-diff: %lld tensors, %lld elements, max |a-b| %.3g%s%s, %lld outside %g + %g|b|\n",
           (long long)n, (long long)compared, worst, where[0] ? " at " : "", where, (long long)bad,
           atol, rtol);
    segrl_safetensors_close(a);
    segrl_safetensors_close(b);
    return bad ? 1 : 0;
}
