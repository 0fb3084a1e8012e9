/* gateway.c: `ibkr-mcp gateway`, the simulator behind the TWS socket API.
 *
 * Provides im_gateway_* (gateway.h). One process owns one loop, one clock,
 * one simulator and one listening socket on 127.0.0.1; every client
 * connection gets a frame reader and an output writer from tws_codec.h.
 * Requests are answered at server version 178 with exactly the field lists
 * of reference/tws-protocol.md §6; the simulator's completions and events
 * (sim.h through broker.h) become openOrder / orderStatus / execDetails /
 * commissionReport / account messages.
 *
 * TWS semantics kept: orders belong to a client id, not to a connection (a
 * client that reconnects with the same id sees its orders and their
 * events); one live connection per client id (326); order ids are the
 * client's, mapped here to the simulator's own ids.
 *
 * Hostile peers: every connection is bounded (request frames, buffered
 * input, queued output, subscriptions); anything malformed closes that
 * connection after one stderr line and touches nothing else.
 *
 * Uses libuv (TCP, timers, a prepare handle that flushes output before the
 * loop blocks, signals), sim.h, tws_codec.h, clock.h and log.h. */
#include "gateway.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "broker.h"
#include "clock.h"
#include "common.h"
#include "error.h"
#include "log.h"
#include "sim.h"
#include "tws_codec.h"

/* Bounds. A TWS request at 178 is well under 2 KiB (placeOrder ~1 KiB);
 * 64 KiB leaves room for long algo parameter lists and still refuses the
 * 16 MiB a hostile length prefix may announce. */
#define GW_MAX_REQUEST (64 * 1024)
#define GW_MAX_OUTPUT (8u * 1024 * 1024)  /* a client that stops reading is dropped */
#define GW_MAX_CONNS 1024
#define GW_MAX_ORDERS 65536                /* per gateway run; then placeOrder gets 201 */
#define GW_MAX_EXECS 16384                 /* execution log ring, as the sim keeps */
#define GW_MAX_TICKERS 100                 /* TWS's default market data lines */
#define GW_MAX_PNL 16                      /* reqPnL subscriptions per connection */
#define GW_HANDSHAKE_MS 10000              /* prefix + startApi must arrive by then */
#define GW_STALL_MS 10000                  /* a frame left half-sent this long is a dead peer */
#define GW_READ_CHUNK 65536
#define GW_FIRST_PERM_ID 1000000001LL

/* Ids the codec does not name: reqCompletedOrders (out 99, "99, apiOnly")
 * and completedOrdersEnd (in 102, no fields). ib_async asks for completed
 * orders while connecting and waits for the end. */
#define GW_OUT_REQ_COMPLETED_ORDERS 99
#define GW_IN_COMPLETED_ORDERS_END 102

enum gw_state {
    GW_HELLO = 1,   /* waiting for "API\0" + version range */
    GW_START,       /* version sent; waiting for startApi */
    GW_READY,
};

typedef struct gw gw;

typedef struct gw_ticker {
    long long id;
    int sym;
    double bid, ask, last, bid_size, ask_size;   /* what was last sent */
} gw_ticker;

typedef struct gw_conn {
    uv_tcp_t tcp;            /* data (and the timer's) point back here */
    uv_timer_t timer;        /* handshake, then stalled-frame watchdog */
    gw *g;
    struct gw_conn *prev, *next;
    unsigned long long serial;  /* for completions that outlive the connection */
    char peer[64];
    int state;
    int closing;
    int open_handles;
    int timer_armed;
    int client_id;
    int mdt;                 /* reqMarketDataType: 1 live .. 4 delayed-frozen */
    int acct_updates;        /* reqAccountUpdates subscribed */
    int positions;           /* reqPositions subscribed */
    int warned_unknown;
    size_t queued;           /* bytes handed to uv_write and not yet written */
    im_tws_reader rd;
    im_tws_writer out;       /* replies not yet handed to uv_write */
    gw_ticker tickers[GW_MAX_TICKERS];
    int ntickers;
    long long pnl[GW_MAX_PNL];
    int npnl;
} gw_conn;

typedef struct gw_order {
    gw *g;
    int client_id;
    long long tws_id;
    long long perm_id;
    char sim_id[IM_ORDER_ID_MAX];  /* "" until the simulator answered */
    im_tws_order req;              /* as placed */
    int sym;
    int placing;                   /* the simulator's place completion is pending */
    int cancel_wanted;             /* a cancel was asked for (issued once placed) */
    int terminal;
    char status[16];               /* last status sent */
    double status_filled;          /* filled quantity in the last status sent */
    double filled, remaining, avg_price, last_price;
    int holding;                   /* --ack-delay-ms: owner messages wait in held */
    im_tws_writer held;
} gw_order;

typedef struct gw_exec {
    gw_order *o;
    im_execution e;
    double cum_qty, avg_price;
    int last_liquidity;
} gw_exec;

typedef struct gw_ack_timer {
    uv_timer_t t;
    gw *g;
    gw_order *o;
    struct gw_ack_timer *prev, *next;
} gw_ack_timer;

typedef struct gw_write {
    uv_write_t req;
    gw_conn *c;
    size_t len;
    char data[];
} gw_write;

/* What a broker completion is for; freed by its callback. */
enum gw_req_kind {
    GW_REQ_SUMMARY = 1,
    GW_REQ_ACCT_VALUES,     /* reqAccountUpdates, first half */
    GW_REQ_ACCT_PORTFOLIO,  /* reqAccountUpdates, second half */
    GW_REQ_POSITIONS,
    GW_REQ_OPEN_ORDERS,
    GW_REQ_PNL,
    GW_REQ_BCAST_ACCOUNT,   /* after a fill: account values and pnl to subscribers */
    GW_REQ_BCAST_POSITIONS, /* after a fill: portfolio and position to subscribers */
    GW_REQ_CANCEL,
};

#define GW_TAG_COUNT 8
typedef struct gw_req {
    gw *g;
    int kind;
    unsigned long long serial;
    long long req_id;
    int all;                  /* reqAllOpenOrders */
    unsigned tags;            /* account summary tag bits */
    int sym;                  /* broadcast positions: the symbol that traded */
    gw_order *o;              /* cancel */
} gw_req;

struct gw {
    uv_loop_t loop;
    uv_tcp_t server;
    uv_signal_t sigint, sigterm;
    uv_prepare_t flusher;
    uv_timer_t ticks;
    im_clock clock;
    im_sim *sim;
    im_broker *broker;
    im_gateway_opts opts;
    int stopping;
    gw_conn *conns;
    size_t nconns;
    unsigned long long next_serial;
    gw_order **orders;
    size_t norders, cap_orders;
    long long next_perm_id;
    gw_exec *execs;           /* ring of GW_MAX_EXECS, oldest at exec_head once full */
    size_t nexecs, exec_head;
    gw_ack_timer *acks;
    int bcast_account_pending;   /* one account read answers every fill before it */
    double *close_px;         /* per symbol: the price when the gateway started */
    size_t nsyms;
    char rbuf[GW_READ_CHUNK];
};

static void conn_close(gw_conn *c, const char *why);
static void conn_flush(gw_conn *c);
static void conn_timer_cb(uv_timer_t *t);

/* ==== the universe: contract metadata ==================================== */

typedef struct gw_meta {
    const char *symbol, *exch, *name, *stock_type;
} gw_meta;

/* Listing venue and name of the simulator's symbols (public facts). */
static const gw_meta gw_metas[] = {
    {"AAPL", "NASDAQ", "APPLE INC", "COMMON"},
    {"MSFT", "NASDAQ", "MICROSOFT CORP", "COMMON"},
    {"NVDA", "NASDAQ", "NVIDIA CORP", "COMMON"},
    {"TSLA", "NASDAQ", "TESLA INC", "COMMON"},
    {"AMZN", "NASDAQ", "AMAZON.COM INC", "COMMON"},
    {"GOOGL", "NASDAQ", "ALPHABET INC-CL A", "COMMON"},
    {"META", "NASDAQ", "META PLATFORMS INC-CLASS A", "COMMON"},
    {"AVGO", "NASDAQ", "BROADCOM INC", "COMMON"},
    {"JPM", "NYSE", "JPMORGAN CHASE & CO", "COMMON"},
    {"V", "NYSE", "VISA INC-CLASS A SHARES", "COMMON"},
    {"UNH", "NYSE", "UNITEDHEALTH GROUP INC", "COMMON"},
    {"XOM", "NYSE", "EXXON MOBIL CORP", "COMMON"},
    {"JNJ", "NYSE", "JOHNSON & JOHNSON", "COMMON"},
    {"WMT", "NYSE", "WALMART INC", "COMMON"},
    {"PG", "NYSE", "PROCTER & GAMBLE CO/THE", "COMMON"},
    {"MA", "NYSE", "MASTERCARD INC - A", "COMMON"},
    {"HD", "NYSE", "HOME DEPOT INC", "COMMON"},
    {"COST", "NASDAQ", "COSTCO WHOLESALE CORP", "COMMON"},
    {"NFLX", "NASDAQ", "NETFLIX INC", "COMMON"},
    {"AMD", "NASDAQ", "ADVANCED MICRO DEVICES", "COMMON"},
    {"INTC", "NASDAQ", "INTEL CORP", "COMMON"},
    {"KO", "NYSE", "COCA-COLA CO/THE", "COMMON"},
    {"PEP", "NASDAQ", "PEPSICO INC", "COMMON"},
    {"BAC", "NYSE", "BANK OF AMERICA CORP", "COMMON"},
    {"DIS", "NYSE", "WALT DISNEY CO/THE", "COMMON"},
    {"SPY", "ARCA", "SPDR S&P 500 ETF TRUST", "ETF"},
    {"QQQ", "NASDAQ", "INVESCO QQQ TRUST SERIES 1", "ETF"},
};

static const char *gw_symbol(const gw *g, int sym) {
    return im_sim_symbol_at(g->sim, (size_t)sym);
}

static const gw_meta *gw_meta_of(const char *symbol) {
    for (size_t i = 0; i < IM_ARRAY_SIZE(gw_metas); i++)
        if (strcmp(gw_metas[i].symbol, symbol) == 0)
            return &gw_metas[i];
    return NULL;
}

static const char *gw_exch(const char *symbol) {
    const gw_meta *m = gw_meta_of(symbol);
    return m != NULL ? m->exch : "NYSE";
}

/* TWS's conId for AAPL; for the others a stable number from the symbol
 * (FNV-1a), above 1e8 so it never collides with the fixed one. */
static long long gw_con_id(const char *symbol) {
    uint32_t h = 2166136261u;
    if (strcmp(symbol, "AAPL") == 0)
        return 265598;
    for (const char *p = symbol; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 16777619u;
    }
    return 100000000LL + (long long)(h % 900000000u);
}

