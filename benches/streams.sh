#!/usr/bin/env bash
# Streams at scale, all on loopback, in one run:
#   pacing  the mock's pacing fidelity at 400 tokens/s a stream: gap error p50/p99/max as
#           streams are added, and the aggregate token rate it paces before p99 passes 0.5 ms
#   engine  tokens/s the engine receives, parses and times on one core, beside oha reading
#           the same streams (and a Python peer when one is installed); at 10,000 streams;
#           RSS per open stream
#   relay   tokens/s through the reference gateway vs examples/bare_proxy.rs (and direct)
#   latency the latency each relay adds per chunk (10 streams at 400 tokens/s: nothing saturates)
#   rss     RSS per relayed stream with 10,000 streams held open (as many as the open-file
#           limit allows a relay: two descriptors a stream)
#
#   benches/streams.sh                      # everything: SECS=5 per point, about 8 minutes
#   PARTS="pacing" PACING_STREAMS="100 1000" benches/streams.sh
#   benches/protected.sh benches/streams.sh # with a protected CPU share on a shared machine
#
# The clients: examples/stream_gaps.rs (a lean hyper client that times every token by a byte
# search; it reports its own CPU so one can see it is not the bottleneck) and, for the engine,
# examples/engine_bench.rs (the real engine: every token parsed, timed and recorded).
# Output: a table per part on stdout, raw JSON lines in $OUT (reports/streams).
set -euo pipefail
cd "$(dirname "$0")/.."

PARTS=${PARTS:-"pacing engine relay latency rss"}
SECS=${SECS:-5}
PACING_STREAMS=${PACING_STREAMS:-"100 250 500 1000 2000 10000"}
BIG=${BIG:-10000}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-reports/streams}
mkdir -p "$OUT"

# Every stream is a socket in each process it passes; a relay holds two per stream. The limit
# is per process: raise it as far as the hard limit allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
LIMIT=$(ulimit -n); [ "$LIMIT" = unlimited ] && LIMIT=1048576
if [ "$LIMIT" -lt $((BIG + 200)) ]; then
  echo "open-file limit $LIMIT is below $((BIG + 200)); raise it (ulimit -Hn)" >&2
  exit 3
fi
# A relay needs a descriptor on each side of every stream: as many streams as that allows.
RELAY_BIG=$(( BIG < (LIMIT - 200) / 2 ? BIG : (LIMIT - 200) / 2 ))

# SKIP_BUILD=1 runs the binaries already built (a release build takes long on a small box).
[ -n "${SKIP_BUILD:-}" ] || nice cargo build --release --quiet --bin gauntlet --example stream_gaps \
  --example bare_proxy --example engine_bench
BIN=target/release/gauntlet
GAPS=target/release/examples/stream_gaps
source benches/common.sh

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# User + system CPU seconds of a process so far.
cpu_s() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }

# start_mock NAME PROFILE [CPUS]: a one-provider mock in its own process; sets MOCK_URL, MOCK_PID.
start_mock() {
  local port; port=$(free_port)
  printf '[[providers]]\nname = "%s"\nprofile = "%s"\nport = %s\n' "$1" "$PWD/$2" "$port" \
    >"$WORK/$1-fleet.toml"
  local pin=()
  [ -n "${3:-}" ] && pin=(taskset -c "$3")
  "${pin[@]}" "$BIN" mock --config "$WORK/$1-fleet.toml" >"$WORK/$1.log" 2>&1 &
  MOCK_PID=$!; PIDS+=("$MOCK_PID")
  MOCK_URL="http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -sf -o /dev/null "$MOCK_URL/__gauntlet/stats" && return; sleep 0.1; done
  echo "mock $1 did not start: $(cat "$WORK/$1.log")" >&2; exit 3
}

