/* session.c: the two-step order flow of session.h.
 *
 * Both steps gather a fresh snapshot with three broker reads (quote,
 * positions, open orders) and then decide in one callback, without
 * yielding between the decision and its effect: at preview the token is
 * issued there; at place the daily count is taken and the order sent
 * there. That is the single-writer critical section of the risk design:
 * two tokens can never both pass against the same headroom, because the
 * second one's snapshot already sees the first order as working or in
 * flight.
 *
 * The journal, when there is one, is written at each of those points
 * before the agent hears of the event: the preview record before the
 * preview answer, "redeem" as soon as a token is consumed, "order_sent"
 * (which is what the daily counters count) before the order leaves, the
 * broker's answer before the place result. A failed write halts trading
 * and the event is refused where it still can be (preview, place). */
#include "session.h"

#include <math.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "error.h"
#include "log.h"
#include "text.h"

#define SESSION_MAX_ORDERS 4096
#define SESSION_MAX_INFLIGHT 256
#define SESSION_MAX_LISTENERS 8
/* Fills handed to the policies per decision: a day of active trading fits,
 * and each policy's state has a 4 MiB memory cap. */
#define SESSION_MAX_FILLS 1000
/* Submissions remembered for the rate and duplicate windows: enough for
 * the hourly limit at its largest sensible setting; older ones are
 * counted conservatively (see session_recent_count). */
#define SESSION_RECENT 4096
#define SESSION_KILL_REASON_MAX 1400

struct im_session {
    const im_config *cfg;
    im_broker *broker;
    im_clock *clock;
    im_tokens *tokens;
    im_policies *policies;
    char account_id[IM_ACCOUNT_MAX];
    char day[16];               /* New York trading date of the counters */
    int orders_today;
    double notional_today;      /* submitted today, at the price checked */
    int pnl_baseline_valid;     /* realized + unrealized at the day's first snapshot */
    double pnl_baseline;
    int consecutive_rejects;    /* rejections at place in a row */
    /* Recent submissions (ring): the rate windows and the duplicate check. */
    struct { double at; im_order order; } recent[SESSION_RECENT];
    size_t nrecent, recent_head;
    int halted;
    char halt_reason[2048];     /* the agent may give 500 characters (UTF-8) */
    /* Latest state of every order this session placed (ring). */
    im_order_info orders[SESSION_MAX_ORDERS];
    size_t norders, orders_head;
    /* Orders sent but not yet acknowledged by the broker. */
    im_order inflight[SESSION_MAX_INFLIGHT];
    int inflight_used[SESSION_MAX_INFLIGHT];
    struct sess_req *active_places;   /* place requests in progress */
    struct { im_session_listener fn; void *ud; } listeners[SESSION_MAX_LISTENERS];
    im_journal *journal;        /* may be NULL */
    unsigned long halts_seen;   /* journal halt records already acted on */
    char *kill_reason;          /* heap: why a KILL file halts (im_session_halted) */
    int recon_state;            /* journal refs vs the broker: 0 to do, 1 running, 2 done */
    struct sess_req *confirming;/* place requests waiting for a human's answer */
    int closing;                /* im_session_exit ran: nothing more is sent or asked */
};

enum { REQ_PREVIEW = 1, REQ_PLACE };

/* A place_order call that presented a token whose own placement is still
 * in flight: it is answered, naming the order, when that one completes. */
typedef struct place_waiter {
    im_place_cb cb;
    void *ud;
    struct place_waiter *next;
} place_waiter;

typedef struct sess_req {
    im_session *s;
    int kind;
    im_order order;
    int have_quote;
    im_quote quote;
    double position_qty, position_avg_cost;
    double gross_position_value;
    double working_buy, working_sell;
    int open_total, open_symbol;
    int have_account;
    im_account account;
    im_execution *fills;          /* today's executions (newest SESSION_MAX_FILLS), heap */
    size_t nfills;
    im_order_info *open_orders;   /* heap copy of the working orders, for policies */
    size_t nopen;
    im_token_entry *entry;   /* place: the redeemed token */
    int inflight_slot;
    im_preview_cb preview_cb;
    im_place_cb place_cb;
    void *ud;
    place_waiter *waiters;   /* place: replays waiting for this outcome */
    struct sess_req *next_active;
    /* Human confirmation (place). */
    int approvals;           /* policies that asked for a human's approval */
    int confirmed;           /* a human accepted this order */
    im_confirmer confirmer;  /* how to ask; ask == NULL: nobody can be asked */
    char confirm_id[IM_CONFIRM_ID_LEN + 1];  /* "" unless waiting for an answer */
    double confirm_deadline; /* clock time the answer is due */
    int caller_gone;         /* the tool call was cancelled: never ask for it */
    struct sess_req *next_confirm;
} sess_req;

static void confirm_resolve(sess_req *r, im_confirm_answer a);

static void req_free(sess_req *r) {
    free(r->fills);
    free(r->open_orders);
    free(r);
}

/* ---- small state ---- */

static void session_halt_as(im_session *s, const char *reason, int journal_it);
static int session_journal(im_session *s, const char *kind, cJSON *fields);

/* With a journal: reads what any process appended since the last look and
 * takes today's counters from it; a halt another server journaled halts
 * this one too (a resume does not: that is read only at start-up). */
static void session_sync(im_session *s) {
    const im_journal_state *st;
    double now = im_clock_now(s->clock);
    if (im_journal_refresh(s->journal, now) != 0) {
        char why[1600];
        snprintf(why, sizeof why, "%s; trading is halted (fail closed)",
                 im_journal_error(s->journal));
        session_halt_as(s, why, 0);
    }
    st = im_journal_state_get(s->journal);
    if (strcmp(st->day, s->day) != 0) {
        if (s->day[0])
            im_info("new trading day %s: daily counters now come from its journal", st->day);
        snprintf(s->day, sizeof s->day, "%s", st->day);
        s->pnl_baseline_valid = 0;
        if (s->halted) {
            /* The new day's file must say so too, or a restart today
             * would not be halted. */
            cJSON *f = cJSON_CreateObject();
            cJSON_AddStringToObject(f, "reason", s->halt_reason);
            cJSON_AddBoolToObject(f, "carried_over", 1);
            session_journal(s, "halt", f);
        }
    }
    s->orders_today = st->orders;
    s->notional_today = st->notional;
    if (st->halts > s->halts_seen) {
        s->halts_seen = st->halts;
        if (st->halted && !s->halted)
            session_halt_as(s, st->halt_reason, 0);
    }
}

static void session_roll_day(im_session *s) {
    char day[16];
    if (s->journal != NULL) {
        session_sync(s);
        return;
    }
    if (im_clock_ny_date(im_clock_now(s->clock), day, sizeof day) != 0)
        return;
    if (strcmp(day, s->day) != 0) {
        if (s->day[0])
            im_info("new trading day %s: daily counters reset", day);
        snprintf(s->day, sizeof s->day, "%s", day);
        s->orders_today = 0;
        s->notional_today = 0;
        s->pnl_baseline_valid = 0;
    }
}

static im_order_info *session_find_order(im_session *s, const char *id) {
    for (size_t i = 0; i < s->norders; i++)
        if (strcmp(s->orders[i].order_id, id) == 0)
            return &s->orders[i];
    return NULL;
}

static void session_record_order(im_session *s, const im_order_info *o) {
    im_order_info *slot = session_find_order(s, o->order_id);
    if (slot == NULL) {
        if (s->norders < SESSION_MAX_ORDERS) {
            slot = &s->orders[s->norders++];
        } else {
            slot = &s->orders[s->orders_head];
            s->orders_head = (s->orders_head + 1) % SESSION_MAX_ORDERS;
        }
    }
    *slot = *o;
}

int im_session_add_listener(im_session *s, im_session_listener fn, void *ud) {
    for (size_t i = 0; i < SESSION_MAX_LISTENERS; i++) {
        if (s->listeners[i].fn == NULL) {
            s->listeners[i].fn = fn;
            s->listeners[i].ud = ud;
            return 0;
        }
    }
    return IM_EBUSY;
}

void im_session_remove_listener(im_session *s, im_session_listener fn, void *ud) {
    for (size_t i = 0; i < SESSION_MAX_LISTENERS; i++)
        if (s->listeners[i].fn == fn && s->listeners[i].ud == ud)
            s->listeners[i].fn = NULL;
}

static void session_emit(im_session *s, const im_session_event *ev) {
    for (size_t i = 0; i < SESSION_MAX_LISTENERS; i++)
        if (s->listeners[i].fn != NULL)
            s->listeners[i].fn(s->listeners[i].ud, ev);
}

/* ---- the journal ---- */

static void json_order(cJSON *f, const im_order *o) {
    cJSON *j = cJSON_AddObjectToObject(f, "order");
    if (j == NULL)
        return;
    cJSON_AddStringToObject(j, "symbol", o->symbol);
    cJSON_AddStringToObject(j, "side", im_side_str(o->side));
    cJSON_AddNumberToObject(j, "quantity", o->quantity);
    cJSON_AddStringToObject(j, "type", im_order_type_str(o->type));
    if (o->type == IM_OT_LMT || o->type == IM_OT_STP_LMT)
        cJSON_AddNumberToObject(j, "limit_price", o->limit_price);
    if (o->type == IM_OT_STP || o->type == IM_OT_STP_LMT)
        cJSON_AddNumberToObject(j, "stop_price", o->stop_price);
    cJSON_AddStringToObject(j, "tif", im_tif_str(o->tif));
    if (o->order_ref[0])
        cJSON_AddStringToObject(j, "order_ref", o->order_ref);
}

