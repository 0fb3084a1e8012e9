#!/usr/bin/env bash
# End-to-end tests of the operator console: piped `ibkr-mcp repl` sessions
# compared line by line, and `ibkr-mcp attach` into a running `serve` while
# an MCP client drives it over a pipe.
#
# Usage: bash tests/e2e/test_repl.sh <path-to-ibkr-mcp>
#
# bash and node (built-ins only, to parse JSON). Every wait is bounded,
# every process started here is killed on the way out, state lives in a
# temporary directory, and the only sockets are unix sockets in it.
set -u

BIN=${1:?usage: test_repl.sh <path-to-ibkr-mcp>}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ibkr-repl-e2e.XXXXXX")
FAILS=0
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    [ -n "${SRV_IN:-}" ] && exec {SRV_IN}>&- 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

ok() { printf 'ok   %s\n' "$1"; }
fail() {
    printf 'FAIL %s\n' "$1"
    FAILS=$((FAILS + 1))
}

# The environment of every process: built from scratch, so the caller's
# IBKR_* settings cannot change the outcome.
run_env() {
    local state=$1
    shift
    env -i PATH="$PATH" HOME="$state" XDG_STATE_HOME="$state" IBKR_STATE_DIR="$state" \
        IBKR_TOOLS_DIR="$REPO/lua/tools" IBKR_SIM_FREEZE=true IBKR_TRADING_ENABLED=true \
        IBKR_LOG_LEVEL=info "$@"
}

# repl_case NAME [VAR=VALUE...] : stdin of the case is the input, $EXPECTED
# the expected stdout.
repl_case() {
    local name=$1
    shift
    local dir="$TMP/repl-$name"
    mkdir -p "$dir"
    cat > "$dir/in"
    if ! run_env "$dir/state" "$@" timeout 30 "$BIN" repl < "$dir/in" > "$dir/out" 2> "$dir/err"; then
        fail "repl $name: exit status (stderr: $(tail -3 "$dir/err"))"
        return
    fi
    if [ "$(cat "$dir/out")" == "$EXPECTED" ]; then
        ok "repl $name"
    else
        fail "repl $name"
        diff <(printf '%s\n' "$EXPECTED") "$dir/out" | sed 's/^/     /'
    fi
}

# ---- piped `repl` sessions ---------------------------------------------------

EXPECTED='2
6
hello
{"a": [1, 2, 3], "b": true, "c": "x"}
42
42'
repl_case expressions <<'EOF'
1 + 1
=2 * 3
"hello"
{c = "x", b = true, a = {1, 2, 3}}
function double(x)
  local y = x * 2
  return y
end
double(21)
t = {
  answer = 42,
}
  print(t.answer)
EOF

EXPECTED='stdin:1: boom
stack traceback:
	[C]: in function '"'"'error'"'"'
	stdin:1: in main chunk
after
stdin:1: unexpected symbol near '"'"')'"'"'
still here'
repl_case errors <<'EOF'
error("boom")
"after"
x = )
"still here"
EOF

EXPECTED='true
string
SENT
1
1
NVDA
10'
repl_case order_flow <<'EOF'
p = preview{symbol = "nvda", action = "BUY", quantity = 10}
p.approved
type(p.token)
r = place(p.token)
r.status
status().orders_today
#trades()
trades()[1].symbol
trades()[1].shares
EOF

EXPECTED='true
1
0
ETOKEN_UNKNOWN
false'
repl_case token_expiry IBKR_TOKEN_TTL_SECONDS=5 <<'EOF'
p = preview{symbol = "AAPL", action = "BUY", quantity = 5}
p.approved
#tokens()
s = sim.advance(10)
#tokens()
place(p.token).status
place(p.token).placed
EOF

EXPECTED='trading halted
false
true
trading resumed
true'
repl_case halt_resume <<'EOF'
halt("test halt")
q = preview{symbol = "NVDA", action = "BUY", quantity = 1}
q.approved
(function() for _, r in ipairs(q.reasons) do if r.code == "RISK_HALTED" then return true end end return false end)()
resume("test over")
preview{symbol = "NVDA", action = "BUY", quantity = 1}.approved
EOF

EXPECTED='instruction budget exceeded (200000000 instructions in one line)
stack traceback:
	stdin:1: in main chunk
alive
nil
nil
false	"not enough memory"
not enough memory
false
attempt to load a binary chunk (mode is '"'"'t'"'"')
[[[[[[{...}]]]]]]'
repl_case budget_and_sandbox <<'EOF'
while true do end
"alive"
io
os
pcall(string.rep, "x", 1e9)
select(2, pcall(string.rep, "x", 1e9))
load(string.dump(function() end)) ~= nil
select(2, load(string.dump(function() end)))
{{{{{{{{1}}}}}}}}
EOF

