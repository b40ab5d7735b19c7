//! `Summary`: the pivot of a run, written as `summary.json`. Everything after the run (every
//! report, `compare`) reads only this and the histogram log, so any run can be re-rendered.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scenario::SlaKey;

/// Bumped whenever a field changes meaning or disappears; readers refuse newer versions.
///
/// - 1: latency, TTFT and ITL percentiles mixed failed requests in with the answers.
/// - 2: they hold successful requests only; failures have `time_to_error_ms`, per kind.
/// - 3: TTFT counts reasoning and tool-call deltas as first tokens; new `ttfot_ms`, `tpot_ms`,
///   per-turn `turns`, `prompt_lengths` bins, cached and reasoning tokens and where prompt
///   counts came from. All new fields default, so schema 2 summaries still load.
pub const SCHEMA_VERSION: u32 = 3;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub schema_version: u32,
    pub gauntlet_version: String,
    pub scenario: String,
    #[serde(default)]
    pub description: Option<String>,
    pub seed: u64,
    /// What was tested: "embedded gateway", "direct to upstreams", or the gateway URL.
    pub target: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// The measured window (after warmup), seconds.
    pub duration_s: f64,
    /// What a request met to count as good (`[sla.per_request]`); empty when every success
    /// counts.
    #[serde(default, skip_serializing_if = "PerRequestBounds::is_empty")]
    pub per_request: PerRequestBounds,
    pub warmup_s: f64,
    pub interval_s: f64,
    /// The run was stopped early (Ctrl-C); what was measured until then is all here.
    #[serde(default)]
    pub interrupted: bool,
    pub overall: Stats,
    pub classes: Vec<ClassStats>,
    /// The classes of each gateway tier together (none when no class has a tier).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierStats>,
    /// One entry per interval of the measured window, in time order.
    pub intervals: Vec<Interval>,
    pub generator: Generator,
    #[serde(default)]
    pub faults: Vec<FaultWindow>,
    #[serde(default)]
    pub upstreams: Vec<UpstreamStats>,
    /// Attempts the upstreams received / requests the client sent (when the mocks' stats are known).
    #[serde(default)]
    pub retry_amplification: Option<f64>,
    #[serde(default)]
    pub cost: Option<Cost>,
    pub sla: SlaResult,
    pub trust: Trust,
    /// `[budget]`: what the run spent against it, and whether it stopped the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetReport>,
    /// `[load] baseline = "direct"`: the latency the gateway adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead: Option<Overhead>,
    /// Inside the system under test: its CPU, memory and own metrics during the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sut: Option<super::SutReport>,
    /// A sharded run's shards, one row each, in index order (empty for a run on one machine).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardStats>,
}

/// The latency the gateway adds, as gateways publish it for themselves: a percentile of the
/// requests sent through it minus the same percentile of those sent straight to the class's
/// primary upstream. It is a difference of percentiles, not a percentile of differences (no
/// request is sent both ways). Successes only on both sides, and intervals touched by an
/// applied fault are left out of both: there the two sides meet different upstreams.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overhead {
    /// Seconds of the measured window left out because a fault was active in them.
    pub excluded_s: f64,
    pub overall: OverheadStats,
    /// One per request class, in the scenario's order.
    pub classes: Vec<ClassOverhead>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassOverhead {
    pub name: String,
    #[serde(flatten)]
    pub stats: OverheadStats,
}

/// One scope's comparison. `samples` of each side's percentiles are its sample count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OverheadStats {
    /// Successful requests through the gateway, outside fault windows.
    pub gateway_ms: Option<Percentiles>,
    /// Successful requests sent direct, outside fault windows.
    pub direct_ms: Option<Percentiles>,
    /// Gateway p50 - direct p50, when both sides have samples.
    pub added_p50_ms: Option<f64>,
    /// Gateway p99 - direct p99, when both sides have samples.
    pub added_p99_ms: Option<f64>,
    /// Requests the baseline sent direct in the whole measured window (fault windows too),
    /// and how many succeeded and were dropped: none of them is in any other number.
    pub direct_requests: u64,
    pub direct_successes: u64,
    #[serde(default)]
    pub direct_dropped: u64,
}

/// A run's spend against its `[budget]`, from the tokens the upstreams counted (warmup
/// included: it was billed too) and their prices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetReport {
    pub max_cost_usd: Option<f64>,
    pub max_tokens: Option<u64>,
    pub spent_usd: f64,
    pub spent_tokens: u64,
    /// The run was stopped because the next moment's spend would have passed the budget.
    pub stopped: bool,
}

