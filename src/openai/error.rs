//! OpenAI-shaped error bodies and the status/type/code each kind of error carries.

use serde::{Deserialize, Serialize};

/// `{"error": {"message", "type", "param", "code"}}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

/// The kinds of error an OpenAI-compatible server answers with, each mapped to the status,
/// `type` and `code` OpenAI itself uses, so SDK retry logic sees what it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorKind {
    /// 400: malformed JSON, missing fields, wrong types.
    InvalidRequest,
    /// 400: prompt plus completion exceed the model's window.
    ContextLengthExceeded,
    /// 401: missing or wrong API key.
    InvalidApiKey,
    /// 404: the model is not served here.
    ModelNotFound,
    /// 404: no such path.
    UnknownUrl,
    /// 405: right path, wrong method.
    MethodNotAllowed,
    /// 413: body over the size limit.
    RequestTooLarge,
    /// 429: slow down and retry (carries Retry-After).
    RateLimitExceeded,
    /// 429: out of credit; retrying will not help.
    InsufficientQuota,
    /// 500: the server failed.
    ServerError,
    /// 502: a gateway's upstream failed.
    BadGateway,
    /// 503: overloaded or nothing available to serve.
    ServiceUnavailable,
    /// 504: a gateway's upstream did not answer in time.
    GatewayTimeout,
}

impl ApiErrorKind {
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequest | Self::ContextLengthExceeded => 400,
            Self::InvalidApiKey => 401,
            Self::ModelNotFound | Self::UnknownUrl => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTooLarge => 413,
            Self::RateLimitExceeded | Self::InsufficientQuota => 429,
            Self::ServerError => 500,
            Self::BadGateway => 502,
            Self::ServiceUnavailable => 503,
            Self::GatewayTimeout => 504,
        }
    }

    /// The `type` field.
    pub fn type_str(self) -> &'static str {
        match self {
            Self::InvalidRequest
            | Self::ContextLengthExceeded
            | Self::InvalidApiKey
            | Self::ModelNotFound
            | Self::UnknownUrl
            | Self::MethodNotAllowed
            | Self::RequestTooLarge => "invalid_request_error",
            Self::RateLimitExceeded | Self::InsufficientQuota => {
                if self == Self::InsufficientQuota {
                    "insufficient_quota"
                } else {
                    "requests"
                }
            }
            Self::ServerError
            | Self::BadGateway
            | Self::ServiceUnavailable
            | Self::GatewayTimeout => "server_error",
        }
    }

    /// The `code` field.
    pub fn code(self) -> Option<&'static str> {
        match self {
            Self::InvalidRequest | Self::UnknownUrl | Self::MethodNotAllowed => None,
            Self::ContextLengthExceeded => Some("context_length_exceeded"),
            Self::InvalidApiKey => Some("invalid_api_key"),
            Self::ModelNotFound => Some("model_not_found"),
            Self::RequestTooLarge => Some("request_too_large"),
            Self::RateLimitExceeded => Some("rate_limit_exceeded"),
            Self::InsufficientQuota => Some("insufficient_quota"),
            Self::ServerError
            | Self::BadGateway
            | Self::ServiceUnavailable
            | Self::GatewayTimeout => Some("server_error"),
        }
    }

    /// Whether retrying the same request later can succeed.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Self::RateLimitExceeded
                | Self::ServerError
                | Self::BadGateway
                | Self::ServiceUnavailable
                | Self::GatewayTimeout
        )
    }

    /// Best guess at the kind from a status and an error body's `code`, for a client that
    /// receives someone else's error.
    pub fn from_status_code(status: u16, code: Option<&str>) -> Self {
        match (status, code) {
            (429, Some("insufficient_quota")) => Self::InsufficientQuota,
            (429, _) => Self::RateLimitExceeded,
            (400, Some("context_length_exceeded")) => Self::ContextLengthExceeded,
            (401, _) | (403, _) => Self::InvalidApiKey,
            (404, Some("model_not_found")) => Self::ModelNotFound,
            (404, _) => Self::UnknownUrl,
            (405, _) => Self::MethodNotAllowed,
            (413, _) => Self::RequestTooLarge,
            (502, _) => Self::BadGateway,
            (503, _) => Self::ServiceUnavailable,
            (504, _) => Self::GatewayTimeout,
            (s, _) if s >= 500 => Self::ServerError,
            _ => Self::InvalidRequest,
        }
    }
}

/// An error ready to send: its kind, a message for people, and the offending parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ApiErrorKind,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    pub fn new(kind: ApiErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            param: None,
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: self.message.clone(),
                kind: self.kind.type_str().to_string(),
                param: self.param.clone(),
                code: self.kind.code().map(str::to_string),
            },
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings cannot fail; the fallback only keeps clippy honest.
        serde_json::to_vec(&self.body()).unwrap_or_else(|_| b"{\"error\":{}}".to_vec())
    }

    /// The error a server sends for a body that is not a valid chat request, naming the
    /// field serde complained about.
    pub fn from_json_error(e: &serde_json::Error) -> Self {
        let msg = e.to_string();
        let param = msg
            .split('`')
            .nth(1)
            .filter(|_| msg.starts_with("missing field") || msg.starts_with("unknown field"))
            .map(str::to_string);
        let mut err = Self::new(
            ApiErrorKind::InvalidRequest,
            format!("We could not parse the JSON body of your request: {msg}"),
        );
        err.param = param;
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_openai() {
        let e = ApiError::new(ApiErrorKind::RateLimitExceeded, "slow down");
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(v["error"]["type"], "requests");
        assert_eq!(e.status(), 429);
        assert!(ApiErrorKind::RateLimitExceeded.retryable());
        assert!(!ApiErrorKind::InsufficientQuota.retryable());
        assert_eq!(
            ApiErrorKind::from_status_code(429, Some("insufficient_quota")),
            ApiErrorKind::InsufficientQuota
        );
    }

    #[test]
    fn json_error_names_missing_field() {
        let e =
            serde_json::from_str::<crate::openai::ChatRequest>(r#"{"messages":[]}"#).unwrap_err();
        let api = ApiError::from_json_error(&e);
        assert_eq!(api.param.as_deref(), Some("model"));
        assert_eq!(api.status(), 400);
    }
}
