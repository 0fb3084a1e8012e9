/* tws.c: the TWS / IB Gateway backend (tws.h).
 *
 * State machine of one connection:
 *   DISCONNECTED -> CONNECTING (TCP) -> HANDSHAKE (prefix sent, waiting for
 *   the server version) -> STARTING (startApi sent, waiting for
 *   nextValidId and managedAccounts) -> RECONCILING (all open orders and
 *   today's executions requested) -> READY.
 * Only READY serves the broker operations; before it, an operation is
 * answered (from a later loop iteration, as broker.h requires) with a
 * sentence saying why. Orders whose acknowledgement was outstanding when
 * the connection went are kept "in doubt" and settled by reconciliation:
 * found by orderRef (they reached TWS) or declared not placed. Nothing is
 * ever resent.
 *
 * Operations are records on one list; each waits for the messages that
 * carry its request id (or order id) and has a deadline checked by a
 * 200 ms sweep. Request ids start at TWS_REQ_BASE so an errMsg id is never
 * ambiguous between a request and an order (order ids come from
 * nextValidId and stay far below it). A finished operation moves to the
 * done list, drained by an idle handle, so no callback runs inside the call
 * that started it. */
#include "tws.h"

#include <math.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common.h"
#include "error.h"
#include "log.h"
#include "tws_codec.h"

#define TWS_REQ_BASE 1000000000LL
#define TWS_SWEEP_MS 200
#define TWS_FILL_FLUSH_MS 2000   /* a fill whose commission report never came */
#define TWS_MAX_ORDERS 8192
#define TWS_MAX_EXECS 16384
#define TWS_MAX_CONTRACTS 4096
#define TWS_MAX_PORTFOLIO 4096
#define TWS_READ_CHUNK 65536
#define TWS_ERR_MAX 320
#define TWS_MSG_MAX 640   /* an operation's sentence: room for a TWS error inside */

typedef enum tws_state {
    ST_DISCONNECTED = 0,
    ST_CONNECTING,
    ST_HANDSHAKE,
    ST_STARTING,
    ST_RECONCILING,
    ST_READY,
    ST_CLOSED,
} tws_state;

typedef enum op_kind {
    OP_QUOTE = 1,
    OP_ACCOUNT,
    OP_POSITIONS,
    OP_ORDERS,
    OP_EXECS,
    OP_PLACE,
    OP_CANCEL,
    OP_EVENT,   /* not an operation: a broker event, delivered in order */
} op_kind;

/* Quote stages: resolving the contract, a live snapshot, a delayed one. */
enum { QS_CONTRACT = 0, QS_LIVE, QS_DELAYED };

typedef struct tws_op tws_op;
struct tws_op {
    tws_op *next;
    struct im_tws *t;
    op_kind kind;
    int stage;
    long long id;            /* request id, ticker id or order id */
    uint64_t deadline;       /* uv_now() ms */
    int status;              /* when done */
    char msg[TWS_MSG_MAX];
    void *ud;
    union {
        im_quote_cb quote;
        im_account_cb account;
        im_positions_cb positions;
        im_orders_cb orders;
        im_execs_cb execs;
        im_order_cb order;
    } cb;
    /* payloads */
    char symbol[IM_SYMBOL_MAX];
    im_quote q;
    double close;
    int have_bid, have_ask, have_last;
    im_account acct;
    unsigned acct_seen;      /* bit per summary tag */
    im_order order;          /* OP_PLACE: what to send */
    im_order_info info;      /* OP_PLACE / OP_CANCEL result */
    int have_info;
    void *arr;               /* result array (positions, orders, executions) */
    size_t n, cap;
    /* OP_EVENT */
    im_broker_event_kind ev_kind;
    im_execution exec;
    int connected;
};

/* An order TWS told us about, or one we sent. */
typedef struct tws_order {
    long long order_id;
    long long perm_id;
    int client_id;
    int ours;                /* sent by this process */
    int acked;               /* TWS has answered for it */
    unsigned seen_gen;       /* open-orders round that listed it */
    im_order_info info;
} tws_order;

typedef struct tws_exec {
    im_execution e;
    long long order_id;
    int e_client;            /* the API client that placed it */
    long long perm_id;
    int have_commission;
    int reported;            /* raised as a fill event */
    uint64_t arrived;        /* uv_now() ms */
} tws_exec;

typedef struct tws_contract {
    char symbol[IM_SYMBOL_MAX];
    long long con_id;
    char primary_exch[24];
} tws_contract;

typedef struct tws_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    im_tws_reader rd;
    struct im_tws *t;
    int closing;
} tws_conn;

typedef struct tws_wreq {
    uv_write_t req;
    char *data;
} tws_wreq;

struct im_tws {
    im_broker base;           /* first: the broker view */
    uv_loop_t *loop;
    im_clock *clock;
    char host[64];
    int port;
    int client_id;
    char want_account[IM_ACCOUNT_MAX];
    unsigned connect_ms, request_ms, quote_ms, place_ms, backoff_max_ms;
    struct sockaddr_storage addr;
    int have_addr;

    tws_state state;
    tws_conn *conn;
    uv_timer_t sweep;         /* deadlines, fill flush */
    uv_timer_t retry;         /* reconnect back-off */
    uv_idle_t idle;           /* delivers finished operations */
    int handles;              /* open handles, for the final free */
    uint64_t state_deadline;  /* connect/handshake/start deadline */
    uint64_t retry_at;
    unsigned attempts;        /* failed attempts in a row */
    int ever_ready;
    int reconnects;
    int server_version;
    char account[IM_ACCOUNT_MAX];
    char last_error[TWS_ERR_MAX];
    double last_error_at;
    int have_next_id, have_accounts;
    long long next_order_id;
    long long next_req_id;
    int delayed_seen;
    int ib_link_down;         /* TWS lost IB (1100) */

    tws_op *ops;              /* pending */
    tws_op *done, *done_tail; /* finished, to deliver */

    tws_order *orders;
    size_t norders, cap_orders;
    tws_exec *execs;
    size_t nexecs, cap_execs;
    tws_contract *contracts;
    size_t ncontracts, cap_contracts;
    im_position *portfolio;
    size_t nportfolio, cap_portfolio;
    int portfolio_ready;
    double pnl_daily, pnl_unrealized, pnl_realized;
    int have_pnl;
    double av_realized, av_unrealized;  /* updateAccountValue fallbacks */

    /* open-orders rounds (reqAllOpenOrders has no request id) */
    unsigned oo_gen;
    int oo_inflight;
    /* reconciliation */
    int recon_orders_pending;
    long long recon_exec_req;
    long long pnl_req;

    im_tws_writer out;
};

/* ---- small helpers ------------------------------------------------------ */

static uint64_t tws_now_ms(im_tws *t) { return uv_now(t->loop); }

static double tws_epoch(im_tws *t) { return t->clock ? im_clock_now(t->clock) : (double)time(NULL); }

static void tws_set_error(im_tws *t, const char *fmt, ...) IM_PRINTF(2, 3);
static void tws_set_error(im_tws *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->last_error, sizeof t->last_error, fmt, ap);
    va_end(ap);
    t->last_error_at = tws_epoch(t);
    im_warn("tws: %s", t->last_error);
}

/* Copies src into dst[n], cutting at n - 1 bytes (callers size fields so
 * that real values fit; a cut is only ever cosmetic). */
static void copy_text(char *dst, size_t n, const char *src) {
    size_t len = src ? strnlen(src, n - 1) : 0;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

static void *grow(void *p, size_t *cap, size_t need, size_t elem, size_t max) {
    size_t nc;
    void *np;
    if (need <= *cap)
        return p;
    if (need > max)
        return NULL;
    nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    if (nc > max)
        nc = max;
    np = realloc(p, nc * elem);
    if (np == NULL)
        return NULL;
    *cap = nc;
    return np;
}

const char *im_tws_error_text(int code) {
    switch (code) {
    case 100: return "TWS's message rate limit (50 per second) was exceeded";
    case 103: return "duplicate order id";
    case 110: return "the price does not conform to the instrument's minimum tick";
    case 161: return "the order is not in a cancellable state";
    case 200: return "no security definition was found for the request";
    case 201: return "the order was rejected";
    case 202: return "the order was cancelled";
    case 326: return "the client id is already in use by another API connection; set "
                     "IBKR_CLIENT_ID to a free id";
    case 354: return "market data is not subscribed for this instrument";
    case 502: return "cannot connect to TWS / IB Gateway: check that it is running, that "
                     "'Enable ActiveX and Socket Clients' is on, and the port";
    case 504: return "not connected to TWS / IB Gateway";
    case 1100: return "TWS has lost its connection to IB's servers";
    case 1101: return "TWS reconnected to IB; market data subscriptions were lost and are renewed";
    case 1102: return "TWS reconnected to IB; data was maintained";
    case 10147: return "no order with that id exists to cancel";
    case 10148: return "the order cannot be cancelled in its current state";
    case 10167: return "no real-time subscription: delayed market data is shown";
    case 10168: return "no real-time subscription and delayed market data is not enabled";
    case 2104: case 2106: case 2158: return "a data farm connection is OK (information)";
    default: return NULL;
    }
}

static const char *state_name(tws_state s) {
    switch (s) {
    case ST_READY: return "connected";
    case ST_RECONCILING: return "reconciling";
    case ST_CONNECTING: case ST_HANDSHAKE: case ST_STARTING: return "connecting";
    default: return "disconnected";
    }
}

/* ---- operations --------------------------------------------------------- */

static void op_free(tws_op *op) {
    free(op->arr);
    free(op);
}

static void tws_arm_idle(im_tws *t);

/* Moves op (already unlinked) to the done list. */
static void op_done(im_tws *t, tws_op *op, int status, const char *fmt, ...) IM_PRINTF(4, 5);
static void op_done(im_tws *t, tws_op *op, int status, const char *fmt, ...) {
    op->status = status;
    op->msg[0] = '\0';
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(op->msg, sizeof op->msg, fmt, ap);
        va_end(ap);
    }
    op->next = NULL;
    if (t->done_tail)
        t->done_tail->next = op;
    else
        t->done = op;
    t->done_tail = op;
    tws_arm_idle(t);
}

static void op_unlink(im_tws *t, tws_op *op) {
    for (tws_op **pp = &t->ops; *pp; pp = &(*pp)->next) {
        if (*pp == op) {
            *pp = op->next;
            op->next = NULL;
            return;
        }
    }
}

static void op_finish(im_tws *t, tws_op *op, int status, const char *msg) {
    op_unlink(t, op);
    op_done(t, op, status, msg ? "%s" : NULL, msg);
}

static tws_op *op_new(im_tws *t, op_kind kind, void *ud) {
    tws_op *op = calloc(1, sizeof *op);
    if (op == NULL)
        return NULL;
    op->t = t;
    op->kind = kind;
    op->ud = ud;
    op->id = -1;
    op->next = t->ops;
    t->ops = op;
    return op;
}

static void op_deliver(tws_op *op) {
    const char *msg = op->msg[0] ? op->msg : NULL;
    int ok = op->status == 0;
    switch (op->kind) {
    case OP_QUOTE:
        op->cb.quote(op->ud, op->status, msg, ok ? &op->q : NULL);
        break;
    case OP_ACCOUNT:
        op->cb.account(op->ud, op->status, msg, ok ? &op->acct : NULL);
        break;
    case OP_POSITIONS:
        op->cb.positions(op->ud, op->status, msg, ok ? op->arr : NULL, ok ? op->n : 0);
        break;
    case OP_ORDERS:
        op->cb.orders(op->ud, op->status, msg, ok ? op->arr : NULL, ok ? op->n : 0);
        break;
    case OP_EXECS:
        op->cb.execs(op->ud, op->status, msg, ok ? op->arr : NULL, ok ? op->n : 0);
        break;
    case OP_PLACE:
    case OP_CANCEL:
        op->cb.order(op->ud, op->status, msg, op->have_info ? &op->info : NULL);
        break;
    case OP_EVENT:
        if (op->t->base.on_event != NULL) {
            im_broker_event ev;
            memset(&ev, 0, sizeof ev);
            ev.kind = op->ev_kind;
            ev.order = op->have_info ? &op->info : NULL;
            ev.exec = op->ev_kind == IM_BEV_FILL ? &op->exec : NULL;
            ev.connected = op->connected;
            ev.message = msg;
            op->t->base.on_event(op->t->base.event_ud, &ev);
        }
        break;
    }
}

