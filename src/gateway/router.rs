//! Routing one request: a weighted pick among the route's targets, then its fallback chain
//! (then the remaining targets), skipping upstreams whose breaker is open; retries with
//! exponential backoff and full jitter, honouring upstream `Retry-After`, within the retry
//! budget and the request's total deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::RngExt;
use tokio::time::Instant;

use super::admission::{PoolSlot, ShedReason};
use super::breaker::Permit;
use super::budget::RetryBudget;
use super::config::{Config, RetryConfig, Target, Timeouts, UpstreamApi};
use super::error::{ProxyError, describe};
use super::metrics::{Metrics, RouteMetrics};
use super::upstream::{self, AttemptOutcome, HttpClient, Reply, Upstream, UpstreamBody, Wants};

/// One hop of a route: an upstream and the model name it is sent.
#[derive(Debug, Clone)]
struct Hop {
    upstream: usize,
    weight: u32,
    model: Option<String>,
}

#[derive(Debug)]
pub struct Route {
    pub model: String,
    targets: Vec<Hop>,
    fallbacks: Vec<Hop>,
    timeouts: Timeouts,
    client: HttpClient,
    budget: RetryBudget,
    pub metrics: RouteMetrics,
    /// Some upstream of the route has an embeddings endpoint.
    embeddings: bool,
}

/// A request that was answered by an upstream (successfully or with its own 4xx).
pub struct Served {
    pub reply: Reply,
    pub upstream: usize,
    pub attempts: u32,
    /// The upstream's slot, held until the response body is done.
    pub slot: Option<PoolSlot>,
}

/// How a request stands against others when capacity is short.
#[derive(Debug, Clone, Copy, Default)]
pub struct Priority {
    /// Of the top tier: may use reserved slots.
    pub top: bool,
    /// A provider's 429 ends the request (shed) instead of moving on to the fallbacks,
    /// which are kept for the top tier.
    pub yield_on_429: bool,
}

/// A request no upstream served, with the attempts it cost.
pub struct Unserved {
    pub error: ProxyError,
    pub attempts: u32,
}

#[derive(Debug)]
pub struct Router {
    pub upstreams: Vec<Arc<Upstream>>,
    pub routes: HashMap<String, Arc<Route>>,
    /// Route names in configuration order, for `/v1/models`.
    pub order: Vec<String>,
    retry: RetryConfig,
}

