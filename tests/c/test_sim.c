/* test_sim.c: the market simulator (sim.c) through broker.h and the sim.h
 * hooks, under fixed seeds and a frozen clock: determinism, deferred
 * exactly-once callbacks, the fill model, cash-account rules, P&L,
 * cancellation, bounds, an orderly close, and the account saved in a state
 * directory (round trip, restart, reset, corrupt files, the lock). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "broker.h"
#include "clock.h"
#include "error.h"
#include "sim.h"
#include "test.h"

#define T0 IM_CLOCK_DEFAULT_SIM_START

/* ---- fixture ------------------------------------------------------------ */

#define MAX_EVENTS 256

typedef struct recorded_event {
    im_broker_event_kind kind;
    im_order_info order;
    im_execution exec;
    int has_exec;
} recorded_event;

typedef struct fixture {
    uv_loop_t loop;
    im_clock clock;
    im_sim *sim;
    im_broker *b;
    int nevents;          /* all events seen */
    int nfills;           /* IM_BEV_FILL events seen */
    recorded_event ev[MAX_EVENTS]; /* the first MAX_EVENTS */
} fixture;

static void on_event(void *ud, const im_broker_event *e) {
    fixture *f = ud;
    ASSERT(e != NULL && e->order != NULL);
    if (e->kind == IM_BEV_FILL) {
        ASSERT(e->exec != NULL);
        f->nfills++;
    }
    if (f->nevents < MAX_EVENTS) {
        recorded_event *r = &f->ev[f->nevents];
        r->kind = e->kind;
        r->order = *e->order;
        r->has_exec = e->exec != NULL;
        if (e->exec != NULL)
            r->exec = *e->exec;
    }
    f->nevents++;
}

static fixture *fx_open(unsigned long long seed, double cash) {
    fixture *f = calloc(1, sizeof *f);
    im_sim_opts o;
    ASSERT(f != NULL);
    ASSERT_EQ(uv_loop_init(&f->loop), 0);
    im_clock_init_frozen(&f->clock, T0);
    memset(&o, 0, sizeof o);
    o.seed = seed;
    o.starting_cash = cash;
    o.clock = &f->clock;
    ASSERT_EQ(im_sim_new(&f->loop, &o, &f->sim), 0);
    f->b = im_sim_broker(f->sim);
    ASSERT(f->b != NULL);
    f->b->on_event = on_event;
    f->b->event_ud = f;
    return f;
}

/* Turns the loop until nothing keeps it alive: once the queue is drained
 * the sim must leave only its unref'ed timer, so a bounded number of turns
 * suffices and a stuck handle fails fast instead of hanging. */
static void fx_run(fixture *f) {
    int turns = 0;
    while (uv_run(&f->loop, UV_RUN_NOWAIT) != 0 && turns < 10000)
        turns++;
    ASSERT(turns < 10000);
    ASSERT_EQ(uv_loop_alive(&f->loop), 0);
}

/* Closes the broker, lets the close callbacks run, and checks the loop has
 * nothing left (every handle closed). */
static void fx_close(fixture *f) {
    f->b->ops->close(f->b);
    fx_run(f);
    ASSERT_EQ(uv_loop_close(&f->loop), 0);
    free(f);
}

static void fx_advance(fixture *f, double secs) {
    im_clock_advance(&f->clock, secs);
    im_sim_sync(f->sim);
}

static im_quote fx_quote(fixture *f, const char *sym) {
    im_quote q;
    ASSERT_EQ(im_sim_quote_now(f->sim, sym, &q), 0);
    return q;
}

static int count_events(const fixture *f, im_broker_event_kind kind, const char *order_id) {
    int n = 0;
    for (int i = 0; i < f->nevents && i < MAX_EVENTS; i++)
        if (f->ev[i].kind == kind && strcmp(f->ev[i].order.order_id, order_id) == 0)
            n++;
    return n;
}

static const recorded_event *last_event(const fixture *f, im_broker_event_kind kind,
                                        const char *order_id) {
    const recorded_event *found = NULL;
    for (int i = 0; i < f->nevents && i < MAX_EVENTS; i++)
        if (f->ev[i].kind == kind && strcmp(f->ev[i].order.order_id, order_id) == 0)
            found = &f->ev[i];
    return found;
}

/* ---- callback recorders ------------------------------------------------- */

typedef struct order_res {
    int calls, status, has_info;
    char msg[768];
    im_order_info info;
} order_res;

static void order_cb(void *ud, int status, const char *msg, const im_order_info *o) {
    order_res *r = ud;
    r->calls++;
    r->status = status;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
    r->has_info = o != NULL;
    if (o != NULL)
        r->info = *o;
}

typedef struct quote_res {
    int calls, status;
    char msg[768];
    im_quote q;
    int has_q;
} quote_res;

static void quote_cb(void *ud, int status, const char *msg, const im_quote *q) {
    quote_res *r = ud;
    r->calls++;
    r->status = status;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
    r->has_q = q != NULL;
    if (q != NULL)
        r->q = *q;
}

typedef struct account_res {
    int calls, status;
    im_account a;
} account_res;

static void account_cb(void *ud, int status, const char *msg, const im_account *a) {
    account_res *r = ud;
    r->calls++;
    r->status = status;
    if (a != NULL)
        r->a = *a;
}

#define MAX_LIST 64

typedef struct positions_res {
    int calls, status;
    size_t n;
    im_position p[MAX_LIST];
} positions_res;

static void positions_cb(void *ud, int status, const char *msg, const im_position *p, size_t n) {
    positions_res *r = ud;
    r->calls++;
    r->status = status;
    r->n = n;
    for (size_t i = 0; i < n && i < MAX_LIST; i++)
        r->p[i] = p[i];
}

typedef struct orders_res {
    int calls, status;
    size_t n;
    im_order_info o[MAX_LIST];
} orders_res;

static void orders_cb(void *ud, int status, const char *msg, const im_order_info *o, size_t n) {
    orders_res *r = ud;
    r->calls++;
    r->status = status;
    r->n = n;
    for (size_t i = 0; i < n && i < MAX_LIST; i++)
        r->o[i] = o[i];
}

typedef struct execs_res {
    int calls, status;
    size_t n;
    im_execution e[MAX_LIST];
    im_execution first, last;
    int ordered; /* times never go backwards */
} execs_res;

static void execs_cb(void *ud, int status, const char *msg, const im_execution *e, size_t n) {
    execs_res *r = ud;
    r->calls++;
    r->status = status;
    r->n = n;
    r->ordered = 1;
    for (size_t i = 0; i < n; i++) {
        if (i < MAX_LIST)
            r->e[i] = e[i];
        if (i > 0 && e[i].time < e[i - 1].time)
            r->ordered = 0;
    }
    if (n > 0) {
        r->first = e[0];
        r->last = e[n - 1];
    }
}

/* ---- operation helpers: start, check nothing ran yet, run, check once -- */

static im_order mk(const char *sym, im_side side, double qty, im_order_type type, double lmt,
                   double stp, im_tif tif) {
    im_order o;
    memset(&o, 0, sizeof o);
    snprintf(o.symbol, sizeof o.symbol, "%s", sym);
    o.side = side;
    o.quantity = qty;
    o.type = type;
    o.limit_price = lmt;
    o.stop_price = stp;
    o.tif = tif;
    snprintf(o.order_ref, sizeof o.order_ref, "ref-%s-%.0f", sym, qty);
    return o;
}

static order_res place(fixture *f, im_order o) {
    order_res r;
    memset(&r, 0, sizeof r);
    ASSERT_EQ(f->b->ops->place(f->b, &o, order_cb, &r), 0);
    ASSERT_EQ(r.calls, 0);
    fx_run(f);
    ASSERT_EQ(r.calls, 1);
    return r;
}

static order_res cancel(fixture *f, const char *id) {
    order_res r;
    memset(&r, 0, sizeof r);
    ASSERT_EQ(f->b->ops->cancel(f->b, id, order_cb, &r), 0);
    ASSERT_EQ(r.calls, 0);
    fx_run(f);
    ASSERT_EQ(r.calls, 1);
    return r;
}

static im_account account(fixture *f) {
    account_res r;
    memset(&r, 0, sizeof r);
    ASSERT_EQ(f->b->ops->account(f->b, account_cb, &r), 0);
    ASSERT_EQ(r.calls, 0);
    fx_run(f);
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(r.status, 0);
    return r.a;
}

static positions_res *positions(fixture *f) {
    static positions_res r;
    memset(&r, 0, sizeof r);
    ASSERT_EQ(f->b->ops->positions(f->b, positions_cb, &r), 0);
    fx_run(f);
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(r.status, 0);
    return &r;
}

static orders_res *open_orders(fixture *f) {
    static orders_res r;
    memset(&r, 0, sizeof r);
    ASSERT_EQ(f->b->ops->open_orders(f->b, orders_cb, &r), 0);
    fx_run(f);
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(r.status, 0);
    return &r;
}

static execs_res *executions(fixture *f) {
    static execs_res r;
    memset(&r, 0, sizeof r);
    ASSERT_EQ(f->b->ops->executions(f->b, execs_cb, &r), 0);
    fx_run(f);
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(r.status, 0);
    return &r;
}

static double commission(double shares, double px) {
    double c = shares * 0.005;
    if (c < 1.0)
        c = 1.0;
    if (c > 0.01 * shares * px)
        c = 0.01 * shares * px;
    return c;
}

/* ---- universe and quotes ------------------------------------------------ */

TEST(sim_universe_quotes_sane) {
    static const char *required[] = {"NVDA", "TSLA", "AAPL", "MSFT", "AMZN", "GOOGL", "META",
                                     "AVGO", "JPM",  "V",    "UNH",  "XOM",  "JNJ",   "WMT",
                                     "PG",   "MA",   "HD",   "COST", "NFLX", "AMD",   "INTC",
                                     "KO",   "PEP",  "BAC",  "DIS",  "SPY",  "QQQ"};
    fixture *f = fx_open(42, 0);
    size_t n = im_sim_symbol_count(f->sim);
    im_quote q;

    ASSERT(n >= 24);
    ASSERT(im_sim_symbol_at(f->sim, n) == NULL);
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        int found = 0;
        for (size_t j = 0; j < n; j++)
            found |= strcmp(im_sim_symbol_at(f->sim, j), required[i]) == 0;
        ASSERT(found);
    }
    for (size_t j = 0; j < n; j++) {
        const char *sym = im_sim_symbol_at(f->sim, j);
        q = fx_quote(f, sym);
        ASSERT_STR_EQ(q.symbol, sym);
        ASSERT(q.bid > 0 && q.bid < q.ask);
        ASSERT(q.ask - q.bid <= 0.25 + 1e-9);
        ASSERT(q.bid > 10 && q.ask < 2000);
        /* Prices on whole cents. */
        ASSERT_NEAR(q.bid * 100, floor(q.bid * 100 + 0.5), 1e-6);
        ASSERT_NEAR(q.ask * 100, floor(q.ask * 100 + 0.5), 1e-6);
        ASSERT(q.bid_size >= 100 && q.bid_size <= 1000);
        ASSERT(q.ask_size >= 100 && q.ask_size <= 1000);
        ASSERT_NEAR(q.time, T0, 1e-9);
        ASSERT_EQ(q.delayed, 0);
        ASSERT(q.last >= q.bid && q.last <= q.ask);
    }
    q = fx_quote(f, "NVDA");
    ASSERT_NEAR((q.bid + q.ask) / 2, 167.95, 0.011);
    q = fx_quote(f, "TSLA");
    ASSERT_NEAR((q.bid + q.ask) / 2, 249.37, 0.011);
    q = fx_quote(f, "AAPL");
    ASSERT(q.bid > 195 && q.ask < 210);
    q = fx_quote(f, "MSFT");
    ASSERT(q.bid > 460 && q.ask < 485);
    /* Exact, case-sensitive matches only. */
    ASSERT_EQ(im_sim_quote_now(f->sim, "aapl", &q), IM_ESYMBOL);
    ASSERT_EQ(im_sim_quote_now(f->sim, "XYZ", &q), IM_ESYMBOL);
    fx_close(f);
}

