//! Stage changes (SPEC §14): by hand (CLI, API), from the config, and by
//! the evidence of each segment's stage, recorded in `rollout_events` with
//! `from_stage`/`to_stage` like a weight change.
//!
//! A lowering is applied first and recorded after (as a rollback); a raise
//! by a person passes the promotion gate (the stage's criteria must say
//! pass) unless forced, and automatic or manual raises pass the external
//! gates. People's verdicts (ratings, reversals) also feed the weight's guard.

use super::state::{Actor, Change, Error, check_segment};
use super::{Rollout, lock};
use crate::autonomy::Stage;
use crate::autonomy::evidence::{Event, Evidence, Judge};
use crate::config::Route;
use crate::metrics::Metrics;
use crate::rollout::guard::{self, Decision};
use std::time::{Duration, Instant};

impl Rollout {
    /// Sets one segment's stage. A person's raise (CLI or API) passes the
    /// promotion gate unless `force`; lowering is never gated.
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
        check_segment(route, segment)?;
        let person = matches!(actor, Actor::Cli | Actor::Api);
        let current = self
            .route(&route.name)
            .map_or(Stage::default(), |s| s.stage(segment));
        let change_to = |from: Stage, reason: String| Change {
            from_stage: Some(from.as_str().into()),
            to_stage: Some(to.as_str().into()),
            ..Change::new(&route.name, segment, actor, reason)
        };
        if to > current
            && person
            && !force
            && let Err(refused) = self.stage_gate(route, segment)
        {
            self.announce(
                crate::notify::Kind::GateFailed,
                &change_to(current, refused.to_string()),
            );
            return Err(refused);
        }
        let checked = to > current && actor != Actor::Config && !(person && force);
        let gates = match checked {
            true => {
                self.external_gates(route, segment, |r| change_to(current, r))
                    .await?
            }
            false => None,
        };
        let change = {
            let _changing = self.changes.lock().await;
            let from = self
                .route(&route.name)
                .map_or(Stage::default(), |s| s.stage(segment));
            if from == to {
                return Err(Error::StageUnchanged {
                    route: route.name.clone(),
                    segment: segment.to_string(),
                    stage: to,
                });
            }
            let mut change = change_to(from, reason.to_string());
            change.forced = to > from && person && force;
            change.gates = gates.filter(|_| to > from);
            self.commit(change, |rs| rs.set_stage(segment, to)).await?
        };
        use crate::notify::Kind;
        let down = change.lowers();
        let kind = match (down, actor) {
            (true, Actor::Guard) => Some(Kind::Breach),
            (true, Actor::Cli | Actor::Api) => Some(Kind::Rollback),
            (false, Actor::Cli | Actor::Api | Actor::Guard) => Some(Kind::Promote),
            (_, Actor::Config) => None,
        };
        if let Some(kind) = kind {
            self.announce(kind, &change);
        }
        metrics.set_stage(&route.name, segment, to);
        if let Some(t) = lock(&self.trackers)
            .get_mut(&route.name)
            .and_then(|r| r.get_mut(segment))
        {
            t.restart();
        }
        tracing::info!(route = %route.name, segment, from = ?change.from_stage, to = to.as_str(), actor = actor.as_str(), reason, "Stage changed");
        Ok(change)
    }

    /// The stage's promotion gate: `Ok` when its criteria say pass.
    fn stage_gate(&self, route: &Route, segment: &str) -> Result<(), Error> {
        let status = self.autonomy_status(&route.name, segment);
        match status {
            Some((_, Some(Decision::Pass), _)) => Ok(()),
            other => {
                let (figures, decision) = match other {
                    Some((e, d, _)) => (e.to_string(), d.map_or("hold", Decision::as_str)),
                    None => ("no evidence yet".to_string(), "hold"),
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

    /// Adds what a segment's stage learns from (a comparison, an approval
    /// decided, a review, a reversal, a rating) and applies what its
    /// criteria decide: one stage down at once on a breach, one up after
    /// `hold` with `auto_advance`.
    pub async fn observe_stage(&self, route: &Route, label: &str, event: Event, metrics: &Metrics) {
        if !route.autonomy.configured {
            return;
        }
        let (stage, weight) = self
            .snapshot_now()
            .get(&route.name)
            .map_or((Stage::default(), 0.0), |s| {
                (s.stage(label), s.weight(label))
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
            t.observe(&judge, stage, event, weight > 0.0, Instant::now())
        };
        let Some(m) = moved else { return };
        if let Some(reason) = m.breach {
            metrics.record_guard_trip(&route.name, label, reason);
            tracing::warn!(route = %route.name, segment = label, reason = %m.reason, "Autonomy breach");
        }
        match self
            .set_stage(route, label, m.to, Actor::Guard, &m.reason, false, metrics)
            .await
        {
            Ok(_) => {}
            // Two settle tasks saw the same breach at once: the first moved it.
            Err(Error::StageUnchanged { .. }) => {
                tracing::debug!(route = %route.name, segment = label, "Stage already moved");
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
        let weight = self
            .snapshot_now()
            .get(&route.name)
            .map_or(0.0, |s| s.weight(label));
        let action = {
            let mut guards = lock(&self.guards);
            let per_route = guards.entry(route.name.clone()).or_default();
            per_route
                .entry(label.to_string())
                .or_default()
                .observe_feedback(g, add, weight)
        };
        if let Some(action) = action {
            self.act(route, label, action, metrics).await;
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
            self.observe_stage(route, label, Event::Rated { satisfied: r > 0 }, metrics)
                .await;
        }
        if reversed {
            add.reversed = 1;
            let stage = self
                .snapshot_now()
                .get(&route.name)
                .map_or(Stage::default(), |s| s.stage(label));
            if stage == Stage::Notify {
                self.observe_stage(route, label, Event::Reversed, metrics)
                    .await;
            }
        }
        self.observe_people(route, label, add, metrics).await;
    }

    /// An answer the candidate served at `notify` was put up for review.
    pub async fn reviewed(&self, route: &Route, label: &str, metrics: &Metrics) {
        self.observe_stage(route, label, Event::Reviewed, metrics)
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
