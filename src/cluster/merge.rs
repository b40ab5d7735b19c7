//! Many shards' parts into one run: refused unless they belong together (one scenario, seed,
//! plan, shard count and gauntlet version, no index twice), then merged exactly (histograms
//! added, counters summed) and concluded once, so the verdict is the one a single machine
//! sending the whole schedule would have reached. A shard that is missing makes it
//! inconclusive, naming the shard: never a pass on part of the load.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::part::{Part, PartHeader, ShardEvidence, convert};
use crate::metrics::cost::Price;
use crate::metrics::failover::FaultAttempt;
use crate::metrics::{
    self, CheckStatus, Evidence, MergeError, Recorder, RunInfo, ShardStats, Summary,
    UpstreamCounters,
};
use crate::rundir::{RunDir, RunDirError};
use crate::scenario::Scenario;

/// Parts merged: one recording, and what the conclusion needs from the shards.
#[derive(Debug, Clone)]
pub struct Merged {
    /// The first part's header (they agree on everything but the shard and its numbers).
    pub header: PartHeader,
    pub recording: Recorder,
    /// The first shard's evidence (it alone played the faults and read the counters); None
    /// when the first shard's part is missing.
    pub first: Option<ShardEvidence>,
    /// The earliest start and the longest run of any shard, and whether any was stopped.
    pub started_at: SystemTime,
    pub ran_for: Duration,
    pub interrupted: bool,
    pub shards: Vec<ShardStats>,
    /// Indexes no part came for.
    pub missing: Vec<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum PartsError {
    #[error("no parts to merge")]
    Empty,
    #[error("{what} differ: {first} has {a}, {other} has {b}; these parts are not of one run")]
    Mismatch {
        what: &'static str,
        first: String,
        a: String,
        other: String,
        b: String,
    },
    #[error("shard {index} comes twice: {a} and {b}")]
    Duplicate { index: u32, a: String, b: String },
    #[error("{0}")]
    Layout(#[from] MergeError),
}

/// Merges `parts` (each with where it came from, for messages).
pub fn merge_parts(parts: Vec<(String, Part)>) -> Result<Merged, PartsError> {
    let mut merger = PartMerger::default();
    for (name, part) in parts {
        merger.add(name, part)?;
    }
    merger.finish()
}

/// Recordings merged together at once: each settled interval of the merge is unpacked and
/// packed once per batch, and at most this many parts wait in memory.
const BATCH: usize = 8;

/// Merges parts as they come (read from disk, or sent by shards), checking each against the
/// first before it counts.
#[derive(Debug, Default)]
pub struct PartMerger {
    merged: Option<Merged>,
    first_name: String,
    seen: BTreeMap<u32, String>,
    waiting: Vec<Recorder>,
}

impl PartMerger {
    /// Takes `part` (`name` says where it came from) once it is known to belong with the
    /// others.
    pub fn add(&mut self, name: String, part: Part) -> Result<(), PartsError> {
        let Some(merged) = &mut self.merged else {
            self.seen.insert(part.header.shard.index, name.clone());
            self.first_name = name;
            self.merged = Some(Merged {
                header: part.header.clone(),
                started_at: part.header.started_at,
                ran_for: part.evidence.ran_for,
                interrupted: part.evidence.interrupted,
                shards: vec![part.header.stats.clone()],
                first: part.header.shard.is_first().then_some(part.evidence),
                recording: part.recording,
                missing: Vec::new(),
            });
            return Ok(());
        };
        let h = &part.header;
        let base = &merged.header;
        let checks: [(&'static str, String, String); 5] = [
            ("scenarios", base.fingerprint_text(), h.fingerprint_text()),
            ("seeds", base.seed.to_string(), h.seed.to_string()),
            (
                "shard counts",
                base.shard.count.to_string(),
                h.shard.count.to_string(),
            ),
            (
                "gauntlet versions",
                base.gauntlet_version.clone(),
                h.gauntlet_version.clone(),
            ),
            (
                "plans (--rate, --duration or the load)",
                base.plan_fingerprint.clone(),
                h.plan_fingerprint.clone(),
            ),
        ];
        for (what, a, b) in checks {
            if a != b {
                return Err(PartsError::Mismatch {
                    what,
                    first: self.first_name.clone(),
                    a,
                    other: name,
                    b,
                });
            }
        }
        if part.recording.layout() != merged.recording.layout() {
            return Err(PartsError::Layout(MergeError::Layout));
        }
        if let Some(a) = self.seen.insert(h.shard.index, name.clone()) {
            return Err(PartsError::Duplicate {
                index: h.shard.index,
                a,
                b: name,
            });
        }
        merged.started_at = merged.started_at.min(h.started_at);
        merged.ran_for = merged.ran_for.max(part.evidence.ran_for);
        merged.interrupted |= part.evidence.interrupted;
        merged.shards.push(h.stats.clone());
        if h.shard.is_first() {
            merged.first = Some(part.evidence);
        }
        self.waiting.push(part.recording);
        if self.waiting.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PartsError> {
        if let Some(merged) = &mut self.merged {
            let waiting: Vec<&Recorder> = self.waiting.iter().collect();
            merged.recording.merge_many(&waiting)?;
        }
        self.waiting.clear();
        Ok(())
    }

    /// The merge of every part added; which shards sent none is in `missing`.
    pub fn finish(mut self) -> Result<Merged, PartsError> {
        self.flush()?;
        let mut merged = self.merged.ok_or(PartsError::Empty)?;
        merged.shards.sort_by_key(|s| s.index);
        merged.missing = (0..merged.header.shard.count.get())
            .filter(|i| !self.seen.contains_key(i))
            .collect();
        Ok(merged)
    }
}

impl PartHeader {
    fn fingerprint_text(&self) -> String {
        format!("`{}` (fingerprint {})", self.scenario, self.fingerprint)
    }
}

/// The merged run's summary and verdict, judged once on the merged data against `scenario`'s
/// SLA.
pub fn conclude_merged(merged: &Merged, scenario: &Scenario) -> Summary {
    let first = merged.first.clone().unwrap_or_default();
    let mut info = RunInfo::starting(scenario, merged.header.seed, first.target.clone());
    info.started_at = merged.started_at;
    info.ran_for = merged.ran_for;
    info.interrupted = merged.interrupted;
    let faults: Vec<FaultAttempt> = first.faults.clone();
    let before: BTreeMap<String, UpstreamCounters> = convert(&first.counters_before);
    let after: BTreeMap<String, UpstreamCounters> = convert(&first.counters_after);
    let prices: BTreeMap<String, Price> = convert(&first.prices);
    let monthly = if first.monthly_tokens.is_empty() {
        metrics::cost::DEFAULT_MONTHLY_TOKENS.to_vec()
    } else {
        first.monthly_tokens.clone()
    };
    let mut summary = metrics::conclude(Evidence {
        recording: &merged.recording,
        info: &info,
        faults: &faults,
        counters_before: &before,
        counters_after: &after,
        answered_tokens: &BTreeMap::new(),
        prices: &prices,
        sla: &scenario.sla,
        monthly_tokens: &monthly,
        alternatives: &scenario.compare_to,
    });
    summary.shards = merged.shards.clone();
    if !merged.missing.is_empty() {
        let names: Vec<String> = merged.missing.iter().map(u32::to_string).collect();
        inconclusive(
            &mut summary,
            format!(
                "shard{} {} of {} sent no part: the merged run holds only part of the load",
                if names.len() == 1 { "" } else { "s" },
                names.join(", "),
                merged.header.shard.count
            ),
        );
    }
    summary
}

/// Marks a merged run untrustworthy for `reason`, and its verdict inconclusive: the coordinator
/// does the same for a shard that died or fell behind.
pub fn inconclusive(summary: &mut Summary, reason: String) {
    summary.trust.trustworthy = false;
    summary.trust.reasons.push(reason);
    summary.sla.passed = false;
    summary.sla.verdict = CheckStatus::Inconclusive;
}

/// Writes the merged run folder: the histogram log and `summary.json`, as a run writes them,
/// then every report.
pub fn write_merged(
    dir: &mut RunDir,
    merged: &Merged,
    summary: &Summary,
) -> Result<Vec<PathBuf>, WriteError> {
    dir.write_hlog(&merged.recording, merged.started_at)?;
    let mut written = vec![dir.write_summary(summary)?];
    written.extend(crate::report::write_reports(summary, dir)?);
    Ok(written)
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
}
