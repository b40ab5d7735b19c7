//! Prometheus metrics of the gateway (requests, attempts, failovers, breaker state, latency
//! per route and upstream), with per-route handles resolved once so the hot path only bumps
//! atomics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    route: String,
    upstream: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    tier: String,
    reason: String,
}

/// Why admission sheds, in the order of [`TierMetrics::shed`].
pub const SHED_REASONS: [&str; 3] = ["tier", "concurrency", "capacity"];

/// One tier's handles, resolved at start.
#[derive(Debug, Clone)]
pub struct TierMetrics {
    pub requests: Counter,
    /// Refused by the key's own per-minute limits.
    pub rate_limited: Counter,
    /// One per [`SHED_REASONS`].
    pub shed: [Counter; 3],
    pub queue_wait: Histogram,
    pub in_flight: Gauge,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs .. ~100 s: a loopback hop to a long completion.
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

/// Attempt outcomes, in the order of [`RouteMetrics::attempts`].
pub const OUTCOMES: [&str; 8] = [
    "ok",
    "client_error",
    "status_error",
    "rate_limited",
    "timeout",
    "connect",
    "reset",
    "bad_response",
];

/// Why a relayed stream was cut after its first byte, in the order of [`StreamCuts`].
pub const CUT_REASONS: [&str; 4] = ["upstream", "deadline", "line_too_long", "unfinished"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CutLabels {
    route: String,
    reason: String,
}

/// Counters of one route's cut streams, one per entry of [`CUT_REASONS`].
#[derive(Debug, Clone, Default)]
pub struct StreamCuts(Vec<Counter>);

impl StreamCuts {
    pub fn cut(&self, reason: &str) {
        let i = CUT_REASONS.iter().position(|r| *r == reason).unwrap_or(0);
        if let Some(c) = self.0.get(i) {
            c.inc();
        }
    }
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    attempts: Family<AttemptLabels, Counter>,
    failovers: Family<RouteLabels, Counter>,
    budget_exhausted: Family<RouteLabels, Counter>,
    stream_cuts: Family<CutLabels, Counter>,
    rate_limited: Family<TierLabels, Counter>,
    tier_requests: Family<TierLabels, Counter>,
    tier_shed: Family<ShedLabels, Counter>,
    tier_queue_wait: HistogramFamily<TierLabels>,
    tier_in_flight: Family<TierLabels, Gauge>,
    breaker_state: Family<UpstreamLabels, Gauge>,
    request_seconds: HistogramFamily<RouteLabels>,
    upstream_seconds: HistogramFamily<UpstreamLabels>,
}

/// Handles for one route, resolved at start.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    pub ok: Counter,
    pub failovers: Counter,
    pub budget_exhausted: Counter,
    pub seconds: Histogram,
    pub cuts: StreamCuts,
    /// `attempts[upstream * OUTCOMES.len() + outcome]`.
    pub attempts: Vec<Counter>,
}

impl RouteMetrics {
    pub fn attempt(&self, upstream: usize, outcome: &str) {
        let o = OUTCOMES.iter().position(|x| *x == outcome).unwrap_or(0);
        if let Some(c) = self.attempts.get(upstream * OUTCOMES.len() + o) {
            c.inc();
        }
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        let attempts = Family::<AttemptLabels, Counter>::default();
        let failovers = Family::<RouteLabels, Counter>::default();
        let budget_exhausted = Family::<RouteLabels, Counter>::default();
        let stream_cuts = Family::<CutLabels, Counter>::default();
        let rate_limited = Family::<TierLabels, Counter>::default();
        let breaker_state = Family::<UpstreamLabels, Gauge>::default();
        let tier_requests = Family::<TierLabels, Counter>::default();
        let tier_shed = Family::<ShedLabels, Counter>::default();
        let tier_queue_wait: HistogramFamily<TierLabels> =
            Family::new_with_constructor(latency_histogram);
        let tier_in_flight = Family::<TierLabels, Gauge>::default();
        let request_seconds: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(latency_histogram);
        let upstream_seconds: HistogramFamily<UpstreamLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "requests",
            "Client requests answered, by route and HTTP status",
            requests.clone(),
        );
        registry.register(
            "attempts",
            "Attempts sent to upstreams, by route, upstream and outcome",
            attempts.clone(),
        );
        registry.register(
            "failovers",
            "Requests served by an upstream other than their first attempt's",
            failovers.clone(),
        );
        registry.register(
            "retry_budget_exhausted",
            "Extra attempts refused by the retry budget",
            budget_exhausted.clone(),
        );
        registry.register(
            "stream_cuts",
            "Streams cut after their first byte reached the client, by route and reason",
            stream_cuts.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a per-key limit, by key tier",
            rate_limited.clone(),
        );
        registry.register(
            "tier_requests",
            "Authenticated requests that reached admission, by key tier",
            tier_requests.clone(),
        );
        registry.register(
            "tier_shed",
            "Requests shed by admission (429/503 with x-gateway-shed), by tier and reason",
            tier_shed.clone(),
        );
        registry.register(
            "tier_queue_wait_seconds",
            "Time requests waited in their tier's queue for a gateway slot",
            tier_queue_wait.clone(),
        );
        registry.register(
            "tier_in_flight",
            "Admitted requests of each tier not yet finished",
            tier_in_flight.clone(),
        );
        registry.register(
            "breaker_state",
            "Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open",
            breaker_state.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request arrival until the response starts (streams) or is complete",
            request_seconds.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time from sending an attempt to its response head, per upstream",
            upstream_seconds.clone(),
        );
        Self {
            registry,
            requests,
            attempts,
            failovers,
            budget_exhausted,
            stream_cuts,
            rate_limited,
            tier_requests,
            tier_shed,
            tier_queue_wait,
            tier_in_flight,
            breaker_state,
            request_seconds,
            upstream_seconds,
        }
    }

