//! Latency (or time to first token) judged with error control: an
//! anytime-valid sequential test, on paired comparisons, that the
//! candidate's tail is slower than `ratio` times the incumbent's.
//!
//! # The test
//!
//! For each tail level `p` (the p90, p95 and p99 by default), keep the incumbent's
//! `p`-quantile `q` as estimated from the comparisons *before* this one (a
//! predictable threshold). Each comparison then says one of: only the
//! candidate exceeds `ratio·q` ("candidate-only"), only the incumbent
//! exceeds `q` ("incumbent-only"), both, or neither. The null hypothesis is
//! that the candidate's tail, scaled down by `ratio`, is no heavier than the
//! incumbent's there: `P(C > ratio·q) ≤ P(I > q)`. Under it, whatever the
//! dependence between the two latencies of one request,
//! `P(C > rq, I ≤ q) = P(C > rq) − P(both) ≤ P(I > q) − P(both) =
//! P(I > q, C ≤ rq)`, so each one-sided exceedance is a candidate-only one
//! with probability at most ½, given the past. The candidate-only share is
//! tested against ½ with the one-sided beta-binomial mixture
//! ([`super::onesided`], tuned for about 100 exceedances), level `α` split
//! equally over the levels (Bonferroni), valid at every comparison, forever.
//!
//! When both sides have the same latency distribution the null holds at
//! every threshold for any `ratio ≥ 1`, so a false breach has probability at
//! most `α` over an unbounded run. When the candidate is `k` times slower
//! (`k > ratio`), the candidate-only share is above ½ and the test breaches.
//! What it tests is the tail around the chosen level, not the plug-in p99
//! ratio: a candidate whose distribution crosses the incumbent's near `q`
//! can be judged slower at `q` while its exact p99 is within the ratio (and
//! the other way round).
//!
//! # Bounded memory, and the error the sketch adds
//!
//! The incumbent's quantile comes from a log-bucketed histogram (buckets 5 %
//! wide from 1 µs to about 28 hours: 400 `u32`, 1.6 KiB), recomputed every
//! 16 comparisons (a scan of at most 400 buckets, amortised to some 25 reads
//! per comparison). The threshold is within 5 % of the sample quantile; that
//! moves *where* the tails are compared, never the error rate (the test is
//! valid for any predictable threshold). Per comparison: one histogram
//! increment, two compares per level, and one
//! [`super::onesided::OneSided::position`] (about 0.15–0.25 µs) per level
//! whose counts changed (about one comparison in five at the p90, one in
//! fifty at the p99).
//!
//! # State, reset and rebuild
//!
//! The histogram and two counters per level. [`SlowdownTest::reset`] clears
//! all. Rebuild by replaying the stored `(incumbent_ms, candidate_ms)` pairs
//! since the reset in their order (the thresholds depend on the order);
//! replaying any subset of them in order is valid too, only less powerful.

use super::onesided::OneSided;
use super::sequence::{Position, Sequence};

/// Bucket `i` holds values in `[MIN_MS·γ^i, MIN_MS·γ^(i+1))`.
const GAMMA: f64 = 1.05;
const MIN_MS: f64 = 0.001;
const BUCKETS: usize = 400;
/// The threshold is recomputed every this many comparisons.
const REFRESH: u64 = 16;
/// Incumbent latencies needed before any exceedance is counted.
const WARMUP: u64 = 20;

/// The most tail levels one test judges.
pub const MAX_LEVELS: usize = 4;

/// The tail levels judged when none is given: the p90, p95 and p99. The
/// lower levels see ten and five times as many exceedances as the p99, so a
/// uniform slowdown is caught several times sooner (2× at a ratio of 1.5:
/// at most 1,663 comparisons in 100 runs, against 2,423 with the p95 and p99
/// and a median of about 2,000 with the p99 alone); pass `&[0.99]` to judge
/// the p99 alone.
pub const DEFAULT_LEVELS: [f64; 3] = [0.9, 0.95, 0.99];

/// The mixture of each level's test is tuned for about this many one-sided
/// exceedances (a slowdown shows within a few hundred; the default tuning
/// of 1,000 spreads the mixture over too narrow alternatives).
pub const TUNE_EXCEEDANCES: f64 = 100.0;

/// One tail level's counts.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Level {
    p: f64,
    test: OneSided,
    /// The current threshold on the incumbent's latency (the `p`-quantile).
    threshold: Option<f64>,
    candidate_only: u64,
    incumbent_only: u64,
    /// The test's answer on the counts (recomputed when they change).
    slower: bool,
}

/// The sequential test "the candidate's latency tail is more than `ratio`
/// times the incumbent's".
#[derive(Debug, Clone, PartialEq)]
pub struct SlowdownTest {
    ratio: f64,
    levels: Vec<Level>,
    counts: Box<[u32; BUCKETS]>,
    len: u64,
}

