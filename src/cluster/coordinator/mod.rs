//! Shard 0's server: admits the other shards (same scenario, seed, count and version, each
//! index once), hands them the target, announces a common start time t0 once all are there,
//! merges what each pushes as it arrives, and notices a shard that goes silent. The parts are
//! bytes to it: the `PartSink` the caller gives decodes and merges them.
//!
//! Start: t0 is announced a margin ahead (`START_MARGIN` plus twice the largest round trip
//! seen), so the announcement reaches every shard before t0 on any clock; each shard moves
//! t0 onto its own clock with the offset it measured.

mod roster;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use roster::SeatEnd;
use roster::{PushVerdict, Roster};

use super::clock;
use super::wire::{
    ClockReading, Complaint, MARK_HEADER, PREFIX, PROTOCOL, PushQuery, Registration, ShardIdentity,
    StartAt, Welcome, query_value,
};

/// The least time between announcing t0 and t0 itself.
pub const START_MARGIN: Duration = Duration::from_millis(500);

/// Largest part a push may carry.
const MAX_PART: usize = 256 * 1024 * 1024;

/// Merges the parts shards push; called once per push, in each shard's order.
pub trait PartSink: Send + Sync + 'static {
    /// Merges what `shard` recorded since its last push; an error refuses the push (the bytes
    /// are no part of this run) and is sent back to the shard.
    fn absorb(&self, shard: u32, part: &[u8], done: bool) -> Result<(), String>;
}

/// How the coordinator runs.
#[derive(Clone)]
pub struct CoordinatorConfig {
    /// The run's identity, with index 0.
    pub identity: ShardIdentity,
    /// How often shards push (the recording's interval).
    pub push_every: Duration,
    /// How long to wait for every shard to register.
    pub wait_for_shards: Duration,
    /// A shard silent this long is lost.
    pub silence: Duration,
    /// What happens, for the terminal.
    pub say: Arc<dyn Fn(String) + Send + Sync>,
}

impl std::fmt::Debug for CoordinatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorConfig")
            .field("identity", &self.identity)
            .field("push_every", &self.push_every)
            .finish_non_exhaustive()
    }
}

/// Where the start stands, for the shards waiting on `GET start`.
#[derive(Debug, Clone, PartialEq)]
enum Start {
    Waiting,
    At(i128),
    GaveUp(String),
}

struct Shared {
    config: CoordinatorConfig,
    sink: Arc<dyn PartSink>,
    roster: Mutex<Roster>,
    /// Bumped on every registration and push, for whoever waits on the roster.
    changed: watch::Sender<u64>,
    target: watch::Sender<Option<String>>,
    start: watch::Sender<Start>,
    /// Pushes are merged one at a time: the sink's merge is not concurrent, and a retried
    /// push must see whether its first try was taken.
    merging: tokio::sync::Mutex<()>,
}

impl Shared {
    fn roster<T>(&self, f: impl FnOnce(&mut Roster) -> T) -> T {
        f(&mut self.roster.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

/// The shards are not all there after the wait.
#[derive(Debug, thiserror::Error)]
#[error(
    "shard{} {} did not register within {:.0} s",
    if missing.len() == 1 { "" } else { "s" },
    missing.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
    waited.as_secs_f64()
)]
pub struct MissingShards {
    pub missing: Vec<u32>,
    pub waited: Duration,
}

/// One shard at the end: its clock and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct SeatReport {
    pub index: u32,
    pub offset: Duration,
    /// Whether the shard's clock is behind the coordinator's (the offset is then negative).
    pub offset_negative: bool,
    pub rtt: Duration,
    pub pushes: u64,
    pub end: SeatEnd,
}

impl SeatReport {
    /// The offset in milliseconds, signed: the coordinator's clock minus the shard's.
    pub fn offset_ms(&self) -> f64 {
        let ms = self.offset.as_secs_f64() * 1000.0;
        if self.offset_negative { -ms } else { ms }
    }
}

