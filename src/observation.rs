//! `Observation`: what one upstream answered (or failed to), as compared and logged.

use crate::coding::Coding;
use bytes::Bytes;
use std::time::Duration;

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
    /// When the kept bytes arrived, frame by frame (only for routes that time
    /// the first token, `compare.mode = "llm"`; empty otherwise).
    pub arrivals: Vec<Arrival>,
    /// The body's `Content-Encoding`, until [`Observation::decode`] undoes it.
    pub coding: Option<Coding>,
    /// The body's bytes against `store.capture_budget`, released with it.
    pub charge: crate::budget::Charge,
}

/// The first `end` bytes of a body had arrived `at` after its request was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub end: usize,
    pub at: Duration,
}

/// At most this many arrivals are kept per body; later frames extend the last.
pub const MAX_ARRIVALS: usize = 4096;

/// Notes that the kept body now has `end` bytes, `at` after the request went.
pub fn note_arrival(arrivals: &mut Vec<Arrival>, end: usize, at: Duration) {
    let full = arrivals.len() >= MAX_ARRIVALS;
    match arrivals.last_mut() {
        Some(last) if last.end == end => {}
        Some(last) if full => {
            last.end = end;
            last.at = at;
        }
        _ => arrivals.push(Arrival { end, at }),
    }
}

impl Observation {
    pub fn failed(error: impl Into<String>, latency: Duration) -> Observation {
        Observation {
            error: Some(error.into()),
            latency,
            ..Observation::default()
        }
    }

    /// The body decoded from its `Content-Encoding` (to at most `cap`
    /// bytes), for comparison, redaction and the row; left as it is when it
    /// does not decode.
    pub fn decode(&mut self, cap: usize) {
        let Some(coding) = self.coding else { return };
        if let Some(d) = crate::coding::decode(&self.body, coding, cap) {
            self.body = d.body;
            self.truncated |= d.truncated;
            self.coding = None;
            // Arrivals count encoded bytes: they say nothing about the
            // decoded body (its time to first token becomes the whole answer).
            self.arrivals.clear();
        }
    }

    /// A transport failure or a 5xx.
    pub fn is_error(&self) -> bool {
        self.error.is_some() || self.status.is_none_or(|s| s >= 500)
    }
}
