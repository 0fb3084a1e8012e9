-- get_positions: what the account holds.
local num = { type = "number" }
return {
  name = "get_positions",
  title = "Positions",
  description = "Open positions: symbol, quantity (negative = short), average cost, market price, "
    .. "market value, unrealized and realized P&L. An empty list means the account is flat. A "
    .. "SELL larger than the quantity held is refused unless short selling is allowed.",
  input = { type = "object", properties = {}, additionalProperties = false },
  output = {
    type = "object",
    required = { "positions", "count" },
    properties = {
      count = { type = "integer" },
      positions = {
        type = "array",
        items = {
          type = "object",
          required = { "symbol", "quantity", "avg_cost", "market_price", "market_value", "unrealized_pnl" },
          properties = {
            symbol = { type = "string" }, quantity = num, avg_cost = num, market_price = num,
            market_value = num, unrealized_pnl = num, realized_pnl = num,
          },
        },
      },
    },
  },
  annotations = { readOnlyHint = true, openWorldHint = true },
  run = function()
    local list, err = ibkr.positions()
    if not list then return nil, err end
    return { positions = list, count = #list }
  end,
}
