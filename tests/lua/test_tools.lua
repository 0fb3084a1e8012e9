-- LuaUnit suite for the tools, run inside the host (`ibkr-mcp --lua-test`)
-- against the real simulator, session, risk checks and tool registry, with
-- a frozen simulator clock moved by hand (host.advance).
local lu = require("luaunit")

local function env(extra)
  local t = { IBKR_TRADING_ENABLED = "true" }
  for k, v in pairs(extra or {}) do t[k] = v end
  assert(host.reset(t))
end

local function ok(name, args)
  local r = host.call(name, args)
  lu.assertNil(r.error, name .. " gave a protocol error")
  lu.assertFalse(r.isError, name .. ": " .. tostring(r.text))
  lu.assertNotNil(r.structuredContent, name)
  return r.structuredContent
end

local function fails(name, args)
  local r = host.call(name, args)
  lu.assertNil(r.error)
  lu.assertTrue(r.isError, name .. " should have failed")
  lu.assertIsString(r.text)
  return r.text
end

local function preview(symbol, action, qty, extra)
  local a = { symbol = symbol, action = action, quantity = qty }
  for k, v in pairs(extra or {}) do a[k] = v end
  return ok("preview_order", a)
end

local function has(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end

TestCatalogue = {}
function TestCatalogue:setUp() env() end

function TestCatalogue:test_eleven_tools_with_contracts()
  local tools = host.tools()
  local names = {}
  for _, t in ipairs(tools) do
    names[t.name] = t
    lu.assertIsString(t.title)
    lu.assertTrue(#t.description > 60, t.name .. " needs a real description")
    lu.assertEquals(t.inputSchema.type, "object")
    lu.assertEquals(t.outputSchema.type, "object")
    lu.assertIsTable(t.annotations)
  end
  for _, n in ipairs { "get_status", "get_account_summary", "get_positions", "get_quote",
                       "get_open_orders", "get_trades", "get_journal", "preview_order",
                       "place_order", "cancel_order", "halt_trading" } do
    lu.assertNotNil(names[n], n)
  end
  lu.assertEquals(#tools, 11)
  for _, n in ipairs { "get_status", "get_quote", "get_positions", "get_trades", "get_journal" } do
    lu.assertTrue(names[n].annotations.readOnlyHint, n)
  end
  for _, n in ipairs { "place_order", "cancel_order", "halt_trading" } do
    lu.assertTrue(names[n].annotations.destructiveHint, n)
    lu.assertFalse(names[n].annotations.readOnlyHint, n)
  end
end

TestReads = {}
function TestReads:setUp() env() end

function TestReads:test_status_reports_defaults()
  host.reset {}   -- no configuration at all: read-only
  local s = ok("get_status")
  lu.assertEquals(s.backend, "sim")
  lu.assertTrue(s.connected)
  lu.assertFalse(s.trading_enabled)
  lu.assertFalse(s.halted)
  lu.assertEquals(s.orders_today, 0)
  lu.assertEquals(s.limits.max_order_qty, 1000)
  lu.assertEquals(s.limits.max_order_notional, 20000)
  lu.assertEquals(s.limits.max_position_notional, 60000)
  lu.assertFalse(s.limits.allow_short)
  lu.assertEquals(s.limits.max_daily_orders, 50)
  lu.assertEquals(s.limits.token_ttl_seconds, 120)
  lu.assertEquals(#s.limits.symbol_whitelist, 0)
end

function TestReads:test_account_starts_with_cash()
  local a = ok("get_account_summary")
  lu.assertEquals(a.cash, 100000)
  lu.assertEquals(a.net_liquidation, 100000)
  lu.assertEquals(a.realized_pnl, 0)
end

function TestReads:test_quote_is_sane_and_case_insensitive()
  local q = ok("get_quote", { symbol = "nvda" })
  lu.assertEquals(q.symbol, "NVDA")
  lu.assertTrue(q.bid > 100 and q.bid < q.ask and q.ask < 250)
  lu.assertAlmostEquals(q.mid, (q.bid + q.ask) / 2, 1e-4)
  lu.assertFalse(q.delayed)
end

function TestReads:test_unknown_symbol_is_a_clear_error()
  local text = fails("get_quote", { symbol = "ZZZZ" })
  lu.assertStrContains(text, "ZZZZ")
  lu.assertStrContains(text, "AAPL")
end

function TestReads:test_bad_arguments_are_tool_errors()
  lu.assertStrContains(fails("get_quote", {}), "symbol is required")
  lu.assertStrContains(fails("get_quote", { symbol = "1ABC" }), "symbol must match")
  lu.assertStrContains(fails("preview_order", { symbol = "NVDA", action = "BUY", quantity = 0 }),
                       "quantity must be at least 1")
  lu.assertStrContains(fails("preview_order", { symbol = "NVDA", action = "HOLD", quantity = 1 }),
                       "action must be one of")
  lu.assertStrContains(fails("get_status", { verbose = true }), "unexpected argument verbose")
end

TestFlow = {}
function TestFlow:setUp() env() end

function TestFlow:test_preview_place_fill_and_blotter()
  local q = ok("get_quote", { symbol = "NVDA" })
  local p = preview("NVDA", "BUY", 50)
  lu.assertTrue(p.risk.approved)
  lu.assertEquals(#p.risk.reasons, 0)
  lu.assertEquals(p.reference_price, q.ask)
  -- Market orders are priced at the collar (100 bps over the ask).
  lu.assertAlmostEquals(p.estimated_notional, 50 * q.ask * 1.01, 0.01)
  lu.assertStrMatches(p.confirmation_token, "^[0-9a-f]+$")
  lu.assertEquals(#p.confirmation_token, 32)
  lu.assertEquals(p.token_expires_in_seconds, 120)
  lu.assertStrContains(p.next_step, p.confirmation_token)

  local o = ok("place_order", { confirmation_token = p.confirmation_token })
  lu.assertEquals(o.status, "FILLED")
  lu.assertEquals(o.filled_quantity, 50)
  lu.assertEquals(o.symbol, "NVDA")
  lu.assertEquals(o.avg_fill_price, q.ask)
  lu.assertStrMatches(o.order_ref, "^im%-[0-9a-f]+$")

  local pos = ok("get_positions")
  lu.assertEquals(pos.count, 1)
  lu.assertEquals(pos.positions[1].symbol, "NVDA")
  lu.assertEquals(pos.positions[1].quantity, 50)

  local tr = ok("get_trades")
  lu.assertEquals(tr.count, 1)
  lu.assertEquals(tr.trades[1].order_id, o.order_id)
  lu.assertEquals(tr.trades[1].quantity, 50)

  -- Cash went down by the fill plus commission ($0.005/share, $1 minimum).
  local a = ok("get_account_summary")
  lu.assertAlmostEquals(a.cash, 100000 - 50 * q.ask - 1.00, 0.011)
  lu.assertEquals(ok("get_status").orders_today, 1)
end

function TestFlow:test_used_token_names_its_order_and_sends_nothing()
  local p = preview("AAPL", "BUY", 10)
  local o = ok("place_order", { confirmation_token = p.confirmation_token })
  local text = fails("place_order", { confirmation_token = p.confirmation_token })
  lu.assertStrContains(text, "Unknown or already-used confirmation token. Call preview_order first.")
  lu.assertStrContains(text, o.order_id)
  lu.assertStrContains(text, "FILLED")
  lu.assertEquals(ok("get_trades").count, 1)
  lu.assertEquals(ok("get_status").orders_today, 1)
end

function TestFlow:test_bogus_token_is_refused()
  local text = fails("place_order", { confirmation_token = "deadbeefdeadbeefdeadbeefdeadbeef" })
  lu.assertEquals(text, "Unknown or already-used confirmation token. Call preview_order first.")
  lu.assertEquals(ok("get_trades").count, 0)
end

function TestFlow:test_token_expires_on_the_simulator_clock()
  local p1 = preview("MSFT", "BUY", 5)
  local p2 = preview("MSFT", "BUY", 6)
  host.advance(119.5)
  ok("place_order", { confirmation_token = p1.confirmation_token })
  host.advance(0.5)   -- now exactly 120 s after p2: expired
  local text = fails("place_order", { confirmation_token = p2.confirmation_token })
  lu.assertStrContains(text, "Unknown or already-used")
  lu.assertEquals(ok("get_trades").count, 1)
end

function TestFlow:test_trading_disabled_gives_no_token()
  host.reset {}
  local p = preview("NVDA", "BUY", 50)
  lu.assertTrue(p.risk.approved)
  lu.assertFalse(p.trading_enabled)
  lu.assertNil(p.confirmation_token)
  lu.assertStrContains(p.next_step, "disabled")
  lu.assertStrContains(fails("place_order", { confirmation_token = "0123456789abcdef0123456789abcdef" }),
                       "Trading is disabled")
end

function TestFlow:test_oversized_order_is_rejected_with_both_reasons()
  local p = preview("TSLA", "BUY", 400)
  lu.assertFalse(p.risk.approved)
  lu.assertNil(p.confirmation_token)
  lu.assertTrue(has(p.risk.codes, "RISK_NOTIONAL_LIMIT"))
  lu.assertTrue(has(p.risk.codes, "RISK_POSITION_LIMIT"))
  lu.assertStrContains(p.risk.reasons[1] .. p.risk.reasons[2], "per-order cap $20,000")
  lu.assertStrContains(p.risk.reasons[1] .. p.risk.reasons[2], "position cap $60,000")
  lu.assertStrContains(p.next_step, "REJECTED")
end

function TestFlow:test_price_drift_between_preview_and_place_is_refused()
  local q = ok("get_quote", { symbol = "AMD" })
  local p = preview("AMD", "BUY", 20)
  host.set_price("AMD", q.mid * 1.08)   -- +8% > the 5% default bound
  local text = fails("place_order", { confirmation_token = p.confirmation_token })
  lu.assertStrContains(text, "moved")
  lu.assertStrContains(text, "preview")
  -- The token is spent either way.
  lu.assertStrContains(fails("place_order", { confirmation_token = p.confirmation_token }),
                       "already-used")
  lu.assertEquals(ok("get_trades").count, 0)
end

function TestFlow:test_place_revalidates_against_new_positions()
  -- Two previews each within a $30,000 position cap; together they are not.
  host.reset { IBKR_TRADING_ENABLED = "true", IBKR_MAX_POSITION_NOTIONAL = "30000" }
  local p1 = preview("NVDA", "BUY", 110, { order_type = "LMT", limit_price = 180 })
  local p2 = preview("NVDA", "BUY", 110, { order_type = "LMT", limit_price = 180 })
  lu.assertTrue(p1.risk.approved and p2.risk.approved)
  ok("place_order", { confirmation_token = p1.confirmation_token })
  local text = fails("place_order", { confirmation_token = p2.confirmation_token })
  lu.assertStrContains(text, "position cap $30,000")
  lu.assertEquals(ok("get_trades").count, 1)
end

function TestFlow:test_daily_cap_counts_orders_at_place()
  host.reset { IBKR_TRADING_ENABLED = "true", IBKR_MAX_DAILY_ORDERS = "1" }
  local a = preview("KO", "BUY", 10)
  local b = preview("KO", "BUY", 10)   -- previews do not count
  lu.assertTrue(a.risk.approved and b.risk.approved)
  ok("place_order", { confirmation_token = a.confirmation_token })
  local text = fails("place_order", { confirmation_token = b.confirmation_token })
  lu.assertStrContains(text, "Daily order limit reached: 1 of 1")
  local c = preview("KO", "BUY", 10)
  lu.assertFalse(c.risk.approved)
  lu.assertTrue(has(c.risk.codes, "RISK_DAILY_ORDER_LIMIT"))
end

function TestFlow:test_short_selling_is_refused_by_default()
  local p = preview("INTC", "SELL", 10)
  lu.assertFalse(p.risk.approved)
  lu.assertTrue(has(p.risk.codes, "RISK_SHORT_NOT_ALLOWED"))
  -- Selling what is held is fine.
  ok("place_order", { confirmation_token = preview("INTC", "BUY", 10).confirmation_token })
  lu.assertTrue(preview("INTC", "SELL", 10).risk.approved)
  lu.assertFalse(preview("INTC", "SELL", 11).risk.approved)
end

function TestFlow:test_whitelist_and_quantity_cap()
  host.reset { IBKR_TRADING_ENABLED = "true", IBKR_SYMBOL_WHITELIST = "aapl, msft",
               IBKR_MAX_ORDER_QTY = "5" }
  local p = preview("NVDA", "BUY", 1)
  lu.assertTrue(has(p.risk.codes, "RISK_SYMBOL_NOT_ALLOWED"))
  lu.assertTrue(preview("AAPL", "BUY", 5).risk.approved)
  local q = preview("AAPL", "BUY", 6)
  lu.assertTrue(has(q.risk.codes, "RISK_QTY_LIMIT"))
  lu.assertEquals(#ok("get_status").limits.symbol_whitelist, 2)
end

function TestFlow:test_limit_order_rests_fills_and_cancels()
  local q = ok("get_quote", { symbol = "AAPL" })
  local low = math.floor(q.bid * 0.95 * 100) / 100
  local p = preview("AAPL", "BUY", 10, { order_type = "LMT", limit_price = low })
  lu.assertTrue(p.risk.approved)
  local o = ok("place_order", { confirmation_token = p.confirmation_token })
  lu.assertEquals(o.status, "SUBMITTED")
  lu.assertEquals(ok("get_open_orders").count, 1)
  local c = ok("cancel_order", { order_id = o.order_id })
  lu.assertEquals(c.status, "CANCELLED")
  lu.assertEquals(ok("get_open_orders").count, 0)
  lu.assertStrContains(fails("cancel_order", { order_id = o.order_id }), "CANCELLED")
  lu.assertStrContains(fails("cancel_order", { order_id = 999999 }), "999999")

  -- A second resting order fills when the market comes down to it.
  local p2 = preview("AAPL", "BUY", 10, { order_type = "LMT", limit_price = low })
  local o2 = ok("place_order", { confirmation_token = p2.confirmation_token })
  host.set_price("AAPL", low - 0.50)
  host.advance(2)
  local tr = ok("get_trades")
  lu.assertEquals(tr.count, 1)
  lu.assertEquals(tr.trades[1].order_id, o2.order_id)
  lu.assertTrue(tr.trades[1].price <= low)
end

function TestFlow:test_halt_is_one_way()
  local h = ok("halt_trading", { reason = "test says stop" })
  lu.assertTrue(h.halted)
  lu.assertEquals(h.reason, "test says stop")
  local s = ok("get_status")
  lu.assertTrue(s.halted)
  lu.assertEquals(s.halt_reason, "test says stop")
  local p = preview("AAPL", "BUY", 1)
  lu.assertFalse(p.risk.approved)
  lu.assertTrue(has(p.risk.codes, "RISK_HALTED"))
  lu.assertNil(p.confirmation_token)
end

local function resting_buy(qty)
  local q = ok("get_quote", { symbol = "AAPL" })
  local low = math.floor(q.bid * 0.95 * 100) / 100
  local p = preview("AAPL", "BUY", qty, { order_type = "LMT", limit_price = low })
  local o = ok("place_order", { confirmation_token = p.confirmation_token })
  lu.assertEquals(o.status, "SUBMITTED")
  return o
end

function TestFlow:test_halt_cancels_working_orders_by_default()
  resting_buy(10)
  resting_buy(5)
  lu.assertEquals(ok("get_open_orders").count, 2)
  local h = ok("halt_trading", { reason = "stop all" })
  lu.assertStrContains(h.message, "being cancelled")
  host.advance(0)
  lu.assertEquals(ok("get_open_orders").count, 0)
  lu.assertEquals(ok("get_trades").count, 0)
end

function TestFlow:test_halt_leaves_working_orders_when_configured()
  env { IBKR_HALT_CANCELS = "false" }
  local o = resting_buy(10)
  local h = ok("halt_trading", { reason = "stop new ones" })
  lu.assertStrContains(h.message, "stay at the broker")
  host.advance(0)
  local open = ok("get_open_orders")
  lu.assertEquals(open.count, 1)
  lu.assertEquals(open.orders[1].order_id, o.order_id)
  -- Halted, the agent may still cancel.
  lu.assertEquals(ok("cancel_order", { order_id = o.order_id }).status, "CANCELLED")
end

function TestFlow:test_halt_between_preview_and_place_blocks_the_place()
  local p = preview("AAPL", "BUY", 1)
  ok("halt_trading", {})
  local text = fails("place_order", { confirmation_token = p.confirmation_token })
  lu.assertStrContains(text, "halted")
  lu.assertEquals(ok("get_trades").count, 0)
end

TestPolicies = {}
function TestPolicies:setUp() env() end

local function tmpdir_with(files)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  for name, src in pairs(files) do
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write(src)
    f:close()
  end
  return dir
end

local function has_prefix(list, prefix)
  for _, v in ipairs(list) do if v:sub(1, #prefix) == prefix then return true end end
  return false
end

function TestPolicies:test_shipped_policies_are_active_and_listed()
  local s = ok("get_status")
  lu.assertEquals(#s.policies, 5)
  local names = {}
  for _, p in ipairs(s.policies) do names[#names + 1] = p.name end
  lu.assertEquals(names, { "loss_streak_cooldown", "market_hours", "no_averaging_down",
                           "pdt_guard", "symbol_limits" })
  lu.assertEquals(#s.policy_set_hash, 64)
  -- The demo's order passes them at 10:00 New York time on a Tuesday.
  lu.assertTrue(preview("NVDA", "BUY", 50).risk.approved)
end

function TestPolicies:test_market_hours_close_blocks_new_exposure_not_exits()
  ok("place_order", { confirmation_token = preview("AAPL", "BUY", 10).confirmation_token })
  host.advance(6.5 * 3600)   -- 16:30 New York time
  local p = preview("AAPL", "BUY", 10)
  lu.assertFalse(p.risk.approved)
  lu.assertTrue(has_prefix(p.risk.codes, "POLICY_"))
  lu.assertStrContains(table.concat(p.risk.reasons, " "), "market_hours")
  -- Selling what is held reduces exposure: allowed (as a limit order; the
  -- policy refuses market orders outside the session).
  local q = ok("get_quote", { symbol = "AAPL" })
  local s = preview("AAPL", "SELL", 10, { order_type = "LMT", limit_price = q.bid })
  lu.assertTrue(s.risk.approved, table.concat(s.risk.reasons, " "))
end

function TestPolicies:test_operator_policy_from_its_own_folder()
  local dir = tmpdir_with {
    ["small.lua"] = [[
      return {
        name = "small",
        description = "At most max_qty shares per order.",
        params = { max_qty = 5 },
        check = function(order, ctx)
          if order.quantity > ctx.params.max_qty then
            return false, string.format("%d shares is over the %d-share limit", order.quantity, ctx.params.max_qty)
          end
        end,
      }
    ]],
  }
  host.reset { IBKR_TRADING_ENABLED = "true", IBKR_POLICY_DIR = dir }
  lu.assertEquals(#ok("get_status").policies, 1)
  local p = preview("AAPL", "BUY", 6)
  lu.assertFalse(p.risk.approved)
  lu.assertTrue(has(p.risk.codes, "POLICY_SMALL"))
  lu.assertTrue(has(p.risk.reasons, "small: 6 shares is over the 5-share limit"))
  lu.assertNil(p.confirmation_token)
  local good = preview("AAPL", "BUY", 5)
  lu.assertTrue(good.risk.approved)
  ok("place_order", { confirmation_token = good.confirmation_token })
  os.execute("rm -rf '" .. dir .. "'")
end

function TestPolicies:test_a_failing_policy_rejects_fail_closed()
  local dir = tmpdir_with {
    ["loop.lua"] = [[
      return { name = "loop", description = "Never finishes.",
               check = function() while true do end end }
    ]],
  }
  host.reset { IBKR_TRADING_ENABLED = "true", IBKR_POLICY_DIR = dir }
  local p = preview("AAPL", "BUY", 1)
  lu.assertFalse(p.risk.approved)
  lu.assertTrue(has(p.risk.codes, "POLICY_ERROR"))
  lu.assertStrContains(table.concat(p.risk.reasons, " "), "loop")
  -- The server keeps serving.
  lu.assertEquals(ok("get_status").backend, "sim")
  os.execute("rm -rf '" .. dir .. "'")
end

function TestPolicies:test_a_broken_policy_file_stops_start_up()
  local dir = tmpdir_with { ["bad.lua"] = "return { name = " }
  local okay, err = host.reset { IBKR_TRADING_ENABLED = "true", IBKR_POLICY_DIR = dir }
  lu.assertNil(okay)
  lu.assertStrContains(err, "bad.lua")
  os.execute("rm -rf '" .. dir .. "'")
  env()
end

function TestPolicies:test_todays_fills_reach_the_policies()
  -- Three round trips that each lose money: loss_streak_cooldown (three
  -- losing exits within four hours) then pauses new exposure.
  for i = 1, 3 do
    local q = ok("get_quote", { symbol = "AMD" })
    ok("place_order", { confirmation_token = preview("AMD", "BUY", 10).confirmation_token })
    host.set_price("AMD", q.mid * 0.97)
    local sell = preview("AMD", "SELL", 10)
    lu.assertTrue(sell.risk.approved, table.concat(sell.risk.reasons, " "))
    ok("place_order", { confirmation_token = sell.confirmation_token })
    host.advance(60)
  end
  local p = preview("AMD", "BUY", 10)
  lu.assertFalse(p.risk.approved)
  lu.assertTrue(has(p.risk.codes, "POLICY_LOSS_STREAK"))
  lu.assertStrContains(table.concat(p.risk.reasons, " "), "3 losing exits")
  host.advance(3600)   -- the pause ends an hour after the latest loss
  lu.assertTrue(preview("AMD", "BUY", 10).risk.approved)
end

function TestPolicies:test_stale_ctx_is_refused_not_dereferenced()
  -- A policy that keeps ctx.today and reads its fills in a later call must
  -- get an error (fail closed), never a previous call's freed data.
  local dir = tmpdir_with {
    ["keeper.lua"] = [[
      local saved
      return { name = "keeper", description = "Keeps ctx.today between calls.",
        check = function(order, ctx)
          if saved == nil then saved = ctx.today; return true end
          return #saved.fills >= 0
        end }
    ]],
  }
  host.reset { IBKR_TRADING_ENABLED = "true", IBKR_POLICY_DIR = dir }
  lu.assertTrue(preview("AAPL", "BUY", 1).risk.approved)
  local p = preview("AAPL", "BUY", 1)
  lu.assertFalse(p.risk.approved)
  lu.assertTrue(has(p.risk.codes, "POLICY_ERROR"))
  lu.assertStrContains(table.concat(p.risk.reasons, " "), "keeper")
  os.execute("rm -rf '" .. dir .. "'")
end

TestControls = {}

function TestControls:test_cash_account_cannot_overspend()
  env { IBKR_MAX_ORDER_NOTIONAL = "1000000", IBKR_MAX_POSITION_NOTIONAL = "1000000",
        IBKR_MAX_POSITION_PCT_NLV = "1000" }
  local p = preview("MSFT", "BUY", 300, { order_type = "LMT", limit_price = 480 })   -- $144,000
  lu.assertFalse(p.risk.approved)
  lu.assertTrue(has(p.risk.codes, "RISK_BUYING_POWER"))
  lu.assertTrue(preview("MSFT", "BUY", 200, { order_type = "LMT", limit_price = 480 }).risk.approved)
end

function TestControls:test_rate_window_slides_on_the_clock()
  env { IBKR_MAX_ORDERS_PER_MIN = "2" }
  for _ = 1, 2 do
    ok("place_order", { confirmation_token = preview("KO", "BUY", 1).confirmation_token })
  end
  local third = preview("KO", "BUY", 1)
  lu.assertStrContains(fails("place_order", { confirmation_token = third.confirmation_token }),
                       "minute")
  host.advance(61)
  ok("place_order", { confirmation_token = preview("KO", "BUY", 1).confirmation_token })
end

function TestControls:test_duplicate_window()
  env { IBKR_DUP_WINDOW_S = "30" }
  ok("place_order", { confirmation_token = preview("PEP", "BUY", 3).confirmation_token })
  local dup = preview("PEP", "BUY", 3)
  lu.assertTrue(has(dup.risk.codes, "RISK_DUPLICATE"))
  lu.assertTrue(preview("PEP", "BUY", 4).risk.approved)   -- a different order is fine
  host.advance(30)
  lu.assertTrue(preview("PEP", "BUY", 3).risk.approved)
end

function TestControls:test_consecutive_rejects_at_place_halt_trading()
  env { IBKR_MAX_CONSECUTIVE_REJECTS = "2" }
  -- Preview denials never count.
  for _ = 1, 3 do lu.assertFalse(preview("TSLA", "BUY", 400).risk.approved) end
  lu.assertFalse(ok("get_status").halted)
  for i = 1, 2 do
    local q = ok("get_quote", { symbol = "AMD" })
    local p = preview("AMD", "BUY", 1)
    host.set_price("AMD", q.mid * 1.2)      -- the price runs away: refused at place
    fails("place_order", { confirmation_token = p.confirmation_token })
  end
  local s = ok("get_status")
  lu.assertTrue(s.halted)
  lu.assertStrContains(s.halt_reason, "2 consecutive")
  lu.assertTrue(has(preview("KO", "BUY", 1).risk.codes, "RISK_HALTED"))
end

TestCoroutines = {}

-- Calls run on coroutines that are kept and reused once a call returns; a
-- call that failed, ran out of budget or was still waiting must never hand
-- its coroutine to the next one.
function TestCoroutines:test_failed_calls_do_not_spoil_the_next()
  local out = [[{ type = "object", required = { "bid" }, properties = { bid = { type = "number" } } }]]
  local function tool(name, body)
    return "return { name = '" .. name .. "', title = '" .. name .. "', " ..
      "description = 'A test tool that " .. name .. "s.', " ..
      "input = { type = 'object', properties = {} }, output = " .. out .. ", " ..
      "run = function(args) " .. body .. " end }"
  end
  local dir = tmpdir_with {
    ["quote.lua"] = tool("quote", "local q = ibkr.quote('NVDA'); return { bid = q.bid }"),
    ["boom.lua"] = tool("boom", "local q = ibkr.quote('NVDA'); error('boom after ' .. q.bid)"),
    ["spin.lua"] = tool("spin", "ibkr.quote('NVDA'); while true do end"),
    ["nothing.lua"] = tool("nothing", "return nil, 'nothing to say'"),
  }
  host.reset { IBKR_TOOLS_DIR = dir }
  local bid = ok("quote", {}).bid
  lu.assertTrue(bid > 0)
  for _ = 1, 3 do
    lu.assertStrContains(fails("boom", {}), "boom after")
    lu.assertEquals(ok("quote", {}).bid, bid)
    lu.assertStrContains(fails("spin", {}), "budget")
    lu.assertEquals(ok("quote", {}).bid, bid)
    lu.assertEquals(fails("nothing", {}), "nothing to say")
    lu.assertEquals(ok("quote", {}).bid, bid)
  end
  for _ = 1, 300 do lu.assertEquals(ok("quote", {}).bid, bid) end
  os.execute("rm -rf '" .. dir .. "'")
end

TestClientGone = {}

-- The client goes away (its MCP layer is freed) while a place_order that
-- needs a human is under way, and the session lives on. Nothing may ask
-- through the freed layer (review finding: a use-after-free, caught by
-- ASan in the sanitizer tree), and the order is not placed.
function TestClientGone:test_place_under_way_when_the_client_leaves()
  env { IBKR_CONFIRM = "elicit" }
  local init = host.rpc('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{' ..
    '"protocolVersion":"2025-06-18","capabilities":{"elicitation":{}},' ..
    '"clientInfo":{"name":"t","version":"1"}}}')
  lu.assertStrContains(init, '"result"')
  local p = preview("NVDA", "BUY", 5)
  lu.assertNotNil(p.confirmation_token)
  host.send('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"place_order",' ..
    '"arguments":{"confirmation_token":"' .. p.confirmation_token .. '"}}}')
  host.reconnect()
  host.run()
  host.advance(1)
  host.run()
  -- The new client sees no order, no fill, and a spent token.
  lu.assertEquals(ok("get_open_orders").count, 0)
  lu.assertEquals(ok("get_trades").count, 0)
  lu.assertEquals(ok("get_status").orders_today, 0)
  lu.assertStrContains(fails("place_order", { confirmation_token = p.confirmation_token }),
    "already-used")
  local j = ok("get_journal", {})
  lu.assertTrue(#j.records > 0)
  for _, e in ipairs(j.records) do
    lu.assertNotEquals(e.kind, "order_sent")
  end
end

return lu.LuaUnit.run()