/* Queues a broker event behind the completions already queued, so that
 * the session hears of an order's placement before of its changes. */
static void raise_event(im_tws *t, im_broker_event_kind kind, const im_order_info *info,
                        const im_execution *exec, int connected, const char *message) {
    tws_op *op;
    if (t->base.on_event == NULL || t->state == ST_CLOSED || (op = calloc(1, sizeof *op)) == NULL)
        return;
    op->t = t;
    op->kind = OP_EVENT;
    op->ev_kind = kind;
    if (info != NULL) {
        op->info = *info;
        op->have_info = 1;
    }
    if (exec != NULL)
        op->exec = *exec;
    op->connected = connected;
    op_done(t, op, 0, message ? "%s" : NULL, message);
}

static void tws_idle_cb(uv_idle_t *h) {
    im_tws *t = h->data;
    tws_op *list = t->done;
    t->done = t->done_tail = NULL;
    uv_idle_stop(&t->idle);
    while (list) {
        tws_op *op = list;
        list = op->next;
        op_deliver(op);
        op_free(op);
    }
}

static void tws_arm_idle(im_tws *t) {
    if (t->state != ST_CLOSED)
        uv_idle_start(&t->idle, tws_idle_cb);
}

/* The sentence for an operation refused because the connection is not
 * ready. */
static void not_ready_msg(im_tws *t, char *out, size_t n) {
    if (t->state == ST_RECONCILING) {
        snprintf(out, n,
                 "Reconnected to TWS at %s:%d and reconciling open orders and executions; "
                 "try again in a moment.",
                 t->host, t->port);
        return;
    }
    if (t->state == ST_CONNECTING || t->state == ST_HANDSHAKE || t->state == ST_STARTING) {
        snprintf(out, n, "Connecting to TWS / IB Gateway at %s:%d%s%.200s; try again in a moment.",
                 t->host, t->port, t->last_error[0] ? " (last error: " : "",
                 t->last_error[0] ? t->last_error : "");
        if (t->last_error[0] && strlen(out) + 2 < n) {
            /* close the parenthesis before "; try again" */
            char *semi = strstr(out, "; try again");
            if (semi != NULL) {
                memmove(semi + 1, semi, strlen(semi) + 1);
                *semi = ')';
            }
        }
        return;
    }
    {
        double in = t->retry_at > tws_now_ms(t) ? (double)(t->retry_at - tws_now_ms(t)) / 1000.0 : 0;
        snprintf(out, n,
                 "Not connected to TWS / IB Gateway at %s:%d: %.200s. Reconnecting automatically "
                 "(next attempt in %.0f s); get_status shows the connection.",
                 t->host, t->port, t->last_error[0] ? t->last_error : "not connected yet", in);
    }
}

/* Starts an operation that needs the connection; a refused one is
 * finished at once with the reason (delivered later). Returns op or NULL
 * when out of memory. */
static tws_op *op_start(im_tws *t, op_kind kind, void *ud, int *refused) {
    tws_op *op = op_new(t, kind, ud);
    *refused = 0;
    if (op == NULL)
        return NULL;
    if (t->state != ST_READY) {
        char msg[TWS_MSG_MAX];
        not_ready_msg(t, msg, sizeof msg);
        op_finish(t, op, IM_ENOTCONN, msg);
        *refused = 1;
    }
    return op;
}

/* ---- output ------------------------------------------------------------- */

static void tws_write_cb(uv_write_t *req, int status) {
    tws_wreq *w = (tws_wreq *)req;
    free(w->data);
    free(w);
    IM_UNUSED(status); /* a failed write shows up as a read error */
}

static void tws_drop(im_tws *t, const char *why);

/* Writes what was composed in t->out. */
static void tws_flush(im_tws *t) {
    tws_wreq *w;
    uv_buf_t b;
    int rc = im_tws_writer_error(&t->out);
    if (rc != 0) {
        im_tws_writer_reset(&t->out);
        tws_drop(t, "could not compose a message for TWS (out of memory)");
        return;
    }
    if (t->out.len == 0)
        return;
    if (t->conn == NULL || t->conn->closing) {
        im_tws_writer_reset(&t->out);
        return;
    }
    w = malloc(sizeof *w);
    if (w == NULL) {
        im_tws_writer_reset(&t->out);
        tws_drop(t, "out of memory");
        return;
    }
    w->data = t->out.data;
    b = uv_buf_init(w->data, (unsigned)t->out.len);
    im_tws_writer_init(&t->out); /* the buffer now belongs to the write */
    rc = uv_write(&w->req, (uv_stream_t *)&t->conn->tcp, &b, 1, tws_write_cb);
    if (rc != 0) {
        free(w->data);
        free(w);
        tws_drop(t, "cannot write to TWS");
    }
}

static void put_contract_request(im_tws *t, long long req_id, const char *symbol) {
    im_tws_writer *w = &t->out;
    im_tws_begin(w, IM_TWS_OUT_REQ_CONTRACT_DATA);
    im_tws_put_int(w, 8);
    im_tws_put_int(w, req_id);
    im_tws_put_int(w, 0);          /* conId */
    im_tws_put_str(w, symbol);
    im_tws_put_str(w, "STK");
    im_tws_put_str(w, "");         /* lastTradeDateOrContractMonth */
    im_tws_put_dbl(w, 0);          /* strike */
    im_tws_put_str(w, "");         /* right */
    im_tws_put_str(w, "");         /* multiplier */
    im_tws_put_str(w, "SMART");
    im_tws_put_str(w, "");         /* primaryExch */
    im_tws_put_str(w, "USD");
    im_tws_put_str(w, "");         /* localSymbol */
    im_tws_put_str(w, "");         /* tradingClass */
    im_tws_put_bool(w, 0);         /* includeExpired */
    im_tws_put_str(w, "");         /* secIdType */
    im_tws_put_str(w, "");         /* secId */
    im_tws_put_str(w, "");         /* issuerId */
    im_tws_end(w);
}

static void put_market_data_type(im_tws *t, int type) {
    im_tws_begin(&t->out, IM_TWS_OUT_REQ_MKT_DATA_TYPE);
    im_tws_put_int(&t->out, 1);
    im_tws_put_int(&t->out, type);
    im_tws_end(&t->out);
}

static void put_snapshot_request(im_tws *t, long long ticker, const tws_contract *c) {
    im_tws_writer *w = &t->out;
    im_tws_begin(w, IM_TWS_OUT_REQ_MKT_DATA);
    im_tws_put_int(w, 11);
    im_tws_put_int(w, ticker);
    im_tws_put_int(w, c->con_id);
    im_tws_put_str(w, c->symbol);
    im_tws_put_str(w, "STK");
    im_tws_put_str(w, "");
    im_tws_put_dbl(w, 0);
    im_tws_put_str(w, "");
    im_tws_put_str(w, "");
    im_tws_put_str(w, "SMART");
    im_tws_put_str(w, c->primary_exch);
    im_tws_put_str(w, "USD");
    im_tws_put_str(w, "");
    im_tws_put_str(w, "");
    im_tws_put_bool(w, 0);         /* no delta-neutral contract */
    im_tws_put_str(w, "");         /* generic ticks: none for a snapshot (414) */
    im_tws_put_bool(w, 1);         /* snapshot */
    im_tws_put_bool(w, 0);         /* regulatory snapshot */
    im_tws_put_str(w, "");         /* options */
    im_tws_end(w);
}

static long long tws_req_id(im_tws *t) { return t->next_req_id++; }

/* ---- the contract cache ------------------------------------------------- */

static tws_contract *contract_find(im_tws *t, const char *symbol) {
    for (size_t i = 0; i < t->ncontracts; i++)
        if (strcmp(t->contracts[i].symbol, symbol) == 0)
            return &t->contracts[i];
    return NULL;
}

static tws_contract *contract_add(im_tws *t, const char *symbol) {
    tws_contract *c = contract_find(t, symbol), *nc;
    if (c != NULL)
        return c;
    if (t->ncontracts == TWS_MAX_CONTRACTS)
        t->ncontracts = 0; /* a full cache starts over: entries are cheap to refetch */
    nc = grow(t->contracts, &t->cap_contracts, t->ncontracts + 1, sizeof *nc, TWS_MAX_CONTRACTS);
    if (nc == NULL)
        return NULL;
    t->contracts = nc;
    c = &t->contracts[t->ncontracts++];
    memset(c, 0, sizeof *c);
    copy_text(c->symbol, sizeof c->symbol, symbol);
    return c;
}

/* ---- orders and executions ---------------------------------------------- */

/* Order ids are per API client: an order is (client id, order id), or
 * its permId when TWS gave it no order id (placed by hand in TWS). */
static int order_is(const tws_order *o, int client, long long id, long long perm) {
    if (id <= 0)
        return perm != 0 && o->order_id <= 0 && o->perm_id == perm;
    return o->order_id == id && o->client_id == client;
}

static tws_order *order_find(im_tws *t, int client, long long id, long long perm) {
    for (size_t i = 0; i < t->norders; i++)
        if (order_is(&t->orders[i], client, id, perm))
            return &t->orders[i];
    return NULL;
}

/* This connection's own order id. */
static tws_order *order_mine(im_tws *t, long long id) { return order_find(t, t->client_id, id, 0); }

static tws_order *order_find_ref(im_tws *t, const char *ref) {
    if (ref == NULL || ref[0] == '\0')
        return NULL;
    for (size_t i = 0; i < t->norders; i++)
        if (strcmp(t->orders[i].info.order.order_ref, ref) == 0)
            return &t->orders[i];
    return NULL;
}

/* Finds or adds the order; evicts the oldest finished order when full. */
static tws_order *order_get(im_tws *t, int client, long long id, long long perm) {
    tws_order *o = order_find(t, client, id, perm), *no;
    if (o != NULL)
        return o;
    if (t->norders == TWS_MAX_ORDERS) {
        size_t k;
        for (k = 0; k < t->norders; k++)
            if (im_order_status_terminal(t->orders[k].info.status))
                break;
        if (k == t->norders)
            return NULL;
        memmove(&t->orders[k], &t->orders[k + 1], (t->norders - k - 1) * sizeof *t->orders);
        t->norders--;
    }
    no = grow(t->orders, &t->cap_orders, t->norders + 1, sizeof *no, TWS_MAX_ORDERS);
    if (no == NULL)
        return NULL;
    t->orders = no;
    o = &t->orders[t->norders++];
    memset(o, 0, sizeof *o);
    o->order_id = id;
    o->client_id = client;
    o->perm_id = perm;
    /* Only this client's ids are plain numbers (cancel_order takes them);
     * another client's orders are shown, not cancellable from here. */
    if (id > 0 && client == t->client_id)
        snprintf(o->info.order_id, sizeof o->info.order_id, "%lld", id);
    else if (id > 0)
        snprintf(o->info.order_id, sizeof o->info.order_id, "c%d-%lld", client, id);
    else
        snprintf(o->info.order_id, sizeof o->info.order_id, "p%lld", perm);
    o->info.status = IM_OS_PENDING;
    o->info.submitted_at = o->info.updated_at = tws_epoch(t);
    return o;
}

