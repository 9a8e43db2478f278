//! What people say back (docs/src/concepts/stages.md): feedback (ratings and reversals) and
//! approval decisions, recorded, counted, and handed to the stage's criteria
//! and the weight's guard. The admin API and the demo both come through here.

use crate::autonomy::evidence::Event;
use crate::proxy::Proxy;
use crate::segment;
use crate::store::{self, approvals, events};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("feedback needs a \"rating\", or \"reversed\": true")]
    Empty,
    #[error("decision must be \"approve\" or \"reject\", not {0:?}")]
    Decision(String),
    #[error("a reason is required: it goes into the audit trail")]
    NoReason,
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// Records feedback on an exchange, then tells the rollout: a rating feeds
/// satisfaction, a reversal (of an answer the candidate served) the reversal rate.
pub async fn feedback(proxy: &Proxy, fb: events::NewFeedback) -> Result<events::Rated, Error> {
    if fb.rating.is_none() && !fb.reversed {
        return Err(Error::Empty);
    }
    let (rating, reversed) = (fb.rating, fb.reversed);
    let rated = proxy.store.add_feedback(fb).await?;
    let rt = proxy.runtime.load();
    let Some(route) = rt.config.routes.iter().find(|r| r.name == rated.route) else {
        return Ok(rated);
    };
    let label = segment::label(route.segment.as_ref(), &rated.segment);
    let m = &proxy.metrics;
    if rating.is_some() {
        m.record_feedback(&route.name, label, "rating");
    }
    let reversed = reversed && rated.served_by == "candidate";
    if reversed {
        m.record_feedback(&route.name, label, "reversal");
    }
    // Each rater's verdict on an exchange counts once: the store keeps the
    // latest, and the evidence counts only what this one adds (a first
    // rating, a first reversal), so a retrying client or one person's
    // repeated POSTs cannot move a stage or a weight.
    let (had_rating, had_reversal) = rated
        .replaced
        .map_or((false, false), |(r, rev)| (r.is_some(), rev));
    let new_rating = rating.filter(|_| !had_rating);
    let new_reversal = reversed && !had_reversal;
    proxy
        .rollout
        .feedback(route, label, new_rating, new_reversal, m)
        .await;
    Ok(rated)
}

/// Approves or rejects a pending approval; an approved answer is queued for
/// `autonomy.deliver_url`. One pending longer than `approval_ttl` expires instead.
pub async fn decide(
    proxy: &Proxy,
    id: i64,
    decision: &str,
    reason: &str,
    by: &str,
) -> Result<approvals::Approval, Error> {
    let approve = match decision {
        "approve" => true,
        "reject" => false,
        other => return Err(Error::Decision(other.to_string())),
    };
    if reason.trim().is_empty() {
        return Err(Error::NoReason);
    }
    let path = proxy.store.path().to_path_buf();
    let closed = store::Error::Closed { path: path.clone() };
    let found = tokio::task::spawn_blocking(move || {
        let conn = store::read::open_ro(&path)?;
        approvals::get(&conn, id)
    })
    .await
    .map_err(|_| closed)??
    .ok_or(store::Error::UnknownApproval { id })?;
    let rt = proxy.runtime.load();
    let route = rt.config.routes.iter().find(|r| r.name == found.route);
    let ttl = route.map_or(std::time::Duration::from_secs(86_400), |r| {
        r.autonomy.approval_ttl
    });
    let expires_before =
        store::now_ms().saturating_sub(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
    let op = approvals::Op::Decide {
        id,
        approve,
        by: by.to_string(),
        reason: reason.to_string(),
        expires_before,
    };
    let decided = match proxy.store.approvals(op).await {
        Ok(approvals::Done::Decided(a)) => *a,
        Ok(approvals::Done::Expired(_)) => return Err(store::Error::UnknownApproval { id }.into()),
        Err(e @ store::Error::Expired { .. }) => {
            if let Some(r) = route {
                let label = segment::label(r.segment.as_ref(), &found.segment);
                proxy.metrics.record_approval(&r.name, label, "expired");
            }
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let Some(route) = route else {
        return Ok(decided);
    };
    let label = segment::label(route.segment.as_ref(), &decided.segment);
    let m = &proxy.metrics;
    m.record_approval(
        &route.name,
        label,
        if approve { "approved" } else { "rejected" },
    );
    if approve && route.autonomy.deliver.is_some() {
        let body = json!({
            "approval_id": decided.id,
            "exchange_id": decided.exchange_id,
            "route": decided.route,
            "segment": decided.segment,
            "request": decided.request_json(),
            "answer": {
                "status": decided.candidate_status,
                "body": approvals::body(decided.candidate_body.as_deref()),
            },
            "decided_by": decided.decided_by,
            "reason": decided.reason,
        });
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let ttl = route.autonomy.approval_ttl;
        proxy
            .outbox
            .deliver(&route.name, decided.id, bytes.into(), ttl)
            .await;
    }
    proxy
        .rollout
        .observe_stage(
            route,
            label,
            Event::Decided { approved: approve },
            std::time::Instant::now(),
            m,
        )
        .await;
    Ok(decided)
}

/// Expires every route's approvals pending longer than its `approval_ttl`;
/// runs every second until `stop`.
pub async fn expire_loop(proxy: std::sync::Arc<Proxy>, stop: impl Future<Output = ()>) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => {}
        }
        let rt = proxy.runtime.load();
        let routes = rt.config.routes.iter();
        for route in routes.filter(|r| r.candidate.is_some() && r.autonomy.configured) {
            let ttl = i64::try_from(route.autonomy.approval_ttl.as_millis()).unwrap_or(i64::MAX);
            let op = approvals::Op::Expire {
                route: route.name.clone(),
                before: store::now_ms().saturating_sub(ttl),
            };
            match proxy.store.approvals(op).await {
                Ok(approvals::Done::Expired(gone)) => {
                    for a in gone {
                        let label = segment::label(route.segment.as_ref(), &a.segment);
                        proxy.metrics.record_approval(&route.name, label, "expired");
                    }
                }
                Ok(approvals::Done::Decided(_)) => {}
                Err(store::Error::Closed { .. }) => return,
                Err(e) => {
                    tracing::warn!(route = %route.name, error = %e, "Expiring approvals failed")
                }
            }
        }
    }
}
