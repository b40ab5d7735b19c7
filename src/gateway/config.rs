//! The gateway's configuration: raw TOML shapes (with spans) and their compilation into typed
//! settings, either from a standalone file or from a scenario's `[gateway]` table.

use std::collections::HashSet;
use std::fmt;
use std::num::NonZeroU32;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Check, ConfigError, ConfigErrors, RawNum, Source, did_you_mean};

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

// ---------------------------------------------------------------------------------------
// Raw shapes, as written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    upstreams: Vec<Spanned<RawUpstream>>,
    #[serde(default)]
    keys: Vec<Spanned<RawKey>>,
    #[serde(default)]
    routes: Vec<Spanned<RawRoute>>,
    timeouts: Option<RawTimeouts>,
    retry: Option<RawRetry>,
    breaker: Option<RawBreaker>,
    max_request_bytes: Option<Spanned<i64>>,
}

/// A scenario file seen only for its `[gateway]` table; other keys are skipped, and spans
/// stay relative to the whole file.
#[derive(Deserialize)]
struct RawScenarioWrapper {
    gateway: Option<Spanned<RawGatewayTable>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGatewayTable {
    #[serde(default)]
    keys: Vec<Spanned<RawKey>>,
    #[serde(default)]
    routes: Vec<Spanned<RawRoute>>,
    timeouts: Option<RawTimeouts>,
    retry: Option<RawRetry>,
    breaker: Option<RawBreaker>,
    max_request_bytes: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    name: Spanned<String>,
    url: Spanned<String>,
    api_key_env: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    key: Option<Spanned<String>>,
    key_env: Option<Spanned<String>>,
    tier: Option<Tier>,
    rpm: Option<Spanned<i64>>,
    tpm: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    model: Spanned<String>,
    #[serde(default)]
    targets: Vec<Spanned<RawTarget>>,
    #[serde(default)]
    fallbacks: Vec<Spanned<RawTarget>>,
    upstream_model: Option<String>,
    timeouts: Option<RawTimeouts>,
}

/// `"name"` or `{ upstream = "name", weight = 80, model = "..." }`.
struct RawTarget {
    upstream: String,
    weight: Option<Spanned<i64>>,
    model: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargetTable {
    upstream: String,
    weight: Option<Spanned<i64>>,
    model: Option<String>,
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A hand-written visitor instead of `untagged`: the table form keeps toml's spans and
        // its precise "unknown field" errors.
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawTarget;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an upstream name or a table { upstream = \"name\", weight = N }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawTarget, E> {
                Ok(RawTarget {
                    upstream: v.to_string(),
                    weight: None,
                    model: None,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawTarget, A::Error> {
                let t =
                    RawTargetTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(RawTarget {
                    upstream: t.upstream,
                    weight: t.weight,
                    model: t.model,
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect: Option<Spanned<String>>,
    first_byte: Option<Spanned<String>>,
    total: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_attempts: Option<Spanned<i64>>,
    backoff_base: Option<Spanned<String>>,
    backoff_max: Option<Spanned<String>>,
    budget: Option<Spanned<RawNum>>,
    budget_window: Option<Spanned<String>>,
    budget_min: Option<Spanned<i64>>,
    retry_on: Option<Vec<Spanned<i64>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBreaker {
    enabled: Option<bool>,
    consecutive_failures: Option<Spanned<i64>>,
    error_rate: Option<Spanned<RawNum>>,
    window: Option<Spanned<String>>,
    min_requests: Option<Spanned<i64>>,
    cooldown: Option<Spanned<String>>,
    half_open_probes: Option<Spanned<i64>>,
}

// ---------------------------------------------------------------------------------------
// Compilation: raw -> typed, collecting every located error.

fn compile_upstreams(check: &mut Check<'_>, raw: &[Spanned<RawUpstream>]) -> Vec<UpstreamConfig> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, u) in raw.iter().enumerate() {
        let key = format!("upstreams[{i}]");
        let u = u.get_ref();
        let name = u.name.get_ref().trim();
        if name.is_empty() {
            check.error(
                u.name.span(),
                format!("{key}.name"),
                "name must not be empty",
            );
        } else if !seen.insert(name.to_string()) {
            check.error(
                u.name.span(),
                format!("{key}.name"),
                format!("upstream `{name}` is defined twice"),
            );
        }
        if let Err(m) = validate_url(u.url.get_ref()) {
            check.error(u.url.span(), format!("{key}.url"), m);
        }
        let api_key = u
            .api_key_env
            .as_ref()
            .and_then(|v| env_value(check, v, &format!("{key}.api_key_env")));
        out.push(UpstreamConfig {
            name: name.to_string(),
            url: u.url.get_ref().clone(),
            api_key,
        });
    }
    out
}

fn validate_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|e| {
        format!("`{url}` is not a URL ({e}); write it like \"http://127.0.0.1:8001\"")
    })?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "`{url}`: https upstreams are not supported by the reference gateway; \
                 use an http URL (a local TLS-terminating proxy can front a remote provider)"
            ));
        }
        _ => return Err(format!("`{url}` must start with http://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    if uri.query().is_some() {
        return Err(format!("`{url}` must not carry a query string"));
    }
    Ok(())
}

fn env_value(check: &mut Check<'_>, var: &Spanned<String>, key: &str) -> Option<String> {
    match std::env::var(var.get_ref()) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        Ok(_) => {
            check.error(
                var.span(),
                key,
                format!("environment variable `{}` is empty", var.get_ref()),
            );
            None
        }
        Err(_) => {
            check.error(
                var.span(),
                key,
                format!("environment variable `{}` is not set", var.get_ref()),
            );
            None
        }
    }
}

fn compile_table(
    check: &mut Check<'_>,
    t: &RawGatewayTable,
    upstreams: Vec<UpstreamConfig>,
    prefix: &str,
) -> Config {
    let timeouts = compile_timeouts(check, t.timeouts.as_ref(), Timeouts::default(), prefix);
    let names: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
    let mut routes = Vec::new();
    let mut models = HashSet::new();
    for (i, r) in t.routes.iter().enumerate() {
        let key = format!("{prefix}routes[{i}]");
        let Some(route) = compile_route(check, r, &names, timeouts, &key) else {
            continue;
        };
        if models.insert(route.model.clone()) {
            routes.push(route);
        } else {
            check.error(
                r.get_ref().model.span(),
                format!("{key}.model"),
                format!("model `{}` is routed twice", route.model),
            );
        }
    }
    if t.routes.is_empty() {
        check.push(ConfigError::new(
            format!("{prefix}routes"),
            "no routes: add at least one, e.g. routes = [{ model = \"m\", targets = [\"a\"] }]",
        ));
    }
    if upstreams.is_empty() && prefix.is_empty() {
        check.push(ConfigError::new(
            "upstreams",
            "no upstreams: add [[upstreams]] with name and url",
        ));
    }
    let keys = compile_keys(check, &t.keys, prefix);
    let retry = compile_retry(check, t.retry.as_ref(), prefix);
    let breaker = compile_breaker(check, t.breaker.as_ref(), prefix);
    let max_request_bytes = match &t.max_request_bytes {
        None => DEFAULT_MAX_REQUEST_BYTES,
        Some(v) => positive_int(check, v, &format!("{prefix}max_request_bytes"), 1 << 30)
            .map_or(DEFAULT_MAX_REQUEST_BYTES, |n| n as usize),
    };
    Config {
        upstreams,
        keys,
        routes,
        timeouts,
        retry,
        breaker,
        max_request_bytes,
    }
}

fn compile_route(
    check: &mut Check<'_>,
    r: &Spanned<RawRoute>,
    names: &[&str],
    defaults: Timeouts,
    key: &str,
) -> Option<RouteConfig> {
    let raw = r.get_ref();
    let model = raw.model.get_ref().trim().to_string();
    let mut ok = true;
    if model.is_empty() {
        check.error(
            raw.model.span(),
            format!("{key}.model"),
            "model must not be empty",
        );
        ok = false;
    }
    if raw.targets.is_empty() {
        check.error(
            r.span(),
            format!("{key}.targets"),
            format!("route `{model}` has no targets; add targets = [\"upstream-name\"]"),
        );
        ok = false;
    }
    let mut resolve = |list: &[Spanned<RawTarget>], field: &str, weighted: bool| {
        let mut out = Vec::new();
        for (j, t) in list.iter().enumerate() {
            let tkey = format!("{key}.{field}[{j}]");
            let rt = t.get_ref();
            if !names.contains(&rt.upstream.as_str()) {
                let hint = did_you_mean(&rt.upstream, names.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                check.error(
                    t.span(),
                    tkey.clone(),
                    format!(
                        "unknown upstream `{}`{hint}; known upstreams: {}",
                        rt.upstream,
                        names.join(", ")
                    ),
                );
                ok = false;
                continue;
            }
            let weight = match &rt.weight {
                None => 1,
                Some(w) if !weighted => {
                    check.error(
                        w.span(),
                        format!("{tkey}.weight"),
                        "fallbacks are tried in order; a weight means nothing here",
                    );
                    ok = false;
                    1
                }
                Some(w) => match positive_int(check, w, &format!("{tkey}.weight"), 1_000_000) {
                    Some(n) => n as u32,
                    None => {
                        ok = false;
                        1
                    }
                },
            };
            out.push(Target {
                upstream: rt.upstream.clone(),
                weight,
                model: rt.model.clone().or_else(|| raw.upstream_model.clone()),
            });
        }
        out
    };
    let targets = resolve(&raw.targets, "targets", true);
    let fallbacks = resolve(&raw.fallbacks, "fallbacks", false);
    let timeouts = compile_timeouts(check, raw.timeouts.as_ref(), defaults, &format!("{key}."));
    ok.then_some(RouteConfig {
        model,
        targets,
        fallbacks,
        timeouts,
    })
}

fn compile_timeouts(
    check: &mut Check<'_>,
    raw: Option<&RawTimeouts>,
    defaults: Timeouts,
    prefix: &str,
) -> Timeouts {
    let Some(raw) = raw else { return defaults };
    let mut get = |v: &Option<Spanned<String>>, name: &str, default: Duration| match v {
        None => default,
        Some(v) => check
            .positive_duration(v, &format!("{prefix}timeouts.{name}"))
            .unwrap_or(default),
    };
    // A total shorter than first_byte is allowed: the deadline simply wins.
    Timeouts {
        connect: get(&raw.connect, "connect", defaults.connect),
        first_byte: get(&raw.first_byte, "first_byte", defaults.first_byte),
        total: get(&raw.total, "total", defaults.total),
    }
}

fn compile_keys(check: &mut Check<'_>, raw: &[Spanned<RawKey>], prefix: &str) -> Vec<KeyConfig> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (i, k) in raw.iter().enumerate() {
        let key = format!("{prefix}keys[{i}]");
        let rk = k.get_ref();
        let value = match (&rk.key, &rk.key_env) {
            (Some(v), None) => {
                let v = v.get_ref().trim().to_string();
                if v.is_empty() {
                    check.error(k.span(), format!("{key}.key"), "key must not be empty");
                    None
                } else {
                    Some(v)
                }
            }
            (None, Some(env)) => env_value(check, env, &format!("{key}.key_env")),
            _ => {
                check.error(
                    k.span(),
                    key.clone(),
                    "give exactly one of `key` or `key_env`",
                );
                None
            }
        };
        let limit = |check: &mut Check<'_>, v: &Option<Spanned<i64>>, name: &str| {
            v.as_ref()
                .and_then(|v| positive_int(check, v, &format!("{key}.{name}"), u32::MAX as i64))
                .and_then(|n| NonZeroU32::new(n as u32))
        };
        let rpm = limit(check, &rk.rpm, "rpm");
        let tpm = limit(check, &rk.tpm, "tpm");
        let Some(value) = value else { continue };
        if !seen.insert(value.clone()) {
            // Do not echo the key itself: it is a secret.
            check.error(k.span(), key, "this key is configured twice");
            continue;
        }
        out.push(KeyConfig {
            key: value,
            tier: rk.tier.unwrap_or(Tier::Standard),
            rpm,
            tpm,
        });
    }
    out
}

fn compile_retry(check: &mut Check<'_>, raw: Option<&RawRetry>, prefix: &str) -> RetryConfig {
    let d = RetryConfig::default();
    let Some(raw) = raw else { return d };
    let key = |name: &str| format!("{prefix}retry.{name}");
    let dur = |check: &mut Check<'_>, v: &Option<Spanned<String>>, name: &str, default| match v {
        None => default,
        Some(v) => check.duration(v, &key(name)).unwrap_or(default),
    };
    let backoff_base = dur(check, &raw.backoff_base, "backoff_base", d.backoff_base);
    let backoff_max = dur(check, &raw.backoff_max, "backoff_max", d.backoff_max);
    if let Some(v) = &raw.backoff_max
        && backoff_max < backoff_base
    {
        check.error(
            v.span(),
            key("backoff_max"),
            "backoff_max must be >= backoff_base",
        );
    }
    let budget_window = match &raw.budget_window {
        None => d.budget_window,
        Some(v) => check
            .positive_duration(v, &key("budget_window"))
            .unwrap_or(d.budget_window),
    };
    let retry_on = raw.retry_on.as_ref().map(|list| {
        list.iter()
            .filter_map(|s| {
                let n = *s.get_ref();
                if (400..=599).contains(&n) {
                    Some(n as u16)
                } else {
                    check.error(
                        s.span(),
                        key("retry_on"),
                        format!("{n} is not an error status; use 4xx/5xx codes like 429 or 503"),
                    );
                    None
                }
            })
            .collect()
    });
    RetryConfig {
        max_attempts: raw
            .max_attempts
            .as_ref()
            .and_then(|v| positive_int(check, v, &key("max_attempts"), 20))
            .map_or(d.max_attempts, |n| n as u32),
        backoff_base,
        backoff_max,
        budget: raw
            .budget
            .as_ref()
            .and_then(|v| check.ratio(v, &key("budget")))
            .unwrap_or(d.budget),
        budget_window,
        budget_min: match &raw.budget_min {
            None => d.budget_min,
            Some(v) => non_negative_int(check, v, &key("budget_min")).unwrap_or(d.budget_min),
        },
        retry_on,
    }
}

fn compile_breaker(check: &mut Check<'_>, raw: Option<&RawBreaker>, prefix: &str) -> BreakerConfig {
    let d = BreakerConfig::default();
    let Some(raw) = raw else { return d };
    let key = |name: &str| format!("{prefix}breaker.{name}");
    let int = |check: &mut Check<'_>, v: &Option<Spanned<i64>>, name: &str, default: u32| {
        v.as_ref()
            .and_then(|v| positive_int(check, v, &key(name), 1_000_000))
            .map_or(default, |n| n as u32)
    };
    let dur = |check: &mut Check<'_>, v: &Option<Spanned<String>>, name: &str, default| match v {
        None => default,
        Some(v) => check.positive_duration(v, &key(name)).unwrap_or(default),
    };
    BreakerConfig {
        enabled: raw.enabled.unwrap_or(true),
        consecutive_failures: int(
            check,
            &raw.consecutive_failures,
            "consecutive_failures",
            d.consecutive_failures,
        ),
        error_rate: raw
            .error_rate
            .as_ref()
            .and_then(|v| check.ratio(v, &key("error_rate")))
            .unwrap_or(d.error_rate),
        window: dur(check, &raw.window, "window", d.window),
        min_requests: int(check, &raw.min_requests, "min_requests", d.min_requests),
        cooldown: dur(check, &raw.cooldown, "cooldown", d.cooldown),
        half_open_probes: int(
            check,
            &raw.half_open_probes,
            "half_open_probes",
            d.half_open_probes,
        ),
    }
}

fn positive_int(check: &mut Check<'_>, v: &Spanned<i64>, key: &str, max: i64) -> Option<i64> {
    let n = *v.get_ref();
    if (1..=max).contains(&n) {
        Some(n)
    } else {
        check.error(
            v.span(),
            key,
            format!("{n} is out of range; allowed 1..={max}"),
        );
        None
    }
}

fn non_negative_int(check: &mut Check<'_>, v: &Spanned<i64>, key: &str) -> Option<u32> {
    let n = *v.get_ref();
    match u32::try_from(n) {
        Ok(n) => Some(n),
        Err(_) => {
            check.error(v.span(), key, format!("{n} must be a whole number >= 0"));
            None
        }
    }
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