static im_order_status map_status(const char *s, double filled, double remaining) {
    if (strcmp(s, "Filled") == 0)
        return IM_OS_FILLED;
    if (strcmp(s, "Cancelled") == 0 || strcmp(s, "ApiCancelled") == 0)
        return filled > 0 && remaining <= 0 ? IM_OS_FILLED : IM_OS_CANCELLED;
    if (strcmp(s, "Inactive") == 0)
        return IM_OS_REJECTED;
    if (strcmp(s, "PendingSubmit") == 0 || strcmp(s, "ApiPending") == 0)
        return IM_OS_PENDING;
    /* PreSubmitted, Submitted, PendingCancel: working */
    return filled > 0 ? IM_OS_PARTIAL : IM_OS_SUBMITTED;
}

static void raise_order(im_tws *t, const tws_order *o) {
    raise_event(t, IM_BEV_ORDER, &o->info, NULL, 0, o->info.message[0] ? o->info.message : NULL);
}

static void order_settle_ops(im_tws *t, tws_order *o);

/* Applies a status to an order, raising an event when it changed. */
static void order_update(im_tws *t, tws_order *o, im_order_status st, double filled,
                         double remaining, double avg) {
    int changed;
    /* A final state stays final: TWS follows a 201 rejection with a
     * Cancelled status, and the rejection is the news. */
    if (im_order_status_terminal(o->info.status) && st != o->info.status &&
        st != IM_OS_FILLED)
        st = o->info.status;
    changed = st != o->info.status || filled != o->info.filled;
    o->info.status = st;
    if (isfinite(filled) && filled != IM_TWS_UNSET_DBL)
        o->info.filled = filled;
    if (isfinite(remaining) && remaining != IM_TWS_UNSET_DBL)
        o->info.remaining = remaining;
    if (isfinite(avg) && avg > 0 && avg != IM_TWS_UNSET_DBL)
        o->info.avg_fill_price = avg;
    o->info.updated_at = tws_epoch(t);
    o->acked = 1;
    /* The waiting place or cancel first: the session learns of the order
     * before of its changes (both go through the same queue). */
    order_settle_ops(t, o);
    if (changed && t->state == ST_READY)
        raise_order(t, o);
}

static tws_exec *exec_find(im_tws *t, const char *exec_id) {
    for (size_t i = 0; i < t->nexecs; i++)
        if (strcmp(t->execs[i].e.exec_id, exec_id) == 0)
            return &t->execs[i];
    return NULL;
}

static tws_exec *exec_get(im_tws *t, const char *exec_id, int *created) {
    tws_exec *x = exec_find(t, exec_id), *nx;
    *created = 0;
    if (x != NULL)
        return x;
    if (t->nexecs == TWS_MAX_EXECS) {
        memmove(&t->execs[0], &t->execs[1], (t->nexecs - 1) * sizeof *t->execs);
        t->nexecs--;
    }
    nx = grow(t->execs, &t->cap_execs, t->nexecs + 1, sizeof *nx, TWS_MAX_EXECS);
    if (nx == NULL)
        return NULL;
    t->execs = nx;
    x = &t->execs[t->nexecs++];
    memset(x, 0, sizeof *x);
    copy_text(x->e.exec_id, sizeof x->e.exec_id, exec_id);
    x->arrived = tws_now_ms(t);
    *created = 1;
    return x;
}

static void raise_fill(im_tws *t, tws_exec *x) {
    tws_order *o = order_find(t, x->e_client, x->order_id, x->perm_id);
    x->reported = 1;
    if (o != NULL)
        raise_event(t, IM_BEV_FILL, &o->info, &x->e, 0, NULL);
}

/* "20250310 10:31:05 America/New_York", "20250310  10:31:05" (TWS local
 * time, taken as New York) or "... UTC". Returns epoch seconds or 0. */
static double parse_exec_time(const char *s) {
    struct tm tm;
    int y, mo, d, h, mi, se, n = 0;
    double t0;
    if (sscanf(s, "%4d%2d%2d %d:%d:%d%n", &y, &mo, &d, &h, &mi, &se, &n) != 6)
        return 0;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    t0 = (double)timegm(&tm);
    while (s[n] == ' ')
        n++;
    if (strcmp(s + n, "UTC") == 0 || strcmp(s + n, "GMT") == 0)
        return t0;
    /* New York local: standard or daylight time, whichever reads back. */
    for (int off = 4; off <= 5; off++) {
        int sod, wd;
        double cand = t0 + off * 3600.0;
        if (im_clock_ny_seconds_of_day(cand, &sod, &wd) == 0 && sod == h * 3600 + mi * 60 + se)
            return cand;
    }
    return t0 + 5 * 3600.0;
}

/* ---- connection ----------------------------------------------------------- */

static void tws_schedule_retry(im_tws *t);
static void conn_close_cb(uv_handle_t *h);

/* Fails what cannot survive a lost connection; orders awaiting their
 * acknowledgement stay, in doubt, for reconciliation. */
static void fail_pending(im_tws *t, const char *why) {
    tws_op **pp = &t->ops;
    char msg[TWS_MSG_MAX];
    snprintf(msg, sizeof msg,
             "The connection to TWS at %s:%d was lost (%.200s); the request was not answered. "
             "Reconnecting automatically.",
             t->host, t->port, why);
    while (*pp) {
        tws_op *op = *pp;
        if (op->kind == OP_PLACE && op->stage == 1) {
            pp = &op->next;
            continue;
        }
        *pp = op->next;
        if (op->kind == OP_PLACE) /* not yet sent: safe to say so */
            op_done(t, op, IM_ENOTCONN,
                    "The connection to TWS at %s:%d was lost (%.200s) before the order was sent; "
                    "it was not placed.",
                    t->host, t->port, why);
        else
            op_done(t, op, IM_ENOTCONN, "%s", msg);
    }
}

/* Drops the connection (if any) and schedules a reconnect. */
static void tws_drop(im_tws *t, const char *why) {
    int was_ready = t->state == ST_READY || t->state == ST_RECONCILING;
    if (t->state == ST_CLOSED)
        return;
    if (why != NULL)
        tws_set_error(t, "%s", why);
    if (t->conn != NULL && !t->conn->closing) {
        t->conn->closing = 1;
        uv_close((uv_handle_t *)&t->conn->tcp, conn_close_cb);
    }
    t->conn = NULL;
    t->state = ST_DISCONNECTED;
    t->portfolio_ready = 0;
    t->oo_inflight = 0;
    t->recon_orders_pending = 0;
    t->recon_exec_req = 0;
    t->have_next_id = t->have_accounts = 0;
    t->server_version = 0;
    t->pnl_req = 0;
    im_tws_writer_reset(&t->out);
    fail_pending(t, t->last_error);
    if (was_ready)
        raise_event(t, IM_BEV_CONNECTION, NULL, NULL, 0, t->last_error);
    tws_schedule_retry(t);
}

/* One handle fewer; the last one out frees the backend. */
static void tws_handle_gone(im_tws *t) {
    t->handles--;
    if (t->state == ST_CLOSED && t->handles == 0) {
        free(t->orders);
        free(t->execs);
        free(t->contracts);
        free(t->portfolio);
        im_tws_writer_free(&t->out);
        free(t);
    }
}

static void conn_close_cb(uv_handle_t *h) {
    tws_conn *c = h->data;
    im_tws *t = c->t;
    im_tws_reader_free(&c->rd);
    free(c);
    tws_handle_gone(t);
}

static void tws_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    IM_UNUSED(h);
    IM_UNUSED(suggested);
    buf->base = malloc(TWS_READ_CHUNK);
    buf->len = buf->base ? TWS_READ_CHUNK : 0;
}

static void tws_dispatch(im_tws *t, im_tws_msg *m);

static void tws_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    tws_conn *c = s->data;
    im_tws *t = c->t;
    if (nread < 0) {
        free(buf->base);
        if (t->conn == c) {
            if (nread == UV_EOF)
                tws_drop(t, t->state == ST_STARTING || t->state == ST_HANDSHAKE
                                ? "TWS closed the connection during the handshake (is the client "
                                  "id already in use, or the API not enabled?)"
                                : "TWS closed the connection");
            else {
                char why[128];
                snprintf(why, sizeof why, "connection to TWS failed: %s", uv_strerror((int)nread));
                tws_drop(t, why);
            }
        }
        return;
    }
    if (nread > 0 && t->conn == c) {
        im_tws_msg m;
        int rc = im_tws_reader_feed(&c->rd, buf->base, (size_t)nread);
        while (rc == 0 && t->conn == c) {
            rc = im_tws_reader_next(&c->rd, &m);
            if (rc != 1)
                break;
            tws_dispatch(t, &m);
            rc = 0;
        }
        if (rc < 0 && t->conn == c) {
            char why[128];
            snprintf(why, sizeof why, "TWS sent a malformed message (%s); reconnecting",
                     im_strerror(rc));
            tws_drop(t, why);
        }
        if (t->conn == c)
            tws_flush(t);
    }
    free(buf->base);
}

static void tws_connect_cb(uv_connect_t *req, int status) {
    tws_conn *c = req->data;
    im_tws *t = c->t;
    if (t->conn != c)
        return;
    if (status != 0) {
        char why[TWS_ERR_MAX];
        snprintf(why, sizeof why, "cannot connect to TWS / IB Gateway at %s:%d (%s): is it "
                 "running, with API socket clients enabled on that port?",
                 t->host, t->port, uv_strerror(status));
        tws_drop(t, why);
        return;
    }
    t->state = ST_HANDSHAKE;
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, tws_alloc_cb, tws_read_cb) != 0) {
        tws_drop(t, "cannot read from the TWS socket");
        return;
    }
    im_tws_put_prefix(&t->out, IM_TWS_CLIENT_MIN, IM_TWS_VERSION);
    tws_flush(t);
}

static void tws_connect(im_tws *t) {
    tws_conn *c;
    int rc;
    if (t->state == ST_CLOSED || t->conn != NULL)
        return;
    if (!t->have_addr) {
        tws_drop(t, "IBKR_HOST does not resolve to an address");
        return;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        tws_schedule_retry(t);
        return;
    }
    c->t = t;
    im_tws_reader_init(&c->rd, 0);
    uv_tcp_init(t->loop, &c->tcp);
    uv_unref((uv_handle_t *)&c->tcp); /* the server ends when stdin does */
    c->tcp.data = c;
    c->creq.data = c;
    t->handles++;
    t->conn = c;
    t->state = ST_CONNECTING;
    t->state_deadline = tws_now_ms(t) + t->connect_ms;
    rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&t->addr, tws_connect_cb);
    if (rc != 0) {
        char why[TWS_ERR_MAX];
        snprintf(why, sizeof why, "cannot connect to TWS at %s:%d: %s", t->host, t->port,
                 uv_strerror(rc));
        tws_drop(t, why);
    }
}

static void tws_retry_cb(uv_timer_t *h) {
    im_tws *t = h->data;
    tws_connect(t);
}

static void tws_schedule_retry(im_tws *t) {
    uint64_t delay = 1000;
    for (unsigned i = 0; i < t->attempts && delay < t->backoff_max_ms; i++)
        delay *= 2;
    if (delay > t->backoff_max_ms)
        delay = t->backoff_max_ms;
    t->attempts++;
    t->retry_at = tws_now_ms(t) + delay;
    uv_timer_start(&t->retry, tws_retry_cb, delay, 0);
}

/* ---- reconciliation and readiness ---------------------------------------- */

