/* log.h: levelled logging to stderr only. In `serve`, stdout carries
 * JSON-RPC and nothing else, so no log line may ever reach fd 1. */
#ifndef IM_LOG_H
#define IM_LOG_H

#include "common.h"

enum im_log_level {
    IM_LOG_DEBUG = 1,
    IM_LOG_INFO,
    IM_LOG_WARN,
    IM_LOG_ERROR,
    IM_LOG_OFF,
};

/* Sets the minimum level written. */
void im_log_set_level(int level);
int im_log_get_level(void);
/* Parses "debug", "info", "warn", "error", "off"; returns 0 or IM_EINVAL. */
int im_log_parse_level(const char *s, int *out);
/* Writes one line "ibkr-mcp: LEVEL: message" to stderr. */
void im_log(int level, const char *fmt, ...) IM_PRINTF(2, 3);

#define im_debug(...) im_log(IM_LOG_DEBUG, __VA_ARGS__)
#define im_info(...) im_log(IM_LOG_INFO, __VA_ARGS__)
#define im_warn(...) im_log(IM_LOG_WARN, __VA_ARGS__)
#define im_error(...) im_log(IM_LOG_ERROR, __VA_ARGS__)

#endif
