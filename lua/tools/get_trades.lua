-- get_trades: the execution blotter.
local num = { type = "number" }
return {
  name = "get_trades",
  title = "Trades (executions)",
  description = "Executions of this session's account, oldest first: execution id, order id, "
    .. "symbol, side, quantity, price, commission, realized P&L and time. Use it to confirm what "
    .. "actually filled after place_order.",
  input = { type = "object", properties = {}, additionalProperties = false },
  output = {
    type = "object",
    required = { "trades", "count" },
    properties = {
      count = { type = "integer" },
      trades = {
        type = "array",
        items = {
          type = "object",
          required = { "exec_id", "order_id", "symbol", "action", "quantity", "price", "time" },
          properties = {
            exec_id = { type = "string" }, order_id = { type = "string" },
            symbol = { type = "string" }, action = { type = "string" }, quantity = num,
            price = num, commission = num, realized_pnl = num, time = { type = "string" },
            order_ref = { type = "string" },
          },
        },
      },
    },
  },
  annotations = { readOnlyHint = true, openWorldHint = true },
  run = function()
    local list, err = ibkr.trades()
    if not list then return nil, err end
    return { trades = list, count = #list }
  end,
}
