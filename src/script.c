/* script.c: the Lua sandbox host declared in script.h.
 *
 * Provides sandboxed Lua states for tools and policies: a capped allocator,
 * an allowlisted environment built by copying (never by deleting), read-only
 * proxies over every table a script can reach, a count hook that enforces an
 * instruction budget and a wall-clock deadline and re-arms itself at one
 * instruction once tripped, a C xpcall whose handler cannot run unbudgeted,
 * guarded string and table functions for the loops the hook cannot see,
 * setmetatable without __gc, print routed to the stderr logger, text-only
 * loading, and one protected call and one coroutine resume that classify
 * every outcome from C-side state (status code and the tripped flag), never
 * from message text. The recipe and its reasons are in
 * reference/lua-sandbox.md; section numbers below refer to it.
 *
 * Uses Lua 5.4 (built against Debian's 5.4.4: lua_resetthread, no
 * lua_closethread), libuv for uv_hrtime(), log.h for print() and panics,
 * error.h for return codes. Knows nothing of tools, policies or orders. */
#include "script.h"

#include <assert.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common.h"
#include "error.h"
#include "log.h"
#include "mem.h"

/* Defaults for zero fields of im_script_opts (script.h). */
#define SCRIPT_DEFAULT_MEM ((size_t)64 << 20)
#define SCRIPT_DEFAULT_BUDGET 10000000L
#define SCRIPT_DEFAULT_DEADLINE_MS 250.0

/* Count-hook period. HAProxy measured no gain above about 9,000 instructions
 * per check and a notable loss below 500 (section 7); 1,000 keeps the
 * overshoot past the budget small while staying out of the slow region. */
#define SCRIPT_HOOK_EVERY 1000

/* Longest error message (before its traceback) the message handler keeps.
 * A script can raise a 10 MB string; copying it again into a traceback
 * would double the memory and could turn a runtime error into a memory
 * error. Callers truncate further to their own errlen. */
#define SCRIPT_MSG_MAX 2048

/* Host tables are proxied recursively; deeper nesting is a host bug. */
#define SCRIPT_PROXY_DEPTH_MAX 32

/* String guards (section 7.1). The count hook cannot interrupt a C function,
 * so these bound the work string.rep and the pattern functions may do. */
#define STR_REP_MAX 65536       /* bytes in a string.rep result, and its count */
#define STR_SUBJECT_MAX 65536   /* bytes of subject for find/match/gmatch/gsub */
#define STR_PATTERN_MAX 128     /* bytes of pattern */
#define STR_QUANT_MAX 4         /* '*' '+' '-' '?' outside escapes and sets */
/* The caps above still allow ("a"):rep(65536):find("a*b"), which takes
 * about 15 s: backtracking over k quantified items tries up to C(n+k, k)
 * splits of an n-byte subject, each costing up to the pattern length m.
 * Measured with lua5.4 on the 2-core build machine, (m+1) * C(n+k, k)
 * costs about 1-2 ns per unit ("a*b" n=4000: 58 ms; "a*a*b" n=400: 87 ms;
 * "a*a*a*a*b" n=60: 82 ms). 2^25 units keeps a worst case near 50 ms.
 * Here k counts quantifiers, %b and back-references, plus one for the
 * start positions of an unanchored search. */
#define STR_WORK_MAX 33554432.0

/* Table guards. table.move loops over its index range even when every
 * element is nil (no allocation, so the memory cap never stops it):
 * table.move({}, 1, 1e8, 1, {}) took 1.5 s, so the range is capped at 2^20
 * elements (about 15 ms). table.sort is n log n in C; sorting 2^18 strings
 * took 0.24 s and 2^20 took 1.6 s, so it is capped at 2^18 elements. */
#define TABLE_MOVE_MAX ((lua_Integer)1 << 20)
#define TABLE_SORT_MAX ((lua_Integer)1 << 18)

enum { TRIP_NONE = 0, TRIP_INSTRUCTIONS, TRIP_DEADLINE };

struct im_script {
    lua_State *L;
    char name[64];
    size_t mem_limit;
    size_t mem_used;
    long budget;           /* instructions per outermost call or resume */
    int hook_every;        /* count-hook period: min(budget, SCRIPT_HOOK_EVERY) */
    double deadline_ms;    /* for messages */
    uint64_t deadline_ns;  /* wall clock per outermost call or resume */
    long ticks;            /* instructions left in the current run */
    uint64_t deadline;     /* uv_hrtime() at which the current run trips */
    int tripped;           /* TRIP_*; set by the hook, cleared at outermost entry */
    int depth;             /* nesting of im_script_call / im_script_resume */
    lua_State *running;    /* thread of the innermost run (lua_resume's 'from') */
    int co_status;         /* status seen by the coroutine trampoline */
};

/* Registry key of the environment proxy (its address is the key). */
static const char env_key = 'E';

/* ---------------------------------------------------------------------
 * Allocator (section 3), hook (section 7), messages
 * ------------------------------------------------------------------- */

/* Lua's allocator. Only growth may fail; frees are explicit because
 * realloc(ptr, 0) leaks on some libcs (HAProxy's note). Lua tells the old
 * size, so small blocks go through the cache in mem.c. */
static void *script_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    im_script *s = ud;
    void *p;

    size_t used_o, used_n;

    if (ptr == NULL)
        osize = 0; /* osize is a type tag, not a size, for new objects */
    /* The limit counts what the blocks really take (a class's size). */
    used_o = ptr == NULL ? 0 : im_mem_usable(osize);
    if (nsize == 0) {
        im_mem_put(ptr, osize);
        s->mem_used -= used_o;
        return NULL;
    }
    used_n = im_mem_usable(nsize);
    if (used_n > used_o && used_n - used_o > s->mem_limit - s->mem_used)
        return NULL;
    p = im_mem_resize(ptr, osize, nsize);
    if (p != NULL)
        s->mem_used = s->mem_used - used_o + used_n;
    return p;
}

