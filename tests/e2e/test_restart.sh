#!/usr/bin/env bash
# test_restart.sh BINARY: the journal across real processes. Two servers on
# one state directory share the daily cap; a restart keeps the count and
# the kill switch; `ibkr-mcp resume` releases it for the next start; a KILL
# file halts; a torn last line is skipped with a warning; no token reaches
# the journal; an unusable state directory halts trading. The servers are
# driven over stdio by a small Node client (Node already runs the other
# end-to-end tests).
set -u
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
REPO=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d /tmp/ibkr-mcp-restart-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
STATE="$TMP/state"
export BIN REPO STATE

cat > "$TMP/drive.mjs" <<'EOF'
// drive.mjs: runs one scenario step against real `ibkr-mcp serve` processes.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const BIN = process.env.BIN;
function server(extra = {}) {
  const env = {
    PATH: process.env.PATH, HOME: process.env.STATE, IBKR_STATE_DIR: process.env.STATE,
    IBKR_TOOLS_DIR: process.env.REPO + '/lua/tools', IBKR_TRADING_ENABLED: 'true',
    IBKR_SIM_FREEZE: 'true', IBKR_MAX_DAILY_ORDERS: '2', IBKR_LOG_LEVEL: 'warn', ...extra,
  };
  const child = spawn(BIN, ['serve'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const waiting = new Map();
  let stderr = '', id = 0;
  child.stderr.on('data', (d) => { stderr += d; });
  createInterface({ input: child.stdout }).on('line', (line) => {
    const m = JSON.parse(line);
    if (waiting.has(m.id)) { waiting.get(m.id)(m); waiting.delete(m.id); }
  });
  const rpc = (method, params) => new Promise((resolve) => {
    waiting.set(++id, resolve);
    child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
  });
  const call = async (name, args = {}) => (await rpc('tools/call', { name, arguments: args })).result;
  const start = rpc('initialize', { protocolVersion: '2025-06-18', capabilities: {},
    clientInfo: { name: 'test_restart', version: '1' } });
  return {
    call, start,
    stderr: () => stderr,
    stop: () => new Promise((resolve) => { child.on('exit', resolve); child.stdin.end(); }),
  };
}
const BUY = { symbol: 'NVDA', action: 'BUY', quantity: 10 };
async function trade(s) {
  const p = (await s.call('preview_order', BUY)).structuredContent;
  if (!p.confirmation_token) return { preview: p };
  const r = await s.call('place_order', { confirmation_token: p.confirmation_token });
  return { preview: p, token: p.confirmation_token, place: r };
}
const codes = (p) => JSON.stringify(p.risk.codes);
const out = {};
const step = process.argv[2];
const extra = process.argv[3] ? JSON.parse(process.argv[3]) : {};

if (step === 'two') {
  const a = server(), b = server();
  await a.start; await b.start;
  const ta = await trade(a), tb = await trade(b);
  out.placed = [ta.place && !ta.place.isError, tb.place && !tb.place.isError];
  out.tokens = [ta.token, tb.token];
  out.third = codes((await trade(a)).preview);
  out.status_b = (await b.call('get_status')).structuredContent.orders_today;
  await a.stop(); await b.stop();
} else if (step === 'restart') {
  const s = server(extra);
  await s.start;
  const st = (await s.call('get_status')).structuredContent;
  out.orders_today = st.orders_today;
  out.halted = st.halted;
  out.halt_reason = st.halt_reason || '';
  out.preview = codes((await s.call('preview_order', BUY)).structuredContent);
  if (process.argv[4] === 'halt')
    out.halt = (await s.call('halt_trading', { reason: 'e2e halt' })).structuredContent.halted;
  await s.stop();
  out.stderr = s.stderr();
}
console.log(JSON.stringify(out));
EOF

FAILS=0
ok() { printf 'ok   %s\n' "$1"; }
fail() { printf 'FAIL %s\n' "$1"; FAILS=$((FAILS + 1)); }
field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s);const r=('"$1"');console.log(typeof r==="string"?r:JSON.stringify(r));});'; }
drive() { timeout 60 node "$TMP/drive.mjs" "$@"; }
resume() {
    env -i PATH="$PATH" HOME="$STATE" IBKR_STATE_DIR="$STATE" timeout 10 "$BIN" resume "$@"
}
JOURNAL() { ls "$STATE"/journal-*.jsonl; }

# ---- two servers at once on one state directory ---------------------------------
OUT=$(drive two)
[ "$(field 'v.placed' <<<"$OUT")" == "[true,true]" ] && ok "two servers: each placed one order" ||
    fail "two servers: $OUT"
case $(field 'v.third' <<<"$OUT") in
    *RISK_DAILY_ORDER_LIMIT*) ok "two servers: the cap of 2 counts both servers' orders" ;;
    *) fail "two servers: third order not refused: $OUT" ;;
esac
[ "$(field 'v.status_b' <<<"$OUT")" == 2 ] && ok "two servers: get_status shows 2 orders today" ||
    fail "two servers: status $OUT"
