//! The control plane's one path: every change to a weight, a stage or the
//! mirror switch, whoever asks (a person, the file, a guard, the stage's
//! evidence, the fleet), goes through [`Rollout::change`] here or arrives
//! from the fleet through [`Rollout::apply_fleet`]; both put it in effect
//! with [`apply`] and settle it the same way. A raise passes one gate
//! pipeline ([`Rollout::admit`]); a lowering is applied first and recorded
//! after ([`super::record`]), a raise recorded first.
//!
//! Order on start and reload: the file's initial weights that differ from the
//! last `config` event are recorded as `config` changes, then the recorded
//! history is replayed through [`apply`]. A raise that cannot be recorded is
//! not applied.

use super::change::{ALL_SEGMENTS, Actor, Change, Intent, Reset, apply};
use super::guard::Decision;
use super::{Rollout, RouteState, lock};
use crate::config::Stage;
use crate::config::{Config, Route};
use crate::metrics::Metrics;
use crate::segment;
use crate::store::{self, events};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no route named {route:?} (routes: {known})")]
    UnknownRoute { route: String, known: String },
    #[error("route {route:?} has no segment {segment:?} (segments: {known}){hint}")]
    UnknownSegment {
        route: String,
        segment: String,
        known: String,
        /// `; did you mean "enterprise"?` for a near miss, else empty.
        hint: String,
    },
    #[error("weight {0} is outside 0..=100")]
    BadWeight(f64),
    #[error("route {route:?} segment {segment:?} is already at weight {weight}")]
    Unchanged {
        route: String,
        segment: String,
        weight: f64,
    },
    #[error("route {route:?} segment {segment:?} is already at stage {stage}")]
    StageUnchanged {
        route: String,
        segment: String,
        stage: Stage,
    },
    #[error("cannot record the change: {0}")]
    Store(#[from] store::Error),
    #[error(
        "the promotion gate is closed for route {route:?} segment {segment:?}: the guard says \
         {decision} ({figures}); {holding}. Wait for the evidence, or raise with --force \
         (API: \"force\": true) and a reason to override"
    )]
    Gated {
        route: String,
        segment: String,
        decision: &'static str,
        figures: String,
        /// What holds it, and about how much more evidence it needs.
        holding: String,
    },
    #[error("an external gate failed for route {route:?} segment {segment:?}: {results}")]
    GateFailed {
        route: String,
        segment: String,
        results: String,
    },
    #[error(transparent)]
    Fleet(#[from] super::FleetError),
    #[error("route {route:?} mirror is already {state}")]
    MirrorUnchanged { route: String, state: &'static str },
    #[error(
        "route {route:?} segment {segment:?} changed while the raise was being checked; \
         look again and retry"
    )]
    Moved { route: String, segment: String },
    #[error(
        "{0} earlier rollback(s) are in effect but not yet recorded (the store is failing); \
         raising a weight waits until they are"
    )]
    Unrecorded(usize),
}

/// The state a config alone describes.
pub(super) fn initial(config: &Config) -> HashMap<String, RouteState> {
    config
        .routes
        .iter()
        .map(|r| {
            let rs = RouteState {
                default: r.rollout.default,
                segments: r.rollout.segments.clone().into_iter().collect(),
                mirror: r.mirror.enabled,
                default_stage: r.autonomy.stage,
                stages: r.autonomy.stages.clone().into_iter().collect(),
                epoch: 0,
            };
            (r.name.clone(), rs)
        })
        .collect()
}

/// The file's weights (and a kill switch that is off) of a route as
/// `config` changes: what seeds a route the fleet does not know yet.
pub fn file_changes(route: &Route) -> Vec<Change> {
    let config = |segment: String, to: Option<f64>, mirror: Option<String>, reason: &str| Change {
        from: to.map(|_| 0.0),
        to,
        mirror,
        ..Change::new(&route.name, &segment, Actor::Config, reason)
    };
    let mut out: Vec<Change> =
        std::iter::once((segment::DEFAULT.to_string(), route.rollout.default))
            .chain(route.rollout.segments.clone())
            .map(|(seg, w)| config(seg, Some(w), None, "initial weight in the config file"))
            .collect();
    if !route.mirror.enabled {
        out.push(config(
            ALL_SEGMENTS.into(),
            None,
            Some("off".into()),
            "mirror switch in the config file",
        ));
    }
    out.extend(stage_changes(route, &[]));
    out
}

