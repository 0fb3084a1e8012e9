/* default_options.c: compiled into every executable of an IM_SANITIZE build
 * (see the top-level CMakeLists.txt). The sanitizer runtimes call these
 * hooks at start-up, so the options apply even to a process started with a
 * scrubbed environment (the Node end-to-end tests spawn the server with
 * PATH and HOME only). ASAN_OPTIONS and UBSAN_OPTIONS, when set, are parsed
 * after these and win. The strings come from CMake (IM_ASAN_OPTIONS,
 * IM_UBSAN_OPTIONS) so ctest's environment and the binaries agree. */
#ifndef IM_ASAN_OPTIONS
#define IM_ASAN_OPTIONS "detect_leaks=1:halt_on_error=1:exitcode=23"
#endif
#ifndef IM_UBSAN_OPTIONS
#define IM_UBSAN_OPTIONS "print_stacktrace=1:halt_on_error=1:exitcode=23"
#endif

#define IM_SANITIZER_HOOK __attribute__((used, visibility("default")))

IM_SANITIZER_HOOK const char *__asan_default_options(void);
IM_SANITIZER_HOOK const char *__ubsan_default_options(void);

const char *__asan_default_options(void) { return IM_ASAN_OPTIONS; }
const char *__ubsan_default_options(void) { return IM_UBSAN_OPTIONS; }
