/* plot.c — PNG plots of metrics JSONL files through gnuplot (5.x; Debian gnuplot-nox).
 * The script written beside the image holds its data inline (datablocks), so it can be rerun or
 * edited by hand: gnuplot out.gp. The pngcairo terminal is used when gnuplot has it, else png. */
#define _POSIX_C_SOURCE 200809L
#include "ex_metrics.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int ex_plot_available(char *buf, size_t cap) {
    const char *path = getenv("PATH");
    if (path && *path) {
        const char *p = path;
        while (*p) {
            const char *colon = strchr(p, ':');
            size_t n = colon ? (size_t)(colon - p) : strlen(p);
            char cand[4096];
            if (n == 0) snprintf(cand, sizeof cand, "./gnuplot");
            else snprintf(cand, sizeof cand, "%.*s/gnuplot", (int)n, p);
            struct stat sb;
            if (stat(cand, &sb) == 0 && S_ISREG(sb.st_mode) && access(cand, X_OK) == 0) {
                if (buf && cap) snprintf(buf, cap, "%s", cand);
                return 1;
            }
            p += n + (colon ? 1 : 0);
        }
    }
    if (buf && cap)
        snprintf(buf, cap, "gnuplot is not on PATH (Debian: apt-get install gnuplot-nox); "
                           "no plot written");
    return 0;
}

/* writes s as a gnuplot single-quoted string ('' stands for ') */
static void put_quoted(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        if (*s != '\n') fputc(*s, f);
    }
    fputc('\'', f);
}

/* out.png -> out.gp (or out.png.gp when there is no .png ending); new string */
static char *script_path(const char *png, const char *ext) {
    size_t n = strlen(png);
    char *s = malloc(n + strlen(ext) + 1);
    if (!s) return NULL;
    memcpy(s, png, n + 1);
    if (n > 4 && strcmp(png + n - 4, ".png") == 0) s[n - 4] = 0;
    strcat(s, ext);
    return s;
}

static void put_terminal(FILE *f, int w, int h, const char *png) {
    fprintf(f, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
               "  set terminal pngcairo size %d,%d noenhanced\n"
               "} else {\n"
               "  set terminal png size %d,%d noenhanced\n"
               "}\nset output ",
            w, h, w, h);
    put_quoted(f, png);
    fputc('\n', f);
}

/* Points of one series; with 40 points or more a third column holds a centered moving average
 * over w = n / 20 points on each side (RL curves are noisy), drawn over the raw line. Returns 1
 * when the smoothed column was written. */
static int put_block(FILE *f, int id, const double *x, const double *y, int64_t n) {
    int smooth = n >= 40;
    int64_t w = n / 40;
    fprintf(f, "$d%d << EOD\n", id);
    for (int64_t i = 0; i < n; i++) {
        fprintf(f, "%.10g %.10g", x[i], y[i]);
        if (smooth) {
            int64_t lo = i - w < 0 ? 0 : i - w, hi = i + w >= n ? n - 1 : i + w;
            double s = 0;
            for (int64_t j = lo; j <= hi; j++) s += y[j];
            fprintf(f, " %.10g", s / (double)(hi - lo + 1));
        }
        fputc('\n', f);
    }
    fprintf(f, "EOD\n");
    return smooth;
}

