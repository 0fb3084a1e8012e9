// Interop: @stoqey/ib 1.6.10 (pinned in tests/interop/package.json), an
// independent TWS API client, drives `ibkr-mcp gateway` over TCP. Its decoder
// checks every message's field count: a surplus field raises
// "unprocessed data left on queue", a missing one "Underrun", both as error
// events, so ZERO error events over the whole session is the field-list check.
// Informational codes with id -1 (2104/2106/2158) arrive as `info` events.
//
// Usage: node tests/interop/test_stoqey.mjs <npm-dir> <path-to-ibkr-mcp>
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [NPM_DIR, BIN] = process.argv.slice(2);
if (!NPM_DIR || !BIN) {
  console.error('usage: node test_stoqey.mjs <npm-dir> <path-to-ibkr-mcp>');
  process.exit(2);
}
if (!fs.existsSync(BIN)) {
  console.error(`ibkr-mcp binary not found: ${BIN}`);
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(NPM_DIR), 'package.json'));
let IB;
try {
  IB = require('@stoqey/ib');
} catch (e) {
  console.error(`cannot load @stoqey/ib from ${NPM_DIR}: ${e.message}\n` +
    `install it first: bash tests/interop/setup.sh ${NPM_DIR}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const { IBApi, EventName, SecType, OrderAction, OrderType } = IB;

const STEP_TIMEOUT_MS = 15000;
const CLIENT_ID = 7;
const INFO_CODES = new Set([2104, 2106, 2158]);
let passed = 0;
let failed = 0;
let aborted = false;

async function step(name, fn) {
  if (aborted) {
    failed++;
    console.log(`not ok - ${name} (skipped: an earlier step failed)`);
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
    aborted = true;
    console.log(`not ok - ${name}`);
    console.log(`  ${String(e && e.stack || e).split('\n').join('\n  ')}`);
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

// ---- the gateway process ----------------------------------------------------

const gw = spawn(BIN, ['gateway', '--port', '0', '--seed', '7'], {
  stdio: ['ignore', 'pipe', 'pipe'],
});
let gwStderr = '';
gw.stderr.on('data', (d) => { gwStderr += d; });
const gwExit = new Promise((resolve) => gw.on('exit', (code, sig) => resolve({ code, sig })));
const listening = new Promise((resolve, reject) => {
  let out = '';
  gw.stdout.on('data', (d) => {
    out += d;
    const m = /^ibkr-mcp gateway listening on 127\.0\.0\.1:(\d+) account (\S+)\n/.exec(out);
    if (m) resolve({ port: Number(m[1]), account: m[2], line: out });
  });
  gw.on('exit', () => reject(new Error(`gateway exited early:\n${gwStderr}`)));
});

// ---- the client and what it hears -------------------------------------------

const errors = [];   // every error event: none is allowed
const infos = [];
let ib;

// Resolves with the first event `name` whose args satisfy pred.
function once(name, pred = () => true) {
  return new Promise((resolve) => {
    const h = (...args) => {
      if (pred(...args)) {
        ib.off(name, h);
        resolve(args);
      }
    };
    ib.on(name, h);
  });
}

// Collects events of `name` until `endName` arrives (pred filters both).
function collect(name, endName, pred = () => true, endPred = () => true) {
  return new Promise((resolve) => {
    const got = [];
    const h = (...args) => { if (pred(...args)) got.push(args); };
    const e = (...args) => {
      if (!endPred(...args)) return;
      ib.off(name, h);
      ib.off(endName, e);
      resolve(got);
    };
    ib.on(name, h);
    ib.on(endName, e);
  });
}

const AAPL = { symbol: 'AAPL', secType: SecType.STK, exchange: 'SMART', currency: 'USD' };
let gwInfo;
let account;
let nextId;

await step('gateway prints its listening line on 127.0.0.1', async () => {
  gwInfo = await listening;
  assert.ok(gwInfo.port > 0);
  account = gwInfo.account;
  assert.match(account, /^DU/);
});

await step('handshake: managedAccounts, nextValidId, farm-status info 2104/2106/2158', async () => {
  ib = new IBApi({ host: '127.0.0.1', port: gwInfo.port });
  ib.on(EventName.error, (err, code, reqId) => {
    errors.push({ msg: err && err.message, code, reqId });
  });
  ib.on(EventName.info, (msg, code) => infos.push({ msg, code }));
  const accts = once(EventName.managedAccounts);
  const nvid = once(EventName.nextValidId);
  const farms = new Promise((resolve) => {
    const h = () => {
      if ([...INFO_CODES].every((c) => infos.some((i) => i.code === c))) {
        ib.off(EventName.info, h);
        resolve();
      }
    };
    ib.on(EventName.info, h);
  });
  ib.connect(CLIENT_ID);
  const [a] = await accts;
  assert.equal(a, account);
  [nextId] = await nvid;
  assert.equal(nextId, 1);
  await farms;
  assert.equal(ib.serverVersion, 178);
});

await step('reqCurrentTime answers the simulated clock', async () => {
  const p = once(EventName.currentTime);
  ib.reqCurrentTime();
  const [t] = await p;
  assert.ok(t >= 1749564000 && t < 1749564000 + 3600, `currentTime ${t}`);
});

await step('reqContractDetails AAPL: conId 265598, NASDAQ, minTick 0.01', async () => {
  const p = collect(EventName.contractDetails, EventName.contractDetailsEnd,
    (id) => id === 2001, (id) => id === 2001);
  ib.reqContractDetails(2001, AAPL);
  const got = await p;
  assert.equal(got.length, 1);
  const d = got[0][1];
  assert.equal(d.contract.conId, 265598);
  assert.equal(d.contract.symbol, 'AAPL');
  assert.equal(d.contract.secType, 'STK');
  assert.equal(d.contract.currency, 'USD');
  assert.equal(d.contract.primaryExch, 'NASDAQ');
  assert.equal(d.minTick, 0.01);
});

await step('reqMarketDataType + reqMktData snapshot: bid/ask/last ticks, tickSnapshotEnd', async () => {
  const ticks = {};
  const h = (id, type, value) => { if (id === 1002) ticks[type] = value; };
  ib.on(EventName.tickPrice, h);
  const sizes = {};
  const hs = (id, type, value) => { if (id === 1002) sizes[type] = value; };
  ib.on(EventName.tickSize, hs);
  const mdt = once(EventName.marketDataType, (id) => id === 1002);
  const end = once(EventName.tickSnapshotEnd, (id) => id === 1002);
  ib.reqMarketDataType(1);
  ib.reqMktData(1002, AAPL, '', true, false);
  await end;
  ib.off(EventName.tickPrice, h);
  ib.off(EventName.tickSize, hs);
  const [, type] = await mdt;
  assert.equal(type, 1);
  assert.ok(ticks[1] > 0 && ticks[2] > ticks[1], `bid ${ticks[1]} ask ${ticks[2]}`);
  assert.ok(ticks[4] > 0, 'last');
  assert.ok(ticks[9] > 0, 'close');
  assert.ok(sizes[0] > 0 && sizes[3] > 0, 'bid and ask sizes');
});

let execId;
const ORDER_REF = 'stoqey-interop-1';
await step('placeOrder MKT BUY 10 AAPL: openOrder, orderStatus Filled, execDetails, commissionReport', async () => {
  const id = nextId;
  const open = once(EventName.openOrder, (oid) => oid === id);
  const filled = once(EventName.orderStatus, (oid, status) => oid === id && status === 'Filled');
  const exec = once(EventName.execDetails, (reqId, c, e) => e.orderId === id);
  const comm = once(EventName.commissionReport);
  ib.placeOrder(id, AAPL, {
    action: OrderAction.BUY, orderType: OrderType.MKT, totalQuantity: 10,
    orderRef: ORDER_REF, transmit: true, tif: 'DAY',
  });
  const [, oc, oo, os] = await open;
  assert.equal(oc.symbol, 'AAPL');
  assert.equal(oc.conId, 265598);
  assert.equal(oo.orderRef, ORDER_REF);
  assert.equal(oo.totalQuantity, 10);
  assert.equal(oo.clientId, CLIENT_ID);
  assert.ok(['PreSubmitted', 'Submitted', 'Filled'].includes(os.status), os.status);
  const [, , fq, rem, avg] = await filled;
  assert.equal(fq, 10);
  assert.equal(rem, 0);
  assert.ok(avg > 0);
  const [, ec, e] = await exec;
  assert.equal(ec.symbol, 'AAPL');
  assert.equal(e.side, 'BOT');
  assert.equal(e.shares, 10);
  assert.equal(e.cumQty, 10);
  assert.equal(e.orderRef, ORDER_REF);
  assert.equal(e.acctNumber, account);
  assert.match(e.time, /^\d{8} \d\d:\d\d:\d\d America\/New_York$/);
  execId = e.execId;
  const [cr] = await comm;
  assert.equal(cr.execId, execId);
  assert.ok(cr.commission >= 1, `commission ${cr.commission}`);
  assert.equal(cr.currency, 'USD');
  nextId++;
});

await step('reqPositions: AAPL 10, then positionEnd', async () => {
  const p = collect(EventName.position, EventName.positionEnd);
  ib.reqPositions();
  const got = await p;
  ib.cancelPositions();
  const aapl = got.find(([, c]) => c.symbol === 'AAPL');
  assert.ok(aapl, 'an AAPL position');
  assert.equal(aapl[0], account);
  assert.equal(aapl[2], 10);
  assert.ok(aapl[3] > 0, 'avgCost');
});

await step('reqAccountSummary: the requested tags, then accountSummaryEnd', async () => {
  const p = collect(EventName.accountSummary, EventName.accountSummaryEnd,
    (id) => id === 9001, (id) => id === 9001);
  ib.reqAccountSummary(9001, 'All', 'NetLiquidation,TotalCashValue,BuyingPower,AccountType');
  const got = await p;
  ib.cancelAccountSummary(9001);
  const tags = Object.fromEntries(got.map(([, acct, tag, value, cur]) => [tag, { acct, value, cur }]));
  assert.deepEqual(Object.keys(tags).sort(),
    ['AccountType', 'BuyingPower', 'NetLiquidation', 'TotalCashValue']);
  assert.ok(Number(tags.NetLiquidation.value) > 90000);
  assert.ok(Number(tags.TotalCashValue.value) < 100000, 'the buy spent cash');
  assert.equal(tags.NetLiquidation.cur, 'USD');
  assert.equal(tags.NetLiquidation.acct, account);
});

await step('reqExecutions: the fill with its commission report, then execDetailsEnd', async () => {
  const comms = [];
  const hc = (cr) => comms.push(cr);
  ib.on(EventName.commissionReport, hc);
  const p = collect(EventName.execDetails, EventName.execDetailsEnd,
    (id) => id === 3001, (id) => id === 3001);
  ib.reqExecutions(3001, { clientId: CLIENT_ID });
  const got = await p;
  ib.off(EventName.commissionReport, hc);
  assert.equal(got.length, 1);
  assert.equal(got[0][2].execId, execId);
  assert.ok(comms.some((c) => c.execId === execId));
});

await step('resting LMT order, reqAllOpenOrders lists it, cancelOrder cancels it (202)', async () => {
  const id = nextId++;
  const open = once(EventName.openOrder, (oid) => oid === id);
  ib.placeOrder(id, AAPL, {
    action: OrderAction.BUY, orderType: OrderType.LMT, lmtPrice: 1.5, totalQuantity: 5,
    orderRef: 'stoqey-interop-2', transmit: true, tif: 'DAY',
  });
  await open;
  const listed = collect(EventName.openOrder, EventName.openOrderEnd);
  ib.reqAllOpenOrders();
  const got = await listed;
  const o = got.find(([oid]) => oid === id);
  assert.ok(o, 'the LMT order is listed');
  assert.equal(o[2].lmtPrice, 1.5);
  assert.equal(o[3].status, 'Submitted');
  const cancelled = once(EventName.orderStatus, (oid, st) => oid === id && st === 'Cancelled');
  ib.cancelOrder(id);
  await cancelled;
  // 202 "Order Canceled" arrives as an error event: expected, so take it out.
  await new Promise((r) => setTimeout(r, 200));
  const i = errors.findIndex((e) => e.code === 202 && e.reqId === id);
  assert.ok(i >= 0, `a 202 for order ${id}: ${JSON.stringify(errors)}`);
  errors.splice(i, 1);
});

await step('reqAccountUpdates: account values, portfolio AAPL, accountDownloadEnd', async () => {
  const values = {};
  const hv = (key, value, cur, acct) => { values[key] = { value, cur, acct }; };
  ib.on(EventName.updateAccountValue, hv);
  const port = collect(EventName.updatePortfolio, EventName.accountDownloadEnd);
  ib.reqAccountUpdates(true, account);
  const got = await port;
  ib.off(EventName.updateAccountValue, hv);
  ib.reqAccountUpdates(false, account);
  const aapl = got.find(([c]) => c.symbol === 'AAPL');
  assert.ok(aapl, 'portfolio AAPL');
  assert.equal(aapl[1], 10);
  assert.ok(aapl[2] > 0 && aapl[3] > 0, 'marketPrice, marketValue');
  assert.equal(aapl[7], account);
  assert.ok(Number(values.NetLiquidation.value) > 0);
  assert.equal(values.NetLiquidation.cur, 'USD');
});

await step('reqPnL: daily, unrealized and realized P&L', async () => {
  const p = once(EventName.pnl, (id) => id === 4001);
  ib.reqPnL(4001, account, '');
  const [, daily, unreal, real] = await p;
  ib.cancelPnL(4001);
  assert.equal(typeof daily, 'number');
  assert.equal(typeof unreal, 'number');
  assert.ok(real < 0, `realized ${real}: the commission of the buy`);
});

await step('no error event at all: every message decoded with its exact field count', async () => {
  // A round trip makes sure everything sent before has been decoded.
  const p = once(EventName.currentTime);
  ib.reqCurrentTime();
  await p;
  assert.deepEqual(errors, []);
  const odd = infos.filter((i) => !INFO_CODES.has(i.code));
  assert.deepEqual(odd, []);
});

// ---- cleanup ----------------------------------------------------------------

aborted = false;
await step('gateway exits cleanly on SIGTERM', async () => {
  if (ib) ib.disconnect();
  gw.kill('SIGTERM');
  const { code, sig } = await gwExit;
  assert.equal(sig, null, `killed by ${sig}`);
  assert.equal(code, 0, `exit ${code}\n${gwStderr}`);
});
if (gw.exitCode === null) gw.kill('SIGKILL');
if (failed) console.log(`gateway stderr:\n${gwStderr}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
