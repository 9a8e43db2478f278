//! Judging: the one place where evidence becomes a decision, below the
//! weight guard (`rollout::guard`), the stage tracker (`autonomy::evidence`)
//! and the fleet's evaluator, which all call it.
//!
//! - [`judge_rate`] puts any rate against its bar with the guard's method
//!   (anytime-valid one-sided tests, or Wilson), asymmetrically: a rate is
//!   good or bad only when the evidence says so, else unknown. A pass is
//!   judged at the route's `α`, a breach at its share of it
//!   ([`crate::stats::alpha::Levels`]). The switch between the methods exists
//!   here only.
//! - [`Streak`] is the one pass/hold/breach hysteresis: a breach moves at
//!   once, a pass moves only after it has held for `hold`.
//!
//! Pure: no IO, the clock is passed in.

use crate::config::GuardMethod;
use crate::stats::onesided::OneSided;
use crate::stats::sequence::{Position, Sequence};
use crate::stats::{Z95, wilson};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Why a guard breached; a `guard_trips_total` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Agreement,
    CandidateErrors,
    Latency,
    /// Time to first token (`max_ttft_ratio`, docs/src/guide/llm.md).
    Ttft,
    Safety,
    /// Satisfaction (share of ratings > 0) below its minimum (docs/src/concepts/stages.md).
    Satisfaction,
    /// Reversed answers above `max_reversal_rate` (docs/src/concepts/stages.md).
    Reversals,
    /// Rejected approvals above `max_reject_rate` (docs/src/concepts/stages.md).
    Rejects,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Agreement => "agreement",
            Reason::CandidateErrors => "candidate_errors",
            Reason::Latency => "latency",
            Reason::Ttft => "ttft",
            Reason::Safety => "safety",
            Reason::Satisfaction => "satisfaction",
            Reason::Reversals => "reversals",
            Reason::Rejects => "rejects",
        }
    }
}

impl crate::metrics::Label for Reason {
    fn as_label(self) -> &'static str {
        self.as_str()
    }
}

/// The guard's verdict on a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "decision", content = "reason")]
pub enum Decision {
    Breach(Reason),
    Pass,
    Hold,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Breach(_) => "breach",
            Decision::Pass => "pass",
            Decision::Hold => "hold",
        }
    }
}

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
/// asymmetric rule the guard's `decide` applies to
/// agreement and errors: `sequential` asks two one-sided anytime-valid tests
/// (a pass: confidently on the right side at the route's `α`; a breach:
/// confidently on the wrong side at one test's share of it), `wilson` the
/// Wilson 95 % interval. Below `min_samples` nothing is decided.
pub fn judge_rate(
    method: &GuardMethod,
    k: u64,
    n: u64,
    bar: f64,
    side: Bar,
    min: u64,
) -> RateCheck {
    judge_rate_clustered(method, k, n, bar, side, min, 1.0)
}

/// [`judge_rate`] for outcomes that come in clusters (a sticky key's user):
/// the sequential tests read the effective counts `k/D`, `n/D` for the
/// design effect `D ≥ 1` ([`crate::stats::cluster::Inflation`]). Wilson
/// ignores `D`.
pub fn judge_rate_clustered(
    method: &GuardMethod,
    k: u64,
    n: u64,
    bar: f64,
    side: Bar,
    min: u64,
    design_effect: f64,
) -> RateCheck {
    // A bar of zero ("at most 0") or one ("at least 1"): any event on the
    // wrong side is too many, and certain at once; none in at least `min`
    // is good. (Bounds around a rate of exactly 0 or 1 would call the bar
    // crossed before any event.)
    let wrong = match side {
        Bar::Max if bar <= 0.0 => Some(k),
        Bar::Min if bar >= 1.0 => Some(n - k.min(n)),
        _ => None,
    };
    if let Some(wrong) = wrong {
        return match (wrong, n >= min.max(1)) {
            (1.., _) => RateCheck::Bad,
            (0, true) => RateCheck::Good,
            (0, false) => RateCheck::Unknown,
        };
    }
    if n == 0 || n < min {
        return RateCheck::Unknown;
    }
    let (good, bad) = match side {
        Bar::Min => (Position::Above, Position::Below),
        Bar::Max => (Position::Below, Position::Above),
    };
    match method {
        GuardMethod::Sequential(levels) => {
            let d = if design_effect > 1.0 {
                design_effect
            } else {
                1.0
            };
            let (s, m) = (k.min(n) as f64 / d, n as f64 / d);
            if one_sided(&levels.pass, bar).position_f(s, m) == good {
                RateCheck::Good
            } else if one_sided(&levels.breach, bar).position_f(s, m) == bad {
                RateCheck::Bad
            } else {
                RateCheck::Unknown
            }
        }
        GuardMethod::Wilson => {
            let (lo, hi) = wilson(k.min(n), n, Z95);
            // Above an "at most" bar needs the lower bound strictly over it
            // (a bar of zero is not exceeded by zero events).
            let above = match side {
                Bar::Min => lo >= bar,
                Bar::Max => lo > bar,
            };
            let position = if hi < bar {
                Position::Below
            } else if above {
                Position::Above
            } else {
                Position::Inside
            };
            if position == good {
                RateCheck::Good
            } else if position == bad {
                RateCheck::Bad
            } else {
                RateCheck::Unknown
            }
        }
    }
}

