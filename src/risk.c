/* risk.c: the order gate's built-in checks (risk.h).
 *
 * Provides im_risk_check, a pure function of a snapshot (order, quote,
 * position, working orders, counters, limits, clock) that runs every
 * built-in check and returns every reason that applies, each with a stable
 * RISK_* code and a sentence with figures. It never calls the broker and
 * keeps no state, so preview and place run exactly the same code.
 *
 * Uses config.h (limits, whitelist) and broker.h (order, quote, enum names).
 *
 * Fail closed: a missing or unusable input is a rejection, never an
 * approval. Every double that reaches a comparison has passed isfinite()
 * first (NaN compares false, so `nan > cap` would silently pass), and money
 * caps are compared in whole cents so that a cap is exact at its boundary:
 * $20,000.00 passes a $20,000 cap and $20,000.01 fails. */
#include "risk.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "error.h"

/* Input sanity bounds (reference/risk-controls.md section 5). */
#define RISK_MAX_QTY 1e9
#define RISK_MAX_PRICE 1e7
/* A quote stamped further ahead of our clock than this is clock skew, not
 * a fresh price. */
#define RISK_MAX_QUOTE_FUTURE_S 5.0
/* How many whitelist entries a rejection names before "...". */
#define RISK_WHITELIST_SHOWN 10

/* ---- formatting ---------------------------------------------------------- */

/* Copies the decimal digits in digits into out with a comma every three
 * from the right ("1234567" -> "1,234,567"). */
static void risk_group(const char *digits, char *out, size_t outlen) {
    size_t n = strlen(digits), j = 0;
    if (outlen == 0)
        return;
    for (size_t i = 0; i < n && j + 1 < outlen; i++) {
        if (i > 0 && (n - i) % 3 == 0 && j + 2 < outlen)
            out[j++] = ',';
        out[j++] = digits[i];
    }
    out[j] = '\0';
}

/* llround(v * scale), saturated: llround is unspecified outside the long
 * long range, and a wrapped result could turn "far above the cap" into
 * "below it". Infinities saturate too, so an overflowed product is still
 * over every cap. The caller has already rejected NaN. */
static long long risk_fixed(double v, double scale) {
    const double lim = 9.0e18;
    double c = v * scale;
    if (c >= lim)
        return LLONG_MAX;
    if (c <= -lim)
        return -LLONG_MAX;
    return llround(c);
}

/* Whole cents: how every money cap is compared. */
static long long risk_cents(double v) { return risk_fixed(v, 100.0); }

/* Formats |v| with thousands separators and exactly `decimals` (0, 2 or 4)
 * decimal places, with a leading '-' when negative and not rounding to 0. */
static void risk_fmt_grouped(double v, int decimals, const char *unit, char *out,
                             size_t outlen) {
    char digits[64], grouped[96];
    const char *sign = "";
    double a = fabs(v);
    long long scale = decimals == 4 ? 10000 : decimals == 2 ? 100 : 1;

    if (!isfinite(v)) {
        snprintf(out, outlen, "%s?", unit);
        return;
    }
    if (a * (double)scale < 1e17) {
        long long units = llround(a * (double)scale);
        long long whole = units / scale, frac = units % scale;
        if (v < 0 && units != 0)
            sign = "-";
        snprintf(digits, sizeof digits, "%lld", whole);
        risk_group(digits, grouped, sizeof grouped);
        if (decimals == 4)
            snprintf(out, outlen, "%s%s%s.%04d", sign, unit, grouped, (int)frac);
        else if (decimals == 2)
            snprintf(out, outlen, "%s%s%s.%02d", sign, unit, grouped, (int)frac);
        else
            snprintf(out, outlen, "%s%s%s", sign, unit, grouped);
        return;
    }
    /* Beyond the precision of a double: whole units only. */
    if (v < 0)
        sign = "-";
    snprintf(digits, sizeof digits, "%.0f", a);
    risk_group(digits, grouped, sizeof grouped);
    snprintf(out, outlen, "%s%s%s", sign, unit, grouped);
}

