/* text.c: UTF-8 helpers (text.h). */
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
