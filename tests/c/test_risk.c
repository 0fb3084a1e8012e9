/* test_risk.c: unit tests for risk.c. Every check is driven to its
 * boundary (exactly at a cap passes, one share or one cent over fails),
 * every malformed input is refused, and the sentences are compared with
 * their figures. Limits start from the configuration defaults. */
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "risk.h"
#include "test.h"

#define NOW 1749564000.0

static im_limits lim;
static im_order ord;
static im_quote quo;
static im_account acct;
static im_risk_input in;
static im_risk_result res;

/* Defaults everywhere: limits from im_config_defaults, a fresh real-time
 * quote, a flat position, a preview, and a cash account of $1,000,000 (big
 * enough that the account-based checks stay quiet unless a test sizes the
 * account down), no identical order, a flat day. */
static void set_account(const char *type, double nlv, double cash, double bp) {
    memset(&acct, 0, sizeof acct);
    snprintf(acct.account_id, sizeof acct.account_id, "DU0000001");
    snprintf(acct.account_type, sizeof acct.account_type, "%s", type);
    acct.net_liquidation = nlv;
    acct.cash = cash;
    acct.buying_power = bp;
}

static void setup(const char *sym, im_side side, double qty, im_order_type type, double lmt,
                  double stp) {
    im_config c;
    im_config_defaults(&c);
    lim = c.limits;
    memset(&ord, 0, sizeof ord);
    snprintf(ord.symbol, sizeof ord.symbol, "%s", sym);
    ord.side = side;
    ord.quantity = qty;
    ord.type = type;
    ord.limit_price = lmt;
    ord.stop_price = stp;
    ord.tif = IM_TIF_DAY;
    memset(&quo, 0, sizeof quo);
    snprintf(quo.symbol, sizeof quo.symbol, "%s", sym);
    quo.bid = 99.99;
    quo.ask = 100.01;
    quo.last = 100.00;
    quo.time = NOW;
    memset(&in, 0, sizeof in);
    in.stage = IM_RISK_PREVIEW;
    in.order = &ord;
    in.quote = &quo;
    in.now = NOW;
    set_account("CASH", 1000000, 1000000, 1000000);
    in.account = &acct;
    in.same_order_age = -1;
    in.pnl_today = 0;
}

static void set_quote(double bid, double ask) {
    quo.bid = bid;
    quo.ask = ask;
}

/* For tests about caps, triggers or drift that use limits far from the
 * quote: the collar, passive-distance and spread checks are out of the way
 * (they have their own tests below). */
static void loosen_price_checks(void) {
    lim.collar_bps = 1e9;
    lim.passive_max_bps = 1e9;
    lim.max_spread_bps = 1e9;
}

/* Likewise for the account-sized checks: an account too big to matter and
 * no daily turnover cap. */
static void loosen_account_checks(void) {
    set_account("MARGIN", 1e300, 1e300, 1e300);
    lim.max_daily_notional = 1e300;
}

static void run(void) { ASSERT_EQ(im_risk_check(&lim, &in, &res), 0); }

/* Index of the first reason with code, or -1. */
static int find(const char *code) {
    for (size_t i = 0; i < res.nreasons; i++)
        if (strcmp(res.reasons[i].code, code) == 0)
            return (int)i;
    return -1;
}

static const char *text_of(const char *code) {
    int i = find(code);
    if (i < 0) {
        fprintf(stderr, "no %s among %zu reasons:\n", code, res.nreasons);
        for (size_t k = 0; k < res.nreasons; k++)
            fprintf(stderr, "  %s: %s\n", res.reasons[k].code, res.reasons[k].text);
        im_test_fail(__FILE__, __LINE__, "missing reason %s", code);
    }
    return res.reasons[i].text;
}

static void dump(void) {
    for (size_t k = 0; k < res.nreasons; k++)
        fprintf(stderr, "  %s: %s\n", res.reasons[k].code, res.reasons[k].text);
}

static void expect_approved(void) {
    run();
    if (!res.approved || res.nreasons != 0) {
        dump();
        im_test_fail(__FILE__, __LINE__, "expected approval, got %zu reasons", res.nreasons);
    }
}

/* Runs the check and asserts that exactly the given codes were raised, in
 * that order. */
static void expect_only(int n, ...) {
    va_list ap;
    run();
    if (res.approved || (int)res.nreasons != n) {
        dump();
        im_test_fail(__FILE__, __LINE__, "expected %d reasons, got %zu (approved %d)", n,
                     res.nreasons, res.approved);
    }
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const char *code = va_arg(ap, const char *);
        if (strcmp(res.reasons[i].code, code) != 0) {
            dump();
            im_test_fail(__FILE__, __LINE__, "reason %d is %s, expected %s", i,
                         res.reasons[i].code, code);
        }
    }
    va_end(ap);
}

static void expect_invalid(void) {
    run();
    ASSERT_EQ(res.approved, 0);
    ASSERT(res.nreasons >= 1);
    for (size_t i = 0; i < res.nreasons; i++) {
        if (strcmp(res.reasons[i].code, "RISK_INVALID_INPUT") != 0) {
            dump();
            im_test_fail(__FILE__, __LINE__, "sanity failure also ran %s",
                         res.reasons[i].code);
        }
    }
}

/* ---- the demo cases ------------------------------------------------------ */

TEST(risk_demo_tsla_400_market) {
    /* BUY 400 TSLA MKT at an ask of 249.37 with default limits: priced at
     * the collar, it breaks both the order and the position cap. */
    double px, notional;
    setup("TSLA", IM_SIDE_BUY, 400, IM_OT_MKT, 0, 0);
    set_quote(249.35, 249.37);
    expect_only(2, "RISK_NOTIONAL_LIMIT", "RISK_POSITION_LIMIT");
    px = 249.37 * (1.0 + 100 / 10000.0);
    notional = 400 * px;
    ASSERT_NEAR(res.reference_price, 249.37, 0);
    ASSERT_NEAR(res.pricing_price, px, 1e-9);
    ASSERT_NEAR(res.notional, notional, 1e-6);
    ASSERT_NEAR(notional, 100745.48, 0.005);
    ASSERT_NEAR(res.projected_position, 400, 0);
    ASSERT_STR_EQ(res.reasons[0].text, "Order notional $100,745.48 exceeds per-order cap $20,000.");
    ASSERT_STR_EQ(res.reasons[1].text,
                  "Resulting position notional $100,745.48 exceeds position cap $60,000.");
}

TEST(risk_demo_nvda_50_market_approved) {
    setup("NVDA", IM_SIDE_BUY, 50, IM_OT_MKT, 0, 0);
    set_quote(135.38, 135.40);
    expect_approved();
    ASSERT_NEAR(res.reference_price, 135.40, 0);
    ASSERT_NEAR(res.notional, 50 * 135.40 * 1.01, 1e-6);
    ASSERT_NEAR(res.projected_position, 50, 0);
}

/* ---- entry conditions ---------------------------------------------------- */

TEST(risk_null_arguments) {
    setup("AAPL", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0);
    ASSERT_EQ(im_risk_check(NULL, &in, &res), IM_EINVAL);
    ASSERT_EQ(res.approved, 0);
    ASSERT_EQ(im_risk_check(&lim, NULL, &res), IM_EINVAL);
    ASSERT_EQ(im_risk_check(&lim, &in, NULL), IM_EINVAL);
    in.order = NULL;
    res.approved = 1;
    ASSERT_EQ(im_risk_check(&lim, &in, &res), IM_EINVAL);
    ASSERT_EQ(res.approved, 0);
}

TEST(risk_bad_stage_or_clock) {
    setup("AAPL", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0);
    in.stage = 0;
    ASSERT_EQ(im_risk_check(&lim, &in, &res), IM_EINVAL);
    ASSERT_EQ(res.approved, 0);
    in.stage = 7;
    ASSERT_EQ(im_risk_check(&lim, &in, &res), IM_EINVAL);
    in.stage = IM_RISK_PLACE;
    in.now = NAN;
    ASSERT_EQ(im_risk_check(&lim, &in, &res), IM_EINVAL);
    ASSERT_EQ(res.approved, 0);
    in.now = INFINITY;
    ASSERT_EQ(im_risk_check(&lim, &in, &res), IM_EINVAL);
}

TEST(risk_bad_limits_fail_closed) {
    setup("AAPL", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0);
    lim.max_order_qty = NAN;
    expect_invalid();
    ASSERT_CONTAINS(res.reasons[0].text, "limits are not usable");
    setup("AAPL", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0);
    lim.max_order_notional = INFINITY;
    expect_invalid();
    setup("AAPL", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0);
    lim.max_position_notional = -1;
    expect_invalid();
    setup("AAPL", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0);
    lim.max_quote_age_s = NAN;
    expect_invalid();
    setup("AAPL", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0);
    lim.max_daily_orders = -1;
    expect_invalid();
    setup("AAPL", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0);
    lim.mkt_protect_bps = 10000;
    expect_invalid();
}

/* ---- input sanity -------------------------------------------------------- */

TEST(risk_sanity_quantity) {
    static const double bad[] = {0, -0.0, -1, -1e9, 0.5, 1.5, 99.999, 1e9 + 1, 1e300,
                                 9223372036854775808.0, DBL_MIN, 5e-324};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setup("AAPL", IM_SIDE_BUY, bad[i], IM_OT_LMT, 100, 0);
        expect_invalid();
        ASSERT_CONTAINS(res.reasons[0].text, "Quantity");
        ASSERT_NEAR(res.notional, 0, 0);
    }
    /* Non-finite quantities: refused before any comparison. */
    setup("AAPL", IM_SIDE_BUY, NAN, IM_OT_LMT, 100, 0);
    expect_invalid();
    ASSERT_STR_EQ(res.reasons[0].text, "Quantity nan is not a finite number.");
    setup("AAPL", IM_SIDE_BUY, INFINITY, IM_OT_MKT, 0, 0);
    expect_invalid();
    ASSERT_STR_EQ(res.reasons[0].text, "Quantity inf is not a finite number.");
    setup("AAPL", IM_SIDE_SELL, -INFINITY, IM_OT_MKT, 0, 0);
    expect_invalid();
    setup("AAPL", IM_SIDE_BUY, 1e300, IM_OT_MKT, 0, 0);
    expect_invalid();
    ASSERT_STR_EQ(res.reasons[0].text, "Quantity 1e+300 exceeds the sanity bound 1e+09.");
    setup("AAPL", IM_SIDE_BUY, 0.5, IM_OT_MKT, 0, 0);
    expect_invalid();
    ASSERT_STR_EQ(res.reasons[0].text, "Quantity 0.5 is not a whole number of shares.");
    setup("AAPL", IM_SIDE_BUY, 0, IM_OT_MKT, 0, 0);
    expect_invalid();
    ASSERT_STR_EQ(res.reasons[0].text, "Quantity 0 must be greater than 0.");

    /* The sanity bound itself is a valid quantity (the caps refuse it). */
    setup("AAPL", IM_SIDE_BUY, 1e9, IM_OT_LMT, 100, 0);
    run();
    ASSERT(find("RISK_INVALID_INPUT") < 0);
    ASSERT(find("RISK_QTY_LIMIT") >= 0);
}

