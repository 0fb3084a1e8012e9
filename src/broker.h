/* broker.h: the broker interface. A table of asynchronous operations with
 * completion callbacks, plus events the session subscribes to. The
 * simulator (sim.c) implements it today; the TWS client will too. The
 * broker knows nothing of tokens, risk or MCP.
 *
 * Contract (libuv's): if an operation returns an error, its callback is
 * never called; otherwise the callback is called exactly once, and never
 * from inside the call itself (always from a later loop iteration), so a
 * caller may start an operation and then yield. Data handed to a callback
 * (strings, arrays) belongs to the broker and is valid only during the
 * callback: copy what you keep. */
#ifndef IM_BROKER_H
#define IM_BROKER_H

#include <stddef.h>

#define IM_SYMBOL_MAX 16   /* longest symbol + NUL */
#define IM_ORDER_ID_MAX 24
#define IM_ORDER_REF_MAX 40
#define IM_ACCOUNT_MAX 32
#define IM_MESSAGE_MAX 160

typedef enum im_side {
    IM_SIDE_BUY = 1,
    IM_SIDE_SELL,
} im_side;

typedef enum im_order_type {
    IM_OT_MKT = 1,
    IM_OT_LMT,
    IM_OT_STP,
    IM_OT_STP_LMT,
} im_order_type;

typedef enum im_tif {
    IM_TIF_DAY = 1,
    IM_TIF_GTC,
    IM_TIF_IOC,
} im_tif;

/* Order lifecycle. Terminal states: FILLED, CANCELLED, REJECTED. */
typedef enum im_order_status {
    IM_OS_PENDING = 1,  /* sent, not yet acknowledged */
    IM_OS_SUBMITTED,    /* working at the broker */
    IM_OS_PARTIAL,      /* working, partly filled */
    IM_OS_FILLED,
    IM_OS_CANCELLED,
    IM_OS_REJECTED,
} im_order_status;

/* An order as the agent asked for it. Prices are 0 when not applicable. */
typedef struct im_order {
    char symbol[IM_SYMBOL_MAX];
    im_side side;
    double quantity;       /* whole shares, > 0 */
    im_order_type type;
    double limit_price;    /* LMT, STP LMT */
    double stop_price;     /* STP, STP LMT */
    im_tif tif;
    char order_ref[IM_ORDER_REF_MAX]; /* tag derived from the confirmation */
} im_order;

typedef struct im_quote {
    char symbol[IM_SYMBOL_MAX];
    double bid, ask, last;
    double bid_size, ask_size;
    double time;           /* epoch seconds of the quote */
    int delayed;           /* 1 when the data is delayed, not real time */
} im_quote;

typedef struct im_position {
    char symbol[IM_SYMBOL_MAX];
    double quantity;       /* signed: negative is short */
    double avg_cost;
    double market_price;
    double market_value;
    double unrealized_pnl;
    double realized_pnl;
} im_position;

typedef struct im_account {
    char account_id[IM_ACCOUNT_MAX];
    char account_type[16];   /* "CASH" or "MARGIN" */
    double net_liquidation;
    double cash;
    double buying_power;     /* cash less working buy orders, for CASH */
    double gross_position_value;
    double realized_pnl;
    double unrealized_pnl;
    double commissions;      /* paid today */
} im_account;

typedef struct im_order_info {
    char order_id[IM_ORDER_ID_MAX];
    im_order order;
    im_order_status status;
    double filled;
    double remaining;
    double avg_fill_price;
    double submitted_at;     /* epoch seconds */
    double updated_at;
    char message[IM_MESSAGE_MAX]; /* broker's word on the last change */
} im_order_info;

typedef struct im_execution {
    char exec_id[32];
    char order_id[IM_ORDER_ID_MAX];
    char symbol[IM_SYMBOL_MAX];
    im_side side;
    double shares;
    double price;
    double commission;
    double realized_pnl;
    double time;
    char order_ref[IM_ORDER_REF_MAX];
} im_execution;

typedef struct im_broker im_broker;

/* Callbacks: status is 0 or a negative IM_E* code; msg, when not NULL, is a
 * sentence from the broker explaining a failure. */
