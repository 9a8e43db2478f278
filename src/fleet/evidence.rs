//! Pooled evidence (docs/src/concepts/fleet.md): each replica counts its settled exchanges per
//! second, route and segment, and ships closed seconds to PostgreSQL; the
//! evaluator turns the fleet's rows back into guard samples.
//!
//! The counts are exactly the guard's ([`crate::rollout::guard::Counts`]);
//! latencies travel as the guard's own 2 % histogram buckets, and come back
//! as each bucket's middle value, which falls in the same bucket, so the
//! pooled p99 ratio is the one a single replica would compute over the same
//! samples.

use crate::compare::Verdict;
use crate::rollout::guard::Sample;
use crate::rollout::guard::latency::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub mod sql;

/// Closed slices kept while PostgreSQL is unreachable; beyond it the oldest
/// are dropped (and counted). An hour of a busy route with ten segments.
pub const MAX_BACKLOG: usize = 180_000;

/// The latency buckets of one second: bucket index → count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latencies {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub incumbent: BTreeMap<u16, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub candidate: BTreeMap<u16, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub incumbent_ttft: BTreeMap<u16, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub candidate_ttft: BTreeMap<u16, u32>,
}

/// Evidence is counted in slices of this many milliseconds (five a second),
/// so a closed slice reaches the evaluator a fraction of a second after it
/// happened.
pub const SLICE_MS: i64 = 200;

/// One slice of a second of one route and segment on one replica.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub route: String,
    pub segment: String,
    /// Unix seconds.
    pub second: i64,
    /// Which slice of the second (0 to 4).
    pub slice: i16,
    /// This replica's sequence number of the row (set when the slice
    /// closes; increasing across restarts): the evaluator's watermark.
    pub seq: i64,
    pub matches: u64,
    pub mismatches: u64,
    pub candidate_errors: u64,
    /// Every safety hit (compared or not), as the guard counts them.
    pub safety_events: u64,
    /// Safety hits on exchanges that were not compared (they count as a
    /// sample of their own).
    pub safety_only: u64,
    pub latencies: Latencies,
}

impl Row {
    /// Adds one settled exchange (only what the guard would count).
    pub fn add(&mut self, s: &Sample) {
        if !s.counts() {
            return;
        }
        match s.verdict {
            Verdict::Match => self.matches += 1,
            Verdict::Mismatch => self.mismatches += 1,
            Verdict::CandidateError => self.candidate_errors += 1,
            Verdict::IncumbentError | Verdict::Skipped => self.safety_only += 1,
        }
        if s.safety {
            self.safety_events += 1;
        }
        let put = |side: &mut BTreeMap<u16, u32>, ms: Option<f64>| {
            if let Some(ms) = ms {
                let i = u16::try_from(Histogram::index(ms)).unwrap_or(u16::MAX);
                *side.entry(i).or_insert(0) += 1;
            }
        };
        put(&mut self.latencies.incumbent, s.incumbent_ms);
        put(&mut self.latencies.candidate, s.candidate_ms);
        put(&mut self.latencies.incumbent_ttft, s.incumbent_ttft_ms);
        put(&mut self.latencies.candidate_ttft, s.candidate_ttft_ms);
    }

