/* jsonw.c: the JSON text writer declared in jsonw.h. */
#include "jsonw.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "text.h"

/* The most im_jw_reset keeps between uses. */
#define JW_KEEP (64 * 1024)

void im_jw_init(im_jw *w) { memset(w, 0, sizeof *w); }

void im_jw_free(im_jw *w) {
    free(w->buf);
    memset(w, 0, sizeof *w);
}

void im_jw_reset(im_jw *w) {
    /* A writer kept for the next reply keeps a modest buffer only. */
    im_jw_reset_keep(w, JW_KEEP);
}

void im_jw_reset_keep(im_jw *w, size_t keep) {
    if (w->oom || w->cap > keep) {
        im_jw_free(w);
        return;
    }
    w->len = 0;
    if (w->buf)
        w->buf[0] = '\0';
}

char *im_jw_take(im_jw *w, size_t *len) {
    char *s = w->oom ? NULL : w->buf;
    if (w->oom)
        free(w->buf);
    else if (s == NULL)
        s = calloc(1, 1);   /* nothing written: an empty string, still owned by the caller */
    if (len)
        *len = s ? w->len : 0;
    memset(w, 0, sizeof *w);
    return s;
}

/* Room for n more bytes and the terminating NUL. */
static int reserve(im_jw *w, size_t n) {
    if (w->oom)
        return 0;
    if (n > SIZE_MAX / 2 - w->len) {
        w->oom = 1;
        return 0;
    }
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 1024;
        while (cap < w->len + n + 1)
            cap *= 2;
        char *nb = realloc(w->buf, cap);
        if (nb == NULL) {
            w->oom = 1;
            return 0;
        }
        w->buf = nb;
        w->cap = cap;
    }
    return 1;
}

