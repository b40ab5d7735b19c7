//! The coordinator's HTTP API as both sides see it: paths, the header that tells a gauntlet
//! coordinator from any other server, and the JSON bodies. Parts travel as raw bytes (the
//! part format), everything else as JSON.
//!
//! The exchange, all under `/gauntlet/v1/`:
//! - `GET clock`: the coordinator's wall clock; a shard samples it several times to estimate
//!   its own offset (NTP-style, keeping the sample with the smallest round trip).
//! - `POST register` (an `ShardIdentity` plus the shard's clock estimate): admitted with the
//!   target to send to, or refused (409) with the reason.
//! - `GET start?shard=I` (long poll): answered once every shard registered, with the start
//!   time t0 on the coordinator's clock, or 503 with the reason it gave up.
//! - `POST push?shard=I&seq=S&done=0|1` (a part as the body): what the shard recorded since its
//!   last push. Sequence numbers make a retried push harmless: one already taken is answered
//!   200 and not merged twice.

use serde::{Deserialize, Serialize};

/// Every path of the API starts with this.
pub const PREFIX: &str = "/gauntlet/v1/";

/// Present on every answer of a coordinator: a server without it is not one, whatever it
/// answers.
pub const MARK_HEADER: &str = "x-gauntlet-coordinator";

/// The protocol's own version, carried in the mark header: a shard of another protocol
/// version is refused up front rather than misread.
pub const PROTOCOL: &str = "1";

/// Who a shard says it is; every field must match the coordinator's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardIdentity {
    /// A hash of the scenario as compiled: two shards with different files (or profiles)
    /// would send different load under one verdict.
    pub fingerprint: String,
    pub seed: u64,
    pub count: u32,
    pub index: u32,
    /// gauntlet's version (`CARGO_PKG_VERSION`): parts are only merged within one version.
    pub version: String,
}

impl ShardIdentity {
    /// Why `self` (a shard) cannot join the run `ours` (the coordinator's), if it cannot.
    /// The index is checked apart: it must differ, not match.
    pub fn mismatch(&self, ours: &ShardIdentity) -> Option<String> {
        if self.version != ours.version {
            return Some(format!(
                "gauntlet version {} differs from the coordinator's {}",
                self.version, ours.version
            ));
        }
        if self.fingerprint != ours.fingerprint {
            return Some(format!(
                "scenario fingerprint {} differs from the coordinator's {}: the shards must run \
                 the same scenario file and profiles",
                self.fingerprint, ours.fingerprint
            ));
        }
        if self.seed != ours.seed {
            return Some(format!(
                "seed {} differs from the coordinator's {}",
                self.seed, ours.seed
            ));
        }
        if self.count != ours.count {
            return Some(format!(
                "shard count {} differs from the coordinator's {}",
                self.count, ours.count
            ));
        }
        if self.index == 0 || self.index >= ours.count {
            return Some(format!(
                "shard index {} is not one of 1..{} (shard 0 is the coordinator)",
                self.index, ours.count
            ));
        }
        None
    }
}

/// `GET clock`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ClockReading {
    /// Nanoseconds since the Unix epoch on the coordinator's clock, read when the request
    /// was handled.
    pub now_ns: i128,
}

/// `POST register`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registration {
    pub identity: ShardIdentity,
    /// The coordinator's clock minus the shard's, nanoseconds.
    pub offset_ns: i64,
    /// The round trip of the sample the offset came from, nanoseconds.
    pub rtt_ns: u64,
}

/// The answer to an admitted registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Welcome {
    /// Where the load goes (the coordinator's gateway, or the run's `--target`).
    pub target: String,
    /// How often the coordinator expects a push, milliseconds.
    pub push_every_ms: u64,
}

/// `GET start`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct StartAt {
    /// t0 on the coordinator's clock, nanoseconds since the Unix epoch.
    pub t0_ns: i128,
}

/// The body of every refusal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Complaint {
    pub error: String,
}

/// `POST push`'s query, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushQuery {
    pub shard: u32,
    pub seq: u64,
    pub done: bool,
}

/// The value of `key` in a query string (`a=1&b=2`).
pub fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find_map(|(k, v)| (k == key).then_some(v))
}

impl PushQuery {
    pub fn parse(query: &str) -> Option<Self> {
        Some(Self {
            shard: query_value(query, "shard")?.parse().ok()?,
            seq: query_value(query, "seq")?.parse().ok()?,
            done: match query_value(query, "done")? {
                "1" => true,
                "0" => false,
                _ => return None,
            },
        })
    }

    pub fn render(&self) -> String {
        format!(
            "shard={}&seq={}&done={}",
            self.shard,
            self.seq,
            u8::from(self.done)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(index: u32) -> ShardIdentity {
        ShardIdentity {
            fingerprint: "f".into(),
            seed: 7,
            count: 3,
            index,
            version: "1".into(),
        }
    }

    #[test]
    fn a_shard_is_refused_for_each_field_that_differs() {
        let ours = id(0);
        assert_eq!(id(1).mismatch(&ours), None);
        let seed = ShardIdentity { seed: 8, ..id(1) };
        assert!(seed.mismatch(&ours).is_some_and(|r| r.contains("seed 8")));
        let fp = ShardIdentity {
            fingerprint: "g".into(),
            ..id(1)
        };
        assert!(
            fp.mismatch(&ours)
                .is_some_and(|r| r.contains("fingerprint"))
        );
        let count = ShardIdentity { count: 4, ..id(1) };
        assert!(count.mismatch(&ours).is_some_and(|r| r.contains("count 4")));
        assert!(id(0).mismatch(&ours).is_some());
        assert!(id(3).mismatch(&ours).is_some());
    }

    #[test]
    fn a_push_query_reads_back_what_it_wrote() {
        let q = PushQuery {
            shard: 2,
            seq: 41,
            done: true,
        };
        assert_eq!(PushQuery::parse(&q.render()), Some(q));
        assert_eq!(PushQuery::parse("shard=2&seq=1&done=yes"), None);
        assert_eq!(PushQuery::parse("shard=2&done=1"), None);
    }
}