    /// The samples this row stands for, dated `at`: the same counts and
    /// latency buckets as the samples that made it.
    pub fn samples(&self, at: Instant) -> Vec<Sample> {
        let verdicts = std::iter::repeat_n(Verdict::Match, self.matches as usize)
            .chain(std::iter::repeat_n(
                Verdict::Mismatch,
                self.mismatches as usize,
            ))
            .chain(std::iter::repeat_n(
                Verdict::CandidateError,
                self.candidate_errors as usize,
            ))
            .chain(std::iter::repeat_n(
                Verdict::Skipped,
                self.safety_only as usize,
            ));
        let compared_safety = self.safety_events.saturating_sub(self.safety_only);
        let mut out: Vec<Sample> = verdicts
            .enumerate()
            .map(|(i, verdict)| Sample {
                at,
                verdict,
                safety: verdict == Verdict::Skipped || (i as u64) < compared_safety,
                incumbent_ms: None,
                candidate_ms: None,
                incumbent_ttft_ms: None,
                candidate_ttft_ms: None,
                user: None,
                excluded: false,
            })
            .collect();
        let spread =
            |side: &BTreeMap<u16, u32>, out: &mut Vec<Sample>, set: fn(&mut Sample, f64)| {
                let values = side.iter().flat_map(|(i, n)| {
                    std::iter::repeat_n(Histogram::value(usize::from(*i)), *n as usize)
                });
                for (s, ms) in out.iter_mut().zip(values) {
                    set(s, ms);
                }
            };
        spread(&self.latencies.incumbent, &mut out, |s, v| {
            s.incumbent_ms = Some(v)
        });
        spread(&self.latencies.candidate, &mut out, |s, v| {
            s.candidate_ms = Some(v)
        });
        spread(&self.latencies.incumbent_ttft, &mut out, |s, v| {
            s.incumbent_ttft_ms = Some(v)
        });
        spread(&self.latencies.candidate_ttft, &mut out, |s, v| {
            s.candidate_ttft_ms = Some(v)
        });
        out
    }

    fn is_empty(&self) -> bool {
        self.matches + self.mismatches + self.candidate_errors + self.safety_only == 0
    }
}

/// This replica's evidence not yet in PostgreSQL: the open seconds and the
/// closed ones waiting (bounded).
#[derive(Debug, Default)]
pub struct Buffer {
    inner: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Route → segment → the open slice (its index since the epoch) and its
    /// counts: nested, so counting a sample allocates nothing.
    open: HashMap<String, HashMap<String, (i64, Row)>>,
    closed: VecDeque<Row>,
    /// The last sequence number given.
    seq: i64,
}

impl State {
    /// Closes `row`: numbered after every row closed before, and never
    /// below the time in microseconds, so a restarted replica's numbers
    /// keep growing.
    fn close(&mut self, mut row: Row) {
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        self.seq = (self.seq + 1).max(now_us);
        row.seq = self.seq;
        self.closed.push_back(row);
    }
}

impl Row {
    fn new(route: &str, segment: &str, slice: i64) -> Row {
        Row {
            route: route.to_string(),
            segment: segment.to_string(),
            second: slice * SLICE_MS / 1000,
            slice: ((slice * SLICE_MS % 1000) / SLICE_MS) as i16,
            ..Row::default()
        }
    }
}

impl Buffer {
    /// Counts one settled exchange in the current slice.
    pub fn add(&self, route: &str, segment: &str, sample: &Sample) {
        if !sample.counts() {
            return;
        }
        let slice = unix_ms() / SLICE_MS;
        let mut state = super::lock(&self.inner);
        let per_route = match state.open.get_mut(route) {
            Some(r) => r,
            None => state.open.entry(route.to_string()).or_default(),
        };
        let (at, row) = match per_route.get_mut(segment) {
            Some(e) => e,
            None => per_route
                .entry(segment.to_string())
                .or_insert_with(|| (slice, Row::new(route, segment, slice))),
        };
        let mut done = None;
        if *at != slice {
            done = Some(std::mem::replace(row, Row::new(route, segment, slice)));
            *at = slice;
        }
        row.add(sample);
        if let Some(done) = done.filter(|d| !d.is_empty()) {
            state.close(done);
        }
    }

    /// Closes every slice before the current one and lends what waits to be
    /// shipped: the rows come back to the buffer unless the lease is
    /// [`Lease::committed`] (a failed or timed-out insert, a cancelled
    /// step). With how many old rows the bound dropped (to be counted).
    pub fn lease(&self) -> (Lease<'_>, u64) {
        let (rows, dropped) = self.take_before(unix_ms() / SLICE_MS);
        (
            Lease {
                buffer: self,
                rows,
                committed: false,
            },
            dropped,
        )
    }

