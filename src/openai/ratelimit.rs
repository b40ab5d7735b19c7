//! OpenAI's rate-limit vocabulary on the wire: the `x-ratelimit-*` header set, the duration
//! format of its resets, and `retry-after`/`retry-after-ms` on a 429, written and read in
//! one place so the mocks and the gateway announce limits byte for byte alike.

use std::fmt::Write as _;
use std::time::Duration;

use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Milliseconds to wait before retrying; clients (the OpenAI SDKs among them) prefer it to
/// the whole seconds of `retry-after`.
pub const RETRY_AFTER_MS_HEADER: &str = "retry-after-ms";

// Names built once: `HeaderName::from_static` validates its input on every call.
const RETRY_AFTER_MS: HeaderName = HeaderName::from_static(RETRY_AFTER_MS_HEADER);
const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
const REMAINING_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");

/// Longest wait a `retry-after` read is believed: an upstream asking for hours is broken,
/// and honouring it would stall a run.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// One per-minute limit as a client is told it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    pub limit: u32,
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
}

/// The `x-ratelimit-*` set: each half present only when that limit exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    pub requests: Option<BucketState>,
    pub tokens: Option<BucketState>,
}

impl RateLimitHeaders {
    pub fn write(&self, h: &mut HeaderMap) {
        if let Some(b) = &self.requests {
            put_bucket(h, [LIMIT_REQUESTS, REMAINING_REQUESTS, RESET_REQUESTS], b);
        }
        if let Some(b) = &self.tokens {
            put_bucket(h, [LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS], b);
        }
    }
}

fn put_bucket(h: &mut HeaderMap, [limit, remaining, reset]: [HeaderName; 3], b: &BucketState) {
    h.insert(limit, HeaderValue::from(b.limit));
    h.insert(remaining, HeaderValue::from(b.remaining));
    if let Ok(v) = HeaderValue::try_from(duration_text(b.reset)) {
        h.insert(reset, v);
    }
}

/// `retry-after` in whole seconds and `retry-after-ms`, both rounded up so a client that
/// obeys either is never early, and at least 1: a 0 would invite an immediate retry.
pub fn write_retry_after(h: &mut HeaderMap, wait: Duration) {
    let ms = wait.as_nanos().div_ceil(1_000_000).max(1);
    let secs = ms.div_ceil(1000);
    h.insert(RETRY_AFTER, HeaderValue::from(clamp_u64(secs)));
    h.insert(RETRY_AFTER_MS, HeaderValue::from(clamp_u64(ms)));
}

fn clamp_u64(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// The wait a response asks for: `retry-after-ms` (more precise) or else `retry-after` in
/// seconds; HTTP dates are ignored, negatives and junk too, and a wait is capped at an hour.
pub fn read_retry_after(h: &HeaderMap) -> Option<Duration> {
    let parse = |name: &str| -> Option<f64> {
        let v: f64 = h.get(name)?.to_str().ok()?.trim().parse().ok()?;
        (v.is_finite() && v >= 0.0).then_some(v)
    };
    let cap = MAX_RETRY_AFTER.as_secs_f64();
    if let Some(ms) = parse(RETRY_AFTER_MS_HEADER) {
        return Some(Duration::from_secs_f64((ms / 1000.0).min(cap)));
    }
    parse(RETRY_AFTER.as_str()).map(|s| Duration::from_secs_f64(s.min(cap)))
}

/// A duration as OpenAI writes `x-ratelimit-reset-*` and the waits in its messages (Go's
/// duration format at millisecond resolution): `0s`, `20ms`, `1.5s`, `59.999s`, `6m0s`,
/// `1h2m3.5s`. Rounded up to the millisecond, so a reset is never announced early.
pub fn duration_text(d: Duration) -> String {
    let ms = d.as_nanos().div_ceil(1_000_000);
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (hours, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (seconds, millis) = (rest / 1000, rest % 1000);
    let mut out = String::with_capacity(16);
    // Writing to a String cannot fail.
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{seconds}");
    if millis > 0 {
        let frac = format!("{millis:03}");
        let _ = write!(out, ".{}", frac.trim_end_matches('0'));
    }
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(ms: u64) -> String {
        duration_text(Duration::from_millis(ms))
    }

    #[test]
    fn durations_read_as_openai_writes_them() {
        assert_eq!(text(0), "0s");
        assert_eq!(text(20), "20ms");
        assert_eq!(text(999), "999ms");
        assert_eq!(text(1000), "1s");
        assert_eq!(text(1500), "1.5s");
        assert_eq!(text(1034), "1.034s");
        assert_eq!(text(8640), "8.64s");
        assert_eq!(text(59_999), "59.999s");
        assert_eq!(text(60_000), "1m0s");
        assert_eq!(text(360_000), "6m0s");
        assert_eq!(text(179_560), "2m59.56s");
        assert_eq!(text(3_600_000), "1h0m0s");
        assert_eq!(text(3_723_500), "1h2m3.5s");
        assert_eq!(text(90_000_000), "25h0m0s");
    }

    #[test]
    fn durations_round_up_to_the_millisecond() {
        assert_eq!(duration_text(Duration::from_nanos(1)), "1ms");
        assert_eq!(duration_text(Duration::from_micros(1_500_001)), "1.501s");
        assert_eq!(duration_text(Duration::from_micros(999_999)), "1s");
    }

    #[test]
    fn retry_after_rounds_up_and_is_never_zero() {
        for (wait, secs, ms) in [
            (Duration::ZERO, "1", "1"),
            (Duration::from_micros(200), "1", "1"),
            (Duration::from_millis(1000), "1", "1000"),
            (Duration::from_millis(1001), "2", "1001"),
            (Duration::from_millis(2500), "3", "2500"),
            (Duration::from_micros(2_500_100), "3", "2501"),
        ] {
            let mut h = HeaderMap::new();
            write_retry_after(&mut h, wait);
            assert_eq!(h["retry-after"], secs, "{wait:?}");
            assert_eq!(h["retry-after-ms"], ms, "{wait:?}");
            assert!(read_retry_after(&h).is_some_and(|d| d >= wait), "{wait:?}");
        }
    }

    #[test]
    fn reading_prefers_milliseconds_and_skips_junk() {
        let mut h = HeaderMap::new();
        assert_eq!(read_retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(read_retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(read_retry_after(&h), Some(Duration::from_millis(150)));
        h.insert("retry-after-ms", HeaderValue::from_static("soon"));
        assert_eq!(read_retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", HeaderValue::from_static("-3"));
        assert_eq!(read_retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("999999"));
        assert_eq!(read_retry_after(&h), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn the_header_set_writes_only_the_limits_that_exist() {
        let state = BucketState {
            limit: 60,
            remaining: 7,
            reset: Duration::from_millis(1500),
        };
        let mut h = HeaderMap::new();
        RateLimitHeaders {
            requests: Some(state),
            tokens: None,
        }
        .write(&mut h);
        assert_eq!(h["x-ratelimit-limit-requests"], "60");
        assert_eq!(h["x-ratelimit-remaining-requests"], "7");
        assert_eq!(h["x-ratelimit-reset-requests"], "1.5s");
        assert_eq!(h.len(), 3, "no token headers without a token limit");
        RateLimitHeaders {
            requests: None,
            tokens: Some(state),
        }
        .write(&mut h);
        assert_eq!(h["x-ratelimit-reset-tokens"], "1.5s");
        assert_eq!(h.len(), 6);
    }
}
