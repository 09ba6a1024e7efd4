/* test-killloop.c — crash-safe checkpoints under SIGKILL (docs/reliability.md).
 *
 * A child process saves checkpoints (segrl_checkpoint_save: two small f32 parameters whose every
 * element encodes the step, the step in the caller's RNG word and in the user JSON) in a loop,
 * step after step, while the parent SIGKILLs it after a random delay of up to a few save
 * durations, so kills land anywhere inside a save (writing files, fsync, renames, `latest`).
 * After every kill the parent loads <root>/latest: once any save has completed it must load,
 * and the parameters, RNG word and JSON must all belong to one and the same step, no older than
 * the newest step the parent has already seen. Old checkpoints and leftover .tmp-* directories
 * are pruned between kills. At the end, corrupted files (a flipped byte in each file, a
 * truncated model file, a `latest` naming a missing directory) must be refused with a clear
 * message, leaving the parameters untouched.
 * Environment: SEGRL_KILLLOOP_ITERS (default 150). */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <segrl/train.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NA 256
#define NB 64
#define RNG_OF(s) ((uint64_t)(s) * 0x9e3779b97f4a7c15ull + 7)

static const char *names[2] = {"layer.w", "layer.b"};
static segrl_tensor *P[2];
static float *pdata[2];
static const int64_t plen[2] = {NA, NB};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* every element of parameter k at step s */
static float value_of(int64_t s, int k, int64_t i) { return (float)s + 0.001f * (float)(k * 1000 + i); }

static void fill(int64_t s) {
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < plen[k]; i++) pdata[k][i] = value_of(s, k, i);
}

static segrl_status save(const char *root, int64_t s) {
    char json[64];
    snprintf(json, sizeof json, "{\"step\":%lld}", (long long)s);
    fill(s);
    return segrl_checkpoint_save(root, P, names, 2, NULL, s, RNG_OF(s), json);
}

/* the child: saves steps first, first + 1, ... until killed */
static void child(const char *root, int64_t first) {
    for (int64_t s = first;; s++)
        if (save(root, s) != SEGRL_OK) {
            fprintf(stderr, "child: %s\n", segrl_last_error());
            _exit(3);
        }
}

