//! Histogram plumbing shared by the recorder and the direct baseline: durations recorded in
//! microseconds, and per-interval histograms that are packed once no more samples are due.

use std::borrow::Cow;
use std::time::Duration;

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};

/// Longest value a histogram tracks, in microseconds (one hour); longer values are clamped.
const MAX_MICROS: u64 = 3_600_000_000;
/// Per-interval histograms keep two significant digits (1%), so a long run's series stays
/// small.
const INTERVAL_SIGFIG: u8 = 2;

/// A per-interval histogram: none yet (empty intervals cost nothing), live while samples may
/// still arrive, then packed into HDR's compact V2 encoding. A live one costs kilobytes
/// whatever it holds; packed, a second of traffic is a few hundred bytes, so a long run's
/// series no longer grows memory by the minute.
#[derive(Debug, Clone, Default)]
pub(super) struct Slot {
    live: Option<Box<Histogram<u32>>>,
    packed: Option<Box<[u8]>>,
}

impl Slot {
    pub(super) fn live(&mut self) -> &mut Histogram<u32> {
        if self.live.is_none()
            && let Some(bytes) = self.packed.take()
        {
            self.live = unpack(&bytes);
        }
        self.live.get_or_insert_with(per_interval)
    }

    pub(super) fn get(&self) -> Option<Cow<'_, Histogram<u32>>> {
        match (&self.live, &self.packed) {
            (Some(h), _) => Some(Cow::Borrowed(h.as_ref())),
            (None, Some(bytes)) => unpack(bytes).map(|h| Cow::Owned(*h)),
            (None, None) => None,
        }
    }

    /// The histogram in V2 encoding, if there is one: packed bytes as they are.
    pub(super) fn encoded(&self) -> Option<Cow<'_, [u8]>> {
        match (&self.live, &self.packed) {
            (Some(h), _) => {
                let mut bytes = Vec::new();
                V2Serializer::new()
                    .serialize(h.as_ref(), &mut bytes)
                    .ok()
                    .map(|_| Cow::Owned(bytes))
            }
            (None, Some(bytes)) => Some(Cow::Borrowed(bytes)),
            (None, None) => None,
        }
    }

    /// A packed slot of V2 bytes, once they are known to decode.
    pub(super) fn from_encoded(bytes: &[u8]) -> Option<Slot> {
        decode_hist::<u32>(bytes)?;
        Some(Slot {
            live: None,
            packed: Some(bytes.into()),
        })
    }

    #[cfg(test)]
    pub(super) fn is_packed(&self) -> bool {
        self.packed.is_some()
    }

    pub(super) fn pack(&mut self) {
        let Some(h) = &self.live else { return };
        let mut bytes = Vec::new();
        // Packed only once it is known to decode to the same histogram; otherwise it stays
        // live, which costs memory, never data.
        if V2Serializer::new()
            .serialize(h.as_ref(), &mut bytes)
            .is_ok()
            && unpack(&bytes).is_some_and(|back| back.as_ref() == h.as_ref())
        {
            self.packed = Some(bytes.into_boxed_slice());
            self.live = None;
        }
    }
}

fn unpack(bytes: &[u8]) -> Option<Box<Histogram<u32>>> {
    let mut h: Histogram<u32> = decode_hist(bytes)?;
    h.auto(true);
    Some(Box::new(h))
}

/// A V2 histogram, refusing a payload length the bytes do not hold before the decoder would
/// allocate room for it.
pub(super) fn decode_hist<T: hdrhistogram::Counter>(b: &[u8]) -> Option<Histogram<T>> {
    // Cookie, payload length, offset, digits, low, high, ratio: 40 bytes, then the payload.
    let payload = u32::from_be_bytes(b.get(4..8)?.try_into().ok()?);
    if usize::try_from(payload).ok()? > b.len().saturating_sub(40) {
        return None;
    }
    Deserializer::new().deserialize(&mut &b[..]).ok()
}

