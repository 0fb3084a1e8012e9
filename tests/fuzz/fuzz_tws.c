/* fuzz_tws.c: libFuzzer target for the TWS wire codec (tws_codec.h). The
 * input is a header then the bytes a peer sends:
 *   byte 0       bit 0: a server reader (the "API\0" prefix comes first);
 *   byte 1       how many split points follow (0..15);
 *   next k bytes the size of each read (0..255);
 *   the rest     the stream, fed read by read, the tail in one last read.
 * The frames (and the final status) must not depend on how the stream was
 * read: a second reader gets it in one piece and both are compared. Every
 * frame then goes through every getter and every structured decoder (with
 * the message id forced to the decoder's own), and whatever decodes
 * without error is written again and must decode to the same values. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tws_codec.h"

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "fuzz_tws: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* Frames as the one-piece reader saw them. */
typedef struct frames {
    char *data;     /* payloads back to back */
    size_t *off, *len;
    int *id;
    size_t n, cap, used;
    int rc;         /* the status that ended the stream: 0 or an error */
    int prefix_rc, lo, hi;
    char opts[32];
} frames;

static void frames_add(frames *f, int id, const char *p, size_t n) {
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 16;
        f->off = realloc(f->off, f->cap * sizeof *f->off);
        f->len = realloc(f->len, f->cap * sizeof *f->len);
        f->id = realloc(f->id, f->cap * sizeof *f->id);
        CHECK(f->off && f->len && f->id);
    }
    f->id[f->n] = id;
    f->data = realloc(f->data, f->used + n + 1);
    CHECK(f->data);
    memcpy(f->data + f->used, p, n);
    f->off[f->n] = f->used;
    f->len[f->n] = n;
    f->used += n;
    f->n++;
}

/* Takes whatever the reader holds: the prefix first when it is a server
 * reader, then frames. Returns 1 while the stream is still usable. */
static int drain(im_tws_reader *r, frames *f, int *have_prefix) {
    im_tws_msg m;
    int rc;
    if (!*have_prefix) {
        rc = im_tws_reader_prefix(r, &f->lo, &f->hi, f->opts, sizeof f->opts);
        if (rc < 0) {
            f->prefix_rc = rc;
            return 0;
        }
        if (rc == 0)
            return 1;
        CHECK(f->lo > 0 && f->lo <= f->hi);
        CHECK(strlen(f->opts) < sizeof f->opts);
        f->prefix_rc = 1;
        *have_prefix = 1;
    }
    while ((rc = im_tws_reader_next(r, &m)) == 1) {
        /* A view covers a NUL-terminated payload inside the buffer. */
        CHECK(m.end >= m.p);
        CHECK(m.p >= r->buf && m.end <= r->buf + r->len);
        CHECK(m.end[-1] == '\0');
        /* The view starts after the id: keep the id and the rest. */
        frames_add(f, m.id, m.p, (size_t)(m.end - m.p));
    }
    if (rc < 0) {
        f->rc = rc;
        return 0;
    }
    return 1;
}

/* Reads the stream into f, in the given reads. */
static void read_stream(const char *data, size_t len, int server, const uint8_t *splits,
                        size_t nsplit, frames *f) {
    im_tws_reader r;
    size_t off = 0;
    int have_prefix = !server, alive = 1;
    im_tws_reader_init(&r, server);
    for (size_t i = 0; i <= nsplit && alive; i++) {
        size_t n = i < nsplit ? splits[i] : len - off;
        if (n > len - off)
            n = len - off;
        CHECK(im_tws_reader_feed(&r, data + off, n) == 0);
        off += n;
        alive = drain(&r, f, &have_prefix);
    }
    im_tws_reader_free(&r);
}

/* ---- decoding every frame every way ---- */

static int valid_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p, n;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            n = 1;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 2;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 3;
        else
            return 0;
        {
            unsigned cp = c & (0x3F >> n);
            for (unsigned i = 1; i <= n; i++) {
                if ((p[i] & 0xC0) != 0x80)
                    return 0;
                cp = cp << 6 | (p[i] & 0x3F);
            }
            if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
                (cp >= 0xD800 && cp <= 0xDFFF))
                return 0;
        }
        p += n + 1;
    }
    return 1;
}

/* Doubles compare equal, or the first was not finite (written as ""). */
static int same_dbl(double a, double b, double unset) {
    if (!isfinite(a))
        return b == unset;
    return a == b;
}

