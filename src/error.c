/* error.c: printable forms of the codes in error.h. */
#include "error.h"

const char *im_strerror(int code) {
    switch (code) {
    case IM_OK: return "success";
#define IM__ERR_STR(name, val, msg) case IM_##name: return msg;
    IM_ERRNO_MAP(IM__ERR_STR)
#undef IM__ERR_STR
    default: return "unknown error";
    }
}

const char *im_err_name(int code) {
    switch (code) {
    case IM_OK: return "OK";
#define IM__ERR_NAME(name, val, msg) case IM_##name: return #name;
    IM_ERRNO_MAP(IM__ERR_NAME)
#undef IM__ERR_NAME
    default: return "EUNKNOWN";
    }
}
