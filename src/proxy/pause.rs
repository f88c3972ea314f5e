//! A bound on the pauses of a body that streams through the proxy.
//!
//! A request body that stops arriving ([`super::upload`]) and an upstream
//! response body that stops arriving ([`super::body`]) would otherwise hold
//! their connections open forever. [`PauseLimit`] starts a timer the first
//! time the body has nothing to give (so a body that is already read never
//! allocates one) and moves it on whenever a frame arrives.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The longest pause a body may take between two frames.
pub struct PauseLimit {
    timer: Option<Pin<Box<Sleep>>>,
    limit: Duration,
}

impl PauseLimit {
    pub fn new(limit: Duration) -> Self {
        Self { timer: None, limit }
    }

    /// A frame arrived: the next pause starts now.
    pub fn progressed(&mut self) {
        if let Some(timer) = &mut self.timer {
            timer.as_mut().reset(Instant::now() + self.limit);
        }
    }

    /// The body is waiting: ready with the limit once the pause exceeds it.
    pub fn poll_exceeded(&mut self, cx: &mut Context<'_>) -> Poll<Duration> {
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn only_a_pause_longer_than_the_limit_is_exceeded() {
        let start = Instant::now();
        let mut pause = PauseLimit::new(Duration::from_secs(5));
        let limit = std::future::poll_fn(|cx| pause.poll_exceeded(cx)).await;
        assert_eq!(limit, Duration::from_secs(5));
        assert!(start.elapsed() >= Duration::from_secs(5));
        // A frame arriving moves the deadline on.
        let mut pause = PauseLimit::new(Duration::from_secs(5));
        let waiting = std::future::poll_fn(|cx| pause.poll_exceeded(cx));
        assert!(
            tokio::time::timeout(Duration::from_secs(3), waiting)
                .await
                .is_err()
        );
        pause.progressed();
        let moved = Instant::now();
        std::future::poll_fn(|cx| pause.poll_exceeded(cx)).await;
        assert!(
            moved.elapsed() >= Duration::from_secs(5),
            "{:?}",
            moved.elapsed()
        );
    }
}
