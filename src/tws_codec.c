/* tws_codec.c: the TWS socket API at server version 178, encode and decode
 * (tws_codec.h, reference/tws-protocol.md). No I/O: a writer appends frames
 * to a growing buffer, a reader cuts frames out of fed bytes, and the
 * structured messages are written and read field by field in the exact
 * order of the reference lists. Uses error.h only. */
#include "tws_codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* The text Java's String.valueOf(Double.MAX_VALUE) gives: JAVA sends it for
 * an unset plain double, and readers treat it as "unset". */
static const char DBL_MAX_TEXT[] = "1.7976931348623157E308";

/* ==== writing ==== */

void im_tws_writer_init(im_tws_writer *w) {
    memset(w, 0, sizeof *w);
}

void im_tws_writer_free(im_tws_writer *w) {
    free(w->data);
    memset(w, 0, sizeof *w);
}

void im_tws_writer_reset(im_tws_writer *w) {
    w->len = 0;
    w->frame = 0;
    w->open = 0;
    w->err = 0;
}

int im_tws_writer_error(const im_tws_writer *w) {
    return w->err;
}

/* Makes room for n more bytes; on failure remembers IM_ENOMEM. */
static int wr_reserve(im_tws_writer *w, size_t n) {
    size_t cap;
    char *p;
    if (w->err)
        return -1;
    if (n <= w->cap - w->len)
        return 0;
    if (n > SIZE_MAX / 2 - w->len) {
        w->err = IM_ENOMEM;
        return -1;
    }
    cap = w->cap ? w->cap : 256;
    while (cap - w->len < n)
        cap *= 2;
    p = realloc(w->data, cap);
    if (p == NULL) {
        w->err = IM_ENOMEM;
        return -1;
    }
    w->data = p;
    w->cap = cap;
    return 0;
}

static void wr_bytes(im_tws_writer *w, const void *s, size_t n) {
    if (wr_reserve(w, n) != 0)
        return;
    if (n > 0)
        memcpy(w->data + w->len, s, n);
    w->len += n;
}

/* One field: the text then its NUL. */
static void wr_field(im_tws_writer *w, const char *s, size_t n) {
    if (wr_reserve(w, n + 1) != 0)
        return;
    if (n > 0)
        memcpy(w->data + w->len, s, n);
    w->data[w->len + n] = '\0';
    w->len += n + 1;
}