/* NASDAQ-listed names trade under class NMS; the others under their symbol. */
static const char *gw_trading_class(const char *symbol) {
    return strcmp(gw_exch(symbol), "NASDAQ") == 0 ? "NMS" : symbol;
}

/* The universe index of a contract given by conId or symbol, or -1. */
static int gw_find_sym(const gw *g, long long con_id, const char *symbol) {
    char up[IM_SYMBOL_MAX];
    size_t n = strlen(symbol);
    if (n > 0 && n < sizeof up) {
        for (size_t i = 0; i <= n; i++)
            up[i] = (char)toupper((unsigned char)symbol[i]);
        for (size_t i = 0; i < g->nsyms; i++)
            if (strcmp(gw_symbol(g, (int)i), up) == 0)
                return con_id > 0 && con_id != gw_con_id(up) ? -1 : (int)i;
        return -1;
    }
    if (n == 0 && con_id > 0)
        for (size_t i = 0; i < g->nsyms; i++)
            if (gw_con_id(gw_symbol(g, (int)i)) == con_id)
                return (int)i;
    return -1;
}

/* ==== time text ========================================================== */

/* "20250610 10:00:00" in New York time, plus the zone's name: "EDT"/"EST"
 * when abbrev, else "America/New_York". */
static void gw_ny_time(double t, int abbrev, char *out, size_t outlen) {
    char date[16];
    int sod = 0, wd = 0, utc_sod, off;
    long long secs = (long long)floor(t);
    if (im_clock_ny_date(t, date, sizeof date) != 0 ||
        im_clock_ny_seconds_of_day(t, &sod, &wd) != 0) {
        snprintf(out, outlen, "19700101 00:00:00 %s", abbrev ? "EST" : "America/New_York");
        return;
    }
    utc_sod = (int)(((secs % 86400) + 86400) % 86400);
    off = ((utc_sod - sod) % 86400 + 86400) % 86400; /* 4 h in summer, 5 h in winter */
    snprintf(out, outlen, "%.4s%.2s%.2s %02d:%02d:%02d %s", date, date + 5, date + 8, sod / 3600,
             sod / 60 % 60, sod % 60,
             abbrev ? (off == 4 * 3600 ? "EDT" : "EST") : "America/New_York");
}

/* ==== output ============================================================= */

/* Closes the message being written (the codec's structured writers close
 * their own) and drops the connection if the writer failed: without memory
 * it cannot be trusted to hold whole frames any more. */
static void gw_end(gw_conn *c, im_tws_writer *w) {
    int rc = w->open ? im_tws_end(w) : im_tws_writer_error(w);
    if (rc != 0 && c != NULL && w == &c->out)
        conn_close(c, "cannot build a reply (out of memory)");
}

static void put_error(im_tws_writer *w, long long id, int code, const char *fmt, ...)
    IM_PRINTF(4, 5);
/* errMsg (4) through the codec (which escapes non-ASCII as TWS does). */
static void put_error(im_tws_writer *w, long long id, int code, const char *fmt, ...) {
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    im_tws_put_error(w, id, code, text);
}

#define SEND_ERROR(c, id, code, ...)                        \
    do {                                                    \
        put_error(&(c)->out, (id), (code), __VA_ARGS__);    \
        gw_end((c), &(c)->out);                             \
    } while (0)

static void put_next_valid_id(im_tws_writer *w, long long id) {
    im_tws_begin(w, IM_TWS_IN_NEXT_VALID_ID);
    im_tws_put_int(w, 1);
    im_tws_put_int(w, id);
}

static void put_managed_accounts(im_tws_writer *w, const char *acct) {
    im_tws_begin(w, IM_TWS_IN_MANAGED_ACCTS);
    im_tws_put_int(w, 1);
    im_tws_put_str(w, acct);
}

/* The contract part of position and updatePortfolio: conId .. tradingClass
 * with no primaryExch field (the exchange slot carries the listing venue,
 * as TWS fills it there). */
static void put_contract_short(im_tws_writer *w, const char *symbol, const char *exchange) {
    im_tws_put_int(w, gw_con_id(symbol));
    im_tws_put_str(w, symbol);
    im_tws_put_str(w, "STK");
    im_tws_put_str(w, "");       /* lastTradeDateOrContractMonth */
    im_tws_put_dbl(w, 0);        /* strike */
    im_tws_put_str(w, "");       /* right */
    im_tws_put_str(w, "");       /* multiplier */
    im_tws_put_str(w, exchange);
    im_tws_put_str(w, "USD");
    im_tws_put_str(w, symbol);   /* localSymbol */
    im_tws_put_str(w, gw_trading_class(symbol));
}

/* The contract as openOrder and execDetails carry it. */
static void gw_contract(im_tws_contract *k, const char *sym, const char *exchange) {
    memset(k, 0, sizeof *k);
    k->con_id = gw_con_id(sym);
    snprintf(k->symbol, sizeof k->symbol, "%s", sym);
    snprintf(k->sec_type, sizeof k->sec_type, "STK");
    snprintf(k->exchange, sizeof k->exchange, "%s", exchange);
    snprintf(k->primary_exch, sizeof k->primary_exch, "%s", gw_exch(sym));
    snprintf(k->currency, sizeof k->currency, "USD");
    snprintf(k->local_symbol, sizeof k->local_symbol, "%s", sym);
    snprintf(k->trading_class, sizeof k->trading_class, "%s", gw_trading_class(sym));
}

/* openOrder (5): the codec's 127-field plain case. */
static void put_open_order(im_tws_writer *w, const gw *g, const gw_order *o,
                           const char *status) {
    im_tws_order t = o->req;
    t.order_id = o->tws_id;
    gw_contract(&t.contract, gw_symbol(g, o->sym), "SMART");
    snprintf(t.account, sizeof t.account, "%s", g->opts.account);
    t.client_id = o->client_id;
    t.perm_id = o->perm_id;
    im_tws_put_open_order(w, &t, status);
}

static void put_order_status(im_tws_writer *w, const gw_order *o, const char *status) {
    im_tws_order_status s;
    memset(&s, 0, sizeof s);
    s.order_id = o->tws_id;
    snprintf(s.status, sizeof s.status, "%s", status);
    s.filled = o->filled;
    s.remaining = o->remaining;
    s.avg_fill_price = o->avg_price;
    s.perm_id = o->perm_id;
    s.parent_id = o->req.parent_id;
    s.last_fill_price = o->last_price;
    s.client_id = o->client_id;
    im_tws_put_order_status(w, &s);
}

/* execDetails (11): time in New York local time with the zone's name. */
static void put_execution(im_tws_writer *w, const gw *g, long long req_id, const gw_exec *x) {
    const gw_order *o = x->o;
    const char *sym = x->e.symbol;
    im_tws_execution e;

    memset(&e, 0, sizeof e);
    e.req_id = (int)req_id;
    e.order_id = o->tws_id;
    gw_contract(&e.contract, sym, gw_exch(sym));
    snprintf(e.exec_id, sizeof e.exec_id, "%s", x->e.exec_id);
    gw_ny_time(x->e.time, 0, e.time, sizeof e.time);
    snprintf(e.account, sizeof e.account, "%s", g->opts.account);
    snprintf(e.exchange, sizeof e.exchange, "%s", gw_exch(sym)); /* execution venue */
    snprintf(e.side, sizeof e.side, "%s", x->e.side == IM_SIDE_BUY ? "BOT" : "SLD");
    e.shares = x->e.shares;
    e.price = x->e.price;
    e.perm_id = o->perm_id;
    e.client_id = o->client_id;
    e.cum_qty = x->cum_qty;
    e.avg_price = x->avg_price;
    snprintf(e.order_ref, sizeof e.order_ref, "%s", o->req.order_ref);
    e.last_liquidity = x->last_liquidity;
    im_tws_put_execution(w, &e);
}

/* commissionReport (59): realized P&L only on a sale (TWS leaves it unset,
 * DBL_MAX, on an opening trade). */
static void put_commission(im_tws_writer *w, const gw_exec *x) {
    im_tws_commission c;
    memset(&c, 0, sizeof c);
    snprintf(c.exec_id, sizeof c.exec_id, "%s", x->e.exec_id);
    c.commission = x->e.commission;
    snprintf(c.currency, sizeof c.currency, "USD");
    c.realized_pnl = x->e.side == IM_SIDE_SELL ? x->e.realized_pnl : IM_TWS_UNSET_DBL;
    c.yield = IM_TWS_UNSET_DBL;
    im_tws_put_commission(w, &c);
}

/* contractDetails (10): the codec's 42 fields. */
static void put_contract_details(im_tws_writer *w, long long req_id, const char *sym) {
    const gw_meta *m = gw_meta_of(sym);
    im_tws_contract_details d;
    memset(&d, 0, sizeof d);
    d.req_id = (int)req_id;
    gw_contract(&d.contract, sym, "SMART");
    snprintf(d.market_name, sizeof d.market_name, "%s", gw_trading_class(sym));
    d.min_tick = 0.01;
    snprintf(d.long_name, sizeof d.long_name, "%s", m != NULL ? m->name : sym);
    snprintf(d.time_zone_id, sizeof d.time_zone_id, "US/Eastern");
    snprintf(d.stock_type, sizeof d.stock_type, "%s", m != NULL ? m->stock_type : "COMMON");
    im_tws_put_contract_details(w, &d);
}

static void put_tick_price(im_tws_writer *w, long long id, int type, double px, double size) {
    im_tws_begin(w, IM_TWS_IN_TICK_PRICE);
    im_tws_put_int(w, 6);
    im_tws_put_int(w, id);
    im_tws_put_int(w, type);
    im_tws_put_dbl(w, px);
    im_tws_put_dec(w, size);
    im_tws_put_int(w, 0);                        /* attrMask */
}

static void put_tick_size(im_tws_writer *w, long long id, int type, double size) {
    im_tws_begin(w, IM_TWS_IN_TICK_SIZE);
    im_tws_put_int(w, 6);
    im_tws_put_int(w, id);
    im_tws_put_int(w, type);
    im_tws_put_dec(w, size);
}

static void put_tick_string(im_tws_writer *w, long long id, int type, const char *v) {
    im_tws_begin(w, IM_TWS_IN_TICK_STRING);
    im_tws_put_int(w, 6);
    im_tws_put_int(w, id);
    im_tws_put_int(w, type);
    im_tws_put_str(w, v);
}

static void put_simple(im_tws_writer *w, int msg_id, long long arg, int has_arg) {
    im_tws_begin(w, msg_id);
    im_tws_put_int(w, 1);
    if (has_arg)
        im_tws_put_int(w, arg);
}

/* ==== connections: writing =============================================== */

