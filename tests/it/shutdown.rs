//! Graceful shutdown: readiness fails, in-flight requests finish, spans flush.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tokio::sync::oneshot;

use crate::support::{Client, DEADLINE, FakeCollector, Sidecar, Yaml, bind, eventually, stopper};
use tracehop::server::{self, ServerOptions};

#[tokio::test]
async fn in_flight_requests_complete_and_their_spans_arrive() {
    // An upstream that answers only when released.
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release_rx = std::sync::Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
    let (arrived_tx, arrived_rx) = oneshot::channel::<()>();
    let arrived_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(arrived_tx)));
    let (listener, upstream_addr) = bind().await;
    let (_stop, shutdown) = stopper();
    let handler = move |_request: Request<tracehop::server::RequestBody>, _conn| {
        let release_rx = release_rx.clone();
        let arrived_tx = arrived_tx.clone();
        async move {
            if let Some(tx) = arrived_tx.lock().expect("lock").take() {
                let _ = tx.send(());
            }
            if let Some(rx) = release_rx.lock().await.take() {
                let _ = rx.await;
            }
            Response::new(Full::new(Bytes::from_static(b"late but complete")))
        }
    };
    tokio::spawn(server::serve(
        listener,
        ServerOptions::default(),
        handler,
        shutdown,
    ));

    let collector = FakeCollector::start().await;
    let yaml = Yaml {
        other: "shutdown:\n  drain_delay: 100ms\n  grace_period: 5s\n",
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream_addr, collector.addr).await;
    let base = sidecar.base.clone();
    let in_flight = tokio::spawn(async move { Client::http1().get(&base, &[]).await });
    tokio::time::timeout(DEADLINE, arrived_rx)
        .await
        .expect("request reached upstream")
        .expect("sent");

    let readiness = sidecar.running.readiness.clone();
    let admin = sidecar.admin.clone();
    sidecar.running.shutdown();
    eventually("readiness fails", || !readiness.is_ready()).await;
    let ready = Client::http1().get(&format!("{admin}/readyz"), &[]).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);

    release_tx.send(()).expect("upstream waiting");
    let reply = tokio::time::timeout(DEADLINE, in_flight)
        .await
        .expect("completes")
        .expect("join");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "late but complete");
    tokio::time::timeout(DEADLINE, sidecar.running.wait())
        .await
        .expect("stops");
    // The span was flushed before the sidecar finished stopping.
    assert_eq!(collector.spans().len(), 1);
}
