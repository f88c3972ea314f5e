//! Inferred parents end to end: a sidecar whose app calls a remote service
//! through an outbound route, copying trace headers or not, one request
//! at a time or with calls that overlap (timings on paused time, so the
//! order of starts and ends is exact).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::{Request, Response};
use serde_json::Value;
use tracehop::server::{Body, RequestBody, full};

use crate::support::{Client, FakeCollector, Sidecar, Stopper, Yaml, upstream_with};

/// One finished request of the app, as the test drives it. Times are
/// milliseconds of (paused) time.
#[derive(Clone, Copy, Default)]
struct Script {
    /// Work before the outbound call.
    before: u64,
    /// How long the remote takes to answer the call; `None`: no call.
    call: Option<u64>,
    /// Work after the call, before answering.
    after: u64,
    /// Copy the inbound `traceparent` onto the call.
    copy: bool,
    /// Make the call in the background and answer at once (fire and forget).
    spawn: bool,
}

impl Script {
    fn query(&self) -> String {
        format!(
            "before={}&call={}&after={}&copy={}&spawn={}",
            self.before,
            self.call.map_or(String::from("none"), |c| c.to_string()),
            self.after,
            u8::from(self.copy),
            u8::from(self.spawn)
        )
    }

    fn parse(query: &str) -> Self {
        let mut script = Script::default();
        for (key, value) in query.split('&').filter_map(|kv| kv.split_once('=')) {
            match key {
                "before" => script.before = value.parse().expect("ms"),
                "call" => script.call = value.parse().ok(),
                "after" => script.after = value.parse().expect("ms"),
                "copy" => script.copy = value == "1",
                "spawn" => script.spawn = value == "1",
                _ => {}
            }
        }
        script
    }
}

/// The sidecar, its app, the remote service behind its route, the collector.
struct World {
    sidecar: Sidecar,
    collector: FakeCollector,
    /// `traceparent` of each call the remote received, by path.
    remote_seen: Arc<Mutex<HashMap<String, String>>>,
    _stops: (Stopper, Stopper),
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The app: runs the [`Script`] in its query; the call goes to
/// `/stock{own path}` through the sidecar's route `stock`.
async fn app(request: Request<RequestBody>, route: Arc<OnceLock<SocketAddr>>) -> Response<Body> {
    let script = Script::parse(request.uri().query().unwrap_or(""));
    let path = request.uri().path().to_owned();
    let traceparent = request
        .headers()
        .get("traceparent")
        .map(|v| v.to_str().expect("ascii").to_owned());
    tokio::time::sleep(ms(script.before)).await;
    if let Some(delay) = script.call {
        let addr = *route.get().expect("the route is bound before requests");
        let call = async move {
            let url = format!("http://{addr}/stock{path}?delay={delay}");
            let headers: Vec<(&str, &str)> = match (&traceparent, script.copy) {
                (Some(value), true) => vec![("traceparent", value.as_str())],
                _ => Vec::new(),
            };
            Client::http1().get(&url, &headers).await;
        };
        if script.spawn {
            tokio::spawn(call);
        } else {
            call.await;
        }
    }
    tokio::time::sleep(ms(script.after)).await;
    Response::new(full("ok"))
}

async fn world() -> World {
    let remote_seen = Arc::new(Mutex::new(HashMap::new()));
    let seen = remote_seen.clone();
    let (remote, remote_stop) = upstream_with(move |request: Request<RequestBody>| {
        let seen = seen.clone();
        async move {
            let delay: u64 = request
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("delay="))
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            if let Some(parent) = request.headers().get("traceparent") {
                let parent = parent.to_str().expect("ascii").to_owned();
                seen.lock()
                    .expect("lock")
                    .insert(request.uri().path().to_owned(), parent);
            }
            tokio::time::sleep(ms(delay)).await;
            Response::new(full("stock"))
        }
    })
    .await;
    let route = Arc::new(OnceLock::new());
    let for_app = route.clone();
    let (app_addr, app_stop) = upstream_with(move |request| app(request, for_app.clone())).await;
    let collector = FakeCollector::start().await;
    let other = format!(
        "outbound:\n  routes:\n    - {{name: stock, listen: \"127.0.0.1:0\", upstream: \"http://{remote}\"}}\n"
    );
    let yaml = Yaml {
        other: &other,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, app_addr, collector.addr).await;
    route
        .set(sidecar.running.outbound_addrs[0].1)
        .expect("set once");
    World {
        sidecar,
        collector,
        remote_seen,
        _stops: (remote_stop, app_stop),
    }
}

