//! An `α` that holds for a route: one error budget split across the tests
//! the route runs (metrics × segments × detectors), by weighted Bonferroni.
//!
//! A route's guard may breach on agreement, the error rate, latency, TTFT
//! and the feedback rates, in each segment, by the confidence sequence or
//! the change detector. Each test at `α` alone lets the route's chance of
//! *some* false breach grow with their number. Splitting `α` as `α_i = α·w_i
//! / Σw` keeps the union bounded: `P(any false breach) ≤ Σ α_i = α`
//! (Bonferroni: no independence needed, so it holds for correlated metrics
//! such as agreement and errors drawn from the same comparisons).
//!
//! False breaches and false passes are separate errors with separate budgets:
//! split the breach-side `α` over the tests that can breach and, on its own,
//! the pass-side `α` over the criteria a pass needs (a pass needs *all* of
//! them, so each criterion at the full pass-side `α` keeps a false pass at or
//! below it; no split is needed there: the intersection of events is no more
//! likely than any one of them).
//!
//! A change detector spends its share through its average run length:
//! `A = horizon / α_i` ([`super::detector::arl_for`]) keeps its false alarms
//! within `horizon` outcomes at most `α_i`.
//!
//! Resets spend the budget again: each restart of a test from fresh counts is
//! a new test. Resetting only where the evidence really changes (a new
//! candidate or config), not on every weight change, is the caller's part.

/// A route's error budget split by weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    alpha: f64,
    total: f64,
}

impl Split {
    /// A split of `alpha` (clamped to `[0, 1]`, NaN as 0) over tests with the
    /// given weights (negative and NaN weights count as 0).
    pub fn new(alpha: f64, weights: impl IntoIterator<Item = f64>) -> Self {
        let total = weights.into_iter().map(clean).sum();
        Split {
            alpha: if alpha.is_nan() {
                0.0
            } else {
                alpha.clamp(0.0, 1.0)
            },
            total,
        }
    }

    /// An equal split over `tests` tests.
    pub fn equal(alpha: f64, tests: usize) -> Self {
        Split::new(alpha, std::iter::repeat_n(1.0, tests))
    }

    /// The share of a test of weight `weight`: `α·w/Σw` (0 when no weight
    /// is positive).
    pub fn share(&self, weight: f64) -> f64 {
        if self.total > 0.0 {
            self.alpha * clean(weight) / self.total
        } else {
            0.0
        }
    }

    /// The route's total.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }
}

fn clean(w: f64) -> f64 {
    if w > 0.0 { w } else { 0.0 }
}

/// The usual split of a route's breach-side `alpha`: every (metric, segment)
/// pair a guard tests gets an equal share, and each gets it once for the
/// confidence sequence and once for the change detector (`2·metrics·segments`
/// tests). Returns the share of one test.
pub fn per_test(alpha: f64, metrics: usize, segments: usize) -> f64 {
    Split::equal(alpha, 2 * metrics.max(1) * segments.max(1)).share(1.0)
}

/// The sequential method's two levels, worked out once when the config is
/// loaded: a pass at the route's `α` (a pass needs every criterion, so no
/// split is needed on that side), a breach at one test's share of it
/// ([`per_test`]), and the change detectors' average run length for that
/// share over [`HORIZON`] comparisons.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    pub pass: super::sequence::Sequence,
    pub breach: super::sequence::Sequence,
    /// The detectors' average run length ([`super::detector::arl_for`]).
    pub arl: f64,
}

/// The stretch over which a detector's share of `α` holds: a false alarm
/// within this many comparisons has probability at most the share (beyond
/// it, the average run length bounds the rate of false alarms).
pub const HORIZON: f64 = 1_000_000.0;

impl Levels {
    /// The levels of a route at `alpha` whose guard tests `metrics` rates in
    /// `segments` segments.
    pub fn new(alpha: f64, metrics: usize, segments: usize) -> Self {
        let share = per_test(alpha, metrics, segments);
        Levels {
            pass: super::sequence::Sequence::new(alpha),
            breach: super::sequence::Sequence::new(share),
            arl: super::detector::arl_for(share, HORIZON),
        }
    }

    /// The route's `α`.
    pub fn alpha(&self) -> f64 {
        self.pass.alpha()
    }

    /// One breach test's share of it.
    pub fn share(&self) -> f64 {
        self.breach.alpha()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_to_the_route() {
        let s = Split::new(0.05, [2.0, 1.0, 1.0]);
        let total: f64 = [2.0, 1.0, 1.0].iter().map(|w| s.share(*w)).sum();
        assert!((total - 0.05).abs() < 1e-15);
        assert!((s.share(2.0) - 0.025).abs() < 1e-15);
        assert!((per_test(0.05, 5, 2) - 0.0025).abs() < 1e-15);
        assert_eq!(per_test(0.05, 0, 0), 0.025);
        assert_eq!(Split::new(f64::NAN, [1.0]).share(1.0), 0.0);
        assert_eq!(Split::new(0.05, [f64::NAN, -1.0]).share(1.0), 0.0);
        assert_eq!(Split::equal(2.0, 4).share(1.0), 0.25);
    }
}