typedef void (*im_quote_cb)(void *ud, int status, const char *msg, const im_quote *q);
typedef void (*im_account_cb)(void *ud, int status, const char *msg, const im_account *a);
typedef void (*im_positions_cb)(void *ud, int status, const char *msg,
                                const im_position *p, size_t n);
typedef void (*im_orders_cb)(void *ud, int status, const char *msg,
                             const im_order_info *o, size_t n);
typedef void (*im_execs_cb)(void *ud, int status, const char *msg,
                            const im_execution *e, size_t n);
/* The order's state right after the broker acknowledged (or refused) it. */
typedef void (*im_order_cb)(void *ud, int status, const char *msg, const im_order_info *o);

/* Events the broker raises on its own: order status changes, fills,
 * connection changes. `connected` is meaningful for IM_BEV_CONNECTION. */
typedef enum im_broker_event_kind {
    IM_BEV_ORDER = 1,
    IM_BEV_FILL,
    IM_BEV_CONNECTION,
} im_broker_event_kind;

typedef struct im_broker_event {
    im_broker_event_kind kind;
    const im_order_info *order;    /* IM_BEV_ORDER, IM_BEV_FILL */
    const im_execution *exec;      /* IM_BEV_FILL */
    int connected;                 /* IM_BEV_CONNECTION */
    const char *message;
} im_broker_event;

typedef void (*im_broker_event_cb)(void *ud, const im_broker_event *ev);

/* What get_status reports about the connection. Strings belong to the
 * broker and stay valid until it next runs (copy them to keep them). */
typedef struct im_broker_info {
    const char *state;        /* "connected", "connecting", "reconciling", "disconnected" */
    const char *host;         /* "" for the simulator */
    int port;                 /* 0 for the simulator */
    int client_id;
    int server_version;       /* 0 until a handshake completed */
    const char *account_id;   /* the account traded; "" until known */
    const char *last_error;   /* "" when none */
    double last_error_at;     /* epoch seconds of last_error; 0 when none */
    int reconnects;           /* connections re-established since start */
    double next_retry_in;     /* seconds until the next attempt; 0 when connected */
    int delayed_data;         /* 1 once quotes fell back to delayed data */
    const char *account_file; /* sim: where the account persists; NULL in memory only */
} im_broker_info;

typedef struct im_broker_ops {
    const char *name;  /* "sim", "tws" */
    int (*connected)(im_broker *b);
    void (*info)(im_broker *b, im_broker_info *out);
    int (*quote)(im_broker *b, const char *symbol, im_quote_cb cb, void *ud);
    int (*account)(im_broker *b, im_account_cb cb, void *ud);
    int (*positions)(im_broker *b, im_positions_cb cb, void *ud);
    int (*open_orders)(im_broker *b, im_orders_cb cb, void *ud);
    int (*executions)(im_broker *b, im_execs_cb cb, void *ud);
    int (*place)(im_broker *b, const im_order *o, im_order_cb cb, void *ud);
    int (*cancel)(im_broker *b, const char *order_id, im_order_cb cb, void *ud);
    /* Answers every operation still pending with IM_ECANCELED before it
     * returns (no callback runs after that), then closes its handles; the
     * loop must run once more for the close callbacks, after which the
     * im_broker memory is freed. */
    void (*close)(im_broker *b);
} im_broker_ops;

/* Every backend embeds this as its first member. */
struct im_broker {
    const im_broker_ops *ops;
    im_broker_event_cb on_event;  /* set by the session; may be NULL */
    void *event_ud;
};

/* Text forms used on the MCP surface ("BUY", "MKT", "DAY", "FILLED"). */
const char *im_side_str(im_side s);
const char *im_order_type_str(im_order_type t);
const char *im_tif_str(im_tif t);
const char *im_order_status_str(im_order_status s);
/* Parsers: return 0 or IM_EINVAL. Exact, case-sensitive matches. */
int im_side_parse(const char *s, im_side *out);
int im_order_type_parse(const char *s, im_order_type *out);
int im_tif_parse(const char *s, im_tif *out);
/* 1 when status is terminal (FILLED, CANCELLED, REJECTED). */
int im_order_status_terminal(im_order_status s);
/* 1 for a paper-trading account id (IBKR's "DU" and "DF" prefixes). */
int im_account_is_paper(const char *account_id);

#endif
