/* session.h: the two-step order flow and the only path to an order.
 * preview: fresh quote, position and working orders -> built-in risk checks
 * -> a confirmation token when approved and trading is enabled.
 * place: redeem the token (atomically, before anything can yield) -> re-run
 * every check with a fresh quote, position and counters, including the
 * price drift since the preview -> count the order -> send it.
 * Reads pass through to the broker. Keeps today's order count (trading day
 * in New York), the kill switch, and in-flight orders. The built-in checks
 * run first, then the operator policies, which can only add rejections.
 * With a journal (journal.h) every event is appended and fsync'd before
 * it is acknowledged; today's counters and the kill switch come from the
 * journal, refreshed before each decision, so they survive a restart and
 * are shared with another server on the same state directory. A journal
 * that cannot be written halts trading (fail closed). A KILL file in the
 * state directory halts every preview and placement while it exists.
 * Uses broker.h, risk.h, policy.h, tokens.h, journal.h, config.h and
 * clock.h; knows nothing of MCP. */
#ifndef IM_SESSION_H
#define IM_SESSION_H

#include "broker.h"
#include "clock.h"
#include "config.h"
#include "journal.h"
#include "policy.h"
#include "risk.h"
#include "tokens.h"

typedef struct im_session im_session;

typedef struct im_session_opts {
    const im_config *config;   /* not owned; outlives the session */
    im_broker *broker;         /* not owned */
    im_clock *clock;           /* not owned */
    const char *account_id;    /* the account the broker trades */
    im_policies *policies;     /* not owned; may be NULL (no policies) */
    im_journal *journal;       /* not owned; may be NULL (nothing is journaled) */
} im_session_opts;

int im_session_new(const im_session_opts *o, im_session **out);
void im_session_free(im_session *s);

/* Halts trading with the journal's error, when it has one: for a failure
 * found outside an append (a deferred fsync, im_journal_sync). */
void im_session_journal_failed(im_session *s);
const im_config *im_session_config(const im_session *s);
im_broker *im_session_broker(const im_session *s);
im_tokens *im_session_tokens(const im_session *s);
double im_session_now(const im_session *s);
const char *im_session_account_id(const im_session *s);
/* NULL when the account may be traded; otherwise a short reason: a live
 * account (id not starting DU/DF) without IBKR_ALLOW_LIVE_ACCOUNT=true, or
 * no account known yet. Previews and placements are rejected with
 * RISK_LIVE_ACCOUNT while it is not NULL. */
const char *im_session_live_block(const im_session *s);
/* The operator policies in force (may be NULL). */
im_policies *im_session_policies(const im_session *s);
/* Puts a new policy set in force for the next decision (p not owned; may
 * be NULL). The caller frees the old set after this returns. */
void im_session_set_policies(im_session *s, im_policies *p);
/* Appends a record of kind with fields (taken over, freed here) to the
 * journal, fsync'd; 0 without a journal. A failed write halts trading
 * (fail closed) and returns its code. For events the session does not see
 * itself: an operator console's actions, a policy reload. */
int im_session_record(im_session *s, const char *kind, cJSON *fields);
int im_session_trading_enabled(const im_session *s);
/* Orders submitted this New York trading day. */
int im_session_orders_today(im_session *s);
/* Notional of the orders submitted this trading day (at the checked price). */
double im_session_notional_today(im_session *s);
/* 1 when the kill switch is engaged or a KILL file exists in the state
 * directory; *reason (may be NULL) gets the reason. */
int im_session_halted(const im_session *s, const char **reason);
/* Engages the kill switch and journals it, so it outlives the process: no
 * MCP tool can release it. */
void im_session_halt(im_session *s, const char *reason);
/* Releases the kill switch. Operator-only: no MCP tool calls it (the REPL
 * and `ibkr-mcp resume` do). Emits IM_SEV_RESUME. */
