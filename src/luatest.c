/* luatest.c: the LuaUnit host (luatest.h). Test-only: its state is not
 * sandboxed, and nothing here is reachable from `serve`. */
#include "luatest.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>
#include <uv.h>

#include "app.h"
#include "clock.h"
#include "error.h"
#include "log.h"
#include "mcp.h"
#include "policy.h"
#include "script_json.h"

typedef struct lt {
    uv_loop_t loop;
    im_app app;
    int have_app;
    im_mcp *mcp;
    char *reply;              /* last response line, heap */
    lua_State *T;             /* the trusted state */
    int overrides_ref;        /* table of IBKR_* overrides */
    char state_dir[64];       /* this reset's fresh IBKR_STATE_DIR, or empty */
} lt;

static lt *g_lt;   /* the one test host; getenv overlays need a global */

static const char *lt_getenv(const char *name) {
    lua_State *T = g_lt->T;
    const char *v = NULL;
    if (g_lt->overrides_ref != LUA_NOREF) {
        lua_rawgeti(T, LUA_REGISTRYINDEX, g_lt->overrides_ref);
        lua_getfield(T, -1, name);
        if (lua_type(T, -1) == LUA_TSTRING)
            v = lua_tostring(T, -1);   /* anchored in the overrides table */
        lua_pop(T, 2);
        if (v)
            return v;
    }
    /* Every reset gets a fresh state directory unless it names one, so
     * one test's journal (orders, a halt) never leaks into the next. */
    if (strcmp(name, "IBKR_STATE_DIR") == 0 && g_lt->state_dir[0])
        return g_lt->state_dir;
    /* Only where the Lua files live comes from the environment. */
    if (strcmp(name, "IBKR_TOOLS_DIR") == 0 || strcmp(name, "IBKR_LOG_LEVEL") == 0)
        return getenv(name);
    return NULL;
}

static void lt_send(void *ud, const char *json, size_t len) {
    lt *t = ud;
    free(t->reply);
    t->reply = malloc(len + 1);
    if (t->reply) {
        memcpy(t->reply, json, len);
        t->reply[len] = '\0';
    }
}

/* Removes the reset's own state directory (one level: journal files and
 * whatever a test put there), if it made one. */
static void lt_remove_state_dir(lt *t) {
    DIR *d;
    struct dirent *e;
    char p[512];
    if (!t->state_dir[0])
        return;
    if ((d = opendir(t->state_dir)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", t->state_dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(t->state_dir);
    t->state_dir[0] = '\0';
}

static void lt_teardown(lt *t) {
    if (!t->have_app) {
        lt_remove_state_dir(t);
        return;
    }
    im_mcp_free(t->mcp);
    t->mcp = NULL;
    im_app_close(&t->app);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    t->have_app = 0;
    lt_remove_state_dir(t);
}

/* A client: an MCP layer on the app's session and tools. */
static int lt_open_mcp(lt *t) {
    im_mcp_opts mo;
    memset(&mo, 0, sizeof mo);
    mo.tools = t->app.tools;
    mo.session = t->app.session;
    mo.send = lt_send;
    mo.send_ud = t;
    return im_mcp_new(&mo, &t->mcp);
}

static int lt_reset(lua_State *L) {
    lt *t = g_lt;
    char err[512];
    int frozen = 1;

    lt_teardown(t);
    luaL_unref(L, LUA_REGISTRYINDEX, t->overrides_ref);
    t->overrides_ref = LUA_NOREF;
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "IBKR_SIM_FREEZE");
        if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "false") == 0)
            frozen = 0;
        lua_pop(L, 1);
        lua_pushvalue(L, 1);
        t->overrides_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    snprintf(t->state_dir, sizeof t->state_dir, "/tmp/ibkr-mcp-luatest-XXXXXX");
    if (mkdtemp(t->state_dir) == NULL)
        return luaL_error(L, "cannot make a temporary state directory");
    if (im_app_init(&t->app, &t->loop, lt_getenv, frozen, err, sizeof err) != 0) {
        uv_run(&t->loop, UV_RUN_DEFAULT);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    if (lt_open_mcp(t) != 0)
        return luaL_error(L, "out of memory");
    t->have_app = 1;
    lua_pushboolean(L, 1);
    return 1;
}

