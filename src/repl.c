/* repl.c: the console engine and `ibkr-mcp repl` (repl.h).
 *
 * A line is evaluated the way lua.c does it: try `return <line>` so that an
 * expression prints, else the line itself; while the syntax error ends in
 * "<eof>" the input is incomplete and the next line is appended. The chunk
 * runs as a coroutine of the console's state under a count hook, so a
 * runaway loop trips the budget instead of freezing the server's loop. A
 * command that needs the broker starts the operation and yields; the
 * broker's callback pushes the result onto the coroutine and resumes it.
 * The console's state has the standard library minus io and os (and the
 * loaders that reach the file system): it is the operator's console, but
 * in `serve` it lives inside the server and must not write to its stdout. */
#include "repl.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <editline/readline.h>

#include "common.h"
#include "error.h"
#include "log.h"
#include "script_json.h"

/* Instructions one line may run (checked every REPL_HOOK_STEP). 200M is a
 * couple of seconds of plain Lua on a laptop: far beyond any console
 * one-liner, short enough that `while true do end` gives the loop back. */
#define REPL_HOOK_STEP 10000
#define REPL_BUDGET 200000000L
#define REPL_MAX_INPUT (1024 * 1024)   /* longest incomplete input kept */
#define REPL_TOKEN_SHOWN 8             /* hex digits of a token shown remotely */
/* Memory one console state may hold: generous for tables of orders and
 * trades, small enough that `string.rep("x", 1e10)` fails with "not enough
 * memory" instead of taking the server down. */
#define REPL_MEM_LIMIT ((size_t)256 * 1024 * 1024)

struct im_repl_console {
    im_app *app;
    char origin[128];
    int local;
    im_repl_write_fn write;
    im_repl_done_fn done;
    void *ud;

    lua_State *L;          /* the console's state */
    size_t mem_used;       /* bytes the state holds (REPL_MEM_LIMIT) */
    lua_State *co;         /* the running line, or NULL */
    int co_ref;            /* anchors co in the registry */
    long instr;            /* instructions of the current line */
    volatile sig_atomic_t interrupted;

    char *input;           /* incomplete input so far (heap), or NULL */
    size_t input_len;

    int in_call;           /* inside the session/broker call that may answer at once */
    int waiting;           /* yielded, a callback will resume */
    int answered;          /* the callback ran while in_call */
    int wait_nres;         /* values the callback pushed */
    int wait_failed;       /* the callback reports an error */
    char wait_err[512];
    int freed;             /* im_repl_console_free was called while waiting */
    char audit_log[64];    /* place: the token as the log shows it */
    char audit_args[160];  /* place/cancel: the audit's args, for the callback */
};

/* ---- helpers ------------------------------------------------------------ */

static im_repl_console *repl_of(lua_State *L) {
    return *(im_repl_console **)lua_getextraspace(L);
}

static void repl_write(im_repl_console *c, const char *s, size_t n) {
    if (!c->freed && c->write)
        c->write(c->ud, s, n);
}

static void repl_puts(im_repl_console *c, const char *s) { repl_write(c, s, strlen(s)); }

/* The audit trail: every state-changing command (place, cancel, halt,
 * resume, reload) passes here once its outcome is known, and lands both on
 * stderr and in the journal as a "console" record naming the console's
 * origin, so an operator's action can be told apart from an agent's. A
 * journal that cannot be written halts trading (the session's rule), which
 * is why this is not skipped when the write fails: the halt is the record. */
static void repl_audit(im_repl_console *c, const char *command, const char *args,
                       const char *outcome) {
    cJSON *f;
    /* The log may name a token's first digits (an operator matching it
     * with an agent's transcript); the journal only ever its hash. */
    im_info("console %s: %s %s -> %s", c->origin, command,
            strcmp(command, "place") == 0 ? c->audit_log : args ? args : "", outcome ? outcome : "");
    f = cJSON_CreateObject();
    if (f == NULL)
        return;
    cJSON_AddStringToObject(f, "origin", c->origin);
    cJSON_AddStringToObject(f, "command", command);
    cJSON_AddStringToObject(f, "args", args ? args : "");
    cJSON_AddStringToObject(f, "outcome", outcome ? outcome : "");
    if (im_session_record(c->app->session, "console", f) != 0)
        im_warn("console %s: the %s record could not be journaled", c->origin, command);
}

static void repl_hook(lua_State *L, lua_Debug *ar) {
    im_repl_console *c = repl_of(L);
    (void)ar;
    if (c->interrupted) {
        c->interrupted = 0;
        lua_sethook(L, repl_hook, LUA_MASKCOUNT, REPL_HOOK_STEP);
        luaL_error(L, "interrupted");
        return;
    }
    c->instr += REPL_HOOK_STEP;
    if (c->instr > REPL_BUDGET)
        luaL_error(L, "instruction budget exceeded (%I instructions in one line)",
                   (lua_Integer)REPL_BUDGET);
}

/* Raises unless L is the line's own coroutine: a command that waits yields
 * that coroutine, so it cannot run inside one the user made. */
static im_repl_console *repl_need_top(lua_State *L, const char *what) {
    im_repl_console *c = repl_of(L);
    if (L != c->co)
        luaL_error(L, "%s waits for the broker: call it at the top level of a line, "
                      "not inside a coroutine or a metamethod", what);
    return c;
}

/* ---- waiting for the broker ---------------------------------------------- */

static void repl_resume(im_repl_console *c, int nargs);

/* Continuation of a command that waited: the callback's values are on top. */
static int repl_await_k(lua_State *L, int status, lua_KContext ctx) {
    im_repl_console *c = repl_of(L);
    (void)status;
    (void)ctx;
    if (c->wait_failed) {
        c->wait_failed = 0;
        return luaL_error(L, "%s", c->wait_err);
    }
    return c->wait_nres;
}

/* Called by a command right after it started a broker operation (rc is
 * what the start returned). Returns the values, at once or after a yield. */
static int repl_await(lua_State *L, im_repl_console *c, int rc) {
    c->in_call = 0;
    if (rc != 0 && !c->answered)
        return luaL_error(L, "%s", im_strerror(rc));
    if (c->answered) {
        c->answered = 0;
        return repl_await_k(L, LUA_OK, 0);
    }
    c->waiting = 1;
    return lua_yieldk(L, 0, 0, repl_await_k);
}

static void repl_begin_call(im_repl_console *c) {
    c->in_call = 1;
    c->answered = 0;
    c->wait_failed = 0;
    c->wait_nres = 0;
}

/* The callback side: returns the stack to push onto, or NULL when the
 * console is gone (then nothing may be pushed). */
static lua_State *repl_answer_begin(im_repl_console *c) {
    if (c->freed)
        return NULL;
    lua_checkstack(c->co, 8);
    return c->co;
}

static void repl_answer_fail(im_repl_console *c, int status, const char *msg) {
    c->wait_failed = 1;
    snprintf(c->wait_err, sizeof c->wait_err, "%s", msg && *msg ? msg : im_strerror(status));
}

static void repl_free_now(im_repl_console *c);
static void repl_answer_end(im_repl_console *c, int n);

/* The common start of a completion callback: returns the stack to push the
 * answer onto, or NULL when the answer is already delivered (the console
 * is gone, or status is a failure, which is recorded and delivered). */
static lua_State *repl_answer_start(im_repl_console *c, int status, const char *msg) {
    lua_State *L = repl_answer_begin(c);
    if (L != NULL && status != 0)
        repl_answer_fail(c, status, msg);
    if (L == NULL || status != 0) {
        repl_answer_end(c, 0);
        return NULL;
    }
    return L;
}

/* Delivers n pushed values: either back to the command still running
 * (answered during its call) or by resuming the yielded coroutine. */
static void repl_answer_end(im_repl_console *c, int n) {
    if (c->freed) {
        c->waiting = 0;
        repl_free_now(c);
        return;
    }
    c->wait_nres = n;
    if (c->in_call) {
        c->answered = 1;
        return;
    }
    c->waiting = 0;
    repl_resume(c, n);
    if (c->co == NULL && !c->freed && c->done)
        c->done(c->ud);   /* the line has ended: the console takes the next */
}

