#!/usr/bin/env bash
# What the live exporter costs: closed-loop throughput of `gauntlet run` against a zero-latency
# mock without --metrics-listen, with it while curl scrapes /metrics every second, and with
# --otlp pushing every second to a loopback OTLP sink, in rotating rounds of one run; prints
# the medians, their ratios (the issue's bar: >= 0.97x) and their spread, and gauntlet's own
# CPU time per request each way. On a shared 2-core machine rounds of one
# setting differ by up to 10%, so it also counts instructions per request under callgrind, and
# the exporter's own share of them, which other work on the machine cannot move.
#
#   benches/live_metrics.sh [CONNECTIONS=50] [SECONDS=10]     (ROUNDS=5 by default)
#
# Needs: python3, curl; valgrind for the instruction counts (skipped without it).
set -euo pipefail
cd "$(dirname "$0")/.."

C=${1:-50}
SECS=${2:-10}
ROUNDS=${ROUNDS:-5}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
command -v curl >/dev/null || { echo "curl missing: apt-get install -y curl" >&2; exit 1; }
cargo build --release --quiet --bin gauntlet
source benches/common.sh

MOCK_PORT=$(free_port)
printf '[[providers]]\nname = "zero"\nprofile = "%s"\nport = %s\n' \
  "$PWD/mock-upstreams/zero-latency.toml" "$MOCK_PORT" >"$WORK/mock.toml"
target/release/gauntlet mock --config "$WORK/mock.toml" >"$WORK/mock.log" 2>&1 & PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/mock.log" ] && break; sleep 0.1; done
cat >"$WORK/closed.toml" <<TOML
name = "live-metrics-bench"
seed = 3
[target]
url = "http://127.0.0.1:$MOCK_PORT"
[[upstreams]]
name = "zero"
url = "http://127.0.0.1:$MOCK_PORT"
[load]
model = "closed"
duration = "$((SECS + 1))s"
warmup = "1s"
concurrency = $C
[[requests]]
name = "bench"
model = "bench-model"
prompt = "Generate a product description"
max_tokens = 16
primary = "zero"
# With the exporter on, these are judged about once a second on a copy of the recording.
[sla]
availability = "99%"
p99_latency = "500ms"
TOML
# The OTLP sink: answers every POST /v1/metrics as a collector does (200, an empty
# ExportMetricsServiceResponse) and logs one line per push.
OTLP_PORT=$(free_port)
python3 - "$OTLP_PORT" "$WORK/pushes" >"$WORK/sink.log" 2>&1 <<'PY' & PIDS+=($!)
import http.server, sys
log = open(sys.argv[2], "a", buffering=1)
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        ok = self.path == "/v1/metrics" and self.headers.get("content-type") == "application/x-protobuf"
        self.send_response(200 if ok else 400)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
        log.write("ok\n" if ok else "bad\n")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
echo "zero-latency mock at :$MOCK_PORT   connections: $C   seconds: $SECS (+1 s warmup)   rounds: $ROUNDS   cores: $(nproc)"
source benches/steal.sh

round() { # [extra args...] -> "REQ/S CPU-µs-PER-REQUEST" of the measured window
  local out="$WORK/run-$RANDOM$RANDOM" cpu
  # gauntlet's own CPU time (user + system), from the kernel's accounting of the child.
  cpu=$(python3 -c '
import resource, subprocess, sys
code = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=open(sys.argv[1], "w")).returncode
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.ru_utime + r.ru_stime if code in (0, 1) else "failed")' \
    "$WORK/run.err" target/release/gauntlet run "$WORK/closed.toml" -q --force --out "$out" "$@")
  [ "$cpu" != failed ] || { cat "$WORK/run.err" >&2; exit 1; }
  [ "$(json 'd["overall"]["successes"]==d["overall"]["requests"]' <"$out/summary.json")" = True ] \
    || { echo "failures: $(json 'd["overall"]["errors"]' <"$out/summary.json")" >&2; exit 1; }
  # CPU over every request sent, warmup included, as the CPU time covers the whole run.
  python3 - "$cpu" "$out/summary.json" <<'PY'
