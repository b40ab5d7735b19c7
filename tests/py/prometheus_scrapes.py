"""Parses Prometheus text scrapes with the official Python client's parser and checks the
rules its lax parser lets through: every family has HELP and a type, appears once, counters
end in _total, each histogram series has cumulative buckets ending in le="+Inf" equal to
its _count, and a _sum, and each SLA check's series agree (one current status, `passing`
present exactly when the check is decided).

    python3 prometheus_scrapes.py SCRAPE.txt...

Prints one JSON list, a report per file: {"families": {name: type}, "samples": [[name,
{label: value}, value], ...], "problems": [...]}; an infinite value is the text "inf" or
"-inf". Counter families are named without _total (the client's OpenMetrics naming); their
samples keep it.
"""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def check_histogram(family, problems):
    series = {}
    for s in family.samples:
        labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        entry = series.setdefault(labels, {"buckets": [], "count": None, "sum": None})
        if s.name == family.name + "_bucket":
            if "le" not in s.labels:
                problems.append(f"{s.name}{dict(labels)} has no le label")
                continue
            entry["buckets"].append((float(s.labels["le"]), s.labels["le"], s.value))
        elif s.name == family.name + "_count":
            entry["count"] = s.value
        elif s.name == family.name + "_sum":
            entry["sum"] = s.value
    for labels, entry in series.items():
        where = f"{family.name}{dict(labels)}"
        bounds = [b[0] for b in entry["buckets"]]
        if bounds != sorted(bounds):
            problems.append(f"{where}: buckets not in increasing le order")
        if not entry["buckets"] or not math.isinf(entry["buckets"][-1][0]):
            problems.append(f"{where}: no le=\"+Inf\" bucket last")
            continue
        if entry["buckets"][-1][1] != "+Inf":
            problems.append(f"{where}: the last bucket is spelt {entry['buckets'][-1][1]!r}")
        values = [b[2] for b in entry["buckets"]]
        if any(b < a for a, b in zip(values, values[1:])):
            problems.append(f"{where}: buckets are not cumulative: {values}")
        if entry["count"] is None or entry["count"] != values[-1]:
            problems.append(f"{where}: _count {entry['count']} != +Inf bucket {values[-1]}")
        if entry["sum"] is None:
            problems.append(f"{where}: no _sum")


SLA_STATUSES = ("pass", "fail", "inconclusive")


def check_sla(families_by_name, problems):
    """Each SLA check's series agree: one status of the state set is 1, `passing` is there
    exactly when the check is decided (1 for pass, 0 for fail), and every series names its
    unit."""
    statuses = {}
    for s in families_by_name.get("gauntlet_sla_check_status", []):
        key = (s.labels.get("check"), s.labels.get("scope"))
        if s.labels.get("status") not in SLA_STATUSES or s.value not in (0.0, 1.0):
            problems.append(f"gauntlet_sla_check_status{s.labels}: bad state or value {s.value}")
        if s.value == 1.0:
            statuses.setdefault(key, []).append(s.labels["status"])
    targets = {
        (s.labels.get("check"), s.labels.get("scope"))
        for s in families_by_name.get("gauntlet_sla_check_target", [])
    }
    for key in targets:
        if len(statuses.get(key, [])) != 1:
            problems.append(f"SLA check {key}: {statuses.get(key, [])} states set, not one")
    passing = {
        (s.labels.get("check"), s.labels.get("scope")): s.value
        for s in families_by_name.get("gauntlet_sla_check_passing", [])
    }
    for key, states in statuses.items():
        want = {"pass": 1.0, "fail": 0.0}.get(states[0])
        if passing.get(key) != want:
            problems.append(f"SLA check {key} is {states[0]} but passing reads {passing.get(key)}")
    for name in ("gauntlet_sla_check_value", "gauntlet_sla_check_target", "gauntlet_sla_check_passing"):
        for s in families_by_name.get(name, []):
            if not s.labels.get("unit") or (s.labels.get("check"), s.labels.get("scope")) not in targets:
                problems.append(f"{name}{s.labels}: no unit, or a check without a target")


def report(text):
    families, samples, problems, by_name = {}, [], [], {}
    # The parser renames counters its own way, so their names are checked on the TYPE line.
    for line in text.splitlines():
        parts = line.split()
        if parts[:2] == ["#", "TYPE"] and parts[3:] == ["counter"] and not parts[2].endswith("_total"):
            problems.append(f"counter {parts[2]} does not end in _total")
    for family in text_string_to_metric_families(text):
        if family.name in families:
            problems.append(f"family {family.name} appears twice (split or repeated)")
        families[family.name] = family.type
        if family.type in ("untyped", "unknown"):
            problems.append(f"{family.name}: no TYPE, or samples outside their family")
        if not family.documentation:
            problems.append(f"{family.name}: no HELP")
        if family.type == "histogram":
            check_histogram(family, problems)
        for s in family.samples:
            # JSON has no infinity: +Inf and -Inf (a probe's planned length) travel as text.
            value = s.value if math.isfinite(s.value) or math.isnan(s.value) else repr(s.value)
            samples.append([s.name, s.labels, value])
        by_name[family.name] = family.samples
    check_sla(by_name, problems)
    return {"families": families, "samples": samples, "problems": problems}


def main():
    out = []
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            out.append(report(f.read()))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
