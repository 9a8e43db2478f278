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

/// A count from the query string: `None` when absent, digits past the
/// largest number saturate (a client asking for more than any limit gets the
/// limit), anything else is a 400.
pub(super) fn count_param(query: &str, name: &str) -> Result<Option<u64>, Failure> {
    let Some(v) = crate::segment::query_param(query, name) else {
        return Ok(None);
    };
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!("{name} {v:?} is not a non-negative whole number"),
        ));
    }
    Ok(Some(v.parse().unwrap_or(u64::MAX)))
}

pub(super) fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8], shape: &str) -> Result<T, Failure> {
    serde_json::from_slice(bytes).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body ({e}); expected {shape}"),
        )
    })
}
