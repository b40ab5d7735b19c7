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
    let mut h: Histogram<u32> = Deserializer::new().deserialize(&mut &bytes[..]).ok()?;
    h.auto(true);
    Some(Box::new(h))
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
