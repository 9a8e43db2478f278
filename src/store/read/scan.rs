//! The report's one pass over the exchange log (and the `mirror_skips`
//! counts of exchanges without a row), merged over replicas.
//!
//! The query reads only the covering index `exchanges_route_segment_ts
//! (route, segment, ts, verdict, incumbent_ms, candidate_ms, skip_reason,
//! safety, diff)`: never a table row and its bodies. Rows arrive ordered by
//! route, segment and ts, so a group (and an hour of the time series) is only
//! looked up in a map when it changes, and no string is allocated per row
//! unless the row carries a diff, a skip reason or a safety hit.

use super::{Error, Result, open_ro};
use rusqlite::{Row, params};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

/// Rowids per database file: the exchanges of a slice (`report --slice`).
pub type RowSet = HashMap<PathBuf, HashSet<i64>>;

/// Which exchanges a report (or an export) looks at.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub route: Option<String>,
    pub segment: Option<String>,
    /// Only exchanges at or after this unix ms.
    pub since_ms: Option<i64>,
    /// Only this verdict (export).
    pub verdict: Option<String>,
    /// A replay's results (`replays` under this label) instead of live traffic.
    pub label: Option<String>,
    /// Only these exchanges (a slice, `report --slice`); skipped mirrors,
    /// which have no row, are then left out.
    pub rows: Option<std::sync::Arc<RowSet>>,
}

/// Counts, latencies, diffs and skips of one route and segment (and period,
/// when grouped by time).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SegmentStats {
    pub route: String,
    pub segment: String,
    /// Start (unix ms, UTC) of the hour or day, when grouped by time.
    pub period: Option<i64>,
    /// Every exchange, whatever its verdict: rows plus counted skips.
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
    /// Why exchanges were skipped (mirror skip reasons, judge failures, ...).
    pub skip_reasons: BTreeMap<String, u64>,
    /// Candidate bodies that hit a safety deny pattern, by pattern.
    pub safety: BTreeMap<String, u64>,
    /// How often each JSON pointer differed.
    pub diffs: HashMap<String, u64>,
    /// The newest row where each pointer differed: an example to `show`.
    pub diff_examples: HashMap<String, RowRef>,
}

/// A row of one of the scanned files: the file's index and its rowid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowRef {
    pub db: usize,
    pub rowid: i64,
}

impl SegmentStats {
    /// Comparisons that reached a verdict on content: matches + mismatches.
    pub fn decided(&self) -> u64 {
        self.matches + self.mismatches
    }

    pub fn safety_hits(&self) -> u64 {
        self.safety.values().sum()
    }

    fn merge(&mut self, s: SegmentStats) {
        self.samples += s.samples;
        self.matches += s.matches;
        self.mismatches += s.mismatches;
        self.candidate_errors += s.candidate_errors;
        self.incumbent_errors += s.incumbent_errors;
        self.skipped += s.skipped;
        self.incumbent_ms.extend(s.incumbent_ms);
        self.candidate_ms.extend(s.candidate_ms);
        for (k, n) in s.skip_reasons {
            *self.skip_reasons.entry(k).or_default() += n;
        }
        for (k, n) in s.safety {
            *self.safety.entry(k).or_default() += n;
        }
        for (k, n) in s.diffs {
            *self.diffs.entry(k).or_default() += n;
        }
        for (k, r) in s.diff_examples {
            self.diff_examples.entry(k).or_insert(r);
        }
    }
}

/// Agreement of one route and segment in one time bucket (charts over time).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Point {
    pub matches: u64,
    pub decided: u64,
    pub samples: u64,
}

/// What one pass yields.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Sorted by route, segment, period.
    pub groups: Vec<SegmentStats>,
    /// (route, segment) → bucket start (unix ms) → counts.
    pub series: BTreeMap<(String, String), BTreeMap<i64, Point>>,
    /// The oldest and newest exchange seen.
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
}

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// The series bucket for a time range: the first of one minute, five, a
/// quarter hour, an hour, six hours or a day that gives at most 240 points.
pub fn series_bucket(first: i64, last: i64) -> i64 {
    let span = (last - first).max(0);
    [60_000, 300_000, 900_000, HOUR_MS, 6 * HOUR_MS]
        .into_iter()
        .find(|b| span / b <= 240)
        .unwrap_or(DAY_MS)
}

// The ORDER BY makes SQLite walk the covering index rather than the `ts` index
// plus a lookup of every table row. `?n IS NULL OR ...` keeps one statement
// for every combination of filters.
const SCAN: &str = "SELECT route, segment, ts, verdict, incumbent_ms, candidate_ms,
        skip_reason, safety, diff, rowid
    FROM exchanges
    WHERE ts >= ?1 AND (?2 IS NULL OR route = ?2) AND (?3 IS NULL OR segment = ?3)
    ORDER BY route, segment, ts";

