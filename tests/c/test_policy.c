/* test_policy.c: the Lua risk policies (policy.h). Loading (good, empty
 * and missing folders; every kind of broken file), each verdict form,
 * every failure kind with tiny budgets so the suite stays fast, the
 * read-only ctx, the rebuild of a state after a budget or memory trip,
 * determinism, the policy-set hash, stdout hygiene, and the shipped
 * policies at their boundaries (09:29:59 / 09:30:00, 15:59:59 / 16:00:00,
 * weekends, holidays, early closes, both DST changes, exits, GME).
 *
 * Each test writes its policy files into a fresh folder under /tmp and
 * removes it at the end. Uses policy.h, risk.h, config.h, clock.h and
 * app.h (to find the source tree's policies/ folder). */
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "clock.h"
#include "config.h"
#include "error.h"
#include "policy.h"
#include "risk.h"
#include "test.h"

/* Tiny limits for the failure cases: a policy state needs about 40 KB to
 * exist (measured with the shipped policies), so 1 MiB leaves room for
 * ordinary work and trips fast on a bomb; 20,000 instructions is a few
 * hundred microseconds of Lua. */
#define T_BUDGET 20000L
#define T_MEM ((size_t)1 << 20)
#define T_DEADLINE_MS 5000.0

/* ---------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------- */

static char g_dir[64];

static const char *tdir(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/im_policy_XXXXXX");
    ASSERT(mkdtemp(g_dir) != NULL);
    return g_dir;
}

static void put(const char *dir, const char *name, const char *src) {
    char path[512];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    ASSERT(f != NULL);
    ASSERT_EQ(fwrite(src, 1, strlen(src), f), strlen(src));
    ASSERT_EQ(fclose(f), 0);
}

static void rmtree(const char *dir) {
    DIR *dp = opendir(dir);
    struct dirent *de;
    char path[512];

    if (dp == NULL)
        return;
    while ((de = readdir(dp)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(dp);
    rmdir(dir);
}

/* A whole file, heap (free it). */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    ASSERT(f != NULL);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    ASSERT(buf != NULL);
    ASSERT_EQ(fread(buf, 1, (size_t)n, f), n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Replaces the first `from` in s (heap) by `to`; returns new heap text. */
static char *replace(char *s, const char *from, const char *to) {
    char *at = strstr(s, from), *out;
    size_t head;

    ASSERT(at != NULL);
    head = (size_t)(at - s);
    out = malloc(strlen(s) - strlen(from) + strlen(to) + 1);
    ASSERT(out != NULL);
    memcpy(out, s, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    free(s);
    return out;
}

static const char *shipped_dir(void) {
    static char dir[1024];
    ASSERT_EQ(im_app_find_dir("policies", dir, sizeof dir), 0);
    return dir;
}

/* A policy file around a check body. */
static const char *policy_src(const char *name, const char *body) {
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "return {\n"
             "  name = \"%s\",\n"
             "  description = \"a test policy\",\n"
             "  params = { limit = 5, list = { \"a\", \"b\" }, nested = { deep = { x = 1 } } },\n"
             "  check = function(order, ctx)\n%s\n  end,\n"
             "}\n",
             name, body);
    return buf;
}

static im_policies_opts tiny_opts(void) {
    im_policies_opts o;
    memset(&o, 0, sizeof o);
    o.mem_limit = T_MEM;
    o.instr_budget = T_BUDGET;
    o.deadline_ms = T_DEADLINE_MS;
    return o;
}

/* Loads one policy file written from src into a fresh folder. */
static im_policies *load_src(const char *src, const im_policies_opts *o) {
    im_policies *p = NULL;
    char err[512];
    const char *dir = tdir();
    int rc;

    put(dir, "p.lua", src);
    rc = im_policies_load(dir, o, &p, err, sizeof err);
    if (rc != 0)
        im_test_fail(__FILE__, __LINE__, "load failed: %s", err);
    rmtree(dir);
    return p;
}

/* Loads src expecting failure; returns the error text (static). */
static const char *load_fails(const char *name, const char *src, const im_policies_opts *o) {
    static char err[512];
    im_policies *p = NULL;
    const char *dir = tdir();
    int rc;

    put(dir, name, src);
    rc = im_policies_load(dir, o, &p, err, sizeof err);
    rmtree(dir);
    if (rc == 0)
        im_test_fail(__FILE__, __LINE__, "%s loaded but should have failed", name);
    ASSERT(p == NULL);
    ASSERT_CONTAINS(err, name);
    return err;
}

static double ny(const char *iso) {
    double t;
    ASSERT_EQ(im_clock_parse_time(iso, &t), 0);
    return t;
}

/* The input of the demo's order: BUY 50 NVDA MKT DAY at the simulator's
 * start, Tuesday 2025-06-10 10:00 New York time. */
struct fixture {
    im_order order;
    im_quote quote;
    im_account account;
    im_order_info open[2];
    im_config cfg;
    im_policy_input in;
};

static void fixture_init(struct fixture *f) {
    memset(f, 0, sizeof *f);
    snprintf(f->order.symbol, sizeof f->order.symbol, "NVDA");
    f->order.side = IM_SIDE_BUY;
    f->order.quantity = 50;
    f->order.type = IM_OT_MKT;
    f->order.tif = IM_TIF_DAY;
    snprintf(f->quote.symbol, sizeof f->quote.symbol, "NVDA");
    f->quote.bid = 120.00;
    f->quote.ask = 120.10;
    f->quote.last = 120.05;
    f->quote.bid_size = 300;
    f->quote.ask_size = 200;
    f->quote.time = IM_CLOCK_DEFAULT_SIM_START - 2;
    snprintf(f->account.account_id, sizeof f->account.account_id, "DU0000001");
    snprintf(f->account.account_type, sizeof f->account.account_type, "CASH");
    f->account.net_liquidation = 100000;
    f->account.cash = 100000;
    f->account.buying_power = 100000;
    snprintf(f->open[0].order_id, sizeof f->open[0].order_id, "sim-7");
    f->open[0].order = f->order;
    f->open[0].order.type = IM_OT_LMT;
    f->open[0].order.limit_price = 110;
    f->open[0].order.quantity = 10;
    f->open[0].status = IM_OS_SUBMITTED;
    f->open[0].remaining = 10;
    im_config_defaults(&f->cfg);

    f->in.order = &f->order;
    f->in.stage = IM_RISK_PREVIEW;
    f->in.reference_price = 120.10;
    f->in.notional = 50 * 121.30;
    f->in.quote = &f->quote;
    f->in.account = &f->account;
    f->in.open_orders = f->open;
    f->in.nopen = 1;
    f->in.orders_today = 3;
    f->in.notional_today = 4500.5;
    f->in.realized_pnl_today = -12.5;
    f->in.limits = &f->cfg.limits;
    f->in.now = IM_CLOCK_DEFAULT_SIM_START;
}

static im_policy_verdict eval0(im_policies *p, const im_policy_input *in) {
    im_policy_verdict v;
    memset(&v, 0, sizeof v);
    ASSERT_EQ(im_policies_eval(p, 0, in, &v), 0);
    return v;
}

/* Runs src's check once on the demo input; returns the verdict. */
static im_policy_verdict run_src(const char *src, const im_policies_opts *o) {
    struct fixture f;
    im_policies *p = load_src(src, o);
    im_policy_verdict v;

    fixture_init(&f);
    v = eval0(p, &f.in);
    im_policies_free(p);
    return v;
}

static im_policy_verdict run_body(const char *body) {
    im_policies_opts o = tiny_opts();
    return run_src(policy_src("p", body), &o);
}

#define ASSERT_ALLOW(v) ASSERT_EQ((v).decision, IM_POLICY_ALLOW)
#define ASSERT_ERROR_KIND(v, k)                         \
    do {                                                \
        ASSERT_EQ((v).decision, IM_POLICY_ERROR);       \
        ASSERT_STR_EQ((v).code, "POLICY_ERROR");        \
        ASSERT_STR_EQ((v).kind, k);                     \
    } while (0)

/* ---------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------- */

TEST(load_good_dir) {
    const char *dir = tdir();
    im_policies *p = NULL;
    char err[512];
    const cJSON *params;

    put(dir, "b_second.lua", policy_src("second", "return true"));
    put(dir, "a_first.lua", policy_src("first", "return true"));
    put(dir, "README.md", "not a policy");
    put(dir, ".hidden.lua", "this is not Lua");
    put(dir, "notes.lua.txt", "nor this");
    ASSERT_EQ(im_policies_load(dir, NULL, &p, err, sizeof err), 0);
    ASSERT_EQ(im_policies_count(p), 2);
    ASSERT_STR_EQ(im_policies_name(p, 0), "first");     /* sorted by file name */
    ASSERT_STR_EQ(im_policies_file(p, 0), "a_first.lua");
    ASSERT_STR_EQ(im_policies_name(p, 1), "second");
    ASSERT_STR_EQ(im_policies_description(p, 1), "a test policy");
    ASSERT(im_policies_name(p, 2) == NULL);
    params = im_policies_params(p, 0);
    ASSERT(cJSON_IsObject(params));
    ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(params, "limit")->valuedouble, 5);
    ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(params, "list")), 2);
    ASSERT_EQ(strlen(im_policies_hash(p)), 64);
    ASSERT_EQ(strlen(im_policies_file_hash(p, 1)), 64);
    im_policies_free(p);
    rmtree(dir);
}

