/* sim.h: the in-process market simulator, an implementation of broker.h.
 * Deterministic from a seed and the injected clock: a universe of liquid US
 * stocks whose prices follow a seeded random walk in one-second steps of
 * simulated time; market orders fill at the touch with slippage; limit
 * orders rest until crossed; stops trigger; resting orders larger than the
 * touch size may fill in parts; a cash account cannot overspend; fixed
 * per-share commissions. Uses libuv for deferred completions only. */
#ifndef IM_SIM_H
#define IM_SIM_H

#include <uv.h>

#include "broker.h"
#include "clock.h"

typedef struct im_sim_opts {
    unsigned long long seed;   /* IBKR_SIM_SEED */
    double starting_cash;      /* IBKR_SIM_CASH, default 100000 */
    const char *account_id;    /* default "DU0000001" (paper-like) */
    im_clock *clock;           /* not owned; must outlive the sim */
} im_sim_opts;

typedef struct im_sim im_sim;

/* Creates a simulator on loop. On success stores it in *out (free it with
 * the broker's close op, then run the loop once). Returns 0, IM_EINVAL or
 * IM_ENOMEM. */
int im_sim_new(uv_loop_t *loop, const im_sim_opts *opts, im_sim **out);
/* The same object seen through the broker interface. */
im_broker *im_sim_broker(im_sim *s);

/* Test and REPL hooks (synchronous; they raise broker events for any fills
 * they cause, from a later loop iteration like every other completion). */
/* Pins symbol's last/mid at px (bid/ask keep their spread); returns 0 or
 * IM_ESYMBOL / IM_EINVAL. The walk continues from there. */
int im_sim_set_price(im_sim *s, const char *symbol, double px);
/* Brings prices and resting orders up to the clock's current time. */
void im_sim_sync(im_sim *s);
/* Fills a working order completely at the current touch; 0 or IM_EORDER. */
int im_sim_fill(im_sim *s, const char *order_id);
/* Synchronous quote (after syncing to the clock): 0 or IM_ESYMBOL. */
int im_sim_quote_now(im_sim *s, const char *symbol, im_quote *out);
/* Number of symbols and the i-th symbol name (for listings and tests). */
size_t im_sim_symbol_count(const im_sim *s);
const char *im_sim_symbol_at(const im_sim *s, size_t i);

#endif
