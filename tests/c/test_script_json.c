/* test_script_json.c: cJSON <-> Lua conversion (script_json.c): round
 * trips, depth limits, rejected values with their paths, empty tables and
 * schema hints, array detection, integers and floats, strings (NULs,
 * UTF-8), null, raw reads and stack balance. Values come from sandboxed
 * states (script.h), the way the tools module will produce them. */
#include <lauxlib.h>
#include <stdlib.h>

#include "common.h"
#include "error.h"
#include "script.h"
#include "script_json.h"
#include "jsonw.h"
#include "test.h"

static im_script *new_state(void) {
    im_script_opts o;
    im_script *s = NULL;

    memset(&o, 0, sizeof o);
    o.name = "json";
    o.mem_limit = (size_t)8 << 20;
    o.instr_budget = 1000000;
    ASSERT_EQ(im_script_new(&o, &s), 0);
    return s;
}

/* Runs src (a chunk returning one value) and leaves the value on top. */
static void eval(im_script *s, const char *src) {
    char err[512];
    im_script_status st = im_script_load(s, "=json", src, strlen(src), err, sizeof err);

    if (st != IM_SCRIPT_OK)
        im_test_fail(__FILE__, __LINE__, "%s: %s", src, err);
}

/* Converts the top value; on success returns the unformatted text (free
 * with cJSON_free) and NULL otherwise, with *rc and err set. The stack
 * must be unchanged either way. */
static char *to_json(lua_State *L, const char *schema_text, int maxdepth, int *rc, char *err,
                     size_t errlen) {
    cJSON *schema = NULL, *out = NULL;
    im_schema *compiled = NULL;
    char *text = NULL, serr[128];
    int top = lua_gettop(L);

    if (schema_text != NULL) {
        schema = cJSON_Parse(schema_text);
        ASSERT(schema != NULL);
        ASSERT_EQ(im_schema_compile(schema, &compiled, serr, sizeof serr), 0);
    }
    *rc = im_sjson_from_lua(L, -1, compiled, maxdepth, &out, err, errlen);
    ASSERT_EQ(lua_gettop(L), top);
    if (*rc == 0) {
        ASSERT(out != NULL);
        text = cJSON_PrintUnformatted(out);
        ASSERT(text != NULL);
    } else {
        ASSERT(out == NULL);
    }
    cJSON_Delete(out);
    im_schema_free(compiled);
    cJSON_Delete(schema);
    return text;
}

/* Asserts that Lua src converts to exactly want (with an optional schema). */
static void expect_json(im_script *s, const char *src, const char *schema, const char *want) {
    lua_State *L = im_script_state(s);
    char err[512];
    int rc;
    char *text;

    eval(s, src);
    text = to_json(L, schema, 0, &rc, err, sizeof err);
    if (rc != 0)
        im_test_fail(__FILE__, __LINE__, "%s: rc %d: %s", src, rc, err);
    if (strcmp(text, want) != 0)
        im_test_fail(__FILE__, __LINE__, "%s: got %s, want %s", src, text, want);
    cJSON_free(text);
    lua_settop(L, 0);
}

/* Asserts that Lua src fails with code and a message containing msg. */
static void expect_error(im_script *s, const char *src, int code, const char *msg) {
    lua_State *L = im_script_state(s);
    char err[512];
    int rc;
    char *text;

    eval(s, src);
    text = to_json(L, NULL, 0, &rc, err, sizeof err);
    if (rc != code)
        im_test_fail(__FILE__, __LINE__, "%s: rc %d (%s), want %d", src, rc,
                     text != NULL ? text : err, code);
    if (strstr(err, msg) == NULL)
        im_test_fail(__FILE__, __LINE__, "%s: message \"%s\" lacks \"%s\"", src, err, msg);
    lua_settop(L, 0);
}

/* JSON text -> Lua -> JSON text must give back the same text (the inputs
 * are written with sorted keys and cJSON's number formatting). */
static void expect_round_trip(im_script *s, const char *json) {
    lua_State *L = im_script_state(s);
    cJSON *in = cJSON_Parse(json);
    char err[512];
    int rc;
    char *text;

    ASSERT(in != NULL);
    ASSERT_EQ(im_sjson_push(L, in, 0), 0);
    ASSERT_EQ(lua_gettop(L), 1);
    cJSON_Delete(in);
    text = to_json(L, NULL, 0, &rc, err, sizeof err);
    if (rc != 0)
        im_test_fail(__FILE__, __LINE__, "%s: rc %d: %s", json, rc, err);
    if (strcmp(text, json) != 0)
        im_test_fail(__FILE__, __LINE__, "round trip of %s gave %s", json, text);
    cJSON_free(text);
    lua_settop(L, 0);
}

TEST(sjson_round_trips) {
    im_script *s = new_state();

    expect_round_trip(s, "{\"a\":1,\"b\":[1,2,3],\"c\":{\"d\":\"x\",\"e\":[true,false]},"
                         "\"f\":3.5,\"g\":-7,"
                         "\"h\":\"h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80\"}");
    im_script_free(s);
}

TEST(sjson_round_trip_shapes) {
    im_script *s = new_state();

    expect_round_trip(s, "1");
    expect_round_trip(s, "-2.25");
    expect_round_trip(s, "true");
    expect_round_trip(s, "\"text\"");
    expect_round_trip(s, "null");
    expect_round_trip(s, "[[1,[2,[3]]],{\"k\":[{\"z\":0}]}]");
    expect_round_trip(s, "{\"positions\":[{\"qty\":100,\"symbol\":\"AAPL\"},"
                         "{\"qty\":-5,\"symbol\":\"MSFT\"}]}");
    im_script_free(s);
}

/* What an empty JSON array or object becomes without a hint: both are
 * empty tables, so both come back as {}; with a hint, []. */
TEST(sjson_empty_containers) {
    im_script *s = new_state();
    lua_State *L = im_script_state(s);
    cJSON *in = cJSON_Parse("[]");
    char err[256];
    int rc;
    char *text;

    ASSERT_EQ(im_sjson_push(L, in, 0), 0);
    cJSON_Delete(in);
    ASSERT_EQ(lua_type(L, -1), LUA_TTABLE);
    text = to_json(L, NULL, 0, &rc, err, sizeof err);
    ASSERT_STR_EQ(text, "{}");
    cJSON_free(text);
    text = to_json(L, "{\"type\":\"array\"}", 0, &rc, err, sizeof err);
    ASSERT_STR_EQ(text, "[]");
    cJSON_free(text);
    text = to_json(L, "{\"type\":[\"array\",\"null\"]}", 0, &rc, err, sizeof err);
    ASSERT_STR_EQ(text, "[]");
    cJSON_free(text);
    text = to_json(L, "{\"type\":\"object\"}", 0, &rc, err, sizeof err);
    ASSERT_STR_EQ(text, "{}");
    cJSON_free(text);
    lua_settop(L, 0);

    expect_json(s, "return {}", NULL, "{}");
    expect_json(s, "return {}", "{\"type\":\"array\"}", "[]");
    /* Hints only shape empty tables. */
    expect_json(s, "return {a = 1}", "{\"type\":\"array\"}", "{\"a\":1}");
    expect_json(s, "return {1, 2}", "{\"type\":\"object\"}", "[1,2]");
    im_script_free(s);
}

