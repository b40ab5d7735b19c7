#!/usr/bin/env bash
# Flat memory with long streams: STREAMS (2,000) concurrent streams cycling through the reference
# gateway for DURATION (30m), each part in its own process (mock, gateway, `gauntlet run` with a
# closed model: every stream parsed, timed, checked for its end and classified). The RSS and
# open descriptors of each process are sampled every SAMPLE seconds into $OUT/resources.csv.
#
#   benches/streams_soak.sh                    # DURATION=30m STREAMS=2000 SAMPLE=10
#   DURATION=2m benches/streams_soak.sh        # a shorter look
#
# Verdict per process: flat when, after the first fifth of the run (warmup), the last sample is
# within 10% + 4 MB of the smallest and the fitted slope is under 5% of it per hour. Exits 1 when
# a process grows, the run fails, or streams fail. Loopback only; it stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30m}
STREAMS=${STREAMS:-2000}
SAMPLE=${SAMPLE:-10}
OUT=${OUT:-reports/streams-soak}
rm -rf "$OUT" && mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((4 * STREAMS + 500)) ]; then
  echo "open-file limit $(ulimit -n) is below $((4 * STREAMS + 500)); raise it (ulimit -Hn)" >&2
  exit 3
fi

[ -n "${SKIP_BUILD:-}" ] || nice cargo build --release --quiet --bin gauntlet
BIN=$PWD/target/release/gauntlet
source benches/common.sh

MOCK_PORT=$(free_port); GW_PORT=$(free_port)
printf '[[providers]]\nname = "up"\nprofile = "%s"\nport = %s\n' \
  "$PWD/benches/streams-soak.toml" "$MOCK_PORT" >"$OUT/fleet.toml"
cat >"$OUT/gateway.toml" <<TOML
keys = [{ key = "gk-soak", tier = "pro", rpm = 100000000 }]
routes = [{ model = "bench-model", targets = ["up"] }]
[[upstreams]]
name = "up"
url = "http://127.0.0.1:$MOCK_PORT"
[breaker]
consecutive_failures = 5
cooldown = "2s"
TOML
cat >"$OUT/soak.toml" <<TOML
name = "streams-soak"
description = "$STREAMS concurrent 100-token streams cycling through the gateway for $DURATION"
seed = 9

[target]
url = "http://127.0.0.1:$GW_PORT"

[[upstreams]]
name = "up"
url = "http://127.0.0.1:$MOCK_PORT"

[load]
model = "closed"
duration = "$DURATION"
concurrency = $STREAMS
warmup = "20s"
timeout = "60s"

[[requests]]
name = "stream"
weight = 1
model = "bench-model"
prompt = "Generate a product description"
max_tokens = 100
stream = true
api_key = "gk-soak"
primary = "up"

[sla]
availability = "99.9%"
TOML
"$BIN" validate "$OUT/soak.toml" >/dev/null

"$BIN" mock --config "$OUT/fleet.toml" >"$OUT/mock.log" 2>&1 &
MOCK=$!; PIDS+=("$MOCK")
"$BIN" gateway --config "$OUT/gateway.toml" --listen "127.0.0.1:$GW_PORT" >"$OUT/gateway.log" 2>&1 &
GATE=$!; PIDS+=("$GATE")
for url in "http://127.0.0.1:$MOCK_PORT/__gauntlet/stats" "http://127.0.0.1:$GW_PORT/health"; do
  for _ in $(seq 100); do curl -sf -o /dev/null "$url" && break; sleep 0.1; done
done

"$BIN" run "$OUT/soak.toml" --out "$OUT/run" --force >"$OUT/run.log" 2>&1 &
RUN=$!; PIDS+=("$RUN")

resources_csv "$OUT/resources.csv"
source benches/steal.sh
START=$(date +%s)
echo "streams soak: $STREAMS streams for $DURATION through the gateway; sampling every ${SAMPLE}s into $OUT/resources.csv"
sample_while "$OUT/resources.csv" "$RUN" mock="$MOCK" gateway="$GATE" run="$RUN"
set +e
wait "$RUN"; RUN_EXIT=$?
set -e
curl -sf "http://127.0.0.1:$MOCK_PORT/__gauntlet/stats" >"$OUT/mock-stats.json" || true
report_steal | tee "$OUT/steal.txt"

python3 - "$OUT" "$RUN_EXIT" <<'PY'
import csv, json, sys
out, run_exit = sys.argv[1], int(sys.argv[2])
rows = list(csv.DictReader(open(f"{out}/resources.csv")))
ok = run_exit in (0, 1)
print(f"run exit code {run_exit}")
print(f"{'process':<8} {'samples':>7} {'rss first':>10} {'after warmup':>12} {'rss max':>9} {'rss last':>9} {'slope':>12} {'fds max':>8}  verdict")
for name in ("mock", "gateway", "run"):
    r = [x for x in rows if x["process"] == name]
    if not r:
        continue
    t = [int(x["t_s"]) for x in r]
    rss = [int(x["rss_kb"]) / 1024 for x in r]
    fds = [int(x["fds"]) for x in r]
    k = len(r) // 5
    st, sr = t[k:], rss[k:]
    slope = 0.0
    if len(st) > 2 and st[-1] > st[0]:
        mt, mr = sum(st) / len(st), sum(sr) / len(sr)
        slope = sum((a - mt) * (b - mr) for a, b in zip(st, sr)) / sum((a - mt) ** 2 for a in st) * 3600
    flat = sr[-1] <= 1.10 * min(sr) + 4 and slope <= 0.05 * min(sr) + 1
    ok &= flat
    print(f"{name:<8} {len(r):>7} {rss[0]:>8.1f}MB {sr[0]:>10.1f}MB {max(rss):>7.1f}MB {rss[-1]:>7.1f}MB {slope:>+8.1f}MB/h {max(fds):>8}  {'flat' if flat else 'GREW'}")
s = json.load(open(f"{out}/run/summary.json"))["overall"]
print(f"run: {s['requests']} streams, {s['successes']} ok, errors {s['errors']}, dropped {s['dropped']}, "
      f"{s['tokens']['completion']} tokens, availability {s['availability']*100:.3f}%")
if s["successes"] < 0.999 * s["requests"]:
    ok = False
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
