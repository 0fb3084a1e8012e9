/* test_rpc.c: newline framing of JSON-RPC input. */
#include <stdlib.h>

#include "error.h"
#include "rpc.h"
#include "test.h"

typedef struct seen {
    char lines[16][256];
    size_t lens[16];
    int n;
    size_t overflows[8];
    int nover;
} seen;

static void on_line(void *ud, const char *line, size_t len) {
    seen *s = ud;
    ASSERT(s->n < 16);
    ASSERT_EQ(line[len], '\0');
    memcpy(s->lines[s->n], line, len < 255 ? len : 255);
    s->lens[s->n] = len;
    s->n++;
}

static void on_over(void *ud, size_t len) {
    seen *s = ud;
    s->overflows[s->nover++] = len;
}

TEST(split_reads_make_one_line) {
    im_rpc_framer f;
    seen s = {0};
    const char *msg = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n";
    im_rpc_framer_init(&f, 1024);
    /* One byte at a time: the worst case of partial reads. */
    for (size_t i = 0; msg[i]; i++) {
        ASSERT_EQ(im_rpc_framer_feed(&f, msg + i, 1, on_line, on_over, &s), 0);
        if (msg[i + 1])
            ASSERT_EQ(s.n, 0);
    }
    ASSERT_EQ(s.n, 1);
    ASSERT_STR_EQ(s.lines[0], "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    im_rpc_framer_free(&f);
}

TEST(coalesced_reads_make_several_lines) {
    im_rpc_framer f;
    seen s = {0};
    const char *data = "a\nbb\r\n\nccc\ndd";
    im_rpc_framer_init(&f, 1024);
    ASSERT_EQ(im_rpc_framer_feed(&f, data, strlen(data), on_line, on_over, &s), 0);
    ASSERT_EQ(s.n, 4);
    ASSERT_STR_EQ(s.lines[0], "a");
    ASSERT_STR_EQ(s.lines[1], "bb");   /* CR dropped */
    ASSERT_EQ(s.lens[2], 0);           /* empty line delivered; mcp skips it */
    ASSERT_STR_EQ(s.lines[3], "ccc");
    /* "dd" has no newline yet: delivered only at end of input. */
    im_rpc_framer_finish(&f, on_line, on_over, &s);
    ASSERT_EQ(s.n, 5);
    ASSERT_STR_EQ(s.lines[4], "dd");
    im_rpc_framer_free(&f);
}

TEST(overlong_line_is_dropped_and_reported_once) {
    im_rpc_framer f;
    seen s = {0};
    char big[300];
    memset(big, 'x', sizeof big);
    im_rpc_framer_init(&f, 100);
    /* 300 bytes in three reads, then the newline and a good line. */
    ASSERT_EQ(im_rpc_framer_feed(&f, big, 100, on_line, on_over, &s), 0);
    ASSERT_EQ(im_rpc_framer_feed(&f, big, 100, on_line, on_over, &s), 0);
    ASSERT_EQ(im_rpc_framer_feed(&f, big, 100, on_line, on_over, &s), 0);
    ASSERT_EQ(s.nover, 0);
    ASSERT_EQ(im_rpc_framer_feed(&f, "\nok\n", 4, on_line, on_over, &s), 0);
    ASSERT_EQ(s.nover, 1);
    ASSERT_EQ(s.overflows[0], 300);
    ASSERT_EQ(s.n, 1);
    ASSERT_STR_EQ(s.lines[0], "ok");
    im_rpc_framer_free(&f);
}

TEST(line_exactly_at_the_limit_passes) {
    im_rpc_framer f;
    seen s = {0};
    char line[101];
    memset(line, 'y', 100);
    line[100] = '\n';
    im_rpc_framer_init(&f, 100);
    ASSERT_EQ(im_rpc_framer_feed(&f, line, 101, on_line, on_over, &s), 0);
    ASSERT_EQ(s.n, 1);
    ASSERT_EQ(s.lens[0], 100);
    ASSERT_EQ(s.nover, 0);
    /* One more byte is over. */
    line[100] = 'y';
    ASSERT_EQ(im_rpc_framer_feed(&f, line, 101, on_line, on_over, &s), 0);
    ASSERT_EQ(im_rpc_framer_feed(&f, "\n", 1, on_line, on_over, &s), 0);
    ASSERT_EQ(s.nover, 1);
    ASSERT_EQ(s.n, 1);
    im_rpc_framer_free(&f);
}

TEST(overlong_final_line_at_eof_is_reported_not_delivered) {
    im_rpc_framer f;
    seen s = {0};
    char big[50];
    memset(big, 'z', sizeof big);
    im_rpc_framer_init(&f, 10);
    ASSERT_EQ(im_rpc_framer_feed(&f, big, sizeof big, on_line, on_over, &s), 0);
    im_rpc_framer_finish(&f, on_line, on_over, &s);
    ASSERT_EQ(s.n, 0);
    ASSERT_EQ(s.nover, 1);
    ASSERT_EQ(s.overflows[0], 50);
    im_rpc_framer_free(&f);
}

TEST(nul_bytes_inside_a_line_are_kept_in_its_length) {
    im_rpc_framer f;
    seen s = {0};
    im_rpc_framer_init(&f, 100);
    ASSERT_EQ(im_rpc_framer_feed(&f, "a\0b\n", 4, on_line, on_over, &s), 0);
    ASSERT_EQ(s.n, 1);
    ASSERT_EQ(s.lens[0], 3);
    im_rpc_framer_free(&f);
}

TEST(line_check_refuses_what_cjson_would_misread) {
    const char *why = NULL;
    static const char ok1[] = "{\"a\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\"}";
    ASSERT_EQ(im_rpc_line_check(ok1, sizeof ok1 - 1, &why), 0);
    /* An escaped backslash followed by u0000 is text, not a NUL. */
    static const char ok2[] = "{\"a\":\"x\\\\u0000\"}";
    ASSERT_EQ(im_rpc_line_check(ok2, sizeof ok2 - 1, &why), 0);
    static const char nul_esc[] = "{\"t\":\"abc\\u0000junk\"}";
    ASSERT_EQ(im_rpc_line_check(nul_esc, sizeof nul_esc - 1, &why), IM_EPARSE);
    ASSERT_CONTAINS(why, "NUL");
    static const char raw_nul[] = "{\"t\":1}\0x";
    ASSERT_EQ(im_rpc_line_check(raw_nul, sizeof raw_nul - 1, &why), IM_EPARSE);
    static const char bad_utf8[] = "{\"m\":\"m\xc3(\xff\"}";
    ASSERT_EQ(im_rpc_line_check(bad_utf8, sizeof bad_utf8 - 1, &why), IM_EPARSE);
    ASSERT_CONTAINS(why, "UTF-8");
    static const char overlong[] = "\xc0\xaf";
    ASSERT_EQ(im_rpc_line_check(overlong, sizeof overlong - 1, &why), IM_EPARSE);
    static const char surrogate[] = "\xed\xa0\x80";
    ASSERT_EQ(im_rpc_line_check(surrogate, sizeof surrogate - 1, &why), IM_EPARSE);
    /* cJSON reads a \u without four hex digits as U+0000. */
    static const char bad_hex[] = "{\"t\":\"NVDA\\uzzzzjunk\"}";
    ASSERT_EQ(im_rpc_line_check(bad_hex, sizeof bad_hex - 1, &why), IM_EPARSE);
    ASSERT_CONTAINS(why, "four hex digits");
    static const char bad_hex2[] = "{\"t\":\"NVDA\\u00G0\"}";
    ASSERT_EQ(im_rpc_line_check(bad_hex2, sizeof bad_hex2 - 1, &why), IM_EPARSE);
    static const char short_u[] = "{\"t\":\"x\\u12";
    ASSERT_EQ(im_rpc_line_check(short_u, sizeof short_u - 1, &why), IM_EPARSE);
    static const char good_u[] = "{\"t\":\"caf\\u00E9\\n\\\"\"}";
    ASSERT_EQ(im_rpc_line_check(good_u, sizeof good_u - 1, &why), 0);
    static const char nul_after_bs[] = "{\"t\":\"x\\\0\"}";
    ASSERT_EQ(im_rpc_line_check(nul_after_bs, sizeof nul_after_bs - 1, &why), IM_EPARSE);
    static const char truncated[] = "\"\xe2\x82";
    ASSERT_EQ(im_rpc_line_check(truncated, sizeof truncated - 1, &why), IM_EPARSE);
}

/* The checks skip plain ASCII eight bytes at a time: each refusal (and each
 * acceptable non-ASCII character or escape) is tried at every offset of a
 * 40-byte string value, so the skip never steps over it. */
TEST(line_check_finds_what_it_must_at_every_offset) {
    static const struct {
        const char *ins;
        size_t len;
        int want;
    } cases[] = {
        {"\0", 1, IM_EPARSE},          {"\xff", 1, IM_EPARSE},
        {"\xc3", 1, IM_EPARSE},        {"\xed\xa0\x80", 3, IM_EPARSE},
        {"\\u0000", 6, IM_EPARSE},     {"\\q", 2, IM_EPARSE},
        {"\\uzz00", 6, IM_EPARSE},     {"\xc3\xa9", 2, 0},
        {"\xf0\x9f\x98\x80", 4, 0},    {"\\u00e9", 6, 0},
        {"\\\"", 2, 0},                {"\\\\", 2, 0},
    };
    char line[128];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t at = 0; at <= 40; at++) {
            const char *why = NULL;
            size_t n = 0;
            memcpy(line, "{\"t\":\"", 6);
            n = 6;
            for (size_t i = 0; i < 40; i++) {
                if (i == at) {
                    memcpy(line + n, cases[c].ins, cases[c].len);
                    n += cases[c].len;
                }
                line[n++] = (char)('A' + i % 26);
            }
            if (at == 40) {
                memcpy(line + n, cases[c].ins, cases[c].len);
                n += cases[c].len;
            }
            memcpy(line + n, "\"}", 2);
            n += 2;
            if (im_rpc_line_check(line, n, &why) != cases[c].want)
                im_test_fail(__FILE__, __LINE__, "case %zu at %zu: want %d (%s)", c, at,
                             cases[c].want, why ? why : "accepted");
        }
}
