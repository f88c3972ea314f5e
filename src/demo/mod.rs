//! The demo services: api-gateway, user-service and order-service.
//!
//! Plain hyper handlers with JSON bodies and seeded in-memory data, written
//! the way an app with no tracing looks: no span types, no trace context,
//! nothing from [`crate::propagation`]. Their only concession is
//! [`copy_trace_headers`], the header copy Istio and Linkerd ask of apps.
//! Each service calls its dependencies at a base URL it is given: in the
//! demo topology that is its own sidecar's outbound listener, in tests the
//! other service directly.
//!
//! | app            | endpoints                                   | calls                      |
//! |----------------|---------------------------------------------|----------------------------|
//! | api-gateway    | `/api/users[/{id}]`, `/api/orders[/{id}]`   | user-service, order-service |
//! | user-service   | `/users`, `/users/{id}` (404 if unknown)    | —                          |
//! | order-service  | `/orders`, `/orders/{id}` (404 if unknown)  | user-service, per order    |
//!
//! Every endpoint takes `?fail=1` and `?delay=300ms` (see `faults.rs`) so
//! error and slow spans can be provoked, and [`generate_load`] sends steady
//! traffic across all of them.
//!
//! Files: `gateway.rs`, `users.rs`, `orders.rs` (one per app), `data.rs`
//! (seed), `headers.rs` (the header copy), `faults.rs` (provoked failures),
//! `client.rs` (calls to dependencies), `reply.rs` (JSON responses),
//! `load.rs` (traffic generator), `store.rs` (user-service's data: the
//! seeded list or a PostgreSQL database).

mod client;
mod data;
mod faults;
mod gateway;
mod headers;
mod load;
mod orders;
mod reply;
mod store;
mod users;

#[cfg(test)]
mod fixture;

pub use headers::{TRACE_HEADERS, copy_trace_headers};
pub use load::{LoadSummary, MAX_IN_FLIGHT, generate_load};

use std::future::Future;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{Method, Response, StatusCode};
use hyper::Request;
use tokio::net::TcpListener;

use crate::server::{self, Body, ConnInfo, ServerOptions};
use client::Upstreams;
use faults::Faults;

/// One of the three demo services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DemoApp {
    /// The public entry point; routes `/api/…` to the other two.
    ApiGateway,
    /// Users by id; calls nobody.
    UserService,
    /// Orders by id, each enriched with its user from user-service.
    OrderService,
}

impl DemoApp {
    /// Every demo app, callers first.
    pub const ALL: [DemoApp; 3] = [
        DemoApp::ApiGateway,
        DemoApp::OrderService,
        DemoApp::UserService,
    ];

    /// The service name (also its name in the mesh and in spans).
    pub const fn name(self) -> &'static str {
        match self {
            DemoApp::ApiGateway => "api-gateway",
            DemoApp::UserService => "user-service",
            DemoApp::OrderService => "order-service",
        }
    }

    /// The app with this service name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|app| app.name() == name)
    }

    /// The services this app calls, by name.
    pub fn dependencies(self) -> &'static [&'static str] {
        const USERS: &str = DemoApp::UserService.name();
        const ORDERS: &str = DemoApp::OrderService.name();
        match self {
            DemoApp::ApiGateway => &[USERS, ORDERS],
            DemoApp::UserService => &[],
            DemoApp::OrderService => &[USERS],
        }
    }
}

/// How one demo app runs.
#[derive(Clone, Debug, Default)]
pub struct DemoOptions {
    /// Base URL of each dependency, by service name, e.g.
    /// `("user-service", "http://127.0.0.1:15001")`. Extra entries are ignored.
    pub upstreams: Vec<(String, String)>,
    /// Copy trace headers onto outgoing calls; `false` shows what a broken
    /// app does to its traces.
    pub propagate: bool,
    /// Add a few milliseconds of simulated work per request; off in tests.
    pub latency: bool,
    /// user-service's database (`--postgres URL`); `None` serves the
    /// seeded in-memory users. Other apps ignore it.
    pub database: Option<tokio_postgres::Config>,
}

/// Why a demo app could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A dependency of the app has no base URL in [`DemoOptions::upstreams`].
    #[error("{app} needs the base URL of {dependency}, e.g. http://127.0.0.1:15001")]
    MissingUpstream {
        app: &'static str,
        dependency: &'static str,
    },
    /// A dependency's base URL is not `http://host:port`.
    #[error("base URL {url:?} of {dependency}: {reason}")]
    BadUpstreamUrl {
        dependency: &'static str,
        url: String,
        reason: String,
    },
    #[error(transparent)]
    Database(#[from] store::StoreError),
}

