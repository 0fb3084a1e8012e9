/* repl.h: the operator's Lua console (not built yet: see the REPL issue). */
#ifndef IM_REPL_H
#define IM_REPL_H

/* `ibkr-mcp repl`: a console on a fresh session. Returns the exit code. */
int im_repl_run(void);
/* `ibkr-mcp attach [PATH]`: a console inside a running server. */
int im_repl_attach(const char *path);

#endif
