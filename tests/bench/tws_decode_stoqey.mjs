// The comparison for tws_decode.c: the same recorded stream of
// tickPrice/tickSize frames fed, in the same socket-sized chunks, to
// @stoqey/ib 1.6.10's own receive path: Socket.onData (length framing and
// the split on NUL) hands each frame's tokens to Decoder.enqueueMessage and
// runs Decoder.process, exactly as a connected client does after the
// handshake. Only the TCP socket and the Controller are replaced (by a
// stub that counts the emitted events). Prints one JSON line like
// tws_decode.c's; never judges a timing.
//
//   node tws_decode_stoqey.mjs NPM_DIR STREAM_FILE [CHUNK RUNS]
//
// NPM_DIR is where @stoqey/ib is installed (BUILD_DIR/npm, by
// tests/interop/setup.sh). When it is not there the script says so and
// prints {"skipped": "..."}, with exit status 0.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const [npmDir, file, chunkArg, runsArg] = process.argv.slice(2);
const chunk = Number(chunkArg || 65536), runs = Number(runsArg || 5);
const pkgDir = path.join(npmDir || '.', 'node_modules', '@stoqey', 'ib');
if (!fs.existsSync(path.join(pkgDir, 'package.json'))) {
  const why = `@stoqey/ib is not installed in ${path.join(npmDir || '.', 'node_modules')} (tests/interop/setup.sh installs it)`;
  console.error(`tws_decode_stoqey: skipped: ${why}`);
  console.log(JSON.stringify({ skipped: why }));
  process.exit(0);
}
const version = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;
const require = createRequire(path.join(pkgDir, 'package.json'));
const { Socket } = require('./dist/core/io/socket.js');
const { Decoder } = require('./dist/core/io/decoder.js');

const data = fs.readFileSync(file);

function pass() {
  const res = { frames: 0, prices: 0, price_sum: 0, size_sum: 0, events: 0, errors: 0, first_error: null };
  // The Controller's part in the receive path: queue the tokens, run the
  // decoder, take its events.
  const controller = {
    serverVersion: 178,
    emitEvent(name, ...args) {
      res.events++;
      if (name === 'tickPrice') {
        res.prices++;
        res.price_sum += args[2];
      }
    },
    emitError(msg) {
      res.errors++;
      if (!res.first_error) res.first_error = String(msg);
    },
    emitInfo() {},
    onMessage(tokens) {
      res.frames++;
      this.decoder.enqueueMessage(tokens);
    },
    onTokens(tokens) { this.decoder.enqueueTokens(tokens); },
    processIngressQueue() { this.decoder.process(); },
    resume() {},
  };
  controller.decoder = new Decoder(controller);
  const socket = new Socket(controller, { clientId: 0 });
  socket.neverReceived = false;   // the handshake is over
  socket._serverVersion = 178;
  for (let off = 0; off < data.length; off += chunk)
    socket.onData(data.subarray(off, Math.min(off + chunk, data.length)));
  return res;
}

pass();   // warm-up: let the JIT settle
const times = [];
let res;
for (let i = 0; i < runs; i++) {
  const t0 = process.hrtime.bigint();
  res = pass();
  times.push(Number(process.hrtime.bigint() - t0) / 1e9);
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({
  version, frames: res.frames, bytes: data.length, chunk, runs,
  best_s: times[0], median_s: times[runs >> 1],
  msgs_per_s: Math.round(res.frames / times[0]), ns_per_msg: (times[0] * 1e9) / res.frames,
  errors: res.errors, first_error: res.first_error, events: res.events,
  prices: res.prices, price_sum: Number(res.price_sum.toFixed(6)),
}));
