//! Guards (docs/src/concepts/guards.md): the comparisons of each route and segment, and the
//! asymmetric decision breach / pass / hold drawn from them.
//!
//! Pure: no IO, no tokio, the clock is passed in. Noise must neither promote
//! nor roll back: a breach needs the *upper* bound of agreement below
//! `min_agreement` (or errors, latency or safety clearly bad), a pass needs
//! the *lower* bound at or above it; everything between holds.
//!
//! Two methods (`guard.method`). `sequential` (the default) bounds agreement
//! and the error rate with an anytime-valid confidence sequence
//! ([`crate::stats::sequence`], Howard et al. 2021) over the samples since
//! the guard's last reset (a breach, a person's change, a new guard config),
//! so checking after every comparison, forever, keeps its error rate at
//! `guard.alpha`. `wilson` uses Wilson 95 % bounds over the sliding window
//! (each check valid alone; thousands in a row are not). The sliding window is
//! kept either way, for the agreement gauge and the latency ratio.

pub mod latency;
mod people;

pub use crate::judge::{Bar, Decision, RateCheck, Reason, judge_rate};
pub use people::Feedback;

use crate::compare::Verdict;
use crate::config::{Guard, GuardMethod, OnBreach, Window};
use crate::judge::{Step, Streak, within};
use crate::stats::{Z95, wilson};
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The most samples a time window holds: beyond it the oldest leave early,
/// so a window of `10m` at 10,000 comparisons a second stays a few MiB.
pub const MAX_TIME_WINDOW: usize = 100_000;

/// What one settled exchange tells the guard.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    pub verdict: Verdict,
    /// The candidate's body hit a safety deny pattern.
    pub safety: bool,
    pub incumbent_ms: Option<f64>,
    pub candidate_ms: Option<f64>,
    /// Time to first token of each side (llm mode), when known.
    pub incumbent_ttft_ms: Option<f64>,
    pub candidate_ttft_ms: Option<f64>,
}

impl Sample {
    /// A verdict at `at`, with no latencies and no safety hit.
    pub fn verdict(at: Instant, verdict: Verdict) -> Sample {
        Sample {
            at,
            verdict,
            safety: false,
            incumbent_ms: None,
            candidate_ms: None,
            incumbent_ttft_ms: None,
            candidate_ttft_ms: None,
        }
    }

    /// Whether the sample counts at all: a comparison (match, mismatch,
    /// candidate error) or a safety hit. Incumbent errors and skips say
    /// nothing about the candidate.
    pub fn counts(&self) -> bool {
        self.safety
            || matches!(
                self.verdict,
                Verdict::Match | Verdict::Mismatch | Verdict::CandidateError
            )
    }
}

/// The numbers behind a decision, as shown by the API and written in audit reasons.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Figures {
    /// Comparisons in the window (matches, mismatches, candidate errors).
    pub samples: u64,
    pub matches: u64,
    pub mismatches: u64,
    pub candidate_errors: u64,
    pub safety_events: u64,
    /// Matches among matches and mismatches; `None` before any.
    pub agreement: Option<f64>,
    /// Wilson 95 % bounds of agreement.
    pub agreement_lower: f64,
    pub agreement_upper: f64,
    pub error_rate: Option<f64>,
    pub error_rate_lower: f64,
    /// Candidate p99 / incumbent p99, when both are known.
    pub latency_ratio: Option<f64>,
    /// Candidate p99 / incumbent p99 time to first token, when both are known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ratio: Option<f64>,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.agreement {
            Some(a) => write!(
                f,
                "agreement {:.3} [{:.3}, {:.3}]",
                a, self.agreement_lower, self.agreement_upper
            )?,
            None => write!(f, "agreement n/a")?,
        }
        write!(
            f,
            " over {} samples, candidate errors {:.1} %",
            self.samples,
            self.error_rate.unwrap_or(0.0) * 100.0
        )?;
        if let Some(r) = self.latency_ratio {
            write!(f, ", p99 ratio {r:.2}")?;
        }
        if let Some(r) = self.ttft_ratio {
            write!(f, ", ttft p99 ratio {r:.2}")?;
        }
        if self.safety_events > 0 {
            write!(f, ", {} safety event(s)", self.safety_events)?;
        }
        Ok(())
    }
}

