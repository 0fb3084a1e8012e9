/* gateway.h: `ibkr-mcp gateway`, the built-in market simulator served over
 * the TWS socket API at server version 178 (reference/tws-protocol.md), on
 * 127.0.0.1 only, so the tws backend and independent clients such as
 * @stoqey/ib can be tested end to end offline.
 *
 * Uses sim.h (one simulator, one clock), tws_codec.h (framing and field
 * encodings), libuv (one loop, TCP, timers, signals) and log.h (stderr).
 * stdout carries exactly one line, once listening:
 *   "ibkr-mcp gateway listening on 127.0.0.1:PORT account ACCOUNT" */
#ifndef IM_GATEWAY_H
#define IM_GATEWAY_H

#include <stddef.h>

#define IM_GATEWAY_DEFAULT_PORT 7490   /* clear of TWS 7496/7497, Gateway 4001/4002 */

typedef struct im_gateway_opts {
    int port;                     /* 0: any free port */
    unsigned long long seed;      /* simulator seed */
    char account[32];             /* managed account id served */
    /* Test-only fault switches. */
    int drop_after_place;         /* close the connection of the first placeOrder, unanswered */
    int ack_delay_ms;             /* hold each placeOrder's acknowledgements this long */
    int delayed_only;             /* no real-time subscription: 354 / 10167 + delayed ticks */
} im_gateway_opts;

/* Fills the defaults (port 7490, seed 42, account DU0000001). */
void im_gateway_opts_init(im_gateway_opts *o);
/* Parses the arguments after "gateway". Returns 0, or IM_EINVAL with a
 * sentence in err. */
int im_gateway_parse_args(int argc, char **argv, im_gateway_opts *o, char *err, size_t errlen);
/* Runs the gateway until SIGINT or SIGTERM. Returns 0, or 1 when it could
 * not start (the reason is logged to stderr). */
int im_gateway_serve(const im_gateway_opts *o);
/* The command line: argv[0] is "gateway". Returns the process exit code
 * (2 for a usage error). */
int im_gateway_run(int argc, char **argv);

#endif