im_script *im_script_of(lua_State *L) {
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

/* The count hook. Counts the budget and checks the deadline every
 * hook_every instructions. Once tripped it re-arms itself with a count of
 * one, so that a pcall in the script catches at most one error: the next
 * instruction raises again (Redis's technique, section 7). */
static void script_hook(lua_State *L, lua_Debug *ar) {
    im_script *s = im_script_of(L);

    IM_UNUSED(ar);
    if (s->tripped == TRIP_NONE) {
        s->ticks -= s->hook_every;
        if (s->ticks <= 0)
            s->tripped = TRIP_INSTRUCTIONS;
        else if (uv_hrtime() >= s->deadline)
            s->tripped = TRIP_DEADLINE;
    }
    if (s->tripped == TRIP_NONE)
        return;
    lua_sethook(L, script_hook, LUA_MASKCOUNT, 1);
    luaL_where(L, 0); /* level 0 is the running Lua function */
    if (s->tripped == TRIP_INSTRUCTIONS) {
        lua_pushfstring(L, "instruction budget of %I exceeded", (lua_Integer)s->budget);
    } else {
        char ms[32];
        snprintf(ms, sizeof ms, "%g", s->deadline_ms); /* "30", not Lua's "30.0" */
        lua_pushfstring(L, "deadline of %s ms exceeded", ms);
    }
    lua_concat(L, 2);
    lua_error(L);
}

static void set_err(char *err, size_t errlen, const char *msg, size_t len) {
    if (err == NULL || errlen == 0)
        return;
    if (len >= errlen)
        len = errlen - 1;
    memcpy(err, msg, len);
    err[len] = '\0';
}

static void set_errf(char *err, size_t errlen, const char *fmt, ...) IM_PRINTF(3, 4);
static void set_errf(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Name of a table key for an error message; never converts the key. */
static const char *key_name(lua_State *L, int idx) {
    return lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : luaL_typename(L, idx);
}

/* Runs the original library function held in upvalue 1 in the guard's own
 * frame, so that its argument errors name the function the script called
 * and its other errors carry the script's file and line. Only for
 * originals that use no upvalues of their own (the string and table
 * functions; not math.randomseed). */
static int call_original(lua_State *L) {
    lua_CFunction orig = lua_tocfunction(L, lua_upvalueindex(1));
    assert(orig != NULL);
    return orig(L);
}

/* The message handler for every protected call (section 9): lua.c's,
 * without its __tostring call (a script's __tostring could loop while the
 * hook is disabled). It truncates long messages and appends a traceback. */
static int script_msgh(lua_State *L) {
    const char *msg;
    size_t len = 0;
    int t = lua_type(L, 1);

    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        msg = lua_tolstring(L, 1, &len);
        if (len > SCRIPT_MSG_MAX) {
            lua_pushlstring(L, msg, SCRIPT_MSG_MAX);
            lua_pushliteral(L, "...");
            lua_concat(L, 2);
            msg = lua_tostring(L, -1);
        }
    } else {
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* A Lua error escaped every protected call: log it; Lua then aborts. */
static int script_panic(lua_State *L) {
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    im_log(IM_LOG_ERROR, "%s: unprotected Lua error: %s", im_script_of(L)->name, msg);
    return 0;
}

/* ---------------------------------------------------------------------
 * Base functions: print, setmetatable, xpcall (sections 4.2, 8)
 * ------------------------------------------------------------------- */

/* print(...): one log line on stderr, prefixed with the script's name.
 * Never stdout (it carries JSON-RPC), and never __tostring: values other
 * than strings, numbers, booleans and nil appear as their type names. */
static int sb_print(lua_State *L) {
    im_script *s = im_script_of(L);
    char line[1024];
    size_t used = 0;
    int n = lua_gettop(L);

    line[0] = '\0';
    for (int i = 1; i <= n; i++) {
        const char *piece;
        size_t len;
        int pushed = 0;

        switch (lua_type(L, i)) {
        case LUA_TSTRING:
            piece = lua_tolstring(L, i, &len);
            break;
        case LUA_TNUMBER:
            lua_pushvalue(L, i); /* convert a copy, never the argument */
            piece = lua_tolstring(L, -1, &len);
            pushed = 1;
            break;
        case LUA_TBOOLEAN:
            piece = lua_toboolean(L, i) ? "true" : "false";
            len = strlen(piece);
            break;
        case LUA_TNIL:
            piece = "nil";
            len = 3;
            break;
        default:
            piece = luaL_typename(L, i);
            len = strlen(piece);
            break;
        }
        if (i > 1 && used + 1 < sizeof line)
            line[used++] = '\t';
        if (len > sizeof line - 1 - used)
            len = sizeof line - 1 - used;
        memcpy(line + used, piece, len);
        used += len;
        line[used] = '\0';
        if (pushed)
            lua_pop(L, 1);
    }
    im_log(IM_LOG_INFO, "%s: %s", s->name, line);
    return 0;
}

/* setmetatable(t, mt) that refuses metatables with __gc: finalizers run
 * with hooks disabled and at arbitrary times (section 8.1). A __gc added to
 * mt later is harmless: such objects are never marked for finalization. */
static int sb_setmetatable(lua_State *L) {
    int t = lua_type(L, 2);

    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc metamethods are not allowed");
        lua_pop(L, 1);
    }
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* The message handler xpcall installs: a C closure over the script's
 * handler. When the budget has tripped it returns the error untouched,
 * because the error then came from the hook, which left hooks disabled,
 * and the script's handler would run unbudgeted (section 8.2). */
static int sb_xpcall_handler(lua_State *L) {
    if (im_script_of(L)->tripped != TRIP_NONE)
        return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Continuation of sb_xpcall, also run directly when nothing yielded.
 * extra is the number of slots below the results (the function and the
 * handler). A tripped budget is re-raised rather than returned. */
static int sb_xpcall_k(lua_State *L, int status, lua_KContext extra) {
    if (status != LUA_OK && status != LUA_YIELD) {
        if (im_script_of(L)->tripped != TRIP_NONE)
            return lua_error(L);
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

/* xpcall(f, msgh, ...) with the C handler above; yieldable like the
 * original, so host functions that yield still work inside it. */
static int sb_xpcall(lua_State *L) {
    int n = lua_gettop(L);

    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, sb_xpcall_handler, 1); /* [f, h, args..., hc] */
    lua_replace(L, 2);                         /* [f, hc, args...] */
    lua_pushboolean(L, 1);                     /* [f, hc, args..., true] */
    lua_pushvalue(L, 1);                       /* [f, hc, args..., true, f] */
    lua_rotate(L, 3, 2);                       /* [f, hc, true, f, args...] */
    return sb_xpcall_k(L, lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, sb_xpcall_k), 2);
}

/* ---------------------------------------------------------------------
 * String guards (section 7.1)
 * ------------------------------------------------------------------- */

/* string.rep with the result and the repetition count capped: the
 * original checks only MAXSIZE, and it loops n times even for an empty
 * result (string.rep("", 1e9) took 3 s). */
static int sb_str_rep(lua_State *L) {
    size_t l, lsep = 0;
    lua_Integer n;

    luaL_checklstring(L, 1, &l);
    n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &lsep);
    if (n > 0) {
        int big = n > STR_REP_MAX || l > STR_REP_MAX || (n > 1 && lsep > STR_REP_MAX);
        if (!big) {
            uint64_t total = (uint64_t)n * l + (uint64_t)(n - 1) * lsep;
            big = total > STR_REP_MAX;
        }
        if (big)
            return luaL_error(L, "string.rep: result larger than the sandbox limit of %d bytes",
                              STR_REP_MAX);
    }
    return call_original(L);
}

enum { PAT_FIND, PAT_MATCH, PAT_GMATCH, PAT_GSUB };
static const char *const pat_names[] = {"find", "match", "gmatch", "gsub"};

/* Counts the quantifiers of a Lua pattern (outside %-escapes and sets)
 * and the other items that scan the subject (%b and back-references). */
static void pattern_scan(const char *p, size_t len, int *quant, int *scan) {
    size_t i = 0;

    *quant = *scan = 0;
    while (i < len) {
        char c = p[i++];
        switch (c) {
        case '%':
            if (i >= len)
                break;
            c = p[i++];
            if (c == 'b') {
                (*scan)++;
                i += 2; /* the two delimiters are literal */
            } else if (c >= '1' && c <= '9') {
                (*scan)++;
            } /* %f is followed by a set, which the next round skips */
            break;
        case '[':
            if (i < len && p[i] == '^')
                i++;
            if (i < len) /* the first member is literal, even ']' */
                i += p[i] == '%' ? 2 : 1;
            while (i < len && p[i] != ']')
                i += p[i] == '%' ? 2 : 1;
            i++;
            break;
        case '*':
        case '+':
        case '-':
        case '?':
            (*quant)++;
            break;
        default:
            break;
        }
    }
}

/* Whether (m + 1) * C(n + k, k) exceeds STR_WORK_MAX (see its comment). */
static int pattern_too_costly(size_t n, size_t m, int k) {
    double cost = (double)m + 1.0;

    for (int i = 1; i <= k; i++) {
        cost *= ((double)n + i) / i;
        if (cost > STR_WORK_MAX)
            return 1;
    }
    return 0;
}

/* find/match/gmatch/gsub behind the caps. Upvalues: the original function
 * and its PAT_* kind. find with plain=true skips the pattern rules (it does
 * no backtracking) but keeps the subject cap. */
static int sb_str_pattern(lua_State *L) {
    int kind = (int)lua_tointeger(L, lua_upvalueindex(2));
    const char *name = pat_names[kind];
    size_t sl, pl;
    const char *p;

    luaL_checklstring(L, 1, &sl);
    p = luaL_checklstring(L, 2, &pl);
    if (sl > STR_SUBJECT_MAX)
        return luaL_error(L, "string.%s: subject of %I bytes exceeds the sandbox limit of %d",
                          name, (lua_Integer)sl, STR_SUBJECT_MAX);
    if (!(kind == PAT_FIND && lua_toboolean(L, 4))) {
        int quant, scan, anchored = kind != PAT_GMATCH && pl > 0 && p[0] == '^';

        if (pl > STR_PATTERN_MAX)
            return luaL_error(L, "string.%s: pattern of %I bytes exceeds the sandbox limit of %d",
                              name, (lua_Integer)pl, STR_PATTERN_MAX);
        pattern_scan(p, pl, &quant, &scan);
        if (quant > STR_QUANT_MAX)
            return luaL_error(L, "string.%s: pattern has %d quantifiers; the sandbox allows %d",
                              name, quant, STR_QUANT_MAX);
        if (pattern_too_costly(sl, pl, quant + scan + !anchored))
            return luaL_error(L,
                              "string.%s: pattern too costly for a subject of %I bytes "
                              "(sandbox limit; anchor it, use fewer quantifiers or a "
                              "shorter subject)",
                              name, (lua_Integer)sl);
    }
    return call_original(L);
}

/* ---------------------------------------------------------------------
 * Table and math guards
 * ------------------------------------------------------------------- */

enum { TAB_INSERT, TAB_REMOVE, TAB_MOVE, TAB_SORT, TAB_CONCAT, TAB_UNPACK };
static const char *const tab_names[] = {"insert", "remove", "move", "sort", "concat", "unpack"};

/* Whether the table at idx has __index, __newindex or __len. The table
 * functions loop in C over #t, calling those metamethods: with __len
 * returning 2^62 and C functions such as rawlen and rawequal as __index
 * and __newindex, table.remove(t, 1) never returns (1e8 rounds took
 * 4.8 s) and neither allocates nor runs a Lua instruction. Without them
 * the loops are bounded by the table's real size, hence by memory. */
static int has_access_metamethods(lua_State *L, int idx) {
    static const char *const names[] = {"__index", "__newindex", "__len"};
    int found = 0;

    if (!lua_getmetatable(L, idx))
        return 0;
    for (size_t i = 0; i < IM_ARRAY_SIZE(names) && !found; i++) {
        lua_pushstring(L, names[i]);
        found = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return found;
}

/* insert/remove/move/sort/concat/unpack on plain tables only, with
 * table.move's range and table.sort's size capped. Upvalues: the original
 * function and its TAB_* kind. */
static int sb_table_guard(lua_State *L) {
    int kind = (int)lua_tointeger(L, lua_upvalueindex(2));
    const char *name = tab_names[kind];

    luaL_checktype(L, 1, LUA_TTABLE);
    if (has_access_metamethods(L, 1))
        return luaL_error(L, "table.%s: tables with __index, __newindex or __len are not "
                             "supported in the sandbox", name);
    if (kind == TAB_MOVE) {
        lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
        if (!lua_isnoneornil(L, 5)) {
            luaL_checktype(L, 5, LUA_TTABLE);
            if (has_access_metamethods(L, 5))
                return luaL_error(L, "table.move: tables with __index, __newindex or __len "
                                     "are not supported in the sandbox");
        }
        if (e >= f && (lua_Unsigned)e - (lua_Unsigned)f >= (lua_Unsigned)TABLE_MOVE_MAX)
            return luaL_error(L, "table.move: more than %I elements (sandbox limit)",
                              TABLE_MOVE_MAX);
    } else if (kind == TAB_SORT && (lua_Integer)lua_rawlen(L, 1) > TABLE_SORT_MAX) {
        return luaL_error(L, "table.sort: more than %I elements (sandbox limit)", TABLE_SORT_MAX);
    }
    return call_original(L);
}

/* math.randomseed() without arguments seeds from the time and addresses;
 * the sandbox requires a seed so that runs are reproducible (section 4.2,
 * Redis's deterministic math.random). The original keeps its generator
 * state in an upvalue, so it is called as a function, not in this frame. */
static int sb_randomseed(lua_State *L) {
    if (lua_gettop(L) == 0)
        return luaL_error(L, "math.randomseed: the sandbox requires an explicit seed");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* ---------------------------------------------------------------------
 * Read-only proxies and the environment (section 5)
 * ------------------------------------------------------------------- */

static int ro_newindex(lua_State *L) {
    return luaL_error(L, "attempt to modify read-only table");
}

/* __len of a proxy; upvalue: the target. */
static int ro_len(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, lua_upvalueindex(1)));
    return 1;
}

/* The iterator __pairs hands out; upvalue: the target. It walks the
 * target without ever returning the target itself. */
static int ro_next(lua_State *L) {
    lua_settop(L, 2); /* [proxy, key] */
    if (lua_next(L, lua_upvalueindex(1)))
        return 2;
    lua_pushnil(L);
    return 1;
}

/* __pairs of a proxy; upvalue: its ro_next closure. */
static int ro_pairs(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* __index of the base table, reached only for names the base lacks:
 * typos fail loudly instead of reading nil (Redis luaSetErrorMetatable). */
static int env_index(lua_State *L) {
    return luaL_error(L, "attempt to read undefined global '%s'", key_name(L, 2));
}

static int env_newindex(lua_State *L) {
    return luaL_error(L, "attempt to assign to global '%s' (the environment is read-only; "
                         "use a local)", key_name(L, 2));
}

/* Sets __pairs on the metatable at the top of the stack to iterate the
 * table at index target. */
static void set_pairs(lua_State *L, int target) {
    lua_pushvalue(L, target);
    lua_pushcclosure(L, ro_next, 1);
    lua_pushcclosure(L, ro_pairs, 1);
    lua_setfield(L, -2, "__pairs");
}

static void proxy_fields(lua_State *L, int memo, int t, int depth);

/* Pushes the read-only proxy of the table at index t, creating it on first
 * sight. memo maps every target and every proxy to its proxy, so shared
 * and cyclic references get one proxy and proxies are not wrapped twice. */
static void push_proxy(lua_State *L, int memo, int t, int depth) {
    int top = lua_gettop(L);

    t = lua_absindex(L, t);
    lua_pushvalue(L, t);
    if (lua_rawget(L, memo) != LUA_TNIL) /* [proxy] */
        return;
    lua_pop(L, 1);
    if (depth > SCRIPT_PROXY_DEPTH_MAX)
        luaL_error(L, "host tables nest deeper than %d levels", SCRIPT_PROXY_DEPTH_MAX);
    luaL_checkstack(L, 8, "proxy");
    lua_newtable(L);             /* [proxy] */
    lua_createtable(L, 0, 5);    /* [proxy, mt] */
    lua_pushvalue(L, t);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, ro_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, t);
    lua_pushcclosure(L, ro_len, 1);
    lua_setfield(L, -2, "__len");
    set_pairs(L, t);
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);     /* [proxy] */
    lua_pushvalue(L, t);
    lua_pushvalue(L, -2);
    lua_rawset(L, memo);         /* memo[target] = proxy */
    lua_pushvalue(L, -1);
    lua_pushvalue(L, -2);
    lua_rawset(L, memo);         /* memo[proxy] = proxy */
    proxy_fields(L, memo, t, depth + 1);
    assert(lua_gettop(L) == top + 1);
    IM_UNUSED(top);
}

/* Replaces every table value of the table at index t by its proxy
 * (assigning to existing fields during lua_next is allowed). */
static void proxy_fields(lua_State *L, int memo, int t, int depth) {
    int top = lua_gettop(L);

    lua_pushnil(L);                          /* [key] */
    while (lua_next(L, t)) {                 /* [key, value] */
        if (lua_type(L, -1) == LUA_TTABLE) {
            push_proxy(L, memo, -1, depth);  /* [key, value, proxy] */
            lua_pushvalue(L, -3);            /* [key, value, proxy, key] */
            lua_insert(L, -2);               /* [key, value, key, proxy] */
            lua_rawset(L, t);                /* [key, value] */
        }
        lua_pop(L, 1);                       /* [key] */
    }
    assert(lua_gettop(L) == top);
    IM_UNUSED(top);
}

/* ---------------------------------------------------------------------
 * Building a state
 * ------------------------------------------------------------------- */

/* Base functions copied into the environment unchanged (section 4.2). */
static const char *const base_keep[] = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber",
    "tostring", "type", "rawequal", "rawlen", "rawget", "getmetatable", "_VERSION",
};

/* string functions copied unchanged; rep find match gmatch gsub are
 * wrapped; dump is dropped. */
static const char *const string_keep[] = {
    "byte", "char", "format", "len", "lower", "upper", "reverse", "sub",
    "pack", "packsize", "unpack",
};

/* Names that must exist neither in the environment nor in the state's real
 * globals (LUA_RIDX_GLOBALS), which C code such as luaL_traceback reads. */
static const char *const forbidden[] = {
    "load", "loadstring", "dofile", "loadfile", "require", "package", "io", "os",
    "debug", "coroutine", "collectgarbage", "rawset", "warn", "_G",
};

/* Copies the fields named in keep (all fields when keep is NULL) from the
 * table at index from into the table at the top of the stack. */
static void copy_fields(lua_State *L, int from, const char *const *keep, size_t nkeep) {
    int to = lua_gettop(L);

    if (keep == NULL) {
        lua_pushnil(L);
        while (lua_next(L, from)) {  /* [key, value] */
            lua_pushvalue(L, -2);    /* [key, value, key] */
            lua_insert(L, -2);       /* [key, key, value] */
            lua_rawset(L, to);       /* [key] */
        }
    } else {
        for (size_t i = 0; i < nkeep; i++) {
            lua_getfield(L, from, keep[i]);
            lua_setfield(L, to, keep[i]);
        }
    }
    assert(lua_gettop(L) == to);
}

/* Sets field name of the tables at a and b to a guard closure over the
 * original a[name] with an integer kind as second upvalue. */
static void set_guard(lua_State *L, int a, int b, const char *name, lua_CFunction guard,
                      int kind) {
    lua_getfield(L, a, name);
    if (kind >= 0) {
        lua_pushinteger(L, kind);
        lua_pushcclosure(L, guard, 2);
    } else {
        lua_pushcclosure(L, guard, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, a, name);
    lua_setfield(L, b, name);
}

/* Opens the libraries and builds base, env and the string metatable; runs
 * under lua_pcall so that memory errors are caught. Argument: the opts. */
static int script_build(lua_State *L) {
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},         {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table},   {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},
    };
    const im_script_opts *o = lua_touserdata(L, 1);
    int g, base, real, safe, copy, top;

    lua_settop(L, 0);
    for (size_t i = 0; i < IM_ARRAY_SIZE(libs); i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1);
        lua_pop(L, 1);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);  /* [G] */
    g = 1;
    lua_newtable(L);                                       /* [G, base] */
    base = 2;
    copy_fields(L, g, base_keep, IM_ARRAY_SIZE(base_keep));
    lua_pushcfunction(L, sb_print);
    lua_pushvalue(L, -1);
    lua_setfield(L, g, "print");
    lua_setfield(L, base, "print");
    lua_pushcfunction(L, sb_setmetatable);
    lua_pushvalue(L, -1);
    lua_setfield(L, g, "setmetatable");
    lua_setfield(L, base, "setmetatable");
    lua_pushcfunction(L, sb_xpcall);
    lua_pushvalue(L, -1);
    lua_setfield(L, g, "xpcall");
    lua_setfield(L, base, "xpcall");

    /* string: a per-state copy; the real library gets the same guards and
     * loses dump, so that even a leak of it offers nothing more. */
    lua_getfield(L, g, LUA_STRLIBNAME);                    /* [G, base, real] */
    real = 3;
    lua_newtable(L);                                       /* [G, base, real, safe] */
    safe = 4;
    copy_fields(L, real, string_keep, IM_ARRAY_SIZE(string_keep));
    set_guard(L, real, safe, "rep", sb_str_rep, -1);
    set_guard(L, real, safe, "find", sb_str_pattern, PAT_FIND);
    set_guard(L, real, safe, "match", sb_str_pattern, PAT_MATCH);
    set_guard(L, real, safe, "gmatch", sb_str_pattern, PAT_GMATCH);
    set_guard(L, real, safe, "gsub", sb_str_pattern, PAT_GSUB);
    lua_pushnil(L);
    lua_setfield(L, real, "dump");
    /* ("x"):rep(n) bypasses _ENV.string, so the string metatable must
     * route methods to the safe table and be locked (section 5). */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);                               /* [.., safe, "", smt] */
    lua_pushvalue(L, safe);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);                                         /* [.., safe] */
    lua_setfield(L, base, LUA_STRLIBNAME);                 /* [G, base, real] */
    lua_pop(L, 1);                                         /* [G, base] */

    /* table: everything, with the looping functions guarded. */
    lua_getfield(L, g, LUA_TABLIBNAME);                    /* [G, base, real] */
    lua_newtable(L);                                       /* [G, base, real, copy] */
    copy = 4;
    copy_fields(L, real, NULL, 0);
    for (int k = TAB_INSERT; k <= TAB_UNPACK; k++)
        set_guard(L, real, copy, tab_names[k], sb_table_guard, k);
    lua_setfield(L, base, LUA_TABLIBNAME);
    lua_pop(L, 1);                                         /* [G, base] */

    /* math: everything; seeded from the host side, randomseed needs a seed. */
    lua_getfield(L, g, LUA_MATHLIBNAME);                   /* [G, base, real] */
    lua_getfield(L, real, "randomseed");
    lua_pushinteger(L, 0);
    lua_call(L, 1, 0);
    lua_newtable(L);                                       /* [G, base, real, copy] */
    copy_fields(L, real, NULL, 0);
    set_guard(L, real, copy, "randomseed", sb_randomseed, -1);
    lua_setfield(L, base, LUA_MATHLIBNAME);
    lua_pop(L, 1);                                         /* [G, base] */

    /* utf8: everything. */
    lua_getfield(L, g, LUA_UTF8LIBNAME);                   /* [G, base, real] */
    lua_newtable(L);
    copy_fields(L, real, NULL, 0);
    lua_setfield(L, base, LUA_UTF8LIBNAME);
    lua_pop(L, 1);                                         /* [G, base] */

    for (size_t i = 0; i < IM_ARRAY_SIZE(forbidden); i++) {
        lua_pushnil(L);
        lua_setfield(L, g, forbidden[i]);
    }

    /* The host's own globals. */
    if (o->install != NULL) {
        top = lua_gettop(L);
        o->install(L, o->install_ud);
        if (lua_gettop(L) != top || !lua_rawequal(L, -1, base))
            return luaL_error(L, "install left the stack unbalanced");
    }
    for (size_t i = 0; i < IM_ARRAY_SIZE(forbidden); i++) {
        lua_pushstring(L, forbidden[i]);
        if (lua_rawget(L, base) != LUA_TNIL)
            return luaL_error(L, "install added the forbidden global '%s'", forbidden[i]);
        lua_pop(L, 1);
    }

    /* Every table reachable from the base becomes a read-only proxy. */
    lua_newtable(L);                                       /* [G, base, memo] */
    proxy_fields(L, 3, base, 1);
    lua_pop(L, 1);                                         /* [G, base] */

    /* Unknown names raise. The base is reachable only as the __index of
     * the env's locked metatable, so scripts never see it. */
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, env_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, base);

    lua_newtable(L);                                       /* [G, base, env] */
    lua_createtable(L, 0, 4);                              /* [G, base, env, mt] */
    lua_pushvalue(L, base);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, env_newindex);
    lua_setfield(L, -2, "__newindex");
    set_pairs(L, base);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);                               /* [G, base, env] */
    lua_rawsetp(L, LUA_REGISTRYINDEX, &env_key);           /* [G, base] */
    lua_pop(L, 2);
    assert(lua_gettop(L) == 0);
    return 0;
}