TEST(risk_sanity_limit_price) {
    static const double bad[] = {0, -0.0, -1, -0.01, NAN, INFINITY, -INFINITY, 1e7 + 0.01,
                                 1e300};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, bad[i], 0);
        expect_invalid();
        ASSERT_CONTAINS(res.reasons[0].text, "Limit price");
        setup("AAPL", IM_SIDE_BUY, 10, IM_OT_STP_LMT, bad[i], 101);
        expect_invalid();
        ASSERT_CONTAINS(res.reasons[0].text, "Limit price");
    }
    /* Missing limit on a LMT order. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 0, 0);
    expect_invalid();
    ASSERT_STR_EQ(res.reasons[0].text, "Limit price is required for a LMT order (set limit_price).");
    /* The bound itself is a valid price. */
    setup("AAPL", IM_SIDE_SELL, 1, IM_OT_LMT, 1e7, 0);
    set_quote(1e7 - 1, 1e7);
    loosen_account_checks();
    lim.max_order_notional = 1e8;
    lim.allow_short = 1;
    lim.max_position_notional = 1e8;
    expect_approved();
}

TEST(risk_sanity_price_not_allowed) {
    /* A limit on MKT or STP, a stop on MKT or LMT. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 100, 0);
    expect_invalid();
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Limit price 100 is not allowed on a MKT order; use 0.");
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_STP, 100, 105);
    expect_invalid();
    ASSERT_CONTAINS(res.reasons[0].text, "Limit price 100 is not allowed on a STP order");
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 105);
    expect_invalid();
    ASSERT_CONTAINS(res.reasons[0].text, "Stop price 105 is not allowed on a MKT order");
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 105);
    expect_invalid();
    ASSERT_CONTAINS(res.reasons[0].text, "Stop price 105 is not allowed on a LMT order");
    /* NaN where 0 is expected is not 0. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, NAN, 0);
    expect_invalid();
    ASSERT_CONTAINS(res.reasons[0].text, "not a finite number");
    /* -0.0 is zero. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, -0.0, -0.0);
    expect_approved();
}

TEST(risk_sanity_stop_price) {
    static const double bad[] = {0, -5, NAN, INFINITY, 2e7};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setup("AAPL", IM_SIDE_BUY, 10, IM_OT_STP, 0, bad[i]);
        expect_invalid();
        ASSERT_CONTAINS(res.reasons[0].text, "Stop price");
        setup("AAPL", IM_SIDE_BUY, 10, IM_OT_STP_LMT, 110, bad[i]);
        expect_invalid();
        ASSERT_CONTAINS(res.reasons[0].text, "Stop price");
    }
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_STP, 0, 0);
    expect_invalid();
    ASSERT_STR_EQ(res.reasons[0].text, "Stop price is required for a STP order (set stop_price).");
}

TEST(risk_sanity_symbol) {
    static const char *const bad[] = {"", "aapl", " AAPL", "AAPL ", "1ABC", ".A",
                                      "ABCDEFGHIJKLM", "A-B", "AA PL", "\xd0\x90PL", "A\tB"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setup(bad[i], IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
        expect_invalid();
        ASSERT_CONTAINS(res.reasons[0].text, "Symbol '");
        /* The sentence carries no raw control or non-ASCII byte. */
        for (const char *p = res.reasons[0].text; *p != '\0'; p++)
            ASSERT(*p >= ' ' && *p <= '~');
    }
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    memset(ord.symbol, 'A', sizeof ord.symbol); /* no terminator at all */
    expect_invalid();

    /* Twelve characters and dots are fine. */
    setup("BRK.B", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    expect_approved();
    setup("ABCDEFGHIJKL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    expect_approved();
}

TEST(risk_sanity_enums) {
    static const int bad_side[] = {0, 3, -1, 1000};
    static const int bad_type[] = {0, 5, -1};
    static const int bad_tif[] = {0, 4, -1};
    for (size_t i = 0; i < sizeof bad_side / sizeof bad_side[0]; i++) {
        setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
        ord.side = (im_side)bad_side[i];
        expect_invalid();
        ASSERT_CONTAINS(res.reasons[0].text, "is not BUY or SELL");
    }
    for (size_t i = 0; i < sizeof bad_type / sizeof bad_type[0]; i++) {
        setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
        ord.type = (im_order_type)bad_type[i];
        expect_invalid();
        ASSERT_CONTAINS(res.reasons[0].text, "is not MKT, LMT, STP or STP LMT");
        ASSERT_EQ(res.nreasons, 1);
    }
    for (size_t i = 0; i < sizeof bad_tif / sizeof bad_tif[0]; i++) {
        setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
        ord.tif = (im_tif)bad_tif[i];
        expect_invalid();
        ASSERT_CONTAINS(res.reasons[0].text, "is not DAY, GTC or IOC");
    }
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    ord.tif = IM_TIF_IOC;
    expect_approved();
    ord.tif = IM_TIF_GTC;
    expect_approved();
}

TEST(risk_sanity_reports_every_field_and_stops) {
    /* Several bad fields: every one is named, and no later check runs
     * (the quote is missing and the daily limit is reached, yet neither
     * is reported). */
    setup("bad", (im_side)9, NAN, IM_OT_LMT, -1, 3);
    in.quote = NULL;
    in.orders_today = 1000;
    expect_invalid();
    ASSERT_EQ(res.nreasons, 5);
    ASSERT_NEAR(res.reference_price, 0, 0);
    ASSERT_NEAR(res.notional, 0, 0);
}

TEST(risk_sanity_account_state) {
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    in.position_qty = NAN;
    expect_invalid();
    ASSERT_CONTAINS(res.reasons[0].text, "Account state is not usable");
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    in.working_buy_qty = -1;
    expect_invalid();
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    in.working_sell_qty = INFINITY;
    expect_invalid();
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    in.orders_today = -1;
    expect_invalid();
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = NAN;
    expect_invalid();
    ASSERT_CONTAINS(res.reasons[0].text, "Preview reference price");
}

/* ---- kill switch --------------------------------------------------------- */

TEST(risk_halted) {
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    in.halted = 1;
    in.halt_reason = "operator drill";
    expect_only(1, "RISK_HALTED");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Trading is halted: operator drill. Only an operator can resume trading.");

    in.halt_reason = NULL;
    expect_only(1, "RISK_HALTED");
    ASSERT_CONTAINS(res.reasons[0].text, "Trading is halted: no reason given.");

    /* The other checks still run and are listed after it. */
    in.halt_reason = "agent request";
    ord.quantity = 1500;
    run();
    ASSERT_EQ(find("RISK_HALTED"), 0);
    ASSERT(find("RISK_QTY_LIMIT") > 0);

    /* Halted at place too. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = 100.01;
    in.halted = 1;
    expect_only(1, "RISK_HALTED");
}

TEST(risk_halted_with_bad_input) {
    setup("AAPL", IM_SIDE_BUY, -5, IM_OT_LMT, 100, 0);
    in.halted = 1;
    in.halt_reason = "x";
    expect_only(2, "RISK_HALTED", "RISK_INVALID_INPUT");
}

/* ---- whitelist ----------------------------------------------------------- */

TEST(risk_whitelist) {
    setup("TSLA", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    snprintf(lim.whitelist[0], sizeof lim.whitelist[0], "AAPL");
    snprintf(lim.whitelist[1], sizeof lim.whitelist[1], "MSFT");
    lim.nwhitelist = 2;
    expect_only(1, "RISK_SYMBOL_NOT_ALLOWED");
    ASSERT_STR_EQ(res.reasons[0].text, "Symbol TSLA is not in the allowed list (AAPL, MSFT).");

    setup("MSFT", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    snprintf(lim.whitelist[0], sizeof lim.whitelist[0], "AAPL");
    snprintf(lim.whitelist[1], sizeof lim.whitelist[1], "MSFT");
    lim.nwhitelist = 2;
    expect_approved();
}

TEST(risk_whitelist_long_list_is_shortened) {
    setup("ZZZ", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    for (int i = 0; i < 12; i++)
        snprintf(lim.whitelist[i], sizeof lim.whitelist[i], "SYM%02d", i);
    lim.nwhitelist = 12;
    expect_only(1, "RISK_SYMBOL_NOT_ALLOWED");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Symbol ZZZ is not in the allowed list (SYM00, SYM01, SYM02, SYM03, SYM04, "
                  "SYM05, SYM06, SYM07, SYM08, SYM09, ...).");
}

/* ---- quotes -------------------------------------------------------------- */

TEST(risk_quote_missing) {
    /* A market order without a quote has no price: rejected, notional 0,
     * and no cap can be evaluated (and none is reported). */
    setup("XYZ", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0);
    in.quote = NULL;
    expect_only(1, "RISK_NO_QUOTE");
    ASSERT_STR_EQ(res.reasons[0].text, "No quote for XYZ; orders need a current price.");
    ASSERT_NEAR(res.reference_price, 0, 0);
    ASSERT_NEAR(res.pricing_price, 0, 0);
    ASSERT_NEAR(res.notional, 0, 0);

    setup("XYZ", IM_SIDE_SELL, 10, IM_OT_STP, 0, 90);
    in.quote = NULL;
    lim.allow_short = 1;
    expect_only(1, "RISK_NO_QUOTE");
    ASSERT_NEAR(res.notional, 0, 0);

    /* A limit order has its own price; it is still refused (fail closed),
     * and the caps are evaluated at the limit. */
    setup("XYZ", IM_SIDE_BUY, 300, IM_OT_LMT, 100, 0);
    in.quote = NULL;
    expect_only(2, "RISK_NO_QUOTE", "RISK_NOTIONAL_LIMIT");
    ASSERT_NEAR(res.notional, 30000, 0);
}

TEST(risk_quote_bad_prices) {
    static const double cases[][2] = {
        {101, 100},     /* crossed */
        {0, 100},       /* no bid */
        {100, 0},       /* no ask */
        {-1, 100},      {100, -1},
        {NAN, 100},     {100, NAN},
        {INFINITY, INFINITY}, {100, INFINITY},
        {100, 2e7},     /* absurd */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0);
        set_quote(cases[i][0], cases[i][1]);
        expect_only(1, "RISK_BAD_QUOTE");
        ASSERT_NEAR(res.reference_price, 0, 0);
        ASSERT_NEAR(res.notional, 0, 0);
    }
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0);
    set_quote(101, 100);
    run();
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Quote for AAPL is not usable (bid $101.00, ask $100.00); both must be "
                  "positive, the bid no higher than the ask.");
    set_quote(NAN, 100);
    run();
    ASSERT_CONTAINS(res.reasons[0].text, "(bid $?, ask $100.00)");

    /* A locked market (bid == ask) is usable. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0);
    set_quote(100, 100);
    expect_approved();
}

TEST(risk_quote_for_other_symbol) {
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0);
    snprintf(quo.symbol, sizeof quo.symbol, "MSFT");
    expect_only(1, "RISK_BAD_QUOTE");
    ASSERT_STR_EQ(res.reasons[0].text, "The quote supplied is for MSFT, not AAPL.");
    /* An unnamed quote is taken as the one asked for. */
    quo.symbol[0] = '\0';
    expect_approved();
}

TEST(risk_quote_delayed) {
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0);
    quo.delayed = 1;
    expect_only(1, "RISK_DELAYED_DATA");
    ASSERT_CONTAINS(res.reasons[0].text, "Quote for AAPL is delayed");
    ASSERT_CONTAINS(res.reasons[0].text, "IBKR_ALLOW_DELAYED_QUOTES=true");
    lim.allow_delayed_quotes = 1;
    expect_approved();
}

TEST(risk_quote_stale_boundary) {
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0);
    quo.time = NOW - 60; /* exactly the default 60 s: allowed */
    expect_approved();
    quo.time = NOW - 60.001;
    expect_only(1, "RISK_STALE_QUOTE");
    ASSERT_CONTAINS(res.reasons[0].text, "Quote for AAPL is 60.001 s old; the limit is 60 s.");
    quo.time = NOW - 75;
    run();
    ASSERT_STR_EQ(res.reasons[0].text, "Quote for AAPL is 75 s old; the limit is 60 s.");
    quo.time = 0;
    expect_only(1, "RISK_STALE_QUOTE");
    quo.time = NAN;
    expect_only(1, "RISK_STALE_QUOTE");
    ASSERT_STR_EQ(res.reasons[0].text, "Quote for AAPL has no valid timestamp.");
    quo.time = -INFINITY;
    expect_only(1, "RISK_STALE_QUOTE");

    lim.max_quote_age_s = 5;
    quo.time = NOW - 5;
    expect_approved();
    quo.time = NOW - 5.001;
    expect_only(1, "RISK_STALE_QUOTE");
}