/// Why encoded bytes did not add into a histogram.
#[derive(Debug)]
pub(super) enum AddEncodedError {
    /// They are not a V2 histogram.
    NotV2,
    /// A count overflowed.
    Overflow(String),
}

const V2_COOKIE: u32 = 0x1c84_9313;
const V2_HEADER: usize = 40;

/// Adds the V2-encoded histogram `bytes` into `into`, count by count, without building it
/// first: merging many shards adds millions of small histograms, and building each (a counts
/// array allocated and zeroed, then walked whole by `Histogram::add`) cost ten times the
/// decoding. Each count is recorded at its index's lowest value, as `add` records it, so the
/// sum is the same histogram. Bytes of another precision go through `add`.
pub(super) fn add_encoded(into: &mut Histogram<u32>, bytes: &[u8]) -> Result<(), AddEncodedError> {
    let header = bytes.get(..V2_HEADER).ok_or(AddEncodedError::NotV2)?;
    let u32_at = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let u64_at = |at: usize| (u64::from(u32_at(at)) << 32) | u64::from(u32_at(at + 4));
    let payload_len = usize::try_from(u32_at(4)).map_err(|_| AddEncodedError::NotV2)?;
    let digits = u32_at(12);
    let low = u64_at(16);
    let high = u64_at(24);
    let Some(payload) = bytes.get(V2_HEADER..V2_HEADER + payload_len) else {
        return Err(AddEncodedError::NotV2);
    };
    if u32_at(0) != V2_COOKIE
        || u32_at(8) != 0
        || f64::from_bits(u64_at(32)) != 1.0
        || digits != u32::from(into.sigfig())
        || low != into.low()
        || !(1..=5).contains(&digits)
    {
        let h: Histogram<u32> = decode_hist(bytes).ok_or(AddEncodedError::NotV2)?;
        return into
            .add(&h)
            .map_err(|e| AddEncodedError::Overflow(e.to_string()));
    }
    let geometry = Geometry::of(digits, low).ok_or(AddEncodedError::NotV2)?;
    let len = geometry.counts_len(high);
    let mut index = 0usize;
    let mut at = 0;
    while at < payload.len() {
        let (zz, n) = varint(&payload[at..]).ok_or(AddEncodedError::NotV2)?;
        at += n;
        // Zig-zag: a negative number is a run of empty indexes.
        let v = ((zz >> 1) as i64) ^ -((zz & 1) as i64);
        if v < 0 {
            index = index
                .checked_add(usize::try_from(v.unsigned_abs()).map_err(|_| AddEncodedError::NotV2)?)
                .ok_or(AddEncodedError::NotV2)?;
            continue;
        }
        if v > 0 {
            if index >= len {
                return Err(AddEncodedError::NotV2);
            }
            let count = u32::try_from(v)
                .map_err(|_| AddEncodedError::Overflow(format!("a count of {v}")))?;
            into.record_n(geometry.value_for(index), count)
                .map_err(|e| AddEncodedError::Overflow(e.to_string()))?;
        }
        index += 1;
    }
    Ok(())
}

/// How an HDR histogram of some precision and lowest value lays its counts out (as
/// `hdrhistogram` computes it).
struct Geometry {
    unit_magnitude: u32,
    half_magnitude: u32,
    sub_bucket_count: u64,
}

impl Geometry {
    fn of(digits: u32, low: u64) -> Option<Geometry> {
        let largest = 2 * 10u64.pow(digits);
        let count_magnitude = 64 - (largest - 1).leading_zeros();
        let unit_magnitude = low.checked_ilog2()?;
        (unit_magnitude + count_magnitude <= 63).then_some(Geometry {
            unit_magnitude,
            half_magnitude: count_magnitude - 1,
            sub_bucket_count: 1 << count_magnitude,
        })
    }

