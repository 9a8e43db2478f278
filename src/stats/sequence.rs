//! Anytime-valid confidence sequences for a Bernoulli proportion (agreement
//! rate, candidate error rate), for the sequential guard (docs/src/concepts/guards.md).
//!
//! A Wilson 95 % interval is valid at one sample size chosen in advance. The
//! guard looks after every comparison, forever, and a test repeated that often
//! with a fixed-n interval eventually fires on noise. A *confidence sequence*
//! `(lo_n, hi_n)` instead covers the true rate at every `n` at once:
//! `P(∃ n: p ∉ (lo_n, hi_n)) ≤ α`, so the guard may check it as often as it
//! likes and stop whenever it likes.
//!
//! # Construction
//!
//! The two-sided beta-binomial mixture of Howard, Ramdas, McAuliffe and Sekhon,
//! "Time-uniform, nonparametric, nonasymptotic confidence sequences", *Ann.
//! Statist.* 49(2):1055–1080 (2021): method of mixtures, Lemma 2 eq. (3.6);
//! the beta-binomial mixture boundary is supplement Proposition S3, inverted
//! through its mixture supermartingale (A.23) exactly as in §5 item 2 (the
//! "beta-binomial strategy", with `g = p`, `h = 1 − p`, `V_n = p(1 − p)n`).
//! (arXiv:1810.08240 numbers the propositions differently.) For 0/1 data the
//! sub-Bernoulli supermartingale is the exact likelihood ratio, so this is the
//! mixture likelihood-ratio sequence of Robbins, "Statistical methods related
//! to the law of the iterated logarithm", *Ann. Math. Statist.* 41(5):1397–1409
//! (1970), with a Beta prior in place of the uniform one. The authors'
//! reference implementation is `bernoulli_confidence_interval` in
//! `gostevehoward/confseq` (`uniform_boundaries.h`).
//!
//! With `S` successes in `n` trials and `F = n − S`, for each candidate rate
//! `p` mix the likelihood ratio of `q` against `p` over `q ~ Beta(cp, c(1−p))`:
//!
//! ```text
//! M_n(p) = ∫ qˢ(1−q)ᶠ / (pˢ(1−p)ᶠ) dBeta(q; cp, c(1−p))
//!        = B(cp + S, c(1−p) + F) / (B(cp, c(1−p)) · pˢ(1−p)ᶠ)
//! ```
//!
//! Under rate `p`, `M_n(p)` is a nonnegative martingale starting at 1, so by
//! Ville's inequality `P(∃ n: M_n(p) ≥ 1/α) ≤ α`, and
//! `C_n = {p : M_n(p) < 1/α}` is a `(1 − α)` confidence sequence. It depends
//! only on `(S, n)`. `M_n(p̂) ≤ 1`, so it always holds `p̂ = S/n`, and it is an
//! interval: `ln M_n` falls up to its minimum near `p̂` and rises after it
//! (checked on a dense grid by `scripts/sequence/reference.py`; not proved here).
//!
//! # Tuning
//!
//! In the paper's terms the mixture is `Beta(r/(g(g+h)), r/(h(g+h)))` with
//! `r = ρ − gh`, where `ρ` is the normal-mixture precision tuned for intrinsic
//! time `m = p(1−p)·TUNE_N` by Proposition 3, eq. (3.14) (with `l₀ = 1`):
//! `m/ρ = k`, `k = −W₋₁(−α²/e) − 1`, that is `k − ln(1 + k) = 2 ln(1/α)`.
//! Expressed over `q`, that is `Beta(cp, c(1−p))` with one concentration
//! `c = TUNE_N/k − 1` for every `p` (`c ≈ 120.8` at `α = 0.05`). With
//! `TUNE_N = 1000` the sequence is about 1.55 times as wide as Wilson 95 %
//! from n = 500 to 2000, at most 1.62 times from 300 to 5000, 1.8 times at
//! 10⁵ and 2 times at 10⁶ (the price of validity at every `n`).
//!
//! # Use and cost
//!
//! Build a [`Sequence`] once per level (when the guard config is loaded).
//! [`Sequence::position`] (is the bar below, above or inside the sequence?)
//! evaluates `ln M_n(bar)` once: O(1), no allocation, about 0.2 µs in release
//! builds. It is the call to make after every comparison. [`Sequence::interval`]
//! finds both ends by a bracketed Illinois root search (about 25 evaluations,
//! at most 70 seen; some 5 µs), for display; [`Sequence::samples_to_decide`]
//! searches over `n` (some 4 µs), for `report` and `status`. `ln M` is
//! evaluated in a form that keeps its precision at `n = 10⁹` and beyond
//! (within 6e-13 of a 60-digit evaluation there). The free functions
//! [`interval`], [`position`], [`ln_mixture`] and [`samples_to_decide`] take
//! `alpha` and build the `Sequence` on each call.
//!
//! # What the guarantee needs
//!
//! The counts must run from a start fixed in advance (the guard's last reset),
//! not over a sliding window, and the outcomes must be independent with one
//! rate over that stretch. A sliding window restarts the test with every
//! sample, and over an unbounded horizon it fails as the Wilson check does,
//! only later: in `scripts/sequence/sim_sequential.py`, over a count window of 1000 this
//! sequence falsely breached a candidate at exactly the bar in 200 of 200 runs
//! of 10⁶ comparisons (15 of 100 at 0.91 against 0.9); counted from the
//! start, in 2 of 200 (and 0 of 100).

