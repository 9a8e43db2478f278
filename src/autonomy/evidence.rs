//! The evidence of a segment's stage (docs/src/concepts/stages.md) and the decision drawn from
//! it: advance only when confidently good, regress when confidently bad.
//!
//! Pure: no IO, the clock is passed in. Every rate is judged by
//! [`crate::judge`], the guard's own statistics (its `method` and `alpha`)
//! and hysteresis, so a stage is earned and lost by the same rule as a weight.

use super::Stage;
use crate::config::{Criteria, GuardMethod};
use crate::judge::{Bar, Decision, RateCheck, Reason, Step, Streak, judge_rate};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Counts since the segment's stage last changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub matches: u64,
    pub mismatches: u64,
    /// Decided approvals (`approve`).
    pub approved: u64,
    pub rejected: u64,
    /// Answers the candidate served for review (`notify`), and those reversed.
    pub reviewed: u64,
    pub reversed: u64,
    /// Rated exchanges, and those rated > 0.
    pub rated: u64,
    pub satisfied: u64,
}

/// One thing a stage learns from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A comparison: agreed or not.
    Compared { agree: bool },
    /// An approval decided: approved or rejected.
    Decided { approved: bool },
    /// An answer the candidate served was put up for review.
    Reviewed,
    /// A person reversed an answer.
    Reversed,
    /// A rating: > 0 or not.
    Rated { satisfied: bool },
}

impl Evidence {
    /// The evidence that does not depend on exposure: the comparisons (every
    /// request is compared whatever the stage); people's verdicts start over.
    fn comparisons(&self) -> Evidence {
        Evidence {
            matches: self.matches,
            mismatches: self.mismatches,
            ..Evidence::default()
        }
    }

    pub fn add(&mut self, e: Event) {
        let slot = match e {
            Event::Compared { agree: true } => &mut self.matches,
            Event::Compared { agree: false } => &mut self.mismatches,
            Event::Decided { approved: true } => &mut self.approved,
            Event::Decided { approved: false } => &mut self.rejected,
            Event::Reviewed => &mut self.reviewed,
            Event::Reversed => &mut self.reversed,
            Event::Rated { satisfied } => {
                if satisfied {
                    self.satisfied += 1;
                }
                &mut self.rated
            }
        };
        *slot += 1;
    }
}

impl std::fmt::Display for Evidence {
    /// The rates that have any evidence, e.g. `agreement 0.993 over 884,
    /// satisfaction 1.000 over 113`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts = [
            ("agreement", self.matches, self.matches + self.mismatches),
            ("rejects", self.rejected, self.approved + self.rejected),
            ("reversals", self.reversed.min(self.reviewed), self.reviewed),
            ("satisfaction", self.satisfied, self.rated),
        ];
        let mut first = true;
        for (name, k, n) in parts.into_iter().filter(|(_, _, n)| *n > 0) {
            let sep = if first { "" } else { ", " };
            write!(f, "{sep}{name} {:.3} over {n}", k as f64 / n as f64)?;
            first = false;
        }
        if first {
            write!(f, "no evidence yet")?;
        }
        Ok(())
    }
}

