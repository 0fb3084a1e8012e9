/* test_schema.c: the JSON Schema subset used for tool arguments/results. */
#include <cjson/cJSON.h>
#include <regex.h>
#include <stdint.h>
#include <stdlib.h>

#include "error.h"
#include "schema.h"
#include "test.h"

static const char *order_schema =
    "{\"type\":\"object\",\"required\":[\"symbol\",\"quantity\"],\"additionalProperties\":false,"
    "\"properties\":{\"symbol\":{\"type\":\"string\",\"pattern\":\"^[A-Za-z][A-Za-z0-9.]{0,11}$\"},"
    "\"quantity\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000},"
    "\"action\":{\"type\":\"string\",\"enum\":[\"BUY\",\"SELL\"]},"
    "\"limit_price\":{\"type\":\"number\",\"exclusiveMinimum\":0},"
    "\"token\":{\"type\":[\"string\",\"null\"],\"maxLength\":4},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":2}}}";

static int check(const char *value, char *err, size_t errlen) {
    cJSON *s = cJSON_Parse(order_schema), *v = cJSON_Parse(value);
    int rc;
    ASSERT(s != NULL && v != NULL);
    rc = im_schema_validate(s, v, err, errlen);
    cJSON_Delete(s);
    cJSON_Delete(v);
    return rc;
}

TEST(valid_values_pass) {
    char err[256] = "";
    ASSERT_EQ(check("{\"symbol\":\"NVDA\",\"quantity\":1}", err, sizeof err), 0);
    ASSERT_EQ(check("{\"symbol\":\"BRK.B\",\"quantity\":1000,\"action\":\"SELL\","
                    "\"limit_price\":0.01,\"token\":null,\"tags\":[\"a\",\"b\"]}",
                    err, sizeof err),
              0);
    ASSERT_EQ(check("{\"symbol\":\"a\",\"quantity\":5.0,\"token\":\"abcd\"}", err, sizeof err), 0);
}

TEST(each_keyword_rejects_with_a_sentence) {
    char err[256];
    ASSERT_EQ(check("{\"quantity\":1}", err, sizeof err), IM_ESCHEMA);
    ASSERT_STR_EQ(err, "symbol is required");
    ASSERT_EQ(check("{\"symbol\":\"NVDA\",\"quantity\":0}", err, sizeof err), IM_ESCHEMA);
    ASSERT_STR_EQ(err, "quantity must be at least 1 (got 0)");
    ASSERT_EQ(check("{\"symbol\":\"NVDA\",\"quantity\":1001}", err, sizeof err), IM_ESCHEMA);
    ASSERT_CONTAINS(err, "at most 1000");
    ASSERT_EQ(check("{\"symbol\":\"NVDA\",\"quantity\":1.5}", err, sizeof err), IM_ESCHEMA);
    ASSERT_CONTAINS(err, "quantity must be an integer");
    ASSERT_EQ(check("{\"symbol\":\"NVDA\",\"quantity\":\"5\"}", err, sizeof err), IM_ESCHEMA);
    ASSERT_CONTAINS(err, "(got a string)");
    ASSERT_EQ(check("{\"symbol\":\"1BAD\",\"quantity\":1}", err, sizeof err), IM_ESCHEMA);
    ASSERT_CONTAINS(err, "symbol must match");
    ASSERT_EQ(check("{\"symbol\":\"NVDA\",\"quantity\":1,\"action\":\"HOLD\"}", err, sizeof err),
              IM_ESCHEMA);
    ASSERT_STR_EQ(err, "action must be one of \"BUY\", \"SELL\"");
    ASSERT_EQ(check("{\"symbol\":\"NVDA\",\"quantity\":1,\"limit_price\":0}", err, sizeof err),
              IM_ESCHEMA);
    ASSERT_CONTAINS(err, "greater than 0");
    ASSERT_EQ(check("{\"symbol\":\"NVDA\",\"quantity\":1,\"extra\":1}", err, sizeof err),
              IM_ESCHEMA);
    ASSERT_CONTAINS(err, "unexpected argument extra");
    ASSERT_EQ(check("{\"symbol\":\"NVDA\",\"quantity\":1,\"token\":\"abcde\"}", err, sizeof err),
              IM_ESCHEMA);
    ASSERT_CONTAINS(err, "at most 4 characters");
    ASSERT_EQ(check("{\"symbol\":\"NVDA\",\"quantity\":1,\"tags\":[\"a\",1]}", err, sizeof err),
              IM_ESCHEMA);
    ASSERT_CONTAINS(err, "tags[1] must be a string");
    ASSERT_EQ(check("{\"symbol\":\"NVDA\",\"quantity\":1,\"tags\":[\"a\",\"b\",\"c\"]}", err,
                    sizeof err),
              IM_ESCHEMA);
    ASSERT_EQ(check("[1]", err, sizeof err), IM_ESCHEMA);
}

