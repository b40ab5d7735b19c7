//! Compiling `[load]` into one `LoadPlan`: stages or the one-stage shorthand, open or closed,
//! with the limits that catch typos (a 10^12 rate, a zero in-flight cap).

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::model::{Arrival, DirectBaseline, LoadPlan, Stage, StageLoad, Trace};
use super::raw::{RawArrival, RawBaseline, RawLoad, RawLoadModel, RawStage};
use super::trace::{self, ClassRef, TraceReadError};
use crate::config::{Check, MAX_DURATION};

/// Far above what one generator can send; anything larger is a typo.
pub const MAX_RATE: f64 = 1_000_000.0;
const MAX_CONCURRENCY: u64 = 100_000;
const MAX_IN_FLIGHT: u64 = 1_000_000;
const MAX_STAGES: usize = 10_000;
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Above this the gaps are mostly zeros and the odd hour-long lull: not traffic any more.
const MAX_BURSTINESS: f64 = 10.0;
const MAX_SPEED: f64 = 1000.0;
/// `baseline_share` when the scenario does not say.
const DEFAULT_BASELINE_SHARE: f64 = 0.1;
/// Past half, the baseline would carry more of the load than the gateway under test.
const MAX_BASELINE_SHARE: f64 = 0.5;

const EXAMPLE: &str =
    "[load] stages = [{ duration = \"30s\", rate = 50 }] (or duration = \"30s\" and rate = 50)";

