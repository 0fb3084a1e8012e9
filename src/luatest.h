/* luatest.h: `ibkr-mcp --lua-test FILE`, the host for LuaUnit suites. It
 * opens a trusted state with the full standard library (LuaUnit needs io,
 * os and debug; this mode never serves MCP) plus a `host` module that
 * drives a real session on the simulator through the real tool registry
 * and the real MCP dispatcher:
 *   host.reset{IBKR_VAR = "value", ...}  fresh app with those settings
 *                                        (frozen clock unless
 *                                        IBKR_SIM_FREEZE="false")
 *   host.call(name, args) -> {isError=, structuredContent=, text=}
 *   host.rpc(line)        -> the response line (or nil for none)
 *   host.tools()          -> the tools/list array
 *   host.advance(seconds), host.set_price(symbol, price), host.now()
 *   host.fill(order_id)
 * The file's returned number is the exit code. Uses app, mcp, sim. */
#ifndef IM_LUATEST_H
#define IM_LUATEST_H

int im_luatest_run(const char *file);

#endif
