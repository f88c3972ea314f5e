//! The server side of an HTTP/1.1 connection: plain requests served in the
//! connection's own task.
//!
//! Nearly every request a sidecar sees is a plain HTTP/1.1 request on a
//! keep-alive connection: a head, and no body or a small one that arrived
//! with it. hyper serves each request through a general dispatcher (a boxed
//! handler future, a boxed header timer, a body fed over a channel, a read
//! buffer reallocated per request); for plain requests [`serve`] reads the
//! head, calls the handler and writes the response itself.
//!
//! Every head is parsed and checked here first, with the rules of
//! [`super::semantics`]: a malformed head, a bad Host, untrustworthy
//! framing or an HTTP/2 preface after the first request get 400 (too many
//! fields 431, another major version 505) and the connection closes. Any
//! HTTP/1.x minor version is read as HTTP/1.1 (RFC 9112 §2.3). A request
//! that needs more than this connection does ([`super::path::downstream`]
//! says which and why: HTTP/1.0, `CONNECT`, upgrades, `Expect`, trailers,
//! a chunked or streamed upload, a head larger than the read buffer) hands
//! the connection, with the bytes read so far, to hyper for the rest of its
//! life ([`Ended::Handover`]), as does an HTTP/2 preface on a new
//! connection.
//!
//! Responses are written as hyper writes them: lower-case field names (and
//! [`RawFields`](super::RawFields) lines as they came); the handler's
//! `Content-Length`, else the body's exact length, else chunked; no body
//! where [`response_has_body`] says so; a `Date` when the handler set none;
//! `Connection: close` when the connection closes after the response;
//! trailers dropped (a request that asks for them, with `TE`, goes to
//! hyper). And as under hyper, the connection
//! - bounds the wait for each request head by `header_read` (and by `idle`
//!   between requests), closing silently when it runs out;
//! - answers a client that half-closes after its request, then closes;
//! - drops the handler's future when the client's connection fails;
//! - stops between requests on shutdown, after the response in progress;
//! - closes instead of answering out of step: a body that fails, or runs
//!   shorter or longer than its declared length, ends the connection.
//!
//! An idle keep-alive connection holds no buffers: between requests its
//! buffers go back to the thread's spares while it waits for its next
//! bytes (see `buffers`), and are taken again to read them; the handler's
//! future is boxed for the length of its request, and rare paths are
//! boxed when taken. A connection that has waited [`Waits::park`] with
//! nothing read returns [`Ended::Idle`], so that it can wait without a task
//! (`crate::server::park`; bench/README.md, idle connections).

use std::future::{Future, poll_fn};
use std::io::{self, IoSlice};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use super::buffers;
use super::fields::ResponseFields;
use super::path::Fallback;
pub use super::request::check_hyper_request;
use super::request::{Field, Parsed, Pending, parse};
use super::response::{refuse, respond, write_all};
use super::{BoxError, RequestBody};

/// The read buffer. A request's head must fit in it to be served here
/// (hyper's own limit for a head is at least this).
pub(super) const READ_BUFFER: usize = buffers::READ;

/// The largest request (head and body together) read whole before its
/// handler runs; a larger body is streamed by hyper. Uploads of a few
/// KiB are common (form posts, JSON APIs) and, read whole, are served
/// here: a 16 KiB upload handed to hyper cost its connection the direct
/// path for good (bench/README.md, uploads). The buffer grows to this only
/// while such a request is read and is given back when the connection
/// waits idle.
pub(super) const MAX_BUFFERED_REQUEST: usize = 64 * 1024;

/// How [`serve`] stopped.
pub enum Ended<S> {
    /// The connection is done (closed by either side, timed out, shut down).
    Closed,
    /// hyper serves the rest of the connection, starting with these bytes,
    /// for this reason.
    Handover(Prefixed<S>, Fallback),
    /// Nothing came for [`Waits::park`]: the connection may wait elsewhere
    /// (see `crate::server::park`) and be served again from its next bytes,
    /// with `first` as it is; it is closed if nothing comes by `deadline`.
    Idle {
        first: bool,
        deadline: Option<Instant>,
    },
}

/// How long [`serve`] waits for what a client sends.
#[derive(Clone, Copy, Debug)]
pub struct Waits {
    /// Each wait for a request head (none: unbounded).
    pub head: Option<Duration>,
    /// The rest of a body that fits the buffer; after it the request goes
    /// to hyper, whose upload stall timer answers a body that never comes.
    pub body: Duration,
    /// How long to wait for a next request with nothing read before
    /// [`serve`] returns [`Ended::Idle`] (none: it waits on).
    pub park: Option<Duration>,
}

