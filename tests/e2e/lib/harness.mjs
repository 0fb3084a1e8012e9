// A small harness for end-to-end tests that run the real binary: an MCP
// server over stdio (newline-delimited JSON-RPC) and the fake gateway
// (`ibkr-mcp gateway --port 0`). Node built-ins only.
//
// Every process started here is killed by cleanup(), every wait is bounded,
// only 127.0.0.1 is contacted. Each server gets a scrubbed environment (PATH,
// HOME and what the test sets) and its own temporary state directory.
// Every stdout line of a server must be a JSON-RPC 2.0 message: anything
// else is recorded in `violations`, which tests assert empty.
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { SANITIZER_RE } from './sanitizer.mjs';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const TOOLS_DIR = path.join(REPO, 'lua', 'tools');
export const TMP_ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'ibkr-mcp-e2e-'));
export { SANITIZER_RE };

const live = new Set();
let seq = 0;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn() until it returns a truthy value; throws after timeoutMs.
export async function until(fn, what, timeoutMs = 15000, everyMs = 100) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export function tmpDir(name) {
  return fs.mkdtempSync(path.join(TMP_ROOT, `${name}-`));
}

class Proc {
  constructor(bin, args, env) {
    this.child = spawn(bin, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(this.child);
    this.stderr = '';
    this.exited = false;
    this.exit = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        this.exited = true;
        this.code = code;
        this.signal = signal;
        live.delete(this.child);
        resolve({ code, signal });
      });
    });
    this.child.on('error', (e) => { this.spawnError = e; });
    this.child.stdin.on('error', () => {});
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (d) => {
      if (this.stderr.length < 1 << 20) this.stderr += d;
    });
  }

  kill(signal = 'SIGKILL') {
    if (!this.exited) this.child.kill(signal);
    return this.exit;
  }

  // Ends the process politely, then firmly; asserts no sanitizer report.
  async stop(how = 'SIGTERM', timeoutMs = 10000) {
    if (!this.exited) {
      if (how === 'stdin') this.child.stdin.end();
      else this.child.kill(how);
      const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      await this.exit;
      clearTimeout(t);
    }
    assert.doesNotMatch(this.stderr, SANITIZER_RE, `sanitizer report:\n${this.stderr.slice(-3000)}`);
    return { code: this.code, signal: this.signal };
  }
}

// `ibkr-mcp gateway --port P ...`: resolves once it printed its listening line.
export async function startGateway(bin, args = [], port = 0) {
  const env = { PATH: process.env.PATH || '/usr/bin:/bin', HOME: tmpDir('gwhome') };
  for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS'])
    if (process.env[k]) env[k] = process.env[k];
  const p = new Proc(bin, ['gateway', '--port', String(port), ...args], env);
  let out = '';
  p.child.stdout.setEncoding('utf8');
  const line = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`gateway did not start: ${p.stderr.slice(-800)}`)),
      10000);
    p.child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on 127\.0\.0\.1:(\d+) account (\S+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(m);
      }
    });
    p.child.on('exit', () => {
      clearTimeout(t);
      reject(new Error(`gateway exited at start: ${p.stderr.slice(-800)}`));
    });
  });
  p.port = Number(line[1]);
  p.account = line[2];
  return p;
}

