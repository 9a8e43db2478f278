//! Exact mode: the two answers agree when status and body bytes are equal.
//!
//! The cheapest mode: one `memcmp`, no parsing, no allocation on a match.

use super::{Observation, Outcome, STATUS_POINTER, Verdict};

/// `match` when statuses and bodies are byte-for-byte equal; otherwise a
/// `mismatch` with `""` (the body differs) and/or `/status` (same class,
/// different code) as diffs.
pub fn compare(incumbent: &Observation, candidate: &Observation) -> Outcome {
    let mut diffs = Vec::new();
    if incumbent.body != candidate.body {
        diffs.push(String::new());
    }
    if incumbent.status != candidate.status {
        diffs.push(STATUS_POINTER.to_string());
    }
    if diffs.is_empty() {
        Outcome::new(Verdict::Match)
    } else {
        Outcome::mismatch(diffs)
    }
}
