#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build tree for a bounded time:
#   bash tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
# Each target starts from its committed seeds (tests/fuzz/corpus/<name>,
# never written to) and a working corpus in BUILD_DIR/fuzz-corpus/<name>,
# where new inputs go; crash-*, timeout-*, leak-* and oom-* files go to
# BUILD_DIR/fuzz-artifacts/. Every committed seed (crash regressions
# included) runs first. fuzz_policy gets lua.dict, fuzz_tws tws.dict, the
# others json.dict.
# Prints one summary line per target; exits non-zero when any target found
# a crash or failed to run.
set -u

build=${1:?usage: run.sh BUILD_DIR SECONDS [TARGET...]}
seconds=${2:?usage: run.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
targets=${*:-framer mcp schema policy tws}
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"

failed=0
summary=""
for t in $targets; do
  bin="$build/fuzz_$t"
  seeds="$here/corpus/$t"
  work="$build/fuzz-corpus/$t"
  log="$build/fuzz-$t.log"
  dict=$here/json.dict
  [ "$t" = policy ] && dict=$here/lua.dict
  [ "$t" = tws ] && dict=$here/tws.dict
  mkdir -p "$work"
  if [ ! -x "$bin" ]; then
    echo "fuzz: $bin is missing (build with -DIM_FUZZ=ON)" >&2
    failed=1
    continue
  fi
  # -timeout: one input taking 10 s is a hang; -max_len caps generated
  # inputs (seeds may be longer). ASan and UBSan stop at the first report.
  ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}" \
    "$bin" -max_total_time="$seconds" -timeout=10 -max_len=8192 -print_final_stats=1 \
      -dict="$dict" -artifact_prefix="$artifacts/$t-" "$work" "$seeds" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*$')
  line=$(printf 'fuzz_%-7s %4ss  %9s execs  %6s exec/s  cov: %-5s ft: %-6s' "$t" "$seconds" \
    "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}")
  if [ "$rc" -ne 0 ]; then
    failed=1
    line="$line  FAILED (exit $rc; see $log)"
    echo "fuzz: fuzz_$t failed; the end of $log:" >&2
    tail -n 40 "$log" >&2
  fi
  summary="$summary$line"$'\n'
done
printf '%s' "$summary"
ls "$artifacts" 2>/dev/null | sed 's/^/fuzz: artifact: /'
exit "$failed"
