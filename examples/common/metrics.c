/* metrics.c — metrics JSONL writer/reader and the progress line; see ex_metrics.h.
 * (plots are in plot.c) */
#define _POSIX_C_SOURCE 200809L
#include "ex_metrics.h"
#include "ex_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MAX_NAMES 128
#define NAME_CAP 64

struct ex_metrics {
    FILE *f;
    char *path;
    double t0;          /* ex_now() at open */
    double wall_offset; /* wall_s of the resumed run's last kept line */
    int32_t n;
    char names[MAX_NAMES][NAME_CAP];
    double values[MAX_NAMES];
};

static char *dup_s(const char *s) {
    size_t n = strlen(s);
    char *p = malloc(n + 1);
    if (p) memcpy(p, s, n + 1);
    return p;
}

/* keeps the lines with step <= resume_step; *out_wall: wall_s of the last kept line */
static segrl_status truncate_after(const char *path, int64_t resume_step, double *out_wall) {
    *out_wall = 0;
    FILE *in = fopen(path, "rb");
    if (!in) return SEGRL_OK; /* nothing to keep */
    size_t n = strlen(path);
    char *tmp = malloc(n + 5);
    if (!tmp) {
        fclose(in);
        return segrl_set_error(SEGRL_ERR_ALLOC, "ex_metrics_open: out of memory");
    }
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp", 5);
    FILE *out = fopen(tmp, "wb");
    if (!out) {
        fclose(in);
        free(tmp);
        return segrl_set_error(SEGRL_ERR_INVALID, "ex_metrics_open: %s: cannot write", path);
    }
    char *buf = NULL;
    size_t cap = 0, len = 0;
    int r, ok = 1;
    while ((r = ex_read_line(in, &buf, &cap, &len)) == 1) {
        cJSON *o = cJSON_ParseWithLength(buf, len);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "step");
        /* a torn last line (killed mid-write) or a later step is dropped */
        if (cJSON_IsNumber(st) && st->valuedouble <= (double)resume_step) {
            const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "wall_s");
            if (cJSON_IsNumber(w)) *out_wall = w->valuedouble;
            if (fwrite(buf, 1, len, out) != len || fputc('\n', out) == EOF) ok = 0;
        }
        cJSON_Delete(o);
    }
    free(buf);
    fclose(in);
    if (fclose(out) != 0 || r < 0) ok = 0;
    if (ok && rename(tmp, path) != 0) ok = 0;
    if (!ok) remove(tmp);
    free(tmp);
    if (!ok) return segrl_set_error(SEGRL_ERR_INVALID, "ex_metrics_open: %s: cannot rewrite for "
                                    "resume", path);
    return SEGRL_OK;
}

segrl_status ex_metrics_open(const char *path, int64_t resume_step, ex_metrics **out) {
    if (!path || !out)
        return segrl_set_error(SEGRL_ERR_INVALID, "ex_metrics_open: %s: NULL", path ? "out" : "path");
    double wall = 0;
    if (resume_step >= 0) {
        segrl_status st = truncate_after(path, resume_step, &wall);
        if (st != SEGRL_OK) return st;
    }
    ex_metrics *m = calloc(1, sizeof *m);
    if (!m) return segrl_set_error(SEGRL_ERR_ALLOC, "ex_metrics_open: out of memory");
    m->path = dup_s(path);
    m->f = fopen(path, resume_step >= 0 ? "ab" : "wb");
    if (!m->path || !m->f) {
        if (m->f) fclose(m->f);
        free(m->path);
        free(m);
        return segrl_set_error(SEGRL_ERR_INVALID, "ex_metrics_open: %s: cannot open for writing",
                               path);
    }
    m->t0 = ex_now();
    m->wall_offset = wall;
    *out = m;
    return SEGRL_OK;
}

segrl_status ex_metrics_set(ex_metrics *m, const char *name, double value) {
    if (!m || !name) return segrl_set_error(SEGRL_ERR_INVALID, "ex_metrics_set: %s: NULL",
                                            m ? "name" : "m");
    size_t len = strlen(name);
    if (len == 0 || len >= NAME_CAP || strcmp(name, "step") == 0 || strcmp(name, "wall_s") == 0)
        return segrl_set_error(SEGRL_ERR_INVALID, "ex_metrics_set: name: \"%s\" is empty, longer "
                               "than %d characters, or reserved (step, wall_s)", name, NAME_CAP - 1);
    for (int32_t i = 0; i < m->n; i++)
        if (strcmp(m->names[i], name) == 0) {
            m->values[i] = value;
            return SEGRL_OK;
        }
    if (m->n == MAX_NAMES)
        return segrl_set_error(SEGRL_ERR_INVALID, "ex_metrics_set: name: more than %d values on "
                               "one line", MAX_NAMES);
    memcpy(m->names[m->n], name, len + 1);
    m->values[m->n++] = value;
    return SEGRL_OK;
}

int ex_metrics_get(const ex_metrics *m, const char *name, double *out) {
    if (!m || !name) return 0;
    for (int32_t i = 0; i < m->n; i++)
        if (strcmp(m->names[i], name) == 0) {
            if (out) *out = m->values[i];
            return 1;
        }
    return 0;
}

