//! The body the gateway answers with: a complete buffer, or an upstream stream relayed frame
//! by frame after its first chunk. A relayed stream that fails, outlives the request's total
//! deadline, sends a line no client could hold, or ends without `data: [DONE]` ends with an
//! error (counted by reason), so the client sees the stream cut, never a fake end.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::admission::Admitted;
use super::metrics::StreamCuts;
use super::responses::ResponsesWriter;
use super::translate::{EventWriter, StreamError, StreamTranslator};
use crate::openai::{DEFAULT_MAX_EVENT_BYTES, DONE_DATA};

/// Why a relayed stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("upstream stream failed: {0}")]
    Upstream(#[from] hyper::Error),
    #[error("the request's total deadline passed while streaming")]
    Deadline,
    #[error("the upstream sent a line longer than {limit} bytes")]
    LineTooLong { limit: usize },
    #[error("the upstream ended the stream without `data: [DONE]`")]
    Unfinished,
    #[error("{0}")]
    Translate(#[from] StreamError),
}

impl RelayError {
    /// The `reason` label of the cut in the gateway's metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Upstream(_) => "upstream",
            Self::Deadline => "deadline",
            Self::LineTooLong { .. } => "line_too_long",
            Self::Unfinished => "unfinished",
            Self::Translate(StreamError::Reported(_)) => "upstream_error",
            Self::Translate(StreamError::Malformed(_)) => "malformed",
        }
    }
}

/// What the relay needs to know about the bytes it passed on, without holding them: the
/// length of the line in progress (bounded, so an endless line cannot be relayed for the
/// whole deadline) and the last few bytes (to see whether the stream ended with `[DONE]`).
#[derive(Debug, Default)]
struct Watch {
    line: usize,
    tail: [u8; 16],
    tail_len: usize,
}

impl Watch {
    fn see(&mut self, data: &[u8]) -> Result<(), RelayError> {
        match memchr::memrchr2(b'\n', b'\r', data) {
            Some(i) => self.line = data.len() - i - 1,
            None => self.line = self.line.saturating_add(data.len()),
        }
        if self.line > DEFAULT_MAX_EVENT_BYTES {
            return Err(RelayError::LineTooLong {
                limit: DEFAULT_MAX_EVENT_BYTES,
            });
        }
        let cap = self.tail.len();
        if data.len() >= cap {
            self.tail.copy_from_slice(&data[data.len() - cap..]);
            self.tail_len = cap;
        } else {
            let keep = (cap - data.len()).min(self.tail_len);
            self.tail
                .copy_within(self.tail_len - keep..self.tail_len, 0);
            self.tail[keep..keep + data.len()].copy_from_slice(data);
            self.tail_len = keep + data.len();
        }
        Ok(())
    }

    fn ended_with_done(&self) -> bool {
        self.tail[..self.tail_len]
            .trim_ascii_end()
            .ends_with(DONE_DATA.as_bytes())
    }
}

/// Rewrites the relayed chat stream for a client of another API.
#[derive(Debug)]
enum Outbound {
    Messages(EventWriter),
    Responses(ResponsesWriter),
}

impl Outbound {
    fn feed(&mut self, data: &[u8]) -> Result<Bytes, StreamError> {
        match self {
            Self::Messages(w) => w.feed(data),
            Self::Responses(w) => w.feed(data),
        }
    }
}

pin_project! {
    /// A response body: either `full` or the `relay` of an upstream stream.
    pub struct GatewayBody {
        full: Option<Bytes>,
        #[pin]
        relay: Option<Relay>,
        // The request's admission slots: given back when the body is dropped, after its
        // last byte or when the client goes away.
        held: Option<Admitted>,
        // Rewrites the relayed chat stream into another API's events (Messages, Responses).
        outbound: Option<Box<Outbound>>,
    }
}

