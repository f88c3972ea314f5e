//! Wiring: builds every piece from the validated config, binds every
//! listener, and owns every long-lived task and the shutdown order.
//!
//! This is the only place long-lived tasks are spawned. [`start`] binds
//! first (so a taken port fails fast, naming the address) and returns a
//! [`Running`] handle with every bound address. Shutdown, once asked for:
//!
//! 1. readiness fails at once (`/readyz` answers 503);
//! 2. listeners keep accepting for `shutdown.drain_delay`, so load
//!    balancers stop sending first;
//! 3. listeners stop accepting (and the certificate reloader stops);
//!    in-flight requests get `shutdown.grace_period`;
//! 4. the exporters flush what is queued, bounded by `export.shutdown_timeout`;
//! 5. the admin listener stops last, so `/metrics` stays scrapable meanwhile.
//!
//! Each command of the binary has its entry point here: [`run`] (the
//! sidecar, with live reload of sampling in `reload`), [`run_collector`],
//! [`start_demo`] and [`run_demo_app`]; they wait on process signals
//! (`signals`) so that `main` only parses, logs and maps errors. The
//! proxying listeners are built in `proxies`.

mod collector;
mod demo;
mod dev;
mod postgres;
mod proxies;
mod reload;
mod runtime;
mod signals;

pub use collector::{run_collector, serve_collector};
pub use demo::{Demo, DemoSettings, DemoStartError, ParentSummary, run_demo_app, start_demo};
pub use dev::{DevSettings, run_dev};
pub use reload::ConfigFile;
pub use runtime::runtime;
pub use signals::{SignalError, stop_requested};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{Admin, Readiness};
use crate::config::{
    self, Config, ConfigErrors, ExportConfig, ForwardProxy, Overrides, ParentInference,
};
use crate::demo::DemoError;
use crate::export::{self, ClientError, EncodeOptions};
use crate::inference::Register;
use crate::metrics::Metrics;
use crate::sampling::{LiveSampler, Sampler};
use crate::server::{self, ServerOptions};
use crate::tls::{self, TlsMaterial};
use proxies::{build_proxies, spawn_proxies};