TEST(sim_deterministic_same_seed) {
    fixture *a = fx_open(7, 0), *b = fx_open(7, 0);
    size_t n = im_sim_symbol_count(a->sim);
    int moved = 0;
    im_quote first = fx_quote(a, "AAPL");

    for (int step = 0; step < 300; step++) {
        double dt = 1 + step % 3; /* 1, 2 or 3 seconds */
        im_clock_advance(&a->clock, dt);
        im_clock_advance(&b->clock, dt);
        for (size_t i = 0; i < n; i++) {
            const char *sym = im_sim_symbol_at(a->sim, i);
            im_quote qa = fx_quote(a, sym), qb = fx_quote(b, sym);
            ASSERT_EQ(llround(qa.bid * 100), llround(qb.bid * 100));
            ASSERT_EQ(llround(qa.ask * 100), llround(qb.ask * 100));
            ASSERT_EQ((long long)qa.bid_size, (long long)qb.bid_size);
            ASSERT_EQ((long long)qa.ask_size, (long long)qb.ask_size);
            ASSERT_NEAR(qa.time, qb.time, 1e-9);
        }
    }
    moved = llround(fx_quote(a, "AAPL").bid * 100) != llround(first.bid * 100);
    ASSERT(moved);
    ASSERT_NEAR(fx_quote(a, "AAPL").time, T0 + 600, 1e-9);
    fx_close(a);
    fx_close(b);
}

TEST(sim_different_seeds_differ) {
    fixture *a = fx_open(1, 0), *b = fx_open(2, 0);
    size_t n = im_sim_symbol_count(a->sim), differ = 0;
    fx_advance(a, 30);
    fx_advance(b, 30);
    for (size_t i = 0; i < n; i++) {
        const char *sym = im_sim_symbol_at(a->sim, i);
        if (llround(fx_quote(a, sym).bid * 100) != llround(fx_quote(b, sym).bid * 100))
            differ++;
    }
    ASSERT(differ >= n / 2);
    fx_close(a);
    fx_close(b);
}

/* One symbol's history does not depend on what else was queried, pinned or
 * traded, nor on how the clock was stepped. */
