/* policy.h: operator-scriptable Lua risk policies, the second half of the
 * order gate. Provides loading of the *.lua files in policies/ (one state per
 * file, sorted by name, fail closed on any broken file), the read-only
 * per-call snapshot a policy sees (`order`, `ctx`), evaluation of every
 * policy within its instruction, memory and wall-clock budgets, and the
 * mapping of each verdict onto risk.h reasons. Policies can only tighten:
 * they append rejections to an im_risk_result and never clear one.
 *
 * The contract a policy file follows is in DESIGN.md ("Shapes") and
 * policies/README.md. Uses script.h (the sandbox), script_json.h (params),
 * risk.h (results), broker.h (order and market types), config.h (limits),
 * clock.h (New York calendar) and libsodium (the policy-set hash). */
#ifndef IM_POLICY_H
#define IM_POLICY_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "broker.h"
#include "config.h"
#include "risk.h"

typedef struct im_policies im_policies;

typedef struct im_policies_opts {
    size_t mem_limit;        /* per policy state; 0 = 4 MiB */
    long instr_budget;       /* per check (and per load); 0 = 1,000,000 */
    double deadline_ms;      /* per check (and per load); 0 = 250 */
} im_policies_opts;

/* One snapshot for one decision; everything read-only. The caller keeps
 * every pointer valid for the duration of im_policies_check. */
typedef struct im_policy_input {
    const im_order *order;
    int stage;                     /* IM_RISK_PREVIEW or IM_RISK_PLACE (risk.h) */
    double reference_price, notional;
    int reduces_position;          /* 1 when the order shrinks |position| */
    const im_quote *quote;         /* may be NULL */
    double position_qty, position_avg_cost;
    const im_account *account;     /* may be NULL */
    const im_order_info *open_orders; size_t nopen;
    int orders_today;
    double notional_today;         /* submitted today */
    double realized_pnl_today;
    const im_execution *fills;     /* today's executions, oldest first; may be NULL */
    size_t nfills;
    const im_limits *limits;       /* may be NULL (ctx.limits is then nil) */
    double now;                    /* injected clock, epoch seconds */
} im_policy_input;

/* Longest policy name: 32 characters, so that the default reason code
 * "POLICY_" .. upper(name) fits IM_RISK_CODE_MAX. */
#define IM_POLICY_NAME_MAX 32
/* Longest description a policy may declare, in bytes. */
#define IM_POLICY_DESC_MAX 1024
/* Most policy files loaded from one folder. */
#define IM_POLICIES_MAX 64
/* Largest policy file, in bytes. */
#define IM_POLICY_FILE_MAX (256 * 1024)

/* Loads every *.lua in dir (names not starting with '.'), sorted bytewise
 * by file name, each into its own sandboxed state. Each file must return
 * {name = string, description = string, params = table (optional),
 * check = function}. A missing dir or an empty dir gives zero policies
 * (not an error). Any broken file is an error naming the file: returns a
 * negative IM_E* code with a sentence in err and leaves *out NULL (fail
 * closed at start-up). On success *out is heap memory; free with
 * im_policies_free. */
int im_policies_load(const char *dir, const im_policies_opts *o, im_policies **out, char *err,
                     size_t errlen);
/* Loads one file as a set of one policy (tests, `policy` test bindings).
 * Same contract as im_policies_load; a missing file is an error. */
int im_policies_load_file(const char *path, const im_policies_opts *o, im_policies **out,
                          char *err, size_t errlen);
void im_policies_free(im_policies *p);

size_t im_policies_count(const im_policies *p);
/* Name, description, file name (e.g. "market_hours.lua") and params (as
 * cJSON; owned by p, the caller must not free) of the i-th policy, for
 * get_status and `policy check`. NULL when i is out of range. */
const char *im_policies_name(const im_policies *p, size_t i);
const char *im_policies_description(const im_policies *p, size_t i);
const char *im_policies_file(const im_policies *p, size_t i);
const cJSON *im_policies_params(const im_policies *p, size_t i);
/* BLAKE2b (crypto_generichash, 32 bytes) in hex of the i-th file's source. */
const char *im_policies_file_hash(const im_policies *p, size_t i);
/* The hash (hex) over all loaded policy sources in load order, each framed
 * by its file name and length, for audit records. Zero policies have a
 * hash too (of the empty set). */
const char *im_policies_hash(const im_policies *p);

/* What one policy decided. */
typedef enum im_policy_decision {
    IM_POLICY_ALLOW = 1,     /* true, nil or {decision = "allow"} */
    IM_POLICY_DENY,          /* false [, reason] or {decision = "deny"} */
    IM_POLICY_APPROVAL,      /* {decision = "require_approval"} */
    IM_POLICY_ERROR,         /* failed: fail closed, counts as a deny */
} im_policy_decision;

typedef struct im_policy_verdict {
    im_policy_decision decision;
    char code[IM_RISK_CODE_MAX];     /* "POLICY_..." for deny, approval and error; "" for allow */
    char reason[IM_RISK_TEXT_MAX];   /* the policy's sentence, or the failure; no name prefix */
    /* "ok" when the policy returned a valid verdict; otherwise the failure
     * kind: "runtime", "budget", "memory", "handler" (from script.h),
     * "verdict" (a malformed return value), "state" (the policy's state
     * could not be rebuilt after an earlier trip), "input" (bad input). */
    char kind[16];
} im_policy_verdict;

/* Runs the i-th policy's check(order, ctx) once and describes the outcome
 * in *v without touching any risk result. After a budget or memory
 * failure the policy's state is closed and rebuilt from its source (its
 * upvalues may be half-updated). Returns 0, or IM_EINVAL for bad
 * arguments (then *v, when not NULL, holds an "input" error). */
int im_policies_eval(im_policies *p, size_t i, const im_policy_input *in, im_policy_verdict *v);

/* Runs every policy's check(order, ctx) in load order. Every deny is
 * appended to r with im_risk_reject: code = the policy's code when it
 * returned a table whose code matches ^POLICY_[A-Z0-9_]+$ (and fits), else
 * "POLICY_" .. upper(name); text = "<name>: <reason>". A require_approval
 * is counted in *approvals (set, not added to; approvals may be NULL) and
 * also appended with code POLICY_APPROVAL_REQUIRED, because this server
 * cannot yet ask a human: the caller decides. An error, a budget or memory
 * trip, a wrong return type or a malformed table is appended with code
 * POLICY_ERROR and text naming the policy and the failure kind (fail
 * closed). Never clears r->approved. Returns 0; IM_EINVAL for bad
 * arguments (and then, when r is not NULL, a POLICY_ERROR is appended, so
 * a caller that ignores the code still rejects). */
int im_policies_check(im_policies *p, const im_policy_input *in, im_risk_result *r,
                      int *approvals);

/* `ibkr-mcp policy check [DIR]`: loads DIR (NULL or "": the installed or
 * source-tree policies/ folder, found with im_app_find_dir), prints each
 * policy with its description and params to stdout, and returns the exit
 * code: 0 when every policy loads, 1 when one is broken (the error goes
 * to stderr). An interactive mode: its stdout is the user's terminal. */
int im_policy_check_cmd(const char *dir);

#endif
