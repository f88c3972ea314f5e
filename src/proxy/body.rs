//! The response body wrapper that finishes the span.
//!
//! A span ends when the response has been fully sent, not when its head
//! arrived: [`TracedBody`] streams the upstream body frame by frame
//! (nothing is buffered), counts its bytes, reads `grpc-status` from the
//! trailers, and finishes the span at end of stream, on an upstream error,
//! or when hyper drops it (the downstream went away). An upstream body
//! that pauses longer than `timeouts.response_body` is cut off
//! ([`PauseLimit`]): the downstream connection closes and the span records
//! why.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use pin_project_lite::pin_project;

use super::affinity::KeptBody;
use super::flight::{Ending, InFlight};
use super::pause::PauseLimit;
use crate::http1::{BoxError, RawFields, ResponseFields};

/// The upstream's body: from a pooled hyper client, or read off a kept
/// HTTP/1.1 connection ([`crate::http1::client`]).
pub type UpstreamBody = Either<Incoming, KeptBody>;

/// What the proxy sends downstream: the upstream's body or a local answer.
pub type ResponseBody = TracedBody<Either<UpstreamBody, Full<Bytes>>>;

pin_project! {
    /// A body that finishes its span when it ends.
    pub struct TracedBody<B>
    where
        B: Body,
    {
        #[pin]
        inner: B,
        flight: Option<InFlight>,
        // Upstream bodies only: local answers never wait.
        pause: Option<PauseLimit>,
    }

    impl<B> PinnedDrop for TracedBody<B>
    where
        B: Body,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(flight) = this.flight.take() {
                // An empty body is never polled: dropping it is a normal end.
                let complete = this.inner.is_end_stream();
                flight.finish(Ending::Dropped { complete });
            }
        }
    }
}

impl<B: Body> TracedBody<B> {
    pub fn new(inner: B, flight: InFlight) -> Self {
        Self {
            inner,
            flight: Some(flight),
            pause: None,
        }
    }

    /// Cuts the body off after a pause longer than `limit`.
    pub fn with_pause_limit(mut self, limit: std::time::Duration) -> Self {
        self.pause = Some(PauseLimit::new(limit));
        self
    }

    /// A body whose span is finished elsewhere (a `CONNECT` tunnel).
    pub fn untraced(inner: B) -> Self {
        Self {
            inner,
            flight: None,
            pause: None,
        }
    }
}

impl<B: Body + ResponseFields> ResponseFields for TracedBody<B> {
    fn fields(&self) -> Option<&RawFields> {
        self.inner.fields()
    }

    fn take_fields(&mut self) -> Option<RawFields> {
        self.inner.take_fields()
    }
}

impl<B> Body for TracedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let polled = match this.inner.poll_frame(cx) {
            Poll::Ready(polled) => polled,
            Poll::Pending => {
                let Some(pause) = this.pause.as_mut() else {
                    return Poll::Pending;
                };
                let limit = ready!(pause.poll_exceeded(cx));
                let message = format!("upstream response body stalled for {limit:?}");
                if let Some(flight) = this.flight.take() {
                    flight.finish(Ending::UpstreamBodyError(message.clone()));
                }
                return Poll::Ready(Some(Err(message.into())));
            }
        };
        if let Some(pause) = this.pause.as_mut() {
            pause.progressed();
        }
        match &polled {
            Some(Ok(frame)) => {
                if let Some(flight) = this.flight.as_mut() {
                    if let Some(data) = frame.data_ref() {
                        flight.add_response_bytes(data.len());
                    } else if let Some(trailers) = frame.trailers_ref() {
                        flight.read_grpc_status(trailers);
                    }
                }
            }
            Some(Err(error)) => {
                if let Some(flight) = this.flight.take() {
                    flight.finish(Ending::UpstreamBodyError(error.to_string()));
                }
            }
            None => {
                if let Some(flight) = this.flight.take() {
                    flight.finish(Ending::Complete);
                }
            }
        }
        Poll::Ready(polled.map(|frame| frame.map_err(|error| error.to_string().into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
