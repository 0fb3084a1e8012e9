/* rpc.c: newline-delimited JSON-RPC framing and the stdio transport.
 * Provides rpc.h; uses libuv for fd 0 and fd 1. */
#include "rpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "error.h"
#include "log.h"
#include "text.h"

/* ---- framer ----------------------------------------------------------- */

void im_rpc_framer_init(im_rpc_framer *f, size_t max_line) {
    memset(f, 0, sizeof *f);
    f->max = max_line;
}

void im_rpc_framer_free(im_rpc_framer *f) {
    free(f->buf);
    f->buf = NULL;
    f->len = f->cap = 0;
}

/* Grows *buf (capacity *cap, doubling from 4 KiB) to hold need bytes.
 * Returns 0 or IM_ENOMEM (the buffer is then unchanged). */
static int buf_reserve(char **buf, size_t *cap, size_t need) {
    size_t c = *cap ? *cap : 4096;
    char *nb;
    if (need <= *cap)
        return 0;
    while (c < need)
        c *= 2;
    if ((nb = realloc(*buf, c)) == NULL)
        return IM_ENOMEM;
    *buf = nb;
    *cap = c;
    return 0;
}

static int framer_append(im_rpc_framer *f, const char *data, size_t n) {
    if (buf_reserve(&f->buf, &f->cap, f->len + n + 1) != 0)
        return IM_ENOMEM;
    memcpy(f->buf + f->len, data, n);
    f->len += n;
    return 0;
}

static void framer_emit(im_rpc_framer *f, im_rpc_line_cb on_line, void *ud) {
    size_t len = f->len;
    if (len > 0 && f->buf[len - 1] == '\r')
        len--;
    f->buf[len] = '\0';
    f->len = 0;
    on_line(ud, f->buf, len);
}

int im_rpc_framer_feed(im_rpc_framer *f, const char *data, size_t n, im_rpc_line_cb on_line,
                       im_rpc_overflow_cb on_overflow, void *ud) {
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t chunk = nl ? (size_t)(nl - data) : n;

        if (f->discarding) {
            f->dropped += chunk;
        } else if (f->len + chunk > f->max) {
            /* Too long: drop what we hold and everything up to the newline;
             * report once, when the line ends, so the reply comes in order. */
            f->discarding = 1;
            f->dropped = f->len + chunk;
            f->len = 0;
            if (f->cap > 65536) { /* give back the memory the long line took */
                free(f->buf);
                f->buf = NULL;
                f->cap = 0;
            }
        } else if (framer_append(f, data, chunk) != 0) {
            return IM_ENOMEM;
        }
        if (nl == NULL)
            break;
        if (f->discarding) {
            f->discarding = 0;
            if (on_overflow)
                on_overflow(ud, f->dropped);
            f->dropped = 0;
        } else {
            if (f->buf == NULL && framer_append(f, "", 0) != 0)
                return IM_ENOMEM;
            framer_emit(f, on_line, ud);
        }
        data += chunk + 1;
        n -= chunk + 1;
    }
    return 0;
}

void im_rpc_framer_finish(im_rpc_framer *f, im_rpc_line_cb on_line,
                          im_rpc_overflow_cb on_overflow, void *ud) {
    if (f->discarding) {
        if (on_overflow)
            on_overflow(ud, f->dropped);
    } else if (f->len > 0) {
        framer_emit(f, on_line, ud);
    }
    f->discarding = 0;
    f->dropped = 0;
    f->len = 0;
}

/* ---- line checks --------------------------------------------------------- */