void im_session_resume(im_session *s, const char *reason);
/* Ends the session's trading: with IBKR_CANCEL_ON_EXIT asks the broker to
 * cancel this session's working orders, and journals "exit", naming the
 * orders whose cancel was requested and those that stay working at the
 * broker. Called once, before the broker closes. */
void im_session_exit(im_session *s);
/* The journal (may be NULL). */
im_journal *im_session_journal(const im_session *s);

/* ---- events, for observers (MCP logging, the journal, an attached REPL) ---- */
typedef enum im_session_event_kind {
    IM_SEV_PREVIEW = 1,   /* a preview decided: risk (approved or not), order */
    IM_SEV_PLACE_REJECT,  /* place refused at re-validation: risk, order */
    IM_SEV_ORDER,         /* an order of this session changed: order_info */
    IM_SEV_FILL,          /* an execution: order_info, exec */
    IM_SEV_CONNECTION,    /* broker connection: connected, message */
    IM_SEV_HALT,          /* the kill switch engaged: message = reason */
    IM_SEV_RESUME,        /* the operator released it: message = reason */
} im_session_event_kind;

typedef struct im_session_event {
    im_session_event_kind kind;
    const im_order *order;            /* PREVIEW, PLACE_REJECT */
    const im_risk_result *risk;       /* PREVIEW, PLACE_REJECT */
    const im_order_info *order_info;  /* ORDER, FILL */
    const im_execution *exec;         /* FILL */
    int connected;                    /* CONNECTION */
    const char *message;              /* CONNECTION, HALT */
} im_session_event;

/* Called synchronously from the session; everything the event points to is
 * valid only during the call. A listener must not call back into the
 * session's order flow. */
typedef void (*im_session_listener)(void *ud, const im_session_event *ev);
/* Adds a listener (at most 8); returns 0 or IM_EBUSY. */
int im_session_add_listener(im_session *s, im_session_listener fn, void *ud);
/* Removes a listener added with the same fn and ud. */
void im_session_remove_listener(im_session *s, im_session_listener fn, void *ud);

/* ---- reads (pass through to the broker, same contract) ---- */
int im_session_quote(im_session *s, const char *symbol, im_quote_cb cb, void *ud);
int im_session_account(im_session *s, im_account_cb cb, void *ud);
int im_session_positions(im_session *s, im_positions_cb cb, void *ud);
int im_session_open_orders(im_session *s, im_orders_cb cb, void *ud);
int im_session_executions(im_session *s, im_execs_cb cb, void *ud);

/* ---- orders ---- */
typedef struct im_preview {
    im_order order;
    im_risk_result risk;
    int have_quote;
    im_quote quote;
    int trading_enabled;
    char token[IM_TOKEN_LEN + 1];   /* empty when no token was issued */
    double expires_in;              /* seconds; 0 without a token */
    /* A human will be asked to confirm at placement (IBKR_CONFIRM=elicit
     * above its threshold, or a policy's require_approval, which then does
     * not count as a rejection here). */
    int confirm_required;
    char confirm_reason[200];
} im_preview;

/* status 0: *p holds the decision (approved or not). Otherwise the preview
 * could not be made (e.g. IM_ESYMBOL) and msg says why; p is NULL. */
typedef void (*im_preview_cb)(void *ud, int status, const char *msg, const im_preview *p);
/* Returns 0 (cb will be called once) or an error (cb never called). */
int im_session_preview(im_session *s, const im_order *o, im_preview_cb cb, void *ud);

#define IM_CONFIRM_ID_LEN 32   /* hex characters */

typedef struct im_place_result {
    int status;               /* 0 = sent; see im_session_place */
    char message[512];        /* a sentence for the agent */
    im_order_info order;      /* the order (status 0, and IM_ETOKEN_USED when known) */
    int have_order;
    im_risk_result risk;      /* IM_ERISK: the reasons */
    /* IM_EINPUT: the order waits for a human's answer, which comes with a
     * retry (im_session_place_resume) naming confirm_id. */
    char confirm_id[IM_CONFIRM_ID_LEN + 1];
    char confirm_message[640];   /* what to show the human */
    double confirm_expires_in;   /* seconds left to answer */
} im_place_result;

