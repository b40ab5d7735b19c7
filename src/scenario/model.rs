//! The validated, typed scenario the engine runs: what `scenario::load` produces.

use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::api::Api;
pub use crate::config::Secret;
use crate::gateway::EmbeddedConfig;
use crate::mock::{FaultSpec, Profile};
use crate::openai::Message;
use crate::workload::Workload;

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
    pub target: Target,
    pub upstreams: Vec<Upstream>,
    pub load: LoadPlan,
    pub requests: Vec<RequestClass>,
    pub faults: Vec<ScheduledFault>,
    pub sla: Sla,
    /// `[cost] compare_to`: what the measured token mix is held against.
    pub compare_to: Vec<Alternative>,
    /// `[capacity]`: how `gauntlet capacity` searches, and the capacity CI demands.
    pub capacity: CapacitySettings,
    /// `[tls]`: what the run's clients trust, and their certificate.
    pub tls: crate::tls::ClientSettings,
    pub budget: Option<Budget>,
    /// `[probe]`: how `gauntlet probe` watches this scenario's target (defaults when absent).
    pub probe: ProbeSettings,
    /// `[observe]`: what inside the system under test is watched.
    pub observe: Observe,
}

/// `[probe]`, validated: what `gauntlet probe` sends, how it judges and what stops it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSettings {
    /// Time between two requests (the rate's inverse).
    pub every: Duration,
    /// The rate as written ("1/s"), for messages.
    pub rate: String,
    /// The sliding SLA window, and the length of each rotated window summary.
    pub window: Duration,
    pub report_every: Duration,
    /// Closed windows whose summary is kept.
    pub keep: NonZeroUsize,
    /// US dollars in any 24 hours.
    pub max_cost_per_day: Option<f64>,
    /// Prompt plus completion tokens in any 24 hours.
    pub max_tokens_per_day: Option<u64>,
    pub alerts: Vec<BurnAlert>,
    /// Keys written literally in the file, refused by `gauntlet probe` (it reaches real
    /// endpoints, where a key belongs in the environment, not in a file): one located error
    /// each, naming the field.
    pub literal_keys: Vec<crate::config::ConfigError>,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(1),
            rate: "1/s".into(),
            window: Duration::from_secs(3600),
            report_every: Duration::from_secs(60),
            keep: NonZeroUsize::new(24).unwrap_or(NonZeroUsize::MIN),
            max_cost_per_day: None,
            max_tokens_per_day: None,
            alerts: BurnAlert::workbook(),
            literal_keys: Vec::new(),
        }
    }
}

/// A multiwindow burn-rate alert: fires while both windows burn the error budget faster than
/// `factor` times the sustainable pace.
#[derive(Debug, Clone, PartialEq)]
pub struct BurnAlert {
    pub name: String,
    pub long: Duration,
    pub short: Duration,
    pub factor: f64,
}

impl BurnAlert {
    /// The SRE workbook's pair: page at 14.4x over 1h and 5m (2% of a 30-day budget in an
    /// hour), ticket at 6x over 6h and 30m (5% in six hours).
    pub fn workbook() -> Vec<BurnAlert> {
        let min = |m: u64| Duration::from_secs(m * 60);
        vec![
            BurnAlert {
                name: "page".into(),
                long: min(60),
                short: min(5),
                factor: 14.4,
            },
            BurnAlert {
                name: "ticket".into(),
                long: min(360),
                short: min(30),
                factor: 6.0,
            },
        ]
    }
}

/// `[observe]`: the scraped `/metrics` and the local process watched during a run. The
/// embedded gateway and mocks are watched whatever it says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observe {
    /// Prometheus text scraped every interval; None scrapes the embedded gateway, if any.
    pub metrics_url: Option<String>,
    /// Metric names kept from each scrape; empty keeps the defaults.
    pub metrics: Vec<String>,
    pub process: Option<WatchedProcess>,
}

/// A process outside gauntlet, on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchedProcess {
    Pid(u32),
    /// Matched against /proc/*/comm and the program of /proc/*/cmdline when the run starts.
    Name(String),
}

/// `[capacity]` as written; every setting is optional (the command line may give it, and
/// `gauntlet capacity` has defaults for the rest).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CapacitySettings {
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// A fraction in (0, 0.5].
    pub tolerance: Option<f64>,
    pub budget: Option<Duration>,
    pub probe_duration: Option<Duration>,
    pub at_least: Option<f64>,
}

/// A price the measured tokens are compared against ("everything to one premium model").
#[derive(Debug, Clone, PartialEq)]
pub struct Alternative {
    pub name: String,
    /// US dollars per million tokens.
    pub input_price_per_m: f64,
    pub output_price_per_m: f64,
    /// Prompt tokens served from its prefix cache; None prices them as input.
    pub cached_input_price_per_m: Option<f64>,
}

