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

# wait_for FILE PATTERN [TENTHS]: until FILE has a line matching the
# extended regex PATTERN (bounded: 10 s by default).
wait_for() {
    local file=$1 pattern=$2 tries=${3:-100}
    for _ in $(seq "$tries"); do
        grep -qE -- "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# journal_has DIR KIND JS-CONDITION: 0 when a record of KIND in DIR's
# journal files satisfies the condition on r (node, built-ins only).
journal_has() {
    node -e '
const fs = require("fs"), path = require("path");
const dir = process.argv[1], kind = process.argv[2];
const ok = (r) => ('"$3"');
for (const f of fs.readdirSync(dir).filter((f) => /^journal-.*\.jsonl$/.test(f))) {
  for (const l of fs.readFileSync(path.join(dir, f), "utf8").split("\n")) {
    let r; try { r = JSON.parse(l); } catch (e) { continue; }
    if (r.kind === kind && ok(r)) process.exit(0);
  }
}
process.exit(1);' "$1" "$2"
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

# ---- journal(n) ------------------------------------------------------------------

# The last records after a preview and a place, oldest first; n is bounded.
EXPECTED='2
startup,preview
true
3
true
true
journal: n must be between 1 and 1000'
repl_case journal <<'EOF2'
function kinds(j) local k = {} for i, r in ipairs(j) do k[i] = r.kind end return table.concat(k, ",") end
p = preview{symbol = "nvda", action = "BUY", quantity = 10}
j = journal(3)
#j
kinds(j)
j[2].order.symbol == "NVDA" and j[2].decision == "approved" and type(j[2].time) == "string"
r = place(p.token)
#journal(3)
kinds(journal(20)):find("startup,preview,redeem,order_sent,", 1, true) == 1
(function() for _, r in ipairs(journal(20)) do if r.kind == "console" then return r.command == "place" and r.origin:find("^repl %(pid") ~= nil end end end)()
select(2, pcall(journal, 0))
EOF2

# A torn last line (a crash mid-write) is skipped; the whole lines before it
# still come back.
JDIR="$TMP/repl-journal/state"
printf '{"kind":"torn' >> "$(ls "$JDIR"/journal-*.jsonl | tail -1)"
OUT=$(printf '=#journal(2)\n=journal(2)[2].kind\n' | run_env "$JDIR" timeout 30 "$BIN" repl 2>"$TMP/repl-journal/err2")
[ "$(printf '%s\n' "$OUT" | head -1)" == 2 ] && [ "$(printf '%s\n' "$OUT" | sed -n 2p)" != "" ] &&
    ok "repl journal: a torn last line is skipped" || fail "repl journal: torn line: $OUT"

# ---- reload() ----------------------------------------------------------------------

# A repl on a copy of the policies, fed through a fifo so that the files
# can change between lines.
# INTC (a simulator symbol) gets a cap of 0 shares in the copy.
POL="$TMP/policies"
cp -r "$REPO/policies" "$POL"
sed -i 's/GME = { max_qty = 0 },/GME = { max_qty = 0 }, INTC = { max_qty = 0 },/' "$POL/symbol_limits.lua"
RDIR="$TMP/reload"
mkdir -p "$RDIR"
mkfifo "$RDIR/in"
run_env "$RDIR/state" IBKR_POLICY_DIR="$POL" timeout 60 "$BIN" repl < "$RDIR/in" > "$RDIR/out" 2> "$RDIR/err" &
RPID=$!
PIDS+=("$RPID")
exec {RIN}> "$RDIR/in"
say() { printf '%s\n' "$1" >&"$RIN"; }
gme='(function() for _, p in ipairs(policies()) do if p.name == "symbol_limits" then return p.params.INTC.max_qty end end end)()'
say "=\"gme \" .. $gme"
say '="gme preview " .. tostring(preview{symbol = "INTC", action = "BUY", quantity = 1}.approved)'
wait_for "$RDIR/out" '^gme preview ' || fail "reload: no first answer"
# A broken file beside a good change: the reload fails as a whole.
sed -i 's/INTC = { max_qty = 0 }/INTC = { max_qty = 5 }/' "$POL/symbol_limits.lua"
printf 'return {\n' > "$POL/broken.lua"
say 'r = reload()'
say '="bad " .. tostring(r.ok) .. " " .. type(r.error)'
say "=\"gme after bad \" .. $gme"
say '="gme preview after bad " .. tostring(preview{symbol = "INTC", action = "BUY", quantity = 1}.approved)'
wait_for "$RDIR/out" '^gme preview after bad ' || fail "reload: no answer after the bad reload"
rm "$POL/broken.lua"
say 'r = reload()'
say '="good " .. tostring(r.ok) .. " " .. r.count .. " " .. #r.hash'
say "=\"gme after good \" .. $gme"
say '="gme preview after good " .. tostring(preview{symbol = "INTC", action = "BUY", quantity = 1}.approved)'
exec {RIN}>&-
wait "$RPID" 2>/dev/null
if [ "$(cat "$RDIR/out")" == "gme 0
gme preview false
bad false string
gme after bad 0
gme preview after bad false
good true 5 64
gme after good 5
gme preview after good true" ]; then
    ok "repl reload(): a broken folder keeps the running set; a good one takes over"
else
    fail "repl reload(): $(cat "$RDIR/out")"
fi
journal_has "$RDIR/state" console 'r.command === "reload" && /^repl \(pid [0-9]+\)$/.test(r.origin) && /^failed/.test(r.outcome)' &&
    journal_has "$RDIR/state" console 'r.command === "reload" && /^ok: 5 policies/.test(r.outcome)' &&
    ok "repl reload(): both reloads journalled as console records" ||
    fail "repl reload(): console records missing"

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
# A console's notices (stderr) are kept apart from its answers (stdout).
console() { timeout 10 "$BIN" attach "${1:-$SOCK}" 2>> "$TMP/srv/notices"; }

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
journal_has "$STATE" console 'r.command === "halt" && r.args === "console test" && r.outcome === "halted" && /^attach#[0-9]+ \(pid [0-9]+, uid [0-9]+\)$/.test(r.origin)' &&
    ok "journal: the console's halt is a console record naming its origin" ||
    fail "journal: no console record for halt"

# A second server on the same state directory must not take the socket.
run_env "$STATE" IBKR_REPL=true timeout 10 "$BIN" serve < /dev/null > "$TMP/srv/out2" 2> "$TMP/srv/err2"
grep -q 'another server is listening' "$TMP/srv/err2" && ok "serve: a second server refuses the socket" ||
    fail "serve: second server: $(cat "$TMP/srv/err2")"
OUT=$(printf '=status().halted\n' | console | sed -n 2p)
[ "$OUT" == true ] && ok "attach: the first server still owns the socket" || fail "attach after second server: $OUT"

OUT=$(printf 'resume("console test over")\n' | console | sed -n 2p)
[ "$OUT" == "trading resumed" ] && ok "attach: resume()" || fail "attach: resume: $OUT"
journal_has "$STATE" console 'r.command === "resume" && r.args === "console test over" && r.outcome === "resumed" && /^attach#[0-9]+ /.test(r.origin)' &&
    ok "journal: the console's resume is a console record naming its origin" ||
    fail "journal: no console record for resume"
journal_has "$STATE" console 'r.command === "place" && /^token_hash=[0-9a-f]{64}$/.test(r.args) && /^sent: order /.test(r.outcome)' &&
    ok "journal: the console's place is a console record (the token only as its hash)" ||
    fail "journal: no console record for place"
APPROVED=$(rpc 5 tools/call "$PREVIEW" | json 'v.result.structuredContent.risk.approved')
[ "$APPROVED" == true ] && ok "mcp: preview approved after resume" || fail "mcp: after resume: $APPROVED"

# An attached console sees the MCP client's fill as a notice on its stderr
# (its stdout stays the answers).
mkfifo "$TMP/srv/watch"
timeout 20 "$BIN" attach "$SOCK" < "$TMP/srv/watch" > "$TMP/srv/watch.out" 2> "$TMP/srv/watch.err" &
WATCH=$!
PIDS+=("$WATCH")
exec {WATCH_IN}> "$TMP/srv/watch"
wait_for "$TMP/srv/watch.out" 'ibkr-mcp console inside' || fail "attach: the watching console did not start"
TOKEN2=$(rpc 6 tools/call "$PREVIEW" | json 'v.result.structuredContent.confirmation_token')
rpc 7 tools/call "{\"name\":\"place_order\",\"arguments\":{\"confirmation_token\":\"$TOKEN2\"}}" > /dev/null
if wait_for "$TMP/srv/watch.err" '^\[fill\] BUY 10 NVDA @ [0-9.]+ \(order [^ ]+, exec [^ ]+\)$'; then
    ok "attach: a console sees the MCP client's fill as a notice"
else
    fail "attach: no fill notice: $(cat "$TMP/srv/watch.err")"
fi
printf '="still answering"\n' >&"$WATCH_IN"
exec {WATCH_IN}>&-
for _ in $(seq 50); do kill -0 "$WATCH" 2>/dev/null || break; sleep 0.1; done
grep -qx 'still answering' "$TMP/srv/watch.out" && ! grep -q '\[fill\]' "$TMP/srv/watch.out" &&
    ok "attach: notices stay off the console's stdout" || fail "attach: watch stdout: $(cat "$TMP/srv/watch.out")"

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

# ---- SIGHUP reloads the policies of a running `serve` ------------------------------

HSTATE="$TMP/hup state"
HPOL="$TMP/hup-policies"
cp -r "$REPO/policies" "$HPOL"
mkfifo "$TMP/hup.in"
# The signal must reach the server itself, not the subshell around it: sh
# notes its pid and becomes the server (exec keeps the pid).
run_env "$HSTATE" IBKR_REPL=true IBKR_POLICY_DIR="$HPOL" sh -c 'echo $$ > "$0"; exec "$@"' "$TMP/hup.pid" \
    "$BIN" serve < "$TMP/hup.in" > "$TMP/hup.out" 2> "$TMP/hup.err" &
HUP_JOB=$!
PIDS+=("$HUP_JOB")
exec {HUP_IN}> "$TMP/hup.in"
for _ in $(seq 100); do [ -s "$TMP/hup.pid" ] && break; sleep 0.1; done
HUP_PID=$(cat "$TMP/hup.pid")
PIDS+=("$HUP_PID")
for _ in $(seq 100); do [ -S "$HSTATE/repl.sock" ] && break; sleep 0.1; done
sed -i 's/GME = { max_qty = 0 }/GME = { max_qty = 7 }/' "$HPOL/symbol_limits.lua"
kill -HUP "$HUP_PID"
if wait_for "$TMP/hup.err" 'SIGHUP: policies reloaded: 5 in force'; then
    ok "serve: SIGHUP reloads the policies (stderr)"
else
    fail "serve: SIGHUP: $(tail -3 "$TMP/hup.err")"
fi
journal_has "$HSTATE" policies_reloaded 'r.origin === "SIGHUP" && r.ok === true' &&
    ok "serve: the SIGHUP reload is journalled" || fail "serve: no policies_reloaded record for SIGHUP"
OUT=$(printf '=(function() for _, p in ipairs(policies()) do if p.name == "symbol_limits" then return p.params.GME.max_qty end end end)()\n' |
    timeout 10 "$BIN" attach "$HSTATE/repl.sock" | sed -n 2p)
[ "$OUT" == 7 ] && ok "serve: the reloaded set is in force" || fail "serve: after SIGHUP GME cap is '$OUT'"
printf 'return {\n' > "$HPOL/broken.lua"
kill -HUP "$HUP_PID"
if wait_for "$TMP/hup.err" 'SIGHUP: policy reload failed, the running set stays in force'; then
    ok "serve: a SIGHUP with a broken file keeps the running set"
else
    fail "serve: SIGHUP broken: $(tail -3 "$TMP/hup.err")"
fi
journal_has "$HSTATE" policies_reloaded 'r.origin === "SIGHUP" && r.ok === false' &&
    ok "serve: the failed SIGHUP reload is journalled" || fail "serve: no failed policies_reloaded record"
kill -0 "$HUP_PID" 2>/dev/null && ok "serve: still running after both SIGHUPs" || fail "serve: died on SIGHUP"
exec {HUP_IN}>&-
for _ in $(seq 100); do kill -0 "$HUP_PID" 2>/dev/null || break; sleep 0.1; done
wait "$HUP_JOB" 2>/dev/null
HUP_RC=$?
[ "$HUP_RC" -eq 0 ] && ok "serve: exit status 0 after SIGHUPs" || fail "serve: exit status $HUP_RC after SIGHUPs"
[ -s "$TMP/hup.out" ] && fail "serve: stdout written without a client: $(head -c 200 "$TMP/hup.out")"
# The consoles' stderr too (the attach clients, with their notices).
SAN_FILES=("$TMP/hup.err" "$RDIR/err" "$TMP/srv/notices" "$TMP/srv/watch.err" "$TMP/repl-journal/err2")
if grep -qsE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "${SAN_FILES[@]}"; then
    fail "sanitizer reports: $(grep -lsE 'Sanitizer|runtime error:' "${SAN_FILES[@]}")"
fi

if [ "$FAILS" -ne 0 ]; then
    echo "$FAILS failure(s)"
    exit 1
fi
echo "all passed"
