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
 * $20,000.00 passes a $20,000 cap and $20,000.01 fails. Distances in basis
 * points are compared in units of 1e-4 bp for the same reason.
 *
 * Exits are privileged but bounded (reference/risk-controls.md section 4,
 * rule 6). An order is exposure-reducing when |position +/- quantity| <
 * |position| for the order alone; such an order skips the checks that
 * exist to stop new exposure (buying power, concentration, gross exposure,
 * daily loss, the price floor) but never the kill switch, the reject
 * breaker, input sanity, the collar or the duplicate check. (The position
 * cap has its own test on the projected position, working orders
 * included.) A missing account snapshot refuses every order, exits
 * included: the engine does not decide without one. */
#include "risk.h"
#include "text.h"

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
    /* A long quoted value (a halt reason) may be cut mid-character: the
     * text goes out as JSON, so it must stay UTF-8. */
    im_text_sanitize(reason->text);
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
    /* The counters behind the order-flow checks. A negative count or an
     * age that is not a number would let a check pass by accident. (An
     * unknown P&L is allowed: NAN is how the caller says so, and the daily
     * loss check refuses new exposure on it.) */
    if (in->open_orders_total < 0 || in->open_orders_symbol < 0 ||
        in->orders_last_minute < 0 || in->orders_last_hour < 0 ||
        in->consecutive_rejects < 0 || !isfinite(in->notional_today) ||
        in->notional_today < 0 || !isfinite(in->same_order_age))
        im_risk_reject(r, "RISK_INVALID_INPUT",
                       "Order counters are not usable (open orders %d, %d in this symbol, %d "
                       "in the last minute, %d in the last hour, %d rejects in a row, %g "
                       "submitted today, identical order %g s ago).",
                       in->open_orders_total, in->open_orders_symbol, in->orders_last_minute,
                       in->orders_last_hour, in->consecutive_rejects, in->notional_today,
                       in->same_order_age);
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

/* ---- the further controls (reference/risk-controls.md section 5) ------- */

/* 1 when bps is more than limit_bps, both compared in units of 1e-4 bp so
 * that a distance exactly at the limit passes despite binary rounding in
 * the division that produced it. */
static int risk_bps_over(double bps, double limit_bps) {
    return risk_fixed(bps, 1e4) > risk_fixed(limit_bps, 1e4);
}

/* Would the order trade on arrival? MKT does, and so does a stop once
 * triggered (it becomes a market order); a limit does when it reaches the
 * other side's touch. A stop-limit's limit only matters after the trigger,
 * so it is not judged against today's touch. */
static int risk_marketable(const im_order *o, const im_quote *q) {
    switch (o->type) {
    case IM_OT_MKT:
    case IM_OT_STP:
        return 1;
    case IM_OT_LMT:
        return o->side == IM_SIDE_BUY ? o->limit_price >= q->ask : o->limit_price <= q->bid;
    case IM_OT_STP_LMT:
        return 0;
    }
    return 0;
}

/* The reject breaker: after max_consecutive_rejects rejections at place in
 * a row the session halts; this reason says why. */
static void risk_breaker(im_risk_result *r, const im_limits *l, const im_risk_input *in) {
    if (l->max_consecutive_rejects <= 0 || in->consecutive_rejects < l->max_consecutive_rejects)
        return;
    im_risk_reject(r, "RISK_REJECT_BREAKER",
                   "%d orders in a row were rejected (the limit is %d); trading stops until "
                   "an operator resumes it.",
                   in->consecutive_rejects, l->max_consecutive_rejects);
}

/* The penny-stock guard: the market price and the order's own limit must
 * both be at least min_price. Only for orders that add exposure: a position
 * whose price has fallen below the floor must still be sellable. q is NULL
 * without a usable quote (the limit alone is judged then). */
