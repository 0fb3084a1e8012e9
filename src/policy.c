/* policy.c: the operator's Lua risk policies declared in policy.h.
 *
 * Provides loading of the *.lua files in policies/ into one sandboxed state per file
 * (reference/lua-sandbox.md section 2: per-policy memory caps, hooks that
 * cannot interfere, recovery by close and reload), validation of each
 * file's definition table in its load phase (section 6), a fresh order
 * table and a read-only ctx for every call, the verdict contract of
 * DESIGN.md "Shapes" read with raw access only (section 9), classification
 * of every failure from C-side state, reload after a budget or memory trip,
 * the policy-set hash for audit records, and `ibkr-mcp policy check`.
 *
 * Every entry into a policy state goes through im_script_call (STYLE.md
 * rule 8): building the arguments and calling check happen inside one
 * protected C function, so a memory error while building ctx is caught
 * like any other and costs the policy's state, not the process.
 *
 * Uses script.h (the sandbox: budgets, allocator cap, read-only env),
 * script_json.h (params <-> cJSON), risk.h (results), broker.h (order and
 * market types and their text forms), config.h (limits), clock.h (New
 * York calendar), log.h (stderr), app.h (only im_app_find_dir, for the
 * default folder of `policy check`) and libsodium (BLAKE2b). */
#include "policy.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "app.h"
#include "clock.h"
#include "common.h"
#include "error.h"
#include "log.h"
#include "script.h"
#include "script_json.h"

/* Defaults for zero fields of im_policies_opts. A policy is a short pure
 * function: a million instructions is about 5-10 ms of Lua, far more than
 * the shipped policies need (a few hundred), and the 250 ms deadline is
 * generous on purpose because sanitizer builds on a loaded 2-core machine
 * run many times slower (lua-sandbox.md, "Deadlines under load"). */
#define POLICY_DEFAULT_MEM ((size_t)4 << 20)
#define POLICY_DEFAULT_BUDGET 1000000L
#define POLICY_DEFAULT_DEADLINE_MS 250.0

/* Nesting allowed in a policy's params table (converted through JSON). */
#define POLICY_PARAMS_DEPTH 16

/* Before a call, a state using more than this share of its cap gets a full
 * collection, so that garbage left by earlier calls does not count against
 * the next one (the "per-call headroom" of lua-sandbox.md section 3). */
#define POLICY_GC_FULL_DIVISOR 2

/* Hex of a 32-byte BLAKE2b digest, plus the NUL. */
#define POLICY_HASH_HEX (crypto_generichash_BYTES * 2 + 1)

/* Registry keys in each policy state (their addresses are the keys). */
static const char check_key = 'C';   /* the check function */
static const char params_key = 'P';  /* ctx.params: a read-only proxy */
static const char now_key = 'N';     /* ctx.now of the running call */
/* The last ctx.today.fills, kept for the next check (push_fills_kept): the
 * Lua array of sealed fill tables, and a userdata holding the executions
 * they were built from. */
static const char fills_key = 'F';
static const char fills_src_key = 'E';

typedef struct policy {
    char file[256];                        /* "market_hours.lua" */
    char chunk[300];                       /* "@policies/market_hours.lua" */
    char *src;                             /* the source as loaded, kept for reloads */
    size_t len;
    im_script *script;                     /* NULL after a failed rebuild */
    char name[IM_POLICY_NAME_MAX + 1];
    char description[IM_POLICY_DESC_MAX + 1];
    cJSON *params;                         /* always an object or array */
    char hash[POLICY_HASH_HEX];
} policy;

struct im_policies {
    im_policies_opts opts;                 /* with the defaults filled in */
    size_t n;
    char hash[POLICY_HASH_HEX];
    /* Last: only items[0..n) are ever read, each zeroed as it is added, so
     * the 110 KB of slots are not all written at start-up (a small VM
     * charges 7-17 us for the first touch of each page). */
    policy items[IM_POLICIES_MAX];
};

/* ---------------------------------------------------------------------
 * Text helpers
 * ------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most len bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t len) {
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;      /* overlong */
        else if (c == 0xED)
            hi = 0x9F;      /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;      /* overlong */
        else if (c == 0xF4)
            hi = 0x8F;      /* beyond U+10FFFF */
    } else {
        return 0;
    }
    if (len < need + 1 || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i <= need; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return need + 1;
}

/* Copies a script's text into out as printable UTF-8 on one line: control
 * characters become spaces, invalid bytes become '?', and truncation never
 * splits a character. The text reaches the agent as JSON and the operator
 * in a log line, so a policy must not be able to break either. */
static void clean_text(char *out, size_t outlen, const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0, i = 0;

    if (outlen == 0)
        return;
    while (i < len) {
        size_t k = utf8_seq(u + i, len - i);
        if (k == 0) {
            if (o + 1 >= outlen)
                break;
            out[o++] = '?';
            i++;
        } else if (k == 1) {
            if (o + 1 >= outlen)
                break;
            out[o++] = (u[i] < 0x20 || u[i] == 0x7F) ? ' ' : (char)u[i];
            i++;
        } else {
            if (o + k >= outlen)
                break;
            memcpy(out + o, s + i, k);
            o += k;
            i += k;
        }
    }
    out[o] = '\0';
}

/* The first line of a script message (its traceback follows a newline). */
static size_t first_line(const char *msg) {
    const char *nl = strchr(msg, '\n');
    return nl != NULL ? (size_t)(nl - msg) : strlen(msg);
}

