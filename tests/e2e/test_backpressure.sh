#!/usr/bin/env bash
# A client that pipelines far more calls than the server keeps in flight
# (mcp's cap is 256) is served at the server's pace, not refused: the
# server stops reading stdin while it is busy. Through a pipe and through a
# file, every one of 3000 get_quote calls gets its result, each id once.
set -u
bin=${1:?usage: test_backpressure.sh BINARY}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
n=3000
for i in $(seq 1 $n); do
  printf '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"get_quote","arguments":{"symbol":"NVDA"}}}\n' "$i"
done > "$dir/in.jsonl"

fail=0 passed=0
check() {   # name, output file
  local lines errors ids
  lines=$(wc -l < "$2")
  errors=$(grep -c '"error"' "$2")
  ids=$(grep -o '"id":[0-9]*' "$2" | sort -u | wc -l)
  if [ "$lines" -eq $n ] && [ "$errors" -eq 0 ] && [ "$ids" -eq $n ] && grep -q '"structuredContent"' "$2"; then
    echo "ok   $1"; passed=$((passed + 1))
  else
    echo "FAIL $1: $lines lines, $errors errors, $ids distinct ids (want $n, 0, $n)"; fail=$((fail + 1))
  fi
}
export IBKR_SIM_FREEZE=true IBKR_LOG_LEVEL=warn IBKR_STATE_DIR="$dir/state"
cat "$dir/in.jsonl" | timeout 60 "$bin" > "$dir/pipe.out" 2> "$dir/pipe.err"
check "pipe: $n pipelined calls all answered" "$dir/pipe.out"
timeout 60 "$bin" < "$dir/in.jsonl" > "$dir/file.out" 2> "$dir/file.err"
check "file: $n pipelined calls all answered" "$dir/file.out"
echo "$passed passed, $fail failed"
[ "$fail" -eq 0 ]