/// Serves plain HTTP/1.1 requests on `io` until the connection ends, waits
/// idle for [`Waits::park`] or a request needs hyper; `context` goes to the
/// handler with each request. `first`: no request came on the connection
/// yet (an HTTP/2 preface is honoured only then).
///
/// An async block rather than an async fn, whose future would hold its
/// arguments twice: this future is part of every connection's state.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn's future holds its arguments twice"
)]
pub fn serve<'a, S, C, H, F, B>(
    io: S,
    context: &'a C,
    handler: &'a H,
    waits: Waits,
    draining: &'a watch::Receiver<()>,
    first: bool,
) -> impl Future<Output = Ended<S>> + 'a
where
    S: AsyncRead + AsyncWrite + Unpin + 'a,
    C: Clone,
    H: Fn(Request<RequestBody>, C) -> F,
    F: Future<Output = Response<B>>,
    B: Body<Data = Bytes> + ResponseFields,
    B::Error: Into<BoxError>,
{
    async move {
        let mut conn = Direct::new(io, waits, first);
        // Resolves when shutdown begins; made once, as waiting on a watch
        // registers (and unregisters) each time it starts.
        let mut watcher = draining.clone();
        let mut shutdown = pin!(watcher.changed());
        let stop = loop {
            if draining.has_changed().unwrap_or(true) {
                break Stop::Closed;
            }
            let (request, closing) = match conn.next_request(shutdown.as_mut()).await {
                Ok(request) => request,
                Err(stop) => break stop,
            };
            // Boxed for the request's length: inline, the handler's future
            // and the response being written (about 2.4 KiB together) would
            // be part of every idle connection's state. The handler is
            // called inside, so its future is made in the box, not moved
            // there, and the box is written in place (`Box::pin` would copy
            // the whole 2.4 KiB in: 290 instructions per request).
            let answer = |request| handler(request, context.clone());
            let exchange = Box::write(
                Box::new_uninit(),
                conn.exchange(request, answer, closing, draining),
            );
            if !Box::into_pin(exchange).await {
                break Stop::Closed;
            }
        };
        // Ending or leaving this path, the connection gives its buffers back.
        release_buffers(&mut conn.read, &mut conn.out, &mut conn.fields);
        match stop {
            Stop::Closed => Ended::Closed,
            Stop::Handover(prefix, fallback) => {
                Ended::Handover(Prefixed::new(prefix, conn.io), fallback)
            }
            Stop::Idle(deadline) => Ended::Idle {
                first: conn.first,
                deadline,
            },
        }
    }
}

/// Why [`Direct::next_request`] has no request.
enum Stop {
    Closed,
    /// hyper takes over, starting with these bytes.
    Handover(Bytes, Fallback),
    /// Nothing came for the park wait; the head's deadline.
    Idle(Option<Instant>),
}

impl Stop {
    /// This stop while the body of `pending` was awaited: hyper, if it
    /// takes over, reads the request from its head.
    fn after_head(self, pending: &Pending) -> Self {
        match self {
            Self::Handover(rest, fallback) => {
                let mut prefix = BytesMut::with_capacity(pending.head.len() + rest.len());
                prefix.extend_from_slice(&pending.head);
                prefix.extend_from_slice(&rest);
                Self::Handover(prefix.freeze(), fallback)
            }
            stop => stop,
        }
    }
}

/// What [`Direct::next_request`] waits for after a parse.
enum Wait {
    /// More of the head.
    Head,
    /// The rest of a body read whole.
    Body { expect_continue: bool },
    /// Nothing: the request is refused with this status.
    Refuse(http::StatusCode),
}

/// One connection on the direct path, between its requests.
struct Direct<S> {
    io: S,
    read: BytesMut,
    /// The response being written (kept for reuse).
    out: Vec<u8>,
    /// Where the head's fields lie (kept for reuse).
    fields: Vec<Field>,
    waits: Waits,
    /// Set to fire no later than the current deadline; moved on (not
    /// re-armed) when it fires early, so a request costs no timer update.
    timer: Pin<Box<Sleep>>,
    /// No request was read yet (the HTTP/2 preface counts only then).
    first: bool,
}

