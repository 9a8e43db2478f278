//! A change to a route's rollout state, what it means, and the one rule by
//! which it is put into effect ([`apply`]): for a change made here, for the
//! history replayed at start or reload, and for the fleet's events alike.
//!
//! A change moves one dimension of one segment (or, for the mirror switch,
//! of the whole route): its weight, its stage, or the mirror. What it means
//! is typed ([`Intent`]): a *lowering* is "at most X", applied as the lower
//! of X and whatever is current when it is applied, so it can never raise;
//! a *raise* is compare-and-set on the state it was decided against and has
//! passed the gates (or is a person's forced raise); a *set* is the config
//! file's value, a person's decision, applied as it is.

use super::RouteState;
use crate::config::Stage;
use crate::store::events;
use serde::{Deserialize, Serialize};

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

    /// A person at the CLI or the API (the config file is a person's too,
    /// but it is not gated: see [`Intent::Set`]).
    pub fn is_person(self) -> bool {
        matches!(self, Actor::Cli | Actor::Api)
    }
}

/// Segment name of route-wide kill-switch events.
pub const ALL_SEGMENTS: &str = "*";

/// What a change means (the `intent` column).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// "At most `to`" (or the mirror off): applied as the minimum of its
    /// target and the current value when it is applied. Never gated, never
    /// refused, never a raise.
    Lower,
    /// A raise decided against one version of the state; it passed the
    /// evidence gate and the external gates, or a person forced it.
    Raise,
    /// The config file's value (a person's decision, not gated), or the
    /// mirror switched on: applied as it is.
    #[default]
    Set,
}

impl Intent {
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Lower => "lower",
            Intent::Raise => "raise",
            Intent::Set => "set",
        }
    }

    /// The recorded intent, or for rows from before it was recorded, what
    /// the row's values say (a lowering when it went down).
    pub fn read(recorded: Option<&str>, change: &Change) -> Intent {
        match recorded {
            Some("lower") => Intent::Lower,
            Some("raise") => Intent::Raise,
            Some("set") => Intent::Set,
            _ if change.goes_down() => Intent::Lower,
            _ if change.actor == Actor::Config.as_str() => Intent::Set,
            _ if change.mirror.is_some() => Intent::Set,
            _ => Intent::Raise,
        }
    }
}

/// A recorded and applied change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The replica that made it, under `[fleet]` (docs/src/concepts/fleet.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Its version in the fleet's PostgreSQL, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_version: Option<i64>,
    /// A stage change (docs/src/concepts/stages.md): the stage before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_stage: Option<String>,
    /// What the change means.
    #[serde(default)]
    pub intent: Intent,
}