static void risk_floor(im_risk_result *r, const im_limits *l, const im_order *o,
                       const im_quote *q) {
    char a[48], b[48];
    const char *what = NULL;
    double px = 0;
    long long floor_units = risk_fixed(l->min_price, 1e4);

    if (!(l->min_price > 0))
        return;
    if (q != NULL) {
        px = o->side == IM_SIDE_BUY ? q->ask : q->bid;
        what = o->side == IM_SIDE_BUY ? "The ask" : "The bid";
    }
    if (what == NULL || risk_fixed(px, 1e4) >= floor_units) {
        what = NULL;
        if ((o->type == IM_OT_LMT || o->type == IM_OT_STP_LMT) &&
            risk_fixed(o->limit_price, 1e4) < floor_units) {
            px = o->limit_price;
            what = "The limit price";
        }
    }
    if (what == NULL)
        return;
    risk_fmt_price(px, a, sizeof a);
    risk_fmt_price(l->min_price, b, sizeof b);
    im_risk_reject(r, "RISK_PRICE_FLOOR",
                   "%s %s is below the minimum price %s; low-priced stocks are not bought or "
                   "sold short.",
                   what, a, b);
}

/* A marketable limit may reach at most collar_bps beyond the touch: buy
 * (limit - ask) / ask, sell (bid - limit) / bid. */
static void risk_collar(im_risk_result *r, const im_limits *l, const im_order *o,
                        const im_quote *q) {
    char a[48], b[48];
    double touch, bps;
    int buy = o->side == IM_SIDE_BUY;

    if (o->type != IM_OT_LMT || !risk_marketable(o, q))
        return;
    touch = buy ? q->ask : q->bid;
    bps = (buy ? o->limit_price - touch : touch - o->limit_price) / touch * 10000.0;
    if (!risk_bps_over(bps, l->collar_bps))
        return;
    risk_fmt_price(o->limit_price, a, sizeof a);
    risk_fmt_price(touch, b, sizeof b);
    im_risk_reject(r, "RISK_PRICE_COLLAR",
                   "%s limit %s is %.2f%% %s the %s %s; a marketable limit may reach at most "
                   "%.2f%% beyond it.",
                   buy ? "Buy" : "Sell", a, bps / 100.0, buy ? "above" : "below",
                   buy ? "ask" : "bid", b, l->collar_bps / 100.0);
}

/* A resting limit far from its own side's touch is most likely a typo
 * (15 for 150): buy (bid - limit) / bid, sell (limit - ask) / ask. */
static void risk_far(im_risk_result *r, const im_limits *l, const im_order *o,
                     const im_quote *q) {
    char a[48], b[48];
    double touch, bps;
    int buy = o->side == IM_SIDE_BUY;

    if (o->type != IM_OT_LMT)
        return;
    touch = buy ? q->bid : q->ask;
    if (buy ? !(o->limit_price < touch) : !(o->limit_price > touch))
        return;
    bps = (buy ? touch - o->limit_price : o->limit_price - touch) / touch * 10000.0;
    if (!risk_bps_over(bps, l->passive_max_bps))
        return;
    risk_fmt_price(o->limit_price, a, sizeof a);
    risk_fmt_price(touch, b, sizeof b);
    im_risk_reject(r, "RISK_PRICE_FAR_FROM_MARKET",
                   "%s limit %s is %.2f%% %s the %s %s; a resting limit may be at most %.2f%% "
                   "from it. Check the price for a typo.",
                   buy ? "Buy" : "Sell", a, bps / 100.0, buy ? "below" : "above",
                   buy ? "bid" : "ask", b, l->passive_max_bps / 100.0);
}

/* A marketable order in a wide market fills far from fair value:
 * (ask - bid) / mid must not exceed max_spread_bps. */
static void risk_spread(im_risk_result *r, const im_limits *l, const im_order *o,
                        const im_quote *q, const char *sym) {
    char a[48], b[48];
    double bps;

    if (!risk_marketable(o, q))
        return;
    bps = (q->ask - q->bid) / ((q->ask + q->bid) / 2.0) * 10000.0;
    if (!risk_bps_over(bps, l->max_spread_bps))
        return;
    risk_fmt_price(q->bid, a, sizeof a);
    risk_fmt_price(q->ask, b, sizeof b);
    im_risk_reject(r, "RISK_WIDE_SPREAD",
                   "The spread of %s is %.2f%% of the mid (bid %s, ask %s); an order that "
                   "trades on arrival needs a spread of at most %.2f%%.",
                   sym, bps / 100.0, a, b, l->max_spread_bps / 100.0);
}

