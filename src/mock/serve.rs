//! Serving a request that passed its checks and faults: how long it takes (prefill, queue,
//! decode speed under load), what it says (words, JSON, a tool call, reasoning first) and
//! the usage it reports.
//!
//! The timing model: TTFT = the profile's `ttft` sample + uncached prompt tokens /
//! `prefill_tokens_per_second`, counted from the moment the request holds a batch slot;
//! the token rate is the profile's sample divided by `1 + decode_slowdown * (running - 1)`,
//! where `running` is the number of sequences holding a slot (or in flight, without slots)
//! when this one starts. Both are fixed for the request's life.

use std::sync::Arc;
use std::time::Duration;

use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};
use rand::rngs::SmallRng;

use crate::openai::{ChatRequest, CompletionTokensDetails, PromptTokensDetails, Usage};

use super::body::{MockBody, StreamPlan, TokenStream};
use super::inject::{Action, FaultPlan};
use super::messages;
use super::profile::ModelProfile;
use super::reply::{ReplyHead, broken_completion};
use super::request::Dialect;
use super::respond::JSON;
use super::state::{InFlight, MockState};
use super::stats::RequestOutcome;
use super::{answer, completions, responses};

/// Reasoning lengths above this are a profile typo, not a model.
const MAX_REASONING_TOKENS: f64 = 1e6;

/// A request ready to be answered.
pub(crate) struct Job {
    pub seq: u64,
    /// The API the request came in by; the answer speaks it.
    pub dialect: Dialect,
    pub request: ChatRequest,
    /// Index of the model in the profile.
    pub model: usize,
    pub prompt_tokens: u32,
    /// Of `prompt_tokens`, those the prefix cache served.
    pub cached_tokens: u32,
    pub plan: FaultPlan,
    pub rng: SmallRng,
    pub in_flight: InFlight,
}