/* ---- converting broker data to Lua ---------------------------------------- */

static void repl_setnum(lua_State *L, const char *k, double v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static void repl_setint(lua_State *L, const char *k, long long v) {
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static void repl_setstr(lua_State *L, const char *k, const char *v) {
    lua_pushstring(L, v ? v : "");
    lua_setfield(L, -2, k);
}

static void repl_setbool(lua_State *L, const char *k, int v) {
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

static void repl_push_time(lua_State *L, const char *k, double t) {
    char buf[40];
    im_clock_format_utc(t, buf, sizeof buf);
    repl_setstr(L, k, buf);
}

static void repl_push_order(lua_State *L, const im_order *o) {
    lua_createtable(L, 0, 8);   /* [order] */
    repl_setstr(L, "symbol", o->symbol);
    repl_setstr(L, "action", im_side_str(o->side));
    repl_setnum(L, "quantity", o->quantity);
    repl_setstr(L, "order_type", im_order_type_str(o->type));
    if (o->limit_price > 0)
        repl_setnum(L, "limit_price", o->limit_price);
    if (o->stop_price > 0)
        repl_setnum(L, "stop_price", o->stop_price);
    repl_setstr(L, "tif", im_tif_str(o->tif));
    if (o->order_ref[0])
        repl_setstr(L, "order_ref", o->order_ref);
}

static void repl_push_order_info(lua_State *L, const im_order_info *oi) {
    repl_push_order(L, &oi->order);          /* [order] */
    repl_setstr(L, "order_id", oi->order_id);
    repl_setstr(L, "status", im_order_status_str(oi->status));
    repl_setnum(L, "filled", oi->filled);
    repl_setnum(L, "remaining", oi->remaining);
    if (oi->avg_fill_price > 0)
        repl_setnum(L, "avg_fill_price", oi->avg_fill_price);
    repl_push_time(L, "submitted_at", oi->submitted_at);
    if (oi->message[0])
        repl_setstr(L, "message", oi->message);
}

static void repl_push_risk(lua_State *L, const im_risk_result *r) {
    lua_createtable(L, 0, 6);                /* [risk] */
    repl_setbool(L, "approved", r->approved);
    repl_setnum(L, "reference_price", r->reference_price);
    repl_setnum(L, "pricing_price", r->pricing_price);
    repl_setnum(L, "notional", r->notional);
    lua_createtable(L, (int)r->nreasons, 0); /* [risk, reasons] */
    for (size_t i = 0; i < r->nreasons; i++) {
        lua_createtable(L, 0, 2);            /* [risk, reasons, reason] */
        repl_setstr(L, "code", r->reasons[i].code);
        repl_setstr(L, "text", r->reasons[i].text);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "reasons");          /* [risk] */
}

/* ---- commands: reads -------------------------------------------------------- */

static void repl_quote_cb(void *ud, int status, const char *msg, const im_quote *q) {
    im_repl_console *c = ud;
    lua_State *L = repl_answer_start(c, status, msg);
    if (L == NULL)
        return;
    lua_createtable(L, 0, 8);
    repl_setstr(L, "symbol", q->symbol);
    repl_setnum(L, "bid", q->bid);
    repl_setnum(L, "ask", q->ask);
    repl_setnum(L, "last", q->last);
    repl_setnum(L, "bid_size", q->bid_size);
    repl_setnum(L, "ask_size", q->ask_size);
    repl_push_time(L, "time", q->time);
    repl_setbool(L, "delayed", q->delayed);
    repl_answer_end(c, 1);
}

static int repl_cmd_quote(lua_State *L) {
    const char *sym = luaL_checkstring(L, 1);
    char up[IM_SYMBOL_MAX];
    size_t i;
    im_repl_console *c = repl_need_top(L, "quote");
    for (i = 0; sym[i] && i + 1 < sizeof up; i++)
        up[i] = (char)toupper((unsigned char)sym[i]);
    up[i] = '\0';
    repl_begin_call(c);
    return repl_await(L, c, im_session_quote(c->app->session, up, repl_quote_cb, c));
}

static void repl_account_cb(void *ud, int status, const char *msg, const im_account *a) {
    im_repl_console *c = ud;
    lua_State *L = repl_answer_start(c, status, msg);
    if (L == NULL)
        return;
    lua_createtable(L, 0, 9);
    repl_setstr(L, "account_id", a->account_id);
    repl_setstr(L, "account_type", a->account_type);
    repl_setnum(L, "net_liquidation", a->net_liquidation);
    repl_setnum(L, "cash", a->cash);
    repl_setnum(L, "buying_power", a->buying_power);
    repl_setnum(L, "gross_position_value", a->gross_position_value);
    repl_setnum(L, "realized_pnl", a->realized_pnl);
    repl_setnum(L, "unrealized_pnl", a->unrealized_pnl);
    repl_setnum(L, "commissions", a->commissions);
    repl_answer_end(c, 1);
}

static int repl_cmd_account(lua_State *L) {
    im_repl_console *c = repl_need_top(L, "account");
    repl_begin_call(c);
    return repl_await(L, c, im_session_account(c->app->session, repl_account_cb, c));
}

static void repl_positions_cb(void *ud, int status, const char *msg, const im_position *p,
                              size_t n) {
    im_repl_console *c = ud;
    lua_State *L = repl_answer_start(c, status, msg);
    if (L == NULL)
        return;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 7);
        repl_setstr(L, "symbol", p[i].symbol);
        repl_setnum(L, "quantity", p[i].quantity);
        repl_setnum(L, "avg_cost", p[i].avg_cost);
        repl_setnum(L, "market_price", p[i].market_price);
        repl_setnum(L, "market_value", p[i].market_value);
        repl_setnum(L, "unrealized_pnl", p[i].unrealized_pnl);
        repl_setnum(L, "realized_pnl", p[i].realized_pnl);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    repl_answer_end(c, 1);
}

static int repl_cmd_positions(lua_State *L) {
    im_repl_console *c = repl_need_top(L, "positions");
    repl_begin_call(c);
    return repl_await(L, c, im_session_positions(c->app->session, repl_positions_cb, c));
}

static void repl_orders_cb(void *ud, int status, const char *msg, const im_order_info *o,
                           size_t n) {
    im_repl_console *c = ud;
    lua_State *L = repl_answer_start(c, status, msg);
    if (L == NULL)
        return;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        repl_push_order_info(L, &o[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    repl_answer_end(c, 1);
}

static int repl_cmd_orders(lua_State *L) {
    im_repl_console *c = repl_need_top(L, "orders");
    repl_begin_call(c);
    return repl_await(L, c, im_session_open_orders(c->app->session, repl_orders_cb, c));
}

static void repl_execs_cb(void *ud, int status, const char *msg, const im_execution *e,
                          size_t n) {
    im_repl_console *c = ud;
    lua_State *L = repl_answer_start(c, status, msg);
    if (L == NULL)
        return;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 9);
        repl_setstr(L, "exec_id", e[i].exec_id);
        repl_setstr(L, "order_id", e[i].order_id);
        repl_setstr(L, "symbol", e[i].symbol);
        repl_setstr(L, "action", im_side_str(e[i].side));
        repl_setnum(L, "shares", e[i].shares);
        repl_setnum(L, "price", e[i].price);
        repl_setnum(L, "commission", e[i].commission);
        repl_setnum(L, "realized_pnl", e[i].realized_pnl);
        repl_push_time(L, "time", e[i].time);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    repl_answer_end(c, 1);
}

static int repl_cmd_trades(lua_State *L) {
    im_repl_console *c = repl_need_top(L, "trades");
    repl_begin_call(c);
    return repl_await(L, c, im_session_executions(c->app->session, repl_execs_cb, c));
}

/* ---- commands: the order flow ------------------------------------------------- */

/* Reads an optional string field of the table at 1, upper-cased into out. */
static const char *repl_field_upper(lua_State *L, const char *k, const char *def, char *out,
                                    size_t outlen) {
    size_t i;
    const char *v;
    lua_getfield(L, 1, k);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "preview: %s must be a string", k);
    v = lua_tostring(L, -1);
    for (i = 0; v[i] && i + 1 < outlen; i++)
        out[i] = (char)toupper((unsigned char)v[i]);
    out[i] = '\0';
    lua_pop(L, 1);
    return out;
}

static double repl_field_num(lua_State *L, const char *k) {
    double v = 0;
    lua_getfield(L, 1, k);
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1))
            luaL_error(L, "preview: %s must be a number", k);
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static void repl_preview_cb(void *ud, int status, const char *msg, const im_preview *p) {
    im_repl_console *c = ud;
    lua_State *L = repl_answer_start(c, status, msg);
    if (L == NULL)
        return;
    lua_createtable(L, 0, 8);               /* [r] */
    repl_setbool(L, "approved", p->risk.approved);
    repl_push_order(L, &p->order);          /* [r, order] */
    lua_setfield(L, -2, "order");           /* [r] */
    repl_push_risk(L, &p->risk);            /* [r, risk] */
    lua_getfield(L, -1, "reasons");         /* [r, risk, reasons] */
    lua_setfield(L, -3, "reasons");         /* [r, risk] */
    lua_pop(L, 1);                          /* [r] */
    repl_setnum(L, "reference_price", p->risk.reference_price);
    repl_setnum(L, "notional", p->risk.notional);
    repl_setbool(L, "trading_enabled", p->trading_enabled);
    if (p->token[0]) {
        repl_setstr(L, "token", p->token);
        repl_setnum(L, "expires_in", p->expires_in);
    }
    repl_answer_end(c, 1);
}

static int repl_cmd_preview(lua_State *L) {
    im_order o;
    char sym[IM_SYMBOL_MAX], act[8], ot[16], tif[8];
    const char *s;
    im_repl_console *c = repl_need_top(L, "preview");

    luaL_checktype(L, 1, LUA_TTABLE);
    memset(&o, 0, sizeof o);
    s = repl_field_upper(L, "symbol", NULL, sym, sizeof sym);
    if (s == NULL)
        return luaL_error(L, "preview: symbol is required");
    snprintf(o.symbol, sizeof o.symbol, "%s", s);
    s = repl_field_upper(L, "action", NULL, act, sizeof act);
    if (s == NULL || im_side_parse(s, &o.side) != 0)
        return luaL_error(L, "preview: action must be BUY or SELL");
    s = repl_field_upper(L, "order_type", "MKT", ot, sizeof ot);
    if (im_order_type_parse(s, &o.type) != 0)
        return luaL_error(L, "preview: order_type must be MKT, LMT, STP or STP LMT");
    s = repl_field_upper(L, "tif", "DAY", tif, sizeof tif);
    if (im_tif_parse(s, &o.tif) != 0)
        return luaL_error(L, "preview: tif must be DAY, GTC or IOC");
    o.quantity = repl_field_num(L, "quantity");
    o.limit_price = repl_field_num(L, "limit_price");
    o.stop_price = repl_field_num(L, "stop_price");
    repl_begin_call(c);
    return repl_await(L, c, im_session_preview(c->app->session, &o, repl_preview_cb, c));
}

static void repl_place_cb(void *ud, const im_place_result *r) {
    im_repl_console *c = ud;
    lua_State *L;
    if (!c->freed) {
        char outcome[640];
        if (r->status == 0 && r->have_order)
            snprintf(outcome, sizeof outcome, "sent: order %s %s", r->order.order_id,
                     im_order_status_str(r->order.status));
        else if (r->status == 0)
            snprintf(outcome, sizeof outcome, "sent");
        else
            snprintf(outcome, sizeof outcome, "%s: %s", im_err_name(r->status), r->message);
        repl_audit(c, "place", c->audit_args, outcome);
    }
    L = repl_answer_begin(c);
    if (L == NULL)
        return repl_answer_end(c, 0);
    lua_createtable(L, 0, 5);
    repl_setbool(L, "placed", r->status == 0);
    repl_setstr(L, "status", r->status == 0 ? "SENT" : im_err_name(r->status));
    repl_setstr(L, "message", r->message);
    if (r->have_order) {
        repl_push_order_info(L, &r->order);
        lua_setfield(L, -2, "order");
    }
    if (r->status == IM_ERISK) {
        repl_push_risk(L, &r->risk);
        lua_getfield(L, -1, "reasons");
        lua_setfield(L, -3, "reasons");
        lua_pop(L, 1);
    }
    repl_answer_end(c, 1);
}

static int repl_cmd_place(lua_State *L) {
    const char *token = luaL_checkstring(L, 1);
    char hash[IM_JOURNAL_HASH_HEX];
    int rc;
    im_repl_console *c = repl_need_top(L, "place");
    snprintf(c->audit_log, sizeof c->audit_log, "%.*s...", REPL_TOKEN_SHOWN, token);
    im_journal_token_hash(token, hash);
    snprintf(c->audit_args, sizeof c->audit_args, "token_hash=%s", hash);
    repl_begin_call(c);
    rc = im_session_place(c->app->session, token, repl_place_cb, c);
    if (rc != 0 && !c->answered)
        repl_audit(c, "place", c->audit_args, im_strerror(rc));
    return repl_await(L, c, rc);
}

static void repl_cancel_cb(void *ud, int status, const char *msg, const im_order_info *o) {
    im_repl_console *c = ud;
    lua_State *L;
    if (!c->freed) {
        char outcome[640];
        if (status == 0)
            snprintf(outcome, sizeof outcome, "cancel sent: order %s %s", o->order_id,
                     im_order_status_str(o->status));
        else
            snprintf(outcome, sizeof outcome, "%s: %s", im_err_name(status),
                     msg && *msg ? msg : im_strerror(status));
        repl_audit(c, "cancel", c->audit_args, outcome);
    }
    L = repl_answer_start(c, status, msg);
    if (L == NULL)
        return;
    repl_push_order_info(L, o);
    repl_answer_end(c, 1);
}

static int repl_cmd_cancel(lua_State *L) {
    const char *id = luaL_checkstring(L, 1);
    int rc;
    im_repl_console *c = repl_need_top(L, "cancel");
    snprintf(c->audit_args, sizeof c->audit_args, "%s", id);
    repl_begin_call(c);
    rc = im_session_cancel(c->app->session, id, repl_cancel_cb, c);
    if (rc != 0 && !c->answered)
        repl_audit(c, "cancel", c->audit_args, im_strerror(rc));
    return repl_await(L, c, rc);
}

/* ---- commands: synchronous ------------------------------------------------------ */

static int repl_cmd_status(lua_State *L) {
    im_repl_console *c = repl_of(L);
    im_session *s = c->app->session;
    im_broker *b = c->app->broker;
    const char *why = NULL;
    int halted = im_session_halted(s, &why);
    double now = im_session_now(s);

    lua_createtable(L, 0, 12);
    repl_setstr(L, "backend", b && b->ops ? b->ops->name : "");
    repl_setbool(L, "connected", b && b->ops && b->ops->connected ? b->ops->connected(b) : 0);
    repl_setstr(L, "account_id", im_session_account_id(s));
    if (im_session_live_block(s) != NULL)
        repl_setstr(L, "trading_blocked", im_session_live_block(s));
    if (b && b->ops && b->ops->info) {
        im_broker_info bi;
        b->ops->info(b, &bi);
        repl_setstr(L, "connection", bi.state);
        if (bi.host[0]) {
            char where[96];
            snprintf(where, sizeof where, "%s:%d client %d v%d", bi.host, bi.port, bi.client_id,
                     bi.server_version);
            repl_setstr(L, "endpoint", where);
        }
        if (bi.last_error[0])
            repl_setstr(L, "last_error", bi.last_error);
    }
    repl_setbool(L, "trading_enabled", im_session_trading_enabled(s));
    repl_setbool(L, "halted", halted);
    if (halted)
        repl_setstr(L, "halt_reason", why);
    repl_setint(L, "orders_today", im_session_orders_today(s));
    repl_setint(L, "max_daily_orders", c->app->cfg.limits.max_daily_orders);
    repl_setnum(L, "notional_today", im_session_notional_today(s));
    repl_setint(L, "pending_tokens", (long long)im_tokens_pending(im_session_tokens(s), now));
    repl_setint(L, "policies", (long long)(c->app->policies ? im_policies_count(c->app->policies) : 0));
    repl_push_time(L, "now", now);
    repl_setstr(L, "console", c->origin);
    return 1;
}

typedef struct repl_tok_walk {
    lua_State *L;
    im_repl_console *c;
    double now;
    lua_Integer n;
} repl_tok_walk;

static void repl_tokens_visit(void *ud, const im_token_entry *e) {
    repl_tok_walk *w = ud;
    lua_State *L = w->L;
    char canon[160], shown[REPL_TOKEN_SHOWN + 4];
    if (e->used || e->expires_at <= w->now)
        return;
    im_tokens_canonical(&e->order, canon, sizeof canon);
    lua_createtable(L, 0, 4);
    if (w->c->local) {
        repl_setstr(L, "token", e->token);
    } else {
        snprintf(shown, sizeof shown, "%.*s...", REPL_TOKEN_SHOWN, e->token);
        repl_setstr(L, "token", shown);
    }
    repl_setstr(L, "order", canon);
    repl_setnum(L, "notional", e->notional);
    repl_setint(L, "expires_in", (long long)(e->expires_at - w->now + 0.5));
    lua_rawseti(L, -2, ++w->n);
}

static int repl_cmd_tokens(lua_State *L) {
    im_repl_console *c = repl_of(L);
    repl_tok_walk w;
    lua_checkstack(L, 8);
    lua_newtable(L);    /* [list] */
    w.L = L;
    w.c = c;
    w.now = im_session_now(c->app->session);
    w.n = 0;
    im_tokens_foreach(im_session_tokens(c->app->session), repl_tokens_visit, &w);
    return 1;
}

static int repl_cmd_limits(lua_State *L) {
    im_repl_console *c = repl_of(L);
    const im_config *cfg = &c->app->cfg;
    const im_limits *l = &cfg->limits;

    lua_createtable(L, 0, 32);   /* [limits] */
    repl_setnum(L, "max_order_qty", l->max_order_qty);
    repl_setnum(L, "max_order_notional", l->max_order_notional);
    repl_setnum(L, "max_position_notional", l->max_position_notional);
    repl_setbool(L, "allow_short", l->allow_short);
    lua_createtable(L, (int)l->nwhitelist, 0);   /* [limits, whitelist] */
    for (size_t i = 0; i < l->nwhitelist; i++) {
        lua_pushstring(L, l->whitelist[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "symbol_whitelist");     /* [limits] */
    repl_setint(L, "max_daily_orders", l->max_daily_orders);
    repl_setnum(L, "mkt_protect_bps", l->mkt_protect_bps);
    repl_setnum(L, "max_drift_bps", l->max_drift_bps);
    repl_setnum(L, "max_quote_age_s", l->max_quote_age_s);
    repl_setbool(L, "allow_delayed_quotes", l->allow_delayed_quotes);
    repl_setnum(L, "cash_buffer_pct", l->cash_buffer_pct);
    repl_setnum(L, "collar_bps", l->collar_bps);
    repl_setnum(L, "passive_max_bps", l->passive_max_bps);
    repl_setnum(L, "min_price", l->min_price);
    repl_setnum(L, "max_spread_bps", l->max_spread_bps);
    repl_setnum(L, "max_position_pct_nlv", l->max_position_pct_nlv);
    repl_setnum(L, "max_gross_pct_nlv", l->max_gross_pct_nlv);
    repl_setint(L, "max_open_orders", l->max_open_orders);
    repl_setint(L, "max_open_orders_per_symbol", l->max_open_orders_per_symbol);
    repl_setint(L, "max_orders_per_min", l->max_orders_per_min);
    repl_setint(L, "max_orders_per_hour", l->max_orders_per_hour);
    repl_setnum(L, "dup_window_s", l->dup_window_s);
    repl_setnum(L, "max_daily_notional", l->max_daily_notional);
    repl_setnum(L, "max_daily_loss", l->max_daily_loss);
    repl_setint(L, "max_consecutive_rejects", l->max_consecutive_rejects);
    repl_setnum(L, "token_ttl_seconds", cfg->token_ttl_s);
    return 1;
}

static int repl_cmd_policies(lua_State *L) {
    im_repl_console *c = repl_of(L);
    const im_policies *p = c->app->policies;
    size_t n = p ? im_policies_count(p) : 0;

    lua_createtable(L, (int)n, 0);   /* [list] */
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 5);    /* [list, policy] */
        repl_setstr(L, "name", im_policies_name(p, i));
        repl_setstr(L, "description", im_policies_description(p, i));
        repl_setstr(L, "file", im_policies_file(p, i));
        repl_setstr(L, "hash", im_policies_file_hash(p, i));
        if (im_policies_params(p, i) != NULL &&
            im_sjson_push(L, im_policies_params(p, i), IM_SJSON_MAX_DEPTH) == 0)
            lua_setfield(L, -2, "params");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int repl_cmd_halt(lua_State *L) {
    im_repl_console *c = repl_of(L);
    const char *why = luaL_optstring(L, 1, "halted from the operator console");
    int was = im_session_halted(c->app->session, NULL);
    im_session_halt(c->app->session, why);
    repl_audit(c, "halt", why, was ? "already halted" : "halted");
    lua_pushstring(L, "trading halted");
    return 1;
}

static int repl_cmd_resume(lua_State *L) {
    im_repl_console *c = repl_of(L);
    const char *why = luaL_optstring(L, 1, "resumed from the operator console");
    const char *still = NULL;
    char outcome[600];
    if (!im_session_halted(c->app->session, NULL)) {
        repl_audit(c, "resume", why, "not halted; nothing to do");
        lua_pushstring(L, "trading was not halted");
        return 1;
    }
    im_session_resume(c->app->session, why);
    /* A KILL file, or a resume that could not be journaled, keeps the halt. */
    if (im_session_halted(c->app->session, &still)) {
        snprintf(outcome, sizeof outcome, "still halted: %s", still ? still : "");
        repl_audit(c, "resume", why, outcome);
        return luaL_error(L, "trading is still halted: %s", still ? still : "unknown reason");
    }
    repl_audit(c, "resume", why, "resumed");
    lua_pushstring(L, "trading resumed");
    return 1;
}

/* reload(): the whole folder is loaded and checked before anything changes
 * (im_app_reload_policies), so a broken file leaves the running set in
 * force; the answer says which happened. */
static int repl_cmd_reload(lua_State *L) {
    im_repl_console *c = repl_of(L);
    char err[512], outcome[640];
    const char *dir = c->app->policy_dir;
    int rc = im_app_reload_policies(c->app, c->origin, err, sizeof err);
    if (rc != 0) {
        snprintf(outcome, sizeof outcome, "failed, the running set stays: %s", err);
        repl_audit(c, "reload", dir, outcome);
        lua_createtable(L, 0, 2);
        repl_setbool(L, "ok", 0);
        repl_setstr(L, "error", err);
        return 1;
    }
    snprintf(outcome, sizeof outcome, "ok: %zu policies, set %s",
             im_policies_count(c->app->policies), im_policies_hash(c->app->policies));
    repl_audit(c, "reload", dir, outcome);
    lua_createtable(L, 0, 3);
    repl_setbool(L, "ok", 1);
    repl_setint(L, "count", (long long)im_policies_count(c->app->policies));
    repl_setstr(L, "hash", im_policies_hash(c->app->policies));
    return 1;
}

/* journal(n): the last n records of today's journal file, oldest first.
 * The file can be large (every quote-less event of a busy day), so it is
 * read from the end in growing windows until n whole lines are in, and
 * never more than REPL_JOURNAL_WINDOW bytes. A line still being written by
 * another process, or torn by a crash, is skipped. Buffers live in Lua
 * userdata and the parsed records in a boxed cJSON tree with a __gc, so an
 * out-of-memory error raised half-way leaks nothing. */
#define REPL_JOURNAL_MAX_N 1000
#define REPL_JOURNAL_FIRST (64 * 1024)
#define REPL_JOURNAL_WINDOW ((size_t)8 * 1024 * 1024)

static int repl_jbox_key;   /* its address keys the box metatable in the registry */

static int repl_jbox_gc(lua_State *L) {
    cJSON **box = lua_touserdata(L, 1);
    if (box != NULL && *box != NULL) {
        cJSON_Delete(*box);
        *box = NULL;
    }
    return 0;
}

/* Pushes a userdata owning a new cJSON array; returns the array. */
static cJSON *repl_jbox_new(lua_State *L) {
    cJSON **box = lua_newuserdatauv(L, sizeof *box, 0);   /* [box] */
    *box = NULL;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &repl_jbox_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, repl_jbox_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &repl_jbox_key);
    }
    lua_setmetatable(L, -2);                               /* [box] */
    *box = cJSON_CreateArray();
    if (*box == NULL)
        luaL_error(L, "not enough memory");
    return *box;
}

static size_t repl_count_nl(const char *p, size_t n) {
    size_t k = 0;
    for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
        k++;
    return k;
}

/* Reads the last want bytes (at most) of the size bytes of path into a new
 * userdata pushed on L; returns its address, with *got set. The file is
 * append-only, so the bytes below size are stable while we read. */
static char *repl_read_tail(lua_State *L, const char *path, size_t size, size_t want,
                            size_t *got) {
    char *buf = lua_newuserdatauv(L, want ? want : 1, 0);   /* [buf] */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t off = 0;
    if (fd == -1)
        luaL_error(L, "journal: cannot open %s: %s", path, strerror(errno));
    while (off < want) {
        ssize_t r = pread(fd, buf + off, want - off, (off_t)(size - want + off));
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    close(fd);
    *got = off;
    return buf;
}

static int repl_cmd_journal(lua_State *L) {
    im_repl_console *c = repl_of(L);
    lua_Integer n = luaL_optinteger(L, 1, 20);
    im_journal *j = im_session_journal(c->app->session);
    const char *path = j ? im_journal_path(j) : NULL;
    struct stat st;
    size_t size, want, got = 0, start, nl;
    char *buf = NULL;
    cJSON *recs, *it;
    lua_Integer k = 0;

    if (n < 1 || n > REPL_JOURNAL_MAX_N)
        return luaL_error(L, "journal: n must be between 1 and %d", REPL_JOURNAL_MAX_N);
    if (path == NULL || path[0] == '\0')
        return luaL_error(L, "journal: this session has no journal");
    lua_settop(L, 0);
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) {   /* nothing journaled today yet */
            lua_newtable(L);
            return 1;
        }
        return luaL_error(L, "journal: cannot read %s: %s", path, strerror(errno));
    }
    size = (size_t)st.st_size;
    /* Widen the window until it holds n whole lines (n + 1 newlines, the
     * first one ending a line cut by the window) or the whole file. */
    for (want = size < REPL_JOURNAL_FIRST ? size : REPL_JOURNAL_FIRST;;) {
        lua_settop(L, 0);
        buf = repl_read_tail(L, path, size, want, &got);   /* [buf] */
        nl = repl_count_nl(buf, got);
        if (want == size || nl > (size_t)n || want >= REPL_JOURNAL_WINDOW)
            break;
        want = want * 4 > size ? size : want * 4;
        if (want > REPL_JOURNAL_WINDOW)
            want = REPL_JOURNAL_WINDOW;
    }
    /* Whole lines only: drop the head the window cut and a torn tail. */
    start = 0;
    if (got < size) {
        char *first = memchr(buf, '\n', got);
        start = first ? (size_t)(first - buf) + 1 : got;
    }
    while (got > start && buf[got - 1] != '\n')
        got--;
    /* From the last line back, until n records are in: a line that does
     * not parse (torn by a crash, then followed by later appends) is
     * skipped, as the journal itself skips it. */
    recs = repl_jbox_new(L);                                 /* [buf, box] */
    while (got > start && k < n) {
        size_t q = got - 1;   /* the '\n' ending this line */
        cJSON *r;
        while (q > start && buf[q - 1] != '\n')
            q--;
        r = got - 1 > q ? cJSON_ParseWithLength(buf + q, got - 1 - q) : NULL;
        if (r != NULL && cJSON_IsObject(r) && cJSON_AddItemToArray(recs, r))
            k++;
        else
            cJSON_Delete(r);
        got = q;
    }
    /* recs runs newest first; the answer oldest first. */
    lua_createtable(L, (int)k, 0);                           /* [buf, box, list] */
    cJSON_ArrayForEach(it, recs) {
        if (im_sjson_push(L, it, IM_SJSON_MAX_DEPTH) == 0)
            lua_rawseti(L, -2, k);
        k--;
    }
    return 1;
}

