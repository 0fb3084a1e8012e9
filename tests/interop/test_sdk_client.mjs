// Interop: the official MCP TypeScript SDK client (@modelcontextprotocol/sdk,
// pinned in tests/interop/package.json) drives the real ibkr-mcp binary over
// stdio. The SDK validates every structuredContent against the tool's
// outputSchema and throws when it does not conform, so calling every tool is
// the schema check; on top of that each schema is compiled with the SDK's
// bundled Ajv as JSON Schema 2020-12 (the MCP default dialect) and every
// result is validated against it here too. Resources, prompts and logging
// go through the SDK's own methods (and its result schemas) as well.
//
// Usage: node tests/interop/test_sdk_client.mjs <npm-dir> <path-to-ibkr-mcp>
//   <npm-dir> is where tests/interop/setup.sh installed the packages.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const [NPM_DIR, BIN] = process.argv.slice(2);
if (!NPM_DIR || !BIN) {
  console.error('usage: node test_sdk_client.mjs <npm-dir> <path-to-ibkr-mcp>');
  process.exit(2);
}
if (!fs.existsSync(BIN)) {
  console.error(`ibkr-mcp binary not found: ${BIN}`);
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(NPM_DIR), 'package.json'));
let Client, StdioClientTransport, Ajv2020, sdkVersion, LoggingMessageNotificationSchema;
try {
  ({ Client } = require('@modelcontextprotocol/sdk/client/index.js'));
  ({ LoggingMessageNotificationSchema } = require('@modelcontextprotocol/sdk/types.js'));
  ({ StdioClientTransport } = require('@modelcontextprotocol/sdk/client/stdio.js'));
  const a = require('ajv/dist/2020');
  Ajv2020 = a.default || a.Ajv2020 || a;
  sdkVersion = JSON.parse(fs.readFileSync(
    path.join(path.resolve(NPM_DIR), 'node_modules', '@modelcontextprotocol', 'sdk', 'package.json'),
    'utf8')).version;
} catch (e) {
  console.error(`cannot load @modelcontextprotocol/sdk from ${NPM_DIR}: ${e.message}\n` +
    `install it first: bash tests/interop/setup.sh ${NPM_DIR}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const STATE = fs.mkdtempSync(path.join(os.tmpdir(), 'ibkr-mcp-sdk-'));
const TOOL_NAMES = [
  'get_status', 'get_account_summary', 'get_positions', 'get_quote', 'get_open_orders',
  'get_trades', 'get_journal', 'preview_order', 'place_order', 'cancel_order', 'halt_trading',
];
const UNKNOWN_TOKEN_SENTENCE =
  'Unknown or already-used confirmation token. Call preview_order first.';
const STEP_TIMEOUT_MS = 15000;

let passed = 0;
let failed = 0;
let aborted = false;

async function step(name, fn) {
  if (aborted) {
    failed++;
    console.log(`not ok - ${name} (skipped: an earlier step it depends on failed)`);
    return undefined;
  }
  let timer;
  try {
    const v = await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${STEP_TIMEOUT_MS} ms`)),
          STEP_TIMEOUT_MS);
      }),
    ]);
    passed++;
    console.log(`ok - ${name}`);
    return v;
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}`);
    console.log(`  ${String(e && e.stack ? e.stack : e).split('\n').join('\n  ')}`);
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

console.log(`# @modelcontextprotocol/sdk ${sdkVersion}, server ${BIN}`);

const transport = new StdioClientTransport({
  command: BIN,
  args: [],
  env: {
    PATH: process.env.PATH || '/usr/bin:/bin',
    HOME: STATE,
    XDG_STATE_HOME: STATE,
    IBKR_STATE_DIR: STATE,
    IBKR_TOOLS_DIR: path.join(REPO, 'lua', 'tools'),
    IBKR_TRADING_ENABLED: 'true',
    IBKR_SIM_FREEZE: 'true',
  },
  stderr: 'pipe',
});
let serverStderr = '';
if (transport.stderr) transport.stderr.on('data', (d) => { serverStderr += d; });
const client = new Client({ name: 'ibkr-mcp-interop', version: '1.0.0' }, { capabilities: {} });
let child = null;   // the server process, for the exit checks
const logMessages = [];
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { logMessages.push(n.params); });

const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: true });
const validators = new Map();
const called = new Set();

