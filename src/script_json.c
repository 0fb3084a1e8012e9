/* script_json.c: cJSON <-> Lua value conversion declared in script_json.h.
 *
 * Provides im_sjson_push (JSON -> Lua: objects become tables, arrays become
 * sequences, null becomes nil, integral numbers within int64 become Lua
 * integers) and im_sjson_from_lua (Lua -> JSON: raw reads only, arrays are
 * tables keyed exactly 1..n, objects have only string keys, an empty table
 * follows the schema hint, errors name the path of the offending value).
 * Uses Lua 5.4 and cJSON; error.h for return codes.
 *
 * im_sjson_from_lua never raises a Lua error and never runs Lua code: it
 * reads with lua_next, lua_rawgeti and lua_to* on strings and numbers only
 * (no conversions, no metamethods, no Lua allocation apart from
 * lua_checkstack, which reports failure instead of raising). It may
 * therefore be called from C code outside any protected call, and a
 * script's __index, __pairs or __tostring cannot hang or fool it. */
#include "script_json.h"

#include <assert.h>
#include <lauxlib.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "error.h"
#include "jsonw.h"
#include "text.h"

/* Both converters recurse once per nesting level on the C stack. cJSON's
 * own parser stops at CJSON_NESTING_LIMIT (1000), so a larger maxdepth is
 * clamped to that; maxdepth <= 0 means IM_SJSON_MAX_DEPTH. */
#define SJSON_HARD_DEPTH 1000

/* JSON numbers are doubles here (cJSON), which hold every integer up to
 * 2^53 exactly. Larger Lua integers would be rounded silently, so they are
 * refused instead. */
#define SJSON_INT_EXACT ((lua_Integer)1 << 53)

/* Key text kept per path segment in error messages. */
#define SJSON_PATH_KEY_MAX 64

static int effective_depth(int maxdepth) {
    if (maxdepth <= 0)
        return IM_SJSON_MAX_DEPTH;
    return maxdepth > SJSON_HARD_DEPTH ? SJSON_HARD_DEPTH : maxdepth;
}

/* ---------------------------------------------------------------------
 * JSON -> Lua
 * ------------------------------------------------------------------- */

/* Integral doubles within [-2^63, 2^63) become Lua integers, so that 3
 * stays 3 rather than 3.0; everything else stays a float. */
static void push_number(lua_State *L, double d) {
    if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
        lua_pushinteger(L, (lua_Integer)d);
    else
        lua_pushnumber(L, d);
}

/* depth is the nesting level of v if it is a container (the root is 1). */
static int push_value(lua_State *L, const cJSON *v, int depth, int maxdepth) {
    int top = lua_gettop(L);
    const cJSON *child;
    int rc;

    if (cJSON_IsNull(v)) {
        lua_pushnil(L);
    } else if (cJSON_IsFalse(v)) {
        lua_pushboolean(L, 0);
    } else if (cJSON_IsTrue(v)) {
        lua_pushboolean(L, 1);
    } else if (cJSON_IsNumber(v)) {
        push_number(L, v->valuedouble);
    } else if (cJSON_IsString(v)) {
        lua_pushstring(L, v->valuestring != NULL ? v->valuestring : "");
    } else if (cJSON_IsArray(v)) {
        lua_Integer i = 1;
        if (depth > maxdepth)
            return IM_ERANGE;
        luaL_checkstack(L, 3, "JSON nesting");
        lua_createtable(L, cJSON_GetArraySize(v), 0);      /* [arr] */
        for (child = v->child; child != NULL; child = child->next, i++) {
            rc = push_value(L, child, depth + 1, maxdepth); /* [arr, value] */
            if (rc != 0) {
                lua_settop(L, top);
                return rc;
            }
            lua_rawseti(L, -2, i); /* a null leaves a hole */
        }
    } else if (cJSON_IsObject(v)) {
        if (depth > maxdepth)
            return IM_ERANGE;
        luaL_checkstack(L, 4, "JSON nesting");
        lua_createtable(L, 0, cJSON_GetArraySize(v));      /* [obj] */
        for (child = v->child; child != NULL; child = child->next) {
            if (child->string == NULL)
                continue;
            lua_pushstring(L, child->string);               /* [obj, key] */
            rc = push_value(L, child, depth + 1, maxdepth); /* [obj, key, value] */
            if (rc != 0) {
                lua_settop(L, top);
                return rc;
            }
            lua_rawset(L, -3); /* [obj]; a null value sets nothing */
        }
    } else {
        return IM_EINVAL; /* cJSON_Raw or an invalid node */
    }
    assert(lua_gettop(L) == top + 1);
    return 0;
}

