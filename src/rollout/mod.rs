//! Rollout state: the live weight per route and segment, the mirror kill switch,
//! and the decision of who serves an exchange.
//!
//! Weights are an immutable snapshot swapped on change, so a request reads them
//! without waiting for a writer. Every change goes through one path
//! ([`state`]): typed by what it means ([`change::Intent`]), gated when it
//! raises, put in effect by one rule ([`change::apply`]) and recorded in
//! `rollout_events`.

pub mod bucket;
mod change;
mod feed;
pub mod gates;
pub mod guard;
mod link;
mod rebuild;
mod record;
mod stage;
pub mod state;

use crate::config::Stage;
use crate::config::{Config, Route, Side};
use crate::segment;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

pub use change::{ALL_SEGMENTS, Actor, Change, Depth, Intent, Reset, Scope, apply};
pub use link::{FleetError, FleetLink, Pending};
pub use state::{Ask, Error, Evidence, Target};

/// Weights and stages of one route.
#[derive(Debug, Clone, Default)]
pub struct RouteState {
    /// Weight of segments without one of their own (segment name `default`).
    pub default: f64,
    pub segments: HashMap<String, f64>,
    pub mirror: bool,
    /// Stage of segments without one of their own (docs/src/concepts/stages.md).
    pub default_stage: Stage,
    pub stages: HashMap<String, Stage>,
    /// Bumped by every change applied to the route here ([`apply`]): a raise
    /// is compare-and-set on it, and a decision knows which state it saw.
    pub epoch: u64,
}

impl RouteState {
    /// The weight of a segment name (`default` is the route's default weight).
    pub fn weight(&self, segment: &str) -> f64 {
        if segment == segment::DEFAULT {
            return self.default;
        }
        self.segments.get(segment).copied().unwrap_or(self.default)
    }

    /// The weight a request of raw segment `raw` (metric label `label`) gets:
    /// its own entry, else its label's (`other`), else the default.
    pub fn weight_for(&self, raw: &str, label: &str) -> f64 {
        self.segments
            .get(raw)
            .or_else(|| self.segments.get(label))
            .copied()
            .unwrap_or(self.default)
    }

    /// The stage of a segment name (`default` is the route's default stage).
    pub fn stage(&self, segment: &str) -> Stage {
        if segment == segment::DEFAULT {
            return self.default_stage;
        }
        self.stages
            .get(segment)
            .copied()
            .unwrap_or(self.default_stage)
    }

    /// The stage a request of raw segment `raw` (metric label `label`) gets.
    pub fn stage_for(&self, raw: &str, label: &str) -> Stage {
        self.stages
            .get(raw)
            .or_else(|| self.stages.get(label))
            .copied()
            .unwrap_or(self.default_stage)
    }

    fn set_stage(&mut self, segment: &str, stage: Stage) {
        if segment == segment::DEFAULT {
            self.default_stage = stage;
        } else {
            self.stages.insert(segment.to_string(), stage);
        }
    }

    fn set(&mut self, segment: &str, weight: f64) {
        if segment == segment::DEFAULT {
            self.default = weight;
        } else {
            self.segments.insert(segment.to_string(), weight);
        }
    }
}

/// The live rollout state of every route, its ledger and its guards.
#[derive(Default)]
pub struct Rollout {
    /// Read on every request without a lock (`arc-swap`); changes are made
    /// on a copy under `changes` and swapped in whole.
    state: ArcSwap<HashMap<String, RouteState>>,
    /// Serialises changes: the read of the current weight, the ledger append
    /// (awaited) and the swap are one step.
    changes: tokio::sync::Mutex<()>,
    /// The store whose writer appends `rollout_events`; unset until
    /// [`Rollout::attach`] (a detached rollout records nothing).
    ledger: OnceLock<crate::store::Store>,
    /// Records rollbacks after they are applied (set with the ledger).
    recorder: OnceLock<record::Recorder>,
    /// Where rollout events are announced (`[[notify]]`); unset sends nothing.
    notifier: OnceLock<crate::notify::Notifier>,
    /// The fleet (docs/src/concepts/fleet.md), when `[fleet]` is set: raises go through it.
    fleet: OnceLock<Arc<dyn FleetLink>>,
    /// Route → the last result of each of its external gates.
    gate_results: Mutex<HashMap<String, Vec<gates::GateResult>>>,
    /// Route → segment label → guard (nested, so a lookup allocates nothing).
    guards: Mutex<HashMap<String, HashMap<String, guard::SegmentGuard>>>,
    /// Route → segment label → the evidence of its stage (docs/src/concepts/stages.md).
    trackers: Mutex<HashMap<String, HashMap<String, crate::autonomy::evidence::Tracker>>>,
}

impl Rollout {
    /// The initial state from the config (before the history is applied).
    pub fn from_config(config: &Config) -> Rollout {
        Rollout {
            state: ArcSwap::from_pointee(state::initial(config)),
            ..Rollout::default()
        }
    }

    pub fn snapshot(&self) -> Arc<HashMap<String, RouteState>> {
        self.state.load_full()
    }

    /// A snapshot for a short, synchronous read on the hot path: no
    /// reference count is touched (do not hold it across an `.await`).
    pub fn snapshot_now(&self) -> arc_swap::Guard<Arc<HashMap<String, RouteState>>> {
        self.state.load()
    }

    /// Applies `change` to a copy of the state and swaps it in. Callers hold
    /// `changes`, so no two copies are made at once.
    fn update(&self, change: impl FnOnce(&mut HashMap<String, RouteState>)) {
        let mut next = (**self.state.load()).clone();
        change(&mut next);
        self.state.store(Arc::new(next));
    }

    pub fn route(&self, name: &str) -> Option<RouteState> {
        self.snapshot().get(name).cloned()
    }

    /// Who serves this exchange, on a fresh snapshot (see [`decide`]).
    pub fn decide(
        &self,
        route: &Route,
        segment: &str,
        sticky: Option<&str>,
        rule: Option<Side>,
    ) -> Side {
        decide(
            self.snapshot().get(&route.name),
            route,
            segment,
            sticky,
            rule,
        )
    }
}

/// Who serves this exchange: a matching targeting rule, else the sticky
/// bucket against the segment's weight in `state` (a random bucket without a key).
pub fn decide(
    state: Option<&RouteState>,
    route: &Route,
    segment: &str,
    sticky: Option<&str>,
    rule: Option<Side>,
) -> Side {
    if route.candidate.is_none() {
        return Side::Incumbent;
    }
    if let Some(side) = rule {
        return side;
    }
    let label = segment::label(route.segment.as_ref(), segment);
    let weight = state.map_or(0.0, |s| s.weight_for(segment, label));
    if weight <= 0.0 {
        return Side::Incumbent;
    }
    let b = match sticky {
        Some(key) => bucket::bucket(&route.name, &route.rollout.salt, key),
        None => rand::random::<u64>() % bucket::BUCKETS,
    };
    if bucket::is_candidate(b, weight) {
        Side::Candidate
    } else {
        Side::Incumbent
    }
}

/// The first targeting rule that matches the request, if any.
pub fn rule_for(
    route: &Route,
    parts: &http::request::Parts,
    body: &mut segment::JsonBody<'_>,
) -> Option<Side> {
    route.rollout.rules.iter().find_map(|rule| {
        let value = segment::extract(&rule.source, parts, body)?;
        rule.values.contains(&value).then_some(rule.serve)
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
