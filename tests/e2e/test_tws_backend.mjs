// The TWS backend end to end, offline: `ibkr-mcp` with IBKR_BACKEND=tws
// talks the TWS socket protocol over loopback to `ibkr-mcp gateway` (the
// simulator served over the same protocol), and is driven through its MCP
// tools. Covers status, quote, account, preview -> place -> fill,
// positions, trades, cancel of a resting order, an unknown symbol, the
// live-account gate, delayed data, the gateway killed and restarted, the
// connection dropped between placeOrder and its acknowledgement, TWS
// losing IB and getting it back (1100, 1101, 1102), and a client id
// already in use.
//
// Usage: node tests/e2e/test_tws_backend.mjs <path-to-ibkr-mcp>
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { runTests, startGateway, startServer, tmpDir, until, sleep } from './lib/harness.mjs';

const BIN = process.argv[2];
if (!BIN || !fs.existsSync(BIN)) {
  console.error('usage: node test_tws_backend.mjs <path-to-ibkr-mcp>');
  process.exit(2);
}
// No operator policies: market_hours would depend on the hour the test runs.
const NO_POLICIES = tmpDir('nopolicies');

function twsEnv(gw, extra = {}) {
  return {
    IBKR_BACKEND: 'tws',
    IBKR_HOST: '127.0.0.1',
    IBKR_PORT: String(gw.port),
    IBKR_CLIENT_ID: '5',
    IBKR_TRADING_ENABLED: 'true',
    IBKR_POLICY_DIR: NO_POLICIES,
    IBKR_LOG_LEVEL: 'info',
    ...extra,
  };
}

async function connected(s) {
  return until(async () => {
    const st = await s.ok('get_status');
    return st.connection.state === 'connected' ? st : null;
  }, 'the backend to connect');
}

async function previewPlace(s, order) {
  const p = await s.ok('preview_order', order);
  assert.equal(p.risk.approved, true, `preview refused: ${JSON.stringify(p.risk)}`);
  assert.ok(p.confirmation_token, 'no token');
  return s.call('place_order', { confirmation_token: p.confirmation_token });
}

// A TCP relay between the backend and the gateway. onFrame(fields, inject)
// sees every frame the backend sends (its fields, split on NUL); inject
// writes a frame of fields to the backend, as if from TWS. The returned
// inject does the same for the newest connection.
function frame(fields) {
  const p = Buffer.from(fields.map((f) => `${f}\0`).join(''), 'latin1');
  const h = Buffer.alloc(4);
  h.writeUInt32BE(p.length);
  return Buffer.concat([h, p]);
}