static void json_order_info(cJSON *f, const im_order_info *o) {
    cJSON_AddStringToObject(f, "order_id", o->order_id);
    if (o->order.order_ref[0])
        cJSON_AddStringToObject(f, "order_ref", o->order.order_ref);
    cJSON_AddStringToObject(f, "status", im_order_status_str(o->status));
    cJSON_AddNumberToObject(f, "filled", o->filled);
    cJSON_AddNumberToObject(f, "remaining", o->remaining);
    if (o->filled > 0)
        cJSON_AddNumberToObject(f, "avg_fill_price", o->avg_fill_price);
    if (o->message[0])
        cJSON_AddStringToObject(f, "message", o->message);
    json_order(f, &o->order);
}

/* Which policies decided, and the hash of the set (none loaded: nothing). */
static void json_policy_set(cJSON *f, im_policies *p) {
    cJSON *names;
    if (p == NULL)
        return;
    cJSON_AddStringToObject(f, "policies_hash", im_policies_hash(p));
    names = cJSON_AddArrayToObject(f, "policies");
    for (size_t i = 0; names != NULL && i < im_policies_count(p); i++)
        cJSON_AddItemToArray(names, cJSON_CreateString(im_policies_name(p, i)));
}

static void json_risk(cJSON *f, const im_risk_result *r) {
    cJSON *reasons, *codes;
    cJSON_AddStringToObject(f, "decision", r->approved ? "approved" : "rejected");
    cJSON_AddNumberToObject(f, "reference_price", r->reference_price);
    cJSON_AddNumberToObject(f, "notional", r->notional);
    reasons = cJSON_AddArrayToObject(f, "reasons");
    codes = cJSON_AddArrayToObject(f, "codes");
    for (size_t i = 0; i < r->nreasons && reasons && codes; i++) {
        cJSON_AddItemToArray(reasons, cJSON_CreateString(r->reasons[i].text));
        cJSON_AddItemToArray(codes, cJSON_CreateString(r->reasons[i].code));
    }
}

/* Appends a record (taking ownership of fields). Without a journal it does
 * nothing. A failed write halts trading with a reason naming the journal
 * and returns the error. */
static int session_journal(im_session *s, const char *kind, cJSON *fields) {
    int rc;
    if (s->journal == NULL) {
        cJSON_Delete(fields);
        return 0;
    }
    rc = im_journal_append(s->journal, im_clock_now(s->clock), kind, fields);
    if (rc != 0) {
        char why[1600];
        snprintf(why, sizeof why, "%s; trading is halted (fail closed)",
                 im_journal_error(s->journal));
        session_halt_as(s, why, 0);
    }
    return rc;
}

/* Engages the kill switch for reason; with journal_it, journals it. A
 * journal failure replaces the reason even when already halted: it is the
 * one the operator must act on. */
/* IBKR_HALT_CANCELS: a halt also cancels the working orders placed through
 * ibkr-mcp (orderRef "im-..."), by this process or another one; orders a
 * human placed by hand are left alone. */
static void halt_cancel_cb(void *ud, int status, const char *msg, const im_order_info *o) {
    IM_UNUSED(ud);
    if (status == 0)
        im_info("halt: order %s cancelled", o ? o->order_id : "?");
    else if (status != IM_ECANCELED)
        im_warn("halt: a cancel failed: %s", msg ? msg : im_strerror(status));
}

static void halt_orders_cb(void *ud, int status, const char *msg, const im_order_info *o,
                           size_t n) {
    im_session *s = ud;
    cJSON *f, *arr;
    if (status != 0) {
        if (status != IM_ECANCELED)
            im_warn("halt: working orders could not be listed, none was cancelled: %s",
                    msg ? msg : im_strerror(status));
        return;
    }
    f = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(f, "cancel_requested");
    for (size_t i = 0; i < n; i++) {
        if (im_order_status_terminal(o[i].status) || strncmp(o[i].order.order_ref, "im-", 3) != 0)
            continue;
        if (s->broker->ops->cancel(s->broker, o[i].order_id, halt_cancel_cb, NULL) == 0 && arr) {
            cJSON *it = cJSON_CreateObject();
            cJSON_AddStringToObject(it, "order_id", o[i].order_id);
            cJSON_AddStringToObject(it, "order_ref", o[i].order.order_ref);
            cJSON_AddItemToArray(arr, it);
        }
    }
    im_info("halt: cancel requested for %d working orders", cJSON_GetArraySize(arr));
    session_journal(s, "halt_cancel", f);
}

static void session_halt_as(im_session *s, const char *reason, int journal_it) {
    int was = s->halted;
    if (!was || !journal_it)
        im_warn("trading halted: %s", reason && *reason ? reason : "no reason given");
    s->halted = 1;
    /* Whole characters only: the reason goes out in get_status as JSON. */
    im_text_copy(s->halt_reason, sizeof s->halt_reason,
                 reason && *reason ? reason : "halted by the agent");
    if (was)
        return;
    if (journal_it) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "reason", s->halt_reason);
        cJSON_AddBoolToObject(f, "cancels_working_orders", s->cfg->halt_cancels);
        if (session_journal(s, "halt", f) == 0 && s->journal != NULL)
            s->halts_seen = im_journal_state_get(s->journal)->halts;
        if (s->cfg->halt_cancels &&
            s->broker->ops->open_orders(s->broker, halt_orders_cb, s) != 0)
            im_warn("halt: working orders could not be listed, none was cancelled");
    }
    {
        im_session_event se;
        memset(&se, 0, sizeof se);
        se.kind = IM_SEV_HALT;
        se.message = s->halt_reason;
        session_emit(s, &se);
    }
}

/* ---- settling orders a previous process sent without an answer ---------- */

/* Orders the journal says were sent before this start with no broker
 * answer recorded are looked up by orderRef among the broker's open orders
 * and today's executions once it is connected, and the outcome journalled
 * ("reconciled"), so a crash between send and acknowledgement leaves
 * neither a forgotten order nor a second one. */
typedef struct sess_recon {
    im_session *s;
    im_order_info *orders;
    size_t norders;
} sess_recon;

static void recon_execs_cb(void *ud, int status, const char *msg, const im_execution *e,
                           size_t n) {
    sess_recon *rc = ud;
    im_session *s = rc->s;
    size_t nrefs;
    if (status != 0) {
        im_warn("reconciliation: executions unavailable (%s); retried at the next connection",
                msg ? msg : im_strerror(status));
        s->recon_state = 0;
        goto out;
    }
    {
        const char(*refs)[IM_ORDER_REF_MAX] = im_journal_unacked(s->journal, &nrefs);
        /* Copy: journalling a "reconciled" record edits the list. */
        char(*mine)[IM_ORDER_REF_MAX] = nrefs ? malloc(nrefs * sizeof *mine) : NULL;
        if (nrefs && mine == NULL) {
            s->recon_state = 0;
            goto out;
        }
        if (nrefs)
            memcpy(mine, refs, nrefs * sizeof *mine);
        for (size_t i = 0; i < nrefs; i++) {
            const im_order_info *o = NULL;
            double filled = 0;
            const char *oid = NULL;
            cJSON *f = cJSON_CreateObject();
            for (size_t k = 0; k < rc->norders && o == NULL; k++)
                if (strcmp(rc->orders[k].order.order_ref, mine[i]) == 0)
                    o = &rc->orders[k];
            for (size_t k = 0; k < n; k++) {
                if (strcmp(e[k].order_ref, mine[i]) == 0) {
                    filled += e[k].shares;
                    oid = e[k].order_id;
                }
            }
            cJSON_AddStringToObject(f, "order_ref", mine[i]);
            cJSON_AddBoolToObject(f, "found", o != NULL || oid != NULL);
            if (o != NULL) {
                cJSON_AddStringToObject(f, "order_id", o->order_id);
                cJSON_AddStringToObject(f, "status", im_order_status_str(o->status));
                session_record_order(s, o);
            } else if (oid != NULL) {
                cJSON_AddStringToObject(f, "order_id", oid);
                cJSON_AddStringToObject(f, "status", "FILLED");
            }
            cJSON_AddNumberToObject(f, "filled", filled);
            if (o != NULL || oid != NULL)
                im_info("reconciliation: order ref %s, sent before this start, is order %s at "
                        "the broker (%s); it was not resent",
                        mine[i], o ? o->order_id : oid, o ? im_order_status_str(o->status) : "FILLED");
            else
                im_warn("reconciliation: order ref %s, sent before this start, is not at the "
                        "broker (no open order, no execution today): it was not placed, and is "
                        "not resent",
                        mine[i]);
            session_journal(s, "reconciled", f);
        }
        free(mine);
    }
    s->recon_state = 2;
out:
    free(rc->orders);
    free(rc);
}

static void recon_orders_cb(void *ud, int status, const char *msg, const im_order_info *o,
                            size_t n) {
    sess_recon *rc = ud;
    im_session *s = rc->s;
    if (status != 0) {
        im_warn("reconciliation: open orders unavailable (%s); retried at the next connection",
                msg ? msg : im_strerror(status));
        s->recon_state = 0;
        free(rc);
        return;
    }
    if (n > 0) {
        rc->orders = malloc(n * sizeof *rc->orders);
        if (rc->orders != NULL) {
            memcpy(rc->orders, o, n * sizeof *rc->orders);
            rc->norders = n;
        }
    }
    if (s->broker->ops->executions(s->broker, recon_execs_cb, rc) != 0) {
        s->recon_state = 0;
        free(rc->orders);
        free(rc);
    }
}

static void session_reconcile(im_session *s) {
    size_t n;
    sess_recon *rc;
    if (s->journal == NULL || s->recon_state != 0)
        return;
    im_journal_unacked(s->journal, &n);
    if (n == 0) {
        s->recon_state = 2;
        return;
    }
    rc = calloc(1, sizeof *rc);
    if (rc == NULL)
        return;
    rc->s = s;
    s->recon_state = 1;
    if (s->broker->ops->open_orders(s->broker, recon_orders_cb, rc) != 0) {
        s->recon_state = 0;
        free(rc);
    }
}

