/* mcp.c: MCP dispatch (mcp.h). */
#include "mcp.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "error.h"
#include "jsonw.h"
#include "log.h"
#include "rpc.h"
#include "mcp_catalog.h"
#include "text.h"

#define JSONRPC_PARSE_ERROR -32700
#define JSONRPC_INVALID_REQUEST -32600
#define JSONRPC_METHOD_NOT_FOUND -32601
#define JSONRPC_INVALID_PARAMS -32602
#define JSONRPC_INTERNAL_ERROR -32603
#define MCP_SERVER_BUSY -32000
#define MCP_RESOURCE_NOT_FOUND -32002          /* legacy era */
#define MCP_UNSUPPORTED_VERSION -32022         /* 2026-07-28 */

#define META_VERSION "io.modelcontextprotocol/protocolVersion"
#define META_LOG_LEVEL "io.modelcontextprotocol/logLevel"
#define META_SERVER_INFO "io.modelcontextprotocol/serverInfo"
#define META_CLIENT_CAPS "io.modelcontextprotocol/clientCapabilities"

/* Cache hints on 2026-07-28 list and read results: the lists are fixed for
 * the life of the process; account data is private and always fresh. */
#define LIST_TTL_MS 60000
#define READ_TTL_MS 0

static const char *supported_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26",
                                           "2024-11-05"};
static const char *modern_versions[] = {IM_MCP_MODERN_VERSION};

/* A JSON-RPC batch (2025-03-26 only): the responses collect here and leave
 * as one array when the last one is in. */
typedef struct mcp_batch {
    size_t pending;   /* responses still owed, +1 while the array is read */
    char *buf;        /* the responses so far, comma-separated */
    size_t len, cap;
    int failed;       /* out of memory: send nothing rather than a torn array */
} mcp_batch;

/* Where one request's answer goes and how it is dressed. */
typedef struct mcp_out {
    const char *id;        /* raw JSON text of the id */
    mcp_batch *batch;      /* NULL: straight to the transport */
    int modern;            /* 2026-07-28: resultType and serverInfo on results */
} mcp_out;

enum { REQ_TOOL = 1, REQ_READ };

/* A request answered asynchronously: tools/call and resources/read. */
typedef struct mcp_req {
    im_mcp *m;
    char *id;                 /* raw JSON text of the id, heap */
    cJSON *id_json;           /* parsed, for matching cancellations */
    mcp_batch *batch;
    int modern;
    int log_level;            /* 2026-07-28 per-request level, or IM_MCP_LOG_OFF */
    int kind;                 /* REQ_TOOL or REQ_READ */
    im_mcp_view view;         /* REQ_READ */
    char *uri;                /* REQ_READ, heap */
    im_tool_call *call;
    int in_start;             /* im_tools_call has not returned yet */
    int done;
    struct mcp_req *next, *prev;
} mcp_req;

/* A question sent to the client (elicitation/create), legacy era. */
typedef struct mcp_ask {
    char out_id[32];          /* our request id, a JSON string */
    char confirm_id[IM_CONFIRM_ID_LEN + 1];
    uv_timer_t *timer;        /* NULL without a loop */
    struct im_mcp *m;
    struct mcp_ask *next;
} mcp_ask;

struct im_mcp {
    im_mcp_opts o;
    int client_elicit;        /* initialize declared elicitation (form) */
    mcp_ask *asks;            /* questions awaiting the client's answer */
    unsigned long ask_seq;
    char version[16];
    int initialized;
    mcp_req *reqs;            /* calls in flight */
    size_t inflight;
    int log_level;            /* logging/setLevel; IM_MCP_LOG_OFF until it is called */
    int listening;            /* subscribed to the session's events */
    int closing;              /* im_mcp_free: nothing more is written */
    im_jw out;                /* the reply being written, reused (jsonw.h) */
    int out_busy;
};

static void on_session_event(void *ud, const im_session_event *ev);

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
    m->log_level = IM_MCP_LOG_OFF;
    if (im_session_add_listener(m->o.session, on_session_event, m) == 0)
        m->listening = 1;
    else
        im_warn("mcp: no room for another session listener; no log notifications");
    *out = m;
    return 0;
}

/* ---- batches ------------------------------------------------------------ */

/* One owed response is settled (sent into the array or dropped); the
 * array leaves when none is owed any more. */
static void batch_release(im_mcp *m, mcp_batch *b) {
    if (--b->pending > 0)
        return;
    if (b->len > 0 && !b->failed && !m->closing) {
        b->buf[0] = '[';
        b->buf[b->len] = ']';
        m->o.send(m->o.send_ud, b->buf, b->len + 1);
    }
    free(b->buf);
    free(b);
}