/// Latency-like percentiles in milliseconds, with the number of samples they rest on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub samples: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// `[sla.per_request]` as the summary keeps it, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PerRequestBounds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

impl PerRequestBounds {
    pub fn of(p: &crate::scenario::PerRequest) -> Self {
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
        Self {
            ttft_ms: ms(p.ttft),
            tpot_ms: ms(p.tpot),
            latency_ms: ms(p.latency),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests the schedule called for in the measured window, sent or dropped.
    pub requests: u64,
    pub successes: u64,
    pub dropped: u64,
    /// successes / requests; 1.0 when there were no requests.
    pub availability: f64,
    /// Requests per second over the measured window.
    pub rps: f64,
    /// Successes that met every `[sla.per_request]` objective (all successes when none is set).
    #[serde(default)]
    pub good: u64,
    /// good / requests; 1.0 when there were no requests.
    #[serde(default)]
    pub goodput: f64,
    /// Good requests per second over the measured window.
    #[serde(default)]
    pub goodput_rps: f64,
    /// Successful requests only (schema 2 on); `samples` is 0 when none succeeded.
    pub latency_ms: Percentiles,
    /// Successful streams only: first delta of any kind (content, reasoning or tool call).
    #[serde(default)]
    pub ttft_ms: Option<Percentiles>,
    /// Time to first output token (content or tool call, after any reasoning).
    #[serde(default)]
    pub ttfot_ms: Option<Percentiles>,
    /// Time per output token after the first.
    #[serde(default)]
    pub tpot_ms: Option<Percentiles>,
    /// Gaps between output deltas of successful streams.
    #[serde(default)]
    pub itl_ms: Option<Percentiles>,
    /// Error kind (`status_5xx`, `timeout`, ...) -> count.
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// Error kind -> intended send time to the failure, for failed requests (schema 2 on).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub time_to_error_ms: BTreeMap<String, Percentiles>,
    /// Upstream name -> successful responses it served.
    #[serde(default)]
    pub served_by: BTreeMap<String, u64>,
    #[serde(default)]
    pub tokens: Tokens,
    /// How many requests' prompt counts came from the response's usage, and how many from
    /// gauntlet's tokenizer.
    #[serde(default)]
    pub prompt_tokens_from: TokenSources,
    /// 429s the gateway itself answered (no upstream tag), told apart from providers' 429s.
    #[serde(default)]
    pub gateway_rate_limited: u64,
    /// Refusals the gateway marked shed by tier admission (429/503 with `x-gateway-shed`).
    #[serde(default)]
    pub shed: u64,
    /// Connections the requests opened (on their own connections; the shared HTTP/2 pool's
    /// are not seen).
    #[serde(default)]
    pub connections: Connections,
}

/// Connections opened and what they cost: a target that closes connections shows here as
/// many openings and a large handshake share.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Connections {
    pub opened: u64,
    /// TLS handshakes done in full, and resumed from an earlier session.
    pub tls_full: u64,
    pub tls_resumed: u64,
    /// Time spent opening connections (connect + TLS) / the requests' total latency.
    pub handshake_share: Option<f64>,
}

impl From<&crate::metrics::ConnectionCounts> for Connections {
    fn from(c: &crate::metrics::ConnectionCounts) -> Self {
        Self {
            opened: c.opened,
            tls_full: c.tls_full,
            tls_resumed: c.tls_resumed,
            handshake_share: c.handshake_share(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
    /// Prompt tokens served from the provider's prefix cache (part of `prompt`).
    #[serde(default)]
    pub cached: u64,
    /// Completion tokens spent reasoning (part of `completion`, billed as output).
    #[serde(default)]
    pub reasoning: u64,
}

/// Requests by where their prompt token count came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSources {
    pub usage: u64,
    pub tokenizer: u64,
}

/// One turn index of a class's conversations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnStats {
    /// 1-based; the last turn tracked also holds any later ones.
    pub turn: u16,
    pub requests: u64,
    pub successes: u64,
    /// Successful requests only.
    pub latency_ms: Percentiles,
    #[serde(default)]
    pub ttft_ms: Option<Percentiles>,
}

/// One prompt-length bin of a class: requests sent with a prompt of `min_tokens` up to (not
/// including) `max_tokens`, and the TTFT of its successful streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptBin {
    pub min_tokens: u64,
    /// None for the open-ended last bin.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    pub requests: u64,
    #[serde(default)]
    pub ttft_ms: Option<Percentiles>,
}

fn chat_api() -> String {
    "chat".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    pub name: String,
    pub weight: u32,
    pub model: String,
    pub stream: bool,
    /// The API the class spoke; summaries written before classes had one spoke chat.
    #[serde(default = "chat_api")]
    pub api: String,
    #[serde(default)]
    pub primary: Option<String>,
    #[serde(flatten)]
    pub stats: Stats,
    /// Latency at many percentiles for the "nines" chart: (percentile 0..100, ms).
    #[serde(default)]
    pub latency_spectrum: Vec<(f64, f64)>,
    /// Per conversation turn; empty when the class sent no conversations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub turns: Vec<TurnStats>,
    /// Log-spaced prompt-length bins that saw requests, shortest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_lengths: Vec<PromptBin>,
}

/// One gateway tier: its classes' recordings merged (exact: the histograms are added).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierStats {
    pub name: String,
    pub classes: Vec<String>,
    #[serde(flatten)]
    pub stats: Stats,
}

