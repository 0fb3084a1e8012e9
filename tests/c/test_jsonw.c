/* test_jsonw.c: the reply writer. Numbers must read back as the same
 * double and, on the integer fast path, print what cJSON prints; strings
 * must escape as cJSON escapes; a tree must re-parse to an equal tree. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "test.h"

static char *fmt(double d, char *buf) {
    size_t n = im_jw_fmt_num(buf, d);
    ASSERT(n > 0 && n < 32);
    ASSERT_EQ(strlen(buf), n);
    return buf;
}

TEST(numbers_print_like_cjson_on_common_values) {
    char b[32];
    ASSERT_STR_EQ(fmt(0, b), "0");
    ASSERT_STR_EQ(fmt(-0.0, b), "0");
    ASSERT_STR_EQ(fmt(1, b), "1");
    ASSERT_STR_EQ(fmt(-42, b), "-42");
    ASSERT_STR_EQ(fmt(167.97, b), "167.97");
    ASSERT_STR_EQ(fmt(-0.5, b), "-0.5");
    ASSERT_STR_EQ(fmt(0.0001, b), "0.0001");
    ASSERT_STR_EQ(fmt(0.000123, b), "0.000123");
    ASSERT_STR_EQ(fmt(100000.25, b), "100000.25");
    ASSERT_STR_EQ(fmt(123456789012.5, b), "123456789012.5");
    ASSERT_STR_EQ(fmt(999999999999999.0, b), "999999999999999");
    /* Beyond the fast path: printf's forms, as cJSON writes them. */
    ASSERT_STR_EQ(fmt(1e15, b), "1e+15");
    ASSERT_STR_EQ(fmt(0.00001, b), "1e-05");
    ASSERT_STR_EQ(fmt(0.1 + 0.2, b), "0.30000000000000004");
    ASSERT_STR_EQ(fmt(NAN, b), "null");
    ASSERT_STR_EQ(fmt(INFINITY, b), "null");
    ASSERT_STR_EQ(fmt(-INFINITY, b), "null");
}

/* Every finite double must read back exactly; where "%1.15g" reads back
 * exactly too, the text must be the same as printf's. */
static void roundtrip(double d) {
    char b[32], ref[40];
    fmt(d, b);
    ASSERT_EQ(strtod(b, NULL), d == 0 ? 0 : d);
    snprintf(ref, sizeof ref, "%1.15g", d);
    if (d != 0 && strtod(ref, NULL) == d && strcmp(b, ref) != 0) {
        fprintf(stderr, "%.17g: wrote %s, printf %s\n", d, b, ref);
        ASSERT(0);
    }
}

TEST(numbers_round_trip_and_match_printf) {
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        /* xorshift: prices, sizes, tiny and huge values, random bits */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        switch (i % 5) {
        case 0: d = (double)(x % 100000000) / 100.0; break;          /* cents */
        case 1: d = (double)(x % 10000000000ULL) / 1e6; break;       /* six places */
        case 2: d = (double)(int64_t)(x % 2000000000000000ULL) - 1e15; break;
        case 3: d = ldexp((double)(x >> 11), (int)(x % 120) - 100); break;
        default: {
            memcpy(&d, &x, sizeof d);
            if (!isfinite(d))
                d = 1.5;
        }
        }
        roundtrip(d);
        roundtrip(-d);
    }
}

/* im_jw_str of the NUL-terminated src must be what cJSON prints. */
static void expect_escaped_as_cjson(const char *src) {
    im_jw w;
    cJSON *s = cJSON_CreateString(src);
    char *ref = cJSON_PrintUnformatted(s), *got;
    im_jw_init(&w);
    im_jw_str(&w, src, strlen(src));
    got = im_jw_take(&w, NULL);
    ASSERT(got != NULL && ref != NULL);
    ASSERT_STR_EQ(got, ref);
    free(got);
    cJSON_free(ref);
    cJSON_Delete(s);
}

TEST(strings_escape_as_cjson_does) {
    const char *cases[] = {
        "plain", "", "quote \" and \\ backslash", "ctl \b\f\n\r\t\x01\x1f end",
        "utf-8 caf\xc3\xa9 \xf0\x9f\x98\x80 and DEL \x7f", "/slash/",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_escaped_as_cjson(cases[i]);
}

/* Every byte value, at lengths on both sides of the one-pass limit (1024)
 * and after text already in the buffer: the same as cJSON's printer. */
TEST(strings_of_every_byte_and_length_escape_as_cjson_does) {
    static const size_t lens[] = {1, 255, 1023, 1024, 1025, 4097, 20000};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t n = lens[li];
        char *src = malloc(n + 1), *ref, *got;
        cJSON *s;
        im_jw w;
        ASSERT(src != NULL);
        for (size_t i = 0; i < n; i++)
            src[i] = (char)(1 + (i * 7 + li) % 255);   /* no NUL: cJSON stops there */
        src[n] = '\0';
        s = cJSON_CreateString(src);
        ref = cJSON_PrintUnformatted(s);
        im_jw_init(&w);
        im_jw_raw(&w, "[", 1);
        im_jw_str(&w, src, n);
        got = im_jw_take(&w, NULL);
        ASSERT(got != NULL && ref != NULL);
        ASSERT_EQ(got[0], '[');
        ASSERT_STR_EQ(got + 1, ref);
        free(got);
        free(src);
        cJSON_free(ref);
        cJSON_Delete(s);
    }
}

TEST(trees_reparse_equal_and_raw_nodes_are_verbatim) {
    const char *doc = "{\"a\":[1,2.5,-3e-7,true,false,null,{\"b\":\"x\\ny\"}],"
                      "\"c\":{},\"d\":[],\"e\":\"\\u00e9\",\"f\":1.7976931348623157e308}";
    cJSON *v = cJSON_Parse(doc), *back;
    im_jw w;
    char *text;
    size_t len;
    ASSERT(v != NULL);
    im_jw_init(&w);
    ASSERT_EQ(im_jw_cjson(&w, v), 0);
    text = im_jw_take(&w, &len);
    ASSERT(text != NULL);
    ASSERT_EQ(strlen(text), len);
    back = cJSON_Parse(text);
    ASSERT(back != NULL);
    ASSERT(cJSON_Compare(v, back, 1));
    cJSON_Delete(back);
    free(text);

    cJSON_AddItemToObject(v, "raw", cJSON_CreateRaw("{\"pre\":[1]}"));
    im_jw_init(&w);
    im_jw_lit(&w, "[");
    im_jw_cjson(&w, cJSON_GetObjectItemCaseSensitive(v, "raw"));
    im_jw_lit(&w, "]");
    text = im_jw_take(&w, NULL);
    ASSERT_STR_EQ(text, "[{\"pre\":[1]}]");
    free(text);
    cJSON_Delete(v);

    /* Nothing written is an empty string, still to be freed. */
    im_jw_init(&w);
    text = im_jw_take(&w, &len);
    ASSERT(text != NULL && len == 0 && text[0] == '\0');
    free(text);
}

/* Every byte value at every place of the first sixteen in strings of 1 to
 * 40 bytes: the eight-byte steps stop where they must, whatever the offset
 * of the byte that needs escaping. */
TEST(escapes_at_every_offset_match_cjson) {
    char src[41];
    for (size_t n = 1; n <= 40; n++)
        for (size_t at = 0; at < n && at < 16; at++)
            for (int b = 1; b < 256; b++) {
                for (size_t i = 0; i < n; i++)
                    src[i] = (char)('a' + i % 26);
                src[at] = (char)b;
                src[n] = '\0';
                expect_escaped_as_cjson(src);
            }
}