    /// Rows still waiting (counted as dropped when a replica stops with them).
    pub fn abandon(&self) -> u64 {
        let (rows, dropped) = self.take_before(i64::MAX);
        rows.len() as u64 + dropped
    }

    fn take_before(&self, now_slice: i64) -> (Vec<Row>, u64) {
        let mut state = super::lock(&self.inner);
        let mut done = Vec::new();
        for per_route in state.open.values_mut() {
            per_route.retain(|_, (at, row)| {
                if *at >= now_slice {
                    return true;
                }
                if !row.is_empty() {
                    done.push(std::mem::take(row));
                }
                false
            });
        }
        state.open.retain(|_, per_route| !per_route.is_empty());
        for row in done {
            state.close(row);
        }
        let mut dropped = 0;
        while state.closed.len() > MAX_BACKLOG {
            state.closed.pop_front();
            dropped += 1;
        }
        (state.closed.drain(..).collect(), dropped)
    }

    /// Puts rows that could not be shipped back at the front, in order.
    fn put_back(&self, rows: Vec<Row>) {
        let mut state = super::lock(&self.inner);
        for row in rows.into_iter().rev() {
            state.closed.push_front(row);
        }
    }
}

/// Rows on their way to PostgreSQL; back in the buffer when dropped
/// uncommitted.
pub struct Lease<'a> {
    buffer: &'a Buffer,
    rows: Vec<Row>,
    committed: bool,
}

impl Lease<'_> {
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The rows are in PostgreSQL: they leave the buffer for good.
    pub fn committed(mut self) {
        self.committed = true;
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if !self.committed && !self.rows.is_empty() {
            self.buffer.put_back(std::mem::take(&mut self.rows));
        }
    }
}

pub fn unix_seconds() -> i64 {
    unix_ms() / 1000
}

fn unix_ms() -> i64 {
    crate::store::now_ms()
}

