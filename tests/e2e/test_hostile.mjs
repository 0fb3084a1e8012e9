// Hostile input over real pipes: spawns the ibkr-mcp binary and feeds it
// malformed JSON-RPC, oversized and deeply nested lines, odd ids, wrong
// argument types for every tool, malformed orders and odd characters. Each
// case must get the right answer (a JSON-RPC error with the right code, or a
// tools/call result with isError true and a sentence), every stdout line must
// be a UTF-8 JSON-RPC 2.0 message, and after each case the server must still
// answer ping and get_status. At the end every server must exit 0 on stdin
// EOF with no sanitizer report on stderr (in a -DIM_SANITIZE=ON build a leak
// found at exit makes the exit status non-zero).
//
// Usage: node tests/e2e/test_hostile.mjs <path-to-ibkr-mcp> [name-filter]
//
// Only node built-ins. One server serves most cases (fresh ones only where a
// case changes the session for good, e.g. halt_trading); every wait is
// bounded; every process started here is killed on the way out.
//
// A case marked knownBug documents a server bug that is still open: its
// failure is reported as "known bug" and does not fail the run (the liveness
// check after it still must pass). When the bug is fixed the case reports
// "KNOWN BUG FIXED": drop the mark then (HOSTILE_STRICT=1 makes that fatal).
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = process.argv[2];
const FILTER = process.argv[3] || '';
if (!BIN) {
  console.error('usage: node test_hostile.mjs <path-to-ibkr-mcp> [name-filter]');
  process.exit(2);
}
if (!fs.existsSync(BIN)) {
  console.error(`ibkr-mcp binary not found: ${BIN}`);
  process.exit(2);
}
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TOOLS_DIR = path.join(REPO, 'lua', 'tools');
const TMP_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'ibkr-mcp-hostile-'));
const STRICT = process.env.HOSTILE_STRICT === '1';

const RESPONSE_TIMEOUT_MS = 20000;   // one answer; generous for ASan on 2 cores
const CASE_TIMEOUT_MS = 45000;
const EXIT_TIMEOUT_MS = 20000;       // stdin EOF -> exit, leak check included
const RUN_TIMEOUT_MS = 240000;       // the whole run (ctest allows 300 s)
const MIB = 1024 * 1024;
const SANITIZER_RE =
  /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)/;

// ---- the server under test ------------------------------------------------

const live = new Set();
let serverSeq = 0;
const utf8 = new TextDecoder('utf-8', { fatal: true });

class Server {
  constructor(label, extraEnv = {}) {
    this.label = label;
    const stateDir = fs.mkdtempSync(path.join(TMP_ROOT, `state${++serverSeq}-`));
    const env = {
      PATH: process.env.PATH || '/usr/bin:/bin',
      HOME: stateDir,
      XDG_STATE_HOME: stateDir,
      IBKR_STATE_DIR: stateDir,
      IBKR_TOOLS_DIR: TOOLS_DIR,
      IBKR_LOG_LEVEL: 'warn',
      ...extraEnv,
    };
    // Sanitizer settings from ctest reach the server; the binaries of a
    // sanitizer build carry the same defaults anyway.
    for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS'])
      if (process.env[k]) env[k] = process.env[k];
    this.child = spawn(BIN, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(this.child);
    this.lines = [];       // {raw, msg, used, problems}
    this.stderr = '';
    this.waiters = [];
    this.nextId = 1;
    this.exited = false;
    this.exitPromise = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exited = true;
        this.exitCode = code;
        this.exitSignal = signal;
        live.delete(this.child);
        resolve({ code, signal });
        this._wake();
      });
    });
    // 'close' comes after the last stdout and stderr bytes (a report
    // written at exit included), which 'exit' does not promise.
    this.closed = new Promise((resolve) => this.child.on('close', resolve));
    this.child.on('error', (e) => { this.spawnError = e; this._wake(); });
    this.child.stdin.on('error', () => {});   // EPIPE once the server is gone
    let pending = [];
    let pendingLen = 0;
    this.child.stdout.on('data', (d) => {
      let start = 0;
      for (;;) {
        const nl = d.indexOf(0x0a, start);
        if (nl < 0) break;
        pending.push(d.subarray(start, nl));
        this._line(Buffer.concat(pending));
        pending = [];
        pendingLen = 0;
        start = nl + 1;
      }
      if (start < d.length) {
        pending.push(d.subarray(start));
        pendingLen += d.length - start;
      }
    });
    this.child.stdout.on('end', () => {
      if (pendingLen) this._line(Buffer.concat(pending), 'unterminated last stdout line');
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d) => {
      if (this.stderr.length < 4 * MIB) this.stderr += d;
    });
  }

  _line(buf, extraProblem) {
    const problems = [];
    if (extraProblem) problems.push(extraProblem);
    let text;
    try {
      text = utf8.decode(buf);
    } catch {
      problems.push('stdout line is not valid UTF-8');
      text = buf.toString('utf8');
    }
    let msg = null;
    try {
      msg = JSON.parse(text);
    } catch {
      problems.push('stdout line is not JSON');
    }
    if (msg !== null && (typeof msg !== 'object' || Array.isArray(msg) || msg.jsonrpc !== '2.0'))
      problems.push('stdout line is not a JSON-RPC 2.0 message');
    if (msg === null && !problems.length) problems.push('stdout line is JSON null');
    this.lines.push({ raw: text, msg: msg && typeof msg === 'object' ? msg : null, used: false, problems });
    this._wake();
  }

  _wake() {
    for (const w of [...this.waiters]) w.check();
  }

  write(data) {
    return new Promise((resolve) => {
      if (this.exited) return resolve();
      this.child.stdin.write(data, () => resolve());
    });
  }

  newId() {
    return this.nextId++;
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
            reject(new Error(`server ${this.label} exited (code ${this.exitCode}, signal ` +
              `${this.exitSignal}) while waiting for ${what}`));
          }
        },
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
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
    return this.waitLine((l) => l.msg && !('method' in l.msg) && l.msg.id === id,
      `the response to id ${JSON.stringify(id)}`, timeoutMs);
  }

  // Writes text (a string or a Buffer, without its newline) and then a
  // sentinel ping; resolves with every unused line that arrived before the
  // sentinel's answer. The server handles lines in order and answers
  // protocol-level errors at once, so those answers precede the sentinel's.
  async exchange(text) {
    const sid = `sentinel-${this.newId()}`;
    const tail = `\n{"jsonrpc":"2.0","id":"${sid}","method":"ping"}\n`;
    await this.write(Buffer.isBuffer(text) ? Buffer.concat([text, Buffer.from(tail)]) : text + tail);
    const s = await this.waitId(sid);
    const idx = this.lines.indexOf(s);
    const got = this.lines.slice(0, idx).filter((l) => !l.used);
    for (const l of got) l.used = true;
    return got;
  }

  // A request object (or a raw line that carries id) -> the response message.
  async request(method, params, timeoutMs) {
    const id = this.newId();
    const msg = { jsonrpc: '2.0', id, method };
    if (params !== undefined) msg.params = params;
    await this.write(JSON.stringify(msg) + '\n');
    return (await this.waitId(id, timeoutMs)).msg;
  }

  async rawRequest(line, id, timeoutMs) {
    await this.write(line + '\n');
    return (await this.waitId(id, timeoutMs)).msg;
  }

  async initialize() {
    const r = await this.request('initialize', {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'ibkr-mcp-hostile', version: '1.0.0' },
    });
    assert.ok(r.result, `initialize failed: ${JSON.stringify(r)}`);
    await this.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n');
  }

  // tools/call whose arguments may carry raw JSON (see rawJson).
  async call(name, args) {
    const id = this.newId();
    const params = { name };
    if (args !== undefined) params.arguments = args;
    const line = rawJson({ jsonrpc: '2.0', id, method: 'tools/call', params });
    await this.write(line + '\n');
    return (await this.waitId(id)).msg;
  }

  // Closes stdin and waits for the exit; resolves {code, signal} or null.
  async closeAndWait(timeoutMs = EXIT_TIMEOUT_MS) {
    try { this.child.stdin.end(); } catch { /* closed */ }
    let timer;
    const t = new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), timeoutMs); });
    const r = await Promise.race([this.exitPromise, t]);
    clearTimeout(timer);
    return r === 'timeout' ? null : r;
  }

  kill() {
    if (this.exited) return;
    try { this.child.kill('SIGKILL'); } catch { /* gone */ }
  }
}

