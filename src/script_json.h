/* script_json.h: cJSON <-> Lua value conversion with depth and size limits.
 * Lua tables are read raw (no metamethods run). A table with keys 1..n is
 * an array; any other table is an object; an empty table follows the
 * schema hint ("type":"array" makes []), and is {} otherwise. Non-finite
 * numbers, functions, userdata, threads and non-string keys are errors.
 * Uses Lua 5.4, cJSON and schema.h (for the hints). */
#ifndef IM_SCRIPT_JSON_H
#define IM_SCRIPT_JSON_H

#include <cjson/cJSON.h>
#include <lua.h>
#include <stddef.h>

#include "schema.h"

#define IM_SJSON_MAX_DEPTH 64

/* Pushes v as a Lua value (JSON null becomes nil). Returns 0 or IM_ERANGE
 * when nesting exceeds maxdepth (nothing pushed then). May raise a Lua
 * memory error: call only where that is protected. */
int im_sjson_push(lua_State *L, const cJSON *v, int maxdepth);

/* Converts the Lua value at idx to JSON. schema (compiled, may be NULL)
 * only shapes empty tables. On success
 * returns 0 and stores a new tree in *out (free with cJSON_Delete); on
 * failure returns IM_EINVAL / IM_ERANGE / IM_ENOMEM with a sentence in err
 * naming the path (e.g. "$.positions[2].qty is not a finite number"). */
int im_sjson_from_lua(lua_State *L, int idx, const im_schema *schema, int maxdepth, cJSON **out,
                      char *err, size_t errlen);

/* The same, but the tree's keys and strings point into the Lua strings of
 * the value instead of being copied (a reply is built without a malloc per
 * member): use and delete the tree while that value stays on a stack,
 * unmodified. Members added to it later are copied as usual. */
int im_sjson_from_lua_borrow(lua_State *L, int idx, const im_schema *schema, int maxdepth,
                             cJSON **out, char *err, size_t errlen);

#endif