static im_tws_msg reencoded(im_tws_writer *w, int id) {
    im_tws_msg m;
    CHECK(im_tws_writer_error(w) == 0);
    CHECK(w->len >= 4);
    CHECK(im_tws_msg_init(&m, w->data + 4, w->len - 4) == 0);
    CHECK(m.id == id);
    return m;
}

static void contract_same(const im_tws_contract *a, const im_tws_contract *b, int primary) {
    CHECK(a->con_id == b->con_id);
    CHECK(strcmp(a->symbol, b->symbol) == 0);
    CHECK(strcmp(a->sec_type, b->sec_type) == 0);
    CHECK(strcmp(a->last_trade, b->last_trade) == 0);
    CHECK(same_dbl(a->strike, b->strike, 0));
    CHECK(strcmp(a->right, b->right) == 0);
    CHECK(strcmp(a->multiplier, b->multiplier) == 0);
    CHECK(strcmp(a->exchange, b->exchange) == 0);
    if (primary)
        CHECK(strcmp(a->primary_exch, b->primary_exch) == 0);
    CHECK(strcmp(a->currency, b->currency) == 0);
    CHECK(strcmp(a->local_symbol, b->local_symbol) == 0);
    CHECK(strcmp(a->trading_class, b->trading_class) == 0);
}

static void order_same(const im_tws_order *a, const im_tws_order *b, int open) {
    contract_same(&a->contract, &b->contract, !open);
    CHECK(a->order_id == b->order_id);
    CHECK(strcmp(a->action, b->action) == 0);
    CHECK(same_dbl(a->total_qty, b->total_qty, IM_TWS_UNSET_DBL));
    CHECK(strcmp(a->order_type, b->order_type) == 0);
    CHECK(same_dbl(a->lmt_price, b->lmt_price, IM_TWS_UNSET_DBL));
    CHECK(same_dbl(a->aux_price, b->aux_price, IM_TWS_UNSET_DBL));
    CHECK(strcmp(a->tif, b->tif) == 0);
    CHECK(strcmp(a->account, b->account) == 0);
    CHECK(strcmp(a->order_ref, b->order_ref) == 0);
    CHECK(a->transmit == b->transmit || open);
    CHECK(a->parent_id == b->parent_id);
    CHECK(a->outside_rth == b->outside_rth);
    if (open) {
        CHECK(a->client_id == b->client_id);
        CHECK(a->perm_id == b->perm_id);
    }
}

