//! One line of the report (a route and segment, or one period of it) and what
//! the guard would decide on its numbers.
//!
//! Pure: computed from [`SegmentStats`] and the route's guard settings; the
//! decision is the live guard's own rule ([`guard::decide`]) on the line's counts.

use crate::config::Guard;
use crate::rollout::guard::{self, Figures};
use crate::stats::{self, Z95};
use crate::store::read::SegmentStats;
use serde::Serialize;
use std::collections::BTreeMap;

/// The guard settings a line was judged against, as the report shows them
/// (the route's `[routes.guard]`, or the documented defaults when no config
/// is at hand: `config::Guard::default()`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GuardSettings {
    pub min_samples: u64,
    pub min_agreement: f64,
    pub max_candidate_error_rate: f64,
    pub max_latency_ratio: Option<f64>,
}

impl From<&Guard> for GuardSettings {
    fn from(g: &Guard) -> Self {
        GuardSettings {
            min_samples: g.min_samples,
            min_agreement: g.min_agreement,
            max_candidate_error_rate: g.max_candidate_error_rate,
            max_latency_ratio: g.max_latency_ratio,
        }
    }
}

impl From<guard::Decision> for Decision {
    fn from(d: guard::Decision) -> Decision {
        match d {
            guard::Decision::Pass => Decision::Pass,
            guard::Decision::Breach(_) => Decision::Breach,
            guard::Decision::Hold => Decision::Hold,
        }
    }
}

/// What the guard would say on these numbers (docs/src/concepts/guards.md, asymmetric).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The evidence says the candidate is good enough: it may be promoted.
    Pass,
    /// The evidence says it is worse: it would be rolled back.
    Breach,
    /// Not enough evidence either way yet.
    Hold,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Pass => "pass",
            Decision::Breach => "breach",
            Decision::Hold => "hold",
        }
    }
}

/// A proportion with its Wilson 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Rate {
    pub fn of(k: u64, n: u64) -> Option<Rate> {
        (n > 0).then(|| {
            let (lo, hi) = stats::wilson(k, n, Z95);
            Rate {
                value: k as f64 / n as f64,
                lo,
                hi,
            }
        })
    }
}

/// p50, p95 and p99 of one side, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

impl Latency {
    fn of(sorted: &[f64]) -> Latency {
        Latency {
            p50: stats::percentile(sorted, 50.0),
            p95: stats::percentile(sorted, 95.0),
            p99: stats::percentile(sorted, 99.0),
        }
    }
}

/// Feedback ratings of a segment's exchanges.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Ratings {
    pub count: u64,
    pub mean: Option<f64>,
    /// rating → count.
    pub counts: BTreeMap<i64, u64>,
}

impl Ratings {
    pub fn of(counts: BTreeMap<i64, u64>) -> Ratings {
        let count = counts.values().sum();
        let sum: f64 = counts.iter().map(|(r, n)| *r as f64 * *n as f64).sum();
        Ratings {
            count,
            mean: (count > 0).then(|| sum / count as f64),
            counts,
        }
    }
}

/// How many differing pointers a line lists.
pub const TOP_DIFFS: usize = 5;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub route: String,
    pub segment: String,
    /// Start of the hour or day (unix ms, UTC) with `--by hour|day`.
    pub period: Option<i64>,
    pub samples: u64,
    pub matches: u64,
    pub mismatches: u64,
    pub candidate_errors: u64,
    pub incumbent_errors: u64,
    pub skipped: u64,
    /// matches / (matches + mismatches), with its Wilson 95 % interval.
    pub agreement: Option<Rate>,
    /// candidate_errors / (matches + mismatches + candidate_errors).
    pub candidate_error_rate: Option<f64>,
    /// incumbent_errors / (samples − skipped): skipped mirrors beside the
    /// incumbent's answer are only counted, so their errors are not known.
    pub incumbent_error_rate: Option<f64>,
    pub incumbent_ms: Latency,
    pub candidate_ms: Latency,
    /// Share of exchanges actually compared (not skipped).
    pub coverage: Option<f64>,
    /// Why the others were skipped, most frequent first.
    pub skip_reasons: Vec<(String, u64)>,
    pub safety_hits: u64,
    pub safety_patterns: Vec<(String, u64)>,
    /// The most frequent differing pointers, with counts.
    pub top_diffs: Vec<(String, u64)>,
    /// An exchange id to `show` for each of `top_diffs` (the newest), when known.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub diff_examples: BTreeMap<String, String>,
    /// The current weight in percent (newest rollout event), when known.
    pub weight: Option<f64>,
    /// The current stage of autonomy (newest stage event), when one is recorded.
    pub stage: Option<String>,
    pub ratings: Ratings,
    pub guard: GuardSettings,
    pub decision: Decision,
    /// Whether the sample is large enough for `min_agreement` to be decided
    /// (the Wilson interval lies wholly on one side of it, with `min_samples`).
    pub decided: bool,
    /// Rough number of further decided comparisons before it would be, at the
    /// current agreement (normal approximation); `None` when decided or unknown.
    pub samples_needed: Option<u64>,
    /// AI figures (docs/src/guide/llm.md), for lines with decoded AI answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ai: Option<super::ai::AiLine>,
}