int im_rpc_line_check(const char *line, size_t len, const char **why) {
    const unsigned char *p = (const unsigned char *)line;
    int in_string = 0;
    for (size_t i = 0; i < len;) {
        size_t n;
#if IM_TEXT_SWAR
        /* Eight bytes at a time up to the next NUL, '"', '\\' or non-ASCII
         * byte. */
        if (len - i >= 8) {
            uint64_t x = im_text_load8(p + i);
            uint64_t m = im_text_lt8(x, 1) | im_text_high8(x) | im_text_eq8(x, '"') |
                         im_text_eq8(x, '\\');
            if (m == 0) {
                i += 8;
                continue;
            }
            i += im_text_first8(m);
        }
#endif
        /* Plain ASCII outside the two bytes that matter: most of a line. */
        if (p[i] > 0 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\') {
            i++;
            continue;
        }
        if (p[i] == 0) {
            *why = "Parse error: the line contains a NUL byte";
            return IM_EPARSE;
        }
        /* A quote is one byte of UTF-8: no need to measure it (a request
         * line has two dozen). */
        if (p[i] == '"') {
            in_string = !in_string;
            i++;
            continue;
        }
        n = im_text_utf8_len(p + i, len - i);
        if (n == 0) {
            *why = "Parse error: the line is not valid UTF-8";
            return IM_EPARSE;
        }
        if (n == 1) {
            if (in_string && p[i] == '\\') {
                /* Escapes are checked here, not left to cJSON: it decodes a
                 * \u whose four digits are not all hex as U+0000, so
                 * "TOKEN\uzzzzjunk" would read as TOKEN (found by
                 * fuzz_framer). */
                unsigned cp = 0;
                if (i + 1 >= len || strchr("\"\\/bfnrtu", p[i + 1]) == NULL || p[i + 1] == 0) {
                    *why = "Parse error: invalid escape in a string";
                    return IM_EPARSE;
                }
                if (p[i + 1] != 'u') {
                    i += 2;
                    continue;
                }
                for (size_t k = 2; k < 6; k++) {
                    unsigned c = i + k < len ? p[i + k] : 0, d;
                    if (c >= '0' && c <= '9')
                        d = c - '0';
                    else if (c >= 'a' && c <= 'f')
                        d = c - 'a' + 10;
                    else if (c >= 'A' && c <= 'F')
                        d = c - 'A' + 10;
                    else {
                        *why = "Parse error: \\u must be followed by four hex digits";
                        return IM_EPARSE;
                    }
                    cp = cp << 4 | d;
                }
                if (cp == 0) {
                    *why = "Parse error: strings must not contain NUL characters (\\u0000)";
                    return IM_EPARSE;
                }
                i += 6;
                continue;
            }
        }
        i += n;
    }
    return 0;
}

/* ---- stdio transport --------------------------------------------------- */

/* Why input is paused: the caller asked (too many calls in flight), or
 * replies are piling up unread (a client that writes a burst before it
 * reads). Queued output above OUT_HIGH pauses input until it drains below
 * OUT_LOW, so memory stays bounded whatever the client does. */
#define PAUSE_CALLER 1
#define PAUSE_OUTPUT 2
#define OUT_HIGH (1024 * 1024)
#define OUT_LOW (256 * 1024)

struct im_rpc {
    uv_loop_t *loop;
    im_rpc_framer framer;
    im_rpc_handlers h;
    int in_kind;              /* UV_NAMED_PIPE, UV_TTY or UV_FILE */
    union {
        uv_pipe_t pipe;
        uv_tty_t tty;
    } in;
    int in_open;
    uv_fs_t fs_req;           /* UV_FILE input */
    int fs_busy;
    char fs_buf[65536];
    int out_fd;
    int out_is_pipe;
    uv_pipe_t out;
    int out_open;
    /* Replies made in one loop turn go out in one write: they collect here
     * and the prepare handle, which runs before the loop next waits,
     * flushes them. A reply costs a memcpy instead of a system call; a
     * lone reply is still written before the loop sleeps. */
    char *obuf;               /* owned; NULL when empty */
    size_t olen, ocap;
    char *spare;              /* owned: a written buffer kept for the next turn */
    size_t spare_cap;
    uv_prepare_t flush;
    int flush_open;
    size_t pending;           /* bytes buffered or being written */
    int reading;
    int paused;               /* backpressure, a mask of PAUSE_*: deliver no line */
    char *backlog;            /* bytes read while paused, owned */
    size_t backlog_len;
    int eof;
    int closing;
    void (*done)(void *);
    void *done_ud;
};

/* Flush early past this much, so one turn's replies never make one huge
 * buffer, and a client with many calls in flight gets the first replies
 * (and sends its next calls) while the rest are still being answered:
 * with 128 get_quote in flight, 16 KiB (about 40 replies) served about
 * 248k calls/s against 210k at 64 KiB, 233k at 8 KiB and 215k at 4 KiB,
 * where more writes start to cost; a burst of 100,000 at once was the
 * same at 16 and 64 KiB (tests/bench/capacity.c, this VM). */
