/* schema.c: the JSON Schema subset of schema.h. Recursive over the value;
 * depth is bounded by the JSON parser's own nesting limit. */
#include "schema.h"

#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "error.h"
#include "text.h"

#define PATH_MAX_LEN 256

static int type_matches(const char *t, const cJSON *v) {
    if (strcmp(t, "object") == 0)
        return cJSON_IsObject(v);
    if (strcmp(t, "array") == 0)
        return cJSON_IsArray(v);
    if (strcmp(t, "string") == 0)
        return cJSON_IsString(v);
    if (strcmp(t, "boolean") == 0)
        return cJSON_IsBool(v);
    if (strcmp(t, "null") == 0)
        return cJSON_IsNull(v);
    if (strcmp(t, "number") == 0)
        return cJSON_IsNumber(v) && isfinite(v->valuedouble);
    if (strcmp(t, "integer") == 0)
        return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
               v->valuedouble == floor(v->valuedouble);
    return 0;
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

/* Compiled patterns, by their text. Compiling on every call was the
 * largest single cost of a get_quote (about 16% in a profile, make
 * bench); the tools use a handful of patterns, so a small table serves.
 * Entries live for the process (reachable from this table). */
#define PATTERN_CACHE 32
static struct {
    char *text;
    regex_t re;
} pattern_cache[PATTERN_CACHE];
static size_t pattern_count;

/* Returns the compiled pattern, or NULL when it does not compile (or the
 * table is full and it cannot be compiled into a scratch slot). */
static const regex_t *pattern_get(const char *text, regex_t *scratch, int *scratch_used) {
    *scratch_used = 0;
    for (size_t i = 0; i < pattern_count; i++)
        if (strcmp(pattern_cache[i].text, text) == 0)
            return &pattern_cache[i].re;
    if (pattern_count < PATTERN_CACHE) {
        char *copy = strdup(text);
        if (copy != NULL &&
            regcomp(&pattern_cache[pattern_count].re, text, REG_EXTENDED | REG_NOSUB) == 0) {
            pattern_cache[pattern_count].text = copy;
            return &pattern_cache[pattern_count++].re;
        }
        free(copy);
        return NULL;
    }
    if (regcomp(scratch, text, REG_EXTENDED | REG_NOSUB) != 0)
        return NULL;
    *scratch_used = 1;
    return scratch;
}

static int fail(char *err, size_t errlen, const char *fmt, const char *path, const char *detail) {
    snprintf(err, errlen, fmt, path_or(path), detail);
    return IM_ESCHEMA;
}

static int validate(const cJSON *s, const cJSON *v, const char *path, char *err, size_t errlen);

static int check_type(const cJSON *s, const cJSON *v, const char *path, char *err, size_t errlen) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
    char want[128] = "";

    if (t == NULL)
        return 0;
    if (cJSON_IsString(t)) {
        if (type_matches(t->valuestring, v))
            return 0;
        snprintf(want, sizeof want, "%s", t->valuestring);
    } else if (cJSON_IsArray(t)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, t) {
            if (cJSON_IsString(e) && type_matches(e->valuestring, v))
                return 0;
            if (cJSON_IsString(e)) {
                size_t l = strlen(want);
                snprintf(want + l, sizeof want - l, "%s%s", l ? " or " : "", e->valuestring);
            }
        }
    } else {
        return 0;
    }
    snprintf(err, errlen, "%s must be %s %s (got %s)", path_or(path),
             (want[0] == 'a' || want[0] == 'i' || want[0] == 'o') ? "an" : "a", want, kind_of(v));
    return IM_ESCHEMA;
}

