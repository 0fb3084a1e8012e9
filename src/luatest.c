/* luatest.c: the LuaUnit host (luatest.h). Test-only: its state is not
 * sandboxed, and nothing here is reachable from `serve`. */
#include "luatest.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "app.h"
#include "error.h"
#include "log.h"
#include "mcp.h"
#include "script_json.h"

typedef struct lt {
    uv_loop_t loop;
    im_app app;
    int have_app;
    im_mcp *mcp;
    char *reply;              /* last response line, heap */
    lua_State *T;             /* the trusted state */
    int overrides_ref;        /* table of IBKR_* overrides */
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

static void lt_teardown(lt *t) {
    if (!t->have_app)
        return;
    im_mcp_free(t->mcp);
    t->mcp = NULL;
    im_app_close(&t->app);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    t->have_app = 0;
}

static int lt_reset(lua_State *L) {
    lt *t = g_lt;
    char err[512];
    im_mcp_opts mo;
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
    if (im_app_init(&t->app, &t->loop, lt_getenv, frozen, err, sizeof err) != 0) {
        uv_run(&t->loop, UV_RUN_DEFAULT);
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    memset(&mo, 0, sizeof mo);
    mo.tools = t->app.tools;
    mo.session = t->app.session;
    mo.send = lt_send;
    mo.send_ud = t;
    if (im_mcp_new(&mo, &t->mcp) != 0)
        return luaL_error(L, "out of memory");
    t->have_app = 1;
    lua_pushboolean(L, 1);
    return 1;
}

static void lt_need_app(lua_State *L) {
    if (!g_lt->have_app)
        luaL_error(L, "call host.reset{...} first");
}

/* Runs the loop until a reply arrives (bounded). */
static void lt_wait_reply(lt *t) {
    for (int i = 0; t->reply == NULL && i < 1000000; i++)
        if (uv_run(&t->loop, UV_RUN_ONCE) == 0 && t->reply == NULL && i > 1000)
            break;
}

static int lt_rpc(lua_State *L) {
    lt *t = g_lt;
    size_t len;
    const char *line = luaL_checklstring(L, 1, &len);
    lt_need_app(L);
    free(t->reply);
    t->reply = NULL;
    im_mcp_handle_line(t->mcp, line, len);
    lt_wait_reply(t);
    if (t->reply == NULL)
        lua_pushnil(L);
    else
        lua_pushstring(L, t->reply);
    return 1;
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

int im_luatest_run(const char *file) {
    static const luaL_Reg host[] = {
        {"reset", lt_reset}, {"call", lt_call},         {"rpc", lt_rpc},
        {"tools", lt_tools}, {"advance", lt_advance},   {"set_price", lt_set_price},
        {"fill", lt_fill},   {"now", lt_now},           {NULL, NULL},
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