/// The deadlines of one wait for a request.
struct Deadlines {
    head: Option<Instant>,
    /// Set while the rest of a body that fits the buffer is awaited.
    body: Option<Instant>,
    /// Set while nothing of the next request was read.
    park: Option<Instant>,
    /// `100 Continue` was sent.
    continued: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Direct<S> {
    fn new(io: S, waits: Waits, first: bool) -> Self {
        // The timer is only ever moved later (see `deadline_passed`), so it
        // starts at the earliest deadline a wait can have.
        let wait = [waits.park, waits.head].into_iter().flatten().min();
        Self {
            io,
            // Taken when the first bytes arrive (see `poll_fill`).
            read: BytesMut::new(),
            out: Vec::new(),
            fields: Vec::new(),
            waits,
            timer: Box::pin(tokio::time::sleep(wait.unwrap_or(Duration::ZERO))),
            first,
        }
    }

    /// Reads the next request, and whether the connection closes after it.
    async fn next_request(
        &mut self,
        mut shutdown: Pin<&mut impl Future>,
    ) -> Result<(Request<RequestBody>, bool), Stop> {
        let now = Instant::now();
        let mut deadlines = Deadlines {
            head: self.waits.head.map(|wait| now + wait),
            body: None,
            park: self
                .waits
                .park
                .filter(|_| self.read.is_empty())
                .map(|wait| now + wait),
            continued: false,
        };
        // A request whose body is on its way: boxed, as it is held across
        // awaits (inline it would be part of every connection's state).
        let mut pending: Option<Box<Pending>> = None;
        loop {
            if let Some(waiting) = &pending
                && self.read.len() < waiting.length
            {
                if let Err(stop) = self.read_more(&mut deadlines, shutdown.as_mut()).await {
                    return Err(stop.after_head(waiting));
                }
                continue;
            }
            if let Some(waited) = pending.take() {
                let Pending {
                    mut request,
                    closing,
                    length,
                    ..
                } = *waited;
                *request.body_mut() = RequestBody::read(self.read.split_to(length).freeze());
                self.first = false;
                return Ok((request, closing));
            }
            // What the head asks for is decided first and the parse result
            // dropped before anything is awaited: kept across an await, it
            // would be part of every idle connection's state.
            let wait = match parse(&mut self.read, &mut self.fields, self.first) {
                Parsed::Request(request, closing) => {
                    self.first = false;
                    return Ok((request, closing));
                }
                Parsed::AwaitingBody {
                    expect_continue,
                    pending: waiting,
                } => {
                    pending = Some(waiting);
                    Wait::Body { expect_continue }
                }
                Parsed::Partial if self.read.len() < READ_BUFFER => Wait::Head,
                Parsed::Partial => return Err(Stop::Handover(self.taken(), Fallback::LargeHead)),
                Parsed::Handover(head, fallback) => {
                    let mut prefix = BytesMut::from(&head[..]);
                    prefix.extend_from_slice(&self.read);
                    return Err(Stop::Handover(prefix.freeze(), fallback));
                }
                Parsed::Refused(status) => Wait::Refuse(status),
            };
            match wait {
                Wait::Head => {}
                Wait::Body { expect_continue } => {
                    self.await_body(&mut deadlines, expect_continue).await?;
                    // The body is read above, with the head kept aside.
                    continue;
                }
                Wait::Refuse(status) => {
                    // Boxed, as it is rare: inline, its future would be
                    // part of every connection's state.
                    Box::pin(refuse(&mut self.io, &mut self.out, status)).await;
                    return Err(Stop::Closed);
                }
            }
            self.read_more(&mut deadlines, shutdown.as_mut()).await?;
        }
    }

    /// A body that fits the buffer is on its way: `100 Continue` once if
    /// the client waits for it, and a deadline for the rest.
    async fn await_body(&mut self, deadlines: &mut Deadlines, expect: bool) -> Result<(), Stop> {
        if expect && !deadlines.continued {
            deadlines.continued = true;
            self.out.clear();
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            // Boxed, as it is rare (see `refuse` above).
            let sent = Box::pin(write_all(&mut self.io, &mut self.out, &[])).await;
            if sent.is_err() {
                return Err(Stop::Closed);
            }
        }
        if deadlines.body.is_none() {
            let at = Instant::now() + self.waits.body;
            deadlines.body = Some(at);
            if deadlines.head.is_none_or(|head| at < head) {
                self.timer.as_mut().reset(at);
            }
        }
        Ok(())
    }

    /// Waits for more of the request, within its deadlines.
    async fn read_more(
        &mut self,
        deadlines: &mut Deadlines,
        shutdown: Pin<&mut impl Future>,
    ) -> Result<(), Stop> {
        let timed =
            deadlines.head.is_some() || deadlines.body.is_some() || deadlines.park.is_some();
        let between = deadlines.body.is_none();
        tokio::select! {
            biased;
            result = poll_fn(|cx| {
                let (read, out, fields) = (&mut self.read, &mut self.out, &mut self.fields);
                Self::poll_fill(&mut self.io, read, out, fields, between, cx)
            }) => match result {
                Ok(0) | Err(_) => Err(Stop::Closed),
                Ok(_) => Ok(()),
            },
            () = self.timer.as_mut(), if timed => self.deadline_passed(deadlines),
            // Between requests only (a body awaited is part of one).
            _ = shutdown, if self.read.is_empty() && between => Err(Stop::Closed),
        }
    }

    /// Reads what the socket has into the read buffer. Between requests
    /// (`between`: no body is awaited) the connection's buffers are this
    /// thread's spares ([`buffers`]): taken for the read, and given back if
    /// nothing came. (Takes the fields it uses, so the timer can be polled
    /// beside it.)
    ///
    /// The read itself says whether the socket had anything: a separate
    /// readiness check first cost a second look at tokio's readiness per
    /// read (about 200 instructions per request, callgrind).
    fn poll_fill(
        io: &mut S,
        read: &mut BytesMut,
        out: &mut Vec<u8>,
        fields: &mut Vec<Field>,
        between: bool,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if read.capacity() == 0 {
            *read = buffers::take();
        } else if read.capacity() - read.len() < READ_BUFFER / 2 {
            // Reuses the buffer in place once earlier heads are gone.
            read.reserve(READ_BUFFER.saturating_sub(read.len()));
        }
        let polled = tokio_util::io::poll_read_buf(Pin::new(io), cx, read);
        if polled.is_pending() {
            if read.is_empty() && between {
                release_buffers(read, out, fields);
            }
        } else {
            // Taken at their working size: growing them costs copies.
            buffers::refill(out);
            buffers::refill(fields);
        }
        polled
    }

    /// The timer fired: a slow body goes to hyper, a late head closes the
    /// connection, a connection that sent nothing for the park wait stops
    /// here idle, anything else waits on.
    fn deadline_passed(&mut self, deadlines: &mut Deadlines) -> Result<(), Stop> {
        let now = Instant::now();
        if deadlines.body.is_some_and(|at| now >= at) {
            // hyper streams it, and its stall timer answers one that
            // never comes.
            return Err(Stop::Handover(self.taken(), Fallback::StreamedBody));
        }
        if deadlines.head.is_some_and(|at| now >= at) {
            return Err(Stop::Closed);
        }
        if !self.read.is_empty() || deadlines.body.is_some() {
            deadlines.park = None;
        } else if deadlines.park.is_some_and(|at| now >= at) {
            return Err(Stop::Idle(deadlines.head));
        }
        let next = [deadlines.head, deadlines.body, deadlines.park]
            .into_iter()
            .flatten()
            .min();
        if let Some(next) = next {
            self.timer.as_mut().reset(next);
        }
        Ok(())
    }

    /// Everything read and not yet used.
    fn taken(&mut self) -> Bytes {
        self.read.split().freeze()
    }

    /// Runs one request's handler and writes its response; whether the
    /// connection carries another request.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn's future holds its arguments twice (a copy per request)"
    )]
    fn exchange<A, F, B>(
        &mut self,
        request: Request<RequestBody>,
        answer: A,
        closing: bool,
        draining: &watch::Receiver<()>,
    ) -> impl Future<Output = bool>
    where
        A: FnOnce(Request<RequestBody>) -> F,
        F: Future<Output = Response<B>>,
        B: Body<Data = Bytes> + ResponseFields,
        B::Error: Into<BoxError>,
    {
        async move {
            let method = request.method().clone();
            let Some((response, half_closed)) = self.handle(pin!(answer(request))).await else {
                return false;
            };
            // A client that half-closed still gets the responses to what it
            // sent; the connection closes after the last.
            let closing = closing
                || half_closed && self.read.is_empty()
                || draining.has_changed().unwrap_or(true);
            if !respond(&mut self.io, &mut self.out, response, &method, closing).await {
                let _ = self.io.shutdown().await;
                return false;
            }
            true
        }
    }

    /// Runs the handler's future to its response while watching the
    /// connection: a client whose connection fails cancels its request
    /// (`None`); one that sends its next request early (pipelining) has it
    /// kept for later; one that half-closes is noted.
    async fn handle<F: Future>(&mut self, mut response: Pin<&mut F>) -> Option<(F::Output, bool)> {
        if self.read.capacity() == self.read.len() {
            self.read.reserve(READ_BUFFER);
        }
        let mut half_closed = false;
        loop {
            tokio::select! {
                biased;
                response = response.as_mut() => return Some((response, half_closed)),
                result = self.io.read_buf(&mut self.read),
                    if !half_closed && self.read.len() < self.read.capacity() => match result {
                    Ok(0) => half_closed = true,
                    Err(_) => return None,
                    Ok(_) => {}
                },
            }
        }
    }
}

/// Gives back the buffers of a connection waiting for its next request
/// (or ending): to this thread's spares ([`buffers`]), which the next
/// request to arrive takes.
fn release_buffers(read: &mut BytesMut, out: &mut Vec<u8>, fields: &mut Vec<Field>) {
    buffers::give(read);
    buffers::give(out);
    buffers::give(fields);
}

/// A connection whose first bytes were already read.
pub struct Prefixed<S> {
    prefix: Bytes,
    io: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Bytes, io: S) -> Self {
        Self { prefix, io }
    }

    /// The bytes not read yet, without the connection.
    pub fn into_prefix(self) -> Bytes {
        self.prefix
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