/// The stage's decision on its evidence (docs/src/concepts/stages.md), asymmetric like the
/// guard's: a breach needs one configured criterion confidently bad (with at
/// least `min_samples`); a pass needs every criterion that applies to the
/// stage confidently good. Agreement and satisfaction apply at every stage,
/// the reject rate at `approve`, the reversal rate at `notify`; a criterion
/// that is not configured is not checked.
pub fn decide(c: &Criteria, method: &GuardMethod, stage: Stage, e: &Evidence) -> Decision {
    let min = c.min_samples.max(1);
    let judge = |k: u64, n: u64, bar: f64, side: Bar| judge_rate(method, k, n, bar, side, min);
    let checks = [
        (
            Reason::Reversals,
            c.max_reversal_rate
                .filter(|_| stage == Stage::Notify)
                .map(|b| judge(e.reversed.min(e.reviewed), e.reviewed, b, Bar::Max)),
        ),
        (
            Reason::Rejects,
            c.max_reject_rate
                .filter(|_| stage == Stage::Approve)
                .map(|b| judge(e.rejected, e.approved + e.rejected, b, Bar::Max)),
        ),
        (
            Reason::Satisfaction,
            c.min_satisfaction
                .map(|b| judge(e.satisfied, e.rated, b, Bar::Min)),
        ),
        (
            Reason::Agreement,
            Some(judge(
                e.matches,
                e.matches + e.mismatches,
                c.min_agreement,
                Bar::Min,
            )),
        ),
    ];
    if let Some((reason, _)) = checks.iter().find(|(_, r)| *r == Some(RateCheck::Bad)) {
        return Decision::Breach(*reason);
    }
    if checks
        .iter()
        .all(|(_, r)| matches!(r, None | Some(RateCheck::Good)))
    {
        Decision::Pass
    } else {
        Decision::Hold
    }
}

/// A stage change the evidence asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    pub to: Stage,
    /// `Some` for a breach (one stage down), `None` for an advance.
    pub breach: Option<Reason>,
    /// The audit reason, with the numbers behind it.
    pub reason: String,
}

/// The evidence of one route and segment (the comparisons since the last
/// full reset, people's verdicts since its stage last changed), and how long
/// it has passed.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    /// The stage people's verdicts were gathered at: they never carry over
    /// to another stage, even when a move and an observation race.
    stage: Option<Stage>,
    evidence: Evidence,
    streak: Streak,
    last: Option<Decision>,
    /// The last full reset: events from before it are never counted.
    floor: Option<Instant>,
    /// The last change: people's verdicts from before it are never counted.
    exposure_floor: Option<Instant>,
}

/// The settings a tracker judges by.
pub struct Judge<'a> {
    pub criteria: &'a Criteria,
    pub method: &'a GuardMethod,
    pub auto_advance: bool,
    pub hold: Duration,
}

impl Tracker {
    /// Adds `event` at `stage` and says where the stage should go: one down
    /// at once on a breach, one up when it has passed for `hold` (with
    /// `auto_advance`). Either only while the segment has canary users
    /// (`canary`, weight > 0), as the guard moves weights only then.
    pub fn observe(
        &mut self,
        judge: &Judge<'_>,
        stage: Stage,
        event: Event,
        canary: bool,
        now: Instant,
    ) -> Option<Move> {
        let compared = matches!(event, Event::Compared { .. });
        if self.floor.is_some_and(|f| now < f)
            || (!compared && self.exposure_floor.is_some_and(|f| now < f))
        {
            return None;
        }
        if self.stage != Some(stage) {
            self.start_over(Some(stage));
        }
        self.evidence.add(event);
        let decision = decide(judge.criteria, judge.method, stage, &self.evidence);
        self.last = Some(decision);
        let step = self
            .streak
            .step(decision, now, judge.hold, canary, judge.auto_advance);
        match step {
            Step::Breach(reason) => Some(Move {
                to: stage.previous()?,
                breach: Some(reason),
                reason: format!("autonomy breach ({}): {}", reason.as_str(), self.evidence),
            }),
            Step::Stay => None,
            Step::Advance(held) => Some(Move {
                to: stage.next()?,
                breach: None,
                reason: format!(
                    "autonomy advance: passed for {}: {}",
                    humantime::format_duration(Duration::from_millis(held.as_millis() as u64)),
                    self.evidence
                ),
            }),
        }
    }

    /// A change touched this segment (the rollout's one reset rule,
    /// [`crate::judge::Depth`]): the decision and people's verdicts start
    /// over, and for a full reset the comparisons too; what was gathered
    /// before `at` is never counted in what started over.
    pub fn reset_at(&mut self, at: Instant, depth: crate::judge::Depth) {
        let later = |f: Option<Instant>| Some(f.map_or(at, |f| f.max(at)));
        match depth {
            crate::judge::Depth::Decision => {
                self.start_over(self.stage);
                self.exposure_floor = later(self.exposure_floor);
            }
            crate::judge::Depth::Evidence => {
                *self = Tracker {
                    floor: later(self.floor),
                    exposure_floor: later(self.exposure_floor),
                    ..Tracker::default()
                };
            }
        }
    }

