//! The summary a person reads in the terminal right after a run: per-class numbers (latency of
//! the answers; failures timed apart), failover windows, cost and the verdict, each SLA check
//! with its samples.

use std::fmt::Write;

use super::fmt;
use crate::metrics::{CheckStatus, Percentiles, Stats, Summary};

fn p99(p: &Percentiles) -> String {
    if p.samples == 0 {
        "-".into()
    } else {
        fmt::ms(p.p99)
    }
}

/// Renders the run's summary as plain text (no colour, so it reads the same in CI logs).
pub fn render(s: &Summary) -> String {
    let mut o = String::new();
    // Writing into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        o,
        "\n{} — {} — {} measured{}",
        s.scenario,
        s.target,
        fmt::seconds(s.duration_s),
        if s.interrupted { " (interrupted)" } else { "" }
    );
    let _ = writeln!(
        o,
        "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>7}",
        "class",
        "requests",
        "avail",
        "rps",
        "p50",
        "p99",
        "ttft p99",
        "ttfot p99",
        "tpot p99",
        "errors"
    );
    let row = |o: &mut String, name: &str, st: &Stats| {
        let errors: u64 = st.errors.values().sum::<u64>() + st.dropped;
        let _ = writeln!(
            o,
            "{:<16} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>9} {:>7}",
            name,
            fmt::count(st.requests),
            fmt::pct(st.availability),
            fmt::rate(st.rps),
            if st.latency_ms.samples == 0 {
                "-".into()
            } else {
                fmt::ms(st.latency_ms.p50)
            },
            p99(&st.latency_ms),
            st.ttft_ms.as_ref().map_or_else(|| "-".into(), p99),
            st.ttfot_ms.as_ref().map_or_else(|| "-".into(), p99),
            st.tpot_ms.as_ref().map_or_else(|| "-".into(), p99),
            fmt::count(errors)
        );
    };
    for c in &s.classes {
        row(&mut o, &c.name, &c.stats);
    }
    row(&mut o, "overall", &s.overall);
    super::overhead::terminal(&mut o, s);
    for t in &s.tiers {
        let _ = writeln!(
            o,
            "tier {}: {} requests, {} available, p99 {}, shed {} ({})",
            t.name,
            fmt::count(t.stats.requests),
            fmt::pct(t.stats.availability),
            p99(&t.stats.latency_ms),
            fmt::count(t.stats.shed),
            t.classes.join(", ")
        );
    }
    if !s.overall.errors.is_empty() {
        let list: Vec<String> = s
            .overall
            .errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(o, "errors: {}", list.join(", "));
    }
    if !s.overall.time_to_error_ms.is_empty() {
        let list: Vec<String> = s
            .overall
            .time_to_error_ms
            .iter()
            .map(|(k, p)| format!("{k} p50 {} p99 {}", fmt::ms(p.p50), fmt::ms(p.p99)))
            .collect();
        let _ = writeln!(o, "time to error: {}", list.join(", "));
    }
    let _ = writeln!(o, "latency columns: {}", super::view::latency_of(s));
    let good = if s.per_request.is_empty() {
        "every success counts: no [sla.per_request]".to_string()
    } else {
        let p = &s.per_request;
        let words: Vec<String> = [
            ("ttft", p.ttft_ms),
            ("tpot", p.tpot_ms),
            ("latency", p.latency_ms),
        ]
        .into_iter()
        .filter_map(|(name, ms)| Some(format!("{name} <= {} ms", ms?)))
        .collect();
        format!("succeeded with {}", words.join(", "))
    };
    let _ = writeln!(
        o,
        "goodput: {} of requests, {} ({good})",
        fmt::pct(s.overall.goodput),
        fmt::rate(s.overall.goodput_rps)
    );
    for c in s.classes.iter().filter(|c| !c.turns.is_empty()) {
        let turns: Vec<String> = c
            .turns
            .iter()
            .map(|t| {
                let ttft = t.ttft_ms.as_ref().map_or_else(|| "-".into(), p99);
                format!(
                    "#{} {} req p99 {} ttft p99 {ttft}",
                    t.turn,
                    fmt::count(t.requests),
                    p99(&t.latency_ms)
                )
            })
            .collect();
        let _ = writeln!(o, "{} by turn: {}", c.name, turns.join(" · "));
    }
    let t = &s.overall.tokens;
    let from = &s.overall.prompt_tokens_from;
    if t.cached + t.reasoning + from.usage > 0 {
        let _ = writeln!(
            o,
            "tokens: {} prompt ({} cached), {} completion ({} reasoning); prompt counts from usage {}, tokenizer {}",
            fmt::tokens(t.prompt),
            fmt::tokens(t.cached),
            fmt::tokens(t.completion),
            fmt::tokens(t.reasoning),
            fmt::count(from.usage),
            fmt::count(from.tokenizer)
        );
    }
    for w in &s.faults {
        if let Some(why) = &w.not_applied {
            let (start, end) = (fmt::seconds(w.start_s), fmt::seconds(w.end_s));
            let (up, kind) = (&w.upstream, &w.kind);
            let _ = writeln!(o, "fault: {up} {kind} {start}–{end}: never applied ({why})");
            continue;
        }
        let _ = writeln!(
            o,
            "fault: {} {} {}–{}: {} requests affected, {} succeeded; back at target after {}; primary serving again after {}",
            w.upstream,
            w.kind,
            fmt::seconds(w.start_s),
            fmt::seconds(w.end_s),
            fmt::count(w.affected_requests),
            w.failover_success.map_or_else(|| "-".into(), fmt::pct),
            w.time_to_failover_s
                .map_or_else(|| "never".into(), fmt::seconds),
            w.time_to_recover_s
                .map_or_else(|| "never".into(), fmt::seconds),
        );
    }
    if let Some(x) = s.retry_amplification {
        let _ = writeln!(
            o,
            "retry amplification: {x:.3}x (attempts the upstreams received per request sent)"
        );
    }
    if let Some(line) = fmt::connections(&s.overall.connections) {
        let _ = writeln!(o, "connections: {line}");
    }
    if let Some(b) = &s.budget {
        let mut line = format!(
            "budget: spent ${:.4}{}, {} tokens{}",
            b.spent_usd,
            b.max_cost_usd
                .map_or_else(String::new, |m| format!(" of ${m:.2}")),
            fmt::count(b.spent_tokens),
            b.max_tokens
                .map_or_else(String::new, |m| format!(" of {}", fmt::count(m))),
        );
        if b.stopped {
            line.push_str("; STOPPED: the run would have passed its budget (reported up to then)");
        }
        let _ = writeln!(o, "{line}");
    }
    if let Some(c) = &s.cost {
        let (verb, amount) = fmt::failover_cost(c.failover_extra_usd);
        let _ = writeln!(
            o,
            "cost: {} this run, {} per 1M requests, {} per 1M tokens blended; failover {verb} {amount}",
            fmt::usd(c.total_usd),
            fmt::usd(c.per_million_requests_usd),
            fmt::usd(c.blended_per_million_tokens_usd),
        );
        let monthly: Vec<String> = c
            .monthly
            .iter()
            .map(|m| {
                format!(
                    "{} tokens {}",
                    fmt::tokens(m.tokens_per_month),
                    fmt::usd(m.usd)
                )
            })
            .collect();
        if !monthly.is_empty() {
            let _ = writeln!(o, "per month at this mix: {}", monthly.join(" · "));
        }
        for a in &c.alternatives {
            let saves = |saved: f64| {
                if saved >= 0.0 {
                    format!("saves {}", fmt::usd(saved))
                } else {
                    format!("costs {} more", fmt::usd(-saved))
                }
            };
            let pct = a
                .savings_ratio
                .map(|r| format!(", {:.1}%", r * 100.0))
                .unwrap_or_default();
            let monthly: Vec<String> = a
                .monthly
                .iter()
                .map(|m| {
                    format!(
                        "{} tokens {} ({})",
                        fmt::tokens(m.tokens_per_month),
                        fmt::usd(m.usd),
                        saves(m.savings_usd)
                    )
                })
                .collect();
            let _ = writeln!(
                o,
                "vs {} ({} / {} per M tokens): {} this run, the mix {}{pct}; {} per 1M requests; per month {}",
                a.name,
                fmt::usd(a.input_price_per_m),
                fmt::usd(a.output_price_per_m),
                fmt::usd(a.total_usd),
                saves(a.savings_usd),
                fmt::usd(a.per_million_requests_usd),
                monthly.join(" · ")
            );
        }
    }
    let _ = writeln!(
        o,
        "generator: schedule lag p50 {}, p99 {}, max {}; dropped {}",
        fmt::ms(s.generator.schedule_lag_ms.p50),
        fmt::ms(s.generator.schedule_lag_ms.p99),
        fmt::ms(s.generator.schedule_lag_ms.max),
        fmt::count(s.generator.dropped)
    );
    if !s.shards.is_empty() {
        let _ = writeln!(
            o,
            "{:>5} {:>10} {:>9} {:>10} {:>8}  clock offset",
            "shard", "requests", "req/s", "lag p99", "dropped"
        );
        for r in super::view::shard_rows(s) {
            let _ = writeln!(
                o,
                "{:>5} {:>10} {:>9} {:>10} {:>8}  {}{}",
                r.index,
                r.requests,
                r.rps,
                r.lag_p99,
                r.dropped,
                r.clock,
                if r.note.is_empty() {
                    String::new()
                } else {
                    format!("  {}", r.note)
                }
            );
        }
    }
    for reason in &s.trust.reasons {
        let _ = writeln!(o, "warning: {reason}");
    }
    for c in &s.sla.checks {
        let _ = write!(
            o,
            "{:<12} {:<24} {:<16} target {} {:<10} measured {:<10} ({} samples)",
            fmt::status(c.status).to_uppercase(),
            c.name,
            c.scope,
            fmt::bound_symbol(&c.unit),
            fmt::in_unit(c.target, &c.unit),
            c.measured
                .map_or_else(|| "-".into(), |m| fmt::in_unit(m, &c.unit)),
            fmt::count(c.samples)
        );
        match &c.note {
            Some(n) if c.status != CheckStatus::Pass => {
                let _ = writeln!(o, " — {n}");
            }
            _ => o.push('\n'),
        }
    }
    let verdict = match s.sla.verdict {
        CheckStatus::Pass => "PASS",
        CheckStatus::Fail => "FAIL: the SLA was violated",
        CheckStatus::Inconclusive => "INCONCLUSIVE: the evidence cannot support every promise",
    };
    let _ = writeln!(o, "verdict: {verdict}");
    o
}
