//! The body the gateway answers with: a complete buffer, or an upstream stream relayed frame
//! by frame after its first chunk. A relayed stream that fails (or outlives the request's
//! total deadline) ends with an error, so the client sees the stream cut, never a fake end.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::Sleep;

/// Why a relayed stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("upstream stream failed: {0}")]
    Upstream(#[from] hyper::Error),
    #[error("the request's total deadline passed while streaming")]
    Deadline,
}

pin_project! {
    /// A response body: either `full` or the `relay` of an upstream stream.
    pub struct GatewayBody {
        full: Option<Bytes>,
        #[pin]
        relay: Option<Relay>,
    }
}

pin_project! {
    pub struct Relay {
        first: Option<Bytes>,
        #[pin]
        rest: Incoming,
        #[pin]
        deadline: Sleep,
    }
}

impl GatewayBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let b = bytes.into();
        Self {
            full: (!b.is_empty()).then_some(b),
            relay: None,
        }
    }

    pub fn relay(first: Bytes, rest: Incoming, deadline: tokio::time::Instant) -> Self {
        Self {
            full: None,
            relay: Some(Relay {
                first: Some(first),
                rest,
                deadline: tokio::time::sleep_until(deadline),
            }),
        }
    }
}

impl Body for GatewayBody {
    type Data = Bytes;
    type Error = RelayError;

    fn poll_frame(
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
        let r = relay.project();
        if let Some(b) = r.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        if r.deadline.poll(cx).is_ready() {
            return Poll::Ready(Some(Err(RelayError::Deadline)));
        }
        match r.rest.poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(RelayError::Upstream(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.full.is_none() && self.relay.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.full, &self.relay) {
            (Some(b), _) => SizeHint::with_exact(b.len() as u64),
            (None, None) => SizeHint::with_exact(0),
            (None, Some(_)) => SizeHint::default(),
        }
    }
}