TEST(unicode_lengths_count_code_points) {
    char err[256];
    /* Four two-byte characters fit maxLength 4. */
    ASSERT_EQ(check("{\"symbol\":\"A\",\"quantity\":1,\"token\":\"\\u00e9\\u00e9\\u00e9\\u00e9\"}",
                    err, sizeof err),
              0);
}

TEST(schema_check_refuses_unknown_types_and_bad_patterns) {
    char err[128];
    cJSON *s = cJSON_Parse("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"float\"}}}");
    ASSERT_EQ(im_schema_check(s, err, sizeof err), IM_ESCHEMA);
    cJSON_Delete(s);
    s = cJSON_Parse("{\"type\":\"string\",\"pattern\":\"([\"}");
    ASSERT_EQ(im_schema_check(s, err, sizeof err), IM_ESCHEMA);
    cJSON_Delete(s);
    s = cJSON_Parse(order_schema);
    ASSERT_EQ(im_schema_check(s, err, sizeof err), 0);
    cJSON_Delete(s);
    /* Compiling refuses the same, a nested pattern included. */
    im_schema *c = NULL;
    s = cJSON_Parse("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\","
                    "\"items\":{\"type\":\"string\",\"pattern\":\"([\"}}}}");
    ASSERT_EQ(im_schema_compile(s, &c, err, sizeof err), IM_ESCHEMA);
    ASSERT(c == NULL);
    ASSERT_STR_EQ(err, "schema pattern does not compile");
    cJSON_Delete(s);
    s = cJSON_Parse("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"float\"}}}");
    ASSERT_EQ(im_schema_compile(s, &c, err, sizeof err), IM_ESCHEMA);
    cJSON_Delete(s);
}

TEST(compiled_schema_runs_many_times_and_fills_nulls) {
    char err[256];
    im_schema *c = NULL;
    cJSON *s = cJSON_Parse(
        "{\"type\":\"object\",\"required\":[\"a\",\"n\"],\"properties\":{"
        "\"a\":{\"type\":\"string\"},\"n\":{\"type\":[\"number\",\"null\"]},"
        "\"inner\":{\"type\":\"object\",\"required\":[\"z\"],"
        "\"properties\":{\"z\":{\"type\":[\"null\",\"string\"]}}}}}");
    cJSON *v = cJSON_Parse("{\"a\":\"x\",\"inner\":{}}");
    ASSERT(s != NULL && v != NULL);
    ASSERT_EQ(im_schema_compile(s, &c, err, sizeof err), 0);
    ASSERT_EQ(im_schema_run(c, v, err, sizeof err), IM_ESCHEMA);
    ASSERT_STR_EQ(err, "n is required");
    im_schema_fill_nulls(c, v);
    ASSERT(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(v, "n")));
    ASSERT(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(v, "inner"), "z")));
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(im_schema_run(c, v, err, sizeof err), 0);
    cJSON_ReplaceItemInObject(v, "a", cJSON_CreateNumber(1));
    ASSERT_EQ(im_schema_run(c, v, err, sizeof err), IM_ESCHEMA);
    ASSERT_STR_EQ(err, "a must be a string (got a number)");
    im_schema_free(c);
    cJSON_Delete(v);
    cJSON_Delete(s);
}