static const char *risk_account_kind(const im_account *a) {
    if (strncmp(a->account_type, "CASH", sizeof a->account_type) == 0)
        return "cash account";
    if (strncmp(a->account_type, "MARGIN", sizeof a->account_type) == 0)
        return "margin account";
    return "account";
}

/* The checks that size the order against the account. A missing or
 * non-finite snapshot is one reason (fail closed), not one per check. An
 * exposure-reducing order skips the sizing checks. */
static void risk_account(im_risk_result *r, const im_limits *l, const im_risk_input *in,
                         int reducing, const char *sym) {
    const im_account *a = in->account;
    char m1[64], m2[64], m3[64], m4[64];
    double nlv, px = r->pricing_price, notional = r->notional;

    if (a == NULL) {
        im_risk_reject(r, "RISK_NO_ACCOUNT",
                       "No account snapshot could be read; orders need the account's buying "
                       "power and net liquidation.");
        return;
    }
    if (!isfinite(a->net_liquidation) || !isfinite(a->cash) || !isfinite(a->buying_power) ||
        !isfinite(in->gross_position_value) || in->gross_position_value < 0) {
        im_risk_fmt_money(a->net_liquidation, m1, sizeof m1);
        im_risk_fmt_money(a->cash, m2, sizeof m2);
        im_risk_fmt_money(a->buying_power, m3, sizeof m3);
        im_risk_fmt_money(in->gross_position_value, m4, sizeof m4);
        im_risk_reject(r, "RISK_NO_ACCOUNT",
                       "Account figures are not usable (net liquidation %s, cash %s, buying "
                       "power %s, gross positions %s).",
                       m1, m2, m3, m4);
        return;
    }
    if (reducing || !(px > 0))
        return;
    nlv = a->net_liquidation;

    /* Buying power. For a cash account the broker's figure already nets
     * the working buys, so this is the cash-cannot-overspend rule. */
    if (in->order->side == IM_SIDE_BUY) {
        double bp = a->buying_power;
        double avail = bp > 0 ? bp * (1.0 - l->cash_buffer_pct / 100.0) : bp;
        if (risk_cents(notional) > risk_cents(avail)) {
            im_risk_fmt_money(notional, m1, sizeof m1);
            im_risk_fmt_money(bp, m2, sizeof m2);
            im_risk_fmt_money(avail, m3, sizeof m3);
            if (l->cash_buffer_pct > 0)
                im_risk_reject(r, "RISK_BUYING_POWER",
                               "Order needs %s but buying power is %s (%s; %g%% kept free "
                               "leaves %s).",
                               m1, m2, risk_account_kind(a), l->cash_buffer_pct, m3);
            else
                im_risk_reject(r, "RISK_BUYING_POWER",
                               "Order needs %s but buying power is %s (%s; 0%% kept free).", m1,
                               m2, risk_account_kind(a));
        }
    }

    /* The percentage checks cannot size anything against a net
     * liquidation that is zero or negative (and must not divide by it). */
    if (risk_cents(nlv) <= 0) {
        im_risk_fmt_money(nlv, m1, sizeof m1);
        im_risk_reject(r, "RISK_CONCENTRATION",
                       "Net liquidation is %s, so no position can be sized against it; only "
                       "orders that reduce a position are allowed.",
                       m1);
        im_risk_reject(r, "RISK_GROSS_EXPOSURE",
                       "Net liquidation is %s, so gross exposure cannot be sized against it; "
                       "only orders that reduce a position are allowed.",
                       m1);
        return;
    }

    {
        double pos_value = fabs(r->projected_position) * px;
        double cap = nlv * l->max_position_pct_nlv / 100.0;
        if (risk_cents(pos_value) > risk_cents(cap)) {
            im_risk_fmt_money(pos_value, m1, sizeof m1);
            im_risk_fmt_money(nlv, m2, sizeof m2);
            im_risk_fmt_money(cap, m3, sizeof m3);
            im_risk_reject(r, "RISK_CONCENTRATION",
                           "Resulting position in %s of %s would be %.2f%% of net liquidation "
                           "%s; the limit is %g%% (%s).",
                           sym, m1, pos_value / nlv * 100.0, m2, l->max_position_pct_nlv, m3);
        }
    }
    {
        double gross = in->gross_position_value + notional;
        double cap = nlv * l->max_gross_pct_nlv / 100.0;
        if (risk_cents(gross) > risk_cents(cap)) {
            char m5[64];
            im_risk_fmt_money(gross, m1, sizeof m1);
            im_risk_fmt_money(in->gross_position_value, m2, sizeof m2);
            im_risk_fmt_money(notional, m3, sizeof m3);
            im_risk_fmt_money(nlv, m4, sizeof m4);
            im_risk_fmt_money(cap, m5, sizeof m5);
            im_risk_reject(r, "RISK_GROSS_EXPOSURE",
                           "Gross exposure would be %s (positions %s + this order %s), %.2f%% "
                           "of net liquidation %s; the limit is %g%% (%s).",
                           m1, m2, m3, gross / nlv * 100.0, m4, l->max_gross_pct_nlv, m5);
        }
    }
}