void im_risk_fmt_money(double v, char *out, size_t outlen) {
    if (out == NULL || outlen == 0)
        return;
    if (isfinite(v) && fabs(v) < 1e15 && llround(fabs(v) * 100.0) % 100 != 0)
        risk_fmt_grouped(v, 2, "$", out, outlen);
    else
        risk_fmt_grouped(v, 0, "$", out, outlen);
}

/* A price: always two decimals ("$100.00"), four when the price has
 * sub-cent precision ("$0.0015"), so the figures in a sentence agree. */
static void risk_fmt_price(double v, char *out, size_t outlen) {
    int sub_cent = isfinite(v) && fabs(v) < 1e11 &&
                   llround(fabs(v) * 10000.0) % 100 != 0;
    risk_fmt_grouped(v, sub_cent ? 4 : 2, "$", out, outlen);
}

/* A share count: "1,500" for whole numbers, plain %g otherwise. */
static void risk_fmt_qty(double v, char *out, size_t outlen) {
    if (isfinite(v) && fabs(v) < 1e15 && v == floor(v))
        risk_fmt_grouped(v, 0, "", out, outlen);
    else
        snprintf(out, outlen, "%g", v);
}

void im_risk_reject(im_risk_result *r, const char *code, const char *fmt, ...) {
    im_risk_reason *reason;
    va_list ap;

    if (r == NULL)
        return;
    r->approved = 0;
    if (r->nreasons >= IM_RISK_MAX_REASONS)
        return;
    reason = &r->reasons[r->nreasons++];
    snprintf(reason->code, sizeof reason->code, "%s", code != NULL ? code : "RISK_UNKNOWN");
    va_start(ap, fmt);
    vsnprintf(reason->text, sizeof reason->text, fmt, ap);
    va_end(ap);
}

/* ---- input sanity -------------------------------------------------------- */

/* ^[A-Z][A-Z0-9.]{0,11}$ within the IM_SYMBOL_MAX bytes of the field (an
 * unterminated field fails rather than being read past its end). */
