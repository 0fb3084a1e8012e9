-- preview_order: step 1 of 2. Risk-checks an order and, when it passes and
-- trading is enabled, returns the single-use token place_order needs.
local num = { type = "number" }
return {
  name = "preview_order",
  title = "Preview an order (step 1 of 2)",
  description = "Step 1 of 2 for any trade. Prices the order from a fresh quote and runs every "
    .. "risk check (quantity, notional and position caps, short selling, symbol list, daily order "
    .. "count, quote sanity, kill switch). Nothing is sent to the market. If risk.approved is true "
    .. "and trading is enabled, the result carries a single-use confirmation_token valid for "
    .. "token_expires_in_seconds: pass it to place_order to submit exactly this order. If rejected, "
    .. "risk.reasons says why with figures (risk.codes are stable codes): change the order and "
    .. "preview again. Market orders are priced at a protective collar, so the caps apply to them.",
  input = {
    type = "object",
    required = { "symbol", "action", "quantity" },
    additionalProperties = false,
    properties = {
      symbol = { type = "string", pattern = "^[A-Za-z][A-Za-z0-9.]{0,11}$",
                 description = "Ticker symbol, e.g. NVDA" },
      action = { type = "string", enum = { "BUY", "SELL" } },
      quantity = { type = "integer", minimum = 1, maximum = 1000000000,
                   description = "Whole number of shares" },
      order_type = { type = "string", enum = { "MKT", "LMT", "STP", "STP LMT" },
                     description = "Default MKT. LMT needs limit_price; STP needs stop_price; STP LMT needs both." },
      limit_price = { type = "number", exclusiveMinimum = 0 },
      stop_price = { type = "number", exclusiveMinimum = 0 },
      tif = { type = "string", enum = { "DAY", "GTC", "IOC" }, description = "Default DAY" },
    },
  },
  output = {
    type = "object",
    required = { "symbol", "action", "quantity", "order_type", "reference_price",
                 "estimated_notional", "risk", "trading_enabled", "confirmation_token",
                 "token_expires_in_seconds", "next_step" },
    properties = {
      symbol = { type = "string" }, action = { type = "string" }, quantity = num,
      order_type = { type = "string" }, limit_price = num, stop_price = num,
      tif = { type = "string" },
      reference_price = num, pricing_price = num, estimated_notional = num,
      risk = {
        type = "object", required = { "approved", "reasons", "codes" },
        properties = {
          approved = { type = "boolean" },
          reasons = { type = "array", items = { type = "string" } },
          codes = { type = "array", items = { type = "string" } },
        },
      },
      trading_enabled = { type = "boolean" },
      confirmation_token = { type = { "string", "null" } },
      token_expires_in_seconds = { type = { "number", "null" } },
      next_step = { type = "string" },
      confirmation_required = { type = "boolean" },
      confirmation_reason = { type = "string" },
      quote = {
        type = "object",
        properties = { symbol = { type = "string" }, bid = num, ask = num, last = num, mid = num,
                       bid_size = num, ask_size = num, time = { type = "string" },
                       delayed = { type = "boolean" } },
      },
    },
  },
  annotations = { readOnlyHint = true, openWorldHint = true },
  run = function(a)
    local p, err = ibkr.preview {
      symbol = a.symbol:upper(), action = a.action, quantity = a.quantity,
      order_type = a.order_type or "MKT", limit_price = a.limit_price,
      stop_price = a.stop_price, tif = a.tif or "DAY",
    }
    if not p then return nil, err end
    if p.confirmation_token then
      p.next_step = string.format(
        "Call place_order with confirmation_token '%s' within %.0f seconds to submit this exact order.",
        p.confirmation_token, p.token_expires_in_seconds)
      if p.confirmation_required then
        p.next_step = p.next_step .. " A human will be asked to confirm it first ("
          .. p.confirmation_reason .. "); if they decline, it is not placed."
      end
    elseif not p.risk.approved then
      p.next_step = "Order REJECTED by risk checks; not placeable. Address the reasons and preview again."
    else
      p.next_step = "Risk checks pass, but trading is disabled (IBKR_TRADING_ENABLED is not true): "
        .. "this preview is informational and nothing can be placed."
    end
    return p
  end,
}
