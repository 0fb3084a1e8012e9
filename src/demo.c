/* demo.c: the offline walk-through (demo.h). stdout is the user's
 * terminal in this mode, not a JSON-RPC channel. */
#include "demo.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "app.h"
#include "error.h"
#include "log.h"
#include "mcp.h"

typedef struct demo {
    uv_loop_t loop;
    im_app app;
    im_mcp *mcp;
    cJSON *reply;        /* the last response */
    int next_id;
    int failures;
} demo;

/* The demo's own state directory (mkdtemp), so its journal starts empty
 * and the walk-through is the same on every run; removed at the end. */
static char demo_state_dir[64];

static void demo_remove_state_dir(void) {
    DIR *dir = opendir(demo_state_dir);
    struct dirent *e;
    char p[512];
    if (dir != NULL) {
        while ((e = readdir(dir)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(p, sizeof p, "%s/%s", demo_state_dir, e->d_name);
            unlink(p);
        }
        closedir(dir);
    }
    rmdir(demo_state_dir);
}

/* The demo ignores the caller's environment, except where the tools live,
 * so it shows the documented defaults every time. */
static const char *demo_getenv(const char *name) {
    if (strcmp(name, "IBKR_STATE_DIR") == 0)
        return demo_state_dir;
    if (strcmp(name, "IBKR_TRADING_ENABLED") == 0)
        return "true";
    if (strcmp(name, "IBKR_TOOLS_DIR") == 0)
        return getenv(name);
    if (strcmp(name, "IBKR_LOG_LEVEL") == 0)
        return "warn";
    return NULL;
}

static void demo_send(void *ud, const char *json, size_t len) {
    demo *d = ud;
    cJSON_Delete(d->reply);
    d->reply = cJSON_ParseWithLength(json, len);
}

/* Sends one request and runs the loop until its response arrives. */
static cJSON *demo_request(demo *d, const char *method, cJSON *params) {
    cJSON *req = cJSON_CreateObject();
    char *line;
    cJSON_AddStringToObject(req, "jsonrpc", "2.0");
    cJSON_AddNumberToObject(req, "id", ++d->next_id);
    cJSON_AddStringToObject(req, "method", method);
    if (params)
        cJSON_AddItemToObject(req, "params", params);
    line = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    cJSON_Delete(d->reply);
    d->reply = NULL;
    im_mcp_handle_line(d->mcp, line, strlen(line));
    cJSON_free(line);
    for (int i = 0; d->reply == NULL && i < 100000; i++)
        uv_run(&d->loop, UV_RUN_ONCE);
    return d->reply;
}

static const cJSON *demo_call(demo *d, const char *tool, const char *args_json) {
    cJSON *params = cJSON_CreateObject();
    cJSON_AddStringToObject(params, "name", tool);
    cJSON_AddItemToObject(params, "arguments",
                          args_json ? cJSON_Parse(args_json) : cJSON_CreateObject());
    return demo_request(d, "tools/call", params);
}

/* cJSON indents with tabs and puts a tab after each colon; print two
 * spaces per level and one space after colons instead. Tabs inside string
 * values are escaped by cJSON, so every raw tab is layout. */
static void demo_print(const char *title, const cJSON *v) {
    char *s = cJSON_Print(v);
    printf("=== %s ===\n", title); // stdout-ok
    for (const char *p = s ? s : "(nothing)"; *p; p++) {
        if (*p != '\t')
            putchar(*p); // stdout-ok
        else if (p > s && p[-1] == ':')
            putchar(' '); // stdout-ok
        else
            fputs("  ", stdout);
    }
    printf("\n\n"); // stdout-ok
    cJSON_free(s);
}

/* Prints a tools/call response: the structured result, or the error
 * sentence. Returns the structured result (or NULL). */
static const cJSON *demo_show(demo *d, const char *title, const cJSON *resp, int expect_error) {
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(resp, "result");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(res, "structuredContent");
    int is_error = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "isError"));
    if (is_error || sc == NULL) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(res, "content");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(content, 0), "text");
        cJSON *shown = cJSON_CreateObject();
        cJSON_AddBoolToObject(shown, "isError", 1);
        cJSON_AddStringToObject(shown, "blocked",
                                cJSON_IsString(text) ? text->valuestring : "(no text)");
        demo_print(title, shown);
        cJSON_Delete(shown);
        if (!expect_error) {
            d->failures++;
            fprintf(stderr, "ibkr-mcp demo: step \"%s\" failed unexpectedly\n", title);
        }
        return NULL;
    }
    demo_print(title, sc);
    if (expect_error) {
        d->failures++;
        fprintf(stderr, "ibkr-mcp demo: step \"%s\" should have been refused\n", title);
    }
    return sc;
}

