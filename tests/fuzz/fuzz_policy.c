/* fuzz_policy.c: libFuzzer target for the policy loader (policy.h). Each
 * input is the Lua source of one policy file, written to a temporary file
 * and loaded through im_policies_load_file with tiny budgets (64 KiB of
 * memory, 20,000 instructions, 100 ms); a policy that loads is then run
 * once on a fixed BUY order. A refusal must carry a sentence; a verdict
 * must name a decision and a kind. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_stack.h"
#include "policy.h"

static char fz_file[512];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(fz_file, sizeof fz_file, "%s/policy.lua", fz_tmpdir());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    im_policies_opts o = {.mem_limit = 64 * 1024, .instr_budget = 20000, .deadline_ms = 100};
    im_policies *p = NULL;
    im_order order;
    im_quote quote;
    im_policy_input in;
    im_policy_verdict v;
    char err[512];
    FILE *fp;
    int rc;

    fp = fopen(fz_file, "wb");
    if (fp == NULL || fwrite(data, 1, size, fp) != size || fclose(fp) != 0) {
        perror("fuzz_policy: writing the policy file");
        abort();
    }
    err[0] = '\0';
    rc = im_policies_load_file(fz_file, &o, &p, err, sizeof err);
    if (rc != 0) {
        if (p != NULL || err[0] == '\0')
            abort();
        return 0;
    }
    if (p == NULL || im_policies_count(p) != 1)
        abort();

    memset(&order, 0, sizeof order);
    snprintf(order.symbol, sizeof order.symbol, "NVDA");
    order.side = IM_SIDE_BUY;
    order.quantity = 10;
    order.type = IM_OT_MKT;
    order.tif = IM_TIF_DAY;
    memset(&quote, 0, sizeof quote);
    snprintf(quote.symbol, sizeof quote.symbol, "NVDA");
    quote.bid = 99.5;
    quote.ask = 100.5;
    quote.last = 100;
    quote.time = 1.7e9;
    memset(&in, 0, sizeof in);
    in.order = &order;
    in.stage = IM_RISK_PREVIEW;
    in.reference_price = 100;
    in.notional = 1000;
    in.quote = &quote;
    in.now = 1.7e9;
    memset(&v, 0, sizeof v);
    if (im_policies_eval(p, 0, &in, &v) != 0 || v.decision < IM_POLICY_ALLOW ||
        v.decision > IM_POLICY_ERROR || v.kind[0] == '\0')
        abort();
    im_policies_free(p);
    return 0;
}
