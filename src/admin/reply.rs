//! What every admin API handler answers with: a status and a JSON body, or a
//! failure with its status and message; and how a JSON body is read.

use http::StatusCode;
use serde::{Deserialize, Serialize};

/// Header a client sets to be audited as something other than `api` (the CLI sends `cli`).
pub const ACTOR_HEADER: &str = "x-understudy-actor";

/// An API failure: its status and message.
pub(super) struct Failure(pub(super) StatusCode, pub(super) String);

/// A status and a body of the wire format ([`wire`]), as JSON text.
pub(super) type Answer = Result<(StatusCode, String), Failure>;

pub(super) fn ok(status: StatusCode, body: impl Serialize) -> Answer {
    serde_json::to_string_pretty(&body)
        .map(|text| (status, text))
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

pub(super) fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8], shape: &str) -> Result<T, Failure> {
    serde_json::from_slice(bytes).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body ({e}); expected {shape}"),
        )
    })
}
