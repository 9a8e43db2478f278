//! Side work below the client's path: the CPU-heavy part of settling a
//! comparison (decoding AI answers, the similarity of long texts) runs on a
//! few threads of its own whose scheduling priority is lower than the
//! serving threads' (nice +10 on Linux), so when the cores are busy the
//! clients' bytes go first and the comparisons wait.
//!
//! Before, this work ran on tokio's blocking pool at the serving threads'
//! priority: 2,000 streams ending together queued 4,000 decodes there, up to
//! 512 threads competed with the two serving threads, and the chunks of the
//! streams still open waited (BENCHMARKS.md, issue 25). Waiting comparisons
//! hold their captures, and a spent `store.capture_budget` then skips new
//! mirrors, counted: the load is shed visibly, never by delaying clients.
//!
//! The queue is not bounded here: what feeds it is (each job belongs to a
//! settle task, and those are bounded by `mirror.max_in_flight` per route and
//! by the capture budget).

use std::sync::OnceLock;

/// The niceness the side-work threads take (0 is the serving threads'; 19 the lowest).
pub const NICE: i32 = 10;

/// Runs `f` on a side-work thread and waits for its result; `None` if `f`
/// panicked (logged) or the pool could not start.
pub async fn run<T, F>(f: F) -> Option<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let Some(pool) = pool() else {
        // No pool (threads could not start): the blocking pool still works.
        return tokio::task::spawn_blocking(f).await.ok();
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        // The waiter may be gone (shutdown); nothing to do then.
        let _ignored = tx.send(f());
    });
    rx.await.ok()
}

fn pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("understudy-side-{i}"))
            .start_handler(|_| lower_priority())
            // A panicking job drops its sender: its waiter gets `None`.
            .panic_handler(|_| tracing::error!("A comparison's side work panicked"))
            .build()
            .map_err(|e| tracing::error!(error = %e, "Cannot start the side-work threads"))
            .ok()
    })
    .as_ref()
}

/// Lowers the calling thread's priority to [`NICE`], never raises it (a
/// proxy started under `nice` stays where it is). On Linux the nice value is
/// per thread; elsewhere `setpriority` would lower the whole process, so
/// nothing is done there.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if nice().is_some_and(|now| now < NICE)
        && let Err(e) = rustix::process::setpriority_process(None, NICE)
    {
        tracing::warn!(error = %e, "Cannot lower the side-work threads' priority");
    }
}

/// The calling thread's nice value (Linux: `who = 0` is the calling thread).
#[cfg(target_os = "linux")]
fn nice() -> Option<i32> {
    rustix::process::getpriority_process(None).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn side_work_runs_below_the_serving_threads_priority() {
        let serving = nice().expect("own nice value");
        let side = run(nice).await.flatten().expect("side work ran");
        assert_eq!(side, NICE.max(serving), "serving thread at {serving}");
        // The caller's own priority is untouched.
        assert_eq!(nice(), Some(serving));
    }

    #[tokio::test]
    async fn a_panicking_job_gives_none_and_the_pool_goes_on() {
        let panicked: Option<u32> = run(|| panic!("boom")).await;
        assert_eq!(panicked, None);
        assert_eq!(run(|| 7).await, Some(7));
    }
}
