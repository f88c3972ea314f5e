//! The `postgres` outbound route: the app's database connections go
//! through the sidecar, which relays the PostgreSQL v3 wire protocol byte
//! for byte and records one CLIENT span per query.
//!
//! Per connection ([`relay`]): answer `SSLRequest`/`GSSENCRequest` with
//! `N` (the app goes on in plaintext to the sidecar on loopback) -> read
//! the startup message (its `database` is `db.namespace`) or forward a
//! `CancelRequest` -> connect to the database -> copy both ways through
//! fixed buffers, each chunk read by a [`wire::Framer`] before it is
//! written on -> the [`session::Session`] pairs the frontend's queries
//! with the backend's answers and hands each finished query's span to
//! the export queue with `try_send`. Authentication (SCRAM included),
//! COPY, notifications and everything else pass through untouched:
//! nothing the sidecar reads changes what it forwards, and a query never
//! waits for telemetry.
//!
//! Parts: [`wire`] (framing), [`query`] (statements, the literal
//! sanitiser, sqlcommenter), [`session`] (queries -> spans), [`parent`]
//! (the parent rule), [`relay`] (one connection), [`serve`] (the accept
//! loop `app` runs per route).

pub mod parent;
pub mod query;
mod relay;
pub mod session;
pub mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::PostgresRoute;
use crate::export::SpanSink;
use crate::inference::Register;
use crate::metrics::{DbMetrics, DbRouteMetrics, ParentOutcomes, ProxyMetrics};
use crate::sampling::LiveSampler;

pub use relay::RelayError;

/// One postgres route at run time: where it relays to and where its
/// spans and counts go.
pub struct Route {
    /// `remoteEndpoint.serviceName` and the metrics' `route` label.
    pub name: Arc<str>,
    /// The database's `host:port`.
    pub upstream: http::uri::Authority,
    /// The database's address when its host is an IP literal (`remoteEndpoint`).
    pub upstream_addr: Option<SocketAddr>,
    /// `server.address` and `server.port`.
    pub server: (Arc<str>, u16),
    pub connect_timeout: Duration,
    /// Time the app has to send its startup message.
    pub startup_timeout: Duration,
    pub max_connections: usize,
    pub metrics: DbRouteMetrics,
    /// `tracehop_inferred_parents_total` for this route, with a register.
    pub parent_outcomes: Option<ParentOutcomes>,
    pub telemetry: Telemetry,
}

/// Where a route's spans go and who decides which are kept.
#[derive(Clone)]
pub struct Telemetry {
    /// `localEndpoint.serviceName`.
    pub local_service: Arc<str>,
    pub sampler: LiveSampler,
    pub sink: SpanSink,
    /// The sidecar's register of inbound requests in flight (parent
    /// inference); `None` when `inference.parents` is `off`.
    pub register: Option<Arc<Register>>,
}

impl Route {
    pub fn new(
        config: &PostgresRoute,
        metrics: DbMetrics,
        parents: &ProxyMetrics,
        telemetry: Telemetry,
    ) -> Self {
        let host = config.upstream.host();
        let port = config.upstream.port_u16().unwrap_or(5432);
        let ip = host.trim_start_matches('[').trim_end_matches(']').parse();
        Self {
            name: config.name.clone(),
            upstream: config.upstream.clone(),
            upstream_addr: ip.ok().map(|ip| SocketAddr::new(ip, port)),
            server: (Arc::from(host), port),
            connect_timeout: config.connect_timeout,
            startup_timeout: config.startup_timeout,
            max_connections: config.max_connections,
            metrics: metrics.route(&config.name),
            parent_outcomes: telemetry
                .register
                .as_ref()
                .map(|_| parents.parent_outcomes(&config.name)),
            telemetry,
        }
    }
}

/// Accepts the app's connections on `listener` and relays each until
/// `shutdown`; then stops accepting and drains: a connection closes as
/// soon as no query is in flight on it (pools keep idle connections open
/// for ever), and whatever is still open after `grace` is cut.
pub async fn serve(
    listener: TcpListener,
    route: Arc<Route>,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let limit = Arc::new(Semaphore::new(route.max_connections));
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        // The semaphore is never closed.
        let Ok(permit) = permit else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(%error, route = %route.name, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let route = route.clone();
        let draining = draining.clone();
        connections.spawn(async move {
            let _permit = permit;
            if let Err(error) = relay::relay(&route, stream, draining).await {
                tracing::debug!(%error, route = %route.name, "postgres connection ended");
            }
        });
    }
    drop(listener);
    drain.send_replace(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        connections.abort_all();
    }
}
