//! The prefix cache of a mock provider: which message prefixes it has read recently, bounded
//! by their token count and forgetting the least recently used first.
//!
//! A prompt is cut at message boundaries: prefix `i` is the model plus messages `0..=i`,
//! identified by a running hash. The longest prefix seen before is "cached". Each prefix
//! costs the tokens of its last message, as a radix tree of KV blocks shares the parts
//! prefixes have in common; a prefix is touched after its descendants, so a conversation's
//! leaves are forgotten before the stem they grew from.

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use crate::openai::{Content, Message};

pub(crate) struct PrefixCache {
    capacity: u64,
    inner: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    /// Prefix hash -> (its own tokens, last use).
    entries: HashMap<u64, (u64, u64)>,
    /// Last use -> prefix hash, oldest first.
    order: BTreeMap<u64, u64>,
    tokens: u64,
    clock: u64,
}

impl Lru {
    fn touch(&mut self, key: u64, cost: u64) {
        self.clock += 1;
        let now = self.clock;
        if let Some((_, used)) = self.entries.insert(key, (cost, now)) {
            self.order.remove(&used);
        } else {
            self.tokens += cost;
        }
        self.order.insert(now, key);
    }

    fn evict_to(&mut self, capacity: u64) {
        while self.tokens > capacity {
            let Some((_, key)) = self.order.pop_first() else {
                break;
            };
            if let Some((cost, _)) = self.entries.remove(&key) {
                self.tokens -= cost;
            }
        }
    }
}

fn hash_message(h: &mut DefaultHasher, m: &Message) {
    m.role.hash(h);
    match &m.content {
        None => 0u8.hash(h),
        Some(Content::Text(t)) => t.hash(h),
        Some(Content::Parts(parts)) => {
            for p in parts {
                p.kind.hash(h);
                p.text.hash(h);
            }
        }
    }
}

impl PrefixCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            inner: Mutex::new(Lru::default()),
        }
    }

    /// Remembers every prefix of `messages` and returns how many leading messages were
    /// cached already. `tokens` holds each message's prompt tokens, counted before the lock.
    pub fn lookup_and_insert(&self, model: &str, messages: &[Message], tokens: &[u32]) -> usize {
        let mut h = DefaultHasher::new();
        model.hash(&mut h);
        let keys: Vec<u64> = messages
            .iter()
            .map(|m| {
                hash_message(&mut h, m);
                h.finish()
            })
            .collect();
        // The lock guards plain maps that every step leaves consistent.
        let mut lru = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let hit = keys
            .iter()
            .rposition(|k| lru.entries.contains_key(k))
            .map_or(0, |i| i + 1);
        for (k, &cost) in keys.iter().zip(tokens).rev() {
            lru.touch(*k, u64::from(cost));
        }
        lru.evict_to(self.capacity);
        hit
    }

    /// Forgets every prefix, so the next target of a bake-off starts as cold as the first.
    pub fn clear(&self) {
        let mut lru = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        *lru = Lru::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(texts: &[&str]) -> Vec<Message> {
        texts.iter().map(|t| Message::new("user", *t)).collect()
    }

    /// Every message costs 29 tokens.
    fn costs(messages: &[Message]) -> Vec<u32> {
        vec![29; messages.len()]
    }

    #[test]
    fn the_longest_seen_prefix_is_cached_and_models_are_apart() {
        let c = PrefixCache::new(1000);
        let a = chat(&["system prompt", "first question"]);
        assert_eq!(c.lookup_and_insert("m", &a, &costs(&a)), 0);
        assert_eq!(c.lookup_and_insert("m", &a, &costs(&a)), 2);
        let b = chat(&["system prompt", "first question", "answer", "second"]);
        assert_eq!(c.lookup_and_insert("m", &b, &costs(&b)), 2);
        assert_eq!(c.lookup_and_insert("other", &b, &costs(&b)), 0);
        let d = chat(&["system prompt", "another question"]);
        assert_eq!(c.lookup_and_insert("m", &d, &costs(&d)), 1);
    }

    #[test]
    fn capacity_forgets_the_least_recently_used_leaves_first() {
        // Each message below costs 29 tokens.
        let long = "x".repeat(100);
        let c = PrefixCache::new(29 * 3);
        let a = chat(&[&long, "a".repeat(100).as_str()]);
        let b = chat(&[&long, "b".repeat(100).as_str()]);
        c.lookup_and_insert("m", &a, &costs(&a));
        c.lookup_and_insert("m", &b, &costs(&b));
        let e = chat(&[&long, "e".repeat(100).as_str()]);
        // Inserting e pushes out a's leaf, the oldest; the shared stem stays.
        assert_eq!(c.lookup_and_insert("m", &e, &costs(&e)), 1);
        assert_eq!(c.lookup_and_insert("m", &a, &costs(&a)), 1);
        let lru = c.inner.lock().unwrap();
        assert!(lru.tokens <= 29 * 3, "{}", lru.tokens);
        assert_eq!(lru.entries.len(), lru.order.len());
    }
}