TEST(risk_quote_future) {
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0);
    quo.time = NOW + 5; /* 5 s of skew is tolerated */
    expect_approved();
    quo.time = NOW + 5.001;
    expect_only(1, "RISK_STALE_QUOTE");
    ASSERT_CONTAINS(res.reasons[0].text, "in the future");
    quo.time = NOW + 3600;
    expect_only(1, "RISK_STALE_QUOTE");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Quote for AAPL is stamped 3600 s in the future; more than 5 s of clock "
                  "skew is refused.");
    quo.time = INFINITY;
    expect_only(1, "RISK_STALE_QUOTE");
}

/* ---- pricing ------------------------------------------------------------- */

TEST(risk_pricing_collar_market) {
    /* BUY at ask x (1 + collar), SELL at bid x (1 - collar). */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0);
    set_quote(199.50, 200.00);
    expect_approved();
    ASSERT_NEAR(res.reference_price, 200.00, 0);
    ASSERT_NEAR(res.pricing_price, 202.00, 1e-9);
    ASSERT_NEAR(res.notional, 2020.00, 1e-9);

    setup("AAPL", IM_SIDE_SELL, 10, IM_OT_MKT, 0, 0);
    set_quote(199.50, 200.00);
    in.position_qty = 10;
    expect_approved();
    ASSERT_NEAR(res.reference_price, 199.50, 0);
    ASSERT_NEAR(res.pricing_price, 199.50 * 0.99, 1e-9);
    ASSERT_NEAR(res.projected_position, 0, 0);

    /* A wider collar raises a BUY's notional past the cap. */
    setup("AAPL", IM_SIDE_BUY, 99, IM_OT_MKT, 0, 0);
    set_quote(199.99, 200.00);
    lim.mkt_protect_bps = 0;
    expect_approved(); /* 99 x 200 = 19,800 */
    lim.mkt_protect_bps = 200;
    expect_only(1, "RISK_NOTIONAL_LIMIT"); /* 99 x 204 = 20,196 */
    ASSERT_STR_EQ(res.reasons[0].text, "Order notional $20,196 exceeds per-order cap $20,000.");
}

TEST(risk_pricing_collar_boundary) {
    /* The collar price is what the cap sees: 100 x 198.01 x 1.01 is
     * $19,999.01 (passes), 100 x 198.03 x 1.01 is $20,001.03 (fails), though
     * both asks are far below $200. */
    setup("AAPL", IM_SIDE_BUY, 100, IM_OT_MKT, 0, 0);
    set_quote(198.00, 198.01);
    run();
    ASSERT(find("RISK_NOTIONAL_LIMIT") < 0);
    ASSERT_NEAR(res.notional, 19999.01, 1e-6);
    set_quote(198.00, 198.03);
    run();
    ASSERT(find("RISK_NOTIONAL_LIMIT") >= 0);
    ASSERT_STR_EQ(text_of("RISK_NOTIONAL_LIMIT"),
                  "Order notional $20,001.03 exceeds per-order cap $20,000.");
}

TEST(risk_pricing_limit_and_stop) {
    /* LMT and STP LMT: the limit. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 95.5, 0);
    expect_approved();
    ASSERT_NEAR(res.pricing_price, 95.5, 0);
    ASSERT_NEAR(res.notional, 955, 1e-9);
    ASSERT_NEAR(res.reference_price, 100.01, 0);

    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_STP_LMT, 112, 110);
    expect_approved();
    ASSERT_NEAR(res.pricing_price, 112, 0);

    /* STP: the stop through the collar. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_STP, 0, 110);
    expect_approved();
    ASSERT_NEAR(res.pricing_price, 110 * 1.01, 1e-9);
    ASSERT_NEAR(res.notional, 1111, 1e-9);

    setup("AAPL", IM_SIDE_SELL, 10, IM_OT_STP, 0, 90);
    in.position_qty = 10;
    expect_approved();
    ASSERT_NEAR(res.pricing_price, 90 * 0.99, 1e-9);
    ASSERT_NEAR(res.reference_price, 99.99, 0);
}

/* ---- stop triggers ------------------------------------------------------- */

TEST(risk_stop_trigger_side) {
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_STP, 0, 100.01); /* at the ask */
    expect_only(1, "RISK_BAD_TRIGGER");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Buy stop $100.01 is at or below the ask $100.01, so it would trigger at once.");
    ord.stop_price = 95;
    expect_only(1, "RISK_BAD_TRIGGER");
    ord.stop_price = 100.02;
    expect_approved();

    setup("AAPL", IM_SIDE_SELL, 10, IM_OT_STP, 0, 99.99); /* at the bid */
    in.position_qty = 10;
    expect_only(1, "RISK_BAD_TRIGGER");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Sell stop $99.99 is at or above the bid $99.99, so it would trigger at once.");
    ord.stop_price = 99.98;
    expect_approved();

    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_STP_LMT, 101, 100);
    expect_only(1, "RISK_BAD_TRIGGER");
    ord.stop_price = 100.5;
    expect_approved();

    /* Without a usable quote, only the quote is blamed. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_STP_LMT, 101, 50);
    set_quote(0, 0);
    expect_only(1, "RISK_BAD_QUOTE");
}

/* ---- quantity and notional caps ------------------------------------------ */

TEST(risk_qty_cap_boundary) {
    setup("F", IM_SIDE_BUY, 1000, IM_OT_LMT, 10, 0);
    loosen_price_checks();
    lim.max_position_notional = 1e9;
    expect_approved();
    ord.quantity = 1001;
    expect_only(1, "RISK_QTY_LIMIT");
    ASSERT_STR_EQ(res.reasons[0].text, "Order quantity 1,001 exceeds per-order cap 1,000 shares.");
    ord.quantity = 1500;
    ord.limit_price = 1;
    expect_only(1, "RISK_QTY_LIMIT");
    ASSERT_STR_EQ(res.reasons[0].text, "Order quantity 1,500 exceeds per-order cap 1,000 shares.");
}

