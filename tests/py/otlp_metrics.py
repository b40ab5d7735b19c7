"""Decodes OTLP/HTTP metrics push bodies with the OpenTelemetry project's own Python protobuf
bindings (the `opentelemetry-proto` package) and checks the rules a collector holds a push
to: every histogram point has one more bucket count than bounds, ascending bounds, and a
count equal to the sum of its buckets; sums and histograms say their temporality; every
point starts no later than it was taken.

    python3 otlp_metrics.py BODY.bin...

Prints one JSON list, a report per file: {"resource": {key: value}, "scope": name,
"metrics": {name: {"kind", "unit", "temporality", "monotonic", "points": [...]}},
"problems": [...]}. A number point is {"attributes": {...}, "value": v}; a histogram point
{"attributes", "count", "sum", "bounds", "buckets"}.
"""

import json
import sys

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality


def any_value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def timing(name, p, problems):
    if p.start_time_unix_nano == 0 or p.time_unix_nano < p.start_time_unix_nano:
        problems.append(
            f"{name}: point {attributes(p.attributes)} starts at {p.start_time_unix_nano}, "
            f"taken at {p.time_unix_nano}"
        )


def number(name, p, problems):
    timing(name, p, problems)
    kind = p.WhichOneof("value")
    if kind is None:
        problems.append(f"{name}: a point without a value")
    return {"attributes": attributes(p.attributes), "value": getattr(p, kind) if kind else None}


def histogram(name, p, problems):
    timing(name, p, problems)
    bounds, buckets = list(p.explicit_bounds), list(p.bucket_counts)
    where = f"{name}{attributes(p.attributes)}"
    if len(buckets) != len(bounds) + 1:
        problems.append(f"{where}: {len(buckets)} bucket counts for {len(bounds)} bounds")
    if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
        problems.append(f"{where}: bounds not strictly ascending: {bounds}")
    if sum(buckets) != p.count:
        problems.append(f"{where}: buckets add up to {sum(buckets)}, count says {p.count}")
    if not p.HasField("sum"):
        problems.append(f"{where}: no sum")
    return {
        "attributes": attributes(p.attributes),
        "count": p.count,
        "sum": p.sum,
        "bounds": bounds,
        "buckets": buckets,
    }


def report(path):
    req = ExportMetricsServiceRequest()
    with open(path, "rb") as f:
        req.ParseFromString(f.read())
    problems = []
    if len(req.resource_metrics) != 1:
        problems.append(f"{len(req.resource_metrics)} resources")
    rm = req.resource_metrics[0]
    resource = attributes(rm.resource.attributes)
    if not resource.get("service.name"):
        problems.append("no service.name")
    metrics = {}
    scope = None
    for sm in rm.scope_metrics:
        scope = sm.scope.name
        for m in sm.metrics:
            if m.name in metrics:
                problems.append(f"{m.name} sent twice")
            kind = m.WhichOneof("data")
            entry = {"kind": kind, "unit": m.unit, "description": m.description}
            data = getattr(m, kind)
            if kind in ("sum", "histogram"):
                entry["temporality"] = AggregationTemporality.Name(data.aggregation_temporality)
            if kind == "sum":
                entry["monotonic"] = data.is_monotonic
            if kind in ("sum", "gauge"):
                entry["points"] = [number(m.name, p, problems) for p in data.data_points]
            elif kind == "histogram":
                entry["points"] = [histogram(m.name, p, problems) for p in data.data_points]
            else:
                problems.append(f"{m.name}: unexpected kind {kind}")
                entry["points"] = []
            metrics[m.name] = entry
    return {"resource": resource, "scope": scope, "metrics": metrics, "problems": problems}


print(json.dumps([report(p) for p in sys.argv[1:]]))