// JSON text with raw number tokens: RAW('1e400') stands for the token 1e400,
// which JSON.stringify cannot produce.
const RAW_PREFIX = '\u0001raw:';
const RAW = (token) => `${RAW_PREFIX}${token}\u0001`;
function rawJson(v) {
  return JSON.stringify(v).replace(/"\\u0001raw:([^"\\]*)\\u0001"/g, '$1');
}

// ---- assertions -------------------------------------------------------------

const show = (x) => {
  const s = typeof x === 'string' ? x : JSON.stringify(x);
  return s === undefined ? String(x) : s.length > 500 ? `${s.slice(0, 500)}...` : s;
};

function assertError(msg, code, what) {
  assert.ok(msg && msg.error, `${what}: expected a JSON-RPC error ${code}, got ${show(msg)}`);
  assert.ok(!('result' in msg), `${what}: an error response must not carry a result`);
  assert.equal(msg.error.code, code, `${what}: error code (message: ${show(msg.error.message)})`);
  assert.equal(typeof msg.error.message, 'string', `${what}: error.message must be a string`);
  assert.ok(msg.error.message.length > 0, `${what}: error.message is empty`);
}

// Exactly one answer among lines, an error with code and id null.
function oneNullError(lines, code, what) {
  assert.equal(lines.length, 1,
    `${what}: expected exactly one answer, got ${lines.length}: ${show(lines.map((l) => l.raw))}`);
  assertError(lines[0].msg, code, what);
  assert.equal(lines[0].msg.id, null, `${what}: the error must carry id null`);
  assert.match(lines[0].raw, /"id":\s*null/, `${what}: the id member must be present and null`);
}

function oneError(lines, code, id, what) {
  assert.equal(lines.length, 1,
    `${what}: expected exactly one answer, got ${lines.length}: ${show(lines.map((l) => l.raw))}`);
  assertError(lines[0].msg, code, what);
  assert.deepEqual(lines[0].msg.id, id, `${what}: the error's id`);
}

function silent(lines, what) {
  assert.equal(lines.length, 0, `${what}: expected no answer, got ${show(lines.map((l) => l.raw))}`);
}

function resultOf(resp, what) {
  assert.ok(resp && resp.result, `${what}: expected a tools/call result, got ${show(resp)}`);
  const r = resp.result;
  assert.ok(Array.isArray(r.content) && r.content.length >= 1, `${what}: content must be a non-empty array`);
  assert.equal(r.content[0].type, 'text', `${what}: content[0] must be a text block`);
  assert.equal(typeof r.content[0].text, 'string', `${what}: content[0].text must be a string`);
  return r;
}

// An isError result with a sentence (matching re when given); returns the text.
function toolError(resp, re, what) {
  const r = resultOf(resp, what);
  assert.equal(r.isError, true, `${what}: expected isError, got ${show(r)}`);
  const text = r.content.map((c) => c.text).join(' ');
  assert.ok(text.length >= 8 && /\s/.test(text.trim()), `${what}: not a sentence: ${show(text)}`);
  assert.doesNotMatch(text, /server bug|malformed data/i, `${what}: the server blames itself: ${text}`);
  if (re) assert.match(text, re, `${what}: ${show(text)}`);
  return text;
}

function toolOk(resp, what) {
  const r = resultOf(resp, what);
  assert.ok(!r.isError, `${what}: expected success, got ${show(r)}`);
  assert.ok(r.structuredContent && typeof r.structuredContent === 'object', `${what}: no structuredContent`);
  return r.structuredContent;
}

// Either a validation error or a risk rejection, never a token; the
// explanation must match re.
function noToken(resp, re, what) {
  const r = resultOf(resp, what);
  if (r.isError) {
    toolError(resp, re, what);
    return;
  }
  const sc = r.structuredContent;
  assert.equal(sc.risk.approved, false, `${what}: approved: ${show(sc)}`);
  assert.equal(sc.confirmation_token, null, `${what}: a token was issued`);
  assert.match(sc.risk.reasons.join(' '), re, `${what}: reasons ${show(sc.risk.reasons)}`);
}

// ---- the runner -------------------------------------------------------------

const TRADING = { IBKR_TRADING_ENABLED: 'true', IBKR_SIM_FREEZE: 'true' };
const counts = { passed: 0, failed: 0, known: 0, fixed: 0 };
const knownBugs = [];
const servers = [];
let main = null;

async function startServer(label, env = TRADING) {
  const s = new Server(label, env);
  servers.push(s);
  await s.initialize();
  return s;
}

