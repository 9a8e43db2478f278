//! Settles an exchange off the client's path: waits for the served answer and
//! the shadow answer, compares them, redacts and queues one row.
//!
//! Runs on its own task; a failure here only ever shows in the row and metrics.

use crate::compare::{self, Observation, Outcome, Verdict};
use crate::config::Side;
use crate::exchange::Exchange;
use crate::mirror::{ShadowCall, SkipReason};
use crate::proxy::{Proxy, RouteRuntime};
use crate::rollout::guard;
use crate::segment;
use crate::store::Record;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Everything the settle task needs, moved onto it.
pub struct Settle {
    pub proxy: Arc<Proxy>,
    pub route: Arc<RouteRuntime>,
    pub exchange: Exchange,
    pub served_by: Side,
    pub shadow: Result<ShadowCall, SkipReason>,
    pub served: oneshot::Receiver<Observation>,
}

impl Settle {
    pub async fn run(self) {
        let Settle {
            proxy,
            route,
            exchange: ex,
            served_by,
            shadow,
            served,
        } = self;
        let (shadow_obs, skip) = match shadow {
            Ok(call) => (Some(call.run(&route.cfg.name).await), None),
            Err(reason) => (None, Some(reason)),
        };
        let served_obs = served
            .await
            .unwrap_or_else(|_| Observation::failed("answer lost", ex.started.elapsed()));
        let cfg = &route.cfg;
        let label = segment::label(cfg.segment.as_ref(), &ex.segment);
        // The handler answered these from the incumbent instead (`forward`).
        let fallback =
            served_by == Side::Candidate && served_obs.is_error() && cfg.rollout.fallback;
        let (incumbent, candidate) = match (served_by, shadow_obs) {
            (Side::Incumbent, shadow) => (Some(served_obs), shadow),
            (Side::Candidate, shadow) => (shadow, Some(served_obs)),
        };
        let rt = proxy.runtime();
        let cap = rt.config.store.max_body_bytes;
        let (mut outcome, noise) = decide(&route, &ex, &incumbent, &candidate, cap).await;
        if outcome.verdict == Verdict::Skipped && outcome.note.is_none() {
            outcome.note = skip.map(|r| r.as_str().to_string());
        }
        let safety = candidate
            .as_ref()
            .and_then(|c| compare::safety::first_hit(&cfg.safety.deny, &c.body))
            .map(str::to_string);
        let metrics = &proxy.metrics;
        metrics.record_verdict(&cfg.name, label, outcome.verdict.as_str());
        for (side, obs) in [("incumbent", &incumbent), ("candidate", &candidate)] {
            if let Some(o) = obs {
                metrics.record_upstream(&cfg.name, side, o.latency);
            }
        }
        if safety.is_some() {
            metrics
                .safety_events
                .with_label_values(&[&cfg.name, label])
                .inc();
        }
        let ms = |o: &Option<Observation>| o.as_ref().map(|o| o.latency.as_secs_f64() * 1000.0);
        let sample = guard::Sample {
            at: std::time::Instant::now(),
            verdict: outcome.verdict,
            safety: safety.is_some(),
            incumbent_ms: ms(&incumbent),
            candidate_ms: ms(&candidate),
        };
        proxy.rollout.observe(cfg, label, sample, metrics);
        let mut rec = Record {
            id: ex.id,
            ts_ms: ex.ts_ms,
            route: cfg.name.clone(),
            segment: ex.segment,
            served_by: if fallback {
                "incumbent"
            } else {
                served_by.as_str()
            },
            method: ex.method.to_string(),
            path: ex.path,
            query: ex.query,
            request_headers: rt.redactor.headers_json(&ex.headers),
            request_body: ex.body,
            verdict: outcome.verdict.as_str(),
            diff: serde_json::to_string(&outcome.diffs).unwrap_or_else(|_| "[]".into()),
            score: outcome.score,
            skip_reason: outcome.note.filter(|_| outcome.verdict == Verdict::Skipped),
            fallback,
            safety,
            noise,
            ..Record::default()
        };
        if let Some(i) = incumbent {
            rec.incumbent_status = i.status;
            rec.incumbent_ms = Some(i.latency.as_secs_f64() * 1000.0);
            rec.incumbent_body = Some(i.body);
            rec.incumbent_error = i.error;
        }
        if let Some(c) = candidate {
            rec.candidate_status = c.status;
            rec.candidate_ms = Some(c.latency.as_secs_f64() * 1000.0);
            rec.candidate_body = Some(c.body);
            rec.candidate_error = c.error;
        }
        rt.redactor.apply(&mut rec);
        proxy.store.record(rec);
    }
}

/// The verdict, and the noise pointers learned on the way (`compare.noise`:
/// the incumbent is asked again first, so this exchange's own noise is already
/// left out; `judge` mode: the judge is asked last, bounded by its permits).
async fn decide(
    route: &RouteRuntime,
    ex: &Exchange,
    incumbent: &Option<Observation>,
    candidate: &Option<Observation>,
    cap: usize,
) -> (Outcome, Vec<String>) {
    let mut learned = Vec::new();
    if let (Some(learner), Some(i)) = (&route.noise, incumbent)
        && !i.is_error()
        && candidate.is_some()
        && learner.wants_probe()
        && let Some(again) = learner.probe(route, ex, cap).await
        && !again.is_error()
    {
        learned = learner.learn(&i.body, &again.body);
    }
    let noise = route
        .noise
        .as_ref()
        .map(|l| l.pointers())
        .unwrap_or_default();
    let outcome = match (incumbent, candidate) {
        (Some(i), Some(c)) => {
            let outcome = compare::compare(&route.cfg.compare, i, c, &noise);
            match &route.judge {
                Some(judge) if outcome.note.as_deref() == Some(compare::JUDGE_PENDING) => {
                    judge.decide(ex.body.as_ref(), i, c).await
                }
                _ => outcome,
            }
        }
        (Some(i), None) if i.is_error() => Outcome::new(Verdict::IncumbentError),
        (None, Some(c)) if c.is_error() => Outcome::new(Verdict::CandidateError),
        _ => Outcome::new(Verdict::Skipped),
    };
    (outcome, learned)
}
