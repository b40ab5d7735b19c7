//! The part file (`part.gpart`, `RunFile::Part`): one shard's whole recording and what its conclusion rests
//! on, in a versioned envelope that says where it came from, so parts made on other machines
//! merge exactly or are refused with the reason.
//!
//! Layout: the magic line `GAUNTLET-PART\n`, the format version (u32, big-endian), the header
//! (JSON, u64 length first), the recording (`metrics::encode_recording`, u64 length first),
//! and an FNV-1a 64 checksum of everything before it, so a truncated or damaged file is
//! refused before any of it is believed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::shard_id::ShardId;
use crate::metrics::cost::Price;
use crate::metrics::failover::FaultAttempt;
use crate::metrics::{
    CodecError, Recorder, ShardStats, UpstreamCounters, decode_recording, encode_recording,
};

/// Bumped whenever the layout or a field's meaning changes; readers refuse other versions.
pub const PART_FORMAT: u32 = 1;
pub(super) const MAGIC: &[u8] = b"GAUNTLET-PART\n";

/// Where a part came from: checked against the other parts before anything is merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartHeader {
    pub scenario: String,
    /// The scenario file as the shard was given it (made absolute), for `gauntlet merge` to
    /// read the SLA from when not told another path.
    pub scenario_path: Option<PathBuf>,
    /// `file_fingerprint` of the scenario file.
    pub fingerprint: String,
    /// `fingerprint` of the plan the shard ran (after `--rate`, `--duration`).
    pub plan_fingerprint: String,
    pub seed: u64,
    pub shard: ShardId,
    pub gauntlet_version: String,
    pub interval: Duration,
    /// Wall clock when the shard's plan started.
    pub started_at: SystemTime,
    /// The shard's own numbers, for the per-shard table.
    pub stats: ShardStats,
}

/// What a shard's conclusion rests on beside its recording. Only the first shard plays the
/// faults and reads the upstreams' counters, so the others leave those empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardEvidence {
    /// The system under test as the shard described it.
    pub target: String,
    pub ran_for: Duration,
    pub interrupted: bool,
    pub faults: Vec<FaultAttempt>,
    pub counters_before: BTreeMap<String, CounterRecord>,
    pub counters_after: BTreeMap<String, CounterRecord>,
    pub prices: BTreeMap<String, PriceRecord>,
    pub monthly_tokens: Vec<u64>,
}

/// One shard's part: header, evidence, recording.
#[derive(Debug, Clone)]
pub struct Part {
    pub header: PartHeader,
    pub evidence: ShardEvidence,
    pub recording: Recorder,
}

#[derive(Debug, thiserror::Error)]
pub enum PartError {
    #[error("not a gauntlet part file (it does not start with GAUNTLET-PART)")]
    NotAPart,
    #[error(
        "part format version {found}, but this gauntlet ({ours}) reads version {PART_FORMAT}: \
         merge with the gauntlet version that made it",
        ours = env!("CARGO_PKG_VERSION")
    )]
    Version { found: u32 },
    #[error("the part file is truncated: it ends in its {0}")]
    Truncated(&'static str),
    #[error("the part file is damaged: its checksum does not match its contents")]
    Checksum,
    #[error("the part's header is malformed: {0}")]
    Header(#[source] serde_json::Error),
    #[error("the part's recording is malformed: {0}")]
    Recording(#[from] CodecError),
    #[error("cannot read the part: {0}")]
    Read(#[from] std::io::Error),
}

/// The header and evidence travel together as the JSON section.
#[derive(Serialize, Deserialize)]
pub(super) struct HeaderSection {
    pub(super) header: PartHeader,
    pub(super) evidence: ShardEvidence,
}

impl Part {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * 1024);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&PART_FORMAT.to_be_bytes());
        let section = HeaderSection {
            header: self.header.clone(),
            evidence: self.evidence.clone(),
        };
        // Plain data (strings, numbers, maps with string keys): serializing cannot fail.
        let json = serde_json::to_vec(&section).unwrap_or_default();
        out.extend_from_slice(&(json.len() as u64).to_be_bytes());
        out.extend_from_slice(&json);
        let mut body = Vec::new();
        encode_recording(&self.recording, &mut body);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
        out.extend_from_slice(&body);
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Part, PartError> {
        let rest = bytes.strip_prefix(MAGIC).ok_or(PartError::NotAPart)?;
        let (version, rest) = split_u32(rest).ok_or(PartError::Truncated("format version"))?;
        if version != PART_FORMAT {
            return Err(PartError::Version { found: version });
        }
        let Some(checked) = bytes.len().checked_sub(8) else {
            return Err(PartError::Truncated("checksum"));
        };
        let (json, rest) = split_section(rest).ok_or(PartError::Truncated("header"))?;
        let (body, rest) = split_section(rest).ok_or(PartError::Truncated("recording"))?;
        if rest.len() != 8 {
            return Err(if rest.len() < 8 {
                PartError::Truncated("checksum")
            } else {
                PartError::Checksum
            });
        }
        let stored = u64::from_be_bytes(rest.try_into().map_err(|_| PartError::Checksum)?);
        if fnv1a(&bytes[..checked]) != stored {
            return Err(PartError::Checksum);
        }
        let section: HeaderSection = serde_json::from_slice(json).map_err(PartError::Header)?;
        let recording = decode_recording(body)?;
        Ok(Part {
            header: section.header,
            evidence: section.evidence,
            recording,
        })
    }
}

pub(super) fn split_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let (n, rest) = b.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*n), rest))
}

