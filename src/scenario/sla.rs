//! Compiling `[sla]` into objectives, overall and per class. Unknown keys are refused by the
//! raw schema, so a misspelt metric can never become a silently passing check.

use toml::Spanned;

use super::model::{Objective, PerRequest, Scope, Sla, SlaKey, SlaTarget};
use super::raw::{RawPerRequest, RawSla, RawSlaClass};
use crate::config::Check;

/// Retries can multiply load, but not by this much; larger is a typo.
const MAX_AMPLIFICATION: f64 = 1000.0;
const MAX_COST: f64 = 1e12;

pub fn compile(c: &mut Check<'_>, raw: &RawSla, classes: &[&str], tiers: &[&str]) -> Sla {
    let mut targets = Vec::new();
    let overall = raw.overall();
    objectives(c, &overall, "sla", Scope::Overall, &mut targets);
    let overall_availability = overall.availability.is_some();
    for (name, table) in &raw.classes {
        let key = format!("sla.classes.{}", name.get_ref());
        if !classes.contains(&name.get_ref().as_str()) {
            let (n, k) = (name, key.as_str());
            c.unknown_name(n, k, "request class", "[[requests]]", classes);
            continue;
        }
        if table.availability.is_none() && !overall_availability {
            uptime_needs_availability(c, table, &key);
        }
        objectives(
            c,
            table,
            &key,
            Scope::Class(name.get_ref().clone()),
            &mut targets,
        );
    }
    for (name, table) in &raw.tiers {
        let key = format!("sla.tiers.{}", name.get_ref());
        if !tiers.contains(&name.get_ref().as_str()) {
            let (n, k) = (name, key.as_str());
            let table = "a class's key under [gateway] keys, or its `tier`";
            c.unknown_name(n, k, "tier", table, tiers);
            continue;
        }
        per_tier_only(c, table, &key);
        objectives(
            c,
            table,
            &key,
            Scope::Tier(name.get_ref().clone()),
            &mut targets,
        );
    }
    if !overall_availability {
        uptime_needs_availability(c, &overall, "sla");
    }
    let per_request = per_request(c, raw.per_request.as_ref());
    // A table with a bad value is reported where it is; only a missing one is reported here.
    if raw.per_request.is_none() {
        goodput_needs_objectives(c, &overall, "sla");
        for (name, table) in raw.classes.iter().chain(&raw.tiers) {
            goodput_needs_objectives(c, table, &format!("sla.*.{}", name.get_ref()));
        }
    }
    Sla {
        targets,
        per_request,
    }
}

/// `[sla.per_request]`: each bound a positive duration, and at least one of them.
fn per_request(c: &mut Check<'_>, raw: Option<&Spanned<RawPerRequest>>) -> PerRequest {
    let Some(spanned) = raw else {
        return PerRequest::default();
    };
    let raw = spanned.get_ref();
    let mut dur = |v: &Option<Spanned<String>>, key: &str| {
        v.as_ref()
            .and_then(|v| c.positive_duration(v, &format!("sla.per_request.{key}")))
    };
    let out = PerRequest {
        ttft: dur(&raw.ttft, "ttft"),
        tpot: dur(&raw.tpot, "tpot"),
        latency: dur(&raw.latency, "latency"),
    };
    if raw.ttft.is_none() && raw.tpot.is_none() && raw.latency.is_none() {
        c.error(
            spanned.span(),
            "sla.per_request",
            "the table sets no objective; set at least one of `ttft`, `tpot`, `latency`",
        );
    }
    out
}

/// Goodput counts the requests that met `[sla.per_request]`; without it the key would only
/// repeat availability under another name.
fn goodput_needs_objectives(c: &mut Check<'_>, t: &RawSlaClass, key: &str) {
    let spans = [
        (SlaKey::Goodput, t.goodput.as_ref().map(|v| v.span())),
        (
            SlaKey::MinGoodputRps,
            t.min_goodput_rps.as_ref().map(|v| v.span()),
        ),
    ];
    for (k, span) in spans {
        if let Some(span) = span {
            c.error(
                span,
                format!("{key}.{k}"),
                "goodput counts the requests that met [sla.per_request]; add that table with \
                 at least one of `ttft`, `tpot`, `latency`",
            );
        }
    }
}

