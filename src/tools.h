/* tools.h: the tool registry. Loads one Lua file per tool from a folder
 * into one sandboxed state (script.h), checks each definition (name,
 * title, description, input and output schema, annotations, run), offers
 * the host API `ibkr.*` (reads, and orders only through the session), and
 * runs each call's handler as a coroutine: a host call that needs the
 * broker yields and the broker's callback resumes it. Arguments are
 * validated against inputSchema before Lua runs and results against
 * outputSchema before they leave. Uses script.h, script_json.h, schema.h,
 * session.h and cJSON; knows nothing of JSON-RPC. */
#ifndef IM_TOOLS_H
#define IM_TOOLS_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "session.h"

typedef struct im_tools im_tools;
typedef struct im_tool_call im_tool_call;

/* Loads every *.lua file in dir (sorted by name). On failure returns a
 * negative code with a sentence naming the file in err. */
int im_tools_new(im_session *s, const char *dir, char *err, size_t errlen, im_tools **out);
void im_tools_free(im_tools *t);

/* The tools/list array (owned by t). */
const cJSON *im_tools_list(const im_tools *t);
size_t im_tools_count(const im_tools *t);
/* 1 when a tool of that name exists. */
int im_tools_has(const im_tools *t, const char *name);

/* A finished call: result is a CallToolResult object ({content,
 * structuredContent?, isError?}); the callee takes ownership of it.
 * structuredContent is a cJSON_Raw node holding the JSON text (the same
 * text as content[0].text), printed once; parse it to read it. */
typedef void (*im_tool_done_cb)(void *ud, cJSON *result);

/* Starts tool name with args (an object or NULL). Returns IM_ENOENT for an
 * unknown tool (cb never called); otherwise 0, and cb is called exactly
 * once, possibly before this returns. While the call is pending, *handle
 * (if not NULL) identifies it for im_tools_abandon; it is set to NULL
 * when the call completed before returning. */
int im_tools_call(im_tools *t, const char *name, const cJSON *args, im_tool_done_cb cb,
                  void *ud, im_tool_call **handle);
/* Per-call options (all may be absent). */
typedef struct im_tools_call_opts {
    const im_confirmer *confirmer;  /* how place_order may ask a human (copied) */
    const char *request_state;      /* a 2026-07-28 retry: the requestState echoed back */
    int answer;                     /* that retry's im_confirm_answer */
} im_tools_call_opts;

/* The key under which a result that waits for a human's answer carries the
 * question ({id, message, expires_in}); the protocol layer removes it. */
#define IM_TOOLS_INPUT_REQUIRED "_ibkrInputRequired"

/* im_tools_call with options (opts may be NULL). */
int im_tools_call_ex(im_tools *t, const char *name, const cJSON *args,
                     const im_tools_call_opts *opts, im_tool_done_cb cb, void *ud,
                     im_tool_call **handle);
/* Abandons a pending call: cb will never be called; a broker operation in
 * progress completes and is discarded. */
void im_tools_abandon(im_tool_call *c);
/* Calls in progress. */
size_t im_tools_pending(const im_tools *t);

#endif
