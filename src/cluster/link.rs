//! A shard's side of the coordinator's API: find the coordinator (retrying while nothing
//! listens yet, as pods start in any order), measure the clock offset, register, wait for
//! t0, and push parts. It tells apart the three ways that can go wrong, since each calls
//! for its own exit: nothing there (the run failed to start), something there that is not a
//! gauntlet coordinator or that refuses this shard (the user's input is wrong), and a
//! coordinator that went away mid-run.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use super::clock::{self, ClockEstimate, ClockSample};
use super::wire::{
    ClockReading, Complaint, MARK_HEADER, PREFIX, PROTOCOL, PushQuery, Registration, ShardIdentity,
    StartAt, Welcome,
};

/// Clock samples taken before registering; the one with the smallest round trip counts.
const CLOCK_SAMPLES: usize = 8;
/// An answer to anything but the start takes at most this long, or the peer is not a
/// coordinator (or no longer one that works).
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
const MAX_ANSWER: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("--coordinator {0}: not HOST:PORT")]
    BadAddress(String),
    #[error(
        "the coordinator {addr} is not a gauntlet coordinator: {what} (is --coordinator / \
         GAUNTLET_COORDINATOR pointing at the right port?)"
    )]
    NotGauntlet { addr: String, what: String },
    #[error("the coordinator {addr} refused this shard: {reason}")]
    Refused { addr: String, reason: String },
    #[error("no coordinator answered at {addr} within {waited:.0?}: {last}")]
    Unreachable {
        addr: String,
        waited: Duration,
        last: String,
    },
    #[error("the coordinator {addr} did not start the run: {reason}")]
    NoStart { addr: String, reason: String },
    #[error("the coordinator {addr} went away: {reason}")]
    Gone { addr: String, reason: String },
}

impl LinkError {
    /// The user's input is wrong (exit 2), rather than the run failing (exit 3).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Self::BadAddress(_) | Self::NotGauntlet { .. } | Self::Refused { .. }
        )
    }
}

/// How one exchange with the coordinator failed.
#[derive(Debug)]
enum Failure {
    /// Nothing accepted the connection: nothing listens (yet).
    Connect(String),
    /// Something answered, but not as a coordinator.
    Alien(String),
    /// The coordinator answered with an error.
    Said(StatusCode, String),
    /// The connection broke or timed out mid-exchange.
    Broken(String),
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Self::Connect(s) | Self::Alien(s) | Self::Broken(s) => s.clone(),
            Self::Said(status, s) => format!("{status}: {s}"),
        }
    }
}

/// A push the coordinator would not take, or could not be reached for.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Worth trying again: the coordinator may be back (or the network).
    #[error("{0}")]
    Unreachable(String),
    /// The coordinator refused the part; trying again will not change that.
    #[error("the coordinator refused the part: {0}")]
    Refused(String),
}

/// An admitted shard: where to send the load, and the coordinator's clock.
#[derive(Debug, Clone)]
pub struct Joined {
    pub target: String,
    pub push_every: Duration,
    pub clock: ClockEstimate,
}

/// A shard's connection to its coordinator.
#[derive(Clone)]
pub struct Link {
    addr: String,
    base: String,
    index: u32,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("addr", &self.addr).finish()
    }
}

impl Link {
    /// A link to the coordinator at `addr` (HOST:PORT), for shard `index`.
    pub fn new(addr: &str, index: u32) -> Result<Self, LinkError> {
        let (host, port) = addr
            .rsplit_once(':')
            .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            .ok_or_else(|| LinkError::BadAddress(addr.to_string()))?;
        let base = format!("http://{host}:{port}");
        base.parse::<http::Uri>()
            .map_err(|_| LinkError::BadAddress(addr.to_string()))?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(crate::net::CLIENT_POOL_IDLE)
            .build(HttpConnector::new());
        Ok(Self {
            addr: addr.to_string(),
            base,
            index,
            client,
        })
    }

    /// Finds the coordinator (retrying with backoff for up to `reach_within` while nothing
    /// listens), measures the clock offset against it and registers `identity`.
    pub async fn join(
        &self,
        identity: &ShardIdentity,
        reach_within: Duration,
    ) -> Result<Joined, LinkError> {
        let first = self.first_contact(reach_within).await?;
        let mut samples = vec![first];
        for _ in 1..CLOCK_SAMPLES {
            samples.push(self.clock_sample().await.map_err(|f| self.gone(&f))?);
        }
        let estimate = clock::estimate(&samples).ok_or_else(|| LinkError::Gone {
            addr: self.addr.clone(),
            reason: "no clock sample".into(),
        })?;
        let registration = Registration {
            identity: identity.clone(),
            offset_ns: estimate.offset_ns,
            rtt_ns: u64::try_from(estimate.rtt.as_nanos()).unwrap_or(u64::MAX),
        };
        let body = serde_json::to_vec(&registration).unwrap_or_default();
        // The coordinator answers once its own fleet is up, which may take a while.
        let admission: Welcome = self
            .call(Method::POST, "register", body, Duration::from_secs(120))
            .await
            .map_err(|f| match f {
                Failure::Said(StatusCode::CONFLICT, reason) => LinkError::Refused {
                    addr: self.addr.clone(),
                    reason,
                },
                f => self.gone(&f),
            })?;
        Ok(Joined {
            target: admission.target,
            push_every: Duration::from_millis(admission.push_every_ms.max(1)),
            clock: estimate,
        })
    }