static void conn_write_cb(uv_write_t *req, int status) {
    gw_write *wr = container_of(req, gw_write, req);
    gw_conn *c = wr->c;
    c->queued -= wr->len;
    free(wr);
    if (status < 0 && status != UV_ECANCELED)
        conn_close(c, uv_strerror(status));
}

/* Hands len bytes to uv_write (copied: the buffer lives until the write
 * callback). A client that stopped reading is dropped at GW_MAX_OUTPUT. */
static void conn_write(gw_conn *c, const char *data, size_t len) {
    gw_write *wr;
    uv_buf_t b;
    int rc;

    if (c->closing || len == 0)
        return;
    if (c->queued + len > GW_MAX_OUTPUT) {
        conn_close(c, "the client stopped reading (8 MiB of replies queued)");
        return;
    }
    wr = malloc(sizeof *wr + len);
    if (wr == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    memcpy(wr->data, data, len);
    wr->c = c;
    wr->len = len;
    b = uv_buf_init(wr->data, (unsigned)len);
    rc = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, conn_write_cb);
    if (rc != 0) {
        free(wr);
        conn_close(c, uv_strerror(rc));
        return;
    }
    c->queued += len;
}

static void conn_flush(gw_conn *c) {
    if (c->closing || c->out.len == 0 || c->out.open)
        return;
    conn_write(c, c->out.data, c->out.len);
    /* A big reply (a long execution list) need not stay allocated. */
    if (c->out.cap > 1024 * 1024)
        im_tws_writer_free(&c->out);
    else
        im_tws_writer_reset(&c->out);
}

/* ==== connections: lifetime ============================================== */

static void conn_handle_close_cb(uv_handle_t *h) {
    gw_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    im_tws_reader_free(&c->rd);
    im_tws_writer_free(&c->out);
    free(c);
}

/* Closes the connection now: unsent replies are dropped, writes in flight
 * are cancelled. The memory goes in the last close callback. */
static void conn_close(gw_conn *c, const char *why) {
    gw *g = c->g;
    if (c->closing)
        return;
    c->closing = 1;
    if (why != NULL)
        im_info("gateway: %s: closing connection (%s)", c->peer, why);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        g->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    g->nconns--;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_close_cb);
    uv_close((uv_handle_t *)&c->timer, conn_handle_close_cb);
}

static void conn_shutdown_cb(uv_shutdown_t *req, int status) {
    gw_conn *c = req->data;
    free(req);
    IM_UNUSED(status);
    conn_close(c, NULL);
}

/* Sends what is queued, then closes (326 and the like). */
static void conn_close_after_flush(gw_conn *c, const char *why) {
    uv_shutdown_t *req;
    if (c->closing)
        return;
    im_info("gateway: %s: closing connection (%s)", c->peer, why);
    conn_flush(c);
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->state = 0; /* no more requests are served */
    req = malloc(sizeof *req);
    if (req == NULL || c->closing) {
        free(req);
        conn_close(c, NULL);
        return;
    }
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, conn_shutdown_cb) != 0) {
        free(req);
        conn_close(c, NULL);
    }
}

static gw_conn *gw_find_serial(gw *g, unsigned long long serial) {
    for (gw_conn *c = g->conns; c != NULL; c = c->next)
        if (c->serial == serial)
            return c;
    return NULL;
}

/* The live connection that speaks for a client id, or NULL. */
static gw_conn *gw_find_client(gw *g, int client_id) {
    for (gw_conn *c = g->conns; c != NULL; c = c->next)
        if (c->state == GW_READY && c->client_id == client_id)
            return c;
    return NULL;
}

/* ==== orders ============================================================= */

static gw_order *gw_find_order(gw *g, int client_id, long long tws_id) {
    for (size_t i = g->norders; i-- > 0;)
        if (g->orders[i]->client_id == client_id && g->orders[i]->tws_id == tws_id)
            return g->orders[i];
    return NULL;
}

static gw_order *gw_find_sim_order(gw *g, const char *sim_id) {
    for (size_t i = g->norders; i-- > 0;)
        if (strcmp(g->orders[i]->sim_id, sim_id) == 0)
            return g->orders[i];
    return NULL;
}

static long long gw_next_order_id(gw *g, int client_id) {
    long long max = 0;
    for (size_t i = 0; i < g->norders; i++)
        if (g->orders[i]->client_id == client_id && g->orders[i]->tws_id > max)
            max = g->orders[i]->tws_id;
    return max + 1;
}

/* Where messages about o for its owner go: the hold buffer while its
 * acknowledgement is delayed, else the owner's connection, else nowhere. */
static im_tws_writer *gw_order_out(gw *g, gw_order *o, gw_conn **owner) {
    *owner = gw_find_client(g, o->client_id);
    if (o->holding)
        return &o->held;
    return *owner != NULL ? &(*owner)->out : NULL;
}

/* openOrder + orderStatus to the owner, unless nothing changed since the
 * last pair sent (the simulator raises an event per change; TWS sends a
 * pair per visible change). */
static void gw_order_report(gw *g, gw_order *o, const char *status) {
    gw_conn *owner;
    im_tws_writer *w;
    if (strcmp(o->status, status) == 0 && o->status_filled == o->filled)
        return;
    snprintf(o->status, sizeof o->status, "%s", status);
    o->status_filled = o->filled;
    w = gw_order_out(g, o, &owner);
    if (w == NULL)
        return;
    put_open_order(w, g, o, status);
    gw_end(owner, w);
    put_order_status(w, o, status);
    gw_end(owner, w);
}

static const char *gw_status_text(const gw_order *o, im_order_status st) {
    switch (st) {
    case IM_OS_PENDING:
        return "PendingSubmit";
    case IM_OS_SUBMITTED:
    case IM_OS_PARTIAL:
        /* An untriggered stop waits on IB's side, as TWS shows it. */
        return strcmp(o->req.order_type, "MKT") == 0 || strcmp(o->req.order_type, "LMT") == 0
                   ? "Submitted"
                   : "PreSubmitted";
    case IM_OS_FILLED:
        return "Filled";
    case IM_OS_CANCELLED:
    case IM_OS_REJECTED:
        return "Cancelled";
    }
    return "Inactive";
}

/* A refused order: errMsg 201 then orderStatus Cancelled, as TWS does. */
static void gw_order_reject(gw *g, gw_order *o, const char *why) {
    gw_conn *owner;
    im_tws_writer *w = gw_order_out(g, o, &owner);
    o->terminal = 1;
    snprintf(o->status, sizeof o->status, "Cancelled");
    if (w == NULL)
        return;
    put_error(w, o->tws_id, 201, "Order rejected - reason:%s", why != NULL ? why : "");
    gw_end(owner, w);
    put_order_status(w, o, "Cancelled");
    gw_end(owner, w);
}

static void gw_update_from(gw_order *o, const im_order_info *in) {
    o->filled = in->filled;
    o->remaining = in->remaining;
    o->avg_price = in->filled > 0 ? in->avg_fill_price : 0;
    if (im_order_status_terminal(in->status))
        o->terminal = 1;
}

static void gw_cancel_cb(void *ud, int status, const char *msg, const im_order_info *in);

static void gw_issue_cancel(gw *g, gw_order *o, unsigned long long serial) {
    gw_req *r = calloc(1, sizeof *r);
    int rc;
    if (r == NULL)
        return;
    r->g = g;
    r->kind = GW_REQ_CANCEL;
    r->serial = serial;
    r->o = o;
    rc = g->broker->ops->cancel(g->broker, o->sim_id, gw_cancel_cb, r);
    if (rc != 0)
        free(r);
}

/* ==== requests =========================================================== */

static void gw_send_handshake_done(gw_conn *c) {
    gw *g = c->g;
    put_managed_accounts(&c->out, g->opts.account);
    gw_end(c, &c->out);
    put_next_valid_id(&c->out, gw_next_order_id(g, c->client_id));
    gw_end(c, &c->out);
    put_error(&c->out, -1, 2104, "Market data farm connection is OK:usfarm");
    gw_end(c, &c->out);
    put_error(&c->out, -1, 2106, "HMDS data farm connection is OK:ushmds");
    gw_end(c, &c->out);
    put_error(&c->out, -1, 2158, "Sec-def data farm connection is OK:secdefil");
    gw_end(c, &c->out);
}

static void gw_start_api(gw_conn *c, im_tws_msg *m) {
    gw *g = c->g;
    long long cid;
    im_tws_skip(m, 1); /* version */
    cid = im_tws_get_int(m);
    if (m->err || cid < INT_MIN || cid > INT_MAX) {
        conn_close(c, "startApi without a usable client id");
        return;
    }
    if (gw_find_client(g, (int)cid) != NULL) {
        SEND_ERROR(c, -1, 326,
                   "Unable to connect as the client id is already in use. Retry with a unique "
                   "client id.");
        conn_close_after_flush(c, "client id already in use");
        return;
    }
    c->client_id = (int)cid;
    c->state = GW_READY;
    uv_timer_stop(&c->timer);
    c->timer_armed = 0;
    im_info("gateway: %s: client id %d connected", c->peer, c->client_id);
    gw_send_handshake_done(c);
}

/* ==== order events ======================================================= */

static void gw_broadcast(gw *g, int sym);

static void gw_ack_timer_close_cb(uv_handle_t *h) {
    free(container_of((uv_timer_t *)h, gw_ack_timer, t));
}

static void gw_ack_timer_drop(gw_ack_timer *a) {
    gw *g = a->g;
    if (a->prev != NULL)
        a->prev->next = a->next;
    else
        g->acks = a->next;
    if (a->next != NULL)
        a->next->prev = a->prev;
    uv_close((uv_handle_t *)&a->t, gw_ack_timer_close_cb);
}

/* --ack-delay-ms: the delay is over; what was held goes to the owner. */
static void gw_ack_timer_cb(uv_timer_t *t) {
    gw_ack_timer *a = container_of(t, gw_ack_timer, t);
    gw_order *o = a->o;
    gw_conn *owner = gw_find_client(a->g, o->client_id);
    o->holding = 0;
    if (owner != NULL && o->held.len > 0) {
        conn_flush(owner);
        conn_write(owner, o->held.data, o->held.len);
    }
    im_tws_writer_free(&o->held);
    gw_ack_timer_drop(a);
}

/* The simulator took (or refused) a placeOrder. The acknowledgement shows
 * the order as accepted, before any fill: fills follow as events. */