#define OBUF_FLUSH (16 * 1024)

typedef struct rpc_write {
    uv_write_t req;
    im_rpc *r;
    size_t len, cap;
    char *data;               /* owned: the buffer handed over by rpc_flush */
} rpc_write;

static void rpc_maybe_free(im_rpc *r) {
    if (!r->closing || r->in_open || r->out_open || r->fs_busy || r->flush_open)
        return;
    void (*done)(void *) = r->done;
    void *ud = r->done_ud;
    im_rpc_framer_free(&r->framer);
    free(r->obuf);
    free(r->spare);
    free(r->backlog);
    free(r);
    if (done)
        done(ud);
}

static void rpc_on_eof(im_rpc *r) {
    if (r->eof)
        return;
    r->eof = 1;
    im_rpc_framer_finish(&r->framer, r->h.on_line, r->h.on_overflow, r->h.ud);
    if (r->h.on_eof)
        r->h.on_eof(r->h.ud);
}

/* Feeds the framer one line at a time, so a pause requested by a line's
 * handler takes effect at once; what is left waits in the backlog. */
static void rpc_feed(im_rpc *r, const char *data, size_t n) {
    while (n > 0 && !r->paused && !r->closing) {
        const char *nl = memchr(data, '\n', n);
        size_t chunk = nl ? (size_t)(nl - data) + 1 : n;
        if (im_rpc_framer_feed(&r->framer, data, chunk, r->h.on_line, r->h.on_overflow,
                               r->h.ud) != 0) {
            im_error("out of memory reading stdin; stopping");
            im_rpc_stop_reading(r);
            rpc_on_eof(r);
            return;
        }
        data += chunk;
        n -= chunk;
    }
    if (n > 0 && r->paused && !r->closing) {
        char *nb = realloc(r->backlog, r->backlog_len + n);
        if (nb == NULL) {
            im_error("out of memory holding input; stopping");
            im_rpc_stop_reading(r);
            rpc_on_eof(r);
            return;
        }
        memcpy(nb + r->backlog_len, data, n);
        r->backlog = nb;
        r->backlog_len += n;
    }
}

static void rpc_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    im_rpc *r = h->data;
    IM_UNUSED(suggested);
    buf->base = r->fs_buf;
    buf->len = sizeof r->fs_buf;
}

static void rpc_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    im_rpc *r = s->data;
    if (nread > 0) {
        rpc_feed(r, buf->base, (size_t)nread);
    } else if (nread < 0) {
        if (nread != UV_EOF)
            im_warn("stdin: %s", uv_strerror((int)nread));
        im_rpc_stop_reading(r);
        rpc_on_eof(r);
    }
}

static void rpc_fs_read_cb(uv_fs_t *req);

static void rpc_fs_next(im_rpc *r) {
    uv_buf_t b = uv_buf_init(r->fs_buf, sizeof r->fs_buf);
    r->fs_busy = 1;
    if (uv_fs_read(r->loop, &r->fs_req, 0, &b, 1, -1, rpc_fs_read_cb) != 0) {
        r->fs_busy = 0;
        rpc_on_eof(r);
    }
}

static void rpc_fs_read_cb(uv_fs_t *req) {
    im_rpc *r = container_of(req, im_rpc, fs_req);
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    r->fs_busy = 0;
    if (r->closing) {
        rpc_maybe_free(r);
        return;
    }
    if (n > 0 && r->reading) {
        rpc_feed(r, r->fs_buf, (size_t)n);
        if (r->reading && !r->closing && !r->paused)
            rpc_fs_next(r);
        return;
    }
    r->reading = 0;
    rpc_on_eof(r);
}