static void batch_append(mcp_batch *b, const char *s, size_t n) {
    /* buf[0] is the '[' or ',' before each element; one byte spare for ']'. */
    if (b->len + n + 2 > b->cap) {
        size_t cap = (b->len + n + 2) * 2;
        char *p = realloc(b->buf, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->buf = p;
        b->cap = cap;
    }
    b->buf[b->len] = ',';
    memcpy(b->buf + b->len + 1, s, n);
    b->len += n + 1;
}

/* ---- requests in flight ------------------------------------------------- */

static void req_free(mcp_req *r) {
    free(r->id);
    free(r->uri);
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

/* ---- asking a human (elicitation) ----------------------------------------- */

static void emit(im_mcp *m, mcp_batch *b, const char *s, size_t n);

#define CONFIRM_KEY "confirm_order"

static void ask_timer_close_cb(uv_handle_t *h) { free(h); }

static void ask_free(mcp_ask *a) {
    if (a->timer != NULL) {
        uv_timer_stop(a->timer);
        uv_close((uv_handle_t *)a->timer, ask_timer_close_cb);
    }
    free(a);
}

static void ask_unlink(im_mcp *m, mcp_ask *a) {
    for (mcp_ask **pp = &m->asks; *pp; pp = &(*pp)->next) {
        if (*pp == a) {
            *pp = a->next;
            return;
        }
    }
}

/* The form shown to the human: one boolean, off by default. */
static cJSON *confirm_params(const char *message) {
    cJSON *p = cJSON_CreateObject(), *schema, *props, *c, *req;
    cJSON_AddStringToObject(p, "mode", "form");
    cJSON_AddStringToObject(p, "message", message);
    schema = cJSON_AddObjectToObject(p, "requestedSchema");
    cJSON_AddStringToObject(schema, "type", "object");
    props = cJSON_AddObjectToObject(schema, "properties");
    c = cJSON_AddObjectToObject(props, "confirm");
    cJSON_AddStringToObject(c, "type", "boolean");
    cJSON_AddStringToObject(c, "title", "Place this order");
    cJSON_AddStringToObject(c, "description",
                            "Tick to send the order to the broker; anything else cancels it.");
    cJSON_AddBoolToObject(c, "default", 0);
    req = cJSON_AddArrayToObject(schema, "required");
    cJSON_AddItemToArray(req, cJSON_CreateString("confirm"));
    return p;
}

/* An elicitation answer ({action, content}) as a confirmation answer. */
static im_confirm_answer confirm_answer_of(const cJSON *result) {
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(result, "action");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(result, "content");
    if (!cJSON_IsString(action))
        return IM_CONFIRM_FAILED;
    if (strcmp(action->valuestring, "accept") == 0)
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(content, "confirm"))
                   ? IM_CONFIRM_ACCEPT
                   : IM_CONFIRM_DECLINE;
    if (strcmp(action->valuestring, "decline") == 0)
        return IM_CONFIRM_DECLINE;
    if (strcmp(action->valuestring, "cancel") == 0)
        return IM_CONFIRM_CANCEL;
    return IM_CONFIRM_FAILED;
}

static void ask_timeout_cb(uv_timer_t *t) {
    mcp_ask *a = t->data;
    im_mcp *m = a->m;
    char id[IM_CONFIRM_ID_LEN + 1];
    snprintf(id, sizeof id, "%s", a->confirm_id);
    im_info("confirmation %s: no answer in time", a->out_id);
    ask_unlink(m, a);
    ask_free(a);
    im_session_confirm_answer(m->o.session, id, IM_CONFIRM_TIMEOUT);
}

/* The legacy era: a request to the client. Answered in on_client_response. */
static int ask_elicit(void *ud, const im_confirm_request *q) {
    im_mcp *m = ud;
    mcp_ask *a;
    cJSON *req;
    char *body;
    if (m->closing)
        return IM_ECANCELED;
    a = calloc(1, sizeof *a);
    if (a == NULL)
        return IM_ENOMEM;
    a->m = m;
    snprintf(a->out_id, sizeof a->out_id, "ibkr-confirm-%lu", ++m->ask_seq);
    snprintf(a->confirm_id, sizeof a->confirm_id, "%s", q->id);
    req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "jsonrpc", "2.0");
    cJSON_AddStringToObject(req, "id", a->out_id);
    cJSON_AddStringToObject(req, "method", "elicitation/create");
    cJSON_AddItemToObject(req, "params", confirm_params(q->message));
    body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (body == NULL) {
        free(a);
        return IM_ENOMEM;
    }
    if (m->o.loop != NULL && (a->timer = malloc(sizeof *a->timer)) != NULL) {
        uv_timer_init(m->o.loop, a->timer);
        a->timer->data = a;
        uv_timer_start(a->timer, ask_timeout_cb, (uint64_t)(q->expires_in * 1000.0), 0);
    }
    a->next = m->asks;
    m->asks = a;
    emit(m, NULL, body, strlen(body));
    cJSON_free(body);
    return 0;
}

/* 2026-07-28: the question leaves in the call's result. */
static int ask_input(void *ud, const im_confirm_request *q) {
    IM_UNUSED(ud);
    IM_UNUSED(q);
    return IM_EINPUT;
}

/* A response from the client to one of our requests. */
static void on_client_response(im_mcp *m, const cJSON *id, const cJSON *msg) {
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(msg, "result");
    char cid[IM_CONFIRM_ID_LEN + 1];
    im_confirm_answer ans;
    mcp_ask *a;
    for (a = m->asks; a; a = a->next)
        if (cJSON_IsString(id) && strcmp(id->valuestring, a->out_id) == 0)
            break;
    if (a == NULL) {
        im_debug("ignoring a response to no request of ours");
        return;
    }
    ans = cJSON_IsObject(result) ? confirm_answer_of(result) : IM_CONFIRM_FAILED;
    snprintf(cid, sizeof cid, "%s", a->confirm_id);
    ask_unlink(m, a);
    ask_free(a);
    im_session_confirm_answer(m->o.session, cid, ans);
}

void im_mcp_free(im_mcp *m) {
    if (m == NULL)
        return;
    m->closing = 1;
    if (m->listening)
        im_session_remove_listener(m->o.session, on_session_event, m);
    /* Nothing may ask through this server once it is gone. */
    im_session_forget_confirmer(m->o.session, m);
    while (m->reqs) {
        mcp_req *r = m->reqs;
        req_unlink(m, r);
        im_tools_abandon(r->call);
        if (r->batch)
            batch_release(m, r->batch);
        req_free(r);
    }
    /* Questions still open: the session frees their orders (never sent). */
    while (m->asks) {
        mcp_ask *a = m->asks;
        m->asks = a->next;
        ask_free(a);
    }
    im_jw_free(&m->out);
    free(m);
}

size_t im_mcp_inflight(const im_mcp *m) { return m->inflight; }
const char *im_mcp_version(const im_mcp *m) { return m->version; }

/* ---- writing ------------------------------------------------------------ */

