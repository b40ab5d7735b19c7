#!/usr/bin/env bash
# Many concurrent slow streams held from one box: `gauntlet run` (closed model, one user per
# stream, every token timed) spreads its connections over several source addresses
# (--source-ips) against one gauntlet mock whose streams trickle; RSS of each process and
# the kernel's TCP memory are reported once every stream is open and while they are held.
# Issue 18's goal: 100,000 concurrent streams from one box.
#
#   benches/many_streams.sh [STREAMS=100000] [HOLD_SECONDS=30] [SOURCES=127.0.0.2-127.0.0.9]
#     RAMP_LIMIT=600   seconds allowed for opening every stream
#     TOKENS_PER_SECOND=0.5 MAX_TOKENS=200   the mock's pace and each stream's length
#                      (400 s per stream by default: a user holds one stream for the run)
#
# Limits that stop it short, checked first: descriptors (each stream is one socket in each
# process: `ulimit -n` is raised up to fs.nr_open, which needs root or a high hard limit),
# and ephemeral ports: one source address has (net.ipv4.ip_local_port_range) ports towards
# the mock's one address and port, so STREAMS needs STREAMS / ports source addresses.
# Exit 0 when every stream was open at once, 1 when fewer, 3 when the run failed.
set -euo pipefail
cd "$(dirname "$0")/.."

STREAMS=${1:-100000}
HOLD=${2:-30}
SOURCES=${3:-127.0.0.2-127.0.0.9}
RAMP_LIMIT=${RAMP_LIMIT:-600}
TOKENS_PER_SECOND=${TOKENS_PER_SECOND:-0.5}
MAX_TOKENS=${MAX_TOKENS:-200}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

NEED=$((STREAMS + 1000))
ulimit -Hn "$(cat /proc/sys/fs/nr_open)" 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NEED" ]; then
  echo "open-file limit $(ulimit -n) (hard $(ulimit -Hn), fs.nr_open $(cat /proc/sys/fs/nr_open)) is below $NEED" >&2
  exit 3
fi
read -r LO HI </proc/sys/net/ipv4/ip_local_port_range
PORTS=$((HI - LO + 1))
N_SOURCES=$(python3 -c "
import ipaddress, sys
n = 0
for item in '$SOURCES'.split(','):
    a, _, b = item.strip().partition('-')
    n += int(ipaddress.ip_address(b or a)) - int(ipaddress.ip_address(a)) + 1
print(n)")
echo "streams: $STREAMS   source addresses: $SOURCES ($N_SOURCES x $PORTS ephemeral ports = $((N_SOURCES * PORTS)) connections at most)   open-file limit: $(ulimit -n)"
[ $((N_SOURCES * PORTS)) -ge "$STREAMS" ] || echo "warning: not enough source ports for $STREAMS streams" >&2

# NO_BUILD=1: use target/release/gauntlet as built.
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet --bin gauntlet
source benches/common.sh

PORT=$(free_port)
cat >"$WORK/trickle.toml" <<TOML
name = "trickle"
seed = 5
[[models]]
name = "slow-model"
input_price_per_m = 0.0
output_price_per_m = 0.0
[latency]
ttft = "10ms"
tokens_per_second = $TOKENS_PER_SECOND
TOML
printf '[[providers]]\nname = "trickle"\nprofile = "%s"\nport = %s\n' "$WORK/trickle.toml" "$PORT" >"$WORK/fleet.toml"
target/release/gauntlet mock --config "$WORK/fleet.toml" >"$WORK/mock.log" 2>&1 &
MOCK=$!
PIDS+=("$MOCK")
URL="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -s -o /dev/null "$URL/v1/models" && break; sleep 0.1; done

# One user per stream; the plan outlasts the ramp and the hold, and the script stops the run
# (Ctrl-C's way) once it has measured.
cat >"$WORK/many.toml" <<TOML
name = "many-streams"
seed = 5
[target]
url = "$URL"
[load]
model = "closed"
concurrency = $STREAMS
duration = "$((RAMP_LIMIT + HOLD + 600))s"
timeout = "3600s"
[[requests]]
name = "trickle"
weight = 1
model = "slow-model"
prompt = "Generate a product description"
max_tokens = $MAX_TOKENS
stream = true
TOML

in_flight() { curl -s --max-time 5 "$URL/__gauntlet/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("in_flight", 0))' 2>/dev/null || echo 0; }
rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Pages of memory the kernel's TCP sockets hold (buffers), in MB.
tcp_mem_mb() { awk -v p="$(getconf PAGESIZE)" '/^TCP:/ {for (i = 1; i < NF; i++) if ($i == "mem") printf "%.0f", $(i + 1) * p / 1048576}' /proc/net/sockstat; }
IDLE_MOCK=$(rss_mb "$MOCK")
TCP0=$(tcp_mem_mb)
source benches/steal.sh

target/release/gauntlet run "$WORK/many.toml" -q --plain --source-ips "$SOURCES" --out "$WORK/run" \
  >"$WORK/run.log" 2>&1 &
RUN=$!
PIDS+=("$RUN")
START=$(date +%s)
PEAK=0
while :; do
  sleep 2
  kill -0 "$RUN" 2>/dev/null || { echo "gauntlet run ended early: $(tail -5 "$WORK/run.log")" >&2; exit 3; }
  N=$(in_flight)
  [ "$N" -gt "$PEAK" ] && PEAK=$N
  T=$(($(date +%s) - START))
  echo "t+${T}s: streams open at the mock $N   RSS gauntlet $(rss_mb "$RUN") MB, mock $(rss_mb "$MOCK") MB" >&2
  [ "$N" -ge "$STREAMS" ] && break
  [ "$T" -ge "$RAMP_LIMIT" ] && { echo "ramp limit ${RAMP_LIMIT}s reached" >&2; break; }
done
RAMP=$(($(date +%s) - START))
sleep "$HOLD"
HELD=$(in_flight)
[ "$HELD" -gt "$PEAK" ] && PEAK=$HELD
G_RSS=$(rss_mb "$RUN") M_RSS=$(rss_mb "$MOCK") TCP=$(tcp_mem_mb)
SOURCES_SEEN=$(ss -Htn state established "( dport = :$PORT )" | awk '{split($3, a, ":"); print a[1]}' | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}')
report_steal
kill -INT "$RUN" 2>/dev/null || true
wait "$RUN" 2>/dev/null || true

python3 - "$STREAMS" "$PEAK" "$HELD" "$RAMP" "$HOLD" "$G_RSS" "$M_RSS" "$IDLE_MOCK" "$TCP" "$TCP0" <<'PY'
import sys
streams, peak, held, ramp, hold, g, m, m0, tcp, tcp0 = map(float, sys.argv[1:])
print(f"streams asked: {streams:.0f}; open at once (the mock's in_flight): peak {peak:.0f}, "
      f"after holding {hold:.0f} s: {held:.0f}; all open after {ramp:.0f} s")
per = lambda mb: f"{mb * 1024 / held:.1f} KB/stream" if held else "-"
print(f"RSS: gauntlet run {g:.0f} MB ({per(g)}), mock {m:.0f} MB ({per(m - m0)} above its idle {m0:.0f} MB); "
      f"kernel TCP buffers {tcp:.0f} MB (was {tcp0:.0f} MB)")
PY
echo "connections per source address (ss): $SOURCES_SEEN"
[ "$HELD" -ge "$STREAMS" ]
