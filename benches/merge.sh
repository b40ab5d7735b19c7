#!/usr/bin/env bash
# Merging is cheap: 64 shards' parts of a 1-hour run (1 s intervals, every class of the
# enterprise scenario, log-normal latencies, streams, errors; synthesized by
# examples/synth_parts.rs) merged by `gauntlet merge`, timed with /usr/bin/time -v (wall
# time, peak RSS), beside the peak RSS of `gauntlet merge` given one part: memory should stay
# proportional to one run, not to the number of shards.
#
#   benches/merge.sh [SHARDS] [SECONDS] [TOTAL_RATE]     (defaults 64 3600 5000)
#
# Uses target/release; build it first (`cargo build --release --bin gauntlet --example
# synth_parts`). The machine's load and CPU steal are printed beside the numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
SHARDS=${1:-64}
SECONDS_=${2:-3600}
RATE=${3:-5000}
BIN=target/release/gauntlet
SYNTH=target/release/examples/synth_parts
[ -x "$BIN" ] && [ -x "$SYNTH" ] || { echo "build first: cargo build --release --bin gauntlet --example synth_parts" >&2; exit 3; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 3; }

echo "synthesizing $SHARDS parts of ${SECONDS_}s at $RATE req/s in total..."
"$SYNTH" scenarios/enterprise.toml "$WORK/parts" "$SHARDS" "$SECONDS_" "$RATE" 2>"$WORK/synth.log"
part_bytes=$(du -cb "$WORK"/parts/shard-*/part.gpart | tail -1 | cut -f1)
echo "parts: $SHARDS files, $((part_bytes / 1024 / 1024)) MiB in total ($((part_bytes / SHARDS / 1024)) KiB each)"

source benches/steal.sh
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
measure() { # label, then the parts
  local label=$1; shift
  rm -rf "$WORK/out"
  /usr/bin/time -v "$BIN" merge "$@" --out "$WORK/out" >/dev/null 2>"$WORK/time.log" || true
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/time.log")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.log")
  echo "$label: wall $wall, peak RSS $((rss / 1024)) MiB"
}
measure "merge of 1 part (load, conclude, write every report)" "$WORK/parts/shard-0"
measure "merge of $SHARDS parts" "$WORK"/parts/shard-*
python3 -c "import json; s=json.load(open('$WORK/out/summary.json')); print('merged:', s['overall']['requests'], 'requests,', len(s['intervals']), 'intervals,', len(s['shards']), 'shards, verdict', s['sla']['verdict'])"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
report_steal