/// The answer, how long to hold it before sending (non-stream answers), and the guard to
/// hold meanwhile.
pub(crate) fn serve(
    shared: &Arc<MockState>,
    model: &ModelProfile,
    job: Job,
) -> (Duration, Response<MockBody>, Option<InFlight>) {
    let Job {
        seq,
        dialect,
        request,
        prompt_tokens,
        cached_tokens,
        plan,
        mut rng,
        in_flight,
        ..
    } = job;
    let profile = &shared.profile;
    let (words, word_finish) = match request.max_completion() {
        Some(m) => (m, "length"),
        None => {
            let n = profile.completion_tokens.sample(&mut rng).round().max(1.0);
            (n.min(f64::from(u32::MAX)) as u32, "stop")
        }
    };
    let mut ttft = profile.ttft.sample(&mut rng);
    let mut tokens_per_second = plan
        .tokens_per_second
        .unwrap_or_else(|| profile.tokens_per_second.sample(&mut rng))
        .max(1e-3);
    if let Some(rate) = profile.prefill_tokens_per_second {
        let uncached = prompt_tokens.saturating_sub(cached_tokens);
        ttft += Duration::from_secs_f64(f64::from(uncached) / rate);
    }
    // A batch of text prompts is answered with a choice each, decoded side by side as a
    // server batches them: the answer takes as long as one choice would.
    let choices = match dialect {
        Dialect::Completions => completions::choices(&request),
        Dialect::Chat | Dialect::Messages | Dialect::Responses => 1,
    };
    tokens_per_second *= f64::from(choices);
    let slowdown = profile.capacity.decode_slowdown;
    if slowdown > 0.0 {
        tokens_per_second /= 1.0 + slowdown * running(shared, &in_flight).saturating_sub(1) as f64;
    }
    // Anthropic's thinking blocks are not modelled: a Messages answer is text only.
    let reasoning = match (&profile.reasoning_tokens, dialect) {
        (Some(d), Dialect::Chat) => {
            d.sample(&mut rng).round().clamp(0.0, MAX_REASONING_TOKENS) as u32
        }
        _ => 0,
    };
    // Only chat answers are written as tool calls or JSON; the other dialects' writers
    // have text only.
    let answer = if dialect == Dialect::Chat
        && (request.tools.is_some() || request.response_format.is_some())
    {
        answer::choose(&request, profile.tool_call_rate, &mut rng, words)
    } else {
        None
    };
    let (units, finish_reason) = match answer.as_deref() {
        Some(a) => (a.units(), a.finish_reason()),
        None => (words, word_finish),
    };
    let completion_tokens = units.saturating_mul(choices).saturating_add(reasoning);

    let malformed = matches!(plan.action, Action::Malformed);
    let outcome = if malformed {
        RequestOutcome::Malformed
    } else if plan.cut_after.is_some_and(|c| c < completion_tokens) {
        RequestOutcome::StreamCut
    } else {
        RequestOutcome::Ok
    };
    shared.counters.outcome(outcome);
    shared.counters.tokens(prompt_tokens, completion_tokens);
    let mut usage = Usage::new(prompt_tokens, completion_tokens);
    if shared.cache.is_some() || profile.reasoning_tokens.is_some() {
        shared.counters.details(cached_tokens, reasoning);
        usage.prompt_tokens_details = shared
            .cache
            .as_ref()
            .map(|_| PromptTokensDetails { cached_tokens });
        usage.completion_tokens_details =
            profile
                .reasoning_tokens
                .as_ref()
                .map(|_| CompletionTokensDetails {
                    reasoning_tokens: reasoning,
                });
    }
    let head = ReplyHead {
        upstream: &shared.name,
        seq,
        created: crate::openai::unix_now(),
        model: &model.name,
        fingerprint: &shared.fingerprint,
    };

    if request.is_stream() {
        // A latency fault delays a stream's first token.
        let mut draft = None;
        let prefix = match dialect {
            Dialect::Chat => head.chunk_prefix(),
            Dialect::Messages => messages::stream_start(&head, Some(usage)),
            Dialect::Completions => completions::chunk_prefix(&head),
            Dialect::Responses => draft
                .insert(Box::new(responses::ResponseDraft::new(&head)))
                .start(),
        };
        let stream = TokenStream::new(
            StreamPlan {
                dialect,
                ttft: ttft + plan.delay,
                tokens_per_second,
                completion_tokens,
                choices,
                reasoning,
                answer,
                finish_reason,
                usage: request.include_usage().then_some(usage),
                cut_after: plan.cut_after,
                malformed,
                draft,
            },
            prefix,
            rng,
            in_flight,
        );
        let mut r = Response::new(MockBody::Stream(Box::new(stream)));
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return (Duration::ZERO, r, None);
    }

    let generation = Duration::from_secs_f64(f64::from(completion_tokens) / tokens_per_second);
    let body = if malformed {
        match dialect {
            Dialect::Chat => MockBody::full(broken_completion(&head)),
            Dialect::Messages => MockBody::full(messages::broken_completion(&head)),
            Dialect::Responses => MockBody::full(responses::broken_completion(&head)),
            Dialect::Completions => MockBody::full(completions::broken_completion(&head)),
        }
    } else {
        let full = match dialect {
            Dialect::Chat => head.completion(
                words,
                &mut rng,
                finish_reason,
                usage,
                reasoning,
                answer.as_deref(),
            ),
            Dialect::Messages => messages::completion(&head, words, &mut rng, finish_reason, usage),
            Dialect::Responses => {
                responses::completion(&head, words, &mut rng, finish_reason, usage)
            }
            Dialect::Completions => {
                completions::completion(&head, words, choices, &mut rng, finish_reason, usage)
            }
        };
        if outcome == RequestOutcome::StreamCut {
            MockBody::cut(full.slice(..full.len() / 2))
        } else {
            MockBody::full(full)
        }
    };
    let mut r = Response::new(body);
    r.headers_mut().insert(CONTENT_TYPE, JSON);
    (plan.delay + ttft + generation, r, Some(in_flight))
}

/// Sequences decoding now, this one included.
fn running(shared: &MockState, in_flight: &InFlight) -> u64 {
    match (&shared.slots, shared.profile.capacity.max_concurrent) {
        (Some(slots), Some(max)) => {
            u64::from(max.get()).saturating_sub(slots.available_permits() as u64)
        }
        _ => u64::try_from(in_flight.count()).unwrap_or(0),
    }
}
