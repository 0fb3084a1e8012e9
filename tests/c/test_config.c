/* test_config.c: unit tests for config.c. The environment is a small table
 * behind a fake getenv, so every case is explicit and no test depends on the
 * real environment (except the state-directory defaults, which are read
 * from the real one by design; those tests set it in their forked child). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "test.h"

#define ENV_MAX 64

static struct { const char *name; const char *value; } env[ENV_MAX];
static size_t nenv;

static const char *fake_getenv(const char *name) {
    for (size_t i = 0; i < nenv; i++)
        if (strcmp(env[i].name, name) == 0)
            return env[i].value;
    return NULL;
}

static void env_clear(void) { nenv = 0; }

static void env_set(const char *name, const char *value) {
    for (size_t i = 0; i < nenv; i++) {
        if (strcmp(env[i].name, name) == 0) {
            env[i].value = value;
            return;
        }
    }
    ASSERT(nenv < ENV_MAX);
    env[nenv].name = name;
    env[nenv].value = value;
    nenv++;
}

static char err[512];

/* Loads defaults plus one variable; returns the loader's code. */
static int load_one(im_config *c, const char *name, const char *value) {
    im_config_defaults(c);
    env_clear();
    env_set(name, value);
    err[0] = '\0';
    return im_config_load(c, fake_getenv, err, sizeof err);
}

/* Asserts that NAME=value is refused with a sentence naming both. */
static void expect_bad(const char *name, const char *value) {
    im_config c;
    int rc = load_one(&c, name, value);
    if (rc != IM_ECONFIG)
        im_test_fail(__FILE__, __LINE__, "%s='%s' was accepted (rc %d)", name, value, rc);
    ASSERT_CONTAINS(err, name);
    ASSERT_CONTAINS(err, "='");
    ASSERT(err[strlen(err) - 1] == '.');
}

static void expect_good(im_config *c, const char *name, const char *value) {
    int rc = load_one(c, name, value);
    if (rc != 0)
        im_test_fail(__FILE__, __LINE__, "%s='%s' was refused: %s", name, value, err);
    ASSERT_STR_EQ(err, "");
}

/* Junk that no numeric variable may accept. */
static const char *const junk_numbers[] = {
    "abc", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "12abc", "abc12", " ",
    "0x10", "0X1p3", "1e999", "-1e999", "1,000", ".", "e5", "1e", "1e+", "--1",
    "+-1", "1 2", "1.2.3", "1_000", "\t", "1\n2",
};

static const char *const numeric_vars[] = {
    "IBKR_PORT", "IBKR_CLIENT_ID", "IBKR_TOKEN_TTL_SECONDS", "IBKR_SIM_SEED",
    "IBKR_SIM_CASH", "IBKR_MAX_LINE_BYTES", "IBKR_MAX_ORDER_QTY",
    "IBKR_MAX_ORDER_NOTIONAL", "IBKR_MAX_POSITION_NOTIONAL", "IBKR_MAX_DAILY_ORDERS",
    "IBKR_MKT_PROTECT_BPS", "IBKR_MAX_DRIFT_BPS", "IBKR_MAX_QUOTE_AGE_MS",
    "IBKR_CASH_BUFFER_PCT", "IBKR_COLLAR_BPS", "IBKR_PASSIVE_MAX_BPS", "IBKR_MIN_PRICE",
    "IBKR_MAX_SPREAD_BPS", "IBKR_MAX_POSITION_PCT_NLV", "IBKR_MAX_GROSS_PCT_NLV",
    "IBKR_MAX_OPEN_ORDERS", "IBKR_MAX_OPEN_ORDERS_PER_SYMBOL", "IBKR_MAX_ORDERS_PER_MIN",
    "IBKR_MAX_ORDERS_PER_HOUR", "IBKR_DUP_WINDOW_S", "IBKR_MAX_DAILY_NOTIONAL",
    "IBKR_MAX_DAILY_LOSS", "IBKR_MAX_CONSECUTIVE_REJECTS",
};

static const char *const bool_vars[] = {
    "IBKR_TRADING_ENABLED", "IBKR_ALLOW_LIVE_ACCOUNT", "IBKR_ALLOW_SHORT",
    "IBKR_ALLOW_DELAYED_QUOTES", "IBKR_SIM_FREEZE", "IBKR_SIM_RESET", "IBKR_HALT_CANCELS",
};

/* ---- defaults ------------------------------------------------------------ */

TEST(config_defaults) {
    im_config c;
    setenv("XDG_STATE_HOME", "/xdg/state", 1);
    im_config_defaults(&c);
    ASSERT_STR_EQ(c.backend, "sim");
    ASSERT_EQ(c.trading_enabled, 0);
    ASSERT_STR_EQ(c.host, "127.0.0.1");
    ASSERT_EQ(c.port, 7497);
    ASSERT_EQ(c.client_id, 1);
    ASSERT_STR_EQ(c.account_id, "");
    ASSERT_EQ(c.allow_live_account, 0);
    ASSERT_STR_EQ(c.state_dir, "/xdg/state/ibkr-mcp");
    ASSERT_STR_EQ(c.tools_dir, "");
    ASSERT_STR_EQ(c.policy_dir, "");
    ASSERT_NEAR(c.token_ttl_s, 120, 0);
    ASSERT(c.sim_seed == 42);
    ASSERT_NEAR(c.sim_start, IM_CLOCK_DEFAULT_SIM_START, 0);
    ASSERT_NEAR(c.sim_cash, 100000, 0);
    ASSERT_EQ(c.sim_freeze, 0);
    ASSERT_EQ(c.max_line_bytes, 4 * 1024 * 1024);
    ASSERT_EQ(c.log_level, IM_LOG_INFO);
    ASSERT_NEAR(c.limits.max_order_qty, 1000, 0);
    ASSERT_NEAR(c.limits.max_order_notional, 20000, 0);
    ASSERT_NEAR(c.limits.max_position_notional, 60000, 0);
    ASSERT_EQ(c.limits.allow_short, 0);
    ASSERT_EQ(c.limits.nwhitelist, 0);
    ASSERT_EQ(c.limits.max_daily_orders, 50);
    ASSERT_NEAR(c.limits.mkt_protect_bps, 100, 0);
    ASSERT_NEAR(c.limits.max_drift_bps, 500, 0);
    ASSERT_NEAR(c.limits.max_quote_age_s, 60, 0);
    ASSERT_EQ(c.limits.allow_delayed_quotes, 0);
    ASSERT_NEAR(c.limits.cash_buffer_pct, 0, 0);
    ASSERT_NEAR(c.limits.collar_bps, 1000, 0);
    ASSERT_NEAR(c.limits.passive_max_bps, 5000, 0);
    ASSERT_NEAR(c.limits.min_price, 0, 0);
    ASSERT_NEAR(c.limits.max_spread_bps, 1000, 0);
    ASSERT_NEAR(c.limits.max_position_pct_nlv, 100, 0);
    ASSERT_NEAR(c.limits.max_gross_pct_nlv, 200, 0);
    ASSERT_EQ(c.limits.max_open_orders, 100);
    ASSERT_EQ(c.limits.max_open_orders_per_symbol, 20);
    ASSERT_EQ(c.limits.max_orders_per_min, 30);
    ASSERT_EQ(c.limits.max_orders_per_hour, 300);
    ASSERT_NEAR(c.limits.dup_window_s, 0, 0);
    ASSERT_NEAR(c.limits.max_daily_notional, 1000000, 0);
    ASSERT_NEAR(c.limits.max_daily_loss, 0, 0);
    ASSERT_EQ(c.limits.max_consecutive_rejects, 10);
    ASSERT_EQ(c.sim_reset, 0);
    ASSERT_EQ(c.halt_cancels, 1);
}