/* The type and the allowed keys are named in messages as the schema
 * gives them: types joined by "or" (the list cut at 127 bytes), keys in
 * schema order. */
static void expect_message(const char *schema_text, const char *value_text, const char *want) {
    cJSON *s = cJSON_Parse(schema_text), *v = cJSON_Parse(value_text);
    im_schema *c = NULL;
    char err[512];
    ASSERT(s != NULL && v != NULL);
    ASSERT_EQ(im_schema_compile(s, &c, err, sizeof err), 0);
    ASSERT_EQ(im_schema_run(c, v, err, sizeof err), IM_ESCHEMA);
    ASSERT_STR_EQ(err, want);
    im_schema_free(c);
    cJSON_Delete(v);
    cJSON_Delete(s);
}

TEST(messages_name_types_and_allowed_keys) {
    char schema[1024], want[512];
    expect_message("{\"type\":[\"string\",\"null\"]}", "5",
                   "the value must be a string or null (got a number)");
    expect_message("{\"properties\":{\"q\":{\"type\":[\"integer\",\"null\"]}}}",
                   "{\"q\":\"x\"}", "q must be an integer or null (got a string)");
    expect_message("{\"type\":\"object\"}", "[]", "the value must be an object (got an array)");
    expect_message("{\"type\":\"object\",\"additionalProperties\":false,\"properties\":"
                   "{\"symbol\":{},\"action\":{},\"quantity\":{}}}",
                   "{\"symbol\":\"NVDA\",\"side\":\"BUY\"}",
                   "unexpected argument side (allowed: symbol, action, quantity)");
    expect_message("{\"additionalProperties\":false}", "{\"x\":1}",
                   "unexpected argument x (allowed: none)");
    /* Forty types: the sentence stops where 128 bytes end. */
    snprintf(schema, sizeof schema, "{\"type\":[");
    for (int i = 0; i < 40; i++)
        snprintf(schema + strlen(schema), sizeof schema - strlen(schema), "%s\"boolean\"",
                 i ? "," : "");
    snprintf(schema + strlen(schema), sizeof schema - strlen(schema), "]}");
    snprintf(want, sizeof want, "the value must be a ");
    {
        char list[128] = "";
        for (int i = 0; i < 40; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%sboolean", l ? " or " : "");
        }
        snprintf(want + strlen(want), sizeof want - strlen(want), "%s (got a number)", list);
    }
    expect_message(schema, "1", want);
}

/* More than 64 properties: presence of the later ones is looked up, not
 * read from the bitmap; a duplicate property keeps the first schema. */
TEST(compiled_schema_many_and_duplicate_properties) {
    char err[256], *text, key[16];
    cJSON *s = cJSON_CreateObject(), *props = cJSON_AddObjectToObject(s, "properties");
    cJSON *req = cJSON_AddArrayToObject(s, "required"), *v;
    im_schema *c = NULL;
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        cJSON *p = cJSON_AddObjectToObject(props, key);
        cJSON_AddStringToObject(p, "type", "integer");
        cJSON_AddItemToArray(req, cJSON_CreateString(key));
    }
    cJSON_AddItemToObject(props, "k000", cJSON_Parse("{\"type\":\"string\"}"));
    ASSERT_EQ(im_schema_compile(s, &c, err, sizeof err), 0);
    v = cJSON_CreateObject();
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%03d", i);
        if (i != 90)
            cJSON_AddNumberToObject(v, key, i);
    }
    ASSERT_EQ(im_schema_run(c, v, err, sizeof err), IM_ESCHEMA);
    ASSERT_STR_EQ(err, "k090 is required");
    cJSON_AddNumberToObject(v, "k090", 90);
    ASSERT_EQ(im_schema_run(c, v, err, sizeof err), 0);
    text = cJSON_PrintUnformatted(v);
    ASSERT(text != NULL);
    cJSON_free(text);
    im_schema_free(c);
    cJSON_Delete(v);
    cJSON_Delete(s);
}

