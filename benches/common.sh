# Sourced by the bench scripts that start their own servers: helpers, a work folder, and the
# servers they start (PIDS) stopped on exit.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
# Resource sampling for the soak benches: `sample_resources CSV T NAME PID` appends one row
# (t_s,process,rss_kb,fds) for a process still there (nothing once it is gone);
# `sample_while CSV PID NAME=PID...` samples the named processes every $SAMPLE seconds, timed
# from $START, for as long as PID runs.
resources_csv() { echo "t_s,process,rss_kb,fds" >"$1"; }
sample_resources() { # csv t name pid
  local rss fds
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$4/status" 2>/dev/null) || return 0
  [ -n "$rss" ] || return 0
  fds=$(ls "/proc/$4/fd" 2>/dev/null | wc -l)
  echo "$2,$3,$rss,$fds" >>"$1"
}
sample_while() { # csv pid name=pid...
  local csv=$1 watched=$2 t p
  shift 2
  while kill -0 "$watched" 2>/dev/null; do
    t=$(($(date +%s) - START))
    for p in "$@"; do sample_resources "$csv" "$t" "${p%%=*}" "${p#*=}"; done
    sleep "$SAMPLE"
  done
}