TEST(load_empty_and_missing_dir) {
    const char *dir = tdir();
    im_policies *p = NULL;
    char err[512], missing[600];
    struct fixture f;
    im_risk_result r;
    int approvals = -1;

    ASSERT_EQ(im_policies_load(dir, NULL, &p, err, sizeof err), 0);
    ASSERT_EQ(im_policies_count(p), 0);
    ASSERT_EQ(strlen(im_policies_hash(p)), 64);
    fixture_init(&f);
    memset(&r, 0, sizeof r);
    r.approved = 1;
    ASSERT_EQ(im_policies_check(p, &f.in, &r, &approvals), 0);
    ASSERT_EQ(r.approved, 1);
    ASSERT_EQ(r.nreasons, 0);
    ASSERT_EQ(approvals, 0);
    im_policies_free(p);

    snprintf(missing, sizeof missing, "%s/does-not-exist", dir);
    p = NULL;
    ASSERT_EQ(im_policies_load(missing, NULL, &p, err, sizeof err), 0);
    ASSERT_EQ(im_policies_count(p), 0);
    im_policies_free(p);
    rmtree(dir);
}

TEST(load_dir_is_a_file) {
    const char *dir = tdir();
    im_policies *p = NULL;
    char err[512], file[600];

    put(dir, "x", "");
    snprintf(file, sizeof file, "%s/x", dir);
    ASSERT(im_policies_load(file, NULL, &p, err, sizeof err) != 0);
    ASSERT(p == NULL);
    ASSERT_CONTAINS(err, file);
    rmtree(dir);
}

TEST(load_broken_files) {
    static const struct {
        const char *src;
        const char *says;
    } cases[] = {
        {"return {", "unexpected symbol"},                                       /* syntax */
        {"\x1bLua\x54\x00\x19\x93\r\n\x1a\n", "binary"},                          /* bytecode */
        {"return 42", "must return a table"},
        {"return nil", "must return a table"},
        {"local x = 1", "must return a table"},
        {"return { name = 'p', description = 'd' }", "check must be a function"},
        {"return { name = 'p', description = 'd', check = 'yes' }", "check must be a function"},
        {"return { description = 'd', check = function() end }", "name must be a string"},
        {"return { name = 'bad name', description = 'd', check = function() end }",
         "name must be"},
        {"return { name = '1st', description = 'd', check = function() end }", "name must be"},
        {"return { name = 'abcdefghijklmnopqrstuvwxyz1234567', description = 'd', "
         "check = function() end }", "name must be"},
        {"return { name = 'p', check = function() end }", "description must be"},
        {"return { name = 'p', description = '', check = function() end }",
         "description must be"},
        {"return { name = 'p', description = 'd', params = 5, check = function() end }",
         "params must be a table"},
        {"return { name = 'p', description = 'd', params = { f = print }, "
         "check = function() end }", "params must be plain data"},
        {"error('broken at load')", "broken at load"},
        {"x = 1", "global"},                                                     /* env */
        {"while true do end", "budget"},
        {"local t = {} for i = 1, 1e6 do t[i] = ('x'):rep(100) .. i end", "memory"},
    };
    im_policies_opts o = tiny_opts();

    o.instr_budget = 2000000; /* so the memory case trips memory, not budget */
    o.deadline_ms = 5000;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *err = load_fails("broken.lua", cases[i].src, &o);
        if (strstr(err, cases[i].says) == NULL)
            im_test_fail(__FILE__, __LINE__, "case %zu: \"%s\" lacks \"%s\"", i, err,
                         cases[i].says);
    }
}

TEST(load_one_broken_file_fails_the_set) {
    const char *dir = tdir();
    im_policies *p = NULL;
    char err[512];

    put(dir, "a.lua", policy_src("a", "return true"));
    put(dir, "b.lua", "return {");
    put(dir, "c.lua", policy_src("c", "return true"));
    ASSERT(im_policies_load(dir, NULL, &p, err, sizeof err) != 0);
    ASSERT(p == NULL);
    ASSERT_CONTAINS(err, "b.lua");
    rmtree(dir);
}

TEST(load_duplicate_names) {
    const char *dir = tdir();
    im_policies *p = NULL;
    char err[512];

    put(dir, "a.lua", policy_src("same", "return true"));
    put(dir, "b.lua", policy_src("same", "return true"));
    ASSERT_EQ(im_policies_load(dir, NULL, &p, err, sizeof err), IM_EEXIST);
    ASSERT_CONTAINS(err, "b.lua");
    ASSERT_CONTAINS(err, "a.lua");
    rmtree(dir);
}

TEST(load_file_and_bad_opts) {
    const char *dir = tdir();
    im_policies *p = NULL;
    im_policies_opts o;
    char err[512], path[600];

    put(dir, "one.lua", policy_src("one", "return true"));
    snprintf(path, sizeof path, "%s/one.lua", dir);
    ASSERT_EQ(im_policies_load_file(path, NULL, &p, err, sizeof err), 0);
    ASSERT_EQ(im_policies_count(p), 1);
    ASSERT_STR_EQ(im_policies_file(p, 0), "one.lua");
    im_policies_free(p);
    p = NULL;
    snprintf(path, sizeof path, "%s/none.lua", dir);
    ASSERT(im_policies_load_file(path, NULL, &p, err, sizeof err) != 0);
    ASSERT_CONTAINS(err, "none.lua");

    memset(&o, 0, sizeof o);
    o.instr_budget = -1;
    ASSERT_EQ(im_policies_load(dir, &o, &p, err, sizeof err), IM_EINVAL);
    memset(&o, 0, sizeof o);
    o.deadline_ms = -1;
    ASSERT_EQ(im_policies_load(dir, &o, &p, err, sizeof err), IM_EINVAL);
    ASSERT_EQ(im_policies_load(NULL, NULL, &p, err, sizeof err), IM_EINVAL);
    rmtree(dir);
}

/* ---------------------------------------------------------------------
 * Verdicts
 * ------------------------------------------------------------------- */

TEST(verdict_pass_forms) {
    ASSERT_ALLOW(run_body("return true"));
    ASSERT_ALLOW(run_body("return nil"));
    ASSERT_ALLOW(run_body(""));
    ASSERT_ALLOW(run_body("return true, 'ignored'"));
    ASSERT_ALLOW(run_body("return { decision = 'allow' }"));
    ASSERT_ALLOW(run_body("return { decision = 'allow', code = 'POLICY_X', reason = 'fine' }"));
}

