/* demo.h: `ibkr-mcp demo`, the offline walk-through. It drives the real
 * MCP dispatcher with JSON-RPC lines, on a fresh simulated account with a
 * frozen clock and the default limits, and prints each step's result as
 * pretty JSON, so it shows the same flow every time. Uses app and mcp. */
#ifndef IM_DEMO_H
#define IM_DEMO_H

/* Returns the process exit code (0 when every step behaved as expected). */
int im_demo_run(void);

#endif
