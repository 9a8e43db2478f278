//! The approvals API (SPEC §14): `GET /api/v1/approvals[?route&segment&status]`
//! lists them; `POST /api/v1/approvals/{id}` with `{"decision", "reason"}`
//! approves or rejects one (a mutation: token and JSON as the others).

use super::api::{ACTOR_HEADER, Answer, Failure, ok, parse};
use super::wire;
use crate::admin::people::{self, Error as E};
use crate::proxy::Proxy;
use crate::segment;
use crate::store::{self, approvals};
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use serde_json::json;

/// Approvals listed at most per call, newest kept.
const LIST_MAX: usize = 1000;

pub(super) async fn list(proxy: &Proxy, parts: &Parts) -> Answer {
    let query = parts.uri.query().unwrap_or("");
    let filter = approvals::Filter {
        route: segment::query_param(query, "route"),
        segment: segment::query_param(query, "segment"),
        status: segment::query_param(query, "status"),
        since_ms: None,
    };
    let path = proxy.store.path().to_path_buf();
    let found = tokio::task::spawn_blocking(move || {
        let conn = store::read::open_ro(&path)?;
        approvals::list(&conn, &filter)
    })
    .await
    .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let skip = found.len().saturating_sub(LIST_MAX);
    let list: Vec<_> = found.iter().skip(skip).map(|a| a.to_json()).collect();
    ok(StatusCode::OK, json!({ "approvals": list }))
}

pub(super) async fn decide(proxy: &Proxy, parts: &Parts, id: &str, bytes: Bytes) -> Answer {
    let body: wire::ApprovalDecision = parse(
        &bytes,
        r#"{"decision": "approve"|"reject", "reason": "..."}"#,
    )?;
    let id: i64 = id.parse().map_err(|_| {
        Failure(
            StatusCode::NOT_FOUND,
            format!("no approval {id:?} (ids are numbers)"),
        )
    })?;
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
