/* schema.c: the JSON Schema subset of schema.h, compiled once and then
 * run. Recursive over the value; depth is bounded by the JSON parser's own
 * nesting limit. */
#include "schema.h"

#include <math.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "error.h"
#include "text.h"

#define PATH_MAX_LEN 256

/* Value kinds, as bits: a schema's type list becomes one mask. */
enum {
    K_OBJECT = IM_SCHEMA_OBJECT,
    K_ARRAY = IM_SCHEMA_ARRAY,
    K_STRING = IM_SCHEMA_STRING,
    K_BOOLEAN = IM_SCHEMA_BOOLEAN,
    K_NULL = IM_SCHEMA_NULL,
    K_NUMBER = IM_SCHEMA_NUMBER,    /* a finite number */
    K_INTEGER = IM_SCHEMA_INTEGER,  /* a finite whole number */
};

static const struct {
    const char *name;
    unsigned bit;
} kind_names[] = {
    {"object", K_OBJECT}, {"array", K_ARRAY}, {"string", K_STRING}, {"boolean", K_BOOLEAN},
    {"null", K_NULL},     {"number", K_NUMBER}, {"integer", K_INTEGER},
};

static unsigned kind_bit(const char *name) {
    for (size_t i = 0; i < IM_ARRAY_SIZE(kind_names); i++)
        if (strcmp(name, kind_names[i].name) == 0)
            return kind_names[i].bit;
    return 0;
}

static unsigned kinds_of(const cJSON *v) {
    switch (v->type & 0xFF) {
    case cJSON_Object: return K_OBJECT;
    case cJSON_Array: return K_ARRAY;
    case cJSON_String: return K_STRING;
    case cJSON_True:
    case cJSON_False: return K_BOOLEAN;
    case cJSON_NULL: return K_NULL;
    case cJSON_Number:
        if (!isfinite(v->valuedouble))
            return 0;
        return K_NUMBER | (v->valuedouble == floor(v->valuedouble) ? K_INTEGER : 0);
    default: return 0;
    }
}

static const char *kind_of(const cJSON *v) {
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsNumber(v)) return "a number";
    return "invalid";
}

static const char *path_or(const char *path) { return *path ? path : "the value"; }

/* ---- the compiled form ---------------------------------------------------- */

typedef struct sc_prop {
    const char *key;      /* points into the source schema */
    size_t klen;
    char *quoted;         /* owned: ,"key": when the key needs no escaping, else NULL */
    im_schema *s;         /* owned */
} sc_prop;

typedef struct sc_req {
    const char *key;
    int prop;             /* index in props, or -1 */
    int fill_null;        /* its schema's type list names null */
} sc_req;

enum { B_MIN, B_XMIN, B_MAX, B_XMAX, B_COUNT };

struct im_schema {
    int any;                  /* not an object, or true: every value passes */
    int has_type;
    unsigned kinds;           /* K_* the type keyword allows */
    const cJSON *type;        /* borrowed: the type keyword, for messages (want_text) */
    const cJSON *konst, *enm; /* borrowed */
    int has_bound[B_COUNT];
    double bound[B_COUNT];
    int has_min_len, has_max_len;
    double min_len, max_len;
    const char *pattern;      /* borrowed; NULL when absent */
    int re_ok;
    regex_t re;
    struct fast_re *fast;     /* the same pattern as a table walk, when it can be */
    int simple;               /* node_simple, computed once compiled */
    /* objects */
    sc_prop *props;           /* sorted by key, the first of duplicates kept */
    size_t nprops;
    sc_req *req;              /* in the schema's order */
    size_t nreq;
    int any_fill_null;
    int addl_false;
    im_schema *addl;          /* an object-valued additionalProperties (hint only) */
    const cJSON *props_src;   /* borrowed: "properties", for messages (names_text) */
    /* arrays */
    im_schema *items;         /* the object form */
    im_schema **tuple;        /* the array form (hint only) */
    size_t ntuple;
    int has_min_items, has_max_items;
    double min_items, max_items;
    int wants_array;
};

/* ---- simple patterns ------------------------------------------------------ */

/* A pattern of the shape tools use for symbols and dates,
 * "^[A-Za-z][A-Za-z0-9.]{0,11}$": anchored at both ends, a sequence of
 * atoms - a letter, digit or one of "-_:/,@ ", or a bracket set of such
 * characters, '.' (literal there) and ranges - each taken once, optionally ({0,1}), {m} or
 * {m,n} times, and no longer than 63 characters in all. Such a pattern
 * matches exactly the strings regexec would accept (the C locale: ranges
 * are byte ranges), found by a walk over a set of reachable lengths;
 * regexec cost 1.5k of the 48k instructions of a get_quote. Any other
 * pattern, or any doubt about one, is left to regexec. */
