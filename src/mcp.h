/* mcp.h: the MCP methods over JSON-RPC 2.0 (legacy handshake era,
 * 2024-11-05 .. 2025-11-25): initialize with version negotiation,
 * notifications/initialized, ping, tools/list, tools/call,
 * notifications/cancelled; -32601 for anything else at once, -32700 for an
 * unparseable line, -32600 for batches and malformed requests. Request ids
 * are echoed exactly as they were written. Responses leave through a send
 * function, so the same dispatcher serves stdio and the demo.
 * Uses tools.h, session.h and cJSON. */
#ifndef IM_MCP_H
#define IM_MCP_H

#include <stddef.h>

#include "session.h"
#include "tools.h"

typedef struct im_mcp im_mcp;

/* Sends one JSON-RPC message (no newline inside; the transport adds one). */
typedef void (*im_mcp_send_fn)(void *ud, const char *json, size_t len);

typedef struct im_mcp_opts {
    im_tools *tools;       /* not owned */
    im_session *session;   /* not owned */
    im_mcp_send_fn send;
    void *send_ud;
    size_t max_inflight;   /* 0 = 256 */
} im_mcp_opts;

int im_mcp_new(const im_mcp_opts *o, im_mcp **out);
/* Abandons calls in flight (no responses) and frees m. */
void im_mcp_free(im_mcp *m);
/* Handles one line of input (a message without its newline). */
void im_mcp_handle_line(im_mcp *m, const char *line, size_t len);
/* Answers a line that was too long to read (-32600, id null). */
void im_mcp_line_too_long(im_mcp *m, size_t len);
/* Requests whose response has not been sent yet. */
size_t im_mcp_inflight(const im_mcp *m);
/* The negotiated protocol version ("" before initialize). */
const char *im_mcp_version(const im_mcp *m);

#define IM_MCP_LATEST_VERSION "2025-11-25"

#endif
