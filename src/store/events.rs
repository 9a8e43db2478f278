//! Rollout history and feedback: the SQL. Writes run on the writer thread's
//! connection (see [`super::Store::append_event`]); reads on read-only ones.
//!
//! `rollout_events` is append-only (triggers refuse UPDATE and DELETE), so the
//! current weights are always derived from the history, never stored apart.

use super::now_ms;
use super::{Error, Result};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::Path;

/// One row of `rollout_events`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RolloutEvent {
    pub version: i64,
    pub ts_ms: i64,
    pub route: String,
    pub segment: String,
    pub from_weight: Option<f64>,
    pub to_weight: Option<f64>,
    /// `cli`, `api`, `config` or `guard`.
    pub actor: String,
    pub reason: String,
    /// A kill-switch change: `on` or `off`.
    pub mirror: Option<String>,
    /// A raise that overrode the promotion gate (`--force`).
    pub forced: bool,
    /// The external gates' results behind a raise.
    pub gates: Option<String>,
    /// The replica that made it (events made under `[fleet]`).
    pub replica: Option<String>,
    /// Its version in the fleet's PostgreSQL, when it has one.
    pub fleet_version: Option<i64>,
    /// A stage change (docs/src/concepts/stages.md): the stage before and after.
    pub from_stage: Option<String>,
    pub to_stage: Option<String>,
    /// What the change means: `lower`, `raise` or `set` (NULL before migration 8).
    pub intent: Option<String>,
}

/// An event to append; the database assigns its version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewEvent {
    pub ts_ms: i64,
    pub route: String,
    pub segment: String,
    pub from_weight: Option<f64>,
    pub to_weight: Option<f64>,
    pub actor: String,
    pub reason: String,
    pub mirror: Option<String>,
    pub forced: bool,
    pub gates: Option<String>,
    pub replica: Option<String>,
    pub fleet_version: Option<i64>,
    pub from_stage: Option<String>,
    pub to_stage: Option<String>,
    pub intent: Option<String>,
}

/// A rating to record (also the body of `POST /api/v1/feedback`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFeedback {
    pub exchange_id: String,
    /// Optional when `reversed` is true.
    #[serde(default, deserialize_with = "whole_number")]
    pub rating: Option<i64>,
    #[serde(default)]
    pub comment: String,
    /// A person reversed the answer the candidate gave (docs/src/concepts/stages.md, `notify`).
    #[serde(default)]
    pub reversed: bool,
    /// Who rates: one exchange counts once per rater (a later rating
    /// replaces the earlier). The admin API defaults it to the caller
    /// (`client:<ip>`); at most [`MAX_RATER`] bytes.
    #[serde(default)]
    pub rater: Option<String>,
}

/// A whole number, also when written as one with a zero fraction (`1.0`:
/// Python's `json.dumps(1.0)`, an integer to JSON Schema); `1.5` is refused.
fn whole_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<i64>, D::Error> {
    use serde::Deserialize;
    use serde::de::Error as _;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => {
            Ok(Some(f as i64))
        }
        _ => Err(D::Error::custom(format!(
            "rating {n} is not a whole number between {} and {}",
            i64::MIN,
            i64::MAX
        ))),
    }
}

/// The longest `rater`.
pub const MAX_RATER: usize = 256;

/// The exchange a rating was recorded for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rated {
    pub route: String,
    /// The raw segment value.
    pub segment: String,
    pub served_by: String,
    /// The earlier rating by the same rater this one replaced:
    /// `(rating, reversed)`.
    pub replaced: Option<(Option<i64>, bool)>,
}

/// Opens (creating and migrating) the database for writing: the writer
/// thread's connection, and tests that write fixtures.
pub fn open(path: &Path) -> Result<Connection> {
    super::open_rw(path)
}

