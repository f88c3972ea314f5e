//! A fake Zipkin collector: accepts `POST /api/v2/spans` and keeps the spans.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use super::{Stopper, bind, eventually, stopper};
use tracehop::server::{self, Body, ServerOptions, full};

#[derive(Default)]
struct State {
    spans: Vec<Value>,
    uploads: Vec<HeaderMap>,
    /// Statuses to answer with, in order; 202 once used up.
    script: Vec<u16>,
}

pub struct FakeCollector {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _stop: Stopper,
}

async fn receive(
    state: Arc<Mutex<State>>,
    request: http::Request<tracehop::server::RequestBody>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let gzip = parts
        .headers
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let json = if gzip {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
            .expect("valid gzip");
        out
    } else {
        bytes.to_vec()
    };
    let mut state = state.lock().expect("lock");
    state.uploads.push(parts.headers);
    let status = if state.script.is_empty() {
        202
    } else {
        state.script.remove(0)
    };
    if status == 202 {
        let spans: Vec<Value> = serde_json::from_slice(&json).expect("collector got a JSON list");
        state.spans.extend(spans);
    }
    let mut response = Response::new(full(""));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or_default();
    response
}

impl FakeCollector {
    pub async fn start() -> Self {
        Self::scripted(Vec::new()).await
    }

    /// A collector answering `script` statuses first (e.g. 503), then 202.
    pub async fn scripted(script: Vec<u16>) -> Self {
        let (listener, addr) = bind().await;
        let state = Arc::new(Mutex::new(State {
            script,
            ..State::default()
        }));
        let (stop, shutdown) = stopper();
        let shared = state.clone();
        let handler = move |request, _conn| receive(shared.clone(), request);
        tokio::spawn(server::serve(
            listener,
            ServerOptions::default(),
            handler,
            shutdown,
        ));
        Self {
            addr,
            state,
            _stop: stop,
        }
    }

    pub fn spans(&self) -> Vec<Value> {
        self.state.lock().expect("lock").spans.clone()
    }

    pub fn uploads(&self) -> Vec<HeaderMap> {
        self.state.lock().expect("lock").uploads.clone()
    }

    /// Waits until at least `n` spans arrived and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        eventually(&format!("{n} spans at the collector"), || {
            self.spans().len() >= n
        })
        .await;
        self.spans()
    }
}
