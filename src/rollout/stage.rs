//! Stage changes (docs/src/concepts/stages.md): by hand (CLI, API), from the config, and by
//! the evidence of each segment's stage, recorded in `rollout_events` with
//! `from_stage`/`to_stage` like a weight change.
//!
//! A lowering is applied first and recorded after (as a rollback); a raise
//! by a person passes the promotion gate (the stage's criteria must say
//! pass) unless forced, and automatic or manual raises pass the external
//! gates. People's verdicts (ratings, reversals) also feed the weight's guard.

use super::state::{Ask, Error, Target};
use super::{Actor, Change, Intent, Rollout, lock};
use crate::autonomy::evidence::{Event, Evidence, Judge};
use crate::config::Route;
use crate::config::Stage;
use crate::metrics::Metrics;
use crate::rollout::guard::{self, Decision};
use std::time::{Duration, Instant};

impl Rollout {
    /// Sets one segment's stage (see [`Rollout::change`]): a person's raise
    /// passes the promotion gate unless `force`; lowering is never gated.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_stage(
        &self,
        route: &Route,
        segment: &str,
        to: Stage,
        actor: Actor,
        reason: &str,
        force: bool,
        metrics: &Metrics,
    ) -> Result<Change, Error> {
        let ask = Ask {
            force,
            ..Ask::new(segment, Target::Stage(to), actor, reason)
        };
        self.change(route, ask, metrics).await
    }

    /// Adds what a segment's stage learns from (a comparison, an approval
    /// decided, a review, a reversal, a rating) and applies what its
    /// criteria decide: one stage down at once on a breach, one up after
    /// `hold` with `auto_advance`.
    pub async fn observe_stage(
        &self,
        route: &Route,
        label: &str,
        event: Event,
        at: Instant,
        metrics: &Metrics,
    ) {
        if !route.autonomy.configured {
            return;
        }
        let (stage, weight, epoch) = self
            .snapshot_now()
            .get(&route.name)
            .map_or((Stage::default(), 0.0, 0), |s| {
                (s.stage(label), s.weight(label), s.epoch)
            });
        let a = &route.autonomy;
        let judge = Judge {
            criteria: &a.criteria,
            method: &route.guard.method,
            auto_advance: a.auto_advance,
            hold: a.hold,
        };
        let moved = {
            let mut trackers = lock(&self.trackers);
            let per_route = trackers.entry(route.name.clone()).or_default();
            let t = match per_route.get_mut(label) {
                Some(t) => t,
                None => per_route.entry(label.to_string()).or_default(),
            };
            t.observe(&judge, stage, event, weight > 0.0, at)
        };
        let Some(m) = moved else { return };
        if let Some(reason) = m.breach {
            metrics.record_guard_trip(&route.name, label, reason);
            tracing::warn!(route = %route.name, segment = label, reason = %m.reason, "Autonomy breach");
        }
        // A breach is "at most one stage down from what I saw"; an advance
        // is compare-and-set on the state the evidence was gathered in.
        let ask = Ask {
            intent: Some(if m.breach.is_some() {
                Intent::Lower
            } else {
                Intent::Raise
            }),
            epoch: Some(epoch),
            ..Ask::new(label, Target::Stage(m.to), Actor::Guard, &m.reason)
        };
        match self.change(route, ask, metrics).await {
            Ok(_) => {}
            // Two settle tasks saw the same breach at once (the first moved
            // it), or the state moved on since the evidence was gathered.
            Err(e @ (Error::StageUnchanged { .. } | Error::Moved { .. })) => {
                tracing::debug!(route = %route.name, segment = label, error = %e, "Stage not moved");
            }
            Err(e) => {
                tracing::error!(route = %route.name, segment = label, error = %e, "Could not change the stage");
            }
        }
    }

    /// People's verdicts as guard inputs for the weight (`guard.min_satisfaction`,
    /// `guard.max_reversal_rate`): a confident breach steps the weight back.
    pub async fn observe_people(
        &self,
        route: &Route,
        label: &str,
        add: guard::Feedback,
        metrics: &Metrics,
    ) {
        let g = &route.guard;
        if g.min_satisfaction.is_none() && g.max_reversal_rate.is_none() {
            return;
        }
        let (weight, epoch) = self
            .snapshot_now()
            .get(&route.name)
            .map_or((0.0, 0), |s| (s.weight(label), s.epoch));
        let action = {
            let mut guards = lock(&self.guards);
            let per_route = guards.entry(route.name.clone()).or_default();
            per_route
                .entry(label.to_string())
                .or_default()
                .observe_feedback(g, add, weight)
        };
        if let Some(action) = action {
            self.act(route, label, action, epoch, metrics).await;
        }
    }

    /// A person's feedback on an exchange of `label`: a rating and/or a
    /// reversal, for the stage's criteria and the weight's guard. A reversal
    /// counts for the stage while the segment is at `notify`.
    pub async fn feedback(
        &self,
        route: &Route,
        label: &str,
        rating: Option<i64>,
        reversed: bool,
        metrics: &Metrics,
    ) {
        let mut add = guard::Feedback::default();
        if let Some(r) = rating {
            add.rated = 1;
            add.satisfied = u64::from(r > 0);
            let event = Event::Rated { satisfied: r > 0 };
            self.observe_stage(route, label, event, Instant::now(), metrics)
                .await;
        }
        if reversed {
            add.reversed = 1;
            let stage = self
                .snapshot_now()
                .get(&route.name)
                .map_or(Stage::default(), |s| s.stage(label));
            if stage == Stage::Notify {
                self.observe_stage(route, label, Event::Reversed, Instant::now(), metrics)
                    .await;
            }
        }
        self.observe_people(route, label, add, metrics).await;
    }

    /// An answer the candidate served at `notify` was put up for review.
    pub async fn reviewed(&self, route: &Route, label: &str, metrics: &Metrics) {
        self.observe_stage(route, label, Event::Reviewed, Instant::now(), metrics)
            .await;
        let add = guard::Feedback {
            reviewed: 1,
            ..guard::Feedback::default()
        };
        self.observe_people(route, label, add, metrics).await;
    }

    /// The stage's evidence since it last changed, its decision and how long it has passed.
    pub fn autonomy_status(
        &self,
        route: &str,
        segment: &str,
    ) -> Option<(Evidence, Option<Decision>, Option<Duration>)> {
        lock(&self.trackers)
            .get(route)
            .and_then(|r| r.get(segment))
            .map(|t| (t.evidence(), t.decision(), t.passing_for(Instant::now())))
    }
}
