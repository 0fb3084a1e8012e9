/* serve.c: the stdio MCP server (serve.h).
 *
 * Shutdown: on stdin EOF the server stops reading, lets the calls already
 * in flight finish and their responses drain (bounded by a deadline), then
 * closes every handle and runs the loop until uv_loop_close succeeds. On
 * SIGTERM or SIGINT it does the same without waiting for calls.
 *
 * SIGHUP reloads the operator policies (im_app_reload_policies: the whole
 * folder is checked before anything changes, so a broken file leaves the
 * running set in force). The outcome goes to stderr and, with the origin
 * "SIGHUP", to the journal. */
#include "serve.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "app.h"
#include "error.h"
#include "log.h"
#include "mcp.h"
#include "repl.h"
#include "rpc.h"

#define SERVE_DRAIN_MS 5000   /* longest wait for in-flight calls after EOF */

typedef struct serve {
    uv_loop_t loop;
    im_app app;
    im_rpc *rpc;
    im_mcp *mcp;
    im_repl_server *repl;   /* the console socket, when IBKR_REPL=true */
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t drain;
    uv_timer_t unpause;       /* resumes reading from a later loop turn */
    uint64_t drain_deadline;
    int stopping;
    int started;              /* the first response has been written */
} serve;

/* Backpressure: with this many calls in flight the server stops reading
 * stdin (lines already read wait), and reads again below the low mark, so
 * a client that pipelines a burst is served at the server's pace instead
 * of being refused with "too many requests in flight" (mcp's cap, 256,
 * stays the hard bound). */
#define SERVE_PAUSE_AT 192
#define SERVE_RESUME_BELOW 64

static const char *serve_getenv(const char *name) { return getenv(name); }

static void serve_unpause_cb(uv_timer_t *t) {
    serve *s = t->data;
    if (s->rpc != NULL && !s->stopping)
        im_rpc_resume(s->rpc);
}

static void serve_send(void *ud, const char *json, size_t len) {
    serve *s = ud;
    if (s->rpc && im_rpc_write(s->rpc, json, len) != 0)
        im_error("could not write a response to stdout");
    /* The start-up journal records were written unsynced so as not to
     * hold up initialize; the disk catches up once that first reply is
     * out (handed to the pipe now, not at the end of the loop turn). */
    if (!s->started) {
        s->started = 1;
        if (s->rpc)
            im_rpc_flush(s->rpc);
        im_app_started(&s->app);
    }
    /* Not from here: a resumed line would re-enter mcp inside its reply. */
    if (s->rpc && im_rpc_paused(s->rpc) && s->mcp &&
        im_mcp_inflight(s->mcp) < SERVE_RESUME_BELOW && !uv_is_active((uv_handle_t *)&s->unpause))
        uv_timer_start(&s->unpause, serve_unpause_cb, 0, 0);
}

static void serve_on_line(void *ud, const char *line, size_t len) {
    serve *s = ud;
    if (s->stopping)
        return;
    im_mcp_handle_line(s->mcp, line, len);
    if (s->rpc && im_mcp_inflight(s->mcp) >= SERVE_PAUSE_AT)
        im_rpc_pause(s->rpc);
}

static void serve_on_overflow(void *ud, size_t len) {
    serve *s = ud;
    im_warn("dropped an input line of %zu bytes (limit IBKR_MAX_LINE_BYTES=%zu)", len,
            s->app.cfg.max_line_bytes);
    im_mcp_line_too_long(s->mcp, len);
}

static void serve_close_walk_cb(uv_handle_t *h, void *arg) {
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void serve_stop(serve *s) {
    if (s->stopping == 2)
        return;
    s->stopping = 2;
    /* Consoles first: their pending broker calls are answered (cancelled)
     * by im_app_close below and must find them gone. */
    im_repl_server_close(s->repl);
    s->repl = NULL;
    im_mcp_free(s->mcp);
    s->mcp = NULL;
    im_app_close(&s->app);
    if (s->rpc) {
        im_rpc_close(s->rpc, NULL, NULL);
        s->rpc = NULL;
    }
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sighup, NULL);
    uv_close((uv_handle_t *)&s->drain, NULL);
    uv_close((uv_handle_t *)&s->unpause, NULL);
}

