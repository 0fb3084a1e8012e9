-- policies/pdt_guard.lua: the pattern-day-trader guard for small margin
-- accounts. FINRA treats a margin account under $25,000 that makes four or
-- more day trades in five business days as a pattern day trader; this
-- policy refuses the order that would make the next day trade once the
-- count is reached. Cash accounts are not subject to it. Runs in the
-- policy sandbox (see policies/README.md).
--
-- A day trade is opening and closing a position in one symbol on one day.
-- Today's day trades are counted from ctx.today.fills (symbols with fills
-- on both sides today); earlier days of the five-day window come from
-- params.day_trades_before_today, which the operator keeps current (the
-- broker's own counter is the authority). The rule is changing in 2026:
-- that is why it is a policy and not C.

-- Symbols with fills on both sides today, and the side of each symbol's
-- first fill today.
local function day_trades(fills)
  local sides, first, n = {}, {}, 0
  for _, f in ipairs(fills) do
    local s = sides[f.symbol] or {}
    sides[f.symbol] = s
    if first[f.symbol] == nil then first[f.symbol] = f.action end
    s[f.action] = true
  end
  for _, s in pairs(sides) do
    if s.BUY and s.SELL then n = n + 1 end
  end
  return n, first, sides
end

return {
  name = "pdt_guard",
  description = "Margin accounts under min_equity: refuses the order that would complete a "
    .. "day trade once max_day_trades are used in the five-day window. Cash accounts pass.",

  params = {
    min_equity = 25000,           -- USD; at or above it the rule does not apply
    max_day_trades = 3,           -- day trades allowed in five business days
    day_trades_before_today = 0,  -- the other four days of the window (keep it current)
  },

  check = function(order, ctx)
    local p = ctx.params
    local a = ctx.account
    if a == nil then
      return { decision = "deny", code = "POLICY_PDT",
               reason = "no account figures to check the day-trade rule against" }
    end
    if a.type ~= "MARGIN" or a.net_liquidation >= p.min_equity then return true end

    local today, first, sides = day_trades(ctx.today.fills)
    local used = today + p.day_trades_before_today
    -- This order completes a day trade when it closes a position opened
    -- today: the symbol's first fill today was on the other side and it
    -- has no fill on this side yet.
    local opened = first[order.symbol]
    local s = sides[order.symbol] or {}
    local completes = opened ~= nil and opened ~= order.action and not s[order.action]
    if completes and used >= p.max_day_trades then
      return { decision = "deny", code = "POLICY_PDT",
        reason = string.format("this %s of %s would be day trade %d in five days; a margin "
          .. "account under $%d may make %d (net liquidation $%.2f)", order.action,
          order.symbol, used + 1, p.min_equity, p.max_day_trades, a.net_liquidation) }
    end
    return true
  end,
}