static void session_event_cb(void *ud, const im_broker_event *ev) {
    im_session *s = ud;
    im_session_event se;
    memset(&se, 0, sizeof se);
    if ((ev->kind == IM_BEV_ORDER || ev->kind == IM_BEV_FILL) && ev->order != NULL &&
        session_find_order(s, ev->order->order_id) != NULL) {
        cJSON *f = cJSON_CreateObject();
        const char *kind = ev->kind == IM_BEV_FILL                ? "fill"
                           : ev->order->status == IM_OS_CANCELLED ? "cancel"
                                                                  : "order_status";
        session_record_order(s, ev->order);
        json_order_info(f, ev->order);
        if (ev->kind == IM_BEV_FILL && ev->exec != NULL) {
            cJSON *x = cJSON_AddObjectToObject(f, "execution");
            if (x != NULL) {
                cJSON_AddStringToObject(x, "exec_id", ev->exec->exec_id);
                cJSON_AddNumberToObject(x, "shares", ev->exec->shares);
                cJSON_AddNumberToObject(x, "price", ev->exec->price);
                cJSON_AddNumberToObject(x, "commission", ev->exec->commission);
            }
        }
        session_journal(s, kind, f);
        se.kind = ev->kind == IM_BEV_FILL ? IM_SEV_FILL : IM_SEV_ORDER;
        se.order_info = ev->order;
        se.exec = ev->exec;
        session_emit(s, &se);
    }
    if (ev->kind == IM_BEV_CONNECTION) {
        im_info("broker %s%s%s", ev->connected ? "connected" : "disconnected",
                ev->message ? ": " : "", ev->message ? ev->message : "");
        {
            cJSON *f = cJSON_CreateObject();
            cJSON_AddBoolToObject(f, "connected", ev->connected);
            if (ev->message)
                cJSON_AddStringToObject(f, "message", ev->message);
            session_journal(s, "connection", f);
        }
        se.kind = IM_SEV_CONNECTION;
        se.connected = ev->connected;
        se.message = ev->message;
        session_emit(s, &se);
        if (ev->connected)
            session_reconcile(s);
    }
}

int im_session_new(const im_session_opts *o, im_session **out) {
    im_session *s;
    if (o == NULL || o->config == NULL || o->broker == NULL || o->clock == NULL)
        return IM_EINVAL;
    if (sodium_init() < 0)
        return IM_EIO;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return IM_ENOMEM;
    s->kill_reason = calloc(1, SESSION_KILL_REASON_MAX);
    if (s->kill_reason == NULL || im_tokens_new(&s->tokens) != 0) {
        free(s->kill_reason);
        free(s);
        return IM_ENOMEM;
    }
    s->cfg = o->config;
    s->broker = o->broker;
    s->clock = o->clock;
    s->policies = o->policies;
    snprintf(s->account_id, sizeof s->account_id, "%s", o->account_id ? o->account_id : "");
    s->broker->on_event = session_event_cb;
    s->broker->event_ud = s;
    s->journal = o->journal;
    if (s->journal != NULL) {
        const im_journal_state *st = im_journal_state_get(s->journal);
        cJSON *f;
        if (im_journal_error(s->journal) != NULL) {
            char why[1600];
            snprintf(why, sizeof why, "%s; trading is halted (fail closed)",
                     im_journal_error(s->journal));
            session_halt_as(s, why, 0);
        } else if (st->halted) {
            /* The kill switch outlives the process. */
            s->halts_seen = st->halts;
            session_halt_as(s, st->halt_reason, 0);
            if (st->halt_carried) {
                f = cJSON_CreateObject();
                cJSON_AddStringToObject(f, "reason", s->halt_reason);
                cJSON_AddBoolToObject(f, "carried_over", 1);
                session_journal(s, "halt", f);
            }
        }
        s->halts_seen = st->halts;
        /* A restart does not reset the consecutive-reject breaker. */
        s->consecutive_rejects = st->consecutive_rejects;
        f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "backend", s->cfg->backend);
        cJSON_AddStringToObject(f, "account", s->account_id);
        cJSON_AddBoolToObject(f, "trading_enabled", s->cfg->trading_enabled);
        json_policy_set(f, s->policies);
        cJSON_AddNumberToObject(f, "orders_today", st->orders);
        cJSON_AddNumberToObject(f, "notional_today", st->notional);
        cJSON_AddBoolToObject(f, "halted", s->halted);
        {
            /* Orders sent before a crash with no answer recorded: say so;
             * they are never resent, and a connecting broker settles them
             * by orderRef (session_reconcile). */
            size_t n;
            const char(*refs)[IM_ORDER_REF_MAX] = im_journal_unacked(s->journal, &n);
            cJSON *arr = cJSON_AddArrayToObject(f, "unacknowledged_order_refs");
            for (size_t i = 0; i < n && arr != NULL; i++) {
                cJSON_AddItemToArray(arr, cJSON_CreateString(refs[i]));
                im_warn("journal: order %s was sent before this start but no broker answer "
                        "was recorded; it is not resent, and is looked up by its orderRef once "
                        "the broker connects",
                        refs[i]);
            }
        }
        session_journal(s, "startup", f);
        if (st->orders > 0)
            im_info("journal %s: %d orders ($%.2f) already sent today", im_journal_path(s->journal),
                    st->orders, st->notional);
    }
    session_roll_day(s);
    *out = s;
    return 0;
}

void im_session_free(im_session *s) {
    if (s == NULL)
        return;
    if (s->broker->event_ud == s) {
        s->broker->on_event = NULL;
        s->broker->event_ud = NULL;
    }
    /* Orders still waiting for a human's answer: never sent, nobody left
     * to tell (the protocol layer is gone). */
    while (s->confirming != NULL) {
        sess_req *r = s->confirming;
        s->confirming = r->next_confirm;
        while (r->waiters != NULL) {
            place_waiter *w = r->waiters;
            r->waiters = w->next;
            free(w);
        }
        im_info("exit: order %s %.0f %s was waiting for a human's confirmation; not placed",
                im_side_str(r->order.side), r->order.quantity, r->order.symbol);
        req_free(r);
    }
    im_tokens_free(s->tokens);
    free(s->kill_reason);
    free(s);
}

static void exit_cancel_cb(void *ud, int status, const char *msg, const im_order_info *o) {
    (void)ud;
    (void)o;
    if (status != 0 && status != IM_ECANCELED)
        im_warn("cancel on exit: %s", msg ? msg : im_strerror(status));
}

void im_session_exit(im_session *s) {
    cJSON *f, *left, *cancelled;
    int cancel;
    if (s == NULL)
        return;
    /* From here nothing new is sent or asked; questions still open are
     * answered "cancel" now, while their callers can still hear it. */
    s->closing = 1;
    while (s->confirming != NULL)
        confirm_resolve(s->confirming, IM_CONFIRM_CANCEL);
    cancel = s->cfg->cancel_on_exit;
    f = cJSON_CreateObject();
    cJSON_AddBoolToObject(f, "cancel_on_exit", cancel);
    left = cJSON_AddArrayToObject(f, "working_orders_left");
    cancelled = cJSON_AddArrayToObject(f, "cancel_requested");
    for (size_t i = 0; i < s->norders && left != NULL && cancelled != NULL; i++) {
        const im_order_info *o = &s->orders[i];
        int asked = 0;
        if (im_order_status_terminal(o->status))
            continue;
        /* IBKR_CANCEL_ON_EXIT: ask the broker to cancel; otherwise the
         * order stays working at the broker after this process ends. */
        if (cancel)
            asked = s->broker->ops->cancel(s->broker, o->order_id, exit_cancel_cb, NULL) == 0;
        cJSON *it = cJSON_CreateObject();
        cJSON_AddStringToObject(it, "order_id", o->order_id);
        cJSON_AddStringToObject(it, "order_ref", o->order.order_ref);
        cJSON_AddStringToObject(it, "status", im_order_status_str(o->status));
        cJSON_AddItemToArray(asked ? cancelled : left, it);
    }
    if (cJSON_GetArraySize(left) > 0)
        im_info("exit: %d working orders stay at the broker%s", cJSON_GetArraySize(left),
                cancel ? " (their cancel could not be requested)" : " (IBKR_CANCEL_ON_EXIT=false)");
    cJSON_AddNumberToObject(f, "orders_today", s->orders_today);
    session_journal(s, "exit", f);
}

im_journal *im_session_journal(const im_session *s) { return s->journal; }

const im_config *im_session_config(const im_session *s) { return s->cfg; }
im_broker *im_session_broker(const im_session *s) { return s->broker; }
im_tokens *im_session_tokens(const im_session *s) { return s->tokens; }
double im_session_now(const im_session *s) { return im_clock_now(s->clock); }
const char *im_session_account_id(const im_session *s) {
    im_broker_info bi;
    /* A TWS backend learns its account at connection time. */
    if (s->broker->ops->info != NULL) {
        s->broker->ops->info(s->broker, &bi);
        if (bi.account_id != NULL && bi.account_id[0] != '\0')
            return bi.account_id;
    }
    return s->account_id;
}

void im_session_journal_failed(im_session *s) {
    char why[1600];
    if (s == NULL || s->journal == NULL || im_journal_error(s->journal) == NULL)
        return;
    snprintf(why, sizeof why, "%s; trading is halted (fail closed)", im_journal_error(s->journal));
    session_halt_as(s, why, 0);
}

void im_session_set_policies(im_session *s, im_policies *p) {
    /* Policies run synchronously inside one decision, never across a
     * yield, so between two calls nothing holds the old set. */
    s->policies = p;
}