[ "$(stat -c %a "$STATE")" == 700 ] && ok "state dir mode 0700" || fail "state dir mode $(stat -c %a "$STATE")"
[ "$(stat -c %a "$(JOURNAL)")" == 600 ] && ok "journal mode 0600" || fail "journal mode"
LEAKED=0
for t in $(field 'v.tokens.join(" ")' <<<"$OUT"); do
    [[ $t =~ ^[0-9a-f]{32}$ ]] || LEAKED=1
    grep -q "$t" "$STATE"/* && LEAKED=1
done
[ $LEAKED == 0 ] && ok "no token in the state directory" || fail "a token was written to disk"
node -e 'const fs=require("fs");for(const l of fs.readFileSync(process.argv[1],"utf8").trim().split("\n"))JSON.parse(l)' \
    "$(JOURNAL)" && ok "every journal line is JSON" || fail "journal lines do not parse"

# ---- restart keeps the count; halt persists -------------------------------------
OUT=$(drive restart '{}' halt)
[ "$(field 'v.orders_today' <<<"$OUT")" == 2 ] && ok "restart: orders_today still 2" || fail "restart: $OUT"
case $(field 'v.preview' <<<"$OUT") in
    *RISK_DAILY_ORDER_LIMIT*) ok "restart: the daily cap still refuses" ;;
    *) fail "restart: cap reset: $OUT" ;;
esac
OUT=$(drive restart '{"IBKR_MAX_DAILY_ORDERS":"50"}')
[ "$(field 'v.halted' <<<"$OUT")" == true ] && [ "$(field 'v.halt_reason' <<<"$OUT")" == "e2e halt" ] &&
    ok "restart: the kill switch is still engaged, with its reason" || fail "restart: halt lost: $OUT"
case $(field 'v.preview' <<<"$OUT") in
    *RISK_HALTED*) ok "restart: preview refused while halted" ;;
    *) fail "restart: preview while halted: $OUT" ;;
esac

# ---- ibkr-mcp resume --------------------------------------------------------------
resume --reason "checked" 2> "$TMP/resume.err" && ok "resume: exit 0" || fail "resume: $(cat "$TMP/resume.err")"
grep -q '"kind":"resume".*"reason":"checked"' "$(JOURNAL)" && ok "resume: recorded in the journal" ||
    fail "resume: no record"
OUT=$(drive restart '{"IBKR_MAX_DAILY_ORDERS":"50"}')
[ "$(field 'v.halted' <<<"$OUT")" == false ] && [ "$(field 'v.preview' <<<"$OUT")" == "[]" ] &&
    ok "resume: the next start trades" || fail "resume: still halted: $OUT"

# ---- KILL file ----------------------------------------------------------------------
touch "$STATE/KILL"
OUT=$(drive restart '{"IBKR_MAX_DAILY_ORDERS":"50"}')
[ "$(field 'v.halted' <<<"$OUT")" == true ] && [[ $(field 'v.halt_reason' <<<"$OUT") == *KILL* ]] &&
    ok "KILL: get_status halted, naming the file" || fail "KILL: $OUT"
case $(field 'v.preview' <<<"$OUT") in
    *RISK_HALTED*) ok "KILL: preview refused" ;;
    *) fail "KILL: preview: $OUT" ;;
esac
resume 2> "$TMP/resume.err"
RC=$?
[ $RC == 1 ] && grep -q "remove it by hand" "$TMP/resume.err" && ok "KILL: resume says to remove it by hand" ||
    fail "KILL: resume rc=$RC $(cat "$TMP/resume.err")"
rm -f "$STATE/KILL"

# ---- a torn last line ---------------------------------------------------------------
printf '{"kind":"order_sent","notional":1' >> "$(JOURNAL)"
OUT=$(drive restart '{"IBKR_MAX_DAILY_ORDERS":"50"}')
[[ $(field 'v.stderr' <<<"$OUT") == *"last line is torn"* ]] && ok "torn: a warning on stderr" ||
    fail "torn: no warning: $OUT"
[ "$(field 'v.orders_today' <<<"$OUT")" == 2 ] && ok "torn: the torn record is not counted" ||
    fail "torn: $OUT"
grep -q '^{"kind":"order_sent","notional":1$' "$(JOURNAL)" && ok "torn: the torn bytes are kept, and the next record starts a line" ||
    fail "torn: journal rewritten or appended onto the torn line"

# ---- an unusable state directory ---------------------------------------------------
touch "$TMP/plainfile"
OUT=$(drive restart '{"IBKR_STATE_DIR":"'"$TMP/plainfile/state"'"}')
[ "$(field 'v.halted' <<<"$OUT")" == true ] && [[ $(field 'v.halt_reason' <<<"$OUT") == *journal* ]] &&
    ok "unusable state dir: halted, naming the journal" || fail "unusable state dir: $OUT"

if [ $FAILS -gt 0 ]; then
    echo "$FAILS failed"
    exit 1
fi
echo "all passed"
