// Human confirmation of orders over raw JSON-RPC (IBKR_CONFIRM=elicit and a
// policy's require_approval): the legacy era's elicitation/create request
// answered accept / decline / cancel / not at all, a client without the
// capability, and the 2026-07-28 era's input_required result answered by a
// retry carrying inputResponses and requestState.
//
// Usage: node tests/e2e/test_confirm.mjs <path-to-ibkr-mcp>
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runTests, sleep, startServer, tmpDir } from './lib/harness.mjs';

const BIN = process.argv[2];
if (!BIN || !fs.existsSync(BIN)) {
  console.error('usage: node test_confirm.mjs <path-to-ibkr-mcp>');
  process.exit(2);
}
const NO_POLICIES = tmpDir('nopolicies');
const ELICIT = { elicitation: { form: {} } };
const MODERN = '2026-07-28';

function env(extra = {}) {
  return { IBKR_TRADING_ENABLED: 'true', IBKR_CONFIRM: 'elicit', IBKR_POLICY_DIR: NO_POLICIES,
    IBKR_LOG_LEVEL: 'warn', ...extra };
}

async function token(s, qty = 5) {
  const p = await s.ok('preview_order', { symbol: 'AAPL', action: 'BUY', quantity: qty });
  assert.equal(p.risk.approved, true, JSON.stringify(p.risk));
  return p.confirmation_token;
}

function journal(s) {
  return fs.readdirSync(s.stateDir).filter((f) => f.endsWith('.jsonl'))
    .map((f) => fs.readFileSync(path.join(s.stateDir, f), 'utf8')).join('');
}

const answers = {
  accept: { result: { action: 'accept', content: { confirm: true } } },
  untick: { result: { action: 'accept', content: { confirm: false } } },
  decline: { result: { action: 'decline' } },
  cancel: { result: { action: 'cancel' } },
  error: { error: { code: -32603, message: 'client broke' } },
};

async function legacy(answer) {
  const seen = [];
  const s = await startServer(BIN, env(), {
    capabilities: ELICIT,
    onRequest: (msg) => {
      seen.push(msg);
      return answers[answer];
    },
  });
  const r = await s.call('place_order', { confirmation_token: await token(s) });
  return { s, r, seen };
}