/* ^[A-Za-z][A-Za-z0-9_]{0,31}$ */
static int name_ok(const char *s, size_t len) {
    if (len == 0 || len > IM_POLICY_NAME_MAX)
        return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

/* ^POLICY_[A-Z0-9_]+$, short enough for a risk reason's code field. */
static int code_ok(const char *s, size_t len) {
    if (len <= 7 || len >= IM_RISK_CODE_MAX || strncmp(s, "POLICY_", 7) != 0)
        return 0;
    for (size_t i = 7; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

static void default_code(const policy *pol, char *out, size_t outlen) {
    size_t o = (size_t)snprintf(out, outlen, "POLICY_");
    for (const char *c = pol->name; *c && o + 1 < outlen; c++)
        out[o++] = (*c >= 'a' && *c <= 'z') ? (char)(*c - 'a' + 'A') : *c;
    out[o] = '\0';
}

static void hex_of(const unsigned char *h, size_t n, char *out, size_t outlen) {
    sodium_bin2hex(out, outlen, h, n);
}

/* ---------------------------------------------------------------------
 * Read-only proxies for ctx (lua-sandbox.md section 5)
 *
 * script.c keeps its proxies to itself, so ctx gets its own: an empty
 * table whose locked metatable has __index = the data, a raising
 * __newindex, and __len / __pairs that reach the data through the
 * metatable. The metamethods are light C functions (no allocation per
 * proxy beyond two tables), and each checks that its argument really is
 * one of these proxies before reading its metatable, so calling them on
 * another value can reveal nothing.
 * ------------------------------------------------------------------- */

static int ro_newindex(lua_State *L) {
    return luaL_error(L, "attempt to modify read-only table (ctx is read-only; copy what you "
                         "need into a local)");
}

/* Pushes the data table behind the proxy at idx and returns 1, or pushes
 * nothing and returns 0 when idx is not a proxy made here. Reads the
 * metatable from C, where __metatable does not apply. */
static int ro_target(lua_State *L, int idx) {
    int is;

    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx))
        return 0;                                   /* [mt] */
    lua_pushliteral(L, "__newindex");
    lua_rawget(L, -2);                              /* [mt, ni] */
    is = lua_tocfunction(L, -1) == ro_newindex;
    lua_pop(L, 1);                                  /* [mt] */
    if (!is) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushliteral(L, "__index");
    lua_rawget(L, -2);                              /* [mt, data] */
    lua_remove(L, -2);                              /* [data] */
    return 1;
}

static int ro_len(lua_State *L) {
    if (!ro_target(L, 1))
        return luaL_error(L, "not a read-only ctx table");
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

/* The iterator __pairs hands out: next over the data, never returning the
 * data table itself. */
static int ro_next(lua_State *L) {
    lua_settop(L, 2);                               /* [proxy, key] */
    if (!ro_target(L, 1))
        return luaL_error(L, "not a read-only ctx table");
    lua_pushvalue(L, 2);                            /* [proxy, key, data, key] */
    if (lua_next(L, 3))                             /* [proxy, key, data, k, v] */
        return 2;
    lua_pushnil(L);
    return 1;
}

static int ro_pairs(lua_State *L) {
    lua_pushcfunction(L, ro_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* Replaces the table at the top of the stack by its read-only proxy.
 * May raise a memory error (callers run protected). */
static void ro_seal(lua_State *L) {
    luaL_checkstack(L, 4, "ctx");
    lua_createtable(L, 0, 0);                       /* [data, proxy] */
    lua_createtable(L, 0, 5);                       /* [data, proxy, mt] */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, ro_len);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, ro_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);                        /* [data, proxy] */
    lua_remove(L, -2);                              /* [proxy] */
}

/* ro_seal, after sealing every nested table first (a tree: params come
 * from JSON, so there are no cycles; depth is bounded by the JSON depth). */
static void ro_seal_deep(lua_State *L) {
    int t = lua_gettop(L);

    luaL_checkstack(L, 6, "params nest too deeply");
    lua_pushnil(L);                                 /* [t, k] */
    while (lua_next(L, t)) {                        /* [t, k, v] */
        if (lua_type(L, -1) == LUA_TTABLE) {
            ro_seal_deep(L);                        /* [t, k, proxy] */
            lua_pushvalue(L, -2);                   /* [t, k, proxy, k] */
            lua_insert(L, -2);                      /* [t, k, k, proxy] */
            lua_rawset(L, t);                       /* [t, k]; allowed during next */
        } else {
            lua_pop(L, 1);                          /* [t, k] */
        }
    }
    ro_seal(L);                                     /* [proxy] */
    assert(lua_gettop(L) == t);
}

/* ---------------------------------------------------------------------
 * ctx calendar helpers: light C functions (no upvalues, no allocation per
 * call), reading the running call's ctx.now from the registry. They touch
 * only the tz database, never the broker.
 * ------------------------------------------------------------------- */

/* The time a helper works on: its number argument, else ctx.now. A ctx
 * passed as the first argument (ctx:ny_time()) counts as no argument. */
static double helper_time(lua_State *L, const char *fname) {
    double t;
    int ty = lua_type(L, 1);

    if (ty == LUA_TNUMBER)
        return lua_tonumber(L, 1);
    if (ty != LUA_TNONE && ty != LUA_TNIL && ty != LUA_TTABLE)
        luaL_error(L, "ctx.%s: the optional argument must be epoch seconds (a number)", fname);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &now_key);
    t = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return t;
}

/* ctx.ny_time([t]) -> hour, minute, weekday (0 = Sunday), second. */
static int ctx_ny_time(lua_State *L) {
    int sod, wday;
    double t = helper_time(L, "ny_time");

    if (im_clock_ny_seconds_of_day(t, &sod, &wday) != 0)
        return luaL_error(L, "ctx.ny_time: %f is not a usable time", t);
    lua_pushinteger(L, sod / 3600);
    lua_pushinteger(L, sod / 60 % 60);
    lua_pushinteger(L, wday);
    lua_pushinteger(L, sod % 60);
    return 4;
}

/* ctx.ny_date([t]) -> "YYYY-MM-DD" in New York. */
static int ctx_ny_date(lua_State *L) {
    char d[16];
    double t = helper_time(L, "ny_date");

    if (im_clock_ny_date(t, d, sizeof d) != 0)
        return luaL_error(L, "ctx.ny_date: %f is not a usable time", t);
    lua_pushstring(L, d);
    return 1;
}

/* ctx.market_open([t]) -> whether t falls in the regular session,
 * 09:30:00 <= t < 16:00:00 New York time, Monday to Friday. Holidays and
 * early closes are a policy's params, not C's. */
static int ctx_market_open(lua_State *L) {
    int sod, wday;
    double t = helper_time(L, "market_open");

    if (im_clock_ny_seconds_of_day(t, &sod, &wday) != 0)
        return luaL_error(L, "ctx.market_open: %f is not a usable time", t);
    lua_pushboolean(L, wday >= 1 && wday <= 5 && sod >= 9 * 3600 + 30 * 60 && sod < 16 * 3600);
    return 1;
}

/* ---------------------------------------------------------------------
 * Building order and ctx (inside the protected call; may raise)
 * ------------------------------------------------------------------- */

static void set_num(lua_State *L, const char *k, double v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

/* Share counts and counters: whole numbers become Lua integers, so that
 * tostring and %d print "50", not "50.0". */
static void set_qty(lua_State *L, const char *k, double v) {
    if (isfinite(v) && v == floor(v) && fabs(v) < 9007199254740992.0)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

/* Prices that do not apply are 0 in C (broker.h) and nil in Lua. */
static void set_price_opt(lua_State *L, const char *k, double v) {
    if (v != 0) {
        lua_pushnumber(L, v);
        lua_setfield(L, -2, k);
    }
}

static void set_str(lua_State *L, const char *k, const char *v) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

/* A fixed-size C field that may lack its NUL. */
static void set_field_str(lua_State *L, const char *k, const char *v, size_t cap) {
    lua_pushlstring(L, v, strnlen(v, cap));
    lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, int v) {
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

/* Fields shared by the order and by each open order. */
static void push_order_fields(lua_State *L, const im_order *o) {
    set_field_str(L, "symbol", o->symbol, sizeof o->symbol);
    set_str(L, "action", im_side_str(o->side));
    set_qty(L, "quantity", o->quantity);
    set_str(L, "order_type", im_order_type_str(o->type));
    set_price_opt(L, "limit_price", o->limit_price);
    set_price_opt(L, "stop_price", o->stop_price);
    set_str(L, "tif", im_tif_str(o->tif));
}

/* Pushes the order: a fresh plain table (a policy may scribble on it;
 * the next call gets a new one). */
static void push_order(lua_State *L, const im_policy_input *in) {
    int top = lua_gettop(L);

    lua_createtable(L, 0, 10);                      /* [order] */
    push_order_fields(L, in->order);
    set_num(L, "reference_price", in->reference_price);
    set_num(L, "notional", in->notional);
    set_bool(L, "reduces_position", in->reduces_position != 0);
    assert(lua_gettop(L) == top + 1);
    IM_UNUSED(top);
}

static void push_quote(lua_State *L, const im_quote *q, double now) {
    lua_createtable(L, 0, 10);                      /* [quote] */
    set_field_str(L, "symbol", q->symbol, sizeof q->symbol);
    set_num(L, "bid", q->bid);
    set_num(L, "ask", q->ask);
    set_num(L, "last", q->last);
    /* mid only for a two-sided, uncrossed quote: a policy that uses it
     * must handle nil rather than trust a made-up price. */
    if (isfinite(q->bid) && isfinite(q->ask) && q->bid > 0 && q->ask >= q->bid)
        set_num(L, "mid", (q->bid + q->ask) / 2);
    set_qty(L, "bid_size", q->bid_size);
    set_qty(L, "ask_size", q->ask_size);
    set_num(L, "time", q->time);
    set_num(L, "age", now - q->time);
    set_bool(L, "delayed", q->delayed != 0);
    ro_seal(L);
}

static void push_account(lua_State *L, const im_account *a) {
    lua_createtable(L, 0, 10);                      /* [account] */
    set_field_str(L, "id", a->account_id, sizeof a->account_id);
    set_field_str(L, "type", a->account_type, sizeof a->account_type);
    set_num(L, "net_liquidation", a->net_liquidation);
    set_num(L, "cash", a->cash);
    set_num(L, "buying_power", a->buying_power);
    set_num(L, "gross_position_value", a->gross_position_value);
    set_num(L, "realized_pnl", a->realized_pnl);
    set_num(L, "unrealized_pnl", a->unrealized_pnl);
    set_num(L, "commissions", a->commissions);
    ro_seal(L);
}

static void push_open_orders(lua_State *L, const im_order_info *oo, size_t n) {
    luaL_checkstack(L, 4, "ctx");
    lua_createtable(L, n < INT32_MAX ? (int)n : 0, 0); /* [list] */
    for (size_t i = 0; i < n; i++) {
        const im_order_info *o = &oo[i];
        lua_createtable(L, 0, 14);                  /* [list, entry] */
        set_field_str(L, "id", o->order_id, sizeof o->order_id);
        push_order_fields(L, &o->order);
        set_str(L, "status", im_order_status_str(o->status));
        set_qty(L, "filled", o->filled);
        set_qty(L, "remaining", o->remaining);
        set_num(L, "avg_fill_price", o->avg_fill_price);
        set_num(L, "submitted_at", o->submitted_at);
        ro_seal(L);
        lua_rawseti(L, -2, (lua_Integer)i + 1);     /* [list] */
    }
    ro_seal(L);
}

/* One fill of ctx.today.fills, as get_trades shows it, sealed. */
static void push_fill(lua_State *L, const im_execution *e) {
    lua_createtable(L, 0, 8);                       /* [fill] */
    set_str(L, "order_id", e->order_id);
    set_str(L, "symbol", e->symbol);
    set_str(L, "action", im_side_str(e->side));
    set_qty(L, "quantity", e->shares);
    set_num(L, "price", e->price);
    set_num(L, "commission", e->commission);
    set_num(L, "realized_pnl", e->realized_pnl);
    set_num(L, "time", e->time);
    ro_seal(L);
}

/* ctx.today.fills: today's executions, oldest first. A busy day has up to
 * 1000 and a check runs on every preview and place, so the sealed tables
 * of the last check are kept in the state and reused for every execution
 * that is byte for byte the same (a changed one, say a commission that
 * came in, is built anew); the window only drops its oldest, so the new
 * list is looked up from where its first execution sits in the old one.
 * Each list is a fresh array, never changed once sealed, so a policy that
 * keeps one sees the same fills later. */
static void push_fills_kept(lua_State *L, const im_execution *e, size_t n) {
    const im_execution *old = NULL;
    im_execution *src;
    size_t nold = 0, off = 0;

    luaL_checkstack(L, 6, "ctx");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &fills_key);      /* [old] */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &fills_src_key);  /* [old, oldsrc] */
    if (lua_type(L, -2) == LUA_TTABLE && lua_type(L, -1) == LUA_TUSERDATA) {
        old = lua_touserdata(L, -1);
        nold = lua_rawlen(L, -1) / sizeof *old;
    }
    while (n > 0 && off < nold && memcmp(&old[off], &e[0], sizeof *e) != 0)
        off++;
    lua_createtable(L, (int)n, 0);                      /* [old, oldsrc, list] */
    src = lua_newuserdatauv(L, n * sizeof *e, 0);       /* [old, oldsrc, list, src] */
    if (n > 0)
        memcpy(src, e, n * sizeof *e);
    for (size_t i = 0; i < n; i++) {
        if (off + i < nold && memcmp(&old[off + i], &e[i], sizeof *e) == 0)
            lua_rawgeti(L, -4, (lua_Integer)(off + i) + 1);  /* [..., src, fill] */
        else
            push_fill(L, &e[i]);
        lua_rawseti(L, -3, (lua_Integer)i + 1);         /* [old, oldsrc, list, src] */
    }
    lua_rawsetp(L, LUA_REGISTRYINDEX, &fills_src_key);  /* [old, oldsrc, list] */
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &fills_key);      /* [old, oldsrc, list] */
    ro_seal(L);                                         /* [old, oldsrc, proxy] */
    lua_replace(L, -3);                                 /* [proxy, oldsrc] */
    lua_pop(L, 1);                                      /* [proxy] */
}

/* ctx.today.fills is built on first use: a day's fills (up to 1000) as
 * read-only tables cost more than the rest of ctx, and most policies never
 * look at them (make bench: preview + place took four times as long with
 * them built eagerly for every policy). The builder reads the fills
 * through a cell that is valid only during the check call it was made
 * for: fills_gen moves on after every call, so a policy that keeps
 * ctx.today in an upvalue cannot reach freed memory later. */
typedef struct fills_cell {
    const im_execution *e;
    size_t n;
    unsigned long gen;
} fills_cell;

static unsigned long fills_gen;

/* __index of ctx.today's data table: (t, k). */
static int today_index(lua_State *L) {
    fills_cell *c = lua_touserdata(L, lua_upvalueindex(1));
    if (lua_type(L, 2) != LUA_TSTRING || strcmp(lua_tostring(L, 2), "fills") != 0)
        return 0;
    if (c->gen != fills_gen)
        return luaL_error(L, "ctx.today.fills is only available during the check call");
    push_fills_kept(L, c->e, c->n);                 /* [t, k, fills] */
    lua_pushliteral(L, "fills");                    /* [t, k, fills, "fills"] */
    lua_pushvalue(L, -2);                           /* [t, k, fills, "fills", fills] */
    lua_rawset(L, 1);                               /* [t, k, fills]: built once */
    return 1;
}

/* The limits under the names get_status uses (lua/tools). */
static void push_limits(lua_State *L, const im_limits *l) {
    luaL_checkstack(L, 4, "ctx");
    lua_createtable(L, 0, 10);                      /* [limits] */
    set_qty(L, "max_order_qty", l->max_order_qty);
    set_num(L, "max_order_notional", l->max_order_notional);
    set_num(L, "max_position_notional", l->max_position_notional);
    set_bool(L, "allow_short", l->allow_short);
    lua_createtable(L, (int)l->nwhitelist, 0);      /* [limits, list] */
    for (size_t i = 0; i < l->nwhitelist && i < IM_WHITELIST_MAX; i++) {
        lua_pushlstring(L, l->whitelist[i], strnlen(l->whitelist[i], sizeof l->whitelist[i]));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    ro_seal(L);
    lua_setfield(L, -2, "symbol_whitelist");        /* [limits] */
    set_qty(L, "max_daily_orders", l->max_daily_orders);
    set_num(L, "market_order_collar_bps", l->mkt_protect_bps);
    set_num(L, "max_price_drift_bps", l->max_drift_bps);
    set_num(L, "max_quote_age_seconds", l->max_quote_age_s);
    set_bool(L, "allow_delayed_quotes", l->allow_delayed_quotes);
    ro_seal(L);
}

/* Pushes ctx: every table in it a read-only proxy, built fresh per call. */
static void push_ctx(lua_State *L, const im_policy_input *in) {
    int top = lua_gettop(L);

    luaL_checkstack(L, 6, "ctx");
    lua_pushnumber(L, in->now);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &now_key);    /* for the helpers */

    lua_createtable(L, 0, 16);                      /* [ctx] */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &params_key); /* [ctx, params] */
    lua_setfield(L, -2, "params");                  /* [ctx] */
    set_num(L, "now", in->now);
    set_str(L, "stage", in->stage == IM_RISK_PLACE ? "place" : "preview");
    if (in->quote != NULL) {
        push_quote(L, in->quote, in->now);          /* [ctx, quote] */
        lua_setfield(L, -2, "quote");
    }
    lua_createtable(L, 0, 2);                       /* [ctx, position] */
    set_qty(L, "quantity", in->position_qty);
    set_num(L, "avg_cost", in->position_avg_cost);
    ro_seal(L);
    lua_setfield(L, -2, "position");
    if (in->account != NULL) {
        push_account(L, in->account);
        lua_setfield(L, -2, "account");
    }
    push_open_orders(L, in->open_orders, in->open_orders != NULL ? in->nopen : 0);
    lua_setfield(L, -2, "open_orders");
    lua_createtable(L, 0, 4);                       /* [ctx, today] */
    set_qty(L, "orders", in->orders_today);
    set_num(L, "notional", in->notional_today);
    set_num(L, "realized_pnl", in->realized_pnl_today);
    {
        fills_cell *c = lua_newuserdatauv(L, sizeof *c, 0); /* [ctx, today, cell] */
        c->e = in->fills;
        c->n = in->fills != NULL ? in->nfills : 0;
        c->gen = fills_gen;
        lua_createtable(L, 0, 1);                   /* [ctx, today, cell, mt] */
        lua_insert(L, -2);                          /* [ctx, today, mt, cell] */
        lua_pushcclosure(L, today_index, 1);        /* [ctx, today, mt, index] */
        lua_setfield(L, -2, "__index");             /* [ctx, today, mt] */
        lua_setmetatable(L, -2);                    /* [ctx, today] */
    }
    ro_seal(L);
    lua_setfield(L, -2, "today");
    if (in->limits != NULL) {
        push_limits(L, in->limits);
        lua_setfield(L, -2, "limits");
    }
    lua_pushcfunction(L, ctx_ny_time);
    lua_setfield(L, -2, "ny_time");
    lua_pushcfunction(L, ctx_ny_date);
    lua_setfield(L, -2, "ny_date");
    lua_pushcfunction(L, ctx_market_open);
    lua_setfield(L, -2, "market_open");
    ro_seal(L);                                     /* [ctx proxy] */
    assert(lua_gettop(L) == top + 1);
    IM_UNUSED(top);
}

