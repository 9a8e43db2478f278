//! A change detector for a Bernoulli rate (agreement, error rate, feedback
//! rates) with its false alarms bounded over an unbounded run: a mixture of
//! Bernoulli CUSUMs, the CUSUM e-detector of Shin, Ramdas and Rinaldo,
//! "E-detectors: a nonparametric framework for sequential change detection"
//! (2022, arXiv:2203.03532), §3, with a fixed grid of alternatives.
//!
//! # Why beside the confidence sequence
//!
//! The confidence sequence counts every outcome since the last reset, so
//! after a good day (8.64M comparisons at 0.95) a drop to 0.60 needs some
//! 1.45M bad comparisons to pull the cumulative rate under the bar. A CUSUM
//! forgets good evidence: its statistic never goes below 0, so after any good
//! stretch it starts from (almost) 0 when the rate drops.
//!
//! # Construction
//!
//! Outcomes are read as "bad" (a mismatch for a minimum bar, an event for a
//! maximum) with bad-rate bar `b` (`1 − bar` for a minimum, `bar` for a
//! maximum). For each alternative `q_j > b` (odds of `b` times `e^{θ_j}`,
//! `θ ∈ {¼, ½, 1, 2, 4}`), one outcome `x` gives the factor
//! `E_j = (q_j/b)ˣ((1−q_j)/(1−b))¹⁻ˣ`, whose mean is at most 1 under every
//! bad-rate `r ≤ b` (the good side of the bar). Each arm keeps the CUSUM
//! `C_j ← max(0, C_j + λ·ln E_j)` (`λ ≤ 1`, a tempering, 1 unless a variance
//! inflation is set: [`Detector::observe_tempered`]); the detector alarms
//! when `max_j C_j ≥ h = ln(K·A)` (`K = 5` arms, `A` the configured average
//! run length).
//!
//! # Guarantees (precisely)
//!
//! With each outcome's rate, given everything before it, on the good side
//! of the bar (`r_t ≤ b` for the bad-rate; e.g. i.i.d. at any good rate):
//!
//! 1. **Within a horizon**: `P(an alarm within the first N outcomes) ≤ N/A`.
//!    Proof: an alarm at `n` means `Π_{t=k..n} E_j(t)^λ ≥ K·A` for some arm
//!    `j` and start `k ≤ n`; for fixed `(j, k)` that product is a
//!    nonnegative supermartingale from 1 (`E[E^λ] ≤ E[E]^λ ≤ 1`, Jensen), so
//!    Ville gives `1/(K·A)`; the union over `K` arms and `N` starts gives
//!    `N/A`. This does not need a constant rate.
//! 2. **Average run length**: under an i.i.d. good rate, `E[time to a false
//!    alarm] ≥ A` (each CUSUM is at most the Shiryaev–Roberts e-detector
//!    `R_n = (1 + R_{n−1})E_n`, and `Σ_j R_j/K − n` is a supermartingale:
//!    optional stopping, Shin et al. Prop. 2.4 / Lorden).
//!
//! Pick `A` from a route's share of `α` and the horizon it should hold over:
//! [`arl_for`] (`A = N/α`; 1M outcomes at 5 %: `A = 2·10⁷`, `h = 18.4`).
//! Both bounds are loose far from the bar: at 0.92 against a bar of 0.9 the
//! simulation saw no false alarm in 100 runs of 10⁶ (`stats::sim`).
//!
//! Clustered outcomes (a user's verdicts are correlated) break the
//! independence these need. [`Detector::observe_tempered`] scales each
//! increment by `λ = 1/D` for a design effect `D` estimated online
//! ([`super::cluster::Inflation`]): exact guarantees above still hold for any
//! `λ ≤ 1`, and the diffusion approximation of the CUSUM's excursions is
//! restored to the i.i.d. one (the exponent `2μh/σ²` of the excursion
//! probability is multiplied by `D` when `μ`, `σ` are scaled by `1/D`).
//!
//! # Detection delay
//!
//! About `h / KL` outcomes after the change, for the arm nearest the new
//! rate (KL in nats per outcome): at a bar of 0.9 and `A = 2·10⁷`, a drop to
//! 0.60 in about 60 (median; p99 under 200) and to 0.85 in about 1,500,
//! whatever came before (see the README table for measured figures).
//!
//! # Cost and state
//!
//! Five `f64`s of state; per outcome five adds, five maxima and a compare
//! (the increments are precomputed): a few ns (measured: README). Rebuild
//! after a restart by replaying outcomes in order ([`Detector::observe`]);
//! replaying only a suffix (e.g. the last 10,000) gives a statistic at or
//! below the exact one (never an earlier alarm; it forgets only evidence from
//! before the suffix), and starting from [`Detector::reset`] (all zero) is
//! always valid. The state can also be stored and restored as numbers
//! ([`Detector::state`], [`Detector::with_state`]).

