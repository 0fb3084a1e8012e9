/* text.c: UTF-8 helpers and the JSON syntax check (text.h). */
#include "text.h"

#include <string.h>

size_t im_text_utf8_len(const unsigned char *p, size_t n) {
    unsigned c, cp;
    size_t len;
    if (n == 0)
        return 0;
    c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

size_t im_text_sanitize(char *s) {
    unsigned char *p = (unsigned char *)s;
    size_t n = strlen(s), fixed = 0;
    for (size_t i = 0; i < n;) {
        size_t l = im_text_utf8_len(p + i, n - i);
        if (l == 0) {
            p[i++] = '?';
            fixed++;
        } else {
            i += l;
        }
    }
    return fixed;
}

size_t im_text_copy(char *dst, size_t dstlen, const char *src) {
    const unsigned char *p = (const unsigned char *)src;
    size_t n = strlen(src), out = 0;
    if (dstlen == 0)
        return 0;
    for (size_t i = 0; i < n;) {
        size_t l = im_text_utf8_len(p + i, n - i);
        size_t take = l ? l : 1;
        if (out + take + 1 > dstlen)
            break;
        if (l)
            memcpy(dst + out, p + i, l);
        else
            dst[out] = '?';
        out += take;
        i += take;
    }
    dst[out] = '\0';
    return out;
}

/* ---- JSON syntax ---------------------------------------------------------- */

#define JSON_DEPTH 1000   /* cJSON's CJSON_NESTING_LIMIT */

typedef struct jscan {
    const unsigned char *p, *e;
} jscan;

static void js_ws(jscan *s) {
    while (s->p < s->e && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int js_digits(jscan *s) {
    const unsigned char *b = s->p;
    while (s->p < s->e && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > b;
}

static int js_number(jscan *s) {
    if (s->p < s->e && *s->p == '-')
        s->p++;
    if (s->p < s->e && *s->p == '0')
        s->p++;
    else if (!js_digits(s))
        return 0;
    if (s->p < s->e && *s->p == '.') {
        s->p++;
        if (!js_digits(s))
            return 0;
    }
    if (s->p < s->e && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->e && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!js_digits(s))
            return 0;
    }
    return 1;
}

static int js_hex(unsigned c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* At the opening quote. */
static int js_string(jscan *s) {
    s->p++;
    while (s->p < s->e) {
        unsigned c;
#if IM_TEXT_SWAR
        /* Eight bytes at a time up to the next quote, backslash or control
         * byte: most of a journal record. */
        while (s->e - s->p >= 8) {
            uint64_t x = im_text_load8(s->p);
            uint64_t m = im_text_lt8(x, 0x20) | im_text_eq8(x, '"') | im_text_eq8(x, '\\');
            if (m != 0) {
                s->p += im_text_first8(m);
                break;
            }
            s->p += 8;
        }
        if (s->p >= s->e)
            return 0;
#endif
        c = *s->p++;
        if (c == '"')
            return 1;
        if (c < 0x20)
            return 0;
        if (c != '\\')
            continue;
        if (s->p >= s->e)
            return 0;
        c = *s->p++;
        if (c == 'u') {
            for (int i = 0; i < 4; i++, s->p++)
                if (s->p >= s->e || !js_hex(*s->p))
                    return 0;
        } else if (c == 0 || strchr("\"\\/bfnrt", (int)c) == NULL) {
            return 0;
        }
    }
    return 0;
}

static int js_lit(jscan *s, const char *w, size_t n) {
    if ((size_t)(s->e - s->p) < n || memcmp(s->p, w, n) != 0)
        return 0;
    s->p += n;
    return 1;
}

/* One value, after any whitespace; depth is how many containers hold it. */
static int js_value(jscan *s, int depth) {
    unsigned char close;
    js_ws(s);
    if (s->p >= s->e)
        return 0;
    switch (*s->p) {
    case '"': return js_string(s);
    case 't': return js_lit(s, "true", 4);
    case 'f': return js_lit(s, "false", 5);
    case 'n': return js_lit(s, "null", 4);
    case '{': close = '}'; break;
    case '[': close = ']'; break;
    default: return js_number(s);
    }
    if (depth >= JSON_DEPTH)
        return 0;
    s->p++;
    js_ws(s);
    if (s->p < s->e && *s->p == close) {
        s->p++;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            js_ws(s);
            if (s->p >= s->e || *s->p != '"' || !js_string(s))
                return 0;
            js_ws(s);
            if (s->p >= s->e || *s->p++ != ':')
                return 0;
        }
        if (!js_value(s, depth + 1))
            return 0;
        js_ws(s);
        if (s->p >= s->e)
            return 0;
        if (*s->p == close) {
            s->p++;
            return 1;
        }
        if (*s->p++ != ',')
            return 0;
    }
}

size_t im_text_json_len(const char *s, size_t n) {
    jscan sc;
    if (s == NULL)
        return 0;
    sc.p = (const unsigned char *)s;
    sc.e = sc.p + n;
    if (!js_value(&sc, 0))
        return 0;
    return (size_t)(sc.p - (const unsigned char *)s);
}
