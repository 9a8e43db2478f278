//! `approvals` (docs/src/concepts/stages.md, stage `approve`): the candidate's answers that wait
//! for a person. Each row is self-contained (the request and both answers,
//! redacted like the exchange row), so a decision can be delivered and
//! exported after the exchange itself is purged.
//!
//! Inserted with the exchange row by the writer; decided and expired through
//! writer messages ([`super::Store::approvals`]); read on read-only connections.

use super::blob::Body;
use super::{Error, Record, Result, now_ms};
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::{Value, json};

/// Status of an approval.
pub const PENDING: &str = "pending";
pub const APPROVED: &str = "approved";
pub const REJECTED: &str = "rejected";
pub const EXPIRED: &str = "expired";
/// `decided_by` of an expiry.
pub const TTL: &str = "ttl";

/// The answers an approval keeps, taken before the storage policy
/// (`store.bodies`) may drop them from the exchange row.
#[derive(Debug, Clone, Default)]
pub struct NewApproval {
    /// The segment's metric label: `approvals_total{event="created"}` is
    /// counted by the writer once the row is committed, never for a row
    /// that was dropped.
    pub label: String,
    pub request_body: Option<Bytes>,
    pub incumbent_body: Option<Bytes>,
    pub candidate_body: Option<Bytes>,
}

/// A change the writer makes.
#[derive(Debug, Clone)]
pub enum Op {
    /// Approve or reject a pending approval; one created before
    /// `expires_before` (unix ms) has expired instead.
    Decide {
        id: i64,
        approve: bool,
        by: String,
        reason: String,
        expires_before: i64,
    },
    /// Expire the route's pending approvals created before `before` (unix ms).
    Expire { route: String, before: i64 },
}

/// What an [`Op`] did.
#[derive(Debug, Clone)]
pub enum Done {
    Decided(Box<Approval>),
    Expired(Vec<Expired>),
}

/// An approval an expiry sweep expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub id: i64,
    pub segment: String,
}

/// One row of `approvals`.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub id: i64,
    pub exchange_id: String,
    pub ts: i64,
    pub route: String,
    pub segment: String,
    pub status: String,
    pub decided_by: Option<String>,
    pub reason: String,
    pub decided_ts: Option<i64>,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub request_headers: Option<String>,
    pub request_body: Option<Vec<u8>>,
    pub incumbent_status: Option<u16>,
    pub incumbent_body: Option<Vec<u8>>,
    pub candidate_status: Option<u16>,
    pub candidate_body: Option<Vec<u8>>,
}

/// Which approvals to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub route: Option<String>,
    pub segment: Option<String>,
    pub status: Option<String>,
    pub since_ms: Option<i64>,
}

const COLUMNS: &str = "id, exchange_id, ts, route, segment, status, decided_by, reason,
    decided_ts, method, path, query, request_headers, request_body, incumbent_status,
    incumbent_body, candidate_status, candidate_body";

/// Inserts the approval of exchange `r` (with the row, in its transaction).
pub(crate) fn insert(conn: &Connection, r: &Record, a: &NewApproval) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO approvals (exchange_id, ts, route, segment, method, path, query,
            request_headers, request_body, incumbent_status, incumbent_body,
            candidate_status, candidate_body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        r.id,
        now_ms(),
        r.route,
        r.segment,
        r.method,
        r.path,
        r.query,
        r.request_headers,
        Body(a.request_body.as_ref()),
        r.incumbent_status,
        Body(a.incumbent_body.as_ref()),
        r.candidate_status,
        Body(a.candidate_body.as_ref()),
    ])?;
    Ok(())
}

