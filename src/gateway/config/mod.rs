//! The gateway's configuration: raw TOML shapes (with spans) and their compilation into typed
//! settings, either from a standalone file or from a scenario's `[gateway]` table.

use crate::api::Api;
use crate::config::Secret;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use crate::config::{Check, ConfigError, ConfigErrors, Source};

mod compile;
mod raw;

use compile::{compile_table, compile_upstreams, validate_url};
use raw::RawFile;
pub use raw::RawGatewayTable;

/// Everything the gateway needs to run. Build it with [`Config::load`] (a gateway file) or
/// [`EmbeddedConfig::bind`] (a scenario's `[gateway]` table, once its upstreams listen).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub upstreams: Vec<UpstreamConfig>,
    /// API keys clients must present; none configured means the gateway is open.
    pub keys: Vec<KeyConfig>,
    pub routes: Vec<RouteConfig>,
    pub timeouts: Timeouts,
    pub retry: RetryConfig,
    pub breaker: BreakerConfig,
    /// Request bodies above this are refused with 413 before they are read in full.
    pub max_request_bytes: usize,
    /// Every tier keys may name: the built-in `standard` and `pro`, as configured, plus any
    /// other `[tiers.NAME]`.
    pub tiers: Vec<TierConfig>,
    pub admission: AdmissionConfig,
}

/// A provider the gateway forwards to.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub name: String,
    /// Base URL (`http://host:port` or `http://host:port/v1`).
    pub url: String,
    /// The key sent upstream as `Authorization: Bearer ...`.
    pub api_key: Option<Secret>,
    /// Requests this upstream may have in flight at once (its slots); `None`: the
    /// `[admission] upstream_max_concurrent` default, or unbounded.
    pub max_concurrent: Option<NonZeroU32>,
    /// The API it speaks; requests (OpenAI chat from the clients) are translated to it.
    pub api: UpstreamApi,
}

/// The API the gateway speaks to an upstream. Clients may speak more (`crate::api::Api`):
/// Responses and Messages requests are routed as the chat requests they ask for, and
/// embeddings go to the embeddings endpoint beside an OpenAI upstream's chat endpoint, so an
/// upstream itself only ever needs one of these two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamApi {
    /// OpenAI chat completions, with embeddings beside them.
    #[default]
    Chat,
    /// Anthropic's Messages API (which has no embeddings).
    Messages,
}

impl UpstreamApi {
    pub const NAMES: &'static [&'static str] = &["chat", "messages"];

    /// The upstream API called `name`, or the message saying why there is none.
    pub fn parse(name: &str) -> Result<Self, String> {
        let api = Api::from_name(name).ok_or_else(|| {
            format!(
                "`{name}` is not an API the gateway speaks to upstreams; use one of: {}",
                Self::NAMES.join(", ")
            )
        })?;
        Self::from_api(api)
    }

    /// `api` as an upstream's API, or the message saying why an upstream cannot speak it.
    pub fn from_api(api: Api) -> Result<Self, String> {
        match api {
            Api::Chat => Ok(Self::Chat),
            Api::Messages => Ok(Self::Messages),
            Api::Responses | Api::Embeddings => Err(format!(
                "`{}` is an API the gateway serves to clients, not one it speaks to an \
                 upstream (a `chat` upstream serves those requests); use one of: {}",
                api.name(),
                Self::NAMES.join(", ")
            )),
        }
    }

    /// The same API as the load client and the rest of gauntlet name it.
    pub fn api(self) -> Api {
        match self {
            Self::Chat => Api::Chat,
            Self::Messages => Api::Messages,
        }
    }
}

/// The tier a key without `tier` belongs to.
pub const DEFAULT_TIER: &str = "standard";
/// The tier with dedicated capacity out of the box.
pub const PRO_TIER: &str = "pro";