/// One interval of the time series; `t_s` is its start on the run's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub t_s: f64,
    pub overall: IntervalStats,
    /// Class name -> its numbers in this interval.
    #[serde(default)]
    pub classes: BTreeMap<String, IntervalStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalStats {
    pub requests: u64,
    pub successes: u64,
    pub dropped: u64,
    /// None when the interval had no requests (it then does not count towards uptime).
    pub availability: Option<f64>,
    /// Successful requests only; None when none succeeded in the interval.
    #[serde(default)]
    pub latency_ms: Option<Percentiles>,
    #[serde(default)]
    pub ttft_ms: Option<Percentiles>,
    #[serde(default)]
    pub ttfot_ms: Option<Percentiles>,
    #[serde(default)]
    pub tpot_ms: Option<Percentiles>,
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    /// Error kind -> time to error of the interval's failed requests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub time_to_error_ms: BTreeMap<String, Percentiles>,
    #[serde(default)]
    pub served_by: BTreeMap<String, u64>,
    #[serde(default)]
    pub connections: Connections,
}

/// Whether the load generator kept its schedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Generator {
    /// Actual send time - intended send time.
    pub schedule_lag_ms: Percentiles,
    pub dropped: u64,
    /// Requests in flight at the end that were cut off by the drain deadline.
    #[serde(default)]
    pub abandoned: u64,
}

/// One window of one scheduled fault and what it did to the traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultWindow {
    pub upstream: String,
    pub kind: String,
    /// Scheduled window on the run's clock.
    pub start_s: f64,
    pub end_s: f64,
    /// When the control API actually applied and lifted it.
    #[serde(default)]
    pub applied_at_s: Option<f64>,
    #[serde(default)]
    pub lifted_at_s: Option<f64>,
    /// Why the fault was never applied (the run stopped first, or the control API failed);
    /// its window is then not judged.
    #[serde(default)]
    pub not_applied: Option<String>,
    pub affected_classes: Vec<String>,
    pub affected_requests: u64,
    pub affected_successes: u64,
    pub failover_success: Option<f64>,
    /// Fault start -> first interval where the affected classes are back at target.
    pub time_to_failover_s: Option<f64>,
    /// Fault end -> first interval where the primary serves them again.
    pub time_to_recover_s: Option<f64>,
    /// The affected classes' successful requests during the window (failed over, or served
    /// by the primary after all).
    #[serde(default)]
    pub failed_over_latency_ms: Option<Percentiles>,
    /// Successful requests of the same classes outside any fault window.
    #[serde(default)]
    pub normal_latency_ms: Option<Percentiles>,
}

