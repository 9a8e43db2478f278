//! The statistics of slice discovery: Fisher's exact test (one-sided: the
//! upper tail of the hypergeometric distribution of mismatches), the
//! step-up procedures of Benjamini–Hochberg and Benjamini–Yekutieli, and
//! Newcombe's interval for the gap between two agreements.
//!
//! Pure and total: no IO, no allocation except the p-values' sort.

use crate::config::slices::Fdr;
use crate::stats::{Z95, wilson};

/// `ln(n!)`: exact sums below 20, Stirling's series above (relative error
/// below 1e-15, so a tail probability keeps about ten digits even at a
/// million comparisons).
pub fn ln_fact(n: u64) -> f64 {
    if n < 20 {
        return (2..=n).map(|i| (i as f64).ln()).sum();
    }
    let x = n as f64;
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    x * x.ln() - x
        + 0.5 * (std::f64::consts::TAU * x).ln()
        + inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 / 1260.0))
}

fn ln_choose(n: u64, k: u64) -> f64 {
    ln_fact(n) - ln_fact(k) - ln_fact(n - k)
}

/// One-sided Fisher exact test that a group has more mismatches than the
/// rest: `P(X ≥ bad)` where `X` is the mismatches among `n` comparisons
/// drawn without replacement from `total` of which `total_bad` mismatched.
///
/// Only small p-values matter to the step-up procedures, so any p-value
/// above `cap` is returned as `1.0` (it can never be a discovery), which
/// lets the sum stop early and skips groups at or below their expected count
/// (their p-value is at least one half).
pub fn fisher_worse(total: u64, total_bad: u64, n: u64, bad: u64, cap: f64) -> f64 {
    let (n, total_bad) = (n.min(total), total_bad.min(total));
    let good = total - total_bad;
    let lo = n.saturating_sub(good);
    let hi = n.min(total_bad);
    if bad <= lo || n == 0 || total_bad == 0 {
        return 1.0;
    }
    if bad > hi {
        return 0.0;
    }
    // The median is the floor or ceiling of the mean.
    if (bad as f64) <= (n as f64 * total_bad as f64 / total as f64).floor() {
        return 1.0;
    }
    let ln_all = ln_choose(total, n);
    let mut term = (ln_choose(total_bad, bad) + ln_choose(good, n - bad) - ln_all).exp();
    let mut sum = 0.0;
    let mut x = bad;
    loop {
        sum += term;
        if sum > cap {
            return 1.0;
        }
        if x >= hi || term < sum * 1e-16 {
            return sum.min(1.0);
        }
        // pmf(x+1) / pmf(x): above the mode the terms only shrink.
        let ratio = ((total_bad - x) as f64 * (n - x) as f64)
            / ((x + 1) as f64 * (good + x + 1 - n) as f64);
        term *= ratio;
        x += 1;
    }
}

/// `1 + 1/2 + ... + 1/m`, the Benjamini–Yekutieli correction.
pub fn harmonic(m: u64) -> f64 {
    if m <= 100_000 {
        return (1..=m).map(|i| 1.0 / i as f64).sum();
    }
    let x = m as f64;
    x.ln() + 0.577_215_664_901_532_9 + 1.0 / (2.0 * x) - 1.0 / (12.0 * x * x)
}

/// The constant the step-up thresholds `k·alpha/(m·c)` are divided by.
fn dependence(fdr: Fdr, m: u64) -> f64 {
    match fdr {
        Fdr::Bh => 1.0,
        Fdr::By => harmonic(m),
    }
}

/// The largest threshold any hypothesis of a family of `m` can be held to:
/// a p-value above it is never a discovery, whatever the others are.
pub fn max_threshold(fdr: Fdr, m: u64, alpha: f64) -> f64 {
    alpha / dependence(fdr, m.max(1))
}

/// The step-up procedure over a family of `m` hypotheses of which `p` holds
/// the p-values computed (the others are taken as 1, which changes nothing:
/// a p-value above [`max_threshold`] is never rejected and never moves
/// another's rank). Returns the threshold `t`: every hypothesis with
/// `p ≤ t` is a discovery; `0.0` when there is none.
pub fn step_up(p: &mut [f64], m: u64, alpha: f64, fdr: Fdr) -> f64 {
    let m = m.max(p.len() as u64).max(1);
    let per = alpha / (m as f64 * dependence(fdr, m));
    p.sort_unstable_by(f64::total_cmp);
    let mut t = 0.0;
    for (i, &pi) in p.iter().enumerate() {
        let bound = (i + 1) as f64 * per;
        if pi <= bound {
            t = bound.max(pi);
        }
    }
    // Every p-value ≤ the last one that passed is rejected: use it exactly.
    p.iter().copied().filter(|&pi| pi <= t).fold(0.0, f64::max)
}