/// Failures while starting or running a command.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Files or variables named by the config are missing or unusable.
    #[error("{0}")]
    Material(ConfigErrors),
    // The OS error is in the message only: as a `source` too, a log line
    // with the error chain would say it twice.
    #[error("cannot listen on {addr} ({what}): {error}")]
    Bind {
        what: String,
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// `tracehop collector --forward URL`: the URL is unusable.
    #[error("--forward: {0}")]
    Forward(ConfigErrors),
    /// The collector's relay client could not be built.
    #[error(transparent)]
    Relay(#[from] ClientError),
    #[error(transparent)]
    DemoApp(#[from] DemoError),
}

/// A started sidecar: its addresses and the means to stop it.
pub struct Running {
    pub inbound_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// (route name, bound address) per outbound route: the HTTP routes,
    /// then the postgres routes, each in config order.
    pub outbound_addrs: Vec<(Arc<str>, SocketAddr)>,
    /// The forward-proxy listener's address, when configured.
    pub forward_proxy_addr: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    /// This sidecar's instance id (its listeners' `Via` pseudonyms).
    pub instance: String,
    sampler: LiveSampler,
    /// The configuration the sidecar started with: what a reload is
    /// compared with to name the changes that need a restart.
    started: Box<Config>,
    /// The access log's writer thread: flushed and joined after shutdown.
    access_writer: Option<crate::access_log::Writer>,
    stop: watch::Sender<bool>,
    supervisor: JoinHandle<()>,
}

impl Running {
    /// Begins graceful shutdown; [`Running::wait`] returns when it is done.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Reloads the `sampling:` section from a new configuration text.
    ///
    /// The whole text is validated with `overrides` (pass the ones given
    /// at start, so flags such as `--sample-ratio` still win); on success
    /// the new sampler replaces the old one atomically — open connections
    /// and requests in flight are untouched. On any problem the old
    /// sampler stays and every problem is returned. Only sampling changes
    /// take effect; the keys changed in other sections, which need a
    /// restart, are returned.
    pub fn reload_sampling(
        &self,
        yaml: &str,
        overrides: Overrides,
    ) -> Result<Vec<String>, ConfigErrors> {
        let config = config::load(yaml, overrides)?;
        self.sampler
            .replace(Sampler::new(&config.sampling, &self.metrics.sampling));
        Ok(self.started.restart_needed(&config))
    }

    /// Waits until the sidecar has stopped (after [`Running::shutdown`]).
    pub async fn wait(self) {
        if let Err(error) = self.supervisor.await {
            tracing::error!(%error, "shutdown supervisor failed");
        }
        if let Some(writer) = self.access_writer {
            // Joins a thread: not on the runtime's own.
            let _ = tokio::task::spawn_blocking(move || writer.stop()).await;
        }
    }
}

/// A one-way shutdown signal that many tasks can wait on.
fn signal() -> (
    watch::Sender<bool>,
    impl Fn() -> Box<dyn Future<Output = ()> + Send + Unpin>,
) {
    let (tx, rx) = watch::channel(false);
    let wait = move || -> Box<dyn Future<Output = ()> + Send + Unpin> {
        let mut rx = rx.clone();
        Box::new(Box::pin(async move {
            // An error means the sender is gone: treat that as "stop" too.
            let _ = rx.wait_for(|stop| *stop).await;
        }))
    };
    (tx, wait)
}

async fn bind(what: impl Into<String>, addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr)
        .await
        .map_err(|error| AppError::Bind {
            what: what.into(),
            addr,
            error,
        })
}

fn local_addr(listener: &TcpListener, fallback: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(fallback)
}

/// Listeners bound before anything is spawned: one per configured address,
/// outbound routes in config order.
pub struct Listeners {
    pub inbound: TcpListener,
    pub admin: TcpListener,
    /// The HTTP outbound routes, then the postgres routes, each in config order.
    pub outbound: Vec<TcpListener>,
    /// The forward-proxy listener, when configured.
    pub forward_proxy: Option<TcpListener>,
}

/// Binds every listener the config names; fails naming the address in use.
pub async fn bind_all(config: &Config) -> Result<Listeners, AppError> {
    let inbound = bind("inbound.listen", config.inbound.listen).await?;
    let admin = bind("admin.listen", config.admin.listen).await?;
    let mut outbound = Vec::with_capacity(config.outbound.routes.len());
    for route in &config.outbound.routes {
        outbound.push(bind(format!("outbound route {}", route.name), route.listen).await?);
    }
    for route in &config.outbound.postgres {
        outbound.push(bind(format!("outbound route {}", route.name), route.listen).await?);
    }
    let forward_proxy = match &config.outbound.forward_proxy {
        ForwardProxy::Enabled(f) => Some(bind("outbound.forward_proxy.listen", f.listen).await?),
        ForwardProxy::Disabled => None,
    };
    Ok(Listeners {
        inbound,
        admin,
        outbound,
        forward_proxy,
    })
}

/// Reads what the config names outside itself; warnings are logged.
fn load_material(config: &Config) -> Result<TlsMaterial, AppError> {
    let material = tls::load_material(config).map_err(AppError::Material)?;
    for warning in &material.warnings {
        tracing::warn!("{warning}");
    }
    Ok(material)
}

/// `tracehop run`: starts the sidecar and logs every address it listens
/// on; serves until SIGTERM or SIGINT, reloading the sampling section from
/// `file` on SIGHUP or when the file changes; then shuts down gracefully.
pub async fn run(config: Config, file: Option<ConfigFile>) -> Result<(), AppError> {
    let service = config.service.name.clone();
    let upstream = config.inbound.upstream.to_string();
    let export = match &config.export {
        crate::config::ExportConfig::Enabled(export) => export_targets(export),
        crate::config::ExportConfig::Disabled => "off".to_owned(),
    };
    if config.service.name_defaulted() {
        tracing::warn!(
            "service.name is not set: spans say `{service}`; set it in the config, with --service-name or TRACEHOP_SERVICE_NAME"
        );
    }
    let running = start(config).await?;
    tracing::info!(
        service = %service,
        inbound = %running.inbound_addr,
        upstream = %upstream,
        admin = %running.admin_addr,
        export = %export,
        instance = %running.instance,
        "tracehop listening"
    );
    for (route, addr) in &running.outbound_addrs {
        tracing::info!(route = %route, listen = %addr, "outbound route listening");
    }
    if let Some(addr) = running.forward_proxy_addr {
        tracing::info!(listen = %addr, "forward proxy listening");
    }
    let served = reload::serve_until_stopped(&running, file).await;
    running.shutdown();
    running.wait().await;
    Ok(served?)
}

/// Every collector endpoint, for the startup line: `zipkin URL, zipkin
/// URL2`, or with DNS `zipkin URL (dns every 30s)`.
fn export_targets(export: &crate::config::ExportSettings) -> String {
    let resolve = match export.resolve {
        crate::config::Resolve::Static => String::new(),
        crate::config::Resolve::Dns { interval } => format!(" (dns every {interval:?})"),
    };
    export
        .destinations()
        .flat_map(|(exporter, to)| {
            to.urls
                .iter()
                .map(move |url| format!("{} {url}", exporter.label()))
        })
        .map(|target| format!("{target}{resolve}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Binds every listener and starts serving.
pub async fn start(config: Config) -> Result<Running, AppError> {
    let material = load_material(&config)?;
    let bound = bind_all(&config).await?;
    Ok(start_bound(config, bound, material))
}

/// Starts serving on listeners bound beforehand (the demo binds a whole
/// topology first, so every address is known before any config is built).
pub fn start_with(config: Config, bound: Listeners) -> Result<Running, AppError> {
    let material = load_material(&config)?;
    Ok(start_bound(config, bound, material))
}

fn start_bound(config: Config, bound: Listeners, material: TlsMaterial) -> Running {
    let started = Box::new(config.clone());
    let inbound_addr = local_addr(&bound.inbound, config.inbound.listen);
    let admin_addr = local_addr(&bound.admin, config.admin.listen);
    let routes = config.outbound.routes.iter().map(|r| (&r.name, r.listen));
    let postgres = config.outbound.postgres.iter().map(|r| (&r.name, r.listen));
    let outbound_addrs = routes
        .chain(postgres)
        .zip(&bound.outbound)
        .map(|((name, listen), listener)| (name.clone(), local_addr(listener, listen)))
        .collect();

    let metrics = Arc::new(Metrics::new());
    if config.inbound.tls.is_some() {
        metrics.enable_tls();
    }
    let readiness = Readiness::default();
    let (sink, export_tasks) = export::channel_with(
        &config.export,
        &metrics.export,
        EncodeOptions {
            resource_tags: config.service.resource_tags.clone(),
            service_instance_id: Some(crate::span::instance_id()),
        },
        &material.export,
    );
    let sampler = LiveSampler::new(Sampler::new(&config.sampling, &metrics.sampling));
    // Off the request path (see `access_log`), and only when the log
    // filter lets its lines through at all.
    let (access_log, access_writer) = if config.log.access_log
        && tracing::enabled!(target: "tracehop::access", tracing::Level::INFO)
    {
        let (log, writer) = crate::access_log::start(config.log.format, std::io::stderr());
        (Some(log), Some(writer))
    } else {
        (None, None)
    };
    // One id per sidecar process: each listener's `Via` pseudonym is
    // `tracehop-<instance>-<listener>`.
    let instance = crate::proxy::instance_id();
    // One register of inbound requests in flight per sidecar, shared by
    // all its listeners and routes (parent inference).
    let register = match config.inference.parents {
        ParentInference::Unambiguous => Some(Arc::new(Register::new())),
        ParentInference::Off => None,
    };
    let shared = proxies::telemetry(
        &config,
        &sink,
        &sampler,
        access_log.as_ref(),
        register.as_ref(),
    );
    let proxies = build_proxies(&config, &material, &metrics, shared, &instance);
    let (stop_proxies, proxies_stopped) = signal();
    let mut outbound = bound.outbound;
    let postgres_listeners = outbound.split_off(config.outbound.routes.len().min(outbound.len()));
    let postgres_tasks = postgres::spawn_routes(
        &config,
        postgres_listeners,
        &metrics,
        &sink,
        &sampler,
        register,
        &proxies_stopped,
    );
    drop(sink);
    let (inbound_tls, reloader) = material
        .inbound
        .map(|inbound| inbound.start(&metrics.tls))
        .unzip();

    let (stop_export, export_stopped) = signal();
    let (stop_admin, admin_stopped) = signal();
    let forward_addr = bound
        .forward_proxy
        .as_ref()
        .and_then(|l| l.local_addr().ok());
    let listeners = std::iter::once(bound.inbound)
        .chain(outbound)
        .chain(bound.forward_proxy);
    let mut proxy_tasks = spawn_proxies(listeners, proxies, inbound_tls, &proxies_stopped);
    proxy_tasks.extend(postgres_tasks);
    let reload_task = reloader.map(|r| tokio::spawn(r.run(proxies_stopped())));
    let export_stopped: export::StopSignal = Arc::new(export_stopped);
    let export_tasks = export_tasks
        .into_iter()
        .map(|task| tokio::spawn(task.run(export_stopped.clone())))
        .collect();
    let admin = Admin {
        metrics: metrics.clone(),
        readiness: readiness.clone(),
    };
    let admin_task = tokio::spawn(server::serve(
        bound.admin,
        ServerOptions::default(),
        move |request, _conn| {
            let response = admin.handle(&request);
            async move { response }
        },
        admin_stopped(),
    ));
    readiness.set(true);

    let (stop, stop_rx) = watch::channel(false);
    let supervisor = tokio::spawn(supervise(Supervised {
        stop_rx,
        readiness: readiness.clone(),
        drain_delay: config.shutdown.drain_delay,
        export_deadline: export_deadline(&config),
        stop_proxies,
        proxy_tasks,
        reload_task,
        stop_export,
        export_tasks,
        stop_admin,
        admin_task,
    }));
    Running {
        inbound_addr,
        admin_addr,
        outbound_addrs,
        forward_proxy_addr: forward_addr,
        metrics,
        readiness,
        sampler,
        started,
        instance,
        access_writer,
        stop,
        supervisor,
    }
}

fn export_deadline(config: &Config) -> Duration {
    match &config.export {
        // Each batcher bounds its own flush (they run at the same time); the
        // margin covers a request in flight.
        ExportConfig::Enabled(e) => e.shutdown_timeout + e.timeout + Duration::from_secs(1),
        ExportConfig::Disabled => Duration::from_secs(1),
    }
}

/// What the shutdown supervisor stops, in order.
struct Supervised {
    stop_rx: watch::Receiver<bool>,
    readiness: Readiness,
    drain_delay: Duration,
    export_deadline: Duration,
    stop_proxies: watch::Sender<bool>,
    proxy_tasks: Vec<JoinHandle<()>>,
    /// The inbound certificate reloader; stops with the listeners.
    reload_task: Option<JoinHandle<()>>,
    stop_export: watch::Sender<bool>,
    /// One batcher per collector endpoint, or a DNS discovery task per
    /// exporter (which owns its endpoints' batchers).
    export_tasks: Vec<JoinHandle<()>>,
    stop_admin: watch::Sender<bool>,
    admin_task: JoinHandle<()>,
}

async fn supervise(mut s: Supervised) {
    let _ = s.stop_rx.wait_for(|stop| *stop).await;
    s.readiness.set(false);
    tracing::info!(drain_delay = ?s.drain_delay, "shutting down: readiness failing");
    tokio::time::sleep(s.drain_delay).await;
    s.stop_proxies.send_replace(true);
    for task in s.proxy_tasks.into_iter().chain(s.reload_task) {
        let _ = task.await;
    }
    tracing::info!("listeners closed; flushing spans");
    s.stop_export.send_replace(true);
    let deadline = tokio::time::Instant::now() + s.export_deadline;
    for task in s.export_tasks {
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            tracing::warn!("span export did not finish in time");
        }
    }
    s.stop_admin.send_replace(true);
    let _ = s.admin_task.await;
    tracing::info!("stopped");
}
