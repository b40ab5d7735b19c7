//! `ControlClient`: drives the control API of a mock running in another process (how a
//! scenario engine breaks a provider on schedule).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use super::control::{Added, PREFIX, Removed, Reset, TOKEN_HEADER};
use super::fault::FaultSpec;
use super::inject::{FaultEntry, FaultId};
use super::stats::MockStats;
use crate::tls::{ClientTls, TlsError};

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ANSWER: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("`{0}` is not a mock base URL like http://127.0.0.1:41234")]
    InvalidUrl(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("control request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("control request to {url} timed out after {TIMEOUT:?}")]
    Timeout { url: String },
    #[error("control request to {url} answered {status}: {body}")]
    Status {
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("control answer from {url} is not what was expected: {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A client for one mock's `/__gauntlet/` API.
#[derive(Clone)]
pub struct ControlClient {
    base: String,
    token: Option<String>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl ControlClient {
    /// `base_url` is the mock's URL as `gauntlet mock` prints it; an `https://` one is
    /// trusted by the system's roots.
    pub fn new(base_url: &str, token: Option<String>) -> Result<Self, ControlError> {
        Self::with_tls(base_url, token, &ClientTls::system()?)
    }

    /// Like `new`, trusting what `tls` trusts (a private CA, a client certificate).
    pub fn with_tls(
        base_url: &str,
        token: Option<String>,
        tls: &ClientTls,
    ) -> Result<Self, ControlError> {
        let base = base_url.trim_end_matches('/').to_string();
        let uri: Uri = base
            .parse()
            .map_err(|_| ControlError::InvalidUrl(base_url.to_string()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(ControlError::InvalidUrl(base_url.to_string()));
        }
        // Control calls come seconds apart (a fault's start, then its end): idle gaps there
        // are the rule, not the exception.
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(crate::net::CLIENT_POOL_IDLE)
            .build(tls.connector(http));
        Ok(Self {
            base,
            token,
            client,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ControlError> {
        let url = format!("{}{PREFIX}{path}", self.base);
        let http_err = |source: Box<dyn std::error::Error + Send + Sync>| ControlError::Http {
            url: url.clone(),
            source,
        };
        let mut req = Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            req = req.header(TOKEN_HEADER, t);
        }
        if body.is_some() {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| http_err(Box::new(e)))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| http_err(Box::new(e)))?;
            let status = resp.status();
            let bytes = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(http_err)?
                .to_bytes();
            Ok::<_, ControlError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| ControlError::Timeout { url: url.clone() })??;
        if !status.is_success() {
            return Err(ControlError::Status {
                url,
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|source| ControlError::Decode { url, source })
    }

    pub async fn add_fault(&self, spec: &FaultSpec) -> Result<FaultId, ControlError> {
        let body = serde_json::to_vec(&spec.to_raw()).map_err(|source| ControlError::Decode {
            url: self.base.clone(),
            source,
        })?;
        let added: Added = self.call(Method::POST, "faults", Some(body)).await?;
        Ok(added.id)
    }

    /// Whether the fault was active.
    pub async fn remove_fault(&self, id: FaultId) -> Result<bool, ControlError> {
        match self
            .call::<Removed>(Method::DELETE, &format!("faults/{id}"), None)
            .await
        {
            Ok(r) => Ok(r.removed > 0),
            Err(ControlError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes every fault; returns how many there were.
    pub async fn clear_faults(&self) -> Result<usize, ControlError> {
        let r: Removed = self.call(Method::DELETE, "faults", None).await?;
        Ok(r.removed)
    }

    /// Clears every fault and zeroes the counters (requests in flight stay counted until they
    /// end); returns how many faults there were.
    pub async fn reset(&self) -> Result<usize, ControlError> {
        let r: Reset = self.call(Method::POST, "reset", None).await?;
        Ok(r.faults_cleared)
    }

    pub async fn faults(&self) -> Result<Vec<FaultEntry>, ControlError> {
        self.call(Method::GET, "faults", None).await
    }

    pub async fn stats(&self) -> Result<MockStats, ControlError> {
        self.call(Method::GET, "stats", None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A control API that answers one request per connection and then, like a server whose
    /// idle cutoff has come, reads the next request and closes without answering.
    async fn one_answer_per_connection() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let body = r#"{"upstream":"x","requests_total":7,"in_flight":0,"by_model":{},"by_outcome":{},"faults_injected":{},"prompt_tokens":0,"completion_tokens":0}"#;
                    let mut buf = vec![0u8; 4096];
                    let mut answered = false;
                    loop {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) if answered => return,
                            Ok(_) => {
                                let head = format!(
                                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                                    body.len()
                                );
                                let _ = tcp.write_all(head.as_bytes()).await;
                                let _ = tcp.write_all(body.as_bytes()).await;
                                answered = true;
                            }
                        }
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_call_after_an_idle_gap_does_not_reuse_a_connection_the_server_may_be_closing() {
        let control = ControlClient::new(&one_answer_per_connection().await, None).unwrap();
        assert_eq!(control.stats().await.unwrap().requests_total, 7);
        // Longer than the pool keeps an idle connection: the next call opens a new one.
        tokio::time::sleep(crate::net::CLIENT_POOL_IDLE + Duration::from_millis(1500)).await;
        let again = control.stats().await;
        assert!(again.is_ok(), "{again:?}");
    }
}
