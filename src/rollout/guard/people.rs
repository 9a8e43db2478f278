//! People's verdicts and other rates judged by the guard's rule (SPEC §14):
//! [`judge_rate`] puts any rate against its bar with the guard's method
//! (the confidence sequence or Wilson), asymmetrically like [`super::decide`];
//! [`Feedback`] holds the ratings and reviews that may roll a weight back
//! (`guard.min_satisfaction`, `guard.max_reversal_rate`).
//!
//! Pure: no IO.

use super::Reason;
use crate::config::{Guard, GuardMethod};
use crate::stats::sequence::Position;
use crate::stats::{Z95, wilson};

/// Which side of its bar a rate must be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bar {
    /// At least the bar (agreement, satisfaction).
    Min,
    /// At most the bar (error, reject and reversal rates).
    Max,
}

/// What the evidence says of one rate against its bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateCheck {
    /// Confidently on the right side of the bar.
    Good,
    /// Confidently on the wrong side.
    Bad,
    /// Not decided yet (or fewer than `min_samples`).
    Unknown,
}

/// Judges the rate `k / n` against `bar` with the guard's method, the same
/// asymmetric rule [`decide`] applies to agreement and errors: `sequential`
/// asks the confidence sequence, `wilson` the Wilson 95 % interval. Below
/// `min_samples` nothing is decided.
pub fn judge_rate(
    method: &GuardMethod,
    k: u64,
    n: u64,
    bar: f64,
    side: Bar,
    min: u64,
) -> RateCheck {
    if n == 0 || n < min {
        return RateCheck::Unknown;
    }
    let position = match method {
        GuardMethod::Sequential(seq) => seq.position(k, n, bar),
        GuardMethod::Wilson => {
            let (lo, hi) = wilson(k.min(n), n, Z95);
            if hi < bar {
                Position::Below
            } else if lo >= bar {
                Position::Above
            } else {
                Position::Inside
            }
        }
    };
    match (side, position) {
        (Bar::Min, Position::Above) | (Bar::Max, Position::Below) => RateCheck::Good,
        (Bar::Min, Position::Below) | (Bar::Max, Position::Above) => RateCheck::Bad,
        (_, Position::Inside) => RateCheck::Unknown,
    }
}

/// What people said about a segment's answers since the guard's last reset:
/// ratings and reviews (SPEC §14, guard inputs `min_satisfaction` and
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