# start_gateway UPSTREAM_URL: the reference gateway with its features on (a key, per-key
# limits, breaker, metrics); sets GW_URL, GW_PID.
start_gateway() {
  local port; port=$(free_port)
  cat >"$WORK/gateway.toml" <<TOML
keys = [{ key = "gk-bench", tier = "pro", rpm = 100000000 }]
routes = [{ model = "bench-model", targets = ["up"] }, { model = "slow-model", targets = ["up"] }]
[[upstreams]]
name = "up"
url = "$1"
[breaker]
consecutive_failures = 5
cooldown = "2s"
TOML
  "$BIN" gateway --config "$WORK/gateway.toml" --listen "127.0.0.1:$port" >"$WORK/gateway.log" 2>&1 &
  GW_PID=$!; PIDS+=("$GW_PID")
  GW_URL="http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -sf -o /dev/null "$GW_URL/health" && return; sleep 0.1; done
  echo "gateway did not start: $(cat "$WORK/gateway.log")" >&2; exit 3
}

start_proxy() {
  local port; port=$(free_port)
  target/release/examples/bare_proxy "$port" "$1" >"$WORK/proxy.log" 2>&1 &
  PX_PID=$!; PIDS+=("$PX_PID")
  PX_URL="http://127.0.0.1:$port"
  for _ in $(seq 100); do grep -q http "$WORK/proxy.log" && return; sleep 0.1; done
  echo "bare proxy did not start" >&2; exit 3
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# gaps URL STREAMS SECONDS INTERVAL_US [env...]: one stream_gaps run, its JSON on stdout.
gaps() {
  local url=$1 n=$2 s=$3 iv=$4; shift 4
  env "$@" "$GAPS" "$url" "$n" "$s" "$iv" | grep '^{'
}

# The CPU share the bench has: its cpu cgroup's weight against the root's (benches/protected.sh
# gives it a hundred processes' worth; without it a busy machine's other sessions take their share).
CPU_CG=$(awk -F: '$2 == "cpu" {print $3}' /proc/self/cgroup)
CPU_SHARES=$(cat "/sys/fs/cgroup/cpu$CPU_CG/cpu.shares" 2>/dev/null || echo unknown)
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); open-file limit $(ulimit -n); cpu cgroup ${CPU_CG:-?} cpu.shares $CPU_SHARES"
source benches/steal.sh

# ---------------------------------------------------------------------------------------------
if [[ " $PARTS " == *" pacing "* ]]; then
  echo
  echo "== pacing: 400 tokens/s a stream (2.5 ms gaps), 400-token streams, ${SECS}s a point =="
  start_mock paced benches/streams-paced.toml
  printf '%8s %12s %12s %10s %10s %10s %10s %9s %9s\n' streams "tok/s asked" "tok/s got" \
    "err p50" "err p99" "err p999" "err max" "mock cpu" "client"
  BEST=0
  for n in $PACING_STREAMS; do
    c0=$(cpu_s "$MOCK_PID")
    r=$(gaps "$MOCK_URL" "$n" "$SECS" 2500 GAPS_TOKENS=400)
    c1=$(cpu_s "$MOCK_PID")
    echo "$r" >"$OUT/pacing-$n.json"
    python3 - "$r" "$n" "$c0" "$c1" "$SECS" <<'PY'