/* Today's totals: the notional turnover cap (every order) and the daily
 * loss limit (orders that add exposure; an unknown P&L counts as a
 * breach while the limit is on). */
static void risk_daily(im_risk_result *r, const im_limits *l, const im_risk_input *in,
                       int reducing) {
    char a[64], b[64], c[64], d[64];

    if (r->pricing_price > 0) {
        double total = in->notional_today + r->notional;
        if (risk_cents(total) > risk_cents(l->max_daily_notional)) {
            im_risk_fmt_money(total, a, sizeof a);
            im_risk_fmt_money(in->notional_today, b, sizeof b);
            im_risk_fmt_money(r->notional, c, sizeof c);
            im_risk_fmt_money(l->max_daily_notional, d, sizeof d);
            im_risk_reject(r, "RISK_DAILY_NOTIONAL_LIMIT",
                           "Daily notional would reach %s (%s submitted today + this order "
                           "%s); the daily cap is %s.",
                           a, b, c, d);
        }
    }

    if (!(l->max_daily_loss > 0) || reducing)
        return;
    im_risk_fmt_money(l->max_daily_loss, b, sizeof b);
    if (!isfinite(in->pnl_today)) {
        im_risk_reject(r, "RISK_DAILY_LOSS",
                       "Today's P&L is unknown, so the daily loss limit of %s cannot be "
                       "checked; only orders that reduce a position are allowed.",
                       b);
    } else if (risk_cents(in->pnl_today) <= -risk_cents(l->max_daily_loss)) {
        im_risk_fmt_money(in->pnl_today, a, sizeof a);
        im_risk_reject(r, "RISK_DAILY_LOSS",
                       "Daily loss limit reached: P&L today is %s and the limit is %s; only "
                       "orders that reduce a position are allowed until the next trading day.",
                       a, b);
    }
}

/* Order flow: working orders, the submit rate (at place: a preview submits
 * nothing) and identical orders in quick succession. */
static void risk_flow(im_risk_result *r, const im_limits *l, const im_risk_input *in,
                      const char *sym) {
    const im_order *o = in->order;

    if (l->max_open_orders > 0 && in->open_orders_total >= l->max_open_orders)
        im_risk_reject(r, "RISK_OPEN_ORDERS",
                       "%d orders are already working; the limit is %d open orders.",
                       in->open_orders_total, l->max_open_orders);
    if (l->max_open_orders_per_symbol > 0 &&
        in->open_orders_symbol >= l->max_open_orders_per_symbol)
        im_risk_reject(r, "RISK_OPEN_ORDERS",
                       "%d orders are already working in %s; the limit is %d per symbol.",
                       in->open_orders_symbol, sym, l->max_open_orders_per_symbol);

    if (in->stage == IM_RISK_PLACE) {
        if (l->max_orders_per_min > 0 && in->orders_last_minute >= l->max_orders_per_min)
            im_risk_reject(r, "RISK_RATE_LIMIT",
                           "%d orders were submitted in the last minute; the limit is %d per "
                           "minute.",
                           in->orders_last_minute, l->max_orders_per_min);
        if (l->max_orders_per_hour > 0 && in->orders_last_hour >= l->max_orders_per_hour)
            im_risk_reject(r, "RISK_RATE_LIMIT",
                           "%d orders were submitted in the last hour; the limit is %d per "
                           "hour.",
                           in->orders_last_hour, l->max_orders_per_hour);
    }

    if (l->dup_window_s > 0 && in->same_order_age >= 0 && in->same_order_age < l->dup_window_s) {
        char q[48];
        risk_fmt_qty(o->quantity, q, sizeof q);
        im_risk_reject(r, "RISK_DUPLICATE",
                       "An identical order (%s %s %s %s) was submitted %g s ago; identical "
                       "orders within %g s are refused as duplicates.",
                       im_side_str(o->side), q, sym, im_order_type_str(o->type),
                       in->same_order_age, l->dup_window_s);
    }
}