static void lt_need_app(lua_State *L) {
    if (!g_lt->have_app || g_lt->mcp == NULL)
        luaL_error(L, "call host.reset{...} first");
}

/* Runs the loop until a reply arrives (bounded). */
static void lt_wait_reply(lt *t) {
    for (int i = 0; t->reply == NULL && i < 1000000; i++)
        if (uv_run(&t->loop, UV_RUN_ONCE) == 0 && t->reply == NULL && i > 1000)
            break;
}

/* Hands the line at stack index 1 to the MCP layer, forgetting the last
 * reply. */
static void lt_hand_line(lua_State *L, lt *t) {
    size_t len;
    const char *line = luaL_checklstring(L, 1, &len);
    lt_need_app(L);
    free(t->reply);
    t->reply = NULL;
    im_mcp_handle_line(t->mcp, line, len);
}

/* The last reply line, or nil. */
static int lt_push_reply(lua_State *L, const lt *t) {
    if (t->reply == NULL)
        lua_pushnil(L);
    else
        lua_pushstring(L, t->reply);
    return 1;
}

static int lt_rpc(lua_State *L) {
    lt *t = g_lt;
    lt_hand_line(L, t);
    lt_wait_reply(t);
    return lt_push_reply(L, t);
}

/* host.send(line): hands a line to the MCP layer and returns at once,
 * without running the loop, so a test can act while the call is under
 * way; host.run() then turns the loop. Replies still land in t->reply. */
static int lt_send_line(lua_State *L) {
    lt_hand_line(L, g_lt);
    return 0;
}

/* host.run(): turns the loop until nothing is left to do now (bounded);
 * returns the last reply line, if any. */
static int lt_run(lua_State *L) {
    lt *t = g_lt;
    lt_need_app(L);
    for (int i = 0; i < 1000 && uv_run(&t->loop, UV_RUN_NOWAIT) != 0; i++)
        ;
    return lt_push_reply(L, t);
}

/* host.reconnect(): the client goes away and another takes its place; the
 * session, the broker and the calls they still run on live on. */
static int lt_reconnect(lua_State *L) {
    lt *t = g_lt;
    lt_need_app(L);
    im_mcp_free(t->mcp);
    t->mcp = NULL;
    if (lt_open_mcp(t) != 0)
        return luaL_error(L, "out of memory");
    return 0;
}

static void lt_push_json(lua_State *L, const cJSON *v) {
    if (im_sjson_push(L, v, IM_SJSON_MAX_DEPTH) != 0)
        luaL_error(L, "response nests too deeply");
}

static int lt_call(lua_State *L) {
    lt *t = g_lt;
    const char *name = luaL_checkstring(L, 1);
    cJSON *params, *args = NULL, *resp;
    char *line, err[256];

    lt_need_app(L);
    if (!lua_isnoneornil(L, 2) &&
        im_sjson_from_lua(L, 2, NULL, IM_SJSON_MAX_DEPTH, &args, err, sizeof err) != 0)
        return luaL_error(L, "host.call: arguments are not JSON: %s", err);
    params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "name", name);
    if (args)
        cJSON_AddItemToObject(params, "arguments", args);
    resp = cJSON_CreateObject();
    cJSON_AddStringToObject(resp, "jsonrpc", "2.0");
    cJSON_AddNumberToObject(resp, "id", 1);
    cJSON_AddStringToObject(resp, "method", "tools/call");
    cJSON_AddItemToObject(resp, "params", params);
    line = cJSON_PrintUnformatted(resp);
    cJSON_Delete(resp);
    free(t->reply);
    t->reply = NULL;
    im_mcp_handle_line(t->mcp, line, strlen(line));
    cJSON_free(line);
    lt_wait_reply(t);
    if (t->reply == NULL)
        return luaL_error(L, "host.call(%s): no response", name);
    resp = cJSON_Parse(t->reply);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(resp, "result");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(resp, "error");
    lua_createtable(L, 0, 4);
    if (e != NULL) {
        lt_push_json(L, e);
        lua_setfield(L, -2, "error");
    } else {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(res, "content");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(content, 0), "text");
        lua_pushboolean(L, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "isError")));
        lua_setfield(L, -2, "isError");
        if (cJSON_IsString(text)) {
            lua_pushstring(L, text->valuestring);
            lua_setfield(L, -2, "text");
        }
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(res, "structuredContent");
        if (sc) {
            lt_push_json(L, sc);
            lua_setfield(L, -2, "structuredContent");
        }
    }
    cJSON_Delete(resp);
    return 1;
}