/// A replay's rows in the same shape: its verdicts and candidate latencies
/// beside the logged exchange's route, time and incumbent latency.
const SCAN_REPLAY: &str = "SELECT e.route, r.segment, e.ts, r.verdict, e.incumbent_ms,
        r.candidate_ms, NULL, NULL, r.diff, e.rowid
    FROM replays r JOIN exchanges e ON e.id = r.exchange_id
    WHERE r.label = ?4 AND e.ts >= ?1 AND (?2 IS NULL OR e.route = ?2)
        AND (?3 IS NULL OR r.segment = ?3)
    ORDER BY e.route, r.segment, e.ts";

type Key = (String, String, Option<i64>);

/// One pass over every file in `paths`; groups by route and segment, and by
/// periods of `period_ms` (UTC-aligned) when given. The series over time uses
/// buckets of `series_ms`.
pub fn scan(
    paths: &[PathBuf],
    filter: &Filter,
    period_ms: Option<i64>,
    series_ms: i64,
) -> Result<Scan> {
    let mut merged: BTreeMap<Key, SegmentStats> = BTreeMap::new();
    let mut out = Scan::default();
    for (db, path) in paths.iter().enumerate() {
        let conn = open_ro(path)?;
        let (sql, label) = match &filter.label {
            Some(l) => (SCAN_REPLAY, l.as_str()),
            None => (SCAN, ""),
        };
        let mut stmt = conn.prepare(sql).map_err(Error::sqlite(path))?;
        let since = filter.since_ms.unwrap_or(i64::MIN);
        let mut rows = match &filter.label {
            Some(_) => stmt.query(params![since, filter.route, filter.segment, label]),
            None => stmt.query(params![since, filter.route, filter.segment]),
        }
        .map_err(Error::sqlite(path))?;
        let mut state = State {
            db,
            period_ms,
            series_ms: series_ms.max(1),
            cur: None,
            hour: None,
        };
        let only = filter.rows.as_ref().map(|r| r.get(path));
        while let Some(row) = rows.next().map_err(Error::sqlite(path))? {
            if let Some(only) = only {
                let rowid: i64 = row.get(9).map_err(Error::sqlite(path))?;
                if !only.is_some_and(|set| set.contains(&rowid)) {
                    continue;
                }
            }
            state
                .row(row, &mut merged, &mut out)
                .map_err(Error::sqlite(path))?;
        }
        state.finish(&mut merged, &mut out);
        if filter.label.is_some() || filter.rows.is_some() {
            continue; // a replay skips nothing; a skip has no attributes
        }
        add_skips(
            &conn,
            filter,
            period_ms,
            series_ms.max(1),
            &mut merged,
            &mut out,
        )
        .map_err(Error::sqlite(path))?;
    }
    out.groups = merged.into_values().collect();
    for s in &mut out.groups {
        s.incumbent_ms.sort_unstable_by(f64::total_cmp);
        s.candidate_ms.sort_unstable_by(f64::total_cmp);
    }
    Ok(out)
}

/// The group and the series bucket being filled.
struct State {
    /// Index of the file being read.
    db: usize,
    period_ms: Option<i64>,
    series_ms: i64,
    cur: Option<SegmentStats>,
    hour: Option<(i64, Point)>,
}

