//! The probe's loop: start what the scenario asks for (as `run` does), then send one request
//! of the mix per beat until stopped or capped, judging every answer as it comes; or, with
//! `--once`, one request per class and the round's verdict.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use tokio::sync::{mpsc, watch};

use super::burn::{BurnWatch, Transition, budgets};
use super::output::ProbeDir;
use super::schedule::Pacer;
use super::spend::{CapReached, Caps, Prices, Spend};
use super::window::{Judge, SlidingWindow};
use super::writer::{ReportWriter, round_ms};
use super::{DRAIN, MAX_IN_FLIGHT, ProbeError};
use crate::engine::{
    Client, ClientOptions, DEFAULT_MAX_BODY_BYTES, EngineError, Mix, Plan, StartedFleet, mix_rng,
};
use crate::metrics::{CheckStatus, ErrorKind, Sample, Summary};
use crate::observe::{Board, LiveMetrics, ProbeGauges, RunShape};
use crate::scenario::Scenario;
use crate::tls::ClientSettings;

/// Command-line adjustments to a probe.
#[derive(Debug, Clone, Default)]
pub struct ProbeOptions {
    /// One request per class, then the verdict.
    pub once: bool,
    /// Probe this URL instead of the scenario's target.
    pub target: Option<String>,
    pub tls: ClientSettings,
    pub http2: bool,
    /// Where the live numbers and the probe's gauges are published (`--metrics-listen`).
    pub metrics: Option<Board>,
    /// No status line at each report.
    pub quiet: bool,
}

/// How a probe ended, with the summary of its last window (or of the round).
#[derive(Debug)]
pub enum ProbeEnd {
    /// `--once`: whether the round passed.
    Round { passed: bool, summary: Box<Summary> },
    /// Ctrl-C or SIGTERM.
    Stopped { summary: Box<Summary> },
    /// A daily cap was reached.
    Capped {
        cap: CapReached,
        summary: Box<Summary>,
    },
}

/// Probes `scenario`, writing into `dir`, until `stop` turns true or a cap is reached.
pub async fn run(
    scenario: &Scenario,
    options: &ProbeOptions,
    dir: &ProbeDir,
    stop: watch::Receiver<bool>,
) -> Result<ProbeEnd, ProbeError> {
    let tls = scenario.tls.clone().merged(&options.tls);
    // No preflight: an endpoint that does not answer is what a probe is there to measure.
    let fleet = StartedFleet::start(scenario, options.target.as_deref(), &tls)
        .await
        .map_err(EngineError::from)?;
    let ended = probe_fleet(scenario, options, dir, &fleet, stop).await;
    fleet.shutdown().await;
    ended
}

async fn probe_fleet(
    scenario: &Scenario,
    options: &ProbeOptions,
    dir: &ProbeDir,
    fleet: &StartedFleet,
    stop: watch::Receiver<bool>,
) -> Result<ProbeEnd, ProbeError> {
    let prices = Prices::new(
        fleet
            .upstreams
            .iter()
            .map(|n| fleet.prices.get(n).copied())
            .collect(),
    );
    if scenario.probe.max_cost_per_day.is_some() && !prices.known() {
        return Err(ProbeError::NoPrices);
    }
    let client = Client::new(
        &scenario.requests,
        &fleet.targets,
        ClientOptions {
            http2: options.http2,
            timeout: Plan::compile(&scenario.load).timeout,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            upstreams: fleet.upstreams.clone(),
            seed: scenario.seed,
            tls: fleet.tls.clone(),
            source_ips: Vec::new(),
        },
    )
    .map_err(EngineError::from)?;
    if let Some(c) = (0..client.class_count()).find(|c| client.is_session(*c)) {
        let name = scenario.requests.get(c).map(|r| r.name.clone());
        return Err(ProbeError::Session(name.unwrap_or_default()));
    }
    let judge = Judge::new(
        scenario,
        fleet.description.clone(),
        fleet.upstreams.clone(),
        fleet.prices.clone(),
        SystemTime::now(),
    );
    let client = Arc::new(client);
    if options.once {
        return once(scenario, &client, &judge, dir).await;
    }
    Prober::new(scenario, options, dir, fleet, judge, prices)
        .run(client, stop)
        .await
}

/// One request per class, all at once; the round passes when every request succeeded and no
/// SLA check failed (a round is far too small for a percentile or a ratio to pass on its own,
/// so a check left inconclusive for want of samples does not fail it).
async fn once(
    scenario: &Scenario,
    client: &Arc<Client>,
    judge: &Judge,
    dir: &ProbeDir,
) -> Result<ProbeEnd, ProbeError> {
    let t0 = Instant::now();
    let samples =
        join_all((0..scenario.requests.len()).map(|c| client.send(c, t0, Duration::ZERO))).await;
    let summary = judge.summarize(&samples, Duration::ZERO, t0.elapsed(), false);
    let passed = samples.iter().all(|s| s.result.is_ok())
        && summary
            .sla
            .checks
            .iter()
            .all(|c| c.status != CheckStatus::Fail);
    dir.current(&summary)?;
    Ok(ProbeEnd::Round {
        passed,
        summary: Box::new(summary),
    })
}