/// Where the load goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The reference gateway, started in-process from the scenario's `[gateway]` table,
    /// compiled at validation and bound to the upstreams' addresses when they start.
    EmbeddedGateway(Box<EmbeddedConfig>),
    /// No gateway: each request goes straight to the upstream serving its model.
    Direct,
    /// A gateway running elsewhere (`[target] url`).
    Url(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub name: String,
    pub source: UpstreamSource,
    /// The API the embedded gateway speaks to it (it translates from the clients' chat).
    pub api: Api,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamSource {
    /// A mock gauntlet starts with this profile, read and validated with the scenario: what
    /// was validated is what runs, even if the file changes in between.
    Profile(Box<Profile>),
    /// A mock already running; faults reach it through its control API.
    Url {
        url: String,
        admin_token: Option<Secret>,
    },
    /// A real provider behind a fault proxy gauntlet starts (faults are played there).
    Proxy {
        url: String,
        api_key: Option<Secret>,
        price: Option<ProxyPrice>,
    },
}

/// A proxied provider's list prices, US dollars per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProxyPrice {
    pub input_per_m: f64,
    pub output_per_m: f64,
}

/// `[budget]`: the most a run may spend; it stops cleanly when it would pass either.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Budget {
    /// US dollars, from the tokens the upstreams count and their prices.
    pub max_cost: Option<f64>,
    /// Prompt plus completion tokens the upstreams count.
    pub max_tokens: Option<u64>,
}

/// The load, compiled: one list of stages on one clock that starts at t = 0.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    pub stages: Vec<Stage>,
    /// The first part of the timeline, run but excluded from every statistic.
    pub warmup: Duration,
    /// Open model only: a request that would exceed this many in flight is dropped.
    pub max_in_flight: NonZeroUsize,
    /// Per-request deadline; past it the request counts as `timeout`.
    pub timeout: Duration,
    /// Width of the per-interval series.
    pub interval: Duration,
    pub arrival: Arrival,
    /// `baseline = "direct"`: what share of the requests skip the gateway.
    pub baseline: Option<DirectBaseline>,
}

/// A share of the requests sent straight to each class's primary upstream, drawn with a
/// generator of its own so the mix's sequence stays what the seed makes it; their latency is
/// what the gateway's is compared against, and they count nowhere else.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DirectBaseline {
    /// In (0, 0.5].
    pub share: f64,
}

impl LoadPlan {
    pub fn total_duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// Evenly spaced sends.
    Constant,
    /// Exponential gaps, as independent users arrive.
    Poisson,
    /// Gamma-distributed gaps with this coefficient of variation (`burstiness`): 1 is Poisson,
    /// above 1 clusters sends into bursts with lulls between, below 1 evens them out.
    Gamma { cv: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub load: StageLoad,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StageLoad {
    /// Open model: arrivals per second, ramping linearly from `from` to `to` (equal to hold).
    Rate { from: f64, to: f64 },
    /// Closed model: this many virtual users, each sending as soon as its last answer arrives.
    Concurrency(NonZeroUsize),
    /// Open model: the sends of a recorded trace, at the trace's times.
    Trace(Arc<Trace>),
}

/// A recorded trace, read and validated once when the scenario loads.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub path: PathBuf,
    /// Replay speed: 2 sends the trace in half its recorded time.
    pub speed: f64,
    /// The stage length the lines' times are placed on; a plan that stretches the stage
    /// stretches the replay with it.
    pub span: Duration,
    /// In time order.
    pub lines: Vec<TraceLine>,
}

/// One recorded request: 40 bytes, so a million-line trace holds 40 MB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceLine {
    /// Since the trace's first line, already divided by the speed.
    pub at: Duration,
    /// Index of the request class it is sent as.
    pub class: u32,
    /// The recorded prompt length, for the synthetic prompt generator.
    pub prompt_tokens: Option<u32>,
    /// The recorded output length, sent as `max_tokens`.
    pub max_tokens: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RequestClass {
    pub name: String,
    pub weight: NonZeroU32,
    pub model: String,
    pub messages: Vec<Message>,
    pub max_tokens: Option<u32>,
    /// What varies between requests (datasets, synthetic prompts, sessions, extras).
    pub workload: Workload,
    pub stream: bool,
    /// The API the class is sent in; its body is built as a chat request and encoded for it.
    pub api: Api,
    pub api_key: Option<Secret>,
    pub headers: Vec<(String, String)>,
    /// The upstream this class expects to be served by when nothing is broken.
    pub primary: Option<String>,
    /// The gateway tier of its key: what the embedded gateway's keys say, or what the class
    /// declares (`tier = "pro"`) for a gateway gauntlet cannot read.
    pub tier: Option<String>,
    /// Its weight in each stage of the load, instead of `weight` (0: not sent in that stage),
    /// so one class can hold steady while another floods.
    pub stage_weights: Option<Vec<u32>>,
}

/// A fault applied to an upstream at `at` for `duration`, repeated `count` times every `every`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledFault {
    pub upstream: String,
    pub at: Duration,
    pub duration: Duration,
    pub every: Option<Duration>,
    pub count: NonZeroU32,
    pub spec: FaultSpec,
}

