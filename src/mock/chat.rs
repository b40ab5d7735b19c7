//! One chat completion (or text completion, Anthropic message or embeddings request):
//! validating the request, applying limits and faults, and building the answer. Everything is
//! decided synchronously; only waiting (latency, hangs) is async, and boxed, so the
//! zero-latency hot path's future stays small.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::CONTENT_LENGTH;
use http::{Request, Response};
use hyper::body::Incoming;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::openai::{ApiError, ApiErrorKind, ChatRequest, Message, bearer, duration_text};

use super::body::MockBody;
use super::cache::PrefixCache;
use super::conn::ConnCtl;
use super::fault::RateLimitCode;
use super::inject::{Action, FaultPlan};
use super::profile::ModelProfile;
use super::request::{Ask, BodyError, Dialect, read_body};
use super::respond::{client_error, injected_error, rate_limited, synthetic_headers};
use super::serve::{Job, serve};
use super::state::{InFlight, MockState, stopping};
use super::stats::RequestOutcome;
use super::{completions, embeddings, messages, responses};

/// The timer ticks in milliseconds: a shorter sleep would round up to a whole tick.
const MIN_SLEEP: Duration = Duration::from_micros(500);

/// What to do once the request is understood.
pub(crate) enum Next {
    Now(Response<MockBody>),
    /// Answer after a wait, counting the request in flight meanwhile.
    Later(Duration, Response<MockBody>, Option<InFlight>),
    /// Hold the connection (counted in flight), then close it without an answer.
    Hang(Duration, InFlight),
    /// The connection is being closed or reset; never answer.
    Never,
    /// Wait for a batch slot, then serve.
    Queue(Box<Job>),
}

fn after(wait: Duration, resp: Response<MockBody>, guard: Option<InFlight>) -> Next {
    if wait >= MIN_SLEEP {
        Next::Later(wait, resp, guard)
    } else {
        Next::Now(resp)
    }
}

/// One request to a generating path: a completion in one of the text dialects (answered in
/// the same dialect, but for errors, which the caller words), or embeddings.
pub(crate) async fn chat(
    shared: &Arc<MockState>,
    ctl: &ConnCtl,
    seq: u64,
    req: Request<Incoming>,
    ask: Ask,
) -> Response<MockBody> {
    // One async body for every API: a future nested per step made each chat request copy
    // its state between them (about 2% more instructions per request).
    let in_flight = InFlight::new(shared.clone());
    let limits = &shared.profile.limits;
    let anthropic = ask == Ask::Text(Dialect::Messages);
    let key_of = |h: &http::HeaderMap| {
        if anthropic {
            crate::api::anthropic_key(h).or_else(|| bearer(h))
        } else {
            bearer(h)
        }
        .map(str::to_string)
    };
    if limits.require_api_key && key_of(req.headers()).is_none() {
        let how = if anthropic {
            "Send it as `x-api-key: YOUR_KEY`."
        } else {
            "Send it as `Authorization: Bearer YOUR_KEY`."
        };
        return client_error(
            shared,
            ApiError::new(
                ApiErrorKind::InvalidApiKey,
                format!("You didn't provide an API key. {how}"),
            ),
        );
    }
    // Only the rate limiter needs the key itself.
    let key = match &shared.limiter {
        Some(_) => key_of(req.headers()),
        None => None,
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return client_error(shared, too_large(limits.max_body_bytes));
    }
    let body = match read_body(req.into_body(), limits.max_body_bytes).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return client_error(shared, too_large(limits.max_body_bytes)),
        Err(BodyError::Read(e)) => {
            let msg = format!("Could not read the request body: {e}");
            return client_error(shared, ApiError::new(ApiErrorKind::InvalidRequest, msg));
        }
    };
    let next = match ask {
        Ask::Text(dialect) => decide(shared, ctl, seq, key.as_deref(), &body, in_flight, dialect),
        Ask::Embeddings => embed(shared, ctl, seq, key.as_deref(), &body, in_flight),
    };
    match next {
        Next::Now(r) => r,
        // Off the zero-latency path: its future stays small.
        other => Box::pin(settle(shared, ctl, other)).await,
    }
}