int im_session_record(im_session *s, const char *kind, cJSON *fields) {
    return session_journal(s, kind, fields);
}

const char *im_session_live_block(const im_session *s) {
    const char *acct = im_session_account_id(s);
    if (s->cfg->allow_live_account || im_account_is_paper(acct))
        return NULL;
    return acct[0] ? "live account: set IBKR_ALLOW_LIVE_ACCOUNT=true to trade it"
                   : "account not known yet (not connected)";
}
im_policies *im_session_policies(const im_session *s) { return s->policies; }
int im_session_trading_enabled(const im_session *s) { return s->cfg->trading_enabled; }

int im_session_orders_today(im_session *s) {
    session_roll_day(s);
    return s->orders_today;
}

double im_session_notional_today(im_session *s) {
    session_roll_day(s);
    return s->notional_today;
}

/* 1 when a KILL file exists; its sentence goes to s->kill_reason. */
static int session_killed(const im_session *s) {
    char path[1100];
    if (s->journal == NULL || !im_journal_kill_file(s->journal, path, sizeof path))
        return 0;
    snprintf(s->kill_reason, SESSION_KILL_REASON_MAX,
             "the KILL file %s exists; an operator must remove it by hand", path);
    return 1;
}

int im_session_halted(const im_session *s, const char **reason) {
    if (reason)
        *reason = s->halt_reason;
    if (s->halted)
        return 1;
    if (session_killed(s)) {
        if (reason)
            *reason = s->kill_reason;
        return 1;
    }
    return 0;
}

void im_session_halt(im_session *s, const char *reason) {
    session_halt_as(s, reason, 1);
}

void im_session_resume(im_session *s, const char *reason) {
    im_session_event se;
    if (!s->halted)
        return;
    {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "reason",
                                reason && *reason ? reason : "resumed by the operator");
        /* Fail closed: a resume that cannot be journaled does not happen
         * (the failure has already replaced the halt reason). */
        if (session_journal(s, "resume", f) != 0)
            return;
    }
    im_warn("trading resumed by the operator: %s", reason && *reason ? reason : "no reason given");
    s->halted = 0;
    s->halt_reason[0] = '\0';
    s->consecutive_rejects = 0;
    memset(&se, 0, sizeof se);
    se.kind = IM_SEV_RESUME;
    se.message = reason && *reason ? reason : "resumed by the operator";
    session_emit(s, &se);
}

/* ---- reads ---- */

int im_session_quote(im_session *s, const char *symbol, im_quote_cb cb, void *ud) {
    return s->broker->ops->quote(s->broker, symbol, cb, ud);
}
int im_session_account(im_session *s, im_account_cb cb, void *ud) {
    return s->broker->ops->account(s->broker, cb, ud);
}
int im_session_positions(im_session *s, im_positions_cb cb, void *ud) {
    return s->broker->ops->positions(s->broker, cb, ud);
}
int im_session_open_orders(im_session *s, im_orders_cb cb, void *ud) {
    return s->broker->ops->open_orders(s->broker, cb, ud);
}
int im_session_executions(im_session *s, im_execs_cb cb, void *ud) {
    return s->broker->ops->executions(s->broker, cb, ud);
}
int im_session_cancel(im_session *s, const char *order_id, im_order_cb cb, void *ud) {
    return s->broker->ops->cancel(s->broker, order_id, cb, ud);
}

/* ---- the order flow ---- */

static void req_fail(sess_req *r, int status, const char *msg);
static void req_decide(sess_req *r);

/* Today's executions, for the policies (ctx.today.fills): those of the
 * current New York trading day, the newest SESSION_MAX_FILLS of them. */
static void req_execs_cb(void *ud, int status, const char *msg, const im_execution *e, size_t n) {
    sess_req *r = ud;
    char today[16], day[16];
    size_t first = 0, keep = 0;
    if (status == IM_ECANCELED) {
        req_fail(r, status, msg);
        return;
    }
    if (status != 0 || im_clock_ny_date(im_clock_now(r->s->clock), today, sizeof today) != 0) {
        im_warn("no executions for the risk snapshot: %s", msg ? msg : im_strerror(status));
        req_decide(r);
        return;
    }
    /* Oldest first: find where today starts. */
    while (first < n && (im_clock_ny_date(e[first].time, day, sizeof day) != 0 ||
                         strcmp(day, today) != 0))
        first++;
    keep = n - first;
    if (keep > SESSION_MAX_FILLS) {
        first = n - SESSION_MAX_FILLS;
        keep = SESSION_MAX_FILLS;
    }
    if (keep > 0 && (r->fills = malloc(keep * sizeof *e)) != NULL) {
        memcpy(r->fills, e + first, keep * sizeof *e);
        r->nfills = keep;
    }
    req_decide(r);
}

static void req_account_cb(void *ud, int status, const char *msg, const im_account *a) {
    sess_req *r = ud;
    if (status == IM_ECANCELED) {
        req_fail(r, status, msg);
        return;
    }
    if (status == 0 && a != NULL) {
        r->have_account = 1;
        r->account = *a;
    } else {
        im_warn("no account summary for the risk snapshot: %s", msg ? msg : im_strerror(status));
    }
    /* Fills matter only to policies; skip the read when there are none. */
    if (r->s->policies != NULL && im_policies_count(r->s->policies) > 0 &&
        im_session_executions(r->s, req_execs_cb, r) == 0)
        return;
    req_decide(r);
}

static void req_open_orders_cb(void *ud, int status, const char *msg, const im_order_info *o,
                               size_t n) {
    sess_req *r = ud;
    if (status != 0) {
        req_fail(r, status, msg ? msg : "could not read open orders");
        return;
    }
    r->working_buy = r->working_sell = 0;
    free(r->open_orders);
    r->open_orders = NULL;
    r->nopen = 0;
    if (n > 0 && (r->open_orders = malloc(n * sizeof *o)) != NULL) {
        memcpy(r->open_orders, o, n * sizeof *o);
        r->nopen = n;
    }
    r->open_total = r->open_symbol = 0;
    for (size_t i = 0; i < n; i++) {
        if (im_order_status_terminal(o[i].status))
            continue;
        r->open_total++;
        if (strcmp(o[i].order.symbol, r->order.symbol) != 0)
            continue;
        r->open_symbol++;
        double rem = o[i].remaining;
        if (!isfinite(rem) || rem < 0)
            rem = o[i].order.quantity;  /* fail closed: count it whole */
        if (o[i].order.side == IM_SIDE_BUY)
            r->working_buy += rem;
        else
            r->working_sell += rem;
    }
    /* Orders sent but not yet acknowledged are working too. */
    for (size_t i = 0; i < SESSION_MAX_INFLIGHT; i++) {
        const im_order *f = &r->s->inflight[i];
        if (!r->s->inflight_used[i])
            continue;
        r->open_total++;
        if (strcmp(f->symbol, r->order.symbol) != 0)
            continue;
        r->open_symbol++;
        if (f->side == IM_SIDE_BUY)
            r->working_buy += f->quantity;
        else
            r->working_sell += f->quantity;
    }
    if (im_session_account(r->s, req_account_cb, r) != 0) {
        /* Without account figures the account-based checks fail closed;
         * the order-based ones still decide. */
        req_decide(r);
    }
}

static void req_positions_cb(void *ud, int status, const char *msg, const im_position *p,
                             size_t n) {
    sess_req *r = ud;
    int rc;
    if (status != 0) {
        req_fail(r, status, msg ? msg : "could not read positions");
        return;
    }
    r->position_qty = 0;
    r->gross_position_value = 0;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(p[i].market_value))
            r->gross_position_value += fabs(p[i].market_value);
        else
            r->gross_position_value = NAN;   /* fail closed downstream */
        if (strcmp(p[i].symbol, r->order.symbol) == 0) {
            r->position_qty = p[i].quantity;
            r->position_avg_cost = p[i].avg_cost;
        }
    }
    rc = im_session_open_orders(r->s, req_open_orders_cb, r);
    if (rc != 0)
        req_fail(r, rc, "could not read open orders");
}

static void req_quote_cb(void *ud, int status, const char *msg, const im_quote *q) {
    sess_req *r = ud;
    int rc;
    /* A cancelled read means the broker is closing: no decision is made
     * on what is missing. */
    if (status == IM_ESYMBOL || status == IM_ECANCELED) {
        req_fail(r, status, msg);
        return;
    }
    /* Any other failure leaves have_quote 0: the risk checks then reject
     * the order (fail closed) with RISK_NO_QUOTE. */
    if (status == 0 && q != NULL) {
        r->have_quote = 1;
        r->quote = *q;
    } else {
        im_warn("no quote for %s: %s", r->order.symbol, msg ? msg : im_strerror(status));
    }
    rc = im_session_positions(r->s, req_positions_cb, r);
    if (rc != 0)
        req_fail(r, rc, "could not read positions");
}

static int req_start(sess_req *r) {
    return im_session_quote(r->s, r->order.symbol, req_quote_cb, r);
}

static void place_result_init(im_place_result *res, int status) {
    memset(res, 0, sizeof *res);
    res->status = status;
}

/* Answers the place request r with res, then every replay of its token
 * that arrived meanwhile (naming the order, or saying nothing was sent),
 * and frees r. */
