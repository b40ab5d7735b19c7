//! Response bodies: whole JSON answers, bodies cut part-way, and event streams paced at the
//! token rate by the process's pacer (`pacer`: streams due in the same tick are woken
//! together; tokens a stream owes by then leave in one write).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body, Frame, SizeHint};
use rand::rngs::SmallRng;
use tokio::time::{Instant, Sleep};

use crate::openai::{DONE, Usage};

use super::answer::Answer;
use super::pacer::Pace;
use super::reply;
use super::request::Dialect;
use super::state::InFlight;
use super::words::word;
use super::{completions, messages, responses};

/// The error that makes hyper abort the connection mid-body (a cut stream).
#[derive(Debug, thiserror::Error)]
#[error("response cut by a stream_cut fault")]
pub struct BodyCut;

pub(crate) enum MockBody {
    Full(Option<Bytes>),
    /// Sends the bytes, then fails so the connection closes without completing the body.
    Cut(Box<CutBody>),
    Stream(Box<TokenStream>),
    /// A provider's stream relayed by a fault proxy.
    Forward(Box<ForwardStream>),
}

/// The frames a fault proxy relays (see `forward`).
pub(crate) type ForwardStream = http_body_util::StreamBody<
    futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, BodyCut>>,
>;

impl MockBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        Self::Full(Some(b.into()))
    }

    pub fn cut(b: Bytes) -> Self {
        Self::Cut(Box::new(CutBody {
            data: Some(b),
            flush: Box::pin(tokio::time::sleep(FLUSH_BEFORE_CUT)),
        }))
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = BodyCut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyCut>>> {
        match self.get_mut() {
            Self::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Self::Cut(c) => {
                if let Some(b) = c.data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                if c.flush.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(BodyCut)))
            }
            Self::Stream(s) => s.poll_next(cx),
            Self::Forward(f) => Pin::new(f.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Self::Full(None) => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// hyper drops buffered bytes when a body fails; pausing first lets them reach the wire.
const FLUSH_BEFORE_CUT: Duration = Duration::from_millis(10);

pub(crate) struct CutBody {
    data: Option<Bytes>,
    flush: Pin<Box<Sleep>>,
}

/// How a stream behaves, decided before it starts.
pub(crate) struct StreamPlan {
    /// Chat chunks, text completion chunks, or Anthropic's events (then `prefix` is the
    /// opening events).
    pub dialect: Dialect,
    pub ttft: Duration,
    pub tokens_per_second: f64,
    /// Chunks after the role chunk: reasoning tokens, then the answer's.
    pub completion_tokens: u32,
    /// Text completions only: chunks go to choices 0, 1, … in turn, one per prompt.
    pub choices: u32,
    /// The first this many chunks are `reasoning_content`.
    pub reasoning: u32,
    /// JSON or a tool call instead of words.
    pub answer: Option<Box<Answer>>,
    pub finish_reason: &'static str,
    pub usage: Option<Usage>,
    /// Content chunks sent before the connection is cut.
    pub cut_after: Option<u32>,
    pub malformed: bool,
    /// A Responses answer being written (its closing events repeat the text).
    pub draft: Option<Box<responses::ResponseDraft>>,
}

enum Phase {
    BeforeFirst,
    Tokens,
    Cut,
    Done,
}

pub(crate) struct TokenStream {
    plan: StreamPlan,
    prefix: Bytes,
    rng: SmallRng,
    phase: Phase,
    /// When the next chunk is due (the first, then each token's).
    due: Instant,
    pace: Pace,
    /// The pause before a cut, so what was written reaches the wire.
    flush: Option<Pin<Box<Sleep>>>,
    /// When the first token was due; token `i` is due at `base + i * interval`.
    base: Instant,
    interval: Duration,
    sent: u32,
    _in_flight: InFlight,
}

impl TokenStream {
    pub fn new(plan: StreamPlan, prefix: Bytes, rng: SmallRng, in_flight: InFlight) -> Self {
        let now = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / plan.tokens_per_second.max(1e-3));
        Self {
            base: now + plan.ttft,
            due: now + plan.ttft,
            pace: Pace::default(),
            flush: None,
            plan,
            prefix,
            rng,
            phase: Phase::BeforeFirst,
            interval,
            sent: 0,
            _in_flight: in_flight,
        }
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyCut>>> {
        loop {
            match self.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Cut => {
                    if let Some(s) = self.flush.as_mut()
                        && s.as_mut().poll(cx).is_pending()
                    {
                        return Poll::Pending;
                    }
                    self.phase = Phase::Done;
                    return Poll::Ready(Some(Err(BodyCut)));
                }
                Phase::BeforeFirst | Phase::Tokens => {
                    if self.pace.poll_until(self.due, cx).is_pending() {
                        return Poll::Pending;
                    }
                    let out = self.emit_due();
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
                    }
                }
            }
        }
    }

    /// Writes every chunk due by now and arms the timer for the next one.
    fn emit_due(&mut self) -> BytesMut {
        let mut out = BytesMut::with_capacity(512);
        if matches!(self.phase, Phase::BeforeFirst) {
            let tool_call = matches!(self.plan.answer.as_deref(), Some(Answer::ToolCall { .. }));
            match self.plan.dialect {
                Dialect::Messages | Dialect::Responses => out.extend_from_slice(&self.prefix),
                // This API has no role chunk: the first token is the first event.
                Dialect::Completions => {}
                Dialect::Chat if tool_call => {
                    reply::put_role_chunk_no_content(&mut out, &self.prefix);
                }
                Dialect::Chat => reply::put_role_chunk(&mut out, &self.prefix),
            }
            self.phase = Phase::Tokens;
        }
        let now = Instant::now();
        let total = self.plan.completion_tokens;
        let elapsed = now.saturating_duration_since(self.base);
        // In whole nanoseconds, as `due` is computed, so the two never disagree at the edge.
        let due_by_time = elapsed.as_nanos() / self.interval.as_nanos().max(1) + 1;
        let limit = match self.plan.cut_after {
            Some(c) => total.min(c),
            None => total,
        };
        let due = u32::try_from(due_by_time).unwrap_or(u32::MAX).min(limit);
        while self.sent < due {
            let last = self.sent + 1 == total;
            let token = word(&mut self.rng);
            if self.plan.malformed && (self.sent == 1 || last) {
                if let Some(d) = self.plan.draft.as_mut() {
                    d.put_broken(&mut out);
                } else if self.plan.dialect == Dialect::Messages {
                    messages::put_broken_delta(&mut out);
                } else {
                    reply::put_broken_chunk(&mut out, &self.prefix);
                    out.extend_from_slice(DONE);
                }
                self.phase = Phase::Done;
                return out;
            }
            let finish = last.then_some(self.plan.finish_reason);
            if let Some(d) = self.plan.draft.as_mut() {
                d.put_delta(&mut out, token);
            } else if self.plan.dialect == Dialect::Messages {
                messages::put_text_delta(&mut out, token);
            } else if self.plan.dialect == Dialect::Completions {
                let n = self.plan.choices.max(1);
                let finish = (self.sent + n >= total).then_some(self.plan.finish_reason);
                completions::put_text_chunk(&mut out, &self.prefix, self.sent % n, token, finish);
            } else if self.sent < self.plan.reasoning {
                reply::put_reasoning_chunk(&mut out, &self.prefix, token);
            } else if let Some(answer) = self.plan.answer.as_deref() {
                put_answer_chunk(
                    &mut out,
                    &self.prefix,
                    answer,
                    self.sent - self.plan.reasoning,
                );
            } else {
                reply::put_token_chunk(&mut out, &self.prefix, token, finish);
            }
            self.sent += 1;
        }
        if self.sent >= total
            && let Some(d) = self.plan.draft.as_mut()
        {
            d.put_end(&mut out, self.plan.finish_reason, self.plan.usage.as_ref());
            self.phase = Phase::Done;
        } else if self.sent >= total && self.plan.dialect == Dialect::Messages {
            messages::put_stream_end(&mut out, self.plan.finish_reason, total);
            self.phase = Phase::Done;
        } else if self.sent >= total {
            if let Some(answer) = self.plan.answer.as_deref() {
                reply::put_finish_chunk(&mut out, &self.prefix, answer.finish_reason());
            }
            if let Some(u) = self.plan.usage {
                reply::put_usage_chunk(&mut out, &self.prefix, u);
            }
            out.extend_from_slice(DONE);
            self.phase = Phase::Done;
        } else if self.plan.cut_after.is_some_and(|c| self.sent >= c) {
            self.phase = Phase::Cut;
            self.flush = Some(Box::pin(tokio::time::sleep_until(now + FLUSH_BEFORE_CUT)));
        } else {
            self.due = self.base + self.interval * self.sent;
        }
        out
    }
}

/// Unit `i` of a JSON or tool-call answer. The finish reason follows in a chunk of its own.
fn put_answer_chunk(out: &mut BytesMut, prefix: &[u8], answer: &Answer, i: u32) {
    match answer {
        Answer::Json(p) => reply::put_content_piece(out, prefix, p.get(i), None),
        Answer::ToolCall {
            id,
            name,
            arguments,
        } => {
            if i == 0 {
                reply::put_tool_call_head(out, prefix, id, name);
            } else {
                reply::put_tool_call_arguments(out, prefix, arguments.get(i - 1));
            }
        }
    }
}