/// What a continuous probe holds while it runs.
struct Prober<'a> {
    scenario: &'a Scenario,
    dir: &'a ProbeDir,
    writer: ReportWriter,
    prices: Prices,
    window: SlidingWindow,
    burn: BurnWatch,
    spend: Spend,
    pacer: Pacer,
    gauges: Arc<ProbeGauges>,
    live: Option<Arc<LiveMetrics>>,
    in_flight: Arc<AtomicUsize>,
    t0: Instant,
    started_at: SystemTime,
    /// Warned once that the in-flight cap held a request back.
    warned_full: bool,
}

impl<'a> Prober<'a> {
    fn new(
        scenario: &'a Scenario,
        options: &ProbeOptions,
        dir: &'a ProbeDir,
        fleet: &StartedFleet,
        judge: Judge,
        prices: Prices,
    ) -> Self {
        let settings = &scenario.probe;
        let budgets = budgets(&scenario.sla);
        let gauges = Arc::new(ProbeGauges::default());
        for a in &settings.alerts {
            for b in &budgets {
                gauges.declare_alert(&a.name, b.slo.as_str(), a.factor);
            }
        }
        let in_flight = Arc::new(AtomicUsize::new(0));
        let live = options.metrics.as_ref().map(|board| {
            let shape = RunShape {
                scenario: scenario.name.clone(),
                seed: scenario.seed,
                classes: scenario.requests.iter().map(|c| c.name.clone()).collect(),
                upstreams: fleet.upstreams.clone(),
                faults: Vec::new(),
                // A probe has no planned end.
                planned: Duration::MAX,
                warmup: Duration::ZERO,
                // A probe's board is its `--metrics-listen` server's, which serves protobuf.
                native: true,
            };
            let live = Arc::new(LiveMetrics::new(shape, in_flight.clone()));
            board.publish(live.clone());
            board.publish_probe(gauges.clone());
            live
        });
        let started_at = SystemTime::now();
        Self {
            scenario,
            dir,
            writer: ReportWriter::start(judge, dir.clone(), started_at, options.quiet),
            prices,
            window: SlidingWindow::new(settings.window),
            burn: BurnWatch::new(settings.alerts.clone(), budgets),
            spend: Spend::new(Caps {
                usd: settings.max_cost_per_day,
                tokens: settings.max_tokens_per_day,
            }),
            pacer: Pacer::new(settings.every),
            gauges,
            live,
            in_flight,
            t0: Instant::now(),
            started_at,
            warned_full: false,
        }
    }

    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    async fn run(
        mut self,
        client: Arc<Client>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<ProbeEnd, ProbeError> {
        let settings = &self.scenario.probe;
        let mix = Mix::new(self.scenario.requests.iter().map(|c| c.weight));
        let mut rng = mix_rng(self.scenario.seed);
        let (tx, mut rx) = mpsc::unbounded_channel::<Sample>();
        // Alerts are judged often enough for the shortest window to matter, at most once a
        // second (each judgement walks the longest window's answers).
        let shortest = settings.alerts.iter().map(|a| a.short).min();
        let judge_every = shortest
            .map_or(Duration::from_secs(1), |s| s / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        let mut judge_at = judge_every;
        let mut report_at = settings.report_every;
        let mut window_end = settings.window;
        let mut capped: Option<CapReached> = None;
        let t0 = tokio::time::Instant::from_std(self.t0);
        while capped.is_none() {
            let wake = self
                .pacer
                .due()
                .min(judge_at)
                .min(report_at)
                .min(window_end);
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                Some(s) = rx.recv() => capped = self.answer(s),
                () = tokio::time::sleep_until(t0 + wake) => {}
            }
            let now = self.now();
            if now >= self.pacer.due() && capped.is_none() {
                self.send(&client, &mix, &mut rng, &tx, now);
            }
            if now >= judge_at {
                self.judge_alerts(now)?;
                judge_at = now + judge_every;
            }
            if now >= report_at {
                let start = now.saturating_sub(settings.window);
                self.writer.current(self.window.shared(), start, now);
                report_at = now + settings.report_every;
            }
            if now >= window_end {
                let start = window_end.saturating_sub(settings.window);
                let samples = self.window.shared();
                self.writer.rotate(samples, start, window_end);
                window_end += settings.window;
            }
            if let Some(e) = self.writer.failure() {
                return Err(e);
            }
        }
        drop(tx);
        self.drain(&mut rx).await;
        let now = self.now();
        self.judge_alerts(now)?;
        let start = now.saturating_sub(settings.window);
        let samples = self.window.shared();
        let summary = self
            .writer
            .finish(samples, start, now, capped.is_none())
            .await?;
        Ok(match capped {
            Some(cap) => ProbeEnd::Capped {
                cap,
                summary: Box::new(summary),
            },
            None => ProbeEnd::Stopped {
                summary: Box::new(summary),
            },
        })
    }

    fn send(
        &mut self,
        client: &Arc<Client>,
        mix: &Mix,
        rng: &mut rand::rngs::SmallRng,
        tx: &mpsc::UnboundedSender<Sample>,
        now: Duration,
    ) {
        let intended = self.pacer.due();
        self.pacer.sent(now);
        if self.in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            // Those in flight will time out and count against the endpoint; more would pile on.
            if !self.warned_full {
                eprintln!(
                    "probe: {MAX_IN_FLIGHT} requests are still unanswered; holding back until \
                     some are"
                );
                self.warned_full = true;
            }
            return;
        }
        self.warned_full = false;
        let class = mix.pick(rng);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let (client, tx, in_flight, t0) =
            (client.clone(), tx.clone(), self.in_flight.clone(), self.t0);
        tokio::spawn(async move {
            let s = client.send(class, t0, intended).await;
            // Sent before the count drops, so a drain that sees none in flight has them all.
            // The probe is gone only when it has stopped listening; nothing to tell then.
            let _ = tx.send(s);
            in_flight.fetch_sub(1, Ordering::Release);
        });
    }

