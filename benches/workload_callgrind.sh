#!/usr/bin/env bash
# The load generator's own cost of drawing from a dataset: CPU instructions per request of the
# engine (examples/engine_bench, under valgrind's callgrind) with a dataset class against the
# same run with one fixed prompt of the dataset's mean shape (text length and tokens asked
# for), both against a native zero-latency mock. Instruction counts do not move with the
# machine's load, and the mock's work is left out, so this isolates what sampling, building
# bodies and counting costs gauntlet itself; benches/workload_throughput.sh measures the whole
# machine instead (there a richer request also costs the server more).
#
#   benches/workload_callgrind.sh [DATASET=datasets/chat-mix.jsonl]
#
# Each mode runs twice (SHORT and LONG seconds); (Ir(LONG) - Ir(SHORT)) / (requests(LONG) -
# requests(SHORT)) is the steady cost of one request, start-up (reading and checking the
# dataset, loading the vocabulary) and the first pass over the dataset left out. Exit 0 when
# the dataset run costs at most 1/0.9 of the fixed one (the >= 0.9x target), else 1.
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=${1:-datasets/chat-mix.jsonl}
SHORT=${SHORT:-2}
LONG=${LONG:-6}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install -y valgrind" >&2; exit 3; }
cargo build --release --quiet --example engine_bench --bin gauntlet

OUT=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf '[[providers]]\nname = "zero"\nprofile = "%s"\nport = %s\n' \
  "$PWD/mock-upstreams/zero-latency.toml" "$PORT" >"$OUT/fleet.toml"
target/release/gauntlet mock --config "$OUT/fleet.toml" >"$OUT/mock.log" 2>&1 &
MOCK=$!
cleanup() { kill "$MOCK" 2>/dev/null || true; rm -rf "$OUT"; }
trap cleanup EXIT
BASE="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -s -o /dev/null "$BASE/v1/models" && break; sleep 0.1; done

read -r BYTES MAXTOK < <(python3 benches/dataset_shape.py "$DATASET")
echo "dataset: $DATASET; the fixed peer: $BYTES bytes of text, $MAXTOK tokens asked for"

export BENCH_MODEL=bench-model BENCH_LOAD_THREADS=1
# Instructions and requests of one run: MODE SECONDS.
one() {
  local mode=$1 secs=$2 envs
  if [ "$mode" = dataset ]; then
    envs=(env -u BENCH_PROMPT_BYTES -u BENCH_MAX_TOKENS BENCH_DATASET="$DATASET")
  else
    envs=(env -u BENCH_DATASET BENCH_PROMPT_BYTES="$BYTES" BENCH_MAX_TOKENS="$MAXTOK")
  fi
  "${envs[@]}" valgrind --tool=callgrind --callgrind-out-file="$OUT/$mode-$secs.out" \
    target/release/examples/engine_bench "$BASE" "$secs" closed 4 \
    >"$OUT/$mode-$secs.json" 2>"$OUT/$mode-$secs.err"
  python3 - "$OUT/$mode-$secs.json" "$OUT/$mode-$secs.err" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
ir = re.search(r"Collected : (\d+)", open(sys.argv[2]).read())
if not ir or d["successes"] != d["requests"]:
    sys.exit(f"run failed: {d}")
print(ir.group(1), d["requests"])
PY
}
declare -A PER
for mode in fixed dataset; do
  read -r ir_s n_s < <(one "$mode" "$SHORT")
  read -r ir_l n_l < <(one "$mode" "$LONG")
  PER[$mode]=$(( (ir_l - ir_s) / (n_l - n_s) ))
  echo "$mode: ${PER[$mode]} instructions/request (${SHORT}s: $n_s requests, ${LONG}s: $n_l)"
done
python3 -c "
f, d = ${PER[fixed]}, ${PER[dataset]}
r = f / d
print(f'engine capacity with the dataset / with the fixed prompt = {r:.2f}x (target >= 0.90x): ' + ('ok' if r >= 0.9 else 'BELOW TARGET'))
raise SystemExit(0 if r >= 0.9 else 1)"