function withTimeout(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// The server still answers a valid call: ping, and get_status unless the
// case says ping is enough.
async function alive(s, pingOnly) {
  const p = await s.request('ping');
  assert.deepEqual(p.result, {}, `liveness: ping answered ${show(p)}`);
  if (!pingOnly) {
    const st = await s.request('tools/call', { name: 'get_status', arguments: {} });
    const sc = toolOk(st, 'liveness: get_status');
    assert.equal(sc.backend, 'sim', 'liveness: get_status.backend');
  }
}

function report(ok, name, err) {
  if (ok) {
    console.log(`ok - ${name}`);
  } else {
    console.log(`not ok - ${name}`);
    console.log(`  ${String(err && err.stack ? err.stack : err).split('\n').slice(0, 8).join('\n  ')}`);
  }
}

// opts: {knownBug: 'what is wrong', server: Server, pingOnly: bool}
async function kase(name, fn, opts = {}) {
  if (FILTER && !name.includes(FILTER)) return;
  const s = opts.server || main;
  const mark = s.lines.length;
  const stderrMark = s.stderr.length;
  let caseErr = null;
  let liveErr = null;
  try {
    await withTimeout(fn(s), CASE_TIMEOUT_MS, 'case');
  } catch (e) {
    caseErr = e;
  }
  try {
    await withTimeout(alive(s, opts.pingOnly), CASE_TIMEOUT_MS, 'liveness check');
  } catch (e) {
    liveErr = e;
  }
  // Every stdout line of the case must have been expected and well-formed.
  const stray = s.lines.slice(mark).filter((l) => !l.used || l.problems.length);
  for (const l of stray) l.used = true;
  if (!caseErr && stray.length) {
    caseErr = new Error(`unexpected or malformed stdout lines: ${show(stray.map((l) =>
      `${l.problems.length ? `[${l.problems.join('; ')}] ` : '[unexpected] '}${l.raw.slice(0, 300)}`))}`);
  }
  const sanitizer = s.stderr.slice(stderrMark).match(SANITIZER_RE);
  if (liveErr || sanitizer) {
    counts.failed++;
    report(false, name, liveErr || new Error(`sanitizer report on stderr`));
    if (caseErr) console.log(`  (the case itself: ${String(caseErr.message).slice(0, 400)})`);
    console.log(`  server stderr (tail): ${s.stderr.slice(-3000).split('\n').join('\n    ')}`);
    if (s.exited || !s.child.stdin.writable) {
      // Carry on with a fresh server so one crash does not hide the rest.
      const fresh = await startServer(`${s.label}+`, TRADING).catch(() => null);
      if (fresh && s === main) main = fresh;
    }
    return;
  }
  if (opts.knownBug) {
    if (caseErr) {
      counts.known++;
      knownBugs.push(name);
      console.log(`ok - ${name} # KNOWN BUG (not counted as passed): ${opts.knownBug}`);
      console.log(`  ${String(caseErr.message).split('\n')[0].slice(0, 400)}`);
    } else {
      counts.passed++;
      counts.fixed++;
      if (STRICT) counts.failed++;
      console.log(`ok - ${name} # KNOWN BUG FIXED? the case passes: drop its knownBug mark`);
    }
    return;
  }
  if (caseErr) {
    counts.failed++;
    report(false, name, caseErr);
  } else {
    counts.passed++;
    report(true, name);
  }
}

// Final check for one server: exit 0 on stdin EOF, nothing from a sanitizer.
async function exitCase(s) {
  const name = `clean exit on stdin EOF, no sanitizer report (server ${s.label})`;
  try {
    const ex = await s.closeAndWait();
    assert.ok(ex, `still running ${EXIT_TIMEOUT_MS} ms after stdin EOF`);
    await withTimeout(s.closed, 5000, 'the server\'s pipes closing').catch(() => {});
    const san = s.stderr.match(SANITIZER_RE);
    assert.ok(!san, `sanitizer report on stderr:\n${s.stderr.slice(Math.max(0, s.stderr.search(SANITIZER_RE) - 200)).slice(0, 6000)}`);
    assert.equal(ex.code, 0, `exit code ${ex.code}, signal ${ex.signal}; stderr: ${s.stderr.slice(-3000)}`);
    counts.passed++;
    report(true, name);
  } catch (e) {
    counts.failed++;
    report(false, name, e);
    s.kill();
  }
}

// ---- the catalogue ------------------------------------------------------------

const watchdog = setTimeout(() => {
  console.log(`not ok - the whole run took longer than ${RUN_TIMEOUT_MS} ms`);
  for (const c of live) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  process.exit(1);
}, RUN_TIMEOUT_MS);
const t0 = Date.now();

try {
  main = await startServer('main');
} catch (e) {
  console.log(`not ok - start-up: ${e.message}`);
  for (const s of servers) console.log(`  stderr: ${s.stderr.slice(-2000)}`);
  for (const c of live) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
  process.exit(1);
}

const ping = (id) => `{"jsonrpc":"2.0","id":${id},"method":"ping"}`;

// ---- 1. not JSON: -32700 with id null ------------------------------------------

const PARSE_ERRORS = [
  ['plain text', 'this is not json'],
  ['a lone {', '{'],
  ['truncated object', '{"jsonrpc":"2.0","id":1,"method":"ping"'],
  ['truncated inside a string', '{"jsonrpc":"2.0","id":1,"method":"pi'],
  ['trailing comma', '{"jsonrpc":"2.0","id":1,"method":"ping",}'],
  ['single quotes', "{'jsonrpc':'2.0','id':1,'method':'ping'}"],
  ['unquoted keys', '{jsonrpc:"2.0",id:1,method:"ping"}'],
  ['NaN literal', '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":NaN}}'],
  ['Infinity literal', '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":Infinity}}'],
  ['invalid escape \\x41', '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"\\x41"}}'],
  ['closing brackets only', ']}]}'],
  ['an unterminated array of strings', '["a","b'],
  ['id +1 (not a JSON number)', '{"jsonrpc":"2.0","id":+1,"method":"ping"}'],
  ['id 0x10 (hex)', '{"jsonrpc":"2.0","id":0x10,"method":"ping"}'],
  ['100000 levels of [', '['.repeat(100000)],
  ['100000 levels of {"a":', '{"a":'.repeat(100000)],
  ['balanced 100000-deep array in params (nesting limit)',
    `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":${'['.repeat(100000)}${']'.repeat(100000)}}}`],
  ['balanced 5000-deep objects in tool arguments',
    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_quote","arguments":{"symbol":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}}}`],
];
for (const [what, text] of PARSE_ERRORS) {
  await kase(`parse error: ${what} -> -32700 id null`, async (s) => {
    oneNullError(await s.exchange(text), -32700, what);
  });
}

await kase('parse error: NUL bytes only -> -32700 id null', async (s) => {
  oneNullError(await s.exchange(Buffer.from([0, 0, 0, 0])), -32700, 'NUL bytes');
});

await kase('parse error: invalid UTF-8 bytes only -> -32700 id null', async (s) => {
  oneNullError(await s.exchange(Buffer.from([0xff, 0xfe, 0xfd, 0x80])), -32700, 'invalid UTF-8');
});

await kase('parse error: trailing garbage after a valid request -> -32700, not executed', async (s) => {
  const id = s.newId();
  oneNullError(await s.exchange(`${ping(id)} xyz`), -32700, 'trailing garbage');
});

await kase('parse error: two requests on one line -> -32700, neither executed', async (s) => {
  const a = s.newId();
  const b = s.newId();
  oneNullError(await s.exchange(`${ping(a)}${ping(b)}`), -32700, 'two objects on a line');
});

await kase('parse error: id 01 (leading zero) -> -32700, never echoed as invalid JSON', async (s) => {
  oneNullError(await s.exchange('{"jsonrpc":"2.0","id":01,"method":"ping"}'), -32700, 'id 01');
});

await kase('parse error: id 1. (no digits after the point) -> -32700, never echoed as invalid JSON', async (s) => {
  oneNullError(await s.exchange('{"jsonrpc":"2.0","id":1.,"method":"ping"}'), -32700, 'id 1.');
});

// Lenient cases: strict JSON would refuse them; either refusing (-32700) or
// answering the request is acceptable, as long as the answer is well-formed.
for (const [what, text] of [
  ['a raw tab inside a string', '{"jsonrpc":"2.0","id":ID,"method":"ping","params":{"a":"x\ty"}}'],
  ['a raw NUL byte between members', '{"jsonrpc":"2.0",\u0000"id":ID,"method":"ping"}'],
  ['control bytes as whitespace', '{"jsonrpc":"2.0",\u0001"id":ID,\u001f"method":"ping"}'],
  ['a lone surrogate escape', '{"jsonrpc":"2.0","id":ID,"method":"ping","params":{"a":"\\ud800"}}'],
  ['a UTF-8 byte order mark', '\ufeff{"jsonrpc":"2.0","id":ID,"method":"ping"}'],
]) {
  await kase(`lenient: ${what} -> -32700 or a ping result`, async (s) => {
    const id = s.newId();
    const lines = await s.exchange(text.replace('ID', String(id)));
    assert.equal(lines.length, 1, `one answer: ${show(lines.map((l) => l.raw))}`);
    const m = lines[0].msg;
    if (m.id === null) assertError(m, -32700, what);
    else {
      assert.equal(m.id, id);
      assert.deepEqual(m.result, {});
    }
  });
}

// ---- 2. not a valid request: -32600 --------------------------------------------

const NULL_ID_INVALID = [
  ['an empty array', '[]'],
  ['a batch of two pings', '[{"jsonrpc":"2.0","id":"b1","method":"ping"},{"jsonrpc":"2.0","id":"b2","method":"ping"}]'],
  ['an array of numbers', '[1,2,3]'],
  ['an empty object', '{}'],
  ['a bare string', '"ping"'],
  ['a bare number', '42'],
  ['a bare true', 'true'],
  ['a bare null', 'null'],
  ['id null', '{"jsonrpc":"2.0","id":null,"method":"ping"}'],
  ['id true', '{"jsonrpc":"2.0","id":true,"method":"ping"}'],
  ['id false', '{"jsonrpc":"2.0","id":false,"method":"ping"}'],
  ['id an object', '{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}'],
  ['id an array', '{"jsonrpc":"2.0","id":[1],"method":"ping"}'],
  ['id a float 1.5', '{"jsonrpc":"2.0","id":1.5,"method":"ping"}'],
  ['id -0.001', '{"jsonrpc":"2.0","id":-1e-3,"method":"ping"}'],
  ['id 1e400 (parses to inf)', '{"jsonrpc":"2.0","id":1e400,"method":"ping"}'],
];
for (const [what, text] of NULL_ID_INVALID) {
  await kase(`invalid request: ${what} -> -32600 id null`, async (s) => {
    oneNullError(await s.exchange(text), -32600, what);
  });
}

await kase('invalid request: a batch is refused whole (no element executed)', async (s) => {
  const a = `batch-${s.newId()}`;
  const b = `batch-${s.newId()}`;
  const lines = await s.exchange(`[${JSON.stringify({ jsonrpc: '2.0', id: a, method: 'ping' })},` +
    `${JSON.stringify({ jsonrpc: '2.0', id: b, method: 'tools/call', params: { name: 'get_status' } })}]`);
  oneNullError(lines, -32600, 'batch');
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(!s.lines.some((l) => l.msg && (l.msg.id === a || l.msg.id === b)), 'a batch element ran');
});

const ID_INVALID = [
  ['missing jsonrpc', (id) => `{"id":${id},"method":"ping"}`],
  ['jsonrpc "1.0"', (id) => `{"jsonrpc":"1.0","id":${id},"method":"ping"}`],
  ['jsonrpc 2.0 as a number', (id) => `{"jsonrpc":2.0,"id":${id},"method":"ping"}`],
  ['jsonrpc "2.0 " (trailing space)', (id) => `{"jsonrpc":"2.0 ","id":${id},"method":"ping"}`],
  ['jsonrpc null', (id) => `{"jsonrpc":null,"id":${id},"method":"ping"}`],
  ['method missing', (id) => `{"jsonrpc":"2.0","id":${id}}`],
  ['method a number', (id) => `{"jsonrpc":"2.0","id":${id},"method":5}`],
  ['method null', (id) => `{"jsonrpc":"2.0","id":${id},"method":null}`],
  ['method an object', (id) => `{"jsonrpc":"2.0","id":${id},"method":{"name":"ping"}}`],
  ['method an array', (id) => `{"jsonrpc":"2.0","id":${id},"method":["ping"]}`],
  ['params a string', (id) => `{"jsonrpc":"2.0","id":${id},"method":"ping","params":"x"}`],
  ['params a number', (id) => `{"jsonrpc":"2.0","id":${id},"method":"tools/list","params":5}`],
  ['params true', (id) => `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":true}`],
  ['params null', (id) => `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":null}`],
];
for (const [what, make] of ID_INVALID) {
  await kase(`invalid request: ${what} -> -32600`, async (s) => {
    const id = s.newId();
    const lines = await s.exchange(make(id));
    assert.equal(lines.length, 1, `one answer: ${show(lines.map((l) => l.raw))}`);
    assertError(lines[0].msg, -32600, what);
    // The id could be read, so echoing it is right; null is tolerated.
    assert.ok(lines[0].msg.id === id || lines[0].msg.id === null, `id: ${lines[0].raw}`);
  });
}

// ---- 3. size limits (default IBKR_MAX_LINE_BYTES, 4 MiB) -------------------------

await kase('a 5 MiB line -> -32600 id null, the request is not executed', async (s) => {
  const id = s.newId();
  const line = `{"jsonrpc":"2.0","id":${id},"method":"ping","params":{"pad":"${'z'.repeat(5 * MIB)}"}}`;
  const lines = await s.exchange(line);
  oneNullError(lines, -32600, '5 MiB line');
  assert.ok(!s.lines.some((l) => l.msg && l.msg.id === id), 'the overlong request was executed');
});

await kase('a 5 MiB line in 64 KiB writes, multi-byte characters split -> -32600, then served', async (s) => {
  const id = s.newId();
  const line = Buffer.from(`{"jsonrpc":"2.0","id":${id},"method":"ping","params":{"pad":"${'é😀'.repeat(5 * MIB / 6)}"}}\n`);
  for (let off = 0; off < line.length; off += 65536 + 1)   // odd chunk size: splits characters
    await s.write(line.subarray(off, Math.min(line.length, off + 65537)));
  const lines = await s.exchange('');
  oneNullError(lines.filter((l) => l.raw.trim() !== ''), -32600, 'chunked 5 MiB line');
});

await kase('an overlong line and a valid request in one write: both answered, in order', async (s) => {
  const id = s.newId();
  const lines = await s.exchange(`{"pad":"${'q'.repeat(5 * MIB)}"}\n${ping(id)}`);
  assert.equal(lines.length, 2, show(lines.map((l) => l.raw.slice(0, 200))));
  assertError(lines[0].msg, -32600, 'overlong first');
  assert.equal(lines[1].msg.id, id);
  assert.deepEqual(lines[1].msg.result, {});
});

await kase('a 3 MiB valid line: get_quote with a 3 MiB symbol -> isError', async (s) => {
  toolError(await s.call('get_quote', { symbol: 'Q'.repeat(3 * MIB) }), /symbol/, '3 MiB symbol');
});

await kase('a 3 MiB valid line: ping with 3 MiB of junk params -> {}', async (s) => {
  const id = s.newId();
  const junk = Array.from({ length: 3 * MIB / 32 }, (_, i) => `k${i}`.padEnd(24, '#'));
  const m = await s.rawRequest(JSON.stringify({ jsonrpc: '2.0', id, method: 'ping', params: { junk } }), id);
  assert.deepEqual(m.result, {});
});

await kase('a 3 MiB method name -> -32601', async (s) => {
  const id = s.newId();
  assertError(await s.rawRequest(JSON.stringify({ jsonrpc: '2.0', id, method: 'm'.repeat(3 * MIB) }), id),
    -32601, '3 MiB method');
});

await kase('a 3 MiB tool name -> -32602', async (s) => {
  const id = s.newId();
  assertError(await s.rawRequest(JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call',
    params: { name: 't'.repeat(3 * MIB) } }), id), -32602, '3 MiB tool name');
});