/// Serves one demo app on `listener` until `shutdown` completes, then
/// drains open connections (see [`crate::server::serve`]).
pub async fn serve_app(
    app: DemoApp,
    options: DemoOptions,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DemoError> {
    prepare_app(app, &options)
        .await?
        .serve(listener, shutdown)
        .await;
    Ok(())
}

/// Builds `app`'s context and, for user-service with a database, connects
/// and seeds it: work the app does before it answers anything, so that
/// none of it happens while a request is in flight (the sidecar would
/// count the seeding queries as that request's calls).
pub async fn prepare_app(app: DemoApp, options: &DemoOptions) -> Result<PreparedApp, DemoError> {
    let mut context = Context::new(app, options)?;
    let mut connection = None;
    if let (DemoApp::UserService, Some(database)) = (app, &options.database) {
        let (users, driver) = store::Users::connect(database).await.inspect_err(|error| {
            // Said now: the demo keeps running without this app.
            tracing::error!(%error, "user-service cannot use its database");
        })?;
        context.users = users;
        let driver: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(driver);
        connection = Some(driver);
    }
    Ok(PreparedApp {
        context: Arc::new(context),
        connection,
    })
}

/// A demo app ready to answer ([`prepare_app`]).
pub struct PreparedApp {
    context: Arc<Context>,
    /// Drives user-service's database connection, when it has one.
    connection: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl PreparedApp {
    /// Serves on `listener` until `shutdown` completes, then drains open
    /// connections (see [`crate::server::serve`]); the database connection
    /// is driven alongside the server, and ends with it.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) {
        let context = self.context;
        let handler = move |request: Request<server::RequestBody>, _: ConnInfo| {
            let context = Arc::clone(&context);
            async move {
                // Every endpoint is a GET: the request body is never read.
                let (parts, _body) = request.into_parts();
                context.handle(&parts).await
            }
        };
        let serving = server::serve(listener, ServerOptions::default(), handler, shutdown);
        match self.connection {
            Some(connection) => {
                tokio::select! {
                    () = serving => {}
                    () = connection => tracing::info!("user-service database connection closed; stopping"),
                }
            }
            None => serving.await,
        }
    }
}

/// What every request handler of one app shares.
#[derive(Debug)]
struct Context {
    app: DemoApp,
    upstreams: Upstreams,
    latency: bool,
    /// user-service's data.
    users: store::Users,
}

impl Context {
    fn new(app: DemoApp, options: &DemoOptions) -> Result<Self, DemoError> {
        let upstreams = Upstreams::new(
            app.name(),
            app.dependencies(),
            &options.upstreams,
            options.propagate,
        )?;
        Ok(Self {
            app,
            upstreams,
            latency: options.latency,
            users: store::Users::Seeded,
        })
    }

    async fn handle(&self, parts: &Parts) -> Response<Body> {
        match self.app {
            DemoApp::ApiGateway => gateway::handle(self, parts).await,
            DemoApp::UserService => users::handle(self, parts).await,
            DemoApp::OrderService => orders::handle(self, parts).await,
        }
    }

    /// Simulated work (a lookup, a query) of a few milliseconds, when enabled.
    async fn work(&self, millis: RangeInclusive<u64>) {
        if self.latency {
            let millis = rand::random_range(millis);
            tokio::time::sleep(Duration::from_millis(millis)).await;
        }
    }

    /// Acts on provoked faults in the deepest service of a request: waits,
    /// then answers 500 if asked to fail.
    async fn act_on(&self, faults: Faults) -> Option<Response<Body>> {
        if let Some(delay) = faults.delay {
            tokio::time::sleep(delay).await;
        }
        faults.fail.then(|| {
            reply::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("{} failed on purpose (fail=1)", self.app.name()),
            )
        })
    }
}

/// Why a request was refused before reaching its endpoint.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("only GET is supported")]
    Method,
    #[error(transparent)]
    Query(#[from] faults::FaultError),
}

impl Refusal {
    fn into_response(self) -> Response<Body> {
        match self {
            Refusal::Method => reply::method_not_allowed(),
            Refusal::Query(error) => reply::error(StatusCode::BAD_REQUEST, &error.to_string()),
        }
    }
}

/// Checks what every endpoint requires (a `GET`, readable fault
/// parameters) and returns the faults the request asks for.
fn accept(parts: &Parts) -> Result<Faults, Refusal> {
    if parts.method != Method::GET {
        return Err(Refusal::Method);
    }
    Ok(Faults::from_query(parts.uri.query())?)
}

/// Which resource of a collection a path names.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    /// `/users`
    Collection,
    /// `/users/{id}`, the id not yet checked.
    Item(&'a str),
}

impl<'a> Target<'a> {
    /// Reads `path` as `collection` or `collection/{id}`.
    fn parse(path: &'a str, collection: &str) -> Option<Self> {
        let rest = path.strip_prefix(collection)?;
        if rest.is_empty() {
            return Some(Target::Collection);
        }
        let id = rest.strip_prefix('/')?;
        (!id.is_empty() && !id.contains('/')).then_some(Target::Item(id))
    }
}

/// A 404 for a path no endpoint serves.
fn no_route(parts: &Parts) -> Response<Body> {
    reply::error(
        StatusCode::NOT_FOUND,
        &format!("no endpoint at {}", parts.uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_round_trip() {
        for app in DemoApp::ALL {
            assert_eq!(DemoApp::parse(app.name()), Some(app));
        }
        assert_eq!(DemoApp::parse("gateway"), None);
        assert_eq!(DemoApp::parse("User-Service"), None);
        assert_eq!(
            DemoApp::ApiGateway.dependencies(),
            ["user-service", "order-service"]
        );
        assert_eq!(DemoApp::OrderService.dependencies(), ["user-service"]);
        assert!(DemoApp::UserService.dependencies().is_empty());
    }

    #[test]
    fn targets() {
        let table: &[(&str, Option<Target>)] = &[
            ("/users", Some(Target::Collection)),
            ("/users/7", Some(Target::Item("7"))),
            ("/users/abc", Some(Target::Item("abc"))),
            ("/users/", None),
            ("/users/7/orders", None),
            ("/usersx", None),
            ("/orders", None),
            ("/", None),
        ];
        for (path, expected) in table {
            assert_eq!(&Target::parse(path, "/users"), expected, "{path}");
        }
    }

    #[tokio::test]
    async fn serve_app_refuses_a_missing_dependency() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let result = serve_app(
            DemoApp::OrderService,
            DemoOptions::default(),
            listener,
            std::future::pending(),
        )
        .await;
        assert!(matches!(
            result,
            Err(DemoError::MissingUpstream {
                app: "order-service",
                dependency: "user-service"
            })
        ));
    }
}