int im_script_new(const im_script_opts *o, im_script **out) {
    im_script *s;
    int status, rc;

    if (o == NULL || out == NULL)
        return IM_EINVAL;
    *out = NULL;
    /* deadline_ms: finite, non-negative and below about 30 years. */
    if (o->instr_budget < 0 || !(o->deadline_ms >= 0 && o->deadline_ms < 1e12))
        return IM_EINVAL;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return IM_ENOMEM;
    snprintf(s->name, sizeof s->name, "%s", o->name != NULL ? o->name : "script");
    s->mem_limit = o->mem_limit != 0 ? o->mem_limit : SCRIPT_DEFAULT_MEM;
    s->budget = o->instr_budget != 0 ? o->instr_budget : SCRIPT_DEFAULT_BUDGET;
    s->hook_every = s->budget < SCRIPT_HOOK_EVERY ? (int)s->budget : SCRIPT_HOOK_EVERY;
    s->deadline_ms = o->deadline_ms > 0 ? o->deadline_ms : SCRIPT_DEFAULT_DEADLINE_MS;
    s->deadline_ns = (uint64_t)(s->deadline_ms * 1e6);
    s->co_status = LUA_OK;

    s->L = lua_newstate(script_alloc, s);
    if (s->L == NULL) {
        free(s);
        return IM_ENOMEM;
    }
    lua_atpanic(s->L, script_panic);
    lua_pushcfunction(s->L, script_build);
    lua_pushlightuserdata(s->L, (void *)o);
    status = lua_pcall(s->L, 1, 0, 0);
    if (status != LUA_OK) {
        const char *msg = lua_type(s->L, -1) == LUA_TSTRING ? lua_tostring(s->L, -1) : "?";
        rc = status == LUA_ERRMEM ? IM_ENOMEM : IM_EINVAL;
        im_log(IM_LOG_ERROR, "%s: cannot build the sandbox: %s", s->name, msg);
        lua_close(s->L);
        free(s);
        return rc;
    }
    lua_settop(s->L, 0);
    *out = s;
    return 0;
}