TEST(verdict_false_with_and_without_reason) {
    im_policy_verdict v = run_body("return false, 'too big: ' .. order.quantity");
    ASSERT_EQ(v.decision, IM_POLICY_DENY);
    ASSERT_STR_EQ(v.code, "POLICY_P");
    ASSERT_STR_EQ(v.reason, "too big: 50");
    ASSERT_STR_EQ(v.kind, "ok");

    v = run_body("return false");
    ASSERT_EQ(v.decision, IM_POLICY_DENY);
    ASSERT_STR_EQ(v.code, "POLICY_P");
    ASSERT_STR_EQ(v.reason, "denied the order (no reason given)");
}

TEST(verdict_tables) {
    im_policy_verdict v;

    v = run_body("return { decision = 'deny', code = 'POLICY_MY_RULE_2', reason = 'no' }");
    ASSERT_EQ(v.decision, IM_POLICY_DENY);
    ASSERT_STR_EQ(v.code, "POLICY_MY_RULE_2");
    ASSERT_STR_EQ(v.reason, "no");

    /* Codes not matching ^POLICY_[A-Z0-9_]+$ (or too long) fall back. */
    static const char *const bad_codes[] = {
        "RISK_QTY_LIMIT", "POLICY_", "policy_x", "POLICY_lower", "POLICY_X-Y", "POLICY_X Y",
        "POLICY_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    };
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        char body[256];
        snprintf(body, sizeof body, "return { decision = 'deny', code = '%s', reason = 'r' }",
                 bad_codes[i]);
        v = run_body(body);
        ASSERT_EQ(v.decision, IM_POLICY_DENY);
        ASSERT_STR_EQ(v.code, "POLICY_P");
    }

    v = run_body("return { decision = 'deny' }");
    ASSERT_EQ(v.decision, IM_POLICY_DENY);
    ASSERT_STR_EQ(v.reason, "denied the order (no reason given)");

    v = run_body("return { decision = 'require_approval', code = 'POLICY_HITL', "
                 "reason = 'big order' }");
    ASSERT_EQ(v.decision, IM_POLICY_APPROVAL);
    ASSERT_STR_EQ(v.code, "POLICY_APPROVAL_REQUIRED");
    ASSERT_STR_EQ(v.reason, "big order");

    /* Raw reads: a metatable on the verdict never runs and adds nothing. */
    v = run_body("return setmetatable({ decision = 'deny', reason = 'raw' }, "
                 "{ __index = function() while true do end end })");
    ASSERT_EQ(v.decision, IM_POLICY_DENY);
    ASSERT_STR_EQ(v.reason, "raw");
}

TEST(check_appends_reasons) {
    const char *dir = tdir();
    im_policies *p = NULL;
    struct fixture f;
    im_risk_result r;
    char err[512];
    int approvals = -1;

    put(dir, "1.lua", policy_src("alpha", "return false, 'first reason'"));
    put(dir, "2.lua", policy_src("beta", "return { decision = 'deny', code = 'POLICY_BETA_X', "
                                         "reason = 'second' }"));
    put(dir, "3.lua", policy_src("gamma", "return { decision = 'require_approval' }"));
    put(dir, "4.lua", policy_src("delta", "return true"));
    put(dir, "5.lua", policy_src("eps", "error('kaput')"));
    put(dir, "6.lua", policy_src("zeta", "return { decision = 'require_approval', "
                                         "reason = 'human please' }"));
    ASSERT_EQ(im_policies_load(dir, NULL, &p, err, sizeof err), 0);
    fixture_init(&f);
    memset(&r, 0, sizeof r);
    r.approved = 1;
    ASSERT_EQ(im_policies_check(p, &f.in, &r, &approvals), 0);
    ASSERT_EQ(r.approved, 0);
    ASSERT_EQ(approvals, 2);
    ASSERT_EQ(r.nreasons, 5);
    ASSERT_STR_EQ(r.reasons[0].code, "POLICY_ALPHA");
    ASSERT_STR_EQ(r.reasons[0].text, "alpha: first reason");
    ASSERT_STR_EQ(r.reasons[1].code, "POLICY_BETA_X");
    ASSERT_STR_EQ(r.reasons[1].text, "beta: second");
    ASSERT_STR_EQ(r.reasons[2].code, "POLICY_APPROVAL_REQUIRED");
    ASSERT_STR_EQ(r.reasons[2].text, "gamma: asks for a human's approval of this order");
    ASSERT_STR_EQ(r.reasons[3].code, "POLICY_ERROR");
    ASSERT_CONTAINS(r.reasons[3].text, "eps: policy failed (runtime)");
    ASSERT_CONTAINS(r.reasons[3].text, "kaput");
    ASSERT_STR_EQ(r.reasons[4].text, "zeta: human please");

    /* approvals may be NULL. */
    memset(&r, 0, sizeof r);
    ASSERT_EQ(im_policies_check(p, &f.in, &r, NULL), 0);
    ASSERT_EQ(r.nreasons, 5);
    im_policies_free(p);
    rmtree(dir);
}

TEST(policies_only_tighten) {
    const char *dir = tdir();
    im_policies *p = NULL;
    struct fixture f;
    im_risk_result r;
    char err[512];
    int approvals;

    put(dir, "allow.lua", policy_src("allow", "return { decision = 'allow' }"));
    ASSERT_EQ(im_policies_load(dir, NULL, &p, err, sizeof err), 0);
    fixture_init(&f);
    memset(&r, 0, sizeof r);
    r.approved = 1;
    im_risk_reject(&r, "RISK_QTY_LIMIT", "C said no.");
    ASSERT_EQ(im_policies_check(p, &f.in, &r, &approvals), 0);
    ASSERT_EQ(r.approved, 0);              /* an allow never overrides a C deny */
    ASSERT_EQ(r.nreasons, 1);
    ASSERT_STR_EQ(r.reasons[0].code, "RISK_QTY_LIMIT");

    memset(&r, 0, sizeof r);
    r.approved = 1;
    ASSERT_EQ(im_policies_check(p, &f.in, &r, &approvals), 0);
    ASSERT_EQ(r.approved, 1);
    im_policies_free(p);
    rmtree(dir);
}

TEST(check_bad_args) {
    im_policies_opts o = tiny_opts();
    im_policies *p = load_src(policy_src("p", "return true"), &o);
    struct fixture f;
    im_risk_result r;
    im_policy_verdict v;
    int approvals = 7;

    fixture_init(&f);
    memset(&r, 0, sizeof r);
    r.approved = 1;
    ASSERT_EQ(im_policies_check(NULL, &f.in, &r, &approvals), IM_EINVAL);
    ASSERT_EQ(r.approved, 0);              /* fail closed even on misuse */
    ASSERT_STR_EQ(r.reasons[0].code, "POLICY_ERROR");
    ASSERT_EQ(approvals, 0);
    ASSERT_EQ(im_policies_check(p, NULL, &r, NULL), IM_EINVAL);
    ASSERT_EQ(im_policies_check(p, &f.in, NULL, NULL), IM_EINVAL);
    f.in.order = NULL;
    ASSERT_EQ(im_policies_check(p, &f.in, &r, NULL), IM_EINVAL);
    fixture_init(&f);
    f.in.stage = 99;
    ASSERT_EQ(im_policies_check(p, &f.in, &r, NULL), IM_EINVAL);
    fixture_init(&f);
    ASSERT_EQ(im_policies_eval(p, 1, &f.in, &v), IM_EINVAL);
    ASSERT_STR_EQ(v.kind, "input");
    ASSERT_EQ(im_policies_eval(p, 0, &f.in, NULL), IM_EINVAL);
    im_policies_free(p);
}

/* ---------------------------------------------------------------------
 * Failures (fail closed, named, classified from C)
 * ------------------------------------------------------------------- */

TEST(fail_runtime_error) {
    im_policy_verdict v = run_body("local x = nil\nreturn x.field");
    ASSERT_ERROR_KIND(v, "runtime");
    ASSERT_CONTAINS(v.reason, "policies/p.lua:");
    ASSERT_CONTAINS(v.reason, "attempt to index");
    ASSERT(strchr(v.reason, '\n') == NULL);   /* the traceback stays out */

    v = run_body("error({})");
    ASSERT_ERROR_KIND(v, "runtime");
    ASSERT_CONTAINS(v.reason, "error object is a table");
}

