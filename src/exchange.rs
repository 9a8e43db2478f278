//! `Exchange`: what we know about one client request from its start to its row.

use crate::config::Route;
use crate::segment::{self, JsonBody};
use bytes::Bytes;
use http::HeaderMap;
use http::request::Parts;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Per-request context, built once at the start and then only read.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub id: String,
    pub ts_ms: i64,
    pub started: Instant,
    pub segment: String,
    pub sticky: Option<String>,
    pub method: http::Method,
    /// Path, query and the client's headers as received (before forwarding
    /// changes), for the row: empty until [`Exchange::keep_request`].
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    /// The request body when it was buffered (within the cap).
    pub body: Option<Bytes>,
    /// The segment's stage when the weight (or a rule) put this request in
    /// the canary (docs/src/concepts/stages.md); `None` outside the canary.
    pub canary: Option<crate::config::Stage>,
}

impl Exchange {
    /// What every request needs: id, time, segment, sticky key, method, body.
    pub fn begin(route: &Route, parts: &Parts, body: Option<&Bytes>) -> Exchange {
        let mut json = JsonBody::new(body.map_or(&[][..], |b| &b[..]));
        let segment = segment::of(route.segment.as_ref(), parts, &mut json);
        let sticky = route
            .sticky
            .as_ref()
            .and_then(|s| segment::extract(s, parts, &mut json));
        let ts_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Exchange {
            id: new_id(ts_ms),
            ts_ms,
            started: Instant::now(),
            segment,
            sticky,
            method: parts.method.clone(),
            path: String::new(),
            query: None,
            headers: HeaderMap::new(),
            body: body.cloned(),
            canary: None,
        }
    }

    /// Keeps what only the row needs (copies), for exchanges that get one.
    pub fn keep_request(&mut self, parts: &Parts) {
        self.path = parts.uri.path().to_string();
        self.query = parts.uri.query().map(str::to_string);
        self.headers = parts.headers.clone();
    }
}

/// A time-sortable id that cannot be guessed: unix ms, then 64 bits from
/// the thread's CSPRNG (`rand`'s ChaCha, seeded by the OS). Knowing one id
/// says nothing about the next, so an id is a capability to rate its
/// exchange (`POST /api/v1/feedback`); unique across replicas whose
/// databases are merged by `report` (a clash needs 2^32 ids in one ms).
pub fn new_id(ts_ms: i64) -> String {
    let random: u64 = rand::random();
    // `format!("{ts_ms:012x}{random:016x}")`, without the formatter (it is
    // on every exchange's path).
    let mut id = String::with_capacity(28);
    push_hex(&mut id, ts_ms as u64, 12);
    push_hex(&mut id, random, 16);
    id
}

/// Appends `v` as `digits` lower-case hex digits, zero-padded (wider values
/// keep all their digits, as `{:0N$x}` does).
fn push_hex(out: &mut String, v: u64, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let needed = (64 - v.leading_zeros() as usize).div_ceil(4).max(digits);
    for i in (0..needed).rev() {
        out.push(char::from(HEX[((v >> (i * 4)) & 0xf) as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_together_do_not_give_each_other_away() {
        let ids: Vec<u64> = (0..1000)
            .map(|_| u64::from_str_radix(&new_id(7)[12..], 16).unwrap())
            .collect();
        let steps = ids.windows(2).filter(|w| w[1].wrapping_sub(w[0]) < 1 << 16);
        assert!(steps.count() < 5, "ids follow one another");
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn ids_are_unique_and_sortable() {
        let a = new_id(1);
        let b = new_id(1);
        let c = new_id(2);
        assert_ne!(a, b);
        assert_eq!(a.len(), 28);
        assert!(a < c && b < c);
    }

    #[test]
    fn hex_digits_match_the_formatter() {
        for (v, d) in [
            (0u64, 12),
            (1, 8),
            (0xdead_beef, 8),
            (u64::MAX, 12),
            (0x1_0000_0000, 8),
        ] {
            let mut s = String::new();
            push_hex(&mut s, v, d);
            assert_eq!(s, format!("{v:0d$x}"));
        }
    }
}
