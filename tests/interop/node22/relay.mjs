// A small stdio-to-Streamable-HTTP relay (node built-ins only) so that HTTP-only
// MCP clients (the conformance suite) can drive the real ibkr-mcp binary,
// which speaks stdio only. It carries JSON-RPC messages through unchanged:
// each POSTed message is written to a child's stdin as one line (re-serialised
// only to make it one line), and each line the child writes is sent to the
// HTTP client byte for byte.
//
// Transport (Streamable HTTP, 2025-03-26 .. 2025-11-25, plus the stateless
// 2026-07-28 shape), only what an HTTP client needs to talk to a stdio server:
//   POST  a JSON-RPC message (or an array). Only notifications/responses:
//         202 with no body. Requests: the answers, as one SSE stream when the
//         client accepts text/event-stream (notifications and server-to-client
//         requests the child writes meanwhile go on that stream first), else as
//         application/json (such interim messages are then dropped).
//   Sessions: an `initialize` request without Mcp-Session-Id starts a new
//         ibkr-mcp child and gets a fresh Mcp-Session-Id header; later POSTs
//         carrying that header go to that child (unknown id: 404). A POST with
//         no session id that is not `initialize` (the stateless 2026-07-28
//         era) goes to an idle child of a small pool, one request per child at
//         a time, so request ids of concurrent clients never collide.
//   DELETE with Mcp-Session-Id ends that session (its child gets stdin EOF).
//   GET   405: no standalone server-to-client stream (messages the child
//         writes while no request of its session is open are dropped and
//         counted).
// Listens on 127.0.0.1 only, on a free port the OS picks. Every wait is
// bounded; close() ends every child (stdin EOF, then SIGTERM, then SIGKILL).
//
// Usage (library): const r = await startRelay({ bin, args, env, onLog });
//   r.url ('http://127.0.0.1:PORT/mcp'), r.stats(), r.exits() (how each
//   child ended), await r.close(). onLog gets every stderr line of every child
//   and the relay's own notes.
import http from 'node:http';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';

const MAX_BODY = 4 * 1024 * 1024;
const REQUEST_TIMEOUT_MS = 60000;
const STATELESS_POOL_MAX = 8;

