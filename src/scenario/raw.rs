//! The scenario file as written: serde structs that refuse unknown keys and keep the span of
//! every value validation looks at, and from which the JSON Schema for editors is derived.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{RawDist, RawNum};
use crate::mock::{FaultKindName, RateLimitCode};

/// A gauntlet scenario: what to start, what load to send, what to break, what to promise.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "gauntlet scenario")]
pub struct RawScenario {
    /// Short name used in report paths; defaults to the file name without `.toml`.
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    pub description: Option<String>,
    /// Seed of the request-mix and arrival RNG: same seed, same sequence. Default 1.
    pub seed: Option<u64>,
    /// A gateway running elsewhere. Omit it to test the embedded `[gateway]`.
    pub target: Option<RawTarget>,
    /// Mock providers: started from a profile file, or already running at a URL.
    #[serde(default)]
    #[schemars(with = "Vec<RawUpstream>")]
    pub upstreams: Vec<Spanned<RawUpstream>>,
    /// The embedded reference gateway's configuration (its own schema).
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub gateway: Option<Spanned<crate::gateway::RawGatewayTable>>,
    #[schemars(with = "Option<RawLoad>")]
    pub load: Option<Spanned<RawLoad>>,
    /// The request classes of the weighted mix (at least one).
    #[schemars(with = "Vec<RawRequest>")]
    pub requests: Option<Spanned<Vec<Spanned<RawRequest>>>>,
    /// Faults applied to upstreams on the run's clock.
    #[serde(default)]
    #[schemars(with = "Vec<RawScheduledFault>")]
    pub faults: Vec<Spanned<RawScheduledFault>>,
    /// Service-level objectives checked at the end of the run.
    pub sla: Option<RawSla>,
    /// What the measured token mix would cost elsewhere, for the savings table.
    pub cost: Option<RawCost>,
    /// How `gauntlet capacity` searches for the highest rate that keeps the SLA.
    pub capacity: Option<RawCapacitySearch>,
    /// What `https://` targets and upstreams are trusted by, and the client certificate.
    pub tls: Option<RawTls>,
    /// The most the run may spend at paid providers; it stops cleanly when it would pass it.
    #[schemars(with = "Option<RawBudget>")]
    pub budget: Option<Spanned<RawBudget>>,
    /// How `gauntlet probe` watches a live endpoint at a trickle: its rate, SLA window,
    /// burn-rate alerts, rolling report and daily spending caps.
    #[schemars(with = "Option<RawProbe>")]
    pub probe: Option<Spanned<RawProbe>>,
    /// What to watch inside the system under test while the run goes on.
    #[schemars(with = "Option<RawObserve>")]
    pub observe: Option<Spanned<RawObserve>>,
}

/// `[probe]`: the settings of `gauntlet probe`; every key has a default.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    /// Requests per unit of time, e.g. "1/s" (default) or "10/min"; at most 10 per second.
    #[schemars(with = "Option<String>")]
    pub rate: Option<Spanned<String>>,
    /// The sliding window the SLA is checked over, and the length of each rotated window
    /// summary, e.g. "1h" (default).
    #[schemars(with = "Option<String>")]
    pub window: Option<Spanned<String>>,
    /// How often `summary.json` and `index.html` of the current window are refreshed,
    /// e.g. "1m" (default).
    #[schemars(with = "Option<String>")]
    pub report_every: Option<Spanned<String>>,
    /// Closed windows whose `summary.json` is kept (older ones are deleted), default 24.
    #[schemars(with = "Option<u64>")]
    pub keep: Option<Spanned<i64>>,
    /// US dollars the probe may spend in any 24 hours, e.g. "$2" or 2.0: it stops (exit 4)
    /// before a request would pass it.
    #[schemars(with = "Option<serde_json::Value>")]
    pub max_cost_per_day: Option<Spanned<toml::Value>>,
    /// Prompt plus completion tokens the probe may use in any 24 hours (exit 4 when reached).
    #[schemars(with = "Option<u64>")]
    pub max_tokens_per_day: Option<Spanned<i64>>,
    /// Multiwindow burn-rate alerts on the availability and latency error budgets; default
    /// the SRE workbook's `page` (1h and 5m at 14.4x) and `ticket` (6h and 30m at 6x).
    #[schemars(with = "Option<Vec<RawBurnAlert>>")]
    pub alerts: Option<Spanned<Vec<Spanned<RawBurnAlert>>>>,
}