/* Runs in the policy state under im_script_call with one argument, a
 * light userdata pointing at the input (it never reaches Lua code).
 * Builds order and ctx, calls check(order, ctx) and returns its first two
 * results. Already protected, so lua_call is allowed here (rule 8). */
static int policy_run(lua_State *L) {
    const im_policy_input *in = lua_touserdata(L, 1);

    lua_settop(L, 0);
    luaL_checkstack(L, 8, "policy call");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &check_key);  /* [check] */
    push_order(L, in);                              /* [check, order] */
    push_ctx(L, in);                                /* [check, order, ctx] */
    lua_call(L, 2, 2);                              /* [v1, v2] */
    return 2;
}

/* ---------------------------------------------------------------------
 * Load phase: validating a definition table (runs protected)
 * ------------------------------------------------------------------- */

struct define_ctx {
    policy *pol;
    int first;                 /* 1: take name, description, params from the table */
    cJSON *params;             /* first load: the converted params (owned by the caller) */
    char why[512];             /* a contract violation, reported as such */
};

static int define_fail(lua_State *L, struct define_ctx *d, const char *fmt, ...)
    IM_PRINTF(3, 4);
static int define_fail(lua_State *L, struct define_ctx *d, const char *fmt, ...) {
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(d->why, sizeof d->why, fmt, ap);
    va_end(ap);
    return luaL_error(L, "%s", d->why);
}

