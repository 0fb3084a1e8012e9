#!/usr/bin/env bash
# cmake --install puts the binary in bin/ and the Lua tools, policies,
# examples and man page under share/; the installed binary finds its tools
# and policies there without any configuration, from any directory.
set -u
bin=${1:?usage: test_install.sh BINARY}
build=$(cd "$(dirname "$bin")" && pwd)
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
passed=0 failed=0
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; failed=$((failed + 1)); }

if cmake --install "$build" --prefix "$prefix" >/dev/null 2>"$prefix.err"; then ok "cmake --install"; else bad "cmake --install: $(cat "$prefix.err")"; fi
rm -f "$prefix.err"
for f in bin/ibkr-mcp share/ibkr-mcp/lua/tools/place_order.lua share/ibkr-mcp/policies/market_hours.lua \
         share/ibkr-mcp/examples/strict.env share/man/man1/ibkr-mcp.1; do
  if [ -e "$prefix/$f" ]; then ok "installed $f"; else bad "missing $f"; fi
done

# Run it from / with a clean environment: it must load the installed files.
out=$(cd / && printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' |
      env -i PATH=/usr/bin:/bin HOME="$prefix" IBKR_STATE_DIR="$prefix/state" timeout 20 "$prefix/bin/ibkr-mcp" 2>"$prefix/stderr")
if printf '%s' "$out" | grep -q '"name":"place_order"'; then ok "installed binary lists the tools"; else bad "tools/list: $out"; fi
if grep -q "tools from $prefix/bin/../share/ibkr-mcp/lua/tools" "$prefix/stderr"; then ok "tools come from the install prefix"; else bad "tools from elsewhere: $(cat "$prefix/stderr")"; fi
if grep -q "policies from $prefix/bin/../share/ibkr-mcp/policies" "$prefix/stderr"; then ok "policies come from the install prefix"; else bad "policies from elsewhere: $(cat "$prefix/stderr")"; fi
v=$("$prefix/bin/ibkr-mcp" --version)
case "$v" in "ibkr-mcp "*) ok "--version: $v" ;; *) bad "--version: $v" ;; esac
if "$prefix/bin/ibkr-mcp" --help | grep -q "policy check"; then ok "--help"; else bad "--help"; fi
if command -v man >/dev/null 2>&1; then
  if MANWIDTH=80 man -l "$prefix/share/man/man1/ibkr-mcp.1" 2>/dev/null | grep -q "confirmation token"; then ok "man page renders"; else bad "man page does not render"; fi
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
