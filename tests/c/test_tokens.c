/* test_tokens.c: unit tests for tokens.c on a virtual clock: issue and
 * redeem, single use, expiry to the millisecond, malformed tokens, tamper
 * detection through the entry pointer, the pending cap, pruning, and the
 * canonical text and its hash (checked against BLAKE2b-256 values computed
 * independently with Python's hashlib).
 *
 * getrandom is interposed below so the tests can make it fail, be
 * interrupted, or return short reads; by default it is the real system
 * call. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "error.h"
#include "test.h"
#include "tokens.h"

#define T0 1749564000.0
#define TTL 120.0

/* ---- getrandom interposition --------------------------------------------- */

enum { RNG_REAL = 0, RNG_FAIL, RNG_EINTR_ONCE, RNG_SHORT };
static int rng_mode;
static int rng_calls;

ssize_t getrandom(void *buf, size_t buflen, unsigned int flags);
ssize_t getrandom(void *buf, size_t buflen, unsigned int flags) {
    rng_calls++;
    switch (rng_mode) {
    case RNG_FAIL:
        errno = EIO;
        return -1;
    case RNG_EINTR_ONCE:
        rng_mode = RNG_SHORT;
        errno = EINTR;
        return -1;
    case RNG_SHORT:
        if (buflen > 3)
            buflen = 3;
        break;
    default:
        break;
    }
    return (ssize_t)syscall(SYS_getrandom, buf, buflen, flags);
}

/* ---- helpers ------------------------------------------------------------- */

static im_order make_order(const char *sym, im_side side, double qty, im_order_type type,
                           double lmt, double stp, im_tif tif) {
    im_order o;
    memset(&o, 0, sizeof o);
    snprintf(o.symbol, sizeof o.symbol, "%s", sym);
    o.side = side;
    o.quantity = qty;
    o.type = type;
    o.limit_price = lmt;
    o.stop_price = stp;
    o.tif = tif;
    return o;
}

static im_order nvda(void) { return make_order("NVDA", IM_SIDE_BUY, 50, IM_OT_MKT, 0, 0, IM_TIF_DAY); }

static im_tokens *new_store(void) {
    im_tokens *t = NULL;
    ASSERT_EQ(im_tokens_new(&t), 0);
    ASSERT(t != NULL);
    return t;
}

static im_token_entry *issue_at(im_tokens *t, const im_order *o, double now) {
    im_token_entry *e = NULL;
    ASSERT_EQ(im_tokens_issue(t, o, 100.0, 5000.0, now, TTL, &e), 0);
    ASSERT(e != NULL);
    return e;
}

