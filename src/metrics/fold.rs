//! Many encoded recordings (shards' parts) merged straight from their bytes, read side by side
//! as streams: interval by interval, each source's cell is decoded once and added, and the
//! merged cell is packed once. Decoding every part into a `Recorder` first and merging those
//! unpacks and repacks each merged cell once per batch of parts, and holds the batch in memory;
//! here memory is the merged recording plus a small window of each source, however many
//! sources there are.

use std::io::Read;
use std::ops::Range;

use hdrhistogram::Histogram;

use super::codec::{
    CodecError, Reader, read_cell_fields, read_class, read_direct_counts, read_layout,
};
use super::hist::{AddEncodedError, add_encoded};
use super::recorder::{Cell, Counts, MergeError, Recorder};
use super::sample::ErrorKind;

/// Why the recordings did not merge; every variant but `Empty` names the source (its index in
/// the order given).
#[derive(Debug, thiserror::Error)]
pub enum FoldError {
    #[error("no recordings to merge")]
    Empty,
    #[error("reading it: {1}")]
    Read(usize, #[source] std::io::Error),
    #[error("{1}")]
    Codec(usize, #[source] CodecError),
    #[error("{1}")]
    Merge(usize, #[source] MergeError),
}

impl FoldError {
    /// The index of the source at fault.
    pub fn source_index(&self) -> Option<usize> {
        match self {
            FoldError::Empty => None,
            FoldError::Read(i, _) | FoldError::Codec(i, _) | FoldError::Merge(i, _) => Some(*i),
        }
    }
}

/// Merges the recordings `sources` hold (each exactly what `encode_recording` wrote, nothing
/// after it), in order: the result equals decoding each and merging them one by one into an
/// empty recording of their layout.
pub fn fold_recordings<R: Read>(sources: Vec<R>) -> Result<Recorder, FoldError> {
    let mut streams: Vec<Stream<R>> = sources.into_iter().map(Stream::new).collect();
    let mut layout = None;
    for (k, s) in streams.iter_mut().enumerate() {
        let (l, _) = s.next(read_layout).map_err(|e| e.at(k))?;
        match &layout {
            None => layout = Some(l),
            // As strict as `PartMerger`: the whole layout, names of upstreams and objectives too.
            Some(first) if l != *first => {
                return Err(FoldError::Merge(k, MergeError::Layout));
            }
            Some(_) => {}
        }
    }
    let layout = layout.ok_or(FoldError::Empty)?;
    let classes = layout.classes.len();
    let mut rec = Recorder::new(layout);

    // Whole-run records: a few histograms per class, decoded and added as they are.
    for c in 0..classes {
        for (k, s) in streams.iter_mut().enumerate() {
            let (class, _) = s.next(read_class).map_err(|e| e.at(k))?;
            rec.classes[c]
                .merge(&class)
                .map_err(|e| FoldError::Merge(k, e))?;
        }
    }

    // The per-interval cells, the bulk of every part: one merged cell at a time.
    for i in 0..rec.cells.len() {
        let mut cell = Cell::default();
        for (k, s) in streams.iter_mut().enumerate() {
            let (raw, bytes) = s.next(raw_cell).map_err(|e| e.at(k))?;
            cell.counts.merge(&raw.counts);
            let [latency, ttft, ttfot, tpot] = raw.hists;
            for (slot, range) in [
                (&mut cell.latency, latency),
                (&mut cell.ttft, ttft),
                (&mut cell.ttfot, ttfot),
                (&mut cell.tpot, tpot),
            ] {
                if let Some(range) = range {
                    add_slot(slot.live(), &bytes, range, k)?;
                }
            }
            for (kind, range) in raw.errors {
                if let Some(range) = range {
                    add_slot(cell.error_slot(kind).live(), &bytes, range, k)?;
                }
            }
        }
        cell.pack();
        rec.cells[i] = cell;
    }

    for (k, s) in streams.iter_mut().enumerate() {
        let (lag, _) = s
            .next(|r| r.hist::<u64>("the lag histogram"))
            .map_err(|e| e.at(k))?;
        rec.lag
            .add(&lag)
            .map_err(|e| FoldError::Merge(k, MergeError::Histogram(e.to_string())))?;
        let (abandoned, _) = s
            .next(|r| r.u64("the abandoned count"))
            .map_err(|e| e.at(k))?;
        rec.abandoned += abandoned;
        let baseline = rec.direct.is_some();
        let (flag, _) = s
            .next(|r| match r.u64("the baseline flag")? {
                0 if !baseline => Ok(false),
                1 if baseline => Ok(true),
                other => Err(r.malformed(format!("baseline flag {other} against the layout"))),
            })
            .map_err(|e| e.at(k))?;
        if flag && let Some(d) = &mut rec.direct {
            for c in d.counts.iter_mut() {
                let (counts, _) = s.next(read_direct_counts).map_err(|e| e.at(k))?;
                c.merge(&counts);
            }
        }
    }
    if let Some(d) = &mut rec.direct {
        for slot in d.cells.iter_mut() {
            for (k, s) in streams.iter_mut().enumerate() {
                let (range, bytes) = s
                    .next(|r| r.slot_range("a baseline cell"))
                    .map_err(|e| e.at(k))?;
                if let Some(range) = range {
                    add_slot(slot.live(), &bytes, range, k)?;
                }
            }
            slot.pack();
        }
    }
    for (k, s) in streams.iter_mut().enumerate() {
        s.finish().map_err(|e| e.at(k))?;
    }
    // Everything merged is finished: packed, as a decoded recording is.
    rec.packed_below = rec.layout.intervals;
    Ok(rec)
}

/// Adds the histogram at `range` of `span` (of source `k`) into `into`.
fn add_slot(
    into: &mut Histogram<u32>,
    span: &Span<'_>,
    range: Range<usize>,
    k: usize,
) -> Result<(), FoldError> {
    let at = span.at + range.start;
    add_encoded(into, &span.bytes[range]).map_err(|e| match e {
        AddEncodedError::NotV2 => FoldError::Codec(
            k,
            CodecError::Malformed {
                what: "a cell's histogram: not an HDR V2 histogram".into(),
                at,
            },
        ),
        AddEncodedError::Overflow(e) => FoldError::Merge(k, MergeError::Histogram(e)),
    })
}

/// A cell as it lies in the bytes: its counts, and where each histogram is.
struct RawCell {
    counts: Counts,
    /// Latency, TTFT, TTFOT, TPOT.
    hists: [Option<Range<usize>>; 4],
    errors: Vec<(ErrorKind, Option<Range<usize>>)>,
}

/// Reads a cell as `codec::read_cell` does, leaving its histograms encoded.
fn raw_cell(r: &mut Reader<'_>) -> Result<RawCell, CodecError> {
    let (counts, hists, errors) = read_cell_fields(r, Reader::slot_range)?;
    Ok(RawCell {
        counts,
        hists,
        errors,
    })
}

/// What a stream could not give.
enum SourceFault {
    Read(std::io::Error),
    Codec(CodecError),
}

impl SourceFault {
    fn at(self, k: usize) -> FoldError {
        match self {
            SourceFault::Read(e) => FoldError::Read(k, e),
            SourceFault::Codec(e) => FoldError::Codec(k, e),
        }
    }
}

/// An item's bytes, and where they start in their source.
struct Span<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// Bytes read ahead of each source: the sources' windows together stay a few megabytes.
const WINDOW: usize = 64 * 1024;

/// A source read through a window that slides along it.
struct Stream<R> {
    src: R,
    buf: Vec<u8>,
    /// `buf[start..end]` is read and not yet consumed.
    start: usize,
    end: usize,
    /// Bytes of the source before `buf[0]`, for error positions.
    base: usize,
    eof: bool,
}

impl<R: Read> Stream<R> {
    fn new(src: R) -> Self {
        Self {
            src,
            buf: vec![0; WINDOW],
            start: 0,
            end: 0,
            base: 0,
            eof: false,
        }
    }

    fn position(&self) -> usize {
        self.base + self.start
    }

    /// Reads more, keeping what is not consumed yet; the window doubles when one item fills
    /// all of it.
    fn fill(&mut self) -> Result<(), SourceFault> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.base += self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SourceFault::Read(e)),
            }
        }
    }

    /// The next item, parsed by `parse` from the window (read further and parsed again when
    /// the window ends inside it), and the bytes it spans, which ranges it holds index.
    fn next<T>(
        &mut self,
        parse: impl Fn(&mut Reader<'_>) -> Result<T, CodecError>,
    ) -> Result<(T, Span<'_>), SourceFault> {
        loop {
            let mut r = Reader {
                bytes: &self.buf[self.start..self.end],
                at: 0,
            };
            match parse(&mut r) {
                Ok(v) => {
                    let span = self.start..self.start + r.at;
                    let at = self.position();
                    self.start = span.end;
                    return Ok((
                        v,
                        Span {
                            bytes: &self.buf[span],
                            at,
                        },
                    ));
                }
                Err(CodecError::Truncated { .. }) if !self.eof => self.fill()?,
                Err(e) => return Err(SourceFault::Codec(shifted(e, self.position()))),
            }
        }
    }

    /// Refuses bytes after the recording.
    fn finish(&mut self) -> Result<(), SourceFault> {
        while !self.eof {
            self.fill()?;
        }
        match self.end - self.start {
            0 => Ok(()),
            n => Err(SourceFault::Codec(CodecError::Trailing(n))),
        }
    }
}

