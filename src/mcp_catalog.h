/* mcp_catalog.h: the parts of the MCP surface that are not tools and not
 * wire: the resource list and its URI -> read-tool map, the resource
 * template, the prompts, the RFC 5424 log levels, and how a session event
 * becomes the data of a notifications/message. Pure functions over cJSON;
 * mcp.c runs the tools and writes the messages. Uses session.h and cJSON. */
#ifndef IM_MCP_CATALOG_H
#define IM_MCP_CATALOG_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "session.h"

/* ---- log levels (RFC 5424 order; higher is more severe) ---- */
enum {
    IM_MCP_LOG_OFF = -1,   /* no notifications/message at all */
    IM_MCP_LOG_DEBUG = 0,
    IM_MCP_LOG_INFO,
    IM_MCP_LOG_NOTICE,
    IM_MCP_LOG_WARNING,
    IM_MCP_LOG_ERROR,
    IM_MCP_LOG_CRITICAL,
    IM_MCP_LOG_ALERT,
    IM_MCP_LOG_EMERGENCY,
};
/* The level named s, or IM_MCP_LOG_OFF for a name that is not one. */
int im_mcp_log_level_parse(const char *s);
const char *im_mcp_log_level_name(int level);

/* The data of the notifications/message for a session event, and its level
 * in *level. NULL for an event that is not reported. */
cJSON *im_mcp_event_data(const im_session_event *ev, int *level);

/* ---- resources ---- */
typedef enum im_mcp_view {
    IM_MCP_VIEW_WHOLE = 0,   /* the tool's structuredContent as it is */
    IM_MCP_VIEW_LIMITS,      /* get_status narrowed to limits and policies */
} im_mcp_view;

/* The resources/list array and the resources/templates/list array (new). */
cJSON *im_mcp_resources(void);
cJSON *im_mcp_resource_templates(void);
/* Maps a resource URI to the read tool that produces it: *tool, *view and
 * *args (a new object or NULL; the caller frees it). Returns 0, or -1 when
 * no resource has that URI. */
int im_mcp_resource_lookup(const char *uri, const char **tool, im_mcp_view *view,
                           cJSON **args);
/* The resource's JSON from the tool's structuredContent (new). */
cJSON *im_mcp_resource_view(im_mcp_view view, const cJSON *structured);

/* ---- prompts ---- */
/* The prompts/list array (new). */
cJSON *im_mcp_prompts(void);
/* The prompts/get result for name with arguments args (an object of
 * strings or NULL). NULL, with a sentence in err, for an unknown prompt or
 * a missing or invalid argument (the caller answers -32602). */
cJSON *im_mcp_prompt_get(const char *name, const cJSON *args, char *err, size_t errlen);

#endif