static int is_token(const char *s) {
    if (strlen(s) != IM_TOKEN_LEN)
        return 0;
    for (size_t i = 0; i < IM_TOKEN_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static void hex_of(const unsigned char *b, size_t n, char *out) {
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void count_cb(void *ud, const im_token_entry *e) {
    (void)e;
    (*(int *)ud)++;
}

/* ---- issue and redeem ---------------------------------------------------- */

TEST(tokens_issue_and_redeem) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *e = NULL, *r = NULL;
    unsigned char h[IM_TOKEN_HASH_LEN];
    char tok[IM_TOKEN_LEN + 1];

    ASSERT_EQ(im_tokens_issue(t, &o, 135.40, 6837.70, T0, TTL, &e), 0);
    ASSERT(is_token(e->token));
    ASSERT(memcmp(&e->order, &o, sizeof o) == 0);
    ASSERT_NEAR(e->reference_price, 135.40, 0);
    ASSERT_NEAR(e->notional, 6837.70, 0);
    ASSERT_NEAR(e->issued_at, T0, 0);
    ASSERT_NEAR(e->expires_at, T0 + TTL, 0);
    ASSERT_EQ(e->used, 0);
    ASSERT_STR_EQ(e->order_id, "");
    ASSERT_EQ(im_tokens_hash_order(&o, h), 0);
    ASSERT(memcmp(h, e->order_hash, sizeof h) == 0);
    ASSERT_EQ(im_tokens_pending(t, T0), 1);

    /* The caller's order is copied: changing it later changes nothing. */
    o.quantity = 5000;

    /* Redeem with a copy of the text, as a client would send it. */
    memcpy(tok, e->token, sizeof tok);
    ASSERT_EQ(im_tokens_redeem(t, tok, T0 + 10, &r), 0);
    ASSERT(r == e);
    ASSERT_EQ(r->used, 1);
    ASSERT_NEAR(r->used_at, T0 + 10, 0);
    ASSERT_NEAR(r->order.quantity, 50, 0);
    ASSERT_EQ(im_tokens_pending(t, T0 + 10), 0);
    im_tokens_free(t);
}

TEST(tokens_format_is_32_lower_hex) {
    im_tokens *t = new_store();
    im_order o = nvda();
    int nonzero = 0;
    for (int i = 0; i < 200; i++) {
        im_token_entry *e = issue_at(t, &o, T0);
        ASSERT_EQ(strlen(e->token), 32);
        ASSERT(is_token(e->token));
        if (strcmp(e->token, "00000000000000000000000000000000") != 0)
            nonzero++;
    }
    ASSERT_EQ(nonzero, 200);
    im_tokens_free(t);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

TEST(tokens_unique_over_1000) {
    im_tokens *t = new_store();
    im_order o = nvda();
    static const char *toks[1000];
    int seen_digit[16] = {0};
    for (int i = 0; i < 1000; i++) {
        im_token_entry *e = issue_at(t, &o, T0);
        toks[i] = e->token; /* entries never move, so this stays valid */
        for (int k = 0; k < IM_TOKEN_LEN; k++) {
            char ch = e->token[k];
            seen_digit[ch <= '9' ? ch - '0' : ch - 'a' + 10]++;
        }
    }
    qsort(toks, 1000, sizeof toks[0], cmp_str);
    for (int i = 1; i < 1000; i++)
        ASSERT(strcmp(toks[i - 1], toks[i]) != 0);
    /* 32,000 hex digits: each of the 16 should appear about 2,000 times. */
    for (int d = 0; d < 16; d++)
        ASSERT(seen_digit[d] > 1500 && seen_digit[d] < 2500);
    ASSERT_EQ(im_tokens_pending(t, T0), 1000);
    im_tokens_free(t);
}

TEST(tokens_single_use) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *e = issue_at(t, &o, T0), *r = NULL;
    int ok = 0, used = 0;

    ASSERT_EQ(im_tokens_redeem(t, e->token, T0 + 1, &r), 0);
    /* The session records what the token placed. */
    snprintf(r->order_id, sizeof r->order_id, "SIM-42");
    r->status = IM_OS_FILLED;

    r = NULL;
    ASSERT_EQ(im_tokens_redeem(t, e->token, T0 + 2, &r), IM_ETOKEN_USED);
    ASSERT(r == e);
    ASSERT_STR_EQ(r->order_id, "SIM-42");
    ASSERT_EQ(r->status, IM_OS_FILLED);
    ASSERT_NEAR(r->used_at, T0 + 1, 0); /* the replay changes nothing */

    /* Long after expiry a replay still names the order. */
    r = NULL;
    ASSERT_EQ(im_tokens_redeem(t, e->token, T0 + 3600, &r), IM_ETOKEN_USED);
    ASSERT(r == e);
    ASSERT_STR_EQ(r->order_id, "SIM-42");

    /* Of many attempts with one token, exactly one succeeds. */
    e = issue_at(t, &o, T0);
    for (int i = 0; i < 50; i++) {
        int rc = im_tokens_redeem(t, e->token, T0 + 5, &r);
        if (rc == 0)
            ok++;
        else if (rc == IM_ETOKEN_USED)
            used++;
    }
    ASSERT_EQ(ok, 1);
    ASSERT_EQ(used, 49);
    im_tokens_free(t);
}

TEST(tokens_expiry_boundary) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *a = issue_at(t, &o, T0), *b = issue_at(t, &o, T0), *r = NULL;

    ASSERT_EQ(im_tokens_pending(t, T0 + TTL - 0.001), 2);
    ASSERT_EQ(im_tokens_pending(t, T0 + TTL), 0);

    ASSERT_EQ(im_tokens_redeem(t, a->token, T0 + TTL - 0.001, &r), 0);
    ASSERT(r == a);

    r = a; /* must be cleared */
    ASSERT_EQ(im_tokens_redeem(t, b->token, T0 + TTL, &r), IM_ETOKEN_UNKNOWN);
    ASSERT(r == NULL);
    ASSERT_EQ(b->used, 0);
    ASSERT_EQ(im_tokens_redeem(t, b->token, T0 + TTL + 1000, &r), IM_ETOKEN_UNKNOWN);
    im_tokens_free(t);
}

TEST(tokens_fractional_ttl) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *e = NULL, *r = NULL;
    ASSERT_EQ(im_tokens_issue(t, &o, 1, 1, T0, 0.5, &e), 0);
    ASSERT_EQ(im_tokens_redeem(t, e->token, T0 + 0.5, &r), IM_ETOKEN_UNKNOWN);
    ASSERT_EQ(im_tokens_issue(t, &o, 1, 1, T0, 0.5, &e), 0);
    ASSERT_EQ(im_tokens_redeem(t, e->token, T0 + 0.499, &r), 0);
    im_tokens_free(t);
}