/// Running counts of a window, kept as samples enter and leave it so that
/// each comparison costs O(1) rather than a pass over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    matches: u64,
    mismatches: u64,
    candidate_errors: u64,
    safety_events: u64,
}

impl Counts {
    fn of(samples: &VecDeque<Sample>) -> Counts {
        let mut c = Counts::default();
        samples.iter().for_each(|s| c.add(s));
        c
    }

    fn add(&mut self, s: &Sample) {
        self.bump(s, 1);
    }

    fn remove(&mut self, s: &Sample) {
        self.bump(s, u64::MAX); // wrapping −1
    }

    fn bump(&mut self, s: &Sample, by: u64) {
        let slot = match s.verdict {
            Verdict::Match => Some(&mut self.matches),
            Verdict::Mismatch => Some(&mut self.mismatches),
            Verdict::CandidateError => Some(&mut self.candidate_errors),
            Verdict::IncumbentError | Verdict::Skipped => None,
        };
        if let Some(n) = slot {
            *n = n.wrapping_add(by);
        }
        if s.safety {
            self.safety_events = self.safety_events.wrapping_add(by);
        }
    }
}

/// The window's latencies of both sides, kept as samples enter and leave it
/// so that the p99 ratio costs the same whatever the window holds.
#[derive(Debug, Clone, Default)]
struct Latencies {
    incumbent: latency::Histogram,
    candidate: latency::Histogram,
    /// Times to first token (docs/src/guide/llm.md), for `max_ttft_ratio`.
    incumbent_ttft: latency::Histogram,
    candidate_ttft: latency::Histogram,
}

impl Latencies {
    fn of(samples: &VecDeque<Sample>) -> Latencies {
        let mut l = Latencies::default();
        samples.iter().for_each(|s| l.add(s));
        l
    }

    fn add(&mut self, s: &Sample) {
        s.incumbent_ms.inspect(|ms| self.incumbent.add(*ms));
        s.candidate_ms.inspect(|ms| self.candidate.add(*ms));
        s.incumbent_ttft_ms
            .inspect(|ms| self.incumbent_ttft.add(*ms));
        s.candidate_ttft_ms
            .inspect(|ms| self.candidate_ttft.add(*ms));
    }

    fn remove(&mut self, s: &Sample) {
        s.incumbent_ms.inspect(|ms| self.incumbent.remove(*ms));
        s.candidate_ms.inspect(|ms| self.candidate.remove(*ms));
        s.incumbent_ttft_ms
            .inspect(|ms| self.incumbent_ttft.remove(*ms));
        s.candidate_ttft_ms
            .inspect(|ms| self.candidate_ttft.remove(*ms));
    }

    fn clear(&mut self) {
        self.incumbent.clear();
        self.candidate.clear();
        self.incumbent_ttft.clear();
        self.candidate_ttft.clear();
    }

    /// Candidate p99 / incumbent p99 (each within 1 %: [`latency`]).
    fn ratio(&mut self) -> Option<f64> {
        ratio(
            self.candidate.percentile(99.0),
            self.incumbent.percentile(99.0),
        )
    }

    /// The same ratio of the times to first token.
    fn ttft_ratio(&mut self) -> Option<f64> {
        ratio(
            self.candidate_ttft.percentile(99.0),
            self.incumbent_ttft.percentile(99.0),
        )
    }
}

impl Figures {
    /// The figures of a set of counts, with their Wilson 95 % bounds: the one
    /// input of [`decide`], whether the counts are a live window or a report's.
    pub fn of(
        matches: u64,
        mismatches: u64,
        candidate_errors: u64,
        safety_events: u64,
        latency_ratio: Option<f64>,
    ) -> Figures {
        let decided = matches + mismatches;
        let samples = decided + candidate_errors;
        let (agreement_lower, agreement_upper) = wilson(matches, decided, Z95);
        Figures {
            samples,
            matches,
            mismatches,
            candidate_errors,
            safety_events,
            agreement: (decided > 0).then(|| matches as f64 / decided as f64),
            agreement_lower,
            agreement_upper,
            error_rate: (samples > 0).then(|| candidate_errors as f64 / samples as f64),
            error_rate_lower: wilson(candidate_errors, samples, Z95).0,
            latency_ratio,
            ttft_ratio: None,
        }
    }
}

