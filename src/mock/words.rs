//! The words mock completions are made of: one word is one token, plain ASCII so no JSON
//! escaping is ever needed.

use rand::RngExt;
use rand::rngs::SmallRng;

const WORDS: [&str; 32] = [
    " the",
    " model",
    " router",
    " keeps",
    " its",
    " promise",
    " under",
    " load",
    " and",
    " every",
    " request",
    " finds",
    " a",
    " healthy",
    " provider",
    " while",
    " latency",
    " stays",
    " low",
    " tokens",
    " flow",
    " steadily",
    " through",
    " the",
    " gateway",
    " with",
    " careful",
    " retries",
    " fallback",
    " works",
    " as",
    " planned",
];

pub(crate) fn word(rng: &mut SmallRng) -> &'static str {
    WORDS[rng.random_range(0..WORDS.len())]
}
