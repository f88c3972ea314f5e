//! api-gateway: the public entry point of the demo.
//!
//! `GET /api/users[/{id}]` goes to user-service as `/users[/{id}]`,
//! `GET /api/orders[/{id}]` to order-service as `/orders[/{id}]`; the
//! answer comes back as it is, status included. `?fail=` and `?delay=` are
//! checked here and passed on; other query parameters are not. `GET /`
//! lists the endpoints. A dependency that cannot be reached is a 502, one
//! that does not answer in time a 504.

use http::request::Parts;
use http::{Response, StatusCode};
use serde_json::json;

use super::{Context, DemoApp, accept, no_route, reply};
use crate::server::Body;

/// The endpoints listed at `/`, with an example of each kind of request.
const ENDPOINTS: [&str; 7] = [
    "/api/users",
    "/api/users/1",
    "/api/orders",
    "/api/orders/1001",
    "/api/users/999 (404)",
    "/api/orders/1001?fail=1 (500)",
    "/api/orders/1001?delay=300ms (slow)",
];

/// Answers one request to api-gateway.
pub(super) async fn handle(context: &Context, parts: &Parts) -> Response<Body> {
    let faults = match accept(parts) {
        Ok(faults) => faults,
        Err(refusal) => return refusal.into_response(),
    };
    if parts.uri.path() == "/" {
        return reply::json(StatusCode::OK, &json!({ "endpoints": ENDPOINTS }));
    }
    let Some((dependency, path)) = route(parts.uri.path()) else {
        return no_route(parts);
    };
    // "Authentication and routing".
    context.work(1..=2).await;
    let path = faults.append_to(path);
    match context
        .upstreams
        .get(dependency, &path, &parts.headers)
        .await
    {
        Ok(answer) => reply::raw(answer.status, answer.content_type, answer.body),
        Err(error) => reply::error(error.gateway_status(), &error.to_string()),
    }
}