/* loads <root>/latest; 1: consistent, 0: a failure was reported; *step receives its step */
static int load_check(const char *root, int64_t *step) {
    for (int k = 0; k < 2; k++)
        for (int64_t i = 0; i < plen[k]; i++) pdata[k][i] = -1;
    segrl_checkpoint_info info = {0};
    segrl_status st = segrl_checkpoint_load(root, P, names, 2, NULL, &info);
    if (st != SEGRL_OK) {
        CHECK(0, "load after a kill: %s", segrl_last_error());
        return 0;
    }
    int ok = 1;
    for (int k = 0; k < 2 && ok; k++)
        for (int64_t i = 0; i < plen[k]; i++)
            if (pdata[k][i] != value_of(info.step, k, i)) {
                ok = 0;
                CHECK(0, "step %lld: %s[%lld] = %g, want %g (a mix of steps)", (long long)info.step,
                      names[k], (long long)i, pdata[k][i], value_of(info.step, k, i));
                break;
            }
    char want[64];
    snprintf(want, sizeof want, "{\"step\":%lld}", (long long)info.step);
    if (info.user_rng != RNG_OF(info.step)) {
        ok = 0;
        CHECK(0, "step %lld: user_rng of another step", (long long)info.step);
    }
    char compact[64] = "";
    for (size_t i = 0, k = 0; info.user_json && info.user_json[i] && k + 1 < sizeof compact; i++)
        if (info.user_json[i] != ' ') compact[k++] = info.user_json[i], compact[k] = '\0';
    if (!info.user_json || strcmp(compact, want) != 0) {
        ok = 0;
        CHECK(0, "step %lld: user_json %s", (long long)info.step,
              info.user_json ? info.user_json : "(null)");
    }
    segrl_free(info.user_json);
    *step = info.step;
    return ok;
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* flips one byte in the middle of `path` (or truncates it to half when truncate) */
static void damage(const char *path, int truncate_it) {
    FILE *f = fopen(path, "r+b");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    if (truncate_it) {
        fclose(f);
        CHECK(truncate(path, n / 2) == 0, "truncate");
        return;
    }
    fseek(f, n / 2, SEEK_SET);
    int c = fgetc(f);
    fseek(f, n / 2, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

static void copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int c;
    while (a && b && (c = fgetc(a)) != EOF) fputc(c, b);
    if (a) fclose(a);
    if (b) fclose(b);
}

/* damages the checkpoint `latest` names */
static void corruption(const char *root) {
    char dir[300], f[400], keep[420], name[64] = "";
    snprintf(f, sizeof f, "%s/latest", root);
    FILE *lf = fopen(f, "r");
    CHECK(lf && fgets(name, sizeof name, lf), "read latest");
    if (lf) fclose(lf);
    name[strcspn(name, "\r\n")] = '\0';
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    const char *files[2] = {"model.safetensors", "trainer_state.json"};
    for (int k = 0; k < 2; k++) {
        for (int trunc = 0; trunc < 2; trunc++) {
            snprintf(f, sizeof f, "%s/%s", dir, files[k]);
            snprintf(keep, sizeof keep, "%s.keep", f);
            copy_file(f, keep);
            damage(f, trunc);
            for (int j = 0; j < 2; j++)
                for (int64_t i = 0; i < plen[j]; i++) pdata[j][i] = 12345.0f;
            segrl_status st = segrl_checkpoint_load(root, P, names, 2, NULL, NULL);
            const char *msg = segrl_last_error();
            CHECK(st == SEGRL_ERR_INVALID, "%s %s: load gave %s", files[k],
                  trunc ? "truncated" : "with a flipped byte", segrl_status_str(st));
            CHECK(strstr(msg, files[k]) != NULL, "%s damaged: message \"%s\" does not name it",
                  files[k], msg);
            if (k == 0 && !trunc)
                CHECK(strstr(msg, "checksum") != NULL, "flipped byte: message \"%s\"", msg);
            int untouched = 1;
            for (int j = 0; j < 2; j++)
                for (int64_t i = 0; i < plen[j]; i++) untouched &= pdata[j][i] == 12345.0f;
            CHECK(untouched, "%s damaged: parameters changed by a failed load", files[k]);
            rename(keep, f);
        }
    }
    /* latest naming a checkpoint that is gone */
    snprintf(f, sizeof f, "%s/latest", root);
    FILE *l = fopen(f, "w");
    fputs("step-999999999999\n", l);
    fclose(l);
    segrl_status st = segrl_checkpoint_load(root, P, names, 2, NULL, NULL);
    CHECK(st == SEGRL_ERR_INVALID, "latest naming a missing checkpoint: %s", segrl_status_str(st));
    CHECK(strstr(segrl_last_error(), "step-999999999999") != NULL, "message \"%s\"",
          segrl_last_error());
}

int main(void) {
    /* one intra-op thread: no thread pool exists when the children are forked */
    segrl_torch_set_num_threads(1);
    segrl_device cpu = segrl_cpu();
    for (int k = 0; k < 2; k++) {
        CHECK(segrl_tensor_zeros(SEGRL_DTYPE_F32, 1, &plen[k], cpu, &P[k]) == SEGRL_OK, "zeros: %s",
              segrl_last_error());
        segrl_view v;
        CHECK(segrl_tensor_view(P[k], &v) == SEGRL_OK, "view");
        pdata[k] = v.data;
    }
    char root[200];
    snprintf(root, sizeof root, "/tmp/segrl-killloop-%ld", (long)getpid());
    const char *it_env = getenv("SEGRL_KILLLOOP_ITERS");
    int iters = it_env ? atoi(it_env) : 150;

    /* how long one save takes here: kills are spread over a few of them */
    double t0 = now_s();
    for (int s = 0; s < 5; s++) CHECK(save(root, s) == SEGRL_OK, "save: %s", segrl_last_error());
    double per_save = (now_s() - t0) / 5;
    int64_t seen = -1, next = 5;
    CHECK(load_check(root, &seen) && seen == 4, "first load: step %lld", (long long)seen);

    uint64_t rs = 0x6b696c6cull;
    int kills = 0, consistent = 0;
    int64_t saves_seen = 0;
    double t_start = now_s();
    for (int it = 0; it < iters; it++) {
        rs = rs * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(rs >> 11) * (1.0 / 9007199254740992.0);
        pid_t pid = fork();
        if (pid == 0) child(root, next);
        CHECK(pid > 0, "fork: %s", strerror(errno));
        if (pid < 0) break;
        sleep_s(u * 4 * per_save);
        kill(pid, SIGKILL);
        int wst = 0;
        waitpid(pid, &wst, 0);
        CHECK(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL, "child exited on its own (status %d)",
              wst);
        kills++;
        int64_t step = -1;
        if (load_check(root, &step)) {
            consistent++;
            CHECK(step >= seen, "latest went back from step %lld to %lld", (long long)seen,
                  (long long)step);
            if (step > seen) saves_seen++;
            seen = step;
        }
        next = seen + 1000 * (it + 1); /* fresh step numbers for the next child */
        int64_t removed = 0;
        CHECK(segrl_checkpoint_prune(root, 2, &removed) == SEGRL_OK, "prune: %s", segrl_last_error());
    }
    double elapsed = now_s() - t_start;
    printf("kill loop: %d SIGKILLs in %.1f s (one save %.2f ms), %d loads consistent; after %lld "
           "kills a newer checkpoint was latest, after the others the previous one\n",
           kills, elapsed, per_save * 1e3, consistent, (long long)saves_seen);
    CHECK(kills == iters && consistent == kills, "%d kills, %d consistent", kills, consistent);
    /* leftovers of killed saves were pruned: nothing but step-* and latest remains */
    DIR *d = opendir(root);
    int stray = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) stray++;
    if (d) closedir(d);
    CHECK(stray == 0, "%d .tmp-* directories left after prune", stray);

    corruption(root);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    CHECK(system(cmd) == 0, "rm");
    CHECK(!exists(root), "root removed");
    for (int k = 0; k < 2; k++) segrl_tensor_free(P[k]);
    return h_finish();
}
