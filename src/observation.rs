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
    /// The body's `Content-Encoding`, until [`Observation::decode`] undoes it.
    pub coding: Option<Coding>,
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
        }
    }

    /// A transport failure or a 5xx.
    pub fn is_error(&self) -> bool {
        self.error.is_some() || self.status.is_none_or(|s| s >= 500)
    }
}