impl FaultWindow {
    /// "the outage on deepseek at 8.0 s", for notes and trust reasons.
    pub fn describe(&self) -> String {
        format!(
            "the {} on {} at {:.1} s",
            self.kind, self.upstream, self.start_s
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamStats {
    pub name: String,
    /// Requests the upstream says it received (its own stats), when known.
    #[serde(default)]
    pub received: Option<u64>,
    pub served: u64,
    pub tokens: Tokens,
    /// US dollars per million input and output tokens, when the profile says.
    #[serde(default)]
    pub price_in_per_m: Option<f64>,
    /// Per million prompt tokens served from the prefix cache, when the profile prices them.
    #[serde(default)]
    pub price_cached_in_per_m: Option<f64>,
    #[serde(default)]
    pub price_out_per_m: Option<f64>,
    #[serde(default)]
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub total_usd: f64,
    pub per_million_requests_usd: f64,
    /// Per million tokens (input + output) across the mix.
    pub blended_per_million_tokens_usd: f64,
    /// What failover added by moving traffic to pricier upstreams; negative when the
    /// fallbacks were cheaper and failover saved money.
    pub failover_extra_usd: f64,
    /// The monthly projection: tokens per month -> US dollars.
    pub monthly: Vec<MonthlyCost>,
    /// The same tokens priced at each `[cost] compare_to` alternative, and what the mix saves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<AlternativeCost>,
}

/// What the run's measured tokens would have cost at one alternative's prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlternativeCost {
    pub name: String,
    pub input_price_per_m: f64,
    pub output_price_per_m: f64,
    /// This run's tokens at these prices.
    pub total_usd: f64,
    pub per_million_requests_usd: f64,
    /// The alternative's cost minus the run's: positive when the mix is cheaper.
    pub savings_usd: f64,
    /// `savings_usd` as a share of the alternative's cost; None when that cost is zero.
    pub savings_ratio: Option<f64>,
    /// At the projected monthly volumes (the same as `Cost::monthly`, in its order).
    pub monthly: Vec<MonthlySavings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MonthlySavings {
    pub tokens_per_month: u64,
    /// The alternative's cost at this volume.
    pub usd: f64,
    pub savings_usd: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MonthlyCost {
    pub tokens_per_month: u64,
    pub usd: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlaResult {
    /// True only when every check passed: an inconclusive check is not a pass, because CI
    /// must not go green on evidence that cannot support the promise.
    pub passed: bool,
    /// `fail` if any check failed, else `inconclusive` if any was, else `pass`.
    pub verdict: CheckStatus,
    pub checks: Vec<SlaCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaCheck {
    /// The `[sla]` key, e.g. `p99_latency` (written as that string).
    pub name: SlaKey,
    /// `overall` or `class:<name>`.
    pub scope: String,
    /// Bound and measured value in `unit` (ms, s, ratio, x, usd).
    pub target: f64,
    pub measured: Option<f64>,
    pub unit: String,
    pub samples: u64,
    pub status: CheckStatus,
    /// Why a check is inconclusive, or what failed.
    #[serde(default)]
    pub note: Option<String>,
    /// For a promise about a share of samples (availability, failover success, goodput, a
    /// p99 bound): how many samples missed it. The promise holds while the share that misses
    /// is at most `allowed`, which is what lets `gauntlet capacity` put an interval on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misses: Option<Misses>,
}

/// Samples that missed a promise, out of the samples it was checked on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Misses {
    pub count: u64,
    pub of: u64,
    /// The share of samples that may miss while the promise holds (1 - target for a ratio,
    /// 0.01 for a p99 bound).
    pub allowed: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    #[default]
    Pass,
    Fail,
    Inconclusive,
}

/// One shard of a sharded run, by its own numbers: how much it sent and whether it kept up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardStats {
    pub index: u32,
    /// Requests its schedule called for in the measured window, sent or dropped.
    pub requests: u64,
    /// Requests per second over the measured window.
    pub rps: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    pub dropped: u64,
    /// Its clock against the coordinator's, and the round trip that was measured over, when
    /// a coordinator measured them.
    #[serde(default)]
    pub clock_offset_ms: Option<f64>,
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    /// What went wrong with it, if anything (behind, cut off, died).
    #[serde(default)]
    pub note: Option<String>,
}

impl ShardStats {
    /// Shard `index`'s row, from the summary of its own slice.
    pub fn of(index: u32, own: &Summary) -> Self {
        Self {
            index,
            requests: own.overall.requests,
            rps: own.overall.rps,
            lag_p99_ms: own.generator.schedule_lag_ms.p99,
            lag_max_ms: own.generator.schedule_lag_ms.max,
            dropped: own.generator.dropped,
            clock_offset_ms: None,
            rtt_ms: None,
            note: None,
        }
    }
}

/// Whether the numbers can be believed: a generator that fell behind measures itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trust {
    pub trustworthy: bool,
    pub reasons: Vec<String>,
}
