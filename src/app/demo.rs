//! The one-process demo: collector, three services, three sidecars, on loopback.
//!
//! ```text
//!   you ──► api-gateway sidecar ──► api-gateway app
//!                                      │ (through its sidecar's outbound routes)
//!              ┌───────────────────────┴──────────────┐
//!              ▼                                      ▼
//!   order-service sidecar ──► order-service app   user-service sidecar ──► user-service app
//!              │ (outbound route)                     ▲
//!              └──────────────────────────────────────┘
//!   every sidecar ──► embedded collector + trace viewer
//! ```
//!
//! Every listener is bound before anything starts, so each sidecar's config
//! can name the real addresses (ports are `base + offset`, or all ephemeral
//! with base 0, which the tests use). Shutdown runs outside-in: sidecars
//! first (they flush their spans into the collector), then the apps, then
//! the collector. The demo owns the optional load generator
//! ([`Demo::start_load`]), stopped before anything else.
//!
//! With `--postgres URL`, user-service reads its users from that
//! PostgreSQL, connecting to its own sidecar's postgres route
//! (`users-db`, port `base + 23`), so each query is a CLIENT span under
//! user-service's SERVER span.
//!
//! [`run_demo_app`] runs one of the services alone (`tracehop demo-app`).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::signals::Signals;
use super::{AppError, Listeners, Running, start_with};
use crate::collector::{self, Collector, CollectorConfig};
use crate::config::{self, ConfigErrors, Overrides};
use crate::demo::{
    DemoApp, DemoError, DemoOptions, LoadSummary, generate_load, prepare_app, serve_app,
};
use crate::inference::Outcome;

/// Port offsets from `--base-port`.
const SIDECAR_INBOUND: u16 = 0;
const APP: u16 = 10;
const ROUTE: u16 = 20;
/// user-service's postgres route (`--postgres`), after the HTTP routes.
const DATABASE_ROUTE: u16 = 23;
/// The postgres route's name: the database's name in spans.
const DATABASE_ROUTE_NAME: &str = "users-db";
const ADMIN: u16 = 30;
const COLLECTOR: u16 = 40;

/// How the demo runs.
#[derive(Clone, Debug)]
pub struct DemoSettings {
    /// First port of the range used; 0 binds every listener to an ephemeral port.
    pub base_port: u16,
    /// Apps copy trace headers onto their calls (false shows broken traces).
    pub propagate: bool,
    /// Apps add a few milliseconds of simulated work.
    pub latency: bool,
    /// `--postgres URL`: user-service reads its users from this database,
    /// through a postgres route of its sidecar; `None` keeps them in memory.
    pub postgres: Option<String>,
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoStartError {
    // The OS error is in the message only: as a `source` too, a log line
    // with the error chain would say it twice.
    #[error("cannot listen on {addr} for {what}: {error} (pick other ports with --base-port)")]
    Bind {
        what: String,
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("demo sidecar config is invalid: {0}")]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("--postgres {url:?}: {reason} (write postgres://user:password@host:port/db)")]
    Postgres { url: String, reason: String },
    #[error(transparent)]
    DemoApp(#[from] DemoError),
}

/// Outbound calls of every demo sidecar by parent-inference outcome
/// (`tracehop_inferred_parents_total`, see [`Outcome`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParentSummary {
    pub inferred: u64,
    pub ambiguous: u64,
    pub no_candidate: u64,
    pub confirmed: u64,
    pub contradicted: u64,
    pub would_be_ambiguous: u64,
    pub would_be_no_candidate: u64,
}

impl std::fmt::Display for ParentSummary {
    /// A part for the calls without context (the apps copy no headers)
    /// and one for the calls with context, each only when there were any.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let share = |n: u64, of: u64| 100.0 * n as f64 / of.max(1) as f64;
        let without = self.inferred + self.ambiguous + self.no_candidate;
        let with = self.confirmed
            + self.contradicted
            + self.would_be_ambiguous
            + self.would_be_no_candidate;
        let mut lines = Vec::new();
        if without > 0 {
            lines.push(format!(
                "{without} calls without trace context: {} inferred ({:.1} %), {} ambiguous ({:.1} %), {} with no request in flight",
                self.inferred,
                share(self.inferred, without),
                self.ambiguous,
                share(self.ambiguous, without),
                self.no_candidate,
            ));
        }
        if with > 0 {
            lines.push(format!(
                "{with} calls with trace context: inference confirmed {} ({:.1} %), contradicted {}, would be ambiguous {}, no request in flight {}",
                self.confirmed,
                share(self.confirmed, with),
                self.contradicted,
                self.would_be_ambiguous,
                self.would_be_no_candidate,
            ));
        }
        if lines.is_empty() {
            lines.push("no outbound calls".to_owned());
        }
        write!(f, "{}", lines.join("; "))
    }
}