static void put_be32(char *p, uint32_t v) {
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static uint32_t get_be32(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

void im_tws_put_prefix(im_tws_writer *w, int min_version, int max_version) {
    char v[64], hdr[4];
    int n;
    if (min_version == max_version)
        n = snprintf(v, sizeof v, "v%d", min_version);
    else
        n = snprintf(v, sizeof v, "v%d..%d", min_version, max_version);
    wr_bytes(w, "API", 4);   /* the three letters and their NUL */
    put_be32(hdr, (uint32_t)n);
    wr_bytes(w, hdr, 4);
    wr_bytes(w, v, (size_t)n);
}

void im_tws_begin(im_tws_writer *w, int msg_id) {
    static const char zero[4] = {0, 0, 0, 0};
    if (w->err)
        return;
    if (w->open) {
        /* A frame left open is a caller bug; refuse rather than nest. */
        w->err = IM_EINVAL;
        return;
    }
    w->frame = w->len;
    wr_bytes(w, zero, 4);
    if (w->err)
        return;
    w->open = 1;
    im_tws_put_int(w, msg_id);
}

int im_tws_end(im_tws_writer *w) {
    size_t payload;
    if (!w->open) {
        if (w->err == 0)
            w->err = IM_EINVAL;
        return w->err;
    }
    w->open = 0;
    if (w->err) {
        /* The frame may be partial: drop it so no half message is sent. */
        w->len = w->frame;
        return w->err;
    }
    payload = w->len - w->frame - 4;
    if (payload > IM_TWS_MAX_FRAME) {
        w->len = w->frame;
        w->err = IM_ETOOBIG;
        return w->err;
    }
    put_be32(w->data + w->frame, (uint32_t)payload);
    return 0;
}

void im_tws_put_str(im_tws_writer *w, const char *s) {
    if (s == NULL)
        s = "";
    wr_field(w, s, strlen(s));
}

/* Decimal text of v into buf (at least 21 bytes); returns its length. */
static size_t fmt_int(char *buf, long long v) {
    char tmp[24];
    size_t n = 0, i = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        buf[i++] = '-';
    while (n > 0)
        buf[i++] = tmp[--n];
    return i;
}

void im_tws_put_int(im_tws_writer *w, long long v) {
    char buf[24];
    wr_field(w, buf, fmt_int(buf, v));
}

void im_tws_put_int_max(im_tws_writer *w, int v) {
    if (v == IM_TWS_UNSET_INT)
        wr_field(w, "", 0);
    else
        im_tws_put_int(w, v);
}

/* Shortest "%.Ng" text (N = 15, 16, 17) that strtod reads back as v. The
 * C locale is in force (the program never calls setlocale), so the decimal
 * point is '.'. v must be finite. Returns the length. */
static size_t fmt_dbl(char *buf, size_t size, double v) {
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return (size_t)n;
}

void im_tws_put_dbl(im_tws_writer *w, double v) {
    char buf[40];
    if (!isfinite(v)) {
        wr_field(w, "", 0);
        return;
    }
    if (v == DBL_MAX) {
        wr_field(w, DBL_MAX_TEXT, sizeof DBL_MAX_TEXT - 1);
        return;
    }
    wr_field(w, buf, fmt_dbl(buf, sizeof buf, v));
}

void im_tws_put_dbl_max(im_tws_writer *w, double v) {
    if (v == IM_TWS_UNSET_DBL || !isfinite(v))
        wr_field(w, "", 0);
    else
        im_tws_put_dbl(w, v);
}

/* v in plain notation: the shortest round-trip digits, placed around the
 * decimal point without an exponent and without trailing zeros, as Java's
 * BigDecimal.stripTrailingZeros().toPlainString() would print them. v must
 * be finite. buf holds at least 350 bytes (DBL_MAX has 309 digits). */
static size_t fmt_plain(char *buf, double v) {
    char e[40], digits[24];
    int exp10 = 0, nd = 0;
    size_t o = 0;
    const char *p;

    for (int prec = 14; prec <= 16; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, v);
        if (strtod(e, NULL) == v)
            break;
    }
    p = e;
    if (*p == '-') {
        if (v != 0)
            buf[o++] = '-';
        p++;
    }
    /* "d.ddddde[+-]xx": collect the digits, then the exponent. */
    for (; *p != 'e' && *p != '\0'; p++)
        if (*p >= '0' && *p <= '9')
            digits[nd++] = *p;
    if (*p == 'e')
        exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (nd == 1 && digits[0] == '0') {
        buf[o++] = '0';
        buf[o] = '\0';
        return o;
    }
    /* The value is 0.d1d2d3... * 10^(exp10 + 1). */
    if (exp10 < 0) {
        buf[o++] = '0';
        buf[o++] = '.';
        for (int i = 0; i < -exp10 - 1; i++)
            buf[o++] = '0';
        for (int i = 0; i < nd; i++)
            buf[o++] = digits[i];
    } else {
        for (int i = 0; i <= exp10; i++)
            buf[o++] = i < nd ? digits[i] : '0';
        if (nd > exp10 + 1) {
            buf[o++] = '.';
            for (int i = exp10 + 1; i < nd; i++)
                buf[o++] = digits[i];
        }
    }
    buf[o] = '\0';
    return o;
}

void im_tws_put_dec(im_tws_writer *w, double v) {
    char buf[400];
    if (v == IM_TWS_UNSET_DBL || !isfinite(v)) {
        wr_field(w, "", 0);
        return;
    }
    wr_field(w, buf, fmt_plain(buf, v));
}

void im_tws_put_bool(im_tws_writer *w, int b) {
    wr_field(w, b ? "1" : "0", 1);
}

/* ==== reading: frames ==== */

void im_tws_reader_init(im_tws_reader *r, int server) {
    memset(r, 0, sizeof *r);
    r->want_prefix = server != 0;
}

void im_tws_reader_free(im_tws_reader *r) {
    free(r->buf);
    memset(r, 0, sizeof *r);
}

int im_tws_reader_feed(im_tws_reader *r, const char *data, size_t n) {
    size_t live, cap;
    char *p;
    if (r->err)
        return 0;   /* the stream is already broken; nothing will be read */
    if (n == 0)
        return 0;
    /* Drop what was consumed: views into it expire with this call. */
    live = r->len - r->pos;
    if (r->pos > 0) {
        if (live > 0)
            memmove(r->buf, r->buf + r->pos, live);
        r->len = live;
        r->pos = 0;
    }
    if (n > r->cap - r->len) {
        /* Grows with what arrived, never with what a length prefix
         * announces, so a huge prefix followed by silence costs nothing. */
        if (n > SIZE_MAX / 2 - r->len)
            return IM_ENOMEM;
        cap = r->cap ? r->cap : 4096;
        while (cap - r->len < n)
            cap *= 2;
        p = realloc(r->buf, cap);
        if (p == NULL)
            return IM_ENOMEM;
        r->buf = p;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    return 0;
}

/* Parses a non-negative decimal int of at most 9 digits from [p, end);
 * returns -1 when the text is not that. */
static int parse_version(const char *p, const char *end) {
    int v = 0;
    if (p >= end || end - p > 9)
        return -1;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

/* The longest version string accepted: "v<min>..<max> <options>". Real
 * clients send under 40 bytes; anything near this is not a TWS client. */
#define PREFIX_MAX_TEXT 1024

int im_tws_reader_prefix(im_tws_reader *r, int *min_version, int *max_version, char *opts,
                         size_t optslen) {
    const char *p, *v, *vend, *dots, *sp;
    size_t have, n;
    uint32_t len;
    int lo, hi;

    if (r->err)
        return r->err;
    if (!r->want_prefix)
        return IM_EINVAL;
    have = r->len - r->pos;
    if (have == 0)
        return 0;
    p = r->buf + r->pos;
    /* Refuse a wrong magic as soon as its first wrong byte is seen. */
    if (memcmp(p, "API", have < 4 ? have : 4) != 0) {
        r->err = IM_EPARSE;
        return r->err;
    }
    if (have < 8)
        return 0;
    len = get_be32(p + 4);
    if (len < 2 || len > PREFIX_MAX_TEXT) {
        r->err = IM_EPARSE;
        return r->err;
    }
    if (have < 8 + (size_t)len)
        return 0;
    v = p + 8;
    vend = v + len;
    if (v[0] != 'v') {
        r->err = IM_EPARSE;
        return r->err;
    }
    v++;
    sp = memchr(v, ' ', (size_t)(vend - v));
    if (sp == NULL)
        sp = vend;
    dots = NULL;
    for (const char *q = v; q + 1 < sp; q++) {
        if (q[0] == '.' && q[1] == '.') {
            dots = q;
            break;
        }
    }
    if (dots != NULL) {
        lo = parse_version(v, dots);
        hi = parse_version(dots + 2, sp);
    } else {
        lo = hi = parse_version(v, sp);
    }
    if (lo <= 0 || hi <= 0 || lo > hi) {
        r->err = IM_EPARSE;
        return r->err;
    }
    /* Options are text: a NUL in them means the bytes are not a prefix. */
    if (sp < vend && memchr(sp, '\0', (size_t)(vend - sp)) != NULL) {
        r->err = IM_EPARSE;
        return r->err;
    }
    if (min_version)
        *min_version = lo;
    if (max_version)
        *max_version = hi;
    if (opts != NULL && optslen > 0) {
        n = sp < vend ? (size_t)(vend - sp - 1) : 0;
        if (n > optslen - 1)
            n = optslen - 1;
        if (n > 0)
            memcpy(opts, sp + 1, n);
        opts[n] = '\0';
    }
    r->pos += 8 + (size_t)len;
    r->want_prefix = 0;
    return 1;
}

int im_tws_reader_next(im_tws_reader *r, im_tws_msg *m) {
    const char *p;
    size_t have;
    uint32_t len;
    int rc;

    if (r->err)
        return r->err;
    if (r->want_prefix)
        return IM_EINVAL;
    have = r->len - r->pos;
    if (have < 4)
        return 0;
    p = r->buf + r->pos;
    len = get_be32(p);
    if (len > IM_TWS_MAX_FRAME) {
        r->err = IM_ETOOBIG;
        return r->err;
    }
    if (len == 0) {
        r->err = IM_EPARSE;
        return r->err;
    }
    if (have - 4 < len)
        return 0;
    rc = im_tws_msg_init(m, p + 4, len);
    if (rc != 0) {
        r->err = rc;
        return rc;
    }
    r->pos += 4 + (size_t)len;
    return 1;
}

/* ==== reading: fields ==== */

/* The next field: its start and length, or NULL (and err) past the end.
 * A field always ends in a NUL inside the payload (checked at init). */
static const char *next_field(im_tws_msg *m, size_t *n) {
    const char *f, *nul;
    if (m->err || m->p >= m->end) {
        m->err = IM_EPARSE;
        return NULL;
    }
    f = m->p;
    nul = memchr(f, '\0', (size_t)(m->end - f));
    if (nul == NULL) {   /* cannot happen for a checked payload */
        m->err = IM_EPARSE;
        return NULL;
    }
    *n = (size_t)(nul - f);
    m->p = nul + 1;
    return f;
}

/* Strict decimal integer: optional sign then 1..19 digits, no spaces.
 * Returns 0 and *out, or -1. */
static int parse_ll(const char *s, size_t n, long long *out) {
    unsigned long long u = 0, lim;
    size_t i = 0;
    int neg = 0;
    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == n)
        return -1;
    lim = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    for (; i < n; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        d = (unsigned)(s[i] - '0');
        if (u > (lim - d) / 10)
            return -1;
        u = u * 10 + d;
    }
    *out = neg ? (long long)(0ULL - u) : (long long)u;
    return 0;
}

int im_tws_msg_init(im_tws_msg *m, const char *payload, size_t len) {
    long long id;
    const char *f;
    size_t n;
    m->p = payload;
    m->end = payload + len;
    m->id = 0;
    m->err = 0;
    if (len == 0 || payload[len - 1] != '\0') {
        m->p = m->end;
        m->err = IM_EPARSE;
        return IM_EPARSE;
    }
    f = next_field(m, &n);
    if (f == NULL || parse_ll(f, n, &id) != 0 || id < INT_MIN || id > INT_MAX) {
        m->err = IM_EPARSE;
        return IM_EPARSE;
    }
    m->id = (int)id;
    return 0;
}

const char *im_tws_get_str(im_tws_msg *m) {
    size_t n;
    const char *f = next_field(m, &n);
    return f ? f : "";
}

long long im_tws_get_int(im_tws_msg *m) {
    size_t n;
    long long v;
    const char *f = next_field(m, &n);
    if (f == NULL || n == 0)
        return 0;
    if (parse_ll(f, n, &v) != 0) {
        m->err = IM_EPARSE;
        return 0;
    }
    return v;
}

int im_tws_get_int_max(im_tws_msg *m) {
    size_t n;
    long long v;
    const char *f = next_field(m, &n);
    if (f == NULL || n == 0)
        return IM_TWS_UNSET_INT;
    if (parse_ll(f, n, &v) != 0 || v < INT_MIN || v > INT_MAX) {
        m->err = IM_EPARSE;
        return IM_TWS_UNSET_INT;
    }
    return (int)v;
}

/* An int field that must fit in an int (ids, counts, codes). */
static int get_int32(im_tws_msg *m) {
    long long v = im_tws_get_int(m);
    if (v < INT_MIN || v > INT_MAX) {
        m->err = IM_EPARSE;
        return 0;
    }
    return (int)v;
}

static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A number as Java's Double.parseDouble reads the forms peers send:
 * [sign] digits [. digits] [(e|E) [sign] digits], or [sign] "Infinity" /
 * "Infinite" (ib_async's spelling). NaN, hex and spaces are refused.
 * Returns 0 and *out, or -1. */
static int parse_dbl(const char *s, size_t n, double *out) {
    char tmp[64];
    const char *q = s, *end = s + n, *cut;
    unsigned long long mant = 0;
    int neg = 0, ndig = 0, frac = 0, sig = 0, any = 0;

    if (q < end && (*q == '-' || *q == '+')) {
        neg = *q == '-';
        q++;
    }
    if (end - q == 8 && (memcmp(q, "Infinity", 8) == 0 || memcmp(q, "Infinite", 8) == 0)) {
        *out = neg ? -HUGE_VAL : HUGE_VAL;
        return 0;
    }
    /* Validate the syntax, and on the way collect up to 19 significant
     * digits for the exact fast path below. */
    for (; q < end && *q >= '0' && *q <= '9'; q++) {
        any = 1;
        if (mant == 0 && *q == '0')
            continue;
        if (sig < 19)
            mant = mant * 10 + (unsigned)(*q - '0');
        else
            ndig++;   /* digits beyond 19: not for the fast path */
        sig++;
    }
    if (q < end && *q == '.') {
        q++;
        for (; q < end && *q >= '0' && *q <= '9'; q++) {
            any = 1;
            frac++;
            if (mant == 0 && *q == '0')
                continue;
            if (sig < 19)
                mant = mant * 10 + (unsigned)(*q - '0');
            else
                ndig++;
            sig++;
        }
    }
    if (!any)
        return -1;
    cut = q;
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < end && (*q == '-' || *q == '+'))
            q++;
        if (q == end)
            return -1;
        for (; q < end; q++)
            if (*q < '0' || *q > '9')
                return -1;
    }
    if (q != end)
        return -1;
    /* Fast path (exact): an integer mantissa below 2^53 divided by an
     * exactly representable power of ten rounds once, as strtod would. */
    if (cut == end && ndig == 0 && mant < (1ULL << 53) && frac <= 22) {
        double d = (double)mant / POW10[frac];
        *out = neg ? -d : d;
        return 0;
    }
    if (n >= sizeof tmp) {
        /* Long numbers are rare: parse from a heap copy. */
        char *h = malloc(n + 1);
        if (h == NULL)
            return -1;
        memcpy(h, s, n);
        h[n] = '\0';
        *out = strtod(h, NULL);
        free(h);
        return 0;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    *out = strtod(tmp, NULL);   /* overflow gives +-HUGE_VAL, as Java's Infinity */
    return 0;
}

double im_tws_get_dbl(im_tws_msg *m) {
    size_t n;
    double v;
    const char *f = next_field(m, &n);
    if (f == NULL || n == 0)
        return 0;
    if (parse_dbl(f, n, &v) != 0) {
        m->err = IM_EPARSE;
        return 0;
    }
    return v;
}

double im_tws_get_dbl_max(im_tws_msg *m) {
    size_t n;
    double v;
    const char *f = next_field(m, &n);
    if (f == NULL || n == 0)
        return IM_TWS_UNSET_DBL;
    if (parse_dbl(f, n, &v) != 0) {
        m->err = IM_EPARSE;
        return IM_TWS_UNSET_DBL;
    }
    return v;
}

double im_tws_get_dec(im_tws_msg *m) {
    char tmp[64];
    size_t n, k = 0;
    double v;
    const char *f = next_field(m, &n);
    if (f == NULL || n == 0)
        return IM_TWS_UNSET_DBL;
    if ((n == 10 && memcmp(f, "2147483647", 10) == 0) ||
        (n == 19 && memcmp(f, "9223372036854775807", 19) == 0))
        return IM_TWS_UNSET_DBL;
    if (memchr(f, ',', n) != NULL) {
        /* JAVA's readDecimal drops thousands separators. */
        for (size_t i = 0; i < n && k < sizeof tmp; i++)
            if (f[i] != ',')
                tmp[k++] = f[i];
        if (k == sizeof tmp || k == 0) {
            m->err = IM_EPARSE;
            return IM_TWS_UNSET_DBL;
        }
        f = tmp;
        n = k;
    }
    if (parse_dbl(f, n, &v) != 0) {
        m->err = IM_EPARSE;
        return IM_TWS_UNSET_DBL;
    }
    /* DBL_MAX is the fourth sentinel; a Decimal is never infinite (STQ
     * maps Infinity to undefined). */
    if (v == DBL_MAX || !isfinite(v))
        return IM_TWS_UNSET_DBL;
    return v;
}

int im_tws_get_bool(im_tws_msg *m) {
    return im_tws_get_int(m) != 0;
}

void im_tws_skip(im_tws_msg *m, int n) {
    size_t len;
    for (int i = 0; i < n && !m->err; i++)
        next_field(m, &len);
}

void im_tws_get_text(im_tws_msg *m, char *out, size_t outlen) {
    size_t n;
    const char *f = next_field(m, &n);
    if (outlen == 0) {
        m->err = IM_EPARSE;
        return;
    }
    out[0] = '\0';
    if (f == NULL)
        return;
    if (n >= outlen) {
        m->err = IM_EPARSE;
        return;
    }
    memcpy(out, f, n);
    out[n] = '\0';
}

int im_tws_remaining(const im_tws_msg *m) {
    int n = 0;
    for (const char *q = m->p; q < m->end; q++)
        n += *q == '\0';
    return n;
}

int im_tws_finish(const im_tws_msg *m) {
    return m->err || m->p != m->end ? IM_EPARSE : 0;
}

/* ==== \uXXXX text (errMsg text, contractDetails longName) ==== */

/* Decodes one UTF-8 sequence at s (n bytes available); returns its length
 * and *cp, or 0 for an invalid sequence. */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp) {
    unsigned c = s[0], need, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        min = 0x80;
        c &= 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        min = 0x800;
        c &= 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        min = 0x10000;
        c &= 0x07;
    } else {
        return 0;
    }
    if (n < need + 1)
        return 0;
    for (unsigned i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return need + 1;
}

static size_t utf8_encode(char *out, unsigned cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static void esc_unit(char *out, unsigned u) {
    static const char hex[] = "0123456789abcdef";
    out[0] = '\\';
    out[1] = 'u';
    out[2] = hex[u >> 12 & 0xF];
    out[3] = hex[u >> 8 & 0xF];
    out[4] = hex[u >> 4 & 0xF];
    out[5] = hex[u & 0xF];
}

/* Writes s as one field in the 7-bit form TWS uses from sv 153: non-ASCII
 * characters (and control characters other than tab, LF, CR) become
 * \uXXXX UTF-16 units, invalid UTF-8 becomes \ufffd. A backslash that
 * starts "\u" is itself escaped (\u005c) so the text reads back intact. */
static void put_escaped(im_tws_writer *w, const char *s) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)p), o = 0;
    char *buf;
    /* Each input byte gives at most 6 output bytes (a 4-byte character
     * gives two 6-byte units: 12 <= 4 * 6). */
    if (n > (SIZE_MAX - 1) / 6 || wr_reserve(w, n * 6 + 1) != 0) {
        if (w->err == 0)
            w->err = IM_ENOMEM;
        return;
    }
    buf = w->data + w->len;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i], cp;
        size_t k;
        if (c >= 0x20 && c < 0x7F) {
            if (c == '\\' && p[i + 1] == 'u')
                esc_unit(buf + o, c), o += 6;
            else
                buf[o++] = (char)c;
            i++;
            continue;
        }
        if (c == '\t' || c == '\n' || c == '\r') {
            buf[o++] = (char)c;
            i++;
            continue;
        }
        k = utf8_decode(p + i, n - i, &cp);
        if (k == 0) {
            cp = 0xFFFD;
            k = 1;
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            esc_unit(buf + o, 0xD800 | cp >> 10);
            esc_unit(buf + o + 6, 0xDC00 | (cp & 0x3FF));
            o += 12;
        } else {
            esc_unit(buf + o, cp);
            o += 6;
        }
        i += k;
    }
    buf[o++] = '\0';
    w->len += o;
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Reads the next field into out, turning \uXXXX escapes into UTF-8 (a
 * surrogate pair into one character; a lone surrogate or U+0000 into
 * U+FFFD, so the text stays valid and NUL-free). A backslash without four
 * hex digits is kept as it is. Output longer than outlen sets err. */