    /// Counts an answer everywhere; says which cap the next request would pass.
    fn answer(&mut self, s: Sample) -> Option<CapReached> {
        let now = self.now();
        if let Some(live) = &self.live {
            live.record(&s);
        }
        self.burn.record(now, &s);
        let rate_limited = s.result == Err(ErrorKind::RateLimited);
        if let Some(wait) = self.pacer.answered(now, rate_limited, s.retry_after()) {
            let asked = if s.retry_after_ms.is_some() {
                "as its Retry-After asks"
            } else {
                "backing off"
            };
            eprintln!(
                "probe: the endpoint answered 429; holding off {} ({asked})",
                humantime::format_duration(round_ms(wait))
            );
        }
        self.gauges.set_backoff(self.pacer.backoff(now));
        let usd = self.prices.of(&s).unwrap_or(0.0);
        let tokens = s.prompt_tokens + s.completion_tokens;
        let capped = self.spend.add(now, usd, tokens);
        let (spent_usd, spent_tokens) = self.spend.totals();
        self.gauges
            .set_spend(self.prices.known().then_some(spent_usd), spent_tokens);
        self.window.record(s, now);
        capped
    }

    /// Waits up to `DRAIN` for the answers still in flight, and counts them.
    async fn drain(&mut self, rx: &mut mpsc::UnboundedReceiver<Sample>) {
        let deadline = tokio::time::Instant::now() + DRAIN;
        while self.in_flight.load(Ordering::Acquire) > 0 || !rx.is_empty() {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => {
                    // A cap reached by an answer that was already on its way stops nothing more.
                    let _ = self.answer(s);
                }
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// Judges the alerts and refreshes the gauges that move with time alone (a backoff runs
    /// out whether or not an answer comes).
    fn judge_alerts(&mut self, now: Duration) -> Result<(), ProbeError> {
        self.gauges.set_backoff(self.pacer.backoff(now));
        let judged = self.burn.evaluate(now);
        for t in &judged.transitions {
            eprintln!("{}", describe(t));
            self.gauges.set_firing(&t.alert, t.slo.as_str(), t.firing);
            self.dir.alert(t, self.started_at + now)?;
        }
        for (slo, window, burn) in judged.burns {
            let window = humantime::format_duration(window).to_string();
            self.gauges.set_burn(slo.as_str(), &window, burn.rate);
        }
        Ok(())
    }
}

/// An alert transition as a person reads it on stderr.
pub fn describe(t: &Transition) -> String {
    let rate = |r: f64| {
        if r.is_finite() {
            format!("{r:.1}x")
        } else {
            "infinite".to_string()
        }
    };
    let state = if t.firing { "FIRING" } else { "resolved" };
    format!(
        "alert {}/{} {state}: the {} error budget burns {} over {} and {} over {} \
         (threshold {}x)",
        t.alert,
        t.slo.as_str(),
        t.slo.as_str(),
        rate(t.long.rate),
        humantime::format_duration(t.long_window),
        rate(t.short.rate),
        humantime::format_duration(t.short_window),
        t.factor
    )
}
