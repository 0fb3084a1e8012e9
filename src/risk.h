/* risk.h: the order gate's built-in checks. Pure: decides on a snapshot
 * (order, quote, position, working orders, counters, limits, clock) and
 * never calls the broker. Every check runs at preview and again at place;
 * each rejection carries a stable code (RISK_*) and a sentence with
 * figures. Money arithmetic rejects non-finite values before comparing and
 * compares notionals in whole cents, so a cap is exact at its boundary.
 * Uses config.h (limits) and broker.h (order and quote types). */
#ifndef IM_RISK_H
#define IM_RISK_H

#include <stddef.h>

#include "broker.h"
#include "config.h"

enum im_risk_stage {
    IM_RISK_PREVIEW = 1,
    IM_RISK_PLACE,
};

typedef struct im_risk_input {
    int stage;                 /* IM_RISK_PREVIEW or IM_RISK_PLACE */
    const im_order *order;
    const im_quote *quote;     /* NULL when no quote could be had */
    double now;                /* injected clock, epoch seconds */
    double position_qty;       /* signed current position in the symbol */
    double working_buy_qty;    /* remaining qty of working buys in the symbol */
    double working_sell_qty;   /* remaining qty of working sells in the symbol */
    int orders_today;          /* orders submitted this trading day */
    double preview_ref_price;  /* at place: the reference price seen at preview */
    int halted;                /* kill switch engaged */
    const char *halt_reason;
    /* Account-level snapshot for the further controls. */
    const im_account *account;     /* NULL when it could not be read (fail closed) */
    double gross_position_value;   /* sum of |position| x mark, before this order */
    int open_orders_total;         /* working orders, all symbols (in-flight included) */
    int open_orders_symbol;        /* working orders in this symbol */
    double notional_today;         /* submitted today, before this order */
    int orders_last_minute;        /* submitted in the last 60 s of the clock */
    int orders_last_hour;          /* submitted in the last 3600 s */
    double same_order_age;         /* seconds since an identical order was submitted; < 0 none */
    double pnl_today;              /* realized + unrealized change today; NAN unknown */
    int consecutive_rejects;       /* rejections at place in a row (engine and broker) */
} im_risk_input;

#define IM_RISK_MAX_REASONS 16
#define IM_RISK_CODE_MAX 40
#define IM_RISK_TEXT_MAX 256

typedef struct im_risk_reason {
    char code[IM_RISK_CODE_MAX];   /* e.g. "RISK_NOTIONAL_LIMIT" */
    char text[IM_RISK_TEXT_MAX];   /* e.g. "Order notional $99,748 exceeds per-order cap $20,000." */
} im_risk_reason;

typedef struct im_risk_result {
    int approved;
    double reference_price;   /* ask for BUY, bid for SELL; 0 without a quote */
    double pricing_price;     /* price the notional is computed at (collar for MKT) */
    double notional;          /* quantity x pricing_price */
    double projected_position;/* signed shares after this order and working orders */
    size_t nreasons;
    im_risk_reason reasons[IM_RISK_MAX_REASONS];
} im_risk_result;

/* Runs every built-in check. Returns 0 with the decision in *out, or
 * IM_EINVAL for NULL arguments. A missing or unusable input is a
 * rejection, never an approval (fail closed). */
int im_risk_check(const im_limits *l, const im_risk_input *in, im_risk_result *out);
/* Adds a reason to r (and clears approved); silently keeps the first
 * IM_RISK_MAX_REASONS. */
void im_risk_reject(im_risk_result *r, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Formats a dollar amount as "$99,748" or "$8,397.50" into out. */
void im_risk_fmt_money(double v, char *out, size_t outlen);

#endif