import json, sys
r, n, c0, c1, secs = json.loads(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
e = r["gap_error_us"]
ms = lambda us: f"{us/1000:.3f}ms"
# The client's warmup second counts too, so its CPU share is per wall second of its run.
print(f"{n:>8} {n*400:>12} {r['tokens_per_s']:>12.0f} {ms(e['p50']):>10} {ms(e['p99']):>10} {ms(e['p999']):>10} {ms(e['max']):>10}"
      f" {(c1-c0)/(secs+1):>8.2f}c {r['client_cpu_share']:>8.2f}c"
      + ("" if not r["connections_failed"] else f"  {r['connections_failed']} failed: {r['errors'][:1]}"))
PY
    if python3 -c "import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if r['gap_error_us']['p99'] < 500 and not r['connections_failed'] else 1)" "$r"; then
      BEST=$(python3 -c "import json,sys; print(int(json.loads(sys.argv[1])['tokens_per_s']))" "$r")
    fi
  done
  echo "paced with p99 gap error < 0.5 ms up to: $BEST tokens/s aggregate (the largest point that held)"
  stop "$MOCK_PID"
fi

# ---------------------------------------------------------------------------------------------
if [[ " $PARTS " == *" engine "* ]]; then
  echo
  echo "== engine: 400-token streams from a zero-latency mock; engine and peers on core 0, mock on core 1 =="
  start_mock fast mock-upstreams/zero-latency.toml 1
  C=${ENGINE_CONNECTIONS:-64}
  BODY='{"model":"bench-model","messages":[{"role":"user","content":"Generate a product description"}],"max_tokens":400,"stream":true}'
  if oha --help 2>/dev/null | grep -q -- '--output-format'; then OHAJSON=(--output-format json); else OHAJSON=(-j); fi
  engine_round() {
    /usr/bin/time -f '%U %S' -o "$WORK/time" env BENCH_STREAM=1 BENCH_MAX_TOKENS=400 BENCH_MODEL=bench-model \
      BENCH_LOAD_THREADS=1 taskset -c 0 target/release/examples/engine_bench "$MOCK_URL" "$SECS" closed "$C" \
      >"$WORK/engine.json"
    python3 - "$WORK/engine.json" "$WORK/time" "$SECS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); u, s = map(float, open(sys.argv[2]).read().split()[-2:])
ok = r["successes"] == r["requests"] and not r["errors"]
print(f"{r['tokens_per_s']:.0f} {(u+s):.2f} {'ok' if ok else 'ERRORS:'+json.dumps(r['errors'])} {r['itl_ms']['p50'] if r.get('itl_ms') else 'n/a'}")
PY
  }
  oha_round() {
    command -v oha >/dev/null || { echo "0 0 missing"; return; }
    /usr/bin/time -f '%U %S' -o "$WORK/time" taskset -c 0 oha --no-tui "${OHAJSON[@]}" -z "${SECS}s" -c "$C" \
      -m POST -H 'content-type: application/json' -d "$BODY" "$MOCK_URL/v1/chat/completions" >"$WORK/oha.json"
    python3 - "$WORK/oha.json" "$WORK/time" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); u, s = map(float, open(sys.argv[2]).read().split()[-2:])
codes = r.get("statusCodeDistribution", {})
ok = set(codes) <= {"200"}
# oha reads each 400-token stream whole; throughput only.
print(f"{r['summary']['requestsPerSec'] * 400:.0f} {(u+s):.2f} {'ok' if ok else 'CODES:'+json.dumps(codes)}")
PY
  }
  declare -a E_TPS O_TPS E_CPU O_CPU
  for i in $(seq "$ROUNDS"); do
    read -r t c st itl < <(engine_round); E_TPS+=("$t"); E_CPU+=("$c")
    echo "  round $i engine: $t tokens/s, $c cpu-s, $st, itl p50 ${itl} ms"
    read -r t c st < <(oha_round); O_TPS+=("$t"); O_CPU+=("$c")
    echo "  round $i oha:    $t tokens/s, $c cpu-s, $st"
  done
  et=$(median "${E_TPS[@]}"); ec=$(median "${E_CPU[@]}"); ot=$(median "${O_TPS[@]}"); oc=$(median "${O_CPU[@]}")
  python3 -c "