double ex_metrics_wall(const ex_metrics *m) { return m ? m->wall_offset + ex_now() - m->t0 : 0; }

segrl_status ex_metrics_write(ex_metrics *m, int64_t step) {
    if (!m) return segrl_set_error(SEGRL_ERR_INVALID, "ex_metrics_write: m: NULL");
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddNumberToObject(o, "step", (double)step) &&
             cJSON_AddNumberToObject(o, "wall_s", round(ex_metrics_wall(m) * 1000) / 1000);
    for (int32_t i = 0; ok && i < m->n; i++) {
        double v = m->values[i];
        ok = isfinite(v) ? cJSON_AddNumberToObject(o, m->names[i], v) != NULL
                         : cJSON_AddNullToObject(o, m->names[i]) != NULL;
    }
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s) return segrl_set_error(SEGRL_ERR_ALLOC, "ex_metrics_write: out of memory");
    int w = fputs(s, m->f) >= 0 && fputc('\n', m->f) != EOF && fflush(m->f) == 0;
    free(s);
    if (!w) return segrl_set_error(SEGRL_ERR_INVALID, "ex_metrics_write: %s: write failed",
                                   m->path);
    m->n = 0;
    return SEGRL_OK;
}

void ex_metrics_close(ex_metrics *m) {
    if (!m) return;
    if (m->f) fclose(m->f);
    free(m->path);
    free(m);
}

segrl_status ex_metrics_read_series(const char *path, const char *x_key, const char *y_key,
                                    double **out_x, double **out_y, int64_t *out_n) {
    const char *fn = "ex_metrics_read_series";
    if (!path || !x_key || !y_key || !out_x || !out_y || !out_n)
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: an argument is NULL", fn);
    FILE *f = fopen(path, "rb");
    if (!f) return segrl_set_error(SEGRL_ERR_INVALID, "%s: %s: cannot open for reading", fn, path);
    double *xs = NULL, *ys = NULL;
    int64_t n = 0, cap = 0, lineno = 0;
    char *buf = NULL;
    size_t bcap = 0, len = 0;
    segrl_status st = SEGRL_OK;
    int r;
    while ((r = ex_read_line(f, &buf, &bcap, &len)) == 1) {
        lineno++;
        if (len == 0) continue;
        cJSON *o = cJSON_ParseWithLength(buf, len);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            st = segrl_set_error(SEGRL_ERR_INVALID, "%s: %s:%lld: not a JSON object", fn, path,
                                 (long long)lineno);
            break;
        }
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, x_key);
        const cJSON *y = cJSON_GetObjectItemCaseSensitive(o, y_key);
        if (cJSON_IsNumber(x) && cJSON_IsNumber(y) && isfinite(x->valuedouble) &&
            isfinite(y->valuedouble)) {
            if (n == cap) {
                int64_t nc = cap ? cap * 2 : 256;
                double *nx = realloc(xs, (size_t)nc * sizeof *nx);
                if (nx) xs = nx;
                double *ny = nx ? realloc(ys, (size_t)nc * sizeof *ny) : NULL;
                if (ny) ys = ny;
                if (!nx || !ny) {
                    cJSON_Delete(o);
                    st = segrl_set_error(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
                    break;
                }
                cap = nc;
            }
            xs[n] = x->valuedouble;
            ys[n] = y->valuedouble;
            n++;
        }
        cJSON_Delete(o);
    }
    if (st == SEGRL_OK && r < 0) st = segrl_set_error(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    free(buf);
    fclose(f);
    if (st != SEGRL_OK || n == 0) {
        free(xs);
        free(ys);
        xs = ys = NULL;
        if (st != SEGRL_OK) return st;
    }
    *out_x = xs;
    *out_y = ys;
    *out_n = n;
    return SEGRL_OK;
}

segrl_status ex_metrics_set_rewards(ex_metrics *m, const float *r, int64_t num_prompts,
                                    int64_t group_size, float correct_threshold) {
    if (!m || !r || num_prompts < 1 || group_size < 1)
        return segrl_set_error(SEGRL_ERR_INVALID, "ex_metrics_set_rewards: m and r are required, "
                               "num_prompts and group_size >= 1");
    int64_t n = num_prompts * group_size, correct = 0, mixed = 0;
    double sum = 0, sq = 0;
    for (int64_t p = 0; p < num_prompts; p++) {
        const float *g = r + p * group_size;
        int differs = 0;
        for (int64_t j = 0; j < group_size; j++) {
            sum += g[j];
            correct += g[j] >= correct_threshold;
            differs |= g[j] != g[0];
        }
        mixed += differs;
    }
    double mean = sum / (double)n;
    for (int64_t i = 0; i < n; i++) sq += ((double)r[i] - mean) * ((double)r[i] - mean);
    segrl_status st = ex_metrics_set(m, "reward_mean", mean);
    if (st == SEGRL_OK) st = ex_metrics_set(m, "reward_std", sqrt(sq / (double)n));
    if (st == SEGRL_OK) st = ex_metrics_set(m, "accuracy", (double)correct / (double)n);
    if (st == SEGRL_OK) st = ex_metrics_set(m, "mixed_groups", (double)mixed / (double)num_prompts);
    return st;
}

