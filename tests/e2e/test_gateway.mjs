// `ibkr-mcp gateway` over raw TCP: a minimal TWS API client written here with
// node built-ins only (net), so every byte and every field count is checked
// without a library in between. Covers the handshake byte by byte, version
// negotiation, startApi and its replies, every served request, the client-id
// rules (326, orders that outlive a connection), hostile input (garbage,
// absurd lengths, half frames, a burst of 200 connections), and the test-only
// switches --account, --drop-after-place, --ack-delay-ms and --delayed-only.
// Each gateway must exit 0 on SIGTERM with no sanitizer report on stderr (in a
// -DIM_SANITIZE=ON build a leak found at exit makes the status non-zero).
//
// Usage: node tests/e2e/test_gateway.mjs <path-to-ibkr-mcp> [name-filter]
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { SANITIZER_RE } from './lib/sanitizer.mjs';

const BIN = process.argv[2];
const FILTER = process.argv[3] || '';
if (!BIN) {
  console.error('usage: node test_gateway.mjs <path-to-ibkr-mcp> [name-filter]');
  process.exit(2);
}
if (!fs.existsSync(BIN)) {
  console.error(`ibkr-mcp binary not found: ${BIN}`);
  process.exit(2);
}

const WAIT_MS = 10000;        // one reply (generous for ASan on 2 cores)
const CASE_MS = 40000;        // one case
const RUN_MS = 270000;        // the whole run (ctest allows 300 s)
const STOQEY_HELLO = Buffer.from('4150490000000009763130302e2e313933', 'hex'); // API\0 + "v100..193"
const runTimer = setTimeout(() => {
  console.log('not ok - the whole run timed out');
  cleanup();
  process.exit(1);
}, RUN_MS);

// ---- the gateway under test ---------------------------------------------------

const live = new Set();

class Gateway {
  constructor(args = []) {
    this.args = args;
    this.stderr = '';
    this.proc = spawn(BIN, ['gateway', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this);
    this.proc.stderr.on('data', (d) => { this.stderr += d; });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, sig) => {
      live.delete(this);
      resolve({ code, sig });
    }));
    this.ready = new Promise((resolve, reject) => {
      let out = '';
      this.proc.stdout.on('data', (d) => {
        out += d;
        const m = /^ibkr-mcp gateway listening on 127\.0\.0\.1:(\d+) account (\S+)\n$/.exec(out);
        if (m) {
          this.port = Number(m[1]);
          this.account = m[2];
          resolve(this);
        } else if (out.includes('\n')) {
          reject(new Error(`unexpected stdout: ${JSON.stringify(out)}`));
        }
      });
      this.proc.on('exit', () => reject(new Error(`gateway exited early:\n${this.stderr}`)));
    });
  }

  async stop() {
    this.proc.kill('SIGTERM');
    const r = await within(this.exited, WAIT_MS * 2, 'gateway exit after SIGTERM');
    assert.equal(r.sig, null, `killed by ${r.sig}\n${this.stderr}`);
    assert.equal(r.code, 0, `exit status ${r.code}\n${this.stderr}`);
    assert.doesNotMatch(this.stderr, SANITIZER_RE);
  }
}

function cleanup() {
  for (const g of live) g.proc.kill('SIGKILL');
  for (const c of clients) c.sock.destroy();
}

function within(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(t));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- a raw TWS client -------------------------------------------------------------

const clients = new Set();

