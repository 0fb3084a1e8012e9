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

struct im_jw;

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

/* The fast form of im_sjson_from_lua_borrow + im_schema_fill_nulls +
 * im_schema_run + im_jw_cjson, for tool results: appends the JSON text of
 * the Lua value at idx to w, checking it against schema (compiled, not
 * NULL, im_schema_simple) as it goes, with no tree. Returns 0 when it wrote
 * the value, which is then byte for byte what that sequence writes. Returns
 * IM_EAGAIN when the value needs that sequence instead: anything it would
 * refuse (its message is then the sequence's to give), a required member
 * to fill with null, a schema it does not check. w then holds a partial
 * text: reset it. Never raises; runs no Lua code. */
int im_sjson_write(struct im_jw *w, lua_State *L, int idx, const im_schema *schema, int maxdepth);

#endif
