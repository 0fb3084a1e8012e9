/* tws_codec.h: the TWS socket API at server version 178, encode and decode,
 * with no I/O (reference/tws-protocol.md). Used by the client backend
 * (tws.c) and by the fake gateway (gateway.c), so both sides of every
 * message are written once.
 *
 * Framing: after the client's raw "API\0" + be32 + "v157..178" prefix,
 * every message is be32 length + payload; the payload is NUL-terminated
 * text fields, the first being the message id. Nothing here trusts its
 * input: malformed bytes give an error value (IM_EPARSE or IM_ETOOBIG),
 * never a crash or a read past what was given.
 *
 * Values: ints are decimal text; "" reads as 0 (or unset for the *_max
 * readers). Doubles are written the way TWS writes them (shortest text
 * that reads back exactly, "150", "150.25"); unset (DBL_MAX) is "" for the
 * *_max writers. Decimal quantities are plain text ("100", "0.5"); the
 * sentinels "", "2147483647", "9223372036854775807" and
 * "1.7976931348623157E308" read as unset (IM_TWS_UNSET_DBL).
 *
 * Memory: a writer owns its growing buffer (free with
 * im_tws_writer_free); a reader owns its buffer; a message view points
 * into the reader's buffer and is valid until the next call on that
 * reader. Structures are plain values with fixed-size text fields;
 * text longer than a field is an error when decoding (IM_EPARSE) and is
 * never silently cut. Uses error.h only. */
#ifndef IM_TWS_CODEC_H
#define IM_TWS_CODEC_H

#include <float.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define IM_TWS_VERSION 178          /* the one server version we speak */
#define IM_TWS_CLIENT_MIN 157       /* what the client advertises: v157..178 */
#define IM_TWS_MAX_FRAME 0xFFFFFF   /* payload bytes; above it the peer is broken */
#define IM_TWS_UNSET_INT INT_MAX
#define IM_TWS_UNSET_DBL DBL_MAX

/* ---- message ids (the first field) ---- */
enum {
    /* client -> server */
    IM_TWS_OUT_REQ_MKT_DATA = 1,
    IM_TWS_OUT_CANCEL_MKT_DATA = 2,
    IM_TWS_OUT_PLACE_ORDER = 3,
    IM_TWS_OUT_CANCEL_ORDER = 4,
    IM_TWS_OUT_REQ_OPEN_ORDERS = 5,
    IM_TWS_OUT_REQ_ACCT_UPDATES = 6,
    IM_TWS_OUT_REQ_EXECUTIONS = 7,
    IM_TWS_OUT_REQ_IDS = 8,
    IM_TWS_OUT_REQ_CONTRACT_DATA = 9,
    IM_TWS_OUT_REQ_AUTO_OPEN_ORDERS = 15,
    IM_TWS_OUT_REQ_ALL_OPEN_ORDERS = 16,
    IM_TWS_OUT_REQ_MANAGED_ACCTS = 17,
    IM_TWS_OUT_REQ_CURRENT_TIME = 49,
    IM_TWS_OUT_REQ_GLOBAL_CANCEL = 58,
    IM_TWS_OUT_REQ_MKT_DATA_TYPE = 59,
    IM_TWS_OUT_REQ_POSITIONS = 61,
    IM_TWS_OUT_REQ_ACCOUNT_SUMMARY = 62,
    IM_TWS_OUT_CANCEL_ACCOUNT_SUMMARY = 63,
    IM_TWS_OUT_CANCEL_POSITIONS = 64,
    IM_TWS_OUT_START_API = 71,
    IM_TWS_OUT_REQ_PNL = 92,
    IM_TWS_OUT_CANCEL_PNL = 93,
    /* server -> client */
    IM_TWS_IN_TICK_PRICE = 1,
    IM_TWS_IN_TICK_SIZE = 2,
    IM_TWS_IN_ORDER_STATUS = 3,
    IM_TWS_IN_ERR_MSG = 4,
    IM_TWS_IN_OPEN_ORDER = 5,
    IM_TWS_IN_ACCT_VALUE = 6,
    IM_TWS_IN_PORTFOLIO_VALUE = 7,
    IM_TWS_IN_ACCT_UPDATE_TIME = 8,
    IM_TWS_IN_NEXT_VALID_ID = 9,
    IM_TWS_IN_CONTRACT_DATA = 10,
    IM_TWS_IN_EXECUTION_DATA = 11,
    IM_TWS_IN_MANAGED_ACCTS = 15,
    IM_TWS_IN_CURRENT_TIME = 49,
    IM_TWS_IN_TICK_GENERIC = 45,
    IM_TWS_IN_TICK_STRING = 46,
    IM_TWS_IN_CONTRACT_DATA_END = 52,
    IM_TWS_IN_OPEN_ORDER_END = 53,
    IM_TWS_IN_ACCT_DOWNLOAD_END = 54,
    IM_TWS_IN_EXECUTION_DATA_END = 55,
    IM_TWS_IN_TICK_SNAPSHOT_END = 57,
    IM_TWS_IN_MARKET_DATA_TYPE = 58,
    IM_TWS_IN_COMMISSION_REPORT = 59,
    IM_TWS_IN_POSITION_DATA = 61,
    IM_TWS_IN_POSITION_END = 62,
    IM_TWS_IN_ACCOUNT_SUMMARY = 63,
    IM_TWS_IN_ACCOUNT_SUMMARY_END = 64,
    IM_TWS_IN_PNL = 94,
};