static void get_unescaped(im_tws_msg *m, char *out, size_t outlen) {
    size_t n, o = 0;
    const char *f = next_field(m, &n);
    if (outlen == 0) {
        m->err = IM_EPARSE;
        return;
    }
    out[0] = '\0';
    if (f == NULL)
        return;
    for (size_t i = 0; i < n;) {
        char tmp[4];
        size_t k;
        unsigned u, lo, cp;
        if (f[i] == '\\' && n - i >= 6 && f[i + 1] == 'u' && hex4(f + i + 2, &u) == 0) {
            i += 6;
            cp = u;
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (n - i >= 6 && f[i] == '\\' && f[i + 1] == 'u' && hex4(f + i + 2, &lo) == 0 &&
                    lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                } else {
                    cp = 0xFFFD;
                }
            } else if ((u >= 0xDC00 && u <= 0xDFFF) || u == 0) {
                cp = 0xFFFD;
            }
            k = utf8_encode(tmp, cp);
        } else {
            tmp[0] = f[i++];
            k = 1;
        }
        if (outlen - o <= k) {
            m->err = IM_EPARSE;
            out[0] = '\0';
            return;
        }
        memcpy(out + o, tmp, k);
        o += k;
    }
    out[o] = '\0';
}

/* ==== structured messages ==== */