/// Computes the figures and the decision for a window.
pub fn evaluate(cfg: &Guard, samples: &VecDeque<Sample>) -> (Figures, Decision) {
    evaluate_counted(cfg, Counts::of(samples), &mut Latencies::of(samples))
}

/// [`evaluate`] with the window's counts and latencies already known; the
/// latencies are only read when `max_latency_ratio` (or `max_ttft_ratio`) is set.
fn evaluate_counted(cfg: &Guard, counts: Counts, latencies: &mut Latencies) -> (Figures, Decision) {
    let latency_ratio = cfg.max_latency_ratio.and_then(|_max| latencies.ratio());
    let mut f = Figures::of(
        counts.matches,
        counts.mismatches,
        counts.candidate_errors,
        counts.safety_events,
        latency_ratio,
    );
    f.ttft_ratio = cfg.max_ttft_ratio.and_then(|_max| latencies.ttft_ratio());
    let decision = decide(cfg, &f);
    (f, decision)
}

/// Candidate p99 over incumbent p99, when both are known.
pub fn ratio(candidate_p99: Option<f64>, incumbent_p99: Option<f64>) -> Option<f64> {
    match (candidate_p99, incumbent_p99) {
        (Some(c), Some(i)) => Some(c / i.max(0.001)),
        _ => None,
    }
}

/// The guard's decision on its figures (docs/src/concepts/guards.md), asymmetric: the one
/// rule, used by the live guard and by `report`.
///
/// A safety event breaches at once; everything else waits for `min_samples`.
/// Then a breach needs the evidence to say the candidate is worse (agreement's
/// upper bound below `min_agreement`, the error rate's lower bound above its
/// maximum, or the latency ratio exceeded), a pass needs it to say the
/// candidate is good (agreement's lower bound at or above `min_agreement`,
/// errors within bounds: for `sequential`, the error rate's upper bound);
/// everything between holds. `wilson` reads the figures' Wilson bounds;
/// `sequential` asks its confidence sequence where the bars lie, from the
/// counts, in O(1).
pub fn decide(cfg: &Guard, f: &Figures) -> Decision {
    let decided = f.matches + f.mismatches;
    if f.safety_events > 0 {
        return Decision::Breach(Reason::Safety);
    }
    if f.samples < cfg.min_samples.max(1) {
        return Decision::Hold;
    }
    let slow = matches!((f.latency_ratio, cfg.max_latency_ratio), (Some(r), Some(max)) if r > max);
    let slow_start = matches!((f.ttft_ratio, cfg.max_ttft_ratio), (Some(r), Some(max)) if r > max);
    let m = &cfg.method;
    let agreement = judge_rate(m, f.matches, decided, cfg.min_agreement, Bar::Min, 1);
    let errors = judge_rate(
        m,
        f.candidate_errors,
        f.samples,
        cfg.max_candidate_error_rate,
        Bar::Max,
        1,
    );
    let (agreement_below, agreement_above, errors_above, errors_within) = (
        agreement == RateCheck::Bad,
        agreement == RateCheck::Good,
        errors == RateCheck::Bad,
        within(
            m,
            f.candidate_errors,
            f.samples,
            cfg.max_candidate_error_rate,
        ),
    );
    if decided > 0 && agreement_below {
        Decision::Breach(Reason::Agreement)
    } else if errors_above {
        Decision::Breach(Reason::CandidateErrors)
    } else if slow {
        Decision::Breach(Reason::Latency)
    } else if slow_start {
        Decision::Breach(Reason::Ttft)
    } else if decided > 0 && agreement_above && errors_within {
        Decision::Pass
    } else {
        Decision::Hold
    }
}