static im_sim *repl_need_sim(lua_State *L) {
    im_repl_console *c = repl_of(L);
    if (c->app->sim == NULL)
        luaL_error(L, "the backend is not the simulator");
    return c->app->sim;
}

static int repl_sim_advance(lua_State *L) {
    double secs = luaL_checknumber(L, 1);
    im_repl_console *c = repl_of(L);
    im_sim *sim = repl_need_sim(L);
    if (!(secs >= 0) || secs > 86400.0 * 366)
        return luaL_error(L, "sim.advance: seconds must be between 0 and a year");
    im_clock_advance(&c->app->clock, secs);
    im_sim_sync(sim);
    {
        char buf[40];
        im_clock_format_utc(im_clock_now(&c->app->clock), buf, sizeof buf);
        lua_pushstring(L, buf);
    }
    return 1;
}

static void repl_push_rc(lua_State *L, int rc) {
    if (rc == 0)
        lua_pushboolean(L, 1);
    else
        luaL_error(L, "%s", im_strerror(rc));
}

static int repl_sim_set_price(lua_State *L) {
    const char *sym = luaL_checkstring(L, 1);
    double px = luaL_checknumber(L, 2);
    repl_push_rc(L, im_sim_set_price(repl_need_sim(L), sym, px));
    return 1;
}

