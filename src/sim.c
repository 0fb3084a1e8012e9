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

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "error.h"
#include "fsutil.h"
#include "jsonw.h"
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
#define SIM_MONEY_MAX 48
#define SIM_SAVE_BIG_BYTES (256 * 1024) /* up to this, every change is saved at once */
/* The text buffer is kept between saves up to this size: each save would
 * otherwise fault fresh pages in for the whole file. */
#define SIM_SAVE_KEEP_BYTES (2 * SIM_SAVE_BIG_BYTES)
#define SIM_SAVE_EVERY_MS 500             /* beyond it, at most this often */    /* "-$" + 31 grouped digits + ".nn" + NUL */

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
    /* The saved account (see "the saved account" below). */
    unsigned long long seed; /* the account's seed: the saved one wins */
    double starting_cash;    /* likewise */
    int persistent;          /* 1: this process owns and writes state_path */
    int lock_fd;             /* sim-account.lock, LOCK_EX for the sim's life; or -1 */
    int dirty;               /* an account change not yet on disk */
    uint64_t last_save_ms;   /* uv_now() of the last save */
    size_t last_save_bytes;  /* the size of the file it wrote */
    im_jw save_out;          /* the text of the last save (kept: SIM_SAVE_KEEP_BYTES) */
    char state_dir[1024];
    char state_path[1100];
    char persist_err[1400];  /* why the last save failed; "" after a good one */
};

static void sim_drain_cb(uv_idle_t *h);
static void sim_flush(im_sim *s);

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
    s->dirty = 1;
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
    s->dirty = 1;

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