impl Figures {
    /// The figures with the bounds the guard's method uses: for `sequential`,
    /// the confidence sequence's interval (some 5 µs each, so computed for
    /// display and audit text, not per comparison).
    pub fn bounded(mut self, cfg: &Guard) -> Figures {
        if let GuardMethod::Sequential(seq) = &cfg.method {
            let decided = self.matches + self.mismatches;
            if decided > 0 {
                (self.agreement_lower, self.agreement_upper) = seq.interval(self.matches, decided);
            }
            if self.samples > 0 {
                self.error_rate_lower = seq.interval(self.candidate_errors, self.samples).0;
            }
        }
        self
    }

    /// What keeps `decision` from being a pass, in words: the first
    /// criterion that holds it, and about how many more samples it needs if
    /// the rates stay where they are (for a breach, the criterion breached).
    pub fn holding(&self, cfg: &Guard, decision: Decision) -> String {
        if let Decision::Breach(reason) = decision {
            return format!("breached: {}", reason.as_str());
        }
        if self.samples < cfg.min_samples.max(1) {
            let more = cfg.min_samples.max(1) - self.samples;
            return format!(
                "held by min_samples: {} of {} comparisons, {more} more",
                self.samples, cfg.min_samples
            );
        }
        let m = &cfg.method;
        let decided = self.matches + self.mismatches;
        if judge_rate(m, self.matches, decided, cfg.min_agreement, Bar::Min, 1) != RateCheck::Good {
            let more = self
                .samples_to_decide(cfg)
                .map_or("none can tell at this rate".to_string(), |n| {
                    format!("about {n} more comparisons")
                });
            return format!(
                "held by min_agreement {}: agreement's lower bound {:.3} is below it ({more})",
                cfg.min_agreement, self.agreement_lower
            );
        }
        let max = cfg.max_candidate_error_rate;
        if !within(m, self.candidate_errors, self.samples, max) {
            let p = self.candidate_errors as f64 / self.samples.max(1) as f64;
            let more = match m {
                GuardMethod::Sequential(seq) => seq.samples_to_decide(p, max, self.samples),
                GuardMethod::Wilson => None,
            };
            let more = more
                .filter(|n| *n > self.samples)
                .map_or("none can tell at this rate".to_string(), |n| {
                    format!("about {} more comparisons", n - self.samples)
                });
            return format!(
                "held by max_candidate_error_rate {max}: the error rate's upper bound is above it \
                 ({} errors in {} comparisons; {more})",
                self.candidate_errors, self.samples
            );
        }
        "held: no comparison has decided agreement yet".to_string()
    }

    /// About how many more samples until agreement is decided (pass or
    /// breach), if it stays where it is; `None` when it sits on the bar or is
    /// decided already.
    pub fn samples_to_decide(&self, cfg: &Guard) -> Option<u64> {
        let decided = self.matches + self.mismatches;
        let p = self.agreement?;
        let needed = match &cfg.method {
            GuardMethod::Sequential(seq) => seq.samples_to_decide(p, cfg.min_agreement, decided)?,
            GuardMethod::Wilson => wilson_samples_to_decide(p, cfg.min_agreement, decided)?,
        };
        let needed = needed.max(cfg.min_samples);
        (needed > decided).then(|| needed - decided)
    }
}

/// The first n ≥ `n` at which a Wilson 95 % interval around `p` excludes `bar`.
fn wilson_samples_to_decide(p: f64, bar: f64, n: u64) -> Option<u64> {
    if p == bar || p.is_nan() {
        return None;
    }
    let excluded = |m: u64| {
        let s = (p * m as f64).round() as u64;
        let (lo, hi) = wilson(s, m, Z95);
        hi < bar || lo >= bar
    };
    let mut m = n.max(1);
    while !excluded(m) {
        if m > 1 << 40 {
            return None;
        }
        m = m.saturating_mul(2);
    }
    let (mut lo, mut hi) = (m / 2, m);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if excluded(mid) { hi = mid } else { lo = mid }
    }
    Some(hi.max(n))
}

/// The next weight up the ladder, if any.
pub fn next_step(steps: &[f64], weight: f64) -> Option<f64> {
    steps.iter().copied().find(|s| *s > weight + 1e-9)
}

