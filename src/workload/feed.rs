//! A class's request source at run time: draws requests (seeded, lock-free), fills in the
//! class's keys, serialises the body and counts its prompt tokens; and runs the bookkeeping
//! of conversations (history, the next user turn, the session id).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::{Map, Value};

use super::dataset::{DatasetError, message};
use super::spec::{Order, PromptSource, Workload};
use super::synth::synthetic_text;
use crate::config::Dist;
use crate::openai::Message;
use crate::tokenizer::{Encoding, MESSAGE_OVERHEAD, Tokenizer};

/// One request ready to send; its prompt tokens are counted from it (`Feed::count_body`)
/// only when the response's usage does not give them.
#[derive(Debug, Clone)]
pub struct Draft {
    pub body: Bytes,
}

/// A conversation in progress.
#[derive(Debug)]
pub struct Conversation {
    /// Sent as the `id_header` and as `user` (unless the request sets one).
    pub id: String,
    pub turns: u16,
    /// Draws think times and later turns' prompts.
    pub rng: SmallRng,
    request: Map<String, Value>,
    messages: Vec<Value>,
}

/// Drawing requests for one class; shared by all tasks sending it.
#[derive(Debug)]
pub struct Feed {
    class: String,
    model: String,
    stream: bool,
    max_tokens: Option<u32>,
    /// The class's own messages: the whole request of a fixed class, a prefix (a system
    /// prompt, say) of text and synthetic ones.
    base: Vec<Value>,
    workload: Workload,
    seed: u64,
    /// Loaded on the first count: a class whose answers carry usage never needs it, and a
    /// run's start never burns a core building it.
    encoding: Encoding,
    draws: AtomicU64,
    /// Built bodies of an in-memory dataset whose requests never vary, by line.
    cache: Vec<OnceLock<Draft>>,
}

/// splitmix64: a draw number and the seed to an independent-looking 64-bit value.
fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Sessions draw from their own stream so adding one never shifts another class's draws.
const SESSION_SALT: u64 = 0x5E55_1011;

fn tokens_of(dist: &Dist, rng: &mut SmallRng) -> u64 {
    dist.sample(rng).round().max(1.0) as u64
}

impl Feed {
    pub fn new(
        class: &str,
        model: &str,
        messages: &[Message],
        stream: bool,
        max_tokens: Option<u32>,
        workload: &Workload,
        seed: u64,
    ) -> Self {
        let base = messages
            .iter()
            .filter_map(|m| serde_json::to_value(m).ok())
            .collect();
        let cacheable = workload.max_tokens.is_none() && workload.session.is_none();
        let cache = match &workload.source {
            PromptSource::Dataset(d) if cacheable && d.in_memory() => {
                (0..d.len()).map(|_| OnceLock::new()).collect()
            }
            _ => Vec::new(),
        };
        Self {
            class: class.to_string(),
            model: model.to_string(),
            stream,
            max_tokens,
            base,
            workload: workload.clone(),
            seed,
            encoding: workload.encoding,
            draws: AtomicU64::new(0),
            cache,
        }
    }

    pub fn is_session(&self) -> bool {
        self.workload.session.is_some()
    }

    pub fn id_header(&self) -> Option<&str> {
        self.workload
            .session
            .as_ref()
            .and_then(|s| s.id_header.as_deref())
    }

    /// Draw `draw` when the caller numbers them (the schedule does, so a shard sends what one
    /// machine would for the same arrival), else the next one.
    fn number(&self, draw: Option<u64>) -> u64 {
        draw.unwrap_or_else(|| self.draws.fetch_add(1, Ordering::Relaxed))
    }

    /// The next request of a class that is not a conversation.
    pub fn draft(&self) -> Result<Draft, DatasetError> {
        self.draft_at(None)
    }

    /// Request number `draw` of the class (the next one when None).
    pub fn draft_at(&self, draw: Option<u64>) -> Result<Draft, DatasetError> {
        let n = self.number(draw);
        if let (PromptSource::Dataset(d), false) = (&self.workload.source, self.cache.is_empty()) {
            let line = self.line(n, d.len());
            if let Some(done) = self.cache.get(line).and_then(OnceLock::get) {
                return Ok(done.clone());
            }
            let mut request = d.request(line)?;
            let mut rng = SmallRng::seed_from_u64(mix(self.seed, n));
            self.fill(&mut request, &mut rng);
            let draft = self.finish(&request);
            if let Some(slot) = self.cache.get(line) {
                return Ok(slot.get_or_init(|| draft).clone());
            }
            return Ok(draft);
        }
        let mut rng = SmallRng::seed_from_u64(mix(self.seed, n));
        let mut request = self.request(n, &mut rng)?;
        self.fill(&mut request, &mut rng);
        Ok(self.finish(&request))
    }

    /// Starts a conversation: its first turn's request and how many turns it has.
    pub fn start(&self) -> Result<Conversation, DatasetError> {
        self.start_at(None)
    }

    /// Conversation number `draw` of the class (the next one when None).
    pub fn start_at(&self, draw: Option<u64>) -> Result<Conversation, DatasetError> {
        let n = self.number(draw);
        let mut rng = SmallRng::seed_from_u64(mix(self.seed ^ SESSION_SALT, n));
        let mut request = self.request(n, &mut rng)?;
        self.fill(&mut request, &mut rng);
        let turns = self.workload.session.as_ref().map_or(1, |s| {
            s.turns
                .sample(&mut rng)
                .round()
                .clamp(1.0, f64::from(u16::MAX)) as u16
        });
        let id = format!("{}-{:016x}", self.class, mix(self.seed, n));
        request
            .entry("user")
            .or_insert_with(|| Value::String(id.clone()));
        let messages = match request.remove("messages") {
            Some(Value::Array(m)) => m,
            _ => Vec::new(),
        };
        Ok(Conversation {
            id,
            turns,
            rng,
            request,
            messages,
        })
    }