/// One burn-rate alert: it fires while the error budget burns faster than `burn_rate` times
/// the sustainable pace over both windows, and clears when either slows below it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBurnAlert {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The long window, e.g. "1h": the burn has lasted.
    #[schemars(with = "String")]
    pub long_window: Spanned<String>,
    /// The short window, e.g. "5m": the burn is still going on (so the alert clears soon
    /// after it stops).
    #[schemars(with = "String")]
    pub short_window: Spanned<String>,
    /// How many times faster than the budget allows, e.g. 14.4.
    #[schemars(with = "f64")]
    pub burn_rate: Spanned<f64>,
}

/// `[observe]`: the gateway's own metrics and a local process, read every interval.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawObserve {
    /// Prometheus text scraped every interval, e.g. "http://127.0.0.1:4000/metrics"; the
    /// embedded gateway's own `/metrics` when left out.
    #[schemars(with = "Option<String>")]
    pub metrics_url: Option<Spanned<String>>,
    /// Metric names kept from each scrape, e.g. ["litellm_requests"] (a counter's `_total`
    /// and a histogram's `_sum` and `_count` come with its name). Default: every series but
    /// histogram buckets and quantiles, up to 300.
    #[schemars(with = "Option<Vec<String>>")]
    pub metrics: Option<Vec<Spanned<String>>>,
    /// A local process to watch (CPU, RSS, descriptors, threads from /proc), by process id.
    #[schemars(with = "Option<u32>")]
    pub pid: Option<Spanned<i64>>,
    /// A local process to watch, by name (its /proc comm or its command line's program).
    #[schemars(with = "Option<String>")]
    pub process: Option<Spanned<String>>,
}

/// `[budget]`: a cost and/or token cap for runs that reach paid providers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    /// US dollars, e.g. "$5" or 5.0, estimated from counted tokens and prices.
    #[schemars(with = "Option<serde_json::Value>")]
    pub max_cost: Option<Spanned<toml::Value>>,
    /// Prompt plus completion tokens the upstreams count.
    #[schemars(with = "Option<u64>")]
    pub max_tokens: Option<Spanned<i64>>,
}

/// `[tls]`: files are relative to the scenario's folder, PEM encoded.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// A private CA to trust on top of the system's roots.
    #[schemars(with = "Option<String>")]
    pub ca_cert: Option<Spanned<String>>,
    /// A client certificate for servers that ask for one (mTLS), with `client_key`.
    #[schemars(with = "Option<String>")]
    pub client_cert: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub client_key: Option<Spanned<String>>,
}

/// `[capacity]`: the settings of `gauntlet capacity`, and the headroom CI holds it to.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCapacitySearch {
    /// The rate (requests/s) the search starts from.
    #[schemars(with = "Option<f64>")]
    pub min: Option<Spanned<f64>>,
    /// The highest rate the search may probe.
    #[schemars(with = "Option<f64>")]
    pub max: Option<Spanned<f64>>,
    /// Stop when the bracket is this share of the highest passing rate, e.g. "5%".
    #[schemars(with = "Option<RawNum>")]
    pub tolerance: Option<Spanned<RawNum>>,
    /// Wall-clock time the whole search may take, e.g. "30m".
    #[schemars(with = "Option<String>")]
    pub budget: Option<Spanned<String>>,
    /// Length of one probe (the scenario's plan scaled to it), e.g. "20s".
    #[schemars(with = "Option<String>")]
    pub probe_duration: Option<Spanned<String>>,
    /// The capacity CI demands (requests/s): below it, `gauntlet capacity` exits 1.
    #[schemars(with = "Option<f64>")]
    pub at_least: Option<Spanned<f64>>,
}

impl RawScenario {
    /// The `[[requests]]` classes as written, in file order (none when the key is missing).
    pub fn classes(&self) -> impl Iterator<Item = &Spanned<RawRequest>> {
        self.requests.iter().flat_map(|r| r.get_ref())
    }
}

/// `[cost]`: prices to hold the measured token mix against.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCost {
    /// Alternatives, e.g. `{ name = "gpt-4o direct", input_price_per_m = 2.5,
    /// output_price_per_m = 10 }`: the same tokens priced at each, and what the mix saves.
    #[serde(default)]
    #[schemars(with = "Vec<RawAlternative>")]
    pub compare_to: Vec<Spanned<RawAlternative>>,
}