static int check_number(const cJSON *s, const cJSON *v, const char *path, char *err,
                        size_t errlen) {
    static const struct { const char *kw; const char *sentence; int strict; int upper; } rules[] = {
        {"minimum", "at least", 0, 0},
        {"exclusiveMinimum", "greater than", 1, 0},
        {"maximum", "at most", 0, 1},
        {"exclusiveMaximum", "less than", 1, 1},
    };
    double x = v->valuedouble;
    if (!isfinite(x))
        return fail(err, errlen, "%s must be a finite number%s", path, "");
    for (size_t i = 0; i < IM_ARRAY_SIZE(rules); i++) {
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(s, rules[i].kw);
        if (!cJSON_IsNumber(b))
            continue;
        double lim = b->valuedouble;
        int bad = rules[i].upper ? (rules[i].strict ? !(x < lim) : !(x <= lim))
                                 : (rules[i].strict ? !(x > lim) : !(x >= lim));
        if (bad) {
            snprintf(err, errlen, "%s must be %s %.15g (got %.15g)", path_or(path),
                     rules[i].sentence, lim, x);
            return IM_ESCHEMA;
        }
    }
    return 0;
}

static int check_string(const cJSON *s, const cJSON *v, const char *path, char *err,
                        size_t errlen) {
    const char *str = v->valuestring;
    size_t chars = 0;
    const cJSON *b;

    /* Length in code points, as JSON Schema counts it. */
    for (const unsigned char *p = (const unsigned char *)str; *p; p++)
        if ((*p & 0xC0) != 0x80)
            chars++;
    b = cJSON_GetObjectItemCaseSensitive(s, "minLength");
    if (cJSON_IsNumber(b) && (double)chars < b->valuedouble) {
        snprintf(err, errlen, "%s must be at least %.0f characters long", path_or(path),
                 b->valuedouble);
        return IM_ESCHEMA;
    }
    b = cJSON_GetObjectItemCaseSensitive(s, "maxLength");
    if (cJSON_IsNumber(b) && (double)chars > b->valuedouble) {
        snprintf(err, errlen, "%s must be at most %.0f characters long", path_or(path),
                 b->valuedouble);
        return IM_ESCHEMA;
    }
    b = cJSON_GetObjectItemCaseSensitive(s, "pattern");
    if (cJSON_IsString(b)) {
        regex_t scratch;
        int m, used;
        const regex_t *re = pattern_get(b->valuestring, &scratch, &used);
        if (re == NULL) {
            snprintf(err, errlen, "schema pattern for %s does not compile", path_or(path));
            return IM_ESCHEMA;
        }
        m = regexec(re, str, 0, NULL, 0);
        if (used)
            regfree(&scratch);
        if (m != 0) {
            char shown[64];
            im_text_copy(shown, sizeof shown, str);
            snprintf(err, errlen, "%s must match %s (got \"%s\")", path_or(path), b->valuestring,
                     shown);
            return IM_ESCHEMA;
        }
    }
    return 0;
}

static int check_enum(const cJSON *s, const cJSON *v, const char *path, char *err,
                      size_t errlen) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(s, "enum"), *c;
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(s, "const");
    if (k != NULL && !cJSON_Compare(k, v, 1)) {
        char *want = cJSON_PrintUnformatted(k);
        snprintf(err, errlen, "%s must be %s", path_or(path), want ? want : "a constant");
        cJSON_free(want);
        return IM_ESCHEMA;
    }
    if (!cJSON_IsArray(e))
        return 0;
    cJSON_ArrayForEach(c, e) {
        if (cJSON_Compare(c, v, 1))
            return 0;
    }
    char list[200] = "";
    cJSON_ArrayForEach(c, e) {
        size_t l = strlen(list);
        char *t = cJSON_PrintUnformatted(c);
        snprintf(list + l, sizeof list - l, "%s%s", l ? ", " : "", t ? t : "?");
        cJSON_free(t);
    }
    snprintf(err, errlen, "%s must be one of %s", path_or(path), list);
    return IM_ESCHEMA;
}

