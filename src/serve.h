/* serve.h: `ibkr-mcp serve`, MCP over stdio until stdin ends or SIGTERM.
 * Uses app, rpc and mcp. */
#ifndef IM_SERVE_H
#define IM_SERVE_H

/* Runs the server; returns the process exit code. */
int im_serve_run(void);

#endif