# The length cap: 256 items, then a count of the rest.
OUT=$(printf '(function() local t = {} for i = 1, 300 do t[i] = i end return t end)()\n' |
    run_env "$TMP/state-cap" timeout 30 "$BIN" repl 2>/dev/null)
if [ "$(printf '%s\n' "$OUT" | wc -l)" -eq 259 ] && [ "$(printf '%s\n' "$OUT" | tail -2)" == "  ...(44 more)
]" ]; then
    ok "repl length cap"
else
    fail "repl length cap: $(printf '%s\n' "$OUT" | tail -3)"
fi

# ---- `attach` into a running server ---------------------------------------------

STATE="$TMP/server state"
mkdir -p "$TMP/srv"
SOCK="$STATE/repl.sock"

mkfifo "$TMP/srv/in"
run_env "$STATE" IBKR_REPL=true "$BIN" serve < "$TMP/srv/in" > "$TMP/srv/out" 2> "$TMP/srv/err" &
SRV_PID=$!
PIDS+=("$SRV_PID")
exec {SRV_IN}> "$TMP/srv/in"

# rpc ID METHOD PARAMS: sends a request, prints its response (ids are
# explicit: callers run rpc in $(...) subshells).
# rpc JSON-PARAMS-FOR-tools/call... : sends a request, prints its response.
rpc() {
    local rpc_id=$1 method=$2 params=$3 line
    printf '{"jsonrpc":"2.0","id":%d,"method":"%s","params":%s}\n' "$rpc_id" "$method" "$params" >&"$SRV_IN"
    for _ in $(seq 200); do
        line=$(grep -E "\"id\":$rpc_id[,}]" "$TMP/srv/out" | head -1)
        if [ -n "$line" ]; then
            printf '%s\n' "$line"
            return 0
        fi
        sleep 0.05
    done
    return 1
}
json() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);const r=('"$1"');console.log(r===undefined?"":r);});'; }
console() { timeout 10 "$BIN" attach "${1:-$SOCK}"; }

rpc 1 initialize '{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test_repl","version":"1"}}' > "$TMP/srv/init" ||
    fail "serve: no initialize response"
printf '{"jsonrpc":"2.0","method":"notifications/initialized"}\n' >&"$SRV_IN"

for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
if [ -S "$SOCK" ]; then ok "serve: console socket exists"; else fail "serve: no console socket at $SOCK"; fi
[ "$(stat -c %a "$SOCK" 2>/dev/null)" == 600 ] && ok "serve: socket mode 0600" ||
    fail "serve: socket mode $(stat -c %a "$SOCK" 2>/dev/null)"
[ "$(stat -c %a "$STATE")" == 700 ] && ok "serve: state dir mode 0700" ||
    fail "serve: state dir mode $(stat -c %a "$STATE")"

PREVIEW='{"name":"preview_order","arguments":{"symbol":"NVDA","action":"BUY","quantity":10}}'
TOKEN=$(rpc 2 tools/call "$PREVIEW" | json 'v.result.structuredContent.confirmation_token')
[[ $TOKEN =~ ^[0-9a-f]{32}$ ]] && ok "mcp: preview issued a token" || fail "mcp: preview token '$TOKEN'"

