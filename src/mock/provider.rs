//! Where a fault proxy forwards to: the provider's URL (checked), the pooled client that
//! reaches it over HTTP or HTTPS, and the key it sends there.

use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use http::{HeaderName, HeaderValue};

use crate::api::Api;
use crate::config::Secret;
use crate::tls::{ClientSettings, ClientTls, TlsError};

/// Where a proxy forwards to, and how.
pub struct Forward {
    /// The provider's base URL without a trailing slash (`https://api.openai.com`); the
    /// request's path is appended as it came.
    pub(crate) base: String,
    pub(crate) client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The provider key, as a bearer token and as Anthropic's `x-api-key` (built once,
    /// marked sensitive): it replaces whichever the client sent.
    pub(crate) key: Option<ProviderKey>,
}

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forward")
            .field("base", &self.base)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Why a proxy could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("the provider key cannot be sent as an HTTP header value")]
    Key,
    #[error("cannot forward to `{url}`: {reason}")]
    Url { url: String, reason: String },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Why `url` cannot be forwarded to, if it cannot: http(s) with a host and no credentials.
pub fn check_url(url: &str) -> Result<(), String> {
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| format!("`{url}` is not a URL ({e})"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!("`{url}` must start with http:// or https://"));
    }
    let Some(auth) = uri.authority().filter(|a| !a.host().is_empty()) else {
        return Err(format!("`{url}` has no host"));
    };
    if auth.as_str().contains('@') {
        return Err(format!(
            "`{url}`: credentials in a URL are refused (they would end up in logs); give the \
             key with `api_key`"
        ));
    }
    Ok(())
}

/// A provider key ready to send either way.
pub(crate) struct ProviderKey {
    pub bearer: (HeaderName, HeaderValue),
    pub x_api_key: (HeaderName, HeaderValue),
}

impl Forward {
    pub fn new(url: &str, key: Option<Secret>, tls: &ClientSettings) -> Result<Self, ForwardError> {
        check_url(url).map_err(|reason| ForwardError::Url {
            url: url.to_string(),
            reason,
        })?;
        let key = match key {
            None => None,
            Some(k) => {
                let first = |api: Api| {
                    api.headers(Some(k.expose()))
                        .ok()
                        .and_then(|h| h.into_iter().next())
                        .ok_or(ForwardError::Key)
                };
                Some(ProviderKey {
                    bearer: first(Api::Chat)?,
                    x_api_key: first(Api::Messages)?,
                })
            }
        };
        let tls = ClientTls::new(tls)?;
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(crate::net::CLIENT_POOL_IDLE)
            .build(tls.connector(http));
        Ok(Self {
            base: url.trim_end_matches('/').to_string(),
            client,
            key,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_credentials_or_no_scheme_is_refused() {
        let tls = ClientSettings::default();
        assert!(Forward::new("https://api.example.com/", None, &tls).is_ok());
        for bad in ["ftp://x", "https://user:key@api.example.com", "not a url"] {
            assert!(Forward::new(bad, None, &tls).is_err(), "{bad}");
        }
        let f = Forward::new(
            "https://api.example.com/",
            Some(Secret::new("sk-live-123")),
            &tls,
        )
        .unwrap();
        assert!(!format!("{f:?}").contains("sk-live"), "{f:?}");
    }
}
