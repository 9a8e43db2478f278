//! Read queries for `report`, `show` and `export`, merged over several
//! database files (one per replica).
//!
//! Each file is opened read-only, so a report can run beside a live proxy.
//! Never writes, never migrates: a table a file does not have yet (an older
//! schema) reads as empty. The report's pass over the exchanges is in
//! [`scan`]: it reads only a covering index, never the bodies, which is what
//! keeps a report over a million exchanges under a second.

pub mod ai;
mod scan;

pub use scan::{
    DAY_MS, Filter, HOUR_MS, Point, RowRef, RowSet, Scan, SegmentStats, scan, series_bucket,
};

use super::events::RolloutEvent;
use super::{Error, Result};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// docs/src/guide/llm.md: time to first token, tokens and cost of each side, and the
    /// text stage that decided (unknown in files without those columns).
    pub incumbent_llm: crate::reading::Figures,
    pub candidate_llm: crate::reading::Figures,
    pub decided_by: Option<String>,
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

/// Per route and segment statistics, merged over `paths`, optionally for one
/// route and for exchanges at or after `since_ms`. Sorted by route, segment.
pub fn segment_stats(
    paths: &[PathBuf],
    route: Option<&str>,
    since_ms: Option<i64>,
) -> Result<Vec<SegmentStats>> {
    let filter = Filter {
        route: route.map(str::to_string),
        since_ms,
        ..Filter::default()
    };
    Ok(scan(paths, &filter, None, HOUR_MS)?.groups)
}

const EXCHANGE_COLUMNS: &str = "id, ts, route, segment, served_by, method, path, query,
    request_headers, request_body, verdict, diff, score, skip_reason,
    incumbent_status, incumbent_ms, incumbent_body, incumbent_error,
    candidate_status, candidate_ms, candidate_body, candidate_error,
    fallback, safety";

/// The AI columns (`store::columns`) read after [`EXCHANGE_COLUMNS`] when a
/// file has them.
const AI_COLUMNS: &str = ", incumbent_ttft_ms, incumbent_tokens_in, incumbent_tokens_out,
    incumbent_cost, candidate_ttft_ms, candidate_tokens_in, candidate_tokens_out,
    candidate_cost, decided_by";

/// The columns `show` and `export` read from this file.
fn exchange_columns(conn: &Connection) -> rusqlite::Result<String> {
    let mut stmt =
        conn.prepare("SELECT 1 FROM pragma_table_info('exchanges') WHERE name = 'decided_by'")?;
    let ai = stmt.exists([])?;
    Ok(format!(
        "{EXCHANGE_COLUMNS}{}",
        if ai { AI_COLUMNS } else { "" }
    ))
}

/// What a guard learns from one stored exchange ([`guard_rows`]).
#[derive(Debug, Clone, PartialEq)]
pub struct GuardRow {
    pub ts_ms: i64,
    /// The raw segment value.
    pub segment: String,
    pub verdict: crate::compare::Verdict,
    pub safety: bool,
    pub incumbent_ms: Option<f64>,
    pub candidate_ms: Option<f64>,
    pub incumbent_ttft_ms: Option<f64>,
    pub candidate_ttft_ms: Option<f64>,
    pub skip_reason: Option<String>,
}

/// The last `limit` exchanges of `route` that started at or after
/// `since_ms`, oldest first, as the guard reads them (the route's guards
/// rebuild their evidence from these at start). Reads the covering index and
/// the AI columns, never the bodies.
pub fn guard_rows(
    path: &Path,
    route: &str,
    since_ms: i64,
    limit: usize,
    mut each: impl FnMut(GuardRow),
) -> Result<()> {
    let conn = open_ro(path)?;
    let sql = "SELECT ts, segment, verdict, safety IS NOT NULL, incumbent_ms, candidate_ms,
                      incumbent_ttft_ms, candidate_ttft_ms, skip_reason
               FROM (SELECT * FROM exchanges WHERE route = ?1 AND ts >= ?2
                     ORDER BY ts DESC LIMIT ?3)
               ORDER BY ts";
    let mut stmt = conn.prepare(sql).map_err(Error::sqlite(path))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = stmt
        .query(rusqlite::params![route, since_ms, limit])
        .map_err(Error::sqlite(path))?;
    while let Some(row) = rows.next().map_err(Error::sqlite(path))? {
        let verdict: String = row.get(2).map_err(Error::sqlite(path))?;
        let Some(verdict) = crate::compare::Verdict::parse(&verdict) else {
            continue;
        };
        let get = |i| row.get::<_, Option<f64>>(i).map_err(Error::sqlite(path));
        each(GuardRow {
            ts_ms: row.get(0).map_err(Error::sqlite(path))?,
            segment: row.get(1).map_err(Error::sqlite(path))?,
            verdict,
            safety: row.get(3).map_err(Error::sqlite(path))?,
            incumbent_ms: get(4)?,
            candidate_ms: get(5)?,
            incumbent_ttft_ms: get(6)?,
            candidate_ttft_ms: get(7)?,
            skip_reason: row.get(8).map_err(Error::sqlite(path))?,
        });
    }
    Ok(())
}

