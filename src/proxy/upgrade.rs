//! HTTP/1.1 `Upgrade` (WebSocket) tunnelling.
//!
//! After the upstream answers `101 Switching Protocols`, both connections
//! are handed over by hyper and bytes are copied both ways until either
//! side closes. The span covers the handshake only.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Joins the downstream and upstream upgraded connections.
///
/// The tunnel task is detached on purpose: it belongs to the two
/// connections it joins and ends when either closes; it holds no other
/// resource of the proxy.
pub fn tunnel(downstream: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        let (downstream, upstream) = match tokio::try_join!(downstream, upstream) {
            Ok(pair) => pair,
            Err(error) => {
                tracing::debug!(%error, "upgrade failed");
                return;
            }
        };
        let mut downstream = TokioIo::new(downstream);
        let mut upstream = TokioIo::new(upstream);
        if let Err(error) = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
            tracing::debug!(%error, "tunnel closed with an error");
        }
    });
}
