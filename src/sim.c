/* sim.c: the in-process market simulator, an implementation of broker.h.
 *
 * Provides im_sim_* (sim.h): a universe of liquid US stocks whose prices
 * follow a seeded random walk in whole one-second steps of the injected
 * clock; a cash account with positions, average cost, realized and
 * unrealized P&L and per-share commissions; and a fill model (market orders
 * at the touch with size slippage, resting limits, stops, stop limits, IOC,
 * partial fills bounded by the touch size of each simulated second).
 *
 * Uses libuv for two handles only: a uv_idle_t that drains a FIFO of
 * completion and event records (so no callback ever runs inside the call
 * that caused it), and a 1 s repeating timer, unref'ed so it never keeps
 * the loop alive, that moves prices and resting orders with the clock.
 * Uses clock.h for time and log.h (stderr) for diagnostics.
 *
 * Ownership: the sim owns everything it allocates. Each queued record is a
 * heap snapshot taken when its operation ran; the pointers a callback
 * receives point into that record and die when the callback returns. On a
 * non-zero status callbacks receive NULL data (and n == 0). The sim itself
 * is freed in the close callback of its last handle, after undelivered
 * completions have been delivered with IM_ECANCELED and undelivered events
 * dropped. */
#include "sim.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "error.h"
#include "log.h"

/* Bounds. Orders beyond SIM_MAX_ORDERS evict the oldest finished orders;
 * if every slot holds a working order the new one is rejected. Executions
 * keep the newest SIM_MAX_EXECS (a ring). A catch-up longer than
 * SIM_MAX_STEPS seconds walks in coarser steps, so a clock jumped by a year
 * costs about as much as one jumped by a day (~30 ms for the universe). */
#define SIM_MAX_ORDERS 4096
#define SIM_EVICT_BATCH (SIM_MAX_ORDERS / 4)
#define SIM_MAX_EXECS 16384
#define SIM_MAX_STEPS 100000LL
#define SIM_MAX_QTY 1e8     /* shares per order; keeps cents within long long */
#define SIM_MAX_PRICE 1e6   /* dollars */
#define SIM_MIN_PRICE 0.05  /* the walk never goes below a nickel */
#define SIM_DEFAULT_CASH 100000.0
#define SIM_DEFAULT_ACCOUNT "DU0000001"
#define SIM_FIRST_ORDER_ID 1000ULL
#define SIM_TWO_PI 6.283185307179586
#define SIM_MONEY_MAX 48    /* "-$" + 31 grouped digits + ".nn" + NUL */

/* Commission schedule (IBKR Pro fixed): per share, with a per-execution
 * minimum and a cap of 1% of the execution's value. */
#define SIM_COMM_PER_SHARE 0.005
#define SIM_COMM_MIN 1.00
#define SIM_COMM_MAX_RATE 0.01

typedef struct sim_spec {
    const char *symbol;
    double price;  /* starting mid, mid-2025 levels */
    int spread_c;  /* ask - bid in cents: wider for high-priced names */
    double sigma;  /* sd of the log return per simulated second */
} sim_spec;

/* sigma 1e-4 per second is about 1.5% per 6.5 h session (x sqrt(23400)). */
static const sim_spec sim_universe[] = {
    {"AAPL", 203.00, 2, 1.0e-4},  {"MSFT", 472.00, 6, 0.8e-4},
    {"NVDA", 167.95, 4, 1.6e-4},  {"TSLA", 249.37, 6, 2.2e-4},
    {"AMZN", 217.00, 4, 1.1e-4},  {"GOOGL", 176.00, 2, 1.1e-4},
    {"META", 694.00, 10, 1.3e-4}, {"AVGO", 264.00, 6, 1.5e-4},
    {"JPM", 266.00, 4, 0.8e-4},   {"V", 357.00, 6, 0.7e-4},
    {"UNH", 305.00, 6, 1.2e-4},   {"XOM", 111.00, 2, 0.8e-4},
    {"JNJ", 155.00, 2, 0.6e-4},   {"WMT", 96.00, 2, 0.7e-4},
    {"PG", 160.00, 2, 0.6e-4},    {"MA", 568.00, 8, 0.7e-4},
    {"HD", 368.00, 6, 0.8e-4},    {"COST", 1008.00, 16, 0.8e-4},
    {"NFLX", 1225.00, 20, 1.3e-4}, {"AMD", 121.00, 2, 1.7e-4},
    {"INTC", 21.50, 2, 1.4e-4},   {"KO", 70.50, 2, 0.5e-4},
    {"PEP", 131.00, 2, 0.6e-4},   {"BAC", 45.50, 2, 0.9e-4},
    {"DIS", 118.00, 2, 0.9e-4},   {"SPY", 600.00, 2, 0.5e-4},
    {"QQQ", 530.00, 2, 0.6e-4},
};
#define SIM_NSYMS IM_ARRAY_SIZE(sim_universe)

typedef struct sim_sym {
    const sim_spec *spec;
    uint64_t rng[4];         /* xoshiro256** state, this symbol's alone */
    double px;               /* unrounded walk value; quotes round it */
    long long mid_c, bid_c, ask_c;
    double last;
    double bid_size, ask_size;
    double bid_avail, ask_avail; /* touch liquidity left in this second */
    double qty;              /* position: whole shares, never negative */
    double avg_cost;         /* weighted entry price, commission excluded */
    double realized;         /* per symbol, net of commissions */
} sim_sym;

typedef struct sim_order {
    im_order_info info;
    int sym;                 /* index into sim_universe */
    int triggered;           /* STP / STP LMT: the stop has been reached */
    unsigned nexec;          /* executions so far, numbers exec ids */
    double notional;         /* sum of shares x price, for avg_fill_price */
} sim_order;

enum sim_rec_kind {
    SIM_REC_QUOTE = 1,
    SIM_REC_ACCOUNT,
    SIM_REC_POSITIONS,
    SIM_REC_ORDERS,
    SIM_REC_EXECS,
    SIM_REC_ORDER,     /* place and cancel completions */
    SIM_REC_EV_ORDER,  /* events: never cancelled, dropped at close */
    SIM_REC_EV_FILL,
};

/* One queued completion or event: a snapshot owned by the queue. */
typedef struct sim_rec {
    struct sim_rec *next;
    int kind;
    int status;
    char *msg;               /* heap sentence for a failure, or NULL */
    void *ud;
    union {
        im_quote_cb quote;
        im_account_cb account;
        im_positions_cb positions;
        im_orders_cb orders;
        im_execs_cb execs;
        im_order_cb order;
    } cb;
    union {
        im_quote quote;
        im_account account;
        im_order_info order; /* SIM_REC_ORDER, SIM_REC_EV_ORDER, SIM_REC_EV_FILL */
    } u;
    im_execution exec;       /* SIM_REC_EV_FILL */
    void *items;             /* heap array for list completions, or NULL */
    size_t n;
} sim_rec;