impl World {
    /// Sends `GET /{name}?{script}` to the sidecar.
    async fn request(&self, name: &str, script: Script) {
        let url = format!("{}/{name}?{}", self.sidecar.base, script.query());
        let reply = Client::http1().get(&url, &[]).await;
        assert_eq!(reply.status, http::StatusCode::OK, "{url}");
    }

    /// The SERVER span of request `name` and the CLIENT span of its call,
    /// once `total` spans arrived.
    async fn spans(&self, total: usize) -> HashMap<String, Value> {
        let spans = self.collector.wait_for(total).await;
        assert_eq!(spans.len(), total, "{spans:#?}");
        spans
            .into_iter()
            .map(|s| {
                let path = s["tags"]["url.path"].as_str().expect("url.path").to_owned();
                let key = format!("{} {path}", s["kind"].as_str().expect("kind"));
                (key, s)
            })
            .collect()
    }

    /// `tracehop_inferred_parents_total{route="stock"}` by outcome.
    async fn outcomes(&self) -> HashMap<String, u64> {
        let text = Client::http1()
            .get(&format!("{}/metrics", self.sidecar.admin), &[])
            .await
            .body;
        text.lines()
            .filter(|l| l.starts_with("tracehop_inferred_parents_total{"))
            .filter(|l| l.contains("route=\"stock\""))
            .map(|l| {
                let outcome = l.split("outcome=\"").nth(1).expect("outcome label");
                let outcome = outcome.split('"').next().expect("quoted").to_owned();
                let value = l.rsplit(' ').next().expect("value").parse().expect("count");
                (outcome, value)
            })
            .collect()
    }
}

fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["tags"][key].as_str()
}

/// Asserts that `client` is the child of `server`, tagged inferred.
fn assert_inferred_child(client: &Value, server: &Value) {
    assert_eq!(client["traceId"], server["traceId"], "{client:#}");
    assert_eq!(client["parentId"], server["id"], "{client:#}");
    assert_eq!(tag(client, "tracehop.parent"), Some("inferred"));
}

#[tokio::test]
async fn sequential_requests_without_header_copying_form_one_trace_each() {
    let world = world().await;
    let script = Script {
        call: Some(1),
        ..Script::default()
    };
    for name in ["a", "b", "c"] {
        world.request(name, script).await;
    }
    let spans = world.spans(6).await;
    let seen = world.remote_seen.lock().expect("lock").clone();
    for name in ["a", "b", "c"] {
        let server = &spans[&format!("SERVER /{name}")];
        let client = &spans[&format!("CLIENT /stock/{name}")];
        assert_inferred_child(client, server);
        // The context sent downstream continues the trace, under the CLIENT span.
        let trace = server["traceId"].as_str().expect("trace id");
        let span = client["id"].as_str().expect("span id");
        assert_eq!(
            seen[&format!("/stock/{name}")],
            format!("00-{trace}-{span}-03")
        );
    }
    let traces: std::collections::HashSet<_> =
        spans.values().map(|s| s["traceId"].clone()).collect();
    assert_eq!(traces.len(), 3, "one trace per request");
    let outcomes = world.outcomes().await;
    assert_eq!(outcomes["inferred"], 3);
    assert_eq!(outcomes["contradicted"], 0);
    assert_eq!(outcomes["ambiguous"], 0);
    world.sidecar.stop().await;
}