// Calls a tool through the SDK (which validates structuredContent itself),
// then checks the text mirror and validates with our own 2020-12 compile.
async function call(name, args) {
  const res = await client.callTool({ name, arguments: args });
  called.add(name);
  assert.ok(Array.isArray(res.content) && res.content[0] && res.content[0].type === 'text',
    `${name}: content[0] must be a text block`);
  if (!res.isError) {
    assert.ok(res.structuredContent, `${name}: no structuredContent`);
    assert.deepStrictEqual(JSON.parse(res.content[0].text), res.structuredContent,
      `${name}: text and structuredContent differ`);
    const v = validators.get(name);
    if (v && !v(res.structuredContent))
      assert.fail(`${name}: structuredContent fails the 2020-12 outputSchema: ` +
        `${ajv.errorsText(v.errors)}\n${JSON.stringify(res.structuredContent)}`);
  }
  return res;
}
async function ok(name, args) {
  const res = await call(name, args);
  assert.ok(!res.isError, `${name}(${JSON.stringify(args)}) failed: ${res.content[0].text}`);
  return res.structuredContent;
}
async function bad(name, args) {
  const res = await call(name, args);
  assert.equal(res.isError, true, `${name}(${JSON.stringify(args)}) should fail: ` +
    `${JSON.stringify(res).slice(0, 500)}`);
  return res.content.map((c) => c.text).join(' ');
}