static int sim_place_now(im_sim *s, const im_order *req, im_order_cb cb, void *ud) {
    im_order ord;
    sim_order *o;
    sim_rec *r;
    char why[IM_MESSAGE_MAX];
    int sym, rc = 0;

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
        s->dirty = 1; /* an id was spent: it must never come back */
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
    s->dirty = 1;
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

static int sim_place(im_broker *b, const im_order *req, im_order_cb cb, void *ud) {
    im_sim *s = (im_sim *)b;
    int rc;
    if (s == NULL || req == NULL || cb == NULL)
        return IM_EINVAL;
    rc = sim_place_now(s, req, cb, ud);
    /* On disk before anyone hears of the order: completions and events
     * are delivered from a later loop iteration. */
    sim_flush(s);
    return rc;
}

/* ---- the other operations ----------------------------------------------- */

static int sim_connected(im_broker *b) {
    im_sim *s = (im_sim *)b;
    return s != NULL && !s->closing;
}

static void sim_info(im_broker *b, im_broker_info *out) {
    im_sim *s = (im_sim *)b;
    memset(out, 0, sizeof *out);
    out->state = s->closing ? "disconnected" : "connected";
    out->host = "";
    out->account_id = s->account_id;
    out->last_error = im_sim_persist_error(s) ? im_sim_persist_error(s) : "";
    out->account_file = im_sim_state_path(s);
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
    sim_flush(s); /* the sync may have filled resting orders */
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
    sim_flush(s); /* the sync may have filled resting orders */
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
    sim_flush(s); /* the sync may have filled resting orders */
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
    sim_flush(s); /* the sync may have filled resting orders */
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
    sim_flush(s); /* the sync may have filled resting orders */
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
    sim_flush(s); /* the cancel, and whatever the sync filled */
    return 0;
}

/* ---- the saved account -------------------------------------------------- */

/* With a state directory the account lives in STATE/sim-account.json, so a
 * restarted `serve` continues it: cash, P&L, commissions, every symbol's
 * position and price state (the unrounded walk value, the touch and the
 * RNG), working orders with everything that keeps them working, today's
 * finished orders and executions, and the next order id (an id is never
 * handed out twice).
 *
 * When it is written: after every operation that changed the account (an
 * order placed, rejected, filled, cancelled: the `dirty` flag, flushed at
 * the end of the call or timer tick that set it, before any callback can
 * run), and at close. The one-second walk alone never writes; its prices
 * reach the file with the next account change or the close. A failed write
 * is logged and retried on the next call or tick; im_sim_persist_error()
 * says why. Each write is a temporary file, fsync, rename over the old one
 * and an fsync of the directory, so a crash leaves the old file or the new
 * one, never a mixture. Like the journal's, the fsync blocks the loop
 * briefly; it happens once per account change, not per second.
 *
 * Who writes: the process that holds an exclusive flock on
 * STATE/sim-account.lock, taken without waiting at start and kept until
 * close. A second server on the same directory (Claude Desktop and Claude
 * Code each start one) does not get it: its simulator runs a fresh account
 * in memory only, says so in a warning, and im_sim_persistent() is 0.
 *
 * The clock: every process's clock starts at IBKR_SIM_START, so the saved
 * instant is usually later than the new clock. The rule: the saved prices
 * and RNG state are taken as the market at the new clock's instant, and the
 * walk resumes from there; the gap between the two instants, forwards or
 * backwards, is never walked. So a restart continues the same price path
 * with the same draws, and restored orders and executions keep their
 * original times (which may lie after the new clock's). Executions and
 * finished orders of New York days before the new clock's day are dropped
 * on load; working orders always stay.
 *
 * The saved seed and starting cash belong to the account: when
 * IBKR_SIM_SEED or IBKR_SIM_CASH now say otherwise, the saved account still
 * wins (with a warning); IBKR_SIM_RESET=true discards it. A file that
 * cannot be read or does not validate stops the start with a sentence that
 * names it: starting afresh would silently forget working orders. */

#define SIM_STATE_FILE "sim-account.json"
#define SIM_STATE_TMP "sim-account.json.tmp"
#define SIM_LOCK_FILE "sim-account.lock"
#define SIM_STATE_FORMAT "ibkr-mcp sim account"
#define SIM_STATE_VERSION 1
/* A full order table and execution ring take about 8 MB. */
#define SIM_STATE_MAX (64L << 20)
#define SIM_MONEY_LIMIT 1e15  /* any cash or P&L figure beyond this is corrupt */
#define SIM_TIME_LIMIT 4e10   /* epoch seconds, as clock.c bounds them */

/* Start of the New York calendar day of t; -inf when the zone cannot tell
 * (then nothing is dropped). On the two DST changeover days it is off by
 * the hour for times before 3 a.m., which no trading reaches. */
static double sim_day_start(double t) {
    int sod, wd;
    if (im_clock_ny_seconds_of_day(t, &sod, &wd) != 0)
        return -INFINITY;
    return floor(t) - sod;
}

/* The account file is written straight into one buffer (jsonw), member by
 * member: building it as a cJSON tree first cost more than the fsyncs on a
 * busy day, since the file grows with the day's executions and is
 * rewritten on every change. Numbers are written in digits that read back
 * exactly (jsonw.h); cJSON's own printer settles for 15 digits when its
 * relative-epsilon test calls them equal, which would move the unrounded
 * walk by an ulp and break determinism across a restart. */
typedef struct sim_out {
    im_jw w;
    int first;   /* no member yet in the current object */
    int bad;     /* a non-finite figure: the save is refused */
} sim_out;

/* Keys are this file's own short names: nothing to escape, one append. */
static void js_key(sim_out *o, const char *key) {
    char buf[48];
    size_t n = strlen(key), at = o->first ? 0 : 1;
    if (n > sizeof buf - 4) {
        o->bad = 1;
        return;
    }
    buf[0] = ',';
    buf[at] = '"';
    memcpy(buf + at + 1, key, n);
    memcpy(buf + at + 1 + n, "\":", 2);
    im_jw_raw(&o->w, buf, at + n + 3);
    o->first = 0;
}

static void js_open(sim_out *o, const char *key, const char *bracket) {
    if (key != NULL)
        js_key(o, key);
    else if (!o->first)
        im_jw_raw(&o->w, ",", 1);
    im_jw_raw(&o->w, bracket, 1);
    o->first = 1;
}

static void js_close(sim_out *o, const char *bracket) {
    im_jw_raw(&o->w, bracket, 1);
    o->first = 0;
}

/* Money arithmetic refuses non-finite values: such a figure fails the save. */
static void js_num(sim_out *o, const char *key, double v) {
    if (!isfinite(v)) {
        o->bad = 1;
        return;
    }
    js_key(o, key);
    im_jw_num(&o->w, v);
}

static void js_str(sim_out *o, const char *key, const char *v) {
    js_key(o, key);
    im_jw_str(&o->w, v, strlen(v));
}

static void js_order(sim_out *out, const sim_order *o) {
    const im_order_info *in = &o->info;
    js_open(out, NULL, "{");
    js_str(out, "id", in->order_id);
    js_str(out, "symbol", in->order.symbol);
    js_str(out, "side", im_side_str(in->order.side));
    js_num(out, "quantity", in->order.quantity);
    js_str(out, "type", im_order_type_str(in->order.type));
    js_num(out, "limit_price", in->order.limit_price);
    js_num(out, "stop_price", in->order.stop_price);
    js_str(out, "tif", im_tif_str(in->order.tif));
    js_str(out, "order_ref", in->order.order_ref);
    js_str(out, "status", im_order_status_str(in->status));
    js_num(out, "filled", in->filled);
    js_num(out, "remaining", in->remaining);
    js_num(out, "avg_fill_price", in->avg_fill_price);
    js_num(out, "submitted_at", in->submitted_at);
    js_num(out, "updated_at", in->updated_at);
    js_str(out, "message", in->message);
    js_key(out, "triggered");
    im_jw_lit(&out->w, o->triggered ? "true" : "false");
    js_num(out, "nexec", (double)o->nexec);
    js_num(out, "notional", o->notional);
    js_close(out, "}");
}

static void js_exec(sim_out *out, const im_execution *e) {
    js_open(out, NULL, "{");
    js_str(out, "exec_id", e->exec_id);
    js_str(out, "order_id", e->order_id);
    js_str(out, "symbol", e->symbol);
    js_str(out, "side", im_side_str(e->side));
    js_num(out, "shares", e->shares);
    js_num(out, "price", e->price);
    js_num(out, "commission", e->commission);
    js_num(out, "realized_pnl", e->realized_pnl);
    js_num(out, "time", e->time);
    js_str(out, "order_ref", e->order_ref);
    js_close(out, "}");
}

static void js_sym(sim_out *out, const sim_sym *y) {
    char hex[17];
    js_open(out, NULL, "{");
    js_str(out, "symbol", y->spec->symbol);
    js_num(out, "px", y->px);
    js_num(out, "last", y->last);
    js_num(out, "bid_size", y->bid_size);
    js_num(out, "ask_size", y->ask_size);
    js_num(out, "bid_avail", y->bid_avail);
    js_num(out, "ask_avail", y->ask_avail);
    /* 64-bit words do not survive a JSON number (a double): hex text. */
    js_open(out, "rng", "[");
    for (int k = 0; k < 4; k++) {
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)y->rng[k]);
        if (k > 0)
            im_jw_raw(&out->w, ",", 1);
        im_jw_str(&out->w, hex, 16);
    }
    js_close(out, "]");
    js_num(out, "qty", y->qty);
    js_num(out, "avg_cost", y->avg_cost);
    js_num(out, "realized", y->realized);
    js_close(out, "}");
}

/* The account's text, written into w (emptied first). Returns 0, or -1
 * without memory or when a figure is not finite. */