OUT=$(printf '=#tokens()\n=tokens()[1].token\n=tokens()[1].order\n=status().orders_today\n' | console)
EXPECTED_HEAD="${TOKEN:0:8}..."
if [ "$(printf '%s\n' "$OUT" | sed -n 2,5p)" == "1
$EXPECTED_HEAD
BUY 10 NVDA MKT lmt=0 stp=0 DAY
0" ]; then
    ok "attach: sees the MCP client's pending token (value not shown) and today's count"
else
    fail "attach: tokens/status: $OUT"
fi

PLACED=$(rpc 3 tools/call "{\"name\":\"place_order\",\"arguments\":{\"confirmation_token\":\"$TOKEN\"}}" |
    json 'v.result.isError === true')
[ "$PLACED" == false ] && ok "mcp: place_order" || fail "mcp: place_order isError=$PLACED"
OUT=$(printf '=status().orders_today\n=#tokens()\n' | console | sed -n 2,3p)
[ "$OUT" == "1
0" ] && ok "attach: today's count after the MCP order" || fail "attach: after place: $OUT"

# Commands that wait for the broker, from a console, queued behind each other.
OUT=$(printf '=quote("NVDA").symbol\np = preview{symbol="AAPL", action="BUY", quantity=2}\n=place(p.token).status\n=#trades()\n=status().orders_today\n' |
    console | sed -n 2,6p)
[ "$OUT" == "NVDA
SENT
2
2" ] && ok "attach: quote, preview, place and trades() inside the server" ||
    fail "attach: waiting commands: $OUT"
grep -q 'console attach#[0-9]* (pid [0-9]*, uid [0-9]*): place [0-9a-f]\{8\}\.\.\.' "$TMP/srv/err" &&
    ok "serve: the console's place is logged with its origin" || fail "serve: no origin log for place"

# Two consoles at once: one held open while another runs.
( printf '=1\n'; sleep 1.5; printf '="first done"\n' ) | console > "$TMP/srv/first" &
FIRST=$!
sleep 0.3
OUT=$(printf '="second"\n' | console | sed -n 2p)
wait "$FIRST"
[ "$OUT" == second ] && grep -qx 'first done' "$TMP/srv/first" && ok "attach: two consoles at once" ||
    fail "attach: two consoles: '$OUT' / $(cat "$TMP/srv/first")"

OUT=$(printf 'halt("console test")\n' | console | sed -n 2p)
[ "$OUT" == "trading halted" ] && ok "attach: halt()" || fail "attach: halt: $OUT"
RESP=$(rpc 4 tools/call "$PREVIEW")
CODES=$(printf '%s' "$RESP" | json 'JSON.stringify(v.result.structuredContent ? v.result.structuredContent.risk : v.result)')
case $CODES in
    *RISK_HALTED*) ok "mcp: preview after the console's halt fails with RISK_HALTED" ;;
    *) fail "mcp: preview after halt: $RESP" ;;
esac
grep -q 'console attach#[0-9]* (pid [0-9]*, uid [0-9]*): halt console test' "$TMP/srv/err" &&
    ok "serve: the halt is logged with its origin" || fail "serve: no origin log for halt"

# A second server on the same state directory must not take the socket.
run_env "$STATE" IBKR_REPL=true timeout 10 "$BIN" serve < /dev/null > "$TMP/srv/out2" 2> "$TMP/srv/err2"
grep -q 'another server is listening' "$TMP/srv/err2" && ok "serve: a second server refuses the socket" ||
    fail "serve: second server: $(cat "$TMP/srv/err2")"
OUT=$(printf '=status().halted\n' | console | sed -n 2p)
[ "$OUT" == true ] && ok "attach: the first server still owns the socket" || fail "attach after second server: $OUT"

OUT=$(printf 'resume("console test over")\n' | console | sed -n 2p)
[ "$OUT" == "trading resumed" ] && ok "attach: resume()" || fail "attach: resume: $OUT"
APPROVED=$(rpc 5 tools/call "$PREVIEW" | json 'v.result.structuredContent.risk.approved')
[ "$APPROVED" == true ] && ok "mcp: preview approved after resume" || fail "mcp: after resume: $APPROVED"

# A console still attached when the server shuts down is disconnected.
mkfifo "$TMP/srv/hold"
console < "$TMP/srv/hold" > "$TMP/srv/held" &
HELD=$!
PIDS+=("$HELD")
exec {HOLD}> "$TMP/srv/hold"
printf '="held"\n' >&"$HOLD"
for _ in $(seq 100); do grep -qx held "$TMP/srv/held" && break; sleep 0.1; done

# Shut down: stdin EOF; the socket goes with the server.
exec {SRV_IN}>&-
for _ in $(seq 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SRV_PID" 2>/dev/null; then
    fail "serve: still running after stdin EOF"
    kill "$SRV_PID"
fi
wait "$SRV_PID" 2>/dev/null
SRV_RC=$?
[ "$SRV_RC" -eq 0 ] && ok "serve: exit status 0" || fail "serve: exit status $SRV_RC"
if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$TMP/srv/err" "$TMP"/repl-*/err; then
    fail "sanitizer reports: $(grep -lE 'Sanitizer|runtime error:' "$TMP/srv/err" "$TMP"/repl-*/err)"
fi
[ -e "$SOCK" ] && fail "serve: socket left behind" || ok "serve: socket removed on exit"
for _ in $(seq 50); do kill -0 "$HELD" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$HELD" 2>/dev/null; then
    fail "attach: a console outlived the server"
else
    grep -qx held "$TMP/srv/held" && ok "attach: a held console ends with the server" ||
        fail "attach: held console output: $(cat "$TMP/srv/held")"
fi
exec {HOLD}>&-

# stdout stayed pure JSON-RPC: every line a JSON-RPC 2.0 object.
BAD=$(node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n");
if (lines.pop() !== "") { console.log("unterminated last line"); process.exit(); }
for (const l of lines) {
  let m; try { m = JSON.parse(l); } catch (e) { console.log("not JSON: " + l); continue; }
  if (m === null || typeof m !== "object" || m.jsonrpc !== "2.0") console.log("not JSON-RPC: " + l);
}' "$TMP/srv/out")
[ -z "$BAD" ] && [ -s "$TMP/srv/out" ] && ok "serve: stdout is pure JSON-RPC" || fail "serve: stdout: $BAD"

if [ "$FAILS" -ne 0 ]; then
    echo "$FAILS failure(s)"
    exit 1
fi
echo "all passed"
