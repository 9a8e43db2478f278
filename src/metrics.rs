//! Prometheus metrics on a registry of our own (tests run many proxies in one process).
//!
//! Call sites use the intention-named `record_*` methods so labels stay
//! consistent: every closed label value is an enum that implements [`Label`]
//! (who served, verdict, skip reason, guard trip reason), and segments come
//! from the bounded mapping (`segment::label`).

use prometheus::core::Collector;
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The prefix of every metric name.
const PREFIX: &str = "understudy";

/// The registry while metrics are registered, noting each family's name
/// (a family without a series yet is not in `gather`, but is in [`Metrics::names`]).
struct Families {
    registry: Registry,
    names: Mutex<Vec<String>>,
}

impl Families {
    fn register(&self, c: Box<dyn Collector>) -> prometheus::Result<()> {
        let names: Vec<String> = c
            .desc()
            .iter()
            .map(|d| format!("{PREFIX}_{}", d.fq_name))
            .collect();
        self.registry.register(c)?;
        if let Ok(mut all) = self.names.lock() {
            all.extend(names);
        }
        Ok(())
    }
}

/// `autonomy_stage` of a segment without a stage (no `[routes.autonomy]`).
pub const NO_STAGE: f64 = -1.0;

/// A closed set of label values (an enum), named by `as_label`.
pub trait Label: Copy {
    fn as_label(self) -> &'static str;
}

/// Typed handles; cheap to clone (each is an `Arc` inside).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub upstream_duration: HistogramVec,
    pub comparisons: IntCounterVec,
    pub agreement_ratio: GaugeVec,
    pub mirror_skipped: IntCounterVec,
    pub canary_weight: GaugeVec,
    pub guard_trips: IntCounterVec,
    pub fallbacks: IntCounterVec,
    pub safety_events: IntCounterVec,
    pub store_queue_depth: IntGauge,
    pub store_rows_written: IntCounter,
    pub store_rows_dropped: IntCounter,
    pub config_reloads: IntCounterVec,
    pub limit_rejections: IntCounterVec,
    /// AI answers (docs/src/guide/llm.md): see [`Metrics::record_answer`].
    pub tokens: IntCounterVec,
    pub cost_dollars: CounterVec,
    pub ttft: HistogramVec,
    pub text_stages: IntCounterVec,
    pub notify_dropped: IntCounter,
    pub store_bytes: IntGauge,
    /// Answer bytes captured for comparison and not yet released (`store.capture_budget`).
    pub capture_bytes: IntGauge,
    /// Pending approvals deleted to meet `store.max_bytes` before anyone decided them.
    pub approvals_evicted: IntCounter,
    /// Approved answers in the durable outbox, not yet delivered nor expired.
    pub deliveries_pending: IntGauge,
    /// Staged autonomy (docs/src/concepts/stages.md).
    pub autonomy_stage: GaugeVec,
    pub suggestions: IntCounterVec,
    pub approvals: IntCounterVec,
    pub autonomy_posts: IntCounterVec,
    pub feedback: IntCounterVec,
    /// `[fleet]` (docs/src/concepts/fleet.md).
    pub fleet: FleetMetrics,
    /// Every family's full name, sorted.
    names: Arc<[String]>,
}

/// The fleet's metrics (registered whether or not `[fleet]` is set, so a
/// dashboard reads 0 rather than nothing on a single replica).
#[derive(Clone)]
pub struct FleetMetrics {
    /// 1 while this replica reaches PostgreSQL.
    pub connected: IntGauge,
    /// 1 on the replica that runs the fleet's guards.
    pub evaluator: IntGauge,
    /// Rollout events from other replicas (or the evaluator) applied here.
    pub events_applied: IntCounter,
    /// Per-second evidence not shipped: the backlog bound was reached during
    /// a long partition (the oldest seconds are dropped first).
    pub evidence_dropped: IntCounter,
    /// Exchange rows copied to PostgreSQL (`fleet.ship_rows`).
    pub rows_shipped: IntCounter,
}

impl FleetMetrics {
    fn register(registry: &Families) -> FleetMetrics {
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        FleetMetrics {
            connected: gauge(
                "fleet_connected",
                "1 while this replica reaches the fleet's PostgreSQL.",
            ),
            evaluator: gauge(
                "fleet_evaluator",
                "1 on the replica that runs the fleet's guards.",
            ),
            events_applied: counter(
                "fleet_events_applied_total",
                "Rollout events made elsewhere in the fleet and applied here.",
            ),
            evidence_dropped: counter(
                "fleet_evidence_dropped_total",
                "Seconds of evidence not shipped: the partition backlog was full.",
            ),
            rows_shipped: counter(
                "fleet_rows_shipped_total",
                "Exchange rows copied to PostgreSQL (fleet.ship_rows).",
            ),
        }
    }
}