/// `Ok` when a weight or stage may be set for `segment` of `route`.
pub fn check_segment(route: &Route, segment: &str) -> Result<(), Error> {
    let known = known_segments(route);
    if known.iter().any(|k| k == segment) {
        return Ok(());
    }
    Err(Error::UnknownSegment {
        route: route.name.clone(),
        segment: segment.to_string(),
        known: known.join(", "),
        hint: crate::segment::did_you_mean(segment, known.iter().map(String::as_str)),
    })
}

/// The route named `name` in `config`.
pub fn find_route<'c>(config: &'c Config, name: &str) -> Result<&'c Route, Error> {
    config
        .routes
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| Error::UnknownRoute {
            route: name.to_string(),
            known: config
                .routes
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Segment names a weight may be set for: `default`, the configured values,
/// the file's weighted segments, and `other` when the route has segments.
pub fn known_segments(route: &Route) -> Vec<String> {
    let mut known = vec![segment::DEFAULT.to_string()];
    if let Some(s) = &route.segment {
        known.extend(s.values.iter().cloned());
        known.push(segment::OTHER.to_string());
    }
    for name in route.rollout.segments.keys() {
        if !known.contains(name) {
            known.push(name.clone());
        }
    }
    known
}

/// What a change asks for, in one dimension: a segment's weight or stage,
/// or the route's mirror switch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Weight(f64),
    Stage(Stage),
    Mirror(bool),
}

/// The evidence a raise is admitted on (the first of the gates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// This replica's guard (for a weight) or stage tracker (for a stage)
    /// must say pass now.
    Local,
    /// The fleet's evaluator judged the fleet's pooled evidence and it says pass.
    Pooled,
}

/// A change asked for: what, by whom and why, and what it means.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub segment: &'a str,
    pub target: Target,
    pub actor: Actor,
    pub reason: &'a str,
    /// A person's override of the gates (audited as `forced`).
    pub force: bool,
    /// What the asker means; `None` reads it from the values: below the
    /// current value a lowering, from the file a set, above it a raise.
    pub intent: Option<Intent>,
    /// The route's epoch the decision was made against: a raise is
    /// compare-and-set on it. `None`: the epoch when the change is asked.
    pub epoch: Option<u64>,
}

impl<'a> Ask<'a> {
    /// `target` for `segment`, by `actor`, meaning what its values say.
    pub fn new(segment: &'a str, target: Target, actor: Actor, reason: &'a str) -> Ask<'a> {
        Ask {
            segment,
            target,
            actor,
            reason,
            force: false,
            intent: None,
            epoch: None,
        }
    }
}

impl Target {
    /// The segment's current value of this dimension, as a target.
    fn current(self, rs: Option<&RouteState>, segment: &str) -> Target {
        match self {
            Target::Weight(_) => Target::Weight(rs.map_or(0.0, |s| s.weight(segment))),
            Target::Stage(_) => Target::Stage(rs.map_or(Stage::default(), |s| s.stage(segment))),
            Target::Mirror(_) => Target::Mirror(rs.is_none_or(|s| s.mirror)),
        }
    }