static int risk_nonneg(double v) { return isfinite(v) && v >= 0; }

/* The limits are operator-validated at start-up (config.c), but a cap that
 * is NaN would pass every order, so the engine refuses to decide on one. */
static int risk_limits_ok(const im_limits *l) {
    return isfinite(l->max_order_qty) && l->max_order_qty > 0 &&
           isfinite(l->max_order_notional) && l->max_order_notional > 0 &&
           isfinite(l->max_position_notional) && l->max_position_notional > 0 &&
           isfinite(l->mkt_protect_bps) && l->mkt_protect_bps >= 0 &&
           l->mkt_protect_bps < 10000 && isfinite(l->max_drift_bps) &&
           l->max_drift_bps >= 0 && isfinite(l->max_quote_age_s) && l->max_quote_age_s >= 0 &&
           l->max_daily_orders >= 0 && l->nwhitelist <= IM_WHITELIST_MAX &&
           risk_nonneg(l->cash_buffer_pct) && l->cash_buffer_pct <= 100 &&
           risk_nonneg(l->collar_bps) && risk_nonneg(l->passive_max_bps) &&
           risk_nonneg(l->min_price) && risk_nonneg(l->max_spread_bps) &&
           risk_nonneg(l->max_position_pct_nlv) && risk_nonneg(l->max_gross_pct_nlv) &&
           l->max_open_orders >= 0 && l->max_open_orders_per_symbol >= 0 &&
           l->max_orders_per_min >= 0 && l->max_orders_per_hour >= 0 &&
           risk_nonneg(l->dup_window_s) && risk_nonneg(l->max_daily_notional) &&
           risk_nonneg(l->max_daily_loss) && l->max_consecutive_rejects >= 0;
}

int im_risk_check(const im_limits *l, const im_risk_input *in, im_risk_result *out) {
    const im_order *o;
    const char *sym;
    size_t insane;
    int usable, reducing;

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
    /* So is the reject breaker, which explains why the session halted. */
    risk_breaker(out, l, in);

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

    /* Computed on the order alone (working orders aside), so that an exit
     * stays an exit whatever else is working. */
    reducing = fabs(in->position_qty + (o->side == IM_SIDE_BUY ? o->quantity : -o->quantity)) <
               fabs(in->position_qty);

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
    if (!reducing)
        risk_floor(out, l, o, usable ? in->quote : NULL);
    if (usable) {
        risk_collar(out, l, o, in->quote);
        risk_far(out, l, o, in->quote);
        risk_spread(out, l, o, in->quote, sym);
    }
    risk_caps(out, l, in);
    risk_short(out, l, in, sym);
    risk_account(out, l, in, reducing, sym);

    if (in->orders_today >= l->max_daily_orders)
        im_risk_reject(out, "RISK_DAILY_ORDER_LIMIT",
                       "Daily order limit reached: %d of %d orders submitted today.",
                       in->orders_today, l->max_daily_orders);
    risk_daily(out, l, in, reducing);
    risk_flow(out, l, in, sym);

    risk_drift(out, l, in, sym);

    out->approved = out->nreasons == 0;
    return 0;
}