TEST(fail_budget_loop) {
    im_policy_verdict v = run_body("while true do end");
    ASSERT_ERROR_KIND(v, "budget");
    ASSERT_CONTAINS(v.reason, "instruction budget");

    /* pcall cannot swallow the trip (the hook re-arms at 1). */
    v = run_body("for i = 1, 1e9 do pcall(function() while true do end end) end "
                 "return true");
    ASSERT_ERROR_KIND(v, "budget");
}

TEST(fail_deadline) {
    im_policies_opts o = tiny_opts();
    im_policy_verdict v;

    o.instr_budget = 1000000000L;
    o.deadline_ms = 30;
    v = run_src(policy_src("p", "while true do end"), &o);
    ASSERT_ERROR_KIND(v, "budget");
    ASSERT_CONTAINS(v.reason, "deadline of 30 ms");
}

TEST(fail_memory_bomb) {
    im_policy_verdict v;

    v = run_body("local s = ('x'):rep(60000) local t = {} "
                 "for i = 1, 1000 do t[i] = s .. i end return true");
    ASSERT_ERROR_KIND(v, "memory");
    ASSERT_CONTAINS(v.reason, "not enough memory");

    v = run_body("local s = 'xx' while true do s = s .. s end");
    ASSERT_ERROR_KIND(v, "memory");
}

TEST(fail_wrong_return_types) {
    static const char *const bodies[] = {
        "return 1",
        "return 'allow'",
        "return print",
        "return function() end",
        "return {}",
        "return { decision = true }",
        "return { decision = 'yes' }",
        "return { decision = 'Allow' }",
        "return { decision = 'deny', code = 5 }",
        "return { decision = 'deny', reason = {} }",
        "return { decision = 'allow', reason = false }",
        "return { 'deny', 'positional' }",
        "return nil, 'an error message'",
        "return false, 42",
        "return false, {}",
        /* The nearest thing to a yield: coroutines are absent, so a value
         * that merely looks like one is garbage, and asking for the real
         * thing is a runtime error (next test). */
        "return setmetatable({}, { __index = function() return 'allow' end })",
        "return { decision = setmetatable({}, { __tostring = function() return 'allow' end }) }",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        im_policy_verdict v = run_body(bodies[i]);
        if (v.decision != IM_POLICY_ERROR || strcmp(v.kind, "verdict") != 0)
            im_test_fail(__FILE__, __LINE__, "case %zu (%s): decision %d kind %s", i,
                         bodies[i], (int)v.decision, v.kind);
        ASSERT_STR_EQ(v.code, "POLICY_ERROR");
    }
}

TEST(fail_yield_is_unavailable) {
    im_policy_verdict v = run_body("return coroutine.yield(true)");
    ASSERT_ERROR_KIND(v, "runtime");
    ASSERT_CONTAINS(v.reason, "coroutine");
}

TEST(fail_text_names_the_policy) {
    im_policies_opts o = tiny_opts();
    im_policies *p = load_src(policy_src("looper", "while true do end"), &o);
    struct fixture f;
    im_risk_result r;

    fixture_init(&f);
    memset(&r, 0, sizeof r);
    r.approved = 1;
    ASSERT_EQ(im_policies_check(p, &f.in, &r, NULL), 0);
    ASSERT_EQ(r.approved, 0);
    ASSERT_EQ(r.nreasons, 1);
    ASSERT_STR_EQ(r.reasons[0].code, "POLICY_ERROR");
    ASSERT_CONTAINS(r.reasons[0].text, "looper: policy failed (budget)");
    im_policies_free(p);
}

/* ---------------------------------------------------------------------
 * ctx: contents and read-only
 * ------------------------------------------------------------------- */

TEST(ctx_contents) {
    im_policy_verdict v = run_body(
        "assert(order.symbol == 'NVDA' and order.action == 'BUY')\n"
        "assert(order.quantity == 50 and math.type(order.quantity) == 'integer')\n"
        "assert(order.order_type == 'MKT' and order.tif == 'DAY')\n"
        "assert(order.limit_price == nil and order.stop_price == nil)\n"
        "assert(order.reference_price == 120.10 and order.notional == 50 * 121.30)\n"
        "assert(order.reduces_position == false)\n"
        "assert(ctx.stage == 'preview' and ctx.now == 1749564000)\n"
        "assert(ctx.params.limit == 5 and ctx.params.list[2] == 'b')\n"
        "assert(ctx.params.nested.deep.x == 1)\n"
        "assert(ctx.quote.symbol == 'NVDA' and ctx.quote.bid == 120 and ctx.quote.ask == 120.10)\n"
        "assert(math.abs(ctx.quote.mid - 120.05) < 1e-9 and ctx.quote.last == 120.05)\n"
        "assert(ctx.quote.age == 2 and ctx.quote.delayed == false)\n"
        "assert(ctx.position.quantity == 0 and ctx.position.avg_cost == 0)\n"
        "assert(ctx.account.net_liquidation == 100000 and ctx.account.type == 'CASH')\n"
        "assert(ctx.account.id == 'DU0000001')\n"
        "assert(#ctx.open_orders == 1 and ctx.open_orders[1].id == 'sim-7')\n"
        "assert(ctx.open_orders[1].order_type == 'LMT' and ctx.open_orders[1].limit_price == 110)\n"
        "assert(ctx.open_orders[1].status == 'SUBMITTED' and ctx.open_orders[1].remaining == 10)\n"
        "assert(ctx.today.orders == 3 and ctx.today.notional == 4500.5)\n"
        "assert(ctx.today.realized_pnl == -12.5)\n"
        "assert(ctx.limits.max_order_qty == 1000 and ctx.limits.max_order_notional == 20000)\n"
        "assert(ctx.limits.allow_short == false and #ctx.limits.symbol_whitelist == 0)\n"
        "local n = 0 for k, val in pairs(ctx.params) do n = n + 1 end assert(n == 3)\n"
        "local m = 0 for i, s in ipairs(ctx.params.list) do m = m + 1 end assert(m == 2)\n"
        "assert(getmetatable(ctx) == 'locked' and getmetatable(ctx.params) == 'locked')\n"
        "assert(ctx.missing == nil)\n"
        "return true");
    if (v.decision != IM_POLICY_ALLOW)
        im_test_fail(__FILE__, __LINE__, "%s: %s", v.kind, v.reason);
}

TEST(ctx_optional_parts) {
    struct fixture f;
    im_policies_opts o = tiny_opts();
    im_policies *p = load_src(policy_src("p",
        "assert(ctx.quote == nil and ctx.account == nil and ctx.limits == nil)\n"
        "assert(#ctx.open_orders == 0 and ctx.stage == 'place')\n"
        "assert(order.limit_price == 101.5 and order.stop_price == 100)\n"
        "assert(order.order_type == 'STP LMT' and order.reduces_position == true)\n"
        "assert(ctx.position.quantity == -20)\n"
        "return true"), &o);
    im_policy_verdict v;

    fixture_init(&f);
    f.in.quote = NULL;
    f.in.account = NULL;
    f.in.limits = NULL;
    f.in.open_orders = NULL;
    f.in.nopen = 3;              /* ignored without an array */
    f.in.stage = IM_RISK_PLACE;
    f.order.type = IM_OT_STP_LMT;
    f.order.limit_price = 101.5;
    f.order.stop_price = 100;
    f.in.reduces_position = 1;
    f.in.position_qty = -20;
    v = eval0(p, &f.in);
    if (v.decision != IM_POLICY_ALLOW)
        im_test_fail(__FILE__, __LINE__, "%s: %s", v.kind, v.reason);
    im_policies_free(p);
}

