//! Command-line interface: subcommands and flags.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Zipkin collector URL (export.zipkin).
    #[arg(long)]
    pub zipkin: Option<String>,
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
}