/// Carries out a decision: answers now or after its wait, holds the connection and closes it
/// (a hang), never answers (closed or reset), or waits for a batch slot first.
pub(crate) async fn settle(
    shared: &Arc<MockState>,
    ctl: &ConnCtl,
    next: Next,
) -> Response<MockBody> {
    match next {
        Next::Now(r) => r,
        Next::Later(wait, r, guard) => {
            tokio::time::sleep(wait.min(crate::config::MAX_DURATION)).await;
            drop(guard);
            r
        }
        Next::Hang(hold, guard) => {
            let mut stop = shared.shutdown.clone();
            tokio::select! {
                _ = tokio::time::sleep(hold) => {}
                _ = stopping(&mut stop) => {}
            }
            drop(guard);
            ctl.close();
            std::future::pending().await
        }
        Next::Never => std::future::pending().await,
        Next::Queue(job) => queued(shared, *job).await,
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ApiErrorKind::RequestTooLarge,
        format!("Request body is larger than this server accepts ({limit} bytes)."),
    )
}

/// Spreads request numbers over the seed space so neighbouring requests are unrelated.
pub(crate) fn request_seed(seed: u64, seq: u64) -> u64 {
    let mut z = seed ^ seq.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn decide(
    shared: &Arc<MockState>,
    ctl: &ConnCtl,
    seq: u64,
    key: Option<&str>,
    body: &[u8],
    in_flight: InFlight,
    dialect: Dialect,
) -> Next {
    // Text completions count their prompts themselves: that API frames no messages.
    let parsed = match dialect {
        Dialect::Chat => serde_json::from_slice::<ChatRequest>(body)
            .map(|r| (r, None))
            .map_err(|e| ApiError::from_json_error(&e)),
        Dialect::Messages => messages::to_chat(body).map(|r| (r, None)),
        Dialect::Responses => responses::to_chat(body).map(|r| (r, None)),
        Dialect::Completions => {
            completions::to_chat(body, &shared.tokenizer).map(|(r, each)| (r, Some(each)))
        }
    };
    let (request, counted) = match parsed {
        Ok(r) => r,
        Err(e) => return Next::Now(client_error(shared, e)),
    };
    let (model_index, model) = match find_model(shared, &request.model) {
        Ok(m) => m,
        Err(e) => return Next::Now(client_error(shared, e)),
    };
    // Per message only when the prefix cache needs it: a list is an allocation per request.
    let (each, prompt_tokens) = match (counted, &shared.cache) {
        (Some(each), _) => {
            let total = each.iter().fold(0u32, |a, &n| a.saturating_add(n));
            (each, total)
        }
        (None, Some(_)) => {
            let each = message_tokens(shared, &request.messages);
            let total = each.iter().fold(0u32, |a, &n| a.saturating_add(n));
            (each, total)
        }
        (None, None) => {
            let total = shared.tokenizer.count_messages(&request.messages);
            (Vec::new(), u32::try_from(total).unwrap_or(u32::MAX))
        }
    };
    let max_tokens = request.max_completion();
    if let Err(e) = check_size(model, prompt_tokens, max_tokens) {
        return Next::Now(client_error(shared, e));
    }
    let (plan, rng, in_flight) = match admit(
        shared,
        ctl,
        seq,
        key,
        model,
        prompt_tokens,
        max_tokens,
        in_flight,
    ) {
        ControlFlow::Continue(admitted) => admitted,
        ControlFlow::Break(next) => return next,
    };
    let cached_tokens = match &shared.cache {
        Some(c) => cached_tokens(c, model, &request.messages, &each),
        None => 0,
    };
    let job = Job {
        seq,
        dialect,
        request,
        model: model_index,
        prompt_tokens,
        cached_tokens,
        plan,
        rng,
        in_flight,
    };
    if shared.slots.is_some() {
        return Next::Queue(Box::new(job));
    }
    let (wait, r, guard) = serve(shared, model, job);
    after(wait, r, guard)
}

/// The model a request names (counted in the stats either way), or the 404 for a name the
/// mock does not serve.
fn find_model<'a>(
    shared: &'a MockState,
    name: &str,
) -> Result<(usize, &'a ModelProfile), ApiError> {
    let models = &shared.profile.models;
    let index = models.iter().position(|m| m.name == name);
    shared.counters.model(index);
    match index.and_then(|i| models.get(i).map(|m| (i, m))) {
        Some(found) => Ok(found),
        None => {
            let msg = format!("The model `{name}` does not exist or you do not have access to it.");
            Err(ApiError::new(ApiErrorKind::ModelNotFound, msg).with_param("model"))
        }
    }
}