/// Runs one [`Op`] on the writer's connection.
pub(crate) fn apply(conn: &Connection, op: &Op) -> Result<Done> {
    match op {
        Op::Decide {
            id,
            approve,
            by,
            reason,
            expires_before,
        } => {
            let tx = conn.unchecked_transaction().map_err(Error::on(conn))?;
            let Some(found) = get(&tx, *id)? else {
                return Err(Error::UnknownApproval { id: *id });
            };
            if found.status != PENDING {
                return Err(Error::NotPending {
                    id: *id,
                    status: found.status,
                });
            }
            let (status, by, reason) = if found.ts < *expires_before {
                (EXPIRED, TTL, "pending longer than approval_ttl")
            } else if *approve {
                (APPROVED, by.as_str(), reason.as_str())
            } else {
                (REJECTED, by.as_str(), reason.as_str())
            };
            tx.execute(
                "UPDATE approvals SET status = ?2, decided_by = ?3, reason = ?4, decided_ts = ?5
                 WHERE id = ?1",
                params![id, status, by, reason, now_ms()],
            )
            .map_err(Error::on(conn))?;
            let decided = get(&tx, *id)?.ok_or(Error::UnknownApproval { id: *id })?;
            tx.commit().map_err(Error::on(conn))?;
            if status == EXPIRED {
                return Err(Error::Expired { id: *id });
            }
            Ok(Done::Decided(Box::new(decided)))
        }
        Op::Expire { route, before } => {
            // One indexed statement (`approvals_status_ts`): no body is read.
            let mut stmt = conn.prepare_cached(EXPIRE).map_err(Error::on(conn))?;
            let expired = stmt
                .query_map(params![route, before, now_ms()], |r| {
                    Ok(Expired {
                        id: r.get(0)?,
                        segment: r.get(1)?,
                    })
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(Error::on(conn))?;
            Ok(Done::Expired(expired))
        }
    }
}

const EXPIRE: &str = "UPDATE approvals SET status = 'expired', decided_by = 'ttl',
        reason = 'pending longer than approval_ttl', decided_ts = ?3
    WHERE status = 'pending' AND ts < ?2 AND route = ?1
    RETURNING id, segment";

/// One approval by id.
pub fn get(conn: &Connection, id: i64) -> Result<Option<Approval>> {
    let sql = format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1");
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([id], approval).optional())
        .map_err(Error::on(conn))
}

/// The columns of a listing: no headers, query or body (those come one
/// approval at a time, from [`get`]); the row mapper sees them as NULL.
const SUMMARY: &str = "id, exchange_id, ts, route, segment, status, decided_by, reason,
    decided_ts, method, path, NULL, NULL, NULL, incumbent_status, NULL, candidate_status, NULL";

const WHERE: &str = "WHERE (?1 IS NULL OR route = ?1) AND (?2 IS NULL OR segment = ?2)
    AND (?3 IS NULL OR status = ?3) AND ts >= ?4 AND id > ?5";

/// At most `limit` approvals the filter selects with an id above `after`,
/// oldest first, without their request or answers: the API's page.
pub fn page(conn: &Connection, f: &Filter, after: i64, limit: usize) -> Result<Vec<Approval>> {
    let sql = format!("SELECT {SUMMARY} FROM approvals {WHERE} ORDER BY id LIMIT ?6");
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&sql).map_err(Error::on(conn))?;
    let rows = stmt
        .query_map(
            params![
                f.route,
                f.segment,
                f.status,
                f.since_ms.unwrap_or(i64::MIN),
                after,
                limit
            ],
            approval,
        )
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(Error::on(conn))?;
    Ok(rows)
}

/// Calls `each` with every approval the filter selects, oldest first, with
/// its request and answers, one row in memory at a time (`export`).
pub fn each<E: From<Error>>(
    conn: &Connection,
    f: &Filter,
    mut each: impl FnMut(Approval) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let sql = format!("SELECT {COLUMNS} FROM approvals {WHERE} ORDER BY id");
    let mut stmt = conn.prepare(&sql).map_err(Error::on(conn))?;
    let mut rows = stmt
        .query(params![
            f.route,
            f.segment,
            f.status,
            f.since_ms.unwrap_or(i64::MIN),
            i64::MIN
        ])
        .map_err(Error::on(conn))?;
    while let Some(row) = rows.next().map_err(Error::on(conn))? {
        each(approval(row).map_err(Error::on(conn))?)?;
    }
    Ok(())
}