/// A running demo.
pub struct Demo {
    /// Where to send requests: the api-gateway's sidecar.
    pub gateway: SocketAddr,
    /// The collector and trace viewer.
    pub collector_addr: SocketAddr,
    /// In-process handle on the collector's store.
    pub collector: Collector,
    /// Each sidecar, by service name, with its admin address.
    pub sidecars: Vec<(&'static str, Running)>,
    apps: Vec<JoinHandle<Result<(), DemoError>>>,
    stop_apps: watch::Sender<bool>,
    collector_task: JoinHandle<()>,
    stop_collector: watch::Sender<bool>,
    load: Option<Load>,
}

/// The running load generator.
struct Load {
    stop: watch::Sender<bool>,
    task: JoinHandle<LoadSummary>,
}

/// How long the load generator may take to stop (it gives requests in
/// flight a grace period of its own, shorter than this).
const LOAD_STOP_DEADLINE: Duration = Duration::from_secs(5);

fn port(base: u16, offset: u16) -> u16 {
    if base == 0 {
        0
    } else {
        base.saturating_add(offset)
    }
}

async fn bind(
    what: impl Into<String>,
    base: u16,
    offset: u16,
) -> Result<TcpListener, DemoStartError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port(base, offset)));
    TcpListener::bind(addr)
        .await
        .map_err(|error| DemoStartError::Bind {
            what: what.into(),
            addr,
            error,
        })
}

fn addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .expect("a bound TCP listener has a local address")
}

/// Outbound routes of each app: (caller, callee) in port-offset order.
const ROUTES: [(DemoApp, DemoApp); 3] = [
    (DemoApp::ApiGateway, DemoApp::UserService),
    (DemoApp::ApiGateway, DemoApp::OrderService),
    (DemoApp::OrderService, DemoApp::UserService),
];

/// The listeners of the whole topology, in [`DemoApp::ALL`] order.
struct Bound {
    inbound: Vec<TcpListener>,
    apps: Vec<TcpListener>,
    routes: Vec<TcpListener>,
    admin: Vec<TcpListener>,
    collector: TcpListener,
    /// user-service's postgres route, with the database it reaches.
    database: Option<(TcpListener, Database)>,
}

/// The database of `--postgres`: where it is, and how the app logs in.
struct Database {
    upstream: String,
    login: tokio_postgres::Config,
}

impl Database {
    fn parse(url: &str) -> Result<Self, DemoStartError> {
        let invalid = |reason: String| DemoStartError::Postgres {
            url: url.to_owned(),
            reason,
        };
        let login: tokio_postgres::Config = url.parse().map_err(|e| invalid(format!("{e}")))?;
        let host = match login.get_hosts() {
            [tokio_postgres::config::Host::Tcp(host)] => host.clone(),
            _ => return Err(invalid("name exactly one TCP host".to_owned())),
        };
        let port = login.get_ports().first().copied().unwrap_or(5432);
        let upstream = match host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[{host}]:{port}"),
            Err(_) => format!("{host}:{port}"),
        };
        Ok(Self { upstream, login })
    }

    /// The login, pointed at the sidecar's route instead of the database.
    fn through(&self, route: SocketAddr) -> tokio_postgres::Config {
        let mut via = tokio_postgres::Config::new();
        via.host(route.ip().to_string()).port(route.port());
        if let Some(user) = self.login.get_user() {
            via.user(user);
        }
        if let Some(password) = self.login.get_password() {
            via.password(password);
        }
        if let Some(db) = self.login.get_dbname() {
            via.dbname(db);
        }
        via
    }
}

async fn bind_topology(base: u16, database: Option<Database>) -> Result<Bound, DemoStartError> {
    let database = match database {
        Some(db) => {
            let what = "user-service's postgres route";
            Some((bind(what, base, DATABASE_ROUTE).await?, db))
        }
        None => None,
    };
    let mut bound = Bound {
        inbound: Vec::new(),
        apps: Vec::new(),
        routes: Vec::new(),
        admin: Vec::new(),
        collector: bind("the collector", base, COLLECTOR).await?,
        database,
    };
    for (i, app) in (0u16..).zip(DemoApp::ALL) {
        let name = app.name();
        bound
            .inbound
            .push(bind(format!("{name}'s sidecar"), base, SIDECAR_INBOUND + i).await?);
        bound.apps.push(bind(name, base, APP + i).await?);
        bound
            .admin
            .push(bind(format!("{name}'s sidecar admin"), base, ADMIN + i).await?);
    }
    for (i, (from, to)) in (0u16..).zip(ROUTES) {
        let what = format!("the {} -> {} route", from.name(), to.name());
        bound.routes.push(bind(what, base, ROUTE + i).await?);
    }
    Ok(bound)
}