void im_script_free(im_script *s) {
    if (s == NULL)
        return;
    lua_close(s->L);
    free(s);
}

lua_State *im_script_state(im_script *s) {
    return s->L;
}

size_t im_script_mem_used(const im_script *s) {
    return s->mem_used;
}

const char *im_script_status_name(im_script_status st) {
    switch (st) {
    case IM_SCRIPT_OK: return "ok";
    case IM_SCRIPT_YIELD: return "yield";
    case IM_SCRIPT_RUNTIME: return "runtime";
    case IM_SCRIPT_BUDGET: return "budget";
    case IM_SCRIPT_MEMORY: return "memory";
    case IM_SCRIPT_SYNTAX: return "syntax";
    case IM_SCRIPT_HANDLER: return "handler";
    }
    return "unknown";
}

/* ---------------------------------------------------------------------
 * Running: budget frames, classification, call, load, resume
 * ------------------------------------------------------------------- */

/* One entry into Lua. The outermost entry resets the budget and the
 * deadline; nested entries (a host C function calling back into Lua)
 * share them. A thread that already carries the hook keeps it untouched:
 * resetting it would restart its count, and a script alternating 999
 * instructions with a nested call would then never be counted. */
struct run_frame {
    lua_State *L;
    lua_State *prev_running;
    lua_Hook old_hook;
    int old_mask;
    int old_count;
    int armed; /* this frame set the hook and must take it off */
};

