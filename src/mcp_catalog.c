/* mcp_catalog.c: resources, prompts, log levels and event messages
 * (mcp_catalog.h). */
#include "mcp_catalog.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"
#include "text.h"

/* ---- log levels --------------------------------------------------------- */

static const char *const log_levels[] = {"debug", "info",     "notice", "warning",
                                         "error", "critical", "alert",  "emergency"};

int im_mcp_log_level_parse(const char *s) {
    for (size_t i = 0; s != NULL && i < IM_ARRAY_SIZE(log_levels); i++)
        if (strcmp(s, log_levels[i]) == 0)
            return (int)i;
    return IM_MCP_LOG_OFF;
}

const char *im_mcp_log_level_name(int level) {
    if (level < 0 || (size_t)level >= IM_ARRAY_SIZE(log_levels))
        return "info";
    return log_levels[level];
}

/* ---- session events as log data ----------------------------------------- */

/* Adds text that came from the broker or the risk engine, as valid UTF-8. */
static void add_text(cJSON *o, const char *key, const char *text) {
    char buf[1024];
    im_text_copy(buf, sizeof buf, text);
    cJSON_AddStringToObject(o, key, buf);
}

static void add_order(cJSON *o, const im_order *ord) {
    cJSON_AddStringToObject(o, "symbol", ord->symbol);
    cJSON_AddStringToObject(o, "action", im_side_str(ord->side));
    cJSON_AddNumberToObject(o, "quantity", ord->quantity);
    cJSON_AddStringToObject(o, "order_type", im_order_type_str(ord->type));
    if (ord->type == IM_OT_LMT || ord->type == IM_OT_STP_LMT)
        cJSON_AddNumberToObject(o, "limit_price", ord->limit_price);
    if (ord->type == IM_OT_STP || ord->type == IM_OT_STP_LMT)
        cJSON_AddNumberToObject(o, "stop_price", ord->stop_price);
}

static void add_reasons(cJSON *o, const im_risk_result *r) {
    cJSON *a = cJSON_AddArrayToObject(o, "reasons");
    cJSON *c = cJSON_AddArrayToObject(o, "codes");
    for (size_t i = 0; i < r->nreasons && i < IM_RISK_MAX_REASONS; i++) {
        {
            char buf[IM_RISK_TEXT_MAX + 1];
            im_text_copy(buf, sizeof buf, r->reasons[i].text);
            cJSON_AddItemToArray(a, cJSON_CreateString(buf));
        }
        cJSON_AddItemToArray(c, cJSON_CreateString(r->reasons[i].code));
    }
}

static void add_order_info(cJSON *o, const im_order_info *oi) {
    cJSON_AddStringToObject(o, "order_id", oi->order_id);
    add_order(o, &oi->order);
    cJSON_AddStringToObject(o, "status", im_order_status_str(oi->status));
    cJSON_AddNumberToObject(o, "filled", oi->filled);
    cJSON_AddNumberToObject(o, "remaining", oi->remaining);
    if (oi->filled > 0)
        cJSON_AddNumberToObject(o, "avg_fill_price", oi->avg_fill_price);
    if (oi->message[0])
        add_text(o, "broker_message", oi->message);
}

/* A one-line summary first, so a client that shows only text shows
 * something useful; then the figures. */
