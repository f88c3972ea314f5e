//! order-service: `GET /orders` and `GET /orders/{id}`, each order enriched
//! with its user, loaded from user-service.
//!
//! Users are loaded one call per distinct user, in order: the sequential
//! fan-out that a trace waterfall makes easy to spot. `?fail=` and
//! `?delay=` travel on to user-service, the deepest service; only when no
//! call is made (an unknown order) does order-service act on them itself.
//! A user-service failure becomes a 500 here, as it would in a real app.

use http::request::Parts;
use http::{HeaderMap, Response, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::client::CallError;
use super::data::{self, ORDERS, Order};
use super::faults::Faults;
use super::{Context, DemoApp, Target, accept, no_route, reply};
use crate::server::Body;

/// An order with its user (`null` when user-service does not know it).
#[derive(Serialize)]
struct EnrichedOrder<'a> {
    #[serde(flatten)]
    order: &'a Order,
    user: Option<&'a Value>,
}

/// The body of `GET /orders`.
#[derive(Serialize)]
struct OrderList<'a> {
    orders: Vec<EnrichedOrder<'a>>,
}

/// Answers one request to order-service.
pub(super) async fn handle(context: &Context, parts: &Parts) -> Response<Body> {
    let faults = match accept(parts) {
        Ok(faults) => faults,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(target) = Target::parse(parts.uri.path(), "/orders") else {
        return no_route(parts);
    };
    // The "database query".
    context.work(2..=5).await;
    match target {
        Target::Collection => list(context, &parts.headers, faults).await,
        Target::Item(id) => match id.parse().ok().and_then(data::order) {
            Some(order) => one(context, &parts.headers, faults, order).await,
            None => {
                if let Some(failure) = context.act_on(faults).await {
                    return failure;
                }
                let message = format!("no order with id {id}");
                reply::error(StatusCode::NOT_FOUND, &message)
            }
        },
    }
}

/// Why the users of some orders could not be loaded; answered as a 500.
#[derive(Debug, thiserror::Error)]
enum UserLoadError {
    #[error("cannot load user {id}: {source}")]
    Call { id: u32, source: CallError },
    #[error("cannot load user {id}: user-service answered {status}")]
    Status { id: u32, status: StatusCode },
    #[error("cannot load user {id}: user-service sent invalid JSON: {source}")]
    Json { id: u32, source: serde_json::Error },
}

impl UserLoadError {
    fn into_response(self) -> Response<Body> {
        reply::error(StatusCode::INTERNAL_SERVER_ERROR, &self.to_string())
    }
}

/// `GET /orders`: every order, each with its user.
async fn list(context: &Context, incoming: &HeaderMap, faults: Faults) -> Response<Body> {
    match load_users(context, incoming, faults, ORDERS).await {
        Ok(users) => {
            let orders = ORDERS.iter().map(|order| enrich(order, &users)).collect();
            reply::json(StatusCode::OK, &OrderList { orders })
        }
        Err(error) => error.into_response(),
    }
}

/// `GET /orders/{id}` for a known order.
async fn one(
    context: &Context,
    incoming: &HeaderMap,
    faults: Faults,
    order: &Order,
) -> Response<Body> {
    match load_users(context, incoming, faults, std::slice::from_ref(order)).await {
        Ok(users) => reply::json(StatusCode::OK, &enrich(order, &users)),
        Err(error) => error.into_response(),
    }
}

fn enrich<'a>(order: &'a Order, users: &'a [(u32, Option<Value>)]) -> EnrichedOrder<'a> {
    let user = users
        .iter()
        .find(|(id, _)| *id == order.user_id)
        .and_then(|(_, user)| user.as_ref());
    EnrichedOrder { order, user }
}

/// Loads the user of each order, one call per distinct user.
async fn load_users(
    context: &Context,
    incoming: &HeaderMap,
    faults: Faults,
    orders: &[Order],
) -> Result<Vec<(u32, Option<Value>)>, UserLoadError> {
    let mut users: Vec<(u32, Option<Value>)> = Vec::new();
    for order in orders {
        if users.iter().any(|(id, _)| *id == order.user_id) {
            continue;
        }
        let user = load_user(context, incoming, faults, order.user_id).await?;
        users.push((order.user_id, user));
    }
    Ok(users)
}

/// `GET /users/{id}` on user-service: the user, or `None` on 404.
async fn load_user(
    context: &Context,
    incoming: &HeaderMap,
    faults: Faults,
    id: u32,
) -> Result<Option<Value>, UserLoadError> {
    let path = faults.append_to(&format!("/users/{id}"));
    let reply = context
        .upstreams
        .get(DemoApp::UserService.name(), &path, incoming)
        .await
        .map_err(|source| UserLoadError::Call { id, source })?;
    match reply.status {
        StatusCode::OK => serde_json::from_slice(&reply.body)
            .map(Some)
            .map_err(|source| UserLoadError::Json { id, source }),
        StatusCode::NOT_FOUND => Ok(None),
        status => Err(UserLoadError::Status { id, status }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixture::{Recorder, call, context, start};
    use super::*;

    fn via(address: std::net::SocketAddr) -> Vec<(String, String)> {
        vec![("user-service".to_owned(), format!("http://{address}"))]
    }

    #[tokio::test]
    async fn an_order_is_enriched_with_its_user() {
        let users = start(DemoApp::UserService, vec![], true).await;
        let context = context(DemoApp::OrderService, via(users.address), true);
        let (status, body) = call(&context, "GET", "/orders/1002", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({
                "id": 1002,
                "user_id": 2,
                "items": [
                    {"sku": "MS-110", "name": "Wireless mouse", "quantity": 1, "unit_price_cents": 2900},
                    {"sku": "PD-010", "name": "Mouse pad", "quantity": 2, "unit_price_cents": 900},
                ],
                "total_cents": 4700,
                "currency": "EUR",
                "user": {"id": 2, "name": "Grace Hopper", "email": "grace.hopper@example.com"},
            })
        );
    }

    #[tokio::test]
    async fn the_list_enriches_every_order_with_one_call_per_user() {
        let recorder = Recorder::start(json!({"id": 0, "name": "Someone"})).await;
        let context = context(DemoApp::OrderService, via(recorder.address), true);
        let (status, body) = call(&context, "GET", "/orders", &[]).await;
        assert_eq!(status, StatusCode::OK);
        let orders = body["orders"].as_array().expect("an orders array");
        assert_eq!(orders.len(), ORDERS.len());
        for (order, seeded) in orders.iter().zip(ORDERS) {
            assert_eq!(order["id"], seeded.id);
            assert_eq!(order["user"]["name"], "Someone");
        }
        let paths = recorder.paths();
        assert_eq!(
            paths,
            ["/users/1", "/users/2", "/users/3", "/users/4", "/users/5"]
        );
    }

    #[tokio::test]
    async fn a_user_unknown_to_user_service_is_null() {
        let recorder = Recorder::answering(StatusCode::NOT_FOUND, json!({"error": "gone"})).await;
        let context = context(DemoApp::OrderService, via(recorder.address), true);
        let (status, body) = call(&context, "GET", "/orders/1006", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["id"], 1006);
        assert_eq!(body["user"], Value::Null);
    }

    #[tokio::test]
    async fn unknown_orders_and_paths_are_404() {
        let recorder = Recorder::start(json!({})).await;
        let context = context(DemoApp::OrderService, via(recorder.address), true);
        let table = [
            ("/orders/9999", json!({"error": "no order with id 9999"})),
            ("/orders/x", json!({"error": "no order with id x"})),
            (
                "/orders/1001/items",
                json!({"error": "no endpoint at /orders/1001/items"}),
            ),
            ("/users", json!({"error": "no endpoint at /users"})),
        ];
        for (path, body) in table {
            let answer = call(&context, "GET", path, &[]).await;
            assert_eq!(answer, (StatusCode::NOT_FOUND, body), "{path}");
        }
        assert!(recorder.paths().is_empty(), "no user is loaded for a 404");
    }

    #[tokio::test]
    async fn faults_travel_to_user_service_and_its_failure_is_a_500() {
        let users = start(DemoApp::UserService, vec![], true).await;
        let context = context(DemoApp::OrderService, via(users.address), true);
        let (status, body) = call(&context, "GET", "/orders/1001?fail=1", &[]).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            json!({"error": "cannot load user 1: user-service answered 500 Internal Server Error"})
        );
        // No call to make: order-service is the deepest and fails itself.
        let (status, body) = call(&context, "GET", "/orders/9999?fail=1", &[]).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            json!({"error": "order-service failed on purpose (fail=1)"})
        );
    }

    #[tokio::test]
    async fn forwards_the_fault_parameters_it_was_given() {
        let recorder = Recorder::start(json!({})).await;
        let context = context(DemoApp::OrderService, via(recorder.address), true);
        let (status, _) = call(&context, "GET", "/orders/1004?delay=1ms&x=y", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(recorder.paths(), ["/users/3?delay=1ms"]);
    }

    #[tokio::test]
    async fn an_unreachable_user_service_is_a_500() {
        let users = start(DemoApp::UserService, vec![], true).await;
        let address = users.address;
        users.stop().await;
        let context = context(DemoApp::OrderService, via(address), true);
        let (status, body) = call(&context, "GET", "/orders/1001", &[]).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let message = body["error"].as_str().expect("an error message");
        assert!(
            message.starts_with("cannot load user 1: user-service unreachable"),
            "{message}"
        );
    }
}
