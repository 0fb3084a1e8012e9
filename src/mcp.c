/* mcp.c: MCP dispatch (mcp.h). */
#include "mcp.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "error.h"
#include "log.h"

#define JSONRPC_PARSE_ERROR -32700
#define JSONRPC_INVALID_REQUEST -32600
#define JSONRPC_METHOD_NOT_FOUND -32601
#define JSONRPC_INVALID_PARAMS -32602
#define JSONRPC_INTERNAL_ERROR -32603
#define MCP_SERVER_BUSY -32000

static const char *supported_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26",
                                           "2024-11-05"};

typedef struct mcp_req {
    im_mcp *m;
    char *id;                 /* raw JSON text of the id, heap */
    cJSON *id_json;           /* parsed, for matching cancellations */
    im_tool_call *call;
    int in_start;             /* im_tools_call has not returned yet */
    int done;
    struct mcp_req *next, *prev;
} mcp_req;

struct im_mcp {
    im_mcp_opts o;
    char version[16];
    int initialized;
    mcp_req *reqs;            /* tools/call in flight */
    size_t inflight;
};

int im_mcp_new(const im_mcp_opts *o, im_mcp **out) {
    im_mcp *m;
    if (o == NULL || o->tools == NULL || o->session == NULL || o->send == NULL)
        return IM_EINVAL;
    m = calloc(1, sizeof *m);
    if (m == NULL)
        return IM_ENOMEM;
    m->o = *o;
    if (m->o.max_inflight == 0)
        m->o.max_inflight = 256;
    *out = m;
    return 0;
}

static void req_free(mcp_req *r) {
    free(r->id);
    cJSON_Delete(r->id_json);
    free(r);
}

static void req_unlink(im_mcp *m, mcp_req *r) {
    if (r->prev)
        r->prev->next = r->next;
    else
        m->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
    m->inflight--;
}

void im_mcp_free(im_mcp *m) {
    if (m == NULL)
        return;
    while (m->reqs) {
        mcp_req *r = m->reqs;
        req_unlink(m, r);
        im_tools_abandon(r->call);
        req_free(r);
    }
    free(m);
}

size_t im_mcp_inflight(const im_mcp *m) { return m->inflight; }
const char *im_mcp_version(const im_mcp *m) { return m->version; }

/* ---- writing ------------------------------------------------------------ */

static void send_raw(im_mcp *m, const char *id, const char *body_key, const char *body) {
    size_t n = strlen(id) + strlen(body) + 48;
    char *buf = malloc(n);
    int len;
    if (buf == NULL) {
        im_error("out of memory writing a response");
        return;
    }
    len = snprintf(buf, n, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"%s\":%s}", id, body_key, body);
    m->o.send(m->o.send_ud, buf, (size_t)len);
    free(buf);
}

/* Takes ownership of result. */
static void send_result(im_mcp *m, const char *id, cJSON *result) {
    char *body = cJSON_PrintUnformatted(result);
    cJSON_Delete(result);
    if (body == NULL) {
        im_error("out of memory printing a response");
        return;
    }
    send_raw(m, id, "result", body);
    cJSON_free(body);
}

static void send_error(im_mcp *m, const char *id, int code, const char *message, cJSON *data) {
    cJSON *e = cJSON_CreateObject();
    char *body;
    cJSON_AddNumberToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    if (data)
        cJSON_AddItemToObject(e, "data", data);
    body = cJSON_PrintUnformatted(e);
    cJSON_Delete(e);
    if (body == NULL)
        return;
    send_raw(m, id ? id : "null", "error", body);
    cJSON_free(body);
}

/* ---- the raw id --------------------------------------------------------- */

/* Skips one JSON value starting at p (already known to be valid JSON).
 * Returns the first byte after it. */
static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

static const char *skip_string(const char *p, const char *end) {
    for (p++; p < end && *p != '"'; p++)
        if (*p == '\\')
            p++;
    return p < end ? p + 1 : end;
}

