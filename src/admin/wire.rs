//! The admin API's wire format (docs/src/reference/admin-api.md): the JSON types the server
//! ([`super::api`]) writes and the CLI's client ([`super::client`]) reads, so
//! the two cannot drift apart.

use crate::rollout::Change;
use crate::rollout::guard::Figures;
use serde::{Deserialize, Serialize};

/// `GET /api/v1/routes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Routes {
    pub routes: Vec<RouteView>,
}

/// One route: its kill switch, guard settings and segments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RouteView {
    pub route: String,
    /// `on` or `off`.
    pub mirror: String,
    pub has_candidate: bool,
    pub guard_config: GuardConfig,
    pub segments: Vec<SegmentView>,
    /// The last result of each external gate.
    #[serde(default)]
    pub gates: Vec<crate::rollout::gates::GateResult>,
}

/// A route's `[routes.guard]` as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuardConfig {
    pub min_samples: u64,
    pub min_agreement: f64,
    pub max_candidate_error_rate: f64,
    pub max_latency_ratio: Option<f64>,
    pub auto_promote: bool,
    pub steps: Vec<f64>,
    pub hold_s: f64,
}

/// One segment: its weight and stage and, once it has seen comparisons, its guard.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentView {
    pub segment: String,
    pub weight: f64,
    /// The stage of autonomy; `null` on a route without `[routes.autonomy]`
    /// (its candidate serves canary users as before stages).
    #[serde(default)]
    pub stage: Option<crate::config::Stage>,
    pub guard: Option<GuardView>,
    /// The stage's evidence since it last changed, once there is any.
    #[serde(default)]
    pub autonomy: Option<AutonomyView>,
}

/// What a segment's stage has learnt since it last changed, and its decision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AutonomyView {
    /// `pass`, `hold` or `breach`.
    pub decision: String,
    pub reason: Option<String>,
    pub passing_for_s: Option<f64>,
    pub evidence: crate::autonomy::evidence::Evidence,
}

/// The guard's latest decision on a segment, and the figures behind it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuardView {
    /// `pass`, `hold` or `breach`.
    pub decision: String,
    /// The breach reason, for a breach.
    pub reason: Option<String>,
    /// How long the segment has passed without a break.
    pub passing_for_s: Option<f64>,
    pub figures: Figures,
    /// On hold: about how many more samples until pass or breach, if
    /// agreement stays where it is, and how long at the current rate.
    #[serde(default)]
    pub samples_to_decide: Option<u64>,
    #[serde(default)]
    pub seconds_to_decide: Option<f64>,
}

/// `POST /api/v1/routes/{route}/weights`: a weight, or the kill switch.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// `on` or `off`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    pub reason: Option<String>,
    /// Raise although the guard does not say pass (audited as forced).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// `POST /api/v1/routes/{route}/stage` (docs/src/concepts/stages.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// `shadow`, `recommend`, `approve`, `notify` or `autonomous`.
    pub stage: String,
    pub reason: Option<String>,
    /// Raise although the stage's criteria do not say pass (audited as forced).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// `POST /api/v1/approvals/{id}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecision {
    /// `approve` or `reject`.
    pub decision: String,
    pub reason: Option<String>,
}

/// The answer to a weight change.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Changed {
    pub change: Change,
}

/// `GET /api/v1/audit[?route=R&limit=N]`, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Audit {
    pub events: Vec<EventView>,
}

/// One row of `rollout_events`: a recorded change and when it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    /// Unix ms.
    pub ts: i64,
    #[serde(flatten)]
    pub change: Change,
}

impl From<crate::store::events::RolloutEvent> for EventView {
    fn from(e: crate::store::events::RolloutEvent) -> EventView {
        EventView {
            ts: e.ts_ms,
            change: Change::from(e),
        }
    }
}

/// `POST /api/v1/feedback`: the rating as the store records it.
pub type Feedback = crate::store::events::NewFeedback;

/// The answer to a reload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reloaded {
    pub reloaded: bool,
    pub changes: Vec<Change>,
}

/// Every refusal: `{"error": "..."}` with a 4xx or 5xx status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refusal {
    pub error: String,
}
