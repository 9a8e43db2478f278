//! A variance inflation (design effect) for a rate whose outcomes come in
//! clusters (a sticky key's user sends many correlated comparisons),
//! estimated online in bounded memory, so that sessions cannot fake
//! significance.
//!
//! # What it estimates
//!
//! With outcomes grouped by user, `Var(S) = p(1−p)·Σ_u n_u(1 + (n_u − 1)ρ)`
//! instead of `p(1−p)·n`; the design effect is the ratio,
//! `D = Var(S) / (p(1−p) n) ≥ 1` (Kish). With sessions of 20 and each user's
//! rate drawn from `Beta(10p, 10(1−p))` (`ρ = 1/11`), `D = 2.73`.
//!
//! # How, in bounded memory
//!
//! Users are hashed into `B` buckets (1,024 by default: 16 KiB); each bucket
//! keeps its outcomes and successes. Users are independent, so a bucket's
//! count `s_b` has variance `p(1−p)·D·n_b` whatever users share it, and
//!
//! ```text
//! D̂ = Σ_b (s_b − p̂ n_b)² / (p̂(1−p̂)·(n − Σ_b n_b²/n))
//! ```
//!
//! is a ratio-unbiased moment estimate (the denominator is the sum's
//! expectation for independent outcomes). The sums `Σ s_b²`, `Σ s_b n_b`,
//! `Σ n_b²` are kept exactly in integers and updated in O(1) per outcome, so
//! [`Inflation::design_effect`] is O(1) too. Under independence `D̂` is about
//! `χ²_{m−1}/(m−1)` over the `m` non-empty buckets (standard deviation 0.044
//! at `m = 1024`), so it is used with an upper margin of two standard
//! deviations, and as the worst case `n/m` while fewer than 30 users have
//! been seen (early decisions are where sessions faked significance: in the
//! simulation the false breaches at 0.91 came at 100 to 120 comparisons, from
//! 5 or 6 users). Hashing users together costs nothing in bias; a user spread
//! over buckets (no sticky key) measures nothing, as it should.
//!
//! # Use
//!
//! Feed every counted outcome with the hash of its sticky key
//! ([`Inflation::observe`]). Judge the confidence sequence on the effective
//! counts `(S/D, n/D)` ([`Inflation::effective`], then
//! [`super::onesided::OneSided::position_f`]), and temper the change
//! detector by `1/D` ([`super::detector::Detector::observe_tempered`], with
//! `D` read *before* the outcome is fed). Kish's effective sample size is a
//! large-sample correction, not an exact guarantee; the simulation
//! (`stats::sim`) measures what it buys. Reset with the evidence it
//! inflates; rebuild from stored `(user hash, outcome)` rows since the reset,
//! in any order (the estimate depends only on the per-bucket counts), or
//! from stored per-bucket counts ([`Inflation::bucket`],
//! [`Inflation::from_buckets`]).

/// The default number of buckets.
pub const BUCKETS: usize = 1024;

/// Below this many non-empty buckets (about this many users) the dispersion
/// says too little: the design effect is taken as the worst case, `n / m`
/// (every user's outcomes count as one).
pub const MIN_BUCKETS: u64 = 30;

/// An online design-effect estimate over hashed user buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Inflation {
    /// `(n_b, s_b)` per bucket.
    buckets: Box<[(u64, u64)]>,
    n: u64,
    s: u64,
    /// Non-empty buckets.
    m: u64,
    /// `Σ s_b²`, `Σ s_b n_b`, `Σ n_b²`.
    s2: u128,
    sn: u128,
    n2: u128,
}

impl Default for Inflation {
    fn default() -> Self {
        Inflation::new(BUCKETS)
    }
}

impl Inflation {
    /// An estimate over `buckets` buckets (at least 2).
    pub fn new(buckets: usize) -> Self {
        Inflation {
            buckets: vec![(0, 0); buckets.max(2)].into_boxed_slice(),
            n: 0,
            s: 0,
            m: 0,
            s2: 0,
            sn: 0,
            n2: 0,
        }
    }

    /// The bucket of a user hash (the hash is mixed again, so any hash, even
    /// a sequential id, spreads evenly).
    fn index(&self, user: u64) -> usize {
        let mixed = user.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
        (mixed % self.buckets.len() as u64) as usize
    }

    /// Counts one outcome of the user whose key hashes to `user`. O(1).
    pub fn observe(&mut self, user: u64, success: bool) {
        let i = self.index(user);
        let x = u64::from(success);
        let (nb, sb) = self.buckets[i];
        let (nb, sb) = (u128::from(nb), u128::from(sb));
        // (n+1)² = n² + 2n + 1; (s+x)(n+1) = sn + s + x(n+1); (s+x)² = s² + x(2s+1).
        self.n2 = self.n2.wrapping_add(2 * nb + 1);
        self.sn = self.sn.wrapping_add(sb + u128::from(x) * (nb + 1));
        self.s2 = self.s2.wrapping_add(u128::from(x) * (2 * sb + 1));
        let b = &mut self.buckets[i];
        if b.0 == 0 {
            self.m += 1;
        }
        b.0 += 1;
        b.1 += x;
        self.n += 1;
        self.s += x;
    }