/// Appends an event and returns its version.
pub fn append(conn: &Connection, ev: &NewEvent) -> Result<i64> {
    conn.prepare_cached(
        "INSERT INTO rollout_events
            (ts, route, segment, from_weight, to_weight, actor, reason, mirror, forced, gates,
             replica, fleet_version, from_stage, to_stage, intent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            ev.ts_ms,
            ev.route,
            ev.segment,
            ev.from_weight,
            ev.to_weight,
            ev.actor,
            ev.reason,
            ev.mirror,
            ev.forced,
            ev.gates,
            ev.replica,
            ev.fleet_version,
            ev.from_stage,
            ev.to_stage,
            ev.intent,
        ])
    })
    .map_err(Error::on(conn))?;
    Ok(conn.last_insert_rowid())
}

/// Appends events in one transaction (all or none) and returns their versions.
pub fn append_all(conn: &Connection, events: &[NewEvent]) -> Result<Vec<i64>> {
    let tx = conn.unchecked_transaction().map_err(Error::on(conn))?;
    let versions = events
        .iter()
        .map(|ev| append(&tx, ev))
        .collect::<Result<Vec<i64>>>()?;
    tx.commit().map_err(Error::on(conn))?;
    Ok(versions)
}

/// The last `limit` events (of one route, or of all), oldest first.
pub fn list(conn: &Connection, route: Option<&str>, limit: usize) -> Result<Vec<RolloutEvent>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = "SELECT * FROM (
            SELECT version, ts, route, segment, from_weight, to_weight, actor, reason, mirror,
                   forced, gates, replica, fleet_version, from_stage, to_stage, intent
            FROM rollout_events WHERE ?1 IS NULL OR route = ?1
            ORDER BY version DESC LIMIT ?2
        ) ORDER BY version";
    let mut stmt = conn.prepare_cached(sql).map_err(Error::on(conn))?;
    let rows = stmt
        .query_map(params![route, limit], event)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(Error::on(conn))?;
    Ok(rows)
}

fn event(r: &Row<'_>) -> rusqlite::Result<RolloutEvent> {
    Ok(RolloutEvent {
        version: r.get(0)?,
        ts_ms: r.get(1)?,
        route: r.get(2)?,
        segment: r.get(3)?,
        from_weight: r.get(4)?,
        to_weight: r.get(5)?,
        actor: r.get(6)?,
        reason: r.get(7)?,
        mirror: r.get(8)?,
        forced: r.get(9)?,
        gates: r.get(10)?,
        replica: r.get(11)?,
        fleet_version: r.get(12)?,
        from_stage: r.get(13)?,
        to_stage: r.get(14)?,
        intent: r.get(15)?,
    })
}

/// Per route, the newest fleet version this file has applied or pushed.
///
/// Only the unbroken run from version 1 counts: a version this replica
/// pushed can be newer than events of other replicas it has not applied
/// yet (it pushed while partitioned), and catching up from past them would
/// skip them for good.
pub fn fleet_applied(conn: &Connection) -> Result<Vec<(String, i64)>> {
    let sql = "SELECT DISTINCT route, v FROM (
            SELECT route, fleet_version AS v FROM rollout_events WHERE fleet_version IS NOT NULL
            UNION ALL
            SELECT e.route, p.fleet_version FROM fleet_pushed p
            JOIN rollout_events e ON e.version = p.local_version
        ) ORDER BY route, v";
    let mut stmt = conn.prepare_cached(sql).map_err(Error::on(conn))?;
    let known = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(Error::on(conn))?;
    let mut applied: Vec<(String, i64)> = Vec::new();
    for (route, v) in known {
        match applied.last_mut() {
            Some((r, upto)) if *r == route => {
                if v == *upto + 1 {
                    *upto = v;
                }
            }
            _ => applied.push((route, i64::from(v == 1))),
        }
    }
    Ok(applied)
}

/// Whether fleet version `version` of `route` is already here (applied from
/// the fleet, or made here and pushed).
pub fn has_fleet_version(conn: &Connection, route: &str, version: i64) -> Result<bool> {
    let sql = "SELECT EXISTS (
            SELECT 1 FROM rollout_events WHERE route = ?1 AND fleet_version = ?2
            UNION ALL
            SELECT 1 FROM fleet_pushed p JOIN rollout_events e ON e.version = p.local_version
            WHERE e.route = ?1 AND p.fleet_version = ?2)";
    conn.query_row(sql, params![route, version], |r| r.get(0))
        .map_err(Error::on(conn))
}

