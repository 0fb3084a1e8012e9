-- LuaUnit suite for the journal through MCP tools (`ibkr-mcp --lua-test`):
-- each host.reset gets a fresh state directory unless the test names one;
-- a test that names one restarts the app on it to see what survives.
local lu = require("luaunit")

local function call(name, args)
  local r = host.call(name, args)
  lu.assertNil(r.error, name .. " gave a protocol error")
  return r
end

local function ok(name, args)
  local r = call(name, args)
  lu.assertFalse(r.isError, name .. ": " .. tostring(r.text))
  return r.structuredContent
end

local function has(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end

local BUY = { symbol = "NVDA", action = "BUY", quantity = 10 }

local function trade()
  local p = ok("preview_order", BUY)
  lu.assertIsString(p.confirmation_token, "no token: " .. table.concat(p.risk.codes, ","))
  return ok("place_order", { confirmation_token = p.confirmation_token }), p.confirmation_token
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function tempdir()
  local p = assert(io.popen("mktemp -d /tmp/ibkr-mcp-luajournal-XXXXXX"))
  local d = p:read("l")
  p:close()
  return d
end

TestJournal = {}

function TestJournal:setUp()
  self.dir = tempdir()
  self.env = { IBKR_TRADING_ENABLED = "true", IBKR_STATE_DIR = self.dir,
               IBKR_MAX_DAILY_ORDERS = "2" }
  assert(host.reset(self.env))
end

function TestJournal:tearDown()
  assert(host.reset { IBKR_TRADING_ENABLED = "true" })   -- lets go of self.dir
  os.execute("rm -rf '" .. self.dir .. "'")
end

function TestJournal:test_place_is_on_disk_when_answered_and_token_is_not()
  local placed, token = trade()
  local text = read(self.dir .. "/journal-2025-06-10.jsonl")
  lu.assertStrContains(text, '"kind":"order_sent"')
  lu.assertStrContains(text, '"order_ref":"' .. placed.order_ref .. '"')
  lu.assertStrContains(text, '"kind":"order_ack"')
  lu.assertNil(text:find(token, 1, true), "the token itself is in the journal")
end

function TestJournal:test_restart_keeps_count_and_cap()
  trade()
  trade()
  assert(host.reset(self.env))
  lu.assertEquals(ok("get_status").orders_today, 2)
  lu.assertTrue(has(ok("preview_order", BUY).risk.codes, "RISK_DAILY_ORDER_LIMIT"))
end

function TestJournal:test_used_token_stays_used_after_restart()
  local _, token = trade()
  assert(host.reset(self.env))
  local r = call("place_order", { confirmation_token = token })
  lu.assertTrue(r.isError)
  lu.assertEquals(ok("get_status").orders_today, 1)
end

function TestJournal:test_halt_survives_restart()
  ok("halt_trading", { reason = "lua says stop" })
  assert(host.reset(self.env))
  local s = ok("get_status")
  lu.assertTrue(s.halted)
  lu.assertEquals(s.halt_reason, "lua says stop")
end

function TestJournal:test_kill_file_in_get_status_and_preview()
  local f = assert(io.open(self.dir .. "/KILL", "w"))
  f:close()
  local s = ok("get_status")
  lu.assertTrue(s.halted)
  lu.assertStrContains(s.halt_reason, "KILL")
  lu.assertTrue(has(ok("preview_order", BUY).risk.codes, "RISK_HALTED"))
  os.remove(self.dir .. "/KILL")
  lu.assertFalse(ok("get_status").halted)
end

TestIsolation = {}

-- Without IBKR_STATE_DIR every reset starts from an empty journal.
function TestIsolation:test_each_reset_gets_a_fresh_state_dir()
  assert(host.reset { IBKR_TRADING_ENABLED = "true" })
  ok("halt_trading", { reason = "only this reset" })
  assert(host.reset { IBKR_TRADING_ENABLED = "true" })
  local s = ok("get_status")
  lu.assertFalse(s.halted)
  lu.assertEquals(s.orders_today, 0)
end

return lu.LuaUnit.run()