static int sim_state_text(const im_sim *s, im_jw *w) {
    sim_out out;
    double today = sim_day_start((double)s->synced);
    char seed[24], when[32];

    memset(&out, 0, sizeof out);
    out.first = 1;
    out.w = *w;
    im_jw_reset_keep(&out.w, SIM_SAVE_KEEP_BYTES);
    snprintf(seed, sizeof seed, "%llu", s->seed);
    im_clock_format_utc((double)s->synced, when, sizeof when);
    js_open(&out, NULL, "{");
    js_str(&out, "format", SIM_STATE_FORMAT);
    js_num(&out, "version", SIM_STATE_VERSION);
    js_str(&out, "seed", seed); /* text: a u64 does not fit a double */
    js_num(&out, "starting_cash", s->starting_cash);
    js_str(&out, "account_id", s->account_id);
    js_num(&out, "clock", (double)s->synced);
    js_str(&out, "clock_utc", when);
    js_num(&out, "cash", s->cash);
    js_num(&out, "realized", s->realized);
    js_num(&out, "commissions", s->commissions);
    js_num(&out, "next_order_id", (double)s->next_order_id);
    js_open(&out, "symbols", "[");
    for (size_t i = 0; i < SIM_NSYMS; i++)
        js_sym(&out, &s->syms[i]);
    js_close(&out, "]");
    /* Working orders always; finished ones of today, so a cancel of one
     * still says "already FILLED" rather than "no order" after a restart. */
    js_open(&out, "orders", "[");
    for (size_t i = 0; i < s->norders; i++) {
        const sim_order *o = &s->orders[i];
        if (sim_working(o) || o->info.updated_at >= today)
            js_order(&out, o);
    }
    js_close(&out, "]");
    js_open(&out, "executions", "[");
    for (size_t i = 0; i < s->nexecs; i++) {
        const im_execution *e = &s->execs[(s->exec_head + i) % s->nexecs];
        if (e->time >= today)
            js_exec(&out, e);
    }
    js_close(&out, "]");
    js_close(&out, "}");
    *w = out.w;
    return out.bad || w->oom ? -1 : 0;
}

/* fsync of the directory, so the rename itself is durable. */
static int sim_sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;
    if (fd == -1)
        return -1;
    rc = fsync(fd);
    if (rc == -1) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    return 0;
}

