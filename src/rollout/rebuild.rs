//! At start, each guard reads its evidence since the last full reset back
//! from the store, so `report`, `status` and the promotion gate agree after
//! a restart (before, the guard started empty while the report, reading the
//! database, said "Ready to promote").

use super::guard::Sample;
use super::{Change, Depth, Reset, Rollout, lock};
use crate::config::Config;
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The most exchanges a route's guards read back: the newest, since the
/// last full reset (a suffix of the evidence is valid evidence, only less
/// of it; about a second of reading at this size).
pub const REBUILD_MAX: usize = 500_000;

impl Rollout {
    /// Reads back each route's exchanges since its segments' last full reset
    /// ([`Depth::Evidence`]: a breach, the mirror switch) into their guards,
    /// judges them once, and applies the breaches they call for. What the
    /// store does not keep is not rebuilt: the sticky key's users (the
    /// design effect starts afresh) and a guard config changed while the
    /// proxy was down (the evidence from before it is used).
    pub(super) async fn rebuild_guards(&self, config: &Config, metrics: &Metrics) {
        let Some(store) = self.ledger.get() else {
            return;
        };
        let history = match store.history(None, usize::MAX) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the rollout history; the guards start empty");
                return;
            }
        };
        // The last full reset of each (route, segment), and of each route.
        let mut floors: HashMap<(String, Option<String>), i64> = HashMap::new();
        for e in &history {
            let ts = e.ts_ms;
            let reset = Reset::of(&Change::from(e.clone()));
            if reset.depth != Depth::Evidence {
                continue;
            }
            let key = match reset.scope {
                super::Scope::Route(r) => (r, None),
                super::Scope::Segment(r, s) => (r, Some(s)),
            };
            let at = floors.entry(key).or_insert(ts);
            *at = (*at).max(ts);
        }
        let (now, now_ms) = (Instant::now(), crate::store::now_ms());
        let snapshot = self.snapshot_now();
        let mut breaches = Vec::new();
        for route in config.routes.iter().filter(|r| r.candidate.is_some()) {
            let floor = |label: &str| {
                let whole = floors.get(&(route.name.clone(), None));
                let own = floors.get(&(route.name.clone(), Some(label.to_string())));
                whole.max(own).copied().unwrap_or(i64::MIN)
            };
            let since = (floors.iter())
                .filter(|((r, _), _)| *r == route.name)
                .map(|(_, ts)| *ts)
                .min()
                .unwrap_or(i64::MIN);
            let mut read = 0usize;
            let mut guards = lock(&self.guards);
            let per_route = guards.entry(route.name.clone()).or_default();
            let rows = crate::store::read::guard_rows(
                store.path(),
                &route.name,
                since,
                REBUILD_MAX,
                |row| {
                    let label = crate::segment::label(route.segment.as_ref(), &row.segment);
                    if row.ts_ms < floor(label) {
                        return;
                    }
                    let ago = Duration::from_millis(u64::try_from(now_ms - row.ts_ms).unwrap_or(0));
                    let sample = Sample {
                        at: now.checked_sub(ago).unwrap_or(now),
                        verdict: row.verdict,
                        safety: row.safety,
                        incumbent_ms: row.incumbent_ms,
                        candidate_ms: row.candidate_ms,
                        incumbent_ttft_ms: row.incumbent_ttft_ms,
                        candidate_ttft_ms: row.candidate_ttft_ms,
                        user: None,
                        excluded: row
                            .skip_reason
                            .as_deref()
                            .is_some_and(super::guard::judge_failed),
                    };
                    let guard = per_route.entry(label.to_string()).or_default();
                    read += usize::from(guard.replay(&route.guard, sample));
                },
            );
            if let Err(e) = rows {
                tracing::warn!(route = %route.name, error = %e, "Cannot read the guards' evidence back; they start empty");
                continue;
            }
            let state = snapshot.get(&route.name);
            for (label, guard) in per_route.iter_mut() {
                let weight = state.map_or(0.0, |s| s.weight(label));
                let epoch = state.map_or(0, |s| s.epoch);
                let action = guard.judge_now(&route.guard, now, weight);
                if let Some(action) = action.filter(|a| a.breach.is_some()) {
                    breaches.push((route.clone(), label.clone(), action, epoch));
                }
            }
            drop(guards);
            if read > 0 {
                tracing::info!(route = %route.name, comparisons = read, "Guards rebuilt from the store");
            }
        }
        for (route, label, action, epoch) in breaches {
            self.act(&route, &label, action, epoch, metrics).await;
        }
    }
}
