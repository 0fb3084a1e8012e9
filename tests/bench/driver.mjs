// The benchmark driver (Node built-ins only). It spawns one server command,
// speaks newline-delimited JSON-RPC 2.0 to it over pipes and prints one JSON
// object with the figures on stdout. It never asserts a timing: run.sh turns
// the figures into ratios against baselines measured in the same run.
//
//   node driver.mjs startup RUNS -- CMD ARGS...
//       spawn -> initialize response, RUNS times (one after the other)
//   node driver.mjs quote WIN_N SEQ_N BURST_N -- CMD ARGS...
//       one server, get_quote NVDA throughout: RSS after initialize; WIN_N
//       calls pipelined with at most WINDOW (128) in flight; RSS; 1,000
//       warm-up calls then SEQ_N calls one in flight at a time; RSS; BURST_N
//       calls written at once (every request before the first answer); RSS
//       and peak RSS. Errors are counted per phase.
//   node driver.mjs order PAIRS -- CMD ARGS...
//       PAIRS preview_order + place_order round trips, BUY and SELL of one
//       share alternating, one call in flight at a time
//
// Every response is checked: a JSON-RPC error or isError:true is counted and
// reported (the run goes on, so a figure never hides a failure).
import { spawn } from 'node:child_process';
import fs from 'node:fs';

const [mode, ...rest] = process.argv.slice(2);
const dd = rest.indexOf('--');
if (!mode || dd < 0 || dd === rest.length - 1) {
  console.error('usage: node driver.mjs startup|quote|order ARGS... -- CMD ARGS...');
  process.exit(2);
}
const args = rest.slice(0, dd).map(Number);
const [cmd, ...cmdArgs] = rest.slice(dd + 1);

const INIT = JSON.stringify({
  jsonrpc: '2.0', id: 0, method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1' } },
}) + '\n';
const INITIALIZED = '{"jsonrpc":"2.0","method":"notifications/initialized"}\n';
const quoteReq = (id) =>
  `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"get_quote","arguments":{"symbol":"NVDA"}}}\n`;
const ERR_RPC = Buffer.from('"error":{');
const ERR_TOOL = Buffer.from('"isError":true');
const NL = 10;
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

// A server process with a line reader: onLine(buf) for each response line.
function start() {
  const child = spawn(cmd, cmdArgs, { stdio: ['pipe', 'pipe', 'inherit'] });
  const s = { child, pending: null, onLine: null, onChunk: null, exited: null };
  s.exited = new Promise((res) => child.on('exit', (code, sig) => res({ code, sig })));
  child.stdin.on('error', () => {}); // EPIPE if it dies; the exit is reported
  child.stdout.on('data', (chunk) => {
    let from = 0;
    if (s.pending) {
      chunk = Buffer.concat([s.pending, chunk]);
      s.pending = null;
    }
    for (;;) {
      const nl = chunk.indexOf(NL, from);
      if (nl < 0) break;
      s.onLine(chunk.subarray(from, nl));
      from = nl + 1;
    }
    if (from < chunk.length) s.pending = Buffer.from(chunk.subarray(from));
    if (s.onChunk) s.onChunk();
  });
  return s;
}

function rss(pid) {
  const st = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k) => Number((st.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm')) || [])[1]);
  return { rss_kib: kib('VmRSS'), hwm_kib: kib('VmHWM') };
}

let bad = { rpc: 0, tool: 0, first: null };
const fresh = () => { const b = bad; bad = { rpc: 0, tool: 0, first: null }; return b; };
function check(line) {
  const e = line.indexOf(ERR_RPC) >= 0, t = line.indexOf(ERR_TOOL) >= 0;
  if (e) bad.rpc++;
  if (t) bad.tool++;
  if ((e || t) && bad.first === null) bad.first = line.toString('utf8').slice(0, 400);
}

// Sends text and resolves with the next response line.
function call(s, text) {
  return new Promise((res) => {
    s.onLine = (line) => res(line);
    s.child.stdin.write(text);
  });
}

async function initialize(s) {
  const line = await call(s, INIT);
  const r = JSON.parse(line);
  if (!r.result) throw new Error(`initialize failed: ${line}`);
  s.child.stdin.write(INITIALIZED);
}

async function stop(s) {
  s.child.stdin.end();
  const ex = await s.exited;
  if (ex.code !== 0) console.error(`bench: ${cmd} exited with ${ex.code ?? ex.sig}`);
}

async function startup(runs) {
  const ms = [];
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    const s = start();
    const line = await call(s, INIT);
    ms.push(now() - t0);
    if (!JSON.parse(line).result) throw new Error(`initialize failed: ${line}`);
    await stop(s);
  }
  return { runs, ms };
}

// n calls, one in flight; returns elapsed ms.
async function sequential(s, n, idBase) {
  if (n <= 0) return 0;
  let i = 0;
  const t0 = now();
  await new Promise((res) => {
    s.onLine = (line) => {
      check(line);
      if (++i === n) return res();
      s.child.stdin.write(quoteReq(idBase + i));
    };
    s.child.stdin.write(quoteReq(idBase));
  });
  return now() - t0;
}