TEST(risk_notional_cap_boundary_cents) {
    /* Exactly $20,000.00 passes; $20,000.01 fails. */
    setup("AAPL", IM_SIDE_BUY, 100, IM_OT_LMT, 200, 0);
    loosen_price_checks();
    expect_approved();
    ASSERT_NEAR(res.notional, 20000, 0);
    ord.quantity = 1;
    ord.limit_price = 20000.01;
    expect_only(1, "RISK_NOTIONAL_LIMIT");
    ASSERT_STR_EQ(res.reasons[0].text, "Order notional $20,000.01 exceeds per-order cap $20,000.");
    ord.limit_price = 20000.00;
    expect_approved();
    /* Binary rounding does not push an exact figure over: 3 x 6666.67 is
     * $20,000.01 (fails), 0.1 + 0.2 style sums at the cap pass. */
    ord.quantity = 3;
    ord.limit_price = 6666.67;
    expect_only(1, "RISK_NOTIONAL_LIMIT");
    ord.quantity = 100;
    ord.limit_price = 199.99 + 0.01;
    expect_approved();
    /* One share over at a price that leaves the notional at the cap + 1
     * share. */
    ord.quantity = 101;
    ord.limit_price = 200;
    expect_only(1, "RISK_NOTIONAL_LIMIT");
    ASSERT_STR_EQ(res.reasons[0].text, "Order notional $20,200 exceeds per-order cap $20,000.");
}

TEST(risk_notional_and_position_both_reported) {
    setup("AAPL", IM_SIDE_BUY, 700, IM_OT_LMT, 100, 0);
    expect_only(2, "RISK_NOTIONAL_LIMIT", "RISK_POSITION_LIMIT");
    ASSERT_STR_EQ(res.reasons[0].text, "Order notional $70,000 exceeds per-order cap $20,000.");
    ASSERT_STR_EQ(res.reasons[1].text,
                  "Resulting position notional $70,000 exceeds position cap $60,000.");
}

TEST(risk_huge_caps_do_not_overflow) {
    setup("AAPL", IM_SIDE_BUY, 1e9, IM_OT_LMT, 1e7, 0);
    loosen_price_checks();
    loosen_account_checks();
    lim.max_order_qty = 1e300;
    lim.max_order_notional = 1e300;
    lim.max_position_notional = 1e300;
    expect_approved();
    lim.max_order_notional = 1e15;
    expect_only(1, "RISK_NOTIONAL_LIMIT");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Order notional $10,000,000,000,000,000 exceeds per-order cap "
                  "$1,000,000,000,000,000.");
}

/* ---- projected position -------------------------------------------------- */

TEST(risk_position_cap_boundary) {
    /* 200 held + 100 bought at $200 = 300 x 200 = $60,000: at the cap. */
    setup("AAPL", IM_SIDE_BUY, 100, IM_OT_LMT, 200, 0);
    loosen_price_checks();
    in.position_qty = 200;
    expect_approved();
    ASSERT_NEAR(res.projected_position, 300, 0);
    /* One more share in a working buy tips it over. */
    in.working_buy_qty = 1;
    expect_only(1, "RISK_POSITION_LIMIT");
    ASSERT_NEAR(res.projected_position, 301, 0);
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Resulting position notional $60,200 exceeds position cap $60,000.");
    /* Working sells do not offset a buy's exposure. */
    in.working_buy_qty = 0;
    in.working_sell_qty = 50;
    expect_approved();
    ASSERT_NEAR(res.projected_position, 300, 0);
}

TEST(risk_position_reducing_never_blocked) {
    /* Already far over the cap (1,000 x $100 = $100,000 > $60,000). */
    setup("AAPL", IM_SIDE_SELL, 100, IM_OT_LMT, 100, 0);
    in.position_qty = 1000;
    expect_approved();
    ASSERT_NEAR(res.projected_position, 900, 0);

    /* Covering part of a short is reducing too. */
    setup("AAPL", IM_SIDE_BUY, 100, IM_OT_LMT, 100, 0);
    in.position_qty = -1000;
    expect_approved();
    ASSERT_NEAR(res.projected_position, -900, 0);

    /* Going exactly flat. */
    setup("AAPL", IM_SIDE_SELL, 1000, IM_OT_LMT, 10, 0);
    loosen_price_checks();
    in.position_qty = 1000;
    expect_approved();
    ASSERT_NEAR(res.projected_position, 0, 0);
}

TEST(risk_position_flip_counts_as_exposure) {
    setup("AAPL", IM_SIDE_SELL, 700, IM_OT_LMT, 100, 0);
    lim.allow_short = 1;
    lim.max_order_notional = 1e6;
    in.position_qty = 100;
    expect_approved(); /* projected -600 x 100 = $60,000 */
    ASSERT_NEAR(res.projected_position, -600, 0);
    ord.quantity = 701;
    expect_only(1, "RISK_POSITION_LIMIT");
    ASSERT_NEAR(res.projected_position, -601, 0);
    /* Working sells count towards the short. */
    ord.quantity = 700;
    in.working_sell_qty = 1;
    expect_only(1, "RISK_POSITION_LIMIT");
}

TEST(risk_position_uses_collar_for_market) {
    setup("AAPL", IM_SIDE_BUY, 100, IM_OT_MKT, 0, 0);
    set_quote(149.50, 150.00);
    in.position_qty = 300;
    /* 400 x 151.50 = $60,600 */
    expect_only(1, "RISK_POSITION_LIMIT");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Resulting position notional $60,600 exceeds position cap $60,000.");
}

/* ---- short selling ------------------------------------------------------- */

TEST(risk_short_selling) {
    setup("TSLA", IM_SIDE_SELL, 100, IM_OT_LMT, 100, 0);
    in.position_qty = 60;
    expect_only(1, "RISK_SHORT_NOT_ALLOWED");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Selling 100 TSLA exceeds the 60 shares held (0 already being sold); short "
                  "selling is disabled.");
    ord.quantity = 60; /* everything held: allowed */
    expect_approved();

    /* Working sells use up what is held. */
    in.working_sell_qty = 20;
    ord.quantity = 40;
    expect_approved();
    ord.quantity = 41;
    expect_only(1, "RISK_SHORT_NOT_ALLOWED");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Selling 41 TSLA exceeds the 60 shares held (20 already being sold); short "
                  "selling is disabled.");

    /* Flat or short: any sell is a short sale. */
    setup("TSLA", IM_SIDE_SELL, 1, IM_OT_LMT, 100, 0);
    expect_only(1, "RISK_SHORT_NOT_ALLOWED");
    in.position_qty = -5;
    expect_only(1, "RISK_SHORT_NOT_ALLOWED");
    ASSERT_CONTAINS(res.reasons[0].text, "the -5 shares held");

    /* Allowed when the operator says so. */
    lim.allow_short = 1;
    expect_approved();

    /* Buys are never short sales. */
    setup("TSLA", IM_SIDE_BUY, 1, IM_OT_LMT, 100, 0);
    in.position_qty = -5;
    expect_approved();
}

/* ---- daily orders -------------------------------------------------------- */

TEST(risk_daily_limit) {
    setup("AAPL", IM_SIDE_BUY, 1, IM_OT_LMT, 100, 0);
    in.orders_today = 49;
    expect_approved();
    in.orders_today = 50;
    expect_only(1, "RISK_DAILY_ORDER_LIMIT");
    ASSERT_STR_EQ(res.reasons[0].text, "Daily order limit reached: 50 of 50 orders submitted today.");
    in.orders_today = 51;
    expect_only(1, "RISK_DAILY_ORDER_LIMIT");

    /* The same at place. */
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = 100.01;
    in.orders_today = 50;
    expect_only(1, "RISK_DAILY_ORDER_LIMIT");
    in.orders_today = 49;
    expect_approved();

    /* A cap of zero stops every order. */
    lim.max_daily_orders = 0;
    in.orders_today = 0;
    expect_only(1, "RISK_DAILY_ORDER_LIMIT");
}

/* ---- drift at place ------------------------------------------------------ */

TEST(risk_drift_boundary_at_place) {
    setup("NVDA", IM_SIDE_BUY, 10, IM_OT_LMT, 120, 0);
    loosen_price_checks();
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = 100.00;
    set_quote(104.99, 105.00); /* exactly 5.00% */
    expect_approved();
    set_quote(104.99, 105.01);
    expect_only(1, "RISK_PRICE_MOVED");
    set_quote(106.10, 106.20);
    expect_only(1, "RISK_PRICE_MOVED");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Price of NVDA moved 6.20% since the preview ($100.00 -> $106.20); the limit "
                  "is 5.00%. Preview the order again.");
    /* Downward moves count as much. */
    set_quote(94.99, 95.00);
    expect_approved();
    set_quote(94.98, 94.99);
    expect_only(1, "RISK_PRICE_MOVED");
    ASSERT_CONTAINS(res.reasons[0].text, "moved 5.01%");
}

TEST(risk_drift_sell_uses_bid) {
    setup("NVDA", IM_SIDE_SELL, 10, IM_OT_LMT, 90, 0);
    loosen_price_checks();
    in.position_qty = 10;
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = 100.00;
    set_quote(105.00, 110.00); /* bid moved exactly 5% */
    expect_approved();
    set_quote(94.90, 95.00);
    expect_only(1, "RISK_PRICE_MOVED");
}

TEST(risk_drift_not_checked_at_preview) {
    setup("NVDA", IM_SIDE_BUY, 10, IM_OT_LMT, 120, 0);
    in.stage = IM_RISK_PREVIEW;
    in.preview_ref_price = 100.00;
    set_quote(109.99, 110.00);
    expect_approved();
    /* And not at place without a preview reference. */
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = 0;
    expect_approved();
    /* A tighter limit. */
    in.preview_ref_price = 109.00;
    lim.max_drift_bps = 50;
    expect_only(1, "RISK_PRICE_MOVED");
    ASSERT_CONTAINS(res.reasons[0].text, "the limit is 0.50%");
}

/* ---- everything at once -------------------------------------------------- */

TEST(risk_all_reasons_accumulate) {
    setup("TSLA", IM_SIDE_SELL, 1500, IM_OT_MKT, 0, 0);
    set_quote(249.35, 249.37);
    snprintf(lim.whitelist[0], sizeof lim.whitelist[0], "AAPL");
    lim.nwhitelist = 1;
    quo.delayed = 1;
    quo.time = NOW - 120;
    in.halted = 1;
    in.halt_reason = "test";
    in.position_qty = 10;
    in.orders_today = 50;
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = 200;
    expect_only(10, "RISK_HALTED", "RISK_SYMBOL_NOT_ALLOWED", "RISK_DELAYED_DATA",
                "RISK_STALE_QUOTE", "RISK_QTY_LIMIT", "RISK_NOTIONAL_LIMIT",
                "RISK_POSITION_LIMIT", "RISK_SHORT_NOT_ALLOWED", "RISK_DAILY_ORDER_LIMIT",
                "RISK_PRICE_MOVED");
    ASSERT_NEAR(res.reference_price, 249.35, 0);
    ASSERT_NEAR(res.projected_position, -1490, 0);
}

