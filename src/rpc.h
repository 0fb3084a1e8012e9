/* rpc.h: JSON-RPC transport over stdio. Two layers:
 *  - the framer, pure and unit-testable: bytes in, newline-delimited lines
 *    out, partial and coalesced reads handled, lines longer than a cap
 *    discarded up to their newline and reported once;
 *  - the stdio transport: fd 0 read through libuv (pipe, tty or file),
 *    fd 1 written through libuv (pipe) or blocking write() (file, tty), one
 *    message per line.
 * Nothing but JSON-RPC messages is ever written to fd 1 by this module.
 * Uses libuv. */
#ifndef IM_RPC_H
#define IM_RPC_H

#include <stddef.h>
#include <uv.h>

/* line: the bytes without the newline (a trailing '\r' is dropped),
 * NUL-terminated; valid only during the call. */
typedef void (*im_rpc_line_cb)(void *ud, const char *line, size_t len);
/* A line longer than the cap was dropped; len is how much was seen. */
typedef void (*im_rpc_overflow_cb)(void *ud, size_t len);

typedef struct im_rpc_framer {
    char *buf;          /* owned; partial line */
    size_t len, cap;
    size_t max;         /* longest accepted line */
    size_t dropped;     /* bytes of the overlong line being discarded */
    int discarding;
} im_rpc_framer;

void im_rpc_framer_init(im_rpc_framer *f, size_t max_line);
/* Feeds n bytes; calls on_line for every complete line and on_overflow for
 * every overlong one. Returns 0 or IM_ENOMEM. */
int im_rpc_framer_feed(im_rpc_framer *f, const char *data, size_t n, im_rpc_line_cb on_line,
                       im_rpc_overflow_cb on_overflow, void *ud);
/* At end of input: delivers a final unterminated line, if any, or reports
 * it through on_overflow when it was too long. */
void im_rpc_framer_finish(im_rpc_framer *f, im_rpc_line_cb on_line,
                          im_rpc_overflow_cb on_overflow, void *ud);
void im_rpc_framer_free(im_rpc_framer *f);

/* Checks what cJSON does not, before a line is parsed: the bytes are valid
 * UTF-8 with no NUL byte, and no string holds an escaped NUL (\u0000),
 * which cJSON would silently cut the string at, so "TOKEN\u0000junk"
 * would read as TOKEN. Returns 0, or IM_EPARSE with a static sentence in
 * *why. */
int im_rpc_line_check(const char *line, size_t len, const char **why);

typedef struct im_rpc im_rpc;

typedef struct im_rpc_handlers {
    im_rpc_line_cb on_line;
    im_rpc_overflow_cb on_overflow;
    void (*on_eof)(void *ud);    /* input ended (or failed) */
    void *ud;
} im_rpc_handlers;

/* Starts reading in_fd and prepares out_fd on loop. Returns 0 and *out, or
 * a negative code. */
int im_rpc_open(uv_loop_t *loop, int in_fd, int out_fd, size_t max_line,
                const im_rpc_handlers *h, im_rpc **out);
/* Queues one message: copies json (which must hold no newline) and appends
 * '\n'. Returns 0 or IM_ENOMEM / IM_EIO. */
int im_rpc_write(im_rpc *r, const char *json, size_t len);
/* Replies made in one loop turn are written together before the loop next
 * waits; this hands those written so far to the OS at once. */
void im_rpc_flush(im_rpc *r);
/* Bytes queued and not yet written. */
size_t im_rpc_pending(const im_rpc *r);
/* Stops reading (input is abandoned). */
void im_rpc_stop_reading(im_rpc *r);
/* Backpressure: after pause, no further line is delivered (lines already
 * read wait in a backlog) and the fd is not read; resume delivers the
 * backlog first, then reads again. Both may be called from on_line;
 * resume must not be (deliver it from a later loop turn). */
void im_rpc_pause(im_rpc *r);
void im_rpc_resume(im_rpc *r);
int im_rpc_paused(const im_rpc *r);
/* Closes both handles; frees r from the last close callback, then calls
 * done(ud) if not NULL. */
void im_rpc_close(im_rpc *r, void (*done)(void *ud), void *ud);

#endif