/// Whether errors are within a maximum for a pass (docs/src/concepts/guards.md: the error
/// rate confidently at most `max`, for the sequential method; the observed
/// rate, for the older Wilson method).
pub fn within(method: &GuardMethod, k: u64, n: u64, max: f64) -> bool {
    if max <= 0.0 {
        return k == 0;
    }
    match method {
        GuardMethod::Sequential(levels) => max >= 1.0 || one_sided(&levels.pass, max).at_most(k, n),
        GuardMethod::Wilson => n == 0 || k as f64 / n as f64 <= max,
    }
}

/// The one-sided test of `seq` at `bar`, worked out once per thread and
/// kept (its constant is an incomplete beta function, some µs; a route has a
/// handful of bars, so the cache stays small).
pub fn one_sided(seq: &Sequence, bar: f64) -> OneSided {
    use std::cell::RefCell;
    const KEEP: usize = 64;
    thread_local! {
        static CACHE: RefCell<Vec<(Sequence, u64, OneSided)>> = const { RefCell::new(Vec::new()) };
    }
    CACHE.with_borrow_mut(|cache| {
        let key = bar.to_bits();
        if let Some((_, _, t)) = cache.iter().find(|(s, b, _)| *b == key && s == seq) {
            return *t;
        }
        let t = seq.one_sided(bar);
        if cache.len() >= KEEP {
            cache.remove(0);
        }
        cache.push((*seq, key, t));
        t
    })
}

/// How much of the evidence starts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The decision and what depends on exposure: the last decision, the
    /// pass streak (no pass survives a change: a raise needs a comparison
    /// judged after it, and `hold` passes from it), and people's verdicts
    /// (ratings, reviews, approvals: who sees the candidate changed). The
    /// comparisons since the last full reset stay: every request is compared
    /// whatever the weight or stage, so their agreement, errors and latency
    /// do not depend on it, and a test restarted at every change would spend
    /// `α` again each time (a person lowering and raising the weight could
    /// buy a fresh test until one passed).
    Decision,
    /// Everything: the comparisons too, and anything gathered before the
    /// change is never counted after it. After the mirror switch (switching
    /// it off and on is how a redeployed candidate is announced). A breach
    /// is a [`Depth::Decision`] reset: the candidate did not change because
    /// its weight went down (the guard itself drops the comparisons from
    /// before a change its detectors found).
    Evidence,
}

/// Where a decision leads once the hysteresis is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Move down now.
    Breach(Reason),
    /// Move up: passed for this long.
    Advance(Duration),
    /// Nothing to do.
    Stay,
}

/// The one pass/hold/breach hysteresis, for weights and stages: a breach
/// moves at once; a pass moves up only once it has held for `hold` without
/// a hold or breach in between.
#[derive(Debug, Clone, Copy, Default)]
pub struct Streak {
    passing_since: Option<Instant>,
}

impl Streak {
    /// Applies `decision` at `now`. `may_move`: the segment may move at all
    /// (it has canary users); `advance`: moving up is enabled (`auto_promote`,
    /// `auto_advance`).
    pub fn step(
        &mut self,
        decision: Decision,
        now: Instant,
        hold: Duration,
        may_move: bool,
        advance: bool,
    ) -> Step {
        match decision {
            Decision::Breach(reason) => {
                self.passing_since = None;
                if may_move {
                    Step::Breach(reason)
                } else {
                    Step::Stay
                }
            }
            Decision::Hold => {
                self.passing_since = None;
                Step::Stay
            }
            Decision::Pass => {
                let since = *self.passing_since.get_or_insert(now);
                let held = now.saturating_duration_since(since);
                if !advance || !may_move || held < hold {
                    return Step::Stay;
                }
                self.passing_since = None;
                Step::Advance(held)
            }
        }
    }

    /// How long the segment has passed, if it passes.
    pub fn passing_for(&self, now: Instant) -> Option<Duration> {
        self.passing_since.map(|s| now.saturating_duration_since(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 22: a bar of zero breaches at the first event and never
    /// without one, and a clean record passes, under both methods (a
    /// `max_candidate_error_rate = 0` used to roll back a candidate that
    /// made no error).
    #[test]
    fn zero_bars_mean_any_event_is_too_many() {
        for method in [GuardMethod::sequential(0.05), GuardMethod::Wilson] {
            let max = |k, n| judge_rate(&method, k, n, 0.0, Bar::Max, 200);
            assert_eq!(max(0, 10_000), RateCheck::Good, "{method:?}");
            assert_eq!(max(0, 100), RateCheck::Unknown, "below min_samples");
            assert_eq!(max(1, 5), RateCheck::Bad, "the first event");
            assert!(within(&method, 0, 10_000, 0.0) && !within(&method, 1, 10_000, 0.0));
            let min = |k, n| judge_rate(&method, k, n, 1.0, Bar::Min, 200);
            assert_eq!(min(10_000, 10_000), RateCheck::Good);
            assert_eq!(min(9_999, 10_000), RateCheck::Bad);
        }
    }
}