/* A count that drives a group: it must be 0..remaining fields, so a hostile
 * count cannot make a loop spin past the end of the payload. */
static int get_count(im_tws_msg *m, int per_item) {
    long long c = im_tws_get_int(m);
    if (m->err)
        return 0;
    if (c < 0 || (per_item > 0 && c > (long long)(m->end - m->p) / per_item)) {
        m->err = IM_EPARSE;
        return 0;
    }
    return (int)c;
}

/* Case-insensitive comparison of an order type with a name, where the
 * name's space may also be absent ("PEG BENCH" or "PEGBENCH"). */
static int order_type_is(const char *t, const char *name) {
    for (;;) {
        if (*name == ' ' && *t != ' ') {
            name++;
            continue;
        }
        if (*t == '\0' || *name == '\0')
            return *t == *name;
        char a = *t, b = *name;
        if (a >= 'a' && a <= 'z')
            a = (char)(a - 'a' + 'A');
        if (a != b)
            return 0;
        t++;
        name++;
    }
}

void im_tws_order_init(im_tws_order *o) {
    memset(o, 0, sizeof *o);
    o->lmt_price = IM_TWS_UNSET_DBL;
    o->aux_price = IM_TWS_UNSET_DBL;
    o->total_qty = IM_TWS_UNSET_DBL;
    o->transmit = 1;
}

/* The PEG BENCH group of placeOrder and openOrder, with JAVA's defaults,
 * written whenever the order type asks for it so that every message the
 * writers produce reads back. */
static void put_peg_bench(im_tws_writer *w, const im_tws_order *o) {
    if (!order_type_is(o->order_type, "PEG BENCH"))
        return;
    im_tws_put_int(w, 0);       /* referenceContractId */
    im_tws_put_bool(w, 0);      /* isPeggedChangeAmountDecrease */
    im_tws_put_dbl(w, 0);       /* peggedChangeAmount */
    im_tws_put_dbl(w, 0);       /* referenceChangeAmount */
    im_tws_put_str(w, "");      /* referenceExchangeId */
}

void im_tws_put_place_order(im_tws_writer *w, const im_tws_order *o) {
    const im_tws_contract *c = &o->contract;
    im_tws_begin(w, IM_TWS_OUT_PLACE_ORDER);          /* #1 */
    im_tws_put_int(w, o->order_id);                   /* #2 */
    im_tws_put_int(w, c->con_id);
    im_tws_put_str(w, c->symbol);
    im_tws_put_str(w, c->sec_type);
    im_tws_put_str(w, c->last_trade);
    im_tws_put_dbl(w, c->strike);                     /* #7: JAVA "0.0" */
    im_tws_put_str(w, c->right);
    im_tws_put_str(w, c->multiplier);
    im_tws_put_str(w, c->exchange);                   /* #10 */
    im_tws_put_str(w, c->primary_exch);
    im_tws_put_str(w, c->currency);
    im_tws_put_str(w, c->local_symbol);
    im_tws_put_str(w, c->trading_class);
    im_tws_put_str(w, "");                            /* #15 secIdType */
    im_tws_put_str(w, "");                            /* secId */
    im_tws_put_str(w, o->action);                     /* #17 */
    im_tws_put_dec(w, o->total_qty);
    im_tws_put_str(w, o->order_type);
    im_tws_put_dbl_max(w, o->lmt_price);              /* #20 */
    im_tws_put_dbl_max(w, o->aux_price);
    im_tws_put_str(w, o->tif);
    im_tws_put_str(w, "");                            /* ocaGroup */
    im_tws_put_str(w, o->account);
    im_tws_put_str(w, "");                            /* #25 openClose */
    im_tws_put_int(w, 0);                             /* origin: customer */
    im_tws_put_str(w, o->order_ref);
    im_tws_put_bool(w, o->transmit);                  /* #28 */
    im_tws_put_int(w, o->parent_id);
    im_tws_put_bool(w, 0);                            /* #30 blockOrder */
    im_tws_put_bool(w, 0);                            /* sweepToFill */
    im_tws_put_int(w, 0);                             /* displaySize */
    im_tws_put_int(w, 0);                             /* triggerMethod */
    im_tws_put_bool(w, o->outside_rth);
    im_tws_put_bool(w, 0);                            /* #35 hidden */
    if (strcmp(c->sec_type, "BAG") == 0) {
        /* The group JAVA writes for a combo, here with no legs, so the
         * message stays readable (im_tws_get_place_order refuses combos). */
        im_tws_put_int(w, 0);                         /* comboLegCount */
        im_tws_put_int(w, 0);                         /* orderComboLegCount */
        im_tws_put_int(w, 0);                         /* smartComboRoutingParamCount */
    }
    im_tws_put_str(w, "");                            /* #36 sharesAllocation */
    im_tws_put_dbl(w, DBL_MAX);                       /* discretionaryAmt: plain double */
    im_tws_put_str(w, "");                            /* goodAfterTime */
    im_tws_put_str(w, "");                            /* goodTillDate */
    im_tws_put_str(w, "");                            /* #40 faGroup */
    im_tws_put_str(w, "");                            /* faMethod */
    im_tws_put_str(w, "");                            /* faPercentage */
    im_tws_put_str(w, "");                            /* modelCode */
    im_tws_put_int(w, 0);                             /* shortSaleSlot */
    im_tws_put_str(w, "");                            /* #45 designatedLocation */
    im_tws_put_int(w, -1);                            /* exemptCode */
    im_tws_put_int(w, 0);                             /* ocaType */
    im_tws_put_str(w, "");                            /* rule80A */
    im_tws_put_str(w, "");                            /* settlingFirm */
    im_tws_put_bool(w, 0);                            /* #50 allOrNone */
    im_tws_put_int_max(w, IM_TWS_UNSET_INT);          /* minQty */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* percentOffset */
    im_tws_put_bool(w, 0);                            /* eTradeOnly */
    im_tws_put_bool(w, 0);                            /* firmQuoteOnly */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* #55 nbboPriceCap */
    im_tws_put_int_max(w, 0);                         /* auctionStrategy: JAVA sendMax(0) */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* startingPrice */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* stockRefPrice */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* delta */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* #60 stockRangeLower */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* stockRangeUpper */
    im_tws_put_bool(w, 0);                            /* overridePercentageConstraints */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* volatility */
    im_tws_put_int_max(w, IM_TWS_UNSET_INT);          /* volatilityType */
    im_tws_put_str(w, "");                            /* #65 deltaNeutralOrderType */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* deltaNeutralAuxPrice */
    im_tws_put_int(w, 0);                             /* continuousUpdate */
    im_tws_put_int_max(w, IM_TWS_UNSET_INT);          /* referencePriceType */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* trailStopPrice */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* #70 trailingPercent */
    im_tws_put_int_max(w, IM_TWS_UNSET_INT);          /* scaleInitLevelSize */
    im_tws_put_int_max(w, IM_TWS_UNSET_INT);          /* scaleSubsLevelSize */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* scalePriceIncrement */
    im_tws_put_str(w, "");                            /* scaleTable */
    im_tws_put_str(w, "");                            /* #75 activeStartTime */
    im_tws_put_str(w, "");                            /* activeStopTime */
    im_tws_put_str(w, "");                            /* hedgeType */
    im_tws_put_bool(w, 0);                            /* optOutSmartRouting */
    im_tws_put_str(w, "");                            /* clearingAccount */
    im_tws_put_str(w, "");                            /* #80 clearingIntent */
    im_tws_put_bool(w, 0);                            /* notHeld */
    im_tws_put_bool(w, 0);                            /* #82 deltaNeutralContract present */
    im_tws_put_str(w, "");                            /* algoStrategy */
    im_tws_put_str(w, "");                            /* algoId */
    im_tws_put_bool(w, 0);                            /* #85 whatIf */
    im_tws_put_str(w, "");                            /* orderMiscOptions */
    im_tws_put_bool(w, 0);                            /* solicited */
    im_tws_put_bool(w, 0);                            /* randomizeSize */
    im_tws_put_bool(w, 0);                            /* randomizePrice */
    put_peg_bench(w, o);
    im_tws_put_int(w, 0);                             /* #90 conditionsCount */
    im_tws_put_str(w, "");                            /* adjustedOrderType */
    im_tws_put_dbl(w, DBL_MAX);                       /* triggerPrice: plain double */
    im_tws_put_dbl(w, DBL_MAX);                       /* lmtPriceOffset */
    im_tws_put_dbl(w, DBL_MAX);                       /* adjustedStopPrice */
    im_tws_put_dbl(w, DBL_MAX);                       /* #95 adjustedStopLimitPrice */
    im_tws_put_dbl(w, DBL_MAX);                       /* adjustedTrailingAmount */
    im_tws_put_int(w, 0);                             /* adjustableTrailingUnit */
    im_tws_put_str(w, "");                            /* extOperator */
    im_tws_put_str(w, "");                            /* softDollarTier.name */
    im_tws_put_str(w, "");                            /* #100 softDollarTier.value */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* cashQty */
    im_tws_put_str(w, "");                            /* mifid2DecisionMaker */
    im_tws_put_str(w, "");                            /* mifid2DecisionAlgo */
    im_tws_put_str(w, "");                            /* mifid2ExecutionTrader */
    im_tws_put_str(w, "");                            /* #105 mifid2ExecutionAlgo */
    im_tws_put_bool(w, 0);                            /* dontUseAutoPriceForHedge */
    im_tws_put_bool(w, 0);                            /* isOmsContainer */
    im_tws_put_bool(w, 0);                            /* discretionaryUpToLimitPrice */
    im_tws_put_str(w, "");                            /* usePriceMgmtAlgo: Boolean null */
    /* #110, #111: JAVA sends these unset ints with send(int), not sendMax. */
    im_tws_put_int(w, IM_TWS_UNSET_INT);              /* #110 duration */
    im_tws_put_int(w, IM_TWS_UNSET_INT);              /* postToAts */
    im_tws_put_bool(w, 0);                            /* autoCancelParent */
    im_tws_put_str(w, "");                            /* advancedErrorOverride */
    im_tws_put_str(w, "");                            /* #114 manualOrderTime */
    /* >= 170: only for IBKRATS and the PEG BEST / PEG MID types. */
    if (strcmp(c->exchange, "IBKRATS") == 0)
        im_tws_put_int_max(w, IM_TWS_UNSET_INT);      /* minTradeQty */
    if (order_type_is(o->order_type, "PEG BEST")) {
        im_tws_put_int_max(w, IM_TWS_UNSET_INT);      /* minCompeteSize */
        im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);      /* competeAgainstBestOffset */
    } else if (order_type_is(o->order_type, "PEG MID")) {
        im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);      /* midOffsetAtWhole */
        im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);      /* midOffsetAtHalf */
    }
    im_tws_end(w);
}

