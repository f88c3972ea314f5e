//! Runs the embedded collector and trace viewer on its own, with the same
//! flags as `tracehop collector`:
//!
//! ```text
//! cargo run --example collector -- --listen 127.0.0.1:9411 --max-spans 100000
//! ```
//!
//! Stops on Ctrl-C.

use std::net::SocketAddr;

use clap::Parser;
use tokio::net::TcpListener;
use tracehop::collector::{self, Collector, CollectorConfig, DEFAULT_MAX_SPANS};

/// Embedded Zipkin-compatible collector with a trace viewer.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9411")]
    listen: SocketAddr,
    /// Most spans kept in memory; whole oldest traces are evicted beyond it.
    #[arg(long, default_value_t = DEFAULT_MAX_SPANS)]
    max_spans: usize,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(args.listen).await?;
    println!("collector: http://{}/", listener.local_addr()?);
    let collector = Collector::new(CollectorConfig {
        max_spans: args.max_spans,
    });
    collector::serve(collector, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
