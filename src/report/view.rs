//! The view model: what the HTML and Markdown reports show, built from `Summary` and already
//! formatted, so templates only lay it out.

use serde::Serialize;

use super::fmt::{self, DASH, opt};
use super::overhead::{self, OverheadView};
use crate::metrics::{CheckStatus, Percentiles, Summary};

#[derive(Debug, Serialize)]
pub struct ReportView {
    pub title: String,
    pub description: Option<String>,
    pub target: String,
    pub started_at: String,
    pub verdict: VerdictView,
    pub trust_warnings: Vec<String>,
    pub interrupted: bool,
    pub headline: Vec<Field>,
    pub meta: Vec<Field>,
    pub checks: Vec<CheckRow>,
    pub classes: Vec<ClassRow>,
    /// One row per gateway tier (empty when no class has a tier).
    pub tiers: Vec<TierRow>,
    pub streams: Vec<StreamRow>,
    /// Per conversation turn, for classes that sent conversations.
    pub turns: Vec<TurnRow>,
    /// Token totals and where prompt counts came from.
    pub tokens: Vec<Field>,
    pub faults: Vec<FaultRow>,
    pub upstreams: Vec<UpstreamRow>,
    pub cost: Option<CostView>,
    pub generator: Vec<Field>,
    pub errors: Vec<Field>,
    /// Time to error per kind, the whole run's and each class's.
    pub time_to_error: Vec<ErrorRow>,
    /// Which requests the latency numbers describe, said next to every latency chart and table:
    /// a sentence, and the few words a caption holds.
    pub latency_scope: String,
    pub latency_of: &'static str,
    /// The latency the gateway adds, when the run sent a direct baseline.
    pub overhead: Option<OverheadView>,
    /// What the system under test spent, and its own counts beside gauntlet's.
    pub sut: Option<super::sut::SutView>,
    /// A sharded run's shards, each by its own numbers (empty for one machine).
    pub shards: Vec<ShardRow>,
}

/// One shard of a sharded run: what it sent and whether it kept up.
#[derive(Debug, Serialize)]
pub struct ShardRow {
    pub index: String,
    pub requests: String,
    pub rps: String,
    pub lag_p99: String,
    pub dropped: String,
    pub clock: String,
    pub note: String,
}

/// The per-shard table's rows.
pub fn shard_rows(s: &Summary) -> Vec<ShardRow> {
    s.shards
        .iter()
        .map(|r| ShardRow {
            index: r.index.to_string(),
            requests: fmt::count(r.requests),
            rps: format!("{:.1}", r.rps),
            lag_p99: fmt::ms(r.lag_p99_ms),
            dropped: fmt::count(r.dropped),
            clock: match (r.clock_offset_ms, r.rtt_ms) {
                (Some(o), Some(rtt)) => format!("{o:+.2} ms (RTT {rtt:.2} ms)"),
                (Some(o), None) => format!("{o:+.2} ms"),
                _ => DASH.into(),
            },
            note: r.note.clone().unwrap_or_default(),
        })
        .collect()
}

/// A gateway tier's classes together; `shed` counts refusals marked `x-gateway-shed`.
#[derive(Debug, Serialize)]
pub struct TierRow {
    pub name: String,
    pub classes: String,
    pub requests: String,
    pub availability: String,
    pub p99: String,
    pub ttft_p99: String,
    pub shed: String,
}

#[derive(Debug, Serialize)]
pub struct ErrorRow {
    /// `overall` or the class name.
    pub scope: String,
    pub kind: String,
    pub count: String,
    pub p50: String,
    pub p90: String,
    pub p99: String,
    pub max: String,
}

/// The schema from which latency percentiles hold successful requests only.
const SUCCESS_ONLY_SCHEMA: u32 = 2;

/// Which requests the latency percentiles of this summary describe.
pub fn latency_scope(s: &Summary) -> String {
    if s.schema_version >= SUCCESS_ONLY_SCHEMA {
        "Latency, TTFT and inter-token gaps are those of successful requests only, and the SLA's \
         latency objectives judge those; failed requests are timed apart (time to error, per \
         kind) and judged by availability, failover success and uptime."
            .into()
    } else {
        format!(
            "This summary has schema version {}: its latency percentiles mix failed requests in \
             with the answers (a fast refusal counts as a fast request), and it has no time to \
             error.",
            s.schema_version
        )
    }
}

/// The few words a caption holds about which requests the latency describes.
pub fn latency_of(s: &Summary) -> &'static str {
    if s.schema_version >= SUCCESS_ONLY_SCHEMA {
        "successful requests only"
    } else {
        "every request, failed ones included (an older summary)"
    }
}

