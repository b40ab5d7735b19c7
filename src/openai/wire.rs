//! Names and small parsers of the HTTP wire that the mocks, the gateway and the load client
//! share: the headers that say who served a response, and the Bearer credential.

/// Header every mock response carries with the upstream's name.
pub const UPSTREAM_HEADER: &str = "x-gauntlet-upstream";
/// Headers the reference gateway adds: which upstream served, and how many attempts it took.
pub const GATEWAY_UPSTREAM_HEADER: &str = "x-gateway-upstream";
pub const GATEWAY_ATTEMPTS_HEADER: &str = "x-gateway-attempts";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 9110 §11.1) and surrounding whitespace is ignored, as OpenAI's own front accepts; a
/// token with whitespace inside is refused rather than cut, so `Bearer a b` never means `a`.
pub fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let v = value.trim_ascii();
    let split = v.iter().position(u8::is_ascii_whitespace)?;
    let (scheme, rest) = v.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty() && !token.iter().any(u8::is_ascii_whitespace)).then_some(token)
}

/// The Bearer token of a request's first `Authorization` header, as text.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?;
    std::str::from_utf8(bearer_token(value.as_bytes())?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(b"Bearer gk-1"), Some(&b"gk-1"[..]));
        assert_eq!(bearer_token(b"bearer gk-1"), Some(&b"gk-1"[..]));
        assert_eq!(bearer_token(b"BEARER gk-1"), Some(&b"gk-1"[..]));
        assert_eq!(bearer_token(b"bEaReR gk-1"), Some(&b"gk-1"[..]));
    }

    #[test]
    fn bearer_ignores_extra_spaces_and_tabs_around_the_parts() {
        assert_eq!(bearer_token(b"  Bearer \t gk-1  "), Some(&b"gk-1"[..]));
        assert_eq!(bearer_token(b"Bearer\tgk-1"), Some(&b"gk-1"[..]));
        assert_eq!(
            bearer_token(b"Bearer    sk-a.b_c=="),
            Some(&b"sk-a.b_c=="[..])
        );
    }

    #[test]
    fn bearer_refuses_empty_and_missing_tokens() {
        assert_eq!(bearer_token(b""), None);
        assert_eq!(bearer_token(b"   "), None);
        assert_eq!(bearer_token(b"Bearer"), None);
        assert_eq!(bearer_token(b"Bearer    "), None);
        assert_eq!(bearer_token(b"Bearer a b"), None, "never cut at a space");
    }

    #[test]
    fn bearer_refuses_other_schemes() {
        assert_eq!(bearer_token(b"Basic Z2s6MQ=="), None);
        assert_eq!(bearer_token(b"Token gk-1"), None);
        assert_eq!(bearer_token(b"Bearerish gk-1"), None);
        assert_eq!(bearer_token(b"gk-1"), None, "a bare key has no scheme");
    }

    #[test]
    fn bearer_reads_the_header_map() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", HeaderValue::from_static("bearer  sk-x "));
        assert_eq!(bearer(&h), Some("sk-x"));
        h.insert("authorization", HeaderValue::from_static("Basic sk-x"));
        assert_eq!(bearer(&h), None);
    }
}