void im_jw_raw_grow(im_jw *w, const char *s, size_t n) {
    if (!reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

void im_jw_lit(im_jw *w, const char *s) { im_jw_raw(w, s, strlen(s)); }

/* Extra bytes each byte needs when escaped: 0 for most, 1 for " \\ and the
 * short control escapes, 5 for the other control characters (\u00XX). */
static const unsigned char esc_extra[256] = {
    5, 5, 5, 5, 5, 5, 5, 5, 1, 1, 1, 5, 1, 1, 5, 5,   /* \b \t \n \f \r */
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   /* " */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,   /* \\ */
};

/* Short strings (keys, symbols, a quote's text) reserve the worst case,
 * six bytes out per byte in, and are escaped in one pass; a longer one is
 * measured first, so the reservation never pushes a kept buffer past the
 * size its owner keeps (im_jw_reset_keep). */
#define JW_STR_ONE_PASS 1024

void im_jw_str(im_jw *w, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    size_t need = 6 * n + 2;
    char *o;

    if (n > JW_STR_ONE_PASS) {
        need = n + 2;
        for (size_t i = 0; i < n; i++)
            need += esc_extra[p[i]];
    }
    if (!reserve(w, need))
        return;
    o = w->buf + w->len;
    *o++ = '"';
    while (p < end) {
        unsigned char c;
#if IM_TEXT_SWAR
        /* Eight bytes at a time up to the next one that needs escaping. */
        if (end - p >= 8) {
            uint64_t x = im_text_load8(p);
            uint64_t m = im_text_lt8(x, 0x20) | im_text_eq8(x, '"') | im_text_eq8(x, '\\');
            size_t k = m == 0 ? 8 : im_text_first8(m);
            /* All eight are stored, k kept: there is room, since each of
             * the eight or more bytes left writes at least one. */
            memcpy(o, &x, 8);
            o += k, p += k;
            if (m == 0)
                continue;
        }
#endif
        c = *p++;
        if (esc_extra[c] == 0) {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    w->len = (size_t)(o - w->buf);
    w->buf[w->len] = '\0';
}

/* 10^k exactly, for the scales tried. */
static const double pow10_tab[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6};

size_t im_jw_fmt_num(char *out, double d) {
    double a = fabs(d);
    int n;

    if (!isfinite(d)) {
        memcpy(out, "null", 5);
        return 4;
    }
    if (a == 0) {   /* -0 too, as cJSON writes it */
        memcpy(out, "0", 2);
        return 1;
    }
    /* d is the double nearest to m / 10^k for the smallest k that works, m
     * below 10^15. Then "%1.15g" would print exactly that decimal (15
     * significant digits round-trip), so the text is the same, written
     * without printf. The bounds keep %g out of exponent notation
     * (1e-4 <= |d| < 1e15) and m exact in a double. */
    if (a >= 1e-4 && a < 1e15) {
        for (size_t k = 0; k < sizeof pow10_tab / sizeof pow10_tab[0]; k++) {
            double x = a * pow10_tab[k];
            if (x >= 1e15)
                break;
            /* Rounded to nearest: x + 0.5 is positive and below 2^63, where
             * truncation is floor (and inline, unlike floor()). */
            uint64_t u = (uint64_t)(x + 0.5);
            if ((double)u / pow10_tab[k] != a)
                continue;
            /* The digits right to left, the point k places from the right,
             * zeros in front up to "0." when m has k digits or fewer. */
            char buf[40], *e = buf + sizeof buf, *p = e;
            size_t places = 0;
            do {
                *--p = (char)('0' + u % 10);
                u /= 10;
                if (++places == k && u != 0)
                    *--p = '.';
            } while (u != 0);
            if (places <= k) {
                while (places++ < k)
                    *--p = '0';
                *--p = '.';
                *--p = '0';
            }
            if (d < 0)
                *--p = '-';
            memcpy(out, p, (size_t)(e - p));
            out[e - p] = '\0';
            return (size_t)(e - p);
        }
    }
    n = snprintf(out, 32, "%1.15g", d);
    if (strtod(out, NULL) != d)
        n = snprintf(out, 32, "%1.17g", d);
    return n > 0 && n < 32 ? (size_t)n : 0;
}

void im_jw_num(im_jw *w, double d) {
    char tmp[32];
    size_t n = im_jw_fmt_num(tmp, d);
    im_jw_raw(w, tmp, n);
}

static int write_value(im_jw *w, const cJSON *v, int depth) {
    const cJSON *c;
    int rc = 0;

    if (v == NULL || depth > CJSON_NESTING_LIMIT) {
        im_jw_raw(w, "null", 4);
        return IM_EINVAL;
    }
    switch (v->type & 0xFF) {
    case cJSON_NULL:
        im_jw_raw(w, "null", 4);
        return 0;
    case cJSON_False:
        im_jw_raw(w, "false", 5);
        return 0;
    case cJSON_True:
        im_jw_raw(w, "true", 4);
        return 0;
    case cJSON_Number:
        im_jw_num(w, v->valuedouble);
        return 0;
    case cJSON_String:
        if (v->valuestring == NULL)
            break;
        im_jw_str(w, v->valuestring, strlen(v->valuestring));
        return 0;
    case cJSON_Raw:
        if (v->valuestring == NULL)
            break;
        im_jw_lit(w, v->valuestring);
        return 0;
    case cJSON_Array:
        im_jw_raw(w, "[", 1);
        for (c = v->child; c != NULL; c = c->next) {
            if (c != v->child)
                im_jw_raw(w, ",", 1);
            if (write_value(w, c, depth + 1) != 0)
                rc = IM_EINVAL;
        }
        im_jw_raw(w, "]", 1);
        return rc;
    case cJSON_Object:
        im_jw_raw(w, "{", 1);
        for (c = v->child; c != NULL; c = c->next) {
            if (c != v->child)
                im_jw_raw(w, ",", 1);
            if (c->string == NULL) {
                im_jw_raw(w, "\"\"", 2);
                rc = IM_EINVAL;
            } else {
                im_jw_str(w, c->string, strlen(c->string));
            }
            im_jw_raw(w, ":", 1);
            if (write_value(w, c, depth + 1) != 0)
                rc = IM_EINVAL;
        }
        im_jw_raw(w, "}", 1);
        return rc;
    default:
        break;
    }
    im_jw_raw(w, "null", 4);
    return IM_EINVAL;
}

int im_jw_cjson(im_jw *w, const cJSON *v) { return write_value(w, v, 0); }
