//! Decides whether two answers agree: status classes first, then the route's mode.
//!
//! Pure: no IO, no tokio. `judge` mode is asynchronous and lives elsewhere; here
//! it yields `Verdict::Skipped` with a reason until a judge answer is supplied.

pub mod exact;
pub mod json;

use crate::config::Compare;
use bytes::Bytes;
use std::time::Duration;

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

/// What one upstream answered (or failed to).
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// `None` when no response head arrived (connect error, timeout, reset).
    pub status: Option<u16>,
    /// The first `store.max_body_bytes` of the body.
    pub body: Bytes,
    /// The body was longer than what was kept.
    pub truncated: bool,
    /// Transport failure, or a body that broke off midway.
    pub error: Option<String>,
    /// Time to the end of the body (or to the failure).
    pub latency: Duration,
}

impl Observation {
    pub fn failed(error: impl Into<String>, latency: Duration) -> Observation {
        Observation {
            error: Some(error.into()),
            latency,
            ..Observation::default()
        }
    }

    /// A transport failure or a 5xx.
    pub fn is_error(&self) -> bool {
        self.error.is_some() || self.status.is_none_or(|s| s >= 500)
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
}

impl Outcome {
    pub fn new(verdict: Verdict) -> Outcome {
        Outcome {
            verdict,
            diffs: Vec::new(),
            score: None,
            note: None,
        }
    }
}

/// Compares the incumbent's answer with the candidate's under `mode`.
///
/// Order: an incumbent failure (transport or 5xx) is `incumbent_error`; then a
/// candidate failure is `candidate_error`; then different status classes are a
/// `mismatch` on `/status`; then the mode decides on the bodies. A truncated
/// body on either side is `skipped` (we cannot judge what we did not keep).
pub fn compare(mode: &Compare, incumbent: &Observation, candidate: &Observation) -> Outcome {
    todo_compare(mode, incumbent, candidate)
}

fn todo_compare(_mode: &Compare, _incumbent: &Observation, _candidate: &Observation) -> Outcome {
    Outcome::new(Verdict::Skipped)
}