await kase('tool arguments with 20000 keys -> isError', async (s) => {
  const args = { symbol: 'NVDA' };
  for (let i = 0; i < 20000; i++) args[`k${i}`] = i;
  toolError(await s.call('get_quote', args), null, '20000 keys');
});

await kase('a 900-deep array as a symbol -> isError (within the nesting limit)', async (s) => {
  const id = s.newId();
  const line = `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"get_quote",` +
    `"arguments":{"symbol":${'['.repeat(900)}${']'.repeat(900)}}}}`;
  toolError(await s.rawRequest(line, id), /symbol/, 'deep symbol');
});

// ---- 4. ids --------------------------------------------------------------------

await kase('id a string with \\u0000 -> -32700 id null', async (s) => {
  oneNullError(await s.exchange('{"jsonrpc":"2.0","id":"a\\u0000b","method":"ping"}'), -32700, 'NUL id');
});

for (const [what, token, expect] of [
  ['empty string', '""', ''],
  ['escapes and astral characters', '"\\u00e9\\ud83d\\ude00 \\"q\\" \\\\ \\/"', 'é😀 "q" \\ /'],
  ['a 5000-character string', JSON.stringify('i'.repeat(5000)), 'i'.repeat(5000)],
  ['-0', '-0', 0],
  ['1E2', '1E2', 100],
  ['a 30-digit integer', '123456789012345678901234567890', 123456789012345678901234567890],
]) {
  await kase(`id ${what}: echoed, answered once`, async (s) => {
    const lines = await s.exchange(`{"jsonrpc":"2.0","id":${token},"method":"ping"}`);
    assert.equal(lines.length, 1, show(lines.map((l) => l.raw)));
    assert.deepEqual(lines[0].msg.result, {});
    if (typeof expect === 'number') assert.ok(lines[0].msg.id === expect || Object.is(lines[0].msg.id, -0),
      `id ${lines[0].raw}`);
    else assert.equal(lines[0].msg.id, expect);
    if (/^\d{20,}$/.test(token)) assert.ok(lines[0].raw.includes(`"id":${token}`), 'big id not byte-exact');
  });
}