try {
  await step('connect (initialize handshake through the SDK)', async () => {
    await client.connect(transport);
    child = transport._process || null;   // private in 1.32.2; used only for the exit check
    assert.ok(child, 'cannot see the server process (StdioClientTransport._process)');
    const info = client.getServerVersion();
    assert.equal(info.name, 'ibkr-mcp');
    assert.ok(client.getServerCapabilities().tools, 'tools capability');
    assert.equal(typeof client.getInstructions(), 'string');
  });
  if (!passed) aborted = true;

  await step('ping', async () => {
    assert.deepEqual(await client.ping(), {});
  });

  await step('listTools: the 11 tools; schemas compile as JSON Schema 2020-12', async () => {
    const r = await client.listTools();
    const names = r.tools.map((t) => t.name).sort();
    assert.deepEqual(names, [...TOOL_NAMES].sort());
    assert.equal(r.nextCursor, undefined);
    for (const t of r.tools) {
      assert.ok(t.description, `${t.name}: description`);
      assert.equal(t.inputSchema.type, 'object');
      assert.equal(t.outputSchema.type, 'object');
      try {
        ajv.compile(t.inputSchema);
      } catch (e) {
        assert.fail(`${t.name}: inputSchema does not compile as 2020-12: ${e.message}`);
      }
      try {
        validators.set(t.name, ajv.compile(t.outputSchema));
      } catch (e) {
        assert.fail(`${t.name}: outputSchema does not compile as 2020-12: ${e.message}`);
      }
    }
  });

  let quote;
  await step('get_status, get_account_summary, get_quote, get_positions, get_open_orders, get_trades', async () => {
    const st = await ok('get_status', {});
    assert.equal(st.backend, 'sim');
    assert.equal(st.trading_enabled, true);
    assert.equal(st.halted, false);
    const acct = await ok('get_account_summary', {});
    assert.equal(acct.cash, 100000);
    quote = await ok('get_quote', { symbol: 'NVDA' });
    assert.ok(quote.bid > 0 && quote.bid < quote.ask);
    const pos = await ok('get_positions', {});
    assert.equal(pos.count, 0);
    const oo = await ok('get_open_orders', {});
    assert.equal(oo.count, 0);
    const tr = await ok('get_trades', {});
    assert.equal(tr.count, 0);
  });

  let first;
  await step('preview_order -> place_order: FILLED', async () => {
    const p = await ok('preview_order', { symbol: 'NVDA', action: 'BUY', quantity: 50, order_type: 'MKT' });
    assert.equal(p.risk.approved, true, JSON.stringify(p.risk));
    assert.match(p.confirmation_token, /^[0-9a-f]{32}$/);
    assert.equal(p.token_expires_in_seconds, 120);
    const placed = await ok('place_order', { confirmation_token: p.confirmation_token });
    assert.equal(placed.status, 'FILLED');
    assert.equal(placed.filled_quantity, 50);
    assert.ok(Math.abs(placed.avg_fill_price - quote.ask) / quote.ask < 0.01);
    first = { token: p.confirmation_token, order: placed };
    const pos = await ok('get_positions', {});
    assert.equal(pos.positions.find((x) => x.symbol === 'NVDA').quantity, 50);
    const tr = await ok('get_trades', {});
    assert.equal(tr.count, 1);
    assert.equal(tr.trades[0].order_id, placed.order_id);
  });

  await step('a replayed token -> isError naming the order', async () => {
    assert.ok(first, 'needs the placed order');
    const text = await bad('place_order', { confirmation_token: first.token });
    assert.ok(text.includes(UNKNOWN_TOKEN_SENTENCE), text);
    assert.ok(text.includes(first.order.order_id), text);
    assert.ok(text.includes('FILLED'), text);
    assert.equal((await ok('get_trades', {})).count, 1);
  });

  await step('a risk-rejected preview (TSLA 400) has no token', async () => {
    const p = await ok('preview_order', { symbol: 'TSLA', action: 'BUY', quantity: 400 });
    assert.equal(p.risk.approved, false);
    assert.equal(p.confirmation_token, null);
    assert.ok(p.risk.codes.includes('RISK_NOTIONAL_LIMIT'));
    assert.ok(p.risk.codes.includes('RISK_POSITION_LIMIT'));
  });

  await step('resting LMT order: preview, place -> SUBMITTED, open orders, cancel -> CANCELLED', async () => {
    const q = await ok('get_quote', { symbol: 'AAPL' });
    const limit = Math.round(q.bid * 0.9 * 100) / 100;
    const p = await ok('preview_order', {
      symbol: 'AAPL', action: 'BUY', quantity: 10, order_type: 'LMT', limit_price: limit, tif: 'DAY',
    });
    assert.equal(p.risk.approved, true, JSON.stringify(p.risk));
    assert.equal(p.order_type, 'LMT');
    assert.equal(p.limit_price, limit);
    const placed = await ok('place_order', { confirmation_token: p.confirmation_token });
    assert.equal(placed.status, 'SUBMITTED', JSON.stringify(placed));
    assert.equal(placed.filled_quantity, 0);
    const oo = await ok('get_open_orders', {});
    const mine = oo.orders.find((o) => o.order_id === placed.order_id);
    assert.ok(mine, `order ${placed.order_id} not in get_open_orders: ${JSON.stringify(oo)}`);
    assert.equal(mine.limit_price, limit);
    const c = await ok('cancel_order', { order_id: placed.order_id });
    assert.equal(c.order_id, placed.order_id);
    assert.equal(c.status, 'CANCELLED');
    assert.equal(typeof c.message, 'string');
    const oo2 = await ok('get_open_orders', {});
    assert.ok(!oo2.orders.some((o) => o.order_id === placed.order_id), 'still open after cancel');
    const again = await bad('cancel_order', { order_id: placed.order_id });
    assert.match(again, /CANCELLED|cancel/i);
    assert.equal((await ok('get_trades', {})).count, 1, 'the cancelled order never traded');
  });

  await step('bad arguments -> isError (SDK passes it through)', async () => {
    await bad('preview_order', { symbol: 'NVDA', action: 'HOLD', quantity: 1 });
    await bad('preview_order', { symbol: 'NVDA', action: 'BUY', quantity: 0 });
    await bad('get_quote', { symbol: 'zzzz' });
    await bad('cancel_order', { order_id: '999999' });
  });

  await step('an unknown tool -> the SDK raises the JSON-RPC error -32602', async () => {
    await assert.rejects(client.callTool({ name: 'no_such_tool', arguments: {} }),
      (e) => e && e.code === -32602);
  });

  await step('setLoggingLevel: a rejected preview arrives as notifications/message (warning)', async () => {
    const caps = client.getServerCapabilities();
    assert.ok(caps.logging, 'logging capability');
    await client.setLoggingLevel('warning');
    const before = logMessages.length;
    const p = await ok('preview_order', { symbol: 'TSLA', action: 'BUY', quantity: 400 });
    assert.equal(p.risk.approved, false);
    for (let i = 0; i < 100 && logMessages.length === before; i++)
      await new Promise((r) => setTimeout(r, 20));
    const m = logMessages.slice(before).find((x) => x.data && x.data.event === 'preview_rejected');
    assert.ok(m, `no preview_rejected log message: ${JSON.stringify(logMessages.slice(before))}`);
    assert.equal(m.level, 'warning');
    assert.equal(m.logger, 'ibkr-mcp');
    assert.deepEqual(m.data.reasons, p.risk.reasons);
    // Info events stay below the warning threshold.
    const mark = logMessages.length;
    const small = await ok('preview_order', { symbol: 'MSFT', action: 'BUY', quantity: 1 });
    assert.equal(small.risk.approved, true, JSON.stringify(small.risk));
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(logMessages.slice(mark), []);
    await assert.rejects(client.setLoggingLevel('verbose'), (e) => e && e.code === -32602);
  });

  await step('listResources / readResource: every URI parses and matches its tool', async () => {
    assert.ok(client.getServerCapabilities().resources, 'resources capability');
    const r = await client.listResources();
    const tools = {
      'ibkr://status': 'get_status', 'ibkr://account': 'get_account_summary',
      'ibkr://positions': 'get_positions', 'ibkr://orders/open': 'get_open_orders',
      'ibkr://trades': 'get_trades', 'ibkr://limits': 'get_status',
    };
    assert.deepEqual(r.resources.map((x) => x.uri).sort(),
      [...Object.keys(tools), 'ibkr://journal'].sort());
    // Today's journal: read straight from the file, no tool behind it.
    const j = JSON.parse((await client.readResource({ uri: 'ibkr://journal' })).contents[0].text);
    assert.ok(Array.isArray(j.records) && j.records.length > 0, 'journal records');
    assert.ok(j.records.some((x) => x.kind === 'startup'));
    assert.equal(j.count, j.records.length);
    for (const { uri } of r.resources.filter((x) => x.uri !== 'ibkr://journal')) {
      const rr = await client.readResource({ uri });
      assert.equal(rr.contents.length, 1);
      assert.equal(rr.contents[0].uri, uri);
      assert.equal(rr.contents[0].mimeType, 'application/json');
      const got = JSON.parse(rr.contents[0].text);
      const want = await ok(tools[uri], {});
      if (uri === 'ibkr://limits') assert.deepEqual(got.limits, want.limits);
      else if (uri === 'ibkr://status') assert.deepEqual(got.limits, want.limits);
      else assert.deepEqual(got, want, uri);
    }
    const t = await client.listResourceTemplates();
    assert.deepEqual(t.resourceTemplates.map((x) => x.uriTemplate), ['ibkr://quote/{symbol}']);
    const q = JSON.parse((await client.readResource({ uri: 'ibkr://quote/NVDA' })).contents[0].text);
    assert.equal(q.symbol, 'NVDA');
    assert.ok(q.bid > 0 && q.bid < q.ask);
    await assert.rejects(client.readResource({ uri: 'ibkr://nope' }), (e) => e && e.code === -32002);
  });

  await step('listPrompts / getPrompt pre_trade_review', async () => {
    assert.ok(client.getServerCapabilities().prompts, 'prompts capability');
    const l = await client.listPrompts();
    const p = l.prompts.find((x) => x.name === 'pre_trade_review');
    assert.ok(p, 'pre_trade_review listed');
    assert.deepEqual(p.arguments.filter((a) => a.required).map((a) => a.name),
      ['symbol', 'action', 'quantity']);
    const g = await client.getPrompt({ name: 'pre_trade_review',
      arguments: { symbol: 'AAPL', action: 'SELL', quantity: '3' } });
    assert.equal(g.messages[0].role, 'user');
    assert.match(g.messages[0].content.text, /SELL 3 AAPL/);
    assert.match(g.messages[0].content.text, /preview_order/);
    await assert.rejects(client.getPrompt({ name: 'pre_trade_review', arguments: { symbol: 'AAPL' } }),
      (e) => e && e.code === -32602);
    await assert.rejects(client.getPrompt({ name: 'nope' }), (e) => e && e.code === -32602);
  });

  await step('halt_trading: later previews rejected with RISK_HALTED', async () => {
    const h = await ok('halt_trading', { reason: 'interop test' });
    assert.equal(h.halted, true);
    const p = await ok('preview_order', { symbol: 'NVDA', action: 'BUY', quantity: 1 });
    assert.equal(p.risk.approved, false);
    assert.ok(p.risk.codes.includes('RISK_HALTED'));
    assert.equal((await ok('get_status', {})).halted, true);
  });

  await step('get_journal: today\'s records, newest kept, a bad date refused', async () => {
    const j = await ok('get_journal', {});
    assert.match(j.date, /^\d{4}-\d{2}-\d{2}$/);
    assert.equal(j.count, j.records.length);
    const kinds = j.records.map((x) => x.kind);
    for (const k of ['startup', 'preview', 'redeem', 'order_sent', 'order_ack'])
      assert.ok(kinds.includes(k), `${k} missing: ${kinds}`);
    assert.ok(!JSON.stringify(j).match(/"token":/), 'a token in the journal');
    const two = await ok('get_journal', { limit: 2 });
    assert.equal(two.count, 2);
    assert.deepEqual(two.records, j.records.slice(-2));
    const none = await ok('get_journal', { date: '2001-01-02' });
    assert.equal(none.count, 0);
    await bad('get_journal', { date: '../../etc' });
  });

  await step('every tool was called', async () => {
    assert.deepEqual([...called].sort(), [...TOOL_NAMES].sort());
  });
} finally {
  await step('close: the server exits on stdin EOF, code 0', async () => {
    const t0 = Date.now();
    await client.close();
    const dt = Date.now() - t0;
    if (child) {
      if (child.exitCode === null && child.signalCode === null)
        await new Promise((r) => { child.once('exit', r); setTimeout(r, 3000); });
      assert.equal(child.signalCode, null,
        `the server had to be killed (${child.signalCode}) after ${dt} ms`);
      assert.equal(child.exitCode, 0);
    }
    assert.ok(dt < 2000, `close took ${dt} ms: the server did not exit on stdin EOF`);
  });
  if (child && child.exitCode === null && child.signalCode === null) {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
  }
  try { fs.rmSync(STATE, { recursive: true, force: true }); } catch { /* best effort */ }
}

if (failed && serverStderr) console.log(`# server stderr (tail):\n${serverStderr.slice(-2000)}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