TEST(risk_result_figures_on_approval) {
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100.5, 0);
    in.position_qty = 5;
    in.working_buy_qty = 3;
    in.working_sell_qty = 2;
    expect_approved();
    ASSERT_EQ(res.approved, 1);
    ASSERT_NEAR(res.reference_price, 100.01, 0);
    ASSERT_NEAR(res.pricing_price, 100.5, 0);
    ASSERT_NEAR(res.notional, 1005, 1e-9);
    ASSERT_NEAR(res.projected_position, 18, 0);

    setup("AAPL", IM_SIDE_SELL, 4, IM_OT_LMT, 100.5, 0);
    in.position_qty = 10;
    in.working_buy_qty = 3;
    in.working_sell_qty = 2;
    expect_approved();
    ASSERT_NEAR(res.reference_price, 99.99, 0);
    ASSERT_NEAR(res.projected_position, 4, 0);
}

/* ---- im_risk_reject and money formatting --------------------------------- */

TEST(risk_reject_keeps_first_reasons) {
    im_risk_result r;
    char longcode[100];
    memset(&r, 0, sizeof r);
    r.approved = 1;
    for (int i = 0; i < IM_RISK_MAX_REASONS + 5; i++)
        im_risk_reject(&r, "RISK_X", "reason %d", i);
    ASSERT_EQ(r.approved, 0);
    ASSERT_EQ(r.nreasons, IM_RISK_MAX_REASONS);
    ASSERT_STR_EQ(r.reasons[0].text, "reason 0");
    ASSERT_STR_EQ(r.reasons[IM_RISK_MAX_REASONS - 1].text, "reason 15");

    memset(&r, 0, sizeof r);
    memset(longcode, 'C', sizeof longcode - 1);
    longcode[sizeof longcode - 1] = '\0';
    im_risk_reject(&r, longcode, "%s", "x");
    ASSERT_EQ(strlen(r.reasons[0].code), IM_RISK_CODE_MAX - 1);
    im_risk_reject(NULL, "RISK_X", "ignored");
}

TEST(risk_reject_long_text_truncated) {
    im_risk_result r;
    char big[600];
    memset(&r, 0, sizeof r);
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    im_risk_reject(&r, "RISK_X", "%s", big);
    ASSERT_EQ(strlen(r.reasons[0].text), IM_RISK_TEXT_MAX - 1);
}

TEST(risk_fmt_money) {
    static const struct { double v; const char *s; } cases[] = {
        {99748, "$99,748"},
        {8397.5, "$8,397.50"},
        {-1234.56, "-$1,234.56"},
        {0, "$0"},
        {-0.0, "$0"},
        {-0.001, "$0"},
        {0.01, "$0.01"},
        {0.1 + 0.2, "$0.30"},
        {1, "$1"},
        {999, "$999"},
        {1000, "$1,000"},
        {20000, "$20,000"},
        {20000.004, "$20,000"},
        {20000.01, "$20,000.01"},
        {100745.48, "$100,745.48"},
        {1234567.891, "$1,234,567.89"},
        {-1000000, "-$1,000,000"},
        {123456789012.34, "$123,456,789,012.34"},
        {1e20, "$100,000,000,000,000,000,000"},
        {-1e20, "-$100,000,000,000,000,000,000"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        im_risk_fmt_money(cases[i].v, out, sizeof out);
        ASSERT_STR_EQ(out, cases[i].s);
    }
    im_risk_fmt_money(NAN, out, sizeof out);
    ASSERT_STR_EQ(out, "$?");
    im_risk_fmt_money(INFINITY, out, sizeof out);
    ASSERT_STR_EQ(out, "$?");
    im_risk_fmt_money(-INFINITY, out, sizeof out);
    ASSERT_STR_EQ(out, "$?");
}

TEST(risk_fmt_money_small_buffers) {
    char out[8];
    memset(out, '#', sizeof out);
    im_risk_fmt_money(99748, out, 4);
    ASSERT_STR_EQ(out, "$99");
    ASSERT(out[4] == '#');
    im_risk_fmt_money(99748, out, 1);
    ASSERT_STR_EQ(out, "");
    out[0] = '#';
    im_risk_fmt_money(99748, out, 0);
    ASSERT(out[0] == '#');
    im_risk_fmt_money(99748, NULL, 10);
}

/* ==== the further controls (reference/risk-controls.md section 5) ======== */

/* ---- the demo on the simulator's $100,000 cash account ------------------- */

TEST(risk_demo_on_sim_sized_account) {
    /* The original demo's rejection, with the account the simulator starts
     * with: besides the two caps, it would spend more than the cash and
     * put more than all of net liquidation into one name. */
    setup("TSLA", IM_SIDE_BUY, 400, IM_OT_MKT, 0, 0);
    set_quote(249.35, 249.37);
    set_account("CASH", 100000, 100000, 100000);
    expect_only(4, "RISK_NOTIONAL_LIMIT", "RISK_POSITION_LIMIT", "RISK_BUYING_POWER",
                "RISK_CONCENTRATION");
    ASSERT_STR_EQ(res.reasons[2].text,
                  "Order needs $100,745.48 but buying power is $100,000 (cash account; 0% "
                  "kept free).");
    ASSERT_STR_EQ(res.reasons[3].text,
                  "Resulting position in TSLA of $100,745.48 would be 100.75% of net "
                  "liquidation $100,000; the limit is 100% ($100,000).");

    /* The approved half of the demo still passes. */
    setup("NVDA", IM_SIDE_BUY, 50, IM_OT_MKT, 0, 0);
    set_quote(135.38, 135.40);
    set_account("CASH", 100000, 100000, 100000);
    expect_approved();
}

/* ---- account snapshot ---------------------------------------------------- */

TEST(risk_no_account_fails_closed) {
    /* No snapshot: one reason, not one per account-based check, even for
     * an order that would break all three. */
    setup("AAPL", IM_SIDE_BUY, 100, IM_OT_LMT, 100, 0);
    in.account = NULL;
    expect_only(1, "RISK_NO_ACCOUNT");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "No account snapshot could be read; orders need the account's buying power "
                  "and net liquidation.");
    /* A sell that only reduces a position is refused too: without the
     * account the engine does not decide. */
    setup("AAPL", IM_SIDE_SELL, 10, IM_OT_LMT, 100, 0);
    in.position_qty = 100;
    in.account = NULL;
    expect_only(1, "RISK_NO_ACCOUNT");
    /* The other checks still run and are reported beside it. */
    setup("AAPL", IM_SIDE_BUY, 1500, IM_OT_LMT, 100, 0);
    in.account = NULL;
    expect_only(4, "RISK_QTY_LIMIT", "RISK_NOTIONAL_LIMIT", "RISK_POSITION_LIMIT",
                "RISK_NO_ACCOUNT");
}

TEST(risk_account_figures_not_finite) {
    static const double bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int field = 0; field < 4; field++) {
            setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
            if (field == 0)
                acct.net_liquidation = bad[i];
            else if (field == 1)
                acct.cash = bad[i];
            else if (field == 2)
                acct.buying_power = bad[i];
            else
                in.gross_position_value = bad[i];
            expect_only(1, "RISK_NO_ACCOUNT");
            ASSERT_CONTAINS(res.reasons[0].text, "Account figures are not usable");
        }
    }
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    acct.net_liquidation = NAN;
    in.gross_position_value = 1234.5;
    expect_only(1, "RISK_NO_ACCOUNT");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Account figures are not usable (net liquidation $?, cash $1,000,000, buying "
                  "power $1,000,000, gross positions $1,234.50).");
    /* A negative gross position value is not possible. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    in.gross_position_value = -0.01;
    expect_only(1, "RISK_NO_ACCOUNT");
}

/* ---- buying power -------------------------------------------------------- */

TEST(risk_buying_power_boundary) {
    /* 50 x $200 = $10,000 against $10,000 of buying power: passes. */
    setup("AAPL", IM_SIDE_BUY, 50, IM_OT_LMT, 200, 0);
    set_quote(199.99, 200.00);
    set_account("CASH", 1000000, 10000, 10000);
    expect_approved();
    /* One cent less buying power fails. */
    acct.buying_power = 9999.99;
    expect_only(1, "RISK_BUYING_POWER");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Order needs $10,000 but buying power is $9,999.99 (cash account; 0% kept "
                  "free).");
    /* A margin account says so. */
    snprintf(acct.account_type, sizeof acct.account_type, "MARGIN");
    expect_only(1, "RISK_BUYING_POWER");
    ASSERT_CONTAINS(res.reasons[0].text, "(margin account; 0% kept free)");
    /* Zero or negative buying power refuses any buy. */
    setup("AAPL", IM_SIDE_BUY, 1, IM_OT_LMT, 200, 0);
    set_quote(199.99, 200.00);
    set_account("CASH", 1000000, 0, -500);
    expect_only(1, "RISK_BUYING_POWER");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Order needs $200 but buying power is -$500 (cash account; 0% kept free).");
}

TEST(risk_buying_power_buffer) {
    /* 2% of $10,000 kept free leaves $9,800: exactly that passes, a cent
     * more fails. */
    setup("AAPL", IM_SIDE_BUY, 1, IM_OT_LMT, 9800.00, 0);
    set_quote(9799.99, 9800.00);
    set_account("CASH", 1000000, 10000, 10000);
    lim.cash_buffer_pct = 2;
    expect_approved();
    ord.limit_price = 9800.01;
    expect_only(1, "RISK_BUYING_POWER");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Order needs $9,800.01 but buying power is $10,000 (cash account; 2% kept "
                  "free leaves $9,800).");
    /* A fractional buffer is printed as set. */
    lim.cash_buffer_pct = 2.5;
    ord.limit_price = 9750.01;
    set_quote(9750.00, 9750.01);
    expect_only(1, "RISK_BUYING_POWER");
    ASSERT_CONTAINS(res.reasons[0].text, "2.5% kept free leaves $9,750)");
    /* 100% kept free makes the account sell-only. */
    lim.cash_buffer_pct = 100;
    ord.limit_price = 0.01;
    set_quote(0.01, 0.01);
    expect_only(1, "RISK_BUYING_POWER");
}