static int check_object(const cJSON *s, const cJSON *v, const char *path, char *err,
                        size_t errlen) {
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    const cJSON *e;
    char sub[PATH_MAX_LEN];

    if (cJSON_IsArray(req)) {
        cJSON_ArrayForEach(e, req) {
            if (cJSON_IsString(e) && cJSON_GetObjectItemCaseSensitive(v, e->valuestring) == NULL) {
                if (*path)
                    snprintf(err, errlen, "%s.%s is required", path, e->valuestring);
                else
                    snprintf(err, errlen, "%s is required", e->valuestring);
                return IM_ESCHEMA;
            }
        }
    }
    cJSON_ArrayForEach(e, v) {
        const cJSON *ps = cJSON_IsObject(props) ? cJSON_GetObjectItemCaseSensitive(props, e->string)
                                                : NULL;
        if (*path)
            snprintf(sub, sizeof sub, "%s.%s", path, e->string);
        else
            snprintf(sub, sizeof sub, "%s", e->string);
        if (ps != NULL) {
            int rc = validate(ps, e, sub, err, errlen);
            if (rc != 0)
                return rc;
        } else if (cJSON_IsFalse(addl)) {
            char names[160] = "";
            const cJSON *p;
            cJSON_ArrayForEach(p, props) {
                size_t l = strlen(names);
                snprintf(names + l, sizeof names - l, "%s%s", l ? ", " : "", p->string);
            }
            snprintf(err, errlen, "unexpected argument %s (allowed: %s)", sub,
                     names[0] ? names : "none");
            return IM_ESCHEMA;
        }
    }
    return 0;
}

static int check_array(const cJSON *s, const cJSON *v, const char *path, char *err,
                       size_t errlen) {
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    const cJSON *b, *e;
    int n = cJSON_GetArraySize(v), i = 0;
    char sub[PATH_MAX_LEN];

    b = cJSON_GetObjectItemCaseSensitive(s, "minItems");
    if (cJSON_IsNumber(b) && n < b->valuedouble)
        return fail(err, errlen, "%s has too few items%s", path, "");
    b = cJSON_GetObjectItemCaseSensitive(s, "maxItems");
    if (cJSON_IsNumber(b) && n > b->valuedouble)
        return fail(err, errlen, "%s has too many items%s", path, "");
    if (!cJSON_IsObject(items))
        return 0;
    cJSON_ArrayForEach(e, v) {
        snprintf(sub, sizeof sub, "%s[%d]", *path ? path : "$", i++);
        int rc = validate(items, e, sub, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int validate(const cJSON *s, const cJSON *v, const char *path, char *err, size_t errlen) {
    int rc;
    if (cJSON_IsTrue(s) || !cJSON_IsObject(s))
        return 0;
    if ((rc = check_type(s, v, path, err, errlen)) != 0)
        return rc;
    if ((rc = check_enum(s, v, path, err, errlen)) != 0)
        return rc;
    if (cJSON_IsNumber(v))
        return check_number(s, v, path, err, errlen);
    if (cJSON_IsString(v))
        return check_string(s, v, path, err, errlen);
    if (cJSON_IsObject(v))
        return check_object(s, v, path, err, errlen);
    if (cJSON_IsArray(v))
        return check_array(s, v, path, err, errlen);
    return 0;
}

int im_schema_validate(const cJSON *schema, const cJSON *v, char *err, size_t errlen) {
    if (schema == NULL || v == NULL)
        return IM_EINVAL;
    return validate(schema, v, "", err, errlen);
}

static int check_schema(const cJSON *s, char *err, size_t errlen, int depth) {
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
        if (!cJSON_IsString(p) || regcomp(&re, p->valuestring, REG_EXTENDED | REG_NOSUB) != 0) {
            snprintf(err, errlen, "schema pattern does not compile");
            return IM_ESCHEMA;
        }
        regfree(&re);
    }
    p = cJSON_GetObjectItemCaseSensitive(s, "properties");
    cJSON_ArrayForEach(e, p) {
        int rc = check_schema(e, err, errlen, depth + 1);
        if (rc != 0)
            return rc;
    }
    p = cJSON_GetObjectItemCaseSensitive(s, "items");
    if (p != NULL)
        return check_schema(p, err, errlen, depth + 1);
    return 0;
}

int im_schema_check(const cJSON *schema, char *err, size_t errlen) {
    return check_schema(schema, err, errlen, 0);
}