/// The instant that was `second` (unix) on this machine's clock.
pub fn instant_of(second: i64, now: Instant) -> Instant {
    let age = (unix_seconds() - second).max(0) as u64;
    now.checked_sub(Duration::from_secs(age)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::guard::SegmentGuard;

    fn sample(at: Instant, verdict: Verdict, safety: bool, i: u32) -> Sample {
        Sample {
            at,
            verdict,
            safety,
            incumbent_ms: Some(10.0 + f64::from(i % 37)),
            candidate_ms: Some(12.0 + f64::from(i % 91) * 1.7),
            incumbent_ttft_ms: None,
            candidate_ttft_ms: None,
            user: None,
            excluded: false,
        }
    }

    /// The pooled statistics are a single replica's over the same samples
    /// (a time window: a count window's oldest samples depend on the order
    /// within a 200 ms slice, which pooling does not keep):
    /// the same samples dealt to three replicas, shipped as per-second rows
    /// and pooled, give the evaluator the figures and decision one guard
    /// computes seeing them all.
    #[test]
    fn pooled_evidence_gives_a_single_replicas_statistics() {
        for method in ["sequential", "wilson"] {
            let text = format!(
                "[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nincumbent = \"http://127.0.0.1:1\"\n\
                 candidate = \"http://127.0.0.1:2\"\n[routes.guard]\nmethod = \"{method}\"\n\
                 max_latency_ratio = 3.0\nwindow = \"10m\"\n"
            );
            let cfg = crate::config::for_test(&text).routes[0].guard.clone();
            let now = Instant::now();
            let verdicts = [
                Verdict::Match,
                Verdict::Mismatch,
                Verdict::CandidateError,
                Verdict::Skipped,
            ];
            let samples: Vec<Sample> = (0..3000u32)
                .map(|i| {
                    let v = verdicts[((i * 7919) % 13 % 4) as usize];
                    let v = if i % 5 < 3 { Verdict::Match } else { v };
                    sample(now, v, i % 97 == 0, i)
                })
                .collect();
            // At weight 0 a guard judges without acting (nothing resets midway),
            // so the single guard's last figures cover every sample.
            let mut single = SegmentGuard::default();
            for s in &samples {
                single.observe(&cfg, *s, 0.0);
            }
            // Three replicas, round robin, one second each.
            let mut rows = [Row::default(), Row::default(), Row::default()];
            for (i, s) in samples.iter().enumerate() {
                rows[i % 3].add(s);
            }
            let mut pooled = SegmentGuard::default();
            pooled.observe_all(&cfg, rows.iter().flat_map(|r| r.samples(now)), now, 0.0);
            let (a, da, _) = single.status(now).expect("judged");
            let (b, db, _) = pooled.status(now).expect("judged");
            assert_eq!(da, db, "{method}");
            assert_eq!(
                (
                    a.samples,
                    a.matches,
                    a.mismatches,
                    a.candidate_errors,
                    a.safety_events
                ),
                (
                    b.samples,
                    b.matches,
                    b.mismatches,
                    b.candidate_errors,
                    b.safety_events
                ),
                "{method}"
            );
            assert_eq!(a.agreement_lower, b.agreement_lower, "{method}");
            assert_eq!(a.agreement_upper, b.agreement_upper, "{method}");
            assert_eq!(a.latency_ratio, b.latency_ratio, "{method}");
            assert!(a.latency_ratio.is_some());
        }
    }

    #[test]
    fn a_slice_is_shipped_once_it_is_closed() {
        let buffer = Buffer::default();
        let now = Instant::now();
        for i in 0..3 {
            buffer.add("r", "smb", &sample(now, Verdict::Match, false, i));
        }
        buffer.add("r", "smb", &sample(now, Verdict::Skipped, false, 3)); // not counted
        buffer.add("r", "gold", &sample(now, Verdict::Mismatch, false, 4));
        let later = unix_ms() / SLICE_MS + 1;
        let (rows, dropped) = buffer.take_before(later);
        assert_eq!(dropped, 0);
        let count = |seg: &str| -> (u64, u64) {
            rows.iter()
                .filter(|r| r.route == "r" && r.segment == seg)
                .fold((0, 0), |(m, x), r| (m + r.matches, x + r.mismatches))
        };
        assert_eq!((count("smb"), count("gold")), ((3, 0), (0, 1)));
        assert!(rows.iter().all(|r| (0..5).contains(&r.slice)));
        assert_eq!(
            buffer.take_before(later + 1).0,
            Vec::<Row>::new(),
            "shipped once"
        );
    }

    #[test]
    fn sequence_numbers_grow_within_a_replica_and_across_its_restarts() {
        let now = Instant::now();
        let close = |buffer: &Buffer| {
            buffer.add("r", "smb", &sample(now, Verdict::Match, false, 1));
            buffer.add("r", "gold", &sample(now, Verdict::Match, false, 1));
            buffer.take_before(i64::MAX).0
        };
        let first = close(&Buffer::default());
        assert!(first[0].seq < first[1].seq, "{first:?}");
        // A restarted replica (a process start takes longer than this): a
        // new buffer, its numbers above the old ones.
        std::thread::sleep(Duration::from_millis(2));
        let again = close(&Buffer::default());
        assert!(again[0].seq > first[1].seq, "{again:?}");
    }

    #[test]
    fn a_full_backlog_drops_the_oldest_seconds_and_counts_them() {
        let buffer = Buffer::default();
        {
            let mut state = super::super::lock(&buffer.inner);
            for s in 0..(MAX_BACKLOG as i64 + 5) {
                state.closed.push_back(Row {
                    second: s,
                    matches: 1,
                    ..Row::default()
                });
            }
        }
        let (rows, dropped) = buffer.take_before(0);
        assert_eq!(dropped, 5);
        assert_eq!(rows.len(), MAX_BACKLOG);
        assert_eq!(rows[0].second, 5);
        buffer.put_back(rows);
        let (again, _) = buffer.take_before(0);
        assert_eq!(again[0].second, 5);
    }
}