TEST(risk_buying_power_market_uses_collar) {
    /* 50 MKT at an ask of $200 is priced at $202: $10,100. */
    setup("AAPL", IM_SIDE_BUY, 50, IM_OT_MKT, 0, 0);
    set_quote(199.99, 200.00);
    set_account("CASH", 1000000, 10100, 10100);
    expect_approved();
    acct.buying_power = 10099.99;
    expect_only(1, "RISK_BUYING_POWER");
    ASSERT_CONTAINS(res.reasons[0].text, "Order needs $10,100 but");
}

TEST(risk_buying_power_sells_and_covers) {
    /* A short sale does not spend buying power here (margin: the gross
     * and concentration checks size it). */
    setup("AAPL", IM_SIDE_SELL, 10, IM_OT_LMT, 100, 0);
    lim.allow_short = 1;
    set_account("MARGIN", 1000000, 0, 0);
    expect_approved();
    /* Buying to cover part of a short reduces exposure: no buying power
     * needed. */
    setup("AAPL", IM_SIDE_BUY, 50, IM_OT_LMT, 100, 0);
    in.position_qty = -100;
    set_account("MARGIN", 1000000, 0, 0);
    expect_approved();
    /* Adding to a long position does need it. */
    in.position_qty = 100;
    expect_only(1, "RISK_BUYING_POWER");
}

/* ---- concentration ------------------------------------------------------- */

TEST(risk_concentration_boundary) {
    /* 20% of $50,000 is $10,000: one share at $10,000.00 passes, at
     * $10,000.01 fails. */
    setup("AAPL", IM_SIDE_BUY, 1, IM_OT_LMT, 10000.00, 0);
    set_quote(9999.99, 10000.00);
    set_account("MARGIN", 50000, 50000, 200000);
    lim.max_position_pct_nlv = 20;
    expect_approved();
    ord.limit_price = 10000.01;
    expect_only(1, "RISK_CONCENTRATION");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Resulting position in AAPL of $10,000.01 would be 20.00% of net liquidation "
                  "$50,000; the limit is 20% ($10,000).");
}

TEST(risk_concentration_projected_position) {
    /* 40 held + 10 bought at $200 = $10,000; a working buy of one more
     * share takes it over. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 200, 0);
    set_quote(199.99, 200.00);
    set_account("MARGIN", 50000, 50000, 200000);
    lim.max_position_pct_nlv = 20;
    in.position_qty = 40;
    expect_approved();
    in.working_buy_qty = 1;
    expect_only(1, "RISK_CONCENTRATION");
    ASSERT_CONTAINS(res.reasons[0].text, "of $10,200 would be 20.40% of");

    /* A short is concentration too. */
    setup("AAPL", IM_SIDE_SELL, 50, IM_OT_LMT, 200, 0);
    set_quote(200.00, 200.01);
    set_account("MARGIN", 50000, 50000, 200000);
    lim.max_position_pct_nlv = 20;
    lim.allow_short = 1;
    expect_approved();
    ord.quantity = 51;
    expect_only(1, "RISK_CONCENTRATION");

    /* Reducing an over-concentrated position is always allowed. */
    setup("AAPL", IM_SIDE_SELL, 10, IM_OT_LMT, 200, 0);
    set_quote(200.00, 200.01);
    set_account("MARGIN", 50000, 50000, 200000);
    lim.max_position_pct_nlv = 20;
    lim.max_position_notional = 1e9;
    in.position_qty = 1000;
    expect_approved();
}

TEST(risk_nlv_zero_or_negative) {
    static const double nlvs[] = {0, -0.0, 0.004, -500, -1e12};
    for (size_t i = 0; i < sizeof nlvs / sizeof nlvs[0]; i++) {
        setup("AAPL", IM_SIDE_BUY, 1, IM_OT_LMT, 100, 0);
        set_account("MARGIN", nlvs[i], 1000, 1000);
        expect_only(2, "RISK_CONCENTRATION", "RISK_GROSS_EXPOSURE");
    }
    setup("AAPL", IM_SIDE_BUY, 1, IM_OT_LMT, 100, 0);
    set_account("MARGIN", -500, 1000, 1000);
    run();
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Net liquidation is -$500, so no position can be sized against it; only "
                  "orders that reduce a position are allowed.");
    ASSERT_STR_EQ(res.reasons[1].text,
                  "Net liquidation is -$500, so gross exposure cannot be sized against it; "
                  "only orders that reduce a position are allowed.");
    /* One cent of net liquidation is something to size against. */
    set_account("MARGIN", 0.01, 1000, 1000);
    expect_only(2, "RISK_CONCENTRATION", "RISK_GROSS_EXPOSURE");
    ASSERT_CONTAINS(res.reasons[0].text, "would be 1000000.00% of net liquidation $0.01");
    /* Selling out is still possible. */
    setup("AAPL", IM_SIDE_SELL, 1, IM_OT_LMT, 100, 0);
    in.position_qty = 5;
    set_account("MARGIN", 0, 0, 0);
    expect_approved();
}

/* ---- gross exposure ------------------------------------------------------ */

TEST(risk_gross_exposure_boundary) {
    /* 200% of $100,000 = $200,000: $190,000 held + $10,000 passes. */
    setup("AAPL", IM_SIDE_BUY, 50, IM_OT_LMT, 200, 0);
    set_quote(199.99, 200.00);
    set_account("MARGIN", 100000, 100000, 400000);
    in.gross_position_value = 190000;
    expect_approved();
    in.gross_position_value = 190000.01;
    expect_only(1, "RISK_GROSS_EXPOSURE");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Gross exposure would be $200,000.01 (positions $190,000.01 + this order "
                  "$10,000), 200.00% of net liquidation $100,000; the limit is 200% "
                  "($200,000).");
    /* The strict profile's 100%: cash-like. */
    lim.max_gross_pct_nlv = 100;
    in.gross_position_value = 90000;
    expect_approved();
    in.gross_position_value = 90000.01;
    expect_only(1, "RISK_GROSS_EXPOSURE");
    /* Reducing orders are exempt, however large the book. */
    setup("AAPL", IM_SIDE_SELL, 50, IM_OT_LMT, 200, 0);
    set_quote(200.00, 200.01);
    set_account("MARGIN", 100000, 100000, 400000);
    in.gross_position_value = 1e7;
    in.position_qty = 50;
    expect_approved();
}

/* ---- price collar -------------------------------------------------------- */

TEST(risk_collar_buy_boundary) {
    /* Default 1000 bp: a buy limit up to 10% above the ask. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 110.00, 0);
    set_quote(99.99, 100.00);
    expect_approved();
    ord.limit_price = 110.01;
    expect_only(1, "RISK_PRICE_COLLAR");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Buy limit $110.01 is 10.01% above the ask $100.00; a marketable limit may "
                  "reach at most 10.00% beyond it.");
    /* At the ask is 0 bp. */
    ord.limit_price = 100.00;
    expect_approved();
    /* The strict profile's 200 bp. */
    lim.collar_bps = 200;
    ord.limit_price = 102.00;
    expect_approved();
    ord.limit_price = 102.01;
    expect_only(1, "RISK_PRICE_COLLAR");
    ASSERT_CONTAINS(res.reasons[0].text, "2.01% above the ask $100.00");
    ASSERT_CONTAINS(res.reasons[0].text, "at most 2.00% beyond it");
}

TEST(risk_collar_sell_boundary_and_exits) {
    /* Mirrored for sells, from the bid; an exit is collared too. */
    setup("AAPL", IM_SIDE_SELL, 10, IM_OT_LMT, 90.00, 0);
    set_quote(100.00, 100.01);
    in.position_qty = 10;
    expect_approved();
    ord.limit_price = 89.99;
    expect_only(1, "RISK_PRICE_COLLAR");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Sell limit $89.99 is 10.01% below the bid $100.00; a marketable limit may "
                  "reach at most 10.00% beyond it.");
    /* At place as at preview. */
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = 100.00;
    expect_only(1, "RISK_PRICE_COLLAR");
}

