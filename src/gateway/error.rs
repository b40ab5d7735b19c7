//! The gateway's one request-failure type: which side failed (client, gateway, upstream), the
//! status the client gets, and whether another attempt can help — decided here and nowhere else.

use std::time::Duration;

use crate::openai::{ApiError, ApiErrorKind, RateLimitHeaders};

use super::admission::ShedReason;

/// Who is responsible for a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Gateway,
    Upstream,
}

/// Which wait ran out on an upstream attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    Connect,
    FirstByte,
    Total,
}

impl TimeoutPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::FirstByte => "first byte",
            TimeoutPhase::Total => "total",
        }
    }
}

/// Why a request (or one attempt of it) failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProxyError {
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<String>,
    },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("request body exceeds the gateway's limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the model `{0}` does not exist or you do not have access to it")]
    UnknownModel(String),
    #[error("unknown URL {method} {path}")]
    UnknownUrl { method: String, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
        info: RateLimitHeaders,
    },

    /// An upstream answered with an error status the gateway may retry or fail over on.
    #[error("{upstream} answered {status}")]
    UpstreamStatus {
        upstream: String,
        status: u16,
        code: Option<String>,
        retry_after: Option<Duration>,
        retryable: bool,
    },
    #[error("{upstream} timed out waiting for the {} after {}ms", .phase.as_str(), .after.as_millis())]
    Timeout {
        upstream: String,
        phase: TimeoutPhase,
        after: Duration,
    },
    #[error("cannot connect to {upstream}: {detail}")]
    Connect { upstream: String, detail: String },
    #[error("{upstream} reset the connection: {detail}")]
    Reset { upstream: String, detail: String },
    /// A success status with a body no client could use: wrong content type, invalid JSON,
    /// or larger than the gateway will buffer.
    #[error("{upstream} sent an unusable response: {detail}")]
    BadResponse { upstream: String, detail: String },

    /// Every upstream of the route failed or was skipped; each entry says why.
    #[error("all upstreams for model {model} are unavailable: {}", describe(.tried))]
    AllUnavailable {
        model: String,
        tried: Vec<(String, String)>,
        retry_after: Option<Duration>,
    },
    #[error("model {model} did not answer within {}ms: {}", .total.as_millis(), describe(.tried))]
    DeadlineExceeded {
        model: String,
        total: Duration,
        tried: Vec<(String, String)>,
    },
    /// Refused by tier admission, at once rather than by a timeout; the reason goes in
    /// `x-gateway-shed`.
    #[error("{message}")]
    Shed {
        reason: ShedReason,
        message: String,
        retry_after: Duration,
    },
    #[error("internal gateway error: {0}")]
    Internal(String),
}

