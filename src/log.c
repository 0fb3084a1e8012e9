/* log.c: stderr logger. One fprintf per line so concurrent writers (a test
 * harness merging streams) see whole lines. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

static int log_level = IM_LOG_INFO;

void im_log_set_level(int level) { log_level = level; }
int im_log_get_level(void) { return log_level; }

int im_log_parse_level(const char *s, int *out) {
    static const struct { const char *name; int level; } names[] = {
        {"debug", IM_LOG_DEBUG}, {"info", IM_LOG_INFO}, {"warn", IM_LOG_WARN},
        {"warning", IM_LOG_WARN}, {"error", IM_LOG_ERROR}, {"off", IM_LOG_OFF},
    };
    for (size_t i = 0; i < IM_ARRAY_SIZE(names); i++) {
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return IM_EINVAL;
}

void im_log(int level, const char *fmt, ...) {
    static const char *tags[] = {"", "debug", "info", "warn", "error"};
    char line[2048];
    va_list ap;
    int n;

    if (level < log_level || level >= IM_LOG_OFF)
        return;
    n = snprintf(line, sizeof line, "ibkr-mcp: %s: ", tags[level]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