static const char *skip_value(const char *p, const char *end) {
    int depth = 0;
    p = skip_ws(p, end);
    do {
        if (p >= end)
            return end;
        if (*p == '"') {
            p = skip_string(p, end);
            continue;
        }
        if (*p == '{' || *p == '[')
            depth++;
        else if (*p == '}' || *p == ']')
            depth--;
        else if (depth == 0) {
            while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
                   *p != '\r' && *p != '\n')
                p++;
            return p;
        }
        p++;
    } while (depth > 0);
    return p;
}

/* Copies the raw text of the top-level "id" member of a valid JSON object.
 * Returns heap memory (free()) or NULL when it is absent or escaped. */
static char *raw_id(const char *line, size_t len) {
    const char *p = line, *end = line + len;
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return NULL;
    p++;
    for (;;) {
        const char *k, *ke, *v, *ve;
        p = skip_ws(p, end);
        if (p >= end || *p != '"')
            return NULL;
        k = p + 1;
        p = skip_string(p, end);
        ke = p - 1;
        p = skip_ws(p, end);
        if (p >= end || *p != ':')
            return NULL;
        v = skip_ws(p + 1, end);
        ve = skip_value(v, end);
        if (ke - k == 2 && memcmp(k, "id", 2) == 0) {
            char *out = malloc((size_t)(ve - v) + 1);
            if (out) {
                memcpy(out, v, (size_t)(ve - v));
                out[ve - v] = '\0';
            }
            return out;
        }
        p = skip_ws(ve, end);
        if (p >= end || *p != ',')
            return NULL;
        p++;
    }
}

/* ---- methods ------------------------------------------------------------ */

static const char *server_instructions(im_mcp *m, char *buf, size_t len) {
    const im_config *c = im_session_config(m->o.session);
    snprintf(buf, len,
             "ibkr-mcp trades an Interactive Brokers account (%s backend%s) behind a risk gate. "
             "Trading is %s. To trade: get_quote, then preview_order (risk-checked; when approved "
             "it returns a single-use confirmation_token valid %.0f s), then "
             "place_order(confirmation_token), which re-checks everything before sending. "
             "Rejections carry reasons with figures: adjust and preview again. halt_trading stops "
             "all new orders; only a human operator can resume.",
             c->backend, strcmp(c->backend, "sim") == 0 ? ", a simulated account" : "",
             c->trading_enabled ? "ENABLED" : "DISABLED (read-only: previews issue no token)",
             c->token_ttl_s);
    return buf;
}

static void do_initialize(im_mcp *m, const char *id, const cJSON *params) {
    const cJSON *pv = cJSON_GetObjectItemCaseSensitive(params, "protocolVersion");
    const char *chosen = IM_MCP_LATEST_VERSION;
    cJSON *res, *caps, *info;
    char instr[1024];

    if (cJSON_IsString(pv)) {
        for (size_t i = 0; i < IM_ARRAY_SIZE(supported_versions); i++)
            if (strcmp(pv->valuestring, supported_versions[i]) == 0)
                chosen = supported_versions[i];
    }
    snprintf(m->version, sizeof m->version, "%s", chosen);
    res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "protocolVersion", chosen);
    caps = cJSON_AddObjectToObject(res, "capabilities");
    cJSON_AddFalseToObject(cJSON_AddObjectToObject(caps, "tools"), "listChanged");
    info = cJSON_AddObjectToObject(res, "serverInfo");
    cJSON_AddStringToObject(info, "name", "ibkr-mcp");
    cJSON_AddStringToObject(info, "title", "Interactive Brokers (ibkr-mcp)");
    cJSON_AddStringToObject(info, "version", IM_VERSION);
    cJSON_AddStringToObject(res, "instructions", server_instructions(m, instr, sizeof instr));
    im_info("initialize: protocol %s%s", chosen,
            cJSON_IsString(pv) && strcmp(pv->valuestring, chosen) != 0 ? " (counter-offer)" : "");
    send_result(m, id, res);
}

static void tool_done_cb(void *ud, cJSON *result) {
    mcp_req *r = ud;
    im_mcp *m = r->m;
    send_result(m, r->id, result);
    req_unlink(m, r);
    r->done = 1;
    if (!r->in_start)
        req_free(r);
}

