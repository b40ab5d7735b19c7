//! What the coordinator knows of each shard: registered or not, its clock, its pushes, and
//! whether it finished or was lost (and why). Plain state behind the server's lock, so every
//! rule about admitting a shard or a push is here and testable without a socket.

use std::time::{Duration, Instant};

use crate::cluster::wire::{Registration, ShardIdentity};

/// One shard as the coordinator sees it. Index 0 is the coordinator itself.
#[derive(Debug, Clone, Default)]
pub struct ShardSeat {
    pub registered: bool,
    /// The coordinator's clock minus the shard's.
    pub offset_ns: i64,
    pub rtt: Duration,
    /// When its last push arrived (None: none yet).
    pub last_push: Option<Instant>,
    /// The sequence number of the last push merged (pushes count from 1).
    pub seq: u64,
    pub pushes: u64,
    pub done: bool,
    /// Why its numbers cannot be trusted to be whole, once they cannot.
    pub lost: Option<String>,
}

/// How a shard ended, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeatEnd {
    Finished,
    Lost(String),
}

/// Whether a push is to be merged, or was merged already (a retry), or is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushVerdict {
    Merge,
    AlreadyTaken,
    Refused(String),
}

#[derive(Debug, Clone)]
pub struct Roster {
    pub ours: ShardIdentity,
    pub seats: Vec<ShardSeat>,
    /// Set once t0 was announced (or the wait was given up): registrations close.
    pub closed: Option<String>,
}

impl Roster {
    pub fn new(ours: ShardIdentity) -> Self {
        let mut seats = vec![ShardSeat::default(); ours.count as usize];
        if let Some(me) = seats.first_mut() {
            me.registered = true;
        }
        Self {
            ours,
            seats,
            closed: None,
        }
    }

    /// Admits `r`, or says why not.
    pub fn register(&mut self, r: &Registration) -> Result<(), String> {
        if let Some(why) = r.identity.mismatch(&self.ours) {
            return Err(why);
        }
        if let Some(why) = &self.closed {
            return Err(format!("registration is closed: {why}"));
        }
        let seat = self
            .seats
            .get_mut(r.identity.index as usize)
            .ok_or_else(|| format!("shard index {} is out of range", r.identity.index))?;
        if seat.registered {
            return Err(format!(
                "shard index {} is already registered: two shards were given the same index",
                r.identity.index
            ));
        }
        seat.registered = true;
        seat.offset_ns = r.offset_ns;
        seat.rtt = Duration::from_nanos(r.rtt_ns);
        Ok(())
    }

    /// The indexes still to register.
    pub fn missing(&self) -> Vec<u32> {
        (0..)
            .zip(&self.seats)
            .filter(|(_, s)| !s.registered)
            .map(|(i, _)| i)
            .collect()
    }

    /// The largest round trip of any registered shard.
    pub fn largest_rtt(&self) -> Duration {
        self.seats.iter().map(|s| s.rtt).max().unwrap_or_default()
    }

    /// Whether a push of `shard` numbered `seq` is merged.
    pub fn check_push(&self, shard: u32, seq: u64) -> PushVerdict {
        let Some(seat) = self.seats.get(shard as usize).filter(|_| shard > 0) else {
            return PushVerdict::Refused(format!("shard {shard} is not a shard of this run"));
        };
        if !seat.registered {
            return PushVerdict::Refused(format!("shard {shard} never registered"));
        }
        if let Some(why) = &seat.lost {
            return PushVerdict::Refused(format!(
                "shard {shard} was already counted lost ({why}); its later numbers are not merged"
            ));
        }
        if seq <= seat.seq {
            return PushVerdict::AlreadyTaken;
        }
        if seq != seat.seq + 1 {
            return PushVerdict::Refused(format!(
                "push {seq} of shard {shard} skips {}: pushes must arrive in order",
                seat.seq + 1
            ));
        }
        PushVerdict::Merge
    }

    /// Notes a merged push.
    pub fn pushed(&mut self, shard: u32, seq: u64, done: bool, at: Instant) {
        if let Some(seat) = self.seats.get_mut(shard as usize) {
            seat.seq = seq;
            seat.pushes += 1;
            seat.last_push = Some(at);
            seat.done |= done;
        }
    }