typedef void (*im_place_cb)(void *ud, const im_place_result *r);

/* ---- human confirmation (IBKR_CONFIRM=elicit, a policy's require_approval) ----
 * When an order needs a human's confirmation, place stops after the
 * re-validation and asks through the confirmer its caller gave (the MCP
 * layer: elicitation/create, or an input_required result in 2026-07-28).
 * The token is already spent. Accept -> the order is re-validated with
 * fresh data and sent; decline, cancel, no answer before the token would
 * have expired, or a client that cannot ask -> not placed. The agent never
 * answers: the question goes to the client application's human. */
typedef enum im_confirm_answer {
    IM_CONFIRM_ACCEPT = 1,
    IM_CONFIRM_DECLINE,
    IM_CONFIRM_CANCEL,    /* dismissed without a choice */
    IM_CONFIRM_TIMEOUT,   /* no answer in time */
    IM_CONFIRM_FAILED,    /* the client answered with an error */
} im_confirm_answer;

typedef struct im_confirm_request {
    const char *id;            /* IM_CONFIRM_ID_LEN hex characters */
    const im_order *order;
    double notional;
    const char *message;       /* a sentence for the human, with the figures */
    double expires_in;         /* seconds left to answer */
} im_confirm_request;

typedef struct im_confirmer {
    /* Returns 0 when it started asking (the answer comes later through
     * im_session_confirm_answer, never from inside ask), IM_EINPUT when
     * the question must travel in the call's result (the answer comes with
     * im_session_place_resume), or another code when this client cannot
     * be asked (then the order is refused with CONFIRM_UNAVAILABLE). */
    int (*ask)(void *ud, const im_confirm_request *q);
    void *ud;                  /* must outlive the session's requests */
    int mode;                  /* the asker's own: e.g. which protocol era */
} im_confirmer;

/* Like im_session_place, with a way to ask a human (c may be NULL: an
 * order that needs confirmation is then refused). */
int im_session_place_ex(im_session *s, const char *token, const im_confirmer *c,
                        im_place_cb cb, void *ud);
/* The answer to a question asked with status 0. Unknown ids are ignored. */
void im_session_confirm_answer(im_session *s, const char *id, im_confirm_answer a);
/* The retry that carries the answer to an IM_EINPUT result: id and token
 * must match the waiting order. cb is called exactly once. Returns 0 or
 * IM_EINVAL. */
int im_session_place_resume(im_session *s, const char *id, const char *token,
                            im_confirm_answer a, im_place_cb cb, void *ud);
/* Orders waiting for a human's answer. */
size_t im_session_confirming(const im_session *s);
/* The caller with this place callback data went away (a cancelled tool
 * call): a question it was waiting on is answered "cancel". */
void im_session_caller_gone(im_session *s, void *ud);
/* The asker behind ud is going away: no request may call it again. */
void im_session_forget_confirmer(im_session *s, void *ud);

/* Redeems token and, after re-validation, sends its order. The result's
 * status: 0 sent (order holds the broker's answer, which may itself say
 * REJECTED); IM_ETOKEN_UNKNOWN; IM_ETOKEN_USED (order names what the token
 * placed when known); IM_EDISABLED; IM_ERISK (re-validation failed; the
 * token is spent); or a broker error. Returns 0 (cb called exactly once,
 * possibly before this returns, e.g. for a bad token) or IM_EINVAL. */
int im_session_place(im_session *s, const char *token, im_place_cb cb, void *ud);
/* Cancels a working order; same contract as the broker's cancel. */
int im_session_cancel(im_session *s, const char *order_id, im_order_cb cb, void *ud);

#endif