    /// Below `current` (a lowering), equal to it, or above (a raise).
    fn cmp(self, current: Target) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self, current) {
            (Target::Weight(a), Target::Weight(b)) if (a - b).abs() < 1e-9 => Ordering::Equal,
            (Target::Weight(a), Target::Weight(b)) => a.total_cmp(&b),
            (Target::Stage(a), Target::Stage(b)) => a.cmp(&b),
            (Target::Mirror(a), Target::Mirror(b)) => a.cmp(&b),
            _ => Ordering::Equal,
        }
    }

    /// The change that moves `from` to this target.
    fn change(self, from: Target, base: Change) -> Change {
        match (from, self) {
            (Target::Weight(f), Target::Weight(t)) => Change {
                from: Some(f),
                to: Some(t),
                ..base
            },
            (Target::Stage(f), Target::Stage(t)) => Change {
                from_stage: Some(f.as_str().into()),
                to_stage: Some(t.as_str().into()),
                ..base
            },
            (_, Target::Mirror(on)) => Change {
                mirror: Some(on_off(on).into()),
                ..base
            },
            _ => base,
        }
    }
}

impl Rollout {
    /// Records through `store` from now on, records changed file weights and
    /// applies the history: after a restart the last recorded weights are served.
    pub async fn attach(
        &self,
        store: crate::store::Store,
        config: &Config,
        metrics: &Metrics,
    ) -> Result<Vec<Change>, Error> {
        // A second attach keeps the first store (there is one per process).
        if self.ledger.get().is_none() {
            let _unset = self
                .recorder
                .set(super::record::Recorder::start(store.clone()));
        }
        let _first = self.ledger.set(store);
        let changes = self.reconcile(config, metrics).await?;
        self.rebuild_guards(config, metrics).await;
        Ok(changes)
    }

    /// Applies a (new) config: initial weights and kill switches that changed
    /// since the last `config` event are recorded as `config`; then the
    /// recorded history is replayed through [`apply`], the one rule, and the
    /// lowerings made here that the fleet does not have yet go on top.
    pub async fn reconcile(
        &self,
        config: &Config,
        metrics: &Metrics,
    ) -> Result<Vec<Change>, Error> {
        let _changing = self.changes.lock().await;
        let mut next = initial(config);
        let mut changes = Vec::new();
        if let Some(store) = self.ledger.get() {
            let history = store.history(None, usize::MAX)?;
            let last = |route: &str, seg: &str, config_only: bool, mirror: bool| {
                history.iter().rev().find(|e| {
                    e.route == route
                        && e.segment == seg
                        && (!config_only || e.actor == Actor::Config.as_str())
                        && if mirror {
                            e.mirror.is_some()
                        } else {
                            e.to_weight.is_some()
                        }
                })
            };
            let mut pending = Vec::new();
            // Under [fleet] the file only seeds a route the fleet does not
            // know; once it does, its weights are the fleet's (docs/src/concepts/fleet.md).
            let fleet_managed = |route: &str| {
                self.fleet.get().is_some()
                    && history
                        .iter()
                        .any(|e| e.route == route && e.fleet_version.is_some())
            };
            for route in config.routes.iter().filter(|r| !fleet_managed(&r.name)) {
                let file = std::iter::once((segment::DEFAULT.to_string(), route.rollout.default))
                    .chain(route.rollout.segments.clone());
                for (seg, w) in file {
                    let recorded = last(&route.name, &seg, true, false).and_then(|e| e.to_weight);
                    if (recorded.unwrap_or(0.0) - w).abs() > 1e-9 {
                        let from = last(&route.name, &seg, false, false).and_then(|e| e.to_weight);
                        pending.push(Change {
                            from: Some(from.unwrap_or(0.0)),
                            to: Some(w),
                            ..Change::new(
                                &route.name,
                                &seg,
                                Actor::Config,
                                "initial weight in the config file",
                            )
                        });
                    }
                }
                let on = |e: &events::RolloutEvent| e.mirror.as_deref() != Some("off");
                let recorded = last(&route.name, ALL_SEGMENTS, true, true).is_none_or(on);
                if recorded != route.mirror.enabled {
                    pending.push(Change {
                        mirror: Some(on_off(route.mirror.enabled).into()),
                        ..Change::new(
                            &route.name,
                            ALL_SEGMENTS,
                            Actor::Config,
                            "mirror switch in the config file",
                        )
                    });
                }
                // Stages are fleet state too: the file seeds them like weights.
                pending.extend(stage_changes(route, &history));
            }
            // All of a reload's config changes land together, or none does.
            changes = super::record::append_all(store, pending).await?;
            for e in history.into_iter().map(Change::from).chain(changes.clone()) {
                if let Some(rs) = next.get_mut(&e.route) {
                    apply(rs, &e);
                }
            }
            for e in self.unpushed(store)? {
                if let Some(rs) = next.get_mut(&e.route) {
                    apply(rs, &e);
                }
            }
        }
        for (name, rs) in &next {
            set_gauges(metrics, name, rs);
        }
        for route in &config.routes {
            if let Some(rs) = next.get(&route.name) {
                for seg in known_segments(route) {
                    match route.autonomy.shown(rs.stage(&seg)) {
                        Some(stage) => metrics.set_stage(&route.name, &seg, stage),
                        None => metrics.set_no_stage(&route.name, &seg),
                    }
                }
            }
        }
        let now = std::time::Instant::now();
        for c in &changes {
            self.reset_evidence(&Reset::of(c), now);
        }
        // A reload moves every route's epoch on: a raise decided before it
        // is compare-and-set against a state that is gone.
        let old = self.snapshot();
        for (name, rs) in next.iter_mut() {
            rs.epoch = old.get(name).map_or(0, |o| o.epoch + 1).max(rs.epoch);
        }
        self.update(|state| *state = next);
        Ok(changes)
    }