fn error_rows(scope: &str, st: &crate::metrics::Stats) -> Vec<ErrorRow> {
    st.errors
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, n)| {
            let p = st.time_to_error_ms.get(kind).filter(|p| p.samples > 0);
            let cell = |get: fn(&Percentiles) -> f64| opt(p, |p| fmt::ms(get(p)));
            ErrorRow {
                scope: scope.to_string(),
                kind: kind.clone(),
                count: fmt::count(*n),
                p50: cell(|p| p.p50),
                p90: cell(|p| p.p90),
                p99: cell(|p| p.p99),
                max: cell(|p| p.max),
            }
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct Field {
    pub label: String,
    pub value: String,
}

fn field(label: &str, value: impl Into<String>) -> Field {
    Field {
        label: label.into(),
        value: value.into(),
    }
}

#[derive(Debug, Serialize)]
pub struct VerdictView {
    /// `pass`, `fail` or `inconclusive`: also the CSS class.
    pub status: &'static str,
    pub headline: String,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct CheckRow {
    pub name: String,
    pub scope: String,
    pub target: String,
    pub measured: String,
    pub samples: String,
    pub status: &'static str,
    pub note: String,
}

#[derive(Debug, Serialize)]
pub struct ClassRow {
    pub name: String,
    pub model: String,
    pub weight: u32,
    pub stream: bool,
    /// The API, when not OpenAI chat (the usual case says nothing).
    pub api: Option<String>,
    pub primary: String,
    pub requests: String,
    pub availability: String,
    pub rps: String,
    pub p50: String,
    pub p90: String,
    pub p99: String,
    pub p999: String,
    pub max: String,
    pub errors: String,
    pub served_by: String,
    pub ttfot_p99: String,
    pub tpot_p99: String,
}

#[derive(Debug, Serialize)]
pub struct StreamRow {
    pub name: String,
    pub ttft: Vec<String>,
    pub itl: Vec<String>,
    pub ttfot_p99: String,
    pub tpot_p99: String,
}

#[derive(Debug, Serialize)]
pub struct TurnRow {
    pub class: String,
    pub turn: u16,
    pub requests: String,
    pub availability: String,
    pub p50: String,
    pub p99: String,
    pub ttft_p99: String,
}

#[derive(Debug, Serialize)]
pub struct FaultRow {
    pub upstream: String,
    pub kind: String,
    pub window: String,
    pub applied: String,
    pub affected_classes: String,
    pub affected_requests: String,
    pub failover_success: String,
    pub time_to_failover: String,
    pub time_to_recover: String,
    pub failed_over_p99: String,
    pub normal_p99: String,
}

#[derive(Debug, Serialize)]
pub struct UpstreamRow {
    pub name: String,
    pub received: String,
    pub served: String,
    pub tokens_in: String,
    pub tokens_out: String,
    pub price: String,
    pub cost: String,
}

#[derive(Debug, Serialize)]
pub struct CostView {
    pub summary: Vec<Field>,
    pub monthly: Vec<Field>,
    /// One row per alternative and scale: this run, per 1M requests, each monthly volume.
    pub savings: Vec<SavingsRow>,
}

/// What the measured mix costs against one alternative at one scale.
#[derive(Debug, Serialize)]
pub struct SavingsRow {
    pub alternative: String,
    pub scale: String,
    pub ours: String,
    pub theirs: String,
    pub saved: String,
    pub saved_pct: String,
}

fn savings_rows(c: &crate::metrics::Cost) -> Vec<SavingsRow> {
    let mut rows = Vec::new();
    for a in &c.alternatives {
        let name = format!(
            "{} ({} / {} per M tokens)",
            a.name,
            fmt::usd(a.input_price_per_m),
            fmt::usd(a.output_price_per_m)
        );
        let pct = |saved: f64, theirs: f64| {
            if theirs > 0.0 {
                format!("{:.1}%", saved / theirs * 100.0)
            } else {
                DASH.into()
            }
        };
        let mut row = |scale: String, ours: f64, theirs: f64| {
            rows.push(SavingsRow {
                alternative: name.clone(),
                scale,
                ours: fmt::usd(ours),
                theirs: fmt::usd(theirs),
                saved: fmt::usd(theirs - ours),
                saved_pct: pct(theirs - ours, theirs),
            });
        };
        row("this run".into(), c.total_usd, a.total_usd);
        row(
            "per 1M requests".into(),
            c.per_million_requests_usd,
            a.per_million_requests_usd,
        );
        for (m, ours) in a.monthly.iter().zip(&c.monthly) {
            row(
                format!("{} tokens a month", fmt::tokens(m.tokens_per_month)),
                ours.usd,
                m.usd,
            );
        }
    }
    rows
}

fn kv_list<'a>(items: impl IntoIterator<Item = (&'a String, &'a u64)>) -> String {
    let parts: Vec<String> = items
        .into_iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {}", fmt::count(*n)))
        .collect();
    if parts.is_empty() {
        DASH.into()
    } else {
        parts.join(", ")
    }
}

fn p99_cell(p: Option<&Percentiles>) -> String {
    match p {
        Some(p) if p.samples > 0 => fmt::ms(p.p99),
        _ => DASH.into(),
    }
}

fn turn_rows(c: &crate::metrics::ClassStats) -> impl Iterator<Item = TurnRow> + '_ {
    c.turns.iter().map(|t| TurnRow {
        class: c.name.clone(),
        turn: t.turn,
        requests: fmt::count(t.requests),
        availability: fmt::pct(if t.requests == 0 {
            1.0
        } else {
            t.successes as f64 / t.requests as f64
        }),
        p50: if t.latency_ms.samples > 0 {
            fmt::ms(t.latency_ms.p50)
        } else {
            DASH.into()
        },
        p99: p99_cell(Some(&t.latency_ms)),
        ttft_p99: p99_cell(t.ttft_ms.as_ref()),
    })
}

