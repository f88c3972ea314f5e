//! Live reload of the `sampling:` section while `tracehop run` serves.
//!
//! [`serve_until_stopped`] waits for SIGTERM or SIGINT; meanwhile, on
//! SIGHUP and whenever the config file's modification time changes
//! (checked every [`RELOAD_POLL`]), it re-reads the file and swaps in its
//! sampling section ([`Running::reload_sampling`]). A file that cannot be
//! read or does not validate is logged with every problem, and the running
//! sampler stays. Other sections need a restart.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::Running;
use super::signals::{Request, SignalError, Signals};
use crate::config::{ConfigErrors, Overrides};

/// How often the config file's modification time is checked.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// The file `run` was started with, and what to apply on top of it again.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// The overrides given at start (flags, environment), applied again on
    /// every reload so that, e.g., `--sample-ratio` still wins.
    pub overrides: Overrides,
}

/// Why a reload left the running sampler in place.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot read the file: {0}")]
    Read(#[source] io::Error),
    #[error("{0}")]
    Rejected(ConfigErrors),
}

/// Serves until SIGTERM or SIGINT; meanwhile reloads the sampling section
/// from `file` on SIGHUP and when the file changes. Without a file, SIGHUP
/// is only logged.
pub async fn serve_until_stopped(
    running: &Running,
    file: Option<ConfigFile>,
) -> Result<(), SignalError> {
    let mut signals = Signals::listen(true)?;
    let mut poll = tokio::time::interval(RELOAD_POLL);
    let mut watched = file.map(|file| (FileWatch::new(file.path.clone(), modified), file));
    loop {
        tokio::select! {
            request = signals.next() => match (request, &mut watched) {
                (Request::Stop, _) => return Ok(()),
                (Request::Reload, Some((watch, file))) => {
                    // The poll must not reload the same change a second time.
                    watch.mark_seen();
                    reload(running, file);
                }
                (Request::Reload, None) => {
                    tracing::warn!("SIGHUP received, but no config file to reload");
                }
            },
            _ = poll.tick(), if watched.is_some() => {
                if let Some((watch, file)) = &mut watched
                    && watch.changed()
                {
                    reload(running, file);
                }
            }
        }
    }
}

/// The file's modification time; `None` while it cannot be read.
fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Notices a new modification time of a file. `modified` is the check
/// (the file system in [`serve_until_stopped`], a fake in tests).
struct FileWatch<F> {
    path: PathBuf,
    modified: F,
    seen: Option<SystemTime>,
}

impl<F: Fn(&Path) -> Option<SystemTime>> FileWatch<F> {
    /// Starts with the file's current modification time as seen.
    fn new(path: PathBuf, modified: F) -> Self {
        let seen = modified(&path);
        Self {
            path,
            modified,
            seen,
        }
    }

    /// True once per modification time not seen before. A file that is
    /// missing for the moment (an editor replacing it) is no change.
    fn changed(&mut self) -> bool {
        let now = (self.modified)(&self.path);
        if now.is_some() && now != self.seen {
            self.seen = now;
            return true;
        }
        false
    }

    /// Takes the current modification time as seen (after a reload for
    /// another reason).
    fn mark_seen(&mut self) {
        self.seen = (self.modified)(&self.path);
    }
}

/// Re-reads the file and swaps in its sampling section; logs the outcome
/// (this is where a failed reload is handled).
fn reload(running: &Running, file: &ConfigFile) {
    let path = file.path.display();
    match apply(running, file, |path| std::fs::read_to_string(path)) {
        Ok(restart) if restart.is_empty() => {
            tracing::info!(file = %path, "sampling configuration reloaded");
        }
        Ok(restart) => tracing::warn!(
            file = %path,
            "sampling configuration reloaded; these changes need a restart and are not applied: {}",
            restart.join(", ")
        ),
        Err(ReloadError::Read(error)) => tracing::error!(
            file = %path,
            %error,
            "config reload failed: cannot read the file"
        ),
        Err(ReloadError::Rejected(errors)) => tracing::error!(
            file = %path,
            "config reload rejected, keeping the current sampling configuration: {errors}"
        ),
    }
}

