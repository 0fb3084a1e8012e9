/* Server capacity for the benchmarks: get_quote calls fed by a C driver.
 *
 *   capacity N WINDOW CMD [ARGS...]
 *
 * Spawns CMD with pipes on stdin and stdout (stderr inherited), answers
 * initialize, then a writer thread sends N/4 + N tools/call get_quote
 * {symbol: NVDA} requests, never more than WINDOW ahead of the replies,
 * while the main thread reads and checks the replies (a JSON-RPC error or
 * isError:true is counted). The first N/4, at most 128 in flight, warm up
 * (a JIT compiles, caches fill) and are all answered before the timed N
 * start; the clock (CLOCK_MONOTONIC) runs from the last warm-up reply to
 * the last reply. Prints one JSON object:
 * {"n", "window", "cps", "us_per_call", "rpc_errors", "tool_errors"}.
 *
 * Why a C driver as well as driver.mjs: the Node driver spends 3-4 us of
 * its own on every call (the echo shows it), which caps what any server
 * can show. Here writing and reading cost a small fraction of that and run
 * on their own threads, so the figure is the server's: its capacity.
 *
 * Built by tests/bench/run.sh: cc -O2 -pthread -o BUILD/bench-capacity ... */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char INIT[] =
    "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
    "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"bench\",\"version\":\"1\"}}}\n"
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";
static const char REQ_HEAD[] = "{\"jsonrpc\":\"2.0\",\"id\":";
static const char REQ_TAIL[] =
    ",\"method\":\"tools/call\",\"params\":{\"name\":\"get_quote\",\"arguments\":"
    "{\"symbol\":\"NVDA\"}}}\n";

static long n_calls, window, warm;   /* n_calls: warm-up included */
static int to_server;
static atomic_long replies;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static size_t put_request(char *o, long id) {
    char digits[24];
    size_t nd = 0, len = sizeof REQ_HEAD - 1;
    do {
        digits[nd++] = (char)('0' + id % 10);
        id /= 10;
    } while (id > 0);
    memcpy(o, REQ_HEAD, len);
    while (nd > 0)
        o[len++] = digits[--nd];
    memcpy(o + len, REQ_TAIL, sizeof REQ_TAIL - 1);
    return len + sizeof REQ_TAIL - 1;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sends requests in chunks of up to 256 KiB, sleeping 50 us at a time
 * while WINDOW requests are unanswered (not spinning: the server needs the
 * CPU more). */
static void *writer(void *arg) {
    static char buf[1 << 18];
    long sent = 0;
    (void)arg;
    while (sent < n_calls) {
        size_t len = 0;
        /* The warm-up: at most 128 in flight, and all of it answered
         * before the first timed request. */
        long win = sent < warm ? (window < 128 ? window : 128) : window;
        long upto = sent < warm ? warm : n_calls;
        while (sent - atomic_load(&replies) >= win || (sent == warm && atomic_load(&replies) < warm)) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
        while (sent < upto && sent - atomic_load(&replies) < win && len + 256 < sizeof buf)
            len += put_request(buf + len, ++sent);
        if (write_all(to_server, buf, len) != 0)
            break;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int in[2], out[2], st;
    pid_t pid;
    pthread_t th;
    posix_spawn_file_actions_t fa;
    static char rbuf[1 << 20], line[1 << 16];
    size_t line_len = 0;
    long rpc_errors = 0, tool_errors = 0, got = 0, timed;
    int init_done = 0;
    double t0 = 0, t1;

    if (argc < 4 || (timed = atol(argv[1])) <= 0 || (window = atol(argv[2])) <= 0) {
        fprintf(stderr, "usage: capacity N WINDOW CMD [ARGS...]\n");
        return 2;
    }
    warm = timed / 4;
    n_calls = warm + timed;
    signal(SIGPIPE, SIG_IGN);
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        return 1;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    if (posix_spawnp(&pid, argv[3], &fa, NULL, argv + 3, environ) != 0) {
        perror(argv[3]);
        return 1;
    }
    close(in[0]);
    close(out[1]);
    to_server = in[1];
    if (write_all(to_server, INIT, sizeof INIT - 1) != 0)
        return 1;
    for (;;) {
        ssize_t r = read(out[0], rbuf, sizeof rbuf);
        if (r <= 0) {
            fprintf(stderr, "capacity: the server closed its output after %ld replies\n", got);
            kill(pid, SIGKILL);
            return 1;
        }
        /* Lines are checked where they lie; one split across reads is
         * copied (its first 64 KiB are enough to find the markers). */
        for (const char *p = rbuf, *end = rbuf + r; p < end;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p)), *ln = p;
            size_t k = nl ? (size_t)(nl - p) : (size_t)(end - p);
            if (line_len > 0 || nl == NULL) {
                size_t room = sizeof line - line_len;
                memcpy(line + line_len, p, k < room ? k : room);
                line_len += k < room ? k : room;
                ln = line;
                k = line_len;
            }
            if (nl == NULL)
                break;
            p = nl + 1;
            line_len = 0;
            if (!init_done) {   /* the initialize result: start writing */
                init_done = 1;
                if (pthread_create(&th, NULL, writer, NULL) != 0)
                    return 1;
                if (warm == 0)
                    t0 = now_s();
                continue;
            }
            /* An error member follows the id, near the start; isError
             * closes a result, near the end: only those ends are read. */
            if (memmem(ln, k < 64 ? k : 64, "\"error\":{", 9))
                rpc_errors++;
            if (memmem(k < 64 ? ln : ln + k - 64, k < 64 ? k : 64, "\"isError\":true", 14))
                tool_errors++;
            if (++got == warm)
                t0 = now_s();
        }
        atomic_store(&replies, got);
        if (init_done && got >= n_calls)
            break;
    }
    t1 = now_s();
    pthread_join(th, NULL);
    close(to_server);
    waitpid(pid, &st, 0);
    close(out[0]);
    printf("{\"n\":%ld,\"warmup\":%ld,\"window\":%ld,\"cps\":%.1f,\"us_per_call\":%.3f,"
           "\"rpc_errors\":%ld,\"tool_errors\":%ld}\n",
           timed, warm, window, (double)timed / (t1 - t0), (t1 - t0) * 1e6 / (double)timed,
           rpc_errors, tool_errors);
    return 0;
}