static int risk_symbol_ok(const char *s) {
    size_t n = strnlen(s, IM_SYMBOL_MAX);
    if (n < 1 || n > 12 || !(s[0] >= 'A' && s[0] <= 'Z'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
            return 0;
    return 1;
}

/* Copies at most IM_SYMBOL_MAX bytes of a symbol field for a sentence,
 * replacing anything but printable ASCII: reasons end up in JSON and the
 * journal, which must stay valid text whatever the agent sent. */
static void risk_printable(const char *s, char *out, size_t outlen) {
    size_t n = strnlen(s, IM_SYMBOL_MAX), j = 0;
    for (size_t i = 0; i < n && j + 1 < outlen; i++)
        out[j++] = s[i] >= ' ' && s[i] <= '~' ? s[i] : '?';
    out[j] = '\0';
}

/* Checks one price that the order type requires (or forbids). what is
 * "Limit price" or "Stop price". */
static void risk_check_price(im_risk_result *r, const char *what, double px, int required,
                             const char *type_name) {
    if (!isfinite(px)) {
        im_risk_reject(r, "RISK_INVALID_INPUT", "%s %g is not a finite number.", what, px);
    } else if (required) {
        if (px == 0)
            im_risk_reject(r, "RISK_INVALID_INPUT", "%s is required for a %s order (set %s).",
                           what, type_name, what[0] == 'L' ? "limit_price" : "stop_price");
        else if (px < 0)
            im_risk_reject(r, "RISK_INVALID_INPUT",
                           "%s %g must be greater than 0 for a %s order.", what, px, type_name);
        else if (px > RISK_MAX_PRICE)
            im_risk_reject(r, "RISK_INVALID_INPUT", "%s %g exceeds the sanity bound %g.", what,
                           px, RISK_MAX_PRICE);
    } else if (px != 0) {
        im_risk_reject(r, "RISK_INVALID_INPUT", "%s %g is not allowed on a %s order; use 0.",
                       what, px, type_name);
    }
}

/* The sanity checks: the order's own fields, then the figures the caller
 * gathered. Returns the number of reasons added. */
static size_t risk_sanity(im_risk_result *r, const im_risk_input *in) {
    const im_order *o = in->order;
    size_t before = r->nreasons;
    int side_ok = o->side == IM_SIDE_BUY || o->side == IM_SIDE_SELL;
    int type_ok = o->type >= IM_OT_MKT && o->type <= IM_OT_STP_LMT;
    int tif_ok = o->tif >= IM_TIF_DAY && o->tif <= IM_TIF_IOC;

    if (!risk_symbol_ok(o->symbol)) {
        char shown[IM_SYMBOL_MAX + 1];
        risk_printable(o->symbol, shown, sizeof shown);
        im_risk_reject(r, "RISK_INVALID_INPUT",
                       "Symbol '%s' is not valid; use 1 to 12 upper-case letters, digits or "
                       "dots, starting with a letter.",
                       shown);
    }
    if (!side_ok)
        im_risk_reject(r, "RISK_INVALID_INPUT", "Side %d is not BUY or SELL.", (int)o->side);
    if (!type_ok)
        im_risk_reject(r, "RISK_INVALID_INPUT", "Order type %d is not MKT, LMT, STP or STP LMT.",
                       (int)o->type);
    if (!tif_ok)
        im_risk_reject(r, "RISK_INVALID_INPUT", "Time in force %d is not DAY, GTC or IOC.",
                       (int)o->tif);

    if (!isfinite(o->quantity))
        im_risk_reject(r, "RISK_INVALID_INPUT", "Quantity %g is not a finite number.",
                       o->quantity);
    else if (o->quantity <= 0)
        im_risk_reject(r, "RISK_INVALID_INPUT", "Quantity %g must be greater than 0.",
                       o->quantity);
    else if (o->quantity > RISK_MAX_QTY)
        im_risk_reject(r, "RISK_INVALID_INPUT", "Quantity %g exceeds the sanity bound %g.",
                       o->quantity, RISK_MAX_QTY);
    else if (o->quantity != floor(o->quantity))
        im_risk_reject(r, "RISK_INVALID_INPUT",
                       "Quantity %g is not a whole number of shares.", o->quantity);

    /* Which prices are required depends on the type; with an unknown type
     * there is nothing sensible to say about them. */
    if (type_ok) {
        const char *tn = im_order_type_str(o->type);
        risk_check_price(r, "Limit price", o->limit_price,
                         o->type == IM_OT_LMT || o->type == IM_OT_STP_LMT, tn);
        risk_check_price(r, "Stop price", o->stop_price,
                         o->type == IM_OT_STP || o->type == IM_OT_STP_LMT, tn);
    }

    /* The snapshot itself: broker figures that are not finite or not
     * possible cannot support a decision. */
    if (!isfinite(in->position_qty) || !isfinite(in->working_buy_qty) ||
        !isfinite(in->working_sell_qty) || in->working_buy_qty < 0 ||
        in->working_sell_qty < 0 || in->orders_today < 0)
        im_risk_reject(r, "RISK_INVALID_INPUT",
                       "Account state is not usable (position %g, working buys %g, working "
                       "sells %g, orders today %d).",
                       in->position_qty, in->working_buy_qty, in->working_sell_qty,
                       in->orders_today);
    if (!isfinite(in->preview_ref_price) || in->preview_ref_price < 0)
        im_risk_reject(r, "RISK_INVALID_INPUT", "Preview reference price %g is not usable.",
                       in->preview_ref_price);
    return r->nreasons - before;
}

/* ---- the checks ---------------------------------------------------------- */

static void risk_whitelist(im_risk_result *r, const im_limits *l, const char *sym) {
    char list[IM_RISK_TEXT_MAX];
    size_t n = 0, shown = l->nwhitelist;

    if (shown > RISK_WHITELIST_SHOWN)
        shown = RISK_WHITELIST_SHOWN;
    list[0] = '\0';
    for (size_t i = 0; i < shown && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%.*s", i ? ", " : "",
                              (int)sizeof l->whitelist[i], l->whitelist[i]);
    if (l->nwhitelist > shown && n < sizeof list)
        snprintf(list + n, sizeof list - n, ", ...");
    im_risk_reject(r, "RISK_SYMBOL_NOT_ALLOWED", "Symbol %s is not in the allowed list (%s).",
                   sym, list);
}

/* Quote checks. Returns 1 when the quote's prices are usable (present,
 * finite, positive, not crossed); the age and delay checks add reasons but
 * do not make the prices unusable for the figures in the result. */
static int risk_quote(im_risk_result *r, const im_limits *l, const im_risk_input *in,
                      const char *sym) {
    const im_quote *q = in->quote;
    char b[48], a[48];
    int usable;

    if (q == NULL) {
        im_risk_reject(r, "RISK_NO_QUOTE", "No quote for %s; orders need a current price.",
                       sym);
        return 0;
    }
    /* A quote for another instrument is no quote for this one. An empty
     * symbol is taken as "the one asked for". */
    if (q->symbol[0] != '\0' && strncmp(q->symbol, sym, IM_SYMBOL_MAX) != 0) {
        char qs[IM_SYMBOL_MAX + 1];
        risk_printable(q->symbol, qs, sizeof qs);
        im_risk_reject(r, "RISK_BAD_QUOTE", "The quote supplied is for %s, not %s.", qs, sym);
        return 0;
    }
    usable = isfinite(q->bid) && isfinite(q->ask) && q->bid > 0 && q->ask > 0 &&
             q->bid <= q->ask && q->ask <= RISK_MAX_PRICE;
    if (!usable) {
        risk_fmt_price(q->bid, b, sizeof b);
        risk_fmt_price(q->ask, a, sizeof a);
        im_risk_reject(r, "RISK_BAD_QUOTE",
                       "Quote for %s is not usable (bid %s, ask %s); both must be positive, "
                       "the bid no higher than the ask.",
                       sym, b, a);
    }
    if (q->delayed && !l->allow_delayed_quotes)
        im_risk_reject(r, "RISK_DELAYED_DATA",
                       "Quote for %s is delayed, not real time; orders need real-time data "
                       "(or the operator setting IBKR_ALLOW_DELAYED_QUOTES=true).",
                       sym);
    if (!isfinite(q->time)) {
        im_risk_reject(r, "RISK_STALE_QUOTE", "Quote for %s has no valid timestamp.", sym);
    } else if (in->now - q->time > l->max_quote_age_s) {
        im_risk_reject(r, "RISK_STALE_QUOTE",
                       "Quote for %s is %g s old; the limit is %g s.", sym,
                       in->now - q->time, l->max_quote_age_s);
    } else if (q->time - in->now > RISK_MAX_QUOTE_FUTURE_S) {
        im_risk_reject(r, "RISK_STALE_QUOTE",
                       "Quote for %s is stamped %g s in the future; more than %g s of "
                       "clock skew is refused.",
                       sym, q->time - in->now, RISK_MAX_QUOTE_FUTURE_S);
    }
    return usable;
}

/* Stops that would trigger the moment they reach the market. */
static void risk_trigger(im_risk_result *r, const im_order *o, const im_quote *q) {
    char stp[48], px[48];
    if (o->type != IM_OT_STP && o->type != IM_OT_STP_LMT)
        return;
    risk_fmt_price(o->stop_price, stp, sizeof stp);
    if (o->side == IM_SIDE_BUY && o->stop_price <= q->ask) {
        risk_fmt_price(q->ask, px, sizeof px);
        im_risk_reject(r, "RISK_BAD_TRIGGER",
                       "Buy stop %s is at or below the ask %s, so it would trigger at once.",
                       stp, px);
    } else if (o->side == IM_SIDE_SELL && o->stop_price >= q->bid) {
        risk_fmt_price(q->bid, px, sizeof px);
        im_risk_reject(r, "RISK_BAD_TRIGGER",
                       "Sell stop %s is at or above the bid %s, so it would trigger at once.",
                       stp, px);
    }
}

/* The price every cap is computed at. MKT and STP orders have no price of
 * their own, so they are priced at the protective collar: what the order
 * could cost if it filled mkt_protect_bps through the reference (MKT) or
 * the stop (STP). Returns 0 when no price can be had. */
static double risk_pricing_price(const im_limits *l, const im_order *o, double ref,
                                 int usable) {
    double collar = l->mkt_protect_bps / 10000.0;
    double dir = o->side == IM_SIDE_BUY ? 1.0 : -1.0;

    switch (o->type) {
    case IM_OT_MKT:
        return usable ? ref * (1.0 + dir * collar) : 0;
    case IM_OT_STP:
        return usable ? o->stop_price * (1.0 + dir * collar) : 0;
    case IM_OT_LMT:
    case IM_OT_STP_LMT:
        return o->limit_price;
    }
    return 0;
}

static void risk_caps(im_risk_result *r, const im_limits *l, const im_risk_input *in) {
    const im_order *o = in->order;
    char a[64], b[64];
    double px = r->pricing_price;

    if (o->quantity > l->max_order_qty) {
        risk_fmt_qty(o->quantity, a, sizeof a);
        risk_fmt_qty(l->max_order_qty, b, sizeof b);
        im_risk_reject(r, "RISK_QTY_LIMIT", "Order quantity %s exceeds per-order cap %s shares.",
                       a, b);
    }
    if (px > 0 && risk_cents(r->notional) > risk_cents(l->max_order_notional)) {
        im_risk_fmt_money(r->notional, a, sizeof a);
        im_risk_fmt_money(l->max_order_notional, b, sizeof b);
        im_risk_reject(r, "RISK_NOTIONAL_LIMIT", "Order notional %s exceeds per-order cap %s.",
                       a, b);
    }
    /* Only an order that adds exposure can breach the position cap: one
     * that brings the position towards flat is always let through, or a
     * breached cap could never be worked off. */
    if (px > 0 && fabs(r->projected_position) > fabs(in->position_qty)) {
        double pos_notional = fabs(r->projected_position) * px;
        if (risk_cents(pos_notional) > risk_cents(l->max_position_notional)) {
            im_risk_fmt_money(pos_notional, a, sizeof a);
            im_risk_fmt_money(l->max_position_notional, b, sizeof b);
            im_risk_reject(r, "RISK_POSITION_LIMIT",
                           "Resulting position notional %s exceeds position cap %s.", a, b);
        }
    }
}

static void risk_short(im_risk_result *r, const im_limits *l, const im_risk_input *in,
                       const char *sym) {
    const im_order *o = in->order;
    char q[48], held[48], selling[48];
    double available = in->position_qty - in->working_sell_qty;

    if (l->allow_short || o->side != IM_SIDE_SELL || o->quantity <= available)
        return;
    risk_fmt_qty(o->quantity, q, sizeof q);
    risk_fmt_qty(in->position_qty, held, sizeof held);
    risk_fmt_qty(in->working_sell_qty, selling, sizeof selling);
    im_risk_reject(r, "RISK_SHORT_NOT_ALLOWED",
                   "Selling %s %s exceeds the %s shares held (%s already being sold); short "
                   "selling is disabled.",
                   q, sym, held, selling);
}

/* At place only: the reference price must not have moved more than
 * max_drift_bps since the preview the token was issued on. Compared in
 * units of 1e-4 bp so that exactly the limit passes despite binary
 * rounding in the division. */
static void risk_drift(im_risk_result *r, const im_limits *l, const im_risk_input *in,
                       const char *sym) {
    double prev = in->preview_ref_price, ref = r->reference_price, bps;
    char a[48], b[48];

    if (in->stage != IM_RISK_PLACE || !(prev > 0) || !(ref > 0))
        return;
    bps = fabs(ref - prev) / prev * 10000.0;
    if (risk_fixed(bps, 1e4) <= risk_fixed(l->max_drift_bps, 1e4))
        return;
    risk_fmt_price(prev, a, sizeof a);
    risk_fmt_price(ref, b, sizeof b);
    im_risk_reject(r, "RISK_PRICE_MOVED",
                   "Price of %s moved %.2f%% since the preview (%s -> %s); the limit is "
                   "%.2f%%. Preview the order again.",
                   sym, bps / 100.0, a, b, l->max_drift_bps / 100.0);
}

/* The limits are operator-validated at start-up (config.c), but a cap that
 * is NaN would pass every order, so the engine refuses to decide on one. */
static int risk_limits_ok(const im_limits *l) {
    return isfinite(l->max_order_qty) && l->max_order_qty > 0 &&
           isfinite(l->max_order_notional) && l->max_order_notional > 0 &&
           isfinite(l->max_position_notional) && l->max_position_notional > 0 &&
           isfinite(l->mkt_protect_bps) && l->mkt_protect_bps >= 0 &&
           l->mkt_protect_bps < 10000 && isfinite(l->max_drift_bps) &&
           l->max_drift_bps >= 0 && isfinite(l->max_quote_age_s) && l->max_quote_age_s >= 0 &&
           l->max_daily_orders >= 0 && l->nwhitelist <= IM_WHITELIST_MAX;
}

int im_risk_check(const im_limits *l, const im_risk_input *in, im_risk_result *out) {
    const im_order *o;
    const char *sym;
    size_t insane;
    int usable;

    if (out != NULL)
        memset(out, 0, sizeof *out); /* approved = 0 until proven otherwise */
    if (l == NULL || in == NULL || out == NULL || in->order == NULL || !isfinite(in->now) ||
        (in->stage != IM_RISK_PREVIEW && in->stage != IM_RISK_PLACE))
        return IM_EINVAL;
    o = in->order;
    sym = o->symbol;

    /* The kill switch needs nothing from the order, so it is reported even
     * when the order itself is malformed. */
    if (in->halted)
        im_risk_reject(out, "RISK_HALTED",
                       "Trading is halted: %s. Only an operator can resume trading.",
                       in->halt_reason != NULL && in->halt_reason[0] != '\0' ? in->halt_reason
                                                                         : "no reason given");

    /* Sanity first: no other check can reason about a malformed order or
     * unusable limits, so stop here with only these reasons. */
    insane = risk_sanity(out, in);
    if (!risk_limits_ok(l)) {
        im_risk_reject(out, "RISK_INVALID_INPUT",
                       "The configured risk limits are not usable; no order can be checked.");
        insane++;
    }
    if (insane > 0)
        return 0;

    if (!im_limits_symbol_allowed(l, sym))
        risk_whitelist(out, l, sym);

    usable = risk_quote(out, l, in, sym);
    if (usable)
        out->reference_price = o->side == IM_SIDE_BUY ? in->quote->ask : in->quote->bid;
    out->pricing_price = risk_pricing_price(l, o, out->reference_price, usable);
    out->notional = o->quantity * out->pricing_price;
    out->projected_position = o->side == IM_SIDE_BUY
                                  ? in->position_qty + in->working_buy_qty + o->quantity
                                  : in->position_qty - in->working_sell_qty - o->quantity;

    if (usable)
        risk_trigger(out, o, in->quote);
    risk_caps(out, l, in);
    risk_short(out, l, in, sym);

    if (in->orders_today >= l->max_daily_orders)
        im_risk_reject(out, "RISK_DAILY_ORDER_LIMIT",
                       "Daily order limit reached: %d of %d orders submitted today.",
                       in->orders_today, l->max_daily_orders);

    risk_drift(out, l, in, sym);

    out->approved = out->nreasons == 0;
    return 0;
}