TEST(sjson_nested_schema_hints) {
    const char *schema =
        "{\"type\":\"object\",\"properties\":{"
        "\"list\":{\"type\":\"array\"},"
        "\"obj\":{\"type\":\"object\"},"
        "\"rows\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
        "\"tags\":{\"type\":\"array\"}}}},"
        "\"tuple\":{\"type\":\"array\",\"items\":[{\"type\":\"object\"},{\"type\":\"array\"}]},"
        "\"map\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"array\"}}"
        "}}";
    im_script *s = new_state();

    expect_json(s,
                "return {list = {}, obj = {}, other = {}, "
                "rows = {{tags = {}}, {tags = {}, n = 1}}, "
                "tuple = {{}, {}}, map = {x = {}, y = {1}}}",
                schema,
                "{\"list\":[],\"map\":{\"x\":[],\"y\":[1]},\"obj\":{},\"other\":{},"
                "\"rows\":[{\"tags\":[]},{\"n\":1,\"tags\":[]}],\"tuple\":[{},[]]}");
    /* A schema that is not an object is ignored. */
    expect_json(s, "return {a = {}}", "[1, 2]", "{\"a\":{}}");
    im_script_free(s);
}

TEST(sjson_array_detection) {
    im_script *s = new_state();

    expect_json(s, "return {1, 2, 3}", NULL, "[1,2,3]");
    expect_json(s, "return {[1] = 'a', [2] = 'b'}", NULL, "[\"a\",\"b\"]");
    expect_json(s, "return {[2] = 'b', [1] = 'a', [3] = 'c'}", NULL, "[\"a\",\"b\",\"c\"]");
    expect_json(s, "return {[1.0] = 'one'}", NULL, "[\"one\"]"); /* 1.0 is normalized to 1 */
    expect_json(s, "return {b = 1, a = 2, c = 3}", NULL, "{\"a\":2,\"b\":1,\"c\":3}");
    /* Sparse and mixed tables are neither: the error names the key. */
    expect_error(s, "return {a = {[1] = 1, [3] = 3}}", IM_EINVAL,
                 "$.a[3] is a key that is neither a string nor part of a 1..n sequence");
    expect_error(s, "return {[2] = 'x'}", IM_EINVAL, "$[2] is a key");
    expect_error(s, "return {1, 2, nil, 4}", IM_EINVAL, "$[4] is a key");
    expect_error(s, "return {list = {1, 2, x = 3}}", IM_EINVAL, "$.list[");
    expect_error(s, "return {[0] = 'zero'}", IM_EINVAL, "$[0] is a key");
    /* A bad key is reported before a bad value, whichever lua_next meets
     * first. */
    expect_error(s, "return {x = print, y = {z = print}, [7] = 1}", IM_EINVAL,
                 "$[7] is a key that is neither");
    expect_error(s, "return {x = 1, y = {z = print, [2] = 2}}", IM_EINVAL,
                 "$.y[2] is a key that is neither");
    /* More members than the stack array holds. */
    expect_json(s, "local t = {} for i = 1, 40 do t[string.format('k%02d', i)] = i end return t",
                NULL,
                "{\"k01\":1,\"k02\":2,\"k03\":3,\"k04\":4,\"k05\":5,\"k06\":6,\"k07\":7,"
                "\"k08\":8,\"k09\":9,\"k10\":10,\"k11\":11,\"k12\":12,\"k13\":13,\"k14\":14,"
                "\"k15\":15,\"k16\":16,\"k17\":17,\"k18\":18,\"k19\":19,\"k20\":20,"
                "\"k21\":21,\"k22\":22,\"k23\":23,\"k24\":24,\"k25\":25,\"k26\":26,"
                "\"k27\":27,\"k28\":28,\"k29\":29,\"k30\":30,\"k31\":31,\"k32\":32,"
                "\"k33\":33,\"k34\":34,\"k35\":35,\"k36\":36,\"k37\":37,\"k38\":38,"
                "\"k39\":39,\"k40\":40}");
    expect_error(s, "return {[-1] = 'neg'}", IM_EINVAL, "$[-1] is a key");
    expect_error(s, "return {[1.5] = 'x'}", IM_EINVAL, "$[1.5] is a key");
    expect_error(s, "return {[true] = 'x'}", IM_EINVAL, "$[true] is a key");
    expect_error(s, "return {[{}] = 'x'}", IM_EINVAL, "$[<table>] is a key");
    im_script_free(s);
}