/// Events made here under `[fleet]` that PostgreSQL does not have yet
/// (local lowerings while disconnected), oldest first.
pub fn unpushed(conn: &Connection) -> Result<Vec<RolloutEvent>> {
    let sql = "SELECT version, ts, route, segment, from_weight, to_weight, actor, reason, mirror,
                   forced, gates, replica, fleet_version, from_stage, to_stage, intent
            FROM rollout_events
            WHERE replica IS NOT NULL AND fleet_version IS NULL
              AND version NOT IN (SELECT local_version FROM fleet_pushed)
            ORDER BY version";
    let mut stmt = conn.prepare_cached(sql).map_err(Error::on(conn))?;
    let rows = stmt
        .query_map([], event)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(Error::on(conn))?;
    Ok(rows)
}

/// Notes that local event `local` is version `fleet` in PostgreSQL.
pub fn mark_pushed(conn: &Connection, local: i64, fleet: i64) -> Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO fleet_pushed (local_version, fleet_version) VALUES (?1, ?2)",
        params![local, fleet],
    )
    .map_err(Error::on(conn))?;
    Ok(())
}

/// The current weight of every route and segment that has one: the
/// `to_weight` of its latest event that set a weight (kill-switch events carry
/// none and are passed over). Sorted by route, then segment.
pub fn latest_weights(conn: &Connection) -> Result<Vec<(String, String, f64)>> {
    latest(conn, "to_weight")
}

/// The current stage of every route and segment that has one recorded: the
/// `to_stage` of its latest stage event. Sorted by route, then segment.
pub fn latest_stages(conn: &Connection) -> Result<Vec<(String, String, String)>> {
    latest(conn, "to_stage")
}

/// Per route and segment, `column` of its latest event that sets it.
fn latest<T: rusqlite::types::FromSql>(
    conn: &Connection,
    column: &'static str,
) -> Result<Vec<(String, String, T)>> {
    let sql = format!(
        "SELECT e.route, e.segment, e.{column} FROM rollout_events e
        JOIN (SELECT MAX(version) AS version FROM rollout_events
              WHERE {column} IS NOT NULL GROUP BY route, segment) l
          ON e.version = l.version
        ORDER BY e.route, e.segment"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(Error::on(conn))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(Error::on(conn))?;
    Ok(rows)
}

/// Records a rating (or a reversal) for an exchange, replacing the same
/// rater's earlier one (`feedback` holds at most one row per exchange and
/// rater: the latest); an unknown exchange id is an error. Returns the
/// exchange's route, segment and who served it, and what was replaced.
pub fn insert_feedback(conn: &Connection, feedback: &NewFeedback) -> Result<Rated> {
    let NewFeedback {
        exchange_id,
        rating,
        comment,
        reversed,
        rater,
    } = feedback;
    let rater = rater.as_deref().unwrap_or("");
    let known = conn
        .query_row(
            "SELECT route, segment, served_by FROM exchanges WHERE id = ?1",
            [exchange_id],
            |r| {
                Ok(Rated {
                    route: r.get(0)?,
                    segment: r.get(1)?,
                    served_by: r.get(2)?,
                    replaced: None,
                })
            },
        )
        .optional()
        .map_err(Error::on(conn))?;
    let Some(mut rated) = known else {
        return Err(Error::UnknownExchange {
            path: super::conn_path(conn),
            id: exchange_id.to_string(),
        });
    };
    let tx = conn.unchecked_transaction().map_err(Error::on(conn))?;
    rated.replaced = tx
        .query_row(
            "SELECT rating, reversed FROM feedback WHERE exchange_id = ?1 AND rater = ?2",
            params![exchange_id, rater],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(Error::on(conn))?;
    tx.execute(
        "INSERT INTO feedback (exchange_id, ts, rating, comment, reversed, rater)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (exchange_id, rater) DO UPDATE SET ts = excluded.ts,
             rating = excluded.rating, comment = excluded.comment, reversed = excluded.reversed",
        params![exchange_id, now_ms(), rating, comment, reversed, rater],
    )
    .map_err(Error::on(conn))?;
    tx.commit().map_err(Error::on(conn))?;
    Ok(rated)
}
