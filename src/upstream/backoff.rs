//! Outlier detection for one upstream: after a failed connect the mirror backs
//! off (250 ms, doubling per failed probe, at most 5 s), then lets exactly one
//! request probe.
//!
//! The whole state is one `AtomicU64`, so the hot path ("is it up?") is a
//! single load, and every transition is one store or compare-and-swap:
//!
//! - `0`: up;
//! - bits 0..48: ms since [`Backoff::new`] from which a probe may go;
//! - bits 48..63: consecutive connect failures (at least 1 while down);
//! - bit 63: a probe is out; everyone else skips until it reports.
//!
//! Only three actors write: the first failure of a request admitted while up
//! (compare-and-swap from `0`), the holder of the probe (which alone may touch
//! a probing state), and a late success (compare-and-swap back to `0` from a
//! down state that is not probing).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Back-off after the first failed connect.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The back-off doubles on every failed probe up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

const UP: u64 = 0;
const PROBING: u64 = 1 << 63;
const FAILS_SHIFT: u32 = 48;
const DEADLINE_MASK: u64 = (1 << FAILS_SHIFT) - 1;
const FAILS_MAX: u64 = (1 << 15) - 1;

/// Whether one upstream is taking connections, shared by every request of a
/// route through its [`Client`](super::Client).
#[derive(Debug)]
pub struct Backoff {
    epoch: Instant,
    state: AtomicU64,
}

/// What [`Backoff::admit`] decided for one request.
#[derive(Debug)]
pub enum Admit {
    /// The upstream is up: send.
    Up,
    /// The back-off is over and this request is the one probe: send, then
    /// report through [`Backoff::record`].
    Probe(Probe),
    /// The upstream is down (or another request is probing): do not send.
    Down,
}

/// The right to probe a down upstream. Dropped without a report (the call
/// was cancelled), it hands the probe to the next request.
#[derive(Debug)]
pub struct Probe {
    health: Option<Arc<Backoff>>,
}

