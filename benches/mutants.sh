#!/usr/bin/env bash
# benches/mutants.sh: mutation testing of the verdict path, within a small shared machine.
#
# Each mutant is a small change to the code (a `>` made `>=`, a function returning a default);
# a mutant no test notices is a promise nothing defends. Two stages keep it cheap:
#   1. the unit tests (`cargo test --lib`, seconds) against every mutant;
#   2. the integration tests (`--test tests`, minutes) against the survivors of stage 1 only.
# What survives both is written to OUT/survivors.txt: each one needs a test that kills it, or
# a line in mutants.md saying why the change is equivalent or harmless.
#
# Usage:
#   benches/mutants.sh                       # the whole verdict path (hours on 2 cores)
#   benches/mutants.sh --file src/metrics/sla.rs --file src/metrics/cost.rs
#   benches/mutants.sh --in-diff main        # only the lines changed since `main`
#   benches/mutants.sh --shard 1/4           # a quarter of the mutants (run 1/4 .. 4/4)
#   benches/mutants.sh --stage lib           # stage 1 only
#   benches/mutants.sh --stage tests --modules "summary_numbers measures"
#                                            # stage 2 on the last survivors, a small test binary
#   benches/mutants.sh --file src/metrics/recorder.rs --re 'recorder\.rs:(3[2-9][0-9]):'
#                                            # only the mutants whose name matches (resume a run)
# Options: --timeout SECS (per test run, default 300), --out DIR (default target/mutants),
# --filter NAME (stage 2 runs only the integration tests whose name contains NAME; repeat it),
# --unit-filter NAME (stage 1 runs only the unit tests whose path contains NAME, e.g.
# `metrics::` for a file of src/metrics: the unit run is half a stage 1 mutant's time),
# --modules "engine promises" (stage 2 compiles only these modules of tests/ into the test
# binary, with `support` when they use it: every mutant rebuilds that binary, and the whole
# of tests/ is most of a stage 2 mutant's time on a busy machine),
# --re REGEX (stage 1 runs only the mutants whose name, as `--list` prints it, matches; repeat
# it), --list (print the mutants and stop). Mutants run one at a time (in place in the copy).
#
# It mutates a copy of the tree (SCRATCH, default $TMPDIR/gauntlet-mutants), never the
# worktree, so you can keep working; the copy keeps its own warm target/ between runs.
# Two runs at once need two copies (SCRATCH=/tmp/a, SCRATCH=/tmp/b): each starts by
# refreshing its copy, which would undo the other's mutant mid-test. `--in-place` is already
# one mutant at a time (cargo-mutants refuses `--jobs` with it).
# Needs cargo-mutants: `cargo install --locked cargo-mutants`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The code that decides what a user is told: recording, analysis, verdicts, cost, and how the
# engine measures each request.
VERDICT_PATH=(
    src/metrics/sla.rs src/metrics/failover.rs src/metrics/cost.rs src/metrics/analysis.rs
    src/metrics/conclude.rs src/metrics/recorder.rs src/metrics/summary.rs
    src/metrics/sample.rs src/engine/client.rs src/engine/response.rs src/engine/plan.rs
    src/engine/mix.rs src/scenario/sla.rs
    src/capacity/interval.rs src/capacity/judge.rs src/capacity/search.rs src/capacity/result.rs
)

files=()
diff_base=""
shard=""
stage="all"
timeout=300
list=0
filters=()
unit_filters=()
modules=""
res=()
out="$ROOT/target/mutants"
scratch="${SCRATCH:-${TMPDIR:-/tmp}/gauntlet-mutants}"
while (($#)); do
    case "$1" in
    --file) files+=("$2"); shift 2 ;;
    --in-diff) diff_base="$2"; shift 2 ;;
    --shard) shard="$2"; shift 2 ;;
    --stage) stage="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --filter) filters+=("$2"); shift 2 ;;
    --unit-filter) unit_filters+=("$2"); shift 2 ;;
    --modules) modules="$2"; shift 2 ;;
    --re) res+=(--re "$2"); shift 2 ;;
    --list) list=1; shift ;;
    -h | --help) sed -n '2,/^# Needs cargo-mutants/p' "$0"; exit 0 ;;
    *) echo "mutants.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$stage" in lib | tests | all) ;; *) echo "--stage is lib, tests or all" >&2; exit 2 ;; esac