TEST(tokens_unknown_and_malformed) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *e = issue_at(t, &o, T0), *r = NULL;
    char buf[128];
    const char *cases[8];
    size_t n = 0;

    /* Too long: the real token plus one digit. */
    snprintf(buf, sizeof buf, "%s0", e->token);
    ASSERT_EQ(im_tokens_redeem(t, buf, T0, &r), IM_ETOKEN_UNKNOWN);
    ASSERT(r == NULL);
    /* Too short: the real token less its last digit. */
    snprintf(buf, sizeof buf, "%.31s", e->token);
    ASSERT_EQ(im_tokens_redeem(t, buf, T0, &r), IM_ETOKEN_UNKNOWN);
    /* Upper case is not the token that was handed out. */
    for (size_t i = 0; i <= IM_TOKEN_LEN; i++)
        buf[i] = (char)((e->token[i] >= 'a' && e->token[i] <= 'f') ? e->token[i] - 32
                                                                     : e->token[i]);
    if (strcmp(buf, e->token) != 0)
        ASSERT_EQ(im_tokens_redeem(t, buf, T0, &r), IM_ETOKEN_UNKNOWN);
    /* Whitespace around it. */
    snprintf(buf, sizeof buf, " %s", e->token);
    ASSERT_EQ(im_tokens_redeem(t, buf, T0, &r), IM_ETOKEN_UNKNOWN);
    snprintf(buf, sizeof buf, "%s\n", e->token);
    ASSERT_EQ(im_tokens_redeem(t, buf, T0, &r), IM_ETOKEN_UNKNOWN);
    /* A NUL in the middle: the first half only. */
    memcpy(buf, e->token, sizeof e->token);
    buf[16] = '\0';
    ASSERT_EQ(im_tokens_redeem(t, buf, T0, &r), IM_ETOKEN_UNKNOWN);

    cases[n++] = "";
    cases[n++] = "0";
    cases[n++] = "00000000000000000000000000000000"; /* well formed, never issued */
    cases[n++] = "ffffffffffffffffffffffffffffffff";
    cases[n++] = "gggggggggggggggggggggggggggggggg";
    cases[n++] = "0123456789abcdef0123456789abcdeX";
    cases[n++] = "0123456789abcdef-0123456789abcde";
    for (size_t i = 0; i < n; i++) {
        r = e;
        ASSERT_EQ(im_tokens_redeem(t, cases[i], T0, &r), IM_ETOKEN_UNKNOWN);
        ASSERT(r == NULL);
    }
    ASSERT_EQ(im_tokens_redeem(t, NULL, T0, &r), IM_ETOKEN_UNKNOWN);
    ASSERT(r == NULL);

    /* None of that touched the real token. */
    ASSERT_EQ(e->used, 0);
    ASSERT_EQ(im_tokens_redeem(t, e->token, T0, &r), 0);
    im_tokens_free(t);
}

TEST(tokens_very_long_input) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *e = issue_at(t, &o, T0), *r = NULL;
    size_t len = 1 << 20;
    char *big = malloc(len + 1);
    ASSERT(big != NULL);
    memset(big, 'a', len);
    memcpy(big, e->token, IM_TOKEN_LEN);
    big[len] = '\0';
    ASSERT_EQ(im_tokens_redeem(t, big, T0, &r), IM_ETOKEN_UNKNOWN);
    free(big);
    im_tokens_free(t);
}