static void gw_place_cb(void *ud, int status, const char *msg, const im_order_info *in) {
    gw_order *o = ud;
    gw *g = o->g;
    o->placing = 0;
    if (status == IM_ECANCELED || g->stopping)
        return;
    if (status != 0) {
        gw_order_reject(g, o, msg != NULL ? msg : im_strerror(status));
        return;
    }
    snprintf(o->sim_id, sizeof o->sim_id, "%s", in->order_id);
    if (in->status == IM_OS_REJECTED) {
        gw_order_reject(g, o, in->message);
        return;
    }
    o->remaining = o->req.total_qty;
    gw_order_report(g, o, gw_status_text(o, IM_OS_SUBMITTED));
    if (o->cancel_wanted)
        gw_issue_cancel(g, o, 0);
}

static void gw_cancel_cb(void *ud, int status, const char *msg, const im_order_info *in) {
    gw_req *r = ud;
    gw *g = r->g;
    gw_conn *c;
    IM_UNUSED(msg);
    IM_UNUSED(in);
    if (status != 0 && status != IM_ECANCELED && !g->stopping &&
        (c = gw_find_serial(g, r->serial)) != NULL) {
        if (status == IM_EORDER)
            SEND_ERROR(c, r->o->tws_id, 10147,
                       "OrderId %lld that needs to be cancelled is not found.", r->o->tws_id);
        else
            SEND_ERROR(c, r->o->tws_id, 161,
                       "Cancel attempted when order is not in a cancellable state. Order permId "
                       "=%lld",
                       r->o->perm_id);
    }
    free(r);
}

static gw_exec *gw_exec_slot(gw *g) {
    gw_exec *x;
    if (g->nexecs < GW_MAX_EXECS)
        return &g->execs[g->nexecs++];
    x = &g->execs[g->exec_head];
    g->exec_head = (g->exec_head + 1) % GW_MAX_EXECS;
    return x;
}

static void gw_on_fill(gw *g, gw_order *o, const im_order_info *in, const im_execution *e) {
    gw_conn *owner;
    im_tws_writer *w;
    gw_exec *x = gw_exec_slot(g);

    memset(x, 0, sizeof *x);
    x->o = o;
    x->e = *e;
    x->cum_qty = in->filled;
    x->avg_price = in->avg_fill_price;
    /* Marketable orders take liquidity (2); resting limits add it (1). */
    x->last_liquidity =
        strcmp(o->req.order_type, "MKT") == 0 || strcmp(o->req.order_type, "STP") == 0 ? 2 : 1;
    o->last_price = e->price;
    w = gw_order_out(g, o, &owner);
    if (w != NULL) {
        put_execution(w, g, -1, x);
        gw_end(owner, w);
        put_commission(w, x);
        gw_end(owner, w);
    }
    gw_broadcast(g, o->sym);
}

static void gw_on_order(gw *g, gw_order *o, const im_order_info *in) {
    gw_conn *owner;
    im_tws_writer *w;

    gw_update_from(o, in);
    if (in->status == IM_OS_REJECTED) {
        gw_order_reject(g, o, in->message);
        return;
    }
    gw_order_report(g, o, gw_status_text(o, in->status));
    if (in->status != IM_OS_CANCELLED || (w = gw_order_out(g, o, &owner)) == NULL)
        return;
    /* A cancel the client asked for carries no reason, as on the wire;
     * one the market caused (IOC, cash) says why. */
    if (o->cancel_wanted)
        put_error(w, o->tws_id, 202, "Order Canceled - reason:");
    else
        put_error(w, o->tws_id, 202, "Order Canceled - reason:%s", in->message);
    gw_end(owner, w);
}

static void gw_on_event(void *ud, const im_broker_event *ev) {
    gw *g = ud;
    gw_order *o;
    if (g->stopping || ev->order == NULL)
        return;
    o = gw_find_sim_order(g, ev->order->order_id);
    if (o == NULL || (o->terminal && ev->kind == IM_BEV_ORDER))
        return;
    if (ev->kind == IM_BEV_FILL && ev->exec != NULL)
        gw_on_fill(g, o, ev->order, ev->exec);
    else if (ev->kind == IM_BEV_ORDER)
        gw_on_order(g, o, ev->order);
}

/* ==== account, positions, P&L ============================================ */

static const char *const gw_tag_names[GW_TAG_COUNT] = {
    "NetLiquidation", "TotalCashValue", "BuyingPower",   "AvailableFunds",
    "GrossPositionValue", "RealizedPnL", "UnrealizedPnL", "AccountType",
};

/* Tag i's value text and currency ("" for AccountType). */
static const char *gw_tag_value(const im_account *a, int i, char *out, size_t n) {
    double v = 0;
    switch (i) {
    case 0: v = a->net_liquidation; break;
    case 1: v = a->cash; break;
    case 2: v = a->buying_power; break;
    case 3: v = a->buying_power; break; /* a cash account: what is not held for orders */
    case 4: v = a->gross_position_value; break;
    case 5: v = a->realized_pnl; break;
    case 6: v = a->unrealized_pnl; break;
    default:
        snprintf(out, n, "%s", a->account_type);
        return "";
    }
    snprintf(out, n, "%.2f", v);
    return "USD";
}

static void put_account_values(gw_conn *c, const gw *g, const im_account *a) {
    char v[64];
    const char *cur;
    im_tws_begin(&c->out, IM_TWS_IN_ACCT_VALUE);
    im_tws_put_int(&c->out, 2);
    im_tws_put_str(&c->out, "AccountCode");
    im_tws_put_str(&c->out, g->opts.account);
    im_tws_put_str(&c->out, "");
    im_tws_put_str(&c->out, g->opts.account);
    gw_end(c, &c->out);
    for (int i = 0; i < GW_TAG_COUNT; i++) {
        cur = gw_tag_value(a, i, v, sizeof v);
        im_tws_begin(&c->out, IM_TWS_IN_ACCT_VALUE);
        im_tws_put_int(&c->out, 2);
        im_tws_put_str(&c->out, gw_tag_names[i]);
        im_tws_put_str(&c->out, v);
        im_tws_put_str(&c->out, cur);
        im_tws_put_str(&c->out, g->opts.account);
        gw_end(c, &c->out);
    }
}

static void put_pnl(gw_conn *c, long long req_id, const im_account *a) {
    im_tws_begin(&c->out, IM_TWS_IN_PNL);
    im_tws_put_int(&c->out, req_id);
    im_tws_put_dbl(&c->out, a->realized_pnl + a->unrealized_pnl); /* the sim's day is its run */
    im_tws_put_dbl(&c->out, a->unrealized_pnl);
    im_tws_put_dbl(&c->out, a->realized_pnl);
    gw_end(c, &c->out);
}

/* position (61): 16 fields. */
static void put_position(gw_conn *c, const gw *g, const char *sym, double qty, double avg) {
    im_tws_begin(&c->out, IM_TWS_IN_POSITION_DATA);
    im_tws_put_int(&c->out, 3);
    im_tws_put_str(&c->out, g->opts.account);
    put_contract_short(&c->out, sym, gw_exch(sym));
    im_tws_put_dec(&c->out, qty);
    im_tws_put_dbl(&c->out, avg);
    gw_end(c, &c->out);
}

/* updatePortfolio (7): 20 fields; p NULL means the position went flat. */
static void put_portfolio(gw_conn *c, const gw *g, const char *sym, const im_position *p) {
    im_tws_begin(&c->out, IM_TWS_IN_PORTFOLIO_VALUE);
    im_tws_put_int(&c->out, 8);
    put_contract_short(&c->out, sym, gw_exch(sym));
    im_tws_put_dec(&c->out, p != NULL ? p->quantity : 0);
    im_tws_put_dbl(&c->out, p != NULL ? p->market_price : 0);
    im_tws_put_dbl(&c->out, p != NULL ? p->market_value : 0);
    im_tws_put_dbl(&c->out, p != NULL ? p->avg_cost : 0);
    im_tws_put_dbl(&c->out, p != NULL ? p->unrealized_pnl : 0);
    im_tws_put_dbl(&c->out, p != NULL ? p->realized_pnl : 0);
    im_tws_put_str(&c->out, g->opts.account);
    gw_end(c, &c->out);
}

static void put_account_time(gw_conn *c, const gw *g) {
    char t[48];
    gw_ny_time(im_clock_now(&g->clock), 1, t, sizeof t);
    im_tws_begin(&c->out, IM_TWS_IN_ACCT_UPDATE_TIME);
    im_tws_put_int(&c->out, 1);
    t[14] = '\0';               /* "yyyyMMdd HH:mm" */
    im_tws_put_str(&c->out, t + 9);
    gw_end(c, &c->out);
}

static const im_position *gw_find_pos(const gw *g, const im_position *p, size_t n, int sym) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(p[i].symbol, gw_symbol(g, sym)) == 0)
            return &p[i];
    return NULL;
}

static void gw_account_cb(void *ud, int status, const char *msg, const im_account *a) {
    gw_req *r = ud;
    gw *g = r->g;
    gw_conn *c;
    char v[64];
    const char *cur;
    IM_UNUSED(msg);

    if (r->kind == GW_REQ_BCAST_ACCOUNT)
        g->bcast_account_pending = 0;
    if (status != 0 || g->stopping) {
        free(r);
        return;
    }
    if (r->kind == GW_REQ_BCAST_ACCOUNT) {
        for (c = g->conns; c != NULL; c = c->next) {
            if (c->state != GW_READY)
                continue;
            if (c->acct_updates)
                put_account_values(c, g, a);
            for (int i = 0; i < c->npnl; i++)
                put_pnl(c, c->pnl[i], a);
        }
        free(r);
        return;
    }
    c = gw_find_serial(g, r->serial);
    if (c == NULL || c->state != GW_READY) {
        free(r);
        return;
    }
    switch (r->kind) {
    case GW_REQ_SUMMARY:
        for (int i = 0; i < GW_TAG_COUNT; i++) {
            if (!(r->tags & (1u << i)))
                continue;
            cur = gw_tag_value(a, i, v, sizeof v);
            im_tws_begin(&c->out, IM_TWS_IN_ACCOUNT_SUMMARY);
            im_tws_put_int(&c->out, 1);
            im_tws_put_int(&c->out, r->req_id);
            im_tws_put_str(&c->out, g->opts.account);
            im_tws_put_str(&c->out, gw_tag_names[i]);
            im_tws_put_str(&c->out, v);
            im_tws_put_str(&c->out, cur);
            gw_end(c, &c->out);
        }
        put_simple(&c->out, IM_TWS_IN_ACCOUNT_SUMMARY_END, r->req_id, 1);
        gw_end(c, &c->out);
        break;
    case GW_REQ_ACCT_VALUES:
        if (c->acct_updates)
            put_account_values(c, g, a);
        break;
    case GW_REQ_PNL:
        for (int i = 0; i < c->npnl; i++)
            if (c->pnl[i] == r->req_id)
                put_pnl(c, r->req_id, a);
        break;
    default:
        break;
    }
    free(r);
}