static void emit(im_mcp *m, mcp_batch *b, const char *s, size_t n) {
    if (b == NULL) {
        if (!m->closing)
            m->o.send(m->o.send_ud, s, n);
        return;
    }
    batch_append(b, s, n);
    batch_release(m, b);
}

/* The reply line {"jsonrpc":"2.0","id":ID,"KEY":BODY}, written once into
 * one buffer (jsonw.h). */
static void send_body(im_mcp *m, const mcp_out *o, const char *body_key, const cJSON *body) {
    im_jw local, *w = &local;
    if (!m->out_busy) {   /* the usual case: the kept buffer, no allocation */
        w = &m->out;
        m->out_busy = 1;
    } else {
        im_jw_init(&local);
    }
    im_jw_lit(w, "{\"jsonrpc\":\"2.0\",\"id\":");
    im_jw_lit(w, o->id ? o->id : "null");
    im_jw_lit(w, ",\"");
    im_jw_lit(w, body_key);
    im_jw_lit(w, "\":");
    im_jw_cjson(w, body);
    im_jw_raw(w, "}", 1);
    if (w->oom) {
        im_error("out of memory writing a response");
        if (o->batch)
            batch_release(m, o->batch);
    } else {
        emit(m, o->batch, w->buf, w->len);
    }
    if (w == &m->out) {
        im_jw_reset(w);
        m->out_busy = 0;
    } else {
        im_jw_free(w);
    }
}

static cJSON *server_info(void) {
    cJSON *info = cJSON_CreateObject();
    cJSON_AddStringToObject(info, "name", "ibkr-mcp");
    cJSON_AddStringToObject(info, "title", "Interactive Brokers (ibkr-mcp)");
    cJSON_AddStringToObject(info, "version", IM_VERSION);
    return info;
}

/* Takes ownership of result. In the 2026-07-28 era every result says it is
 * complete and names the server; list and read results carry cache hints
 * (ttl_ms >= 0; -1 for none). */
static void send_result_ex(im_mcp *m, const mcp_out *o, cJSON *result, long ttl_ms,
                           const char *scope) {
    if (o->modern && cJSON_IsObject(result)) {
        cJSON *meta = cJSON_GetObjectItemCaseSensitive(result, "_meta");
        cJSON_DeleteItemFromObjectCaseSensitive(result, "resultType");
        cJSON_AddStringToObject(result, "resultType", "complete");
        if (!cJSON_IsObject(meta)) {
            cJSON_DeleteItemFromObjectCaseSensitive(result, "_meta");
            meta = cJSON_AddObjectToObject(result, "_meta");
        }
        if (meta && !cJSON_GetObjectItemCaseSensitive(meta, META_SERVER_INFO))
            cJSON_AddItemToObject(meta, META_SERVER_INFO, server_info());
        if (ttl_ms >= 0) {
            cJSON_AddNumberToObject(result, "ttlMs", (double)ttl_ms);
            cJSON_AddStringToObject(result, "cacheScope", scope);
        }
    }
    send_body(m, o, "result", result);
    cJSON_Delete(result);
}

static void send_result(im_mcp *m, const mcp_out *o, cJSON *result) {
    send_result_ex(m, o, result, -1, NULL);
}

/* Takes ownership of data. */
static void send_error(im_mcp *m, const mcp_out *o, int code, const char *message, cJSON *data) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddNumberToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    if (data)
        cJSON_AddItemToObject(e, "data", data);
    send_body(m, o, "error", e);
    cJSON_Delete(e);
}

/* An error with id null, outside any request. */
static void send_null_error(im_mcp *m, mcp_batch *b, int code, const char *message) {
    mcp_out o = {NULL, b, 0};
    send_error(m, &o, code, message, NULL);
}

/* Client text quoted in a message: at most n-1 bytes, never a split or
 * invalid UTF-8 sequence. */
#define QUOTE(buf, src) (im_text_copy((buf), sizeof(buf), (src)), (buf))

/* ---- log notifications -------------------------------------------------- */

/* The lowest level anyone asked for: the legacy session's setLevel, or a
 * 2026-07-28 request in flight that carries a log level. */
static int log_threshold(const im_mcp *m) {
    int t = m->log_level == IM_MCP_LOG_OFF ? INT_MAX : m->log_level;
    for (const mcp_req *r = m->reqs; r; r = r->next)
        if (r->log_level != IM_MCP_LOG_OFF && r->log_level < t)
            t = r->log_level;
    return t;
}