fn token_fields(s: &Summary) -> Vec<Field> {
    let t = &s.overall.tokens;
    let from = &s.overall.prompt_tokens_from;
    let mut out = vec![
        field("prompt tokens", fmt::tokens(t.prompt)),
        field("completion tokens", fmt::tokens(t.completion)),
    ];
    if t.cached > 0 {
        out.push(field("of the prompt, cached", fmt::tokens(t.cached)));
    }
    if t.reasoning > 0 {
        out.push(field(
            "of the completion, reasoning",
            fmt::tokens(t.reasoning),
        ));
    }
    if from.usage + from.tokenizer > 0 {
        out.push(field(
            "prompt counts from usage / tokenizer",
            format!(
                "{} / {}",
                fmt::count(from.usage),
                fmt::count(from.tokenizer)
            ),
        ));
    }
    out
}

fn percentile_cells(p: Option<&Percentiles>) -> Vec<String> {
    match p {
        Some(p) if p.samples > 0 => vec![
            fmt::ms(p.p50),
            fmt::ms(p.p90),
            fmt::ms(p.p99),
            fmt::ms(p.p999),
            fmt::count(p.samples),
        ],
        _ => vec![DASH.into(); 5],
    }
}

pub fn build(s: &Summary) -> ReportView {
    ReportView {
        title: format!("gauntlet · {}", s.scenario),
        description: s.description.clone(),
        target: s.target.clone(),
        started_at: s.started_at.clone(),
        verdict: verdict(s),
        trust_warnings: if s.trust.trustworthy {
            Vec::new()
        } else if s.trust.reasons.is_empty() {
            vec!["the load generator could not keep its schedule".into()]
        } else {
            s.trust.reasons.clone()
        },
        interrupted: s.interrupted,
        shards: shard_rows(s),
        headline: headline(s),
        meta: meta(s),
        checks: s
            .sla
            .checks
            .iter()
            .map(|c| CheckRow {
                name: c.name.as_str().to_string(),
                scope: c.scope.clone(),
                target: format!(
                    "{} {}",
                    fmt::bound_symbol(&c.unit),
                    fmt::in_unit(c.target, &c.unit)
                ),
                measured: opt(c.measured, |m| fmt::in_unit(m, &c.unit)),
                samples: fmt::count(c.samples),
                status: fmt::status(c.status),
                note: c.note.clone().unwrap_or_default(),
            })
            .collect(),
        classes: s.classes.iter().map(class_row).collect(),
        tiers: s
            .tiers
            .iter()
            .map(|t| TierRow {
                name: t.name.clone(),
                classes: t.classes.join(", "),
                requests: fmt::count(t.stats.requests),
                availability: fmt::pct(t.stats.availability),
                p99: if t.stats.latency_ms.samples > 0 {
                    fmt::ms(t.stats.latency_ms.p99)
                } else {
                    DASH.into()
                },
                ttft_p99: opt(t.stats.ttft_ms.as_ref(), |p| fmt::ms(p.p99)),
                shed: fmt::count(t.stats.shed),
            })
            .collect(),
        streams: s
            .classes
            .iter()
            .filter(|c| c.stream && (c.stats.ttft_ms.is_some() || c.stats.itl_ms.is_some()))
            .map(|c| StreamRow {
                name: c.name.clone(),
                ttft: percentile_cells(c.stats.ttft_ms.as_ref()),
                itl: percentile_cells(c.stats.itl_ms.as_ref()),
                ttfot_p99: p99_cell(c.stats.ttfot_ms.as_ref()),
                tpot_p99: p99_cell(c.stats.tpot_ms.as_ref()),
            })
            .collect(),
        turns: s.classes.iter().flat_map(turn_rows).collect(),
        tokens: token_fields(s),
        faults: s
            .faults
            .iter()
            .map(|f| FaultRow {
                upstream: f.upstream.clone(),
                kind: f.kind.clone(),
                window: format!("{:.1}–{:.1} s", f.start_s, f.end_s),
                applied: match (f.applied_at_s, f.lifted_at_s) {
                    (Some(a), Some(l)) => format!("{a:.2}–{l:.2} s"),
                    (Some(a), None) => format!("{a:.2} s –"),
                    _ => f
                        .not_applied
                        .as_ref()
                        .map_or_else(|| DASH.into(), |why| format!("never: {why}")),
                },
                affected_classes: if f.affected_classes.is_empty() {
                    DASH.into()
                } else {
                    f.affected_classes.join(", ")
                },
                affected_requests: format!(
                    "{} / {}",
                    fmt::count(f.affected_successes),
                    fmt::count(f.affected_requests)
                ),
                failover_success: opt(f.failover_success, fmt::pct),
                time_to_failover: opt(f.time_to_failover_s, fmt::seconds),
                time_to_recover: opt(f.time_to_recover_s, fmt::seconds),
                failed_over_p99: opt(f.failed_over_latency_ms.as_ref(), |p| fmt::ms(p.p99)),
                normal_p99: opt(f.normal_latency_ms.as_ref(), |p| fmt::ms(p.p99)),
            })
            .collect(),
        upstreams: s
            .upstreams
            .iter()
            .map(|u| UpstreamRow {
                name: u.name.clone(),
                received: opt(u.received, fmt::count),
                served: fmt::count(u.served),
                tokens_in: fmt::tokens(u.tokens.prompt),
                tokens_out: fmt::tokens(u.tokens.completion),
                price: match (u.price_in_per_m, u.price_out_per_m) {
                    (Some(i), Some(o)) => format!("{} / {}", fmt::usd(i), fmt::usd(o)),
                    (Some(i), None) => format!("{} in", fmt::usd(i)),
                    (None, Some(o)) => format!("{} out", fmt::usd(o)),
                    (None, None) => DASH.into(),
                },
                cost: opt(u.cost_usd, fmt::usd),
            })
            .collect(),
        cost: s.cost.as_ref().map(|c| CostView {
            summary: vec![
                field("this run", fmt::usd(c.total_usd)),
                field("per million requests", fmt::usd(c.per_million_requests_usd)),
                field(
                    "blended per million tokens",
                    fmt::usd(c.blended_per_million_tokens_usd),
                ),
                {
                    let (verb, amount) = fmt::failover_cost(c.failover_extra_usd);
                    field(&format!("{verb} by failover"), amount)
                },
            ],
            monthly: c
                .monthly
                .iter()
                .map(|m| {
                    field(
                        &format!("{} tokens a month", fmt::tokens(m.tokens_per_month)),
                        fmt::usd(m.usd),
                    )
                })
                .collect(),
            savings: savings_rows(c),
        }),
        generator: generator(s),
        errors: s
            .overall
            .errors
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| field(k, fmt::count(*n)))
            .collect(),
        time_to_error: std::iter::once(error_rows("overall", &s.overall))
            .chain(s.classes.iter().map(|c| error_rows(&c.name, &c.stats)))
            .flatten()
            .collect(),
        latency_scope: latency_scope(s),
        latency_of: latency_of(s),
        overhead: overhead::view(s),
        sut: super::sut::build(s),
    }
}

