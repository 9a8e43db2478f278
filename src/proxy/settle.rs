//! Settles an exchange off the client's path: runs the shadow copy, waits for
//! the client's answer, asks the incumbent again for noise and the judge when
//! the route wants them, compares, feeds the guard, redacts and queues one row.
//!
//! Runs on its own task; a failure here only ever shows in the row and metrics.

use super::Proxy;
use super::cascade;
use super::headers::{MIRROR, strip_hop_by_hop};
use super::mirror::{ShadowCall, SkipReason};
use crate::compare::{self, Outcome, Verdict, judge};
use crate::config::Side;
use crate::exchange::Exchange;
use crate::observation::Observation;
use crate::reading::{Figures, Reading};
use crate::rollout::guard;
use crate::runtime::RouteRuntime;
use crate::segment;
use crate::store::Record;
use crate::upstream::{self, Bounds, body::UpBody};
use http::HeaderValue;
use http::uri::PathAndQuery;
use std::sync::Arc;
use tokio::sync::oneshot;
use tracing::Instrument;

/// Everything the settle task needs, moved onto it.
pub struct Settle {
    pub proxy: Arc<Proxy>,
    pub route: Arc<RouteRuntime>,
    pub exchange: Exchange,
    /// Who answered the client: the handler decided it, this only records it.
    pub served_by: Side,
    /// The side that did not answer the client.
    pub other: Other,
    /// The client's answer, captured as it streamed (sent when its body ends).
    pub served: oneshot::Receiver<Observation>,
}

/// The side that did not answer the client, as the handler left it.
// Moved once, into the boxed settle future: boxing the copy would only add an
// allocation per exchange.
#[allow(clippy::large_enum_variant)]
pub enum Other {
    /// A copy to send it (the mirror, or the reverse shadow).
    Copy(ShadowCall),
    /// No copy, and why (counted already).
    Skipped(SkipReason),
    /// The serving candidate failed and the incumbent answered instead: the
    /// candidate's failure is its side of the comparison, and no copy is sent.
    FellBack(Observation),
    /// `recommend`: the candidate's answer, already in hand.
    Called(Observation),
    /// `recommend`: the candidate's call, still running (it was late).
    Pending(tokio::task::JoinHandle<Observation>),
}

/// Spawns the exchange's settle task; it waits for the client's answer on `served`.
pub fn spawn(
    proxy: &Arc<Proxy>,
    route: &Arc<RouteRuntime>,
    exchange: Exchange,
    served_by: Side,
    other: Other,
    served: oneshot::Receiver<Observation>,
) {
    // Every line logged while the exchange settles (a guard breach, a
    // mirror target going down) carries its id. At error level so the
    // span is on whenever any line is; off (and free) when logs are off.
    let span = tracing::error_span!("exchange", exchange_id = %exchange.id);
    // Boxed: the settle future is large, and a box is cheaper to move into
    // (and around inside) a task than the whole state machine.
    proxy.tasks.spawn(Box::pin(
        Settle {
            proxy: proxy.clone(),
            route: route.clone(),
            exchange,
            served_by,
            other,
            served,
        }
        .run()
        .instrument(span),
    ));
}

/// Both sides' answers, as far as there are any.
struct Answers {
    incumbent: Option<Observation>,
    candidate: Option<Observation>,
}

