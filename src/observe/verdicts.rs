//! Each SLA check's running value as Prometheus gauges: what the check reads so far, its
//! bound, and its verdict. Values are in base units (seconds, not the summary's milliseconds),
//! as Prometheus names them; the `unit` label says which.

use super::exposition::MetricType;
use super::snapshot::{Family, Value};
use crate::metrics::{CheckStatus, SlaCheck, SlaResult, Unit};
use crate::report::fmt;

/// The check's unit in Prometheus's base units, and the factor that converts to it.
fn base_unit(check: &SlaCheck) -> (&'static str, f64) {
    match check.name.unit() {
        Unit::Ms => ("seconds", 1e-3),
        Unit::S => ("seconds", 1.0),
        Unit::Ratio => ("ratio", 1.0),
        Unit::X => ("ratio", 1.0),
        Unit::Usd => ("usd", 1.0),
        Unit::Rps => ("per_second", 1.0),
    }
}

const STATUSES: [CheckStatus; 3] = [
    CheckStatus::Pass,
    CheckStatus::Fail,
    CheckStatus::Inconclusive,
];

fn labels(c: &SlaCheck) -> [(&'static str, &str); 3] {
    let (unit, _) = base_unit(c);
    [
        ("check", c.name.as_str()),
        ("scope", c.scope.as_str()),
        ("unit", unit),
    ]
}

/// The families of one verdict. Nothing before the first evaluation: a series appears with
/// its first value rather than as a made-up one.
pub fn families(out: &mut Vec<Family>, sla: Option<&SlaResult>) {
    let Some(sla) = sla.filter(|s| !s.checks.is_empty()) else {
        return;
    };
    let gauge = |name, help| Family::new(name, MetricType::Gauge, help);
    let mut value = gauge(
        "gauntlet_sla_check_value",
        "What each SLA check measures so far (after warmup; seconds for times), as the final \
         verdict would read it if the run stopped now; absent until measurable.",
    );
    let mut target = gauge(
        "gauntlet_sla_check_target",
        "The bound each SLA check holds its value to (same unit as the value).",
    );
    let mut samples = gauge(
        "gauntlet_sla_check_samples",
        "How many samples (requests, intervals or fault windows) each check rests on.",
    );
    let mut passing = gauge(
        "gauntlet_sla_check_passing",
        "1 while an SLA check passes, 0 while it fails; absent while inconclusive (too few \
         samples, or nothing to judge yet).",
    );
    // A state set, as OpenMetrics spells one in this format: one series per state, 1 for the
    // current one, so "inconclusive" is visible too.
    let mut status = gauge(
        "gauntlet_sla_check_status",
        "Each SLA check's verdict so far: 1 for its current status, 0 for the others.",
    );
    for c in &sla.checks {
        let (_, factor) = base_unit(c);
        let labels = labels(c);
        if let Some(v) = c.measured {
            value.push(&labels, Value::Gauge(v * factor));
        }
        target.push(&labels, Value::Gauge(c.target * factor));
        samples.push(&labels, Value::Gauge(c.samples as f64));
        match c.status {
            CheckStatus::Pass => passing.push(&labels, Value::Gauge(1.0)),
            CheckStatus::Fail => passing.push(&labels, Value::Gauge(0.0)),
            CheckStatus::Inconclusive => {}
        }
        let [check, scope, unit] = labels;
        for s in STATUSES {
            let labels = [check, scope, unit, ("status", fmt::status(s))];
            status.push(&labels, Value::Gauge(f64::from(u8::from(c.status == s))));
        }
    }
    out.extend([value, target, samples, passing, status]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::SlaKey;
    use crate::observe::Snapshot;

    fn text(sla: Option<&SlaResult>) -> String {
        let mut families = Vec::new();
        super::families(&mut families, sla);
        let now = std::time::SystemTime::now();
        Snapshot {
            scenario: "s".into(),
            started: now,
            taken: now,
            families,
        }
        .to_text()
    }

    fn check(name: SlaKey, scope: &str, target: f64, measured: Option<f64>) -> SlaCheck {
        SlaCheck {
            name,
            scope: scope.into(),
            target,
            measured,
            unit: name.unit().as_str().into(),
            samples: 12,
            status: CheckStatus::Inconclusive,
            note: None,
            misses: None,
        }
    }

    #[test]
    fn checks_read_in_base_units_with_their_verdict() {
        let mut p99 = check(SlaKey::P99Latency, "overall", 500.0, Some(120.0));
        p99.status = CheckStatus::Pass;
        let mut avail = check(SlaKey::Availability, "class:a", 0.999, Some(0.5));
        avail.status = CheckStatus::Fail;
        let failover = check(SlaKey::FailoverSuccess, "overall", 0.99, None);
        let sla = SlaResult {
            passed: false,
            verdict: CheckStatus::Fail,
            checks: vec![p99, avail, failover],
        };
        let out = text(Some(&sla));
        let l = |s: &str| format!("check=\"{s}");
        for want in [
            format!(
                "gauntlet_sla_check_value{{{}\",scope=\"overall\",unit=\"seconds\"}} 0.12",
                l("p99_latency")
            ),
            format!(
                "gauntlet_sla_check_target{{{}\",scope=\"overall\",unit=\"seconds\"}} 0.5",
                l("p99_latency")
            ),
            format!(
                "gauntlet_sla_check_passing{{{}\",scope=\"overall\",unit=\"seconds\"}} 1",
                l("p99_latency")
            ),
            format!(
                "gauntlet_sla_check_value{{{}\",scope=\"class:a\",unit=\"ratio\"}} 0.5",
                l("availability")
            ),
            format!(
                "gauntlet_sla_check_passing{{{}\",scope=\"class:a\",unit=\"ratio\"}} 0",
                l("availability")
            ),
            format!(
                "gauntlet_sla_check_status{{{}\",scope=\"overall\",unit=\"ratio\",status=\"inconclusive\"}} 1",
                l("failover_success")
            ),
            format!(
                "gauntlet_sla_check_status{{{}\",scope=\"overall\",unit=\"ratio\",status=\"pass\"}} 0",
                l("failover_success")
            ),
        ] {
            assert!(out.lines().any(|x| x == want), "missing `{want}` in\n{out}");
        }
        // Nothing measured, no value; inconclusive, no passing series.
        let failover: Vec<&str> = out
            .lines()
            .filter(|x| x.contains("failover_success"))
            .collect();
        assert!(
            failover
                .iter()
                .all(|x| !x.starts_with("gauntlet_sla_check_value")
                    && !x.starts_with("gauntlet_sla_check_passing")),
            "{failover:?}"
        );
        assert_eq!(text(None), "");
    }
}
