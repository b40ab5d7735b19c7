//! The gateway's configuration: raw TOML shapes (with spans) and their compilation into typed
//! settings, either from a standalone file or from a scenario's `[gateway]` table.

use std::fmt;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{Check, ConfigError, ConfigErrors, Source};

mod compile;
mod raw;

use compile::{compile_table, compile_upstreams, validate_url};
use raw::{RawFile, RawGatewayTable, RawScenarioWrapper};

/// Everything the gateway needs to run. Build it with [`Config::load`] (a gateway file) or
/// [`Config::from_embedded`] (a scenario's `[gateway]` table).
#[derive(Debug, Clone)]
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
}

/// A provider the gateway forwards to.
#[derive(Clone)]
pub struct UpstreamConfig {
    pub name: String,
    /// Base URL (`http://host:port` or `http://host:port/v1`).
    pub url: String,
    /// The key sent upstream as `Authorization: Bearer ...`.
    pub api_key: Option<String>,
}

impl fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Standard,
    Pro,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Standard => "standard",
            Tier::Pro => "pro",
        }
    }
}

/// A client API key with its tier and per-minute limits (`None`: unlimited).
#[derive(Clone)]
pub struct KeyConfig {
    pub key: String,
    pub tier: Tier,
    pub rpm: Option<NonZeroU32>,
    pub tpm: Option<NonZeroU32>,
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are secrets: never print them, even in debug output.
        f.debug_struct("KeyConfig")
            .field("key", &"<redacted>")
            .field("tier", &self.tier)
            .field("rpm", &self.rpm)
            .field("tpm", &self.tpm)
            .finish()
    }
}

/// A public model name and where its requests go.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub model: String,
    /// Weighted primaries: one is picked per request.
    pub targets: Vec<Target>,
    /// Tried in order after the picked primary fails.
    pub fallbacks: Vec<Target>,
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub upstream: String,
    pub weight: u32,
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
        let table = RawGatewayTable {
            keys: raw.keys,
            routes: raw.routes,
            timeouts: raw.timeouts,
            retry: raw.retry,
            breaker: raw.breaker,
            max_request_bytes: raw.max_request_bytes,
        };
        let config = compile_table(&mut check, &table, upstreams, "");
        check.finish(()).map(|()| config)
    }

    /// Compiles the `[gateway]` table of a scenario file; upstream names and base URLs come
    /// from the scenario. Errors carry the scenario's line:col and keys prefixed `gateway.`.
    pub fn from_embedded(
        src: &Source,
        upstreams: &[(String, String)],
    ) -> Result<Config, ConfigErrors> {
        let wrapper: RawScenarioWrapper = src.parse_toml()?;
        let Some(table) = wrapper.gateway else {
            return Err(ConfigError::new(
                "gateway",
                "the scenario has no [gateway] table; add one or set [target] url",
            )
            .into());
        };
        let mut check = Check::new(src);
        let mut ups = Vec::with_capacity(upstreams.len());
        for (name, url) in upstreams {
            match validate_url(url) {
                Ok(()) => ups.push(UpstreamConfig {
                    name: name.clone(),
                    url: url.clone(),
                    api_key: None,
                }),
                Err(m) => check.push(ConfigError::new(format!("upstreams.{name}.url"), m)),
            }
        }
        let config = compile_table(&mut check, table.get_ref(), ups, "gateway.");
        check.finish(()).map(|()| config)
    }
}

/// TOML puts every key after `[[upstreams]]` into that table; say so when it bites.
fn hint_table_order(mut e: ConfigError) -> ConfigError {
    let misplaced = ["keys", "routes", "max_request_bytes"]
        .iter()
        .any(|k| e.message.starts_with(&format!("unknown field `{k}`")));
    if misplaced && e.message.contains("api_key_env") {
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
        assert_eq!(c.routes[0].targets[0].weight, 80);
        assert_eq!(c.routes[0].targets[1].weight, 1);
        assert_eq!(c.routes[0].fallbacks[0].model.as_deref(), Some("up"));
        assert_eq!(c.keys[0].tier, Tier::Pro);
        assert!((c.retry.budget - 0.1).abs() < 1e-9);
        assert!(c.retry.retries_status(503) && !c.retry.retries_status(500));
        assert_eq!(c.breaker, BreakerConfig::default());
        assert!(!format!("{:?}", c.keys[0]).contains("gk-1"));
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

    #[test]
    fn embedded_table_keeps_file_positions_and_prefix() {
        let text = "name = \"s\"\n[load]\nrate = 5\n[gateway]\nroutes = [{ model = \"m\", targets = [\"x\"] }]\n";
        let src = Source::new("scenario.toml", text);
        let ups = vec![("a".to_string(), "http://127.0.0.1:1".to_string())];
        let e = Config::from_embedded(&src, &ups).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("scenario.toml:5:"), "{s}");
        assert!(s.contains("`gateway.routes[0].targets[0]`"), "{s}");
        let ok = text.replace("\"x\"", "\"a\"");
        let c = Config::from_embedded(&Source::new("s.toml", ok), &ups).unwrap();
        assert_eq!(c.upstreams[0].name, "a");
    }
}