static void place_finish(sess_req *r, const im_place_result *res) {
    im_session *s = r->s;
    place_waiter *w = r->waiters;
    im_place_result used;

    for (sess_req **pp = &s->active_places; *pp; pp = &(*pp)->next_active) {
        if (*pp == r) {
            *pp = r->next_active;
            break;
        }
    }
    r->place_cb(r->ud, res);
    place_result_init(&used, IM_ETOKEN_USED);
    if (res->status == 0 && res->have_order) {
        used.order = res->order;
        used.have_order = 1;
        snprintf(used.message, sizeof used.message,
                 "Unknown or already-used confirmation token. Call preview_order first. "
                 "This token already placed order %s (status %s); nothing new was sent.",
                 res->order.order_id, im_order_status_str(res->order.status));
    } else {
        snprintf(used.message, sizeof used.message,
                 "Unknown or already-used confirmation token. Call preview_order first. "
                 "This token was already redeemed and its order was not placed; nothing was sent.");
    }
    while (w != NULL) {
        place_waiter *next = w->next;
        w->cb(w->ud, &used);
        free(w);
        w = next;
    }
    req_free(r);
}

static void req_fail(sess_req *r, int status, const char *msg) {
    if (r->kind == REQ_PREVIEW) {
        r->preview_cb(r->ud, status, msg, NULL);
        req_free(r);
    } else {
        im_place_result res;
        place_result_init(&res, status);
        snprintf(res.message, sizeof res.message,
                 "Order not placed: %s. The confirmation token is spent; call preview_order again.",
                 msg ? msg : im_strerror(status));
        place_finish(r, &res);
    }
}

static void session_recent_add(im_session *s, const im_order *o, double now) {
    size_t slot;
    if (s->nrecent < SESSION_RECENT) {
        slot = (s->recent_head + s->nrecent++) % SESSION_RECENT;
    } else {
        slot = s->recent_head;
        s->recent_head = (s->recent_head + 1) % SESSION_RECENT;
    }
    s->recent[slot].at = now;
    s->recent[slot].order = *o;
}

/* Submissions within the last window seconds. When the ring is full and
 * its oldest entry is still inside the window, everything beyond the ring
 * is assumed inside it too (fail closed: the count can only be high). */
static int session_recent_count(const im_session *s, double now, double window) {
    int n = 0;
    if (s->journal != NULL) {
        /* Every order of every process on this state directory, across
         * restarts: the journal's order_sent records of today. (An order
         * sent just before New York midnight leaves the window early: the
         * day's file is the unit.) */
        size_t k;
        const im_journal_sent *e = im_journal_sent_list(s->journal, &k);
        for (size_t i = 0; i < k; i++)
            if (now - e[i].t < window)
                n++;
        return n;
    }
    for (size_t i = 0; i < s->nrecent; i++) {
        double at = s->recent[(s->recent_head + i) % SESSION_RECENT].at;
        if (now - at < window)
            n++;
    }
    if (s->nrecent == SESSION_RECENT && n == (int)SESSION_RECENT)
        n = s->orders_today > n ? s->orders_today : n;
    return n;
}

static int same_order(const im_order *a, const im_order *b) {
    return strcmp(a->symbol, b->symbol) == 0 && a->side == b->side &&
           a->quantity == b->quantity && a->type == b->type &&
           a->limit_price == b->limit_price && a->stop_price == b->stop_price;
}

/* Seconds since an identical order was submitted; -1 when none is known. */
static double session_same_order_age(const im_session *s, const im_order *o, double now) {
    double best = -1;
    if (s->journal != NULL) {
        size_t k;
        const im_journal_sent *e = im_journal_sent_list(s->journal, &k);
        for (size_t i = 0; i < k; i++) {
            if (same_order(&e[i].order, o)) {
                double age = now - e[i].t;
                if (age < 0)
                    age = 0;   /* a future time: as recent as can be */
                if (best < 0 || age < best)
                    best = age;
            }
        }
        return best;
    }
    for (size_t i = 0; i < s->nrecent; i++) {
        size_t k = (s->recent_head + i) % SESSION_RECENT;
        if (same_order(&s->recent[k].order, o)) {
            double age = now - s->recent[k].at;
            if (best < 0 || age < best)
                best = age;
        }
    }
    return best;
}

static void req_risk(sess_req *r, int stage, im_risk_result *risk) {
    im_session *s = r->s;
    im_risk_input in;
    memset(&in, 0, sizeof in);
    in.stage = stage;
    in.order = &r->order;
    in.quote = r->have_quote ? &r->quote : NULL;
    in.now = im_clock_now(s->clock);
    in.position_qty = r->position_qty;
    in.working_buy_qty = r->working_buy;
    in.working_sell_qty = r->working_sell;
    in.orders_today = im_session_orders_today(s);
    in.preview_ref_price = r->entry ? r->entry->reference_price : 0;
    in.halted = s->halted;
    in.halt_reason = s->halt_reason;
    if (!s->halted && session_killed(s)) {
        /* Checked on every decision; removing the file lifts it. */
        in.halted = 1;
        in.halt_reason = s->kill_reason;
    }
    in.account = r->have_account ? &r->account : NULL;
    in.gross_position_value = r->gross_position_value;
    in.open_orders_total = r->open_total;
    in.open_orders_symbol = r->open_symbol;
    in.notional_today = s->notional_today;
    in.orders_last_minute = session_recent_count(s, in.now, 60);
    in.orders_last_hour = session_recent_count(s, in.now, 3600);
    in.same_order_age = session_same_order_age(s, &r->order, in.now);
    in.pnl_today = NAN;
    if (r->have_account) {
        double pnl = r->account.realized_pnl + r->account.unrealized_pnl;
        if (!s->pnl_baseline_valid && isfinite(pnl)) {
            s->pnl_baseline = pnl;
            s->pnl_baseline_valid = 1;
        }
        if (s->pnl_baseline_valid)
            in.pnl_today = pnl - s->pnl_baseline;
    }
    in.consecutive_rejects = s->consecutive_rejects;
    im_risk_check(&s->cfg->limits, &in, risk);
    if (im_session_live_block(s) != NULL) {
        /* The live-account gate: paper accounts (DU, DF) only, unless the
         * operator opted in. Reads are never gated. */
        const char *acct = im_session_account_id(s);
        if (acct[0])
            im_risk_reject(risk, "RISK_LIVE_ACCOUNT",
                           "Account %s is a live (non-paper) account; this server trades it only "
                           "when the operator sets IBKR_ALLOW_LIVE_ACCOUNT=true. Paper account ids "
                           "start with DU or DF.",
                           acct);
        else
            im_risk_reject(risk, "RISK_LIVE_ACCOUNT",
                           "The account is not known yet (the broker is not connected), so it "
                           "cannot be confirmed to be a paper account.");
    }
    /* Policies see only well-formed orders: a malformed one is already
     * rejected, and its fields would only confuse them. */
    int malformed = 0;
    for (size_t i = 0; i < risk->nreasons; i++)
        malformed |= strcmp(risk->reasons[i].code, "RISK_INVALID_INPUT") == 0;
    if (!malformed && s->policies != NULL && im_policies_count(s->policies) > 0) {
        im_policy_input pi;
        double after = r->position_qty +
                       (r->order.side == IM_SIDE_BUY ? r->order.quantity : -r->order.quantity);
        int approvals = 0;
        memset(&pi, 0, sizeof pi);
        pi.order = &r->order;
        pi.stage = stage;
        pi.reference_price = risk->reference_price;
        pi.notional = risk->notional;
        pi.reduces_position = fabs(after) < fabs(r->position_qty);
        pi.quote = in.quote;
        pi.position_qty = r->position_qty;
        pi.position_avg_cost = r->position_avg_cost;
        pi.account = r->have_account ? &r->account : NULL;
        pi.open_orders = r->open_orders;
        pi.nopen = r->nopen;
        pi.orders_today = in.orders_today;
        pi.notional_today = s->notional_today;
        pi.realized_pnl_today = r->have_account ? r->account.realized_pnl : 0;
        pi.fills = r->fills;
        pi.nfills = r->nfills;
        pi.limits = &s->cfg->limits;
        pi.now = in.now;
        /* Policies only add reasons; a require_approval is a rejection
         * unless a human accepts this very order (place_decide asks). */
        im_policies_check(s->policies, &pi, risk, &approvals);
        r->approvals = approvals;
        if (r->confirmed && approvals > 0) {
            /* Granted: drop those reasons, keep every other. */
            size_t k = 0;
            for (size_t i = 0; i < risk->nreasons; i++)
                if (strcmp(risk->reasons[i].code, "POLICY_APPROVAL_REQUIRED") != 0)
                    risk->reasons[k++] = risk->reasons[i];
            risk->nreasons = k;
            risk->approved = k == 0;
        }
    }
}

static int confirm_needed(sess_req *r, const im_risk_result *risk, char *why, size_t n);

