#!/usr/bin/env bash
# Issue 18: does closed-loop throughput scale with shards? A live sharded run with 2 shard
# processes against one 1-shard run, on a 2-core machine, with every process in its own
# container and its own CPU limit so that the comparison is honest:
#
#   - A private, internal Docker network. The server is one container running `gauntlet mock`
#     with the zero-latency provider (mock-upstreams/zero-latency.toml: 16 tokens, no waiting),
#     limited to SERVER_CPUS; it serves every round and must not be what limits the rate. The
#     script shows it was not: its CPU use against its limit, and the CFS periods in which the
#     kernel throttled it (cgroup cpu.stat), per round. It gets 8 times a shard's weight, so
#     that when the cores are contested its answers are not what the shards wait for.
#   - Each shard is its own container limited to SHARD_CPUS (the same limit in every round),
#     so one shard has SHARD_CPUS of CPU and two shards twice that. Without limits the shards
#     would share the same 2 cores with the server and with each other and "2 shards" would only
#     measure how the scheduler splits them. The limit is small because everything must fit in
#     2 cores with room to spare: two shards, the server (about as much CPU per request as a
#     shard) and the kernel's network path between the containers (softirq time, charged to
#     no container: ~13% of the machine in the 2-shard runs). At 0.4 a shard the 2-shard runs
#     did not fit: their shards sat below their limit, waiting (1.61x); at 0.25 every shard of
#     both runs uses its whole limit and is throttled at it in nearly every period, which the
#     per-round lines show, so the rates compare two amounts of CPU and nothing else.
#   - Like with like: the 1-shard run is the same live sharded mode with N = 1 (`--shard 0/1
#     --coordinator`): the same coordinator code path, its HTTP API, its pushes and its merge;
#     the 2-shard run is shard 0 (the coordinator, which sends its half of the load too) and
#     shard 1. The scenario names the mock by URL (`[target] url`, `[[upstreams]] url`), so the
#     coordinator starts no mocks and no embedded gateway: every container only sends load (and
#     shard 0 coordinates, in both runs).
#   - The same scenario in both: closed model, USERS users in all, dealt out between the shards
#     (user u to shard u mod N), enough to keep each shard's CPU busy whatever the split.
#   - The rate of a run is the coordinator's merged summary.json: requests / measured seconds
#     (the warmup excluded), exactly as a single-machine run reports it.
#   - The containers live in a cgroup of their own (--cgroup-parent) whose CPU weight is
#     BENCH_SHARES (a hundred normal processes' worth by default). Docker puts every container
#     under one `docker` cgroup weighing as much as one normal process, and the kernel's
#     autogroups give every other login session (another engineer's build, however niced:
#     nice only orders processes inside a session) as much again; the containers then got
#     about half a core between them whatever their limits, and a second shard only split
#     that half (measured: 0.82x). The weight only matters while the bench runs. With it,
#     the --cpus limits decide what each container gets: the per-round lines show each shard
#     using about its limit and being throttled at it, which is what makes the two runs
#     comparable. (Root is needed to make the cgroup; without it the script says so.)
#   - Rounds alternate (1, 2, 1, 2, ...) so a machine that speeds up or slows down favours
#     neither; the medians are compared. Each round prints the rate, every container's CPU use
#     and throttling, and the load average; the CPU steal of the whole measurement at the end.
#
#   benches/shards_scale.sh [USERS=128] [SECONDS=10]
#     ROUNDS=5          pairs of rounds (one 1-shard and one 2-shard run each)
#     SHARD_CPUS=0.25   each shard container's CPU limit (docker run --cpus)
#     SERVER_CPUS=1.0   the mock container's CPU limit
#     BENCH_SHARES=102400  cpu.shares of the containers' cgroup (1024 = one normal process)
#     WARMUP=2          seconds of warmup before the measured window
#     BINARY=target/release/gauntlet   the binary the image is built from (deploy/image/build.sh)
#     IMAGE=TAG         use this image instead of building one from BINARY
#
# Needs Docker Engine (nothing is pulled: the image is FROM scratch) and python3. Exit 0 when
# the ratio of the medians is at least 1.8x, 1 when it is below, 3 when a run failed.
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=${1:-128}
SECS=${2:-10}
ROUNDS=${ROUNDS:-5}
SHARD_CPUS=${SHARD_CPUS:-0.25}
SERVER_CPUS=${SERVER_CPUS:-1.0}
WARMUP=${WARMUP:-2}
BENCH_SHARES=${BENCH_SHARES:-102400}
BINARY=${BINARY:-target/release/gauntlet}
GOAL=1.8