/// A change of state worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing changed.
    Same,
    /// The upstream just went down; the first probe goes after this.
    Down(Duration),
    /// A probe failed; the next one goes after this.
    StillDown(Duration),
    /// The upstream answers again.
    Up,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff {
            epoch: Instant::now(),
            state: AtomicU64::new(UP),
        }
    }

    /// May a request go to this upstream now? One atomic load while it is up.
    #[inline]
    pub fn admit(self: &Arc<Self>) -> Admit {
        if self.state.load(Ordering::Acquire) == UP {
            return Admit::Up;
        }
        self.admit_at(self.now_ms())
    }

    /// Reports how a sent request went: `connected` is false only when no
    /// connection could be made. `probe` is the one [`Admit::Probe`] gave.
    pub fn record(&self, probe: Option<Probe>, connected: bool) -> Change {
        match (probe, connected) {
            // The common case stays one load: up and answering.
            (None, true) if self.state.load(Ordering::Acquire) == UP => Change::Same,
            (probe, connected) => self.record_at(probe, connected, self.now_ms()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(DEADLINE_MASK)
    }

    fn admit_at(self: &Arc<Self>, now: u64) -> Admit {
        let state = self.state.load(Ordering::Acquire);
        if state == UP {
            return Admit::Up;
        }
        if state & PROBING != 0 || now < deadline(state) {
            return Admit::Down;
        }
        // Exactly one request wins the expired deadline.
        match self.state.compare_exchange(
            state,
            state | PROBING,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Admit::Probe(Probe {
                health: Some(self.clone()),
            }),
            Err(_) => Admit::Down,
        }
    }

    fn record_at(&self, probe: Option<Probe>, connected: bool, now: u64) -> Change {
        match (probe.map(Probe::disarm), connected) {
            // The probe holder alone writes a probing state.
            (Some(()), true) => {
                self.state.store(UP, Ordering::Release);
                Change::Up
            }
            (Some(()), false) => {
                let fails = (failures(self.state.load(Ordering::Acquire)) + 1).min(FAILS_MAX);
                let wait = backoff(fails);
                self.state
                    .store(pack(now + millis(wait), fails), Ordering::Release);
                Change::StillDown(wait)
            }
            // Admitted while up: only the first failure takes it down.
            (None, false) => {
                let down = pack(now + millis(FIRST_BACKOFF), 1);
                match self
                    .state
                    .compare_exchange(UP, down, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => Change::Down(FIRST_BACKOFF),
                    Err(_) => Change::Same,
                }
            }
            // A late success while down (not probing) brings it back early.
            (None, true) => {
                let state = self.state.load(Ordering::Acquire);
                if state == UP || state & PROBING != 0 {
                    return Change::Same;
                }
                match self
                    .state
                    .compare_exchange(state, UP, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => Change::Up,
                    Err(_) => Change::Same,
                }
            }
        }
    }

    /// A probe that never reported: the next request may probe at once.
    fn release_probe(&self) {
        let state = self.state.load(Ordering::Acquire);
        self.state
            .store(pack(self.now_ms(), failures(state)), Ordering::Release);
    }

    /// Is the upstream considered down (for tests and status)?
    pub fn is_down(&self) -> bool {
        self.state.load(Ordering::Acquire) != UP
    }
}

impl Probe {
    /// Reported: nothing left to release on drop.
    fn disarm(mut self) {
        self.health = None;
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(health) = self.health.take() {
            health.release_probe();
        }
    }
}

/// The wait before the next probe after `fails` consecutive failed connects:
/// 250 ms, 500 ms, 1 s, 2 s, 4 s, then 5 s.
pub fn backoff(fails: u64) -> Duration {
    let doublings = u32::try_from(fails.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(DEADLINE_MASK)
}

fn pack(deadline_ms: u64, fails: u64) -> u64 {
    (deadline_ms.min(DEADLINE_MASK)) | (fails.clamp(1, FAILS_MAX) << FAILS_SHIFT)
}

fn deadline(state: u64) -> u64 {
    state & DEADLINE_MASK
}

fn failures(state: u64) -> u64 {
    (state & !PROBING) >> FAILS_SHIFT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(admit: Admit) -> Probe {
        match admit {
            Admit::Probe(p) => p,
            other => panic!("expected a probe, got {other:?}"),
        }
    }

    fn is_down(admit: &Admit) -> bool {
        matches!(admit, Admit::Down)
    }

    #[test]
    fn backoff_starts_at_250ms_doubles_and_caps_at_5s() {
        let ms: Vec<u128> = (1..=8).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(backoff(u64::MAX), MAX_BACKOFF);
    }

    #[test]
    fn the_first_connect_failure_closes_the_door_for_250ms() {
        let h = Arc::new(Backoff::new());
        assert!(matches!(h.admit_at(0), Admit::Up));
        assert_eq!(h.record_at(None, false, 1_000), Change::Down(FIRST_BACKOFF));
        assert!(is_down(&h.admit_at(1_000)));
        assert!(is_down(&h.admit_at(1_249)));
        let _probe = probe(h.admit_at(1_250));
    }

    #[test]
    fn concurrent_failures_of_requests_sent_while_up_count_once() {
        let h = Arc::new(Backoff::new());
        assert_eq!(h.record_at(None, false, 100), Change::Down(FIRST_BACKOFF));
        for at in 101..110 {
            assert_eq!(h.record_at(None, false, at), Change::Same);
        }
        // Still the first back-off, from the first failure.
        let _probe = probe(h.admit_at(350));
    }

    #[test]
    fn each_failed_probe_doubles_the_wait_up_to_5s() {
        let h = Arc::new(Backoff::new());
        h.record_at(None, false, 0);
        let mut now = 250;
        let mut waits = Vec::new();
        for _ in 0..7 {
            assert!(is_down(&h.admit_at(now - 1)), "probe before {now}");
            let p = probe(h.admit_at(now));
            let Change::StillDown(wait) = h.record_at(Some(p), false, now) else {
                panic!("a failed probe keeps it down");
            };
            waits.push(wait.as_millis());
            now += millis(wait);
        }
        assert_eq!(waits, [500, 1000, 2000, 4000, 5000, 5000, 5000]);
    }

    #[test]
    fn a_successful_probe_resets_everything() {
        let h = Arc::new(Backoff::new());
        h.record_at(None, false, 0);
        let p = probe(h.admit_at(250));
        h.record_at(Some(p), false, 250); // next at 750
        let p = probe(h.admit_at(750));
        assert_eq!(h.record_at(Some(p), true, 760), Change::Up);
        assert!(!h.is_down());
        assert!(matches!(h.admit_at(761), Admit::Up));
        // A new outage starts again at 250 ms, not where the last one stopped.
        assert_eq!(h.record_at(None, false, 800), Change::Down(FIRST_BACKOFF));
        let p = probe(h.admit_at(1_050));
        assert_eq!(
            h.record_at(Some(p), false, 1_050),
            Change::StillDown(Duration::from_millis(500))
        );
    }

    #[test]
    fn a_late_success_while_down_brings_it_back_but_not_during_a_probe() {
        let h = Arc::new(Backoff::new());
        h.record_at(None, false, 0);
        assert_eq!(h.record_at(None, true, 10), Change::Up);
        assert!(!h.is_down());

        h.record_at(None, false, 20);
        let p = probe(h.admit_at(270));
        // The probe owns the state until it reports.
        assert_eq!(h.record_at(None, true, 271), Change::Same);
        assert!(is_down(&h.admit_at(272)));
        assert_eq!(h.record_at(Some(p), true, 280), Change::Up);
    }

    #[test]
    fn only_one_request_probes_while_the_others_keep_skipping() {
        let h = Arc::new(Backoff::new());
        h.record_at(None, false, 0);
        let first = probe(h.admit_at(250));
        for at in [250, 251, 10_000] {
            assert!(is_down(&h.admit_at(at)));
        }
        h.record_at(Some(first), false, 10_000);
        assert!(is_down(&h.admit_at(10_499)));
        let _second = probe(h.admit_at(10_500));
    }

    #[test]
    fn a_single_probe_under_concurrency() {
        let h = Arc::new(Backoff::new());
        h.record_at(None, false, 0);
        let threads = 8;
        let barrier = Arc::new(std::sync::Barrier::new(threads));
        let probes: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let h = h.clone();
                    let barrier = barrier.clone();
                    s.spawn(move || {
                        barrier.wait();
                        // Hold the probes until every thread has tried.
                        (0..1_000)
                            .map(|_| h.admit_at(300))
                            .filter_map(|a| match a {
                                Admit::Probe(p) => Some(p),
                                _ => None,
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let got: Vec<Vec<Probe>> = handles.into_iter().map(|t| t.join().unwrap()).collect();
            got.iter().map(Vec::len).sum()
        });
        assert_eq!(probes, 1);
    }

    #[test]
    fn a_dropped_probe_lets_the_next_request_probe() {
        let h = Arc::new(Backoff::new());
        h.record_at(None, false, 0);
        let p = probe(h.admit_at(250));
        drop(p);
        // The deadline is now (real clock, near 0 ms): the next request probes.
        let p = probe(h.admit_at(300));
        // The failure count survived: the next wait is 500 ms.
        assert_eq!(
            h.record_at(Some(p), false, 300),
            Change::StillDown(Duration::from_millis(500))
        );
    }
}