/// An agreement with its Wilson 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Rate {
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Rate {
    pub fn of(ok: u64, n: u64) -> Rate {
        let (lo, hi) = wilson(ok, n, Z95);
        let value = if n == 0 { 0.0 } else { ok as f64 / n as f64 };
        Rate { value, lo, hi }
    }
}

/// How much lower a slice's agreement is than the rest's, with Newcombe's
/// hybrid Wilson 95 % interval (his method 10): good coverage at the
/// agreements near 1 that canaries live at, where the Wald interval is not.
pub fn gap(rest: Rate, slice: Rate) -> Rate {
    let d = rest.value - slice.value;
    let lo = d - ((rest.value - rest.lo).powi(2) + (slice.hi - slice.value).powi(2)).sqrt();
    let hi = d + ((rest.hi - rest.value).powi(2) + (slice.value - slice.lo).powi(2)).sqrt();
    Rate { value: d, lo, hi }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tail summed term by term from exact binomial coefficients.
    fn brute(total: u64, total_bad: u64, n: u64, bad: u64) -> f64 {
        let c = |n: u64, k: u64| -> f64 {
            (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
        };
        let all = c(total, n);
        (bad..=n.min(total_bad))
            .map(|x| c(total_bad, x) * c(total - total_bad, n - x) / all)
            .sum()
    }

    #[test]
    fn ln_fact_matches_exact_products() {
        let mut exact = 0.0;
        for n in 1..200u64 {
            exact += (n as f64).ln();
            assert!((ln_fact(n) - exact).abs() < 1e-9 * exact.max(1.0), "{n}");
        }
    }

    #[test]
    fn fisher_matches_the_direct_sum() {
        for &(total, tb, n, bad) in &[
            (100, 10, 20, 5),
            (100, 10, 20, 8),
            (60, 30, 10, 9),
            (200, 5, 50, 3),
            (150, 40, 40, 20),
        ] {
            let want = brute(total, tb, n, bad);
            let got = fisher_worse(total, tb, n, bad, 1.0);
            assert!(
                (got - want).abs() < 1e-9 * want.max(1e-300) || (got == 1.0 && want > 0.45),
                "{total} {tb} {n} {bad}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn fisher_edges_and_cap() {
        // At or below the expected count: never a discovery.
        assert_eq!(fisher_worse(1000, 50, 100, 5, 1.0), 1.0);
        // Everything bad in the group: the smallest possible tail.
        let all = fisher_worse(1000, 100, 100, 100, 1.0);
        assert!(all > 0.0 && all < 1e-100);
        // Above the cap: reported as 1.
        assert_eq!(fisher_worse(1000, 50, 100, 7, 1e-6), 1.0);
        assert_eq!(fisher_worse(0, 0, 0, 0, 1.0), 1.0);
        assert_eq!(fisher_worse(10, 0, 5, 0, 1.0), 1.0);
        // A planted slice at a million comparisons: tiny and finite.
        let p = fisher_worse(1_000_000, 57_000, 20_000, 8_000, 1.0);
        assert!(p < 1e-100, "{p}");
    }

    #[test]
    fn step_up_bh_and_by() {
        // The textbook example: BH at 0.05 over 10 rejects the first two.
        let mut p = vec![
            0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216,
        ];
        let t = step_up(&mut p, 10, 0.05, Fdr::Bh);
        assert_eq!(p.iter().filter(|&&x| x <= t).count(), 2);
        // BY divides by H(10) = 2.93: only the first survives.
        let t = step_up(&mut p, 10, 0.05, Fdr::By);
        assert_eq!(p.iter().filter(|&&x| x <= t).count(), 1);
        // Uncomputed hypotheses still count in m.
        let mut one = vec![0.004];
        assert_eq!(step_up(&mut one, 1, 0.05, Fdr::Bh), 0.004);
        assert_eq!(step_up(&mut one, 100, 0.05, Fdr::Bh), 0.0);
        assert_eq!(step_up(&mut [], 100, 0.05, Fdr::By), 0.0);
    }

    #[test]
    fn harmonic_is_continuous_at_the_switch() {
        let a = harmonic(100_000);
        let b = harmonic(100_001);
        assert!((b - a - 1.0 / 100_001.0).abs() < 1e-9);
        assert!((harmonic(1) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn gap_interval_brackets_the_difference() {
        let g = gap(Rate::of(9500, 10_000), Rate::of(600, 1000));
        assert!((g.value - 0.35).abs() < 1e-12);
        assert!(
            g.lo > 0.3 && g.lo < 0.35 && g.hi > 0.35 && g.hi < 0.4,
            "{g:?}"
        );
    }
}
