#!/usr/bin/env bash
# The hot-path guard: CPU instructions per request of the mock and of the reference gateway,
# counted by valgrind's callgrind. Instruction counts barely move with the machine's load,
# so a change can be compared before/after on a busy 2-core box where seconds cannot.
#
#   benches/callgrind.sh                 # N=10000 requests per server, compare to the baseline
#   UPDATE_BASELINE=1 benches/callgrind.sh   # rewrite benches/callgrind-baseline.txt
#
# For each server: a run under callgrind that serves exactly N non-streamed chat requests,
# and one that serves none (start-up and shutdown only); (Ir(N) - Ir(0)) / N is the cost of
# one request. The load client (curl, CONCURRENCY parallel keep-alive connections) runs
# natively, outside valgrind. The gateway is measured in front of a native zero-latency mock,
# so its number is the gateway's own work per request (parse, route, limit, forward, relay).
# The server is stopped with SIGINT, so it shuts down the way a user stops it and callgrind
# writes its totals at exit.
#
# Exit status: 0 within TOLERANCE_PCT (default 3) of the baseline, 1 when either number is
# more above it, 3 when the measurement itself failed.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-10000}
CONCURRENCY=${CONCURRENCY:-4}
TOLERANCE_PCT=${TOLERANCE_PCT:-3}
BASELINE=${BASELINE:-benches/callgrind-baseline.txt}
OUT=${OUT:-target/callgrind}
BIN=target/release/gauntlet
FLEET=benches/zero-latency-fleet.toml
BODY='{"model":"bench-model","messages":[{"role":"user","content":"Generate a product description"}],"max_tokens":16}'

fail() { echo "callgrind.sh: $*" >&2; exit 3; }
command -v valgrind >/dev/null || fail "valgrind is not installed (apt-get install valgrind)"
command -v curl >/dev/null || fail "curl is not installed"

cargo build --release --quiet --bin gauntlet
rm -rf "$OUT"
mkdir -p "$OUT"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Waits (up to 120 s: valgrind starts slowly) for the first http:// URL in a log file.
url_in() {
  local file=$1
  for _ in $(seq 1200); do
    if grep -qo 'http://[0-9.:]*' "$file" 2>/dev/null; then
      grep -o 'http://[0-9.:]*' "$file" | head -1
      return
    fi
    sleep 0.1
  done
  fail "no URL in $file after 120 s: $(tail -3 "$file")"
}

# Sends exactly $2 chat requests to base URL $1 and checks every one got a 200.
send() {
  local base=$1 n=$2 cfg="$OUT/curl.cfg"
  ((n > 0)) || return 0
  {
    echo "header = \"content-type: application/json\""
    echo "header = \"authorization: Bearer gk-bench\""
    printf 'data = "%s"\n' "${BODY//\"/\\\"}"
    echo 'write-out = "%{http_code}\n"'
    for _ in $(seq "$n"); do
      echo "url = \"$base/v1/chat/completions\""
      echo 'output = "/dev/null"'
    done
  } >"$cfg"
  local ok
  ok=$(curl -sS --no-progress-meter --parallel --parallel-max "$CONCURRENCY" --config "$cfg" | grep -c '^200$' || true)
  ((ok == n)) || fail "only $ok of $n requests to $base answered 200"
}

# Total instructions in a callgrind output file (all threads).
total_ir() {
  local ir
  ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$1")
  [[ -n $ir ]] || fail "no totals in $1"
  echo "$ir"
}

# Stops a server under valgrind with SIGINT and waits for callgrind to write its output.
# A background job of a script starts with SIGINT ignored, and the server installs its
# handler only after printing its URL, so a SIGINT sent in between is lost: send it again
# until the server is gone.
stop() {
  local pid=$1
  for _ in $(seq 30); do
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 20); do
      kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return; }
      sleep 0.1
    done
  done
  fail "process $pid did not stop within 60 s of SIGINT"
}

# Sets IR to the instructions of the mock serving $1 requests, start to exit.
run_mock() {
  local n=$1 log="$OUT/mock-$1.log" url
  valgrind --tool=callgrind --callgrind-out-file="$OUT/mock-$n.out" \
    "$BIN" mock --config "$FLEET" >"$log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  url=$(url_in "$log")
  send "$url" "$n"
  stop "$pid"
  IR=$(total_ir "$OUT/mock-$n.out")
}

# Sets IR to the instructions of the gateway serving $1 requests, in front of the native
# mock at $2.
run_gateway() {
  local n=$1 upstream=$2 log="$OUT/gateway-$1.log" cfg="$OUT/gateway.toml" url
  cat >"$cfg" <<TOML
keys = [{ key = "gk-bench", tier = "pro" }]
routes = [{ model = "bench-model", targets = ["zero"] }]
[[upstreams]]
name = "zero"
url = "$upstream"
TOML
  valgrind --tool=callgrind --callgrind-out-file="$OUT/gateway-$n.out" \
    "$BIN" gateway --config "$cfg" --listen 127.0.0.1:0 >"$log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  url=$(url_in "$log")
  send "$url" "$n"
  stop "$pid"
  IR=$(total_ir "$OUT/gateway-$n.out")
}

per_request() { awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.0f", (a - b) / n }'; }

echo "mock under callgrind: 0 and $N requests..." >&2
run_mock 0
mock0=$IR
run_mock "$N"
mockn=$IR
MOCK_IR=$(per_request "$mockn" "$mock0")

echo "gateway under callgrind (native mock upstream): 0 and $N requests..." >&2
"$BIN" mock --config "$FLEET" >"$OUT/upstream.log" 2>&1 &
pids+=($!)
UP=$(url_in "$OUT/upstream.log")
run_gateway 0 "$UP"
gw0=$IR
run_gateway "$N" "$UP"
gwn=$IR
GATEWAY_IR=$(per_request "$gwn" "$gw0")

echo "requests: $N non-streamed chats, $CONCURRENCY connections (curl, outside valgrind)"
echo "mock:    $MOCK_IR instructions/request (start-up and shutdown: $mock0)"
echo "gateway: $GATEWAY_IR instructions/request (start-up and shutdown: $gw0)"

if [[ -n ${UPDATE_BASELINE:-} ]]; then
  {
    echo "# Instructions per request under callgrind, written by benches/callgrind.sh"
    echo "# (N=$N, CONCURRENCY=$CONCURRENCY, commit $(git rev-parse --short HEAD))."
    echo "mock $MOCK_IR"
    echo "gateway $GATEWAY_IR"
  } >"$BASELINE"
  echo "wrote $BASELINE"
  exit 0
fi

[[ -f $BASELINE ]] || fail "no baseline at $BASELINE (UPDATE_BASELINE=1 writes one)"
status=0
for pair in "mock $MOCK_IR" "gateway $GATEWAY_IR"; do
  read -r name now <<<"$pair"
  base=$(awk -v k="$name" '$1 == k { print $2 }' "$BASELINE")
  [[ -n $base ]] || fail "no $name line in $BASELINE"
  change=$(awk -v a="$now" -v b="$base" 'BEGIN { printf "%+.1f", (a - b) * 100 / b }')
  if awk -v c="$change" -v t="$TOLERANCE_PCT" 'BEGIN { exit !(c > t) }'; then
    echo "  [SLOWER] $name: $now vs baseline $base ($change%, more than +$TOLERANCE_PCT%)"
    status=1
  else
    echo "  [OK] $name: $now vs baseline $base ($change%)"
  fi
done
exit $status