pin_project! {
    pub struct Relay {
        first: Option<Bytes>,
        #[pin]
        rest: Incoming,
        #[pin]
        deadline: Sleep,
        watch: Watch,
        cuts: StreamCuts,
        // Set once the relay has ended (cleanly or cut): nothing more is read.
        over: bool,
        // A frame was handed out since the body last said Pending.
        unflushed: bool,
        // A cut decided while frames were unflushed, held back for one poll.
        cut: Option<RelayError>,
        // Turns another API's events into chat chunks (see `translate`).
        translate: Option<Box<StreamTranslator>>,
        // The upstream has ended; what is left is `first` (a translated tail), then the end.
        ended: bool,
    }
}

impl GatewayBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let b = bytes.into();
        Self {
            full: (!b.is_empty()).then_some(b),
            relay: None,
            held: None,
            outbound: None,
        }
    }

    /// This body, holding the request's admission until it is dropped.
    pub fn holding(mut self, held: Admitted) -> Self {
        self.held = Some(held);
        self
    }

    pub fn relay(
        first: Bytes,
        rest: Incoming,
        deadline: tokio::time::Instant,
        cuts: StreamCuts,
        translate: Option<Box<StreamTranslator>>,
    ) -> Self {
        Self {
            full: None,
            relay: Some(Relay {
                first: Some(first),
                rest,
                deadline: tokio::time::sleep_until(deadline),
                watch: Watch::default(),
                cuts,
                over: false,
                unflushed: false,
                cut: None,
                translate,
                ended: false,
            }),
            held: None,
            outbound: None,
        }
    }

    /// This body for a client of Anthropic's Messages API: a whole answer or error rewritten
    /// at once (`status` says which), a relayed stream event by event as it passes.
    pub fn into_messages(mut self, status: http::StatusCode) -> Result<Self, String> {
        if let Some(b) = self.full.take() {
            let out = if status.is_success() {
                super::translate::outbound_message(&b)?
            } else {
                Bytes::from(crate::api::anthropic_error(status.as_u16(), &b))
            };
            self.full = Some(out);
        } else if self.relay.is_some() {
            self.outbound = Some(Box::new(Outbound::Messages(EventWriter::new())));
        }
        Ok(self)
    }

    /// This body for a client of OpenAI's Responses API: a whole answer rewritten at once, a
    /// relayed stream event by event as it passes. Errors stay as they are: the Responses
    /// API's are OpenAI's shape.
    pub fn into_responses(mut self, status: http::StatusCode) -> Result<Self, String> {
        if let Some(b) = self.full.take() {
            self.full = Some(if status.is_success() {
                super::responses::outbound_response(&b)?
            } else {
                b
            });
        } else if self.relay.is_some() {
            self.outbound = Some(Box::new(Outbound::Responses(ResponsesWriter::new())));
        }
        Ok(self)
    }

    /// The next frame as the upstream's bytes go: the whole body, or the relayed stream.
    fn poll_relay(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RelayError>>> {
        let this = self.project();
        if let Some(b) = this.full.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        let Some(relay) = this.relay.as_pin_mut() else {
            return Poll::Ready(None);
        };
        let mut r = relay.project();
        if *r.over {
            return Poll::Ready(None);
        }
        let result = if let Some(e) = r.cut.take() {
            Some(Err(e))
        } else if let Some(b) = r.first.take() {
            Some(r.watch.see(&b).map(|()| Frame::data(b)))
        } else if *r.ended {
            if r.watch.ended_with_done() {
                None
            } else {
                Some(Err(RelayError::Unfinished))
            }
        } else if r.deadline.poll(cx).is_ready() {
            Some(Err(RelayError::Deadline))
        } else {
            loop {
                match r.rest.as_mut().poll_frame(cx) {
                    Poll::Pending => {
                        *r.unflushed = false;
                        return Poll::Pending;
                    }
                    Poll::Ready(Some(Ok(f))) => {
                        let (Some(t), Some(d)) = (r.translate.as_mut(), f.data_ref()) else {
                            break Some(match f.data_ref() {
                                Some(d) => r.watch.see(d).map(|()| f),
                                None => Ok(f),
                            });
                        };
                        match t.feed(d) {
                            // Part of an event: nothing to send yet, read on.
                            Ok(out) if out.is_empty() => {}
                            Ok(out) => break Some(r.watch.see(&out).map(|()| Frame::data(out))),
                            Err(e) => break Some(Err(e.into())),
                        }
                    }
                    Poll::Ready(Some(Err(e))) => break Some(Err(RelayError::Upstream(e))),
                    Poll::Ready(None) => {
                        let tail = match r.translate.as_mut().map(|t| t.finish()) {
                            Some(Ok(tail)) if !tail.is_empty() => tail,
                            Some(Err(e)) => break Some(Err(e.into())),
                            _ if r.watch.ended_with_done() => break None,
                            _ => break Some(Err(RelayError::Unfinished)),
                        };
                        *r.ended = true;
                        break Some(r.watch.see(&tail).map(|()| Frame::data(tail)));
                    }
                }
            }
        };
        match result {
            Some(Ok(_)) => *r.unflushed = true,
            // hyper drops what it has buffered but not written when a body fails, so a cut
            // right behind the frames it rides with would lose them (even the head): say
            // Pending once, which makes hyper flush, and fail on the next poll.
            Some(Err(e)) if *r.unflushed => {
                *r.unflushed = false;
                *r.cut = Some(e);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Some(Err(ref e)) => {
                r.cuts.cut(e.reason());
                *r.over = true;
            }
            None => *r.over = true,
        }
        Poll::Ready(result)
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = RelayError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RelayError>>> {
        loop {
            let polled = self.as_mut().poll_relay(cx);
            let this = self.as_mut().project();
            let Some(writer) = this.outbound.as_mut() else {
                return polled;
            };
            let Poll::Ready(Some(Ok(frame))) = polled else {
                return polled;
            };
            let Some(data) = frame.data_ref() else {
                return Poll::Ready(Some(Ok(frame)));
            };
            match writer.feed(data) {
                // Part of a chunk: nothing to send yet, poll on.
                Ok(out) if out.is_empty() => {}
                Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                Err(e) => return Poll::Ready(Some(Err(e.into()))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.full.is_none() && self.relay.as_ref().is_none_or(|r| r.over)
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.full, &self.relay) {
            (Some(b), _) => SizeHint::with_exact(b.len() as u64),
            (None, None) => SizeHint::with_exact(0),
            (None, Some(_)) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(parts: &[&[u8]]) -> Result<Watch, RelayError> {
        let mut w = Watch::default();
        for p in parts {
            w.see(p)?;
        }
        Ok(w)
    }

    #[test]
    fn done_is_seen_across_frame_splits() {
        assert!(
            watch(&[b"data: {}\n\ndata: [DO", b"NE]\n\n"])
                .unwrap()
                .ended_with_done()
        );
        assert!(
            watch(&[b"data: [DONE]", b"\n", b"\n"])
                .unwrap()
                .ended_with_done()
        );
        assert!(!watch(&[b"data: {}\n\n"]).unwrap().ended_with_done());
        assert!(!watch(&[]).unwrap().ended_with_done());
    }

    #[test]
    fn an_endless_line_is_refused_however_it_is_split() {
        let chunk = vec![b'x'; 64 * 1024];
        let mut w = Watch::default();
        let mut sent = 0;
        let err = loop {
            match w.see(&chunk) {
                Ok(()) => sent += chunk.len(),
                Err(e) => break e,
            }
        };
        assert_eq!(err.reason(), "line_too_long");
        assert!(sent <= DEFAULT_MAX_EVENT_BYTES);
        // Lines that end in time never trip it.
        let mut line = vec![b'y'; DEFAULT_MAX_EVENT_BYTES - 1];
        line.push(b'\n');
        assert!(watch(&[&line, &line, &line]).is_ok());
    }
}
