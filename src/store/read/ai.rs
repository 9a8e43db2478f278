//! The report's AI figures (docs/src/guide/llm.md): time to first token, tokens and cost
//! of both sides and the text stage that decided, per route and segment (and
//! period); and the judge's verdicts paired with people's ratings.
//!
//! Reads only rows that carry AI figures, through their partial covering
//! index (`store::columns`), so routes without them cost nothing here. A file
//! without the columns (an older schema) reads as empty.

use super::{Error, Filter, Result, has_table, open_ro};
use crate::store::columns::LLM_ROWS;
use rusqlite::{Connection, params};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Sums and samples of one side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideStats {
    /// Every known time to first token, sorted ascending.
    pub ttft_ms: Vec<f64>,
    /// Rows with known usage, and their token sums.
    pub with_tokens: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Rows with a known cost, and its sum in dollars.
    pub with_cost: u64,
    pub cost: f64,
}

/// AI figures of one route and segment (and period).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AiStats {
    /// Rows with any AI figure.
    pub rows: u64,
    pub incumbent: SideStats,
    pub candidate: SideStats,
    /// Text stage → pairs it decided.
    pub decided_by: BTreeMap<String, u64>,
}

const SCAN: &str = "SELECT route, segment, ts, incumbent_ttft_ms, candidate_ttft_ms,
        incumbent_tokens_in, incumbent_tokens_out, candidate_tokens_in, candidate_tokens_out,
        incumbent_cost, candidate_cost, decided_by, rowid
    FROM exchanges
    WHERE ts >= ?1 AND (?2 IS NULL OR route = ?2) AND (?3 IS NULL OR segment = ?3)
      AND ";

/// `(route, segment, period start)`.
pub type Key = (String, String, Option<i64>);

/// AI figures of every file in `paths`, grouped like the report's lines.
pub fn scan(
    paths: &[PathBuf],
    filter: &Filter,
    period_ms: Option<i64>,
) -> Result<BTreeMap<Key, AiStats>> {
    let mut out: BTreeMap<Key, AiStats> = BTreeMap::new();
    for path in paths {
        let conn = open_ro(path)?;
        scan_one(&conn, path, filter, period_ms, &mut out).map_err(Error::sqlite(path))?;
    }
    for s in out.values_mut() {
        s.incumbent.ttft_ms.sort_unstable_by(f64::total_cmp);
        s.candidate.ttft_ms.sort_unstable_by(f64::total_cmp);
    }
    Ok(out)
}

fn scan_one(
    conn: &Connection,
    path: &std::path::Path,
    filter: &Filter,
    period_ms: Option<i64>,
    out: &mut BTreeMap<Key, AiStats>,
) -> rusqlite::Result<()> {
    if !has_column(conn, "exchanges", "decided_by")? {
        return Ok(());
    }
    let mut stmt = conn.prepare(&format!("{SCAN}{LLM_ROWS}"))?;
    let mut rows = stmt.query(params![
        filter.since_ms.unwrap_or(i64::MIN),
        filter.route,
        filter.segment
    ])?;
    let only = filter.rows.as_ref().map(|r| r.get(path));
    while let Some(r) = rows.next()? {
        if let Some(only) = only {
            let rowid: i64 = r.get(12)?;
            if !only.is_some_and(|set| set.contains(&rowid)) {
                continue;
            }
        }
        let ts: i64 = r.get(2)?;
        let key = (
            r.get(0)?,
            r.get(1)?,
            period_ms.map(|p| ts.div_euclid(p) * p),
        );
        let s = out.entry(key).or_default();
        s.rows += 1;
        for (side, ttft, tin, tout, cost) in [
            (&mut s.incumbent, 3, 5, 6, 9),
            (&mut s.candidate, 4, 7, 8, 10),
        ] {
            side.ttft_ms.extend(r.get::<_, Option<f64>>(ttft)?);
            let tokens: (Option<i64>, Option<i64>) = (r.get(tin)?, r.get(tout)?);
            if let (Some(i), Some(o)) = tokens {
                side.with_tokens += 1;
                side.tokens_in += i.max(0) as u64;
                side.tokens_out += o.max(0) as u64;
            }
            if let Some(c) = r.get::<_, Option<f64>>(cost)? {
                side.with_cost += 1;
                side.cost += c;
            }
        }
        if let Some(d) = r.get::<_, Option<String>>(11)? {
            *s.decided_by.entry(d).or_default() += 1;
        }
    }
    Ok(())
}

/// The judge's verdicts on one route against people's ratings of the same
/// exchanges (a rating > 0 agrees, ≤ 0 disagrees).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Calibration {
    /// The judge said agree, and so did the person.
    pub both_agree: u64,
    /// The judge said agree, the person did not.
    pub judge_only: u64,
    /// The person agreed, the judge did not.
    pub person_only: u64,
    pub both_disagree: u64,
}

const CALIBRATION: &str = "SELECT e.route, e.verdict = 'match', f.rating > 0, COUNT(*)
    FROM feedback f JOIN exchanges e ON e.id = f.exchange_id
    WHERE f.rating IS NOT NULL AND e.decided_by = 'judge' AND e.verdict IN ('match', 'mismatch')
      AND e.ts >= ?1 AND (?2 IS NULL OR e.route = ?2) AND (?3 IS NULL OR e.segment = ?3)
    GROUP BY 1, 2, 3";

/// Judge verdicts paired with feedback, per route, over every file.
pub fn calibration(paths: &[PathBuf], filter: &Filter) -> Result<BTreeMap<String, Calibration>> {
    let mut out: BTreeMap<String, Calibration> = BTreeMap::new();
    for path in paths {
        let conn = open_ro(path)?;
        let read = || -> rusqlite::Result<Vec<(String, bool, bool, i64)>> {
            if !has_table(&conn, "feedback")? || !has_column(&conn, "exchanges", "decided_by")? {
                return Ok(Vec::new());
            }
            let mut stmt = conn.prepare(CALIBRATION)?;
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
        for (route, judge, person, n) in read().map_err(Error::sqlite(path))? {
            let c = out.entry(route).or_default();
            let n = n.max(0) as u64;
            match (judge, person) {
                (true, true) => c.both_agree += n,
                (true, false) => c.judge_only += n,
                (false, true) => c.person_only += n,
                (false, false) => c.both_disagree += n,
            }
        }
    }
    Ok(out)
}

/// What the candidate's mirrored answers of `route` cost since `since_ms`
/// (the rows where the incumbent served), over one file; 0 when the file or
/// its columns are missing.
pub fn mirror_spend(path: &std::path::Path, route: &str, since_ms: i64) -> Result<f64> {
    if !path.exists() {
        return Ok(0.0);
    }
    let conn = open_ro(path)?;
    let read = || -> rusqlite::Result<f64> {
        if !has_column(&conn, "exchanges", "candidate_cost")? {
            return Ok(0.0);
        }
        conn.query_row(
            "SELECT COALESCE(SUM(candidate_cost), 0.0) FROM exchanges
             WHERE route = ?1 AND ts >= ?2 AND served_by = 'incumbent'",
            params![route, since_ms],
            |r| r.get(0),
        )
    };
    read().map_err(Error::sqlite(path))
}

pub(crate) fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt.query_map([], |r| r.get::<_, String>(1))?;
    for name in names {
        if name? == column {
            return Ok(true);
        }
    }
    Ok(false)
}