TEST(sjson_numbers) {
    im_script *s = new_state();
    lua_State *L = im_script_state(s);
    cJSON *in = cJSON_Parse("[3, 3.5, -0, 1e300, 9007199254740993, -12, 2.0]");
    cJSON *out = NULL;
    char err[256];

    /* JSON -> Lua: integral values become integers. */
    ASSERT(in != NULL);
    ASSERT_EQ(im_sjson_push(L, in, 0), 0);
    cJSON_Delete(in);
    ASSERT_EQ(lua_rawlen(L, 1), 7);
    lua_rawgeti(L, 1, 1);
    ASSERT(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 3);
    lua_rawgeti(L, 1, 2);
    ASSERT(!lua_isinteger(L, -1) && lua_tonumber(L, -1) == 3.5);
    lua_rawgeti(L, 1, 3);
    ASSERT(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 0);
    lua_rawgeti(L, 1, 4);
    ASSERT(!lua_isinteger(L, -1) && lua_tonumber(L, -1) == 1e300);
    lua_rawgeti(L, 1, 5);
    ASSERT(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 9007199254740992LL);
    lua_rawgeti(L, 1, 6);
    ASSERT(lua_isinteger(L, -1) && lua_tointeger(L, -1) == -12);
    lua_rawgeti(L, 1, 7);
    ASSERT(lua_isinteger(L, -1) && lua_tointeger(L, -1) == 2);
    lua_settop(L, 0);

    /* Lua -> JSON: 3 stays 3, 3.5 stays 3.5, a float 3.0 prints as 3. */
    expect_json(s, "return {3, 3.5, 3.0, -0.25, 1e300, 1 << 40, -(1 << 40)}", NULL,
                "[3,3.5,3,-0.25,1e+300,1099511627776,-1099511627776]");
    /* 2^53 is the largest integer accepted; the tree holds it exactly
     * (cJSON's printer, which compares doubles approximately, may not). */
    eval(s, "return {1 << 53, -(1 << 53)}");
    ASSERT_EQ(im_sjson_from_lua(L, -1, NULL, 0, &out, err, sizeof err), 0);
    ASSERT(cJSON_GetArrayItem(out, 0)->valuedouble == 9007199254740992.0);
    ASSERT(cJSON_GetArrayItem(out, 1)->valuedouble == -9007199254740992.0);
    cJSON_Delete(out);
    lua_settop(L, 0);
    expect_error(s, "return {n = (1 << 53) + 1}", IM_ERANGE, "$.n is an integer beyond 2^53");
    expect_error(s, "return math.maxinteger", IM_ERANGE, "$ is an integer");
    expect_error(s, "return {x = 0/0}", IM_EINVAL, "$.x is not a finite number");
    expect_error(s, "return math.huge", IM_EINVAL, "$ is not a finite number");
    expect_error(s, "return {1, -math.huge}", IM_EINVAL, "$[2] is not a finite number");
    im_script_free(s);
}

static int host_fn(lua_State *L) {
    IM_UNUSED(L);
    return 0;
}

TEST(sjson_unrepresentable_values) {
    im_script *s = new_state();
    lua_State *L = im_script_state(s);
    char err[256];
    int rc;
    char *text;

    expect_error(s, "return {a = {b = print}}", IM_EINVAL,
                 "$.a.b is a function, which JSON cannot represent");
    expect_error(s, "return {list = {1, 2, function() end}}", IM_EINVAL,
                 "$.list[3] is a function");

    lua_createtable(L, 0, 3);
    lua_newuserdatauv(L, 8, 0);
    lua_setfield(L, -2, "u");
    text = to_json(L, NULL, 0, &rc, err, sizeof err);
    ASSERT_EQ(rc, IM_EINVAL);
    ASSERT_CONTAINS(err, "$.u is a userdata");
    ASSERT(text == NULL);
    lua_settop(L, 0);

    lua_createtable(L, 0, 1);
    lua_pushlightuserdata(L, &rc);
    lua_setfield(L, -2, "p");
    text = to_json(L, NULL, 0, &rc, err, sizeof err);
    ASSERT_EQ(rc, IM_EINVAL);
    ASSERT_CONTAINS(err, "$.p is a userdata");
    lua_settop(L, 0);

    lua_createtable(L, 1, 0);
    lua_newthread(L);
    lua_rawseti(L, -2, 1);
    text = to_json(L, NULL, 0, &rc, err, sizeof err);
    ASSERT_EQ(rc, IM_EINVAL);
    ASSERT_CONTAINS(err, "$[1] is a thread");
    lua_settop(L, 0);

    lua_pushcfunction(L, host_fn);
    text = to_json(L, NULL, 0, &rc, err, sizeof err);
    ASSERT_EQ(rc, IM_EINVAL);
    ASSERT_CONTAINS(err, "$ is a function");
    lua_settop(L, 0);
    im_script_free(s);
}

TEST(sjson_strings) {
    im_script *s = new_state();
    lua_State *L = im_script_state(s);
    cJSON *in;

    expect_json(s, "return 'h\\u{e9}llo \\u{2603} \\u{1F600}'", NULL,
                "\"h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80\"");
    expect_json(s, "return 'quote \" backslash \\\\ newline \\n tab \\t'", NULL,
                "\"quote \\\" backslash \\\\ newline \\n tab \\t\"");
    expect_json(s, "return ''", NULL, "\"\"");
    expect_error(s, "return {s = 'a\\0b'}", IM_EINVAL, "$.s is a string containing a NUL byte");
    expect_error(s, "return {['a\\0b'] = 1}", IM_EINVAL, "is a key containing a NUL byte");
    expect_error(s, "return {s = '\\xff'}", IM_EINVAL, "$.s is a string that is not valid UTF-8");
    expect_error(s, "return '\\xc0\\x80'", IM_EINVAL, "not valid UTF-8");         /* overlong */
    expect_error(s, "return '\\xed\\xa0\\x80'", IM_EINVAL, "not valid UTF-8");     /* surrogate */
    expect_error(s, "return '\\xf4\\x90\\x80\\x80'", IM_EINVAL, "not valid UTF-8"); /* > U+10FFFF */
    expect_error(s, "return 'abc\\xe2\\x98'", IM_EINVAL, "not valid UTF-8");       /* truncated */
    expect_error(s, "return {['\\xff'] = 1}", IM_EINVAL, "is a key that is not valid UTF-8");

    /* JSON escapes arrive in Lua as UTF-8 bytes. */
    in = cJSON_Parse("\"caf\\u00e9 \\ud83d\\ude00\"");
    ASSERT(in != NULL);
    ASSERT_EQ(im_sjson_push(L, in, 0), 0);
    cJSON_Delete(in);
    ASSERT_STR_EQ(lua_tostring(L, -1), "caf\xc3\xa9 \xf0\x9f\x98\x80");
    lua_settop(L, 0);
    im_script_free(s);
}

/* Keys and strings are checked eight bytes at a time up to the first
 * byte that is not plain ASCII: a NUL, a bad byte or a valid character at
 * each offset of a 24-byte text is still told apart. */
TEST(sjson_text_checks_at_every_offset) {
    im_script *s = new_state();
    char src[160], want[160];
    for (int at = 0; at < 24; at++) {
        char head[32], tail[32];
        for (int i = 0; i < at; i++)
            head[i] = (char)('a' + i);
        head[at] = '\0';
        for (int i = at; i < 24; i++)
            tail[i - at] = (char)('a' + i);
        tail[24 - at] = '\0';
        snprintf(src, sizeof src, "return {s = '%s\\0%s'}", head, tail);
        expect_error(s, src, IM_EINVAL, "$.s is a string containing a NUL byte");
        snprintf(src, sizeof src, "return {['%s\\0%s'] = 1}", head, tail);
        expect_error(s, src, IM_EINVAL, "is a key containing a NUL byte");
        snprintf(src, sizeof src, "return {s = '%s\\xff%s'}", head, tail);
        expect_error(s, src, IM_EINVAL, "$.s is a string that is not valid UTF-8");
        snprintf(src, sizeof src, "return {['%s\\xc3%s'] = 1}", head, tail);
        expect_error(s, src, IM_EINVAL, "is a key that is not valid UTF-8");
        snprintf(src, sizeof src, "return {['%s\\u{e9}%s'] = '%s\\u{1F600}%s'}", head, tail,
                 head, tail);
        snprintf(want, sizeof want, "{\"%s\xc3\xa9%s\":\"%s\xf0\x9f\x98\x80%s\"}", head, tail,
                 head, tail);
        expect_json(s, src, NULL, want);
    }
    im_script_free(s);
}