/// The upstreams a request passed over, each with why.
pub(super) fn describe(tried: &[(String, String)]) -> String {
    if tried.is_empty() {
        return "no upstream could be tried".into();
    }
    tried
        .iter()
        .map(|(u, why)| format!("{u} ({why})"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl ProxyError {
    pub fn side(&self) -> Side {
        match self {
            Self::BadRequest { .. }
            | Self::Unauthorized(_)
            | Self::TooLarge { .. }
            | Self::UnknownModel(_)
            | Self::UnknownUrl { .. }
            | Self::MethodNotAllowed { .. }
            | Self::RateLimited { .. } => Side::Client,
            Self::Shed { .. } => Side::Gateway,
            Self::UpstreamStatus { .. }
            | Self::Timeout { .. }
            | Self::Connect { .. }
            | Self::Reset { .. }
            | Self::BadResponse { .. } => Side::Upstream,
            Self::AllUnavailable { .. } | Self::DeadlineExceeded { .. } | Self::Internal(_) => {
                Side::Gateway
            }
        }
    }

    /// Whether another attempt (on this upstream or the next) can succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::UpstreamStatus { retryable, .. } => *retryable,
            Self::Timeout { phase, .. } => *phase != TimeoutPhase::Total,
            Self::Connect { .. } | Self::Reset { .. } | Self::BadResponse { .. } => true,
            _ => false,
        }
    }

    /// Whether the same upstream is worth another attempt (out of credit is not: move on).
    pub fn retry_same_upstream(&self) -> bool {
        match self {
            Self::UpstreamStatus { code, .. } => code.as_deref() != Some("insufficient_quota"),
            // A provider that answers garbage answers it again: move on to the next one.
            Self::BadResponse { .. } => false,
            _ => self.retryable(),
        }
    }

    /// Whether this attempt outcome counts against the upstream's circuit breaker.
    pub fn counts_against_upstream(&self) -> bool {
        self.side() == Side::Upstream
    }

    /// The short reason shown in the "all upstreams unavailable" message.
    pub fn short_reason(&self) -> String {
        match self {
            Self::UpstreamStatus { status, code, .. } => match code.as_deref() {
                Some(c @ ("insufficient_quota" | "rate_limit_exceeded")) => {
                    format!("{status} {c}")
                }
                _ => status.to_string(),
            },
            Self::Timeout { phase, after, .. } => {
                format!("{} timeout after {}ms", phase.as_str(), after.as_millis())
            }
            Self::Connect { .. } => "connect error".into(),
            Self::Reset { .. } => "connection reset".into(),
            Self::BadResponse { detail, .. } => format!("bad response: {detail}"),
            other => other.to_string(),
        }
    }

    /// The label used for this outcome in metrics.
    pub fn outcome_label(&self) -> &'static str {
        match self {
            Self::UpstreamStatus { status: 429, .. } => "rate_limited",
            Self::UpstreamStatus { .. } => "status_error",
            Self::Timeout { .. } => "timeout",
            Self::Connect { .. } => "connect",
            Self::Reset { .. } => "reset",
            Self::BadResponse { .. } => "bad_response",
            _ => "gateway",
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. }
            | Self::UpstreamStatus { retry_after, .. }
            | Self::AllUnavailable { retry_after, .. } => *retry_after,
            Self::Shed { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    pub fn kind(&self) -> ApiErrorKind {
        match self {
            Self::BadRequest { .. } => ApiErrorKind::InvalidRequest,
            Self::Unauthorized(_) => ApiErrorKind::InvalidApiKey,
            Self::TooLarge { .. } => ApiErrorKind::RequestTooLarge,
            Self::UnknownModel(_) => ApiErrorKind::ModelNotFound,
            Self::UnknownUrl { .. } => ApiErrorKind::UnknownUrl,
            Self::MethodNotAllowed { .. } => ApiErrorKind::MethodNotAllowed,
            Self::RateLimited { .. } => ApiErrorKind::RateLimitExceeded,
            Self::UpstreamStatus { status, code, .. } => {
                ApiErrorKind::from_status_code(*status, code.as_deref())
            }
            Self::Timeout { .. } | Self::DeadlineExceeded { .. } => ApiErrorKind::GatewayTimeout,
            Self::Connect { .. } | Self::Reset { .. } | Self::BadResponse { .. } => {
                ApiErrorKind::BadGateway
            }
            Self::AllUnavailable { .. } => ApiErrorKind::ServiceUnavailable,
            Self::Shed { reason, .. } if reason.status() == 429 => ApiErrorKind::RateLimitExceeded,
            Self::Shed { .. } => ApiErrorKind::ServiceUnavailable,
            Self::Internal(_) => ApiErrorKind::ServerError,
        }
    }

    pub fn status(&self) -> u16 {
        self.kind().status()
    }

    pub fn to_api_error(&self) -> ApiError {
        let mut e = ApiError::new(self.kind(), self.to_string());
        if let Self::BadRequest { param, .. } = self {
            e.param = param.clone();
        }
        if matches!(self, Self::UnknownModel(_)) {
            e.param = Some("model".into());
        }
        e
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream `{name}` has an unusable URL `{url}`")]
    BadUpstreamUrl { name: String, url: String },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_statuses_and_retryability() {
        let e = ProxyError::UpstreamStatus {
            upstream: "a".into(),
            status: 429,
            code: Some("insufficient_quota".into()),
            retry_after: None,
            retryable: true,
        };
        assert_eq!(e.side(), Side::Upstream);
        assert!(e.retryable() && !e.retry_same_upstream());
        let all = ProxyError::AllUnavailable {
            model: "m".into(),
            tried: vec![
                ("a".into(), "breaker open".into()),
                ("b".into(), "503".into()),
            ],
            retry_after: None,
        };
        assert_eq!(all.status(), 503);
        assert_eq!(all.side(), Side::Gateway);
        assert_eq!(
            all.to_string(),
            "all upstreams for model m are unavailable: a (breaker open), b (503)"
        );
        assert_eq!(ProxyError::Unauthorized("x").status(), 401);
        assert!(!ProxyError::TooLarge { limit: 1 }.retryable());
    }
}