fn verdict(s: &Summary) -> VerdictView {
    let n = |st: CheckStatus| s.sla.checks.iter().filter(|c| c.status == st).count();
    let (pass, fail, inconclusive) = (
        n(CheckStatus::Pass),
        n(CheckStatus::Fail),
        n(CheckStatus::Inconclusive),
    );
    let headline = match s.sla.verdict {
        CheckStatus::Pass if s.sla.checks.is_empty() => "PASS — no SLA checks were set".into(),
        CheckStatus::Pass => "PASS — every SLA check held".into(),
        CheckStatus::Fail => format!(
            "FAIL — {fail} of {} SLA checks violated",
            s.sla.checks.len()
        ),
        CheckStatus::Inconclusive => {
            "INCONCLUSIVE — not enough evidence to confirm the SLA".to_string()
        }
    };
    let mut detail = format!("{pass} passed, {fail} failed, {inconclusive} inconclusive");
    if s.interrupted {
        detail.push_str(" · the run was interrupted; numbers cover what was measured");
    }
    VerdictView {
        status: fmt::status(s.sla.verdict),
        headline,
        detail,
    }
}

fn headline(s: &Summary) -> Vec<Field> {
    let o = &s.overall;
    let mut out = vec![
        field("requests", fmt::count(o.requests)),
        field("availability", fmt::pct(o.availability)),
        field("throughput", fmt::rate(o.rps)),
    ];
    // Without [sla.per_request] goodput is availability again: shown only when it differs.
    if !s.per_request.is_empty() {
        out.push(field(
            "goodput",
            format!("{} · {}", fmt::pct(o.goodput), fmt::rate(o.goodput_rps)),
        ));
    }
    if o.latency_ms.samples > 0 {
        out.push(field("p50 latency", fmt::ms(o.latency_ms.p50)));
        out.push(field("p99 latency", fmt::ms(o.latency_ms.p99)));
    }
    if let Some(t) = o.ttft_ms.filter(|t| t.samples > 0) {
        out.push(field("p99 TTFT", fmt::ms(t.p99)));
    }
    if let Some(c) = &s.cost {
        out.push(field(
            "cost / M requests",
            fmt::usd(c.per_million_requests_usd),
        ));
    }
    out
}

