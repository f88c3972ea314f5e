//! gRPC through the sidecar with a real gRPC peer on both sides (tonic's
//! client and server): calls and their statuses pass through, and SERVER
//! and CLIENT spans follow OpenTelemetry's RPC conventions.

use std::net::SocketAddr;

use bytes::{Buf, BufMut, Bytes};
use http::Uri;
use http::uri::PathAndQuery;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

use crate::support::{FakeCollector, Sidecar, Stopper, Yaml, scrape_until, upstream_with, within};
use tracehop::server::BoxError;

const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";

/// Messages travel as raw bytes: the sidecar never reads them, so the
/// peers need no protobuf types, only gRPC's framing, which tonic does.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// `helloworld.Greeter/SayHello`: answers `Hello, {name}`, or fails with
/// the status a request of `status:{code}` names (other than 0, OK).
#[derive(Clone, Copy)]
struct Greeter;

impl tonic::server::UnaryService<Bytes> for Greeter {
    type Response = Bytes;
    type Future = std::future::Ready<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let name = request.into_inner();
        let asked = std::str::from_utf8(&name)
            .ok()
            .and_then(|name| name.strip_prefix("status:"))
            .and_then(|code| code.parse().ok());
        std::future::ready(match asked {
            Some(code) if code != 0 => Err(Status::new(Code::from_i32(code), "as asked")),
            _ => Ok(tonic::Response::new(
                [&b"Hello, "[..], &name].concat().into(),
            )),
        })
    }
}

/// The Greeter served by tonic's gRPC server, on an HTTP/2 cleartext
/// upstream of its own.
async fn greeter() -> (SocketAddr, Stopper) {
    upstream_with(|request| async move {
        let response = tonic::server::Grpc::new(RawCodec)
            .unary(Greeter, request)
            .await;
        response.map(|body| body.map_err(BoxError::from).boxed_unsync())
    })
    .await
}

/// Calls `SayHello` at `addr` with tonic's gRPC client over HTTP/2.
async fn say_hello(addr: SocketAddr, name: &str) -> Result<Bytes, Status> {
    let http2 = HyperClient::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<tonic::body::Body>();
    let origin: Uri = format!("http://{addr}").parse().expect("origin");
    let mut client = tonic::client::Grpc::with_origin(http2, origin);
    within("client ready", client.ready())
        .await
        .expect("client ready");
    let request = tonic::Request::new(Bytes::from(name.to_owned()));
    let path = PathAndQuery::from_static(SAY_HELLO);
    within("the call", client.unary(request, path, RawCodec))
        .await
        .map(tonic::Response::into_inner)
}

/// Makes one call per code (0 = `SayHello` answers) and checks each
/// status reaches the caller as the server sent it.
async fn call_with_every(addr: SocketAddr, codes: &[Code]) {
    for &code in codes {
        let got = say_hello(addr, &format!("status:{}", code as i32)).await;
        match code {
            Code::Ok => assert_eq!(got.expect("OK"), "Hello, status:0"),
            _ => assert_eq!(got.expect_err("fails").code(), code),
        }
    }
}

/// The span whose `rpc.grpc.status_code` is `code`.
fn span_with(spans: &[Value], code: Code) -> &Value {
    let code = (code as i32).to_string();
    spans
        .iter()
        .find(|s| s["tags"]["rpc.grpc.status_code"] == code.as_str())
        .unwrap_or_else(|| panic!("a span with status {code} in {spans:?}"))
}

/// What every span of a `SayHello` call carries.
fn assert_rpc_conventions(span: &Value, kind: &str) {
    assert_eq!(span["kind"], kind, "{span}");
    assert_eq!(span["name"], "helloworld.Greeter/SayHello", "{span}");
    let tags = &span["tags"];
    assert_eq!(tags["rpc.system"], "grpc", "{span}");
    assert_eq!(tags["rpc.service"], "helloworld.Greeter", "{span}");
    assert_eq!(tags["rpc.method"], "SayHello", "{span}");
    assert_eq!(tags["network.protocol.version"], "2", "{span}");
}

