//! The `tracehop` binary: parse the command line, set up logging, call the
//! library, map failures to exit codes (64 = configuration error).
//!
//! Everything that runs (listeners, the sampling reload loop, signal
//! handling, the demo's load generator) is started and owned by
//! [`tracehop::app`].

// One function calls into the allocator (`release_free_memory`); nothing
// else may use unsafe code.
#![deny(unsafe_code)]

mod cli;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tracehop::app::{self, AppError, ConfigFile};
use tracehop::config::{self, Config, LogFormat, Overrides};

use cli::{Cli, Command, DemoArgs, RunArgs};

/// Exit code for configuration errors (sysexits.h EX_USAGE).
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Run(args) => run(args),
        Command::Collector(args) => collector(&args),
        Command::Dev(args) => {
            // The terminal is for the summary lines: warnings and errors only.
            init_logging(LogFormat::Text, "warn");
            block_on(async move { Ok(app::run_dev(args.settings()).await?) })
        }
        Command::Demo(args) => with_runtime(demo(args)),
        Command::DemoApp(args) => with_runtime(async move {
            Ok(app::run_demo_app(args.app()?, args.options()?, args.listen).await?)
        }),
    }
}

/// `tracehop collector`: reads its config files (every problem reported,
/// exit 64), checks the `--forward` URL as `run` checks its config, serves.
fn collector(args: &cli::CollectorArgs) -> ExitCode {
    let file = match read_collector_file(args.config.as_deref(), config::load_collector) {
        Ok(file) => file.unwrap_or_default(),
        Err(code) => return code,
    };
    let tail = match read_collector_file(args.tail_sampling.as_deref(), config::load_tail_sampling)
    {
        Ok(tail) => tail,
        Err(code) => return code,
    };
    let settings = args.settings(file, tail);
    if let Some(url) = settings.forward.as_deref()
        && let Err(errors) = config::export_defaults_for(url)
    {
        for error in &errors.0 {
            eprintln!("invalid --forward: {}", error.message);
        }
        return ExitCode::from(EXIT_CONFIG);
    }
    with_runtime(async move {
        let forward = settings.forward.as_deref();
        Ok(app::run_collector(settings.listen, settings.config, forward).await?)
    })
}

/// Reads and loads one of the collector's YAML files, when given; a file
/// that cannot be read or is invalid is reported with its name.
fn read_collector_file<T>(
    path: Option<&Path>,
    load: fn(&str) -> Result<T, config::ConfigErrors>,
) -> Result<Option<T>, ExitCode> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|error| {
        eprintln!("cannot read {}: {error}", path.display());
        ExitCode::from(EXIT_CONFIG)
    })?;
    load(&text).map(Some).map_err(|errors| {
        eprint!("{}: {errors}", path.display());
        ExitCode::from(EXIT_CONFIG)
    })
}

/// Runs a command that needs only default logging.
fn with_runtime(command: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    init_logging(LogFormat::Text, "info");
    block_on(command)
}

/// Runs `command` to completion; a failure is logged and exits 1, or 64
/// when files or variables the config names are unusable.
fn block_on(command: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let workers = std::env::var("TOKIO_WORKER_THREADS").ok();
    let runtime = app::runtime(workers.as_deref(), Some(release_free_memory))
        .context("cannot start the async runtime");
    let Err(error) = runtime.and_then(|rt| rt.block_on(command)) else {
        return ExitCode::SUCCESS;
    };
    tracing::error!("{error:#}");
    match error.downcast_ref::<AppError>() {
        Some(AppError::Material(_)) => ExitCode::from(EXIT_CONFIG),
        _ => ExitCode::FAILURE,
    }
}

/// Gives the calling thread's free memory back to the operating system:
/// mimalloc purges the pages it freed (the runtime calls this when a thread
/// goes idle, at most once a second; `app::runtime`).
#[allow(unsafe_code)]
fn release_free_memory() {
    // SAFETY: `mi_collect` takes no pointers and has no preconditions; it
    // only frees what the calling thread's heap no longer uses.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let mut demo = app::start_demo(args.settings()).await?;
    print!("{}", demo.instructions());
    if args.load > 0 {
        println!("Sending {} requests/s to the gateway.", args.load);
        demo.start_load(args.load);
    }
    app::stop_requested().await?;
    if let Some(summary) = demo.stop_load().await {
        println!("load: {summary}");
        println!("parents: {}", demo.parent_summary());
    }
    demo.shutdown().await;
    println!("demo stopped");
    Ok(())
}

fn read_config(file: Option<&Path>, overrides: Overrides) -> Result<Config, ExitCode> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path).map_err(|error| {
            eprintln!("cannot read {}: {error}", path.display());
            ExitCode::from(EXIT_CONFIG)
        })?,
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

fn check_config(file: &Path) -> ExitCode {
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
        .with_ansi(colours_wanted())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Colours in the text log only on a terminal, and never with `NO_COLOR`
/// set to anything but empty (no-color.org).
fn colours_wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn run(args: RunArgs) -> ExitCode {
    let overrides = args.overrides(env_overrides());
    let config = match read_config(args.config.as_deref(), overrides.clone()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    init_logging(config.log.format, &config.log.level);
    let file = args.config.map(|path| ConfigFile { path, overrides });
    block_on(async move { Ok(app::run(config, file).await?) })
}
