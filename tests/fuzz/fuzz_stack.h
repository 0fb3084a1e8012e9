/* fuzz_stack.h: what the fuzz targets share: a temporary state folder
 * removed at exit, and the whole simulator-backed stack (app.h) built once
 * from the source tree's lua/tools and policies/ (IM_FUZZ_SOURCE_DIR, a
 * compile definition) with trading enabled, a frozen simulator clock and
 * logging off. Header-only: each target is one translation unit. */
#ifndef IM_FUZZ_STACK_H
#define IM_FUZZ_STACK_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "app.h"

#ifndef IM_FUZZ_SOURCE_DIR
#error "IM_FUZZ_SOURCE_DIR must name the source tree"
#endif

static char fz_tmp[256];

static int fz_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void fz_tmp_cleanup(void) {
    if (fz_tmp[0] != '\0')
        nftw(fz_tmp, fz_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates the temporary folder (once) and returns its path; aborts when
 * it cannot. */
static inline const char *fz_tmpdir(void) {
    const char *t = getenv("TMPDIR");
    if (fz_tmp[0] != '\0')
        return fz_tmp;
    snprintf(fz_tmp, sizeof fz_tmp, "%s/ibkr-mcp-fuzz-XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(fz_tmp) == NULL) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fz_tmp_cleanup);
    return fz_tmp;
}

static inline const char *fz_getenv(const char *name) {
    if (strcmp(name, "IBKR_TRADING_ENABLED") == 0 || strcmp(name, "IBKR_SIM_FREEZE") == 0)
        return "true";
    if (strcmp(name, "IBKR_TOOLS_DIR") == 0)
        return IM_FUZZ_SOURCE_DIR "/lua/tools";
    if (strcmp(name, "IBKR_POLICY_DIR") == 0)
        return IM_FUZZ_SOURCE_DIR "/policies";
    if (strcmp(name, "IBKR_STATE_DIR") == 0)
        return fz_tmpdir();
    if (strcmp(name, "IBKR_LOG_LEVEL") == 0)
        return "off";
    return NULL;
}

/* Builds the stack on loop into a; aborts on failure. */
static inline void fz_stack_init(uv_loop_t *loop, im_app *a) {
    char err[512];
    uv_loop_init(loop);
    if (im_app_init(a, loop, fz_getenv, 1, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz: could not build the stack: %s\n", err);
        abort();
    }
}

#endif
