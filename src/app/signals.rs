//! Process signals: SIGTERM and SIGINT (Ctrl-C) ask to stop, SIGHUP asks
//! to reload.
//!
//! Owns the signal streams; [`super::reload`] waits on them while it
//! watches the config file. A command that does not reload listens for the
//! stop signals only ([`stop_requested`]), so SIGHUP keeps its default
//! action there.

use tokio::signal::unix::{Signal as Stream, SignalKind, signal};

/// A signal handler could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for {signal}: {source}")]
pub struct SignalError {
    pub signal: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// What a received signal asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Stop,
    Reload,
}

fn listen(kind: SignalKind, name: &'static str) -> Result<Stream, SignalError> {
    signal(kind).map_err(|source| SignalError {
        signal: name,
        source,
    })
}

/// The stop signals, and SIGHUP when `reload` is asked for.
pub struct Signals {
    term: Stream,
    int: Stream,
    hup: Option<Stream>,
}

impl Signals {
    /// Installs the handlers; with `reload`, SIGHUP is caught too.
    pub fn listen(reload: bool) -> Result<Self, SignalError> {
        Ok(Self {
            term: listen(SignalKind::terminate(), "SIGTERM")?,
            int: listen(SignalKind::interrupt(), "SIGINT")?,
            hup: if reload {
                Some(listen(SignalKind::hangup(), "SIGHUP")?)
            } else {
                None
            },
        })
    }

    /// The next signal; logs which one it was.
    pub async fn next(&mut self) -> Request {
        let Self { term, int, hup } = self;
        let hup = async {
            match hup {
                Some(hup) => hup.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM received");
                Request::Stop
            }
            _ = int.recv() => {
                tracing::info!("SIGINT received");
                Request::Stop
            }
            _ = hup => Request::Reload,
        }
    }

    /// Resolves on the first SIGTERM or SIGINT.
    pub async fn stopped(mut self) {
        while self.next().await != Request::Stop {}
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C); for the commands without reload.
pub async fn stop_requested() -> Result<(), SignalError> {
    Signals::listen(false)?.stopped().await;
    Ok(())
}