    /// The first clock sample, retried with backoff while nothing accepts the connection.
    async fn first_contact(&self, reach_within: Duration) -> Result<ClockSample, LinkError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        loop {
            match self.clock_sample().await {
                Ok(s) => return Ok(s),
                Err(Failure::Connect(why)) => {
                    if started.elapsed() + pause > reach_within {
                        return Err(LinkError::Unreachable {
                            addr: self.addr.clone(),
                            waited: started.elapsed(),
                            last: why,
                        });
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(f) => {
                    return Err(LinkError::NotGauntlet {
                        addr: self.addr.clone(),
                        what: f.describe(),
                    });
                }
            }
        }
    }

    async fn clock_sample(&self) -> Result<ClockSample, Failure> {
        let sent_ns = clock::unix_ns(SystemTime::now());
        let reading: ClockReading = self
            .call(Method::GET, "clock", Vec::new(), ANSWER_WITHIN)
            .await?;
        let received_ns = clock::unix_ns(SystemTime::now());
        Ok(ClockSample {
            sent_ns,
            remote_ns: reading.now_ns,
            received_ns,
        })
    }

    /// Waits (up to `within`) for the coordinator to announce t0; returns it on this
    /// shard's clock.
    pub async fn wait_start(
        &self,
        offset_ns: i64,
        within: Duration,
    ) -> Result<SystemTime, LinkError> {
        let path = format!("start?shard={}", self.index);
        let at: StartAt = self
            .call(Method::GET, &path, Vec::new(), within)
            .await
            .map_err(|f| match f {
                Failure::Said(_, reason) => LinkError::NoStart {
                    addr: self.addr.clone(),
                    reason,
                },
                f => self.gone(&f),
            })?;
        Ok(clock::to_local(at.t0_ns, offset_ns))
    }

    /// Sends one part; `seq` counts from 1 and is sent again unchanged on a retry.
    pub async fn push(&self, seq: u64, done: bool, part: Bytes) -> Result<(), PushError> {
        let query = PushQuery {
            shard: self.index,
            seq,
            done,
        };
        let path = format!("push?{}", query.render());
        match self
            .call::<serde_json::Value>(Method::POST, &path, part, ANSWER_WITHIN)
            .await
        {
            Ok(_) => Ok(()),
            Err(Failure::Said(status, why)) if status.is_client_error() => {
                Err(PushError::Refused(why))
            }
            Err(f) => Err(PushError::Unreachable(f.describe())),
        }
    }

    fn gone(&self, f: &Failure) -> LinkError {
        LinkError::Gone {
            addr: self.addr.clone(),
            reason: f.describe(),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
        within: Duration,
    ) -> Result<T, Failure> {
        let url = format!("{}{PREFIX}{path}", self.base);
        let req = Request::builder()
            .method(method)
            .uri(&url)
            .body(Full::new(body.into()))
            .map_err(|e| Failure::Alien(e.to_string()))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                if e.is_connect() {
                    Failure::Connect(format!("{e:#}"))
                } else {
                    // Connected, but what came back was no HTTP answer.
                    Failure::Alien(format!("its answer is not HTTP ({e})"))
                }
            })?;
            let status = resp.status();
            let marked = resp
                .headers()
                .get(MARK_HEADER)
                .map(|v| v.as_bytes().to_vec());
            let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| Failure::Broken(e.to_string()))?
                .to_bytes();
            Ok::<_, Failure>((status, marked, bytes))
        };
        let (status, marked, bytes) = tokio::time::timeout(within, exchange)
            .await
            .map_err(|_| Failure::Broken(format!("no answer within {within:.0?}")))??;
        match marked.as_deref() {
            Some(v) if v == PROTOCOL.as_bytes() => {}
            Some(v) => {
                return Err(Failure::Alien(format!(
                    "it speaks coordinator protocol {} where this gauntlet speaks {PROTOCOL}",
                    String::from_utf8_lossy(v)
                )));
            }
            None => {
                return Err(Failure::Alien(format!(
                    "{url} answered {status} without the {MARK_HEADER} header"
                )));
            }
        }
        if !status.is_success() {
            let why = serde_json::from_slice::<Complaint>(&bytes)
                .map(|r| r.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(Failure::Said(status, why));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| Failure::Alien(format!("{url} answered something else: {e}")))
    }
}