TEST(sjson_null_and_booleans) {
    im_script *s = new_state();
    lua_State *L = im_script_state(s);
    cJSON *in = cJSON_Parse("{\"a\":null,\"b\":1,\"arr\":[1,null,3],\"t\":true,\"f\":false}");

    ASSERT(in != NULL);
    ASSERT_EQ(im_sjson_push(L, in, 0), 0);
    cJSON_Delete(in);
    ASSERT_EQ(lua_getfield(L, 1, "a"), LUA_TNIL);
    ASSERT_EQ(lua_getfield(L, 1, "b"), LUA_TNUMBER);
    ASSERT_EQ(lua_getfield(L, 1, "t"), LUA_TBOOLEAN);
    ASSERT(lua_toboolean(L, -1));
    ASSERT_EQ(lua_getfield(L, 1, "f"), LUA_TBOOLEAN);
    ASSERT(!lua_toboolean(L, -1));
    ASSERT_EQ(lua_getfield(L, 1, "arr"), LUA_TTABLE);
    ASSERT_EQ(lua_rawgeti(L, -1, 1), LUA_TNUMBER);
    ASSERT_EQ(lua_rawgeti(L, -2, 2), LUA_TNIL); /* the documented hole */
    ASSERT_EQ(lua_rawgeti(L, -3, 3), LUA_TNUMBER);
    lua_settop(L, 0);

    in = cJSON_Parse("null");
    ASSERT_EQ(im_sjson_push(L, in, 0), 0);
    cJSON_Delete(in);
    ASSERT_EQ(lua_gettop(L), 1);
    ASSERT(lua_isnil(L, 1));
    lua_settop(L, 0);

    expect_json(s, "return nil", NULL, "null");
    expect_json(s, "return {ok = true, no = false}", NULL, "{\"no\":false,\"ok\":true}");
    im_script_free(s);
}

/* Builds a JSON text of depth nested arrays around 1. */
static cJSON *nested_json(int depth) {
    char *text = malloc((size_t)depth * 2 + 2);
    cJSON *v;
    int i;

    ASSERT(text != NULL);
    for (i = 0; i < depth; i++)
        text[i] = '[';
    text[i++] = '1';
    for (int j = 0; j < depth; j++)
        text[i++] = ']';
    text[i] = '\0';
    v = cJSON_Parse(text);
    free(text);
    ASSERT(v != NULL);
    return v;
}

TEST(sjson_push_depth_limit) {
    im_script *s = new_state();
    lua_State *L = im_script_state(s);
    cJSON *ten = nested_json(10), *deep = nested_json(IM_SJSON_MAX_DEPTH + 1);
    cJSON *at_max = nested_json(IM_SJSON_MAX_DEPTH);
    cJSON *obj = cJSON_Parse("{\"a\":{\"b\":{\"c\":1}}}");

    ASSERT_EQ(im_sjson_push(L, ten, 10), 0);
    ASSERT_EQ(lua_gettop(L), 1);
    lua_settop(L, 0);
    ASSERT_EQ(im_sjson_push(L, ten, 9), IM_ERANGE);
    ASSERT_EQ(lua_gettop(L), 0); /* nothing pushed on failure */
    ASSERT_EQ(im_sjson_push(L, ten, 5), IM_ERANGE);
    ASSERT_EQ(lua_gettop(L), 0);
    ASSERT_EQ(im_sjson_push(L, obj, 3), 0);
    lua_settop(L, 0);
    ASSERT_EQ(im_sjson_push(L, obj, 2), IM_ERANGE);
    ASSERT_EQ(lua_gettop(L), 0);
    /* maxdepth <= 0 means IM_SJSON_MAX_DEPTH. */
    ASSERT_EQ(im_sjson_push(L, at_max, 0), 0);
    lua_settop(L, 0);
    ASSERT_EQ(im_sjson_push(L, deep, 0), IM_ERANGE);
    ASSERT_EQ(lua_gettop(L), 0);
    ASSERT_EQ(im_sjson_push(L, NULL, 0), IM_EINVAL);
    cJSON_Delete(ten);
    cJSON_Delete(deep);
    cJSON_Delete(at_max);
    cJSON_Delete(obj);
    im_script_free(s);
}

TEST(sjson_from_lua_depth_limit) {
    im_script *s = new_state();
    lua_State *L = im_script_state(s);
    char err[256];
    int rc;
    char *text;

    eval(s, "local t = 1 for i = 1, 10 do t = {t} end return t");
    text = to_json(L, NULL, 10, &rc, err, sizeof err);
    ASSERT_EQ(rc, 0);
    ASSERT_STR_EQ(text, "[[[[[[[[[[1]]]]]]]]]]");
    cJSON_free(text);
    text = to_json(L, NULL, 9, &rc, err, sizeof err);
    ASSERT_EQ(rc, IM_ERANGE);
    ASSERT_STR_EQ(err, "$[1][1][1][1][1][1][1][1][1] nests deeper than 9 levels");
    lua_settop(L, 0);

    expect_error(s, "local t = {} t.self = t return t", IM_ERANGE,
                 "$.self.self.self");
    expect_error(s, "local t = {} for i = 1, 100 do t = {k = t} end return t", IM_ERANGE,
                 "nests deeper than 64 levels");
    im_script_free(s);
}

/* Reads are raw: metamethods never run, so a script's __index, __pairs,
 * __len or __tostring can neither hang nor fool the conversion; proxies
 * (read-only library tables) are empty raw tables. */
TEST(sjson_reads_are_raw) {
    im_script *s = new_state();

    expect_json(s,
                "return setmetatable({a = 1}, {__index = function() while true do end end, "
                "__pairs = function() error('pairs') end, __len = function() return 5 end, "
                "__tostring = function() error('tostring') end})",
                NULL, "{\"a\":1}");
    expect_json(s, "return setmetatable({}, {__index = {1, 2, 3}})", NULL, "{}");
    expect_json(s, "return string", NULL, "{}");
    expect_json(s, "return {lib = math}", NULL, "{\"lib\":{}}");
    im_script_free(s);
}