static void tws_begin_reconcile(im_tws *t) {
    t->state = ST_RECONCILING;
    t->state_deadline = tws_now_ms(t) + t->request_ms;
    t->oo_gen++;
    t->recon_orders_pending = 1;
    im_tws_begin(&t->out, IM_TWS_OUT_REQ_ALL_OPEN_ORDERS);
    im_tws_put_int(&t->out, 1);
    im_tws_end(&t->out);
    t->recon_exec_req = tws_req_id(t);
    im_tws_begin(&t->out, IM_TWS_OUT_REQ_EXECUTIONS);
    im_tws_put_int(&t->out, 3);
    im_tws_put_int(&t->out, t->recon_exec_req);
    im_tws_put_int(&t->out, 0);      /* every client id */
    im_tws_put_str(&t->out, t->account);
    for (int i = 0; i < 5; i++)      /* time, symbol, secType, exchange, side */
        im_tws_put_str(&t->out, "");
    im_tws_end(&t->out);
}

/* Positions with market value and P&L, kept current by TWS from here on. */
static void tws_subscribe(im_tws *t) {
    im_tws_begin(&t->out, IM_TWS_OUT_REQ_ACCT_UPDATES);
    im_tws_put_int(&t->out, 2);
    im_tws_put_bool(&t->out, 1);
    im_tws_put_str(&t->out, t->account);
    im_tws_end(&t->out);
    if (t->pnl_req != 0) {
        im_tws_begin(&t->out, IM_TWS_OUT_CANCEL_PNL);
        im_tws_put_int(&t->out, t->pnl_req);
        im_tws_end(&t->out);
    }
    t->pnl_req = tws_req_id(t);
    im_tws_begin(&t->out, IM_TWS_OUT_REQ_PNL);
    im_tws_put_int(&t->out, t->pnl_req);
    im_tws_put_str(&t->out, t->account);
    im_tws_put_str(&t->out, "");
    im_tws_end(&t->out);
}

/* Settles orders sent before the connection went: found by orderRef, or
 * not placed. Then subscriptions, then READY. */
static void tws_finish_reconcile(im_tws *t) {
    tws_op **pp = &t->ops;
    while (*pp) {
        tws_op *op = *pp;
        if (op->kind != OP_PLACE || op->stage != 1) {
            pp = &op->next;
            continue;
        }
        {
            tws_order *o = order_find_ref(t, op->order.order_ref);
            *pp = op->next;
            if (o != NULL && (o->acked || o->info.filled > 0)) {
                op->info = o->info;
                op->have_info = 1;
                im_info("tws: order %s (ref %s) sent before the reconnect was found at TWS: %s",
                        o->info.order_id, op->order.order_ref, im_order_status_str(o->info.status));
                op_done(t, op, 0, NULL);
            } else {
                if (o != NULL) {
                    o->info.status = IM_OS_REJECTED;
                    copy_text(o->info.message, sizeof o->info.message,
                              "not found at TWS after reconnecting: not placed");
                }
                op_done(t, op, IM_ENOTCONN,
                        "The connection to TWS dropped before order ref %s was acknowledged, and "
                        "after reconnecting TWS has no open order or execution with that ref: it "
                        "was not placed. Nothing was resent; preview again to retry.",
                        op->order.order_ref);
            }
        }
    }
    t->state = ST_READY;
    t->attempts = 0;
    if (t->ever_ready)
        t->reconnects++;
    t->ever_ready = 1;
    tws_subscribe(t);
    im_info("tws: ready: %s:%d server version %d, client id %d, account %s (%s)", t->host,
            t->port, t->server_version, t->client_id, t->account,
            im_account_is_paper(t->account) ? "paper" : "LIVE");
    {
        char msg[160];
        snprintf(msg, sizeof msg, "connected to TWS at %s:%d, account %s", t->host, t->port,
                 t->account);
        raise_event(t, IM_BEV_CONNECTION, NULL, NULL, 1, msg);
    }
    /* What changed while the connection was down, for this client's
     * orders, after the in-doubt ones were settled above. */
    for (size_t i = 0; i < t->norders; i++)
        if (t->orders[i].ours && t->orders[i].seen_gen == t->oo_gen)
            raise_order(t, &t->orders[i]);
}

static void tws_maybe_reconciled(im_tws *t) {
    if (t->state == ST_RECONCILING && !t->recon_orders_pending && t->recon_exec_req == 0)
        tws_finish_reconcile(t);
}

static void tws_maybe_started(im_tws *t) {
    if (t->state == ST_STARTING && t->have_next_id && t->have_accounts)
        tws_begin_reconcile(t);
}

/* ---- incoming messages ---------------------------------------------------- */

/* A message whose fields do not read as version 178 lays them out: skipped,
 * and said, since what it carried (an order, a fill) is then missing. */
static void tws_bad_message(const char *what) {
    im_warn("tws: could not decode a %s message from TWS; it was skipped", what);
}

static tws_op *op_by_id(im_tws *t, op_kind kind, long long id) {
    for (tws_op *op = t->ops; op; op = op->next)
        if (op->kind == kind && op->id == id)
            return op;
    return NULL;
}

static void on_server_version(im_tws *t, im_tws_msg *m) {
    /* The first frame: m->id holds the version (it is the first field). */
    char when[64];
    int v = m->id;
    im_tws_get_text(m, when, sizeof when);
    if (v != IM_TWS_VERSION) {
        char why[TWS_ERR_MAX];
        snprintf(why, sizeof why,
                 "TWS / IB Gateway at %s:%d speaks server version %d; this client needs %d (it "
                 "offered v%d..%d): %s",
                 t->host, t->port, v, IM_TWS_VERSION, IM_TWS_CLIENT_MIN, IM_TWS_VERSION,
                 v < IM_TWS_VERSION ? "update TWS / IB Gateway" : "unsupported version");
        tws_drop(t, why);
        return;
    }
    t->server_version = v;
    t->state = ST_STARTING;
    im_tws_begin(&t->out, IM_TWS_OUT_START_API);
    im_tws_put_int(&t->out, 2);
    im_tws_put_int(&t->out, t->client_id);
    im_tws_put_str(&t->out, "");
    im_tws_end(&t->out);
    im_debug("tws: server version %d (connection time %s)", v, when);
}

static void on_managed_accounts(im_tws *t, im_tws_msg *m) {
    char list[512], chosen[IM_ACCOUNT_MAX] = "";
    im_tws_skip(m, 1);
    im_tws_get_text(m, list, sizeof list);
    if (m->err)
        return;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (*tok == '\0')
            continue;
        if (t->want_account[0] == '\0' || strcmp(tok, t->want_account) == 0) {
            copy_text(chosen, sizeof chosen, tok);
            break;
        }
    }
    if (chosen[0] == '\0') {
        char why[TWS_ERR_MAX];
        snprintf(why, sizeof why,
                 "IBKR_ACCOUNT_ID=%s is not among the accounts this TWS login manages; set it to "
                 "one of them or leave it unset",
                 t->want_account);
        tws_drop(t, why);
        return;
    }
    copy_text(t->account, sizeof t->account, chosen);
    t->have_accounts = 1;
    tws_maybe_started(t);
}

static void on_next_valid_id(im_tws *t, im_tws_msg *m) {
    long long id;
    im_tws_skip(m, 1);
    id = im_tws_get_int(m);
    if (m->err)
        return;
    if (id > t->next_order_id)
        t->next_order_id = id;
    t->have_next_id = 1;
    tws_maybe_started(t);
}

static void quote_complete(im_tws *t, tws_op *op) {
    im_quote *q = &op->q;
    if (!op->have_last && op->close > 0) {
        q->last = op->close;
        op->have_last = 1;
    }
    if (!op->have_bid && !op->have_ask && !op->have_last) {
        op_finish(t, op, IM_EIO, NULL);
        snprintf(op->msg, sizeof op->msg,
                 "TWS returned no prices for %s (no bid, ask, last or close in the snapshot).",
                 op->symbol);
        return;
    }
    copy_text(q->symbol, sizeof q->symbol, op->symbol);
    /* Staleness is judged from when the snapshot arrived here. */
    q->time = tws_epoch(t);
    op_finish(t, op, 0, NULL);
}

static void on_tick_price(im_tws *t, im_tws_msg *m) {
    long long id;
    int type;
    double px, size;
    tws_op *op;
    im_tws_skip(m, 1);
    id = im_tws_get_int(m);
    type = (int)im_tws_get_int(m);
    px = im_tws_get_dbl(m);
    size = im_tws_get_dec(m);
    im_tws_skip(m, 1);
    if (m->err || (op = op_by_id(t, OP_QUOTE, id)) == NULL)
        return;
    if (!isfinite(px) || px <= 0) /* -1: no data */
        return;
    if (!isfinite(size) || size == IM_TWS_UNSET_DBL)
        size = 0;
    switch (type) {
    case IM_TWS_TICK_DELAYED_BID: op->q.delayed = 1; /* fall through */
    case IM_TWS_TICK_BID: op->q.bid = px; op->q.bid_size = size; op->have_bid = 1; break;
    case IM_TWS_TICK_DELAYED_ASK: op->q.delayed = 1; /* fall through */
    case IM_TWS_TICK_ASK: op->q.ask = px; op->q.ask_size = size; op->have_ask = 1; break;
    case IM_TWS_TICK_DELAYED_LAST: op->q.delayed = 1; /* fall through */
    case IM_TWS_TICK_LAST: op->q.last = px; op->have_last = 1; break;
    case IM_TWS_TICK_DELAYED_CLOSE: op->q.delayed = 1; /* fall through */
    case IM_TWS_TICK_CLOSE: op->close = px; break;
    default: break;
    }
}

static void on_tick_size(im_tws *t, im_tws_msg *m) {
    long long id;
    int type;
    double size;
    tws_op *op;
    im_tws_skip(m, 1);
    id = im_tws_get_int(m);
    type = (int)im_tws_get_int(m);
    size = im_tws_get_dec(m);
    if (m->err || (op = op_by_id(t, OP_QUOTE, id)) == NULL || !isfinite(size) ||
        size == IM_TWS_UNSET_DBL)
        return;
    if (type == IM_TWS_TICK_BID_SIZE || type == IM_TWS_TICK_DELAYED_BID_SIZE)
        op->q.bid_size = size;
    else if (type == IM_TWS_TICK_ASK_SIZE || type == IM_TWS_TICK_DELAYED_ASK_SIZE)
        op->q.ask_size = size;
}

static void on_snapshot_end(im_tws *t, im_tws_msg *m) {
    long long id;
    tws_op *op;
    im_tws_skip(m, 1);
    id = im_tws_get_int(m);
    if (m->err || (op = op_by_id(t, OP_QUOTE, id)) == NULL)
        return;
    quote_complete(t, op);
}

static void on_market_data_type(im_tws *t, im_tws_msg *m) {
    long long id;
    int type;
    tws_op *op;
    im_tws_skip(m, 1);
    id = im_tws_get_int(m);
    type = (int)im_tws_get_int(m);
    if (m->err || (op = op_by_id(t, OP_QUOTE, id)) == NULL)
        return;
    if (type == 3 || type == 4)
        op->q.delayed = 1;
}

static void quote_send_snapshot(im_tws *t, tws_op *op, int delayed) {
    tws_contract *c = contract_find(t, op->symbol);
    if (c == NULL || c->con_id == 0) {
        op_finish(t, op, IM_ESYMBOL, "the contract vanished from the cache; try again");
        return;
    }
    op->stage = delayed ? QS_DELAYED : QS_LIVE;
    op->id = tws_req_id(t);
    op->deadline = tws_now_ms(t) + t->quote_ms;
    if (delayed) {
        /* Connection-wide setting: switch, ask, switch back, in order. */
        put_market_data_type(t, 3);
        put_snapshot_request(t, op->id, c);
        put_market_data_type(t, 1);
        t->delayed_seen = 1;
    } else {
        put_snapshot_request(t, op->id, c);
    }
}

