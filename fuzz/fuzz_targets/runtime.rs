//! Shared by the HTTP/1.1 differential targets: one tokio runtime per
//! fuzzing thread, and a deadline around each case.
//!
//! The runtime is current-thread with a paused clock. Time moves only when
//! every task waits, and then straight to the next timer: a case that can
//! make no more progress reaches its deadline at once, so a hang is a
//! finding (a panic) rather than a stuck fuzzer, and a timer inside a case
//! (`tokio::time::sleep`) fires exactly when everything else is stuck.

use std::future::Future;
use std::time::Duration;

/// How long, in the paused clock, one case may take.
const DEADLINE: Duration = Duration::from_secs(1);

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
}

/// Runs one case to the end; panics when it hangs.
pub fn run<F: Future>(case: F) -> F::Output {
    RUNTIME.with(|runtime| {
        runtime.block_on(async {
            tokio::time::timeout(DEADLINE, case)
                .await
                .expect("the case hung: nothing could make progress before the deadline")
        })
    })
}