static void run_enter(im_script *s, lua_State *L, struct run_frame *f) {
    f->L = L;
    f->prev_running = s->running;
    f->old_hook = lua_gethook(L);
    f->old_mask = lua_gethookmask(L);
    f->old_count = lua_gethookcount(L);
    f->armed = 1;
    if (s->depth == 0) {
        s->tripped = TRIP_NONE;
        s->ticks = s->budget;
        s->deadline = uv_hrtime() + s->deadline_ns;
        lua_sethook(L, script_hook, LUA_MASKCOUNT, s->hook_every);
    } else if (f->old_hook != script_hook) {
        lua_sethook(L, script_hook, LUA_MASKCOUNT,
                    s->tripped != TRIP_NONE ? 1 : s->hook_every);
    } else {
        f->armed = 0;
    }
    s->depth++;
    s->running = L;
}

static void run_leave(im_script *s, struct run_frame *f) {
    s->depth--;
    s->running = f->prev_running;
    if (!f->armed)
        return;
    if (f->old_hook == NULL || f->old_hook == script_hook)
        lua_sethook(f->L, NULL, 0, 0);
    else
        lua_sethook(f->L, f->old_hook, f->old_mask, f->old_count);
}

/* Section 9's table: the tripped flag first, then the status. */
static im_script_status classify(const im_script *s, int status) {
    if (s->tripped != TRIP_NONE)
        return IM_SCRIPT_BUDGET;
    switch (status) {
    case LUA_OK: return IM_SCRIPT_OK;
    case LUA_YIELD: return IM_SCRIPT_YIELD;
    case LUA_ERRMEM: return IM_SCRIPT_MEMORY;
    case LUA_ERRERR: return IM_SCRIPT_HANDLER;
    case LUA_ERRSYNTAX: return IM_SCRIPT_SYNTAX;
    default: return IM_SCRIPT_RUNTIME;
    }
}

