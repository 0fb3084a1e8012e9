/* tokens.h: the confirmation-token store. A token is 128 bits from
 * getrandom(2), printed as 32 hex digits, single use, with a lifetime, and
 * bound to a BLAKE2b hash (libsodium) of the canonical order it was issued
 * for. Redeeming is atomic in the one loop thread: the entry is marked used
 * before anything can yield, so of any number of place calls with one token
 * exactly one proceeds. Used tokens are remembered (for a day) so a replay
 * is told which order the token placed. */
#ifndef IM_TOKENS_H
#define IM_TOKENS_H

#include <stddef.h>

#include "broker.h"

#define IM_TOKEN_LEN 32          /* hex digits */
#define IM_TOKEN_HASH_LEN 32     /* bytes */
#define IM_TOKENS_MAX_PENDING 1024

typedef struct im_token_entry {
    char token[IM_TOKEN_LEN + 1];
    unsigned char order_hash[IM_TOKEN_HASH_LEN];
    im_order order;
    double reference_price;   /* at preview */
    double notional;          /* at preview */
    double issued_at;
    double expires_at;
    int used;
    double used_at;
    /* Filled in by the session once the order exists. */
    char order_id[IM_ORDER_ID_MAX];
    im_order_status status;
} im_token_entry;

typedef struct im_tokens im_tokens;

/* Returns 0 and a new store in *out (free with im_tokens_free), or IM_ENOMEM. */
int im_tokens_new(im_tokens **out);
void im_tokens_free(im_tokens *t);

/* Issues a token for order o (pruning dead entries first, so the store
 * stays bounded). On success returns 0 and points *out at the store's
 * entry, owned by the store: it stays valid while the token is pending and
 * for a day after it is used; a prune after that frees it.
 * IM_EBUSY when IM_TOKENS_MAX_PENDING unexpired tokens are outstanding;
 * IM_EIO when getrandom fails; IM_EINVAL for a bad ttl. */
int im_tokens_issue(im_tokens *t, const im_order *o, double reference_price, double notional,
                    double now, double ttl, im_token_entry **out);

/* Redeems token at time now.
 *  0               the token was valid; it is now used; *out is its entry.
 *  IM_ETOKEN_USED  the token was already redeemed; *out is its entry, which
 *                  names the order it placed (order_id may still be empty
 *                  while that placement is in flight).
 *  IM_ETOKEN_UNKNOWN  never issued, malformed, expired, or its order no
 *                  longer matches its hash (such a token is burned: its
 *                  lifetime ends now); *out is NULL. */
int im_tokens_redeem(im_tokens *t, const char *token, double now, im_token_entry **out);

/* Forgets expired unused tokens and used tokens older than a day. */
void im_tokens_prune(im_tokens *t, double now);
/* Number of unexpired, unused tokens at time now. */
size_t im_tokens_pending(const im_tokens *t, double now);
/* Visits every entry (pending and used), oldest first. */
void im_tokens_foreach(const im_tokens *t, void (*fn)(void *ud, const im_token_entry *e),
                       void *ud);

/* Canonical text of an order ("BUY 50 NVDA MKT lmt=0 stp=0 DAY"), the
 * input of the binding hash. Returns the length written (snprintf rules). */
int im_tokens_canonical(const im_order *o, char *buf, size_t len);
/* BLAKE2b-256 of the canonical order. Returns 0 or IM_EIO. */
int im_tokens_hash_order(const im_order *o, unsigned char out[IM_TOKEN_HASH_LEN]);

#endif
