//! Driving a capacity search: the ceiling probe, then probe after probe through the engine,
//! each judged, lengthened while undecided, the last pass confirmed, within a time budget.

use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::judge::{ProbeJudgement, Verdict, binding, judge};
use super::result::{
    CAPACITY_SCHEMA_VERSION, CapacityResult, Probe, Purpose, SearchResult, StopReason,
};
use super::search::{Bounds, Search, Settled, Step};
use crate::engine::{self, EngineError, Finished, Plan, RunOptions};
use crate::scenario::{Scenario, SlaKey, Stage, StageLoad};

/// Users of the closed-model ceiling probe: enough to saturate a path with hundreds of
/// slots, within the scenario's in-flight cap.
const CEILING_USERS: usize = 256;
/// Without `--max`, the search stays this far above the ceiling at most.
const ABOVE_CEILING: f64 = 1.25;
/// Without `--min`, the search starts at this share of the ceiling.
const START_SHARE: f64 = 0.1;
/// Without `--probe-duration`, a probe is the scenario's own plan, but no longer than this.
const LONGEST_DEFAULT_PROBE: Duration = Duration::from_secs(60);

/// How one search is run, every default resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub tolerance: f64,
    pub budget: Duration,
    pub probe_duration: Option<Duration>,
    /// Also search without the scenario's faults: the price of the outage in req/s.
    pub no_faults: bool,
    /// An undecided probe is rerun at twice its length at most this many times.
    pub max_lengthen: u32,
    pub at_least: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    #[error(
        "the scenario has no [sla]: capacity is the highest rate that keeps the SLA, so there \
         must be one (add e.g. `[sla] availability = \"99.9%\"`)"
    )]
    NoSla,
    #[error(
        "the scenario's load is {0}: capacity searches open-model arrival rates; give [load] a \
         `rate` or rate stages (a closed model's ceiling is what `gauntlet run` with \
         `concurrency` measures)"
    )]
    NotOpenModel(&'static str),
    #[error("--min ({min}) is above --max ({max}); the search needs min <= max")]
    MinAboveMax { min: f64, max: f64 },
    #[error("--{name} must be a rate above 0 requests per second, got {value}")]
    BadRate { name: &'static str, value: f64 },
    #[error(
        "--tolerance must be above 0% and at most 50% of the capacity, got {}%",
        .0 * 100.0
    )]
    BadTolerance(f64),
    #[error("the ceiling probe got no answer at all: {0}")]
    NoCeiling(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What the search reports as it goes and keeps of each probe.
pub trait Observer {
    /// A probe ended: keep its run (its own run folder) and say where, relative to the
    /// search's folder.
    fn probe(&mut self, probe: &Probe, run: &Finished) -> Option<String>;
    /// A search (with or without faults) is about to start.
    fn search(&mut self, faults: bool);
    /// A probe is about to start: its rate (None for the ceiling) and length.
    fn starting(&mut self, index: usize, rate: Option<f64>, length: Duration);
}

/// Refuses, before anything starts, what cannot be searched.
pub fn check(scenario: &Scenario, settings: &Settings) -> Result<(), CapacityError> {
    if scenario.sla.targets.is_empty() {
        return Err(CapacityError::NoSla);
    }
    let plan = Plan::compile(&scenario.load);
    if plan.peak_rate().is_none() {
        let kind = if plan
            .stages
            .iter()
            .any(|s| matches!(s.load, StageLoad::Trace(_)))
        {
            "a trace replay (its rate is what was recorded)"
        } else {
            "a closed model (concurrency)"
        };
        return Err(CapacityError::NotOpenModel(kind));
    }
    for (name, value) in [("min", settings.min), ("max", settings.max)] {
        if let Some(v) = value
            && !(v.is_finite() && v > 0.0)
        {
            return Err(CapacityError::BadRate { name, value: v });
        }
    }
    if let (Some(min), Some(max)) = (settings.min, settings.max)
        && min > max
    {
        return Err(CapacityError::MinAboveMax { min, max });
    }
    let (lo, hi) = crate::scenario::TOLERANCE_RANGE;
    if !(settings.tolerance > lo && settings.tolerance <= hi) {
        return Err(CapacityError::BadTolerance(settings.tolerance));
    }
    Ok(())
}

/// Runs the whole search: the ceiling, the search with the scenario's faults, and the one
/// without them when asked.
pub async fn search(
    scenario: &Scenario,
    settings: &Settings,
    base: &RunOptions,
    stop: watch::Receiver<bool>,
    observer: &mut dyn Observer,
) -> Result<CapacityResult, CapacityError> {
    check(scenario, settings)?;
    let started = Instant::now();
    let seed = base.seed.unwrap_or(scenario.seed);
    let base = RunOptions {
        seed: Some(seed),
        quiet: true,
        ..base.clone()
    };
    let probe_len = settings.probe_duration.unwrap_or_else(|| {
        Plan::compile(&scenario.load)
            .total()
            .min(LONGEST_DEFAULT_PROBE)
    });
    let mut driver = Driver {
        settings,
        base: &base,
        stop,
        observer,
        started,
        probe_len,
        index: 0,
        faults_seen: Vec::new(),
    };
    let ceiling = driver.ceiling(scenario).await;
    if driver.stopped() {
        // Stopped while measuring the ceiling: nothing was searched, and that is written down.
        return Ok(CapacityResult {
            schema_version: CAPACITY_SCHEMA_VERSION,
            scenario: scenario.name.clone(),
            seed,
            ceiling_rps: ceiling.ok(),
            searches: vec![SearchResult::interrupted_before_start()],
            at_least: settings.at_least,
            took_s: started.elapsed().as_secs_f64(),
        });
    }
    let ceiling = ceiling?;
    let bounds = Bounds {
        min: settings
            .min
            .unwrap_or_else(|| (ceiling * START_SHARE).max(1.0)),
        max: settings
            .max
            .unwrap_or(ceiling * ABOVE_CEILING)
            .max(settings.min.unwrap_or(0.0)),
        tolerance: settings.tolerance,
    };
    let mut searches = Vec::new();
    let mut plain = scenario.clone();
    plain.faults.clear();
    // Without faults, the promises about faults have nothing to be judged on.
    plain
        .sla
        .targets
        .retain(|t| !is_about_faults(t.objective.key()));
    let mut runs = vec![(true, scenario)];
    if settings.no_faults && !scenario.faults.is_empty() {
        runs.push((false, &plain));
    }
    for (faults, s) in runs {
        driver.observer.search(faults);
        let result = driver.search(s, faults, &bounds).await?;
        let stopped = matches!(result.stop, StopReason::Interrupted | StopReason::Invalid);
        searches.push(result);
        if stopped {
            break;
        }
    }
    Ok(CapacityResult {
        schema_version: CAPACITY_SCHEMA_VERSION,
        scenario: scenario.name.clone(),
        seed,
        ceiling_rps: Some(ceiling),
        searches,
        at_least: settings.at_least,
        took_s: started.elapsed().as_secs_f64(),
    })
}

/// The checks that judge what a fault did: they need a fault to measure anything.
fn is_about_faults(key: SlaKey) -> bool {
    matches!(
        key,
        SlaKey::FailoverSuccess | SlaKey::MaxFailoverTime | SlaKey::MaxRecoveryTime
    )
}

struct Driver<'a> {
    settings: &'a Settings,
    base: &'a RunOptions,
    stop: watch::Receiver<bool>,
    observer: &'a mut dyn Observer,
    started: Instant,
    probe_len: Duration,
    index: usize,
    /// The fault windows as the first probe that ran them placed them, in words.
    faults_seen: Vec<String>,
}