/* Fills err for a failed run. A memory error has no traceback (the handler
 * is not called for it), so its sentence comes from C. Otherwise the error
 * object on top of L, which the handler turned into text. */
static void fail_message(const im_script *s, lua_State *L, im_script_status st, int status,
                         char *err, size_t errlen) {
    if (st == IM_SCRIPT_MEMORY) {
        set_errf(err, errlen, "%s: not enough memory (limit %zu bytes)", s->name, s->mem_limit);
    } else if (status != LUA_OK && status != LUA_YIELD && lua_type(L, -1) == LUA_TSTRING) {
        size_t len;
        const char *msg = lua_tolstring(L, -1, &len);
        set_err(err, errlen, msg, len);
    } else if (st == IM_SCRIPT_BUDGET && s->tripped == TRIP_INSTRUCTIONS) {
        set_errf(err, errlen, "%s: instruction budget of %ld exceeded", s->name, s->budget);
    } else if (st == IM_SCRIPT_BUDGET) {
        set_errf(err, errlen, "%s: deadline of %g ms exceeded", s->name, s->deadline_ms);
    } else {
        set_errf(err, errlen, "%s: (error object is a %s value)", s->name,
                 luaL_typename(L, -1));
    }
}

im_script_status im_script_call(im_script *s, lua_State *L, int nargs, int nresults, char *err,
                                size_t errlen) {
    struct run_frame fr;
    im_script_status st;
    int base = lua_gettop(L) - nargs; /* index of the function */
    int status;

    set_err(err, errlen, "", 0);
    assert(base >= 1);
    if (lua_status(L) != LUA_OK) { /* a parked or dead coroutine cannot take a call */
        lua_settop(L, base - 1);
        set_errf(err, errlen, "%s: cannot call into a suspended or dead coroutine", s->name);
        return IM_SCRIPT_RUNTIME;
    }
    if (!lua_checkstack(L, 1)) {
        lua_settop(L, base - 1);
        set_errf(err, errlen, "%s: not enough memory (limit %zu bytes)", s->name, s->mem_limit);
        return IM_SCRIPT_MEMORY;
    }
    lua_pushcfunction(L, script_msgh);
    lua_insert(L, base);                   /* [msgh, f, args...] */
    run_enter(s, L, &fr);
    status = lua_pcall(L, nargs, nresults, base);
    st = classify(s, status);
    if (st == IM_SCRIPT_OK) {
        lua_remove(L, base);               /* [results...] */
    } else {
        /* LUA_OK with the budget tripped (the script caught the error and
         * finished) still fails closed. */
        fail_message(s, L, st, status, err, errlen);
        lua_settop(L, base - 1);
    }
    run_leave(s, &fr);
    return st;
}

