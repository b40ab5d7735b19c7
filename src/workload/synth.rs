//! Synthetic prompts: deterministic, seeded English-looking text of an exact token length.

use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::SmallRng;

/// Common words that are each one token (with their leading space) in both OpenAI
/// vocabularies, so N words make N tokens without running the tokenizer per prompt.
const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "she",
    "other",
    "its",
    "may",
    "these",
    "about",
    "into",
    "than",
    "time",
    "people",
    "after",
    "first",
    "also",
    "new",
    "only",
    "some",
    "could",
    "them",
    "what",
    "two",
    "most",
    "over",
    "very",
    "made",
    "many",
    "then",
    "such",
    "like",
    "our",
    "out",
    "any",
    "work",
    "where",
    "well",
    "system",
    "should",
    "because",
    "each",
    "those",
    "year",
    "state",
    "under",
    "world",
    "water",
    "data",
    "use",
    "way",
    "small",
    "large",
    "number",
    "part",
    "place",
    "case",
    "point",
    "group",
    "problem",
    "fact",
    "high",
    "long",
    "little",
    "great",
    "own",
    "good",
    "right",
    "old",
    "same",
    "different",
    "following",
    "important",
    "public",
    "early",
    "model",
    "service",
    "request",
    "answer",
    "question",
    "report",
    "order",
    "market",
    "price",
    "customer",
    "account",
    "support",
    "change",
    "power",
    "light",
    "city",
    "house",
    "school",
    "family",
    "night",
    "day",
    "week",
    "month",
    "line",
    "story",
    "result",
    "reason",
    "team",
    "plan",
    "level",
    "design",
    "process",
    "value",
    "test",
    "code",
    "file",
    "network",
    "server",
    "user",
    "page",
    "search",
    "history",
    "energy",
    "health",
    "music",
    "game",
    "food",
    "book",
];

/// Text of exactly `tokens` tokens, the same for the same `seed`.
pub fn synthetic_text(tokens: usize, seed: u64) -> String {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut out = String::with_capacity(tokens * 7);
    for _ in 0..tokens {
        out.push(' ');
        out.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::{Encoding, Tokenizer};

    #[test]
    fn every_word_is_one_token_in_both_vocabularies() {
        for enc in [Encoding::O200k, Encoding::Cl100k] {
            let t = Tokenizer::new(enc).unwrap();
            let long: Vec<_> = WORDS
                .iter()
                .filter(|w| t.count(&format!(" {w}")) != 1)
                .collect();
            assert!(long.is_empty(), "{enc:?}: {long:?}");
        }
    }

    #[test]
    fn text_has_the_asked_token_count_and_is_seeded() {
        let t = Tokenizer::new(Encoding::O200k).unwrap();
        for n in [1usize, 50, 1000, 8000] {
            let text = synthetic_text(n, 42);
            let got = t.count(&text) as f64;
            assert!(
                (got - n as f64).abs() <= n as f64 * 0.03 + 1.0,
                "{n}: {got}"
            );
        }
        assert_eq!(synthetic_text(100, 7), synthetic_text(100, 7));
        assert_ne!(synthetic_text(100, 7), synthetic_text(100, 8));
    }
}