static int repl_sim_fill(lua_State *L) {
    const char *id = luaL_checkstring(L, 1);
    repl_push_rc(L, im_sim_fill(repl_need_sim(L), id));
    return 1;
}

/* print: to the console (the terminal in `repl`, the socket when attached). */
static int repl_print(lua_State *L) {
    im_repl_console *c = repl_of(L);
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        size_t len;
        const char *s = luaL_tolstring(L, i, &len);   /* [args.., buf?, s] */
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_addvalue(&b);
        (void)s;
        (void)len;
    }
    luaL_addchar(&b, '\n');
    luaL_pushresult(&b);
    {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        repl_write(c, s, len);
    }
    return 0;
}

/* ---- notices --------------------------------------------------------------------------- */

/* Appends a formatted piece to buf at *at, truncating at the end. */
static void repl_cat(char *buf, size_t len, size_t *at, const char *fmt, ...) IM_PRINTF(4, 5);
static void repl_cat(char *buf, size_t len, size_t *at, const char *fmt, ...) {
    va_list ap;
    int n;
    if (*at + 1 >= len)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *at, len - *at, fmt, ap);
    va_end(ap);
    if (n > 0)
        *at = (size_t)n >= len - *at ? len - 1 : *at + (size_t)n;
}

static void repl_cat_reasons(char *buf, size_t len, size_t *at, const im_risk_result *r) {
    for (size_t i = 0; r != NULL && i < r->nreasons; i++)
        repl_cat(buf, len, at, "%s%s (%s)", i ? "; " : ": ", r->reasons[i].code,
                 r->reasons[i].text);
}

