//! user-service: `GET /users` and `GET /users/{id}` from the seeded users.
//!
//! It calls nobody, so it is the deepest service on every path that reaches
//! it and the one that acts on `?fail=` and `?delay=`.

use http::request::Parts;
use http::{Response, StatusCode};
use serde::Serialize;

use super::store::UserRow;
use super::{Context, Target, accept, no_route, reply};
use crate::server::Body;

/// The body of `GET /users`.
#[derive(Serialize)]
struct UserList {
    users: Vec<UserRow>,
}

/// Answers one request to user-service.
pub(super) async fn handle(context: &Context, parts: &Parts) -> Response<Body> {
    let faults = match accept(parts) {
        Ok(faults) => faults,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(target) = Target::parse(parts.uri.path(), "/users") else {
        return no_route(parts);
    };
    if let Some(failure) = context.act_on(faults).await {
        return failure;
    }
    // The "database lookup" (a real one with `--postgres`).
    context.work(1..=3).await;
    let users = &context.users;
    let found = match target {
        Target::Collection => users
            .all(&parts.headers)
            .await
            .map(|users| reply::json(StatusCode::OK, &UserList { users })),
        Target::Item(id) => {
            let found = match id.parse() {
                Ok(id) => users.by_id(id, &parts.headers).await,
                Err(_) => Ok(None),
            };
            found.map(|user| match user {
                Some(user) => reply::json(StatusCode::OK, &user),
                None => reply::error(StatusCode::NOT_FOUND, &format!("no user with id {id}")),
            })
        }
    };
    found.unwrap_or_else(|error| reply::error(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::DemoApp;
    use super::super::data::USERS;
    use super::super::fixture::{call, context};
    use super::*;

    #[tokio::test]
    async fn lists_every_user() {
        let context = context(DemoApp::UserService, vec![], true);
        let (status, body) = call(&context, "GET", "/users", &[]).await;
        assert_eq!(status, StatusCode::OK);
        let users = body["users"].as_array().expect("a users array");
        assert_eq!(users.len(), USERS.len());
        assert_eq!(
            users[0],
            json!({"id": 1, "name": "Ada Lovelace", "email": "ada.lovelace@example.com"})
        );
    }

    #[tokio::test]
    async fn answers_by_id() {
        let context = context(DemoApp::UserService, vec![], true);
        // (path, status, body)
        let table = [
            (
                "/users/2",
                StatusCode::OK,
                json!({"id": 2, "name": "Grace Hopper", "email": "grace.hopper@example.com"}),
            ),
            (
                "/users/999",
                StatusCode::NOT_FOUND,
                json!({"error": "no user with id 999"}),
            ),
            (
                "/users/abc",
                StatusCode::NOT_FOUND,
                json!({"error": "no user with id abc"}),
            ),
            (
                "/users/1/orders",
                StatusCode::NOT_FOUND,
                json!({"error": "no endpoint at /users/1/orders"}),
            ),
            (
                "/orders",
                StatusCode::NOT_FOUND,
                json!({"error": "no endpoint at /orders"}),
            ),
            (
                "/users/1?fail=1",
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "user-service failed on purpose (fail=1)"}),
            ),
            (
                "/users/1?delay=1ms",
                StatusCode::OK,
                json!({"id": 1, "name": "Ada Lovelace", "email": "ada.lovelace@example.com"}),
            ),
            (
                "/users/1?delay=forever",
                StatusCode::BAD_REQUEST,
                json!({"error": "delay=\"forever\": expected a duration such as 300ms or 2s"}),
            ),
        ];
        for (path, status, body) in table {
            assert_eq!(
                call(&context, "GET", path, &[]).await,
                (status, body),
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn only_get_is_allowed() {
        let context = context(DemoApp::UserService, vec![], true);
        let (status, body) = call(&context, "POST", "/users", &[]).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body, json!({"error": "only GET is supported"}));
    }
}
