/* repl.c: placeholder until the REPL lands; says so instead of pretending. */
#include "repl.h"

#include <stdio.h>

int im_repl_run(void) {
    fprintf(stderr, "ibkr-mcp: 'repl' is not available in this version yet\n");
    return 2;
}

int im_repl_attach(const char *path) {
    (void)path;
    fprintf(stderr, "ibkr-mcp: 'attach' is not available in this version yet\n");
    return 2;
}
