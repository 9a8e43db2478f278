//! Persistence of the rollout state: every weight or kill-switch change is
//! appended to `rollout_events` (by the store's writer) and applied to the
//! live snapshot: a raise recorded first, a rollback applied first
//! ([`super::record`]). The guards' verdicts arrive here as changes too.
//!
//! Order on start and reload: the file's initial weights that differ from the
//! last `config` event are recorded as `config` changes, then the latest
//! recorded weight of every segment wins. A raise that cannot be recorded is
//! not applied.

use super::{Rollout, RouteState, lock};
use crate::autonomy::Stage;
use crate::config::{Config, Route};
use crate::metrics::Metrics;
use crate::segment;
use crate::store::{self, events};
use serde::Serialize;
use std::collections::HashMap;

/// Who changed a weight: the `actor` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Cli,
    Api,
    Config,
    Guard,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Cli => "cli",
            Actor::Api => "api",
            Actor::Config => "config",
            Actor::Guard => "guard",
        }
    }
}

/// Segment name of route-wide kill-switch events.
pub const ALL_SEGMENTS: &str = "*";

/// A recorded and applied change.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Change {
    pub version: Option<i64>,
    pub route: String,
    pub segment: String,
    pub from: Option<f64>,
    pub to: Option<f64>,
    pub mirror: Option<String>,
    /// `cli`, `api`, `config` or `guard`.
    pub actor: String,
    pub reason: String,
    /// A raise that overrode the promotion gate.
    #[serde(default)]
    pub forced: bool,
    /// The external gates' results behind a raise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<String>,
    /// The replica that made it, under `[fleet]` (SPEC §10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Its version in the fleet's PostgreSQL, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_version: Option<i64>,
    /// A stage change (SPEC §14): the stage before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_stage: Option<String>,
}

impl From<events::RolloutEvent> for Change {
    fn from(e: events::RolloutEvent) -> Change {
        Change {
            version: Some(e.version),
            route: e.route,
            segment: e.segment,
            from: e.from_weight,
            to: e.to_weight,
            mirror: e.mirror,
            actor: e.actor,
            reason: e.reason,
            forced: e.forced,
            gates: e.gates,
            replica: e.replica,
            fleet_version: e.fleet_version,
            from_stage: e.from_stage,
            to_stage: e.to_stage,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no route named {route:?} (routes: {known})")]
    UnknownRoute { route: String, known: String },
    #[error("route {route:?} has no segment {segment:?} (segments: {known})")]
    UnknownSegment {
        route: String,
        segment: String,
        known: String,
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
         {decision} ({figures}); raise with --force (API: \"force\": true) and a reason to override"
    )]
    Gated {
        route: String,
        segment: String,
        decision: &'static str,
        figures: String,
    },
    #[error("an external gate failed for route {route:?} segment {segment:?}: {results}")]
    GateFailed {
        route: String,
        segment: String,
        results: String,
    },
    #[error(transparent)]
    Fleet(#[from] crate::fleet::Error),
    #[error(
        "{0} earlier rollback(s) are in effect but not yet recorded (the store is failing); \
         raising a weight waits until they are"
    )]
    Unrecorded(usize),
}

impl Change {
    /// A change of `route`/`segment` by `actor`, with nothing changed yet:
    /// the caller sets what the change is (weights, mirror or stages).
    pub fn new(route: &str, segment: &str, actor: Actor, reason: impl Into<String>) -> Change {
        Change {
            version: None,
            route: route.to_string(),
            segment: segment.to_string(),
            from: None,
            to: None,
            mirror: None,
            actor: actor.as_str().into(),
            reason: reason.into(),
            forced: false,
            gates: None,
            replica: None,
            fleet_version: None,
            from_stage: None,
            to_stage: None,
        }
    }

    /// Lowers exposure: a weight lowered or the mirror switched off. Such a
    /// change is applied before it is recorded (SPEC §9).
    pub fn lowers(&self) -> bool {
        if let (Some(from), Some(to)) = (&self.from_stage, &self.to_stage) {
            return Stage::parse(to) < Stage::parse(from);
        }
        match (self.from, self.to, self.mirror.as_deref()) {
            (Some(from), Some(to), _) => to < from,
            (_, _, Some(m)) => m == "off",
            _ => false,
        }
    }
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
        self.reconcile(config, metrics).await
    }