static int lt_tools(lua_State *L) {
    lt_need_app(L);
    lt_push_json(L, im_tools_list(g_lt->app.tools));
    return 1;
}

static int lt_advance(lua_State *L) {
    double secs = luaL_checknumber(L, 1);
    lt_need_app(L);
    im_clock_advance(&g_lt->app.clock, secs);
    im_sim_sync(g_lt->app.sim);
    uv_run(&g_lt->loop, UV_RUN_NOWAIT);
    return 0;
}

static int lt_set_price(lua_State *L) {
    const char *sym = luaL_checkstring(L, 1);
    double px = luaL_checknumber(L, 2);
    lt_need_app(L);
    int rc = im_sim_set_price(g_lt->app.sim, sym, px);
    uv_run(&g_lt->loop, UV_RUN_NOWAIT);
    lua_pushboolean(L, rc == 0);
    return 1;
}

static int lt_fill(lua_State *L) {
    const char *id = luaL_checkstring(L, 1);
    lt_need_app(L);
    int rc = im_sim_fill(g_lt->app.sim, id);
    uv_run(&g_lt->loop, UV_RUN_NOWAIT);
    lua_pushboolean(L, rc == 0);
    return 1;
}

static int lt_now(lua_State *L) {
    lt_need_app(L);
    lua_pushnumber(L, im_clock_now(&g_lt->app.clock));
    return 1;
}

static int lt_traceback(lua_State *L) {
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
    return 1;
}

/* ---- the `policy` module: the policy files through policy.c -------------
 *
 * Each call loads the policies afresh (real sandboxed states, the real
 * ctx), runs them once and frees them. Arguments are converted before
 * anything C-owned exists, and the results are copied out before they
 * are pushed, so a Lua error never leaks an im_policies (STYLE rule 9). */

/* Everything one policy call reads, in Lua-owned memory (a userdata). */
typedef struct lt_pin {
    im_order order;
    im_quote quote;
    im_account account;
    im_config cfg;
    im_policy_input in;
    im_policies_opts opts;
} lt_pin;

static double lt_num(lua_State *L, int t, const char *k, double dflt) {
    double v = dflt;
    lua_getfield(L, t, k);
    if (!lua_isnil(L, -1)) {
        if (!lua_isnumber(L, -1))
            luaL_error(L, "policy: field %s must be a number", k);
        v = lua_tonumber(L, -1);
    }
    lua_pop(L, 1);
    return v;
}

static int lt_bool(lua_State *L, int t, const char *k, int dflt) {
    int v = dflt;
    lua_getfield(L, t, k);
    if (!lua_isnil(L, -1))
        v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Copies string field k into out (size cap); dflt when absent. */
static void lt_str(lua_State *L, int t, const char *k, const char *dflt, char *out, size_t cap) {
    const char *v = dflt;
    lua_getfield(L, t, k);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "policy: field %s must be a string", k);
        v = lua_tostring(L, -1);
    }
    if (strlen(v) >= cap)
        luaL_error(L, "policy: field %s is longer than %d bytes", k, (int)cap - 1);
    snprintf(out, cap, "%s", v);
    lua_pop(L, 1);
}

/* Reads the order fields of the table at t into o. */
static void lt_order_fields(lua_State *L, int t, im_order *o) {
    char buf[16];
    lt_str(L, t, "symbol", "NVDA", o->symbol, sizeof o->symbol);
    lt_str(L, t, "action", "BUY", buf, sizeof buf);
    if (im_side_parse(buf, &o->side) != 0)
        luaL_error(L, "policy: action %s is not BUY or SELL", buf);
    o->quantity = lt_num(L, t, "quantity", 50);
    lt_str(L, t, "order_type", "MKT", buf, sizeof buf);
    if (im_order_type_parse(buf, &o->type) != 0)
        luaL_error(L, "policy: order_type %s is not MKT, LMT, STP or STP LMT", buf);
    o->limit_price = lt_num(L, t, "limit_price", 0);
    o->stop_price = lt_num(L, t, "stop_price", 0);
    lt_str(L, t, "tif", "DAY", buf, sizeof buf);
    if (im_tif_parse(buf, &o->tif) != 0)
        luaL_error(L, "policy: tif %s is not DAY, GTC or IOC", buf);
}