int im_sjson_push(lua_State *L, const cJSON *v, int maxdepth) {
    if (v == NULL)
        return IM_EINVAL;
    return push_value(L, v, 1, effective_depth(maxdepth));
}

/* ---------------------------------------------------------------------
 * Lua -> JSON
 * ------------------------------------------------------------------- */

struct conv {
    lua_State *L;
    int maxdepth;
    int borrow;     /* keys and strings point into the Lua strings */
    char *err;
    size_t errlen;
    /* "$.positions[2].qty"; indices are Lua (1-based) indices. 64 levels
     * of 64-byte keys fit; deeper paths keep their head. */
    char path[4608];
    size_t plen;
};

/* Appends to the path and returns the previous length, for path_restore.
 * A path that outgrows the buffer is cut short; messages stay readable. */
static size_t path_append(struct conv *c, const char *fmt, ...) IM_PRINTF(2, 3);
static size_t path_append(struct conv *c, const char *fmt, ...) {
    size_t saved = c->plen;
    size_t room = sizeof c->path - c->plen;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(c->path + c->plen, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        c->plen += (size_t)n < room ? (size_t)n : room - 1;
    return saved;
}

static void path_restore(struct conv *c, size_t saved) {
    c->plen = saved;
    c->path[saved] = '\0';
}

/* Appends the key at index idx (any type) without converting it. */
static size_t path_key(struct conv *c, int idx) {
    lua_State *L = c->L;

    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        /* Every member passes here: copied, not printed. */
        size_t len, saved = c->plen, shown, room = sizeof c->path - 1 - c->plen;
        const char *k = lua_tolstring(L, idx, &len);
        shown = len > SJSON_PATH_KEY_MAX ? SJSON_PATH_KEY_MAX : len;
        if (room < shown + 4) /* ".", the key, "..." */
            return path_append(c, ".%.*s%s", (int)shown, k, len > shown ? "..." : "");
        c->path[c->plen++] = '.';
        memcpy(c->path + c->plen, k, shown);
        c->plen += shown;
        if (len > shown) {
            memcpy(c->path + c->plen, "...", 3);
            c->plen += 3;
        }
        c->path[c->plen] = '\0';
        return saved;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return path_append(c, "[%lld]", (long long)lua_tointeger(L, idx));
        return path_append(c, "[%g]", (double)lua_tonumber(L, idx));
    case LUA_TBOOLEAN:
        return path_append(c, "[%s]", lua_toboolean(L, idx) ? "true" : "false");
    default:
        return path_append(c, "[<%s>]", lua_typename(L, lua_type(L, idx)));
    }
}

/* Writes "<path> <sentence>" into err and returns code. When both do not
 * fit, the path loses its head ("...[3].qty is ..."): the sentence and the
 * innermost keys say the most. */
