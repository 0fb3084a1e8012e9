/* test_tws_codec.c: the TWS wire codec (tws_codec.h) against byte-exact
 * vectors from reference/tws-protocol.md, round trips of every structured
 * message, fragmentation at every split point, and malformed input. */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>

#include "error.h"
#include "test.h"
#include "tws_codec.h"

/* ---- helpers ---- */

/* The payload of the writer's only frame (after its 4-byte length). */
static im_tws_msg one_msg(const im_tws_writer *w) {
    im_tws_msg m;
    uint32_t len;
    ASSERT(w->len >= 4);
    len = (uint32_t)(unsigned char)w->data[0] << 24 | (uint32_t)(unsigned char)w->data[1] << 16 |
          (uint32_t)(unsigned char)w->data[2] << 8 | (unsigned char)w->data[3];
    ASSERT_EQ(len, w->len - 4);
    ASSERT_EQ(im_tws_msg_init(&m, w->data + 4, len), 0);
    return m;
}

/* The index-th field (1-based, the id being #1) of a payload. */
static const char *field_at(const im_tws_writer *w, int index) {
    const char *p = w->data + 4, *end = w->data + w->len;
    for (int i = 1; i < index && p < end; i++)
        p += strlen(p) + 1;
    return p < end ? p : NULL;
}

/* Fields of a payload, the id included. */
static int field_count(const im_tws_writer *w) {
    im_tws_msg m = one_msg(w);
    return 1 + im_tws_remaining(&m);
}

/* Builds a payload from fields separated by '|' (each gets its NUL). */
static size_t payload(char *out, const char *fields) {
    size_t n = 0;
    for (const char *p = fields; *p; p++)
        out[n++] = *p == '|' ? '\0' : *p;
    out[n++] = '\0';
    return n;
}

static im_tws_contract aapl(void) {
    im_tws_contract c;
    memset(&c, 0, sizeof c);
    c.con_id = 265598;
    strcpy(c.symbol, "AAPL");
    strcpy(c.sec_type, "STK");
    strcpy(c.exchange, "SMART");
    strcpy(c.primary_exch, "NASDAQ");
    strcpy(c.currency, "USD");
    strcpy(c.local_symbol, "AAPL");
    strcpy(c.trading_class, "NMS");
    return c;
}

static im_tws_order aapl_buy_100_lmt_150(void) {
    im_tws_order o;
    im_tws_order_init(&o);
    o.order_id = 12;
    o.contract = aapl();
    strcpy(o.action, "BUY");
    o.total_qty = 100;
    strcpy(o.order_type, "LMT");
    o.lmt_price = 150;
    strcpy(o.tif, "DAY");
    strcpy(o.account, "DU1106896");
    strcpy(o.order_ref, "mcp-1");
    return o;
}

static void assert_contract_eq(const im_tws_contract *a, const im_tws_contract *b) {
    ASSERT_EQ(a->con_id, b->con_id);
    ASSERT_STR_EQ(a->symbol, b->symbol);
    ASSERT_STR_EQ(a->sec_type, b->sec_type);
    ASSERT_STR_EQ(a->last_trade, b->last_trade);
    ASSERT(a->strike == b->strike);
    ASSERT_STR_EQ(a->right, b->right);
    ASSERT_STR_EQ(a->multiplier, b->multiplier);
    ASSERT_STR_EQ(a->exchange, b->exchange);
    ASSERT_STR_EQ(a->primary_exch, b->primary_exch);
    ASSERT_STR_EQ(a->currency, b->currency);
    ASSERT_STR_EQ(a->local_symbol, b->local_symbol);
    ASSERT_STR_EQ(a->trading_class, b->trading_class);
}

/* ---- handshake ---- */

TEST(prefix_bytes_match_the_reference) {
    im_tws_writer w;
    im_tws_writer_init(&w);
    im_tws_put_prefix(&w, 100, 193);
    ASSERT_EQ(w.len, 17);
    ASSERT(memcmp(w.data, "API\0\0\0\0\x09v100..193", 17) == 0);
    im_tws_writer_reset(&w);
    im_tws_put_prefix(&w, IM_TWS_CLIENT_MIN, IM_TWS_VERSION);
    ASSERT_EQ(w.len, 17);
    ASSERT(memcmp(w.data, "API\0\0\0\0\x09v157..178", 17) == 0);
    im_tws_writer_reset(&w);
    im_tws_put_prefix(&w, 178, 178);
    ASSERT_EQ(w.len, 12);
    ASSERT(memcmp(w.data, "API\0\0\0\0\x04v178", 12) == 0);
    ASSERT_EQ(im_tws_writer_error(&w), 0);
    im_tws_writer_free(&w);
}

TEST(start_api_bytes_match_the_reference) {
    im_tws_writer w;
    im_tws_writer_init(&w);
    im_tws_begin(&w, IM_TWS_OUT_START_API);
    im_tws_put_int(&w, 2);
    im_tws_put_int(&w, 7);
    im_tws_put_str(&w, "");
    ASSERT_EQ(im_tws_end(&w), 0);
    ASSERT_EQ(w.len, 12);
    ASSERT(memcmp(w.data, "\0\0\0\x08" "71\0" "2\0" "7\0" "\0", 12) == 0);
    im_tws_writer_free(&w);
}

TEST(server_version_reply_round_trips) {
    im_tws_writer w;
    im_tws_reader r;
    im_tws_msg m;
    im_tws_writer_init(&w);
    im_tws_begin(&w, 178);   /* the first field is the version, not an id */
    im_tws_put_str(&w, "20230405 22:20:39 PST");
    ASSERT_EQ(im_tws_end(&w), 0);
    im_tws_reader_init(&r, 0);
    ASSERT_EQ(im_tws_reader_feed(&r, w.data, w.len), 0);
    ASSERT_EQ(im_tws_reader_next(&r, &m), 1);
    ASSERT_EQ(m.id, 178);
    ASSERT_STR_EQ(im_tws_get_str(&m), "20230405 22:20:39 PST");
    ASSERT_EQ(im_tws_finish(&m), 0);
    ASSERT_EQ(im_tws_reader_next(&r, &m), 0);
    im_tws_reader_free(&r);
    im_tws_writer_free(&w);
}

static int prefix_of(const char *bytes, size_t n, int *lo, int *hi, char *opts, size_t optslen) {
    im_tws_reader r;
    int rc;
    im_tws_reader_init(&r, 1);
    ASSERT_EQ(im_tws_reader_feed(&r, bytes, n), 0);
    rc = im_tws_reader_prefix(&r, lo, hi, opts, optslen);
    im_tws_reader_free(&r);
    return rc;
}

TEST(prefix_parser_accepts_ranges_single_versions_and_options) {
    int lo = 0, hi = 0;
    char opts[16];
    ASSERT_EQ(prefix_of("API\0\0\0\0\x09v100..193", 17, &lo, &hi, opts, sizeof opts), 1);
    ASSERT_EQ(lo, 100);
    ASSERT_EQ(hi, 193);
    ASSERT_STR_EQ(opts, "");
    ASSERT_EQ(prefix_of("API\0\0\0\0\x04v178", 12, &lo, &hi, opts, sizeof opts), 1);
    ASSERT_EQ(lo, 178);
    ASSERT_EQ(hi, 178);
    ASSERT_EQ(prefix_of("API\0\0\0\0\x12v100..178 +PACEAPI", 26, &lo, &hi, opts, sizeof opts), 1);
    ASSERT_EQ(lo, 100);
    ASSERT_EQ(hi, 178);
    ASSERT_STR_EQ(opts, "+PACEAPI");
    /* Options are cut to the caller's buffer. */
    ASSERT_EQ(prefix_of("API\0\0\0\0\x12v100..178 +PACEAPI", 26, &lo, &hi, opts, 4), 1);
    ASSERT_STR_EQ(opts, "+PA");
    ASSERT_EQ(prefix_of("API\0\0\0\0\x12v100..178 +PACEAPI", 26, NULL, NULL, NULL, 0), 1);
}