/// One step back down the ladder (0 below the first step).
pub fn step_back(steps: &[f64], weight: f64) -> f64 {
    steps
        .iter()
        .copied()
        .rev()
        .find(|s| *s < weight - 1e-9)
        .unwrap_or(0.0)
}

/// A weight change the guard asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    pub to: f64,
    /// `Some` for a breach (the trip reason), `None` for a promotion.
    pub breach: Option<Reason>,
    pub figures: Figures,
    /// The audit reason: what happened and the numbers behind it.
    pub reason: String,
}

/// The sliding window, the counts since the last reset and the pass streak
/// of one route and segment.
#[derive(Debug, Default)]
pub struct SegmentGuard {
    window: VecDeque<Sample>,
    /// What `window` holds, counted.
    counts: Counts,
    /// The latencies `window` holds.
    latencies: Latencies,
    /// Every sample since the last reset, counted (the sequential method's
    /// evidence), and when that stretch began.
    since: Counts,
    since_start: Option<Instant>,
    /// The config the counts were gathered under: a new one resets them.
    cfg: Option<Guard>,
    streak: Streak,
    last: Option<(Figures, Decision)>,
    /// Ratings and reviews since the last reset.
    feedback: Feedback,
    /// The last reset ([`crate::rollout::Reset`]): samples gathered before
    /// it (an exchange that began before a change and settled after it)
    /// are never counted.
    floor: Option<Instant>,
}

impl SegmentGuard {
    /// Adds a sample, re-evaluates, and says what the weight should become.
    /// A breach clears the window, so the lower step is judged on fresh evidence.
    pub fn observe(&mut self, cfg: &Guard, sample: Sample, weight: f64) -> Option<Action> {
        if !sample.counts() || self.floor.is_some_and(|f| sample.at < f) {
            return None;
        }
        let now = sample.at;
        self.push(cfg, sample);
        self.judge(cfg, now, weight)
    }

    /// Adds many samples (pooled evidence, docs/src/concepts/fleet.md), then evaluates once at
    /// `now`: the same counts and the same decision as adding them one by
    /// one, checked after the last.
    pub fn observe_all(
        &mut self,
        cfg: &Guard,
        samples: impl IntoIterator<Item = Sample>,
        now: Instant,
        weight: f64,
    ) -> Option<Action> {
        let mut any = false;
        let floor = self.floor;
        let fresh = |s: &Sample| s.counts() && floor.is_none_or(|f| s.at >= f);
        for s in samples.into_iter().filter(fresh) {
            self.push(cfg, s);
            any = true;
        }
        if !any {
            return None;
        }
        self.judge(cfg, now, weight)
    }

    /// Adds a counted sample to the window and the evidence since the reset.
    fn push(&mut self, cfg: &Guard, sample: Sample) {
        if self.cfg.as_ref() != Some(cfg) {
            self.cfg = Some(cfg.clone());
            self.reset();
        }
        let now = sample.at;
        self.since_start.get_or_insert(now);
        self.since.add(&sample);
        self.counts.add(&sample);
        self.latencies.add(&sample);
        self.window.push_back(sample);
        loop {
            let expired = match (cfg.window, self.window.front()) {
                (Window::Count(n), Some(_)) => self.window.len() > n,
                (Window::Time(span), Some(s)) => {
                    now.saturating_duration_since(s.at) > span
                        || self.window.len() > MAX_TIME_WINDOW
                }
                (_, None) => false,
            };
            if !expired {
                break;
            }
            if let Some(old) = self.window.pop_front() {
                self.counts.remove(&old);
                self.latencies.remove(&old);
            }
        }
    }

