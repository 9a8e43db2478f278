//! Notifications (docs/src/reference/configuration.md): a webhook POST for each rollout event a sink
//! asked for (`[[notify]]`), in `json` or `slack` format.
//!
//! Never on the request path: an event is queued (bounded, per sink) and a
//! task per sink posts it, at once, then with back-off (1 s doubling to 30 s)
//! until it is accepted (2xx) or five minutes have passed since the event. A
//! full queue or an event given up on is counted in
//! `understudy_notify_dropped_total`.

pub use crate::config::Kind;
use crate::config::{Notify, NotifyFormat};
use crate::metrics::Metrics;
use crate::upstream::{self, Client, body::UpBody};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Events a sink waits at most this long for.
const QUEUE: usize = 256;
/// How long an event is retried for.
const GIVE_UP: Duration = Duration::from_secs(300);
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// One POST, connect and the whole answer included.
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// Of an answer's body, at most this much is read (then the connection is
/// dropped rather than reused).
const ANSWER_CAP: usize = 64 * 1024;

/// One notification: the change and the numbers behind it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub event: Kind,
    pub route: String,
    pub segment: String,
    pub from: Option<f64>,
    pub to: Option<f64>,
    /// A stage change (docs/src/concepts/stages.md): the stage before and after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_stage: Option<String>,
    pub actor: String,
    pub reason: String,
    /// The guard's figures at the time, as text, when there are any.
    pub figures: Option<String>,
    /// The audit version of the change (none for a refusal, or a rollback
    /// not yet recorded).
    pub version: Option<i64>,
    /// Unix ms.
    pub ts: i64,
}

impl Event {
    fn body(&self, format: NotifyFormat) -> Bytes {
        let json = match format {
            NotifyFormat::Json => serde_json::to_vec(self),
            NotifyFormat::Slack => serde_json::to_vec(&serde_json::json!({ "text": self.text() })),
        };
        json.map(Bytes::from).unwrap_or_default()
    }

    /// One line for a chat channel.
    fn text(&self) -> String {
        if self.event == Kind::Slice {
            let mut t = format!(
                "Understudy slice: route {}: {}: {}",
                self.route, self.segment, self.reason
            );
            if let Some(f) = &self.figures {
                t.push_str(&format!(" ({f})"));
            }
            return t;
        }
        let w = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x}%"));
        let (from, to) = match (&self.from_stage, &self.to_stage) {
            (Some(f), Some(t)) => (format!("stage {f}"), format!("stage {t}")),
            _ => (w(self.from), w(self.to)),
        };
        let mut t = format!(
            "Understudy {}: route {} segment {}: {} → {} by {}: {}",
            self.event.as_str(),
            self.route,
            self.segment,
            from,
            to,
            self.actor,
            self.reason
        );
        if let Some(f) = &self.figures {
            t.push_str(&format!(" ({f})"));
        }
        if let Some(v) = self.version {
            t.push_str(&format!(" [audit #{v}]"));
        }
        t
    }
}

/// The sinks; cheap to share. Without `[[notify]]` it sends nothing.
#[derive(Default)]
pub struct Notifier {
    sinks: Vec<Sink>,
    metrics: Option<Metrics>,
}

struct Sink {
    events: Vec<Kind>,
    format: NotifyFormat,
    hook: Webhook,
}

impl Notifier {
    /// Starts a task per sink on the current runtime.
    pub fn start(sinks: &[Notify], metrics: &Metrics) -> Notifier {
        let sinks = sinks
            .iter()
            .map(|cfg| {
                let m = metrics.clone();
                let hook = Webhook::start(&cfg.upstream, &cfg.path, "notification", move |p| {
                    if p == Posted::GivenUp {
                        m.notify_dropped.inc();
                    }
                });
                Sink {
                    events: cfg.events.clone(),
                    format: cfg.format,
                    hook,
                }
            })
            .collect();
        Notifier {
            sinks,
            metrics: Some(metrics.clone()),
        }
    }

    /// Whether some sink wants events of `kind`.
    pub fn wants(&self, kind: Kind) -> bool {
        self.sinks.iter().any(|s| s.events.contains(&kind))
    }

    /// Queues `event` for every sink that wants its kind; never waits.
    pub fn send(&self, event: &Event) {
        for sink in self
            .sinks
            .iter()
            .filter(|s| s.events.contains(&event.event))
        {
            if !sink.hook.send(event.body(sink.format)) {
                if let Some(m) = &self.metrics {
                    m.notify_dropped.inc();
                }
                tracing::warn!(
                    event = event.event.as_str(),
                    "Notification queue full; dropped"
                );
            }
        }
    }
}

/// What became of one POST, for the owner's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// Accepted (2xx).
    Sent,
    /// Not accepted; retried with back-off.
    Retrying,
    /// Not accepted within five minutes; dropped.
    GivenUp,
}

/// One URL behind a bounded queue: each body is POSTed as JSON by one task,
/// at once, then with back-off (1 s doubling to 30 s) for up to five minutes.
/// Shared by notifications and staged autonomy's deliveries and reviews.
pub struct Webhook {
    tx: mpsc::Sender<(Bytes, Instant)>,
}

impl Webhook {
    /// Starts the posting task on the current runtime; `report` hears how each POST went.
    pub fn start(
        upstream: &crate::config::Upstream,
        path: &http::uri::PathAndQuery,
        what: &'static str,
        report: impl Fn(Posted) + Send + Sync + 'static,
    ) -> Webhook {
        let (tx, rx) = mpsc::channel(QUEUE);
        let tls = crate::upstream::tls_client_config(&[]);
        let client = Client::new(upstream, "notify", &tls);
        let uri = client.uri_for(Some(path));
        tokio::spawn(deliver(client, uri, what, rx, report));
        Webhook { tx }
    }

    /// Queues a body; never waits. False when the queue is full (dropped).
    pub fn send(&self, body: Bytes) -> bool {
        self.tx.try_send((body, Instant::now())).is_ok()
    }
}

async fn deliver(
    client: Client,
    uri: http::Uri,
    what: &'static str,
    mut rx: mpsc::Receiver<(Bytes, Instant)>,
    report: impl Fn(Posted),
) {
    while let Some((body, at)) = rx.recv().await {
        let mut wait = RETRY_FIRST;
        loop {
            match post(&client, &uri, body.clone()).await {
                Ok(()) => {
                    report(Posted::Sent);
                    break;
                }
                Err(why) if at.elapsed() + wait > GIVE_UP => {
                    report(Posted::GivenUp);
                    tracing::error!(what, %uri, %why, "POST given up after five minutes");
                    break;
                }
                Err(why) => {
                    report(Posted::Retrying);
                    tracing::warn!(what, %uri, %why, retry_in = ?wait, "POST not accepted; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

/// One POST of `body` as JSON: accepted (2xx) or why not.
pub(crate) async fn post(client: &Client, uri: &http::Uri, body: Bytes) -> Result<(), String> {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let req = upstream::request(Method::POST, uri.clone(), headers, UpBody::full(body));
    let deadline = tokio::time::Instant::now() + POST_TIMEOUT;
    let resp = client
        .send_within(req, POST_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    // The body is not needed; reading it (within the POST's time, up to a
    // cap) lets the connection be reused. A slow or endless answer is cut.
    let read = upstream::body::collect_capped(resp.into_body(), ANSWER_CAP);
    let _read = tokio::time::timeout_at(deadline, read).await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}