/// The `kind` label of `understudy_tokens_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Input,
    Output,
}

impl Label for TokenKind {
    fn as_label(self) -> &'static str {
        match self {
            TokenKind::Input => "input",
            TokenKind::Output => "output",
        }
    }
}

/// What a text stage of the llm mode did with a pair: the `result` label of
/// `understudy_text_stage_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageResult {
    /// It decided: the texts agree.
    Agree,
    /// It decided: they do not.
    Disagree,
    /// Inside its band: passed on to the next stage.
    Undecided,
    /// It could not answer (busy, failing): the verdict is `skipped`.
    Skipped,
}

impl Label for StageResult {
    fn as_label(self) -> &'static str {
        match self {
            StageResult::Agree => "agree",
            StageResult::Disagree => "disagree",
            StageResult::Undecided => "undecided",
            StageResult::Skipped => "skipped",
        }
    }
}

/// Which limit turned a client (or an admin caller) away: the `limit` label of
/// `understudy_limit_rejections_total` (docs/src/reference/limits.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Request head over `listen.max_header_bytes` or with more than
    /// `listen.max_headers` fields (431). One label: hyper reports both as
    /// one error.
    Headers,
    /// No complete request head within `listen.header_read_timeout`.
    HeaderTimeout,
    /// Request body not complete within `listen.body_read_timeout` (408).
    BodyTimeout,
    /// A connection refused at accept: `listen.max_connections` reached.
    Connections,
    /// A connection idle longer than `listen.idle_timeout`.
    Idle,
    /// The admin listener's body cap (413).
    AdminBody,
    /// An admin request that did not complete within its timeout.
    AdminTimeout,
    /// A request without one valid host: `Host` missing (HTTP/1.1),
    /// repeated, invalid, or not the target's authority (400).
    Host,
    /// A transfer coding other than `chunked` (501), or `chunked` twice (400).
    TransferCoding,
    /// An HTTP/2 field value that begins or ends with whitespace (400).
    FieldValue,
    /// An admin connection refused at accept: `admin.max_connections` reached.
    AdminConnections,
}