static void on_session_event(void *ud, const im_session_event *ev) {
    im_mcp *m = ud;
    int level = IM_MCP_LOG_INFO;
    cJSON *data, *note, *params;
    char *text;
    if (m->closing || log_threshold(m) == INT_MAX)
        return;
    data = im_mcp_event_data(ev, &level);
    if (data == NULL)
        return;
    if (level < log_threshold(m)) {
        cJSON_Delete(data);
        return;
    }
    note = cJSON_CreateObject();
    cJSON_AddStringToObject(note, "jsonrpc", "2.0");
    cJSON_AddStringToObject(note, "method", "notifications/message");
    params = cJSON_AddObjectToObject(note, "params");
    cJSON_AddStringToObject(params, "level", im_mcp_log_level_name(level));
    cJSON_AddStringToObject(params, "logger", "ibkr-mcp");
    cJSON_AddItemToObject(params, "data", data);
    text = cJSON_PrintUnformatted(note);
    cJSON_Delete(note);
    if (text) {
        m->o.send(m->o.send_ud, text, strlen(text));
        cJSON_free(text);
    }
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

/* 1 when s is exactly a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number_ok(const char *s) {
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return 0;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
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
    const char *acct = im_session_account_id(m->o.session);
    const char *mode;
    if (strcmp(c->backend, "sim") == 0)
        mode = "SIMULATED (built-in simulator, no real money)";
    else if (acct == NULL || acct[0] == '\0')
        mode = "Interactive Brokers; paper or live shows in get_status once connected";
    else if (im_account_is_paper(acct))
        mode = "PAPER (Interactive Brokers paper account, no real money)";
    else if (!c->allow_live_account)
        mode = "LIVE (Interactive Brokers, REAL MONEY) - read-only: trading a live account is "
               "not allowed by the operator";
    else
        mode = "LIVE (Interactive Brokers, REAL MONEY)";
    snprintf(buf, len,
             "ibkr-mcp trades one Interactive Brokers account behind a risk gate.\n"
             "Account: %s. Trading is %s.\n"
             "Always preview before placing: get_status, get_quote, then preview_order "
             "(risk-checked; when approved it returns a single-use confirmation_token that "
             "expires after %.0f s), then place_order(confirmation_token), which re-checks "
             "everything. An expired or used token means preview again.\n"
             "Rejections give reasons with figures: adjust and preview again. halt_trading stops "
             "all new orders; only a human operator can resume.\n%s"
             "Read-only resources: ibkr://status, ibkr://account, ibkr://positions, "
             "ibkr://orders/open, ibkr://trades, ibkr://limits, ibkr://quote/{symbol}.",
             mode,
             c->trading_enabled ? "ENABLED"
                                : "DISABLED (read-only: previews work but issue no token)",
             c->token_ttl_s,
             c->confirm_elicit ? "A human confirms orders before they are sent (elicitation); "
                                 "if they decline, do not retry without asking them.\n"
                               : "");
    return buf;
}

static cJSON *capabilities(void) {
    cJSON *caps = cJSON_CreateObject();
    cJSON_AddFalseToObject(cJSON_AddObjectToObject(caps, "tools"), "listChanged");
    cJSON *res = cJSON_AddObjectToObject(caps, "resources");
    cJSON_AddFalseToObject(res, "subscribe");
    cJSON_AddFalseToObject(res, "listChanged");
    cJSON_AddFalseToObject(cJSON_AddObjectToObject(caps, "prompts"), "listChanged");
    cJSON_AddObjectToObject(caps, "logging");
    return caps;
}

static void do_initialize(im_mcp *m, const mcp_out *o, const cJSON *params) {
    const cJSON *pv = cJSON_GetObjectItemCaseSensitive(params, "protocolVersion");
    const char *chosen = IM_MCP_LATEST_VERSION;
    cJSON *res;
    char instr[1536];

    if (cJSON_IsString(pv)) {
        for (size_t i = 0; i < IM_ARRAY_SIZE(supported_versions); i++)
            if (strcmp(pv->valuestring, supported_versions[i]) == 0)
                chosen = supported_versions[i];
    }
    snprintf(m->version, sizeof m->version, "%s", chosen);
    {
        /* Form elicitation: "elicitation": {} or {"form": {...}, ...}. */
        const cJSON *caps = cJSON_GetObjectItemCaseSensitive(params, "capabilities");
        const cJSON *el = cJSON_GetObjectItemCaseSensitive(caps, "elicitation");
        m->client_elicit = cJSON_IsObject(el) &&
                           (el->child == NULL || cJSON_GetObjectItemCaseSensitive(el, "form"));
    }
    res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "protocolVersion", chosen);
    cJSON_AddItemToObject(res, "capabilities", capabilities());
    cJSON_AddItemToObject(res, "serverInfo", server_info());
    cJSON_AddStringToObject(res, "instructions", server_instructions(m, instr, sizeof instr));
    im_info("initialize: protocol %s%s", chosen,
            cJSON_IsString(pv) && strcmp(pv->valuestring, chosen) != 0 ? " (counter-offer)" : "");
    send_result(m, o, res);
}

static void do_discover(im_mcp *m, const mcp_out *o) {
    cJSON *res = cJSON_CreateObject(), *sv, *meta;
    char instr[1536];
    sv = cJSON_AddArrayToObject(res, "supportedVersions");
    for (size_t i = 0; i < IM_ARRAY_SIZE(modern_versions); i++)
        cJSON_AddItemToArray(sv, cJSON_CreateString(modern_versions[i]));
    cJSON_AddItemToObject(res, "capabilities", capabilities());
    cJSON_AddStringToObject(res, "instructions", server_instructions(m, instr, sizeof instr));
    meta = cJSON_AddObjectToObject(res, "_meta");
    cJSON_AddItemToObject(meta, META_SERVER_INFO, server_info());
    send_result_ex(m, o, res, LIST_TTL_MS, "private");
}

/* 1 when params.cursor is absent or null; otherwise answers -32602. Every
 * list fits in one page, so no cursor is ever valid. */
static int no_cursor(im_mcp *m, const mcp_out *o, const cJSON *params, const char *what) {
    const cJSON *cursor = cJSON_GetObjectItemCaseSensitive(params, "cursor");
    char msg[160];
    if (cursor == NULL || cJSON_IsNull(cursor))
        return 1;
    snprintf(msg, sizeof msg, "Invalid cursor: every %s fits in one page", what);
    send_error(m, o, JSONRPC_INVALID_PARAMS, msg, NULL);
    return 0;
}

static void send_list(im_mcp *m, const mcp_out *o, const char *key, cJSON *items) {
    cJSON *res = cJSON_CreateObject();
    cJSON_AddItemToObject(res, key, items);
    send_result_ex(m, o, res, LIST_TTL_MS, "public");
}

/* The first text block of a CallToolResult, or a fallback sentence. */
static const char *result_text(const cJSON *result) {
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(result, "content"), 0);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "text");
    return cJSON_IsString(t) && t->valuestring[0] ? t->valuestring : "The read failed";
}