/// The sample size the sequence is tightest around (see the module docs).
pub const TUNE_N: f64 = 1000.0;

/// The smallest level used; a smaller (or NaN) `alpha` is raised to it.
pub const ALPHA_MIN: f64 = 1e-9;
/// The largest level used; a larger `alpha` is lowered to it.
pub const ALPHA_MAX: f64 = 0.5;

/// Where a bar lies with respect to the confidence sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The proportion is, with confidence, at or above the bar (`lo ≥ bar`).
    Above,
    /// The proportion is, with confidence, below the bar (`hi < bar`).
    Below,
    /// The bar is inside the sequence: not decided yet.
    Inside,
}

/// `α` clamped to `[ALPHA_MIN, ALPHA_MAX]` (NaN becomes `ALPHA_MIN`).
pub fn clamp_alpha(alpha: f64) -> f64 {
    if alpha.is_nan() {
        ALPHA_MIN
    } else {
        alpha.clamp(ALPHA_MIN, ALPHA_MAX)
    }
}

/// `k = m/ρ` of Howard et al. eq. (3.14), the root `k > 0` of
/// `k − ln(1 + k) = 2 ln(1/α)` (equivalently `−W₋₁(−α²/e) − 1`), by Newton's
/// method from `2 ln(1/α) + ln(1 + 2 ln(1/α))`, confseq's approximation.
pub fn tuning_ratio(alpha: f64) -> f64 {
    let l = 2.0 * (1.0 / clamp_alpha(alpha)).ln();
    let mut k = l + (1.0 + l).ln();
    for _ in 0..20 {
        let step = (k - (1.0 + k).ln() - l) * (1.0 + k) / k;
        k -= step;
        if step.abs() <= 1e-15 * k {
            break;
        }
    }
    k
}

/// The confidence sequence at one level: the level's constants worked out
/// once (build it when the guard's config is loaded), then cheap queries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sequence {
    alpha: f64,
    /// The Beta concentration `c = TUNE_N/k − 1`.
    c: f64,
    /// `ln(1/α)`.
    threshold: f64,
}

impl Sequence {
    /// The sequence at level `alpha`, clamped by [`clamp_alpha`].
    pub fn new(alpha: f64) -> Self {
        Sequence::tuned(alpha, TUNE_N)
    }

    /// The sequence at level `alpha` tightest around `tune_n` samples
    /// instead of [`TUNE_N`] (`c = tune_n/k − 1`, at least 1; a NaN
    /// `tune_n` is [`TUNE_N`]). A test that sees few samples (the
    /// latency test's tail exceedances) gains from a smaller `tune_n`.
    pub fn tuned(alpha: f64, tune_n: f64) -> Self {
        let alpha = clamp_alpha(alpha);
        let tune_n = if tune_n.is_nan() { TUNE_N } else { tune_n };
        Sequence {
            alpha,
            c: (tune_n / tuning_ratio(alpha) - 1.0).max(1.0),
            threshold: (1.0 / alpha).ln(),
        }
    }