static void do_tools_call(im_mcp *m, const char *id, const cJSON *id_json, const cJSON *params) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(params, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(params, "arguments");
    mcp_req *r;
    char msg[256];

    if (!cJSON_IsString(name)) {
        send_error(m, id, JSONRPC_INVALID_PARAMS, "tools/call needs params.name (a string)", NULL);
        return;
    }
    if (args != NULL && !cJSON_IsObject(args) && !cJSON_IsNull(args)) {
        send_error(m, id, JSONRPC_INVALID_PARAMS, "tools/call params.arguments must be an object",
                   NULL);
        return;
    }
    if (!im_tools_has(m->o.tools, name->valuestring)) {
        snprintf(msg, sizeof msg, "Unknown tool: %.100s", name->valuestring);
        send_error(m, id, JSONRPC_INVALID_PARAMS, msg, NULL);
        return;
    }
    if (m->inflight >= m->o.max_inflight) {
        snprintf(msg, sizeof msg, "Too many requests in flight (limit %zu); retry shortly",
                 m->o.max_inflight);
        send_error(m, id, MCP_SERVER_BUSY, msg, NULL);
        return;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL || (r->id = strdup(id)) == NULL) {
        free(r);
        send_error(m, id, JSONRPC_INTERNAL_ERROR, "Out of memory", NULL);
        return;
    }
    r->m = m;
    r->id_json = cJSON_Duplicate(id_json, 1);
    r->next = m->reqs;
    if (m->reqs)
        m->reqs->prev = r;
    m->reqs = r;
    m->inflight++;
    r->in_start = 1;
    if (im_tools_call(m->o.tools, name->valuestring, cJSON_IsObject(args) ? args : NULL,
                      tool_done_cb, r, &r->call) != 0) {
        /* Cannot happen after im_tools_has; answer anyway. */
        req_unlink(m, r);
        send_error(m, id, JSONRPC_INVALID_PARAMS, "Unknown tool", NULL);
        req_free(r);
        return;
    }
    r->in_start = 0;
    if (r->done)
        req_free(r);
}

static void do_cancelled(im_mcp *m, const cJSON *params) {
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(params, "requestId");
    for (mcp_req *r = m->reqs; rid && r; r = r->next) {
        if (r->id_json && cJSON_Compare(r->id_json, rid, 1)) {
            im_info("request %s cancelled by the client", r->id);
            req_unlink(m, r);
            im_tools_abandon(r->call);
            req_free(r);
            return;
        }
    }
}

static void dispatch(im_mcp *m, const char *id, const cJSON *id_json, const char *method,
                     const cJSON *params) {
    char msg[200];
    if (strcmp(method, "initialize") == 0) {
        do_initialize(m, id, params);
    } else if (strcmp(method, "ping") == 0) {
        send_result(m, id, cJSON_CreateObject());
    } else if (strcmp(method, "tools/list") == 0) {
        const cJSON *cursor = cJSON_GetObjectItemCaseSensitive(params, "cursor");
        if (cursor != NULL && !cJSON_IsNull(cursor)) {
            send_error(m, id, JSONRPC_INVALID_PARAMS, "Invalid cursor: every tool fits in one page",
                       NULL);
            return;
        }
        cJSON *res = cJSON_CreateObject();
        cJSON_AddItemToObject(res, "tools", cJSON_Duplicate(im_tools_list(m->o.tools), 1));
        send_result(m, id, res);
    } else if (strcmp(method, "tools/call") == 0) {
        do_tools_call(m, id, id_json, params);
    } else {
        snprintf(msg, sizeof msg, "Method not found: %.120s", method);
        send_error(m, id, JSONRPC_METHOD_NOT_FOUND, msg, NULL);
    }
}

static void notification(im_mcp *m, const char *method, const cJSON *params) {
    if (strcmp(method, "notifications/initialized") == 0)
        m->initialized = 1;
    else if (strcmp(method, "notifications/cancelled") == 0)
        do_cancelled(m, params);
    else
        im_debug("ignoring notification %s", method);
}

