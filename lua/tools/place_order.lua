-- place_order: step 2 of 2. Only a token from preview_order can place.
local num = { type = "number" }
return {
  name = "place_order",
  title = "Place a previewed order (step 2 of 2)",
  description = "Step 2 of 2. Submits the order a preview_order call approved, identified only by "
    .. "its confirmation_token; the order cannot be changed here. The token works once and expires "
    .. "(see token_expires_in_seconds). Before sending, every risk check runs again with a fresh "
    .. "quote, and the order is refused if the price moved too far since the preview. The result "
    .. "gives the order id, its status (FILLED, SUBMITTED = working, REJECTED, ...), the filled "
    .. "quantity and the average fill price. Retrying with a used token never sends a second order: "
    .. "the answer names the order the token already placed. Follow working orders with "
    .. "get_open_orders and fills with get_trades.",
  input = {
    type = "object", required = { "confirmation_token" }, additionalProperties = false,
    properties = {
      confirmation_token = { type = "string", minLength = 1, maxLength = 128,
                             description = "The token preview_order returned" },
    },
  },
  output = {
    type = "object",
    required = { "order_id", "symbol", "action", "quantity", "status", "filled_quantity",
                 "avg_fill_price", "message" },
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
    return ibkr.place(a.confirmation_token)
  end,
}