TEST(ctx_is_read_only) {
    static const char *const writes[] = {
        "ctx.x = 1",
        "ctx.now = 0",
        "ctx.params.x = 1",
        "ctx.params.limit = 1e9",
        "ctx.params.list[1] = 'z'",
        "ctx.params.nested.deep.x = 2",
        "ctx.quote.bid = 0",
        "ctx.position.quantity = 1e6",
        "ctx.account.cash = 1e9",
        "ctx.open_orders[1] = nil",
        "ctx.open_orders[1].status = 'CANCELLED'",
        "ctx.today.orders = 0",
        "ctx.limits.max_order_qty = 1e9",
        "ctx.limits.symbol_whitelist[1] = 'GME'",
        "setmetatable(ctx, {})",
        "setmetatable(ctx.params, nil)",
        "rawset(ctx, 'x', 1)",
        "table.insert(ctx.open_orders, {})",
        "ctx.ny_time = nil",
    };
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        char body[256];
        im_policy_verdict v;

        snprintf(body, sizeof body, "%s\nreturn true", writes[i]);
        v = run_body(body);
        if (v.decision != IM_POLICY_ERROR || strcmp(v.kind, "runtime") != 0)
            im_test_fail(__FILE__, __LINE__, "case %zu (%s): decision %d kind %s", i,
                         writes[i], (int)v.decision, v.kind);
    }
    /* Nothing reaches the data behind a proxy. */
    ASSERT_ALLOW(run_body("assert(rawget(ctx, 'now') == nil)\n"
                          "assert(next(ctx) == nil)\n"
                          "local it = pairs(ctx)\n"
                          "assert(not pcall(it, {}, nil))\n"
                          "assert(not pcall(it, setmetatable({}, {__index = {}}), nil))\n"
                          "return true"));
}

TEST(order_table_is_fresh_per_call) {
    im_policies_opts o = tiny_opts();
    im_policies *p = load_src(
        "local seen\n"
        "return { name = 'fresh', description = 'd', check = function(order, ctx)\n"
        "  if seen ~= nil and (seen == order or order.quantity ~= 50) then\n"
        "    return false, 'order reused'\n"
        "  end\n"
        "  order.quantity = -1; order.symbol = 'GME'\n"
        "  seen = order\n"
        "end }\n", &o);
    struct fixture f;

    fixture_init(&f);
    ASSERT_ALLOW(eval0(p, &f.in));
    ASSERT_ALLOW(eval0(p, &f.in));
    ASSERT_EQ(f.order.quantity, 50);        /* the C order is untouched */
    im_policies_free(p);
}

/* ctx.today.fills keeps the sealed tables of the last check for every
 * execution that is byte for byte the same: the policy below reports each
 * fill's fields, how many fill tables are the very ones of the previous
 * list, and what the first list it kept says now. */
static void set_exec(im_execution *e, const char *id, double price, double commission) {
    memset(e, 0, sizeof *e);
    snprintf(e->exec_id, sizeof e->exec_id, "x-%s", id);
    snprintf(e->order_id, sizeof e->order_id, "%s", id);
    snprintf(e->symbol, sizeof e->symbol, "NVDA");
    e->side = IM_SIDE_BUY;
    e->shares = 1;
    e->price = price;
    e->commission = commission;
    e->time = IM_CLOCK_DEFAULT_SIM_START - 60;
}

TEST(todays_fills_are_kept_between_checks) {
    im_policies_opts o = tiny_opts();
    im_policies *p = load_src(
        "local prev, first\n"
        "return { name = 'fills', description = 'd', check = function(order, ctx)\n"
        "  local f, out, reused = ctx.today.fills, {}, 0\n"
        "  for i, x in ipairs(f) do\n"
        "    out[#out + 1] = string.format('%s:%g:%g', x.order_id, x.price, x.commission)\n"
        "    for j = 1, prev and #prev or 0 do\n"
        "      if rawequal(prev[j], x) then reused = reused + 1 end\n"
        "    end\n"
        "  end\n"
        "  assert(not pcall(function() f[1] = 1 end) and not pcall(function() f[1].price = 1 end))\n"
        "  prev = f\n"
        "  if first == nil and #f > 0 then first = f end\n"
        "  return false, table.concat(out, ',') .. ' reused=' .. reused ..\n"
        "    ' first=' .. (first and #first .. first[1].order_id .. first[#first].order_id or '-')\n"
        "end }\n", &o);
    static const struct {
        const char *ids;   /* order ids; a ' marks a changed commission */
        const char *want;
    } steps[] = {
        {"", " reused=0 first=-"},
        {"A B", "A:100:1,B:101:1 reused=0 first=2AB"},
        {"A B C", "A:100:1,B:101:1,C:102:1 reused=2 first=2AB"},
        {"B C D", "B:101:1,C:102:1,D:103:1 reused=2 first=2AB"},   /* the window slid */
        {"B C' D", "B:101:1,C:102:2,D:103:1 reused=2 first=2AB"},  /* a commission came in */
        {"E", "E:104:1 reused=0 first=2AB"},                        /* a new day, say */
        {"E", "E:104:1 reused=1 first=2AB"},
    };
    struct fixture f;
    im_execution ex[8];

    fixture_init(&f);
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        size_t n = 0;
        im_policy_verdict v;
        for (const char *c = steps[k].ids; *c; c++) {
            if (*c == ' ')
                continue;
            if (*c == '\'') {
                ex[n - 1].commission = 2;
                continue;
            }
            set_exec(&ex[n], (char[]){*c, 0}, 100 + (*c - 'A'), 1);
            n++;
        }
        f.in.fills = n > 0 ? ex : NULL;
        f.in.nfills = n;
        v = eval0(p, &f.in);
        ASSERT_EQ(v.decision, IM_POLICY_DENY);
        if (strcmp(v.reason, steps[k].want) != 0)
            im_test_fail(__FILE__, __LINE__, "step %zu: \"%s\", want \"%s\"", k, v.reason,
                         steps[k].want);
    }
    im_policies_free(p);
}

TEST(ctx_calendar_helpers) {
    struct fixture f;
    im_policies_opts o = tiny_opts();
    im_policies *p = load_src(policy_src("cal",
        "local h, m, wd, s = ctx.ny_time()\n"
        "local d = ctx.ny_date()\n"
        "return false, string.format('%02d:%02d:%02d wd=%d %s open=%s', h, m, s, wd, d,\n"
        "  tostring(ctx.market_open()))"), &o);
    im_policies *q = load_src(policy_src("cal2",
        "local h, m, wd = ctx.ny_time(ctx.now + 7200)\n"
        "local h2 = ctx:ny_time()\n"
        "assert(ctx.ny_date(0) == '1969-12-31')\n"
        "assert(ctx.market_open(ctx.now + 6 * 3600) == false)\n"
        "assert(not pcall(ctx.ny_time, 'noon'))\n"
        "return false, h .. ':' .. m .. ' ' .. wd .. ' ' .. h2"), &o);
    im_policy_verdict v;

    fixture_init(&f);
    v = eval0(p, &f.in);
    ASSERT_STR_EQ(v.reason, "10:00:00 wd=2 2025-06-10 open=true");
    f.in.now = ny("2025-06-14T11:02:30-04:00");
    v = eval0(p, &f.in);
    ASSERT_STR_EQ(v.reason, "11:02:30 wd=6 2025-06-14 open=false");
    /* Winter time: 09:30 EST is 14:30 UTC. */
    f.in.now = ny("2025-01-15T14:30:00Z");
    v = eval0(p, &f.in);
    ASSERT_STR_EQ(v.reason, "09:30:00 wd=3 2025-01-15 open=true");
    f.in.now = ny("2025-01-15T14:29:59Z");
    v = eval0(p, &f.in);
    ASSERT_STR_EQ(v.reason, "09:29:59 wd=3 2025-01-15 open=false");

    fixture_init(&f);
    v = eval0(q, &f.in);
    ASSERT_STR_EQ(v.reason, "12:0 2 10");

    /* A non-finite clock is an error, not a guess. */
    f.in.now = NAN;
    v = eval0(p, &f.in);
    ASSERT_ERROR_KIND(v, "runtime");
    im_policies_free(p);
    im_policies_free(q);
}

/* ---------------------------------------------------------------------
 * State: rebuild after trips, determinism, hash
 * ------------------------------------------------------------------- */

/* Counts calls in an upvalue; LOOP loops, BOMB allocates without end,
 * OOPS raises. A second call in the same state is denied, which shows
 * whether the state was rebuilt. */