TEST(config_default_state_dir_home) {
    im_config c;
    unsetenv("XDG_STATE_HOME");
    setenv("HOME", "/home/trader", 1);
    im_config_defaults(&c);
    ASSERT_STR_EQ(c.state_dir, "/home/trader/.local/state/ibkr-mcp");

    /* The XDG specification says to ignore a relative XDG_STATE_HOME. */
    setenv("XDG_STATE_HOME", "relative/state", 1);
    im_config_defaults(&c);
    ASSERT_STR_EQ(c.state_dir, "/home/trader/.local/state/ibkr-mcp");

    setenv("XDG_STATE_HOME", "", 1);
    im_config_defaults(&c);
    ASSERT_STR_EQ(c.state_dir, "/home/trader/.local/state/ibkr-mcp");
}

TEST(config_default_state_dir_too_long) {
    static char big[2048];
    im_config c;
    memset(big, 'a', sizeof big - 1);
    big[0] = '/';
    setenv("XDG_STATE_HOME", big, 1);
    setenv("HOME", "/home/trader", 1);
    im_config_defaults(&c);
    /* The XDG path does not fit, so the HOME one is used. */
    ASSERT_STR_EQ(c.state_dir, "/home/trader/.local/state/ibkr-mcp");
}

TEST(config_empty_environment_keeps_defaults) {
    im_config c, d;
    im_config_defaults(&c);
    im_config_defaults(&d);
    env_clear();
    ASSERT_EQ(im_config_load(&c, fake_getenv, err, sizeof err), 0);
    ASSERT(memcmp(&c, &d, sizeof c) == 0);
}

TEST(config_empty_values_keep_defaults) {
    static const char *const names[] = {
        "IBKR_BACKEND", "IBKR_HOST", "IBKR_PORT", "IBKR_ACCOUNT_ID", "IBKR_STATE_DIR",
        "IBKR_MAX_ORDER_QTY", "IBKR_SYMBOL_WHITELIST", "IBKR_TRADING_ENABLED",
        "IBKR_LOG_LEVEL", "IBKR_SIM_START", "IBKR_SIM_SEED",
    };
    im_config c, d;
    im_config_defaults(&c);
    im_config_defaults(&d);
    env_clear();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        env_set(names[i], "");
    ASSERT_EQ(im_config_load(&c, fake_getenv, err, sizeof err), 0);
    ASSERT(memcmp(&c, &d, sizeof c) == 0);
}

TEST(config_null_getenv_uses_process_environment) {
    im_config c;
    im_config_defaults(&c);
    setenv("IBKR_PORT", "4002", 1);
    setenv("IBKR_BACKEND", "tws", 1);
    ASSERT_EQ(im_config_load(&c, NULL, err, sizeof err), 0);
    ASSERT_EQ(c.port, 4002);
    ASSERT_STR_EQ(c.backend, "tws");
}

TEST(config_null_arguments) {
    im_config c;
    ASSERT_EQ(im_config_load(NULL, fake_getenv, err, sizeof err), IM_EINVAL);
    /* No error buffer: the code alone still reports the failure. */
    im_config_defaults(&c);
    env_clear();
    env_set("IBKR_PORT", "x");
    ASSERT_EQ(im_config_load(&c, fake_getenv, NULL, 0), IM_ECONFIG);
    ASSERT_EQ(c.port, 7497);
}

/* ---- error reporting ----------------------------------------------------- */

TEST(config_error_sentence_exact) {
    im_config c;
    ASSERT_EQ(load_one(&c, "IBKR_MAX_ORDER_QTY", "abc"), IM_ECONFIG);
    ASSERT_STR_EQ(err, "IBKR_MAX_ORDER_QTY='abc' is not a positive number.");
    ASSERT_EQ(load_one(&c, "IBKR_PORT", "0"), IM_ECONFIG);
    ASSERT_STR_EQ(err, "IBKR_PORT='0' is not a whole number from 1 to 65535.");
    ASSERT_EQ(load_one(&c, "IBKR_BACKEND", "paper"), IM_ECONFIG);
    ASSERT_STR_EQ(err, "IBKR_BACKEND='paper' is not a backend; use sim (alias mock) or "
                       "tws (alias ib).");
}

TEST(config_failed_load_changes_nothing) {
    im_config c, d;
    im_config_defaults(&c);
    im_config_defaults(&d);
    env_clear();
    /* Good values read before the bad one must not leak into c. */
    env_set("IBKR_BACKEND", "tws");
    env_set("IBKR_PORT", "4001");
    env_set("IBKR_SYMBOL_WHITELIST", "AAPL");
    env_set("IBKR_MAX_QUOTE_AGE_MS", "-5");
    ASSERT_EQ(im_config_load(&c, fake_getenv, err, sizeof err), IM_ECONFIG);
    ASSERT_CONTAINS(err, "IBKR_MAX_QUOTE_AGE_MS='-5'");
    ASSERT(memcmp(&c, &d, sizeof c) == 0);
}

TEST(config_error_small_buffer_and_long_value) {
    static char longval[600];
    char small[16];
    im_config c;

    im_config_defaults(&c);
    env_clear();
    env_set("IBKR_PORT", "abc");
    ASSERT_EQ(im_config_load(&c, fake_getenv, small, sizeof small), IM_ECONFIG);
    ASSERT_EQ(strlen(small), sizeof small - 1);
    ASSERT(strncmp(small, "IBKR_PORT='abc'", sizeof small - 1) == 0);

    /* A long value is quoted in part; control bytes never reach the log. */
    memset(longval, '7', sizeof longval - 1);
    longval[3] = '\n';
    ASSERT_EQ(load_one(&c, "IBKR_PORT", longval), IM_ECONFIG);
    ASSERT_CONTAINS(err, "IBKR_PORT='777?7777");
    ASSERT_CONTAINS(err, "...'");
    ASSERT(strchr(err, '\n') == NULL);
    ASSERT(strlen(err) < 200);
}

