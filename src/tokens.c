/* tokens.c: the confirmation-token store (tokens.h).
 *
 * Provides issue, redeem, prune and inspection of single-use confirmation
 * tokens. A token is 16 bytes from getrandom(2) printed as 32 lower-case hex
 * digits; its entry keeps a copy of the order and the BLAKE2b-256 hash of
 * the order's canonical text, so an order changed after the preview (through
 * the entry pointer or anywhere else) no longer redeems.
 *
 * Uses libsodium (crypto_generichash for BLAKE2b, sodium_memcmp for
 * constant-time comparison), getrandom(2) and broker.h (order, enum names).
 *
 * Lifetimes. Entries are allocated one by one and never move, so a pointer
 * handed out by issue or redeem stays valid while its entry is kept. An
 * entry is freed only by im_tokens_free, or by a prune (im_tokens_prune, and
 * the prune im_tokens_issue runs first) once it is dead: expired without
 * being used, or used more than a day (TOKENS_KEEP_USED_S) ago. Do not
 * keep a pointer to an entry past either of those points.
 *
 * Tampering. A redeem whose order no longer matches its hash burns the
 * token (its lifetime ends at that moment): it answers "unknown" then and
 * ever after, never "used", because it placed nothing.
 *
 * Single use. Redeeming runs to completion without yielding (the store is
 * owned by the one loop thread), and the entry is marked used before
 * redeem returns, so of any number of place calls with one token exactly
 * one gets 0. */
#include "tokens.h"

#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "error.h"

/* Used tokens are remembered this long, so a replay the next morning is
 * still told which order the token placed instead of "unknown". */
#define TOKENS_KEEP_USED_S 86400.0
#define TOKENS_RANDOM_BYTES 16

struct im_tokens {
    im_token_entry **v;  /* oldest first; each entry its own allocation */
    size_t n, cap;
};

/* sodium_init is idempotent and cheap after the first call, but it can
 * fail (no entropy source), so every entry point that hashes checks it. */
static int tokens_sodium_ready(void) {
    static int ready;
    if (!ready) {
        if (sodium_init() < 0)
            return 0;
        ready = 1;
    }
    return 1;
}

int im_tokens_new(im_tokens **out) {
    im_tokens *t;
    if (out == NULL)
        return IM_EINVAL;
    *out = NULL;
    if (!tokens_sodium_ready())
        return IM_EIO;
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return IM_ENOMEM;
    *out = t;
    return 0;
}

void im_tokens_free(im_tokens *t) {
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        /* The order copy is not secret, but the token is: wipe it. */
        sodium_memzero(t->v[i]->token, sizeof t->v[i]->token);
        free(t->v[i]);
    }
    free(t->v);
    free(t);
}

/* ---- canonical form and hash --------------------------------------------- */

/* Decimal text that reads back as exactly v, so equal orders give equal
 * text and different values never share one: whole numbers below 1e17 in
 * plain digits ("50", not "5e+01"), anything else as the shortest %g that
 * round-trips ("249.37", not "249.37000000000001"). -0 is written as 0: the
 * two are the same price. */
static void tokens_fmt_num(double v, char *out, size_t outlen) {
    if (v == 0)
        v = 0;
    if (isfinite(v) && fabs(v) < 1e17 && v == floor(v)) {
        snprintf(out, outlen, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, v);
        if (!isfinite(v) || strtod(out, NULL) == v)
            return;
    }
}

/* The symbol field as text, with every byte outside [A-Za-z0-9.] written
 * as %XX, so the symbol can never contain the spaces that separate the
 * fields. Reads at most IM_SYMBOL_MAX bytes, terminated or not. */
static void tokens_fmt_symbol(const char *s, char *out, size_t outlen) {
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strnlen(s, IM_SYMBOL_MAX), j = 0;
    for (size_t i = 0; i < n && j + 4 <= outlen; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '.') {
            out[j++] = (char)ch;
        } else {
            out[j++] = '%';
            out[j++] = hex[ch >> 4];
            out[j++] = hex[ch & 15];
        }
    }
    out[j] = '\0';
}

/* Enum names, or "?<number>" for a value outside the enum so that two
 * different unknown values still give different text. */
