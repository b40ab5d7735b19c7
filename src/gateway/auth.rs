//! Client authentication: the Bearer key in `Authorization`, compared in constant time
//! against every configured key. Keys are never logged, echoed or put in errors.

use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::openai::bearer_token;

use std::sync::Arc;

use super::admission::SlotPool;
use super::config::KeyConfig;
use super::error::ProxyError;
use super::ratelimit::KeyLimiter;

#[derive(Debug)]
pub struct KeyEntry {
    key: Vec<u8>,
    /// The tier's index in admission.
    pub tier_index: usize,
    pub limiter: KeyLimiter,
    /// The key's own `max_concurrent`, when it has one and admission is on.
    pub concurrency: Option<Arc<SlotPool>>,
}

#[derive(Debug)]
pub struct Keys {
    entries: Vec<KeyEntry>,
}

impl Keys {
    /// `tier_index` finds a tier's admission index by name; `limits` says whether key
    /// concurrency limits apply (admission on).
    pub fn new(keys: &[KeyConfig], tier_index: impl Fn(&str) -> usize, limits: bool) -> Self {
        Self {
            entries: keys
                .iter()
                .map(|k| KeyEntry {
                    key: k.key.expose().as_bytes().to_vec(),
                    tier_index: tier_index(&k.tier),
                    limiter: KeyLimiter::new(k.rpm, k.tpm),
                    concurrency: k
                        .max_concurrent
                        .filter(|_| limits)
                        .map(|n| SlotPool::new(n.get(), 0.0)),
                })
                .collect(),
        }
    }

    /// The caller's key entry; `Ok(None)` when the gateway has no keys (open access).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<&KeyEntry>, ProxyError> {
        if self.entries.is_empty() {
            return Ok(None);
        }
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        let token = match values.next() {
            Some(value) => {
                if values.next().is_some() {
                    return Err(ProxyError::Unauthorized(
                        "Multiple Authorization headers; send exactly one.",
                    ));
                }
                bearer_token(value.as_bytes()).ok_or(ProxyError::Unauthorized(
                    "Malformed Authorization header; expected 'Bearer YOUR_KEY'.",
                ))?
            }
            // Anthropic's clients send the same keys as `x-api-key`.
            None => crate::api::anthropic_key(headers)
                .map(str::as_bytes)
                .ok_or(ProxyError::Unauthorized(
                    "You didn't provide an API key. Provide it in the Authorization header as \
                     'Authorization: Bearer YOUR_KEY' (or as `x-api-key`).",
                ))?,
        };
        // Compare against every key without stopping early, so timing does not reveal how
        // much of a guess matched or which key it resembled.
        let mut found = None;
        for (i, e) in self.entries.iter().enumerate() {
            if bool::from(e.key.as_slice().ct_eq(token)) {
                found = Some(i);
            }
        }
        match found {
            Some(i) => Ok(self.entries.get(i)),
            None => Err(ProxyError::Unauthorized(
                "Incorrect API key provided. Check the key and try again.",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn keys() -> Keys {
        Keys::new(
            &[KeyConfig {
                key: crate::config::Secret::new("gk-1"),
                tier: "pro".into(),
                rpm: None,
                tpm: None,
                max_concurrent: None,
            }],
            // Tier indexes as admission numbers them: pro is 1 here.
            |t| usize::from(t == "pro"),
            true,
        )
    }

    #[test]
    fn rejects_missing_wrong_and_repeated() {
        let k = keys();
        let mut h = HeaderMap::new();
        assert!(k.authenticate(&h).is_err());
        h.insert("authorization", HeaderValue::from_static("Bearer gk-2"));
        let e = k.authenticate(&h).unwrap_err();
        assert!(!e.to_string().contains("gk-2"));
        h.insert("authorization", HeaderValue::from_static("bearer gk-1"));
        assert_eq!(
            k.authenticate(&h).unwrap().unwrap().tier_index,
            1,
            "the pro tier"
        );
        h.append("authorization", HeaderValue::from_static("Bearer gk-1"));
        assert!(k.authenticate(&h).is_err());
    }

    #[test]
    fn anthropic_clients_key_is_read_from_x_api_key_and_a_bearer_token_wins() {
        let k = keys();
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static("gk-1"));
        assert!(k.authenticate(&h).unwrap().is_some());
        h.insert("x-api-key", HeaderValue::from_static("gk-2"));
        assert!(
            k.authenticate(&h).is_err(),
            "a wrong key is wrong in either header"
        );
        h.insert("authorization", HeaderValue::from_static("Bearer gk-1"));
        assert!(
            k.authenticate(&h).unwrap().is_some(),
            "Authorization is read first"
        );
    }
}
