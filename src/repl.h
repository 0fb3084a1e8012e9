/* repl.h: the operator's Lua console. Provides `ibkr-mcp repl` (a console on
 * a fresh session, on the terminal), `ibkr-mcp attach` (a line client for a
 * running server's console socket), the console socket a server opens when
 * IBKR_REPL=true, and the console engine both share: lua.c-style line
 * evaluation (`return <line>` first, `<eof>` means keep reading), tracebacks,
 * JSON-like printing, an instruction budget, and the command set (status,
 * quote, preview, place, halt, sim.advance, ...). Host calls that wait for
 * the broker yield the line's coroutine and resume it from the callback, so
 * the loop (and MCP traffic) keeps running while a console waits. Every
 * state-changing command is journalled as a "console" record with the
 * console's origin; fills, risk rejections and the kill switch reach the
 * consoles as one-line notices. On a terminal, libedit edits the lines.
 * Uses app (config, session, journal, sim, policies), Lua 5.4, libuv and
 * libedit. */
#ifndef IM_REPL_H
#define IM_REPL_H

#include <stddef.h>
#include <uv.h>

#include "app.h"

/* `ibkr-mcp repl`: a console on a fresh session. Returns the exit code. */
int im_repl_run(void);
/* `ibkr-mcp attach [PATH]`: a console inside a running server. PATH NULL
 * means the configured state directory's repl.sock. Returns the exit code. */
int im_repl_attach(const char *path);

/* ---- the engine: one console = one Lua state on one app ---- */
typedef struct im_repl_console im_repl_console;

/* Output of a console (text, not NUL-terminated); must not call back into
 * the console. */
typedef void (*im_repl_write_fn)(void *ud, const char *text, size_t len);
/* An evaluation that waited for the broker has finished (the console is
 * ready for the next line). Not called for lines that finish inside
 * im_repl_console_feed. */
typedef void (*im_repl_done_fn)(void *ud);

typedef struct im_repl_console_opts {
    im_app *app;            /* not owned; must outlive the console */
    const char *origin;     /* who this console is, for the audit log (copied) */
    int local;              /* 1: token values are shown (the `repl` mode) */
    im_repl_write_fn write;
    im_repl_done_fn done;
    void *ud;
} im_repl_console_opts;

/* Returns 0 and a console in *out (free with im_repl_console_free), or
 * IM_ENOMEM. */
int im_repl_console_new(const im_repl_console_opts *o, im_repl_console **out);
/* Stops the console: it never calls write or done again. When a broker
 * call is still pending the memory is released from its callback. */
void im_repl_console_free(im_repl_console *c);
/* Feeds one input line (without its newline). Returns 0 when the line has
 * been handled (evaluated, or buffered as incomplete input), 1 when its
 * evaluation waits for the broker (done is called when it finishes), or
 * IM_EBUSY when a previous line is still waiting. */
int im_repl_console_feed(im_repl_console *c, const char *line, size_t len);
/* 1 while a line waits for the broker. */
int im_repl_console_busy(const im_repl_console *c);
/* "> " or ">> " (inside incomplete input). */
const char *im_repl_console_prompt(const im_repl_console *c);

/* ---- notices: session events an operator wants to see at once ---- */

/* Writes a one-line notice (no newline) about ev into buf when it is worth
 * interrupting an operator for: a fill, a risk rejection (at preview or at
 * re-validation), the kill switch engaging or releasing, the broker
 * connection changing. Control characters become spaces, so a notice is
 * always one line. Returns 1 with the text in buf, or 0 (buf untouched)
 * for other events. */
int im_repl_notice(const im_session_event *ev, char *buf, size_t len);

/* ---- the console socket of `serve` ---- */
typedef struct im_repl_server im_repl_server;

/* Listens on dir/repl.sock (dir created 0700 when missing, socket 0600).
 * A live server already answering there is an error (IM_EBUSY) and the
 * socket is left alone; a stale socket is replaced. Consoles evaluate in
 * app; nothing they do writes to stdout. Every attached console gets the
 * session's notices (im_repl_notice) as they happen. On failure returns a negative
 * code with a sentence in err. */
int im_repl_server_start(uv_loop_t *loop, im_app *app, const char *dir, im_repl_server **out,
                         char *err, size_t errlen);
/* Disconnects every console, closes the listener and removes the socket
 * file; the memory is freed by close callbacks, so run the loop after. */
void im_repl_server_close(im_repl_server *srv);

#endif
