#!/usr/bin/env bash
# Memory of the mock while it holds many slow streams open. Target: RSS < 150 MB at 5,000.
#
# Usage: benches/mock_streams.sh [STREAMS] [HOLD_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
STREAMS="${1:-5000}"
HOLD="${2:-5}"

# Each stream is one socket on each side; raise the descriptor limit as far as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((STREAMS + 100)) ]; then
  echo "open-file limit $(ulimit -n) is below $((STREAMS + 100)); raise it (ulimit -Hn)" >&2
  exit 3
fi

cargo build --release --quiet --bin gauntlet --example hold_streams

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

TMP="$(mktemp -d)"
target/release/gauntlet mock --config benches/slow-streams-fleet.toml >"$TMP/mock.out" &
MOCK_PID=$!
PIDS+=($MOCK_PID)
for _ in $(seq 1 100); do grep -q url "$TMP/mock.out" 2>/dev/null && break; sleep 0.05; done
URL="$(grep -o 'http://[0-9.:]*' "$TMP/mock.out" | head -1)"
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$MOCK_PID/status"; }
IDLE_KB="$(rss_kb)"

target/release/examples/hold_streams "$URL" "$STREAMS" "$HOLD" >"$TMP/hold.out" &
HOLD_PID=$!
PIDS+=($HOLD_PID)
for _ in $(seq 1 1200); do
  grep -q '^open' "$TMP/hold.out" 2>/dev/null && break
  kill -0 "$HOLD_PID" 2>/dev/null || { cat "$TMP/hold.out"; exit 3; }
  sleep 0.05
done
cat "$TMP/hold.out"
sleep 1
PEAK_KB="$(rss_kb)"
IN_FLIGHT="$(curl -s "$URL/__gauntlet/stats" | grep -o '"in_flight":[0-9]*' | cut -d: -f2)"
wait "$HOLD_PID" && HOLD_OK=1 || HOLD_OK=0
tail -1 "$TMP/hold.out"

echo "streams held:  $STREAMS (mock reports in_flight=$IN_FLIGHT)"
echo "mock RSS idle: $((IDLE_KB / 1024)) MB"
echo "mock RSS held: $((PEAK_KB / 1024)) MB (target < 150 MB)"
[ "$HOLD_OK" = 1 ] && [ "$PEAK_KB" -lt $((150 * 1024)) ]