static void gw_positions_cb(void *ud, int status, const char *msg, const im_position *p,
                            size_t n) {
    gw_req *r = ud;
    gw *g = r->g;
    gw_conn *c;
    IM_UNUSED(msg);

    if (status != 0 || g->stopping) {
        free(r);
        return;
    }
    if (r->kind == GW_REQ_BCAST_POSITIONS) {
        /* Only the symbol that traded changes (one fill, one symbol; fills
         * of others raise their own broadcasts). */
        const im_position *q = gw_find_pos(g, p, n, r->sym);
        const char *sym = gw_symbol(g, r->sym);
        for (c = g->conns; c != NULL; c = c->next) {
            if (c->state != GW_READY)
                continue;
            if (c->acct_updates) {
                put_portfolio(c, g, sym, q);
                put_account_time(c, g);
            }
            if (c->positions)
                put_position(c, g, sym, q != NULL ? q->quantity : 0, q != NULL ? q->avg_cost : 0);
        }
        free(r);
        return;
    }
    c = gw_find_serial(g, r->serial);
    if (c == NULL || c->state != GW_READY) {
        free(r);
        return;
    }
    if (r->kind == GW_REQ_POSITIONS) {
        for (size_t i = 0; i < n; i++)
            put_position(c, g, p[i].symbol, p[i].quantity, p[i].avg_cost);
        put_simple(&c->out, IM_TWS_IN_POSITION_END, 0, 0);
        gw_end(c, &c->out);
    } else if (r->kind == GW_REQ_ACCT_PORTFOLIO && c->acct_updates) {
        for (size_t i = 0; i < n; i++)
            put_portfolio(c, g, p[i].symbol, &p[i]);
        put_account_time(c, g);
        im_tws_begin(&c->out, IM_TWS_IN_ACCT_DOWNLOAD_END);
        im_tws_put_int(&c->out, 1);
        im_tws_put_str(&c->out, g->opts.account);
        gw_end(c, &c->out);
    }
    free(r);
}

static void gw_orders_cb(void *ud, int status, const char *msg, const im_order_info *in,
                         size_t n) {
    gw_req *r = ud;
    gw *g = r->g;
    gw_conn *c;
    IM_UNUSED(msg);

    if (status != 0 || g->stopping || (c = gw_find_serial(g, r->serial)) == NULL ||
        c->state != GW_READY) {
        free(r);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        gw_order *o = gw_find_sim_order(g, in[i].order_id);
        const char *st;
        if (o == NULL || (!r->all && o->client_id != c->client_id))
            continue;
        st = o->status[0] ? o->status : gw_status_text(o, in[i].status);
        put_open_order(&c->out, g, o, st);
        gw_end(c, &c->out);
        put_order_status(&c->out, o, st);
        gw_end(c, &c->out);
    }
    put_simple(&c->out, IM_TWS_IN_OPEN_ORDER_END, 0, 0);
    gw_end(c, &c->out);
    free(r);
}

/* Starts a broker read for connection c (serial 0: a broadcast). */
static void gw_ask(gw *g, gw_conn *c, int kind, long long req_id, unsigned tags, int all, int sym) {
    gw_req *r = calloc(1, sizeof *r);
    int rc;
    if (r == NULL) {
        if (c != NULL)
            conn_close(c, "out of memory");
        return;
    }
    r->g = g;
    r->kind = kind;
    r->serial = c != NULL ? c->serial : 0;
    r->req_id = req_id;
    r->tags = tags;
    r->all = all;
    r->sym = sym;
    switch (kind) {
    case GW_REQ_SUMMARY:
    case GW_REQ_ACCT_VALUES:
    case GW_REQ_PNL:
    case GW_REQ_BCAST_ACCOUNT:
        rc = g->broker->ops->account(g->broker, gw_account_cb, r);
        break;
    case GW_REQ_POSITIONS:
    case GW_REQ_ACCT_PORTFOLIO:
    case GW_REQ_BCAST_POSITIONS:
        rc = g->broker->ops->positions(g->broker, gw_positions_cb, r);
        break;
    case GW_REQ_OPEN_ORDERS:
        rc = g->broker->ops->open_orders(g->broker, gw_orders_cb, r);
        break;
    default:
        rc = IM_EINVAL;
    }
    if (rc != 0) {
        free(r);
        return;
    }
    if (kind == GW_REQ_BCAST_ACCOUNT)
        g->bcast_account_pending = 1;
}

/* After a fill: account values, portfolio, positions and P&L go to every
 * subscriber. One account read serves every fill heard before it answers
 * (its snapshot already includes them). */
static void gw_broadcast(gw *g, int sym) {
    int want_acct = 0, want_pos = 0;
    for (gw_conn *c = g->conns; c != NULL; c = c->next) {
        if (c->state != GW_READY)
            continue;
        want_acct |= c->acct_updates || c->npnl > 0;
        want_pos |= c->acct_updates || c->positions;
    }
    if (want_acct && !g->bcast_account_pending)
        gw_ask(g, NULL, GW_REQ_BCAST_ACCOUNT, 0, 0, 0, -1);
    if (want_pos)
        gw_ask(g, NULL, GW_REQ_BCAST_POSITIONS, 0, 0, 0, sym);
}

/* ==== market data ======================================================== */

/* The ticks of one quote: everything when t is NULL or full, else what
 * changed since t was last sent. Delayed data uses the delayed tick ids. */
static void gw_send_ticks(gw_conn *c, long long id, int sym, int delayed, gw_ticker *t,
                          int full) {
    gw *g = c->g;
    im_tws_writer *w = &c->out;
    im_quote q;
    char ts[32];
    int bid = delayed ? IM_TWS_TICK_DELAYED_BID : IM_TWS_TICK_BID;
    int ask = delayed ? IM_TWS_TICK_DELAYED_ASK : IM_TWS_TICK_ASK;
    int last = delayed ? IM_TWS_TICK_DELAYED_LAST : IM_TWS_TICK_LAST;
    int bsz = delayed ? IM_TWS_TICK_DELAYED_BID_SIZE : IM_TWS_TICK_BID_SIZE;
    int asz = delayed ? IM_TWS_TICK_DELAYED_ASK_SIZE : IM_TWS_TICK_ASK_SIZE;
    int lsz = delayed ? IM_TWS_TICK_DELAYED_LAST_SIZE : IM_TWS_TICK_LAST_SIZE;
    const double last_size = 100; /* the sim has no trade tape; a round lot */

    if (im_sim_quote_now(g->sim, gw_symbol(g, sym), &q) != 0)
        return;
    if (full || t == NULL || q.bid != t->bid) {
        put_tick_price(w, id, bid, q.bid, q.bid_size);
        gw_end(c, w);
    }
    if (full || t == NULL || q.bid != t->bid || q.bid_size != t->bid_size) {
        put_tick_size(w, id, bsz, q.bid_size);
        gw_end(c, w);
    }
    if (full || t == NULL || q.ask != t->ask) {
        put_tick_price(w, id, ask, q.ask, q.ask_size);
        gw_end(c, w);
    }
    if (full || t == NULL || q.ask != t->ask || q.ask_size != t->ask_size) {
        put_tick_size(w, id, asz, q.ask_size);
        gw_end(c, w);
    }
    if (full || t == NULL || q.last != t->last) {
        put_tick_price(w, id, last, q.last, last_size);
        gw_end(c, w);
        put_tick_size(w, id, lsz, last_size);
        gw_end(c, w);
        snprintf(ts, sizeof ts, "%lld", (long long)floor(q.time));
        put_tick_string(w, id,
                        delayed ? IM_TWS_TICK_DELAYED_LAST_TIMESTAMP : IM_TWS_TICK_LAST_TIMESTAMP,
                        ts);
        gw_end(c, w);
    }
    if (full || t == NULL) {
        put_tick_price(w, id, delayed ? IM_TWS_TICK_DELAYED_CLOSE : IM_TWS_TICK_CLOSE,
                       g->close_px[sym], 0);
        gw_end(c, w);
    }
    if (t != NULL) {
        t->bid = q.bid;
        t->ask = q.ask;
        t->last = q.last;
        t->bid_size = q.bid_size;
        t->ask_size = q.ask_size;
    }
}

/* Once a second: every streaming subscription gets what changed. */
static void gw_ticks_cb(uv_timer_t *h) {
    gw *g = h->data;
    for (gw_conn *c = g->conns; c != NULL; c = c->next) {
        if (c->state != GW_READY)
            continue;
        for (int i = 0; i < c->ntickers; i++)
            gw_send_ticks(c, c->tickers[i].id, c->tickers[i].sym, g->opts.delayed_only,
                          &c->tickers[i], 0);
    }
}

static void gw_req_mkt_data(gw_conn *c, im_tws_msg *m) {
    gw *g = c->g;
    char symbol[32], sec_type[16], currency[16];
    long long id, con_id;
    int sym, snapshot, delayed = g->opts.delayed_only;

    im_tws_skip(m, 1); /* version */
    id = im_tws_get_int(m);
    con_id = im_tws_get_int(m);
    im_tws_get_text(m, symbol, sizeof symbol);
    im_tws_get_text(m, sec_type, sizeof sec_type);
    im_tws_skip(m, 6); /* lastTrade, strike, right, multiplier, exchange, primaryExch */
    im_tws_get_text(m, currency, sizeof currency);
    im_tws_skip(m, 2); /* localSymbol, tradingClass */
    if (strcmp(sec_type, "BAG") == 0) {
        long long legs = im_tws_get_int(m);
        if (legs < 0 || legs > 64)
            m->err = IM_EPARSE;
        else
            im_tws_skip(m, (int)legs * 4);
    }
    if (im_tws_get_int(m) != 0) /* deltaNeutralContract */
        im_tws_skip(m, 3);
    im_tws_skip(m, 1); /* genericTickList: the default ticks are all we have */
    snapshot = im_tws_get_bool(m);
    if (m->err) {
        SEND_ERROR(c, id, 321, "Error validating request:-'reqMktData' : cause - malformed "
                               "request");
        return;
    }
    sym = gw_find_sym(g, con_id, symbol);
    if (sym < 0 || (sec_type[0] && strcmp(sec_type, "STK") != 0) ||
        (currency[0] && strcmp(currency, "USD") != 0)) {
        SEND_ERROR(c, id, 200, "No security definition has been found for the request");
        return;
    }
    if (!snapshot) {
        for (int i = 0; i < c->ntickers; i++)
            if (c->tickers[i].id == id) {
                SEND_ERROR(c, id, 102, "Duplicate ticker id");
                return;
            }
        if (c->ntickers >= GW_MAX_TICKERS) {
            SEND_ERROR(c, id, 101, "Max number of tickers has been reached");
            return;
        }
    }
    if (delayed && (c->mdt == 1 || c->mdt == 2)) {
        SEND_ERROR(c, id, 354,
                   "Requested market data is not subscribed. Delayed market data is available.");
        return;
    }
    if (delayed)
        SEND_ERROR(c, id, 10167,
                   "Requested market data is not subscribed. Displaying delayed market data.");
    /* Real-time data is served as type 1 whatever was asked for, as TWS
     * does for an account that has the subscription. */
    put_simple(&c->out, IM_TWS_IN_MARKET_DATA_TYPE, id, 1); /* 58, 1, reqId ... */
    im_tws_put_int(&c->out, delayed ? c->mdt : 1);          /* ... marketDataType */
    gw_end(c, &c->out);
    if (snapshot) {
        gw_send_ticks(c, id, sym, delayed, NULL, 1);
        put_simple(&c->out, IM_TWS_IN_TICK_SNAPSHOT_END, id, 1);
        gw_end(c, &c->out);
        return;
    }
    memset(&c->tickers[c->ntickers], 0, sizeof c->tickers[0]);
    c->tickers[c->ntickers].id = id;
    c->tickers[c->ntickers].sym = sym;
    gw_send_ticks(c, id, sym, delayed, &c->tickers[c->ntickers], 1);
    c->ntickers++;
}

