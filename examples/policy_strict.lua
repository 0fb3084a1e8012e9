-- examples/policy_strict.lua: a stricter policy to copy from. It is NOT
-- loaded by default; copy it into your policies/ folder (or the folder
-- IBKR_POLICY_DIR names), adjust params, and run `ibkr-mcp policy check`.
--
-- It bundles several controls of the strict profile in
-- reference/risk-controls.md for a small account driven by an LLM agent.
-- Every rule here only tightens what the built-in C checks allow; the
-- rules are checked in order and the first that fires decides. Orders that
-- reduce a position skip the entry rules (exits are privileged) but not
-- the data-quality rules.

local function money(v)
  return string.format("$%.2f", v)
end

local function whole(v)
  if v == math.floor(v) then return string.format("%d", v) end
  return string.format("%g", v)
end

return {
  name = "strict",
  description = "Strict profile for small accounts: limit orders only for new positions, "
    .. "real-time two-sided quotes with a tight spread, size as a share of net liquidation, "
    .. "few working orders per symbol, a daily order budget, and a human's approval above "
    .. "a notional threshold.",

  params = {
    limit_orders_only = true,        -- new positions need LMT (or STP LMT)
    max_spread_bps = 50,             -- (ask - bid) / mid, in basis points
    max_pct_of_net_liquidation = 5,  -- one order's notional, % of NLV
    max_open_orders_per_symbol = 2,  -- working orders already at the broker
    max_orders_per_day = 20,         -- submitted today (the global cap is looser)
    approval_above_notional = 2500,  -- dollars; 0 turns approval off
  },

  check = function(order, ctx)
    local p = ctx.params
    local q = ctx.quote

    -- Data quality, for every order: no quote, a delayed one, or a wide
    -- spread means the reference price cannot be trusted.
    if q == nil or q.mid == nil then
      return { decision = "deny", code = "POLICY_STRICT_NO_QUOTE",
               reason = "no usable two-sided quote for " .. order.symbol }
    end
    if q.delayed then
      return { decision = "deny", code = "POLICY_STRICT_DELAYED",
               reason = "the quote for " .. order.symbol .. " is delayed" }
    end
    local spread_bps = (q.ask - q.bid) / q.mid * 10000
    if spread_bps > p.max_spread_bps then
      return { decision = "deny", code = "POLICY_STRICT_SPREAD",
               reason = string.format("%s spread is %.0f bps (bid %s, ask %s); the limit is %d bps",
                 order.symbol, spread_bps, money(q.bid), money(q.ask), p.max_spread_bps) }
    end

    if order.reduces_position then
      return true
    end

    if p.limit_orders_only and order.order_type ~= "LMT" and order.order_type ~= "STP LMT" then
      return { decision = "deny", code = "POLICY_STRICT_ORDER_TYPE",
               reason = order.order_type .. " orders are not allowed for new positions; "
                 .. "use a limit order" }
    end

    local acct = ctx.account
    if acct == nil or not (acct.net_liquidation > 0) then
      return { decision = "deny", code = "POLICY_STRICT_NO_ACCOUNT",
               reason = "no account snapshot with a positive net liquidation value" }
    end
    local cap = acct.net_liquidation * p.max_pct_of_net_liquidation / 100
    if order.notional > cap then
      return { decision = "deny", code = "POLICY_STRICT_SIZE",
               reason = string.format("order notional %s is more than %g%% of net liquidation "
                 .. "(%s)", money(order.notional), p.max_pct_of_net_liquidation, money(cap)) }
    end

    local working = 0
    for _, o in ipairs(ctx.open_orders) do
      if o.symbol == order.symbol and o.status ~= "FILLED" and o.status ~= "CANCELLED"
          and o.status ~= "REJECTED" then
        working = working + 1
      end
    end
    if working >= p.max_open_orders_per_symbol then
      return { decision = "deny", code = "POLICY_STRICT_OPEN_ORDERS",
               reason = string.format("%s already has %d working orders (limit %d)",
                 order.symbol, working, p.max_open_orders_per_symbol) }
    end

    if ctx.today.orders >= p.max_orders_per_day then
      return { decision = "deny", code = "POLICY_STRICT_DAILY_ORDERS",
               reason = string.format("%d orders were already sent today (strict limit %d)",
                 ctx.today.orders, p.max_orders_per_day) }
    end

    if p.approval_above_notional > 0 and order.notional > p.approval_above_notional then
      return { decision = "require_approval", code = "POLICY_STRICT_APPROVAL",
               reason = string.format("%s %s %s for %s is above %s: a human must approve it",
                 order.action, whole(order.quantity), order.symbol, money(order.notional),
                 money(p.approval_above_notional)) }
    end
    return true
  end,
}