#define FAST_RE_ATOMS 16
#define FAST_RE_MAX_LEN 63

struct fast_re {
    size_t n;
    size_t max_len;            /* the longest string that can match */
    struct {
        unsigned char set[32]; /* one bit per byte value */
        unsigned min, max;
    } a[FAST_RE_ATOMS];
};

static int fast_plain(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-_:/,@ ", c) != NULL);
}

/* Reads "{m}", "{m,n}" or "?" at *pp; none leaves {1,1}. -1 for anything
 * regexec might read differently: unbounded or stacked repetition. */
static int fast_count(const char **pp, unsigned *min, unsigned *max) {
    const char *p = *pp;
    *min = *max = 1;
    if (*p == '?') {
        *min = 0;
        p++;
    } else if (*p == '{') {
        unsigned m = 0, n;
        if (!(*++p >= '0' && *p <= '9'))
            return -1;
        while (*p >= '0' && *p <= '9' && m <= 255)
            m = m * 10 + (unsigned)(*p++ - '0');
        n = m;
        if (*p == ',') {
            if (!(*++p >= '0' && *p <= '9'))
                return -1;   /* "{m,}" has no bound */
            n = 0;
            while (*p >= '0' && *p <= '9' && n <= 255)
                n = n * 10 + (unsigned)(*p++ - '0');
        }
        if (*p++ != '}' || m > n || n > 255)
            return -1;
        *min = m, *max = n;
    }
    if (*p == '?' || *p == '*' || *p == '+' || *p == '{')
        return -1;
    *pp = p;
    return 0;
}

/* 0 and *out filled when the pattern has the simple shape; -1 otherwise. */
static int fast_compile(const char *p, struct fast_re *out) {
    memset(out, 0, sizeof *out);
    if (*p++ != '^')
        return -1;
    while (*p != '$') {
        unsigned char *set;
        if (out->n == FAST_RE_ATOMS)
            return -1;
        set = out->a[out->n].set;
        if (*p == '[') {
            /* Members: plain characters and ranges of them; '-' only first
             * or last. No negation, no [:class:], no ']' member. */
            const char *start = ++p;
            while (*p != ']') {
                int lo = (unsigned char)*p, hi = lo;
                if (lo == '-' && p != start && p[1] != ']')
                    return -1;
                if (lo != '-' && lo != '.' && !fast_plain(lo))
                    return -1;
                if (lo != '-' && p[1] == '-' && p[2] != ']') {
                    hi = (unsigned char)p[2];
                    if (lo == '.' || hi == '-' || !fast_plain(hi) || hi < lo)
                        return -1;
                    p += 3;
                } else {
                    p++;
                }
                for (int c = lo; c <= hi; c++)
                    set[c >> 3] |= (unsigned char)(1u << (c & 7));
            }
            if (p == start)
                return -1;
            p++;
        } else if (fast_plain((unsigned char)*p)) {
            set[(unsigned char)*p >> 3] |= (unsigned char)(1u << (*p & 7));
            p++;
        } else {
            return -1;
        }
        if (fast_count(&p, &out->a[out->n].min, &out->a[out->n].max) != 0)
            return -1;
        out->max_len += out->a[out->n].max;
        if (out->max_len > FAST_RE_MAX_LEN)
            return -1;
        out->n++;
    }
    return p[1] == '\0' ? 0 : -1;
}

/* Whether s matches: bit i of reach says the first i bytes can be matched
 * by the atoms so far. */
static int fast_match(const struct fast_re *r, const char *s) {
    size_t len = strlen(s);
    uint64_t reach = 1;
    if (len > r->max_len)
        return 0;
    for (size_t k = 0; k < r->n && reach != 0; k++) {
        const unsigned char *set = r->a[k].set;
        uint64_t next = 0;
        for (size_t i = 0; i <= len; i++) {
            size_t j = i;
            unsigned cnt = 0;
            if (!(reach >> i & 1))
                continue;
            for (;;) {
                unsigned char c = (unsigned char)s[j];
                if (cnt >= r->a[k].min)
                    next |= (uint64_t)1 << j;
                if (cnt == r->a[k].max || j == len || !(set[c >> 3] >> (c & 7) & 1))
                    break;
                j++, cnt++;
            }
        }
        reach = next;
    }
    return (int)(reach >> len & 1);
}

/* Deeper than im_schema_check allows (32): additionalProperties and tuple
 * items, which it does not walk, are compiled for hints too. */
#define COMPILE_DEPTH 64