    /// Evaluates the evidence and says what the weight should become.
    fn judge(&mut self, cfg: &Guard, now: Instant, weight: f64) -> Option<Action> {
        let counts = match cfg.method {
            GuardMethod::Sequential(_) => self.since,
            GuardMethod::Wilson => self.counts,
        };
        let (figures, decision) = evaluate_counted(cfg, counts, &mut self.latencies);
        self.last = Some((figures.clone(), decision));
        match self
            .streak
            .step(decision, now, cfg.hold, weight > 0.0, cfg.auto_promote)
        {
            Step::Breach(reason) => {
                let to = match cfg.on_breach {
                    OnBreach::StepBack => step_back(&cfg.steps, weight),
                    OnBreach::Shadow => 0.0,
                };
                self.window.clear();
                self.counts = Counts::default();
                self.latencies.clear();
                self.reset();
                let figures = figures.bounded(cfg);
                let text = format!("guard breach ({}): {figures}", reason.as_str());
                Some(Action {
                    to,
                    breach: Some(reason),
                    figures,
                    reason: text,
                })
            }
            Step::Stay => None,
            // Shadow (0) is never left automatically: the first step is a person's.
            Step::Advance(held) => {
                let to = next_step(&cfg.steps, weight)?;
                let figures = figures.bounded(cfg);
                let text = format!(
                    "guard promotion: passed for {}: {figures}",
                    humantime::format_duration(round_ms(held))
                );
                Some(Action {
                    to,
                    breach: None,
                    figures,
                    reason: text,
                })
            }
        }
    }

    /// A change touched this segment ([`crate::rollout::Reset`], the one
    /// rule): the window, the evidence since the last reset, the latencies,
    /// people's verdicts, the pass streak and the last decision start over,
    /// and samples gathered before `at` are never counted.
    pub fn reset_at(&mut self, at: Instant) {
        self.window.clear();
        self.counts = Counts::default();
        self.latencies.clear();
        self.streak = Streak::default();
        self.last = None;
        self.reset();
        self.floor = Some(self.floor.map_or(at, |f| f.max(at)));
    }

    /// Starts the sequential evidence over.
    fn reset(&mut self) {
        self.since = Counts::default();
        self.since_start = None;
        self.feedback = Feedback::default();
    }

    /// Adds what a person said (a rating, a review, a reversal) and says
    /// what the weight should become: one step back when satisfaction or the
    /// reversal rate is confidently bad (`guard.min_satisfaction`,
    /// `guard.max_reversal_rate`).
    pub fn observe_feedback(&mut self, cfg: &Guard, add: Feedback, weight: f64) -> Option<Action> {
        if self.cfg.as_ref() != Some(cfg) {
            self.cfg = Some(cfg.clone());
            self.reset();
        }
        self.feedback.rated += add.rated;
        self.feedback.satisfied += add.satisfied;
        self.feedback.reviewed += add.reviewed;
        self.feedback.reversed += add.reversed;
        let reason = self.feedback.breach(cfg)?;
        if weight <= 0.0 {
            return None;
        }
        let to = match cfg.on_breach {
            OnBreach::StepBack => step_back(&cfg.steps, weight),
            OnBreach::Shadow => 0.0,
        };
        let text = format!("guard breach ({}): {}", reason.as_str(), self.feedback);
        let figures = self
            .last
            .as_ref()
            .map(|(f, _)| f.clone())
            .unwrap_or_default();
        self.streak = Streak::default();
        self.reset();
        Some(Action {
            to,
            breach: Some(reason),
            figures,
            reason: text,
        })
    }

    /// The latest figures (with the method's bounds) and decision, and how
    /// long the segment has passed.
    pub fn status(&self, now: Instant) -> Option<(Figures, Decision, Option<Duration>)> {
        let (f, d) = self.last.clone()?;
        let f = match &self.cfg {
            Some(cfg) => f.bounded(cfg),
            None => f,
        };
        Some((f, d, self.streak.passing_for(now)))
    }

    /// Samples per second since the last reset (for time to decision).
    pub fn rate(&self, now: Instant) -> Option<f64> {
        let start = self.since_start?;
        let secs = now.saturating_duration_since(start).as_secs_f64();
        let n = self.since.matches + self.since.mismatches + self.since.candidate_errors;
        (secs > 0.0 && n > 0).then(|| n as f64 / secs)
    }

    /// Agreement over the window, for the `agreement_ratio` gauge.
    pub fn agreement(&self) -> Option<f64> {
        self.last.as_ref().and_then(|(f, _)| f.agreement)
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