/* Simple anchored patterns are matched by a table walk instead of regexec:
 * on every string of up to three characters from a mixed alphabet, and on
 * random longer ones, the walk and regexec must agree. Patterns outside
 * the simple shape must stay with regexec and still work. */
TEST(simple_patterns_match_as_regexec_does) {
    static const struct {
        const char *re;
        int fast;
    } pats[] = {
        {"^[A-Za-z][A-Za-z0-9.]{0,11}$", 1},
        {"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", 1},
        {"^[a-c]?[b-d]{1,3}x{0,2}$", 1},
        {"^[-a]{2}[a-]?[0-9_:/,@ ]{0,5}$", 1},
        {"^ab?c{2}$", 1},
        {"^$", 1},
        {"^[a-z]{0,0}b$", 1},
        {"^(a|b)+$", 0},
        {"^[^a]{1,2}$", 0},
        {"^[a-z]*$", 0},
        {"^a{2,}$", 0},
        {"[a-z]{2}$", 0},
        {"^[a-z]{2}", 0},
        {"^[[:alpha:]]{2}$", 0},
        {"^.{2}$", 0},
        {"^a{2}?$", 0},
        {"^a|b$", 0},
        {"^[a-z]{40}[0-9]{30}$", 0},
    };
    static const char alpha[] = "abcdxzAZ09.-_:/, @\x80\xc3";
    const size_t na = sizeof alpha - 1;
    uint64_t r = 0x2545f4914f6cdd1dull;
    char str[24], err[256];

    for (size_t k = 0; k < sizeof pats / sizeof pats[0]; k++) {
        char doc[160];
        cJSON *s, *v;
        im_schema *c = NULL;
        regex_t re;
        snprintf(doc, sizeof doc, "{\"type\":\"string\",\"pattern\":\"%s\"}", pats[k].re);
        s = cJSON_Parse(doc);
        ASSERT(s != NULL);
        ASSERT_EQ(im_schema_compile(s, &c, err, sizeof err), 0);
        if (im_schema_pattern_is_fast(c) != pats[k].fast)
            im_test_fail(__FILE__, __LINE__, "%s: fast %d", pats[k].re, !pats[k].fast);
        ASSERT_EQ(regcomp(&re, pats[k].re, REG_EXTENDED | REG_NOSUB), 0);
        for (int t = 0; t < 30000; t++) {
            size_t len;
            if (t < 1 + 22 + 22 * 22 + 22 * 22 * 22) {   /* every string up to 3 long */
                int x = t;
                len = x == 0 ? 0 : x <= 22 ? 1 : x <= 22 + 484 ? 2 : 3;
                x -= len == 0 ? 0 : len == 1 ? 1 : len == 2 ? 23 : 23 + 484;
                for (size_t i = 0; i < len; i++, x /= 22)
                    str[i] = alpha[(size_t)x % na];
            } else {
                r ^= r << 13, r ^= r >> 7, r ^= r << 17;
                len = (size_t)(r % 20);
                for (size_t i = 0; i < len; i++)
                    str[i] = alpha[(r >> (i * 3 % 60)) % na];
                if (r & 1)   /* often a date or a symbol, to reach the matches */
                    len = (size_t)snprintf(str, sizeof str, "%s",
                                           (r >> 8 & 1) ? "2026-11-25" : "BRK.B");
            }
            str[len] = '\0';
            v = cJSON_CreateString(str);
            ASSERT(v != NULL);
            int want = regexec(&re, str, 0, NULL, 0) == 0;
            int got = im_schema_run(c, v, err, sizeof err) == 0;
            if (got != want)
                im_test_fail(__FILE__, __LINE__, "%s on \"%s\": %d, regexec %d", pats[k].re,
                             str, got, want);
            cJSON_Delete(v);
        }
        regfree(&re);
        im_schema_free(c);
        cJSON_Delete(s);
    }
}