    /// Marks every shard silent since `started` (or its last push) for longer than `silence`
    /// lost; returns the ones newly marked, with the reason.
    pub fn lose_silent(
        &mut self,
        now: Instant,
        started: Instant,
        silence: Duration,
    ) -> Vec<(u32, String)> {
        let mut lost = Vec::new();
        for (i, seat) in (0u32..).zip(self.seats.iter_mut()).skip(1) {
            if seat.done || seat.lost.is_some() {
                continue;
            }
            let since = seat.last_push.unwrap_or(started);
            let quiet = now.saturating_duration_since(since);
            if quiet > silence {
                let why = match seat.last_push {
                    Some(_) => format!(
                        "no push for {:.1} s after its push {} (died or cut off)",
                        quiet.as_secs_f64(),
                        seat.seq
                    ),
                    None => format!(
                        "no push for {:.1} s since the start (died or cut off)",
                        quiet.as_secs_f64()
                    ),
                };
                seat.lost = Some(why.clone());
                lost.push((i, why));
            }
        }
        lost
    }

    /// Marks `shard` lost for `why` unless it already ended.
    pub fn lose(&mut self, shard: u32, why: String) {
        if let Some(seat) = self.seats.get_mut(shard as usize)
            && seat.lost.is_none()
        {
            seat.lost = Some(why);
        }
    }

    /// Every shard but the coordinator finished or was lost.
    pub fn all_ended(&self) -> bool {
        self.seats
            .iter()
            .skip(1)
            .all(|s| s.done || s.lost.is_some())
    }

    pub fn end_of(&self, shard: u32) -> SeatEnd {
        match self.seats.get(shard as usize) {
            Some(ShardSeat {
                lost: Some(why), ..
            }) => SeatEnd::Lost(why.clone()),
            _ => SeatEnd::Finished,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(index: u32, seed: u64) -> Registration {
        Registration {
            identity: ShardIdentity {
                fingerprint: "f".into(),
                seed,
                count: 3,
                index,
                version: "v".into(),
            },
            offset_ns: 1000,
            rtt_ns: 2_000_000,
        }
    }

    fn roster() -> Roster {
        Roster::new(ShardIdentity {
            index: 0,
            ..registration(0, 7).identity
        })
    }

    #[test]
    fn shards_register_once_each_and_the_missing_are_named() {
        let mut r = roster();
        assert_eq!(r.missing(), vec![1, 2]);
        assert_eq!(r.register(&registration(2, 7)), Ok(()));
        let twice = r.register(&registration(2, 7)).expect_err("a duplicate");
        assert!(twice.contains("already registered"), "{twice}");
        let seed = r.register(&registration(1, 8)).expect_err("another seed");
        assert!(seed.contains("seed 8"), "{seed}");
        assert_eq!(r.missing(), vec![1]);
        assert_eq!(r.largest_rtt(), Duration::from_millis(2));
        r.closed = Some("the run started".into());
        let late = r.register(&registration(1, 7)).expect_err("closed");
        assert!(late.contains("closed"), "{late}");
    }

    #[test]
    fn pushes_merge_in_order_once_and_a_silent_shard_is_lost() {
        let mut r = roster();
        r.register(&registration(1, 7)).expect("admitted");
        r.register(&registration(2, 7)).expect("admitted");
        let t0 = Instant::now();
        assert_eq!(r.check_push(1, 1), PushVerdict::Merge);
        r.pushed(1, 1, false, t0 + Duration::from_secs(1));
        assert_eq!(r.check_push(1, 1), PushVerdict::AlreadyTaken);
        assert!(matches!(r.check_push(1, 3), PushVerdict::Refused(_)));
        assert!(matches!(r.check_push(0, 1), PushVerdict::Refused(_)));
        // Shard 2 never pushes; shard 1 pushed at 1 s.
        let lost = r.lose_silent(t0 + Duration::from_millis(3500), t0, Duration::from_secs(3));
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].0, 2);
        assert!(!r.all_ended());
        r.pushed(1, 2, true, t0 + Duration::from_secs(4));
        assert!(r.all_ended());
        assert_eq!(r.end_of(1), SeatEnd::Finished);
        assert!(matches!(r.end_of(2), SeatEnd::Lost(_)));
        assert!(matches!(r.check_push(2, 1), PushVerdict::Refused(_)));
    }
}