/// The running coordinator.
pub struct Coordinator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// Listens on `addr` and serves the API on the current runtime.
    pub async fn start(
        addr: SocketAddr,
        config: CoordinatorConfig,
        sink: Arc<dyn PartSink>,
    ) -> std::io::Result<Self> {
        let listener = crate::net::listen(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            roster: Mutex::new(Roster::new(config.identity.clone())),
            config,
            sink,
            changed: watch::channel(0).0,
            target: watch::channel(None).0,
            start: watch::channel(Start::Waiting).0,
            merging: tokio::sync::Mutex::new(()),
        });
        let (stop, stopped) = watch::channel(false);
        let served = shared.clone();
        let task = crate::net::serve_http1(listener, stopped, move |req| {
            let shared = served.clone();
            async move { respond(req, &shared).await }
        });
        Ok(Self {
            addr,
            shared,
            stop,
            task: Mutex::new(Some(task)),
            watcher: Mutex::new(None),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the shards send their load; registrations are answered once it is known.
    pub fn set_target(&self, url: String) {
        self.shared.target.send_replace(Some(url));
    }

    /// Waits until every shard registered, or gives up after the configured wait (and tells
    /// the shards waiting to start that it did).
    pub async fn wait_for_shards(&self) -> Result<(), MissingShards> {
        let waited = self.shared.config.wait_for_shards;
        let mut changed = self.shared.changed.subscribe();
        let all = changed.wait_for(|_| self.shared.roster(|r| r.missing().is_empty()));
        if let Ok(Ok(_)) = tokio::time::timeout(waited, all).await {
            return Ok(());
        }
        let missing = self.shared.roster(|r| r.missing());
        let e = MissingShards { missing, waited };
        let why = format!("the coordinator gave up: {e}");
        self.shared.roster(|r| r.closed = Some(why.clone()));
        self.shared.start.send_replace(Start::GaveUp(why));
        Err(e)
    }

    /// Announces t0, a margin ahead of now on the coordinator's clock, closes registration
    /// and starts watching for silent shards. Returns t0.
    pub fn announce(&self) -> SystemTime {
        let margin = START_MARGIN + 2 * self.shared.roster(|r| r.largest_rtt());
        let t0 = SystemTime::now() + margin;
        let started = Instant::now() + margin;
        self.shared
            .roster(|r| r.closed = Some("the run has started".into()));
        self.shared
            .start
            .send_replace(Start::At(clock::unix_ns(t0)));
        let shared = self.shared.clone();
        let watcher = tokio::spawn(async move {
            let every = (shared.config.push_every / 2).max(Duration::from_millis(50));
            let silence = shared.config.silence;
            loop {
                tokio::time::sleep(every).await;
                let lost = shared.roster(|r| r.lose_silent(Instant::now(), started, silence));
                for (i, why) in lost {
                    (shared.config.say)(format!("coordinator: shard {i} lost: {why}"));
                }
                if shared.roster(|r| r.all_ended()) {
                    shared.bump();
                    break;
                }
            }
        });
        let old = self
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(watcher);
        if let Some(old) = old {
            old.abort();
        }
        t0
    }

    /// Counts `shard` lost for `why` (it fell behind, say), unless it already was.
    pub fn lose(&self, shard: u32, why: String) {
        self.shared.roster(|r| r.lose(shard, why));
    }

    /// Waits up to `bound` for every shard's final part; a shard whose final part did not
    /// come is lost. Returns every shard's clock and end, the coordinator's first.
    pub async fn finish(&self, bound: Duration) -> Vec<SeatReport> {
        let mut changed = self.shared.changed.subscribe();
        let ended = changed.wait_for(|_| self.shared.roster(|r| r.all_ended()));
        let _ = tokio::time::timeout(bound, ended).await;
        let _merging = self.shared.merging.lock().await;
        self.shared.roster(|r| {
            for i in 1..r.ours.count {
                if r.seats.get(i as usize).is_some_and(|s| !s.done) {
                    r.lose(
                        i,
                        format!(
                            "its final part did not arrive within {:.0} s of the coordinator's \
                             own end",
                            bound.as_secs_f64()
                        ),
                    );
                }
            }
            (0u32..)
                .zip(&r.seats)
                .map(|(index, s)| SeatReport {
                    index,
                    offset: Duration::from_nanos(s.offset_ns.unsigned_abs()),
                    offset_negative: s.offset_ns < 0,
                    rtt: s.rtt,
                    pushes: s.pushes,
                    end: r.end_of(index),
                })
                .collect()
        })
    }

    /// Stops listening; pushes still coming are refused by the closed socket.
    pub async fn shutdown(&self) {
        let watcher = self
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(w) = watcher {
            w.abort();
        }
        let _ = self.stop.send(true);
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

async fn respond(req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let Some(endpoint) = path.strip_prefix(PREFIX) else {
        return refuse(StatusCode::NOT_FOUND, format!("no such path {path}"));
    };
    match (req.method(), endpoint) {
        (&Method::GET, "clock") => json(
            StatusCode::OK,
            &ClockReading {
                now_ns: clock::unix_ns(SystemTime::now()),
            },
        ),
        (&Method::POST, "register") => register(req, shared).await,
        (&Method::GET, "start") => start(&query, shared).await,
        (&Method::POST, "push") => push(req, &query, shared).await,
        _ => refuse(
            StatusCode::NOT_FOUND,
            format!("no {} {path} here", req.method()),
        ),
    }
}

async fn register(req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
    };
    let registration: Registration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("not a registration: {e}")),
    };
    if let Err(why) = shared.roster(|r| r.register(&registration)) {
        (shared.config.say)(format!(
            "coordinator: refused shard {}: {why}",
            registration.identity.index
        ));
        return refuse(StatusCode::CONFLICT, why);
    }
    shared.bump();
    (shared.config.say)(format!(
        "coordinator: shard {} registered (clock offset {:+.3} ms, round trip {:.3} ms)",
        registration.identity.index,
        registration.offset_ns as f64 / 1e6,
        registration.rtt_ns as f64 / 1e6
    ));
    let mut target = shared.target.subscribe();
    let known = target.wait_for(Option::is_some);
    let url = match tokio::time::timeout(shared.config.wait_for_shards, known).await {
        Ok(Ok(url)) => url.clone().unwrap_or_default(),
        _ => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the coordinator's target did not come up".into(),
            );
        }
    };
    json(
        StatusCode::OK,
        &Welcome {
            target: url,
            push_every_ms: u64::try_from(shared.config.push_every.as_millis()).unwrap_or(1000),
        },
    )
}

