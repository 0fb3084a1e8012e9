/* fuzz_framer.c: libFuzzer target for the newline framer and the line
 * check (rpc.h). The input is a header then the bytes a client sends:
 *   byte 0       the line cap, 1 + byte * 4 (1..1021);
 *   byte 1       how many split points follow (0..15);
 *   next k bytes the size of each read (0..255);
 *   the rest     the stream, fed read by read, the tail in one last read.
 * Every line and overflow is compared with a model that splits the whole
 * stream at once, so the result may not depend on how it was read; every
 * line then goes through im_rpc_line_check, whose refusals must carry a
 * sentence and whose passes must not let cJSON read a NUL into a string,
 * and through im_text_json_len (text.h), whose every value cJSON must read
 * to the same byte. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"
#include "text.h"

typedef struct model {
    const char *data;   /* the whole stream */
    size_t len, pos;    /* the next segment starts at pos */
    size_t max;
} model;

/* The next segment of the stream: its length and whether a newline ends
 * it. Returns 0 at the end of the stream. */
static int model_next(model *m, size_t *seg, int *terminated) {
    const char *nl;
    if (m->pos >= m->len)
        return 0;
    nl = memchr(m->data + m->pos, '\n', m->len - m->pos);
    *seg = nl ? (size_t)(nl - (m->data + m->pos)) : m->len - m->pos;
    *terminated = nl != NULL;
    return 1;
}

static int is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* 1 when a string in the line holds a \u escape not followed by four hex
 * digits (a JSON lexer's view: escapes inside strings only). */
static int bad_u_escape(const char *line, size_t len) {
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '"') {
            in_string = !in_string;
        } else if (in_string && line[i] == '\\' && i + 1 < len) {
            if (line[i + 1] == 'u') {
                if (i + 5 >= len || !is_hex(line[i + 2]) || !is_hex(line[i + 3]) ||
                    !is_hex(line[i + 4]) || !is_hex(line[i + 5]))
                    return 1;
            }
            i++;
        }
    }
    return 0;
}

static void on_line(void *ud, const char *line, size_t len) {
    model *m = ud;
    const char *why = NULL;
    size_t seg, want;
    int term;

    if (!model_next(m, &seg, &term) || seg > m->max)
        abort();
    want = seg;
    if (want > 0 && m->data[m->pos + want - 1] == '\r')
        want--;
    if (len != want || line[len] != '\0' || memcmp(line, m->data + m->pos, len) != 0)
        abort();
    m->pos += seg + (size_t)term;

    /* A value the syntax check takes is one cJSON reads (\u escapes aside:
     * cJSON refuses a lone surrogate the grammar allows), and as far, but
     * for a bare number: cJSON reads on through digits and signs ("00"). */
    if ((want = im_text_json_len(line, len)) != 0 && memmem(line, len, "\\u", 2) == NULL) {
        const char *end = NULL, *first = line + strspn(line, " \t\r\n");
        cJSON *v = cJSON_ParseWithLengthOpts(line, len, &end, 0);
        if (v == NULL || (end != line + want && strchr("{[\"tfn", *first) != NULL)) {
            fprintf(stderr, "fuzz_framer: im_text_json_len took %zu bytes cJSON reads %s: %.*s\n",
                    want, v == NULL ? "not at all" : "otherwise", (int)len, line);
            abort();
        }
        cJSON_Delete(v);
    }

    if (im_rpc_line_check(line, len, &why) != 0) {
        if (why == NULL || why[0] == '\0')
            abort();
        return;
    }
    /* Passed: cJSON must not read a NUL into any string of the line. It
     * decodes a \u escape whose four digits are not all hex as U+0000, so
     * such an escape cuts a string exactly as \u0000 would. */
    if (memchr(line, '\0', len) != NULL || bad_u_escape(line, len)) {
        const char *end = NULL;
        cJSON *v = cJSON_ParseWithLengthOpts(line, len, &end, 0);
        int whole = v != NULL && end != NULL;
        for (const char *q = end; whole && q < line + len; q++)
            whole = *q == ' ' || *q == '\t' || *q == '\r' || *q == '\n';
        cJSON_Delete(v);
        if (whole) {
            fprintf(stderr, "fuzz_framer: im_rpc_line_check passed a line cJSON reads a NUL "
                            "into: %.*s\n", (int)len, line);
            abort();
        }
    }
}

static void on_overflow(void *ud, size_t len) {
    model *m = ud;
    size_t seg;
    int term;
    if (!model_next(m, &seg, &term) || seg <= m->max || len != seg)
        abort();
    m->pos += seg + (size_t)term;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    im_rpc_framer f;
    model m;
    size_t nsplit, off;

    if (size < 2)
        return 0;
    nsplit = data[1] % 16;
    if (size < 2 + nsplit)
        return 0;
    memset(&m, 0, sizeof m);
    m.max = 1 + (size_t)data[0] * 4;
    m.data = (const char *)data + 2 + nsplit;
    m.len = size - 2 - nsplit;

    im_rpc_framer_init(&f, m.max);
    off = 0;
    for (size_t i = 0; i < nsplit; i++) {
        size_t n = data[2 + i];
        if (n > m.len - off)
            n = m.len - off;
        if (im_rpc_framer_feed(&f, m.data + off, n, on_line, on_overflow, &m) != 0)
            abort();
        off += n;
    }
    if (im_rpc_framer_feed(&f, m.data + off, m.len - off, on_line, on_overflow, &m) != 0)
        abort();
    im_rpc_framer_finish(&f, on_line, on_overflow, &m);
    im_rpc_framer_free(&f);
    /* Every segment was delivered: a line or an overflow each. */
    if (m.pos < m.len)
        abort();
    return 0;
}
