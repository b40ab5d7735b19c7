//! Compiling `[sla]` into objectives, overall and per class. Unknown keys are refused by the
//! raw schema, so a misspelt metric can never become a silently passing check.

use toml::Spanned;

use super::model::{Objective, Scope, Sla, SlaTarget};
use super::raw::{RawSla, RawSlaClass};
use crate::config::Check;

/// Retries can multiply load, but not by this much; larger is a typo.
const MAX_AMPLIFICATION: f64 = 1000.0;
const MAX_COST: f64 = 1e12;

pub fn compile(c: &mut Check<'_>, raw: &RawSla, classes: &[&str]) -> Sla {
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
        if table.uptime.is_some() && table.availability.is_none() && !overall_availability {
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
    if overall.uptime.is_some() && !overall_availability {
        uptime_needs_availability(c, &overall, "sla");
    }
    Sla { targets }
}

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
    let k = |f: &str| format!("{key}.{f}");
    let mut push = |objective: Option<Objective>| {
        if let Some(objective) = objective {
            out.push(SlaTarget {
                scope: scope.clone(),
                objective,
            });
        }
    };
    let dur = |c: &mut Check<'_>, v: &Option<Spanned<String>>, f: &str| {
        v.as_ref().and_then(|v| c.positive_duration(v, &k(f)))
    };
    let ratio = |c: &mut Check<'_>, v: &Option<Spanned<crate::config::RawNum>>, f: &str| {
        v.as_ref().and_then(|v| c.ratio(v, &k(f)))
    };
    push(dur(c, &t.p99_latency, "p99_latency").map(Objective::P99Latency));
    push(dur(c, &t.ttft_p99, "ttft_p99").map(Objective::TtftP99));
    push(ratio(c, &t.availability, "availability").map(Objective::Availability));
    push(ratio(c, &t.uptime, "uptime").map(Objective::Uptime));
    push(ratio(c, &t.failover_success, "failover_success").map(Objective::FailoverSuccess));
    push(dur(c, &t.max_failover_time, "max_failover_time").map(Objective::MaxFailoverTime));
    push(dur(c, &t.max_recovery_time, "max_recovery_time").map(Objective::MaxRecoveryTime));
    push(
        t.max_retry_amplification
            .as_ref()
            .and_then(|v| c.number_in(v, &k("max_retry_amplification"), 1.0..=MAX_AMPLIFICATION))
            .map(Objective::MaxRetryAmplification),
    );
    push(
        t.max_cost_per_million
            .as_ref()
            .and_then(|v| c.number_in(v, &k("max_cost_per_million"), 0.0..=MAX_COST))
            .map(Objective::MaxCostPerMillion),
    );
}