static void gw_cancel_mkt_data(gw_conn *c, im_tws_msg *m) {
    long long id;
    im_tws_skip(m, 1);
    id = im_tws_get_int(m);
    /* An unknown id (a finished snapshot, say) is ignored quietly. */
    for (int i = 0; i < c->ntickers; i++)
        if (c->tickers[i].id == id) {
            c->tickers[i] = c->tickers[--c->ntickers];
            return;
        }
}

/* ==== requests: contracts, orders ======================================== */

static void gw_req_contract(gw_conn *c, im_tws_msg *m) {
    gw *g = c->g;
    char symbol[32], sec_type[16], currency[16];
    long long req_id, con_id;
    int sym;

    im_tws_skip(m, 1);
    req_id = im_tws_get_int(m);
    con_id = im_tws_get_int(m);
    im_tws_get_text(m, symbol, sizeof symbol);
    im_tws_get_text(m, sec_type, sizeof sec_type);
    im_tws_skip(m, 6); /* lastTrade, strike, right, multiplier, exchange, primaryExch */
    im_tws_get_text(m, currency, sizeof currency);
    if (m->err) {
        SEND_ERROR(c, req_id, 200, "No security definition has been found for the request");
        return;
    }
    sym = gw_find_sym(g, con_id, symbol);
    if (sym < 0 || (sec_type[0] && strcmp(sec_type, "STK") != 0) ||
        (currency[0] && strcmp(currency, "USD") != 0)) {
        SEND_ERROR(c, req_id, 200, "No security definition has been found for the request");
        return;
    }
    put_contract_details(&c->out, req_id, gw_symbol(g, sym));
    gw_end(c, &c->out);
    put_simple(&c->out, IM_TWS_IN_CONTRACT_DATA_END, req_id, 1);
    gw_end(c, &c->out);
}

static int gw_add_order(gw *g, gw_order *o) {
    if (g->norders == g->cap_orders) {
        size_t cap = g->cap_orders ? g->cap_orders * 2 : 64;
        gw_order **p = realloc(g->orders, cap * sizeof *p);
        if (p == NULL)
            return IM_ENOMEM;
        g->orders = p;
        g->cap_orders = cap;
    }
    g->orders[g->norders++] = o;
    return 0;
}

static void gw_req_place(gw_conn *c, im_tws_msg *m) {
    gw *g = c->g;
    im_tws_order req;
    im_order ord;
    gw_order *o;
    const char *why = NULL;
    int rc, sym;

    rc = im_tws_get_place_order(m, &req, &why);
    if (rc == IM_EPARSE) {
        SEND_ERROR(c, req.order_id, 321,
                   "Error validating request:-'placeOrder' : cause - malformed request");
        return;
    }
    if (rc != 0) {
        SEND_ERROR(c, req.order_id, 201, "Order rejected - reason:%s", why != NULL ? why : "");
        return;
    }
    if (req.order_id <= 0) {
        SEND_ERROR(c, req.order_id, 321,
                   "Error validating request:-'placeOrder' : cause - order id must be positive");
        return;
    }
    if (gw_find_order(g, c->client_id, req.order_id) != NULL) {
        /* In TWS a known id modifies the order; this gateway does not
         * modify orders. */
        SEND_ERROR(c, req.order_id, 103, "Duplicate order id");
        return;
    }
    sym = gw_find_sym(g, req.contract.con_id, req.contract.symbol);
    if (sym < 0 || (req.contract.sec_type[0] && strcmp(req.contract.sec_type, "STK") != 0) ||
        (req.contract.currency[0] && strcmp(req.contract.currency, "USD") != 0)) {
        SEND_ERROR(c, req.order_id, 200, "No security definition has been found for the request");
        return;
    }
    memset(&ord, 0, sizeof ord);
    snprintf(ord.symbol, sizeof ord.symbol, "%s", gw_symbol(g, sym));
    why = NULL;
    if (im_side_parse(req.action, &ord.side) != 0)
        why = "Only BUY and SELL orders are supported.";
    else if (strcmp(req.order_type, "STPLMT") == 0 || strcmp(req.order_type, "STP LMT") == 0)
        ord.type = IM_OT_STP_LMT;
    else if (im_order_type_parse(req.order_type, &ord.type) != 0)
        why = "Only MKT, LMT, STP and STP LMT orders are supported.";
    if (why == NULL && im_tif_parse(req.tif[0] ? req.tif : "DAY", &ord.tif) != 0)
        why = "Only DAY, GTC and IOC orders are supported.";
    if (why == NULL && req.account[0] && strcmp(req.account, g->opts.account) != 0)
        why = "The account is not managed by this login.";
    if (why == NULL && req.parent_id != 0)
        why = "Attached (parent/child) orders are not supported.";
    if (why == NULL && g->norders >= GW_MAX_ORDERS)
        why = "This gateway holds too many orders; restart it.";
    if (why != NULL) {
        SEND_ERROR(c, req.order_id, 201, "Order rejected - reason:%s", why);
        return;
    }
    ord.quantity = req.total_qty == IM_TWS_UNSET_DBL ? 0 : req.total_qty;
    ord.limit_price = req.lmt_price == IM_TWS_UNSET_DBL ? 0 : req.lmt_price;
    ord.stop_price = req.aux_price == IM_TWS_UNSET_DBL ? 0 : req.aux_price;
    /* The simulator's ref field is shorter; the gateway keeps the whole one. */
    snprintf(ord.order_ref, sizeof ord.order_ref, "%.*s", (int)sizeof ord.order_ref - 1,
             req.order_ref);
    if (strcmp(req.order_type, "STPLMT") == 0)
        snprintf(req.order_type, sizeof req.order_type, "STP LMT");
    if (!req.tif[0])
        snprintf(req.tif, sizeof req.tif, "DAY");

    o = calloc(1, sizeof *o);
    if (o == NULL || gw_add_order(g, o) != 0) {
        free(o);
        conn_close(c, "out of memory");
        return;
    }
    o->g = g;
    o->client_id = c->client_id;
    o->tws_id = req.order_id;
    o->perm_id = g->next_perm_id++;
    o->req = req;
    o->sym = sym;
    o->remaining = ord.quantity;
    o->placing = 1;
    im_tws_writer_init(&o->held);
    if (g->opts.ack_delay_ms > 0) {
        gw_ack_timer *a = calloc(1, sizeof *a);
        if (a != NULL && uv_timer_init(&g->loop, &a->t) == 0) {
            a->g = g;
            a->o = o;
            a->next = g->acks;
            if (g->acks != NULL)
                g->acks->prev = a;
            g->acks = a;
            o->holding = 1;
            uv_timer_start(&a->t, gw_ack_timer_cb, (uint64_t)g->opts.ack_delay_ms, 0);
        } else {
            free(a);
        }
    }
    rc = g->broker->ops->place(g->broker, &ord, gw_place_cb, o);
    if (rc != 0) {
        o->placing = 0;
        gw_order_reject(g, o, im_strerror(rc));
    }
    if (g->opts.drop_after_place) {
        /* Test-only: the order reached the broker; the client hears nothing. */
        g->opts.drop_after_place = 0;
        conn_close(c, "--drop-after-place: dropped after the first placeOrder");
    }
}

static void gw_req_cancel(gw_conn *c, im_tws_msg *m) {
    gw *g = c->g;
    gw_order *o;
    long long id;
    im_tws_skip(m, 1);
    id = im_tws_get_int(m);
    o = gw_find_order(g, c->client_id, id);
    if (o == NULL) {
        SEND_ERROR(c, id, 10147, "OrderId %lld that needs to be cancelled is not found.", id);
        return;
    }
    if (o->terminal) {
        SEND_ERROR(c, id, 161,
                   "Cancel attempted when order is not in a cancellable state. Order permId =%lld",
                   o->perm_id);
        return;
    }
    o->cancel_wanted = 1;
    if (!o->placing)
        gw_issue_cancel(g, o, c->serial);
}

static void gw_req_global_cancel(gw_conn *c) {
    gw *g = c->g;
    for (size_t i = 0; i < g->norders; i++) {
        gw_order *o = g->orders[i];
        if (o->terminal)
            continue;
        o->cancel_wanted = 1;
        if (!o->placing)
            gw_issue_cancel(g, o, 0);
    }
}

static void gw_req_executions(gw_conn *c, im_tws_msg *m) {
    gw *g = c->g;
    char acct[64], symbol[32], sec_type[16], side[16];
    long long req_id, client_id;

    im_tws_skip(m, 1);
    req_id = im_tws_get_int(m);
    client_id = im_tws_get_int(m);
    im_tws_get_text(m, acct, sizeof acct);
    im_tws_skip(m, 1); /* time: the simulator's whole run is "today" */
    im_tws_get_text(m, symbol, sizeof symbol);
    im_tws_get_text(m, sec_type, sizeof sec_type);
    im_tws_skip(m, 1); /* exchange */
    im_tws_get_text(m, side, sizeof side);
    if (m->err) {
        SEND_ERROR(c, req_id, 321,
                   "Error validating request:-'reqExecutions' : cause - malformed request");
        return;
    }
    for (size_t i = 0; i < g->nexecs; i++) {
        const gw_exec *x = &g->execs[(g->exec_head + i) % g->nexecs];
        int buy = x->e.side == IM_SIDE_BUY;
        if (client_id != 0 && client_id != x->o->client_id)
            continue;
        if (acct[0] && strcmp(acct, g->opts.account) != 0)
            continue;
        if (symbol[0] && strcasecmp(symbol, x->e.symbol) != 0)
            continue;
        if (sec_type[0] && strcmp(sec_type, "STK") != 0)
            continue;
        if (side[0] && (buy ? strcmp(side, "BUY") && strcmp(side, "BOT")
                            : strcmp(side, "SELL") && strcmp(side, "SLD")))
            continue;
        put_execution(&c->out, g, req_id, x);
        gw_end(c, &c->out);
        put_commission(&c->out, x);
        gw_end(c, &c->out);
    }
    put_simple(&c->out, IM_TWS_IN_EXECUTION_DATA_END, req_id, 1);
    gw_end(c, &c->out);
}

