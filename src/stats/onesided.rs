//! One-sided anytime-valid tests of a Bernoulli rate against one bar, for
//! one-sided decisions (a breach needs "confidently below", a pass
//! "confidently above"), each side at the full level `α`.
//!
//! # Why
//!
//! [`Sequence::position`] asks whether the bar is outside the *two-sided*
//! `(1 − α)` sequence. The guard only ever acts on one side at a time (a
//! breach on "below", a pass on "above"), so each of its decisions is made at
//! about `α/2`: at agreement exactly on the bar, 2–3 % false breaches against
//! a nominal 5 % (`../shared/sim/sequential`), and slower decisions than `α`
//! allows.
//!
//! # Construction
//!
//! The one-sided (truncated) beta-binomial mixture. With the two-sided
//! mixture `M_n(p) = ∫ LR_n(q) dπ(q)`, `LR_n(q) = qˢ(1−q)ᶠ / (pˢ(1−p)ᶠ)`,
//! `π = Beta(cp, c(1−p))` (the same `c` as [`Sequence`]), and
//! `I₀ = π(q < p)` (the prior mass below the bar, a regularized incomplete
//! beta function worked out once per bar):
//!
//! ```text
//! M⁻_n(p) = ∫_{q<p} LR_n(q) dπ(q) / I₀        (evidence that the rate is below p)
//! M⁺_n(p) = ∫_{q>p} LR_n(q) dπ(q) / (1 − I₀)  (evidence that the rate is above p)
//! ```
//!
//! For `q < p`, one outcome's factor `(q/p)ˣ((1−q)/(1−p))¹⁻ˣ` has mean
//! `r·q/p + (1−r)(1−q)/(1−p) ≤ 1` under any rate `r ≥ p`, so `M⁻(p)` is a
//! nonnegative supermartingale with mean ≤ 1 under the whole null `r ≥ p`,
//! and by Ville's inequality `P_r(∃ n: M⁻_n(p) ≥ 1/α) ≤ α` for every
//! `r ≥ p` (mirror image for `M⁺`).
//!
//! `M⁻` is not evaluated directly (the truncated integral would need an
//! incomplete beta function at `n` up to 10⁹ on every comparison); it is
//! bounded below by what is already computed. When `p̂ = S/n < p`, `LR_n(q)`
//! is unimodal with its peak at `p̂` and `LR_n(p) = 1`, so `LR_n(q) ≤ 1` for
//! every `q > p`: the part of `M` above the bar is at most `1 − I₀`, and
//! `M⁻ ≥ (M − (1 − I₀)) / I₀`. So "below" is decided when `p̂ < p` and
//!
//! ```text
//! M_n(p) ≥ I₀/α + (1 − I₀)          ("above": p̂ > p and M_n(p) ≥ (1 − I₀)/α + I₀)
//! ```
//!
//! a test at level `α` for each side (a sufficient condition for
//! `M⁻ ≥ 1/α`, so it is valid, and conservative by at most the `(1 − I₀)`
//! term: at `I₀ ≈ ½`, `α = 0.05`, a threshold of 10.5 instead of 10, against
//! 20 for the two-sided sequence). The guarantee needs what [`Sequence`]
//! needs: counts from a start fixed in advance and independent outcomes.
//!
//! # Zero bars
//!
//! A bar at 0 ("a rate of at most 0": any event is too many) or at 1 ("at
//! least 1": any failure is too many) is decided without statistics: one
//! event proves a rate above 0 ([`OneSided::position`] says `Above` at the
//! first event and never before), and with no event nothing says the rate is
//! above 0, so [`OneSided::at_most`] holds (a pass is possible: "no event in
//! `n`" is the most any finite sample can say). Mirror image at 1.
//!
//! # Use and cost
//!
//! Build a [`OneSided`] per bar when the config is loaded
//! ([`Sequence::one_sided`]; one incomplete beta function, a few µs); then
//! [`OneSided::position`] is one evaluation of `ln M` (some 0.2 µs, no
//! allocation), the call to make per comparison. [`OneSided::position_f`]
//! takes real (effective) counts, as [`super::cluster::Inflation`] gives.
//! [`OneSided::lower_bound`] / [`OneSided::upper_bound`] are the one-sided
//! confidence bounds for display (root searches, some 20 µs).

use super::sequence::{Position, Sequence, bracketed_root, first_decided, ln_beta, ln_m};