cJSON *im_mcp_event_data(const im_session_event *ev, int *level) {
    cJSON *d = cJSON_CreateObject();
    char msg[512];
    if (d == NULL)
        return NULL;
    msg[0] = '\0';
    switch (ev->kind) {
    case IM_SEV_PREVIEW:
    case IM_SEV_PLACE_REJECT: {
        const int place = ev->kind == IM_SEV_PLACE_REJECT;
        const int ok = !place && ev->risk && ev->risk->approved;
        if (ev->order == NULL || ev->risk == NULL)
            goto none;
        *level = ok ? IM_MCP_LOG_INFO : IM_MCP_LOG_WARNING;
        snprintf(msg, sizeof msg, "%s %s %.0f %s: %s%s%.300s",
                 place ? "Place" : "Preview", im_side_str(ev->order->side), ev->order->quantity,
                 ev->order->symbol,
                 ok ? "approved" : (place ? "rejected at re-validation" : "rejected by risk"),
                 ok || ev->risk->nreasons == 0 ? "" : " - ",
                 ok || ev->risk->nreasons == 0 ? "" : ev->risk->reasons[0].text);
        cJSON_AddStringToObject(d, "event",
                                ok ? "preview_approved"
                                   : (place ? "place_rejected" : "preview_rejected"));
        add_text(d, "message", msg);
        add_order(d, ev->order);
        if (ev->risk->notional > 0)
            cJSON_AddNumberToObject(d, "notional", ev->risk->notional);
        add_reasons(d, ev->risk);
        return d;
    }
    case IM_SEV_ORDER:
        if (ev->order_info == NULL)
            goto none;
        *level = ev->order_info->status == IM_OS_REJECTED ? IM_MCP_LOG_WARNING : IM_MCP_LOG_INFO;
        snprintf(msg, sizeof msg, "Order %s (%s %.0f %s) is %s", ev->order_info->order_id,
                 im_side_str(ev->order_info->order.side), ev->order_info->order.quantity,
                 ev->order_info->order.symbol, im_order_status_str(ev->order_info->status));
        cJSON_AddStringToObject(d, "event", "order_status");
        add_text(d, "message", msg);
        add_order_info(d, ev->order_info);
        return d;
    case IM_SEV_FILL:
        if (ev->exec == NULL)
            goto none;
        *level = IM_MCP_LOG_NOTICE;
        snprintf(msg, sizeof msg, "Fill: %s %.0f %s at %.4g (order %s)", im_side_str(ev->exec->side),
                 ev->exec->shares, ev->exec->symbol, ev->exec->price, ev->exec->order_id);
        cJSON_AddStringToObject(d, "event", "fill");
        add_text(d, "message", msg);
        cJSON_AddStringToObject(d, "exec_id", ev->exec->exec_id);
        cJSON_AddStringToObject(d, "order_id", ev->exec->order_id);
        cJSON_AddStringToObject(d, "symbol", ev->exec->symbol);
        cJSON_AddStringToObject(d, "action", im_side_str(ev->exec->side));
        cJSON_AddNumberToObject(d, "quantity", ev->exec->shares);
        cJSON_AddNumberToObject(d, "price", ev->exec->price);
        cJSON_AddNumberToObject(d, "commission", ev->exec->commission);
        return d;
    case IM_SEV_CONNECTION:
        *level = ev->connected ? IM_MCP_LOG_NOTICE : IM_MCP_LOG_ERROR;
        snprintf(msg, sizeof msg, "Broker %s%s%.300s", ev->connected ? "connected" : "disconnected",
                 ev->message ? ": " : "", ev->message ? ev->message : "");
        cJSON_AddStringToObject(d, "event", "connection");
        add_text(d, "message", msg);
        cJSON_AddBoolToObject(d, "connected", ev->connected);
        return d;
    case IM_SEV_HALT:
    case IM_SEV_RESUME: {
        const int halt = ev->kind == IM_SEV_HALT;
        *level = halt ? IM_MCP_LOG_CRITICAL : IM_MCP_LOG_NOTICE;
        snprintf(msg, sizeof msg, "%s%s%.300s",
                 halt ? "Trading halted (kill switch engaged)" : "Trading resumed by the operator",
                 ev->message ? ": " : "", ev->message ? ev->message : "");
        cJSON_AddStringToObject(d, "event", halt ? "halt" : "resume");
        add_text(d, "message", msg);
        if (ev->message)
            add_text(d, "reason", ev->message);
        return d;
    }
    }
none:
    cJSON_Delete(d);
    return NULL;
}

