// The MCP surface beyond tools, spoken as raw newline-delimited JSON-RPC over
// the real pipes of the ibkr-mcp binary: logging/setLevel and
// notifications/message, resources, prompts, the 2026-07-28 era (per-request
// _meta, server/discover, resultType, ttlMs/cacheScope, -32022) and JSON-RPC
// batches where 2025-03-26 was negotiated.
//
// Usage: node tests/e2e/protocol/test_protocol.mjs <path-to-ibkr-mcp>
//
// Node built-ins only. Every wait is bounded; every server started here is
// killed at the end; each gets its own state directory and an environment
// built from scratch.
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = process.argv[2];
if (!BIN || !fs.existsSync(BIN)) {
  console.error(`usage: node test_protocol.mjs <path-to-ibkr-mcp> (got ${BIN})`);
  process.exit(2);
}
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const TOOLS_DIR = path.join(REPO, 'lua', 'tools');
const TMP_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'ibkr-mcp-proto-'));
const RESPONSE_TIMEOUT_MS = 10000;
const TEST_TIMEOUT_MS = 60000;
const QUIET_MS = 300;   // how long "nothing arrives" is watched for
const MODERN = '2026-07-28';
const META_VERSION = 'io.modelcontextprotocol/protocolVersion';
const META_LOG = 'io.modelcontextprotocol/logLevel';
const META_INFO = 'io.modelcontextprotocol/serverInfo';
const SANITIZER_RE =
  /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)/;

const FROZEN = { IBKR_SIM_FREEZE: 'true' };
const TRADING = { IBKR_SIM_FREEZE: 'true', IBKR_TRADING_ENABLED: 'true' };
const REJECTED_PREVIEW = { symbol: 'TSLA', action: 'BUY', quantity: 400, order_type: 'MKT' };
const APPROVED_PREVIEW = { symbol: 'NVDA', action: 'BUY', quantity: 5, order_type: 'MKT' };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let serverSeq = 0;