/// The `error` tag: `grpc-status {code}` when the status `fails` the
/// span, else none.
fn assert_error(span: &Value, code: Code, fails: bool) {
    let error = span["tags"].get("error").and_then(Value::as_str);
    let expected = fails.then(|| format!("grpc-status {}", code as i32));
    assert_eq!(error, expected.as_deref(), "{code:?}: {span}");
}

/// (status, whether it fails a SERVER span): OpenTelemetry counts only
/// server-side faults against the server.
const SERVER_OUTCOMES: [(Code, bool); 8] = [
    (Code::Ok, false),
    (Code::NotFound, false),
    (Code::InvalidArgument, false),
    (Code::PermissionDenied, false),
    (Code::Unknown, true),
    (Code::Internal, true),
    (Code::Unavailable, true),
    (Code::DataLoss, true),
];

#[tokio::test]
async fn inbound_grpc_calls_get_server_spans_named_for_the_method() {
    let (app, _stop) = greeter().await;
    let collector = FakeCollector::start().await;
    let sidecar = Sidecar::start(Yaml::default(), app, collector.addr).await;
    let codes = SERVER_OUTCOMES.map(|(code, _)| code);
    call_with_every(sidecar.running.inbound_addr, &codes).await;
    let spans = collector.wait_for(codes.len()).await;
    for (code, fails) in SERVER_OUTCOMES {
        let span = span_with(&spans, code);
        assert_rpc_conventions(span, "SERVER");
        assert_error(span, code, fails);
    }
    sidecar.stop().await;
}

#[tokio::test]
async fn outbound_grpc_calls_get_client_spans_that_fail_on_any_error_status() {
    let (remote, _stop) = greeter().await;
    let collector = FakeCollector::start().await;
    let other = format!(
        "outbound:\n  routes:\n    - name: greeter\n      listen: 127.0.0.1:0\n\
         \x20     upstream: http://{remote}\n"
    );
    let yaml = Yaml {
        other: &other,
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, remote, collector.addr).await;
    let (_, route) = sidecar.running.outbound_addrs[0].clone();
    let codes = [Code::Ok, Code::NotFound, Code::Unavailable];
    call_with_every(route, &codes).await;
    let spans = collector.wait_for(codes.len()).await;
    for code in codes {
        let span = span_with(&spans, code);
        assert_rpc_conventions(span, "CLIENT");
        assert_eq!(span["remoteEndpoint"]["serviceName"], "greeter");
        assert_error(span, code, code != Code::Ok);
    }
    sidecar.stop().await;
}

#[tokio::test]
async fn unsampled_grpc_calls_are_kept_only_for_a_status_that_fails_the_span() {
    let (app, _stop) = greeter().await;
    let collector = FakeCollector::start().await;
    let yaml = Yaml {
        other: "sampling:\n  root: {type: never}\n",
        ..Yaml::default()
    };
    let sidecar = Sidecar::start(yaml, app, collector.addr).await;
    // Only UNAVAILABLE fails a SERVER span: NOT_FOUND is not kept.
    let codes = [Code::Ok, Code::NotFound, Code::Unavailable];
    call_with_every(sidecar.running.inbound_addr, &codes).await;
    collector.wait_for(1).await;
    scrape_until(
        &sidecar.admin,
        r#"tracehop_sampling_decisions_total{reason="kept_error",sampled="true"} 1"#,
    )
    .await;
    sidecar.stop().await;
    let spans = collector.spans();
    assert_eq!(spans.len(), 1, "only the failure is exported: {spans:?}");
    let span = span_with(&spans, Code::Unavailable);
    assert_rpc_conventions(span, "SERVER");
    assert_eq!(span["tags"]["sampling.reason"], "error");
}