impl Line {
    pub fn new(s: &SegmentStats, guard: &Guard) -> Line {
        let decided = s.decided();
        let agreement = Rate::of(s.matches, decided);
        let attempts = decided + s.candidate_errors;
        let verdicts = s.samples - s.skipped.min(s.samples);
        let candidate_ms = Latency::of(&s.candidate_ms);
        let incumbent_ms = Latency::of(&s.incumbent_ms);
        let mut line = Line {
            route: s.route.clone(),
            segment: s.segment.clone(),
            period: s.period,
            samples: s.samples,
            matches: s.matches,
            mismatches: s.mismatches,
            candidate_errors: s.candidate_errors,
            incumbent_errors: s.incumbent_errors,
            skipped: s.skipped,
            agreement,
            candidate_error_rate: (attempts > 0)
                .then(|| s.candidate_errors as f64 / attempts as f64),
            incumbent_error_rate: (verdicts > 0)
                .then(|| s.incumbent_errors as f64 / verdicts as f64),
            incumbent_ms,
            candidate_ms,
            coverage: (s.samples > 0).then(|| verdicts as f64 / s.samples as f64),
            skip_reasons: top(
                s.skip_reasons.iter().map(|(k, n)| (k.clone(), *n)),
                usize::MAX,
            ),
            safety_hits: s.safety_hits(),
            safety_patterns: top(s.safety.iter().map(|(k, n)| (k.clone(), *n)), usize::MAX),
            top_diffs: top(s.diffs.iter().map(|(k, n)| (k.clone(), *n)), TOP_DIFFS),
            diff_examples: BTreeMap::new(),
            weight: None,
            stage: None,
            ratings: Ratings::default(),
            guard: guard.into(),
            decision: Decision::Hold,
            decided: false,
            samples_needed: None,
            ai: None,
        };
        line.decide(s, guard);
        line
    }

    /// Adds the line's AI figures; the guard decides again with the time to
    /// first token ratio (`max_ttft_ratio`) among its inputs.
    pub fn with_ai(&mut self, ai: super::ai::AiLine, s: &SegmentStats, guard: &Guard) {
        self.ai = Some(ai);
        self.decide(s, guard);
    }

    /// The guard's decision on these numbers: [`guard::decide`] itself.
    fn decide(&mut self, s: &SegmentStats, g: &Guard) {
        let latency_ratio = guard::ratio(self.candidate_ms.p99, self.incumbent_ms.p99);
        let mut figures = Figures::of(
            s.matches,
            s.mismatches,
            s.candidate_errors,
            self.safety_hits,
            latency_ratio,
        );
        figures.ttft_ratio = self.ai.as_ref().and_then(|a| a.ttft_ratio);
        self.decision = guard::decide(g, &figures).into();
        // The interval shown is the one the guard's method decides on (the
        // confidence sequence for `sequential`).
        let shown = figures.clone().bounded(g);
        if let Some(a) = &mut self.agreement {
            (a.lo, a.hi) = (shown.agreement_lower, shown.agreement_upper);
        }
        let enough = figures.samples >= g.min_samples;
        self.decided = enough
            && self
                .agreement
                .is_some_and(|a| a.hi < g.min_agreement || a.lo >= g.min_agreement);
        if !self.decided {
            self.samples_needed = figures
                .samples_to_decide(g)
                .or_else(|| samples_needed(self.agreement, figures.samples, g));
        }
    }
}

/// Decided comparisons still missing before the interval clears
/// `min_agreement` (or `min_samples` is reached), at the current agreement.
fn samples_needed(agreement: Option<Rate>, have: u64, g: &Guard) -> Option<u64> {
    let p = agreement.map_or(1.0, |a| a.value);
    let gap = (p - g.min_agreement).abs();
    if gap < 1e-9 {
        return None;
    }
    let var = (p * (1.0 - p)).max(g.min_agreement * (1.0 - g.min_agreement));
    // Either way the guard waits for `min_samples`.
    let n = ((Z95 * Z95 * var / (gap * gap)).ceil() as u64).max(g.min_samples);
    Some(n.saturating_sub(have).max(1))
}

