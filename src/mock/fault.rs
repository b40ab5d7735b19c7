//! Fault specifications: what a broken provider does, as written in profiles and scenarios
//! (TOML) and as sent to a mock's control API (JSON). One flat raw shape for both, compiled
//! into typed faults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Dist, DurationDist, RawDist, RawDistTable, RawNum, parse_duration};

/// The kinds of failure a mock can play.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FaultKindName {
    /// Answer with an HTTP error status and an OpenAI error body.
    Error,
    /// Answer 429 with Retry-After and x-ratelimit-* headers.
    RateLimit,
    /// Add a delay before answering.
    Latency,
    /// Accept the request and never answer (until `hang_for`, then close).
    Hang,
    /// Drop the connection with a TCP reset, no response.
    Reset,
    /// Stop a stream after `after_chunks` chunks, with no `[DONE]`.
    StreamCut,
    /// Answer 200 with invalid JSON or a broken event stream.
    Malformed,
    /// Stream at a lower token rate.
    SlowStream,
    /// Serve nothing: a connection is closed as soon as its request has been read (the
    /// control API on the same port stays reachable, so the fault can be lifted).
    Outage,
}

impl FaultKindName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::RateLimit => "rate_limit",
            Self::Latency => "latency",
            Self::Hang => "hang",
            Self::Reset => "reset",
            Self::StreamCut => "stream_cut",
            Self::Malformed => "malformed",
            Self::SlowStream => "slow_stream",
            Self::Outage => "outage",
        }
    }
}

/// Which 429 a rate-limit fault plays: retryable, or out of credit.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitCode {
    #[default]
    RateLimitExceeded,
    InsufficientQuota,
}

/// A fault as written: every parameter of every kind, flat, all optional but `kind`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    pub kind: Option<FaultKindName>,
    /// Probability that a matching request is hit, in (0, 1]; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Only requests for this model are hit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `error`: the HTTP status (400..=599), default 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `error`: the message in the error body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `rate_limit`: `rate_limit_exceeded` (default) or `insufficient_quota`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<RateLimitCode>,
    /// `rate_limit`: the Retry-After to announce, default "1s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
    /// `latency`: the added delay, a duration or a distribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<RawDist>,
    /// `hang`: how long to hold the connection before closing it, default "30s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hang_for: Option<String>,
    /// `stream_cut`: content chunks sent before the cut, default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_chunks: Option<u32>,
    /// `slow_stream`: the reduced token rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_second: Option<f64>,
}

/// A compiled fault: what it does, how often, and to which model's requests.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// Probability in (0, 1].
    pub rate: f64,
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    Error {
        status: u16,
        message: Option<String>,
    },
    RateLimit {
        code: RateLimitCode,
        retry_after: Duration,
    },
    Latency {
        delay: DurationDist,
    },
    Hang {
        hang_for: Duration,
    },
    Reset,
    StreamCut {
        after_chunks: u32,
    },
    Malformed,
    SlowStream {
        tokens_per_second: f64,
    },
    Outage,
}

impl FaultKind {
    pub fn name(&self) -> FaultKindName {
        match self {
            Self::Error { .. } => FaultKindName::Error,
            Self::RateLimit { .. } => FaultKindName::RateLimit,
            Self::Latency { .. } => FaultKindName::Latency,
            Self::Hang { .. } => FaultKindName::Hang,
            Self::Reset => FaultKindName::Reset,
            Self::StreamCut { .. } => FaultKindName::StreamCut,
            Self::Malformed => FaultKindName::Malformed,
            Self::SlowStream { .. } => FaultKindName::SlowStream,
            Self::Outage => FaultKindName::Outage,
        }
    }
}

/// What is wrong with a raw fault: the field and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct FaultError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> FaultError {
    FaultError {
        field,
        message: message.into(),
    }
}

const DEFAULT_HANG: Duration = Duration::from_secs(30);

impl RawFault {
    pub fn compile(&self) -> Result<FaultSpec, FaultError> {
        let Some(kind_name) = self.kind else {
            return Err(err(
                "kind",
                "missing; one of error, rate_limit, latency, hang, reset, stream_cut, malformed, slow_stream, outage",
            ));
        };
        let rate = self.rate.unwrap_or(1.0);
        if !(rate.is_finite() && rate > 0.0 && rate <= 1.0) {
            return Err(err(
                "rate",
                format!("{rate} is not a probability in (0, 1]"),
            ));
        }
        let dur = |field: &'static str, v: &Option<String>, default: Duration| match v {
            Some(s) => parse_duration(s).map_err(|m| err(field, m)),
            None => Ok(default),
        };
        let kind = match kind_name {
            FaultKindName::Error => {
                let status = self.status.unwrap_or(500);
                if !(400..=599).contains(&status) {
                    return Err(err(
                        "status",
                        format!("{status} is not an error status (400..=599)"),
                    ));
                }
                FaultKind::Error {
                    status,
                    message: self.message.clone(),
                }
            }
            FaultKindName::RateLimit => FaultKind::RateLimit {
                code: self.code.unwrap_or_default(),
                retry_after: dur("retry_after", &self.retry_after, Duration::from_secs(1))?,
            },
            FaultKindName::Latency => {
                let raw = self
                    .delay
                    .as_ref()
                    .ok_or_else(|| err("delay", "a latency fault needs `delay`, e.g. \"800ms\""))?;
                FaultKind::Latency {
                    delay: compile_delay(raw)?,
                }
            }
            FaultKindName::Hang => {
                let hang_for = dur("hang_for", &self.hang_for, DEFAULT_HANG)?;
                if hang_for.is_zero() {
                    return Err(err("hang_for", "must be longer than zero"));
                }
                FaultKind::Hang { hang_for }
            }
            FaultKindName::Reset => FaultKind::Reset,
            FaultKindName::StreamCut => FaultKind::StreamCut {
                after_chunks: self.after_chunks.unwrap_or(3),
            },
            FaultKindName::Malformed => FaultKind::Malformed,
            FaultKindName::SlowStream => {
                let tps = self.tokens_per_second.ok_or_else(|| {
                    err(
                        "tokens_per_second",
                        "a slow_stream fault needs `tokens_per_second`",
                    )
                })?;
                if !(tps.is_finite() && tps > 0.0 && tps <= 1e6) {
                    return Err(err(
                        "tokens_per_second",
                        format!("{tps} must be in (0, 1000000]"),
                    ));
                }
                FaultKind::SlowStream {
                    tokens_per_second: tps,
                }
            }
            FaultKindName::Outage => FaultKind::Outage,
        };
        Ok(FaultSpec {
            kind,
            rate,
            model: self.model.clone(),
        })
    }
}

