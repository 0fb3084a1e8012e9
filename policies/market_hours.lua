-- policies/market_hours.lua: no new exposure while the New York market is
-- closed. Runs in the policy sandbox (see policies/README.md); the times
-- come from ctx.now, the server's injected clock (simulator time in the
-- simulator), converted to New York time with the system tz database, so
-- daylight saving is handled in C and never by this file.
--
-- Orders that shrink the current position (exits) always pass: a closed
-- market should never trap an operator in a position
-- (reference/risk-controls.md section 4, rule 6).

local DAYS = { [0] = "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
               "Saturday" }

local OPEN = 9 * 60 + 30        -- 09:30 ET, minutes after midnight
local CLOSE = 16 * 60           -- 16:00 ET
local EARLY_CLOSE = 13 * 60     -- 13:00 ET on the early-close days below
local EXT_OPEN = 4 * 60         -- 04:00 ET: start of pre-market
local EXT_CLOSE = 20 * 60       -- 20:00 ET: end of after-hours
local EARLY_EXT_CLOSE = 17 * 60 -- 17:00 ET: end of after-hours on early-close days

local HOURS = "regular hours are 09:30-16:00 ET, Monday to Friday"

-- Whether list (a read-only array from ctx.params) contains value.
local function contains(list, value)
  if list == nil then return false end
  for _, v in ipairs(list) do
    if v == value then return true end
  end
  return false
end

local function hhmm(minutes)
  return string.format("%02d:%02d", minutes // 60, minutes % 60)
end

-- A whole number of minutes from params, 0 when absent.
local function minutes_param(p, key)
  local v = p[key]
  if v == nil then return 0 end
  if type(v) ~= "number" or v < 0 or v ~= math.floor(v) then
    error(key .. " must be a whole number of minutes >= 0")
  end
  return v
end

return {
  name = "market_hours",
  description = "Denies orders that add exposure outside regular New York trading hours "
    .. "(09:30-16:00 ET, Monday to Friday), on listed exchange holidays and after 13:00 ET "
    .. "on listed early-close days. Orders that reduce a position always pass.",

  params = {
    -- true lets limit (and stop) orders through in pre-market (04:00-09:30 ET) and
    -- after-hours (16:00-20:00 ET; 13:00-17:00 ET on early-close days) on trading
    -- days. Market orders are never sent outside the regular session.
    allow_outside_rth = false,
    -- NYSE full-day closures, "YYYY-MM-DD" in New York. Keep this list current.
    holidays = {
      "2025-01-01", -- New Year's Day
      "2025-01-09", -- National Day of Mourning for President Carter
      "2025-01-20", -- Martin Luther King Jr. Day
      "2025-02-17", -- Washington's Birthday
      "2025-04-18", -- Good Friday
      "2025-05-26", -- Memorial Day
      "2025-06-19", -- Juneteenth
      "2025-07-04", -- Independence Day
      "2025-09-01", -- Labor Day
      "2025-11-27", -- Thanksgiving Day
      "2025-12-25", -- Christmas Day
      "2026-01-01", -- New Year's Day
      "2026-01-19", -- Martin Luther King Jr. Day
      "2026-02-16", -- Washington's Birthday
      "2026-04-03", -- Good Friday
      "2026-05-25", -- Memorial Day
      "2026-06-19", -- Juneteenth
      "2026-07-03", -- Independence Day (observed)
      "2026-09-07", -- Labor Day
      "2026-11-26", -- Thanksgiving Day
      "2026-12-25", -- Christmas Day
      "2027-01-01", -- New Year's Day
      "2027-01-18", -- Martin Luther King Jr. Day
      "2027-02-15", -- Washington's Birthday
      "2027-03-26", -- Good Friday
      "2027-05-31", -- Memorial Day
      "2027-06-18", -- Juneteenth (observed)
      "2027-07-05", -- Independence Day (observed)
      "2027-09-06", -- Labor Day
      "2027-11-25", -- Thanksgiving Day
      "2027-12-24", -- Christmas Day (observed)
    },
    -- NYSE early closes (13:00 ET).
    early_closes = {
      "2025-07-03", "2025-11-28", "2025-12-24",
      "2026-11-27", "2026-12-24",
      "2027-11-26",
    },
    -- No new exposure in the first / last N minutes of the regular session
    -- (the opening auction and the LULD double-width bands). 0 = off.
    no_trade_open_minutes = 0,
    no_trade_close_minutes = 0,
  },

  check = function(order, ctx)
    if order.reduces_position then
      return true
    end
    local p = ctx.params
    local hour, minute, wday = ctx.ny_time()
    local now = hour * 60 + minute
    local date = ctx.ny_date()
    local when = string.format("%s %02d:%02d ET", DAYS[wday], hour, minute)

    if wday == 0 or wday == 6 then
      return false, string.format("market is closed (%s); %s", when, HOURS)
    end
    if contains(p.holidays, date) then
      return false, string.format("market is closed for a holiday (%s %s); %s",
        DAYS[wday], date, HOURS)
    end

    local close = contains(p.early_closes, date) and EARLY_CLOSE or CLOSE
    local open_gap = minutes_param(p, "no_trade_open_minutes")
    local close_gap = minutes_param(p, "no_trade_close_minutes")

    if now >= OPEN and now < close then
      if now < OPEN + open_gap then
        return false, string.format("no new positions in the first %d minutes of the session "
          .. "(%s; trading opens at %s ET)", open_gap, when, hhmm(OPEN + open_gap))
      end
      if now >= close - close_gap then
        return false, string.format("no new positions in the last %d minutes of the session "
          .. "(%s; the session closes at %s ET)", close_gap, when, hhmm(close))
      end
      return true
    end

    -- Outside the regular session.
    local closed = string.format("market is closed (%s); %s", when, HOURS)
    if close ~= CLOSE then
      closed = string.format("market is closed (%s; early close at %s ET today); %s",
        when, hhmm(close), HOURS)
    end
    if p.allow_outside_rth ~= true then
      return false, closed
    end
    if order.order_type == "MKT" then
      return false, closed .. "; market orders are never sent outside regular hours, use a "
        .. "limit order"
    end
    local ext_close = close ~= CLOSE and EARLY_EXT_CLOSE or EXT_CLOSE
    if now < EXT_OPEN or now >= ext_close then
      return false, string.format("market is closed (%s); extended hours are %s-%s ET",
        when, hhmm(EXT_OPEN), hhmm(ext_close))
    end
    return true
  end,
}
