#!/usr/bin/env bash
# The MCP protocol surface beyond tools, over the real pipes: logging,
# resources, prompts, the 2026-07-28 era and 2025-03-26 batches. Runs
# tests/e2e/protocol/test_protocol.mjs (node built-ins only) against the
# binary given as the first argument.
set -eu
bin=${1:?usage: test_protocol.sh <path-to-ibkr-mcp>}
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null 2>&1; then
  echo "node is required for tests/e2e/protocol" >&2
  exit 1
fi
exec node "$here/protocol/test_protocol.mjs" "$bin"