impl Label for Rejected {
    fn as_label(self) -> &'static str {
        match self {
            Rejected::Headers => "headers",
            Rejected::HeaderTimeout => "header_timeout",
            Rejected::BodyTimeout => "body_timeout",
            Rejected::Connections => "connections",
            Rejected::Idle => "idle",
            Rejected::AdminBody => "admin_body",
            Rejected::AdminTimeout => "admin_timeout",
            Rejected::Host => "host",
            Rejected::TransferCoding => "transfer_coding",
            Rejected::FieldValue => "field_value",
            Rejected::AdminConnections => "admin_connections",
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Families {
            registry: Registry::new_custom(Some(PREFIX.into()), None).expect("valid prefix"),
            names: Mutex::default(),
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = GaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let requests = counter(
            "requests_total",
            "Client requests by route, segment, who served and status class.",
            &["route", "segment", "served_by", "status_class"],
        );
        let comparisons = counter(
            "comparisons_total",
            "Comparisons by verdict.",
            &["route", "segment", "verdict"],
        );
        let mirror_skipped = counter(
            "mirror_skipped_total",
            "Requests not mirrored, by reason.",
            &["route", "reason"],
        );
        let guard_trips = counter(
            "guard_trips_total",
            "Guard breaches that rolled a segment back.",
            &["route", "segment", "reason"],
        );
        let fallbacks = counter(
            "fallbacks_total",
            "Serving-candidate failures answered by the incumbent instead.",
            &["route", "segment"],
        );
        let safety_events = counter(
            "safety_events_total",
            "Candidate bodies that hit a safety deny pattern.",
            &["route", "segment"],
        );
        let config_reloads = counter(
            "config_reloads_total",
            "Config reloads by result.",
            &["result"],
        );
        let limit_rejections = counter(
            "limit_rejections_total",
            "Connections and requests turned away by a limit (docs/src/reference/limits.md).",
            &["limit"],
        );
        let agreement_ratio = gauge(
            "agreement_ratio",
            "Share of matches among decided comparisons over the sliding window.",
            &["route", "segment"],
        );
        let canary_weight = gauge(
            "canary_weight",
            "Current candidate weight in percent.",
            &["route", "segment"],
        );
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "upstream_duration_seconds",
                "Upstream latency to the end of the body.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route", "target"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(upstream_duration.clone()))
            .expect("unique metric");
        let tokens = counter(
            "tokens_total",
            "Tokens of decoded AI answers, by side and kind (input, output).",
            &["route", "side", "kind"],
        );
        let text_stages = counter(
            "text_stage_total",
            "What each llm text stage did with a pair (agree, disagree, undecided, skipped).",
            &["route", "stage", "result"],
        );
        let cost_dollars = CounterVec::new(
            Opts::new(
                "cost_dollars_total",
                "Cost of decoded AI answers from [routes.cost] prices, by side.",
            ),
            &["route", "side"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(cost_dollars.clone()))
            .expect("unique metric");
        let ttft = HistogramVec::new(
            HistogramOpts::new(
                "ttft_seconds",
                "Time from sending the request to the first content of the answer, by side.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0,
            ]),
            &["route", "side"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(ttft.clone()))
            .expect("unique metric");
        let store_queue_depth =
            IntGauge::new("store_queue_depth", "Rows waiting for the writer.").expect("valid");
        let store_rows_written =
            IntCounter::new("store_rows_written_total", "Rows written to SQLite.").expect("valid");
        let store_rows_dropped = IntCounter::new(
            "store_rows_dropped_total",
            "Rows dropped because the queue was full.",
        )
        .expect("valid");
        let notify_dropped = IntCounter::new(
            "notify_dropped_total",
            "Notifications dropped: queue full, or not accepted within five minutes.",
        )
        .expect("valid");
        let approvals_evicted = IntCounter::new(
            "approvals_evicted_total",
            "Pending approvals deleted to meet store.max_bytes before anyone decided them.",
        )
        .expect("valid");
        for m in [
            &store_rows_written,
            &store_rows_dropped,
            &notify_dropped,
            &approvals_evicted,
        ] {
            registry
                .register(Box::new(m.clone()))
                .expect("unique metric");
        }
        registry
            .register(Box::new(store_queue_depth.clone()))
            .expect("unique metric");
        let capture_bytes = IntGauge::new(
            "capture_bytes",
            "Answer bytes held for comparison (store.capture_budget).",
        )
        .expect("valid");
        registry
            .register(Box::new(capture_bytes.clone()))
            .expect("unique metric");
        let store_bytes = IntGauge::new(
            "store_bytes",
            "Size of the SQLite store on disk: the database file plus its WAL.",
        )
        .expect("valid");
        registry
            .register(Box::new(store_bytes.clone()))
            .expect("unique metric");
        let deliveries_pending = IntGauge::new(
            "autonomy_deliveries_pending",
            "Approved answers in the durable outbox, not yet delivered nor expired.",
        )
        .expect("valid");
        registry
            .register(Box::new(deliveries_pending.clone()))
            .expect("unique metric");
        let fleet = FleetMetrics::register(&registry);
        let autonomy_stage = gauge(
            "autonomy_stage",
            "Stage of autonomy: 0 shadow, 1 recommend, 2 approve, 3 notify, 4 autonomous; -1 none (no [routes.autonomy]).",
            &["route", "segment"],
        );
        let suggestions = counter(
            "suggestions_total",
            "recommend stage: suggestions by outcome (inserted, header, late, failed, compressed, skipped).",
            &["route", "outcome"],
        );
        let approvals = counter(
            "approvals_total",
            "approve stage: approvals by event (created, approved, rejected, expired).",
            &["route", "segment", "event"],
        );
        let autonomy_posts = counter(
            "autonomy_posts_total",
            "Approved answers delivered and answers posted for review, by kind and result (sent, failed, dropped).",
            &["route", "kind", "result"],
        );
        let feedback = counter(
            "feedback_total",
            "Feedback by kind (rating, reversal).",
            &["route", "segment", "kind"],
        );
        let mut names = registry.names.into_inner().unwrap_or_default();
        names.sort();
        Metrics {
            names: names.into(),
            autonomy_stage,
            suggestions,
            approvals,
            autonomy_posts,
            feedback,
            registry: registry.registry,
            requests,
            upstream_duration,
            comparisons,
            agreement_ratio,
            mirror_skipped,
            canary_weight,
            guard_trips,
            fallbacks,
            safety_events,
            store_queue_depth,
            store_rows_written,
            store_rows_dropped,
            config_reloads,
            limit_rejections,
            tokens,
            cost_dollars,
            ttft,
            text_stages,
            notify_dropped,
            store_bytes,
            capture_bytes,
            approvals_evicted,
            deliveries_pending,
            fleet,
        }
    }

    /// One decoded AI answer: its tokens, cost and time to first token, each
    /// when known.
    pub fn record_answer(&self, route: &str, side: impl Label, f: &crate::reading::Figures) {
        let side = side.as_label();
        for (kind, n) in [
            (TokenKind::Input, f.tokens_in),
            (TokenKind::Output, f.tokens_out),
        ] {
            if let Some(n) = n {
                self.tokens
                    .with_label_values(&[route, side, kind.as_label()])
                    .inc_by(n);
            }
        }
        if let Some(c) = f.cost {
            self.cost_dollars
                .with_label_values(&[route, side])
                .inc_by(c);
        }
        if let Some(ms) = f.ttft_ms {
            self.ttft
                .with_label_values(&[route, side])
                .observe(ms / 1000.0);
        }
    }

    /// What one llm text stage did with a pair.
    pub fn record_stage(&self, route: &str, stage: impl Label, result: StageResult) {
        self.text_stages
            .with_label_values(&[route, stage.as_label(), result.as_label()])
            .inc();
    }

    /// A connection or request turned away by one of the limits.
    pub fn record_limit_rejection(&self, limit: Rejected) {
        self.limit_rejections
            .with_label_values(&[limit.as_label()])
            .inc();
    }

    pub fn record_request(&self, route: &str, segment: &str, served_by: impl Label, status: u16) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .with_label_values(&[route, segment, served_by.as_label(), class])
            .inc();
    }