TEST(prefix_parser_rejects_garbage) {
    int lo, hi;
    char opts[8];
    ASSERT_EQ(prefix_of("APX\0\0\0\0\x04v178", 12, &lo, &hi, opts, sizeof opts), IM_EPARSE);
    ASSERT_EQ(prefix_of("GET / HTTP/1.1\r\n", 16, &lo, &hi, opts, sizeof opts), IM_EPARSE);
    /* A wrong first byte is refused at once, before the rest arrives. */
    ASSERT_EQ(prefix_of("G", 1, &lo, &hi, opts, sizeof opts), IM_EPARSE);
    ASSERT_EQ(prefix_of("API\0\0\0\0\x04" "x178", 12, &lo, &hi, opts, sizeof opts), IM_EPARSE);
    ASSERT_EQ(prefix_of("API\0\0\0\0\x03" "178", 11, &lo, &hi, opts, sizeof opts), IM_EPARSE);
    ASSERT_EQ(prefix_of("API\0\0\0\0\x09v178..100", 17, &lo, &hi, opts, sizeof opts), IM_EPARSE);
    ASSERT_EQ(prefix_of("API\0\0\0\0\x06v100..", 14, &lo, &hi, opts, sizeof opts), IM_EPARSE);
    ASSERT_EQ(prefix_of("API\0\0\0\0\x06v..178", 14, &lo, &hi, opts, sizeof opts), IM_EPARSE);
    ASSERT_EQ(prefix_of("API\0\0\0\0\x05v1a78", 13, &lo, &hi, opts, sizeof opts), IM_EPARSE);
    ASSERT_EQ(prefix_of("API\0\0\0\0\x01v", 9, &lo, &hi, opts, sizeof opts), IM_EPARSE);
    ASSERT_EQ(prefix_of("API\0\0\0\0\x02v0", 10, &lo, &hi, opts, sizeof opts), IM_EPARSE);
    ASSERT_EQ(prefix_of("API\0\0\0\0\x05v-178", 13, &lo, &hi, opts, sizeof opts), IM_EPARSE);
    ASSERT_EQ(prefix_of("API\0\0\0\0\x0cv99999999999", 20, &lo, &hi, opts, sizeof opts),
              IM_EPARSE);
    /* An absurd length is refused without waiting for its bytes. */
    ASSERT_EQ(prefix_of("API\0\x7f\0\0\0", 8, &lo, &hi, opts, sizeof opts), IM_EPARSE);
    /* A NUL inside the options. */
    ASSERT_EQ(prefix_of("API\0\0\0\0\x07v178 a\0b", 15, &lo, &hi, opts, sizeof opts), IM_EPARSE);
}

TEST(prefix_arrives_byte_by_byte_then_frames_follow) {
    static const char stream[] = "API\0\0\0\0\x09v157..178" "\0\0\0\x08" "71\0" "2\0" "7\0" "\0";
    im_tws_reader r;
    im_tws_msg m;
    int lo = 0, hi = 0, rc = 0;
    char opts[8];
    im_tws_reader_init(&r, 1);
    ASSERT_EQ(im_tws_reader_next(&r, &m), IM_EINVAL);   /* prefix first */
    for (size_t i = 0; i < 17; i++) {
        ASSERT_EQ(im_tws_reader_prefix(&r, &lo, &hi, opts, sizeof opts), 0);
        ASSERT_EQ(im_tws_reader_feed(&r, stream + i, 1), 0);
        rc = im_tws_reader_prefix(&r, &lo, &hi, opts, sizeof opts);
        ASSERT_EQ(rc, i == 16 ? 1 : 0);
    }
    ASSERT_EQ(lo, 157);
    ASSERT_EQ(hi, 178);
    ASSERT_EQ(im_tws_reader_prefix(&r, &lo, &hi, opts, sizeof opts), IM_EINVAL);
    ASSERT_EQ(im_tws_reader_next(&r, &m), 0);
    ASSERT_EQ(im_tws_reader_feed(&r, stream + 17, sizeof stream - 1 - 17), 0);
    ASSERT_EQ(im_tws_reader_next(&r, &m), 1);
    ASSERT_EQ(m.id, 71);
    ASSERT_EQ(im_tws_get_int(&m), 2);
    ASSERT_EQ(im_tws_get_int(&m), 7);
    ASSERT_STR_EQ(im_tws_get_str(&m), "");
    ASSERT_EQ(im_tws_finish(&m), 0);
    im_tws_reader_free(&r);
}

/* ---- values ---- */

static const char *dbl_text(double v, int max) {
    static char out[64];
    im_tws_writer w;
    im_tws_writer_init(&w);
    if (max)
        im_tws_put_dbl_max(&w, v);
    else
        im_tws_put_dbl(&w, v);
    ASSERT(w.len < sizeof out);
    memcpy(out, w.data, w.len);
    ASSERT_EQ(out[w.len - 1], '\0');
    im_tws_writer_free(&w);
    return out;
}

static const char *dec_text(double v) {
    static char out[400];
    im_tws_writer w;
    im_tws_writer_init(&w);
    im_tws_put_dec(&w, v);
    ASSERT(w.len < sizeof out);
    memcpy(out, w.data, w.len);
    im_tws_writer_free(&w);
    return out;
}

TEST(doubles_are_written_shortest_and_read_back_exactly) {
    static const double values[] = {0,      150,    150.25,  0.1,   0.3,      1.0 / 3,
                                    -2.5,   1e7,    1e-7,    123456789.125, 5e-324,
                                    1e300,  0.01,   99.99,   2.2250738585072014e-308};
    ASSERT_STR_EQ(dbl_text(150, 0), "150");
    ASSERT_STR_EQ(dbl_text(150.25, 0), "150.25");
    ASSERT_STR_EQ(dbl_text(0, 0), "0");
    ASSERT_STR_EQ(dbl_text(0.1, 0), "0.1");
    ASSERT_STR_EQ(dbl_text(1.0 / 3, 0), "0.3333333333333333");
    ASSERT_STR_EQ(dbl_text(DBL_MAX, 0), "1.7976931348623157E308");
    ASSERT_STR_EQ(dbl_text(INFINITY, 0), "");
    ASSERT_STR_EQ(dbl_text(NAN, 0), "");
    ASSERT_STR_EQ(dbl_text(DBL_MAX, 1), "");
    ASSERT_STR_EQ(dbl_text(-INFINITY, 1), "");
    ASSERT_STR_EQ(dbl_text(150.5, 1), "150.5");
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char buf[64];
        im_tws_msg m;
        const char *t = dbl_text(values[i], 0);
        size_t n = strlen(t) + 1;
        memcpy(buf, "1\0", 2);
        memcpy(buf + 2, t, n);
        ASSERT_EQ(im_tws_msg_init(&m, buf, n + 2), 0);
        ASSERT(im_tws_get_dbl(&m) == values[i]);
        ASSERT_EQ(im_tws_finish(&m), 0);
    }
}

TEST(decimals_are_plain_without_exponent_or_trailing_zeros) {
    ASSERT_STR_EQ(dec_text(100), "100");
    ASSERT_STR_EQ(dec_text(0.5), "0.5");
    ASSERT_STR_EQ(dec_text(0.0001), "0.0001");
    ASSERT_STR_EQ(dec_text(1e-7), "0.0000001");
    ASSERT_STR_EQ(dec_text(1e7), "10000000");
    ASSERT_STR_EQ(dec_text(1e20), "100000000000000000000");
    ASSERT_STR_EQ(dec_text(123.456), "123.456");
    ASSERT_STR_EQ(dec_text(-2.5), "-2.5");
    ASSERT_STR_EQ(dec_text(0), "0");
    ASSERT_STR_EQ(dec_text(-0.0), "0");
    ASSERT_STR_EQ(dec_text(0.1), "0.1");
    ASSERT_STR_EQ(dec_text(IM_TWS_UNSET_DBL), "");
    ASSERT_STR_EQ(dec_text(INFINITY), "");
    ASSERT_STR_EQ(dec_text(NAN), "");
    ASSERT_EQ(strlen(dec_text(1e300)), 301);
    ASSERT(strchr(dec_text(5e-324), 'e') == NULL);
}

TEST(ints_bools_and_unset_ints) {
    char buf[128];
    size_t n;
    im_tws_msg m;
    im_tws_writer w;
    im_tws_writer_init(&w);
    im_tws_begin(&w, 9);
    im_tws_put_int(&w, LLONG_MIN);
    im_tws_put_int(&w, LLONG_MAX);
    im_tws_put_int(&w, -1);
    im_tws_put_int_max(&w, IM_TWS_UNSET_INT);
    im_tws_put_int_max(&w, 5);
    im_tws_put_bool(&w, 7);
    im_tws_put_bool(&w, 0);
    im_tws_put_str(&w, NULL);
    ASSERT_EQ(im_tws_end(&w), 0);
    m = one_msg(&w);
    ASSERT_STR_EQ(field_at(&w, 2), "-9223372036854775808");
    ASSERT_STR_EQ(field_at(&w, 5), "");
    ASSERT_EQ(im_tws_get_int(&m), LLONG_MIN);
    ASSERT_EQ(im_tws_get_int(&m), LLONG_MAX);
    ASSERT_EQ(im_tws_get_int(&m), -1);
    ASSERT_EQ(im_tws_get_int_max(&m), IM_TWS_UNSET_INT);
    ASSERT_EQ(im_tws_get_int_max(&m), 5);
    ASSERT_EQ(im_tws_get_bool(&m), 1);
    ASSERT_EQ(im_tws_get_bool(&m), 0);
    ASSERT_STR_EQ(im_tws_get_str(&m), "");
    ASSERT_EQ(im_tws_finish(&m), 0);
    im_tws_writer_free(&w);

    /* "" reads as 0 for plain ints and doubles, and as unset for the rest. */
    n = payload(buf, "1||||||");
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    ASSERT_EQ(im_tws_get_int(&m), 0);
    ASSERT_EQ(im_tws_get_int_max(&m), IM_TWS_UNSET_INT);
    ASSERT(im_tws_get_dbl(&m) == 0);
    ASSERT(im_tws_get_dbl_max(&m) == IM_TWS_UNSET_DBL);
    ASSERT(im_tws_get_dec(&m) == IM_TWS_UNSET_DBL);
    ASSERT_EQ(im_tws_get_bool(&m), 0);
    ASSERT_EQ(im_tws_finish(&m), 0);
}

