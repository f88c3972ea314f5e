//! The embedded collector (`tracehop collector`) served in-process on
//! 127.0.0.1:0, for tests that send it spans and read them back.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tracehop::collector::CollectorConfig;

use super::client::{Reply, read};
use super::{Client, DEADLINE, Stopper, bind, stopper};

/// An embedded collector on 127.0.0.1:0 and the handle that stops it.
pub struct EmbeddedCollector {
    pub addr: std::net::SocketAddr,
    pub base: String,
    stop: Stopper,
    task: tokio::task::JoinHandle<Result<(), tracehop::export::ClientError>>,
}

impl EmbeddedCollector {
    pub async fn start() -> Self {
        let (listener, addr) = bind().await;
        let (stop, shutdown) = stopper();
        let task = tokio::spawn(tracehop::app::serve_collector(
            listener,
            CollectorConfig::default(),
            None,
            shutdown,
        ));
        Self {
            addr,
            base: format!("http://{addr}"),
            stop,
            task,
        }
    }

    pub async fn post(&self, content_type: &str, body: Vec<u8>) -> StatusCode {
        self.post_to("/api/v2/spans", content_type, body)
            .await
            .status
    }

    /// POSTs `body` to `path`; returns the whole answer.
    pub async fn post_to(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let request = Request::post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        read(Client::http1().send(request).await).await
    }

    pub async fn get(&self, path: &str) -> serde_json::Value {
        let reply = Client::http1()
            .get(&format!("{}{path}", self.base), &[])
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        serde_json::from_str(&reply.body).expect("JSON answer")
    }

    /// Waits until the trace holds `count` spans and returns them.
    pub async fn trace(&self, trace_id: &str, count: usize) -> Vec<serde_json::Value> {
        let path = format!("{}/api/v2/trace/{trace_id}", self.base);
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let reply = Client::http1().get(&path, &[]).await;
            if reply.status == StatusCode::OK {
                let spans: Vec<serde_json::Value> =
                    serde_json::from_str(&reply.body).expect("JSON trace");
                if spans.len() >= count {
                    return spans;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "trace {trace_id} never reached {count} spans"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    pub async fn stop(self) {
        drop(self.stop);
        self.task.await.expect("join").expect("collector ran");
    }
}