static int prop_cmp(const void *a, const void *b) {
    return strcmp(((const sc_prop *)a)->key, ((const sc_prop *)b)->key);
}

static int find_prop(const im_schema *s, const char *key, size_t klen) {
    size_t lo = 0, hi = s->nprops;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const sc_prop *p = &s->props[mid];
        size_t n = p->klen < klen ? p->klen : klen;
        int c = memcmp(p->key, key, n);
        if (c == 0)
            c = p->klen < klen ? -1 : p->klen > klen;
        if (c == 0)
            return (int)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* find_prop for members that usually come in key order (the tools' results
 * are sorted): try the property after the last one found first. */
static int find_prop_next(const im_schema *s, const char *key, size_t klen, int *next) {
    int i = *next;
    if (i < 0 || (size_t)i >= s->nprops || s->props[i].klen != klen ||
        memcmp(s->props[i].key, key, klen) != 0)
        i = find_prop(s, key, klen);
    *next = i >= 0 ? i + 1 : *next;
    return i;
}

static int compile_node(const cJSON *src, im_schema **out, int depth);
static int node_simple(const im_schema *s);

/* The member prefix a JSON writer puts before the property's value, for a
 * key that JSON escaping leaves as it is (no control byte, quote or
 * backslash): a writer copies it instead of escaping the key each time. */
static int quote_key(sc_prop *p) {
    for (size_t i = 0; i < p->klen; i++) {
        unsigned char c = (unsigned char)p->key[i];
        if (c < 0x20 || c == '"' || c == '\\')
            return 0;
    }
    p->quoted = malloc(p->klen + 5);
    if (p->quoted == NULL)
        return IM_ENOMEM;
    p->quoted[0] = ',';
    p->quoted[1] = '"';
    memcpy(p->quoted + 2, p->key, p->klen);
    memcpy(p->quoted + 2 + p->klen, "\":", 3);   /* with the NUL */
    return 0;
}

static double num_kw(const cJSON *src, const char *kw, int *has) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(src, kw);
    *has = cJSON_IsNumber(b);
    return *has ? b->valuedouble : 0;
}