/* Builds an lt_pin from order (arg 2), ctx (arg 3) and opts (arg 4) and
 * leaves it (and the open-orders array) anchored on the stack. Missing
 * fields take the demo's values: Tuesday 2025-06-10 10:00 New York, a
 * $100,000 cash account, the default limits; no quote unless given. */
static lt_pin *lt_policy_input(lua_State *L) {
    lt_pin *p;
    im_order_info *open = NULL;
    size_t nopen = 0;
    int ctx;

    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_isnoneornil(L, 3)) {
        lua_settop(L, 2);
        lua_newtable(L);
    }
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 4);
    ctx = 3;
    p = lua_newuserdatauv(L, sizeof *p, 0);          /* [.., pin] */
    memset(p, 0, sizeof *p);
    lt_order_fields(L, 2, &p->order);
    im_config_defaults(&p->cfg);

    p->in.order = &p->order;
    p->in.now = lt_num(L, ctx, "now", IM_CLOCK_DEFAULT_SIM_START);
    {
        char stage[16];
        lt_str(L, ctx, "stage", "preview", stage, sizeof stage);
        if (strcmp(stage, "preview") == 0)
            p->in.stage = IM_RISK_PREVIEW;
        else if (strcmp(stage, "place") == 0)
            p->in.stage = IM_RISK_PLACE;
        else
            luaL_error(L, "policy: stage must be \"preview\" or \"place\"");
    }
    if (lua_getfield(L, ctx, "quote") == LUA_TTABLE) {
        int q = lua_gettop(L);
        lt_str(L, q, "symbol", p->order.symbol, p->quote.symbol, sizeof p->quote.symbol);
        p->quote.bid = lt_num(L, q, "bid", 0);
        p->quote.ask = lt_num(L, q, "ask", 0);
        p->quote.last = lt_num(L, q, "last", (p->quote.bid + p->quote.ask) / 2);
        p->quote.bid_size = lt_num(L, q, "bid_size", 100);
        p->quote.ask_size = lt_num(L, q, "ask_size", 100);
        p->quote.time = lt_num(L, q, "time", p->in.now);
        p->quote.delayed = lt_bool(L, q, "delayed", 0);
        p->in.quote = &p->quote;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, ctx, "position") == LUA_TTABLE) {
        p->in.position_qty = lt_num(L, -1, "quantity", 0);
        p->in.position_avg_cost = lt_num(L, -1, "avg_cost", 0);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, ctx, "account") != LUA_TBOOLEAN) { /* account = false: none */
        int a = lua_gettop(L);
        if (lua_type(L, a) != LUA_TTABLE) {
            lua_pop(L, 1);
            lua_newtable(L);
        }
        lt_str(L, a, "id", "DU0000001", p->account.account_id, sizeof p->account.account_id);
        lt_str(L, a, "type", "CASH", p->account.account_type, sizeof p->account.account_type);
        p->account.net_liquidation = lt_num(L, a, "net_liquidation", 100000);
        p->account.cash = lt_num(L, a, "cash", p->account.net_liquidation);
        p->account.buying_power = lt_num(L, a, "buying_power", p->account.cash);
        p->account.gross_position_value = lt_num(L, a, "gross_position_value", 0);
        p->account.realized_pnl = lt_num(L, a, "realized_pnl", 0);
        p->account.unrealized_pnl = lt_num(L, a, "unrealized_pnl", 0);
        p->account.commissions = lt_num(L, a, "commissions", 0);
        p->in.account = &p->account;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, ctx, "open_orders") == LUA_TTABLE) {
        int t = lua_gettop(L);
        nopen = (size_t)lua_rawlen(L, t);
        open = lua_newuserdatauv(L, nopen * sizeof *open + 1, 0); /* [.., list, arr] */
        memset(open, 0, nopen * sizeof *open);
        for (size_t i = 0; i < nopen; i++) {
            char status[24];
            int e;
            lua_rawgeti(L, t, (lua_Integer)i + 1);
            e = lua_gettop(L);
            luaL_checktype(L, e, LUA_TTABLE);
            lt_str(L, e, "id", "sim-1", open[i].order_id, sizeof open[i].order_id);
            lt_order_fields(L, e, &open[i].order);
            lt_str(L, e, "status", "SUBMITTED", status, sizeof status);
            open[i].status = IM_OS_SUBMITTED;
            for (int s = IM_OS_PENDING; s <= IM_OS_REJECTED; s++)
                if (strcmp(status, im_order_status_str((im_order_status)s)) == 0)
                    open[i].status = (im_order_status)s;
            open[i].filled = lt_num(L, e, "filled", 0);
            open[i].remaining = lt_num(L, e, "remaining", open[i].order.quantity);
            lua_pop(L, 1);
        }
        lua_remove(L, t);                            /* [.., pin, arr] anchors it */
        p->in.open_orders = open;
        p->in.nopen = nopen;
    } else {
        lua_pop(L, 1);
    }
    if (lua_getfield(L, ctx, "today") == LUA_TTABLE) {
        int td = lua_gettop(L);
        p->in.orders_today = (int)lt_num(L, td, "orders", 0);
        p->in.notional_today = lt_num(L, td, "notional", 0);
        p->in.realized_pnl_today = lt_num(L, td, "realized_pnl", 0);
        if (lua_getfield(L, td, "fills") == LUA_TTABLE) {
            int t = lua_gettop(L);
            size_t n = (size_t)lua_rawlen(L, t);
            im_execution *f = lua_newuserdatauv(L, n * sizeof *f + 1, 0); /* [.., fills, arr] */
            memset(f, 0, n * sizeof *f);
            for (size_t i = 0; i < n; i++) {
                char side[8];
                lua_rawgeti(L, t, (lua_Integer)i + 1);
                int e = lua_gettop(L);
                luaL_checktype(L, e, LUA_TTABLE);
                lt_str(L, e, "symbol", "AAPL", f[i].symbol, sizeof f[i].symbol);
                lt_str(L, e, "action", "BUY", side, sizeof side);
                f[i].side = strcmp(side, "SELL") == 0 ? IM_SIDE_SELL : IM_SIDE_BUY;
                f[i].shares = lt_num(L, e, "quantity", 0);
                f[i].price = lt_num(L, e, "price", 0);
                f[i].commission = lt_num(L, e, "commission", 0);
                f[i].realized_pnl = lt_num(L, e, "realized_pnl", 0);
                f[i].time = lt_num(L, e, "time", 0);
                lua_pop(L, 1);
            }
            lua_remove(L, t);        /* [.., today, arr] */
            lua_remove(L, td);       /* [.., arr]: left on the stack, it anchors the fills */
            lua_pushnil(L);          /* [.., arr, nil] for the pop below */
            p->in.fills = f;
            p->in.nfills = n;
        } else {
            lua_pop(L, 1);           /* [.., today] */
        }
    }
    lua_pop(L, 1);
    if (lua_getfield(L, ctx, "limits") == LUA_TTABLE) {
        int l = lua_gettop(L);
        im_limits *lim = &p->cfg.limits;
        lim->max_order_qty = lt_num(L, l, "max_order_qty", lim->max_order_qty);
        lim->max_order_notional = lt_num(L, l, "max_order_notional", lim->max_order_notional);
        lim->max_position_notional =
            lt_num(L, l, "max_position_notional", lim->max_position_notional);
        lim->allow_short = lt_bool(L, l, "allow_short", lim->allow_short);
        lim->max_daily_orders = (int)lt_num(L, l, "max_daily_orders", lim->max_daily_orders);
    }
    lua_pop(L, 1);
    p->in.limits = &p->cfg.limits;

    /* Derived order figures, as risk.c computes them, unless given. */
    {
        double ref = 0;
        if (p->in.quote != NULL)
            ref = p->order.side == IM_SIDE_BUY ? p->quote.ask : p->quote.bid;
        if (p->order.limit_price > 0 && p->order.type != IM_OT_MKT && p->order.type != IM_OT_STP)
            ref = p->order.limit_price;
        p->in.reference_price = lt_num(L, 2, "reference_price", ref);
        p->in.notional = lt_num(L, 2, "notional", p->order.quantity * p->in.reference_price);
        p->in.reduces_position = lt_bool(L, 2, "reduces_position", 0);
    }

    if (lua_type(L, 4) == LUA_TTABLE) {
        p->opts.instr_budget = (long)lt_num(L, 4, "instr_budget", 0);
        p->opts.mem_limit = (size_t)lt_num(L, 4, "mem_limit", 0);
        p->opts.deadline_ms = lt_num(L, 4, "deadline_ms", 0);
    }
    return p;
}

