-- policies/loss_streak_cooldown.lua: after a run of losing exits, pause new
-- exposure for a while (freqtrade's StoplossGuard idea). Runs in the policy
-- sandbox (see policies/README.md).
--
-- A losing exit is an execution whose realized P&L, before commission, is
-- below zero: commissions alone do not count as a loss. The fills come from
-- ctx.today.fills, so the window never reaches back past the start of the
-- New York trading day. Orders that reduce a position always pass.

local function ny_hhmm(ctx, t)
  local h, m = ctx.ny_time(t)
  return string.format("%02d:%02d ET", h, m)
end

local function whole(p, key)
  local v = p[key]
  if type(v) ~= "number" or v < 0 or v ~= math.floor(v) then
    error(string.format("params.%s must be a whole number >= 0", key))
  end
  return v
end

return {
  name = "loss_streak_cooldown",
  description = "After max_losses losing exits within window_minutes, refuses new exposure "
    .. "for pause_minutes after the latest loss. Exits always pass.",

  params = {
    max_losses = 3,         -- losing exits that start a pause (0 = off)
    window_minutes = 240,   -- counted within this many minutes
    pause_minutes = 60,     -- pause after the latest of them
  },

  check = function(order, ctx)
    local p = ctx.params
    local max_losses = whole(p, "max_losses")
    local window = whole(p, "window_minutes") * 60
    local pause = whole(p, "pause_minutes") * 60
    if max_losses == 0 or order.reduces_position then return true end

    local losses, latest = 0, nil
    for _, f in ipairs(ctx.today.fills) do
      local gross = f.realized_pnl + (f.commission or 0)
      if gross < 0 and ctx.now - f.time <= window and f.time <= ctx.now then
        losses = losses + 1
        if latest == nil or f.time > latest then latest = f.time end
      end
    end
    if losses >= max_losses and ctx.now - latest < pause then
      return { decision = "deny", code = "POLICY_LOSS_STREAK",
        reason = string.format("%d losing exits in the last %d minutes (latest at %s); new "
          .. "exposure is paused until %s", losses, window // 60, ny_hhmm(ctx, latest),
          ny_hhmm(ctx, latest + pause)) }
    end
    return true
  end,
}