static int compile_object_part(im_schema *s, const cJSON *src, int depth) {
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(src, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(src, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(src, "additionalProperties");
    const cJSON *e;
    int n;

    s->addl_false = cJSON_IsFalse(addl);
    if (cJSON_IsObject(addl) && compile_node(addl, &s->addl, depth + 1) != 0)
        return IM_ENOMEM;
    if (!cJSON_IsObject(props))
        props = NULL;
    s->props_src = props;
    if (props != NULL && (n = cJSON_GetArraySize(props)) > 0) {
        s->props = calloc((size_t)n, sizeof *s->props);
        if (s->props == NULL)
            return IM_ENOMEM;
        cJSON_ArrayForEach(e, props) {
            int dup = 0;
            if (e->string == NULL)
                continue;
            for (size_t i = 0; i < s->nprops && !dup; i++)
                dup = strcmp(s->props[i].key, e->string) == 0;
            if (dup)
                continue;
            s->props[s->nprops].key = e->string;
            s->props[s->nprops].klen = strlen(e->string);
            if (quote_key(&s->props[s->nprops]) != 0 ||
                compile_node(e, &s->props[s->nprops++].s, depth + 1) != 0)
                return IM_ENOMEM;
        }
        qsort(s->props, s->nprops, sizeof *s->props, prop_cmp);
    }
    if (cJSON_IsArray(req) && (n = cJSON_GetArraySize(req)) > 0) {
        s->req = calloc((size_t)n, sizeof *s->req);
        if (s->req == NULL)
            return IM_ENOMEM;
        cJSON_ArrayForEach(e, req) {
            sc_req *r;
            const cJSON *ps, *type, *ty;
            if (!cJSON_IsString(e))
                continue;
            r = &s->req[s->nreq++];
            r->key = e->valuestring;
            r->prop = find_prop(s, e->valuestring, strlen(e->valuestring));
            ps = cJSON_GetObjectItemCaseSensitive(props, e->valuestring);
            type = cJSON_GetObjectItemCaseSensitive(ps, "type");
            if (cJSON_IsArray(type)) {
                cJSON_ArrayForEach(ty, type) {
                    if (cJSON_IsString(ty) && strcmp(ty->valuestring, "null") == 0)
                        r->fill_null = 1;
                }
            }
            s->any_fill_null |= r->fill_null;
        }
    }
    return 0;
}

static int compile_array_part(im_schema *s, const cJSON *src, int depth) {
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(src, "items"), *e;
    s->min_items = num_kw(src, "minItems", &s->has_min_items);
    s->max_items = num_kw(src, "maxItems", &s->has_max_items);
    if (cJSON_IsObject(items))
        return compile_node(items, &s->items, depth + 1);
    if (cJSON_IsArray(items) && cJSON_GetArraySize(items) > 0) {
        s->tuple = calloc((size_t)cJSON_GetArraySize(items), sizeof *s->tuple);
        if (s->tuple == NULL)
            return IM_ENOMEM;
        cJSON_ArrayForEach(e, items) {
            if (compile_node(e, &s->tuple[s->ntuple++], depth + 1) != 0)
                return IM_ENOMEM;
        }
    }
    return 0;
}

/* Fails only for lack of memory or depth: the rules are im_schema_check's,
 * applied before. A partly built node is left in *out for the caller to
 * free. */
static int compile_node(const cJSON *src, im_schema **out, int depth) {
    static const char *bound_kw[B_COUNT] = {"minimum", "exclusiveMinimum", "maximum",
                                            "exclusiveMaximum"};
    im_schema *s;
    const cJSON *t, *p;

    *out = NULL;
    if (depth > COMPILE_DEPTH || (s = calloc(1, sizeof *s)) == NULL)
        return IM_ENOMEM;
    *out = s;
    if (cJSON_IsTrue(src) || !cJSON_IsObject(src)) {
        s->any = 1;
        return 0;
    }
    t = cJSON_GetObjectItemCaseSensitive(src, "type");
    if (cJSON_IsString(t)) {
        s->has_type = 1;
        s->kinds = kind_bit(t->valuestring);
        s->type = t;
        s->wants_array = strcmp(t->valuestring, "array") == 0;
    } else if (cJSON_IsArray(t)) {
        const cJSON *e;
        s->has_type = 1;
        s->type = t;
        cJSON_ArrayForEach(e, t) {
            if (cJSON_IsString(e))
                s->kinds |= kind_bit(e->valuestring);
        }
        s->wants_array = (s->kinds & K_ARRAY) && !(s->kinds & K_OBJECT);
    }
    s->konst = cJSON_GetObjectItemCaseSensitive(src, "const");
    s->enm = cJSON_GetObjectItemCaseSensitive(src, "enum");
    if (!cJSON_IsArray(s->enm))
        s->enm = NULL;
    for (int i = 0; i < B_COUNT; i++)
        s->bound[i] = num_kw(src, bound_kw[i], &s->has_bound[i]);
    s->min_len = num_kw(src, "minLength", &s->has_min_len);
    s->max_len = num_kw(src, "maxLength", &s->has_max_len);
    p = cJSON_GetObjectItemCaseSensitive(src, "pattern");
    if (cJSON_IsString(p)) {
        s->pattern = p->valuestring;
        s->re_ok = regcomp(&s->re, p->valuestring, REG_EXTENDED | REG_NOSUB) == 0;
        if (s->re_ok) {
            struct fast_re f;
            if (fast_compile(p->valuestring, &f) == 0 && (s->fast = malloc(sizeof f)) != NULL)
                *s->fast = f;
        }
    }
    if (compile_object_part(s, src, depth) != 0 || compile_array_part(s, src, depth) != 0)
        return IM_ENOMEM;
    s->simple = node_simple(s);
    return 0;
}

void im_schema_free(im_schema *s) {
    if (s == NULL)
        return;
    if (s->re_ok)
        regfree(&s->re);
    free(s->fast);
    for (size_t i = 0; i < s->nprops; i++) {
        im_schema_free(s->props[i].s);
        free(s->props[i].quoted);
    }
    free(s->props);
    free(s->req);
    im_schema_free(s->addl);
    im_schema_free(s->items);
    for (size_t i = 0; i < s->ntuple; i++)
        im_schema_free(s->tuple[i]);
    free(s->tuple);
    free(s);
}

static int check_schema(const cJSON *s, char *err, size_t errlen, int depth, int patterns);

/* Every pattern on the walk im_schema_check makes (properties and object
 * items, not additionalProperties or tuple items) compiled. */
static int patterns_ok(const im_schema *s) {
    if (s == NULL || s->any)
        return 1;
    if (s->pattern != NULL && !s->re_ok)
        return 0;
    for (size_t i = 0; i < s->nprops; i++)
        if (!patterns_ok(s->props[i].s))
            return 0;
    return patterns_ok(s->items);
}

int im_schema_compile(const cJSON *schema, im_schema **out, char *err, size_t errlen) {
    int rc;
    *out = NULL;
    if (schema == NULL)
        return IM_EINVAL;
    if ((rc = check_schema(schema, err, errlen, 0, 0)) != 0)
        return rc;
    if (compile_node(schema, out, 0) != 0) {
        im_schema_free(*out);
        *out = NULL;
        snprintf(err, errlen, "schema could not be compiled (out of memory, or nested too deeply)");
        return IM_ENOMEM;
    }
    /* The patterns im_schema_check would have compiled, compiled once. */
    if (!patterns_ok(*out)) {
        im_schema_free(*out);
        *out = NULL;
        snprintf(err, errlen, "schema pattern does not compile");
        return IM_ESCHEMA;
    }
    return 0;
}

/* ---- hints ---------------------------------------------------------------- */

const im_schema *im_schema_property(const im_schema *s, const char *key, size_t klen) {
    int i;
    if (s == NULL || s->any)
        return NULL;
    if ((i = find_prop(s, key, klen)) >= 0)
        return s->props[i].s;
    return s->addl;
}

const im_schema *im_schema_item(const im_schema *s, long long i) {
    if (s == NULL || s->any)
        return NULL;
    if (s->items != NULL)
        return s->items;
    if (i >= 1 && (unsigned long long)i <= s->ntuple)
        return s->tuple[i - 1];
    return NULL;
}

int im_schema_wants_array(const im_schema *s) { return s != NULL && s->wants_array; }

int im_schema_pattern_is_fast(const im_schema *s) { return s != NULL && s->fast != NULL; }

/* ---- for checking writers (schema.h) ------------------------------------- */

static int node_simple(const im_schema *s) {
    if (s == NULL || s->any)
        return 1;
    for (int i = 0; i < B_COUNT; i++)
        if (s->has_bound[i])
            return 0;
    return !s->has_min_len && !s->has_max_len && s->pattern == NULL && !s->has_min_items &&
           !s->has_max_items;
}

static int simple_deep(const im_schema *s, int depth) {
    if (s == NULL || s->any)
        return 1;
    if (depth > COMPILE_DEPTH || !node_simple(s))
        return 0;
    for (size_t i = 0; i < s->nprops; i++)
        if (!simple_deep(s->props[i].s, depth + 1))
            return 0;
    return simple_deep(s->items, depth + 1);
}

int im_schema_simple(const im_schema *s) { return simple_deep(s, 0); }
int im_schema_node_simple(const im_schema *s) { return s == NULL || s->any || s->simple; }

int im_schema_is_any(const im_schema *s) { return s == NULL || s->any; }

int im_schema_type_ok(const im_schema *s, unsigned kinds) {
    return s == NULL || s->any || !s->has_type || (s->kinds & kinds) != 0;
}

int im_schema_prop_index(const im_schema *s, const char *key, size_t klen, int *next) {
    if (s == NULL || s->any || s->nprops == 0)
        return -1;
    return find_prop_next(s, key, klen, next);
}

const im_schema *im_schema_prop_at(const im_schema *s, int i) {
    return s != NULL && i >= 0 && (size_t)i < s->nprops ? s->props[i].s : NULL;
}

const char *im_schema_prop_quoted(const im_schema *s, int i, size_t *len) {
    const sc_prop *p;
    if (s == NULL || i < 0 || (size_t)i >= s->nprops || s->props[i].quoted == NULL)
        return NULL;
    p = &s->props[i];
    *len = p->klen + 4;
    return p->quoted;
}

int im_schema_required_met(const im_schema *s, unsigned long long seen) {
    if (s == NULL || s->any)
        return 1;
    for (size_t k = 0; k < s->nreq; k++) {
        int i = s->req[k].prop;
        if (i < 0 || i >= 64 || !(seen >> i & 1))
            return 0;
    }
    return 1;
}

const char *im_schema_required_at(const im_schema *s, size_t k, int *prop, int *fill) {
    if (s == NULL || s->any || k >= s->nreq)
        return NULL;
    *prop = s->req[k].prop;
    *fill = s->req[k].fill_null;
    return s->req[k].key;
}

/* cJSON_Compare of a string node with the string str (len bytes, no NUL):
 * the same type and the same bytes. */
static int same_string(const cJSON *c, const char *str, size_t len) {
    return cJSON_IsString(c) && c->valuestring != NULL && strlen(c->valuestring) == len &&
           memcmp(c->valuestring, str, len) == 0;
}

int im_schema_enum_ok(const im_schema *s, const char *str, size_t len) {
    const cJSON *c;
    if (s == NULL || s->any || (s->konst == NULL && s->enm == NULL))
        return 1;
    if (str == NULL)
        return -1;
    if (s->konst != NULL && !same_string(s->konst, str, len))
        return 0;
    if (s->enm == NULL)
        return 1;
    cJSON_ArrayForEach(c, s->enm) {
        if (same_string(c, str, len))
            return 1;
    }
    return 0;
}

int im_schema_closed(const im_schema *s) { return s != NULL && !s->any && s->addl_false; }

const im_schema *im_schema_items(const im_schema *s) {
    return s != NULL && !s->any ? s->items : NULL;
}

/* ---- checking ------------------------------------------------------------- */

/* Where the checked value is, "positions[2].qty": appended to on the way
 * down and cut back on return; read only for a message. A path that
 * outgrows the buffer is cut short. */
typedef struct sc_path {
    char buf[PATH_MAX_LEN];
    size_t len;
} sc_path;

static size_t path_push(sc_path *p, const char *a, size_t alen, const char *b, size_t blen) {
    size_t saved = p->len, room = sizeof p->buf - 1 - p->len;
    if (alen > room)
        alen = room;
    memcpy(p->buf + p->len, a, alen);
    p->len += alen;
    room -= alen;
    if (blen > room)
        blen = room;
    memcpy(p->buf + p->len, b, blen);
    p->len += blen;
    p->buf[p->len] = '\0';
    return saved;
}

static void path_pop(sc_path *p, size_t saved) {
    p->len = saved;
    p->buf[saved] = '\0';
}

static int fail(char *err, size_t errlen, const char *fmt, const char *path, const char *detail) {
    snprintf(err, errlen, fmt, path_or(path), detail);
    return IM_ESCHEMA;
}

static int run(const im_schema *s, const cJSON *v, sc_path *path, char *err, size_t errlen);

/* The type list as a sentence, "string or null", into want (128 bytes, as
 * it was kept before it was made only when a message needs it: a compiled
 * node is written at start-up, and every page start-up first touches costs
 * on a small VM). */
static void want_text(const im_schema *s, char want[128]) {
    const cJSON *e;
    want[0] = '\0';
    if (cJSON_IsString(s->type)) {
        snprintf(want, 128, "%s", s->type->valuestring);
        return;
    }
    cJSON_ArrayForEach(e, s->type) {
        size_t l = strlen(want);
        if (cJSON_IsString(e))
            snprintf(want + l, 128 - l, "%s%s", l ? " or " : "", e->valuestring);
    }
}

/* Every key under "properties", in schema order, into names (160 bytes). */
static void names_text(const im_schema *s, char names[160]) {
    const cJSON *e;
    names[0] = '\0';
    cJSON_ArrayForEach(e, s->props_src) {
        size_t l = strlen(names);
        snprintf(names + l, 160 - l, "%s%s", l ? ", " : "", e->string ? e->string : "");
    }
}

static int check_type(const im_schema *s, const cJSON *v, const char *path, char *err,
                      size_t errlen) {
    char want[128];
    if (!s->has_type || (s->kinds & kinds_of(v)))
        return 0;
    want_text(s, want);
    snprintf(err, errlen, "%s must be %s %s (got %s)", path_or(path),
             (want[0] == 'a' || want[0] == 'i' || want[0] == 'o') ? "an" : "a", want,
             kind_of(v));
    return IM_ESCHEMA;
}

static int check_number(const im_schema *s, const cJSON *v, const char *path, char *err,
                        size_t errlen) {
    static const char *sentence[B_COUNT] = {"at least", "greater than", "at most", "less than"};
    double x = v->valuedouble;
    if (!isfinite(x))
        return fail(err, errlen, "%s must be a finite number%s", path, "");
    for (int i = 0; i < B_COUNT; i++) {
        double lim = s->bound[i];
        int bad;
        if (!s->has_bound[i])
            continue;
        switch (i) {
        case B_MIN: bad = !(x >= lim); break;
        case B_XMIN: bad = !(x > lim); break;
        case B_MAX: bad = !(x <= lim); break;
        default: bad = !(x < lim); break;
        }
        if (bad) {
            snprintf(err, errlen, "%s must be %s %.15g (got %.15g)", path_or(path), sentence[i],
                     lim, x);
            return IM_ESCHEMA;
        }
    }
    return 0;
}

static int check_string(const im_schema *s, const cJSON *v, const char *path, char *err,
                        size_t errlen) {
    const char *str = v->valuestring;

    if (s->has_min_len || s->has_max_len) {
        size_t chars = 0;
        /* Length in code points, as JSON Schema counts it. */
        for (const unsigned char *p = (const unsigned char *)str; *p; p++)
            if ((*p & 0xC0) != 0x80)
                chars++;
        if (s->has_min_len && (double)chars < s->min_len) {
            snprintf(err, errlen, "%s must be at least %.0f characters long", path_or(path),
                     s->min_len);
            return IM_ESCHEMA;
        }
        if (s->has_max_len && (double)chars > s->max_len) {
            snprintf(err, errlen, "%s must be at most %.0f characters long", path_or(path),
                     s->max_len);
            return IM_ESCHEMA;
        }
    }
    if (s->pattern != NULL) {
        if (!s->re_ok) {
            snprintf(err, errlen, "schema pattern for %s does not compile", path_or(path));
            return IM_ESCHEMA;
        }
        if (s->fast != NULL ? !fast_match(s->fast, str) : regexec(&s->re, str, 0, NULL, 0) != 0) {
            char shown[64];
            im_text_copy(shown, sizeof shown, str);
            snprintf(err, errlen, "%s must match %s (got \"%s\")", path_or(path), s->pattern,
                     shown);
            return IM_ESCHEMA;
        }
    }
    return 0;
}

static int check_enum(const im_schema *s, const cJSON *v, const char *path, char *err,
                      size_t errlen) {
    const cJSON *c;
    if (s->konst != NULL && !cJSON_Compare(s->konst, v, 1)) {
        char *want = cJSON_PrintUnformatted(s->konst);
        snprintf(err, errlen, "%s must be %s", path_or(path), want ? want : "a constant");
        cJSON_free(want);
        return IM_ESCHEMA;
    }
    if (s->enm == NULL)
        return 0;
    cJSON_ArrayForEach(c, s->enm) {
        if (cJSON_Compare(c, v, 1))
            return 0;
    }
    char list[200] = "";
    cJSON_ArrayForEach(c, s->enm) {
        size_t l = strlen(list);
        char *t = cJSON_PrintUnformatted(c);
        snprintf(list + l, sizeof list - l, "%s%s", l ? ", " : "", t ? t : "?");
        cJSON_free(t);
    }
    snprintf(err, errlen, "%s must be one of %s", path_or(path), list);
    return IM_ESCHEMA;
}

static int has_member(const cJSON *v, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(v, key) != NULL;
}

static int check_object(const im_schema *s, const cJSON *v, sc_path *path, char *err,
                        size_t errlen) {
    const cJSON *e;
    unsigned long long seen = 0;   /* bit i: props[i] is present, for i < 64 */
    int next = 0;

    if (s->nreq > 0) {
        if (s->nprops > 0) {
            cJSON_ArrayForEach(e, v) {
                int i = e->string ? find_prop_next(s, e->string, strlen(e->string), &next) : -1;
                if (i >= 0 && i < 64)
                    seen |= 1ULL << i;
            }
        }
        for (size_t k = 0; k < s->nreq; k++) {
            const sc_req *r = &s->req[k];
            int present = r->prop >= 0 && r->prop < 64 ? (int)(seen >> r->prop & 1)
                                                        : has_member(v, r->key);
            if (!present) {
                if (path->len)
                    snprintf(err, errlen, "%s.%s is required", path->buf, r->key);
                else
                    snprintf(err, errlen, "%s is required", r->key);
                return IM_ESCHEMA;
            }
        }
    }
    next = 0;
    cJSON_ArrayForEach(e, v) {
        const char *key = e->string ? e->string : "";
        size_t klen = strlen(key);
        int i = find_prop_next(s, key, klen, &next), rc = 0;
        size_t saved = path->len ? path_push(path, ".", 1, key, klen)
                                 : path_push(path, key, klen, "", 0);
        if (i >= 0) {
            rc = run(s->props[i].s, e, path, err, errlen);
        } else if (s->addl_false) {
            char names[160];
            names_text(s, names);
            snprintf(err, errlen, "unexpected argument %s (allowed: %s)", path->buf,
                     names[0] ? names : "none");
            rc = IM_ESCHEMA;
        }
        path_pop(path, saved);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int check_array(const im_schema *s, const cJSON *v, sc_path *path, char *err,
                       size_t errlen) {
    const cJSON *e;
    int i = 0;

    if (s->has_min_items || s->has_max_items) {
        int n = cJSON_GetArraySize(v);
        if (s->has_min_items && n < s->min_items)
            return fail(err, errlen, "%s has too few items%s", path->buf, "");
        if (s->has_max_items && n > s->max_items)
            return fail(err, errlen, "%s has too many items%s", path->buf, "");
    }
    if (s->items == NULL)
        return 0;
    cJSON_ArrayForEach(e, v) {
        char idx[24];
        int il = snprintf(idx, sizeof idx, "[%d]", i++);
        size_t saved = path->len ? path_push(path, idx, (size_t)il, "", 0)
                                 : path_push(path, "$", 1, idx, (size_t)il);
        int rc = run(s->items, e, path, err, errlen);
        path_pop(path, saved);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int run(const im_schema *s, const cJSON *v, sc_path *path, char *err, size_t errlen) {
    int rc;
    if (s->any)
        return 0;
    if ((rc = check_type(s, v, path->buf, err, errlen)) != 0)
        return rc;
    if ((s->konst != NULL || s->enm != NULL) &&
        (rc = check_enum(s, v, path->buf, err, errlen)) != 0)
        return rc;
    if (cJSON_IsNumber(v))
        return check_number(s, v, path->buf, err, errlen);
    if (cJSON_IsString(v))
        return check_string(s, v, path->buf, err, errlen);
    if (cJSON_IsObject(v))
        return check_object(s, v, path, err, errlen);
    if (cJSON_IsArray(v))
        return check_array(s, v, path, err, errlen);
    return 0;
}

int im_schema_run(const im_schema *s, const cJSON *v, char *err, size_t errlen) {
    sc_path path;
    if (s == NULL || v == NULL)
        return IM_EINVAL;
    path.buf[0] = '\0';
    path.len = 0;
    return run(s, v, &path, err, errlen);
}

static void fill_nulls(const im_schema *s, cJSON *v, int depth) {
    cJSON *child;
    if (s == NULL || s->any || depth > IM_SCHEMA_FILL_DEPTH || !cJSON_IsObject(v))
        return;
    if (s->any_fill_null) {
        for (size_t k = 0; k < s->nreq; k++)
            if (s->req[k].fill_null && !has_member(v, s->req[k].key))
                cJSON_AddNullToObject(v, s->req[k].key);
    }
    if (s->nprops == 0)
        return;
    cJSON_ArrayForEach(child, v) {
        int i;
        if (!cJSON_IsObject(child) || child->string == NULL)
            continue;
        if ((i = find_prop(s, child->string, strlen(child->string))) >= 0)
            fill_nulls(s->props[i].s, child, depth + 1);
    }
}

void im_schema_fill_nulls(const im_schema *s, cJSON *v) { fill_nulls(s, v, 0); }

int im_schema_validate(const cJSON *schema, const cJSON *v, char *err, size_t errlen) {
    im_schema *s;
    int rc;
    if (schema == NULL || v == NULL)
        return IM_EINVAL;
    /* No im_schema_check here: what the validator cannot read, it does not
     * enforce, as before compiling existed. */
    if (compile_node(schema, &s, 0) != 0) {
        im_schema_free(s);
        snprintf(err, errlen, "the schema could not be compiled (out of memory)");
        return IM_ENOMEM;
    }
    rc = im_schema_run(s, v, err, errlen);
    im_schema_free(s);
    return rc;
}

/* With patterns 0, a pattern is only required to be a string: compiling
 * it is left to the caller (im_schema_compile, which compiles it anyway). */
static int check_schema(const cJSON *s, char *err, size_t errlen, int depth, int patterns) {
    const cJSON *t, *e, *p;
    if (depth > 32) {
        snprintf(err, errlen, "schema nests too deeply");
        return IM_ESCHEMA;
    }
    if (!cJSON_IsObject(s))
        return 0;
    t = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (t != NULL) {
        const cJSON *one = cJSON_IsArray(t) ? t->child : t;
        for (; one != NULL; one = cJSON_IsArray(t) ? one->next : NULL) {
            static const char *known[] = {"object", "array", "string", "boolean",
                                          "null",   "number", "integer"};
            int ok = 0;
            for (size_t i = 0; cJSON_IsString(one) && i < IM_ARRAY_SIZE(known); i++)
                ok |= strcmp(one->valuestring, known[i]) == 0;
            if (!ok) {
                snprintf(err, errlen, "schema has an unknown type");
                return IM_ESCHEMA;
            }
            if (!cJSON_IsArray(t))
                break;
        }
    }
    p = cJSON_GetObjectItemCaseSensitive(s, "pattern");
    if (p != NULL) {
        regex_t re;
        if (!cJSON_IsString(p) ||
            (patterns && regcomp(&re, p->valuestring, REG_EXTENDED | REG_NOSUB) != 0)) {
            snprintf(err, errlen, "schema pattern does not compile");
            return IM_ESCHEMA;
        }
        if (patterns)
            regfree(&re);
    }
    p = cJSON_GetObjectItemCaseSensitive(s, "properties");
    cJSON_ArrayForEach(e, p) {
        int rc = check_schema(e, err, errlen, depth + 1, patterns);
        if (rc != 0)
            return rc;
    }
    p = cJSON_GetObjectItemCaseSensitive(s, "items");
    if (p != NULL)
        return check_schema(p, err, errlen, depth + 1, patterns);
    return 0;
}

int im_schema_check(const cJSON *schema, char *err, size_t errlen) {
    return check_schema(schema, err, errlen, 0, 1);
}
