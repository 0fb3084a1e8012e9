// End-to-end MCP session over real pipes: spawns the ibkr-mcp binary and
// speaks raw newline-delimited JSON-RPC 2.0 to it, asserting the observable
// behaviour (protocol, tools, the order flow, shutdown).
//
// Usage: node tests/e2e/test_stdio.mjs <path-to-ibkr-mcp>
//
// Only node built-ins. Every server spawned here is killed at the end, every
// wait is bounded, and nothing but local pipes is used. Each server gets its
// own temporary state directory and an environment built from scratch (PATH
// and HOME only, plus the IBKR_* variables a test sets), so the outcome does
// not depend on the caller's environment.
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = process.argv[2];
if (!BIN) {
  console.error('usage: node test_stdio.mjs <path-to-ibkr-mcp>');
  process.exit(2);
}
if (!fs.existsSync(BIN)) {
  console.error(`ibkr-mcp binary not found: ${BIN}`);
  process.exit(2);
}
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TOOLS_DIR = path.join(REPO, 'lua', 'tools');
const TMP_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'ibkr-mcp-e2e-'));

const RESPONSE_TIMEOUT_MS = 10000;
const TEST_TIMEOUT_MS = 60000;
const EXIT_TIMEOUT_MS = 10000;
// What a sanitizer build (-DIM_SANITIZE=ON) writes to stderr on a finding.
const SANITIZER_RE =
  /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)/;
const LATEST = '2025-11-25';
const TOOL_NAMES = [
  'get_status', 'get_account_summary', 'get_positions', 'get_quote', 'get_open_orders',
  'get_trades', 'get_journal', 'preview_order', 'place_order', 'cancel_order', 'halt_trading',
];
const READ_TOOLS = ['get_status', 'get_account_summary', 'get_positions', 'get_quote',
  'get_open_orders', 'get_trades', 'get_journal', 'preview_order'];
const DESTRUCTIVE_TOOLS = ['place_order', 'cancel_order', 'halt_trading'];
const UNKNOWN_TOKEN_SENTENCE =
  'Unknown or already-used confirmation token. Call preview_order first.';

// ---- the server under test ------------------------------------------------

const live = new Set();   // every child still running, killed on the way out
let serverSeq = 0;