void im_mcp_handle_line(im_mcp *m, const char *line, size_t len) {
    cJSON *msg;
    const cJSON *id, *method, *params, *jv;
    char *rid = NULL;
    const char *idtext;
    int id_bad = 0;

    /* Blank lines between messages are harmless; skip them. */
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
        i++;
    if (i == len)
        return;
    msg = cJSON_ParseWithLength(line, len);
    if (msg == NULL) {
        send_error(m, NULL, JSONRPC_PARSE_ERROR, "Parse error: the line is not valid JSON", NULL);
        return;
    }
    if (cJSON_IsArray(msg)) {
        send_error(m, NULL, JSONRPC_INVALID_REQUEST,
                   "Invalid Request: JSON-RPC batches are not supported in this protocol version",
                   NULL);
        cJSON_Delete(msg);
        return;
    }
    if (!cJSON_IsObject(msg)) {
        send_error(m, NULL, JSONRPC_INVALID_REQUEST, "Invalid Request: expected a JSON object",
                   NULL);
        cJSON_Delete(msg);
        return;
    }
    id = cJSON_GetObjectItemCaseSensitive(msg, "id");
    method = cJSON_GetObjectItemCaseSensitive(msg, "method");
    params = cJSON_GetObjectItemCaseSensitive(msg, "params");
    jv = cJSON_GetObjectItemCaseSensitive(msg, "jsonrpc");

    /* JSON-RPC ids are strings or integers; anything else is answered as
     * an invalid request (with id null: we cannot echo what we refuse). */
    if (cJSON_IsNumber(id) &&
        (!isfinite(id->valuedouble) || id->valuedouble != floor(id->valuedouble)))
        id_bad = 1;
    else if (id != NULL && (cJSON_IsString(id) || cJSON_IsNumber(id)))
        rid = raw_id(line, len);
    /* An escaped key or odd spacing: fall back to cJSON's rendering. */
    if (rid == NULL && !id_bad && id != NULL && (cJSON_IsString(id) || cJSON_IsNumber(id))) {
        char *p = cJSON_PrintUnformatted(id);
        if (p) {
            rid = strdup(p);
            cJSON_free(p);
        }
    }
    idtext = rid ? rid : "null";

    if (method == NULL && id != NULL &&
        (cJSON_GetObjectItemCaseSensitive(msg, "result") ||
         cJSON_GetObjectItemCaseSensitive(msg, "error"))) {
        /* A response to a request of ours: none are outstanding yet. */
        im_debug("ignoring a response with id %s", idtext);
    } else if (!cJSON_IsString(jv) || strcmp(jv->valuestring, "2.0") != 0) {
        send_error(m, idtext, JSONRPC_INVALID_REQUEST,
                   "Invalid Request: \"jsonrpc\" must be \"2.0\"", NULL);
    } else if (!cJSON_IsString(method)) {
        send_error(m, idtext, JSONRPC_INVALID_REQUEST,
                   "Invalid Request: \"method\" must be a string", NULL);
    } else if (params != NULL && !cJSON_IsObject(params) && !cJSON_IsArray(params)) {
        send_error(m, idtext, JSONRPC_INVALID_REQUEST,
                   "Invalid Request: \"params\" must be an object", NULL);
    } else if (id == NULL) {
        notification(m, method->valuestring, params);
    } else if (rid == NULL) {
        send_error(m, NULL, JSONRPC_INVALID_REQUEST,
                   "Invalid Request: \"id\" must be a string or an integer", NULL);
    } else {
        dispatch(m, idtext, id, method->valuestring, params);
    }
    free(rid);
    cJSON_Delete(msg);
}

void im_mcp_line_too_long(im_mcp *m, size_t len) {
    char msg[160];
    snprintf(msg, sizeof msg, "Invalid Request: message of %zu bytes exceeds the line limit", len);
    send_error(m, NULL, JSONRPC_INVALID_REQUEST, msg, NULL);
}