fn approval(r: &Row<'_>) -> rusqlite::Result<Approval> {
    Ok(Approval {
        id: r.get(0)?,
        exchange_id: r.get(1)?,
        ts: r.get(2)?,
        route: r.get(3)?,
        segment: r.get(4)?,
        status: r.get(5)?,
        decided_by: r.get(6)?,
        reason: r.get(7)?,
        decided_ts: r.get(8)?,
        method: r.get(9)?,
        path: r.get(10)?,
        query: r.get(11)?,
        request_headers: r.get(12)?,
        request_body: blob(r, 13)?,
        incumbent_status: r.get(14)?,
        incumbent_body: blob(r, 15)?,
        candidate_status: r.get(16)?,
        candidate_body: blob(r, 17)?,
    })
}

/// A body column, TEXT or BLOB.
fn blob(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<Vec<u8>>> {
    use rusqlite::types::ValueRef;
    Ok(match r.get_ref(i)? {
        ValueRef::Null => None,
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(t.to_vec()),
        ValueRef::Integer(n) => Some(n.to_string().into_bytes()),
        ValueRef::Real(x) => Some(x.to_string().into_bytes()),
    })
}

impl Approval {
    /// The request as JSON: method, path, query, headers, body.
    pub fn request_json(&self) -> Value {
        let headers = (self.request_headers.as_deref())
            .and_then(|h| serde_json::from_str::<Value>(h).ok())
            .unwrap_or(Value::Null);
        json!({
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": headers,
            "body": body(self.request_body.as_deref()),
        })
    }

    /// The decision's fields, which every view of an approval starts with.
    fn decision(&self) -> serde_json::Map<String, Value> {
        serde_json::Map::from_iter([
            ("id".to_string(), json!(self.id)),
            ("exchange_id".to_string(), json!(self.exchange_id)),
            ("ts".to_string(), json!(self.ts)),
            ("route".to_string(), json!(self.route)),
            ("segment".to_string(), json!(self.segment)),
            ("status".to_string(), json!(self.status)),
            ("decided_by".to_string(), json!(self.decided_by)),
            ("reason".to_string(), json!(self.reason)),
            ("decided_ts".to_string(), json!(self.decided_ts)),
        ])
    }

    /// The approval as a listing shows it: the decision, the route and the
    /// answers' statuses, no request or answer content.
    pub fn summary_json(&self) -> Value {
        let mut v = self.decision();
        v.insert("method".into(), json!(self.method));
        v.insert("path".into(), json!(self.path));
        v.insert("incumbent_status".into(), json!(self.incumbent_status));
        v.insert("candidate_status".into(), json!(self.candidate_status));
        Value::Object(v)
    }

    /// The approval as `GET /api/v1/approvals/{id}` shows it and `export
    /// --approvals` writes it: the decision with the request and both answers.
    pub fn to_json(&self) -> Value {
        let mut v = self.decision();
        v.insert("request".into(), self.request_json());
        v.insert(
            "incumbent".into(),
            json!({"status": self.incumbent_status, "body": body(self.incumbent_body.as_deref())}),
        );
        v.insert(
            "candidate".into(),
            json!({"status": self.candidate_status, "body": body(self.candidate_body.as_deref())}),
        );
        Value::Object(v)
    }
}

/// A body as JSON when it parses, else as text.
pub fn body(b: Option<&[u8]>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => serde_json::from_slice(b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiry_sweep_is_one_statement_on_an_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::schema::migrate(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {EXPIRE}"))
            .unwrap()
            .query_map(params!["r", 0, 0], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|step| step.contains("USING INDEX approvals_")),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN")),
            "{plan:?}"
        );
    }
}