await kase('duplicate id members -> exactly one answer', async (s) => {
  const lines = await s.exchange('{"jsonrpc":"2.0","id":"dupA","id":"dupB","method":"ping"}');
  assert.equal(lines.length, 1, show(lines.map((l) => l.raw)));
  assert.ok(lines[0].msg.id === 'dupA' || lines[0].msg.id === 'dupB', lines[0].raw);
});

// ---- 5. methods and tools/call framing -----------------------------------------

for (const [what, method] of [
  ['unknown', 'no/such/method'],
  ['empty', ''],
  ['format specifiers', '%s%n%x%p'],
  ['rpc.discover', 'rpc.discover'],
  ['RTL mark and emoji', '\u202eping😀'],
  ['newline and tab', 'ping\n\t'],
  ['case-changed PING', 'PING'],
]) {
  await kase(`method ${what} -> -32601`, async (s) => {
    assertError(await s.request(method, {}), -32601, what);
  });
}

await kase('method "ping\\u0000x" -> -32700 (never read as ping)', async (s) => {
  const id = s.newId();
  oneNullError(await s.exchange(`{"jsonrpc":"2.0","id":${id},"method":"ping\\u0000x"}`), -32700, 'NUL method');
});

await kase('method of 100 two-byte characters -> -32601 with valid UTF-8', async (s) => {
  assertError(await s.request(`x${'é'.repeat(100)}`, {}), -32601, 'long UTF-8 method');
});

await kase('method with invalid UTF-8 bytes -> -32700 or -32601, stdout stays UTF-8', async (s) => {
  const id = s.newId();
  const line = Buffer.concat([Buffer.from(`{"jsonrpc":"2.0","id":${id},"method":"m`),
    Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);
  const lines = await s.exchange(line);
  assert.equal(lines.length, 1);
  assert.ok(lines[0].msg.error && [-32700, -32600, -32601].includes(lines[0].msg.error.code), lines[0].raw);
});

for (const [what, name] of [
  ['empty', ''],
  ['path traversal', '../../etc/passwd'],
  ['trailing newline', 'get_status\n'],
  ['trailing space', 'get_status '],
  ['upper case', 'GET_STATUS'],
  ['format specifiers', '%s%n%s'],
  ['a Lua global', '_G'],
  ['a Lua call', 'os.execute("true")'],
  ['RTL mark', '\u202eget_status'],
  ['emoji', '😀'],
  ['5000 characters', 'x'.repeat(5000)],
]) {
  await kase(`tools/call unknown tool (${what}) -> -32602`, async (s) => {
    assertError(await s.request('tools/call', { name, arguments: {} }), -32602, what);
  });
}

await kase('tools/call tool "get_status\\u0000x" -> -32700 (never runs get_status)', async (s) => {
  const id = s.newId();
  oneNullError(await s.exchange(`{"jsonrpc":"2.0","id":${id},"method":"tools/call",` +
    '"params":{"name":"get_status\\u0000x"}}'), -32700, 'NUL tool');
});

await kase('tools/call tool name of 100 two-byte characters -> -32602 with valid UTF-8', async (s) => {
  assertError(await s.request('tools/call', { name: `x${'é'.repeat(100)}` }), -32602, 'long UTF-8 tool');
});

for (const [what, params] of [
  ['name a number', { name: 5 }],
  ['name null', { name: null }],
  ['name an object', { name: { n: 'get_status' } }],
  ['no name', { arguments: {} }],
  ['params an array', ['get_status']],
  ['arguments an array', { name: 'get_status', arguments: [] }],
  ['arguments a string', { name: 'get_quote', arguments: '{"symbol":"NVDA"}' }],
  ['arguments a number', { name: 'get_quote', arguments: 1 }],
  ['arguments true', { name: 'get_status', arguments: true }],
]) {
  await kase(`tools/call ${what} -> -32602`, async (s) => {
    assertError(await s.request('tools/call', params), -32602, what);
  });
}

await kase('tools/call without params -> -32602', async (s) => {
  assertError(await s.request('tools/call'), -32602, 'no params');
});

await kase('tools/list with a bogus cursor (number, object) -> -32602', async (s) => {
  assertError(await s.request('tools/list', { cursor: 5 }), -32602, 'cursor 5');
  assertError(await s.request('tools/list', { cursor: {} }), -32602, 'cursor {}');
});

await kase('ping with array params -> {} or -32602', async (s) => {
  const r = await s.request('ping', []);
  if (r.error) assertError(r, -32602, 'ping []');
  else assert.deepEqual(r.result, {});
});

await kase('initialize again mid-session with garbage (protocolVersion 5, no params): answered, still serving', async (s) => {
  for (const params of [{ protocolVersion: 5 }, undefined, { protocolVersion: 'x'.repeat(10000) }]) {
    const r = await s.request('initialize', params);
    if (r.error) assert.ok([-32600, -32602].includes(r.error.code), show(r));
    else assert.equal(r.result.protocolVersion, '2025-11-25', show(r.result));
  }
});

// ---- 6. notifications and responses sent to the server: silence ---------------

for (const [what, msg] of [
  ['notifications/cancelled for an unknown numeric id', { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 999999, reason: 'x' } }],
  ['notifications/cancelled for an unknown string id', { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'nope' } }],
  ['notifications/cancelled with an object requestId', { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: { a: [1] } } }],
  ['notifications/cancelled without params', { jsonrpc: '2.0', method: 'notifications/cancelled' }],
  ['an unknown notification with 1 MiB of params', { jsonrpc: '2.0', method: 'notifications/whatever', params: { x: 'y'.repeat(MIB) } }],
  ['a response object (result) sent to the server', { jsonrpc: '2.0', id: 424242, result: { ok: true } }],
  ['a response object (error) sent to the server', { jsonrpc: '2.0', id: 'e-1', error: { code: -1, message: 'x' } }],
  ['a response with id null', { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'x' } }],
]) {
  await kase(`${what} -> no answer`, async (s) => {
    silent(await s.exchange(JSON.stringify(msg)), what);
  });
}