/* runs gnuplot on the script; stderr goes to a log whose first lines make the error message */
static segrl_status run_gnuplot(const char *fn, const char *gnuplot, const char *script,
                                const char *png) {
    char *log = script_path(png, ".gnuplot.log");
    if (!log) return segrl_set_error(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    remove(png);
    pid_t pid = fork();
    if (pid < 0) {
        free(log);
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: cannot start gnuplot (fork failed)", fn);
    }
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        char *const argv[] = {(char *)"gnuplot", (char *)script, NULL};
        execv(gnuplot, argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    struct stat sb;
    int made = stat(png, &sb) == 0 && sb.st_size > 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && made) {
        remove(log);
        free(log);
        return SEGRL_OK;
    }
    char first[300] = "";
    FILE *lf = fopen(log, "rb");
    if (lf) {
        size_t r = fread(first, 1, sizeof first - 1, lf);
        first[r] = 0;
        fclose(lf);
        for (char *p = first; *p; p++)
            if (*p == '\n') *p = ' ';
    }
    segrl_status st = segrl_set_error(SEGRL_ERR_INVALID, "%s: gnuplot failed (exit %d%s) on %s: "
                                      "%s (log: %s)", fn, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                                      made ? "" : ", no image", script, first, log);
    free(log);
    return st;
}

segrl_status ex_plot_metrics(const char *jsonl, const char *const *keys, int32_t num_keys,
                             const char *x_key, const char *out_png) {
    const char *fn = "ex_plot_metrics";
    if (!jsonl || !keys || num_keys < 1 || !out_png)
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: jsonl, keys (>= 1) and out_png are "
                               "required", fn);
    if (!x_key) x_key = "step";
    char gnuplot[4096];
    if (!ex_plot_available(gnuplot, sizeof gnuplot))
        return segrl_set_error(SEGRL_ERR_UNSUPPORTED, "%s: %s", fn, gnuplot);
    char *script = script_path(out_png, ".gp");
    if (!script) return segrl_set_error(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    FILE *f = fopen(script, "wb");
    if (!f) {
        segrl_status st = segrl_set_error(SEGRL_ERR_INVALID, "%s: %s: cannot write", fn, script);
        free(script);
        return st;
    }
    fprintf(f, "# written by ex_plot_metrics from %s; rerun with: gnuplot <this file>\n", jsonl);
    /* data first: only the keys present become panels */
    int32_t *present = calloc((size_t)num_keys, sizeof *present);
    int *smoothed = calloc((size_t)num_keys, sizeof *smoothed);
    int32_t np = 0;
    segrl_status st = present && smoothed ? SEGRL_OK
                                          : segrl_set_error(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    for (int32_t k = 0; st == SEGRL_OK && k < num_keys; k++) {
        double *x = NULL, *y = NULL;
        int64_t n = 0;
        st = ex_metrics_read_series(jsonl, x_key, keys[k], &x, &y, &n);
        if (st == SEGRL_OK && n > 0) {
            smoothed[k] = put_block(f, k, x, y, n);
            present[np++] = k;
        }
        free(x);
        free(y);
    }
    if (st == SEGRL_OK && np == 0)
        st = segrl_set_error(SEGRL_ERR_INVALID, "%s: %s: none of the %d requested metrics is in "
                             "the file", fn, jsonl, (int)num_keys);
    if (st == SEGRL_OK) {
        int cols = np > 1 ? 2 : 1, rows = (np + cols - 1) / cols;
        put_terminal(f, 560 * cols, 360 * rows, out_png);
        fprintf(f, "set grid\nset key off\nset multiplot layout %d,%d\n", rows, cols);
        for (int32_t i = 0; i < np; i++) {
            fprintf(f, "set title ");
            put_quoted(f, keys[present[i]]);
            fprintf(f, "\nset xlabel ");
            put_quoted(f, x_key);
            if (smoothed[present[i]])
                fprintf(f, "\nplot $d%d using 1:2 with lines lw 1 lc rgb '#b0b0d8', "
                           "$d%d using 1:3 with lines lw 2.5 lc rgb '#3040a0'\n",
                        present[i], present[i]);
            else
                fprintf(f, "\nplot $d%d using 1:2 with linespoints pt 7 ps 0.5 lw 1.5 "
                           "lc rgb '#3040a0'\n", present[i]);
        }
        fprintf(f, "unset multiplot\nset output\n");
    }
    free(present);
    free(smoothed);
    if (fclose(f) != 0 && st == SEGRL_OK)
        st = segrl_set_error(SEGRL_ERR_INVALID, "%s: %s: cannot write", fn, script);
    if (st == SEGRL_OK) st = run_gnuplot(fn, gnuplot, script, out_png);
    free(script);
    return st;
}

segrl_status ex_plot_compare(const ex_plot_series *series, int32_t num_series, const char *title,
                             const char *x_label, const char *y_label, const char *out_png) {
    const char *fn = "ex_plot_compare";
    if (!series || num_series < 1 || !out_png)
        return segrl_set_error(SEGRL_ERR_INVALID, "%s: series (>= 1) and out_png are required", fn);
    for (int32_t i = 0; i < num_series; i++)
        if (!series[i].path || !series[i].x_key || !series[i].y_key)
            return segrl_set_error(SEGRL_ERR_INVALID, "%s: series[%d]: path, x_key and y_key are "
                                   "required", fn, (int)i);
    char gnuplot[4096];
    if (!ex_plot_available(gnuplot, sizeof gnuplot))
        return segrl_set_error(SEGRL_ERR_UNSUPPORTED, "%s: %s", fn, gnuplot);
    char *script = script_path(out_png, ".gp");
    if (!script) return segrl_set_error(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    FILE *f = fopen(script, "wb");
    if (!f) {
        segrl_status st = segrl_set_error(SEGRL_ERR_INVALID, "%s: %s: cannot write", fn, script);
        free(script);
        return st;
    }
    fprintf(f, "# written by ex_plot_compare; rerun with: gnuplot <this file>\n");
    int32_t *present = calloc((size_t)num_series, sizeof *present);
    int32_t np = 0;
    segrl_status st = present ? SEGRL_OK : segrl_set_error(SEGRL_ERR_ALLOC, "%s: out of memory", fn);
    for (int32_t k = 0; st == SEGRL_OK && k < num_series; k++) {
        double *x = NULL, *y = NULL;
        int64_t n = 0;
        st = ex_metrics_read_series(series[k].path, series[k].x_key, series[k].y_key, &x, &y, &n);
        if (st == SEGRL_OK && n > 0) {
            put_block(f, k, x, y, n);
            present[np++] = k;
        }
        free(x);
        free(y);
    }
    if (st == SEGRL_OK && np == 0)
        st = segrl_set_error(SEGRL_ERR_INVALID, "%s: no series has any data", fn);
    if (st == SEGRL_OK) {
        put_terminal(f, 800, 520, out_png);
        fprintf(f, "set grid\nset key outside right top\n");
        if (title) fprintf(f, "set title "), put_quoted(f, title), fputc('\n', f);
        fprintf(f, "set xlabel ");
        put_quoted(f, x_label ? x_label : series[present[0]].x_key);
        fprintf(f, "\nset ylabel ");
        put_quoted(f, y_label ? y_label : series[present[0]].y_key);
        fprintf(f, "\nplot ");
        for (int32_t i = 0; i < np; i++) {
            const ex_plot_series *s = &series[present[i]];
            fprintf(f, "%s$d%d using 1:2 with linespoints pt 7 ps 0.5 lw 1.5 title ", i ? ", \\\n     " : "",
                    present[i]);
            put_quoted(f, s->label ? s->label : s->path);
        }
        fprintf(f, "\nset output\n");
    }
    free(present);
    if (fclose(f) != 0 && st == SEGRL_OK)
        st = segrl_set_error(SEGRL_ERR_INVALID, "%s: %s: cannot write", fn, script);
    if (st == SEGRL_OK) st = run_gnuplot(fn, gnuplot, script, out_png);
    free(script);
    return st;
}
