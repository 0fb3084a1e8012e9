/* jsonw.h: a JSON text writer for the reply path. Appends to one growing
 * buffer: the reply line is built in place instead of printing a cJSON tree
 * into a string and copying that into the line (twice for a tool result).
 * Numbers are written as cJSON writes them ("%1.15g", or "%1.17g" when 15
 * digits do not read back the same), but the usual cases - integers and
 * decimals of up to six places, i.e. every price, size and amount - are
 * formatted from integer arithmetic without printf, which was the largest
 * single cost of a get_quote reply. Uses cJSON for im_jw_cjson only. */
#ifndef IM_JSONW_H
#define IM_JSONW_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <string.h>

/* The buffer is owned by the writer until im_jw_take. After an allocation
 * failure every append is a no-op and oom stays set: check it once, at the
 * end, before using the text. */
typedef struct im_jw {
    char *buf;
    size_t len, cap;
    int oom;
} im_jw;

void im_jw_init(im_jw *w);
void im_jw_free(im_jw *w);
/* Empties w for the next text, keeping its buffer unless it grew past
 * 64 KiB (a writer reused for every reply allocates nothing). */
void im_jw_reset(im_jw *w);
/* The same with the owner's own limit: a buffer of up to keep bytes is
 * kept (fresh memory is faulted in page by page, which costs more than
 * writing into it on a small VM). */
void im_jw_reset_keep(im_jw *w, size_t keep);
/* Hands over the NUL-terminated text (free() it) and resets w; NULL when
 * an allocation failed. */
char *im_jw_take(im_jw *w, size_t *len);

/* Appends n bytes verbatim. Inline: a reply is a few dozen short appends,
 * and the call was a tenth of the writer's cost. */
void im_jw_raw_grow(im_jw *w, const char *s, size_t n);
static inline void im_jw_raw(im_jw *w, const char *s, size_t n) {
    if (n < w->cap - w->len && !w->oom) {   /* cap is 0 or above len */
        memcpy(w->buf + w->len, s, n);
        w->len += n;
        w->buf[w->len] = '\0';
        return;
    }
    im_jw_raw_grow(w, s, n);
}
void im_jw_lit(im_jw *w, const char *s);              /* im_jw_raw of a C string */
/* A JSON string: quoted and escaped as cJSON escapes (" \ and control
 * characters; UTF-8 passes through). s holds n bytes. */
void im_jw_str(im_jw *w, const char *s, size_t n);
/* A JSON number; a non-finite value is written as null, as cJSON does. */
void im_jw_num(im_jw *w, double d);
/* Writes the number into out (at least 32 bytes) and returns its length. */
size_t im_jw_fmt_num(char *out, double d);
/* A cJSON tree, unformatted; cJSON_Raw nodes are copied verbatim. Returns
 * 0, or IM_EINVAL for an invalid node (which is then written as null). */
int im_jw_cjson(im_jw *w, const cJSON *v);

#endif