/// One alternative: US dollars per million input and output tokens.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAlternative {
    pub name: String,
    pub input_price_per_m: f64,
    pub output_price_per_m: f64,
    /// Per million prompt tokens served from its prefix cache; left out, they cost as input.
    pub cached_input_price_per_m: Option<f64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Base URL of the gateway under test, e.g. "http://127.0.0.1:4000".
    #[schemars(with = "String")]
    pub url: Spanned<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Profile file of a mock gauntlet starts, relative to this scenario's folder.
    #[schemars(with = "Option<String>")]
    pub profile: Option<Spanned<String>>,
    /// Base URL of a mock already running (faults go through its control API).
    #[schemars(with = "Option<String>")]
    pub url: Option<Spanned<String>>,
    /// Control-API token of a running mock: a literal or "env:NAME".
    #[schemars(with = "Option<String>")]
    pub admin_token: Option<Spanned<String>>,
    /// A real provider's base URL: gauntlet starts a fault proxy in front of it, and faults
    /// are played there (requests reach the provider and are billed).
    #[schemars(with = "Option<String>")]
    pub proxy_to: Option<Spanned<String>>,
    /// The key the proxy sends to `proxy_to`: a literal or "env:NAME".
    #[schemars(with = "Option<String>")]
    pub api_key: Option<Spanned<String>>,
    /// A proxied provider's prices, US dollars per 1M tokens (for cost and `[budget]`).
    #[schemars(with = "Option<f64>")]
    pub input_price_per_m: Option<Spanned<f64>>,
    #[schemars(with = "Option<f64>")]
    pub output_price_per_m: Option<Spanned<f64>>,
    /// The API the embedded gateway speaks to this provider: `chat` (default) or `messages`
    /// (an Anthropic-format provider; the gateway translates its clients' chat requests).
    #[schemars(with = "Option<String>")]
    pub api: Option<Spanned<String>>,
}

/// Open (arrival rate) or closed (fixed concurrency) load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawLoadModel {
    Open,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawArrival {
    Constant,
    Poisson,
    Gamma,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLoad {
    /// "open" (default): arrivals per second; "closed": fixed concurrency.
    #[schemars(with = "Option<RawLoadModel>")]
    pub model: Option<Spanned<RawLoadModel>>,
    /// "poisson" (default), "constant" or "gamma" (bursty, see `burstiness`) spacing of
    /// open-model arrivals.
    #[schemars(with = "Option<RawArrival>")]
    pub arrival: Option<Spanned<RawArrival>>,
    /// With `arrival = "gamma"`: coefficient of variation of the gaps between sends; 1 is
    /// Poisson, 2 or 3 is bursty.
    #[schemars(with = "Option<f64>")]
    pub burstiness: Option<Spanned<f64>>,
    /// A recorded trace to replay (JSONL: `t` or `timestamp` in seconds, `class` or `model`,
    /// optional `prompt_tokens` and `output_tokens`), relative to this scenario's folder.
    #[schemars(with = "Option<String>")]
    pub trace: Option<Spanned<String>>,
    /// Replay speed of the trace: 2 sends it in half its recorded time. Default 1.
    #[schemars(with = "Option<f64>")]
    pub speed: Option<Spanned<f64>>,
    /// First part of the timeline: run, but excluded from statistics. Default "0s".
    #[schemars(with = "Option<String>")]
    pub warmup: Option<Spanned<String>>,
    /// The load over time; or use the one-stage shorthand `duration` + `rate`/`concurrency`.
    #[schemars(with = "Option<Vec<RawStage>>")]
    pub stages: Option<Spanned<Vec<Spanned<RawStage>>>>,
    #[schemars(with = "Option<String>")]
    pub duration: Option<Spanned<String>>,
    #[schemars(with = "Option<f64>")]
    pub rate: Option<Spanned<f64>>,
    #[schemars(with = "Option<u32>")]
    pub concurrency: Option<Spanned<f64>>,
    /// Open model: requests beyond this many in flight are dropped. Default 1000.
    #[schemars(with = "Option<u32>")]
    pub max_in_flight: Option<Spanned<f64>>,
    /// Per-request deadline. Default "30s".
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Spanned<String>>,
    /// Width of the per-interval series. Default "1s".
    #[schemars(with = "Option<String>")]
    pub interval: Option<Spanned<String>>,
    /// "direct": interleave a share of requests sent straight to each class's primary
    /// upstream, to measure the latency the gateway adds.
    #[schemars(with = "Option<RawBaseline>")]
    pub baseline: Option<Spanned<RawBaseline>>,
    /// Share of the requests `baseline` sends direct, e.g. "10%" (the default) or 0.1.
    #[schemars(with = "Option<RawNum>")]
    pub baseline_share: Option<Spanned<RawNum>>,
}

/// What the gateway's latency is compared against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawBaseline {
    /// Straight to the class's primary upstream, no gateway in between.
    Direct,
}