static void demo_steps(demo *d) {
    const cJSON *r, *tok;
    char args[256], token[64] = "";

    r = demo_request(d, "initialize",
                     cJSON_Parse("{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
                                 "\"clientInfo\":{\"name\":\"ibkr-mcp demo\",\"version\":\"1\"}}"));
    {
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(r, "result");
        const cJSON *pv = cJSON_GetObjectItemCaseSensitive(res, "protocolVersion");
        printf("ibkr-mcp demo: an MCP session on the built-in simulator " // stdout-ok
               "(offline, frozen clock)\n");
        printf("initialize -> protocol %s; %zu tools\n\n", // stdout-ok
               cJSON_IsString(pv) ? pv->valuestring : "?", im_tools_count(d->app.tools));
    }
    {
        static const char note[] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
        im_mcp_handle_line(d->mcp, note, sizeof note - 1);
    }

    demo_show(d, "1. Status", demo_call(d, "get_status", NULL), 0);
    demo_show(d, "2. Account summary", demo_call(d, "get_account_summary", NULL), 0);
    demo_show(d, "3. Quote NVDA", demo_call(d, "get_quote", "{\"symbol\":\"NVDA\"}"), 0);
    demo_show(d, "4. Positions (none yet)", demo_call(d, "get_positions", NULL), 0);
    r = demo_show(d, "5. Preview BUY 50 NVDA MKT (risk check)",
                  demo_call(d, "preview_order",
                            "{\"symbol\":\"NVDA\",\"action\":\"BUY\",\"quantity\":50,"
                            "\"order_type\":\"MKT\"}"),
                  0);
    tok = cJSON_GetObjectItemCaseSensitive(r, "confirmation_token");
    if (cJSON_IsString(tok))
        snprintf(token, sizeof token, "%s", tok->valuestring);
    else
        d->failures++;
    snprintf(args, sizeof args, "{\"confirmation_token\":\"%s\"}", token);
    demo_show(d, "6. Place the order with its confirmation token",
              demo_call(d, "place_order", args), 0);
    demo_show(d, "7. Positions", demo_call(d, "get_positions", NULL), 0);
    demo_show(d, "8. Trades (execution blotter)", demo_call(d, "get_trades", NULL), 0);
    r = demo_show(d, "9. Preview BUY 400 TSLA MKT -- expect REJECT (notional and position caps)",
                  demo_call(d, "preview_order",
                            "{\"symbol\":\"TSLA\",\"action\":\"BUY\",\"quantity\":400,"
                            "\"order_type\":\"MKT\"}"),
                  0);
    if (r == NULL || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                         cJSON_GetObjectItemCaseSensitive(r, "risk"), "approved")))
        d->failures++;
    demo_show(d, "10. place_order with a bogus token -- guarded",
              demo_call(d, "place_order", "{\"confirmation_token\":\"deadbeefdeadbeefdeadbeefdeadbeef\"}"),
              1);
    demo_show(d, "11. place_order with the used token again -- guarded, and told what it placed",
              demo_call(d, "place_order", args), 1);
}

int im_demo_run(void) {
    demo *d = calloc(1, sizeof *d);
    im_mcp_opts mo;
    char err[512];
    int rc;

    if (d == NULL)
        return 1;
    snprintf(demo_state_dir, sizeof demo_state_dir, "/tmp/ibkr-mcp-demo-XXXXXX");
    if (mkdtemp(demo_state_dir) == NULL) {
        fprintf(stderr, "ibkr-mcp demo: cannot make a temporary state directory\n");
        free(d);
        return 2;
    }
    uv_loop_init(&d->loop);
    rc = im_app_init(&d->app, &d->loop, demo_getenv, 1, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "ibkr-mcp demo: %s\n", err);
        uv_run(&d->loop, UV_RUN_DEFAULT);
        uv_loop_close(&d->loop);
        demo_remove_state_dir();
        free(d);
        return 2;
    }
    memset(&mo, 0, sizeof mo);
    mo.loop = &d->loop;
    mo.tools = d->app.tools;
    mo.session = d->app.session;
    mo.send = demo_send;
    mo.send_ud = d;
    if (im_mcp_new(&mo, &d->mcp) != 0)
        return 1;
    demo_steps(d);
    im_mcp_free(d->mcp);
    im_app_close(&d->app);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    uv_loop_close(&d->loop);
    demo_remove_state_dir();
    cJSON_Delete(d->reply);
    rc = d->failures;
    free(d);
    if (rc) {
        fprintf(stderr, "ibkr-mcp demo: %d step(s) did not behave as expected\n", rc);
        return 1;
    }
    printf("Demo complete: one order filled through preview -> token -> place; the oversized\n" // stdout-ok
           "order, the bogus token and the replayed token were all refused.\n");
    return 0;
}