impl From<events::RolloutEvent> for Change {
    fn from(e: events::RolloutEvent) -> Change {
        let recorded = e.intent.clone();
        let mut c = Change {
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
            intent: Intent::Set,
        };
        c.intent = Intent::read(recorded.as_deref(), &c);
        c
    }
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
            intent: Intent::Set,
        }
    }

    /// Lowers exposure: applied before it is recorded (docs/src/reference/limits.md), never gated.
    pub fn lowers(&self) -> bool {
        self.intent == Intent::Lower
    }

    /// Whether the recorded values go down (a weight or stage lowered, the
    /// mirror off): what a row's intent is read as when it has none.
    fn goes_down(&self) -> bool {
        if let (Some(from), Some(to)) = (&self.from_stage, &self.to_stage) {
            return Stage::parse(to) < Stage::parse(from);
        }
        match (self.from, self.to, self.mirror.as_deref()) {
            (Some(from), Some(to), _) => to < from,
            (_, _, Some(m)) => m == "off",
            _ => false,
        }
    }

    /// The row to append to `rollout_events` at `ts_ms`.
    pub fn new_event(&self, ts_ms: i64) -> events::NewEvent {
        events::NewEvent {
            ts_ms,
            route: self.route.clone(),
            segment: self.segment.clone(),
            from_weight: self.from,
            to_weight: self.to,
            actor: self.actor.clone(),
            reason: self.reason.clone(),
            mirror: self.mirror.clone(),
            forced: self.forced,
            gates: self.gates.clone(),
            replica: self.replica.clone(),
            fleet_version: self.fleet_version,
            from_stage: self.from_stage.clone(),
            to_stage: self.to_stage.clone(),
            intent: Some(self.intent.as_str().to_string()),
        }
    }

    /// The notification a change calls for (docs/src/reference/configuration.md): a guard's lowering is
    /// a `breach`, a person's a `rollback`, any raise a `promote`, the mirror
    /// switched off `mirror_off`; the config file's changes are not announced.
    pub fn notification(&self) -> Option<crate::notify::Kind> {
        use crate::notify::Kind;
        if self.actor == Actor::Config.as_str() {
            return None;
        }
        if self.mirror.is_some() {
            return (self.mirror.as_deref() == Some("off")).then_some(Kind::MirrorOff);
        }
        match (self.intent, self.actor == Actor::Guard.as_str()) {
            (Intent::Lower, true) => Some(Kind::Breach),
            (Intent::Lower, false) => Some(Kind::Rollback),
            (Intent::Raise | Intent::Set, _) => Some(Kind::Promote),
        }
    }
}

/// Puts one change into a route's state: the one rule for a change made
/// here, for the history replayed at start or reload, and for the fleet's
/// events. A lowering takes the lower of its target and the current value,
/// so applying it can never raise anything; a raise or a set takes its
/// target. Returns whether anything changed.
pub fn apply(rs: &mut RouteState, c: &Change) -> bool {
    let lower = c.intent == Intent::Lower;
    let mut changed = false;
    if let Some(to) = c.to {
        let current = rs.weight(&c.segment);
        let next = if lower { current.min(to) } else { to };
        changed |= (next - current).abs() > 1e-9;
        rs.set(&c.segment, next);
    }
    if let Some(stage) = c.to_stage.as_deref().and_then(Stage::parse) {
        let current = rs.stage(&c.segment);
        let next = if lower { current.min(stage) } else { stage };
        changed |= next != current;
        rs.set_stage(&c.segment, next);
    }
    if let Some(m) = c.mirror.as_deref() {
        // A lowering can switch the mirror off, never on.
        let on = m != "off" && (rs.mirror || !lower);
        changed |= on != rs.mirror;
        rs.mirror = on;
    }
    if changed {
        rs.epoch += 1;
    }
    changed
}

pub use crate::judge::Depth;

/// Whose evidence a change starts over, and how much of it: the one rule,
/// used by the local guard, the stage tracker and the fleet's evaluator alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    pub scope: Scope,
    pub depth: Depth,
}

/// Which segments a change touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every segment of the route (the mirror switch, `default`).
    Route(String),
    /// One segment of a route.
    Segment(String, String),
}

impl Reset {
    /// Any change that changed something (a weight, a stage, the mirror,
    /// whoever made it: a person, the file, a guard here or in the fleet)
    /// resets what it touched ([`Depth`]). The mirror switch and a change to
    /// `default` (which every segment without a value of its own follows)
    /// touch the route.
    pub fn of(change: &Change) -> Reset {
        let scope = if change.segment == ALL_SEGMENTS || change.segment == crate::segment::DEFAULT {
            Scope::Route(change.route.clone())
        } else {
            Scope::Segment(change.route.clone(), change.segment.clone())
        };
        let depth = if change.mirror.is_some() {
            Depth::Evidence
        } else {
            Depth::Decision
        };
        Reset { scope, depth }
    }

    /// Whether this reset touches `route`/`segment`.
    pub fn touches(&self, route: &str, segment: &str) -> bool {
        match &self.scope {
            Scope::Route(r) => r == route,
            Scope::Segment(r, s) => r == route && s == segment,
        }
    }
}