/* Skips one order condition (after its type), per JAVA's OrderCondition
 * subclasses: conjunction, then the type's own fields. */
static void skip_condition(im_tws_msg *m, int type) {
    switch (type) {
    case 1: im_tws_skip(m, 6); break;   /* price: conj, isMore, price, conId, exch, trigger */
    case 3:                              /* time: conj, isMore, time */
    case 4: im_tws_skip(m, 3); break;   /* margin: conj, isMore, percent */
    case 5: im_tws_skip(m, 4); break;   /* execution: conj, secType, exch, symbol */
    case 6:                              /* volume: conj, isMore, volume, conId, exch */
    case 7: im_tws_skip(m, 5); break;   /* percent change: same shape */
    default: m->err = IM_EPARSE; break;
    }
}

/* The conditions group: count, then per condition its type and fields,
 * then conditionsIgnoreRth and conditionsCancelOrder. Returns the count. */
static int skip_conditions(im_tws_msg *m) {
    int n = get_count(m, 2);
    for (int i = 0; i < n && !m->err; i++)
        skip_condition(m, get_int32(m));
    if (n > 0)
        im_tws_skip(m, 2);
    return n;
}

int im_tws_get_place_order(im_tws_msg *m, im_tws_order *o, const char **why) {
    im_tws_contract *c;
    char dn_type[64], s[64];
    int bag, n, conditions, what_if;
    double scale_incr, compete;

    if (why)
        *why = NULL;
    if (m->id != IM_TWS_OUT_PLACE_ORDER)
        return IM_EINVAL;
    c = &o->contract;
    im_tws_order_init(o);
    o->order_id = im_tws_get_int(m);                  /* #2 */
    c->con_id = im_tws_get_int(m);
    im_tws_get_text(m, c->symbol, sizeof c->symbol);
    im_tws_get_text(m, c->sec_type, sizeof c->sec_type);
    im_tws_get_text(m, c->last_trade, sizeof c->last_trade);
    c->strike = im_tws_get_dbl(m);
    im_tws_get_text(m, c->right, sizeof c->right);
    im_tws_get_text(m, c->multiplier, sizeof c->multiplier);
    im_tws_get_text(m, c->exchange, sizeof c->exchange);   /* #10 */
    im_tws_get_text(m, c->primary_exch, sizeof c->primary_exch);
    im_tws_get_text(m, c->currency, sizeof c->currency);
    im_tws_get_text(m, c->local_symbol, sizeof c->local_symbol);
    im_tws_get_text(m, c->trading_class, sizeof c->trading_class);
    im_tws_skip(m, 2);                                /* #15 secIdType, secId */
    im_tws_get_text(m, o->action, sizeof o->action);  /* #17 */
    o->total_qty = im_tws_get_dec(m);
    im_tws_get_text(m, o->order_type, sizeof o->order_type);
    o->lmt_price = im_tws_get_dbl_max(m);             /* #20 */
    o->aux_price = im_tws_get_dbl_max(m);
    im_tws_get_text(m, o->tif, sizeof o->tif);
    im_tws_skip(m, 1);                                /* ocaGroup */
    im_tws_get_text(m, o->account, sizeof o->account);
    im_tws_skip(m, 2);                                /* #25 openClose, origin */
    im_tws_get_text(m, o->order_ref, sizeof o->order_ref);
    o->transmit = im_tws_get_bool(m);                 /* #28 */
    o->parent_id = im_tws_get_int(m);
    im_tws_skip(m, 4);                                /* #30 block, sweep, display, trigger */
    o->outside_rth = im_tws_get_bool(m);              /* #34 */
    im_tws_skip(m, 1);                                /* hidden */
    bag = strcmp(c->sec_type, "BAG") == 0;
    if (bag) {
        n = get_count(m, 8);
        im_tws_skip(m, n * 8);                        /* combo legs */
        n = get_count(m, 1);
        im_tws_skip(m, n);                            /* per-leg prices */
        n = get_count(m, 2);
        im_tws_skip(m, n * 2);                        /* smart combo routing params */
    }
    im_tws_skip(m, 29);                               /* #36 .. #64 */
    im_tws_get_text(m, dn_type, sizeof dn_type);      /* #65 */
    im_tws_skip(m, 1);                                /* deltaNeutralAuxPrice */
    if (dn_type[0] != '\0')
        im_tws_skip(m, 8);
    im_tws_skip(m, 6);                                /* #67 .. #72 */
    scale_incr = im_tws_get_dbl_max(m);               /* #73 */
    if (scale_incr > 0 && scale_incr != IM_TWS_UNSET_DBL)
        im_tws_skip(m, 7);
    im_tws_skip(m, 3);                                /* #74 .. #76 */
    im_tws_get_text(m, s, sizeof s);                  /* #77 hedgeType */
    if (s[0] != '\0')
        im_tws_skip(m, 1);
    im_tws_skip(m, 4);                                /* #78 .. #81 */
    if (im_tws_get_bool(m))                           /* #82 */
        im_tws_skip(m, 3);
    im_tws_get_text(m, s, sizeof s);                  /* #83 algoStrategy */
    if (s[0] != '\0') {
        n = get_count(m, 2);
        im_tws_skip(m, n * 2);
    }
    im_tws_skip(m, 1);                                /* algoId */
    what_if = im_tws_get_bool(m);                     /* #85 */
    im_tws_skip(m, 4);                                /* #86 .. #89 */
    if (order_type_is(o->order_type, "PEG BENCH"))
        im_tws_skip(m, 5);
    conditions = skip_conditions(m);                  /* #90 */
    im_tws_skip(m, 24);                               /* #91 .. #114 */
    if (strcmp(c->exchange, "IBKRATS") == 0)
        im_tws_skip(m, 1);                            /* minTradeQty */
    if (order_type_is(o->order_type, "PEG BEST")) {
        im_tws_skip(m, 1);                            /* minCompeteSize */
        compete = im_tws_get_dbl_max(m);
        if (compete == HUGE_VAL)                      /* "up to mid" */
            im_tws_skip(m, 2);
    } else if (order_type_is(o->order_type, "PEG MID")) {
        im_tws_skip(m, 2);
    }
    if (im_tws_finish(m) != 0)
        return IM_EPARSE;
    if (bag) {
        if (why)
            *why = "combo (BAG) orders are not supported";
        return IM_EINVAL;
    }
    if (conditions > 0) {
        if (why)
            *why = "conditional orders are not supported";
        return IM_EINVAL;
    }
    if (what_if) {
        if (why)
            *why = "what-if orders are not supported";
        return IM_EINVAL;
    }
    return 0;
}

