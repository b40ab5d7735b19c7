//! Which slice of a run this process sends: `--shard I/N`, or the environment a Kubernetes
//! Indexed Job pod gets (`JOB_COMPLETION_INDEX`, plus `GAUNTLET_SHARDS` from the manifest).

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

/// The environment variable Kubernetes sets on each pod of an Indexed Job.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// How many shards the run has, set by the manifest beside the index.
pub const COUNT_ENV: &str = "GAUNTLET_SHARDS";
/// Where shard 0 (the coordinator) listens, for the others to register.
pub const COORDINATOR_ENV: &str = "GAUNTLET_COORDINATOR";

/// Shard `index` of `count` (0-based): the shard sends arrival k of the one global schedule
/// when k mod count == index, and closed-model user u when u mod count == index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardId {
    pub index: u32,
    pub count: NonZeroU32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardIdError {
    #[error("{place}: `{value}` is not I/N (shard index / shard count, e.g. 0/4)")]
    Shape { place: String, value: String },
    #[error("{place}: `{value}` is not a whole number")]
    NotNumber { place: String, value: String },
    #[error("{place}: the shard count must be at least 1, got 0")]
    ZeroCount { place: String },
    #[error("{place}: shard index {index} is out of range for {count} shards (0 to {last})", last = count - 1)]
    OutOfRange {
        place: String,
        index: u32,
        count: u32,
    },
    #[error(
        "{set} is set but {unset} is not: a shard needs both its index and the shard count \
         (or pass --shard I/N)"
    )]
    HalfSet {
        set: &'static str,
        unset: &'static str,
    },
}

impl ShardId {
    /// The whole run on one machine.
    pub const WHOLE: ShardId = ShardId {
        index: 0,
        count: NonZeroU32::MIN,
    };

    pub fn new(index: u32, count: u32, place: &str) -> Result<Self, ShardIdError> {
        let count = NonZeroU32::new(count).ok_or_else(|| ShardIdError::ZeroCount {
            place: place.to_string(),
        })?;
        if index >= count.get() {
            return Err(ShardIdError::OutOfRange {
                place: place.to_string(),
                index,
                count: count.get(),
            });
        }
        Ok(Self { index, count })
    }

    /// `I/N` as `--shard` takes it.
    pub fn parse(value: &str, place: &str) -> Result<Self, ShardIdError> {
        let (i, n) = value.split_once('/').ok_or_else(|| ShardIdError::Shape {
            place: place.to_string(),
            value: value.to_string(),
        })?;
        let index = number(i, place, value)?;
        let count = number(n, place, value)?;
        Self::new(index, count, place)
    }

    /// The shard the flag names, else the one the environment names, else none (a whole run).
    /// `env` looks a variable up (`std::env::var` in the binary; a map in tests).
    pub fn resolve(
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ShardIdError> {
        if let Some(v) = flag {
            return Self::parse(v, "--shard").map(Some);
        }
        match (env(INDEX_ENV), env(COUNT_ENV)) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(ShardIdError::HalfSet {
                set: INDEX_ENV,
                unset: COUNT_ENV,
            }),
            (None, Some(_)) => Err(ShardIdError::HalfSet {
                set: COUNT_ENV,
                unset: INDEX_ENV,
            }),
            (Some(i), Some(n)) => {
                let index = number(&i, INDEX_ENV, &i)?;
                let count = number(&n, COUNT_ENV, &n)?;
                Self::new(index, count, &format!("{INDEX_ENV}={i}, {COUNT_ENV}={n}")).map(Some)
            }
        }
    }

    /// Whether the `k`-th item of a sequence dealt out round-robin is this shard's.
    pub fn owns(&self, k: u64) -> bool {
        k % u64::from(self.count.get()) == u64::from(self.index)
    }

    /// Whether this shard is the one that plays the fault timeline and reads the upstreams'
    /// counters: only one party may.
    pub fn is_first(&self) -> bool {
        self.index == 0
    }

    pub fn is_whole(&self) -> bool {
        self.count.get() == 1
    }
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn number(s: &str, place: &str, value: &str) -> Result<u32, ShardIdError> {
    s.trim().parse().map_err(|_| ShardIdError::NotNumber {
        place: place.to_string(),
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_flag_wins_over_the_environment() {
        let e = env(&[(INDEX_ENV, "2"), (COUNT_ENV, "3")]);
        let s = ShardId::resolve(Some("1/4"), &e).unwrap().unwrap();
        assert_eq!((s.index, s.count.get()), (1, 4));
        let s = ShardId::resolve(None, &e).unwrap().unwrap();
        assert_eq!((s.index, s.count.get()), (2, 3));
        assert_eq!(ShardId::resolve(None, env(&[])).unwrap(), None);
    }

    #[test]
    fn bad_shards_are_refused_naming_where_they_came_from() {
        let err = |flag: Option<&str>, vars: &[(&str, &str)]| {
            ShardId::resolve(flag, env(vars)).unwrap_err().to_string()
        };
        assert!(err(Some("3/3"), &[]).contains("--shard: shard index 3 is out of range for 3"));
        assert!(err(Some("0/0"), &[]).contains("--shard: the shard count must be at least 1"));
        assert!(err(Some("a/3"), &[]).contains("`a/3` is not a whole number"));
        assert!(err(Some("3"), &[]).contains("is not I/N"));
        assert!(err(None, &[(INDEX_ENV, "1")]).contains("GAUNTLET_SHARDS is not"));
        assert!(err(None, &[(COUNT_ENV, "2")]).contains("JOB_COMPLETION_INDEX is not"));
        let e = err(None, &[(INDEX_ENV, "5"), (COUNT_ENV, "2")]);
        assert!(
            e.contains("JOB_COMPLETION_INDEX=5, GAUNTLET_SHARDS=2"),
            "{e}"
        );
        assert!(err(None, &[(INDEX_ENV, "x"), (COUNT_ENV, "2")]).contains("JOB_COMPLETION_INDEX"));
    }

    #[test]
    fn items_are_dealt_round_robin() {
        let s = ShardId::parse("1/3", "t").unwrap();
        let mine: Vec<u64> = (0..10).filter(|k| s.owns(*k)).collect();
        assert_eq!(mine, [1, 4, 7]);
    }
}