static void gw_req_account_summary(gw_conn *c, im_tws_msg *m) {
    char tags[1024];
    long long req_id;
    unsigned bits = 0;
    im_tws_skip(m, 1);
    req_id = im_tws_get_int(m);
    im_tws_skip(m, 1); /* group: "All" is the only one there is */
    im_tws_get_text(m, tags, sizeof tags);
    if (m->err) {
        SEND_ERROR(c, req_id, 321,
                   "Error validating request:-'reqAccountSummary' : cause - malformed request");
        return;
    }
    for (char *save = NULL, *t = strtok_r(tags, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save))
        for (int i = 0; i < GW_TAG_COUNT; i++)
            if (strcmp(t, gw_tag_names[i]) == 0)
                bits |= 1u << i;
    gw_ask(c->g, c, GW_REQ_SUMMARY, req_id, bits, 0, -1);
}

static void gw_req_pnl(gw_conn *c, im_tws_msg *m) {
    long long req_id = im_tws_get_int(m);
    for (int i = 0; i < c->npnl; i++)
        if (c->pnl[i] == req_id)
            return;
    if (c->npnl >= GW_MAX_PNL) {
        SEND_ERROR(c, req_id, 322, "Error processing request: too many PnL subscriptions");
        return;
    }
    c->pnl[c->npnl++] = req_id;
    gw_ask(c->g, c, GW_REQ_PNL, req_id, 0, 0, -1);
}

static void gw_cancel_pnl(gw_conn *c, im_tws_msg *m) {
    long long req_id = im_tws_get_int(m);
    for (int i = 0; i < c->npnl; i++)
        if (c->pnl[i] == req_id) {
            c->pnl[i] = c->pnl[--c->npnl];
            return;
        }
}

/* One request from a ready client. Unknown ids are logged (once per
 * connection) and ignored, as TWS ignores what it does not serve. */
static void gw_dispatch(gw_conn *c, im_tws_msg *m) {
    gw *g = c->g;
    long long v;

    switch (m->id) {
    case IM_TWS_OUT_REQ_MKT_DATA:
        gw_req_mkt_data(c, m);
        break;
    case IM_TWS_OUT_CANCEL_MKT_DATA:
        gw_cancel_mkt_data(c, m);
        break;
    case IM_TWS_OUT_PLACE_ORDER:
        gw_req_place(c, m);
        break;
    case IM_TWS_OUT_CANCEL_ORDER:
        gw_req_cancel(c, m);
        break;
    case IM_TWS_OUT_REQ_OPEN_ORDERS:
        gw_ask(g, c, GW_REQ_OPEN_ORDERS, 0, 0, 0, -1);
        break;
    case IM_TWS_OUT_REQ_ALL_OPEN_ORDERS:
        gw_ask(g, c, GW_REQ_OPEN_ORDERS, 0, 0, 1, -1);
        break;
    case IM_TWS_OUT_REQ_ACCT_UPDATES:
        im_tws_skip(m, 1);
        c->acct_updates = im_tws_get_bool(m);
        if (c->acct_updates) {
            gw_ask(g, c, GW_REQ_ACCT_VALUES, 0, 0, 0, -1);
            gw_ask(g, c, GW_REQ_ACCT_PORTFOLIO, 0, 0, 0, -1);
        }
        break;
    case IM_TWS_OUT_REQ_EXECUTIONS:
        gw_req_executions(c, m);
        break;
    case IM_TWS_OUT_REQ_IDS:
        put_next_valid_id(&c->out, gw_next_order_id(g, c->client_id));
        gw_end(c, &c->out);
        break;
    case IM_TWS_OUT_REQ_CONTRACT_DATA:
        gw_req_contract(c, m);
        break;
    case IM_TWS_OUT_REQ_AUTO_OPEN_ORDERS:
        break; /* accepted; every client hears its own orders anyway */
    case IM_TWS_OUT_REQ_MANAGED_ACCTS:
        put_managed_accounts(&c->out, g->opts.account);
        gw_end(c, &c->out);
        break;
    case IM_TWS_OUT_REQ_CURRENT_TIME:
        put_simple(&c->out, IM_TWS_IN_CURRENT_TIME, (long long)floor(im_clock_now(&g->clock)), 1);
        gw_end(c, &c->out);
        break;
    case IM_TWS_OUT_REQ_GLOBAL_CANCEL:
        gw_req_global_cancel(c);
        break;
    case IM_TWS_OUT_REQ_MKT_DATA_TYPE:
        im_tws_skip(m, 1);
        v = im_tws_get_int(m);
        if (!m->err && v >= 1 && v <= 4)
            c->mdt = (int)v;
        break;
    case IM_TWS_OUT_REQ_POSITIONS:
        c->positions = 1;
        gw_ask(g, c, GW_REQ_POSITIONS, 0, 0, 0, -1);
        break;
    case IM_TWS_OUT_CANCEL_POSITIONS:
        c->positions = 0;
        break;
    case IM_TWS_OUT_REQ_ACCOUNT_SUMMARY:
        gw_req_account_summary(c, m);
        break;
    case IM_TWS_OUT_CANCEL_ACCOUNT_SUMMARY:
        break; /* summaries are answered once; nothing streams */
    case IM_TWS_OUT_REQ_PNL:
        gw_req_pnl(c, m);
        break;
    case IM_TWS_OUT_CANCEL_PNL:
        gw_cancel_pnl(c, m);
        break;
    case GW_OUT_REQ_COMPLETED_ORDERS:
        /* Completed orders are not kept in that form: an empty list. */
        im_tws_begin(&c->out, GW_IN_COMPLETED_ORDERS_END);
        gw_end(c, &c->out);
        break;
    case IM_TWS_OUT_START_API:
        break; /* a second startApi changes nothing */
    default:
        if (!c->warned_unknown) {
            c->warned_unknown = 1;
            im_warn("gateway: %s: ignoring request id %d (not served; further unknown ids "
                    "are ignored silently)",
                    c->peer, m->id);
        }
        break;
    }
}

/* ==== connections: reading =============================================== */

static void gw_send_version(gw_conn *c) {
    char t[48];
    gw_ny_time(im_clock_now(&c->g->clock), 1, t, sizeof t);
    im_tws_begin(&c->out, IM_TWS_VERSION);
    im_tws_put_str(&c->out, t);
    gw_end(c, &c->out);
}

static void conn_process(gw_conn *c) {
    im_tws_msg m;
    size_t have;
    int rc, progress = 0;

    if (c->state == GW_HELLO) {
        int lo = 0, hi = 0;
        char opts[64];
        rc = im_tws_reader_prefix(&c->rd, &lo, &hi, opts, sizeof opts);
        if (rc == 0)
            return;
        if (rc < 0) {
            conn_close(c, "not a TWS API client: bad \"API\\0\" prefix or version range");
            return;
        }
        if (lo > IM_TWS_VERSION || hi < IM_TWS_VERSION) {
            char why[96];
            snprintf(why, sizeof why, "the client speaks v%d..%d; this gateway serves only %d", lo,
                     hi, IM_TWS_VERSION);
            conn_close(c, why);
            return;
        }
        gw_send_version(c);
        c->state = GW_START;
    }
    while (!c->closing && (c->state == GW_START || c->state == GW_READY)) {
        rc = im_tws_reader_next(&c->rd, &m);
        if (rc == 0)
            break;
        if (rc < 0) {
            conn_close(c, rc == IM_ETOOBIG ? "a frame longer than the protocol allows"
                                           : "a malformed frame");
            return;
        }
        progress = 1;
        if (c->state == GW_START) {
            if (m.id == IM_TWS_OUT_START_API)
                gw_start_api(c, &m);
            else
                im_debug("gateway: %s: request %d before startApi ignored", c->peer, m.id);
            continue;
        }
        gw_dispatch(c, &m);
    }
    if (c->closing || c->state == 0)
        return;
    /* A partial frame: refuse an absurd announced length at once, and give
     * a half-sent one GW_STALL_MS from the last whole frame to complete (a
     * busy client's reads may end mid-frame every time). */
    have = c->rd.len - c->rd.pos;
    if (have >= 4) {
        const unsigned char *p = (const unsigned char *)c->rd.buf + c->rd.pos;
        uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (len > GW_MAX_REQUEST) {
            char why[96];
            snprintf(why, sizeof why, "a request frame of %u bytes announced (limit %d)", len,
                     GW_MAX_REQUEST);
            conn_close(c, why);
            return;
        }
    }
    if (c->state == GW_READY) {
        if (have > 0 && (!c->timer_armed || progress)) {
            c->timer_armed = 1;
            uv_timer_start(&c->timer, conn_timer_cb, GW_STALL_MS, 0);
        } else if (have == 0 && c->timer_armed) {
            c->timer_armed = 0;
            uv_timer_stop(&c->timer);
        }
    }
}

static void conn_timer_cb(uv_timer_t *t) {
    gw_conn *c = t->data;
    conn_close(c, c->state == GW_READY ? "a request frame stayed incomplete for 10 s"
                                       : "no handshake within 10 s");
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
    gw_conn *c = h->data;
    IM_UNUSED(suggested);
    /* One buffer for every connection: each read is fed to the connection's
     * reader (copied) before the next read can happen. */
    *b = uv_buf_init(c->g->rbuf, sizeof c->g->rbuf);
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
    gw_conn *c = s->data;
    if (nread < 0) {
        if (nread == UV_EOF)
            im_debug("gateway: %s: peer closed", c->peer);
        conn_close(c, nread == UV_EOF ? NULL : uv_strerror((int)nread));
        return;
    }
    if (nread == 0 || c->closing)
        return;
    if (im_tws_reader_feed(&c->rd, b->base, (size_t)nread) != 0) {
        conn_close(c, "out of memory");
        return;
    }
    conn_process(c);
}

