//! `tracehop collector --forward`: what the embedded collector accepts is
//! relayed to another Zipkin endpoint; what it rejects is not.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use crate::support::{Client, FakeCollector, bind, client::read, stopper};
use tracehop::collector::CollectorConfig;

const BATCH: &str = r#"[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","id":"00f067aa0ba902b7",
  "name":"get /users/{id}","kind":"SERVER","timestamp":1700000000000000,"duration":1200,
  "localEndpoint":{"serviceName":"user-service"}}]"#;

#[tokio::test]
async fn accepted_batches_are_relayed_to_the_forward_target() {
    let target = FakeCollector::start().await;
    let forward =
        tracehop::config::export_defaults_for(&format!("http://{}/api/v2/spans", target.addr))
            .expect("valid forward URL");
    let (listener, addr) = bind().await;
    let (stop, shutdown) = stopper();
    let task = tokio::spawn(tracehop::app::serve_collector(
        listener,
        CollectorConfig::default(),
        Some(forward),
        shutdown,
    ));
    let post = |body: &'static str| {
        Request::post(format!("http://{addr}/api/v2/spans"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("request")
    };
    let client = Client::http1();
    assert_eq!(
        read(client.send(post("not json")).await).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        read(client.send(post(BATCH)).await).await.status,
        StatusCode::ACCEPTED
    );

    let relayed = target.wait_for(1).await;
    assert_eq!(relayed.len(), 1, "only the accepted batch is relayed");
    assert_eq!(relayed[0]["id"], "00f067aa0ba902b7");
    assert_eq!(target.uploads()[0].get("b3").expect("b3 header"), "0");
    // And the embedded collector kept it too.
    let stored = client
        .get(
            &format!("http://{addr}/api/v2/trace/4bf92f3577b34da6a3ce929d0e0e4736"),
            &[],
        )
        .await;
    assert_eq!(stored.status, StatusCode::OK);
    drop(stop);
    task.await.expect("join").expect("collector ran");
}