impl Driver<'_> {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Whether a probe of `len` still fits in the time budget.
    fn fits(&self, len: Duration) -> bool {
        self.started.elapsed() + len <= self.settings.budget
    }

    /// The whole path's ceiling: the scenario's mix from many users that each send again
    /// the moment they are answered, without faults, for a short while.
    async fn ceiling(&mut self, scenario: &Scenario) -> Result<f64, CapacityError> {
        let mut s = scenario.clone();
        s.faults.clear();
        let len = (self.probe_len / 2).clamp(Duration::from_secs(1), Duration::from_secs(10));
        let users = CEILING_USERS.min(s.load.max_in_flight.get());
        s.load.warmup = (len / 4).min(s.load.warmup.max(Duration::from_millis(500)));
        s.load.stages = vec![Stage {
            duration: len + s.load.warmup,
            load: StageLoad::Concurrency(NonZeroUsize::new(users).unwrap_or(NonZeroUsize::MIN)),
        }];
        let options = RunOptions {
            rate: None,
            duration: None,
            ..self.base.clone()
        };
        let (probe, _) = self
            .run(&s, &options, Purpose::Ceiling, None, len.as_secs_f64())
            .await?;
        if probe.requests == 0 {
            return Err(CapacityError::NoCeiling(probe.why));
        }
        // Answers of any kind: a path that sheds load under this many users answers fast
        // and fails, and the rate it turns requests around at still bounds any success rate.
        Ok(probe.requests as f64 / len.as_secs_f64())
    }

    /// Runs one probe, keeps it (the observer writes its run folder) and says whether the run
    /// was interrupted.
    async fn run(
        &mut self,
        scenario: &Scenario,
        options: &RunOptions,
        purpose: Purpose,
        offered: Option<f64>,
        duration_s: f64,
    ) -> Result<(Probe, bool), CapacityError> {
        self.observer
            .starting(self.index, offered, Duration::from_secs_f64(duration_s));
        let finished = engine::run_settled(scenario, options, self.stop.clone()).await?;
        let s = &finished.summary;
        let ProbeJudgement {
            verdict,
            checks,
            why,
        } = judge(s);
        let mut probe = Probe {
            index: self.index,
            purpose,
            offered_rps: offered,
            duration_s,
            requests: s.overall.requests,
            achieved_rps: s.overall.rps * s.overall.availability,
            availability: s.overall.availability,
            goodput: s.overall.goodput,
            p99_latency_ms: (s.overall.latency_ms.samples > 0).then_some(s.overall.latency_ms.p99),
            ttft_p99_ms: s.overall.ttft_ms.as_ref().map(|p| p.p99),
            verdict,
            why,
            checks,
            folder: None,
        };
        self.index += 1;
        probe.folder = self.observer.probe(&probe, &finished);
        if self.faults_seen.is_empty() {
            self.faults_seen = s
                .faults
                .iter()
                .map(|w| {
                    format!(
                        "{} {} {:.1}–{:.1} s",
                        w.upstream, w.kind, w.start_s, w.end_s
                    )
                })
                .collect();
        }
        Ok((probe, s.interrupted))
    }

    /// One probe at `rate`, lengthened while it cannot decide; the last run's verdict (its
    /// probe is the last in `probes`), or None when the budget or a stop ended it.
    async fn probe_at(
        &mut self,
        scenario: &Scenario,
        rate: f64,
        purpose: Purpose,
        probes: &mut Vec<Probe>,
    ) -> Result<Option<Verdict>, CapacityError> {
        let mut len = self.probe_len;
        let mut purpose = purpose;
        for attempt in 0..=self.settings.max_lengthen {
            if !self.fits(len) || self.stopped() {
                return Ok(None);
            }
            let options = RunOptions {
                rate: Some(rate),
                duration: Some(len),
                ..self.base.clone()
            };
            let (probe, interrupted) = self
                .run(scenario, &options, purpose, Some(rate), len.as_secs_f64())
                .await?;
            let verdict = probe.verdict;
            probes.push(probe);
            if interrupted {
                return Ok(None);
            }
            if verdict != Verdict::Unresolved || attempt == self.settings.max_lengthen {
                return Ok(Some(verdict));
            }
            len *= 2;
            purpose = Purpose::Lengthen;
        }
        Ok(None)
    }

    async fn search(
        &mut self,
        scenario: &Scenario,
        faults: bool,
        bounds: &Bounds,
    ) -> Result<SearchResult, CapacityError> {
        let mut search = Search::new();
        let mut probes = Vec::new();
        let mut warnings = Vec::new();
        let mut confirmed: Vec<f64> = Vec::new();
        let mut bound_by: Vec<(f64, String)> = Vec::new();
        let stop = loop {
            let (rate, purpose) = match search.next(bounds) {
                Step::Probe(r) => {
                    let purpose = if search.lowest_not_passed().is_none() {
                        Purpose::Bracket
                    } else {
                        Purpose::Bisect
                    };
                    (r, purpose)
                }
                Step::Done(Settled::BelowMin) => break StopReason::BelowMin,
                Step::Done(settled) => {
                    // Confirm the pass the answer rests on once before reporting it.
                    let Some(best) = search.highest_pass() else {
                        break StopReason::BelowMin;
                    };
                    if confirmed.contains(&best) {
                        break match settled {
                            Settled::AtMax => StopReason::ReachedMax,
                            _ => StopReason::Converged,
                        };
                    }
                    confirmed.push(best);
                    (best, Purpose::Confirm)
                }
            };
            let Some(verdict) = self.probe_at(scenario, rate, purpose, &mut probes).await? else {
                break if self.stopped() {
                    StopReason::Interrupted
                } else {
                    StopReason::Budget
                };
            };
            // probe_at returned a verdict, so it kept the probe that gave it.
            let Some(last) = probes.last() else {
                break StopReason::Interrupted;
            };
            match verdict {
                Verdict::Invalid => {
                    warnings.push(format!(
                        "the probe at {rate:.1} req/s is invalid: {}; the search stops rather \
                         than report a capacity gauntlet could not drive (use more \
                         --load-threads, raise [load] max_in_flight, or a bigger machine)",
                        last.why
                    ));
                    break StopReason::Invalid;
                }
                Verdict::Pass if purpose == Purpose::Confirm => {}
                Verdict::Pass => search.record(rate, true),
                _ if purpose == Purpose::Confirm => {
                    warnings.push(format!(
                        "{rate:.1} req/s passed, then did not when rerun to confirm it ({}): \
                         the results are not monotone at this rate (noise near the limit); \
                         the capacity is taken from the passes below it",
                        last.why
                    ));
                    search.withdraw_pass(rate);
                }
                _ => search.record(rate, false),
            }
            if verdict != Verdict::Pass {
                let why = match binding(&last.checks) {
                    Some(c) => c.describe(),
                    None => format!("unresolved ({})", last.why),
                };
                bound_by.push((rate, why));
            }
        };
        for r in search.passes_above_a_failure() {
            warnings.push(format!(
                "{r:.1} req/s passed although a lower rate did not: the results are not \
                 monotone; the capacity is the highest pass below every failure"
            ));
        }
        let (pass, fail) = (search.highest_pass(), search.lowest_not_passed());
        let binding = fail.and_then(|f| {
            bound_by
                .iter()
                .rev()
                .find(|(r, _)| *r == f)
                .map(|(_, why)| why.clone())
        });
        Ok(SearchResult {
            faults,
            fault_summary: if faults {
                self.faults_seen.clone()
            } else {
                Vec::new()
            },
            capacity_rps: if stop == StopReason::Invalid {
                None
            } else {
                pass
            },
            bracket: [pass, fail],
            binding,
            stop,
            probes,
            warnings,
        })
    }
}
