//! `Observation`: what one upstream answered (or failed to), as compared and logged.

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
