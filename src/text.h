/* text.h: small UTF-8 helpers for text that leaves the server. Messages are
 * built with snprintf, which cuts by bytes and can split a character, and
 * some of them quote what a client sent; whatever reaches JSON output must
 * be valid UTF-8. No dependencies. */
#ifndef IM_TEXT_H
#define IM_TEXT_H

#include <stddef.h>

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

#endif