TEST(number_forms_peers_send_are_read) {
    char buf[256];
    size_t n;
    im_tws_msg m;
    n = payload(buf, "1|1.0E7|Infinity|Infinite|-Infinity|1.7976931348623157E308|150.0|0.0|+3|.5|"
                     "5.|1e-3|1.7976931348623157E308|2147483647|9223372036854775807|100|0.5|"
                     "1,000|Infinity|00012|2.5E-1");
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    ASSERT(im_tws_get_dbl(&m) == 1e7);
    ASSERT(im_tws_get_dbl(&m) == INFINITY);
    ASSERT(im_tws_get_dbl(&m) == INFINITY);
    ASSERT(im_tws_get_dbl(&m) == -INFINITY);
    ASSERT(im_tws_get_dbl(&m) == DBL_MAX);
    ASSERT(im_tws_get_dbl(&m) == 150);
    ASSERT(im_tws_get_dbl(&m) == 0);
    ASSERT(im_tws_get_dbl(&m) == 3);
    ASSERT(im_tws_get_dbl(&m) == 0.5);
    ASSERT(im_tws_get_dbl(&m) == 5);
    ASSERT(im_tws_get_dbl(&m) == 0.001);
    /* The decimal sentinels all mean unset. */
    ASSERT(im_tws_get_dec(&m) == IM_TWS_UNSET_DBL);
    ASSERT(im_tws_get_dec(&m) == IM_TWS_UNSET_DBL);
    ASSERT(im_tws_get_dec(&m) == IM_TWS_UNSET_DBL);
    ASSERT(im_tws_get_dec(&m) == 100);
    ASSERT(im_tws_get_dec(&m) == 0.5);
    ASSERT(im_tws_get_dec(&m) == 1000);
    ASSERT(im_tws_get_dec(&m) == IM_TWS_UNSET_DBL);
    ASSERT_EQ(im_tws_get_int(&m), 12);
    ASSERT(im_tws_get_dbl_max(&m) == 0.25);
    ASSERT_EQ(im_tws_finish(&m), 0);
}

/* One field of text read with a getter: returns the msg's err. */
static int bad_field(const char *text, int kind) {
    char buf[128];
    im_tws_msg m;
    size_t n = (size_t)snprintf(buf, sizeof buf, "1|%s", text);
    n = payload(buf, buf);
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    switch (kind) {
    case 0: im_tws_get_int(&m); break;
    case 1: im_tws_get_int_max(&m); break;
    case 2: im_tws_get_dbl(&m); break;
    case 3: im_tws_get_dec(&m); break;
    default: im_tws_get_dbl_max(&m); break;
    }
    return m.err;
}

TEST(malformed_numbers_set_err) {
    static const char *const ints[] = {"12abc", " 1", "1 ", "+", "-", "1.5", "0x10", "1e3",
                                       "9223372036854775808", "99999999999999999999"};
    static const char *const dbls[] = {"12abc", "NaN", "nan", "inf", "Inf", "0x1p3", "1e",
                                       "1e+", ".", "-", "1.0E7x", "Infinityy", "1..2", " 1",
                                       "1,5"};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        ASSERT_EQ(bad_field(ints[i], 0), IM_EPARSE);
    ASSERT_EQ(bad_field("2147483648", 1), IM_EPARSE);
    ASSERT_EQ(bad_field("2147483647", 1), 0);
    for (size_t i = 0; i < sizeof dbls / sizeof dbls[0]; i++) {
        ASSERT_EQ(bad_field(dbls[i], 2), IM_EPARSE);
        ASSERT_EQ(bad_field(dbls[i], 4), IM_EPARSE);
    }
    ASSERT_EQ(bad_field("12abc", 3), IM_EPARSE);
    ASSERT_EQ(bad_field(",", 3), IM_EPARSE);
}

TEST(long_numbers_still_parse) {
    char buf[512];
    size_t n = 0;
    im_tws_msg m;
    memcpy(buf, "1\0", 2);
    n = 2;
    memcpy(buf + n, "0.", 2);
    n += 2;
    for (int i = 0; i < 300; i++)
        buf[n++] = i == 299 ? '1' : '0';
    buf[n++] = '\0';
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    ASSERT(im_tws_get_dbl(&m) == 1e-300);
    ASSERT_EQ(im_tws_finish(&m), 0);
}

TEST(reading_past_the_end_and_surplus_fields_are_errors) {
    char buf[64];
    size_t n = payload(buf, "49|1|1700000000");
    im_tws_msg m;
    char text[4];
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    ASSERT_EQ(m.id, 49);
    ASSERT_EQ(im_tws_remaining(&m), 2);
    im_tws_skip(&m, 1);
    ASSERT_EQ(im_tws_get_int(&m), 1700000000LL);
    ASSERT_EQ(im_tws_remaining(&m), 0);
    ASSERT_EQ(im_tws_finish(&m), 0);
    ASSERT_EQ(im_tws_get_int(&m), 0);   /* underrun */
    ASSERT_EQ(m.err, IM_EPARSE);
    ASSERT_EQ(im_tws_finish(&m), IM_EPARSE);

    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    im_tws_skip(&m, 1);
    ASSERT_EQ(im_tws_finish(&m), IM_EPARSE);   /* one field left */

    /* A field longer than its buffer is an error, never cut. */
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    im_tws_skip(&m, 1);
    im_tws_get_text(&m, text, sizeof text);
    ASSERT_EQ(m.err, IM_EPARSE);
    ASSERT_STR_EQ(text, "");
    ASSERT_STR_EQ(im_tws_get_str(&m), "");   /* sticky */
    ASSERT_EQ(im_tws_finish(&m), IM_EPARSE);
}

/* ---- frames ---- */

/* A multi-frame stream: several small messages and one larger one. */
static void sample_stream(im_tws_writer *w) {
    im_tws_order o = aapl_buy_100_lmt_150();
    im_tws_begin(w, IM_TWS_IN_MANAGED_ACCTS);
    im_tws_put_int(w, 1);
    im_tws_put_str(w, "DU1106896");
    im_tws_end(w);
    im_tws_begin(w, IM_TWS_IN_NEXT_VALID_ID);
    im_tws_put_int(w, 1);
    im_tws_put_int(w, 1);
    im_tws_end(w);
    im_tws_put_error(w, -1, 2104, "Market data farm connection is OK:usfarm");
    im_tws_begin(w, IM_TWS_IN_TICK_PRICE);
    im_tws_put_int(w, 6);
    im_tws_put_int(w, 1001);
    im_tws_put_int(w, IM_TWS_TICK_BID);
    im_tws_put_dbl(w, 150.25);
    im_tws_put_dec(w, 300);
    im_tws_put_int(w, 0);
    im_tws_end(w);
    im_tws_put_open_order(w, &o, "Submitted");
    im_tws_begin(w, IM_TWS_IN_OPEN_ORDER_END);
    im_tws_put_int(w, 1);
    im_tws_end(w);
}

/* Reads every frame of the stream fed in pieces of the given sizes (the
 * last piece repeats); returns the frames as "id:len;" text. */