command -v docker >/dev/null || { echo "shards_scale.sh: docker is not installed" >&2; exit 3; }
docker version --format '{{.Server.Version}}' >/dev/null \
  || { echo "shards_scale.sh: the Docker daemon does not answer" >&2; exit 3; }
source benches/common.sh

if [[ -z ${IMAGE:-} ]]; then
  IMAGE=gauntlet-bench:scale
  deploy/image/build.sh "$BINARY" "$IMAGE" >&2
fi

# Every container and the network carry this prefix and label, and go when the script ends;
# so does the cgroup they run in (made by docker in every controller's hierarchy).
NAME=gauntlet-scale-$$
NET=$NAME-net
CG=/sys/fs/cgroup/cpu/$NAME
remove_all() {
  docker ps -aq --filter "label=gauntlet-bench=$NAME" | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
  for d in /sys/fs/cgroup/*/"$NAME"; do [[ -d $d ]] && rmdir "$d" 2>/dev/null; done
  cleanup
}
trap remove_all EXIT
if [[ $(docker info -f '{{.CgroupDriver}} {{.CgroupVersion}}') != "cgroupfs 1" ]]; then
  echo "shards_scale.sh: needs Docker's cgroupfs driver on cgroup v1 (it weights the containers' cgroup)" >&2
  exit 3
fi
mkdir -p "$CG" && echo "$BENCH_SHARES" >"$CG/cpu.shares" \
  || { echo "shards_scale.sh: cannot make $CG with cpu.shares $BENCH_SHARES (root needed)" >&2; exit 3; }
# Internal: the load stays on this network.
docker network create --internal --label "gauntlet-bench=$NAME" "$NET" >/dev/null

# The bench's files, mounted read-only at /bench in every container. The profile path is
# absolute: the repository's mock-upstreams/ is mounted where it points.
chmod 755 "$WORK"
cat >"$WORK/fleet.toml" <<'TOML'
[[providers]]
name = "zero"
profile = "/etc/gauntlet/mock-upstreams/zero-latency.toml"
port = 8000
TOML
cat >"$WORK/scale.toml" <<TOML
name = "shards-scale"
seed = 7
[target]
url = "http://server:8000"
[[upstreams]]
name = "zero"
url = "http://server:8000"
[load]
model = "closed"
duration = "$((WARMUP + SECS))s"
warmup = "${WARMUP}s"
concurrency = $USERS
[[requests]]
name = "bench"
model = "bench-model"
prompt = "Generate a product description"
max_tokens = 16
primary = "zero"
[sla]
availability = "99%"
TOML
chmod 644 "$WORK"/*.toml

# A running container's CPU from its cgroup files: "CPU-ns PERIODS THROTTLED".
cgroup_cpu() { # CONTAINER-ID
  local acct=/sys/fs/cgroup/cpuacct/$NAME/$1
  if [[ -r $acct/cpuacct.usage ]]; then
    echo "$(cat "$acct/cpuacct.usage") $(awk '/^nr_periods/ {p=$2} /^nr_throttled/ {t=$2} END {print p, t}' "$CG/$1/cpu.stat")"
  else
    echo "0 0 0"
  fi
}
# A container's cgroup goes with it: keep sampling while it runs, so the last line is (all
# but the last moments of) its whole use.
# Reads the files only (a docker CLI call a sample would cost the measured cores CPU).
sample_until_exit() { # CONTAINER-ID FILE
  local now
  while now=$(cgroup_cpu "$1" 2>/dev/null) && [[ $now =~ ^[0-9]+\ [0-9]+\ [0-9]+$ && $now != "0 0 0" ]]; do
    echo "$now" >"$2"
    sleep 0.5
  done
}

docker run -d --name "$NAME-server" --label "gauntlet-bench=$NAME" --network "$NET" \
  --network-alias server --cgroup-parent "/$NAME" --cpu-shares 8192 --cpus "$SERVER_CPUS" --read-only \
  -v "$WORK:/bench:ro" -v "$PWD/mock-upstreams:/etc/gauntlet/mock-upstreams:ro" \
  "$IMAGE" mock --config /bench/fleet.toml --listen 0.0.0.0 >/dev/null
SERVER_ID=$(docker inspect -f '{{.Id}}' "$NAME-server")
for _ in $(seq 100); do docker logs "$NAME-server" 2>&1 | grep -q '"upstream":"zero"' && break; sleep 0.1; done
docker logs "$NAME-server" 2>&1 | grep -q '"upstream":"zero"' \
  || { echo "the mock did not start:" >&2; docker logs "$NAME-server" >&2; exit 3; }

echo "image $IMAGE; $USERS users closed loop, ${WARMUP}s warmup + ${SECS}s measured; shards --cpus $SHARD_CPUS each, server --cpus $SERVER_CPUS, their cgroup's cpu.shares $BENCH_SHARES; $(nproc) cores; $ROUNDS pairs of rounds"
source benches/steal.sh
LOADS=()

# One live sharded run of N shards: its rate into RATE, a line of details on stdout.
shard_run() { # N ROUND
  local n=$1 round=$2 i ids=() names=() s0 s1 load=$((WARMUP + SECS))
  s0=$(cgroup_cpu "$SERVER_ID")
  for i in $(seq 0 $((n - 1))); do
    local name=$NAME-r$round-n$n-s$i
    docker run -d --name "$name" --label "gauntlet-bench=$NAME" --network "$NET" \
      --network-alias "$([[ $i = 0 ]] && echo coordinator || echo "shard-$i")" \
      --cgroup-parent "/$NAME" --cpus "$SHARD_CPUS" -v "$WORK:/bench:ro" \
      -e JOB_COMPLETION_INDEX="$i" -e GAUNTLET_SHARDS="$n" -e GAUNTLET_COORDINATOR=coordinator:7070 \
      "$IMAGE" run /bench/scale.toml --out /work/run >/dev/null
    names+=("$name")
    ids+=("$(docker inspect -f '{{.Id}}' "$name")")
    sample_until_exit "${ids[-1]}" "$WORK/cpu-$name" &
  done
  local code
  code=$(docker wait "${names[0]}")
  for name in "${names[@]:1}"; do docker wait "$name" >/dev/null; done
  wait # the samplers
  s1=$(cgroup_cpu "$SERVER_ID")
  LOADS+=("$(cut -d' ' -f1 /proc/loadavg)")
  if [[ $code != 0 ]]; then
    echo "the $n-shard run of round $round ended with exit $code:" >&2
    docker logs "${names[0]}" 2>&1 | tail -20 >&2
    exit 3
  fi
  docker cp "${names[0]}:/work/run/summary.json" "$WORK/summary-r$round-n$n.json" >/dev/null
  docker rm "${names[@]}" >/dev/null
  local shards="" name
  for name in "${names[@]}"; do
    read -r ns periods throttled <"$WORK/cpu-$name"
    shards+=$(python3 -c "print(f' {$ns/1e9/$load:.2f} cores (throttled {$throttled}/{$periods})', end='')")
  done
  python3 - "$WORK/summary-r$round-n$n.json" "$s0" "$s1" "$load" "$SERVER_CPUS" "$round" "$n" "$shards" "${LOADS[-1]}" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
a, b = [int(x) for x in sys.argv[2].split()], [int(x) for x in sys.argv[3].split()]
load, limit = float(sys.argv[4]), float(sys.argv[5])
o = d["overall"]
per = " + ".join(f"{s['rps']:.0f}" for s in d["shards"])
cores = (b[0] - a[0]) / 1e9 / load
print(f"round {sys.argv[6]}, {sys.argv[7]} shard(s): {o['rps']:.0f} req/s ({per}), "
      f"{o['requests']} requests, errors {o['requests'] - o['successes']}, p50 {o['latency_ms']['p50']:.1f} ms | "
      f"shards:{sys.argv[8]} | server {cores:.2f} of {limit} cores (throttled {b[2] - a[2]}/{b[1] - a[1]}) | "
      f"load average {sys.argv[9]}")
open(sys.argv[1] + ".rate", "w").write(f"{o['rps']:.1f}")
PY
  RATE=$(cat "$WORK/summary-r$round-n$n.json.rate")
}

ONE=() TWO=()
for round in $(seq "$ROUNDS"); do
  shard_run 1 "$round"
  ONE+=("$RATE")
  shard_run 2 "$round"
  TWO+=("$RATE")
done
M1=$(median "${ONE[@]}")
M2=$(median "${TWO[@]}")
echo "medians: 1 shard $M1 req/s, 2 shards $M2 req/s (rounds: ${ONE[*]} / ${TWO[*]})"
# Each round's pair too: how far apart the ratios of neighbouring runs are is the noise.
python3 -c "
one, two = [$(IFS=,; echo "${ONE[*]}")], [$(IFS=,; echo "${TWO[*]}")]
print('ratio in each round: ' + ', '.join(f'{b / a:.2f}x' for a, b in zip(one, two)))"
echo "load average at the end of each run: ${LOADS[*]}"
report_steal
python3 -c "
r = $M2 / $M1
print(f'2 shards / 1 shard = {r:.2f}x (goal >= $GOAL x)')
raise SystemExit(0 if r >= $GOAL else 1)"
