/* journal.h: the durable journal (not built yet: see the journal issue). */
#ifndef IM_JOURNAL_H
#define IM_JOURNAL_H

/* `ibkr-mcp resume [--reason R]`: the operator releases the kill switch.
 * argv holds the arguments after "resume". Returns the exit code. */
int im_journal_resume_cmd(int argc, char **argv);

#endif
