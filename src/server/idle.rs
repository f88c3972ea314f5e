//! The idle timeout: closes a connection that has had no request in flight
//! for a while.
//!
//! hyper has no idle timeout of its own for HTTP/2, and for HTTP/1.1 only
//! the header-read timer (which in hyper 1.x also runs while a keep-alive
//! connection waits for its next request head). [`Activity`] counts the
//! requests in flight on one connection — a request ends when its response
//! body is dropped, so a long download keeps its connection busy — and
//! [`Activity::idle_expired`] resolves once none has been in flight for
//! the idle timeout. The server loop then shuts the connection down
//! gracefully (HTTP/2 GOAWAY; HTTP/1.1 closes after any response in
//! progress), so nothing in progress is ever cut off.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use crate::http1::{RawFields, ResponseFields};

/// Requests in flight on one connection and when the last one ended.
pub(super) struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `opened` at which the last request ended.
    last_ended_ms: AtomicU64,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ended_ms: AtomicU64::new(0),
        })
    }

    /// Marks a request as started; it ends when the guard is dropped.
    pub(super) fn start(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestGuard(self.clone())
    }

    fn last_ended(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ended_ms.load(Ordering::Relaxed))
    }

    /// Resolves once no request has been in flight for `idle`.
    pub(super) async fn idle_expired(&self, idle: Duration) {
        loop {
            if self.in_flight.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(idle).await;
                continue;
            }
            let deadline = self.last_ended() + idle;
            if deadline <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One request in flight; dropping it ends the request.
pub(super) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        let elapsed = u64::try_from(activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.last_ended_ms.store(elapsed, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// A response body that holds its request's guard until it is dropped.
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        guard: RequestGuard,
    }
}

impl<B> TrackedBody<B> {
    pub(super) fn new(inner: B, guard: RequestGuard) -> Self {
        Self { inner, guard }
    }
}

impl<B: ResponseFields> ResponseFields for TrackedBody<B> {
    fn fields(&self) -> Option<&RawFields> {
        self.inner.fields()
    }

    fn take_fields(&mut self) -> Option<RawFields> {
        self.inner.take_fields()
    }
}

impl<B: Body<Data = Bytes>> Body for TrackedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expires_only_after_the_last_request_ended_plus_idle() {
        let activity = Activity::new();
        let idle = Duration::from_secs(60);
        let guard = activity.start();
        // Busy for two idle periods: never expires meanwhile.
        let busy = tokio::time::timeout(Duration::from_secs(120), activity.idle_expired(idle));
        assert!(busy.await.is_err());
        drop(guard);
        let ended = Instant::now();
        activity.idle_expired(idle).await;
        let waited = ended.elapsed();
        assert!(
            waited >= idle && waited < idle + Duration::from_secs(2),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_sends_expires_after_idle() {
        let activity = Activity::new();
        let start = Instant::now();
        activity.idle_expired(Duration::from_secs(5)).await;
        assert!(start.elapsed() >= Duration::from_secs(5));
    }
}
