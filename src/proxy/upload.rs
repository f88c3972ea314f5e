//! The request body on its way to the upstream, with a stall timeout.
//!
//! A downstream that starts an upload and then stops sending would hold
//! the upstream request (and its connection) open forever. [`UploadBody`]
//! fails with [`UploadStalled`] when no frame arrived for the configured
//! `inbound.timeouts.request_body`; hyper's client then aborts the upstream
//! request, and [`stalled`] lets the caller recognise the cause (408).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::server::{BoxError, RequestBody};

/// The downstream sent no part of the request body for too long.
#[derive(Debug, thiserror::Error)]
#[error("request body stalled: nothing received for {0:?}")]
pub struct UploadStalled(pub Duration);

/// The downstream's request body, failing when it stalls.
pub struct UploadBody {
    inner: RequestBody,
    /// Started the first time the body has nothing to give, so requests
    /// without a body (or with one already buffered) never allocate it.
    timer: Option<Pin<Box<Sleep>>>,
    timeout: Duration,
}

impl UploadBody {
    pub fn new(inner: RequestBody, timeout: Duration) -> Self {
        Self {
            inner,
            timer: None,
            timeout,
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
                if let Some(timer) = &mut this.timer {
                    timer.as_mut().reset(Instant::now() + this.timeout);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(UploadStalled(timeout).into())))
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

/// The stall behind a failed upstream request, if that was the cause.
pub fn stalled<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a UploadStalled> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(stall) = error.downcast_ref::<UploadStalled>() {
            return Some(stall);
        }
        cause = error.source();
    }
    None
}
