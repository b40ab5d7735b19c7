#!/usr/bin/env bash
# The load generator against its peers: gauntlet (examples/engine_bench, the engine as
# `gauntlet run` drives it), wrk and oha, closed loop with the same connection count, against
# two fast servers: nginx (Debian's, one worker, a `return 200` of a fixed chat completion:
# a server nobody here wrote) and gauntlet's zero-latency mock. Alternating rounds of one run
# (the order rotates each round, so a machine that speeds up or slows down favours no tool);
# medians compared. Goals (issue 19): gauntlet >= 1.0x wrk and >= 1.2x oha in req/s.
#
#   benches/vs_peers.sh [CONNECTIONS=50] [SECONDS=10]
#     ROUNDS=5                  rounds per target
#     TARGETS="nginx mock"      which servers (empty: none, with CALLGRIND=1 only that)
#     CALLGRIND=1               also: the engine's CPU instructions per request under
#                               callgrind against native nginx (stable on a busy machine)
#
# Every gauntlet request is still timed from its intended send time, read to its end and
# classified; a round where any request failed stops the script.
# Needs: nginx, wrk (apt-get install -y nginx-light wrk), oha (cargo install oha), python3;
# valgrind for CALLGRIND=1.
set -euo pipefail
cd "$(dirname "$0")/.."

C=${1:-50}
SECS=${2:-10}
ROUNDS=${ROUNDS:-5}
TARGETS=${TARGETS-"nginx mock"}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
for tool in nginx wrk oha; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] \
    || { echo "$tool missing (nginx, wrk: apt-get; oha: cargo install oha)" >&2; exit 3; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# NO_BUILD=1: use the binaries already in target/release.
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet --example engine_bench --bin gauntlet
BIN=target/release/examples
source benches/common.sh

BODY='{"model":"bench-model","messages":[{"role":"user","content":"Generate a product description"}],"max_tokens":16}'
# What nginx answers: a chat completion as the mock would give it (same size within a few
# bytes), so both servers cost the clients the same parsing.
ANSWER='{"id":"chatcmpl-nginx","object":"chat.completion","created":1,"model":"bench-model","system_fingerprint":"gauntlet-nginx","choices":[{"index":0,"message":{"role":"assistant","content":"A sturdy everyday product, well made."},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":12,"completion_tokens":16,"total_tokens":28}}'

# nginx in the foreground with its own prefix and config in the work folder: one worker,
# no access log, keep-alive for as many requests as a round sends.
start_nginx() {
  local port
  port=$(free_port)
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  keepalive_requests 1000000000;
  server {
    listen 127.0.0.1:$port;
    location / {
      default_type application/json;
      return 200 '$ANSWER';
    }
  }
}
CONF
  "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" \
    >"$WORK/nginx/out.log" 2>&1 &
  PIDS+=($!)
  NGINX_URL="http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -s -o /dev/null -X POST "$NGINX_URL/v1/chat/completions" && return; sleep 0.1; done
  echo "nginx did not start: $(cat "$WORK/nginx/error.log" "$WORK/nginx/out.log")" >&2
  exit 3
}

start_mock() {
  local port
  port=$(free_port)
  printf '[[providers]]\nname = "zero"\nprofile = "%s"\nport = %s\n' \
    "$PWD/mock-upstreams/zero-latency.toml" "$port" >"$WORK/mock.toml"
  target/release/gauntlet mock --config "$WORK/mock.toml" >"$WORK/mock.log" 2>&1 &
  PIDS+=($!)
  MOCK_URL="http://127.0.0.1:$port"
  for _ in $(seq 100); do curl -s -o /dev/null "$MOCK_URL/v1/models" && return; sleep 0.1; done
  echo "the mock did not start: $(cat "$WORK/mock.log")" >&2
  exit 3
}

cat >"$WORK/chat.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA
export BENCH_MODEL=bench-model