/// `e` with its byte position counted from the start of the source, not of the window.
fn shifted(e: CodecError, by: usize) -> CodecError {
    match e {
        CodecError::Truncated { what, at } => CodecError::Truncated { what, at: at + by },
        CodecError::Malformed { what, at } => CodecError::Malformed { what, at: at + by },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::{Layout, Sample, ServedBy, encode_recording};

    fn layout() -> Layout {
        Layout::new(
            vec!["a".into(), "b".into()],
            vec!["up".into()],
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(120),
        )
        .with_baseline(true)
    }

    fn recorded(seed: u64) -> Recorder {
        let mut rec = Recorder::new(layout());
        for i in 0..3_000u64 {
            let x = i * 7919 + seed * 104_729;
            let mut s = Sample::new(
                (x % 2) as usize,
                Duration::from_millis(x % 120_000),
                Duration::from_micros(x % 500),
            );
            s.latency = Duration::from_micros(1_000 + x % 2_000_000);
            match x % 13 {
                0 => s.result = Err(ErrorKind::ALL[(x / 13) as usize % ErrorKind::COUNT]),
                1 => s.route = crate::metrics::Via::Direct,
                _ => {
                    s.ttft = Some(s.latency / 4);
                    s.tpot = Some(Duration::from_micros(200 + x % 800));
                    s.served_by = Some(if x.is_multiple_of(3) {
                        ServedBy::Known(0)
                    } else {
                        ServedBy::Other(format!("o{}", x % 5).into())
                    });
                }
            }
            rec.record(&s);
        }
        rec.add_abandoned(seed);
        rec
    }

    fn encoded(rec: &Recorder) -> Vec<u8> {
        let mut b = Vec::new();
        encode_recording(rec, &mut b);
        b
    }

    /// A reader handing out a few bytes at a time, so items straddle the window's refills.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = out.len().min(self.0.len()).min(777);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn folded_streams_equal_the_recordings_merged_one_by_one() {
        let recs: Vec<Recorder> = (1..=5).map(recorded).collect();
        let mut one_by_one = Recorder::new(layout());
        for r in &recs {
            one_by_one.merge(r).expect("one layout");
        }
        let bytes: Vec<Vec<u8>> = recs.iter().map(encoded).collect();
        let folded =
            fold_recordings(bytes.iter().map(|b| Trickle(b)).collect()).expect("they merge");
        assert_same(&folded, &one_by_one);
        assert_same(&one_by_one, &folded);
    }

    /// Every count and histogram of `a` is `b`'s. (Their bytes may differ: a histogram's
    /// encoding carries the top of its range, which depends on how it grew.)
    fn assert_same(a: &Recorder, b: &Recorder) {
        assert_eq!(a.layout(), b.layout());
        for (x, y) in a.classes().iter().zip(b.classes()) {
            assert_eq!(x.counts, y.counts);
            assert!(x.latency == y.latency && x.ttft == y.ttft && x.tpot == y.tpot);
            assert!(x.ttfot == y.ttfot && x.itl == y.itl);
            assert!(x.errors.iter().eq(y.errors.iter()));
            assert_eq!(x.tokens, y.tokens);
        }
        let (da, db) = (a.direct().expect("baseline"), b.direct().expect("baseline"));
        for i in 0..a.layout().intervals {
            for (c, (x, y)) in a.interval(i).iter().zip(b.interval(i)).enumerate() {
                assert_eq!(x.counts, y.counts, "interval {i}");
                assert!(x.latency() == y.latency(), "interval {i}");
                assert!(x.ttft() == y.ttft() && x.ttfot() == y.ttfot() && x.tpot() == y.tpot());
                assert!(x.time_to_error().eq(y.time_to_error()), "interval {i}");
                assert!(da.latency(i, c) == db.latency(i, c), "interval {i}");
                assert_eq!(da.counts(c), db.counts(c));
            }
        }
        assert!(a.lag() == b.lag());
        assert_eq!(a.abandoned(), b.abandoned());
    }

    #[test]
    fn a_truncated_trailing_or_other_layout_source_is_named() {
        let a = encoded(&recorded(1));
        let b = encoded(&recorded(2));
        let err = fold_recordings(vec![&a[..], &b[..b.len() - 3]]).unwrap_err();
        assert_eq!(err.source_index(), Some(1), "{err}");
        assert!(err.to_string().contains("ends early"), "{err}");
        let mut longer = a.clone();
        longer.push(0);
        let err = fold_recordings(vec![&b[..], &longer[..]]).unwrap_err();
        assert_eq!(err.source_index(), Some(1));
        assert!(err.to_string().contains("follow the end"), "{err}");
        let other = encoded(&Recorder::new(layout().with_baseline(false)));
        let err = fold_recordings(vec![&a[..], &other[..]]).unwrap_err();
        assert!(
            matches!(err, FoldError::Merge(1, MergeError::Layout)),
            "{err}"
        );
        assert!(matches!(
            fold_recordings(Vec::<&[u8]>::new()),
            Err(FoldError::Empty)
        ));
    }
}