/// Reads the file with `read` and applies its sampling section; the keys
/// changed elsewhere, which need a restart.
fn apply(
    running: &Running,
    file: &ConfigFile,
    read: impl FnOnce(&Path) -> io::Result<String>,
) -> Result<Vec<String>, ReloadError> {
    let text = read(&file.path).map_err(ReloadError::Read)?;
    running
        .reload_sampling(&text, file.overrides.clone())
        .map_err(ReloadError::Rejected)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Instant;

    use http::{HeaderMap, Method};

    use super::*;
    use crate::config;
    use crate::sampling::RequestFacts;
    use crate::span::{Sampling, TraceId};

    #[test]
    fn file_watch_reports_each_new_modification_time_once() {
        let t = |secs| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        let now = Cell::new(t(1));
        let mut watch = FileWatch::new("tracehop.yaml".into(), |_: &Path| now.get());
        // (modification time now, changed?)
        let steps = [
            (t(1), false), // as at start
            (t(2), true),  // edited
            (t(2), false), // the same edit is reported once
            (None, false), // missing for a moment (replaced by an editor)
            (t(2), false), // back with the same time: nothing new
            (t(1), true),  // any other time counts, even an older one
        ];
        for (i, (time, want)) in steps.into_iter().enumerate() {
            now.set(time);
            assert_eq!(watch.changed(), want, "step {i}: {time:?}");
        }
    }

    #[test]
    fn file_watch_skips_a_change_already_reloaded() {
        let now = Cell::new(Some(SystemTime::UNIX_EPOCH));
        let mut watch = FileWatch::new("tracehop.yaml".into(), |_: &Path| now.get());
        now.set(Some(SystemTime::UNIX_EPOCH + Duration::from_secs(5)));
        // SIGHUP reloaded the edit; the next poll must not reload it again.
        watch.mark_seen();
        assert!(!watch.changed());
    }

    /// The sidecar under test: every listener on port 0, export off.
    const BASE: &str = "inbound: {listen: \"127.0.0.1:0\", upstream: \"http://127.0.0.1:1\"}\n\
                        admin: {listen: \"127.0.0.1:0\"}\nexport: {enabled: false}\n";

    async fn sidecar(sampling: &str) -> Running {
        let text = format!("{BASE}{sampling}");
        let config = config::load(&text, Overrides::default()).expect("valid test config");
        super::super::start(config).await.expect("sidecar starts")
    }

    async fn stop(running: Running) {
        running.shutdown();
        tokio::time::timeout(Duration::from_secs(10), running.wait())
            .await
            .expect("sidecar stops within the deadline");
    }

    /// Whether the running sampler samples a new trace for `GET /`.
    fn samples(running: &Running) -> bool {
        let (method, headers) = (Method::GET, HeaderMap::new());
        let facts = RequestFacts {
            method: &method,
            path: "/",
            headers: &headers,
        };
        let decision = running.sampler.load().decide(
            Sampling::Deferred,
            TraceId::random(),
            &facts,
            Instant::now(),
        );
        decision.sampling.is_sampled()
    }

    fn file(overrides: Overrides) -> ConfigFile {
        ConfigFile {
            path: "/etc/tracehop/config.yaml".into(),
            overrides,
        }
    }

    fn text(sampling: &str) -> impl FnOnce(&Path) -> io::Result<String> {
        let text = format!("{BASE}{sampling}");
        move |path| {
            assert_eq!(path, Path::new("/etc/tracehop/config.yaml"));
            Ok(text)
        }
    }

    #[tokio::test]
    async fn a_valid_file_replaces_the_sampler() {
        let running = sidecar("sampling: {root: {type: always}}\n").await;
        assert!(samples(&running));
        apply(
            &running,
            &file(Overrides::default()),
            text("sampling: {root: {type: never}}\n"),
        )
        .expect("valid reload");
        assert!(!samples(&running));
        stop(running).await;
    }

    #[tokio::test]
    async fn a_bad_file_is_rejected_with_every_problem_and_the_sampler_stays() {
        let running = sidecar("sampling: {root: {type: never}}\n").await;
        let bad = "sampling:\n  root: {type: ratio, ratio: 3}\n  rules: [{name: x}]\n";
        let error =
            apply(&running, &file(Overrides::default()), text(bad)).expect_err("invalid reload");
        let ReloadError::Rejected(errors) = error else {
            panic!("expected a rejection, got {error}")
        };
        for path in ["sampling.root.ratio", "sampling.rules[0].sampler"] {
            assert!(errors.has(path), "missing {path} in {errors}");
        }
        assert!(!samples(&running), "the old sampler stays");
        stop(running).await;
    }

    #[tokio::test]
    async fn an_unreadable_file_keeps_the_sampler() {
        let running = sidecar("sampling: {root: {type: never}}\n").await;
        let missing = |_: &Path| Err(io::Error::from(io::ErrorKind::NotFound));
        let error =
            apply(&running, &file(Overrides::default()), missing).expect_err("nothing to read");
        assert!(matches!(error, ReloadError::Read(_)), "{error}");
        assert!(!samples(&running));
        stop(running).await;
    }

    #[tokio::test]
    async fn the_start_overrides_win_over_the_reloaded_file() {
        let running = sidecar("sampling: {root: {type: never}}\n").await;
        let ratio_one = Overrides {
            sample_ratio: Some(1.0),
            ..Overrides::default()
        };
        apply(
            &running,
            &file(ratio_one),
            text("sampling: {root: {type: never}}\n"),
        )
        .expect("valid reload");
        assert!(samples(&running), "--sample-ratio 1 beats the file's never");
        stop(running).await;
    }
}