im_script_status im_script_load(im_script *s, const char *chunkname, const char *src,
                                size_t len, char *err, size_t errlen) {
    lua_State *L = s->L;
    int top = lua_gettop(L);
    int status;

    set_err(err, errlen, "", 0);
    if (!lua_checkstack(L, 2)) {
        set_errf(err, errlen, "%s: not enough memory (limit %zu bytes)", s->name, s->mem_limit);
        return IM_SCRIPT_MEMORY;
    }
    /* Mode "t": binary chunks are refused (section 6; Redis's bytecode
     * lesson). The parser runs protected and returns a status. */
    status = luaL_loadbufferx(L, src, len, chunkname != NULL ? chunkname : "=script", "t");
    if (status != LUA_OK) {
        im_script_status st = status == LUA_ERRMEM ? IM_SCRIPT_MEMORY : IM_SCRIPT_SYNTAX;
        if (st == IM_SCRIPT_MEMORY) {
            set_errf(err, errlen, "%s: not enough memory (limit %zu bytes)", s->name,
                     s->mem_limit);
        } else {
            size_t mlen = 0;
            const char *msg = lua_tolstring(L, -1, &mlen);
            set_err(err, errlen, msg != NULL ? msg : "syntax error", msg != NULL ? mlen : 12);
        }
        lua_settop(L, top);
        return st;
    }
    /* A main chunk's first (and only) upvalue is _ENV. */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &env_key); /* [chunk, env] */
    if (lua_setupvalue(L, -2, 1) == NULL)
        lua_pop(L, 1);                           /* [chunk] */
    return im_script_call(s, L, 0, 1, err, errlen);
}

