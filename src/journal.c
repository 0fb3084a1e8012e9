/* journal.c: placeholder until the journal lands; says so instead of pretending. */
#include "journal.h"

#include <stdio.h>

int im_journal_resume_cmd(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "ibkr-mcp: 'resume' is not available in this version yet: the kill switch "
                    "lasts for the life of the server process\n");
    return 2;
}
