//! Many shards' parts into one run: refused unless they belong together (one scenario, seed,
//! plan, shard count and gauntlet version, no index twice), then merged exactly (histograms
//! added, counters summed) and concluded once, so the verdict is the one a single machine
//! sending the whole schedule would have reached. A shard that is missing makes it
//! inconclusive, naming the shard: never a pass on part of the load.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::part::{Part, PartError, PartHeader, ShardEvidence, convert};
use super::part_file::PartFile;
use crate::metrics::cost::Price;
use crate::metrics::failover::FaultAttempt;
use crate::metrics::{
    self, CheckStatus, Evidence, FoldError, MergeError, Recorder, RunInfo, ShardStats, Summary,
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
    heads: Heads,
    recording: Option<Recorder>,
    waiting: Vec<Recorder>,
}

impl PartMerger {
    /// Takes `part` (`name` says where it came from) once it is known to belong with the
    /// others.
    pub fn add(&mut self, name: String, part: Part) -> Result<(), PartsError> {
        self.heads.check(&name, &part.header)?;
        let Some(recording) = &self.recording else {
            self.heads.take(name, part.header, part.evidence)?;
            self.recording = Some(part.recording);
            return Ok(());
        };
        if part.recording.layout() != recording.layout() {
            return Err(PartsError::Layout(MergeError::Layout));
        }
        self.heads.take(name, part.header, part.evidence)?;
        self.waiting.push(part.recording);
        if self.waiting.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), PartsError> {
        if let Some(recording) = &mut self.recording {
            let waiting: Vec<&Recorder> = self.waiting.iter().collect();
            recording.merge_many(&waiting)?;
        }
        self.waiting.clear();
        Ok(())
    }

    /// The merge of every part added; which shards sent none is in `missing`.
    pub fn finish(mut self) -> Result<Merged, PartsError> {
        self.flush()?;
        let recording = self.recording.ok_or(PartsError::Empty)?;
        self.heads.into_merged(recording)
    }
}

/// What the parts' headers and evidence add up to, checked one against the first.
#[derive(Debug, Default)]
struct Heads {
    merged: Option<MergedHeads>,
    first_name: String,
    seen: BTreeMap<u32, String>,
}

/// `Merged` but its recording.
#[derive(Debug)]
struct MergedHeads {
    header: PartHeader,
    first: Option<ShardEvidence>,
    started_at: SystemTime,
    ran_for: Duration,
    interrupted: bool,
    shards: Vec<ShardStats>,
}

impl Heads {
    /// Refuses a part `h` (from `name`) of another run than the first part's.
    fn check(&self, name: &str, h: &PartHeader) -> Result<(), PartsError> {
        let Some(merged) = &self.merged else {
            return Ok(());
        };
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
                    other: name.to_string(),
                    b,
                });
            }
        }
        Ok(())
    }

    /// Counts a checked part's header and evidence in, refusing a shard that came before.
    fn take(
        &mut self,
        name: String,
        h: PartHeader,
        evidence: ShardEvidence,
    ) -> Result<(), PartsError> {
        if let Some(a) = self.seen.insert(h.shard.index, name.clone()) {
            return Err(PartsError::Duplicate {
                index: h.shard.index,
                a,
                b: name,
            });
        }
        let first = h.shard.is_first().then_some(evidence.clone());
        let Some(merged) = &mut self.merged else {
            self.first_name = name;
            self.merged = Some(MergedHeads {
                started_at: h.started_at,
                ran_for: evidence.ran_for,
                interrupted: evidence.interrupted,
                shards: vec![h.stats.clone()],
                first,
                header: h,
            });
            return Ok(());
        };
        merged.started_at = merged.started_at.min(h.started_at);
        merged.ran_for = merged.ran_for.max(evidence.ran_for);
        merged.interrupted |= evidence.interrupted;
        merged.shards.push(h.stats.clone());
        if first.is_some() {
            merged.first = first;
        }
        Ok(())
    }

    fn into_merged(self, recording: Recorder) -> Result<Merged, PartsError> {
        let m = self.merged.ok_or(PartsError::Empty)?;
        let mut shards = m.shards;
        shards.sort_by_key(|s| s.index);
        let missing = (0..m.header.shard.count.get())
            .filter(|i| !self.seen.contains_key(i))
            .collect();
        Ok(Merged {
            header: m.header,
            recording,
            first: m.first,
            started_at: m.started_at,
            ran_for: m.ran_for,
            interrupted: m.interrupted,
            shards,
            missing,
        })
    }
}

/// Why part files did not merge.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// One file is not a whole part: unreadable, damaged, of another format version.
    #[error("{path}: {error}")]
    Part {
        path: String,
        #[source]
        error: PartError,
    },
    #[error(transparent)]
    Parts(#[from] PartsError),
}

/// Merges the part files `paths` as `merge_parts` merges the parts they hold, reading their
/// recordings side by side as streams: every file is checked whole first (both cores hash),
/// then each merged cell is decoded and packed once, in the memory of one merged run.
pub fn merge_files(paths: &[PathBuf]) -> Result<Merged, FilesError> {
    let files = open_all(paths)?;
    let mut heads = Heads::default();
    let mut recordings = Vec::with_capacity(files.len());
    for f in files {
        let name = f.path.display().to_string();
        heads.check(&name, &f.header)?;
        let recording = f.recording().map_err(|e| FilesError::Part {
            path: name.clone(),
            error: PartError::Read(e),
        })?;
        recordings.push(recording);
        heads.take(name, f.header, f.evidence)?;
    }
    let recording = metrics::fold_recordings(recordings).map_err(|e| {
        let path = e
            .source_index()
            .and_then(|k| paths.get(k))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        match e {
            FoldError::Empty => FilesError::Parts(PartsError::Empty),
            FoldError::Merge(_, e) => FilesError::Parts(PartsError::Layout(e)),
            FoldError::Read(_, e) => FilesError::Part {
                path,
                error: PartError::Read(e),
            },
            FoldError::Codec(_, e) => FilesError::Part {
                path,
                error: PartError::Recording(e),
            },
        }
    })?;
    Ok(heads.into_merged(recording)?)
}

/// Every file checked, on as many threads as there are cores (two at most: hashing is
/// bound by memory as much as by the CPU); the first refusal in the order given.
fn open_all(paths: &[PathBuf]) -> Result<Vec<PartFile>, FilesError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, 2);
    let per = paths.len().div_ceil(threads).max(1);
    let opened: Vec<Result<PartFile, FilesError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(per)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|p| {
                            PartFile::open(p).map_err(|error| FilesError::Part {
                                path: p.display().to_string(),
                                error,
                            })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![Err(FilesError::Part {
                        path: String::new(),
                        error: PartError::Read(std::io::Error::other("a checking thread panicked")),
                    })]
                })
            })
            .collect()
    });
    opened.into_iter().collect()
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