static void frames_of(const char *data, size_t len, const size_t *pieces, size_t npieces,
                      char *out, size_t outlen) {
    im_tws_reader r;
    im_tws_msg m;
    size_t off = 0, k = 0, o = 0;
    int rc;
    im_tws_reader_init(&r, 0);
    out[0] = '\0';
    while (off < len) {
        size_t n = pieces[k < npieces ? k : npieces - 1];
        k++;
        if (n > len - off)
            n = len - off;
        ASSERT_EQ(im_tws_reader_feed(&r, data + off, n), 0);
        off += n;
        while ((rc = im_tws_reader_next(&r, &m)) == 1) {
            /* FNV-1a over the payload after the id: the bytes must match. */
            uint32_t h = 2166136261u;
            for (const char *q = m.p; q < m.end; q++)
                h = (h ^ (unsigned char)*q) * 16777619u;
            o += (size_t)snprintf(out + o, outlen - o, "%d:%zu:%d:%08x;", m.id,
                                  (size_t)(m.end - m.p), im_tws_remaining(&m), (unsigned)h);
            ASSERT(o < outlen);
        }
        ASSERT_EQ(rc, 0);
    }
    im_tws_reader_free(&r);
}

TEST(frames_are_identical_at_every_split_point) {
    im_tws_writer w;
    char whole[1024], got[1024];
    size_t all[1];
    im_tws_writer_init(&w);
    sample_stream(&w);
    ASSERT_EQ(im_tws_writer_error(&w), 0);
    all[0] = w.len;
    frames_of(w.data, w.len, all, 1, whole, sizeof whole);
    ASSERT_CONTAINS(whole, "15:");
    ASSERT_CONTAINS(whole, "5:");
    ASSERT_CONTAINS(whole, "53:");
    /* Byte by byte. */
    {
        size_t one[1] = {1};
        frames_of(w.data, w.len, one, 1, got, sizeof got);
        ASSERT_STR_EQ(got, whole);
    }
    /* Every split into two reads, and into three. */
    for (size_t i = 0; i <= w.len; i++) {
        size_t two[2] = {i, w.len};
        frames_of(w.data, w.len, two, 2, got, sizeof got);
        ASSERT_STR_EQ(got, whole);
        for (size_t j = 1; j < 40; j += 7) {
            size_t three[3] = {i, j, w.len};
            frames_of(w.data, w.len, three, 3, got, sizeof got);
            ASSERT_STR_EQ(got, whole);
        }
    }
    im_tws_writer_free(&w);
}

TEST(coalesced_frames_come_out_one_by_one) {
    im_tws_writer w;
    im_tws_reader r;
    im_tws_msg m;
    int ids[8], n = 0, rc;
    im_tws_writer_init(&w);
    sample_stream(&w);
    im_tws_reader_init(&r, 0);
    ASSERT_EQ(im_tws_reader_feed(&r, w.data, w.len), 0);
    while ((rc = im_tws_reader_next(&r, &m)) == 1) {
        ASSERT(n < 8);
        ids[n++] = m.id;
        /* Views stay valid while frames are taken without feeding. */
        if (m.id == IM_TWS_IN_MANAGED_ACCTS) {
            im_tws_skip(&m, 1);
            ASSERT_STR_EQ(im_tws_get_str(&m), "DU1106896");
        }
    }
    ASSERT_EQ(rc, 0);
    ASSERT_EQ(n, 6);
    ASSERT_EQ(ids[0], 15);
    ASSERT_EQ(ids[1], 9);
    ASSERT_EQ(ids[2], 4);
    ASSERT_EQ(ids[3], 1);
    ASSERT_EQ(ids[4], 5);
    ASSERT_EQ(ids[5], 53);
    im_tws_reader_free(&r);
    im_tws_writer_free(&w);
}

static int first_frame_rc(const char *bytes, size_t n) {
    im_tws_reader r;
    im_tws_msg m;
    int rc, again;
    im_tws_reader_init(&r, 0);
    ASSERT_EQ(im_tws_reader_feed(&r, bytes, n), 0);
    rc = im_tws_reader_next(&r, &m);
    again = im_tws_reader_next(&r, &m);
    if (rc < 0)
        ASSERT_EQ(again, rc);   /* errors are sticky */
    im_tws_reader_free(&r);
    return rc;
}

TEST(malformed_frames_are_refused) {
    ASSERT_EQ(first_frame_rc("\0\0\0\0", 4), IM_EPARSE);                     /* length 0 */
    ASSERT_EQ(first_frame_rc("\x01\0\0\0", 4), IM_ETOOBIG);                  /* 0x1000000 */
    ASSERT_EQ(first_frame_rc("\xff\xff\xff\xff", 4), IM_ETOOBIG);
    ASSERT_EQ(first_frame_rc("\0\0\0\x02" "49", 6), IM_EPARSE);              /* no NUL */
    ASSERT_EQ(first_frame_rc("\0\0\0\x03" "4\0" "9", 7), IM_EPARSE);         /* last not NUL */
    ASSERT_EQ(first_frame_rc("\0\0\0\x03" "ab\0", 7), IM_EPARSE);            /* id not int */
    ASSERT_EQ(first_frame_rc("\0\0\0\x01" "\0", 5), IM_EPARSE);              /* id "" */
    ASSERT_EQ(first_frame_rc("\0\0\0\x04" "12a\0", 8), IM_EPARSE);
    ASSERT_EQ(first_frame_rc("\0\0\0\x0c" "99999999999\0", 16), IM_EPARSE);  /* id > int */
    ASSERT_EQ(first_frame_rc("\0\0\0\x03" "-1\0", 7), 1);
    ASSERT_EQ(first_frame_rc("\0\0\0\x03" "49", 6), 0);                      /* incomplete */
    ASSERT_EQ(first_frame_rc("\0\0", 2), 0);
}

TEST(a_huge_length_then_silence_allocates_only_what_arrived) {
    im_tws_reader r;
    im_tws_msg m;
    char chunk[1000];
    im_tws_reader_init(&r, 0);
    ASSERT_EQ(im_tws_reader_feed(&r, "\0\xff\xff\xff" "1", 5), 0);
    ASSERT_EQ(im_tws_reader_next(&r, &m), 0);
    ASSERT(r.cap < 65536);
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 10; i++) {
        ASSERT_EQ(im_tws_reader_feed(&r, chunk, sizeof chunk), 0);
        ASSERT_EQ(im_tws_reader_next(&r, &m), 0);
    }
    ASSERT(r.cap <= 2 * (r.len + 4096));
    im_tws_reader_free(&r);
}

TEST(the_largest_frame_passes_and_one_more_byte_fails) {
    im_tws_writer w;
    im_tws_reader r;
    im_tws_msg m;
    char *big = malloc(IM_TWS_MAX_FRAME);
    ASSERT(big != NULL);
    /* "1\0" + text + "\0" = MAX: text is MAX - 3 bytes. */
    memset(big, 'a', IM_TWS_MAX_FRAME - 3);
    big[IM_TWS_MAX_FRAME - 3] = '\0';
    im_tws_writer_init(&w);
    im_tws_begin(&w, 1);
    im_tws_put_str(&w, big);
    ASSERT_EQ(im_tws_end(&w), 0);
    ASSERT_EQ(w.len, IM_TWS_MAX_FRAME + 4);
    im_tws_reader_init(&r, 0);
    ASSERT_EQ(im_tws_reader_feed(&r, w.data, w.len), 0);
    ASSERT_EQ(im_tws_reader_next(&r, &m), 1);
    ASSERT_EQ(strlen(im_tws_get_str(&m)), IM_TWS_MAX_FRAME - 3);
    im_tws_reader_free(&r);

    /* One byte more: the frame is dropped and the error remembered. */
    big[IM_TWS_MAX_FRAME - 3] = 'a';
    big[IM_TWS_MAX_FRAME - 2] = '\0';
    im_tws_writer_reset(&w);
    im_tws_begin(&w, 1);
    im_tws_put_str(&w, big);
    ASSERT_EQ(im_tws_end(&w), IM_ETOOBIG);
    ASSERT_EQ(w.len, 0);
    ASSERT_EQ(im_tws_writer_error(&w), IM_ETOOBIG);
    im_tws_begin(&w, 49);
    ASSERT_EQ(im_tws_end(&w), IM_ETOOBIG);
    ASSERT_EQ(w.len, 0);
    im_tws_writer_reset(&w);
    ASSERT_EQ(im_tws_writer_error(&w), 0);
    im_tws_begin(&w, 49);
    im_tws_put_int(&w, 1);
    ASSERT_EQ(im_tws_end(&w), 0);
    ASSERT_EQ(w.len, 4 + 5);
    im_tws_writer_free(&w);
    free(big);
}

TEST(writer_misuse_is_remembered) {
    im_tws_writer w;
    im_tws_writer_init(&w);
    ASSERT_EQ(im_tws_end(&w), IM_EINVAL);   /* no open frame */
    im_tws_writer_reset(&w);
    im_tws_begin(&w, 1);
    im_tws_begin(&w, 2);                    /* nested */
    ASSERT_EQ(im_tws_end(&w), IM_EINVAL);
    ASSERT_EQ(w.len, 0);
    im_tws_writer_free(&w);
}