    /// A new stage or a change: the decision, the streak and people's
    /// verdicts start over; the comparisons stay.
    fn start_over(&mut self, stage: Option<Stage>) {
        *self = Tracker {
            stage,
            evidence: self.evidence.comparisons(),
            floor: self.floor,
            exposure_floor: self.exposure_floor,
            ..Tracker::default()
        };
    }

    pub fn evidence(&self) -> Evidence {
        self.evidence
    }

    pub fn decision(&self) -> Option<Decision> {
        self.last
    }

    pub fn passing_for(&self, now: Instant) -> Option<Duration> {
        self.streak.passing_for(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn criteria() -> Criteria {
        Criteria {
            min_agreement: 0.9,
            max_reject_rate: Some(0.2),
            max_reversal_rate: Some(0.1),
            min_satisfaction: Some(0.7),
            min_samples: 20,
        }
    }

    #[test]
    fn advances_only_when_every_criterion_is_confidently_good() {
        let method = GuardMethod::sequential(0.05);
        let c = criteria();
        let mut e = Evidence::default();
        for _ in 0..200 {
            e.add(Event::Compared { agree: true });
        }
        // Satisfaction is configured and unknown: hold.
        assert_eq!(decide(&c, &method, Stage::Recommend, &e), Decision::Hold);
        for _ in 0..200 {
            e.add(Event::Rated { satisfied: true });
        }
        assert_eq!(decide(&c, &method, Stage::Recommend, &e), Decision::Pass);
        // At notify the reversal rate must be known too.
        assert_eq!(decide(&c, &method, Stage::Notify, &e), Decision::Hold);
    }

    #[test]
    fn a_burst_of_reversals_breaches_at_notify_only() {
        let method = GuardMethod::sequential(0.05);
        let c = criteria();
        let mut e = Evidence::default();
        for i in 0..60 {
            e.add(Event::Reviewed);
            if i % 2 == 0 {
                e.add(Event::Reversed);
            }
        }
        assert_eq!(
            decide(&c, &method, Stage::Notify, &e),
            Decision::Breach(Reason::Reversals)
        );
        assert_ne!(
            decide(&c, &method, Stage::Approve, &e),
            Decision::Breach(Reason::Reversals)
        );
        // Below min_samples nothing is decided.
        let mut few = Evidence::default();
        for _ in 0..10 {
            few.add(Event::Reviewed);
            few.add(Event::Reversed);
        }
        assert_eq!(decide(&c, &method, Stage::Notify, &few), Decision::Hold);
    }

    #[test]
    fn tracker_moves_one_stage_down_at_once_and_up_after_hold() {
        let method = GuardMethod::Wilson;
        let c = Criteria {
            min_satisfaction: None,
            ..criteria()
        };
        let judge = Judge {
            criteria: &c,
            method: &method,
            auto_advance: true,
            hold: Duration::from_secs(1),
        };
        let t0 = Instant::now();
        let mut t = Tracker::default();
        let mut moved = None;
        for i in 0..100 {
            let at = t0 + Duration::from_millis(20 * i);
            moved = moved.or(t.observe(
                &judge,
                Stage::Recommend,
                Event::Compared { agree: true },
                true,
                at,
            ));
        }
        let m = moved.expect("advanced");
        assert_eq!((m.to, m.breach), (Stage::Approve, None));
        let mut t = Tracker::default();
        let mut moved = None;
        for _ in 0..40 {
            moved = moved.or(t.observe(
                &judge,
                Stage::Approve,
                Event::Decided { approved: false },
                true,
                t0,
            ));
        }
        let m = moved.expect("regressed");
        assert_eq!((m.to, m.breach), (Stage::Recommend, Some(Reason::Rejects)));
    }
}