/// The exchange ids of rows the scan pointed at (examples of a difference),
/// in order; `None` for a row that is gone (retention deleted it meanwhile).
pub fn exchange_ids(paths: &[PathBuf], rows: &[RowRef]) -> Result<Vec<Option<String>>> {
    let mut out = Vec::with_capacity(rows.len());
    let mut open: Option<(usize, Connection)> = None;
    for r in rows {
        let Some(path) = paths.get(r.db) else {
            out.push(None);
            continue;
        };
        if open.as_ref().is_none_or(|(db, _)| *db != r.db) {
            open = Some((r.db, open_ro(path)?));
        }
        let Some((_, conn)) = &open else {
            out.push(None); // unreachable: opened just above
            continue;
        };
        let id = conn
            .query_row(
                "SELECT id FROM exchanges WHERE rowid = ?1",
                [r.rowid],
                |row| row.get(0),
            )
            .optional()
            .map_err(Error::sqlite(path))?;
        out.push(id);
    }
    Ok(out)
}

/// One exchange by id, from the first file that has it.
pub fn exchange(paths: &[PathBuf], id: &str) -> Result<Option<ExchangeRow>> {
    for path in paths {
        let conn = open_ro(path)?;
        let columns = exchange_columns(&conn).map_err(Error::sqlite(path))?;
        let row = conn
            .query_row(
                &format!("SELECT {columns} FROM exchanges WHERE id = ?1"),
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
        incumbent_llm: figures(r, 24)?,
        candidate_llm: figures(r, 28)?,
        decided_by: if r.as_ref().column_count() > 32 {
            r.get(32)?
        } else {
            None
        },
    })
}