/* ---- structured messages ---- */

TEST(place_order_has_the_java_field_list) {
    im_tws_writer w;
    im_tws_order o = aapl_buy_100_lmt_150();
    im_tws_writer_init(&w);
    im_tws_put_place_order(&w, &o);
    ASSERT_EQ(im_tws_writer_error(&w), 0);
    ASSERT_EQ(field_count(&w), 114);
    ASSERT_STR_EQ(field_at(&w, 1), "3");
    ASSERT_STR_EQ(field_at(&w, 2), "12");
    ASSERT_STR_EQ(field_at(&w, 3), "265598");
    ASSERT_STR_EQ(field_at(&w, 4), "AAPL");
    ASSERT_STR_EQ(field_at(&w, 5), "STK");
    ASSERT_STR_EQ(field_at(&w, 6), "");
    ASSERT_STR_EQ(field_at(&w, 7), "0");
    ASSERT_STR_EQ(field_at(&w, 8), "");
    ASSERT_STR_EQ(field_at(&w, 9), "");
    ASSERT_STR_EQ(field_at(&w, 10), "SMART");
    ASSERT_STR_EQ(field_at(&w, 11), "NASDAQ");
    ASSERT_STR_EQ(field_at(&w, 12), "USD");
    ASSERT_STR_EQ(field_at(&w, 13), "AAPL");
    ASSERT_STR_EQ(field_at(&w, 14), "NMS");
    ASSERT_STR_EQ(field_at(&w, 15), "");
    ASSERT_STR_EQ(field_at(&w, 16), "");
    ASSERT_STR_EQ(field_at(&w, 17), "BUY");
    ASSERT_STR_EQ(field_at(&w, 18), "100");
    ASSERT_STR_EQ(field_at(&w, 19), "LMT");
    ASSERT_STR_EQ(field_at(&w, 20), "150");
    ASSERT_STR_EQ(field_at(&w, 21), "");
    ASSERT_STR_EQ(field_at(&w, 22), "DAY");
    ASSERT_STR_EQ(field_at(&w, 23), "");
    ASSERT_STR_EQ(field_at(&w, 24), "DU1106896");
    ASSERT_STR_EQ(field_at(&w, 25), "");
    ASSERT_STR_EQ(field_at(&w, 26), "0");
    ASSERT_STR_EQ(field_at(&w, 27), "mcp-1");
    ASSERT_STR_EQ(field_at(&w, 28), "1");
    ASSERT_STR_EQ(field_at(&w, 29), "0");
    /* What JAVA writes for the unset fields of a plain order. */
    ASSERT_STR_EQ(field_at(&w, 37), "1.7976931348623157E308");   /* discretionaryAmt */
    ASSERT_STR_EQ(field_at(&w, 46), "-1");                       /* exemptCode */
    ASSERT_STR_EQ(field_at(&w, 51), "");                         /* minQty */
    ASSERT_STR_EQ(field_at(&w, 56), "0");                        /* auctionStrategy */
    ASSERT_STR_EQ(field_at(&w, 64), "");
    ASSERT_STR_EQ(field_at(&w, 65), "");
    ASSERT_STR_EQ(field_at(&w, 82), "0");
    ASSERT_STR_EQ(field_at(&w, 85), "0");
    ASSERT_STR_EQ(field_at(&w, 90), "0");
    for (int i = 92; i <= 96; i++)
        ASSERT_STR_EQ(field_at(&w, i), "1.7976931348623157E308");
    ASSERT_STR_EQ(field_at(&w, 109), "");
    ASSERT_STR_EQ(field_at(&w, 110), "2147483647");
    ASSERT_STR_EQ(field_at(&w, 114), "");
    im_tws_writer_free(&w);
}

TEST(place_order_round_trips) {
    im_tws_writer w;
    im_tws_order o = aapl_buy_100_lmt_150(), back;
    im_tws_msg m;
    const char *why = "x";
    o.aux_price = 149.5;
    strcpy(o.order_type, "STP LMT");
    o.parent_id = 11;
    o.outside_rth = 1;
    o.transmit = 0;
    o.total_qty = 0.5;
    im_tws_writer_init(&w);
    im_tws_put_place_order(&w, &o);
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_place_order(&m, &back, &why), 0);
    ASSERT(why == NULL);
    ASSERT_EQ(back.order_id, 12);
    ASSERT_EQ(back.contract.con_id, 265598);
    ASSERT_STR_EQ(back.contract.symbol, "AAPL");
    ASSERT_STR_EQ(back.contract.sec_type, "STK");
    ASSERT_STR_EQ(back.contract.exchange, "SMART");
    ASSERT_STR_EQ(back.contract.primary_exch, "NASDAQ");
    ASSERT_STR_EQ(back.contract.currency, "USD");
    ASSERT_STR_EQ(back.contract.local_symbol, "AAPL");
    ASSERT_STR_EQ(back.contract.trading_class, "NMS");
    ASSERT_STR_EQ(back.action, "BUY");
    ASSERT(back.total_qty == 0.5);
    ASSERT_STR_EQ(back.order_type, "STP LMT");
    ASSERT(back.lmt_price == 150);
    ASSERT(back.aux_price == 149.5);
    ASSERT_STR_EQ(back.tif, "DAY");
    ASSERT_STR_EQ(back.account, "DU1106896");
    ASSERT_STR_EQ(back.order_ref, "mcp-1");
    ASSERT_EQ(back.transmit, 0);
    ASSERT_EQ(back.parent_id, 11);
    ASSERT_EQ(back.outside_rth, 1);
    assert_contract_eq(&back.contract, &o.contract);

    /* A market order: both prices unset. */
    o = aapl_buy_100_lmt_150();
    strcpy(o.order_type, "MKT");
    o.lmt_price = IM_TWS_UNSET_DBL;
    im_tws_writer_reset(&w);
    im_tws_put_place_order(&w, &o);
    ASSERT_STR_EQ(field_at(&w, 20), "");
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_place_order(&m, &back, &why), 0);
    ASSERT(back.lmt_price == IM_TWS_UNSET_DBL);
    ASSERT(back.aux_price == IM_TWS_UNSET_DBL);
    im_tws_writer_free(&w);
}

/* The 114 fields @stoqey/ib sends for BUY 100 AAPL LMT 150 DAY: "" for
 * everything but the listed positions (reference 5.3). */
static size_t stoqey_place_order(char *buf, const char *order_type, int extra_fields) {
    size_t n = 0;
    for (int i = 1; i <= 114; i++) {
        const char *v = "";
        switch (i) {
        case 1: v = "3"; break;
        case 2: v = "7"; break;
        case 3: v = "265598"; break;
        case 4: v = "AAPL"; break;
        case 5: v = "STK"; break;
        case 10: v = "SMART"; break;
        case 12: v = "USD"; break;
        case 17: v = "BUY"; break;
        case 18: v = "100"; break;
        case 19: v = order_type; break;
        case 20: v = "150"; break;
        case 22: v = "DAY"; break;
        case 27: v = "ref"; break;
        case 28: v = "1"; break;
        case 82: v = "0"; break;
        case 90: v = "0"; break;
        default: break;
        }
        memcpy(buf + n, v, strlen(v) + 1);
        n += strlen(v) + 1;
    }
    for (int i = 0; i < extra_fields; i++)
        buf[n++] = '\0';
    return n;
}

TEST(place_order_from_stoqey_is_read) {
    char buf[1024];
    im_tws_msg m;
    im_tws_order o;
    const char *why;
    size_t n = stoqey_place_order(buf, "LMT", 0);
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    ASSERT_EQ(im_tws_get_place_order(&m, &o, &why), 0);
    ASSERT_EQ(o.order_id, 7);
    ASSERT_STR_EQ(o.action, "BUY");
    ASSERT(o.total_qty == 100);
    ASSERT(o.lmt_price == 150);
    ASSERT(o.aux_price == IM_TWS_UNSET_DBL);
    ASSERT(o.contract.strike == 0);
    ASSERT_STR_EQ(o.order_ref, "ref");
    ASSERT_EQ(o.transmit, 1);
    /* One field too many, or one too few. */
    n = stoqey_place_order(buf, "LMT", 1);
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    ASSERT_EQ(im_tws_get_place_order(&m, &o, &why), IM_EPARSE);
    n = stoqey_place_order(buf, "LMT", 0);
    ASSERT_EQ(im_tws_msg_init(&m, buf, n - 1), 0);   /* #114 missing */
    ASSERT_EQ(im_tws_get_place_order(&m, &o, &why), IM_EPARSE);
    buf[n - 1] = 'x';
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), IM_EPARSE);   /* no final NUL */
    /* PEG MID carries two more fields at >= 170. */
    n = stoqey_place_order(buf, "PEG MID", 2);
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    ASSERT_EQ(im_tws_get_place_order(&m, &o, &why), 0);
    n = stoqey_place_order(buf, "PEG MID", 0);
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    ASSERT_EQ(im_tws_get_place_order(&m, &o, &why), IM_EPARSE);
}