et, ec, ot, oc, secs = $et, $ec, $ot, $oc, $SECS + 1
per = lambda t, c: t / max(c / secs, 1e-9)
print(f'engine (1 load thread, core 0): {et:,.0f} tokens/s median, {ec/secs:.2f} cores -> {per(et, ec):,.0f} tokens/s per core')
print(f'oha    (core 0):                {ot:,.0f} tokens/s median, {oc/secs:.2f} cores -> {per(ot, oc):,.0f} tokens/s per core' if ot else 'oha: not installed')
if ot: print(f'engine / oha per core: {per(et, ec) / per(ot, oc):.2f}x')"
  if command -v guidellm >/dev/null; then
    echo "python peer: guidellm found; see benches/README.md for how it was run"
  else
    echo "python peer: not run (see benches/README.md: guidellm pulls a GPU-less torch stack of ~1 GB)"
  fi

  # 10,000 streams at once: the engine's tokens/s with every stream open, then its RSS.
  echo "-- $BIG concurrent streams (both cores) --"
  r=$(env BENCH_STREAM=1 BENCH_MAX_TOKENS=400 BENCH_MODEL=bench-model target/release/examples/engine_bench \
    "$MOCK_URL" "$SECS" closed "$BIG" "$((BIG * 2))")
  echo "$r" >"$OUT/engine-$BIG.json"
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(f\"engine at $BIG streams: {r['tokens_per_s']:,.0f} tokens/s, {r['successes']} streams ok, errors {r['errors']}\")" "$r"
  stop "$MOCK_PID"
  start_mock slow benches/slow-streams.toml
  rss_engine() { # streams -> RSS kB once they are all open (sampled in the middle of the hold)
    env BENCH_STREAM=1 BENCH_MAX_TOKENS=16 BENCH_MODEL=slow-model BENCH_WARMUP_MS=0 \
      target/release/examples/engine_bench "$MOCK_URL" 20 closed "$1" "$(($1 * 2))" >"$WORK/hold.json" &
    local p=$! peak=0 v
    for _ in $(seq 30); do
      sleep 0.5
      v=$(rss_kb "$p" 2>/dev/null || echo 0)
      [ "$v" -gt "$peak" ] && peak=$v
    done
    wait "$p" || true
    echo "$peak"
  }
  small=$(rss_engine 100); big=$(rss_engine "$BIG")
  echo "engine RSS: $((small / 1024)) MB at 100 open streams, $((big / 1024)) MB at $BIG -> $(( (big - small) * 1024 / (BIG - 100) )) bytes per open stream"
  stop "$MOCK_PID"
fi

# ---------------------------------------------------------------------------------------------
if [[ " $PARTS " == *" relay "* ]]; then
  echo
  echo "== relay: reference gateway vs bare hyper proxy vs direct =="
  start_mock relay benches/streams-relay.toml
  RELAY_MOCK=$MOCK_PID RELAY_URL=$MOCK_URL
  start_gateway "$RELAY_URL"
  start_proxy "$RELAY_URL"
  N=${RELAY_STREAMS:-200}
  declare -a G P D
  for i in $(seq "$ROUNDS"); do
    g=$(gaps "$GW_URL" "$N" "$SECS" 100 GAPS_TOKENS=400 GAPS_KEY=gk-bench); echo "$g" >"$OUT/relay-gw-$i.json"
    p=$(gaps "$PX_URL" "$N" "$SECS" 100 GAPS_TOKENS=400); echo "$p" >"$OUT/relay-px-$i.json"
    d=$(gaps "$RELAY_URL" "$N" "$SECS" 100 GAPS_TOKENS=400); echo "$d" >"$OUT/relay-direct-$i.json"
    tps() { python3 -c "import json,sys; r=json.loads(sys.argv[1]); print(int(r['tokens_per_s']) if not r['connections_failed'] else 0)" "$1"; }
    G+=("$(tps "$g")"); P+=("$(tps "$p")"); D+=("$(tps "$d")")
    echo "  round $i: gateway ${G[-1]}  bare proxy ${P[-1]}  direct ${D[-1]} tokens/s ($N streams of 10,000 tokens/s each)"
  done
  python3 -c "
g, p, d = $(median "${G[@]}"), $(median "${P[@]}"), $(median "${D[@]}")
print(f'relayed tokens/s (median of $ROUNDS): gateway {g:,}  bare proxy {p:,}  direct {d:,}  -> gateway / bare proxy {g / max(p, 1):.2f}x (goal >= 0.9x)')"

  stop "$GW_PID"; stop "$PX_PID"; stop "$RELAY_MOCK"
fi

# ---------------------------------------------------------------------------------------------
if [[ " $PARTS " == *" latency "* ]]; then
  # Latency per chunk: the same 400 tokens/s streams direct and through each relay, few enough
  # that nothing saturates; each token's lateness against the mock's schedule, and the
  # difference of the percentiles.
  echo
  echo "== latency a relay adds per chunk =="
  start_mock paced benches/streams-paced.toml
  PACED_MOCK=$MOCK_PID PACED_URL=$MOCK_URL
  start_gateway "$PACED_URL"; start_proxy "$PACED_URL"
  L=${LATENCY_STREAMS:-10}
  d=$(gaps "$PACED_URL" "$L" "$SECS" 2500 GAPS_TOKENS=400)
  g=$(gaps "$GW_URL" "$L" "$SECS" 2500 GAPS_TOKENS=400 GAPS_KEY=gk-bench)
  p=$(gaps "$PX_URL" "$L" "$SECS" 2500 GAPS_TOKENS=400)
  echo "$d" >"$OUT/latency-direct.json"; echo "$g" >"$OUT/latency-gw.json"; echo "$p" >"$OUT/latency-px.json"
  python3 - "$d" "$g" "$p" "$L" <<'PY'
import json, sys
d, g, p = (json.loads(a)["late_us"] for a in sys.argv[1:4])
n = sys.argv[4]
for name, x in (("gateway", g), ("bare proxy", p)):
    print(f"added per chunk via {name:<10} ({n} streams at 400 tokens/s): p50 {(x['p50']-d['p50'])/1000:+.3f} ms, "
          f"p99 {(x['p99']-d['p99'])/1000:+.3f} ms  (lateness p50/p99 direct {d['p50']/1000:.3f}/{d['p99']/1000:.3f} ms, "
          f"via {x['p50']/1000:.3f}/{x['p99']/1000:.3f} ms)")
PY
  stop "$GW_PID"; stop "$PX_PID"; stop "$PACED_MOCK"
fi

# ---------------------------------------------------------------------------------------------
if [[ " $PARTS " == *" rss "* ]]; then
  # RSS per relayed stream: BIG slow streams held open through each relay.
  echo
  echo "== RSS per relayed stream =="
  start_mock slow benches/slow-streams.toml
  SLOW_URL=$MOCK_URL
  hold_rss() { # PID URL [env] -> "idle_kB held_kB failed"
    local pid=$1 url=$2; shift 2
    local idle; idle=$(rss_kb "$pid")
    env GAPS_MODEL=slow-model GAPS_TOKENS=100 GAPS_WARMUP_MS=0 "$@" "$GAPS" "$url" "$RELAY_BIG" 15 500000 \
      >"$WORK/hold.out" 2>&1 &
    local h=$! peak=0 v
    for _ in $(seq 600); do grep -q '^open' "$WORK/hold.out" && break; kill -0 "$h" 2>/dev/null || break; sleep 0.1; done
    for _ in $(seq 10); do v=$(rss_kb "$pid"); [ "$v" -gt "$peak" ] && peak=$v; sleep 0.5; done
    kill "$h" 2>/dev/null || true; wait "$h" 2>/dev/null || true
    echo "$idle $peak $(grep -o '^open [0-9]*' "$WORK/hold.out" || echo 'open 0')"
  }
  start_gateway "$SLOW_URL"
  read -r gi gp _ go < <(hold_rss "$GW_PID" "$GW_URL" GAPS_KEY=gk-bench)
  stop "$GW_PID"
  start_proxy "$SLOW_URL"
  read -r pi pp _ po < <(hold_rss "$PX_PID" "$PX_URL")
  stop "$PX_PID"
  [ "$RELAY_BIG" -lt "$BIG" ] && echo "(the open-file limit $LIMIT allows $RELAY_BIG relayed streams, not $BIG)"
  echo "RSS per relayed stream at $RELAY_BIG streams: gateway $(( (gp - gi) * 1024 / RELAY_BIG )) bytes ($((gi / 1024)) -> $((gp / 1024)) MB, $go open), bare proxy $(( (pp - pi) * 1024 / RELAY_BIG )) bytes ($((pi / 1024)) -> $((pp / 1024)) MB, $po open)  (goal: gateway < 20 KB)"
fi

echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
report_steal