impl Settle {
    pub async fn run(self) {
        let Settle {
            proxy,
            route,
            exchange: ex,
            served_by,
            other,
            served,
        } = self;
        let cfg = &route.cfg;
        let fallback = matches!(other, Other::FellBack(_));
        let (other, skip) =
            match other {
                Other::Copy(call) => (Some(call.run(&cfg.name).await), None),
                Other::Skipped(reason) => (None, Some(reason)),
                Other::FellBack(failure) | Other::Called(failure) => (Some(failure), None),
                Other::Pending(task) => (
                    Some(task.await.unwrap_or_else(|e| {
                        Observation::failed(e.to_string(), ex.started.elapsed())
                    })),
                    None,
                ),
            };
        let mut other = other;
        if let Some(o) = &mut other {
            // Read by the upstream client: charged once in hand.
            o.charge = crate::budget::Charge::on(&proxy.metrics.capture_bytes);
            o.charge.add(o.body.len());
        }
        let served = served
            .await
            .unwrap_or_else(|_| Observation::failed("answer lost", ex.started.elapsed()));
        let rt = proxy.runtime.load();
        let cap = rt.config.store.max_body_bytes;
        let (mut served, mut other) = (served, other);
        for obs in std::iter::once(&mut served).chain(other.as_mut()) {
            obs.decode(cap);
        }
        let answers = match served_by {
            Side::Incumbent => Answers {
                incumbent: Some(served),
                candidate: other,
            },
            Side::Candidate => Answers {
                incumbent: other,
                candidate: Some(served),
            },
        };
        let learned = learn_noise(&route, &ex, &answers, cap).await;
        let readings = Readings::of(cfg, &answers).await;
        let mut outcome = judge_pair(&route, &ex, &answers, &readings, &proxy.metrics).await;
        if outcome.verdict == Verdict::Skipped && outcome.note.is_none() {
            outcome.note = skip.map(|r| r.as_str().to_string());
        }
        let safety = answers
            .candidate
            .as_ref()
            .and_then(|c| compare::safety::first_hit(&cfg.safety.deny, &c.body))
            .map(str::to_string);
        let label = segment::label(cfg.segment.as_ref(), &ex.segment);
        let metrics = &proxy.metrics;
        metrics.record_verdict(&cfg.name, label, outcome.verdict);
        for (side, obs) in [
            (Side::Incumbent, &answers.incumbent),
            (Side::Candidate, &answers.candidate),
        ] {
            if let Some(o) = obs {
                metrics.record_upstream(&cfg.name, side, o.latency);
            }
        }
        if safety.is_some() {
            metrics.record_safety_event(&cfg.name, label);
        }
        let figures = readings.figures(cfg);
        readings.account(&route, served_by, &figures, metrics);
        let ms = |o: &Option<Observation>| o.as_ref().map(|o| o.latency.as_secs_f64() * 1000.0);
        let sample = guard::Sample {
            // Placed when the exchange began: evidence gathered before a
            // change is never counted after it (`rollout::Reset`).
            at: ex.started,
            verdict: outcome.verdict,
            safety: safety.is_some(),
            incumbent_ms: ms(&answers.incumbent),
            candidate_ms: ms(&answers.candidate),
            incumbent_ttft_ms: figures.0.ttft_ms,
            candidate_ttft_ms: figures.1.ttft_ms,
            user: ex.sticky.as_deref().map(crate::rollout::bucket::user),
            excluded: outcome.verdict == Verdict::Skipped
                && outcome.note.as_deref().is_some_and(guard::judge_failed),
        };
        proxy.rollout.observe(cfg, label, sample, metrics).await;
        if matches!(outcome.verdict, Verdict::Match | Verdict::Mismatch) {
            let agree = outcome.verdict == Verdict::Match;
            let event = crate::autonomy::evidence::Event::Compared { agree };
            proxy
                .rollout
                .observe_stage(cfg, label, event, ex.started, metrics)
                .await;
        }
        if cfg.mirror.focus == crate::config::Focus::Undecided {
            let decided = proxy
                .rollout
                .guard_status(&cfg.name, label)
                .is_some_and(|(_, d, _)| d != guard::Decision::Hold);
            route.live.spend.set_decided(label, decided);
        }
        // The note says why a pair was skipped, or why the candidate failed
        // when the comparison found it (a provider's error inside a 200 stream).
        let (skip_reason, why_failed) = match outcome.verdict {
            Verdict::Skipped => (outcome.note.take(), None),
            Verdict::CandidateError => (None, outcome.note.take()),
            _ => (None, None),
        };
        let mut rec = Record {
            id: ex.id,
            ts_ms: ex.ts_ms,
            route: cfg.name.clone(),
            segment: ex.segment,
            served_by: served_by.as_str(),
            method: ex.method.as_str().to_owned(),
            path: ex.path,
            query: ex.query,
            request_headers: rt.redactor.headers_json(&ex.headers),
            request_body: ex.body.map(|b| request_body(b, &ex.headers, cap)),
            verdict: outcome.verdict.as_str(),
            diff: serde_json::to_string(&outcome.diffs).unwrap_or_else(|_| "[]".into()),
            score: outcome.score,
            skip_reason,
            fallback,
            safety,
            noise: learned,
            decided_by: outcome.decided_by.map(|s| s.as_str()),
            incumbent_llm: figures.0,
            candidate_llm: figures.1,
            ..Record::default()
        };
        if let Some(i) = answers.incumbent {
            rec.incumbent_status = i.status;
            rec.incumbent_ms = Some(i.latency.as_secs_f64() * 1000.0);
            rec.incumbent_body = Some(i.body);
            rec.incumbent_error = i.error;
        }
        if let Some(c) = answers.candidate {
            rec.candidate_status = c.status;
            rec.candidate_ms = Some(c.latency.as_secs_f64() * 1000.0);
            rec.candidate_body = Some(c.body);
            rec.candidate_error = c.error.or(why_failed);
        }
        rt.redactor.apply(&mut rec);
        let people = super::stage::after(&proxy, &route, ex.canary, served_by, &mut rec).await;
        crate::store::policy::apply(&rt.config.store, &mut rec);
        proxy.store.record(rec);
        people.finish(&proxy, &route).await;
    }
}

