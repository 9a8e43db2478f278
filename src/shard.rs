//! Thread per core (`understudy serve --thread-per-core`): which serving
//! thread this is. Each serving thread runs its own current-thread runtime
//! with its own listener, and picks its own upstream pools by its shard
//! number, so an exchange never crosses threads. Elsewhere (the shared
//! multi-thread runtime, tests, the admin listener) the shard is 0.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many shards upstream clients keep pools for (set before any is built).
static SHARDS: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
}

/// Sets the number of shards; clients built afterwards keep one pool each.
pub fn set_count(n: usize) {
    SHARDS.store(n.max(1), Ordering::Relaxed);
}

/// The number of shards.
pub fn count() -> usize {
    SHARDS.load(Ordering::Relaxed)
}

/// Marks this thread as serving shard `n`.
pub fn enter(n: usize) {
    CURRENT.with(|c| c.set(n));
}

/// This thread's shard (0 outside the serving threads).
pub fn current() -> usize {
    CURRENT.with(Cell::get)
}