/// `classes` are the request classes in file order, which a trace's lines name.
pub fn compile(
    c: &mut Check<'_>,
    raw: Option<&Spanned<RawLoad>>,
    classes: &[ClassRef<'_>],
) -> Option<LoadPlan> {
    let Some(spanned) = raw else {
        c.error(0..0, "load", format!("missing; add {EXAMPLE}"));
        return None;
    };
    let l = spanned.get_ref();
    let model = l
        .model
        .as_ref()
        .map_or(RawLoadModel::Open, |m| *m.get_ref());
    if model == RawLoadModel::Closed
        && let Some(m) = &l.model
        && l.arrival.is_some()
    {
        c.error(
            m.span(),
            "load.arrival",
            "`arrival` applies to the open model only; a closed model sends when an answer arrives",
        );
    }
    let arrival = arrival(c, l);
    let baseline = baseline(c, l);
    let stages = match &l.trace {
        Some(path) => trace_stage(c, spanned, path, model, classes).map(|s| vec![s]),
        None => {
            if let Some(speed) = &l.speed {
                c.error(
                    speed.span(),
                    "load.speed",
                    "`speed` is the replay speed of a `trace`; set `trace = \"file.jsonl\"` too",
                );
            }
            stages(c, spanned, model)
        }
    };
    let warmup = l
        .warmup
        .as_ref()
        .map_or(Some(Duration::ZERO), |w| c.duration(w, "load.warmup"));
    let max_in_flight = match &l.max_in_flight {
        Some(m) => c
            .whole(m, "load.max_in_flight", 1..=MAX_IN_FLIGHT, "max_in_flight")
            .and_then(|n| NonZeroUsize::new(usize::try_from(n).ok()?)),
        None => NonZeroUsize::new(1000),
    };
    let timeout = l
        .timeout
        .as_ref()
        .map_or(Some(Duration::from_secs(30)), |t| {
            c.positive_duration(t, "load.timeout")
        });
    let interval = l
        .interval
        .as_ref()
        .map_or(Some(Duration::from_secs(1)), |t| {
            let d = c.duration(t, "load.interval")?;
            if d < MIN_INTERVAL || d > Duration::from_secs(3600) {
                c.error(
                    t.span(),
                    "load.interval",
                    format!("{:?} is not allowed; use 10ms to 1h", t.get_ref()),
                );
                return None;
            }
            Some(d)
        });

    let stages = stages?;
    let total: Duration = stages.iter().map(|s| s.duration).sum();
    if total > MAX_DURATION {
        c.error(
            l.stages.as_ref().map_or(spanned.span(), Spanned::span),
            "load.stages",
            format!(
                "the stages add up to {}; a run is limited to {}",
                humantime::format_duration(total),
                humantime::format_duration(MAX_DURATION)
            ),
        );
        return None;
    }
    if let (Some(w), Some(raw_w)) = (warmup, &l.warmup)
        && w >= total
    {
        c.error(
            raw_w.span(),
            "load.warmup",
            format!(
                "warmup {} is not shorter than the run ({}); warmup is the first part of the \
                 stages, excluded from statistics",
                raw_w.get_ref(),
                humantime::format_duration(total)
            ),
        );
    }
    Some(LoadPlan {
        stages,
        warmup: warmup?,
        max_in_flight: max_in_flight?,
        timeout: timeout?,
        interval: interval?,
        arrival: arrival?,
        baseline: baseline?,
    })
}

/// `baseline = "direct"` and its share; a share without a baseline is refused, since it
/// would silently send nothing direct.
fn baseline(c: &mut Check<'_>, l: &RawLoad) -> Option<Option<DirectBaseline>> {
    let share = match &l.baseline_share {
        None => DEFAULT_BASELINE_SHARE,
        Some(v) => {
            let share = c.ratio(v, "load.baseline_share")?;
            if share <= 0.0 || share > MAX_BASELINE_SHARE {
                c.error(
                    v.span(),
                    "load.baseline_share",
                    format!(
                        "{} is not allowed; the share sent direct is above 0% and at most 50% \
                         (past half the baseline carries more load than the gateway)",
                        v.get_ref()
                    ),
                );
                return None;
            }
            share
        }
    };
    match (&l.baseline, &l.baseline_share) {
        (Some(b), _) => match b.get_ref() {
            RawBaseline::Direct => Some(Some(DirectBaseline { share })),
        },
        (None, Some(v)) => {
            c.error(
                v.span(),
                "load.baseline_share",
                "`baseline_share` is the share of a baseline; set `baseline = \"direct\"` too",
            );
            None
        }
        (None, None) => Some(None),
    }
}

/// How open-model sends are spaced, with `burstiness` for gamma gaps only.
fn arrival(c: &mut Check<'_>, l: &RawLoad) -> Option<Arrival> {
    let kind = l
        .arrival
        .as_ref()
        .map_or(RawArrival::Poisson, |a| *a.get_ref());
    match (kind, &l.burstiness) {
        (RawArrival::Gamma, Some(b)) => {
            let cv = *b.get_ref();
            if cv.is_finite() && cv > 0.0 && cv <= MAX_BURSTINESS {
                return Some(Arrival::Gamma { cv });
            }
            c.error(
                b.span(),
                "load.burstiness",
                format!(
                    "{cv} is not allowed; the coefficient of variation of the gaps is above 0 \
                     and at most {MAX_BURSTINESS} (1 is Poisson, 2 or 3 is bursty)"
                ),
            );
            None
        }
        (RawArrival::Gamma, None) => {
            let span = l.arrival.as_ref().map_or(0..0, Spanned::span);
            c.error(
                span,
                "load.burstiness",
                "`arrival = \"gamma\"` needs `burstiness = CV` (the coefficient of variation of \
                 the gaps: 1 is Poisson, 2 or 3 is bursty)",
            );
            None
        }
        (_, Some(b)) => {
            c.error(
                b.span(),
                "load.burstiness",
                "`burstiness` shapes gamma arrivals only; set `arrival = \"gamma\"` or remove it",
            );
            None
        }
        (RawArrival::Constant, None) => Some(Arrival::Constant),
        (RawArrival::Poisson, None) => Some(Arrival::Poisson),
    }
}

/// The one stage of a trace replay: the trace's sends, lasting until just after the last one
/// (or `duration`, which cuts the replay there).
fn trace_stage(
    c: &mut Check<'_>,
    spanned: &Spanned<RawLoad>,
    path: &Spanned<String>,
    model: RawLoadModel,
    classes: &[ClassRef<'_>],
) -> Option<Stage> {
    let l = spanned.get_ref();
    let conflict = [
        (l.stages.as_ref().map(Spanned::span), "stages"),
        (l.rate.as_ref().map(Spanned::span), "rate"),
        (l.concurrency.as_ref().map(Spanned::span), "concurrency"),
        (l.arrival.as_ref().map(Spanned::span), "arrival"),
        (l.burstiness.as_ref().map(Spanned::span), "burstiness"),
        (
            l.model
                .as_ref()
                .filter(|_| model == RawLoadModel::Closed)
                .map(Spanned::span),
            "model",
        ),
    ];
    let mut ok = true;
    for (span, key) in conflict {
        if let Some(span) = span {
            c.error(
                span,
                format!("load.{key}"),
                format!(
                    "a trace replay sends at the trace's times; `{key}` cannot be combined with \
                     `trace` (only `speed`, `duration`, `warmup` and the limits can)"
                ),
            );
            ok = false;
        }
    }
    let speed = match &l.speed {
        Some(v) => {
            let s = *v.get_ref();
            if s.is_finite() && s > 0.0 && s <= MAX_SPEED {
                Some(s)
            } else {
                c.error(
                    v.span(),
                    "load.speed",
                    format!("{s} is not allowed; use a replay speed above 0 up to {MAX_SPEED}"),
                );
                None
            }
        }
        None => Some(1.0),
    };
    let cut = l
        .duration
        .as_ref()
        .map(|d| c.positive_duration(d, "load.duration"));
    if path.get_ref().trim().is_empty() {
        c.error(
            path.span(),
            "load.trace",
            "is empty; give the path of a JSONL trace",
        );
        return None;
    }
    let (speed, cut) = (speed?, cut.map_or(Some(None), |d| d.map(Some))?);
    if !ok {
        return None;
    }
    let file = resolve(c.src.path.as_path(), path.get_ref());
    let mut lines = match trace::read(&file, speed, classes) {
        Ok(lines) => lines,
        Err(TraceReadError::Open(e)) => {
            c.error(
                path.span(),
                "load.trace",
                format!(
                    "cannot read trace {} ({e}); paths are relative to the scenario's folder",
                    file.display()
                ),
            );
            return None;
        }
        Err(TraceReadError::Lines(errors)) => {
            // Named here with the first problem, so the scenario's own error says what to fix.
            let first = errors.first().map(ToString::to_string).unwrap_or_default();
            c.error(
                path.span(),
                "load.trace",
                format!("trace is invalid: {first}"),
            );
            errors.into_iter().skip(1).for_each(|e| c.push(e));
            return None;
        }
    };
    let duration = match cut {
        Some(d) => {
            lines.retain(|line| line.at < d);
            if lines.is_empty() {
                c.error(
                    l.duration.as_ref().map_or(path.span(), Spanned::span),
                    "load.duration",
                    "ends before the trace's first send; remove it to replay the whole trace",
                );
                return None;
            }
            d
        }
        // The last send falls strictly inside the stage, on a whole second for tidy intervals.
        None => Duration::from_secs(lines.last().map_or(0, |line| line.at.as_secs()) + 1),
    };
    Some(Stage {
        duration,
        load: StageLoad::Trace(Arc::new(Trace {
            path: file,
            speed,
            span: duration,
            lines,
        })),
    })
}

/// A path written in the scenario, relative to the scenario's folder.
fn resolve(scenario: &Path, written: &str) -> PathBuf {
    let dir = scenario.parent().unwrap_or(Path::new("."));
    dir.join(written)
}

fn stages(
    c: &mut Check<'_>,
    spanned: &Spanned<RawLoad>,
    model: RawLoadModel,
) -> Option<Vec<Stage>> {
    let l = spanned.get_ref();
    let shorthand = l.duration.is_some() || l.rate.is_some() || l.concurrency.is_some();
    match &l.stages {
        Some(list) => {
            if shorthand {
                c.error(
                    list.span(),
                    "load.stages",
                    "set either `stages` or the one-stage shorthand (`duration` with `rate` or \
                     `concurrency`), not both",
                );
                return None;
            }
            if list.get_ref().is_empty() {
                c.error(
                    list.span(),
                    "load.stages",
                    format!("is empty; write {EXAMPLE}"),
                );
                return None;
            }
            if list.get_ref().len() > MAX_STAGES {
                c.error(
                    list.span(),
                    "load.stages",
                    format!("at most {MAX_STAGES} stages are supported"),
                );
                return None;
            }
            let mut out = Vec::new();
            for (i, s) in list.get_ref().iter().enumerate() {
                out.push(stage(c, s, &format!("load.stages[{i}]"), model));
            }
            out.into_iter().collect()
        }
        None => {
            let Some(duration) = &l.duration else {
                c.error(
                    spanned.span(),
                    "load",
                    format!("no load given; write {EXAMPLE}"),
                );
                return None;
            };
            let one = Spanned::new(
                spanned.span(),
                RawStage {
                    duration: duration.clone(),
                    rate: l.rate.clone(),
                    from: None,
                    to: None,
                    concurrency: l.concurrency.clone(),
                },
            );
            Some(vec![stage(c, &one, "load", model)?])
        }
    }
}

fn stage(
    c: &mut Check<'_>,
    spanned: &Spanned<RawStage>,
    key: &str,
    model: RawLoadModel,
) -> Option<Stage> {
    let s = spanned.get_ref();
    let k = |f: &str| format!("{key}.{f}");
    let duration = c.positive_duration(&s.duration, &k("duration"));
    let load = match model {
        RawLoadModel::Open => {
            if let Some(n) = &s.concurrency {
                c.error(
                    n.span(),
                    k("concurrency"),
                    "`concurrency` is for the closed model; set `model = \"closed\"` in [load], \
                     or give an arrival `rate`",
                );
                return None;
            }
            match (&s.rate, &s.from, &s.to) {
                (Some(r), None, None) => {
                    let r = rate(c, r, &k("rate"), false)?;
                    StageLoad::Rate { from: r, to: r }
                }
                (None, Some(from), Some(to)) => {
                    let (from_v, to_v) =
                        (rate(c, from, &k("from"), true), rate(c, to, &k("to"), true));
                    let (from_v, to_v) = (from_v?, to_v?);
                    if from_v == 0.0 && to_v == 0.0 {
                        c.error(
                            to.span(),
                            k("to"),
                            "a ramp from 0 to 0 sends nothing; give a rate above zero",
                        );
                        return None;
                    }
                    StageLoad::Rate {
                        from: from_v,
                        to: to_v,
                    }
                }
                (None, None, None) => {
                    c.error(
                        spanned.span(),
                        key,
                        "needs `rate = N` (hold) or `from = A, to = B` (ramp), in requests per second",
                    );
                    return None;
                }
                (Some(r), _, _) => {
                    c.error(
                        r.span(),
                        k("rate"),
                        "set either `rate` (hold) or `from` and `to` (ramp), not both",
                    );
                    return None;
                }
                (None, Some(f), None) => {
                    c.error(f.span(), k("from"), "a ramp needs both `from` and `to`");
                    return None;
                }
                (None, None, Some(t)) => {
                    c.error(t.span(), k("to"), "a ramp needs both `from` and `to`");
                    return None;
                }
            }
        }
        RawLoadModel::Closed => {
            if let Some(r) = s.rate.as_ref().or(s.from.as_ref()).or(s.to.as_ref()) {
                c.error(
                    r.span(),
                    key,
                    "arrival rates are for the open model; a closed model takes `concurrency`",
                );
                return None;
            }
            let Some(n) = &s.concurrency else {
                c.error(
                    spanned.span(),
                    key,
                    "a closed-model stage needs `concurrency = N` (virtual users)",
                );
                return None;
            };
            let n = c.whole(n, &k("concurrency"), 1..=MAX_CONCURRENCY, "concurrency")?;
            StageLoad::Concurrency(NonZeroUsize::new(usize::try_from(n).ok()?)?)
        }
    };
    Some(Stage {
        duration: duration?,
        load,
    })
}

/// Requests per second: finite, not negative, zero only at one end of a ramp, at most `MAX_RATE`.
fn rate(c: &mut Check<'_>, v: &Spanned<f64>, key: &str, zero_ok: bool) -> Option<f64> {
    let r = *v.get_ref();
    let low_ok = if zero_ok { r >= 0.0 } else { r > 0.0 };
    if r.is_finite() && low_ok && r <= MAX_RATE {
        return Some(r);
    }
    let allowed = if zero_ok { "0" } else { "above 0" };
    c.error(
        v.span(),
        key,
        format!("{r} requests/s is not allowed; use a rate {allowed} up to {MAX_RATE}"),
    );
    None
}