/// A named class of keys: defaults for its keys' limits, and its standing in admission.
#[derive(Debug, Clone, PartialEq)]
pub struct TierConfig {
    pub name: String,
    /// Per-key request and token limits a key of this tier gets unless it sets its own.
    pub rpm: Option<NonZeroU32>,
    pub tpm: Option<NonZeroU32>,
    /// In flight at once per key of this tier, unless the key sets its own.
    pub max_concurrent_per_key: Option<NonZeroU32>,
    /// In flight at once for all keys of the tier together.
    pub max_concurrent: Option<NonZeroU32>,
    /// Higher is admitted first; the highest priority configured owns the reserved capacity.
    pub priority: u32,
    /// Requests that may wait for a gateway slot when none is free (0: shed at once).
    pub queue: u32,
    /// The longest a queued request waits before it is shed; its wait is part of its latency.
    pub queue_timeout: Duration,
}

impl TierConfig {
    /// The built-in defaults: Standard is the free tier of 50 requests a minute per key,
    /// Pro has no per-minute cap and the higher priority. Any other tier starts unlimited at
    /// priority 0.
    pub fn builtin(name: &str) -> Self {
        let (rpm, priority) = match name {
            DEFAULT_TIER => (NonZeroU32::new(50), 0),
            PRO_TIER => (None, 10),
            _ => (None, 0),
        };
        Self {
            name: name.to_string(),
            rpm,
            tpm: None,
            max_concurrent_per_key: None,
            max_concurrent: None,
            priority,
            queue: 0,
            queue_timeout: Duration::from_millis(50),
        }
    }
}

/// Admission by priority when the gateway or an upstream is saturated.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionConfig {
    /// Off: no reservations, tier concurrency limits, queues or tier-aware 429 handling (per-key
    /// per-minute limits still apply), for comparison runs and the overhead benchmark.
    pub enabled: bool,
    /// Requests the gateway has in flight at once, all tiers together.
    pub max_in_flight: Option<NonZeroU32>,
    /// Slots of every upstream that does not set its own `max_concurrent`.
    pub upstream_max_concurrent: Option<NonZeroU32>,
    /// Share of each bounded capacity (gateway in-flight limit, an upstream's slots) that only
    /// the highest-priority tier may use.
    pub reserved: f64,
    /// When a provider answers 429, only the top tier moves on to the fallbacks; lower tiers
    /// get the 429 back (`x-gateway-shed: tier`) so the fallbacks' capacity stays free for
    /// it. On by default once an `[admission]` table is written, off without one (every tier
    /// fails over, as a gateway without tiers does).
    pub throttled_by_priority: bool,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_in_flight: None,
            upstream_max_concurrent: None,
            reserved: 0.3,
            throttled_by_priority: false,
        }
    }
}

/// A client API key with its tier and limits (`None`: unlimited), its tier's defaults
/// already applied where it set nothing of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyConfig {
    pub key: Secret,
    /// The name of one of [`Config::tiers`].
    pub tier: String,
    pub rpm: Option<NonZeroU32>,
    pub tpm: Option<NonZeroU32>,
    pub max_concurrent: Option<NonZeroU32>,
}

/// A public model name and where its requests go.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub model: String,
    /// Weighted primaries: one is picked per request.
    pub targets: Vec<Target>,
    /// Tried in order after the picked primary fails.
    pub fallbacks: Vec<Target>,
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub upstream: String,
    /// Share of the weighted pick among the route's targets (1 for fallbacks).
    pub weight: NonZeroU32,
    /// Model name sent upstream instead of the public one.
    pub model: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a TCP connection to an upstream.
    pub connect: Duration,
    /// From sending an attempt to its response head (and, for streams, its first chunk).
    pub first_byte: Duration,
    /// The whole request, all attempts and backoffs included.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            first_byte: Duration::from_secs(30),
            total: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Attempts per client request, across the whole fallback chain.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Extra attempts allowed as a share of requests over `budget_window`.
    pub budget: f64,
    pub budget_window: Duration,
    /// Extra attempts always allowed per window, so quiet routes can still retry.
    pub budget_min: u32,
    /// Upstream statuses worth another attempt; `None` means 429 and every 5xx.
    pub retry_on: Option<Vec<u16>>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            budget: 0.2,
            budget_window: Duration::from_secs(10),
            budget_min: 10,
            retry_on: None,
        }
    }
}