/* Builds a placeOrder from a template: fields "|"-separated, with the
 * groups given literally. */
static int place_order_rc(const char *fields, const char **why) {
    static char buf[4096];
    im_tws_msg m;
    im_tws_order o;
    size_t n = payload(buf, fields);
    if (im_tws_msg_init(&m, buf, n) != 0)
        return -9999;
    return im_tws_get_place_order(&m, &o, why);
}

TEST(place_order_walks_every_conditional_group) {
    const char *why = NULL;
    /* Built field by field so that every group can be switched on. */
    struct {
        const char *what;
        int bag, dn, scale, hedge, dnc, algo, pegbench, cond, pegbest_mid, ibkrats;
        int rc;
        const char *why;
    } cases[] = {
        {"plain", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL},
        {"delta neutral None", 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL},
        {"scale", 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, NULL},
        {"hedge", 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, NULL},
        {"dn contract", 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, NULL},
        {"algo", 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, NULL},
        {"peg bench", 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, NULL},
        {"peg best up to mid", 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, NULL},
        {"peg best", 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, NULL},
        {"peg mid", 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, NULL},
        {"ibkrats", 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, NULL},
        {"all", 0, 1, 1, 1, 1, 1, 0, 0, 3, 1, 0, NULL},
        {"bag", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, IM_EINVAL, "combo"},
        {"conditions", 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, IM_EINVAL, "conditional"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char buf[4096];
        size_t n = 0;
        im_tws_msg m;
        im_tws_order o;
        int rc;
        const char *type = cases[k].pegbench ? "PEG BENCH"
                           : cases[k].pegbest_mid == 1 || cases[k].pegbest_mid == 2 ? "PEG BEST"
                           : cases[k].pegbest_mid == 3 ? "PEG MID" : "LMT";
#define F(s) (memcpy(buf + n, (s), strlen(s) + 1), n += strlen(s) + 1)
        F("3"); F("1"); F("0"); F("X"); F(cases[k].bag ? "BAG" : "STK"); F(""); F("0"); F("");
        F(""); F(cases[k].ibkrats ? "IBKRATS" : "SMART"); F(""); F("USD"); F(""); F(""); F("");
        F(""); F("BUY"); F("1"); F(type); F("1"); F(""); F("DAY"); F(""); F(""); F(""); F("0");
        F(""); F("1"); F("0"); F("0"); F("0"); F("0"); F("0"); F("0"); F("0");   /* #35 */
        if (cases[k].bag) {
            F("2");
            for (int i = 0; i < 16; i++) F("1");
            F("2"); F(""); F("");
            F("1"); F("tag"); F("value");
        }
        for (int i = 36; i <= 64; i++) F("");
        F(cases[k].dn ? "None" : ""); F("");                    /* #65, #66 */
        if (cases[k].dn)
            for (int i = 0; i < 8; i++) F("");
        for (int i = 67; i <= 72; i++) F("");
        F(cases[k].scale ? "0.5" : "");                          /* #73 */
        if (cases[k].scale)
            for (int i = 0; i < 7; i++) F("");
        F(""); F(""); F("");                                     /* #74 .. #76 */
        F(cases[k].hedge ? "D" : "");                            /* #77 */
        if (cases[k].hedge) F("0.5");
        F("0"); F(""); F(""); F("0");                            /* #78 .. #81 */
        F(cases[k].dnc ? "1" : "0");                             /* #82 */
        if (cases[k].dnc) { F("1"); F("0.5"); F("100"); }
        F(cases[k].algo ? "Adaptive" : "");                      /* #83 */
        if (cases[k].algo) { F("1"); F("adaptivePriority"); F("Normal"); }
        F(""); F("0"); F(""); F("0"); F("0"); F("0");            /* #84 .. #89 */
        if (cases[k].pegbench) { F("1"); F("0"); F("1"); F("1"); F("X"); }
        if (cases[k].cond) {
            F("6");                                              /* #90 */
            F("1"); F("a"); F("1"); F("100"); F("1"); F("SMART"); F("2");
            F("3"); F("a"); F("1"); F("20250101 10:00:00");
            F("4"); F("o"); F("0"); F("10");
            F("5"); F("a"); F("STK"); F("SMART"); F("AAPL");
            F("6"); F("a"); F("1"); F("1000"); F("1"); F("SMART");
            F("7"); F("a"); F("1"); F("5"); F("1"); F("SMART");
            F("0"); F("0");
        } else {
            F("0");
        }
        for (int i = 91; i <= 114; i++) F("");
        if (cases[k].ibkrats) F("");
        if (cases[k].pegbest_mid == 1) { F(""); F("Infinity"); F(""); F(""); }
        if (cases[k].pegbest_mid == 2) { F("10"); F("0.01"); }
        if (cases[k].pegbest_mid == 3) { F(""); F(""); }
#undef F
        ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
        rc = im_tws_get_place_order(&m, &o, &why);
        if (rc != cases[k].rc)
            fprintf(stderr, "case %s\n", cases[k].what);
        ASSERT_EQ(rc, cases[k].rc);
        if (cases[k].why)
            ASSERT_CONTAINS(why, cases[k].why);
        /* One field more is always a surplus. */
        buf[n++] = '\0';
        ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
        ASSERT_EQ(im_tws_get_place_order(&m, &o, &why), IM_EPARSE);
    }
    ASSERT_EQ(place_order_rc("3|1", &why), IM_EPARSE);
    ASSERT_EQ(place_order_rc("4|1", &why), IM_EINVAL);   /* not a placeOrder */
}

TEST(hostile_group_counts_do_not_spin) {
    char buf[2048];
    size_t n = 0;
    im_tws_msg m;
    im_tws_order o;
    const char *why;
#define F(s) (memcpy(buf + n, (s), strlen(s) + 1), n += strlen(s) + 1)
    F("3"); F("1"); F("0"); F("X"); F("BAG");
    for (int i = 6; i <= 35; i++) F("");
    F("2000000000");   /* comboLegCount */
    F("");
#undef F
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    ASSERT_EQ(im_tws_get_place_order(&m, &o, &why), IM_EPARSE);
    n = payload(buf, "3|1|0|X|BAG|||||||||||||||||||||||||||||||-5");
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    ASSERT_EQ(im_tws_get_place_order(&m, &o, &why), IM_EPARSE);
}

TEST(open_order_has_127_fields_and_round_trips) {
    im_tws_writer w;
    im_tws_order o = aapl_buy_100_lmt_150(), back;
    im_tws_msg m;
    char status[24];
    o.client_id = 7;
    o.perm_id = 9000000000123LL;
    o.parent_id = 3;
    o.outside_rth = 1;
    o.contract.primary_exch[0] = '\0';   /* openOrder carries no primaryExch */
    im_tws_writer_init(&w);
    im_tws_put_open_order(&w, &o, "Submitted");
    ASSERT_EQ(im_tws_writer_error(&w), 0);
    ASSERT_EQ(field_count(&w), 127);
    ASSERT_STR_EQ(field_at(&w, 1), "5");
    ASSERT_STR_EQ(field_at(&w, 2), "12");
    ASSERT_STR_EQ(field_at(&w, 10), "SMART");
    ASSERT_STR_EQ(field_at(&w, 11), "USD");
    ASSERT_STR_EQ(field_at(&w, 14), "BUY");
    ASSERT_STR_EQ(field_at(&w, 15), "100");
    ASSERT_STR_EQ(field_at(&w, 16), "LMT");
    ASSERT_STR_EQ(field_at(&w, 17), "150");
    ASSERT_STR_EQ(field_at(&w, 18), "");
    ASSERT_STR_EQ(field_at(&w, 25), "7");
    ASSERT_STR_EQ(field_at(&w, 26), "9000000000123");
    ASSERT_STR_EQ(field_at(&w, 58), "3");
    ASSERT_STR_EQ(field_at(&w, 62), "");
    ASSERT_STR_EQ(field_at(&w, 86), "Submitted");
    ASSERT_STR_EQ(field_at(&w, 103), "0");
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_open_order(&m, &back, status, sizeof status), 0);
    ASSERT_STR_EQ(status, "Submitted");
    ASSERT_EQ(back.order_id, 12);
    ASSERT_EQ(back.client_id, 7);
    ASSERT_EQ(back.perm_id, 9000000000123LL);
    ASSERT_EQ(back.parent_id, 3);
    ASSERT_EQ(back.outside_rth, 1);
    ASSERT(back.total_qty == 100);
    ASSERT(back.lmt_price == 150);
    ASSERT(back.aux_price == IM_TWS_UNSET_DBL);
    ASSERT_STR_EQ(back.tif, "DAY");
    ASSERT_STR_EQ(back.account, "DU1106896");
    ASSERT_STR_EQ(back.order_ref, "mcp-1");
    assert_contract_eq(&back.contract, &o.contract);
    /* The status buffer is optional. */
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_open_order(&m, &back, NULL, 0), 0);
    /* Too small a status buffer is an error. */
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_open_order(&m, &back, status, 4), IM_EPARSE);
    im_tws_writer_free(&w);
}