// An MCP server over stdio, initialized (legacy era), with helpers to call
// tools. `env` adds IBKR_* variables to the scrubbed environment.
// opts.stateDir reuses a state directory (a restart).
export async function startServer(bin, env = {}, opts = {}) {
  const stateDir = opts.stateDir || tmpDir(`state${++seq}`);
  const full = {
    PATH: process.env.PATH || '/usr/bin:/bin',
    HOME: stateDir,
    XDG_STATE_HOME: stateDir,
    IBKR_STATE_DIR: stateDir,
    IBKR_TOOLS_DIR: TOOLS_DIR,
    ...env,
  };
  for (const k of ['ASAN_OPTIONS', 'UBSAN_OPTIONS', 'LSAN_OPTIONS'])
    if (process.env[k] && !(k in full)) full[k] = process.env[k];
  for (const k of Object.keys(full)) if (full[k] === undefined) delete full[k];
  const s = new Proc(bin, [], full);
  s.stateDir = stateDir;
  s.violations = [];
  s.pending = new Map();
  s.notifications = [];
  s.requests = [];
  s.onRequest = opts.onRequest || null;
  s.nextId = 1;
  let buf = '';
  s.child.stdout.setEncoding('utf8');
  s.child.stdout.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const raw = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let msg;
      try {
        msg = JSON.parse(raw);
      } catch {
        s.violations.push(`not JSON: ${raw.slice(0, 200)}`);
        continue;
      }
      if (!msg || msg.jsonrpc !== '2.0') {
        s.violations.push(`not JSON-RPC 2.0: ${raw.slice(0, 200)}`);
        continue;
      }
      if ('id' in msg && !('method' in msg) && s.pending.has(msg.id)) {
        const w = s.pending.get(msg.id);
        s.pending.delete(msg.id);
        w(msg);
      } else if ('method' in msg && 'id' in msg) {
        // A request from the server (elicitation/create): answered by
        // s.onRequest(msg) -> {result} | {error} | null (no answer).
        s.requests.push(msg);
        const answer = s.onRequest ? s.onRequest(msg) : { error: { code: -32601, message: 'no' } };
        if (answer) {
          s.child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id: msg.id, ...answer }) + '\n');
        }
      } else if ('method' in msg) {
        s.notifications.push(msg);
      }
    }
  });
  // A server that exits answers nothing more: fail what waits at once.
  s.exit.then(() => {
    for (const w of s.pending.values()) w({ exited: true });
    s.pending.clear();
  });
  s.request = (method, params, timeoutMs = 20000) => {
    const id = s.nextId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        s.pending.delete(id);
        reject(new Error(`no response to ${method} within ${timeoutMs} ms; stderr: ` +
          s.stderr.slice(-1500)));
      }, timeoutMs);
      s.pending.set(id, (msg) => {
        clearTimeout(t);
        resolve(msg);
      });
      s.child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
    });
  };
  // A tool call: returns { isError, data, text } (data = structuredContent).
  s.call = async (name, args = {}, timeoutMs) => {
    const r = await s.request('tools/call', { name, arguments: args }, timeoutMs);
    assert.ok(r.result, `tools/call ${name} failed: ${JSON.stringify(r.error)}`);
    const text = (r.result.content || []).map((c) => c.text || '').join('\n');
    return { isError: !!r.result.isError, data: r.result.structuredContent, text };
  };
  // A tool call that must succeed.
  s.ok = async (name, args = {}, timeoutMs) => {
    const r = await s.call(name, args, timeoutMs);
    assert.ok(!r.isError, `${name}(${JSON.stringify(args)}) failed: ${r.text}`);
    return r.data;
  };
  const init = await s.request('initialize', {
    protocolVersion: '2025-11-25',
    capabilities: opts.capabilities || {},
    clientInfo: { name: 'e2e-harness', version: '1' },
  });
  assert.ok(init.result, `initialize failed: ${JSON.stringify(init)}`);
  s.child.stdin.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) + '\n');
  return s;
}

export async function cleanup() {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
  fs.rmSync(TMP_ROOT, { recursive: true, force: true });
}

// Runs named async tests in order; prints a line each; exits non-zero on a
// failure. Each test is bounded by timeoutMs.
export async function runTests(tests, timeoutMs = 90000) {
  let failed = 0;
  for (const [name, fn] of tests) {
    const t0 = Date.now();
    try {
      await Promise.race([
        fn(),
        sleep(timeoutMs).then(() => { throw new Error(`test timed out after ${timeoutMs} ms`); }),
      ]);
      console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    }
  }
  await cleanup();
  console.log(failed ? `${failed} of ${tests.length} failed` : `all ${tests.length} passed`);
  process.exit(failed ? 1 : 0);
}