    /// The level in use (after clamping).
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The concentration `c` of the `Beta(cp, c(1−p))` mixing distribution.
    pub fn concentration(&self) -> f64 {
        self.c
    }

    /// `ln M_n(p)`, the log of the mixture martingale (an e-value against the
    /// rate `p`): the evidence that the rate is not `p`. 0 for `n = 0`, `+∞`
    /// for a `p` the data rule out (`p = 0` after a success, `p = 1` after a
    /// failure). `successes > n` counts as `n`.
    pub fn ln_mixture(&self, successes: u64, n: u64, p: f64) -> f64 {
        ln_m(successes.min(n) as f64, n as f64, p, self.c)
    }

    /// The anytime-valid `(lo, hi)` for `successes` in `n`, within `[0, 1]`;
    /// `(0, 1)` for `n = 0`; `successes > n` counts as `n`. Each end is
    /// rounded outwards (by about 1e-15 relative). About 25 evaluations of
    /// `ln M` (some 5 µs): compute it for display, not per comparison.
    pub fn interval(&self, successes: u64, n: u64) -> (f64, f64) {
        if n == 0 {
            return (0.0, 1.0);
        }
        let (s, n) = (successes.min(n) as f64, n as f64);
        let g = |p: f64| ln_m(s, n, p, self.c) - self.threshold;
        let p_hat = s / n;
        // The bracket ends closest to 0 and 1 that still keep p > 0, 1 − p > 0.
        const P_MIN: f64 = 1e-300;
        const P_MAX: f64 = 1.0 - f64::EPSILON / 2.0;
        // g < 0 (inside) at p_hat, since M(p_hat) ≤ 1 < 1/α; g ≥ 0 is excluded.
        // Bracket each end by stepping out from p_hat by a normal-approximation
        // guess at the half-width, doubling it until the step leaves.
        let z2 = 2.0 * (self.threshold + 0.5 * (1.0 + n / self.c).ln()) + 1.0;
        let w0 = (z2 * p_hat * (1.0 - p_hat) / n).sqrt() + z2 / n;
        let lo = if s == 0.0 || g(P_MIN) < 0.0 {
            0.0
        } else {
            let (mut inside, mut w) = (p_hat, w0);
            loop {
                let out = (p_hat - w).max(P_MIN);
                if out == P_MIN || g(out) >= 0.0 {
                    break bracketed_root(out, inside, g).0;
                }
                (inside, w) = (out, 2.0 * w);
            }
        };
        let hi = if s == n || g(P_MAX) < 0.0 {
            1.0
        } else {
            let (mut inside, mut w) = (p_hat, w0);
            loop {
                let out = (p_hat + w).min(P_MAX);
                if out == P_MAX || g(out) >= 0.0 {
                    break bracketed_root(inside, out, g).1;
                }
                (inside, w) = (out, 2.0 * w);
            }
        };
        (lo, hi)
    }

    /// Where `bar` lies with respect to the sequence, in O(1): one evaluation
    /// of `ln M_n(bar)` (some 0.2 µs, no allocation); the same answer as
    /// comparing `bar` with [`Sequence::interval`]. Call it per comparison.
    ///
    /// For the guard: agreement breaches on [`Position::Below`] (upper bound
    /// below `min_agreement`) and may pass on [`Position::Above`] (lower bound
    /// at or above it); the error rate breaches on `Above` (lower bound above
    /// the maximum) and may pass on `Below` ([`Sequence::error_rate_within`]).
    /// A bar outside `(0, 1)` is decided at once wherever the data cannot
    /// reach it; NaN is `Inside`.
    pub fn position(&self, successes: u64, n: u64, bar: f64) -> Position {
        if n == 0 || bar.is_nan() {
            return Position::Inside;
        }
        if bar <= 0.0 {
            return Position::Above;
        }
        let s = successes.min(n);
        if bar > 1.0 || (bar == 1.0 && s < n) {
            return Position::Below;
        }
        if ln_m(s as f64, n as f64, bar, self.c) < self.threshold {
            Position::Inside
        } else if (s as f64) > bar * n as f64 {
            Position::Above
        } else {
            Position::Below
        }
    }