static const char *const NAMES[] = {
    "reward_mean", "reward_std", "accuracy", "mixed_groups", "test_accuracy", "loss", "pg_loss",
    "kl", "entropy", "value_loss", "clip_frac_low", "clip_frac_high", "dual_clip_frac",
    "approx_kl", "grad_norm", "lr", "response_len", "tokens_per_s", "samples", "time_gen_s",
    "time_score_s", "time_adv_s", "time_update_s", "sft_loss"};
static const char *const PLOT[] = {"reward_mean", "test_accuracy", "loss", "kl", "entropy",
                                   "response_len"};

const char *const *ex_metrics_names(int32_t *out_n) {
    if (out_n) *out_n = (int32_t)(sizeof NAMES / sizeof NAMES[0]);
    return NAMES;
}

const char *const *ex_metrics_plot_keys(int32_t *out_n) {
    if (out_n) *out_n = (int32_t)(sizeof PLOT / sizeof PLOT[0]);
    return PLOT;
}

// ----------------------------------------------------------------------------
// progress

void ex_progress_init(ex_progress *p, FILE *out, const char *label, int64_t first, int64_t total,
                      int32_t mode, int64_t log_every) {
    memset(p, 0, sizeof *p);
    p->out = out ? out : stdout;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->first = first;
    p->total = total;
    p->log_every = log_every > 0 ? log_every : 1;
    p->t0 = ex_now();
    p->last_draw = -1;
    if (mode == EX_PROGRESS_ON) p->live = 1;
    else if (mode == EX_PROGRESS_OFF) p->live = 0;
    else p->live = isatty(fileno(p->out));
}

double ex_progress_eta(const ex_progress *p, int64_t step) {
    int64_t done = step - p->first;
    if (done <= 0) return -1;
    double per = (ex_now() - p->t0) / (double)done;
    int64_t left = p->total - step;
    return per * (double)(left > 0 ? left : 0);
}

static void format_line(ex_progress *p, int64_t step, const char *extra, int bar) {
    char eta[32], el[32], per[48] = "";
    int64_t done = step - p->first;
    double elapsed = ex_now() - p->t0;
    ex_format_duration(ex_progress_eta(p, step), eta, sizeof eta);
    ex_format_duration(elapsed, el, sizeof el);
    if (done > 0) {
        double s = elapsed / (double)done;
        if (s >= 1) snprintf(per, sizeof per, " %.2fs/step", s);
        else snprintf(per, sizeof per, " %.1f steps/s", s > 0 ? 1 / s : 0.0);
    }
    double frac = p->total > 0 ? (double)step / (double)p->total : 1;
    if (frac < 0) frac = 0;
    if (frac > 1) frac = 1;
    char bars[32] = "";
    if (bar) {
        int w = 20, k = (int)(frac * w);
        bars[0] = '[';
        for (int i = 0; i < w; i++) bars[1 + i] = i < k ? '#' : '.';
        bars[w + 1] = ']';
        bars[w + 2] = ' ';
        bars[w + 3] = 0;
    }
    snprintf(p->line, sizeof p->line, "%s%s%s%lld/%lld %3.0f%% %s%s ETA %s%s%s", p->label,
             *p->label ? " " : "", bars, (long long)step, (long long)p->total, 100 * frac, el, per,
             eta, extra && *extra ? " | " : "", extra ? extra : "");
}

void ex_progress_update(ex_progress *p, int64_t step, const char *extra) {
    double now = ex_now();
    if (p->live) {
        if (step < p->total && p->last_draw >= 0 && now - p->last_draw < 0.1) return;
        format_line(p, step, extra, 1);
        /* a line wider than the terminal would wrap and "\r" could no longer redraw it */
        struct winsize ws;
        if (ioctl(fileno(p->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 8 &&
            strlen(p->line) >= ws.ws_col)
            p->line[ws.ws_col - 1] = 0;
        /* "\r" + erase to end of line: a shorter line leaves nothing behind */
        fprintf(p->out, "\r\033[K%s", p->line);
        fflush(p->out);
        p->drawn = 1;
        p->last_draw = now;
    } else {
        if (step % p->log_every != 0 && step != p->total) return;
        format_line(p, step, extra, 0);
        fprintf(p->out, "%s\n", p->line);
        fflush(p->out);
    }
}

void ex_progress_log(ex_progress *p, const char *fmt, ...) {
    if (p->live && p->drawn) fprintf(p->out, "\r\033[K");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fputc('\n', p->out);
    if (p->live && p->drawn) fprintf(p->out, "%s", p->line);
    fflush(p->out);
}

void ex_progress_finish(ex_progress *p) {
    if (p->live && p->drawn) {
        fputc('\n', p->out);
        fflush(p->out);
    }
    p->drawn = 0;
}