/// `{ duration, rate }` holds, `{ duration, from, to }` ramps, `{ duration, concurrency }` is closed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    #[schemars(with = "String")]
    pub duration: Spanned<String>,
    #[schemars(with = "Option<f64>")]
    pub rate: Option<Spanned<f64>>,
    #[schemars(with = "Option<f64>")]
    pub from: Option<Spanned<f64>>,
    #[schemars(with = "Option<f64>")]
    pub to: Option<Spanned<f64>>,
    #[schemars(with = "Option<u32>")]
    pub concurrency: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Share of the mix, a whole number > 0 (80/15/5). Default 1.
    #[schemars(with = "Option<u32>")]
    pub weight: Option<Spanned<f64>>,
    #[schemars(with = "String")]
    pub model: Spanned<String>,
    /// The chat messages; or use `prompt` for one user message.
    #[schemars(with = "Option<Vec<RawMessage>>")]
    pub messages: Option<Spanned<Vec<Spanned<RawMessage>>>>,
    #[schemars(with = "Option<String>")]
    pub prompt: Option<Spanned<String>>,
    /// The answer's token budget: a whole number, or a distribution drawn per request.
    #[schemars(with = "Option<RawDist>")]
    pub max_tokens: Option<Spanned<RawDist>>,
    /// Draw requests from this file (relative to the scenario's folder) instead of `prompt`.
    #[schemars(with = "Option<String>")]
    pub dataset: Option<Spanned<String>>,
    /// `jsonl` (OpenAI chat requests), `sharegpt` or `text` (one prompt a line); default from
    /// the extension (.jsonl, .json, anything else is text).
    #[schemars(with = "Option<String>")]
    pub dataset_format: Option<Spanned<String>>,
    /// `random` (seeded, default) or `sequential` draws from the dataset.
    #[schemars(with = "Option<String>")]
    pub order: Option<Spanned<String>>,
    /// Synthetic prompts of this many tokens (a number or a distribution), generated seeded.
    #[schemars(with = "Option<RawDist>")]
    pub prompt_tokens: Option<Spanned<RawDist>>,
    /// Vocabulary prompt tokens are counted with: `o200k_base` (default) or `cl100k_base`.
    #[schemars(with = "Option<String>")]
    pub tokenizer: Option<Spanned<String>>,
    /// OpenAI `tools`: `[{ type = "function", function = { name = "...", parameters = {...} } }]`.
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    pub tools: Option<Spanned<Vec<toml::Value>>>,
    /// OpenAI `tool_choice`: "auto", "none", "required" or a table naming a function.
    #[schemars(with = "Option<serde_json::Value>")]
    pub tool_choice: Option<Spanned<toml::Value>>,
    /// OpenAI `response_format`, e.g. `{ type = "json_object" }`.
    #[schemars(with = "Option<serde_json::Value>")]
    pub response_format: Option<Spanned<toml::Value>>,
    /// Free-form fields merged into every request body (where the request does not set them).
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub extra_body: Option<Spanned<toml::Table>>,
    /// Make the class a conversation of several turns.
    #[schemars(with = "Option<RawSession>")]
    pub session: Option<Spanned<RawSession>>,
    /// Ask for a server-sent-event stream. Default false.
    pub stream: Option<bool>,
    /// The API to send the class in: `chat` (OpenAI chat completions, default), `messages`
    /// (Anthropic Messages: `/v1/messages`, `x-api-key`, needs `max_tokens`), `responses`
    /// (OpenAI Responses: `/v1/responses`) or `embeddings` (`/v1/embeddings`: one input per
    /// message, never streamed).
    #[schemars(with = "Option<String>")]
    pub api: Option<Spanned<String>>,
    /// Bearer key sent to the gateway: a literal or "env:NAME".
    #[schemars(with = "Option<String>")]
    pub api_key: Option<Spanned<String>>,
    /// Extra request headers.
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub headers: Option<Spanned<BTreeMap<String, String>>>,
    /// The upstream expected to serve this class when nothing is broken.
    #[schemars(with = "Option<String>")]
    pub primary: Option<Spanned<String>>,
    /// The gateway tier of `api_key`, for `[sla.tiers]`; read from the embedded gateway's
    /// keys when there is one.
    #[schemars(with = "Option<String>")]
    pub tier: Option<Spanned<String>>,
    /// The class's weight in each `[load] stages` entry, in order, instead of `weight`
    /// (0: not sent in that stage).
    #[schemars(with = "Option<Vec<u32>>")]
    pub stage_weights: Option<Spanned<Vec<Spanned<i64>>>>,
}