function frame(fields) {
  const payload = Buffer.from(fields.map((f) => `${f}\0`).join(''), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(payload.length);
  return Buffer.concat([len, payload]);
}

function prefix(range) {
  const v = Buffer.from(range, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(v.length);
  return Buffer.concat([Buffer.from('API\0', 'latin1'), len, v]);
}

class Tws {
  constructor(port) {
    this.buf = Buffer.alloc(0);
    this.msgs = [];          // frames received and not yet taken, as field arrays
    this.bytes = 0;
    this.waiters = [];
    this.sock = net.connect(port, '127.0.0.1');
    clients.add(this);
    this.connected = new Promise((resolve, reject) => {
      this.sock.once('connect', resolve);
      this.sock.once('error', reject);
    });
    this.sock.on('error', () => {});
    this.isClosed = false;
    this.closed = new Promise((resolve) => this.sock.on('close', () => {
      this.isClosed = true;
      clients.delete(this);
      resolve();
    }));
    this.sock.on('data', (d) => {
      this.bytes += d.length;
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 4) {
        const n = this.buf.readUInt32BE(0);
        if (this.buf.length < 4 + n) break;
        const f = this.buf.subarray(4, 4 + n).toString('utf8').split('\0');
        assert.equal(f.pop(), '', 'every field ends in NUL');
        this.msgs.push(f);
        this.buf = this.buf.subarray(4 + n);
      }
      this.wake();
    });
  }

  raw(b) { this.sock.write(b); }
  send(...fields) { this.sock.write(frame(fields)); }

  wake() {
    for (const w of [...this.waiters]) {
      const i = this.msgs.findIndex(w.pred);
      if (i >= 0) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(this.msgs.splice(i, 1)[0]);
      }
    }
  }

  // The first received frame (oldest first) that satisfies pred; it is taken.
  take(pred, what = 'a message') {
    const i = this.msgs.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.msgs.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timed out waiting for ${what}; pending: ${JSON.stringify(this.msgs.slice(0, 8))}`));
      }, WAIT_MS);
      this.waiters.push(w);
    });
  }

  id(msgId, what) { return this.take((f) => f[0] === String(msgId), what || `message ${msgId}`); }

  error(id, code) {
    return this.take((f) => f[0] === '4' && f[2] === String(id) && f[3] === String(code),
      `errMsg ${code} for id ${id}`);
  }

  // Every frame, oldest first, up to the first one with id endId.
  async until(endId) {
    const got = [];
    for (;;) {
      const f = await this.take(() => true, `message ${endId}`);
      if (f[0] === String(endId)) return { got, end: f };
      got.push(f);
    }
  }

  close() { this.sock.destroy(); return this.closed; }
}

// A client through the handshake and startApi, with the startup replies taken.
async function ready(g, clientId) {
  const c = new Tws(g.port);
  await within(c.connected, WAIT_MS, 'connect');
  c.raw(STOQEY_HELLO);
  const v = await c.take(() => true, 'the version frame');
  assert.equal(v[0], '178');
  c.send('71', '2', String(clientId), '');
  const accts = await c.id(15, 'managedAccounts');
  const nvid = await c.id(9, 'nextValidId');
  for (const code of [2104, 2106, 2158]) await c.error(-1, code);
  c.account = accts[2];
  c.nextId = Number(nvid[2]);
  return c;
}

// placeOrder at 178 for a plain order: 114 fields, as @stoqey/ib sends them.
function placeOrder(id, { symbol = 'AAPL', conId = '', action = 'BUY', qty = '10', type = 'MKT',
  lmt = '', aux = '', tif = 'DAY', ref = '' } = {}) {
  const f = new Array(114).fill('');
  f[0] = '3'; f[1] = String(id); f[2] = conId; f[3] = symbol; f[4] = 'STK'; f[9] = 'SMART';
  f[11] = 'USD'; f[16] = action; f[17] = qty; f[18] = type; f[19] = lmt; f[20] = aux;
  f[21] = tif; f[26] = ref; f[27] = '1'; f[81] = '0'; f[89] = '0';
  return f;
}

const SNAPSHOT = (id, symbol = 'AAPL') =>
  ['1', '11', String(id), '', symbol, 'STK', '', '', '', '', 'SMART', '', 'USD', '', '', '0', '', '1', '0', ''];
const CONTRACT = (id, symbol) =>
  ['9', '8', String(id), '', symbol, 'STK', '', '', '', '', 'SMART', '', 'USD', '', '', '', '', '', ''];

// ---- the cases ------------------------------------------------------------------

let passed = 0;
let failed = 0;
const cases = [];
const test = (name, fn) => cases.push({ name, fn });

let G;          // the plain gateway most cases share
let A;          // its main client (client id 1)
let mktId;      // the filled MKT order
let execId;

test('listening line, 127.0.0.1 only', async () => {
  G = await within(new Gateway(['--seed', '11']).ready, WAIT_MS, 'listening line');
  assert.match(G.account, /^DU/);
  // Nothing on the IPv6 loopback: the listener is bound to 127.0.0.1 alone.
  await new Promise((resolve, reject) => {
    const s = net.connect(G.port, '::1');
    s.on('connect', () => { s.destroy(); reject(new Error('connected over ::1')); });
    s.on('error', () => resolve());
  });
});

test('handshake: the version reply and connection time, byte-exact request', async () => {
  const c = new Tws(G.port);
  await c.connected;
  c.raw(STOQEY_HELLO);
  const v = await c.take(() => true, 'version frame');
  assert.equal(v.length, 2);
  assert.equal(v[0], '178');
  assert.match(v[1], /^\d{8} \d\d:\d\d:\d\d E[DS]T$/);
  assert.equal(v[1].slice(0, 8), '20250610');
  await c.close();
});

test('version range without 178 closes with nothing sent (v100..150, v179..200)', async () => {
  for (const range of ['v100..150', 'v179..200']) {
    const c = new Tws(G.port);
    await c.connected;
    c.raw(prefix(range));
    await within(c.closed, WAIT_MS, `close after ${range}`);
    assert.equal(c.bytes, 0, `bytes received for ${range}`);
  }
});

test('startApi: managedAccounts, nextValidId 1, farm status 2104/2106/2158 (exact fields)', async () => {
  const c = new Tws(G.port);
  await c.connected;
  c.raw(STOQEY_HELLO);
  await c.take(() => true);
  c.send('71', '2', '1', '');
  assert.deepEqual(await c.id(15), ['15', '1', G.account]);
  assert.deepEqual(await c.id(9), ['9', '1', '1']);
  assert.deepEqual(await c.error(-1, 2104), ['4', '2', '-1', '2104', 'Market data farm connection is OK:usfarm', '']);
  assert.deepEqual(await c.error(-1, 2106), ['4', '2', '-1', '2106', 'HMDS data farm connection is OK:ushmds', '']);
  assert.deepEqual(await c.error(-1, 2158), ['4', '2', '-1', '2158', 'Sec-def data farm connection is OK:secdefil', '']);
  A = c;
  A.nextId = 1;
});

test('currentTime, reqIds, reqManagedAccts', async () => {
  A.send('49', '1');
  const t = await A.id(49);
  assert.equal(t.length, 3);
  assert.ok(Number(t[2]) >= 1749564000 && Number(t[2]) < 1749564000 + 3600, t[2]);
  A.send('8', '1');
  assert.deepEqual(await A.id(9), ['9', '1', '1']);
  A.send('17', '1');
  assert.deepEqual(await A.id(15), ['15', '1', G.account]);
});

test('contract details: AAPL (42 fields, conId 265598), unknown symbol 200', async () => {
  A.send(...CONTRACT(2001, 'AAPL'));
  const d = await A.id(10);
  assert.equal(d.length, 42);
  assert.equal(d[1], '2001');
  assert.equal(d[2], 'AAPL');
  assert.equal(d[3], 'STK');
  assert.equal(d[7], 'SMART');
  assert.equal(d[8], 'USD');
  assert.equal(d[12], '265598');
  assert.equal(d[13], '0.01');
  assert.equal(d[20], 'NASDAQ');
  assert.deepEqual(await A.id(52), ['52', '1', '2001']);
  A.send(...CONTRACT(2002, 'MSFT'));
  const m = await A.id(10);
  assert.ok(Number(m[12]) > 0 && m[12] !== '265598');
  await A.id(52);
  A.send(...CONTRACT(2003, 'ZZZZQ'));
  assert.deepEqual(await A.error(2003, 200),
    ['4', '2', '2003', '200', 'No security definition has been found for the request', '']);
});

test('snapshot quote: marketDataType 1, BID/ASK/LAST/CLOSE (7 fields), timestamp, end', async () => {
  A.send('59', '1', '1');
  A.send(...SNAPSHOT(1002));
  const { got } = await A.until(57);
  const mine = got.filter((f) => f[2] === '1002');
  const mdt = mine.find((f) => f[0] === '58');
  assert.deepEqual(mdt, ['58', '1', '1002', '1']);
  const prices = Object.fromEntries(mine.filter((f) => f[0] === '1').map((f) => {
    assert.equal(f.length, 7, `tickPrice ${f}`);
    return [f[3], f];
  }));
  for (const t of ['1', '2', '4', '9']) assert.ok(prices[t], `tick type ${t}`);
  assert.ok(Number(prices['2'][4]) > Number(prices['1'][4]), 'ask above bid');
  assert.ok(Number(prices['1'][5]) > 0, 'bid size');
  const sizes = mine.filter((f) => f[0] === '2');
  assert.ok(sizes.every((f) => f.length === 5));
  assert.ok(['0', '3', '5'].every((t) => sizes.some((f) => f[3] === t)), 'tickSize for the sizes');
  const ts = mine.find((f) => f[0] === '46' && f[3] === '45');
  assert.ok(ts && Number(ts[4]) >= 1749564000, 'LAST_TIMESTAMP');
});

test('streaming quote updates every second, cancelMktData stops them', async () => {
  A.send('1', '11', '1003', '', 'TSLA', 'STK', '', '', '', '', 'SMART', '', 'USD', '', '', '0', '', '0', '0', '');
  await A.take((f) => f[0] === '1' && f[2] === '1003' && f[3] === '9', 'the first CLOSE tick');
  // TSLA's walk moves every second; within 5 s some tick must change.
  await A.take((f) => (f[0] === '1' || f[0] === '2') && f[2] === '1003', 'an update');
  A.send('2', '1', '1003');
  A.send('49', '1');
  await A.id(49); // every tick sent before the cancel has arrived by now
  A.msgs = A.msgs.filter((f) => f[2] !== '1003');
  await sleep(2500);
  assert.equal(A.msgs.filter((f) => f[2] === '1003').length, 0, 'no ticks after cancelMktData');
});

test('MKT order fills: openOrder (127), orderStatus Filled (12), execDetails (32), commissionReport', async () => {
  mktId = A.nextId++;
  A.send(...placeOrder(mktId, { qty: '10', ref: 'e2e-mkt-1' }));
  const oo = await A.take((f) => f[0] === '5' && f[1] === String(mktId), 'openOrder');
  assert.equal(oo.length, 127);
  assert.equal(oo[2], '265598');
  assert.equal(oo[3], 'AAPL');
  assert.equal(oo[13], 'BUY');
  assert.equal(oo[14], '10');
  assert.equal(oo[15], 'MKT');
  assert.equal(oo[20], G.account);
  assert.equal(oo[23], 'e2e-mkt-1');
  assert.equal(oo[24], '1');
  assert.ok(['Submitted', 'PreSubmitted'].includes(oo[85]), oo[85]);
  const x = await A.take((f) => f[0] === '11' && f[2] === String(mktId), 'execDetails');
  assert.equal(x.length, 32);
  assert.equal(x[1], '-1');
  assert.equal(x[4], 'AAPL');
  assert.match(x[15], /^20250610 \d\d:\d\d:\d\d America\/New_York$/);
  assert.equal(x[16], G.account);
  assert.equal(x[18], 'BOT');
  assert.equal(x[19], '10');
  assert.equal(x[22], '1');
  assert.equal(x[24], '10');
  assert.equal(x[26], 'e2e-mkt-1');
  execId = x[14];
  const cr = await A.id(59, 'commissionReport');
  assert.equal(cr.length, 8);
  assert.equal(cr[2], execId);
  assert.ok(Number(cr[3]) >= 1);
  assert.equal(cr[4], 'USD');
  const st = await A.take((f) => f[0] === '3' && f[1] === String(mktId) && f[2] === 'Filled', 'Filled');
  assert.equal(st.length, 12);
  assert.equal(st[3], '10');
  assert.equal(st[4], '0');
  assert.ok(Number(st[5]) > 100);
  assert.equal(st[9], '1');
});

test('duplicate order id: 103', async () => {
  A.send(...placeOrder(mktId, { qty: '1' }));
  const e = await A.error(mktId, 103);
  assert.equal(e[4], 'Duplicate order id');
});

test('resting LMT: reqOpenOrders lists it; cancel gives Cancelled + 202; again 161; unknown 10147', async () => {
  const id = A.nextId++;
  A.send(...placeOrder(id, { type: 'LMT', lmt: '1.25', qty: '5', ref: 'e2e-lmt-1' }));
  const oo = await A.take((f) => f[0] === '5' && f[1] === String(id), 'openOrder');
  assert.equal(oo[16], '1.25');
  await A.take((f) => f[0] === '3' && f[1] === String(id) && f[2] === 'Submitted', 'Submitted');
  A.msgs = []; // what earlier orders left unread
  A.send('5', '1');
  const { got } = await A.until(53);
  const listed = got.filter((f) => f[1] === String(id));
  assert.equal(listed.length, 2, JSON.stringify(got));
  assert.equal(listed[0][0], '5');
  assert.equal(listed[0].length, 127);
  assert.equal(listed[1][0], '3');
  assert.ok(!got.some((f) => f[1] === String(mktId)), 'the filled order is not open');
  A.send('4', '1', String(id), '');
  await A.take((f) => f[0] === '3' && f[1] === String(id) && f[2] === 'Cancelled', 'Cancelled');
  const e = await A.error(id, 202);
  assert.match(e[4], /^Order Canceled - reason:/);
  A.send('4', '1', String(id), '');
  await A.error(id, 161);
  A.send('4', '1', '99999', '');
  const u = await A.error(99999, 10147);
  assert.equal(u[4], 'OrderId 99999 that needs to be cancelled is not found.');
});

test('unsupported shapes: a SELL beyond the position is refused (201 + Cancelled)', async () => {
  const id = A.nextId++;
  A.send(...placeOrder(id, { action: 'SELL', qty: '1000' }));
  const e = await A.error(id, 201);
  assert.match(e[4], /^Order rejected - reason:/);
  await A.take((f) => f[0] === '3' && f[1] === String(id) && f[2] === 'Cancelled', 'Cancelled');
  const id2 = A.nextId++;
  A.send(...placeOrder(id2, { type: 'TRAIL' }));
  await A.error(id2, 201);
});

test('STP waits PreSubmitted; IOC that cannot fill is Cancelled with a 202 reason', async () => {
  const stp = A.nextId++;
  A.send(...placeOrder(stp, { type: 'STP', aux: '5000', qty: '1', tif: 'GTC' }));
  const oo = await A.take((f) => f[0] === '5' && f[1] === String(stp), 'openOrder STP');
  assert.equal(oo[15], 'STP');
  assert.equal(oo[17], '5000');
  assert.equal(oo[18], 'GTC');
  await A.take((f) => f[0] === '3' && f[1] === String(stp) && f[2] === 'PreSubmitted', 'PreSubmitted');
  A.send('4', '1', String(stp), '');
  await A.take((f) => f[0] === '3' && f[1] === String(stp) && f[2] === 'Cancelled', 'Cancelled');
  await A.error(stp, 202);
  const ioc = A.nextId++;
  A.send(...placeOrder(ioc, { type: 'LMT', lmt: '1.00', qty: '1', tif: 'IOC' }));
  await A.take((f) => f[0] === '3' && f[1] === String(ioc) && f[2] === 'Cancelled', 'IOC Cancelled');
  const e = await A.error(ioc, 202);
  assert.match(e[4], /^Order Canceled - reason:IOC/);
});

test('conditional and what-if orders are refused with 201 and a reason', async () => {
  const id = A.nextId++;
  const f = placeOrder(id, { type: 'LMT', lmt: '100', qty: '1' });
  // conditionsCount 1: a price condition (type 1: conj, isMore, price, conId, exch, trigger),
  // then conditionsIgnoreRth and conditionsCancelOrder.
  f.splice(89, 1, '1', '1', 'a', '1', '100', '265598', 'SMART', '0', '0', '0');
  A.send(...f);
  const e = await A.error(id, 201);
  assert.match(e[4], /^Order rejected - reason:.*condition/i);
  const id2 = A.nextId++;
  const g = placeOrder(id2, { type: 'LMT', lmt: '100', qty: '1' });
  g[84] = '1'; // whatIf
  A.send(...g);
  const e2 = await A.error(id2, 201);
  assert.match(e2[4], /what-if/i);
});

test('reqGlobalCancel cancels every working order (Cancelled + 202 each)', async () => {
  const ids = [A.nextId++, A.nextId++];
  for (const id of ids) {
    A.send(...placeOrder(id, { type: 'LMT', lmt: '1.10', qty: '1', tif: 'GTC' }));
    await A.take((f) => f[0] === '3' && f[1] === String(id) && f[2] === 'Submitted', 'Submitted');
  }
  A.send('58', '1');
  for (const id of ids) {
    await A.take((f) => f[0] === '3' && f[1] === String(id) && f[2] === 'Cancelled', 'Cancelled');
    await A.error(id, 202);
  }
});

test('reqPositions: position (16 fields) then positionEnd', async () => {
  A.send('61', '1');
  const { got } = await A.until(62);
  const p = got.find((f) => f[0] === '61' && f[4] === 'AAPL');
  assert.ok(p, JSON.stringify(got));
  assert.equal(p.length, 16);
  assert.equal(p[2], G.account);
  assert.equal(p[3], '265598');
  assert.equal(p[14], '10');
  assert.ok(Number(p[15]) > 100);
  A.send('64', '1');
});

test('reqAccountSummary: requested tags (7 fields each), then end', async () => {
  A.send('62', '1', '9001', 'All', 'NetLiquidation,TotalCashValue,BuyingPower,AvailableFunds,' +
    'GrossPositionValue,RealizedPnL,UnrealizedPnL,AccountType');
  const { got } = await A.until(64);
  const rows = got.filter((f) => f[0] === '63' && f[2] === '9001');
  assert.equal(rows.length, 8);
  for (const r of rows) {
    assert.equal(r.length, 7);
    assert.equal(r[3], G.account);
  }
  const tag = Object.fromEntries(rows.map((r) => [r[4], r]));
  assert.equal(tag.AccountType[6], '');
  assert.ok(['CASH', 'INDIVIDUAL'].includes(tag.AccountType[5]));
  assert.equal(tag.NetLiquidation[6], 'USD');
  assert.ok(Number(tag.TotalCashValue[5]) < 100000);
  assert.ok(Number(tag.GrossPositionValue[5]) > 1000);
  A.send('63', '1', '9001');
});

test('reqExecutions: all, by symbol, by side, by client id; commission after each; end', async () => {
  A.send('7', '3', '3001', '0', '', '', '', '', '', '');
  let r = await A.until(55);
  const x = r.got.filter((f) => f[0] === '11');
  assert.equal(x.length, 1);
  assert.equal(x[0].length, 32);
  assert.equal(x[0][1], '3001');
  assert.equal(x[0][14], execId);
  assert.equal(r.got[r.got.indexOf(x[0]) + 1][0], '59', 'commissionReport follows execDetails');
  assert.deepEqual(r.end, ['55', '1', '3001']);
  A.send('7', '3', '3002', '0', '', '', 'MSFT', '', '', '');
  r = await A.until(55);
  assert.equal(r.got.filter((f) => f[0] === '11').length, 0);
  A.send('7', '3', '3003', '0', '', '', '', '', '', 'SELL');
  r = await A.until(55);
  assert.equal(r.got.filter((f) => f[0] === '11').length, 0);
  A.send('7', '3', '3004', '2', '', '', '', '', '', '');
  r = await A.until(55);
  assert.equal(r.got.filter((f) => f[0] === '11').length, 0);
});

test('reqAccountUpdates: values, portfolio (20 fields), time, download end; updates after a fill', async () => {
  A.send('6', '2', '1', G.account);
  const { got, end } = await A.until(54);
  assert.deepEqual(end, ['54', '1', G.account]);
  const vals = got.filter((f) => f[0] === '6');
  assert.ok(vals.every((f) => f.length === 6));
  assert.ok(vals.some((f) => f[2] === 'NetLiquidation' && f[4] === 'USD'));
  const pf = got.find((f) => f[0] === '7' && f[3] === 'AAPL');
  assert.ok(pf);
  assert.equal(pf.length, 20);
  assert.equal(pf[13], '10');
  assert.equal(pf[19], G.account);
  const t = got.find((f) => f[0] === '8');
  assert.match(t[2], /^\d\d:\d\d$/);
  // Another fill: the portfolio comes again without asking.
  const id = A.nextId++;
  A.send(...placeOrder(id, { qty: '2', ref: 'e2e-mkt-2' }));
  const again = await A.take((f) => f[0] === '7' && f[3] === 'AAPL', 'portfolio after the fill');
  assert.equal(again[13], '12');
  A.send('6', '2', '0', G.account);
});

test('reqPnL: pnl (5 fields) now; cancelPnL', async () => {
  A.send('92', '4001', G.account, '');
  const p = await A.take((f) => f[0] === '94' && f[1] === '4001', 'pnl');
  assert.equal(p.length, 5);
  assert.ok(Number(p[4]) < 0, 'realized: commissions paid');
  A.send('93', '4001');
});

test('reqCompletedOrders answers an empty list: completedOrdersEnd (102, no fields)', async () => {
  A.send('99', '0');
  assert.deepEqual(await A.id(102), ['102']);
});

test('unknown request id is ignored; the connection keeps serving', async () => {
  A.send('999', '1', 'x');
  A.send('49', '1');
  await A.id(49);
});

test('duplicate client id: 326 and close; the first connection keeps working', async () => {
  const c = new Tws(G.port);
  await c.connected;
  c.raw(STOQEY_HELLO);
  await c.take(() => true);
  c.send('71', '2', '1', '');
  const e = await c.error(-1, 326);
  assert.equal(e[4], 'Unable to connect as the client id is already in use. Retry with a unique client id.');
  await within(c.closed, WAIT_MS, 'close after 326');
  A.send('49', '1');
  await A.id(49);
});

test('a client id that reconnects sees its orders and gets ids above them', async () => {
  const used = A.nextId - 1;
  const id = A.nextId++;
  A.send(...placeOrder(id, { type: 'LMT', lmt: '2.00', qty: '1', ref: 'e2e-reconnect' }));
  await A.take((f) => f[0] === '3' && f[1] === String(id), 'orderStatus');
  await A.close();
  await sleep(100);
  const B = await ready(G, 1);
  assert.ok(B.nextId > id, `nextValidId ${B.nextId} after ${used}`);
  B.send('5', '1');
  const { got } = await B.until(53);
  assert.ok(got.some((f) => f[0] === '5' && f[1] === String(id) && f[23] === 'e2e-reconnect'));
  // Its events still reach it: cancel it from the new connection.
  B.send('4', '1', String(id), '');
  await B.take((f) => f[0] === '3' && f[1] === String(id) && f[2] === 'Cancelled', 'Cancelled');
  // Another client id sees it only through reqAllOpenOrders (it is cancelled now: none).
  A = B;
});

test('hostile: garbage instead of "API\\0" is closed, nothing sent', async () => {
  const c = new Tws(G.port);
  await c.connected;
  c.raw(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  await within(c.closed, WAIT_MS, 'close after garbage');
  assert.equal(c.bytes, 0);
});

test('hostile: a 0xFFFFFF length then silence is closed at once', async () => {
  const c = await ready(G, 21);
  const t0 = Date.now();
  c.raw(Buffer.from([0x00, 0xff, 0xff, 0xff, 0x31]));
  await within(c.closed, 3000, 'close after an absurd length');
  assert.ok(Date.now() - t0 < 3000);
});

test('hostile: empty frame, and a frame not ending in NUL, are closed', async () => {
  const c = await ready(G, 22);
  c.raw(Buffer.from([0, 0, 0, 0]));
  await within(c.closed, WAIT_MS, 'close after an empty frame');
  const d = await ready(G, 23);
  d.raw(Buffer.concat([Buffer.from([0, 0, 0, 4]), Buffer.from('49\x001')]));
  await within(d.closed, WAIT_MS, 'close after an unterminated frame');
});

test('hostile: half-sent frame then close; half-sent handshake then silence times out', async () => {
  const c = await ready(G, 24);
  c.raw(Buffer.concat([Buffer.from([0, 0, 0, 100]), Buffer.from('49\x001\x00')]));
  await sleep(100);
  c.sock.end();
  await within(c.closed, WAIT_MS, 'close');
  const h = new Tws(G.port);
  await h.connected;
  h.raw(Buffer.from('API\0\0\0'));
  const t0 = Date.now();
  await within(h.closed, 15000, 'handshake timeout');
  assert.ok(Date.now() - t0 >= 8000, `closed after ${Date.now() - t0} ms`);
  assert.equal(h.bytes, 0);
});

test('hostile: 200 connections opened and dropped in a burst; a fresh client still works', async () => {
  const socks = [];
  for (let i = 0; i < 200; i++) {
    const s = net.connect(G.port, '127.0.0.1');
    s.on('error', () => {});
    s.on('connect', () => {
      if (i % 3 === 0) s.write(STOQEY_HELLO);
      if (i % 3 === 1) s.write(Buffer.concat([STOQEY_HELLO, frame(['71', '2', String(1000 + i), ''])]));
      if (i % 5 === 0) s.destroy();
    });
    socks.push(s);
  }
  await sleep(300);
  for (const s of socks) s.destroy();
  await sleep(300);
  const c = await ready(G, 25);
  c.send('49', '1');
  await c.id(49);
  c.send(...SNAPSHOT(77, 'MSFT'));
  await c.until(57);
  await c.close();
});

test('hostile: a client that never reads is dropped at 8 MiB of queued replies', async () => {
  const c = await ready(G, 26);
  c.sock.pause();
  const req = frame(CONTRACT(1, 'AAPL'));
  const burst = Buffer.concat(Array.from({ length: 2000 }, () => req));
  const t0 = Date.now();
  while (!G.stderr.includes('the client stopped reading') && Date.now() - t0 < 20000) {
    if (c.sock.writableLength < 4 * 1024 * 1024) c.sock.write(burst);
    await sleep(20);
  }
  assert.ok(G.stderr.includes('the client stopped reading'), 'the gateway dropped the client');
  c.sock.destroy();
  const d = await ready(G, 27);
  d.send('49', '1');
  await d.id(49);
  await d.close();
});

test('hostile: 3000 well-framed requests with random fields never crash the gateway', async () => {
  // A deterministic generator (xorshift32), so a failure replays.
  let x = 0x9e3779b9;
  const rnd = (n) => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x % n;
  };
  const ids = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 49, 58, 59, 61, 62, 63, 64, 71, 92, 93, 0, 250,
    'x1'];
  const words = ['', '0', '1', '-1', '2', '11', '178', '2147483647', '9223372036854775807',
    '1.7976931348623157E308', 'Infinity', 'Infinite', 'nan', '1e400', '-0', 'AAPL', 'aapl', 'ZZZZ',
    'STK', 'BAG', 'OPT', 'SMART', 'USD', 'BUY', 'SELL', 'MKT', 'LMT', 'STP', 'STP LMT', 'PEG BENCH',
    'DAY', 'GTC', 'IOC', 'None', 'All', 'NetLiquidation,AccountType', '1.5', '100', '1000000000',
    'x'.repeat(200), 'é中', '265598', G.account];
  let c = await ready(G, 28);
  let reconnects = 0;
  for (let i = 0; i < 3000; i++) {
    if (c.isClosed) {
      c = await ready(G, 28);
      reconnects++;
    }
    const n = rnd(130);
    const f = [String(ids[rnd(ids.length)])];
    for (let k = 0; k < n; k++) f.push(words[rnd(words.length)]);
    c.send(...f);
    if (i % 50 === 49) {
      // Answered, or the connection was closed for a malformed frame.
      c.send('49', '1');
      await Promise.race([c.take((m) => m[0] === '49', 'liveness').catch(() => {}), c.closed]);
      c.msgs = [];
    }
  }
  await sleep(200);
  c.sock.destroy();
  const d = await ready(G, 29);
  d.send('49', '1');
  await d.id(49);
  await d.close();
  assert.ok(reconnects < 3000);
  if (process.env.GW_DEBUG) console.log(`reconnects ${reconnects}`);
});

test('many clients at once: 40 ready connections each get their own answers', async () => {
  const cs = await Promise.all(Array.from({ length: 40 }, (_, i) => ready(G, 100 + i)));
  cs.forEach((c, i) => c.send(...CONTRACT(5000 + i, i % 2 ? 'AAPL' : 'MSFT')));
  await Promise.all(cs.map(async (c, i) => {
    const d = await c.id(10);
    assert.equal(d[1], String(5000 + i));
  }));
  await Promise.all(cs.map((c) => c.close()));
});

test('plain gateway exits 0 on SIGTERM (no leak, no sanitizer report)', async () => {
  await A.close();
  await G.stop();
});

// --account, --drop-after-place, --delayed-only share one gateway.
let F;
test('--account U1234567 shows in managedAccounts and the listening line', async () => {
  F = await within(new Gateway(['--account', 'U1234567', '--drop-after-place', '--delayed-only']).ready,
    WAIT_MS, 'listening line');
  assert.equal(F.account, 'U1234567');
  const c = await ready(F, 3);
  assert.equal(c.account, 'U1234567');
  await c.close();
});

test('--drop-after-place: no ack, closed; the same client id then sees the fill by orderRef', async () => {
  const c = await ready(F, 5);
  const id = c.nextId;
  c.send(...placeOrder(id, { qty: '3', ref: 'drop-ref-1' }));
  await within(c.closed, WAIT_MS, 'the drop');
  assert.ok(!c.msgs.some((f) => ['5', '3', '11', '59'].includes(f[0])), JSON.stringify(c.msgs));
  await sleep(200);
  const d = await ready(F, 5);
  assert.ok(d.nextId > id);
  d.send('7', '3', '3001', '5', '', '', '', '', '', '');
  const { got } = await d.until(55);
  const x = got.find((f) => f[0] === '11');
  assert.ok(x, 'the execution');
  assert.equal(x[2], String(id));
  assert.equal(x[26], 'drop-ref-1');
  // Later placeOrders are answered normally.
  const id2 = d.nextId;
  d.send(...placeOrder(id2, { type: 'LMT', lmt: '1.00', qty: '1', ref: 'drop-ref-2' }));
  await d.take((f) => f[0] === '5' && f[1] === String(id2), 'openOrder');
  d.send('16', '1');
  const all = await d.until(53);
  assert.ok(all.got.some((f) => f[0] === '5' && f[23] === 'drop-ref-2'));
  await d.close();
});

test('--delayed-only: 354 under type 1; 10167 + delayed ticks 66/67/68, 88 under type 3', async () => {
  const c = await ready(F, 6);
  c.send(...SNAPSHOT(1101));
  const e = await c.error(1101, 354);
  assert.equal(e[4], 'Requested market data is not subscribed. Delayed market data is available.');
  c.send('59', '1', '3');
  c.send(...SNAPSHOT(1102));
  await c.error(1102, 10167);
  const { got } = await c.until(57);
  const types = new Set(got.filter((f) => f[2] === '1102' && f[0] === '1').map((f) => f[3]));
  for (const t of ['66', '67', '68']) assert.ok(types.has(t), `delayed tick ${t}`);
  assert.ok(!types.has('1') && !types.has('2'), 'no real-time ticks');
  const sizes = new Set(got.filter((f) => f[0] === '2').map((f) => f[3]));
  for (const t of ['69', '70', '71']) assert.ok(sizes.has(t), `delayed size ${t}`);
  assert.ok(got.some((f) => f[0] === '46' && f[3] === '88'));
  assert.deepEqual(got.find((f) => f[0] === '58'), ['58', '1', '1102', '3']);
  await c.close();
  await F.stop();
});

test('--ack-delay-ms 1500: openOrder/orderStatus only after the delay; the order works meanwhile', async () => {
  const D = await within(new Gateway(['--ack-delay-ms', '1500']).ready, WAIT_MS, 'listening line');
  const c = await ready(D, 1);
  const t0 = Date.now();
  c.send(...placeOrder(1, { type: 'LMT', lmt: '1.00', qty: '1', ref: 'slow-ack' }));
  c.send('16', '1');
  const all = await c.until(53);
  assert.ok(all.got.some((f) => f[0] === '5' && f[1] === '1'), 'listed while the ack is held');
  await c.take((f) => f[0] === '3' && f[1] === '1' && f[2] === 'Submitted', 'the delayed ack');
  assert.ok(Date.now() - t0 >= 1400, `ack after ${Date.now() - t0} ms`);
  await c.close();
  await D.stop();
});

test('bad command lines exit 2', async () => {
  for (const args of [['--port', '7497'], ['--port', 'x'], ['--bogus'], ['--account', 'a b']]) {
    const p = spawn(BIN, ['gateway', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const code = await within(new Promise((r) => p.on('exit', r)), WAIT_MS, 'exit');
    assert.equal(code, 2, args.join(' '));
  }
});

// ---- run ----------------------------------------------------------------------------

for (const c of cases) {
  if (FILTER && !c.name.includes(FILTER) && !c.name.startsWith('listening') &&
      !c.name.startsWith('startApi')) continue;
  try {
    await within(c.fn(), CASE_MS, c.name);
    passed++;
    console.log(`ok - ${c.name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${c.name}`);
    console.log(`  ${String(e && e.stack || e).split('\n').join('\n  ')}`);
  }
}
for (const g of [G, F].filter(Boolean)) if (failed && g.stderr) console.log(`gateway ${g.args.join(' ')} stderr:\n${g.stderr}`);
cleanup();
clearTimeout(runTimer);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