static void tokens_fmt_enum(const char *name, int v, char *out, size_t outlen) {
    if (strcmp(name, "?") == 0)
        snprintf(out, outlen, "?%d", v);
    else
        snprintf(out, outlen, "%s", name);
}

/* Canonical text: "SIDE QTY SYMBOL TYPE lmt=LIMIT stp=STOP TIF", e.g.
 * "BUY 50 NVDA MKT lmt=0 stp=0 DAY" or "SELL 10 BRK.B STP LMT lmt=401.5
 * stp=402 GTC". Numbers are the shortest text that reads back exactly;
 * the symbol is %XX-escaped outside [A-Za-z0-9.]. The only field that may
 * contain a space is the type ("STP LMT"), and it is followed by the fixed
 * " lmt=", so the text parses back to one order only. order_ref is not part
 * of it: it is derived from the confirmation after issue. */
int im_tokens_canonical(const im_order *o, char *buf, size_t len) {
    char qty[32], lmt[32], stp[32], sym[IM_SYMBOL_MAX * 3 + 1];
    char side[16], type[16], tif[16];

    if (o == NULL) {
        if (buf != NULL && len > 0)
            buf[0] = '\0';
        return -1;
    }
    tokens_fmt_num(o->quantity, qty, sizeof qty);
    tokens_fmt_num(o->limit_price, lmt, sizeof lmt);
    tokens_fmt_num(o->stop_price, stp, sizeof stp);
    tokens_fmt_symbol(o->symbol, sym, sizeof sym);
    tokens_fmt_enum(im_side_str(o->side), (int)o->side, side, sizeof side);
    tokens_fmt_enum(im_order_type_str(o->type), (int)o->type, type, sizeof type);
    tokens_fmt_enum(im_tif_str(o->tif), (int)o->tif, tif, sizeof tif);
    return snprintf(buf, buf != NULL ? len : 0, "%s %s %s %s lmt=%s stp=%s %s", side, qty, sym,
                    type, lmt, stp, tif);
}

int im_tokens_hash_order(const im_order *o, unsigned char out[IM_TOKEN_HASH_LEN]) {
    char text[256];
    int n;

    if (o == NULL || out == NULL)
        return IM_EINVAL;
    if (!tokens_sodium_ready())
        return IM_EIO;
    n = im_tokens_canonical(o, text, sizeof text);
    if (n < 0 || (size_t)n >= sizeof text)
        return IM_EIO; /* cannot happen: every field is bounded */
    if (crypto_generichash(out, IM_TOKEN_HASH_LEN, (const unsigned char *)text, (size_t)n,
                           NULL, 0) != 0)
        return IM_EIO;
    return 0;
}

/* ---- randomness ---------------------------------------------------------- */

/* Fills buf from getrandom(2), retrying after a signal and after a short
 * read. Returns 0 or IM_EIO. */
static int tokens_random(unsigned char *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t r = getrandom(buf + got, len - got, 0);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            return IM_EIO;
        }
        got += (size_t)r;
    }
    return 0;
}