impl ScheduledFault {
    /// Each (start, end) window on the run's clock.
    pub fn windows(&self) -> impl Iterator<Item = (Duration, Duration)> + '_ {
        let period = self.every.unwrap_or(Duration::ZERO);
        (0..self.count.get()).map(move |i| {
            let start = self.at + period * i;
            (start, start + self.duration)
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sla {
    pub targets: Vec<SlaTarget>,
    /// What one request must meet to count as good.
    pub per_request: PerRequest,
}

/// `[sla.per_request]`: the objectives a single request is held to for goodput. A request is
/// good when it succeeded and met every objective that is set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerRequest {
    /// Time to first token; a request that is not streamed gets its first token with its last
    /// byte, so its latency is held to this.
    pub ttft: Option<Duration>,
    /// Mean time per output token after the first, where there is one (streams of two or more).
    pub tpot: Option<Duration>,
    pub latency: Option<Duration>,
}

impl PerRequest {
    /// Whether a successful request with these timings met every objective.
    pub fn met(&self, latency: Duration, ttft: Option<Duration>, tpot: Option<Duration>) -> bool {
        let first = ttft.unwrap_or(latency);
        self.ttft.is_none_or(|b| first <= b)
            && self.latency.is_none_or(|b| latency <= b)
            && self.tpot.is_none_or(|b| tpot.is_none_or(|t| t <= b))
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SlaTarget {
    pub scope: Scope,
    pub objective: Objective,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Overall,
    Class(String),
    /// Every class whose key belongs to this gateway tier, together.
    Tier(String),
}

/// Every SLA objective, declared once: its typed bound, its `[sla]` key and the unit its
/// check is measured and reported in. The check itself is `metrics::sla`'s exhaustive match on
/// `Objective`, and the report finds a target by matching on `SlaKey`, so a new objective is
/// one line here, one raw field (the schema), one parse line and one check arm, each of which
/// the compiler asks for.
macro_rules! objectives {
    ($( $(#[$doc:meta])* $variant:ident($bound:ty) = $key:literal in $unit:ident; )*) => {
        /// One promise, with its bound.
        #[derive(Debug, Clone, Copy, PartialEq)]
        pub enum Objective {
            $( $(#[$doc])* $variant($bound), )*
        }

        /// Which promise a check is about: the `[sla]` key, typed, and written as that key
        /// (so `summary.json` reads `"name": "p99_latency"`).
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        pub enum SlaKey {
            $( #[serde(rename = $key)] $variant, )*
        }

        impl SlaKey {
            /// Every key, in declaration order.
            pub const ALL: &'static [SlaKey] = &[$(Self::$variant),*];

            /// The key as written under `[sla]`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $key, )*
                }
            }

            /// The unit the check's target and measured value are in.
            pub fn unit(self) -> Unit {
                match self {
                    $( Self::$variant => Unit::$unit, )*
                }
            }

            /// The key written as `s`, if there is one.
            pub fn from_key(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|k| k.as_str() == s)
            }
        }

        impl Objective {
            /// Which key this objective was written under.
            pub fn key(&self) -> SlaKey {
                match self {
                    $( Self::$variant(_) => SlaKey::$variant, )*
                }
            }
        }
    };
}

objectives! {
    P99Latency(Duration) = "p99_latency" in Ms;
    TtftP99(Duration) = "ttft_p99" in Ms;
    /// Time to first output token: content or a tool call, after any reasoning.
    TtfotP99(Duration) = "ttfot_p99" in Ms;
    /// Time per output token after the first.
    TpotP99(Duration) = "tpot_p99" in Ms;
    /// Successes / requests, at least this fraction.
    Availability(f64) = "availability" in Ratio;
    /// Share of intervals meeting the availability target, at least this fraction.
    Uptime(f64) = "uptime" in Ratio;
    FailoverSuccess(f64) = "failover_success" in Ratio;
    MaxFailoverTime(Duration) = "max_failover_time" in S;
    MaxRecoveryTime(Duration) = "max_recovery_time" in S;
    MaxRetryAmplification(f64) = "max_retry_amplification" in X;
    /// US dollars per million requests.
    MaxCostPerMillion(f64) = "max_cost_per_million" in Usd;
    /// Latency the gateway adds at p99: its p99 minus the direct baseline's p99.
    MaxOverheadP99(Duration) = "max_overhead_p99" in Ms;
    /// Share of requests that succeeded and met every per-request objective, at least this.
    Goodput(f64) = "goodput" in Ratio;
    /// Good requests (as for `goodput`) per second, at least this many.
    MinGoodputRps(f64) = "min_goodput_rps" in Rps;
}

impl std::fmt::Display for SlaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so a width in a format string lines up the terminal's check table.
        f.pad(self.as_str())
    }
}

/// The unit of an SLA check's target and measured value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Ms,
    S,
    /// A fraction in 0..=1.
    Ratio,
    /// A multiple.
    X,
    /// US dollars.
    Usd,
    /// Requests per second.
    Rps,
}

impl Unit {
    /// The name `summary.json` and the reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ms => "ms",
            Self::S => "s",
            Self::Ratio => "ratio",
            Self::X => "x",
            Self::Usd => "usd",
            Self::Rps => "rps",
        }
    }
}
