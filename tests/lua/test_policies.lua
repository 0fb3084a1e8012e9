-- LuaUnit suite for the risk policies, run inside the host
-- (`ibkr-mcp --lua-test`) through its `policy` module: every call loads
-- real sandboxed policy states with the real read-only ctx and budgets
-- (src/policy.c), so these tests see exactly what the order path sees.
-- Covers the shipped policies with realistic orders, the strict example,
-- escape attempts, failure kinds, and what `policy check` reports.
local lu = require("luaunit")

local ROOT = arg[0]:match("^(.*)/tests/lua/[^/]*$")
local DIR = ROOT and (ROOT .. "/policies") or policy.default_dir()
local STRICT = (ROOT or (DIR .. "/..")) .. "/examples/policy_strict.lua"
local MARKET_HOURS = DIR .. "/market_hours.lua"
local SYMBOL_LIMITS = DIR .. "/symbol_limits.lua"

local T = policy.time

-- A realistic NVDA quote around the simulator's start price.
local function quote(extra)
  local q = { bid = 120.00, ask = 120.10, last = 120.05, bid_size = 300, ask_size = 200 }
  for k, v in pairs(extra or {}) do q[k] = v end
  return q
end

local function ctx(extra)
  local c = { now = T("2025-06-10T10:00:00-04:00"), quote = quote() }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- A fresh folder for edited or hostile policy files; removed in tearDown.
