//! Parked connections: idle keep-alive connections that are not tasks.
//!
//! A connection task costs about 1.4 KiB while it waits for a client's next
//! request: the task and its future, tokio's registration of the socket
//! (128-byte aligned), the wait's timer, and an upstream connection kept for
//! it. Clients hold many keep-alive connections that sit idle for seconds
//! (browsers, connection pools, load balancers), so that was most of
//! tracehop's memory with 10,000 open (bench/README.md, idle connections).
//!
//! A direct-path connection that has sent nothing for [`PARK_AFTER`] leaves
//! its task ([`crate::http1::server::Ended::Idle`]): its socket moves from
//! tokio's reactor to the [`Lot`]'s own epoll instance, which tokio watches
//! as one file descriptor. What a parked connection keeps is a [`Parked`]:
//! the socket, the peer's address, its place under `max_connections`, its
//! deadline and whether it has had a request (about 70 bytes); its task,
//! buffers, timer and kept upstream connection are freed. When the socket
//! turns readable (the next request, or the client closing) the server
//! gives it a new task ([`Waiter::next`]); when its deadline passes (the
//! header-read or idle wait it was in) it is closed, as the task would have
//! closed it. A connection busy enough never to wait [`PARK_AFTER`] never
//! parks, so parking costs nothing at high request rates; a slow one pays
//! four `epoll_ctl` calls and a task per pause.
//!
//! On shutdown the lot closes what it holds: parked connections are idle,
//! which is when a draining server closes a connection anyway.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// How long a connection waits for a request in its task before it parks.
/// Long enough that a connection busy with requests never parks (a parked
/// connection's next request costs four `epoll_ctl` calls and a task more,
/// a few microseconds), short enough that few connections of a burst are
/// tasks at once: 10,000 clients connecting over 1.5 s with 500 ms here
/// had about 3,500 tasks alive at the peak, whose freed memory the
/// allocator then kept (bench/README.md, idle connections).
pub const PARK_AFTER: Duration = Duration::from_millis(100);

/// Deadlines are looked for at most this often: a scan of every parked
/// connection (10,000 take about 20 µs) bounds the cost of many deadlines
/// close together; a deadline is kept to within this.
const SCAN_EVERY: Duration = Duration::from_millis(50);

/// Readiness events taken from the lot's epoll instance per call.
const EVENTS: usize = 256;

/// An idle connection without a task.
#[derive(Debug)]
pub struct Parked {
    pub stream: std::net::TcpStream,
    pub peer: SocketAddr,
    /// Its place under `max_connections` and in the open-connections gauge.
    pub place: super::Place,
    /// It has had no request yet (an HTTP/2 preface still counts).
    pub first: bool,
    /// When it is closed if nothing comes (none: never).
    pub deadline: Option<Instant>,
}

/// Where connections park; shared by a server's connection tasks.
pub struct Lot {
    registry: mio::Registry,
    state: Mutex<State>,
    /// Tells the waiter a deadline earlier than its timer's came in.
    earlier: Notify,
}

#[derive(Default)]
struct State {
    /// Parked connections by token.
    slots: Slots<Parked>,
    /// Counts the parked connections for the listener's metrics.
    gauge: Option<prometheus::IntGauge>,
    /// The earliest deadline the waiter's timer is set for.
    armed: Option<Instant>,
    /// The server has stopped: connections that park now are closed.
    closed: bool,
}

/// The server loop's side of a [`Lot`]: its epoll instance, watched by tokio.
pub struct Waiter {
    lot: Arc<Lot>,
    poll: AsyncFd<Poll>,
    events: Events,
    timer: std::pin::Pin<Box<Sleep>>,
    last_scan: Instant,
}

/// The epoll instance in tokio's reactor.
#[expect(
    deprecated,
    reason = "tokio deprecates its safe constructor because a type's `as_raw_fd` might change \
              or close (tokio#8587); mio's `Poll` owns its descriptor for its whole life, and \
              the crate forbids unsafe code"
)]
fn watch(poll: Poll) -> io::Result<AsyncFd<Poll>> {
    AsyncFd::with_interest(poll, tokio::io::Interest::READABLE)
}