/* ---- tamper detection ---------------------------------------------------- */

TEST(tokens_tamper_quantity) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *e = issue_at(t, &o, T0), *r = NULL;

    e->order.quantity = 5000; /* the pointer is writable; the hash is not fooled */
    ASSERT_EQ(im_tokens_redeem(t, e->token, T0 + 1, &r), IM_ETOKEN_UNKNOWN);
    ASSERT(r == NULL);
    ASSERT_EQ(e->used, 0);
    ASSERT_EQ(im_tokens_pending(t, T0 + 1), 0);

    /* Burned: changing the order back does not revive it. */
    e->order.quantity = 50;
    ASSERT_EQ(im_tokens_redeem(t, e->token, T0 + 2, &r), IM_ETOKEN_UNKNOWN);
    ASSERT(r == NULL);
    im_tokens_free(t);
}

TEST(tokens_tamper_every_field) {
    im_tokens *t = new_store();
    im_order base = make_order("NVDA", IM_SIDE_BUY, 50, IM_OT_STP_LMT, 101, 100, IM_TIF_DAY);
    for (int field = 0; field < 9; field++) {
        im_token_entry *e = issue_at(t, &base, T0), *r = NULL;
        switch (field) {
        case 0: e->order.quantity = 51; break;
        case 1: e->order.quantity = 50.0000001; break;
        case 2: snprintf(e->order.symbol, sizeof e->order.symbol, "NVDB"); break;
        case 3: e->order.side = IM_SIDE_SELL; break;
        case 4: e->order.type = IM_OT_LMT; break;
        case 5: e->order.limit_price = 101.01; break;
        case 6: e->order.stop_price = 99.99; break;
        case 7: e->order.tif = IM_TIF_GTC; break;
        case 8: e->order_hash[31] ^= 1; break;
        }
        if (im_tokens_redeem(t, e->token, T0 + 1, &r) != IM_ETOKEN_UNKNOWN)
            im_test_fail(__FILE__, __LINE__, "tampering with field %d went unnoticed", field);
    }
    im_tokens_free(t);
}

TEST(tokens_order_ref_not_bound) {
    /* order_ref is derived from the confirmation after issue, so it is not
     * part of the canonical order. */
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *e = issue_at(t, &o, T0), *r = NULL;
    snprintf(e->order.order_ref, sizeof e->order.order_ref, "ibkr-mcp:%.8s", e->token);
    ASSERT_EQ(im_tokens_redeem(t, e->token, T0 + 1, &r), 0);
    im_tokens_free(t);
}

/* ---- capacity and pruning ------------------------------------------------ */

TEST(tokens_pending_cap) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *first = NULL, *e = NULL, *r = NULL;

    for (int i = 0; i < IM_TOKENS_MAX_PENDING; i++) {
        e = issue_at(t, &o, T0 + i * 0.01);
        if (i == 0)
            first = e;
    }
    ASSERT_EQ(im_tokens_pending(t, T0 + 11), IM_TOKENS_MAX_PENDING);
    e = first;
    ASSERT_EQ(im_tokens_issue(t, &o, 1, 1, T0 + 11, TTL, &e), IM_EBUSY);
    ASSERT(e == NULL);

    /* Using one frees a slot. */
    ASSERT_EQ(im_tokens_redeem(t, first->token, T0 + 11, &r), 0);
    ASSERT_EQ(im_tokens_issue(t, &o, 1, 1, T0 + 11, TTL, &e), 0);
    ASSERT_EQ(im_tokens_issue(t, &o, 1, 1, T0 + 11, TTL, &e), IM_EBUSY);

    /* Once the early ones expire, issuing prunes them and succeeds. */
    /* At T0 + TTL + 0.015 tokens 0 (used) and 1 (expired) are out. */
    ASSERT_EQ(im_tokens_issue(t, &o, 1, 1, T0 + TTL + 0.015, TTL, &e), 0);
    ASSERT_EQ(im_tokens_issue(t, &o, 1, 1, T0 + TTL + 20, TTL, &e), 0);
    ASSERT(im_tokens_pending(t, T0 + TTL + 20) < IM_TOKENS_MAX_PENDING);
    im_tokens_free(t);
}