static const char counter_src[] =
    "local calls = 0\n"
    "return { name = 'counter', description = 'counts its calls', check = function(order, ctx)\n"
    "  calls = calls + 1\n"
    "  if order.symbol == 'LOOP' then while true do end end\n"
    "  if order.symbol == 'BOMB' then local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(1000) .. i end end\n"
    "  if order.symbol == 'OOPS' then error('oops') end\n"
    "  if calls > 1 then return false, 'call ' .. calls end\n"
    "end }\n";

static void counter_case(const char *symbol, const char *kind, int rebuilt) {
    im_policies_opts o = tiny_opts();
    im_policies *p;
    struct fixture f;
    im_policy_verdict v;

    o.instr_budget = 2000000;        /* BOMB must trip memory first */
    p = load_src(counter_src, &o);
    fixture_init(&f);
    ASSERT_ALLOW(eval0(p, &f.in));    /* calls = 1 */
    snprintf(f.order.symbol, sizeof f.order.symbol, "%s", symbol);
    v = eval0(p, &f.in);              /* calls = 2, then the failure */
    ASSERT_ERROR_KIND(v, kind);
    snprintf(f.order.symbol, sizeof f.order.symbol, "NVDA");
    v = eval0(p, &f.in);
    if (rebuilt) {
        ASSERT_ALLOW(v);              /* fresh upvalues: calls = 1 again */
    } else {
        ASSERT_EQ(v.decision, IM_POLICY_DENY);
        ASSERT_STR_EQ(v.reason, "call 3");
    }
    im_policies_free(p);
}

TEST(rebuild_after_budget_trip) {
    counter_case("LOOP", "budget", 1);
}

TEST(rebuild_after_memory_trip) {
    counter_case("BOMB", "memory", 1);
}

TEST(no_rebuild_after_runtime_error) {
    counter_case("OOPS", "runtime", 0);
}

TEST(determinism) {
    static const char src[] =
        "local n = 0\n"
        "return { name = 'dice', description = 'uses the seeded generator', params = { p = 0.5 },\n"
        "  check = function(order, ctx)\n"
        "    n = n + 1\n"
        "    local h, m = ctx.ny_time()\n"
        "    return false, string.format('%d %d %d %.6f %s', n, h, m, math.random(), ctx.ny_date())\n"
        "  end }\n";
    im_policies_opts o = tiny_opts();
    struct fixture f;
    char first[8][IM_RISK_TEXT_MAX];

    fixture_init(&f);
    for (int round = 0; round < 2; round++) {
        im_policies *p = load_src(src, &o);
        for (int i = 0; i < 8; i++) {
            im_policy_verdict v;
            f.in.now = IM_CLOCK_DEFAULT_SIM_START + 61.0 * i;
            v = eval0(p, &f.in);
            ASSERT_EQ(v.decision, IM_POLICY_DENY);
            if (round == 0)
                snprintf(first[i], sizeof first[i], "%s", v.reason);
            else
                ASSERT_STR_EQ(v.reason, first[i]);
        }
        im_policies_free(p);
    }
    ASSERT(strcmp(first[0], first[1]) != 0);
}

TEST(hash_tracks_sources) {
    const char *dir = tdir();
    im_policies *p = NULL;
    char err[512], h1[80], h2[80], f1[80];
    char from[600], to[600];

    put(dir, "a.lua", policy_src("a", "return true"));
    put(dir, "b.lua", policy_src("b", "return true"));
    ASSERT_EQ(im_policies_load(dir, NULL, &p, err, sizeof err), 0);
    snprintf(h1, sizeof h1, "%s", im_policies_hash(p));
    snprintf(f1, sizeof f1, "%s", im_policies_file_hash(p, 1));
    im_policies_free(p);

    ASSERT_EQ(im_policies_load(dir, NULL, &p, err, sizeof err), 0);
    ASSERT_STR_EQ(im_policies_hash(p), h1);                 /* same files, same hash */
    im_policies_free(p);

    put(dir, "b.lua", policy_src("b", "return  true"));    /* one space more */
    ASSERT_EQ(im_policies_load(dir, NULL, &p, err, sizeof err), 0);
    snprintf(h2, sizeof h2, "%s", im_policies_hash(p));
    ASSERT(strcmp(h1, h2) != 0);
    ASSERT(strcmp(f1, im_policies_file_hash(p, 1)) != 0);
    im_policies_free(p);

    snprintf(from, sizeof from, "%s/b.lua", dir);            /* same bytes, new name */
    snprintf(to, sizeof to, "%s/c.lua", dir);
    ASSERT_EQ(rename(from, to), 0);
    ASSERT_EQ(im_policies_load(dir, NULL, &p, err, sizeof err), 0);
    ASSERT(strcmp(h2, im_policies_hash(p)) != 0);
    im_policies_free(p);
    rmtree(dir);
}

/* ---------------------------------------------------------------------
 * Text hygiene and stdout
 * ------------------------------------------------------------------- */

TEST(reason_text_is_cleaned) {
    im_policy_verdict v = run_body("return false, 'a\\nb\\tc\\1d\\255e'");
    ASSERT_STR_EQ(v.reason, "a b c d?e");

    /* 300 two-byte characters: cut on a character boundary. */
    v = run_body("return false, ('\\u{e9}'):rep(300)");
    ASSERT_EQ(v.decision, IM_POLICY_DENY);
    ASSERT(strlen(v.reason) % 2 == 0);
    ASSERT(strlen(v.reason) >= IM_RISK_TEXT_MAX - 2);
    for (size_t i = 0; i < strlen(v.reason); i += 2)
        ASSERT((unsigned char)v.reason[i] == 0xC3 && (unsigned char)v.reason[i + 1] == 0xA9);
}

/* Runs fn with fd 1 redirected into a temporary file; returns what was
 * written there (static). */