/* Pushes field k of the table at idx, read raw; returns its type. */
static int raw_field(lua_State *L, int idx, const char *k) {
    lua_pushstring(L, k);
    return lua_rawget(L, idx);
}

/* Runs in the policy state under im_script_call: [def, ctxptr]. Checks
 * the definition, stores check and the params proxy in the registry and
 * ends the load phase (nothing but those two survives from the table). */
static int policy_define(lua_State *L) {
    struct define_ctx *d = lua_touserdata(L, 2);
    policy *pol = d->pol;
    const char *s;
    size_t len;
    int t;

    lua_settop(L, 1);                               /* [def] */
    luaL_checkstack(L, 6, "policy definition");
    if (lua_type(L, 1) != LUA_TTABLE)
        return define_fail(L, d, "must return a table {name = ..., description = ..., "
                                 "params = {...}, check = function(order, ctx) ... end}, "
                                 "not a %s", luaL_typename(L, 1));
    if (raw_field(L, 1, "name") != LUA_TSTRING)     /* [def, name] */
        return define_fail(L, d, "name must be a string");
    s = lua_tolstring(L, -1, &len);
    if (!name_ok(s, len))
        return define_fail(L, d, "name must be 1-%d characters of A-Z a-z 0-9 _, starting "
                                 "with a letter", IM_POLICY_NAME_MAX);
    if (d->first)
        memcpy(pol->name, s, len + 1);
    lua_pop(L, 1);                                  /* [def] */

    if (raw_field(L, 1, "description") != LUA_TSTRING)
        return define_fail(L, d, "description must be a string saying what the policy does");
    s = lua_tolstring(L, -1, &len);
    if (len == 0 || len > IM_POLICY_DESC_MAX)
        return define_fail(L, d, "description must be 1-%d bytes", IM_POLICY_DESC_MAX);
    if (d->first)
        clean_text(pol->description, sizeof pol->description, s, len);
    lua_pop(L, 1);                                  /* [def] */

    if (raw_field(L, 1, "check") != LUA_TFUNCTION)  /* [def, check] */
        return define_fail(L, d, "check must be a function(order, ctx)");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &check_key);  /* [def] */

    t = raw_field(L, 1, "params");                  /* [def, params] */
    if (t != LUA_TNIL && t != LUA_TTABLE)
        return define_fail(L, d, "params must be a table, not a %s", luaL_typename(L, -1));
    if (d->first) {
        char jerr[256];
        if (t == LUA_TTABLE) {
            /* Never raises and runs no Lua code (script_json.h). */
            if (im_sjson_from_lua(L, -1, NULL, POLICY_PARAMS_DEPTH, &d->params, jerr,
                                  sizeof jerr) != 0)
                return define_fail(L, d, "params must be plain data (strings, numbers, "
                                         "booleans, tables): %s", jerr);
        } else {
            d->params = cJSON_CreateObject();
            if (d->params == NULL)
                return luaL_error(L, "not enough memory");
        }
    }
    lua_pop(L, 1);                                  /* [def] */

    /* ctx.params is a sealed copy made from the JSON, not the file's own
     * table: the policy may still hold that one in an upvalue and change
     * it, but what it reads from ctx.params (and what `policy check` and
     * get_status report) stays what was loaded. */
    if (im_sjson_push(L, d->first ? d->params : pol->params, POLICY_PARAMS_DEPTH) != 0)
        return define_fail(L, d, "params nest deeper than %d levels", POLICY_PARAMS_DEPTH);
    ro_seal_deep(L);                                /* [def, params proxy] */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &params_key); /* [def] */
    assert(lua_gettop(L) == 1);
    return 0;
}

