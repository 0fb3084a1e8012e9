/* test_sim.c: the market simulator (sim.c) through broker.h and the sim.h
 * hooks, under fixed seeds and a frozen clock: determinism, deferred
 * exactly-once callbacks, the fill model, cash-account rules, P&L,
 * cancellation, bounds and an orderly close. */
#include <stdint.h>
#include <stdlib.h>
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
