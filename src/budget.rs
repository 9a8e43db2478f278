//! `store.capture_budget`: a bound on the answer bytes held for comparison
//! across every exchange in flight. Each captured answer carries a
//! [`Charge`] of the bytes it keeps, added to the `understudy_capture_bytes`
//! gauge as they arrive and taken off when the charge is dropped: when the
//! settle task has moved the bodies into the row it queues (or dropped
//! them). While the gauge is at or over the budget, new exchanges are not
//! mirrored (skip reason `capture_budget`, counted like every skip); those
//! already capturing go on, so the overshoot is at most their caps.

use prometheus::IntGauge;

/// The bytes one captured answer holds against the budget; released on drop.
#[derive(Debug, Default)]
pub struct Charge {
    gauge: Option<IntGauge>,
    bytes: i64,
}

impl Charge {
    /// An empty charge against `gauge`.
    pub fn on(gauge: &IntGauge) -> Charge {
        Charge {
            gauge: Some(gauge.clone()),
            bytes: 0,
        }
    }

    /// `n` more bytes held.
    pub fn add(&mut self, n: usize) {
        if let Some(g) = &self.gauge {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            g.add(n);
            self.bytes += n;
        }
    }
}

/// A copy of an answer (a clone of its observation) holds no charge: the
/// bytes are shared, and the original releases them once.
impl Clone for Charge {
    fn clone(&self) -> Charge {
        Charge::default()
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some(g) = &self.gauge {
            g.sub(self.bytes);
        }
    }
}

/// Whether the budget of `limit` bytes is spent.
pub fn spent(gauge: &IntGauge, limit: usize) -> bool {
    gauge.get() >= i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_is_released_once_when_dropped_and_its_clones_hold_nothing() {
        let g = IntGauge::new("t", "t").unwrap();
        let mut a = Charge::on(&g);
        a.add(100);
        a.add(28);
        assert_eq!(g.get(), 128);
        assert!(spent(&g, 128) && !spent(&g, 129));
        let b = a.clone();
        drop(b);
        assert_eq!(g.get(), 128);
        drop(a);
        assert_eq!(g.get(), 0);
        let mut none = Charge::default();
        none.add(5);
        assert_eq!(g.get(), 0);
    }
}
