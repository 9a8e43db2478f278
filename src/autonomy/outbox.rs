//! Where staged autonomy posts: approved answers to `autonomy.deliver_url`,
//! answers the candidate served at `notify` to `autonomy.review_url`.
//!
//! Never on the request path: each URL has one bounded queue and one task
//! ([`crate::notify::Webhook`], the notifications' retry machinery). A full
//! queue drops the post and counts it (`autonomy_posts_total{result="dropped"}`).

use crate::config::Endpoint;
use crate::metrics::Metrics;
use crate::notify::{Posted, Webhook};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;

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

/// The queues, one per route, kind and URL, started on first use.
#[derive(Default)]
pub struct Outbox {
    hooks: Mutex<HashMap<String, Webhook>>,
}

impl Outbox {
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