static int fail(struct conv *c, int code, const char *fmt, ...) IM_PRINTF(3, 4);
static int fail(struct conv *c, int code, const char *fmt, ...) {
    char sentence[256];
    size_t slen, room;
    va_list ap;

    if (c->err == NULL || c->errlen == 0)
        return code;
    va_start(ap, fmt);
    vsnprintf(sentence, sizeof sentence, fmt, ap);
    va_end(ap);
    slen = strlen(sentence);
    room = c->errlen > slen + 2 ? c->errlen - slen - 2 : 0; /* bytes left for the path */
    if (c->plen <= room || room <= 3)
        snprintf(c->err, c->errlen, "%s %s", c->path, sentence);
    else
        snprintf(c->err, c->errlen, "...%s %s", c->path + c->plen - (room - 3), sentence);
    return code;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
 * JSON text must be Unicode; invalid bytes would make the whole reply
 * unparseable for the client. */
static int utf8_valid(const unsigned char *s, size_t len) {
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i], cp, min;
        size_t n;

        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (len - i - 1 < n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            unsigned cc = s[i + k];
            if ((cc & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* What is wrong with a key or string as JSON text: 0 nothing, 1 a NUL
 * (cJSON strings are NUL-terminated, so it would truncate), 2 bytes that
 * are not UTF-8. */
static int text_problem(const char *s, size_t len) {
#if IM_TEXT_SWAR
    /* Keys and most values are short ASCII: passed eight bytes at a time,
     * the rest byte by byte; anything else takes the full checks below. */
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (len - i >= 8) {
        uint64_t x = im_text_load8(p + i);
        if ((im_text_lt8(x, 1) | im_text_high8(x)) != 0)
            break;
        i += 8;
    }
    while (i < len && p[i] != 0 && p[i] < 0x80)
        i++;
    if (i == len)
        return 0;
#endif
    if (memchr(s, '\0', len) != NULL)
        return 1;
    return utf8_valid((const unsigned char *)s, len) ? 0 : 2;
}

static int check_text(struct conv *c, const char *s, size_t len, const char *what) {
    switch (text_problem(s, len)) {
    case 0: return 0;
    case 1: return fail(c, IM_EINVAL, "is a %s containing a NUL byte", what);
    default: return fail(c, IM_EINVAL, "is a %s that is not valid UTF-8", what);
    }
}

static int conv_value(struct conv *c, int idx, const im_schema *schema, int depth, cJSON **out);

/* An object member on its way out: conv_object keeps the converted item,
 * w_object the value's stack slot. */
struct member {
    const char *key; /* points into the Lua key, kept alive by the table */
    size_t klen;
    uint64_t head;   /* member_head of the key */
    cJSON *item;
    int idx;
};

/* The key's first eight bytes as a big-endian number, zero-padded: for
 * keys without NUL bytes (the only ones sorted) numbers that differ order
 * as strcmp orders the keys, so most comparisons need no strcmp. */
static uint64_t member_head(const char *k, size_t klen) {
    uint64_t h = 0;
    size_t n = klen < 8 ? klen : 8;
    for (size_t i = 0; i < n; i++)
        h |= (uint64_t)(unsigned char)k[i] << (56 - 8 * i);
    return h;
}

static int member_order(const struct member *a, const struct member *b) {
    if (a->head != b->head)
        return a->head < b->head ? -1 : 1;
    return a->klen <= 8 && b->klen <= 8 ? 0 : strcmp(a->key, b->key);
}

static int member_cmp(const void *a, const void *b) { return member_order(a, b); }

/* Deletes the items and frees m unless it is the caller's stack array. */
static void members_free(struct member *m, size_t n, struct member *small) {
    for (size_t i = 0; i < n; i++)
        cJSON_Delete(m[i].item);
    if (m != small)
        free(m);
}

static int conv_bad_key(struct conv *c, int idx, lua_Integer nstr, lua_Integer count);

/* Counts the keys of the table at idx (absolute) by kind. */
static void classify(lua_State *L, int idx, lua_Integer *count, lua_Integer *nstr,
                     lua_Integer *nint, lua_Integer *maxint) {
    *count = *nstr = *nint = *maxint = 0;
    lua_pushnil(L);                                   /* [key] */
    while (lua_next(L, idx)) {                        /* [key, value] */
        lua_pop(L, 1);                                /* [key] */
        (*count)++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            (*nstr)++;
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            (*nint)++;
            if (lua_tointeger(L, -1) > *maxint)
                *maxint = lua_tointeger(L, -1);
        }
    }
}

/* Room for member n: m starts as the caller's small array (of *cap) and
 * moves to the heap, doubling, when that is full. 0 or IM_ENOMEM. */
static int members_grow(struct member **m, size_t n, size_t *cap, const struct member *small) {
    struct member *nm;
    if (n < *cap)
        return 0;
    nm = malloc(2 * *cap * sizeof *nm);
    if (nm == NULL)
        return IM_ENOMEM;
    memcpy(nm, *m, n * sizeof *nm);
    if (*m != small)
        free(*m);
    *m = nm;
    *cap *= 2;
    return 0;
}

/* Sorts members by key: insertion sort for the usual handful, qsort
 * beyond. */
static void members_sort(struct member *m, size_t n) {
    if (n > 16) {
        qsort(m, n, sizeof *m, member_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        struct member x = m[i];
        size_t j = i;
        for (; j > 0 && member_order(&m[j - 1], &x) > 0; j--)
            m[j] = m[j - 1];
        m[j] = x;
    }
}

/* The table at idx (absolute), whose first key is a string, becomes an
 * object in one walk: each value is converted as its key comes. When a key
 * of another kind turns up, or a value fails, the keys are counted: a key
 * of another kind is reported first (as when keys were classified before
 * any value was read). Members are sorted by key, because lua_next order
 * depends on the state's random hash seed and output should be
 * reproducible. */
static int conv_object(struct conv *c, int idx, const im_schema *schema, int depth,
                       cJSON **out) {
    lua_State *L = c->L;
    int top = lua_gettop(L);
    struct member small[16], *m = small;
    size_t n = 0, cap = IM_ARRAY_SIZE(small);
    cJSON *obj;
    int rc = 0;

    lua_pushnil(L);                                   /* [key] */
    while (lua_next(L, idx)) {                        /* [key, value] */
        size_t klen, saved;
        const char *k;

        if (lua_type(L, -2) != LUA_TSTRING) {
            rc = IM_EINVAL;
            break;
        }
        if (members_grow(&m, n, &cap, small) != 0) {
            rc = fail(c, IM_ENOMEM, "could not be converted (out of memory)");
            break;
        }
        k = lua_tolstring(L, -2, &klen);              /* a string: no conversion */
        saved = path_key(c, -2);
        rc = check_text(c, k, klen, "key");
        if (rc == 0)
            rc = conv_value(c, -1, im_schema_property(schema, k, klen), depth + 1, &m[n].item);
        path_restore(c, saved);
        if (rc != 0)
            break;
        m[n].klen = klen;
        m[n].head = member_head(k, klen);
        m[n].idx = 0;
        m[n++].key = k;
        lua_pop(L, 1);                                /* [key] */
    }
    lua_settop(L, top);
    if (rc != 0) {
        lua_Integer count, nstr, nint, maxint;
        members_free(m, n, small);
        if (rc == IM_ENOMEM)
            return rc;
        classify(L, idx, &count, &nstr, &nint, &maxint);
        IM_UNUSED(nint);
        IM_UNUSED(maxint);
        if (nstr != count)
            return conv_bad_key(c, idx, nstr, count);
        return rc;   /* the value's own error, already in err */
    }
    members_sort(m, n);
    obj = cJSON_CreateObject();
    if (obj == NULL) {
        members_free(m, n, small);
        return fail(c, IM_ENOMEM, "could not be converted (out of memory)");
    }
    for (size_t i = 0; i < n; i++) {
        if (!(c->borrow ? cJSON_AddItemToObjectCS(obj, m[i].key, m[i].item)
                        : cJSON_AddItemToObject(obj, m[i].key, m[i].item))) {
            members_free(m + i, n - i, m + i);
            if (m != small)
                free(m);
            cJSON_Delete(obj);
            return fail(c, IM_ENOMEM, "could not be converted (out of memory)");
        }
    }
    if (m != small)
        free(m);
    *out = obj;
    return 0;
}

/* The table at idx (absolute) with keys exactly 1..count becomes an array. */
static int conv_array(struct conv *c, int idx, const im_schema *schema, int depth,
                      lua_Integer count, cJSON **out) {
    lua_State *L = c->L;
    cJSON *arr = cJSON_CreateArray();

    if (arr == NULL)
        return fail(c, IM_ENOMEM, "could not be converted (out of memory)");
    for (lua_Integer i = 1; i <= count; i++) {
        cJSON *item;
        size_t saved = path_append(c, "[%lld]", (long long)i);
        int rc;

        lua_rawgeti(L, idx, i);                       /* [value] */
        rc = conv_value(c, -1, im_schema_item(schema, (long long)i), depth + 1, &item);
        lua_pop(L, 1);
        path_restore(c, saved);
        if (rc != 0) {
            cJSON_Delete(arr);
            return rc;
        }
        cJSON_AddItemToArray(arr, item);
    }
    *out = arr;
    return 0;
}

/* Reports the first key of the table at idx that makes it neither an
 * array nor an object. nstr: how many keys are strings; count: all keys. */
static int conv_bad_key(struct conv *c, int idx, lua_Integer nstr, lua_Integer count) {
    lua_State *L = c->L;
    int top = lua_gettop(L);

    lua_pushnil(L);
    while (lua_next(L, idx)) {                        /* [key, value] */
        int bad;
        lua_pop(L, 1);                                /* [key] */
        if (lua_type(L, -1) == LUA_TSTRING)
            continue;
        if (nstr > 0 || !lua_isinteger(L, -1))
            bad = 1;
        else
            bad = lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > count;
        if (bad) {
            path_key(c, -1);
            lua_settop(L, top);
            return fail(c, IM_EINVAL,
                        "is a key that is neither a string nor part of a 1..n sequence");
        }
    }
    return fail(c, IM_EINVAL, "is a table that is neither an array nor an object");
}

static int conv_table(struct conv *c, int idx, const im_schema *schema, int depth, cJSON **out) {
    lua_State *L = c->L;
    lua_Integer count, nint, nstr, maxint;
    int top = lua_gettop(L), first;

    idx = lua_absindex(L, idx);
    if (depth > c->maxdepth)
        return fail(c, IM_ERANGE, "nests deeper than %d levels", c->maxdepth);
    if (!lua_checkstack(L, 4))
        return fail(c, IM_ENOMEM, "could not be converted (Lua stack exhausted)");
    /* The first key says what to expect: a string, an object (converted
     * in one walk); otherwise the keys are counted first. */
    lua_pushnil(L);                                   /* [key] */
    first = lua_next(L, idx) ? lua_type(L, -2) : LUA_TNONE;
    lua_settop(L, top);
    if (first == LUA_TNONE) {
        *out = im_schema_wants_array(schema) ? cJSON_CreateArray() : cJSON_CreateObject();
        return *out != NULL ? 0 : fail(c, IM_ENOMEM, "could not be converted (out of memory)");
    }
    if (first == LUA_TSTRING)
        return conv_object(c, idx, schema, depth, out);
    classify(L, idx, &count, &nstr, &nint, &maxint);
    assert(lua_gettop(L) == top);
    if (nint == count && maxint == count) /* distinct keys in 1..count: exactly 1..n */
        return conv_array(c, idx, schema, depth, count, out);
    return conv_bad_key(c, idx, nstr, count);
}

static int conv_value(struct conv *c, int idx, const im_schema *schema, int depth, cJSON **out) {
    lua_State *L = c->L;
    int t = lua_type(L, idx);

    *out = NULL;
    switch (t) {
    case LUA_TNIL:
        *out = cJSON_CreateNull();
        break;
    case LUA_TBOOLEAN:
        *out = cJSON_CreateBool(lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            lua_Integer i = lua_tointeger(L, idx);
            if (i > SJSON_INT_EXACT || i < -SJSON_INT_EXACT)
                return fail(c, IM_ERANGE, "is an integer beyond 2^53, which a JSON number "
                                          "cannot hold exactly");
            *out = cJSON_CreateNumber((double)i);
        } else {
            double d = (double)lua_tonumber(L, idx);
            if (!isfinite(d))
                return fail(c, IM_EINVAL, "is not a finite number");
            *out = cJSON_CreateNumber(d);
        }
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        int rc = check_text(c, s, len, "string");
        if (rc != 0)
            return rc;
        *out = c->borrow ? cJSON_CreateStringReference(s) : cJSON_CreateString(s);
        break;
    }
    case LUA_TTABLE:
        return conv_table(c, idx, schema, depth, out);
    default:
        return fail(c, IM_EINVAL, "is a %s, which JSON cannot represent", lua_typename(L, t));
    }
    if (*out == NULL)
        return fail(c, IM_ENOMEM, "could not be converted (out of memory)");
    return 0;
}

static int from_lua(lua_State *L, int idx, const im_schema *schema, int maxdepth, int borrow,
                    cJSON **out, char *err, size_t errlen) {
    struct conv c;
    int top = lua_gettop(L);
    int rc;

    if (out == NULL)
        return IM_EINVAL;
    *out = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    c.L = L;
    c.borrow = borrow;
    c.maxdepth = effective_depth(maxdepth);
    c.err = err;
    c.errlen = errlen;
    c.path[0] = '$';
    c.path[1] = '\0';
    c.plen = 1;
    rc = conv_value(&c, lua_absindex(L, idx), schema, 1, out);
    assert(lua_gettop(L) == top);
    IM_UNUSED(top);
    return rc;
}

int im_sjson_from_lua(lua_State *L, int idx, const im_schema *schema, int maxdepth, cJSON **out,
                      char *err, size_t errlen) {
    return from_lua(L, idx, schema, maxdepth, 0, out, err, errlen);
}

int im_sjson_from_lua_borrow(lua_State *L, int idx, const im_schema *schema, int maxdepth,
                             cJSON **out, char *err, size_t errlen) {
    return from_lua(L, idx, schema, maxdepth, 1, out, err, errlen);
}

/* ---------------------------------------------------------------------
 * Lua -> JSON text, checked as it goes (im_sjson_write)
 *
 * The same walk as conv_value, writing instead of building: values on the
 * stack, members sorted by key, each written with the writer cJSON's tree
 * would have gone through (im_jw_str, im_jw_num). The schema is checked as
 * run() checks it, for the simple keywords only (im_schema_simple; const
 * and enum for string values only). Every
 * doubt gives up with IM_EAGAIN; the full path then finds the same value
 * good (and writes the same text) or says what is wrong with it.
 * ------------------------------------------------------------------- */

struct wconv {
    lua_State *L;
    im_jw *w;
    int maxdepth;
};

/* fdepth: how far below the top the object at idx is through properties
 * only, as im_schema_fill_nulls counts (it fills to IM_SCHEMA_FILL_DEPTH),
 * or -1 when that does not reach it. */
static int w_value(struct wconv *c, int idx, const im_schema *s, int checked, int fdepth,
                   int depth);

static int w_text_ok(const char *s, size_t len) { return text_problem(s, len) == 0; }

/* The nulls im_schema_fill_nulls adds to an object written with the
 * properties in seen: each missing required member whose type admits
 * null, after the others, in the order required names them. */
static int w_fill_nulls(struct wconv *c, const im_schema *s, unsigned long long *seen,
                        int wrote) {
    const char *key;
    int p, fill;
    for (size_t k = 0; (key = im_schema_required_at(s, k, &p, &fill)) != NULL; k++) {
        const im_schema *ps = im_schema_prop_at(s, p);
        if (!fill || (p >= 0 && p < 64 && (*seen >> p & 1)))
            continue;
        if (p < 0 || p >= 64 || !im_schema_node_simple(ps) ||
            !im_schema_type_ok(ps, IM_SCHEMA_NULL) || im_schema_enum_ok(ps, NULL, 0) != 1)
            return IM_EAGAIN;
        if (wrote++)
            im_jw_raw(c->w, ",", 1);
        im_jw_str(c->w, key, strlen(key));
        im_jw_raw(c->w, ":null", 5);
        *seen |= 1ULL << p;
    }
    return 0;
}

static int w_object(struct wconv *c, int idx, const im_schema *s, int checked, int fdepth,
                    int depth) {
    lua_State *L = c->L;
    int top = lua_gettop(L), next = 0, rc = 0;
    struct member small[16], *m = small;
    size_t n = 0, cap = IM_ARRAY_SIZE(small);
    unsigned long long seen = 0;

    /* Each key and value stay on the stack below a copy of the key for
     * lua_next (a copy costs less than moving the value under the key). */
    lua_pushnil(L);                                   /* [key] */
    while (lua_next(L, idx)) {                        /* [..., key, value] */
        size_t klen;
        const char *k;
        if (lua_type(L, -2) != LUA_TSTRING || !lua_checkstack(L, 3)) {
            rc = IM_EAGAIN;
            break;
        }
        k = lua_tolstring(L, -2, &klen);
        if (!w_text_ok(k, klen)) {
            rc = IM_EAGAIN;
            break;
        }
        if (members_grow(&m, n, &cap, small) != 0) {
            rc = IM_EAGAIN;
            break;
        }
        m[n].key = k;
        m[n].klen = klen;
        m[n].head = member_head(k, klen);
        m[n].item = NULL;
        m[n++].idx = lua_gettop(L);
        lua_pushvalue(L, -2);                         /* [..., key, value, key] */
    }
    if (rc == 0) {
        members_sort(m, n);
        im_jw_raw(c->w, "{", 1);
        for (size_t i = 0; i < n && rc == 0; i++) {
            int p = im_schema_prop_index(s, m[i].key, m[i].klen, &next);
            const im_schema *sub;
            size_t qlen;
            const char *q = p >= 0 ? im_schema_prop_quoted(s, p, &qlen) : NULL;
            if (q != NULL) {
                im_jw_raw(c->w, q + (i == 0), qlen - (i == 0));
            } else {
                if (i > 0)
                    im_jw_raw(c->w, ",", 1);
                im_jw_str(c->w, m[i].key, m[i].klen);
                im_jw_raw(c->w, ":", 1);
            }
            if (p >= 0) {
                sub = im_schema_prop_at(s, p);
                if (p < 64)
                    seen |= 1ULL << p;
            } else {
                /* Not a property: converted by the hint, not checked. */
                if (checked && im_schema_closed(s))
                    rc = IM_EAGAIN;
                sub = im_schema_property(s, m[i].key, m[i].klen);
            }
            if (rc == 0)
                rc = w_value(c, m[i].idx, sub, checked && p >= 0,
                             p >= 0 && fdepth >= 0 && fdepth < IM_SCHEMA_FILL_DEPTH ? fdepth + 1
                                                                                    : -1,
                             depth + 1);
        }
        if (rc == 0 && checked && fdepth >= 0)
            rc = w_fill_nulls(c, s, &seen, n > 0);
        im_jw_raw(c->w, "}", 1);
        if (rc == 0 && checked && !im_schema_required_met(s, seen))
            rc = IM_EAGAIN;
    }
    if (m != small)
        free(m);
    lua_settop(L, top);
    return rc;
}

static int w_array(struct wconv *c, int idx, const im_schema *s, int checked, int depth,
                   lua_Integer count) {
    lua_State *L = c->L;
    const im_schema *items = checked ? im_schema_items(s) : NULL;
    int rc = 0;

    im_jw_raw(c->w, "[", 1);
    for (lua_Integer i = 1; i <= count && rc == 0; i++) {
        if (i > 1)
            im_jw_raw(c->w, ",", 1);
        lua_rawgeti(L, idx, i);                       /* [value] */
        rc = w_value(c, lua_gettop(L), items != NULL ? items : im_schema_item(s, (long long)i),
                     items != NULL, -1, depth + 1);
        lua_pop(L, 1);
    }
    im_jw_raw(c->w, "]", 1);
    return rc;
}

static int w_value(struct wconv *c, int idx, const im_schema *s, int checked, int fdepth,
                   int depth) {
    lua_State *L = c->L;
    unsigned kinds;
    int rc = 0;

    if (checked && im_schema_is_any(s))
        checked = 0;
    if (checked && !im_schema_node_simple(s))
        return IM_EAGAIN;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        kinds = IM_SCHEMA_NULL;
        im_jw_raw(c->w, "null", 4);
        break;
    case LUA_TBOOLEAN:
        kinds = IM_SCHEMA_BOOLEAN;
        if (lua_toboolean(L, idx))
            im_jw_raw(c->w, "true", 4);
        else
            im_jw_raw(c->w, "false", 5);
        break;
    case LUA_TNUMBER: {
        double d;
        if (lua_isinteger(L, idx)) {
            lua_Integer i = lua_tointeger(L, idx);
            if (i > SJSON_INT_EXACT || i < -SJSON_INT_EXACT)
                return IM_EAGAIN;
            d = (double)i;
        } else {
            d = (double)lua_tonumber(L, idx);
            if (!isfinite(d))
                return IM_EAGAIN;
        }
        kinds = IM_SCHEMA_NUMBER | (d == floor(d) ? IM_SCHEMA_INTEGER : 0);
        im_jw_num(c->w, d);
        break;
    }
    case LUA_TSTRING: {
        size_t len;
        const char *str = lua_tolstring(L, idx, &len);
        if (!w_text_ok(str, len) || (checked && im_schema_enum_ok(s, str, len) != 1))
            return IM_EAGAIN;
        kinds = IM_SCHEMA_STRING;
        im_jw_str(c->w, str, len);
        break;
    }
    case LUA_TTABLE: {
        lua_Integer count, nint, nstr, maxint;
        int first, top = lua_gettop(L);
        if (depth > c->maxdepth || !lua_checkstack(L, 4))
            return IM_EAGAIN;
        lua_pushnil(L);
        first = lua_next(L, idx) ? lua_type(L, -2) : LUA_TNONE;
        lua_settop(L, top);
        if (first == LUA_TNONE && im_schema_wants_array(s)) {
            kinds = IM_SCHEMA_ARRAY;
            im_jw_raw(c->w, "[]", 2);
        } else if (first == LUA_TNONE || first == LUA_TSTRING) {
            kinds = IM_SCHEMA_OBJECT;   /* empty, {} (with any nulls to fill) */
            rc = w_object(c, idx, s, checked, fdepth, depth);
        } else {
            classify(L, idx, &count, &nstr, &nint, &maxint);
            if (!(nint == count && maxint == count))
                return IM_EAGAIN;
            kinds = IM_SCHEMA_ARRAY;
            rc = w_array(c, idx, s, checked, depth, count);
        }
        break;
    }
    default:
        return IM_EAGAIN;
    }
    if (rc == 0 && checked &&
        (!im_schema_type_ok(s, kinds) ||
         (kinds != IM_SCHEMA_STRING && im_schema_enum_ok(s, NULL, 0) != 1)))
        rc = IM_EAGAIN;   /* const and enum are told for strings only */
    return rc;
}

int im_sjson_write(im_jw *w, lua_State *L, int idx, const im_schema *schema, int maxdepth) {
    struct wconv c;
    int top = lua_gettop(L), rc;

    if (schema == NULL)
        return IM_EAGAIN;
    c.L = L;
    c.w = w;
    c.maxdepth = effective_depth(maxdepth);
    rc = w_value(&c, lua_absindex(L, idx), schema, 1, 0, 1);
    lua_settop(L, top);
    if (rc == 0 && w->oom)
        rc = IM_ENOMEM;
    return rc;
}
