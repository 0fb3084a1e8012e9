/* main.c: the command line. Chooses a mode and hands over to it; every
 * mode lives in its own module (serve, demo, luatest, gateway). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "demo.h"
#include "gateway.h"
#include "journal.h"
#include "luatest.h"
#include "mem.h"
#include "policy.h"
#include "repl.h"
#include "serve.h"

static const char usage[] =
    "usage: ibkr-mcp [serve]        MCP over stdio (the default)\n"
    "       ibkr-mcp demo           the offline walk-through on the simulator\n"
    "       ibkr-mcp policy check [DIR]  load and validate the risk policies; print them\n"
    "       ibkr-mcp gateway [--port N] [--seed N]\n"
    "                               the simulator as a fake TWS on 127.0.0.1 (gateway --help)\n"
    "       ibkr-mcp --version | --help\n"
    "\n"
    "Configuration comes from IBKR_* environment variables; see README.md and\n"
    ".env.example. With none set: simulator backend, trading disabled.\n"
    "stdout carries JSON-RPC only in serve mode; logs go to stderr.\n";

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "serve";

    cJSON_Hooks hooks = {im_mem_alloc, im_mem_free};

    (void)im_mem_prefault(IM_MEM_PREFAULT);
    /* Before the first cJSON value: every node and string then goes
     * through the small-block cache, and each is freed the way it came. */
    cJSON_InitHooks(&hooks);
    if (strcmp(mode, "serve") == 0 && argc <= 2)
        return im_serve_run();
    if (strcmp(mode, "demo") == 0 && argc == 2)
        return im_demo_run();
    if (strcmp(mode, "--lua-test") == 0 && argc == 3)
        return im_luatest_run(argv[2]);
    if (strcmp(mode, "policy") == 0 && argc >= 3 && argc <= 4 && strcmp(argv[2], "check") == 0)
        return im_policy_check_cmd(argc == 4 ? argv[3] : getenv("IBKR_POLICY_DIR"));
    if (strcmp(mode, "--version") == 0) {
        fprintf(stdout, "ibkr-mcp %s\n", IM_VERSION);
        return 0;
    }
    if (strcmp(mode, "--help") == 0 || strcmp(mode, "-h") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(mode, "repl") == 0 && argc == 2)
        return im_repl_run();
    if (strcmp(mode, "attach") == 0 && argc <= 3)
        return im_repl_attach(argc == 3 ? argv[2] : NULL);
    if (strcmp(mode, "resume") == 0)
        return im_journal_resume_cmd(argc - 2, argv + 2);
    if (strcmp(mode, "gateway") == 0)
        return im_gateway_run(argc - 1, argv + 1);
    fprintf(stderr, "ibkr-mcp: unknown command '%s'\n%s", mode, usage);
    return 2;
}