static void read_done(mcp_req *r, cJSON *result) {
    im_mcp *m = r->m;
    mcp_out o = {r->id, r->batch, r->modern};
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(result, "structuredContent");
    cJSON *view, *res, *contents, *item, *data, *parsed = NULL;
    char *text;
    im_jw w;
    int bad;

    if (cJSON_IsRaw(sc))   /* tools.h: the text, printed once */
        sc = parsed = cJSON_Parse(sc->valuestring);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "isError")) || sc == NULL) {
        char msg[400], u[101], t[251];
        snprintf(msg, sizeof msg, "Could not read %s: %s", QUOTE(u, r->uri),
                 QUOTE(t, result_text(result)));
        data = cJSON_CreateObject();
        cJSON_AddStringToObject(data, "uri", r->uri);
        send_error(m, &o, JSONRPC_INTERNAL_ERROR, msg, data);
        cJSON_Delete(parsed);
        cJSON_Delete(result);
        return;
    }
    view = im_mcp_resource_view(r->view, sc);
    /* jsonw, like every tool result: numbers that read back exactly. */
    im_jw_init(&w);
    bad = view == NULL ? 0 : im_jw_cjson(&w, view) != 0;
    text = view != NULL && !bad ? im_jw_take(&w, NULL) : NULL;
    im_jw_free(&w);
    cJSON_Delete(view);
    cJSON_Delete(parsed);
    cJSON_Delete(result);
    if (text == NULL) {
        send_error(m, &o, JSONRPC_INTERNAL_ERROR,
                   bad ? "Internal error: the resource's view is not valid JSON" : "Out of memory",
                   NULL);
        return;
    }
    res = cJSON_CreateObject();
    contents = cJSON_AddArrayToObject(res, "contents");
    item = cJSON_CreateObject();
    cJSON_AddStringToObject(item, "uri", r->uri);
    cJSON_AddStringToObject(item, "mimeType", "application/json");
    cJSON_AddStringToObject(item, "text", text);
    cJSON_AddItemToArray(contents, item);
    free(text);
    send_result_ex(m, &o, res, READ_TTL_MS, "private");
}

/* An input_required result (2026-07-28) carrying the question q
 * ({id, message}); the client retries the call with the answer. */
static void send_input_required(im_mcp *m, const mcp_out *o, const cJSON *q) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(q, "id");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(q, "message");
    cJSON *res = cJSON_CreateObject(), *reqs, *one, *meta;
    cJSON_AddStringToObject(res, "resultType", "input_required");
    reqs = cJSON_AddObjectToObject(res, "inputRequests");
    one = cJSON_AddObjectToObject(reqs, CONFIRM_KEY);
    cJSON_AddStringToObject(one, "method", "elicitation/create");
    cJSON_AddItemToObject(one, "params",
                          confirm_params(cJSON_IsString(msg) ? msg->valuestring : ""));
    cJSON_AddStringToObject(res, "requestState", cJSON_IsString(id) ? id->valuestring : "");
    meta = cJSON_AddObjectToObject(res, "_meta");
    cJSON_AddItemToObject(meta, META_SERVER_INFO, server_info());
    send_body(m, o, "result", res);
    cJSON_Delete(res);
}

static void call_done_cb(void *ud, cJSON *result) {
    mcp_req *r = ud;
    im_mcp *m = r->m;
    /* Unlinked first: the request no longer holds a log level while its
     * answer is written. */
    req_unlink(m, r);
    if (r->kind == REQ_READ) {
        read_done(r, result);
    } else {
        mcp_out o = {r->id, r->batch, r->modern};
        cJSON *q = cJSON_DetachItemFromObjectCaseSensitive(result, IM_TOOLS_INPUT_REQUIRED);
        if (q != NULL && r->modern) {
            send_input_required(m, &o, q);
            cJSON_Delete(result);
        } else {
            send_result(m, &o, result);
        }
        cJSON_Delete(q);
    }
    r->done = 1;
    if (!r->in_start)
        req_free(r);
}

/* Runs tool with args (not owned) for a request answered when it is done. */
static void start_call(im_mcp *m, const mcp_out *o, const cJSON *id_json, int log_level,
                       const char *tool, const cJSON *args, int kind, im_mcp_view view,
                       const char *uri, const im_tools_call_opts *topts) {
    mcp_req *r;
    char msg[160];

    if (m->inflight >= m->o.max_inflight) {
        snprintf(msg, sizeof msg, "Too many requests in flight (limit %zu); retry shortly",
                 m->o.max_inflight);
        send_error(m, o, MCP_SERVER_BUSY, msg, NULL);
        return;
    }
    r = calloc(1, sizeof *r);
    if (r == NULL || (r->id = strdup(o->id)) == NULL ||
        (uri != NULL && (r->uri = strdup(uri)) == NULL)) {
        if (r)
            req_free(r);
        send_error(m, o, JSONRPC_INTERNAL_ERROR, "Out of memory", NULL);
        return;
    }
    r->m = m;
    r->id_json = cJSON_Duplicate(id_json, 1);
    r->batch = o->batch;
    r->modern = o->modern;
    r->log_level = log_level;
    r->kind = kind;
    r->view = view;
    r->next = m->reqs;
    if (m->reqs)
        m->reqs->prev = r;
    m->reqs = r;
    m->inflight++;
    r->in_start = 1;
    if (im_tools_call_ex(m->o.tools, tool, args, topts, call_done_cb, r, &r->call) != 0) {
        /* Cannot happen after im_tools_has; answer anyway. */
        req_unlink(m, r);
        send_error(m, o, JSONRPC_INVALID_PARAMS, "Unknown tool", NULL);
        req_free(r);
        return;
    }
    r->in_start = 0;
    if (r->done)
        req_free(r);
}