/// The request body for the row: decoded from its `Content-Encoding`, so
/// that redaction sees it.
fn request_body(body: bytes::Bytes, headers: &http::HeaderMap, cap: usize) -> bytes::Bytes {
    let Some(coding) = crate::coding::Coding::of(headers) else {
        return body;
    };
    crate::coding::decode(&body, coding, cap).map_or(body, |d| d.body)
}

/// `compare.noise`: asks the incumbent (or its `secondary`) the request once
/// more, holding a mirror permit and within `mirror.timeout`, and learns where
/// the two incumbent answers differ. Runs before the comparison, so this
/// exchange's own noise is already left out. Returns the pointers learned.
async fn learn_noise(
    route: &RouteRuntime,
    ex: &Exchange,
    answers: &Answers,
    cap: usize,
) -> Vec<String> {
    let (Some(noise), Some(first)) = (&route.live.noise, &answers.incumbent) else {
        return Vec::new();
    };
    let policy = &route.cfg.mirror;
    if first.is_error()
        || answers.candidate.is_none()
        || !noise.learner.wants_probe()
        || !policy.methods.contains(&ex.method)
    {
        return Vec::new();
    }
    let (Some(body), Some(permit)) = (
        ex.body.clone(),
        route.live.mirror_permits.try_acquire_owned(),
    ) else {
        return Vec::new();
    };
    let client = noise.secondary.as_ref().unwrap_or(&route.live.incumbent);
    let pq = match &ex.query {
        Some(q) => format!("{}?{q}", ex.path),
        None => ex.path.clone(),
    };
    let mut headers = ex.headers.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(http::header::HOST);
    headers.insert(MIRROR, HeaderValue::from_static("1"));
    let uri = client.uri_for(PathAndQuery::try_from(pq).ok().as_ref());
    let req = upstream::request(ex.method.clone(), uri, headers, UpBody::full(body));
    let bounds = Bounds {
        timeout: policy.timeout,
        cap,
        timed: false,
    };
    let again = client.call(permit, req, bounds).await.observation;
    // Only two 2xx answers of the same status teach anything (docs/src/reference/configuration.md).
    let ok = |o: &Observation| o.status.is_some_and(|s| (200..300).contains(&s));
    if again.is_error() || !ok(first) || again.status != first.status {
        return Vec::new();
    }
    noise.learner.learn(&first.body, &again.body)
}