    /// Lowerings made here under `[fleet]` that PostgreSQL does not have
    /// yet: they stay in effect over whatever the fleet says until pushed.
    fn unpushed(&self, store: &crate::store::Store) -> Result<Vec<Change>, Error> {
        if self.fleet.get().is_none() {
            return Ok(Vec::new());
        }
        Ok(store
            .unpushed()?
            .into_iter()
            .map(Change::from)
            .filter(Change::lowers)
            .collect())
    }

    /// Sets one segment's weight (see [`Rollout::change`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn set_weight(
        &self,
        route: &Route,
        segment: &str,
        to: f64,
        actor: Actor,
        reason: &str,
        force: bool,
        metrics: &Metrics,
    ) -> Result<Change, Error> {
        let ask = Ask {
            force,
            ..Ask::new(segment, Target::Weight(to), actor, reason)
        };
        self.change(route, ask, metrics).await
    }

    /// Turns a route's mirror on or off (the kill switch), recorded like a weight.
    pub async fn set_mirror(
        &self,
        route: &Route,
        on: bool,
        actor: Actor,
        reason: &str,
        metrics: &Metrics,
    ) -> Result<Change, Error> {
        let ask = Ask::new(ALL_SEGMENTS, Target::Mirror(on), actor, reason);
        self.change(route, ask, metrics).await
    }

    /// The one path of every change made on this replica, whoever asks (a
    /// person, the config file, the guard, the stage's evidence):
    ///
    /// 1. what it means ([`Ask::intent`]): a lowering, a set or a raise;
    /// 2. a raise passes the gates ([`Rollout::admit`]), unless a person forces it;
    /// 3. under the lock: a lowering takes the lower of its target and the
    ///    value now (never a raise, however stale the decision behind it); a
    ///    raise is compare-and-set on the epoch it was decided and gated
    ///    against ([`Error::Moved`] when the route changed meanwhile);
    /// 4. [`Rollout::commit`] puts it in effect and in the ledger;
    /// 5. [`Rollout::settled`]: announced, gauges set, evidence reset.
    pub async fn change(
        &self,
        route: &Route,
        ask: Ask<'_>,
        metrics: &Metrics,
    ) -> Result<Change, Error> {
        let Ask {
            segment,
            target,
            actor,
            reason,
            force,
            ..
        } = ask;
        match target {
            Target::Weight(w) if !(0.0..=100.0).contains(&w) => return Err(Error::BadWeight(w)),
            Target::Mirror(_) => {}
            _ => check_segment(route, segment)?,
        }
        let (current, epoch) = self.current(route, segment, target);
        let epoch = ask.epoch.unwrap_or(epoch);
        let base = |intent: Intent| Change {
            intent,
            ..Change::new(&route.name, segment, actor, reason)
        };
        use std::cmp::Ordering::{Equal, Greater, Less};
        let intent = match (ask.intent, target.cmp(current), actor, target) {
            // The kill switch is always a lowering (pressing it twice records it twice).
            (Some(Intent::Lower), _, _, _) | (None, Less, _, _) => Intent::Lower,
            (None, _, _, Target::Mirror(false)) => Intent::Lower,
            (None, _, Actor::Config, _) | (None, _, _, Target::Mirror(true)) => Intent::Set,
            (Some(Intent::Set), _, _, _) => Intent::Set,
            (_, Equal | Less, _, _) => return Err(unchanged(route, segment, current)),
            (_, Greater, _, _) => Intent::Raise,
        };
        let (forced, gates) = match intent {
            Intent::Raise => {
                let refusal = |why: String| target.change(current, base(intent)).with_reason(why);
                self.admit(
                    route,
                    segment,
                    target,
                    actor,
                    force,
                    Evidence::Local,
                    refusal,
                )
                .await?
            }
            Intent::Lower | Intent::Set => (false, None),
        };
        let change = {
            let _changing = self.changes.lock().await;
            let (now, now_epoch) = self.current(route, segment, target);
            match intent {
                Intent::Lower
                    if target.cmp(now).is_ge() && !matches!(target, Target::Mirror(_)) =>
                {
                    return Err(unchanged(route, segment, now));
                }
                Intent::Raise if now_epoch != epoch => {
                    return Err(Error::Moved {
                        route: route.name.clone(),
                        segment: segment.to_string(),
                    });
                }
                Intent::Set if target.cmp(now).is_eq() && !matches!(target, Target::Mirror(_)) => {
                    return Err(unchanged(route, segment, now));
                }
                _ => {}
            }
            let mut change = target.change(now, base(intent));
            change.forced = forced;
            change.gates = gates;
            self.commit(change).await?
        };
        self.settled(&change, metrics);
        Ok(change)
    }

    /// The segment's current value of `target`'s dimension and the route's
    /// epoch, from one snapshot.
    fn current(&self, route: &Route, segment: &str, target: Target) -> (Target, u64) {
        let snapshot = self.snapshot_now();
        let rs = snapshot.get(&route.name);
        (target.current(rs, segment), rs.map_or(0, |s| s.epoch))
    }

    /// The gates every raise passes, whoever asks (docs/src/concepts/canary.md): the evidence
    /// gate (this replica's guard or stage tracker says pass, or the fleet's
    /// evaluator's pooled evidence does), then the route's external gates.
    /// Only a person's `force` skips them (and the change says so:
    /// `forced`). A refusal is announced as `gate_failed` with the change
    /// `refusal` describes. Returns whether the raise is forced, and the
    /// external gates' summary.
    #[allow(clippy::too_many_arguments)]
    pub async fn admit(
        &self,
        route: &Route,
        segment: &str,
        target: Target,
        actor: Actor,
        force: bool,
        evidence: Evidence,
        refusal: impl Fn(String) -> Change,
    ) -> Result<(bool, Option<String>), Error> {
        if force && actor.is_person() {
            return Ok((true, None));
        }
        if evidence == Evidence::Local
            && let Err(refused) = self.evidence_gate(route, segment, target)
        {
            self.announce(
                crate::notify::Kind::GateFailed,
                &refusal(refused.to_string()),
            );
            return Err(refused);
        }
        Ok((false, self.external_gates(route, segment, refusal).await?))
    }

    /// The evidence gate: `Ok` when the segment's guard (a weight) or stage
    /// tracker (a stage) says pass.
    fn evidence_gate(&self, route: &Route, segment: &str, target: Target) -> Result<(), Error> {
        let status = match target {
            Target::Stage(_) => self.autonomy_status(&route.name, segment).map(|(e, d, _)| {
                let held = "held by the stage's criteria ([routes.autonomy.criteria])";
                (e.to_string(), d.unwrap_or(Decision::Hold), held.to_string())
            }),
            _ => self.guard_status(&route.name, segment).map(|(f, d, _)| {
                let held = f.holding(&route.guard, d, self.guard_rate(&route.name, segment));
                (f.to_string(), d, held)
            }),
        };
        match status {
            Some((_, Decision::Pass, _)) => Ok(()),
            other => {
                let (figures, decision, holding) = match other {
                    Some((f, d, h)) => (f, d.as_str(), h),
                    None => (
                        "no decision since the last change".to_string(),
                        "hold",
                        "held: no comparison judged since the last change (the next one decides)"
                            .to_string(),
                    ),
                };
                Err(Error::Gated {
                    route: route.name.clone(),
                    segment: segment.to_string(),
                    decision,
                    figures,
                    holding,
                })
            }
        }
    }

    /// Runs a route's external gates before a raise (docs/src/concepts/canary.md): their summary
    /// when they all pass (`None` without gates), else the refusal, announced
    /// as `gate_failed` with the change `refusal` describes.
    async fn external_gates(
        &self,
        route: &Route,
        segment: &str,
        refusal: impl Fn(String) -> Change,
    ) -> Result<Option<String>, Error> {
        if route.guard.gates.is_empty() {
            return Ok(None);
        }
        let results = super::gates::check(&route.guard.gates).await;
        let summary = super::gates::summary(&results);
        let failed = results.iter().any(|r| !r.passed);
        lock(&self.gate_results).insert(route.name.clone(), results);
        if failed {
            let refused = Error::GateFailed {
                route: route.name.clone(),
                segment: segment.to_string(),
                results: summary,
            };
            self.announce(
                crate::notify::Kind::GateFailed,
                &refusal(refused.to_string()),
            );
            return Err(refused);
        }
        Ok(Some(summary))
    }

    /// What follows every change applied here or from the fleet: it is
    /// announced, the gauges follow, and the evidence of what it touched
    /// starts over ([`Reset::of`], the one rule).
    fn settled(&self, change: &Change, metrics: &Metrics) {
        if let Some(kind) = change.notification() {
            self.announce(kind, change);
        }
        if let Some(rs) = self.snapshot_now().get(&change.route) {
            metrics.set_weight(&change.route, &change.segment, rs.weight(&change.segment));
            if change.to_stage.is_some() {
                metrics.set_stage(&change.route, &change.segment, rs.stage(&change.segment));
            }
        }
        self.reset_evidence(&Reset::of(change), std::time::Instant::now());
        tracing::info!(route = %change.route, segment = %change.segment, from = change.from, to = change.to,
            from_stage = change.from_stage, to_stage = change.to_stage, mirror = change.mirror,
            intent = change.intent.as_str(), actor = %change.actor, reason = %change.reason,
            version = change.version, fleet_version = change.fleet_version, "Rollout changed");
    }

    /// Starts over the evidence a change touched, in the local guards and
    /// stage trackers; evidence gathered before `at` is never counted after.
    fn reset_evidence(&self, reset: &Reset, at: std::time::Instant) {
        for (route, per) in lock(&self.guards).iter_mut() {
            for (_, g) in per.iter_mut().filter(|(s, _)| reset.touches(route, s)) {
                g.reset_at(at, reset.depth);
            }
        }
        for (route, per) in lock(&self.trackers).iter_mut() {
            for (_, t) in per.iter_mut().filter(|(s, _)| reset.touches(route, s)) {
                t.reset_at(at, reset.depth);
            }
        }
    }

    /// The last result of each external gate of a route.
    pub fn gate_results(&self, route: &str) -> Vec<super::gates::GateResult> {
        lock(&self.gate_results)
            .get(route)
            .cloned()
            .unwrap_or_default()
    }

    /// Announces rollout events from now on (`[[notify]]`); the first call wins.
    pub fn notify_with(&self, notifier: crate::notify::Notifier) {
        let _first = self.notifier.set(notifier);
    }

    /// Announces `kind` for a change (or a refusal) to the sinks that want it.
    pub(super) fn announce(&self, kind: crate::notify::Kind, change: &Change) {
        let Some(n) = self.notifier.get() else { return };
        let figures = self
            .guard_status(&change.route, &change.segment)
            .map(|(f, d, _)| format!("{}: {f}", d.as_str()));
        n.send(&crate::notify::Event {
            event: kind,
            route: change.route.clone(),
            segment: change.segment.clone(),
            from: change.from,
            to: change.to,
            from_stage: change.from_stage.clone(),
            to_stage: change.to_stage.clone(),
            actor: change.actor.clone(),
            reason: change.reason.clone(),
            figures,
            version: change.version,
            ts: store::now_ms(),
        });
    }

    /// Puts `change` in effect (through [`apply`]) and in the ledger (when
    /// attached). A lowering is applied first and recorded after, retried
    /// until it lands; any other change is recorded first (under `[fleet]`:
    /// as the fleet's next version, or a 409) and applied only once
    /// recorded. The caller holds `changes` throughout.
    async fn commit(&self, mut change: Change) -> Result<Change, Error> {
        let (Some(store), Some(recorder)) = (self.ledger.get(), self.recorder.get()) else {
            self.apply_all(std::slice::from_ref(&change));
            return Ok(change);
        };
        let fleet = self.fleet();
        if let Some(f) = fleet {
            change.replica = Some(f.replica().to_string());
        }
        if change.lowers() {
            // Under [fleet] too: in effect here at once, pushed to the fleet
            // by the session (now, or when PostgreSQL is back).
            self.apply_all(std::slice::from_ref(&change));
            let recorded = recorder.record(change).await;
            if let Some(f) = fleet {
                f.kick();
            }
            return Ok(recorded);
        }
        let pending = recorder.unrecorded();
        if pending > 0 {
            return Err(Error::Unrecorded(pending));
        }
        if let Some(f) = fleet {
            // A raise is the fleet's: its next version or a 409.
            change.fleet_version = Some(f.insert_raise(&change).await?);
        }
        let change = super::record::append(store, change).await?;
        if let (Some(f), Some(v)) = (fleet, change.fleet_version) {
            f.set_applied(&change.route, v);
        }
        self.apply_all(std::slice::from_ref(&change));
        Ok(change)
    }

    /// Applies changes to a copy of the state, through [`apply`], and swaps it in.
    fn apply_all(&self, changes: &[Change]) {
        self.update(|state| {
            for c in changes {
                if let Some(rs) = state.get_mut(&c.route) {
                    apply(rs, c);
                }
            }
        });
    }

    /// Raises go through `fleet` from now on (the first call wins).
    pub fn join_fleet(&self, fleet: std::sync::Arc<dyn super::FleetLink>) {
        let _first = self.fleet.set(fleet);
    }

    /// The fleet this replica belongs to, if any.
    pub fn fleet(&self) -> Option<&dyn super::FleetLink> {
        self.fleet.get().map(|f| &**f)
    }

    /// Applies events from the fleet, in order, through [`apply`]: each one
    /// this replica does not have yet is cached in its ledger and settled
    /// (announced locally only by its maker, gauges, evidence reset); the
    /// lowerings made here that the fleet does not have yet stay on top.
    /// Returns how many were new here.
    pub async fn apply_fleet(
        &self,
        events: Vec<Change>,
        store: &crate::store::Store,
        metrics: &Metrics,
    ) -> Result<usize, Error> {
        let _changing = self.changes.lock().await;
        let wanted: Vec<(String, i64)> = events
            .iter()
            .map(|e| (e.route.clone(), e.fleet_version.unwrap_or(0)))
            .collect();
        let s = store.clone();
        let known = tokio::task::spawn_blocking(move || s.has_fleet_versions(&wanted))
            .await
            // The read's task ended without an answer (shutting down).
            .map_err(|_| store::Error::Closed {
                path: store.path().to_path_buf(),
            })??;
        let new: Vec<Change> = events
            .iter()
            .zip(known)
            .filter(|(_, known)| !known)
            .map(|(e, _)| e.clone())
            .collect();
        super::record::append_all(store, new.clone()).await?;
        let local = self.unpushed(store)?;
        self.apply_all(&[events, local].concat());
        let snapshot = self.snapshot();
        let now = std::time::Instant::now();
        for e in &new {
            if let Some(rs) = snapshot.get(&e.route) {
                set_gauges(metrics, &e.route, rs);
                if e.to_stage.is_some() {
                    metrics.set_stage(&e.route, &e.segment, rs.stage(&e.segment));
                }
            }
            self.reset_evidence(&Reset::of(e), now);
            tracing::info!(route = %e.route, segment = %e.segment, from = e.from, to = e.to, mirror = e.mirror, actor = %e.actor, replica = e.replica, version = e.fleet_version, "Fleet change applied");
        }
        Ok(new.len())
    }

    /// Announces a decision of the fleet's evaluator (`[[notify]]`).
    pub fn announce_fleet(&self, change: &Change) {
        if let Some(kind) = change.notification() {
            self.announce(kind, change);
        }
    }

    /// The last `limit` events (of one route, or all), oldest first.
    pub fn history(
        &self,
        route: Option<&str>,
        limit: usize,
    ) -> Result<Vec<events::RolloutEvent>, Error> {
        match self.ledger.get() {
            Some(store) => Ok(store.history(route, limit)?),
            None => Ok(Vec::new()),
        }
    }
}

