/* text.h: small UTF-8 helpers for text that leaves the server. Messages are
 * built with snprintf, which cuts by bytes and can split a character, and
 * some of them quote what a client sent; whatever reaches JSON output must
 * be valid UTF-8. Also a JSON syntax check that builds nothing. No
 * dependencies. */
#ifndef IM_TEXT_H
#define IM_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when the
 * bytes there are not one (overlong forms, surrogates and code points above
 * U+10FFFF are not). */
size_t im_text_utf8_len(const unsigned char *s, size_t n);
/* Replaces, in place, every byte of the NUL-terminated s that does not
 * start or continue a valid UTF-8 sequence with '?'. Returns how many bytes
 * it replaced. */
size_t im_text_sanitize(char *s);
/* Copies src into dst (dstlen bytes, always NUL-terminated) without
 * splitting a UTF-8 sequence; invalid bytes become '?'. Returns the bytes
 * written, not counting the NUL. */
size_t im_text_copy(char *dst, size_t dstlen, const char *src);
/* The length of the JSON value (RFC 8259, nested at most 1000 deep, as
 * cJSON allows) at the start of s (n bytes), leading whitespace counted;
 * 0 when s does not start with one. What follows the value is not looked
 * at, as cJSON_ParseWithLength does not look. For text that only needs to
 * be known to be whole JSON: no tree is built and nothing is allocated.
 * Raw control characters in strings are refused, as the RFC has it. */
size_t im_text_json_len(const char *s, size_t n);

/* Word-at-a-time scanning (SWAR) for the long runs of plain ASCII in every
 * request line and reply: eight bytes per step instead of one. Each *8
 * function returns a word whose byte k has its high bit set when byte k of
 * x matches. The lowest flagged byte is always a true match; a borrow can
 * flag bytes above it falsely, so callers use only "none" and "the lowest"
 * (im_text_first8). Little-endian with GCC/Clang builtins only; elsewhere
 * IM_TEXT_SWAR is 0 and callers keep their byte loop. */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define IM_TEXT_SWAR 1
#else
#define IM_TEXT_SWAR 0
#endif
#define IM_TEXT_ONES8 0x0101010101010101ull
#define IM_TEXT_HIGH8 0x8080808080808080ull

static inline uint64_t im_text_load8(const unsigned char *p) {
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}
/* Bytes below n, for n at most 0x80. */
static inline uint64_t im_text_lt8(uint64_t x, unsigned n) {
    return (x - IM_TEXT_ONES8 * n) & ~x & IM_TEXT_HIGH8;
}
/* Bytes equal to c. */
static inline uint64_t im_text_eq8(uint64_t x, unsigned c) {
    return im_text_lt8(x ^ (IM_TEXT_ONES8 * c), 1);
}
/* Bytes that are not ASCII (exact). */
static inline uint64_t im_text_high8(uint64_t x) { return x & IM_TEXT_HIGH8; }
/* The index of the lowest flagged byte of a nonzero mask. */
static inline size_t im_text_first8(uint64_t m) {
#if IM_TEXT_SWAR
    return (size_t)__builtin_ctzll(m) >> 3;
#else
    size_t k = 0;
    while (!(m & 0x80))
        m >>= 8, k++;
    return k;
#endif
}

#endif