/// A one-sided test of a rate against one bar at the sequence's level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneSided {
    seq: Sequence,
    bar: f64,
    /// `ln(I₀/α + 1 − I₀)`: "below" is decided at `ln M` at or above it.
    ln_below: f64,
    /// `ln((1 − I₀)/α + I₀)`: "above" is decided at `ln M` at or above it.
    ln_above: f64,
}

impl Sequence {
    /// The one-sided tests against `bar` at this sequence's level and tuning.
    pub fn one_sided(&self, bar: f64) -> OneSided {
        OneSided::new(*self, bar)
    }
}

/// The thresholds on `ln M` of the two one-sided tests at `bar`.
fn thresholds(seq: &Sequence, bar: f64) -> (f64, f64) {
    let c = seq.concentration();
    let alpha = seq.alpha();
    let i0 = if bar > 0.0 && bar < 1.0 {
        beta_inc(c * bar, c * (1.0 - bar), bar)
    } else {
        0.5
    };
    (
        (i0 / alpha + (1.0 - i0)).ln(),
        ((1.0 - i0) / alpha + i0).ln(),
    )
}

impl OneSided {
    /// The tests against `bar` (see [`Sequence::one_sided`]). A NaN bar is
    /// never decided.
    pub fn new(seq: Sequence, bar: f64) -> Self {
        let (ln_below, ln_above) = thresholds(&seq, bar);
        OneSided {
            seq,
            bar,
            ln_below,
            ln_above,
        }
    }

    /// The bar.
    pub fn bar(&self) -> f64 {
        self.bar
    }

    /// The level of each side.
    pub fn alpha(&self) -> f64 {
        self.seq.alpha()
    }

    /// Whether the rate is, with confidence `1 − α`, below the bar
    /// ([`Position::Below`]), above it ([`Position::Above`]), or not decided;
    /// each side is a level-`α` test. O(1), no allocation.
    /// `successes > n` counts as `n`.
    pub fn position(&self, successes: u64, n: u64) -> Position {
        self.position_f(successes.min(n) as f64, n as f64)
    }

    /// [`OneSided::position`] for real counts `0 ≤ s ≤ n` (effective counts
    /// after a variance inflation, [`super::cluster::Inflation::effective`]).
    pub fn position_f(&self, s: f64, n: f64) -> Position {
        let bar = self.bar;
        if n.is_nan() || n <= 0.0 || bar.is_nan() || s.is_nan() || s < 0.0 {
            return Position::Inside;
        }
        let s = s.min(n);
        if bar <= 0.0 {
            // Any event proves a rate above 0 (above a negative bar, always).
            return if s > 0.0 || bar < 0.0 {
                Position::Above
            } else {
                Position::Inside
            };
        }
        if bar >= 1.0 {
            return if s < n || bar > 1.0 {
                Position::Below
            } else {
                Position::Inside
            };
        }
        let p_hat = s / n;
        if p_hat == bar {
            return Position::Inside;
        }
        let ln_m = ln_m(s, n, bar, self.seq.concentration());
        if p_hat < bar && ln_m >= self.ln_below {
            Position::Below
        } else if p_hat > bar && ln_m >= self.ln_above {
            Position::Above
        } else {
            Position::Inside
        }
    }

    /// The pass condition for a maximum (error, reversal, reject rates): the
    /// rate is confidently below the bar, or the bar is 0 and no event was
    /// seen (see the module docs on zero bars). Breach on
    /// `position(..) == Above`.
    pub fn at_most(&self, events: u64, n: u64) -> bool {
        at_most(self.position(events, n), events, self.bar)
    }

    /// The pass condition for a minimum (agreement, satisfaction): the rate
    /// is confidently above the bar, or the bar is 1 and no failure was seen.
    /// Breach on `position(..) == Below`.
    pub fn at_least(&self, successes: u64, n: u64) -> bool {
        at_least(self.position(successes, n), successes, n, self.bar)
    }

    /// The one-sided lower confidence bound (level `α`): the smallest rate
    /// not ruled out by the "above" test; 0 for `n = 0` or no success.
    pub fn lower_bound(&self, successes: u64, n: u64) -> f64 {
        let s = successes.min(n) as f64;
        if n == 0 || s == 0.0 {
            return 0.0;
        }
        let n = n as f64;
        let p_hat = s / n;
        let seq = self.seq;
        // Excluded (g ≥ 0) for p well below p̂, inside at p̂.
        let g = move |p: f64| {
            let (_, ln_above) = thresholds(&seq, p);
            ln_m(s, n, p, seq.concentration()) - ln_above
        };
        const P_MIN: f64 = 1e-300;
        if g(P_MIN) < 0.0 {
            return 0.0;
        }
        bracketed_root(P_MIN, p_hat, g).0
    }