await kase('blank, whitespace-only and CR-only lines -> no answer', async (s) => {
  silent(await s.exchange('\n   \n\t\n\r\n \r'), 'blank lines');
});

await kase('a CRLF-terminated request is answered', async (s) => {
  const id = s.newId();
  const lines = await s.exchange(`${ping(id)}\r`);
  assert.equal(lines.length, 1);
  assert.equal(lines[0].msg.id, id);
  assert.deepEqual(lines[0].msg.result, {});
});

// ---- 7. framing and pipelining --------------------------------------------------

await kase('1000 pings pipelined in one write: each answered exactly once', async (s) => {
  const ids = Array.from({ length: 1000 }, (_, i) => `pipe-${i}`);
  await s.write(ids.map((id) => JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' })).join('\n') + '\n');
  for (const id of ids) assert.deepEqual((await s.waitId(id)).msg.result, {}, id);
  const lines = await s.exchange('');   // anything extra would show up here
  silent(lines, 'after 1000 pings');
  for (const id of ids)
    assert.equal(s.lines.filter((l) => l.msg && l.msg.id === id).length, 1, `${id} answered more than once`);
});

await kase('200 get_quote calls pipelined in one write: each answered once, well-formed', async (s) => {
  const ids = Array.from({ length: 200 }, (_, i) => `q-${i}`);
  await s.write(ids.map((id) => JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call',
    params: { name: 'get_quote', arguments: { symbol: 'AAPL' } } })).join('\n') + '\n');
  for (const id of ids) {
    const m = (await s.waitId(id)).msg;
    if (m.error) assertError(m, -32000, `${id} (busy)`);
    else assert.equal(toolOk(m, id).symbol, 'AAPL');
  }
});

await kase('a request written one byte at a time is answered', async (s) => {
  const id = `bytes-${s.newId()}`;
  const line = Buffer.from(JSON.stringify({ jsonrpc: '2.0', id: `${id}é😀`, method: 'ping' }) + '\n');
  for (let i = 0; i < line.length; i++) {
    await s.write(line.subarray(i, i + 1));
    if (i % 8 === 0) await new Promise((r) => setImmediate(r));
  }
  assert.deepEqual((await s.waitId(`${id}é😀`)).msg.result, {});
});

await kase('valid, garbage, valid in one write: answered in order', async (s) => {
  const a = s.newId();
  const b = s.newId();
  const lines = await s.exchange(`${ping(a)}\n{garbage\n${ping(b)}`);
  assert.equal(lines.length, 3, show(lines.map((l) => l.raw)));
  assert.equal(lines[0].msg.id, a);
  assertError(lines[1].msg, -32700, 'middle garbage');
  assert.equal(lines[2].msg.id, b);
});

// ---- 8. wrong types for every tool argument -------------------------------------

const VALID = {
  symbol: 'NVDA', action: 'BUY', quantity: 1, order_type: 'MKT', tif: 'DAY',
  confirmation_token: '0123456789abcdef0123456789abcdef', order_id: '999999', reason: 'test',
};
const BAD_FOR = {
  string: [null, true, false, 0, 5, -1, 1e308, RAW('1e400'), [], ['NVDA'], {}, { s: 'NVDA' }],
  integer: [null, true, '1', '10', 'NaN', 'Infinity', '1e3', 0.5, 1.0000001, -1, 0, RAW('-0'),
    1e10, 1e308, RAW('1e400'), RAW('1e-400'), RAW('-1e400'), [], [1], {}],
  number: [null, true, '100', 'NaN', 'Infinity', '-0', 0, -1, RAW('-0'), RAW('1e400'),
    RAW('-1e400'), [], [100], {}],
  'string|integer': [null, true, false, 1.5, -0.5, RAW('1e400'), RAW('-1e400'), [], ['1000'], {}],
};

const toolsList = (await main.request('tools/list', {})).result.tools;
assert.ok(Array.isArray(toolsList) && toolsList.length >= 10, 'tools/list');

for (const t of toolsList) {
  const props = t.inputSchema.properties || {};
  const required = t.inputSchema.required || [];
  for (const [prop, sch] of Object.entries(props)) {
    const type = Array.isArray(sch.type) ? sch.type.join('|') : sch.type;
    const bad = BAD_FOR[type];
    assert.ok(bad, `no bad values for type ${type} (${t.name}.${prop})`);
    await kase(`${t.name}: ${prop} (${type}) of the wrong type or range -> isError naming it`, async (s) => {
      for (const v of bad) {
        const args = {};
        for (const r of required) args[r] = VALID[r];
        if (t.name === 'preview_order' && (prop === 'limit_price' || prop === 'stop_price'))
          args.order_type = prop === 'limit_price' ? 'LMT' : 'STP';
        args[prop] = v;
        const res = await s.call(t.name, args);
        toolError(res, new RegExp(prop), `${t.name}(${rawJson(args).slice(0, 120)})`);
      }
    });
  }
  await kase(`${t.name}: an unknown extra argument -> isError naming it`, async (s) => {
    const args = {};
    for (const r of required) args[r] = VALID[r];
    args.bogus_extra = { nested: [1, 2, 3] };
    toolError(await s.call(t.name, args), /bogus_extra/, `${t.name} + bogus_extra`);
  });
  if (required.length) {
    await kase(`${t.name}: every required argument missing -> isError naming one`, async (s) => {
      toolError(await s.call(t.name, {}), new RegExp(required.join('|')), `${t.name}({})`);
    });
  }
}

await kase('duplicate argument keys with a bad second value -> isError', async (s) => {
  const id = s.newId();
  toolError(await s.rawRequest(`{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":` +
    '"preview_order","arguments":{"symbol":"NVDA","action":"BUY","quantity":5,"quantity":0.5}}}', id),
  /quantity/, 'duplicate quantity');
});

await kase('__proto__ and constructor as argument names -> isError', async (s) => {
  const id = s.newId();
  toolError(await s.rawRequest(`{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":` +
    '"get_quote","arguments":{"__proto__":{"symbol":"x"},"symbol":"NVDA"}}}', id), /__proto__/, '__proto__');
  toolError(await s.call('get_quote', { constructor: 'x', symbol: 'NVDA' }), /constructor/, 'constructor');
});

// ---- 9. malformed orders ----------------------------------------------------------