int im_rpc_open(uv_loop_t *loop, int in_fd, int out_fd, size_t max_line,
                const im_rpc_handlers *h, im_rpc **out) {
    im_rpc *r = calloc(1, sizeof *r);
    int rc;

    if (r == NULL)
        return IM_ENOMEM;
    r->loop = loop;
    r->h = *h;
    r->out_fd = out_fd;
    im_rpc_framer_init(&r->framer, max_line);

    r->in_kind = uv_guess_handle(in_fd);
    if (r->in_kind == UV_NAMED_PIPE) {
        uv_pipe_init(loop, &r->in.pipe, 0);
        rc = uv_pipe_open(&r->in.pipe, in_fd);
        r->in_open = 1;
    } else if (r->in_kind == UV_TTY) {
        rc = uv_tty_init(loop, &r->in.tty, in_fd, 1);
        r->in_open = rc == 0;
    } else {
        r->in_kind = UV_FILE;
        rc = 0;
    }
    if (rc != 0) {
        im_error("cannot read stdin: %s", uv_strerror(rc));
        r->closing = 1;
        if (r->in_open)
            uv_close((uv_handle_t *)&r->in, NULL);
        free(r);
        return IM_EIO;
    }
    if (uv_guess_handle(out_fd) == UV_NAMED_PIPE) {
        uv_pipe_init(loop, &r->out, 0);
        if (uv_pipe_open(&r->out, out_fd) == 0) {
            r->out_is_pipe = 1;
            r->out_open = 1;
            r->out.data = r;
        } else {
            uv_close((uv_handle_t *)&r->out, NULL);
        }
    }
    uv_prepare_init(loop, &r->flush);
    r->flush.data = r;
    r->flush_open = 1;
    r->reading = 1;
    if (r->in_kind == UV_FILE) {
        rpc_fs_next(r);
    } else {
        ((uv_handle_t *)&r->in)->data = r;
        rc = uv_read_start((uv_stream_t *)&r->in, rpc_alloc_cb, rpc_read_cb);
        if (rc != 0) {
            im_error("cannot read stdin: %s", uv_strerror(rc));
            r->reading = 0;
        }
    }
    *out = r;
    return 0;
}

static void rpc_pause(im_rpc *r, int why);
static void rpc_resume(im_rpc *r, int why);

static void rpc_write_cb(uv_write_t *req, int status) {
    rpc_write *w = container_of(req, rpc_write, req);
    im_rpc *r = w->r;
    r->pending -= w->len;
    if (status != 0 && status != UV_ECANCELED)
        im_warn("stdout: %s", uv_strerror(status));
    /* One written buffer of the usual size is kept: the next turn's
     * replies go into it instead of a fresh allocation grown by doubling. */
    if (r->spare == NULL && w->cap <= 2 * OBUF_FLUSH) {
        r->spare = w->data;
        r->spare_cap = w->cap;
    } else {
        free(w->data);
    }
    free(w);
    /* From the loop, not from inside a reply: safe to deliver lines. */
    if ((r->paused & PAUSE_OUTPUT) && r->pending < OUT_LOW && !r->closing)
        rpc_resume(r, PAUSE_OUTPUT);
}

/* Blocking write of all n bytes (a file or a terminal, or a pipe at
 * close). A non-blocking pipe that stays full is waited for at most about
 * 200 ms: a client that stopped reading must not hold up the exit.
 * Returns 0 or IM_EIO. */
static int write_all(int fd, const char *p, size_t n) {
    int waits = 0;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN && waits++ < 200) {
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
                continue;
            }
            return IM_EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sends what the buffer holds: the buffer itself is handed to a write
 * request on a pipe; a file or terminal is written at once. */
static void rpc_flush(im_rpc *r) {
    if (r->olen == 0)
        return;
    if (r->out_is_pipe && r->out_open && !r->closing) {
        rpc_write *w = malloc(sizeof *w);
        if (w != NULL) {
            uv_buf_t b = uv_buf_init(r->obuf, (unsigned)r->olen);
            w->r = r;
            w->len = r->olen;
            w->cap = r->ocap;
            w->data = r->obuf;
            if (uv_write(&w->req, (uv_stream_t *)&r->out, &b, 1, rpc_write_cb) == 0) {
                r->obuf = NULL;
                r->olen = r->ocap = 0;
                return;
            }
            free(w);
        }
        im_warn("stdout: could not queue %zu bytes of replies", r->olen);
    } else if (write_all(r->out_fd, r->obuf, r->olen) != 0) {
        im_warn("stdout: %s", strerror(errno));
    }
    r->pending -= r->olen;
    r->olen = 0;
}

void im_rpc_flush(im_rpc *r) {
    if (!r->closing)
        rpc_flush(r);
}

