/* Start-up timer for the benchmarks: spawn -> initialize response.
 *
 *   spawntime RUNS CMD [ARGS...]
 *
 * RUNS times, one after the other: posix_spawn(CMD) with pipes on stdin and
 * stdout (stderr inherited), write one initialize request, read until the
 * first newline, and stop the clock (CLOCK_MONOTONIC); then close stdin and
 * wait for the exit. Prints each run's milliseconds on a line. Exits 1 when
 * a reply is not a JSON-RPC result or the process fails.
 *
 * Why C and not the Node driver: Node's child_process.spawn costs 5-10 ms
 * of its own on this kind of machine, more than the 5 ms target, so the
 * figure would measure the driver. posix_spawn from a small process costs
 * tens of microseconds.
 *
 * Built by tests/bench/run.sh: cc -O2 -o BUILD/bench-spawntime tests/bench/spawntime.c */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char INIT[] =
    "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
    "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}}\n";

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int one(char **argv, double *ms) {
    int in[2], out[2], st;
    pid_t pid;
    posix_spawn_file_actions_t fa;
    static char buf[1 << 16];
    size_t len = 0;
    double t0 = now_ms();

    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        return -1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
        perror(argv[0]);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    if (write(in[1], INIT, sizeof INIT - 1) != (ssize_t)(sizeof INIT - 1))
        return -1;
    for (;;) {
        ssize_t r = read(out[0], buf + len, sizeof buf - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        if (memchr(buf, '\n', len) != NULL || len == sizeof buf - 1)
            break;
    }
    *ms = now_ms() - t0;
    buf[len] = 0;
    close(in[1]);
    while (read(out[0], buf + len, sizeof buf - 1 - len) > 0) /* drain to EOF */
        ;
    close(out[0]);
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "spawntime: %s did not exit cleanly\n", argv[0]);
        return -1;
    }
    if (strstr(buf, "\"result\"") == NULL) {
        fprintf(stderr, "spawntime: no initialize result: %.300s\n", buf);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int runs;
    if (argc < 3 || (runs = atoi(argv[1])) <= 0) {
        fprintf(stderr, "usage: spawntime RUNS CMD [ARGS...]\n");
        return 2;
    }
    for (int i = 0; i < runs; i++) {
        double ms;
        if (one(argv + 2, &ms) != 0)
            return 1;
        printf("%.3f\n", ms);
    }
    return 0;
}
