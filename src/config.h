/* config.h: environment -> validated settings. Every IBKR_* variable is read
 * here once, at start-up; a bad value stops start-up with a message naming
 * the variable. Names and defaults follow the Python original. */
#ifndef IM_CONFIG_H
#define IM_CONFIG_H

#include <stddef.h>

#define IM_WHITELIST_MAX 256

/* The built-in risk limits. Each maps to one IBKR_* variable. */
typedef struct im_limits {
    double max_order_qty;          /* IBKR_MAX_ORDER_QTY (1000) */
    double max_order_notional;     /* IBKR_MAX_ORDER_NOTIONAL (20000) */
    double max_position_notional;  /* IBKR_MAX_POSITION_NOTIONAL (60000) */
    int allow_short;               /* IBKR_ALLOW_SHORT (false) */
    char whitelist[IM_WHITELIST_MAX][16]; /* IBKR_SYMBOL_WHITELIST (empty = any) */
    size_t nwhitelist;
    int max_daily_orders;          /* IBKR_MAX_DAILY_ORDERS (50) */
    double mkt_protect_bps;        /* IBKR_MKT_PROTECT_BPS (100): collar for MKT pricing */
    double max_drift_bps;          /* IBKR_MAX_DRIFT_BPS (500): preview -> place move */
    double max_quote_age_s;        /* IBKR_MAX_QUOTE_AGE_MS (60000) / 1000 */
    int allow_delayed_quotes;      /* IBKR_ALLOW_DELAYED_QUOTES (false) */
    /* Further controls (reference/risk-controls.md section 5). The
     * defaults are ones a normal session never trips; 0 disables the
     * ones marked "0 = off". examples/strict.env holds the strict profile. */
    double cash_buffer_pct;        /* IBKR_CASH_BUFFER_PCT (0): kept free of buying power */
    double collar_bps;             /* IBKR_COLLAR_BPS (1000): marketable limit beyond the touch */
    double passive_max_bps;        /* IBKR_PASSIVE_MAX_BPS (5000): passive limit far from market */
    double min_price;              /* IBKR_MIN_PRICE (0 = off) */
    double max_spread_bps;         /* IBKR_MAX_SPREAD_BPS (1000): marketable orders only */
    double max_position_pct_nlv;   /* IBKR_MAX_POSITION_PCT_NLV (100) */
    double max_gross_pct_nlv;      /* IBKR_MAX_GROSS_PCT_NLV (200) */
    int max_open_orders;           /* IBKR_MAX_OPEN_ORDERS (100) */
    int max_open_orders_per_symbol;/* IBKR_MAX_OPEN_ORDERS_PER_SYMBOL (20) */
    int max_orders_per_min;        /* IBKR_MAX_ORDERS_PER_MIN (30) */
    int max_orders_per_hour;       /* IBKR_MAX_ORDERS_PER_HOUR (300) */
    double dup_window_s;           /* IBKR_DUP_WINDOW_S (0 = off) */
    double max_daily_notional;     /* IBKR_MAX_DAILY_NOTIONAL (1000000) */
    double max_daily_loss;         /* IBKR_MAX_DAILY_LOSS (0 = off): then only reducing orders */
    int max_consecutive_rejects;   /* IBKR_MAX_CONSECUTIVE_REJECTS (10): then halt */
} im_limits;

typedef struct im_config {
    char backend[8];               /* IBKR_BACKEND: "sim" (alias mock) or "tws" (alias ib) */
    int trading_enabled;           /* IBKR_TRADING_ENABLED (false) */
    char host[64];                 /* IBKR_HOST (127.0.0.1) */
    int port;                      /* IBKR_PORT (7497) */
    int client_id;                 /* IBKR_CLIENT_ID (1) */
    char account_id[32];           /* IBKR_ACCOUNT_ID (empty = first managed) */
    int allow_live_account;        /* IBKR_ALLOW_LIVE_ACCOUNT (false) */
    char state_dir[1024];          /* IBKR_STATE_DIR: journal, KILL file, REPL socket */
    int cancel_on_exit;            /* IBKR_CANCEL_ON_EXIT (false): working orders stay */
    char tools_dir[1024];          /* IBKR_TOOLS_DIR (empty = beside the binary) */
    char policy_dir[1024];         /* IBKR_POLICY_DIR (empty = beside the binary) */
    double token_ttl_s;            /* IBKR_TOKEN_TTL_SECONDS (120) */
    unsigned long long sim_seed;   /* IBKR_SIM_SEED (42) */
    double sim_start;              /* IBKR_SIM_START (IM_CLOCK_DEFAULT_SIM_START) */
    double sim_cash;               /* IBKR_SIM_CASH (100000) */
    int sim_freeze;                /* IBKR_SIM_FREEZE (false): test-only frozen clock */
    int sim_reset;                 /* IBKR_SIM_RESET (false): start the sim account afresh */
    int halt_cancels;              /* IBKR_HALT_CANCELS (true): halting cancels working orders */
    int confirm_elicit;            /* IBKR_CONFIRM=elicit (token): a human confirms each order */
    double confirm_above_notional; /* IBKR_CONFIRM_ABOVE_NOTIONAL (0 = every order) */
    size_t max_line_bytes;         /* IBKR_MAX_LINE_BYTES (4 MiB) */
    int log_level;                 /* IBKR_LOG_LEVEL (info) */
    im_limits limits;
} im_config;

/* Fills c with the documented defaults. */
void im_config_defaults(im_config *c);
/* Reads every IBKR_* variable through getenv_fn (getenv in production,
 * a table in tests) over the defaults already in c. On a bad value returns
 * IM_ECONFIG and writes a sentence naming the variable into err. */
int im_config_load(im_config *c, const char *(*getenv_fn)(const char *name),
                   char *err, size_t errlen);
/* 1 when sym is allowed by the whitelist (always, when it is empty). */
int im_limits_symbol_allowed(const im_limits *l, const char *sym);

#endif
