//! Decides whether two answers agree: failures and status classes first, then the route's mode.
//!
//! Pure: no IO, no tokio, no panics on whatever the upstreams sent. Two modes
//! need a second call, which the settle step makes: [`judge`] (here `judge`
//! mode yields `Verdict::Skipped`, "judge pending", until the judge answers;
//! the module writes the question and reads the reply) and [`noise`] (learns
//! the pointers the incumbent disagrees with itself on). [`safety`] scans a
//! candidate body for deny patterns.

pub mod exact;
pub mod json;
pub mod judge;
pub mod llm;
pub mod noise;
pub mod safety;
pub mod text;

#[cfg(test)]
mod tests;

use crate::config::Compare;
pub use crate::observation::Observation;
use crate::pointer::Pointer;

/// The outcome class of one comparison; `as_str` is the SQL value and metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    Match,
    Mismatch,
    CandidateError,
    IncumbentError,
    Skipped,
}

impl Verdict {
    pub const ALL: [Verdict; 5] = [
        Verdict::Match,
        Verdict::Mismatch,
        Verdict::CandidateError,
        Verdict::IncumbentError,
        Verdict::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::Mismatch => "mismatch",
            Verdict::CandidateError => "candidate_error",
            Verdict::IncumbentError => "incumbent_error",
            Verdict::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl crate::metrics::Label for Verdict {
    fn as_label(self) -> &'static str {
        self.as_str()
    }
}

/// A verdict with the differing JSON pointers (or a short note) and a score.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub verdict: Verdict,
    /// Differing pointers (`json`), or `["/status"]`/`[""]` (`exact`), sorted.
    pub diffs: Vec<String>,
    /// Similarity in [0, 1] where the mode has one (`text`, `judge`).
    pub score: Option<f64>,
    /// Why the verdict is `skipped` or an error, when it is.
    pub note: Option<String>,
    /// `llm` mode: the text stage that decided (none when the tool calls, a
    /// failure or two empty texts did).
    pub decided_by: Option<crate::config::TextStage>,
    /// Not decided here: the settle step decides it asynchronously (the
    /// verdict is `skipped` until it does).
    pub pending: Option<Pending>,
}

/// What an undecided outcome waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// The external judge's answer (`judge` mode).
    Judge,
    /// Both answers decoded and the text stages run (`llm` mode, [`llm`]).
    Llm,
}

impl Pending {
    fn as_str(self) -> &'static str {
        match self {
            Pending::Judge => "judge pending",
            Pending::Llm => "llm pending",
        }
    }
}

impl Outcome {
    pub fn new(verdict: Verdict) -> Outcome {
        Outcome {
            verdict,
            diffs: Vec::new(),
            score: None,
            note: None,
            decided_by: None,
            pending: None,
        }
    }

    /// An outcome the settle step decides later: `skipped` until then.
    pub fn pending(what: Pending) -> Outcome {
        Outcome {
            pending: Some(what),
            ..Outcome::noted(Verdict::Skipped, what.as_str())
        }
    }

    /// An outcome with a short explanation (`skipped`, errors, unreadable bodies).
    pub fn noted(verdict: Verdict, note: impl Into<String>) -> Outcome {
        Outcome {
            note: Some(note.into()),
            ..Outcome::new(verdict)
        }
    }

    /// A `mismatch` listing the differing pointers.
    pub fn mismatch(diffs: Vec<String>) -> Outcome {
        Outcome {
            diffs,
            ..Outcome::new(Verdict::Mismatch)
        }
    }

    pub fn is_match(&self) -> bool {
        self.verdict == Verdict::Match
    }
}

/// Compares the incumbent's answer with the candidate's under `mode`.
///
/// The order is fixed, and the first rule that applies decides:
///
/// 1. the incumbent failed (transport error or 5xx) → `incumbent_error`: there is
///    nothing to hold the candidate to;
/// 2. the candidate failed (transport error or 5xx) → `candidate_error`, with the
///    error text (or `status 503`) as note;
/// 3. the status classes differ (2xx against 4xx, ...) → `mismatch` on `/status`;
/// 4. either body was truncated → `skipped` ("body truncated"): we cannot judge
///    what we did not keep;
/// 5. the mode decides on the bodies: [`exact`], [`json`] (where `noise`, the
///    pointers learned as noise, are ignored like the configured `ignore`),
///    [`text`], or `judge` and `llm` → [`Outcome::pending`]: the settle step
///    decides them (the asynchronous judge answers; both answers are decoded
///    and the text stages run, [`llm`]).
pub fn compare(
    mode: &Compare,
    incumbent: &Observation,
    candidate: &Observation,
    noise: &[Pointer],
) -> Outcome {
    if incumbent.is_error() {
        return Outcome::noted(Verdict::IncumbentError, failure_note(incumbent));
    }
    if candidate.is_error() {
        return Outcome::noted(Verdict::CandidateError, failure_note(candidate));
    }
    // Neither is an error, so both have a status.
    let (inc_status, cand_status) = (
        incumbent.status.unwrap_or_default(),
        candidate.status.unwrap_or_default(),
    );
    if inc_status / 100 != cand_status / 100 {
        return Outcome::mismatch(vec![STATUS_POINTER.to_string()]);
    }
    if incumbent.truncated || candidate.truncated {
        return Outcome::noted(Verdict::Skipped, "body truncated");
    }
    match mode {
        Compare::Exact => exact::compare(incumbent, candidate),
        Compare::Json(spec) => json::compare(spec, noise, &incumbent.body, &candidate.body),
        Compare::Text(spec) => text::compare(spec, &incumbent.body, &candidate.body),
        Compare::Judge(_) => Outcome::pending(Pending::Judge),
        Compare::Llm(_) => Outcome::pending(Pending::Llm),
    }
}

/// The diff entry for a status difference.
pub const STATUS_POINTER: &str = "/status";

/// The error text, or `status 503`, or `no response`.
fn failure_note(obs: &Observation) -> String {
    match (&obs.error, obs.status) {
        (Some(error), _) => error.clone(),
        (None, Some(status)) => format!("status {status}"),
        (None, None) => "no response".to_string(),
    }
}