impl RetryConfig {
    pub fn retries_status(&self, status: u16) -> bool {
        match &self.retry_on {
            Some(list) => list.contains(&status),
            None => status == 429 || (500..600).contains(&status),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    pub enabled: bool,
    pub consecutive_failures: u32,
    pub error_rate: f64,
    pub window: Duration,
    pub min_requests: u32,
    pub cooldown: Duration,
    /// Trial requests let through at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_failures: 5,
            error_rate: 0.5,
            window: Duration::from_secs(10),
            min_requests: 20,
            cooldown: Duration::from_secs(5),
            half_open_probes: 1,
        }
    }
}

pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

impl Config {
    /// Loads a standalone gateway file (`[[upstreams]]`, `keys`, `routes`, ...).
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let src = Source::read(path)?;
        Self::from_source(&src)
    }

    /// Compiles a standalone gateway file already in memory.
    pub fn from_source(src: &Source) -> Result<Config, ConfigErrors> {
        let raw: RawFile = src.parse_toml().map_err(hint_table_order)?;
        let mut check = Check::new(src);
        let upstreams = compile_upstreams(&mut check, &raw.upstreams);
        if upstreams.is_empty() {
            check.push(ConfigError::new(
                "upstreams",
                "no upstreams: add [[upstreams]] with name and url",
            ));
        }
        let table = RawGatewayTable {
            keys: raw.keys,
            routes: raw.routes,
            timeouts: raw.timeouts,
            retry: raw.retry,
            breaker: raw.breaker,
            max_request_bytes: raw.max_request_bytes,
            tiers: raw.tiers,
            admission: raw.admission,
        };
        let names: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
        let mut config = compile_table(&mut check, &table, &names, "");
        config.upstreams = upstreams;
        check.finish(()).map(|()| config)
    }
}

/// A scenario's `[gateway]` table, compiled when the scenario is validated: everything but
/// the addresses of its upstreams, which exist only once the fleet has started them. The
/// fleet turns it into a [`Config`] with [`EmbeddedConfig::bind`]; nothing is parsed again.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedConfig {
    /// The settings, with no upstreams yet.
    settings: Config,
    /// The scenario's upstream names, in its order; the routes refer to these.
    upstreams: Vec<String>,
}

/// Why an embedded gateway could not be given its upstreams' addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error("upstream `{0}` has no address")]
    Missing(String),
    #[error("upstream `{name}`: {reason}")]
    BadUrl { name: String, reason: String },
    #[error("upstream `{name}`: {reason}")]
    BadApi { name: String, reason: String },
}

impl EmbeddedConfig {
    /// Compiles the `[gateway]` table of a scenario whose upstreams are `upstreams`, into the
    /// scenario's own check: errors carry its line:col and keys prefixed `gateway.`.
    pub fn compile(check: &mut Check<'_>, table: &RawGatewayTable, upstreams: &[&str]) -> Self {
        Self {
            settings: compile_table(check, table, upstreams, "gateway."),
            upstreams: upstreams.iter().map(|n| n.to_string()).collect(),
        }
    }

    /// The upstream names the routes may use, in the scenario's order.
    pub fn upstreams(&self) -> &[String] {
        &self.upstreams
    }

    pub fn routes(&self) -> &[RouteConfig] {
        &self.settings.routes
    }

    pub fn keys(&self) -> &[KeyConfig] {
        &self.settings.keys
    }

    /// The tier of the key `key`, if the gateway knows that key.
    pub fn tier_of(&self, key: &str) -> Option<&str> {
        self.settings
            .keys
            .iter()
            .find(|k| k.key.expose() == key)
            .map(|k| k.tier.as_str())
    }

    /// The gateway's config with each upstream at its base URL; `address` gives the URL of
    /// an upstream by name (the fleet knows them once everything listens).
    /// `address` gives each upstream's URL and the API it speaks.
    pub fn bind<'a>(
        &self,
        address: impl Fn(&str) -> Option<(&'a str, Api)>,
    ) -> Result<Config, BindError> {
        let mut upstreams = Vec::with_capacity(self.upstreams.len());
        for name in &self.upstreams {
            let (url, api) = address(name).ok_or_else(|| BindError::Missing(name.clone()))?;
            validate_url(url).map_err(|reason| BindError::BadUrl {
                name: name.clone(),
                reason,
            })?;
            let api = UpstreamApi::from_api(api).map_err(|reason| BindError::BadApi {
                name: name.clone(),
                reason,
            })?;
            upstreams.push(UpstreamConfig {
                name: name.clone(),
                url: url.to_string(),
                api_key: None,
                max_concurrent: None,
                api,
            });
        }
        Ok(Config {
            upstreams,
            ..self.settings.clone()
        })
    }
}