TEST(tokens_prune_keeps_used_for_a_day) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *a = issue_at(t, &o, T0), *b = issue_at(t, &o, T0), *r = NULL;
    char a_tok[IM_TOKEN_LEN + 1], b_tok[IM_TOKEN_LEN + 1];
    int n;

    memcpy(a_tok, a->token, sizeof a_tok);
    memcpy(b_tok, b->token, sizeof b_tok);
    ASSERT_EQ(im_tokens_redeem(t, a_tok, T0 + 10, &r), 0);

    /* Pending tokens survive a prune. */
    im_tokens_prune(t, T0 + 60);
    n = 0;
    im_tokens_foreach(t, count_cb, &n);
    ASSERT_EQ(n, 2);

    /* b expires unused: pruned. a was used: kept. */
    im_tokens_prune(t, T0 + TTL);
    n = 0;
    im_tokens_foreach(t, count_cb, &n);
    ASSERT_EQ(n, 1);
    ASSERT_EQ(im_tokens_redeem(t, b_tok, T0 + TTL, &r), IM_ETOKEN_UNKNOWN);

    /* Exactly a day after use it is still remembered... */
    im_tokens_prune(t, T0 + 10 + 86400);
    ASSERT_EQ(im_tokens_redeem(t, a_tok, T0 + 10 + 86400, &r), IM_ETOKEN_USED);
    ASSERT(r == a);

    /* ...and forgotten just after. */
    im_tokens_prune(t, T0 + 10 + 86400.001);
    n = 0;
    im_tokens_foreach(t, count_cb, &n);
    ASSERT_EQ(n, 0);
    ASSERT_EQ(im_tokens_redeem(t, a_tok, T0 + 10 + 86400.001, &r), IM_ETOKEN_UNKNOWN);

    /* The store is still usable. */
    issue_at(t, &o, T0 + 90000);
    im_tokens_free(t);
}

TEST(tokens_issue_prunes_dead_entries) {
    im_tokens *t = new_store();
    im_order o = nvda();
    int n = 0;
    for (int i = 0; i < 100; i++)
        issue_at(t, &o, T0 + i * 1000.0); /* each one expired before the next */
    im_tokens_foreach(t, count_cb, &n);
    ASSERT_EQ(n, 1);
    im_tokens_free(t);
}

TEST(tokens_pending_count) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *a, *b, *c, *r = NULL;

    ASSERT_EQ(im_tokens_pending(t, T0), 0);
    a = issue_at(t, &o, T0);
    b = issue_at(t, &o, T0 + 30);
    c = issue_at(t, &o, T0 + 60);
    (void)c;
    ASSERT_EQ(im_tokens_pending(t, T0 + 60), 3);
    ASSERT_EQ(im_tokens_redeem(t, b->token, T0 + 61, &r), 0);
    ASSERT_EQ(im_tokens_pending(t, T0 + 61), 2);
    ASSERT_EQ(im_tokens_pending(t, T0 + TTL), 1);      /* a expired */
    ASSERT_EQ(im_tokens_pending(t, T0 + 60 + TTL), 0); /* c expired */
    /* Pending is a pure count: nothing was removed. */
    ASSERT_EQ(im_tokens_pending(t, T0 + 61), 2);
    ASSERT(a->token[0] != '\0');
    im_tokens_free(t);
}

/* ---- foreach ------------------------------------------------------------- */

typedef struct visit {
    int n;
    double issued[16];
    int used[16];
} visit;

static void visit_cb(void *ud, const im_token_entry *e) {
    visit *v = ud;
    if (v->n < 16) {
        v->issued[v->n] = e->issued_at;
        v->used[v->n] = e->used;
    }
    v->n++;
}