/// The faults and limits a valid request meets: `Break` with what to do instead of serving
/// it (outage, reset, error, 429, hang), or `Continue` with the faults that shape its answer
/// (latency, malformed, stream cut, slow stream) and its random numbers.
// Inlined into the chat path: called out of line, with its large return moved through
// memory, it cost chat about 100 instructions per request.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn admit(
    shared: &MockState,
    ctl: &ConnCtl,
    seq: u64,
    key: Option<&str>,
    model: &ModelProfile,
    prompt_tokens: u32,
    max_tokens: Option<u32>,
    in_flight: InFlight,
) -> ControlFlow<Next, (FaultPlan, SmallRng, InFlight)> {
    let mut rng = SmallRng::seed_from_u64(request_seed(shared.profile.seed, seq));
    let plan = shared.injector.plan(&model.name, &mut rng);
    for k in &plan.hits {
        shared.counters.fault(*k);
    }
    if let Some(next) = cut_off(shared, ctl, &plan.action) {
        return ControlFlow::Break(next);
    }
    if let Some(r) = enforce_limits(shared, &in_flight, key, model, prompt_tokens, max_tokens) {
        return ControlFlow::Break(Next::Now(r));
    }
    match instead(shared, &plan, &model.name, in_flight) {
        ControlFlow::Break(next) => ControlFlow::Break(next),
        ControlFlow::Continue(in_flight) => ControlFlow::Continue((plan, rng, in_flight)),
    }
}

/// An outage or reset fault: the connection goes, with no answer.
#[inline(always)]
pub(crate) fn cut_off(shared: &MockState, ctl: &ConnCtl, action: &Action) -> Option<Next> {
    match action {
        Action::Outage => {
            shared.counters.outcome(RequestOutcome::Outage);
            ctl.close();
            Some(Next::Never)
        }
        Action::Reset => {
            shared.counters.outcome(RequestOutcome::Reset);
            ctl.reset();
            Some(Next::Never)
        }
        _ => None,
    }
}

/// A fault that answers instead of the provider (an error, a 429, a hang), after the plan's
/// delay; `Continue` when the request is to be answered for real.
#[inline(always)]
pub(crate) fn instead(
    shared: &MockState,
    plan: &FaultPlan,
    model: &str,
    in_flight: InFlight,
) -> ControlFlow<Next, InFlight> {
    let next = match &plan.action {
        Action::Error { status, message } => {
            shared.counters.outcome(RequestOutcome::Error);
            after(
                plan.delay,
                injected_error(*status, message.as_deref()),
                Some(in_flight),
            )
        }
        Action::RateLimit { code, retry_after } => {
            let msg = match code {
                RateLimitCode::RateLimitExceeded => format!(
                    "Rate limit reached for {model}. Please try again in {}.",
                    duration_text(*retry_after)
                ),
                RateLimitCode::InsufficientQuota => {
                    "You exceeded your current quota, please check your plan and billing details."
                        .to_string()
                }
            };
            let headers = synthetic_headers(shared, *retry_after);
            let r = rate_limited(shared, &msg, *code, *retry_after, &headers);
            after(plan.delay, r, Some(in_flight))
        }
        Action::Hang(hold) => {
            shared.counters.outcome(RequestOutcome::Hang);
            Next::Hang(plan.delay + *hold, in_flight)
        }
        _ => return ControlFlow::Continue(in_flight),
    };
    ControlFlow::Break(next)
}

/// An embeddings request: read, sized against the model, through the same faults and limits,
/// answered after its time to first token.
fn embed(
    shared: &Arc<MockState>,
    ctl: &ConnCtl,
    seq: u64,
    key: Option<&str>,
    body: &[u8],
    in_flight: InFlight,
) -> Next {
    let request = match embeddings::parse(body) {
        Ok(r) => r,
        Err(e) => return Next::Now(client_error(shared, e)),
    };
    let (_, model) = match find_model(shared, &request.model) {
        Ok(m) => m,
        Err(e) => return Next::Now(client_error(shared, e)),
    };
    let sized = match embeddings::size(&request, model, &shared.tokenizer) {
        Ok(s) => s,
        Err(e) => return Next::Now(client_error(shared, e)),
    };
    // An embedding generates nothing: the token budget is its input alone.
    let (plan, rng, in_flight) = match admit(
        shared,
        ctl,
        seq,
        key,
        model,
        sized.prompt_tokens,
        Some(0),
        in_flight,
    ) {
        ControlFlow::Continue(admitted) => admitted,
        ControlFlow::Break(next) => return next,
    };
    let (wait, r, guard) =
        embeddings::serve(shared, model, &request, &sized, &plan, rng, in_flight);
    after(wait, r, guard)
}

