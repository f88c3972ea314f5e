//! A fake upstream app that records what it received.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Method, Response, Uri, Version};
use http_body_util::BodyExt;

use super::{Stopper, bind, stopper};
use tracehop::server::{self, Body, ServerOptions, full};

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub body_len: usize,
    /// The address the request came from (one per upstream connection).
    pub peer: SocketAddr,
}

/// Answers 200 `hello` to everything (or `/status/NNN` with that status)
/// and records each request.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _stop: Stopper,
}

impl FakeUpstream {
    pub async fn start() -> Self {
        let (listener, addr) = bind().await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, shutdown) = stopper();
        let record = seen.clone();
        let handler = move |request: http::Request<tracehop::server::RequestBody>,
                            conn: server::ConnInfo| {
            let record = record.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let status = parts
                    .uri
                    .path()
                    .strip_prefix("/status/")
                    .and_then(|s| s.parse::<u16>().ok())
                    .unwrap_or(200);
                record.lock().expect("lock").push(Seen {
                    method: parts.method,
                    uri: parts.uri,
                    version: parts.version,
                    headers: parts.headers,
                    body_len: body.len(),
                    peer: conn.peer,
                });
                let mut response: Response<Body> = Response::new(full("hello"));
                *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
                response
            }
        };
        tokio::spawn(server::serve(
            listener,
            ServerOptions::default(),
            handler,
            shutdown,
        ));
        Self {
            addr,
            seen,
            _stop: stop,
        }
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// The last request received.
    pub fn last(&self) -> Seen {
        self.seen().pop().expect("upstream received a request")
    }
}
