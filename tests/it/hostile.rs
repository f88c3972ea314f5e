//! Hostile input end to end: broken or huge trace-context headers are
//! survived and handled as the specs say, and request-smuggling attempts
//! are refused with 400 before anything reaches the upstream.

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Client, DEADLINE, FakeCollector, FakeUpstream, Sidecar, Yaml};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// What the upstream must see after the sidecar handled the headers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// The downstream's trace is continued.
    Continued,
    /// The context was invalid: a new trace is started.
    Restarted,
}

struct Case {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    trace: Expect,
    /// The `tracestate` the upstream should get.
    tracestate: Option<&'static str>,
}

fn members(n: usize) -> String {
    (0..n)
        .map(|i| format!("k{i}=v{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn cases() -> Vec<Case> {
    let parent = || ("traceparent", PARENT.to_owned());
    vec![
        Case {
            name: "oversized traceparent",
            headers: vec![("traceparent", format!("{PARENT}{}", "-ab".repeat(2000)))],
            trace: Expect::Restarted,
            tracestate: None,
        },
        Case {
            name: "malformed traceparent with tracestate",
            headers: vec![
                ("traceparent", "00-zzzz-00f067aa0ba902b7-01".into()),
                ("tracestate", "congo=t61rcWkgMzE".into()),
            ],
            trace: Expect::Restarted,
            tracestate: None,
        },
        Case {
            name: "tracestate with 3000 members",
            headers: vec![parent(), ("tracestate", members(3000))],
            trace: Expect::Continued,
            tracestate: None,
        },
        Case {
            name: "tracestate of 100 KB in one member",
            headers: vec![
                parent(),
                ("tracestate", format!("k={}", "v".repeat(100_000))),
            ],
            trace: Expect::Continued,
            tracestate: None,
        },
        Case {
            name: "b3 garbage",
            headers: vec![("b3", "zzzz-yyyy-1-x".repeat(50))],
            trace: Expect::Restarted,
            tracestate: None,
        },
        Case {
            name: "X-B3 ids of the wrong length",
            headers: vec![
                ("x-b3-traceid", "abc".into()),
                ("x-b3-spanid", "0".repeat(40)),
            ],
            trace: Expect::Restarted,
            tracestate: None,
        },
        Case {
            name: "two different traceparent headers",
            headers: vec![
                parent(),
                (
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
                ),
            ],
            trace: Expect::Restarted,
            tracestate: None,
        },
        Case {
            name: "W3C and conflicting B3: W3C wins",
            headers: vec![
                parent(),
                (
                    "b3",
                    "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1".into(),
                ),
            ],
            trace: Expect::Continued,
            tracestate: None,
        },
        Case {
            name: "duplicate tracestate headers are combined",
            headers: vec![
                parent(),
                ("tracestate", "a=1".into()),
                ("tracestate", "b=2".into()),
            ],
            trace: Expect::Continued,
            tracestate: Some("a=1,b=2"),
        },
        Case {
            name: "repeated tracestate keys: the first entry of each goes on",
            headers: vec![
                parent(),
                ("tracestate", "rojo=1,congo=2,rojo=3".into()),
                ("tracestate", "congo=4,foo@bar@baz=5".into()),
            ],
            trace: Expect::Continued,
            tracestate: Some("rojo=1,congo=2,foo@bar@baz=5"),
        },
        Case {
            name: "Level 2 tracestate keys: `@` anywhere after the first character",
            headers: vec![parent(), ("tracestate", "foo@=1,7@x@=2,a@@b=3".into())],
            trace: Expect::Continued,
            tracestate: Some("foo@=1,7@x@=2,a@@b=3"),
        },
    ]
}

fn trace_id(seen: &crate::support::Seen) -> String {
    let value = seen
        .headers
        .get("traceparent")
        .expect("the upstream gets a traceparent")
        .to_str()
        .expect("ascii");
    value.split('-').nth(1).expect("trace id").to_owned()
}

crate::on_every_path! {
async fn hostile_trace_headers_are_survived_and_handled_per_spec() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    // Room for the 100 KB headers: they must reach the propagation code.
    let inbound = "  limits:\n    max_header_bytes: 1048576\n";
    let yaml = Yaml {
        inbound,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let client = Client::http1();
    for case in cases() {
        let headers: Vec<(&str, &str)> = case.headers.iter().map(|(n, v)| (*n, &v[..])).collect();
        let reply = client
            .get(&format!("{}/hostile", sidecar.base), &headers)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", case.name);
        let seen = upstream.last();
        let continued = trace_id(&seen) == TRACE;
        let expected = case.trace == Expect::Continued;
        assert_eq!(continued, expected, "{}: trace continued?", case.name);
        let tracestate = seen
            .headers
            .get("tracestate")
            .map(|v| v.to_str().expect("ascii"));
        assert_eq!(tracestate, case.tracestate, "{}: tracestate", case.name);
    }
    collector.wait_for(cases().len()).await;
    sidecar.stop().await;
}
}

crate::on_every_path! {
async fn baggage_of_100_kb_passes_through_untouched() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let inbound = "  limits:\n    max_header_bytes: 1048576\n";
    let yaml = Yaml {
        inbound,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, upstream.addr, collector.addr).await;
    let baggage = (0..8_000)
        .map(|i| format!("member{i}=value"))
        .collect::<Vec<_>>()
        .join(",");
    assert!(baggage.len() > 100_000);
    let reply = Client::http1()
        .get(
            &format!("{}/", sidecar.base),
            &[("traceparent", PARENT), ("baggage", &baggage)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = upstream.last();
    assert_eq!(seen.headers.get("baggage").expect("baggage"), &baggage[..]);
    assert_eq!(trace_id(&seen), TRACE);
    sidecar.stop().await;
}
}

/// Sends raw bytes and returns everything until the sidecar closes.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await {
            Err(_) => panic!("no close: {}", String::from_utf8_lossy(&out)),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

crate::on_every_path! {
async fn smuggling_attempts_get_400_and_never_reach_the_upstream() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    let addr = sidecar.running.inbound_addr;
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: app\r\n\r\n";
    let attempts: Vec<(&str, String)> = vec![
        (
            "two different Content-Length values",
            format!(
                "POST /a HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\n\
                 Content-Length: 40\r\n\r\nabcd{smuggled}"
            ),
        ),
        (
            "Content-Length list with different values",
            format!("POST /a HTTP/1.1\r\nHost: app\r\nContent-Length: 4, 40\r\n\r\nabcd{smuggled}"),
        ),
        (
            "obs-fold header line",
            format!("GET /a HTTP/1.1\r\nHost: app\r\nX-Folded: one\r\n two\r\n\r\n{smuggled}"),
        ),
        (
            "Transfer-Encoding not ending in chunked",
            format!(
                "POST /a HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked, identity\r\n\r\n\
                 0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "space before the colon",
            format!("POST /a HTTP/1.1\r\nHost: app\r\nContent-Length : 4\r\n\r\nabcd{smuggled}"),
        ),
        (
            "bare LF inside a header value",
            format!("GET /a HTTP/1.1\r\nHost: app\r\nX-A: a\rb\r\n\r\n{smuggled}"),
        ),
    ];
    for (name, request) in &attempts {
        let answer = raw_exchange(addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{name}: {answer}");
        assert!(!answer.contains("hello"), "{name} was proxied: {answer}");
    }
    // Stopping drains the sidecar: anything it forwarded has arrived by now.
    sidecar.stop().await;
    let seen: Vec<String> = upstream.seen().iter().map(|s| s.uri.to_string()).collect();
    assert!(seen.is_empty(), "the upstream received {seen:?}");
}
}

crate::on_every_path! {
/// Both `Content-Length` and `Transfer-Encoding`: hyper follows RFC 9112
/// §6.3 (3): chunked framing wins, `Content-Length` is removed, and the
/// connection is closed after the response, so bytes smuggled after the
/// chunked body are never read as a second request.
async fn content_length_with_chunked_is_framed_as_chunked_and_the_rest_discarded() {
    let upstream = FakeUpstream::start().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), upstream.addr, collector.addr).await;
    let request = "POST /a HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\n\
                   Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
                   GET /smuggled HTTP/1.1\r\nHost: app\r\n\r\n";
    let answer = raw_exchange(sidecar.running.inbound_addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
    // Stopping drains the sidecar: anything it forwarded has arrived by now.
    sidecar.stop().await;
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].uri.path(), "/a");
    assert_eq!(seen[0].body_len, 0);
    assert!(!seen[0].headers.contains_key("content-length"));
}
}