TEST(config_numeric_vars_refuse_junk) {
    for (size_t v = 0; v < sizeof numeric_vars / sizeof numeric_vars[0]; v++) {
        for (size_t j = 0; j < sizeof junk_numbers / sizeof junk_numbers[0]; j++) {
            expect_bad(numeric_vars[v], junk_numbers[j]);
            /* The value is quoted back (whitespace and control bytes aside). */
            if (strchr(junk_numbers[j], ' ') == NULL && strchr(junk_numbers[j], '\n') == NULL &&
                strchr(junk_numbers[j], '\t') == NULL)
                ASSERT_CONTAINS(err, junk_numbers[j]);
        }
    }
}

TEST(config_numeric_vars_refuse_negative) {
    for (size_t v = 0; v < sizeof numeric_vars / sizeof numeric_vars[0]; v++)
        expect_bad(numeric_vars[v], "-1");
}

TEST(config_every_error_names_its_variable) {
    static const struct { const char *name, *value; } cases[] = {
        {"IBKR_BACKEND", "x"},          {"IBKR_TRADING_ENABLED", "x"},
        {"IBKR_HOST", "a b"},           {"IBKR_PORT", "x"},
        {"IBKR_CLIENT_ID", "x"},        {"IBKR_ACCOUNT_ID", "x-y"},
        {"IBKR_ALLOW_LIVE_ACCOUNT", "x"}, {"IBKR_STATE_DIR", " "},
        {"IBKR_TOOLS_DIR", " "},        {"IBKR_POLICY_DIR", " "},
        {"IBKR_TOKEN_TTL_SECONDS", "x"}, {"IBKR_SIM_SEED", "x"},
        {"IBKR_SIM_START", "x"},        {"IBKR_SIM_CASH", "x"},
        {"IBKR_SIM_FREEZE", "x"},       {"IBKR_MAX_LINE_BYTES", "x"},
        {"IBKR_LOG_LEVEL", "x"},        {"IBKR_MAX_ORDER_QTY", "x"},
        {"IBKR_MAX_ORDER_NOTIONAL", "x"}, {"IBKR_MAX_POSITION_NOTIONAL", "x"},
        {"IBKR_ALLOW_SHORT", "x"},      {"IBKR_SYMBOL_WHITELIST", "$"},
        {"IBKR_MAX_DAILY_ORDERS", "x"}, {"IBKR_MKT_PROTECT_BPS", "x"},
        {"IBKR_MAX_DRIFT_BPS", "x"},    {"IBKR_MAX_QUOTE_AGE_MS", "x"},
        {"IBKR_ALLOW_DELAYED_QUOTES", "x"},
        {"IBKR_CASH_BUFFER_PCT", "x"},  {"IBKR_COLLAR_BPS", "x"},
        {"IBKR_PASSIVE_MAX_BPS", "x"},  {"IBKR_MIN_PRICE", "x"},
        {"IBKR_MAX_SPREAD_BPS", "x"},   {"IBKR_MAX_POSITION_PCT_NLV", "x"},
        {"IBKR_MAX_GROSS_PCT_NLV", "x"}, {"IBKR_MAX_OPEN_ORDERS", "x"},
        {"IBKR_MAX_OPEN_ORDERS_PER_SYMBOL", "x"}, {"IBKR_MAX_ORDERS_PER_MIN", "x"},
        {"IBKR_MAX_ORDERS_PER_HOUR", "x"}, {"IBKR_DUP_WINDOW_S", "x"},
        {"IBKR_MAX_DAILY_NOTIONAL", "x"}, {"IBKR_MAX_DAILY_LOSS", "x"},
        {"IBKR_MAX_CONSECUTIVE_REJECTS", "x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char want[128];
        expect_bad(cases[i].name, cases[i].value);
        snprintf(want, sizeof want, "%s='%s'", cases[i].name, cases[i].value);
        ASSERT_CONTAINS(err, want);
    }
}

/* ---- backend and booleans ------------------------------------------------ */

TEST(config_backend_aliases) {
    static const struct { const char *in, *out; } cases[] = {
        {"sim", "sim"}, {"SIM", "sim"}, {"mock", "sim"}, {"Mock", "sim"},
        {"tws", "tws"}, {"TWS", "tws"}, {"ib", "tws"},   {"IB", "tws"},
        {" tws ", "tws"},
    };
    im_config c;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_good(&c, "IBKR_BACKEND", cases[i].in);
        ASSERT_STR_EQ(c.backend, cases[i].out);
    }
    expect_bad("IBKR_BACKEND", "live");
    expect_bad("IBKR_BACKEND", "simulator");
    expect_bad("IBKR_BACKEND", "tw");
    expect_bad("IBKR_BACKEND", " ");
}

TEST(config_booleans) {
    static const struct { const char *in; int out; } cases[] = {
        {"true", 1}, {"TRUE", 1}, {"True", 1}, {"1", 1}, {"yes", 1}, {"YES", 1},
        {"on", 1},   {"On", 1},   {" true ", 1},
        {"false", 0}, {"FALSE", 0}, {"0", 0}, {"no", 0}, {"No", 0}, {"off", 0},
        {"OFF", 0},
    };
    static const char *const bad[] = {"maybe", "2", "-1", "tru", "truee", "y", "n",
                                      " ", "1.0", "enabled", "t"};
    for (size_t v = 0; v < sizeof bool_vars / sizeof bool_vars[0]; v++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            im_config c;
            int got;
            expect_good(&c, bool_vars[v], cases[i].in);
            if (strcmp(bool_vars[v], "IBKR_TRADING_ENABLED") == 0)
                got = c.trading_enabled;
            else if (strcmp(bool_vars[v], "IBKR_ALLOW_LIVE_ACCOUNT") == 0)
                got = c.allow_live_account;
            else if (strcmp(bool_vars[v], "IBKR_ALLOW_SHORT") == 0)
                got = c.limits.allow_short;
            else if (strcmp(bool_vars[v], "IBKR_ALLOW_DELAYED_QUOTES") == 0)
                got = c.limits.allow_delayed_quotes;
            else if (strcmp(bool_vars[v], "IBKR_SIM_RESET") == 0)
                got = c.sim_reset;
            else if (strcmp(bool_vars[v], "IBKR_HALT_CANCELS") == 0)
                got = c.halt_cancels;
            else
                got = c.sim_freeze;
            ASSERT_EQ(got, cases[i].out);
        }
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            expect_bad(bool_vars[v], bad[i]);
            ASSERT_CONTAINS(err, "is not a boolean");
        }
    }
}

