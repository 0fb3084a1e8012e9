/* tools.c: the tool registry and the host API of tools.h.
 *
 * One sandboxed state holds every tool (one trust domain). Each call runs
 * its tool's `run` in a fresh coroutine whose extra space points at the
 * call. A host function that needs the broker starts the session
 * operation and yields; the completion callback builds its Lua values on
 * the main state inside a protected call (so an allocation failure cannot
 * longjmp through libuv frames), moves them onto the coroutine and resumes
 * it. If the operation completes before the host function returns, the
 * values are simply returned without yielding. */
#include "tools.h"

#include <dirent.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "error.h"
#include "jsonw.h"
#include "log.h"
#include "schema.h"
#include "script.h"
#include "script_json.h"
#include "text.h"

#define TOOLS_MAX 64
/* Coroutines that finished normally, kept for the next calls: a new thread
 * per call (its stack, its registry slot, its collection) was a few per
 * cent of a get_quote. */
#define TOOLS_IDLE_CO 256
#define TOOL_FILE_MAX (256 * 1024)

typedef struct tool_def {
    char name[129];
    cJSON *input;      /* owned */
    cJSON *output;     /* owned */
    im_schema *in_s;   /* owned: input, compiled */
    im_schema *out_s;  /* owned: output, compiled */
    int out_direct;    /* out_s is simple: results are written straight from Lua */
    int run_ref;       /* registry ref of the run function */
} tool_def;

struct im_tools {
    im_session *session;
    im_script *script;
    lua_State *L;
    tool_def defs[TOOLS_MAX];
    size_t ndefs;
    cJSON *list;       /* tools/list array, owned */
    size_t pending;
    im_jw out;         /* a structured result's text, reused (jsonw.h) */
    lua_State *idle[TOOLS_IDLE_CO];   /* finished coroutines, each with ... */
    int idle_ref[TOOLS_IDLE_CO];      /* ... its registry reference */
    size_t nidle;
};

struct im_tool_call {
    im_tools *t;
    const tool_def *def;
    lua_State *co;
    int co_ref;
    im_tool_done_cb cb;
    void *ud;
    im_tool_call **handle;   /* cleared when the call ends */
    int in_host;             /* a host function is running on co */
    int sync_ready;          /* its operation completed before it returned */
    int waiting;             /* parked in a yield */
    int abandoned;
    int finished;            /* the coroutine returned normally: reusable */
    /* Human confirmation for place_order (im_tools_call_ex). */
    im_confirmer confirmer;
    int have_confirmer;
    char request_state[IM_CONFIRM_ID_LEN + 1];  /* a 2026-07-28 retry; "" otherwise */
    int answer;              /* the im_confirm_answer that retry carries */
    /* The call ended waiting for a human: the result carries the question. */
    int input_required;
    char confirm_id[IM_CONFIRM_ID_LEN + 1];
    char confirm_message[640];
    double confirm_expires_in;
};

static im_tool_call *call_of(lua_State *L) {
    return *(im_tool_call **)lua_getextraspace(L);
}

/* ---- results ------------------------------------------------------------ */

static cJSON *result_text(const char *text, int is_error) {
    cJSON *res = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(res, "content");
    cJSON *block = cJSON_CreateObject();
    cJSON *t;
    cJSON_AddStringToObject(block, "type", "text");
    /* Sentences may quote client input cut by snprintf: keep them UTF-8. */
    t = cJSON_AddStringToObject(block, "text", text);
    if (t != NULL && t->valuestring != NULL)
        im_text_sanitize(t->valuestring);
    cJSON_AddItemToArray(content, block);
    if (is_error)
        cJSON_AddBoolToObject(res, "isError", 1);
    return res;
}

/* The structured result is printed once: the text block carries that text
 * and structuredContent a cJSON_Raw copy of it, written verbatim into the
 * reply. The tree borrows the Lua strings of the value at idx, which stays
 * on co's stack until this returns. */
static cJSON *result_structured(im_tools *t, const tool_def *d, lua_State *co, int idx) {
    char err[512];
    cJSON *v = NULL, *res, *content, *block, *raw;
    const char *text;
    im_jw *w = &t->out;

    /* Straight from the Lua value when its schema allows; anything that
     * way does not take (a value to refuse, a null to fill) goes the full
     * way below, which says what is wrong. */
    im_jw_reset(w);
    if (d->out_direct && im_sjson_write(w, co, idx, d->out_s, IM_SJSON_MAX_DEPTH) == 0)
        goto written;
    im_jw_reset(w);
    if (im_sjson_from_lua_borrow(co, idx, d->out_s, IM_SJSON_MAX_DEPTH, &v, err, sizeof err) !=
        0) {
        im_error("tool %s returned a value that is not JSON: %s", d->name, err);
        return result_text("The tool returned malformed data (a server bug); see the server log.", 1);
    }
    /* Required fields whose type admits null and that the handler left out
     * (Lua cannot hold nil in a table) are written as null. */
    im_schema_fill_nulls(d->out_s, v);
    if (im_schema_run(d->out_s, v, err, sizeof err) != 0) {
        im_error("tool %s result breaks its output schema: %s", d->name, err);
        cJSON_Delete(v);
        return result_text("The tool's result did not match its output schema (a server bug); "
                           "see the server log.", 1);
    }
    im_jw_cjson(w, v);
    cJSON_Delete(v);
written:
    if (w->oom) {
        im_jw_reset(w);
        return NULL;
    }
    text = w->buf;
    /* Every string and key was checked to be UTF-8 on the way in: no
     * sanitizing here, unlike result_text. */
    res = cJSON_CreateObject();
    content = cJSON_AddArrayToObject(res, "content");
    block = cJSON_CreateObject();
    raw = cJSON_CreateRaw(text);
    if (content == NULL || block == NULL || raw == NULL ||
        !cJSON_AddStringToObject(block, "type", "text") ||
        !cJSON_AddStringToObject(block, "text", text) || !cJSON_AddItemToArray(content, block)) {
        cJSON_Delete(block);
        block = NULL;
    }
    im_jw_reset(w);
    if (block == NULL || !cJSON_AddItemToObject(res, "structuredContent", raw)) {
        cJSON_Delete(raw);   /* not attached */
        cJSON_Delete(res);
        return NULL;
    }
    return res;
}