/* ---------------------------------------------------------------------
 * Building and rebuilding a policy's state
 * ------------------------------------------------------------------- */

/* Creates pol's state from pol->src and runs its load phase. first: take
 * name, description and params from the file (the initial load); a
 * rebuild keeps those and only renews the state. On failure pol->script is
 * NULL and err holds a sentence naming the file. */
static int policy_build(const im_policies *ps, policy *pol, int first, char *err, size_t errlen) {
    im_script_opts so;
    im_script *s = NULL;
    im_script_status st;
    struct define_ctx d;
    char serr[1024];
    lua_State *L;
    int rc;

    memset(&so, 0, sizeof so);
    so.name = pol->file;
    so.mem_limit = ps->opts.mem_limit;
    so.instr_budget = ps->opts.instr_budget;
    so.deadline_ms = ps->opts.deadline_ms;
    so.install = NULL; /* policies get no host API: ctx is all they see */
    rc = im_script_new(&so, &s);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot create its sandbox (%s; memory limit %zu bytes)",
                 pol->file, im_strerror(rc), ps->opts.mem_limit);
        return rc;
    }
    L = im_script_state(s);
    st = im_script_load(s, pol->chunk, pol->src, pol->len, serr, sizeof serr);
    if (st != IM_SCRIPT_OK) {
        snprintf(err, errlen, "%s: %.*s (%s)", pol->file, (int)first_line(serr), serr,
                 im_script_status_name(st));
        im_script_free(s);
        return st == IM_SCRIPT_SYNTAX ? IM_ESYNTAX : st == IM_SCRIPT_BUDGET ? IM_EBUDGET
                                                                             : IM_ESCRIPT;
    }
    memset(&d, 0, sizeof d);
    d.pol = pol;
    d.first = first;
    /* [def] -> [define, def, &d] */
    lua_pushcfunction(L, policy_define);
    lua_insert(L, -2);
    lua_pushlightuserdata(L, &d);
    st = im_script_call(s, L, 2, 0, serr, sizeof serr);
    lua_settop(L, 0);
    if (st != IM_SCRIPT_OK) {
        if (d.why[0] != '\0' && st == IM_SCRIPT_RUNTIME)
            snprintf(err, errlen, "%s: %s", pol->file, d.why);
        else
            snprintf(err, errlen, "%s: %.*s (%s)", pol->file, (int)first_line(serr), serr,
                     im_script_status_name(st));
        cJSON_Delete(d.params);
        im_script_free(s);
        return IM_ESCRIPT;
    }
    if (first)
        pol->params = d.params;
    lua_gc(L, LUA_GCCOLLECT);
    pol->script = s;
    return 0;
}

/* Closes pol's state and builds a fresh one from the same source. Used
 * after a budget or memory trip, when upvalues may be half-updated. */
static void policy_rebuild(const im_policies *ps, policy *pol) {
    char err[512];

    im_script_free(pol->script);
    pol->script = NULL;
    if (policy_build(ps, pol, 0, err, sizeof err) != 0)
        im_warn("policy %s: its state could not be rebuilt (%s); it rejects every order "
                "until a rebuild succeeds", pol->name, err);
    else
        im_info("policy %s: state rebuilt from its source", pol->name);
}

/* ---------------------------------------------------------------------
 * Loading files and folders
 * ------------------------------------------------------------------- */

static int read_source(const char *path, char **out, size_t *len, char *err, size_t errlen) {
    struct stat st;
    FILE *f;
    char *src;

    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: cannot read it (%s)", path, strerror(errno));
        return IM_ENOENT;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        return IM_EINVAL;
    }
    if (st.st_size > IM_POLICY_FILE_MAX) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, IM_POLICY_FILE_MAX);
        return IM_ETOOBIG;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open it (%s)", path, strerror(errno));
        return IM_EIO;
    }
    src = malloc((size_t)st.st_size + 1);
    if (src == NULL) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return IM_ENOMEM;
    }
    *len = fread(src, 1, (size_t)st.st_size, f);
    if (ferror(f) || *len != (size_t)st.st_size) {
        free(src);
        fclose(f);
        snprintf(err, errlen, "%s: cannot read it", path);
        return IM_EIO;
    }
    fclose(f);
    src[*len] = '\0';
    *out = src;
    return 0;
}

