// The comparison server for the benchmarks: what a user would otherwise
// write with the official MCP TypeScript SDK (@modelcontextprotocol/sdk, the
// version pinned in tests/interop/package.json). An McpServer over stdio with
// one tool, get_quote, that has the same input and output schema as
// lua/tools/get_quote.lua and returns the same quote ibkr-mcp's frozen
// simulator gives for NVDA (structuredContent plus the same JSON as text).
// The SDK validates the arguments and the structuredContent with zod on
// every call, as ibkr-mcp validates against its schemas.
//
// Usage: node tests/bench/sdk_server.mjs <npm-dir>
import path from 'node:path';
import { createRequire } from 'node:module';

const NPM_DIR = process.argv[2];
if (!NPM_DIR) {
  console.error('usage: node sdk_server.mjs <npm-dir>');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(NPM_DIR), 'package.json'));
const { McpServer } = require('@modelcontextprotocol/sdk/server/mcp.js');
const { StdioServerTransport } = require('@modelcontextprotocol/sdk/server/stdio.js');
const { z } = require('zod');

// The simulator's frozen NVDA touch (IBKR_SIM_FREEZE=true, default start).
const BOOK = { NVDA: { bid: 167.93, ask: 167.97, last: 167.95, size: 500 } };
const TIME = '2025-06-10T14:00:00.000Z';

const server = new McpServer({ name: 'sdk-bench', version: '0.1.0' });
server.registerTool('get_quote', {
  title: 'Quote',
  description: 'Bid, ask, last and mid price (with sizes and the quote time) for one US stock symbol.',
  inputSchema: { symbol: z.string().regex(/^[A-Za-z][A-Za-z0-9.]{0,11}$/) },
  outputSchema: {
    symbol: z.string(), bid: z.number(), ask: z.number(), last: z.number(), mid: z.number(),
    bid_size: z.number().optional(), ask_size: z.number().optional(), time: z.string(),
    delayed: z.boolean().optional(),
  },
  annotations: { readOnlyHint: true, openWorldHint: true },
}, async ({ symbol }) => {
  const sym = symbol.toUpperCase();
  const b = BOOK[sym];
  if (!b) return { isError: true, content: [{ type: 'text', text: `Unknown symbol ${sym}` }] };
  const q = {
    ask: b.ask, ask_size: b.size, bid: b.bid, bid_size: b.size, delayed: false,
    last: b.last, mid: Math.round((b.bid + b.ask) * 50) / 100, symbol: sym, time: TIME,
  };
  return { content: [{ type: 'text', text: JSON.stringify(q) }], structuredContent: q };
});
await server.connect(new StdioServerTransport());