impl Router {
    pub fn new(
        config: &Config,
        upstreams: Vec<Arc<Upstream>>,
        metrics: &Metrics,
        tls: &crate::tls::ClientTls,
    ) -> Self {
        let index: HashMap<&str, usize> = upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| (u.name.as_str(), i))
            .collect();
        let names: Vec<String> = upstreams.iter().map(|u| u.name.clone()).collect();
        let mut clients: HashMap<Duration, HttpClient> = HashMap::new();
        let mut routes = HashMap::new();
        let mut order = Vec::new();
        for r in &config.routes {
            let client = clients
                .entry(r.timeouts.connect)
                .or_insert_with(|| upstream::client(r.timeouts.connect, tls))
                .clone();
            let hops = |ts: &[Target]| -> Vec<Hop> {
                ts.iter()
                    .filter_map(|t| {
                        Some(Hop {
                            upstream: *index.get(t.upstream.as_str())?,
                            weight: t.weight.get(),
                            model: t.model.clone(),
                        })
                    })
                    .collect()
            };
            let (targets, fallbacks) = (hops(&r.targets), hops(&r.fallbacks));
            let embeddings = targets
                .iter()
                .chain(&fallbacks)
                .any(|h| upstreams[h.upstream].uri(Wants::Embeddings).is_some());
            let route = Route {
                model: r.model.clone(),
                targets,
                fallbacks,
                timeouts: r.timeouts,
                client,
                budget: RetryBudget::new(&config.retry),
                metrics: metrics.route(&r.model, &names),
                embeddings,
            };
            order.push(r.model.clone());
            routes.insert(r.model.clone(), Arc::new(route));
        }
        Self {
            upstreams,
            routes,
            order,
            retry: config.retry.clone(),
        }
    }

    pub fn route(&self, model: &str) -> Option<&Arc<Route>> {
        self.routes.get(model)
    }

    /// Serves one request wanting `wants` on `route`. `body` is the client's JSON (for chat,
    /// the chat request it asks for), forwarded unchanged unless a hop renames the model or
    /// speaks another API.
    pub async fn serve(
        &self,
        route: &Route,
        body: Bytes,
        wants: Wants,
        arrived: Instant,
        priority: Priority,
    ) -> Result<Served, Unserved> {
        let mut dispatch = Dispatch::new(self, route, body, wants, arrived);
        dispatch.priority = priority;
        let why = loop {
            let (i, permit) = match dispatch.next_candidate().await {
                Ok(candidate) => candidate,
                Err(why) => break why,
            };
            match dispatch.try_once(i, permit).await {
                Ok(Some(served)) => return Ok(served),
                Ok(None) => {}
                Err(why) => break why,
            }
        };
        Err(dispatch.give_up(why))
    }

    /// The picked target (weighted, among those whose breaker admits traffic), then the
    /// fallbacks in order, then the other targets.
    fn chain(&self, route: &Route, now: Instant) -> Vec<Hop> {
        let now = now.into_std();
        let available: Vec<&Hop> = route
            .targets
            .iter()
            .filter(|h| self.upstreams[h.upstream].breaker.available(now))
            .collect();
        let pool: Vec<&Hop> = if available.is_empty() {
            route.targets.iter().collect()
        } else {
            available
        };
        let total: u64 = pool.iter().map(|h| u64::from(h.weight)).sum();
        let mut chain = Vec::with_capacity(route.targets.len() + route.fallbacks.len());
        let mut pick = 0usize;
        if total > 0 && pool.len() > 1 {
            let mut r = rand::rng().random_range(0..total);
            for (i, h) in pool.iter().enumerate() {
                let w = u64::from(h.weight);
                if r < w {
                    pick = i;
                    break;
                }
                r -= w;
            }
        }
        let picked = pool.get(pick).map(|h| (*h).clone());
        if let Some(p) = &picked {
            chain.push(p.clone());
        }
        chain.extend(route.fallbacks.iter().cloned());
        for t in &route.targets {
            let already = chain
                .iter()
                .any(|c| c.upstream == t.upstream && c.model == t.model);
            if !already {
                chain.push(t.clone());
            }
        }
        chain
    }
}

/// Why a request ends without an answer.
#[derive(Debug, Clone, Copy)]
enum GiveUp {
    /// Every candidate failed, was skipped, or the attempts or retry budget ran out (503).
    Unavailable,
    /// The request's own deadline ran out (504).
    Deadline,
    /// A provider throttled and the fallbacks are kept for the top tier (429, shed).
    Yield,
}

/// What may still be done with one candidate of the chain.
#[derive(Debug, Clone, Copy, Default)]
struct Standing {
    /// Failed in a way that retrying the same upstream cannot mend.
    dead: bool,
    /// The upstream asked (`Retry-After`) not to be tried again before this.
    not_before: Option<Instant>,
}

/// One request on its way through a route: walks the candidate chain in rounds, backing off
/// between rounds, until an upstream answers or there is nothing left worth trying.
struct Dispatch<'r> {
    router: &'r Router,
    route: &'r Route,
    wants: Wants,
    deadline: Instant,
    chain: Vec<Hop>,
    /// Same order as `chain`.
    standing: Vec<Standing>,
    /// The client's body, and a copy per model a hop renames it to and per API an upstream
    /// speaks: each made once, however many attempts send it.
    bodies: Vec<(Option<String>, UpstreamApi, UpstreamBody)>,
    /// The last reason each upstream was passed over, for the error.
    tried: Vec<(String, String)>,
    attempts: u32,
    first_upstream: Option<usize>,
    /// The next candidate of this round.
    cursor: usize,
    round: u32,
    /// Whether this round sent anything: a round that did not will not do better again.
    attempted: bool,
    priority: Priority,
    /// Some candidate was passed over because its slots were full for this tier.
    saturated: bool,
    /// The slot of the candidate about to be tried.
    slot: Option<PoolSlot>,
}