# One tool's req/s against base URL $2.
measure() {
  local tool=$1 base=$2 out
  case $tool in
    gauntlet)
      out=$("$BIN/engine_bench" "$base" "$SECS" closed "$C")
      [ "$(echo "$out" | json 'd["successes"]==d["requests"]')" = True ] \
        || { echo "gauntlet saw failures: $out" >&2; exit 1; }
      echo "$out" | json 'round(d["rps"])' ;;
    oha)
      oha -z "${SECS}s" -c "$C" -m POST -d "$BODY" -H 'content-type: application/json' \
        --no-tui --output-format json "$base/v1/chat/completions" \
        | json 'round(d["summary"]["requestsPerSec"])' ;;
    wrk)
      wrk -t2 -c"$C" -d"${SECS}s" -s "$WORK/chat.lua" "$base/v1/chat/completions" \
        | awk '/Requests\/sec/ {printf "%d\n", $2}' ;;
  esac
}

echo "connections: $C   seconds per measurement: $SECS   rounds: $ROUNDS   cores: $(nproc)   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
source benches/steal.sh
TOOLS=(gauntlet oha wrk)
for target in $TARGETS; do
  case $target in
    nginx) start_nginx; BASE=$NGINX_URL ;;
    mock) start_mock; BASE=$MOCK_URL ;;
    *) echo "unknown target $target (nginx or mock)" >&2; exit 2 ;;
  esac
  declare -A ALL=([gauntlet]="" [oha]="" [wrk]="")
  for round in $(seq "$ROUNDS"); do
    line="round $round:"
    for i in 0 1 2; do
      tool=${TOOLS[$(((round + i) % 3))]}
      rps=$(measure "$tool" "$BASE")
      ALL[$tool]+=" $rps"
      line+="  $tool $rps"
    done
    echo "$target $line req/s"
  done
  # shellcheck disable=SC2086
  G=$(median ${ALL[gauntlet]}) O=$(median ${ALL[oha]}) W=$(median ${ALL[wrk]})
  python3 -c "
g, o, w = $G, $O, $W
print(f'$target medians: gauntlet {g}, oha {o}, wrk {w} req/s; '
      f'gauntlet/wrk = {g / w:.2f}x (goal >= 1.0) [{\"PASS\" if g >= w else \"MISS\"}], '
      f'gauntlet/oha = {g / o:.2f}x (goal >= 1.2) [{\"PASS\" if g >= 1.2 * o else \"MISS\"}]')"
  unset ALL
done
report_steal
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- the engine's instructions per request, under callgrind, against native nginx ---
# Two runs (SHORT and LONG seconds); (Ir(LONG) - Ir(SHORT)) / (requests(LONG) -
# requests(SHORT)) is the steady cost of one request, start-up and shutdown left out.
if [ -n "${CALLGRIND:-}" ]; then
  command -v valgrind >/dev/null || { echo "valgrind is needed for CALLGRIND=1" >&2; exit 3; }
  [ -n "${NGINX_URL:-}" ] || start_nginx
  SHORT=${SHORT:-2} LONG=${LONG:-6} CG_CONN=${CG_CONN:-$C}
  cg() {
    BENCH_WARMUP_MS=0 valgrind --tool=callgrind --callgrind-out-file="$WORK/cg-$1.out" \
      "$BIN/engine_bench" "$NGINX_URL" "$1" closed "$CG_CONN" >"$WORK/cg-$1.json" 2>"$WORK/cg-$1.err"
    python3 - "$WORK/cg-$1.json" "$WORK/cg-$1.err" <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
ir = re.search(r"Collected : (\d+)", open(sys.argv[2]).read())
if not ir or d["successes"] != d["requests"]:
    sys.exit(f"run failed: {d}")
print(ir.group(1), d["requests"])
PY
  }
  read -r IR1 N1 < <(cg "$SHORT")
  read -r IR2 N2 < <(cg "$LONG")
  python3 -c "print(f'engine under callgrind, closed loop, $CG_CONN connections, against nginx: {($IR2 - $IR1) / ($N2 - $N1):.0f} instructions/request ({$N2 - $N1} requests between the ${SHORT}s and ${LONG}s runs)')"
  [ -n "${KEEP_CALLGRIND:-}" ] && cp "$WORK/cg-$LONG.out" "$KEEP_CALLGRIND" && echo "kept $KEEP_CALLGRIND"
fi