/// `[requests.session]`: each turn resends the whole history plus the previous answers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    /// Turns per session: a whole number or a distribution.
    #[schemars(with = "RawDist")]
    pub turns: Spanned<RawDist>,
    /// Pause between an answer and the next turn: a duration or a distribution. Default "0s".
    #[schemars(with = "Option<RawDist>")]
    pub think_time: Option<Spanned<RawDist>>,
    /// Header carrying the session id (also sent as `user`), e.g. "x-session-id".
    #[schemars(with = "Option<String>")]
    pub id_header: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMessage {
    /// system, developer, user, assistant or tool.
    #[schemars(with = "String")]
    pub role: Spanned<String>,
    pub content: String,
}

/// A fault on one upstream at `at` for `duration`, optionally repeated `count` times `every`.
/// The remaining keys are those of a mock fault (`kind` and its parameters).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScheduledFault {
    #[schemars(with = "String")]
    pub upstream: Spanned<String>,
    #[schemars(with = "String")]
    pub at: Spanned<String>,
    #[schemars(with = "String")]
    pub duration: Spanned<String>,
    #[schemars(with = "Option<String>")]
    pub every: Option<Spanned<String>>,
    #[schemars(with = "Option<u32>")]
    pub count: Option<Spanned<i64>>,
    #[schemars(with = "Option<FaultKindName>")]
    pub kind: Option<Spanned<FaultKindName>>,
    /// Probability that a matching request is hit, in (0, 1]; default 1.
    #[schemars(with = "Option<f64>")]
    pub rate: Option<Spanned<f64>>,
    /// Only requests for this model are hit.
    pub model: Option<String>,
    /// `error`: the HTTP status (400..=599), default 500.
    #[schemars(with = "Option<u16>")]
    pub status: Option<Spanned<u16>>,
    /// `error`: the message in the error body.
    pub message: Option<String>,
    /// `rate_limit`: `rate_limit_exceeded` (default) or `insufficient_quota`.
    pub code: Option<RateLimitCode>,
    /// `rate_limit`: the Retry-After to announce, default "1s".
    #[schemars(with = "Option<String>")]
    pub retry_after: Option<Spanned<String>>,
    /// `latency`: the added delay, a duration or a distribution.
    #[schemars(with = "Option<RawDist>")]
    pub delay: Option<Spanned<RawDist>>,
    /// `hang`: how long to hold the connection before closing it, default "30s".
    #[schemars(with = "Option<String>")]
    pub hang_for: Option<Spanned<String>>,
    /// `stream_cut`: content chunks sent before the cut, default 3.
    #[schemars(with = "Option<u32>")]
    pub after_chunks: Option<Spanned<u32>>,
    /// `slow_stream`: the reduced token rate.
    #[schemars(with = "Option<f64>")]
    pub tokens_per_second: Option<Spanned<f64>>,
}

