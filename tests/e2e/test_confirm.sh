#!/usr/bin/env bash
# Human confirmation of orders over raw JSON-RPC, both protocol eras
# (tests/e2e/test_confirm.mjs). $1: the ibkr-mcp binary.
set -eu
exec node "$(dirname "$0")/test_confirm.mjs" "${1:?usage: test_confirm.sh BINARY}"