/* ---- endpoint and account ------------------------------------------------ */

TEST(config_host) {
    static char big[80];
    im_config c;
    expect_good(&c, "IBKR_HOST", "localhost");
    ASSERT_STR_EQ(c.host, "localhost");
    expect_good(&c, "IBKR_HOST", " ::1 ");
    ASSERT_STR_EQ(c.host, "::1");
    memset(big, 'h', 63);
    expect_good(&c, "IBKR_HOST", big);
    ASSERT_EQ(strlen(c.host), 63);
    memset(big, 'h', 64);
    expect_bad("IBKR_HOST", big);
    expect_bad("IBKR_HOST", "my host");
    expect_bad("IBKR_HOST", "  ");
    expect_bad("IBKR_HOST", "h\x01st");
    expect_bad("IBKR_HOST", "h\xc3\xa9st");
}

TEST(config_port) {
    im_config c;
    expect_good(&c, "IBKR_PORT", "1");
    ASSERT_EQ(c.port, 1);
    expect_good(&c, "IBKR_PORT", "65535");
    ASSERT_EQ(c.port, 65535);
    expect_good(&c, "IBKR_PORT", " 4002 ");
    ASSERT_EQ(c.port, 4002);
    expect_good(&c, "IBKR_PORT", "+7496");
    ASSERT_EQ(c.port, 7496);
    expect_bad("IBKR_PORT", "0");
    expect_bad("IBKR_PORT", "65536");
    expect_bad("IBKR_PORT", "-1");
    expect_bad("IBKR_PORT", "7497.0");
    expect_bad("IBKR_PORT", "7497.5");
    expect_bad("IBKR_PORT", "1e3");
    expect_bad("IBKR_PORT", "99999999999999999999999");
}

TEST(config_client_id) {
    im_config c;
    expect_good(&c, "IBKR_CLIENT_ID", "0");
    ASSERT_EQ(c.client_id, 0);
    expect_good(&c, "IBKR_CLIENT_ID", "2147483647");
    ASSERT_EQ(c.client_id, 2147483647);
    expect_bad("IBKR_CLIENT_ID", "2147483648");
    expect_bad("IBKR_CLIENT_ID", "-1");
    expect_bad("IBKR_CLIENT_ID", "1.5");
}

TEST(config_account_id) {
    im_config c;
    expect_good(&c, "IBKR_ACCOUNT_ID", "DU1234567");
    ASSERT_STR_EQ(c.account_id, "DU1234567");
    expect_good(&c, "IBKR_ACCOUNT_ID", "u7");
    ASSERT_STR_EQ(c.account_id, "u7");
    expect_good(&c, "IBKR_ACCOUNT_ID", "A123456789012345678901234567890");
    ASSERT_EQ(strlen(c.account_id), 31);
    expect_bad("IBKR_ACCOUNT_ID", "A1234567890123456789012345678901"); /* 32 */
    expect_bad("IBKR_ACCOUNT_ID", "DU-123");
    expect_bad("IBKR_ACCOUNT_ID", "DU 123");
    expect_bad("IBKR_ACCOUNT_ID", "DU_123");
    expect_bad("IBKR_ACCOUNT_ID", "   ");
    expect_bad("IBKR_ACCOUNT_ID", "DU\xc3\xa9");
}

/* ---- paths --------------------------------------------------------------- */

TEST(config_paths) {
    static const char *const vars[] = {"IBKR_STATE_DIR", "IBKR_TOOLS_DIR", "IBKR_POLICY_DIR"};
    static char big[1100];
    for (size_t v = 0; v < 3; v++) {
        im_config c;
        const char *got;
        expect_good(&c, vars[v], "/var/lib/ibkr mcp");
        got = v == 0 ? c.state_dir : v == 1 ? c.tools_dir : c.policy_dir;
        ASSERT_STR_EQ(got, "/var/lib/ibkr mcp");

        memset(big, 'p', sizeof big - 1);
        big[0] = '/';
        big[1023] = '\0';
        expect_good(&c, vars[v], big);
        got = v == 0 ? c.state_dir : v == 1 ? c.tools_dir : c.policy_dir;
        ASSERT_EQ(strlen(got), 1023);

        big[1023] = 'p';
        big[1024] = '\0';
        expect_bad(vars[v], big);
        ASSERT_CONTAINS(err, "too long");
        expect_bad(vars[v], " \t ");
    }
}

/* ---- simulator ----------------------------------------------------------- */

TEST(config_token_ttl) {
    im_config c;
    expect_good(&c, "IBKR_TOKEN_TTL_SECONDS", "60");
    ASSERT_NEAR(c.token_ttl_s, 60, 0);
    expect_good(&c, "IBKR_TOKEN_TTL_SECONDS", "0.5");
    ASSERT_NEAR(c.token_ttl_s, 0.5, 0);
    expect_good(&c, "IBKR_TOKEN_TTL_SECONDS", "86400");
    ASSERT_NEAR(c.token_ttl_s, 86400, 0);
    expect_bad("IBKR_TOKEN_TTL_SECONDS", "86400.001");
    expect_bad("IBKR_TOKEN_TTL_SECONDS", "0");
    expect_bad("IBKR_TOKEN_TTL_SECONDS", "-0");
    expect_bad("IBKR_TOKEN_TTL_SECONDS", "1e-400");
}

TEST(config_sim_seed) {
    im_config c;
    expect_good(&c, "IBKR_SIM_SEED", "0");
    ASSERT(c.sim_seed == 0);
    expect_good(&c, "IBKR_SIM_SEED", "18446744073709551615");
    ASSERT(c.sim_seed == 18446744073709551615ULL);
    expect_good(&c, "IBKR_SIM_SEED", " 7 ");
    ASSERT(c.sim_seed == 7);
    expect_bad("IBKR_SIM_SEED", "18446744073709551616");
    expect_bad("IBKR_SIM_SEED", "+5");
    expect_bad("IBKR_SIM_SEED", "1.5");
    expect_bad("IBKR_SIM_SEED", "1e3");
}

TEST(config_sim_start) {
    im_config c;
    expect_good(&c, "IBKR_SIM_START", "2025-06-10T14:00:00Z");
    ASSERT_NEAR(c.sim_start, 1749564000.0, 0);
    expect_good(&c, "IBKR_SIM_START", "2025-06-10T10:00:00-04:00");
    ASSERT_NEAR(c.sim_start, 1749564000.0, 0);
    expect_good(&c, "IBKR_SIM_START", "1700000000");
    ASSERT_NEAR(c.sim_start, 1700000000.0, 0);
    expect_bad("IBKR_SIM_START", "yesterday");
    expect_bad("IBKR_SIM_START", "2025-13-01T00:00:00Z");
    expect_bad("IBKR_SIM_START", "-5");
    expect_bad("IBKR_SIM_START", "nan");
}