void im_tws_put_open_order(im_tws_writer *w, const im_tws_order *o, const char *status) {
    const im_tws_contract *c = &o->contract;
    im_tws_begin(w, IM_TWS_IN_OPEN_ORDER);            /* #1 */
    im_tws_put_int(w, o->order_id);
    im_tws_put_int(w, c->con_id);
    im_tws_put_str(w, c->symbol);
    im_tws_put_str(w, c->sec_type);                   /* #5 */
    im_tws_put_str(w, c->last_trade);
    im_tws_put_dbl(w, c->strike);
    im_tws_put_str(w, c->right);
    im_tws_put_str(w, c->multiplier);
    im_tws_put_str(w, c->exchange);                   /* #10 */
    im_tws_put_str(w, c->currency);
    im_tws_put_str(w, c->local_symbol);
    im_tws_put_str(w, c->trading_class);
    im_tws_put_str(w, o->action);
    im_tws_put_dec(w, o->total_qty);                  /* #15 */
    im_tws_put_str(w, o->order_type);
    im_tws_put_dbl_max(w, o->lmt_price);
    im_tws_put_dbl_max(w, o->aux_price);
    im_tws_put_str(w, o->tif);
    im_tws_put_str(w, "");                            /* #20 ocaGroup */
    im_tws_put_str(w, o->account);
    im_tws_put_str(w, "");                            /* openClose */
    im_tws_put_int(w, 0);                             /* origin */
    im_tws_put_str(w, o->order_ref);
    im_tws_put_int(w, o->client_id);                  /* #25 */
    im_tws_put_int(w, o->perm_id);
    im_tws_put_bool(w, o->outside_rth);
    im_tws_put_bool(w, 0);                            /* hidden */
    im_tws_put_dbl(w, 0);                             /* discretionaryAmt */
    im_tws_put_str(w, "");                            /* #30 goodAfterTime */
    im_tws_put_str(w, "");                            /* sharesAllocation */
    im_tws_put_str(w, "");                            /* faGroup */
    im_tws_put_str(w, "");                            /* faMethod */
    im_tws_put_str(w, "");                            /* faPercentage */
    im_tws_put_str(w, "");                            /* #35 modelCode */
    im_tws_put_str(w, "");                            /* goodTillDate */
    im_tws_put_str(w, "");                            /* rule80A */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* percentOffset */
    im_tws_put_str(w, "");                            /* settlingFirm */
    im_tws_put_int(w, 0);                             /* #40 shortSaleSlot */
    im_tws_put_str(w, "");                            /* designatedLocation */
    im_tws_put_int(w, -1);                            /* exemptCode */
    im_tws_put_int(w, 0);                             /* auctionStrategy */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* startingPrice */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* #45 stockRefPrice */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* delta */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* stockRangeLower */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* stockRangeUpper */
    im_tws_put_int(w, 0);                             /* displaySize */
    im_tws_put_bool(w, 0);                            /* #50 blockOrder */
    im_tws_put_bool(w, 0);                            /* sweepToFill */
    im_tws_put_bool(w, 0);                            /* allOrNone */
    im_tws_put_int_max(w, IM_TWS_UNSET_INT);          /* minQty */
    im_tws_put_int(w, 0);                             /* ocaType */
    im_tws_put_bool(w, 0);                            /* #55 eTradeOnly */
    im_tws_put_bool(w, 0);                            /* firmQuoteOnly */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* nbboPriceCap */
    im_tws_put_int(w, o->parent_id);
    im_tws_put_int(w, 0);                             /* triggerMethod */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* #60 volatility */
    im_tws_put_int(w, 0);                             /* volatilityType */
    im_tws_put_str(w, "");                            /* deltaNeutralOrderType: none */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* deltaNeutralAuxPrice */
    im_tws_put_int(w, 0);                             /* continuousUpdate */
    im_tws_put_int(w, 0);                             /* #65 referencePriceType */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* trailStopPrice */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* trailingPercent */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* basisPoints */
    im_tws_put_int_max(w, IM_TWS_UNSET_INT);          /* basisPointsType */
    im_tws_put_str(w, "");                            /* #70 comboLegsDescrip */
    im_tws_put_int(w, 0);                             /* comboLegsCount */
    im_tws_put_int(w, 0);                             /* orderComboLegsCount */
    im_tws_put_int(w, 0);                             /* smartComboRoutingParamsCount */
    im_tws_put_int_max(w, IM_TWS_UNSET_INT);          /* scaleInitLevelSize */
    im_tws_put_int_max(w, IM_TWS_UNSET_INT);          /* #75 scaleSubsLevelSize */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* scalePriceIncrement */
    im_tws_put_str(w, "");                            /* hedgeType */
    im_tws_put_bool(w, 0);                            /* optOutSmartRouting */
    im_tws_put_str(w, "");                            /* clearingAccount */
    im_tws_put_str(w, "");                            /* #80 clearingIntent */
    im_tws_put_bool(w, 0);                            /* notHeld */
    im_tws_put_bool(w, 0);                            /* deltaNeutralContract present */
    im_tws_put_str(w, "");                            /* algoStrategy */
    im_tws_put_bool(w, 0);                            /* solicited */
    im_tws_put_bool(w, 0);                            /* #85 whatIf */
    im_tws_put_str(w, status);                        /* #86 orderState.status */
    for (int i = 87; i <= 95; i++)
        im_tws_put_str(w, "");                        /* margin before/change/after */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* #96 commission */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* minCommission */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* maxCommission */
    im_tws_put_str(w, "");                            /* commissionCurrency */
    im_tws_put_str(w, "");                            /* #100 warningText */
    im_tws_put_bool(w, 0);                            /* randomizeSize */
    im_tws_put_bool(w, 0);                            /* randomizePrice */
    put_peg_bench(w, o);
    im_tws_put_int(w, 0);                             /* #103 conditionsCount */
    im_tws_put_str(w, "");                            /* adjustedOrderType */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* #105 triggerPrice */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* trailStopPrice */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* lmtPriceOffset */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* adjustedStopPrice */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* adjustedStopLimitPrice */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* #110 adjustedTrailingAmount */
    im_tws_put_int(w, 0);                             /* adjustableTrailingUnit */
    im_tws_put_str(w, "");                            /* softDollarTier.name */
    im_tws_put_str(w, "");                            /* softDollarTier.value */
    im_tws_put_str(w, "");                            /* softDollarTier.displayName */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* #115 cashQty */
    im_tws_put_bool(w, 0);                            /* dontUseAutoPriceForHedge */
    im_tws_put_bool(w, 0);                            /* isOmsContainer */
    im_tws_put_bool(w, 0);                            /* discretionaryUpToLimitPrice */
    im_tws_put_bool(w, 0);                            /* usePriceMgmtAlgo */
    im_tws_put_int_max(w, IM_TWS_UNSET_INT);          /* #120 duration */
    im_tws_put_int_max(w, IM_TWS_UNSET_INT);          /* postToAts */
    im_tws_put_bool(w, 0);                            /* autoCancelParent */
    im_tws_put_int_max(w, IM_TWS_UNSET_INT);          /* minTradeQty */
    im_tws_put_int_max(w, IM_TWS_UNSET_INT);          /* minCompeteSize */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* #125 competeAgainstBestOffset */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* midOffsetAtWhole */
    im_tws_put_dbl_max(w, IM_TWS_UNSET_DBL);          /* #127 midOffsetAtHalf */
    im_tws_end(w);
}

