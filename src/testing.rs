//! Helpers shared by the unit tests (and the integration tests, which
//! include this file).

use std::net::SocketAddr;

/// An address on 127.0.0.1 where nothing listens, kept so while the
/// returned socket lives: it is bound but not listening, so a connection
/// is refused, and no other test (they run in parallel) can be given the
/// port meanwhile, as it could after binding a listener and dropping it.
pub fn closed_port() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind loopback");
    let addr = socket.local_addr().expect("local addr");
    (socket, addr)
}
