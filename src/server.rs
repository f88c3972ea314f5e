//! The one HTTP server loop every listener uses (inbound, outbound, admin,
//! collector, demo services).
//!
//! [`serve`] takes an already-bound listener and a shutdown future (so tests
//! bind `127.0.0.1:0`), serves HTTP/1.1 and HTTP/2 cleartext (prior
//! knowledge) on the same port with upgrades enabled, and on shutdown stops
//! accepting, lets open connections finish their in-flight requests for up
//! to the grace period, then aborts what is left. Connection tasks belong to
//! the server's `JoinSet`, so none outlives it.
//!
//! With [`ServerOptions::tls`], each connection first completes a TLS
//! handshake inside its own task (bounded by the header-read timeout), so a
//! slow or failing handshake never holds up the accept loop. ALPN offers
//! `h2` and `http/1.1`; the auto builder then recognises the HTTP/2
//! preface a client that chose `h2` sends, and serves HTTP/1.1 otherwise.
//!
//! Each connection starts on the HTTP/1.1 direct path ([`http1_server`]): plain
//! requests are read, handed to the handler and answered in the
//! connection's own task; the first request that is anything else (HTTP/2's
//! preface included) hands the connection, with the bytes read so far, to
//! hyper's server for the rest of its life. Handlers see one request type
//! ([`RequestBody`]) either way; a response may carry its fields as lines
//! ([`crate::http1::RawFields`]), which hyper's path turns into a map.
//!
//! A plain HTTP/1.1 connection that waits idle for
//! [`ServerOptions::park_after`] leaves its task and is held by the
//! server's [`park`] lot until its next bytes, which give it a task again.
//!
//! Limits: the HTTP/1.1 header-read timeout (started whenever the
//! connection waits for a request head, so it also bounds the wait between
//! keep-alive requests), the idle timeout (see [`idle`], both protocols),
//! the head size (431), the number of open connections (further accepts
//! wait; open connections keep working) and HTTP/2 streams per connection.

mod idle;
mod park;

pub use crate::http1::{BoxError, RequestBody};
pub use idle::TrackedBody;
pub use park::PARK_AFTER;

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::http1::ResponseFields;
use crate::http1::path::{Fallback, ServedBy};
use crate::http1::server::{self as http1_server, Ended, Prefixed, Waits};

/// The one boxed body type, for responses that are not streamed through.
pub type Body = BoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A plain-text response with the given status.
pub fn text_response(status: http::StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Facts about the connection a request arrived on.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The peer's address as a header value (the proxy's
    /// `X-Forwarded-For`): made once per connection, not per request
    /// (about 200 instructions per request; see bench/README.md).
    pub peer_value: http::HeaderValue,
    pub local: SocketAddr,
    /// The TLS session's facts; `None` on cleartext connections.
    pub tls: Option<Arc<crate::tls::TlsInfo>>,
    /// What the handler keeps between this connection's requests.
    pub kept: ConnLocal,
    /// Where the handler starts tunnels that outlive the request.
    pub tunnels: Tunnels,
}

impl ConnInfo {
    /// A cleartext connection from `peer` to `local` (the TLS facts are
    /// added after the handshake).
    pub fn new(peer: SocketAddr, local: SocketAddr, tunnels: Tunnels) -> Self {
        Self {
            peer,
            peer_value: crate::span::ip_value(peer.ip()),
            local,
            tls: None,
            kept: ConnLocal::default(),
            tunnels,
        }
    }
}

/// Tunnels (upgrades, `CONNECT`) that outlive the request that opened
/// them. The server owns them: at shutdown they get the same grace period
/// as open connections, then are aborted.
#[derive(Clone, Default)]
pub struct Tunnels(Arc<Mutex<JoinSet<()>>>);

impl Tunnels {
    /// Runs `tunnel` until it ends or the server stops.
    pub fn spawn(&self, tunnel: impl Future<Output = ()> + Send + 'static) {
        let mut tunnels = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        while tunnels.try_join_next().is_some() {}
        tunnels.spawn(tunnel);
    }

