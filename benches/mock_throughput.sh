#!/usr/bin/env bash
# Throughput of the mock (zero-latency profile) against a bare hyper "hello" server, both
# driven by wrk with the same POST, connections and threads. Target: ratio >= 0.7.
#
# The two servers are measured in alternating rounds, so a change in background load on a
# shared machine hits both alike; the ratio is of the totals over all rounds.
#
# Usage: benches/mock_throughput.sh [SECONDS_PER_RUN] [CONNECTIONS] [THREADS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNS="${2:-64}"
THREADS="${3:-2}"
ROUNDS="${4:-3}"

if ! command -v wrk >/dev/null; then
  echo "installing wrk" >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >&2 || sudo apt-get install -y -qq wrk >&2
fi

cargo build --release --quiet --bin gauntlet --example bare_hyper

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# Reads the first URL a server prints on stdout.
first_url() {
  local file="$1"
  for _ in $(seq 1 100); do
    if grep -qo 'http://[0-9.:]*' "$file" 2>/dev/null; then grep -o 'http://[0-9.:]*' "$file" | head -1; return; fi
    sleep 0.05
  done
  echo "server did not start" >&2; exit 3
}

TMP="$(mktemp -d)"
target/release/examples/bare_hyper 0 >"$TMP/bare.out" &
PIDS+=($!)
BARE_URL="$(first_url "$TMP/bare.out")"

target/release/gauntlet mock --config benches/zero-latency-fleet.toml >"$TMP/mock.out" &
PIDS+=($!)
MOCK_URL="$(first_url "$TMP/mock.out")"

# Sanity: the mock answers a real completion with this script's request.
curl -sf -X POST "$MOCK_URL/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"bench-model","messages":[{"role":"user","content":"hi"}],"max_tokens":16}' >/dev/null

rps() {
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -s benches/chat.lua "$1" | tee "$TMP/wrk.txt" >&2
  awk '/Requests\/sec/ {print $2}' "$TMP/wrk.txt"
}

# Warm both up briefly so neither pays for first-touch page faults in the measurement.
wrk -t1 -c8 -d1s -s benches/chat.lua "$BARE_URL" >/dev/null
wrk -t1 -c8 -d1s -s benches/chat.lua "$MOCK_URL" >/dev/null

BARE=0
MOCK=0
for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round: bare hyper ($BARE_URL)" >&2
  B="$(rps "$BARE_URL")"
  echo "== round $round: gauntlet mock, zero-latency profile ($MOCK_URL)" >&2
  M="$(rps "$MOCK_URL")"
  echo "round $round: bare $B req/s, mock $M req/s"
  BARE="$(awk -v a="$BARE" -v b="$B" 'BEGIN { print a + b }')"
  MOCK="$(awk -v a="$MOCK" -v b="$M" 'BEGIN { print a + b }')"
done
BARE="$(awk -v a="$BARE" -v n="$ROUNDS" 'BEGIN { printf "%.0f", a / n }')"
MOCK="$(awk -v a="$MOCK" -v n="$ROUNDS" 'BEGIN { printf "%.0f", a / n }')"

RATIO="$(awk -v m="$MOCK" -v b="$BARE" 'BEGIN { printf "%.2f", m / b }')"
echo "bare hyper:    $BARE req/s (mean of $ROUNDS runs of ${DURATION}s, $CONNS connections, $THREADS wrk threads)"
echo "gauntlet mock: $MOCK req/s"
echo "ratio:         $RATIO (target >= 0.70)"
curl -s "$MOCK_URL/__gauntlet/stats" | head -c 400; echo
awk -v r="$RATIO" 'BEGIN { exit (r >= 0.7) ? 0 : 1 }'