static void on_contract_data(im_tws *t, im_tws_msg *m) {
    im_tws_contract_details d;
    tws_op *op;
    if (im_tws_get_contract_details(m, &d) != 0) {
        tws_bad_message("contractDetails");
        return;
    }
    for (op = t->ops; op; op = op->next) {
        if ((op->kind == OP_QUOTE || op->kind == OP_PLACE) && op->stage == QS_CONTRACT &&
            op->id == d.req_id) {
            tws_contract *c;
            if (strcmp(d.contract.currency, "USD") != 0 || strcmp(d.contract.sec_type, "STK") != 0)
                continue;
            c = contract_add(t, op->symbol);
            if (c != NULL && c->con_id == 0) {
                c->con_id = d.contract.con_id;
                copy_text(c->primary_exch, sizeof c->primary_exch, d.contract.primary_exch);
            }
        }
    }
}

static void place_send(im_tws *t, tws_op *op);

static void on_contract_end(im_tws *t, im_tws_msg *m) {
    long long id;
    tws_op *op;
    im_tws_skip(m, 1);
    id = im_tws_get_int(m);
    if (m->err)
        return;
    for (op = t->ops; op; op = op->next)
        if ((op->kind == OP_QUOTE || op->kind == OP_PLACE) && op->stage == QS_CONTRACT &&
            op->id == id)
            break;
    if (op == NULL)
        return;
    {
        tws_contract *c = contract_find(t, op->symbol);
        if (c == NULL || c->con_id == 0) {
            op_unlink(t, op);
            op_done(t, op, IM_ESYMBOL,
                    "Unknown symbol %s: TWS has no US stock by that name (STK, SMART, USD).",
                    op->symbol);
            return;
        }
    }
    if (op->kind == OP_QUOTE)
        quote_send_snapshot(t, op, 0);
    else
        place_send(t, op);
}

static void account_tag(tws_op *op, const char *tag, const char *value) {
    static const char *tags[] = {"NetLiquidation", "TotalCashValue", "BuyingPower",
                                 "GrossPositionValue", "AccountType"};
    char *end;
    double v;
    for (unsigned i = 0; i < IM_ARRAY_SIZE(tags); i++) {
        if (strcmp(tag, tags[i]) != 0)
            continue;
        if (i == 4) {
            copy_text(op->acct.account_type, sizeof op->acct.account_type, value);
            op->acct_seen |= 1u << i;
            return;
        }
        v = strtod(value, &end);
        if (end == value || *end != '\0' || !isfinite(v))
            return; /* unusable: stays missing, and a missing value fails closed */
        switch (i) {
        case 0: op->acct.net_liquidation = v; break;
        case 1: op->acct.cash = v; break;
        case 2: op->acct.buying_power = v; break;
        case 3: op->acct.gross_position_value = v; break;
        }
        op->acct_seen |= 1u << i;
    }
}

static void on_account_summary(im_tws *t, im_tws_msg *m) {
    char acct[64], tag[64], value[64];
    long long id;
    tws_op *op;
    im_tws_skip(m, 1);
    id = im_tws_get_int(m);
    im_tws_get_text(m, acct, sizeof acct);
    im_tws_get_text(m, tag, sizeof tag);
    im_tws_get_text(m, value, sizeof value);
    if (m->err || (op = op_by_id(t, OP_ACCOUNT, id)) == NULL || strcmp(acct, t->account) != 0)
        return;
    account_tag(op, tag, value);
}

static void on_account_summary_end(im_tws *t, im_tws_msg *m) {
    long long id;
    tws_op *op;
    im_tws_skip(m, 1);
    id = im_tws_get_int(m);
    if (m->err || (op = op_by_id(t, OP_ACCOUNT, id)) == NULL)
        return;
    im_tws_begin(&t->out, IM_TWS_OUT_CANCEL_ACCOUNT_SUMMARY);
    im_tws_put_int(&t->out, 1);
    im_tws_put_int(&t->out, id);
    im_tws_end(&t->out);
    if ((op->acct_seen & 3u) != 3u) {
        op_finish(t, op, IM_EIO, NULL);
        snprintf(op->msg, sizeof op->msg,
                 "TWS's account summary for %s lacked NetLiquidation or TotalCashValue.",
                 t->account);
        return;
    }
    copy_text(op->acct.account_id, sizeof op->acct.account_id, t->account);
    if (t->have_pnl) {
        op->acct.realized_pnl = t->pnl_realized;
        op->acct.unrealized_pnl = t->pnl_unrealized;
    } else {
        op->acct.realized_pnl = t->av_realized;
        op->acct.unrealized_pnl = t->av_unrealized;
    }
    for (size_t i = 0; i < t->nexecs; i++)
        if (t->execs[i].have_commission)
            op->acct.commissions += t->execs[i].e.commission;
    op_finish(t, op, 0, NULL);
}

static void on_account_value(im_tws *t, im_tws_msg *m) {
    char key[64], value[64], cur[16], acct[64];
    double v;
    char *end;
    im_tws_skip(m, 1);
    im_tws_get_text(m, key, sizeof key);
    im_tws_get_text(m, value, sizeof value);
    im_tws_get_text(m, cur, sizeof cur);
    im_tws_get_text(m, acct, sizeof acct);
    if (m->err || strcmp(acct, t->account) != 0 || (strcmp(cur, "USD") != 0 && strcmp(cur, "BASE") != 0))
        return;
    v = strtod(value, &end);
    if (end == value || *end || !isfinite(v))
        return;
    if (strcmp(key, "RealizedPnL") == 0)
        t->av_realized = v;
    else if (strcmp(key, "UnrealizedPnL") == 0)
        t->av_unrealized = v;
}

static void on_portfolio(im_tws *t, im_tws_msg *m) {
    im_tws_contract c;
    double pos, mkt_price, mkt_value, avg, upnl, rpnl;
    char acct[64];
    size_t i;
    memset(&c, 0, sizeof c);
    im_tws_skip(m, 1);
    c.con_id = im_tws_get_int(m);
    im_tws_get_text(m, c.symbol, sizeof c.symbol);
    im_tws_get_text(m, c.sec_type, sizeof c.sec_type);
    im_tws_skip(m, 4); /* lastTrade, strike, right, multiplier */
    im_tws_get_text(m, c.primary_exch, sizeof c.primary_exch);
    im_tws_skip(m, 3); /* currency, localSymbol, tradingClass */
    pos = im_tws_get_dec(m);
    mkt_price = im_tws_get_dbl(m);
    mkt_value = im_tws_get_dbl(m);
    avg = im_tws_get_dbl(m);
    upnl = im_tws_get_dbl(m);
    rpnl = im_tws_get_dbl(m);
    im_tws_get_text(m, acct, sizeof acct);
    if (m->err || strcmp(acct, t->account) != 0 || !isfinite(pos) || pos == IM_TWS_UNSET_DBL)
        return;
    /* Stocks only: an option or future on the same symbol is not the
     * position the risk checks reason about. */
    if (strcmp(c.sec_type, "STK") != 0)
        return;
    for (i = 0; i < t->nportfolio; i++)
        if (strncmp(t->portfolio[i].symbol, c.symbol, IM_SYMBOL_MAX - 1) == 0)
            break;
    if (pos == 0) {
        if (i < t->nportfolio) {
            memmove(&t->portfolio[i], &t->portfolio[i + 1], (t->nportfolio - i - 1) * sizeof *t->portfolio);
            t->nportfolio--;
        }
        return;
    }
    if (i == t->nportfolio) {
        im_position *np = grow(t->portfolio, &t->cap_portfolio, t->nportfolio + 1, sizeof *np,
                               TWS_MAX_PORTFOLIO);
        if (np == NULL)
            return;
        t->portfolio = np;
        t->nportfolio++;
        memset(&t->portfolio[i], 0, sizeof t->portfolio[i]);
        snprintf(t->portfolio[i].symbol, IM_SYMBOL_MAX, "%.*s", IM_SYMBOL_MAX - 1, c.symbol);
    }
    t->portfolio[i].quantity = pos;
    t->portfolio[i].avg_cost = avg;
    t->portfolio[i].market_price = mkt_price;
    t->portfolio[i].market_value = mkt_value;
    t->portfolio[i].unrealized_pnl = upnl == IM_TWS_UNSET_DBL ? 0 : upnl;
    t->portfolio[i].realized_pnl = rpnl == IM_TWS_UNSET_DBL ? 0 : rpnl;
}

static void positions_complete(im_tws *t, tws_op *op) {
    if (t->nportfolio > 0) {
        op->arr = malloc(t->nportfolio * sizeof(im_position));
        if (op->arr == NULL) {
            op_finish(t, op, IM_ENOMEM, NULL);
            return;
        }
        memcpy(op->arr, t->portfolio, t->nportfolio * sizeof(im_position));
    }
    op->n = t->nportfolio;
    op_finish(t, op, 0, NULL);
}

static void on_account_download_end(im_tws *t, im_tws_msg *m) {
    tws_op *op, *next;
    IM_UNUSED(m);
    t->portfolio_ready = 1;
    for (op = t->ops; op; op = next) {
        next = op->next;
        if (op->kind == OP_POSITIONS)
            positions_complete(t, op);
    }
}

static void on_pnl(im_tws *t, im_tws_msg *m) {
    long long id = im_tws_get_int(m);
    double d = im_tws_get_dbl(m), u = im_tws_get_dbl(m), r = im_tws_get_dbl(m);
    if (m->err || id != t->pnl_req)
        return;
    t->pnl_daily = d == IM_TWS_UNSET_DBL ? 0 : d;
    t->pnl_unrealized = u == IM_TWS_UNSET_DBL ? 0 : u;
    t->pnl_realized = r == IM_TWS_UNSET_DBL ? 0 : r;
    t->have_pnl = 1;
}

static int parse_side(const char *action, im_side *side) {
    if (strcmp(action, "BUY") == 0 || strcmp(action, "BOT") == 0)
        *side = IM_SIDE_BUY;
    else if (strcmp(action, "SELL") == 0 || strcmp(action, "SSHORT") == 0 ||
             strcmp(action, "SLD") == 0)
        *side = IM_SIDE_SELL;
    else
        return IM_EINVAL;
    return 0;
}

static void order_from_tws(const im_tws_order *in, im_order *o) {
    memset(o, 0, sizeof *o);
    snprintf(o->symbol, sizeof o->symbol, "%.*s", IM_SYMBOL_MAX - 1, in->contract.symbol);
    parse_side(in->action, &o->side);
    o->quantity = in->total_qty == IM_TWS_UNSET_DBL ? 0 : in->total_qty;
    if (strcmp(in->order_type, "MKT") == 0)
        o->type = IM_OT_MKT;
    else if (strcmp(in->order_type, "LMT") == 0)
        o->type = IM_OT_LMT;
    else if (strcmp(in->order_type, "STP") == 0)
        o->type = IM_OT_STP;
    else if (strcmp(in->order_type, "STP LMT") == 0)
        o->type = IM_OT_STP_LMT;
    o->limit_price = in->lmt_price == IM_TWS_UNSET_DBL ? 0 : in->lmt_price;
    o->stop_price = in->aux_price == IM_TWS_UNSET_DBL ? 0 : in->aux_price;
    if (o->type == IM_OT_MKT || o->type == IM_OT_STP)
        o->limit_price = 0;
    if (o->type == IM_OT_MKT || o->type == IM_OT_LMT)
        o->stop_price = 0;
    if (im_tif_parse(in->tif, &o->tif) != 0)
        o->tif = IM_TIF_DAY;
    snprintf(o->order_ref, sizeof o->order_ref, "%.*s", IM_ORDER_REF_MAX - 1, in->order_ref);
}