static void do_tools_call(im_mcp *m, const mcp_out *o, const cJSON *id_json, int log_level,
                          const cJSON *params) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(params, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(params, "arguments");
    char msg[256], q[101];

    if (!cJSON_IsString(name)) {
        send_error(m, o, JSONRPC_INVALID_PARAMS, "tools/call needs params.name (a string)", NULL);
        return;
    }
    if (args != NULL && !cJSON_IsObject(args) && !cJSON_IsNull(args)) {
        send_error(m, o, JSONRPC_INVALID_PARAMS, "tools/call params.arguments must be an object",
                   NULL);
        return;
    }
    if (!im_tools_has(m->o.tools, name->valuestring)) {
        snprintf(msg, sizeof msg, "Unknown tool: %s", QUOTE(q, name->valuestring));
        send_error(m, o, JSONRPC_INVALID_PARAMS, msg, NULL);
        return;
    }
    {
        /* How place_order may reach a human: a request to the client in
         * the legacy era, the call's own result in 2026-07-28; nothing
         * for a client without form elicitation. */
        im_tools_call_opts topts;
        im_confirmer conf;
        memset(&topts, 0, sizeof topts);
        memset(&conf, 0, sizeof conf);
        conf.ud = m;
        if (o->modern) {
            const cJSON *meta = cJSON_GetObjectItemCaseSensitive(params, "_meta");
            const cJSON *caps = cJSON_GetObjectItemCaseSensitive(meta, META_CLIENT_CAPS);
            const cJSON *el = cJSON_GetObjectItemCaseSensitive(caps, "elicitation");
            const cJSON *state = cJSON_GetObjectItemCaseSensitive(params, "requestState");
            if (cJSON_IsObject(el) &&
                (el->child == NULL || cJSON_GetObjectItemCaseSensitive(el, "form"))) {
                conf.ask = ask_input;
                topts.confirmer = &conf;
            }
            if (cJSON_IsString(state)) {
                const cJSON *resp = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(params, "inputResponses"), CONFIRM_KEY);
                const cJSON *result = cJSON_GetObjectItemCaseSensitive(resp, "result");
                topts.request_state = state->valuestring;
                topts.answer = cJSON_IsObject(result) ? (int)confirm_answer_of(result)
                               : resp == NULL         ? (int)IM_CONFIRM_CANCEL
                                                      : (int)IM_CONFIRM_FAILED;
            }
        } else if (m->client_elicit) {
            conf.ask = ask_elicit;
            topts.confirmer = &conf;
        }
        start_call(m, o, id_json, log_level, name->valuestring,
                   cJSON_IsObject(args) ? args : NULL, REQ_TOOL, IM_MCP_VIEW_WHOLE, NULL, &topts);
    }
}

static void do_resources_read(im_mcp *m, const mcp_out *o, const cJSON *id_json, int log_level,
                              const cJSON *params) {
    const cJSON *uri = cJSON_GetObjectItemCaseSensitive(params, "uri");
    const char *tool = NULL;
    im_mcp_view view = IM_MCP_VIEW_WHOLE;
    cJSON *args = NULL, *data;
    char msg[200], q[121];

    if (!cJSON_IsString(uri)) {
        send_error(m, o, JSONRPC_INVALID_PARAMS, "resources/read needs params.uri (a string)",
                   NULL);
        return;
    }
    if (im_mcp_resource_lookup(uri->valuestring, &tool, &view, &args) != 0 ||
        !im_tools_has(m->o.tools, tool)) {
        cJSON_Delete(args);
        snprintf(msg, sizeof msg, "Resource not found: %s", QUOTE(q, uri->valuestring));
        data = cJSON_CreateObject();
        cJSON_AddStringToObject(data, "uri", uri->valuestring);
        /* -32002 in the legacy era; 2026-07-28 made it -32602. */
        send_error(m, o, o->modern ? JSONRPC_INVALID_PARAMS : MCP_RESOURCE_NOT_FOUND, msg, data);
        return;
    }
    start_call(m, o, id_json, log_level, tool, args, REQ_READ, view, uri->valuestring, NULL);
    cJSON_Delete(args);
}

static void do_prompts_get(im_mcp *m, const mcp_out *o, const cJSON *params) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(params, "name");
    char err[200];
    cJSON *res;
    if (!cJSON_IsString(name)) {
        send_error(m, o, JSONRPC_INVALID_PARAMS, "prompts/get needs params.name (a string)", NULL);
        return;
    }
    res = im_mcp_prompt_get(name->valuestring,
                            cJSON_GetObjectItemCaseSensitive(params, "arguments"), err,
                            sizeof err);
    if (res == NULL) {
        send_error(m, o, JSONRPC_INVALID_PARAMS, err, NULL);
        return;
    }
    send_result(m, o, res);
}

static void do_set_level(im_mcp *m, const mcp_out *o, const cJSON *params) {
    const cJSON *lv = cJSON_GetObjectItemCaseSensitive(params, "level");
    int level = cJSON_IsString(lv) ? im_mcp_log_level_parse(lv->valuestring) : IM_MCP_LOG_OFF;
    if (level == IM_MCP_LOG_OFF) {
        send_error(m, o, JSONRPC_INVALID_PARAMS,
                   "Invalid log level: use debug, info, notice, warning, error, critical, alert "
                   "or emergency",
                   NULL);
        return;
    }
    m->log_level = level;
    im_debug("client log level: %s", im_mcp_log_level_name(level));
    send_result(m, o, cJSON_CreateObject());
}

static void not_found(im_mcp *m, const mcp_out *o, const char *method) {
    char msg[200], q[121];
    snprintf(msg, sizeof msg, "Method not found: %s", QUOTE(q, method));
    send_error(m, o, JSONRPC_METHOD_NOT_FOUND, msg, NULL);
}

