//! Running one scenario on many machines: which slice a shard sends (`ShardId`), the part file
//! a shard leaves (its whole recording, exactly), and the exact merge of parts into one run
//! with one verdict (`gauntlet merge`, and the coordinator's live merge); the live protocol between shards
//! and their coordinator (`coordinator`, `link`, `wire`, `clock`).

pub mod clock;
pub mod coordinator;
pub mod link;
mod merge;
mod part;
mod part_file;
mod shard_id;
pub mod wire;

pub use merge::{
    FilesError, Merged, PartMerger, PartsError, WriteError, conclude_merged, inconclusive,
    merge_files, merge_parts, write_merged,
};
pub use part::{
    CounterRecord, PART_FORMAT, Part, PartError, PartHeader, PriceRecord, ShardEvidence, convert,
    file_fingerprint, fingerprint, fnv1a,
};
pub use part_file::PartFile;
pub use shard_id::{COORDINATOR_ENV, COUNT_ENV, INDEX_ENV, ShardId, ShardIdError};

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    use super::coordinator::{Coordinator, CoordinatorConfig, PartSink, SeatEnd};
    use super::link::{Link, LinkError, PushError};
    use super::wire::ShardIdentity;

    #[derive(Default)]
    struct Kept(Mutex<Vec<(u32, Vec<u8>, bool)>>);

    impl PartSink for Kept {
        fn absorb(&self, shard: u32, part: &[u8], done: bool) -> Result<(), String> {
            if part == b"garbage" {
                return Err("not a part".into());
            }
            self.0
                .lock()
                .map_err(|e| e.to_string())?
                .push((shard, part.to_vec(), done));
            Ok(())
        }
    }

    fn identity(index: u32, seed: u64) -> ShardIdentity {
        ShardIdentity {
            fingerprint: "fp".into(),
            seed,
            count: 3,
            index,
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    fn config() -> CoordinatorConfig {
        CoordinatorConfig {
            identity: identity(0, 7),
            push_every: Duration::from_millis(200),
            wait_for_shards: Duration::from_secs(20),
            silence: Duration::from_millis(800),
            say: Arc::new(|_| {}),
        }
    }

    #[tokio::test]
    async fn shards_join_start_together_push_once_each_and_a_silent_one_is_lost() {
        let kept = Arc::new(Kept::default());
        let coordinator =
            Coordinator::start("127.0.0.1:0".parse().expect("addr"), config(), kept.clone())
                .await
                .expect("listening");
        coordinator.set_target("http://127.0.0.1:9/".into());
        let addr = coordinator.addr().to_string();
        let one = Link::new(&addr, 1).expect("link");
        let two = Link::new(&addr, 2).expect("link");
        let joined = one
            .join(&identity(1, 7), Duration::from_secs(10))
            .await
            .expect("admitted");
        assert_eq!(joined.target, "http://127.0.0.1:9/");
        assert!(joined.clock.rtt < Duration::from_secs(5));
        // Another seed is refused with the reason; the same index twice too.
        let other = Link::new(&addr, 2).expect("link");
        let refused = other.join(&identity(2, 8), Duration::from_secs(10)).await;
        assert!(
            matches!(&refused, Err(LinkError::Refused { reason, .. }) if reason.contains("seed 8")),
            "{refused:?}"
        );
        let twice = one.join(&identity(1, 7), Duration::from_secs(10)).await;
        assert!(
            matches!(&twice, Err(e @ LinkError::Refused { .. }) if e.is_invalid_input()),
            "{twice:?}"
        );
        let waiting = {
            let one = one.clone();
            let offset = joined.clock.offset_ns;
            tokio::spawn(async move { one.wait_start(offset, Duration::from_secs(20)).await })
        };
        two.join(&identity(2, 7), Duration::from_secs(10))
            .await
            .expect("admitted");
        coordinator.wait_for_shards().await.expect("all there");
        let t0 = coordinator.announce();
        let local = waiting.await.expect("joined").expect("a start");
        let apart = local
            .duration_since(t0)
            .or_else(|e| Ok::<_, ()>(e.duration()))
            .expect("a difference");
        assert!(apart < Duration::from_millis(100), "{apart:?}");
        assert!(t0 > SystemTime::now());
        // Shard 1 pushes twice (the second retried), then finishes; shard 2 says nothing.
        one.push(1, false, "a".into()).await.expect("taken");
        one.push(1, false, "a".into())
            .await
            .expect("a retry is fine");
        let gap = one.push(3, false, "c".into()).await;
        assert!(matches!(gap, Err(PushError::Refused(_))), "{gap:?}");
        one.push(2, true, "b".into()).await.expect("taken");
        let seats = coordinator.finish(Duration::from_secs(20)).await;
        assert_eq!(seats.len(), 3);
        assert_eq!(seats[1].end, SeatEnd::Finished);
        assert!(
            matches!(&seats[2].end, SeatEnd::Lost(why) if why.contains("no push")),
            "{:?}",
            seats[2]
        );
        let got = kept.0.lock().expect("kept").clone();
        assert_eq!(
            got,
            vec![(1, b"a".to_vec(), false), (1, b"b".to_vec(), true)]
        );
        coordinator.shutdown().await;
    }

    #[tokio::test]
    async fn a_coordinator_that_never_gets_everyone_names_the_missing_shards() {
        let config = CoordinatorConfig {
            wait_for_shards: Duration::from_millis(300),
            ..config()
        };
        let coordinator = Coordinator::start(
            "127.0.0.1:0".parse().expect("addr"),
            config,
            Arc::new(Kept::default()),
        )
        .await
        .expect("listening");
        let e = coordinator
            .wait_for_shards()
            .await
            .expect_err("nobody came");
        assert_eq!(e.missing, vec![1, 2]);
        assert!(e.to_string().contains("shards 1, 2"), "{e}");
        coordinator.shutdown().await;
    }

    #[tokio::test]
    async fn nothing_listening_is_unreachable_and_a_stranger_is_not_gauntlet() {
        // A port just freed: nothing listens there.
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = free.local_addr().expect("addr").to_string();
        drop(free);
        let e = Link::new(&addr, 1)
            .expect("link")
            .join(&identity(1, 7), Duration::from_millis(500))
            .await
            .expect_err("nobody there");
        assert!(matches!(e, LinkError::Unreachable { .. }), "{e:?}");
        assert!(!e.is_invalid_input());
        // A TCP server that answers with something that is not HTTP.
        let stranger = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = stranger.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = stranger.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").await;
            }
        });
        let e = Link::new(&addr, 1)
            .expect("link")
            .join(&identity(1, 7), Duration::from_secs(5))
            .await
            .expect_err("not a coordinator");
        assert!(
            matches!(e, LinkError::NotGauntlet { .. }) && e.is_invalid_input(),
            "{e:?}"
        );
    }
}
