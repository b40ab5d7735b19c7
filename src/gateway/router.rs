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

use super::budget::RetryBudget;
use super::config::{Config, RetryConfig, Target, Timeouts};
use super::error::ProxyError;
use super::metrics::{Metrics, RouteMetrics};
use super::upstream::{self, HttpClient, Outcome, Reply, Upstream};

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
}

/// A request that was answered by an upstream (successfully or with its own 4xx).
pub struct Served {
    pub reply: Reply,
    pub upstream: usize,
    pub attempts: u32,
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
    pub fn new(config: &Config, upstreams: Vec<Arc<Upstream>>, metrics: &Metrics) -> Self {
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
                .or_insert_with(|| upstream::client(r.timeouts.connect))
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
            let route = Route {
                model: r.model.clone(),
                targets: hops(&r.targets),
                fallbacks: hops(&r.fallbacks),
                timeouts: r.timeouts,
                client,
                budget: RetryBudget::new(&config.retry),
                metrics: metrics.route(&r.model, &names),
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

    /// Serves one request on `route`. `body` is the client's JSON, forwarded unchanged
    /// unless a hop renames the model.
    pub async fn serve(
        &self,
        route: &Route,
        body: Bytes,
        stream: bool,
        arrived: Instant,
    ) -> Result<Served, Unserved> {
        let now = Instant::now();
        route.budget.record_request(now.into_std());
        let deadline = arrived + route.timeouts.total;
        let chain = self.chain(route, now);
        let retry = &self.retry;
        let mut tried: Vec<(String, String)> = Vec::new();
        let note = |tried: &mut Vec<(String, String)>, name: &str, why: String| match tried
            .iter_mut()
            .find(|(n, _)| n == name)
        {
            Some(entry) => entry.1 = why,
            None => tried.push((name.to_string(), why)),
        };
        let mut attempts = 0u32;
        let mut first_upstream = None;
        let mut dead = vec![false; chain.len()];
        let mut not_before: Vec<Option<Instant>> = vec![None; chain.len()];
        let mut bodies: Vec<(Option<String>, Bytes)> = vec![(None, body.clone())];
        let mut round = 0u32;
        // Set when the request's own deadline ran out (504), as opposed to every upstream
        // failing or being skipped (503).
        let mut deadline_hit = false;
        'rounds: while attempts < retry.max_attempts {
            if round > 0 {
                let wait = backoff(retry, round);
                if Instant::now() + wait >= deadline {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            let mut attempted = false;
            for (i, hop) in chain.iter().enumerate() {
                if attempts >= retry.max_attempts {
                    break 'rounds;
                }
                if dead[i] {
                    continue;
                }
                let up = &self.upstreams[hop.upstream];
                if let Some(t) = not_before[i] {
                    if t >= deadline {
                        continue;
                    }
                    tokio::time::sleep_until(t).await;
                }
                let now = Instant::now();
                if now >= deadline {
                    deadline_hit = true;
                    break 'rounds;
                }
                let Some(permit) = up.breaker.try_acquire(now.into_std()) else {
                    note(&mut tried, &up.name, "breaker open".into());
                    continue;
                };
                if attempts >= 1 && !route.budget.try_spend(now.into_std()) {
                    route.metrics.budget_exhausted.inc();
                    note(
                        &mut tried,
                        &up.name,
                        "not tried: retry budget exhausted".into(),
                    );
                    drop(permit);
                    break 'rounds;
                }
                attempts += 1;
                attempted = true;
                first_upstream.get_or_insert(hop.upstream);
                let payload = payload_for(&mut bodies, hop.model.as_deref());
                let first_byte = route.timeouts.first_byte;
                let outcome = upstream::attempt(
                    &route.client,
                    up,
                    payload,
                    stream,
                    first_byte,
                    deadline,
                    retry,
                )
                .await;
                match outcome {
                    Outcome::Served(reply) => {
                        permit.record(true);
                        route.metrics.attempt(hop.upstream, "ok");
                        if first_upstream != Some(hop.upstream) {
                            route.metrics.failovers.inc();
                        }
                        return Ok(Served {
                            reply,
                            upstream: hop.upstream,
                            attempts,
                        });
                    }
                    Outcome::PassThrough(reply) => {
                        let upstream_fault = reply.status().is_server_error();
                        permit.record(!upstream_fault);
                        route.metrics.attempt(hop.upstream, "client_error");
                        return Ok(Served {
                            reply,
                            upstream: hop.upstream,
                            attempts,
                        });
                    }
                    Outcome::Failed(e) => {
                        permit.record(!e.counts_against_upstream());
                        route.metrics.attempt(hop.upstream, e.outcome_label());
                        tracing::debug!(route = %route.model, upstream = %up.name, error = %e, "attempt failed");
                        note(&mut tried, &up.name, e.short_reason());
                        if !e.retryable() {
                            // Only the total deadline makes an upstream failure final.
                            deadline_hit = true;
                            break 'rounds;
                        }
                        if !e.retry_same_upstream() {
                            dead[i] = true;
                        }
                        not_before[i] = e.retry_after().map(|d| Instant::now() + d);
                    }
                }
            }
            if !attempted {
                break;
            }
            round += 1;
        }
        let error = if deadline_hit {
            ProxyError::DeadlineExceeded {
                model: route.model.clone(),
                total: route.timeouts.total,
                tried,
            }
        } else {
            let now = Instant::now();
            let retry_after = not_before
                .iter()
                .flatten()
                .map(|t| t.saturating_duration_since(now))
                .min();
            ProxyError::AllUnavailable {
                model: route.model.clone(),
                tried,
                retry_after,
            }
        };
        Err(Unserved { error, attempts })
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

/// The body for a hop: the client's bytes, or a copy naming `model` instead.
fn payload_for(cache: &mut Vec<(Option<String>, Bytes)>, model: Option<&str>) -> Bytes {
    let Some(model) = model else {
        return cache[0].1.clone();
    };
    if let Some((_, b)) = cache.iter().find(|(m, _)| m.as_deref() == Some(model)) {
        return b.clone();
    }
    let original = cache[0].1.clone();
    // The body was validated as a JSON object before routing; if re-encoding fails anyway,
    // forwarding it unchanged is the least surprising answer.
    let renamed = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&original)
        .ok()
        .and_then(|mut m| {
            m.insert("model".into(), serde_json::Value::String(model.to_string()));
            serde_json::to_vec(&m).ok()
        })
        .map_or(original, Bytes::from);
    cache.push((Some(model.to_string()), renamed.clone()));
    renamed
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
}