static void sim_persist_fail(im_sim *s, const char *fmt, ...) IM_PRINTF(2, 3);
static void sim_persist_fail(im_sim *s, const char *fmt, ...) {
    char buf[sizeof s->persist_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    /* Once per failing streak: the retry on every tick must not flood. */
    if (s->persist_err[0] == '\0')
        im_error("sim: %s; the account lives on in memory and the save is retried on the "
                 "next change", buf);
    memcpy(s->persist_err, buf, sizeof buf);
}

/* Writes the account now (the caller holds the lock: it is persistent).
 * Returns 0, IM_ENOMEM or IM_EIO; on failure dirty stays set. */
static int sim_save(im_sim *s) {
    char tmp[sizeof s->state_path + 8];
    const char *text;
    size_t len;
    int fd, rc = IM_EIO;

    if (sim_state_text(s, &s->save_out) != 0) {
        sim_persist_fail(s, "cannot save the account to %s: out of memory or a non-finite "
                         "figure", s->state_path);
        return IM_ENOMEM;
    }
    text = s->save_out.buf;
    len = s->save_out.len;
    snprintf(tmp, sizeof tmp, "%s/" SIM_STATE_TMP, s->state_dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1) {
        sim_persist_fail(s, "cannot save the account: %s: %s", tmp, strerror(errno));
        goto out;
    }
    /* A leftover temporary file from a crash may carry another mode. */
    s->last_save_bytes = len + 1;
    if (fchmod(fd, 0600) == -1 || im_fs_write_all(fd, text, len) == -1 ||
        im_fs_write_all(fd, "\n", 1) == -1 || fsync(fd) == -1) {
        sim_persist_fail(s, "cannot save the account: %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) == -1 || rename(tmp, s->state_path) == -1) {
        sim_persist_fail(s, "cannot save the account to %s: %s", s->state_path,
                         strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (sim_sync_dir(s->state_dir) == -1) {
        /* The new file is in place; only its durability is in doubt. */
        sim_persist_fail(s, "saved the account to %s but cannot fsync %s: %s", s->state_path,
                         s->state_dir, strerror(errno));
        goto out;
    }
    if (s->persist_err[0] != '\0')
        im_info("sim: the account is saved to %s again", s->state_path);
    s->persist_err[0] = '\0';
    s->dirty = 0;
    rc = 0;
out:
    return rc;
}

/* Saves a changed account. A save rewrites the whole file, which grows
 * with the day's executions. Up to SIM_SAVE_BIG_BYTES every change is on
 * disk before anyone hears of it. A larger file (a busy day: hundreds of
 * orders) is rewritten at most once per SIM_SAVE_EVERY_MS (the 1 s tick
 * flushes too), so saving stays a small part of the loop; a crash then
 * loses at most that last interval of the simulator, never the journal.
 * The rule is by size, not by measured time, so it behaves the same in
 * every build. */
static void sim_flush(im_sim *s) {
    if (!s->persistent || !s->dirty || s->closing)
        return;
    if (s->last_save_bytes > SIM_SAVE_BIG_BYTES &&
        uv_now(s->loop) - s->last_save_ms < SIM_SAVE_EVERY_MS)
        return;
    sim_save(s);
    s->last_save_ms = uv_now(s->loop);
}

/* ---- loading: every field checked, errors name the field ---------------- */

typedef struct sim_ld {
    char err[640];
} sim_ld;

static int ld_fail(sim_ld *l, const char *fmt, ...) IM_PRINTF(2, 3);
static int ld_fail(sim_ld *l, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->err, sizeof l->err, fmt, ap);
    va_end(ap);
    return IM_EPARSE;
}

/* A number in [lo, hi] at o.key; ctx names o in messages. */
static int ld_num(sim_ld *l, const cJSON *o, const char *ctx, const char *key, double lo,
                  double hi, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (v == NULL)
        return ld_fail(l, "%s%s is missing", ctx, key);
    if (!cJSON_IsNumber(v))
        return ld_fail(l, "%s%s is not a number", ctx, key);
    if (!isfinite(v->valuedouble))
        return ld_fail(l, "%s%s is not a finite number", ctx, key);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return ld_fail(l, "%s%s is %.17g, outside %g to %g", ctx, key, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return 0;
}

/* A whole number in [lo, hi]. */
static int ld_whole(sim_ld *l, const cJSON *o, const char *ctx, const char *key, double lo,
                    double hi, double *out) {
    int rc = ld_num(l, o, ctx, key, lo, hi, out);
    if (rc == 0 && floor(*out) != *out)
        return ld_fail(l, "%s%s is %.17g, not a whole number", ctx, key, *out);
    return rc;
}

/* A string shorter than size bytes, copied into out. */
static int ld_str(sim_ld *l, const cJSON *o, const char *ctx, const char *key, char *out,
                  size_t size) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (v == NULL)
        return ld_fail(l, "%s%s is missing", ctx, key);
    if (!cJSON_IsString(v))
        return ld_fail(l, "%s%s is not a string", ctx, key);
    if (strlen(v->valuestring) >= size)
        return ld_fail(l, "%s%s is longer than %zu characters", ctx, key, size - 1);
    memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

static int ld_sym(sim_ld *l, const cJSON *o, const char *ctx, const char *key, int *sym) {
    char name[IM_SYMBOL_MAX];
    int rc = ld_str(l, o, ctx, key, name, sizeof name);
    if (rc != 0)
        return rc;
    *sym = sim_find_sym(name);
    if (*sym < 0)
        return ld_fail(l, "%s%s '%s' is not a symbol the simulator trades", ctx, key, name);
    return 0;
}

static int ld_side(sim_ld *l, const cJSON *o, const char *ctx, im_side *out) {
    char v[16];
    int rc = ld_str(l, o, ctx, "side", v, sizeof v);
    if (rc == 0 && im_side_parse(v, out) != 0)
        return ld_fail(l, "%sside '%s' is not BUY or SELL", ctx, v);
    return rc;
}

static int ld_status(sim_ld *l, const cJSON *o, const char *ctx, im_order_status *out) {
    char v[24];
    int rc = ld_str(l, o, ctx, "status", v, sizeof v);
    if (rc != 0)
        return rc;
    for (int st = IM_OS_PENDING; st <= IM_OS_REJECTED; st++) {
        if (strcmp(v, im_order_status_str((im_order_status)st)) == 0) {
            *out = (im_order_status)st;
            return 0;
        }
    }
    return ld_fail(l, "%sstatus '%s' is not an order status", ctx, v);
}

/* The array at root.key with at most max items (NULL key content is an
 * error). */
static int ld_array(sim_ld *l, const cJSON *root, const char *key, size_t max,
                    const cJSON **out, size_t *n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key);
    int count;
    if (a == NULL)
        return ld_fail(l, "%s is missing", key);
    if (!cJSON_IsArray(a))
        return ld_fail(l, "%s is not an array", key);
    count = cJSON_GetArraySize(a);
    if (count < 0 || (size_t)count > max)
        return ld_fail(l, "%s holds %d items, more than the %zu the simulator keeps", key,
                       count, max);
    *out = a;
    *n = (size_t)count;
    return 0;
}

/* Digits only, no sign or space: the way the sim writes ids and seeds. */
static int ld_u64(const char *t, unsigned long long *out) {
    char *end;
    if (t[0] < '0' || t[0] > '9' || strlen(t) > 20)
        return -1;
    errno = 0;
    *out = strtoull(t, &end, 10);
    return errno != 0 || *end != '\0' ? -1 : 0;
}

static int ld_symbol_entry(sim_ld *l, im_sim *s, const cJSON *j, size_t idx, int *seen) {
    char ctx[48];
    double v[4], last;
    const cJSON *rng, *w;
    sim_sym *y;
    int sym, rc;

    snprintf(ctx, sizeof ctx, "symbols[%zu].", idx);
    if (!cJSON_IsObject(j))
        return ld_fail(l, "symbols[%zu] is not an object", idx);
    if ((rc = ld_sym(l, j, ctx, "symbol", &sym)) != 0)
        return rc;
    if (seen[sym])
        return ld_fail(l, "%ssymbol %s appears twice", ctx, sim_universe[sym].symbol);
    seen[sym] = 1;
    y = &s->syms[sym];
    if ((rc = ld_num(l, j, ctx, "px", 0.01, SIM_MAX_PRICE, &y->px)) != 0 ||
        (rc = ld_num(l, j, ctx, "last", 0.01, 10 * SIM_MAX_PRICE, &last)) != 0 ||
        (rc = ld_whole(l, j, ctx, "bid_size", 0, 1e9, &v[0])) != 0 ||
        (rc = ld_whole(l, j, ctx, "ask_size", 0, 1e9, &v[1])) != 0 ||
        (rc = ld_num(l, j, ctx, "bid_avail", 0, v[0], &v[2])) != 0 ||
        (rc = ld_num(l, j, ctx, "ask_avail", 0, v[1], &v[3])) != 0 ||
        (rc = ld_whole(l, j, ctx, "qty", 0, 1e12, &y->qty)) != 0 ||
        (rc = ld_num(l, j, ctx, "avg_cost", 0, 10 * SIM_MAX_PRICE, &y->avg_cost)) != 0 ||
        (rc = ld_num(l, j, ctx, "realized", -SIM_MONEY_LIMIT, SIM_MONEY_LIMIT,
                     &y->realized)) != 0)
        return rc;
    y->bid_size = v[0];
    y->ask_size = v[1];
    y->bid_avail = v[2];
    y->ask_avail = v[3];
    if (y->qty == 0)
        y->avg_cost = 0;
    rng = cJSON_GetObjectItemCaseSensitive(j, "rng");
    if (!cJSON_IsArray(rng) || cJSON_GetArraySize(rng) != 4)
        return ld_fail(l, "%srng is not an array of 4 hex strings", ctx);
    for (int k = 0; k < 4; k++) {
        unsigned long long word;
        char *end;
        w = cJSON_GetArrayItem(rng, k);
        if (!cJSON_IsString(w) || strlen(w->valuestring) != 16)
            return ld_fail(l, "%srng[%d] is not 16 hex digits", ctx, k);
        errno = 0;
        word = strtoull(w->valuestring, &end, 16);
        if (errno != 0 || *end != '\0' || w->valuestring[0] == '-' || w->valuestring[0] == '+' ||
            w->valuestring[0] == ' ')
            return ld_fail(l, "%srng[%d] is not 16 hex digits", ctx, k);
        y->rng[k] = (uint64_t)word;
    }
    if ((y->rng[0] | y->rng[1] | y->rng[2] | y->rng[3]) == 0)
        return ld_fail(l, "%srng is all zeros (a stuck generator)", ctx);
    /* Quotes follow from the walk value, as after every step; the last
     * trade price is its own (a fill sets it). */
    sym_set_mid(y, cents(y->px));
    y->last = last;
    return 0;
}

static int ld_order_entry(sim_ld *l, im_sim *s, const cJSON *j, size_t idx,
                          unsigned long long *prev_id) {
    sim_order *o = &s->orders[s->norders];
    im_order_info *in = &o->info;
    im_order *ord = &in->order;
    char ctx[48], t[24], why[IM_MESSAGE_MAX];
    const cJSON *trig;
    unsigned long long id;
    double nexec;
    int rc;

    memset(o, 0, sizeof *o);
    snprintf(ctx, sizeof ctx, "orders[%zu].", idx);
    if (!cJSON_IsObject(j))
        return ld_fail(l, "orders[%zu] is not an object", idx);
    if ((rc = ld_str(l, j, ctx, "id", in->order_id, sizeof in->order_id)) != 0)
        return rc;
    if (ld_u64(in->order_id, &id) != 0)
        return ld_fail(l, "%sid '%s' is not an order number", ctx, in->order_id);
    if (id <= *prev_id)
        return ld_fail(l, "%sid %llu does not follow %llu (ids only increase)", ctx, id,
                       *prev_id);
    if (id >= s->next_order_id)
        return ld_fail(l, "%sid %llu is not below next_order_id %llu", ctx, id,
                       s->next_order_id);
    *prev_id = id;
    if ((rc = ld_sym(l, j, ctx, "symbol", &o->sym)) != 0)
        return rc;
    snprintf(ord->symbol, sizeof ord->symbol, "%s", sim_universe[o->sym].symbol);
    if ((rc = ld_side(l, j, ctx, &ord->side)) != 0)
        return rc;
    if ((rc = ld_str(l, j, ctx, "type", t, sizeof t)) != 0)
        return rc;
    if (im_order_type_parse(t, &ord->type) != 0)
        return ld_fail(l, "%stype '%s' is not MKT, LMT, STP or STP LMT", ctx, t);
    if ((rc = ld_str(l, j, ctx, "tif", t, sizeof t)) != 0)
        return rc;
    if (im_tif_parse(t, &ord->tif) != 0)
        return ld_fail(l, "%stif '%s' is not DAY, GTC or IOC", ctx, t);
    if ((rc = ld_whole(l, j, ctx, "quantity", 1, SIM_MAX_QTY, &ord->quantity)) != 0 ||
        (rc = ld_num(l, j, ctx, "limit_price", 0, SIM_MAX_PRICE, &ord->limit_price)) != 0 ||
        (rc = ld_num(l, j, ctx, "stop_price", 0, SIM_MAX_PRICE, &ord->stop_price)) != 0 ||
        (rc = ld_str(l, j, ctx, "order_ref", ord->order_ref, sizeof ord->order_ref)) != 0)
        return rc;
    if (sim_validate(ord, why, sizeof why) != 0)
        return ld_fail(l, "orders[%zu]: %s", idx, why);
    /* As sim_place stores them: prices that do not apply are zero. */
    if (ord->type != IM_OT_LMT && ord->type != IM_OT_STP_LMT && ord->limit_price != 0)
        return ld_fail(l, "%slimit_price must be 0 for a %s order", ctx,
                       im_order_type_str(ord->type));
    if (ord->type != IM_OT_STP && ord->type != IM_OT_STP_LMT && ord->stop_price != 0)
        return ld_fail(l, "%sstop_price must be 0 for a %s order", ctx,
                       im_order_type_str(ord->type));
    if ((rc = ld_status(l, j, ctx, &in->status)) != 0 ||
        (rc = ld_whole(l, j, ctx, "filled", 0, ord->quantity, &in->filled)) != 0 ||
        (rc = ld_whole(l, j, ctx, "remaining", 0, ord->quantity, &in->remaining)) != 0 ||
        (rc = ld_num(l, j, ctx, "avg_fill_price", 0, 10 * SIM_MAX_PRICE,
                     &in->avg_fill_price)) != 0 ||
        (rc = ld_num(l, j, ctx, "submitted_at", 0, SIM_TIME_LIMIT, &in->submitted_at)) != 0 ||
        (rc = ld_num(l, j, ctx, "updated_at", 0, SIM_TIME_LIMIT, &in->updated_at)) != 0 ||
        (rc = ld_str(l, j, ctx, "message", in->message, sizeof in->message)) != 0 ||
        (rc = ld_whole(l, j, ctx, "nexec", 0, 4e9, &nexec)) != 0 ||
        (rc = ld_num(l, j, ctx, "notional", 0, SIM_MONEY_LIMIT, &o->notional)) != 0)
        return rc;
    if (in->remaining != ord->quantity - in->filled)
        return ld_fail(l, "%sremaining %.0f is not quantity %.0f less filled %.0f", ctx,
                       in->remaining, ord->quantity, in->filled);
    if (sim_working(o) && in->remaining <= 0)
        return ld_fail(l, "%sstatus %s with nothing remaining", ctx,
                       im_order_status_str(in->status));
    if (in->filled > 0 && nexec < 1)
        return ld_fail(l, "%sfilled %.0f with no executions", ctx, in->filled);
    o->nexec = (unsigned)nexec;
    trig = cJSON_GetObjectItemCaseSensitive(j, "triggered");
    if (!cJSON_IsBool(trig))
        return ld_fail(l, "%striggered is not true or false", ctx);
    o->triggered = cJSON_IsTrue(trig);
    return 0;
}

static int ld_exec_entry(sim_ld *l, const cJSON *j, size_t idx, im_execution *e) {
    char ctx[48];
    int sym, rc;

    memset(e, 0, sizeof *e);
    snprintf(ctx, sizeof ctx, "executions[%zu].", idx);
    if (!cJSON_IsObject(j))
        return ld_fail(l, "executions[%zu] is not an object", idx);
    if ((rc = ld_str(l, j, ctx, "exec_id", e->exec_id, sizeof e->exec_id)) != 0 ||
        (rc = ld_str(l, j, ctx, "order_id", e->order_id, sizeof e->order_id)) != 0 ||
        (rc = ld_sym(l, j, ctx, "symbol", &sym)) != 0 ||
        (rc = ld_side(l, j, ctx, &e->side)) != 0 ||
        (rc = ld_whole(l, j, ctx, "shares", 1, SIM_MAX_QTY, &e->shares)) != 0 ||
        (rc = ld_num(l, j, ctx, "price", 0.01, 10 * SIM_MAX_PRICE, &e->price)) != 0 ||
        (rc = ld_num(l, j, ctx, "commission", 0, SIM_MONEY_LIMIT, &e->commission)) != 0 ||
        (rc = ld_num(l, j, ctx, "realized_pnl", -SIM_MONEY_LIMIT, SIM_MONEY_LIMIT,
                     &e->realized_pnl)) != 0 ||
        (rc = ld_num(l, j, ctx, "time", 0, SIM_TIME_LIMIT, &e->time)) != 0 ||
        (rc = ld_str(l, j, ctx, "order_ref", e->order_ref, sizeof e->order_ref)) != 0)
        return rc;
    if (e->exec_id[0] == '\0' || e->order_id[0] == '\0')
        return ld_fail(l, "%sexec_id and order_id must not be empty", ctx);
    snprintf(e->symbol, sizeof e->symbol, "%s", sim_universe[sym].symbol);
    return 0;
}

/* Applies a parsed account to s (fresh from im_sim_new, seeded with the
 * configured seed). Returns 0 or IM_EPARSE / IM_ENOMEM with l->err set; on
 * failure s is half-loaded and must be thrown away. */
static int sim_load_json(im_sim *s, const cJSON *root, sim_ld *l) {
    const cJSON *v, *syms, *ords, *exs, *j;
    int seen[SIM_NSYMS] = {0};
    unsigned long long seed, prev_id = 0;
    double num, saved_clock, today;
    size_t nsyms, nords, nexs, i;
    char text[IM_ACCOUNT_MAX];
    int rc;

    if (!cJSON_IsObject(root))
        return ld_fail(l, "the file is not a JSON object");
    v = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, SIM_STATE_FORMAT) != 0)
        return ld_fail(l, "format is not \"" SIM_STATE_FORMAT "\"");
    if ((rc = ld_whole(l, root, "", "version", 0, 1e6, &num)) != 0)
        return rc;
    if (num != SIM_STATE_VERSION)
        return ld_fail(l, "version %.0f is not %d, the one this build reads", num,
                       SIM_STATE_VERSION);
    if ((rc = ld_str(l, root, "", "seed", text, sizeof text)) != 0)
        return rc;
    if (ld_u64(text, &seed) != 0)
        return ld_fail(l, "seed '%s' is not a whole number", text);
    if ((rc = ld_num(l, root, "", "starting_cash", 0, 1e12, &num)) != 0)
        return rc;
    if (seed != s->seed)
        im_warn("sim: IBKR_SIM_SEED is %llu but the saved account in %s was started with seed "
                "%llu; the saved account wins (IBKR_SIM_RESET=true starts afresh)",
                s->seed, s->state_path, seed);
    if (num != s->starting_cash)
        im_warn("sim: IBKR_SIM_CASH is %.2f but the saved account in %s started with %.2f; "
                "the saved account wins (IBKR_SIM_RESET=true starts afresh)",
                s->starting_cash, s->state_path, num);
    s->starting_cash = num;
    if (seed != s->seed) {
        /* Symbols the file leaves out start where the account's seed puts them. */
        s->seed = seed;
        for (i = 0; i < SIM_NSYMS; i++)
            sym_init(&s->syms[i], &sim_universe[i], seed, i);
    }
    if ((rc = ld_whole(l, root, "", "clock", 0, SIM_TIME_LIMIT, &saved_clock)) != 0 ||
        (rc = ld_num(l, root, "", "cash", -SIM_MONEY_LIMIT, SIM_MONEY_LIMIT, &s->cash)) != 0 ||
        (rc = ld_num(l, root, "", "realized", -SIM_MONEY_LIMIT, SIM_MONEY_LIMIT,
                     &s->realized)) != 0 ||
        (rc = ld_num(l, root, "", "commissions", 0, SIM_MONEY_LIMIT, &s->commissions)) != 0 ||
        (rc = ld_whole(l, root, "", "next_order_id", (double)SIM_FIRST_ORDER_ID, 9e15,
                       &num)) != 0)
        return rc;
    s->next_order_id = (unsigned long long)num;

    if ((rc = ld_array(l, root, "symbols", SIM_NSYMS, &syms, &nsyms)) != 0)
        return rc;
    i = 0;
    cJSON_ArrayForEach(j, syms) {
        if ((rc = ld_symbol_entry(l, s, j, i++, seen)) != 0)
            return rc;
    }
    for (i = 0; i < SIM_NSYMS; i++)
        if (!seen[i])
            im_info("sim: %s is not in the saved account; it starts at its seed price",
                    sim_universe[i].symbol);

    /* "Today" is the new clock's New York day (see the clock rule above). */
    today = sim_day_start(s->at);
    if ((rc = ld_array(l, root, "orders", SIM_MAX_ORDERS, &ords, &nords)) != 0)
        return rc;
    if (nords > 0) {
        s->orders = calloc(nords, sizeof *s->orders);
        if (s->orders == NULL)
            return IM_ENOMEM;
        s->cap_orders = nords;
    }
    i = 0;
    cJSON_ArrayForEach(j, ords) {
        sim_order *o = &s->orders[s->norders];
        if ((rc = ld_order_entry(l, s, j, i++, &prev_id)) != 0)
            return rc;
        if (sim_working(o))
            s->nworking++;
        else if (o->info.updated_at < today)
            continue; /* finished on an earlier day: dropped */
        s->norders++;
    }

    if ((rc = ld_array(l, root, "executions", SIM_MAX_EXECS, &exs, &nexs)) != 0)
        return rc;
    if (nexs > 0) {
        s->execs = calloc(nexs, sizeof *s->execs);
        if (s->execs == NULL)
            return IM_ENOMEM;
        s->cap_execs = nexs;
    }
    i = 0;
    cJSON_ArrayForEach(j, exs) {
        im_execution *e = &s->execs[s->nexecs];
        if ((rc = ld_exec_entry(l, j, i++, e)) != 0)
            return rc;
        if (e->time >= today)
            s->nexecs++;
    }
    im_debug("sim: the saved account was at %.0f; prices resume from it at %.0f",
             saved_clock, s->at);
    return 0;
}

/* Reads and applies STATE/sim-account.json. Returns 0, IM_ENOENT when there
 * is no file, or IM_EIO / IM_ETOOBIG / IM_EPARSE / IM_ENOMEM with why set. */
static int sim_load(im_sim *s, char *why, size_t whylen) {
    struct stat st;
    cJSON *root;
    sim_ld l;
    char *buf;
    size_t got = 0;
    int fd, rc;

    fd = open(s->state_path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        if (errno == ENOENT)
            return IM_ENOENT;
        snprintf(why, whylen, "it cannot be opened: %s", strerror(errno));
        return IM_EIO;
    }
    if (fstat(fd, &st) == -1) {
        snprintf(why, whylen, "it cannot be read: %s", strerror(errno));
        close(fd);
        return IM_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "it is not a regular file");
        close(fd);
        return IM_EIO;
    }
    if (st.st_size > SIM_STATE_MAX) {
        snprintf(why, whylen, "it is %lld bytes, more than the %ld a saved account can take",
                 (long long)st.st_size, SIM_STATE_MAX);
        close(fd);
        return IM_ETOOBIG;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        snprintf(why, whylen, "out of memory");
        return IM_ENOMEM;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(why, whylen, "it cannot be read: %s", n == 0 ? "it shrank while being read"
                                                                 : strerror(errno));
            free(buf);
            close(fd);
            return IM_EIO;
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    root = cJSON_ParseWithLength(buf, got);
    free(buf);
    if (root == NULL) {
        snprintf(why, whylen, "it is not valid JSON (truncated or damaged)");
        return IM_EPARSE;
    }
    memset(&l, 0, sizeof l);
    rc = sim_load_json(s, root, &l);
    cJSON_Delete(root);
    if (rc == IM_ENOMEM)
        snprintf(why, whylen, "out of memory");
    else if (rc != 0)
        snprintf(why, whylen, "%s", l.err);
    return rc;
}

/* Takes the account in opts->state_dir: the lock, then the saved file (or
 * a fresh one). A directory or lock that cannot be had leaves the sim in
 * memory with a warning (the journal halts trading for an unusable
 * directory on its own); a saved file that cannot be used fails with a
 * sentence in err. Returns 0 or an IM_E* code. */
static int sim_persist_open(im_sim *s, const im_sim_opts *opts, char *err, size_t errlen) {
    char lock[sizeof s->state_path], why[700], money[SIM_MONEY_MAX];
    int rc;

    if (strlen(opts->state_dir) >= sizeof s->state_dir - 32) {
        snprintf(err, errlen, "the state directory path is too long");
        return IM_EINVAL;
    }
    snprintf(s->state_dir, sizeof s->state_dir, "%s", opts->state_dir);
    snprintf(s->state_path, sizeof s->state_path, "%s/" SIM_STATE_FILE, s->state_dir);
    snprintf(lock, sizeof lock, "%s/" SIM_LOCK_FILE, s->state_dir);
    if (im_fs_mkdirs(s->state_dir) == -1 ||
        (s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1) {
        im_warn("sim: cannot use the state directory %s (%s); the simulated account is kept "
                "in memory only and will not survive a restart",
                s->state_dir, strerror(errno));
        return 0;
    }
    while ((rc = flock(s->lock_fd, LOCK_EX | LOCK_NB)) == -1 && errno == EINTR)
        ;
    if (rc == -1) {
        if (errno == EWOULDBLOCK)
            im_warn("sim: another ibkr-mcp process owns the simulated account in %s; this "
                    "one runs a separate simulator account in memory only, not saved",
                    s->state_dir);
        else
            im_warn("sim: cannot lock %s (%s); the simulated account is kept in memory only",
                    lock, strerror(errno));
        close(s->lock_fd);
        s->lock_fd = -1;
        return 0;
    }
    s->persistent = 1;

    if (opts->reset) {
        if (access(s->state_path, F_OK) == 0)
            im_warn("sim: IBKR_SIM_RESET=true: the saved account in %s is discarded and "
                    "overwritten by a fresh one", s->state_path);
    } else {
        rc = sim_load(s, why, sizeof why);
        if (rc != 0 && rc != IM_ENOENT) {
            snprintf(err, errlen,
                     "the simulator's saved account %s cannot be used: %s. Fix or remove "
                     "the file, or set IBKR_SIM_RESET=true to discard it and start a fresh "
                     "account (its positions and working orders are then forgotten)",
                     s->state_path, why);
            return rc;
        }
        if (rc == 0) {
            fmt_money(s->cash, money, sizeof money);
            im_info("sim: continuing the saved account in %s: cash %s, %zu working orders, "
                    "next order id %llu", s->state_path, money, s->nworking,
                    s->next_order_id);
            /* Already on disk as it is: no write (two fsyncs) at start-up. */
            return 0;
        }
    }
    /* A fresh account is written at once: it is on disk before its first
     * order, and an unwritable file shows now rather than at the first fill. */
    sim_save(s);
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
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* drops the lock */
    free(s->orders);
    free(s->execs);
    im_jw_free(&s->save_out);
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
    if (s->persistent) {
        /* The last word, prices included; then the next process may own it. */
        sim_save(s);
        s->persistent = 0;
        close(s->lock_fd);
        s->lock_fd = -1;
    }
    s->open_handles = 2;
    uv_timer_stop(&s->tick);
    uv_idle_stop(&s->drain);
    uv_close((uv_handle_t *)&s->tick, sim_handle_close_cb);
    uv_close((uv_handle_t *)&s->drain, sim_handle_close_cb);
}

/* Every second: prices move (not saved: that waits for the next account
 * change or the close) and resting orders may fill (saved at once). */
static void sim_tick_cb(uv_timer_t *t) {
    sim_sync(t->data);
    sim_flush(t->data);
}

static const im_broker_ops sim_ops = {
    .name = "sim",
    .connected = sim_connected,
    .info = sim_info,
    .quote = sim_quote_op,
    .account = sim_account_op,
    .positions = sim_positions_op,
    .open_orders = sim_open_orders_op,
    .executions = sim_executions_op,
    .place = sim_place,
    .cancel = sim_cancel_op,
    .close = sim_close_op,
};

int im_sim_open(uv_loop_t *loop, const im_sim_opts *opts, im_sim **out, char *err,
                size_t errlen) {
    const char *acct;
    double cash;
    im_sim *s;
    int rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
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
    s->starting_cash = cash;
    s->seed = opts->seed;
    s->lock_fd = -1;
    s->next_order_id = SIM_FIRST_ORDER_ID;
    for (size_t i = 0; i < SIM_NSYMS; i++)
        sym_init(&s->syms[i], &sim_universe[i], opts->seed, i);
    s->at = im_clock_now(s->clock);
    s->synced = isfinite(s->at) ? (long long)floor(s->at) : 0;
    if (opts->state_dir != NULL && opts->state_dir[0] != '\0') {
        char why[2200];
        rc = sim_persist_open(s, opts, why, sizeof why);
        if (rc != 0) {
            if (err != NULL && errlen > 0)
                snprintf(err, errlen, "%s", why);
            sim_free(s); /* no handle is open yet */
            return rc;
        }
    }

    if (uv_timer_init(loop, &s->tick) != 0) {
        sim_free(s);
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

int im_sim_new(uv_loop_t *loop, const im_sim_opts *opts, im_sim **out) {
    char err[2200];
    int rc = im_sim_open(loop, opts, out, err, sizeof err);
    if (rc != 0 && err[0] != '\0')
        im_error("%s", err);
    return rc;
}

im_broker *im_sim_broker(im_sim *s) { return s != NULL ? &s->base : NULL; }

int im_sim_persistent(const im_sim *s) { return s != NULL && s->persistent; }

const char *im_sim_state_path(const im_sim *s) {
    return s != NULL && s->persistent ? s->state_path : NULL;
}

const char *im_sim_persist_error(const im_sim *s) {
    return s != NULL && s->persistent && s->persist_err[0] != '\0' ? s->persist_err : NULL;
}

int im_sim_save(im_sim *s) {
    if (s == NULL || s->closing)
        return IM_EINVAL;
    if (!s->persistent)
        return IM_ESTATE;
    return sim_save(s);
}

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
    sim_flush(s);
    return 0;
}

void im_sim_sync(im_sim *s) {
    if (s != NULL) {
        sim_sync(s);
        sim_flush(s);
    }
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
    sim_flush(s);
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
    sim_flush(s);
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
