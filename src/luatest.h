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
 * and a `policy` module that runs policy files through the real policy
 * engine (policy.h: sandboxed states, read-only ctx, budgets):
 *   policy.run_file(path, order, ctx [, opts])
 *                         -> {decision = "allow"|"deny"|"require_approval"
 *                             |"error", code=, reason=, kind=} or nil, err
 *   policy.run_dir(dir, order, ctx [, opts])
 *                         -> {approved=, approvals=, reasons={{code=, text=}}}
 *                            or nil, err
 *   policy.check_dir(dir) -> {{name=, description=, file=, sha=, params=}}
 *                            or nil, err
 *   policy.hash(dir)      -> hex of the policy-set hash, or nil, err
 *   policy.default_dir()  -> the installed or source-tree policies/ folder
 *   policy.time(iso)      -> epoch seconds ("2025-06-10T09:30:00-04:00")
 * order and ctx are plain tables with the fields a policy sees (ctx.now,
 * stage, quote, position, account (false for none), open_orders, today,
 * limits); missing fields take the demo's values (BUY 50 NVDA MKT on
 * Tuesday 2025-06-10 10:00 New York, a $100,000 cash account); there is
 * no quote unless ctx.quote gives one. opts:
 * {instr_budget=, mem_limit=, deadline_ms=}.
 * The file's returned number is the exit code. Uses app, mcp, sim,
 * policy. */
#ifndef IM_LUATEST_H
#define IM_LUATEST_H

int im_luatest_run(const char *file);

#endif