class Server {
  constructor(extraEnv = {}) {
    const stateDir = fs.mkdtempSync(path.join(TMP_ROOT, `state${++serverSeq}-`));
    const env = {
      PATH: process.env.PATH || '/usr/bin:/bin',
      HOME: stateDir,
      IBKR_STATE_DIR: stateDir,
      IBKR_TOOLS_DIR: TOOLS_DIR,
      IBKR_LOG_LEVEL: 'warn',
      ...extraEnv,
    };
    this.child = spawn(BIN, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.msgs = [];       // every parsed stdout message, in order
    this.bad = [];        // stdout lines that are not JSON-RPC 2.0
    this.stderr = '';
    this.waiters = new Set();
    this.nextId = 1;
    this.exited = false;
    this.exitPromise = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exited = true;
        resolve({ code, signal });
        this.wake();
      });
    });
    this.child.on('error', (e) => { this.spawnError = e; this.wake(); });
    this.child.stdin.on('error', () => {});
    let buf = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const raw = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let msg;
        try {
          msg = JSON.parse(raw);
        } catch {
          this.bad.push(raw.slice(0, 200));
          continue;
        }
        const items = Array.isArray(msg) ? msg : [msg];
        if (items.some((x) => !x || typeof x !== 'object' || x.jsonrpc !== '2.0'))
          this.bad.push(raw.slice(0, 200));
        this.msgs.push({ raw, msg });
        this.wake();
      }
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d) => { if (this.stderr.length < 1 << 20) this.stderr += d; });
  }

  wake() { for (const w of [...this.waiters]) w(); }

  // Resolves with the first message (at or after index from) for which
  // pred is true; rejects after timeoutMs.
  waitFor(pred, what, timeoutMs = RESPONSE_TIMEOUT_MS, from = 0) {
    return new Promise((resolve, reject) => {
      let timer;
      const check = () => {
        for (let i = from; i < this.msgs.length; i++) {
          if (pred(this.msgs[i].msg)) {
            clearTimeout(timer);
            this.waiters.delete(check);
            resolve(this.msgs[i]);
            return;
          }
        }
        if (this.exited || this.spawnError) {
          clearTimeout(timer);
          this.waiters.delete(check);
          reject(new Error(`server exited while waiting for ${what}; stderr: ${this.stderr.slice(-800)}`));
        }
      };
      timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  writeRaw(text) { this.child.stdin.write(text); }
  send(msg) { this.writeRaw(`${JSON.stringify(msg)}\n`); }

  async request(method, params) {
    const id = this.nextId++;
    const msg = { jsonrpc: '2.0', id, method };
    if (params !== undefined) msg.params = params;
    this.send(msg);
    return (await this.waitFor((m) => !Array.isArray(m) && m.id === id && !('method' in m),
      `response to ${method} (id ${id})`)).msg;
  }

  async ok(method, params) {
    const r = await this.request(method, params);
    assert.ok(!('error' in r), `${method} failed: ${JSON.stringify(r.error)}`);
    return r.result;
  }

  async initialize(version = '2025-11-25') {
    const r = await this.ok('initialize', {
      protocolVersion: version, capabilities: {}, clientInfo: { name: 'proto-e2e', version: '1' },
    });
    this.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    return r;
  }

  // A tools/call that must succeed: its structuredContent.
  async tool(name, args, params = {}) {
    const r = await this.ok('tools/call', { name, arguments: args || {}, ...params });
    assert.ok(!r.isError, `${name} failed: ${JSON.stringify(r).slice(0, 400)}`);
    return r.structuredContent;
  }

  logs(from = 0) {
    return this.msgs.slice(from).map((x) => x.msg)
      .filter((m) => !Array.isArray(m) && m.method === 'notifications/message');
  }

  async stop() {
    if (!this.exited && !this.spawnError) {
      this.child.stdin.end();
      let timer;
      const r = await Promise.race([this.exitPromise,
        new Promise((res) => { timer = setTimeout(() => res(null), 10000); })]);
      clearTimeout(timer);
      if (!r) {
        this.child.kill('SIGKILL');
        await this.exitPromise;
        throw new Error('the server did not exit within 10 s of stdin EOF');
      }
      await sleep(20);
      assert.ok(!SANITIZER_RE.test(this.stderr), `sanitizer report:\n${this.stderr.slice(-4000)}`);
      assert.equal(r.code, 0, `exit code on stdin EOF: ${r.code} (signal ${r.signal})`);
    }
  }

  kill() {
    if (!this.exited) {
      try { this.child.kill('SIGKILL'); } catch { /* gone */ }
    }
  }
}

function assertError(resp, code, what) {
  assert.ok(resp.error, `${what}: expected an error, got ${JSON.stringify(resp).slice(0, 400)}`);
  assert.equal(resp.error.code, code, `${what}: error code (${resp.error.message})`);
  assert.equal(typeof resp.error.message, 'string');
  assert.ok(!('result' in resp), `${what}: an error carries no result`);
}

function modernMeta(extra = {}) {
  return {
    [META_VERSION]: MODERN,
    'io.modelcontextprotocol/clientCapabilities': {},
    'io.modelcontextprotocol/clientInfo': { name: 'proto-e2e', version: '1' },
    ...extra,
  };
}

function assertModernResult(r, what) {
  assert.equal(r.resultType, 'complete', `${what}: resultType`);
  assert.ok(r._meta && r._meta[META_INFO] && r._meta[META_INFO].name === 'ibkr-mcp',
    `${what}: _meta serverInfo: ${JSON.stringify(r._meta)}`);
}

function assertCacheHints(r, what) {
  assert.equal(typeof r.ttlMs, 'number', `${what}: ttlMs`);
  assert.ok(r.ttlMs >= 0, `${what}: ttlMs >= 0`);
  assert.ok(['public', 'private'].includes(r.cacheScope), `${what}: cacheScope ${r.cacheScope}`);
}

// ---- runner -------------------------------------------------------------------

let passed = 0;
let failed = 0;

async function test(name, fn) {
  const servers = [];
  const start = (env) => { const s = new Server(env); servers.push(s); return s; };
  let timer;
  try {
    await Promise.race([fn(start), new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`timed out after ${TEST_TIMEOUT_MS} ms`)), TEST_TIMEOUT_MS);
    })]);
    for (const s of servers) assert.deepEqual(s.bad, [], 'stdout carried a line that is not JSON-RPC 2.0');
    for (const s of servers) await s.stop();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}`);
    console.log(`  ${String(e && e.stack ? e.stack : e).split('\n').join('\n  ')}`);
    for (const s of servers) if (s.stderr) console.log(`  stderr (tail): ${s.stderr.slice(-1200)}`);
  } finally {
    clearTimeout(timer);
    for (const s of servers) s.kill();
  }
}

// ---- logging --------------------------------------------------------------------

await test('logging: capability declared; nothing is sent before logging/setLevel', async (start) => {
  const s = start(FROZEN);
  const init = await s.initialize();
  assert.deepEqual(init.capabilities.logging, {});
  const mark = s.msgs.length;
  await s.tool('preview_order', REJECTED_PREVIEW);
  await sleep(QUIET_MS);
  assert.deepEqual(s.logs(mark), [], 'a notification was sent before setLevel');
});

await test('logging: setLevel warning + a rejected preview -> notifications/message at warning', async (start) => {
  const s = start(FROZEN);
  await s.initialize();
  assert.deepEqual(await s.ok('logging/setLevel', { level: 'warning' }), {});
  const mark = s.msgs.length;
  const pv = await s.tool('preview_order', REJECTED_PREVIEW);
  assert.equal(pv.risk.approved, false);
  const note = (await s.waitFor((m) => m.method === 'notifications/message', 'a log notification',
    RESPONSE_TIMEOUT_MS, mark)).msg;
  assert.equal(note.params.level, 'warning');
  assert.equal(note.params.logger, 'ibkr-mcp');
  assert.equal(note.params.data.event, 'preview_rejected');
  assert.equal(note.params.data.symbol, 'TSLA');
  assert.ok(Array.isArray(note.params.data.reasons) && note.params.data.reasons.length > 0);
  assert.deepEqual(note.params.data.reasons, pv.risk.reasons, 'the same reasons as the preview');
  assert.match(note.params.data.message, /rejected/);
  assert.ok(!('id' in note), 'a notification has no id');
});

await test('logging: level filtering (info hidden at warning, shown at info; error hides warning)', async (start) => {
  const s = start(TRADING);
  await s.initialize();
  await s.ok('logging/setLevel', { level: 'warning' });
  let mark = s.msgs.length;
  const ok1 = await s.tool('preview_order', APPROVED_PREVIEW);
  assert.equal(ok1.risk.approved, true);
  await sleep(QUIET_MS);
  assert.deepEqual(s.logs(mark), [], 'an info event passed a warning threshold');

  await s.ok('logging/setLevel', { level: 'info' });
  mark = s.msgs.length;
  await s.tool('preview_order', APPROVED_PREVIEW);
  const note = (await s.waitFor((m) => m.method === 'notifications/message', 'an info notification',
    RESPONSE_TIMEOUT_MS, mark)).msg;
  assert.equal(note.params.level, 'info');
  assert.equal(note.params.data.event, 'preview_approved');

  await s.ok('logging/setLevel', { level: 'error' });
  mark = s.msgs.length;
  await s.tool('preview_order', REJECTED_PREVIEW);
  await sleep(QUIET_MS);
  assert.deepEqual(s.logs(mark), [], 'a warning passed an error threshold');

  // A placed order reports its status and fill at info / notice.
  await s.ok('logging/setLevel', { level: 'debug' });
  const pv = await s.tool('preview_order', APPROVED_PREVIEW);
  mark = s.msgs.length;
  await s.tool('place_order', { confirmation_token: pv.confirmation_token });
  await s.waitFor((m) => m.method === 'notifications/message' &&
    ['order_status', 'fill'].includes(m.params.data.event), 'an order or fill notification',
  RESPONSE_TIMEOUT_MS, mark);
});

await test('logging: a halt is reported at critical', async (start) => {
  const s = start(TRADING);
  await s.initialize();
  await s.ok('logging/setLevel', { level: 'error' });
  const mark = s.msgs.length;
  await s.ok('tools/call', { name: 'halt_trading', arguments: { reason: 'protocol test' } });
  const note = (await s.waitFor((m) => m.method === 'notifications/message', 'a halt notification',
    RESPONSE_TIMEOUT_MS, mark)).msg;
  assert.equal(note.params.level, 'critical');
  assert.equal(note.params.data.event, 'halt');
});

await test('logging/setLevel: an invalid or missing level -> -32602; every RFC 5424 level accepted', async (start) => {
  const s = start(FROZEN);
  await s.initialize();
  assertError(await s.request('logging/setLevel', { level: 'verbose' }), -32602, 'unknown level');
  assertError(await s.request('logging/setLevel', { level: 'WARNING' }), -32602, 'upper case');
  assertError(await s.request('logging/setLevel', { level: 3 }), -32602, 'a number');
  assertError(await s.request('logging/setLevel', {}), -32602, 'missing');
  for (const l of ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'])
    assert.deepEqual(await s.ok('logging/setLevel', { level: l }), {}, l);
});

// ---- resources ------------------------------------------------------------------

const RESOURCES = {
  'ibkr://status': ['get_status', {}],
  'ibkr://account': ['get_account_summary', {}],
  'ibkr://positions': ['get_positions', {}],
  'ibkr://orders/open': ['get_open_orders', {}],
  'ibkr://trades': ['get_trades', {}],
  'ibkr://limits': ['get_status', {}],
};

await test('resources/list: the seven stable URIs, JSON, one page', async (start) => {
  const s = start(FROZEN);
  const init = await s.initialize();
  assert.ok(init.capabilities.resources, 'resources capability');
  const r = await s.ok('resources/list', {});
  assert.deepEqual(r.resources.map((x) => x.uri).sort(),
    [...Object.keys(RESOURCES), 'ibkr://journal'].sort());
  for (const x of r.resources) {
    assert.equal(typeof x.name, 'string');
    assert.equal(typeof x.description, 'string');
    assert.equal(x.mimeType, 'application/json');
  }
  assert.ok(!('nextCursor' in r));
  assert.ok(!('resultType' in r), 'no resultType in the legacy era');
  assertError(await s.request('resources/list', { cursor: 'abc' }), -32602, 'invalid cursor');
  assertError(await s.request('resources/templates/list', { cursor: 'x' }), -32602, 'template cursor');
});

await test('resources/read: each URI carries the same JSON as its tool', async (start) => {
  const s = start(TRADING);
  await s.initialize();
  // Something in the account: a filled order, so positions and trades are not empty.
  const pv = await s.tool('preview_order', APPROVED_PREVIEW);
  await s.tool('place_order', { confirmation_token: pv.confirmation_token });
  for (const [uri, [tool, args]] of Object.entries(RESOURCES)) {
    const r = await s.ok('resources/read', { uri });
    assert.equal(r.contents.length, 1, uri);
    const c = r.contents[0];
    assert.equal(c.uri, uri);
    assert.equal(c.mimeType, 'application/json');
    const got = JSON.parse(c.text);
    const want = await s.tool(tool, args);
    if (uri === 'ibkr://limits') {
      assert.deepEqual(got.limits, want.limits, 'limits');
      assert.deepEqual(got.policies || [], want.policies || [], 'policies');
      assert.equal(got.trading_enabled, want.trading_enabled);
      assert.equal(got.halted, want.halted);
      assert.ok(!('orders_today' in got), 'limits is a narrowed view');
    } else if (uri === 'ibkr://status') {
      delete got.time; delete want.time;
      delete got.pending_tokens; delete want.pending_tokens;
      assert.deepEqual(got, want, uri);
    } else {
      assert.deepEqual(got, want, uri);
    }
  }
  const pos = JSON.parse((await s.ok('resources/read', { uri: 'ibkr://positions' })).contents[0].text);
  assert.ok(pos.positions.some((p) => p.symbol === 'NVDA'), 'the fill shows in positions');
});

await test('resources: template ibkr://quote/{symbol}; read ibkr://quote/NVDA', async (start) => {
  const s = start(FROZEN);
  await s.initialize();
  const t = await s.ok('resources/templates/list', {});
  assert.deepEqual(t.resourceTemplates.map((x) => x.uriTemplate), ['ibkr://quote/{symbol}']);
  const r = await s.ok('resources/read', { uri: 'ibkr://quote/NVDA' });
  assert.equal(r.contents[0].uri, 'ibkr://quote/NVDA');
  const q = JSON.parse(r.contents[0].text);
  assert.equal(q.symbol, 'NVDA');
  assert.deepEqual(q, await s.tool('get_quote', { symbol: 'NVDA' }));
});

await test('resources/read: unknown URI -> -32002 with data.uri; bad params -> -32602', async (start) => {
  const s = start(FROZEN);
  await s.initialize();
  for (const uri of ['ibkr://nope', 'ibkr://quote/', 'ibkr://quote/../../etc', 'file:///etc/passwd',
    'ibkr://status/x', 'IBKR://status']) {
    const r = await s.request('resources/read', { uri });
    assertError(r, -32002, uri);
    assert.deepEqual(r.error.data, { uri }, `${uri}: data.uri`);
  }
  assertError(await s.request('resources/read', {}), -32602, 'missing uri');
  assertError(await s.request('resources/read', { uri: 5 }), -32602, 'uri a number');
  // A symbol the simulator does not know: a JSON-RPC error, not a crash.
  const r = await s.request('resources/read', { uri: 'ibkr://quote/ZZZZZZ' });
  assert.ok(r.error || (r.result && r.result.contents), JSON.stringify(r));
  assert.deepEqual(await s.ok('ping'), {});
});

await test('resources/read: cancelled -> no response, server keeps serving', async (start) => {
  const s = start(FROZEN);
  await s.initialize();
  s.send({ jsonrpc: '2.0', id: 'r1', method: 'resources/read', params: { uri: 'ibkr://account' } });
  s.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'r1' } });
  assert.deepEqual(await s.ok('ping'), {});
  // Either answered before the cancel arrived, or never: both are correct.
  await sleep(QUIET_MS);
  assert.ok(s.msgs.filter((x) => x.msg.id === 'r1').length <= 1);
});

// ---- prompts ----------------------------------------------------------------------

await test('prompts/list and prompts/get pre_trade_review', async (start) => {
  const s = start(FROZEN);
  const init = await s.initialize();
  assert.ok(init.capabilities.prompts, 'prompts capability');
  const l = await s.ok('prompts/list', {});
  const p = l.prompts.find((x) => x.name === 'pre_trade_review');
  assert.ok(p, 'pre_trade_review listed');
  assert.deepEqual(p.arguments.map((a) => [a.name, a.required]),
    [['symbol', true], ['action', true], ['quantity', true]]);
  assert.ok(l.prompts.some((x) => x.name === 'portfolio_summary'));
  assertError(await s.request('prompts/list', { cursor: 'next' }), -32602, 'cursor');

  const g = await s.ok('prompts/get', { name: 'pre_trade_review',
    arguments: { symbol: 'nvda', action: 'buy', quantity: '10' } });
  assert.equal(g.messages.length >= 1, true);
  assert.equal(g.messages[0].role, 'user');
  assert.equal(g.messages[0].content.type, 'text');
  const text = g.messages[0].content.text;
  for (const w of ['get_status', 'get_quote', 'get_positions', 'preview_order', 'place_order',
    'BUY 10 NVDA'])
    assert.ok(text.includes(w), `the prompt mentions ${w}`);
  assert.ok(text.indexOf('get_status') < text.indexOf('preview_order') &&
    text.indexOf('preview_order') < text.indexOf('place_order'), 'in order');
  assert.match(text, /agree/);
  const ps = await s.ok('prompts/get', { name: 'portfolio_summary' });
  assert.match(ps.messages[0].content.text, /get_positions/);
});

await test('prompts/get: unknown prompt, missing or bad argument -> -32602', async (start) => {
  const s = start(FROZEN);
  await s.initialize();
  assertError(await s.request('prompts/get', { name: 'no_such_prompt' }), -32602, 'unknown');
  assertError(await s.request('prompts/get', {}), -32602, 'no name');
  assertError(await s.request('prompts/get', { name: 'pre_trade_review',
    arguments: { symbol: 'NVDA', action: 'BUY' } }), -32602, 'missing quantity');
  assertError(await s.request('prompts/get', { name: 'pre_trade_review' }), -32602, 'no arguments');
  assertError(await s.request('prompts/get', { name: 'pre_trade_review',
    arguments: { symbol: 'NVDA', action: 'HOLD', quantity: '1' } }), -32602, 'bad action');
  assertError(await s.request('prompts/get', { name: 'pre_trade_review',
    arguments: { symbol: 'NVDA', action: 'BUY', quantity: '-3' } }), -32602, 'bad quantity');
  assertError(await s.request('prompts/get', { name: 'pre_trade_review',
    arguments: { symbol: 'rm -rf /', action: 'BUY', quantity: '1' } }), -32602, 'bad symbol');
});

// ---- instructions ---------------------------------------------------------------------

await test('instructions: sim/paper/live, trading on/off, preview before place, token TTL', async (start) => {
  const a = start({ ...FROZEN, IBKR_TOKEN_TTL_SECONDS: '90' });
  const ia = (await a.initialize()).instructions;
  assert.match(ia, /SIMULATED/);
  assert.match(ia, /DISABLED/);
  assert.match(ia, /preview/i);
  assert.match(ia, /90 s/);
  assert.ok(ia.split('\n').length <= 8, 'a few lines');
  const b = start(TRADING);
  assert.match((await b.initialize()).instructions, /Trading is ENABLED/);
});

// ---- 2026-07-28 ---------------------------------------------------------------------

await test('2026-07-28: server/discover without initialize', async (start) => {
  const s = start(FROZEN);
  const r = await s.ok('server/discover', { _meta: modernMeta() });
  assert.ok(r.supportedVersions.includes(MODERN), JSON.stringify(r.supportedVersions));
  for (const c of ['tools', 'resources', 'prompts']) assert.ok(r.capabilities[c], c);
  assert.equal(typeof r.instructions, 'string');
  assertModernResult(r, 'discover');
  assert.equal(typeof r._meta[META_INFO].version, 'string');
  assertCacheHints(r, 'discover');
  // Legacy probe (no modern _meta): -32601 as before.
  assertError(await s.request('server/discover', {}), -32601, 'legacy server/discover');
  assertError(await s.request('server/discover'), -32601, 'legacy server/discover, no params');
});

await test('2026-07-28: resultType, serverInfo and cache hints on results', async (start) => {
  const s = start(FROZEN);
  const meta = modernMeta();
  const tl = await s.ok('tools/list', { _meta: meta });
  assertModernResult(tl, 'tools/list');
  assertCacheHints(tl, 'tools/list');
  assert.ok(tl.tools.length >= 10);
  const call = await s.ok('tools/call', { name: 'get_status', arguments: {}, _meta: meta });
  assertModernResult(call, 'tools/call');
  assert.equal(call.structuredContent.backend, 'sim');
  for (const m of ['resources/list', 'resources/templates/list', 'prompts/list']) {
    const r = await s.ok(m, { _meta: meta });
    assertModernResult(r, m);
    assertCacheHints(r, m);
  }
  const rd = await s.ok('resources/read', { uri: 'ibkr://account', _meta: meta });
  assertModernResult(rd, 'resources/read');
  assertCacheHints(rd, 'resources/read');
  assert.equal(rd.cacheScope, 'private', 'account data is private');
  const pg = await s.ok('prompts/get', { name: 'portfolio_summary', _meta: meta });
  assertModernResult(pg, 'prompts/get');
  // Not found is -32602 in this era.
  const nf = await s.request('resources/read', { uri: 'ibkr://nope', _meta: meta });
  assertError(nf, -32602, 'modern resource not found');
  assert.deepEqual(nf.error.data, { uri: 'ibkr://nope' });
  // Removed methods.
  assertError(await s.request('ping', { _meta: meta }), -32601, 'modern ping');
  assertError(await s.request('logging/setLevel', { level: 'info', _meta: meta }), -32601,
    'modern setLevel');
  assertError(await s.request('initialize', { protocolVersion: MODERN, capabilities: {},
    clientInfo: { name: 'x', version: '1' }, _meta: meta }), -32601, 'modern initialize');
  // Legacy requests on the same connection are unchanged.
  assert.deepEqual(await s.ok('ping'), {});
  const legacy = await s.ok('tools/list', {});
  assert.ok(!('resultType' in legacy) && !('ttlMs' in legacy), 'legacy results stay as they were');
});

await test('2026-07-28: -32022 for an unsupported _meta version', async (start) => {
  const s = start(FROZEN);
  for (const v of ['2099-01-01', '', 7]) {
    const r = await s.request('tools/list', { _meta: { [META_VERSION]: v } });
    assertError(r, -32022, `version ${JSON.stringify(v)}`);
    assert.ok(Array.isArray(r.error.data.supported) && r.error.data.supported.includes(MODERN));
    assert.deepEqual(r.error.data.requested, v);
  }
  assertError(await s.request('server/discover', { _meta: { [META_VERSION]: '2030-01-01' } }),
    -32022, 'discover with a future version');
});

await test('2026-07-28: notifications/message only for requests carrying a log level', async (start) => {
  const s = start(FROZEN);
  let mark = s.msgs.length;
  await s.tool('preview_order', REJECTED_PREVIEW, { _meta: modernMeta() });
  await sleep(QUIET_MS);
  assert.deepEqual(s.logs(mark), [], 'no log level, no notification');
  mark = s.msgs.length;
  await s.tool('preview_order', REJECTED_PREVIEW, { _meta: modernMeta({ [META_LOG]: 'warning' }) });
  const note = (await s.waitFor((m) => m.method === 'notifications/message', 'a log notification',
    RESPONSE_TIMEOUT_MS, mark)).msg;
  assert.equal(note.params.level, 'warning');
  assert.equal(note.params.data.event, 'preview_rejected');
  mark = s.msgs.length;
  await s.tool('preview_order', REJECTED_PREVIEW, { _meta: modernMeta({ [META_LOG]: 'error' }) });
  await sleep(QUIET_MS);
  assert.deepEqual(s.logs(mark), [], 'below the request\'s level');
  assertError(await s.request('tools/list', { _meta: modernMeta({ [META_LOG]: 'loud' }) }), -32602,
    'invalid per-request level');
});

// ---- batches ---------------------------------------------------------------------------

await test('batches under 2025-03-26: one array of responses once all are done', async (start) => {
  const s = start(FROZEN);
  await s.initialize('2025-03-26');
  const mark = s.msgs.length;
  const elems = [
    { jsonrpc: '2.0', id: 'b1', method: 'ping' },
    { jsonrpc: '2.0', method: 'notifications/initialized' },
    { jsonrpc: '2.0', id: 'b2', method: 'tools/call', params: { name: 'get_quote', arguments: { symbol: 'NVDA' } } },
    { jsonrpc: '2.0', id: 'b3', method: 'no/such/method' },
  ].map((x) => JSON.stringify(x));
  elems.push('{"jsonrpc":"2.0","id":12345678901234567890,"method":"ping"}', '42');
  s.writeRaw(`[${elems.join(', ')}]\n`);
  const got = await s.waitFor((m) => Array.isArray(m), 'a batch response', RESPONSE_TIMEOUT_MS, mark);
  const arr = got.msg;
  assert.equal(arr.length, 5, JSON.stringify(arr).slice(0, 600));
  const byId = new Map(arr.filter((x) => x.id !== null).map((x) => [String(x.id), x]));
  assert.deepEqual(byId.get('b1').result, {});
  assert.equal(byId.get('b2').result.structuredContent.symbol, 'NVDA');
  assert.equal(byId.get('b3').error.code, -32601);
  assert.ok(got.raw.includes('"id":12345678901234567890'), 'a big id is echoed byte-exact');
  const nul = arr.filter((x) => x.id === null);
  assert.equal(nul.length, 1);
  assert.equal(nul[0].error.code, -32600);
  // No element was answered on its own line.
  assert.ok(!s.msgs.slice(mark).some((x) => !Array.isArray(x.msg) && x.msg.id === 'b1'));

  // An empty array: one -32600, not an array.
  const m2 = s.msgs.length;
  s.writeRaw('[]\n');
  const e = await s.waitFor((m) => !Array.isArray(m) && m.id === null, 'an error', RESPONSE_TIMEOUT_MS, m2);
  assert.equal(e.msg.error.code, -32600);
  // Only notifications: nothing at all.
  const m3 = s.msgs.length;
  s.writeRaw('[{"jsonrpc":"2.0","method":"notifications/initialized"}]\n');
  assert.deepEqual(await s.ok('ping'), {});
  await sleep(QUIET_MS);
  assert.ok(!s.msgs.slice(m3).some((x) => Array.isArray(x.msg)), 'no array for notifications only');
});

await test('batches: cancelling one element leaves it out of the array', async (start) => {
  const s = start(FROZEN);
  await s.initialize('2025-03-26');
  const mark = s.msgs.length;
  s.writeRaw(`${JSON.stringify([
    { jsonrpc: '2.0', id: 'c1', method: 'ping' },
    { jsonrpc: '2.0', id: 'c2', method: 'tools/call', params: { name: 'get_account_summary' } },
    { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'c2' } },
  ])}\n`);
  const got = await s.waitFor((m) => Array.isArray(m), 'a batch response', RESPONSE_TIMEOUT_MS, mark);
  assert.ok(got.msg.some((x) => x.id === 'c1'));
  assert.ok(got.msg.length <= 2);
});

await test('batches are refused under 2025-11-25 and 2025-06-18 and before initialize', async (start) => {
  for (const v of [null, '2025-11-25', '2025-06-18']) {
    const s = start(FROZEN);
    if (v) await s.initialize(v);
    const mark = s.msgs.length;
    s.writeRaw('[{"jsonrpc":"2.0","id":"x1","method":"ping"}]\n');
    const e = await s.waitFor((m) => !Array.isArray(m) && m.id === null, 'an error', RESPONSE_TIMEOUT_MS, mark);
    assert.equal(e.msg.error.code, -32600);
    await sleep(50);
    assert.ok(!s.msgs.some((x) => x.msg.id === 'x1'), 'the element ran');
  }
});

console.log(`${passed} passed, ${failed} failed`);
fs.rmSync(TMP_ROOT, { recursive: true, force: true });
process.exit(failed ? 1 : 0);
