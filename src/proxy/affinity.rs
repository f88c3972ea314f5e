//! HTTP/1.1 upstream connections kept by downstream connection.
//!
//! An HTTP/1.1 downstream connection sends one request at a time, so it
//! needs one upstream connection at a time: from its second request on,
//! the one it used last is kept with it ([`crate::server::ConnLocal`]) and
//! used again for its next request, touching no state shared with other
//! connections. Its first request takes one from the shared idle list, or
//! dials, and gives it back when the response ends; so does a request
//! whose kept connection has died. When a downstream connection closes,
//! its kept upstream connection goes back to that list for the next one.
//! A client that opens a connection per request (health probes do)
//! therefore still reuses upstream connections, and a burst of new clients
//! that send one request each and then sit idle needs only as many
//! upstream connections as it has requests in flight: kept from the first
//! request, each held one until it parked (100 ms), and 10,000 clients
//! connecting 256 at a time (`bench/idle_clients.py`) made 512 upstream
//! connections (the idle list's cap) where 256 now serve.
//!
//! The request and response travel on the connection in the downstream
//! connection's own task ([`crate::http1::client`]): no connection task,
//! no channel.
//! A connection is checked before reuse (no system call unless the socket
//! became readable while idle). An idempotent request whose reused
//! connection closed before any of the response came back, and before any
//! of its body was taken, is sent again on another (RFC 9110 §9.2.2).
//!
//! At most [`MAX_KEPT`] downstream connections keep an upstream connection
//! each; beyond that, a downstream connection's upstream connection goes
//! back to the shared idle list after each response. Without the cap,
//! 10,000 idle keep-alive clients held 10,000 upstream connections: twice
//! the descriptors, and at a 20,000 limit the next dials failed (502).
//!
//! Requests that keep no connection with their downstream connection
//! (HTTP/2 downstreams with concurrent streams, upgrades, the forward
//! proxy) take one from the shared idle list and give it back when their
//! response ends ([`Http1Connections::send_shared`]).

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use http_body::Body;
use tokio::time::Sleep;
use tower_service::Service;

use super::error::UpstreamError;
use crate::http1::client::{self as wire, Cause, Connection, ExchangeError, Home, Http1Body};
use crate::server::{BoxError, ConnLocal};
use crate::tls::HttpsConnector;

/// Idle connections kept for the next downstream connection, at most.
const MAX_IDLE: usize = 512;

/// Downstream connections that keep an upstream connection with them, at
/// most, per upstream. Busy keep-alive clients beyond it still reuse
/// connections, through the shared idle list (a lock per request).
const MAX_KEPT: usize = 1024;

/// How many times a request goes out again after a reused connection
/// turned out closed before any of the response came back.
const RETRIES: usize = 2;

/// The response body from a kept connection.
pub type KeptBody = Http1Body<Return>;

/// The HTTP/1.1 connections to one upstream.
pub struct Http1Connections {
    connector: HttpsConnector,
    /// `scheme://authority` to dial.
    target: Uri,
    idle_timeout: Duration,
    /// Connections no downstream connection holds, oldest first.
    idle: Mutex<VecDeque<Idle>>,
    /// Downstream connections allowed to keep one ([`Kept::counted`]).
    kept: AtomicUsize,
    max_kept: usize,
}

struct Idle {
    connection: Box<Connection>,
    since: Instant,
}

/// A downstream connection's upstream connection, between its requests.
pub struct Kept {
    connection: Option<Box<Connection>>,
    connections: Arc<Http1Connections>,
    /// The response timeout's timer, made with the first request (see
    /// [`Http1Connections::send`]).
    timer: Option<Pin<Box<Sleep>>>,
    /// Counted among the [`MAX_KEPT`] that keep a connection, for the
    /// downstream connection's life (no counting per request).
    counted: bool,
    /// A response has come back on this downstream connection before.
    answered: bool,
}