fn index(app: DemoApp) -> usize {
    DemoApp::ALL
        .iter()
        .position(|a| *a == app)
        .expect("every app is in ALL")
}

/// The sidecar config for `app`, naming the bound addresses.
fn sidecar_yaml(app: DemoApp, bound: &Bound) -> String {
    let i = index(app);
    let mut routes = String::new();
    for ((from, to), listener) in ROUTES.iter().zip(&bound.routes) {
        if *from == app {
            routes.push_str(&format!(
                "    - {{name: {}, listen: \"{}\", upstream: \"http://{}\"}}\n",
                to.name(),
                addr(listener),
                addr(&bound.inbound[index(*to)]),
            ));
        }
    }
    if let (DemoApp::UserService, Some((listener, db))) = (app, &bound.database) {
        routes.push_str(&format!(
            "    - {{name: {DATABASE_ROUTE_NAME}, protocol: postgres, listen: \"{}\", upstream: \"tcp://{}\"}}\n",
            addr(listener),
            db.upstream,
        ));
    }
    format!(
        "service: {{name: {name}}}\n\
         inbound: {{listen: \"{inbound}\", upstream: \"http://{app_addr}\"}}\n\
         outbound:\n  routes:\n{routes_or_empty}\
         admin: {{listen: \"{admin}\"}}\n\
         export: {{zipkin: \"http://{collector}/api/v2/spans\", batch_interval: 200ms}}\n\
         log: {{access_log: false}}\n\
         shutdown: {{grace_period: 5s}}\n",
        name = app.name(),
        inbound = addr(&bound.inbound[i]),
        app_addr = addr(&bound.apps[i]),
        routes_or_empty = if routes.is_empty() {
            "    []\n".to_owned()
        } else {
            routes
        },
        admin = addr(&bound.admin[i]),
        collector = addr(&bound.collector),
    )
}

/// Starts the whole demo.
pub async fn start_demo(settings: DemoSettings) -> Result<Demo, DemoStartError> {
    let database = settings
        .postgres
        .as_deref()
        .map(Database::parse)
        .transpose()?;
    let bound = bind_topology(settings.base_port, database).await?;
    let gateway = addr(&bound.inbound[0]);
    let collector_addr = addr(&bound.collector);
    let mut configs = Vec::new();
    for app in DemoApp::ALL {
        configs.push(config::load(
            &sidecar_yaml(app, &bound),
            Overrides::default(),
        )?);
    }
    let Bound {
        inbound,
        apps,
        routes,
        admin,
        collector: collector_listener,
        database,
    } = bound;
    let (database_route, database) = database.unzip();
    let mut database_route = database_route;

    let collector = Collector::new(CollectorConfig::default());
    let (stop_collector, collector_stopped) = watch::channel(false);
    let collector_task = tokio::spawn(collector::serve(
        collector.clone(),
        collector_listener,
        stopped(collector_stopped),
    ));

    let mut routes = routes.into_iter();
    let mut sidecars = Vec::new();
    for ((app, config), (inbound, admin)) in DemoApp::ALL
        .into_iter()
        .zip(configs)
        .zip(inbound.into_iter().zip(admin))
    {
        let mut outbound: Vec<TcpListener> = ROUTES
            .iter()
            .filter(|(from, _)| *from == app)
            .filter_map(|_| routes.next())
            .collect();
        if app == DemoApp::UserService {
            outbound.extend(database_route.take());
        }
        let listeners = Listeners {
            inbound,
            admin,
            outbound,
            forward_proxy: None,
        };
        sidecars.push((app.name(), start_with(config, listeners)?));
    }

    let (stop_apps, apps_stopped) = watch::channel(false);
    let mut app_tasks = Vec::new();
    for (app, listener) in DemoApp::ALL.into_iter().zip(apps) {
        let own = &sidecars[index(app)].1;
        let route = own
            .outbound_addrs
            .iter()
            .find(|(name, _)| &**name == DATABASE_ROUTE_NAME);
        let options = DemoOptions {
            upstreams: app_upstreams(app, &sidecars),
            propagate: settings.propagate,
            latency: settings.latency,
            database: database
                .as_ref()
                .zip(route)
                .map(|(db, (_, addr))| db.through(*addr)),
        };
        // Ready before anything is sent to it: user-service seeds its
        // database here, not while a first request waits.
        let prepared = prepare_app(app, &options).await?;
        let shutdown = stopped(apps_stopped.clone());
        app_tasks.push(tokio::spawn(async move {
            prepared.serve(listener, shutdown).await;
            Ok(())
        }));
    }
    Ok(Demo {
        gateway,
        collector_addr,
        collector,
        sidecars,
        apps: app_tasks,
        stop_apps,
        collector_task,
        stop_collector,
        load: None,
    })
}

