//! Read queries for `report` and `show`, merged over several database files.
//!
//! Each file (one per replica) is opened read-only, so a report can run beside
//! a live proxy. Never writes, never migrates.
//!
//! `segment_stats` is one pass over the covering index
//! `exchanges_route_segment_ts (route, segment, ts, verdict, incumbent_ms,
//! candidate_ms)`: it never touches the table rows and their bodies, which is
//! what keeps a report over a million exchanges under a second.

use super::{Error, Result};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Counts and latencies of one route and segment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentStats {
    pub route: String,
    pub segment: String,
    /// Every exchange, whatever its verdict.
    pub samples: u64,
    pub matches: u64,
    pub mismatches: u64,
    pub candidate_errors: u64,
    pub incumbent_errors: u64,
    pub skipped: u64,
    /// Every recorded incumbent latency, sorted ascending.
    pub incumbent_ms: Vec<f64>,
    /// Every recorded candidate latency (failures included), sorted ascending.
    pub candidate_ms: Vec<f64>,
}

impl SegmentStats {
    /// Comparisons that reached a verdict on content: matches + mismatches.
    pub fn decided(&self) -> u64 {
        self.matches + self.mismatches
    }

    fn count(&mut self, verdict: &[u8]) {
        self.samples += 1;
        match verdict {
            b"match" => self.matches += 1,
            b"mismatch" => self.mismatches += 1,
            b"candidate_error" => self.candidate_errors += 1,
            b"incumbent_error" => self.incumbent_errors += 1,
            // `skipped` and anything a newer version might write.
            _ => self.skipped += 1,
        }
    }
}

/// Every column of one `exchanges` row, for `show`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExchangeRow {
    pub id: String,
    pub ts_ms: i64,
    pub route: String,
    pub segment: String,
    pub served_by: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub request_headers: Option<String>,
    pub request_body: Option<Vec<u8>>,
    pub verdict: String,
    pub diff: String,
    pub score: Option<f64>,
    pub skip_reason: Option<String>,
    pub incumbent_status: Option<u16>,
    pub incumbent_ms: Option<f64>,
    pub incumbent_body: Option<Vec<u8>>,
    pub incumbent_error: Option<String>,
    pub candidate_status: Option<u16>,
    pub candidate_ms: Option<f64>,
    pub candidate_body: Option<Vec<u8>>,
    pub candidate_error: Option<String>,
    pub fallback: bool,
    pub safety: Option<String>,
}