    /// Whether the upper bound of the error rate is at or below `max` (the
    /// pass condition on errors), in O(1).
    pub fn error_rate_within(&self, errors: u64, n: u64, max: f64) -> bool {
        max >= 1.0 || self.position(errors, n, max) == Position::Below
    }

    /// About how many samples in all (at least `n`) it takes until the
    /// sequence excludes `bar`, if the observed proportion stays at `p_hat`:
    /// the smallest `N ≥ max(n, 1)` with `ln M_N(bar) ≥ ln(1/α)` at
    /// `S = p_hat·N` (a real number of successes). `Some(n)` when it is
    /// already excluded; `None` when `p_hat == bar`, either is NaN, or it would
    /// take more than 10¹⁸ samples. Doubling then bisection over `N`: at most
    /// about 130 evaluations, for `report` and `status`, not per comparison.
    pub fn samples_to_decide(&self, p_hat: f64, bar: f64, n: u64) -> Option<u64> {
        if p_hat.is_nan() || bar.is_nan() {
            return None;
        }
        let p_hat = p_hat.clamp(0.0, 1.0);
        if p_hat == bar {
            return None;
        }
        let start = n.max(1);
        if bar <= 0.0 || bar >= 1.0 {
            // Only a rate of exactly 0 or 1 reaches such a bar, and p_hat is
            // not it: decided at once, as `position` says.
            return Some(start);
        }
        first_decided(start, |m: u64| {
            let m = m as f64;
            ln_m(p_hat * m, m, bar, self.c) >= self.threshold
        })
    }
}

