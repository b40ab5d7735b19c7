#!/usr/bin/env bash
# The reference gateway's own cost: latency it adds and throughput it keeps, measured in one
# run against a zero-latency upstream, gateway path vs direct path.
#
#   benches/gateway_overhead.sh            # DURATION=10s RATES="1000 5000" CONCURRENCY=64
#
# Open loop (oha -q RATE --latency-correction, so a stall cannot hide behind coordinated
# omission) at each rate: p50/p99 direct, p50/p99 through the gateway, and the difference.
# Closed loop (oha -c CONCURRENCY, as fast as possible): requests/s direct vs gateway, and
# through examples/bare_proxy.rs (hyper forwarding to the same upstream and nothing else), so
# the gateway's ratio can be read against what one extra proxy hop costs on the same cores.
# Targets at 1,000 req/s: added p50 < 0.2 ms, added p99 < 1 ms; throughput ratio >= 0.5.
# Everything runs on loopback; load generator, gateway and upstream share the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
RATES=${RATES:-"1000 5000"}
CONCURRENCY=${CONCURRENCY:-64}
UP_ADDR=${UP_ADDR:-127.0.0.1:19100}
GW_ADDR=${GW_ADDR:-127.0.0.1:19180}
PX_PORT=${PX_PORT:-19190}
OUT=${OUT:-reports/bench}
mkdir -p "$OUT"

command -v python3 >/dev/null || { echo "python3 is needed to read oha's JSON" >&2; exit 3; }

cargo build --release --quiet --bin gauntlet --example zero_upstream --example bare_proxy
# The peer load generator is oha, measured the same way on both paths.
command -v oha >/dev/null || cargo install --locked oha
LOADGEN=oha
BIN=target/release/gauntlet

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# The zero-latency upstream: gauntlet's own mock when it is available, else the example.
if [[ -f mock-upstreams/zero-latency.toml ]] && "$BIN" mock --help >/dev/null 2>&1; then
  UPSTREAM_KIND="gauntlet mock (mock-upstreams/zero-latency.toml)"
  cat >"$OUT/zero-fleet.toml" <<TOML