export async function startRelay({ bin, args = [], env = process.env, onLog = () => {} }) {
  const children = new Set();     // every live child
  const sessions = new Map();     // session id -> child
  const statelessPool = [];       // children serving session-less requests
  const stats = { posts: 0, sessions: 0, children: 0, dropped: 0, forwarded: 0 };
  const exits = [];               // {label, code, signal} of every child that ended

  function makeChild(label) {
    const proc = spawn(bin, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const c = { proc, label, pending: new Map(), streams: [], exited: false, buf: '' };
    stats.children++;
    children.add(c);
    proc.stdin.on('error', () => {});
    proc.stdout.setEncoding('utf8');   // whole characters across chunk boundaries
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (d) => {
      for (const line of String(d).split('\n')) if (line) onLog(`[${label} stderr] ${line}`);
    });
    proc.stdout.on('data', (d) => {
      c.buf += d;
      let nl;
      while ((nl = c.buf.indexOf('\n')) >= 0) {
        const line = c.buf.slice(0, nl);
        c.buf = c.buf.slice(nl + 1);
        if (line.trim()) fromChild(c, line);
      }
    });
    proc.on('error', (e) => { onLog(`[${label}] spawn error: ${e.message}`); childGone(c); });
    proc.on('exit', (code, sig) => {
      exits.push({ label, code, signal: sig });
      onLog(`[${label}] exited (${sig || code})`);
    });
    // After 'exit' and the end of its stdout, so that no answer is lost.
    proc.on('close', () => childGone(c));
    return c;
  }

  function childGone(c) {
    if (c.exited) return;
    c.exited = true;
    children.delete(c);
    const i = statelessPool.indexOf(c);
    if (i >= 0) statelessPool.splice(i, 1);
    for (const [sid, sc] of sessions) if (sc === c) sessions.delete(sid);
    for (const p of new Set(c.pending.values())) p.fail('the ibkr-mcp process exited');
    c.pending.clear();
  }

  // One line from a child's stdout: a response goes to the POST waiting for
  // its id; anything else to the open SSE stream of that child, if any.
  function fromChild(c, line) {
    let msg;
    try { msg = JSON.parse(line); } catch { msg = null; }
    const isResponse = msg && !Array.isArray(msg) && typeof msg === 'object' &&
      !('method' in msg) && ('result' in msg || 'error' in msg);
    if (isResponse) {
      const key = idKey(msg.id);
      const p = c.pending.get(key);
      if (p) { p.answer(key, line); return; }
      // An error with id null (e.g. -32600 for a batch the server does not
      // take) answers the oldest open POST as a whole.
      const oldest = msg.id === null ? c.pending.values().next().value : undefined;
      if (oldest) { oldest.answerWhole(line); return; }
      onLog(`[${c.label}] response with no waiting request dropped: ${line.slice(0, 200)}`);
      stats.dropped++;
      return;
    }
    const s = c.streams[0];
    if (s) { s.interim(line); stats.forwarded++; return; }
    stats.dropped++;
    onLog(`[${c.label}] message with no open stream dropped: ${line.slice(0, 200)}`);
  }

  function idKey(id) { return JSON.stringify(id === undefined ? null : id); }

  function sendJson(res, status, body, headers = {}) {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
    res.end(text);
  }

  function rpcError(res, status, code, message, headers) {
    sendJson(res, status, { jsonrpc: '2.0', id: null, error: { code, message } }, headers);
  }

  function pickStateless() {
    let c = statelessPool.find((x) => !x.exited && x.pending.size === 0);
    if (!c && statelessPool.length < STATELESS_POOL_MAX) {
      c = makeChild(`stateless-${statelessPool.length + 1}`);
      statelessPool.push(c);
    }
    return c || null;
  }

  async function handlePost(req, res, body) {
    stats.posts++;
    let parsed;
    try { parsed = JSON.parse(body); } catch {
      rpcError(res, 400, -32700, 'Parse error: the body is not JSON');
      return;
    }
    const msgs = Array.isArray(parsed) ? parsed : [parsed];
    const requests = msgs.filter((m) => m && typeof m === 'object' && typeof m.method === 'string' &&
      'id' in m);
    const sid = req.headers['mcp-session-id'];
    const headers = {};
    let c;
    if (sid !== undefined) {
      c = sessions.get(String(sid));
      if (!c) { rpcError(res, 404, -32001, 'Session not found'); return; }
      headers['Mcp-Session-Id'] = String(sid);
    } else if (requests.some((m) => m.method === 'initialize')) {
      const id = randomUUID();
      c = makeChild(`session-${++stats.sessions}`);
      sessions.set(id, c);
      headers['Mcp-Session-Id'] = id;
    } else {
      c = pickStateless();
      if (!c) { rpcError(res, 503, -32000, 'Relay busy: every stateless child is in use'); return; }
    }
    if (c.exited) { rpcError(res, 502, -32603, 'The ibkr-mcp process exited'); return; }
    const line = JSON.stringify(parsed);   // one line; the same message
    if (requests.length === 0) {
      c.proc.stdin.write(line + '\n');
      res.writeHead(202, headers);
      res.end();
      return;
    }

    const accept = String(req.headers.accept || '');
    const sse = accept.includes('text/event-stream');
    const waiting = new Set(requests.map((m) => idKey(m.id)));
    const answers = [];
    let whole = false;   // one answer stands for the whole POST (see answerWhole)
    let done = false;
    let timer = null;
    const p = {
      answer(key, raw) {
        if (!waiting.delete(key)) return;
        c.pending.delete(key);
        if (sse) writeEvent(raw); else answers.push(raw);
        if (waiting.size === 0) finish();
      },
      answerWhole(raw) {
        for (const k of waiting) c.pending.delete(k);
        waiting.clear();
        whole = true;
        answers.length = 0;
        if (sse) writeEvent(raw); else answers.push(raw);
        finish();
      },
      interim(raw) { if (sse) writeEvent(raw); },
      fail(why) {
        if (done) return;
        for (const k of waiting) c.pending.delete(k);
        if (sse) {
          for (const k of waiting) {
            writeEvent(JSON.stringify({ jsonrpc: '2.0', id: JSON.parse(k),
              error: { code: -32603, message: `relay: ${why}` } }));
          }
          waiting.clear();
          finish();
        } else {
          waiting.clear();
          finish(why);
        }
      },
    };
    function writeEvent(raw) {
      if (!res.headersSent) {
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache',
          Connection: 'keep-alive', ...headers });
      }
      res.write(`event: message\ndata: ${raw}\n\n`);
    }
    function finish(failure) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const k of waiting) c.pending.delete(k);
      const i = c.streams.indexOf(p);
      if (i >= 0) c.streams.splice(i, 1);
      if (sse) {
        if (!res.headersSent) writeEvent(JSON.stringify({ jsonrpc: '2.0', id: null,
          error: { code: -32603, message: `relay: ${failure || 'no answer'}` } }));
        res.end();
      } else if (failure) {
        rpcError(res, 502, -32603, `relay: ${failure}`, headers);
      } else {
        const body = Array.isArray(parsed) && !whole ? `[${answers.join(',')}]` : answers[0];
        sendJson(res, 200, body, headers);
      }
    }
    for (const k of waiting) {
      if (c.pending.has(k)) { rpcError(res, 409, -32600, `relay: request id ${k} already in flight`); return; }
    }
    for (const k of waiting) c.pending.set(k, p);
    c.streams.push(p);
    timer = setTimeout(() => p.fail(`no answer within ${REQUEST_TIMEOUT_MS} ms`), REQUEST_TIMEOUT_MS);
    res.on('close', () => { if (!done) { done = true; clearTimeout(timer);
      for (const k of waiting) c.pending.delete(k);
      const i = c.streams.indexOf(p); if (i >= 0) c.streams.splice(i, 1); } });
    c.proc.stdin.write(line + '\n');
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname !== '/mcp') { res.writeHead(404); res.end(); return; }
    if (req.method === 'GET') {
      res.writeHead(405, { Allow: 'POST, DELETE' });
      res.end();
      return;
    }
    if (req.method === 'DELETE') {
      const sid = req.headers['mcp-session-id'];
      const c = sid !== undefined ? sessions.get(String(sid)) : undefined;
      if (!c) { res.writeHead(404); res.end(); return; }
      sessions.delete(String(sid));
      endChild(c);
      res.writeHead(200);
      res.end();
      return;
    }
    if (req.method !== 'POST') {
      res.writeHead(405, { Allow: 'POST, DELETE' });
      res.end();
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (d) => {
      size += d.length;
      if (size > MAX_BODY) { rpcError(res, 413, -32600, 'Body too large'); req.destroy(); return; }
      chunks.push(d);
    });
    req.on('end', () => {
      if (size > MAX_BODY) return;
      handlePost(req, res, Buffer.concat(chunks).toString('utf8')).catch((e) => {
        onLog(`relay: ${e.stack || e}`);
        if (!res.headersSent) rpcError(res, 500, -32603, 'relay internal error');
        else res.end();
      });
    });
  });

  // stdin EOF, then SIGTERM after 2 s, SIGKILL after 4 s; resolves on exit.
  function endChild(c) {
    return new Promise((resolve) => {
      if (c.exited || c.proc.exitCode !== null || c.proc.signalCode !== null) { resolve(); return; }
      const t1 = setTimeout(() => c.proc.kill('SIGTERM'), 2000);
      const t2 = setTimeout(() => c.proc.kill('SIGKILL'), 4000);
      const t3 = setTimeout(resolve, 6000);
      c.proc.once('exit', () => { clearTimeout(t1); clearTimeout(t2); clearTimeout(t3); resolve(); });
      c.proc.stdin.end();
    });
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    stats: () => ({ ...stats, live: children.size }),
    exits: () => exits.slice(),
    async close() {
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(() => resolve()));
      await Promise.all([...children].map(endChild));
    },
  };
}