/// A tier is judged on its merged latency and availability; the interval and fault-window
/// measures are per class, so they are refused here rather than silently judged on nothing.
fn per_tier_only(c: &mut Check<'_>, t: &RawSlaClass, key: &str) {
    let spans = [
        (SlaKey::Uptime, t.uptime.as_ref().map(|v| v.span())),
        (
            SlaKey::FailoverSuccess,
            t.failover_success.as_ref().map(|v| v.span()),
        ),
        (
            SlaKey::MaxFailoverTime,
            t.max_failover_time.as_ref().map(|v| v.span()),
        ),
        (
            SlaKey::MaxRecoveryTime,
            t.max_recovery_time.as_ref().map(|v| v.span()),
        ),
        (
            SlaKey::MaxRetryAmplification,
            t.max_retry_amplification.as_ref().map(|v| v.span()),
        ),
        (
            SlaKey::MaxCostPerMillion,
            t.max_cost_per_million.as_ref().map(|v| v.span()),
        ),
        (
            SlaKey::MaxOverheadP99,
            t.max_overhead_p99.as_ref().map(|v| v.span()),
        ),
    ];
    for (k, span) in spans {
        if let Some(span) = span {
            c.error(
                span,
                format!("{key}.{k}"),
                "a tier is judged on p99_latency, ttft_p99 and availability; set this one \
                 overall or per class",
            );
        }
    }
}

/// Refuses the table's `uptime`, if it sets one, for want of an availability target.
fn uptime_needs_availability(c: &mut Check<'_>, t: &RawSlaClass, key: &str) {
    if let Some(u) = &t.uptime {
        c.error(
            u.span(),
            format!("{key}.uptime"),
            "uptime is the share of intervals meeting the availability target; set \
             `availability` too",
        );
    }
}

fn objectives(
    c: &mut Check<'_>,
    t: &RawSlaClass,
    key: &str,
    scope: Scope,
    out: &mut Vec<SlaTarget>,
) {
    let k = |f: SlaKey| format!("{key}.{f}");
    let mut push = |objective: Option<Objective>| {
        if let Some(objective) = objective {
            out.push(SlaTarget {
                scope: scope.clone(),
                objective,
            });
        }
    };
    let dur = |c: &mut Check<'_>, v: &Option<Spanned<String>>, f: SlaKey| {
        v.as_ref().and_then(|v| c.positive_duration(v, &k(f)))
    };
    let ratio = |c: &mut Check<'_>, v: &Option<Spanned<crate::config::RawNum>>, f: SlaKey| {
        v.as_ref().and_then(|v| c.ratio(v, &k(f)))
    };
    use SlaKey as K;
    push(dur(c, &t.p99_latency, K::P99Latency).map(Objective::P99Latency));
    push(dur(c, &t.ttft_p99, K::TtftP99).map(Objective::TtftP99));
    push(dur(c, &t.ttfot_p99, K::TtfotP99).map(Objective::TtfotP99));
    push(dur(c, &t.tpot_p99, K::TpotP99).map(Objective::TpotP99));
    push(ratio(c, &t.availability, K::Availability).map(Objective::Availability));
    push(ratio(c, &t.uptime, K::Uptime).map(Objective::Uptime));
    push(ratio(c, &t.failover_success, K::FailoverSuccess).map(Objective::FailoverSuccess));
    push(dur(c, &t.max_failover_time, K::MaxFailoverTime).map(Objective::MaxFailoverTime));
    push(dur(c, &t.max_recovery_time, K::MaxRecoveryTime).map(Objective::MaxRecoveryTime));
    push(
        t.max_retry_amplification
            .as_ref()
            .and_then(|v| c.number_in(v, &k(K::MaxRetryAmplification), 1.0..=MAX_AMPLIFICATION))
            .map(Objective::MaxRetryAmplification),
    );
    push(
        t.max_cost_per_million
            .as_ref()
            .and_then(|v| c.number_in(v, &k(K::MaxCostPerMillion), 0.0..=MAX_COST))
            .map(Objective::MaxCostPerMillion),
    );
    push(dur(c, &t.max_overhead_p99, K::MaxOverheadP99).map(Objective::MaxOverheadP99));
    push(ratio(c, &t.goodput, K::Goodput).map(Objective::Goodput));
    push(
        t.min_goodput_rps
            .as_ref()
            .and_then(|v| c.number_in(v, &k(K::MinGoodputRps), 0.0..=crate::scenario::MAX_RATE))
            .map(Objective::MinGoodputRps),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_reads_back_and_is_a_field_of_the_raw_table() {
        let schema = serde_json::to_value(schemars::schema_for!(RawSlaClass)).unwrap_or_default();
        for &key in SlaKey::ALL {
            assert_eq!(SlaKey::from_key(key.as_str()), Some(key));
            let json = serde_json::to_string(&key).unwrap_or_default();
            assert_eq!(json, format!("\"{key}\""));
            assert!(
                schema["properties"].get(key.as_str()).is_some(),
                "`{key}` is declared but the raw [sla] table has no such field"
            );
        }
        let fields = schema["properties"].as_object().map_or(0, |o| o.len());
        assert_eq!(
            fields,
            SlaKey::ALL.len(),
            "a raw [sla] field has no declared key"
        );
        assert_eq!(SlaKey::from_key("p99_ttft"), None);
    }
}
