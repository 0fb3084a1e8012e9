// Turns the figures tests/bench/run.sh collected into the printed sections
// and the Markdown summary. Node built-ins only; never asserts a timing.
//
//   node report.mjs DIR startup|roundtrip|memory|order|tws|summary [SUMMARY_MD]
//
// DIR holds startup-*.txt (milliseconds, a line per run, from spawntime),
// quote-*.json and order-*.json (from driver.mjs), tws-ibkr.json (from
// tws_decode.c), tws-stoqey.json (from tws_decode_stoqey.mjs, possibly
// {"skipped": why}) and machine.json.
import fs from 'node:fs';
import path from 'node:path';

const [dir, section, mdOut] = process.argv.slice(2);
const rd = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
const has = (f) => fs.existsSync(path.join(dir, f));
const ms = (f) => fs.readFileSync(path.join(dir, f), 'utf8').trim().split('\n').map(Number);

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const f1 = (x) => x.toFixed(1), f2 = (x) => x.toFixed(2);
const k = (x) => Math.round(x).toLocaleString('en-US');
const mib = (kib) => (kib / 1024).toFixed(1);
const pad = (s, n) => String(s).padEnd(n);
const lpad = (s, n) => String(s).padStart(n);
const errs = (e) => (e && (e.rpc || e.tool) ? `${e.rpc} JSON-RPC errors, ${e.tool} isError` : 'no errors');

// quote-NAME-R.json, one per round (driver.mjs): the first round's object
// with every throughput figure replaced by its median over the rounds, and
// the range kept as NAME_range ([min, max]).
const RATE_KEYS = ['win_cps', 'seq_cps', 'burst_cps', 'seq_us_per_call'];
function quote(name) {
  const files = fs.readdirSync(dir).filter((f) => new RegExp(`^quote-${name}-\\d+\\.json$`).test(f)).sort();
  const runs = files.map((f) => rd(f));
  const out = { ...runs[0], rounds: runs.length };
  for (const key of RATE_KEYS) {
    const xs = runs.map((r) => r[key]).filter((x) => typeof x === 'number');
    if (!xs.length) continue;
    out[key] = median(xs);
    out[`${key}_range`] = [Math.min(...xs), Math.max(...xs)];
  }
  return out;
}

function startupStats() {
  const out = {};
  for (const name of ['ibkr', 'ibkr_nopol', 'echo', 'sdk']) {
    const f = `startup-${name}.txt`;
    if (!has(f)) continue;
    const xs = ms(f);
    out[name] = { n: xs.length, median: median(xs), p90: pct(xs, 90), min: Math.min(...xs) };
  }
  return out;
}

function printStartup() {
  const s = startupStats();
  const label = { ibkr: 'ibkr-mcp (shipped policies)', ibkr_nopol: 'ibkr-mcp (no policies)',
    echo: 'C stdio echo', sdk: 'TypeScript SDK server (node)' };
  console.log(`  ${pad('server', 30)}${lpad('median ms', 11)}${lpad('p90 ms', 10)}${lpad('min ms', 10)}  runs`);
  for (const [n, v] of Object.entries(s))
    console.log(`  ${pad(label[n], 30)}${lpad(f2(v.median), 11)}${lpad(f2(v.p90), 10)}${lpad(f2(v.min), 10)}  ${v.n}`);
  console.log(`  ibkr-mcp / echo: ${f2(s.ibkr.median / s.echo.median)}x the floor ` +
    `(ibkr-mcp's own start-up, median minus echo's: ${f2(s.ibkr.median - s.echo.median)} ms; ` +
    `with no policies to load: ${f2(s.ibkr_nopol.median - s.echo.median)} ms)`);
  console.log(`  SDK server / ibkr-mcp: ${f1(s.sdk.median / s.ibkr.median)}x slower to answer initialize`);
}