((${#files[@]})) || files=("${VERDICT_PATH[@]}")
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Only the code paths given: `--file` takes globs relative to the tree.
scope=()
for f in "${files[@]}"; do scope+=(--file "$f"); done
if [[ -n "$diff_base" ]]; then
    git -C "$ROOT" diff "$diff_base" -- "${files[@]}" >"$out/change.diff"
    if [[ ! -s "$out/change.diff" ]]; then
        echo "no change to the verdict path since $diff_base: nothing to mutate"
        : >"$out/survivors.txt"
        exit 0
    fi
    scope+=(--in-diff "$out/change.diff")
fi
[[ -n "$shard" ]] && scope+=(--shard "$shard")

if ((list)); then
    cd "$ROOT" && cargo mutants --list "${scope[@]}" "${res[@]}"
    exit 0
fi

# A scratch copy of the tree, its target/ kept warm from one run to the next.
mkdir -p "$scratch"
# The tracked and new files as they are now (no rsync needed): what git would commit.
find "$scratch" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
(cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$scratch")
if [[ -n "$modules" ]]; then
    # A test binary of these modules only (in the copy; the tree keeps its own tests.rs).
    root="$scratch/tests/tests.rs"
    {
        echo "//! Stage 2 of benches/mutants.sh: only $modules."
        echo "#![allow(clippy::unwrap_used, dead_code)]"
        for m in $modules; do
            [[ -f "$scratch/tests/$m.rs" ]] || { echo "--modules: no tests/$m.rs" >&2; exit 2; }
            echo "mod $m;"
        done
        if (cd "$scratch/tests" && grep -q 'crate::support' $(printf '%s.rs ' $modules)); then
            echo "mod support;"
        fi
    } >"$root"
fi
if [[ ! -d "$scratch/target" && -d "$ROOT/target/debug" ]]; then
    echo "seeding $scratch/target from the worktree's (once)"
    mkdir -p "$scratch/target"
    cp -a "$ROOT/target/debug" "$scratch/target/"
fi

# Lowest priority and one mutant at a time: the machine is shared. Stage 1 runs no baseline
# (the unit tests are expected to pass: run `cargo test` first); stage 2 does, since its
# filtered command is the easier one to get wrong. --timeout bounds a mutant that makes a
# test hang.
run_stage() { # NAME, extra cargo-mutants args...
    local name=$1
    shift
    echo "== stage $name: $(date -u +%H:%M:%S)"
    (cd "$scratch" && nice -n 19 cargo mutants --in-place --no-shuffle \
        --timeout "$timeout" --build-timeout 900 \
        --output "$out/$name" "$@") || true
    # cargo-mutants exits non-zero whenever a mutant survives; the lists say what happened.
    local dir="$out/$name/mutants.out"
    for kind in caught missed timeout unviable; do
        printf '%s %s: %s\n' "$name" "$kind" "$(cat "$dir/$kind.txt" 2>/dev/null | wc -l)"
    done | tee -a "$out/counts.txt"
}

: >"$out/counts.txt"
survivors="$out/survivors.txt"
if [[ "$stage" != tests ]]; then
    # --cargo-arg reaches both `cargo test --no-run` and `cargo test`: only that target is built.
    run_stage lib "${scope[@]}" "${res[@]}" --baseline skip --cargo-arg=--lib \
        ${unit_filters[@]+-- -- "${unit_filters[@]}"}
    cp "$out/lib/mutants.out/missed.txt" "$survivors" 2>/dev/null || : >"$survivors"
else
    # Stage 2 alone re-checks the survivors a previous stage 1 left.
    [[ -s "$survivors" ]] || { echo "no $survivors from a stage 1 run" >&2; exit 2; }
fi
if [[ "$stage" != lib && -s "$survivors" ]]; then
    # Only the survivors: each mutant's name, as a literal pattern.
    pattern=$(sed -e 's/[][\\.*^$+?(){}|]/\\&/g' "$survivors" | paste -sd'|')
    # The filters go to the test binary, after a second `--`: given to `cargo test` itself, a
    # second filter is a usage error, and every mutant would count as caught. The baseline
    # runs here (not in stage 1): a test command that fails on the unmutated tree stops the
    # stage instead of "catching" every mutant.
    run_stage tests "${scope[@]}" --re "^($pattern)\$" --baseline run \
        --cargo-arg=--test --cargo-arg=tests -- -- "${filters[@]}"
    cp "$out/tests/mutants.out/missed.txt" "$survivors" 2>/dev/null || : >"$survivors"
fi
echo "== $(wc -l <"$survivors") surviving mutants in $survivors"
cat "$survivors"