static void serve_drain_cb(uv_timer_t *t) {
    serve *s = t->data;
    int idle = im_mcp_inflight(s->mcp) == 0 && (s->rpc == NULL || im_rpc_pending(s->rpc) == 0);
    if (idle || uv_now(&s->loop) >= s->drain_deadline) {
        if (!idle)
            im_warn("exiting with %zu calls unfinished", im_mcp_inflight(s->mcp));
        serve_stop(s);
    }
}

static void serve_on_eof(void *ud) {
    serve *s = ud;
    if (s->stopping)
        return;
    s->stopping = 1;
    im_debug("stdin closed; finishing calls in flight");
    s->drain_deadline = uv_now(&s->loop) + SERVE_DRAIN_MS;
    uv_timer_start(&s->drain, serve_drain_cb, 0, 5);
}

static void serve_signal_cb(uv_signal_t *h, int signum) {
    serve *s = h->data;
    im_info("signal %d: shutting down", signum);
    serve_stop(s);
}

static void serve_sighup_cb(uv_signal_t *h, int signum) {
    serve *s = h->data;
    char err[512];
    (void)signum;
    if (s->stopping == 2)
        return;
    if (im_app_reload_policies(&s->app, "SIGHUP", err, sizeof err) != 0) {
        im_warn("SIGHUP: policy reload failed, the running set stays in force: %s", err);
        return;
    }
    im_info("SIGHUP: policies reloaded: %zu in force (set %.16s)",
            s->app.policies ? im_policies_count(s->app.policies) : (size_t)0,
            s->app.policies ? im_policies_hash(s->app.policies) : "");
}

/* The operator console socket: only when IBKR_REPL=true (read here, not in
 * config: it is a property of this process, not of the trading session).
 * A failure is logged and the server runs on without a console. */
static void serve_repl_start(serve *s) {
    const char *v = getenv("IBKR_REPL");
    char err[512];
    if (v == NULL || strcmp(v, "true") != 0)
        return;
    if (im_repl_server_start(&s->loop, &s->app, s->app.cfg.state_dir, &s->repl, err,
                             sizeof err) != 0) {
        s->repl = NULL;
        im_warn("operator console not started: %s", err);
        return;
    }
    im_info("operator console listening on %s/repl.sock (IBKR_REPL=true)", s->app.cfg.state_dir);
}

int im_serve_run(void) {
    serve *s = calloc(1, sizeof *s);
    im_rpc_handlers h;
    im_mcp_opts mo;
    char err[512];
    int rc;

    if (s == NULL)
        return 1;
    /* A client that goes away must not kill us with SIGPIPE mid-write. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&s->loop);
    rc = im_app_init(&s->app, &s->loop, serve_getenv, 0, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "ibkr-mcp: %s\n", err);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
        free(s);
        return 2;
    }
    memset(&mo, 0, sizeof mo);
    mo.tools = s->app.tools;
    mo.session = s->app.session;
    mo.send = serve_send;
    mo.send_ud = s;
    mo.loop = &s->loop;
    if (im_mcp_new(&mo, &s->mcp) != 0) {
        fprintf(stderr, "ibkr-mcp: out of memory\n");
        return 1;
    }
    uv_signal_init(&s->loop, &s->sigterm);
    uv_signal_init(&s->loop, &s->sigint);
    uv_signal_init(&s->loop, &s->sighup);
    s->sigterm.data = s->sigint.data = s->sighup.data = s;
    uv_signal_start(&s->sigterm, serve_signal_cb, SIGTERM);
    uv_signal_start(&s->sigint, serve_signal_cb, SIGINT);
    uv_signal_start(&s->sighup, serve_sighup_cb, SIGHUP);
    uv_timer_init(&s->loop, &s->drain);
    uv_timer_init(&s->loop, &s->unpause);
    s->unpause.data = s;
    s->drain.data = s;

    serve_repl_start(s);

    memset(&h, 0, sizeof h);
    h.on_line = serve_on_line;
    h.on_overflow = serve_on_overflow;
    h.on_eof = serve_on_eof;
    h.ud = s;
    rc = im_rpc_open(&s->loop, 0, 1, s->app.cfg.max_line_bytes, &h, &s->rpc);
    if (rc != 0) {
        serve_stop(s);
    }
    uv_run(&s->loop, UV_RUN_DEFAULT);
    /* Anything still open (a leaked handle would be a bug): close it. */
    while (uv_loop_close(&s->loop) == UV_EBUSY) {
        uv_walk(&s->loop, serve_close_walk_cb, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
    }
    free(s);
    return rc == 0 ? 0 : 1;
}