TEST(config_sim_cash) {
    im_config c;
    expect_good(&c, "IBKR_SIM_CASH", "25000.50");
    ASSERT_NEAR(c.sim_cash, 25000.5, 0);
    expect_good(&c, "IBKR_SIM_CASH", "1e6");
    ASSERT_NEAR(c.sim_cash, 1e6, 0);
    expect_bad("IBKR_SIM_CASH", "0");
    expect_bad("IBKR_SIM_CASH", "-100");
}

TEST(config_max_line_bytes) {
    im_config c;
    expect_good(&c, "IBKR_MAX_LINE_BYTES", "1024");
    ASSERT_EQ(c.max_line_bytes, 1024);
    expect_good(&c, "IBKR_MAX_LINE_BYTES", "1073741824");
    ASSERT_EQ(c.max_line_bytes, 1073741824);
    expect_bad("IBKR_MAX_LINE_BYTES", "1023");
    expect_bad("IBKR_MAX_LINE_BYTES", "1073741825");
    expect_bad("IBKR_MAX_LINE_BYTES", "4MiB");
    expect_bad("IBKR_MAX_LINE_BYTES", "4096.5");
    expect_bad("IBKR_MAX_LINE_BYTES", "0");
}

TEST(config_log_level) {
    static const struct { const char *in; int out; } cases[] = {
        {"debug", IM_LOG_DEBUG}, {"INFO", IM_LOG_INFO}, {"Warn", IM_LOG_WARN},
        {"warning", IM_LOG_WARN}, {"error", IM_LOG_ERROR}, {" off ", IM_LOG_OFF},
    };
    im_config c;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_good(&c, "IBKR_LOG_LEVEL", cases[i].in);
        ASSERT_EQ(c.log_level, cases[i].out);
    }
    expect_bad("IBKR_LOG_LEVEL", "loud");
    expect_bad("IBKR_LOG_LEVEL", "2");
    expect_bad("IBKR_LOG_LEVEL", " ");
}

/* ---- limits -------------------------------------------------------------- */

TEST(config_positive_limits) {
    static const char *const vars[] = {"IBKR_MAX_ORDER_QTY", "IBKR_MAX_ORDER_NOTIONAL",
                                       "IBKR_MAX_POSITION_NOTIONAL"};
    static const struct { const char *in; double out; } good[] = {
        {"500", 500}, {"1e3", 1000}, {"1E3", 1000}, {"+5", 5}, {" 250 ", 250},
        {".5", 0.5},  {"5.", 5},     {"2500.75", 2500.75}, {"1e-3", 0.001},
        {"\t42\n", 42},
    };
    for (size_t v = 0; v < 3; v++) {
        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
            im_config c;
            double got;
            expect_good(&c, vars[v], good[i].in);
            got = v == 0 ? c.limits.max_order_qty
                  : v == 1 ? c.limits.max_order_notional
                           : c.limits.max_position_notional;
            ASSERT_NEAR(got, good[i].out, 0);
        }
        expect_bad(vars[v], "0");
        expect_bad(vars[v], "0.0");
        expect_bad(vars[v], "-0");
        expect_bad(vars[v], "-0.01");
        ASSERT_CONTAINS(err, "is not a positive number");
    }
}

TEST(config_daily_orders) {
    im_config c;
    expect_good(&c, "IBKR_MAX_DAILY_ORDERS", "0");
    ASSERT_EQ(c.limits.max_daily_orders, 0);
    expect_good(&c, "IBKR_MAX_DAILY_ORDERS", "200");
    ASSERT_EQ(c.limits.max_daily_orders, 200);
    expect_bad("IBKR_MAX_DAILY_ORDERS", "-1");
    expect_bad("IBKR_MAX_DAILY_ORDERS", "1.5");
    expect_bad("IBKR_MAX_DAILY_ORDERS", "2147483648");
}

TEST(config_bps_limits) {
    im_config c;
    expect_good(&c, "IBKR_MKT_PROTECT_BPS", "1000");
    ASSERT_NEAR(c.limits.mkt_protect_bps, 1000, 0);
    expect_good(&c, "IBKR_MKT_PROTECT_BPS", "0.5");
    ASSERT_NEAR(c.limits.mkt_protect_bps, 0.5, 0);
    expect_bad("IBKR_MKT_PROTECT_BPS", "1000.01");
    expect_bad("IBKR_MKT_PROTECT_BPS", "0");

    expect_good(&c, "IBKR_MAX_DRIFT_BPS", "10000");
    ASSERT_NEAR(c.limits.max_drift_bps, 10000, 0);
    expect_good(&c, "IBKR_MAX_DRIFT_BPS", "50");
    ASSERT_NEAR(c.limits.max_drift_bps, 50, 0);
    expect_bad("IBKR_MAX_DRIFT_BPS", "10001");
    expect_bad("IBKR_MAX_DRIFT_BPS", "0");
}

TEST(config_quote_age_in_ms) {
    im_config c;
    expect_good(&c, "IBKR_MAX_QUOTE_AGE_MS", "5000");
    ASSERT_NEAR(c.limits.max_quote_age_s, 5.0, 1e-12);
    expect_good(&c, "IBKR_MAX_QUOTE_AGE_MS", "1500");
    ASSERT_NEAR(c.limits.max_quote_age_s, 1.5, 1e-12);
    expect_good(&c, "IBKR_MAX_QUOTE_AGE_MS", "1");
    ASSERT_NEAR(c.limits.max_quote_age_s, 0.001, 1e-12);
    expect_bad("IBKR_MAX_QUOTE_AGE_MS", "0");
}

TEST(config_all_at_once) {
    im_config c;
    im_config_defaults(&c);
    env_clear();
    env_set("IBKR_BACKEND", "ib");
    env_set("IBKR_TRADING_ENABLED", "yes");
    env_set("IBKR_PORT", "4002");
    env_set("IBKR_ACCOUNT_ID", "DU42");
    env_set("IBKR_MAX_ORDER_QTY", "10");
    env_set("IBKR_ALLOW_SHORT", "on");
    env_set("IBKR_SYMBOL_WHITELIST", "aapl,msft");
    env_set("IBKR_MAX_QUOTE_AGE_MS", "2000");
    ASSERT_EQ(im_config_load(&c, fake_getenv, err, sizeof err), 0);
    ASSERT_STR_EQ(c.backend, "tws");
    ASSERT_EQ(c.trading_enabled, 1);
    ASSERT_EQ(c.port, 4002);
    ASSERT_STR_EQ(c.account_id, "DU42");
    ASSERT_NEAR(c.limits.max_order_qty, 10, 0);
    ASSERT_EQ(c.limits.allow_short, 1);
    ASSERT_EQ(c.limits.nwhitelist, 2);
    ASSERT_NEAR(c.limits.max_quote_age_s, 2, 0);
    /* Untouched settings keep their defaults. */
    ASSERT_STR_EQ(c.host, "127.0.0.1");
    ASSERT_NEAR(c.limits.max_order_notional, 20000, 0);
}