/* Tick types the backend and the gateway use (reference 6.2). */
enum {
    IM_TWS_TICK_BID_SIZE = 0,
    IM_TWS_TICK_BID = 1,
    IM_TWS_TICK_ASK = 2,
    IM_TWS_TICK_ASK_SIZE = 3,
    IM_TWS_TICK_LAST = 4,
    IM_TWS_TICK_LAST_SIZE = 5,
    IM_TWS_TICK_HIGH = 6,
    IM_TWS_TICK_LOW = 7,
    IM_TWS_TICK_VOLUME = 8,
    IM_TWS_TICK_CLOSE = 9,
    IM_TWS_TICK_OPEN = 14,
    IM_TWS_TICK_LAST_TIMESTAMP = 45,
    IM_TWS_TICK_DELAYED_BID = 66,
    IM_TWS_TICK_DELAYED_ASK = 67,
    IM_TWS_TICK_DELAYED_LAST = 68,
    IM_TWS_TICK_DELAYED_BID_SIZE = 69,
    IM_TWS_TICK_DELAYED_ASK_SIZE = 70,
    IM_TWS_TICK_DELAYED_LAST_SIZE = 71,
    IM_TWS_TICK_DELAYED_CLOSE = 75,
    IM_TWS_TICK_DELAYED_LAST_TIMESTAMP = 88,
};

/* ---- writing ---- */

/* A growing output buffer holding zero or more complete frames. An
 * allocation failure or an oversized frame is remembered (err) and
 * reported by im_tws_end / im_tws_writer_error; the put functions then do
 * nothing, so a message can be written without checking every field. */
typedef struct im_tws_writer {
    char *data;
    size_t len, cap;
    size_t frame;   /* offset of the open frame's length prefix */
    int open;       /* 1 between im_tws_begin and im_tws_end */
    int err;        /* 0 or the first IM_E* code */
} im_tws_writer;

void im_tws_writer_init(im_tws_writer *w);
void im_tws_writer_free(im_tws_writer *w);
/* Drops the content (keeps the memory and clears err). */
void im_tws_writer_reset(im_tws_writer *w);
int im_tws_writer_error(const im_tws_writer *w);

/* The client's connection prefix: "API\0", be32 length, "v<min>..<max>"
 * (no NUL; "v<min>" when min == max). Not a frame. */
void im_tws_put_prefix(im_tws_writer *w, int min_version, int max_version);

/* Opens a frame (reserves the length) and writes the message id. A begin
 * while a frame is open is remembered as IM_EINVAL. */
void im_tws_begin(im_tws_writer *w, int msg_id);
/* Closes the frame, patching its length. Returns 0, IM_ETOOBIG (payload
 * over IM_TWS_MAX_FRAME; the frame is dropped) or the remembered error (the
 * open frame, possibly partial, is dropped too); IM_EINVAL with no open
 * frame. */
int im_tws_end(im_tws_writer *w);

/* Fields. A NULL string writes "". Text is written as given (the caller
 * keeps it free of NUL, which a C string cannot hold anyway). */
void im_tws_put_str(im_tws_writer *w, const char *s);
void im_tws_put_int(im_tws_writer *w, long long v);
/* IM_TWS_UNSET_INT -> "". */
void im_tws_put_int_max(im_tws_writer *w, int v);
/* Shortest round-trip text ("150", "150.25", "0"; C's exponent form such
 * as "1e-05" or "1e+20" outside about 1e-4..1e15, which every reader
 * accepts); DBL_MAX is written "1.7976931348623157E308" as Java does;
 * non-finite -> "". */
void im_tws_put_dbl(im_tws_writer *w, double v);
/* IM_TWS_UNSET_DBL or non-finite -> "". */
void im_tws_put_dbl_max(im_tws_writer *w, double v);
/* A Decimal quantity in plain notation, no exponent, no trailing zeros
 * ("100", "0.5"); IM_TWS_UNSET_DBL or non-finite -> "". */
