//! A counter with a ceiling (`listen.max_in_flight`, `mirror.max_in_flight`,
//! the judge's `max_in_flight`):
//! take a slot or be told no at once. An atomic compare-and-swap to take and
//! a subtract to give back, no lock, so the hot path never waits on a mutex.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Limit {
    used: AtomicUsize,
    /// Changed by a reload ([`Limit::set_max`]); slots already out stay out.
    max: AtomicUsize,
}

/// A slot borrowed from a [`Limit`]; given back on drop.
pub struct Slot<'a>(&'a AtomicUsize);

/// A slot of a shared [`Limit`], for work that outlives the borrow.
pub struct OwnedSlot(Arc<Limit>);

impl Limit {
    pub fn new(max: usize) -> Limit {
        Limit {
            used: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
        }
    }

    /// A new ceiling: later takes are held to it; slots already out are
    /// given back as usual (never revoked).
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Release);
    }

    /// A slot, or `None` when `max` are taken.
    pub fn try_acquire(&self) -> Option<Slot<'_>> {
        self.take().then(|| Slot(&self.used))
    }

    /// [`Limit::try_acquire`] for a shared limit.
    pub fn try_acquire_owned(self: &Arc<Self>) -> Option<OwnedSlot> {
        self.take().then(|| OwnedSlot(self.clone()))
    }

    /// Slots taken now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// One compare-and-swap (retried only under a race), so `used` never
    /// reads above `max`, not even for an instant.
    fn take(&self) -> bool {
        let max = self.max.load(Ordering::Acquire);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for OwnedSlot {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_out_at_most_max_slots_and_takes_them_back() {
        let limit = Arc::new(Limit::new(2));
        let a = limit.try_acquire().unwrap();
        let b = limit.try_acquire_owned().unwrap();
        assert!(limit.try_acquire().is_none());
        assert!(limit.try_acquire_owned().is_none());
        assert_eq!(limit.used(), 2, "a refusal leaves no trace");
        drop(a);
        let c = limit.try_acquire_owned().unwrap();
        drop((b, c));
        assert_eq!(limit.used(), 0);
    }

    #[test]
    fn holds_under_contention() {
        let limit = Arc::new(Limit::new(3));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (limit, peak) = (limit.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        if let Some(_slot) = limit.try_acquire_owned() {
                            peak.fetch_max(limit.used(), Ordering::AcqRel);
                        }
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(limit.used(), 0);
        assert!(peak.load(Ordering::Acquire) <= 3);
    }
}