// n calls written at once; returns elapsed ms (first write to last response).
async function pipelined(s, n, idBase) {
  const parts = new Array(n);
  for (let i = 0; i < n; i++) parts[i] = quoteReq(idBase + i);
  const all = Buffer.from(parts.join(''));
  let got = 0, last = null;
  const t0 = now();
  await new Promise((res) => {
    s.onLine = (line) => {
      check(line);
      if (++got === n) { last = Buffer.from(line); res(); }
    };
    s.child.stdin.write(all);
  });
  const ms = now() - t0;
  const r = JSON.parse(last);
  if (!r.result || !r.result.structuredContent || r.result.structuredContent.symbol !== 'NVDA')
    throw new Error(`unexpected get_quote result: ${last}`);
  return ms;
}

// n calls with at most win in flight, topped up after each chunk of
// responses; returns elapsed ms.
async function windowed(s, n, win, idBase) {
  if (n <= 0) return 0;
  let sent = 0, got = 0;
  const t0 = now();
  const topUp = () => {
    let text = '';
    while (sent < n && sent - got < win) text += quoteReq(idBase + sent++);
    if (text) s.child.stdin.write(text);
  };
  await new Promise((res) => {
    s.onLine = (line) => { check(line); got++; };
    s.onChunk = () => { if (got === n) res(); else topUp(); };
    topUp();
  });
  s.onChunk = null;
  return now() - t0;
}

const WINDOW = 128;

async function quote(winN, seqN, burstN) {
  const s = start();
  await initialize(s);
  const out = { window: WINDOW, win_n: winN, seq_n: seqN, burst_n: burstN };
  out.rss_start_kib = rss(s.child.pid).rss_kib;
  fresh();
  const winMs = await windowed(s, winN, WINDOW, 1);
  out.win_cps = winN / (winMs / 1e3);
  out.rss_after_win_kib = rss(s.child.pid).rss_kib;
  out.win_errors = fresh();
  await sequential(s, 1000, 1e7);
  const seqMs = await sequential(s, seqN, 2e7);
  out.seq_cps = seqN / (seqMs / 1e3);
  out.seq_us_per_call = (seqMs * 1e3) / seqN;
  out.rss_after_seq_kib = rss(s.child.pid).rss_kib;
  out.seq_errors = fresh();
  if (burstN > 0) {
    const burstMs = await pipelined(s, burstN, 3e7);
    out.burst_cps = burstN / (burstMs / 1e3);
    const m = rss(s.child.pid);
    out.rss_after_burst_kib = m.rss_kib;
    out.hwm_kib = m.hwm_kib;
    out.burst_errors = fresh();
  }
  await stop(s);
  return out;
}

async function order(pairs) {
  const s = start();
  await initialize(s);
  let id = 1;
  const marks = [];
  let done = 0, refused = null;
  const t0 = now();
  for (let k = 0; k < pairs; k++) {
    const action = k % 2 === 0 ? 'BUY' : 'SELL';
    const prev = JSON.parse(await call(s, JSON.stringify({
      jsonrpc: '2.0', id: id++, method: 'tools/call',
      params: { name: 'preview_order', arguments: { symbol: 'NVDA', action, quantity: 1 } },
    }) + '\n'));
    const sc = prev.result && prev.result.structuredContent;
    if (!sc || !sc.confirmation_token) {
      refused = { pair: k, stage: 'preview', action,
        why: sc && sc.risk ? sc.risk.reasons.join('; ') : JSON.stringify(prev).slice(0, 300) };
      break;
    }
    const placed = JSON.parse(await call(s, JSON.stringify({
      jsonrpc: '2.0', id: id++, method: 'tools/call',
      params: { name: 'place_order', arguments: { confirmation_token: sc.confirmation_token } },
    }) + '\n'));
    const pc = placed.result && placed.result.structuredContent;
    if (!pc || placed.result.isError || String(pc.status).toUpperCase() !== 'FILLED') {
      refused = { pair: k, stage: 'place', action, why: JSON.stringify(placed).slice(0, 300) };
      break;
    }
    done++;
    if (done % Math.max(1, Math.floor(pairs / 4)) === 0) marks.push(now() - t0);
  }
  const ms = now() - t0;
  await stop(s);
  // Pairs per second in each quarter of the run: shows a cost that grows
  // with the day's fills.
  const q = Math.max(1, Math.floor(pairs / 4));
  const quarters = marks.map((m, i) => q / ((m - (i ? marks[i - 1] : 0)) / 1e3));
  return { pairs, done, ms, pairs_per_s: done / (ms / 1e3), us_per_pair: (ms * 1e3) / Math.max(1, done),
    quarters_pairs_per_s: quarters, refused };
}

let out;
if (mode === 'startup') out = await startup(args[0] || 30);
else if (mode === 'quote') out = await quote(args[0] || 0, args[1] || 0, args[2] || 0);
else if (mode === 'order') out = await order(args[0] || 1000);
else { console.error(`unknown mode ${mode}`); process.exit(2); }
out.errors = { rpc: bad.rpc, tool: bad.tool, first: bad.first };
console.log(JSON.stringify(out));
