/* ex_metrics.h — what a trainer writes while it runs: a metrics JSONL file (one line per step),
 * a live progress line with an ETA (plain log lines when stdout is not a terminal), and PNG plots
 * of the metrics drawn by gnuplot. */
#ifndef SEGRL_EX_METRICS_H
#define SEGRL_EX_METRICS_H

#include <segrl/core.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

// ----------------------------------------------------------------------------
// metrics JSONL

/* One JSON object per line: {"step": 12, "wall_s": 34.5, "<name>": <number>, ...} in the order
 * the names were set. Non-finite numbers are written as null. Each line is flushed when written,
 * so a killed run leaves complete lines. */
typedef struct ex_metrics ex_metrics;

/* Opens path for writing. resume_step < 0: a new file (truncated). resume_step >= 0: the lines
 * of an earlier run with step <= resume_step are kept (the file is rewritten without the others,
 * which a killed run may have written after its last checkpoint) and wall_s continues from the
 * last kept line. *out: free with ex_metrics_close. */
segrl_status ex_metrics_open(const char *path, int64_t resume_step, ex_metrics **out);
/* Sets a named value of the line being built (replaces an earlier value of the same name).
 * Names: up to 63 characters; at most 128 names per line. */
segrl_status ex_metrics_set(ex_metrics *m, const char *name, double value);
/* The value set for name on the current line; 0 when it is not set (then *out is untouched). */
int ex_metrics_get(const ex_metrics *m, const char *name, double *out);
/* Writes the line for `step` with the values set since the last write, then clears them. */
segrl_status ex_metrics_write(ex_metrics *m, int64_t step);
/* Seconds since open (plus the resumed run's wall_s). */
double ex_metrics_wall(const ex_metrics *m);
void ex_metrics_close(ex_metrics *m);

/* Reads the (x, y) pairs of a metrics JSONL where both keys are finite numbers on a line (lines
 * without y, e.g. evaluation metrics written every N steps, are skipped). x_key "step" or any
 * other key. *out_x, *out_y: new arrays (free()), NULL when *out_n is 0. Bad lines are an error
 * naming file:line. */
segrl_status ex_metrics_read_series(const char *path, const char *x_key, const char *y_key,
                                    double **out_x, double **out_y, int64_t *out_n);

/* The reward metrics of one step from its sampled responses' rewards, grouped by prompt:
 * r[p * group_size + j] is sample j of prompt p (num_prompts * group_size values). A response is
 * correct when its reward >= correct_threshold (1 for the verifiers). Sets reward_mean,
 * reward_std (population), accuracy (fraction correct) and mixed_groups (fraction of prompts
 * whose rewards are not all equal) on m. */
segrl_status ex_metrics_set_rewards(ex_metrics *m, const float *r, int64_t num_prompts,
                                    int64_t group_size, float correct_threshold);

/* The metric names the trainers write (docs/training.md, "Metrics", defines each) and the ones
 * their end-of-run plot shows (a subset). Borrowed static arrays. */
const char *const *ex_metrics_names(int32_t *out_n);
const char *const *ex_metrics_plot_keys(int32_t *out_n);

// ----------------------------------------------------------------------------
// progress

typedef enum ex_progress_mode {
    EX_PROGRESS_AUTO = 0, /* live line when the stream is a terminal, log lines otherwise */
    EX_PROGRESS_ON = 1,   /* always the live line */
    EX_PROGRESS_OFF = 2,  /* always log lines */
} ex_progress_mode;

typedef struct ex_progress {
    FILE *out;
    char label[32];
    int64_t total;      /* steps of the whole run */
    int64_t first;      /* the step this process started from (a resumed run's start) */
    int64_t log_every;  /* log-line mode: a line every N steps (and at the last) */
    double t0;          /* ex_now() at init */
    double last_draw;   /* live mode: time of the last redraw */
    int live;           /* 1: live line (\r redraws), 0: log lines */
    int drawn;          /* live mode: a line is on screen */
    char line[512];     /* live mode: the last line drawn */
} ex_progress;

/* out: stdout or stderr (NULL: stdout). first: the step the run starts from (0, or the resumed
 * step); total: the step it ends at. */
void ex_progress_init(ex_progress *p, FILE *out, const char *label, int64_t first, int64_t total,
                      int32_t mode, int64_t log_every);
/* Reports that `step` steps are done; extra (may be NULL) is appended, e.g. "reward 0.23".
 * Live: "\r<label> [#####.....] 12/200  6% 3.1s/step ETA 9m43s | <extra>", redrawn at most
 * 10 times a second (always at the last step). Log: the same text as a line every log_every. */
void ex_progress_update(ex_progress *p, int64_t step, const char *extra);
/* Prints a message line (printf format) without breaking the live line (cleared, printed,
 * redrawn). */
void ex_progress_log(ex_progress *p, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Ends the live line with a newline. */
void ex_progress_finish(ex_progress *p);
/* Estimated seconds left after `step` steps: the mean time per step of this process times the
 * steps left; -1 before the first step. */
double ex_progress_eta(const ex_progress *p, int64_t step);

// ----------------------------------------------------------------------------
// plots (gnuplot)

/* 1 when a gnuplot executable is on PATH (its path in buf), else 0 and why in buf. */
int ex_plot_available(char *buf, size_t cap);

/* One PNG with one panel per key (a grid, 2 columns), each key against x_key ("step", "wall_s",
 * or another key); a series of 40 points or more is drawn thin with a centered moving average
 * (n/40 points each side) over it. Keys that the file never has are left out; SEGRL_ERR_INVALID when none is
 * there. Writes the gnuplot script beside the image (out_png with ".gp" for ".png", data inline)
 * and runs it. Errors: SEGRL_ERR_UNSUPPORTED when gnuplot is not installed (message says so:
 * callers print it and go on), SEGRL_ERR_INVALID for a bad file or when gnuplot fails (its first
 * error line in the message). */
segrl_status ex_plot_metrics(const char *jsonl, const char *const *keys, int32_t num_keys,
                             const char *x_key, const char *out_png);

/* Several runs on one panel (compare.sh): series i is y_key against x_key of file path[i],
 * titled label[i]. */
typedef struct ex_plot_series {
    const char *path;
    const char *label;
    const char *x_key;
    const char *y_key;
} ex_plot_series;

segrl_status ex_plot_compare(const ex_plot_series *series, int32_t num_series, const char *title,
                             const char *x_label, const char *y_label, const char *out_png);

#ifdef __cplusplus
}
#endif

#endif /* SEGRL_EX_METRICS_H */
