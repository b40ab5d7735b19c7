#!/usr/bin/env bash
# HTTPS benchmark: the load generator over TLS against peers, and what TLS costs it, in
# alternating rounds of one run against the same zero-latency TLS mock (a private CA made by
# `gauntlet mock --tls-self-signed`), closed loop, same connection count, connections reused.
#   gauntlet https   engine_bench, trusting the private CA (HTTP/1.1: the mock offers only it)
#   wrk https        wrk with its OpenSSL client (no certificate check)
#   oha https        oha --insecure, when oha is installed (cargo install oha)
#   gauntlet http    the same engine against the same mock served without TLS
# Then CPU per request of the generator for https and http (user+sys seconds / requests).
# Then the reference gateway both ways, in alternating rounds under wrk: HTTPS in and HTTPS out
# (its own self-signed certificate, the TLS mock upstream) vs plain HTTP in and out, with the
# gateway's CPU per request (utime+stime from /proc, µs) for each.
#
#   benches/tls.sh [CONNECTIONS=50] [SECONDS=10]     (ROUNDS=3 by default)
#
# Needs: wrk (apt-get install -y wrk), python3; oha optional.
set -euo pipefail
cd "$(dirname "$0")/.."

C=${1:-50}
SECS=${2:-10}
ROUNDS=${ROUNDS:-3}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 1; }
HAVE_OHA=0; command -v oha >/dev/null && HAVE_OHA=1

cargo build --release --quiet --examples --bin gauntlet
BIN=target/release/examples
source benches/common.sh

start_mock() { # start_mock PORT [tls args...]
  local port=$1; shift
  printf '[[providers]]\nname = "zero"\nprofile = "%s"\nport = %s\n' \
    "$PWD/mock-upstreams/zero-latency.toml" "$port" >"$WORK/fleet-$port.toml"
  target/release/gauntlet mock --config "$WORK/fleet-$port.toml" "$@" >"$WORK/mock-$port.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do [ -s "$WORK/mock-$port.log" ] && break; sleep 0.1; done
}
TLS_PORT=$(free_port); start_mock "$TLS_PORT" --tls-self-signed "$WORK/pki"
PLAIN_PORT=$(free_port); start_mock "$PLAIN_PORT"
CA="$WORK/pki/ca.pem"
HTTPS="https://127.0.0.1:$TLS_PORT" PLAIN="http://127.0.0.1:$PLAIN_PORT"
export BENCH_MODEL=bench-model
BODY="{\"model\":\"$BENCH_MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"Generate a product description\"}],\"max_tokens\":16}"
cat >"$WORK/chat.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA
echo "TLS mock at $HTTPS, plain mock at $PLAIN   connections: $C   seconds: $SECS   cores: $(nproc)"
source benches/steal.sh

# engine_bench under /usr/bin/time: prints "rps cpu_seconds requests".
gauntlet_round() { # URL
  local out
  out=$( { /usr/bin/time -f '%U %S' env BENCH_CA_CERT="$CA" "$BIN/engine_bench" "$1" "$SECS" closed "$C" >"$WORK/g.json"; } 2>&1 | tail -1)
  [ "$(json 'd["successes"]==d["requests"]' <"$WORK/g.json")" = True ] \
    || { echo "gauntlet saw failures: $(cat "$WORK/g.json")" >&2; exit 1; }
  echo "$(json 'round(d["rps"])' <"$WORK/g.json") $(echo "$out" | awk '{print $1+$2}') $(json 'd["requests"]' <"$WORK/g.json")"
}
G_ALL=() W_ALL=() O_ALL=() P_ALL=() G_CPU=() P_CPU=()
for round in $(seq "$ROUNDS"); do
  read -r rps cpu n < <(gauntlet_round "$HTTPS"); G_ALL+=("$rps"); G_CPU+=("$(python3 -c "print(round($cpu/$n*1e6,1))")")
  W_ALL+=("$(wrk -t2 -c"$C" -d"${SECS}s" -s "$WORK/chat.lua" "$HTTPS/v1/chat/completions" | awk '/Requests\/sec/ {printf "%d", $2}')")
  if [ "$HAVE_OHA" = 1 ]; then
    O_ALL+=("$(oha --insecure -z "${SECS}s" -c "$C" -m POST -d "$BODY" -H 'content-type: application/json' \
      --no-tui --output-format json "$HTTPS/v1/chat/completions" | json 'round(d["summary"]["requestsPerSec"])')")
  fi
  read -r rps cpu n < <(gauntlet_round "$PLAIN"); P_ALL+=("$rps"); P_CPU+=("$(python3 -c "print(round($cpu/$n*1e6,1))")")
  echo "round $round: gauntlet https ${G_ALL[-1]}  wrk https ${W_ALL[-1]}  oha https $([ "$HAVE_OHA" = 1 ] && echo "${O_ALL[-1]}" || echo n/a)  gauntlet http ${P_ALL[-1]} req/s"