/* Continuation of co_body, also run directly when nothing yielded. An
 * error is recorded and re-raised, which kills the coroutine; the pcall
 * has already closed its to-be-closed variables with hooks restored. */
static int co_body_k(lua_State *L, int status, lua_KContext ctx) {
    IM_UNUSED(ctx);
    if (status != LUA_OK && status != LUA_YIELD) {
        im_script_of(L)->co_status = status;
        return lua_error(L);
    }
    return lua_gettop(L) - 1; /* everything above the message handler */
}

/* Trampoline at the bottom of every coroutine: runs the body under a
 * yieldable pcall with the C message handler. Why: when the count hook
 * raises, Lua leaves the thread's allowhook at 0 (the hook never returns).
 * With no pcall inside the coroutine the error kills it as it is, and
 * lua_resetthread then runs its pending __close handlers with hooks off,
 * so `local x <close> = loop` in a tripped coroutine would hang the
 * server. A pcall inside the coroutine restores allowhook before it closes
 * anything. It also captures the traceback where the error happened. */
static int co_body(lua_State *L) {
    int nargs = lua_gettop(L) - 1; /* [fn, args...] */

    lua_pushcfunction(L, script_msgh);
    lua_insert(L, 1);              /* [msgh, fn, args...] */
    return co_body_k(L, lua_pcallk(L, nargs, LUA_MULTRET, 1, 0, co_body_k), 0);
}

im_script_status im_script_resume(im_script *s, lua_State *co, int nargs, int *nres, char *err,
                                  size_t errlen) {
    struct run_frame fr;
    im_script_status st;
    lua_Debug ar;
    int status, n = 0, dummy;

    if (nres == NULL)
        nres = &dummy;
    *nres = 0;
    set_err(err, errlen, "", 0);
    if (co == s->L || im_script_of(co) != s) {
        set_errf(err, errlen, "%s: not a coroutine of this script", s->name);
        return IM_SCRIPT_RUNTIME;
    }
    switch (lua_status(co)) {
    case LUA_OK: /* a fresh start: [fn, args...] */
        if (lua_getstack(co, 0, &ar)) {
            /* It is running (a host function resuming its own thread, or
             * one further down): leave it strictly alone. */
            set_errf(err, errlen, "%s: cannot resume non-suspended coroutine", s->name);
            return IM_SCRIPT_RUNTIME;
        }
        if (lua_gettop(co) < nargs + 1 || lua_type(co, -(nargs + 1)) != LUA_TFUNCTION) {
            lua_settop(co, 0);
            set_errf(err, errlen, "%s: cannot resume dead coroutine", s->name);
            return IM_SCRIPT_RUNTIME;
        }
        if (!lua_checkstack(co, 1)) {
            lua_settop(co, 0);
            set_errf(err, errlen, "%s: not enough memory (limit %zu bytes)", s->name,
                     s->mem_limit);
            return IM_SCRIPT_MEMORY;
        }
        lua_pushcfunction(co, co_body);
        lua_insert(co, -(nargs + 2));  /* [co_body, fn, args...] */
        nargs++;                       /* fn is co_body's first argument */
        break;
    case LUA_YIELD:
        break;
    default: /* died outside this function: reset it, budgeted (__close may run) */
        run_enter(s, co, &fr);
        lua_resetthread(co);
        lua_settop(co, 0);
        run_leave(s, &fr);
        set_errf(err, errlen, "%s: cannot resume dead coroutine", s->name);
        return IM_SCRIPT_RUNTIME;
    }

    run_enter(s, co, &fr); /* hooks are per thread: the hook goes on co itself */
    s->co_status = LUA_OK;
    status = lua_resume(co, fr.prev_running, nargs, &n);
    st = classify(s, status);
    if (st == IM_SCRIPT_OK || st == IM_SCRIPT_YIELD) {
        *nres = n;
        run_leave(s, &fr);
        return st;
    }
    if (st != IM_SCRIPT_BUDGET && s->co_status != LUA_OK)
        st = classify(s, s->co_status); /* the trampoline re-raised it as a runtime error */
    fail_message(s, co, st, status, err, errlen);
    /* Reset while the hook is still on co: __close handlers still pending
     * (a coroutine parked at a yield) run budgeted, and raise at once if
     * the budget has tripped. */
    if (s->tripped != TRIP_NONE)
        lua_sethook(co, script_hook, LUA_MASKCOUNT, 1);
    lua_resetthread(co);
    lua_settop(co, 0);
    run_leave(s, &fr);
    return st;
}