TEST(tokens_foreach_oldest_first) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *e[5], *r = NULL;
    visit v;

    for (int i = 0; i < 5; i++)
        e[i] = issue_at(t, &o, T0 + i * 10.0);
    ASSERT_EQ(im_tokens_redeem(t, e[1]->token, T0 + 50, &r), 0);

    memset(&v, 0, sizeof v);
    im_tokens_foreach(t, visit_cb, &v);
    ASSERT_EQ(v.n, 5);
    for (int i = 0; i < 5; i++)
        ASSERT_NEAR(v.issued[i], T0 + i * 10.0, 0);
    ASSERT_EQ(v.used[1], 1);
    ASSERT_EQ(v.used[0], 0);

    /* At T0 + 125 token 0 (expired at 120) goes; 1 (used) stays; 2, 3, 4
     * are pending. The order survives the prune. */
    im_tokens_prune(t, T0 + 125);
    memset(&v, 0, sizeof v);
    im_tokens_foreach(t, visit_cb, &v);
    ASSERT_EQ(v.n, 4);
    ASSERT_NEAR(v.issued[0], T0 + 10, 0);
    ASSERT_NEAR(v.issued[1], T0 + 20, 0);
    ASSERT_NEAR(v.issued[2], T0 + 30, 0);
    ASSERT_NEAR(v.issued[3], T0 + 40, 0);
    ASSERT_EQ(v.used[0], 1);

    im_tokens_foreach(t, NULL, NULL);
    im_tokens_foreach(NULL, visit_cb, &v);
    im_tokens_free(t);
}

TEST(tokens_entries_never_move) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *first = issue_at(t, &o, T0), *r = NULL;
    char tok[IM_TOKEN_LEN + 1];
    memcpy(tok, first->token, sizeof tok);
    /* Enough issues to grow the index several times. */
    for (int i = 0; i < 600; i++)
        issue_at(t, &o, T0 + 1);
    ASSERT_STR_EQ(first->token, tok);
    ASSERT_NEAR(first->order.quantity, 50, 0);
    ASSERT_EQ(im_tokens_redeem(t, tok, T0 + 2, &r), 0);
    ASSERT(r == first);
    im_tokens_free(t);
}

/* ---- canonical text and hash --------------------------------------------- */

TEST(tokens_canonical_text) {
    static const struct { im_order o; const char *text; } cases[] = {
        {{"NVDA", IM_SIDE_BUY, 50, IM_OT_MKT, 0, 0, IM_TIF_DAY, ""},
         "BUY 50 NVDA MKT lmt=0 stp=0 DAY"},
        {{"BRK.B", IM_SIDE_SELL, 10, IM_OT_STP_LMT, 401.5, 402, IM_TIF_GTC, ""},
         "SELL 10 BRK.B STP LMT lmt=401.5 stp=402 GTC"},
        {{"TSLA", IM_SIDE_BUY, 400, IM_OT_LMT, 249.37, 0, IM_TIF_IOC, ""},
         "BUY 400 TSLA LMT lmt=249.37 stp=0 IOC"},
        {{"AAPL", IM_SIDE_SELL, 1000000000, IM_OT_STP, 0, 0.0001, IM_TIF_DAY, ""},
         "SELL 1000000000 AAPL STP lmt=0 stp=0.0001 DAY"},
        {{"AAPL", IM_SIDE_BUY, 1, IM_OT_LMT, 0.1 + 0.2, -0.0, IM_TIF_DAY, "ref"},
         "BUY 1 AAPL LMT lmt=0.30000000000000004 stp=0 DAY"},
        {{"A B", (im_side)0, 2.5, (im_order_type)9, 1e300, -1, (im_tif)-3, ""},
         "?0 2.5 A%20B ?9 lmt=1e+300 stp=-1 ?-3"},
        {{"A%", IM_SIDE_BUY, 1, IM_OT_MKT, 0, 0, IM_TIF_DAY, ""},
         "BUY 1 A%25 MKT lmt=0 stp=0 DAY"},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = im_tokens_canonical(&cases[i].o, buf, sizeof buf);
        ASSERT_STR_EQ(buf, cases[i].text);
        ASSERT_EQ(n, strlen(cases[i].text));
        /* Stable: the same text every time. */
        im_tokens_canonical(&cases[i].o, buf, sizeof buf);
        ASSERT_STR_EQ(buf, cases[i].text);
    }
}

