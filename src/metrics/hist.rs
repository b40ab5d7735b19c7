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

/// Adds the V2-encoded histogram `bytes` into `into`: None when they are not one.
pub(super) fn add_encoded(
    into: &mut Histogram<u32>,
    bytes: &[u8],
) -> Result<(), Option<hdrhistogram::AdditionError>> {
    let h: Histogram<u32> = decode_hist(bytes).ok_or(None)?;
    into.add(&h).map_err(Some)
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
