-- get_account_summary: balances and P&L from the broker.
local money = { type = "number" }
return {
  name = "get_account_summary",
  title = "Account summary",
  description = "Net liquidation value, cash, buying power, gross position value, realized and "
    .. "unrealized P&L and commissions of the trading account, in USD. Check buying_power before "
    .. "previewing a buy: a cash account cannot spend more than it has.",
  input = { type = "object", properties = {}, additionalProperties = false },
  output = {
    type = "object",
    required = { "account_id", "net_liquidation", "cash", "buying_power", "realized_pnl", "unrealized_pnl" },
    properties = {
      account_id = { type = "string" },
      account_type = { type = "string" },
      net_liquidation = money, cash = money, buying_power = money,
      gross_position_value = money, realized_pnl = money, unrealized_pnl = money,
      commissions = money,
    },
  },
  annotations = { readOnlyHint = true, openWorldHint = true },
  run = function()
    return ibkr.account()
  end,
}
