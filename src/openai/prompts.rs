//! The `prompt` of a text completion and the `input` of an embeddings request: one text, a
//! batch of texts, one prompt as token ids, or a batch of those, as OpenAI accepts them.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// Prompts (or embedding inputs) one request may carry, as OpenAI limits them.
pub const MAX_PROMPTS: usize = 2048;

/// One or more prompts, as text or as token ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Prompts {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

/// One prompt of a [`Prompts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt<'a> {
    Text(&'a str),
    Tokens(&'a [u32]),
}

impl Prompts {
    /// How many prompts: a batch answers one choice (or one vector) per prompt.
    pub fn len(&self) -> usize {
        match self {
            Self::Text(_) | Self::Tokens(_) => 1,
            Self::Texts(v) => v.len(),
            Self::TokenLists(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> Option<Prompt<'_>> {
        match self {
            Self::Text(t) => (i == 0).then_some(Prompt::Text(t)),
            Self::Tokens(t) => (i == 0).then_some(Prompt::Tokens(t)),
            Self::Texts(v) => v.get(i).map(|t| Prompt::Text(t)),
            Self::TokenLists(v) => v.get(i).map(|t| Prompt::Tokens(t)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Prompt<'_>> {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl Prompt<'_> {
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Text(t) => t.is_empty(),
            Self::Tokens(t) => t.is_empty(),
        }
    }
}

/// An element of a prompt array, before the array is known to be of one kind.
enum PromptItem {
    Text(String),
    Id(u32),
    Ids(Vec<u32>),
}

const EXPECTED: &str =
    "a string, an array of strings, an array of token ids or an array of arrays of token ids";

// Hand-written: serde's untagged enums buffer the value and then say only that no variant
// matched, where a client needs to hear which shapes are accepted.
impl<'de> Deserialize<'de> for Prompts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PromptsVisitor;
        impl<'de> Visitor<'de> for PromptsVisitor {
            type Value = Prompts;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Prompts, E> {
                Ok(Prompts::Text(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Prompts, E> {
                Ok(Prompts::Text(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Prompts, A::Error> {
                let mut out: Option<Prompts> = None;
                while let Some(item) = seq.next_element::<PromptItem>()? {
                    match (&mut out, item) {
                        (None, PromptItem::Text(s)) => out = Some(Prompts::Texts(vec![s])),
                        (None, PromptItem::Id(t)) => out = Some(Prompts::Tokens(vec![t])),
                        (None, PromptItem::Ids(t)) => out = Some(Prompts::TokenLists(vec![t])),
                        (Some(Prompts::Texts(v)), PromptItem::Text(s)) => v.push(s),
                        (Some(Prompts::Tokens(v)), PromptItem::Id(t)) => v.push(t),
                        (Some(Prompts::TokenLists(v)), PromptItem::Ids(t)) => v.push(t),
                        _ => {
                            return Err(de::Error::custom(format!(
                                "an array mixing strings, token ids and arrays; expected {EXPECTED}"
                            )));
                        }
                    }
                }
                Ok(out.unwrap_or(Prompts::Texts(Vec::new())))
            }
        }
        d.deserialize_any(PromptsVisitor)
    }
}

impl<'de> Deserialize<'de> for PromptItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = PromptItem;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, a token id or an array of token ids")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<PromptItem, E> {
                Ok(PromptItem::Text(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<PromptItem, E> {
                Ok(PromptItem::Text(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PromptItem, E> {
                u32::try_from(v)
                    .map(PromptItem::Id)
                    .map_err(|_| E::custom(format!("token id {v} is out of range")))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PromptItem, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("token id {v} is negative")))
                    .and_then(|v| self.visit_u64(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PromptItem, A::Error> {
                let mut ids = Vec::with_capacity(seq.size_hint().unwrap_or(16).min(4096));
                while let Some(t) = seq.next_element::<u32>()? {
                    ids.push(t);
                }
                Ok(PromptItem::Ids(ids))
            }
        }
        d.deserialize_any(ItemVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Prompts, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn every_shape_openai_accepts_is_read() {
        assert_eq!(parse(r#""hi""#), Ok(Prompts::Text("hi".into())));
        assert_eq!(
            parse(r#"["a","b"]"#),
            Ok(Prompts::Texts(vec!["a".into(), "b".into()]))
        );
        assert_eq!(parse("[1,2,3]"), Ok(Prompts::Tokens(vec![1, 2, 3])));
        assert_eq!(
            parse("[[1],[2,3]]"),
            Ok(Prompts::TokenLists(vec![vec![1], vec![2, 3]]))
        );
        assert!(parse("[]").unwrap().is_empty());
        let batch = parse(r#"["a","",  "c"]"#).unwrap();
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.get(2), Some(Prompt::Text("c")));
        assert!(batch.get(1).unwrap().is_empty());
        assert_eq!(batch.get(3), None);
        let lists = parse("[[7,8]]").unwrap();
        assert_eq!(lists.iter().collect::<Vec<_>>(), [Prompt::Tokens(&[7, 8])]);
        // Written back the way it came.
        for json in [r#""hi""#, r#"["a","b"]"#, "[1,2]", "[[1],[2]]"] {
            assert_eq!(serde_json::to_string(&parse(json).unwrap()).unwrap(), json);
        }
    }

    #[test]
    fn other_shapes_are_refused_with_what_is_accepted() {
        for bad in [
            "7",
            "null",
            "{}",
            r#"["a",1]"#,
            "[1,[2]]",
            "[-1]",
            "[4294967296]",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("string") || e.contains("token id"), "{bad}: {e}");
        }
        assert!(parse(r#"[[1,"x"]]"#).is_err());
    }
}
