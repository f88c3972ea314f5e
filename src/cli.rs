//! Command-line interface: subcommands, flags, and what they mean for the
//! library's settings (config overrides, collector and demo options).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracehop::app::DemoSettings;
use tracehop::collector::CollectorConfig;
use tracehop::config::{CollectorFile, Overrides, TailSampling};
use tracehop::demo::{DemoApp, DemoOptions};

/// A sidecar HTTP proxy that adds distributed tracing to services that have none.
#[derive(Debug, Parser)]
#[command(name = "tracehop", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the sidecar (flags override the matching config keys).
    Run(RunArgs),
    /// Validate a config file and print the effective configuration.
    CheckConfig {
        /// The YAML config file.
        file: PathBuf,
    },
    /// Run the embedded Zipkin-compatible collector and trace viewer.
    Collector(CollectorArgs),
    /// Trace a dev server: the sidecar in front of it and the collector with
    /// its viewer, in one process; every request traced and printed.
    Dev(DevArgs),
    /// Run the whole demo (collector, three services, their sidecars) on loopback.
    Demo(DemoArgs),
    /// Run one demo service alone (as in the Kubernetes manifests).
    DemoApp(DemoAppArgs),
}

#[derive(Debug, clap::Args)]
pub struct CollectorArgs {
    /// Address to listen on (API at /api/v2, viewer at /, metrics at
    /// /metrics) [default: 127.0.0.1:9411].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Most spans kept in memory; whole oldest traces are evicted beyond it
    /// [default: 500000].
    #[arg(long)]
    pub max_spans: Option<usize>,
    /// Memory the stored spans and the tail-sampling buffer may use, e.g.
    /// 256MiB or 1GiB; whole oldest traces are evicted beyond it
    /// [default: 256MiB].
    #[arg(long, value_name = "SIZE", value_parser = positive_size)]
    pub max_memory: Option<usize>,
    /// Also relay every accepted batch (with tail sampling, every kept
    /// trace) to this Zipkin-compatible URL, e.g.
    /// http://zipkin:9411/api/v2/spans (Zipkin, Jaeger, Tempo).
    #[arg(long, value_name = "URL")]
    pub forward: Option<String>,
    /// Tail sampling: a YAML file with decision_wait, max_traces,
    /// decision_cache and policies (overrides tail_sampling in --config).
    #[arg(long, value_name = "FILE")]
    pub tail_sampling: Option<PathBuf>,
    /// A YAML config file: listen, max_memory, max_spans, forward,
    /// tail_sampling. Flags override its keys.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The collector's effective settings: flags over the config file over
/// built-in defaults.
pub struct CollectorSettings {
    pub listen: SocketAddr,
    pub config: CollectorConfig,
    pub forward: Option<String>,
}

/// `--max-memory`: a size in bytes greater than zero.
fn positive_size(text: &str) -> Result<usize, String> {
    match tracehop::config::parse_byte_size(text)? {
        0 => Err("must be greater than zero".to_owned()),
        bytes => Ok(bytes),
    }
}

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// The dev server: a port (3000), an address (localhost:5173) or a URL.
    pub upstream: String,
    /// Where the sidecar listens; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The collector and trace viewer; a free port when this one is taken.
    #[arg(long, default_value = "127.0.0.1:9411")]
    pub collector: SocketAddr,
    /// Service name on the spans.
    #[arg(long, default_value = "dev-app", env = "TRACEHOP_SERVICE_NAME")]
    pub service_name: String,
    /// Also let the app's HTTP_PROXY calls reach this host (host:port,
    /// *.suffix:port or host:*); loopback is always allowed. Repeatable.
    #[arg(long, value_name = "HOST:PORT")]
    pub allow: Vec<String>,
}

