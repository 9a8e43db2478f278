//! The exchange log: a bounded queue in front of one SQLite writer thread.
//!
//! The request path only ever calls [`Store::record`], which never blocks: a
//! full queue drops the row and counts it (`store_rows_dropped_total`).
//! [`Store::close`] flushes every queued row; a graceful stop calls it last.

pub mod redact;
pub mod schema;
pub mod writer;

use bytes::Bytes;

/// One exchange as it is written to the `exchanges` table (already redacted).
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub id: String,
    pub ts_ms: i64,
    pub route: String,
    pub segment: String,
    pub served_by: &'static str,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// JSON object of request headers.
    pub request_headers: String,
    pub request_body: Option<Bytes>,
    pub verdict: &'static str,
    /// JSON array of differing pointers.
    pub diff: String,
    pub score: Option<f64>,
    pub skip_reason: Option<String>,
    pub incumbent_status: Option<u16>,
    pub incumbent_ms: Option<f64>,
    pub incumbent_body: Option<Bytes>,
    pub incumbent_error: Option<String>,
    pub candidate_status: Option<u16>,
    pub candidate_ms: Option<f64>,
    pub candidate_body: Option<Bytes>,
    pub candidate_error: Option<String>,
    pub fallback: bool,
    pub safety: Option<String>,
}

// TEMP stub until the store branch lands.
#[derive(Debug, thiserror::Error)]
#[error("store")]
pub struct Error;
#[derive(Clone)]
pub struct Store;
impl Store {
    pub fn open(_c: &crate::config::Store, _m: crate::metrics::Metrics) -> Result<Store, Error> {
        Ok(Store)
    }
    pub fn record(&self, _r: Record) -> bool {
        true
    }
    pub async fn close_async(&self) {}
}