static void on_open_order(im_tws *t, im_tws_msg *m) {
    im_tws_order in;
    char status[32];
    tws_order *o;
    if (im_tws_get_open_order(m, &in, status, sizeof status) != 0) {
        tws_bad_message("openOrder");
        return;
    }
    o = order_get(t, in.client_id, in.order_id, in.perm_id);
    if (o == NULL)
        return;
    order_from_tws(&in, &o->info.order);
    o->perm_id = in.perm_id;
    o->client_id = in.client_id;
    o->seen_gen = t->oo_gen;
    if (o->info.remaining == 0 && o->info.filled == 0)
        o->info.remaining = o->info.order.quantity;
    order_update(t, o, map_status(status, o->info.filled, o->info.remaining), o->info.filled,
                 o->info.remaining, o->info.avg_fill_price);
}

static void on_order_status(im_tws *t, im_tws_msg *m) {
    im_tws_order_status s;
    tws_order *o;
    if (im_tws_get_order_status(m, &s) != 0) {
        tws_bad_message("orderStatus");
        return;
    }
    o = order_find(t, s.client_id, s.order_id, s.perm_id);
    if (o == NULL)
        return; /* openOrder always comes first for an order we list */
    if (s.perm_id)
        o->perm_id = s.perm_id;
    order_update(t, o, map_status(s.status, s.filled, s.remaining), s.filled, s.remaining,
                 s.avg_fill_price);
}

static void on_open_order_end(im_tws *t, im_tws_msg *m) {
    tws_op *op, *next;
    size_t n = 0;
    IM_UNUSED(m);
    if (t->recon_orders_pending) {
        t->recon_orders_pending = 0;
        tws_maybe_reconciled(t);
        return;
    }
    if (!t->oo_inflight)
        return;
    t->oo_inflight = 0;
    for (size_t i = 0; i < t->norders; i++)
        n += t->orders[i].seen_gen == t->oo_gen && !im_order_status_terminal(t->orders[i].info.status);
    for (op = t->ops; op; op = next) {
        next = op->next;
        if (op->kind != OP_ORDERS)
            continue;
        if (n > 0 && (op->arr = malloc(n * sizeof(im_order_info))) == NULL) {
            op_finish(t, op, IM_ENOMEM, NULL);
            continue;
        }
        op->n = 0;
        for (size_t i = 0; i < t->norders; i++)
            if (t->orders[i].seen_gen == t->oo_gen &&
                !im_order_status_terminal(t->orders[i].info.status))
                ((im_order_info *)op->arr)[op->n++] = t->orders[i].info;
        op_finish(t, op, 0, NULL);
    }
}

static void on_execution(im_tws *t, im_tws_msg *m) {
    im_tws_execution e;
    tws_exec *x;
    tws_order *o;
    int created;
    if (im_tws_get_execution(m, &e) != 0) {
        tws_bad_message("execDetails");
        return;
    }
    x = exec_get(t, e.exec_id, &created);
    if (x == NULL)
        return;
    x->order_id = e.order_id;
    x->e_client = e.client_id;
    x->perm_id = e.perm_id;
    snprintf(x->e.symbol, sizeof x->e.symbol, "%.*s", IM_SYMBOL_MAX - 1, e.contract.symbol);
    parse_side(e.side, &x->e.side);
    x->e.shares = e.shares == IM_TWS_UNSET_DBL ? 0 : e.shares;
    x->e.price = e.price;
    x->e.time = parse_exec_time(e.time);
    snprintf(x->e.order_ref, sizeof x->e.order_ref, "%.*s", IM_ORDER_REF_MAX - 1, e.order_ref);
    if (!created && e.req_id == -1)
        return; /* a repeat of one we have */
    /* The order it belongs to, known or learnt from the execution. */
    o = order_get(t, e.client_id, e.order_id, e.perm_id);
    if (o != NULL)
        snprintf(x->e.order_id, sizeof x->e.order_id, "%s", o->info.order_id);
    if (o != NULL) {
        if (o->info.order.symbol[0] == '\0') {
            snprintf(o->info.order.symbol, sizeof o->info.order.symbol, "%s", x->e.symbol);
            o->info.order.side = x->e.side;
            snprintf(o->info.order.order_ref, sizeof o->info.order.order_ref, "%s", x->e.order_ref);
            o->info.order.quantity = e.cum_qty;
            o->info.order.type = IM_OT_MKT;
            o->info.order.tif = IM_TIF_DAY;
        }
        if (isfinite(e.cum_qty) && e.cum_qty != IM_TWS_UNSET_DBL && e.cum_qty > o->info.filled) {
            double rem = o->info.order.quantity - e.cum_qty;
            im_order_status st = rem <= 0 ? IM_OS_FILLED : IM_OS_PARTIAL;
            if (im_order_status_terminal(o->info.status) && o->info.status != IM_OS_FILLED)
                st = o->info.status;
            order_update(t, o, st, e.cum_qty, rem > 0 ? rem : 0, e.avg_price);
        }
    }
    if (e.req_id != -1) {
        /* Part of a reqExecutions answer: added to its list. A past
         * execution is not news, except one of this client's orders
         * found while reconnecting (it filled while we were away). */
        tws_op *op = op_by_id(t, OP_EXECS, e.req_id);
        if (!(created && e.req_id == t->recon_exec_req && o != NULL && o->ours))
            x->reported = 1;
        if (op != NULL) {
            im_execution *arr = grow(op->arr, &op->cap, op->n + 1, sizeof *arr, TWS_MAX_EXECS);
            if (arr != NULL) {
                op->arr = arr;
                arr[op->n++] = x->e;
            }
        }
    }
}

static void on_commission(im_tws *t, im_tws_msg *m) {
    im_tws_commission c;
    tws_exec *x;
    if (im_tws_get_commission(m, &c) != 0) {
        tws_bad_message("commissionReport");
        return;
    }
    if ((x = exec_find(t, c.exec_id)) == NULL)
        return;
    x->e.commission = c.commission == IM_TWS_UNSET_DBL ? 0 : c.commission;
    x->e.realized_pnl = c.realized_pnl == IM_TWS_UNSET_DBL ? 0 : c.realized_pnl;
    x->have_commission = 1;
    /* reqExecutions answers may carry it after their entry was copied. */
    for (tws_op *op = t->ops; op; op = op->next) {
        if (op->kind != OP_EXECS)
            continue;
        for (size_t i = 0; i < op->n; i++) {
            im_execution *e = &((im_execution *)op->arr)[i];
            if (strcmp(e->exec_id, c.exec_id) == 0) {
                e->commission = x->e.commission;
                e->realized_pnl = x->e.realized_pnl;
            }
        }
    }
    if (!x->reported && t->state == ST_READY)
        raise_fill(t, x);
}

static void on_execution_end(im_tws *t, im_tws_msg *m) {
    long long id;
    tws_op *op;
    im_tws_skip(m, 1);
    id = im_tws_get_int(m);
    if (m->err)
        return;
    if (id == t->recon_exec_req && t->recon_exec_req != 0) {
        t->recon_exec_req = 0;
        tws_maybe_reconciled(t);
        return;
    }
    if ((op = op_by_id(t, OP_EXECS, id)) == NULL)
        return;
    for (size_t i = 0; i < op->n; i++) {
        im_execution *e = &((im_execution *)op->arr)[i];
        tws_exec *x = exec_find(t, e->exec_id);
        if (x != NULL && x->have_commission) {
            e->commission = x->e.commission;
            e->realized_pnl = x->e.realized_pnl;
        }
    }
    op_finish(t, op, 0, NULL);
}

/* An operation waiting on an order settles when the order says so. */
static void order_settle_ops(im_tws *t, tws_order *o) {
    tws_op *op, *next;
    for (op = t->ops; op; op = next) {
        next = op->next;
        if (op->id != o->order_id || o->client_id != t->client_id ||
            (op->kind != OP_PLACE && op->kind != OP_CANCEL))
            continue;
        if (op->kind == OP_PLACE && op->stage == 1) {
            /* In doubt across a reconnect: settled by orderRef once
             * reconciliation has the whole picture. */
            if (t->state != ST_READY)
                continue;
            op->info = o->info;
            op->have_info = 1;
            if (o->info.status == IM_OS_REJECTED)
                op_finish(t, op, IM_EREJECTED, o->info.message[0] ? o->info.message : NULL);
            else
                op_finish(t, op, 0, NULL);
        } else if (op->kind == OP_CANCEL && im_order_status_terminal(o->info.status)) {
            op->info = o->info;
            op->have_info = 1;
            if (o->info.status == IM_OS_CANCELLED)
                op_finish(t, op, 0, NULL);
            else {
                op_unlink(t, op);
                op_done(t, op, IM_ESTATE, "Order %lld is already %s; there is nothing to cancel.",
                        o->order_id, im_order_status_str(o->info.status));
            }
        }
    }
}

/* Codes by which TWS refuses an order outright. Any other code on a live
 * order is a remark (held, TIF adjusted, ...): its status decides. */
static int is_rejection(int code) {
    switch (code) {
    case 103: case 110: case 200: case 201: case 382: case 383: case 387: case 388:
        return 1;
    default:
        return 0;
    }
}

static int is_warning(int code) {
    return (code >= 2100 && code < 3000) || code == 399 || code == 10167 || code == 10090 ||
           code == 202 || code == 1101 || code == 1102;
}

static void on_error(im_tws *t, im_tws_msg *m) {
    long long id;
    int code;
    char text[512];
    const char *meaning;
    tws_op *op;
    tws_order *o;
    if (im_tws_get_error(m, &id, &code, text, sizeof text) != 0) {
        tws_bad_message("errMsg");
        return;
    }
    meaning = im_tws_error_text(code);
    if (id < 0 || id == 0) {
        /* System messages. */
        if (code == 2104 || code == 2106 || code == 2158 || code == 2107 || code == 2108 ||
            code == 2119) {
            im_debug("tws: %d %s", code, text);
            return;
        }
        if (code == 1100) {
            t->ib_link_down = 1;
            tws_set_error(t, "TWS lost its connection to IB (1100): %s", text);
            return;
        }
        if (code == 1101 || code == 1102) {
            t->ib_link_down = 0;
            im_info("tws: %d %s", code, text);
            if (code == 1101 && t->state == ST_READY)
                tws_subscribe(t); /* "data lost": subscriptions must be renewed */
            return;
        }
        if (code == 326) {
            tws_set_error(t, "client id %d is already in use by another API client of this TWS "
                             "(326); set IBKR_CLIENT_ID to a free id", t->client_id);
            tws_drop(t, NULL);
            return;
        }
        im_warn("tws: %d %s", code, text);
        if (code < 2100 || code >= 3000)
            tws_set_error(t, "TWS error %d: %s", code, text);
        return;
    }
    /* A request of ours? */
    for (op = t->ops; op; op = op->next)
        if (op->id == id && op->kind != OP_PLACE && op->kind != OP_CANCEL)
            break;
    if (op != NULL) {
        if (op->kind == OP_QUOTE && op->stage == QS_CONTRACT && code == 200) {
            op_unlink(t, op);
            op_done(t, op, IM_ESYMBOL,
                    "Unknown symbol %s: TWS has no security definition for it (STK, SMART, USD).",
                    op->symbol);
            return;
        }
        if (op->kind == OP_QUOTE && op->stage == QS_LIVE &&
            (code == 354 || code == 10089 || code == 10168 || code == 10186)) {
            im_info("tws: no real-time data for %s (%d); falling back to delayed data", op->symbol,
                    code);
            quote_send_snapshot(t, op, 1);
            return;
        }
        if (is_warning(code))
            return;
        op_unlink(t, op);
        if (op->kind == OP_QUOTE && op->stage == QS_DELAYED)
            op_done(t, op, IM_EIO,
                    "No market data for %s: there is no real-time subscription and delayed data "
                    "is not available either (TWS %d: %s).", op->symbol, code, text);
        else
            op_done(t, op, IM_EIO, "TWS error %d: %s%s%s", code, text, meaning ? " — " : "",
                    meaning ? meaning : "");
        return;
    }
    /* An order of ours, or a request with nothing waiting any more. */
    o = order_mine(t, id);
    for (op = t->ops; op; op = op->next)
        if (op->id == id && (op->kind == OP_PLACE || op->kind == OP_CANCEL))
            break;
    if (op != NULL && op->kind == OP_PLACE && op->stage == QS_CONTRACT && code == 200) {
        op_unlink(t, op);
        op_done(t, op, IM_ESYMBOL, "Unknown symbol %s: TWS has no security definition for it.",
                op->symbol);
        return;
    }
    if (op != NULL && op->kind == OP_CANCEL && (code == 10147 || code == 161 || code == 10148)) {
        op_unlink(t, op);
        op_done(t, op, code == 10147 ? IM_EORDER : IM_ESTATE, "TWS refused to cancel order %lld "
                "(%d): %s", id, code, text);
        return;
    }
    if (code == 202 && (o != NULL || (op != NULL && op->kind == OP_CANCEL))) {
        if (o == NULL && (o = order_get(t, t->client_id, id, 0)) == NULL)
            return;
        copy_text(o->info.message, sizeof o->info.message, text);
        order_update(t, o, IM_OS_CANCELLED, o->info.filled, 0, o->info.avg_fill_price);
        return;
    }
    if (is_warning(code)) {
        im_info("tws: order %lld: %d %s", id, code, text);
        return;
    }
    if (o != NULL && !im_order_status_terminal(o->info.status) && is_rejection(code)) {
        snprintf(o->info.message, sizeof o->info.message, "IB rejected the order (%d): %.120s", code,
                 text);
        order_update(t, o, IM_OS_REJECTED, o->info.filled, 0, o->info.avg_fill_price);
        return;
    }
    if (o != NULL) {
        /* A remark on the order: kept with it; the order's status decides. */
        snprintf(o->info.message, sizeof o->info.message, "TWS %d: %.140s", code, text);
        im_info("tws: order %lld: %d %s", id, code, text);
        return;
    }
    im_warn("tws: id %lld: %d %s", id, code, text);
}

