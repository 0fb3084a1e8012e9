-- get_open_orders: orders still working at the broker.
local num = { type = "number" }
return {
  name = "get_open_orders",
  title = "Open orders",
  description = "Working orders (not yet filled, cancelled or rejected): id, symbol, side, "
    .. "quantity, type, prices, status, filled and remaining quantity. Cancel one with cancel_order(order_id).",
  input = { type = "object", properties = {}, additionalProperties = false },
  output = {
    type = "object",
    required = { "orders", "count" },
    properties = {
      count = { type = "integer" },
      orders = {
        type = "array",
        items = {
          type = "object",
          required = { "order_id", "symbol", "action", "quantity", "order_type", "status" },
          properties = {
            order_id = { type = "string" }, symbol = { type = "string" },
            action = { type = "string" }, quantity = num, order_type = { type = "string" },
            limit_price = num, stop_price = num, tif = { type = "string" },
            status = { type = "string" }, filled_quantity = num, remaining_quantity = num,
            avg_fill_price = num, submitted_at = { type = "string" }, message = { type = "string" },
            order_ref = { type = "string" },
          },
        },
      },
    },
  },
  annotations = { readOnlyHint = true, openWorldHint = true },
  run = function()
    local list, err = ibkr.open_orders()
    if not list then return nil, err end
    return { orders = list, count = #list }
  end,
}