impl SlowdownTest {
    /// A test at level `alpha` (split equally over `levels`, each a tail
    /// level in `(0, 1)`; out-of-range or NaN levels are dropped, at most
    /// [`MAX_LEVELS`] kept, none left means [`DEFAULT_LEVELS`]) against
    /// `ratio` (at least 1; NaN counts as 1).
    pub fn new(ratio: f64, alpha: f64, levels: &[f64]) -> Self {
        let mut ps: Vec<f64> = levels
            .iter()
            .copied()
            .filter(|p| *p > 0.0 && *p < 1.0)
            .take(MAX_LEVELS)
            .collect();
        if ps.is_empty() {
            ps.extend(DEFAULT_LEVELS);
        }
        let seq = Sequence::tuned(alpha / ps.len() as f64, TUNE_EXCEEDANCES);
        SlowdownTest {
            ratio: if ratio.is_nan() { 1.0 } else { ratio.max(1.0) },
            levels: ps
                .into_iter()
                .map(|p| Level {
                    p,
                    test: seq.one_sided(0.5),
                    threshold: None,
                    candidate_only: 0,
                    incumbent_only: 0,
                    slower: false,
                })
                .collect(),
            counts: Box::new([0; BUCKETS]),
            len: 0,
        }
    }

    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Feeds one comparison's latencies (ms; NaN or negative values are
    /// skipped). Returns whether the test now says "slower".
    pub fn observe(&mut self, incumbent_ms: f64, candidate_ms: f64) -> bool {
        if !(incumbent_ms >= 0.0 && candidate_ms >= 0.0) {
            return self.slower();
        }
        let mut slower = false;
        for l in &mut self.levels {
            if let Some(q) = l.threshold {
                let counted = match (candidate_ms > self.ratio * q, incumbent_ms > q) {
                    (true, false) => {
                        l.candidate_only += 1;
                        true
                    }
                    (false, true) => {
                        l.incumbent_only += 1;
                        true
                    }
                    _ => false,
                };
                if counted {
                    let n = l.candidate_only + l.incumbent_only;
                    l.slower = l.test.position(l.candidate_only, n) == Position::Above;
                }
            }
            slower |= l.slower;
        }
        let i = index(incumbent_ms);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.len += 1;
        if self.len >= WARMUP && (self.len.is_multiple_of(REFRESH) || self.len == WARMUP) {
            for j in 0..self.levels.len() {
                self.levels[j].threshold = self.quantile(self.levels[j].p);
            }
        }
        slower
    }

    /// Whether the candidate is, with confidence, slower than `ratio` times
    /// the incumbent at some tail level.
    pub fn slower(&self) -> bool {
        self.levels.iter().any(|l| l.slower)
    }

    /// Per level: `(p, threshold on the incumbent, candidate-only,
    /// incumbent-only)`, for display ("12 of 15 one-sided exceedances above
    /// the p99 were the candidate's").
    pub fn levels(&self) -> impl Iterator<Item = (f64, Option<f64>, u64, u64)> + '_ {
        self.levels
            .iter()
            .map(|l| (l.p, l.threshold, l.candidate_only, l.incumbent_only))
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.counts.fill(0);
        self.len = 0;
        for l in &mut self.levels {
            l.threshold = None;
            l.candidate_only = 0;
            l.incumbent_only = 0;
            l.slower = false;
        }
    }

    /// The incumbent's nearest-rank `p`-quantile, as its bucket's geometric
    /// middle.
    fn quantile(&self, p: f64) -> Option<f64> {
        if self.len == 0 {
            return None;
        }
        let rank = ((p * self.len as f64).ceil() as u64).clamp(1, self.len);
        let above = self.len - rank;
        let mut seen = 0u64;
        for (i, n) in self.counts.iter().enumerate().rev() {
            seen += u64::from(*n);
            if seen > above {
                return Some(MIN_MS * GAMMA.powf(i as f64 + 0.5));
            }
        }
        None
    }
}

fn index(ms: f64) -> usize {
    if ms.is_nan() || ms <= MIN_MS {
        return 0;
    }
    let i = ((ms / MIN_MS).ln() / GAMMA.ln()).floor();
    if i >= (BUCKETS - 1) as f64 {
        BUCKETS - 1
    } else {
        i as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_tracks_the_incumbents_quantile() {
        let mut t = SlowdownTest::new(1.5, 0.05, &[0.99]);
        for v in 1..=1000 {
            t.observe(f64::from(v), 1.0);
        }
        let (p, q, c, i) = t.levels().next().unwrap();
        assert_eq!(p, 0.99);
        let q = q.unwrap();
        assert!((q / 990.0 - 1.0).abs() < 0.05, "{q}");
        // The candidate at 1 ms never exceeds; the incumbent's top values do.
        assert_eq!(c, 0);
        assert!(i > 0);
        assert!(!t.slower());
        t.reset();
        assert_eq!(t.levels().next().unwrap(), (0.99, None, 0, 0));
    }

    #[test]
    fn a_candidate_far_slower_in_the_tail_is_judged_slower() {
        // Incumbent cycles 1..=100 ms; candidate is 3× the same.
        let mut t = SlowdownTest::new(1.5, 0.05, &[0.9]);
        let mut at = None;
        for k in 0..5000u32 {
            let v = f64::from(k % 100 + 1);
            if t.observe(v, 3.0 * v) && at.is_none() {
                at = Some(k);
            }
        }
        assert!(at.is_some_and(|k| k < 1000), "{at:?}");
        // The same latencies on both sides: never.
        let mut same = SlowdownTest::new(1.5, 0.05, &[0.9, 0.99]);
        for k in 0..5000u32 {
            let v = f64::from(k % 100 + 1);
            assert!(!same.observe(v, v));
        }
        // Bad input is skipped, and bad levels fall back to the p99.
        let mut odd = SlowdownTest::new(f64::NAN, 0.05, &[f64::NAN, 2.0]);
        assert_eq!(odd.ratio(), 1.0);
        assert_eq!(odd.levels().count(), 3);
        assert!(!odd.observe(f64::NAN, -1.0));
    }
}