TEST(sjson_contracts) {
    im_script *s = new_state();
    lua_State *L = im_script_state(s);
    cJSON *out = (cJSON *)1, *raw = cJSON_CreateRaw("1");
    char err[64];

    lua_pushinteger(L, 5);
    ASSERT_EQ(im_sjson_from_lua(L, 1, NULL, 0, NULL, err, sizeof err), IM_EINVAL);
    ASSERT_EQ(im_sjson_from_lua(L, 1, NULL, 0, &out, NULL, 0), 0);
    ASSERT(cJSON_IsNumber(out) && out->valuedouble == 5);
    cJSON_Delete(out);
    /* A tiny err buffer truncates the sentence but keeps the code. */
    lua_pushnumber(L, NAN);
    ASSERT_EQ(im_sjson_from_lua(L, -1, NULL, 0, &out, err, 4), IM_EINVAL);
    ASSERT_STR_EQ(err, "$ i");
    ASSERT(out == NULL);
    ASSERT_EQ(lua_gettop(L), 2);
    lua_settop(L, 0);
    /* cJSON_Raw has no Lua form. */
    ASSERT_EQ(im_sjson_push(L, raw, 0), IM_EINVAL);
    ASSERT_EQ(lua_gettop(L), 0);
    cJSON_Delete(raw);
    im_script_free(s);
}

TEST(sjson_long_paths_and_keys) {
    im_script *s = new_state();
    char want[128];

    /* Keys are shown up to 64 bytes. */
    memcpy(want, "$.", 2);
    memset(want + 2, 'k', 64);
    strcpy(want + 66, "... is a function");
    expect_error(s, "return {[('k'):rep(100)] = print}", IM_EINVAL, want);
    /* A path longer than the message keeps its tail and the sentence. */
    expect_error(s, "local t = print for i = 1, 60 do t = {[('k'):rep(20) .. i] = t} end "
                    "return t", IM_EINVAL, "k1 is a function");
    im_script_free(s);
}

TEST(sjson_large_values) {
    im_script *s = new_state();
    lua_State *L = im_script_state(s);
    char err[256];
    int rc;
    char *text;
    cJSON *back;

    eval(s, "local t = {} for i = 1, 5000 do t[i] = {id = i, name = 'n' .. i} end return t");
    text = to_json(L, NULL, 0, &rc, err, sizeof err);
    ASSERT_EQ(rc, 0);
    back = cJSON_Parse(text);
    ASSERT(back != NULL);
    ASSERT_EQ(cJSON_GetArraySize(back), 5000);
    ASSERT_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(back, 4999), "id")->valuedouble, 5000);
    cJSON_Delete(back);
    cJSON_free(text);
    lua_settop(L, 0);
    im_script_free(s);
}

/* ---- im_sjson_write against the full path ------------------------------ */

static uint64_t rng_state = 0x853c49e6748fea9bull;
static unsigned rnd(unsigned n) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (unsigned)(rng_state % n);
}

/* Eleven odd keys, then "k00".."k69": objects wide enough for the sort's
 * qsort branch and for properties past the 64 that required tracks by bit. */
#define NODD 11
#define NKEYS (NODD + 70)
static const char *const odd_keys[NODD] = {"a", "b", "qty", "symbol", "x y", "caf\xc3\xa9", "Z",
                                           "", "a\"b", "long_key_name_here", "n"};
static char wide_keys[70][4];
static const char *gen_keys[NKEYS];

static void gen_keys_init(void) {
    for (size_t i = 0; i < NODD; i++)
        gen_keys[i] = odd_keys[i];
    for (size_t i = 0; i < 70; i++) {
        snprintf(wide_keys[i], sizeof wide_keys[i], "k%02zu", i);
        gen_keys[NODD + i] = wide_keys[i];
    }
}

/* A key: mostly the odd ones, the wide ones for wide objects. */
static const char *gen_key(int wide) { return gen_keys[wide ? rnd(NKEYS) : rnd(NODD)]; }

/* __index and __pairs that must never run: the conversions read raw. */
static int gen_trap(lua_State *L) { return luaL_error(L, "a metamethod ran"); }

static int gen_cfunc(lua_State *L) { return lua_gettop(L); }

/* Pushes a random value: mostly what results hold, sometimes what JSON
 * cannot (functions, huge integers, NaN, NULs, bad UTF-8, mixed keys). */
static void gen_value(lua_State *L, int depth) {
    static const char *const strs[] = {"NVDA", "", "quote \" and \\", "ctl \n\t\x01", "caf\xc3\xa9",
                                       "\xf0\x9f\x98\x80 emoji", "a much longer string of text",
                                       "bad \xff byte", "nul \0 inside", "2026-11-25T14:00:00Z"};
    unsigned k = depth > 6 ? rnd(7) : rnd(11);
    luaL_checkstack(L, 4, "gen");
    switch (k) {
    case 0: lua_pushboolean(L, (int)rnd(2)); break;
    case 1: {
        static const lua_Integer ints[] = {0, 1, -7, 500, 9007199254740992LL, 9007199254740993LL,
                                           -9007199254740993LL, 123456789};
        lua_pushinteger(L, ints[rnd(8)]);
        break;
    }
    case 2: {
        static const double ds[] = {0.5, 167.95, -0.0, 3.0, 1e300, 1e-7, 0.1 + 0.2, -2.25};
        unsigned i = rnd(10);
        lua_pushnumber(L, i < 8 ? ds[i] : i == 8 ? NAN : INFINITY);
        break;
    }
    case 3:
    case 4: {
        unsigned i = rnd(10);
        const char *sv = strs[i];
        if (rnd(50) == 0) {   /* past im_jw_str's one-pass limit */
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (int r = 0; r < 300; r++)
                luaL_addlstring(&b, "ab\"\\\n\xc3\xa9", 7);
            luaL_pushresult(&b);
        } else {
            lua_pushlstring(L, sv, i == 8 ? 13 : strlen(sv));
        }
        break;
    }
    case 5: lua_pushinteger(L, (lua_Integer)rnd(1000) - 500); break;
    case 6:
        if (rnd(40) == 0)
            lua_pushcfunction(L, gen_cfunc);
        else
            lua_pushnumber(L, (double)rnd(100000) / 100.0);
        break;
    case 7:
    case 8: {   /* an object, now and then a wide one */
        int wide = rnd(8) == 0;
        unsigned n = wide ? rnd(75) : rnd(6);
        lua_createtable(L, 0, (int)n);
        for (unsigned i = 0; i < n; i++) {
            const char *key = gen_key(wide);
            if (rnd(30) == 0)
                lua_pushinteger(L, 1 + rnd(3));   /* a key of another kind */
            else if (rnd(60) == 0)
                lua_pushlstring(L, "k\0z", 3);
            else
                lua_pushstring(L, key);
            gen_value(L, depth + 1);
            lua_rawset(L, -3);
        }
        break;
    }
    case 9: {   /* an array, sometimes with a hole */
        unsigned n = rnd(5);
        lua_createtable(L, (int)n, 0);
        for (unsigned i = 1; i <= n; i++) {
            if (rnd(25) == 0)
                continue;
            gen_value(L, depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i);
        }
        break;
    }
    default:
        lua_createtable(L, 0, 0);
        break;
    }
    if (lua_type(L, -1) == LUA_TTABLE && rnd(20) == 0) {
        lua_createtable(L, 0, 2);
        lua_pushcfunction(L, gen_trap);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, gen_trap);
        lua_setfield(L, -2, "__pairs");
        lua_setmetatable(L, -2);
    }
}