    /// The `upstream_duration_seconds` series of one route and side.
    pub fn upstream(&self, route: &str, target: impl Label) -> prometheus::Histogram {
        self.upstream_duration
            .with_label_values(&[route, target.as_label()])
    }

    pub fn record_upstream(&self, route: &str, target: impl Label, took: Duration) {
        self.upstream(route, target).observe(took.as_secs_f64());
    }

    pub fn record_mirror_skip(&self, route: &str, reason: impl Label) {
        self.mirror_skipped
            .with_label_values(&[route, reason.as_label()])
            .inc();
    }

    pub fn record_verdict(&self, route: &str, segment: &str, verdict: impl Label) {
        self.comparisons
            .with_label_values(&[route, segment, verdict.as_label()])
            .inc();
    }

    /// A serving candidate failed and the incumbent answered instead.
    pub fn record_fallback(&self, route: &str, segment: &str) {
        self.fallbacks.with_label_values(&[route, segment]).inc();
    }

    pub fn record_safety_event(&self, route: &str, segment: &str) {
        self.safety_events
            .with_label_values(&[route, segment])
            .inc();
    }

    pub fn record_guard_trip(&self, route: &str, segment: &str, reason: impl Label) {
        self.guard_trips
            .with_label_values(&[route, segment, reason.as_label()])
            .inc();
    }

    pub fn set_agreement(&self, route: &str, segment: &str, agreement: f64) {
        self.agreement_ratio
            .with_label_values(&[route, segment])
            .set(agreement);
    }

    pub fn set_weight(&self, route: &str, segment: &str, weight: f64) {
        self.canary_weight
            .with_label_values(&[route, segment])
            .set(weight);
    }

    pub fn set_stage(&self, route: &str, segment: &str, stage: crate::config::Stage) {
        self.autonomy_stage
            .with_label_values(&[route, segment])
            .set(f64::from(stage.as_index()));
    }

    /// A segment of a route without `[routes.autonomy]`: no stage (-1).
    pub fn set_no_stage(&self, route: &str, segment: &str) {
        self.autonomy_stage
            .with_label_values(&[route, segment])
            .set(NO_STAGE);
    }

    /// A `recommend` suggestion's outcome.
    pub fn record_suggestion(&self, route: &str, outcome: impl Label) {
        self.suggestions
            .with_label_values(&[route, outcome.as_label()])
            .inc();
    }

    /// An approval created, approved, rejected or expired.
    pub fn record_approval(&self, route: &str, segment: &str, event: &'static str) {
        self.approvals
            .with_label_values(&[route, segment, event])
            .inc();
    }

    /// A delivery or review POST: `kind` deliver|review, `result` sent|failed|dropped.
    pub fn record_post(&self, route: &str, kind: &'static str, result: &'static str) {
        self.autonomy_posts
            .with_label_values(&[route, kind, result])
            .inc();
    }

    /// Feedback: `kind` rating or reversal.
    pub fn record_feedback(&self, route: &str, segment: &str, kind: &'static str) {
        self.feedback
            .with_label_values(&[route, segment, kind])
            .inc();
    }

    /// A config reload, `ok` or `error`.
    pub fn record_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.config_reloads.with_label_values(&[result]).inc();
    }

    /// The full name of every metric family, with or without a series yet
    /// (the metrics reference in `docs/` is checked against it).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let families = self.registry.gather();
        if TextEncoder::new().encode(&families, &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Label for crate::config::Side {
    fn as_label(self) -> &'static str {
        self.as_str()
    }
}

impl Label for crate::config::TextStage {
    fn as_label(self) -> &'static str {
        self.as_str()
    }
}