fn compile_delay(raw: &RawDist) -> Result<DurationDist, FaultError> {
    // Reuse the shared distribution rules through a throwaway source so messages match.
    let src = crate::config::Source::new("<fault>", String::new());
    let mut check = crate::config::Check::new(&src);
    let spanned = toml::Spanned::new(0..0, raw.clone());
    let compiled = check.duration_dist(&spanned, "delay");
    match (compiled, check.finish(())) {
        (Some(d), Ok(())) => Ok(d),
        (_, Err(e)) => Err(err(
            "delay",
            e.0.first().map_or_else(String::new, |e| e.message.clone()),
        )),
        (None, Ok(())) => Err(err("delay", "invalid delay")),
    }
}

fn duration_text(d: Duration) -> RawNum {
    RawNum::Text(format!("{}us", d.as_micros()))
}

fn seconds_text(s: f64) -> Option<RawNum> {
    Some(duration_text(Duration::from_secs_f64(s.max(0.0))))
}

impl FaultSpec {
    /// The raw form, for sending to a mock's control API.
    pub fn to_raw(&self) -> RawFault {
        let mut raw = RawFault {
            kind: Some(self.kind.name()),
            rate: Some(self.rate),
            model: self.model.clone(),
            ..RawFault::default()
        };
        match &self.kind {
            FaultKind::Error { status, message } => {
                raw.status = Some(*status);
                raw.message = message.clone();
            }
            FaultKind::RateLimit { code, retry_after } => {
                raw.code = Some(*code);
                raw.retry_after = Some(format!("{}ms", retry_after.as_millis()));
            }
            FaultKind::Latency { delay } => {
                let shaped = |dist: &str| RawDistTable {
                    dist: dist.into(),
                    value: None,
                    min: None,
                    max: None,
                    mean: None,
                    stddev: None,
                    median: None,
                    p99: None,
                };
                raw.delay = Some(match delay.0 {
                    Dist::Fixed { value } => {
                        RawDist::Fixed(duration_text(Duration::from_secs_f64(value)))
                    }
                    Dist::Uniform { min, max } => RawDist::Shaped(RawDistTable {
                        min: seconds_text(min),
                        max: seconds_text(max),
                        ..shaped("uniform")
                    }),
                    Dist::Normal { mean, stddev } => RawDist::Shaped(RawDistTable {
                        mean: seconds_text(mean),
                        stddev: seconds_text(stddev),
                        ..shaped("normal")
                    }),
                    Dist::LogNormal { median, p99 } => RawDist::Shaped(RawDistTable {
                        median: seconds_text(median),
                        p99: seconds_text(p99),
                        ..shaped("lognormal")
                    }),
                });
            }
            FaultKind::Hang { hang_for } => {
                raw.hang_for = Some(format!("{}ms", hang_for.as_millis()))
            }
            FaultKind::StreamCut { after_chunks } => raw.after_chunks = Some(*after_chunks),
            FaultKind::SlowStream { tokens_per_second } => {
                raw.tokens_per_second = Some(*tokens_per_second)
            }
            FaultKind::Reset | FaultKind::Malformed | FaultKind::Outage => {}
        }
        raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_json() {
        let toml_faults = r#"
            [[f]]
            kind = "error"
            status = 503
            [[f]]
            kind = "rate_limit"
            code = "insufficient_quota"
            retry_after = "2s"
            [[f]]
            kind = "latency"
            delay = { dist = "lognormal", median = "100ms", p99 = "900ms" }
            rate = 0.5
            [[f]]
            kind = "hang"
            [[f]]
            kind = "reset"
            [[f]]
            kind = "stream_cut"
            after_chunks = 2
            [[f]]
            kind = "malformed"
            model = "m"
            [[f]]
            kind = "slow_stream"
            tokens_per_second = 5.0
            [[f]]
            kind = "outage"
        "#;
        #[derive(Deserialize)]
        struct F {
            f: Vec<RawFault>,
        }
        let parsed: F = toml::from_str(toml_faults).unwrap();
        for raw in parsed.f {
            let spec = raw.compile().unwrap();
            let json = serde_json::to_string(&spec.to_raw()).unwrap();
            let back: RawFault = serde_json::from_str(&json).unwrap();
            assert_eq!(back.compile().unwrap(), spec, "{json}");
        }
    }

    #[test]
    fn bad_faults_name_the_field() {
        let raw = RawFault {
            kind: Some(FaultKindName::Error),
            status: Some(200),
            ..RawFault::default()
        };
        assert_eq!(raw.compile().unwrap_err().field, "status");
        let raw = RawFault {
            kind: Some(FaultKindName::Latency),
            rate: Some(1.5),
            ..RawFault::default()
        };
        assert_eq!(raw.compile().unwrap_err().field, "rate");
        assert_eq!(RawFault::default().compile().unwrap_err().field, "kind");
    }
}
