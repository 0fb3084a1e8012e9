-- halt_trading: the kill switch. One way: the agent can engage it, never release it.
return {
  name = "halt_trading",
  title = "Halt trading (kill switch)",
  description = "Emergency stop: from now on every preview is rejected and no order can be placed, "
    .. "for the rest of this server's life, and the working orders placed through this server are "
    .. "cancelled (unless the operator set IBKR_HALT_CANCELS=false: then they stay at the broker; the "
    .. "result's message says which). Use it when something looks wrong. You cannot undo it: only a "
    .. "human operator can resume trading.",
  input = {
    type = "object", additionalProperties = false,
    properties = {
      reason = { type = "string", maxLength = 500, description = "Why trading is being halted" },
    },
  },
  output = {
    type = "object", required = { "halted", "reason", "message" },
    properties = {
      halted = { type = "boolean" }, reason = { type = "string" }, message = { type = "string" },
    },
  },
  annotations = { readOnlyHint = false, destructiveHint = true, idempotentHint = true,
                  openWorldHint = false },
  run = function(a)
    return ibkr.halt(a.reason or "")
  end,
}