/* A schema for the value at idx: mostly one it fits (with nullable types,
 * required members and closed objects), sometimes one it breaks, now and
 * then one with keywords the direct writer leaves to the full path. */
static cJSON *gen_schema(lua_State *L, int idx, int depth) {
    cJSON *s = cJSON_CreateObject();
    int t = lua_type(L, idx);
    const char *type = NULL;
    idx = lua_absindex(L, idx);
    if (rnd(12) == 0 || depth > 6)
        return s;   /* {}: anything */
    switch (t) {
    case LUA_TBOOLEAN: type = "boolean"; break;
    case LUA_TNUMBER: type = rnd(3) == 0 ? "integer" : "number"; break;
    case LUA_TSTRING: type = "string"; break;
    case LUA_TTABLE: {
        lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
        int arr = n > 0 || rnd(2) == 0;
        type = arr ? "array" : "object";
        if (arr) {
            if (n > 0 && rnd(6) == 0) {   /* the tuple form: a hint, not checked */
                cJSON *tuple = cJSON_AddArrayToObject(s, "items");
                for (lua_Integer i = 1; i <= n && i <= 3; i++) {
                    lua_rawgeti(L, idx, i);
                    cJSON_AddItemToArray(tuple, gen_schema(L, -1, depth + 1));
                    lua_pop(L, 1);
                }
            } else if (n > 0 && rnd(4) != 0) {
                lua_rawgeti(L, idx, 1);
                cJSON_AddItemToObject(s, "items", gen_schema(L, -1, depth + 1));
                lua_pop(L, 1);
            }
        } else {
            cJSON *props = cJSON_AddObjectToObject(s, "properties");
            cJSON *req = cJSON_CreateArray();
            for (size_t k = 0; k < NKEYS; k++) {
                lua_pushstring(L, gen_keys[k]);
                lua_rawget(L, idx);
                if (!lua_isnil(L, -1) && rnd(6) == 0) {
                    ;   /* present but not a property: extra, or refused when closed */
                } else if (!lua_isnil(L, -1)) {
                    cJSON_AddItemToObject(props, gen_keys[k], gen_schema(L, -1, depth + 1));
                    if (rnd(2))
                        cJSON_AddItemToArray(req, cJSON_CreateString(gen_keys[k]));
                } else if (k < NODD && rnd(8) == 0) {   /* absent: maybe required, maybe nullable */
                    cJSON *p = cJSON_AddObjectToObject(props, gen_keys[k]);
                    cJSON *tl = cJSON_AddArrayToObject(p, "type");
                    cJSON_AddItemToArray(tl, cJSON_CreateString("string"));
                    if (rnd(2))
                        cJSON_AddItemToArray(tl, cJSON_CreateString("null"));
                    if (rnd(2))
                        cJSON_AddItemToArray(req, cJSON_CreateString(gen_keys[k]));
                }
                lua_pop(L, 1);
            }
            if (rnd(12) == 0)   /* required, though no property names it */
                cJSON_AddItemToArray(req, cJSON_CreateString(gen_key(0)));
            cJSON_AddItemToObject(s, "required", req);
            if (rnd(4) == 0)
                cJSON_AddBoolToObject(s, "additionalProperties", 0);
            else if (rnd(6) == 0)
                cJSON_AddItemToObject(s, "additionalProperties",
                                      cJSON_Parse("{\"type\":\"array\"}"));
        }
        break;
    }
    default: break;
    }
    if (type != NULL) {
        if (rnd(15) == 0)
            type = t == LUA_TSTRING ? "number" : "string";   /* a misfit */
        if (rnd(5) == 0) {
            cJSON *tl = cJSON_AddArrayToObject(s, "type");
            cJSON_AddItemToArray(tl, cJSON_CreateString(type));
            cJSON_AddItemToArray(tl, cJSON_CreateString("null"));
        } else {
            cJSON_AddStringToObject(s, "type", type);
        }
    }
    switch (rnd(30)) {
    case 0: cJSON_AddNumberToObject(s, "minimum", 0); break;
    case 1: cJSON_AddItemToObject(s, "enum", cJSON_Parse("[\"NVDA\",1,true]")); break;
    case 2: cJSON_AddNumberToObject(s, "maxLength", 3); break;
    case 3: cJSON_AddNumberToObject(s, "maxItems", 1); break;
    default: break;
    }
    return s;
}

/* Whenever im_sjson_write takes a value, the full path (from_lua, fill
 * nulls, run, print) must take it too and print the same bytes; and the
 * writer must take most of what the full path takes with a simple schema,
 * or it would not be tested. */
/* Writes the value at index 1 of L both ways against the compiled schema
 * c: im_sjson_write, and the full path (from_lua, fill nulls, run, print).
 * Whenever the writer writes, the full path must take the value too and
 * print the same bytes; both leave the stack as it was. Returns the
 * writer's code; *full_rc gets the full path's. what names the case. */
