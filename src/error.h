/* error.h: the project's one table of error codes. Every function that can
 * fail returns 0 or one of these negative codes (libuv's convention);
 * im_strerror() and im_err_name() make any code printable. */
#ifndef IM_ERROR_H
#define IM_ERROR_H

#define IM_ERRNO_MAP(XX)                                                    \
    XX(EINVAL, -22, "invalid argument")                                     \
    XX(ENOMEM, -12, "out of memory")                                        \
    XX(EIO, -5, "input/output error")                                       \
    XX(EAGAIN, -11, "try again another way")                               \
    XX(ENOENT, -2, "not found")                                             \
    XX(EEXIST, -17, "already exists")                                       \
    XX(ERANGE, -34, "value out of range")                                   \
    XX(ETIMEDOUT, -110, "operation timed out")                              \
    XX(ECANCELED, -125, "operation cancelled")                              \
    XX(ENOTCONN, -107, "broker not connected")                              \
    XX(ETOOBIG, -1000, "input too large")                                   \
    XX(EBUDGET, -1001, "script exceeded its budget")                        \
    XX(ESCRIPT, -1002, "script error")                                      \
    XX(ESYNTAX, -1003, "script syntax error")                               \
    XX(ESCHEMA, -1004, "value does not match its schema")                   \
    XX(EPARSE, -1005, "parse error")                                        \
    XX(ECONFIG, -1006, "invalid configuration")                             \
    XX(ESYMBOL, -1007, "unknown symbol")                                    \
    XX(ETOKEN_UNKNOWN, -1008, "unknown or expired confirmation token")      \
    XX(ETOKEN_USED, -1009, "confirmation token already used")               \
    XX(ERISK, -1010, "rejected by risk checks")                             \
    XX(EDISABLED, -1011, "trading is disabled")                             \
    XX(EHALTED, -1012, "trading is halted")                                 \
    XX(EREJECTED, -1013, "rejected by the broker")                          \
    XX(EORDER, -1014, "unknown order")                                      \
    XX(EBUSY, -1015, "resource busy")                                       \
    XX(ESTATE, -1016, "operation not allowed in this state")                \
    XX(EINPUT, -1017, "waiting for a human's answer")

enum {
#define IM__ERR_ENUM(name, val, msg) IM_##name = (val),
    IM_ERRNO_MAP(IM__ERR_ENUM)
#undef IM__ERR_ENUM
    IM_OK = 0,
};

/* Returns a static sentence for code (never NULL). */
const char *im_strerror(int code);
/* Returns the static symbolic name of code, e.g. "ETIMEDOUT" (never NULL). */
const char *im_err_name(int code);

#endif