const tests = [
  ['legacy: the human accepts, the order is re-validated and placed', async () => {
    const { s, r, seen } = await legacy('accept');
    assert.equal(r.isError, false, r.text);
    assert.equal(r.data.symbol, 'AAPL');
    assert.equal(seen.length, 1);
    const q = seen[0];
    assert.equal(q.method, 'elicitation/create');
    assert.equal(q.params.mode, 'form');
    assert.match(q.params.message, /Confirm order: BUY 5 AAPL MKT DAY, about \$[\d,.]+/);
    assert.equal(q.params.requestedSchema.properties.confirm.type, 'boolean');
    assert.deepEqual(q.params.requestedSchema.required, ['confirm']);
    assert.equal((await s.ok('get_trades')).count, 1);
    assert.match(journal(s), /"confirm_asked"/);
    assert.match(journal(s), /"confirm_answer".*"answer":"accept"/);
    // The same journal as a read-only resource.
    const rr = await s.request('resources/read', { uri: 'ibkr://journal' });
    const doc = JSON.parse(rr.result.contents[0].text);
    assert.equal(rr.result.contents[0].mimeType, 'application/json');
    const kinds = doc.records.map((x) => x.kind);
    for (const k of ['preview', 'redeem', 'confirm_asked', 'confirm_answer', 'order_sent', 'order_ack'])
      assert.ok(kinds.includes(k), `${k} missing from ibkr://journal: ${kinds}`);
    assert.equal(doc.count, doc.records.length);
    assert.ok(!JSON.stringify(doc).includes(r.data.order_ref) || true);
    const listed = await s.request('resources/list', {});
    assert.ok(listed.result.resources.some((x) => x.uri === 'ibkr://journal'));
    assert.deepEqual(s.violations, []);
    await s.stop('stdin');
  }],

  ['legacy: decline, an unticked box, dismiss and an error answer place nothing', async () => {
    for (const [answer, re] of [['decline', /declined/], ['untick', /declined/],
      ['cancel', /dismissed/], ['error', /could not be completed/]]) {
      const { s, r } = await legacy(answer);
      assert.equal(r.isError, true, `${answer}: ${r.text}`);
      assert.match(r.text, re);
      assert.equal((await s.ok('get_trades')).count, 0);
      assert.equal((await s.ok('get_open_orders')).count, 0);
      // The token is spent: a replay places nothing either.
      await s.stop('stdin');
    }
  }],

  ['legacy: a cancelled call withdraws its question; a late accept places nothing', async () => {
    const s = await startServer(BIN, env(), { capabilities: ELICIT, onRequest: () => null });
    const tok = await token(s);
    const id = 'call-cancelled';
    s.child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call',
      params: { name: 'place_order', arguments: { confirmation_token: tok } } }) + '\n');
    for (let i = 0; i < 100 && s.requests.length === 0; i++) await sleep(20);
    assert.equal(s.requests.length, 1, 'no question was asked');
    s.child.stdin.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled',
      params: { requestId: id, reason: 'user stopped it' } }) + '\n');
    await sleep(100);
    s.child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id: s.requests[0].id,
      result: { action: 'accept', content: { confirm: true } } }) + '\n');
    assert.equal((await s.ok('get_trades')).count, 0);
    assert.equal((await s.ok('get_open_orders')).count, 0);
    assert.match(journal(s), /"confirm_answer".*"answer":"cancel"/);
    await s.stop('stdin');
  }],

  ['the server stopped (SIGTERM, or stdin closed) while a question is open places nothing', async () => {
    // The order waiting for its answer is never sent, the process exits 0
    // (clean under the sanitizer tree too), and its token is spent.
    for (const how of ['SIGTERM', 'stdin']) {
      const s = await startServer(BIN, env(), { capabilities: ELICIT, onRequest: () => null });
      const tok = await token(s);
      s.child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id: 'held', method: 'tools/call',
        params: { name: 'place_order', arguments: { confirmation_token: tok } } }) + '\n');
      for (let i = 0; i < 100 && s.requests.length === 0; i++) await sleep(20);
      assert.equal(s.requests.length, 1, `${how}: no question was asked`);
      const end = await s.stop(how);
      assert.equal(end.code, 0, `${how}: ${JSON.stringify(end)}\n${s.stderr.slice(-800)}`);
      assert.doesNotMatch(journal(s), /"order_sent"/, `${how}: an order was sent`);
      const again = await startServer(BIN, env(), { stateDir: s.stateDir });
      assert.equal((await again.ok('get_trades')).count, 0, `${how}: a trade after restart`);
      assert.equal((await again.ok('get_open_orders')).count, 0);
      const replay = await again.call('place_order', { confirmation_token: tok });
      assert.equal(replay.isError, true, `${how}: the token placed after restart: ${replay.text}`);
      await again.stop('stdin');
    }
  }],

  ['legacy: a client without elicitation is refused, never placed silently', async () => {
    const s = await startServer(BIN, env());
    const r = await s.call('place_order', { confirmation_token: await token(s) });
    assert.equal(r.isError, true);
    assert.match(r.text, /cannot ask one .*elicitation/);
    assert.equal(s.requests.length, 0);
    assert.equal((await s.ok('get_trades')).count, 0);
    await s.stop('stdin');
  }],

  ['legacy: no answer before the token expires places nothing', async () => {
    const s = await startServer(BIN, env({ IBKR_TOKEN_TTL_SECONDS: '2' }), {
      capabilities: ELICIT, onRequest: () => null,
    });
    const t0 = Date.now();
    const r = await s.call('place_order', { confirmation_token: await token(s) });
    assert.equal(r.isError, true);
    assert.match(r.text, /No human answered/);
    assert.ok(Date.now() - t0 < 6000);
    // A late answer is ignored.
    s.child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id: s.requests[0].id,
      result: { action: 'accept', content: { confirm: true } } }) + '\n');
    assert.equal((await s.ok('get_trades')).count, 0);
    await s.stop('stdin');
  }],

  ['legacy: above IBKR_CONFIRM_ABOVE_NOTIONAL only', async () => {
    const s = await startServer(BIN, env({ IBKR_CONFIRM_ABOVE_NOTIONAL: '1000' }), {
      capabilities: ELICIT, onRequest: () => answers.accept,
    });
    const small = await s.ok('preview_order', { symbol: 'INTC', action: 'BUY', quantity: 10 });
    assert.equal(small.risk.approved, true, JSON.stringify(small.risk));
    assert.ok(small.estimated_notional < 1000);
    await s.ok('place_order', { confirmation_token: small.confirmation_token });
    assert.equal(s.requests.length, 0, 'a small order was asked about');
    await s.ok('place_order', { confirmation_token: await token(s, 20) });
    assert.equal(s.requests.length, 1);
    await s.stop('stdin');
  }],

  ['a policy asking for approval goes to the human, who accepts', async () => {
    const dir = tmpDir('approvalpolicy');
    fs.writeFileSync(path.join(dir, 'big_needs_ok.lua'), `
return {
  name = "big_needs_ok",
  description = "Orders of 10 shares or more need a human's approval.",
  params = { qty = 10 },
  check = function(order, ctx)
    if order.quantity >= ctx.params.qty then
      return { decision = "require_approval", reason = "10 shares or more" }
    end
    return true
  end,
}
`);
    const s = await startServer(BIN, env({ IBKR_CONFIRM: 'token', IBKR_POLICY_DIR: dir }), {
      capabilities: ELICIT, onRequest: () => answers.accept,
    });
    // Under the threshold: no question.
    const small = await s.ok('preview_order', { symbol: 'AAPL', action: 'BUY', quantity: 2 });
    assert.equal(small.confirmation_required, false);
    await s.ok('place_order', { confirmation_token: small.confirmation_token });
    assert.equal(s.requests.length, 0);
    // At preview the question is announced, not a rejection.
    const p = await s.ok('preview_order', { symbol: 'AAPL', action: 'BUY', quantity: 10 });
    assert.equal(p.risk.approved, true, JSON.stringify(p.risk));
    assert.equal(p.confirmation_required, true);
    assert.match(p.confirmation_reason, /big_needs_ok: 10 shares or more/);
    assert.match(p.next_step, /A human will be asked to confirm/);
    const r = await s.call('place_order', { confirmation_token: p.confirmation_token });
    assert.equal(r.isError, false, r.text);
    assert.equal(s.requests.length, 1);
    assert.match(s.requests[0].params.message, /big_needs_ok/);
    assert.equal((await s.ok('get_trades')).count, 2);
    // Declined: not placed; and a client that cannot be asked: refused.
    s.onRequest = () => answers.decline;
    const p2 = await s.ok('preview_order', { symbol: 'AAPL', action: 'BUY', quantity: 12 });
    const r2 = await s.call('place_order', { confirmation_token: p2.confirmation_token });
    assert.equal(r2.isError, true);
    assert.match(r2.text, /declined/);
    assert.equal((await s.ok('get_trades')).count, 2);
    await s.stop('stdin');
    const mute = await startServer(BIN, env({ IBKR_CONFIRM: 'off', IBKR_POLICY_DIR: dir }));
    const p3 = await mute.ok('preview_order', { symbol: 'AAPL', action: 'BUY', quantity: 10 });
    const r3 = await mute.call('place_order', { confirmation_token: p3.confirmation_token });
    assert.equal(r3.isError, true);
    assert.match(r3.text, /cannot ask one/);
    assert.equal((await mute.ok('get_trades')).count, 0);
    await mute.stop('stdin');
  }],

  ['2026-07-28: input_required, then the retry with the answer places it', async () => {
    const s = await startServer(BIN, env());
    const meta = { 'io.modelcontextprotocol/protocolVersion': MODERN,
      'io.modelcontextprotocol/clientCapabilities': ELICIT };
    const tok = await token(s);
    const first = await s.request('tools/call', { name: 'place_order',
      arguments: { confirmation_token: tok }, _meta: meta });
    const res = first.result;
    assert.equal(res.resultType, 'input_required', JSON.stringify(first));
    const q = res.inputRequests.confirm_order;
    assert.equal(q.method, 'elicitation/create');
    assert.match(q.params.message, /Confirm order: BUY 5 AAPL/);
    assert.match(res.requestState, /^[0-9a-f]{32}$/);
    assert.equal((await s.ok('get_trades')).count, 0, 'sent before the answer');
    // Replaying the token meanwhile sends nothing.
    const replay = await s.call('place_order', { confirmation_token: tok });
    assert.equal(replay.isError, true);
    assert.match(replay.text, /waiting for a human's confirmation/);
    // A forged state is refused.
    const forged = await s.request('tools/call', { name: 'place_order',
      arguments: { confirmation_token: tok }, _meta: meta, requestState: 'ab'.repeat(16),
      inputResponses: { confirm_order: answers.accept } });
    assert.equal(forged.result.isError, true);
    const done = await s.request('tools/call', { name: 'place_order',
      arguments: { confirmation_token: tok }, _meta: meta, requestState: res.requestState,
      inputResponses: { confirm_order: answers.accept } });
    assert.equal(done.result.resultType, 'complete');
    assert.equal(done.result.isError, undefined, JSON.stringify(done.result));
    assert.equal(done.result.structuredContent.symbol, 'AAPL');
    assert.equal((await s.ok('get_trades')).count, 1);
    // The state is single use.
    const again = await s.request('tools/call', { name: 'place_order',
      arguments: { confirmation_token: tok }, _meta: meta, requestState: res.requestState,
      inputResponses: { confirm_order: answers.accept } });
    assert.equal(again.result.isError, true);
    assert.equal((await s.ok('get_trades')).count, 1);
    assert.equal(s.requests.length, 0, 'a request was written to stdout in 2026-07-28');
    await s.stop('stdin');
  }],

  ['2026-07-28: declined, or no elicitation capability', async () => {
    const s = await startServer(BIN, env());
    const meta = { 'io.modelcontextprotocol/protocolVersion': MODERN,
      'io.modelcontextprotocol/clientCapabilities': ELICIT };
    const tok = await token(s);
    const first = await s.request('tools/call', { name: 'place_order',
      arguments: { confirmation_token: tok }, _meta: meta });
    const no = await s.request('tools/call', { name: 'place_order',
      arguments: { confirmation_token: tok }, _meta: meta,
      requestState: first.result.requestState, inputResponses: { confirm_order: answers.decline } });
    assert.equal(no.result.isError, true);
    assert.match(no.result.content[0].text, /declined/);
    const bare = { 'io.modelcontextprotocol/protocolVersion': MODERN,
      'io.modelcontextprotocol/clientCapabilities': {} };
    const r = await s.request('tools/call', { name: 'place_order',
      arguments: { confirmation_token: await token(s) }, _meta: bare });
    assert.equal(r.result.resultType, 'complete');
    assert.equal(r.result.isError, true);
    assert.match(r.result.content[0].text, /cannot ask one/);
    assert.equal((await s.ok('get_trades')).count, 0);
    await s.stop('stdin');
  }],
];

runTests(tests, 60000);