int im_tws_get_open_order(im_tws_msg *m, im_tws_order *o, char *status, size_t statuslen) {
    im_tws_contract *c;
    char s[64];
    int n;
    double scale_incr;

    if (m->id != IM_TWS_IN_OPEN_ORDER)
        return IM_EINVAL;
    c = &o->contract;
    im_tws_order_init(o);
    o->order_id = im_tws_get_int(m);                  /* #2 */
    c->con_id = im_tws_get_int(m);
    im_tws_get_text(m, c->symbol, sizeof c->symbol);
    im_tws_get_text(m, c->sec_type, sizeof c->sec_type);
    im_tws_get_text(m, c->last_trade, sizeof c->last_trade);
    c->strike = im_tws_get_dbl(m);
    im_tws_get_text(m, c->right, sizeof c->right);
    im_tws_get_text(m, c->multiplier, sizeof c->multiplier);
    im_tws_get_text(m, c->exchange, sizeof c->exchange);   /* #10 */
    im_tws_get_text(m, c->currency, sizeof c->currency);
    im_tws_get_text(m, c->local_symbol, sizeof c->local_symbol);
    im_tws_get_text(m, c->trading_class, sizeof c->trading_class);
    im_tws_get_text(m, o->action, sizeof o->action);
    o->total_qty = im_tws_get_dec(m);                 /* #15 */
    im_tws_get_text(m, o->order_type, sizeof o->order_type);
    o->lmt_price = im_tws_get_dbl_max(m);
    o->aux_price = im_tws_get_dbl_max(m);
    im_tws_get_text(m, o->tif, sizeof o->tif);
    im_tws_skip(m, 1);                                /* #20 ocaGroup */
    im_tws_get_text(m, o->account, sizeof o->account);
    im_tws_skip(m, 2);                                /* openClose, origin */
    im_tws_get_text(m, o->order_ref, sizeof o->order_ref);
    o->client_id = get_int32(m);                      /* #25 */
    o->perm_id = im_tws_get_int(m);
    o->outside_rth = im_tws_get_bool(m);
    im_tws_skip(m, 30);                               /* #28 .. #57 */
    o->parent_id = im_tws_get_int(m);                 /* #58 */
    im_tws_skip(m, 3);                                /* #59 .. #61 */
    im_tws_get_text(m, s, sizeof s);                  /* #62 deltaNeutralOrderType */
    im_tws_skip(m, 1);
    if (s[0] != '\0')                                 /* "None" counts too */
        im_tws_skip(m, 8);
    im_tws_skip(m, 7);                                /* #64 .. #70 */
    n = get_count(m, 8);                              /* #71 combo legs */
    im_tws_skip(m, n * 8);
    n = get_count(m, 1);                              /* #72 leg prices */
    im_tws_skip(m, n);
    n = get_count(m, 2);                              /* #73 routing params */
    im_tws_skip(m, n * 2);
    im_tws_skip(m, 2);                                /* #74, #75 */
    scale_incr = im_tws_get_dbl_max(m);               /* #76 */
    if (scale_incr > 0 && scale_incr != IM_TWS_UNSET_DBL)
        im_tws_skip(m, 7);
    im_tws_get_text(m, s, sizeof s);                  /* #77 hedgeType */
    if (s[0] != '\0')
        im_tws_skip(m, 1);
    im_tws_skip(m, 4);                                /* #78 .. #81 */
    if (im_tws_get_bool(m))                           /* #82 */
        im_tws_skip(m, 3);
    im_tws_get_text(m, s, sizeof s);                  /* #83 algoStrategy */
    if (s[0] != '\0') {
        n = get_count(m, 2);
        im_tws_skip(m, n * 2);
    }
    im_tws_skip(m, 2);                                /* #84 solicited, #85 whatIf */
    if (status != NULL)
        im_tws_get_text(m, status, statuslen);        /* #86 */
    else
        im_tws_skip(m, 1);
    im_tws_skip(m, 16);                               /* #87 .. #102 */
    if (order_type_is(o->order_type, "PEG BENCH"))
        im_tws_skip(m, 5);
    skip_conditions(m);                               /* #103 */
    im_tws_skip(m, 24);                               /* #104 .. #127 */
    return im_tws_finish(m);
}

void im_tws_put_order_status(im_tws_writer *w, const im_tws_order_status *s) {
    im_tws_begin(w, IM_TWS_IN_ORDER_STATUS);
    im_tws_put_int(w, s->order_id);
    im_tws_put_str(w, s->status);
    im_tws_put_dec(w, s->filled);
    im_tws_put_dec(w, s->remaining);
    im_tws_put_dbl(w, s->avg_fill_price);
    im_tws_put_int(w, s->perm_id);
    im_tws_put_int(w, s->parent_id);
    im_tws_put_dbl(w, s->last_fill_price);
    im_tws_put_int(w, s->client_id);
    im_tws_put_str(w, s->why_held);
    im_tws_put_dbl(w, s->mkt_cap_price);
    im_tws_end(w);
}

int im_tws_get_order_status(im_tws_msg *m, im_tws_order_status *s) {
    if (m->id != IM_TWS_IN_ORDER_STATUS)
        return IM_EINVAL;
    memset(s, 0, sizeof *s);
    s->order_id = im_tws_get_int(m);
    im_tws_get_text(m, s->status, sizeof s->status);
    s->filled = im_tws_get_dec(m);
    s->remaining = im_tws_get_dec(m);
    s->avg_fill_price = im_tws_get_dbl(m);
    s->perm_id = im_tws_get_int(m);
    s->parent_id = im_tws_get_int(m);
    s->last_fill_price = im_tws_get_dbl(m);
    s->client_id = get_int32(m);
    im_tws_get_text(m, s->why_held, sizeof s->why_held);
    s->mkt_cap_price = im_tws_get_dbl(m);
    return im_tws_finish(m);
}

void im_tws_put_execution(im_tws_writer *w, const im_tws_execution *e) {
    const im_tws_contract *c = &e->contract;
    im_tws_begin(w, IM_TWS_IN_EXECUTION_DATA);        /* #1 */
    im_tws_put_int(w, e->req_id);
    im_tws_put_int(w, e->order_id);
    im_tws_put_int(w, c->con_id);
    im_tws_put_str(w, c->symbol);                     /* #5 */
    im_tws_put_str(w, c->sec_type);
    im_tws_put_str(w, c->last_trade);
    im_tws_put_dbl(w, c->strike);
    im_tws_put_str(w, c->right);
    im_tws_put_str(w, c->multiplier);                 /* #10 */
    im_tws_put_str(w, c->exchange);
    im_tws_put_str(w, c->currency);
    im_tws_put_str(w, c->local_symbol);
    im_tws_put_str(w, c->trading_class);
    im_tws_put_str(w, e->exec_id);                    /* #15 */
    im_tws_put_str(w, e->time);
    im_tws_put_str(w, e->account);
    im_tws_put_str(w, e->exchange);
    im_tws_put_str(w, e->side);
    im_tws_put_dec(w, e->shares);                     /* #20 */
    im_tws_put_dbl(w, e->price);
    im_tws_put_int(w, e->perm_id);
    im_tws_put_int(w, e->client_id);
    im_tws_put_int(w, e->liquidation);
    im_tws_put_dec(w, e->cum_qty);                    /* #25 */
    im_tws_put_dbl(w, e->avg_price);
    im_tws_put_str(w, e->order_ref);
    im_tws_put_str(w, "");                            /* evRule */
    im_tws_put_str(w, "");                            /* evMultiplier */
    im_tws_put_str(w, "");                            /* #30 modelCode */
    im_tws_put_int(w, e->last_liquidity);
    im_tws_put_bool(w, 0);                            /* #32 pendingPriceRevision */
    im_tws_end(w);
}