/// The `k` largest counts, ties by name.
fn top(items: impl Iterator<Item = (String, u64)>, k: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = items.collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(k);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(matches: u64, mismatches: u64, errors: u64) -> SegmentStats {
        SegmentStats {
            samples: matches + mismatches + errors,
            matches,
            mismatches,
            candidate_errors: errors,
            incumbent_ms: vec![1.0, 2.0, 3.0, 4.0],
            ..SegmentStats::default()
        }
    }

    #[test]
    fn definitions() {
        let l = Line::new(&stats(6, 2, 2), &Guard::default());
        assert_eq!(l.agreement.map(|a| a.value), Some(0.75));
        assert_eq!(l.candidate_error_rate, Some(0.2));
        assert_eq!(l.incumbent_ms.p50, Some(2.0));
        assert_eq!(l.incumbent_ms.p99, Some(4.0));
        assert_eq!(l.candidate_ms.p50, None);
        assert_eq!(l.coverage, Some(1.0));
    }

    #[test]
    fn the_guard_decides_only_on_enough_evidence() {
        let g = &Guard {
            max_candidate_error_rate: 1.0,
            ..Guard::default()
        };
        // 97 % of 1000: the lower bound is above 0.9 → pass, decided.
        let l = Line::new(&stats(970, 30, 0), g);
        assert_eq!((l.decision, l.decided), (Decision::Pass, true));
        // 60 % of 300: the upper bound is below 0.9 → breach, decided.
        let l = Line::new(&stats(180, 120, 0), g);
        assert_eq!((l.decision, l.decided), (Decision::Breach, true));
        // 60 % of 100: clearly bad, but the guard waits for min_samples (200).
        let l = Line::new(&stats(60, 40, 0), g);
        assert_eq!((l.decision, l.decided), (Decision::Hold, false));
        assert_eq!(l.samples_needed, Some(100), "{l:?}");
        // 95 % of 20: too few to tell.
        let l = Line::new(&stats(19, 1, 0), g);
        assert_eq!((l.decision, l.decided), (Decision::Hold, false));
        assert!(l.samples_needed.is_some_and(|n| n >= 180), "{l:?}");
        // A safety hit is a breach at once.
        let mut s = stats(19, 1, 0);
        s.safety.insert("ssn".into(), 1);
        assert_eq!(Line::new(&s, g).decision, Decision::Breach);
    }

    /// The report decides what the live guard decides on the same samples
    /// (before, the report breached below `min_samples` and the guard held).
    #[test]
    fn the_report_and_the_live_guard_agree() {
        use crate::compare::Verdict;
        use crate::rollout::guard::{Sample, SegmentGuard};
        let g = Guard::default();
        let t0 = std::time::Instant::now();
        for (matches, mismatches, errors) in [
            (5, 15, 0),
            (60, 40, 0),
            (180, 120, 0),
            (970, 30, 0),
            (150, 40, 12),
            (300, 0, 30),
        ] {
            let mut live = SegmentGuard::default();
            // Spread evenly (a run of mismatches is a change the live
            // guard's detectors catch, which counts cannot show).
            let ordered: Vec<Verdict> = std::iter::repeat_n(Verdict::Match, matches)
                .chain(std::iter::repeat_n(Verdict::Mismatch, mismatches))
                .chain(std::iter::repeat_n(Verdict::CandidateError, errors))
                .collect();
            // A stride prime to every total here permutes them.
            let total = ordered.len();
            let verdicts = (0..total).map(|j| ordered[j * 7919 % total]);
            for (i, verdict) in verdicts.enumerate() {
                let sample = Sample {
                    at: t0 + std::time::Duration::from_millis(i as u64),
                    verdict,
                    safety: false,
                    incumbent_ms: None,
                    candidate_ms: None,
                    incumbent_ttft_ms: None,
                    candidate_ttft_ms: None,
                    user: None,
                    excluded: false,
                };
                // Weight 0 (shadow): a breach is reported but the window is kept.
                let _action = live.observe(&g, sample, 0.0);
            }
            let (_, decision, _) = live.status(t0).unwrap();
            let n = |k: usize| k as u64;
            let line = Line::new(&stats(n(matches), n(mismatches), n(errors)), &g);
            assert_eq!(
                line.decision,
                Decision::from(decision),
                "{matches}/{mismatches}/{errors}"
            );
        }
    }

    #[test]
    fn top_counts_first_then_names() {
        let v = top(
            [("b".into(), 2), ("a".into(), 2), ("c".into(), 5)].into_iter(),
            2,
        );
        assert_eq!(v, [("c".to_string(), 5), ("a".to_string(), 2)]);
    }
}
