//! A real BPE tokenizer (OpenAI's o200k / cl100k vocabularies, embedded by `tiktoken-rs`),
//! so the prompt tokens gauntlet reports and generates are those a provider would bill.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

use crate::openai::{Content, Message};

/// Tokens a chat message costs beyond its content (role and separators), as OpenAI counts.
pub const MESSAGE_OVERHEAD: u64 = 4;

/// Which vocabulary to count with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GPT-4o and later.
    #[default]
    O200k,
    /// GPT-4 and GPT-3.5.
    Cl100k,
}

impl Encoding {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::O200k => "o200k_base",
            Self::Cl100k => "cl100k_base",
        }
    }

    /// The encoding written as `name` (`o200k_base`, `o200k`, `cl100k_base`, `cl100k`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "o200k_base" | "o200k" => Some(Self::O200k),
            "cl100k_base" | "cl100k" => Some(Self::Cl100k),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot load the {encoding} vocabulary: {reason}")]
pub struct TokenizerError {
    pub encoding: &'static str,
    pub reason: String,
}

/// Building a vocabulary's merge tables takes a few hundred milliseconds: each is built at
/// most once per process and shared.
static O200K: OnceLock<Result<CoreBPE, String>> = OnceLock::new();
static CL100K: OnceLock<Result<CoreBPE, String>> = OnceLock::new();

/// Counts tokens; cheap to copy, every copy shares the one loaded vocabulary.
#[derive(Clone, Copy)]
pub struct Tokenizer {
    encoding: Encoding,
    bpe: &'static CoreBPE,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("encoding", &self.encoding)
            .finish()
    }
}

impl Tokenizer {
    /// The tokenizer of `encoding`, loading its vocabulary on first use.
    pub fn new(encoding: Encoding) -> Result<Self, TokenizerError> {
        let loaded = match encoding {
            Encoding::O200k => {
                O200K.get_or_init(|| tiktoken_rs::o200k_base().map_err(|e| e.to_string()))
            }
            Encoding::Cl100k => {
                CL100K.get_or_init(|| tiktoken_rs::cl100k_base().map_err(|e| e.to_string()))
            }
        };
        match loaded {
            Ok(bpe) => Ok(Self { encoding, bpe }),
            Err(reason) => Err(TokenizerError {
                encoding: encoding.as_str(),
                reason: reason.clone(),
            }),
        }
    }

    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Tokens of `text`; special-token spellings in it count as plain text, as a provider
    /// treats user input.
    pub fn count(&self, text: &str) -> u64 {
        self.bpe.encode_ordinary(text).len() as u64
    }

    /// The token ids of `text`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.bpe.encode_ordinary(text)
    }

    /// The text of token ids (lossy where ids split a character).
    pub fn decode(&self, tokens: &[u32]) -> String {
        // An id outside the vocabulary decodes to nothing rather than failing a whole text.
        let bytes = self.bpe.decode_bytes(tokens).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Tokens of `text`, remembered by this thread: load repeats its prompts (a class's one
    /// prompt, a dataset's lines, a conversation's history resent each turn), and a repeat
    /// then costs a hash lookup instead of a BPE pass over the whole text.
    pub fn count_remembered(&self, text: &str) -> u64 {
        // Below this a BPE pass costs about what the lookup does.
        const WORTH_REMEMBERING: usize = 24;
        if text.len() < WORTH_REMEMBERING || text.len() > MEMO_BYTES {
            return self.count(text);
        }
        MEMO.with_borrow_mut(|memo| {
            let slot = self.encoding as usize;
            if let Some(&n) = memo.counts[slot].get(text) {
                return n;
            }
            let n = self.count(text);
            if memo.bytes + text.len() > MEMO_BYTES {
                // Forgetting everything at once is crude but bounded, and a run's repeated
                // texts are back after one pass.
                *memo = Memo::default();
            }
            memo.bytes += text.len();
            memo.counts[slot].insert(text.into(), n);
            n
        })
    }

    /// Prompt tokens of one chat message: its text plus the fixed per-message overhead.
    pub fn count_message(&self, m: &Message) -> u64 {
        MESSAGE_OVERHEAD
            + match &m.content {
                Some(Content::Text(t)) => self.count_remembered(t),
                Some(Content::Parts(parts)) => parts
                    .iter()
                    .filter_map(|p| p.text.as_deref())
                    .map(|t| self.count_remembered(t))
                    .sum(),
                None => 0,
            }
    }

    /// Prompt tokens of a chat: content tokens plus a fixed overhead per message.
    pub fn count_messages(&self, messages: &[Message]) -> u64 {
        messages.iter().map(|m| self.count_message(m)).sum()
    }
}

/// Text a thread remembers the counts of, at most (then it starts over).
const MEMO_BYTES: usize = 8 << 20;

/// Counts of texts seen, one map per encoding.
#[derive(Default)]
struct Memo {
    // Fx, not SipHash: the key is a prompt the mock was sent, hashed on every request, and a
    // load test's own client has no reason to collide it on purpose.
    counts: [rustc_hash::FxHashMap<Box<str>, u64>; 2],
    bytes: usize,
}

thread_local! {
    // Per thread, so counting never waits on a lock shared by a server's workers.
    static MEMO: std::cell::RefCell<Memo> = std::cell::RefCell::default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_known_strings() {
        let t = Tokenizer::new(Encoding::O200k).unwrap();
        assert_eq!(t.count(""), 0);
        assert_eq!(t.count("hello"), 1);
        // "hello world" is two tokens in both OpenAI vocabularies.
        assert_eq!(t.count("hello world"), 2);
        let c = Tokenizer::new(Encoding::Cl100k).unwrap();
        assert_eq!(c.count("hello world"), 2);
        // The vocabularies differ: a long word splits differently.
        let text = "Supercalifragilisticexpialidocious antidisestablishmentarianism";
        assert!(t.count(text) > 4 && c.count(text) > 4);
    }

    #[test]
    fn a_remembered_count_is_the_count() {
        for enc in [Encoding::O200k, Encoding::Cl100k] {
            let t = Tokenizer::new(enc).unwrap();
            let text = "Summarise the attached quarterly report in three bullet points.";
            let first = t.count_remembered(text);
            assert_eq!(first, t.count(text));
            // Asked again (now from memory), and under the other vocabulary's entry.
            assert_eq!(t.count_remembered(text), first);
        }
        let o = Tokenizer::new(Encoding::O200k).unwrap();
        let c = Tokenizer::new(Encoding::Cl100k).unwrap();
        // o200k has far more Cyrillic merges than cl100k.
        let text = "Привет, как дела? Это тестовое сообщение для подсчёта токенов.".repeat(2);
        assert_eq!(o.count_remembered(&text), o.count(&text));
        assert_eq!(c.count_remembered(&text), c.count(&text));
        assert_ne!(
            o.count(&text),
            c.count(&text),
            "the vocabularies split it alike"
        );
    }

    #[test]
    fn round_trips_and_counts_messages() {
        let t = Tokenizer::new(Encoding::default()).unwrap();
        let text = "The quick brown fox jumps over the lazy dog.";
        assert_eq!(t.decode(&t.encode(text)), text);
        let messages = [
            Message::new("system", "be brief"),
            Message::new("user", text),
        ];
        assert_eq!(
            t.count_messages(&messages),
            t.count("be brief") + t.count(text) + 2 * MESSAGE_OVERHEAD
        );
    }
}