    /// Outcomes and successes counted.
    pub fn counts(&self) -> (u64, u64) {
        (self.n, self.s)
    }

    /// The design effect to judge with, at least 1: with fewer than
    /// [`MIN_BUCKETS`] users seen, the worst case `n / m`; then `D̂` times
    /// `1 + 2·√(2/(m − 1))` (an upper margin for its noise, about 9 % with
    /// all 1,024 buckets in use); 1 while every outcome is the same. O(1).
    pub fn design_effect(&self) -> f64 {
        if self.n == 0 {
            return 1.0;
        }
        if self.m < MIN_BUCKETS {
            return (self.n as f64 / self.m.max(1) as f64).max(1.0);
        }
        if self.s == 0 || self.s == self.n {
            return 1.0;
        }
        let (n, s) = (self.n as f64, self.s as f64);
        let p = s / n;
        // Σ (s_b − p n_b)² = Σs² − 2p Σsn + p² Σn², in f64 on exact sums
        // (relative rounding about 1e-16 · n/(p(1−p)), harmless to 10⁹).
        let spread = self.s2 as f64 - 2.0 * p * self.sn as f64 + p * p * self.n2 as f64;
        let expected = p * (1.0 - p) * (n - self.n2 as f64 / n);
        if expected.is_nan() || expected <= 0.0 {
            return 1.0;
        }
        let margin = 1.0 + 2.0 * (2.0 / (self.m - 1) as f64).sqrt();
        (spread / expected * margin).max(1.0)
    }

    /// The effective counts `(successes / D, n / D)` for counts judged on
    /// these outcomes.
    pub fn effective(&self, successes: u64, n: u64) -> (f64, f64) {
        let d = self.design_effect();
        (successes.min(n) as f64 / d, n as f64 / d)
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        let len = self.buckets.len();
        *self = Inflation::new(len);
    }

    /// `(outcomes, successes)` of bucket `i` (to store).
    pub fn bucket(&self, i: usize) -> Option<(u64, u64)> {
        self.buckets.get(i).copied()
    }

    /// Rebuilds from stored per-bucket `(outcomes, successes)`; a bucket
    /// with more successes than outcomes counts as all successes.
    pub fn from_buckets(buckets: &[(u64, u64)]) -> Self {
        let mut f = Inflation::new(buckets.len());
        for (i, &(nb, sb)) in buckets.iter().enumerate().take(f.buckets.len()) {
            let sb = sb.min(nb);
            f.buckets[i] = (nb, sb);
            f.m += u64::from(nb > 0);
            f.n += nb;
            f.s += sb;
            let (nb, sb) = (u128::from(nb), u128::from(sb));
            f.n2 = f.n2.wrapping_add(nb * nb);
            f.sn = f.sn.wrapping_add(sb * nb);
            f.s2 = f.s2.wrapping_add(sb * sb);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    #[test]
    fn independent_outcomes_give_about_one() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut f = Inflation::default();
        assert_eq!(f.design_effect(), 1.0);
        // Two users so far, 20 outcomes each: the worst case, 20.
        for user in 0..2 {
            for k in 0..20 {
                f.observe(user, k % 3 != 0);
            }
        }
        assert_eq!(f.design_effect(), 20.0);
        f.reset();
        for _ in 0..200_000 {
            f.observe(rng.r#gen(), rng.gen_bool(0.9));
        }
        let d = f.design_effect();
        assert!((1.0..1.25).contains(&d), "{d}");
    }

    #[test]
    fn sessions_give_their_design_effect() {
        // Sessions of 20; each user agrees always or never (ρ = 1): D = 20.
        let mut rng = StdRng::seed_from_u64(2);
        let mut f = Inflation::default();
        for user in 0..20_000u64 {
            let good = rng.gen_bool(0.9);
            for _ in 0..20 {
                f.observe(user, good);
            }
        }
        let d = f.design_effect();
        assert!((19.0..24.0).contains(&d), "{d}");
        let (s, n) = f.effective(900, 1000);
        assert!((n - 1000.0 / d).abs() < 1e-9 && (s - 900.0 / d).abs() < 1e-9);
        // Rebuilt from its buckets, the same estimate.
        let buckets: Vec<_> = (0..BUCKETS).filter_map(|i| f.bucket(i)).collect();
        let g = Inflation::from_buckets(&buckets);
        assert_eq!(g.design_effect(), d);
        assert_eq!(g.counts(), f.counts());
        f.reset();
        assert_eq!(f.counts(), (0, 0));
        assert_eq!(f.design_effect(), 1.0);
    }
}