/// Log-odds shifts of the alternatives from the bar.
pub const THETAS: [f64; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];
/// Number of arms.
pub const ARMS: usize = THETAS.len();

/// Which way a change is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// The rate must stay at least the bar (agreement, satisfaction): alarm
    /// when it falls below.
    Min,
    /// The rate must stay at most the bar (error, reversal, reject rates):
    /// alarm when it rises above.
    Max,
}

/// `A = horizon / alpha`: the average run length that keeps the probability
/// of a false alarm within `horizon` outcomes at most `alpha`. `alpha` is
/// clamped to `[1e-12, 1]`, `horizon` to at least 1.
pub fn arl_for(alpha: f64, horizon: f64) -> f64 {
    let alpha = if alpha.is_nan() {
        1e-12
    } else {
        alpha.clamp(1e-12, 1.0)
    };
    horizon.max(1.0) / alpha
}

/// A mixture-of-CUSUMs change detector on one rate against one bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Detector {
    watch: Watch,
    bar: f64,
    /// `ln E_j` for a bad and a good outcome.
    bad: [f64; ARMS],
    good: [f64; ARMS],
    /// The CUSUM of each arm (≥ 0).
    state: [f64; ARMS],
    /// `ln(K·A)`.
    h: f64,
    /// The bar is 0 (max) or 1 (min): any bad outcome alarms.
    zero_bar: bool,
    /// The bar cannot be crossed (max ≥ 1, min ≤ 0): never alarms.
    never: bool,
}

impl Detector {
    /// A detector alarming when the rate leaves `bar` on the `watch` side,
    /// with average run length `arl` (see [`arl_for`]; at least 1).
    pub fn new(watch: Watch, bar: f64, arl: f64) -> Self {
        let b = match watch {
            Watch::Min => 1.0 - bar,
            Watch::Max => bar,
        };
        let never = b.is_nan() || b >= 1.0;
        let zero_bar = !never && b <= 0.0;
        let (mut bad, mut good) = ([0.0; ARMS], [0.0; ARMS]);
        if !never && !zero_bar {
            let odds = b / (1.0 - b);
            for (j, theta) in THETAS.iter().enumerate() {
                let o = odds * theta.exp();
                let q = o / (1.0 + o);
                bad[j] = (q / b).ln();
                good[j] = ((1.0 - q) / (1.0 - b)).ln();
            }
        }
        let arl = if arl.is_nan() { 1.0 } else { arl.max(1.0) };
        Detector {
            watch,
            bar,
            bad,
            good,
            state: [0.0; ARMS],
            h: (ARMS as f64 * arl).ln(),
            zero_bar,
            never,
        }
    }

    pub fn watch(&self) -> Watch {
        self.watch
    }

    pub fn bar(&self) -> f64 {
        self.bar
    }

    /// Feeds one outcome: `success` is a match for agreement (Min), an event
    /// (error, reversal, reject) for a Max bar. Returns whether the detector
    /// is in alarm after it.
    #[inline]
    pub fn observe(&mut self, success: bool) -> bool {
        self.observe_tempered(success, 1.0)
    }

    /// [`Detector::observe`] with the increment scaled by `lambda`
    /// (clamped to `(0, 1]`; `1/D` for a design effect `D`, computed from the
    /// outcomes before this one).
    #[inline]
    pub fn observe_tempered(&mut self, success: bool, lambda: f64) -> bool {
        let is_bad = match self.watch {
            Watch::Min => !success,
            Watch::Max => success,
        };
        if self.never {
            return false;
        }
        if self.zero_bar {
            if is_bad {
                self.state = [f64::INFINITY; ARMS];
            }
            return self.alarmed();
        }
        let lambda = if lambda > 0.0 { lambda.min(1.0) } else { 1.0 };
        let inc = if is_bad { &self.bad } else { &self.good };
        for (c, i) in self.state.iter_mut().zip(inc) {
            *c = (*c + lambda * i).max(0.0);
        }
        self.alarmed()
    }

    /// Feeds `count` outcomes that are all the same (a batch); the same as
    /// `count` calls of [`Detector::observe`] but O(1) for a run of good
    /// outcomes or of bad ones (CUSUM on a constant increment).
    pub fn observe_many(&mut self, success: bool, count: u64) -> bool {
        if count == 0 || self.never {
            return self.alarmed();
        }
        if self.zero_bar {
            return self.observe(success);
        }
        let is_bad = match self.watch {
            Watch::Min => !success,
            Watch::Max => success,
        };
        let inc = if is_bad { &self.bad } else { &self.good };
        for (c, i) in self.state.iter_mut().zip(inc) {
            *c = (*c + count as f64 * i).max(0.0);
        }
        self.alarmed()
    }