const ORDER = { symbol: 'NVDA', action: 'BUY', quantity: 5 };
for (const [what, extra, re] of [
  ['quantity 0', { quantity: 0 }, /quantity/],
  ['quantity -1', { quantity: -1 }, /quantity/],
  ['quantity 0.5', { quantity: 0.5 }, /quantity/],
  ['quantity 1e10', { quantity: 1e10 }, /quantity/],
  ['quantity "5"', { quantity: '5' }, /quantity/],
  ['limit_price 0', { order_type: 'LMT', limit_price: 0 }, /limit_price/],
  ['limit_price -1', { order_type: 'LMT', limit_price: -1 }, /limit_price/],
  ['stop_price 0', { order_type: 'STP', stop_price: 0 }, /stop_price/],
  ['order_type "MARKET"', { order_type: 'MARKET' }, /order_type/],
  ['order_type "mkt"', { order_type: 'mkt' }, /order_type/],
  ['order_type ""', { order_type: '' }, /order_type/],
  ['action "buy" (lower case)', { action: 'buy' }, /action/],
  ['action "SHORT"', { action: 'SHORT' }, /action/],
  ['tif "FOK"', { tif: 'FOK' }, /tif/],
  ['tif "day" (lower case)', { tif: 'day' }, /tif/],
]) {
  await kase(`preview_order with ${what} -> isError`, async (s) => {
    toolError(await s.call('preview_order', { ...ORDER, ...extra }), re, what);
  });
}

for (const [what, extra, re] of [
  ['LMT without limit_price', { order_type: 'LMT' }, /limit/i],
  ['STP without stop_price', { order_type: 'STP' }, /stop/i],
  ['STP LMT without limit_price', { order_type: 'STP LMT', stop_price: 170 }, /limit/i],
  ['STP LMT without stop_price', { order_type: 'STP LMT', limit_price: 170 }, /stop/i],
  ['MKT with a limit_price', { order_type: 'MKT', limit_price: 100 }, /limit/i],
  ['MKT with a stop_price', { order_type: 'MKT', stop_price: 100 }, /stop/i],
  ['LMT with limit_price 1e308', { order_type: 'LMT', limit_price: 1e308 }, /limit/i],
  ['an unknown symbol ZZZZ', { symbol: 'ZZZZ' }, /unknown/i],
]) {
  await kase(`preview_order ${what} -> isError or rejected, no token`, async (s) => {
    noToken(await s.call('preview_order', { ...ORDER, ...extra }), re, what);
  });
}

// 0.00001 rounds to a $0.00 limit in the order's figures.
await kase('preview_order LMT with limit_price 0.00001 -> isError or rejected, no token', async (s) => {
  noToken(await s.call('preview_order', { ...ORDER, order_type: 'LMT', limit_price: 0.00001 }),
    /limit|price|tick/i, 'tiny limit price');
});

// ---- 10. odd characters in symbols and other strings -------------------------------

for (const [what, symbol] of [
  ['empty', ''],
  ['an RTL override', '\u202eNVDA'],
  ['an RTL mark', 'NVDA\u200f'],
  ['a zero-width space', 'NV\u200bDA'],
  ['an emoji', '😀'],
  ['full-width letters', 'ＮＶＤＡ'],
  ['a space', 'NV DA'],
  ['a control character', 'NV\u0001DA'],
  ['a newline', 'NVDA\n'],
  ['a tab', '\tNVDA'],
  ['DEL', 'NVDA\u007f'],
  ['Lua code', "NVDA')..os.exit(1)..('"],
  ['format specifiers', '%s%n%x'],
  ['10000 characters', 'A'.repeat(10000)],
]) {
  await kase(`symbol with ${what} -> isError (get_quote and preview_order)`, async (s) => {
    toolError(await s.call('get_quote', { symbol }), /symbol/i, `get_quote(${show(symbol).slice(0, 40)})`);
    toolError(await s.call('preview_order', { ...ORDER, symbol }), /symbol/i,
      `preview_order(${show(symbol).slice(0, 40)})`);
  });
}

// A NUL inside any string is refused before parsing (-32700): cJSON would
// cut the string there and read "NVDA\u0000evil" as NVDA.
const callLine = (id, name, args) =>
  JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

await kase('symbol "NVDA\\u0000evil" -> -32700 (not the NVDA quote)', async (s) => {
  oneNullError(await s.exchange(callLine(s.newId(), 'get_quote', { symbol: 'NVDA\u0000evil' })),
    -32700, 'NUL symbol');
});

await kase('action "BUY\\u0000x" -> -32700 (not a BUY)', async (s) => {
  oneNullError(await s.exchange(callLine(s.newId(), 'preview_order', { ...ORDER, action: 'BUY\u0000x' })),
    -32700, 'NUL action');
});

await kase('symbol of 2 letters and 100 emoji -> isError with valid UTF-8', async (s) => {
  toolError(await s.call('get_quote', { symbol: `xx${'😀'.repeat(100)}` }), /symbol/, 'emoji symbol');
});

await kase('symbol with invalid UTF-8 bytes -> -32700 or isError, stdout stays UTF-8', async (s) => {
  const id = s.newId();
  const line = Buffer.concat([Buffer.from(`{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":` +
    '{"name":"get_quote","arguments":{"symbol":"NV'), Buffer.from([0xff, 0xfe]), Buffer.from('DA"}}}')]);
  const lines = await s.exchange(line);
  const mine = lines.length ? lines[0] : await s.waitLine((l) => l.msg && (l.msg.id === id || l.msg.id === null), 'the answer');
  mine.used = true;
  if (mine.msg.error) assertError(mine.msg, -32700, 'invalid UTF-8');
  else toolError(mine.msg, /symbol/, 'invalid UTF-8 symbol');
  assert.deepEqual(mine.problems, [], 'the answer itself');
});

// ---- 11. place_order and cancel_order with odd values ----------------------------------

const UNKNOWN_TOKEN = /Unknown or already-used confirmation token/;
for (const [what, tok] of [
  ['10000 characters', 'f'.repeat(10000)],
  ['empty', ''],
  ['format specifiers', '%s%n%s%n'],
  ['an emoji', '😀'.repeat(16)],
  ['a newline', '0123456789abcdef\n0123456789abcdef'],
]) {
  await kase(`place_order with a token of ${what} -> isError, nothing placed`, async (s) => {
    const before = toolOk(await s.call('get_trades', {}), 'get_trades').count;
    toolError(await s.call('place_order', { confirmation_token: tok }), null, what);
    assert.equal(toolOk(await s.call('get_trades', {}), 'get_trades').count, before, 'something traded');
  });
}

async function freshToken(s) {
  const p = toolOk(await s.call('preview_order', { symbol: 'MSFT', action: 'BUY', quantity: 1 }), 'preview');
  assert.match(p.confirmation_token || '', /^[0-9a-f]{32}$/, `no token: ${show(p.risk)}`);
  return p.confirmation_token;
}

for (const [what, f] of [
  ['upper-cased', (t) => t.toUpperCase()],
  ['with a leading space', (t) => ` ${t}`],
  ['with a trailing newline', (t) => `${t}\n`],
  ['one character short', (t) => t.slice(0, -1)],
  ['one character long', (t) => `${t}0`],
]) {
  await kase(`place_order with a real token ${what} -> isError, nothing placed`, async (s) => {
    const tok = await freshToken(s);
    toolError(await s.call('place_order', { confirmation_token: f(tok) }), UNKNOWN_TOKEN, what);
  });
}