done
G=$(median "${G_ALL[@]}") W=$(median "${W_ALL[@]}") P=$(median "${P_ALL[@]}")
echo "medians: gauntlet https $G, wrk https $W, gauntlet http $P req/s"
python3 -c "print(f'ratios: gauntlet/wrk over https = {$G/$W:.2f}x   gauntlet https/http = {$G/$P:.2f}x')"
if [ "$HAVE_OHA" = 1 ]; then
  O=$(median "${O_ALL[@]}")
  python3 -c "print(f'oha https $O req/s: gauntlet/oha over https = {$G/$O:.2f}x')"
fi
echo "generator CPU per request (user+sys, µs, median): https $(median "${G_CPU[@]}"), http $(median "${P_CPU[@]}")"

# The gateway: one serving HTTPS to an HTTPS upstream, one plain to a plain upstream.
start_gateway() { # start_gateway PORT UPSTREAM_URL SCHEME [tls args...]
  local port=$1 up=$2 scheme=$3; shift 3
  printf 'keys = [{ key = "gk-bench", tier = "pro" }]\nroutes = [{ model = "%s", targets = ["zero"] }]\n[[upstreams]]\nname = "zero"\nurl = "%s"\n' \
    "$BENCH_MODEL" "$up" >"$WORK/gw-$port.toml"
  target/release/gauntlet gateway --config "$WORK/gw-$port.toml" --listen "127.0.0.1:$port" "$@" \
    >"$WORK/gw-$port.log" 2>&1 &
  PIDS+=($!)
  GW_PID=$!
  for _ in $(seq 100); do curl -sk -o /dev/null "$scheme://127.0.0.1:$port/health" 2>/dev/null && break; sleep 0.1; done
}
GWS_PORT=$(free_port); start_gateway "$GWS_PORT" "$HTTPS" https --tls-self-signed "$WORK/gw-pki" --ca-cert "$CA"
GWS_PID=$GW_PID
GWP_PORT=$(free_port); start_gateway "$GWP_PORT" "$PLAIN" http
GWP_PID=$GW_PID
cat >"$WORK/gw.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer gk-bench"
LUA
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# gw_round URL PID: prints "rps cpu_us_per_request"; a round with errors stops the bench.
gw_round() {
  local before after out rps n
  before=$(cpu_ticks "$2")
  out=$(wrk -t2 -c"$C" -d"${SECS}s" -s "$WORK/gw.lua" "$1/v1/chat/completions")
  after=$(cpu_ticks "$2")
  if echo "$out" | grep -q 'Non-2xx\|Socket errors'; then echo "gateway round failed: $out" >&2; exit 1; fi
  rps=$(echo "$out" | awk '/Requests\/sec/ {printf "%d", $2}')
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$rps $(python3 -c "print(round(($after-$before)/$(getconf CLK_TCK)/$n*1e6,1))")"
}
GS_ALL=() GP_ALL=() GS_CPU=() GP_CPU=()
for round in $(seq "$ROUNDS"); do
  read -r rps cpu < <(gw_round "https://127.0.0.1:$GWS_PORT" "$GWS_PID"); GS_ALL+=("$rps"); GS_CPU+=("$cpu")
  read -r rps cpu < <(gw_round "http://127.0.0.1:$GWP_PORT" "$GWP_PID"); GP_ALL+=("$rps"); GP_CPU+=("$cpu")
  echo "gateway round $round: https in+out ${GS_ALL[-1]} req/s (${GS_CPU[-1]} µs CPU/req)  http ${GP_ALL[-1]} req/s (${GP_CPU[-1]} µs CPU/req)"
done
GS=$(median "${GS_ALL[@]}") GP=$(median "${GP_ALL[@]}")
python3 -c "print(f'gateway medians: https in+out $GS req/s, http $GP req/s: https/http = {$GS/$GP:.2f}x')"
echo "gateway CPU per request (µs, median): https $(median "${GS_CPU[@]}"), http $(median "${GP_CPU[@]}")"
report_steal