struct im_sim {
    im_broker base;          /* first, so im_broker * and im_sim * convert */
    uv_loop_t *loop;
    im_clock *clock;         /* not owned */
    uv_timer_t tick;
    uv_idle_t drain;
    int closing;
    int open_handles;
    char account_id[IM_ACCOUNT_MAX];
    double cash, realized, commissions;
    long long synced;        /* the whole clock second the walk stands at */
    double at;               /* time stamped on changes being made now */
    sim_sym syms[SIM_NSYMS];
    sim_order *orders;       /* heap, oldest first; at most SIM_MAX_ORDERS */
    size_t norders, cap_orders, nworking;
    im_execution *execs;     /* heap ring; oldest at exec_head once full */
    size_t nexecs, cap_execs, exec_head;
    unsigned long long next_order_id;
    sim_rec *qhead, *qtail;
};

static void sim_drain_cb(uv_idle_t *h);

/* ---- random numbers: splitmix64 seeds xoshiro256** ---------------------- */

static uint64_t rng_splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rng_rotl(uint64_t v, int k) { return (v << k) | (v >> (64 - k)); }

static uint64_t rng_next(uint64_t st[4]) {
    uint64_t out = rng_rotl(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rng_rotl(st[3], 45);
    return out;
}

/* A standard normal by Box-Muller; u1 lies in (0, 1] so log is finite. */
static double rng_normal(uint64_t st[4]) {
    double u1 = ((double)(rng_next(st) >> 11) + 1.0) * 0x1.0p-53;
    double u2 = (double)(rng_next(st) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(SIM_TWO_PI * u2);
}

/* ---- small helpers ------------------------------------------------------ */

static long long cents(double v) { return llround(v * 100.0); }

/* "$52,310.00" or "-$1,234.50" into out (SIM_MONEY_MAX bytes suffice). */
static void fmt_money(double v, char *out, size_t n) {
    char digits[24], grouped[32];
    long long c;
    size_t len, j = 0;

    if (!isfinite(v) || fabs(v) >= 1e15) {
        snprintf(out, n, "$%g", v);
        return;
    }
    c = llabs(cents(v));
    snprintf(digits, sizeof digits, "%lld", c / 100);
    len = strlen(digits);
    for (size_t i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            grouped[j++] = ',';
        grouped[j++] = digits[i];
    }
    grouped[j] = '\0';
    snprintf(out, n, "%s$%s.%02lld", v < 0 && c != 0 ? "-" : "", grouped, c % 100);
}

static double sim_commission(double shares, double px) {
    double c = shares * SIM_COMM_PER_SHARE;
    double cap = SIM_COMM_MAX_RATE * shares * px;
    if (c < SIM_COMM_MIN)
        c = SIM_COMM_MIN;
    /* The 1% cap wins over the minimum, as IBKR's schedule says. */
    return c > cap ? cap : c;
}

static int sim_working(const sim_order *o) {
    return o->info.status == IM_OS_PENDING || o->info.status == IM_OS_SUBMITTED ||
           o->info.status == IM_OS_PARTIAL;
}

static int sim_find_sym(const char *symbol) {
    for (size_t i = 0; i < SIM_NSYMS; i++)
        if (strcmp(sim_universe[i].symbol, symbol) == 0)
            return (int)i;
    return -1;
}

static sim_order *sim_find_order(im_sim *s, const char *id) {
    for (size_t i = 0; i < s->norders; i++)
        if (strcmp(s->orders[i].info.order_id, id) == 0)
            return &s->orders[i];
    return NULL;
}

/* ---- the walk ----------------------------------------------------------- */

/* Publishes mid_c with the symbol's spread on whole cents, keeping bid at
 * one cent or more. */
static void sym_set_mid(sim_sym *y, long long mid_c) {
    long long half = y->spec->spread_c / 2;
    if (mid_c - half < 1)
        mid_c = half + 1;
    y->mid_c = mid_c;
    y->bid_c = mid_c - half;
    y->ask_c = y->bid_c + y->spec->spread_c;
    y->last = (double)mid_c / 100.0;
}

/* Touch sizes of 100 to 500 shares, redrawn every second. */
static void sym_draw_sizes(sim_sym *y) {
    uint64_t r = rng_next(y->rng);
    y->bid_size = 100.0 * (double)(1 + (r >> 8) % 5);
    y->ask_size = 100.0 * (double)(1 + (r >> 40) % 5);
    y->bid_avail = y->bid_size;
    y->ask_avail = y->ask_size;
}

static void sym_init(sim_sym *y, const sim_spec *spec, unsigned long long seed, size_t index) {
    uint64_t x = (uint64_t)seed ^ ((uint64_t)(index + 1) * 0xD1B54A32D192ED03ULL);
    memset(y, 0, sizeof *y);
    y->spec = spec;
    for (int k = 0; k < 4; k++)
        y->rng[k] = rng_splitmix(&x);
    y->px = spec->price;
    sym_set_mid(y, cents(spec->price));
    sym_draw_sizes(y);
}

/* One step of dt seconds: the walk's unrounded value moves, quotes round. */
static void sym_step(sim_sym *y, double dt) {
    double z = rng_normal(y->rng);
    y->px *= exp(y->spec->sigma * sqrt(dt) * z);
    if (!(y->px >= SIM_MIN_PRICE)) /* also catches NaN */
        y->px = SIM_MIN_PRICE;
    if (y->px > SIM_MAX_PRICE)
        y->px = SIM_MAX_PRICE;
    sym_set_mid(y, cents(y->px));
    sym_draw_sizes(y);
}

static void sim_quote_fill(const im_sim *s, int i, im_quote *q) {
    const sim_sym *y = &s->syms[i];
    memset(q, 0, sizeof *q);
    snprintf(q->symbol, sizeof q->symbol, "%s", y->spec->symbol);
    q->bid = (double)y->bid_c / 100.0;
    q->ask = (double)y->ask_c / 100.0;
    q->last = y->last;
    q->bid_size = y->bid_size;
    q->ask_size = y->ask_size;
    q->time = s->at;
    q->delayed = 0;
}

/* ---- the queue ---------------------------------------------------------- */

/* Returns a zeroed record (heap; free with rec_free) or NULL. */
static sim_rec *rec_new(int kind) {
    sim_rec *r = calloc(1, sizeof *r);
    if (r != NULL)
        r->kind = kind;
    return r;
}

static void rec_free(sim_rec *r) {
    free(r->msg);
    free(r->items);
    free(r);
}

/* Sets r's failure status and sentence. Without memory the sentence is
 * lost but the status still travels. */
static void rec_fail(sim_rec *r, int status, const char *fmt, ...) IM_PRINTF(3, 4);
static void rec_fail(sim_rec *r, int status, const char *fmt, ...) {
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    r->status = status;
    free(r->msg);
    r->msg = strdup(buf);
}

static void sim_kick(im_sim *s) {
    if (!s->closing && !uv_is_active((uv_handle_t *)&s->drain))
        uv_idle_start(&s->drain, sim_drain_cb);
}

/* Appends r; the queue takes ownership of it. */
static void sim_push(im_sim *s, sim_rec *r) {
    r->next = NULL;
    if (s->qtail != NULL)
        s->qtail->next = r;
    else
        s->qhead = r;
    s->qtail = r;
    sim_kick(s);
}

static sim_rec *sim_pop(im_sim *s) {
    sim_rec *r = s->qhead;
    if (r != NULL) {
        s->qhead = r->next;
        if (s->qhead == NULL)
            s->qtail = NULL;
    }
    return r;
}

/* Queues an event about o (and e for fills). Events wait in the same FIFO
 * as completions, so they follow the completion of the call that caused
 * them. */
static void sim_event(im_sim *s, int kind, const sim_order *o, const im_execution *e) {
    sim_rec *r;
    if (s->closing)
        return; /* nobody will hear it */
    r = rec_new(kind);
    if (r == NULL) {
        im_warn("sim: out of memory; dropped an event for order %s", o->info.order_id);
        return;
    }
    r->u.order = o->info;
    if (e != NULL)
        r->exec = *e;
    sim_push(s, r);
}

/* Calls r's callback once. Data pointers are NULL unless status is 0. */
static void sim_deliver(im_sim *s, sim_rec *r, int status) {
    const char *msg = status == IM_ECANCELED
                          ? "The simulator closed before this request completed."
                          : r->msg;
    int ok = status == 0;
    size_t n = ok ? r->n : 0;

    switch (r->kind) {
    case SIM_REC_QUOTE:
        r->cb.quote(r->ud, status, msg, ok ? &r->u.quote : NULL);
        break;
    case SIM_REC_ACCOUNT:
        r->cb.account(r->ud, status, msg, ok ? &r->u.account : NULL);
        break;
    case SIM_REC_POSITIONS:
        r->cb.positions(r->ud, status, msg, ok ? (const im_position *)r->items : NULL, n);
        break;
    case SIM_REC_ORDERS:
        r->cb.orders(r->ud, status, msg, ok ? (const im_order_info *)r->items : NULL, n);
        break;
    case SIM_REC_EXECS:
        r->cb.execs(r->ud, status, msg, ok ? (const im_execution *)r->items : NULL, n);
        break;
    case SIM_REC_ORDER:
        r->cb.order(r->ud, status, msg, ok ? &r->u.order : NULL);
        break;
    case SIM_REC_EV_ORDER:
    case SIM_REC_EV_FILL:
        if (ok && s->base.on_event != NULL) {
            im_broker_event ev;
            memset(&ev, 0, sizeof ev);
            ev.kind = r->kind == SIM_REC_EV_FILL ? IM_BEV_FILL : IM_BEV_ORDER;
            ev.order = &r->u.order;
            ev.exec = r->kind == SIM_REC_EV_FILL ? &r->exec : NULL;
            ev.message = r->u.order.message;
            s->base.on_event(s->base.event_ud, &ev);
        }
        break;
    default:
        break;
    }
}

/* Delivers what was queued when the drain began, oldest first; records
 * queued by those callbacks wait for the next loop iteration. Each record
 * leaves the queue before its callback runs, so it is delivered once even
 * if the callback closes the broker. */
static void sim_drain_cb(uv_idle_t *h) {
    im_sim *s = h->data;
    sim_rec *last = s->qtail;
    sim_rec *r;

    while (!s->closing && (r = sim_pop(s)) != NULL) {
        int was_last = r == last;
        sim_deliver(s, r, r->status);
        rec_free(r);
        if (was_last)
            break;
    }
    if (!s->closing && s->qhead == NULL)
        uv_idle_stop(h);
}

/* ---- storage ------------------------------------------------------------ */

/* A slot for a new order (zeroed), or NULL with *rc IM_ENOMEM or IM_ETOOBIG
 * (every slot holds a working order). When the table is full the oldest
 * finished orders go, a batch at a time so placing stays O(1) amortized. */
static sim_order *sim_order_slot(im_sim *s, int *rc) {
    sim_order *o;

    if (s->norders == SIM_MAX_ORDERS) {
        size_t w = 0, dropped = 0;
        for (size_t i = 0; i < s->norders; i++) {
            if (dropped < SIM_EVICT_BATCH && !sim_working(&s->orders[i])) {
                dropped++;
                continue;
            }
            if (w != i)
                s->orders[w] = s->orders[i];
            w++;
        }
        s->norders = w;
        if (dropped == 0) {
            *rc = IM_ETOOBIG;
            return NULL;
        }
        im_debug("sim: forgot %zu finished orders to make room", dropped);
    }
    if (s->norders == s->cap_orders) {
        size_t cap = s->cap_orders ? s->cap_orders * 2 : 64;
        sim_order *grown;
        if (cap > SIM_MAX_ORDERS)
            cap = SIM_MAX_ORDERS;
        grown = realloc(s->orders, cap * sizeof *grown);
        if (grown == NULL) {
            *rc = IM_ENOMEM;
            return NULL;
        }
        s->orders = grown;
        s->cap_orders = cap;
    }
    o = &s->orders[s->norders++];
    memset(o, 0, sizeof *o);
    return o;
}

/* A slot for a new execution, or NULL without memory. Once the ring is full
 * the oldest execution is overwritten. */
static im_execution *sim_exec_slot(im_sim *s) {
    im_execution *e;
    if (s->nexecs < SIM_MAX_EXECS) {
        if (s->nexecs == s->cap_execs) {
            size_t cap = s->cap_execs ? s->cap_execs * 2 : 64;
            im_execution *grown;
            if (cap > SIM_MAX_EXECS)
                cap = SIM_MAX_EXECS;
            grown = realloc(s->execs, cap * sizeof *grown);
            if (grown == NULL)
                return NULL;
            s->execs = grown;
            s->cap_execs = cap;
        }
        return &s->execs[s->nexecs++];
    }
    e = &s->execs[s->exec_head];
    s->exec_head = (s->exec_head + 1) % SIM_MAX_EXECS;
    return e;
}

/* ---- money reserved by working orders ----------------------------------- */

/* Cents of slippage for a market fill of qty against a touch of size:
 * one per full touch-size block beyond the first. */
static long long sim_slippage(double qty, double size) {
    if (size <= 0 || qty <= size)
        return 0;
    return (long long)floor(qty / size) - 1;
}

/* The price a market order of qty would fill at right now, in cents. */
static long long sim_market_c(const sim_sym *y, im_side side, double qty) {
    long long px;
    if (side == IM_SIDE_BUY)
        return y->ask_c + sim_slippage(qty, y->ask_size);
    px = y->bid_c - sim_slippage(qty, y->bid_size);
    return px < 1 ? 1 : px;
}

/* The worst price a working BUY can pay per share: the limit for LMT and
 * STP LMT, the stop (or the market once through it) for STP, the market
 * with slippage for MKT. */
static double sim_reserve_price(const im_sim *s, const sim_order *o) {
    const im_order *ord = &o->info.order;
    const sim_sym *y = &s->syms[o->sym];
    double mkt = (double)sim_market_c(y, IM_SIDE_BUY, o->info.remaining) / 100.0;
    switch (ord->type) {
    case IM_OT_LMT:
    case IM_OT_STP_LMT:
        return ord->limit_price;
    case IM_OT_STP:
        return ord->stop_price > mkt ? ord->stop_price : mkt;
    default:
        return mkt;
    }
}

/* Cash held back for working buys other than skip. */
static double sim_reserved(const im_sim *s, const sim_order *skip) {
    double sum = 0;
    for (size_t i = 0; i < s->norders; i++) {
        const sim_order *o = &s->orders[i];
        double px, rem = o->info.remaining;
        if (o == skip || !sim_working(o) || o->info.order.side != IM_SIDE_BUY)
            continue;
        px = sim_reserve_price(s, o);
        sum += rem * px + sim_commission(rem, px);
    }
    return sum;
}

/* Shares of sym already being sold by working sells other than skip. */
static double sim_selling(const im_sim *s, int sym, const sim_order *skip) {
    double sum = 0;
    for (size_t i = 0; i < s->norders; i++) {
        const sim_order *o = &s->orders[i];
        if (o != skip && o->sym == sym && sim_working(o) &&
            o->info.order.side == IM_SIDE_SELL)
            sum += o->info.remaining;
    }
    return sum;
}

/* The most shares of qty that o can buy at px without spending cash held
 * for other buys. Matters only when a stop gaps past its reservation or
 * when per-execution minimum commissions add up over many partial fills. */
static double sim_affordable(const im_sim *s, const sim_order *o, double qty, double px) {
    double avail = s->cash - sim_reserved(s, o);
    double q;
    if (cents(qty * px + sim_commission(qty, px)) <= cents(avail))
        return qty;
    if (avail <= 0)
        return 0;
    q = floor(avail / (px + SIM_COMM_PER_SHARE));
    if (q > qty)
        q = qty;
    /* The estimate is off by at most the $1 minimum: <= 200 shares. */
    while (q > 0 && cents(q * px + sim_commission(q, px)) > cents(avail))
        q -= 1;
    return q;
}

/* ---- order state -------------------------------------------------------- */

static void sim_order_end(im_sim *s, sim_order *o, im_order_status st) {
    if (sim_working(o) && s->nworking > 0)
        s->nworking--;
    o->info.status = st;
    o->info.updated_at = s->at;
}

static void sim_order_cancel(im_sim *s, sim_order *o, const char *fmt, ...) IM_PRINTF(3, 4);
static void sim_order_cancel(im_sim *s, sim_order *o, const char *fmt, ...) {
    va_list ap;
    sim_order_end(s, o, IM_OS_CANCELLED);
    va_start(ap, fmt);
    vsnprintf(o->info.message, sizeof o->info.message, fmt, ap);
    va_end(ap);
    sim_event(s, SIM_REC_EV_ORDER, o, NULL);
}

/* Executes qty shares of o at px: updates cash, the position, P&L and the
 * order, records the execution and raises FILL then ORDER events. */
static void sim_execute(im_sim *s, sim_order *o, double qty, double px) {
    sim_sym *y = &s->syms[o->sym];
    im_order_info *in = &o->info;
    im_execution *e;
    double comm, pnl;
    char avg[SIM_MONEY_MAX];

    e = sim_exec_slot(s);
    if (e == NULL) {
        im_warn("sim: out of memory; order %s not filled this time", in->order_id);
        return;
    }
    comm = sim_commission(qty, px);
    pnl = -comm; /* realized P&L is net of commissions, buys included */
    if (in->order.side == IM_SIDE_BUY) {
        double nq = y->qty + qty;
        y->avg_cost = (y->avg_cost * y->qty + px * qty) / nq;
        y->qty = nq;
        s->cash -= qty * px + comm;
    } else {
        pnl += (px - y->avg_cost) * qty;
        y->qty -= qty;
        if (y->qty <= 0) {
            y->qty = 0;
            y->avg_cost = 0;
        }
        s->cash += qty * px - comm;
    }
    y->realized += pnl;
    y->last = px;
    s->realized += pnl;
    s->commissions += comm;

    o->nexec++;
    o->notional += qty * px;
    in->filled += qty;
    in->remaining = in->order.quantity - in->filled;
    in->avg_fill_price = o->notional / in->filled;
    in->updated_at = s->at;
    fmt_money(in->avg_fill_price, avg, sizeof avg);
    if (in->remaining <= 0) {
        in->remaining = 0;
        sim_order_end(s, o, IM_OS_FILLED);
        snprintf(in->message, sizeof in->message, "Filled %.0f %s at avg %s.", in->filled,
                 in->order.symbol, avg);
    } else {
        in->status = IM_OS_PARTIAL;
        snprintf(in->message, sizeof in->message,
                 "Partially filled %.0f of %.0f %s at avg %s; %.0f still working.", in->filled,
                 in->order.quantity, in->order.symbol, avg, in->remaining);
    }

    memset(e, 0, sizeof *e);
    snprintf(e->exec_id, sizeof e->exec_id, "sim.%s.%u", in->order_id, o->nexec);
    snprintf(e->order_id, sizeof e->order_id, "%s", in->order_id);
    snprintf(e->symbol, sizeof e->symbol, "%s", in->order.symbol);
    e->side = in->order.side;
    e->shares = qty;
    e->price = px;
    e->commission = comm;
    e->realized_pnl = pnl;
    e->time = s->at;
    snprintf(e->order_ref, sizeof e->order_ref, "%s", in->order.order_ref);

    sim_event(s, SIM_REC_EV_FILL, o, e);
    sim_event(s, SIM_REC_EV_ORDER, o, NULL);
}

/* MKT, and STP once triggered: the whole remainder at the touch plus size
 * slippage. A buy that would spend cash held for other orders fills what
 * it can afford and the rest is cancelled. */
static void sim_fill_market(im_sim *s, sim_order *o) {
    sim_sym *y = &s->syms[o->sym];
    int buy = o->info.order.side == IM_SIDE_BUY;
    double qty = o->info.remaining;
    double px = (double)sim_market_c(y, o->info.order.side, qty) / 100.0;
    double q = buy ? sim_affordable(s, o, qty, px) : qty;
    double *avail = buy ? &y->ask_avail : &y->bid_avail;
    char pxs[SIM_MONEY_MAX];

    *avail = *avail > q ? *avail - q : 0;
    if (q > 0)
        sim_execute(s, o, q, px);
    if (q < qty && sim_working(o)) {
        fmt_money(px, pxs, sizeof pxs);
        sim_order_cancel(s, o, "Cancelled the remaining %.0f shares: not enough cash at %s.",
                         qty - q, pxs);
    }
}

/* LMT, and STP LMT once triggered: fills at the touch when it is at or
 * better than the limit, up to the liquidity left at the touch this second.
 * Prices compare in cents (limits may carry sub-cent noise). */
static void sim_fill_limit(im_sim *s, sim_order *o) {
    sim_sym *y = &s->syms[o->sym];
    const im_order *ord = &o->info.order;
    int buy = ord->side == IM_SIDE_BUY;
    double lim_c = ord->limit_price * 100.0;
    long long px_c = buy ? y->ask_c : y->bid_c;
    double *avail = buy ? &y->ask_avail : &y->bid_avail;
    double px = (double)px_c / 100.0, qty;

    if (buy ? (double)px_c > lim_c + 1e-6 : (double)px_c < lim_c - 1e-6)
        return;
    qty = o->info.remaining < *avail ? o->info.remaining : *avail;
    if (qty <= 0)
        return;
    if (buy) {
        double q = sim_affordable(s, o, qty, px);
        if (q <= 0) {
            sim_order_cancel(s, o,
                             "Cancelled: cash no longer covers the remaining %.0f shares.",
                             o->info.remaining);
            return;
        }
        qty = q;
    }
    *avail -= qty;
    sim_execute(s, o, qty, px);
}

/* Works one order against its symbol's current touch. */
static void sim_work(im_sim *s, sim_order *o) {
    const sim_sym *y = &s->syms[o->sym];
    const im_order *ord = &o->info.order;
    int is_stop = ord->type == IM_OT_STP || ord->type == IM_OT_STP_LMT;

    if (!sim_working(o))
        return;
    if (is_stop && !o->triggered) {
        double stop_c = ord->stop_price * 100.0;
        char pxs[SIM_MONEY_MAX];
        if (ord->side == IM_SIDE_BUY ? (double)y->ask_c < stop_c - 1e-6
                                     : (double)y->bid_c > stop_c + 1e-6)
            return;
        o->triggered = 1;
        fmt_money(ord->stop_price, pxs, sizeof pxs);
        snprintf(o->info.message, sizeof o->info.message, "Stop %s triggered.", pxs);
    }
    if (ord->type == IM_OT_MKT || ord->type == IM_OT_STP)
        sim_fill_market(s, o);
    else
        sim_fill_limit(s, o);
}

/* Works every working order (of one symbol when sym >= 0), oldest first. */
static void sim_process(im_sim *s, int sym) {
    if (s->nworking == 0)
        return;
    for (size_t i = 0; i < s->norders; i++) {
        sim_order *o = &s->orders[i];
        if (sim_working(o) && (sym < 0 || o->sym == sym))
            sim_work(s, o);
    }
}

/* Walks every symbol from the last synced second to the clock's, working
 * resting orders after each step; leaves s->at at the clock's time. */
static void sim_sync(im_sim *s) {
    double now = im_clock_now(s->clock);
    long long target, step;

    if (!isfinite(now) || fabs(now) > 1e15) {
        im_warn("sim: the clock reads %g; prices stay put", now);
        return;
    }
    target = (long long)floor(now);
    if (target > s->synced) {
        step = target - s->synced > SIM_MAX_STEPS
                   ? (target - s->synced + SIM_MAX_STEPS - 1) / SIM_MAX_STEPS
                   : 1;
        while (s->synced < target) {
            long long dt = target - s->synced < step ? target - s->synced : step;
            for (size_t i = 0; i < SIM_NSYMS; i++)
                sym_step(&s->syms[i], (double)dt);
            s->synced += dt;
            s->at = (double)s->synced; /* fills carry the second they happened */
            sim_process(s, -1);
        }
    }
    s->at = now;
}

/* ---- placing ------------------------------------------------------------ */

/* Field checks; 0 or IM_EINVAL with a sentence in why. */
static int sim_validate(const im_order *o, char *why, size_t n) {
    int need_lmt = o->type == IM_OT_LMT || o->type == IM_OT_STP_LMT;
    int need_stp = o->type == IM_OT_STP || o->type == IM_OT_STP_LMT;

    if (o->side != IM_SIDE_BUY && o->side != IM_SIDE_SELL) {
        snprintf(why, n, "Side must be BUY or SELL.");
        return IM_EINVAL;
    }
    if (o->type < IM_OT_MKT || o->type > IM_OT_STP_LMT) {
        snprintf(why, n, "Order type must be MKT, LMT, STP or STP LMT.");
        return IM_EINVAL;
    }
    if (o->tif < IM_TIF_DAY || o->tif > IM_TIF_IOC) {
        snprintf(why, n, "Time in force must be DAY, GTC or IOC.");
        return IM_EINVAL;
    }
    if (!isfinite(o->quantity) || o->quantity <= 0 || floor(o->quantity) != o->quantity) {
        snprintf(why, n, "Quantity must be a whole number of shares above zero, not %g.",
                 o->quantity);
        return IM_EINVAL;
    }
    if (o->quantity > SIM_MAX_QTY) {
        snprintf(why, n, "Quantity %.0f is above the simulator's limit of 100,000,000 shares.",
                 o->quantity);
        return IM_EINVAL;
    }
    if (need_lmt && (!isfinite(o->limit_price) || o->limit_price <= 0 ||
                     o->limit_price > SIM_MAX_PRICE)) {
        snprintf(why, n, "A %s order needs a limit price above zero and at most $1,000,000.",
                 im_order_type_str(o->type));
        return IM_EINVAL;
    }
    if (need_stp && (!isfinite(o->stop_price) || o->stop_price <= 0 ||
                     o->stop_price > SIM_MAX_PRICE)) {
        snprintf(why, n, "A %s order needs a stop price above zero and at most $1,000,000.",
                 im_order_type_str(o->type));
        return IM_EINVAL;
    }
    return 0;
}

/* Cash-account checks for a new order; 0 or IM_EREJECTED with why. */
static int sim_admit(const im_sim *s, const sim_order *o, char *why, size_t n) {
    const im_order *ord = &o->info.order;
    const sim_sym *y = &s->syms[o->sym];

    if (ord->side == IM_SIDE_BUY) {
        double px = sim_reserve_price(s, o);
        double need = ord->quantity * px + sim_commission(ord->quantity, px);
        double avail = s->cash - sim_reserved(s, o);
        char needs[SIM_MONEY_MAX], avails[SIM_MONEY_MAX];
        if (!isfinite(need) || cents(need) > cents(avail)) {
            fmt_money(need, needs, sizeof needs);
            fmt_money(avail, avails, sizeof avails);
            snprintf(why, n, "Insufficient cash: order needs %s, available %s.", needs, avails);
            return IM_EREJECTED;
        }
    } else {
        double free_qty = y->qty - sim_selling(s, o->sym, o);
        if (ord->quantity > free_qty) {
            snprintf(why, n,
                     "Cash account cannot sell short: order sells %.0f %s, but only %.0f are "
                     "held and not already being sold.",
                     ord->quantity, ord->symbol, free_qty > 0 ? free_qty : 0.0);
            return IM_EREJECTED;
        }
    }
    return 0;
}

/* "Unknown symbol 'XYZ'. The simulator trades: AAPL, MSFT, ...". */
static void sim_unknown_symbol(sim_rec *r, const char *symbol) {
    char list[512];
    size_t len = 0;
    for (size_t i = 0; i < SIM_NSYMS && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "",
                                sim_universe[i].symbol);
    rec_fail(r, IM_ESYMBOL, "Unknown symbol '%.32s'. The simulator trades: %s.", symbol, list);
}

static void sim_working_message(sim_order *o) {
    const im_order *ord = &o->info.order;
    char lmt[SIM_MONEY_MAX], stp[SIM_MONEY_MAX];
    fmt_money(ord->limit_price, lmt, sizeof lmt);
    fmt_money(ord->stop_price, stp, sizeof stp);
    if ((ord->type == IM_OT_STP || ord->type == IM_OT_STP_LMT) && !o->triggered)
        snprintf(o->info.message, sizeof o->info.message,
                 "Submitted; waiting for the market to reach the stop %s.", stp);
    else
        snprintf(o->info.message, sizeof o->info.message,
                 "Submitted; working at the limit %s.", lmt);
}

static int sim_place(im_broker *b, const im_order *req, im_order_cb cb, void *ud) {
    im_sim *s = (im_sim *)b;
    im_order ord;
    sim_order *o;
    sim_rec *r;
    char why[IM_MESSAGE_MAX];
    int sym, rc = 0;

    if (s == NULL || req == NULL || cb == NULL)
        return IM_EINVAL;
    if (s->closing)
        return IM_ENOTCONN;
    r = rec_new(SIM_REC_ORDER);
    if (r == NULL)
        return IM_ENOMEM;
    r->cb.order = cb;
    r->ud = ud;
    sim_sync(s);

    ord = *req; /* the caller's strings may lack their terminators */
    ord.symbol[sizeof ord.symbol - 1] = '\0';
    ord.order_ref[sizeof ord.order_ref - 1] = '\0';
    sym = sim_find_sym(ord.symbol);
    if (sym < 0) {
        sim_unknown_symbol(r, ord.symbol);
        sim_push(s, r);
        return 0;
    }
    if (sim_validate(&ord, why, sizeof why) != 0) {
        rec_fail(r, IM_EINVAL, "%s", why);
        sim_push(s, r);
        return 0;
    }
    if (ord.type != IM_OT_LMT && ord.type != IM_OT_STP_LMT)
        ord.limit_price = 0;
    if (ord.type != IM_OT_STP && ord.type != IM_OT_STP_LMT)
        ord.stop_price = 0;

    o = sim_order_slot(s, &rc);
    if (o == NULL && rc == IM_ENOMEM) {
        rec_free(r);
        return IM_ENOMEM;
    }
    if (o == NULL) {
        /* Every slot holds a working order: refuse without storing it. */
        im_order_info *in = &r->u.order;
        snprintf(in->order_id, sizeof in->order_id, "%llu", s->next_order_id++);
        in->order = ord;
        in->status = IM_OS_REJECTED;
        in->remaining = ord.quantity;
        in->submitted_at = in->updated_at = s->at;
        snprintf(in->message, sizeof in->message,
                 "Rejected: the simulator already holds %d working orders; cancel some first.",
                 SIM_MAX_ORDERS);
        sim_push(s, r);
        return 0;
    }

    o->sym = sym;
    snprintf(o->info.order_id, sizeof o->info.order_id, "%llu", s->next_order_id++);
    o->info.order = ord;
    o->info.status = IM_OS_PENDING;
    o->info.remaining = ord.quantity;
    o->info.submitted_at = o->info.updated_at = s->at;
    /* Queued first so the caller hears of the order before its events; the
     * record's snapshot is taken below, before anything is delivered. */
    sim_push(s, r);

    if (sim_admit(s, o, why, sizeof why) != 0) {
        o->info.status = IM_OS_REJECTED;
        snprintf(o->info.message, sizeof o->info.message, "%s", why);
        sim_event(s, SIM_REC_EV_ORDER, o, NULL);
    } else {
        o->info.status = IM_OS_SUBMITTED;
        s->nworking++;
        sim_working_message(o);
        sim_work(s, o);
        if (ord.tif == IM_TIF_IOC && sim_working(o)) {
            if (o->info.filled > 0)
                sim_order_cancel(s, o,
                                 "IOC: filled %.0f of %.0f; the remaining %.0f were cancelled.",
                                 o->info.filled, ord.quantity, o->info.remaining);
            else
                sim_order_cancel(s, o, "IOC order cancelled: nothing could be filled at once.");
        } else if (o->info.filled == 0 && sim_working(o)) {
            sim_event(s, SIM_REC_EV_ORDER, o, NULL);
        }
    }
    r->u.order = o->info;
    return 0;
}

/* ---- the other operations ----------------------------------------------- */

static int sim_connected(im_broker *b) {
    im_sim *s = (im_sim *)b;
    return s != NULL && !s->closing;
}

/* Common start of an operation: checks, a record, and a sync. Returns the
 * record or NULL with *rc set (the callback will then never be called). */
static sim_rec *sim_begin(im_sim *s, int kind, void *ud, int *rc) {
    sim_rec *r;
    if (s->closing) {
        *rc = IM_ENOTCONN;
        return NULL;
    }
    r = rec_new(kind);
    if (r == NULL) {
        *rc = IM_ENOMEM;
        return NULL;
    }
    r->ud = ud;
    sim_sync(s);
    return r;
}

static int sim_quote_op(im_broker *b, const char *symbol, im_quote_cb cb, void *ud) {
    im_sim *s = (im_sim *)b;
    sim_rec *r;
    int rc = 0, i;

    if (s == NULL || symbol == NULL || cb == NULL)
        return IM_EINVAL;
    if ((r = sim_begin(s, SIM_REC_QUOTE, ud, &rc)) == NULL)
        return rc;
    r->cb.quote = cb;
    i = sim_find_sym(symbol);
    if (i < 0)
        sim_unknown_symbol(r, symbol);
    else
        sim_quote_fill(s, i, &r->u.quote);
    sim_push(s, r);
    return 0;
}

static void sim_account_fill(const im_sim *s, im_account *a) {
    double value = 0, gross = 0, unreal = 0;
    memset(a, 0, sizeof *a);
    snprintf(a->account_id, sizeof a->account_id, "%s", s->account_id);
    snprintf(a->account_type, sizeof a->account_type, "CASH");
    for (size_t i = 0; i < SIM_NSYMS; i++) {
        const sim_sym *y = &s->syms[i];
        double mark = (double)y->mid_c / 100.0;
        if (y->qty == 0)
            continue;
        value += y->qty * mark;
        gross += fabs(y->qty * mark);
        unreal += (mark - y->avg_cost) * y->qty;
    }
    a->cash = s->cash;
    a->net_liquidation = s->cash + value;
    a->buying_power = s->cash - sim_reserved(s, NULL);
    a->gross_position_value = gross;
    a->realized_pnl = s->realized;
    a->unrealized_pnl = unreal;
    a->commissions = s->commissions;
}

static int sim_account_op(im_broker *b, im_account_cb cb, void *ud) {
    im_sim *s = (im_sim *)b;
    sim_rec *r;
    int rc = 0;

    if (s == NULL || cb == NULL)
        return IM_EINVAL;
    if ((r = sim_begin(s, SIM_REC_ACCOUNT, ud, &rc)) == NULL)
        return rc;
    r->cb.account = cb;
    sim_account_fill(s, &r->u.account);
    sim_push(s, r);
    return 0;
}

static int sim_positions_op(im_broker *b, im_positions_cb cb, void *ud) {
    im_sim *s = (im_sim *)b;
    im_position *p;
    sim_rec *r;
    size_t n = 0;
    int rc = 0;

    if (s == NULL || cb == NULL)
        return IM_EINVAL;
    if ((r = sim_begin(s, SIM_REC_POSITIONS, ud, &rc)) == NULL)
        return rc;
    r->cb.positions = cb;
    p = calloc(SIM_NSYMS, sizeof *p);
    if (p == NULL) {
        rec_free(r);
        return IM_ENOMEM;
    }
    for (size_t i = 0; i < SIM_NSYMS; i++) {
        const sim_sym *y = &s->syms[i];
        double mark = (double)y->mid_c / 100.0;
        if (y->qty == 0)
            continue;
        snprintf(p[n].symbol, sizeof p[n].symbol, "%s", y->spec->symbol);
        p[n].quantity = y->qty;
        p[n].avg_cost = y->avg_cost;
        p[n].market_price = mark;
        p[n].market_value = y->qty * mark;
        p[n].unrealized_pnl = (mark - y->avg_cost) * y->qty;
        p[n].realized_pnl = y->realized;
        n++;
    }
    r->items = p;
    r->n = n;
    sim_push(s, r);
    return 0;
}

static int sim_open_orders_op(im_broker *b, im_orders_cb cb, void *ud) {
    im_sim *s = (im_sim *)b;
    im_order_info *list = NULL;
    sim_rec *r;
    size_t n = 0;
    int rc = 0;

    if (s == NULL || cb == NULL)
        return IM_EINVAL;
    if ((r = sim_begin(s, SIM_REC_ORDERS, ud, &rc)) == NULL)
        return rc;
    r->cb.orders = cb;
    if (s->nworking > 0) {
        list = calloc(s->nworking, sizeof *list);
        if (list == NULL) {
            rec_free(r);
            return IM_ENOMEM;
        }
        for (size_t i = 0; i < s->norders && n < s->nworking; i++)
            if (sim_working(&s->orders[i]))
                list[n++] = s->orders[i].info;
    }
    r->items = list;
    r->n = n;
    sim_push(s, r);
    return 0;
}

static int sim_executions_op(im_broker *b, im_execs_cb cb, void *ud) {
    im_sim *s = (im_sim *)b;
    im_execution *list = NULL;
    sim_rec *r;
    int rc = 0;

    if (s == NULL || cb == NULL)
        return IM_EINVAL;
    if ((r = sim_begin(s, SIM_REC_EXECS, ud, &rc)) == NULL)
        return rc;
    r->cb.execs = cb;
    if (s->nexecs > 0) {
        list = malloc(s->nexecs * sizeof *list);
        if (list == NULL) {
            rec_free(r);
            return IM_ENOMEM;
        }
        /* Oldest first: from the ring's head (0 until it first fills). */
        for (size_t i = 0; i < s->nexecs; i++)
            list[i] = s->execs[(s->exec_head + i) % s->nexecs];
    }
    r->items = list;
    r->n = s->nexecs;
    sim_push(s, r);
    return 0;
}

static int sim_cancel_op(im_broker *b, const char *order_id, im_order_cb cb, void *ud) {
    im_sim *s = (im_sim *)b;
    sim_order *o;
    sim_rec *r;
    int rc = 0;

    if (s == NULL || order_id == NULL || cb == NULL)
        return IM_EINVAL;
    if ((r = sim_begin(s, SIM_REC_ORDER, ud, &rc)) == NULL)
        return rc;
    r->cb.order = cb;
    sim_push(s, r); /* ahead of the event below */
    o = sim_find_order(s, order_id);
    if (o == NULL) {
        rec_fail(r, IM_EORDER, "No order %.32s.", order_id);
    } else if (!sim_working(o)) {
        rec_fail(r, IM_ESTATE, "Order %s is already %s.", o->info.order_id,
                 im_order_status_str(o->info.status));
    } else {
        /* The cash reservation goes with the working status. */
        sim_order_cancel(s, o, "Cancelled by request; %.0f of %.0f filled.", o->info.filled,
                         o->info.order.quantity);
        r->u.order = o->info;
    }
    return 0;
}

/* ---- lifetime ----------------------------------------------------------- */

/* Exactly once: completions nobody heard yet hear IM_ECANCELED now;
 * events are dropped. Their callbacks may call ops, which then refuse
 * (IM_ENOTCONN) because closing is set. */
static void sim_cancel_pending(im_sim *s) {
    sim_rec *r;
    while ((r = sim_pop(s)) != NULL) {
        if (r->kind != SIM_REC_EV_ORDER && r->kind != SIM_REC_EV_FILL)
            sim_deliver(s, r, IM_ECANCELED);
        rec_free(r);
    }
}

static void sim_free(im_sim *s) {
    sim_cancel_pending(s);
    free(s->orders);
    free(s->execs);
    free(s);
}

static void sim_handle_close_cb(uv_handle_t *h) {
    im_sim *s = h->data;
    if (--s->open_handles == 0)
        sim_free(s);
}

static void sim_close_op(im_broker *b) {
    im_sim *s = (im_sim *)b;
    if (s == NULL || s->closing)
        return;
    s->closing = 1;
    /* broker.h: every pending operation is answered before close returns,
     * while the session and tools that asked are still alive. */
    sim_cancel_pending(s);
    s->open_handles = 2;
    uv_timer_stop(&s->tick);
    uv_idle_stop(&s->drain);
    uv_close((uv_handle_t *)&s->tick, sim_handle_close_cb);
    uv_close((uv_handle_t *)&s->drain, sim_handle_close_cb);
}

static void sim_tick_cb(uv_timer_t *t) {
    sim_sync(t->data);
}

static const im_broker_ops sim_ops = {
    .name = "sim",
    .connected = sim_connected,
    .quote = sim_quote_op,
    .account = sim_account_op,
    .positions = sim_positions_op,
    .open_orders = sim_open_orders_op,
    .executions = sim_executions_op,
    .place = sim_place,
    .cancel = sim_cancel_op,
    .close = sim_close_op,
};

int im_sim_new(uv_loop_t *loop, const im_sim_opts *opts, im_sim **out) {
    const char *acct;
    double cash;
    im_sim *s;

    if (loop == NULL || opts == NULL || out == NULL || opts->clock == NULL)
        return IM_EINVAL;
    cash = opts->starting_cash == 0 ? SIM_DEFAULT_CASH : opts->starting_cash;
    if (!isfinite(cash) || cash < 0 || cash > 1e12)
        return IM_EINVAL;
    acct = opts->account_id != NULL ? opts->account_id : SIM_DEFAULT_ACCOUNT;
    if (acct[0] == '\0' || strlen(acct) >= IM_ACCOUNT_MAX)
        return IM_EINVAL;

    s = calloc(1, sizeof *s);
    if (s == NULL)
        return IM_ENOMEM;
    s->base.ops = &sim_ops;
    s->loop = loop;
    s->clock = opts->clock;
    snprintf(s->account_id, sizeof s->account_id, "%s", acct);
    s->cash = cash;
    s->next_order_id = SIM_FIRST_ORDER_ID;
    for (size_t i = 0; i < SIM_NSYMS; i++)
        sym_init(&s->syms[i], &sim_universe[i], opts->seed, i);
    s->at = im_clock_now(s->clock);
    s->synced = isfinite(s->at) ? (long long)floor(s->at) : 0;

    if (uv_timer_init(loop, &s->tick) != 0) {
        free(s);
        return IM_EIO;
    }
    s->tick.data = s;
    if (uv_idle_init(loop, &s->drain) != 0) {
        /* The timer is live: it must close before s can go. */
        s->closing = 1;
        s->open_handles = 1;
        uv_close((uv_handle_t *)&s->tick, sim_handle_close_cb);
        return IM_EIO;
    }
    s->drain.data = s;
    uv_timer_start(&s->tick, sim_tick_cb, 1000, 1000);
    uv_unref((uv_handle_t *)&s->tick);
    *out = s;
    return 0;
}

im_broker *im_sim_broker(im_sim *s) { return s != NULL ? &s->base : NULL; }

/* ---- test and REPL hooks ------------------------------------------------ */

int im_sim_set_price(im_sim *s, const char *symbol, double px) {
    sim_sym *y;
    int i;

    if (s == NULL || symbol == NULL)
        return IM_EINVAL;
    i = sim_find_sym(symbol);
    if (i < 0)
        return IM_ESYMBOL;
    if (!isfinite(px) || px <= 0 || px > SIM_MAX_PRICE)
        return IM_EINVAL;
    sim_sync(s);
    y = &s->syms[i];
    sym_set_mid(y, cents(px));
    y->px = (double)y->mid_c / 100.0;
    /* A pinned price is a fresh market: full liquidity at the new touch. */
    y->bid_avail = y->bid_size;
    y->ask_avail = y->ask_size;
    sim_process(s, i);
    return 0;
}

void im_sim_sync(im_sim *s) {
    if (s != NULL)
        sim_sync(s);
}

int im_sim_fill(im_sim *s, const char *order_id) {
    sim_order *o;
    const sim_sym *y;

    if (s == NULL || order_id == NULL)
        return IM_EORDER;
    o = sim_find_order(s, order_id);
    if (o == NULL || !sim_working(o))
        return IM_EORDER;
    sim_sync(s); /* may fill or cancel it; o stays put (no order is added) */
    if (sim_working(o)) {
        y = &s->syms[o->sym];
        sim_execute(s, o, o->info.remaining,
                    (double)(o->info.order.side == IM_SIDE_BUY ? y->ask_c : y->bid_c) / 100.0);
    }
    return 0;
}

int im_sim_quote_now(im_sim *s, const char *symbol, im_quote *out) {
    int i;
    if (s == NULL || symbol == NULL || out == NULL)
        return IM_EINVAL;
    i = sim_find_sym(symbol);
    if (i < 0)
        return IM_ESYMBOL;
    sim_sync(s);
    sim_quote_fill(s, i, out);
    return 0;
}

size_t im_sim_symbol_count(const im_sim *s) {
    IM_UNUSED(s);
    return SIM_NSYMS;
}

const char *im_sim_symbol_at(const im_sim *s, size_t i) {
    IM_UNUSED(s);
    return i < SIM_NSYMS ? sim_universe[i].symbol : NULL;
}
