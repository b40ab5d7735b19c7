//! Admission by tier: bounded slots (the gateway's in-flight limit, an upstream's
//! `max_concurrent`, a tier's or a key's concurrency) of which a share is reserved for the
//! highest-priority tier, an optional short bounded queue per tier, and the shed decision
//! that answers at once (429 or 503 with `x-gateway-shed`) instead of letting a request time
//! out. Every check is a compare-and-swap on one counter: admission stays cheap.
//!
//! # The rules
//!
//! - A bounded capacity of `n` slots reserves `round(n * reserved)` of them for the tier with
//!   the highest priority configured; every other tier may only fill the rest. The top tier
//!   may use all `n`.
//! - A request takes, in order, its key's slot, its tier's slot, then a gateway slot; the
//!   first refusal sheds it. Only the gateway slot may be waited for, in the tier's queue (at
//!   most `queue` waiters, each at most `queue_timeout`); the wait is part of its latency.
//! - An upstream's slots are taken per attempt: a saturated upstream is passed over like one
//!   with an open breaker, and a request whose every candidate was saturated is shed.
//! - Shed for a higher tier (reserved capacity, or a provider's 429 with the fallbacks kept
//!   for the top tier): 429 with `Retry-After` and `x-gateway-shed: tier`. Over a key's or
//!   tier's own concurrency: 429 with `x-gateway-shed: concurrency`. The top tier finding
//!   everything full: 503 with `x-gateway-shed: capacity`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::config::{Config, TierConfig};
use super::metrics::TierMetrics;

/// The header a shed response carries, saying why (`tier`, `concurrency`, `capacity`).
pub const SHED_HEADER: &str = "x-gateway-shed";

