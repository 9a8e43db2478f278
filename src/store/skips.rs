//! Skipped mirrors, tallied per route, segment, minute and reason instead of a
//! row each: the writer folds the tally into `mirror_skips` with every commit.
//!
//! An exchange whose mirror was skipped while the incumbent served has nothing
//! to compare, so it costs no settle task and no row; the report still knows
//! how many there were (mirror coverage) from this table.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Skips of one route, keyed by (segment, reason, minute start in unix ms).
type PerRoute = HashMap<(String, &'static str, i64), u64>;

/// The in-memory tally between two commits, sharded by thread so that the
/// runtime's workers do not contend on one lock (or one cache line).
pub struct Tally {
    shards: [Mutex<HashMap<String, PerRoute>>; SHARDS],
}

const SHARDS: usize = 8;

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            shards: std::array::from_fn(|_| Mutex::default()),
        }
    }
}

/// This thread's shard: threads are numbered as they first count a skip.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// One `mirror_skips` increment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipCount {
    pub route: String,
    pub segment: String,
    /// Start of the minute (unix ms).
    pub minute: i64,
    pub reason: &'static str,
    pub count: u64,
}

pub const MINUTE_MS: i64 = 60_000;

/// The start of the minute `ts_ms` falls in.
pub fn minute_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

impl Tally {
    /// Counts one skip. Takes the segment by value: the exchange is done with it.
    pub fn add(&self, route: &str, segment: String, reason: &'static str, ts_ms: i64) {
        let minute = minute_of(ts_ms);
        let mut routes = self.shards[shard()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let per_route = match routes.get_mut(route) {
            Some(r) => r,
            None => routes.entry(route.to_string()).or_default(),
        };
        *per_route.entry((segment, reason, minute)).or_default() += 1;
    }

    /// Puts counts back (their commit failed): they go with the next one.
    pub fn restore(&self, counts: Vec<SkipCount>) {
        let mut routes = self.shards[shard()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for c in counts {
            let per_route = routes.entry(c.route).or_default();
            *per_route
                .entry((c.segment, c.reason, c.minute))
                .or_default() += c.count;
        }
    }

    /// Everything counted since the last call (a key counted on two threads
    /// comes twice; the writer adds them up).
    pub fn take(&self) -> Vec<SkipCount> {
        self.shards
            .iter()
            .map(|s| std::mem::take(&mut *s.lock().unwrap_or_else(|e| e.into_inner())))
            .flat_map(HashMap::into_iter)
            .flat_map(|(route, per_route)| {
                per_route
                    .into_iter()
                    .map(move |((segment, reason, minute), count)| SkipCount {
                        route: route.clone(),
                        segment,
                        minute,
                        reason,
                        count,
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_route_segment_reason_and_minute() {
        let t = Tally::default();
        t.add("r", "a".into(), "method", 60_000);
        t.add("r", "a".into(), "method", 119_999);
        t.add("r", "a".into(), "method", 120_000);
        t.add("r", "b".into(), "in_flight", 60_001);
        t.add("s", "a".into(), "method", 60_002);
        let mut got = t.take();
        got.sort_by(|x, y| (&x.route, &x.segment, x.minute).cmp(&(&y.route, &y.segment, y.minute)));
        let flat: Vec<_> = got
            .iter()
            .map(|c| {
                (
                    c.route.as_str(),
                    c.segment.as_str(),
                    c.reason,
                    c.minute,
                    c.count,
                )
            })
            .collect();
        assert_eq!(
            flat,
            [
                ("r", "a", "method", 60_000, 2),
                ("r", "a", "method", 120_000, 1),
                ("r", "b", "in_flight", 60_000, 1),
                ("s", "a", "method", 60_000, 1),
            ]
        );
        assert!(t.take().is_empty(), "take empties the tally");
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let t = std::sync::Arc::new(Tally::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        t.add("r", "s".into(), "in_flight", 60_000);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|h| h.join().unwrap());
        let got = t.take();
        assert!(got.iter().all(|c| c.route == "r" && c.minute == 60_000));
        assert_eq!(got.iter().map(|c| c.count).sum::<u64>(), 4000);
    }
}
