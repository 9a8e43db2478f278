//! People's verdicts and other rates judged by the guard's rule (docs/src/concepts/stages.md):
//! [`judge_rate`] puts any rate against its bar with the guard's method
//! (the confidence sequence or Wilson), asymmetrically like [`super::decide`];
//! [`Feedback`] holds the ratings and reviews that may roll a weight back
//! (`guard.min_satisfaction`, `guard.max_reversal_rate`).
//!
//! Pure: no IO.

use crate::config::Guard;
use crate::judge::{Bar, RateCheck, Reason, judge_rate};

/// What people said about a segment's answers since the guard's last reset:
/// ratings and reviews (docs/src/concepts/stages.md, guard inputs `min_satisfaction` and
/// `max_reversal_rate`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Feedback {
    /// Rated exchanges, and those rated > 0.
    pub rated: u64,
    pub satisfied: u64,
    /// Answers the candidate served for review (`notify`), and those reversed.
    pub reviewed: u64,
    pub reversed: u64,
}

impl Feedback {
    /// The breach the people's verdicts call for, if any.
    pub fn breach(&self, cfg: &Guard) -> Option<Reason> {
        let min = cfg.min_samples.max(1);
        let bad = |bar: Option<f64>, k: u64, n: u64, side: Bar| {
            bar.is_some_and(|b| judge_rate(&cfg.method, k, n, b, side, min) == RateCheck::Bad)
        };
        if bad(
            cfg.max_reversal_rate,
            self.reversed.min(self.reviewed),
            self.reviewed,
            Bar::Max,
        ) {
            Some(Reason::Reversals)
        } else if bad(cfg.min_satisfaction, self.satisfied, self.rated, Bar::Min) {
            Some(Reason::Satisfaction)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Feedback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let share = |k: u64, n: u64| if n == 0 { 0.0 } else { k as f64 / n as f64 };
        write!(
            f,
            "satisfaction {:.3} over {} rating(s), reversals {:.3} over {} reviewed",
            share(self.satisfied, self.rated),
            self.rated,
            share(self.reversed, self.reviewed),
            self.reviewed
        )
    }
}
