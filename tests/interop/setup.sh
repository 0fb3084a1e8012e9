#!/usr/bin/env bash
# Installs the independent clients the interop tests drive into DIR (the
# build tree), from the npm registry, exactly as tests/interop/package-lock.json
# pins them (npm ci). Skips the work when DIR already holds that lock.
set -eu
dir=${1:?usage: setup.sh DIR}
src=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir"
if [ -f "$dir/node_modules/.ibkr-mcp-stamp" ] && cmp -s "$src/package-lock.json" "$dir/package-lock.json"; then
  exit 0
fi
cp "$src/package.json" "$src/package-lock.json" "$dir/"
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
touch "$dir/node_modules/.ibkr-mcp-stamp"