#[tokio::test(start_paused = true)]
async fn overlapping_calls_are_inferred_only_where_one_candidate_spans_the_call() {
    let world = world().await;
    // a: calls at 10 until 30, answers at 100. b: no call, answers at 20.
    // At a's call start both are in flight; only a spans the whole call.
    let a = Script {
        before: 10,
        call: Some(20),
        after: 70,
        ..Script::default()
    };
    let b = Script {
        after: 20,
        ..Script::default()
    };
    tokio::join!(world.request("a", a), world.request("b", b));
    let spans = world.spans(3).await;
    let client = &spans["CLIENT /stock/a"];
    assert_inferred_child(client, &spans["SERVER /a"]);
    // The downstream part went out before the parent was known: its trace
    // is recorded, and it is not a's.
    let downstream = tag(client, "tracehop.parent.downstream_trace_id").expect("downstream trace");
    assert_ne!(downstream, spans["SERVER /a"]["traceId"]);
    let seen = world.remote_seen.lock().expect("lock").clone();
    assert!(seen["/stock/a"].contains(downstream), "{seen:?}");

    // c and d: both in flight for the whole of c's call: ambiguous.
    let c = Script {
        before: 10,
        call: Some(20),
        after: 70,
        ..Script::default()
    };
    let d = Script {
        after: 100,
        ..Script::default()
    };
    tokio::join!(world.request("c", c), world.request("d", d));
    let spans = world.spans(6).await;
    let client = &spans["CLIENT /stock/c"];
    assert_eq!(tag(client, "tracehop.parent"), Some("ambiguous"));
    assert_eq!(tag(client, "tracehop.parent.candidates"), Some("2"));
    assert!(client.get("parentId").is_none(), "a root: {client:#}");
    for server in ["SERVER /c", "SERVER /d"] {
        assert_ne!(client["traceId"], spans[server]["traceId"], "never a guess");
    }
    let outcomes = world.outcomes().await;
    assert_eq!((outcomes["inferred"], outcomes["ambiguous"]), (1, 1));
    assert_eq!(outcomes["contradicted"], 0);
    world.sidecar.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_app_that_copies_headers_confirms_the_inference() {
    let world = world().await;
    let copying = |call, before, after| Script {
        before,
        call: Some(call),
        after,
        copy: true,
        spawn: false,
    };
    // Alone, then overlapping so that containment decides, then ambiguous.
    world.request("a", copying(5, 0, 0)).await;
    let b = copying(20, 10, 70);
    let c = Script {
        after: 20,
        ..Script::default()
    };
    tokio::join!(world.request("b", b), world.request("c", c));
    let d = copying(20, 10, 70);
    let e = Script {
        after: 100,
        ..Script::default()
    };
    tokio::join!(world.request("d", d), world.request("e", e));
    let spans = world.spans(8).await;
    for name in ["a", "b", "d"] {
        let client = &spans[&format!("CLIENT /stock/{name}")];
        let server = &spans[&format!("SERVER /{name}")];
        // The app's context is used as it came: nothing is tagged.
        assert_eq!(client["traceId"], server["traceId"]);
        assert_eq!(client["parentId"], server["id"]);
        assert_eq!(tag(client, "tracehop.parent"), None);
    }
    let outcomes = world.outcomes().await;
    assert_eq!(outcomes["confirmed"], 2, "{outcomes:?}");
    assert_eq!(outcomes["would_be_ambiguous"], 1, "{outcomes:?}");
    assert_eq!(outcomes["contradicted"], 0);
    assert_eq!(outcomes["inferred"], 0);
    world.sidecar.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_background_call_outliving_its_request_is_not_attributed() {
    let world = world().await;
    // a fires its call at 10 and answers at 15; b answers at 20; the
    // call ends at 60, after both: no candidate spans it.
    let a = Script {
        before: 10,
        call: Some(50),
        after: 5,
        spawn: true,
        ..Script::default()
    };
    let b = Script {
        after: 20,
        ..Script::default()
    };
    tokio::join!(world.request("a", a), world.request("b", b));
    let spans = world.spans(3).await;
    let client = &spans["CLIENT /stock/a"];
    assert_eq!(tag(client, "tracehop.parent"), Some("ambiguous"));
    assert_eq!(tag(client, "tracehop.parent.candidates"), Some("2"));
    for server in ["SERVER /a", "SERVER /b"] {
        assert_ne!(client["traceId"], spans[server]["traceId"]);
    }
    let outcomes = world.outcomes().await;
    assert_eq!(outcomes["ambiguous"], 1);
    assert_eq!(outcomes["contradicted"], 0);
    world.sidecar.stop().await;
}

#[tokio::test]
async fn with_inference_off_a_call_without_context_starts_its_own_trace() {
    let remote = crate::support::FakeUpstream::start().await;
    let route = Arc::new(OnceLock::new());
    let for_app = route.clone();
    let (app_addr, _app_stop) = upstream_with(move |request| app(request, for_app.clone())).await;
    let collector = FakeCollector::start().await;
    let other = format!(
        "inference: {{parents: \"off\"}}\noutbound:\n  routes:\n    - {{name: stock, listen: \"127.0.0.1:0\", upstream: \"http://{}\"}}\n",
        remote.addr
    );
    let yaml = Yaml {
        other: &other,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, app_addr, collector.addr).await;
    route
        .set(sidecar.running.outbound_addrs[0].1)
        .expect("once");
    let script = Script {
        call: Some(0),
        ..Script::default()
    };
    let url = format!("{}/a?{}", sidecar.base, script.query());
    Client::http1().get(&url, &[]).await;
    let spans = collector.wait_for(2).await;
    let client = spans
        .iter()
        .find(|s| s["kind"] == "CLIENT")
        .expect("client");
    let server = spans
        .iter()
        .find(|s| s["kind"] == "SERVER")
        .expect("server");
    assert_ne!(client["traceId"], server["traceId"]);
    assert!(client["tags"].get("tracehop.parent").is_none());
    let metrics = Client::http1()
        .get(&format!("{}/metrics", sidecar.admin), &[])
        .await
        .body;
    assert!(
        !metrics.contains("tracehop_inferred_parents_total{"),
        "{metrics}"
    );
    sidecar.stop().await;
}
