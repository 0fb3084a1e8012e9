-- policies/symbol_limits.lua: per-symbol caps tighter than the global
-- IBKR_MAX_ORDER_QTY / IBKR_MAX_ORDER_NOTIONAL. Runs in the policy sandbox
-- (see policies/README.md).
--
-- Each entry of params is SYMBOL = { max_qty = N, max_notional = DOLLARS }
-- (either may be left out). max_qty = 0 blocks new positions in the
-- symbol. Orders that reduce a position pass, so a capped position can
-- always be closed. The shipped entries are examples for meme stocks and
-- leave every symbol of the demo alone; edit them to suit the account.

local function fmt_qty(q)
  if q == math.floor(q) then return string.format("%d", q) end
  return string.format("%g", q)
end

-- "$1,234.50" (cents only when there are any).
local function fmt_money(v)
  local s = string.format("%.2f", v)
  local whole, cents = s:match("^(%-?%d+)%.(%d%d)$")
  whole = whole:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^(%-?),", "%1")
  if cents == "00" then return "$" .. whole end
  return "$" .. whole .. "." .. cents
end

local function cap_param(sym, lim, key)
  local v = lim[key]
  if v == nil then return nil end
  if type(v) ~= "number" or v < 0 or v ~= v then
    error(string.format("params.%s.%s must be a number >= 0", sym, key))
  end
  return v
end

return {
  name = "symbol_limits",
  description = "Per-symbol caps on order size (shares and dollars), tighter than the "
    .. "global limits; a cap of 0 shares blocks new positions in that symbol.",

  params = {
    GME = { max_qty = 0 },
    AMC = { max_qty = 0 },
  },

  check = function(order, ctx)
    local lim = ctx.params[order.symbol]
    if lim == nil or order.reduces_position then
      return true
    end
    local max_qty = cap_param(order.symbol, lim, "max_qty")
    local max_notional = cap_param(order.symbol, lim, "max_notional")

    if max_qty ~= nil and order.quantity > max_qty then
      local reason
      if max_qty == 0 then
        reason = string.format("%s is blocked for new positions (cap 0 shares); this order "
          .. "asks to %s %s shares", order.symbol, order.action:lower(), fmt_qty(order.quantity))
      else
        reason = string.format("%s is capped at %s shares per order; this order asks to %s %s "
          .. "shares", order.symbol, fmt_qty(max_qty), order.action:lower(),
          fmt_qty(order.quantity))
      end
      return { decision = "deny", code = "POLICY_SYMBOL_LIMIT", reason = reason }
    end
    if max_notional ~= nil and order.notional > max_notional then
      return { decision = "deny", code = "POLICY_SYMBOL_LIMIT",
        reason = string.format("%s is capped at %s per order; this order is %s (%s shares at "
          .. "%s)", order.symbol, fmt_money(max_notional), fmt_money(order.notional),
          fmt_qty(order.quantity), fmt_money(order.reference_price)) }
    end
    return true
  end,
}
