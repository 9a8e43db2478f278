//! Where staged autonomy posts: approved answers to `autonomy.deliver_url`,
//! answers the candidate served at `notify` to `autonomy.review_url`.
//!
//! Approved answers go through a durable outbox: a row in SQLite's
//! `deliveries` ([`crate::store::deliveries`]), written before
//! [`Outbox::deliver`] returns, and one task that POSTs what is due, records
//! each try (`attempts`, `last_error`, `delivered_ts`) and retries (1 s
//! doubling to 30 s) until the approval's TTL has passed since the decision.
//! The task starts with the proxy, so a restart picks up what was pending.
//! At least once: an answer accepted just before a crash, its try not yet
//! recorded, is sent again after the restart (`approval_id` tells them apart).
//!
//! Reviews are never on the request path: each URL has one bounded queue and
//! one task ([`crate::notify::Webhook`], the notifications' retry machinery).
//! A full queue drops the post and counts it
//! (`autonomy_posts_total{result="dropped"}`).

use crate::config::{Config, Endpoint};
use crate::metrics::Metrics;
use crate::notify::{Posted, Webhook};
use crate::store::{self, Store, deliveries};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// What is posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An approved answer (`approve`).
    Deliver,
    /// An answer the candidate served (`notify`).
    Review,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Deliver => "deliver",
            Kind::Review => "review",
        }
    }
}

/// The queues, one per route, kind and URL, started on first use, and the
/// durable outbox of deliveries.
#[derive(Default)]
pub struct Outbox {
    hooks: Mutex<HashMap<String, Webhook>>,
    durable: Option<Durable>,
}

struct Durable {
    store: Store,
    wake: Arc<Notify>,
}

/// Deliveries read per pass of the delivery task.
const DUE_PER_PASS: usize = 64;
/// How often the delivery task looks for due deliveries while some are
/// pending (it is also woken by each new one).
const PASS_EVERY: Duration = Duration::from_secs(1);
/// How often it looks when none is pending: a new one wakes it, so this
/// only notices a closed store. An idle pass opened a read-only connection
/// and re-read the schema, ≈ 1M instructions a second on an idle proxy.
const IDLE_PASS_EVERY: Duration = Duration::from_secs(60);

/// When the delivery task looks again, after a pass that left `pending`
/// deliveries (or could not count them: `None`).
fn next_pass(pending: Option<i64>) -> Duration {
    match pending {
        Some(0) => IDLE_PASS_EVERY,
        _ => PASS_EVERY,
    }
}

impl Outbox {
    /// The outbox of a proxy on `store`: its delivery task starts on the
    /// current runtime (none outside one), with the routes' `deliver_url`s.
    pub fn new(store: &Store, config: &Config, metrics: &Metrics) -> Outbox {
        let wake = Arc::new(Notify::new());
        let endpoints: HashMap<String, Endpoint> = config
            .routes
            .iter()
            .filter_map(|r| Some((r.name.clone(), r.autonomy.deliver.clone()?)))
            .collect();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(deliver_loop(
                store.clone(),
                endpoints,
                wake.clone(),
                metrics.clone(),
            ));
        }
        Outbox {
            hooks: Mutex::default(),
            durable: Some(Durable {
                store: store.clone(),
                wake,
            }),
        }
    }

    /// Queues approval `approval_id`'s answer for its route's `deliver_url`,
    /// durably: true once it is in the store. Retried until `ttl` from now.
    pub async fn deliver(&self, route: &str, approval_id: i64, body: Bytes, ttl: Duration) -> bool {
        let Some(d) = &self.durable else {
            return false;
        };
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let op = deliveries::Op::Enqueue {
            approval_id,
            route: route.to_string(),
            body,
            expires_ts: store::now_ms().saturating_add(ttl),
        };
        match d.store.deliveries(op).await {
            Ok(()) => {
                d.wake.notify_one();
                true
            }
            Err(error) => {
                tracing::error!(route, approval_id, %error, "Could not queue the approved answer");
                false
            }
        }
    }

    /// Queues `body` for `endpoint`; never waits. False when dropped.
    pub fn post(
        &self,
        route: &str,
        kind: Kind,
        endpoint: &Endpoint,
        body: Bytes,
        metrics: &Metrics,
    ) -> bool {
        let key = format!(
            "{}\u{0}{route}\u{0}{}{}",
            kind.as_str(),
            endpoint.upstream.uri,
            endpoint.path
        );
        let mut hooks = self.hooks.lock().unwrap_or_else(|e| e.into_inner());
        let hook = hooks.entry(key).or_insert_with(|| {
            let (m, r) = (metrics.clone(), route.to_string());
            let what = match kind {
                Kind::Deliver => "approved answer",
                Kind::Review => "review",
            };
            Webhook::start(&endpoint.upstream, &endpoint.path, what, move |p| {
                let result = match p {
                    Posted::Sent => "sent",
                    Posted::Retrying => "failed",
                    Posted::GivenUp => "dropped",
                };
                m.record_post(&r, kind.as_str(), result);
            })
        });
        let queued = hook.send(body);
        if !queued {
            metrics.record_post(route, kind.as_str(), "dropped");
        }
        queued
    }
}

