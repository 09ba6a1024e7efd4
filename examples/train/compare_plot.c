/* segrl-compare-plot OUT "METHODS" "SEEDS" — the plots of examples/compare.sh: test accuracy of
 * every run OUT/<method>-seed<seed>/metrics.jsonl against generated tokens, sampled continuations
 * and wall time (OUT/accuracy_vs_tokens.png, _samples.png, _wall.png), one line per run. */
#include "ex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RUNS 64

/* Splits s (changed in place) at spaces into at most MAX_RUNS words. */
static int split(char *s, char **out) {
    int n = 0;
    for (char *w = strtok(s, " "); w && n < MAX_RUNS; w = strtok(NULL, " ")) out[n++] = w;
    return n;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s OUT \"METHODS\" \"SEEDS\"\n", argv[0]);
        return 2;
    }
    static char paths[MAX_RUNS][1024], labels[MAX_RUNS][128];
    char *ms[MAX_RUNS], *ss[MAX_RUNS];
    int nm = split(argv[2], ms), ns = split(argv[3], ss), n = 0;
    for (int i = 0; i < nm; i++)
        for (int j = 0; j < ns && n < MAX_RUNS; j++) {
            int k = snprintf(paths[n], sizeof paths[n], "%s/%s-seed%s/metrics.jsonl", argv[1], ms[i], ss[j]);
            FILE *f = k > 0 && (size_t)k < sizeof paths[n] ? fopen(paths[n], "r") : NULL;
            if (!f) continue;
            fclose(f);
            snprintf(labels[n], sizeof labels[n], "%s seed %s", ms[i], ss[j]);
            n++;
        }
    if (n == 0) {
        fprintf(stderr, "%s: no runs found under %s\n", argv[0], argv[1]);
        return 1;
    }
    const char *xs[3][3] = {{"gen_tokens", "generated tokens", "accuracy_vs_tokens.png"},
                            {"samples", "sampled continuations", "accuracy_vs_samples.png"},
                            {"wall_s", "wall time (s, evaluations included)", "accuracy_vs_wall.png"}};
    int rc = 0;
    for (int p = 0; p < 3; p++) {
        ex_plot_series ser[MAX_RUNS];
        for (int i = 0; i < n; i++) {
            ser[i].path = paths[i];
            ser[i].label = labels[i];
            ser[i].x_key = xs[p][0];
            ser[i].y_key = "test_accuracy";
        }
        char png[1200];
        snprintf(png, sizeof png, "%s/%s", argv[1], xs[p][2]);
        if (ex_plot_compare(ser, n, "greedy test accuracy", xs[p][1], "test accuracy", png) != SEGRL_OK) {
            fprintf(stderr, "%s: %s\n", argv[0], segrl_last_error());
            rc = 1;
        } else {
            printf("plot: %s\n", png);
        }
    }
    return rc;
}