/* The methods both eras share. Returns 0 when method is not one of them. */
static int dispatch_common(im_mcp *m, const mcp_out *o, const cJSON *id_json, int log_level,
                           const char *method, const cJSON *params) {
    if (strcmp(method, "tools/list") == 0) {
        if (no_cursor(m, o, params, "tool"))
            send_list(m, o, "tools", cJSON_Duplicate(im_tools_list(m->o.tools), 1));
    } else if (strcmp(method, "tools/call") == 0) {
        do_tools_call(m, o, id_json, log_level, params);
    } else if (strcmp(method, "resources/list") == 0) {
        if (no_cursor(m, o, params, "resource"))
            send_list(m, o, "resources", im_mcp_resources());
    } else if (strcmp(method, "resources/templates/list") == 0) {
        if (no_cursor(m, o, params, "resource template"))
            send_list(m, o, "resourceTemplates", im_mcp_resource_templates());
    } else if (strcmp(method, "resources/read") == 0) {
        do_resources_read(m, o, id_json, log_level, params);
    } else if (strcmp(method, "prompts/list") == 0) {
        if (no_cursor(m, o, params, "prompt"))
            send_list(m, o, "prompts", im_mcp_prompts());
    } else if (strcmp(method, "prompts/get") == 0) {
        do_prompts_get(m, o, params);
    } else {
        return 0;
    }
    return 1;
}

static void dispatch_legacy(im_mcp *m, const mcp_out *o, const cJSON *id_json,
                            const char *method, const cJSON *params) {
    if (strcmp(method, "initialize") == 0)
        do_initialize(m, o, params);
    else if (strcmp(method, "ping") == 0)
        send_result(m, o, cJSON_CreateObject());
    else if (strcmp(method, "logging/setLevel") == 0)
        do_set_level(m, o, params);
    else if (!dispatch_common(m, o, id_json, IM_MCP_LOG_OFF, method, params))
        not_found(m, o, method);
}

/* 2026-07-28: stateless; no initialize, ping or logging/setLevel. */
static void dispatch_modern(im_mcp *m, const mcp_out *o, const cJSON *id_json, int log_level,
                            const char *method, const cJSON *params) {
    if (strcmp(method, "server/discover") == 0)
        do_discover(m, o);
    else if (!dispatch_common(m, o, id_json, log_level, method, params))
        not_found(m, o, method);
}

/* Reads the era of a request from params._meta. Returns 1 for 2026-07-28
 * (with the request's log level in *log_level), 0 for the legacy rules, or
 * -1 after answering an unsupported version (-32022) or a bad log level. */
static int request_era(im_mcp *m, const mcp_out *o, const cJSON *params, int *log_level) {
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(params, "_meta");
    const cJSON *pv, *lv;
    cJSON *data, *sup;
    char msg[200], q[61];

    *log_level = IM_MCP_LOG_OFF;
    if (!cJSON_IsObject(meta) || (pv = cJSON_GetObjectItemCaseSensitive(meta, META_VERSION)) == NULL)
        return 0;
    if (cJSON_IsString(pv)) {
        for (size_t i = 0; i < IM_ARRAY_SIZE(modern_versions); i++)
            if (strcmp(pv->valuestring, modern_versions[i]) == 0)
                goto modern;
        /* A handshake version named per request: the legacy rules apply. */
        for (size_t i = 0; i < IM_ARRAY_SIZE(supported_versions); i++)
            if (strcmp(pv->valuestring, supported_versions[i]) == 0)
                return 0;
    }
    data = cJSON_CreateObject();
    sup = cJSON_AddArrayToObject(data, "supported");
    for (size_t i = 0; i < IM_ARRAY_SIZE(modern_versions); i++)
        cJSON_AddItemToArray(sup, cJSON_CreateString(modern_versions[i]));
    cJSON_AddItemToObject(data, "requested", cJSON_Duplicate(pv, 1));
    if (cJSON_IsString(pv))
        snprintf(msg, sizeof msg, "Unsupported protocol version: %s (supported: %s)",
                 QUOTE(q, pv->valuestring), IM_MCP_MODERN_VERSION);
    else
        snprintf(msg, sizeof msg, "Unsupported protocol version (supported: %s)",
                 IM_MCP_MODERN_VERSION);
    send_error(m, o, MCP_UNSUPPORTED_VERSION, msg, data);
    return -1;
modern:
    lv = cJSON_GetObjectItemCaseSensitive(meta, META_LOG_LEVEL);
    if (lv != NULL && !cJSON_IsNull(lv)) {
        *log_level = cJSON_IsString(lv) ? im_mcp_log_level_parse(lv->valuestring)
                                        : IM_MCP_LOG_OFF;
        if (*log_level == IM_MCP_LOG_OFF) {
            send_error(m, o, JSONRPC_INVALID_PARAMS,
                       "Invalid _meta log level: use debug, info, notice, warning, error, "
                       "critical, alert or emergency",
                       NULL);
            return -1;
        }
    }
    return 1;
}

static void dispatch(im_mcp *m, const mcp_out *o, const cJSON *id_json, const char *method,
                     const cJSON *params) {
    int log_level;
    int era = request_era(m, o, params, &log_level);
    if (era < 0)
        return;
    if (era == 1) {
        mcp_out mo = *o;
        mo.modern = 1;
        dispatch_modern(m, &mo, id_json, log_level, method, params);
    } else {
        dispatch_legacy(m, o, id_json, method, params);
    }
}

/* Abandons the request named by params.requestId: no response is sent
 * (its batch slot, if any, is settled empty). Unknown ids are ignored. */