/* ---- resources ---------------------------------------------------------- */

#define JSON_MIME "application/json"

static const struct res_def {
    const char *uri, *name, *title, *description, *tool;
    im_mcp_view view;
} resource_defs[] = {
    {"ibkr://status", "status", "Server status",
     "Backend, connection, trading on/off, kill switch, orders today, risk limits and policies "
     "(the get_status tool).",
     "get_status", IM_MCP_VIEW_WHOLE},
    {"ibkr://account", "account", "Account summary",
     "Net liquidation, cash, buying power and P&L of the traded account (get_account_summary).",
     "get_account_summary", IM_MCP_VIEW_WHOLE},
    {"ibkr://positions", "positions", "Positions",
     "Every position with quantity, average cost, market value and P&L (get_positions).",
     "get_positions", IM_MCP_VIEW_WHOLE},
    {"ibkr://orders/open", "open_orders", "Open orders",
     "Working orders with status and fills so far (get_open_orders).", "get_open_orders",
     IM_MCP_VIEW_WHOLE},
    {"ibkr://trades", "trades", "Today's trades",
     "Executions of the trading day: the blotter (get_trades).", "get_trades",
     IM_MCP_VIEW_WHOLE},
    {"ibkr://journal", "journal", "Today's journal",
     "The newest 100 records of today's audit journal: previews and their decisions, redeemed "
     "tokens (hashes only), orders sent and acknowledged, fills, cancels, rejections, halts, "
     "human confirmations, connection events (get_journal).",
     "get_journal", IM_MCP_VIEW_WHOLE},
    {"ibkr://limits", "limits", "Risk limits and policies",
     "The built-in risk limits and operator policies every order is checked against, and "
     "whether trading is enabled or halted.",
     "get_status", IM_MCP_VIEW_LIMITS},
};

#define QUOTE_PREFIX "ibkr://quote/"

cJSON *im_mcp_resources(void) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < IM_ARRAY_SIZE(resource_defs); i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "uri", resource_defs[i].uri);
        cJSON_AddStringToObject(r, "name", resource_defs[i].name);
        cJSON_AddStringToObject(r, "title", resource_defs[i].title);
        cJSON_AddStringToObject(r, "description", resource_defs[i].description);
        cJSON_AddStringToObject(r, "mimeType", JSON_MIME);
        cJSON_AddItemToArray(a, r);
    }
    return a;
}

cJSON *im_mcp_resource_templates(void) {
    cJSON *a = cJSON_CreateArray();
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "uriTemplate", QUOTE_PREFIX "{symbol}");
    cJSON_AddStringToObject(t, "name", "quote");
    cJSON_AddStringToObject(t, "title", "Quote by symbol");
    cJSON_AddStringToObject(t, "description",
                            "A fresh quote (bid, ask, last, sizes, age, delayed or not) for one "
                            "ticker symbol, e.g. ibkr://quote/NVDA (the get_quote tool).");
    cJSON_AddStringToObject(t, "mimeType", JSON_MIME);
    cJSON_AddItemToArray(a, t);
    return a;
}

/* The same rule as get_quote's inputSchema: ^[A-Za-z][A-Za-z0-9.]{0,11}$. */
static int symbol_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 12 || !isalpha((unsigned char)s[0]))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.')
            return 0;
    return 1;
}

int im_mcp_resource_lookup(const char *uri, const char **tool, im_mcp_view *view,
                           cJSON **args) {
    *args = NULL;
    for (size_t i = 0; i < IM_ARRAY_SIZE(resource_defs); i++) {
        if (strcmp(uri, resource_defs[i].uri) == 0) {
            *tool = resource_defs[i].tool;
            *view = resource_defs[i].view;
            return 0;
        }
    }
    if (strncmp(uri, QUOTE_PREFIX, strlen(QUOTE_PREFIX)) == 0 &&
        symbol_ok(uri + strlen(QUOTE_PREFIX))) {
        *tool = "get_quote";
        *view = IM_MCP_VIEW_WHOLE;
        *args = cJSON_CreateObject();
        cJSON_AddStringToObject(*args, "symbol", uri + strlen(QUOTE_PREFIX));
        return 0;
    }
    return -1;
}