TEST(sim_symbol_history_independent) {
    fixture *a = fx_open(99, 0), *b = fx_open(99, 0);
    im_quote qa, qb;

    fx_advance(a, 120);
    for (int i = 0; i < 120; i++) {
        im_clock_advance(&b->clock, 1);
        (void)fx_quote(b, "NVDA");
        (void)fx_quote(b, "SPY");
    }
    ASSERT_EQ(im_sim_set_price(b->sim, "TSLA", 300), 0);
    (void)place(b, mk("MSFT", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    qa = fx_quote(a, "AAPL");
    qb = fx_quote(b, "AAPL");
    ASSERT_EQ(llround(qa.bid * 100), llround(qb.bid * 100));
    ASSERT_EQ(llround(qa.ask * 100), llround(qb.ask * 100));
    ASSERT_EQ((long long)qa.ask_size, (long long)qb.ask_size);
    fx_close(a);
    fx_close(b);
}

/* Each symbol draws from its own stream: second-by-second moves of two
 * high-priced names agree in direction about half the time, not always. */
TEST(sim_symbols_move_independently) {
    fixture *f = fx_open(21, 0);
    double pa = (fx_quote(f, "NFLX").bid), pb = (fx_quote(f, "META").bid);
    int both = 0, agree = 0;
    for (int i = 0; i < 400; i++) {
        double a, b;
        fx_advance(f, 1);
        a = fx_quote(f, "NFLX").bid;
        b = fx_quote(f, "META").bid;
        if (a != pa && b != pb) {
            both++;
            agree += (a > pa) == (b > pb);
        }
        pa = a;
        pb = b;
    }
    ASSERT(both > 200);
    ASSERT(agree < both * 0.7);
    ASSERT(agree > both * 0.3);
    fx_close(f);
}

TEST(sim_walk_step_size_and_huge_jump) {
    fixture *f = fx_open(5, 0);
    im_quote q0 = fx_quote(f, "SPY"), q;
    double worst = 0;
    uint64_t t;

    for (int i = 0; i < 600; i++) {
        double prev = (fx_quote(f, "SPY").bid + fx_quote(f, "SPY").ask) / 2, mid;
        im_clock_advance(&f->clock, 1);
        q = fx_quote(f, "SPY");
        mid = (q.bid + q.ask) / 2;
        if (fabs(log(mid / prev)) > worst)
            worst = fabs(log(mid / prev));
        ASSERT_NEAR(q.ask - q.bid, q0.ask - q0.bid, 1e-9); /* spread kept */
    }
    /* sigma ~1e-4 per second: a one-second move above 0.2% would be a
     * 40-sigma event. */
    ASSERT(worst < 0.002);
    ASSERT(worst > 0);
    /* A year in one jump: bounded work (coarse steps; ~0.3 s under ASan,
     * against minutes stepping every second), sane prices. */
    t = uv_hrtime();
    fx_advance(f, 365.0 * 86400);
    ASSERT((uv_hrtime() - t) / 1e9 < 5.0);
    for (size_t i = 0; i < im_sim_symbol_count(f->sim); i++) {
        q = fx_quote(f, im_sim_symbol_at(f->sim, i));
        ASSERT(isfinite(q.bid) && isfinite(q.ask) && q.bid > 0 && q.bid < q.ask);
    }
    ASSERT_NEAR(q.time, T0 + 600 + 365.0 * 86400, 1e-6);
    fx_close(f);
}

/* ---- the async contract ------------------------------------------------- */

TEST(sim_callbacks_deferred_exactly_once) {
    fixture *f = fx_open(42, 0);
    quote_res q;
    account_res a;
    positions_res p;
    orders_res o;
    execs_res e;
    order_res pl;
    im_order ord = mk("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0, IM_TIF_DAY);

    memset(&q, 0, sizeof q);
    memset(&a, 0, sizeof a);
    memset(&p, 0, sizeof p);
    memset(&o, 0, sizeof o);
    memset(&e, 0, sizeof e);
    memset(&pl, 0, sizeof pl);
    ASSERT_EQ(f->b->ops->connected(f->b), 1);
    ASSERT_STR_EQ(f->b->ops->name, "sim");
    ASSERT_EQ(f->b->ops->quote(f->b, "AAPL", quote_cb, &q), 0);
    ASSERT_EQ(f->b->ops->account(f->b, account_cb, &a), 0);
    ASSERT_EQ(f->b->ops->positions(f->b, positions_cb, &p), 0);
    ASSERT_EQ(f->b->ops->open_orders(f->b, orders_cb, &o), 0);
    ASSERT_EQ(f->b->ops->executions(f->b, execs_cb, &e), 0);
    ASSERT_EQ(f->b->ops->place(f->b, &ord, order_cb, &pl), 0);
    /* Nothing runs inside the calls; events wait too. */
    ASSERT_EQ(q.calls + a.calls + p.calls + o.calls + e.calls + pl.calls, 0);
    ASSERT_EQ(f->nevents, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ASSERT_EQ(q.calls, 1);
    ASSERT_EQ(a.calls, 1);
    ASSERT_EQ(p.calls, 1);
    ASSERT_EQ(o.calls, 1);
    ASSERT_EQ(e.calls, 1);
    ASSERT_EQ(pl.calls, 1);
    ASSERT_EQ(q.status, 0);
    ASSERT(q.has_q);
    ASSERT_STR_EQ(q.q.symbol, "AAPL");
    ASSERT_STR_EQ(a.a.account_id, "DU0000001");
    ASSERT_STR_EQ(a.a.account_type, "CASH");
    ASSERT_NEAR(a.a.cash, 100000, 1e-9);
    ASSERT_EQ(p.n, 0);
    ASSERT_EQ(o.n, 0);
    ASSERT_EQ(e.n, 0);
    ASSERT_EQ(pl.info.status, IM_OS_FILLED);
    ASSERT_EQ(f->nevents, 2); /* FILL then ORDER */
    ASSERT_EQ(f->ev[0].kind, IM_BEV_FILL);
    ASSERT_EQ(f->ev[1].kind, IM_BEV_ORDER);
    /* More loop turns deliver nothing again. */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    ASSERT_EQ(q.calls + a.calls + p.calls + o.calls + e.calls + pl.calls, 6);
    ASSERT_EQ(f->nevents, 2);
    fx_close(f);
}

static int nested_calls;
static order_res nested_inner;

static void nested_quote_cb(void *ud, int status, const char *msg, const im_quote *q) {
    fixture *f = ud;
    im_order ord = mk("KO", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY);
    nested_calls++;
    /* An operation started from a callback completes later, not inside. */
    ASSERT_EQ(f->b->ops->place(f->b, &ord, order_cb, &nested_inner), 0);
    ASSERT_EQ(nested_inner.calls, 0);
}

TEST(sim_callback_may_start_operations) {
    fixture *f = fx_open(42, 0);
    memset(&nested_inner, 0, sizeof nested_inner);
    ASSERT_EQ(f->b->ops->quote(f->b, "KO", nested_quote_cb, f), 0);
    fx_run(f);
    ASSERT_EQ(nested_calls, 1);
    ASSERT_EQ(nested_inner.calls, 1);
    ASSERT_EQ(nested_inner.info.status, IM_OS_FILLED);
    fx_close(f);
}

TEST(sim_op_errors_never_call_back) {
    fixture *f = fx_open(42, 0);
    quote_res q;
    order_res r;
    im_order ord = mk("AAPL", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY);
    im_sim *s2 = NULL;
    im_sim_opts bad;

    memset(&q, 0, sizeof q);
    memset(&r, 0, sizeof r);
    ASSERT_EQ(f->b->ops->quote(f->b, NULL, quote_cb, &q), IM_EINVAL);
    ASSERT_EQ(f->b->ops->quote(f->b, "AAPL", NULL, &q), IM_EINVAL);
    ASSERT_EQ(f->b->ops->place(f->b, NULL, order_cb, &r), IM_EINVAL);
    ASSERT_EQ(f->b->ops->place(f->b, &ord, NULL, &r), IM_EINVAL);
    ASSERT_EQ(f->b->ops->cancel(f->b, NULL, order_cb, &r), IM_EINVAL);
    ASSERT_EQ(f->b->ops->account(f->b, NULL, NULL), IM_EINVAL);
    fx_run(f);
    ASSERT_EQ(q.calls + r.calls, 0);

    memset(&bad, 0, sizeof bad);
    ASSERT_EQ(im_sim_new(&f->loop, &bad, &s2), IM_EINVAL); /* no clock */
    bad.clock = &f->clock;
    bad.starting_cash = NAN;
    ASSERT_EQ(im_sim_new(&f->loop, &bad, &s2), IM_EINVAL);
    bad.starting_cash = -5;
    ASSERT_EQ(im_sim_new(&f->loop, &bad, &s2), IM_EINVAL);
    bad.starting_cash = 0;
    bad.account_id = "";
    ASSERT_EQ(im_sim_new(&f->loop, &bad, &s2), IM_EINVAL);
    ASSERT(s2 == NULL);
    fx_close(f);
}

TEST(sim_unknown_symbol_quote) {
    fixture *f = fx_open(42, 0);
    quote_res q;
    memset(&q, 0, sizeof q);
    ASSERT_EQ(f->b->ops->quote(f->b, "XYZ", quote_cb, &q), 0);
    ASSERT_EQ(q.calls, 0);
    fx_run(f);
    ASSERT_EQ(q.calls, 1);
    ASSERT_EQ(q.status, IM_ESYMBOL);
    ASSERT(!q.has_q);
    ASSERT_CONTAINS(q.msg, "Unknown symbol 'XYZ'. The simulator trades: AAPL, MSFT, ");
    for (size_t i = 0; i < im_sim_symbol_count(f->sim); i++)
        ASSERT_CONTAINS(q.msg, im_sim_symbol_at(f->sim, i));
    fx_close(f);
}

/* ---- market orders ------------------------------------------------------ */

TEST(sim_market_buy_fills_at_ask_exact_cash) {
    fixture *f = fx_open(42, 0);
    im_quote q = fx_quote(f, "AAPL");
    order_res r = place(f, mk("AAPL", IM_SIDE_BUY, 100, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    im_account a;
    const recorded_event *fill;

    ASSERT_EQ(r.status, 0);
    ASSERT(r.has_info);
    ASSERT_STR_EQ(r.info.order_id, "1000");
    ASSERT_EQ(r.info.status, IM_OS_FILLED);
    ASSERT_NEAR(r.info.filled, 100, 0);
    ASSERT_NEAR(r.info.remaining, 0, 0);
    ASSERT(q.ask_size >= 100); /* no slippage for one block */
    ASSERT_NEAR(r.info.avg_fill_price, q.ask, 1e-9);
    ASSERT_NEAR(r.info.submitted_at, T0, 1e-9);
    ASSERT_NEAR(r.info.updated_at, T0, 1e-9);
    ASSERT_STR_EQ(r.info.order.order_ref, "ref-AAPL-100");
    ASSERT_STR_EQ(r.info.order.symbol, "AAPL");
    /* 100 shares x $0.005 = $0.50 -> the $1.00 minimum. */
    a = account(f);
    ASSERT_NEAR(a.cash, 100000 - 100 * q.ask - 1.00, 1e-6);
    ASSERT_NEAR(a.commissions, 1.00, 1e-9);

    fill = last_event(f, IM_BEV_FILL, "1000");
    ASSERT(fill != NULL && fill->has_exec);
    ASSERT_STR_EQ(fill->exec.order_id, "1000");
    ASSERT_STR_EQ(fill->exec.symbol, "AAPL");
    ASSERT_EQ(fill->exec.side, IM_SIDE_BUY);
    ASSERT_NEAR(fill->exec.shares, 100, 0);
    ASSERT_NEAR(fill->exec.price, q.ask, 1e-9);
    ASSERT_NEAR(fill->exec.commission, 1.00, 1e-9);
    ASSERT_NEAR(fill->exec.realized_pnl, -1.00, 1e-9);
    ASSERT_STR_EQ(fill->exec.order_ref, "ref-AAPL-100");
    ASSERT_EQ(fill->order.status, IM_OS_FILLED);
    ASSERT_EQ(count_events(f, IM_BEV_ORDER, "1000"), 1);
    fx_close(f);
}

TEST(sim_market_slippage_and_per_share_commission) {
    fixture *f = fx_open(3, 1000000);
    im_quote q = fx_quote(f, "AMD");
    double qty = 2000;
    long long slip = (long long)floor(qty / q.ask_size) - 1;
    double px = (llround(q.ask * 100) + slip) / 100.0;
    order_res r = place(f, mk("AMD", IM_SIDE_BUY, qty, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    im_account a = account(f);

    ASSERT(slip >= 3); /* the touch is at most 500 shares */
    ASSERT_EQ(r.info.status, IM_OS_FILLED);
    ASSERT_NEAR(r.info.avg_fill_price, px, 1e-9);
    /* 2000 x $0.005 = $10.00, above the minimum and under 1%. */
    ASSERT_NEAR(a.commissions, 10.00, 1e-9);
    ASSERT_NEAR(a.cash, 1000000 - qty * px - 10.00, 1e-6);

    /* A sell at the bid with slippage downwards. */
    q = fx_quote(f, "AMD");
    slip = (long long)floor(qty / q.bid_size) - 1;
    px = (llround(q.bid * 100) - slip) / 100.0;
    r = place(f, mk("AMD", IM_SIDE_SELL, qty, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    ASSERT_EQ(r.info.status, IM_OS_FILLED);
    ASSERT_NEAR(r.info.avg_fill_price, px, 1e-9);
    fx_close(f);
}

TEST(sim_commission_cap_one_percent) {
    fixture *f = fx_open(42, 0);
    im_quote q;
    im_account a;
    ASSERT_EQ(im_sim_set_price(f->sim, "INTC", 20.00), 0);
    q = fx_quote(f, "INTC");
    (void)place(f, mk("INTC", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    a = account(f);
    /* 1 share at ~$20: 1% of $20 = $0.20 beats the $1 minimum. */
    ASSERT_NEAR(a.commissions, 0.01 * q.ask, 1e-9);
    ASSERT_NEAR(a.cash, 100000 - q.ask - 0.01 * q.ask, 1e-6);
    fx_close(f);
}

TEST(sim_sell_realizes_pnl) {
    fixture *f = fx_open(42, 0);
    im_quote q1 = fx_quote(f, "MSFT"), q2;
    order_res buy = place(f, mk("MSFT", IM_SIDE_BUY, 50, IM_OT_MKT, 0, 0, IM_TIF_DAY)), sell;
    double c1 = commission(50, q1.ask), c2;
    const recorded_event *fill;
    positions_res *p;
    im_account a;

    ASSERT_EQ(buy.info.status, IM_OS_FILLED);
    p = positions(f);
    ASSERT_EQ(p->n, 1);
    ASSERT_STR_EQ(p->p[0].symbol, "MSFT");
    ASSERT_NEAR(p->p[0].quantity, 50, 0);
    ASSERT_NEAR(p->p[0].avg_cost, q1.ask, 1e-9);

    ASSERT_EQ(im_sim_set_price(f->sim, "MSFT", 480.00), 0);
    q2 = fx_quote(f, "MSFT");
    sell = place(f, mk("MSFT", IM_SIDE_SELL, 50, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    ASSERT_EQ(sell.info.status, IM_OS_FILLED);
    ASSERT_NEAR(sell.info.avg_fill_price, q2.bid, 1e-9);
    c2 = commission(50, q2.bid);
    fill = last_event(f, IM_BEV_FILL, sell.info.order_id);
    ASSERT(fill != NULL);
    ASSERT_NEAR(fill->exec.realized_pnl, (q2.bid - q1.ask) * 50 - c2, 1e-6);
    ASSERT_EQ(fill->exec.side, IM_SIDE_SELL);

    p = positions(f);
    ASSERT_EQ(p->n, 0); /* flat: the position is gone */
    a = account(f);
    ASSERT_NEAR(a.cash, 100000 - 50 * q1.ask - c1 + 50 * q2.bid - c2, 1e-6);
    ASSERT_NEAR(a.realized_pnl, (q2.bid - q1.ask) * 50 - c1 - c2, 1e-6);
    ASSERT_NEAR(a.unrealized_pnl, 0, 1e-9);
    ASSERT_NEAR(a.net_liquidation, a.cash, 1e-9);
    ASSERT_NEAR(a.commissions, c1 + c2, 1e-9);
    fx_close(f);
}

/* ---- limit orders ------------------------------------------------------- */

TEST(sim_limit_rests_then_fills_on_set_price) {
    fixture *f = fx_open(42, 0);
    order_res r = place(f, mk("NVDA", IM_SIDE_BUY, 100, IM_OT_LMT, 160.00, 0, IM_TIF_DAY));
    orders_res *oo;
    const recorded_event *fill;
    im_quote q;
    im_account a;
    int before;

    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(r.info.status, IM_OS_SUBMITTED);
    ASSERT_NEAR(r.info.filled, 0, 0);
    ASSERT_NEAR(r.info.remaining, 100, 0);
    ASSERT_NEAR(r.info.order.limit_price, 160.00, 0);
    ASSERT_EQ(f->nfills, 0);
    oo = open_orders(f);
    ASSERT_EQ(oo->n, 1);
    ASSERT_STR_EQ(oo->o[0].order_id, r.info.order_id);
    /* The reservation shows in buying power. */
    a = account(f);
    ASSERT_NEAR(a.buying_power, 100000 - 100 * 160.00 - 1.00, 1e-6);

    /* Ten seconds of walk will not cross a limit 5% away. */
    fx_advance(f, 10);
    fx_run(f);
    ASSERT_EQ(f->nfills, 0);

    before = f->nevents;
    ASSERT_EQ(im_sim_set_price(f->sim, "NVDA", 150.00), 0);
    ASSERT_EQ(f->nevents, before); /* events are deferred */
    fx_run(f);
    ASSERT_EQ(f->nfills, 1);
    fill = last_event(f, IM_BEV_FILL, r.info.order_id);
    ASSERT(fill != NULL);
    q = fx_quote(f, "NVDA");
    ASSERT_NEAR(fill->exec.price, q.ask, 1e-9); /* the touch, better than the limit */
    ASSERT(fill->exec.price <= 160.00);
    ASSERT_NEAR(fill->exec.shares, 100, 0);
    ASSERT_EQ(fill->order.status, IM_OS_FILLED);
    ASSERT_NEAR(fill->exec.time, T0 + 10, 1e-9);
    ASSERT_EQ(last_event(f, IM_BEV_ORDER, r.info.order_id)->order.status, IM_OS_FILLED);
    oo = open_orders(f);
    ASSERT_EQ(oo->n, 0);
    a = account(f);
    ASSERT_NEAR(a.cash, 100000 - 100 * q.ask - 1.00, 1e-6);
    ASSERT_NEAR(a.buying_power, a.cash, 1e-9);
    fx_close(f);
}

TEST(sim_sell_limit_rests_then_fills) {
    fixture *f = fx_open(42, 0);
    order_res r;
    im_quote q;
    (void)place(f, mk("KO", IM_SIDE_BUY, 100, IM_OT_MKT, 0, 0, IM_TIF_GTC));
    r = place(f, mk("KO", IM_SIDE_SELL, 100, IM_OT_LMT, 75.00, 0, IM_TIF_GTC));
    ASSERT_EQ(r.info.status, IM_OS_SUBMITTED);
    ASSERT_EQ(im_sim_set_price(f->sim, "KO", 74.00), 0); /* bid below the limit */
    fx_run(f);
    ASSERT_EQ(count_events(f, IM_BEV_FILL, r.info.order_id), 0);
    ASSERT_EQ(im_sim_set_price(f->sim, "KO", 76.00), 0);
    q = fx_quote(f, "KO");
    fx_run(f);
    ASSERT_EQ(count_events(f, IM_BEV_FILL, r.info.order_id), 1);
    ASSERT_NEAR(last_event(f, IM_BEV_FILL, r.info.order_id)->exec.price, q.bid, 1e-9);
    ASSERT(q.bid >= 75.00);
    ASSERT_EQ(positions(f)->n, 0);
    fx_close(f);
}

TEST(sim_marketable_limit_gets_price_improvement) {
    fixture *f = fx_open(42, 0);
    im_quote q = fx_quote(f, "GOOGL");
    order_res r = place(f, mk("GOOGL", IM_SIDE_BUY, 50, IM_OT_LMT, 190.00, 0, IM_TIF_DAY));
    ASSERT_EQ(r.info.status, IM_OS_FILLED);
    ASSERT_NEAR(r.info.avg_fill_price, q.ask, 1e-9);
    ASSERT(r.info.avg_fill_price < 190.00);
    fx_close(f);
}

TEST(sim_large_limit_fills_in_parts) {
    fixture *f = fx_open(11, 1000000);
    order_res r = place(f, mk("NVDA", IM_SIDE_BUY, 1000, IM_OT_LMT, 160.00, 0, IM_TIF_DAY));
    double total = 0;
    int partial_seen = 0, steps = 0;
    execs_res *e;

    ASSERT_EQ(r.info.status, IM_OS_SUBMITTED);
    ASSERT_EQ(im_sim_set_price(f->sim, "NVDA", 150.00), 0);
    fx_run(f);
    /* The touch is at most 500 shares, so the first second fills a part. */
    ASSERT_EQ(f->nfills, 1);
    ASSERT_EQ(last_event(f, IM_BEV_ORDER, r.info.order_id)->order.status, IM_OS_PARTIAL);
    while (steps < 20 && last_event(f, IM_BEV_ORDER, r.info.order_id)->order.status !=
                             IM_OS_FILLED) {
        fx_advance(f, 1);
        fx_run(f);
        steps++;
    }
    ASSERT_EQ(last_event(f, IM_BEV_ORDER, r.info.order_id)->order.status, IM_OS_FILLED);
    ASSERT(f->nfills >= 2 && f->nfills <= 10);
    for (int i = 0; i < f->nevents; i++) {
        if (f->ev[i].kind == IM_BEV_FILL) {
            ASSERT(f->ev[i].exec.shares <= 500);
            ASSERT(f->ev[i].exec.price <= 160.00);
            total += f->ev[i].exec.shares;
        } else if (f->ev[i].order.status == IM_OS_PARTIAL) {
            partial_seen = 1;
            ASSERT_NEAR(f->ev[i].order.remaining, 1000 - f->ev[i].order.filled, 0);
        }
    }
    ASSERT(partial_seen);
    ASSERT_NEAR(total, 1000, 0);
    e = executions(f);
    ASSERT_EQ((int)e->n, f->nfills);
    ASSERT(e->ordered);
    ASSERT(strcmp(e->e[0].exec_id, e->e[1].exec_id) != 0);
    ASSERT(e->e[1].time > e->e[0].time); /* parts in different seconds */
    fx_close(f);
}

/* ---- stops -------------------------------------------------------------- */

TEST(sim_stop_triggers_and_fills_like_market) {
    fixture *f = fx_open(42, 0);
    order_res buy_stop, sell_stop;
    im_quote q;

    (void)place(f, mk("JPM", IM_SIDE_BUY, 100, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    sell_stop = place(f, mk("JPM", IM_SIDE_SELL, 100, IM_OT_STP, 0, 250.00, IM_TIF_GTC));
    ASSERT_EQ(sell_stop.info.status, IM_OS_SUBMITTED);
    ASSERT_NEAR(sell_stop.info.order.stop_price, 250.00, 0);
    ASSERT_EQ(im_sim_set_price(f->sim, "JPM", 255.00), 0); /* above the stop */
    fx_run(f);
    ASSERT_EQ(count_events(f, IM_BEV_FILL, sell_stop.info.order_id), 0);
    ASSERT_EQ(im_sim_set_price(f->sim, "JPM", 245.00), 0); /* through it */
    q = fx_quote(f, "JPM");
    fx_run(f);
    ASSERT_EQ(count_events(f, IM_BEV_FILL, sell_stop.info.order_id), 1);
    ASSERT_NEAR(last_event(f, IM_BEV_FILL, sell_stop.info.order_id)->exec.price, q.bid, 1e-9);
    ASSERT_EQ(positions(f)->n, 0);

    buy_stop = place(f, mk("XOM", IM_SIDE_BUY, 100, IM_OT_STP, 0, 115.00, IM_TIF_DAY));
    ASSERT_EQ(buy_stop.info.status, IM_OS_SUBMITTED);
    ASSERT_EQ(im_sim_set_price(f->sim, "XOM", 116.00), 0);
    q = fx_quote(f, "XOM");
    fx_run(f);
    ASSERT_EQ(last_event(f, IM_BEV_ORDER, buy_stop.info.order_id)->order.status, IM_OS_FILLED);
    ASSERT_NEAR(last_event(f, IM_BEV_FILL, buy_stop.info.order_id)->exec.price, q.ask, 1e-9);
    fx_close(f);
}

TEST(sim_stop_limit_triggers_then_waits_for_limit) {
    fixture *f = fx_open(42, 0);
    order_res r;
    im_quote q;
    orders_res *oo;

    (void)place(f, mk("PG", IM_SIDE_BUY, 100, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    r = place(f, mk("PG", IM_SIDE_SELL, 100, IM_OT_STP_LMT, 150.00, 152.00, IM_TIF_GTC));
    ASSERT_EQ(r.info.status, IM_OS_SUBMITTED);
    /* Gap through the stop and below the limit: triggered, not filled. */
    ASSERT_EQ(im_sim_set_price(f->sim, "PG", 145.00), 0);
    fx_run(f);
    ASSERT_EQ(count_events(f, IM_BEV_FILL, r.info.order_id), 0);
    oo = open_orders(f);
    ASSERT_EQ(oo->n, 1);
    ASSERT_CONTAINS(oo->o[0].message, "triggered");
    /* Back above the limit (but under the stop): now it sells. */
    ASSERT_EQ(im_sim_set_price(f->sim, "PG", 151.00), 0);
    q = fx_quote(f, "PG");
    fx_run(f);
    ASSERT_EQ(count_events(f, IM_BEV_FILL, r.info.order_id), 1);
    ASSERT_NEAR(last_event(f, IM_BEV_FILL, r.info.order_id)->exec.price, q.bid, 1e-9);
    ASSERT(q.bid >= 150.00);
    fx_close(f);
}

/* ---- IOC ---------------------------------------------------------------- */

TEST(sim_ioc_partial_fill_cancels_rest) {
    fixture *f = fx_open(42, 1000000);
    im_quote q = fx_quote(f, "BAC");
    order_res r = place(f, mk("BAC", IM_SIDE_BUY, 5000, IM_OT_LMT, 50.00, 0, IM_TIF_IOC));

    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(r.info.status, IM_OS_CANCELLED);
    ASSERT_NEAR(r.info.filled, q.ask_size, 0);
    ASSERT_NEAR(r.info.remaining, 5000 - q.ask_size, 0);
    ASSERT_NEAR(r.info.avg_fill_price, q.ask, 1e-9);
    ASSERT_CONTAINS(r.info.message, "cancelled");
    ASSERT_EQ(open_orders(f)->n, 0);
    ASSERT_EQ(count_events(f, IM_BEV_FILL, r.info.order_id), 1);
    ASSERT_EQ(last_event(f, IM_BEV_ORDER, r.info.order_id)->order.status, IM_OS_CANCELLED);
    /* The cancelled part holds no cash back. */
    ASSERT_NEAR(account(f).buying_power, account(f).cash, 1e-9);
    fx_close(f);
}

TEST(sim_ioc_nothing_marketable) {
    fixture *f = fx_open(42, 0);
    order_res r = place(f, mk("DIS", IM_SIDE_BUY, 10, IM_OT_LMT, 100.00, 0, IM_TIF_IOC));
    ASSERT_EQ(r.info.status, IM_OS_CANCELLED);
    ASSERT_NEAR(r.info.filled, 0, 0);
    ASSERT_CONTAINS(r.info.message, "nothing could be filled");
    ASSERT_EQ(f->nfills, 0);
    ASSERT_EQ(open_orders(f)->n, 0);
    fx_close(f);
}

/* ---- cash account rules ------------------------------------------------- */

TEST(sim_insufficient_cash_rejected_with_figures) {
    fixture *f = fx_open(42, 10000);
    order_res r = place(f, mk("MSFT", IM_SIDE_BUY, 100, IM_OT_LMT, 470.00, 0, IM_TIF_DAY)), r2;

    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(r.info.status, IM_OS_REJECTED);
    ASSERT_STR_EQ(r.info.message,
                  "Insufficient cash: order needs $47,001.00, available $10,000.00.");
    ASSERT_EQ(open_orders(f)->n, 0);
    ASSERT_EQ(last_event(f, IM_BEV_ORDER, r.info.order_id)->order.status, IM_OS_REJECTED);
    ASSERT_NEAR(account(f).cash, 10000, 0);

    /* Working buys hold cash back from later ones. */
    r = place(f, mk("KO", IM_SIDE_BUY, 100, IM_OT_LMT, 60.00, 0, IM_TIF_DAY)); /* $6,001 */
    ASSERT_EQ(r.info.status, IM_OS_SUBMITTED);
    r2 = place(f, mk("PEP", IM_SIDE_BUY, 40, IM_OT_LMT, 110.00, 0, IM_TIF_DAY)); /* $4,401 */
    ASSERT_EQ(r2.info.status, IM_OS_REJECTED);
    ASSERT_STR_EQ(r2.info.message,
                  "Insufficient cash: order needs $4,401.00, available $3,999.00.");
    /* Cancelling releases it. */
    ASSERT_EQ(cancel(f, r.info.order_id).status, 0);
    r2 = place(f, mk("PEP", IM_SIDE_BUY, 40, IM_OT_LMT, 110.00, 0, IM_TIF_DAY));
    ASSERT_EQ(r2.info.status, IM_OS_SUBMITTED);
    fx_close(f);
}

TEST(sim_market_buy_checks_worst_case_cost) {
    fixture *f = fx_open(42, 20000);
    im_quote q = fx_quote(f, "AAPL");
    double qty = floor(20000 / q.ask); /* grows to the least the cash cannot cover */
    order_res r;
    while (qty * q.ask + commission(qty, q.ask) <= 20000)
        qty += 1;
    r = place(f, mk("AAPL", IM_SIDE_BUY, qty, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    ASSERT_EQ(r.info.status, IM_OS_REJECTED);
    ASSERT_CONTAINS(r.info.message, "Insufficient cash: order needs $");
    ASSERT_CONTAINS(r.info.message, "available $20,000.00.");
    r = place(f, mk("AAPL", IM_SIDE_BUY, qty - 1, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    ASSERT_EQ(r.info.status, IM_OS_FILLED);
    ASSERT(account(f).cash >= 0);
    fx_close(f);
}

TEST(sim_cash_account_cannot_short) {
    fixture *f = fx_open(42, 0);
    order_res r = place(f, mk("TSLA", IM_SIDE_SELL, 10, IM_OT_MKT, 0, 0, IM_TIF_DAY));

    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(r.info.status, IM_OS_REJECTED);
    ASSERT_CONTAINS(r.info.message, "Cash account cannot sell short: ");
    ASSERT_CONTAINS(r.info.message, "sells 10 TSLA");
    ASSERT_EQ(positions(f)->n, 0);

    (void)place(f, mk("TSLA", IM_SIDE_BUY, 30, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    r = place(f, mk("TSLA", IM_SIDE_SELL, 20, IM_OT_LMT, 400.00, 0, IM_TIF_GTC));
    ASSERT_EQ(r.info.status, IM_OS_SUBMITTED);
    /* 30 held, 20 already being sold: 11 more would go short. */
    r = place(f, mk("TSLA", IM_SIDE_SELL, 11, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    ASSERT_EQ(r.info.status, IM_OS_REJECTED);
    ASSERT_CONTAINS(r.info.message, "only 10 are held");
    r = place(f, mk("TSLA", IM_SIDE_SELL, 10, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    ASSERT_EQ(r.info.status, IM_OS_FILLED);
    fx_close(f);
}

/* ---- validation --------------------------------------------------------- */

TEST(sim_place_validation) {
    static const struct {
        const char *sym;
        double qty, lmt, stp;
        im_order_type type;
        int status;
        const char *words;
    } cases[] = {
        {"XYZ", 1, 0, 0, IM_OT_MKT, IM_ESYMBOL, "Unknown symbol 'XYZ'. The simulator trades: AAPL"},
        {"AAPL", 0, 0, 0, IM_OT_MKT, IM_EINVAL, "Quantity"},
        {"AAPL", -5, 0, 0, IM_OT_MKT, IM_EINVAL, "Quantity"},
        {"AAPL", 1.5, 0, 0, IM_OT_MKT, IM_EINVAL, "whole"},
        {"AAPL", NAN, 0, 0, IM_OT_MKT, IM_EINVAL, "Quantity"},
        {"AAPL", INFINITY, 0, 0, IM_OT_MKT, IM_EINVAL, "Quantity"},
        {"AAPL", 1e12, 0, 0, IM_OT_MKT, IM_EINVAL, "limit"},
        {"AAPL", 1, 0, 0, IM_OT_LMT, IM_EINVAL, "limit price"},
        {"AAPL", 1, -1, 0, IM_OT_LMT, IM_EINVAL, "limit price"},
        {"AAPL", 1, NAN, 0, IM_OT_LMT, IM_EINVAL, "limit price"},
        {"AAPL", 1, 0, 0, IM_OT_STP, IM_EINVAL, "stop price"},
        {"AAPL", 1, 200, INFINITY, IM_OT_STP_LMT, IM_EINVAL, "stop price"},
        {"AAPL", 1, 0, 0, (im_order_type)9, IM_EINVAL, "Order type"},
    };
    fixture *f = fx_open(42, 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        order_res r = place(f, mk(cases[i].sym, IM_SIDE_BUY, cases[i].qty, cases[i].type,
                                  cases[i].lmt, cases[i].stp, IM_TIF_DAY));
        ASSERT_EQ(r.status, cases[i].status);
        ASSERT(!r.has_info);
        ASSERT_CONTAINS(r.msg, cases[i].words);
    }
    ASSERT_EQ(f->nevents, 0);
    /* Bad side and time in force. */
    {
        im_order o = mk("AAPL", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY);
        order_res r;
        o.side = (im_side)0;
        r = place(f, o);
        ASSERT_EQ(r.status, IM_EINVAL);
        o.side = IM_SIDE_BUY;
        o.tif = (im_tif)7;
        r = place(f, o);
        ASSERT_EQ(r.status, IM_EINVAL);
        ASSERT_CONTAINS(r.msg, "Time in force");
    }
    /* Invalid orders consumed no id. */
    ASSERT_STR_EQ(place(f, mk("AAPL", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY)).info.order_id,
                  "1000");
    fx_close(f);
}

TEST(sim_order_ids_increase) {
    fixture *f = fx_open(42, 0);
    char prev[IM_ORDER_ID_MAX] = "";
    for (int i = 0; i < 5; i++) {
        order_res r = place(f, mk("KO", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY));
        char want[IM_ORDER_ID_MAX];
        snprintf(want, sizeof want, "%d", 1000 + i);
        ASSERT_STR_EQ(r.info.order_id, want);
        ASSERT(strcmp(r.info.order_id, prev) != 0);
        snprintf(prev, sizeof prev, "%s", r.info.order_id);
    }
    fx_close(f);
}

/* ---- cancel ------------------------------------------------------------- */

TEST(sim_cancel_working_unknown_and_filled) {
    fixture *f = fx_open(42, 0);
    order_res w = place(f, mk("HD", IM_SIDE_BUY, 10, IM_OT_LMT, 300.00, 0, IM_TIF_DAY));
    order_res done = place(f, mk("HD", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    order_res c;
    im_account a;

    ASSERT_EQ(w.info.status, IM_OS_SUBMITTED);
    a = account(f);
    ASSERT(a.buying_power < a.cash - 3000);

    c = cancel(f, w.info.order_id);
    ASSERT_EQ(c.status, 0);
    ASSERT(c.has_info);
    ASSERT_EQ(c.info.status, IM_OS_CANCELLED);
    ASSERT_STR_EQ(c.info.order_id, w.info.order_id);
    ASSERT_NEAR(c.info.remaining, 10, 0);
    ASSERT_EQ(last_event(f, IM_BEV_ORDER, w.info.order_id)->order.status, IM_OS_CANCELLED);
    ASSERT_EQ(open_orders(f)->n, 0);
    a = account(f);
    ASSERT_NEAR(a.buying_power, a.cash, 1e-9);

    c = cancel(f, "1234");
    ASSERT_EQ(c.status, IM_EORDER);
    ASSERT(!c.has_info);
    ASSERT_STR_EQ(c.msg, "No order 1234.");

    c = cancel(f, done.info.order_id);
    ASSERT_EQ(c.status, IM_ESTATE);
    ASSERT_STR_EQ(c.msg, "Order 1001 is already FILLED.");

    c = cancel(f, w.info.order_id);
    ASSERT_EQ(c.status, IM_ESTATE);
    ASSERT_STR_EQ(c.msg, "Order 1000 is already CANCELLED.");
    fx_close(f);
}

/* ---- hooks -------------------------------------------------------------- */

TEST(sim_fill_hook) {
    fixture *f = fx_open(42, 0);
    order_res r = place(f, mk("V", IM_SIDE_BUY, 20, IM_OT_LMT, 300.00, 0, IM_TIF_DAY));
    im_quote q = fx_quote(f, "V");
    positions_res *p;

    ASSERT_EQ(im_sim_fill(f->sim, "999"), IM_EORDER);
    ASSERT_EQ(im_sim_fill(f->sim, r.info.order_id), 0);
    ASSERT_EQ(f->nfills, 0); /* deferred */
    fx_run(f);
    ASSERT_EQ(f->nfills, 1);
    ASSERT_NEAR(last_event(f, IM_BEV_FILL, r.info.order_id)->exec.price, q.ask, 1e-9);
    ASSERT_EQ(last_event(f, IM_BEV_ORDER, r.info.order_id)->order.status, IM_OS_FILLED);
    ASSERT_EQ(im_sim_fill(f->sim, r.info.order_id), IM_EORDER); /* no longer working */
    p = positions(f);
    ASSERT_EQ(p->n, 1);
    ASSERT_NEAR(p->p[0].quantity, 20, 0);

    ASSERT_EQ(im_sim_set_price(f->sim, "NOPE", 10), IM_ESYMBOL);
    ASSERT_EQ(im_sim_set_price(f->sim, "V", NAN), IM_EINVAL);
    ASSERT_EQ(im_sim_set_price(f->sim, "V", -1), IM_EINVAL);
    ASSERT_EQ(im_sim_set_price(f->sim, "V", 0), IM_EINVAL);
    ASSERT_EQ(im_sim_set_price(f->sim, "V", 123.45), 0);
    q = fx_quote(f, "V");
    ASSERT_NEAR((q.bid + q.ask) / 2, 123.45, 1e-9);
    ASSERT_NEAR(q.last, 123.45, 1e-9);
    fx_close(f);
}

/* ---- books -------------------------------------------------------------- */

TEST(sim_positions_account_executions_after_trades) {
    fixture *f = fx_open(8, 0);
    im_quote a1, n1, a2, aq, nq;
    positions_res *p;
    execs_res *e;
    im_account acct;
    double c_a1, c_n1, c_a2, cash, unreal;
    order_res s;

    a1 = fx_quote(f, "AAPL");
    (void)place(f, mk("AAPL", IM_SIDE_BUY, 100, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    c_a1 = commission(100, a1.ask);
    n1 = fx_quote(f, "NVDA");
    (void)place(f, mk("NVDA", IM_SIDE_BUY, 50, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    c_n1 = commission(50, n1.ask);
    fx_advance(f, 5);
    a2 = fx_quote(f, "AAPL");
    (void)place(f, mk("AAPL", IM_SIDE_BUY, 300, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    {
        long long slip = a2.ask_size >= 300 ? 0 : (long long)floor(300 / a2.ask_size) - 1;
        a2.ask = (llround(a2.ask * 100) + slip) / 100.0;
    }
    c_a2 = commission(300, a2.ask);
    fx_advance(f, 5);
    aq = fx_quote(f, "AAPL");
    s = place(f, mk("AAPL", IM_SIDE_SELL, 150, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    ASSERT_EQ(s.info.status, IM_OS_FILLED);
    nq = fx_quote(f, "NVDA");

    p = positions(f);
    ASSERT_EQ(p->n, 2);
    ASSERT_STR_EQ(p->p[0].symbol, "AAPL");
    ASSERT_NEAR(p->p[0].quantity, 250, 0);
    /* Weighted entry, commissions excluded; a sale leaves it unchanged. */
    ASSERT_NEAR(p->p[0].avg_cost, (100 * a1.ask + 300 * a2.ask) / 400, 1e-9);
    ASSERT_NEAR(p->p[0].market_price, (aq.bid + aq.ask) / 2, 1e-9);
    ASSERT_NEAR(p->p[0].market_value, 250 * p->p[0].market_price, 1e-6);
    ASSERT_NEAR(p->p[0].unrealized_pnl, (p->p[0].market_price - p->p[0].avg_cost) * 250, 1e-6);
    ASSERT_NEAR(p->p[0].realized_pnl,
                (s.info.avg_fill_price - p->p[0].avg_cost) * 150 - c_a1 - c_a2 -
                    commission(150, s.info.avg_fill_price),
                1e-6);
    ASSERT_STR_EQ(p->p[1].symbol, "NVDA");
    ASSERT_NEAR(p->p[1].quantity, 50, 0);
    ASSERT_NEAR(p->p[1].avg_cost, n1.ask, 1e-9);
    ASSERT_NEAR(p->p[1].realized_pnl, -c_n1, 1e-9);

    acct = account(f);
    cash = 100000 - 100 * a1.ask - c_a1 - 50 * n1.ask - c_n1 - 300 * a2.ask - c_a2 +
           150 * s.info.avg_fill_price - commission(150, s.info.avg_fill_price);
    ASSERT_NEAR(acct.cash, cash, 1e-6);
    unreal = p->p[0].unrealized_pnl + (((nq.bid + nq.ask) / 2) - n1.ask) * 50;
    ASSERT_NEAR(acct.unrealized_pnl, unreal, 1e-6);
    ASSERT_NEAR(acct.gross_position_value, p->p[0].market_value + p->p[1].market_value, 1e-6);
    ASSERT_NEAR(acct.net_liquidation, acct.cash + acct.gross_position_value, 1e-6);
    ASSERT_NEAR(acct.commissions, c_a1 + c_n1 + c_a2 + commission(150, s.info.avg_fill_price),
                1e-9);
    /* Realized is net of every commission, so the books balance. */
    ASSERT_NEAR(acct.net_liquidation - 100000, acct.realized_pnl + acct.unrealized_pnl, 1e-6);
    ASSERT_NEAR(acct.buying_power, acct.cash, 1e-9);

    e = executions(f);
    ASSERT_EQ(e->n, 4);
    ASSERT(e->ordered);
    ASSERT_STR_EQ(e->e[0].order_id, "1000");
    ASSERT_STR_EQ(e->e[1].order_id, "1001");
    ASSERT_STR_EQ(e->e[2].order_id, "1002");
    ASSERT_STR_EQ(e->e[3].order_id, "1003");
    ASSERT_EQ(e->e[3].side, IM_SIDE_SELL);
    ASSERT_NEAR(e->e[3].shares, 150, 0);
    ASSERT_NEAR(e->e[0].time, T0, 1e-9);
    ASSERT_NEAR(e->e[3].time, T0 + 10, 1e-9);
    for (size_t i = 0; i < e->n; i++)
        for (size_t j = i + 1; j < e->n; j++)
            ASSERT(strcmp(e->e[i].exec_id, e->e[j].exec_id) != 0);
    fx_close(f);
}

TEST(sim_account_id_from_options) {
    uv_loop_t loop;
    im_clock clock;
    im_sim *s;
    im_sim_opts o;
    account_res a;

    ASSERT_EQ(uv_loop_init(&loop), 0);
    im_clock_init_frozen(&clock, T0);
    memset(&o, 0, sizeof o);
    o.clock = &clock;
    o.account_id = "DU7654321";
    o.starting_cash = 2500.50;
    ASSERT_EQ(im_sim_new(&loop, &o, &s), 0);
    memset(&a, 0, sizeof a);
    ASSERT_EQ(im_sim_broker(s)->ops->account(im_sim_broker(s), account_cb, &a), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(a.calls, 1);
    ASSERT_STR_EQ(a.a.account_id, "DU7654321");
    ASSERT_NEAR(a.a.cash, 2500.50, 0);
    ASSERT_NEAR(a.a.net_liquidation, 2500.50, 0);
    im_sim_broker(s)->ops->close(im_sim_broker(s));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

/* ---- the timer ---------------------------------------------------------- */

static void stop_loop_cb(uv_timer_t *t) { uv_stop(t->loop); }

/* The 1 s timer works resting orders without any call into the sim. */
TEST(sim_tick_timer_works_resting_orders) {
    fixture *f = fx_open(42, 1000000);
    uv_timer_t guard;
    order_res r = place(f, mk("WMT", IM_SIDE_BUY, 3000, IM_OT_LMT, 150.00, 0, IM_TIF_DAY));

    ASSERT_EQ(r.info.status, IM_OS_PARTIAL); /* the touch filled at once */
    ASSERT_EQ(f->nfills, 1);
    im_clock_advance(&f->clock, 3); /* no sync: only the timer can notice */
    ASSERT_EQ(uv_timer_init(&f->loop, &guard), 0);
    ASSERT_EQ(uv_timer_start(&guard, stop_loop_cb, 1300, 0), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ASSERT(f->nfills >= 4); /* three more seconds of touch */
    uv_close((uv_handle_t *)&guard, NULL);
    fx_close(f);
}

/* ---- bounds ------------------------------------------------------------- */

TEST(sim_order_table_bound) {
    fixture *f = fx_open(42, 1000000);
    order_res r;
    int i;
    f->b->on_event = NULL;
    for (i = 0; i < 4096; i++) {
        im_order o = mk("INTC", IM_SIDE_BUY, 1, IM_OT_LMT, 1.00, 0, IM_TIF_GTC);
        memset(&r, 0, sizeof r);
        ASSERT_EQ(f->b->ops->place(f->b, &o, order_cb, &r), 0);
        fx_run(f);
        ASSERT_EQ(r.info.status, IM_OS_SUBMITTED);
    }
    r = place(f, mk("INTC", IM_SIDE_BUY, 1, IM_OT_LMT, 1.00, 0, IM_TIF_GTC));
    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(r.info.status, IM_OS_REJECTED);
    ASSERT_CONTAINS(r.info.message, "4096 working orders");
    /* Freeing one slot makes room; finished orders are forgotten first. */
    ASSERT_EQ(cancel(f, "1000").status, 0);
    r = place(f, mk("INTC", IM_SIDE_BUY, 1, IM_OT_LMT, 1.00, 0, IM_TIF_GTC));
    ASSERT_EQ(r.info.status, IM_OS_SUBMITTED);
    ASSERT_EQ(cancel(f, "1000").status, IM_EORDER); /* forgotten */
    fx_close(f);
}

TEST(sim_execution_log_bound) {
    fixture *f = fx_open(42, 1e9);
    order_res r = place(f, mk("INTC", IM_SIDE_BUY, 12000000, IM_OT_LMT, 15.00, 0, IM_TIF_GTC));
    execs_res *e;

    f->b->on_event = NULL; /* 40,000 events: counted by nobody */
    ASSERT_EQ(r.info.status, IM_OS_SUBMITTED);
    ASSERT_EQ(im_sim_set_price(f->sim, "INTC", 10.00), 0);
    fx_advance(f, 20000); /* one part per second, at most 500 shares each */
    fx_run(f);
    e = executions(f);
    ASSERT_EQ(e->n, 16384);
    ASSERT(e->ordered);
    ASSERT(strcmp(e->first.exec_id, "sim.1000.1") != 0); /* oldest dropped */
    ASSERT_STR_EQ(e->last.exec_id, "sim.1000.20001");
    ASSERT_NEAR(e->last.time, T0 + 20000, 1e-9);
    fx_close(f);
}

/* ---- closing ------------------------------------------------------------ */

TEST(sim_close_cancels_pending_completions) {
    fixture *f = fx_open(42, 0);
    quote_res q;
    order_res r;
    positions_res p;
    im_order o = mk("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0, IM_TIF_DAY);

    memset(&q, 0, sizeof q);
    memset(&r, 0, sizeof r);
    memset(&p, 0, sizeof p);
    ASSERT_EQ(f->b->ops->quote(f->b, "AAPL", quote_cb, &q), 0);
    ASSERT_EQ(f->b->ops->place(f->b, &o, order_cb, &r), 0);
    ASSERT_EQ(f->b->ops->positions(f->b, positions_cb, &p), 0);
    f->b->ops->close(f->b);
    /* broker.h: answered from inside close, before it returns. */
    ASSERT_EQ(q.calls + r.calls + p.calls, 3);
    ASSERT_EQ(f->b->ops->connected(f->b), 0);
    ASSERT_EQ(f->b->ops->quote(f->b, "AAPL", quote_cb, &q), IM_ENOTCONN);
    f->b->ops->close(f->b); /* twice is harmless */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ASSERT_EQ(q.calls, 1);
    ASSERT_EQ(q.status, IM_ECANCELED);
    ASSERT(!q.has_q);
    ASSERT_CONTAINS(q.msg, "closed");
    ASSERT_EQ(r.calls, 1);
    ASSERT_EQ(r.status, IM_ECANCELED);
    ASSERT_EQ(p.calls, 1);
    ASSERT_EQ(p.status, IM_ECANCELED);
    ASSERT_EQ(p.n, 0);
    ASSERT_EQ(f->nevents, 0); /* events are dropped, never cancelled */
    ASSERT_EQ(uv_loop_close(&f->loop), 0);
    free(f);
}

static quote_res close_second;

static void close_from_cb(void *ud, int status, const char *msg, const im_quote *q) {
    fixture *f = ud;
    f->b->ops->close(f->b);
}

TEST(sim_close_inside_callback) {
    fixture *f = fx_open(42, 0);
    memset(&close_second, 0, sizeof close_second);
    ASSERT_EQ(f->b->ops->quote(f->b, "AAPL", close_from_cb, f), 0);
    ASSERT_EQ(f->b->ops->quote(f->b, "MSFT", quote_cb, &close_second), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ASSERT_EQ(close_second.calls, 1);
    ASSERT_EQ(close_second.status, IM_ECANCELED);
    ASSERT_EQ(uv_loop_close(&f->loop), 0);
    free(f);
}

/* ---- the saved account -------------------------------------------------- */

/* A fresh temporary state directory in out (64 bytes). */
static void tmp_dir(char *out) {
    snprintf(out, 64, "/tmp/ibkr-mcp-simtest-XXXXXX");
    ASSERT(mkdtemp(out) != NULL);
}

/* Removes dir and the files in it (one level, as the sim writes). */
static void rm_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* The whole file at dir/name as a heap string (caller frees), or NULL. */
static char *slurp(const char *dir, const char *name, size_t *len) {
    char p[256];
    FILE *fp;
    long n;
    char *buf;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    fp = fopen(p, "rb");
    if (fp == NULL)
        return NULL;
    ASSERT(fseek(fp, 0, SEEK_END) == 0);
    n = ftell(fp);
    ASSERT(n >= 0);
    rewind(fp);
    buf = malloc((size_t)n + 1);
    ASSERT(buf != NULL);
    ASSERT_EQ(fread(buf, 1, (size_t)n, fp), n);
    buf[n] = '\0';
    fclose(fp);
    if (len != NULL)
        *len = (size_t)n;
    return buf;
}

static void spill(const char *dir, const char *name, const char *data, size_t len) {
    char p[256];
    FILE *fp;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    fp = fopen(p, "wb");
    ASSERT(fp != NULL);
    ASSERT_EQ(fwrite(data, 1, len, fp), len);
    ASSERT_EQ(fclose(fp), 0);
}

/* A fixture whose sim keeps its account in dir, its clock frozen at start.
 * Returns NULL when the sim refuses to start, with its rc and sentence. */
static fixture *fx_open_state(unsigned long long seed, double cash, const char *dir, int reset,
                              double start, int *rc, char *err, size_t errlen) {
    fixture *f = calloc(1, sizeof *f);
    im_sim_opts o;
    ASSERT(f != NULL);
    ASSERT_EQ(uv_loop_init(&f->loop), 0);
    im_clock_init_frozen(&f->clock, start);
    memset(&o, 0, sizeof o);
    o.seed = seed;
    o.starting_cash = cash;
    o.clock = &f->clock;
    o.state_dir = dir;
    o.reset = reset;
    *rc = im_sim_open(&f->loop, &o, &f->sim, err, errlen);
    if (*rc != 0) {
        uv_run(&f->loop, UV_RUN_DEFAULT);
        ASSERT_EQ(uv_loop_close(&f->loop), 0);
        free(f);
        return NULL;
    }
    f->b = im_sim_broker(f->sim);
    f->b->on_event = on_event;
    f->b->event_ud = f;
    return f;
}

static fixture *fx_state(unsigned long long seed, double cash, const char *dir, int reset) {
    char err[2200];
    int rc;
    fixture *f = fx_open_state(seed, cash, dir, reset, T0, &rc, err, sizeof err);
    if (f == NULL)
        im_test_fail(__FILE__, __LINE__, "sim refused to start (%d): %s", rc, err);
    return f;
}

#define ASSERT_SAME(a, b) ASSERT_NEAR((a), (b), 0)

static void same_order(const im_order_info *a, const im_order_info *b) {
    ASSERT_STR_EQ(a->order_id, b->order_id);
    ASSERT_STR_EQ(a->order.symbol, b->order.symbol);
    ASSERT_EQ(a->order.side, b->order.side);
    ASSERT_EQ(a->order.type, b->order.type);
    ASSERT_EQ(a->order.tif, b->order.tif);
    ASSERT_SAME(a->order.quantity, b->order.quantity);
    ASSERT_SAME(a->order.limit_price, b->order.limit_price);
    ASSERT_SAME(a->order.stop_price, b->order.stop_price);
    ASSERT_STR_EQ(a->order.order_ref, b->order.order_ref);
    ASSERT_EQ(a->status, b->status);
    ASSERT_SAME(a->filled, b->filled);
    ASSERT_SAME(a->remaining, b->remaining);
    ASSERT_SAME(a->avg_fill_price, b->avg_fill_price);
    ASSERT_SAME(a->submitted_at, b->submitted_at);
    ASSERT_SAME(a->updated_at, b->updated_at);
    ASSERT_STR_EQ(a->message, b->message);
}

static void same_exec(const im_execution *a, const im_execution *b) {
    ASSERT_STR_EQ(a->exec_id, b->exec_id);
    ASSERT_STR_EQ(a->order_id, b->order_id);
    ASSERT_STR_EQ(a->symbol, b->symbol);
    ASSERT_EQ(a->side, b->side);
    ASSERT_SAME(a->shares, b->shares);
    ASSERT_SAME(a->price, b->price);
    ASSERT_SAME(a->commission, b->commission);
    ASSERT_SAME(a->realized_pnl, b->realized_pnl);
    ASSERT_SAME(a->time, b->time);
    ASSERT_STR_EQ(a->order_ref, b->order_ref);
}

/* Everything either sim shows through broker.h and the hooks is equal,
 * to the last bit: account, positions, open orders, executions, quotes. */
static void same_sims(fixture *a, fixture *b) {
    im_account x = account(a), y = account(b);
    positions_res pa;
    orders_res oa;
    execs_res ea;

    ASSERT_SAME(x.cash, y.cash);
    ASSERT_SAME(x.net_liquidation, y.net_liquidation);
    ASSERT_SAME(x.buying_power, y.buying_power);
    ASSERT_SAME(x.realized_pnl, y.realized_pnl);
    ASSERT_SAME(x.unrealized_pnl, y.unrealized_pnl);
    ASSERT_SAME(x.commissions, y.commissions);
    pa = *positions(a);
    {
        positions_res *pb = positions(b);
        ASSERT_EQ(pa.n, pb->n);
        for (size_t i = 0; i < pa.n; i++) {
            ASSERT_STR_EQ(pa.p[i].symbol, pb->p[i].symbol);
            ASSERT_SAME(pa.p[i].quantity, pb->p[i].quantity);
            ASSERT_SAME(pa.p[i].avg_cost, pb->p[i].avg_cost);
            ASSERT_SAME(pa.p[i].market_price, pb->p[i].market_price);
            ASSERT_SAME(pa.p[i].realized_pnl, pb->p[i].realized_pnl);
        }
    }
    oa = *open_orders(a);
    {
        orders_res *ob = open_orders(b);
        ASSERT_EQ(oa.n, ob->n);
        for (size_t i = 0; i < oa.n; i++)
            same_order(&oa.o[i], &ob->o[i]);
    }
    ea = *executions(a);
    {
        execs_res *eb = executions(b);
        ASSERT_EQ(ea.n, eb->n);
        for (size_t i = 0; i < ea.n && i < MAX_LIST; i++)
            same_exec(&ea.e[i], &eb->e[i]);
    }
    for (size_t i = 0; i < im_sim_symbol_count(a->sim); i++) {
        const char *sym = im_sim_symbol_at(a->sim, i);
        im_quote qa = fx_quote(a, sym), qb = fx_quote(b, sym);
        ASSERT_SAME(qa.bid, qb.bid);
        ASSERT_SAME(qa.ask, qb.ask);
        ASSERT_SAME(qa.last, qb.last);
        ASSERT_SAME(qa.bid_size, qb.bid_size);
        ASSERT_SAME(qa.ask_size, qb.ask_size);
    }
}

/* Cash, two positions, a resting LMT, a large LMT filling in parts, a
 * triggered STP LMT still waiting, and their executions. Returns the ids
 * of the resting LMT (msft) and the STP LMT (pg). */
static void build_account(fixture *f, char *msft, char *pg) {
    order_res r;
    (void)place(f, mk("AAPL", IM_SIDE_BUY, 100, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    (void)place(f, mk("PG", IM_SIDE_BUY, 100, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    r = place(f, mk("MSFT", IM_SIDE_BUY, 20, IM_OT_LMT, 400.00, 0, IM_TIF_GTC));
    ASSERT_EQ(r.info.status, IM_OS_SUBMITTED);
    snprintf(msft, IM_ORDER_ID_MAX, "%s", r.info.order_id);
    r = place(f, mk("PG", IM_SIDE_SELL, 100, IM_OT_STP_LMT, 150.00, 152.00, IM_TIF_GTC));
    snprintf(pg, IM_ORDER_ID_MAX, "%s", r.info.order_id);
    ASSERT_EQ(im_sim_set_price(f->sim, "PG", 145.00), 0); /* triggered, below the limit */
    r = place(f, mk("WMT", IM_SIDE_BUY, 3000, IM_OT_LMT, 150.00, 0, IM_TIF_GTC));
    ASSERT_EQ(r.info.status, IM_OS_PARTIAL);
    fx_advance(f, 2.5);
    fx_run(f);
    ASSERT_EQ(open_orders(f)->n, 3);
    ASSERT_CONTAINS(open_orders(f)->o[1].message, "triggered");
}

TEST(sim_persist_round_trip_continues_identically) {
    char d1[64], d2[64], msft[IM_ORDER_ID_MAX], pg[IM_ORDER_ID_MAX];
    fixture *a, *b;
    char *text;
    size_t len;
    int rc;

    tmp_dir(d1);
    tmp_dir(d2);
    a = fx_state(42, 1000000, d1, 0);
    ASSERT(im_sim_persistent(a->sim));
    build_account(a, msft, pg);
    ASSERT_EQ(im_sim_save(a->sim), 0); /* prices as of now, not only the last fill */
    text = slurp(d1, "sim-account.json", &len);
    ASSERT(text != NULL);
    spill(d2, "sim-account.json", text, len);
    free(text);
    {
        char err[2200];
        b = fx_open_state(42, 1000000, d2, 0, im_clock_now(&a->clock), &rc, err, sizeof err);
        if (b == NULL)
            im_test_fail(__FILE__, __LINE__, "load failed: %s", err);
    }
    ASSERT(im_sim_persistent(b->sim));
    same_sims(a, b);
    /* The same steps from here give the same market and the same fills:
     * the partial WMT buy, the STP LMT once PG is back above its limit,
     * the MSFT limit when it is crossed, a new order in each. */
    a->nfills = b->nfills = 0;
    for (int k = 0; k < 40; k++) {
        fx_advance(a, 0.75);
        fx_advance(b, 0.75);
        if (k == 10) {
            ASSERT_EQ(im_sim_set_price(a->sim, "PG", 151.00), 0);
            ASSERT_EQ(im_sim_set_price(b->sim, "PG", 151.00), 0);
        }
        if (k == 20) {
            ASSERT_EQ(im_sim_set_price(a->sim, "MSFT", 399.00), 0);
            ASSERT_EQ(im_sim_set_price(b->sim, "MSFT", 399.00), 0);
        }
        if (k == 30) {
            order_res ra = place(a, mk("NVDA", IM_SIDE_BUY, 700, IM_OT_MKT, 0, 0, IM_TIF_DAY));
            order_res rb = place(b, mk("NVDA", IM_SIDE_BUY, 700, IM_OT_MKT, 0, 0, IM_TIF_DAY));
            same_order(&ra.info, &rb.info);
        }
        fx_run(a);
        fx_run(b);
        ASSERT_EQ(a->nfills, b->nfills);
    }
    ASSERT(a->nfills >= 10);
    ASSERT_EQ(count_events(a, IM_BEV_FILL, pg), 1);
    ASSERT_EQ(count_events(b, IM_BEV_FILL, pg), 1);
    ASSERT_EQ(count_events(b, IM_BEV_FILL, msft), 1);
    same_sims(a, b);
    fx_close(a);
    fx_close(b);
    rm_dir(d1);
    rm_dir(d2);
}

TEST(sim_persist_restart_keeps_account_and_ids_continue) {
    char d[64], msft[IM_ORDER_ID_MAX], pg[IM_ORDER_ID_MAX];
    fixture *a, *b;
    im_account before, after;
    orders_res oo;
    order_res r;

    tmp_dir(d);
    a = fx_state(42, 1000000, d, 0);
    build_account(a, msft, pg);
    r = place(a, mk("AAPL", IM_SIDE_BUY, 1e8, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    ASSERT_EQ(r.info.status, IM_OS_REJECTED); /* spends id 1005 all the same */
    ASSERT_STR_EQ(r.info.order_id, "1005");
    before = account(a);
    oo = *open_orders(a);
    fx_close(a); /* saves at close, prices included */

    b = fx_state(42, 1000000, d, 0);
    after = account(b);
    ASSERT_SAME(after.cash, before.cash);
    ASSERT_SAME(after.realized_pnl, before.realized_pnl);
    ASSERT_SAME(after.commissions, before.commissions);
    ASSERT_EQ(positions(b)->n, 3); /* AAPL, PG, WMT */
    ASSERT_EQ(open_orders(b)->n, oo.n);
    for (size_t i = 0; i < oo.n; i++)
        same_order(&oo.o[i], &open_orders(b)->o[i]);
    ASSERT(executions(b)->n >= 4);
    r = place(b, mk("KO", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    ASSERT_STR_EQ(r.info.order_id, "1006");
    /* A finished order of today is still known after the restart. */
    ASSERT_EQ(cancel(b, "1000").status, IM_ESTATE);
    /* The restored orders keep working: the resting LMT can be cancelled. */
    ASSERT_EQ(cancel(b, msft).status, 0);
    fx_close(b);

    b = fx_state(42, 1000000, d, 0);
    ASSERT_EQ(open_orders(b)->n, oo.n - 1);
    r = place(b, mk("KO", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    ASSERT_STR_EQ(r.info.order_id, "1007");
    fx_close(b);
    rm_dir(d);
}

/* A kill -9: the file written after the last change is all there is. */
TEST(sim_persist_without_close_keeps_every_change) {
    char d[64], d2[64];
    fixture *a, *b;
    order_res r;
    char *text;
    size_t len;

    tmp_dir(d);
    tmp_dir(d2);
    a = fx_state(42, 0, d, 0);
    (void)place(a, mk("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    r = place(a, mk("AAPL", IM_SIDE_BUY, 5, IM_OT_LMT, 150.00, 0, IM_TIF_GTC));
    /* Copy the file while a still runs: what a crash right now leaves. */
    text = slurp(d, "sim-account.json", &len);
    ASSERT(text != NULL);
    spill(d2, "sim-account.json", text, len);
    free(text);
    b = fx_state(42, 0, d2, 0);
    ASSERT_EQ(positions(b)->n, 1);
    ASSERT_SAME(positions(b)->p[0].quantity, 10);
    ASSERT_EQ(open_orders(b)->n, 1);
    ASSERT_STR_EQ(open_orders(b)->o[0].order_id, r.info.order_id);
    ASSERT_SAME(account(b).cash, account(a).cash);
    fx_close(a);
    fx_close(b);
    rm_dir(d);
    rm_dir(d2);
}

TEST(sim_persist_reset_ignores_the_file) {
    char d[64];
    fixture *a;
    char *text;

    tmp_dir(d);
    a = fx_state(42, 0, d, 0);
    (void)place(a, mk("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    (void)place(a, mk("AAPL", IM_SIDE_BUY, 5, IM_OT_LMT, 150.00, 0, IM_TIF_GTC));
    fx_close(a);
    a = fx_state(42, 0, d, 1);
    ASSERT(im_sim_persistent(a->sim));
    ASSERT_SAME(account(a).cash, 100000);
    ASSERT_EQ(positions(a)->n, 0);
    ASSERT_EQ(open_orders(a)->n, 0);
    ASSERT_EQ(executions(a)->n, 0);
    ASSERT_STR_EQ(place(a, mk("KO", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY)).info.order_id,
                  "1000");
    fx_close(a);
    /* Overwritten, not just ignored: the next normal start sees the new one. */
    text = slurp(d, "sim-account.json", NULL);
    ASSERT(text != NULL);
    ASSERT_CONTAINS(text, "\"next_order_id\":1001");
    free(text);
    a = fx_state(42, 0, d, 0);
    ASSERT_EQ(positions(a)->n, 1);
    ASSERT_STR_EQ(positions(a)->p[0].symbol, "KO");
    fx_close(a);
    rm_dir(d);
}

/* The saved account, as a cJSON tree the corruption tests edit. */
static cJSON *saved_tree(const char *dir) {
    char *text = slurp(dir, "sim-account.json", NULL);
    cJSON *root;
    ASSERT(text != NULL);
    root = cJSON_Parse(text);
    free(text);
    ASSERT(root != NULL);
    return root;
}

static void write_tree(const char *dir, cJSON *root) {
    char *text = cJSON_PrintUnformatted(root);
    ASSERT(text != NULL);
    spill(dir, "sim-account.json", text, strlen(text));
    cJSON_free(text);
}

/* The sim must refuse to start on dir, name the file and the way out, and
 * leave the file as it was. */
static void refuses(const char *dir, const char *reason) {
    char err[2200], path[128];
    char *before = slurp(dir, "sim-account.json", NULL), *after;
    int rc = 0;
    fixture *f = fx_open_state(42, 0, dir, 0, T0, &rc, err, sizeof err);
    ASSERT(f == NULL);
    ASSERT(rc == IM_EPARSE || rc == IM_EIO || rc == IM_ETOOBIG);
    snprintf(path, sizeof path, "%s/sim-account.json", dir);
    ASSERT_CONTAINS(err, path);
    ASSERT_CONTAINS(err, "IBKR_SIM_RESET=true");
    ASSERT_CONTAINS(err, reason);
    after = slurp(dir, "sim-account.json", NULL);
    ASSERT(before != NULL && after != NULL);
    ASSERT(strcmp(before, after) == 0);
    free(before);
    free(after);
}

static cJSON *item_at(cJSON *root, const char *array, int i) {
    cJSON *a = cJSON_GetObjectItemCaseSensitive(root, array);
    ASSERT(a != NULL);
    ASSERT(cJSON_GetArrayItem(a, i) != NULL);
    return cJSON_GetArrayItem(a, i);
}

TEST(sim_persist_corrupt_file_stops_the_start) {
    char d[64], good[64];
    fixture *a;
    cJSON *root;
    char *text, *junk;
    size_t len;

    tmp_dir(good);
    a = fx_state(42, 0, good, 0);
    (void)place(a, mk("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    (void)place(a, mk("AAPL", IM_SIDE_BUY, 5, IM_OT_LMT, 150.00, 0, IM_TIF_GTC));
    fx_close(a);
    text = slurp(good, "sim-account.json", &len);
    ASSERT(text != NULL);
    tmp_dir(d);

    /* Truncated (a torn write could never leave this, a damaged disk can). */
    spill(d, "sim-account.json", text, len / 2);
    refuses(d, "not valid JSON");
    spill(d, "sim-account.json", "", 0);
    refuses(d, "not valid JSON");

    /* Wrong types. */
    root = saved_tree(good);
    cJSON_ReplaceItemInObject(root, "cash", cJSON_CreateString("lots"));
    write_tree(d, root);
    cJSON_Delete(root);
    refuses(d, "cash is not a number");
    root = saved_tree(good);
    cJSON_ReplaceItemInObject(root, "orders", cJSON_CreateObject());
    write_tree(d, root);
    cJSON_Delete(root);
    refuses(d, "orders is not an array");
    root = saved_tree(good);
    cJSON_ReplaceItemInObject(item_at(root, "orders", 1), "triggered", cJSON_CreateNumber(1));
    write_tree(d, root);
    cJSON_Delete(root);
    refuses(d, "orders[1].triggered is not true or false");

    /* NaN is not JSON; an overflowing number is not finite. */
    root = saved_tree(good);
    cJSON_ReplaceItemInObject(root, "cash", cJSON_CreateRaw("NaN"));
    write_tree(d, root);
    cJSON_Delete(root);
    refuses(d, "not valid JSON");
    root = saved_tree(good);
    cJSON_ReplaceItemInObject(item_at(root, "symbols", 0), "px", cJSON_CreateRaw("1e999"));
    write_tree(d, root);
    cJSON_Delete(root);
    refuses(d, "symbols[0].px is not a finite number");

    /* Unknown symbols, in the price table and in an order. */
    root = saved_tree(good);
    cJSON_ReplaceItemInObject(item_at(root, "symbols", 3), "symbol", cJSON_CreateString("ZZZZ"));
    write_tree(d, root);
    cJSON_Delete(root);
    refuses(d, "symbols[3].symbol 'ZZZZ' is not a symbol the simulator trades");
    root = saved_tree(good);
    cJSON_ReplaceItemInObject(item_at(root, "orders", 1), "symbol", cJSON_CreateString("ZZZZ"));
    write_tree(d, root);
    cJSON_Delete(root);
    refuses(d, "orders[1].symbol 'ZZZZ'");

    /* Negative where it cannot be. */
    root = saved_tree(good);
    cJSON_ReplaceItemInObject(item_at(root, "symbols", 0), "qty", cJSON_CreateNumber(-5));
    write_tree(d, root);
    cJSON_Delete(root);
    refuses(d, "symbols[0].qty is -5");
    root = saved_tree(good);
    cJSON_ReplaceItemInObject(item_at(root, "orders", 1), "quantity", cJSON_CreateNumber(-5));
    write_tree(d, root);
    cJSON_Delete(root);
    refuses(d, "orders[1].quantity is -5");
    root = saved_tree(good);
    cJSON_ReplaceItemInObject(item_at(root, "executions", 0), "shares", cJSON_CreateNumber(-1));
    write_tree(d, root);
    cJSON_Delete(root);
    refuses(d, "executions[0].shares is -1");

    /* An id that would come back. */
    root = saved_tree(good);
    cJSON_ReplaceItemInObject(root, "next_order_id", cJSON_CreateNumber(1001));
    write_tree(d, root);
    cJSON_Delete(root);
    refuses(d, "not below next_order_id");

    /* A missing field, and a file from elsewhere. */
    root = saved_tree(good);
    cJSON_DeleteItemFromObject(root, "cash");
    write_tree(d, root);
    cJSON_Delete(root);
    refuses(d, "cash is missing");
    spill(d, "sim-account.json", "{\"hello\":1}", 11);
    refuses(d, "format");

    /* 10 MB of garbage. */
    junk = malloc(10u << 20);
    ASSERT(junk != NULL);
    for (size_t i = 0; i < (10u << 20); i++)
        junk[i] = (char)(i * 2654435761u >> 24);
    spill(d, "sim-account.json", junk, 10u << 20);
    free(junk);
    refuses(d, "not valid JSON");

    /* The way out works: reset starts afresh on the same directory. */
    a = fx_state(42, 0, d, 1);
    ASSERT_EQ(positions(a)->n, 0);
    fx_close(a);
    free(text);
    rm_dir(d);
    rm_dir(good);
}

TEST(sim_persist_write_is_atomic_and_private) {
    char d[64], sub[96];
    fixture *a;
    DIR *dir;
    struct dirent *e;
    struct stat st;
    int n = 0;

    tmp_dir(d);
    snprintf(sub, sizeof sub, "%s/state", d);
    a = fx_state(42, 0, sub, 0); /* the sim makes the directory */
    ASSERT_EQ(stat(sub, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0700);
    for (int i = 0; i < 5; i++)
        (void)place(a, mk("AAPL", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    ASSERT_EQ(im_sim_save(a->sim), 0);
    ASSERT(im_sim_persist_error(a->sim) == NULL);
    ASSERT(im_sim_state_path(a->sim) != NULL);
    ASSERT_CONTAINS(im_sim_state_path(a->sim), "/state/sim-account.json");
    dir = opendir(sub);
    ASSERT(dir != NULL);
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        n++;
        /* Only the account and its lock: no temporary file left behind. */
        ASSERT(strcmp(e->d_name, "sim-account.json") == 0 ||
               strcmp(e->d_name, "sim-account.lock") == 0);
    }
    closedir(dir);
    ASSERT_EQ(n, 2);
    snprintf(sub, sizeof sub, "%s/state/sim-account.json", d);
    ASSERT_EQ(stat(sub, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    fx_close(a);
    snprintf(sub, sizeof sub, "%s/state", d);
    rm_dir(sub);
    rm_dir(d);
}

TEST(sim_persist_second_owner_runs_in_memory) {
    char d[64];
    fixture *a, *b, *c;
    char *before, *after;

    tmp_dir(d);
    a = fx_state(42, 0, d, 0);
    (void)place(a, mk("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    before = slurp(d, "sim-account.json", NULL);
    /* flock locks belong to open files: a second open in this process
     * conflicts exactly as a second server would. */
    b = fx_state(42, 0, d, 1);
    ASSERT(im_sim_persistent(a->sim));
    ASSERT(!im_sim_persistent(b->sim));
    ASSERT(im_sim_state_path(b->sim) == NULL);
    ASSERT_EQ(im_sim_save(b->sim), IM_ESTATE);
    ASSERT_EQ(positions(b)->n, 0); /* a separate, fresh account */
    (void)place(b, mk("MSFT", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0, IM_TIF_DAY));
    fx_close(b);
    after = slurp(d, "sim-account.json", NULL);
    ASSERT(before != NULL && after != NULL);
    ASSERT(strcmp(before, after) == 0); /* b never wrote, even with reset */
    free(before);
    free(after);
    fx_close(a);
    c = fx_state(42, 0, d, 0); /* a let go: the next one owns it */
    ASSERT(im_sim_persistent(c->sim));
    ASSERT_EQ(positions(c)->n, 1);
    ASSERT_STR_EQ(positions(c)->p[0].symbol, "AAPL");
    fx_close(c);
    rm_dir(d);
}

TEST(sim_persist_earlier_days_executions_dropped) {
    char d[64], msft[IM_ORDER_ID_MAX], pg[IM_ORDER_ID_MAX];
    fixture *a, *b;
    char err[2200];
    size_t working;
    int rc;

    tmp_dir(d);
    a = fx_state(42, 1000000, d, 0);
    build_account(a, msft, pg);
    working = open_orders(a)->n;
    fx_close(a);
    /* Two days later: positions and working orders stay, the executions
     * and finished orders of the earlier day go, ids still continue. */
    b = fx_open_state(42, 1000000, d, 0, T0 + 2 * 86400, &rc, err, sizeof err);
    ASSERT(b != NULL);
    ASSERT_EQ(executions(b)->n, 0);
    ASSERT_EQ(open_orders(b)->n, working);
    ASSERT_EQ(positions(b)->n, 3);
    ASSERT_EQ(cancel(b, "1000").status, IM_EORDER); /* filled, on an earlier day */
    ASSERT_STR_EQ(place(b, mk("KO", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY)).info.order_id,
                  "1005");
    fx_close(b);
    rm_dir(d);
}

TEST(sim_persist_saved_seed_and_cash_win) {
    char d[64];
    fixture *a, *b, *ref;
    im_quote qa, qr;

    tmp_dir(d);
    a = fx_state(42, 5000, d, 0);
    fx_advance(a, 30);
    fx_close(a);
    b = fx_state(7, 900000, d, 0);
    ASSERT_SAME(account(b).cash, 5000);
    /* The walk goes on as seed 42's would, not seed 7's. */
    ref = fx_open(42, 5000);
    fx_advance(ref, 30);
    fx_advance(ref, 10);
    fx_advance(b, 10);
    qa = fx_quote(b, "AAPL");
    qr = fx_quote(ref, "AAPL");
    ASSERT_SAME(qa.bid, qr.bid);
    ASSERT_SAME(qa.ask_size, qr.ask_size);
    fx_close(ref);
    fx_close(b);
    rm_dir(d);
}

TEST(sim_persist_unusable_dir_runs_in_memory) {
    char d[64], p[128];
    fixture *a;

    tmp_dir(d);
    spill(d, "plainfile", "x", 1);
    snprintf(p, sizeof p, "%s/plainfile/state", d);
    a = fx_state(42, 0, p, 0);
    ASSERT(!im_sim_persistent(a->sim));
    ASSERT_EQ(place(a, mk("AAPL", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY)).status, 0);
    fx_close(a);
    rm_dir(d);
}

/* A save that fails is reported and retried on the next change; the
 * account carries on in memory meanwhile. (A directory where the temporary
 * file goes makes it fail even for root.) */
TEST(sim_persist_failed_save_is_retried) {
    char d[64], tmp[128];
    fixture *a, *b;

    tmp_dir(d);
    a = fx_state(42, 0, d, 0);
    snprintf(tmp, sizeof tmp, "%s/sim-account.json.tmp", d);
    ASSERT_EQ(mkdir(tmp, 0700), 0);
    ASSERT_EQ(place(a, mk("AAPL", IM_SIDE_BUY, 10, IM_OT_MKT, 0, 0, IM_TIF_DAY)).status, 0);
    ASSERT(im_sim_persist_error(a->sim) != NULL);
    ASSERT_CONTAINS(im_sim_persist_error(a->sim), "sim-account.json.tmp");
    ASSERT_EQ(positions(a)->n, 1);
    ASSERT_EQ(rmdir(tmp), 0);
    ASSERT_EQ(place(a, mk("KO", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY)).status, 0);
    ASSERT(im_sim_persist_error(a->sim) == NULL);
    fx_close(a);
    b = fx_state(42, 0, d, 0);
    ASSERT_EQ(positions(b)->n, 2);
    fx_close(b);
    rm_dir(d);
}
