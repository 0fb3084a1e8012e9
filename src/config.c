/* config.c: environment -> validated settings (config.h).
 *
 * Provides the documented defaults and a loader that reads every IBKR_*
 * variable through an injected getenv, parses it strictly and refuses the
 * whole configuration on the first bad value, with a sentence naming the
 * variable, the value and what was expected. The loader works on a copy, so
 * a failed load leaves the caller's settings untouched.
 *
 * Uses clock.h (IBKR_SIM_START and the default simulator start), log.h
 * (level names) and error.h. The real getenv is read only for the default
 * state directory ($XDG_STATE_HOME, $HOME).
 *
 * Value rules shared by every variable: NULL or "" means "not set, keep the
 * default"; otherwise leading and trailing whitespace is trimmed, and what
 * is left must parse completely (so a value of only spaces is refused: it
 * was set, so it was meant to say something). Numbers are plain decimal (an optional
 * sign, digits, an optional fraction and exponent): hex, nan, inf, overflow
 * and trailing junk are refused, because strtod alone would accept the
 * first three and silently stop at the last. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "clock.h"
#include "common.h"
#include "error.h"
#include "log.h"

/* Longest number text accepted. A longer string of digits is not a
 * plausible setting, and a bound keeps the parse on the stack. */
#define CFG_NUM_MAX 64
/* How much of a bad value the error sentence quotes. */
#define CFG_QUOTE_MAX 64

/* ---- small helpers ------------------------------------------------------ */

static int cfg_is_space(char ch) { return isspace((unsigned char)ch) != 0; }