static void preview_decide(sess_req *r) {
    im_session *s = r->s;
    im_preview p;
    memset(&p, 0, sizeof p);
    p.order = r->order;
    p.have_quote = r->have_quote;
    if (r->have_quote)
        p.quote = r->quote;
    p.trading_enabled = s->cfg->trading_enabled;
    req_risk(r, IM_RISK_PREVIEW, &p.risk);
    if (confirm_needed(r, &p.risk, p.confirm_reason, sizeof p.confirm_reason)) {
        /* A question for a human at placement, not a rejection now. */
        size_t k = 0;
        for (size_t i = 0; i < p.risk.nreasons; i++)
            if (strcmp(p.risk.reasons[i].code, "POLICY_APPROVAL_REQUIRED") != 0)
                p.risk.reasons[k++] = p.risk.reasons[i];
        p.risk.nreasons = k;
        p.risk.approved = k == 0;
        p.confirm_required = 1;
    }
    if (p.risk.approved && p.trading_enabled) {
        im_token_entry *e;
        double now = im_clock_now(s->clock);
        int rc = im_tokens_issue(s->tokens, &r->order, p.risk.reference_price, p.risk.notional,
                                 now, s->cfg->token_ttl_s, &e);
        if (rc == 0) {
            memcpy(p.token, e->token, sizeof p.token);
            p.expires_in = s->cfg->token_ttl_s;
        } else {
            /* No token means nothing can be placed: say why instead. */
            im_risk_reject(&p.risk, "RISK_TOKEN_UNAVAILABLE",
                           rc == IM_EBUSY ? "Too many confirmation tokens are outstanding (%d); "
                                            "wait for some to expire."
                                          : "No confirmation token could be issued (%d).",
                           rc == IM_EBUSY ? IM_TOKENS_MAX_PENDING : rc);
        }
    }
    if (s->journal != NULL) {
        cJSON *f = cJSON_CreateObject();
        json_order(f, &r->order);
        json_risk(f, &p.risk);
        cJSON_AddBoolToObject(f, "trading_enabled", p.trading_enabled);
        json_policy_set(f, s->policies);
        if (p.token[0]) {
            char h[IM_JOURNAL_HASH_HEX];
            im_journal_token_hash(p.token, h);
            cJSON_AddStringToObject(f, "token_hash", h);
            cJSON_AddNumberToObject(f, "expires_in", p.expires_in);
        }
        if (session_journal(s, "preview", f) != 0) {
            /* Not on disk, so not given out: burn the token. */
            if (p.token[0]) {
                im_token_entry *e;
                im_tokens_redeem(s->tokens, p.token, im_clock_now(s->clock), &e);
                p.token[0] = '\0';
                p.expires_in = 0;
            }
            im_risk_reject(&p.risk, "RISK_HALTED", "Trading is halted: %s.", s->halt_reason);
        }
    }
    {
        im_session_event se;
        memset(&se, 0, sizeof se);
        se.kind = IM_SEV_PREVIEW;
        se.order = &r->order;
        se.risk = &p.risk;
        session_emit(s, &se);
    }
    r->preview_cb(r->ud, 0, NULL, &p);
    req_free(r);
}

