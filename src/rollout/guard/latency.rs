//! The latencies of a guard's window as a log-bucketed histogram: a sample
//! is added when it enters the window and removed when it leaves, each in
//! O(1), and a percentile is one pass over a fixed number of buckets, so
//! `max_latency_ratio` costs the same whatever the window holds.
//!
//! Buckets grow by 2 % from 1 µs to one hour (≈ 1,100 of them, 4 bytes
//! each), so a percentile is within 1 % of the exact one; smaller and larger
//! values fall in the first and last bucket.

/// Bucket `i` holds values in `[MIN_MS·γ^i, MIN_MS·γ^(i+1))`.
const GAMMA: f64 = 1.02;
const MIN_MS: f64 = 0.001;
const MAX_MS: f64 = 3_600_000.0;

fn bucket_count() -> usize {
    ((MAX_MS / MIN_MS).ln() / GAMMA.ln()).ceil() as usize + 1
}

/// A histogram of milliseconds that values can leave as well as enter.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Empty until the first value (a window without latencies costs nothing).
    counts: Vec<u32>,
    len: u64,
    /// The highest bucket that may be non-empty: a high percentile is read
    /// from here down, a few buckets rather than all of them.
    top: usize,
}

impl Histogram {
    pub fn add(&mut self, ms: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bucket_count()];
        }
        let i = Self::index(ms);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.len += 1;
        self.top = self.top.max(i);
    }

    /// Takes back a value [`Histogram::add`]ed before.
    pub fn remove(&mut self, ms: f64) {
        if let Some(n) = self.counts.get_mut(Self::index(ms))
            && *n > 0
        {
            *n -= 1;
            self.len -= 1;
        }
    }

    pub fn clear(&mut self) {
        self.counts.iter_mut().for_each(|n| *n = 0);
        self.len = 0;
        self.top = 0;
    }

    /// Values held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The nearest-rank `p`-th percentile (as [`crate::stats::percentile`]),
    /// as the middle of its bucket; `None` when empty.
    pub fn percentile(&mut self, p: f64) -> Option<f64> {
        if self.len == 0 {
            return None;
        }
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
        let rank = ((p / 100.0 * self.len as f64).ceil() as u64).clamp(1, self.len);
        // High percentiles are what the guard asks for: count from the top.
        let above = self.len - rank;
        // Removals leave `top` above the highest value: bring it down.
        while self.top > 0 && self.counts.get(self.top).is_some_and(|n| *n == 0) {
            self.top -= 1;
        }
        let mut seen = 0u64;
        let upto = self.counts.len().min(self.top + 1);
        for (i, n) in self.counts[..upto].iter().enumerate().rev() {
            seen += u64::from(*n);
            if seen > above {
                return Some(Self::value(i));
            }
        }
        None
    }

    /// The bucket of a value (pooled evidence ships bucket indices).
    pub fn index(ms: f64) -> usize {
        let last = bucket_count() - 1;
        if ms.is_nan() || ms <= MIN_MS {
            return 0;
        }
        let i = ((ms / MIN_MS).ln() / GAMMA.ln()).floor();
        if i >= last as f64 { last } else { i as usize }
    }

    /// The geometric middle of bucket `i`.
    pub fn value(i: usize) -> f64 {
        MIN_MS * GAMMA.powf(i as f64 + 0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_one_percent_and_values_can_leave() {
        let mut h = Histogram::default();
        assert_eq!(h.percentile(99.0), None);
        for v in 1..=1000 {
            h.add(f64::from(v));
        }
        for (p, exact) in [(50.0, 500.0), (99.0, 990.0), (100.0, 1000.0), (0.0, 1.0)] {
            let got = h.percentile(p).unwrap();
            assert!((got / exact - 1.0).abs() < 0.01, "p{p}: {got} vs {exact}");
        }
        for v in 501..=1000 {
            h.remove(f64::from(v));
        }
        assert_eq!(h.len(), 500);
        let got = h.percentile(99.0).unwrap();
        assert!((got / 495.0 - 1.0).abs() < 0.01, "{got}");
        // Out of range, NaN and negative values land in the edge buckets.
        for v in [f64::NAN, -1.0, 0.0, 1e12, f64::INFINITY] {
            h.add(v);
            h.remove(v);
        }
        assert_eq!(h.len(), 500);
        h.clear();
        assert_eq!(h.len(), 0);
        assert_eq!(h.percentile(50.0), None);
        assert!(bucket_count() < 1200, "{}", bucket_count());
    }
}