static void rpc_flush_cb(uv_prepare_t *h) {
    im_rpc *r = h->data;
    uv_prepare_stop(h);
    rpc_flush(r);
}

int im_rpc_write(im_rpc *r, const char *json, size_t len) {
    if (r->closing) {
        /* Handles are going: what is still said goes straight out. */
        if (write_all(r->out_fd, json, len) != 0 || write_all(r->out_fd, "\n", 1) != 0)
            return IM_EIO;
        return 0;
    }
    if (r->obuf == NULL && r->spare != NULL) {
        r->obuf = r->spare;
        r->ocap = r->spare_cap;
        r->spare = NULL;
    }
    if (buf_reserve(&r->obuf, &r->ocap, r->olen + len + 1) != 0)
        return IM_ENOMEM;
    memcpy(r->obuf + r->olen, json, len);
    r->obuf[r->olen + len] = '\n';
    r->olen += len + 1;
    r->pending += len + 1;
    if (r->olen >= OBUF_FLUSH)
        rpc_flush(r);
    else if (!uv_is_active((uv_handle_t *)&r->flush))
        uv_prepare_start(&r->flush, rpc_flush_cb);
    if (r->out_is_pipe && r->pending > OUT_HIGH)
        rpc_pause(r, PAUSE_OUTPUT);
    return 0;
}

size_t im_rpc_pending(const im_rpc *r) { return r->pending; }

static void rpc_pause(im_rpc *r, int why) {
    int was = r->paused;
    r->paused |= why;
    if (!was && r->reading && r->in_kind != UV_FILE && r->in_open)
        uv_read_stop((uv_stream_t *)&r->in);
}

void im_rpc_pause(im_rpc *r) { rpc_pause(r, PAUSE_CALLER); }

int im_rpc_paused(const im_rpc *r) { return (r->paused & PAUSE_CALLER) != 0; }

static void rpc_resume(im_rpc *r, int why) {
    char *held;
    size_t n;
    if (!(r->paused & why) || r->closing)
        return;
    r->paused &= ~why;
    if (r->paused)
        return;   /* still held for the other reason */
    held = r->backlog;
    n = r->backlog_len;
    r->backlog = NULL;
    r->backlog_len = 0;
    if (held != NULL) {
        rpc_feed(r, held, n);   /* may pause again and keep the rest */
        free(held);
    }
    if (r->paused || r->closing || !r->reading)
        return;
    if (r->in_kind == UV_FILE) {
        if (!r->fs_busy)
            rpc_fs_next(r);
    } else if (r->in_open) {
        uv_read_start((uv_stream_t *)&r->in, rpc_alloc_cb, rpc_read_cb);
    }
}

void im_rpc_resume(im_rpc *r) { rpc_resume(r, PAUSE_CALLER); }

void im_rpc_stop_reading(im_rpc *r) {
    if (!r->reading)
        return;
    r->reading = 0;
    if (r->in_kind != UV_FILE && r->in_open)
        uv_read_stop((uv_stream_t *)&r->in);
}

static void rpc_in_close_cb(uv_handle_t *h) {
    im_rpc *r = h->data;
    r->in_open = 0;
    rpc_maybe_free(r);
}

static void rpc_out_close_cb(uv_handle_t *h) {
    im_rpc *r = h->data;
    r->out_open = 0;
    rpc_maybe_free(r);
}

static void rpc_flush_close_cb(uv_handle_t *h) {
    im_rpc *r = h->data;
    r->flush_open = 0;
    rpc_maybe_free(r);
}

void im_rpc_close(im_rpc *r, void (*done)(void *ud), void *ud) {
    im_rpc_stop_reading(r);
    /* Replies not yet handed to the pipe go now, behind those that were. */
    rpc_flush(r);
    r->closing = 1;
    if (r->flush_open)
        uv_close((uv_handle_t *)&r->flush, rpc_flush_close_cb);
    r->done = done;
    r->done_ud = ud;
    if (r->in_open) {
        ((uv_handle_t *)&r->in)->data = r;
        uv_close((uv_handle_t *)&r->in, rpc_in_close_cb);
    }
    if (r->out_open)
        uv_close((uv_handle_t *)&r->out, rpc_out_close_cb);
    if (r->fs_busy)
        uv_cancel((uv_req_t *)&r->fs_req);
    rpc_maybe_free(r);
}
