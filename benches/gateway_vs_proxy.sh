#!/usr/bin/env bash
# The reference gateway with every feature on (key auth, a per-key rate limit, breakers,
# metrics) vs examples/bare_proxy.rs, both in front of the same zero-latency mock, under wrk
# (closed loop, CONNECTIONS connections), rotating rounds of one run, medians compared.
# Goal (issue 19): gateway >= 0.95x the bare proxy.
#
#   benches/gateway_vs_proxy.sh [CONNECTIONS=32] [SECONDS=10]    ROUNDS=5, NO_BUILD=1
set -euo pipefail
cd "$(dirname "$0")/.."
C=${1:-32}
SECS=${2:-10}
ROUNDS=${ROUNDS:-5}
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet --bin gauntlet --example bare_proxy
source benches/common.sh
MOCK_PORT=$(free_port) GW_PORT=$(free_port) PX_PORT=$(free_port)
printf '[[providers]]\nname = "zero"\nprofile = "%s"\nport = %s\n' \
  "$PWD/mock-upstreams/zero-latency.toml" "$MOCK_PORT" >"$WORK/mock.toml"
# Every feature on: a key with a rate limit far above what is sent (checked on every
# request), the breaker of the one upstream, and the metrics the gateway always keeps.
cat >"$WORK/gateway.toml" <<TOML
keys = [{ key = "gk-bench", tier = "pro", rpm = 100000000 }]
routes = [{ model = "bench-model", targets = ["zero"] }]
[[upstreams]]
name = "zero"
url = "http://127.0.0.1:$MOCK_PORT"
TOML
target/release/gauntlet mock --config "$WORK/mock.toml" >"$WORK/mock.log" 2>&1 & PIDS+=($!)
target/release/gauntlet gateway --config "$WORK/gateway.toml" --listen "127.0.0.1:$GW_PORT" >"$WORK/gw.log" 2>&1 & PIDS+=($!)
target/release/examples/bare_proxy "$PX_PORT" "http://127.0.0.1:$MOCK_PORT" >"$WORK/px.log" 2>&1 & PIDS+=($!)
for port in $MOCK_PORT $GW_PORT $PX_PORT; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done
cat >"$WORK/chat.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"bench-model","messages":[{"role":"user","content":"Generate a product description"}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer gk-bench"
LUA
one() { # port -> req/s; any non-2xx fails the script
  local out
  out=$(wrk -t2 -c"$C" -d"${SECS}s" -s "$WORK/chat.lua" "http://127.0.0.1:$1/v1/chat/completions")
  if echo "$out" | grep -q "Non-2xx"; then echo "errors: $out" >&2; exit 1; fi
  echo "$out" | awk '/Requests\/sec/ {printf "%d\n", $2}'
}
echo "connections: $C   seconds: $SECS   rounds: $ROUNDS   load average: $(cut -d' ' -f1-3 /proc/loadavg)"
source benches/steal.sh
G=() P=()
for r in $(seq "$ROUNDS"); do
  if ((r % 2)); then G+=("$(one "$GW_PORT")"); P+=("$(one "$PX_PORT")"); else P+=("$(one "$PX_PORT")"); G+=("$(one "$GW_PORT")"); fi
  echo "round $r: gateway ${G[-1]}  bare proxy ${P[-1]} req/s"
done
GM=$(median "${G[@]}") PM=$(median "${P[@]}")
python3 -c "g, p = $GM, $PM; print(f'medians: gateway {g}, bare proxy {p} req/s; gateway/proxy = {g / p:.2f}x (goal >= 0.95) [{\"PASS\" if g >= 0.95 * p else \"MISS\"}]')"
report_steal