class Server {
  constructor(extraEnv = {}) {
    const stateDir = fs.mkdtempSync(path.join(TMP_ROOT, `state${++serverSeq}-`));
    const env = {
      PATH: process.env.PATH || '/usr/bin:/bin',
      HOME: stateDir,
      XDG_STATE_HOME: stateDir,
      IBKR_STATE_DIR: stateDir,
      IBKR_TOOLS_DIR: TOOLS_DIR,
      ...extraEnv,
    };
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    this.child = spawn(BIN, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(this.child);
    this.lines = [];          // {raw, msg, used}
    this.violations = [];     // stdout lines that are not JSON-RPC 2.0 messages
    this.stderr = '';
    this.waiters = [];
    this.nextId = 1;
    this.exited = false;
    this.exitCode = null;
    this.exitSignal = null;
    this.exitPromise = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exited = true;
        this.exitCode = code;
        this.exitSignal = signal;
        this.exitTime = Date.now();
        live.delete(this.child);
        resolve({ code, signal });
        this._wake();
      });
    });
    this.child.on('error', (e) => { this.spawnError = e; this._wake(); });
    this.child.stdin.on('error', () => {});   // EPIPE after the server exits
    let buf = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const raw = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this._line(raw);
      }
    });
    this.child.stdout.on('end', () => {
      if (buf.length) this.violations.push(`unterminated stdout data: ${buf.slice(0, 200)}`);
      buf = '';
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d) => {
      if (this.stderr.length < 1 << 20) this.stderr += d;
    });
  }

  _line(raw) {
    let msg = null;
    try {
      msg = JSON.parse(raw);
    } catch {
      this.violations.push(`not JSON: ${raw.slice(0, 200)}`);
    }
    if (msg !== null && (typeof msg !== 'object' || Array.isArray(msg) || msg.jsonrpc !== '2.0'))
      this.violations.push(`not a JSON-RPC 2.0 message: ${raw.slice(0, 200)}`);
    this.lines.push({ raw, msg, used: false, at: Date.now() });
    this._wake();
  }

  _wake() {
    for (const w of [...this.waiters]) w.check();
  }

  writeRaw(text) {
    this.child.stdin.write(text);
  }

  send(obj) {
    this.writeRaw(JSON.stringify(obj) + '\n');
  }

  // Resolves with the first unused stdout line matching pred (marking it used).
  waitLine(pred, what, timeoutMs = RESPONSE_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      const w = {
        check: () => {
          for (const l of this.lines) {
            if (!l.used && pred(l)) {
              l.used = true;
              done();
              resolve(l);
              return;
            }
          }
          if (this.spawnError) {
            done();
            reject(new Error(`spawn failed: ${this.spawnError.message}`));
          } else if (this.exited) {
            done();
            reject(new Error(`server exited (code ${this.exitCode}, signal ${this.exitSignal}) ` +
              `while waiting for ${what}; stderr: ${this.stderr.slice(-800)}`));
          }
        },
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ` +
          `stderr: ${this.stderr.slice(-800)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((x) => x !== w);
      };
      this.waiters.push(w);
      w.check();
    });
  }

  waitId(id, timeoutMs) {
    return this.waitLine((l) => l.msg && l.msg.id === id && !('method' in l.msg),
      `the response to id ${JSON.stringify(id)}`, timeoutMs);
  }

  waitNullId(timeoutMs) {
    return this.waitLine((l) => l.msg && l.msg.id === null, 'a response with id null',
      timeoutMs);
  }

  // Sends a request; resolves with the whole parsed response message.
  async request(method, params, timeoutMs) {
    const id = this.nextId++;
    const msg = { jsonrpc: '2.0', id, method };
    if (params !== undefined) msg.params = params;
    this.send(msg);
    return (await this.waitId(id, timeoutMs)).msg;
  }

  // Sends a request that must succeed; returns its result.
  async ok(method, params) {
    const r = await this.request(method, params);
    assert.ok(!('error' in r), `${method} failed: ${JSON.stringify(r.error)}`);
    assert.ok('result' in r, `${method}: response has no result: ${JSON.stringify(r)}`);
    return r.result;
  }

  async initialize(version = LATEST) {
    const res = await this.ok('initialize', {
      protocolVersion: version,
      capabilities: {},
      clientInfo: { name: 'ibkr-mcp-e2e', version: '1.0.0' },
    });
    this.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    return res;
  }

  // tools/call; returns the CallToolResult after checking its shape. A result
  // that is not an error must carry structuredContent and the same JSON as
  // text in content[0].
  async call(name, args) {
    const params = { name };
    if (args !== undefined) params.arguments = args;
    const res = await this.ok('tools/call', params);
    checkCallResult(name, res);
    return res;
  }

  // A call that must succeed: returns structuredContent.
  async tool(name, args) {
    const res = await this.call(name, args);
    assert.ok(!res.isError, `${name}(${JSON.stringify(args)}) failed: ${errText(res)}`);
    return res.structuredContent;
  }

  // A call that must fail with isError: returns its text.
  async toolError(name, args) {
    const res = await this.call(name, args);
    assert.equal(res.isError, true,
      `${name}(${JSON.stringify(args)}) should be isError, got ${JSON.stringify(res).slice(0, 600)}`);
    return errText(res);
  }

  closeStdin() {
    this.child.stdin.end();
  }

  async waitExit(timeoutMs) {
    let timer;
    const t = new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), timeoutMs); });
    const r = await Promise.race([this.exitPromise, t]);
    clearTimeout(timer);
    return r === 'timeout' ? null : r;
  }

  async kill() {
    if (this.exited) return;
    try { this.child.stdin.end(); } catch { /* already closed */ }
    try { this.child.kill('SIGKILL'); } catch { /* already gone */ }
    await this.waitExit(5000);
  }

  assertClean() {
    assert.deepEqual(this.violations, [], 'stdout carried something other than JSON-RPC lines');
  }

  // A server still running must exit 0 on stdin EOF (a SIGKILL would hide
  // what a sanitizer build reports at exit, leaks included); any server must
  // have nothing from a sanitizer on stderr.
  async assertCleanExit() {
    if (!this.exited && !this.spawnError) {
      this.closeStdin();
      const ex = await this.waitExit(EXIT_TIMEOUT_MS);
      assert.ok(ex, `still running ${EXIT_TIMEOUT_MS} ms after stdin EOF`);
      await sleep(20);   // the last stderr bytes
      assert.ok(!SANITIZER_RE.test(this.stderr),
        `sanitizer report on stderr:\n${this.stderr.slice(-6000)}`);
      assert.equal(ex.code, 0, `exit on stdin EOF: code ${ex.code}, signal ${ex.signal}`);
    }
    assert.ok(!SANITIZER_RE.test(this.stderr), `sanitizer report on stderr:\n${this.stderr.slice(-6000)}`);
  }
}

function errText(res) {
  return (res.content || []).map((c) => c.text).join(' ');
}

function checkCallResult(name, res) {
  assert.ok(Array.isArray(res.content) && res.content.length >= 1,
    `${name}: result.content must be a non-empty array: ${JSON.stringify(res).slice(0, 400)}`);
  assert.equal(res.content[0].type, 'text', `${name}: content[0] must be a text block`);
  assert.equal(typeof res.content[0].text, 'string', `${name}: content[0].text must be a string`);
  if (res.isError) {
    assert.ok(res.content[0].text.length > 0, `${name}: an error result needs a sentence`);
    return;
  }
  assert.ok(res.structuredContent && typeof res.structuredContent === 'object' &&
    !Array.isArray(res.structuredContent),
  `${name}: a successful result must carry structuredContent (an object)`);
  let parsed;
  try {
    parsed = JSON.parse(res.content[0].text);
  } catch (e) {
    assert.fail(`${name}: content[0].text is not JSON: ${res.content[0].text.slice(0, 200)}`);
  }
  assert.deepStrictEqual(parsed, res.structuredContent,
    `${name}: content[0].text is not the same JSON as structuredContent`);
}

