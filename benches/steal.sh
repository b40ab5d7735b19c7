# Sourced by the bench scripts.
# On a shared VM the host can take CPU away mid-run ("steal"); numbers measured then are not
# the software's. Report the share of CPU time stolen while measuring.
steal_ticks() { awk '/^cpu / {print $9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat 2>/dev/null || echo "0 0"; }
STEAL0=$(steal_ticks)  # taken when sourced: source it where measuring starts
report_steal() {
  python3 -c "
a, b = [int(x) for x in '$STEAL0'.split()], [int(x) for x in '$(steal_ticks)'.split()]
total = b[1] - a[1]
share = 100.0 * (b[0] - a[0]) / total if total > 0 else 0.0
print(f'cpu steal while measuring: {share:.1f}%' + ('  (WARNING: the host took CPU; rerun on a quiet machine)' if share > 5 else ''))"
}