/// What a shed client is told to wait before trying again.
const SHED_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a request was shed, as written in [`SHED_HEADER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShedReason {
    /// The capacity left was reserved for a higher tier.
    Tier,
    /// The key or its tier already has its `max_concurrent` in flight.
    Concurrency,
    /// Everything is in use, reserved slots included.
    Capacity,
}

impl ShedReason {
    pub const ALL: [ShedReason; 3] = [Self::Tier, Self::Concurrency, Self::Capacity];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tier => "tier",
            Self::Concurrency => "concurrency",
            Self::Capacity => "capacity",
        }
    }

    /// 429 asks the client to come back; 503 says the gateway itself is full.
    pub fn status(self) -> u16 {
        match self {
            Self::Tier | Self::Concurrency => 429,
            Self::Capacity => 503,
        }
    }

    pub fn retry_after(self) -> Duration {
        SHED_RETRY_AFTER
    }
}

/// A bounded capacity with a reserve only the top tier may use.
#[derive(Debug)]
pub struct SlotPool {
    limit: u32,
    /// What the other tiers may fill: `limit` minus the reserve.
    open: u32,
    in_flight: AtomicU32,
    waiters: AtomicU32,
    freed: Notify,
}

impl SlotPool {
    pub fn new(limit: u32, reserved: f64) -> Arc<Self> {
        let reserve = ((f64::from(limit) * reserved).round() as u32).min(limit);
        Arc::new(Self {
            limit,
            open: limit - reserve,
            in_flight: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            freed: Notify::new(),
        })
    }

    /// A slot, if one this tier may use is free.
    pub fn try_take(self: &Arc<Self>, top: bool) -> Option<PoolSlot> {
        let cap = if top { self.limit } else { self.open };
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()
            .map(|_| PoolSlot(Arc::clone(self)))
    }

    /// Slots in use now.
    #[cfg(test)]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Waits in a queue of at most `cap` waiters for a slot, until `until`.
    async fn wait_for(self: &Arc<Self>, top: bool, cap: u32, until: Instant) -> Option<PoolSlot> {
        let joined = self
            .waiters
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok();
        if !joined {
            return None;
        }
        // Leaves the queue however the wait ends, a client hanging up included.
        let _waiting = Waiting(&self.waiters);
        loop {
            let freed = self.freed.notified();
            if let Some(s) = self.try_take(top) {
                return Some(s);
            }
            if tokio::time::timeout_at(until, freed).await.is_err() {
                return self.try_take(top);
            }
        }
    }
}

/// One place in a queue, given up when dropped.
struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One taken slot, given back when dropped (when the response body is done).
#[derive(Debug)]
pub struct PoolSlot(Arc<SlotPool>);

impl Drop for PoolSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.0.waiters.load(Ordering::Acquire) > 0 {
            self.0.freed.notify_one();
        }
    }
}

/// A tier as admission uses it.
#[derive(Debug)]
pub struct TierState {
    pub name: String,
    /// Holds the highest priority configured: may use reserved capacity and fallbacks first.
    pub top: bool,
    slots: Option<Arc<SlotPool>>,
    queue: u32,
    queue_timeout: Duration,
    pub metrics: TierMetrics,
}

/// Everything a request holds while it is in flight; dropping it gives all of it back.
#[derive(Debug, Default)]
pub struct Admitted {
    /// Key, tier, gateway and upstream: at most four, held inline so admitting a request
    /// allocates nothing.
    slots: [Option<PoolSlot>; 4],
    gauge: Option<Gauge>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(g) = &self.gauge {
            g.dec();
        }
    }
}

impl Admitted {
    /// Holds one more slot (an upstream's) for as long as the rest.
    pub fn hold(&mut self, slot: PoolSlot) {
        if let Some(free) = self.slots.iter_mut().find(|s| s.is_none()) {
            *free = Some(slot);
        }
    }
}

/// A request refused by admission.
#[derive(Debug, Clone)]
pub struct Shed {
    pub reason: ShedReason,
    pub message: String,
}

/// The gateway's admission: tiers, the gateway-wide limit, the per-upstream slots.
#[derive(Debug)]
pub struct Admission {
    pub enabled: bool,
    gateway: Option<Arc<SlotPool>>,
    pub tiers: Vec<TierState>,
    /// Index of the state for requests without a key (an open gateway): the top tier's
    /// standing, counted under `none`.
    pub anonymous: usize,
    /// The top tier's fallbacks first when a provider answers 429.
    pub throttled_by_priority: bool,
}

impl Admission {
    pub fn new(config: &Config, metrics: impl Fn(&str) -> TierMetrics) -> Self {
        let a = &config.admission;
        let top = config.tiers.iter().map(|t| t.priority).max().unwrap_or(0);
        let state = |t: &TierConfig, is_top: bool| TierState {
            name: t.name.clone(),
            top: is_top,
            slots: a
                .enabled
                .then_some(t.max_concurrent)
                .flatten()
                .map(|n| SlotPool::new(n.get(), 0.0)),
            queue: t.queue,
            queue_timeout: t.queue_timeout,
            metrics: metrics(&t.name),
        };
        let mut tiers: Vec<TierState> = config
            .tiers
            .iter()
            .map(|t| state(t, t.priority == top))
            .collect();
        let mut open = TierConfig::builtin("none");
        open.priority = top;
        tiers.push(state(&open, true));
        Self {
            enabled: a.enabled,
            gateway: a
                .enabled
                .then_some(a.max_in_flight)
                .flatten()
                .map(|n| SlotPool::new(n.get(), a.reserved)),
            anonymous: tiers.len() - 1,
            tiers,
            throttled_by_priority: a.enabled && a.throttled_by_priority,
        }
    }

    /// The index of the tier named `name` (keys are checked against the tiers at load).
    pub fn tier_index(&self, name: &str) -> usize {
        self.tiers
            .iter()
            .position(|t| t.name == name)
            .unwrap_or(self.anonymous)
    }

    /// The slots of an upstream with `limit` slots, under this admission's reserve.
    pub fn upstream_slots(config: &Config, limit: Option<u32>) -> Option<Arc<SlotPool>> {
        let a = &config.admission;
        let limit = limit.or(a.upstream_max_concurrent.map(|n| n.get()))?;
        a.enabled.then(|| SlotPool::new(limit, a.reserved))
    }

    /// Admits a request of tier `tier` holding `key` (the key's own concurrency), or sheds it.
    pub async fn admit(&self, tier: usize, key: Option<&Arc<SlotPool>>) -> Result<Admitted, Shed> {
        if !self.enabled {
            return Ok(Admitted::default());
        }
        let Some(t) = self.tiers.get(tier) else {
            return Ok(Admitted::default());
        };
        t.metrics.requests.inc();
        let mut held = Admitted::default();
        if let Some(k) = key {
            match k.try_take(true) {
                Some(s) => held.hold(s),
                None => {
                    return Err(t.shed(
                        ShedReason::Concurrency,
                        format!(
                            "This key already has {} requests in flight, the most its tier `{}` allows.",
                            k.limit(),
                            t.name
                        ),
                    ));
                }
            }
        }
        if let Some(slots) = &t.slots {
            match slots.try_take(true) {
                Some(s) => held.hold(s),
                None => {
                    return Err(t.shed(
                        ShedReason::Concurrency,
                        format!(
                            "Tier `{}` already has {} requests in flight, its max_concurrent.",
                            t.name,
                            slots.limit()
                        ),
                    ));
                }
            }
        }
        if let Some(g) = &self.gateway {
            let slot = match g.try_take(t.top) {
                Some(s) => Some(s),
                None if t.queue > 0 => {
                    let started = Instant::now();
                    let s = g.wait_for(t.top, t.queue, started + t.queue_timeout).await;
                    t.metrics
                        .queue_wait
                        .observe(started.elapsed().as_secs_f64());
                    s
                }
                None => None,
            };
            match slot {
                Some(s) => held.hold(s),
                None if t.top => {
                    return Err(t.shed(
                        ShedReason::Capacity,
                        format!(
                            "The gateway is at capacity ({} requests in flight); try again shortly.",
                            g.limit()
                        ),
                    ));
                }
                None => {
                    return Err(t.shed(
                        ShedReason::Tier,
                        format!(
                            "The gateway is saturated and the capacity left is reserved for \
                             higher tiers; requests of tier `{}` are shed first. Try again shortly.",
                            t.name
                        ),
                    ));
                }
            }
        }
        t.metrics.in_flight.inc();
        held.gauge = Some(t.metrics.in_flight.clone());
        Ok(held)
    }
}

impl TierState {
    /// Counts and builds a shed of this tier.
    /// Counts a shed under its reason; the counters are in `ShedReason::ALL`'s order (a test
    /// holds the two lists together).
    pub fn count_shed(&self, reason: ShedReason) {
        self.metrics.shed[reason as usize].inc();
    }

    pub fn shed(&self, reason: ShedReason, message: String) -> Shed {
        self.count_shed(reason);
        Shed { reason, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shed_reasons_are_counted_under_their_own_label() {
        let names = ShedReason::ALL.map(ShedReason::as_str);
        assert_eq!(names, crate::gateway::metrics::SHED_REASONS);
        for (i, r) in ShedReason::ALL.iter().enumerate() {
            assert_eq!(
                *r as usize, i,
                "count_shed indexes the counters by the reason"
            );
        }
    }

    #[test]
    fn the_reserve_is_for_the_top_tier_only() {
        let s = SlotPool::new(20, 0.5);
        let low: Vec<PoolSlot> = (0..20).filter_map(|_| s.try_take(false)).collect();
        assert_eq!(low.len(), 10);
        let top: Vec<PoolSlot> = (0..20).filter_map(|_| s.try_take(true)).collect();
        assert_eq!(top.len(), 10);
        assert_eq!(s.in_flight(), 20);
        drop(low);
        assert_eq!(s.in_flight(), 10);
        assert!(
            s.try_take(false).is_none(),
            "the top tier holds the open half"
        );
        drop(top);
        assert!(s.try_take(false).is_some());
    }

    #[tokio::test]
    async fn a_queue_is_bounded_and_its_wait_ends() {
        let s = SlotPool::new(1, 0.0);
        let held = s.try_take(false);
        assert!(held.is_some());
        let until = Instant::now() + Duration::from_millis(50);
        assert!(s.wait_for(false, 0, until).await.is_none(), "no room");
        assert!(s.wait_for(false, 1, until).await.is_none(), "timed out");
        let s2 = Arc::clone(&s);
        let waiter = tokio::spawn(async move {
            s2.wait_for(false, 1, Instant::now() + Duration::from_secs(10))
                .await
                .is_some()
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert!(waiter.await.unwrap());
    }

    /// A flood cannot grow the queue: past its cap a request is refused without waiting, so
    /// what the gateway holds for waiters is bounded whatever arrives.
    #[tokio::test]
    async fn a_flood_of_waiters_is_capped_at_the_queue_length() {
        let s = SlotPool::new(1, 0.0);
        let _held = s.try_take(false);
        let until = Instant::now() + Duration::from_secs(5);
        let flood: Vec<_> = (0..50)
            .map(|_| {
                let s = Arc::clone(&s);
                tokio::spawn(async move { s.wait_for(false, 8, until).await.is_some() })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(s.waiters.load(Ordering::Acquire), 8);
        let refused = flood.iter().filter(|h| h.is_finished()).count();
        assert_eq!(refused, 42, "refused at once, not queued");
        for h in flood {
            h.abort();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            s.waiters.load(Ordering::Acquire),
            0,
            "waiters that went away left the queue"
        );
    }
}