int im_repl_notice(const im_session_event *ev, char *buf, size_t len) {
    char canon[160];
    size_t at = 0;
    if (ev == NULL || buf == NULL || len == 0)
        return 0;
    buf[0] = '\0';
    switch (ev->kind) {
    case IM_SEV_FILL:
        if (ev->exec != NULL)
            repl_cat(buf, len, &at, "[fill] %s %g %s @ %g (order %s, exec %s)",
                     im_side_str(ev->exec->side), ev->exec->shares, ev->exec->symbol,
                     ev->exec->price, ev->exec->order_id, ev->exec->exec_id);
        else if (ev->order_info != NULL)
            repl_cat(buf, len, &at, "[fill] order %s %s %g %s: %g filled @ %g",
                     ev->order_info->order_id, im_side_str(ev->order_info->order.side),
                     ev->order_info->order.quantity, ev->order_info->order.symbol,
                     ev->order_info->filled, ev->order_info->avg_fill_price);
        else
            return 0;
        break;
    case IM_SEV_PREVIEW:
    case IM_SEV_PLACE_REJECT:
        if (ev->risk == NULL || (ev->kind == IM_SEV_PREVIEW && ev->risk->approved))
            return 0;
        if (ev->order == NULL)
            snprintf(canon, sizeof canon, "an order");
        else if (ev->order->limit_price > 0 || ev->order->stop_price > 0)
            snprintf(canon, sizeof canon, "%s %g %s %s lmt=%g stp=%g", im_side_str(ev->order->side),
                     ev->order->quantity, ev->order->symbol, im_order_type_str(ev->order->type),
                     ev->order->limit_price, ev->order->stop_price);
        else
            snprintf(canon, sizeof canon, "%s %g %s %s", im_side_str(ev->order->side),
                     ev->order->quantity, ev->order->symbol, im_order_type_str(ev->order->type));
        repl_cat(buf, len, &at, "[risk] %s rejected: %s",
                 ev->kind == IM_SEV_PREVIEW ? "preview" : "place (re-validation)", canon);
        repl_cat_reasons(buf, len, &at, ev->risk);
        break;
    case IM_SEV_HALT:
        repl_cat(buf, len, &at, "[halt] trading halted: %s", ev->message ? ev->message : "");
        break;
    case IM_SEV_RESUME:
        repl_cat(buf, len, &at, "[resume] trading resumed: %s", ev->message ? ev->message : "");
        break;
    case IM_SEV_CONNECTION:
        repl_cat(buf, len, &at, "[broker] %s%s%s", ev->connected ? "connected" : "disconnected",
                 ev->message ? ": " : "", ev->message ? ev->message : "");
        break;
    default:
        return 0;
    }
    /* One line, and never the attach protocol's marks (0x02, 0x03). */
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    return 1;
}