function printRoundTrip() {
  const a = quote('ibkr'), e = quote('echo'), t = quote('sdk');
  const rows = [['ibkr-mcp', a], ['C stdio echo (floor)', e], ['TypeScript SDK server', t]];
  console.log(`  ${pad('server', 24)}${lpad('sequential', 12)}${lpad(`<=${a.window} in flight`, 16)}${lpad('all at once', 14)}  (calls/s)`);
  for (const [n, r] of rows)
    console.log(`  ${pad(n, 24)}${lpad(k(r.seq_cps), 12)}${lpad(k(r.win_cps), 16)}${lpad(r.burst_cps ? k(r.burst_cps) : '-', 14)}`);
  if (a.rounds > 1)
    for (const [n, r] of rows)
      console.log(`  ${pad(n, 24)} range over ${r.rounds} rounds: sequential ${k(r.seq_cps_range[0])}-${k(r.seq_cps_range[1])}, ` +
        `windowed ${k(r.win_cps_range[0])}-${k(r.win_cps_range[1])}, all at once ${k(r.burst_cps_range[0])}-${k(r.burst_cps_range[1])}`);
  for (const [n, r] of rows)
    console.log(`  ${pad(n, 24)} N: sequential ${k(r.seq_n)} (${errs(r.seq_errors)}), windowed ${k(r.win_n)} ` +
      `(${errs(r.win_errors)}), all at once ${k(r.burst_n)} (${errs(r.burst_errors)})`);
  console.log(`  pipelined (<=${a.window} in flight), time per call: ibkr-mcp ${f2(1e6 / a.win_cps)} us, ` +
    `echo ${f2(1e6 / e.win_cps)} us (the driver's floor), SDK ${f2(1e6 / t.win_cps)} us`);
  console.log(`  sequential: ${f2(a.seq_us_per_call)} us/call for ibkr-mcp, ${f2(e.seq_us_per_call)} for the echo, ` +
    `${f2(t.seq_us_per_call)} for the SDK`);
  console.log(`  echo / ibkr-mcp (target <= 2x): sequential ${f2(e.seq_cps / a.seq_cps)}x, windowed ${f2(e.win_cps / a.win_cps)}x`);
  console.log(`  ibkr-mcp / SDK (target >= 10x): sequential ${f2(a.seq_cps / t.seq_cps)}x, windowed ${f2(a.win_cps / t.win_cps)}x`);
  // The driver's own cost caps every ratio to the SDK: no server, not even
  // the echo, answers faster than the driver can ask.
  console.log(`  the driver's ceiling, echo / SDK: sequential ${f2(e.seq_cps / t.seq_cps)}x, windowed ${f2(e.win_cps / t.win_cps)}x ` +
    `(a ratio to the SDK above these cannot be measured with this driver)`);
  if (a.burst_errors && a.burst_errors.rpc)
    console.log(`  note: all at once, ibkr-mcp answered ${k(a.burst_errors.rpc)} of ${k(a.burst_n)} with: ` +
      `${a.burst_errors.first}`);
}

