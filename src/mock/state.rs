//! What every request handler of one mock shares, and the guard that counts a request in
//! flight while it holds it.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use http::HeaderValue;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::cache::PrefixCache;
use super::inject::Injector;
use super::limits::RateLimiter;
use super::profile::Profile;
use super::stats::Counters;

/// Everything the request handlers of one mock share.
pub(crate) struct MockState {
    pub name: String,
    pub profile: Profile,
    pub fingerprint: String,
    pub upstream_header: HeaderValue,
    pub models_json: Bytes,
    /// Counts prompt tokens as a provider with the profile's vocabulary bills them.
    pub tokenizer: crate::tokenizer::Tokenizer,
    pub counters: Counters,
    pub injector: Injector,
    pub limiter: Option<RateLimiter>,
    /// The profile's batch slots (`capacity.max_concurrent`); requests queue for one.
    pub slots: Option<Arc<Semaphore>>,
    pub cache: Option<PrefixCache>,
    pub admin_token: Option<String>,
    /// Numbers requests: ids, and the per-request RNG seed.
    pub seq: AtomicU64,
    pub shutdown: watch::Receiver<bool>,
    /// Set on a fault proxy: answers come from this provider instead of the profile.
    pub forward: Option<super::provider::Forward>,
}

/// Resolves once shutdown has been asked for (or the handle is gone).
pub(crate) async fn stopping(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Counts a request as in flight until dropped (a stream drops it with its body), and holds
/// its batch slot as long.
pub(crate) struct InFlight(Arc<MockState>, Option<OwnedSemaphorePermit>);

impl InFlight {
    pub fn new(shared: Arc<MockState>) -> Self {
        shared.counters.in_flight.fetch_add(1, Relaxed);
        Self(shared, None)
    }

    pub fn count(&self) -> i64 {
        self.0.counters.in_flight.load(Relaxed)
    }

    pub fn hold(&mut self, slot: OwnedSemaphorePermit) {
        self.1 = Some(slot);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.counters.in_flight.fetch_sub(1, Relaxed);
    }
}