/* ---- the command table ------------------------------------------------------------ */

typedef struct repl_cmd {
    const char *name;
    lua_CFunction fn;
    const char *help;
} repl_cmd;

static const repl_cmd repl_cmds[] = {
    {"status", repl_cmd_status, "status()  trading, kill switch, today's orders, pending tokens"},
    {"quote", repl_cmd_quote, "quote(sym)  a fresh quote"},
    {"account", repl_cmd_account, "account()  the account summary"},
    {"positions", repl_cmd_positions, "positions()  open positions"},
    {"orders", repl_cmd_orders, "orders()  working orders"},
    {"trades", repl_cmd_trades, "trades()  today's executions"},
    {"preview", repl_cmd_preview,
     "preview{symbol=, action=, quantity=, order_type=, limit_price=, stop_price=, tif=}  "
     "risk-check an order; a token when approved"},
    {"place", repl_cmd_place, "place(token)  redeem a token and send its order"},
    {"cancel", repl_cmd_cancel, "cancel(order_id)  cancel a working order"},
    {"tokens", repl_cmd_tokens, "tokens()  pending confirmation tokens and seconds to expiry"},
    {"limits", repl_cmd_limits, "limits()  the risk limits in force"},
    {"policies", repl_cmd_policies, "policies()  the loaded Lua policies"},
    {"reload", repl_cmd_reload,
     "reload()  reload the policy folder; on any error the running set stays"},
    {"journal", repl_cmd_journal, "journal(n)  the last n records of today's journal (20)"},
    {"halt", repl_cmd_halt, "halt(reason)  engage the kill switch"},
    {"resume", repl_cmd_resume, "resume(reason)  release the kill switch"},
    {NULL, NULL, NULL},
};

static const repl_cmd repl_sim_cmds[] = {
    {"advance", repl_sim_advance, "sim.advance(seconds)  move the simulator clock forward"},
    {"set_price", repl_sim_set_price, "sim.set_price(sym, px)  pin a symbol's price"},
    {"fill", repl_sim_fill, "sim.fill(order_id)  fill a working order at the touch"},
    {NULL, NULL, NULL},
};

static int repl_help(lua_State *L) {
    im_repl_console *c = repl_of(L);
    const repl_cmd *tabs[2] = {repl_cmds, repl_sim_cmds};
    for (int t = 0; t < 2; t++)
        for (const repl_cmd *r = tabs[t]; r->name; r++) {
            repl_puts(c, r->help);
            repl_puts(c, "\n");
        }
    repl_puts(c, "help()  this list; =expr or a bare expression prints its value\n");
    return 0;
}

/* The value printer, in Lua: stable JSON-like text with sorted keys, a
 * depth cap and a length cap (256 items and 256 bytes of string per value,
 * after Redis's Lua debugger). It captures the library functions it uses,
 * so a console that redefines `pairs` or `table` cannot break it. */
static const char repl_show_src[] =
    "local type, next, tostring, sort, concat, fmt, rep, rawlen, math_type =\n"
    "  type, next, tostring, table.sort, table.concat, string.format, string.rep, rawlen, math.type\n"
    "local MAXDEPTH, MAXITEMS, MAXSTR, WIDTH = 6, 256, 256, 72\n"
    "local esc = { ['\"'] = '\\\\\"', ['\\\\'] = '\\\\\\\\', ['\\n'] = '\\\\n', ['\\r'] = '\\\\r', ['\\t'] = '\\\\t' }\n"
    "local function str(s)\n"
    "  local more = ''\n"
    "  if #s > MAXSTR then more = fmt('...(%d more bytes)', #s - MAXSTR); s = s:sub(1, MAXSTR) end\n"
    "  return '\"' .. s:gsub('[%c\"\\\\]', function(ch) return esc[ch] or fmt('\\\\u%04x', ch:byte()) end) .. more .. '\"'\n"
    "end\n"
    "local order = { number = 1, string = 2, boolean = 3 }\n"
    "local function keycmp(a, b)\n"
    "  local ta, tb = type(a), type(b)\n"
    "  if ta ~= tb then return (order[ta] or 9) < (order[tb] or 9) end\n"
    "  if ta == 'number' or ta == 'string' then return a < b end\n"
    "  if ta == 'boolean' then return (not a) and b end\n"
    "  return false\n"
    "end\n"
    "local show\n"
    "local function scalar(v)\n"
    "  local t = type(v)\n"
    "  if t == 'string' then return str(v) end\n"
    "  if t == 'number' then\n"
    "    if math_type(v) == 'integer' then return fmt('%d', v) end\n"
    "    if v ~= v then return 'nan' end\n"
    "    if v == 1/0 then return 'inf' elseif v == -1/0 then return '-inf' end\n"
    "    if v == math.floor(v) and v > -1e15 and v < 1e15 then return fmt('%d', v) end\n"
    "    return fmt('%.10g', v)\n"
    "  end\n"
    "  if t == 'nil' or t == 'boolean' then return tostring(v) end\n"
    "  return '<' .. t .. '>'\n"
    "end\n"
    "show = function(v, depth, indent)\n"
    "  if type(v) ~= 'table' then return scalar(v) end\n"
    "  if depth >= MAXDEPTH then return '{...}' end\n"
    "  local keys, n = {}, 0\n"
    "  for k in next, v do\n"
    "    n = n + 1\n"
    "    keys[n] = k\n"
    "  end\n"
    "  if n == 0 then return '{}' end\n"
    "  local seq = rawlen(v) == n\n"
    "  if not seq then sort(keys, keycmp) end\n"
    "  local parts, shown = {}, 0\n"
    "  for i = 1, n do\n"
    "    if shown >= MAXITEMS then parts[#parts + 1] = fmt('...(%d more)', n - shown); break end\n"
    "    local k = seq and i or keys[i]\n"
    "    local val = show(v[k], depth + 1, indent .. '  ')\n"
    "    if seq then parts[#parts + 1] = val\n"
    "    elseif type(k) == 'string' then parts[#parts + 1] = str(k) .. ': ' .. val\n"
    "    else parts[#parts + 1] = '[' .. scalar(k) .. ']: ' .. val end\n"
    "    shown = shown + 1\n"
    "  end\n"
    "  local open, close = seq and '[' or '{', seq and ']' or '}'\n"
    "  local flat = open .. concat(parts, ', ') .. close\n"
    "  if #flat + #indent <= WIDTH and not flat:find('\\n', 1, true) then return flat end\n"
    "  local inner = indent .. '  '\n"
    "  return open .. '\\n' .. inner .. concat(parts, ',\\n' .. inner) .. '\\n' .. indent .. close\n"
    "end\n"
    "return function(...)\n"
    "  local n, out = select('#', ...), {}\n"
    "  for i = 1, n do\n"
    "    local v = select(i, ...)\n"
    "    out[i] = (i == 1 and n == 1 and type(v) == 'string') and v or show(v, 0, '')\n"
    "  end\n"
    "  return concat(out, '\\t')\n"
    "end\n";

