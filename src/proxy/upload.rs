//! The request body on its way to the upstream, with a stall timeout.
//!
//! A downstream that starts an upload and then stops sending would hold
//! the upstream request (and its connection) open forever. [`UploadBody`]
//! fails with [`UploadError::Stalled`] when no frame arrived for the
//! configured `timeouts.request_body` (408), and with
//! [`UploadError::Malformed`] when the downstream's own body broke (400);
//! the upstream client hands the error back as it came. Trailer sections
//! lose the fields a trailer must not carry (RFC 9110 §6.5.1).

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::pause::PauseLimit;
use crate::http1::semantics;
use crate::server::RequestBody;

/// How the downstream's request body failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum UploadError {
    /// No part of the body arrived for this long.
    #[error("request body stalled: nothing received for {0:?}")]
    Stalled(Duration),
    /// The body broke its own framing (a chunk-size line that is not hex,
    /// a chunk not followed by CRLF, a body cut short): the downstream's
    /// fault, not the upstream's.
    #[error("request body malformed: {0}")]
    Malformed(String),
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
    type Error = UploadError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UploadError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.pause.progressed();
                Poll::Ready(frame.map(|frame| match frame {
                    Ok(frame) => Ok(without_disallowed_trailers(frame)),
                    Err(error) => Err(UploadError::Malformed(error.to_string())),
                }))
            }
            Poll::Pending => {
                let limit = ready!(this.pause.poll_exceeded(cx));
                Poll::Ready(Some(Err(UploadError::Stalled(limit))))
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

/// The downstream's body error behind a failed HTTP/2 request, if that
/// was the cause: hyper's client wraps it, so it is found again here, at
/// that one boundary (HTTP/1.1 hands it back as it came).
pub fn behind<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a UploadError> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(upload) = error.downcast_ref::<UploadError>() {
            return Some(upload);
        }
        cause = error.source();
    }
    None
}