static int both_ways(lua_State *L, const im_schema *c, int maxdepth, int *full_rc,
                     const char *what) {
    char err[512];
    cJSON *tree = NULL;
    im_jw w, fw;
    int rc, frc, top = lua_gettop(L);

    im_jw_init(&w);
    im_jw_init(&fw);
    rc = im_sjson_write(&w, L, 1, c, maxdepth);
    ASSERT_EQ(lua_gettop(L), top);
    ASSERT(rc == 0 || rc == IM_EAGAIN);
    frc = im_sjson_from_lua_borrow(L, 1, c, maxdepth, &tree, err, sizeof err);
    if (frc == 0) {
        im_schema_fill_nulls(c, tree);
        frc = im_schema_run(c, tree, err, sizeof err);
        if (frc == 0)
            ASSERT_EQ(im_jw_cjson(&fw, tree), 0);
    }
    ASSERT_EQ(lua_gettop(L), top);
    if (rc == 0 && (frc != 0 || strcmp(w.buf, fw.buf) != 0))
        im_test_fail(__FILE__, __LINE__, "%s: written \"%s\", full path \"%s\" (%s)", what,
                     w.buf, frc == 0 ? fw.buf : "-", frc == 0 ? "ok" : err);
    cJSON_Delete(tree);
    im_jw_free(&w);
    im_jw_free(&fw);
    *full_rc = frc;
    return rc;
}

TEST(sjson_write_matches_the_full_path) {
    im_script *sc = new_state();
    lua_State *L = im_script_state(sc);
    int direct_ok = 0, full_ok = 0, full_ok_simple = 0, direct_gave_up = 0;

    gen_keys_init();
    for (int round = 0; round < 20000; round++) {
        char serr[128], what[32];
        cJSON *schema;
        im_schema *c = NULL;
        int rc, frc;
        /* Usually the default depth limit (64); sometimes one that bites. */
        int maxdepth = rnd(10) == 0 ? 2 + (int)rnd(4) : 0;

        lua_settop(L, 0);
        if (rnd(3) == 0) {   /* result-shaped: an object at the top */
            lua_createtable(L, 0, 4);
            for (int i = 0; i < 4; i++) {
                lua_pushstring(L, gen_key(0));
                gen_value(L, 1);
                lua_rawset(L, -3);
            }
        } else {
            gen_value(L, 0);
        }
        schema = gen_schema(L, 1, 0);
        ASSERT(schema != NULL);
        ASSERT_EQ(im_schema_compile(schema, &c, serr, sizeof serr), 0);
        snprintf(what, sizeof what, "round %d", round);
        rc = both_ways(L, c, maxdepth, &frc, what);
        if (rc == 0)
            direct_ok++;
        else
            direct_gave_up++;
        if (frc == 0) {
            full_ok++;
            full_ok_simple += im_schema_simple(c);
        }
        im_schema_free(c);
        cJSON_Delete(schema);
    }
    /* Enough of each kind to mean something; the writer gives up only on
     * a null to fill among the simple schemas the full path takes. */
    ASSERT(full_ok > 3000);
    ASSERT(direct_gave_up > 3000);
    ASSERT(direct_ok * 10 >= full_ok_simple * 8);
    lua_settop(L, 0);
    im_script_free(sc);
}

/* both_ways on the value of Lua src against schema_text. */
static int write_both(im_script *sc, const char *src, const char *schema_text) {
    lua_State *L = im_script_state(sc);
    char serr[128];
    cJSON *schema = cJSON_Parse(schema_text);
    im_schema *c = NULL;
    int rc, frc;

    ASSERT(schema != NULL);
    ASSERT_EQ(im_schema_compile(schema, &c, serr, sizeof serr), 0);
    lua_settop(L, 0);
    eval(sc, src);
    rc = both_ways(L, c, 0, &frc, src);
    im_schema_free(c);
    cJSON_Delete(schema);
    lua_settop(L, 0);
    return rc;
}

/* The cases the random test reaches rarely or not at all, and the shapes
 * the shipped tools return. */