static int repl_show_ref_key;   /* its address keys the printer in the registry */

/* ---- evaluation -------------------------------------------------------------------- */

static void repl_line_end(im_repl_console *c) {
    if (c->co_ref != LUA_NOREF) {
        luaL_unref(c->L, LUA_REGISTRYINDEX, c->co_ref);
        c->co_ref = LUA_NOREF;
    }
    c->co = NULL;
    c->waiting = 0;
    lua_settop(c->L, 0);
}

/* Prints the n values on top of co through the Lua printer (protected). */
static void repl_print_results(im_repl_console *c, int n) {
    lua_State *L = c->L;
    size_t len;
    const char *s;
    lua_settop(L, 0);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &repl_show_ref_key);   /* [show] */
    lua_xmove(c->co, L, n);                                   /* [show, v1..vn] */
    if (lua_pcall(L, n, 1, 0) != LUA_OK || (s = lua_tolstring(L, -1, &len)) == NULL) {
        repl_puts(c, "(the value could not be printed)\n");
    } else {
        repl_write(c, s, len);
        repl_write(c, "\n", 1);
    }
    lua_settop(L, 0);
}

/* Resumes the line's coroutine with nargs values on its stack; on its end
 * prints its results or its error with a traceback. */
static void repl_resume(im_repl_console *c, int nargs) {
    lua_State *co = c->co;
    int nres = 0;
    int st = lua_resume(co, c->L, nargs, &nres);
    if (st == LUA_YIELD) {
        if (!c->waiting) {
            /* The user's own coroutine.yield at the top level. */
            lua_pop(co, nres);
            repl_puts(c, "error: cannot yield from the console's top level\n");
            repl_line_end(c);
        }
        return;
    }
    if (st == LUA_OK) {
        if (nres > 0)
            repl_print_results(c, nres);
    } else {
        const char *msg = lua_tostring(co, -1);
        luaL_traceback(c->L, co, msg ? msg : "(error object is not a string)", 0);
        size_t len;
        const char *tb = lua_tolstring(c->L, -1, &len);
        repl_write(c, tb, len);
        repl_write(c, "\n", 1);
    }
    repl_line_end(c);
}

static void repl_input_reset(im_repl_console *c) {
    free(c->input);
    c->input = NULL;
    c->input_len = 0;
}

static int repl_input_append(im_repl_console *c, const char *line, size_t len) {
    size_t need = c->input_len + len + 2;
    char *p;
    if (need > REPL_MAX_INPUT)
        return IM_ETOOBIG;
    p = realloc(c->input, need);
    if (p == NULL)
        return IM_ENOMEM;
    c->input = p;
    if (c->input_len > 0)
        c->input[c->input_len++] = '\n';
    memcpy(c->input + c->input_len, line, len);
    c->input_len += len;
    c->input[c->input_len] = '\0';
    return 0;
}

/* 1 when the syntax error on top of L means "the input is incomplete". */
static int repl_incomplete(lua_State *L) {
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    static const char mark[] = "<eof>";
    return msg && len >= sizeof mark - 1 && strcmp(msg + len - (sizeof mark - 1), mark) == 0;
}

int im_repl_console_feed(im_repl_console *c, const char *line, size_t len) {
    lua_State *L = c->L;
    int first = c->input == NULL, rc, st;

    if (c->co != NULL)
        return IM_EBUSY;
    lua_settop(L, 0);
    if (first && len > 0 && line[0] == '=') {
        rc = repl_input_append(c, "return ", 7);
        if (rc == 0)
            rc = repl_input_append(c, line + 1, len - 1);
        if (rc == 0) {   /* join "return " and the rest without a newline */
            memmove(c->input + 7, c->input + 8, c->input_len - 7);
            c->input_len--;
        }
    } else {
        rc = repl_input_append(c, line, len);
    }
    if (rc != 0) {
        repl_input_reset(c);
        repl_puts(c, "error: input too long\n");
        return 0;
    }
    st = LUA_ERRSYNTAX;
    if (first && strncmp(c->input, "return ", 7) != 0) {
        lua_pushliteral(L, "return ");
        lua_pushlstring(L, c->input, c->input_len);
        lua_concat(L, 2);
        size_t n;
        const char *src = lua_tolstring(L, -1, &n);
        st = luaL_loadbufferx(L, src, n, "=stdin", "t");   /* [src, fn|err] */
        lua_remove(L, 1);                            /* [fn|err] */
        if (st != LUA_OK)
            lua_settop(L, 0);
    }
    if (st != LUA_OK)
        st = luaL_loadbufferx(L, c->input, c->input_len, "=stdin", "t");
    if (st == LUA_ERRSYNTAX && repl_incomplete(L)) {
        lua_settop(L, 0);
        return 0;   /* keep reading */
    }
    repl_input_reset(c);
    if (st != LUA_OK) {
        size_t n;
        const char *msg = lua_tolstring(L, -1, &n);
        repl_write(c, msg ? msg : "syntax error", msg ? n : 12);
        repl_write(c, "\n", 1);
        lua_settop(L, 0);
        return 0;
    }
    c->co = lua_newthread(L);                        /* [fn, co] */
    c->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);      /* [fn] */
    lua_xmove(L, c->co, 1);                          /* [] ; co: [fn] */
    c->instr = 0;
    c->interrupted = 0;
    lua_sethook(c->co, repl_hook, LUA_MASKCOUNT, REPL_HOOK_STEP);
    repl_resume(c, 0);
    return c->co != NULL ? 1 : 0;
}

int im_repl_console_busy(const im_repl_console *c) { return c->co != NULL; }

const char *im_repl_console_prompt(const im_repl_console *c) {
    return c->input != NULL ? ">> " : "> ";
}

/* ---- creation ------------------------------------------------------------------------ */

static void repl_open_libs(lua_State *L) {
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},          {LUA_COLIBNAME, luaopen_coroutine},
        {LUA_TABLIBNAME, luaopen_table},    {LUA_STRLIBNAME, luaopen_string},
        {LUA_MATHLIBNAME, luaopen_math},    {LUA_UTF8LIBNAME, luaopen_utf8},
        {NULL, NULL},
    };
    for (const luaL_Reg *l = libs; l->name; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    /* No file system from the console: the base library's loaders go. */
    static const char *const drop[] = {"dofile", "loadfile", "collectgarbage", NULL};
    for (int i = 0; drop[i]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, drop[i]);
    }
}

static int repl_setup(lua_State *L) {
    repl_open_libs(L);
    for (const repl_cmd *r = repl_cmds; r->name; r++) {
        lua_pushcfunction(L, r->fn);
        lua_setglobal(L, r->name);
    }
    lua_createtable(L, 0, 3);   /* [sim] */
    for (const repl_cmd *r = repl_sim_cmds; r->name; r++) {
        lua_pushcfunction(L, r->fn);
        lua_setfield(L, -2, r->name);
    }
    lua_setglobal(L, "sim");    /* [] */
    lua_pushcfunction(L, repl_help);
    lua_setglobal(L, "help");
    lua_pushcfunction(L, repl_print);
    lua_setglobal(L, "print");
    /* load() takes source text only: precompiled chunks can corrupt memory. */
    if (luaL_loadstring(L, "local l = load\n"
                           "load = function(chunk, name, mode, env) return l(chunk, name, 't', env) end") !=
        LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 0);
    if (luaL_loadbuffer(L, repl_show_src, sizeof repl_show_src - 1, "=show") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 1);          /* [show] */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &repl_show_ref_key);
    return 0;
}

