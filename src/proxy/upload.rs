//! The request body on its way to the upstream, with a stall timeout.
//!
//! A downstream that starts an upload and then stops sending would hold
//! the upstream request (and its connection) open forever. [`UploadBody`]
//! fails with [`UploadStalled`] when no frame arrived for the configured
//! `inbound.timeouts.request_body`; hyper's client then aborts the upstream
//! request, and [`stalled`] lets the caller recognise the cause (408).

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::pause::PauseLimit;
use crate::http1::semantics;
use crate::server::{BoxError, RequestBody};

/// The downstream sent no part of the request body for too long.
#[derive(Debug, thiserror::Error)]
#[error("request body stalled: nothing received for {0:?}")]
pub struct UploadStalled(pub Duration);

/// The downstream's request body broke its own framing (a chunk-size line
/// that is not hex, a chunk not followed by CRLF, a body cut short): the
/// request is the downstream's fault (400), not the upstream's.
#[derive(Debug, thiserror::Error)]
#[error("request body malformed: {0}")]
pub struct UploadMalformed(String);

/// What the downstream's body did to a failed upstream request.
pub enum UploadFault {
    Stalled(Duration),
    Malformed,
}

/// The downstream's request body, failing when it stalls.
pub struct UploadBody {
    inner: RequestBody,
    pause: PauseLimit,
}

impl UploadBody {
    pub fn new(inner: RequestBody, timeout: Duration) -> Self {
        Self {
            inner,
            pause: PauseLimit::new(timeout),
        }
    }
}

impl Body for UploadBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.pause.progressed();
                Poll::Ready(frame.map(|frame| match frame {
                    Ok(frame) => Ok(without_disallowed_trailers(frame)),
                    Err(error) => Err(UploadMalformed(error.to_string()).into()),
                }))
            }
            Poll::Pending => {
                let limit = ready!(this.pause.poll_exceeded(cx));
                Poll::Ready(Some(Err(UploadStalled(limit).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A trailer section without the fields a trailer must not carry (RFC
/// 9110 §6.5.1, [`semantics::allowed_in_trailers`]); data passes as is.
fn without_disallowed_trailers(frame: Frame<Bytes>) -> Frame<Bytes> {
    match frame.into_trailers() {
        Ok(mut trailers) => {
            let disallowed: Vec<_> = trailers
                .keys()
                .filter(|name| !semantics::allowed_in_trailers(name.as_str().as_bytes()))
                .cloned()
                .collect();
            for name in disallowed {
                trailers.remove(name);
            }
            Frame::trailers(trailers)
        }
        Err(frame) => frame,
    }
}

/// The downstream's part in a failed upstream request, if it had one.
pub fn fault(error: &(dyn std::error::Error + 'static)) -> Option<UploadFault> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(stall) = error.downcast_ref::<UploadStalled>() {
            return Some(UploadFault::Stalled(stall.0));
        }
        if error.is::<UploadMalformed>() {
            return Some(UploadFault::Malformed);
        }
        cause = error.source();
    }
    None
}