impl Kept {
    /// Keeps `connection` for the next request if this downstream
    /// connection has had a response before and may keep one, else gives
    /// it to the shared list.
    fn keep(&mut self, connection: Box<Connection>) {
        if !self.answered {
            self.answered = true;
            self.connections.put_idle(connection);
            return;
        }
        if !self.counted {
            let connections = &self.connections;
            let admitted = connections
                .kept
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < connections.max_kept).then_some(n + 1)
                })
                .is_ok();
            if !admitted {
                connections.put_idle(connection);
                return;
            }
            self.counted = true;
        }
        self.connection = Some(connection);
    }
}

impl Drop for Kept {
    /// The downstream connection closed: its upstream connection is free.
    fn drop(&mut self) {
        if self.counted {
            self.connections.kept.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(connection) = self.connection.take() {
            self.connections.put_idle(connection);
        }
    }
}

/// Where a response body returns its connection.
pub enum Return {
    /// The downstream connection's slot, for its next request.
    Slot { local: ConnLocal, slot: Box<Kept> },
    /// The shared idle list (a request that kept no connection).
    Shared(Arc<Http1Connections>),
}

impl Home for Return {
    fn release(self, connection: Box<Connection>) {
        match self {
            Self::Slot { local, mut slot } => {
                slot.keep(connection);
                local.put(slot);
            }
            Self::Shared(connections) => connections.put_idle(connection),
        }
    }
}

impl Http1Connections {
    pub fn new(connector: HttpsConnector, target: Uri, idle_timeout: Duration) -> Arc<Self> {
        Self::with_max_kept(connector, target, idle_timeout, MAX_KEPT)
    }