    /// Applies a (new) config: initial weights and kill switches that changed
    /// since the last `config` event are recorded as `config`; then the latest
    /// recorded state of every segment wins.
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
            // know; once it does, its weights are the fleet's (SPEC §10).
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
                } else if let (Some(e), Some(rs)) = (
                    last(&route.name, ALL_SEGMENTS, false, true),
                    next.get_mut(&route.name),
                ) {
                    rs.mirror = on(e);
                }
            }
            for route in config.routes.iter().filter(|r| fleet_managed(&r.name)) {
                if let (Some(e), Some(rs)) = (
                    last(&route.name, ALL_SEGMENTS, false, true),
                    next.get_mut(&route.name),
                ) {
                    rs.mirror = e.mirror.as_deref() != Some("off");
                }
            }
            // Stages are fleet state too: the file seeds them like weights.
            for route in config.routes.iter().filter(|r| !fleet_managed(&r.name)) {
                pending.extend(stage_changes(route, &history));
            }
            // All of a reload's config changes land together, or none does.
            changes = super::record::append_all(store, pending).await?;
            for (route, seg, w) in store.latest_weights()? {
                if let Some(rs) = next.get_mut(&route) {
                    rs.set(&seg, w);
                }
            }
            for (route, seg, stage) in store.latest_stages()? {
                if let (Some(rs), Some(stage)) = (next.get_mut(&route), Stage::parse(&stage)) {
                    rs.set_stage(&seg, stage);
                }
            }
        }
        for (name, rs) in &next {
            set_gauges(metrics, name, rs);
        }
        for route in &config.routes {
            if let Some(rs) = next.get(&route.name) {
                for seg in known_segments(route) {
                    metrics.set_stage(&route.name, &seg, rs.stage(&seg));
                }
            }
        }
        self.update(|state| *state = next);
        Ok(changes)
    }

    /// Sets one segment's weight (a raise recorded first, a rollback applied
    /// first). A person's raise (CLI or API) passes the promotion gate
    /// (SPEC §12): the segment's guard must say pass, unless `force`.
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
        if !(0.0..=100.0).contains(&to) {
            return Err(Error::BadWeight(to));
        }
        check_segment(route, segment)?;
        // The gates, before the change is made (and outside the lock: an
        // external gate may take seconds).
        let person = matches!(actor, Actor::Cli | Actor::Api);
        let current = self.route(&route.name).map_or(0.0, |s| s.weight(segment));
        let refusal = |reason: String| Change {
            from: Some(current),
            to: Some(to),
            ..Change::new(&route.name, segment, actor, reason)
        };
        if to > current
            && person
            && !force
            && let Err(refused) = self.gate(route, segment)
        {
            self.announce(
                crate::notify::Kind::GateFailed,
                &refusal(refused.to_string()),
            );
            return Err(refused);
        }
        let checked = to > current && actor != Actor::Config && !(person && force);
        let gates = match checked {
            true => self.external_gates(route, segment, refusal).await?,
            false => None,
        };
        let change = {
            let _changing = self.changes.lock().await;
            let from = self.route(&route.name).map_or(0.0, |s| s.weight(segment));
            if (from - to).abs() < 1e-9 && actor != Actor::Guard {
                return Err(Error::Unchanged {
                    route: route.name.clone(),
                    segment: segment.to_string(),
                    weight: from,
                });
            }
            let gated = to > from && person;
            let change = Change {
                from: Some(from),
                to: Some(to),
                forced: gated && force,
                gates: gates.filter(|_| to > from),
                ..Change::new(&route.name, segment, actor, reason)
            };
            self.commit(change, |rs| rs.set(segment, to)).await?
        };
        use crate::notify::Kind;
        let kind = match (to < change.from.unwrap_or(0.0), actor) {
            (true, Actor::Guard) => Some(Kind::Breach),
            (true, Actor::Cli | Actor::Api) => Some(Kind::Rollback),
            (false, Actor::Cli | Actor::Api | Actor::Guard) => Some(Kind::Promote),
            (_, Actor::Config) => None,
        };
        if let Some(kind) = kind {
            self.announce(kind, &change);
        }
        metrics.set_weight(&route.name, segment, to);
        if actor != Actor::Guard
            && let Some(g) = lock(&self.guards)
                .get_mut(&route.name)
                .and_then(|r| r.get_mut(segment))
        {
            g.restart_hold();
        }
        tracing::info!(route = %route.name, segment, from = change.from, to, actor = actor.as_str(), reason, "Weight changed");
        Ok(change)
    }

    /// Runs a route's external gates before a raise (SPEC §12): their summary
    /// when they all pass (`None` without gates), else the refusal, announced
    /// as `gate_failed` with the change `refusal` describes.
    pub(super) async fn external_gates(
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

    /// The promotion gate: `Ok` when the segment's guard says pass.
    pub(super) fn gate(&self, route: &Route, segment: &str) -> Result<(), Error> {
        let status = self.guard_status(&route.name, segment);
        match status {
            Some((_, super::guard::Decision::Pass, _)) => Ok(()),
            other => {
                let (figures, decision) = match other {
                    Some((f, d, _)) => (f.to_string(), d.as_str()),
                    None => ("no comparisons yet".to_string(), "hold"),
                };
                Err(Error::Gated {
                    route: route.name.clone(),
                    segment: segment.to_string(),
                    decision,
                    figures,
                })
            }
        }
    }

    /// Turns a route's mirror on or off (the kill switch), recorded like a weight.
    pub async fn set_mirror(
        &self,
        route: &Route,
        on: bool,
        actor: Actor,
        reason: &str,
    ) -> Result<Change, Error> {
        let _changing = self.changes.lock().await;
        let change = Change {
            mirror: Some(on_off(on).into()),
            ..Change::new(&route.name, ALL_SEGMENTS, actor, reason)
        };
        let change = self.commit(change, |rs| rs.mirror = on).await?;
        if !on && actor != Actor::Config {
            self.announce(crate::notify::Kind::MirrorOff, &change);
        }
        Ok(change)
    }

    /// Puts `change` in effect and in the ledger (when attached). A change
    /// that lowers exposure is applied first and recorded after, retried
    /// until it lands; any other is recorded first and applied only once
    /// recorded. The caller holds `changes` throughout.
    pub(super) async fn commit(
        &self,
        change: Change,
        apply: impl FnOnce(&mut RouteState),
    ) -> Result<Change, Error> {
        let route = change.route.clone();
        let apply = |state: &mut HashMap<String, RouteState>| {
            if let Some(rs) = state.get_mut(&route) {
                apply(rs);
            }
        };
        let (Some(store), Some(recorder)) = (self.ledger.get(), self.recorder.get()) else {
            self.update(apply);
            return Ok(change);
        };
        let fleet = self.fleet.get();
        let mut change = change;
        if let Some(f) = fleet {
            change.replica = Some(f.replica().to_string());
        }
        if change.lowers() {
            // Under [fleet] too: in effect here at once, pushed to the fleet
            // by the session (now, or when PostgreSQL is back).
            self.update(apply);
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
        let change = append(store, change).await?;
        if let (Some(f), Some(v)) = (fleet, change.fleet_version) {
            f.set_applied(&change.route, v);
        }
        self.update(apply);
        Ok(change)
    }

    /// Raises go through `fleet` from now on (the first call wins).
    pub fn join_fleet(&self, fleet: crate::fleet::Fleet) {
        let _first = self.fleet.set(fleet);
    }

    /// The fleet this replica belongs to, if any.
    pub fn fleet(&self) -> Option<&crate::fleet::Fleet> {
        self.fleet.get()
    }

    /// Applies events from the fleet, in order: each one this replica does
    /// not have yet is cached in its ledger; the live state follows them all
    /// (setting a weight twice is harmless; recording it twice is not).
    /// Returns how many were new here.
    pub async fn apply_fleet(
        &self,
        events: Vec<Change>,
        store: &crate::store::Store,
        metrics: &Metrics,
    ) -> Result<usize, crate::fleet::Error> {
        let _changing = self.changes.lock().await;
        let wanted: Vec<(String, i64)> = events
            .iter()
            .map(|e| (e.route.clone(), e.fleet_version.unwrap_or(0)))
            .collect();
        let s = store.clone();
        let known = tokio::task::spawn_blocking(move || s.has_fleet_versions(&wanted))
            .await
            .map_err(|e| crate::fleet::Error::Build(e.to_string()))??;
        let new: Vec<Change> = events
            .iter()
            .zip(known)
            .filter(|(_, known)| !known)
            .map(|(e, _)| e.clone())
            .collect();
        super::record::append_all(store, new.clone()).await?;
        self.update(|state| {
            for e in &events {
                let Some(rs) = state.get_mut(&e.route) else {
                    continue;
                };
                match (e.to, e.mirror.as_deref(), e.to_stage.as_deref()) {
                    (Some(w), _, _) => rs.set(&e.segment, w),
                    (None, Some(m), _) => rs.mirror = m != "off",
                    (None, None, Some(stage)) => {
                        if let Some(stage) = crate::autonomy::Stage::parse(stage) {
                            rs.set_stage(&e.segment, stage);
                            metrics.set_stage(&e.route, &e.segment, stage);
                        }
                    }
                    _ => {}
                }
            }
        });
        let snapshot = self.snapshot();
        for e in &new {
            if let Some(rs) = snapshot.get(&e.route) {
                set_gauges(metrics, &e.route, rs);
            }
            if e.actor != Actor::Guard.as_str()
                && let Some(g) = lock(&self.guards)
                    .get_mut(&e.route)
                    .and_then(|r| r.get_mut(&e.segment))
            {
                g.restart_hold();
            }
            tracing::info!(route = %e.route, segment = %e.segment, from = e.from, to = e.to, mirror = e.mirror, actor = %e.actor, replica = e.replica, version = e.fleet_version, "Fleet change applied");
        }
        Ok(new.len())
    }

    /// Announces a decision of the fleet's evaluator (`[[notify]]`).
    pub fn announce_fleet(&self, change: &Change) {
        let kind = if change.lowers() {
            crate::notify::Kind::Breach
        } else {
            crate::notify::Kind::Promote
        };
        self.announce(kind, change);
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

async fn append(store: &crate::store::Store, change: Change) -> Result<Change, Error> {
    Ok(super::record::append(store, change).await?)
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
mod tests;