/// Objectives for the whole run, plus per-class tables `[sla.classes.NAME]` with the same keys.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSla {
    #[schemars(with = "Option<String>")]
    pub p99_latency: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub ttft_p99: Option<Spanned<String>>,
    /// Time to first output token (after any reasoning), p99.
    #[schemars(with = "Option<String>")]
    pub ttfot_p99: Option<Spanned<String>>,
    /// Time per output token after the first, p99.
    #[schemars(with = "Option<String>")]
    pub tpot_p99: Option<Spanned<String>>,
    #[schemars(with = "Option<RawNum>")]
    pub availability: Option<Spanned<RawNum>>,
    #[schemars(with = "Option<RawNum>")]
    pub uptime: Option<Spanned<RawNum>>,
    #[schemars(with = "Option<RawNum>")]
    pub failover_success: Option<Spanned<RawNum>>,
    #[schemars(with = "Option<String>")]
    pub max_failover_time: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub max_recovery_time: Option<Spanned<String>>,
    #[schemars(with = "Option<f64>")]
    pub max_retry_amplification: Option<Spanned<f64>>,
    /// US dollars per million requests.
    #[schemars(with = "Option<f64>")]
    pub max_cost_per_million: Option<Spanned<f64>>,
    /// Latency the gateway adds at p99 (`[load] baseline = "direct"`), at most this.
    #[schemars(with = "Option<String>")]
    pub max_overhead_p99: Option<Spanned<String>>,
    /// Share of requests that succeeded and met every `[sla.per_request]` objective.
    #[schemars(with = "Option<RawNum>")]
    pub goodput: Option<Spanned<RawNum>>,
    /// Requests per second that succeeded and met every `[sla.per_request]` objective.
    #[schemars(with = "Option<f64>")]
    pub min_goodput_rps: Option<Spanned<f64>>,
    /// What each request must meet to count as good (for `goodput`).
    #[schemars(with = "Option<RawPerRequest>")]
    pub per_request: Option<Spanned<RawPerRequest>>,
    /// Objectives of one request class, keyed by its name.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RawSlaClass>")]
    pub classes: BTreeMap<Spanned<String>, RawSlaClass>,
    /// Objectives of every class of one gateway tier together, keyed by the tier's name.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RawSlaClass>")]
    pub tiers: BTreeMap<Spanned<String>, RawSlaClass>,
}

/// The objectives of one request class.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSlaClass {
    #[schemars(with = "Option<String>")]
    pub p99_latency: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub ttft_p99: Option<Spanned<String>>,
    /// Time to first output token (after any reasoning), p99.
    #[schemars(with = "Option<String>")]
    pub ttfot_p99: Option<Spanned<String>>,
    /// Time per output token after the first, p99.
    #[schemars(with = "Option<String>")]
    pub tpot_p99: Option<Spanned<String>>,
    #[schemars(with = "Option<RawNum>")]
    pub availability: Option<Spanned<RawNum>>,
    #[schemars(with = "Option<RawNum>")]
    pub uptime: Option<Spanned<RawNum>>,
    #[schemars(with = "Option<RawNum>")]
    pub failover_success: Option<Spanned<RawNum>>,
    #[schemars(with = "Option<String>")]
    pub max_failover_time: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub max_recovery_time: Option<Spanned<String>>,
    #[schemars(with = "Option<f64>")]
    pub max_retry_amplification: Option<Spanned<f64>>,
    #[schemars(with = "Option<f64>")]
    pub max_cost_per_million: Option<Spanned<f64>>,
    /// Latency the gateway adds at p99 (`[load] baseline = "direct"`), at most this.
    #[schemars(with = "Option<String>")]
    pub max_overhead_p99: Option<Spanned<String>>,
    /// Share of requests that succeeded and met every `[sla.per_request]` objective.
    #[schemars(with = "Option<RawNum>")]
    pub goodput: Option<Spanned<RawNum>>,
    /// Requests per second that succeeded and met every `[sla.per_request]` objective.
    #[schemars(with = "Option<f64>")]
    pub min_goodput_rps: Option<Spanned<f64>>,
}

/// `[sla.per_request]`: the objectives one request must meet to count toward goodput.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPerRequest {
    /// Time to first token (a request that is not streamed: its whole latency).
    #[schemars(with = "Option<String>")]
    pub ttft: Option<Spanned<String>>,
    /// Mean time per output token after the first (streams with two or more tokens).
    #[schemars(with = "Option<String>")]
    pub tpot: Option<Spanned<String>>,
    /// Intended send time to the last byte.
    #[schemars(with = "Option<String>")]
    pub latency: Option<Spanned<String>>,
}

impl RawSla {
    /// The overall objectives, in the shape per-class tables use.
    pub fn overall(&self) -> RawSlaClass {
        RawSlaClass {
            p99_latency: self.p99_latency.clone(),
            ttft_p99: self.ttft_p99.clone(),
            ttfot_p99: self.ttfot_p99.clone(),
            tpot_p99: self.tpot_p99.clone(),
            availability: self.availability.clone(),
            uptime: self.uptime.clone(),
            failover_success: self.failover_success.clone(),
            max_failover_time: self.max_failover_time.clone(),
            max_recovery_time: self.max_recovery_time.clone(),
            max_retry_amplification: self.max_retry_amplification.clone(),
            max_cost_per_million: self.max_cost_per_million.clone(),
            max_overhead_p99: self.max_overhead_p99.clone(),
            goodput: self.goodput.clone(),
            min_goodput_rps: self.min_goodput_rps.clone(),
        }
    }
}