    fn with_max_kept(
        connector: HttpsConnector,
        target: Uri,
        idle_timeout: Duration,
        max_kept: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            connector,
            target,
            idle_timeout,
            idle: Mutex::new(VecDeque::new()),
            kept: AtomicUsize::new(0),
            max_kept,
        })
    }

    /// Sends `request` (origin-form URI, `Host` set; `added` fields written
    /// after its own) on the connection kept with `kept`, or another one;
    /// the response body brings that connection back to `kept` when it ends.
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn's future holds its arguments twice (a copy per request)"
    )]
    pub fn send<B>(
        self: &Arc<Self>,
        kept: &ConnLocal,
        request: Request<B>,
        added: &[(&HeaderName, HeaderValue)],
        timeout: Duration,
    ) -> impl Future<Output = Result<Response<KeptBody>, UpstreamError<B::Error>>>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        async move {
            let mut slot = kept.take::<Kept>().unwrap_or_else(|| {
                Box::new(Kept {
                    connection: None,
                    connections: self.clone(),
                    timer: None,
                    counted: false,
                    answered: false,
                })
            });
            let (parts, mut body) = request.into_parts();
            // The timer is only ever moved later, and only when it fires before
            // the current deadline: a request costs no timer registration.
            let deadline = tokio::time::Instant::now() + timeout;
            let mut timer = slot
                .timer
                .take()
                .unwrap_or_else(|| Box::pin(tokio::time::sleep_until(deadline)));
            let result = {
                let mut attempt =
                    pin!(self.attempt(&mut slot.connection, &parts, added, &mut body));
                poll_fn(|cx| {
                    if let Poll::Ready(result) = attempt.as_mut().poll(cx) {
                        return Poll::Ready(result);
                    }
                    while timer.as_mut().poll(cx).is_ready() {
                        if tokio::time::Instant::now() >= deadline {
                            return Poll::Ready(Err(UpstreamError::Timeout));
                        }
                        timer.as_mut().reset(deadline);
                    }
                    Poll::Pending
                })
                .await
            };
            slot.timer = Some(timer);
            match result {
                Ok(mut response) => {
                    response.body_mut().set_home(Return::Slot {
                        local: kept.clone(),
                        slot,
                    });
                    Ok(response)
                }
                Err(error) => {
                    kept.put(slot);
                    Err(error)
                }
            }
        }
    }

    /// Sends `request` on a connection from the shared idle list, or a new
    /// one, for a request that keeps none with its downstream connection
    /// (HTTP/2 downstreams, upgrades, the forward proxy); the response
    /// body returns it to the list when it ends.
    pub async fn send_shared<B>(
        self: &Arc<Self>,
        request: Request<B>,
        added: &[(&HeaderName, HeaderValue)],
        timeout: Duration,
    ) -> Result<Response<KeptBody>, UpstreamError<B::Error>>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        let (parts, mut body) = request.into_parts();
        let mut none = None;
        let attempt = self.attempt(&mut none, &parts, added, &mut body);
        let mut response = tokio::time::timeout(timeout, attempt)
            .await
            .map_err(|_| UpstreamError::Timeout)??;
        response.body_mut().set_home(Return::Shared(self.clone()));
        Ok(response)
    }

    /// One exchange on the kept connection, an idle one or a new one,
    /// repeated on a reused connection that turned out closed.
    async fn attempt<B>(
        &self,
        kept: &mut Option<Box<Connection>>,
        parts: &Parts,
        added: &[(&HeaderName, HeaderValue)],
        body: &mut B,
    ) -> Result<Response<KeptBody>, UpstreamError<B::Error>>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        let mut retries = RETRIES;
        loop {
            let reused = kept.take().and_then(|mut c| c.is_reusable().then_some(c));
            let (connection, reused) = match reused.or_else(|| self.take_idle()) {
                Some(connection) => (connection, true),
                None => (Box::new(self.dial().await?), false),
            };
            match wire::exchange(connection, parts, added, body).await {
                Ok(response) => return Ok(response),
                // Closed while it sat idle: not this request's failure,
                // and safe to repeat (RFC 9110 §9.2.2).
                Err(error)
                    if error.retryable && reused && retries > 0 && parts.method.is_idempotent() =>
                {
                    retries -= 1;
                }
                Err(ExchangeError { cause, .. }) => {
                    return Err(match cause {
                        Cause::Upstream(error) => UpstreamError::Response(error.into()),
                        Cause::RequestBody(error) => UpstreamError::Upload(error),
                    });
                }
            }
        }
    }

    /// A new connection: TCP, and TLS for `https`.
    async fn dial<E>(&self) -> Result<Connection, UpstreamError<E>> {
        let io = self
            .connector
            .clone()
            .call(self.target.clone())
            .await
            .map_err(|e| UpstreamError::Connect(e.into()))?;
        Ok(Connection::new(io))
    }

    /// The most recently used idle connection that is still open.
    fn take_idle(&self) -> Option<Box<Connection>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(mut entry) = idle.pop_back() {
            if entry.since.elapsed() >= self.idle_timeout {
                // Everything older is stale too.
                idle.clear();
                return None;
            }
            if entry.connection.is_reusable() {
                return Some(entry.connection);
            }
        }
        None
    }

    /// Idle connections in the shared list.
    #[cfg(test)]
    fn idle_len(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }

    fn put_idle(&self, mut connection: Box<Connection>) {
        if !connection.is_reusable() {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while idle.front().is_some_and(|e| {
            now.duration_since(e.since) >= self.idle_timeout || idle.len() >= MAX_IDLE
        }) {
            idle.pop_front();
        }
        idle.push_back(Idle {
            connection,
            since: now,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use tokio::net::TcpListener;

    use super::*;
    use crate::server::{self, ServerOptions};
    use crate::tls::Alpn;

    /// An upstream answering `ok` that records the peer of every request;
    /// idle connections are closed after `idle_close`, if given.
    async fn upstream(idle_close: Option<Duration>) -> (SocketAddr, Arc<Mutex<Vec<SocketAddr>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peers = Arc::new(Mutex::new(Vec::new()));
        let seen = peers.clone();
        let handler = move |_request, conn: server::ConnInfo| {
            seen.lock().unwrap().push(conn.peer);
            async { Response::new(server::full("ok")) }
        };
        let options = ServerOptions {
            header_read_timeout: idle_close,
            ..ServerOptions::default()
        };
        tokio::spawn(server::serve(
            listener,
            options,
            handler,
            std::future::pending(),
        ));
        (addr, peers)
    }

    fn connections(addr: SocketAddr) -> Arc<Http1Connections> {
        connections_keeping(addr, MAX_KEPT)
    }

    fn connections_keeping(addr: SocketAddr, max_kept: usize) -> Arc<Http1Connections> {
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(2)));
        let target = format!("http://{addr}/").parse().unwrap();
        Http1Connections::with_max_kept(
            HttpsConnector::new(http, None, Alpn::Http1),
            target,
            Duration::from_secs(90),
            max_kept,
        )
    }

    async fn get(
        connections: &Arc<Http1Connections>,
        kept: &ConnLocal,
    ) -> Result<Bytes, UpstreamError<std::convert::Infallible>> {
        let request = Request::builder()
            .uri("/")
            .header(http::header::HOST, "upstream")
            .body(Empty::new())
            .unwrap();
        let response = connections
            .send(kept, request, &[], Duration::from_secs(5))
            .await?;
        Ok(response.into_body().collect().await.unwrap().to_bytes())
    }

    fn distinct(peers: &Mutex<Vec<SocketAddr>>) -> usize {
        peers.lock().unwrap().iter().collect::<HashSet<_>>().len()
    }

    #[tokio::test]
    async fn a_downstream_connection_keeps_one_upstream_connection() {
        let (addr, peers) = upstream(None).await;
        let connections = connections(addr);
        let kept = ConnLocal::default();
        for _ in 0..5 {
            assert_eq!(get(&connections, &kept).await.unwrap(), "ok");
        }
        assert_eq!(peers.lock().unwrap().len(), 5);
        assert_eq!(distinct(&peers), 1);
        // Kept with the downstream connection, not in the shared list.
        assert_eq!(connections.idle_len(), 0);
    }

    #[tokio::test]
    async fn a_closed_downstream_connection_hands_its_upstream_connection_on() {
        let (addr, peers) = upstream(None).await;
        let connections = connections(addr);
        let first = ConnLocal::default();
        get(&connections, &first).await.unwrap();
        get(&connections, &first).await.unwrap();
        assert_eq!(connections.idle_len(), 0, "kept from the second request on");
        drop(first);
        assert_eq!(connections.idle_len(), 1);
        let second = ConnLocal::default();
        get(&connections, &second).await.unwrap();
        get(&connections, &second).await.unwrap();
        assert_eq!(connections.idle_len(), 0);
        assert_eq!(distinct(&peers), 1);
        // Two downstream connections that keep one need two.
        let third = ConnLocal::default();
        get(&connections, &third).await.unwrap();
        get(&connections, &third).await.unwrap();
        assert_eq!(distinct(&peers), 2);
        drop((second, third));
        assert_eq!(connections.idle_len(), 2);
    }

    #[tokio::test]
    async fn downstream_connections_with_one_request_each_share_one_upstream_connection() {
        // A burst of clients that each send one request and stay open.
        let (addr, peers) = upstream(None).await;
        let connections = connections(addr);
        let downstream: Vec<ConnLocal> = (0..20).map(|_| ConnLocal::default()).collect();
        for kept in &downstream {
            assert_eq!(get(&connections, kept).await.unwrap(), "ok");
        }
        assert_eq!(peers.lock().unwrap().len(), 20);
        assert_eq!(
            distinct(&peers),
            1,
            "one request at a time needs one connection"
        );
        assert_eq!(connections.idle_len(), 1);
        assert_eq!(connections.kept.load(Ordering::Relaxed), 0);
        // Their second requests keep theirs: one of them takes the idle
        // one, the next dials.
        get(&connections, &downstream[0]).await.unwrap();
        get(&connections, &downstream[1]).await.unwrap();
        assert_eq!(connections.idle_len(), 0);
        assert_eq!(distinct(&peers), 2);
        assert_eq!(connections.kept.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn beyond_the_cap_downstream_connections_share_the_idle_list() {
        let (addr, peers) = upstream(None).await;
        let connections = connections_keeping(addr, 2);
        let downstream: Vec<ConnLocal> = (0..4).map(|_| ConnLocal::default()).collect();
        for _ in 0..2 {
            for kept in &downstream {
                get(&connections, kept).await.unwrap();
            }
        }
        // Two keep theirs from their second request on; the others gave
        // theirs back after the response, and the fourth reused the third's.
        assert_eq!(connections.idle_len(), 1);
        assert_eq!(distinct(&peers), 3);
        for _ in 0..3 {
            for kept in &downstream {
                get(&connections, kept).await.unwrap();
            }
        }
        assert_eq!(distinct(&peers), 3, "no connection is dialled again");
        // A closed downstream connection frees its place for another.
        drop(downstream);
        assert_eq!(connections.kept.load(Ordering::Relaxed), 0);
        assert_eq!(connections.idle_len(), 3);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced() {
        let (addr, peers) = upstream(Some(Duration::from_millis(100))).await;
        let connections = connections(addr);
        let kept = ConnLocal::default();
        get(&connections, &kept).await.unwrap();
        get(&connections, &kept).await.unwrap();
        // Wait (bounded) until the upstream has closed the idle connection.
        let mut slot = kept.take::<Kept>().unwrap();
        let connection = slot.connection.as_mut().unwrap();
        let closed = async {
            while connection.is_reusable() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .expect("the upstream closes idle connections");
        kept.put(slot);
        assert_eq!(get(&connections, &kept).await.unwrap(), "ok");
        assert_eq!(distinct(&peers), 2);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_a_connect_failure() {
        let (_closed_socket, addr) = crate::testing::closed_port();
        let connections = connections(addr);
        let kept = ConnLocal::default();
        assert!(matches!(
            get(&connections, &kept).await,
            Err(UpstreamError::Connect(_))
        ));
        assert_eq!(connections.idle_len(), 0);
    }

    /// The timer kept with the downstream connection is only moved when it
    /// fires: it must neither cut a later request short nor let a hanging
    /// one wait past its own deadline.
    #[tokio::test]
    async fn the_response_timeout_holds_for_every_request_on_a_kept_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handler = |request: Request<server::RequestBody>, _| async move {
            match request.uri().path() {
                "/slow" => tokio::time::sleep(Duration::from_millis(200)).await,
                "/hang" => std::future::pending::<()>().await,
                _ => {}
            }
            Response::new(server::full("ok"))
        };
        let options = ServerOptions::default();
        tokio::spawn(server::serve(
            listener,
            options,
            handler,
            std::future::pending(),
        ));
        let connections = connections(addr);
        let kept = ConnLocal::default();
        let timeout = Duration::from_millis(300);
        let send = |path: &'static str| {
            let request = Request::builder()
                .uri(path)
                .header(http::header::HOST, "upstream")
                .body(Empty::<Bytes>::new())
                .unwrap();
            connections.send(&kept, request, &[], timeout)
        };
        let fast = send("/fast").await.unwrap();
        assert_eq!(fast.into_body().collect().await.unwrap().to_bytes(), "ok");
        // The first request's deadline passes while the connection is idle.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let slow = send("/slow").await.expect("within its own deadline");
        assert_eq!(slow.into_body().collect().await.unwrap().to_bytes(), "ok");
        let started = Instant::now();
        assert!(matches!(send("/hang").await, Err(UpstreamError::Timeout)));
        let took = started.elapsed();
        assert!(took >= timeout && took < Duration::from_secs(2), "{took:?}");
    }
}