TEST(sjson_write_edges) {
    im_script *sc = new_state();
    char sch[8192];
    size_t o = 0;

    /* A quote as get_quote returns it: written directly. */
    ASSERT_EQ(write_both(sc, "return {symbol = 'NVDA', bid = 167.93, ask = 167.97, last = 167.95, "
                             "mid = 167.95, bid_size = 500, ask_size = 500, "
                             "time = '2025-06-10T14:00:00.000Z', delayed = false}",
                         "{\"type\":\"object\",\"required\":[\"symbol\",\"bid\",\"ask\",\"last\","
                         "\"mid\",\"time\"],\"properties\":{\"symbol\":{\"type\":\"string\"},"
                         "\"bid\":{\"type\":\"number\"},\"ask\":{\"type\":\"number\"},"
                         "\"last\":{\"type\":\"number\"},\"mid\":{\"type\":\"number\"},"
                         "\"bid_size\":{\"type\":\"number\"},\"ask_size\":{\"type\":\"number\"},"
                         "\"time\":{\"type\":\"string\"},\"delayed\":{\"type\":\"boolean\"}}}"),
              0);
    /* Required members whose type admits null are filled as the full path
     * fills them: after the others, in required order, in objects reached
     * through properties down to IM_SCHEMA_FILL_DEPTH; {} included. */
    static const char nullable[] =
        "{\"type\":\"object\",\"required\":[\"z\",\"accepted\",\"token\",\"z\"],"
        "\"properties\":{\"accepted\":{\"type\":\"boolean\"},\"token\":{\"type\":[\"string\","
        "\"null\"]},\"z\":{\"type\":[\"null\",\"object\"],\"required\":[\"q\"],"
        "\"properties\":{\"q\":{\"type\":[\"integer\",\"null\"]}}}}}";
    ASSERT_EQ(write_both(sc, "return {accepted = false}", nullable), 0);
    ASSERT_EQ(write_both(sc, "return {accepted = true, token = 'abc', z = {}}", nullable), 0);
    ASSERT_EQ(write_both(sc, "return setmetatable({}, nil)",
                         "{\"type\":\"object\",\"required\":[\"t\"],\"properties\":"
                         "{\"t\":{\"type\":[\"string\",\"null\"]}}}"),
              0);
    /* A null the full path does not fill (an object in an array, a type
     * that is not a list naming null, past the depth): left to it. */
    ASSERT_EQ(write_both(sc, "return {{}}",
                         "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":"
                         "[\"t\"],\"properties\":{\"t\":{\"type\":[\"string\",\"null\"]}}}}"),
              IM_EAGAIN);
    ASSERT_EQ(write_both(sc, "return {accepted = false}",
                         "{\"type\":\"object\",\"required\":[\"token\"],\"properties\":"
                         "{\"token\":{\"type\":\"null\"}}}"),
              IM_EAGAIN);
    {
        /* Nine objects down through properties, then a tenth: filled at
         * the ninth level (depth 8) and not below. */
        char deep[4096], val[256];
        for (int levels = 8; levels <= 10; levels++) {
            size_t d = 0, v = 0;
            for (int i = 0; i < levels; i++) {
                d += (size_t)snprintf(deep + d, sizeof deep - d,
                                      "{\"type\":\"object\",\"properties\":{\"o\":");
                v += (size_t)snprintf(val + v, sizeof val - v, "{o = ");
            }
            d += (size_t)snprintf(deep + d, sizeof deep - d,
                                  "{\"type\":\"object\",\"required\":[\"t\"],\"properties\":"
                                  "{\"t\":{\"type\":[\"string\",\"null\"]}}}");
            for (int i = 0; i < levels; i++)
                d += (size_t)snprintf(deep + d, sizeof deep - d, "}}");
            v += (size_t)snprintf(val + v, sizeof val - v, "{x = 1}");
            for (int i = 0; i < levels; i++)
                v += (size_t)snprintf(val + v, sizeof val - v, "}");
            char src[300];
            snprintf(src, sizeof src, "return %s", val);
            ASSERT_EQ(write_both(sc, src, deep), levels <= 8 ? 0 : IM_EAGAIN);
        }
    }
    /* Eighty properties: required ones past the 64 tracked by bit. */
    o += (size_t)snprintf(sch + o, sizeof sch - o, "{\"type\":\"object\",\"properties\":{");
    for (int i = 1; i <= 80; i++)
        o += (size_t)snprintf(sch + o, sizeof sch - o, "%s\"k%03d\":{\"type\":\"integer\"}",
                              i > 1 ? "," : "", i);
    snprintf(sch + o, sizeof sch - o, "},\"required\":[\"k001\",\"k070\"]}");
    ASSERT_EQ(write_both(sc, "local t = {} for i = 1, 80 do "
                             "if i ~= 70 then t[string.format('k%03d', i)] = i end end return t", sch),
              IM_EAGAIN);
    write_both(sc, "local t = {} for i = 1, 80 do t[string.format('k%03d', i)] = i end return t",
               sch);
    snprintf(sch + o, sizeof sch - o, "},\"required\":[\"k001\",\"k010\"]}");
    ASSERT_EQ(write_both(sc, "local t = {} for i = 1, 80 do t[string.format('k%03d', i)] = i end "
                             "return t", sch),
              0);
    /* A closed object with a member it does not name; one that names it. */
    ASSERT_EQ(write_both(sc, "return {a = 1, b = 2}",
                         "{\"type\":\"object\",\"additionalProperties\":false,"
                         "\"properties\":{\"a\":{}}}"),
              IM_EAGAIN);
    ASSERT_EQ(write_both(sc, "return {a = 1, b = {}}",
                         "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"array\"},"
                         "\"properties\":{\"a\":{}}}"),
              0);
    /* const and enum: told for strings, left to the full path otherwise. */
    static const char states[] = "{\"type\":\"object\",\"properties\":{\"s\":{\"enum\":"
                                 "[\"on\",\"off\",2]},\"c\":{\"const\":\"x\"}}}";
    ASSERT_EQ(write_both(sc, "return {s = 'on', c = 'x'}", states), 0);
    ASSERT_EQ(write_both(sc, "return {s = 'onn'}", states), IM_EAGAIN);
    ASSERT_EQ(write_both(sc, "return {s = 'o'}", states), IM_EAGAIN);
    ASSERT_EQ(write_both(sc, "return {c = 'y'}", states), IM_EAGAIN);
    ASSERT_EQ(write_both(sc, "return {s = 2}", states), IM_EAGAIN);
    /* Keywords it does not check, deep down: left to the full path. */
    ASSERT_EQ(write_both(sc, "return {a = {b = {c = 5}}}",
                         "{\"properties\":{\"a\":{\"properties\":{\"b\":{\"properties\":"
                         "{\"c\":{\"maximum\":4}}}}}}}"),
              IM_EAGAIN);
    im_script_free(sc);
}

/* Members come out in strcmp order of their keys, both ways: keys that
 * share their first eight bytes or differ only past them, non-ASCII bytes,
 * keys that need escaping (no prepared prefix) and objects past the
 * insertion sort's 16. The output is read back and its keys checked. */
TEST(sjson_members_sorted_by_key) {
    static const char *const keys[] = {
        "", "a", "Z", "~", "abcdefg", "abcdefgh", "abcdefgha", "abcdefghb", "abcdefgh~",
        "abcdefghij", "abcdefgi", "abcdefgh\xc3\xa9", "\xc3\xa9", "abcdefg\x7f", "a\"b",
        "q\\", "abcdefghabcdefgh", "abcdefghabcdefgg", "k01", "k02", "k03", "k04", "k05", "k06"};
    im_script *sc = new_state();
    lua_State *L = im_script_state(sc);
    cJSON *schema = cJSON_CreateObject(), *props = cJSON_AddObjectToObject(schema, "properties");
    im_schema *c = NULL;
    char serr[128];
    size_t nk = IM_ARRAY_SIZE(keys);

    for (size_t k = 0; k < nk; k++)
        cJSON_AddItemToObject(props, keys[k], cJSON_CreateObject());
    ASSERT_EQ(im_schema_compile(schema, &c, serr, sizeof serr), 0);
    for (int round = 0; round < 400; round++) {
        int frc, pick = 0;
        unsigned want = 1 + rnd((unsigned)nk);
        const cJSON *e, *prev = NULL;
        im_jw w;
        cJSON *back;

        lua_settop(L, 0);
        lua_newtable(L);
        for (size_t k = 0; k < nk; k++) {
            size_t at = rnd((unsigned)nk);   /* from a random place */
            if (rnd((unsigned)nk) >= want)
                continue;
            lua_pushinteger(L, (lua_Integer)at);
            lua_setfield(L, 1, keys[at]);
        }
        ASSERT_EQ(both_ways(L, c, 0, &frc, "sorted keys"), 0);
        ASSERT_EQ(frc, 0);
        im_jw_init(&w);
        ASSERT_EQ(im_sjson_write(&w, L, 1, c, 0), 0);
        back = cJSON_Parse(w.buf);
        ASSERT(cJSON_IsObject(back));
        cJSON_ArrayForEach(e, back) {
            if (prev != NULL && strcmp(prev->string, e->string) >= 0)
                im_test_fail(__FILE__, __LINE__, "\"%s\" came before \"%s\" in %s", prev->string,
                             e->string, w.buf);
            prev = e;
            pick++;
        }
        lua_pushnil(L);
        while (lua_next(L, 1)) {
            lua_pop(L, 1);
            pick--;
        }
        ASSERT_EQ(pick, 0);
        cJSON_Delete(back);
        im_jw_free(&w);
    }
    im_schema_free(c);
    cJSON_Delete(schema);
    im_script_free(sc);
}
