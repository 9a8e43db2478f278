//! The admin listener's limits (docs/src/reference/admin-api.md): a cap on every request body, a time
//! to a complete request head, a time for a whole request and a cap on open
//! connections.
//!
//! Nothing on the admin listener reads more than `admin.max_body_bytes` of a
//! body or waits on a client without a bound, before or after auth.

use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use std::time::Duration;

/// The admin listener's limits, fixed at start (`[admin]` in `proxy.toml`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Cap on a request body on every path: larger is 413.
    pub max_body: usize,
    /// Time to a complete request head, counted from the connection's first
    /// byte and again between keep-alive requests: the connection is closed.
    pub header_read_timeout: Duration,
    /// Time for a whole request, head to answer: 408.
    pub request_timeout: Duration,
    /// Open connections at most; a new one beyond is closed at accept.
    pub max_connections: usize,
}

impl From<&crate::config::Admin> for Limits {
    fn from(c: &crate::config::Admin) -> Limits {
        Limits {
            max_body: c.max_body_bytes,
            header_read_timeout: c.header_read_timeout,
            request_timeout: c.request_timeout,
            max_connections: c.max_connections,
        }
    }
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// 413: longer than the cap (by its `Content-Length`, or as it arrived).
    #[error("the body is larger than the admin listener's {max} bytes")]
    TooLarge { max: usize },
    /// 400: the client broke off or sent a malformed body.
    #[error("cannot read the body: {0}")]
    Read(String),
}

impl Limits {
    /// Whether the declared `Content-Length` is already over the cap, so the
    /// request can be refused before a byte of its body is read.
    pub fn declared_too_large(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > self.max_body as u64)
    }

    /// Reads a body of at most `max_body` bytes (chunked or not).
    pub async fn read(&self, headers: &HeaderMap, body: Incoming) -> Result<Bytes, BodyError> {
        let too_large = BodyError::TooLarge { max: self.max_body };
        if self.declared_too_large(headers) {
            return Err(too_large);
        }
        match Limited::new(body, self.max_body).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large),
            Err(e) => Err(BodyError::Read(e.to_string())),
        }
    }
}

/// Whether `value` is a `Content-Type` of JSON: `application/json`, in any
/// case, with or without parameters (`; charset=utf-8`).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn json_content_type_with_or_without_parameters() {
        assert!(is_json(&with(header::CONTENT_TYPE, "application/json")));
        assert!(is_json(&with(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8"
        )));
        assert!(!is_json(&with(header::CONTENT_TYPE, "text/plain")));
        assert!(!is_json(&with(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded"
        )));
        assert!(!is_json(&with(header::CONTENT_TYPE, "application/jsonx")));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn a_declared_length_over_the_cap_is_refused_unread() {
        let limits = Limits {
            max_body: 10,
            header_read_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            max_connections: 1,
        };
        assert!(limits.declared_too_large(&with(header::CONTENT_LENGTH, "11")));
        assert!(!limits.declared_too_large(&with(header::CONTENT_LENGTH, "10")));
        assert!(!limits.declared_too_large(&HeaderMap::new()));
    }
}
