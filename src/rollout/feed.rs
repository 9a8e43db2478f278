//! The guard feed: each settled exchange goes to its segment's guard, and a
//! guard's decision becomes a weight change like any other (recorded first).
//!
//! Called from the settle task, never from the client's path.

use super::guard::{Decision, Figures, Sample};
use super::state::{Ask, Error, Target};
use super::{Actor, Intent, Rollout, lock};
use crate::config::Route;
use crate::metrics::Metrics;
use std::time::{Duration, Instant};

impl Rollout {
    /// Feeds one settled exchange to its segment's guard and applies what the
    /// guard decides: a breach steps the weight back, a long enough pass steps it up.
    pub async fn observe(&self, route: &Route, label: &str, sample: Sample, metrics: &Metrics) {
        let (weight, epoch) = self
            .snapshot_now()
            .get(&route.name)
            .map_or((0.0, 0), |s| (s.weight(label), s.epoch));
        let (action, agreement) = {
            let mut guards = lock(&self.guards);
            let per_route = match guards.get_mut(&route.name) {
                Some(r) => r,
                None => guards.entry(route.name.clone()).or_default(),
            };
            let g = match per_route.get_mut(label) {
                Some(g) => g,
                None => per_route.entry(label.to_string()).or_default(),
            };
            let action = g.observe(&route.guard, sample, weight);
            (action, g.agreement())
        };
        if let Some(a) = agreement {
            metrics.set_agreement(&route.name, label, a);
        }
        let fleet = self.fleet();
        if let Some(f) = fleet {
            f.add_evidence(&route.name, label, &sample);
        }
        if let Some(action) = action {
            self.act(route, label, action, epoch, metrics).await;
        }
    }

    /// Applies what a segment's guard decided: a breach steps the weight
    /// back (counted and logged), a pass steps it up — except under
    /// `[fleet]`, where only the evaluator promotes, on the fleet's evidence.
    ///
    /// A breach is a lowering ("at most one step below what the guard saw"):
    /// if the weight went lower meanwhile, it changes nothing. A promotion is
    /// a raise, compare-and-set on the `epoch` the evidence was judged at,
    /// through the same gates as a person's.
    pub(super) async fn act(
        &self,
        route: &Route,
        label: &str,
        action: super::guard::Action,
        epoch: u64,
        metrics: &Metrics,
    ) {
        if self.fleet().is_some() && action.breach.is_none() {
            return;
        }
        if let Some(reason) = action.breach {
            metrics.record_guard_trip(&route.name, label, reason);
            tracing::warn!(route = %route.name, segment = label, reason = %action.reason, "Guard breach");
        }
        let intent = match action.breach {
            Some(_) => Intent::Lower,
            None => Intent::Raise,
        };
        let ask = Ask {
            intent: Some(intent),
            epoch: Some(epoch),
            ..Ask::new(
                label,
                Target::Weight(action.to),
                Actor::Guard,
                &action.reason,
            )
        };
        match self.change(route, ask, metrics).await {
            Ok(_) => {}
            Err(e @ (Error::Unchanged { .. } | Error::Moved { .. })) => {
                tracing::debug!(route = %route.name, segment = label, error = %e, "Guard's change not needed");
            }
            Err(e) => {
                tracing::error!(route = %route.name, segment = label, error = %e, "Guard could not change the weight");
            }
        }
    }

    /// The guard's latest figures and decision for a segment, and how long it has passed.
    pub fn guard_status(
        &self,
        route: &str,
        segment: &str,
    ) -> Option<(Figures, Decision, Option<Duration>)> {
        lock(&self.guards)
            .get(route)
            .and_then(|r| r.get(segment))
            .and_then(|g| g.status(Instant::now()))
    }

    /// For a segment on hold: about how many more samples until the guard
    /// decides, and how long that takes at the rate seen since its reset.
    pub fn time_to_decide(
        &self,
        route: &Route,
        segment: &str,
        figures: &Figures,
        decision: Decision,
    ) -> (Option<u64>, Option<f64>) {
        if decision != Decision::Hold {
            return (None, None);
        }
        let Some(samples) = figures.samples_to_decide(&route.guard) else {
            return (None, None);
        };
        let rate = self.guard_rate(&route.name, segment);
        (Some(samples), rate.map(|r| samples as f64 / r))
    }

    /// Comparisons a second a segment's guard has seen since its reset.
    pub fn guard_rate(&self, route: &str, segment: &str) -> Option<f64> {
        lock(&self.guards)
            .get(route)
            .and_then(|r| r.get(segment))
            .and_then(|g| g.rate(Instant::now()))
    }

    /// Segments a guard has seen on a route.
    pub fn guarded_segments(&self, route: &str) -> Vec<String> {
        let mut v: Vec<_> = lock(&self.guards)
            .get(route)
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}