static void decode_all(const char *payload, size_t len) {
    im_tws_msg m0, m;
    im_tws_writer w;
    int rc;

    if (im_tws_msg_init(&m0, payload, len) != 0)
        abort();   /* the reader handed out a payload it should have refused */

    /* Every getter over every field. */
    for (int kind = 0; kind < 8; kind++) {
        char text[16];
        m = m0;
        while (im_tws_remaining(&m) > 0 && !m.err) {
            switch (kind) {
            case 0: CHECK(im_tws_get_str(&m) != NULL); break;
            case 1: im_tws_get_int(&m); break;
            case 2: im_tws_get_int_max(&m); break;
            case 3: CHECK(!isnan(im_tws_get_dbl(&m))); break;
            case 4: CHECK(!isnan(im_tws_get_dbl_max(&m))); break;
            case 5: {
                double d = im_tws_get_dec(&m);
                CHECK(d == IM_TWS_UNSET_DBL || isfinite(d));
                break;
            }
            case 6: im_tws_get_bool(&m); break;
            default:
                im_tws_get_text(&m, text, sizeof text);
                CHECK(strlen(text) < sizeof text);
                break;
            }
        }
        CHECK(im_tws_remaining(&m) >= 0);
        if (im_tws_finish(&m) == 0)
            CHECK(m.p == m.end && m.err == 0);
    }
    m = m0;
    im_tws_skip(&m, 1000000);
    CHECK(m.p == m.end);

    im_tws_writer_init(&w);
    {
        im_tws_order o, back;
        const char *why = NULL;
        m = m0;
        m.id = IM_TWS_OUT_PLACE_ORDER;
        rc = im_tws_get_place_order(&m, &o, &why);
        CHECK(rc == 0 || rc == IM_EPARSE || rc == IM_EINVAL);
        CHECK((rc == IM_EINVAL) == (why != NULL));
        if (rc == 0) {
            im_tws_put_place_order(&w, &o);
            m = reencoded(&w, IM_TWS_OUT_PLACE_ORDER);
            CHECK(im_tws_get_place_order(&m, &back, &why) == 0);
            order_same(&o, &back, 0);
        }
    }
    im_tws_writer_reset(&w);
    {
        im_tws_order o, back;
        char status[32], status2[32];
        m = m0;
        m.id = IM_TWS_IN_OPEN_ORDER;
        rc = im_tws_get_open_order(&m, &o, status, sizeof status);
        CHECK(rc == 0 || rc == IM_EPARSE);
        if (rc == 0) {
            im_tws_put_open_order(&w, &o, status);
            m = reencoded(&w, IM_TWS_IN_OPEN_ORDER);
            CHECK(im_tws_get_open_order(&m, &back, status2, sizeof status2) == 0);
            CHECK(strcmp(status, status2) == 0);
            order_same(&o, &back, 1);
        }
    }
    im_tws_writer_reset(&w);
    {
        im_tws_order_status s, back;
        m = m0;
        m.id = IM_TWS_IN_ORDER_STATUS;
        rc = im_tws_get_order_status(&m, &s);
        CHECK(rc == 0 || rc == IM_EPARSE);
        if (rc == 0) {
            im_tws_put_order_status(&w, &s);
            m = reencoded(&w, IM_TWS_IN_ORDER_STATUS);
            CHECK(im_tws_get_order_status(&m, &back) == 0);
            CHECK(s.order_id == back.order_id && strcmp(s.status, back.status) == 0);
            CHECK(same_dbl(s.filled, back.filled, IM_TWS_UNSET_DBL));
            CHECK(same_dbl(s.remaining, back.remaining, IM_TWS_UNSET_DBL));
            CHECK(same_dbl(s.avg_fill_price, back.avg_fill_price, 0));
            CHECK(s.perm_id == back.perm_id && s.parent_id == back.parent_id);
            CHECK(same_dbl(s.last_fill_price, back.last_fill_price, 0));
            CHECK(s.client_id == back.client_id && strcmp(s.why_held, back.why_held) == 0);
            CHECK(same_dbl(s.mkt_cap_price, back.mkt_cap_price, 0));
        }
    }
    im_tws_writer_reset(&w);
    {
        im_tws_execution e, back;
        m = m0;
        m.id = IM_TWS_IN_EXECUTION_DATA;
        rc = im_tws_get_execution(&m, &e);
        CHECK(rc == 0 || rc == IM_EPARSE);
        if (rc == 0) {
            im_tws_put_execution(&w, &e);
            m = reencoded(&w, IM_TWS_IN_EXECUTION_DATA);
            CHECK(im_tws_get_execution(&m, &back) == 0);
            contract_same(&e.contract, &back.contract, 0);
            CHECK(e.req_id == back.req_id && e.order_id == back.order_id);
            CHECK(strcmp(e.exec_id, back.exec_id) == 0 && strcmp(e.time, back.time) == 0);
            CHECK(strcmp(e.account, back.account) == 0);
            CHECK(strcmp(e.exchange, back.exchange) == 0 && strcmp(e.side, back.side) == 0);
            CHECK(same_dbl(e.shares, back.shares, IM_TWS_UNSET_DBL));
            CHECK(same_dbl(e.price, back.price, 0));
            CHECK(e.perm_id == back.perm_id && e.client_id == back.client_id);
            CHECK(e.liquidation == back.liquidation);
            CHECK(same_dbl(e.cum_qty, back.cum_qty, IM_TWS_UNSET_DBL));
            CHECK(same_dbl(e.avg_price, back.avg_price, 0));
            CHECK(strcmp(e.order_ref, back.order_ref) == 0);
            CHECK(e.last_liquidity == back.last_liquidity);
        }
    }
    im_tws_writer_reset(&w);
    {
        im_tws_commission c, back;
        m = m0;
        m.id = IM_TWS_IN_COMMISSION_REPORT;
        rc = im_tws_get_commission(&m, &c);
        CHECK(rc == 0 || rc == IM_EPARSE);
        if (rc == 0) {
            im_tws_put_commission(&w, &c);
            m = reencoded(&w, IM_TWS_IN_COMMISSION_REPORT);
            CHECK(im_tws_get_commission(&m, &back) == 0);
            CHECK(strcmp(c.exec_id, back.exec_id) == 0 && strcmp(c.currency, back.currency) == 0);
            CHECK(same_dbl(c.commission, back.commission, 0));
            /* put_dbl writes a non-finite value as "", read back as unset. */
            CHECK(same_dbl(c.realized_pnl, back.realized_pnl, IM_TWS_UNSET_DBL));
            CHECK(same_dbl(c.yield, back.yield, IM_TWS_UNSET_DBL));
            CHECK(c.yield_redemption_date == back.yield_redemption_date);
        }
    }
    im_tws_writer_reset(&w);
    {
        im_tws_contract_details d, back;
        m = m0;
        m.id = IM_TWS_IN_CONTRACT_DATA;
        rc = im_tws_get_contract_details(&m, &d);
        CHECK(rc == 0 || rc == IM_EPARSE);
        CHECK(rc != 0 || strlen(d.long_name) < sizeof d.long_name);
        /* Raw bytes that are not UTF-8 pass through the reader as they
         * are, but are written back as \ufffd, which reads back as three
         * bytes: such a text may not fit again, so only valid text is
         * required to survive the round trip. */
        if (rc == 0 && valid_utf8(d.long_name)) {
            im_tws_put_contract_details(&w, &d);
            m = reencoded(&w, IM_TWS_IN_CONTRACT_DATA);
            rc = im_tws_get_contract_details(&m, &back);
            CHECK(rc == 0);
            contract_same(&d.contract, &back.contract, 1);
            CHECK(d.req_id == back.req_id && strcmp(d.market_name, back.market_name) == 0);
            CHECK(same_dbl(d.min_tick, back.min_tick, 0));
            CHECK(strcmp(d.long_name, back.long_name) == 0);
            CHECK(strcmp(d.time_zone_id, back.time_zone_id) == 0);
            CHECK(strcmp(d.stock_type, back.stock_type) == 0);
        }
    }
    im_tws_writer_reset(&w);
    {
        long long id, id2;
        int code, code2;
        char text[256], text2[256];
        m = m0;
        m.id = IM_TWS_IN_ERR_MSG;
        rc = im_tws_get_error(&m, &id, &code, text, sizeof text);
        CHECK(rc == 0 || rc == IM_EPARSE);
        CHECK(rc != 0 || strlen(text) < sizeof text);
        if (rc == 0 && valid_utf8(text)) {   /* as for longName above */
            im_tws_put_error(&w, id, code, text);
            m = reencoded(&w, IM_TWS_IN_ERR_MSG);
            CHECK(im_tws_get_error(&m, &id2, &code2, text2, sizeof text2) == 0);
            CHECK(id == id2 && code == code2);
            CHECK(strcmp(text, text2) == 0);
        }
    }
    im_tws_writer_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    frames whole, parts;
    size_t nsplit;
    const char *stream;
    size_t len;
    int server;

    if (size < 2)
        return 0;
    server = data[0] & 1;
    nsplit = data[1] % 16;
    if (size < 2 + nsplit)
        return 0;
    stream = (const char *)data + 2 + nsplit;
    len = size - 2 - nsplit;

    memset(&whole, 0, sizeof whole);
    memset(&parts, 0, sizeof parts);
    read_stream(stream, len, server, NULL, 0, &whole);
    read_stream(stream, len, server, data + 2, nsplit, &parts);

    /* The same frames and the same end, however the bytes arrived. */
    CHECK(whole.prefix_rc == parts.prefix_rc);
    if (whole.prefix_rc == 1) {
        CHECK(whole.lo == parts.lo && whole.hi == parts.hi);
        CHECK(strcmp(whole.opts, parts.opts) == 0);
    }
    CHECK(whole.n == parts.n);
    CHECK(whole.rc == parts.rc);
    for (size_t i = 0; i < whole.n; i++) {
        CHECK(whole.id[i] == parts.id[i]);
        CHECK(whole.len[i] == parts.len[i]);
        CHECK(memcmp(whole.data + whole.off[i], parts.data + parts.off[i], whole.len[i]) == 0);
    }

    /* Every frame, decoded every way. The view covers the fields after the
     * id, so the payload is rebuilt with its id in front (exactly sized, so
     * ASan sees any read past it). */
    for (size_t i = 0; i < whole.n; i++) {
        char idtext[16];
        int k = snprintf(idtext, sizeof idtext, "%d", whole.id[i]);
        size_t n = whole.len[i];
        char *p = malloc((size_t)k + 1 + n);
        CHECK(p != NULL);
        memcpy(p, idtext, (size_t)k + 1);
        memcpy(p + k + 1, whole.data + whole.off[i], n);
        decode_all(p, (size_t)k + 1 + n);
        free(p);
    }
    free(whole.data);
    free(whole.off);
    free(whole.len);
    free(whole.id);
    free(parts.data);
    free(parts.off);
    free(parts.len);
    free(parts.id);
    return 0;
}
