/* fuzz_mcp.c: libFuzzer target for the JSON-RPC dispatcher (mcp.h) on the
 * whole simulator-backed stack (app.h), built once. Each input is what a
 * client writes to stdin: it goes through the framer as in serve.c, every
 * line into im_mcp_handle_line, then the loop runs until no call is in
 * flight (bounded). Every message the server sends must be one JSON
 * object or array with no newline inside; anything else aborts.
 * The stack is fuzz_stack.h's. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fuzz_stack.h"
#include "mcp.h"
#include "rpc.h"

/* Loop turns and milliseconds one input may take to settle. */
#define FUZZ_MAX_TURNS 10000
#define FUZZ_MAX_MS 2000

static uv_loop_t fz_loop;
static im_app fz_app;
static im_mcp *fz_mcp;

static void fz_send(void *ud, const char *json, size_t len) {
    cJSON *v;
    (void)ud;
    if (memchr(json, '\n', len) != NULL) {
        fprintf(stderr, "fuzz_mcp: a message holds a newline: %.*s\n", (int)len, json);
        abort();
    }
    v = cJSON_ParseWithLength(json, len);
    if (v == NULL || !(cJSON_IsObject(v) || cJSON_IsArray(v))) {
        fprintf(stderr, "fuzz_mcp: the server sent what is not a JSON message: %.*s\n",
                (int)len, json);
        abort();
    }
    cJSON_Delete(v);
}

static void fz_on_line(void *ud, const char *line, size_t len) {
    (void)ud;
    im_mcp_handle_line(fz_mcp, line, len);
}

static void fz_on_overflow(void *ud, size_t len) {
    (void)ud;
    im_mcp_line_too_long(fz_mcp, len);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    im_mcp_opts mo;

    (void)argc;
    (void)argv;
    fz_stack_init(&fz_loop, &fz_app);
    memset(&mo, 0, sizeof mo);
    mo.tools = fz_app.tools;
    mo.session = fz_app.session;
    mo.send = fz_send;
    if (im_mcp_new(&mo, &fz_mcp) != 0) {
        fprintf(stderr, "fuzz_mcp: im_mcp_new failed\n");
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    im_rpc_framer f;
    uint64_t start;

    im_rpc_framer_init(&f, fz_app.cfg.max_line_bytes);
    if (im_rpc_framer_feed(&f, (const char *)data, size, fz_on_line, fz_on_overflow, NULL) != 0)
        abort();
    im_rpc_framer_finish(&f, fz_on_line, fz_on_overflow, NULL);
    im_rpc_framer_free(&f);

    uv_update_time(&fz_loop);
    start = uv_now(&fz_loop);
    for (int i = 0; i < FUZZ_MAX_TURNS && im_mcp_inflight(fz_mcp) > 0; i++) {
        uv_run(&fz_loop, UV_RUN_ONCE);
        if (uv_now(&fz_loop) - start > FUZZ_MAX_MS)
            break;
    }
    return 0;
}
