//! One app connection relayed to the database: the startup phase, then
//! both directions copied through fixed buffers, each chunk read by a
//! framer (and the session) before it is written on.
//!
//! The bytes forwarded are exactly the bytes read, in order; only the
//! `SSLRequest`/`GSSENCRequest` packets are answered here (`N`, docs
//! §55.2.10/§55.2.11) instead of being forwarded, as a server without TLS
//! answers them. Memory per connection is two buffers of [`BUFFER_BYTES`]
//! plus the session's bounded state, whatever the size of a result.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use super::Route;
use super::session::{Session, backend_limit, frontend_limit};
use super::wire::{self, CANCEL_REQUEST, Framer, GSSENC_REQUEST, SSL_REQUEST, StartupError};

/// Bytes read at once in each direction.
pub const BUFFER_BYTES: usize = 64 * 1024;

/// Why a relayed connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("connecting to the database at {upstream}: {error}")]
    Connect {
        upstream: http::uri::Authority,
        error: std::io::Error,
    },
    #[error("connecting to the database at {0}: timed out")]
    ConnectTimeout(http::uri::Authority),
    #[error("no startup message within the route's timeouts.header_read")]
    StartupTimeout,
    #[error("relaying: {0}")]
    Io(#[from] std::io::Error),
}

/// Relays one app connection until either side closes it, or until
/// `draining` is set and no query is in flight.
pub async fn relay(
    route: &Arc<Route>,
    mut client: TcpStream,
    draining: watch::Receiver<bool>,
) -> Result<(), RelayError> {
    let _ = client.set_nodelay(true);
    // A client asks for TLS and GSS encryption at most once each before
    // its startup message (§55.2.10); the whole phase has a deadline, so
    // a silent connection does not hold a slot.
    let deadline = tokio::time::Instant::now() + route.startup_timeout;
    let mut negotiations = 0;
    let startup = loop {
        let read = tokio::time::timeout_at(deadline, wire::read_startup(&mut client));
        let Some(packet) = read.await.map_err(|_| RelayError::StartupTimeout)?? else {
            return Ok(());
        };
        match packet.code() {
            SSL_REQUEST | GSSENC_REQUEST if negotiations < 2 => {
                negotiations += 1;
                client.write_all(b"N").await?
            }
            CANCEL_REQUEST => {
                // A connection of its own, closed by the server once read
                // (§55.2.8); nothing comes back.
                let mut upstream = connect(route).await?;
                upstream.write_all(&packet.bytes).await?;
                let mut byte = [0; 1];
                let closed = upstream.read(&mut byte);
                let _ = tokio::time::timeout(route.startup_timeout, closed).await;
                return Ok(());
            }
            _ => break packet,
        }
    };
    let mut upstream = match connect(route).await {
        Ok(upstream) => upstream,
        Err(error) => {
            let _ = client.write_all(&unreachable_error(&error)).await;
            return Err(error);
        }
    };
    upstream.write_all(&startup.bytes).await?;
    // The server's default database is the user's name (§55.7 StartupMessage).
    let database = startup
        .parameter("database")
        .or_else(|| startup.parameter("user"));
    let session = Mutex::new(Session::new(route.clone(), database));
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    let frontend = Direction {
        side: Side::Frontend,
        limit: frontend_limit,
        session: &session,
        draining: draining.clone(),
    };
    let backend = Direction {
        side: Side::Backend,
        limit: backend_limit,
        session: &session,
        draining,
    };
    // PostgreSQL does not half-close: the first direction to end (a side
    // closed, a failure, a drain) ends the connection.
    let result = tokio::select! {
        result = frontend.copy(client_read, upstream_write) => result,
        result = backend.copy(upstream_read, client_write) => result,
    };
    let reason = match &result {
        Ok(()) => "the connection closed before the query completed",
        Err(_) => "the connection failed before the query completed",
    };
    let mut session = lock(&session);
    session.close(reason);
    session.hand_off();
    result.map_err(RelayError::Io)
}

async fn connect(route: &Route) -> Result<TcpStream, RelayError> {
    let upstream = &route.upstream;
    let connect = TcpStream::connect(upstream.as_str());
    match tokio::time::timeout(route.connect_timeout, connect).await {
        Err(_) => Err(RelayError::ConnectTimeout(upstream.clone())),
        Ok(Err(error)) => Err(RelayError::Connect {
            upstream: upstream.clone(),
            error,
        }),
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
    }
}

/// A FATAL `ErrorResponse` (§55.7) telling the app the database is out of
/// reach, with SQLSTATE 08001 (`sqlclient_unable_to_establish_sqlconnection`).
fn unreachable_error(error: &RelayError) -> Vec<u8> {
    let message = format!("tracehop: {error}");
    let mut body = Vec::with_capacity(message.len() + 32);
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "08001"),
        (b'M', &message),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[derive(Clone, Copy)]
enum Side {
    Frontend,
    Backend,
}

fn lock(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    // A panic elsewhere cannot leave the session half-updated in a way
    // that matters more than losing the connection's spans.
    session
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One direction of the relay.
struct Direction<'a> {
    side: Side,
    limit: fn(u8) -> usize,
    session: &'a Mutex<Session>,
    draining: watch::Receiver<bool>,
}

impl Direction<'_> {
    /// Copies to the end, reading each chunk before writing it; at the
    /// end, closes the other side's writing half. Once draining, stops as
    /// soon as no query is in flight.
    async fn copy(
        mut self,
        mut from: OwnedReadHalf,
        mut to: OwnedWriteHalf,
    ) -> std::io::Result<()> {
        let mut framer = Framer::new(self.limit);
        let mut buffer = vec![0u8; BUFFER_BYTES];
        // Set once a drain found a query in flight: the checks after each
        // chunk take over.
        let mut waiting_for_idle = false;
        loop {
            let read = tokio::select! {
                read = from.read(&mut buffer) => Some(read),
                _ = self.draining.wait_for(|draining| *draining), if !waiting_for_idle => None,
            };
            let n = match read {
                Some(read) => read?,
                None if lock(self.session).is_idle() => break,
                None => {
                    waiting_for_idle = true;
                    continue;
                }
            };
            if n == 0 {
                break;
            }
            let chunk = &buffer[..n];
            if !framer.is_lost() {
                let mut session = lock(self.session);
                framer.feed(chunk, |kind, body| match self.side {
                    Side::Frontend => session.frontend(kind, body),
                    Side::Backend => session.backend(kind, body),
                });
                if framer.is_lost() {
                    session.turn_off();
                }
                session.hand_off();
            }
            to.write_all(chunk).await?;
            if *self.draining.borrow() && lock(self.session).is_idle() {
                break;
            }
        }
        to.shutdown().await
    }
}
