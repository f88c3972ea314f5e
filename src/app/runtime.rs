//! The async runtime every command runs on, sized to the CPUs the process
//! may use, and the return of freed memory to the operating system.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::runtime::{Builder, Runtime};
use tokio::time::MissedTickBehavior;

/// Gives the allocator's free memory back to the operating system, on the
/// calling thread. The binary supplies it: the library does not know which
/// allocator the binary uses.
pub type Release = fn();

/// How often each runtime thread returns its free memory, when it next goes
/// idle.
pub const RELEASE_EVERY: Duration = Duration::from_secs(1);

/// Bumped every [`RELEASE_EVERY`]; a thread that goes idle having seen an
/// older value releases.
static GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The generation this thread last released in.
    static RELEASED_IN: Cell<u64> = const { Cell::new(0) };
}

/// The async runtime. `worker_threads` is the value of
/// `TOKIO_WORKER_THREADS` (read by `main`); without a usable one, one
/// worker per CPU the process may use, cgroup quota included. With one
/// worker it is tokio's current-thread scheduler: every task on the one
/// thread, no hand-off between threads, which saves a fifth of the CPU per
/// proxied request. More workers get the work-stealing scheduler.
///
/// With `release`, each runtime thread calls it at most once per
/// [`RELEASE_EVERY`], just before it goes idle. The allocator keeps the
/// pages a burst of requests freed for its next allocations on the same
/// thread; a sidecar that goes quiet after the burst would keep them
/// resident (10,000 connections opened at once left 38 MiB resident
/// instead of 21; bench/README.md, "memory after a burst"). A thread that
/// stays busy never goes idle and never pays for it; an idle thread is
/// woken once per [`RELEASE_EVERY`] by the ticker and releases then.
pub fn runtime(worker_threads: Option<&str>, release: Option<Release>) -> std::io::Result<Runtime> {
    let workers = worker_threads
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let mut builder = if workers <= 1 {
        Builder::new_current_thread()
    } else {
        let mut builder = Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    if let Some(release) = release {
        builder.on_thread_park(move || release_if_due(release));
    }
    let runtime = builder.enable_all().build()?;
    if release.is_some() {
        runtime.spawn(tick());
    }
    Ok(runtime)
}

/// Calls `release` if this thread has not since the generation last moved.
fn release_if_due(release: Release) {
    let now = GENERATION.load(Ordering::Relaxed);
    RELEASED_IN.with(|seen| {
        if seen.get() != now {
            seen.set(now);
            release();
        }
    });
}

/// Moves the generation every [`RELEASE_EVERY`], waking the thread it runs
/// on (which then goes idle again and releases).
async fn tick() {
    let mut every = tokio::time::interval(RELEASE_EVERY);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        GENERATION.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::runtime::RuntimeFlavor;
    use tokio::sync::Notify;

    use super::*;

    #[test]
    fn one_worker_gets_the_current_thread_scheduler() {
        let cases = [
            (Some("1"), RuntimeFlavor::CurrentThread),
            (Some(" 0 "), RuntimeFlavor::CurrentThread),
            (Some("2"), RuntimeFlavor::MultiThread),
        ];
        for (workers, want) in cases {
            let rt = runtime(workers, None).expect("runtime builds");
            assert_eq!(rt.handle().runtime_flavor(), want, "{workers:?}");
        }
    }

    static RELEASES: AtomicUsize = AtomicUsize::new(0);
    static RELEASED: Notify = Notify::const_new();
    fn count_release() {
        RELEASES.fetch_add(1, Ordering::Relaxed);
        RELEASED.notify_one();
    }

    #[test]
    fn an_idle_runtime_releases_about_once_per_interval() {
        // The only test that installs `count_release`: RELEASES is its own.
        let rt = runtime(Some("1"), Some(count_release)).expect("runtime builds");
        rt.block_on(async {
            // Busy parks (a timer firing every millisecond) release once
            // per generation, not once per park.
            let mut every = tokio::time::interval(Duration::from_millis(1));
            for _ in 0..200 {
                every.tick().await;
            }
        });
        let busy = RELEASES.load(Ordering::Relaxed);
        assert!(
            (1..=3).contains(&busy),
            "200 parks in 0.2 s released {busy} times"
        );
        // Idle, waiting for nothing but a release (2.5 intervals at most):
        // the ticker wakes the thread, which releases.
        rt.block_on(async {
            let deadline = tokio::time::Instant::now() + RELEASE_EVERY * 5 / 2;
            while RELEASES.load(Ordering::Relaxed) == busy {
                let _ = tokio::time::timeout_at(deadline, RELEASED.notified()).await;
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
            }
        });
        let idle = RELEASES.load(Ordering::Relaxed) - busy;
        assert!((1..=4).contains(&idle), "2.5 s idle released {idle} times");
    }
}
