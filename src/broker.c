/* broker.c: text forms of the broker enums, shared by every backend and
 * by the MCP surface. */
#include "broker.h"

#include <string.h>

#include "common.h"
#include "error.h"

static const char *side_names[] = {NULL, "BUY", "SELL"};
static const char *type_names[] = {NULL, "MKT", "LMT", "STP", "STP LMT"};
static const char *tif_names[] = {NULL, "DAY", "GTC", "IOC"};
static const char *status_names[] = {NULL,    "PENDING",   "SUBMITTED", "PARTIALLY_FILLED",
                                     "FILLED", "CANCELLED", "REJECTED"};

static const char *name_of(const char **names, size_t n, int v) {
    return v > 0 && (size_t)v < n ? names[v] : "?";
}

static int parse_name(const char **names, size_t n, const char *s, int *out) {
    for (size_t i = 1; s != NULL && i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    return IM_EINVAL;
}

const char *im_side_str(im_side s) { return name_of(side_names, IM_ARRAY_SIZE(side_names), s); }
const char *im_order_type_str(im_order_type t) {
    return name_of(type_names, IM_ARRAY_SIZE(type_names), t);
}
const char *im_tif_str(im_tif t) { return name_of(tif_names, IM_ARRAY_SIZE(tif_names), t); }
const char *im_order_status_str(im_order_status s) {
    return name_of(status_names, IM_ARRAY_SIZE(status_names), s);
}

int im_side_parse(const char *s, im_side *out) {
    int v, rc = parse_name(side_names, IM_ARRAY_SIZE(side_names), s, &v);
    if (rc == 0)
        *out = (im_side)v;
    return rc;
}

int im_order_type_parse(const char *s, im_order_type *out) {
    int v, rc = parse_name(type_names, IM_ARRAY_SIZE(type_names), s, &v);
    if (rc == 0)
        *out = (im_order_type)v;
    return rc;
}

int im_tif_parse(const char *s, im_tif *out) {
    int v, rc = parse_name(tif_names, IM_ARRAY_SIZE(tif_names), s, &v);
    if (rc == 0)
        *out = (im_tif)v;
    return rc;
}

int im_order_status_terminal(im_order_status s) {
    return s == IM_OS_FILLED || s == IM_OS_CANCELLED || s == IM_OS_REJECTED;
}

int im_account_is_paper(const char *account_id) {
    return account_id != NULL &&
           (strncmp(account_id, "DU", 2) == 0 || strncmp(account_id, "DF", 2) == 0);
}