/// The dependency serving a public path, and the path it knows it by.
fn route(path: &str) -> Option<(&'static str, &str)> {
    let rest = path.strip_prefix("/api")?;
    [
        ("/users", DemoApp::UserService.name()),
        ("/orders", DemoApp::OrderService.name()),
    ]
    .into_iter()
    .find(|(prefix, _)| {
        rest.strip_prefix(prefix)
            .is_some_and(|tail| tail.is_empty() || tail.starts_with('/'))
    })
    .map(|(_, dependency)| (dependency, rest))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use serde_json::json;

    use super::super::fixture::{Recorder, call, context, get, start};
    use super::*;

    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn upstreams(users: SocketAddr, orders: SocketAddr) -> Vec<(String, String)> {
        vec![
            ("user-service".to_owned(), format!("http://{users}")),
            ("order-service".to_owned(), format!("http://{orders}")),
        ]
    }

    #[test]
    fn routes() {
        let table = [
            ("/api/users", Some(("user-service", "/users"))),
            ("/api/users/3", Some(("user-service", "/users/3"))),
            ("/api/orders", Some(("order-service", "/orders"))),
            ("/api/orders/1001", Some(("order-service", "/orders/1001"))),
            ("/api/usersx", None),
            ("/api", None),
            ("/users", None),
            ("/api/payments", None),
        ];
        for (path, expected) in table {
            assert_eq!(route(path), expected, "{path}");
        }
    }

    /// The whole chain on loopback: gateway → order-service → user-service.
    #[tokio::test]
    async fn every_endpoint_through_the_chain() {
        let users = start(DemoApp::UserService, vec![], true).await;
        let user_url = vec![("user-service".to_owned(), users.url())];
        let orders = start(DemoApp::OrderService, user_url, true).await;
        let gateway = start(
            DemoApp::ApiGateway,
            upstreams(users.address, orders.address),
            true,
        )
        .await;
        let (status, body) = get(&gateway.url(), "/api/orders/1003", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["total_cents"], 49800);
        assert_eq!(body["user"]["name"], "Ada Lovelace");

        let (status, body) = get(&gateway.url(), "/api/orders", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["orders"][5]["user"]["name"], "Margaret Hamilton");

        let (status, body) = get(&gateway.url(), "/api/users", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["users"][3]["name"], "Katherine Johnson");

        let (status, body) = get(&gateway.url(), "/api/users/5", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["email"], "margaret.hamilton@example.net");

        // (path, status, body)
        let table = [
            (
                "/api/users/999",
                404,
                json!({"error": "no user with id 999"}),
            ),
            (
                "/api/orders/9999",
                404,
                json!({"error": "no order with id 9999"}),
            ),
            (
                "/api/nothing",
                404,
                json!({"error": "no endpoint at /api/nothing"}),
            ),
            (
                "/api/users/1?fail=1",
                500,
                json!({"error": "user-service failed on purpose (fail=1)"}),
            ),
            (
                "/api/orders/1001?fail=1",
                500,
                json!({"error": "cannot load user 1: user-service answered 500 Internal Server Error"}),
            ),
            (
                "/api/orders?delay=2m",
                400,
                json!({"error": "delay=\"2m\": expected a duration such as 300ms or 2s"}),
            ),
        ];
        for (path, status, body) in table {
            let answer = get(&gateway.url(), path, &[]).await;
            assert_eq!(answer.0.as_u16(), status, "{path}");
            assert_eq!(answer.1, body, "{path}");
        }
    }

    #[tokio::test]
    async fn the_index_lists_the_endpoints() {
        let recorder = Recorder::start(json!({})).await;
        let addresses = upstreams(recorder.address, recorder.address);
        let context = context(DemoApp::ApiGateway, addresses, true);
        let (status, body) = call(&context, "GET", "/", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["endpoints"][0], "/api/users");
    }

    /// What the upstream receives shows the gateway copying the trace
    /// headers of its incoming request onto its outgoing call, and nothing
    /// else that came in.
    #[tokio::test]
    async fn copies_trace_headers_onto_the_upstream_call() {
        let recorder = Recorder::start(json!({"id": 1})).await;
        let addresses = upstreams(recorder.address, recorder.address);
        let context = context(DemoApp::ApiGateway, addresses, true);
        let incoming = [
            ("traceparent", TRACEPARENT),
            ("tracestate", "rojo=00f067aa0ba902b7"),
            ("tracestate", "congo=t61rcWkgMzE"),
            ("x-b3-traceid", "0af7651916cd43dd8448eb211c80319c"),
            ("x-b3-spanid", "b7ad6b7169203331"),
            ("x-b3-sampled", "1"),
            ("b3", "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1"),
            ("x-request-id", "req-42"),
            ("authorization", "Bearer secret"),
            ("cookie", "session=abc"),
        ];
        let (status, body) = call(&context, "GET", "/api/users/1?delay=0ms", &incoming).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"id": 1})));
        let requests = recorder.requests();
        let [request] = requests.as_slice() else {
            panic!("one upstream call expected, got {requests:?}");
        };
        assert_eq!(request.path, "/users/1?delay=0ms");
        for (name, _) in incoming {
            let expected: Vec<&str> = incoming
                .iter()
                .filter(|(other, _)| *other == name && !matches!(name, "authorization" | "cookie"))
                .map(|(_, value)| *value)
                .collect();
            assert_eq!(request.values(name), expected, "{name}");
        }
    }

    /// With propagation off the upstream call carries no trace context, so
    /// the sidecar would start a new trace: the broken app a mesh warns about.
    #[tokio::test]
    async fn without_propagation_no_trace_header_goes_out() {
        let recorder = Recorder::start(json!([])).await;
        let addresses = upstreams(recorder.address, recorder.address);
        let context = context(DemoApp::ApiGateway, addresses, false);
        let incoming = [("traceparent", TRACEPARENT), ("b3", "1")];
        let (status, _) = call(&context, "GET", "/api/orders", &incoming).await;
        assert_eq!(status, StatusCode::OK);
        let requests = recorder.requests();
        assert_eq!(requests.len(), 1);
        assert!(requests[0].values("traceparent").is_empty());
        assert!(requests[0].values("b3").is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_dependency_is_a_502() {
        let recorder = Recorder::start(json!({})).await;
        let address = recorder.address;
        recorder.stop().await;
        let context = context(DemoApp::ApiGateway, upstreams(address, address), true);
        let (status, body) = call(&context, "GET", "/api/users", &[]).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let message = body["error"].as_str().expect("an error message");
        assert!(message.starts_with("user-service unreachable"), "{message}");
    }
}