impl Lot {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Parks `connection` until it turns readable or its deadline passes.
    /// After shutdown, or if the socket cannot be watched, it is closed.
    pub fn park(&self, connection: Parked) {
        let mut state = self.state();
        if state.closed {
            return;
        }
        let fd = connection.stream.as_raw_fd();
        let (peer, deadline) = (connection.peer, connection.deadline);
        let key = state.slots.insert(connection);
        let registered = self
            .registry
            .register(&mut SourceFd(&fd), Token(key), Interest::READABLE);
        if let Err(error) = registered {
            tracing::debug!(%peer, %error, "could not park; closing");
            drop(state.slots.take(key));
            return;
        }
        if let Some(gauge) = &state.gauge {
            gauge.inc();
        }
        if let Some(at) = deadline
            && state.armed.is_none_or(|armed| at < armed)
        {
            state.armed = Some(at);
            self.earlier.notify_one();
        }
    }

    /// Connections parked now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.state().parked()
    }

    /// Closes every parked connection, and any that parks from now on.
    pub fn close(&self) {
        let mut state = self.state();
        state.closed = true;
        if let Some(gauge) = &state.gauge {
            gauge.sub(i64::try_from(state.parked()).unwrap_or(i64::MAX));
        }
        state.slots = Slots::default();
    }
}

impl State {
    /// Connections parked now.
    fn parked(&self) -> usize {
        self.slots.parked()
    }

    /// Empties the slot under `key`; what it held.
    fn vacate(&mut self, key: usize) -> Option<Parked> {
        let parked = self.slots.take(key)?;
        if let Some(gauge) = &self.gauge {
            gauge.dec();
        }
        Some(parked)
    }

    /// Takes the connection parked under `key` out of the lot.
    fn take(&mut self, registry: &mio::Registry, key: usize) -> Option<Parked> {
        let parked = self.vacate(key)?;
        let _ = registry.deregister(&mut SourceFd(&parked.stream.as_raw_fd()));
        Some(parked)
    }

    /// Closes the connections whose deadline has passed; the earliest
    /// deadline left.
    fn expire(&mut self, now: Instant) -> Option<Instant> {
        let mut earliest = None::<Instant>;
        let mut expired = Vec::new();
        for (key, parked) in self.slots.iter() {
            let Some(deadline) = parked.deadline else {
                continue;
            };
            if deadline <= now {
                expired.push(key);
            } else if earliest.is_none_or(|at| deadline < at) {
                earliest = Some(deadline);
            }
        }
        for key in expired {
            // Closing the socket also takes it out of the epoll set.
            drop(self.vacate(key));
        }
        earliest
    }
}

/// Slots in a chunk of [`Slots`]: for parked connections 512 × 80 bytes,
/// 40 KiB.
const CHUNK: usize = 512;

/// Parked connections by key, in chunks of [`CHUNK`] slots, so that memory
/// follows the number parked: one `Vec` grown by doubling held 16,384
/// slots (1.3 MB) for 10,000 connections, freed a copy at each doubling,
/// and kept it all until the server stopped (bench/README.md, "the parking
/// lot's slots in chunks"). Freed keys are reused first; when the last
/// connection leaves, every chunk is freed.
struct Slots<T> {
    /// Every chunk but the last is full.
    chunks: Vec<Vec<Option<T>>>,
    /// Freed keys, below [`Slots::used`].
    free: Vec<usize>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    /// Keys handed out so far, freed ones included.
    fn used(&self) -> usize {
        self.chunks
            .last()
            .map_or(0, |last| (self.chunks.len() - 1) * CHUNK + last.len())
    }

    fn parked(&self) -> usize {
        self.used() - self.free.len()
    }

    /// Stores `parked`; its key.
    fn insert(&mut self, parked: T) -> usize {
        let key = match self.free.pop() {
            Some(key) => key,
            None => {
                let key = self.used();
                if key / CHUNK == self.chunks.len() {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                self.chunks[key / CHUNK].push(None);
                key
            }
        };
        self.chunks[key / CHUNK][key % CHUNK] = Some(parked);
        key
    }

    /// Empties the slot under `key`; what it held (nothing for a key not
    /// in use).
    fn take(&mut self, key: usize) -> Option<T> {
        let parked = self
            .chunks
            .get_mut(key / CHUNK)?
            .get_mut(key % CHUNK)?
            .take()?;
        self.free.push(key);
        if self.parked() == 0 {
            *self = Self::default();
        }
        Some(parked)
    }

    /// The connections parked and their keys.
    fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.chunks
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(key, slot)| Some((key, slot.as_ref()?)))
    }
}

impl Waiter {
    /// A lot and the waiter that wakes its connections; `gauge` counts
    /// the connections parked.
    pub fn new(gauge: Option<prometheus::IntGauge>) -> io::Result<Self> {
        let poll = Poll::new()?;
        let lot = Arc::new(Lot {
            registry: poll.registry().try_clone()?,
            state: Mutex::new(State {
                gauge,
                ..State::default()
            }),
            earlier: Notify::new(),
        });
        Ok(Self {
            lot,
            poll: watch(poll)?,
            events: Events::with_capacity(EVENTS),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            last_scan: Instant::now(),
        })
    }