static void call_finish(im_tool_call *c, cJSON *result) {
    im_tools *t = c->t;
    if (c->handle)
        *c->handle = NULL;
    if (c->input_required && result != NULL) {
        /* For the protocol layer: this call's answer is a question for a
         * human (an input_required result in 2026-07-28). */
        cJSON *q = cJSON_CreateObject();
        cJSON_AddStringToObject(q, "id", c->confirm_id);
        cJSON_AddStringToObject(q, "message", c->confirm_message);
        cJSON_AddNumberToObject(q, "expires_in", c->confirm_expires_in);
        cJSON_AddItemToObject(result, IM_TOOLS_INPUT_REQUIRED, q);
    }
    /* A coroutine that returned (status OK, empty stack) starts the next
     * call as a fresh one would; any other is released. */
    if (c->finished && t->nidle < TOOLS_IDLE_CO && lua_status(c->co) == LUA_OK &&
        lua_gettop(c->co) == 0) {
        *(im_tool_call **)lua_getextraspace(c->co) = NULL;
        t->idle[t->nidle] = c->co;
        t->idle_ref[t->nidle++] = c->co_ref;
    } else {
        luaL_unref(t->L, LUA_REGISTRYINDEX, c->co_ref);
    }
    t->pending--;
    if (!c->abandoned && c->cb)
        c->cb(c->ud, result ? result : result_text("Out of memory.", 1));
    else
        cJSON_Delete(result);
    free(c);
}

/* Handles the outcome of a resume. */
static void call_step(im_tool_call *c, im_script_status st, int nres, const char *err) {
    lua_State *co = c->co;
    const tool_def *d = c->def;

    if (st == IM_SCRIPT_YIELD) {
        c->waiting = 1;
        return;
    }
    if (st != IM_SCRIPT_OK) {
        char msg[640];
        im_error("tool %s failed (%s): %s", d->name, im_script_status_name(st), err);
        snprintf(msg, sizeof msg, "The %s tool failed (%s): %.400s", d->name,
                 im_script_status_name(st), err);
        /* Keep only the first line: the traceback is in the server log. */
        char *nl = strchr(msg, '\n');
        if (nl)
            *nl = '\0';
        call_finish(c, result_text(msg, 1));
        return;
    }
    c->finished = 1;
    int base = lua_gettop(co) - nres + 1;
    if (nres >= 1 && lua_type(co, base) == LUA_TTABLE) {
        cJSON *res = result_structured(c->t, d, co, base);
        lua_settop(co, 0);
        call_finish(c, res);
        return;
    }
    /* nil, "sentence": a business error the agent can act on. */
    const char *msg = nres >= 2 ? lua_tostring(co, base + 1) : NULL;
    char text[1024];
    snprintf(text, sizeof text, "%s",
             msg ? msg : "The tool returned no result (a server bug); see the server log.");
    if (!msg)
        im_error("tool %s returned neither a table nor an error message", d->name);
    lua_settop(co, 0);
    call_finish(c, result_text(text, 1));
}

static void call_resume(im_tool_call *c, int nargs) {
    char err[2048];
    int nres = 0;
    im_script_status st;
    c->waiting = 0;
    st = im_script_resume(c->t->script, c->co, nargs, &nres, err, sizeof err);
    call_step(c, st, nres, err);
}

/* Builds two values (value-or-nil, message-or-nil) on the main state with
 * builder(data) under protection, then hands them to the call. */
static void call_deliver(im_tool_call *c, lua_CFunction builder, void *data) {
    im_tools *t = c->t;
    lua_State *M = t->L;
    char err[256];
    im_script_status st;

    lua_pushcfunction(M, builder);
    lua_pushlightuserdata(M, data);
    st = im_script_call(t->script, M, 1, 2, err, sizeof err);
    if (st != IM_SCRIPT_OK) {
        im_error("building a host result failed (%s): %s", im_script_status_name(st), err);
        lua_pushnil(M);
        lua_pushstring(M, "The server could not build the result (out of memory?).");
    }
    if (c->abandoned && !c->in_host) {
        lua_pop(M, 2);
        call_finish(c, NULL);
        return;
    }
    if (!lua_checkstack(c->co, 4)) {
        lua_pop(M, 2);
        call_finish(c, result_text("Out of memory.", 1));
        return;
    }
    lua_xmove(M, c->co, 2);
    if (c->in_host) {
        c->sync_ready = 1;
        return;
    }
    call_resume(c, 2);
}

/* ---- Lua value builders (run on the main state, protected) -------------- */

static double r2(double v) { return isfinite(v) ? round(v * 100.0) / 100.0 : 0; }
static double r4(double v) { return isfinite(v) ? round(v * 10000.0) / 10000.0 : 0; }

