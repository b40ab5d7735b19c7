//! Clock offsets between a shard and the coordinator, NTP-style: the shard notes its clock
//! before (t1) and after (t4) asking for the coordinator's (t), and takes the coordinator's
//! reading to be from the middle of the round trip. The error is at most half the round
//! trip, so of several samples the one with the smallest round trip is kept.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One round trip: the shard's clock before and after, the coordinator's in between, all
/// nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    pub sent_ns: i128,
    pub remote_ns: i128,
    pub received_ns: i128,
}

/// What the samples say: the coordinator's clock minus the shard's, and the round trip of
/// the sample it came from (the bound on its error is half of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockEstimate {
    pub offset_ns: i64,
    pub rtt: Duration,
}

impl ClockSample {
    fn rtt_ns(&self) -> i128 {
        (self.received_ns - self.sent_ns).max(0)
    }

    fn offset_ns(&self) -> i128 {
        self.remote_ns - (self.sent_ns + self.rtt_ns() / 2)
    }
}

/// The estimate from the sample with the smallest round trip; None without samples.
pub fn estimate(samples: &[ClockSample]) -> Option<ClockEstimate> {
    let best = samples.iter().min_by_key(|s| s.rtt_ns())?;
    let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
    Some(ClockEstimate {
        offset_ns: clamp(best.offset_ns()),
        rtt: Duration::from_nanos(u64::try_from(best.rtt_ns()).unwrap_or(u64::MAX)),
    })
}

/// Nanoseconds since the Unix epoch of `t` (negative before it).
pub fn unix_ns(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// The time `ns` nanoseconds since the Unix epoch.
pub fn from_unix_ns(ns: i128) -> SystemTime {
    let magnitude = Duration::from_nanos(u64::try_from(ns.unsigned_abs()).unwrap_or(u64::MAX));
    if ns >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// A moment on the coordinator's clock (`remote_ns`) as the shard's own clock shows it.
pub fn to_local(remote_ns: i128, offset_ns: i64) -> SystemTime {
    from_unix_ns(remote_ns - i128::from(offset_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_comes_from_the_sample_with_the_smallest_round_trip() {
        // The coordinator runs 5 ms ahead. A symmetric 2 ms trip sees exactly that; a slow
        // 40 ms one whose answer was delayed on the way back would say 5 - 19 = -14 ms.
        let fast = ClockSample {
            sent_ns: 1_000_000_000,
            remote_ns: 1_000_000_000 + 1_000_000 + 5_000_000,
            received_ns: 1_002_000_000,
        };
        let slow = ClockSample {
            sent_ns: 2_000_000_000,
            remote_ns: 2_000_000_000 + 1_000_000 + 5_000_000,
            received_ns: 2_040_000_000,
        };
        let e = estimate(&[slow, fast]).expect("two samples");
        assert_eq!(e.offset_ns, 5_000_000);
        assert_eq!(e.rtt, Duration::from_millis(2));
        assert_eq!(estimate(&[]), None);
    }

    #[test]
    fn a_remote_moment_is_moved_onto_the_local_clock() {
        let now = SystemTime::now();
        let remote = unix_ns(now) + 7_000_000;
        assert_eq!(to_local(remote, 7_000_000), from_unix_ns(unix_ns(now)));
        assert_eq!(unix_ns(from_unix_ns(-5)), -5);
    }
}
