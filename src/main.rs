//! The `tracehop` binary: parse the command line, set up logging, call the
//! library, map failures to exit codes (64 = configuration error).

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracehop::config::{self, Config, LogFormat, Overrides};

use cli::{Cli, Command, RunArgs};

/// Exit code for configuration errors (sysexits.h EX_USAGE).
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Run(args) => run(args),
    }
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
    let config = match read_config(args.config.as_deref(), overrides) {
        Ok(config) => config,
        Err(code) => return code,
    };
    init_logging(config.log.format, &config.log.level);
    match runtime().and_then(|rt| rt.block_on(serve(config))) {
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

async fn serve(config: Config) -> anyhow::Result<()> {
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
    wait_for_signal().await?;
    running.shutdown();
    running.wait().await;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
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