void im_tws_put_dec(im_tws_writer *w, double v);
void im_tws_put_bool(im_tws_writer *w, int b);

/* ---- reading ---- */

/* Incremental frame reader over a byte stream (both directions). Feed it
 * what the socket delivered, then take frames while there are any. */
typedef struct im_tws_reader {
    char *buf;
    size_t len, cap, pos;  /* pos: start of unconsumed bytes */
    int want_prefix;       /* 1: a server reader, expecting "API\0" first */
    int err;               /* sticky: the stream is broken */
} im_tws_reader;

/* server: 1 when this end accepts connections (expects the client's
 * prefix before any frame). */
void im_tws_reader_init(im_tws_reader *r, int server);
void im_tws_reader_free(im_tws_reader *r);
/* Appends bytes; 0 or IM_ENOMEM. The buffer grows with the bytes given,
 * never with a length prefix. Bytes fed after a stream error are dropped. */
int im_tws_reader_feed(im_tws_reader *r, const char *data, size_t n);

/* A message view: the payload of one frame, and a cursor over its fields.
 * Reading past the last field, or a field that does not parse as its type,
 * sets err (sticky) and yields 0 / "" / unset. */
typedef struct im_tws_msg {
    const char *p, *end;  /* unread part of the payload */
    int id;               /* the first field, parsed */
    int err;              /* 0 or IM_EPARSE */
} im_tws_msg;

/* The client prefix, for a server reader: returns 1 and fills min/max and
 * opts (the text after a space, "" if none; truncated to optslen) once the
 * whole prefix arrived; 0 when more bytes are needed; IM_EPARSE when the
 * bytes are not "API\0" + a sane version string (sticky, as below);
 * IM_EINVAL on a client reader or once the prefix was read. Call until it
 * returns 1 before im_tws_reader_next. */
int im_tws_reader_prefix(im_tws_reader *r, int *min_version, int *max_version, char *opts,
                         size_t optslen);
/* The next frame: returns 1 and fills *m, 0 when more bytes are needed,
 * IM_ETOOBIG for a length above IM_TWS_MAX_FRAME, IM_EPARSE for an empty
 * frame, a payload whose last byte is not NUL or a message id that is not
 * an integer. Errors are sticky: the connection must be dropped.
 * IM_EINVAL (not sticky) on a server reader before the prefix was read. */
int im_tws_reader_next(im_tws_reader *r, im_tws_msg *m);

/* A standalone view over one payload (tests, fuzzing, the bench). Returns
 * 0 or IM_EPARSE as im_tws_reader_next would. */
int im_tws_msg_init(im_tws_msg *m, const char *payload, size_t len);

const char *im_tws_get_str(im_tws_msg *m);
long long im_tws_get_int(im_tws_msg *m);       /* "" -> 0 */
int im_tws_get_int_max(im_tws_msg *m);         /* "" -> IM_TWS_UNSET_INT */
double im_tws_get_dbl(im_tws_msg *m);          /* "" -> 0; accepts 1.0E7, Infinity, Infinite */
double im_tws_get_dbl_max(im_tws_msg *m);      /* "" -> IM_TWS_UNSET_DBL */
double im_tws_get_dec(im_tws_msg *m);          /* sentinels -> IM_TWS_UNSET_DBL */
int im_tws_get_bool(im_tws_msg *m);            /* int != 0 */
/* Skips n fields. */
void im_tws_skip(im_tws_msg *m, int n);
/* Copies the next field into out (outlen includes the NUL); a longer
 * field sets err. */
void im_tws_get_text(im_tws_msg *m, char *out, size_t outlen);
/* Fields left unread. */
int im_tws_remaining(const im_tws_msg *m);
/* 0 when every field was read and nothing failed; IM_EPARSE otherwise
 * (a surplus field is an error, as in @stoqey/ib). */
int im_tws_finish(const im_tws_msg *m);

/* ---- structured messages shared by both sides ----
 * Every reader below expects m->id to be its message's id and returns
 * IM_EINVAL, reading nothing, otherwise. They read to the end and return
 * IM_EPARSE for a missing, surplus or malformed field (im_tws_finish). */

typedef struct im_tws_contract {
    long long con_id;
    char symbol[32];
    char sec_type[8];       /* "STK" */
    char last_trade[24];    /* lastTradeDateOrContractMonth */
    double strike;          /* 0 when unset */
    char right[8];
    char multiplier[16];
    char exchange[24];      /* "SMART" */
    char primary_exch[24];
    char currency[8];       /* "USD" */
    char local_symbol[32];
    char trading_class[32];
} im_tws_contract;

/* The order fields this project sets or reads; every other field of
 * placeOrder / openOrder is written as TWS's default and, when read, must
 * hold a value the decoder can skip (the conditional groups are walked). */
