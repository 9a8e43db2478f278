//! Spending on shadow traffic (docs/src/guide/llm.md): which exchanges `mirror.sample`
//! keeps, the candidate's spend per UTC day against `mirror.budget`, and the
//! segments `mirror.focus = "undecided"` samples less.
//!
//! The sample is a hash of the sticky key (or, without one, the exchange id)
//! with a salt of its own, so it is the same users on every replica and every
//! run, and not the canary's users. On the request path this is a hash, an
//! atomic read and (with a focus) a read lock: never a wait.

use crate::config::{Focus, Mirror};
use crate::rollout::bucket::{self, BUCKETS};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

/// The sample's own salt: `bucket(route, SAMPLE_SALT, key)`.
pub const SAMPLE_SALT: &str = "understudy:mirror.sample";

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// One route's spend state; lives across reloads.
#[derive(Debug, Default)]
pub struct Spend {
    /// (UTC day number, dollars spent that day).
    today: Mutex<(i64, f64)>,
    /// The UTC day number when the budget was found spent, plus one (0: not spent).
    spent_day: AtomicU64,
    /// Segment labels whose guard says pass or breach.
    decided: RwLock<HashSet<String>>,
}

/// Whether a mirror goes, as far as spending goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Go,
    SampledOut,
    Budget,
}

impl Spend {
    /// A route's spend state at start, with what the store says the
    /// candidate's mirrors already cost today (so a restart does not reopen
    /// a spent budget).
    pub fn seeded(spent_today: f64, budget: Option<f64>, now_ms: i64) -> Spend {
        let s = Spend::default();
        if spent_today > 0.0 {
            s.add(spent_today, budget, now_ms);
        }
        s
    }

    /// The unix ms at the start of the UTC day of `now_ms`.
    pub fn day_start_ms(now_ms: i64) -> i64 {
        now_ms.max(0) / DAY_MS * DAY_MS
    }

    /// Decides on one exchange: in the sample (a tenth of it for a decided
    /// segment under `focus = "undecided"`), and within today's budget.
    pub fn admit(
        &self,
        route: &str,
        policy: &Mirror,
        label: &str,
        key: &str,
        now_ms: i64,
    ) -> Admit {
        let mut share = policy.sample;
        if policy.focus == Focus::Undecided && share > 0.0 && self.is_decided(label) {
            share /= 10.0;
        }
        if share < 1.0 && !in_sample(route, key, share) {
            return Admit::SampledOut;
        }
        if policy.budget.is_some() && self.spent_day.load(Ordering::Relaxed) == day(now_ms) + 1 {
            return Admit::Budget;
        }
        Admit::Go
    }

    /// Adds the cost of one decoded candidate answer to today's spend; once
    /// it reaches `budget`, mirrors are skipped until the next UTC day.
    /// Returns the day's total.
    pub fn add(&self, dollars: f64, budget: Option<f64>, now_ms: i64) -> f64 {
        let today = day(now_ms) as i64;
        let total = {
            let mut t = self.today.lock().unwrap_or_else(|e| e.into_inner());
            if t.0 != today {
                *t = (today, 0.0);
            }
            t.1 += dollars;
            t.1
        };
        if budget.is_some_and(|b| total >= b) {
            self.spent_day.store(today as u64 + 1, Ordering::Relaxed);
        }
        total
    }

    /// Today's spend so far.
    pub fn spent(&self, now_ms: i64) -> f64 {
        let t = self.today.lock().unwrap_or_else(|e| e.into_inner());
        if t.0 == day(now_ms) as i64 { t.1 } else { 0.0 }
    }

    /// Records whether a segment's guard says pass or breach (`decided`) or hold.
    pub fn set_decided(&self, label: &str, decided: bool) {
        if self.is_decided(label) == decided {
            return;
        }
        let mut set = self.decided.write().unwrap_or_else(|e| e.into_inner());
        if decided {
            set.insert(label.to_string());
        } else {
            set.remove(label);
        }
    }

    fn is_decided(&self, label: &str) -> bool {
        self.decided
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(label)
    }
}

/// Whether `key` falls in a `share` (0..=1) of the route's keys.
pub fn in_sample(route: &str, key: &str, share: f64) -> bool {
    (bucket::bucket(route, SAMPLE_SALT, key) as f64) < (share * BUCKETS as f64).round()
}

/// The UTC day number of a unix time in ms.
fn day(now_ms: i64) -> u64 {
    (now_ms.max(0) / DAY_MS) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(sample: f64, budget: Option<f64>, focus: Focus) -> Mirror {
        let mut m = crate::config::for_test(
            "[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nincumbent = \"http://127.0.0.1:1\"\n",
        )
        .routes[0]
            .mirror
            .clone();
        m.sample = sample;
        m.budget = budget;
        m.focus = focus;
        m
    }

    #[test]
    fn the_sample_is_stable_and_in_proportion() {
        let m = mirror(0.2, None, Focus::All);
        let s = Spend::default();
        let kept = (0..20_000)
            .filter(|i| s.admit("r", &m, "default", &format!("user-{i}"), 0) == Admit::Go)
            .count();
        assert!((3_700..=4_300).contains(&kept), "{kept}");
        // The same key is always in or always out.
        let a = s.admit("r", &m, "default", "user-7", 0);
        assert!((0..10).all(|_| s.admit("r", &m, "default", "user-7", 0) == a));
        // Its own salt: not the canary's bucket.
        let canary = (0..20_000)
            .filter(|i| {
                let k = format!("user-{i}");
                bucket::is_candidate(bucket::bucket("r", "", &k), 20.0) && in_sample("r", &k, 0.2)
            })
            .count();
        assert!((600..=1_000).contains(&canary), "independent: {canary}");
    }

    #[test]
    fn focus_samples_decided_segments_at_a_tenth() {
        let m = mirror(0.5, None, Focus::Undecided);
        let s = Spend::default();
        s.set_decided("enterprise", true);
        let count = |label: &str| {
            (0..20_000)
                .filter(|i| s.admit("r", &m, label, &format!("u{i}"), 0) == Admit::Go)
                .count()
        };
        let (decided, open) = (count("enterprise"), count("smb"));
        assert!((800..=1_200).contains(&decided), "{decided}");
        assert!((9_500..=10_500).contains(&open), "{open}");
        s.set_decided("enterprise", false);
        assert!(count("enterprise") > 9_000);
    }

    #[test]
    fn the_budget_closes_for_the_rest_of_the_utc_day() {
        let m = mirror(1.0, Some(1.0), Focus::All);
        let s = Spend::default();
        let t = 5 * DAY_MS + 1000;
        assert_eq!(s.admit("r", &m, "default", "k", t), Admit::Go);
        s.add(0.6, m.budget, t);
        assert_eq!(s.admit("r", &m, "default", "k", t), Admit::Go);
        assert!((s.add(0.6, m.budget, t) - 1.2).abs() < 1e-9);
        assert_eq!(s.admit("r", &m, "default", "k", t), Admit::Budget);
        // The next UTC day starts afresh.
        assert_eq!(s.admit("r", &m, "default", "k", t + DAY_MS), Admit::Go);
        assert_eq!(s.spent(t + DAY_MS), 0.0);
        // A restart picks up the day's spend from the store.
        let again = Spend::seeded(1.2, m.budget, t);
        assert_eq!(again.admit("r", &m, "default", "k", t), Admit::Budget);
        assert_eq!(Spend::day_start_ms(t), 5 * DAY_MS);
    }
}