    /// Waits for every tunnel to end (the caller bounds the wait).
    async fn ended(&self) {
        loop {
            let mut tunnels =
                std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
            if tunnels.is_empty() {
                return;
            }
            while tunnels.join_next().await.is_some() {}
        }
    }

    /// Aborts the tunnels still open.
    fn abort(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .abort_all();
    }

    /// Tunnels open now.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for Tunnels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tunnels({})", self.len())
    }
}

/// One value a handler keeps for the life of a connection, across its
/// requests (the proxy keeps the upstream connection it last used). Dropped
/// with the connection's last request.
#[derive(Clone, Default)]
pub struct ConnLocal(Arc<Mutex<Option<Box<dyn Any + Send>>>>);

impl ConnLocal {
    /// Takes the kept value out if it is a `T`; a later [`put`](Self::put)
    /// returns it (the box is reused, so keeping costs no allocation).
    pub fn take<T: Send + 'static>(&self) -> Option<Box<T>> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.take()?.downcast::<T>() {
            Ok(value) => Some(value),
            Err(other) => {
                *slot = Some(other);
                None
            }
        }
    }

    /// Keeps `value`, replacing whatever was kept.
    pub fn put<T: Send + 'static>(&self, value: Box<T>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
    }
}

impl std::fmt::Debug for ConnLocal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnLocal")
    }
}

pin_project_lite::pin_project! {
    /// What hyper sends: the handler's response body, or a refusal's.
    #[project = ReplyProjection]
    enum Reply<B> {
        Handler { #[pin] body: B },
        Refused { body: Body },
    }
}

impl<B> http_body::Body for Reply<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        match self.project() {
            ReplyProjection::Handler { body } => body.poll_frame(cx).map_err(Into::into),
            ReplyProjection::Refused { body } => std::pin::Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Handler { body } => body.is_end_stream(),
            Self::Refused { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Self::Handler { body } => body.size_hint(),
            Self::Refused { body } => body.size_hint(),
        }
    }
}

/// Connection-level settings.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Time a client has to send a request head (HTTP/1.1).
    pub header_read_timeout: Option<Duration>,
    /// Largest request head accepted; larger gets 431 (HTTP/1.1).
    pub max_header_bytes: Option<usize>,
    /// Open connections at most; further accepts wait for a free slot.
    pub max_connections: Option<usize>,
    pub max_concurrent_streams: Option<u32>,
    /// Connections with no request in flight this long are closed.
    pub idle_timeout: Option<Duration>,
    /// Longest pause in a request body (`timeouts.request_body`): also how
    /// long the rest of a small body is awaited before hyper streams it.
    pub request_body_timeout: Duration,
    /// How long open connections may take to finish after shutdown.
    pub grace_period: Duration,
    /// Terminate TLS on every connection.
    pub tls: Option<Arc<crate::tls::TlsServer>>,
    /// Serve every HTTP/1.1 connection with hyper from its first byte
    /// ([`crate::http1::path::Forced`]: tests prove both paths alike).
    pub force_hyper: bool,
    /// A plain HTTP/1.1 connection that waits this long for its next
    /// request parks ([`park`]): it is held without a task until its next
    /// bytes. None: connections wait in their tasks.
    pub park_after: Option<Duration>,
    /// Counts this listener's open and parked connections.
    pub gauges: Option<ConnectionGauges>,
}

/// Gauges of a listener's connections (shared by listeners that count
/// together, e.g. every outbound one).
#[derive(Clone, Debug)]
pub struct ConnectionGauges {
    /// Accepted and not yet closed, parked ones included.
    pub open: prometheus::IntGauge,
    /// Held without a task ([`park`]).
    pub parked: prometheus::IntGauge,
}

/// A connection's place: under `max_connections` (its permit) and in the
/// open-connections gauge, given up when the connection closes, wherever
/// it is then (its task, or parked).
#[derive(Debug)]
pub struct Place {
    _permit: Option<OwnedSemaphorePermit>,
    open: Option<prometheus::IntGauge>,
}

