#!/usr/bin/env bash
# The TWS backend against `ibkr-mcp gateway` over loopback, through the MCP
# tools (tests/e2e/test_tws_backend.mjs). $1: the ibkr-mcp binary.
set -eu
exec node "$(dirname "$0")/test_tws_backend.mjs" "${1:?usage: test_tws_backend.sh BINARY}"
