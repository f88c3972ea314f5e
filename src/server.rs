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
//! Limits: the HTTP/1.1 header-read timeout (started whenever the
//! connection waits for a request head, so it also bounds the wait between
//! keep-alive requests), the idle timeout (see [`idle`], both protocols),
//! the head size (431), the number of open connections (further accepts
//! wait; open connections keep working) and HTTP/2 streams per connection.

mod idle;

pub use crate::http1::{BoxError, RequestBody};
pub use idle::TrackedBody;

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
use tokio::net::TcpListener;
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
    pub local: SocketAddr,
    /// The TLS session's facts; `None` on cleartext connections.
    pub tls: Option<Arc<crate::tls::TlsInfo>>,
    /// What the handler keeps between this connection's requests.
    pub kept: ConnLocal,
    /// Where the handler starts tunnels that outlive the request.
    pub tunnels: Tunnels,
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
    let builder = Arc::new(builder(&options));
    // Tells every connection to finish what it is doing and close.
    let (drain, draining) = watch::channel(());
    let limit = options.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    let tunnels = Tunnels::default();
    let mut connections = JoinSet::new();
    let local = listener.local_addr().ok();
    // The direct path's wait for a head: hyper's header-read timer also
    // runs between requests, and so does the idle timeout.
    let waits = Waits {
        head: match (options.header_read_timeout, options.idle_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
        body: options.request_body_timeout,
    };
    tokio::pin!(shutdown);
    loop {
        let permit = match &limit {
            Some(semaphore) => tokio::select! {
                permit = semaphore.clone().acquire_owned() => permit.ok(),
                () = &mut shutdown => break,
            },
            None => None,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let mut info = ConnInfo {
            peer,
            local: local.unwrap_or(peer),
            tls: None,
            kept: ConnLocal::default(),
            tunnels: tunnels.clone(),
        };
        let handler = handler.clone();
        let mut draining = draining.clone();
        draining.mark_unchanged();
        let conn = Conn {
            builder: builder.clone(),
            draining,
            idle: options.idle_timeout,
            waits,
            force_hyper: options.force_hyper,
        };
        match options.tls.clone() {
            // The connection's future is its task, as it is: nothing wraps it.
            None => {
                connections.spawn(conn.drive(stream, info, handler, permit));
            }
            Some(tls) => {
                let handshake_timeout = options.header_read_timeout;
                connections.spawn(async move {
                    if let Some((stream, facts)) = tls.accept(stream, handshake_timeout).await {
                        info.tls = Some(facts);
                        conn.drive(stream, info, handler, permit).await;
                    }
                });
            }
        }
    }
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

/// One connection's share of the server: its settings and the drain signal.
struct Conn {
    builder: Arc<auto::Builder<TokioExecutor>>,
    /// Changes when the server shuts down.
    draining: watch::Receiver<()>,
    idle: Option<Duration>,
    /// The direct path's bound on each wait for a request head.
    waits: Waits,
    force_hyper: bool,
}

impl Conn {
    /// Serves HTTP on one connection until it closes: plain HTTP/1.1
    /// requests on the direct path ([`http1_server`]), everything from the first
    /// other request on (and connections that chose HTTP/2 by ALPN) with
    /// hyper. On shutdown or after the idle timeout it is shut down
    /// gracefully (in-flight requests finish). `permit` (a place under
    /// `max_connections`) is held until then.
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
        permit: Option<OwnedSemaphorePermit>,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
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
                match http1_server::serve(&mut io, &info, &handler, self.waits, &self.draining)
                    .await
                {
                    Ended::Closed => None,
                    Ended::Handover(rest, fallback) => Some((rest.into_prefix(), fallback)),
                }
            };
            if let Some((prefix, fallback)) = handover {
                // Boxed: hyper's connection state is about 12 KiB, and
                // inline it would be part of every connection's task, also
                // the many that never leave the direct path.
                let io = Prefixed::new(prefix, io);
                Box::pin(self.serve_hyper(io, fallback, info, handler)).await;
            }
            drop(permit);
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
                    raw.append_to(&mut parts.headers);
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

    /// The task of a plain connection is memory per connection, idle ones
    /// included (bench/README.md, idle connections): it stays small, with
    /// hyper's state, the handler's future and rare paths boxed.
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
            },
            force_hyper: false,
        };
        let info = ConnInfo {
            peer,
            local: addr,
            tls: None,
            kept: ConnLocal::default(),
            tunnels: Tunnels::default(),
        };
        let handler = |_request: Request<RequestBody>, _info: ConnInfo| async {
            text_response(http::StatusCode::OK, "ok\n")
        };
        let task = conn.drive(stream, info, handler, None);
        let size = std::mem::size_of_val(&task);
        // 776 bytes when written; before the direct path borrowed the
        // connection and rare paths were boxed it was 2,544.
        assert!(size <= 800, "a connection's task is {size} bytes");
    }
}
