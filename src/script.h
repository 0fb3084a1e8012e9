/* script.h: the Lua sandbox host, shared by tools and (later) policies and
 * knowing neither. It creates states with a capped allocator, an allowlisted
 * read-only environment, an instruction budget with a wall-clock deadline
 * (count hook re-armed at 1 once tripped, so pcall cannot swallow it), a
 * C xpcall whose handler cannot run unbudgeted, print routed to stderr, and
 * one protected-call wrapper with a C traceback handler. Failures are
 * classified from C-side state, never from message text.
 * See reference/lua-sandbox.md. Uses Lua 5.4 and libuv (uv_hrtime). */
#ifndef IM_SCRIPT_H
#define IM_SCRIPT_H

#include <lua.h>
#include <stddef.h>

typedef struct im_script im_script;

typedef struct im_script_opts {
    const char *name;          /* prefix for print() and messages, e.g. "tools" */
    size_t mem_limit;          /* bytes; 0 = 64 MiB */
    long instr_budget;         /* instructions per call or resume; 0 = 10,000,000 */
    double deadline_ms;        /* wall clock per call or resume; 0 = 250 ms */
    /* Called once while the state is built, with the base table (the
     * source of the read-only environment) at the top of the stack. Adds
     * host globals with lua_setfield(L, -2, name). Must leave the stack as
     * it found it. May be NULL. */
    void (*install)(lua_State *L, void *ud);
    void *install_ud;
} im_script_opts;

/* Why a call ended (the C-side classification). */
typedef enum im_script_status {
    IM_SCRIPT_OK = 0,
    IM_SCRIPT_YIELD,     /* coroutine parked (resume only) */
    IM_SCRIPT_RUNTIME,   /* error() or a runtime fault */
    IM_SCRIPT_BUDGET,    /* instruction budget or deadline tripped */
    IM_SCRIPT_MEMORY,    /* allocation beyond mem_limit */
    IM_SCRIPT_SYNTAX,    /* load-time syntax error or a binary chunk */
    IM_SCRIPT_HANDLER,   /* error in the error handler */
} im_script_status;

/* Creates a sandboxed state. Returns 0 and *out (free with im_script_free),
 * IM_ENOMEM, or IM_EINVAL. */
int im_script_new(const im_script_opts *o, im_script **out);
void im_script_free(im_script *s);
lua_State *im_script_state(im_script *s);
/* The im_script that owns L (or one of its threads). */
im_script *im_script_of(lua_State *L);

/* Loads src in text mode only, with the sandbox environment, and runs the
 * chunk under the budget. On IM_SCRIPT_OK the chunk's first result is left
 * on the top of the main state's stack; otherwise nothing is left and err
 * holds a message (truncated to errlen). */
im_script_status im_script_load(im_script *s, const char *chunkname, const char *src,
                                size_t len, char *err, size_t errlen);

/* Protected call on L (the main state or a thread of s): function and nargs
 * arguments are on the stack. Applies the budget and a traceback handler.
 * On IM_SCRIPT_OK leaves nresults results; otherwise pops everything it was
 * given and fills err. */
im_script_status im_script_call(im_script *s, lua_State *L, int nargs, int nresults,
                                char *err, size_t errlen);

/* Starts or continues coroutine co (a thread of s) with nargs values on its
 * stack. IM_SCRIPT_OK: finished, *nres results on co's stack.
 * IM_SCRIPT_YIELD: parked by a host function; resume it later with the
 * values the host pushes. Anything else: failed, err filled, co is dead. */
im_script_status im_script_resume(im_script *s, lua_State *co, int nargs, int *nres,
                                  char *err, size_t errlen);

/* A stable short name for a status ("budget", "memory", ...). */
const char *im_script_status_name(im_script_status st);
/* Bytes currently allocated by the state. */
size_t im_script_mem_used(const im_script *s);

#endif