/// TOML puts every key after `[[upstreams]]` into that table; say so when it bites.
fn hint_table_order(mut e: ConfigError) -> ConfigError {
    let misplaced = ["keys", "routes", "max_request_bytes"]
        .iter()
        .any(|k| e.message.starts_with(&format!("unknown field `{k}`")));
    if misplaced && e.message.contains("`url`") {
        e.message.push_str(
            "; top-level keys such as `keys` and `routes` must come before the first \
             [[upstreams]] table",
        );
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::from_source(&Source::new("gw.toml", text))
    }

    const BASE: &str = r#"
[[upstreams]]
name = "a"
url = "http://127.0.0.1:9001"
[[upstreams]]
name = "b"
url = "http://127.0.0.1:9002/v1"
"#;

    #[test]
    fn full_file_compiles_with_defaults() {
        let c = parse(&format!(
            "keys = [{{ key = \"gk-1\", tier = \"pro\", rpm = 10 }}]\n\
             routes = [{{ model = \"m\", targets = [{{ upstream = \"a\", weight = 80 }}, \"b\"], fallbacks = [\"b\"], upstream_model = \"up\" }}]\n\
             {BASE}[retry]\nbudget = \"10%\"\nretry_on = [503]\n"
        ))
        .unwrap();
        assert_eq!(c.routes[0].targets[0].weight.get(), 80);
        assert_eq!(c.routes[0].targets[1].weight.get(), 1);
        assert_eq!(c.routes[0].fallbacks[0].model.as_deref(), Some("up"));
        assert_eq!(c.keys[0].tier, "pro");
        assert!((c.retry.budget - 0.1).abs() < 1e-9);
        assert!(c.retry.retries_status(503) && !c.retry.retries_status(500));
        assert_eq!(c.breaker, BreakerConfig::default());
        assert!(!format!("{:?}", c.keys[0]).contains("gk-1"));
    }

    #[test]
    fn tiers_default_and_keys_override_them() {
        let c = parse(&format!(
            "keys = [{{ key = \"gk-a\" }}, {{ key = \"gk-b\", tier = \"pro\" }}, \
             {{ key = \"gk-c\", tier = \"team\", rpm = 7 }}]\n\
             routes = [{{ model = \"m\", targets = [\"a\"] }}]\n\
             [tiers.team]\nrpm = 600\nmax_concurrent_per_key = 3\npriority = 5\n\
             [tiers.pro]\nmax_concurrent = 40\n\
             [admission]\nmax_in_flight = 100\nreserved = \"25%\"\n{BASE}"
        ))
        .unwrap();
        let rpm = |i: usize| c.keys[i].rpm.map(NonZeroU32::get);
        assert_eq!((c.keys[0].tier.as_str(), rpm(0)), ("standard", Some(50)));
        assert_eq!((c.keys[1].tier.as_str(), rpm(1)), ("pro", None));
        assert_eq!((c.keys[2].tier.as_str(), rpm(2)), ("team", Some(7)));
        assert_eq!(c.keys[2].max_concurrent.map(NonZeroU32::get), Some(3));
        let pro = c.tiers.iter().find(|t| t.name == "pro").unwrap();
        assert_eq!(
            (pro.priority, pro.max_concurrent.map(NonZeroU32::get)),
            (10, Some(40))
        );
        assert!((c.admission.reserved - 0.25).abs() < 1e-9);
        assert!(
            c.admission.throttled_by_priority,
            "on once [admission] is written"
        );
        assert!(
            !parse(&format!(
                "routes = [{{ model = \"m\", targets = [\"a\"] }}]\n{BASE}"
            ))
            .unwrap()
            .admission
            .throttled_by_priority
        );
    }

    #[test]
    fn tier_mistakes_are_located() {
        let e = parse(&format!(
            "keys = [{{ key = \"gk-a\", tier = \"prp\" }}]\n\
             routes = [{{ model = \"m\", targets = [\"a\"] }}]\n\
             [tiers.standard]\nqueue = 100000\n[admission]\nreserved = \"100%\"\nupstream_429 = \"some\"\n{BASE}"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("gw.toml:1:") && e.contains("`keys[0].tier`"),
            "{e}"
        );
        assert!(e.contains("did you mean `pro`"), "{e}");
        assert!(e.contains("`tiers.standard.queue`"), "{e}");
        assert!(e.contains("`admission.reserved`"), "{e}");
        assert!(e.contains("`admission.upstream_429`"), "{e}");
    }

    #[test]
    fn unknown_upstream_names_the_place() {
        let e = parse(&format!(
            "routes = [\n  {{ model = \"m\", targets = [\"a\"], fallbacks = [\"bb\"] }},\n]\n{BASE}"
        ))
        .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("gw.toml:2:"), "{s}");
        assert!(s.contains("`routes[0].fallbacks[0]`"), "{s}");
        assert!(s.contains("did you mean `b`"), "{s}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_located() {
        let e = parse(&format!(
            "routes = [{{ model = \"m\", targets = [\"a\"] }}]\n{BASE}[retry]\nmax_attempts = 3\nbackof_base = \"1s\"\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("did you mean `backoff_base`"), "{e}");
        let e = parse(&format!(
            "routes = [{{ model = \"m\", targets = [\"a\"] }}]\n{BASE}[breaker]\ncooldown = \"soon\"\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("`breaker.cooldown`"), "{e}");
    }

    #[test]
    fn keys_after_upstreams_get_a_hint() {
        let e = parse(&format!("{BASE}routes = []\n")).unwrap_err();
        assert!(
            e.to_string()
                .contains("must come before the first [[upstreams]]"),
            "{e}"
        );
    }

    /// A scenario's view of its file: only the `[gateway]` table matters here.
    #[derive(Deserialize)]
    struct Scenario {
        gateway: RawGatewayTable,
    }

    fn embedded(name: &str, text: &str) -> Result<EmbeddedConfig, ConfigErrors> {
        let src = Source::new(name, text);
        let raw: Scenario = toml::from_str(text).unwrap();
        let mut check = Check::new(&src);
        let config = EmbeddedConfig::compile(&mut check, &raw.gateway, &["a", "b"]);
        check.finish(config)
    }

    #[test]
    fn embedded_table_keeps_file_positions_and_prefix() {
        let text = "name = \"s\"\n[gateway]\nroutes = [{ model = \"m\", targets = [\"x\"] }]\n";
        let s = embedded("scenario.toml", text).unwrap_err().to_string();
        assert!(s.contains("scenario.toml:3:"), "{s}");
        assert!(s.contains("`gateway.routes[0].targets[0]`"), "{s}");
        assert!(s.contains("unknown upstream `x`; defined: a, b"), "{s}");
    }

    #[test]
    fn embedded_config_is_bound_to_the_addresses_given_at_start() {
        let text =
            "[gateway]\nroutes = [{ model = \"m\", targets = [\"a\"], fallbacks = [\"b\"] }]\n";
        let e = embedded("s.toml", text).unwrap();
        assert_eq!(e.upstreams(), ["a", "b"]);
        assert_eq!(e.routes()[0].fallbacks[0].upstream, "b");
        let c = e
            .bind(|n| match n {
                "a" => Some(("http://127.0.0.1:9001", Api::Chat)),
                "b" => Some(("http://127.0.0.1:9002/v1", Api::Messages)),
                _ => None,
            })
            .unwrap();
        let urls: Vec<(&str, &str, UpstreamApi)> = c
            .upstreams
            .iter()
            .map(|u| (u.name.as_str(), u.url.as_str(), u.api))
            .collect();
        assert_eq!(
            urls,
            [
                ("a", "http://127.0.0.1:9001", UpstreamApi::Chat),
                ("b", "http://127.0.0.1:9002/v1", UpstreamApi::Messages)
            ]
        );
        let responses = e
            .bind(|_| Some(("http://127.0.0.1:9001", Api::Responses)))
            .unwrap_err();
        assert!(
            matches!(&responses, BindError::BadApi { name, .. } if name == "a"),
            "{responses}"
        );
        assert_eq!(c.routes, e.routes());
        assert_eq!(
            e.bind(|n| (n == "a").then_some(("http://127.0.0.1:9001", Api::Chat))),
            Err(BindError::Missing("b".into()))
        );
        let https = e
            .bind(|_| Some(("https://127.0.0.1:9001", Api::Chat)))
            .unwrap();
        assert_eq!(https.upstreams[0].url, "https://127.0.0.1:9001");
        let keyed = e
            .bind(|_| Some(("https://user:key@127.0.0.1:9001", Api::Chat)))
            .unwrap_err();
        assert!(
            keyed
                .to_string()
                .contains("credentials in a URL are refused"),
            "{keyed}"
        );
    }

    #[test]
    fn secrets_use_env_name_and_the_old_spelling_is_refused_where_it_stands() {
        // Unset everywhere: unit tests cannot set variables safely while others run.
        let var = "GAUNTLET_GW_CONFIG_TEST_KEY";
        let text = format!(
            "keys = [{{ key = \"env:{var}\", tier = \"pro\" }}, {{ key = \"gk-literal\" }}]\n\
             routes = [{{ model = \"m\", targets = [\"a\"] }}]\n\
             [[upstreams]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\napi_key = \"up-literal\"\n"
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains(&format!(
                "gw.toml:1:17: `keys[0].key`: environment variable `{var}` is not set"
            )),
            "{e}"
        );
        assert_eq!(
            e.lines().count(),
            1,
            "the literal key and api_key are fine: {e}"
        );
        let literal = text.replace(&format!("env:{var}"), "gk-pro");
        let c = parse(&literal).unwrap();
        assert_eq!(
            (c.keys[0].key.expose(), c.keys[0].tier.as_str()),
            ("gk-pro", "pro")
        );
        assert_eq!(
            c.upstreams[0].api_key.as_ref().map(Secret::expose),
            Some("up-literal")
        );
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("gk-pro") && !shown.contains("up-literal"),
            "debug output shows a secret: {shown}"
        );

        let old = "keys = [{ key_env = \"GK\" }]\nroutes = [{ model = \"m\", targets = [\"a\"] }]\n\
                   [[upstreams]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\napi_key_env = \"UP\"\n";
        let e = parse(old).unwrap_err().to_string();
        assert!(
            e.contains("gw.toml:1:21: `keys[0].key_env`: `*_env` keys are gone; write `key = \"env:GK\"` instead"),
            "{e}"
        );
        assert!(
            e.contains("gw.toml:6:15: `upstreams[0].api_key_env`: `*_env` keys are gone; write `api_key = \"env:UP\"` instead"),
            "{e}"
        );
    }

    #[test]
    fn an_upstream_speaks_chat_or_messages_and_nothing_else() {
        let with = |api: &str| {
            parse(&format!(
                "routes = [{{ model = \"m\", targets = [\"a\"] }}]\n\
                 [[upstreams]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\napi = \"{api}\"\n"
            ))
        };
        assert_eq!(
            with("messages").unwrap().upstreams[0].api,
            UpstreamApi::Messages
        );
        assert_eq!(with("chat").unwrap().upstreams[0].api, UpstreamApi::Chat);
        for client_only in ["responses", "embeddings"] {
            let e = with(client_only).unwrap_err().to_string();
            assert!(
                e.contains(&format!(
                    "gw.toml:5:7: `upstreams[0].api`: `{client_only}` is an API the gateway \
                     serves to clients, not one it speaks to an upstream"
                )),
                "{e}"
            );
            assert!(e.contains("use one of: chat, messages"), "{e}");
        }
        let e = with("grpc").unwrap_err().to_string();
        assert!(
            e.contains("`upstreams[0].api`: `grpc` is not an API the gateway speaks to upstreams; use one of: chat, messages"),
            "{e}"
        );
    }
}