// cap-NAME-R.json: two lines from capacity.c per round, <=128 in flight
// then all at once; each figure is the median over the rounds, with its
// range.
function capStats() {
  const files = (name) => fs.readdirSync(dir).filter((f) => new RegExp(`^cap-${name}-\\d+\\.json$`).test(f)).sort();
  if (!files('ibkr').length) return null;
  const lines = (f) => fs.readFileSync(path.join(dir, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const one = (name) => {
    const rounds = files(name).map(lines);
    return [0, 1].map((i) => {
      const xs = rounds.map((r) => r[i]);
      const cps = xs.map((x) => x.cps);
      const us = xs.map((x) => x.us_per_call);
      return { ...xs[0], cps: median(cps), us_per_call: median(us), range: [Math.min(...cps), Math.max(...cps)],
        rounds: xs.length, rpc_errors: xs.reduce((n, x) => n + x.rpc_errors, 0),
        tool_errors: xs.reduce((n, x) => n + x.tool_errors, 0) };
    });
  };
  return { a: one('ibkr'), e: one('echo'), t: one('sdk') };
}

function printCapacity() {
  const c = capStats();
  const rows = [['ibkr-mcp', c.a], ['C stdio echo', c.e], ['TypeScript SDK server', c.t]];
  console.log(`  ${pad('server', 24)}${lpad('<=128 in flight', 17)}${lpad('all at once', 14)}  (calls/s)   N, errors`);
  for (const [n, r] of rows)
    console.log(`  ${pad(n, 24)}${lpad(k(r[0].cps), 17)}${lpad(k(r[1].cps), 14)}   ${k(r[0].n)}, ` +
      `${r[0].rpc_errors + r[1].rpc_errors} JSON-RPC errors, ${r[0].tool_errors + r[1].tool_errors} isError`);
  for (const [n, r] of rows)
    console.log(`  ${pad(n, 24)} range over ${r[0].rounds} rounds: ${k(r[0].range[0])}-${k(r[0].range[1])}, ` +
      `all at once ${k(r[1].range[0])}-${k(r[1].range[1])}`);
  console.log(`  ibkr-mcp / SDK (target >= 10x): ${f2(c.a[0].cps / c.t[0].cps)}x, all at once ${f2(c.a[1].cps / c.t[1].cps)}x; ` +
    `echo / ibkr-mcp: ${f2(c.e[0].cps / c.a[0].cps)}x, all at once ${f2(c.e[1].cps / c.a[1].cps)}x`);
  console.log(`  server time per call, <=128 in flight: ibkr-mcp ${f2(c.a[0].us_per_call)} us, echo ${f2(c.e[0].us_per_call)} us, ` +
    `SDK ${f2(c.t[0].us_per_call)} us`);
}

function printMemory() {
  const a = quote('ibkr'), t = quote('sdk');
  for (const [n, r] of [['ibkr-mcp', a], ['TypeScript SDK server', t]])
    console.log(`  ${pad(n, 24)} VmRSS after initialize ${mib(r.rss_start_kib)} MiB; after ${k(r.win_n)} calls ` +
      `${mib(r.rss_after_win_kib)} MiB; after ${k(r.win_n + 1000 + r.seq_n)} ${mib(r.rss_after_seq_kib)} MiB; ` +
      `after the ${k(r.burst_n)}-call burst ${mib(r.rss_after_burst_kib)} MiB (peak ${mib(r.hwm_kib)} MiB)`);
  console.log(`  SDK / ibkr-mcp after ${k(a.win_n)} calls: ${f1(t.rss_after_win_kib / a.rss_after_win_kib)}x`);
}

function printOrder() {
  const p = rd('order-policies.json'), n = rd('order-nopolicies.json');
  for (const [l, r] of [['shipped policies', p], ['no policies (empty IBKR_POLICY_DIR)', n]]) {
    console.log(`  ${pad(l, 38)} ${k(r.pairs_per_s)} preview+place pairs/s = ${k(2 * r.pairs_per_s)} calls/s ` +
      `(${f1(r.us_per_pair)} us/pair), ` +
      `${r.done}/${r.pairs} pairs; by quarter: ${r.quarters_pairs_per_s.map(k).join(', ')}`);
    if (r.refused) console.log(`    stopped at pair ${r.refused.pair} (${r.refused.stage}): ${r.refused.why}`);
    const qs = r.quarters_pairs_per_s;
    if (qs.length === 4 && qs[3] < 0.8 * qs[0])
      console.log(`    the rate falls ${f1(qs[0] / qs[3])}x from the first quarter to the last: the cost of a pair ` +
        `grows with the orders, fills and tokens of the day (the clock is frozen, so nothing ages out)`);
  }
  console.log(`  cost of the shipped policies: ${f2(n.pairs_per_s / p.pairs_per_s)}x the time per pair ` +
    `(+${f1(p.us_per_pair - n.us_per_pair)} us per pair, i.e. per two policy evaluations of every file)`);
}

// The TWS decode figures, or null when section 5 did not run.
function twsStats() {
  if (!has('tws-ibkr.json')) return null;
  const c = rd('tws-ibkr.json'), s = has('tws-stoqey.json') ? rd('tws-stoqey.json') : { skipped: 'not run' };
  return { c, s, ratio: s.skipped ? null : c.msgs_per_s / s.msgs_per_s };
}

function printTws() {
  const t = twsStats();
  if (!t) return;
  const { c, s } = t;
  console.log(`  ${pad('decoder', 30)}${lpad('msgs/s', 12)}${lpad('ns/msg', 10)}${lpad('best s', 10)}${lpad('median s', 10)}`);
  console.log(`  ${pad('ibkr-mcp im_tws_reader (C)', 30)}${lpad(k(c.msgs_per_s), 12)}${lpad(f1(c.ns_per_msg), 10)}` +
    `${lpad(c.best_s.toFixed(3), 10)}${lpad(c.median_s.toFixed(3), 10)}`);
  if (s.skipped) {
    console.log(`  @stoqey/ib: skipped: ${s.skipped}`);
    return;
  }
  console.log(`  ${pad(`@stoqey/ib ${s.version} (node)`, 30)}${lpad(k(s.msgs_per_s), 12)}${lpad(f1(s.ns_per_msg), 10)}` +
    `${lpad(s.best_s.toFixed(3), 10)}${lpad(s.median_s.toFixed(3), 10)}`);
  console.log(`  ${k(c.frames)} frames, ${(c.bytes / 1048576).toFixed(1)} MiB, ${k(c.chunk)}-byte reads, best of ${c.runs}; ` +
    `ibkr-mcp / @stoqey/ib: ${f1(t.ratio)}x`);
  const same = c.frames === s.frames && c.prices === s.prices && Math.abs(c.price_sum - s.price_sum) < 1e-3;
  console.log(`  both decoded ${k(c.prices)} tickPrice prices summing to ${c.price_sum.toFixed(2)}: ` +
    `${same ? 'the same values' : `MISMATCH (@stoqey/ib: ${k(s.frames)} frames, ${k(s.prices)} prices, sum ${s.price_sum})`}; ` +
    `errors: ${c.errors} / ${s.errors}${s.first_error ? ` (${s.first_error})` : ''}`);
}

function summary() {
  const m = rd('machine.json'), s = startupStats();
  const a = quote('ibkr'), e = quote('echo'), t = quote('sdk');
  const p = rd('order-policies.json'), n = rd('order-nopolicies.json');
  const yes = (b) => (b ? 'yes' : 'no');
  const rows = [
    ['start-up, spawn → initialize (median of ' + s.ibkr.n + ')', `${f2(s.ibkr.median)} ms`, `echo ${f2(s.echo.median)} ms`,
      `${f2(s.ibkr.median / s.echo.median)}×`, '< 5 ms', yes(s.ibkr.median < 5)],
    ['start-up p90', `${f2(s.ibkr.p90)} ms`, `echo ${f2(s.echo.p90)} ms`, `${f2(s.ibkr.p90 / s.echo.p90)}×`, '—', '—'],
    ['start-up vs SDK server (median)', `${f2(s.ibkr.median)} ms`, `SDK ${f1(s.sdk.median)} ms`,
      `${f1(s.sdk.median / s.ibkr.median)}× faster`, '—', '—'],
    ['get_quote sequential (1 in flight)', `${k(a.seq_cps)}/s`, `echo ${k(e.seq_cps)}/s`,
      `echo ${f2(e.seq_cps / a.seq_cps)}×`, 'within 2× of echo', yes(e.seq_cps / a.seq_cps <= 2)],
    [`get_quote pipelined (≤${a.window} in flight)`, `${k(a.win_cps)}/s`, `echo ${k(e.win_cps)}/s`,
      `echo ${f2(e.win_cps / a.win_cps)}×`, 'within 2× of echo', yes(e.win_cps / a.win_cps <= 2)],
    [`get_quote pipelined (all ${k(a.burst_n)} at once)`, `${k(a.burst_cps)}/s, ${k(a.burst_n - a.burst_errors.rpc - a.burst_errors.tool)} results`,
      `echo ${k(e.burst_cps)}/s`, `echo ${f2(e.burst_cps / a.burst_cps)}×, ${(100 * a.burst_errors.rpc / a.burst_n).toFixed(1)}% busy errors`,
      'within 2× of echo', yes(e.burst_cps / a.burst_cps <= 2 && !a.burst_errors.rpc && !a.burst_errors.tool)],
    ['get_quote sequential vs SDK', `${k(a.seq_cps)}/s`, `SDK ${k(t.seq_cps)}/s`,
      `${f2(a.seq_cps / t.seq_cps)}×`, '≥ 10×', yes(a.seq_cps / t.seq_cps >= 10)],
    [`get_quote pipelined (≤${a.window} in flight) vs SDK`, `${k(a.win_cps)}/s`, `SDK ${k(t.win_cps)}/s`,
      `${f2(a.win_cps / t.win_cps)}×`, '≥ 10×', yes(a.win_cps / t.win_cps >= 10)],
    ['the driver\'s ceiling: echo vs SDK (sequential; ≤' + a.window + ' in flight)', '—',
      `echo ${k(e.seq_cps)}/s; ${k(e.win_cps)}/s`,
      `${f2(e.seq_cps / t.seq_cps)}×; ${f2(e.win_cps / t.win_cps)}×`, '—', '—'],
    ...(() => {
      const c = capStats();
      if (!c) return [];
      return [
        ['capacity, C driver (≤128 in flight) vs SDK', `${k(c.a[0].cps)}/s`, `SDK ${k(c.t[0].cps)}/s`,
          `${f2(c.a[0].cps / c.t[0].cps)}×`, '≥ 10×', yes(c.a[0].cps / c.t[0].cps >= 10)],
        ['capacity, C driver (all at once) vs SDK', `${k(c.a[1].cps)}/s`, `SDK ${k(c.t[1].cps)}/s`,
          `${f2(c.a[1].cps / c.t[1].cps)}×`, '≥ 10×', yes(c.a[1].cps / c.t[1].cps >= 10)],
        ['capacity, C driver (≤128 in flight) vs echo', `${k(c.a[0].cps)}/s`, `echo ${k(c.e[0].cps)}/s`,
          `echo ${f2(c.e[0].cps / c.a[0].cps)}×`, 'within 2× of echo', yes(c.e[0].cps / c.a[0].cps <= 2)],
      ];
    })(),
    ['VmRSS after initialize', `${mib(a.rss_start_kib)} MiB`, `SDK ${mib(t.rss_start_kib)} MiB`,
      `${f1(t.rss_start_kib / a.rss_start_kib)}× smaller`, '—', '—'],
    [`VmRSS after ${k(a.win_n)} get_quote calls`, `${mib(a.rss_after_win_kib)} MiB`, `SDK ${mib(t.rss_after_win_kib)} MiB`,
      `${f1(t.rss_after_win_kib / a.rss_after_win_kib)}× smaller`, '< 8 MiB', yes(a.rss_after_win_kib < 8 * 1024)],
    [`VmRSS peak, after the ${k(a.burst_n)}-call burst`, `${mib(a.hwm_kib)} MiB`, `SDK ${mib(t.hwm_kib)} MiB (${k(t.burst_n)} calls)`,
      '—', '< 8 MiB', yes(a.hwm_kib < 8 * 1024)],
    ['preview + place round trip, shipped policies', `${k(p.pairs_per_s)} pairs/s (${f1(p.us_per_pair)} µs/pair)`,
      `no policies ${k(n.pairs_per_s)} pairs/s`,
      `policies cost ${f2(n.pairs_per_s / p.pairs_per_s)}×`, '—', '—'],
  ];
  const tws = twsStats();
  if (tws)
    rows.push([`TWS decode, tickPrice/tickSize (${k(tws.c.frames)} frames, 64 KiB reads)`,
      `${k(tws.c.msgs_per_s)} msgs/s (${f1(tws.c.ns_per_msg)} ns/msg)`,
      tws.s.skipped ? '@stoqey/ib: skipped' : `@stoqey/ib ${tws.s.version} ${k(tws.s.msgs_per_s)} msgs/s`,
      tws.ratio ? `${f1(tws.ratio)}×` : '—', '—', '—']);
  const lines = [
    '| metric | ibkr-mcp | baseline | ratio | target | met? |',
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
    `Machine: ${m.nproc} CPUs, ${m.cpu}, Linux ${m.kernel}; Node ${m.node}, @modelcontextprotocol/sdk ${m.sdk}; ` +
      `ibkr-mcp ${m.build_type} build. One run of \`make bench\`, ${m.date}.`,
    (a.seq_n === t.seq_n ? `Sequential N: ${k(a.seq_n)} for all three; ` : `Sequential N: ibkr-mcp and echo ${k(a.seq_n)}, SDK ${k(t.seq_n)}; `) +
      `pipelined N: ${k(a.win_n)} for all three (at most ${a.window} in flight); ` +
      `all-at-once N: ibkr-mcp and echo ${k(a.burst_n)}, SDK ${k(t.burst_n)}; ` +
      `the Node-driver rates are medians of ${a.rounds} rounds` +
      (a.rounds > 1 ? ` (ibkr-mcp pipelined ${k(a.win_cps_range[0])}-${k(a.win_cps_range[1])}/s, ` +
        `echo ${k(e.win_cps_range[0])}-${k(e.win_cps_range[1])}/s)` : '') +
      `. Order path: ${k(p.pairs)} pairs each.`,
  ];
  const md = lines.join('\n') + '\n';
  console.log(md);
  if (mdOut) fs.writeFileSync(mdOut, md);
}

({ startup: printStartup, roundtrip: printRoundTrip, capacity: printCapacity, memory: printMemory,
  order: printOrder, tws: printTws, summary })[section]();