/* ---- whitelist ----------------------------------------------------------- */

TEST(config_whitelist_parsing) {
    im_config c;
    expect_good(&c, "IBKR_SYMBOL_WHITELIST", " aapl , Msft,,brk.b ,\tNVDA,");
    ASSERT_EQ(c.limits.nwhitelist, 4);
    ASSERT_STR_EQ(c.limits.whitelist[0], "AAPL");
    ASSERT_STR_EQ(c.limits.whitelist[1], "MSFT");
    ASSERT_STR_EQ(c.limits.whitelist[2], "BRK.B");
    ASSERT_STR_EQ(c.limits.whitelist[3], "NVDA");

    /* Duplicates (after upper-casing) are kept once. */
    expect_good(&c, "IBKR_SYMBOL_WHITELIST", "AAPL,aapl, AAPL ");
    ASSERT_EQ(c.limits.nwhitelist, 1);

    /* Twelve characters is the longest symbol. */
    expect_good(&c, "IBKR_SYMBOL_WHITELIST", "ABCDEFGHIJKL");
    ASSERT_STR_EQ(c.limits.whitelist[0], "ABCDEFGHIJKL");
    expect_good(&c, "IBKR_SYMBOL_WHITELIST", "A");
    ASSERT_STR_EQ(c.limits.whitelist[0], "A");
}