local tmpdirs = {}
local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -m 700 '" .. d .. "'"))
  tmpdirs[#tmpdirs + 1] = d
  return d
end

local function cleanup()
  for _, d in ipairs(tmpdirs) do
    local p = io.popen("ls -A '" .. d .. "'")
    for name in p:lines() do os.remove(d .. "/" .. name) end
    p:close()
    os.remove(d)
  end
  tmpdirs = {}
end

-- Writes src as NAME.lua into a new folder; returns the file's path.
local function policy_file(name, src)
  local path = tmpdir() .. "/" .. name .. ".lua"
  write(path, src)
  return path
end

-- A copy of a shipped policy with one literal edit.
local function edited(path, from, to)
  local src = read(path)
  local i, j = src:find(from, 1, true)
  assert(i, "edit target not found: " .. from)
  return policy_file("edited", src:sub(1, i - 1) .. to .. src:sub(j + 1))
end

local function wrap(body)
  return "return { name = 'probe', description = 'a hostile or odd policy', "
    .. "params = { cap = 5 }, check = function(order, ctx)\n" .. body .. "\nend }\n"
end

local function codes(res)
  local out = {}
  for _, r in ipairs(res.reasons) do out[#out + 1] = r.code end
  return out
end

---------------------------------------------------------------------------

TestShipped = {}
function TestShipped:tearDown() cleanup() end

function TestShipped:test_check_dir_lists_every_shipped_policy_with_params()
  local list = assert(policy.check_dir(DIR))
  local by = {}
  for i, p in ipairs(list) do by[p.name] = p; by[p.name].index = i end
  lu.assertEquals(#list, 5)
  -- Loaded in file-name order.
  lu.assertEquals(list[1].name, "loss_streak_cooldown")
  lu.assertEquals(list[5].name, "symbol_limits")
  local mh = by.market_hours
  lu.assertEquals(mh.file, "market_hours.lua")
  lu.assertFalse(mh.params.allow_outside_rth)
  lu.assertEquals(mh.params.no_trade_open_minutes, 0)
  lu.assertEquals(mh.params.no_trade_close_minutes, 0)
  lu.assertEquals(#mh.params.holidays, 31)     -- NYSE 2025, 2026 and 2027
  lu.assertEquals(by.symbol_limits.params.GME.max_qty, 0)
  lu.assertEquals(by.symbol_limits.params.AMC.max_qty, 0)
  lu.assertEquals(by.no_averaging_down.params.max_loss_pct, 2.0)
  lu.assertEquals(by.loss_streak_cooldown.params.max_losses, 3)
  lu.assertEquals(by.pdt_guard.params.min_equity, 25000)
  lu.assertStrMatches(by.symbol_limits.sha, ("%x"):rep(64))
  lu.assertStrMatches(assert(policy.hash(DIR)), ("%x"):rep(64))
end

function TestShipped:test_holidays_are_weekdays_in_order()
  local mh
  for _, p in ipairs(assert(policy.check_dir(DIR))) do
    if p.name == "market_hours" then mh = p end
  end
  local prev = ""
  for _, d in ipairs(mh.params.holidays) do
    lu.assertTrue(d > prev, d)
    prev = d
    local y, m, dd = d:match("^(%d+)-(%d+)-(%d+)$")
    local wday = os.date("!*t", os.time({ year = y, month = m, day = dd, hour = 12 })).wday
    lu.assertTrue(wday >= 2 and wday <= 6, d .. " falls on a weekend")
  end
end

function TestShipped:test_demo_orders_pass()
  -- preview_order BUY 50 NVDA MKT, then place_order half a minute later.
  local order = { symbol = "NVDA", action = "BUY", quantity = 50, order_type = "MKT" }
  local res = assert(policy.run_dir(DIR, order, ctx()))
  lu.assertTrue(res.approved, res.reasons[1] and res.reasons[1].text)
  res = policy.run_dir(DIR, order, ctx({ stage = "place", now = T("2025-06-10T10:00:30-04:00") }))
  lu.assertTrue(res.approved)
  -- Other ordinary orders of a session: limit buys, a sell of the position.
  for _, o in ipairs({
    { symbol = "AAPL", action = "BUY", quantity = 10, order_type = "LMT", limit_price = 195.5 },
    { symbol = "MSFT", action = "BUY", quantity = 5, order_type = "LMT", limit_price = 410 },
    { symbol = "NVDA", action = "SELL", quantity = 50, order_type = "MKT", reduces_position = true },
  }) do
    res = policy.run_dir(DIR, o, ctx({ quote = quote({ symbol = o.symbol }) }))
    lu.assertTrue(res.approved, o.symbol .. ": " .. (res.reasons[1] and res.reasons[1].text or ""))
  end
end

function TestShipped:test_weekend_entry_is_denied_with_the_time()
  local order = { symbol = "NVDA", action = "BUY", quantity = 50, order_type = "MKT" }
  local res = policy.run_dir(DIR, order, ctx({ now = T("2025-06-14T11:02:00-04:00") }))
  lu.assertFalse(res.approved)
  lu.assertEquals(codes(res), { "POLICY_MARKET_HOURS" })
  lu.assertEquals(res.reasons[1].text, "market_hours: market is closed (Saturday 11:02 ET); "
    .. "regular hours are 09:30-16:00 ET, Monday to Friday")
end

function TestShipped:test_session_boundaries()
  local cases = {
    { "2025-06-10T09:29:59-04:00", "deny" }, { "2025-06-10T09:30:00-04:00", "allow" },
    { "2025-06-10T15:59:59-04:00", "allow" }, { "2025-06-10T16:00:00-04:00", "deny" },
    { "2025-12-24T12:59:59-05:00", "allow" }, { "2025-12-24T13:00:00-05:00", "deny" },
    { "2026-03-09T13:30:00Z", "allow" },      { "2026-03-09T13:29:59Z", "deny" },  -- EDT
    { "2026-11-02T14:30:00Z", "allow" },      { "2026-11-02T14:29:59Z", "deny" },  -- EST
    { "2026-01-19T11:00:00-05:00", "deny" },  { "2026-11-26T11:00:00-05:00", "deny" },
  }
  for _, c in ipairs(cases) do
    local v = assert(policy.run_file(MARKET_HOURS, { symbol = "AAPL", quantity = 10 },
      ctx({ now = T(c[1]) })))
    lu.assertEquals(v.decision, c[2], c[1] .. ": " .. v.reason)
    if c[2] == "deny" then lu.assertEquals(v.code, "POLICY_MARKET_HOURS") end
  end
end

function TestShipped:test_exits_pass_at_any_hour()
  local sell = { symbol = "NVDA", action = "SELL", quantity = 20, order_type = "MKT",
                 reduces_position = true }
  for _, when in ipairs({ "2025-06-14T11:02:00-04:00", "2025-07-04T12:00:00-04:00",
                          "2025-06-10T22:00:00-04:00" }) do
    local res = policy.run_dir(DIR, sell, ctx({ now = T(when), position = { quantity = 100 } }))
    lu.assertTrue(res.approved, when)
  end
end

function TestShipped:test_meme_stocks_are_blocked()
  local res = policy.run_dir(DIR, { symbol = "GME", action = "BUY", quantity = 1,
    order_type = "LMT", limit_price = 25 }, ctx({ quote = quote({ symbol = "GME", bid = 24.9,
    ask = 25.0 }) }))
  lu.assertFalse(res.approved)
  lu.assertEquals(codes(res), { "POLICY_SYMBOL_LIMIT" })
  lu.assertStrContains(res.reasons[1].text, "GME is blocked for new positions (cap 0 shares)")
  lu.assertStrContains(res.reasons[1].text, "buy 1 shares")
  local v = policy.run_file(SYMBOL_LIMITS, { symbol = "AMC", action = "SELL", quantity = 100,
    reduces_position = true }, ctx())
  lu.assertEquals(v.decision, "allow")
end

function TestShipped:test_outside_rth_when_allowed()
  local path = edited(MARKET_HOURS, "allow_outside_rth = false", "allow_outside_rth = true")
  local evening = ctx({ now = T("2025-06-10T18:15:00-04:00") })
  local lmt = { symbol = "AAPL", quantity = 10, order_type = "LMT", limit_price = 195 }
  lu.assertEquals(policy.run_file(path, lmt, evening).decision, "allow")
  local v = policy.run_file(path, { symbol = "AAPL", quantity = 10, order_type = "MKT" }, evening)
  lu.assertEquals(v.decision, "deny")
  lu.assertStrContains(v.reason, "use a limit order")
  v = policy.run_file(path, lmt, ctx({ now = T("2025-06-15T12:00:00-04:00") }))
  lu.assertEquals(v.decision, "deny")
end

function TestShipped:test_bad_params_fail_closed()
  local path = edited(MARKET_HOURS, "no_trade_close_minutes = 0", "no_trade_close_minutes = 'ten'")
  local v = policy.run_file(path, {}, ctx())
  lu.assertEquals(v.decision, "error")
  lu.assertEquals(v.code, "POLICY_ERROR")
  lu.assertEquals(v.kind, "runtime")
  path = edited(SYMBOL_LIMITS, "GME = { max_qty = 0 }", "GME = { max_qty = '0' }")
  v = policy.run_file(path, { symbol = "GME", quantity = 1 }, ctx())
  lu.assertEquals(v.decision, "error")
  lu.assertStrContains(v.reason, "params.GME.max_qty must be a number")
end

---------------------------------------------------------------------------

TestStrictExample = {}
function TestStrictExample:tearDown() cleanup() end

local function strict(order, c)
  return assert(policy.run_file(STRICT, order, ctx(c)))
end

local function lmt(extra)
  local o = { symbol = "NVDA", action = "BUY", quantity = 10, order_type = "LMT",
              limit_price = 120.10 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

function TestStrictExample:test_loads_and_is_not_shipped()
  for _, p in ipairs(assert(policy.check_dir(DIR))) do lu.assertNotEquals(p.name, "strict") end
  local v = strict(lmt())
  lu.assertEquals(v.decision, "allow", v.reason)
end

function TestStrictExample:test_entry_rules()
  local v = strict(lmt({ order_type = "MKT", limit_price = nil }))
  lu.assertEquals(v.code, "POLICY_STRICT_ORDER_TYPE")
  v = strict(lmt({ quantity = 50 }), { account = { net_liquidation = 200000 } })
  lu.assertEquals(v.decision, "require_approval")      -- $6,005 > $2,500
  lu.assertEquals(v.code, "POLICY_APPROVAL_REQUIRED")
  lu.assertStrContains(v.reason, "BUY 50 NVDA for $6005.00")
  v = strict(lmt({ quantity = 50 }), { account = { net_liquidation = 50000 } })
  lu.assertEquals(v.code, "POLICY_STRICT_SIZE")        -- > 5% of $50,000
  v = strict(lmt(), { account = false })
  lu.assertEquals(v.code, "POLICY_STRICT_NO_ACCOUNT")
  v = strict(lmt(), { open_orders = { { symbol = "NVDA", quantity = 5, order_type = "LMT",
    limit_price = 100 }, { symbol = "NVDA", quantity = 5, order_type = "LMT", limit_price = 101 },
    { symbol = "AAPL", quantity = 5 } } })
  lu.assertEquals(v.code, "POLICY_STRICT_OPEN_ORDERS")
  v = strict(lmt(), { open_orders = { { symbol = "NVDA", status = "FILLED" },
    { symbol = "NVDA", status = "CANCELLED" } } })
  lu.assertEquals(v.decision, "allow")
  v = strict(lmt(), { today = { orders = 20 } })
  lu.assertEquals(v.code, "POLICY_STRICT_DAILY_ORDERS")
end

function TestStrictExample:test_data_quality_applies_to_exits_too()
  local exit = lmt({ action = "SELL", order_type = "MKT", reduces_position = true })
  lu.assertEquals(strict(exit).decision, "allow")
  lu.assertEquals(strict(exit, { quote = false }).code, "POLICY_STRICT_NO_QUOTE")
  lu.assertEquals(strict(exit, { quote = quote({ delayed = true }) }).code,
    "POLICY_STRICT_DELAYED")
  local v = strict(exit, { quote = quote({ bid = 119, ask = 121 }) })
  lu.assertEquals(v.code, "POLICY_STRICT_SPREAD")
  lu.assertStrContains(v.reason, "spread is 167 bps")
end

---------------------------------------------------------------------------

TestSandbox = {}
function TestSandbox:tearDown() cleanup() end

local function run(body, opts)
  return assert(policy.run_file(policy_file("probe", wrap(body)), {}, ctx(), opts))
end

function TestSandbox:test_no_escape_hatches()
  for _, body in ipairs({
    "os.exit(1)", "io.open('/etc/passwd')", "require('os')", "load('return 1')",
    "dofile('/etc/passwd')", "string.dump(print)", "debug.getinfo(1)",
    "collectgarbage('stop')", "coroutine.create(print)", "package.loaded.os.exit()",
    "ibkr.place({})", "_G.x = 1", "x = 1",
  }) do
    local v = run(body .. "\nreturn true")
    lu.assertEquals(v.decision, "error", body)
    lu.assertEquals(v.code, "POLICY_ERROR", body)
    lu.assertEquals(v.kind, "runtime", body)
  end
end

function TestSandbox:test_ctx_cannot_be_changed()
  for _, body in ipairs({
    "ctx.now = 0", "ctx.params.cap = 1e9", "ctx.quote.ask = 1", "ctx.today.orders = 0",
    "ctx.limits.max_order_qty = 1e9", "setmetatable(ctx, nil)", "ctx.account.cash = 0",
  }) do
    lu.assertEquals(run(body .. "\nreturn true").decision, "error", body)
  end
  lu.assertEquals(run("return getmetatable(ctx) == 'locked' and ctx.params.cap == 5").decision,
    "allow")
end

function TestSandbox:test_budgets_trip_and_name_the_kind()
  local small = { instr_budget = 20000, mem_limit = 1 << 20, deadline_ms = 5000 }
  local v = run("while true do end", small)
  lu.assertEquals(v.kind, "budget")
  v = run("local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(1000) .. i end",
    { instr_budget = 2000000, mem_limit = 1 << 20 })
  lu.assertEquals(v.kind, "memory")
  v = run("return 42", small)
  lu.assertEquals(v.kind, "verdict")
  lu.assertStrContains(v.reason, "returned a number")
end

function TestSandbox:test_broken_file_fails_the_folder()
  local d = tmpdir()
  write(d .. "/a_ok.lua", wrap("return true"))
  write(d .. "/b_broken.lua", "return { name = 'b', description = 'no check' }")
  local res, err = policy.run_dir(d, {}, ctx())
  lu.assertNil(res)
  lu.assertStrContains(err, "b_broken.lua")
  lu.assertStrContains(err, "check must be a function")
  local list, err2 = policy.check_dir(d)
  lu.assertNil(list)
  lu.assertStrContains(err2, "b_broken.lua")
end

function TestSandbox:test_hash_follows_the_files()
  local d = tmpdir()
  write(d .. "/p.lua", wrap("return true"))
  local h1 = assert(policy.hash(d))
  lu.assertEquals(policy.hash(d), h1)
  write(d .. "/p.lua", wrap("return true -- edited"))
  lu.assertNotEquals(policy.hash(d), h1)
end

function TestSandbox:test_empty_and_missing_folders_have_no_policies()
  local d = tmpdir()
  lu.assertEquals(policy.check_dir(d), {})
  lu.assertEquals(policy.check_dir(d .. "/missing"), {})
  lu.assertTrue(policy.run_dir(d, {}, ctx()).approved)
end

---------------------------------------------------------------------------
TestMorePolicies = {}
function TestMorePolicies:tearDown() cleanup() end

local NO_AVG = DIR .. "/no_averaging_down.lua"
local STREAK = DIR .. "/loss_streak_cooldown.lua"
local PDT = DIR .. "/pdt_guard.lua"

function TestMorePolicies:test_no_averaging_down_boundaries()
  -- Long 100 at $122.45: the mid 120.05 is 1.96% below cost -> may add.
  local buy = { symbol = "NVDA", action = "BUY", quantity = 10 }
  local long = { quantity = 100, avg_cost = 122.45 }
  lu.assertEquals(policy.run_file(NO_AVG, buy, ctx({ position = long })).decision, "allow")
  -- At $122.60 it is 2.08% below: refused, with the figures.
  local v = policy.run_file(NO_AVG, buy, ctx({ position = { quantity = 100, avg_cost = 122.60 } }))
  lu.assertEquals(v.decision, "deny")
  lu.assertEquals(v.code, "POLICY_NO_AVERAGING_DOWN")
  lu.assertStrContains(v.reason, "2.08%")
  -- Selling it (an exit) and opening a new position always pass.
  local sell = { symbol = "NVDA", action = "SELL", quantity = 10, reduces_position = true }
  lu.assertEquals(policy.run_file(NO_AVG, sell, ctx({ position = long })).decision, "allow")
  lu.assertEquals(policy.run_file(NO_AVG, buy, ctx({ position = { quantity = 0 } })).decision, "allow")
  -- A short that is losing (price above its entry) may not be sold further.
  local short = { quantity = -50, avg_cost = 110 }
  v = policy.run_file(NO_AVG, { symbol = "NVDA", action = "SELL", quantity = 10 }, ctx({ position = short }))
  lu.assertEquals(v.decision, "deny")
  -- Without a quote the position cannot be valued: refused.
  local c = ctx({ position = { quantity = 100, avg_cost = 100 } })
  c.quote = nil
  lu.assertEquals(policy.run_file(NO_AVG, buy, c).decision, "deny")
end

local function losing_fill(t, pnl)
  return { symbol = "AMD", action = "SELL", quantity = 10, price = 100, commission = 1,
           realized_pnl = pnl, time = T(t) }
end

function TestMorePolicies:test_loss_streak_pauses_new_exposure()
  local buy = { symbol = "AAPL", action = "BUY", quantity = 10 }
  local fills = {
    losing_fill("2025-06-10T09:40:00-04:00", -51),
    losing_fill("2025-06-10T09:50:00-04:00", -21),
    -- Commission only: not a loss.
    losing_fill("2025-06-10T09:55:00-04:00", -1),
  }
  local c = ctx({ now = T("2025-06-10T10:00:00-04:00"), today = { fills = fills } })
  lu.assertEquals(policy.run_file(STREAK, buy, c).decision, "allow")
  fills[4] = losing_fill("2025-06-10T09:58:00-04:00", -5)
  local v = policy.run_file(STREAK, buy, c)
  lu.assertEquals(v.decision, "deny")
  lu.assertEquals(v.code, "POLICY_LOSS_STREAK")
  lu.assertStrContains(v.reason, "3 losing exits")
  lu.assertStrContains(v.reason, "10:58 ET")
  -- The pause ends 60 minutes after the latest loss.
  c.now = T("2025-06-10T10:57:59-04:00")
  lu.assertEquals(policy.run_file(STREAK, buy, c).decision, "deny")
  c.now = T("2025-06-10T10:58:00-04:00")
  lu.assertEquals(policy.run_file(STREAK, buy, c).decision, "allow")
  -- Exits pass during the pause.
  c.now = T("2025-06-10T10:30:00-04:00")
  local sell = { symbol = "AMD", action = "SELL", quantity = 5, reduces_position = true }
  lu.assertEquals(policy.run_file(STREAK, sell, c).decision, "allow")
end

function TestMorePolicies:test_pdt_guard()
  local margin = { type = "MARGIN", net_liquidation = 20000, cash = 20000, buying_power = 40000 }
  local fills = {
    { symbol = "AAPL", action = "BUY", quantity = 10, price = 200, realized_pnl = -1, time = T("2025-06-10T09:35:00-04:00") },
    { symbol = "AAPL", action = "SELL", quantity = 10, price = 201, realized_pnl = 9, time = T("2025-06-10T09:40:00-04:00") },
    { symbol = "MSFT", action = "BUY", quantity = 5, price = 470, realized_pnl = -1, time = T("2025-06-10T09:45:00-04:00") },
  }
  local sell_msft = { symbol = "MSFT", action = "SELL", quantity = 5, reduces_position = true }
  local c = ctx({ account = margin, today = { fills = fills } })
  -- One day trade today (AAPL); selling MSFT would be the second: fine.
  lu.assertEquals(policy.run_file(PDT, sell_msft, c).decision, "allow")
  -- With two more earlier in the window it would be the fourth: refused.
  local path = edited(PDT, "day_trades_before_today = 0", "day_trades_before_today = 2")
  local v = policy.run_file(path, sell_msft, c)
  lu.assertEquals(v.decision, "deny")
  lu.assertEquals(v.code, "POLICY_PDT")
  lu.assertStrContains(v.reason, "day trade 4")
  -- Opening trades, cash accounts and accounts at the threshold pass.
  lu.assertEquals(policy.run_file(path, { symbol = "KO", action = "BUY", quantity = 1 }, c).decision, "allow")
  local cash = ctx({ account = { type = "CASH", net_liquidation = 20000 }, today = { fills = fills } })
  lu.assertEquals(policy.run_file(path, sell_msft, cash).decision, "allow")
  local big = ctx({ account = { type = "MARGIN", net_liquidation = 25000 }, today = { fills = fills } })
  lu.assertEquals(policy.run_file(path, sell_msft, big).decision, "allow")
  -- No account figures: refused (fail closed).
  lu.assertEquals(policy.run_file(PDT, sell_msft, ctx({ account = false })).decision, "deny")
end

return lu.LuaUnit.run()