    pub fn route(&self, route: &str, upstreams: &[String]) -> RouteMetrics {
        let mut attempts = Vec::with_capacity(upstreams.len() * OUTCOMES.len());
        for u in upstreams {
            for o in OUTCOMES {
                attempts.push(self.attempts.get_or_create_owned(&AttemptLabels {
                    route: route.to_string(),
                    upstream: u.clone(),
                    outcome: o.to_string(),
                }));
            }
        }
        let r = RouteLabels {
            route: route.to_string(),
        };
        RouteMetrics {
            ok: self.requests.get_or_create_owned(&RequestLabels {
                route: route.to_string(),
                status: "200".into(),
            }),
            failovers: self.failovers.get_or_create_owned(&r),
            budget_exhausted: self.budget_exhausted.get_or_create_owned(&r),
            seconds: self.request_seconds.get_or_create_owned(&r),
            cuts: StreamCuts(
                CUT_REASONS
                    .iter()
                    .map(|reason| {
                        self.stream_cuts.get_or_create_owned(&CutLabels {
                            route: route.to_string(),
                            reason: (*reason).to_string(),
                        })
                    })
                    .collect(),
            ),
            attempts,
        }
    }

    pub fn tier(&self, tier: &str) -> TierMetrics {
        let t = TierLabels {
            tier: tier.to_string(),
        };
        let shed = |reason: &str| {
            self.tier_shed.get_or_create_owned(&ShedLabels {
                tier: tier.to_string(),
                reason: reason.to_string(),
            })
        };
        TierMetrics {
            requests: self.tier_requests.get_or_create_owned(&t),
            rate_limited: self.rate_limited.get_or_create_owned(&t),
            shed: SHED_REASONS.map(shed),
            queue_wait: self.tier_queue_wait.get_or_create_owned(&t),
            in_flight: self.tier_in_flight.get_or_create_owned(&t),
        }
    }

    pub fn breaker_gauge(&self, upstream: &str) -> Gauge {
        self.breaker_state.get_or_create_owned(&UpstreamLabels {
            upstream: upstream.to_string(),
        })
    }

    pub fn upstream_histogram(&self, upstream: &str) -> Histogram {
        self.upstream_seconds.get_or_create_owned(&UpstreamLabels {
            upstream: upstream.to_string(),
        })
    }

    /// Counts a response other than a route's 200 (the slow path may allocate labels).
    pub fn request(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status: status.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
