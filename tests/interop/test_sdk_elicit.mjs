// Human confirmation through the official TypeScript SDK client: a client
// that declares the elicitation capability and answers elicitation/create
// with accept, decline or cancel, against ibkr-mcp with IBKR_CONFIRM=elicit.
// And the SDK client without the capability: a refusal, nothing placed.
//
// Usage: node tests/interop/test_sdk_elicit.mjs <npm-dir> <path-to-ibkr-mcp>
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const [NPM_DIR, BIN] = process.argv.slice(2);
if (!NPM_DIR || !BIN || !fs.existsSync(BIN)) {
  console.error('usage: node test_sdk_elicit.mjs <npm-dir> <path-to-ibkr-mcp>');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(NPM_DIR), 'package.json'));
let Client, StdioClientTransport, ElicitRequestSchema;
try {
  ({ Client } = require('@modelcontextprotocol/sdk/client/index.js'));
  ({ StdioClientTransport } = require('@modelcontextprotocol/sdk/client/stdio.js'));
  ({ ElicitRequestSchema } = require('@modelcontextprotocol/sdk/types.js'));
} catch (e) {
  console.error(`cannot load @modelcontextprotocol/sdk from ${NPM_DIR}: ${e.message}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'ibkr-mcp-elicit-'));
const NO_POLICIES = fs.mkdtempSync(path.join(ROOT, 'nopolicies-'));
let passed = 0;
let failed = 0;
const children = [];

async function step(name, fn) {
  try {
    await Promise.race([fn(), new Promise((_, rej) =>
      setTimeout(() => rej(new Error('step timed out after 20 s')), 20000))]);
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

// A connected SDK client; answer(params) decides each elicitation.
async function connect(capabilities, answer) {
  const state = fs.mkdtempSync(path.join(ROOT, 'state-'));
  const transport = new StdioClientTransport({
    command: BIN,
    args: [],
    env: {
      PATH: process.env.PATH || '/usr/bin:/bin',
      HOME: state,
      IBKR_STATE_DIR: state,
      IBKR_TOOLS_DIR: path.join(REPO, 'lua', 'tools'),
      IBKR_POLICY_DIR: NO_POLICIES,
      IBKR_TRADING_ENABLED: 'true',
      IBKR_CONFIRM: 'elicit',
      IBKR_LOG_LEVEL: 'warn',
      ...(process.env.ASAN_OPTIONS ? { ASAN_OPTIONS: process.env.ASAN_OPTIONS } : {}),
      ...(process.env.UBSAN_OPTIONS ? { UBSAN_OPTIONS: process.env.UBSAN_OPTIONS } : {}),
    },
    stderr: 'pipe',
  });
  const client = new Client({ name: 'ibkr-mcp-elicit', version: '1.0.0' }, { capabilities });
  const asked = [];
  if (capabilities.elicitation) {
    client.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked.push(req.params);
      return answer(req.params);
    });
  }
  await client.connect(transport);
  if (transport._process) children.push(transport._process);
  const call = async (name, args) => client.callTool({ name, arguments: args });
  const ok = async (name, args) => {
    const r = await call(name, args);
    assert.ok(!r.isError, `${name}: ${r.content && r.content[0] && r.content[0].text}`);
    return r.structuredContent;
  };
  const place = async () => {
    const p = await ok('preview_order', { symbol: 'MSFT', action: 'BUY', quantity: 3 });
    assert.equal(p.confirmation_required, true);
    return call('place_order', { confirmation_token: p.confirmation_token });
  };
  return { client, asked, call, ok, place };
}

try {
  await step('accept: the SDK client confirms, the order is placed', async () => {
    const c = await connect({ elicitation: {} },
      () => ({ action: 'accept', content: { confirm: true } }));
    const r = await c.place();
    assert.equal(r.isError, undefined, JSON.stringify(r));
    assert.equal(r.structuredContent.symbol, 'MSFT');
    assert.equal(c.asked.length, 1);
    assert.match(c.asked[0].message, /Confirm order: BUY 3 MSFT/);
    assert.equal(c.asked[0].requestedSchema.properties.confirm.type, 'boolean');
    assert.equal((await c.ok('get_trades', {})).count, 1);
    await c.client.close();
  });

  await step('decline: nothing placed', async () => {
    const c = await connect({ elicitation: {} }, () => ({ action: 'decline' }));
    const r = await c.place();
    assert.equal(r.isError, true);
    assert.match(r.content[0].text, /declined/);
    assert.equal((await c.ok('get_trades', {})).count, 0);
    await c.client.close();
  });

  await step('cancel: nothing placed', async () => {
    const c = await connect({ elicitation: {} }, () => ({ action: 'cancel' }));
    const r = await c.place();
    assert.equal(r.isError, true);
    assert.match(r.content[0].text, /dismissed/);
    assert.equal((await c.ok('get_open_orders', {})).count, 0);
    await c.client.close();
  });

  await step('no elicitation capability: refused with a sentence', async () => {
    const c = await connect({}, null);
    const r = await c.place();
    assert.equal(r.isError, true);
    assert.match(r.content[0].text, /cannot ask one/);
    assert.equal((await c.ok('get_trades', {})).count, 0);
    await c.client.close();
  });
} finally {
  for (const ch of children) {
    if (ch.exitCode === null && ch.signalCode === null) {
      await new Promise((r) => { ch.once('exit', r); setTimeout(r, 3000); });
      if (ch.exitCode === null) try { ch.kill('SIGKILL'); } catch { /* gone */ }
    }
  }
  fs.rmSync(ROOT, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