cJSON *im_mcp_resource_view(im_mcp_view view, const cJSON *structured) {
    static const char *const keep[] = {"limits",  "policies", "policy_set_hash", "trading_enabled",
                                       "halted", "halt_reason"};
    cJSON *out;
    if (view != IM_MCP_VIEW_LIMITS)
        return cJSON_Duplicate(structured, 1);
    out = cJSON_CreateObject();
    for (size_t i = 0; out && i < IM_ARRAY_SIZE(keep); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(structured, keep[i]);
        if (v)
            cJSON_AddItemToObject(out, keep[i], cJSON_Duplicate(v, 1));
    }
    if (out && !cJSON_GetObjectItemCaseSensitive(out, "policies"))
        cJSON_AddArrayToObject(out, "policies");
    return out;
}

/* ---- prompts ------------------------------------------------------------ */

static void add_arg(cJSON *args, const char *name, const char *desc, int required) {
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "name", name);
    cJSON_AddStringToObject(a, "description", desc);
    cJSON_AddBoolToObject(a, "required", required);
    cJSON_AddItemToArray(args, a);
}

cJSON *im_mcp_prompts(void) {
    cJSON *a = cJSON_CreateArray(), *p, *args;

    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "name", "pre_trade_review");
    cJSON_AddStringToObject(p, "title", "Pre-trade review");
    cJSON_AddStringToObject(p, "description",
                            "Walks through status, quote, position and a risk-checked preview "
                            "before an order, and places it only after the human agrees.");
    args = cJSON_AddArrayToObject(p, "arguments");
    add_arg(args, "symbol", "Ticker symbol, e.g. NVDA", 1);
    add_arg(args, "action", "BUY or SELL", 1);
    add_arg(args, "quantity", "Whole shares, e.g. 10", 1);
    cJSON_AddItemToArray(a, p);

    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "name", "portfolio_summary");
    cJSON_AddStringToObject(p, "title", "Portfolio summary");
    cJSON_AddStringToObject(p, "description",
                            "Summarises the account, positions, open orders, today's trades and "
                            "the risk headroom, without trading.");
    cJSON_AddArrayToObject(p, "arguments");
    cJSON_AddItemToArray(a, p);
    return a;
}

/* A string argument, or NULL (with err) when it is missing or not a string. */
static const char *prompt_arg(const cJSON *args, const char *name, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(args, name);
    if (v == NULL || cJSON_IsNull(v)) {
        snprintf(err, errlen, "Missing required argument: %s", name);
        return NULL;
    }
    if (!cJSON_IsString(v)) {
        snprintf(err, errlen, "Argument %s must be a string", name);
        return NULL;
    }
    return v->valuestring;
}

static cJSON *prompt_result(const char *description, const char *text) {
    cJSON *r = cJSON_CreateObject(), *msgs, *m, *c;
    cJSON_AddStringToObject(r, "description", description);
    msgs = cJSON_AddArrayToObject(r, "messages");
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    c = cJSON_AddObjectToObject(m, "content");
    cJSON_AddStringToObject(c, "type", "text");
    cJSON_AddStringToObject(c, "text", text);
    cJSON_AddItemToArray(msgs, m);
    return r;
}