/// Tokens of each message, as the profile's tokenizer counts them (text plus overhead).
fn message_tokens(shared: &MockState, messages: &[Message]) -> Vec<u32> {
    messages
        .iter()
        .map(|m| u32::try_from(shared.tokenizer.count_message(m)).unwrap_or(u32::MAX))
        .collect()
}

/// Tokens of the longest message prefix the cache has seen.
fn cached_tokens(
    cache: &PrefixCache,
    model: &ModelProfile,
    messages: &[Message],
    each: &[u32],
) -> u32 {
    let hit = cache.lookup_and_insert(&model.name, messages, each);
    each.get(..hit).map_or(0, |seen| {
        seen.iter().fold(0u32, |a, &n| a.saturating_add(n))
    })
}

/// Waits for a batch slot, then serves; the slot is held until the answer's last byte.
async fn queued(shared: &Arc<MockState>, mut job: Job) -> Response<MockBody> {
    if let Some(slots) = &shared.slots
        && let Ok(slot) = slots.clone().acquire_owned().await
    {
        // A semaphore that lives as long as the mock is never closed, so this always holds.
        job.in_flight.hold(slot);
    }
    let Some(model) = shared.profile.models.get(job.model) else {
        return injected_error(500, None);
    };
    let (wait, r, guard) = serve(shared, model, job);
    if wait >= MIN_SLEEP {
        tokio::time::sleep(wait.min(crate::config::MAX_DURATION)).await;
    }
    drop(guard);
    r
}

/// `max_tokens` of 0, or prompt plus completion beyond the model's window.
fn check_size(
    model: &ModelProfile,
    prompt_tokens: u32,
    max_tokens: Option<u32>,
) -> Result<(), ApiError> {
    if max_tokens == Some(0) {
        return Err(ApiError::new(
            ApiErrorKind::InvalidRequest,
            "max_tokens must be at least 1",
        )
        .with_param("max_tokens"));
    }
    if let Some(window) = model.context_window {
        let wanted = u64::from(prompt_tokens) + u64::from(max_tokens.unwrap_or(0));
        if wanted > u64::from(window) {
            let msg = format!(
                "This model's maximum context length is {window} tokens. However, you requested {wanted} tokens ({prompt_tokens} in the messages, {} in the completion). Please reduce the length of the messages or completion.",
                max_tokens.unwrap_or(0)
            );
            return Err(
                ApiError::new(ApiErrorKind::ContextLengthExceeded, msg).with_param("messages")
            );
        }
    }
    Ok(())
}

/// The profile's concurrency limit and per-key budgets, answered with real 429s.
fn enforce_limits(
    shared: &MockState,
    in_flight: &InFlight,
    key: Option<&str>,
    model: &ModelProfile,
    prompt_tokens: u32,
    max_tokens: Option<u32>,
) -> Option<Response<MockBody>> {
    let profile = &shared.profile;
    if let Some(limit) = profile.limits.concurrency
        && in_flight.count() > i64::from(limit.get())
    {
        let msg = format!(
            "Too many concurrent requests: this provider handles {limit} at a time. Please retry shortly."
        );
        let retry = Duration::from_secs(1);
        let headers = synthetic_headers(shared, retry);
        return Some(rate_limited(
            shared,
            &msg,
            RateLimitCode::RateLimitExceeded,
            retry,
            &headers,
        ));
    }
    let limiter = shared.limiter.as_ref()?;
    let budget = max_tokens.unwrap_or_else(|| profile.completion_tokens.median().round() as u32);
    let cost = prompt_tokens.saturating_add(budget);
    let refusal = limiter
        .admit(key.unwrap_or(""), cost, Instant::now())
        .err()?;
    // `admit` never refuses for good (an oversized request costs the whole budget); a
    // minute refills any bucket, should that change.
    let wait = refusal.retry_after.unwrap_or(Duration::from_secs(60));
    Some(rate_limited(
        shared,
        &refusal.message(&model.name),
        RateLimitCode::RateLimitExceeded,
        wait,
        &refusal.headers,
    ))
}
