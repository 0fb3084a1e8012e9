-- policies/no_averaging_down.lua: do not add to a position that is already
-- losing more than a set share of its cost. Runs in the policy sandbox (see
-- policies/README.md). The mark is the quote's mid; without a quote the
-- position cannot be valued and adding to it is refused (fail closed).
-- Opening a new position, and anything that reduces one, always passes.

return {
  name = "no_averaging_down",
  description = "Refuses to add to a position that is losing more than max_loss_pct of its "
    .. "average cost (buying more of a falling long, or selling more of a rising short).",

  params = {
    -- Percent below (long) or above (short) the average cost beyond which
    -- adding is refused. The default leaves room for the spread and noise.
    max_loss_pct = 2.0,
  },

  check = function(order, ctx)
    local limit = ctx.params.max_loss_pct
    if type(limit) ~= "number" or limit < 0 or limit ~= limit then
      error("params.max_loss_pct must be a number >= 0")
    end
    local pos = ctx.position.quantity
    if order.reduces_position or pos == 0 then return true end
    local adding = (order.action == "BUY" and pos > 0) or (order.action == "SELL" and pos < 0)
    if not adding then return true end

    local avg = ctx.position.avg_cost
    if ctx.quote == nil or type(avg) ~= "number" or avg <= 0 then
      return { decision = "deny", code = "POLICY_NO_AVERAGING_DOWN",
               reason = string.format("cannot value the %s position to check it (no quote or "
                 .. "no average cost)", order.symbol) }
    end
    local mark = ctx.quote.mid
    local loss_pct = (pos > 0) and (avg - mark) / avg * 100 or (mark - avg) / avg * 100
    if loss_pct > limit then
      return { decision = "deny", code = "POLICY_NO_AVERAGING_DOWN",
        reason = string.format("the %s position (%d shares, average cost $%.2f) is down "
          .. "%.2f%% at $%.2f; adding to a position losing more than %.2f%% is not allowed",
          order.symbol, math.floor(math.abs(pos)), avg, loss_pct, mark, limit) }
    end
    return true
  end,
}