    /// The one-sided upper confidence bound (level `α`): the largest rate not
    /// ruled out by the "below" test; 1 for `n = 0` or no failure.
    pub fn upper_bound(&self, successes: u64, n: u64) -> f64 {
        let s = successes.min(n) as f64;
        if n == 0 || s == n as f64 {
            return 1.0;
        }
        let n = n as f64;
        let p_hat = s / n;
        let seq = self.seq;
        let g = move |p: f64| {
            let (ln_below, _) = thresholds(&seq, p);
            ln_m(s, n, p, seq.concentration()) - ln_below
        };
        const P_MAX: f64 = 1.0 - f64::EPSILON / 2.0;
        if g(P_MAX) < 0.0 {
            return 1.0;
        }
        bracketed_root(p_hat, P_MAX, g).1
    }

    /// About how many samples in all (at least `n`) until this test decides,
    /// if the observed rate stays at `p_hat` (as
    /// [`Sequence::samples_to_decide`]); `None` when `p_hat` is on the bar,
    /// NaN, or it would take more than 10¹⁸ samples.
    pub fn samples_to_decide(&self, p_hat: f64, n: u64) -> Option<u64> {
        let bar = self.bar;
        if p_hat.is_nan() || bar.is_nan() {
            return None;
        }
        let p_hat = p_hat.clamp(0.0, 1.0);
        if p_hat == bar {
            return None;
        }
        let start = n.max(1);
        if bar <= 0.0 || bar >= 1.0 {
            return Some(start);
        }
        let thr = if p_hat < bar {
            self.ln_below
        } else {
            self.ln_above
        };
        let c = self.seq.concentration();
        first_decided(start, |m: u64| {
            let m = m as f64;
            ln_m(p_hat * m, m, bar, c) >= thr
        })
    }
}

/// The pass rule for a maximum, whichever method gave `position`
/// (`Below`: confidently under the bar), with a bar of 0 passing while no
/// event has been seen. Breach on `Above`, which for a bar of 0 must mean
/// "at least one event" ([`OneSided::position`], [`super::wilson_position`]).
pub fn at_most(position: Position, events: u64, bar: f64) -> bool {
    position == Position::Below || (bar == 0.0 && events == 0)
}

/// The pass rule for a minimum (mirror image of [`at_most`]): a bar of 1
/// passes while no failure has been seen.
pub fn at_least(position: Position, successes: u64, n: u64, bar: f64) -> bool {
    position == Position::Above || (bar == 1.0 && successes >= n)
}

/// The regularized incomplete beta function `I_x(a, b)` for `a, b > 0`, by
/// the continued fraction (modified Lentz), on the side of `x` where it
/// converges fast; O(√max(a, b)) terms. Used once per bar, for `I₀`, at
/// `a, b` of the order of the mixture's concentration (some 120); the tests
/// check it against mpmath to 1e-12 (`scripts/sim/onesided_check.py` prints
/// the values, and checks the bound `M⁻ ≥ (M − (1 − I₀))/I₀` against the
/// truncated mixture integrated at 60 digits).
pub fn beta_inc(a: f64, b: f64, x: f64) -> f64 {
    if x.is_nan() || a.is_nan() || b.is_nan() || a <= 0.0 || b <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = a * x.ln() + b * (-x).ln_1p() - ln_beta(a, b);
    if x < (a + 1.0) / (a + b + 2.0) {
        (ln_front.exp() * continued_fraction(a, b, x) / a).clamp(0.0, 1.0)
    } else {
        (1.0 - ln_front.exp() * continued_fraction(b, a, 1.0 - x) / b).clamp(0.0, 1.0)
    }
}

