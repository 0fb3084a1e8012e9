/* schema.h: a JSON Schema validator for the subset the tool files use:
 * type (one name or a list, with "integer" meaning a whole number),
 * properties, required, additionalProperties (boolean), items, enum, const,
 * minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength,
 * maxLength, pattern (POSIX extended regular expressions, which agree with
 * ECMA-262 for the anchored character-class patterns tools use), minItems,
 * maxItems. Keywords it does not know are ignored. Tool arguments are
 * checked against inputSchema before any Lua runs, and results against
 * outputSchema before they are sent.
 *
 * A schema is compiled once (im_schema_compile): every keyword is looked up
 * when the tool loads, properties are sorted for binary search and patterns
 * are compiled, so checking a value does no keyword lookup, no regcomp and
 * no printf unless it fails. Looking keywords up by name on every call was
 * the largest cost of a get_quote reply. Uses cJSON. */
#ifndef IM_SCHEMA_H
#define IM_SCHEMA_H

#include <cjson/cJSON.h>
#include <stddef.h>

typedef struct im_schema im_schema;

/* Compiles schema, which must outlive the result (enum and const values
 * are read from it). Refuses, with IM_ESCHEMA and a sentence, what
 * im_schema_check refuses. Returns 0 and *out (free with im_schema_free),
 * IM_ESCHEMA or IM_ENOMEM. */
int im_schema_compile(const cJSON *schema, im_schema **out, char *err, size_t errlen);
void im_schema_free(im_schema *s);

/* Returns 0 when v conforms, else IM_ESCHEMA with a sentence in err naming
 * the first offending place, e.g. "quantity must be at least 1 (got 0)". */
int im_schema_run(const im_schema *s, const cJSON *v, char *err, size_t errlen);
/* Required properties whose schema's type list admits null and that v
 * leaves out are added as null, after v's members in the order required
 * lists them, in v and in the objects below it through properties, down
 * to IM_SCHEMA_FILL_DEPTH (a Lua table cannot hold nil). */
#define IM_SCHEMA_FILL_DEPTH 8
void im_schema_fill_nulls(const im_schema *s, cJSON *v);

/* Hints for building a value (script_json.c); s may be NULL. The schema of
 * property key (properties[key], else an object-valued
 * additionalProperties), of element i (1-based; items, or items[i-1] in
 * the tuple form), and whether an empty value is an array. */
const im_schema *im_schema_property(const im_schema *s, const char *key, size_t klen);
const im_schema *im_schema_item(const im_schema *s, long long i);
int im_schema_wants_array(const im_schema *s);
/* Whether s's own pattern is matched by the table walk rather than regexec
 * (for tests: both must agree). */
int im_schema_pattern_is_fast(const im_schema *s);

/* For a writer that checks a value as it builds it (im_sjson_write), without
 * a tree: the "simple" schemas are those whose every node checks no more
 * than the type, const and enum, the properties, required and
 * additionalProperties: false of objects and the items of arrays - no
 * bounds, lengths, pattern or item counts. Such a writer must give up (and leave the value
 * to im_schema_run) on anything else, and on a missing required member
 * that im_schema_fill_nulls would not fill. s may be NULL (no check). */
int im_schema_simple(const im_schema *s);       /* the whole tree, at load */
int im_schema_node_simple(const im_schema *s);  /* s itself, as the writer goes */
/* The kinds of JSON value, as one bit each, for im_schema_type_ok. */
enum {
    IM_SCHEMA_OBJECT = 1 << 0,
    IM_SCHEMA_ARRAY = 1 << 1,
    IM_SCHEMA_STRING = 1 << 2,
    IM_SCHEMA_BOOLEAN = 1 << 3,
    IM_SCHEMA_NULL = 1 << 4,
    IM_SCHEMA_NUMBER = 1 << 5,    /* a finite number */
    IM_SCHEMA_INTEGER = 1 << 6,   /* a finite whole number, with NUMBER */
};
/* Whether s checks nothing (NULL, true, not an object). */
int im_schema_is_any(const im_schema *s);
/* Whether a value of these kinds passes s's type keyword. */
int im_schema_type_ok(const im_schema *s, unsigned kinds);
/* The index of property key, or -1; *next makes keys that come in sorted
 * order cheap (start it at 0). */
int im_schema_prop_index(const im_schema *s, const char *key, size_t klen, int *next);
const im_schema *im_schema_prop_at(const im_schema *s, int i);
/* Property i's key as a JSON writer puts it after a previous member:
 * ,"key": (len bytes, NUL-terminated, owned by s); skip the comma for the
 * first member. NULL when the key would need escaping. */
const char *im_schema_prop_quoted(const im_schema *s, int i, size_t *len);
/* Whether an object with properties seen (bit i for property i) has every
 * required member; 0 when that cannot be told from the bits (a required
 * name that is not among the first 64 properties). */
int im_schema_required_met(const im_schema *s, unsigned long long seen);
/* The k-th required name of s, in the schema's order, or NULL past the
 * last: *prop its property's index (or -1), *fill whether
 * im_schema_fill_nulls adds it as null when it is missing. */
const char *im_schema_required_at(const im_schema *s, size_t k, int *prop, int *fill);
/* Whether a value passes s's const and enum: 1 yes (or s has neither), 0
 * no, -1 cannot say without a tree (str NULL: the value is not a string). A
 * string of len bytes matches a string member with the same bytes, as
 * cJSON_Compare has it. */
int im_schema_enum_ok(const im_schema *s, const char *str, size_t len);
/* additionalProperties: false */
int im_schema_closed(const im_schema *s);
/* The schema every element is checked against (items), or NULL. */
const im_schema *im_schema_items(const im_schema *s);

/* One-off forms: compile, run, free. */
int im_schema_validate(const cJSON *schema, const cJSON *v, char *err, size_t errlen);
/* Returns 0 when schema uses only what the validator understands correctly
 * (known types, compilable patterns), else IM_ESCHEMA + err. */
int im_schema_check(const cJSON *schema, char *err, size_t errlen);

#endif