/// One side's AI figures from four columns at `at`, when the row has them.
fn figures(r: &Row<'_>, at: usize) -> rusqlite::Result<crate::reading::Figures> {
    if r.as_ref().column_count() < at + 4 {
        return Ok(crate::reading::Figures::default());
    }
    let count = |v: Option<i64>| v.map(|n| n.max(0) as u64);
    Ok(crate::reading::Figures {
        ttft_ms: r.get(at)?,
        tokens_in: count(r.get(at + 1)?),
        tokens_out: count(r.get(at + 2)?),
        cost: r.get(at + 3)?,
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

/// The oldest and newest exchange at or after `since_ms` over every file
/// (through the `ts` index: two lookups per file).
pub fn time_range(paths: &[PathBuf], since_ms: Option<i64>) -> Result<Option<(i64, i64)>> {
    let mut range: Option<(i64, i64)> = None;
    for path in paths {
        let conn = open_ro(path)?;
        let found: (Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT MIN(ts), MAX(ts) FROM exchanges WHERE ts >= ?1",
                [since_ms.unwrap_or(i64::MIN)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(Error::sqlite(path))?;
        let skips: (Option<i64>, Option<i64>) =
            if has_table(&conn, "mirror_skips").map_err(Error::sqlite(path))? {
                conn.query_row(
                    "SELECT MIN(minute), MAX(minute) FROM mirror_skips WHERE minute >= ?1",
                    [since_ms.map_or(i64::MIN, super::skips::minute_of)],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(Error::sqlite(path))?
            } else {
                (None, None)
            };
        for (a, b) in [found, skips] {
            if let (Some(a), Some(b)) = (a, b) {
                range = Some(range.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
            }
        }
    }
    Ok(range)
}

/// Whether `conn` has table `name` (an older schema may not).
pub(crate) fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// One learned noise pointer of a route, merged over replicas.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NoiseRow {
    pub route: String,
    pub pointer: String,
    pub first_ts: i64,
    pub last_ts: i64,
    /// Exchanges whose two incumbent answers differed at this pointer.
    pub hits: u64,
}

/// Learned noise pointers (of one route, or all), sorted by route and pointer.
pub fn noise(paths: &[PathBuf], route: Option<&str>) -> Result<Vec<NoiseRow>> {
    let mut merged: BTreeMap<(String, String), NoiseRow> = BTreeMap::new();
    for path in paths {
        let conn = open_ro(path)?;
        let read = || -> rusqlite::Result<Vec<NoiseRow>> {
            if !has_table(&conn, "noise")? {
                return Ok(Vec::new());
            }
            let mut stmt = conn.prepare(
                "SELECT route, pointer, first_ts, last_ts, hits FROM noise
                 WHERE ?1 IS NULL OR route = ?1",
            )?;
            stmt.query_map([route], |r| {
                Ok(NoiseRow {
                    route: r.get(0)?,
                    pointer: r.get(1)?,
                    first_ts: r.get(2)?,
                    last_ts: r.get(3)?,
                    hits: r.get::<_, i64>(4)?.max(0) as u64,
                })
            })?
            .collect()
        };
        for n in read().map_err(Error::sqlite(path))? {
            match merged.get_mut(&(n.route.clone(), n.pointer.clone())) {
                Some(m) => {
                    m.first_ts = m.first_ts.min(n.first_ts);
                    m.last_ts = m.last_ts.max(n.last_ts);
                    m.hits += n.hits;
                }
                None => {
                    merged.insert((n.route.clone(), n.pointer.clone()), n);
                }
            }
        }
    }
    Ok(merged.into_values().collect())
}

/// Feedback ratings per route, segment and rating value, for the exchanges
/// the filter selects: `(route, segment) → rating → count`.
pub fn ratings(
    paths: &[PathBuf],
    filter: &Filter,
) -> Result<BTreeMap<(String, String), BTreeMap<i64, u64>>> {
    let mut out: BTreeMap<(String, String), BTreeMap<i64, u64>> = BTreeMap::new();
    for path in paths {
        let conn = open_ro(path)?;
        let read = || -> rusqlite::Result<Vec<(String, String, i64, i64)>> {
            if !has_table(&conn, "feedback")? {
                return Ok(Vec::new());
            }
            let mut stmt = conn.prepare(
                "SELECT e.route, e.segment, f.rating, COUNT(*)
                 FROM feedback f JOIN exchanges e ON e.id = f.exchange_id
                 WHERE f.rating IS NOT NULL AND e.ts >= ?1 AND (?2 IS NULL OR e.route = ?2)
                   AND (?3 IS NULL OR e.segment = ?3)
                 GROUP BY 1, 2, 3",
            )?;
            stmt.query_map(
                params![
                    filter.since_ms.unwrap_or(i64::MIN),
                    filter.route,
                    filter.segment
                ],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?
            .collect()
        };
        for (route, segment, rating, n) in read().map_err(Error::sqlite(path))? {
            *out.entry((route, segment))
                .or_default()
                .entry(rating)
                .or_default() += n.max(0) as u64;
        }
    }
    Ok(out)
}

/// Rollout events (of one route, or all) at or after `since_ms`, from every
/// file, ordered by time. Replicas that share a history list an event once.
pub fn events(
    paths: &[PathBuf],
    route: Option<&str>,
    since_ms: Option<i64>,
) -> Result<Vec<RolloutEvent>> {
    let mut all: Vec<RolloutEvent> = Vec::new();
    for path in paths {
        let conn = open_ro(path)?;
        let read = || -> rusqlite::Result<Vec<RolloutEvent>> {
            if !has_table(&conn, "rollout_events")? {
                return Ok(Vec::new());
            }
            // Files from before staged autonomy have no stage columns.
            let stages = if ai::has_column(&conn, "rollout_events", "to_stage")? {
                "from_stage, to_stage"
            } else {
                "NULL, NULL"
            };
            // ... and files from before the promotion gate no `forced`.
            let forced = if ai::has_column(&conn, "rollout_events", "forced")? {
                "forced"
            } else {
                "0"
            };
            let mut stmt = conn.prepare(&format!(
                "SELECT version, ts, route, segment, from_weight, to_weight, actor, reason, mirror,
                        {stages}, {forced}
                 FROM rollout_events WHERE ts >= ?1 AND (?2 IS NULL OR route = ?2)
                 ORDER BY version"
            ))?;
            stmt.query_map(params![since_ms.unwrap_or(i64::MIN), route], |r| {
                Ok(RolloutEvent {
                    version: r.get(0)?,
                    ts_ms: r.get(1)?,
                    route: r.get(2)?,
                    segment: r.get(3)?,
                    from_weight: r.get(4)?,
                    to_weight: r.get(5)?,
                    forced: r.get::<_, Option<bool>>(11)?.unwrap_or(false),
                    gates: None,
                    replica: None,
                    fleet_version: None,
                    from_stage: r.get(9)?,
                    to_stage: r.get(10)?,
                    intent: None,
                    actor: r.get(6)?,
                    reason: r.get(7)?,
                    mirror: r.get(8)?,
                })
            })?
            .collect()
        };
        all.extend(read().map_err(Error::sqlite(path))?);
    }
    all.sort_by_key(|e| (e.ts_ms, e.version));
    all.dedup_by(|a, b| {
        a.ts_ms == b.ts_ms
            && a.route == b.route
            && a.segment == b.segment
            && a.to_weight == b.to_weight
            && a.to_stage == b.to_stage
            && a.actor == b.actor
    });
    Ok(all)
}

/// The current weight of every route and segment that has one: the
/// `to_weight` of its newest event (by time, over every file) that set one.
pub fn weights(paths: &[PathBuf]) -> Result<BTreeMap<(String, String), f64>> {
    let mut newest: BTreeMap<(String, String), (i64, i64, f64)> = BTreeMap::new();
    for ev in events(paths, None, None)? {
        let Some(w) = ev.to_weight else { continue };
        let key = (ev.route, ev.segment);
        let at = (ev.ts_ms, ev.version);
        if newest.get(&key).is_none_or(|(t, v, _)| (*t, *v) <= at) {
            newest.insert(key, (at.0, at.1, w));
        }
    }
    Ok(newest.into_iter().map(|(k, (_, _, w))| (k, w)).collect())
}

/// The current stage of every route and segment with a recorded one (the
/// newest stage event over every file), by (route, segment).
pub fn stages(paths: &[PathBuf]) -> Result<BTreeMap<(String, String), String>> {
    let mut newest: BTreeMap<(String, String), (i64, i64, String)> = BTreeMap::new();
    for ev in events(paths, None, None)? {
        let Some(s) = ev.to_stage else { continue };
        let key = (ev.route, ev.segment);
        let at = (ev.ts_ms, ev.version);
        if newest.get(&key).is_none_or(|(t, v, _)| (*t, *v) <= at) {
            newest.insert(key, (at.0, at.1, s));
        }
    }
    Ok(newest.into_iter().map(|(k, (_, _, s))| (k, s)).collect())
}

/// Calls `each` for every exchange the filter selects, file by file, each
/// file in time order. Bodies included: this is `export`'s read.
pub fn each_exchange(
    paths: &[PathBuf],
    filter: &Filter,
    mut each: impl FnMut(ExchangeRow) -> std::io::Result<()>,
) -> Result<u64> {
    let mut n = 0;
    for path in paths {
        let conn = open_ro(path)?;
        let columns = exchange_columns(&conn).map_err(Error::sqlite(path))?;
        let sql = format!(
            "SELECT {columns} FROM exchanges
             WHERE ts >= ?1 AND (?2 IS NULL OR route = ?2) AND (?3 IS NULL OR segment = ?3)
               AND (?4 IS NULL OR verdict = ?4)
             ORDER BY ts, id"
        );
        let mut stmt = conn.prepare(&sql).map_err(Error::sqlite(path))?;
        let mut rows = stmt
            .query(params![
                filter.since_ms.unwrap_or(i64::MIN),
                filter.route,
                filter.segment,
                filter.verdict
            ])
            .map_err(Error::sqlite(path))?;
        while let Some(row) = rows.next().map_err(Error::sqlite(path))? {
            let ex = exchange_row(row).map_err(Error::sqlite(path))?;
            each(ex).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            n += 1;
        }
    }
    Ok(n)
}
