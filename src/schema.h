/* schema.h: a JSON Schema validator for the subset the tool files use:
 * type (one name or a list, with "integer" meaning a whole number),
 * properties, required, additionalProperties (boolean), items, enum, const,
 * minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength,
 * maxLength, pattern (POSIX extended regular expressions, which agree with
 * ECMA-262 for the anchored character-class patterns tools use), minItems,
 * maxItems. Keywords it does not know are ignored. Tool arguments are
 * checked against inputSchema before any Lua runs, and results against
 * outputSchema before they are sent. Uses cJSON. */
#ifndef IM_SCHEMA_H
#define IM_SCHEMA_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Returns 0 when v conforms to schema, else IM_ESCHEMA with a sentence in
 * err naming the first offending place, e.g.
 * "quantity must be at least 1 (got 0)". */
int im_schema_validate(const cJSON *schema, const cJSON *v, char *err, size_t errlen);
/* Returns 0 when schema uses only what im_schema_validate understands
 * correctly (known types, compilable patterns), else IM_ESCHEMA + err. */
int im_schema_check(const cJSON *schema, char *err, size_t errlen);

#endif
