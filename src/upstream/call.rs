//! The one bounded upstream call: a permit held throughout, the request sent,
//! the answer read up to a cap, all within one timeout. Shadow copies (to the
//! candidate or, in reverse shadow, the incumbent), the judge and the noise
//! probe go through it; the client's own call streams instead ([`Client::send`]).

use super::Client;
use super::body::{UpBody, collect_capped, collect_timed};
use crate::coding::Coding;
use crate::limit::OwnedSlot;
use crate::observation::Observation;
use http::Request;
use std::time::{Duration, Instant};

/// How long a bounded call may take and how much of the answer it keeps.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub timeout: Duration,
    pub cap: usize,
    /// Note when the answer's bytes arrive (for the time to first token).
    pub timed: bool,
}

/// What a bounded call saw.
#[derive(Debug)]
pub struct Called {
    pub observation: Observation,
    /// False only when no connection could be made (for the connect back-off).
    pub connected: bool,
    /// The answer (head or body) did not come within the timeout.
    pub timed_out: bool,
}

impl Client {
    /// Sends `req` holding `permit` until the answer is read or given up on.
    /// Never fails: a transport error, a body that breaks off and the timeout
    /// are each an [`Observation`] with an error.
    pub async fn call(&self, _permit: OwnedSlot, req: Request<UpBody>, bounds: Bounds) -> Called {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started) + bounds.timeout;
        // Bounded by the timeout itself, so whether a connection opened is
        // always known.
        let resp = match self.send_within(req, bounds.timeout).await {
            Ok(resp) => resp,
            Err(e) => {
                return Called {
                    observation: Observation::failed(e.to_string(), started.elapsed()),
                    connected: !e.failed_to_connect(),
                    timed_out: e.is_timeout(),
                };
            }
        };
        let status = resp.status().as_u16();
        let coding = Coding::of(resp.headers());
        let read = async {
            if bounds.timed {
                collect_timed(resp.into_body(), bounds.cap, started).await
            } else {
                let (body, truncated) = collect_capped(resp.into_body(), bounds.cap).await?;
                Ok((body, truncated, Vec::new()))
            }
        };
        let mut timed_out = false;
        let observation = match tokio::time::timeout_at(deadline, read).await {
            Ok(Ok((body, truncated, arrivals))) => Observation {
                status: Some(status),
                body,
                truncated,
                error: None,
                latency: started.elapsed(),
                arrivals,
                coding,
                ..Observation::default()
            },
            Ok(Err(e)) => Observation::failed(format!("body broke off: {e}"), started.elapsed()),
            Err(_) => {
                timed_out = true;
                Observation::failed("timed out", started.elapsed())
            }
        };
        Called {
            observation,
            connected: true,
            timed_out,
        }
    }
}