typedef struct im_tws_order {
    long long order_id;
    im_tws_contract contract;
    char action[8];          /* BUY, SELL, SSHORT */
    double total_qty;        /* Decimal */
    char order_type[16];     /* MKT, LMT, STP, STP LMT */
    double lmt_price;        /* IM_TWS_UNSET_DBL when unset */
    double aux_price;        /* stop price; IM_TWS_UNSET_DBL when unset */
    char tif[8];             /* DAY, GTC, IOC */
    char account[32];
    char order_ref[64];
    int transmit;            /* 1 */
    long long parent_id;
    int outside_rth;
    int client_id;           /* openOrder only */
    long long perm_id;       /* openOrder only */
} im_tws_order;

/* Sets the defaults TWS's own client uses (transmit 1, unset prices). */
void im_tws_order_init(im_tws_order *o);

/* placeOrder (out 3): the 114-field list at 178 for a plain order. */
void im_tws_put_place_order(im_tws_writer *w, const im_tws_order *o);
/* Reads a placeOrder whose id was already taken (m->id == 3), walking
 * every conditional group (BAG legs, delta-neutral, scale, hedge, algo,
 * PEG BENCH, conditions, the >= 170 tail) so clients that fill more than
 * we do are read correctly. 0, IM_EPARSE, or IM_EINVAL for an order shape
 * this project does not serve (combo legs, conditions, what-if), with *why
 * set to a static sentence (NULL otherwise). */
int im_tws_get_place_order(im_tws_msg *m, im_tws_order *o, const char **why);

/* openOrder (in 5): the 127-field list at 178 for a plain order, with the
 * order state status text ("Submitted", "Filled", ...). */
void im_tws_put_open_order(im_tws_writer *w, const im_tws_order *o, const char *status);
/* Reads an openOrder (m->id == 5), 127 or 135 fields, and the groups. */
int im_tws_get_open_order(im_tws_msg *m, im_tws_order *o, char *status, size_t statuslen);

typedef struct im_tws_order_status {
    long long order_id;
    char status[24];
    double filled, remaining;   /* Decimal */
    double avg_fill_price;
    long long perm_id;
    long long parent_id;
    double last_fill_price;
    int client_id;
    char why_held[32];
    double mkt_cap_price;
} im_tws_order_status;

void im_tws_put_order_status(im_tws_writer *w, const im_tws_order_status *s);
int im_tws_get_order_status(im_tws_msg *m, im_tws_order_status *s);

typedef struct im_tws_execution {
    int req_id;                 /* -1 when unsolicited */
    long long order_id;
    im_tws_contract contract;   /* conId .. tradingClass (no primaryExch) */
    char exec_id[48];
    char time[48];              /* "yyyyMMdd HH:mm:ss America/New_York" as TWS sends it */
    char account[32];
    char exchange[24];
    char side[8];               /* BOT, SLD */
    double shares;              /* Decimal */
    double price;
    long long perm_id;
    int client_id;
    int liquidation;
    double cum_qty;             /* Decimal */
    double avg_price;
    char order_ref[64];
    int last_liquidity;
} im_tws_execution;

/* execDetails (in 11): 32 fields at 178. */
void im_tws_put_execution(im_tws_writer *w, const im_tws_execution *e);
int im_tws_get_execution(im_tws_msg *m, im_tws_execution *e);

typedef struct im_tws_commission {
    char exec_id[48];
    double commission;
    char currency[8];
    double realized_pnl;        /* IM_TWS_UNSET_DBL when unset */
    double yield;               /* IM_TWS_UNSET_DBL when unset */
    int yield_redemption_date;
} im_tws_commission;

/* commissionReport (in 59). */
void im_tws_put_commission(im_tws_writer *w, const im_tws_commission *c);
int im_tws_get_commission(im_tws_msg *m, im_tws_commission *c);

typedef struct im_tws_contract_details {
    int req_id;
    im_tws_contract contract;
    char market_name[32];
    double min_tick;
    char long_name[256];        /* \uXXXX escapes decoded to UTF-8 */
    char time_zone_id[32];
    char stock_type[16];
} im_tws_contract_details;

/* contractDetails (in 10): 42 fields at 178 with one secId pair. */
void im_tws_put_contract_details(im_tws_writer *w, const im_tws_contract_details *d);
int im_tws_get_contract_details(im_tws_msg *m, im_tws_contract_details *d);

/* errMsg (in 4): 4, 2, id, code, text, advancedOrderRejectJson. The text
 * is written with non-ASCII escaped as \uXXXX and read back unescaped. */
void im_tws_put_error(im_tws_writer *w, long long id, int code, const char *text);
int im_tws_get_error(im_tws_msg *m, long long *id, int *code, char *text, size_t textlen);

#endif