static int opts_resolve(const im_policies_opts *o, im_policies_opts *out) {
    memset(out, 0, sizeof *out);
    if (o != NULL)
        *out = *o;
    if (out->instr_budget < 0 || !(out->deadline_ms >= 0 && out->deadline_ms < 1e9))
        return IM_EINVAL;
    if (out->mem_limit == 0)
        out->mem_limit = POLICY_DEFAULT_MEM;
    if (out->instr_budget == 0)
        out->instr_budget = POLICY_DEFAULT_BUDGET;
    if (out->deadline_ms == 0)
        out->deadline_ms = POLICY_DEFAULT_DEADLINE_MS;
    return 0;
}

static im_policies *policies_new(const im_policies_opts *o, char *err, size_t errlen) {
    im_policies *ps;
    im_policies_opts r;

    if (opts_resolve(o, &r) != 0) {
        snprintf(err, errlen, "invalid policy options (negative budget or bad deadline)");
        return NULL;
    }
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium could not be initialised");
        return NULL;
    }
    ps = malloc(sizeof *ps);
    if (ps == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memset(ps, 0, offsetof(im_policies, items));
    ps->opts = r;
    return ps;
}

/* Adds the file at path (shown as fname) as the next policy. */
static int policies_add(im_policies *ps, const char *path, const char *fname, char *err,
                        size_t errlen) {
    policy *pol;
    unsigned char h[crypto_generichash_BYTES];
    int rc;

    if (ps->n >= IM_POLICIES_MAX) {
        snprintf(err, errlen, "too many policies (at most %d)", IM_POLICIES_MAX);
        return IM_ETOOBIG;
    }
    pol = &ps->items[ps->n];
    memset(pol, 0, sizeof *pol);
    snprintf(pol->file, sizeof pol->file, "%s", fname);
    snprintf(pol->chunk, sizeof pol->chunk, "@policies/%s", fname);
    rc = read_source(path, &pol->src, &pol->len, err, errlen);
    if (rc != 0)
        return rc;
    crypto_generichash(h, sizeof h, (const unsigned char *)pol->src, pol->len, NULL, 0);
    hex_of(h, sizeof h, pol->hash, sizeof pol->hash);
    rc = policy_build(ps, pol, 1, err, errlen);
    if (rc != 0) {
        free(pol->src);
        pol->src = NULL;
        return rc;
    }
    for (size_t i = 0; i < ps->n; i++) {
        if (strcmp(ps->items[i].name, pol->name) == 0) {
            snprintf(err, errlen, "%s: a policy named %s is already loaded from %s", fname,
                     pol->name, ps->items[i].file);
            im_script_free(pol->script);
            cJSON_Delete(pol->params);
            free(pol->src);
            return IM_EEXIST;
        }
    }
    ps->n++;
    return 0;
}

/* The set hash: BLAKE2b over each policy's file name, a NUL, its length
 * (8 bytes, little-endian) and its source, in load order. The framing
 * makes the hash change when a file is renamed or its bytes move from one
 * file to the next, not only when the concatenation changes. */
static void policies_hash(im_policies *ps) {
    crypto_generichash_state st;
    unsigned char h[crypto_generichash_BYTES];

    crypto_generichash_init(&st, NULL, 0, sizeof h);
    for (size_t i = 0; i < ps->n; i++) {
        const policy *pol = &ps->items[i];
        unsigned char lenb[8];
        uint64_t len = pol->len;
        for (int b = 0; b < 8; b++)
            lenb[b] = (unsigned char)(len >> (8 * b));
        crypto_generichash_update(&st, (const unsigned char *)pol->file, strlen(pol->file) + 1);
        crypto_generichash_update(&st, lenb, sizeof lenb);
        crypto_generichash_update(&st, (const unsigned char *)pol->src, pol->len);
    }
    crypto_generichash_final(&st, h, sizeof h);
    hex_of(h, sizeof h, ps->hash, sizeof ps->hash);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int im_policies_load(const char *dir, const im_policies_opts *o, im_policies **out, char *err,
                     size_t errlen) {
    im_policies *ps;
    DIR *dp;
    struct dirent *de;
    char *names[IM_POLICIES_MAX + 1];
    size_t n = 0;
    int rc = 0;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out == NULL || dir == NULL || err == NULL || errlen == 0)
        return IM_EINVAL;
    *out = NULL;
    ps = policies_new(o, err, errlen);
    if (ps == NULL)
        return IM_EINVAL;
    dp = opendir(dir);
    if (dp == NULL) {
        if (errno == ENOENT) { /* no folder: no policies (DESIGN: optional) */
            policies_hash(ps);
            *out = ps;
            return 0;
        }
        snprintf(err, errlen, "cannot open the policy folder %s (%s)", dir, strerror(errno));
        free(ps);
        return IM_EIO;
    }
    while ((de = readdir(dp)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l <= 4 || de->d_name[0] == '.' || strcmp(de->d_name + l - 4, ".lua") != 0)
            continue;
        if (n > IM_POLICIES_MAX) {
            rc = IM_ETOOBIG;
            break;
        }
        names[n] = strdup(de->d_name);
        if (names[n] == NULL) {
            rc = IM_ENOMEM;
            break;
        }
        n++;
    }
    closedir(dp);
    if (rc == 0 && n > IM_POLICIES_MAX)
        rc = IM_ETOOBIG;
    if (rc == IM_ETOOBIG)
        snprintf(err, errlen, "too many policies in %s (at most %d)", dir, IM_POLICIES_MAX);
    else if (rc != 0)
        snprintf(err, errlen, "out of memory listing %s", dir);
    else
        qsort(names, n, sizeof names[0], cmp_names);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            rc = policies_add(ps, path, names[i], err, errlen);
        }
        free(names[i]);
    }
    if (rc != 0) {
        im_policies_free(ps);
        return rc;
    }
    policies_hash(ps);
    *out = ps;
    return 0;
}

int im_policies_load_file(const char *path, const im_policies_opts *o, im_policies **out,
                          char *err, size_t errlen) {
    im_policies *ps;
    const char *slash;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out == NULL || path == NULL || err == NULL || errlen == 0)
        return IM_EINVAL;
    *out = NULL;
    ps = policies_new(o, err, errlen);
    if (ps == NULL)
        return IM_EINVAL;
    slash = strrchr(path, '/');
    rc = policies_add(ps, path, slash != NULL ? slash + 1 : path, err, errlen);
    if (rc != 0) {
        im_policies_free(ps);
        return rc;
    }
    policies_hash(ps);
    *out = ps;
    return 0;
}

void im_policies_free(im_policies *p) {
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++) {
        im_script_free(p->items[i].script);
        cJSON_Delete(p->items[i].params);
        free(p->items[i].src);
    }
    free(p);
}

size_t im_policies_count(const im_policies *p) {
    return p != NULL ? p->n : 0;
}

const char *im_policies_name(const im_policies *p, size_t i) {
    return p != NULL && i < p->n ? p->items[i].name : NULL;
}

