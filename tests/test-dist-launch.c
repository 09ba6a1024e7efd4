/* test-dist-launch.c — a torchrun-style launcher for the tests: starts N copies of a program with
 * RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT set
 * (rank 0 last, after a pause, so the others must retry their connection), waits for them with a
 * deadline and checks their exit codes.
 *
 *   test-dist-launch <np> ok   <program> [args...]   every rank must exit 0
 *   test-dist-launch <np> dies <program> [args...]   the last rank exits 3 on purpose; the others
 *                                                    must exit 0 (they checked their own error)
 *   test-dist-launch <np> busy <program> [args...]   as ok, but MASTER_PORT is held by this
 *                                                    launcher (as torchrun's agent store is) and
 *                                                    SEGRL_DIST_PORT names the port to use
 *   test-dist-launch <np> agent <program> [args...]  MASTER_PORT held, and
 *                                                    TORCHELASTIC_USE_AGENT_STORE=True as torchrun
 *                                                    sets it (rank 0 must use MASTER_PORT + 1)
 * A run that passes the deadline (60 s) is killed and fails: a hang is a failure. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* a free loopback port; keep != NULL: the socket stays open and listening in *keep */
static int free_port_keep(int *keep) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t n = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &n)) {
        perror("free_port");
        exit(2);
    }
    if (keep) {
        listen(fd, 4);
        *keep = fd;
    } else {
        close(fd);
    }
    return ntohs(a.sin_port);
}
static int free_port(void) { return free_port_keep(NULL); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s <np> ok|dies <program> [args...]\n", argv[0]);
        return 2;
    }
    const int np = atoi(argv[1]);
    const int dies = !strcmp(argv[2], "dies"), busy = !strcmp(argv[2], "busy");
    const int agent = !strcmp(argv[2], "agent");
    if (np < 1 || np > 16) return 2;
    char port[16], ws[16], sport[16];
    int held = -1;
    if (agent) { /* a held port whose successor is free */
        for (int tries = 0; tries < 50; tries++) {
            int p = free_port_keep(&held), probe = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a;
            memset(&a, 0, sizeof a);
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_ANY);
            a.sin_port = htons((uint16_t)(p + 1));
            int ok = p < 65535 && bind(probe, (struct sockaddr *)&a, sizeof a) == 0;
            close(probe);
            if (ok) {
                snprintf(port, sizeof port, "%d", p);
                break;
            }
            close(held);
            held = -1;
        }
        if (held < 0) return 2;
    } else {
        snprintf(port, sizeof port, "%d", busy ? free_port_keep(&held) : free_port());
    }
    snprintf(sport, sizeof sport, "%d", free_port());
    snprintf(ws, sizeof ws, "%d", np);
    pid_t pid[16];
    for (int r = np - 1; r >= 0; r--) {
        if (r == 0) {
            struct timespec ts = {0, 300000000L}; /* rank 0 (the listener) last */
            nanosleep(&ts, NULL);
        }
        pid[r] = fork();
        if (pid[r] == 0) {
            char rs[16];
            snprintf(rs, sizeof rs, "%d", r);
            setenv("RANK", rs, 1);
            setenv("LOCAL_RANK", rs, 1);
            setenv("WORLD_SIZE", ws, 1);
            setenv("LOCAL_WORLD_SIZE", ws, 1);
            setenv("MASTER_ADDR", "127.0.0.1", 1);
            setenv("MASTER_PORT", port, 1);
            unsetenv("OMPI_COMM_WORLD_SIZE");
            if (busy) setenv("SEGRL_DIST_PORT", sport, 1);
            else unsetenv("SEGRL_DIST_PORT");
            if (agent) setenv("TORCHELASTIC_USE_AGENT_STORE", "True", 1);
            else unsetenv("TORCHELASTIC_USE_AGENT_STORE");
            execv(argv[3], argv + 3);
            perror("execv");
            _exit(127);
        }
    }
    int code[16], done = 0, passed = 0, failed = 0;
    for (int r = 0; r < np; r++) code[r] = -1;
    const double deadline = now_s() + 60.0;
    while (done < np && now_s() < deadline) {
        for (int r = 0; r < np; r++) {
            int st;
            if (code[r] != -1) continue;
            if (waitpid(pid[r], &st, WNOHANG) == pid[r]) {
                code[r] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                done++;
            }
        }
        struct timespec ts = {0, 20000000L};
        nanosleep(&ts, NULL);
    }
    for (int r = 0; r < np; r++) {
        if (code[r] == -1) {
            kill(pid[r], SIGKILL);
            waitpid(pid[r], NULL, 0);
            printf("FAIL rank %d still running after 60 s (a hang)\n", r);
            failed++;
            continue;
        }
        int want = dies && r == np - 1 ? 3 : 0;
        if (code[r] == want) passed++;
        else {
            printf("FAIL rank %d exited with %d, expected %d\n", r, code[r], want);
            failed++;
        }
    }
    if (held >= 0) close(held);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