int im_tws_get_execution(im_tws_msg *m, im_tws_execution *e) {
    im_tws_contract *c;
    if (m->id != IM_TWS_IN_EXECUTION_DATA)
        return IM_EINVAL;
    c = &e->contract;
    memset(e, 0, sizeof *e);
    e->req_id = get_int32(m);
    e->order_id = im_tws_get_int(m);
    c->con_id = im_tws_get_int(m);
    im_tws_get_text(m, c->symbol, sizeof c->symbol);
    im_tws_get_text(m, c->sec_type, sizeof c->sec_type);
    im_tws_get_text(m, c->last_trade, sizeof c->last_trade);
    c->strike = im_tws_get_dbl(m);
    im_tws_get_text(m, c->right, sizeof c->right);
    im_tws_get_text(m, c->multiplier, sizeof c->multiplier);
    im_tws_get_text(m, c->exchange, sizeof c->exchange);
    im_tws_get_text(m, c->currency, sizeof c->currency);
    im_tws_get_text(m, c->local_symbol, sizeof c->local_symbol);
    im_tws_get_text(m, c->trading_class, sizeof c->trading_class);
    im_tws_get_text(m, e->exec_id, sizeof e->exec_id);
    im_tws_get_text(m, e->time, sizeof e->time);
    im_tws_get_text(m, e->account, sizeof e->account);
    im_tws_get_text(m, e->exchange, sizeof e->exchange);
    im_tws_get_text(m, e->side, sizeof e->side);
    e->shares = im_tws_get_dec(m);
    e->price = im_tws_get_dbl(m);
    e->perm_id = im_tws_get_int(m);
    e->client_id = get_int32(m);
    e->liquidation = get_int32(m);
    e->cum_qty = im_tws_get_dec(m);
    e->avg_price = im_tws_get_dbl(m);
    im_tws_get_text(m, e->order_ref, sizeof e->order_ref);
    im_tws_skip(m, 3);                                /* evRule, evMultiplier, modelCode */
    e->last_liquidity = get_int32(m);
    im_tws_skip(m, 1);                                /* pendingPriceRevision */
    return im_tws_finish(m);
}

void im_tws_put_commission(im_tws_writer *w, const im_tws_commission *c) {
    im_tws_begin(w, IM_TWS_IN_COMMISSION_REPORT);
    im_tws_put_int(w, 1);
    im_tws_put_str(w, c->exec_id);
    im_tws_put_dbl(w, c->commission);
    im_tws_put_str(w, c->currency);
    /* TWS sends unset values as DBL_MAX text (put_dbl writes it so). */
    im_tws_put_dbl(w, c->realized_pnl);
    im_tws_put_dbl(w, c->yield);
    im_tws_put_int(w, c->yield_redemption_date);
    im_tws_end(w);
}

int im_tws_get_commission(im_tws_msg *m, im_tws_commission *c) {
    if (m->id != IM_TWS_IN_COMMISSION_REPORT)
        return IM_EINVAL;
    memset(c, 0, sizeof *c);
    im_tws_skip(m, 1);                                /* version */
    im_tws_get_text(m, c->exec_id, sizeof c->exec_id);
    c->commission = im_tws_get_dbl(m);
    im_tws_get_text(m, c->currency, sizeof c->currency);
    c->realized_pnl = im_tws_get_dbl_max(m);
    c->yield = im_tws_get_dbl_max(m);
    c->yield_redemption_date = get_int32(m);
    return im_tws_finish(m);
}

void im_tws_put_contract_details(im_tws_writer *w, const im_tws_contract_details *d) {
    const im_tws_contract *c = &d->contract;
    im_tws_begin(w, IM_TWS_IN_CONTRACT_DATA);         /* #1 */
    im_tws_put_int(w, d->req_id);
    im_tws_put_str(w, c->symbol);
    im_tws_put_str(w, c->sec_type);
    im_tws_put_str(w, c->last_trade);                 /* #5 */
    im_tws_put_dbl(w, c->strike);
    im_tws_put_str(w, c->right);
    im_tws_put_str(w, c->exchange);
    im_tws_put_str(w, c->currency);
    im_tws_put_str(w, c->local_symbol);               /* #10 */
    im_tws_put_str(w, d->market_name);
    im_tws_put_str(w, c->trading_class);
    im_tws_put_int(w, c->con_id);
    im_tws_put_dbl(w, d->min_tick);
    im_tws_put_str(w, c->multiplier);                 /* #15 */
    im_tws_put_str(w, "LMT,MKT,STP,STPLMT");         /* orderTypes */
    im_tws_put_str(w, c->exchange);                   /* validExchanges */
    im_tws_put_int(w, 1);                             /* priceMagnifier */
    im_tws_put_int(w, 0);                             /* underConId */
    put_escaped(w, d->long_name);                     /* #20 */
    im_tws_put_str(w, c->primary_exch);
    im_tws_put_str(w, "");                            /* contractMonth */
    im_tws_put_str(w, "");                            /* industry */
    im_tws_put_str(w, "");                            /* category */
    im_tws_put_str(w, "");                            /* #25 subcategory */
    im_tws_put_str(w, d->time_zone_id);
    im_tws_put_str(w, "");                            /* tradingHours */
    im_tws_put_str(w, "");                            /* liquidHours */
    im_tws_put_str(w, "");                            /* evRule */
    im_tws_put_str(w, "");                            /* #30 evMultiplier */
    im_tws_put_int(w, 1);                             /* secIdListCount */
    im_tws_put_str(w, "ISIN");
    im_tws_put_str(w, "");
    im_tws_put_int(w, 1);                             /* aggGroup */
    im_tws_put_str(w, "");                            /* #35 underSymbol */
    im_tws_put_str(w, "");                            /* underSecType */
    im_tws_put_str(w, "");                            /* marketRuleIds */
    im_tws_put_str(w, "");                            /* realExpirationDate */
    im_tws_put_str(w, d->stock_type);
    im_tws_put_dec(w, 1);                             /* #40 minSize */
    im_tws_put_dec(w, 1);                             /* sizeIncrement */
    im_tws_put_dec(w, 100);                           /* #42 suggestedSizeIncrement */
    im_tws_end(w);
}

int im_tws_get_contract_details(im_tws_msg *m, im_tws_contract_details *d) {
    im_tws_contract *c;
    int n;
    if (m->id != IM_TWS_IN_CONTRACT_DATA)
        return IM_EINVAL;
    c = &d->contract;
    memset(d, 0, sizeof *d);
    d->req_id = get_int32(m);
    im_tws_get_text(m, c->symbol, sizeof c->symbol);
    im_tws_get_text(m, c->sec_type, sizeof c->sec_type);
    im_tws_get_text(m, c->last_trade, sizeof c->last_trade);
    c->strike = im_tws_get_dbl(m);
    im_tws_get_text(m, c->right, sizeof c->right);
    im_tws_get_text(m, c->exchange, sizeof c->exchange);
    im_tws_get_text(m, c->currency, sizeof c->currency);
    im_tws_get_text(m, c->local_symbol, sizeof c->local_symbol);
    im_tws_get_text(m, d->market_name, sizeof d->market_name);
    im_tws_get_text(m, c->trading_class, sizeof c->trading_class);
    c->con_id = im_tws_get_int(m);
    d->min_tick = im_tws_get_dbl(m);
    im_tws_get_text(m, c->multiplier, sizeof c->multiplier);
    im_tws_skip(m, 4);               /* orderTypes, validExchanges, priceMagnifier, underConId */
    get_unescaped(m, d->long_name, sizeof d->long_name);
    im_tws_get_text(m, c->primary_exch, sizeof c->primary_exch);
    im_tws_skip(m, 4);               /* contractMonth, industry, category, subcategory */
    im_tws_get_text(m, d->time_zone_id, sizeof d->time_zone_id);
    im_tws_skip(m, 4);               /* tradingHours, liquidHours, evRule, evMultiplier */
    n = get_count(m, 2);
    im_tws_skip(m, n * 2);           /* secIdList */
    im_tws_skip(m, 5);               /* aggGroup .. realExpirationDate */
    im_tws_get_text(m, d->stock_type, sizeof d->stock_type);
    im_tws_skip(m, 3);               /* minSize, sizeIncrement, suggestedSizeIncrement */
    return im_tws_finish(m);
}

void im_tws_put_error(im_tws_writer *w, long long id, int code, const char *text) {
    im_tws_begin(w, IM_TWS_IN_ERR_MSG);
    im_tws_put_int(w, 2);
    im_tws_put_int(w, id);
    im_tws_put_int(w, code);
    put_escaped(w, text);
    im_tws_put_str(w, "");           /* advancedOrderRejectJson */
    im_tws_end(w);
}

int im_tws_get_error(im_tws_msg *m, long long *id, int *code, char *text, size_t textlen) {
    long long i;
    int c;
    if (m->id != IM_TWS_IN_ERR_MSG)
        return IM_EINVAL;
    im_tws_skip(m, 1);               /* version */
    i = im_tws_get_int(m);
    c = get_int32(m);
    if (text != NULL)
        get_unescaped(m, text, textlen);
    else
        im_tws_skip(m, 1);
    im_tws_skip(m, 1);               /* advancedOrderRejectJson */
    if (id)
        *id = i;
    if (code)
        *code = c;
    return im_tws_finish(m);
}
