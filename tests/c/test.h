/* test.h: the C unit-test registry and assertion macros. Each TEST(name)
 * registers itself; test_main.c runs all of them (or those named on the
 * command line) and prints "N passed, N failed". Assertions print the
 * expression and both values, then abandon the test (libuv task.h style). */
#ifndef IM_TEST_H
#define IM_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef void (*im_test_fn)(void);
void im_test_register(const char *name, im_test_fn fn);
void im_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

#define TEST(name)                                                          \
    static void test_##name(void);                                          \
    __attribute__((constructor)) static void test_register_##name(void) {   \
        im_test_register(#name, test_##name);                               \
    }                                                                       \
    static void test_##name(void)

#define ASSERT(expr)                                                        \
    do {                                                                    \
        if (!(expr))                                                        \
            im_test_fail(__FILE__, __LINE__, "assertion failed: %s", #expr);\
    } while (0)

#define ASSERT_EQ(a, b)                                                     \
    do {                                                                    \
        long long va_ = (long long)(a), vb_ = (long long)(b);               \
        if (va_ != vb_)                                                     \
            im_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a,  \
                         #b, va_, vb_);                                     \
    } while (0)

#define ASSERT_NEAR(a, b, eps)                                              \
    do {                                                                    \
        double va_ = (double)(a), vb_ = (double)(b);                        \
        if (!(fabs(va_ - vb_) <= (eps)))                                    \
            im_test_fail(__FILE__, __LINE__, "%s ~= %s: %.10g != %.10g",    \
                         #a, #b, va_, vb_);                                 \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                 \
    do {                                                                    \
        const char *sa_ = (a), *sb_ = (b);                                  \
        if (sa_ == NULL || sb_ == NULL || strcmp(sa_, sb_) != 0)            \
            im_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"",  \
                         #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");\
    } while (0)

#define ASSERT_CONTAINS(hay, needle)                                        \
    do {                                                                    \
        const char *sh_ = (hay), *sn_ = (needle);                           \
        if (sh_ == NULL || strstr(sh_, sn_) == NULL)                        \
            im_test_fail(__FILE__, __LINE__, "%s contains %s: \"%s\" lacks \"%s\"", \
                         #hay, #needle, sh_ ? sh_ : "(null)", sn_);         \
    } while (0)

#endif
