//! Raw HTTP/1.1 bytes on both sides of the sidecar, for what a
//! well-behaved client or server would never send.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{DEADLINE, bind};

/// An upstream that reads a request on each connection, writes `answer`
/// as it is and closes the connection.
pub async fn raw_upstream(answer: &'static [u8]) -> (tokio::task::JoinHandle<()>, SocketAddr) {
    let (listener, addr) = bind().await;
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(answer).await;
        }
    });
    (server, addr)
}

/// An upstream that reads a request on each connection, writes `head`,
/// then holds the connection open without another byte.
pub async fn stalling_upstream(head: &'static [u8]) -> (tokio::task::JoinHandle<()>, SocketAddr) {
    let (listener, addr) = bind().await;
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(head).await;
            held.push(socket);
        }
    });
    (server, addr)
}

/// Sends `request` on a new connection to the sidecar at `base` and reads
/// until the sidecar closes it (bounded).
pub async fn raw_request(base: &str, request: &[u8]) -> Vec<u8> {
    let addr = base.trim_start_matches("http://");
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    socket.write_all(request).await.expect("write");
    let mut reply = Vec::new();
    tokio::time::timeout(DEADLINE, socket.read_to_end(&mut reply))
        .await
        .expect("the response ends the connection")
        .expect("read");
    reply
}