async fn start(query: &str, shared: &Shared) -> Response<Full<Bytes>> {
    let shard: Option<u32> = query_value(query, "shard").and_then(|s| s.parse().ok());
    let registered = shard
        .is_some_and(|i| shared.roster(|r| r.seats.get(i as usize).is_some_and(|s| s.registered)));
    if !registered {
        return refuse(
            StatusCode::CONFLICT,
            "only a registered shard may wait for the start".into(),
        );
    }
    let mut start = shared.start.subscribe();
    let decided = match start.wait_for(|s| *s != Start::Waiting).await {
        Ok(s) => s.clone(),
        Err(_) => Start::GaveUp("the coordinator is stopping".into()),
    };
    match decided {
        Start::At(t0_ns) => json(StatusCode::OK, &StartAt { t0_ns }),
        Start::GaveUp(why) => refuse(StatusCode::SERVICE_UNAVAILABLE, why),
        Start::Waiting => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the coordinator is stopping".into(),
        ),
    }
}

async fn push(req: Request<Incoming>, query: &str, shared: &Shared) -> Response<Full<Bytes>> {
    let Some(q) = PushQuery::parse(query) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("push needs shard=, seq= and done=0|1, got `{query}`"),
        );
    };
    let body = match Limited::new(req.into_body(), MAX_PART).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("reading the part: {e}")),
    };
    let _merging = shared.merging.lock().await;
    match shared.roster(|r| r.check_push(q.shard, q.seq)) {
        PushVerdict::AlreadyTaken => return json(StatusCode::OK, &serde_json::json!({})),
        PushVerdict::Refused(why) => return refuse(StatusCode::CONFLICT, why),
        PushVerdict::Merge => {}
    }
    if let Err(why) = shared.sink.absorb(q.shard, &body, q.done) {
        let why = format!("part {} of shard {}: {why}", q.seq, q.shard);
        shared.roster(|r| r.lose(q.shard, why.clone()));
        (shared.config.say)(format!("coordinator: shard {} lost: {why}", q.shard));
        return refuse(StatusCode::BAD_REQUEST, why);
    }
    shared.roster(|r| r.pushed(q.shard, q.seq, q.done, Instant::now()));
    shared.bump();
    json(StatusCode::OK, &serde_json::json!({}))
}

fn refuse(status: StatusCode, error: String) -> Response<Full<Bytes>> {
    json(status, &Complaint { error })
}

fn json(status: StatusCode, body: &impl Serialize) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(MARK_HEADER, HeaderValue::from_static(PROTOCOL));
    resp
}
