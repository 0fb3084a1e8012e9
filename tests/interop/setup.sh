#!/usr/bin/env bash
# Installs the independent clients the interop tests drive into DIR (the
# build tree), from the npm registry, pinned by tests/interop/package.json.
set -eu
dir=${1:?usage: setup.sh DIR}
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
if [ -f "$dir/node_modules/.ibkr-mcp-stamp" ] && cmp -s "$src/package.json" "$dir/package.json"; then
  exit 0
fi
cp "$src/package.json" "$dir/package.json"
(cd "$dir" && npm install --no-audit --no-fund --loglevel=error >&2)
touch "$dir/node_modules/.ibkr-mcp-stamp"