/// The verdict: [`compare::compare`] on both answers, then (in `judge` mode)
/// the judge, or (in `llm` mode) the completions and text stages of
/// [`cascade`], through the one bounded call with their own permits.
async fn judge_pair(
    route: &RouteRuntime,
    ex: &Exchange,
    answers: &Answers,
    readings: &Readings,
    metrics: &crate::metrics::Metrics,
) -> Outcome {
    let (i, c) = match (&answers.incumbent, &answers.candidate) {
        (Some(i), Some(c)) => (i, c),
        (Some(i), None) if i.is_error() => return Outcome::new(Verdict::IncumbentError),
        (None, Some(c)) if c.is_error() => return Outcome::new(Verdict::CandidateError),
        _ => return Outcome::new(Verdict::Skipped),
    };
    let noise = route
        .live
        .noise
        .as_ref()
        .map(|n| n.learner.pointers())
        .unwrap_or_default();
    let outcome = compare::compare(&route.cfg.compare, i, c, &noise);
    match outcome.pending {
        Some(compare::Pending::Judge) => {}
        Some(compare::Pending::Llm) => {
            return match (route.cfg.llm(), &readings.incumbent, &readings.candidate) {
                (Some(spec), Some(a), Some(b)) => {
                    cascade::decide(route, spec, ex, a, b, metrics).await
                }
                _ => Outcome::noted(Verdict::Skipped, "answers not read"),
            };
        }
        None => return outcome,
    }
    let Some(j) = &route.live.judge else {
        return outcome;
    };
    let mut judged = cascade::ask_judge(j, judge::question(ex.body.as_ref(), i, c)).await;
    if matches!(judged.verdict, Verdict::Match | Verdict::Mismatch) {
        // Paired with people's ratings by `report` (judge calibration).
        judged.decided_by = Some(crate::config::TextStage::Judge);
    }
    judged
}

/// Both answers read as AI answers (`compare.mode = "llm"` only).
#[derive(Default)]
struct Readings {
    incumbent: Option<Reading>,
    candidate: Option<Reading>,
}

impl Readings {
    /// Decodes both answers on the blocking pool: a long stream costs
    /// milliseconds of CPU, which must not hold up a runtime worker that
    /// other clients' streams are waiting on.
    async fn of(cfg: &crate::config::Route, answers: &Answers) -> Readings {
        let Some(spec) = cfg.llm() else {
            return Readings::default();
        };
        let protocol = spec.protocol;
        let (i, c) = (answers.incumbent.clone(), answers.candidate.clone());
        let read = move || {
            let read = |o: Option<Observation>| o.and_then(|o| Reading::of(protocol, &o));
            Readings {
                incumbent: read(i),
                candidate: read(c),
            }
        };
        tokio::task::spawn_blocking(read).await.unwrap_or_else(|e| {
            tracing::error!(route = %cfg.name, error = %e, "Decoding AI answers failed");
            Readings::default()
        })
    }

    /// Each side's figures, priced by `[routes.cost]`.
    fn figures(&self, cfg: &crate::config::Route) -> (Figures, Figures) {
        let of = |r: &Option<Reading>, price: Option<&crate::config::Price>| {
            r.as_ref().map(|r| r.figures(price)).unwrap_or_default()
        };
        (
            of(&self.incumbent, cfg.cost.incumbent.as_ref()),
            of(&self.candidate, cfg.cost.candidate.as_ref()),
        )
    }

    /// Metrics of both answers; a mirrored candidate's cost is spend against
    /// `mirror.budget` (counted once its answer is decoded).
    fn account(
        &self,
        route: &RouteRuntime,
        served_by: Side,
        figures: &(Figures, Figures),
        metrics: &crate::metrics::Metrics,
    ) {
        let cfg = &route.cfg;
        if self.incumbent.is_some() {
            metrics.record_answer(&cfg.name, Side::Incumbent, &figures.0);
        }
        if self.candidate.is_some() {
            metrics.record_answer(&cfg.name, Side::Candidate, &figures.1);
        }
        if served_by == Side::Incumbent
            && let Some(cost) = figures.1.cost
        {
            let today = route
                .live
                .spend
                .add(cost, cfg.mirror.budget, crate::store::now_ms());
            if cfg.mirror.budget.is_some_and(|b| today >= b) {
                tracing::debug!(route = %cfg.name, today, "Mirror budget spent for today");
            }
        }
    }
}