const char *im_policies_description(const im_policies *p, size_t i) {
    return p != NULL && i < p->n ? p->items[i].description : NULL;
}

const char *im_policies_file(const im_policies *p, size_t i) {
    return p != NULL && i < p->n ? p->items[i].file : NULL;
}

const cJSON *im_policies_params(const im_policies *p, size_t i) {
    return p != NULL && i < p->n ? p->items[i].params : NULL;
}

const char *im_policies_file_hash(const im_policies *p, size_t i) {
    return p != NULL && i < p->n ? p->items[i].hash : NULL;
}

const char *im_policies_hash(const im_policies *p) {
    return p != NULL ? p->hash : NULL;
}

/* ---------------------------------------------------------------------
 * Evaluation
 * ------------------------------------------------------------------- */

static void verdict_set(im_policy_verdict *v, im_policy_decision d, const char *code,
                        const char *kind) {
    v->decision = d;
    snprintf(v->code, sizeof v->code, "%s", code);
    snprintf(v->kind, sizeof v->kind, "%s", kind);
    v->reason[0] = '\0';
}

static void verdict_error(im_policy_verdict *v, const char *kind, const char *fmt, ...)
    IM_PRINTF(3, 4);
static void verdict_error(im_policy_verdict *v, const char *kind, const char *fmt, ...) {
    char msg[IM_RISK_TEXT_MAX * 2];
    va_list ap;

    verdict_set(v, IM_POLICY_ERROR, "POLICY_ERROR", kind);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    clean_text(v->reason, sizeof v->reason, msg, strlen(msg));
}

/* Sets the verdict's reason from a script string, or from dflt. */
static void verdict_reason(im_policy_verdict *v, const char *s, size_t len, const char *dflt) {
    if (s != NULL && len > 0)
        clean_text(v->reason, sizeof v->reason, s, len);
    else
        snprintf(v->reason, sizeof v->reason, "%s", dflt);
}

/* Reads the verdict a table states, with raw access only (no metamethod of
 * a returned table ever runs). Stack: [v1, v2], v1 the table at index 1.
 * This runs after the protected call has returned, where a Lua error
 * would be unprotected: so the three fields are found by walking the
 * table with lua_next (which never allocates) rather than by pushing key
 * strings (which may). */
static void read_verdict_table(lua_State *L, const policy *pol, im_policy_verdict *v) {
    static const char *const keys[3] = {"decision", "code", "reason"};
    int types[3] = {LUA_TNIL, LUA_TNIL, LUA_TNIL};
    const char *vals[3] = {NULL, NULL, NULL};
    size_t lens[3] = {0, 0, 0};
    const char *decision, *code = NULL, *reason = NULL;
    size_t dlen, clen = 0, rlen = 0;
    int t;

    if (!lua_checkstack(L, 3)) {
        verdict_error(v, "memory", "no stack space to read its verdict");
        return;
    }
    lua_pushnil(L);                                 /* [v1, v2, k] */
    while (lua_next(L, 1)) {                        /* [v1, v2, k, val] */
        if (lua_type(L, -2) == LUA_TSTRING) {
            size_t klen;
            const char *k = lua_tolstring(L, -2, &klen);
            for (int i = 0; i < 3; i++) {
                if (klen == strlen(keys[i]) && memcmp(k, keys[i], klen) == 0) {
                    types[i] = lua_type(L, -1);
                    /* The string stays alive: the table at index 1 holds it. */
                    if (types[i] == LUA_TSTRING)
                        vals[i] = lua_tolstring(L, -1, &lens[i]);
                }
            }
        }
        lua_pop(L, 1);                              /* [v1, v2, k] */
    }                                               /* [v1, v2] */

    t = types[0];
    if (t != LUA_TSTRING) {
        verdict_error(v, "verdict", "returned a table whose decision is %s; it must be "
                                    "\"allow\", \"deny\" or \"require_approval\"",
                      t == LUA_TNIL ? "missing" : lua_typename(L, t));
        return;
    }
    decision = vals[0];
    dlen = lens[0];
    if (types[1] == LUA_TSTRING) {
        code = vals[1];
        clen = lens[1];
    } else if (types[1] != LUA_TNIL) {
        verdict_error(v, "verdict", "returned a verdict whose code is a %s, not a string",
                      lua_typename(L, types[1]));
        return;
    }
    if (types[2] == LUA_TSTRING) {
        reason = vals[2];
        rlen = lens[2];
    } else if (types[2] != LUA_TNIL) {
        verdict_error(v, "verdict", "returned a verdict whose reason is a %s, not a string",
                      lua_typename(L, types[2]));
        return;
    }

    if (dlen == 5 && memcmp(decision, "allow", 5) == 0) {
        verdict_set(v, IM_POLICY_ALLOW, "", "ok");
    } else if (dlen == 4 && memcmp(decision, "deny", 4) == 0) {
        verdict_set(v, IM_POLICY_DENY, "", "ok");
        if (code != NULL && code_ok(code, clen))
            memcpy(v->code, code, clen + 1);
        else
            default_code(pol, v->code, sizeof v->code);
        verdict_reason(v, reason, rlen, "denied the order (no reason given)");
    } else if (dlen == 16 && memcmp(decision, "require_approval", 16) == 0) {
        verdict_set(v, IM_POLICY_APPROVAL, "POLICY_APPROVAL_REQUIRED", "ok");
        verdict_reason(v, reason, rlen, "asks for a human's approval of this order");
    } else {
        char shown[40];
        clean_text(shown, sizeof shown, decision, dlen);
        verdict_error(v, "verdict", "returned the unknown decision \"%s\"; it must be "
                                    "\"allow\", \"deny\" or \"require_approval\"", shown);
    }
}

/* Interprets check's two results, [v1, v2] at indexes 1 and 2. */
static void read_verdict(lua_State *L, const policy *pol, im_policy_verdict *v) {
    int t1 = lua_type(L, 1), t2 = lua_type(L, 2);
    const char *s;
    size_t len = 0;

    switch (t1) {
    case LUA_TNIL:
        /* nil, "message" is Lua's idiom for failure; passing it would be
         * failing open on an ambiguous answer. */
        if (t2 != LUA_TNIL)
            verdict_error(v, "verdict", "returned nil and a %s; return false, \"reason\" to "
                                        "deny or nothing to pass", lua_typename(L, t2));
        else
            verdict_set(v, IM_POLICY_ALLOW, "", "ok");
        return;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, 1)) {
            verdict_set(v, IM_POLICY_ALLOW, "", "ok");
            return;
        }
        if (t2 != LUA_TNIL && t2 != LUA_TSTRING) {
            verdict_error(v, "verdict", "returned false and a %s; the reason must be a string",
                          lua_typename(L, t2));
            return;
        }
        verdict_set(v, IM_POLICY_DENY, "", "ok");
        default_code(pol, v->code, sizeof v->code);
        s = t2 == LUA_TSTRING ? lua_tolstring(L, 2, &len) : NULL;
        verdict_reason(v, s, len, "denied the order (no reason given)");
        return;
    case LUA_TTABLE:
        read_verdict_table(L, pol, v);
        return;
    default:
        verdict_error(v, "verdict", "returned a %s; check must return true or nil to pass, "
                                    "false and a reason to deny, or a verdict table",
                      lua_typename(L, t1));
        return;
    }
}

