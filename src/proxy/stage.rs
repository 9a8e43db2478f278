//! What the stage lets the candidate do for a canary user (docs/src/concepts/stages.md), in one
//! place on the request path: who answers ([`serving`]: below `notify` the
//! incumbent, the candidate beside it; at `recommend` with the candidate's
//! suggestion, [`super::suggest`]), and what the settled exchange owes
//! people ([`after`]): at `approve`, the candidate's answer
//! becomes a pending approval, written with the exchange's row; at `notify`,
//! the answer the candidate served is posted to `autonomy.review_url` (a
//! bounded queue; drops counted) and counts as reviewed for the reversal rate.
//!
//! [`after`] runs on the settle task, after redaction: nothing unredacted
//! leaves here.

use super::Proxy;
use crate::autonomy::outbox;
use crate::config::Side;
use crate::config::Stage;
use crate::runtime::RouteRuntime;
use crate::segment;
use crate::store::Record;
use crate::store::approvals::{self, NewApproval};
use serde_json::json;

/// Who answers a user the weight put on `chosen`, at the stage of its
/// canary (`None`: not a canary user).
pub(super) fn serving(chosen: Side, canary: Option<Stage>) -> Side {
    match canary {
        Some(Stage::Notify | Stage::Autonomous) | None => chosen,
        Some(Stage::Shadow | Stage::Recommend | Stage::Approve) => Side::Incumbent,
    }
}

/// What is left to do once the row is queued.
#[derive(Debug, Default)]
pub(super) struct Owed {
    /// (An approval is counted by the store's writer once its row commits.)
    /// An answer was put up for review in this segment label.
    reviewed: Option<String>,
}

/// Attaches the approval to the row, or posts the review.
pub(super) async fn after(
    proxy: &Proxy,
    route: &RouteRuntime,
    canary: Option<Stage>,
    served_by: Side,
    rec: &mut Record,
) -> Owed {
    let ok = rec.candidate_error.is_none()
        && rec
            .candidate_status
            .is_some_and(|s| (200..300).contains(&s));
    let label = || segment::label(route.cfg.segment.as_ref(), &rec.segment).to_string();
    match canary {
        Some(Stage::Approve) if served_by == Side::Incumbent && ok => {
            // Taken before the storage policy may drop the bodies from the row.
            rec.approval = Some(Box::new(NewApproval {
                label: label(),
                request_body: rec.request_body.clone(),
                incumbent_body: rec.incumbent_body.clone(),
                candidate_body: rec.candidate_body.clone(),
            }));
            Owed::default()
        }
        Some(Stage::Notify) if served_by == Side::Candidate && ok => {
            if let Some(endpoint) = &route.cfg.autonomy.review {
                let body = json!({
                    "exchange_id": rec.id,
                    "ts": rec.ts_ms,
                    "route": rec.route,
                    "segment": rec.segment,
                    "request": {
                        "method": rec.method,
                        "path": rec.path,
                        "query": rec.query,
                        "body": approvals::body(rec.request_body.as_deref()),
                    },
                    "answer": {
                        "status": rec.candidate_status,
                        "body": approvals::body(rec.candidate_body.as_deref()),
                    },
                });
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                proxy.outbox.post(
                    &route.cfg.name,
                    outbox::Kind::Review,
                    endpoint,
                    bytes.into(),
                    &proxy.metrics,
                );
            }
            Owed {
                reviewed: Some(label()),
            }
        }
        _ => Owed::default(),
    }
}

impl Owed {
    /// Counts what was done, once the row is queued.
    pub(super) async fn finish(self, proxy: &Proxy, route: &RouteRuntime) {
        if let Some(label) = self.reviewed {
            proxy
                .rollout
                .reviewed(&route.cfg, &label, &proxy.metrics)
                .await;
        }
    }
}
