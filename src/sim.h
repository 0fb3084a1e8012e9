/* sim.h: the in-process market simulator, an implementation of broker.h.
 * Deterministic from a seed and the injected clock: a universe of liquid US
 * stocks whose prices follow a seeded random walk in one-second steps of
 * simulated time; market orders fill at the touch with slippage; limit
 * orders rest until crossed; stops trigger; resting orders larger than the
 * touch size may fill in parts; a cash account cannot overspend; fixed
 * per-share commissions. Uses libuv for deferred completions only. With a
 * state directory the account (cash, positions, working orders, today's
 * executions, prices) persists there across restarts (sim.c, "the saved
 * account"); uses cJSON for that file. */
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
    const char *state_dir;     /* IBKR_STATE_DIR: where the account persists; NULL = in memory */
    int reset;                 /* IBKR_SIM_RESET: ignore a saved account and start afresh */
} im_sim_opts;

typedef struct im_sim im_sim;

/* Creates a simulator on loop. On success stores it in *out (free it with
 * the broker's close op, then run the loop once). Returns 0, IM_EINVAL,
 * IM_ENOMEM, or, with a state_dir whose saved account cannot be used,
 * IM_EIO / IM_ETOOBIG / IM_EPARSE after logging a sentence that names the
 * file and the way out (fix it, or IBKR_SIM_RESET=true).
 *
 * With opts->state_dir the account persists in state_dir/sim-account.json
 * (0600, replaced atomically after every account change and at close) and
 * a restart continues it, unless opts->reset. Only the first process to
 * lock state_dir/sim-account.lock owns it; any other runs in memory only,
 * with a warning. A directory that cannot be used also leaves the sim in
 * memory with a warning (the journal halts trading for it). */
int im_sim_new(uv_loop_t *loop, const im_sim_opts *opts, im_sim **out);
/* im_sim_new that also hands the sentence back: err (errlen bytes, may be
 * NULL) gets it for failures the operator can fix, "" otherwise; nothing
 * is logged for them. */
int im_sim_open(uv_loop_t *loop, const im_sim_opts *opts, im_sim **out, char *err,
                size_t errlen);
/* The same object seen through the broker interface. */
im_broker *im_sim_broker(im_sim *s);

/* The saved account. im_sim_persistent: 1 when this process owns and
 * writes state_dir's account file, 0 when it runs in memory only (no
 * state_dir, unusable directory, or another process owns it), so
 * get_status can say so. im_sim_state_path: that file while persistent,
 * else NULL. im_sim_persist_error: why the last save failed (it is retried
 * on the next change), or NULL. im_sim_save: writes the account now;
 * returns 0, IM_ESTATE when not persistent, IM_EIO or IM_ENOMEM. Strings
 * belong to the sim. */
int im_sim_persistent(const im_sim *s);
const char *im_sim_state_path(const im_sim *s);
const char *im_sim_persist_error(const im_sim *s);
int im_sim_save(im_sim *s);

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