// ---- the runner -------------------------------------------------------------

let passed = 0;
let failed = 0;

async function test(name, fn) {
  const servers = [];
  const start = (env) => {
    const s = new Server(env);
    servers.push(s);
    return s;
  };
  let timer;
  try {
    await Promise.race([
      fn(start),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`test timed out after ${TEST_TIMEOUT_MS} ms`)),
          TEST_TIMEOUT_MS);
      }),
    ]);
    for (const s of servers) s.assertClean();
    for (const s of servers) await s.assertCleanExit();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}`);
    console.log(`  ${String(e && e.stack ? e.stack : e).split('\n').join('\n  ')}`);
    for (const s of servers) {
      if (s.stderr) console.log(`  server stderr (tail): ${s.stderr.slice(-1500).split('\n').join('\n    ')}`);
    }
  } finally {
    clearTimeout(timer);
    await Promise.all(servers.map((s) => s.kill()));
  }
}

const TRADING = { IBKR_TRADING_ENABLED: 'true', IBKR_SIM_FREEZE: 'true' };
const FROZEN = { IBKR_SIM_FREEZE: 'true' };

function assertError(resp, code, what) {
  assert.ok(resp.error, `${what}: expected a JSON-RPC error, got ${JSON.stringify(resp).slice(0, 400)}`);
  assert.equal(resp.error.code, code, `${what}: error code`);
  assert.equal(typeof resp.error.message, 'string', `${what}: error.message must be a string`);
  assert.ok(!('result' in resp), `${what}: an error response must not carry a result`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- tests: lifecycle and JSON-RPC --------------------------------------------

await test('initialize 2025-11-25: echo, serverInfo, capabilities.tools, instructions', async (start) => {
  const s = start(FROZEN);
  const r = await s.initialize('2025-11-25');
  assert.equal(r.protocolVersion, '2025-11-25');
  assert.equal(r.serverInfo.name, 'ibkr-mcp');
  assert.equal(typeof r.serverInfo.version, 'string');
  assert.ok(r.capabilities && typeof r.capabilities.tools === 'object' && r.capabilities.tools !== null,
    'capabilities.tools must be an object');
  assert.equal(typeof r.instructions, 'string');
  assert.ok(r.instructions.length > 20, 'instructions should say something');
});

for (const v of ['2025-06-18', '2025-03-26', '2024-11-05']) {
  await test(`initialize ${v} is echoed`, async (start) => {
    const s = start(FROZEN);
    const r = await s.initialize(v);
    assert.equal(r.protocolVersion, v);
    assert.equal(r.serverInfo.name, 'ibkr-mcp');
    assert.ok(r.capabilities.tools);
  });
}

await test('initialize 1999-01-01 gets the counter-offer 2025-11-25 (not an error)', async (start) => {
  const s = start(FROZEN);
  const r = await s.initialize('1999-01-01');
  assert.equal(r.protocolVersion, LATEST);
  assert.equal(r.serverInfo.name, 'ibkr-mcp');
  assert.equal(typeof r.instructions, 'string');
});

await test('ping before and after initialize answers {}', async (start) => {
  const s = start(FROZEN);
  assert.deepEqual(await s.ok('ping'), {});
  await s.initialize();
  assert.deepEqual(await s.ok('ping'), {});
  assert.deepEqual(await s.ok('ping', {}), {});
});

await test('server/discover before initialize -> -32601 promptly; unknown method -> -32601', async (start) => {
  const s = start(FROZEN);
  const t0 = Date.now();
  const r = await s.request('server/discover', {}, 2000);
  const dt = Date.now() - t0;
  assertError(r, -32601, 'server/discover');
  assert.ok(dt < 2000, `server/discover took ${dt} ms`);
  await s.initialize();
  assertError(await s.request('no/such/method', {}), -32601, 'unknown method');
  assertError(await s.request('completion/complete', {}), -32601, 'completion/complete (not declared)');
  assert.deepEqual(await s.ok('ping'), {}, 'still serving');
});

await test('tools/call: unknown tool and non-object arguments -> JSON-RPC -32602', async (start) => {
  const s = start(FROZEN);
  await s.initialize();
  assertError(await s.request('tools/call', { name: 'no_such_tool', arguments: {} }), -32602,
    'unknown tool');
  assertError(await s.request('tools/call', { name: 'get_status', arguments: [1, 2] }), -32602,
    'arguments as an array');
  assertError(await s.request('tools/call', { name: 'get_status', arguments: 'x' }), -32602,
    'arguments as a string');
  assertError(await s.request('tools/call', { name: 'get_quote', arguments: 7 }), -32602,
    'arguments as a number');
  assertError(await s.request('tools/call', { arguments: {} }), -32602, 'missing name');
  // Omitted arguments are fine for a tool that takes none.
  const st = await s.tool('get_status');
  assert.equal(st.backend, 'sim');
});

await test('unparseable line -> -32700 id null, and the server keeps serving', async (start) => {
  const s = start(FROZEN);
  await s.initialize();
  s.writeRaw('{"jsonrpc":"2.0","id":77,"method":\n');
  const e = await s.waitNullId();
  assertError(e.msg, -32700, 'parse error');
  assert.equal(e.msg.id, null);
  assert.match(e.raw, /"id":null/, 'the id member must be present and null');
  s.writeRaw('this is not json\n');
  assertError((await s.waitNullId()).msg, -32700, 'parse error (text)');
  assert.deepEqual(await s.ok('ping'), {});
  const st = await s.tool('get_status');
  assert.equal(st.backend, 'sim');
});

await test('a JSON array (batch) -> -32600 id null; other invalid requests', async (start) => {
  const s = start(FROZEN);
  await s.initialize();
  s.writeRaw('[{"jsonrpc":"2.0","id":5,"method":"ping"},{"jsonrpc":"2.0","id":6,"method":"ping"}]\n');
  const e = await s.waitNullId();
  assertError(e.msg, -32600, 'batch');
  s.writeRaw('[]\n');
  assertError((await s.waitNullId()).msg, -32600, 'empty array');
  // Neither id 5 nor 6 was answered as a ping.
  assert.ok(!s.lines.some((l) => l.msg && (l.msg.id === 5 || l.msg.id === 6)),
    'a batch element was executed');
  s.writeRaw('{"jsonrpc":"1.0","id":41,"method":"ping"}\n');
  assertError((await s.waitId(41)).msg, -32600, 'jsonrpc 1.0');
  s.writeRaw('{"jsonrpc":"2.0","id":42,"method":5}\n');
  assertError((await s.waitId(42)).msg, -32600, 'method not a string');
  s.writeRaw('"just a string"\n');
  assertError((await s.waitNullId()).msg, -32600, 'a bare string');
  assert.deepEqual(await s.ok('ping'), {});
});

await test('ids: string echoed exactly, big integer echoed byte-exact', async (start) => {
  const s = start(FROZEN);
  await s.initialize();
  const sid = 'req-é/"quoted" 42';
  s.send({ jsonrpc: '2.0', id: sid, method: 'ping' });
  const r1 = await s.waitId(sid);
  assert.equal(r1.msg.id, sid);
  assert.deepEqual(r1.msg.result, {});
  // Raw form, escapes included, comes back byte for byte.
  const rawId = '"abc\\u0041\\/x"';
  s.writeRaw(`{"jsonrpc":"2.0","id":${rawId},"method":"ping"}\n`);
  const r2 = await s.waitId('abcA/x');
  assert.ok(r2.raw.includes(`"id":${rawId}`), `raw id not echoed exactly: ${r2.raw}`);
  // 12345678901234567890 does not fit a double: it must not come back rounded.
  s.writeRaw('{"jsonrpc":"2.0","id":12345678901234567890,"method":"ping"}\n');
  const r3 = await s.waitLine((l) => /"id":\s*12345678901234567\d*/.test(l.raw), 'the big-id response');
  assert.ok(r3.raw.includes('"id":12345678901234567890'),
    `big integer id not echoed byte-exact: ${r3.raw}`);
  assert.deepEqual(r3.msg.result, {});
  // Zero and negative integers too.
  s.writeRaw('{"jsonrpc":"2.0","id":0,"method":"ping"}\n');
  assert.ok((await s.waitId(0)).raw.includes('"id":0'));
  s.writeRaw('{"jsonrpc":"2.0","id":-7,"method":"ping"}\n');
  assert.ok((await s.waitId(-7)).raw.includes('"id":-7'));
});

await test('notifications get no response', async (start) => {
  const s = start(FROZEN);
  await s.initialize();
  const before = s.lines.length;
  s.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  s.send({ jsonrpc: '2.0', method: 'notifications/no_such_thing', params: {} });
  s.send({ jsonrpc: '2.0', method: 'ping' });
  s.send({ jsonrpc: '2.0', method: 'tools/list' });
  s.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 999 } });
  s.send({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'get_status' } });
  const id = s.nextId++;
  s.send({ jsonrpc: '2.0', id, method: 'ping' });
  await s.waitId(id);
  await sleep(200);
  assert.equal(s.lines.length, before + 1,
    `notifications were answered: ${s.lines.slice(before).map((l) => l.raw).join('\n')}`);
});

// ---- tests: tools/list --------------------------------------------------------

await test('tools/list: exactly the 11 tools, with schemas and annotations', async (start) => {
  const s = start(FROZEN);
  await s.initialize();
  const r = await s.ok('tools/list', {});
  assert.ok(Array.isArray(r.tools));
  assert.ok(!('nextCursor' in r) || r.nextCursor === undefined, 'one page: no nextCursor');
  const names = r.tools.map((t) => t.name);
  assert.deepEqual([...names].sort(), [...TOOL_NAMES].sort());
  assert.equal(new Set(names).size, names.length, 'names are unique');
  for (const t of r.tools) {
    assert.match(t.name, /^[A-Za-z0-9_.-]{1,128}$/);
    assert.equal(typeof t.title, 'string', `${t.name}.title`);
    assert.ok(t.title.length > 0, `${t.name}.title`);
    assert.equal(typeof t.description, 'string', `${t.name}.description`);
    assert.ok(t.description.length > 20, `${t.name}.description`);
    assert.equal(t.inputSchema && t.inputSchema.type, 'object', `${t.name}.inputSchema.type`);
    assert.equal(t.outputSchema && t.outputSchema.type, 'object', `${t.name}.outputSchema.type`);
    assert.ok(t.annotations && typeof t.annotations === 'object', `${t.name}.annotations`);
    if (READ_TOOLS.includes(t.name))
      assert.equal(t.annotations.readOnlyHint, true, `${t.name}: readOnlyHint`);
    if (DESTRUCTIVE_TOOLS.includes(t.name)) {
      assert.equal(t.annotations.destructiveHint, true, `${t.name}: destructiveHint`);
      assert.notEqual(t.annotations.readOnlyHint, true, `${t.name}: must not be readOnly`);
    }
  }
  // Without params too; and an invalid cursor is -32602.
  const r2 = await s.ok('tools/list');
  assert.equal(r2.tools.length, 11);
  assertError(await s.request('tools/list', { cursor: 'bogus' }), -32602, 'invalid cursor');
});

// ---- tests: the demo flow ---------------------------------------------------

await test('demo flow: status, account, quote, preview -> place, positions, trades, risk, tokens', async (start) => {
  const s = start(TRADING);
  await s.initialize();

  const st = await s.tool('get_status');
  assert.equal(st.backend, 'sim');
  assert.equal(st.trading_enabled, true);
  assert.equal(st.halted, false);
  assert.equal(st.orders_today, 0);
  assert.equal(typeof st.account, 'string');
  assert.equal(st.limits.max_order_notional, 20000);
  assert.equal(st.limits.max_position_notional, 60000);

  const acct = await s.tool('get_account_summary');
  assert.equal(acct.cash, 100000);
  assert.equal(typeof acct.net_liquidation, 'number');

  const q = await s.tool('get_quote', { symbol: 'NVDA' });
  assert.equal(q.symbol, 'NVDA');
  assert.ok(q.bid > 0 && q.bid < q.ask, `0 < bid < ask: ${q.bid} ${q.ask}`);

  const p = await s.tool('preview_order', { symbol: 'NVDA', action: 'BUY', quantity: 50, order_type: 'MKT' });
  assert.equal(p.risk.approved, true, `preview rejected: ${JSON.stringify(p.risk)}`);
  assert.match(p.confirmation_token, /^[0-9a-f]{32}$/);
  assert.equal(p.token_expires_in_seconds, 120);
  assert.equal(p.symbol, 'NVDA');
  assert.equal(p.quantity, 50);
  assert.ok(p.next_step.includes(p.confirmation_token));

  const placed = await s.tool('place_order', { confirmation_token: p.confirmation_token });
  assert.equal(placed.status, 'FILLED');
  assert.equal(placed.filled_quantity, 50);
  assert.equal(placed.symbol, 'NVDA');
  assert.equal(placed.action, 'BUY');
  assert.equal(typeof placed.order_id, 'string');
  assert.ok(placed.order_id.length > 0);
  assert.ok(Math.abs(placed.avg_fill_price - q.ask) / q.ask < 0.01,
    `avg_fill_price ${placed.avg_fill_price} far from the quote ${q.bid}/${q.ask}`);

  const pos = await s.tool('get_positions');
  const nvda = pos.positions.filter((x) => x.symbol === 'NVDA');
  assert.equal(nvda.length, 1, `positions: ${JSON.stringify(pos)}`);
  assert.equal(nvda[0].quantity, 50);
  assert.equal(pos.count, pos.positions.length);

  const tr = await s.tool('get_trades');
  assert.equal(tr.count, 1, `trades: ${JSON.stringify(tr)}`);
  assert.equal(tr.trades.length, 1);
  assert.equal(tr.trades[0].order_id, placed.order_id);
  assert.equal(tr.trades[0].symbol, 'NVDA');
  assert.equal(tr.trades[0].quantity, 50);

  const acct2 = await s.tool('get_account_summary');
  assert.ok(acct2.cash < 100000, 'cash went down after the buy');

  const st2 = await s.tool('get_status');
  assert.equal(st2.orders_today, 1);

  const big = await s.tool('preview_order', { symbol: 'TSLA', action: 'BUY', quantity: 400, order_type: 'MKT' });
  assert.equal(big.risk.approved, false);
  assert.equal(big.confirmation_token, null);
  assert.ok(big.risk.codes.includes('RISK_NOTIONAL_LIMIT'), `codes: ${big.risk.codes}`);
  assert.ok(big.risk.codes.includes('RISK_POSITION_LIMIT'), `codes: ${big.risk.codes}`);
  const reasons = big.risk.reasons.join(' ');
  assert.ok(reasons.includes('$20,000'), `reasons: ${reasons}`);
  assert.ok(reasons.includes('$60,000'), `reasons: ${reasons}`);
  assert.match(big.next_step, /REJECTED/);

  const bogus = await s.toolError('place_order', { confirmation_token: 'deadbeef'.repeat(4) });
  assert.equal(bogus, UNKNOWN_TOKEN_SENTENCE);

  const replay = await s.toolError('place_order', { confirmation_token: p.confirmation_token });
  assert.ok(replay.includes(UNKNOWN_TOKEN_SENTENCE), replay);
  assert.ok(replay.includes(placed.order_id), `replay does not name order ${placed.order_id}: ${replay}`);
  assert.ok(replay.includes('FILLED'), replay);

  const tr2 = await s.tool('get_trades');
  assert.equal(tr2.count, 1, 'the replay must not have traded');
});

await test('trading disabled: preview approved without token, place refused', async (start) => {
  const s = start(FROZEN);
  await s.initialize();
  const st = await s.tool('get_status');
  assert.equal(st.trading_enabled, false);
  const p = await s.tool('preview_order', { symbol: 'NVDA', action: 'BUY', quantity: 50 });
  assert.equal(p.risk.approved, true);
  assert.equal(p.trading_enabled, false);
  assert.equal(p.confirmation_token, null);
  assert.equal(p.token_expires_in_seconds, null);
  assert.match(p.next_step, /disabled/i);
  const t = await s.toolError('place_order', { confirmation_token: '0123456789abcdef0123456789abcdef' });
  assert.match(t, /disabled/i);
  assert.equal((await s.tool('get_trades')).count, 0);
});

await test('bad arguments -> isError with a sentence', async (start) => {
  const s = start(TRADING);
  await s.initialize();
  const cases = [
    [{ symbol: 'NVDA', action: 'BUY', quantity: 0 }, /quantity/i],
    [{ symbol: 'NVDA', action: 'BUY', quantity: 1.5 }, /quantity/i],
    [{ symbol: 'NVDA', action: 'BUY', quantity: -5 }, /quantity/i],
    [{ symbol: 'NVDA', action: 'BUY', quantity: '10' }, /quantity/i],
    [{ symbol: 'NVDA', action: 'HOLD', quantity: 10 }, /action/i],
    [{ action: 'BUY', quantity: 10 }, /symbol/i],
    [{ symbol: 'NVDA', action: 'BUY', quantity: 10, order_type: 'FOO' }, /order_type/i],
    [{ symbol: 'NVDA', action: 'BUY', quantity: 10, bogus_field: 1 }, /bogus_field|additional|unexpected|not allowed/i],
  ];
  for (const [args, re] of cases) {
    const text = await s.toolError('preview_order', args);
    assert.match(text, re, `preview_order(${JSON.stringify(args)}): ${text}`);
    assert.ok(text.length >= 15, `a sentence, not a code: ${text}`);
  }
  assert.match(await s.toolError('get_quote', {}), /symbol/i);
  assert.match(await s.toolError('place_order', {}), /confirmation_token/);
  assert.match(await s.toolError('cancel_order', {}), /order_id/);

  // LMT without limit_price: either a validation error or a risk rejection,
  // but it must explain the missing limit price and never issue a token.
  const lmt = await s.call('preview_order', { symbol: 'NVDA', action: 'BUY', quantity: 10, order_type: 'LMT' });
  if (lmt.isError) {
    assert.match(errText(lmt), /limit/i);
  } else {
    const sc = lmt.structuredContent;
    assert.equal(sc.risk.approved, false, `LMT without limit_price approved: ${JSON.stringify(sc)}`);
    assert.equal(sc.confirmation_token, null);
    assert.match(sc.risk.reasons.join(' '), /limit/i);
  }

  const unk = await s.toolError('get_quote', { symbol: 'zzzz' });
  assert.match(unk, /unknown/i);
  assert.match(unk, /ZZZZ/i);
  const unk2 = await s.toolError('preview_order', { symbol: 'zzzz', action: 'BUY', quantity: 1 });
  assert.match(unk2, /unknown/i);
  assert.match(unk2, /ZZZZ/i);

  assert.equal((await s.tool('get_status')).pending_tokens, 0, 'no token came out of any of that');
  assert.equal((await s.tool('get_trades')).count, 0);
});

// Five place_order calls with one token, written in one write() so the
// server reads them in one chunk: the safety property (exactly one order,
// one execution) and the message property (every losing call names the
// order the token placed, DESIGN.md section 2 invariant 3) are checked as
// separate tests so a failure says which one broke.
async function pipelinedRace(start) {
  const s = start(TRADING);
  await s.initialize();
  const p = await s.tool('preview_order', { symbol: 'AAPL', action: 'BUY', quantity: 10 });
  assert.equal(p.risk.approved, true, JSON.stringify(p.risk));
  const ids = [];
  let batch = '';
  for (let i = 0; i < 5; i++) {
    const id = `race-${i}`;
    ids.push(id);
    batch += JSON.stringify({
      jsonrpc: '2.0', id, method: 'tools/call',
      params: { name: 'place_order', arguments: { confirmation_token: p.confirmation_token } },
    }) + '\n';
  }
  s.writeRaw(batch);
  const results = [];
  for (const id of ids) {
    const r = (await s.waitId(id)).msg;
    assert.ok(r.result, `${id}: ${JSON.stringify(r)}`);
    checkCallResult('place_order', r.result);
    results.push(r.result);
  }
  const okOnes = results.filter((r) => !r.isError);
  assert.equal(okOnes.length, 1, `exactly one placement: ${JSON.stringify(results).slice(0, 2000)}`);
  const orderId = okOnes[0].structuredContent.order_id;
  assert.ok(orderId);
  const losers = results.filter((x) => x.isError).map(errText);
  for (const text of losers) assert.ok(text.includes(UNKNOWN_TOKEN_SENTENCE), text);
  const tr = await s.tool('get_trades');
  const mine = tr.trades.filter((t) => t.order_id === orderId);
  assert.equal(mine.length, 1, `executions: ${JSON.stringify(tr)}`);
  assert.equal(tr.count, 1);
  assert.equal((await s.tool('get_status')).orders_today, 1);
  return { orderId, losers };
}

await test('pipelined: 5 place_order with one token in one write -> exactly one order and one execution', async (start) => {
  const { losers } = await pipelinedRace(start);
  assert.equal(losers.length, 4);
});

await test('pipelined: the 4 losing place_order calls name the order the token placed', async (start) => {
  const { orderId, losers } = await pipelinedRace(start);
  for (const text of losers)
    assert.ok(text.includes(orderId), `a losing call must name order ${orderId}: ${text}`);
});

await test('halt_trading: previews rejected with RISK_HALTED, status halted, tokens dead', async (start) => {
  const s = start(TRADING);
  await s.initialize();
  const before = await s.tool('preview_order', { symbol: 'MSFT', action: 'BUY', quantity: 5 });
  assert.ok(before.confirmation_token);
  const h = await s.tool('halt_trading', { reason: 'e2e test' });
  assert.equal(h.halted, true);
  assert.equal(h.reason, 'e2e test');
  assert.equal(typeof h.message, 'string');
  const p = await s.tool('preview_order', { symbol: 'NVDA', action: 'BUY', quantity: 10 });
  assert.equal(p.risk.approved, false);
  assert.ok(p.risk.codes.includes('RISK_HALTED'), `codes: ${p.risk.codes}`);
  assert.equal(p.confirmation_token, null);
  const st = await s.tool('get_status');
  assert.equal(st.halted, true);
  // A token issued before the halt cannot place now.
  await s.toolError('place_order', { confirmation_token: before.confirmation_token });
  assert.equal((await s.tool('get_trades')).count, 0);
  // Halting again is fine and it stays halted.
  assert.equal((await s.tool('halt_trading', {})).halted, true);
  assert.equal((await s.tool('get_status')).halted, true);
});

// ---- tests: transport limits and shutdown ----------------------------------

await test('stdin EOF: pending responses arrive, then exit 0 within 2 s', async (start) => {
  const s = start(TRADING);
  await s.initialize();
  let text = '';
  for (let i = 100; i < 104; i++)
    text += JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'get_quote', arguments: { symbol: 'NVDA' } } }) + '\n';
  text += JSON.stringify({ jsonrpc: '2.0', id: 104, method: 'ping' }) + '\n';
  text += JSON.stringify({ jsonrpc: '2.0', id: 105, method: 'tools/call', params: { name: 'get_status' } }) + '\n';
  s.writeRaw(text);
  const t0 = Date.now();
  s.closeStdin();
  const ex = await s.waitExit(2000);
  assert.ok(ex, `still running ${Date.now() - t0} ms after stdin EOF`);
  assert.equal(ex.code, 0, `exit code ${ex.code}, signal ${ex.signal}`);
  await sleep(50); // let the stdout pipe drain into the reader
  for (let i = 100; i <= 105; i++) {
    const l = s.lines.find((x) => x.msg && x.msg.id === i);
    assert.ok(l, `no response to id ${i} before exit`);
    assert.ok(l.msg.result, `id ${i}: ${l.raw}`);
  }
});

await test('stdin EOF right after start-up: exit 0 promptly', async (start) => {
  const s = start(FROZEN);
  s.closeStdin();
  const ex = await s.waitExit(2000);
  assert.ok(ex, 'still running 2 s after stdin EOF');
  assert.equal(ex.code, 0);
});

await test('a final line without a newline before EOF is still answered', async (start) => {
  const s = start(FROZEN);
  s.writeRaw('{"jsonrpc":"2.0","id":9,"method":"ping"}');
  s.closeStdin();
  const ex = await s.waitExit(2000);
  assert.ok(ex, 'still running 2 s after stdin EOF');
  await sleep(50);
  const l = s.lines.find((x) => x.msg && x.msg.id === 9);
  assert.ok(l, 'the unterminated last line was not answered');
});

await test('SIGTERM: exits promptly', async (start) => {
  const s = start(FROZEN);
  await s.initialize();
  await s.tool('get_status');
  s.child.kill('SIGTERM');
  const ex = await s.waitExit(2000);
  assert.ok(ex, 'still running 2 s after SIGTERM');
  assert.ok(ex.code === 0 || ex.signal === 'SIGTERM', `exit ${JSON.stringify(ex)}`);
});

await test('overlong line (IBKR_MAX_LINE_BYTES=4096): -32600 id null, then served', async (start) => {
  const s = start({ ...FROZEN, IBKR_MAX_LINE_BYTES: '4096' });
  await s.initialize();
  const pad = 'x'.repeat(10000 - 60);
  let line = `{"jsonrpc":"2.0","id":555,"method":"ping","params":{"p":"${pad}"}}`;
  line = line.slice(0, line.length - 3) + '"}}'; // keep it valid JSON
  assert.ok(line.length >= 9900, String(line.length));
  // Split the long line over several writes, as a pipe may.
  s.writeRaw(line.slice(0, 3000));
  await sleep(20);
  s.writeRaw(line.slice(3000, 7000));
  await sleep(20);
  s.writeRaw(line.slice(7000) + '\n');
  const e = await s.waitNullId();
  assertError(e.msg, -32600, 'overlong line');
  assert.ok(!s.lines.some((l) => l.msg && l.msg.id === 555), 'the overlong request was executed');
  assert.deepEqual(await s.ok('ping'), {});
  const st = await s.tool('get_status');
  assert.equal(st.backend, 'sim');
  // A line just under the limit is fine.
  const okLine = JSON.stringify({ jsonrpc: '2.0', id: 556, method: 'ping', params: { p: 'y'.repeat(3900) } });
  assert.ok(okLine.length < 4096);
  s.writeRaw(okLine + '\n');
  assert.deepEqual((await s.waitId(556)).msg.result, {});
});

await test('IBKR_MAX_ORDER_QTY=abc: start-up fails, non-zero exit, stderr names it', async (start) => {
  const s = start({ IBKR_MAX_ORDER_QTY: 'abc' });
  const ex = await s.waitExit(10000);
  assert.ok(ex, 'did not exit within 10 s');
  assert.notEqual(ex.code, 0, `exit ${JSON.stringify(ex)}`);
  await sleep(50);
  assert.match(s.stderr, /IBKR_MAX_ORDER_QTY/);
  assert.equal(s.lines.length, 0, 'nothing on stdout');
});

await test('other bad configuration values stop start-up naming the variable', async (start) => {
  for (const [k, v] of [['IBKR_MAX_ORDER_NOTIONAL', '-5'], ['IBKR_TOKEN_TTL_SECONDS', 'nan'],
    ['IBKR_TRADING_ENABLED', 'maybe']]) {
    const s = start({ [k]: v });
    const ex = await s.waitExit(10000);
    assert.ok(ex, `${k}=${v}: did not exit within 10 s`);
    assert.notEqual(ex.code, 0, `${k}=${v}: exit ${JSON.stringify(ex)}`);
    await sleep(50);
    assert.ok(s.stderr.includes(k), `${k}=${v}: stderr does not name it: ${s.stderr}`);
  }
});

await test('IBKR_TOKEN_TTL_SECONDS is reported in the preview', async (start) => {
  const s = start({ ...TRADING, IBKR_TOKEN_TTL_SECONDS: '30' });
  await s.initialize();
  const p = await s.tool('preview_order', { symbol: 'NVDA', action: 'BUY', quantity: 1 });
  assert.equal(p.token_expires_in_seconds, 30);
  assert.equal((await s.tool('get_status')).limits.token_ttl_seconds, 30);
});

// ---- summary -----------------------------------------------------------------

for (const c of live) {
  try { c.kill('SIGKILL'); } catch { /* gone */ }
}
try { fs.rmSync(TMP_ROOT, { recursive: true, force: true }); } catch { /* best effort */ }
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