    /// The lot this waiter serves.
    pub fn lot(&self) -> &Arc<Lot> {
        &self.lot
    }

    /// Waits until parked connections turn readable and returns them,
    /// closing those whose deadline passes meanwhile. Cancel-safe: nothing
    /// taken from the lot is held across an await.
    pub async fn next(&mut self) -> Vec<Parked> {
        loop {
            let armed = self.lot.state().armed;
            if let Some(at) = armed {
                let at = at.max(self.last_scan + SCAN_EVERY);
                if self.timer.deadline() != at {
                    self.timer.as_mut().reset(at);
                }
            }
            tokio::select! {
                biased;
                ready = self.poll.readable_mut() => {
                    let Ok(mut guard) = ready else {
                        // The epoll instance failed; nothing parks any more
                        // (connections then stay in their tasks' wait).
                        self.lot.close();
                        return std::future::pending().await;
                    };
                    let mut woken = Vec::new();
                    loop {
                        let poll = guard.get_inner_mut();
                        if poll.poll(&mut self.events, Some(Duration::ZERO)).is_err() {
                            break;
                        }
                        let mut state = self.lot.state();
                        let mut count = 0;
                        for event in &self.events {
                            count += 1;
                            woken.extend(state.take(&self.lot.registry, event.token().0));
                        }
                        if count < EVENTS {
                            break;
                        }
                    }
                    guard.clear_ready();
                    if !woken.is_empty() {
                        return woken;
                    }
                }
                () = self.timer.as_mut(), if armed.is_some() => {
                    let now = Instant::now();
                    self.last_scan = now;
                    let mut state = self.lot.state();
                    state.armed = state.expire(now);
                }
                () = self.lot.earlier.notified() => {}
            }
        }
    }
}

impl Drop for Waiter {
    /// The server has stopped: what is parked is closed.
    fn drop(&mut self) {
        self.lot.close();
    }
}

/// A connection's stream that can park: plain TCP can, TLS cannot (its
/// session state lives in the stream).
pub trait Parkable: Sized {
    /// The socket, out of tokio's reactor, or `None` if it cannot park.
    fn into_parkable(self) -> Option<std::net::TcpStream>;
}

impl Parkable for tokio::net::TcpStream {
    fn into_parkable(self) -> Option<std::net::TcpStream> {
        self.into_std().ok()
    }
}

impl<S> Parkable for tokio_rustls::server::TlsStream<S> {
    fn into_parkable(self) -> Option<std::net::TcpStream> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{CHUNK, Slots};

    #[test]
    fn slots_grow_by_chunks_reuse_keys_and_free_everything_when_empty() {
        let mut slots = Slots::default();
        for value in 0..=CHUNK {
            assert_eq!(slots.insert(value), value, "keys are handed out in order");
        }
        assert_eq!(slots.chunks.len(), 2, "{} slots take two chunks", CHUNK + 1);
        assert!(slots.chunks.iter().all(|chunk| chunk.capacity() == CHUNK));
        assert_eq!(slots.parked(), CHUNK + 1);

        assert_eq!(slots.take(3), Some(3));
        assert_eq!(slots.take(3), None, "a slot is emptied once");
        assert_eq!(slots.take(CHUNK + 1), None, "a key never handed out");
        assert_eq!(slots.take(usize::MAX), None);
        assert_eq!(slots.parked(), CHUNK);
        assert_eq!(slots.insert(1000), 3, "a freed key is reused first");
        assert_eq!(slots.insert(1001), CHUNK + 1);

        let listed: Vec<(usize, usize)> = slots.iter().map(|(key, &value)| (key, value)).collect();
        assert_eq!(listed.len(), CHUNK + 2);
        assert_eq!(listed[3], (3, 1000));
        assert_eq!(listed[CHUNK], (CHUNK, CHUNK));
        assert_eq!(listed[CHUNK + 1], (CHUNK + 1, 1001));
        assert!(listed.iter().enumerate().all(|(i, (key, _))| i == *key));

        for key in 0..CHUNK + 2 {
            assert!(slots.take(key).is_some(), "key {key}");
        }
        assert_eq!(slots.parked(), 0);
        assert!(slots.chunks.is_empty() && slots.free.is_empty() && slots.used() == 0);
        assert_eq!(slots.insert(7), 0, "an emptied lot starts again from key 0");
    }
}