TEST(config_whitelist_bad) {
    static const char *const bad[] = {
        "AAPL,$$$", "1ABC", "ABCDEFGHIJKLM", ".A", "AA PL", "AAPL;MSFT", "A-B",
        "AAPL,\xc3\x89", " , ", ",", " ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_bad("IBKR_SYMBOL_WHITELIST", bad[i]);
    expect_bad("IBKR_SYMBOL_WHITELIST", "AAPL,1ABC");
    ASSERT_CONTAINS(err, "invalid symbol '1ABC'");
    expect_bad("IBKR_SYMBOL_WHITELIST", ",,");
    ASSERT_CONTAINS(err, "names no symbol");
}

TEST(config_whitelist_capacity) {
    /* IM_WHITELIST_MAX distinct symbols fit; one more is refused. */
    static char list[IM_WHITELIST_MAX * 8 + 16];
    size_t n = 0;
    im_config c;
    for (int i = 0; i < IM_WHITELIST_MAX; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%sS%03d", i ? "," : "", i);
    expect_good(&c, "IBKR_SYMBOL_WHITELIST", list);
    ASSERT_EQ(c.limits.nwhitelist, IM_WHITELIST_MAX);
    ASSERT_STR_EQ(c.limits.whitelist[IM_WHITELIST_MAX - 1], "S255");
    ASSERT(im_limits_symbol_allowed(&c.limits, "S128"));

    snprintf(list + n, sizeof list - n, ",EXTRA");
    expect_bad("IBKR_SYMBOL_WHITELIST", list);
    ASSERT_CONTAINS(err, "more than 256 symbols");
}

TEST(config_symbol_allowed) {
    im_config c;
    im_config_defaults(&c);
    /* An empty list allows every symbol. */
    ASSERT_EQ(im_limits_symbol_allowed(&c.limits, "ANY"), 1);
    ASSERT_EQ(im_limits_symbol_allowed(&c.limits, NULL), 0);
    ASSERT_EQ(im_limits_symbol_allowed(NULL, "ANY"), 0);

    expect_good(&c, "IBKR_SYMBOL_WHITELIST", "AAPL,BRK.B");
    ASSERT_EQ(im_limits_symbol_allowed(&c.limits, "AAPL"), 1);
    ASSERT_EQ(im_limits_symbol_allowed(&c.limits, "BRK.B"), 1);
    /* Exact matches only: no case folding, prefixes or suffixes. */
    ASSERT_EQ(im_limits_symbol_allowed(&c.limits, "aapl"), 0);
    ASSERT_EQ(im_limits_symbol_allowed(&c.limits, "AAP"), 0);
    ASSERT_EQ(im_limits_symbol_allowed(&c.limits, "AAPLX"), 0);
    ASSERT_EQ(im_limits_symbol_allowed(&c.limits, "BRK"), 0);
    ASSERT_EQ(im_limits_symbol_allowed(&c.limits, ""), 0);
    ASSERT_EQ(im_limits_symbol_allowed(&c.limits, "MSFT"), 0);
}

/* ---- the further controls ------------------------------------------------ */

/* The value a further-control variable landed in, as a double. */
static double further_value(const im_config *c, const char *name) {
    const im_limits *l = &c->limits;
    static const struct { const char *name; size_t off; int is_int; } fields[] = {
        {"IBKR_CASH_BUFFER_PCT", offsetof(im_limits, cash_buffer_pct), 0},
        {"IBKR_COLLAR_BPS", offsetof(im_limits, collar_bps), 0},
        {"IBKR_PASSIVE_MAX_BPS", offsetof(im_limits, passive_max_bps), 0},
        {"IBKR_MIN_PRICE", offsetof(im_limits, min_price), 0},
        {"IBKR_MAX_SPREAD_BPS", offsetof(im_limits, max_spread_bps), 0},
        {"IBKR_MAX_POSITION_PCT_NLV", offsetof(im_limits, max_position_pct_nlv), 0},
        {"IBKR_MAX_GROSS_PCT_NLV", offsetof(im_limits, max_gross_pct_nlv), 0},
        {"IBKR_MAX_OPEN_ORDERS", offsetof(im_limits, max_open_orders), 1},
        {"IBKR_MAX_OPEN_ORDERS_PER_SYMBOL", offsetof(im_limits, max_open_orders_per_symbol), 1},
        {"IBKR_MAX_ORDERS_PER_MIN", offsetof(im_limits, max_orders_per_min), 1},
        {"IBKR_MAX_ORDERS_PER_HOUR", offsetof(im_limits, max_orders_per_hour), 1},
        {"IBKR_DUP_WINDOW_S", offsetof(im_limits, dup_window_s), 0},
        {"IBKR_MAX_DAILY_NOTIONAL", offsetof(im_limits, max_daily_notional), 0},
        {"IBKR_MAX_DAILY_LOSS", offsetof(im_limits, max_daily_loss), 0},
        {"IBKR_MAX_CONSECUTIVE_REJECTS", offsetof(im_limits, max_consecutive_rejects), 1},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strcmp(fields[i].name, name) == 0) {
            const char *p = (const char *)l + fields[i].off;
            return fields[i].is_int ? (double)*(const int *)(const void *)p
                                    : *(const double *)(const void *)p;
        }
    }
    im_test_fail(__FILE__, __LINE__, "no field for %s", name);
}

/* Each variable's boundaries: what is accepted (and the value stored) and
 * what is refused. "0 = off" settings accept 0; the others must be > 0. */
static const struct {
    const char *name;
    const char *good[5];
    double want[5];
    const char *bad[5];
} further_cases[] = {
    {"IBKR_CASH_BUFFER_PCT", {"0", "2", "2.5", "100", "-0"}, {0, 2, 2.5, 100, 0},
     {"100.01", "-0.5", "-1", "1e3", NULL}},
    {"IBKR_COLLAR_BPS", {"200", "0.5", "10000", " 1000 ", NULL}, {200, 0.5, 10000, 1000},
     {"0", "-0", "10000.01", "-200", NULL}},
    {"IBKR_PASSIVE_MAX_BPS", {"2000", "10000", "1", NULL}, {2000, 10000, 1},
     {"0", "10001", "-1", NULL}},
    {"IBKR_MIN_PRICE", {"0", "1", "0.0001", "5", "-0"}, {0, 1, 0.0001, 5, 0},
     {"-0.01", "-1", NULL}},
    {"IBKR_MAX_SPREAD_BPS", {"100", "10000", "0.1", NULL}, {100, 10000, 0.1},
     {"0", "10000.5", "-100", NULL}},
    {"IBKR_MAX_POSITION_PCT_NLV", {"20", "0.5", "10000", NULL}, {20, 0.5, 10000},
     {"0", "10000.01", "-20", NULL}},
    {"IBKR_MAX_GROSS_PCT_NLV", {"100", "400", "10000", NULL}, {100, 400, 10000},
     {"0", "20000", "-1", NULL}},
    {"IBKR_MAX_OPEN_ORDERS", {"0", "10", "2147483647", "+5", NULL}, {0, 10, 2147483647.0, 5},
     {"1.5", "2147483648", "1e3", "-1", "10.0"}},
    {"IBKR_MAX_OPEN_ORDERS_PER_SYMBOL", {"0", "2", NULL}, {0, 2},
     {"2.0", "-2", NULL}},
    {"IBKR_MAX_ORDERS_PER_MIN", {"0", "5", NULL}, {0, 5}, {"5.5", "-5", NULL}},
    {"IBKR_MAX_ORDERS_PER_HOUR", {"0", "30", NULL}, {0, 30}, {"30x", "-30", NULL}},
    {"IBKR_DUP_WINDOW_S", {"0", "60", "0.25", "86400", "-0"}, {0, 60, 0.25, 86400, 0},
     {"86400.5", "-60", NULL}},
    {"IBKR_MAX_DAILY_NOTIONAL", {"200000", "1e9", "0.01", NULL}, {200000, 1e9, 0.01},
     {"0", "-0", "-200000", NULL}},
    {"IBKR_MAX_DAILY_LOSS", {"0", "2000", "2000.50", "-0", NULL}, {0, 2000, 2000.5, 0},
     {"-2000", "-0.01", NULL}},
    {"IBKR_MAX_CONSECUTIVE_REJECTS", {"0", "3", NULL}, {0, 3}, {"3.5", "-3", NULL}},
};

TEST(config_further_limits_bounds) {
    for (size_t v = 0; v < sizeof further_cases / sizeof further_cases[0]; v++) {
        const char *name = further_cases[v].name;
        for (size_t i = 0; i < 5 && further_cases[v].good[i] != NULL; i++) {
            im_config c;
            double got;
            expect_good(&c, name, further_cases[v].good[i]);
            got = further_value(&c, name);
            if (got != further_cases[v].want[i])
                im_test_fail(__FILE__, __LINE__, "%s='%s' stored %.17g, expected %.17g", name,
                             further_cases[v].good[i], got, further_cases[v].want[i]);
            /* "-0" is stored as 0, never as -0 (it would print "-0"). */
            ASSERT(!signbit(got));
        }
        for (size_t i = 0; i < 5 && further_cases[v].bad[i] != NULL; i++)
            expect_bad(name, further_cases[v].bad[i]);
    }
}

TEST(config_further_limits_sentences) {
    im_config c;
    ASSERT_EQ(load_one(&c, "IBKR_COLLAR_BPS", "0"), IM_ECONFIG);
    ASSERT_STR_EQ(err, "IBKR_COLLAR_BPS='0' is not a number of basis points greater than 0 "
                       "and at most 10000.");
    ASSERT_EQ(load_one(&c, "IBKR_MAX_OPEN_ORDERS", "-1"), IM_ECONFIG);
    ASSERT_STR_EQ(err, "IBKR_MAX_OPEN_ORDERS='-1' is not a whole number of at least 0 (0 "
                       "turns the check off).");
    ASSERT_EQ(load_one(&c, "IBKR_CASH_BUFFER_PCT", "150"), IM_ECONFIG);
    ASSERT_STR_EQ(err, "IBKR_CASH_BUFFER_PCT='150' is not a percentage from 0 to 100.");
    ASSERT_EQ(load_one(&c, "IBKR_MAX_DAILY_LOSS", "nan"), IM_ECONFIG);
    ASSERT_STR_EQ(err, "IBKR_MAX_DAILY_LOSS='nan' is not an amount of at least 0 (0 turns "
                       "the check off).");
    ASSERT_EQ(load_one(&c, "IBKR_DUP_WINDOW_S", "1e6"), IM_ECONFIG);
    ASSERT_STR_EQ(err, "IBKR_DUP_WINDOW_S='1e6' is not a number of seconds from 0 to 86400 "
                       "(0 turns the check off).");
    ASSERT_EQ(load_one(&c, "IBKR_MAX_POSITION_PCT_NLV", "0"), IM_ECONFIG);
    ASSERT_STR_EQ(err, "IBKR_MAX_POSITION_PCT_NLV='0' is not a percentage greater than 0 "
                       "and at most 10000.");
}

TEST(config_further_limits_refuse_overflow) {
    /* Out of range for a double or an int is refused, not clamped; dollar
     * amounts have no upper bound but must be finite. */
    static const char *const ints[] = {
        "IBKR_MAX_OPEN_ORDERS", "IBKR_MAX_OPEN_ORDERS_PER_SYMBOL", "IBKR_MAX_ORDERS_PER_MIN",
        "IBKR_MAX_ORDERS_PER_HOUR", "IBKR_MAX_CONSECUTIVE_REJECTS",
    };
    im_config c;
    for (size_t v = 0; v < sizeof further_cases / sizeof further_cases[0]; v++) {
        expect_bad(further_cases[v].name, "1e400");
        expect_bad(further_cases[v].name, "-1e400");
    }
    for (size_t v = 0; v < sizeof ints / sizeof ints[0]; v++)
        expect_bad(ints[v], "99999999999999999999");
    expect_good(&c, "IBKR_MAX_DAILY_NOTIONAL", "99999999999999999999");
    ASSERT_NEAR(c.limits.max_daily_notional, 1e20, 0);
}

/* ---- examples/strict.env ------------------------------------------------- */

#ifdef IM_TEST_SOURCE_DIR

#define STRICT_MAX 64

static char strict_names[STRICT_MAX][64];
static char strict_values[STRICT_MAX][256];

/* Reads examples/strict.env: blank lines and '#' comment lines are skipped,
 * every other line must be NAME=value with an IBKR_ name and no inline
 * comment (env-file loaders would keep it as part of the value). Returns
 * the number of settings. */
static size_t strict_read(void) {
    const char *path = IM_TEST_SOURCE_DIR "/examples/strict.env";
    char line[512];
    size_t n = 0;
    int lineno = 0;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        im_test_fail(__FILE__, __LINE__, "cannot open %s", path);
    while (fgets(line, sizeof line, f) != NULL) {
        size_t len = strlen(line);
        char *eq;
        lineno++;
        if (len == sizeof line - 1 && line[len - 1] != '\n')
            im_test_fail(__FILE__, __LINE__, "strict.env:%d is too long", lineno);
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        eq = strchr(line, '=');
        if (eq == NULL || strncmp(line, "IBKR_", 5) != 0)
            im_test_fail(__FILE__, __LINE__, "strict.env:%d is not IBKR_NAME=value: %s", lineno,
                         line);
        *eq = '\0';
        for (const char *p = line; *p != '\0'; p++)
            if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
                im_test_fail(__FILE__, __LINE__, "strict.env:%d: bad name %s", lineno, line);
        if (strchr(eq + 1, '#') != NULL || eq[1] == '\0' || eq[1] == ' ')
            im_test_fail(__FILE__, __LINE__, "strict.env:%d: %s needs a bare value", lineno,
                         line);
        for (size_t k = 0; k < n; k++)
            if (strcmp(strict_names[k], line) == 0)
                im_test_fail(__FILE__, __LINE__, "strict.env:%d sets %s twice", lineno, line);
        if (n == STRICT_MAX || strlen(line) >= sizeof strict_names[0] ||
            strlen(eq + 1) >= sizeof strict_values[0])
            im_test_fail(__FILE__, __LINE__, "strict.env:%d does not fit the test", lineno);
        memcpy(strict_names[n], line, strlen(line) + 1); /* lengths checked above */
        memcpy(strict_values[n], eq + 1, strlen(eq + 1) + 1);
        n++;
    }
    fclose(f);
    return n;
}

TEST(config_strict_env_loads) {
    size_t n = strict_read();
    im_config c;

    ASSERT(n >= 20);
    /* Every name is one the loader reads: a bad value for it is refused
     * (an unknown name would be ignored, and its line would do nothing). */
    for (size_t i = 0; i < n; i++) {
        if (load_one(&c, strict_names[i], "$") != IM_ECONFIG)
            im_test_fail(__FILE__, __LINE__, "strict.env sets %s, which the loader ignores",
                         strict_names[i]);
        ASSERT_CONTAINS(err, strict_names[i]);
    }
    /* Each line alone, then all of them together. */
    for (size_t i = 0; i < n; i++)
        expect_good(&c, strict_names[i], strict_values[i]);
    im_config_defaults(&c);
    env_clear();
    for (size_t i = 0; i < n; i++)
        env_set(strict_names[i], strict_values[i]);
    err[0] = '\0';
    if (im_config_load(&c, fake_getenv, err, sizeof err) != 0)
        im_test_fail(__FILE__, __LINE__, "strict.env refused: %s", err);

    /* The strict profile of reference/risk-controls.md section 5. */
    ASSERT_NEAR(c.limits.max_order_qty, 500, 0);
    ASSERT_NEAR(c.limits.max_order_notional, 5000, 0);
    ASSERT_NEAR(c.limits.max_position_notional, 10000, 0);
    ASSERT_EQ(c.limits.allow_short, 0);
    ASSERT(c.limits.nwhitelist > 0);
    ASSERT_EQ(c.limits.max_daily_orders, 50);
    ASSERT_NEAR(c.limits.mkt_protect_bps, 100, 0);
    ASSERT_NEAR(c.limits.collar_bps, 200, 0);
    ASSERT_NEAR(c.limits.passive_max_bps, 2000, 0);
    ASSERT_NEAR(c.limits.min_price, 1, 0);
    ASSERT_NEAR(c.limits.max_spread_bps, 100, 0);
    ASSERT_NEAR(c.limits.max_quote_age_s, 5, 1e-12);
    ASSERT_EQ(c.limits.allow_delayed_quotes, 0);
    ASSERT_NEAR(c.limits.max_drift_bps, 50, 0);
    ASSERT_NEAR(c.limits.max_position_pct_nlv, 20, 0);
    ASSERT_NEAR(c.limits.max_gross_pct_nlv, 100, 0);
    ASSERT_NEAR(c.limits.cash_buffer_pct, 2, 0);
    ASSERT_EQ(c.limits.max_open_orders, 10);
    ASSERT_EQ(c.limits.max_open_orders_per_symbol, 2);
    ASSERT_EQ(c.limits.max_orders_per_min, 5);
    ASSERT_EQ(c.limits.max_orders_per_hour, 30);
    ASSERT_NEAR(c.limits.dup_window_s, 60, 0);
    ASSERT_NEAR(c.limits.max_daily_notional, 200000, 0);
    ASSERT_NEAR(c.limits.max_daily_loss, 2000, 0);
    ASSERT_EQ(c.limits.max_consecutive_rejects, 3);
    ASSERT_NEAR(c.token_ttl_s, 60, 0);
    ASSERT_EQ(c.allow_live_account, 0);
    /* The rails that are off by default are on in the strict profile. */
    ASSERT(c.limits.min_price > 0 && c.limits.dup_window_s > 0 && c.limits.max_daily_loss > 0 &&
           c.limits.cash_buffer_pct > 0);
}

#else

TEST(config_strict_env_loads) {
    /* Needs the source tree's path at compile time; see tests/CMakeLists.txt. */
    printf("  skip config_strict_env_loads: IM_TEST_SOURCE_DIR is not defined\n");
}

#endif