/* Trims s in place (s is a private copy) and returns the first kept byte. */
static char *cfg_trim(char *s) {
    size_t n;
    while (cfg_is_space(*s))
        s++;
    n = strlen(s);
    while (n > 0 && cfg_is_space(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Copies at most CFG_QUOTE_MAX bytes of v for an error sentence, replacing
 * control bytes so the message stays one printable line. */
static void cfg_quote(const char *v, char *out, size_t outlen) {
    size_t i, j = 0;
    for (i = 0; v[i] != '\0' && i < CFG_QUOTE_MAX && j + 1 < outlen; i++)
        out[j++] = iscntrl((unsigned char)v[i]) ? '?' : v[i];
    if (v[i] != '\0' && j + 4 < outlen) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
}

/* Writes "NAME='value' <what>." into err and returns IM_ECONFIG. */
static int cfg_fail(char *err, size_t errlen, const char *name, const char *value,
                    const char *fmt, ...) IM_PRINTF(5, 6);
static int cfg_fail(char *err, size_t errlen, const char *name, const char *value,
                    const char *fmt, ...) {
    char quoted[CFG_QUOTE_MAX + 8];
    char what[256];
    va_list ap;

    if (err == NULL || errlen == 0)
        return IM_ECONFIG;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    cfg_quote(value, quoted, sizeof quoted);
    snprintf(err, errlen, "%s='%s' %s.", name, quoted, what);
    return IM_ECONFIG;
}

/* Checks the plain-decimal grammar [+-]?(D+(.D*)?|.D+)([eE][+-]?D+)? so that
 * strtod never sees hex, nan or inf. */
static int cfg_decimal_syntax(const char *s) {
    int digits = 0;
    if (*s == '+' || *s == '-')
        s++;
    while (isdigit((unsigned char)*s)) {
        s++;
        digits++;
    }
    if (*s == '.') {
        s++;
        while (isdigit((unsigned char)*s)) {
            s++;
            digits++;
        }
    }
    if (digits == 0)
        return 0;
    if (*s == 'e' || *s == 'E') {
        int exp_digits = 0;
        s++;
        if (*s == '+' || *s == '-')
            s++;
        while (isdigit((unsigned char)*s)) {
            s++;
            exp_digits++;
        }
        if (exp_digits == 0)
            return 0;
    }
    return *s == '\0';
}

/* Parses a trimmed plain decimal into a finite double; 0 or IM_EINVAL. */
static int cfg_parse_double(const char *s, double *out) {
    char *end;
    double v;

    if (strlen(s) >= CFG_NUM_MAX || !cfg_decimal_syntax(s))
        return IM_EINVAL;
    errno = 0;
    v = strtod(s, &end);
    /* ERANGE covers overflow to inf and underflow to (sub)zero: neither is
     * the number the operator wrote. */
    if (*end != '\0' || errno == ERANGE || !isfinite(v))
        return IM_EINVAL;
    *out = v;
    return 0;
}

/* Parses a trimmed decimal integer [+-]?D+ into *out; 0 or IM_EINVAL. */
static int cfg_parse_ll(const char *s, long long *out) {
    const char *p = s;
    char *end;
    long long v;

    if (*p == '+' || *p == '-')
        p++;
    if (*p == '\0' || strlen(s) >= CFG_NUM_MAX)
        return IM_EINVAL;
    for (; *p != '\0'; p++)
        if (!isdigit((unsigned char)*p))
            return IM_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return IM_EINVAL;
    *out = v;
    return 0;
}

/* Parses the usual spellings of a boolean, case-insensitively. */
static int cfg_parse_bool(const char *s, int *out) {
    static const struct { const char *word; int value; } words[] = {
        {"true", 1}, {"1", 1}, {"yes", 1}, {"on", 1},
        {"false", 0}, {"0", 0}, {"no", 0}, {"off", 0},
    };
    for (size_t i = 0; i < IM_ARRAY_SIZE(words); i++) {
        if (strcasecmp(s, words[i].word) == 0) {
            *out = words[i].value;
            return 0;
        }
    }
    return IM_EINVAL;
}

/* The symbol rule shared with risk.c and the tool schemas:
 * ^[A-Z][A-Z0-9.]{0,11}$. */
static int cfg_symbol_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 12 || !(s[0] >= 'A' && s[0] <= 'Z'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
            return 0;
    return 1;
}

/* ---- defaults ------------------------------------------------------------ */

/* Writes "<base><suffix>" into out when it fits; 1 on success. */
static int cfg_join(char *out, size_t outlen, const char *base, const char *suffix) {
    int n = snprintf(out, outlen, "%s%s", base, suffix);
    if (n < 0 || (size_t)n >= outlen) {
        out[0] = '\0';
        return 0;
    }
    return 1;
}

/* The XDG base-directory rule: $XDG_STATE_HOME if set and absolute (the
 * specification says relative values are to be ignored), else
 * $HOME/.local/state, else the password database's home. Leaves out empty
 * when none of these exists or fits; start-up must then ask for
 * IBKR_STATE_DIR. */
static void cfg_default_state_dir(char *out, size_t outlen) {
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");

    out[0] = '\0';
    if (xdg != NULL && xdg[0] == '/' && cfg_join(out, outlen, xdg, "/ibkr-mcp"))
        return;
    if (home == NULL || home[0] == '\0') {
        struct passwd *pw = getpwuid(getuid());
        home = pw != NULL ? pw->pw_dir : NULL;
    }
    if (home != NULL && home[0] != '\0')
        cfg_join(out, outlen, home, "/.local/state/ibkr-mcp");
}

void im_config_defaults(im_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->backend, sizeof c->backend, "sim");
    c->trading_enabled = 0;
    snprintf(c->host, sizeof c->host, "127.0.0.1");
    c->port = 7497;
    c->client_id = 1;
    c->account_id[0] = '\0';
    c->allow_live_account = 0;
    cfg_default_state_dir(c->state_dir, sizeof c->state_dir);
    c->tools_dir[0] = '\0';
    c->policy_dir[0] = '\0';
    c->token_ttl_s = 120;
    c->sim_seed = 42;
    c->sim_start = IM_CLOCK_DEFAULT_SIM_START;
    c->sim_cash = 100000;
    c->sim_freeze = 0;
    c->sim_reset = 0;
    c->halt_cancels = 1;
    c->confirm_elicit = 0;
    c->confirm_above_notional = 0;
    c->max_line_bytes = (size_t)4 * 1024 * 1024;
    c->log_level = IM_LOG_INFO;

    c->limits.max_order_qty = 1000;
    c->limits.max_order_notional = 20000;
    c->limits.max_position_notional = 60000;
    c->limits.allow_short = 0;
    c->limits.nwhitelist = 0;
    c->limits.max_daily_orders = 50;
    c->limits.mkt_protect_bps = 100;
    c->limits.max_drift_bps = 500;
    c->limits.max_quote_age_s = 60;
    c->limits.allow_delayed_quotes = 0;

    /* The further controls: loose enough that a normal session never trips
     * them, tight enough to catch a fat finger. */
    c->limits.cash_buffer_pct = 0;
    c->limits.collar_bps = 1000;
    c->limits.passive_max_bps = 5000;
    c->limits.min_price = 0;
    c->limits.max_spread_bps = 1000;
    c->limits.max_position_pct_nlv = 100;
    c->limits.max_gross_pct_nlv = 200;
    c->limits.max_open_orders = 100;
    c->limits.max_open_orders_per_symbol = 20;
    c->limits.max_orders_per_min = 30;
    c->limits.max_orders_per_hour = 300;
    c->limits.dup_window_s = 0;
    c->limits.max_daily_notional = 1000000;
    c->limits.max_daily_loss = 0;
    c->limits.max_consecutive_rejects = 10;
}

/* ---- the variable table -------------------------------------------------- */

enum cfg_kind {
    CFG_BOOL = 1,    /* int field */
    CFG_INT,         /* int field, [lo, hi] */
    CFG_SIZE,        /* size_t field, [lo, hi] */
    CFG_U64,         /* unsigned long long field, any unsigned decimal */
    CFG_NUM,         /* double field, (lo, hi] */
    CFG_NUM0,        /* double field, [lo, hi]: for settings where 0 means off */
    CFG_NUM_MS,      /* double field, (lo, hi] in ms, stored as seconds */
    CFG_PATH,        /* char[1024] field */
    CFG_BACKEND,
    CFG_CONFIRM,
    CFG_HOST,
    CFG_ACCOUNT,
    CFG_TIME,
    CFG_LOG_LEVEL,
    CFG_WHITELIST,
};

typedef struct cfg_var {
    const char *name;
    enum cfg_kind kind;
    size_t off;         /* offset of the field in im_config */
    size_t size;        /* size of the field (string kinds) */
    double lo, hi;      /* bounds for numeric kinds */
    const char *expect; /* "is not ..." phrase for the error sentence */
} cfg_var;

#define CFG_AT(field) offsetof(im_config, field), sizeof(((im_config *)0)->field)

static const cfg_var cfg_vars[] = {
    {"IBKR_BACKEND", CFG_BACKEND, CFG_AT(backend), 0, 0,
     "is not a backend; use sim (alias mock) or tws (alias ib)"},
    {"IBKR_TRADING_ENABLED", CFG_BOOL, CFG_AT(trading_enabled), 0, 0, NULL},
    {"IBKR_HOST", CFG_HOST, CFG_AT(host), 0, 0,
     "is not a host name or address (1 to 63 printable characters, no spaces)"},
    {"IBKR_PORT", CFG_INT, CFG_AT(port), 1, 65535,
     "is not a whole number from 1 to 65535"},
    {"IBKR_CLIENT_ID", CFG_INT, CFG_AT(client_id), 0, 2147483647.0,
     "is not a whole number from 0 to 2147483647"},
    {"IBKR_ACCOUNT_ID", CFG_ACCOUNT, CFG_AT(account_id), 0, 0,
     "is not an account id (1 to 31 letters and digits)"},
    {"IBKR_ALLOW_LIVE_ACCOUNT", CFG_BOOL, CFG_AT(allow_live_account), 0, 0, NULL},
    {"IBKR_STATE_DIR", CFG_PATH, CFG_AT(state_dir), 0, 0, NULL},
    {"IBKR_CANCEL_ON_EXIT", CFG_BOOL, CFG_AT(cancel_on_exit), 0, 0, NULL},
    {"IBKR_TOOLS_DIR", CFG_PATH, CFG_AT(tools_dir), 0, 0, NULL},
    {"IBKR_POLICY_DIR", CFG_PATH, CFG_AT(policy_dir), 0, 0, NULL},
    {"IBKR_TOKEN_TTL_SECONDS", CFG_NUM, CFG_AT(token_ttl_s), 0, 86400,
     "is not a number of seconds greater than 0 and at most 86400"},
    {"IBKR_SIM_SEED", CFG_U64, CFG_AT(sim_seed), 0, 0,
     "is not an unsigned whole number"},
    {"IBKR_SIM_START", CFG_TIME, CFG_AT(sim_start), 0, 0,
     "is not a time; use YYYY-MM-DDTHH:MM:SSZ, YYYY-MM-DDTHH:MM:SS+HH:MM or epoch seconds"},
    {"IBKR_SIM_CASH", CFG_NUM, CFG_AT(sim_cash), 0, HUGE_VAL,
     "is not a positive number"},
    {"IBKR_SIM_FREEZE", CFG_BOOL, CFG_AT(sim_freeze), 0, 0, NULL},
    {"IBKR_SIM_RESET", CFG_BOOL, CFG_AT(sim_reset), 0, 0, NULL},
    {"IBKR_HALT_CANCELS", CFG_BOOL, CFG_AT(halt_cancels), 0, 0, NULL},
    {"IBKR_CONFIRM", CFG_CONFIRM, CFG_AT(confirm_elicit), 0, 0,
     "is not a confirmation mode; use token (the default: the confirmation token alone) "
     "or elicit (a human confirms through MCP elicitation)"},
    {"IBKR_CONFIRM_ABOVE_NOTIONAL", CFG_NUM0, CFG_AT(confirm_above_notional), 0, HUGE_VAL,
     "is not a number of dollars of at least 0"},
    {"IBKR_MAX_LINE_BYTES", CFG_SIZE, CFG_AT(max_line_bytes), 1024, 1073741824.0,
     "is not a whole number from 1024 to 1073741824"},
    {"IBKR_LOG_LEVEL", CFG_LOG_LEVEL, CFG_AT(log_level), 0, 0,
     "is not a log level; use debug, info, warn, error or off"},
    {"IBKR_MAX_ORDER_QTY", CFG_NUM, CFG_AT(limits.max_order_qty), 0, HUGE_VAL,
     "is not a positive number"},
    {"IBKR_MAX_ORDER_NOTIONAL", CFG_NUM, CFG_AT(limits.max_order_notional), 0, HUGE_VAL,
     "is not a positive number"},
    {"IBKR_MAX_POSITION_NOTIONAL", CFG_NUM, CFG_AT(limits.max_position_notional), 0,
     HUGE_VAL, "is not a positive number"},
    {"IBKR_ALLOW_SHORT", CFG_BOOL, CFG_AT(limits.allow_short), 0, 0, NULL},
    {"IBKR_SYMBOL_WHITELIST", CFG_WHITELIST, CFG_AT(limits.whitelist), 0, 0, NULL},
    {"IBKR_MAX_DAILY_ORDERS", CFG_INT, CFG_AT(limits.max_daily_orders), 0, 2147483647.0,
     "is not a whole number of at least 0"},
    {"IBKR_MKT_PROTECT_BPS", CFG_NUM, CFG_AT(limits.mkt_protect_bps), 0, 1000,
     "is not a number of basis points greater than 0 and at most 1000"},
    {"IBKR_MAX_DRIFT_BPS", CFG_NUM, CFG_AT(limits.max_drift_bps), 0, 10000,
     "is not a number of basis points greater than 0 and at most 10000"},
    {"IBKR_MAX_QUOTE_AGE_MS", CFG_NUM_MS, CFG_AT(limits.max_quote_age_s), 0, HUGE_VAL,
     "is not a positive number of milliseconds"},
    {"IBKR_ALLOW_DELAYED_QUOTES", CFG_BOOL, CFG_AT(limits.allow_delayed_quotes), 0, 0,
     NULL},
    /* The further controls (reference/risk-controls.md section 5). A buffer
     * of 100% is allowed: it makes the account sell-only. Basis points stop
     * at 10000 (100%): no sensible collar, passive distance or spread lies
     * beyond. Percentages of net liquidation go to 10000% for margin. */
    {"IBKR_CASH_BUFFER_PCT", CFG_NUM0, CFG_AT(limits.cash_buffer_pct), 0, 100,
     "is not a percentage from 0 to 100"},
    {"IBKR_COLLAR_BPS", CFG_NUM, CFG_AT(limits.collar_bps), 0, 10000,
     "is not a number of basis points greater than 0 and at most 10000"},
    {"IBKR_PASSIVE_MAX_BPS", CFG_NUM, CFG_AT(limits.passive_max_bps), 0, 10000,
     "is not a number of basis points greater than 0 and at most 10000"},
    {"IBKR_MIN_PRICE", CFG_NUM0, CFG_AT(limits.min_price), 0, HUGE_VAL,
     "is not a price of at least 0 (0 turns the floor off)"},
    {"IBKR_MAX_SPREAD_BPS", CFG_NUM, CFG_AT(limits.max_spread_bps), 0, 10000,
     "is not a number of basis points greater than 0 and at most 10000"},
    {"IBKR_MAX_POSITION_PCT_NLV", CFG_NUM, CFG_AT(limits.max_position_pct_nlv), 0, 10000,
     "is not a percentage greater than 0 and at most 10000"},
    {"IBKR_MAX_GROSS_PCT_NLV", CFG_NUM, CFG_AT(limits.max_gross_pct_nlv), 0, 10000,
     "is not a percentage greater than 0 and at most 10000"},
    {"IBKR_MAX_OPEN_ORDERS", CFG_INT, CFG_AT(limits.max_open_orders), 0, 2147483647.0,
     "is not a whole number of at least 0 (0 turns the check off)"},
    {"IBKR_MAX_OPEN_ORDERS_PER_SYMBOL", CFG_INT, CFG_AT(limits.max_open_orders_per_symbol), 0,
     2147483647.0, "is not a whole number of at least 0 (0 turns the check off)"},
    {"IBKR_MAX_ORDERS_PER_MIN", CFG_INT, CFG_AT(limits.max_orders_per_min), 0, 2147483647.0,
     "is not a whole number of at least 0 (0 turns the check off)"},
    {"IBKR_MAX_ORDERS_PER_HOUR", CFG_INT, CFG_AT(limits.max_orders_per_hour), 0,
     2147483647.0, "is not a whole number of at least 0 (0 turns the check off)"},
    {"IBKR_DUP_WINDOW_S", CFG_NUM0, CFG_AT(limits.dup_window_s), 0, 86400,
     "is not a number of seconds from 0 to 86400 (0 turns the check off)"},
    {"IBKR_MAX_DAILY_NOTIONAL", CFG_NUM, CFG_AT(limits.max_daily_notional), 0, HUGE_VAL,
     "is not a positive number"},
    {"IBKR_MAX_DAILY_LOSS", CFG_NUM0, CFG_AT(limits.max_daily_loss), 0, HUGE_VAL,
     "is not an amount of at least 0 (0 turns the check off)"},
    {"IBKR_MAX_CONSECUTIVE_REJECTS", CFG_INT, CFG_AT(limits.max_consecutive_rejects), 0,
     2147483647.0, "is not a whole number of at least 0 (0 turns the check off)"},
};

/* ---- per-kind parsers ---------------------------------------------------- */

/* Parses IBKR_SYMBOL_WHITELIST (already trimmed) into l. Items are split on
 * commas, trimmed and upper-cased; empty items are skipped and duplicates
 * kept once. A value that names no symbol at all is refused: an operator
 * who set the variable meant to restrict trading, and an empty list would
 * allow every symbol. */
static int cfg_parse_whitelist(const char *name, const char *raw, char *v, im_limits *l,
                               char *err, size_t errlen) {
    size_t n = 0;
    char *item = v;

    for (;;) {
        char *comma = strchr(item, ',');
        char *sym;
        size_t k;
        int dup = 0;

        if (comma != NULL)
            *comma = '\0';
        sym = cfg_trim(item);
        if (sym[0] != '\0') {
            for (char *p = sym; *p != '\0'; p++)
                *p = (char)toupper((unsigned char)*p);
            if (!cfg_symbol_ok(sym)) {
                char quoted[CFG_QUOTE_MAX + 8];
                cfg_quote(sym, quoted, sizeof quoted);
                return cfg_fail(err, errlen, name, raw,
                                "has an invalid symbol '%s'; a symbol is a letter followed "
                                "by up to 11 letters, digits or dots", quoted);
            }
            for (k = 0; k < n; k++)
                if (strcmp(l->whitelist[k], sym) == 0)
                    dup = 1;
            if (!dup) {
                if (n == IM_WHITELIST_MAX)
                    return cfg_fail(err, errlen, name, raw, "lists more than %d symbols",
                                    IM_WHITELIST_MAX);
                snprintf(l->whitelist[n], sizeof l->whitelist[n], "%s", sym);
                n++;
            }
        }
        if (comma == NULL)
            break;
        item = comma + 1;
    }
    if (n == 0)
        return cfg_fail(err, errlen, name, raw,
                        "names no symbol; unset it to allow any symbol");
    l->nwhitelist = n;
    return 0;
}

/* Applies one set, non-empty variable to c. raw is the value as read, v a
 * private trimmed copy that the parser may modify. */
static int cfg_apply(im_config *c, const cfg_var *var, const char *raw, char *v, char *err,
                     size_t errlen) {
    char *field = (char *)c + var->off;
    double d;
    long long ll;
    int b;

    switch (var->kind) {
    case CFG_BOOL:
        if (cfg_parse_bool(v, &b) != 0)
            return cfg_fail(err, errlen, var->name, raw,
                            "is not a boolean; use true or false (or 1/0, yes/no, on/off)");
        *(int *)(void *)field = b;
        return 0;

    case CFG_INT:
    case CFG_SIZE:
        if (cfg_parse_ll(v, &ll) != 0 || (double)ll < var->lo || (double)ll > var->hi)
            return cfg_fail(err, errlen, var->name, raw, "%s", var->expect);
        if (var->kind == CFG_INT)
            *(int *)(void *)field = (int)ll;
        else
            *(size_t *)(void *)field = (size_t)ll;
        return 0;

    case CFG_U64: {
        char *end;
        unsigned long long u;
        const char *p;
        for (p = v; isdigit((unsigned char)*p); p++)
            ;
        if (v[0] == '\0' || *p != '\0')
            return cfg_fail(err, errlen, var->name, raw, "%s", var->expect);
        errno = 0;
        u = strtoull(v, &end, 10);
        if (*end != '\0' || errno == ERANGE)
            return cfg_fail(err, errlen, var->name, raw, "%s", var->expect);
        *(unsigned long long *)(void *)field = u;
        return 0;
    }

    case CFG_NUM:
    case CFG_NUM_MS:
        /* The lower bound is exclusive (every such setting must be > 0),
         * the upper one inclusive. */
        if (cfg_parse_double(v, &d) != 0 || !(d > var->lo) || !(d <= var->hi))
            return cfg_fail(err, errlen, var->name, raw, "%s", var->expect);
        *(double *)(void *)field = var->kind == CFG_NUM_MS ? d / 1000.0 : d;
        return 0;

    case CFG_NUM0:
        /* Both bounds inclusive; "-0" is 0, stored as +0 so that it prints
         * as 0 wherever it is reported. */
        if (cfg_parse_double(v, &d) != 0 || !(d >= var->lo) || !(d <= var->hi))
            return cfg_fail(err, errlen, var->name, raw, "%s", var->expect);
        *(double *)(void *)field = d == 0 ? 0.0 : d;
        return 0;

    case CFG_PATH:
        /* A set but blank value is a mistake, not a request for the default. */
        if (v[0] == '\0')
            return cfg_fail(err, errlen, var->name, raw, "is blank; unset it for the default");
        if (strlen(v) >= var->size)
            return cfg_fail(err, errlen, var->name, raw,
                            "is too long; a directory path must be shorter than %zu bytes",
                            var->size);
        memcpy(field, v, strlen(v) + 1);
        return 0;

    case CFG_CONFIRM:
        if (strcasecmp(v, "token") == 0 || strcasecmp(v, "off") == 0)
            *(int *)field = 0;
        else if (strcasecmp(v, "elicit") == 0)
            *(int *)field = 1;
        else
            return cfg_fail(err, errlen, var->name, raw, "%s", var->expect);
        return 0;

    case CFG_BACKEND:
        if (strcasecmp(v, "sim") == 0 || strcasecmp(v, "mock") == 0)
            snprintf(field, var->size, "sim");
        else if (strcasecmp(v, "tws") == 0 || strcasecmp(v, "ib") == 0)
            snprintf(field, var->size, "tws");
        else
            return cfg_fail(err, errlen, var->name, raw, "%s", var->expect);
        return 0;

    case CFG_HOST: {
        size_t n = strlen(v);
        if (n == 0 || n >= var->size)
            return cfg_fail(err, errlen, var->name, raw, "%s", var->expect);
        for (size_t i = 0; i < n; i++)
            if (v[i] <= ' ' || v[i] > '~') /* printable ASCII, no spaces */
                return cfg_fail(err, errlen, var->name, raw, "%s", var->expect);
        memcpy(field, v, n + 1);
        return 0;
    }

    case CFG_ACCOUNT: {
        size_t n = strlen(v);
        if (n == 0 || n >= var->size)
            return cfg_fail(err, errlen, var->name, raw, "%s", var->expect);
        for (size_t i = 0; i < n; i++)
            if (!((v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= 'a' && v[i] <= 'z') ||
                  (v[i] >= '0' && v[i] <= '9')))
                return cfg_fail(err, errlen, var->name, raw, "%s", var->expect);
        memcpy(field, v, n + 1);
        return 0;
    }

    case CFG_TIME:
        if (im_clock_parse_time(v, &d) != 0)
            return cfg_fail(err, errlen, var->name, raw, "%s", var->expect);
        *(double *)(void *)field = d;
        return 0;

    case CFG_LOG_LEVEL:
        /* Level names are lower case; accept INFO as well as info. */
        for (char *p = v; *p != '\0'; p++)
            *p = (char)tolower((unsigned char)*p);
        if (im_log_parse_level(v, &b) != 0)
            return cfg_fail(err, errlen, var->name, raw, "%s", var->expect);
        *(int *)(void *)field = b;
        return 0;

    case CFG_WHITELIST:
        return cfg_parse_whitelist(var->name, raw, v, &c->limits, err, errlen);
    }
    return cfg_fail(err, errlen, var->name, raw, "cannot be parsed");
}

/* getenv with the loader's signature (calling getenv through a cast
 * pointer of another type would be undefined). */
static const char *cfg_real_getenv(const char *name) { return getenv(name); }

int im_config_load(im_config *c, const char *(*getenv_fn)(const char *name), char *err,
                   size_t errlen) {
    im_config work;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (c == NULL)
        return IM_EINVAL;
    if (getenv_fn == NULL)
        getenv_fn = cfg_real_getenv;

    /* Work on a copy so a refused configuration changes nothing. */
    work = *c;
    for (size_t i = 0; i < IM_ARRAY_SIZE(cfg_vars); i++) {
        const cfg_var *var = &cfg_vars[i];
        const char *raw = getenv_fn(var->name);
        char *copy;
        int rc;

        if (raw == NULL || raw[0] == '\0')
            continue;
        copy = strdup(raw);
        if (copy == NULL)
            return IM_ENOMEM;
        rc = cfg_apply(&work, var, raw, cfg_trim(copy), err, errlen);
        free(copy);
        if (rc != 0)
            return rc;
    }
    *c = work;
    return 0;
}

int im_limits_symbol_allowed(const im_limits *l, const char *sym) {
    if (l == NULL || sym == NULL)
        return 0;
    if (l->nwhitelist == 0)
        return 1;
    for (size_t i = 0; i < l->nwhitelist && i < IM_WHITELIST_MAX; i++)
        if (strcmp(l->whitelist[i], sym) == 0)
            return 1;
    return 0;
}