TEST(open_order_with_delta_neutral_none_has_135_fields) {
    im_tws_writer w;
    im_tws_order o = aapl_buy_100_lmt_150(), back;
    im_tws_msg m;
    char status[24], buf[2048];
    size_t n = 0;
    const char *p, *end;
    im_tws_writer_init(&w);
    im_tws_put_open_order(&w, &o, "Filled");
    /* Rebuild it with #62 = "None" and 8 empty fields after #63. */
    p = w.data + 4;
    end = w.data + w.len;
    for (int i = 1; p < end; i++) {
        size_t k = strlen(p) + 1;
        if (i == 62) {
            memcpy(buf + n, "None", 5);
            n += 5;
        } else {
            memcpy(buf + n, p, k);
            n += k;
        }
        if (i == 63) {
            memset(buf + n, 0, 8);
            n += 8;
        }
        p += k;
    }
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    ASSERT_EQ(1 + im_tws_remaining(&m), 135);
    ASSERT_EQ(im_tws_get_open_order(&m, &back, status, sizeof status), 0);
    ASSERT_STR_EQ(status, "Filled");
    ASSERT(back.lmt_price == 150);
    /* Without the 8 fields the message underruns. */
    ASSERT_EQ(im_tws_msg_init(&m, buf, n - 8), 0);
    ASSERT_EQ(im_tws_get_open_order(&m, &back, status, sizeof status), IM_EPARSE);
    im_tws_writer_free(&w);
}

TEST(order_status_round_trips) {
    im_tws_writer w;
    im_tws_order_status s, back;
    im_tws_msg m;
    memset(&s, 0, sizeof s);
    s.order_id = 12;
    strcpy(s.status, "PreSubmitted");
    s.filled = 40;
    s.remaining = 60.5;
    s.avg_fill_price = 150.125;
    s.perm_id = 1234567890123LL;
    s.parent_id = 0;
    s.last_fill_price = 150.25;
    s.client_id = 7;
    strcpy(s.why_held, "locate");
    s.mkt_cap_price = 0;
    im_tws_writer_init(&w);
    im_tws_put_order_status(&w, &s);
    ASSERT_EQ(field_count(&w), 12);
    ASSERT_STR_EQ(field_at(&w, 4), "40");
    ASSERT_STR_EQ(field_at(&w, 5), "60.5");
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_order_status(&m, &back), 0);
    ASSERT_EQ(back.order_id, 12);
    ASSERT_STR_EQ(back.status, "PreSubmitted");
    ASSERT(back.filled == 40);
    ASSERT(back.remaining == 60.5);
    ASSERT(back.avg_fill_price == 150.125);
    ASSERT_EQ(back.perm_id, 1234567890123LL);
    ASSERT_EQ(back.parent_id, 0);
    ASSERT(back.last_fill_price == 150.25);
    ASSERT_EQ(back.client_id, 7);
    ASSERT_STR_EQ(back.why_held, "locate");
    ASSERT(back.mkt_cap_price == 0);
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_execution(&m, NULL), IM_EINVAL);
    im_tws_writer_free(&w);
}

TEST(execution_has_32_fields_and_round_trips) {
    im_tws_writer w;
    im_tws_execution e, back;
    im_tws_msg m;
    memset(&e, 0, sizeof e);
    e.req_id = -1;
    e.order_id = 12;
    e.contract = aapl();
    e.contract.primary_exch[0] = '\0';   /* not carried */
    strcpy(e.exec_id, "0000e0d5.6554b9a1.01.01");
    strcpy(e.time, "20231122  10:31:47");
    strcpy(e.account, "DU1106896");
    strcpy(e.exchange, "ISLAND");
    strcpy(e.side, "BOT");
    e.shares = 100;
    e.price = 150.01;
    e.perm_id = 1851427380;
    e.client_id = 7;
    e.liquidation = 0;
    e.cum_qty = 100;
    e.avg_price = 150.01;
    strcpy(e.order_ref, "mcp-1");
    e.last_liquidity = 2;
    im_tws_writer_init(&w);
    im_tws_put_execution(&w, &e);
    ASSERT_EQ(field_count(&w), 32);
    ASSERT_STR_EQ(field_at(&w, 2), "-1");
    ASSERT_STR_EQ(field_at(&w, 19), "BOT");
    ASSERT_STR_EQ(field_at(&w, 31), "2");
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_execution(&m, &back), 0);
    assert_contract_eq(&back.contract, &e.contract);
    ASSERT_EQ(back.req_id, -1);
    ASSERT_EQ(back.order_id, 12);
    ASSERT_STR_EQ(back.exec_id, e.exec_id);
    ASSERT_STR_EQ(back.time, e.time);
    ASSERT_STR_EQ(back.account, e.account);
    ASSERT_STR_EQ(back.exchange, "ISLAND");
    ASSERT_STR_EQ(back.side, "BOT");
    ASSERT(back.shares == 100);
    ASSERT(back.price == 150.01);
    ASSERT_EQ(back.perm_id, 1851427380);
    ASSERT_EQ(back.client_id, 7);
    ASSERT_EQ(back.liquidation, 0);
    ASSERT(back.cum_qty == 100);
    ASSERT(back.avg_price == 150.01);
    ASSERT_STR_EQ(back.order_ref, "mcp-1");
    ASSERT_EQ(back.last_liquidity, 2);
    im_tws_writer_free(&w);
}

TEST(commission_round_trips_with_unset_values) {
    im_tws_writer w;
    im_tws_commission c, back;
    im_tws_msg m;
    char buf[128];
    size_t n;
    memset(&c, 0, sizeof c);
    strcpy(c.exec_id, "0000e0d5.6554b9a1.01.01");
    c.commission = 1.0;
    strcpy(c.currency, "USD");
    c.realized_pnl = IM_TWS_UNSET_DBL;
    c.yield = IM_TWS_UNSET_DBL;
    c.yield_redemption_date = 0;
    im_tws_writer_init(&w);
    im_tws_put_commission(&w, &c);
    ASSERT_EQ(field_count(&w), 8);
    ASSERT_STR_EQ(field_at(&w, 6), "1.7976931348623157E308");
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_commission(&m, &back), 0);
    ASSERT_STR_EQ(back.exec_id, c.exec_id);
    ASSERT(back.commission == 1.0);
    ASSERT_STR_EQ(back.currency, "USD");
    ASSERT(back.realized_pnl == IM_TWS_UNSET_DBL);
    ASSERT(back.yield == IM_TWS_UNSET_DBL);
    ASSERT_EQ(back.yield_redemption_date, 0);
    /* "" also reads as unset. */
    n = payload(buf, "59|1|x|0.5|USD|||0");
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    ASSERT_EQ(im_tws_get_commission(&m, &back), 0);
    ASSERT(back.realized_pnl == IM_TWS_UNSET_DBL);
    ASSERT(back.yield == IM_TWS_UNSET_DBL);
    ASSERT(back.commission == 0.5);
    im_tws_writer_free(&w);
}

TEST(contract_details_has_42_fields_and_escapes_long_name) {
    im_tws_writer w;
    im_tws_contract_details d, back;
    im_tws_msg m;
    memset(&d, 0, sizeof d);
    d.req_id = 2001;
    d.contract = aapl();
    d.contract.strike = 0;
    strcpy(d.market_name, "NMS");
    d.min_tick = 0.01;
    strcpy(d.long_name, "Caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80 \\u0041 Inc");
    strcpy(d.time_zone_id, "US/Eastern");
    strcpy(d.stock_type, "COMMON");
    im_tws_writer_init(&w);
    im_tws_put_contract_details(&w, &d);
    ASSERT_EQ(field_count(&w), 42);
    ASSERT_STR_EQ(field_at(&w, 20), "Caf\\u00e9 \\u4e2d \\ud83d\\ude00 \\u005cu0041 Inc");
    ASSERT_STR_EQ(field_at(&w, 13), "265598");
    ASSERT_STR_EQ(field_at(&w, 21), "NASDAQ");
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_contract_details(&m, &back), 0);
    ASSERT_EQ(back.req_id, 2001);
    assert_contract_eq(&back.contract, &d.contract);
    ASSERT_STR_EQ(back.market_name, "NMS");
    ASSERT(back.min_tick == 0.01);
    ASSERT_STR_EQ(back.long_name, d.long_name);
    ASSERT_STR_EQ(back.time_zone_id, "US/Eastern");
    ASSERT_STR_EQ(back.stock_type, "COMMON");
    im_tws_writer_free(&w);
}