static const char *capture_stdout(void (*fn)(void *), void *ud) {
    static char out[8192];
    char path[] = "/tmp/im_policy_stdout_XXXXXX";
    int fd = mkstemp(path), saved;
    ssize_t n;

    ASSERT(fd >= 0);
    fflush(stdout);
    saved = dup(1);
    ASSERT(saved >= 0);
    ASSERT(dup2(fd, 1) == 1);
    fn(ud);
    fflush(stdout);
    ASSERT(dup2(saved, 1) == 1);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    n = read(fd, out, sizeof out - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return out;
}

static void run_printing_policy(void *ud) {
    (void)ud;
    ASSERT_ALLOW(run_body("print('hello from a policy', 42, ctx)\nreturn true"));
}

TEST(print_never_reaches_stdout) {
    ASSERT_STR_EQ(capture_stdout(run_printing_policy, NULL), "");
}

struct cmd_run {
    const char *dir;
    int code;
};

static void run_check_cmd(void *ud) {
    struct cmd_run *c = ud;
    c->code = im_policy_check_cmd(c->dir);
}

TEST(policy_check_cmd) {
    struct cmd_run c;
    const char *out;
    const char *dir;

    c.dir = shipped_dir();
    out = capture_stdout(run_check_cmd, &c);
    ASSERT_EQ(c.code, 0);
    ASSERT_CONTAINS(out, "market_hours  (market_hours.lua)");
    ASSERT_CONTAINS(out, "symbol_limits  (symbol_limits.lua)");
    ASSERT_CONTAINS(out, "allow_outside_rth = false");
    ASSERT_CONTAINS(out, "GME = {\"max_qty\":0}");
    ASSERT_CONTAINS(out, "\"2025-07-04\"");
    ASSERT_CONTAINS(out, "loaded: 5");

    c.dir = NULL;                      /* the default folder is the same one */
    out = capture_stdout(run_check_cmd, &c);
    ASSERT_EQ(c.code, 0);
    ASSERT_CONTAINS(out, "market_hours");

    dir = tdir();
    put(dir, "good.lua", policy_src("good", "return true"));
    put(dir, "zbad.lua", "return { name = 'bad' }");
    c.dir = dir;
    out = capture_stdout(run_check_cmd, &c);
    ASSERT_EQ(c.code, 1);
    ASSERT_STR_EQ(out, "");            /* the error goes to stderr */
    rmtree(dir);
}

/* ---------------------------------------------------------------------
 * The shipped policies
 * ------------------------------------------------------------------- */

static im_policies *load_shipped(void) {
    im_policies *p = NULL;
    char err[512];

    if (im_policies_load(shipped_dir(), NULL, &p, err, sizeof err) != 0)
        im_test_fail(__FILE__, __LINE__, "shipped policies: %s", err);
    ASSERT_EQ(im_policies_count(p), 5);   /* in file-name order */
    ASSERT_STR_EQ(im_policies_name(p, 0), "loss_streak_cooldown");
    ASSERT_STR_EQ(im_policies_name(p, 1), "market_hours");
    ASSERT_STR_EQ(im_policies_name(p, 2), "no_averaging_down");
    ASSERT_STR_EQ(im_policies_name(p, 3), "pdt_guard");
    ASSERT_STR_EQ(im_policies_name(p, 4), "symbol_limits");
    return p;
}

/* Loads market_hours.lua with its params edited (from -> to, twice). */
static im_policies *load_market_hours_with(const char *from1, const char *to1,
                                           const char *from2, const char *to2) {
    char path[1200], *src;
    im_policies *p = NULL;
    im_policies_opts o;

    snprintf(path, sizeof path, "%s/market_hours.lua", shipped_dir());
    src = slurp(path);
    src = replace(src, from1, to1);
    if (from2 != NULL)
        src = replace(src, from2, to2);
    memset(&o, 0, sizeof o);
    p = load_src(src, &o);
    free(src);
    return p;
}

/* Runs every shipped policy; returns the result (approved starts at 1). */
static im_risk_result check_all(im_policies *p, const im_policy_input *in) {
    im_risk_result r;
    int approvals = -1;

    memset(&r, 0, sizeof r);
    r.approved = 1;
    ASSERT_EQ(im_policies_check(p, in, &r, &approvals), 0);
    ASSERT_EQ(approvals, 0);
    return r;
}

TEST(shipped_demo_flow_passes) {
    im_policies *p = load_shipped();
    struct fixture f;
    im_risk_result r;

    fixture_init(&f);
    r = check_all(p, &f.in);
    if (!r.approved)
        im_test_fail(__FILE__, __LINE__, "demo order denied: %s", r.reasons[0].text);
    f.in.stage = IM_RISK_PLACE;                      /* and again at place */
    f.in.now += 30;
    r = check_all(p, &f.in);
    ASSERT_EQ(r.approved, 1);
    /* The demo's other orders: a limit buy and a sell of what it bought. */
    f.order.type = IM_OT_LMT;
    f.order.limit_price = 119.5;
    ASSERT_EQ(check_all(p, &f.in).approved, 1);
    f.order.side = IM_SIDE_SELL;
    f.in.position_qty = 50;
    f.in.reduces_position = 1;
    ASSERT_EQ(check_all(p, &f.in).approved, 1);
    im_policies_free(p);
}

TEST(shipped_market_hours_boundaries) {
    static const struct {
        const char *when;
        int open;
    } cases[] = {
        {"2025-06-10T09:29:59-04:00", 0},
        {"2025-06-10T09:30:00-04:00", 1},
        {"2025-06-10T15:59:59-04:00", 1},
        {"2025-06-10T16:00:00-04:00", 0},
        {"2025-06-10T03:00:00-04:00", 0},
        {"2025-06-10T23:59:59-04:00", 0},
        {"2025-06-13T12:00:00-04:00", 1},   /* Friday */
        {"2025-06-14T11:02:00-04:00", 0},   /* Saturday */
        {"2025-06-15T12:00:00-04:00", 0},   /* Sunday */
        {"2025-06-16T09:30:00-04:00", 1},   /* Monday */
        /* Spring forward (Sunday 2025-03-09): 09:30 is 14:30Z on the
         * Friday before and 13:30Z on the Monday after. */
        {"2025-03-07T14:29:59Z", 0},
        {"2025-03-07T14:30:00Z", 1},
        {"2025-03-09T15:00:00Z", 0},
        {"2025-03-10T13:29:59Z", 0},
        {"2025-03-10T13:30:00Z", 1},
        /* Fall back (Sunday 2025-11-02): 16:00 is 20:00Z on the Friday
         * before and 21:00Z on the Monday after. */
        {"2025-10-31T19:59:59Z", 1},
        {"2025-10-31T20:00:00Z", 0},
        {"2025-11-03T14:29:59Z", 0},
        {"2025-11-03T14:30:00Z", 1},
        {"2025-11-03T20:59:59Z", 1},
        {"2025-11-03T21:00:00Z", 0},
        /* Holidays in the list, and the days around them. */
        {"2025-07-04T11:00:00-04:00", 0},
        {"2025-07-07T11:00:00-04:00", 1},
        {"2025-01-09T11:00:00-05:00", 0},
        {"2025-11-27T11:00:00-05:00", 0},
        {"2025-12-25T11:00:00-05:00", 0},
        {"2026-04-03T11:00:00-04:00", 0},
        {"2026-07-03T11:00:00-04:00", 0},
        {"2026-07-02T11:00:00-04:00", 1},
        /* Early closes at 13:00. */
        {"2025-07-03T12:59:59-04:00", 1},
        {"2025-07-03T13:00:00-04:00", 0},
        {"2025-11-28T12:59:00-05:00", 1},
        {"2025-11-28T13:00:00-05:00", 0},
    };
    im_policies *p = load_shipped();
    struct fixture f;

    fixture_init(&f);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        im_risk_result r;
        f.in.now = ny(cases[i].when);
        r = check_all(p, &f.in);
        if (r.approved != cases[i].open)
            im_test_fail(__FILE__, __LINE__, "%s: expected %s, got %s (%s)", cases[i].when,
                         cases[i].open ? "open" : "closed", r.approved ? "open" : "closed",
                         r.nreasons ? r.reasons[0].text : "no reason");
        if (!r.approved) {
            ASSERT_EQ(r.nreasons, 1);
            ASSERT_STR_EQ(r.reasons[0].code, "POLICY_MARKET_HOURS");
        }
    }
    im_policies_free(p);
}

TEST(shipped_market_hours_reasons) {
    im_policies *p = load_shipped();
    struct fixture f;
    im_risk_result r;

    fixture_init(&f);
    f.in.now = ny("2025-06-14T11:02:00-04:00");
    r = check_all(p, &f.in);
    ASSERT_STR_EQ(r.reasons[0].text,
                  "market_hours: market is closed (Saturday 11:02 ET); regular hours are "
                  "09:30-16:00 ET, Monday to Friday");
    f.in.now = ny("2025-07-04T11:00:00-04:00");
    r = check_all(p, &f.in);
    ASSERT_CONTAINS(r.reasons[0].text, "holiday (Friday 2025-07-04)");
    f.in.now = ny("2025-06-10T16:00:00-04:00");
    r = check_all(p, &f.in);
    ASSERT_CONTAINS(r.reasons[0].text, "(Tuesday 16:00 ET)");
    f.in.now = ny("2025-07-03T13:00:00-04:00");
    r = check_all(p, &f.in);
    ASSERT_CONTAINS(r.reasons[0].text, "early close at 13:00 ET");
    im_policies_free(p);
}

TEST(shipped_reducing_orders_pass) {
    static const char *const whens[] = {
        "2025-06-14T11:02:00-04:00", "2025-07-04T11:00:00-04:00", "2025-06-10T03:00:00-04:00",
    };
    im_policies *p = load_shipped();
    struct fixture f;

    fixture_init(&f);
    f.order.side = IM_SIDE_SELL;
    f.in.position_qty = 100;
    f.in.reduces_position = 1;
    for (size_t i = 0; i < sizeof whens / sizeof whens[0]; i++) {
        f.in.now = ny(whens[i]);
        ASSERT_EQ(check_all(p, &f.in).approved, 1);
    }
    /* The same sell without a position opens a short: denied. */
    f.in.position_qty = 0;
    f.in.reduces_position = 0;
    ASSERT_EQ(check_all(p, &f.in).approved, 0);
    im_policies_free(p);
}

