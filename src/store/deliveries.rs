//! `deliveries` (docs/src/concepts/stages.md, stage `approve`): the durable outbox of approved
//! answers for `autonomy.deliver_url`. A row is written when an approval is
//! approved and retried (1 s doubling to 30 s) until it is accepted or the
//! approval's TTL has passed since the decision; each try is recorded
//! (`attempts`, `last_error`), so a restart or a long outage loses nothing
//! and `GET /api/v1/approvals/{id}` says where a delivery stands.

use super::{Error, Result, now_ms};
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

/// The first retry waits this long (ms), doubling to [`RETRY_MAX_MS`].
const RETRY_FIRST_MS: i64 = 1000;
const RETRY_MAX_MS: i64 = 30_000;

/// A change the writer makes.
#[derive(Debug, Clone)]
pub enum Op {
    /// Queue the answer of approval `approval_id` (once: a second is ignored).
    Enqueue {
        approval_id: i64,
        route: String,
        body: Bytes,
        expires_ts: i64,
    },
    /// One try of `approval_id`: `None` accepted, else why not.
    Tried {
        approval_id: i64,
        error: Option<String>,
    },
}

/// One row of `deliveries`.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub approval_id: i64,
    pub route: String,
    pub body: Vec<u8>,
    pub created_ts: i64,
    pub expires_ts: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub delivered_ts: Option<i64>,
}

const COLUMNS: &str =
    "approval_id, route, body, created_ts, expires_ts, attempts, last_error, delivered_ts";

/// Runs one [`Op`] on the writer's connection.
pub(crate) fn apply(conn: &Connection, op: &Op) -> Result<()> {
    let now = now_ms();
    match op {
        Op::Enqueue {
            approval_id,
            route,
            body,
            expires_ts,
        } => conn.execute(
            "INSERT INTO deliveries (approval_id, route, body, created_ts, expires_ts, next_ts)
             VALUES (?1, ?2, ?3, ?4, ?5, ?4) ON CONFLICT (approval_id) DO NOTHING",
            params![approval_id, route, body.as_ref(), now, expires_ts],
        ),
        Op::Tried { approval_id, error } => conn.execute(
            "UPDATE deliveries SET attempts = attempts + 1, last_error = ?2,
                 delivered_ts = CASE WHEN ?2 IS NULL THEN ?3 END,
                 next_ts = ?3 + min(?4 << min(attempts, 5), ?5)
             WHERE approval_id = ?1 AND delivered_ts IS NULL",
            params![approval_id, error, now, RETRY_FIRST_MS, RETRY_MAX_MS],
        ),
    }
    .map(|_| ())
    .map_err(Error::on(conn))
}

/// Deliveries due now: not delivered, not expired, their next try come;
/// oldest first, at most `limit`.
pub fn due(conn: &Connection, limit: usize) -> Result<Vec<Delivery>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM deliveries
         WHERE delivered_ts IS NULL AND expires_ts > ?1 AND next_ts <= ?1
         ORDER BY approval_id LIMIT ?2"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&sql).map_err(Error::on(conn))?;
    let rows = stmt
        .query_map(params![now_ms(), limit], delivery)
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(Error::on(conn))?;
    Ok(rows)
}

/// Deliveries not delivered and not expired (the pending gauge).
pub fn pending(conn: &Connection) -> Result<i64> {
    conn.query_row(
        "SELECT count(*) FROM deliveries WHERE delivered_ts IS NULL AND expires_ts > ?1",
        [now_ms()],
        |r| r.get(0),
    )
    .map_err(Error::on(conn))
}

/// The delivery of one approval, if it has one.
pub fn get(conn: &Connection, approval_id: i64) -> Result<Option<Delivery>> {
    let sql = format!("SELECT {COLUMNS} FROM deliveries WHERE approval_id = ?1");
    conn.query_row(&sql, [approval_id], delivery)
        .optional()
        .map_err(Error::on(conn))
}

fn delivery(r: &rusqlite::Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        approval_id: r.get(0)?,
        route: r.get(1)?,
        body: r.get(2)?,
        created_ts: r.get(3)?,
        expires_ts: r.get(4)?,
        attempts: r.get(5)?,
        last_error: r.get(6)?,
        delivered_ts: r.get(7)?,
    })
}

impl Delivery {
    /// Where the delivery stands, as `GET /api/v1/approvals/{id}` shows it.
    pub fn to_json(&self) -> Value {
        let status = match self.delivered_ts {
            Some(_) => "delivered",
            None if self.expires_ts <= now_ms() => "expired",
            None => "pending",
        };
        json!({
            "status": status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "created_ts": self.created_ts,
            "delivered_ts": self.delivered_ts,
            "expires_ts": self.expires_ts,
        })
    }
}
