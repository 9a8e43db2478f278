//! The approvals API (docs/src/concepts/stages.md): `GET /api/v1/approvals[?route&segment&status
//! &limit&cursor]` lists a page of them without content, `GET
//! /api/v1/approvals/{id}` shows one with the request and both answers;
//! `POST /api/v1/approvals/{id}` with `{"decision", "reason"}` approves or
//! rejects one. Every call here needs the token (they hold people's data).

use super::reply::{ACTOR_HEADER, Answer, Failure, count_param, ok, parse};
use super::wire;
use crate::admin::people::{self, Error as E};
use crate::proxy::Proxy;
use crate::segment;
use crate::store::{self, approvals};
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use serde_json::json;

/// Approvals a page holds without a `limit`...
const PAGE_DEFAULT: usize = 100;
/// ...and at most, whatever its `limit`.
pub const PAGE_MAX: usize = 1000;
/// The statuses a listing filters by.
const STATUSES: [&str; 4] = [
    approvals::PENDING,
    approvals::APPROVED,
    approvals::REJECTED,
    approvals::EXPIRED,
];

/// `GET /api/v1/approvals[?route&segment&status&limit&cursor]`: a page of
/// approvals, oldest first, without request or answer content, and the
/// `next_cursor` to pass for the next page (absent on the last).
pub(super) async fn list(proxy: &Proxy, parts: &Parts) -> Answer {
    let query = parts.uri.query().unwrap_or("");
    let limit = count_param(query, "limit")?
        .map_or(PAGE_DEFAULT, |n| usize::try_from(n).unwrap_or(usize::MAX))
        .clamp(1, PAGE_MAX);
    let after = count_param(query, "cursor")?.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let status = segment::query_param(query, "status");
    if let Some(s) = status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!(
                "no approval status {s:?} (statuses: {})",
                STATUSES.join(", ")
            ),
        ));
    }
    let filter = approvals::Filter {
        route: segment::query_param(query, "route"),
        segment: segment::query_param(query, "segment"),
        status,
        since_ms: None,
    };
    // One more than the page: whether there is a next one.
    let found = read(proxy, move |conn| {
        approvals::page(conn, &filter, after, limit + 1)
    })
    .await?;
    let next = (found.len() > limit).then(|| found[limit - 1].id.to_string());
    let list: Vec<_> = found.iter().take(limit).map(|a| a.summary_json()).collect();
    ok(
        StatusCode::OK,
        json!({ "approvals": list, "next_cursor": next }),
    )
}

/// `GET /api/v1/approvals/{id}`: one approval with the request and both answers.
pub(super) async fn one(proxy: &Proxy, id: &str) -> Answer {
    let id = parse_id(id)?;
    let found = read(proxy, move |conn| {
        Ok((approvals::get(conn, id)?, store::deliveries::get(conn, id)?))
    })
    .await?;
    match found {
        (Some(a), delivery) => {
            let mut approval = a.to_json();
            // An approved answer's way to deliver_url (none otherwise).
            approval["delivery"] = delivery.map_or(serde_json::Value::Null, |d| d.to_json());
            ok(StatusCode::OK, json!({ "approval": approval }))
        }
        (None, _) => Err(Failure(
            StatusCode::NOT_FOUND,
            store::Error::UnknownApproval { id }.to_string(),
        )),
    }
}

/// Runs `f` on a read-only connection on a blocking thread (a WAL snapshot:
/// it never waits on the writer).
async fn read<T: Send + 'static>(
    proxy: &Proxy,
    f: impl FnOnce(&rusqlite::Connection) -> store::Result<T> + Send + 'static,
) -> Result<T, Failure> {
    let path = proxy.store.path().to_path_buf();
    tokio::task::spawn_blocking(move || f(&store::read::open_ro(&path)?))
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn parse_id(id: &str) -> Result<i64, Failure> {
    id.parse().map_err(|_| {
        Failure(
            StatusCode::NOT_FOUND,
            format!("no approval {id:?} (ids are numbers)"),
        )
    })
}

pub(super) async fn decide(proxy: &Proxy, parts: &Parts, id: &str, bytes: Bytes) -> Answer {
    let body: wire::ApprovalDecision = parse(
        &bytes,
        r#"{"decision": "approve"|"reject", "reason": "..."}"#,
    )?;
    let id = parse_id(id)?;
    let by = match parts.headers.get(ACTOR_HEADER).map(|v| v.as_bytes()) {
        Some(b"cli") => "cli",
        _ => "api",
    };
    let reason = body.reason.unwrap_or_default();
    match people::decide(proxy, id, &body.decision, &reason, by).await {
        Ok(a) => ok(StatusCode::OK, json!({ "approval": a.to_json() })),
        Err(e @ (E::Decision(_) | E::NoReason | E::Empty)) => {
            Err(Failure(StatusCode::BAD_REQUEST, e.to_string()))
        }
        Err(e @ E::Store(store::Error::UnknownApproval { .. })) => {
            Err(Failure(StatusCode::NOT_FOUND, e.to_string()))
        }
        Err(e @ E::Store(store::Error::NotPending { .. } | store::Error::Expired { .. })) => {
            Err(Failure(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e) => Err(Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}