static void tws_dispatch(im_tws *t, im_tws_msg *m) {
    if (t->state == ST_HANDSHAKE) {
        on_server_version(t, m);
        return;
    }
    switch (m->id) {
    case IM_TWS_IN_TICK_PRICE: on_tick_price(t, m); break;
    case IM_TWS_IN_TICK_SIZE: on_tick_size(t, m); break;
    case IM_TWS_IN_ORDER_STATUS: on_order_status(t, m); break;
    case IM_TWS_IN_ERR_MSG: on_error(t, m); break;
    case IM_TWS_IN_OPEN_ORDER: on_open_order(t, m); break;
    case IM_TWS_IN_ACCT_VALUE: on_account_value(t, m); break;
    case IM_TWS_IN_PORTFOLIO_VALUE: on_portfolio(t, m); break;
    case IM_TWS_IN_NEXT_VALID_ID: on_next_valid_id(t, m); break;
    case IM_TWS_IN_CONTRACT_DATA: on_contract_data(t, m); break;
    case IM_TWS_IN_EXECUTION_DATA: on_execution(t, m); break;
    case IM_TWS_IN_MANAGED_ACCTS: on_managed_accounts(t, m); break;
    case IM_TWS_IN_CONTRACT_DATA_END: on_contract_end(t, m); break;
    case IM_TWS_IN_OPEN_ORDER_END: on_open_order_end(t, m); break;
    case IM_TWS_IN_ACCT_DOWNLOAD_END: on_account_download_end(t, m); break;
    case IM_TWS_IN_EXECUTION_DATA_END: on_execution_end(t, m); break;
    case IM_TWS_IN_TICK_SNAPSHOT_END: on_snapshot_end(t, m); break;
    case IM_TWS_IN_MARKET_DATA_TYPE: on_market_data_type(t, m); break;
    case IM_TWS_IN_COMMISSION_REPORT: on_commission(t, m); break;
    case IM_TWS_IN_ACCOUNT_SUMMARY: on_account_summary(t, m); break;
    case IM_TWS_IN_ACCOUNT_SUMMARY_END: on_account_summary_end(t, m); break;
    case IM_TWS_IN_PNL: on_pnl(t, m); break;
    default: break; /* tickString, tickGeneric, currentTime, ...: not needed */
    }
}

/* ---- the sweep: deadlines and late fills --------------------------------- */

static void op_timeout(im_tws *t, tws_op *op) {
    double secs;
    op_unlink(t, op);
    switch (op->kind) {
    case OP_PLACE:
        if (op->stage == 1) {
            tws_order *o = order_mine(t, op->id);
            if (o != NULL) {
                op->info = o->info;
                op->have_info = 1;
            }
            op_done(t, op, IM_ETIMEDOUT,
                    "TWS did not acknowledge order %lld (ref %s) within %u s; it may still be "
                    "working at the broker: check get_open_orders and get_trades. It will not be "
                    "resent.",
                    op->id, op->order.order_ref, t->place_ms / 1000);
            return;
        }
        secs = t->request_ms / 1000.0;
        op_done(t, op, IM_ETIMEDOUT, "TWS did not resolve %s within %.0f s; the order was not "
                "sent.", op->symbol, secs);
        return;
    case OP_QUOTE:
        op_done(t, op, IM_ETIMEDOUT, "TWS did not answer the quote for %s within %.0f s.",
                op->symbol, (op->stage == QS_CONTRACT ? t->request_ms : t->quote_ms) / 1000.0);
        return;
    case OP_CANCEL:
        op_done(t, op, IM_ETIMEDOUT, "TWS did not confirm the cancel of order %lld within %.0f s; "
                "check get_open_orders.", op->id, t->request_ms / 1000.0);
        return;
    default:
        if (op->kind == OP_ORDERS && op_by_id(t, OP_ORDERS, -1) == NULL)
            t->oo_inflight = 0; /* the round is lost: the next call asks again */
        if (op->kind == OP_ACCOUNT && t->conn != NULL) {
            /* TWS allows two summaries at once: give this one back. */
            im_tws_begin(&t->out, IM_TWS_OUT_CANCEL_ACCOUNT_SUMMARY);
            im_tws_put_int(&t->out, 1);
            im_tws_put_int(&t->out, op->id);
            im_tws_end(&t->out);
        }
        op_done(t, op, IM_ETIMEDOUT, "TWS did not answer within %.0f s.", t->request_ms / 1000.0);
        return;
    }
}

static void tws_sweep_cb(uv_timer_t *h) {
    im_tws *t = h->data;
    uint64_t now = tws_now_ms(t);
    tws_op *op, *next;
    for (op = t->ops; op; op = next) {
        next = op->next;
        if (op->deadline != 0 && now >= op->deadline)
            op_timeout(t, op);
    }
    if ((t->state == ST_CONNECTING || t->state == ST_HANDSHAKE || t->state == ST_STARTING ||
         t->state == ST_RECONCILING) &&
        now >= t->state_deadline) {
        char why[TWS_ERR_MAX];
        snprintf(why, sizeof why, "TWS at %s:%d did not complete the %s within %u s", t->host,
                 t->port, t->state == ST_RECONCILING ? "reconciliation" : "connection handshake",
                 (t->state == ST_RECONCILING ? t->request_ms : t->connect_ms) / 1000);
        tws_drop(t, why);
    }
    if (t->state == ST_READY) {
        for (size_t i = 0; i < t->nexecs; i++)
            if (!t->execs[i].reported && now - t->execs[i].arrived >= TWS_FILL_FLUSH_MS)
                raise_fill(t, &t->execs[i]);
    }
    tws_flush(t);
}

/* ---- broker operations ----------------------------------------------------- */

static int tws_connected(im_broker *b) { return ((im_tws *)b)->state == ST_READY; }

static void tws_info(im_broker *b, im_broker_info *out) {
    im_tws *t = (im_tws *)b;
    uint64_t now = tws_now_ms(t);
    memset(out, 0, sizeof *out);
    out->state = state_name(t->state);
    out->host = t->host;
    out->port = t->port;
    out->client_id = t->client_id;
    out->server_version = t->server_version;
    out->account_id = t->account[0] ? t->account : t->want_account;
    out->last_error = t->last_error;
    out->last_error_at = t->last_error_at;
    out->reconnects = t->reconnects;
    out->next_retry_in = t->state == ST_DISCONNECTED && t->retry_at > now
                             ? (double)(t->retry_at - now) / 1000.0
                             : 0;
    out->delayed_data = t->delayed_seen;
}

/* A callback of any operation kind, stored back under its own type. */
typedef void (*tws_any_cb)(void);

/* The common start of a broker operation: checks, a record, and the
 * refusal when the connection cannot serve it (answered later, with the
 * reason). Returns the op to go on with, or NULL with *rc the call's return
 * value (0 for a refusal, whose callback will run). */
static tws_op *op_open(im_tws *t, op_kind kind, tws_any_cb cb, void *ud, int *rc) {
    int refused;
    tws_op *op;
    *rc = 0;
    if (cb == NULL) {
        *rc = IM_EINVAL;
        return NULL;
    }
    if (t->state == ST_CLOSED) {
        *rc = IM_ECANCELED;
        return NULL;
    }
    op = op_start(t, kind, ud, &refused);
    if (op == NULL) {
        *rc = IM_ENOMEM;
        return NULL;
    }
    switch (kind) {
    case OP_QUOTE: op->cb.quote = (im_quote_cb)cb; break;
    case OP_ACCOUNT: op->cb.account = (im_account_cb)cb; break;
    case OP_POSITIONS: op->cb.positions = (im_positions_cb)cb; break;
    case OP_ORDERS: op->cb.orders = (im_orders_cb)cb; break;
    case OP_EXECS: op->cb.execs = (im_execs_cb)cb; break;
    case OP_PLACE: case OP_CANCEL: op->cb.order = (im_order_cb)cb; break;
    case OP_EVENT: break;
    }
    return refused ? NULL : op;
}

static int tws_quote(im_broker *b, const char *symbol, im_quote_cb cb, void *ud) {
    im_tws *t = (im_tws *)b;
    int rc;
    tws_op *op;
    tws_contract *c;
    if (symbol == NULL || symbol[0] == '\0' || strlen(symbol) >= IM_SYMBOL_MAX)
        return IM_EINVAL;
    if ((op = op_open(t, OP_QUOTE, (tws_any_cb)cb, ud, &rc)) == NULL)
        return rc;
    copy_text(op->symbol, sizeof op->symbol, symbol);
    c = contract_find(t, symbol);
    if (c != NULL && c->con_id != 0) {
        quote_send_snapshot(t, op, 0);
    } else {
        op->stage = QS_CONTRACT;
        op->id = tws_req_id(t);
        op->deadline = tws_now_ms(t) + t->request_ms;
        put_contract_request(t, op->id, symbol);
    }
    tws_flush(t);
    return 0;
}

static int tws_account(im_broker *b, im_account_cb cb, void *ud) {
    im_tws *t = (im_tws *)b;
    int rc;
    tws_op *op;
    if ((op = op_open(t, OP_ACCOUNT, (tws_any_cb)cb, ud, &rc)) == NULL)
        return rc;
    op->id = tws_req_id(t);
    op->deadline = tws_now_ms(t) + t->request_ms;
    im_tws_begin(&t->out, IM_TWS_OUT_REQ_ACCOUNT_SUMMARY);
    im_tws_put_int(&t->out, 1);
    im_tws_put_int(&t->out, op->id);
    im_tws_put_str(&t->out, "All");
    im_tws_put_str(&t->out, "AccountType,NetLiquidation,TotalCashValue,BuyingPower,"
                            "GrossPositionValue");
    im_tws_end(&t->out);
    tws_flush(t);
    return 0;
}