impl Place {
    fn new(permit: Option<OwnedSemaphorePermit>, gauges: Option<&ConnectionGauges>) -> Self {
        let open = gauges.map(|gauges| gauges.open.clone());
        if let Some(open) = &open {
            open.inc();
        }
        Self {
            _permit: permit,
            open,
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(open) = &self.open {
            open.dec();
        }
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(Duration::from_secs(10)),
            max_header_bytes: None,
            max_connections: None,
            max_concurrent_streams: None,
            idle_timeout: None,
            request_body_timeout: Duration::from_secs(10),
            grace_period: Duration::from_secs(5),
            tls: None,
            force_hyper: false,
            park_after: Some(PARK_AFTER),
            gauges: None,
        }
    }
}

fn builder(options: &ServerOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    {
        let mut http1 = builder.http1();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            // A client that half-closes after its request gets the response.
            .half_close(true);
        if let Some(max) = options.max_header_bytes {
            // hyper answers 431 when the head does not fit its read buffer.
            http1.max_buf_size(max.max(8192));
        }
    }
    {
        let mut http2 = builder.http2();
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(options.max_concurrent_streams);
        if let Some(max) = options.max_header_bytes {
            http2.max_header_list_size(u32::try_from(max).unwrap_or(u32::MAX));
        }
    }
    builder
}

/// Serves `handler` on `listener` until `shutdown` completes, then drains.
pub async fn serve<H, F, B>(
    listener: TcpListener,
    options: ServerOptions,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<RequestBody>, ConnInfo) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + ResponseFields + Send + 'static,
    B::Error: Into<BoxError>,
{
    let waiter = match options.park_after {
        Some(_) => park::Waiter::new(options.gauges.as_ref().map(|g| g.parked.clone()))
            .inspect_err(|error| tracing::warn!(%error, "idle connections cannot park"))
            .ok(),
        None => None,
    };
    serve_parking(listener, options, handler, shutdown, waiter).await;
}

/// What woke the accept loop.
enum Event {
    Accepted(
        std::io::Result<(TcpStream, SocketAddr)>,
        Option<OwnedSemaphorePermit>,
    ),
    /// Parked connections with bytes to read (or closed by the client).
    Woken(Vec<park::Parked>),
}

/// [`serve`], parking idle connections with `waiter`'s lot if given.
async fn serve_parking<H, F, B>(
    listener: TcpListener,
    options: ServerOptions,
    handler: H,
    shutdown: impl Future<Output = ()>,
    mut waiter: Option<park::Waiter>,
) where
    H: Fn(Request<RequestBody>, ConnInfo) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: http_body::Body<Data = Bytes> + ResponseFields + Send + 'static,
    B::Error: Into<BoxError>,
{
    let builder = Arc::new(builder(&options));
    // Tells every connection to finish what it is doing and close.
    let (drain, draining) = watch::channel(());
    let limit = options.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    let tunnels = Tunnels::default();
    let mut connections = JoinSet::new();
    let local = listener.local_addr().ok();
    let lot = waiter.as_ref().map(|waiter| waiter.lot().clone());
    // The direct path's wait for a head: hyper's header-read timer also
    // runs between requests, and so does the idle timeout.
    let waits = Waits {
        head: [options.header_read_timeout, options.idle_timeout]
            .into_iter()
            .flatten()
            .min(),
        body: options.request_body_timeout,
        park: options
            .park_after
            .filter(|_| lot.is_some() && options.tls.is_none()),
    };
    let connection = |peer, first| {
        let info = ConnInfo::new(peer, local.unwrap_or(peer), tunnels.clone());
        let mut draining = draining.clone();
        draining.mark_unchanged();
        let conn = Conn {
            builder: builder.clone(),
            draining,
            idle: options.idle_timeout,
            waits,
            force_hyper: options.force_hyper,
            lot: lot.clone().filter(|_| waits.park.is_some()),
            first,
        };
        (conn, info)
    };
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            biased;
            () = &mut shutdown => break,
            woken = async {
                match &mut waiter {
                    Some(waiter) => waiter.next().await,
                    None => std::future::pending().await,
                }
            } => Event::Woken(woken),
            // Finished tasks are taken out at once: a task's memory stays
            // with the set until then (a parked connection's task too).
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            (accepted, permit) = accept(&listener, limit.as_ref()) => Event::Accepted(accepted, permit),
        };
        let (stream, peer, permit) = match event {
            Event::Accepted(Ok((stream, peer)), permit) => (stream, peer, permit),
            Event::Accepted(Err(error), _) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Event::Woken(woken) => {
                for parked in woken {
                    // Back in tokio's reactor; it keeps its options (no delay).
                    let Ok(stream) = TcpStream::from_std(parked.stream) else {
                        continue;
                    };
                    let (conn, info) = connection(parked.peer, parked.first);
                    connections.spawn(conn.drive(stream, info, handler.clone(), parked.place));
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let place = Place::new(permit, options.gauges.as_ref());
        let (conn, mut info) = connection(peer, true);
        let handler = handler.clone();
        match options.tls.clone() {
            // The connection's future is its task, as it is: nothing wraps it.
            None => {
                connections.spawn(conn.drive(stream, info, handler, place));
            }
            Some(tls) => {
                let handshake_timeout = options.header_read_timeout;
                connections.spawn(async move {
                    if let Some((stream, facts)) = tls.accept(stream, handshake_timeout).await {
                        info.tls = Some(facts);
                        conn.drive(stream, info, handler, place).await;
                    }
                });
            }
        }
    }
    // Parked connections are idle: they close now.
    drop(waiter);
    drop(listener);
    let _ = drain.send(());
    let finished = async {
        while connections.join_next().await.is_some() {}
        tunnels.ended().await;
    };
    if tokio::time::timeout(options.grace_period, finished)
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            tunnels = tunnels.len(),
            "grace period over; closing remaining connections and tunnels"
        );
    }
    connections.shutdown().await;
    tunnels.abort();
}