TEST(shipped_symbol_limits) {
    im_policies *p = load_shipped();
    struct fixture f;
    im_risk_result r;

    fixture_init(&f);
    snprintf(f.order.symbol, sizeof f.order.symbol, "GME");
    f.order.quantity = 10;
    r = check_all(p, &f.in);
    ASSERT_EQ(r.approved, 0);
    ASSERT_EQ(r.nreasons, 1);
    ASSERT_STR_EQ(r.reasons[0].code, "POLICY_SYMBOL_LIMIT");
    ASSERT_STR_EQ(r.reasons[0].text, "symbol_limits: GME is blocked for new positions (cap 0 "
                                     "shares); this order asks to buy 10 shares");
    snprintf(f.order.symbol, sizeof f.order.symbol, "AMC");
    ASSERT_EQ(check_all(p, &f.in).approved, 0);
    /* Outside hours both policies speak. */
    f.in.now = ny("2025-06-14T11:02:00-04:00");
    r = check_all(p, &f.in);
    ASSERT_EQ(r.nreasons, 2);
    ASSERT_STR_EQ(r.reasons[0].code, "POLICY_MARKET_HOURS");
    ASSERT_STR_EQ(r.reasons[1].code, "POLICY_SYMBOL_LIMIT");
    /* Closing a GME position is allowed, at any hour. */
    f.order.side = IM_SIDE_SELL;
    f.in.position_qty = 10;
    f.in.reduces_position = 1;
    ASSERT_EQ(check_all(p, &f.in).approved, 1);
    im_policies_free(p);
}

TEST(shipped_symbol_limits_edited) {
    char path[1200], *src;
    im_policies *p;
    im_policies_opts o;
    struct fixture f;
    im_policy_verdict v;

    snprintf(path, sizeof path, "%s/symbol_limits.lua", shipped_dir());
    src = slurp(path);
    src = replace(src, "AMC = { max_qty = 0 },",
                  "AMC = { max_qty = 0 }, TSLA = { max_qty = 20, max_notional = 2500 },");
    memset(&o, 0, sizeof o);
    p = load_src(src, &o);
    free(src);
    fixture_init(&f);
    snprintf(f.order.symbol, sizeof f.order.symbol, "TSLA");
    f.order.quantity = 20;
    f.in.reference_price = 125;
    f.in.notional = 2500;
    ASSERT_ALLOW(eval0(p, &f.in));                  /* exactly at both caps */
    f.order.quantity = 21;
    f.in.notional = 2625;
    v = eval0(p, &f.in);
    ASSERT_EQ(v.decision, IM_POLICY_DENY);
    ASSERT_STR_EQ(v.reason, "TSLA is capped at 20 shares per order; this order asks to buy 21 "
                            "shares");
    f.order.quantity = 10;
    f.in.reference_price = 250.5;
    f.in.notional = 2505;
    v = eval0(p, &f.in);
    ASSERT_STR_EQ(v.code, "POLICY_SYMBOL_LIMIT");
    ASSERT_STR_EQ(v.reason, "TSLA is capped at $2,500 per order; this order is $2,505 (10 "
                            "shares at $250.50)");
    im_policies_free(p);
}

TEST(shipped_outside_rth_allowed) {
    im_policies *p = load_market_hours_with("allow_outside_rth = false",
                                            "allow_outside_rth = true", NULL, NULL);
    struct fixture f;
    im_policy_verdict v;

    fixture_init(&f);
    f.order.type = IM_OT_LMT;
    f.order.limit_price = 120;
    f.in.now = ny("2025-06-10T17:00:00-04:00");
    ASSERT_ALLOW(eval0(p, &f.in));
    f.in.now = ny("2025-06-10T04:00:00-04:00");
    ASSERT_ALLOW(eval0(p, &f.in));
    f.in.now = ny("2025-06-10T03:59:59-04:00");
    ASSERT_EQ(eval0(p, &f.in).decision, IM_POLICY_DENY);
    f.in.now = ny("2025-06-10T20:00:00-04:00");
    ASSERT_EQ(eval0(p, &f.in).decision, IM_POLICY_DENY);
    f.in.now = ny("2025-06-14T11:00:00-04:00");      /* still not on Saturday */
    ASSERT_EQ(eval0(p, &f.in).decision, IM_POLICY_DENY);
    f.in.now = ny("2025-07-04T11:00:00-04:00");      /* nor on a holiday */
    ASSERT_EQ(eval0(p, &f.in).decision, IM_POLICY_DENY);
    f.in.now = ny("2025-07-03T16:59:00-04:00");      /* early close: after-hours to 17:00 */
    ASSERT_ALLOW(eval0(p, &f.in));
    f.in.now = ny("2025-07-03T17:00:00-04:00");
    ASSERT_EQ(eval0(p, &f.in).decision, IM_POLICY_DENY);

    f.order.type = IM_OT_MKT;                         /* market orders: never outside RTH */
    f.order.limit_price = 0;
    f.in.now = ny("2025-06-10T17:00:00-04:00");
    v = eval0(p, &f.in);
    ASSERT_EQ(v.decision, IM_POLICY_DENY);
    ASSERT_CONTAINS(v.reason, "market orders are never sent outside regular hours");
    f.in.now = ny("2025-06-10T10:00:00-04:00");
    ASSERT_ALLOW(eval0(p, &f.in));
    im_policies_free(p);
}

TEST(shipped_open_close_gaps) {
    im_policies *p = load_market_hours_with("no_trade_open_minutes = 0",
                                            "no_trade_open_minutes = 5",
                                            "no_trade_close_minutes = 0",
                                            "no_trade_close_minutes = 10");
    struct fixture f;
    im_policy_verdict v;

    fixture_init(&f);
    f.in.now = ny("2025-06-10T09:34:59-04:00");
    v = eval0(p, &f.in);
    ASSERT_EQ(v.decision, IM_POLICY_DENY);
    ASSERT_CONTAINS(v.reason, "first 5 minutes");
    ASSERT_CONTAINS(v.reason, "trading opens at 09:35 ET");
    f.in.now = ny("2025-06-10T09:35:00-04:00");
    ASSERT_ALLOW(eval0(p, &f.in));
    f.in.now = ny("2025-06-10T15:49:59-04:00");
    ASSERT_ALLOW(eval0(p, &f.in));
    f.in.now = ny("2025-06-10T15:50:00-04:00");
    v = eval0(p, &f.in);
    ASSERT_EQ(v.decision, IM_POLICY_DENY);
    ASSERT_CONTAINS(v.reason, "last 10 minutes");
    f.in.now = ny("2025-07-03T12:50:00-04:00");       /* relative to the early close */
    ASSERT_EQ(eval0(p, &f.in).decision, IM_POLICY_DENY);
    im_policies_free(p);

    p = load_market_hours_with("no_trade_open_minutes = 0", "no_trade_open_minutes = -1",
                               NULL, NULL);
    fixture_init(&f);
    v = eval0(p, &f.in);
    ASSERT_ERROR_KIND(v, "runtime");                  /* a bad param fails closed */
    ASSERT_CONTAINS(v.reason, "no_trade_open_minutes must be");
    im_policies_free(p);
}

TEST(shipped_policies_are_cheap) {
    /* The shipped policies must fit easily in a budget 50x smaller than
     * the default, so a busy machine never trips them. */
    im_policies *p = NULL;
    im_policies_opts o;
    struct fixture f;
    char err[512];

    memset(&o, 0, sizeof o);
    o.instr_budget = 20000;
    o.mem_limit = (size_t)1 << 20;
    ASSERT_EQ(im_policies_load(shipped_dir(), &o, &p, err, sizeof err), 0);
    fixture_init(&f);
    for (int i = 0; i < 200; i++) {
        f.in.now = IM_CLOCK_DEFAULT_SIM_START + 600.0 * i;
        im_risk_result r = check_all(p, &f.in);
        for (size_t k = 0; k < r.nreasons; k++)
            ASSERT(strcmp(r.reasons[k].code, "POLICY_ERROR") != 0);
    }
    im_policies_free(p);
}