fn meta(s: &Summary) -> Vec<Field> {
    vec![
        field("scenario", s.scenario.clone()),
        field("target", s.target.clone()),
        field("started", s.started_at.clone()),
        field(
            "measured window",
            format!(
                "{} after {} warmup, {} intervals",
                fmt::seconds(s.duration_s),
                fmt::seconds(s.warmup_s),
                fmt::seconds(s.interval_s)
            ),
        ),
        field("seed", s.seed.to_string()),
        field("gauntlet", s.gauntlet_version.clone()),
        field("schema", s.schema_version.to_string()),
    ]
}

fn generator(s: &Summary) -> Vec<Field> {
    let g = &s.generator;
    let lag = &g.schedule_lag_ms;
    let mut out = vec![
        field(
            "schedule lag p50 / p99 / max",
            format!(
                "{} / {} / {}",
                fmt::ms(lag.p50),
                fmt::ms(lag.p99),
                fmt::ms(lag.max)
            ),
        ),
        field("dropped (could not send)", fmt::count(g.dropped)),
        field("abandoned at drain", fmt::count(g.abandoned)),
    ];
    if let Some(a) = s.retry_amplification {
        out.push(field("retry amplification", format!("{a:.2}x")));
    }
    if let Some(line) = fmt::connections(&s.overall.connections) {
        out.push(field("connections opened", line));
    }
    if s.overall.gateway_rate_limited > 0 {
        out.push(field(
            "429s from the gateway itself",
            fmt::count(s.overall.gateway_rate_limited),
        ));
    }
    out
}

fn class_row(c: &crate::metrics::ClassStats) -> ClassRow {
    let st = &c.stats;
    let lat = &st.latency_ms;
    let has = lat.samples > 0;
    let l = |v: f64| if has { fmt::ms(v) } else { DASH.into() };
    ClassRow {
        name: c.name.clone(),
        model: c.model.clone(),
        weight: c.weight,
        stream: c.stream,
        api: (c.api != "chat").then(|| c.api.clone()),
        primary: c.primary.clone().unwrap_or_else(|| DASH.into()),
        requests: fmt::count(st.requests),
        availability: fmt::pct(st.availability),
        rps: fmt::rate(st.rps),
        p50: l(lat.p50),
        p90: l(lat.p90),
        p99: l(lat.p99),
        p999: l(lat.p999),
        max: l(lat.max),
        errors: kv_list(st.errors.iter()),
        served_by: kv_list(st.served_by.iter()),
        ttfot_p99: p99_cell(st.ttfot_ms.as_ref()),
        tpot_p99: p99_cell(st.tpot_ms.as_ref()),
    }
}