TEST(tokens_canonical_edge_cases) {
    im_order o = nvda();
    char small[8];
    int n;

    /* snprintf rules: the full length is returned, the text truncated. */
    n = im_tokens_canonical(&o, small, sizeof small);
    ASSERT_EQ(n, strlen("BUY 50 NVDA MKT lmt=0 stp=0 DAY"));
    ASSERT_STR_EQ(small, "BUY 50 ");
    ASSERT_EQ(im_tokens_canonical(&o, NULL, 0), n);

    /* A symbol field with no terminator is read to its size only. */
    memset(o.symbol, 'Z', sizeof o.symbol);
    {
        char buf[256];
        im_tokens_canonical(&o, buf, sizeof buf);
        ASSERT_STR_EQ(buf, "BUY 50 ZZZZZZZZZZZZZZZZ MKT lmt=0 stp=0 DAY");
    }
    ASSERT_EQ(im_tokens_canonical(NULL, small, sizeof small), -1);
    ASSERT_STR_EQ(small, "");
}

TEST(tokens_hash_known_answers) {
    /* Expected values from Python: hashlib.blake2b(text, digest_size=32). */
    im_order a = nvda();
    im_order b = make_order("BRK.B", IM_SIDE_SELL, 10, IM_OT_STP_LMT, 401.5, 402, IM_TIF_GTC);
    unsigned char h[IM_TOKEN_HASH_LEN];
    char hex[2 * IM_TOKEN_HASH_LEN + 1];

    ASSERT_EQ(im_tokens_hash_order(&a, h), 0);
    hex_of(h, sizeof h, hex);
    ASSERT_STR_EQ(hex, "62bb71ad924f0b284920b58cc8229c84772e90795783701321251147f8be8e6c");
    ASSERT_EQ(im_tokens_hash_order(&b, h), 0);
    hex_of(h, sizeof h, hex);
    ASSERT_STR_EQ(hex, "f964dc66aff4cdec835cd1aa285fb090f1d5680f7732cbcb094f2bde3593957d");

    ASSERT_EQ(im_tokens_hash_order(NULL, h), IM_EINVAL);
    ASSERT_EQ(im_tokens_hash_order(&a, NULL), IM_EINVAL);
}

TEST(tokens_hash_differs_per_field) {
    im_order base = make_order("NVDA", IM_SIDE_BUY, 50, IM_OT_STP_LMT, 101, 100, IM_TIF_DAY);
    unsigned char h0[IM_TOKEN_HASH_LEN], h[IM_TOKEN_HASH_LEN];

    ASSERT_EQ(im_tokens_hash_order(&base, h0), 0);
    for (int field = 0; field < 12; field++) {
        im_order o = base;
        switch (field) {
        case 0: o.quantity = 51; break;
        case 1: o.quantity = 50.5; break;
        case 2: snprintf(o.symbol, sizeof o.symbol, "NVD"); break;
        case 3: snprintf(o.symbol, sizeof o.symbol, "NVDA."); break;
        case 4: o.side = IM_SIDE_SELL; break;
        case 5: o.type = IM_OT_LMT; break;
        case 6: o.type = IM_OT_STP; break;
        case 7: o.limit_price = 101.00000001; break;
        case 8: o.stop_price = 100.01; break;
        case 9: o.tif = IM_TIF_IOC; break;
        case 10: /* the same two prices, swapped */
            o.limit_price = 100;
            o.stop_price = 101;
            break;
        case 11: o.side = (im_side)7; break;
        }
        ASSERT_EQ(im_tokens_hash_order(&o, h), 0);
        if (memcmp(h, h0, sizeof h) == 0)
            im_test_fail(__FILE__, __LINE__, "field %d does not change the hash", field);
    }
    /* Equal orders hash equal, whatever lies in the unused symbol bytes or
     * in order_ref; -0 and 0 are the same price. */
    {
        im_order o = base;
        memset(o.symbol, 'x', sizeof o.symbol);
        snprintf(o.symbol, sizeof o.symbol, "NVDA");
        snprintf(o.order_ref, sizeof o.order_ref, "anything");
        ASSERT_EQ(im_tokens_hash_order(&o, h), 0);
        ASSERT(memcmp(h, h0, sizeof h) == 0);
    }
    {
        im_order p = make_order("NVDA", IM_SIDE_BUY, 50, IM_OT_MKT, 0, 0, IM_TIF_DAY);
        im_order q = p;
        unsigned char hp[IM_TOKEN_HASH_LEN];
        q.limit_price = -0.0;
        ASSERT_EQ(im_tokens_hash_order(&p, hp), 0);
        ASSERT_EQ(im_tokens_hash_order(&q, h), 0);
        ASSERT(memcmp(h, hp, sizeof h) == 0);
    }
}