/// A connection, once a place under `max_connections` (if capped) is free.
async fn accept(
    listener: &TcpListener,
    limit: Option<&Arc<Semaphore>>,
) -> (
    std::io::Result<(TcpStream, SocketAddr)>,
    Option<OwnedSemaphorePermit>,
) {
    let permit = match limit {
        Some(semaphore) => semaphore.clone().acquire_owned().await.ok(),
        None => None,
    };
    (listener.accept().await, permit)
}

/// One connection's share of the server: its settings and the drain signal.
struct Conn {
    builder: Arc<auto::Builder<TokioExecutor>>,
    /// Changes when the server shuts down.
    draining: watch::Receiver<()>,
    idle: Option<Duration>,
    /// The direct path's bound on each wait for a request head.
    waits: Waits,
    force_hyper: bool,
    /// Where the connection parks when idle (plain connections).
    lot: Option<Arc<park::Lot>>,
    /// No request came on the connection yet.
    first: bool,
}

impl Conn {
    /// Serves HTTP on one connection until it closes: plain HTTP/1.1
    /// requests on the direct path ([`http1_server`]), everything from the first
    /// other request on (and connections that chose HTTP/2 by ALPN) with
    /// hyper. On shutdown or after the idle timeout it is shut down
    /// gracefully (in-flight requests finish). Its `place` is held until
    /// then, or handed to the lot with it when it parks.
    ///
    /// This future is the task of every plain connection, idle ones
    /// included, so its size is memory per connection (bench/README.md,
    /// idle connections). It is an async block rather than an async fn (an
    /// async fn's future holds its arguments twice: as passed, and as moved
    /// into its body), the direct path borrows the connection instead of
    /// taking it (so it is not held twice either), and hyper's part is
    /// boxed when used.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn's future holds its arguments twice"
    )]
    fn drive<S, H, F, B>(
        self,
        mut io: S,
        info: ConnInfo,
        handler: H,
        place: Place,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + park::Parkable + 'static,
        H: Fn(Request<RequestBody>, ConnInfo) -> F + Send + Sync + 'static,
        F: Future<Output = Response<B>> + Send + 'static,
        B: http_body::Body<Data = Bytes> + ResponseFields + Send + 'static,
        B::Error: Into<BoxError>,
    {
        async move {
            let h2 = info.tls.as_ref().is_some_and(|tls| tls.alpn == Some("h2"));
            let handover = if h2 {
                Some((Bytes::new(), Fallback::Http2))
            } else if self.force_hyper {
                Some((Bytes::new(), Fallback::Forced))
            } else {
                // Awaited as made: a binding would hold the future twice.
                let (waits, draining, first) = (self.waits, &self.draining, self.first);
                match http1_server::serve(&mut io, &info, &handler, waits, draining, first).await {
                    Ended::Closed => None,
                    Ended::Handover(rest, fallback) => Some((rest.into_prefix(), fallback)),
                    Ended::Idle { first, deadline } => {
                        if let Some(lot) = &self.lot
                            && let Some(stream) = io.into_parkable()
                        {
                            let peer = info.peer;
                            lot.park(park::Parked {
                                stream,
                                peer,
                                place,
                                first,
                                deadline,
                            });
                        }
                        return;
                    }
                }
            };
            if let Some((prefix, fallback)) = handover {
                // Boxed: hyper's connection state is about 12 KiB, and
                // inline it would be part of every connection's task, also
                // the many that never leave the direct path.
                let io = Prefixed::new(prefix, io);
                Box::pin(self.serve_hyper(io, fallback, info, handler)).await;
            }
            drop(place);
        }
    }

    /// Serves the rest of the connection with hyper, from `fallback` on.
    async fn serve_hyper<S, H, F, B>(
        mut self,
        io: Prefixed<S>,
        fallback: Fallback,
        info: ConnInfo,
        handler: H,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        H: Fn(Request<RequestBody>, ConnInfo) -> F + Send + Sync + 'static,
        F: Future<Output = Response<B>> + Send + 'static,
        B: http_body::Body<Data = Bytes> + ResponseFields + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let io = TokioIo::new(io);
        let peer = info.peer;
        let activity = idle::Activity::new();
        let tracker = activity.clone();
        // The first request hyper reads is the one handed over; the rest
        // follow it on the same connection (HTTP/2 is all hyper's).
        let handed_over = AtomicBool::new(fallback != Fallback::Http2);
        let service = hyper::service::service_fn(move |request: Request<_>| {
            let guard = tracker.start();
            let reason = match handed_over.swap(false, Ordering::Relaxed) {
                true => fallback,
                false if fallback == Fallback::Http2 => fallback,
                false => Fallback::Connection,
            };
            let served = ServedBy::Hyper(reason);
            let mut request = request.map(|body| RequestBody::streamed(body, served));
            // The rules hyper does not enforce (Host), before the handler.
            let refused = http1_server::check_hyper_request(&mut request).err();
            // Boxed: a handler's future can be a few KiB, and hyper would
            // otherwise move it by value several times per request (the
            // direct path pins it in place instead).
            let response = refused
                .is_none()
                .then(|| Box::pin(handler(request, info.clone())));
            async move {
                let Some(response) = response else {
                    let status = refused.unwrap_or(http::StatusCode::BAD_REQUEST);
                    let (mut parts, body) = text_response(status, "bad request\n").into_parts();
                    parts.headers.insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                    let body = TrackedBody::new(Reply::Refused { body }, guard);
                    return Ok::<_, Infallible>(Response::from_parts(parts, body));
                };
                let (mut parts, mut body) = response.await.into_parts();
                // hyper writes only the header map.
                if let Some(raw) = body.take_fields() {
                    raw.move_into(&mut parts.headers);
                }
                let body = TrackedBody::new(Reply::Handler { body }, guard);
                Ok::<_, Infallible>(Response::from_parts(parts, body))
            }
        });
        let connection = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(connection);
        let idle = self.idle;
        let expired = async {
            match idle {
                Some(idle) => activity.idle_expired(idle).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expired);
        let mut closing = false;
        let result = loop {
            tokio::select! {
                // The connection first: it is what almost every wake-up is for.
                biased;
                result = connection.as_mut() => break result,
                _ = self.draining.changed(), if !closing => {}
                () = &mut expired, if !closing => {
                    tracing::debug!(%peer, "closing idle connection");
                }
            }
            connection.as_mut().graceful_shutdown();
            closing = true;
        };
        if let Err(error) = result {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The task of a plain connection is memory per connection, for as
    /// long as it is not parked (bench/README.md, idle connections): it
    /// stays small, with hyper's state, the handler's future and rare paths
    /// boxed.
    #[tokio::test]
    async fn a_plain_connection_task_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let (_drain, draining) = watch::channel(());
        let conn = Conn {
            builder: Arc::new(builder(&ServerOptions::default())),
            draining,
            idle: None,
            waits: Waits {
                head: None,
                body: Duration::from_secs(1),
                park: Some(PARK_AFTER),
            },
            force_hyper: false,
            lot: Some(park::Waiter::new(None).unwrap().lot().clone()),
            first: true,
        };
        let info = ConnInfo::new(peer, addr, Tunnels::default());
        let handler = |_request: Request<RequestBody>, _info: ConnInfo| async {
            text_response(http::StatusCode::OK, "ok\n")
        };
        let task = conn.drive(stream, info, handler, Place::new(None, None));
        let size = std::mem::size_of_val(&task);
        // 776 bytes when written, 864 with parking, 928 with the peer's
        // address as a header value; before the direct path borrowed the
        // connection and rare paths were boxed it was 2,544.
        assert!(size <= 940, "a connection's task is {size} bytes");
    }

    /// A parking server on 127.0.0.1 (parking after 50 ms), its lot, and a
    /// sender that shuts it down; the handler answers `ok` with the request's
    /// path.
    async fn parking_server(
        mut options: ServerOptions,
    ) -> (
        SocketAddr,
        Arc<park::Lot>,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let parked = options.gauges.as_ref().map(|g| g.parked.clone());
        let waiter = park::Waiter::new(parked).unwrap();
        let lot = waiter.lot().clone();
        options.park_after = Some(Duration::from_millis(50));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handler = |request: Request<RequestBody>, _info: ConnInfo| async move {
            text_response(
                http::StatusCode::OK,
                format!("ok {}\n", request.uri().path()),
            )
        };
        let shutdown = async {
            let _ = stopped.await;
        };
        let server = tokio::spawn(serve_parking(
            listener,
            options,
            handler,
            shutdown,
            Some(waiter),
        ));
        (addr, lot, stop, server)
    }

    /// Sends a GET for `path` on `client` and returns the response (the
    /// handler's bodies are short and framed by Content-Length).
    async fn get(client: &mut TcpStream, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let mut buffer = [0; 1024];
        let complete = |received: &[u8]| {
            let text = String::from_utf8_lossy(received);
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                return false;
            };
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .and_then(|n| n.parse::<usize>().ok());
            length.is_some_and(|length| body.len() >= length)
        };
        while !complete(&received) {
            let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buffer))
                .await
                .expect("a response within 5 s")
                .unwrap();
            assert!(read > 0, "closed before the response: {received:?}");
            received.extend_from_slice(&buffer[..read]);
        }
        String::from_utf8(received).unwrap()
    }

    /// Waits (2 s at most) until `lot` holds `count` connections.
    async fn until_parked(lot: &park::Lot, count: usize) {
        for _ in 0..200 {
            if lot.len() == count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} parked, expected {count}", lot.len());
    }

    /// Reads until the server closes `client` (5 s at most); what came.
    async fn until_closed(client: &mut TcpStream) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest))
            .await
            .expect("closed within 5 s")
            .unwrap();
        rest
    }

    #[tokio::test]
    async fn an_idle_connection_parks_and_its_next_request_is_served() {
        let (addr, lot, _stop, _server) = parking_server(ServerOptions::default()).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        assert!(get(&mut client, "/one").await.ends_with("ok /one\n"));
        until_parked(&lot, 1).await;
        assert!(get(&mut client, "/two").await.ends_with("ok /two\n"));
        assert_eq!(lot.len(), 0, "the connection has its task again");
        // And parks again when idle again, as often as it pauses.
        until_parked(&lot, 1).await;
        assert!(get(&mut client, "/three").await.ends_with("ok /three\n"));
    }

    #[tokio::test]
    async fn a_parked_connection_closes_when_its_wait_runs_out_or_the_client_closes() {
        let options = ServerOptions {
            header_read_timeout: Some(Duration::from_millis(400)),
            ..ServerOptions::default()
        };
        let (addr, lot, _stop, _server) = parking_server(options).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        get(&mut client, "/").await;
        until_parked(&lot, 1).await;
        // The header-read wait (400 ms) passes while it is parked: closed
        // silently, as an unparked connection would be.
        assert!(until_closed(&mut client).await.is_empty());
        assert_eq!(lot.len(), 0);
        // A client that closes its parked connection frees its place.
        let mut other = TcpStream::connect(addr).await.unwrap();
        get(&mut other, "/").await;
        until_parked(&lot, 1).await;
        drop(other);
        until_parked(&lot, 0).await;
    }

    #[tokio::test]
    async fn a_parked_connection_keeps_its_place_under_max_connections() {
        let options = ServerOptions {
            max_connections: Some(1),
            ..ServerOptions::default()
        };
        let (addr, lot, _stop, _server) = parking_server(options).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        get(&mut first, "/").await;
        until_parked(&lot, 1).await;
        // Connected (the kernel's backlog) but not accepted: no answer
        // while the parked connection holds the only place.
        let mut second = TcpStream::connect(addr).await.unwrap();
        let waiting = tokio::spawn(async move { get(&mut second, "/second").await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "served beyond max_connections");
        drop(first);
        assert!(waiting.await.unwrap().ends_with("ok /second\n"));
    }

    #[tokio::test]
    async fn shutdown_closes_parked_connections() {
        let (addr, lot, stop, server) = parking_server(ServerOptions::default()).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        get(&mut client, "/").await;
        until_parked(&lot, 1).await;
        stop.send(()).unwrap();
        assert!(until_closed(&mut client).await.is_empty());
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server stops at once")
            .unwrap();
    }

    #[tokio::test]
    async fn a_parked_connection_keeps_whether_it_had_a_request() {
        use tokio::io::AsyncWriteExt;
        let (addr, lot, _stop, _server) = parking_server(ServerOptions::default()).await;
        // Parked before its first request: the HTTP/2 preface still counts.
        let fresh = TcpStream::connect(addr).await.unwrap();
        until_parked(&lot, 1).await;
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(fresh))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = Request::get(format!("http://{addr}/h2")).body(Empty::<Bytes>::new());
        let response = sender.send_request(request.unwrap()).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(response.version(), http::Version::HTTP_2);
        // Parked after a request: a preface now is a bad request (400).
        let mut used = TcpStream::connect(addr).await.unwrap();
        get(&mut used, "/").await;
        until_parked(&lot, 1).await;
        used.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let answer = String::from_utf8(until_closed(&mut used).await).unwrap();
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    }

    #[tokio::test]
    async fn gauges_count_connections_open_and_parked_wherever_they_are() {
        let gauge = |name: &str| prometheus::IntGauge::new(name, "test").unwrap();
        let gauges = ConnectionGauges {
            open: gauge("open"),
            parked: gauge("parked"),
        };
        let options = ServerOptions {
            gauges: Some(gauges.clone()),
            ..ServerOptions::default()
        };
        let (addr, lot, _stop, _server) = parking_server(options).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        get(&mut client, "/").await;
        assert_eq!((gauges.open.get(), gauges.parked.get()), (1, 0));
        until_parked(&lot, 1).await;
        assert_eq!((gauges.open.get(), gauges.parked.get()), (1, 1));
        get(&mut client, "/").await;
        assert_eq!((gauges.open.get(), gauges.parked.get()), (1, 0));
        until_parked(&lot, 1).await;
        drop(client);
        until_parked(&lot, 0).await;
        // The woken connection's task sees the close and ends.
        for _ in 0..200 {
            if gauges.open.get() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!((gauges.open.get(), gauges.parked.get()), (0, 0));
    }
}
