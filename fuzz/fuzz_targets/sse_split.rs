//! The SSE decoder gives the same events however the stream is split into reads.
//! The first byte seeds the read sizes; the rest is the stream.
#![no_main]

use gauntlet::openai::{SseDecoder, SseEvent};
use libfuzzer_sys::fuzz_target;

fn decode(reads: &[&[u8]]) -> (Vec<SseEvent>, bool) {
    let mut d = SseDecoder::with_limit(256);
    let mut events = Vec::new();
    for r in reads {
        if d.feed(r, |e| events.push(e)).is_err() {
            return (events, true);
        }
    }
    match d.finish() {
        Ok(last) => events.extend(last),
        Err(_) => return (events, true),
    }
    (events, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = decode(&[stream]);
    // Read sizes cycle through 0..=seed%8+1, empty reads included.
    let span = usize::from(seed % 8) + 2;
    let mut reads = Vec::new();
    let mut rest = stream;
    let mut i = usize::from(seed);
    while !rest.is_empty() {
        let n = (i % span).min(rest.len());
        let (a, b) = rest.split_at(n);
        reads.push(a);
        rest = b;
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    let split = decode(&reads);
    if !whole.1 && !split.1 {
        assert_eq!(whole.0, split.0, "events differ with reads {reads:?}");
    }
    // An oversized event is oversized however it arrives.
    assert_eq!(whole.1, split.1, "error differs with reads {reads:?}");
});