TEST(tokens_symbol_escape_prevents_collision) {
    /* Without escaping, "A STP" + LMT and "A" + STP LMT would read the
     * same: "BUY 1 A STP LMT lmt=...". */
    im_order x = make_order("A STP", IM_SIDE_BUY, 1, IM_OT_LMT, 5, 0, IM_TIF_DAY);
    im_order y = make_order("A", IM_SIDE_BUY, 1, IM_OT_STP_LMT, 5, 0, IM_TIF_DAY);
    unsigned char hx[IM_TOKEN_HASH_LEN], hy[IM_TOKEN_HASH_LEN];
    ASSERT_EQ(im_tokens_hash_order(&x, hx), 0);
    ASSERT_EQ(im_tokens_hash_order(&y, hy), 0);
    ASSERT(memcmp(hx, hy, sizeof hx) != 0);
}

/* ---- arguments and failures ---------------------------------------------- */

TEST(tokens_bad_arguments) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *e = NULL, *r = NULL;
    static const double bad_ttl[] = {0, -0.0, -1, NAN, INFINITY, -INFINITY};

    for (size_t i = 0; i < sizeof bad_ttl / sizeof bad_ttl[0]; i++) {
        e = (im_token_entry *)1;
        ASSERT_EQ(im_tokens_issue(t, &o, 1, 1, T0, bad_ttl[i], &e), IM_EINVAL);
        ASSERT(e == NULL);
    }
    ASSERT_EQ(im_tokens_issue(t, &o, 1, 1, NAN, TTL, &e), IM_EINVAL);
    ASSERT_EQ(im_tokens_issue(NULL, &o, 1, 1, T0, TTL, &e), IM_EINVAL);
    ASSERT_EQ(im_tokens_issue(t, NULL, 1, 1, T0, TTL, &e), IM_EINVAL);
    ASSERT_EQ(im_tokens_issue(t, &o, 1, 1, T0, TTL, NULL), IM_EINVAL);
    ASSERT_EQ(im_tokens_pending(t, T0), 0);

    e = issue_at(t, &o, T0);
    ASSERT_EQ(im_tokens_redeem(t, e->token, T0, NULL), IM_EINVAL);
    ASSERT_EQ(im_tokens_redeem(NULL, e->token, T0, &r), IM_EINVAL);
    ASSERT_EQ(e->used, 0);
    /* A NaN clock never redeems. */
    ASSERT_EQ(im_tokens_redeem(t, e->token, NAN, &r), IM_ETOKEN_UNKNOWN);
    ASSERT_EQ(e->used, 0);

    ASSERT_EQ(im_tokens_new(NULL), IM_EINVAL);
    ASSERT_EQ(im_tokens_pending(NULL, T0), 0);
    im_tokens_prune(NULL, T0);
    im_tokens_prune(t, NAN); /* ignored */
    ASSERT_EQ(im_tokens_pending(t, T0), 1);
    im_tokens_free(NULL);
    im_tokens_free(t);
}

TEST(tokens_getrandom_failure) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *e = (im_token_entry *)1;
    int n = 0;

    rng_mode = RNG_FAIL;
    ASSERT_EQ(im_tokens_issue(t, &o, 1, 1, T0, TTL, &e), IM_EIO);
    rng_mode = RNG_REAL;
    ASSERT(e == NULL);
    ASSERT_EQ(im_tokens_pending(t, T0), 0);
    im_tokens_foreach(t, count_cb, &n);
    ASSERT_EQ(n, 0);
    /* The store recovers with the entropy source. */
    issue_at(t, &o, T0);
    im_tokens_free(t);
}

TEST(tokens_getrandom_interrupted_and_short) {
    im_tokens *t = new_store();
    im_order o = nvda();
    im_token_entry *e, *r = NULL;

    rng_calls = 0;
    rng_mode = RNG_EINTR_ONCE; /* one EINTR, then 3 bytes per call */
    e = issue_at(t, &o, T0);
    rng_mode = RNG_REAL;
    ASSERT(is_token(e->token));
    ASSERT(rng_calls >= 1 + 6); /* 16 bytes in 3-byte reads */
    ASSERT_EQ(im_tokens_redeem(t, e->token, T0, &r), 0);
    im_tokens_free(t);
}