async function relay(gw, onFrame) {
  let last = null;
  const server = net.createServer((c) => {
    const u = net.connect(gw.port, '127.0.0.1');
    const inject = (fields) => c.write(frame(fields));
    let fromClient = Buffer.alloc(0);
    let prefix = true;
    last = inject;
    c.on('data', (d) => {
      u.write(d);
      fromClient = Buffer.concat([fromClient, d]);
      if (prefix && fromClient.length >= 4) {   // "API\0", then a length-prefixed version
        fromClient = fromClient.subarray(4);
        prefix = false;
      }
      while (!prefix && fromClient.length >= 4 && fromClient.length >= 4 + fromClient.readUInt32BE(0)) {
        const n = fromClient.readUInt32BE(0);
        const f = fromClient.subarray(4, 4 + n).toString('latin1').split('\0');
        fromClient = fromClient.subarray(4 + n);
        onFrame(f, inject);
      }
    });
    u.on('data', (d) => c.write(d));
    for (const x of [c, u]) x.on('error', () => {});
    c.on('close', () => u.destroy());
    u.on('close', () => c.destroy());
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { port: server.address().port, close: () => server.close(), inject: (f) => last && last(f) };
}

// On every placeOrder it forwards, the relay writes errMsg(orderId, code,
// text) to the backend first, as TWS does when it has a remark about (or a
// refusal of) an order.
async function injectingRelay(gw, code, text) {
  return relay(gw, (f, inject) => {
    if (f[0] === '3') inject(['4', '2', f[1], String(code), text, '']);
  });
}

function noViolations(s) {
  assert.deepEqual(s.violations, [], 'stdout carried something other than JSON-RPC');
}

const tests = [
  ['status, quote, account over TWS', async () => {
    const gw = await startGateway(BIN, ['--seed', '11']);
    const s = await startServer(BIN, twsEnv(gw));
    const st = await connected(s);
    assert.equal(st.backend, 'tws');
    assert.equal(st.connected, true);
    assert.equal(st.connection.host, '127.0.0.1');
    assert.equal(st.connection.port, gw.port);
    assert.equal(st.connection.server_version, 178);
    assert.equal(st.connection.client_id, 5);
    assert.equal(st.account, gw.account);
    assert.match(st.account, /^DU/);
    assert.equal(st.account_type, 'paper');
    assert.equal(st.trading_blocked, undefined);

    const q = await s.ok('get_quote', { symbol: 'AAPL' });
    assert.equal(q.symbol, 'AAPL');
    assert.ok(q.bid > 0 && q.ask >= q.bid, `bad quote ${JSON.stringify(q)}`);
    assert.ok(q.last > 0);
    assert.notEqual(q.delayed, true);

    const a = await s.ok('get_account_summary');
    assert.equal(a.account_id || a.account, gw.account);
    assert.ok(a.net_liquidation > 0, JSON.stringify(a));

    const bad = await s.call('get_quote', { symbol: 'ZZZZQ' });
    assert.equal(bad.isError, true);
    assert.match(bad.text, /Unknown symbol ZZZZQ/);
    noViolations(s);
    await s.stop('stdin');
    await gw.stop();
  }],

  ['preview, place and fill; positions; trades; cancel a resting order', async () => {
    const gw = await startGateway(BIN, ['--seed', '12']);
    const s = await startServer(BIN, twsEnv(gw));
    await connected(s);
    const placed = await previewPlace(s, { symbol: 'MSFT', action: 'BUY', quantity: 10 });
    assert.equal(placed.isError, false, placed.text);
    assert.match(placed.data.order_ref, /^im-/);
    const oid = placed.data.order_id;
    assert.ok(Number(oid) > 0);

    const trades = await until(async () => {
      const t = await s.ok('get_trades');
      return t.trades.some((x) => String(x.order_id) === String(oid)) ? t : null;
    }, 'the fill in get_trades');
    const fill = trades.trades.find((x) => String(x.order_id) === String(oid));
    assert.equal(fill.symbol, 'MSFT');
    assert.equal(fill.action, 'BUY');
    assert.equal(fill.quantity, 10);
    assert.ok(fill.price > 0);
    assert.ok(fill.commission > 0, `no commission: ${JSON.stringify(fill)}`);

    // The fill reached the session and its journal, not only the broker.
    await until(() => {
      const j = fs.readdirSync(s.stateDir).filter((f) => f.endsWith('.jsonl'))
        .map((f) => fs.readFileSync(`${s.stateDir}/${f}`, 'utf8')).join('');
      return j.split('\n').some((l) => l.includes('"kind":"fill"') &&
        l.includes(placed.data.order_ref));
    }, 'a fill record in the journal', 5000);
    const pos = await until(async () => {
      const p = await s.ok('get_positions');
      return p.positions.find((x) => x.symbol === 'MSFT');
    }, 'MSFT in get_positions');
    assert.equal(pos.quantity, 10);
    assert.ok(pos.market_value > 0 && pos.avg_cost > 0, JSON.stringify(pos));

    // A buy limit 20% under the market rests.
    const q = await s.ok('get_quote', { symbol: 'MSFT' });
    const limit = Math.round(q.bid * 0.8 * 100) / 100;
    const rest = await previewPlace(s, { symbol: 'MSFT', action: 'BUY', quantity: 5,
      order_type: 'LMT', limit_price: limit });
    assert.equal(rest.isError, false, rest.text);
    assert.equal(rest.data.status, 'SUBMITTED');
    const open = await s.ok('get_open_orders');
    const mine = open.orders.find((o) => String(o.order_id) === String(rest.data.order_id));
    assert.ok(mine, `resting order not listed: ${JSON.stringify(open)}`);
    assert.equal(mine.order_type, 'LMT');
    assert.equal(mine.limit_price, limit);
    const c = await s.ok('cancel_order', { order_id: String(rest.data.order_id) });
    assert.equal(c.status, 'CANCELLED');
    const after = await s.ok('get_open_orders');
    assert.ok(!after.orders.some((o) => String(o.order_id) === String(rest.data.order_id)));
    const again = await s.call('cancel_order', { order_id: String(rest.data.order_id) });
    assert.equal(again.isError, true);
    const unknown = await s.call('cancel_order', { order_id: '987654' });
    assert.equal(unknown.isError, true);
    assert.match(unknown.text, /987654/);
    noViolations(s);
    await s.stop('stdin');
    await gw.stop();
  }],

  ['the live-account gate', async () => {
    const gw = await startGateway(BIN, ['--account', 'U1234567']);
    const s = await startServer(BIN, twsEnv(gw));
    const st = await connected(s);
    assert.equal(st.account, 'U1234567');
    assert.equal(st.account_type, 'live');
    assert.match(st.trading_blocked, /IBKR_ALLOW_LIVE_ACCOUNT/);
    const q = await s.ok('get_quote', { symbol: 'AAPL' });
    assert.ok(q.bid > 0);
    await s.ok('get_positions');
    const p = await s.ok('preview_order', { symbol: 'AAPL', action: 'BUY', quantity: 1 });
    assert.equal(p.risk.approved, false);
    assert.ok(p.risk.codes.includes('RISK_LIVE_ACCOUNT'), JSON.stringify(p.risk));
    assert.equal(p.confirmation_token, null);
    assert.match(p.risk.reasons.join(' '), /U1234567.*IBKR_ALLOW_LIVE_ACCOUNT/);
    await s.stop('stdin');

    const s2 = await startServer(BIN, twsEnv(gw, { IBKR_ALLOW_LIVE_ACCOUNT: 'true',
      IBKR_CLIENT_ID: '6' }));
    const st2 = await connected(s2);
    assert.equal(st2.account_type, 'live');
    assert.equal(st2.trading_blocked, undefined);
    const placed = await previewPlace(s2, { symbol: 'AAPL', action: 'BUY', quantity: 1 });
    assert.equal(placed.isError, false, placed.text);
    noViolations(s2);
    await s2.stop('stdin');
    await gw.stop();
  }],

  ['delayed data: flagged, and orders priced from it refused unless allowed', async () => {
    const gw = await startGateway(BIN, ['--delayed-only']);
    const s = await startServer(BIN, twsEnv(gw));
    await connected(s);
    const q = await s.ok('get_quote', { symbol: 'AAPL' });
    assert.equal(q.delayed, true);
    assert.ok(q.bid > 0);
    const p = await s.ok('preview_order', { symbol: 'AAPL', action: 'BUY', quantity: 1 });
    assert.equal(p.risk.approved, false);
    assert.ok(p.risk.codes.includes('RISK_DELAYED_DATA'), JSON.stringify(p.risk));
    const st = await s.ok('get_status');
    assert.equal(st.connection.delayed_data, true);
    await s.stop('stdin');
    const s2 = await startServer(BIN, twsEnv(gw, { IBKR_ALLOW_DELAYED_QUOTES: 'true' }));
    await connected(s2);
    const p2 = await s2.ok('preview_order', { symbol: 'AAPL', action: 'BUY', quantity: 1 });
    assert.equal(p2.risk.approved, true, JSON.stringify(p2.risk));
    await s2.stop('stdin');
    await gw.stop();
  }],

  ['the gateway killed mid-session, then restarted: clear errors, reconnects by itself', async () => {
    let gw = await startGateway(BIN, ['--seed', '13']);
    const port = gw.port;
    const s = await startServer(BIN, twsEnv(gw));
    await connected(s);
    await gw.kill('SIGKILL');
    const st = await until(async () => {
      const x = await s.ok('get_status');
      return x.connection.state !== 'connected' ? x : null;
    }, 'the backend to notice');
    assert.equal(st.connected, false);
    assert.ok(st.connection.last_error.length > 0);
    const q = await s.call('get_quote', { symbol: 'AAPL' });
    assert.equal(q.isError, true);
    assert.match(q.text, /(Not connected|Connecting) to TWS/);
    const p = await s.call('preview_order', { symbol: 'AAPL', action: 'BUY', quantity: 1 });
    assert.ok(p.isError || p.data.risk.approved === false, 'a preview went through disconnected');
    gw = await startGateway(BIN, ['--seed', '13'], port);
    const back = await connected(s);
    assert.ok(back.connection.reconnects >= 1);
    const q2 = await s.ok('get_quote', { symbol: 'AAPL' });
    assert.ok(q2.bid > 0);
    noViolations(s);
    await s.stop('stdin');
    await gw.stop();
  }],

  ['the connection dropped between placeOrder and its acknowledgement', async () => {
    const gw = await startGateway(BIN, ['--drop-after-place']);
    const s = await startServer(BIN, twsEnv(gw));
    await connected(s);
    const placed = await previewPlace(s, { symbol: 'AAPL', action: 'BUY', quantity: 3 });
    // Found by its orderRef after the reconnect: an answer, not a resend.
    assert.equal(placed.isError, false, placed.text);
    const ref = placed.data.order_ref;
    const st = await connected(s);
    assert.ok(st.connection.reconnects >= 1);
    const trades = await until(async () => {
      const t = await s.ok('get_trades');
      return t.trades.length ? t : null;
    }, 'the fill');
    const mine = trades.trades.filter((x) => x.order_ref === ref);
    assert.equal(mine.reduce((n, x) => n + x.quantity, 0), 3, `sent twice? ${JSON.stringify(trades)}`);
    const pos = await until(async () => {
      const p = await s.ok('get_positions');
      return p.positions.find((x) => x.symbol === 'AAPL');
    }, 'the position');
    assert.equal(pos.quantity, 3);
    assert.match(s.stderr, new RegExp(`${ref}.*found at TWS`));
    noViolations(s);
    await s.stop('stdin');
    await gw.stop();
  }],

  ['the server killed between placeOrder and its acknowledgement: found after restart, not resent', async () => {
    const gw = await startGateway(BIN, ['--ack-delay-ms', '4000']);
    const s = await startServer(BIN, twsEnv(gw));
    await connected(s);
    const q = await s.ok('get_quote', { symbol: 'NVDA' });
    const limit = Math.round(q.bid * 0.8 * 100) / 100;
    const p = await s.ok('preview_order', { symbol: 'NVDA', action: 'BUY', quantity: 2,
      order_type: 'LMT', limit_price: limit });
    const pending = s.call('place_order', { confirmation_token: p.confirmation_token }).catch(() => null);
    // The order is journalled before it is sent; kill while TWS sits on the ack.
    const journal = () => fs.readdirSync(s.stateDir).filter((f) => f.endsWith('.jsonl'))
      .map((f) => fs.readFileSync(`${s.stateDir}/${f}`, 'utf8')).join('');
    await until(() => /"order_sent"/.test(journal()), 'order_sent in the journal', 5000, 20);
    await sleep(300);
    await s.kill('SIGKILL');
    await pending;
    const ref = /"order_sent".*?"order_ref":"(im-[0-9a-f]+)"/.exec(journal())[1];
    assert.doesNotMatch(journal(), new RegExp(`"order_ack"[^\n]*${ref}`));

    const s2 = await startServer(BIN, twsEnv(gw), { stateDir: s.stateDir });
    await connected(s2);
    const rec = await until(() => {
      const line = journal().split('\n').find((l) => l.includes('"reconciled"') && l.includes(ref));
      return line ? JSON.parse(line) : null;
    }, 'a reconciled record', 15000);
    assert.equal(rec.found, true, JSON.stringify(rec));
    assert.ok(rec.order_id);
    const open = await s2.ok('get_open_orders');
    assert.equal(open.orders.filter((o) => o.order_ref === ref).length, 1, JSON.stringify(open));
    // The client retrying with the same token after the crash sends nothing.
    const retry = await s2.call('place_order', { confirmation_token: p.confirmation_token });
    assert.equal(retry.isError, true);
    assert.match(retry.text, /already-used|already redeemed/);
    const open2 = await s2.ok('get_open_orders');
    assert.equal(open2.orders.filter((o) => o.order_ref === ref).length, 1);
    assert.equal(open2.count, open.count);
    // A third start has nothing left to settle.
    await s2.stop('stdin');
    const s3 = await startServer(BIN, twsEnv(gw), { stateDir: s.stateDir });
    await connected(s3);
    assert.doesNotMatch(s3.stderr, new RegExp(`${ref}.*no broker answer`));
    await s3.stop('stdin');
    await gw.stop();
  }],

  ['two API clients with the same order ids keep their orders apart', async () => {
    const gw = await startGateway(BIN, ['--seed', '14']);
    const a = await startServer(BIN, twsEnv(gw, { IBKR_CLIENT_ID: '5' }));
    const b = await startServer(BIN, twsEnv(gw, { IBKR_CLIENT_ID: '6' }));
    await connected(a);
    await connected(b);
    const rest = async (s, sym, qty) => {
      const q = await s.ok('get_quote', { symbol: sym });
      const limit = Math.round(q.bid * 0.8 * 100) / 100;
      const r = await previewPlace(s, { symbol: sym, action: 'BUY', quantity: qty,
        order_type: 'LMT', limit_price: limit });
      assert.equal(r.isError, false, r.text);
      return r.data;
    };
    const oa = await rest(a, 'MSFT', 5);
    const ob = await rest(b, 'AAPL', 7);
    assert.equal(oa.order_id, ob.order_id, 'the gateway gives each client id 1 first');
    const la = (await a.ok('get_open_orders')).orders;
    const lb = (await b.ok('get_open_orders')).orders;
    const mineA = la.find((o) => o.order_id === oa.order_id);
    const mineB = lb.find((o) => o.order_id === ob.order_id);
    assert.equal(mineA.symbol, 'MSFT', JSON.stringify(la));
    assert.equal(mineB.symbol, 'AAPL', JSON.stringify(lb));
    assert.ok(la.some((o) => o.symbol === 'AAPL' && o.order_id === `c6-${ob.order_id}`),
      JSON.stringify(la));
    // Cancelling "1" at A cancels A's order, never B's.
    await a.ok('cancel_order', { order_id: oa.order_id });
    const lb2 = (await b.ok('get_open_orders')).orders;
    assert.ok(lb2.some((o) => o.order_id === ob.order_id && o.symbol === 'AAPL'));
    await a.stop('stdin');
    await b.stop('stdin');
    await gw.stop();
  }],

  ['a TWS remark on an order (404 held) leaves it working; a refusal (201) rejects it', async () => {
    const gw = await startGateway(BIN, ['--seed', '15']);
    for (const [code, text, working] of [[404, 'Order held while securities are located.', true],
      [201, 'Order rejected - reason: test refusal', false]]) {
      const relay = await injectingRelay(gw, code, text);
      const s = await startServer(BIN, twsEnv({ port: relay.port }, { IBKR_CLIENT_ID: String(code) }));
      await connected(s);
      const q = await s.ok('get_quote', { symbol: 'MSFT' });
      const limit = Math.round(q.bid * 0.8 * 100) / 100;
      const r = await previewPlace(s, { symbol: 'MSFT', action: 'BUY', quantity: 5,
        order_type: 'LMT', limit_price: limit });
      if (working) {
        assert.equal(r.isError, false, r.text);
        assert.equal(r.data.status, 'SUBMITTED');
        const open = await s.ok('get_open_orders');
        assert.ok(open.orders.some((o) => o.order_id === r.data.order_id), JSON.stringify(open));
        await s.ok('cancel_order', { order_id: r.data.order_id });
      } else {
        assert.equal(r.isError, true, JSON.stringify(r.data));
        assert.match(r.text, /rejected.*201/i);
      }
      await s.stop('stdin');
      relay.close();
    }
    await gw.stop();
  }],

  ['TWS loses IB (1100), then gets it back with data lost (1101): subscriptions are renewed', async () => {
    const gw = await startGateway(BIN);
    const sent = {};   // message id -> how many the backend sent
    const r = await relay(gw, (f) => { sent[f[0]] = (sent[f[0]] || 0) + 1; });
    const s = await startServer(BIN, twsEnv({ port: r.port }, { IBKR_CLIENT_ID: '11' }));
    try {
      await connected(s);
      const acct0 = sent['6'] || 0, pnl0 = sent['92'] || 0;
      assert.ok(acct0 >= 1 && pnl0 >= 1, `no subscriptions at start: ${JSON.stringify(sent)}`);
      r.inject(['4', '2', '-1', '1100', 'Connectivity between IB and Trader Workstation has been lost.', '']);
      const st = await until(async () => {
        const x = await s.ok('get_status');
        return /1100/.test(x.connection.last_error || '') ? x : null;
      }, 'get_status to name the 1100');
      assert.match(st.connection.last_error, /lost its connection to IB/);
      assert.equal(sent['6'] || 0, acct0, '1100 alone must not resubscribe');
      r.inject(['4', '2', '-1', '1101', 'Connectivity between IB and TWS has been restored - data lost.', '']);
      await until(async () => ((sent['6'] || 0) > acct0 && (sent['92'] || 0) > pnl0 && (sent['93'] || 0) >= 1) || null,
        'account updates and P&L to be requested again (and the old P&L cancelled)');
      const q = await s.ok('get_quote', { symbol: 'NVDA' });
      assert.ok(q.bid > 0 && q.ask >= q.bid, `quote after 1101: ${JSON.stringify(q)}`);
      const a = await s.ok('get_account_summary');
      assert.ok(a.net_liquidation > 0, JSON.stringify(a));
      // 1102 (data maintained) renews nothing.
      const acct1 = sent['6'];
      r.inject(['4', '2', '-1', '1102', 'Connectivity between IB and TWS has been restored - data maintained.', '']);
      await s.ok('get_status');
      await sleep(200);
      assert.equal(sent['6'], acct1, '1102 must not resubscribe');
      noViolations(s);
    } finally {
      await s.stop('stdin');
      r.close();
      await gw.stop();
    }
  }],
  ['a second client with the same client id gets a clear error', async () => {
    const gw = await startGateway(BIN);
    const a = await startServer(BIN, twsEnv(gw, { IBKR_CLIENT_ID: '9' }));
    await connected(a);
    const b = await startServer(BIN, twsEnv(gw, { IBKR_CLIENT_ID: '9' }));
    const st = await until(async () => {
      const x = await b.ok('get_status');
      return /already in use/.test(x.connection.last_error || '') ? x : null;
    }, 'the 326 error');
    assert.equal(st.connected, false);
    assert.match(st.connection.last_error, /client id 9.*IBKR_CLIENT_ID/);
    const q = await b.call('get_quote', { symbol: 'AAPL' });
    assert.equal(q.isError, true);
    // The first one is unaffected.
    await a.ok('get_quote', { symbol: 'AAPL' });
    await b.stop('stdin');
    await a.stop('stdin');
    await gw.stop();
  }],

  ['no TWS at all: the server starts, says why, and answers tools with a sentence', async () => {
    const port = 1; // nothing listens there
    const s = await startServer(BIN, twsEnv({ port }));
    const st = await until(async () => {
      const x = await s.ok('get_status');
      return x.connection.last_error ? x : null;
    }, 'a connection error');
    assert.equal(st.connected, false);
    assert.match(st.connection.last_error, /cannot connect to TWS/);
    const q = await s.call('get_account_summary');
    assert.equal(q.isError, true);
    assert.match(q.text, /TWS/);
    await sleep(10);
    noViolations(s);
    await s.stop('stdin');
  }],
];

runTests(tests, 90000);