static int tws_positions(im_broker *b, im_positions_cb cb, void *ud) {
    im_tws *t = (im_tws *)b;
    int rc;
    tws_op *op;
    if ((op = op_open(t, OP_POSITIONS, (tws_any_cb)cb, ud, &rc)) == NULL)
        return rc;
    op->deadline = tws_now_ms(t) + t->request_ms;
    if (t->portfolio_ready)
        positions_complete(t, op); /* delivered from the idle handle */
    return 0;
}

static int tws_open_orders(im_broker *b, im_orders_cb cb, void *ud) {
    im_tws *t = (im_tws *)b;
    int rc;
    tws_op *op;
    if ((op = op_open(t, OP_ORDERS, (tws_any_cb)cb, ud, &rc)) == NULL)
        return rc;
    op->deadline = tws_now_ms(t) + t->request_ms;
    if (!t->oo_inflight) {
        /* One round at a time (the request has no id); others join it. */
        t->oo_inflight = 1;
        t->oo_gen++;
        im_tws_begin(&t->out, IM_TWS_OUT_REQ_ALL_OPEN_ORDERS);
        im_tws_put_int(&t->out, 1);
        im_tws_end(&t->out);
        tws_flush(t);
    }
    return 0;
}

static int tws_executions(im_broker *b, im_execs_cb cb, void *ud) {
    im_tws *t = (im_tws *)b;
    int rc;
    tws_op *op;
    if ((op = op_open(t, OP_EXECS, (tws_any_cb)cb, ud, &rc)) == NULL)
        return rc;
    op->id = tws_req_id(t);
    op->deadline = tws_now_ms(t) + t->request_ms;
    im_tws_begin(&t->out, IM_TWS_OUT_REQ_EXECUTIONS);
    im_tws_put_int(&t->out, 3);
    im_tws_put_int(&t->out, op->id);
    im_tws_put_int(&t->out, 0);
    im_tws_put_str(&t->out, t->account);
    for (int i = 0; i < 5; i++)
        im_tws_put_str(&t->out, "");
    im_tws_end(&t->out);
    tws_flush(t);
    return 0;
}

/* Sends a place op's order (its contract is cached). */
static void place_send(im_tws *t, tws_op *op) {
    tws_contract *c = contract_find(t, op->order.symbol);
    im_tws_order o;
    tws_order *rec;
    const im_order *req = &op->order;
    if (c == NULL || c->con_id == 0) {
        op_finish(t, op, IM_ESYMBOL, "the contract vanished from the cache; the order was not sent");
        return;
    }
    rec = order_get(t, t->client_id, t->next_order_id, 0);
    if (rec == NULL) {
        op_finish(t, op, IM_ENOMEM, "too many orders in flight; the order was not sent");
        return;
    }
    op->id = t->next_order_id++;
    op->stage = 1; /* sent: from here on it is only ever settled, never resent */
    op->deadline = tws_now_ms(t) + t->place_ms;
    rec->ours = 1;
    rec->info.order = *req;
    rec->info.status = IM_OS_PENDING;
    rec->info.remaining = req->quantity;

    im_tws_order_init(&o);
    o.order_id = op->id;
    o.contract.con_id = c->con_id;
    copy_text(o.contract.symbol, sizeof o.contract.symbol, req->symbol);
    copy_text(o.contract.sec_type, sizeof o.contract.sec_type, "STK");
    copy_text(o.contract.exchange, sizeof o.contract.exchange, "SMART");
    copy_text(o.contract.primary_exch, sizeof o.contract.primary_exch, c->primary_exch);
    copy_text(o.contract.currency, sizeof o.contract.currency, "USD");
    copy_text(o.action, sizeof o.action, req->side == IM_SIDE_BUY ? "BUY" : "SELL");
    o.total_qty = req->quantity;
    copy_text(o.order_type, sizeof o.order_type, im_order_type_str(req->type));
    if (req->type == IM_OT_LMT || req->type == IM_OT_STP_LMT)
        o.lmt_price = req->limit_price;
    if (req->type == IM_OT_STP || req->type == IM_OT_STP_LMT)
        o.aux_price = req->stop_price;
    copy_text(o.tif, sizeof o.tif, im_tif_str(req->tif));
    copy_text(o.account, sizeof o.account, t->account);
    copy_text(o.order_ref, sizeof o.order_ref, req->order_ref);
    o.transmit = 1;
    im_tws_put_place_order(&t->out, &o);
    im_info("tws: placing order %lld ref %s: %s %.0f %s %s", op->id, req->order_ref,
            o.action, req->quantity, req->symbol, o.order_type);
}

static int tws_place(im_broker *b, const im_order *o, im_order_cb cb, void *ud) {
    im_tws *t = (im_tws *)b;
    int rc;
    tws_op *op;
    tws_order *dup;
    tws_contract *c;
    if (o == NULL || o->symbol[0] == '\0' || o->order_ref[0] == '\0')
        return IM_EINVAL;
    if ((op = op_open(t, OP_PLACE, (tws_any_cb)cb, ud, &rc)) == NULL)
        return rc;
    op->order = *o;
    copy_text(op->symbol, sizeof op->symbol, o->symbol);
    /* An orderRef TWS already knows is that order: never a second one. */
    dup = order_find_ref(t, o->order_ref);
    if (dup != NULL) {
        op->info = dup->info;
        op->have_info = 1;
        op_finish(t, op, 0, NULL);
        im_warn("tws: order ref %s is already order %s at TWS; not sent again", o->order_ref,
                dup->info.order_id);
        return 0;
    }
    c = contract_find(t, o->symbol);
    if (c != NULL && c->con_id != 0) {
        place_send(t, op);
    } else {
        op->stage = QS_CONTRACT;
        op->id = tws_req_id(t);
        op->deadline = tws_now_ms(t) + t->request_ms;
        put_contract_request(t, op->id, o->symbol);
    }
    tws_flush(t);
    return 0;
}

static int tws_cancel(im_broker *b, const char *order_id, im_order_cb cb, void *ud) {
    im_tws *t = (im_tws *)b;
    int rc;
    tws_op *op;
    char *end;
    long long id;
    tws_order *o;
    if (order_id == NULL)
        return IM_EINVAL;
    id = strtoll(order_id, &end, 10);
    if (end == order_id || *end != '\0' || id <= 0 || id >= TWS_REQ_BASE)
        return IM_EORDER;
    if ((op = op_open(t, OP_CANCEL, (tws_any_cb)cb, ud, &rc)) == NULL)
        return rc;
    op->id = id;
    o = order_mine(t, id);
    if (o != NULL && im_order_status_terminal(o->info.status)) {
        op->info = o->info;
        op->have_info = 1;
        op_unlink(t, op);
        op_done(t, op, IM_ESTATE, "Order %lld is already %s; there is nothing to cancel.", id,
                im_order_status_str(o->info.status));
        return 0;
    }
    op->deadline = tws_now_ms(t) + t->request_ms;
    im_tws_begin(&t->out, IM_TWS_OUT_CANCEL_ORDER);
    im_tws_put_int(&t->out, 1);
    im_tws_put_int(&t->out, id);
    im_tws_put_str(&t->out, ""); /* manualOrderCancelTime */
    im_tws_end(&t->out);
    tws_flush(t);
    return 0;
}

static void tws_handle_close_cb(uv_handle_t *h) { tws_handle_gone(h->data); }

static void tws_close(im_broker *b) {
    im_tws *t = (im_tws *)b;
    tws_op *list;
    if (t->state == ST_CLOSED)
        return;
    /* Closed before anyone hears of it: nothing a callback below starts
     * can reach the wire (op_open refuses with IM_ECANCELED). */
    t->state = ST_CLOSED;
    /* Everything pending is answered now, synchronously (broker.h). */
    while (t->ops) {
        tws_op *op = t->ops;
        t->ops = op->next;
        op->status = IM_ECANCELED;
        snprintf(op->msg, sizeof op->msg, "the server is shutting down");
        op->have_info = op->have_info && op->kind == OP_PLACE;
        op->next = NULL;
        if (t->done_tail)
            t->done_tail->next = op;
        else
            t->done = op;
        t->done_tail = op;
    }
    list = t->done;
    t->done = t->done_tail = NULL;
    while (list) {
        tws_op *op = list;
        list = op->next;
        if (op->kind != OP_EVENT) /* events die with the connection */
            op_deliver(op);
        op_free(op);
    }
    if (t->conn != NULL && !t->conn->closing) {
        t->conn->closing = 1;
        uv_close((uv_handle_t *)&t->conn->tcp, conn_close_cb);
    }
    t->conn = NULL;
    uv_close((uv_handle_t *)&t->sweep, tws_handle_close_cb);
    uv_close((uv_handle_t *)&t->retry, tws_handle_close_cb);
    uv_close((uv_handle_t *)&t->idle, tws_handle_close_cb);
}

static const im_broker_ops tws_ops = {
    .name = "tws",
    .connected = tws_connected,
    .info = tws_info,
    .quote = tws_quote,
    .account = tws_account,
    .positions = tws_positions,
    .open_orders = tws_open_orders,
    .executions = tws_executions,
    .place = tws_place,
    .cancel = tws_cancel,
    .close = tws_close,
};

static int resolve(im_tws *t) {
    struct addrinfo hints, *res = NULL;
    char port[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", t->port);
    if (getaddrinfo(t->host, port, &hints, &res) != 0 || res == NULL)
        return IM_EINVAL;
    memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    t->have_addr = 1;
    return 0;
}

int im_tws_new(uv_loop_t *loop, const im_tws_opts *opts, im_tws **out) {
    im_tws *t;
    if (loop == NULL || opts == NULL || out == NULL || opts->host == NULL || opts->port <= 0 ||
        opts->port > 65535)
        return IM_EINVAL;
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return IM_ENOMEM;
    t->base.ops = &tws_ops;
    t->loop = loop;
    t->clock = opts->clock;
    copy_text(t->host, sizeof t->host, opts->host);
    t->port = opts->port;
    t->client_id = opts->client_id;
    copy_text(t->want_account, sizeof t->want_account, opts->account_id);
    t->connect_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 10000;
    t->request_ms = opts->request_timeout_ms ? opts->request_timeout_ms : 10000;
    t->quote_ms = opts->quote_timeout_ms ? opts->quote_timeout_ms : 12000;
    t->place_ms = opts->place_timeout_ms ? opts->place_timeout_ms : 30000;
    t->backoff_max_ms = opts->backoff_max_ms ? opts->backoff_max_ms : 30000;
    t->next_req_id = TWS_REQ_BASE;
    t->next_order_id = 1;
    im_tws_writer_init(&t->out);
    uv_timer_init(loop, &t->sweep);
    uv_timer_init(loop, &t->retry);
    uv_idle_init(loop, &t->idle);
    t->sweep.data = t->retry.data = t->idle.data = t;
    t->handles = 3;
    /* None of these keeps the loop alive: the server ends when stdin does. */
    uv_unref((uv_handle_t *)&t->sweep);
    uv_unref((uv_handle_t *)&t->retry);
    uv_timer_start(&t->sweep, tws_sweep_cb, TWS_SWEEP_MS, TWS_SWEEP_MS);
    if (resolve(t) != 0)
        tws_set_error(t, "IBKR_HOST=%s does not resolve to an address", t->host);
    tws_connect(t);
    *out = t;
    return 0;
}

im_broker *im_tws_broker(im_tws *t) { return &t->base; }
