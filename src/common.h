/* common.h: small macros shared by every module (array size, container_of,
 * unused markers). No globals, no functions. */
#ifndef IM_COMMON_H
#define IM_COMMON_H

#include <stddef.h>

#define IM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define IM_UNUSED(x) ((void)(x))

#ifndef container_of
#define container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

#if defined(__GNUC__)
#define IM_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define IM_NODISCARD __attribute__((warn_unused_result))
#else
#define IM_PRINTF(fmt, args)
#define IM_NODISCARD
#endif

#endif