[[providers]]
name = "zero"
profile = "$PWD/mock-upstreams/zero-latency.toml"
port = ${UP_ADDR##*:}
TOML
  "$BIN" mock --config "$OUT/zero-fleet.toml" >"$OUT/upstream.log" 2>&1 &
else
  UPSTREAM_KIND="examples/zero_upstream.rs"
  target/release/examples/zero_upstream "$UP_ADDR" >"$OUT/upstream.log" 2>&1 &
fi
pids+=($!)

CFG="$OUT/gateway-bench.toml"
cat >"$CFG" <<TOML
keys = [{ key = "gk-bench", tier = "pro" }]
routes = [{ model = "bench-model", targets = ["zero"] }]
[[upstreams]]
name = "zero"
url = "http://$UP_ADDR"
TOML
"$BIN" gateway --config "$CFG" --listen "$GW_ADDR" >"$OUT/gateway.log" 2>&1 &
pids+=($!)
target/release/examples/bare_proxy "$PX_PORT" "http://$UP_ADDR" >"$OUT/proxy.log" 2>&1 &
pids+=($!)

for url in "http://$UP_ADDR/v1/chat/completions" "http://$GW_ADDR/health" "http://127.0.0.1:$PX_PORT/"; do
  for _ in $(seq 100); do
    curl -s -o /dev/null -X POST "$url" 2>/dev/null && break || sleep 0.1
  done
done

BODY='{"model":"bench-model","messages":[{"role":"user","content":"Generate a product description"}],"max_tokens":64}'
if oha --help | grep -q -- '--output-format'; then JSONFLAG=(--output-format json); else JSONFLAG=(-j); fi

run() { # name url rate (0: closed loop)
  local name=$1 url=$2 rate=$3
  local mode=(-c "$CONCURRENCY")
  [[ $rate != 0 ]] && mode+=(-q "$rate" --latency-correction)
  oha --no-tui "${JSONFLAG[@]}" -z "$DURATION" -m POST \
    -H 'content-type: application/json' -H 'authorization: Bearer gk-bench' \
    -d "$BODY" "${mode[@]}" "$url" >"$OUT/$name.json"
}

DIRECT="http://$UP_ADDR/v1/chat/completions"
GATEWAY="http://$GW_ADDR/v1/chat/completions"
# Measures the CPU the VM's host steals while measuring (report_steal prints it).
source benches/steal.sh

# Warm both paths (connection pools, page cache, CPU frequency).
DURATION=2s run warmup "$GATEWAY" 0
DURATION=2s run warmup "$DIRECT" 0

for rate in $RATES; do
  run "direct-open-$rate" "$DIRECT" "$rate"
  run "gateway-open-$rate" "$GATEWAY" "$rate"
done
run direct-closed "$DIRECT" 0
run gateway-closed "$GATEWAY" 0
run proxy-closed "http://127.0.0.1:$PX_PORT/v1/chat/completions" 0
report_steal

python3 - "$OUT" "$RATES" "$UPSTREAM_KIND" "$DURATION" "$CONCURRENCY" "$LOADGEN" <<'PY'
import json, sys
out, rates, kind, duration, conc, gen = sys.argv[1:7]
rates = rates.split()
def load(name):
    with open(f"{out}/{name}.json") as f:
        return json.load(f)
def pct(d, p):
    lp = d.get("latencyPercentiles") or d.get("latency_percentiles") or {}
    return lp[p] * 1000.0
def ok_share(d):
    codes = d.get("statusCodeDistribution", {})
    total = sum(codes.values()) or 1
    return codes.get("200", 0) / total
def rps(d):
    return d["summary"]["requestsPerSec"]
print(f"load: {gen}; upstream: {kind}; {duration} per measurement; closed loop with {conc} connections")
print(f"{'rate':>6} {'direct p50':>11} {'gw p50':>8} {'added p50':>10} {'direct p99':>11} {'gw p99':>8} {'added p99':>10} {'gw ok':>6} {'gw rps':>8}")
verdict = []
for r in rates:
    d, g = load(f"direct-open-{r}"), load(f"gateway-open-{r}")
    a50, a99 = pct(g, "p50") - pct(d, "p50"), pct(g, "p99") - pct(d, "p99")
    print(f"{r:>6} {pct(d,'p50'):>9.3f}ms {pct(g,'p50'):>6.3f}ms {a50:>8.3f}ms {pct(d,'p99'):>9.3f}ms {pct(g,'p99'):>6.3f}ms {a99:>8.3f}ms {ok_share(g)*100:>5.1f}% {rps(g):>8.0f}")
    if r == "1000":
        verdict.append(("added p50 < 0.2 ms at 1000 req/s", a50 < 0.2, f"{a50:.3f} ms"))
        verdict.append(("added p99 < 1 ms at 1000 req/s", a99 < 1.0, f"{a99:.3f} ms"))
dc, gc = load("direct-closed"), load("gateway-closed")
ratio = rps(gc) / rps(dc)
print(f"closed loop: direct {rps(dc):.0f} req/s, gateway {rps(gc):.0f} req/s (ok {ok_share(gc)*100:.1f}%), ratio {ratio:.2f}")
pc = load("proxy-closed")
print(f"bare hyper proxy: {rps(pc):.0f} req/s (ok {ok_share(pc)*100:.1f}%), {rps(pc)/rps(dc):.2f}x direct; "
      f"gateway = {rps(gc)/rps(pc):.2f}x the bare proxy")
verdict.append(("gateway throughput >= 0.5x direct", ratio >= 0.5, f"{ratio:.2f}x"))
for name, passed, value in verdict:
    print(f"  [{'PASS' if passed else 'MISS'}] {name}: {value}")
PY