impl State {
    fn row(
        &mut self,
        row: &Row<'_>,
        merged: &mut BTreeMap<Key, SegmentStats>,
        out: &mut Scan,
    ) -> rusqlite::Result<()> {
        let route = row.get_ref(0)?.as_str()?;
        let segment = row.get_ref(1)?.as_str()?;
        let ts: i64 = row.get(2)?;
        let period = self.period_ms.map(|p| ts.div_euclid(p) * p);
        let same_segment = self
            .cur
            .as_ref()
            .is_some_and(|c| c.route == route && c.segment == segment);
        let hour_start = ts.div_euclid(self.series_ms) * self.series_ms;
        if !same_segment || self.hour.is_some_and(|(h, _)| h != hour_start) {
            self.flush_hour(out);
        }
        if !same_segment || self.cur.as_ref().is_some_and(|c| c.period != period) {
            if let Some(done) = self.cur.take() {
                merge_into(merged, done);
            }
            self.cur = Some(SegmentStats {
                route: route.to_string(),
                segment: segment.to_string(),
                period,
                ..SegmentStats::default()
            });
        }
        out.first_ts = Some(out.first_ts.map_or(ts, |f| f.min(ts)));
        out.last_ts = Some(out.last_ts.map_or(ts, |l| l.max(ts)));
        let (_, hour) = self.hour.get_or_insert((hour_start, Point::default()));
        let Some(s) = self.cur.as_mut() else {
            return Ok(());
        };
        s.samples += 1;
        hour.samples += 1;
        match row.get_ref(3)?.as_bytes()? {
            b"match" => {
                s.matches += 1;
                hour.matches += 1;
                hour.decided += 1;
            }
            b"mismatch" => {
                s.mismatches += 1;
                hour.decided += 1;
            }
            b"candidate_error" => s.candidate_errors += 1,
            b"incumbent_error" => s.incumbent_errors += 1,
            // `skipped` and anything a newer version might write.
            _ => s.skipped += 1,
        }
        if let Some(ms) = row.get_ref(4)?.as_f64_or_null()? {
            s.incumbent_ms.push(ms);
        }
        if let Some(ms) = row.get_ref(5)?.as_f64_or_null()? {
            s.candidate_ms.push(ms);
        }
        if let Some(reason) = row.get_ref(6)?.as_str_or_null()? {
            bump(&mut s.skip_reasons, reason);
        }
        if let Some(pattern) = row.get_ref(7)?.as_str_or_null()? {
            bump(&mut s.safety, pattern);
        }
        let diff = row.get_ref(8)?.as_bytes_or_null()?.unwrap_or(b"[]");
        if diff != b"[]"
            && let Ok(pointers) = serde_json::from_slice::<Vec<&str>>(diff)
        {
            let example = RowRef {
                db: self.db,
                rowid: row.get(9)?,
            };
            for p in pointers {
                match s.diffs.get_mut(p) {
                    Some(n) => *n += 1,
                    None => {
                        s.diffs.insert(p.to_string(), 1);
                    }
                }
                // Rows come in time order: the newest example wins.
                match s.diff_examples.get_mut(p) {
                    Some(r) => *r = example,
                    None => {
                        s.diff_examples.insert(p.to_string(), example);
                    }
                }
            }
        }
        Ok(())
    }

    fn flush_hour(&mut self, out: &mut Scan) {
        let (Some((start, hour)), Some(cur)) = (self.hour.take(), self.cur.as_ref()) else {
            return;
        };
        let key = (cur.route.clone(), cur.segment.clone());
        let slot = out.series.entry(key).or_default().entry(start).or_default();
        slot.matches += hour.matches;
        slot.decided += hour.decided;
        slot.samples += hour.samples;
    }

    fn finish(&mut self, merged: &mut BTreeMap<Key, SegmentStats>, out: &mut Scan) {
        self.flush_hour(out);
        if let Some(done) = self.cur.take() {
            merge_into(merged, done);
        }
    }
}

// Skip counts are per minute: `since` takes in the whole minute it falls in.
const SKIPS: &str = "SELECT route, segment, minute, reason, count FROM mirror_skips
    WHERE minute >= ?1 AND (?2 IS NULL OR route = ?2) AND (?3 IS NULL OR segment = ?3)";

/// Adds the skipped mirrors that have no row (`mirror_skips`) to the groups
/// and the series: they count as samples that were not compared.
fn add_skips(
    conn: &rusqlite::Connection,
    filter: &Filter,
    period_ms: Option<i64>,
    series_ms: i64,
    merged: &mut BTreeMap<Key, SegmentStats>,
    out: &mut Scan,
) -> rusqlite::Result<()> {
    if !super::has_table(conn, "mirror_skips")? {
        return Ok(());
    }
    let since = filter
        .since_ms
        .map_or(i64::MIN, crate::store::skips::minute_of);
    let mut stmt = conn.prepare(SKIPS)?;
    let mut rows = stmt.query(params![since, filter.route, filter.segment])?;
    while let Some(row) = rows.next()? {
        let route: String = row.get(0)?;
        let segment: String = row.get(1)?;
        let minute: i64 = row.get(2)?;
        let reason: String = row.get(3)?;
        let count = u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0);
        out.first_ts = Some(out.first_ts.map_or(minute, |f| f.min(minute)));
        out.last_ts = Some(out.last_ts.map_or(minute, |l| l.max(minute)));
        let bucket = minute.div_euclid(series_ms) * series_ms;
        out.series
            .entry((route.clone(), segment.clone()))
            .or_default()
            .entry(bucket)
            .or_default()
            .samples += count;
        merge_into(
            merged,
            SegmentStats {
                route,
                segment,
                period: period_ms.map(|p| minute.div_euclid(p) * p),
                samples: count,
                skipped: count,
                skip_reasons: BTreeMap::from([(reason, count)]),
                ..SegmentStats::default()
            },
        );
    }
    Ok(())
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
    }
}

fn merge_into(merged: &mut BTreeMap<Key, SegmentStats>, s: SegmentStats) {
    let key = (s.route.clone(), s.segment.clone(), s.period);
    match merged.get_mut(&key) {
        Some(m) => m.merge(s),
        None => {
            merged.insert(key, s);
        }
    }
}
