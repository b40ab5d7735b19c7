//! The headers of a shard's parts, made alike for a live shard's pushes and for the part a
//! shard (live or offline) leaves in its run folder: the merge checks them against each other.

use std::path::Path;
use std::time::SystemTime;

use gauntlet::cluster::{Part, PartHeader, ShardEvidence, ShardId, fingerprint};
use gauntlet::engine::{Finished, Plan};
use gauntlet::metrics::{Recorder, ShardStats};
use gauntlet::scenario::Scenario;

/// What a shard's parts come from: the scenario file, the plan, the seed and the shard. Makes
/// their headers, for the parts a live shard pushes and the one every shard leaves on disk.
pub(super) struct PartOrigin<'a> {
    pub scenario: &'a Scenario,
    pub path: &'a Path,
    pub plan: &'a Plan,
    pub fingerprint: String,
    pub seed: u64,
    pub shard: ShardId,
}

impl PartOrigin<'_> {
    pub fn header(&self, started_at: SystemTime, stats: ShardStats) -> PartHeader {
        PartHeader {
            scenario: self.scenario.name.clone(),
            scenario_path: std::path::absolute(self.path).ok(),
            fingerprint: self.fingerprint.clone(),
            plan_fingerprint: fingerprint(self.plan),
            seed: self.seed,
            shard: self.shard,
            gauntlet_version: env!("CARGO_PKG_VERSION").to_string(),
            interval: self.plan.interval,
            started_at,
            stats,
        }
    }

    pub fn part(
        &self,
        recording: Recorder,
        started_at: SystemTime,
        stats: ShardStats,
        evidence: ShardEvidence,
    ) -> Part {
        Part {
            header: self.header(started_at, stats),
            evidence,
            recording,
        }
    }

    /// A finished run's whole part.
    pub fn whole(&self, run: &Finished) -> Part {
        self.part(
            run.recorder.clone(),
            run.started_at,
            ShardStats::of(self.shard.index, &run.summary),
            run.evidence.clone(),
        )
    }
}
