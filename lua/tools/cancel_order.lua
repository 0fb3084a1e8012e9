-- cancel_order: cancels a working order. Always allowed, even when halted.
local num = { type = "number" }
return {
  name = "cancel_order",
  title = "Cancel an order",
  description = "Cancels a working order by its order_id (from place_order or get_open_orders). "
    .. "A filled, cancelled or rejected order cannot be cancelled; the answer says its status. "
    .. "Cancelling is allowed even while trading is halted.",
  input = {
    type = "object", required = { "order_id" }, additionalProperties = false,
    properties = {
      order_id = { type = { "string", "integer" }, description = "The order id, e.g. \"1000\"" },
    },
  },
  output = {
    type = "object",
    required = { "order_id", "symbol", "status", "message" },
    properties = {
      order_id = { type = "string" }, symbol = { type = "string" }, action = { type = "string" },
      quantity = num, order_type = { type = "string" }, limit_price = num, stop_price = num,
      tif = { type = "string" }, status = { type = "string" }, filled_quantity = num,
      remaining_quantity = num, avg_fill_price = num, submitted_at = { type = "string" },
      message = { type = "string" }, order_ref = { type = "string" },
    },
  },
  annotations = { readOnlyHint = false, destructiveHint = true, idempotentHint = true,
                  openWorldHint = true },
  run = function(a)
    local o, err = ibkr.cancel(tostring(a.order_id))
    if not o then return nil, err end
    if o.status == "CANCELLED" and (o.message == nil or o.message == "") then
      o.message = "Cancelled."
    end
    return o
  end,
}
