//! The `tracehop` binary: parse the command line, set up logging, call the
//! library, map failures to exit codes (64 = configuration error). While
//! running, reload the sampling section on SIGHUP or a config file change.

#![forbid(unsafe_code)]

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Parser;
use tracehop::app::Running;
use tracehop::config::{self, Config, LogFormat, Overrides};

use cli::{Cli, CollectorArgs, Command, DemoAppArgs, DemoArgs, RunArgs};

/// Exit code for configuration errors (sysexits.h EX_USAGE).
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Run(args) => run(args),
        Command::Collector(args) => with_runtime(collector(args)),
        Command::Demo(args) => with_runtime(demo(args)),
        Command::DemoApp(args) => with_runtime(demo_app(args)),
    }
}

/// Runs a command that needs only default logging.
fn with_runtime(command: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    init_logging(LogFormat::Text, "info");
    match runtime().and_then(|rt| rt.block_on(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn collector(args: CollectorArgs) -> anyhow::Result<()> {
    use tracehop::collector::CollectorConfig;
    let forward = match &args.forward {
        Some(url) => {
            Some(config::export_defaults_for(url).map_err(|e| anyhow::anyhow!("--forward: {e}"))?)
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        "collector listening: POST http://{addr}/api/v2/spans, viewer at http://{addr}/"
    );
    if let Some(url) = &args.forward {
        tracing::info!(forward = %url, "relaying received spans");
    }
    let config = CollectorConfig {
        max_spans: args.max_spans,
    };
    let signal = wait_for_signal();
    tracehop::app::serve_collector(listener, config, forward, async move {
        let _ = signal.await;
    })
    .await?;
    Ok(())
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    use tracehop::app::{DemoSettings, start_demo};
    let demo = start_demo(DemoSettings {
        base_port: args.base_port,
        propagate: !args.no_propagation,
        latency: true,
    })
    .await?;
    let gateway = demo.gateway;
    println!("tracehop demo is running. Try:");
    println!(
        "  curl http://{gateway}/api/orders/1001      (gateway -> order-service -> user-service)"
    );
    println!("  curl http://{gateway}/api/users/1");
    println!("  curl 'http://{gateway}/api/orders/1001?fail=1'   (an error trace)");
    println!("  curl 'http://{gateway}/api/orders/1001?delay=300ms'   (a slow trace)");
    println!("Trace viewer:  http://{}/", demo.collector_addr);
    for (name, sidecar) in &demo.sidecars {
        println!(
            "{name:>14} sidecar metrics: http://{}/metrics",
            sidecar.admin_addr
        );
    }
    println!("Press Ctrl-C to stop.");
    let (stop_load, load_stopped) = tokio::sync::oneshot::channel::<()>();
    let load = (args.load > 0).then(|| {
        println!("Sending {} requests/s to the gateway.", args.load);
        let uri: http::Uri = format!("http://{gateway}")
            .parse()
            .expect("socket address URI");
        tokio::spawn(tracehop::demo::generate_load(uri, args.load, async move {
            let _ = load_stopped.await;
        }))
    });
    wait_for_signal().await?;
    let _ = stop_load.send(());
    if let Some(load) = load {
        println!("load: {}", load.await?);
    }
    demo.shutdown().await;
    println!("demo stopped");
    Ok(())
}

async fn demo_app(args: DemoAppArgs) -> anyhow::Result<()> {
    use tracehop::demo::{DemoApp, DemoOptions, serve_app};
    let app = DemoApp::parse(&args.name).with_context(|| {
        format!(
            "unknown demo app {:?}: use api-gateway, user-service or order-service",
            args.name
        )
    })?;
    let mut upstreams = Vec::new();
    for pair in &args.upstreams {
        let (name, url) = pair
            .split_once('=')
            .with_context(|| format!("--upstream {pair:?}: write NAME=URL"))?;
        upstreams.push((name.to_owned(), url.to_owned()));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(app = app.name(), listen = %args.listen, "demo app listening");
    let options = DemoOptions {
        upstreams,
        propagate: !args.no_propagation,
        latency: true,
    };
    let signal = wait_for_signal();
    serve_app(app, options, listener, async move {
        let _ = signal.await;
    })
    .await?;
    Ok(())
}

fn read_config(file: Option<&std::path::Path>, overrides: Overrides) -> Result<Config, ExitCode> {
    let text = match file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                eprintln!("cannot read {}: {error}", path.display());
                return Err(ExitCode::from(EXIT_CONFIG));
            }
        },
        None => String::new(),
    };
    config::load(&text, overrides).map_err(|errors| {
        eprint!("{errors}");
        ExitCode::from(EXIT_CONFIG)
    })
}

fn env_overrides() -> Overrides {
    Overrides::from_env(|name| std::env::var(name).ok())
}

fn check_config(file: &std::path::Path) -> ExitCode {
    let config = match read_config(Some(file), env_overrides()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // The files and variables the config names must be usable too.
    match tracehop::tls::load_material(&config) {
        Ok(material) => {
            for warning in &material.warnings {
                eprintln!("warning: {warning}");
            }
            print!("{}", config.to_yaml());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRACEHOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn run(args: RunArgs) -> ExitCode {
    let mut overrides = env_overrides();
    overrides.listen = args.listen;
    overrides.upstream = args.upstream;
    overrides.zipkin = args.zipkin;
    overrides.admin = args.admin;
    if args.service_name.is_some() {
        overrides.service_name = args.service_name;
    }
    overrides.sample_ratio = args.sample_ratio;
    overrides.tls_cert = args.tls_cert;
    overrides.tls_key = args.tls_key;
    let config = match read_config(args.config.as_deref(), overrides.clone()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    init_logging(config.log.format, &config.log.level);
    let reload = args.config.map(|file| Reload { file, overrides });
    match runtime().and_then(|rt| rt.block_on(serve(config, reload))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            match error.downcast_ref::<tracehop::app::AppError>() {
                Some(tracehop::app::AppError::Material(_)) => ExitCode::from(EXIT_CONFIG),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// The async runtime. With one worker (`TOKIO_WORKER_THREADS=1`, or a
/// process allowed a single CPU, cgroup quota included) it is tokio's
/// current-thread scheduler: every task on the one thread, no hand-off
/// between threads, which saves a fifth of the CPU per proxied request.
/// More workers get the work-stealing scheduler, sized by the same variable.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let mut builder = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Where `run` re-reads the sampling section from on SIGHUP or a file change.
struct Reload {
    file: PathBuf,
    /// The overrides given at start, applied again on every reload.
    overrides: Overrides,
}

/// How often the config file's modification time is checked.
const RELOAD_POLL: Duration = Duration::from_secs(2);

async fn serve(config: Config, reload: Option<Reload>) -> anyhow::Result<()> {
    let service = config.service.name.clone();
    let upstream = config.inbound.upstream.authority.clone();
    let running = tracehop::app::start(config).await?;
    tracing::info!(
        service = %service,
        inbound = %running.inbound_addr,
        upstream = %upstream,
        admin = %running.admin_addr,
        "tracehop listening"
    );
    for (route, addr) in &running.outbound_addrs {
        tracing::info!(route = %route, listen = %addr, "outbound route listening");
    }
    wait_for_stop(&running, reload).await?;
    running.shutdown();
    running.wait().await;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C); meanwhile reloads the sampling
/// section on SIGHUP and when the config file's modification time changes.
async fn wait_for_stop(running: &Running, reload: Option<Reload>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let mut poll = tokio::time::interval(RELOAD_POLL);
    let mut seen = reload.as_ref().and_then(|r| modified(&r.file));
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM received");
                return Ok(());
            }
            _ = int.recv() => {
                tracing::info!("SIGINT received");
                return Ok(());
            }
            _ = hup.recv() => match &reload {
                Some(reload) => {
                    // The poll must not reload the same change a second time.
                    seen = modified(&reload.file);
                    reload_sampling(running, reload);
                }
                None => tracing::warn!("SIGHUP received, but no config file to reload"),
            },
            _ = poll.tick(), if reload.is_some() => {
                let Some(reload) = &reload else { continue };
                let now = modified(&reload.file);
                if now.is_some() && now != seen {
                    seen = now;
                    reload_sampling(running, reload);
                }
            }
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C); for the commands without reload.
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

fn modified(file: &Path) -> Option<SystemTime> {
    std::fs::metadata(file).and_then(|m| m.modified()).ok()
}

/// Re-reads the file and swaps in its sampling section; logs the outcome.
fn reload_sampling(running: &Running, reload: &Reload) {
    let text = match std::fs::read_to_string(&reload.file) {
        Ok(text) => text,
        Err(error) => {
            tracing::error!(file = %reload.file.display(), %error, "config reload failed: cannot read the file");
            return;
        }
    };
    match running.reload_sampling(&text, reload.overrides.clone()) {
        Ok(()) => tracing::info!(file = %reload.file.display(), "sampling configuration reloaded"),
        Err(errors) => tracing::error!(
            file = %reload.file.display(),
            "config reload rejected, keeping the current sampling configuration: {errors}"
        ),
    }
}