fn split_section(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (n, rest) = b.split_first_chunk::<8>()?;
    let n = usize::try_from(u64::from_be_bytes(*n)).ok()?;
    (n <= rest.len()).then(|| rest.split_at(n))
}

/// FNV-1a, 64 bits: catches truncation and damage in transit, not tampering.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_on(FNV_START, bytes)
}

pub(super) const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a of `bytes` continued from the hash `h` of what came before them, for files hashed a
/// chunk at a time.
pub(super) fn fnv1a_on(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A fingerprint of a scenario file's text: the compiled scenario's own fields are not a
/// stable basis (some are hash maps, whose order differs from process to process).
pub fn file_fingerprint(path: &std::path::Path) -> std::io::Result<String> {
    Ok(format!("{:016x}", fnv1a(&std::fs::read(path)?)))
}

/// A fingerprint of a compiled value (a scenario with its profiles and datasets as they were
/// read, a plan): every field it holds, so shards given different files, edits or
/// `--rate`/`--duration` never merge.
pub fn fingerprint(value: &impl std::fmt::Debug) -> String {
    format!("{:016x}", fnv1a(format!("{value:?}").as_bytes()))
}

/// An upstream's counters, as the part keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterRecord {
    pub requests_total: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}

impl From<&UpstreamCounters> for CounterRecord {
    fn from(c: &UpstreamCounters) -> Self {
        Self {
            requests_total: c.requests_total,
            prompt_tokens: c.prompt_tokens,
            completion_tokens: c.completion_tokens,
            cached_tokens: c.cached_tokens,
            reasoning_tokens: c.reasoning_tokens,
        }
    }
}

impl From<&CounterRecord> for UpstreamCounters {
    fn from(c: &CounterRecord) -> Self {
        Self {
            requests_total: c.requests_total,
            prompt_tokens: c.prompt_tokens,
            completion_tokens: c.completion_tokens,
            cached_tokens: c.cached_tokens,
            reasoning_tokens: c.reasoning_tokens,
        }
    }
}

/// An upstream's prices, as the part keeps them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceRecord {
    pub input_per_m: f64,
    pub output_per_m: f64,
    pub cached_input_per_m: Option<f64>,
}

impl From<&Price> for PriceRecord {
    fn from(p: &Price) -> Self {
        Self {
            input_per_m: p.input_per_m,
            output_per_m: p.output_per_m,
            cached_input_per_m: p.cached_input_per_m,
        }
    }
}

impl From<&PriceRecord> for Price {
    fn from(p: &PriceRecord) -> Self {
        Self {
            input_per_m: p.input_per_m,
            output_per_m: p.output_per_m,
            cached_input_per_m: p.cached_input_per_m,
        }
    }
}