/// The delivery task: every [`PASS_EVERY`] while deliveries are pending,
/// [`IDLE_PASS_EVERY`] when none is, and whenever woken, POSTs the due
/// deliveries and records each try; ends when the store closes.
async fn deliver_loop(
    store: Store,
    endpoints: HashMap<String, Endpoint>,
    wake: Arc<Notify>,
    metrics: Metrics,
) {
    let tls = crate::upstream::tls_client_config(&[]);
    let clients: HashMap<String, (crate::upstream::Client, http::Uri)> = endpoints
        .iter()
        .map(|(route, e)| {
            let client = crate::upstream::Client::new(&e.upstream, "deliver", &tls);
            let uri = client.uri_for(Some(&e.path));
            (route.clone(), (client, uri))
        })
        .collect();
    loop {
        // A stopped proxy delivers nothing more (a restart picks it up).
        if store.is_closed() {
            return;
        }
        let path = store.path().to_path_buf();
        let due = tokio::task::spawn_blocking(move || {
            let conn = store::read::open_ro(&path)?;
            Ok::<_, store::Error>((
                deliveries::due(&conn, DUE_PER_PASS)?,
                deliveries::pending(&conn)?,
            ))
        })
        .await;
        let mut left = None;
        match due {
            Ok(Ok((due, pending))) => {
                metrics.deliveries_pending.set(pending);
                // Those due now are tried below; the rest are retries to come.
                left = Some(pending);
                for d in due {
                    if store.is_closed() {
                        return;
                    }
                    let error = match clients.get(&d.route) {
                        Some((client, uri)) => {
                            crate::notify::post(client, uri, Bytes::from(d.body))
                                .await
                                .err()
                        }
                        None => Some(format!("route {:?} has no deliver_url now", d.route)),
                    };
                    let result = if error.is_none() { "sent" } else { "failed" };
                    metrics.record_post(&d.route, Kind::Deliver.as_str(), result);
                    let op = deliveries::Op::Tried {
                        approval_id: d.approval_id,
                        error,
                    };
                    match store.deliveries(op).await {
                        Ok(()) => {}
                        Err(store::Error::Closed { .. }) => return,
                        Err(error) => tracing::warn!(%error, "Could not record a delivery"),
                    }
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "Could not read the deliveries"),
            Err(error) => tracing::warn!(%error, "The deliveries read failed"),
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(next_pass(left)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_outbox_looks_once_a_minute_and_a_busy_one_every_second() {
        assert_eq!(next_pass(Some(0)), IDLE_PASS_EVERY);
        assert_eq!(next_pass(Some(3)), PASS_EVERY);
        // A pass that could not count (the store busy) tries again soon.
        assert_eq!(next_pass(None), PASS_EVERY);
        assert!(IDLE_PASS_EVERY >= 60 * PASS_EVERY);
    }
}
