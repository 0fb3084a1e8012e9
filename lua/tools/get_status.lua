-- get_status: where the agent starts. Pure host state, no broker round trip.
local num = { type = "number" }
return {
  name = "get_status",
  title = "Server status",
  description = "Start here. Reports the backend (sim = simulated account, tws = Interactive Brokers), "
    .. "whether it is connected (and, for tws, the connection's state and last error), whether the account is paper or live (a live account is read-only unless the operator allowed it), whether trading is enabled (if not, previews work but nothing can be "
    .. "placed), the account, whether the kill switch is engaged, orders submitted today, and every "
    .. "active risk limit and operator policy. Read the limits before sizing an order; then use "
    .. "get_quote and preview_order.",
  input = { type = "object", properties = {}, additionalProperties = false },
  output = {
    type = "object",
    required = { "backend", "connected", "trading_enabled", "account", "halted", "orders_today", "limits" },
    properties = {
      backend = { type = "string" },
      connected = { type = "boolean" },
      trading_enabled = { type = "boolean" },
      account = { type = "string" },
      account_type = { type = "string", enum = { "paper", "live", "unknown" } },
      live_trading_allowed = { type = "boolean" },
      trading_blocked = { type = "string" },
      connection = {
        type = "object",
        required = { "state" },
        properties = {
          state = { type = "string", enum = { "connected", "connecting", "reconciling", "disconnected" } },
          host = { type = "string" }, port = { type = "integer" }, client_id = { type = "integer" },
          server_version = { type = "integer" }, reconnects = { type = "integer" },
          next_retry_in_seconds = num, delayed_data = { type = "boolean" },
          last_error = { type = "string" }, last_error_at = { type = "string" },
          account_file = { type = "string" },
        },
      },
      halted = { type = "boolean" },
      halt_reason = { type = "string" },
      orders_today = { type = "integer" },
      notional_today = { type = "number" },
      pending_tokens = { type = "integer" },
      time = { type = "string" },
      policies = {
        type = "array",
        items = { type = "object", required = { "name", "description" },
                  properties = { name = { type = "string" }, description = { type = "string" } } },
      },
      policy_set_hash = { type = "string" },
      limits = {
        type = "object",
        properties = {
          max_order_qty = num, max_order_notional = num, max_position_notional = num,
          allow_short = { type = "boolean" },
          symbol_whitelist = { type = "array", items = { type = "string" } },
          max_daily_orders = { type = "integer" },
          market_order_collar_bps = num, max_price_drift_bps = num, max_quote_age_seconds = num,
          allow_delayed_quotes = { type = "boolean" }, token_ttl_seconds = num,
          cash_buffer_pct = num, limit_collar_bps = num, passive_max_bps = num, min_price = num,
          max_spread_bps = num, max_position_pct_nlv = num, max_gross_pct_nlv = num,
          max_open_orders = num, max_open_orders_per_symbol = num, max_orders_per_minute = num,
          max_orders_per_hour = num, duplicate_window_seconds = num, max_daily_notional = num,
          max_daily_loss = num, max_consecutive_rejects = num,
          confirm = { type = "string", enum = { "token", "elicit" } }, confirm_above_notional = num,
          halt_cancels_working_orders = { type = "boolean" },
        },
      },
    },
  },
  annotations = { readOnlyHint = true, openWorldHint = false },
  run = function()
    return ibkr.status()
  end,
}
