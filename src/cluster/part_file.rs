//! A part file read without holding it in memory: checked whole (magic, version, lengths and
//! checksum) before anything in it is believed, then its recording handed out as a stream, so
//! `gauntlet merge` reads many parts side by side in the memory of a small window each.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::part::{
    FNV_START, HeaderSection, MAGIC, PART_FORMAT, PartError, PartHeader, ShardEvidence, fnv1a_on,
    split_u32,
};

/// A checked part file: its header and evidence, and where its recording lies.
#[derive(Debug)]
pub struct PartFile {
    pub path: PathBuf,
    pub header: PartHeader,
    pub evidence: ShardEvidence,
    body_at: u64,
    body_len: u64,
}

/// Bytes hashed at a time.
const CHUNK: usize = 1 << 20;

impl PartFile {
    /// Reads the part at `path` through once, refusing it as `Part::decode` would refuse its
    /// bytes (same checks, same order), and keeps its head.
    pub fn open(path: &Path) -> Result<PartFile, PartError> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        let mut fixed = [0u8; MAGIC.len() + 4];
        let got = read_up_to(&mut f, &mut fixed)?;
        let rest = fixed[..got]
            .strip_prefix(MAGIC)
            .ok_or(PartError::NotAPart)?;
        let (version, _) = split_u32(rest).ok_or(PartError::Truncated("format version"))?;
        if version != PART_FORMAT {
            return Err(PartError::Version { found: version });
        }
        let json_at = (MAGIC.len() + 4) as u64;
        let json_len = section_len(&mut f, len, json_at).ok_or(PartError::Truncated("header"))?;
        let mut json = vec![0; usize::try_from(json_len).map_err(|_| PartError::Checksum)?];
        f.read_exact(&mut json)?;
        let body_len_at = json_at + 8 + json_len;
        let body_len =
            section_len(&mut f, len, body_len_at).ok_or(PartError::Truncated("recording"))?;
        let body_at = body_len_at + 8;
        match len - body_at - body_len {
            8 => {}
            n if n < 8 => return Err(PartError::Truncated("checksum")),
            _ => return Err(PartError::Checksum),
        }
        // Everything but the stored checksum, hashed a chunk at a time.
        f.seek(SeekFrom::Start(0))?;
        let mut h = FNV_START;
        let mut left = len - 8;
        let mut buf = vec![0; CHUNK];
        while left > 0 {
            let n = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
            f.read_exact(&mut buf[..n])?;
            h = fnv1a_on(h, &buf[..n]);
            left -= n as u64;
        }
        let mut stored = [0u8; 8];
        f.read_exact(&mut stored)?;
        if u64::from_be_bytes(stored) != h {
            return Err(PartError::Checksum);
        }
        let section: HeaderSection = serde_json::from_slice(&json).map_err(PartError::Header)?;
        Ok(PartFile {
            path: path.to_path_buf(),
            header: section.header,
            evidence: section.evidence,
            body_at,
            body_len,
        })
    }

    /// The recording, read from the file as it is consumed.
    pub fn recording(&self) -> std::io::Result<impl Read + use<>> {
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(self.body_at))?;
        Ok(f.take(self.body_len))
    }
}

/// The length (u64, big-endian) at `at` of a section that must fit in the `len` bytes of the
/// file after it; the file is left at the section's start.
fn section_len(f: &mut File, len: u64, at: u64) -> Option<u64> {
    let after = at.checked_add(8)?;
    if after > len {
        return None;
    }
    f.seek(SeekFrom::Start(at)).ok()?;
    let mut n = [0u8; 8];
    f.read_exact(&mut n).ok()?;
    let n = u64::from_be_bytes(n);
    (n <= len - after).then_some(n)
}

/// Fills `buf` as far as the file goes; how much it filled.
fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
