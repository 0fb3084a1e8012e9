-- get_quote: one snapshot quote.
local num = { type = "number" }
return {
  name = "get_quote",
  title = "Quote",
  description = "Bid, ask, last and mid price (with sizes and the quote time) for one US stock "
    .. "symbol, e.g. NVDA. Use it before preview_order to see where the market is; 'delayed' is "
    .. "true when the data is not real time, and orders are then refused unless the operator allows it.",
  input = {
    type = "object", required = { "symbol" }, additionalProperties = false,
    properties = {
      symbol = { type = "string", pattern = "^[A-Za-z][A-Za-z0-9.]{0,11}$",
                 description = "Ticker symbol, e.g. AAPL" },
    },
  },
  output = {
    type = "object",
    required = { "symbol", "bid", "ask", "last", "mid", "time" },
    properties = {
      symbol = { type = "string" }, bid = num, ask = num, last = num, mid = num,
      bid_size = num, ask_size = num, time = { type = "string" }, delayed = { type = "boolean" },
    },
  },
  annotations = { readOnlyHint = true, openWorldHint = true },
  run = function(args)
    return ibkr.quote(args.symbol:upper())
  end,
}