static int error_of(const char *fields, long long *id, int *code, char *text, size_t len) {
    static char buf[512];
    im_tws_msg m;
    size_t n = payload(buf, fields);
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    return im_tws_get_error(&m, id, code, text, len);
}

TEST(error_messages_round_trip_and_unescape) {
    im_tws_writer w;
    im_tws_msg m;
    long long id;
    int code;
    char text[128];
    im_tws_writer_init(&w);
    im_tws_put_error(&w, -1, 2104, "Market data farm connection is OK:usfarm");
    ASSERT_EQ(w.len, 4 + strlen("4") + 1 + 2 + 3 + 5 + 41 + 1);
    ASSERT_EQ(field_count(&w), 6);
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_error(&m, &id, &code, text, sizeof text), 0);
    ASSERT_EQ(id, -1);
    ASSERT_EQ(code, 2104);
    ASSERT_STR_EQ(text, "Market data farm connection is OK:usfarm");
    im_tws_writer_reset(&w);
    im_tws_put_error(&w, 12, 201, "Order rejected \xe2\x80\x93 Reason: \xe4\xb8\xad\xe6\x96\x87\t\x01");
    ASSERT_STR_EQ(field_at(&w, 5),
                  "Order rejected \\u2013 Reason: \\u4e2d\\u6587\t\\u0001");
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_error(&m, &id, &code, text, sizeof text), 0);
    ASSERT_STR_EQ(text, "Order rejected \xe2\x80\x93 Reason: \xe4\xb8\xad\xe6\x96\x87\t\x01");
    /* Invalid UTF-8 is written as U+FFFD. */
    im_tws_writer_reset(&w);
    im_tws_put_error(&w, 1, 1, "a\xff" "b\xc3");
    ASSERT_STR_EQ(field_at(&w, 5), "a\\ufffdb\\ufffd");
    im_tws_writer_free(&w);

    /* Escapes as peers send them: upper-case hex, lone surrogates, short
     * or bad escapes kept as text, \u0000 never becomes a NUL. */
    ASSERT_EQ(error_of("4|2|-1|2158|\\u4E2D\\u56FD|", &id, &code, text, sizeof text), 0);
    ASSERT_STR_EQ(text, "\xe4\xb8\xad\xe5\x9b\xbd");
    ASSERT_EQ(error_of("4|2|1|1|a\\ud83dz\\ude00|", &id, &code, text, sizeof text), 0);
    ASSERT_STR_EQ(text, "a\xef\xbf\xbdz\xef\xbf\xbd");
    ASSERT_EQ(error_of("4|2|1|1|\\u12|", &id, &code, text, sizeof text), 0);
    ASSERT_STR_EQ(text, "\\u12");
    ASSERT_EQ(error_of("4|2|1|1|\\uzzzz\\|", &id, &code, text, sizeof text), 0);
    ASSERT_STR_EQ(text, "\\uzzzz\\");
    ASSERT_EQ(error_of("4|2|1|1|x\\u0000y|", &id, &code, text, sizeof text), 0);
    ASSERT_STR_EQ(text, "x\xef\xbf\xbdy");
    /* Raw bytes that are not UTF-8 are kept as they came (found by
     * fuzz_tws: written back they become \ufffd, three bytes each once
     * read, so such a text can outgrow its buffer on a second trip). */
    ASSERT_EQ(error_of("4|2|1|1|a\xff\xfe|", &id, &code, text, sizeof text), 0);
    ASSERT_STR_EQ(text, "a\xff\xfe");
    ASSERT_EQ(error_of("4|2|1|1|\xff\xff\xff|", &id, &code, text, 4), 0);
    im_tws_writer_init(&w);
    im_tws_put_error(&w, 1, 1, "\xff\xff\xff");
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_error(&m, &id, &code, text, 4), IM_EPARSE);
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_error(&m, &id, &code, text, 10), 0);
    ASSERT_STR_EQ(text, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    im_tws_writer_free(&w);
    /* Too long for the buffer (counting the expansion) is an error. */
    ASSERT_EQ(error_of("4|2|1|1|\\u4e2d|", &id, &code, text, 3), IM_EPARSE);
    ASSERT_EQ(error_of("4|2|1|1|\\u4e2d|", &id, &code, text, 4), 0);
    /* The JSON field is required at 178; a surplus field is an error. */
    ASSERT_EQ(error_of("4|2|1|1|x", &id, &code, text, sizeof text), IM_EPARSE);
    ASSERT_EQ(error_of("4|2|1|1|x||", &id, &code, text, sizeof text), IM_EPARSE);
    ASSERT_EQ(error_of("4|2|1|1|x|", NULL, NULL, NULL, 0), 0);
}

TEST(writers_add_the_groups_their_order_type_calls_for) {
    /* Found by fuzz_tws: an openOrder of type PEG BENCH was written without
     * the 5-field PEG BENCH group its reader expects. */
    static const char *const types[] = {"PEG BENCH", "PEGBENCH", "peg bench", "PEG BEST",
                                        "PEG MID", "LMT"};
    static const int place_fields[] = {119, 119, 119, 116, 116, 114};
    static const int open_fields[] = {132, 132, 132, 127, 127, 127};
    im_tws_writer w;
    im_tws_msg m;
    im_tws_order o, back;
    const char *why;
    char status[16];
    im_tws_writer_init(&w);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        o = aapl_buy_100_lmt_150();
        strcpy(o.order_type, types[i]);
        im_tws_writer_reset(&w);
        im_tws_put_place_order(&w, &o);
        ASSERT_EQ(field_count(&w), place_fields[i]);
        m = one_msg(&w);
        ASSERT_EQ(im_tws_get_place_order(&m, &back, &why), 0);
        ASSERT_STR_EQ(back.order_type, types[i]);
        im_tws_writer_reset(&w);
        im_tws_put_open_order(&w, &o, "Submitted");
        ASSERT_EQ(field_count(&w), open_fields[i]);
        m = one_msg(&w);
        ASSERT_EQ(im_tws_get_open_order(&m, &back, status, sizeof status), 0);
    }
    /* IBKRATS adds minTradeQty; a BAG gets its (empty) combo group and is
     * then read, and refused, as a combo. */
    o = aapl_buy_100_lmt_150();
    strcpy(o.contract.exchange, "IBKRATS");
    im_tws_writer_reset(&w);
    im_tws_put_place_order(&w, &o);
    ASSERT_EQ(field_count(&w), 115);
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_place_order(&m, &back, &why), 0);
    o = aapl_buy_100_lmt_150();
    strcpy(o.contract.sec_type, "BAG");
    im_tws_writer_reset(&w);
    im_tws_put_place_order(&w, &o);
    ASSERT_EQ(field_count(&w), 117);
    m = one_msg(&w);
    ASSERT_EQ(im_tws_get_place_order(&m, &back, &why), IM_EINVAL);
    ASSERT_CONTAINS(why, "combo");
    im_tws_writer_free(&w);
}

TEST(what_if_orders_are_refused_with_a_reason) {
    char buf[1024];
    size_t n = 0;
    const char *p, *end, *why = NULL;
    im_tws_writer w;
    im_tws_order o = aapl_buy_100_lmt_150(), back;
    im_tws_msg m;
    im_tws_writer_init(&w);
    im_tws_put_place_order(&w, &o);
    /* The same message with whatIf (#85) = 1. */
    p = w.data + 4;
    end = w.data + w.len;
    for (int i = 1; p < end; i++) {
        size_t k = strlen(p) + 1;
        if (i == 85) {
            memcpy(buf + n, "1", 2);
            n += 2;
        } else {
            memcpy(buf + n, p, k);
            n += k;
        }
        p += k;
    }
    ASSERT_EQ(im_tws_msg_init(&m, buf, n), 0);
    ASSERT_EQ(im_tws_get_place_order(&m, &back, &why), IM_EINVAL);
    ASSERT_CONTAINS(why, "what-if");
    ASSERT_EQ(back.order_id, 12);   /* read, so the reply can name the order */
    im_tws_writer_free(&w);
}
