/* tws.h: the TWS / IB Gateway backend, an implementation of broker.h over
 * the TWS socket API at server version 178 (reference/tws-protocol.md).
 *
 * One TCP connection on the caller's libuv loop: handshake (v157..178),
 * startApi, nextValidId and managedAccounts; then, before anything new is
 * sent, reconciliation (all open orders and today's executions, matched
 * to this process's orders by orderRef); then account updates and P&L
 * subscriptions that keep positions and P&L current. Quotes are snapshots
 * of a contract resolved once by reqContractDetails (STK, SMART, USD) and
 * cached; a symbol without a real-time subscription falls back to delayed
 * data, flagged delayed. Every request has a timeout. A lost connection
 * fails the reads in flight with a sentence, keeps orders in flight "in
 * doubt", and reconnects with back-off (1 s doubling to 30 s); on
 * reconnection an order in doubt is found by its orderRef or declared not
 * placed, and never sent again.
 *
 * Uses tws_codec.h for every byte, broker.h for the interface, clock.h
 * for times, log.h (stderr). Owns its handles and memory; freed by the
 * broker's close op once the loop has run the close callbacks. */
#ifndef IM_TWS_H
#define IM_TWS_H

#include <uv.h>

#include "broker.h"
#include "clock.h"

typedef struct im_tws_opts {
    const char *host;        /* IBKR_HOST, an IPv4 or IPv6 literal or a name */
    int port;                /* IBKR_PORT */
    int client_id;           /* IBKR_CLIENT_ID */
    const char *account_id;  /* IBKR_ACCOUNT_ID; "" or NULL = the first managed account */
    im_clock *clock;         /* not owned; the session's clock */
    /* Timeouts in milliseconds; 0 takes the default in parentheses. */
    unsigned connect_timeout_ms;  /* connect + handshake + start (10000) */
    unsigned request_timeout_ms;  /* reads, contract details, cancel (10000) */
    unsigned quote_timeout_ms;    /* a snapshot (12000: TWS takes up to 11 s) */
    unsigned place_timeout_ms;    /* placeOrder to its acknowledgement (30000) */
    unsigned backoff_max_ms;      /* reconnect back-off ceiling (30000) */
} im_tws_opts;

typedef struct im_tws im_tws;

/* Creates the backend and starts connecting (asynchronously: a TWS that is
 * not there is a state, reported by get_status, not an error). Returns 0,
 * IM_EINVAL or IM_ENOMEM. */
int im_tws_new(uv_loop_t *loop, const im_tws_opts *opts, im_tws **out);
im_broker *im_tws_broker(im_tws *t);

/* The sentence a TWS error code means for an operator or an agent (static;
 * NULL for codes with no special meaning). */
const char *im_tws_error_text(int code);

#endif