    /// Counts a histogram tracking values up to `high` holds.
    fn counts_len(&self, high: u64) -> usize {
        let mut untrackable = self.sub_bucket_count << self.unit_magnitude;
        let mut buckets = 1usize;
        while untrackable <= high {
            if untrackable > u64::MAX / 2 {
                buckets += 1;
                break;
            }
            untrackable <<= 1;
            buckets += 1;
        }
        (buckets + 1) << self.half_magnitude
    }

    /// The lowest value counted at `index`.
    fn value_for(&self, index: usize) -> u64 {
        let half = 1usize << self.half_magnitude;
        let bucket = (index >> self.half_magnitude) as i64 - 1;
        let sub = (index & (half - 1)) + half;
        let (bucket, sub) = if bucket < 0 {
            (0, sub - half)
        } else {
            (bucket as u32, sub)
        };
        // Indexes past a u64 (only in bytes made up) wrap, as in `hdrhistogram`.
        (sub as u64).wrapping_shl(bucket + self.unit_magnitude)
    }
}

/// LEB128 as HDR writes it (the ninth byte whole): the number and the bytes it took.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..9 {
        let byte = *b.get(i)?;
        if i == 8 {
            return Some((v | (u64::from(byte) << 56), 9));
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

fn per_interval() -> Box<Histogram<u32>> {
    let mut h = Histogram::new_with_max(1_000, INTERVAL_SIGFIG)
        .expect("constant histogram bounds are valid");
    h.auto(true);
    Box::new(h)
}

pub(super) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .min(MAX_MICROS)
}

pub(super) fn record<T: hdrhistogram::Counter>(h: &mut Histogram<T>, d: Duration) {
    let v = micros(d);
    // Auto-resize makes this fail only when a count overflows; clamping is the honest fallback.
    if h.record(v).is_err() {
        h.saturating_record(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(h: &Histogram<u32>) -> Vec<u8> {
        let mut b = Vec::new();
        V2Serializer::new()
            .serialize(h, &mut b)
            .expect("serializes");
        b
    }

    fn filled(seed: u64, n: u64, spread: u64) -> Histogram<u32> {
        let mut h = *per_interval();
        for i in 0..n {
            let x = (i * 7919 + seed * 104_729) % spread;
            record(&mut h, Duration::from_micros(x * x / spread.max(1) + x));
        }
        h
    }

    #[test]
    fn bytes_added_count_by_count_equal_the_decoded_histogram_added() {
        let mut by_add = *per_interval();
        let mut by_bytes = *per_interval();
        let parts = [
            filled(1, 0, 10),
            filled(2, 3, 50),
            filled(3, 40, 300),
            filled(4, 500, 2_000_000),
            filled(5, 2_000, 40_000_000),
            filled(6, 7, 1_000),
        ];
        for h in &parts {
            by_add.add(h).expect("adds");
            add_encoded(&mut by_bytes, &encoded(h)).expect("adds");
            assert_eq!(by_add, by_bytes);
            assert_eq!(by_bytes, by_add);
            assert_eq!(by_add.max(), by_bytes.max());
            assert_eq!(by_add.min_nz(), by_bytes.min_nz());
            assert_eq!(by_add.len(), by_bytes.len());
        }
        // Another precision goes through `add`; garbage is refused.
        let mut precise: Histogram<u32> = Histogram::new_with_max(1_000, 3).unwrap();
        precise.auto(true);
        precise.record(123_456).unwrap();
        add_encoded(&mut by_bytes, &encoded(&precise)).expect("adds");
        assert_eq!(by_bytes.len(), by_add.len() + 1);
        assert!(matches!(
            add_encoded(
                &mut by_bytes,
                b"not a histogram at all, not even close to one"
            ),
            Err(AddEncodedError::NotV2)
        ));
        let mut cut = encoded(&parts[4]);
        cut.truncate(cut.len() - 3);
        assert!(add_encoded(&mut by_bytes, &cut).is_err());
    }
}