/// Opens an existing database file read-only.
pub fn open_ro(path: &Path) -> Result<Connection> {
    if let Err(source) = std::fs::metadata(path) {
        return Err(Error::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(Error::sqlite(path))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(Error::sqlite(path))?;
    Ok(conn)
}

// The ORDER BY makes SQLite walk the covering index (rows arrive grouped by
// route and segment), not the `ts` index plus a lookup of every table row.
const STATS_ALL: &str = "SELECT route, segment, verdict, incumbent_ms, candidate_ms
    FROM exchanges WHERE ts >= ?1 ORDER BY route, segment";
const STATS_ROUTE: &str = "SELECT route, segment, verdict, incumbent_ms, candidate_ms
    FROM exchanges WHERE route = ?2 AND ts >= ?1 ORDER BY route, segment";

/// Per route and segment statistics, merged over `paths`, optionally for one
/// route and for exchanges at or after `since_ms`. Sorted by route, segment.
pub fn segment_stats(
    paths: &[PathBuf],
    route: Option<&str>,
    since_ms: Option<i64>,
) -> Result<Vec<SegmentStats>> {
    let mut merged: BTreeMap<(String, String), SegmentStats> = BTreeMap::new();
    let since = since_ms.unwrap_or(i64::MIN);
    for path in paths {
        let conn = open_ro(path)?;
        let mut stmt = match route {
            Some(_) => conn.prepare(STATS_ROUTE),
            None => conn.prepare(STATS_ALL),
        }
        .map_err(Error::sqlite(path))?;
        let mut rows = match route {
            Some(r) => stmt.query(params![since, r]),
            None => stmt.query(params![since]),
        }
        .map_err(Error::sqlite(path))?;
        // Rows arrive grouped, so the map is only consulted when the group
        // changes; `cur` is the group being filled.
        let mut cur: Option<SegmentStats> = None;
        while let Some(row) = rows.next().map_err(Error::sqlite(path))? {
            scan_row(row, &mut cur, &mut merged).map_err(Error::sqlite(path))?;
        }
        if let Some(done) = cur.take() {
            merge_into(&mut merged, done);
        }
    }
    let mut out: Vec<SegmentStats> = merged.into_values().collect();
    for s in &mut out {
        s.incumbent_ms.sort_unstable_by(f64::total_cmp);
        s.candidate_ms.sort_unstable_by(f64::total_cmp);
    }
    Ok(out)
}

fn scan_row(
    row: &Row<'_>,
    cur: &mut Option<SegmentStats>,
    merged: &mut BTreeMap<(String, String), SegmentStats>,
) -> rusqlite::Result<()> {
    let route = row.get_ref(0)?.as_str()?;
    let segment = row.get_ref(1)?.as_str()?;
    let same = cur
        .as_ref()
        .is_some_and(|c| c.route == route && c.segment == segment);
    if !same {
        if let Some(done) = cur.take() {
            merge_into(merged, done);
        }
        *cur = Some(SegmentStats {
            route: route.to_string(),
            segment: segment.to_string(),
            ..SegmentStats::default()
        });
    }
    let Some(s) = cur.as_mut() else {
        return Ok(());
    };
    s.count(row.get_ref(2)?.as_bytes()?);
    if let Some(ms) = row.get_ref(3)?.as_f64_or_null()? {
        s.incumbent_ms.push(ms);
    }
    if let Some(ms) = row.get_ref(4)?.as_f64_or_null()? {
        s.candidate_ms.push(ms);
    }
    Ok(())
}

fn merge_into(merged: &mut BTreeMap<(String, String), SegmentStats>, s: SegmentStats) {
    let key = (s.route.clone(), s.segment.clone());
    match merged.get_mut(&key) {
        None => {
            merged.insert(key, s);
        }
        Some(m) => {
            m.samples += s.samples;
            m.matches += s.matches;
            m.mismatches += s.mismatches;
            m.candidate_errors += s.candidate_errors;
            m.incumbent_errors += s.incumbent_errors;
            m.skipped += s.skipped;
            m.incumbent_ms.extend(s.incumbent_ms);
            m.candidate_ms.extend(s.candidate_ms);
        }
    }
}

/// One exchange by id, from the first file that has it.
pub fn exchange(paths: &[PathBuf], id: &str) -> Result<Option<ExchangeRow>> {
    for path in paths {
        let conn = open_ro(path)?;
        let row = conn
            .query_row(
                "SELECT id, ts, route, segment, served_by, method, path, query,
                    request_headers, request_body, verdict, diff, score, skip_reason,
                    incumbent_status, incumbent_ms, incumbent_body, incumbent_error,
                    candidate_status, candidate_ms, candidate_body, candidate_error,
                    fallback, safety
                 FROM exchanges WHERE id = ?1",
                [id],
                exchange_row,
            )
            .optional()
            .map_err(Error::sqlite(path))?;
        if row.is_some() {
            return Ok(row);
        }
    }
    Ok(None)
}

fn exchange_row(r: &Row<'_>) -> rusqlite::Result<ExchangeRow> {
    Ok(ExchangeRow {
        id: r.get(0)?,
        ts_ms: r.get(1)?,
        route: r.get(2)?,
        segment: r.get(3)?,
        served_by: r.get(4)?,
        method: r.get(5)?,
        path: r.get(6)?,
        query: r.get(7)?,
        request_headers: r.get(8)?,
        request_body: body(r, 9)?,
        verdict: r.get(10)?,
        diff: r.get(11)?,
        score: r.get(12)?,
        skip_reason: r.get(13)?,
        incumbent_status: r.get(14)?,
        incumbent_ms: r.get(15)?,
        incumbent_body: body(r, 16)?,
        incumbent_error: r.get(17)?,
        candidate_status: r.get(18)?,
        candidate_ms: r.get(19)?,
        candidate_body: body(r, 20)?,
        candidate_error: r.get(21)?,
        fallback: r.get(22)?,
        safety: r.get(23)?,
    })
}

/// A body column, stored as TEXT or BLOB (see the writer), as bytes.
fn body(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<Vec<u8>>> {
    Ok(match r.get_ref(i)? {
        ValueRef::Null => None,
        ValueRef::Text(b) | ValueRef::Blob(b) => Some(b.to_vec()),
        ValueRef::Integer(n) => Some(n.to_string().into_bytes()),
        ValueRef::Real(f) => Some(f.to_string().into_bytes()),
    })
}
