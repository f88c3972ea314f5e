//! HTTP/1.1 `Upgrade` (WebSocket) tunnelling.
//!
//! After the upstream answers `101 Switching Protocols`, hyper hands over
//! the downstream connection, the upstream client
//! ([`crate::http1::client`]) its own, and bytes are copied both ways
//! until either side closes. The span covers the handshake only.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::http1::client::Wire;
use crate::http1::server::Prefixed;
use crate::server::Tunnels;

/// Joins the downstream and upstream upgraded connections, in a task the
/// server owns (it ends when either side closes, or when the server's
/// shutdown grace period is over).
pub fn tunnel(tunnels: &Tunnels, downstream: OnUpgrade, mut upstream: Prefixed<Wire>) {
    tunnels.spawn(async move {
        let downstream = match downstream.await {
            Ok(downstream) => downstream,
            Err(error) => {
                tracing::debug!(%error, "upgrade failed");
                return;
            }
        };
        let mut downstream = TokioIo::new(downstream);
        if let Err(error) = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
            tracing::debug!(%error, "tunnel closed with an error");
        }
    });
}
