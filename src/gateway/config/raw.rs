//! The gateway file as written: serde shapes with spans and `deny_unknown_fields`. A scenario
//! embeds `RawGatewayTable` as its `[gateway]` table, so spans there point into the scenario.

use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use crate::config::RawNum;

use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    #[serde(default)]
    pub upstreams: Vec<Spanned<RawUpstream>>,
    #[serde(default)]
    pub keys: Vec<Spanned<RawKey>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    pub timeouts: Option<RawTimeouts>,
    pub retry: Option<RawRetry>,
    pub breaker: Option<RawBreaker>,
    pub max_request_bytes: Option<Spanned<i64>>,
    #[serde(default)]
    pub tiers: BTreeMap<Spanned<String>, RawTier>,
    pub admission: Option<RawAdmission>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGatewayTable {
    #[serde(default)]
    pub keys: Vec<Spanned<RawKey>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    pub timeouts: Option<RawTimeouts>,
    pub retry: Option<RawRetry>,
    pub breaker: Option<RawBreaker>,
    pub max_request_bytes: Option<Spanned<i64>>,
    #[serde(default)]
    pub tiers: BTreeMap<Spanned<String>, RawTier>,
    pub admission: Option<RawAdmission>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub name: Spanned<String>,
    pub url: Spanned<String>,
    /// Sent upstream as the bearer key: a literal or "env:NAME".
    pub api_key: Option<Spanned<String>>,
    /// The old spelling of `api_key = "env:NAME"`, refused with a pointer to it.
    pub api_key_env: Option<Spanned<String>>,
    pub max_concurrent: Option<Spanned<i64>>,
    /// `chat` (default) or `messages` (Anthropic's Messages API).
    pub api: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    /// A literal or "env:NAME".
    pub key: Option<Spanned<String>>,
    /// The old spelling of `key = "env:NAME"`, refused with a pointer to it.
    pub key_env: Option<Spanned<String>>,
    pub tier: Option<Spanned<String>>,
    pub rpm: Option<Spanned<i64>>,
    pub tpm: Option<Spanned<i64>>,
    pub max_concurrent: Option<Spanned<i64>>,
}

/// `[tiers.NAME]`: defaults for the tier's keys and its standing in admission.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    pub rpm: Option<Spanned<i64>>,
    pub tpm: Option<Spanned<i64>>,
    pub max_concurrent_per_key: Option<Spanned<i64>>,
    pub max_concurrent: Option<Spanned<i64>>,
    pub priority: Option<Spanned<i64>>,
    pub queue: Option<Spanned<i64>>,
    pub queue_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmission {
    pub enabled: Option<bool>,
    pub max_in_flight: Option<Spanned<i64>>,
    pub upstream_max_concurrent: Option<Spanned<i64>>,
    pub reserved: Option<Spanned<RawNum>>,
    /// `"priority"` (the default here) or `"all"`.
    pub upstream_429: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub model: Spanned<String>,
    #[serde(default)]
    pub targets: Vec<Spanned<RawTarget>>,
    #[serde(default)]
    pub fallbacks: Vec<Spanned<RawTarget>>,
    pub upstream_model: Option<String>,
    pub timeouts: Option<RawTimeouts>,
}

/// `"name"` or `{ upstream = "name", weight = 80, model = "..." }`.
#[derive(Debug)]
pub struct RawTarget {
    pub upstream: String,
    /// A number, so `1.5` gets the same "whole number" message as a scenario's weight.
    pub weight: Option<Spanned<f64>>,
    pub model: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTargetTable {
    pub upstream: String,
    pub weight: Option<Spanned<f64>>,
    pub model: Option<String>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub connect: Option<Spanned<String>>,
    pub first_byte: Option<Spanned<String>>,
    pub total: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub max_attempts: Option<Spanned<i64>>,
    pub backoff_base: Option<Spanned<String>>,
    pub backoff_max: Option<Spanned<String>>,
    pub budget: Option<Spanned<RawNum>>,
    pub budget_window: Option<Spanned<String>>,
    pub budget_min: Option<Spanned<i64>>,
    pub retry_on: Option<Vec<Spanned<i64>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBreaker {
    pub enabled: Option<bool>,
    pub consecutive_failures: Option<Spanned<i64>>,
    pub error_rate: Option<Spanned<RawNum>>,
    pub window: Option<Spanned<String>>,
    pub min_requests: Option<Spanned<i64>>,
    pub cooldown: Option<Spanned<String>>,
    pub half_open_probes: Option<Spanned<i64>>,
}