static void order_ref_of(const char *token, char *out, size_t outlen) {
    unsigned char h[8];
    char hex[17];
    crypto_generichash(h, sizeof h, (const unsigned char *)token, strlen(token), NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    snprintf(out, outlen, "im-%s", hex);
}

/* The consecutive-reject breaker: rejections at place (re-validation or
 * the broker) in a row halt trading; an accepted order resets the count.
 * Preview denials never count. */
static void session_count_reject(im_session *s, int rejected) {
    int max = s->cfg->limits.max_consecutive_rejects;
    if (!rejected) {
        s->consecutive_rejects = 0;
        return;
    }
    s->consecutive_rejects++;
    if (max > 0 && s->consecutive_rejects >= max && !s->halted) {
        char why[128];
        snprintf(why, sizeof why, "%d consecutive orders were rejected at placement (limit %d)",
                 s->consecutive_rejects, max);
        im_session_halt(s, why);
    }
}

static void place_order_cb(void *ud, int status, const char *msg, const im_order_info *o) {
    sess_req *r = ud;
    im_session *s = r->s;
    im_place_result res;

    /* No answer in time, or the server closing: the order may be working
     * at the broker. Not a rejection, and not settled in the journal (the
     * next start looks it up by orderRef). */
    int unknown = status == IM_ETIMEDOUT || status == IM_ECANCELED;
    if (r->inflight_slot >= 0)
        s->inflight_used[r->inflight_slot] = 0;
    place_result_init(&res, status);
    if (!unknown)
        session_count_reject(s, status != 0 || o == NULL || o->status == IM_OS_REJECTED);
    if (unknown && o != NULL)
        session_record_order(s, o); /* its later events are recognised */
    if (status != 0 || o == NULL) {
        snprintf(res.message, sizeof res.message,
                 "The broker did not accept the order: %s. The confirmation token is spent.",
                 msg ? msg : im_strerror(status));
        if (status == 0)
            res.status = IM_EREJECTED;
    } else {
        res.order = *o;
        res.have_order = 1;
        session_record_order(s, o);
        snprintf(r->entry->order_id, sizeof r->entry->order_id, "%s", o->order_id);
        r->entry->status = o->status;
        switch (o->status) {
        case IM_OS_FILLED:
            snprintf(res.message, sizeof res.message, "Filled.");
            break;
        case IM_OS_REJECTED:
            snprintf(res.message, sizeof res.message, "Rejected by the broker: %s",
                     o->message[0] ? o->message : "no reason given");
            break;
        case IM_OS_PARTIAL:
            snprintf(res.message, sizeof res.message,
                     "Partially filled; the rest is working. Check get_open_orders.");
            break;
        case IM_OS_CANCELLED:
            snprintf(res.message, sizeof res.message, "Cancelled: %s",
                     o->message[0] ? o->message : "by the broker");
            break;
        default:
            snprintf(res.message, sizeof res.message,
                     "Working at the broker; follow it with get_open_orders and get_trades.");
            break;
        }
        im_info("order %s %s %.0f %s %s: %s", o->order_id, im_side_str(o->order.side),
                o->order.quantity, o->order.symbol, im_order_status_str(o->status), res.message);
    }
    {
        cJSON *f = cJSON_CreateObject();
        if (status == 0 && o != NULL) {
            json_order_info(f, o);
        } else {
            cJSON_AddStringToObject(f, "order_ref", r->order.order_ref);
            cJSON_AddStringToObject(f, "error", msg ? msg : im_strerror(status));
        }
        if (session_journal(s, status == 0 && o != NULL ? "order_ack"
                               : unknown               ? "place_unknown"
                                                       : "place_error",
                            f) != 0 &&
            strlen(res.message) + 80 < sizeof res.message)
            strcat(res.message, " The journal could not record this; trading is now halted.");
    }
    place_finish(r, &res);
}

/* Answers a place request that re-validation (res->risk) refused. */
static void place_refused(sess_req *r, im_place_result *res, int count_it) {
    im_session *s = r->s;
    size_t off;
    res->status = IM_ERISK;
    off = (size_t)snprintf(res->message, sizeof res->message, "Order not placed:");
    for (size_t i = 0; i < res->risk.nreasons && off < sizeof res->message; i++)
        off += (size_t)snprintf(res->message + off, sizeof res->message - off, " %s",
                                res->risk.reasons[i].text);
    if (off < sizeof res->message)
        snprintf(res->message + off, sizeof res->message - off,
                 " The confirmation token is spent; call preview_order again.");
    im_info("place rejected at re-validation: %s", res->message);
    {
        cJSON *f = cJSON_CreateObject();
        char h[IM_JOURNAL_HASH_HEX];
        json_order(f, &r->order);
        json_risk(f, &res->risk);
        im_journal_token_hash(r->entry->token, h);
        cJSON_AddStringToObject(f, "token_hash", h);
        cJSON_AddBoolToObject(f, "breaker", count_it);
        json_policy_set(f, s->policies);
        session_journal(s, "place_reject", f);
    }
    {
        im_session_event se;
        memset(&se, 0, sizeof se);
        se.kind = IM_SEV_PLACE_REJECT;
        se.order = &r->order;
        se.risk = &res->risk;
        session_emit(s, &se);
    }
    if (count_it)
        session_count_reject(s, 1);
    place_finish(r, res);
}

/* A refusal at re-validation counts toward the consecutive-reject breaker;
 * a human's "no" does not. */
static void place_rejected(sess_req *r, im_place_result *res) { place_refused(r, res, 1); }

/* The daily caps once more, under the journal's lock: another server on
 * the state directory may have sent an order between this decision and
 * its record. Only a change since the decision can refuse here, so this
 * never contradicts the full check; it refuses when the caps no longer
 * hold with the other server's orders counted (reducing orders included:
 * fail closed in a race that needs two servers within milliseconds). */
typedef struct sent_guard {
    const im_limits *limits;
    int orders_seen;
    double notional_seen;
    double notional;
} sent_guard;

static int session_sent_guard(void *ud, const im_journal_state *st) {
    const sent_guard *g = ud;
    if (st->orders == g->orders_seen && st->notional == g->notional_seen)
        return 0;
    if (st->orders >= g->limits->max_daily_orders)
        return 1;
    return st->notional + g->notional > g->limits->max_daily_notional + 0.005;
}

/* ---- human confirmation ---------------------------------------------------- */

/* Whether this order needs a human's "yes" before it is sent: a policy
 * asked for approval and nothing else refused it, or IBKR_CONFIRM=elicit
 * and its notional is above IBKR_CONFIRM_ABOVE_NOTIONAL. */
static int confirm_needed(sess_req *r, const im_risk_result *risk, char *why, size_t n) {
    const im_config *cfg = r->s->cfg;
    if (!risk->approved) {
        size_t k = 0;
        if (r->approvals == 0)
            return 0;
        for (size_t i = 0; i < risk->nreasons; i++)
            k += strcmp(risk->reasons[i].code, "POLICY_APPROVAL_REQUIRED") == 0;
        if (k != risk->nreasons)
            return 0; /* refused for other reasons: no question to ask */
        snprintf(why, n, "%.150s", risk->reasons[0].text);
        return 1;
    }
    if (cfg->confirm_elicit && isfinite(risk->notional) &&
        risk->notional > cfg->confirm_above_notional) {
        if (cfg->confirm_above_notional > 0)
            snprintf(why, n, "IBKR_CONFIRM=elicit: orders above $%.2f need a human's confirmation",
                     cfg->confirm_above_notional);
        else
            snprintf(why, n, "IBKR_CONFIRM=elicit: every order needs a human's confirmation");
        return 1;
    }
    return 0;
}

static void confirm_unlink(sess_req *r) {
    for (sess_req **pp = &r->s->confirming; *pp; pp = &(*pp)->next_confirm) {
        if (*pp == r) {
            *pp = r->next_confirm;
            break;
        }
    }
    r->next_confirm = NULL;
    r->confirm_id[0] = '\0';
}

static void confirm_refuse(sess_req *r, const char *code, const char *fmt, ...)
    IM_PRINTF(3, 4);
static void confirm_refuse(sess_req *r, const char *code, const char *fmt, ...) {
    im_place_result res;
    char text[IM_RISK_TEXT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    place_result_init(&res, 0);
    im_risk_reject(&res.risk, code, "%s", text);
    place_refused(r, &res, 0);
}

/* Asks the human; the answer arrives in confirm_resolve. */
static void place_confirm(sess_req *r, const im_risk_result *risk, const char *why) {
    im_session *s = r->s;
    double now = im_clock_now(s->clock), left = r->entry->expires_at - now;
    unsigned char raw[IM_CONFIRM_ID_LEN / 2];
    char money[48], px[64] = "", msg[640];
    im_confirm_request q;
    int rc;

    if (s->closing) {
        req_fail(r, IM_ECANCELED, "the server is shutting down");
        return;
    }
    if (r->caller_gone) {
        confirm_refuse(r, "CONFIRM_CANCELLED",
                       "The call was cancelled before a human could be asked; the order was not "
                       "placed.");
        return;
    }
    if (r->confirmer.ask == NULL) {
        confirm_refuse(r, "CONFIRM_UNAVAILABLE",
                       "This order needs a human's confirmation (%s), but this MCP client cannot "
                       "ask one (it did not declare the elicitation capability); it was not "
                       "placed.",
                       why);
        return;
    }
    if (!(left >= 1)) {
        confirm_refuse(r, "CONFIRM_TIMEOUT",
                       "This order needs a human's confirmation (%s), but its token has no time "
                       "left to ask; it was not placed. Preview it again.",
                       why);
        return;
    }
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(r->confirm_id, sizeof r->confirm_id, raw, sizeof raw);
    r->confirm_deadline = now + left;
    r->next_confirm = s->confirming;
    s->confirming = r;
    im_risk_fmt_money(risk->notional, money, sizeof money);
    if (r->order.type == IM_OT_LMT || r->order.type == IM_OT_STP_LMT)
        snprintf(px, sizeof px, " limit %.2f", r->order.limit_price);
    if (r->order.type == IM_OT_STP || r->order.type == IM_OT_STP_LMT)
        snprintf(px + strlen(px), sizeof px - strlen(px), " stop %.2f", r->order.stop_price);
    {
        const char *acct = im_session_account_id(s);
        snprintf(msg, sizeof msg,
                 "Confirm order: %s %.0f %s %s%s %s, about %s (reference price %.2f), account "
                 "%.31s (%s). Asked because %.150s. Answer within %.0f s; no answer means it is "
                 "not placed.",
                 im_side_str(r->order.side), r->order.quantity, r->order.symbol,
                 im_order_type_str(r->order.type), px, im_tif_str(r->order.tif), money,
                 risk->reference_price, acct,
                 strcmp(s->cfg->backend, "sim") == 0 ? "simulated"
                 : im_account_is_paper(acct)         ? "paper"
                                                     : "LIVE, real money",
                 why, left);
    }
    {
        cJSON *f = cJSON_CreateObject();
        char h[IM_JOURNAL_HASH_HEX];
        json_order(f, &r->order);
        cJSON_AddNumberToObject(f, "notional", risk->notional);
        cJSON_AddStringToObject(f, "why", why);
        im_journal_token_hash(r->entry->token, h);
        cJSON_AddStringToObject(f, "token_hash", h);
        session_journal(s, "confirm_asked", f);
    }
    memset(&q, 0, sizeof q);
    q.id = r->confirm_id;
    q.order = &r->order;
    q.notional = risk->notional;
    q.message = msg;
    q.expires_in = left;
    im_info("asking a human to confirm %s %.0f %s (%s)", im_side_str(r->order.side),
            r->order.quantity, r->order.symbol, why);
    rc = r->confirmer.ask(r->confirmer.ud, &q);
    if (rc == 0)
        return; /* the answer comes through im_session_confirm_answer */
    if (rc == IM_EINPUT) {
        /* The question travels in this call's result; the answer comes
         * with a retry. Until then nobody waits on this request. */
        im_place_result res;
        place_result_init(&res, IM_EINPUT);
        snprintf(res.confirm_id, sizeof res.confirm_id, "%s", r->confirm_id);
        snprintf(res.confirm_message, sizeof res.confirm_message, "%s", msg);
        res.confirm_expires_in = left;
        snprintf(res.message, sizeof res.message,
                 "This order waits for a human's confirmation: %.400s Nothing has been sent yet.",
                 msg);
        r->place_cb(r->ud, &res);
        r->place_cb = NULL;
        r->ud = NULL;
        return;
    }
    confirm_unlink(r);
    confirm_refuse(r, "CONFIRM_UNAVAILABLE",
                   "This order needs a human's confirmation (%s), but the client could not be "
                   "asked (%s); it was not placed.",
                   why, im_strerror(rc));
}

static void place_ignore_cb(void *ud, const im_place_result *res) {
    IM_UNUSED(ud);
    IM_UNUSED(res);
}

static void confirm_resolve(sess_req *r, im_confirm_answer a) {
    im_session *s = r->s;
    static const char *names[] = {"", "accept", "decline", "cancel", "timeout", "failed"};
    cJSON *f = cJSON_CreateObject();
    confirm_unlink(r);
    if (r->place_cb == NULL) {
        /* Deferred and never retried: nobody to tell. */
        r->place_cb = place_ignore_cb;
    }
    json_order(f, &r->order);
    cJSON_AddStringToObject(f, "answer", a >= 1 && a <= 5 ? names[a] : "?");
    session_journal(s, "confirm_answer", f);
    im_info("confirmation of %s %.0f %s: %s", im_side_str(r->order.side), r->order.quantity,
            r->order.symbol, a >= 1 && a <= 5 ? names[a] : "?");
    switch (a) {
    case IM_CONFIRM_ACCEPT:
        /* Re-validated with fresh data before it is sent: nothing of the
         * first snapshot may stand in for a read that fails now. */
        free(r->fills);
        free(r->open_orders);
        r->fills = NULL;
        r->open_orders = NULL;
        r->nfills = r->nopen = 0;
        r->have_quote = r->have_account = 0;
        r->position_qty = r->position_avg_cost = r->gross_position_value = 0;
        r->working_buy = r->working_sell = 0;
        r->open_total = r->open_symbol = 0;
        r->confirmed = 1;
        if (req_start(r) != 0)
            req_fail(r, IM_EIO, "the broker could not be asked for a fresh quote");
        return;
    case IM_CONFIRM_DECLINE:
        confirm_refuse(r, "CONFIRM_DECLINED",
                       "The human declined this order; it was not placed. Do not retry it "
                       "without asking them.");
        return;
    case IM_CONFIRM_CANCEL:
        confirm_refuse(r, "CONFIRM_CANCELLED",
                       "The human dismissed the confirmation without accepting; the order was not "
                       "placed.");
        return;
    case IM_CONFIRM_TIMEOUT:
        confirm_refuse(r, "CONFIRM_TIMEOUT",
                       "No human answered the confirmation before the token expired; the order "
                       "was not placed. Preview it again if it is still wanted.");
        return;
    default:
        confirm_refuse(r, "CONFIRM_FAILED",
                       "The confirmation could not be completed (the client answered with an "
                       "error); the order was not placed.");
        return;
    }
}

static sess_req *confirm_find(im_session *s, const char *id) {
    if (id == NULL || strlen(id) != IM_CONFIRM_ID_LEN)
        return NULL;
    for (sess_req *r = s->confirming; r; r = r->next_confirm)
        if (sodium_memcmp(r->confirm_id, id, IM_CONFIRM_ID_LEN) == 0)
            return r;
    return NULL;
}

/* Questions whose time is up are answered "timeout" (the asker's own
 * timer normally gets there first; a deferred one has no timer). */
static void confirm_sweep(im_session *s) {
    double now = im_clock_now(s->clock);
    for (;;) {
        sess_req *r;
        for (r = s->confirming; r; r = r->next_confirm)
            if (now > r->confirm_deadline)
                break;
        if (r == NULL)
            return;
        confirm_resolve(r, IM_CONFIRM_TIMEOUT);
    }
}

void im_session_confirm_answer(im_session *s, const char *id, im_confirm_answer a) {
    sess_req *r = confirm_find(s, id);
    if (r == NULL || r->place_cb == NULL)
        return; /* expired, answered, or awaiting a retry */
    if (a == IM_CONFIRM_ACCEPT && im_clock_now(s->clock) > r->confirm_deadline)
        a = IM_CONFIRM_TIMEOUT;
    confirm_resolve(r, a);
}

int im_session_place_resume(im_session *s, const char *id, const char *token,
                            im_confirm_answer a, im_place_cb cb, void *ud) {
    sess_req *r;
    im_place_result res;
    if (s == NULL || id == NULL || token == NULL || cb == NULL)
        return IM_EINVAL;
    confirm_sweep(s);
    r = confirm_find(s, id);
    if (r == NULL || r->place_cb != NULL || strcmp(r->entry->token, token) != 0) {
        place_result_init(&res, IM_ETOKEN_UNKNOWN);
        snprintf(res.message, sizeof res.message,
                 "This confirmation is unknown, already answered or expired; nothing was placed. "
                 "Call preview_order again.");
        cb(ud, &res);
        return 0;
    }
    r->place_cb = cb;
    r->ud = ud;
    confirm_resolve(r, a);
    return 0;
}

void im_session_caller_gone(im_session *s, void *ud) {
    sess_req *r;
    if (s == NULL)
        return;
    for (r = s->active_places; r; r = r->next_active)
        if (r->ud == ud)
            r->caller_gone = 1;
    /* A question whose caller left is not answered by anyone else. */
    for (r = s->confirming; r; r = r->next_confirm)
        if (r->ud == ud && r->place_cb != NULL)
            break;
    if (r != NULL)
        confirm_resolve(r, IM_CONFIRM_CANCEL);
}

void im_session_forget_confirmer(im_session *s, void *ud) {
    if (s == NULL)
        return;
    for (sess_req *r = s->active_places; r; r = r->next_active)
        if (r->confirmer.ud == ud)
            memset(&r->confirmer, 0, sizeof r->confirmer);
}

size_t im_session_confirming(const im_session *s) {
    size_t n = 0;
    for (const sess_req *r = s->confirming; r; r = r->next_confirm)
        n++;
    return n;
}

static void place_decide(sess_req *r) {
    im_session *s = r->s;
    im_place_result res;
    int rc;

    if (s->closing) {
        req_fail(r, IM_ECANCELED, "the server is shutting down");
        return;
    }
    place_result_init(&res, 0);
    req_risk(r, IM_RISK_PLACE, &res.risk);
    if (!r->confirmed) {
        char why[200];
        if (confirm_needed(r, &res.risk, why, sizeof why)) {
            place_confirm(r, &res.risk, why);
            return;
        }
    }
    if (!res.risk.approved) {
        place_rejected(r, &res);
        return;
    }
    /* Count the order and mark it in flight before it leaves, with no
     * yield in between (see the file comment). */
    r->inflight_slot = -1;
    for (int i = 0; i < SESSION_MAX_INFLIGHT; i++) {
        if (!s->inflight_used[i]) {
            s->inflight_used[i] = 1;
            s->inflight[i] = r->order;
            r->inflight_slot = i;
            break;
        }
    }
    if (r->inflight_slot < 0) {
        req_fail(r, IM_EBUSY, "too many orders are in flight");
        return;
    }
    order_ref_of(r->entry->token, r->order.order_ref, sizeof r->order.order_ref);
    session_roll_day(s);
    if (s->journal != NULL) {
        /* The record is the count: on disk before the order leaves. */
        cJSON *f = cJSON_CreateObject();
        char h[IM_JOURNAL_HASH_HEX];
        json_order(f, &r->order);
        cJSON_AddStringToObject(f, "order_ref", r->order.order_ref);
        cJSON_AddNumberToObject(f, "notional", res.risk.notional);
        json_policy_set(f, s->policies);
        im_journal_token_hash(r->entry->token, h);
        cJSON_AddStringToObject(f, "token_hash", h);
        sent_guard g;
        g.limits = &s->cfg->limits;
        g.orders_seen = s->orders_today;
        g.notional_seen = s->notional_today;
        g.notional = res.risk.notional;
        rc = im_journal_append_guarded(s->journal, im_clock_now(s->clock), "order_sent", f,
                                       session_sent_guard, &g);
        if (rc == IM_ERISK) {
            const im_journal_state *st = im_journal_state_get(s->journal);
            s->inflight_used[r->inflight_slot] = 0;
            s->orders_today = st->orders;
            s->notional_today = st->notional;
            im_risk_reject(&res.risk,
                           st->orders >= s->cfg->limits.max_daily_orders
                               ? "RISK_DAILY_ORDER_LIMIT"
                               : "RISK_DAILY_NOTIONAL_LIMIT",
                           "Another server on this state directory sent orders meanwhile; "
                           "today's caps no longer allow this one (%d of %d orders, $%.2f of "
                           "$%.2f notional submitted today).",
                           st->orders, s->cfg->limits.max_daily_orders, st->notional,
                           s->cfg->limits.max_daily_notional);
            place_rejected(r, &res);
            return;
        }
        if (rc != 0) {
            char why[1600];
            snprintf(why, sizeof why, "%s; trading is halted (fail closed)",
                     im_journal_error(s->journal));
            session_halt_as(s, why, 0);
            s->inflight_used[r->inflight_slot] = 0;
            req_fail(r, IM_EIO, "the journal could not be written, so trading is halted");
            return;
        }
        s->orders_today = im_journal_state_get(s->journal)->orders;
        s->notional_today = im_journal_state_get(s->journal)->notional;
    } else {
        s->orders_today++;
        s->notional_today += res.risk.notional;
    }
    session_recent_add(s, &r->order, im_clock_now(s->clock));
    rc = s->broker->ops->place(s->broker, &r->order, place_order_cb, r);
    if (rc != 0) {
        s->inflight_used[r->inflight_slot] = 0;
        req_fail(r, rc, "the broker refused the order");
    }
}

static void req_decide(sess_req *r) {
    if (r->kind == REQ_PREVIEW)
        preview_decide(r);
    else
        place_decide(r);
}

int im_session_preview(im_session *s, const im_order *o, im_preview_cb cb, void *ud) {
    sess_req *r;
    int rc;
    if (s == NULL || o == NULL || cb == NULL)
        return IM_EINVAL;
    /* Before a token is issued (and used ones pruned): a question whose
     * time is up never outlives the token entry it points to. */
    confirm_sweep(s);
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return IM_ENOMEM;
    r->s = s;
    r->kind = REQ_PREVIEW;
    r->order = *o;
    r->order.order_ref[0] = '\0';
    r->preview_cb = cb;
    r->ud = ud;
    rc = req_start(r);
    if (rc != 0)
        req_free(r);
    return rc;
}

int im_session_place(im_session *s, const char *token, im_place_cb cb, void *ud) {
    return im_session_place_ex(s, token, NULL, cb, ud);
}

int im_session_place_ex(im_session *s, const char *token, const im_confirmer *c,
                        im_place_cb cb, void *ud) {
    im_place_result res;
    im_token_entry *e = NULL;
    sess_req *r;
    int rc;

    if (s == NULL || token == NULL || cb == NULL)
        return IM_EINVAL;
    confirm_sweep(s);
    if (!s->cfg->trading_enabled) {
        place_result_init(&res, IM_EDISABLED);
        snprintf(res.message, sizeof res.message,
                 "Trading is disabled (IBKR_TRADING_ENABLED is not true); nothing was placed. "
                 "Previews still work for analysis.");
        cb(ud, &res);
        return 0;
    }
    /* The token is consumed here, before anything can yield. */
    rc = im_tokens_redeem(s->tokens, token, im_clock_now(s->clock), &e);
    if (rc == IM_ETOKEN_UNKNOWN) {
        place_result_init(&res, rc);
        snprintf(res.message, sizeof res.message,
                 "Unknown or already-used confirmation token. Call preview_order first.");
        cb(ud, &res);
        return 0;
    }
    if (rc == IM_ETOKEN_USED && e->order_id[0] == '\0') {
        /* Its own placement is still in flight: answer when it completes,
         * so this caller too learns which order the token placed. */
        for (sess_req *a = s->active_places; a != NULL; a = a->next_active) {
            if (a->entry == e && a->confirm_id[0]) {
                place_result_init(&res, IM_ETOKEN_USED);
                snprintf(res.message, sizeof res.message,
                         "This token's order is waiting for a human's confirmation; nothing has "
                         "been sent yet. It is placed only if they accept.");
                cb(ud, &res);
                return 0;
            }
            if (a->entry == e) {
                place_waiter *w = calloc(1, sizeof *w);
                if (w == NULL)
                    break;
                w->cb = cb;
                w->ud = ud;
                w->next = a->waiters;
                a->waiters = w;
                return 0;
            }
        }
    }
    if (rc == IM_ETOKEN_USED) {
        const im_order_info *o = e->order_id[0] ? session_find_order(s, e->order_id) : NULL;
        place_result_init(&res, rc);
        if (o != NULL) {
            res.order = *o;
            res.have_order = 1;
        }
        if (e->order_id[0])
            snprintf(res.message, sizeof res.message,
                     "Unknown or already-used confirmation token. Call preview_order first. "
                     "This token already placed order %s (status %s); nothing new was sent.",
                     e->order_id, im_order_status_str(o ? o->status : e->status));
        else
            snprintf(res.message, sizeof res.message,
                     "Unknown or already-used confirmation token. Call preview_order first. "
                     "This token was already redeemed and its placement is still in progress; "
                     "check get_open_orders and get_trades.");
        cb(ud, &res);
        return 0;
    }
    if (rc != 0)
        return rc;
    if (s->journal != NULL) {
        char h[IM_JOURNAL_HASH_HEX];
        cJSON *f;
        im_journal_token_hash(token, h);
        session_roll_day(s);
        if (im_journal_token_used(s->journal, h)) {
            /* Tokens live in memory only, so this cannot happen unless
             * two processes shared one; never let a token work twice. */
            place_result_init(&res, IM_ETOKEN_USED);
            snprintf(res.message, sizeof res.message,
                     "Unknown or already-used confirmation token. Call preview_order first. "
                     "The journal shows this token was already redeemed; nothing was sent.");
            cb(ud, &res);
            return 0;
        }
        f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "token_hash", h);
        json_order(f, &e->order);
        if (session_journal(s, "redeem", f) != 0) {
            char why[400];
            place_result_init(&res, IM_EHALTED);
            im_text_copy(why, sizeof why, s->halt_reason);
            snprintf(res.message, sizeof res.message,
                     "Order not placed: %s. The confirmation token is spent.", why);
            cb(ud, &res);
            return 0;
        }
    }
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        place_result_init(&res, IM_ENOMEM);
        snprintf(res.message, sizeof res.message, "Out of memory; nothing was placed.");
        cb(ud, &res);
        return 0;
    }
    r->s = s;
    r->kind = REQ_PLACE;
    r->order = e->order;
    r->entry = e;
    r->place_cb = cb;
    r->ud = ud;
    if (c != NULL)
        r->confirmer = *c;
    r->next_active = s->active_places;
    s->active_places = r;
    rc = req_start(r);
    if (rc != 0)
        req_fail(r, rc, "the broker could not be asked for a quote");
    return 0;
}
