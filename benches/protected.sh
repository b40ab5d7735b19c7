#!/usr/bin/env bash
# Runs a command (a bench) with a protected share of the CPU: the command and every process it
# starts live in a cpu cgroup of their own whose weight is BENCH_SHARES, a hundred normal
# processes' worth by default.
#
# Why: on a machine shared with other sessions the kernel's autogroups give each login session
# the same weight however niced its processes are (nice only orders processes inside one
# session), so a bench gets 1/(number of busy sessions) of the cores and measures the load, not
# the software. Under the heavy weight the bench takes the cores whenever it wants them and the
# other sessions get what it leaves. The weight costs nothing when the bench is idle, and the
# cgroup goes when the command ends.
#
#   benches/protected.sh CMD [ARGS...]
#   PARTS="pacing relay latency" SKIP_BUILD=1 benches/protected.sh benches/streams.sh
#     BENCH_SHARES=102400   cpu.shares of the cgroup (1024 = one normal process)
#
# Needs root and the cgroup v1 cpu controller at /sys/fs/cgroup/cpu. Exit 3 when the cgroup
# cannot be made; otherwise the command's own exit status.
set -euo pipefail

[[ $# -gt 0 ]] || { echo "usage: benches/protected.sh CMD [ARGS...]" >&2; exit 2; }
BENCH_SHARES=${BENCH_SHARES:-102400}
ROOT=/sys/fs/cgroup/cpu
CG=$ROOT/gauntlet-protected-$$

[[ -w $ROOT/cgroup.procs ]] \
  || { echo "protected.sh: $ROOT/cgroup.procs is not writable (needs root and cgroup v1's cpu controller)" >&2; exit 3; }
mkdir "$CG" && echo "$BENCH_SHARES" >"$CG/cpu.shares" \
  || { echo "protected.sh: cannot make $CG with cpu.shares $BENCH_SHARES" >&2; exit 3; }
# The cgroup can only go once no process is left in it: move this shell back out first. A
# child the command left running keeps the cgroup; say so rather than fail the bench.
leave() {
  echo $$ >"$ROOT/cgroup.procs" 2>/dev/null || true
  rmdir "$CG" 2>/dev/null || echo "protected.sh: $CG still holds processes; remove it when they end" >&2
}
trap leave EXIT
echo $$ >"$CG/cgroup.procs"
echo "protected.sh: running in cpu cgroup ${CG#"$ROOT"} with cpu.shares $(cat "$CG/cpu.shares")" >&2
# Not exec: this shell stays to remove the cgroup after the command.
set +e
"$@"
code=$?
set -e
exit "$code"
