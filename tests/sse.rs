//! A stream decodes to the same events however the network splits its bytes.

use gauntlet::openai::{SseDecoder, SseEvent};
use proptest::prelude::*;

fn encode(
    events: &[(Option<String>, Vec<String>)],
    eol: &str,
    comments: bool,
    trailing_blank: bool,
) -> String {
    let mut s = String::new();
    for (i, (name, lines)) in events.iter().enumerate() {
        if comments {
            s.push_str(": ping");
            s.push_str(eol);
        }
        if let Some(n) = name {
            s.push_str(&format!("event: {n}{eol}"));
        }
        for l in lines {
            s.push_str(&format!("data: {l}{eol}"));
        }
        if i + 1 < events.len() || trailing_blank {
            s.push_str(eol);
        }
    }
    s
}

fn decode(bytes: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut d = SseDecoder::new();
    let mut out = Vec::new();
    let mut start = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    for c in cuts.into_iter().chain(std::iter::once(bytes.len())) {
        d.feed(&bytes[start..c], |e| out.push(e))
            .expect("valid stream");
        start = c;
    }
    out.extend(d.finish().expect("valid stream"));
    out
}

fn line() -> impl Strategy<Value = String> {
    // Any text without line breaks, including ':' and leading spaces and non-ASCII.
    "[a-zA-Z0-9 :{}\",é😀\\[\\]]{0,24}"
}

proptest! {
    #[test]
    fn split_points_do_not_change_events(
        events in prop::collection::vec(
            (prop::option::of("[a-z]{1,8}"), prop::collection::vec(line(), 1..4)), 1..8),
        eol in prop::sample::select(vec!["\n", "\r\n", "\r"]),
        comments in any::<bool>(),
        trailing_blank in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let text = encode(&events, eol, comments, trailing_blank);
        let whole = decode(text.as_bytes(), &[]);
        let expected: Vec<SseEvent> = events.iter().map(|(n, l)| SseEvent {
            event: n.clone(),
            data: l.join("\n"),
        }).collect();
        prop_assert_eq!(&whole, &expected);
        prop_assert_eq!(decode(text.as_bytes(), &cuts), expected.clone());
        // One byte at a time is the harshest split of all.
        let every: Vec<usize> = (1..text.len()).collect();
        prop_assert_eq!(decode(text.as_bytes(), &every), expected);
    }
}