static void do_cancelled(im_mcp *m, const cJSON *params) {
    const cJSON *rid = cJSON_GetObjectItemCaseSensitive(params, "requestId");
    for (mcp_req *r = m->reqs; rid && r; r = r->next) {
        if (r->id_json && cJSON_Compare(r->id_json, rid, 1)) {
            im_info("request %s cancelled by the client", r->id);
            req_unlink(m, r);
            im_tools_abandon(r->call);
            if (r->batch)
                batch_release(m, r->batch);
            req_free(r);
            return;
        }
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

/* Handles one parsed message whose text is line[0..len). With a batch, the
 * message's response (or its absence) settles one owed slot of it. */
static void handle_message(im_mcp *m, const cJSON *msg, const char *line, size_t len,
                           mcp_batch *b) {
    const cJSON *id, *method, *params, *jv;
    char *rid = NULL;
    mcp_out o = {NULL, b, 0};
    int id_bad = 0;

    if (!cJSON_IsObject(msg)) {
        send_null_error(m, b, JSONRPC_INVALID_REQUEST, "Invalid Request: expected a JSON object");
        return;
    }
    /* The four members in one walk, each the first of its name as
     * cJSON_GetObjectItemCaseSensitive finds it (four lookups were a
     * tenth of a request's parsing). */
    id = method = params = jv = NULL;
    for (const cJSON *e = msg->child; e != NULL; e = e->next) {
        const char *k = e->string, *name = NULL;
        const cJSON **slot = NULL;
        switch (k != NULL ? k[0] : 0) {
        case 'i': slot = &id, name = "id"; break;
        case 'm': slot = &method, name = "method"; break;
        case 'p': slot = &params, name = "params"; break;
        case 'j': slot = &jv, name = "jsonrpc"; break;
        }
        if (slot != NULL && *slot == NULL && strcmp(k, name) == 0)
            *slot = e;
    }

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
    /* cJSON reads numbers like 01 or 1. that JSON forbids; echoing such an
     * id would put invalid JSON on stdout. */
    if (rid != NULL && cJSON_IsNumber(id) && !json_number_ok(rid)) {
        free(rid);
        send_null_error(m, b, JSONRPC_PARSE_ERROR, "Parse error: the id is not a valid JSON number");
        return;
    }
    o.id = rid ? rid : "null";

    if (method == NULL && id != NULL &&
        (cJSON_GetObjectItemCaseSensitive(msg, "result") ||
         cJSON_GetObjectItemCaseSensitive(msg, "error"))) {
        /* A response to a request of ours (an elicitation). */
        on_client_response(m, id, msg);
        if (b)
            batch_release(m, b);
    } else if (!cJSON_IsString(jv) || strcmp(jv->valuestring, "2.0") != 0) {
        send_error(m, &o, JSONRPC_INVALID_REQUEST, "Invalid Request: \"jsonrpc\" must be \"2.0\"",
                   NULL);
    } else if (!cJSON_IsString(method)) {
        send_error(m, &o, JSONRPC_INVALID_REQUEST, "Invalid Request: \"method\" must be a string",
                   NULL);
    } else if (params != NULL && !cJSON_IsObject(params) && !cJSON_IsArray(params)) {
        send_error(m, &o, JSONRPC_INVALID_REQUEST, "Invalid Request: \"params\" must be an object",
                   NULL);
    } else if (id == NULL) {
        notification(m, method->valuestring, params);
        if (b)
            batch_release(m, b);
    } else if (rid == NULL) {
        send_null_error(m, b, JSONRPC_INVALID_REQUEST,
                        "Invalid Request: \"id\" must be a string or an integer");
    } else {
        dispatch(m, &o, id, method->valuestring, params);
    }
    free(rid);
}

/* A batch: each element is handled as a message of its own, and the
 * responses leave together as one array once every one is in. */
static void handle_batch(im_mcp *m, const cJSON *arr, const char *line, size_t len) {
    const char *p = line, *end = line + len;
    const cJSON *el;
    mcp_batch *b;

    if (cJSON_GetArraySize(arr) == 0) {
        send_null_error(m, NULL, JSONRPC_INVALID_REQUEST, "Invalid Request: an empty batch");
        return;
    }
    b = calloc(1, sizeof *b);
    if (b == NULL) {
        send_null_error(m, NULL, JSONRPC_INTERNAL_ERROR, "Out of memory");
        return;
    }
    b->pending = 1;   /* held while the elements are read */
    p = skip_ws(p, end);
    if (p < end && *p == '[')
        p++;
    cJSON_ArrayForEach(el, arr) {
        const char *v = skip_ws(p, end), *ve = skip_value(v, end);
        b->pending++;
        handle_message(m, el, v, (size_t)(ve - v), b);
        p = skip_ws(ve, end);
        if (p < end && *p == ',')
            p++;
    }
    batch_release(m, b);
}

static int batches_allowed(const im_mcp *m) { return strcmp(m->version, "2025-03-26") == 0; }

/* 1 when the text from p to end is only JSON whitespace. */
static int only_ws(const char *p, const char *end) {
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            return 0;
    return 1;
}

void im_mcp_handle_line(im_mcp *m, const char *line, size_t len) {
    cJSON *msg;
    const char *why, *end = NULL;

    /* Blank lines between messages are harmless; skip them. */
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
        i++;
    if (i == len)
        return;
    /* What cJSON would accept but misread: NULs, bad UTF-8. */
    if (im_rpc_line_check(line, len, &why) != 0) {
        send_null_error(m, NULL, JSONRPC_PARSE_ERROR, why);
        return;
    }
    msg = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (msg == NULL) {
        send_null_error(m, NULL, JSONRPC_PARSE_ERROR, "Parse error: the line is not valid JSON");
        return;
    }
    /* One message per line: text after the value is not ignored. */
    if (end == NULL || !only_ws(end, line + len)) {
        cJSON_Delete(msg);
        send_null_error(m, NULL, JSONRPC_PARSE_ERROR,
                        "Parse error: text follows the JSON value (one message per line)");
        return;
    }
    if (cJSON_IsArray(msg)) {
        if (batches_allowed(m))
            handle_batch(m, msg, line, len);
        else
            send_null_error(m, NULL, JSONRPC_INVALID_REQUEST,
                            "Invalid Request: JSON-RPC batches are not supported in this "
                            "protocol version");
    } else {
        handle_message(m, msg, line, len, NULL);
    }
    cJSON_Delete(msg);
}

void im_mcp_line_too_long(im_mcp *m, size_t len) {
    char msg[160];
    snprintf(msg, sizeof msg, "Invalid Request: message of %zu bytes exceeds the line limit", len);
    send_null_error(m, NULL, JSONRPC_INVALID_REQUEST, msg);
}
