/* test_text.c: UTF-8 clipping and sanitizing; the JSON syntax check. */
#include "test.h"
#include "common.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

TEST(copy_never_splits_a_character) {
    char out[8];
    /* "é" is two bytes: with room for 7 bytes, three fit, not three and a half. */
    ASSERT_EQ(im_text_copy(out, sizeof out, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"), 6);
    ASSERT_STR_EQ(out, "\xc3\xa9\xc3\xa9\xc3\xa9");
    ASSERT_EQ(im_text_copy(out, 4, "\xf0\x9f\x98\x80"), 0);   /* a 4-byte emoji needs 5 */
    ASSERT_STR_EQ(out, "");
    ASSERT_EQ(im_text_copy(out, sizeof out, "abc"), 3);
    ASSERT_STR_EQ(out, "abc");
}

TEST(invalid_bytes_become_question_marks) {
    char s[] = "ok\xff\xc3(\xed\xa0\x80\xc0\xaf\xe2\x82";
    ASSERT_EQ(im_text_sanitize(s), 9);
    ASSERT_STR_EQ(s, "ok?" "?(" "???????");   /* split: "??(" is a trigraph */
    char out[32];
    im_text_copy(out, sizeof out, "a\xfe" "b");
    ASSERT_STR_EQ(out, "a?b");
}

TEST(valid_text_is_untouched) {
    char s[] = "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac";
    ASSERT_EQ(im_text_sanitize(s), 0);
    ASSERT_STR_EQ(s, "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac");
}

/* The word-at-a-time masks against a byte loop: "none" exactly when no byte
 * matches, and otherwise the lowest flagged byte is the first match. Words
 * are random, then each interesting byte at each of the eight places
 * around every other byte value (the borrows the masks must survive). */
static void check_word(uint64_t x) {
    static const unsigned eq[] = {'"', '\\', 0};
    unsigned char b[8];
    memcpy(b, &x, 8);
    for (int kind = 0; kind < 5; kind++) {
        uint64_t m;
        int first = -1;
        for (int i = 0; i < 8 && first < 0; i++) {
            int hit = kind < 3 ? b[i] == eq[kind] : kind == 3 ? b[i] < 0x20 : b[i] >= 0x80;
            if (hit)
                first = i;
        }
        m = kind < 3 ? im_text_eq8(x, eq[kind]) : kind == 3 ? im_text_lt8(x, 0x20) : im_text_high8(x);
        if (first < 0) {
            ASSERT_EQ(m, 0);
        } else {
            ASSERT(m != 0);
            ASSERT_EQ(im_text_first8(m), first);
        }
    }
}

TEST(word_masks_agree_with_a_byte_loop) {
    static const unsigned char special[] = {0, 1, 0x1f, 0x20, 0x21, '"', '\\', 0x7f, 0x80, 0xff};
    uint64_t r = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 200000; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        check_word(r);
        check_word(r & 0x7f7f7f7f7f7f7f7full);   /* ASCII only */
    }
    for (size_t s = 0; s < sizeof special; s++)
        for (int place = 0; place < 8; place++)
            for (unsigned fill = 0; fill < 256; fill++) {
                unsigned char b[8];
                uint64_t x;
                memset(b, (int)fill, 8);
                b[place] = special[s];
                memcpy(&x, b, 8);
                check_word(x);
            }
}

/* ---- the JSON syntax check ---------------------------------------------- */

static unsigned g_seed = 777;
static unsigned rnd(unsigned n) {
    g_seed = g_seed * 1103515245u + 12345u;
    return (g_seed >> 16) % n;
}

/* Appends a random JSON value to out (at least 8 KiB free). */
static void gen_json(char *out, size_t *len, int depth) {
    static const char *const atoms[] = {
        "0", "-1", "3.25", "1e9", "-0.5E-3", "true", "false", "null", "\"\"", "\"NVDA\"",
        "\"a \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t\"", "\"\\u00e9\\uD83D\\uDE00\"", "\"caf\xc3\xa9\"",
        "\"a long string of plain text that runs past eight bytes\""};
    static const char *const ws[] = {"", "", " ", "\n\t ", "\r\n"};
    unsigned k = depth > 4 ? 0 : rnd(4);
    size_t n;
    if (k < 2) {
        const char *a = atoms[rnd(IM_ARRAY_SIZE(atoms))];
        memcpy(out + *len, a, strlen(a));
        *len += strlen(a);
        return;
    }
    out[(*len)++] = k == 2 ? '[' : '{';
    n = rnd(4);
    for (size_t i = 0; i < n; i++) {
        const char *w = ws[rnd(IM_ARRAY_SIZE(ws))];
        if (i > 0)
            out[(*len)++] = ',';
        memcpy(out + *len, w, strlen(w));
        *len += strlen(w);
        if (k == 3) {
            *len += (size_t)sprintf(out + *len, "\"k%u\"%s:", rnd(100), ws[rnd(3)]);
        }
        gen_json(out, len, depth + 1);
    }
    out[(*len)++] = k == 2 ? ']' : '}';
    out[*len] = '\0';
}

/* im_text_json_len against cJSON: whatever it takes, cJSON takes, at the
 * same length; no strict prefix of a container, string or literal is
 * taken by either; what follows a value is not looked at. */
TEST(json_len_agrees_with_cjson) {
    static char doc[16384], buf[16400];
    for (int round = 0; round < 3000; round++) {
        size_t len = 0;
        const char *end = NULL;
        cJSON *v;
        gen_json(doc, &len, 0);
        doc[len] = '\0';
        ASSERT_EQ(im_text_json_len(doc, len), len);
        v = cJSON_ParseWithLengthOpts(doc, len, &end, 0);
        ASSERT(v != NULL);
        ASSERT_EQ((size_t)(end - doc), len);
        cJSON_Delete(v);
        /* Trailing bytes are left alone. */
        memcpy(buf, doc, len);
        memcpy(buf + len, " }x", 4);
        ASSERT_EQ(im_text_json_len(buf, len + 3), len);
        /* A cut: a container, string or literal cut short is not JSON. */
        if (strchr("[{\"tfn", doc[0]) != NULL) {
            size_t cut = rnd((unsigned)len);
            ASSERT_EQ(im_text_json_len(doc, cut), 0);
            v = cJSON_ParseWithLength(doc, cut);
            ASSERT(v == NULL);
        }
        /* A changed byte: taken only if cJSON takes it too. */
        memcpy(buf, doc, len + 1);
        buf[rnd((unsigned)len)] = "{}[]\":,\\ 0a-.eE\x01"[rnd(17)];
        if (im_text_json_len(buf, len) != 0 && strstr(buf, "\\u") == NULL) {
            v = cJSON_ParseWithLength(buf, len);
            if (v == NULL)
                im_test_fail(__FILE__, __LINE__, "taken, but cJSON refuses: %s", buf);
            cJSON_Delete(v);
        }
    }
}

TEST(json_len_edges) {
    static char deep[2100];
    static const char *const bad[] = {
        "", " ", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{1:2}", "[1 2]", "-", "1.", "1e", ".5",
        "+1", "\"a\tb\"", "\"\\x\"", "\"\\u12g4\"", "\"open", "tru", "nul", "[", "{", "{\"a\"",
        "\"\\\"", "[[]"};
    for (size_t i = 0; i < IM_ARRAY_SIZE(bad); i++)
        if (im_text_json_len(bad[i], strlen(bad[i])) != 0)
            im_test_fail(__FILE__, __LINE__, "took %s", bad[i]);
    ASSERT_EQ(im_text_json_len(" \n{} ", 5), 4);   /* the leading space counted */
    ASSERT_EQ(im_text_json_len("01", 2), 1);   /* 0, then what follows */
    {
        static const char nested[] = "[1, {\"a\": [true, null]}]";
        ASSERT_EQ(im_text_json_len(nested, sizeof nested - 1), sizeof nested - 1);
    }
    ASSERT_EQ(im_text_json_len(NULL, 0), 0);
    /* Nesting: 1000 deep is taken, as cJSON takes it; 1001 is not. */
    for (int d = 1000; d <= 1001; d++) {
        cJSON *v;
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        ASSERT_EQ(im_text_json_len(deep, 2 * (size_t)d), (size_t)(d == 1000 ? 2000 : 0));
        v = cJSON_ParseWithLength(deep, 2 * (size_t)d);
        ASSERT((v != NULL) == (d == 1000));
        cJSON_Delete(v);
    }
}