/// The refusal of a change that would change nothing.
fn unchanged(route: &Route, segment: &str, current: Target) -> Error {
    match current {
        Target::Stage(stage) => Error::StageUnchanged {
            route: route.name.clone(),
            segment: segment.to_string(),
            stage,
        },
        Target::Weight(weight) => Error::Unchanged {
            route: route.name.clone(),
            segment: segment.to_string(),
            weight,
        },
        Target::Mirror(on) => Error::MirrorUnchanged {
            route: route.name.clone(),
            state: on_off(on),
        },
    }
}

impl Change {
    fn with_reason(mut self, reason: String) -> Change {
        self.reason = reason;
        self
    }
}

/// The file's stages that differ from the last `config` stage event of their
/// segment (none recorded counts as `autonomous`, the default), as `config`
/// changes from the segment's last recorded stage.
fn stage_changes(route: &Route, history: &[events::RolloutEvent]) -> Vec<Change> {
    let last = |seg: &str, config_only: bool| {
        history
            .iter()
            .rev()
            .filter(|e| e.route == route.name && e.segment == seg)
            .filter(|e| !config_only || e.actor == Actor::Config.as_str())
            .find_map(|e| e.to_stage.as_deref().and_then(Stage::parse))
    };
    let file = std::iter::once((segment::DEFAULT.to_string(), route.autonomy.stage))
        .chain(route.autonomy.stages.clone());
    file.filter(|(seg, stage)| last(seg, true).unwrap_or_default() != *stage)
        .map(|(seg, stage)| Change {
            from_stage: Some(last(&seg, false).unwrap_or_default().as_str().into()),
            to_stage: Some(stage.as_str().into()),
            ..Change::new(
                &route.name,
                &seg,
                Actor::Config,
                "initial stage in the config file",
            )
        })
        .collect()
}

fn set_gauges(metrics: &Metrics, route: &str, rs: &RouteState) {
    metrics.set_weight(route, segment::DEFAULT, rs.default);
    for (seg, w) in &rs.segments {
        metrics.set_weight(route, seg, *w);
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;