static const char *lt_decision_name(im_policy_decision d) {
    switch (d) {
    case IM_POLICY_ALLOW: return "allow";
    case IM_POLICY_DENY: return "deny";
    case IM_POLICY_APPROVAL: return "require_approval";
    default: return "error";
    }
}

/* policy.run_file(path, order, ctx [, opts]) -> {decision, code, reason, kind}
 * decision: "allow" | "deny" | "require_approval" | "error"; a file that
 * does not load gives nil, err. */
static int lt_policy_run_file(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lt_pin *pin = lt_policy_input(L);
    im_policies *p = NULL;
    im_policy_verdict v;
    char err[1024];

    if (im_policies_load_file(path, &pin->opts, &p, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    im_policies_eval(p, 0, &pin->in, &v);
    im_policies_free(p);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, lt_decision_name(v.decision));
    lua_setfield(L, -2, "decision");
    lua_pushstring(L, v.code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, v.reason);
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, v.kind);
    lua_setfield(L, -2, "kind");
    return 1;
}

/* policy.run_dir(dir, order, ctx [, opts]) -> {approved, approvals,
 * reasons = {{code, text}, ...}}: what im_policies_check appends to an
 * approved result. A folder that does not load gives nil, err. */
static int lt_policy_run_dir(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    lt_pin *pin = lt_policy_input(L);
    im_policies *p = NULL;
    im_risk_result *r;
    char err[1024];
    int approvals = 0;

    r = lua_newuserdatauv(L, sizeof *r, 0);
    memset(r, 0, sizeof *r);
    r->approved = 1;
    if (im_policies_load(dir, &pin->opts, &p, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    im_policies_check(p, &pin->in, r, &approvals);
    im_policies_free(p);
    lua_createtable(L, 0, 3);
    lua_pushboolean(L, r->approved);
    lua_setfield(L, -2, "approved");
    lua_pushinteger(L, approvals);
    lua_setfield(L, -2, "approvals");
    lua_createtable(L, (int)r->nreasons, 0);
    for (size_t i = 0; i < r->nreasons; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, r->reasons[i].code);
        lua_setfield(L, -2, "code");
        lua_pushstring(L, r->reasons[i].text);
        lua_setfield(L, -2, "text");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "reasons");
    return 1;
}

/* Pushes the cJSON tree (light userdata, argument 1) as Lua; may raise. */
static int lt_policy_push_json(lua_State *L) {
    if (im_sjson_push(L, lua_touserdata(L, 1), IM_SJSON_MAX_DEPTH) != 0)
        return luaL_error(L, "policy params nest too deeply");
    return 1;
}

/* Pushes what `policy check` shows of p as a new Lua list, and frees p.
 * The tree is pushed under a pcall so that it is freed either way. */
static int lt_policy_list(lua_State *L, im_policies *p) {
    cJSON *all = cJSON_CreateArray();
    int st;

    for (size_t i = 0; all != NULL && i < im_policies_count(p); i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", im_policies_name(p, i));
        cJSON_AddStringToObject(e, "description", im_policies_description(p, i));
        cJSON_AddStringToObject(e, "file", im_policies_file(p, i));
        cJSON_AddStringToObject(e, "sha", im_policies_file_hash(p, i));
        cJSON_AddItemToObject(e, "params", cJSON_Duplicate(im_policies_params(p, i), 1));
        cJSON_AddItemToArray(all, e);
    }
    im_policies_free(p);
    if (all == NULL)
        return luaL_error(L, "out of memory");
    lua_pushcfunction(L, lt_policy_push_json);
    lua_pushlightuserdata(L, all);
    st = lua_pcall(L, 1, 1, 0);
    cJSON_Delete(all);
    if (st != LUA_OK)
        return lua_error(L);
    return 1;
}

/* policy.check_dir(dir) -> {{name, description, file, sha, params}, ...}
 * in load order, or nil, err when a file is broken. */
static int lt_policy_check_dir(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    im_policies *p = NULL;
    char err[1024];

    if (im_policies_load(dir, NULL, &p, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return lt_policy_list(L, p);
}

/* policy.hash(dir) -> hex of the policy-set hash, or nil, err. */
static int lt_policy_hash(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    im_policies *p = NULL;
    char err[1024], hash[80];

    if (im_policies_load(dir, NULL, &p, err, sizeof err) != 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    snprintf(hash, sizeof hash, "%s", im_policies_hash(p));
    im_policies_free(p);
    lua_pushstring(L, hash);
    return 1;
}

/* policy.default_dir() -> the installed or source-tree policies/ folder. */
static int lt_policy_default_dir(lua_State *L) {
    char dir[1024];
    if (im_app_find_dir("policies", dir, sizeof dir) != 0)
        lua_pushnil(L);
    else
        lua_pushstring(L, dir);
    return 1;
}

/* policy.time("2025-06-10T09:30:00-04:00") -> epoch seconds. */
static int lt_policy_time(lua_State *L) {
    double t;
    if (im_clock_parse_time(luaL_checkstring(L, 1), &t) != 0)
        return luaL_error(L, "policy.time: cannot parse %s", lua_tostring(L, 1));
    lua_pushnumber(L, t);
    return 1;
}

int im_luatest_run(const char *file) {
    static const luaL_Reg host[] = {
        {"reset", lt_reset}, {"call", lt_call},         {"rpc", lt_rpc},
        {"tools", lt_tools}, {"advance", lt_advance},   {"set_price", lt_set_price},
        {"fill", lt_fill},   {"now", lt_now},           {"send", lt_send_line},
        {"run", lt_run},     {"reconnect", lt_reconnect}, {NULL, NULL},
    };
    static const luaL_Reg policy[] = {
        {"run_file", lt_policy_run_file},       {"run_dir", lt_policy_run_dir},
        {"check_dir", lt_policy_check_dir},     {"hash", lt_policy_hash},
        {"default_dir", lt_policy_default_dir}, {"time", lt_policy_time},
        {NULL, NULL},
    };
    lt *t = calloc(1, sizeof *t);
    int code = 1;

    if (t == NULL)
        return 1;
    g_lt = t;
    t->overrides_ref = LUA_NOREF;
    uv_loop_init(&t->loop);
    t->T = luaL_newstate();
    luaL_openlibs(t->T);
    luaL_newlib(t->T, host);
    lua_setglobal(t->T, "host");
    luaL_newlib(t->T, policy);
    lua_setglobal(t->T, "policy");
    lua_createtable(t->T, 1, 0);
    lua_pushstring(t->T, file);
    lua_rawseti(t->T, -2, 0);
    lua_setglobal(t->T, "arg");

    lua_pushcfunction(t->T, lt_traceback);
    if (luaL_loadfile(t->T, file) != LUA_OK) {
        fprintf(stderr, "ibkr-mcp --lua-test: %s\n", lua_tostring(t->T, -1));
    } else if (lua_pcall(t->T, 0, 1, 1) != LUA_OK) {
        fprintf(stderr, "ibkr-mcp --lua-test: %s\n", lua_tostring(t->T, -1));
    } else {
        code = lua_isinteger(t->T, -1) ? (int)lua_tointeger(t->T, -1) : 1;
        if (!lua_isinteger(t->T, -1))
            fprintf(stderr, "ibkr-mcp --lua-test: %s must return an exit code\n", file);
    }
    lt_teardown(t);
    lua_close(t->T);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    uv_loop_close(&t->loop);
    free(t->reply);
    free(t);
    g_lt = NULL;
    return code;
}