    /// Whether `max_j C_j ≥ h`.
    #[inline]
    pub fn alarmed(&self) -> bool {
        self.evidence() >= self.h
    }

    /// `max_j C_j`, the log of the largest CUSUM e-value (0: no sign of a
    /// change).
    pub fn evidence(&self) -> f64 {
        self.state.iter().copied().fold(0.0, f64::max)
    }

    /// The alarm threshold `h = ln(K·A)` on [`Detector::evidence`].
    pub fn threshold(&self) -> f64 {
        self.h
    }

    /// Forgets everything (after an alarm has been acted on, or a change by
    /// a person).
    pub fn reset(&mut self) {
        self.state = [0.0; ARMS];
    }

    /// The arms' CUSUMs, to store.
    pub fn state(&self) -> [f64; ARMS] {
        self.state
    }

    /// The detector with stored CUSUMs (negative or NaN values count as 0).
    pub fn with_state(mut self, state: [f64; ARMS]) -> Self {
        for (c, s) in self.state.iter_mut().zip(state) {
            *c = if s > 0.0 { s } else { 0.0 };
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_good_stretch_leaves_no_credit() {
        let mut d = Detector::new(Watch::Min, 0.9, arl_for(0.05, 1e6));
        assert!((d.threshold() - (5.0 * 2e7f64).ln()).abs() < 1e-9);
        // A day of matches, in one batch: the statistic stays at 0.
        assert!(!d.observe_many(true, 8_640_000));
        assert_eq!(d.evidence(), 0.0);
        // Then nothing but mismatches: the bad-rate 1 arm grows by ln(q/b).
        let mut n = 0;
        while !d.observe(false) {
            n += 1;
        }
        // ln(q/0.1) per mismatch for the largest arm (q = 0.858): 10 steps.
        assert!((8..=12).contains(&n), "{n}");
        d.reset();
        assert!(!d.alarmed());
    }

    #[test]
    fn observe_many_equals_repeated_observe() {
        let mut a = Detector::new(Watch::Max, 0.02, 1e7);
        let mut b = a.clone();
        for (x, k) in [(true, 3u64), (false, 50), (true, 7), (false, 2)] {
            a.observe_many(x, k);
            for _ in 0..k {
                b.observe(x);
            }
        }
        for (x, y) in a.state().iter().zip(b.state()) {
            assert!((x - y).abs() < 1e-9, "{x} {y}");
        }
        let c = Detector::new(Watch::Max, 0.02, 1e7).with_state(a.state());
        assert_eq!(c.state(), a.state());
        let d = Detector::new(Watch::Max, 0.02, 1e7).with_state([-1.0, f64::NAN, 0.0, 1.0, 2.0]);
        assert_eq!(d.state(), [0.0, 0.0, 0.0, 1.0, 2.0]);
    }

    #[test]
    fn zero_bars_alarm_at_the_first_event_only() {
        let mut d = Detector::new(Watch::Max, 0.0, 1e7);
        assert!(!d.observe_many(false, 1_000_000));
        assert!(!d.alarmed());
        assert!(d.observe(true));
        d.reset();
        assert!(!d.alarmed());
        let mut m = Detector::new(Watch::Min, 1.0, 1e7);
        assert!(!m.observe_many(true, 1000));
        assert!(m.observe(false));
        // Bars that cannot be crossed never alarm.
        let mut never = Detector::new(Watch::Max, 1.0, 1e7);
        assert!(!never.observe_many(true, 1000));
        let mut nan = Detector::new(Watch::Min, f64::NAN, f64::NAN);
        assert!(!nan.observe(false));
    }

    #[test]
    fn tempering_slows_the_statistic_and_is_clamped() {
        let mut a = Detector::new(Watch::Min, 0.9, 1e7);
        let mut b = a.clone();
        a.observe_tempered(false, 0.5);
        b.observe(false);
        assert!((a.evidence() * 2.0 - b.evidence()).abs() < 1e-12);
        let mut c = Detector::new(Watch::Min, 0.9, 1e7);
        c.observe_tempered(false, 7.0);
        assert_eq!(c.evidence(), b.evidence());
        let mut z = Detector::new(Watch::Min, 0.9, 1e7);
        z.observe_tempered(false, f64::NAN);
        assert_eq!(z.evidence(), b.evidence());
    }
}