/// Converts a map of one record type to another, keys kept.
pub fn convert<A, B>(m: &BTreeMap<String, A>) -> BTreeMap<String, B>
where
    for<'a> B: From<&'a A>,
{
    m.iter().map(|(k, v)| (k.clone(), B::from(v))).collect()
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;
    use crate::metrics::{
        ClassInfo, ErrorKind, Layout, RecordingDeltas, RunInfo, Sample, ServedBy, Via, summarize,
    };

    fn layout() -> Layout {
        Layout::new(
            vec!["everyday".into(), "premium".into(), "chat".into()],
            vec!["deepseek".into(), "qwen".into()],
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_secs(200),
        )
        .with_baseline(true)
    }

    /// A sample of every shape the recorder keeps apart: successes with streams and token
    /// gaps, each error kind, conversation turns, prompts of many lengths, the baseline.
    fn sample(i: u64) -> Sample {
        let class = (i % 3) as usize;
        let mut s = Sample::new(
            class,
            Duration::from_millis(500 + i * 33 % 199_000),
            Duration::from_micros(i % 700),
        );
        s.latency = Duration::from_micros(2_000 + (i * 7919) % 900_000);
        s.prompt_tokens = 1 + (i * 31) % 9_000;
        s.completion_tokens = i % 200;
        s.cached_tokens = i % 5;
        match i % 11 {
            0 => s.result = Err(ErrorKind::ALL[(i / 11) as usize % ErrorKind::COUNT]),
            1 => s.route = Via::Direct,
            _ => {
                s.ttft = Some(s.latency / 3);
                s.ttfot = Some(s.latency / 2);
                s.tpot = Some(Duration::from_micros(100 + i % 900));
                s.itl = vec![Duration::from_micros(50 + i % 300); (i % 4) as usize];
                s.served_by = Some(if i.is_multiple_of(2) {
                    ServedBy::Known(0)
                } else {
                    ServedBy::Other("elsewhere".into())
                });
            }
        }
        if class == 2 {
            s.turn = Some(1 + (i % 4) as u16);
        }
        s
    }

    fn info(rec: &Recorder) -> RunInfo {
        RunInfo {
            scenario: "t".into(),
            description: None,
            seed: 7,
            target: "gateway".into(),
            started_at: SystemTime::UNIX_EPOCH,
            ran_for: Duration::from_secs(200),
            interrupted: false,
            classes: rec
                .layout()
                .classes
                .iter()
                .map(|n| ClassInfo {
                    name: n.clone(),
                    weight: 1,
                    model: "m".into(),
                    stream: true,
                    api: "chat",
                    primary: Some("deepseek".into()),
                    tier: None,
                })
                .collect(),
        }
    }

    /// Every number and histogram two recordings hold, compared.
    fn assert_same(a: &Recorder, b: &Recorder) {
        assert_eq!(a.layout(), b.layout());
        for (x, y) in a.classes().iter().zip(b.classes()) {
            assert_eq!(x.counts, y.counts);
            for (h, k) in [
                (&x.latency, &y.latency),
                (&x.ttft, &y.ttft),
                (&x.ttfot, &y.ttfot),
                (&x.tpot, &y.tpot),
                (&x.itl, &y.itl),
            ] {
                assert_eq!(h, k);
            }
            let errors = |r: &crate::metrics::ClassRecord| {
                r.errors
                    .iter()
                    .map(|(k, h)| (k, h.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(errors(x), errors(y));
            assert_eq!(x.tokens, y.tokens);
            let turns = |r: &crate::metrics::ClassRecord| {
                r.turns
                    .iter()
                    .map(|(n, t)| {
                        (
                            n,
                            t.requests,
                            t.successes,
                            t.latency.clone(),
                            t.ttft.clone(),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(turns(x), turns(y));
            let bins = |r: &crate::metrics::ClassRecord| {
                r.prompt_lengths
                    .bins()
                    .map(|(b, n, h)| (b, n, h.cloned()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(bins(x), bins(y));
        }
        let n = a.layout().classes.len();
        for i in 0..a.layout().intervals {
            for (x, y) in a.interval(i).iter().zip(b.interval(i)) {
                assert_eq!(x.counts, y.counts, "interval {i}");
                assert_eq!(x.latency(), y.latency(), "interval {i}");
                assert_eq!(x.ttft(), y.ttft());
                assert_eq!(x.ttfot(), y.ttfot());
                assert_eq!(x.tpot(), y.tpot());
                assert_eq!(
                    x.time_to_error().collect::<Vec<_>>(),
                    y.time_to_error().collect::<Vec<_>>()
                );
            }
            let (da, db) = (a.direct().unwrap(), b.direct().unwrap());
            for c in 0..n {
                assert_eq!(da.latency(i, c), db.latency(i, c));
                assert_eq!(da.counts(c), db.counts(c));
            }
        }
        assert_eq!(a.lag(), b.lag());
        assert_eq!(a.abandoned(), b.abandoned());
        let (sa, sb) = (summarize(a, &info(a)), summarize(b, &info(b)));
        assert_eq!(
            serde_json::to_value(&sa).unwrap(),
            serde_json::to_value(&sb).unwrap()
        );
    }

    fn recorded(n: u64) -> Recorder {
        recorded_from(0, n)
    }

    fn recorded_from(from: u64, n: u64) -> Recorder {
        let mut rec = Recorder::new(layout());
        for i in from..from + n {
            rec.record(&sample(i));
            if i % 97 == 0 {
                rec.record_dropped((i % 3) as usize, Duration::from_secs(2 + i % 100));
                rec.record_dropped_direct(0, Duration::from_secs(3));
            }
        }
        rec.add_abandoned(3);
        rec
    }

    fn part(rec: Recorder) -> Part {
        Part {
            header: PartHeader {
                scenario: "t".into(),
                scenario_path: Some("/x/t.toml".into()),
                fingerprint: "00ff".into(),
                plan_fingerprint: "ff00".into(),
                seed: 7,
                shard: ShardId {
                    index: 1,
                    count: NonZeroU32::new(3).unwrap(),
                },
                gauntlet_version: "0.1.0".into(),
                interval: Duration::from_secs(1),
                started_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                stats: ShardStats {
                    index: 1,
                    requests: 10,
                    rps: 2.5,
                    ..ShardStats::default()
                },
            },
            evidence: ShardEvidence {
                target: "gw".into(),
                ran_for: Duration::from_millis(200_500),
                faults: vec![FaultAttempt {
                    upstream: "deepseek".into(),
                    kind: "outage".into(),
                    start: Duration::from_secs(8),
                    end: Duration::from_secs(14),
                    outcome: crate::metrics::failover::FaultOutcome::Applied {
                        at: Duration::from_millis(8_002),
                        lifted: None,
                    },
                }],
                counters_after: BTreeMap::from([(
                    "deepseek".to_string(),
                    CounterRecord {
                        requests_total: 9,
                        ..CounterRecord::default()
                    },
                )]),
                ..ShardEvidence::default()
            },
            recording: rec,
        }
    }

    #[test]
    fn a_part_decodes_to_exactly_what_was_encoded() {
        let rec = recorded(6_000);
        let p = part(rec.clone());
        let bytes = p.encode();
        let back = Part::decode(&bytes).expect("decodes");
        assert_eq!(back.header, p.header);
        assert_eq!(back.evidence, p.evidence);
        assert_same(&rec, &back.recording);
        // And what was decoded encodes to the same bytes: nothing was lost or reordered.
        assert_eq!(part(back.recording).encode(), bytes);
    }

    #[test]
    fn parts_merged_in_batches_equal_the_recordings_merged_one_by_one() {
        let mut one_by_one = Recorder::new(layout());
        let mut parts = Vec::new();
        for i in 0..11u32 {
            let rec = recorded_from(u64::from(i) * 300, 500);
            one_by_one.merge(&rec).expect("one layout");
            let mut p = part(rec);
            p.header.shard = ShardId::new(i, 11, "test").unwrap();
            let back = Part::decode(&p.encode()).expect("decodes");
            parts.push((format!("part {i}"), back));
        }
        let merged = crate::cluster::merge_parts(parts).expect("one run");
        assert!(merged.missing.is_empty());
        assert_same(&one_by_one, &merged.recording);
    }

    #[test]
    fn part_files_streamed_side_by_side_merge_as_the_parts_do_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut parts = Vec::new();
        let mut paths = Vec::new();
        for i in 0..5u32 {
            let mut p = part(recorded_from(u64::from(i) * 700, 900));
            p.header.shard = ShardId::new(i, 6, "test").unwrap();
            let path = dir.path().join(format!("{i}.gpart"));
            std::fs::write(&path, p.encode()).unwrap();
            parts.push((format!("part {i}"), p));
            paths.push(path);
        }
        let expected = crate::cluster::merge_parts(parts).expect("one run");
        let merged = crate::cluster::merge_files(&paths).expect("one run");
        assert_same(&expected.recording, &merged.recording);
        assert_eq!(merged.missing, vec![5]);
        assert_eq!(merged.shards, expected.shards);
        assert_eq!(merged.first, expected.first);
        assert_eq!(merged.header, expected.header);

        let bytes = std::fs::read(&paths[2]).unwrap();
        let refused = |name: &str, b: &[u8]| {
            let at = dir.path().join(name);
            std::fs::write(&at, b).unwrap();
            let mut given = paths.clone();
            given[2] = at;
            crate::cluster::merge_files(&given).unwrap_err().to_string()
        };
        let mut damaged = bytes.clone();
        damaged[bytes.len() * 2 / 3] ^= 0x40;
        let e = refused("damaged.gpart", &damaged);
        assert!(e.contains("damaged.gpart") && e.contains("checksum"), "{e}");
        let e = refused("short.gpart", &bytes[..bytes.len() - 100]);
        assert!(e.contains("short.gpart") && e.contains("truncated"), "{e}");
        let mut newer = bytes.clone();
        newer[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&2u32.to_be_bytes());
        assert!(refused("newer.gpart", &newer).contains("part format version 2"));
        assert!(refused("junk.gpart", b"{}").contains("not a gauntlet part file"));
        let e = crate::cluster::merge_files(&[paths[0].clone(), paths[0].clone()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("shard 0 comes twice"), "{e}");
        let e = crate::cluster::merge_files(&[dir.path().join("absent.gpart")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("absent.gpart") && e.contains("cannot read"),
            "{e}"
        );
    }

    #[test]
    fn garbage_truncation_damage_and_other_versions_are_refused() {
        let bytes = part(recorded(500)).encode();
        let err = |b: &[u8]| Part::decode(b).unwrap_err().to_string();
        assert!(err(b"{\"not\": \"a part\"}").contains("not a gauntlet part file"));
        assert!(err(&bytes[..bytes.len() / 2]).contains("truncated"));
        assert!(err(&bytes[..20]).contains("truncated"));
        let mut damaged = bytes.clone();
        damaged[bytes.len() / 2] ^= 0x40;
        assert!(err(&damaged).contains("checksum"));
        let mut newer = bytes.clone();
        newer[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&2u32.to_be_bytes());
        assert!(err(&newer).contains("part format version 2"));
    }

    #[test]
    fn deltas_taken_while_recording_merge_to_exactly_the_whole() {
        let mut whole = Recorder::new(layout());
        let deltas = RecordingDeltas::new(layout());
        let mut taken = Vec::new();
        for i in 0..8_000 {
            let s = sample(i);
            whole.record(&s);
            deltas.with(|d| d.record(&s));
            if i % 97 == 0 {
                whole.record_dropped(0, Duration::from_secs(5));
                deltas.with(|d| d.record_dropped(0, Duration::from_secs(5)));
            }
            if i % 1_500 == 0 {
                // Through the wire, as a shard streams them.
                let bytes = part(deltas.take()).encode();
                taken.push(Part::decode(&bytes).expect("a delta decodes").recording);
            }
        }
        taken.push(deltas.take());
        let mut merged = Recorder::new(layout());
        for d in &taken {
            merged.merge(d).expect("one layout");
        }
        assert_same(&whole, &merged);
    }
}