impl DevArgs {
    pub fn settings(&self) -> tracehop::app::DevSettings {
        tracehop::app::DevSettings {
            target: self.upstream.clone(),
            listen: self.listen,
            collector: self.collector,
            service_name: self.service_name.clone(),
            allow: self.allow.clone(),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// First port of the range the demo uses (base .. base+42).
    #[arg(long, default_value_t = 8000)]
    pub base_port: u16,
    /// Send this many requests per second to the gateway (0: none).
    #[arg(long, default_value_t = 0)]
    pub load: u32,
    /// Make the apps drop trace headers, to see what broken propagation looks like.
    #[arg(long)]
    pub no_propagation: bool,
    /// Back user-service with this PostgreSQL database (it creates and
    /// seeds its `users` table), reached through user-service's sidecar
    /// (a postgres route), e.g. postgres://user:password@127.0.0.1:5432/db.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct DemoAppArgs {
    /// api-gateway, user-service or order-service.
    pub name: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// A dependency's base URL, NAME=URL (repeatable), e.g. user-service=http://127.0.0.1:15001.
    #[arg(long = "upstream", value_name = "NAME=URL")]
    pub upstreams: Vec<String>,
    /// Do not copy trace headers onto outgoing calls.
    #[arg(long)]
    pub no_propagation: bool,
    /// user-service only: read users from this PostgreSQL database
    /// (created and seeded when missing), e.g. through the sidecar's
    /// postgres route: postgres://demo:demo@127.0.0.1:15432/demo.
    #[arg(long, value_name = "URL", env = "TRACEHOP_DEMO_POSTGRES")]
    pub postgres: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// YAML config file (optional: flags and defaults suffice for local use).
    #[arg(long, env = "TRACEHOP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Inbound listen address (inbound.listen), e.g. 127.0.0.1:8000.
    #[arg(long)]
    pub listen: Option<String>,
    /// The app behind the sidecar (inbound.upstream), e.g. http://127.0.0.1:3000.
    #[arg(long)]
    pub upstream: Option<String>,
    /// Zipkin collector URL (export.zipkin); repeat it or give a comma list
    /// for several collectors (each trace goes to one of them).
    #[arg(long, value_delimiter = ',')]
    pub zipkin: Vec<String>,
    /// OTLP/HTTP traces URL (export.otlp), e.g. http://otel-collector:4318/v1/traces;
    /// repeat it or give a comma list for several. With --zipkin (or
    /// export.zipkin in the file) spans go to both.
    #[arg(long, value_delimiter = ',')]
    pub otlp: Vec<String>,
    /// Admin listen address (admin.listen).
    #[arg(long)]
    pub admin: Option<String>,
    /// Service name on spans (service.name).
    #[arg(long)]
    pub service_name: Option<String>,
    /// Sample this share of new traces, 0 to 1 (sampling.root ratio).
    #[arg(long)]
    pub sample_ratio: Option<f64>,
    /// Serve TLS on the inbound listener with this PEM certificate chain
    /// (inbound.tls.cert); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<String>,
    /// The PEM private key of --tls-cert (inbound.tls.key).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<String>,
    /// Connect outbound calls without trace context to the inbound request
    /// that caused them when timing proves it (inference.parents).
    #[arg(long, value_name = "MODE", value_parser = ["unambiguous", "off"])]
    pub infer_parents: Option<String>,
}

impl RunArgs {
    /// `base` (the environment) with the flags given on top.
    pub fn overrides(&self, base: Overrides) -> Overrides {
        Overrides {
            listen: self.listen.clone(),
            upstream: self.upstream.clone(),
            zipkin: self.zipkin.clone(),
            otlp: self.otlp.clone(),
            admin: self.admin.clone(),
            service_name: self.service_name.clone().or(base.service_name),
            sample_ratio: self.sample_ratio,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            infer_parents: self.infer_parents.clone(),
            ..base
        }
    }
}

impl CollectorArgs {
    /// Settings from the flags over `file` (`--config`) and `tail`
    /// (`--tail-sampling`, over the file's `tail_sampling`).
    pub fn settings(&self, file: CollectorFile, tail: Option<TailSampling>) -> CollectorSettings {
        let default_listen = SocketAddr::from(([127, 0, 0, 1], 9411));
        CollectorSettings {
            listen: self.listen.or(file.listen).unwrap_or(default_listen),
            config: CollectorConfig {
                max_spans: self
                    .max_spans
                    .or(file.max_spans)
                    .unwrap_or(tracehop::collector::DEFAULT_MAX_SPANS),
                max_memory: self
                    .max_memory
                    .or(file.max_memory)
                    .unwrap_or(tracehop::collector::DEFAULT_MAX_MEMORY),
                tail_sampling: tail.or(file.tail_sampling),
            },
            forward: self.forward.clone().or(file.forward),
        }
    }
}

impl DemoArgs {
    pub fn settings(&self) -> DemoSettings {
        DemoSettings {
            base_port: self.base_port,
            propagate: !self.no_propagation,
            latency: true,
            postgres: self.postgres.clone(),
        }
    }
}

impl DemoAppArgs {
    /// The demo app named on the command line.
    pub fn app(&self) -> anyhow::Result<DemoApp> {
        DemoApp::parse(&self.name).with_context(|| {
            format!(
                "unknown demo app {:?}: use api-gateway, user-service or order-service",
                self.name
            )
        })
    }

    /// How the app runs: its `--upstream NAME=URL` pairs and flags.
    pub fn options(&self) -> anyhow::Result<DemoOptions> {
        let mut upstreams = Vec::with_capacity(self.upstreams.len());
        for pair in &self.upstreams {
            let (name, url) = pair
                .split_once('=')
                .with_context(|| format!("--upstream {pair:?}: write NAME=URL"))?;
            upstreams.push((name.to_owned(), url.to_owned()));
        }
        let database = self
            .postgres
            .as_deref()
            .map(|url| {
                url.parse().with_context(|| {
                    format!("--postgres {url:?}: write postgres://user:password@host:port/db")
                })
            })
            .transpose()?;
        Ok(DemoOptions {
            upstreams,
            propagate: !self.no_propagation,
            latency: true,
            database,
        })
    }
}