static void set_num(lua_State *L, const char *k, double v) {
    if (isfinite(v) && v == floor(v) && fabs(v) < 9e15)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, isfinite(v) ? v : 0);
    lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v) {
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

static void set_time(lua_State *L, const char *k, double t) {
    char buf[40];
    im_clock_format_utc(t, buf, sizeof buf);
    set_str(L, k, buf);
}

typedef struct msg_data {
    const char *msg;
} msg_data;

/* [nil, msg] */
static int build_error(lua_State *L) {
    msg_data *m = lua_touserdata(L, 1);
    lua_pushnil(L);
    lua_pushstring(L, m->msg);
    return 2;
}

static void push_quote(lua_State *L, const im_quote *q) {
    lua_createtable(L, 0, 10);
    set_str(L, "symbol", q->symbol);
    set_num(L, "bid", r4(q->bid));
    set_num(L, "ask", r4(q->ask));
    set_num(L, "last", r4(q->last));
    set_num(L, "mid", r4((q->bid + q->ask) / 2));
    set_num(L, "bid_size", q->bid_size);
    set_num(L, "ask_size", q->ask_size);
    set_time(L, "time", q->time);
    set_bool(L, "delayed", q->delayed);
}

static void push_order_fields(lua_State *L, const im_order *o) {
    set_str(L, "symbol", o->symbol);
    set_str(L, "action", im_side_str(o->side));
    set_num(L, "quantity", o->quantity);
    set_str(L, "order_type", im_order_type_str(o->type));
    if (o->limit_price > 0)
        set_num(L, "limit_price", r4(o->limit_price));
    if (o->stop_price > 0)
        set_num(L, "stop_price", r4(o->stop_price));
    set_str(L, "tif", im_tif_str(o->tif));
}

static void push_order_info(lua_State *L, const im_order_info *o) {
    lua_createtable(L, 0, 16);
    set_str(L, "order_id", o->order_id);
    push_order_fields(L, &o->order);
    set_str(L, "status", im_order_status_str(o->status));
    set_num(L, "filled_quantity", o->filled);
    set_num(L, "remaining_quantity", o->remaining);
    set_num(L, "avg_fill_price", r4(o->avg_fill_price));
    set_time(L, "submitted_at", o->submitted_at);
    set_str(L, "message", o->message);
    if (o->order.order_ref[0])
        set_str(L, "order_ref", o->order.order_ref);
}

static int build_quote(lua_State *L) {
    push_quote(L, lua_touserdata(L, 1));
    lua_pushnil(L);
    return 2;
}

static int build_account(lua_State *L) {
    const im_account *a = lua_touserdata(L, 1);
    lua_createtable(L, 0, 10);
    set_str(L, "account_id", a->account_id);
    set_str(L, "account_type", a->account_type);
    set_num(L, "net_liquidation", r2(a->net_liquidation));
    set_num(L, "cash", r2(a->cash));
    set_num(L, "buying_power", r2(a->buying_power));
    set_num(L, "gross_position_value", r2(a->gross_position_value));
    set_num(L, "realized_pnl", r2(a->realized_pnl));
    set_num(L, "unrealized_pnl", r2(a->unrealized_pnl));
    set_num(L, "commissions", r2(a->commissions));
    lua_pushnil(L);
    return 2;
}

typedef struct list_data {
    const void *items;
    size_t n;
} list_data;

static int build_positions(lua_State *L) {
    list_data *d = lua_touserdata(L, 1);
    const im_position *p = d->items;
    lua_createtable(L, (int)d->n, 0);
    for (size_t i = 0; i < d->n; i++) {
        lua_createtable(L, 0, 8);
        set_str(L, "symbol", p[i].symbol);
        set_num(L, "quantity", p[i].quantity);
        set_num(L, "avg_cost", r4(p[i].avg_cost));
        set_num(L, "market_price", r4(p[i].market_price));
        set_num(L, "market_value", r2(p[i].market_value));
        set_num(L, "unrealized_pnl", r2(p[i].unrealized_pnl));
        set_num(L, "realized_pnl", r2(p[i].realized_pnl));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_pushnil(L);
    return 2;
}

static int build_orders(lua_State *L) {
    list_data *d = lua_touserdata(L, 1);
    const im_order_info *o = d->items;
    lua_createtable(L, (int)d->n, 0);
    for (size_t i = 0; i < d->n; i++) {
        push_order_info(L, &o[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_pushnil(L);
    return 2;
}

static int build_execs(lua_State *L) {
    list_data *d = lua_touserdata(L, 1);
    const im_execution *e = d->items;
    lua_createtable(L, (int)d->n, 0);
    for (size_t i = 0; i < d->n; i++) {
        lua_createtable(L, 0, 10);
        set_str(L, "exec_id", e[i].exec_id);
        set_str(L, "order_id", e[i].order_id);
        set_str(L, "symbol", e[i].symbol);
        set_str(L, "action", im_side_str(e[i].side));
        set_num(L, "quantity", e[i].shares);
        set_num(L, "price", r4(e[i].price));
        set_num(L, "commission", r2(e[i].commission));
        set_num(L, "realized_pnl", r2(e[i].realized_pnl));
        set_time(L, "time", e[i].time);
        if (e[i].order_ref[0])
            set_str(L, "order_ref", e[i].order_ref);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_pushnil(L);
    return 2;
}

static int build_preview(lua_State *L) {
    const im_preview *p = lua_touserdata(L, 1);
    lua_createtable(L, 0, 16);
    push_order_fields(L, &p->order);
    set_num(L, "reference_price", r4(p->risk.reference_price));
    set_num(L, "pricing_price", r4(p->risk.pricing_price));
    set_num(L, "estimated_notional", r2(p->risk.notional));
    lua_createtable(L, 0, 3); /* [preview, risk] */
    set_bool(L, "approved", p->risk.approved);
    lua_createtable(L, (int)p->risk.nreasons, 0);
    for (size_t i = 0; i < p->risk.nreasons; i++) {
        lua_pushstring(L, p->risk.reasons[i].text);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "reasons");
    lua_createtable(L, (int)p->risk.nreasons, 0);
    for (size_t i = 0; i < p->risk.nreasons; i++) {
        lua_pushstring(L, p->risk.reasons[i].code);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "codes");
    lua_setfield(L, -2, "risk"); /* [preview] */
    set_bool(L, "trading_enabled", p->trading_enabled);
    set_bool(L, "confirmation_required", p->confirm_required);
    if (p->confirm_required)
        set_str(L, "confirmation_reason", p->confirm_reason);
    if (p->token[0]) {
        set_str(L, "confirmation_token", p->token);
        set_num(L, "token_expires_in_seconds", p->expires_in);
    }
    if (p->have_quote) {
        push_quote(L, &p->quote);
        lua_setfield(L, -2, "quote");
    }
    lua_pushnil(L);
    return 2;
}

static int build_place(lua_State *L) {
    const im_place_result *r = lua_touserdata(L, 1);
    if (r->status != 0) {
        lua_pushnil(L);
        lua_pushstring(L, r->message);
        return 2;
    }
    push_order_info(L, &r->order);
    set_str(L, "message", r->message);
    lua_pushnil(L);
    return 2;
}

static int build_order(lua_State *L) {
    push_order_info(L, lua_touserdata(L, 1));
    lua_pushnil(L);
    return 2;
}

/* ---- completion callbacks ---------------------------------------------- */

static void deliver_error(im_tool_call *c, int status, const char *msg) {
    msg_data m = {msg && *msg ? msg : im_strerror(status)};
    call_deliver(c, build_error, &m);
}

static void quote_cb(void *ud, int status, const char *msg, const im_quote *q) {
    if (status != 0 || q == NULL)
        deliver_error(ud, status, msg);
    else
        call_deliver(ud, build_quote, (void *)q);
}

static void account_cb(void *ud, int status, const char *msg, const im_account *a) {
    if (status != 0 || a == NULL)
        deliver_error(ud, status, msg);
    else
        call_deliver(ud, build_account, (void *)a);
}

static void positions_cb(void *ud, int status, const char *msg, const im_position *p, size_t n) {
    list_data d = {p, n};
    if (status != 0)
        deliver_error(ud, status, msg);
    else
        call_deliver(ud, build_positions, &d);
}

static void orders_cb(void *ud, int status, const char *msg, const im_order_info *o, size_t n) {
    list_data d = {o, n};
    if (status != 0)
        deliver_error(ud, status, msg);
    else
        call_deliver(ud, build_orders, &d);
}

static void execs_cb(void *ud, int status, const char *msg, const im_execution *e, size_t n) {
    list_data d = {e, n};
    if (status != 0)
        deliver_error(ud, status, msg);
    else
        call_deliver(ud, build_execs, &d);
}

static void preview_cb(void *ud, int status, const char *msg, const im_preview *p) {
    if (status != 0 || p == NULL)
        deliver_error(ud, status, msg);
    else
        call_deliver(ud, build_preview, (void *)p);
}

static void place_cb(void *ud, const im_place_result *r) {
    im_tool_call *c = ud;
    if (r->status == IM_EINPUT) {
        c->input_required = 1;
        snprintf(c->confirm_id, sizeof c->confirm_id, "%s", r->confirm_id);
        snprintf(c->confirm_message, sizeof c->confirm_message, "%s", r->confirm_message);
        c->confirm_expires_in = r->confirm_expires_in;
    }
    call_deliver(c, build_place, (void *)r);
}

static void cancel_cb(void *ud, int status, const char *msg, const im_order_info *o) {
    if (status != 0 || o == NULL)
        deliver_error(ud, status, msg);
    else
        call_deliver(ud, build_order, (void *)o);
}

/* ---- host functions (the ibkr table) ----------------------------------- */

/* Marked WILL_LJMP in spirit: raises when called outside a tool handler.
 * Holds no C resources. */
static im_tool_call *host_enter(lua_State *L, const char *fname) {
    im_tool_call *c = call_of(L);
    if (c == NULL || c->co != L || c->in_host)
        luaL_error(L, "ibkr.%s can only be called from a tool handler", fname);
    c->in_host = 1;
    c->sync_ready = 0;
    return c;
}

/* Finishes a host function after its session call returned rc. */
static int host_leave(lua_State *L, im_tool_call *c, int rc) {
    c->in_host = 0;
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, im_strerror(rc));
        return 2;
    }
    if (c->sync_ready) {
        c->sync_ready = 0;
        return 2;   /* the two values call_deliver moved onto L */
    }
    return lua_yield(L, 0);
}

static im_session *session_of(lua_State *L) {
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int host_quote(lua_State *L) {
    const char *sym = luaL_checkstring(L, 1);
    im_tool_call *c = host_enter(L, "quote");
    return host_leave(L, c, im_session_quote(session_of(L), sym, quote_cb, c));
}

static int host_account(lua_State *L) {
    im_tool_call *c = host_enter(L, "account");
    return host_leave(L, c, im_session_account(session_of(L), account_cb, c));
}

static int host_positions(lua_State *L) {
    im_tool_call *c = host_enter(L, "positions");
    return host_leave(L, c, im_session_positions(session_of(L), positions_cb, c));
}

static int host_open_orders(lua_State *L) {
    im_tool_call *c = host_enter(L, "open_orders");
    return host_leave(L, c, im_session_open_orders(session_of(L), orders_cb, c));
}

static int host_trades(lua_State *L) {
    im_tool_call *c = host_enter(L, "trades");
    return host_leave(L, c, im_session_executions(session_of(L), execs_cb, c));
}

/* Reads an order table with raw access (no metamethods run). Returns NULL
 * or a sentence naming the bad field. */
static const char *read_order(lua_State *L, int idx, im_order *o) {
    const char *s;
    memset(o, 0, sizeof *o);
    o->tif = IM_TIF_DAY;
    lua_pushliteral(L, "symbol");
    lua_rawget(L, idx);
    s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (s == NULL || strlen(s) >= sizeof o->symbol) {
        lua_pop(L, 1);
        return "symbol must be a string of at most 15 characters";
    }
    snprintf(o->symbol, sizeof o->symbol, "%s", s);
    lua_pop(L, 1);

    lua_pushliteral(L, "action");
    lua_rawget(L, idx);
    s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (s == NULL || im_side_parse(s, &o->side) != 0) {
        lua_pop(L, 1);
        return "action must be BUY or SELL";
    }
    lua_pop(L, 1);

    lua_pushliteral(L, "order_type");
    lua_rawget(L, idx);
    s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "MKT";
    if (im_order_type_parse(s, &o->type) != 0) {
        lua_pop(L, 1);
        return "order_type must be MKT, LMT, STP or STP LMT";
    }
    lua_pop(L, 1);

    lua_pushliteral(L, "tif");
    lua_rawget(L, idx);
    s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "DAY";
    if (im_tif_parse(s, &o->tif) != 0) {
        lua_pop(L, 1);
        return "tif must be DAY, GTC or IOC";
    }
    lua_pop(L, 1);

    static const struct { const char *key; size_t off; int required; } nums[] = {
        {"quantity", offsetof(im_order, quantity), 1},
        {"limit_price", offsetof(im_order, limit_price), 0},
        {"stop_price", offsetof(im_order, stop_price), 0},
    };
    for (size_t i = 0; i < IM_ARRAY_SIZE(nums); i++) {
        double *dst = (double *)((char *)o + nums[i].off);
        lua_pushstring(L, nums[i].key);
        lua_rawget(L, idx);
        if (lua_type(L, -1) == LUA_TNUMBER) {
            *dst = lua_tonumber(L, -1);
        } else if (lua_type(L, -1) != LUA_TNIL || nums[i].required) {
            lua_pop(L, 1);
            return nums[i].required ? "quantity must be a number" : "prices must be numbers";
        }
        lua_pop(L, 1);
    }
    return NULL;
}

static int host_preview(lua_State *L) {
    im_order o;
    const char *bad;
    luaL_checktype(L, 1, LUA_TTABLE);
    bad = read_order(L, 1, &o);
    if (bad != NULL) {
        lua_pushnil(L);
        lua_pushstring(L, bad);
        return 2;
    }
    im_tool_call *c = host_enter(L, "preview");
    return host_leave(L, c, im_session_preview(session_of(L), &o, preview_cb, c));
}

static int host_place(lua_State *L) {
    const char *token = luaL_checkstring(L, 1);
    im_tool_call *c = host_enter(L, "place");
    if (c->request_state[0])
        return host_leave(L, c, im_session_place_resume(session_of(L), c->request_state, token,
                                                        (im_confirm_answer)c->answer, place_cb,
                                                        c));
    return host_leave(L, c, im_session_place_ex(session_of(L), token,
                                                c->have_confirmer ? &c->confirmer : NULL,
                                                place_cb, c));
}

static int host_cancel(lua_State *L) {
    const char *id = luaL_checkstring(L, 1);
    im_tool_call *c = host_enter(L, "cancel");
    return host_leave(L, c, im_session_cancel(session_of(L), id, cancel_cb, c));
}

static int host_halt(lua_State *L) {
    im_session *s = session_of(L);
    const char *reason = luaL_optstring(L, 1, "");
    const char *why;
    im_session_halt(s, reason);
    im_session_halted(s, &why);
    lua_createtable(L, 0, 3);
    set_bool(L, "halted", 1);
    set_str(L, "reason", why);
    set_str(L, "message",
            im_session_config(s)->halt_cancels
                ? "Trading is halted: no new order will be accepted, and the working orders "
                  "placed through this server are being cancelled (check get_open_orders). "
                  "Only an operator can resume trading."
                : "Trading is halted: no new order will be accepted. Working orders stay at "
                  "the broker (IBKR_HALT_CANCELS=false); cancel them with cancel_order if "
                  "needed. Only an operator can resume trading.");
    return 1;
}

/* ibkr.journal(date?, limit?): the last limit records (1..1000, default
 * 100) of that day's journal, oldest first. A bounded read of a local file,
 * synchronous like status. */
static int host_journal(lua_State *L) {
    im_session *s = session_of(L);
    const char *day = luaL_optstring(L, 1, NULL);
    lua_Integer limit = luaL_optinteger(L, 2, 100);
    im_journal *j = im_session_journal(s);
    cJSON *recs = NULL;
    char today[16];
    int rc;
    if (limit < 1 || limit > 1000) {
        lua_pushnil(L);
        lua_pushstring(L, "limit must be between 1 and 1000");
        return 2;
    }
    if (j == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, "This server keeps no journal (no state directory).");
        return 2;
    }
    rc = im_journal_tail(j, day, (size_t)limit, (size_t)4 * 1024 * 1024, &recs);
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, rc == IM_EINVAL ? "date must be YYYY-MM-DD"
                                          : "The journal could not be read; see the server log.");
        return 2;
    }
    if (day == NULL && im_clock_ny_date(im_session_now(s), today, sizeof today) == 0)
        day = today;
    lua_createtable(L, 0, 3);
    set_str(L, "date", day ? day : "");
    set_num(L, "count", (double)cJSON_GetArraySize(recs));
    rc = im_sjson_push(L, recs, IM_SJSON_MAX_DEPTH);
    cJSON_Delete(recs);
    if (rc != 0)
        return luaL_error(L, "journal records nest too deeply");
    lua_setfield(L, -2, "records");
    return 1;
}

static int host_status(lua_State *L) {
    im_session *s = session_of(L);
    const im_config *cfg = im_session_config(s);
    const im_limits *l = &cfg->limits;
    im_broker *b = im_session_broker(s);
    const char *why;
    int halted = im_session_halted(s, &why);

    lua_createtable(L, 0, 12);
    set_str(L, "backend", b->ops->name);
    set_bool(L, "connected", b->ops->connected(b));
    set_bool(L, "trading_enabled", cfg->trading_enabled);
    set_str(L, "account", im_session_account_id(s));
    {
        const char *acct = im_session_account_id(s);
        const char *block = im_session_live_block(s);
        im_broker_info bi;
        set_str(L, "account_type", acct[0] == '\0' ? "unknown"
                                   : im_account_is_paper(acct) ? "paper" : "live");
        set_bool(L, "live_trading_allowed", cfg->allow_live_account);
        if (block != NULL)
            set_str(L, "trading_blocked", block);
        b->ops->info(b, &bi);
        lua_createtable(L, 0, 10); /* [status, connection] */
        set_str(L, "state", bi.state);
        if (bi.host[0]) {
            set_str(L, "host", bi.host);
            set_num(L, "port", bi.port);
            set_num(L, "client_id", bi.client_id);
            set_num(L, "server_version", bi.server_version);
            set_num(L, "reconnects", bi.reconnects);
            if (bi.next_retry_in > 0)
                set_num(L, "next_retry_in_seconds", r2(bi.next_retry_in));
            set_bool(L, "delayed_data", bi.delayed_data);
        }
        if (bi.last_error[0]) {
            set_str(L, "last_error", bi.last_error);
            if (bi.last_error_at > 0)
                set_time(L, "last_error_at", bi.last_error_at);
        }
        if (strcmp(b->ops->name, "sim") == 0)
            set_str(L, "account_file", bi.account_file ? bi.account_file
                                                       : "(in memory only: not kept across "
                                                         "restarts)");
        lua_setfield(L, -2, "connection"); /* [status] */
    }
    set_bool(L, "halted", halted);
    if (halted)
        set_str(L, "halt_reason", why);
    set_num(L, "orders_today", im_session_orders_today(s));
    set_num(L, "notional_today", r2(im_session_notional_today(s)));
    set_num(L, "pending_tokens", (double)im_tokens_pending(im_session_tokens(s),
                                                          im_session_now(s)));
    set_time(L, "time", im_session_now(s));
    lua_createtable(L, 0, 32); /* [status, limits] */
    set_num(L, "max_order_qty", l->max_order_qty);
    set_num(L, "max_order_notional", l->max_order_notional);
    set_num(L, "max_position_notional", l->max_position_notional);
    set_bool(L, "allow_short", l->allow_short);
    lua_createtable(L, (int)l->nwhitelist, 0);
    for (size_t i = 0; i < l->nwhitelist; i++) {
        lua_pushstring(L, l->whitelist[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "symbol_whitelist");
    set_num(L, "max_daily_orders", l->max_daily_orders);
    set_num(L, "market_order_collar_bps", l->mkt_protect_bps);
    set_num(L, "max_price_drift_bps", l->max_drift_bps);
    set_num(L, "max_quote_age_seconds", l->max_quote_age_s);
    set_bool(L, "allow_delayed_quotes", l->allow_delayed_quotes);
    set_num(L, "token_ttl_seconds", cfg->token_ttl_s);
    set_num(L, "cash_buffer_pct", l->cash_buffer_pct);
    set_num(L, "limit_collar_bps", l->collar_bps);
    set_num(L, "passive_max_bps", l->passive_max_bps);
    set_num(L, "min_price", l->min_price);
    set_num(L, "max_spread_bps", l->max_spread_bps);
    set_num(L, "max_position_pct_nlv", l->max_position_pct_nlv);
    set_num(L, "max_gross_pct_nlv", l->max_gross_pct_nlv);
    set_num(L, "max_open_orders", l->max_open_orders);
    set_num(L, "max_open_orders_per_symbol", l->max_open_orders_per_symbol);
    set_num(L, "max_orders_per_minute", l->max_orders_per_min);
    set_num(L, "max_orders_per_hour", l->max_orders_per_hour);
    set_num(L, "duplicate_window_seconds", l->dup_window_s);
    set_num(L, "max_daily_notional", l->max_daily_notional);
    set_num(L, "max_daily_loss", l->max_daily_loss);
    set_num(L, "max_consecutive_rejects", l->max_consecutive_rejects);
    set_str(L, "confirm", cfg->confirm_elicit ? "elicit" : "token");
    set_num(L, "confirm_above_notional", cfg->confirm_above_notional);
    set_bool(L, "halt_cancels_working_orders", cfg->halt_cancels);
    lua_setfield(L, -2, "limits"); /* [status] */
    im_policies *pol = im_session_policies(s);
    size_t np = pol ? im_policies_count(pol) : 0;
    lua_createtable(L, (int)np, 0); /* [status, policies] */
    for (size_t i = 0; i < np; i++) {
        lua_createtable(L, 0, 2);
        set_str(L, "name", im_policies_name(pol, i));
        set_str(L, "description", im_policies_description(pol, i));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "policies"); /* [status] */
    if (pol)
        set_str(L, "policy_set_hash", im_policies_hash(pol));
    return 1;
}

static void tools_install(lua_State *L, void *ud) {
    static const luaL_Reg api[] = {
        {"status", host_status},       {"account", host_account},
        {"positions", host_positions}, {"quote", host_quote},
        {"open_orders", host_open_orders}, {"trades", host_trades},
        {"preview", host_preview},     {"place", host_place},
        {"cancel", host_cancel},       {"halt", host_halt},
        {"journal", host_journal},
        {NULL, NULL},
    };
    /* [base] */
    lua_createtable(L, 0, IM_ARRAY_SIZE(api));      /* [base, ibkr] */
    lua_pushlightuserdata(L, ud);                   /* [base, ibkr, session] */
    luaL_setfuncs(L, api, 1);                       /* [base, ibkr] */
    lua_setfield(L, -2, "ibkr");                    /* [base] */
}

/* ---- loading ------------------------------------------------------------ */

static int name_ok(const char *n) {
    size_t len = strlen(n);
    if (len == 0 || len > 128)
        return 0;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return 0;
    return 1;
}

/* Pushes field k of the table at absolute index idx, read raw (no
 * metamethods run); returns its type. */
static int raw_field(lua_State *L, int idx, const char *k) {
    lua_pushstring(L, k);
    return lua_rawget(L, idx);
}

static int load_def(im_tools *t, const char *file, char *err, size_t errlen) {
    lua_State *L = t->L;
    tool_def *d = &t->defs[t->ndefs];
    cJSON *annotations = NULL, *entry;
    const char *title, *desc;
    char jerr[256];
    int top = lua_gettop(L);   /* [.., def] */

#define LOAD_FAIL(...)                          \
    do {                                        \
        snprintf(err, errlen, __VA_ARGS__);     \
        goto fail;                              \
    } while (0)

    memset(d, 0, sizeof *d);
    if (lua_type(L, -1) != LUA_TTABLE)
        LOAD_FAIL("%s must return a table (the tool definition)", file);
    if (raw_field(L, top, "name") != LUA_TSTRING || !name_ok(lua_tostring(L, -1)))
        LOAD_FAIL("%s: name must be 1-128 characters of A-Z a-z 0-9 _ - .", file);
    snprintf(d->name, sizeof d->name, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    if (im_tools_has(t, d->name))
        LOAD_FAIL("%s: a tool named %s is already loaded", file, d->name);
    if (raw_field(L, top, "title") != LUA_TSTRING)
        LOAD_FAIL("%s: title must be a string", file);
    title = lua_tostring(L, -1);
    if (raw_field(L, top, "description") != LUA_TSTRING || lua_rawlen(L, -1) < 10)
        LOAD_FAIL("%s: description must say what the tool does (a string)", file);
    desc = lua_tostring(L, -1);   /* [def, title, desc] */

    if (raw_field(L, top, "input") != LUA_TTABLE)
        LOAD_FAIL("%s: input must be a JSON Schema table", file);
    if (im_sjson_from_lua(L, -1, NULL, 32, &d->input, jerr, sizeof jerr) != 0 ||
        im_schema_compile(d->input, &d->in_s, jerr, sizeof jerr) != 0)
        LOAD_FAIL("%s: input schema: %s", file, jerr);
    lua_pop(L, 1);
    if (raw_field(L, top, "output") != LUA_TTABLE)
        LOAD_FAIL("%s: output must be a JSON Schema table", file);
    if (im_sjson_from_lua(L, -1, NULL, 32, &d->output, jerr, sizeof jerr) != 0 ||
        im_schema_compile(d->output, &d->out_s, jerr, sizeof jerr) != 0)
        LOAD_FAIL("%s: output schema: %s", file, jerr);
    d->out_direct = im_schema_simple(d->out_s);
    lua_pop(L, 1);
    if (!cJSON_IsObject(d->input) || !cJSON_IsObject(d->output))
        LOAD_FAIL("%s: input and output must be objects", file);
    {
        const cJSON *ti = cJSON_GetObjectItemCaseSensitive(d->input, "type");
        const cJSON *to = cJSON_GetObjectItemCaseSensitive(d->output, "type");
        if (!cJSON_IsString(ti) || strcmp(ti->valuestring, "object") != 0 || !cJSON_IsString(to) ||
            strcmp(to->valuestring, "object") != 0)
            LOAD_FAIL("%s: input and output schemas must have type \"object\"", file);
    }
    int at = raw_field(L, top, "annotations");
    if (at == LUA_TTABLE) {
        if (im_sjson_from_lua(L, -1, NULL, 4, &annotations, jerr, sizeof jerr) != 0)
            LOAD_FAIL("%s: annotations: %s", file, jerr);
    } else if (at != LUA_TNIL) {
        LOAD_FAIL("%s: annotations must be a table", file);
    }
    lua_pop(L, 1);
    if (raw_field(L, top, "run") != LUA_TFUNCTION)
        LOAD_FAIL("%s: run must be a function(args)", file);
    d->run_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    entry = cJSON_CreateObject();
    cJSON_AddStringToObject(entry, "name", d->name);
    cJSON_AddStringToObject(entry, "title", title);
    cJSON_AddStringToObject(entry, "description", desc);
    cJSON_AddItemToObject(entry, "inputSchema", cJSON_Duplicate(d->input, 1));
    cJSON_AddItemToObject(entry, "outputSchema", cJSON_Duplicate(d->output, 1));
    if (annotations != NULL)
        cJSON_AddItemToObject(entry, "annotations", annotations);
    cJSON_AddItemToArray(t->list, entry);
    t->ndefs++;
    lua_settop(L, top - 1);
    return 0;
fail:
    im_schema_free(d->in_s);
    im_schema_free(d->out_s);
    cJSON_Delete(d->input);
    cJSON_Delete(d->output);
    cJSON_Delete(annotations);
    d->input = d->output = NULL;
    d->in_s = d->out_s = NULL;
    lua_settop(L, top - 1);
    return IM_EINVAL;
#undef LOAD_FAIL
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_file(im_tools *t, const char *dir, const char *fname, char *err, size_t errlen) {
    char path[2048], chunk[300], serr[1024];
    FILE *f;
    char *src;
    long len;
    im_script_status st;

    snprintf(path, sizeof path, "%s/%s", dir, fname);
    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s", path);
        return IM_ENOENT;
    }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len < 0 || len > TOOL_FILE_MAX) {
        fclose(f);
        snprintf(err, errlen, "%s is larger than %d bytes", path, TOOL_FILE_MAX);
        return IM_ETOOBIG;
    }
    src = malloc((size_t)len + 1);
    if (src == NULL || fread(src, 1, (size_t)len, f) != (size_t)len) {
        free(src);
        fclose(f);
        snprintf(err, errlen, "cannot read %s", path);
        return IM_EIO;
    }
    fclose(f);
    snprintf(chunk, sizeof chunk, "@tools/%s", fname);
    st = im_script_load(t->script, chunk, src, (size_t)len, serr, sizeof serr);
    free(src);
    if (st != IM_SCRIPT_OK) {
        snprintf(err, errlen, "%s: %s (%s)", path, serr, im_script_status_name(st));
        return IM_ESCRIPT;
    }
    return load_def(t, path, err, errlen);
}

int im_tools_new(im_session *s, const char *dir, char *err, size_t errlen, im_tools **out) {
    im_script_opts so;
    im_tools *t;
    DIR *dp;
    struct dirent *de;
    char *names[TOOLS_MAX * 2];
    size_t n = 0;
    int rc = 0;

    t = calloc(1, sizeof *t);
    if (t == NULL)
        return IM_ENOMEM;
    t->session = s;
    t->list = cJSON_CreateArray();
    memset(&so, 0, sizeof so);
    so.name = "tools";
    so.install = tools_install;
    so.install_ud = s;
    if (t->list == NULL || im_script_new(&so, &t->script) != 0) {
        snprintf(err, errlen, "cannot create the Lua state for tools");
        im_tools_free(t);
        return IM_ENOMEM;
    }
    t->L = im_script_state(t->script);
    memset(lua_getextraspace(t->L), 0, LUA_EXTRASPACE);

    dp = opendir(dir);
    if (dp == NULL) {
        snprintf(err, errlen, "cannot open the tools folder %s (set IBKR_TOOLS_DIR)", dir);
        im_tools_free(t);
        return IM_ENOENT;
    }
    while ((de = readdir(dp)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".lua") == 0 && de->d_name[0] != '.' &&
            n < IM_ARRAY_SIZE(names))
            names[n++] = strdup(de->d_name);
    }
    closedir(dp);
    qsort(names, n, sizeof names[0], cmp_names);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && names[i] != NULL) {
            if (t->ndefs >= TOOLS_MAX) {
                snprintf(err, errlen, "too many tools in %s (at most %d)", dir, TOOLS_MAX);
                rc = IM_ETOOBIG;
            } else {
                rc = load_file(t, dir, names[i], err, errlen);
            }
        }
        free(names[i]);
    }
    if (rc == 0 && t->ndefs == 0) {
        snprintf(err, errlen, "no tools (*.lua) found in %s", dir);
        rc = IM_ENOENT;
    }
    if (rc != 0) {
        im_tools_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void im_tools_free(im_tools *t) {
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ndefs; i++) {
        im_schema_free(t->defs[i].in_s);
        im_schema_free(t->defs[i].out_s);
        cJSON_Delete(t->defs[i].input);
        cJSON_Delete(t->defs[i].output);
    }
    cJSON_Delete(t->list);
    im_script_free(t->script);
    im_jw_free(&t->out);
    free(t);
}

const cJSON *im_tools_list(const im_tools *t) { return t->list; }
size_t im_tools_count(const im_tools *t) { return t->ndefs; }
size_t im_tools_pending(const im_tools *t) { return t->pending; }

static const tool_def *find_def(const im_tools *t, const char *name) {
    for (size_t i = 0; i < t->ndefs; i++)
        if (strcmp(t->defs[i].name, name) == 0)
            return &t->defs[i];
    return NULL;
}

int im_tools_has(const im_tools *t, const char *name) { return find_def(t, name) != NULL; }

typedef struct args_data {
    const cJSON *args;
    int run_ref;
} args_data;

/* [run, args] built on the main state. */
static int build_call(lua_State *L) {
    args_data *a = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->run_ref);
    if (im_sjson_push(L, a->args, IM_SJSON_MAX_DEPTH) != 0)
        return luaL_error(L, "arguments nest too deeply");
    return 2;
}

int im_tools_call(im_tools *t, const char *name, const cJSON *args, im_tool_done_cb cb,
                  void *ud, im_tool_call **handle) {
    return im_tools_call_ex(t, name, args, NULL, cb, ud, handle);
}

int im_tools_call_ex(im_tools *t, const char *name, const cJSON *args,
                     const im_tools_call_opts *opts, im_tool_done_cb cb, void *ud,
                     im_tool_call **handle) {
    const tool_def *d = find_def(t, name);
    cJSON *empty = NULL;
    char err[512];
    im_tool_call *c;
    args_data ad;

    if (handle)
        *handle = NULL;
    if (d == NULL)
        return IM_ENOENT;
    if (args == NULL)
        args = empty = cJSON_CreateObject();
    if (im_schema_run(d->in_s, args, err, sizeof err) != 0) {
        char text[700];
        snprintf(text, sizeof text, "Invalid arguments for %s: %s.", d->name, err);
        cJSON_Delete(empty);
        cb(ud, result_text(text, 1));
        return 0;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        cJSON_Delete(empty);
        cb(ud, result_text("Out of memory.", 1));
        return 0;
    }
    c->t = t;
    c->def = d;
    c->cb = cb;
    c->ud = ud;
    if (opts != NULL && opts->confirmer != NULL) {
        c->confirmer = *opts->confirmer;
        c->have_confirmer = 1;
    }
    if (opts != NULL && opts->request_state != NULL) {
        snprintf(c->request_state, sizeof c->request_state, "%s", opts->request_state);
        c->answer = opts->answer;
    }
    /* Build [co] on the main state, then the function and arguments. */
    ad.args = args;
    ad.run_ref = d->run_ref;
    lua_State *M = t->L;
    if (!lua_checkstack(M, 4)) {
        cJSON_Delete(empty);
        free(c);
        cb(ud, result_text("Out of memory.", 1));
        return 0;
    }
    lua_pushcfunction(M, build_call);
    lua_pushlightuserdata(M, &ad);
    if (im_script_call(t->script, M, 1, 2, err, sizeof err) != IM_SCRIPT_OK) {
        char text[700];
        snprintf(text, sizeof text, "Could not start %s: %s", d->name, err);
        cJSON_Delete(empty);
        free(c);
        cb(ud, result_text(text, 1));
        return 0;
    }
    cJSON_Delete(empty);
    if (t->nidle > 0) {                             /* a finished one, reused */
        t->nidle--;
        c->co = t->idle[t->nidle];
        c->co_ref = t->idle_ref[t->nidle];
    } else {
        c->co = lua_newthread(M);                   /* [run, args, co] */
        c->co_ref = luaL_ref(M, LUA_REGISTRYINDEX); /* [run, args] */
    }
    *(im_tool_call **)lua_getextraspace(c->co) = c;
    lua_xmove(M, c->co, 2);                         /* [] ; co: [run, args] */
    t->pending++;
    c->handle = handle;
    if (handle)
        *handle = c;
    call_resume(c, 1);
    return 0;
}

void im_tools_abandon(im_tool_call *c) {
    if (c == NULL)
        return;
    c->abandoned = 1;
    if (c->handle) {
        *c->handle = NULL;
        c->handle = NULL;
    }
    /* A place_order waiting for a human: nobody is left to hear the
     * answer, so the question is withdrawn (not placed). This may finish,
     * and free, c: it is the last thing done with it. */
    im_session_caller_gone(c->t->session, c);
}
