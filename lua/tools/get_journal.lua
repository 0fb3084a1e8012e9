-- get_journal: the audit record. Read-only; what the server did and why.
return {
  name = "get_journal",
  title = "Audit journal",
  description = "The server's append-only audit journal for one New York trading day (today by "
    .. "default): every preview with its risk decision and reasons, every redeemed confirmation "
    .. "(token hashes only, never tokens), orders sent and acknowledged, fills, cancels, "
    .. "rejections, human confirmations, halts and resumes, connection events. Use it to see what "
    .. "happened, e.g. after a restart or a timeout. Records are oldest first; 'limit' keeps the "
    .. "newest ones.",
  input = {
    type = "object", additionalProperties = false,
    properties = {
      date = { type = "string", pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
               description = "Trading day YYYY-MM-DD (New York); default today" },
      limit = { type = "integer", minimum = 1, maximum = 1000,
                description = "Newest records to return (default 100)" },
    },
  },
  output = {
    type = "object", required = { "date", "count", "records" },
    properties = {
      date = { type = "string" },
      count = { type = "integer" },
      records = {
        type = "array",
        items = { type = "object", required = { "kind", "time" },
                  properties = { kind = { type = "string" }, time = { type = "string" } } },
      },
    },
  },
  annotations = { readOnlyHint = true, openWorldHint = false },
  run = function(a)
    return ibkr.journal(a.date, a.limit)
  end,
}