impl<'r> Dispatch<'r> {
    fn new(
        router: &'r Router,
        route: &'r Route,
        body: Bytes,
        wants: Wants,
        arrived: Instant,
    ) -> Self {
        let now = Instant::now();
        route.budget.record_request(now.into_std());
        let chain = router.chain(route, now);
        Self {
            router,
            route,
            wants,
            deadline: arrived + route.timeouts.total,
            standing: vec![Standing::default(); chain.len()],
            chain,
            bodies: vec![(
                None,
                UpstreamApi::Chat,
                UpstreamBody {
                    body,
                    include_usage: false,
                },
            )],
            tried: Vec::new(),
            attempts: 0,
            first_upstream: None,
            cursor: 0,
            round: 0,
            attempted: false,
            priority: Priority::default(),
            saturated: false,
            slot: None,
        }
    }

    fn note(&mut self, name: &str, why: String) {
        match self.tried.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = why,
            None => self.tried.push((name.to_string(), why)),
        }
    }

    /// The next candidate to send to, with its breaker's permit; waits for a `Retry-After`
    /// it must honour, and for the backoff when a round ends.
    async fn next_candidate(&mut self) -> Result<(usize, Permit), GiveUp> {
        let router = self.router;
        loop {
            if self.attempts >= router.retry.max_attempts {
                return Err(GiveUp::Unavailable);
            }
            if self.cursor == self.chain.len() {
                if !self.attempted {
                    return Err(GiveUp::Unavailable);
                }
                self.round += 1;
                self.cursor = 0;
                self.attempted = false;
                self.backoff().await?;
                continue;
            }
            let i = self.cursor;
            self.cursor += 1;
            let standing = self.standing[i];
            if standing.dead {
                continue;
            }
            let up = &router.upstreams[self.chain[i].upstream];
            if up.uri(self.wants).is_none() {
                self.standing[i].dead = true;
                self.note(&up.name, "its API has no embeddings endpoint".into());
                continue;
            }
            if let Some(t) = standing.not_before {
                if t >= self.deadline {
                    continue;
                }
                tokio::time::sleep_until(t).await;
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Err(GiveUp::Deadline);
            }
            // SlotPool before the breaker: a permit taken and dropped unused would cost a
            // half-open breaker its probe.
            self.slot = match &up.slots {
                None => None,
                Some(slots) => match slots.try_take(self.priority.top) {
                    Some(slot) => Some(slot),
                    None => {
                        self.saturated = true;
                        let why = if self.priority.top {
                            format!("all {} slots busy", slots.limit())
                        } else {
                            "saturated: its free slots are reserved for higher tiers".into()
                        };
                        self.note(&up.name, why);
                        continue;
                    }
                },
            };
            let Some(permit) = up.breaker.try_acquire(now.into_std()) else {
                self.note(&up.name, "breaker open".into());
                continue;
            };
            if self.attempts >= 1 && !self.route.budget.try_spend(now.into_std()) {
                self.route.metrics.budget_exhausted.inc();
                self.note(&up.name, "not tried: retry budget exhausted".into());
                drop(permit);
                return Err(GiveUp::Unavailable);
            }
            return Ok((i, permit));
        }
    }

    /// Sends the request to candidate `i`. `Ok(None)`: it failed, and the next candidate may
    /// still answer.
    async fn try_once(&mut self, i: usize, permit: Permit) -> Result<Option<Served>, GiveUp> {
        let (route, router) = (self.route, self.router);
        let upstream = self.chain[i].upstream;
        let up = &router.upstreams[upstream];
        self.attempts += 1;
        self.attempted = true;
        self.first_upstream.get_or_insert(upstream);
        let payload = match payload_for(&mut self.bodies, self.chain[i].model.as_deref(), up.api) {
            Ok(p) => p,
            Err(detail) => {
                // The body was validated as a chat request, so this cannot happen; if it
                // does, this upstream cannot take it and the next one may.
                tracing::warn!(upstream = %up.name, "request not translatable: {detail}");
                self.note(&up.name, "request not translatable".into());
                self.standing[i].dead = true;
                return Ok(None);
            }
        };
        let outcome = upstream::attempt(
            &route.client,
            up,
            payload,
            self.wants,
            route.timeouts.first_byte,
            self.deadline,
            &router.retry,
        )
        .await;
        match outcome {
            AttemptOutcome::Served(reply) => {
                permit.record(true);
                route.metrics.attempt(upstream, "ok");
                if self.first_upstream != Some(upstream) {
                    route.metrics.failovers.inc();
                }
                Ok(Some(Served {
                    reply,
                    upstream,
                    attempts: self.attempts,
                    slot: self.slot.take(),
                }))
            }
            AttemptOutcome::PassThrough(reply) => {
                let upstream_fault = reply.status().is_server_error();
                permit.record(!upstream_fault);
                route.metrics.attempt(upstream, "client_error");
                Ok(Some(Served {
                    reply,
                    upstream,
                    attempts: self.attempts,
                    slot: self.slot.take(),
                }))
            }
            AttemptOutcome::Failed(e) => {
                self.slot = None;
                permit.record(!e.counts_against_upstream());
                route.metrics.attempt(upstream, e.outcome_label());
                tracing::debug!(route = %route.model, upstream = %up.name, error = %e, "attempt failed");
                self.note(&up.name, e.short_reason());
                if !e.retryable() {
                    // Only the total deadline makes an upstream failure final.
                    return Err(GiveUp::Deadline);
                }
                if self.priority.yield_on_429
                    && matches!(e, ProxyError::UpstreamStatus { status: 429, .. })
                {
                    self.standing[i].not_before = e.retry_after().map(|d| Instant::now() + d);
                    return Err(GiveUp::Yield);
                }
                let standing = &mut self.standing[i];
                if !e.retry_same_upstream() {
                    standing.dead = true;
                }
                standing.not_before = e.retry_after().map(|d| Instant::now() + d);
                Ok(None)
            }
        }
    }

    /// Waits before the next round, unless the wait would outlast the deadline.
    async fn backoff(&self) -> Result<(), GiveUp> {
        let wait = backoff(&self.router.retry, self.round);
        if Instant::now() + wait >= self.deadline {
            return Err(GiveUp::Unavailable);
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// The soonest an upstream asked to be tried again.
    fn wait_hint(&self) -> Option<Duration> {
        let now = Instant::now();
        self.standing
            .iter()
            .filter_map(|s| s.not_before)
            .map(|t| t.saturating_duration_since(now))
            .min()
    }

    /// The error the client gets, naming every upstream passed over and why.
    fn give_up(self, why: GiveUp) -> Unserved {
        let route = self.route;
        let error = match why {
            GiveUp::Deadline => ProxyError::DeadlineExceeded {
                model: route.model.clone(),
                total: route.timeouts.total,
                tried: self.tried,
            },
            GiveUp::Yield => ProxyError::Shed {
                reason: ShedReason::Tier,
                message: format!(
                    "The provider behind model {} is throttling; its fallbacks are kept for \
                     higher tiers. Try again after the Retry-After.",
                    route.model
                ),
                retry_after: self.wait_hint().unwrap_or(ShedReason::Tier.retry_after()),
            },
            GiveUp::Unavailable if self.attempts == 0 && self.saturated => {
                let reason = if self.priority.top {
                    ShedReason::Capacity
                } else {
                    ShedReason::Tier
                };
                ProxyError::Shed {
                    reason,
                    message: format!(
                        "Every upstream for model {} is saturated{}: {}",
                        route.model,
                        if self.priority.top {
                            ""
                        } else {
                            " for this tier (capacity is reserved for higher tiers)"
                        },
                        describe(&self.tried)
                    ),
                    retry_after: reason.retry_after(),
                }
            }
            GiveUp::Unavailable => ProxyError::AllUnavailable {
                model: route.model.clone(),
                retry_after: self.wait_hint(),
                tried: self.tried,
            },
        };
        Unserved {
            error,
            attempts: self.attempts,
        }
    }
}

/// The body for a hop: the client's bytes, or a copy naming `model` instead, in the API the
/// upstream speaks.
fn payload_for(
    cache: &mut Vec<(Option<String>, UpstreamApi, UpstreamBody)>,
    model: Option<&str>,
    api: UpstreamApi,
) -> Result<UpstreamBody, String> {
    if let Some((_, _, p)) = cache
        .iter()
        .find(|(m, a, _)| m.as_deref() == model && *a == api)
    {
        return Ok(p.clone());
    }
    let chat = renamed(cache, model);
    let payload = match api {
        UpstreamApi::Chat => chat,
        UpstreamApi::Messages => {
            let (body, include_usage) = super::translate::request(&chat.body)?;
            UpstreamBody {
                body,
                include_usage,
            }
        }
    };
    cache.push((model.map(str::to_string), api, payload.clone()));
    Ok(payload)
}

/// The client's chat body naming `model` (cached), or as it came.
fn renamed(
    cache: &mut Vec<(Option<String>, UpstreamApi, UpstreamBody)>,
    model: Option<&str>,
) -> UpstreamBody {
    let Some(model) = model else {
        return cache[0].2.clone();
    };
    if let Some((_, _, p)) = cache
        .iter()
        .find(|(m, a, _)| m.as_deref() == Some(model) && *a == UpstreamApi::Chat)
    {
        return p.clone();
    }
    let original = cache[0].2.body.clone();
    // The body was validated as a JSON object before routing; if re-encoding fails anyway,
    // forwarding it unchanged is the least surprising answer.
    let renamed = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&original)
        .ok()
        .and_then(|mut m| {
            m.insert("model".into(), serde_json::Value::String(model.to_string()));
            serde_json::to_vec(&m).ok()
        })
        .map_or(original, Bytes::from);
    let payload = UpstreamBody {
        body: renamed,
        include_usage: false,
    };
    cache.push((Some(model.to_string()), UpstreamApi::Chat, payload.clone()));
    payload
}