/// The continued fraction of `I_x(a, b)` (Numerical Recipes' `betacf`).
fn continued_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..100_000 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq() -> Sequence {
        Sequence::new(0.05)
    }

    #[test]
    fn incomplete_beta_matches_known_values() {
        // mpmath.betainc(a, b, 0, x, regularized=True), 30 digits.
        let cases = [
            (2.0, 3.0, 0.4, 0.5248),
            (0.5, 0.5, 0.3, 0.369_010_119_565_545_4),
            (
                108.696_139_828_791_22,
                12.077_348_869_865_691,
                0.9,
                0.467_684_775_215_784_9,
            ),
        ];
        for (a, b, x, want) in cases {
            let got = beta_inc(a, b, x);
            assert!(
                (got - want).abs() < 1e-12,
                "I_{x}({a}, {b}) = {got}, want {want}"
            );
        }
        assert_eq!(beta_inc(2.0, 3.0, 0.0), 0.0);
        assert_eq!(beta_inc(2.0, 3.0, 1.0), 1.0);
        assert!(beta_inc(-1.0, 3.0, 0.5).is_nan());
    }

    #[test]
    fn one_sided_decides_sooner_than_two_sided_and_agrees_in_direction() {
        let s = seq();
        let t = s.one_sided(0.9);
        // Every decision of the two-sided sequence is one of the one-sided
        // tests too, and some are decided only one-sidedly.
        let mut only_one_sided = 0;
        for n in [50u64, 100, 200, 400, 1000, 5000] {
            for k in 0..=n {
                let two = s.position(k, n, 0.9);
                let one = t.position(k, n);
                if two != Position::Inside {
                    assert_eq!(two, one, "k={k} n={n}");
                } else if one != Position::Inside {
                    only_one_sided += 1;
                }
            }
        }
        assert!(only_one_sided > 0);
        // The interval bounds bracket p̂ and sit inside the two-sided interval.
        let (lo2, hi2) = s.interval(930, 1000);
        let (lo, hi) = (t.lower_bound(930, 1000), t.upper_bound(930, 1000));
        assert!(
            lo2 < lo && lo < 0.93 && 0.93 < hi && hi < hi2,
            "{lo2} {lo} {hi} {hi2}"
        );
        // The lower bound is where "above" starts to hold.
        assert_eq!(s.one_sided(lo * 0.999).position(930, 1000), Position::Above);
        assert_eq!(
            s.one_sided(lo * 1.001).position(930, 1000),
            Position::Inside
        );
        assert_eq!(s.one_sided(hi * 1.001).position(930, 1000), Position::Below);
    }

    #[test]
    fn samples_to_decide_is_where_position_decides() {
        let t = seq().one_sided(0.9);
        let n = t.samples_to_decide(0.95, 0).unwrap();
        let s = |m: u64| (0.95 * m as f64).round() as u64;
        assert_eq!(t.position(s(n + 2), n + 2), Position::Above);
        assert_eq!(t.position(s(n - 20), n - 20), Position::Inside);
        assert!(t.samples_to_decide(0.9, 10).is_none());
        assert_eq!(t.samples_to_decide(0.5, 5000), Some(5000));
        assert!(t.samples_to_decide(0.85, 0).unwrap() > n);
    }

    #[test]
    fn a_zero_bar_breaches_at_the_first_event_and_can_pass() {
        // The defect: the two-sided sequence puts a bar of 0 "below" any
        // rate, so a guard that breaches a maximum on `Above` rolled back a
        // candidate with no event at all.
        assert_eq!(seq().position(0, 10_000, 0.0), Position::Above);
        let t = seq().one_sided(0.0);
        // No event: nothing says the rate is above 0, and a pass is possible.
        assert_eq!(t.position(0, 10_000), Position::Inside);
        assert!(t.at_most(0, 10_000));
        assert!(t.at_most(0, 0));
        // The first event is a breach, at any n.
        assert_eq!(t.position(1, 1), Position::Above);
        assert_eq!(t.position(1, 1_000_000), Position::Above);
        assert!(!t.at_most(1, 1_000_000));
        // Mirror image: a minimum of 1 (any failure is too many).
        let one = seq().one_sided(1.0);
        assert_eq!(one.position(500, 500), Position::Inside);
        assert!(one.at_least(500, 500));
        assert_eq!(one.position(499, 500), Position::Below);
        assert!(!one.at_least(499, 500));
        // Bars outside [0, 1] and NaN.
        assert_eq!(seq().one_sided(-0.1).position(0, 5), Position::Above);
        assert_eq!(seq().one_sided(1.5).position(5, 5), Position::Below);
        assert_eq!(seq().one_sided(f64::NAN).position(3, 5), Position::Inside);
        assert_eq!(seq().one_sided(0.5).position(3, 0), Position::Inside);
    }

    #[test]
    fn effective_counts_decide_later() {
        let t = seq().one_sided(0.9);
        assert_eq!(t.position(9500, 10_000), Position::Above);
        // The same proportion over a tenth of the effective samples.
        assert_eq!(t.position_f(95.0, 100.0), Position::Inside);
        assert_eq!(t.position_f(f64::NAN, 100.0), Position::Inside);
    }
}
