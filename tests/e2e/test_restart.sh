#!/usr/bin/env bash
# test_restart.sh BINARY: the journal across real processes. Two servers on
# one state directory share the daily cap; a restart keeps the count and
# the kill switch; `ibkr-mcp resume` releases it for the next start; a KILL
# file halts; a torn last line is skipped with a warning; no token reaches
# the journal; an unusable state directory halts trading. The simulator's
# account survives a SIGKILL (position, cash, a resting order that can
# still be cancelled), IBKR_SIM_RESET=true starts it afresh, and a second
# server on the same directory runs its simulator in memory only. The
# servers are driven over stdio by a small Node client (Node already runs
# the other end-to-end tests).
set -u
BIN=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
REPO=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d /tmp/ibkr-mcp-restart-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
STATE="$TMP/state"
ACCT="$TMP/acct"
export BIN REPO STATE ACCT

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
    // No goodbye: what a crash or kill -9 leaves behind.
    kill: () => new Promise((resolve) => { child.on('exit', resolve); child.kill('SIGKILL'); }),
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
// The simulated account as the tools show it.
async function account(s) {
  const pos = (await s.call('get_positions')).structuredContent;
  const open = (await s.call('get_open_orders')).structuredContent;
  const sum = (await s.call('get_account_summary')).structuredContent;
  return {
    positions: pos.positions.map((p) => `${p.symbol}:${p.quantity}:${p.avg_cost}`),
    open: open.orders.map((o) => `${o.order_id}:${o.symbol}:${o.action}:${o.quantity}:${o.order_type}:${o.limit_price}:${o.status}`),
    cash: sum.cash,
  };
}
async function placeOne(s, args) {
  const p = (await s.call('preview_order', args)).structuredContent;
  if (!p.confirmation_token) return { preview: p };
  return (await s.call('place_order', { confirmation_token: p.confirmation_token })).structuredContent;
}
const ACCT_ENV = { IBKR_STATE_DIR: process.env.ACCT, HOME: process.env.ACCT,
                   IBKR_MAX_DAILY_ORDERS: '50' };
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
} else if (step === 'acct-kill') {
  // Buy 10 AAPL, leave a resting limit order, then die without a word.
  const s = server(ACCT_ENV);
  await s.start;
  out.buy = await placeOne(s, { symbol: 'AAPL', action: 'BUY', quantity: 10 });
  out.rest = await placeOne(s, { symbol: 'AAPL', action: 'BUY', quantity: 5, order_type: 'LMT',
                                 limit_price: 150, tif: 'GTC' });
  out.before = await account(s);
  await s.kill();
} else if (step === 'acct-view') {
  // A new server on the same directory: the account, and optionally a cancel.
  const s = server({ ...ACCT_ENV, ...extra });
  await s.start;
  out.after = await account(s);
  if (process.argv[4]) {
    const c = await s.call('cancel_order', { order_id: process.argv[4] });
    out.cancel = c.isError ? 'error' : c.structuredContent.status;
    out.open_after_cancel = (await s.call('get_open_orders')).structuredContent.count;
  }
  await s.stop();
  out.stderr = s.stderr();
} else if (step === 'acct-two') {
  // Two servers at once: the second runs its simulator in memory only.
  const a = server(ACCT_ENV);
  await a.start;
  const b = server(ACCT_ENV);
  await b.start;
  out.a = await account(a);
  out.b = await account(b);
  out.b_buy = (await placeOne(b, { symbol: 'KO', action: 'BUY', quantity: 1 })).status;
  await b.stop(); await a.stop();
  out.stderr_b = b.stderr();
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

# ---- the simulator's account across a kill -9 ---------------------------------------
OUT=$(drive acct-kill)
BEFORE=$(field 'JSON.stringify(v.before)' <<<"$OUT")
POSITIONS=$(field 'v.before.positions.join()' <<<"$OUT")
REST=$(field 'v.rest.order_id' <<<"$OUT")
[ "$(field 'v.buy.status' <<<"$OUT")" == FILLED ] && [ "$(field 'v.rest.status' <<<"$OUT")" == SUBMITTED ] &&
    [[ $(field 'v.before.positions.join()' <<<"$OUT") == AAPL:10:* ]] &&
    ok "account: bought 10 AAPL and left a resting LMT, then SIGKILL" || fail "account: setup $OUT"
[ "$(stat -c %a "$ACCT/sim-account.json" 2>/dev/null)" == 600 ] && ok "account: sim-account.json mode 0600" ||
    fail "account: file mode $(stat -c %a "$ACCT/sim-account.json" 2>&1)"
[ -z "$(ls "$ACCT" | grep -v -e '^journal-' -e '^sim-account\.json$' -e '^sim-account\.lock$')" ] &&
    ok "account: no temporary file left behind" || fail "account: stray files: $(ls "$ACCT")"
OUT=$(drive acct-view '{}' "$REST")
[ "$(field 'JSON.stringify(v.after)' <<<"$OUT")" == "$BEFORE" ] &&
    ok "account: a new server shows the same position, working order and cash" ||
    fail "account: after restart $(field 'JSON.stringify(v.after)' <<<"$OUT") != $BEFORE"
[ "$(field 'v.cancel' <<<"$OUT")" == CANCELLED ] && [ "$(field 'v.open_after_cancel' <<<"$OUT")" == 0 ] &&
    ok "account: the restored resting order can be cancelled" || fail "account: cancel $OUT"
OUT=$(drive acct-view '{}')
[ "$(field 'v.after.open.length' <<<"$OUT")" == 0 ] && [[ $(field 'v.after.positions.join()' <<<"$OUT") == AAPL:10:* ]] &&
    ok "account: the cancel survived a restart too" || fail "account: after cancel $OUT"
OUT=$(drive acct-two)
[[ $(field 'v.a.positions.join()' <<<"$OUT") == AAPL:10:* ]] && [ "$(field 'v.b.positions.length' <<<"$OUT")" == 0 ] &&
    [[ $(field 'v.stderr_b' <<<"$OUT") == *"in memory only"* ]] &&
    ok "account: a second server on the directory runs in memory only, and says so" ||
    fail "account: two servers $OUT"
OUT=$(drive acct-view '{}')
[ "$(field 'v.after.positions.join()' <<<"$OUT")" == "$POSITIONS" ] &&
    ok "account: the second server's trade did not reach the saved account" || fail "account: after two $OUT"
OUT=$(drive acct-view '{"IBKR_SIM_RESET":"true"}')
[ "$(field 'JSON.stringify(v.after)' <<<"$OUT")" == '{"positions":[],"open":[],"cash":100000}' ] &&
    [[ $(field 'v.stderr' <<<"$OUT") == *"IBKR_SIM_RESET"*"discarded"* ]] &&
    ok "account: IBKR_SIM_RESET=true starts a fresh account" || fail "account: reset $OUT"
OUT=$(drive acct-view '{}')
[ "$(field 'v.after.positions.length' <<<"$OUT")" == 0 ] && ok "account: the reset account is the saved one now" ||
    fail "account: after reset $OUT"

# A damaged account file stops the start, naming the file and the way out.
mkdir -p "$TMP/bad" && chmod 700 "$TMP/bad"
printf '{"format":"ibkr-mcp sim account","version":1,"cash":' > "$TMP/bad/sim-account.json"
env -i PATH="$PATH" HOME="$TMP/bad" IBKR_STATE_DIR="$TMP/bad" IBKR_TOOLS_DIR="$REPO/lua/tools" \
    timeout 10 "$BIN" serve < /dev/null > /dev/null 2> "$TMP/bad.err"
RC=$?
[ $RC != 0 ] && grep -q "$TMP/bad/sim-account.json.*IBKR_SIM_RESET=true" "$TMP/bad.err" &&
    [ "$(cat "$TMP/bad/sim-account.json")" == '{"format":"ibkr-mcp sim account","version":1,"cash":' ] &&
    ok "account: a damaged file stops the start with a clear message and is left alone" ||
    fail "account: damaged file rc=$RC $(cat "$TMP/bad.err")"

if [ $FAILS -gt 0 ]; then
    echo "$FAILS failed"
    exit 1
fi
echo "all passed"