/// Exponential backoff with full jitter: uniform in [0, min(max, base * 2^(round-1))].
fn backoff(retry: &RetryConfig, round: u32) -> Duration {
    let exp = retry
        .backoff_base
        .saturating_mul(1u32 << (round.saturating_sub(1)).min(20));
    let cap = exp.min(retry.backoff_max);
    if cap.is_zero() {
        return cap;
    }
    cap.mul_f64(rand::rng().random_range(0.0..=1.0))
}

impl Route {
    /// The request's total deadline on this route.
    pub fn total_timeout(&self) -> Duration {
        self.timeouts.total
    }

    /// Whether some upstream of the route can serve what a request `wants` at all.
    pub fn serves(&self, wants: Wants) -> bool {
        match wants {
            Wants::Chat { .. } => true,
            Wants::Embeddings => self.embeddings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_body_a_hop_needs_is_made_once_in_its_upstreams_api() {
        let client = br#"{"model":"a","messages":[{"role":"user","content":"hi"}],"stream":true,
            "stream_options":{"include_usage":true}}"#;
        let mut cache = vec![(
            None,
            UpstreamApi::Chat,
            UpstreamBody {
                body: Bytes::from_static(client),
                include_usage: false,
            },
        )];
        let same = payload_for(&mut cache, None, UpstreamApi::Chat).unwrap();
        assert_eq!(same.body, Bytes::from_static(client), "sent as it came");
        let messages = payload_for(&mut cache, Some("claude"), UpstreamApi::Messages).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&messages.body).unwrap();
        assert_eq!(v["model"], "claude");
        assert_eq!(v["max_tokens"], 4096, "Anthropic needs a budget");
        assert!(messages.include_usage);
        assert_eq!(cache.len(), 3, "the renamed chat body and its translation");
        let again = payload_for(&mut cache, Some("claude"), UpstreamApi::Messages).unwrap();
        assert_eq!(again.body, messages.body);
        let chat = payload_for(&mut cache, Some("claude"), UpstreamApi::Chat).unwrap();
        assert_eq!(cache.len(), 3, "nothing made twice");
        let v: serde_json::Value = serde_json::from_slice(&chat.body).unwrap();
        assert_eq!(v["model"], "claude");
    }
}
