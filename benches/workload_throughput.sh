#!/usr/bin/env bash
# Workload benchmark: closed-loop throughput of a class drawing from a dataset (a body built
# per request, prompt tokens counted with the tokenizer) against the same run with one fixed
# prompt of the dataset's mean shape (text length and tokens asked for), and with the usual
# short prompt; same zero-latency
# mock (which counts every prompt with the BPE tokenizer), same connections, in alternating
# rounds; prints the medians and their ratios (the target, dataset vs same-size fixed prompt,
# is >= 0.90x).
#
#   benches/workload_throughput.sh [CONNECTIONS=50] [SECONDS=10] [DATASET=datasets/chat-mix.jsonl]
set -euo pipefail
cd "$(dirname "$0")/.."

C=${1:-50}
SECS=${2:-10}
DATASET=${3:-datasets/chat-mix.jsonl}
ROUNDS=${ROUNDS:-3}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

cargo build --release --quiet --examples --bin gauntlet
BIN=target/release/examples
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
UP_LOG=$(mktemp)
FLEET=$(mktemp --suffix=.toml)
printf '[[providers]]\nname = "zero"\nprofile = "%s"\nport = %s\n' \
  "$PWD/mock-upstreams/zero-latency.toml" "$PORT" >"$FLEET"
target/release/gauntlet mock --config "$FLEET" >"$UP_LOG" 2>&1 &
UP_PID=$!
cleanup() { kill "$UP_PID" 2>/dev/null || true; rm -f "$UP_LOG" "$FLEET"; }
trap cleanup EXIT
BASE="http://127.0.0.1:$PORT"
export BENCH_MODEL=bench-model
for _ in $(seq 100); do curl -s -o /dev/null "$BASE/v1/models" && break; sleep 0.1; done
echo "zero-latency mock at $BASE   connections: $C   seconds: $SECS   cores: $(nproc)"
echo "dataset: $DATASET ($(wc -l <"$DATASET") requests, $(($(wc -c <"$DATASET") / 1024)) KiB)"

one() {
  local out
  out=$("$@" "$BIN/engine_bench" "$BASE" "$SECS" closed "$C")
  [ "$(echo "$out" | json 'd["successes"]==d["requests"]')" = True ] \
    || { echo "failures: $out" >&2; exit 1; }
  echo "$out" | json 'round(d["rps"])'
}
# The dataset's mean request: bytes of message text, and the tokens it asks for (a line's own
# max_tokens, which the mock writes exactly). The fixed prompt of that shape is the peer the
# target is about: drawing requests vs sending one, with the same work for the server. The short
# one with 16 tokens shows what the dataset's longer prompts and answers cost on top.
read -r BYTES MAXTOK < <(python3 benches/dataset_shape.py "$DATASET")
echo "mean request: $BYTES bytes of message text, $MAXTOK tokens asked for"
S_ALL=() F_ALL=() D_ALL=()
for round in $(seq "$ROUNDS"); do
  S_ALL+=("$(one env -u BENCH_DATASET -u BENCH_PROMPT_BYTES -u BENCH_MAX_TOKENS)")
  F_ALL+=("$(one env -u BENCH_DATASET BENCH_PROMPT_BYTES="$BYTES" BENCH_MAX_TOKENS="$MAXTOK")")
  D_ALL+=("$(one env -u BENCH_PROMPT_BYTES -u BENCH_MAX_TOKENS BENCH_DATASET="$DATASET")")
  echo "round $round: short fixed prompt ${S_ALL[-1]}  fixed prompt of the mean shape ${F_ALL[-1]}  dataset ${D_ALL[-1]} req/s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
S=$(median "${S_ALL[@]}") F=$(median "${F_ALL[@]}") D=$(median "${D_ALL[@]}")
echo "medians: short fixed prompt $S, fixed prompt of the mean shape $F, dataset $D req/s"
python3 -c "r = $D / $F; print(f'ratio dataset / fixed prompt of the mean shape = {r:.2f}x (target >= 0.90x): ' + ('ok' if r >= 0.9 else 'BELOW TARGET'))"
python3 -c "print(f'ratio dataset / short fixed prompt = {$D / $S:.2f}x (what longer prompts and answers cost on top)')"