/* The state's allocator: the default one, under REPL_MEM_LIMIT. */
static void *repl_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    im_repl_console *c = ud;
    size_t old = ptr ? osize : 0;
    void *p;
    if (nsize == 0) {
        free(ptr);
        c->mem_used -= old;
        return NULL;
    }
    if (nsize > old && c->mem_used - old + nsize > REPL_MEM_LIMIT)
        return NULL;
    p = realloc(ptr, nsize);
    if (p != NULL)
        c->mem_used = c->mem_used - old + nsize;
    return p;
}

/* An error outside any protected call (only out-of-memory while pushing a
 * broker answer can get here): nothing sane remains to do. */
static int repl_panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    im_error("console: unprotected Lua error: %s", msg ? msg : "(not a string)");
    abort();
}

int im_repl_console_new(const im_repl_console_opts *o, im_repl_console **out) {
    im_repl_console *c = calloc(1, sizeof *c);
    if (c == NULL)
        return IM_ENOMEM;
    c->app = o->app;
    snprintf(c->origin, sizeof c->origin, "%s", o->origin ? o->origin : "console");
    c->local = o->local;
    c->write = o->write;
    c->done = o->done;
    c->ud = o->ud;
    c->co_ref = LUA_NOREF;
    c->L = lua_newstate(repl_alloc, c);
    if (c->L == NULL) {
        free(c);
        return IM_ENOMEM;
    }
    lua_atpanic(c->L, repl_panic);
    *(im_repl_console **)lua_getextraspace(c->L) = c;
    lua_pushcfunction(c->L, repl_setup);
    if (lua_pcall(c->L, 0, 0, 0) != LUA_OK) {
        im_error("console: %s", lua_tostring(c->L, -1));
        lua_close(c->L);
        free(c);
        return IM_ENOMEM;
    }
    *out = c;
    return 0;
}

static void repl_free_now(im_repl_console *c) {
    repl_input_reset(c);
    lua_close(c->L);
    free(c);
}

void im_repl_console_free(im_repl_console *c) {
    if (c == NULL)
        return;
    c->freed = 1;
    if (c->waiting)
        return;   /* the pending callback frees it */
    repl_free_now(c);
}

/* ---- `ibkr-mcp repl` ------------------------------------------------------------------- */

static im_repl_console *volatile g_repl_running;   /* for the SIGINT handler */

/* Ctrl-C while a line runs: arm a count-1 hook that raises "interrupted"
 * at the next instruction (lua.c's laction); a second Ctrl-C kills. */
static void repl_sigint(int sig) {
    im_repl_console *c = g_repl_running;
    signal(sig, SIG_DFL);
    if (c != NULL && c->co != NULL) {
        c->interrupted = 1;
        lua_sethook(c->co, repl_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
    }
}

static void repl_stdout_write(void *ud, const char *text, size_t len) {
    (void)ud;
    fwrite(text, 1, len, stdout);   // stdout-ok: `repl` is the terminal mode
    fflush(stdout);                 // stdout-ok
}

static void repl_stdout_done(void *ud) { (void)ud; }

static const char *repl_getenv(const char *name) { return getenv(name); }

/* Notices of the local console wait here until the line that caused them
 * has printed its answer, then go to stderr before the next prompt (so a
 * piped session's stdout stays the answers alone). Bounded: a flood of
 * fills while a line runs keeps the first REPL_NOTES_MAX bytes and counts
 * the rest. */
#define REPL_NOTES_MAX (64 * 1024)

typedef struct repl_notes {
    char buf[REPL_NOTES_MAX];
    size_t len;
    unsigned long dropped;
} repl_notes;

static void repl_notes_listener(void *ud, const im_session_event *ev) {
    repl_notes *n = ud;
    char line[1024];
    size_t l;
    if (!im_repl_notice(ev, line, sizeof line))
        return;
    l = strlen(line);
    if (n->len + l + 1 > sizeof n->buf) {
        n->dropped++;
        return;
    }
    memcpy(n->buf + n->len, line, l);
    n->buf[n->len + l] = '\n';
    n->len += l + 1;
}

static void repl_notes_flush(repl_notes *n) {
    if (n->len > 0)
        fwrite(n->buf, 1, n->len, stderr);
    if (n->dropped > 0)
        fprintf(stderr, "(%lu more notices dropped)\n", n->dropped);
    n->len = 0;
    n->dropped = 0;
    fflush(stderr);
}

/* One input line, without its newline, in *line (malloc'd; the caller
 * frees it). On a terminal libedit edits it and keeps it in the history
 * (in memory only: a console line may hold a token, which must not land
 * in a file); piped input is read as it always was, with getline. Returns
 * the length, or -1 at end of input. */
static ssize_t repl_read_line(int tty, const char *prompt, char **line, size_t *cap) {
    ssize_t n;
    if (tty) {
        char *l = readline(prompt);
        if (l == NULL)
            return -1;
        if (l[strspn(l, " \t")] != '\0')
            add_history(l);
        free(*line);
        *line = l;
        *cap = strlen(l) + 1;
        return (ssize_t)strlen(l);
    }
    n = getline(line, cap, stdin);
    if (n < 0)
        return -1;
    while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r'))
        (*line)[--n] = '\0';
    return n;
}

int im_repl_run(void) {
    uv_loop_t loop;
    im_app app;
    im_repl_console_opts o;
    im_repl_console *c;
    repl_notes *notes;
    char err[512], origin[64];
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int tty = isatty(0);

    signal(SIGPIPE, SIG_IGN);
    notes = calloc(1, sizeof *notes);
    if (notes == NULL) {
        fprintf(stderr, "ibkr-mcp: out of memory\n");
        return 1;
    }
    uv_loop_init(&loop);
    if (im_app_init(&app, &loop, repl_getenv, 0, err, sizeof err) != 0) {
        fprintf(stderr, "ibkr-mcp: %s\n", err);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        free(notes);
        return 2;
    }
    snprintf(origin, sizeof origin, "repl (pid %ld)", (long)getpid());
    memset(&o, 0, sizeof o);
    o.app = &app;
    o.origin = origin;
    o.local = 1;
    o.write = repl_stdout_write;
    o.done = repl_stdout_done;
    if (im_repl_console_new(&o, &c) != 0) {
        fprintf(stderr, "ibkr-mcp: out of memory\n");
        im_app_close(&app);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        free(notes);
        return 1;
    }
    if (im_session_add_listener(app.session, repl_notes_listener, notes) != 0)
        im_warn("console: no room for another session listener; notices are off");
    if (tty) {
        printf("ibkr-mcp console on the %s backend (trading %s). help() lists the commands.\n",   // stdout-ok
               app.broker && app.broker->ops ? app.broker->ops->name : "?",
               app.cfg.trading_enabled ? "enabled" : "disabled");
        fflush(stdout);   // stdout-ok
        stifle_history(1000);
    }
    for (;;) {
        repl_notes_flush(notes);
        n = repl_read_line(tty, im_repl_console_prompt(c), &line, &cap);
        if (n < 0)
            break;
        g_repl_running = c;
        signal(SIGINT, repl_sigint);
        if (im_repl_console_feed(c, line, (size_t)n) == 1) {
            /* Wait for the broker: run the loop until the line ends
             * (bounded, like luatest's lt_wait_reply). */
            for (long i = 0; im_repl_console_busy(c) && i < 10000000; i++)
                if (uv_run(&loop, UV_RUN_ONCE) == 0 && im_repl_console_busy(c) && i > 1000)
                    break;
            if (im_repl_console_busy(c))
                fputs("error: no answer from the broker\n", stderr);
        }
        signal(SIGINT, SIG_DFL);
        g_repl_running = NULL;
        /* Let events the line caused (fills, acknowledgements) land. */
        uv_run(&loop, UV_RUN_NOWAIT);
        if (im_repl_console_busy(c))
            break;
    }
    if (tty)
        fputs("\n", stdout);   // stdout-ok
    repl_notes_flush(notes);
    free(line);
    im_session_remove_listener(app.session, repl_notes_listener, notes);
    im_repl_console_free(c);
    im_app_close(&app);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(notes);
    return 0;
}
