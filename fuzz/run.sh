#!/usr/bin/env bash
# Runs fuzz targets for SECONDS each (default 60), one after the other, and prints each
# target's executions: `fuzz/run.sh 600` runs all four, `fuzz/run.sh 600 sse_split` one. Needs cargo-fuzz; on a stable toolchain RUSTC_BOOTSTRAP=1 lets
# it use the nightly-only sanitizer flags.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
export RUSTC_BOOTSTRAP=1
mkdir -p logs
targets=("${@:2}")
[ ${#targets[@]} -gt 0 ] || targets=(scenario_load config_load sse_split chat_request)
for t in "${targets[@]}"; do
  echo "== $t for ${secs}s"
  cargo fuzz run "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 >"logs/$t.log" 2>&1 \
    || { echo "$t FAILED; see fuzz/logs/$t.log"; tail -40 "logs/$t.log"; exit 1; }
  grep -E "^(#[0-9]+: *DONE|Done [0-9]+ runs)" "logs/$t.log" | tail -2
done