    /// The body of the conversation's current turn: everything said so far.
    pub fn turn(&self, conv: &Conversation) -> Draft {
        let mut request = conv.request.clone();
        request.insert("messages".into(), Value::Array(conv.messages.clone()));
        self.finish(&request)
    }

    /// The pause before the conversation's next turn.
    pub fn think(&self, conv: &mut Conversation) -> std::time::Duration {
        self.workload
            .session
            .as_ref()
            .map_or(std::time::Duration::ZERO, |s| {
                s.think_time.sample(&mut conv.rng)
            })
    }

    /// Appends the assistant's answer and the user's next message.
    pub fn follow_up(&self, conv: &mut Conversation, answer: String) -> Result<(), DatasetError> {
        conv.messages
            .push(message("assistant", Value::String(answer)));
        let next = match &self.workload.source {
            PromptSource::Fixed => self
                .base
                .iter()
                .rev()
                .find(|m| m["role"] == "user")
                .cloned(),
            PromptSource::Synthetic(dist) => {
                let tokens = tokens_of(dist, &mut conv.rng);
                let seed = rand::RngExt::random(&mut conv.rng);
                Some(message(
                    "user",
                    Value::String(synthetic_text(tokens as usize, seed)),
                ))
            }
            PromptSource::Dataset(d) => {
                let pick = rand::RngExt::random::<u64>(&mut conv.rng);
                let r = d.request(self.line(pick, d.len()))?;
                r.get("messages")
                    .and_then(Value::as_array)
                    .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
                    .cloned()
            }
        };
        conv.messages.extend(next);
        Ok(())
    }

    /// Which line draw `n` takes.
    fn line(&self, n: u64, len: usize) -> usize {
        let len = len.max(1) as u64;
        (match self.workload.order {
            Order::Sequential => n % len,
            Order::Random => mix(self.seed, n) % len,
        }) as usize
    }

    /// Draw `n`'s request before the class's keys are filled in.
    fn request(&self, n: u64, rng: &mut SmallRng) -> Result<Map<String, Value>, DatasetError> {
        let mut messages = self.base.clone();
        match &self.workload.source {
            PromptSource::Dataset(d) => return d.request(self.line(n, d.len())),
            PromptSource::Fixed => {}
            PromptSource::Synthetic(dist) => {
                let tokens = tokens_of(dist, rng);
                let text = synthetic_text(tokens as usize, mix(self.seed, n));
                messages.push(message("user", Value::String(text)));
            }
        }
        let mut m = Map::new();
        m.insert("messages".into(), Value::Array(messages));
        Ok(m)
    }

    /// The class's keys where the request leaves them out; `stream` is always the class's,
    /// since how the answer is read depends on it.
    fn fill(&self, request: &mut Map<String, Value>, rng: &mut SmallRng) {
        request
            .entry("model")
            .or_insert_with(|| Value::String(self.model.clone()));
        if self.stream {
            request.insert("stream".into(), Value::Bool(true));
            request.insert(
                "stream_options".into(),
                serde_json::json!({ "include_usage": true }),
            );
        } else {
            request.remove("stream");
            request.remove("stream_options");
        }
        if !request.contains_key("max_tokens") && !request.contains_key("max_completion_tokens") {
            let budget = match &self.workload.max_tokens {
                Some(dist) => Some(tokens_of(dist, rng)),
                None => self.max_tokens.map(u64::from),
            };
            if let Some(b) = budget {
                request.insert("max_tokens".into(), Value::from(b));
            }
        }
        for (k, v) in &self.workload.extra {
            request.entry(k.as_str()).or_insert_with(|| v.clone());
        }
    }

    fn finish(&self, request: &Map<String, Value>) -> Draft {
        // A map of JSON values always serialises.
        let body = serde_json::to_vec(request).unwrap_or_default();
        Draft {
            body: Bytes::from(body),
        }
    }

    fn count_request(&self, request: &Map<String, Value>) -> u64 {
        let messages = request
            .get("messages")
            .and_then(Value::as_array)
            .map_or(0, |m| self.count(m));
        // A body re-encoded for Anthropic's Messages API carries its system prompt apart.
        let system = request.get("system").map_or(0, |s| {
            self.count(std::slice::from_ref(&serde_json::json!({ "content": s })))
        });
        messages + system
    }

    /// Prompt tokens of a body this feed built.
    pub fn count_body(&self, body: &[u8]) -> u64 {
        match serde_json::from_slice::<Map<String, Value>>(body) {
            Ok(request) => self.count_request(&request),
            Err(_) => 0,
        }
    }

    /// Prompt tokens of JSON messages: content text plus the per-message overhead.
    fn count(&self, messages: &[Value]) -> u64 {
        // The vocabularies are embedded: loading one fails only on a broken build, and then
        // no count (0) is better than no run.
        let Ok(tokenizer) = Tokenizer::new(self.encoding) else {
            return 0;
        };
        messages
            .iter()
            .map(|m| {
                MESSAGE_OVERHEAD
                    + match m.get("content") {
                        Some(Value::String(s)) => tokenizer.count(s),
                        Some(Value::Array(parts)) => parts
                            .iter()
                            .filter_map(|p| p.get("text").and_then(Value::as_str))
                            .map(|t| tokenizer.count(t))
                            .sum(),
                        _ => 0,
                    }
            })
            .sum()
    }
}
