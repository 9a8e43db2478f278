//! Pure statistics for reports and guards: Wilson intervals, percentiles,
//! anytime-valid confidence sequences ([`sequence`]) and one-sided tests
//! ([`onesided`]), a change detector ([`detector`]), a latency test
//! ([`latency`]), a design effect for clustered outcomes ([`cluster`]) and a
//! route's error budget ([`alpha`]).
//!
//! No IO and no allocation; every function is total (empty input gives the
//! widest honest answer, not a panic).

pub mod alpha;
pub mod cluster;
pub mod detector;
pub mod latency;
pub mod onesided;
pub mod sequence;
#[cfg(test)]
pub(crate) mod sim;

/// The z value of a two-sided 95 % interval.
pub const Z95: f64 = 1.96;

/// The Wilson score interval `(lo, hi)` of a proportion `successes / n`.
///
/// Unlike the normal approximation it stays inside `[0, 1]` and is sensible
/// for small `n` and for proportions near 0 or 1, which is exactly where a
/// canary decision is made. `n = 0` says nothing: `(0, 1)`.
pub fn wilson(successes: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n_f = n as f64;
    let p = successes.min(n) as f64 / n_f;
    let z2 = z * z;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = z * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Where `bar` lies with respect to the Wilson interval of `successes / n`
/// at `z`: `Below` when the upper bound is under it, `Above` when the lower
/// bound is at or over it, with the zero bars decided exactly as
/// [`onesided::OneSided::position`] decides them: a bar of 0 is `Above` only
/// once an event has been seen (a Wilson lower bound of 0 "at or over" a bar
/// of 0 would breach a candidate that made no error), a bar of 1 is `Below`
/// only once a failure has been seen. `n = 0` or a NaN bar: `Inside`.
pub fn wilson_position(successes: u64, n: u64, bar: f64, z: f64) -> sequence::Position {
    use sequence::Position;
    let k = successes.min(n);
    if n == 0 || bar.is_nan() {
        return Position::Inside;
    }
    if bar <= 0.0 {
        return if k > 0 || bar < 0.0 {
            Position::Above
        } else {
            Position::Inside
        };
    }
    if bar >= 1.0 {
        return if k < n || bar > 1.0 {
            Position::Below
        } else {
            Position::Inside
        };
    }
    let (lo, hi) = wilson(k, n, z);
    if hi < bar {
        Position::Below
    } else if lo >= bar {
        Position::Above
    } else {
        Position::Inside
    }
}

/// The `p`-th percentile (`p` in percent, clamped to `0..=100`) of an
/// ascending slice, by the nearest-rank method: the smallest value such that
/// at least `p` % of the values are at or below it, i.e. the element of rank
/// `ceil(p / 100 * n)` (rank 1 for `p = 0`). Always one of the observed
/// values, never an interpolation. `None` for an empty slice.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-4
    }

    #[test]
    fn wilson_matches_known_figures() {
        let (lo, hi) = wilson(81, 263, Z95);
        assert!(close(lo, 0.2553) && close(hi, 0.3662), "{lo} {hi}");
        let (lo, hi) = wilson(0, 10, Z95);
        assert_eq!(lo, 0.0);
        assert!(close(hi, 0.2775), "{hi}");
        let (lo, hi) = wilson(10, 10, Z95);
        assert!(close(lo, 0.7225) && hi == 1.0, "{lo} {hi}");
        assert_eq!(wilson(0, 0, Z95), (0.0, 1.0));
        // More evidence, narrower interval around the same proportion.
        let (a, b) = wilson(90, 100, Z95);
        let (c, d) = wilson(900, 1000, Z95);
        assert!(a < c && d < b && c < 0.9 && d > 0.9);
    }

    #[test]
    fn wilson_zero_bars_breach_at_the_first_event_and_can_pass() {
        use onesided::{at_least, at_most};
        use sequence::Position;
        // The rule people.rs applies (`lo >= bar` is Above, Above on a
        // maximum is a breach) breaches a maximum of 0 with no event at all.
        let (lo, _) = wilson(0, 500, Z95);
        assert!(lo >= 0.0);
        assert_eq!(wilson_position(0, 500, 0.0, Z95), Position::Inside);
        assert!(at_most(wilson_position(0, 500, 0.0, Z95), 0, 0.0));
        assert_eq!(wilson_position(1, 500, 0.0, Z95), Position::Above);
        assert!(!at_most(wilson_position(1, 500, 0.0, Z95), 1, 0.0));
        assert_eq!(wilson_position(500, 500, 1.0, Z95), Position::Inside);
        assert!(at_least(wilson_position(500, 500, 1.0, Z95), 500, 500, 1.0));
        assert_eq!(wilson_position(499, 500, 1.0, Z95), Position::Below);
        // Ordinary bars as before.
        assert_eq!(wilson_position(80, 100, 0.9, Z95), Position::Below);
        assert_eq!(wilson_position(99, 100, 0.9, Z95), Position::Above);
        assert_eq!(wilson_position(90, 100, 0.9, Z95), Position::Inside);
        assert_eq!(wilson_position(0, 0, 0.0, Z95), Position::Inside);
        assert_eq!(wilson_position(1, 2, f64::NAN, Z95), Position::Inside);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 51.0), Some(6.0));
        assert_eq!(percentile(&v, 99.0), Some(10.0));
        assert_eq!(percentile(&v, 90.0), Some(9.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 100.0), Some(10.0));
        assert_eq!(percentile(&v, 250.0), Some(10.0));
        assert_eq!(percentile(&[7.5], 99.0), Some(7.5));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