import json, sys
cpu, d = float(sys.argv[1]), json.load(open(sys.argv[2]))
o = d["overall"]
sent = o["requests"] / max(d["duration_s"], 1e-9) * (d["duration_s"] + d["warmup_s"])
print(round(o["rps"]), f"{1e6 * cpu / sent:.2f}")
PY
}
# The scraper, as Prometheus would be: one GET a second for as long as the run lasts.
scraped() { # metrics port -> `round` with the exporter on and a scraper on it, + scrapes
  local port=$1 scrapes result
  (
    while :; do
      if curl -sf -o /dev/null "http://127.0.0.1:$port/metrics"; then echo ok; fi
      sleep 1
    done
  ) >"$WORK/scrapes" &
  local scraper=$!
  result=$(round --metrics-listen "127.0.0.1:$port")
  kill "$scraper" 2>/dev/null || true
  wait "$scraper" 2>/dev/null || true
  scrapes=$(grep -c ok "$WORK/scrapes" || true)
  [ "$scrapes" -ge $((SECS / 2)) ] || { echo "only $scrapes scrapes answered" >&2; exit 1; }
  echo "$result $scrapes"
}
# Pushing every second to the sink, as a collector would be fed.
pushed() { # -> `round` with --otlp on, + pushes the sink took
  local before after result
  before=$(grep -c ok "$WORK/pushes" 2>/dev/null || true)
  result=$(round --otlp "http://127.0.0.1:$OTLP_PORT" --otlp-interval 1s)
  after=$(grep -c ok "$WORK/pushes" 2>/dev/null || true)
  [ $((after - before)) -ge $((SECS / 2)) ] || { echo "only $((after - before)) pushes taken" >&2; exit 1; }
  echo "$result $((after - before))"
}
OFF=() ON=() OT=() OFF_CPU=() ON_CPU=() OT_CPU=() RATIO_ON=() RATIO_OT=()
for r in $(seq "$ROUNDS"); do
  # Which goes first rotates, so none always runs on a mock another just warmed.
  case $((r % 3)) in
    1) read -r a ac < <(round); read -r b bc n < <(scraped "$(free_port)"); read -r c cc p < <(pushed) ;;
    2) read -r b bc n < <(scraped "$(free_port)"); read -r c cc p < <(pushed); read -r a ac < <(round) ;;
    0) read -r c cc p < <(pushed); read -r a ac < <(round); read -r b bc n < <(scraped "$(free_port)") ;;
  esac
  [ -n "${a:-}" ] && [ -n "${b:-}" ] && [ -n "${c:-}" ] || { echo "a round failed" >&2; exit 1; }
  OFF+=("$a") OFF_CPU+=("$ac") ON+=("$b") ON_CPU+=("$bc") OT+=("$c") OT_CPU+=("$cc")
  RATIO_ON+=("$(python3 -c "print(f'{$b / $a:.3f}')")") RATIO_OT+=("$(python3 -c "print(f'{$c / $a:.3f}')")")
  echo "round $r: without $a req/s ($ac µs CPU/request)   with --metrics-listen + 1 s scraper $b req/s ($bc µs CPU/request, $n scrapes)   with --otlp every 1 s $c req/s ($cc µs CPU/request, $p pushes)"
done
python3 - "$(median "${OFF[@]}")" "$(median "${ON[@]}")" "$(median "${OT[@]}")" \
  "$(median "${OFF_CPU[@]}")" "$(median "${ON_CPU[@]}")" "$(median "${OT_CPU[@]}")" \
  "${RATIO_ON[*]}" "${RATIO_OT[*]}" <<'PY'
import sys
off, on, ot, off_cpu, on_cpu, ot_cpu = map(float, sys.argv[1:7])
per_round = {"--metrics-listen": sorted(map(float, sys.argv[7].split())),
             "--otlp": sorted(map(float, sys.argv[8].split()))}
print(f"medians: without {off:.0f} req/s ({off_cpu:.2f} µs CPU/request), "
      f"with the exporter scraped every 1 s {on:.0f} req/s ({on_cpu:.2f} µs CPU/request), "
      f"with --otlp every 1 s {ot:.0f} req/s ({ot_cpu:.2f} µs CPU/request)")
for name, value, cpu in (("--metrics-listen", on, on_cpu), ("--otlp", ot, ot_cpu)):
    r = value / off
    rounds = per_round[name]
    print(f"{name}: ratio of medians with / without = {r:.3f}x (target >= 0.97x): "
          + ("ok" if r >= 0.97 else "BELOW TARGET")
          + f"; same-round ratios {min(rounds):.3f}..{max(rounds):.3f} (median {rounds[len(rounds) // 2]:.3f})")
    print(f"{name}: gauntlet's CPU per request with / without = {cpu / off_cpu:.3f}x "
          "(steadier than throughput when other work shares the cores)")
PY
report_steal

# Instructions, which the machine's other work cannot move: one short closed run of each under
# callgrind (valgrind's slowdown caps it near 4k req/s), as instructions per request, and the
# exporter's own share (instructions on lines of src/observe/, inlined into the recorder).
if command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null; then
  sed -e 's/^duration = .*/duration = "6s"/' -e 's/^concurrency = .*/concurrency = 10/' \
    "$WORK/closed.toml" >"$WORK/cg.toml"
  for mode in off on otlp; do
    args=()
    [ "$mode" = on ] && args=(--metrics-listen "127.0.0.1:$(free_port)")
    [ "$mode" = otlp ] && args=(--otlp "http://127.0.0.1:$OTLP_PORT" --otlp-interval 1s)
    valgrind --tool=callgrind --callgrind-out-file="$WORK/$mode.cg" target/release/gauntlet run \
      "$WORK/cg.toml" -q --force --out "$WORK/cg-$mode" "${args[@]}" >/dev/null 2>"$WORK/$mode.vg" \
      || [ $? -eq 1 ] || { cat "$WORK/$mode.vg" >&2; exit 1; }
  done
  python3 - "$WORK" <<'PY'
import json, re, subprocess, sys
work = sys.argv[1]
per = {}
for mode in ("off", "on", "otlp"):
    d = json.load(open(f"{work}/cg-{mode}/summary.json"))
    ir = int(re.search(r"Collected : (\d+)", open(f"{work}/{mode}.vg").read()).group(1))
    sent = d["overall"]["requests"] / d["duration_s"] * (d["duration_s"] + d["warmup_s"])
    per[mode] = (ir / sent, ir)
def own_share(mode):
    annotated = subprocess.run(["callgrind_annotate", f"{work}/{mode}.cg"], capture_output=True, text=True).stdout
    observe = sum(int(m.group(1).replace(",", "")) for m in re.finditer(r"^\s*([\d,]+) \(.*src/observe/", annotated, re.M))
    return 100 * observe / per[mode][1]
print(f"callgrind: {per['off'][0]:.0f} instructions/request without, {per['on'][0]:.0f} with the exporter "
      f"(its own code {own_share('on'):.2f}% of them), {per['otlp'][0]:.0f} with --otlp "
      f"(its own code {own_share('otlp'):.2f}%)")
PY
else
  echo "callgrind: skipped (apt-get install -y valgrind for the instruction counts)"
fi