static cJSON *pre_trade_review(const cJSON *args, char *err, size_t errlen) {
    const char *sym, *act, *qty;
    char symbol[16], action[8], text[2048], desc[128];
    long long q = 0;
    char *end = NULL;

    if ((sym = prompt_arg(args, "symbol", err, errlen)) == NULL ||
        (act = prompt_arg(args, "action", err, errlen)) == NULL ||
        (qty = prompt_arg(args, "quantity", err, errlen)) == NULL)
        return NULL;
    if (!symbol_ok(sym)) {
        snprintf(err, errlen, "Argument symbol must be a ticker such as NVDA (letters, digits, '.')");
        return NULL;
    }
    for (size_t i = 0; i <= strlen(sym); i++)
        symbol[i] = (char)toupper((unsigned char)sym[i]);
    if (strcasecmp(act, "BUY") == 0)
        snprintf(action, sizeof action, "BUY");
    else if (strcasecmp(act, "SELL") == 0)
        snprintf(action, sizeof action, "SELL");
    else {
        snprintf(err, errlen, "Argument action must be BUY or SELL");
        return NULL;
    }
    if (qty[0] >= '0' && qty[0] <= '9')
        q = strtoll(qty, &end, 10);
    if (end == NULL || *end != '\0' || q < 1 || q > 1000000000LL) {
        snprintf(err, errlen, "Argument quantity must be a whole number of shares from 1");
        return NULL;
    }
    snprintf(desc, sizeof desc, "Pre-trade review: %s %lld %s", action, q, symbol);
    snprintf(text, sizeof text,
             "I am considering this order: %s %lld %s. Review it with the ibkr-mcp tools, one "
             "step at a time, and do not skip a step:\n"
             "1. Call get_status. If the kill switch is engaged, the broker is disconnected or "
             "trading is disabled, tell me and stop. Note the risk limits that apply.\n"
             "2. Call get_quote for %s. Report bid, ask, last, the spread and whether the quote "
             "is delayed.\n"
             "3. Call get_positions. Tell me what I hold in %s now and what I would hold after "
             "this order.\n"
             "4. Call preview_order with symbol %s, action %s and quantity %lld (propose a limit "
             "price near the quote unless I gave one). If it is rejected, show me every reason "
             "and stop; suggest a change only if I ask.\n"
             "5. If it is approved, summarise the order, its estimated notional, the risk "
             "figures and when the confirmation token expires, and ask me whether to place it.\n"
             "6. Call place_order with the confirmation_token only if I clearly agree. If I do "
             "not, or the token has expired, do not place anything.\n"
             "7. After placing, check get_open_orders and get_trades and report the outcome.",
             action, q, symbol, symbol, symbol, symbol, action, q);
    return prompt_result(desc, text);
}

static cJSON *portfolio_summary(void) {
    return prompt_result(
        "Portfolio summary",
        "Summarise my Interactive Brokers account with the ibkr-mcp read tools; do not preview "
        "or place any order.\n"
        "1. get_status: backend (simulated or IBKR), paper or live account, connection, whether "
        "trading is enabled or halted, orders today.\n"
        "2. get_account_summary: net liquidation, cash, buying power, realized and unrealized "
        "P&L.\n"
        "3. get_positions: each position with quantity, market value, unrealized P&L and its "
        "share of net liquidation; flag any position near its risk limit.\n"
        "4. get_open_orders and get_trades: what is working and what traded today.\n"
        "Finish with a short table and the main risks you see.");
}

cJSON *im_mcp_prompt_get(const char *name, const cJSON *args, char *err, size_t errlen) {
    if (args != NULL && !cJSON_IsObject(args) && !cJSON_IsNull(args)) {
        snprintf(err, errlen, "prompts/get params.arguments must be an object");
        return NULL;
    }
    if (strcmp(name, "pre_trade_review") == 0)
        return pre_trade_review(cJSON_IsObject(args) ? args : NULL, err, errlen);
    if (strcmp(name, "portfolio_summary") == 0)
        return portfolio_summary();
    char q[101];
    snprintf(err, errlen, "Unknown prompt: %s", (im_text_copy(q, sizeof q, name), q));
    return NULL;
}