/// The smallest `N ≥ start` with `decided(N)`, for a `decided` that stays
/// true once true: doubling then bisection; `None` beyond 10¹⁸.
pub(super) fn first_decided(start: u64, decided: impl Fn(u64) -> bool) -> Option<u64> {
    const LIMIT: u64 = 1_000_000_000_000_000_000;
    if decided(start) {
        return Some(start);
    }
    let (mut lo, mut hi) = (start, start);
    while !decided(hi) {
        if hi > LIMIT {
            return None;
        }
        lo = hi;
        hi = hi.saturating_mul(2);
    }
    // decided(hi) and not decided(lo): narrow down to the first decided.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if decided(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// [`Sequence::interval`] at level `alpha`.
pub fn interval(successes: u64, n: u64, alpha: f64) -> (f64, f64) {
    Sequence::new(alpha).interval(successes, n)
}

/// [`Sequence::position`] at level `alpha`.
pub fn position(successes: u64, n: u64, bar: f64, alpha: f64) -> Position {
    Sequence::new(alpha).position(successes, n, bar)
}

/// [`Sequence::ln_mixture`] at level `alpha` (the level sets the tuning).
pub fn ln_mixture(successes: u64, n: u64, p: f64, alpha: f64) -> f64 {
    Sequence::new(alpha).ln_mixture(successes, n, p)
}

/// [`Sequence::samples_to_decide`] at level `alpha`.
pub fn samples_to_decide(p_hat: f64, bar: f64, n: u64, alpha: f64) -> Option<u64> {
    Sequence::new(alpha).samples_to_decide(p_hat, bar, n)
}

/// The root of `g` in `[a, b]`, where `g(a)` and `g(b)` have opposite signs,
/// by the Illinois variant of regula falsi with a bisection step whenever two
/// steps have not halved the bracket; returns the final bracket, whose ends
/// keep the signs of `g(a)` and `g(b)`. At most 200 evaluations (10 to 30 in
/// practice), stopping once the bracket is within 2e-15 relative (or 1e-300
/// absolute).
pub(super) fn bracketed_root(mut a: f64, mut b: f64, g: impl Fn(f64) -> f64) -> (f64, f64) {
    let (mut ga, mut gb) = (g(a), g(b));
    let mut last_side = 0i8;
    let mut width_two_ago = f64::INFINITY;
    let mut width_one_ago = f64::INFINITY;
    for _ in 0..200 {
        let width = b - a;
        if width <= 2e-15 * b.abs().max(a.abs()) || width <= 1e-300 {
            break;
        }
        let secant = (a * gb - b * ga) / (gb - ga);
        let x = if width > 0.5 * width_two_ago || !(secant > a && secant < b) {
            a + width / 2.0
        } else {
            secant
        };
        (width_two_ago, width_one_ago) = (width_one_ago, width);
        let gx = g(x);
        if gx == 0.0 {
            // On the boundary: the excluded side of `x` is as good as `x`.
            return (x, x);
        }
        if (gx > 0.0) == (ga > 0.0) {
            (a, ga) = (x, gx);
            if last_side == -1 {
                gb /= 2.0;
            }
            last_side = -1;
        } else {
            (b, gb) = (x, gx);
            if last_side == 1 {
                ga /= 2.0;
            }
            last_side = 1;
        }
    }
    (a, b)
}

/// `ln M_n(p)` for real `s, n` (`0 ≤ s ≤ n`) and concentration `c`, written so
/// that the terms that grow with `n` cancel analytically rather than in
/// floating point (`t` is [`stirling_rest`]):
///
/// ```text
/// with x = cp + S, y = c(1−p) + F, N = c + n, d = S − np (= x − Np):
/// ln M = S·ln(1 + d/(Np)) + F·ln(1 − d/(N(1−p))) + cp·ln(x/N) + c(1−p)·ln(y/N)
///        + ½ ln(N/(xy)) + ½ ln 2π + t(x) + t(y) − t(N) − ln B(cp, c(1−p))
/// ```
pub(super) fn ln_m(s: f64, n: f64, p: f64, c: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    let f = n - s;
    if !(p > 0.0 && p < 1.0) {
        // The limits at the ends: M = 1 when the data have no success (p = 0)
        // or no failure (p = 1) to rule them out, +∞ otherwise.
        let ruled_out = if p <= 0.0 { s > 0.0 } else { f > 0.0 };
        return if ruled_out { f64::INFINITY } else { 0.0 };
    }
    let (a, b) = (c * p, c * (1.0 - p));
    let (x, y, big_n) = (a + s, b + f, c + n);
    let d = s - n * p;
    let kl_like = s * (d / (big_n * p)).ln_1p() + f * (-d / (big_n * (1.0 - p))).ln_1p();
    let edges = a * (x / big_n).ln() + b * (y / big_n).ln();
    let half = 0.5 * (big_n.ln() - x.ln() - y.ln()) + HALF_LN_2PI;
    kl_like + edges + half + stirling_rest(x) + stirling_rest(y)
        - stirling_rest(big_n)
        - ln_beta(a, b)
}

const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// `ln Γ(x)` for `x > 0`: Stirling's series to `x⁻¹³` for `x ≥ 10`, the
/// recurrence `Γ(x) = Γ(x + k)/(x(x+1)…(x+k−1))` below. Absolute error below
/// 5e-15 for small `x`, relative about 1e-16 for large `x` (checked against
/// mpmath). `+∞` at 0, NaN for negative or NaN `x`.
pub fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::INFINITY;
    }
    if x == f64::INFINITY {
        return f64::INFINITY;
    }
    if x >= 10.0 {
        return (x - 0.5) * x.ln() - x + HALF_LN_2PI + stirling_rest(x);
    }
    let mut shifted = x;
    let mut product = 1.0;
    while shifted < 10.0 {
        product *= shifted;
        shifted += 1.0;
    }
    ln_gamma(shifted) - product.ln()
}

/// `ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b)`.
pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// `t(x) = ln Γ(x) − ((x − ½) ln x − x + ½ ln 2π)`, the rest of Stirling's
/// formula, for `x > 0`.
fn stirling_rest(x: f64) -> f64 {
    if x < 10.0 {
        return ln_gamma(x) - ((x - 0.5) * x.ln() - x + HALF_LN_2PI);
    }
    // B_{2k} / (2k(2k−1) x^{2k−1}), k = 1..7.
    const C: [f64; 7] = [
        1.0 / 12.0,
        -1.0 / 360.0,
        1.0 / 1260.0,
        -1.0 / 1680.0,
        1.0 / 1188.0,
        -691.0 / 360_360.0,
        1.0 / 156.0,
    ];
    let r = 1.0 / x;
    let r2 = r * r;
    let mut sum = 0.0;
    for coef in C.iter().rev() {
        sum = sum * r2 + coef;
    }
    sum * r
}

#[cfg(test)]
#[allow(clippy::excessive_precision)] // reference figures are quoted as printed
mod tests;