static void tokens_hex(const unsigned char *b, size_t n, char *out) {
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- the store ----------------------------------------------------------- */

static int tokens_pending_at(const im_token_entry *e, double now) {
    return !e->used && now < e->expires_at;
}

static int tokens_dead_at(const im_token_entry *e, double now) {
    if (!e->used)
        return !(now < e->expires_at);
    return now - e->used_at > TOKENS_KEEP_USED_S;
}

/* The entry whose token equals tok (exactly IM_TOKEN_LEN bytes), or NULL.
 * Each comparison is constant-time, so the time taken reveals nothing
 * about how much of a guess was right. */
static im_token_entry *tokens_find(const im_tokens *t, const char *tok) {
    for (size_t i = 0; i < t->n; i++)
        if (sodium_memcmp(t->v[i]->token, tok, IM_TOKEN_LEN) == 0)
            return t->v[i];
    return NULL;
}

/* 1 when tok is exactly IM_TOKEN_LEN lower-case hex digits. Reads at most
 * IM_TOKEN_LEN + 1 bytes, so an unterminated or huge input is cheap. */
static int tokens_well_formed(const char *tok) {
    if (tok == NULL || strnlen(tok, IM_TOKEN_LEN + 1) != IM_TOKEN_LEN)
        return 0;
    for (size_t i = 0; i < IM_TOKEN_LEN; i++)
        if (!((tok[i] >= '0' && tok[i] <= '9') || (tok[i] >= 'a' && tok[i] <= 'f')))
            return 0;
    return 1;
}

int im_tokens_issue(im_tokens *t, const im_order *o, double reference_price, double notional,
                    double now, double ttl, im_token_entry **out) {
    unsigned char raw[TOKENS_RANDOM_BYTES];
    im_token_entry *e;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (t == NULL || o == NULL || out == NULL || !isfinite(now))
        return IM_EINVAL;
    if (!isfinite(ttl) || ttl <= 0)
        return IM_EINVAL;

    /* Forget dead entries first, so the store stays bounded by what is
     * live even if the caller never prunes. */
    im_tokens_prune(t, now);
    if (im_tokens_pending(t, now) >= IM_TOKENS_MAX_PENDING)
        return IM_EBUSY;

    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        im_token_entry **v = realloc(t->v, cap * sizeof *v);
        if (v == NULL)
            return IM_ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return IM_ENOMEM;
    e->order = *o;
    rc = im_tokens_hash_order(&e->order, e->order_hash);
    if (rc != 0) {
        free(e);
        return rc;
    }
    /* A collision among 128-bit tokens will not happen; drawing again if it
     * did costs one comparison per entry and removes the question. */
    do {
        if (tokens_random(raw, sizeof raw) != 0) {
            free(e);
            return IM_EIO;
        }
        tokens_hex(raw, sizeof raw, e->token);
    } while (tokens_find(t, e->token) != NULL);
    sodium_memzero(raw, sizeof raw);

    e->reference_price = reference_price;
    e->notional = notional;
    e->issued_at = now;
    e->expires_at = now + ttl;
    t->v[t->n++] = e;
    *out = e;
    return 0;
}

int im_tokens_redeem(im_tokens *t, const char *token, double now, im_token_entry **out) {
    unsigned char hash[IM_TOKEN_HASH_LEN];
    im_token_entry *e;

    if (out != NULL)
        *out = NULL;
    if (t == NULL || out == NULL)
        return IM_EINVAL;
    if (!tokens_well_formed(token))
        return IM_ETOKEN_UNKNOWN;
    e = tokens_find(t, token);
    if (e == NULL)
        return IM_ETOKEN_UNKNOWN;
    /* Used first: a replay, even after the lifetime, names the order. */
    if (e->used) {
        *out = e;
        return IM_ETOKEN_USED;
    }
    if (!(now < e->expires_at))
        return IM_ETOKEN_UNKNOWN;
    if (im_tokens_hash_order(&e->order, hash) != 0 ||
        sodium_memcmp(hash, e->order_hash, IM_TOKEN_HASH_LEN) != 0) {
        /* The order no longer matches what was previewed. Burn the token
         * by ending its life now: it can never be redeemed again, even if
         * the order is changed back, and a replay is "unknown" rather than
         * "used" (it placed nothing). The next prune frees it. */
        e->expires_at = now;
        return IM_ETOKEN_UNKNOWN;
    }
    e->used = 1;
    e->used_at = now;
    *out = e;
    return 0;
}

void im_tokens_prune(im_tokens *t, double now) {
    size_t j = 0;
    if (t == NULL || !isfinite(now))
        return;
    for (size_t i = 0; i < t->n; i++) {
        im_token_entry *e = t->v[i];
        if (tokens_dead_at(e, now)) {
            sodium_memzero(e->token, sizeof e->token);
            free(e);
        } else {
            t->v[j++] = e; /* keeps the oldest-first order */
        }
    }
    t->n = j;
}

size_t im_tokens_pending(const im_tokens *t, double now) {
    size_t n = 0;
    if (t == NULL)
        return 0;
    for (size_t i = 0; i < t->n; i++)
        n += (size_t)tokens_pending_at(t->v[i], now);
    return n;
}

/* fn must not issue, redeem or prune on t while it runs. */
void im_tokens_foreach(const im_tokens *t, void (*fn)(void *ud, const im_token_entry *e),
                       void *ud) {
    if (t == NULL || fn == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        fn(ud, t->v[i]);
}