static void gw_on_connection(uv_stream_t *server, int status) {
    gw *g = server->data;
    gw_conn *c;
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;

    if (status < 0) {
        im_warn("gateway: accept: %s", uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        im_error("gateway: out of memory accepting a connection");
        return;
    }
    c->g = g;
    c->serial = ++g->next_serial;
    c->state = GW_HELLO;
    c->mdt = 1;
    c->client_id = -1;
    snprintf(c->peer, sizeof c->peer, "connection #%llu", c->serial);
    im_tws_reader_init(&c->rd, 1);
    im_tws_writer_init(&c->out);
    uv_tcp_init(&g->loop, &c->tcp);
    uv_timer_init(&g->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    /* Linked first so conn_close can unlink it on every path below. */
    c->next = g->conns;
    if (g->conns != NULL)
        g->conns->prev = c;
    g->conns = c;
    g->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c, "accept failed");
        return;
    }
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0 &&
        ss.ss_family == AF_INET) {
        char ip[32];
        uv_ip4_name((const struct sockaddr_in *)&ss, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "#%llu %s:%d", c->serial, ip,
                 ntohs(((const struct sockaddr_in *)&ss)->sin_port));
    }
    if (g->nconns > GW_MAX_CONNS) {
        conn_close(c, "too many connections");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->timer_armed = 1;
    uv_timer_start(&c->timer, conn_timer_cb, GW_HANDSHAKE_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb) != 0)
        conn_close(c, "cannot read");
}

/* Before the loop blocks: every reply built during this iteration goes out. */
static void gw_flush_cb(uv_prepare_t *h) {
    gw *g = h->data;
    gw_conn *c = g->conns, *next;
    for (; c != NULL; c = next) {
        next = c->next;
        conn_flush(c);
    }
}

/* ==== lifetime =========================================================== */

static void gw_stop(gw *g) {
    if (g->stopping)
        return;
    g->stopping = 1;
    while (g->conns != NULL)
        conn_close(g->conns, NULL);
    while (g->acks != NULL)
        gw_ack_timer_drop(g->acks);
    uv_close((uv_handle_t *)&g->server, NULL);
    uv_close((uv_handle_t *)&g->sigint, NULL);
    uv_close((uv_handle_t *)&g->sigterm, NULL);
    uv_close((uv_handle_t *)&g->flusher, NULL);
    uv_close((uv_handle_t *)&g->ticks, NULL);
    /* Pending completions are answered (IM_ECANCELED) inside close. */
    g->broker->ops->close(g->broker);
}

static void gw_signal_cb(uv_signal_t *h, int signum) {
    gw *g = h->data;
    im_info("gateway: signal %d: shutting down", signum);
    gw_stop(g);
}

static void gw_free(gw *g) {
    for (size_t i = 0; i < g->norders; i++) {
        im_tws_writer_free(&g->orders[i]->held);
        free(g->orders[i]);
    }
    free(g->orders);
    free(g->execs);
    free(g->close_px);
    free(g);
}

static void gw_walk_close_cb(uv_handle_t *h, void *arg) {
    IM_UNUSED(arg);
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int im_gateway_serve(const im_gateway_opts *o) {
    gw *g = calloc(1, sizeof *g);
    im_sim_opts so;
    struct sockaddr_in addr;
    struct sockaddr_storage ss;
    int len = (int)sizeof ss, rc, port;

    if (g == NULL) {
        im_error("gateway: out of memory");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write must not kill us */
    g->opts = *o;
    g->next_perm_id = GW_FIRST_PERM_ID;
    g->execs = calloc(GW_MAX_EXECS, sizeof *g->execs);
    if (g->execs == NULL || uv_loop_init(&g->loop) != 0) {
        im_error("gateway: out of memory");
        free(g->execs);
        free(g);
        return 1;
    }
    im_clock_init(&g->clock, IM_CLOCK_DEFAULT_SIM_START);
    memset(&so, 0, sizeof so);
    so.seed = o->seed;
    so.account_id = o->account;
    so.clock = &g->clock;
    rc = im_sim_new(&g->loop, &so, &g->sim);
    if (rc != 0) {
        im_error("gateway: cannot start the simulator: %s", im_strerror(rc));
        uv_run(&g->loop, UV_RUN_DEFAULT);
        uv_loop_close(&g->loop);
        free(g->execs);
        free(g);
        return 1;
    }
    g->broker = im_sim_broker(g->sim);
    g->broker->on_event = gw_on_event;
    g->broker->event_ud = g;
    g->nsyms = im_sim_symbol_count(g->sim);
    g->close_px = calloc(g->nsyms ? g->nsyms : 1, sizeof *g->close_px);
    for (size_t i = 0; g->close_px != NULL && i < g->nsyms; i++) {
        im_quote q;
        if (im_sim_quote_now(g->sim, im_sim_symbol_at(g->sim, i), &q) == 0)
            g->close_px[i] = q.last; /* the previous close: where the day began */
    }

    uv_tcp_init(&g->loop, &g->server);
    uv_signal_init(&g->loop, &g->sigint);
    uv_signal_init(&g->loop, &g->sigterm);
    uv_prepare_init(&g->loop, &g->flusher);
    uv_timer_init(&g->loop, &g->ticks);
    g->server.data = g->sigint.data = g->sigterm.data = g->flusher.data = g->ticks.data = g;
    if (g->close_px == NULL) {
        im_error("gateway: out of memory");
        gw_stop(g);
        rc = IM_ENOMEM;
        goto out;
    }
    /* 127.0.0.1 only: this is a test double with no authentication. */
    uv_ip4_addr("127.0.0.1", o->port, &addr);
    rc = uv_tcp_bind(&g->server, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&g->server, 128, gw_on_connection);
    if (rc != 0) {
        im_error("gateway: cannot listen on 127.0.0.1:%d: %s", o->port, uv_strerror(rc));
        gw_stop(g);
        goto out;
    }
    uv_tcp_getsockname(&g->server, (struct sockaddr *)&ss, &len);
    port = ntohs(((const struct sockaddr_in *)&ss)->sin_port);
    uv_signal_start(&g->sigint, gw_signal_cb, SIGINT);
    uv_signal_start(&g->sigterm, gw_signal_cb, SIGTERM);
    uv_prepare_start(&g->flusher, gw_flush_cb);
    uv_timer_start(&g->ticks, gw_ticks_cb, 1000, 1000);
    fprintf(stdout, "ibkr-mcp gateway listening on 127.0.0.1:%d account %s\n", port,
            o->account);
    fflush(stdout);
    im_info("gateway: serving server version %d; simulator seed %llu", IM_TWS_VERSION, o->seed);
out:
    uv_run(&g->loop, UV_RUN_DEFAULT);
    while (uv_loop_close(&g->loop) == UV_EBUSY) {
        uv_walk(&g->loop, gw_walk_close_cb, NULL);
        uv_run(&g->loop, UV_RUN_DEFAULT);
    }
    gw_free(g);
    return rc == 0 ? 0 : 1;
}

/* ==== command line ======================================================= */

static const char gw_usage[] =
    "usage: ibkr-mcp gateway [--port N] [--seed N]\n"
    "  The simulator as a fake TWS / IB Gateway (TWS API server version 178)\n"
    "  on 127.0.0.1 only. Prints one line to stdout once listening:\n"
    "    ibkr-mcp gateway listening on 127.0.0.1:PORT account ACCOUNT\n"
    "  --port N            TCP port (default 7490; 0 picks a free port)\n"
    "  --seed N            simulator seed (default 42)\n"
    "Test-only options (fault injection for tests; never for real use):\n"
    "  --account ID        serve this account id instead of DU0000001\n"
    "  --drop-after-place  close the connection of the first placeOrder, unanswered\n"
    "  --ack-delay-ms N    hold each placeOrder's acknowledgements for N ms\n"
    "  --delayed-only      no real-time subscription: 354 under market data type 1,\n"
    "                      10167 and delayed ticks under types 3 and 4\n";

void im_gateway_opts_init(im_gateway_opts *o) {
    memset(o, 0, sizeof *o);
    o->port = IM_GATEWAY_DEFAULT_PORT;
    o->seed = 42;
    snprintf(o->account, sizeof o->account, "DU0000001");
}

/* A whole decimal number in [lo, hi]; 0 or IM_EINVAL. */
static int gw_parse_num(const char *s, unsigned long long hi, unsigned long long *out) {
    char *end;
    unsigned long long v;
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return IM_EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > hi)
        return IM_EINVAL;
    *out = v;
    return 0;
}

int im_gateway_parse_args(int argc, char **argv, im_gateway_opts *o, char *err, size_t errlen) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long long n;
        if (strcmp(a, "--port") == 0) {
            if (gw_parse_num(v, 65535, &n) != 0) {
                snprintf(err, errlen, "--port needs a number from 0 to 65535");
                return IM_EINVAL;
            }
            if (n == 7496 || n == 7497 || n == 4001 || n == 4002) {
                snprintf(err, errlen,
                         "--port %llu is a real TWS / IB Gateway port; pick another so the fake "
                         "is never mistaken for the real thing",
                         n);
                return IM_EINVAL;
            }
            o->port = (int)n;
            i++;
        } else if (strcmp(a, "--seed") == 0) {
            if (gw_parse_num(v, ULLONG_MAX, &n) != 0) {
                snprintf(err, errlen, "--seed needs a whole number");
                return IM_EINVAL;
            }
            o->seed = n;
            i++;
        } else if (strcmp(a, "--account") == 0) {
            size_t len = v != NULL ? strlen(v) : 0;
            int ok = len > 0 && len < sizeof o->account;
            for (size_t k = 0; ok && k < len; k++)
                ok = isalnum((unsigned char)v[k]);
            if (!ok) {
                snprintf(err, errlen, "--account needs 1 to %zu letters and digits",
                         sizeof o->account - 1);
                return IM_EINVAL;
            }
            snprintf(o->account, sizeof o->account, "%s", v);
            i++;
        } else if (strcmp(a, "--ack-delay-ms") == 0) {
            if (gw_parse_num(v, 600000, &n) != 0) {
                snprintf(err, errlen, "--ack-delay-ms needs a number from 0 to 600000");
                return IM_EINVAL;
            }
            o->ack_delay_ms = (int)n;
            i++;
        } else if (strcmp(a, "--drop-after-place") == 0) {
            o->drop_after_place = 1;
        } else if (strcmp(a, "--delayed-only") == 0) {
            o->delayed_only = 1;
        } else {
            snprintf(err, errlen, "unknown gateway option '%.64s'", a);
            return IM_EINVAL;
        }
    }
    return 0;
}

int im_gateway_run(int argc, char **argv) {
    im_gateway_opts o;
    char err[256];
    const char *lvl = getenv("IBKR_LOG_LEVEL");
    int level;

    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(gw_usage, stdout);
        return 0;
    }
    im_gateway_opts_init(&o);
    if (im_gateway_parse_args(argc - 1, argv + 1, &o, err, sizeof err) != 0) {
        fprintf(stderr, "ibkr-mcp: gateway: %s\n%s", err, gw_usage);
        return 2;
    }
    if (lvl != NULL && im_log_parse_level(lvl, &level) == 0)
        im_log_set_level(level);
    return im_gateway_serve(&o);
}