/// Each dependency of `app` at its sidecar's outbound route address.
fn app_upstreams(app: DemoApp, sidecars: &[(&'static str, Running)]) -> Vec<(String, String)> {
    let own = &sidecars[index(app)].1;
    own.outbound_addrs
        .iter()
        .map(|(name, addr)| (name.to_string(), format!("http://{addr}")))
        .collect()
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl Demo {
    /// What to try, for the terminal: one line each.
    pub fn instructions(&self) -> String {
        let gateway = self.gateway;
        let mut text = format!(
            "tracehop demo is running. Try:\n\
             \x20 curl http://{gateway}/api/orders/1001      (gateway -> order-service -> user-service)\n\
             \x20 curl http://{gateway}/api/users/1\n\
             \x20 curl 'http://{gateway}/api/orders/1001?fail=1'   (an error trace)\n\
             \x20 curl 'http://{gateway}/api/orders/1001?delay=300ms'   (a slow trace)\n\
             Trace viewer:  http://{}/\n",
            self.collector_addr
        );
        for (name, sidecar) in &self.sidecars {
            text.push_str(&format!(
                "{name:>14} sidecar metrics: http://{}/metrics\n",
                sidecar.admin_addr
            ));
        }
        text.push_str("Press Ctrl-C to stop.\n");
        text
    }

    /// Starts sending `rps` requests a second to the gateway (see
    /// [`generate_load`]) until [`Demo::stop_load`] or shutdown.
    pub fn start_load(&mut self, rps: u32) {
        let gateway: http::Uri = format!("http://{}", self.gateway)
            .parse()
            .expect("a socket address makes a valid URI");
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(generate_load(gateway, rps, stopped(stop_rx)));
        self.load = Some(Load { stop, task });
    }

    /// Stops the load generator and returns what it did; `None` when none
    /// was running or it did not stop in time.
    pub async fn stop_load(&mut self) -> Option<LoadSummary> {
        let Load { stop, mut task } = self.load.take()?;
        stop.send_replace(true);
        match tokio::time::timeout(LOAD_STOP_DEADLINE, &mut task).await {
            Ok(Ok(summary)) => Some(summary),
            Ok(Err(error)) => {
                tracing::warn!(%error, "load generator failed");
                None
            }
            Err(_) => {
                task.abort();
                tracing::warn!("load generator did not stop in time");
                None
            }
        }
    }

    /// What parent inference did in every sidecar so far.
    pub fn parent_summary(&self) -> ParentSummary {
        let mut sum = [0; Outcome::ALL.len()];
        for (_, sidecar) in &self.sidecars {
            let totals = sidecar.metrics.outbound.parent_outcome_totals();
            for (s, t) in sum.iter_mut().zip(totals) {
                *s += t;
            }
        }
        let [
            inferred,
            ambiguous,
            no_candidate,
            confirmed,
            contradicted,
            would_be_ambiguous,
            would_be_no_candidate,
        ] = sum;
        ParentSummary {
            inferred,
            ambiguous,
            no_candidate,
            confirmed,
            contradicted,
            would_be_ambiguous,
            would_be_no_candidate,
        }
    }

    /// Stops the load generator, then sidecars (flushing spans), then
    /// apps, then the collector.
    pub async fn shutdown(mut self) {
        self.stop_load().await;
        for (_, sidecar) in &self.sidecars {
            sidecar.shutdown();
        }
        for (_, sidecar) in self.sidecars {
            sidecar.wait().await;
        }
        self.stop_apps.send_replace(true);
        for task in self.apps {
            match task.await {
                Ok(Err(error)) => tracing::warn!(%error, "demo app failed"),
                Err(error) => tracing::warn!(%error, "demo app task failed"),
                Ok(Ok(())) => {}
            }
        }
        self.stop_collector.send_replace(true);
        let _ = self.collector_task.await;
    }
}

/// `tracehop demo-app`: one demo service alone on `listen` (as in the
/// Kubernetes manifests) until SIGTERM or SIGINT.
pub async fn run_demo_app(
    app: DemoApp,
    options: DemoOptions,
    listen: SocketAddr,
) -> Result<(), AppError> {
    let listener = super::bind(app.name(), listen).await?;
    tracing::info!(app = app.name(), listen = %listen, "demo app listening");
    let stopped = Signals::listen(false)?.stopped();
    serve_app(app, options, listener, stopped).await?;
    Ok(())
}