static int stage_ok(int stage) {
    return stage == IM_RISK_PREVIEW || stage == IM_RISK_PLACE;
}

int im_policies_eval(im_policies *p, size_t i, const im_policy_input *in, im_policy_verdict *v) {
    policy *pol;
    im_script_status st;
    lua_State *L;
    char err[1024];

    if (v == NULL)
        return IM_EINVAL;
    if (p == NULL || i >= p->n || in == NULL || in->order == NULL || !stage_ok(in->stage)) {
        verdict_error(v, "input", "no usable order to check (policy engine input missing)");
        return IM_EINVAL;
    }
    pol = &p->items[i];
    if (pol->script == NULL) {
        policy_rebuild(p, pol);
        if (pol->script == NULL) {
            verdict_error(v, "state", "its state could not be rebuilt after an earlier "
                                      "failure; see the server log");
            return 0;
        }
    }
    L = im_script_state(pol->script);
    if (im_script_mem_used(pol->script) > p->opts.mem_limit / POLICY_GC_FULL_DIVISOR)
        lua_gc(L, LUA_GCCOLLECT);
    lua_settop(L, 0);
    if (!lua_checkstack(L, 3)) {
        verdict_error(v, "memory", "no stack space for the call");
        policy_rebuild(p, pol);
        return 0;
    }
    lua_pushcfunction(L, policy_run);               /* [run] */
    lua_pushlightuserdata(L, (void *)in);           /* [run, in] */
    st = im_script_call(pol->script, L, 1, 2, err, sizeof err);
    fills_gen++;                                    /* this call's ctx.today.fills is gone */
    if (st == IM_SCRIPT_OK) {
        read_verdict(L, pol, v);                    /* [v1, v2] */
        lua_settop(L, 0);
        lua_gc(L, LUA_GCSTEP, 0);
        return 0;
    }
    lua_settop(L, 0);
    verdict_error(v, im_script_status_name(st), "%.*s", (int)first_line(err), err);
    if (st == IM_SCRIPT_BUDGET || st == IM_SCRIPT_MEMORY)
        policy_rebuild(p, pol);
    else
        lua_gc(L, LUA_GCSTEP, 0);
    return 0;
}

/* Appends v to r under pol's name ("<name>: <reason>"). */
static void append_reason(im_risk_result *r, const char *name, const im_policy_verdict *v) {
    char text[IM_RISK_TEXT_MAX];
    size_t off;

    if (v->decision == IM_POLICY_ERROR) {
        char msg[IM_RISK_TEXT_MAX * 2];
        snprintf(msg, sizeof msg, "%s: policy failed (%s), so the order is rejected: %s", name,
                 v->kind, v->reason);
        clean_text(text, sizeof text, msg, strlen(msg));
    } else {
        off = (size_t)snprintf(text, sizeof text, "%s: ", name);
        if (off < sizeof text)
            clean_text(text + off, sizeof text - off, v->reason, strlen(v->reason));
    }
    im_risk_reject(r, v->code, "%s", text);
}

int im_policies_check(im_policies *p, const im_policy_input *in, im_risk_result *r,
                      int *approvals) {
    int napprovals = 0;

    if (approvals != NULL)
        *approvals = 0;
    if (r == NULL)
        return IM_EINVAL;
    if (p == NULL || in == NULL || in->order == NULL || !stage_ok(in->stage)) {
        im_risk_reject(r, "POLICY_ERROR", "policies: no usable order to check; the order is "
                                          "rejected.");
        return IM_EINVAL;
    }
    for (size_t i = 0; i < p->n; i++) {
        im_policy_verdict v;
        const char *name = p->items[i].name;

        im_policies_eval(p, i, in, &v);
        switch (v.decision) {
        case IM_POLICY_ALLOW:
            break;
        case IM_POLICY_APPROVAL:
            napprovals++;
            append_reason(r, name, &v);
            break;
        case IM_POLICY_DENY:
            im_debug("policy %s denied %s %s: %s", name, im_side_str(in->order->side),
                     in->order->symbol, v.reason);
            append_reason(r, name, &v);
            break;
        case IM_POLICY_ERROR:
        default:
            im_warn("policy %s failed (%s): %s", name, v.kind, v.reason);
            append_reason(r, name, &v);
            break;
        }
    }
    if (approvals != NULL)
        *approvals = napprovals;
    return 0;
}

/* ---------------------------------------------------------------------
 * `ibkr-mcp policy check [DIR]`
 * ------------------------------------------------------------------- */

int im_policy_check_cmd(const char *dir) {
    char found[1024], err[1024];
    im_policies *p = NULL;
    struct stat st;

    if (dir == NULL || dir[0] == '\0') {
        if (im_app_find_dir("policies", found, sizeof found) != 0) {
            fprintf(stderr, "ibkr-mcp policy check: no policies folder found beside the "
                            "binary; name one: ibkr-mcp policy check DIR\n");
            return 1;
        }
        dir = found;
    }
    if (im_policies_load(dir, NULL, &p, err, sizeof err) != 0) {
        fprintf(stderr, "ibkr-mcp policy check: %s\n", err);
        fprintf(stderr, "ibkr-mcp policy check: FAILED: the server would refuse to start with "
                        "these policies\n");
        return 1;
    }
    printf("policies: %s\n", dir); // stdout-ok
    if (stat(dir, &st) != 0)
        printf("  (the folder does not exist: no policies would be loaded)\n"); // stdout-ok
    printf("loaded: %zu   set hash: %s\n", p->n, p->hash); // stdout-ok
    for (size_t i = 0; i < im_policies_count(p); i++) {
        const cJSON *params = im_policies_params(p, i), *c;

        printf("\n%s  (%s)\n", im_policies_name(p, i), im_policies_file(p, i)); // stdout-ok
        printf("  %s\n", im_policies_description(p, i)); // stdout-ok
        printf("  sha: %.16s\n", im_policies_file_hash(p, i)); // stdout-ok
        if (cJSON_IsObject(params) && params->child == NULL) {
            printf("  params: (none)\n"); // stdout-ok
        } else if (cJSON_IsObject(params)) {
            printf("  params:\n"); // stdout-ok
            cJSON_ArrayForEach(c, params) {
                char *js = cJSON_PrintUnformatted(c);
                printf("    %s = %s\n", c->string, js != NULL ? js : "?"); // stdout-ok
                cJSON_free(js);
            }
        } else {
            char *js = cJSON_PrintUnformatted(params);
            printf("  params: %s\n", js != NULL ? js : "?"); // stdout-ok
            cJSON_free(js);
        }
    }
    printf("\nok\n"); // stdout-ok
    im_policies_free(p);
    return 0;
}