await kase('place_order with a real token + "\\u0000junk" -> -32700, nothing placed', async (s) => {
  const tok = await freshToken(s);
  const before = toolOk(await s.call('get_trades', {}), 'trades').count;
  oneNullError(await s.exchange(callLine(s.newId(), 'place_order', { confirmation_token: `${tok}\u0000junk` })),
    -32700, 'NUL token');
  assert.equal(toolOk(await s.call('get_trades', {}), 'trades').count, before, 'an order was placed');
});

for (const [what, oid] of [
  ['empty', ''],
  ['"\\u0001"', '\u0001'],
  ['-1', -1],
  ['"-1"', '-1'],
  ['SQL', "1000'; DROP TABLE orders; --"],
  ['10000 characters', '9'.repeat(10000)],
  ['an emoji', '😀'],
  ['2^63-1', RAW('9223372036854775807')],
  ['1e308', 1e308],
  ['path traversal', '../../etc/passwd'],
]) {
  await kase(`cancel_order with order_id ${what} -> isError`, async (s) => {
    toolError(await s.call('cancel_order', { order_id: oid }), null, `cancel_order(${what})`);
  });
}

await kase('cancel_order with an order_id of 1000 two-byte characters -> isError with valid UTF-8', async (s) => {
  toolError(await s.call('cancel_order', { order_id: `x${'é'.repeat(1000)}` }), null, 'long UTF-8 id');
});

// The ordinary paths run amid the noise too, so the exit check (leaks
// included, in a sanitizer build) covers placing, filling and cancelling.
await kase('a normal order flow amid the noise: fill, working LMT, cancel, replays refused', async (s) => {
  const m = toolOk(await s.call('preview_order', { symbol: 'MSFT', action: 'BUY', quantity: 1 }), 'preview MKT');
  assert.equal(m.risk.approved, true, show(m.risk));
  const filled = toolOk(await s.call('place_order', { confirmation_token: m.confirmation_token }), 'place MKT');
  assert.equal(filled.status, 'FILLED', show(filled));
  const p = toolOk(await s.call('preview_order', { symbol: 'AAPL', action: 'BUY', quantity: 2,
    order_type: 'LMT', limit_price: 150 }), 'preview LMT');
  assert.equal(p.risk.approved, true, show(p.risk));
  const o = toolOk(await s.call('place_order', { confirmation_token: p.confirmation_token }), 'place LMT');
  assert.equal(o.status, 'SUBMITTED', show(o));
  assert.ok(toolOk(await s.call('get_open_orders', {}), 'open').orders.some((x) => x.order_id === o.order_id));
  assert.equal(toolOk(await s.call('cancel_order', { order_id: o.order_id }), 'cancel').status, 'CANCELLED');
  toolError(await s.call('cancel_order', { order_id: o.order_id }), /CANCELLED/, 'cancel again');
  toolError(await s.call('place_order', { confirmation_token: p.confirmation_token }), UNKNOWN_TOKEN, 'replay');
  toolError(await s.call('cancel_order', { order_id: filled.order_id }), /FILLED/, 'cancel a filled order');
});

// ---- 12. sessions that change for good: fresh servers ---------------------------------

const haltA = await startServer('halt-ascii');
await kase('halt_trading with a 501-character reason -> isError, not halted', async (s) => {
  toolError(await s.call('halt_trading', { reason: 'r'.repeat(501) }), /reason/, '501 chars');
  assert.equal(toolOk(await s.call('get_status', {}), 'status').halted, false);
}, { server: haltA });
await kase('halt_trading with a 500-character ASCII reason: halted; previews rejected; status well-formed', async (s) => {
  const h = toolOk(await s.call('halt_trading', { reason: `${'r'.repeat(499)}!` }), 'halt');
  assert.equal(h.halted, true);
  noToken(await s.call('preview_order', { ...ORDER }), /halt/i, 'preview after halt');
  assert.equal(toolOk(await s.call('get_status', {}), 'status').halted, true);
}, { server: haltA });
await kase('halt_trading: the accepted 500-character reason is kept whole (get_status.halt_reason)', async (s) => {
  const st = toolOk(await s.call('get_status', {}), 'status');
  assert.equal(st.halt_reason, `${'r'.repeat(499)}!`, `halt_reason has ${String(st.halt_reason).length} characters`);
}, { server: haltA });

const haltU = await startServer('halt-utf8');
await kase('halt_trading with a reason of 300 two-byte characters: halted, get_status still works', async (s) => {
  const h = toolOk(await s.call('halt_trading', { reason: 'é'.repeat(300) }), 'halt');
  assert.equal(h.halted, true);
  assert.equal(toolOk(await s.call('get_status', {}), 'status').halted, true);
}, { server: haltU, pingOnly: true });

// Hostile input before initialize, on a fresh server.
{
  const pre = new Server('pre-initialize', TRADING);
  servers.push(pre);
  await kase('garbage before initialize: answered, then initialize works', async (s) => {
    oneNullError(await s.exchange('{"jsonrpc":"2.0","id":'), -32700, 'truncated');
    oneNullError(await s.exchange('[]'), -32600, 'batch');
    await s.initialize();
  }, { server: pre });
}

// An overlong final line without a newline, then EOF.
{
  const eof = new Server('overlong-at-eof', TRADING);
  servers.push(eof);
  if (!FILTER || 'overlong line at EOF'.includes(FILTER)) {
    const name = 'an overlong last line without newline, then EOF: -32600 id null, exit 0';
    try {
      await eof.write(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"p":"${'z'.repeat(5 * MIB)}"}}`);
      const ex = await eof.closeAndWait();
      assert.ok(ex, 'did not exit after stdin EOF');
      assert.equal(ex.code, 0, `exit ${show(ex)}; stderr ${eof.stderr.slice(-2000)}`);
      assert.ok(!SANITIZER_RE.test(eof.stderr), eof.stderr.slice(-4000));
      await new Promise((r) => setTimeout(r, 50));
      const lines = eof.lines.filter((l) => !l.used);
      oneNullError(lines, -32600, 'overlong last line');
      counts.passed++;
      report(true, name);
    } catch (e) {
      if (eof.exited && eof.exitCode === 0 && !SANITIZER_RE.test(eof.stderr) &&
        eof.lines.length === 0) {
        counts.known++;
        knownBugs.push(name);
        console.log(`ok - ${name} # KNOWN BUG (not counted as passed): the dropped line is never ` +
          'answered (im_rpc_framer_finish resets the overflow state silently)');
      } else {
        counts.failed++;
        report(false, name, e);
      }
    }
  }
  eof.kill();
}

// ---- 13. every server exits cleanly -----------------------------------------------------

for (const s of servers) if (!s.exited) await exitCase(s);

clearTimeout(watchdog);
for (const c of live) { try { c.kill('SIGKILL'); } catch { /* gone */ } }
try { fs.rmSync(TMP_ROOT, { recursive: true, force: true }); } catch { /* best effort */ }
console.log(`# ${((Date.now() - t0) / 1000).toFixed(1)} s; ${counts.known} known server bugs (see "KNOWN BUG" above)` +
  `${counts.fixed ? `; ${counts.fixed} known-bug cases now pass` : ''}`);
console.log(`${counts.passed} passed, ${counts.failed} failed`);
process.exitCode = counts.failed ? 1 : 0;