TEST(risk_collar_skips_stop_limit_and_market) {
    /* A stop-limit's limit applies after the trigger; MKT is priced at
     * mkt_protect_bps instead. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_STP_LMT, 150, 101);
    set_quote(99.99, 100.00);
    expect_approved();
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0);
    lim.collar_bps = 0.0001;
    expect_approved();
}

/* ---- passive distance ---------------------------------------------------- */

TEST(risk_far_from_market_boundary) {
    /* Default 5000 bp from the bid for a resting buy. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 50.00, 0);
    set_quote(100.00, 100.01);
    expect_approved();
    ord.limit_price = 49.99;
    expect_only(1, "RISK_PRICE_FAR_FROM_MARKET");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Buy limit $49.99 is 50.01% below the bid $100.00; a resting limit may be at "
                  "most 50.00% from it. Check the price for a typo.");
    /* Between the bid and the ask is neither passive-far nor marketable. */
    ord.limit_price = 100.005;
    expect_approved();

    /* From the ask for a resting sell (an exit, still checked). */
    setup("AAPL", IM_SIDE_SELL, 10, IM_OT_LMT, 150.00, 0);
    set_quote(99.99, 100.00);
    in.position_qty = 10;
    expect_approved();
    ord.limit_price = 150.01;
    expect_only(1, "RISK_PRICE_FAR_FROM_MARKET");
    ASSERT_CONTAINS(res.reasons[0].text, "Sell limit $150.01 is 50.01% above the ask $100.00");
}

TEST(risk_far_from_market_typo) {
    /* 15 typed for 150. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 15, 0);
    set_quote(150.00, 150.05);
    lim.passive_max_bps = 2000;
    expect_only(1, "RISK_PRICE_FAR_FROM_MARKET");
    ASSERT_CONTAINS(res.reasons[0].text, "is 90.00% below the bid $150.00");
    /* 20% is the strict boundary. */
    ord.limit_price = 120.00;
    expect_approved();
    ord.limit_price = 119.99;
    expect_only(1, "RISK_PRICE_FAR_FROM_MARKET");
}

/* ---- price floor --------------------------------------------------------- */

TEST(risk_price_floor) {
    /* Off by default (a resting bid at 4 cents). */
    setup("PENNY", IM_SIDE_BUY, 100, IM_OT_LMT, 0.04, 0);
    set_quote(0.04, 0.05);
    expect_approved();

    /* At the floor passes. */
    setup("PENNY", IM_SIDE_BUY, 100, IM_OT_LMT, 1.00, 0);
    set_quote(0.99, 1.00);
    lim.min_price = 1;
    expect_approved();
    /* The ask a cent below it fails. */
    set_quote(0.98, 0.99);
    ord.limit_price = 0.99;
    expect_only(1, "RISK_PRICE_FLOOR");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "The ask $0.99 is below the minimum price $1.00; low-priced stocks are not "
                  "bought or sold short.");
    /* Sub-penny prices are compared exactly. */
    set_quote(0.9998, 0.9999);
    ord.limit_price = 0.9999;
    expect_only(1, "RISK_PRICE_FLOOR");
    ASSERT_CONTAINS(res.reasons[0].text, "The ask $0.9999 is below the minimum price $1.00");

    /* The limit price is judged too. */
    setup("PENNY", IM_SIDE_BUY, 100, IM_OT_LMT, 0.99, 0);
    set_quote(1.00, 1.01);
    lim.min_price = 1;
    expect_only(1, "RISK_PRICE_FLOOR");
    ASSERT_CONTAINS(res.reasons[0].text, "The limit price $0.99 is below");

    /* A short sale is judged at the bid. */
    setup("PENNY", IM_SIDE_SELL, 100, IM_OT_LMT, 1.00, 0);
    set_quote(0.99, 1.00);
    lim.min_price = 1;
    lim.allow_short = 1;
    expect_only(1, "RISK_PRICE_FLOOR");
    ASSERT_CONTAINS(res.reasons[0].text, "The bid $0.99 is below");

    /* Selling out of a position that fell below the floor is allowed. */
    in.position_qty = 100;
    expect_approved();

    /* A market order without a quote has no price to judge: only the
     * missing quote is reported. */
    setup("PENNY", IM_SIDE_BUY, 100, IM_OT_MKT, 0, 0);
    lim.min_price = 1;
    in.quote = NULL;
    expect_only(1, "RISK_NO_QUOTE");
}

/* ---- spread -------------------------------------------------------------- */

TEST(risk_wide_spread_boundary) {
    /* 95 / 105: a spread of exactly 10% of the mid passes (default). */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0);
    set_quote(95.00, 105.00);
    expect_approved();
    set_quote(94.99, 105.00);
    expect_only(1, "RISK_WIDE_SPREAD");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "The spread of AAPL is 10.01% of the mid (bid $94.99, ask $105.00); an order "
                  "that trades on arrival needs a spread of at most 10.00%.");
    /* The strict 100 bp: 99.50 / 100.50 is exactly 1%. */
    lim.max_spread_bps = 100;
    set_quote(99.50, 100.50);
    expect_approved();
    set_quote(99.49, 100.50);
    expect_only(1, "RISK_WIDE_SPREAD");
}

TEST(risk_wide_spread_marketable_only) {
    /* A resting limit in a wide market is fine; a marketable limit, a stop
     * and a market sell (an exit, still checked) are not. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 95, 0);
    set_quote(90.00, 110.00);
    expect_approved();
    ord.limit_price = 110;
    expect_only(1, "RISK_WIDE_SPREAD");
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_STP, 0, 111);
    set_quote(90.00, 110.00);
    expect_only(1, "RISK_WIDE_SPREAD");
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_STP_LMT, 112, 111);
    set_quote(90.00, 110.00);
    expect_approved();
    setup("AAPL", IM_SIDE_SELL, 10, IM_OT_MKT, 0, 0);
    set_quote(90.00, 110.00);
    in.position_qty = 10;
    expect_only(1, "RISK_WIDE_SPREAD");
    /* A locked market has no spread. */
    set_quote(100, 100);
    expect_approved();
}

/* ---- open orders --------------------------------------------------------- */

TEST(risk_open_orders) {
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    in.open_orders_total = 99;
    in.open_orders_symbol = 19;
    expect_approved();
    in.open_orders_total = 100;
    expect_only(1, "RISK_OPEN_ORDERS");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "100 orders are already working; the limit is 100 open orders.");
    in.open_orders_total = 99;
    in.open_orders_symbol = 20;
    expect_only(1, "RISK_OPEN_ORDERS");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "20 orders are already working in AAPL; the limit is 20 per symbol.");
    in.open_orders_total = 100;
    expect_only(2, "RISK_OPEN_ORDERS", "RISK_OPEN_ORDERS");
    /* At place too, and for exits too. */
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = 100.01;
    ord.side = IM_SIDE_SELL;
    in.position_qty = 10;
    expect_only(2, "RISK_OPEN_ORDERS", "RISK_OPEN_ORDERS");
    /* 0 turns each off. */
    lim.max_open_orders = 0;
    lim.max_open_orders_per_symbol = 0;
    in.open_orders_total = 1000000;
    in.open_orders_symbol = 1000000;
    expect_approved();
    /* The strict 10 / 2. */
    lim.max_open_orders = 10;
    lim.max_open_orders_per_symbol = 2;
    in.open_orders_total = 9;
    in.open_orders_symbol = 1;
    expect_approved();
    in.open_orders_symbol = 2;
    expect_only(1, "RISK_OPEN_ORDERS");
}

/* ---- submit rate --------------------------------------------------------- */

TEST(risk_rate_limit_at_place_only) {
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    in.orders_last_minute = 30;
    in.orders_last_hour = 300;
    expect_approved(); /* a preview submits nothing */
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = 100.01;
    expect_only(2, "RISK_RATE_LIMIT", "RISK_RATE_LIMIT");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "30 orders were submitted in the last minute; the limit is 30 per minute.");
    ASSERT_STR_EQ(res.reasons[1].text,
                  "300 orders were submitted in the last hour; the limit is 300 per hour.");
    in.orders_last_minute = 29;
    in.orders_last_hour = 299;
    expect_approved();
    in.orders_last_hour = 300;
    expect_only(1, "RISK_RATE_LIMIT");
    ASSERT_CONTAINS(res.reasons[0].text, "last hour");
    /* 0 turns each off. */
    lim.max_orders_per_min = 0;
    lim.max_orders_per_hour = 0;
    in.orders_last_minute = 1000;
    in.orders_last_hour = 100000;
    expect_approved();
    /* The strict 5 per minute. */
    lim.max_orders_per_min = 5;
    in.orders_last_minute = 4;
    expect_approved();
    in.orders_last_minute = 5;
    expect_only(1, "RISK_RATE_LIMIT");
}

/* ---- duplicates ---------------------------------------------------------- */

TEST(risk_duplicate_window) {
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    lim.dup_window_s = 60;
    expect_approved(); /* -1: no identical order */
    in.same_order_age = 0;
    expect_only(1, "RISK_DUPLICATE");
    in.same_order_age = 12.5;
    expect_only(1, "RISK_DUPLICATE");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "An identical order (BUY 10 AAPL LMT) was submitted 12.5 s ago; identical "
                  "orders within 60 s are refused as duplicates.");
    in.same_order_age = 59.999;
    expect_only(1, "RISK_DUPLICATE");
    in.same_order_age = 60;
    expect_approved();
    in.same_order_age = 3600;
    expect_approved();
    /* At place; and an exit is no exception. */
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = 100.01;
    ord.side = IM_SIDE_SELL;
    in.position_qty = 10;
    in.same_order_age = 1;
    expect_only(1, "RISK_DUPLICATE");
    ASSERT_CONTAINS(res.reasons[0].text, "(SELL 10 AAPL LMT)");
    /* Off by default. */
    lim.dup_window_s = 0;
    in.same_order_age = 0;
    expect_approved();
}

/* ---- daily notional ------------------------------------------------------ */

TEST(risk_daily_notional_boundary) {
    /* $999,000 + 10 x $100 = $1,000,000: at the default cap. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    in.notional_today = 999000;
    expect_approved();
    in.notional_today = 999000.01;
    expect_only(1, "RISK_DAILY_NOTIONAL_LIMIT");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Daily notional would reach $1,000,000.01 ($999,000.01 submitted today + "
                  "this order $1,000); the daily cap is $1,000,000.");
    /* At place, and for sells too (turnover, not exposure). */
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = 99.99;
    ord.side = IM_SIDE_SELL;
    in.position_qty = 10;
    expect_only(1, "RISK_DAILY_NOTIONAL_LIMIT");
    /* A market order counts at its collar price. */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0);
    set_quote(99.99, 100.00);
    in.notional_today = 1000000 - 1010;
    expect_approved();
    in.notional_today += 0.01;
    expect_only(1, "RISK_DAILY_NOTIONAL_LIMIT");
}

/* ---- daily loss ---------------------------------------------------------- */

TEST(risk_daily_loss_boundary) {
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    lim.max_daily_loss = 2000;
    in.pnl_today = -1999.99;
    expect_approved();
    in.pnl_today = -2000;
    expect_only(1, "RISK_DAILY_LOSS");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Daily loss limit reached: P&L today is -$2,000 and the limit is $2,000; only "
                  "orders that reduce a position are allowed until the next trading day.");
    in.pnl_today = -2000.004; /* rounds to the same cent */
    expect_only(1, "RISK_DAILY_LOSS");
    in.pnl_today = -1999.996;
    expect_only(1, "RISK_DAILY_LOSS");
    in.pnl_today = -50000;
    expect_only(1, "RISK_DAILY_LOSS");
    in.pnl_today = 5000;
    expect_approved();
    /* At place too. */
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = 100.01;
    in.pnl_today = -2000;
    expect_only(1, "RISK_DAILY_LOSS");
}

