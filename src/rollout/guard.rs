//! Guards (docs/src/concepts/guards.md): the comparisons of each route and segment, and the
//! asymmetric decision breach / pass / hold drawn from them.
//!
//! Pure: no IO, no tokio, the clock is passed in. Noise must neither promote
//! nor roll back: a breach needs the *upper* bound of agreement below
//! `min_agreement` (or errors, latency or safety clearly bad), a pass needs
//! the *lower* bound at or above it; everything between holds.
//!
//! Two methods (`guard.method`). `sequential` (the default) judges each rate
//! with anytime-valid one-sided tests ([`crate::stats::onesided`]) over the
//! comparisons since the guard's last full reset (a breach, the mirror
//! switch, a new guard config; a person's change resets only the decision:
//! [`crate::rollout::Depth`]), so checking after every comparison, forever,
//! keeps each test's error rate at its share of `guard.alpha`. Beside them
//! it runs:
//!
//! - change detectors on agreement, the error rate and people's verdicts
//!   ([`crate::stats::detector`]): they forget good evidence, so a candidate
//!   that degrades after a good day is caught within about a hundred
//!   comparisons, not after the cumulative rate has been dragged under the bar;
//! - sequential tests of the latency and time-to-first-token tails
//!   ([`crate::stats::latency`]) instead of a plug-in p99 ratio;
//! - with a sticky key, a design effect ([`crate::stats::cluster`]) that
//!   shrinks the counts a user's correlated comparisons are worth.
//!
//! `wilson` uses Wilson 95 % bounds over the sliding window (each check
//! valid alone; thousands in a row are not). The sliding window is kept
//! either way, for the agreement gauge and the displayed p99 ratios.

pub mod latency;
mod people;

pub use crate::judge::{Bar, Decision, RateCheck, Reason, judge_rate};
pub use people::Feedback;

use crate::compare::Verdict;
use crate::config::{Guard, GuardMethod, OnBreach, Window};
use crate::judge::{Depth, Step, Streak, judge_rate_clustered, one_sided, within};
use crate::stats::cluster::Inflation;
use crate::stats::detector::{ARMS, Detector, Watch};
use crate::stats::latency::SlowdownTest;
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
    /// The hash of the request's sticky key, when the route has one: a
    /// user's comparisons are correlated ([`crate::stats::cluster`]).
    pub user: Option<u64>,
    /// A comparison the judge could not decide (`skipped`, "judge failed"):
    /// counted against a pass, never for it ([`decide`]).
    pub excluded: bool,
}

/// Whether a skipped comparison's note says the judge failed on it
/// ([`crate::compare::judge::FAILED`]): the hard cases a judge times out on
/// must not leave the evidence.
pub fn judge_failed(note: &str) -> bool {
    note.starts_with(crate::compare::judge::FAILED)
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
            user: None,
            excluded: false,
        }
    }

    /// Whether the sample counts at all: a comparison (match, mismatch,
    /// candidate error) or a safety hit. Incumbent errors and skips say
    /// nothing about the candidate.
    pub fn counts(&self) -> bool {
        self.safety
            || self.excluded
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
    /// Comparisons the judge could not decide: counted against a pass.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub excluded: u64,
    /// A change detector's alarm: the rate moved to the wrong side of its
    /// bar recently, whatever the evidence from before says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Reason>,
    /// The sequential latency tests say the candidate's tail is slower than
    /// `max_latency_ratio` (`max_ttft_ratio`) times the incumbent's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub slower: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub slower_ttft: bool,
    /// The design effect the counts are divided by (a sticky key's users),
    /// when above 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub design_effect: Option<f64>,
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
        if self.excluded > 0 {
            write!(f, ", {} undecided by the judge", self.excluded)?;
        }
        if let Some(d) = self.design_effect {
            write!(f, ", design effect {d:.2}")?;
        }
        if let Some(r) = self.drift {
            write!(f, ", change detected ({})", r.as_str())?;
        }
        Ok(())
    }
}

