/* mcp.h: the MCP methods over JSON-RPC 2.0, in both protocol eras.
 *
 * Legacy handshake era (2024-11-05 .. 2025-11-25): initialize with version
 * negotiation, notifications/initialized, ping, logging/setLevel, tools,
 * resources, prompts, notifications/cancelled. JSON arrays are batches only
 * where 2025-03-26 was negotiated; otherwise -32600.
 *
 * 2026-07-28 (stateless): a request whose params._meta names that version
 * ("io.modelcontextprotocol/protocolVersion") is served in that era whether
 * or not initialize happened: server/discover, the same tools, resources and
 * prompts, resultType and serverInfo on every result, ttlMs/cacheScope on
 * list and read results, no ping or logging/setLevel, -32022 for a version
 * named in _meta that is not served.
 *
 * Human confirmation of an order (IBKR_CONFIRM=elicit, a policy's
 * require_approval): in the legacy era an elicitation/create request to a
 * client that declared the elicitation capability (form), answered
 * accept (with confirm = true) / decline / cancel, or timed out at the
 * token's expiry; in 2026-07-28 an input_required result whose
 * inputRequests.confirm_order carries the same question, answered by the
 * client's retry with inputResponses and the echoed requestState. A client
 * without elicitation gets a refusal, never a silent placement.
 *
 * Log notifications (notifications/message) report risk rejections, order
 * changes, fills, connection changes and halts from the session: in the
 * legacy era once the client called logging/setLevel, at or above that
 * level; in 2026-07-28 only while a request carrying
 * _meta["io.modelcontextprotocol/logLevel"] is in flight.
 *
 * -32601 for anything else at once, -32700 for an unparseable line. Request
 * ids are echoed exactly as they were written. Responses and notifications
 * leave through one send function, so the same dispatcher serves stdio and
 * the demo. Uses tools.h, session.h, mcp_catalog.h and cJSON. */
#ifndef IM_MCP_H
#define IM_MCP_H

#include <stddef.h>
#include <uv.h>

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
    uv_loop_t *loop;       /* for timers (a confirmation's deadline); may be NULL */
} im_mcp_opts;

/* Subscribes to the session's events (for log notifications). */
int im_mcp_new(const im_mcp_opts *o, im_mcp **out);
/* Abandons calls in flight (no responses), stops listening to the
 * session and frees m. */
void im_mcp_free(im_mcp *m);
/* Handles one line of input (a message without its newline). */
void im_mcp_handle_line(im_mcp *m, const char *line, size_t len);
/* Answers a line that was too long to read (-32600, id null). */
void im_mcp_line_too_long(im_mcp *m, size_t len);
/* Requests whose response has not been sent yet. */
size_t im_mcp_inflight(const im_mcp *m);
/* The negotiated handshake version ("" before initialize). */
const char *im_mcp_version(const im_mcp *m);

#define IM_MCP_LATEST_VERSION "2025-11-25"   /* latest handshake version */
#define IM_MCP_MODERN_VERSION "2026-07-28"   /* the stateless revision */

#endif