TEST(risk_daily_loss_unknown_pnl) {
    static const double bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
        lim.max_daily_loss = 2000;
        in.pnl_today = bad[i];
        expect_only(1, "RISK_DAILY_LOSS");
        ASSERT_STR_EQ(res.reasons[0].text,
                      "Today's P&L is unknown, so the daily loss limit of $2,000 cannot be "
                      "checked; only orders that reduce a position are allowed.");
        /* Off: an unknown P&L does not matter. */
        lim.max_daily_loss = 0;
        expect_approved();
    }
}

TEST(risk_daily_loss_allows_exits) {
    /* Breached or unknown, a sell out of a long or a buy back of a short
     * passes. */
    setup("AAPL", IM_SIDE_SELL, 10, IM_OT_LMT, 100, 0);
    lim.max_daily_loss = 2000;
    in.position_qty = 100;
    in.pnl_today = -10000;
    expect_approved();
    in.pnl_today = NAN;
    expect_approved();
    setup("AAPL", IM_SIDE_BUY, 100, IM_OT_LMT, 100, 0);
    lim.max_daily_loss = 2000;
    in.position_qty = -100;
    in.pnl_today = -10000;
    expect_approved(); /* to flat */
    /* Selling twice what is held flips to a short of the same size: that
     * reduces nothing, so it is new exposure. */
    setup("AAPL", IM_SIDE_SELL, 200, IM_OT_LMT, 100, 0);
    lim.max_daily_loss = 2000;
    lim.allow_short = 1;
    in.position_qty = 100;
    in.pnl_today = -10000;
    expect_only(1, "RISK_DAILY_LOSS");
}

/* ---- reject breaker ------------------------------------------------------ */

TEST(risk_reject_breaker) {
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    in.consecutive_rejects = 9;
    expect_approved();
    in.consecutive_rejects = 10;
    expect_only(1, "RISK_REJECT_BREAKER");
    ASSERT_STR_EQ(res.reasons[0].text,
                  "10 orders in a row were rejected (the limit is 10); trading stops until an "
                  "operator resumes it.");
    /* Exits too, and at place. */
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = 99.99;
    ord.side = IM_SIDE_SELL;
    in.position_qty = 10;
    expect_only(1, "RISK_REJECT_BREAKER");
    /* The strict 3. */
    lim.max_consecutive_rejects = 3;
    in.consecutive_rejects = 2;
    expect_approved();
    in.consecutive_rejects = 3;
    expect_only(1, "RISK_REJECT_BREAKER");
    /* 0 turns it off. */
    lim.max_consecutive_rejects = 0;
    in.consecutive_rejects = 1000;
    expect_approved();
}

TEST(risk_reject_breaker_with_bad_input) {
    /* Like the kill switch, reported even when the order is malformed. */
    setup("AAPL", IM_SIDE_BUY, -5, IM_OT_LMT, 100, 0);
    in.halted = 1;
    in.halt_reason = "3 rejections in a row";
    in.consecutive_rejects = 10;
    expect_only(3, "RISK_HALTED", "RISK_REJECT_BREAKER", "RISK_INVALID_INPUT");
}

/* ---- counters and limits that cannot support a decision ------------------- */

TEST(risk_counters_not_usable) {
    for (int field = 0; field < 9; field++) {
        setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
        switch (field) {
        case 0: in.open_orders_total = -1; break;
        case 1: in.open_orders_symbol = -1; break;
        case 2: in.orders_last_minute = -1; break;
        case 3: in.orders_last_hour = -1; break;
        case 4: in.consecutive_rejects = -1; break;
        case 5: in.notional_today = NAN; break;
        case 6: in.notional_today = -0.01; break;
        case 7: in.same_order_age = NAN; break;
        default: in.same_order_age = INFINITY; break;
        }
        expect_invalid();
        ASSERT_CONTAINS(res.reasons[0].text, "Order counters are not usable");
    }
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    in.open_orders_symbol = -3;
    expect_invalid();
    ASSERT_STR_EQ(res.reasons[0].text,
                  "Order counters are not usable (open orders 0, -3 in this symbol, 0 in the "
                  "last minute, 0 in the last hour, 0 rejects in a row, 0 submitted today, "
                  "identical order -1 s ago).");
    /* An unknown P&L is not malformed (the daily loss check owns it). */
    setup("AAPL", IM_SIDE_BUY, 10, IM_OT_LMT, 100, 0);
    in.pnl_today = NAN;
    expect_approved();
}

TEST(risk_bad_further_limits_fail_closed) {
    for (int field = 0; field < 22; field++) {
        setup("AAPL", IM_SIDE_BUY, 1, IM_OT_LMT, 100, 0);
        switch (field) {
        case 0: lim.cash_buffer_pct = NAN; break;
        case 1: lim.cash_buffer_pct = -1; break;
        case 2: lim.cash_buffer_pct = 100.01; break;
        case 3: lim.collar_bps = NAN; break;
        case 4: lim.collar_bps = -1; break;
        case 5: lim.passive_max_bps = INFINITY; break;
        case 6: lim.min_price = NAN; break;
        case 7: lim.min_price = -1; break;
        case 8: lim.max_spread_bps = NAN; break;
        case 9: lim.max_position_pct_nlv = NAN; break;
        case 10: lim.max_position_pct_nlv = -5; break;
        case 11: lim.max_gross_pct_nlv = INFINITY; break;
        case 12: lim.max_open_orders = -1; break;
        case 13: lim.max_open_orders_per_symbol = -1; break;
        case 14: lim.max_orders_per_min = -1; break;
        case 15: lim.max_orders_per_hour = -1; break;
        case 16: lim.dup_window_s = NAN; break;
        case 17: lim.dup_window_s = -1; break;
        case 18: lim.max_daily_notional = NAN; break;
        case 19: lim.max_daily_loss = NAN; break;
        case 20: lim.max_daily_loss = -1; break;
        default: lim.max_consecutive_rejects = -1; break;
        }
        expect_invalid();
        ASSERT_CONTAINS(res.reasons[0].text, "limits are not usable");
    }
}

/* ---- exits: privileged but bounded --------------------------------------- */

TEST(risk_exit_skips_exposure_checks) {
    /* A tiny account at its loss limit, a price below the floor, a book far
     * over every percentage: selling part of a long still passes. */
    setup("AAPL", IM_SIDE_SELL, 100, IM_OT_LMT, 0.50, 0);
    set_quote(0.50, 0.51);
    set_account("MARGIN", 1000, 0, 0);
    lim.min_price = 1;
    lim.max_daily_loss = 100;
    lim.max_position_pct_nlv = 20;
    lim.max_gross_pct_nlv = 100;
    in.position_qty = 1000;
    in.gross_position_value = 1e6;
    in.pnl_today = -5000;
    expect_approved();

    /* The same book, buying more: every exposure check speaks. */
    ord.side = IM_SIDE_BUY;
    ord.limit_price = 0.51;
    expect_only(5, "RISK_PRICE_FLOOR", "RISK_BUYING_POWER", "RISK_CONCENTRATION",
                "RISK_GROSS_EXPOSURE", "RISK_DAILY_LOSS");
}

TEST(risk_exit_still_bounded) {
    /* The kill switch, the breaker, input sanity, the collar and the
     * duplicate check apply to exits. */
    setup("AAPL", IM_SIDE_SELL, 10, IM_OT_LMT, 100, 0);
    in.position_qty = 100;
    in.halted = 1;
    expect_only(1, "RISK_HALTED");

    setup("AAPL", IM_SIDE_SELL, 10, IM_OT_LMT, 100, 0);
    in.position_qty = 100;
    in.consecutive_rejects = 10;
    expect_only(1, "RISK_REJECT_BREAKER");

    setup("AAPL", IM_SIDE_SELL, 10.5, IM_OT_LMT, 100, 0);
    in.position_qty = 100;
    expect_invalid();

    setup("AAPL", IM_SIDE_SELL, 10, IM_OT_LMT, 50, 0);
    in.position_qty = 100;
    expect_only(1, "RISK_PRICE_COLLAR");

    setup("AAPL", IM_SIDE_SELL, 10, IM_OT_LMT, 100, 0);
    in.position_qty = 100;
    lim.dup_window_s = 10;
    in.same_order_age = 2;
    expect_only(1, "RISK_DUPLICATE");
}

TEST(risk_every_further_reason_accumulates) {
    setup("XYZ", IM_SIDE_BUY, 100, IM_OT_LMT, 0.80, 0);
    set_quote(0.50, 0.60);
    set_account("CASH", 100, 50, 50);
    lim.min_price = 1;
    lim.max_position_pct_nlv = 20;
    lim.max_daily_loss = 10;
    lim.dup_window_s = 60;
    in.stage = IM_RISK_PLACE;
    in.preview_ref_price = 0.60;
    in.gross_position_value = 150;
    in.notional_today = 1e6;
    in.pnl_today = -20;
    in.open_orders_total = 100;
    in.open_orders_symbol = 20;
    in.orders_last_minute = 30;
    in.orders_last_hour = 300;
    in.same_order_age = 1;
    in.consecutive_rejects = 10;
    expect_only(14, "RISK_REJECT_BREAKER", "RISK_PRICE_FLOOR", "RISK_PRICE_COLLAR",
                "RISK_WIDE_SPREAD", "RISK_BUYING_POWER", "RISK_CONCENTRATION",
                "RISK_GROSS_EXPOSURE", "RISK_DAILY_NOTIONAL_LIMIT", "RISK_DAILY_LOSS",
                "RISK_OPEN_ORDERS", "RISK_OPEN_ORDERS", "RISK_RATE_LIMIT", "RISK_RATE_LIMIT",
                "RISK_DUPLICATE");
    /* Every sentence stays printable ASCII and ends with a full stop. */
    for (size_t i = 0; i < res.nreasons; i++) {
        const char *t = res.reasons[i].text;
        ASSERT(strlen(t) + 1 < IM_RISK_TEXT_MAX);
        ASSERT(t[strlen(t) - 1] == '.');
        for (const char *p = t; *p != '\0'; p++)
            ASSERT(*p >= ' ' && *p <= '~');
    }
}