/// Running counts of a window, kept as samples enter and leave it so that
/// each comparison costs O(1) rather than a pass over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    excluded: u64,
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

    /// These counts less `earlier` ones (a suffix of the same stretch).
    fn minus(&self, earlier: &Counts) -> Counts {
        Counts {
            excluded: self.excluded.saturating_sub(earlier.excluded),
            matches: self.matches.saturating_sub(earlier.matches),
            mismatches: self.mismatches.saturating_sub(earlier.mismatches),
            candidate_errors: self
                .candidate_errors
                .saturating_sub(earlier.candidate_errors),
            safety_events: self.safety_events.saturating_sub(earlier.safety_events),
        }
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
        if s.excluded {
            self.excluded = self.excluded.wrapping_add(by);
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
            excluded: 0,
            drift: None,
            slower: false,
            slower_ttft: false,
            design_effect: None,
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
    let f = figures_of(cfg, counts, latencies);
    let decision = decide(cfg, &f);
    (f, decision)
}

/// The figures of a set of counts and the window's latencies.
fn figures_of(cfg: &Guard, counts: Counts, latencies: &mut Latencies) -> Figures {
    let latency_ratio = cfg.max_latency_ratio.and_then(|_max| latencies.ratio());
    let mut f = Figures::of(
        counts.matches,
        counts.mismatches,
        counts.candidate_errors,
        counts.safety_events,
        latency_ratio,
    );
    f.ttft_ratio = cfg.max_ttft_ratio.and_then(|_max| latencies.ttft_ratio());
    f.excluded = counts.excluded;
    f
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
/// Then a breach needs the evidence to say the candidate is worse (agreement
/// confidently below `min_agreement`, the error rate confidently above its
/// maximum, a change detector's alarm, or the latency tests), a pass needs
/// it to say the candidate is good (agreement confidently at or above
/// `min_agreement`, errors confidently within their maximum); everything
/// between holds.
///
/// Candidate errors and comparisons the judge could not decide are left out
/// of agreement in the way that favours the candidate least: a pass counts
/// them as disagreements, a breach as agreements (errors have their own
/// bar), so a rising share of them can never make a candidate look better.
pub fn decide(cfg: &Guard, f: &Figures) -> Decision {
    let decided = f.matches + f.mismatches;
    if f.safety_events > 0 {
        return Decision::Breach(Reason::Safety);
    }
    if f.samples < cfg.min_samples.max(1) {
        return Decision::Hold;
    }
    let m = &cfg.method;
    let (slow, slow_start) = match m {
        GuardMethod::Sequential(_) => (f.slower, f.slower_ttft),
        GuardMethod::Wilson => (
            matches!((f.latency_ratio, cfg.max_latency_ratio), (Some(r), Some(max)) if r > max),
            matches!((f.ttft_ratio, cfg.max_ttft_ratio), (Some(r), Some(max)) if r > max),
        ),
    };
    let d = f.design_effect.unwrap_or(1.0);
    let (bar, errors) = (cfg.min_agreement, f.candidate_errors);
    let left_out = errors + f.excluded;
    let n = f.samples + f.excluded;
    let agreement_good = judge_rate_clustered(m, f.matches, n, bar, Bar::Min, 1, d);
    let agreement_bad = judge_rate_clustered(m, f.matches + left_out, n, bar, Bar::Min, 1, d);
    let max = cfg.max_candidate_error_rate;
    let errors_check = judge_rate_clustered(m, errors, f.samples, max, Bar::Max, 1, d);
    let errors_within = match m {
        GuardMethod::Sequential(_) => errors_check == RateCheck::Good,
        GuardMethod::Wilson => within(m, errors, f.samples, max),
    };
    if decided > 0 && agreement_bad == RateCheck::Bad {
        Decision::Breach(Reason::Agreement)
    } else if errors_check == RateCheck::Bad {
        Decision::Breach(Reason::CandidateErrors)
    } else if let Some(reason) = f.drift {
        Decision::Breach(reason)
    } else if slow {
        Decision::Breach(Reason::Latency)
    } else if slow_start {
        Decision::Breach(Reason::Ttft)
    } else if decided > 0 && agreement_good == RateCheck::Good && errors_within {
        Decision::Pass
    } else {
        Decision::Hold
    }
}

impl Figures {
    /// The figures with the bounds the guard's method uses: for `sequential`,
    /// the one-sided bounds its tests decide on (agreement's lower bound at
    /// the pass level and upper bound at the breach level, candidate errors
    /// counted against and for it as [`decide`] does; the error rate's lower
    /// bound at the breach level). Root searches of some 20 µs each, so
    /// computed for display and audit text, not per comparison.
    pub fn bounded(mut self, cfg: &Guard) -> Figures {
        if let GuardMethod::Sequential(levels) = &cfg.method
            && self.samples > 0
        {
            let (bar, max, n) = (
                cfg.min_agreement,
                cfg.max_candidate_error_rate,
                self.samples,
            );
            let all = n + self.excluded;
            let left_out = self.candidate_errors + self.excluded;
            self.agreement_lower = one_sided(&levels.pass, bar).lower_bound(self.matches, all);
            self.agreement_upper =
                one_sided(&levels.breach, bar).upper_bound(self.matches + left_out, all);
            self.error_rate_lower =
                one_sided(&levels.breach, max).lower_bound(self.candidate_errors, n);
        }
        self
    }

    /// What keeps `decision` from being a pass, in words: the first
    /// criterion that holds it, and about how many more samples it needs if
    /// the rates stay where they are, and how long that takes at `rate`
    /// comparisons a second (for a breach, the criterion breached).
    pub fn holding(&self, cfg: &Guard, decision: Decision, rate: Option<f64>) -> String {
        if let Decision::Breach(reason) = decision {
            return format!("breached: {}", reason.as_str());
        }
        // How long `n` more comparisons take at the current rate.
        let time = |n: u64| match rate.filter(|r| *r > 0.0) {
            Some(r) => format!(
                ", some {} at the current {r:.1}/s",
                humantime::format_duration(Duration::from_secs((n as f64 / r).ceil() as u64))
            ),
            None => String::new(),
        };
        if self.samples < cfg.min_samples.max(1) {
            let more = cfg.min_samples.max(1) - self.samples;
            return format!(
                "held by min_samples: {} of {} comparisons, {more} more{}",
                self.samples,
                cfg.min_samples,
                time(more)
            );
        }
        let m = &cfg.method;
        let d = self.design_effect.unwrap_or(1.0);
        let bar = cfg.min_agreement;
        let more = |n: Option<u64>| {
            n.map_or("none can tell at this rate".to_string(), |n| {
                format!("about {n} more comparisons{}", time(n))
            })
        };
        let all = self.samples + self.excluded;
        if judge_rate_clustered(m, self.matches, all, bar, Bar::Min, 1, d) != RateCheck::Good {
            let clustered = match self.design_effect {
                Some(d) => format!(", a design effect of {d:.2}"),
                None => String::new(),
            };
            let errors = match self.candidate_errors + self.excluded {
                0 => String::new(),
                e => format!(
                    ", {e} candidate errors and undecided comparisons counted as disagreements"
                ),
            };
            return format!(
                "held by min_agreement {bar}: agreement's lower bound {:.3} is below it ({}{errors}{clustered})",
                self.agreement_lower,
                more(self.samples_to_decide(cfg))
            );
        }
        let max = cfg.max_candidate_error_rate;
        let errors_good = match m {
            GuardMethod::Sequential(_) => {
                judge_rate_clustered(m, self.candidate_errors, self.samples, max, Bar::Max, 1, d)
                    == RateCheck::Good
            }
            GuardMethod::Wilson => within(m, self.candidate_errors, self.samples, max),
        };
        if !errors_good {
            let p = self.candidate_errors as f64 / self.samples.max(1) as f64;
            let needed = match m {
                GuardMethod::Sequential(levels) => {
                    one_sided(&levels.pass, max).samples_to_decide(p, self.samples)
                }
                GuardMethod::Wilson => None,
            };
            let needed = needed.map(|n| (n as f64 * d).ceil() as u64);
            return format!(
                "held by max_candidate_error_rate {max}: the error rate's upper bound is above it \
                 ({} errors in {} comparisons; {})",
                self.candidate_errors,
                self.samples,
                more(
                    needed
                        .filter(|n| *n > self.samples)
                        .map(|n| n - self.samples)
                )
            );
        }
        "held: no comparison has decided agreement yet".to_string()
    }

    /// About how many more comparisons until agreement is decided (pass or
    /// breach), if it stays where it is; `None` when it sits on the bar or is
    /// decided already.
    pub fn samples_to_decide(&self, cfg: &Guard) -> Option<u64> {
        self.agreement?;
        let n = self.samples + self.excluded;
        let p = self.matches as f64 / n.max(1) as f64;
        let bar = cfg.min_agreement;
        let needed = match &cfg.method {
            GuardMethod::Sequential(levels) => {
                let level = if p > bar {
                    &levels.pass
                } else {
                    &levels.breach
                };
                let d = self.design_effect.unwrap_or(1.0);
                let effective = (n as f64 / d) as u64;
                let m = one_sided(level, bar).samples_to_decide(p, effective)?;
                (m as f64 * d).ceil() as u64
            }
            GuardMethod::Wilson => wilson_samples_to_decide(p, bar, n)?,
        };
        let needed = needed.max(cfg.min_samples);
        (needed > n).then(|| needed - n)
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

/// The sequential method's evidence beside the counts, since the last full
/// reset: the change detectors, the latency tests and the design effect.
#[derive(Debug, Clone)]
struct Tests {
    agreement: Detector,
    errors: Detector,
    latency: Option<SlowdownTest>,
    ttft: Option<SlowdownTest>,
    /// Made at the first comparison with a sticky key.
    users: Option<Inflation>,
    /// The first detector alarm since the reset.
    drift: Option<Reason>,
    /// The counts since the reset as they stood when each arm of each
    /// detector (agreement, then errors) was last at zero: where a change
    /// it alarms on began, about.
    marks: [[Counts; ARMS]; 2],
}

impl Tests {
    /// Fresh tests for `cfg`, or none for the Wilson method.
    fn of(cfg: &Guard) -> Option<Tests> {
        let GuardMethod::Sequential(levels) = &cfg.method else {
            return None;
        };
        let slowdown = |r: Option<f64>| r.map(|r| SlowdownTest::new(r, levels.share(), &[]));
        Some(Tests {
            agreement: Detector::new(Watch::Min, cfg.min_agreement, levels.arl),
            errors: Detector::new(Watch::Max, cfg.max_candidate_error_rate, levels.arl),
            latency: slowdown(cfg.max_latency_ratio),
            ttft: slowdown(cfg.max_ttft_ratio),
            users: None,
            drift: None,
            marks: [[Counts::default(); ARMS]; 2],
        })
    }

    /// Notes, after a sample, where each arm's CUSUM stands at zero.
    fn note_zeros(&mut self, since: &Counts) {
        for (marks, d) in self.marks.iter_mut().zip([&self.agreement, &self.errors]) {
            for (m, c) in marks.iter_mut().zip(d.state()) {
                if c <= 0.0 {
                    *m = *since;
                }
            }
        }
    }

    /// After a detector's alarm has been acted on: the detectors start
    /// over, and the counts to keep are those since the change began (the
    /// last zero of the arm that alarmed), so the evidence from before the
    /// change, which no longer describes the candidate, is dropped without
    /// starting a fresh test from nothing.
    fn after_drift(&mut self, since: &Counts) -> Counts {
        let (which, d) = match self.drift {
            Some(Reason::CandidateErrors) => (1, &self.errors),
            _ => (0, &self.agreement),
        };
        let state = d.state();
        let arm = (0..ARMS)
            .max_by(|a, b| state[*a].total_cmp(&state[*b]))
            .unwrap_or(0);
        let kept = since.minus(&self.marks[which][arm]);
        self.agreement.reset();
        self.errors.reset();
        self.drift = None;
        self.marks = [[*since; ARMS]; 2];
        kept
    }

    /// Feeds one counted sample. The detectors are tempered by the design
    /// effect as it stood before the sample.
    fn add(&mut self, s: &Sample) {
        let compared = matches!(s.verdict, Verdict::Match | Verdict::Mismatch);
        let lambda = self.design_effect().map_or(1.0, |d| 1.0 / d);
        if compared
            && self
                .agreement
                .observe_tempered(s.verdict == Verdict::Match, lambda)
        {
            self.drift.get_or_insert(Reason::Agreement);
        }
        let error = s.verdict == Verdict::CandidateError;
        if (compared || error) && self.errors.observe_tempered(error, lambda) {
            self.drift.get_or_insert(Reason::CandidateErrors);
        }
        if let (Some(t), Some(i), Some(c)) = (&mut self.latency, s.incumbent_ms, s.candidate_ms) {
            t.observe(i, c);
        }
        if let (Some(t), Some(i), Some(c)) =
            (&mut self.ttft, s.incumbent_ttft_ms, s.candidate_ttft_ms)
        {
            t.observe(i, c);
        }
        if let (true, Some(user)) = (compared, s.user) {
            (self.users.get_or_insert_with(Inflation::default))
                .observe(user, s.verdict == Verdict::Match);
        }
    }

    /// The design effect of the users seen, when above 1.
    fn design_effect(&self) -> Option<f64> {
        self.users
            .as_ref()
            .map(Inflation::design_effect)
            .filter(|d| *d > 1.0)
    }

    /// Writes what the tests say into the figures [`decide`] reads.
    fn mark(&self, f: &mut Figures) {
        f.drift = self.drift;
        f.slower = self.latency.as_ref().is_some_and(SlowdownTest::slower);
        f.slower_ttft = self.ttft.as_ref().is_some_and(SlowdownTest::slower);
        f.design_effect = self.design_effect();
    }
}

/// The sliding window, the evidence since the last reset and the pass streak
/// of one route and segment.
#[derive(Debug, Default)]
pub struct SegmentGuard {
    window: VecDeque<Sample>,
    /// What `window` holds, counted.
    counts: Counts,
    /// The latencies `window` holds.
    latencies: Latencies,
    /// Every sample since the last full reset, counted (the sequential
    /// method's evidence), and when that stretch began.
    since: Counts,
    since_start: Option<Instant>,
    /// The detectors and tests since the last full reset (`sequential`).
    tests: Option<Tests>,
    /// The config the counts were gathered under: a new one resets them.
    cfg: Option<Guard>,
    streak: Streak,
    last: Option<(Figures, Decision)>,
    /// Ratings and reviews since the last change.
    feedback: Feedback,
    /// Change detectors on satisfaction and the reversal rate, since the
    /// last change (`sequential`, when those bars are set).
    feedback_watch: Option<[Option<Detector>; 2]>,
    /// The last full reset ([`crate::rollout::Reset`]): samples gathered
    /// before it (an exchange that began before a breach and settled after
    /// it) are never counted.
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

    /// Adds many samples (pooled evidence, docs/src/concepts/fleet.md, or the store's rows at
    /// start), then evaluates once at `now`: the same counts and the same
    /// decision as adding them one by one, checked after the last.
    pub fn observe_all(
        &mut self,
        cfg: &Guard,
        samples: impl IntoIterator<Item = Sample>,
        now: Instant,
        weight: f64,
    ) -> Option<Action> {
        let mut any = false;
        for s in samples {
            any |= self.replay(cfg, s);
        }
        if !any {
            return None;
        }
        self.judge(cfg, now, weight)
    }

    /// Adds a sample without judging (the store's rows at start, pooled
    /// evidence); whether it counted. [`SegmentGuard::judge_now`] judges.
    pub fn replay(&mut self, cfg: &Guard, sample: Sample) -> bool {
        if !sample.counts() || self.floor.is_some_and(|f| sample.at < f) {
            return false;
        }
        self.push(cfg, sample);
        true
    }

    /// Judges what [`SegmentGuard::replay`] added, at `now`.
    pub fn judge_now(&mut self, cfg: &Guard, now: Instant, weight: f64) -> Option<Action> {
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
        if let Some(t) = &mut self.tests {
            t.add(&sample);
            t.note_zeros(&self.since);
        }
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
        let mut figures = figures_of(cfg, counts, &mut self.latencies);
        if let Some(t) = &self.tests {
            t.mark(&mut figures);
        }
        let decision = decide(cfg, &figures);
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
                self.after_breach();
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
    /// rule). The last decision, the pass streak and people's verdicts start
    /// over whatever the change (no pass survives it); for a full reset
    /// ([`Depth::Evidence`]) so do the window, the evidence since the last
    /// reset, the detectors and the latency tests, and samples gathered
    /// before `at` are never counted. The Wilson method's window has no
    /// error control across checks anyway, so it starts over at every change.
    pub fn reset_at(&mut self, at: Instant, depth: Depth) {
        self.streak = Streak::default();
        self.last = None;
        self.feedback = Feedback::default();
        self.feedback_watch = None;
        let wilson = matches!(
            self.cfg.as_ref().map(|c| &c.method),
            Some(GuardMethod::Wilson)
        );
        if depth == Depth::Evidence || wilson {
            self.clear_window();
            self.reset();
            self.floor = Some(self.floor.map_or(at, |f| f.max(at)));
        }
    }

    /// What a breach starts over. The comparisons since the last full reset
    /// still describe the candidate (it did not change because its weight
    /// went down), so they stay: restarting them would buy a fresh test at
    /// every breach, and a candidate that is confidently bad stays bad at
    /// the lower step. A detector's alarm says the candidate *did* change:
    /// the counts from before the change are dropped ([`Tests::after_drift`]).
    /// The Wilson method's window starts over, as it always has.
    fn after_breach(&mut self) {
        match &mut self.tests {
            Some(t) if t.drift.is_some() => self.since = t.after_drift(&self.since),
            Some(_) => {}
            None => {
                self.clear_window();
                self.reset();
            }
        }
    }

    fn clear_window(&mut self) {
        self.window.clear();
        self.counts = Counts::default();
        self.latencies.clear();
    }

    /// Starts the evidence since the last reset over.
    fn reset(&mut self) {
        self.since = Counts::default();
        self.since_start = None;
        self.feedback = Feedback::default();
        self.feedback_watch = None;
        self.tests = self.cfg.as_ref().and_then(Tests::of);
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
        let drift = self.watch_feedback(cfg, add);
        let reason = self.feedback.breach(cfg).or(drift)?;
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

    /// Feeds people's new verdicts to the feedback detectors (bad ones
    /// first, so a batch never alarms earlier than one at a time would);
    /// the first alarm's reason.
    fn watch_feedback(&mut self, cfg: &Guard, add: Feedback) -> Option<Reason> {
        let GuardMethod::Sequential(levels) = &cfg.method else {
            return None;
        };
        let watch = self.feedback_watch.get_or_insert_with(|| {
            [
                (cfg.min_satisfaction).map(|b| Detector::new(Watch::Min, b, levels.arl)),
                (cfg.max_reversal_rate).map(|b| Detector::new(Watch::Max, b, levels.arl)),
            ]
        });
        let [satisfaction, reversals] = watch;
        // As for comparisons, nothing is decided before `min_samples`.
        let enough = |n: u64| n >= cfg.min_samples.max(1);
        let mut alarm = None;
        if let Some(d) = satisfaction {
            let unhappy = add.rated.saturating_sub(add.satisfied);
            let alarmed = d.observe_many(false, unhappy) | d.observe_many(true, add.satisfied);
            if alarmed && enough(self.feedback.rated) {
                alarm = alarm.or(Some(Reason::Satisfaction));
            }
        }
        if let Some(d) = reversals {
            let kept = add.reviewed.saturating_sub(add.reversed);
            let alarmed = d.observe_many(true, add.reversed) | d.observe_many(false, kept);
            if alarmed && enough(self.feedback.reviewed) {
                alarm = alarm.or(Some(Reason::Reversals));
            }
        }
        alarm
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

    /// The latest decision, without the figures' bounds (cheap).
    pub fn decision(&self) -> Option<Decision> {
        self.last.as_ref().map(|(_, d)| *d)
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
mod sim;
#[cfg(test)]
mod tests;
