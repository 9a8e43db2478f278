//! The runtime configuration: typed, validated, immutable, shared as an `Arc`.
//!
//! `proxy.toml` → [`file`] (serde structs, `deny_unknown_fields`) → [`validate`]
//! (collects every issue, unknown keys and wrong types included, with its line and column) → [`Config`]. The hot path
//! never parses a string: durations, URIs, header names, pointers and regexes
//! are all built here. Priority: route value > built-in default.

pub mod event;
pub mod file;
pub mod llm;
pub mod pgtls;
pub mod slices;
pub mod stage;
pub mod suggest;
pub mod validate;

use crate::pointer::Pointer;
use http::{HeaderName, HeaderValue, Method, Uri};
use regex::Regex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use event::Kind;
pub use llm::{Band, Bands, Cost, Embedding, Focus, LlmCompare, Price, Protocol, TextStage};
pub use pgtls::FleetTls;
pub use stage::Stage;
pub use validate::{Error, FLEET_URL_ENV, Issue};

/// The segment of requests that carry no value (and of routes without segments).
pub const DEFAULT: &str = "default";
/// The metric label of values outside the configured list.
pub const OTHER: &str = "other";

/// Loads and validates a config file.
pub fn load(path: &Path) -> Result<Config, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut config = parse(&text)?;
    config.source = Some(path.to_path_buf());
    Ok(config)
}

/// Parses and validates config text.
pub fn parse(text: &str) -> Result<Config, Error> {
    validate::validate(text)
}

/// A valid config for unit tests: loopback listeners, `x.db`, and `routes`
/// (TOML from `[[routes]]` on) after them.
#[cfg(test)]
pub(crate) fn for_test(routes: &str) -> Config {
    let text = format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n[admin]\naddr = \"127.0.0.1:0\"\n[store]\npath = \"x.db\"\n{routes}"
    );
    parse(&text).unwrap_or_else(|e| panic!("test config: {e}"))
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    pub admin: Admin,
    pub store: Store,
    pub routes: Vec<Route>,
    /// `[[notify]]`: webhooks for rollout events.
    pub notify: Vec<Notify>,
    /// `[fleet]`: PostgreSQL shared by several replicas; `None` alone.
    pub fleet: Option<Fleet>,
    /// The file this config came from, when it came from one (for reloads).
    pub source: Option<PathBuf>,
}

/// `[fleet]`, validated (docs/src/concepts/fleet.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// The connection URL (from `url`, else the `url_env` variable).
    pub url: String,
    /// This replica's name.
    pub replica: String,
    pub ship_rows: bool,
    /// Extra CA certificates (PEM) for TLS to PostgreSQL.
    pub ca: Option<PathBuf>,
    /// The TLS the connections use (from the URL and its host).
    pub tls: FleetTls,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    pub tls: Option<TlsFiles>,
    /// A client must finish sending its request headers within this time.
    pub header_read_timeout: Duration,
    /// How long a graceful stop waits for in-flight requests.
    pub drain_timeout: Duration,
    /// Client requests handled at once; beyond it the answer is 503.
    pub max_in_flight: usize,
    /// A request body must be complete within this (408).
    pub body_read_timeout: Duration,
    /// No request in progress for this long (or no byte moving while one is): closed.
    pub idle_timeout: Duration,
    /// Open client connections; beyond it new ones are closed at accept.
    pub max_connections: usize,
    /// Largest request head in bytes (431 beyond).
    pub max_header_bytes: usize,
    /// Most header fields (431 beyond).
    pub max_headers: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// Request header names with `_` are forwarded (else dropped).
    pub underscores_in_headers: bool,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub addr: SocketAddr,
    /// Name of the environment variable holding the bearer token.
    pub token_env: String,
    /// Cap on a request body on every admin path (413 beyond).
    pub max_body_bytes: usize,
    /// Time to a complete request head, from the first byte and between
    /// keep-alive requests; the connection is closed after it.
    pub header_read_timeout: Duration,
    /// Time for a whole request, head to answer (408 after it).
    pub request_timeout: Duration,
    /// Open admin connections at most (closed at accept beyond).
    pub max_connections: usize,
}

#[derive(Debug, Clone)]
pub struct Store {
    pub path: PathBuf,
    /// Cap on each stored body; larger request bodies are not mirrored.
    pub max_body_bytes: usize,
    pub redact_headers: Vec<HeaderName>,
    /// Query parameters whose values are redacted in stored rows.
    pub redact_query: Vec<String>,
    pub redact_json: Vec<Pointer>,
    pub retention: Duration,
    /// Bounded queue between the request path and the writer thread.
    pub queue_capacity: usize,
    pub batch_size: usize,
    pub flush_interval: Duration,
    /// Which answers keep their bodies.
    pub bodies: Bodies,
    pub request_bodies: bool,
    /// Cap of the main file plus the WAL, in bytes; `None` unbounded.
    pub max_bytes: Option<u64>,
    /// Answer bytes held for comparison at once, in bytes.
    pub capture_budget: usize,
}

/// `store.bodies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bodies {
    All,
    Mismatches,
    None,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub path_prefix: String,
    /// `None` matches every method.
    pub methods: Option<Vec<Method>>,
    /// Matched against the request's host without port, case-insensitively.
    pub host: Option<String>,
    pub incumbent: Upstream,
    pub candidate: Option<Upstream>,
    pub segment: Option<Segment>,
    pub sticky: Option<Source>,
    pub mirror: Mirror,
    pub compare: Compare,
    pub rollout: Rollout,
    pub guard: Guard,
    pub safety: Safety,
    /// `[routes.cost]` prices (docs/src/guide/llm.md).
    pub cost: Cost,
    /// `[routes.autonomy]` (docs/src/concepts/stages.md).
    pub autonomy: Autonomy,
    /// `[routes.slices]`: slice discovery.
    pub slices: slices::Slices,
}

/// `[routes.autonomy]`: the stage of each segment and how stages are earned
/// and lost (docs/src/concepts/stages.md).
#[derive(Debug, Clone)]
pub struct Autonomy {
    /// The route has an `[routes.autonomy]` table: only then do its stages
    /// move by themselves (a route without one behaves as before stages).
    pub configured: bool,
    /// Stage of segments without their own.
    pub stage: Stage,
    pub stages: BTreeMap<String, Stage>,
    /// `recommend`: where the suggestion goes in a JSON answer; `None`: the header.
    pub suggest_pointer: Option<Pointer>,
    pub suggest_timeout: Duration,
    /// `approve`: where approved answers are POSTed.
    pub deliver: Option<Endpoint>,
    /// `notify`: where answers the candidate served are POSTed for review.
    pub review: Option<Endpoint>,
    pub approval_ttl: Duration,
    pub auto_advance: bool,
    pub hold: Duration,
    pub criteria: Criteria,
}

/// A URL Understudy POSTs to: its upstream settings and path.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub upstream: Upstream,
    pub path: http::uri::PathAndQuery,
}

/// `[routes.autonomy.criteria]`; `None` is not checked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Criteria {
    pub min_agreement: f64,
    pub max_reject_rate: Option<f64>,
    pub max_reversal_rate: Option<f64>,
    pub min_satisfaction: Option<f64>,
    pub min_samples: u64,
}

impl Autonomy {
    /// The configured stage of a segment name (its own, else the route's).
    pub fn stage_of(&self, segment: &str) -> Stage {
        self.stages.get(segment).copied().unwrap_or(self.stage)
    }

    /// The stage to show for a segment at `stage`: `None` ("none") on a route
    /// without `[routes.autonomy]` whose segment was never staged by hand,
    /// since its candidate then serves as before stages, not as a stage
    /// someone chose.
    pub fn shown(&self, stage: Stage) -> Option<Stage> {
        (self.configured || stage != Stage::Autonomous).then_some(stage)
    }
}

/// An upstream base URL (`http://host:port/base`) with its timeouts.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// Scheme and authority, e.g. `http://127.0.0.1:9001`.
    pub uri: Uri,
    /// Path prefix prepended to the request path ("" when none).
    pub base_path: String,
    pub connect_timeout: Duration,
    /// Time allowed for the upstream's response headers.
    pub timeout: Duration,
    /// Speak HTTP/2 with prior knowledge to a plain `http://` upstream.
    pub http2: bool,
    /// Extra PEM CA certificates to trust for `https://` (read at load).
    pub tls_ca: Option<Vec<u8>>,
}

impl Upstream {
    /// An endpoint called by Understudy itself (a webhook, a gate): its
    /// scheme and authority as the upstream, and its path and query.
    pub fn endpoint(url: &Uri, timeout: Duration) -> (Upstream, http::uri::PathAndQuery) {
        let mut parts = url.clone().into_parts();
        let path = parts
            .path_and_query
            .replace(http::uri::PathAndQuery::from_static("/"))
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let upstream = Upstream {
            uri: Uri::from_parts(parts).unwrap_or_default(),
            base_path: String::new(),
            connect_timeout: timeout,
            timeout,
            http2: false,
            tls_ca: None,
        };
        (upstream, path)
    }

    pub fn is_https(&self) -> bool {
        self.uri.scheme_str() == Some("https")
    }
}

/// Where a value (segment or sticky key) is read from.
#[derive(Debug, Clone)]
pub enum Source {
    Header(HeaderName),
    Query(String),
    /// A pointer into a JSON request body.
    Json(Pointer),
    /// A regex on the path; the first capture group (or the whole match).
    Path(Regex),
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub source: Source,
    /// The known values; others are stored as they are but labelled `other`.
    pub values: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Mirror {
    /// The kill switch's initial state (`mirror = on|off`).
    pub enabled: bool,
    pub methods: Vec<Method>,
    pub timeout: Duration,
    pub max_in_flight: usize,
    pub strip_headers: Vec<HeaderName>,
    /// Query parameters removed from the candidate's copy.
    pub strip_query: Vec<String>,
    pub set_headers: Vec<(HeaderName, HeaderValue)>,
    pub rewrite_json: Vec<(Pointer, serde_json::Value)>,
    /// Share of exchanges mirrored, `0..=1` (docs/src/guide/llm.md; by the sticky key's own hash).
    pub sample: f64,
    /// Candidate dollars per UTC day spent on mirrors; beyond it they are skipped.
    pub budget: Option<f64>,
    pub focus: Focus,
}

#[derive(Debug, Clone)]
pub enum Compare {
    Exact,
    Json(JsonCompare),
    Text(TextCompare),
    Judge(JudgeCompare),
    /// AI answers decoded and compared as completions (docs/src/guide/llm.md).
    Llm(Box<LlmCompare>),
}

#[derive(Debug, Clone, Default)]
pub struct JsonCompare {
    pub ignore: Vec<Pointer>,
    /// Empty means everything is compared.
    pub only: Vec<Pointer>,
    /// Relative tolerance for numbers (0.05 = 5 %).
    pub tolerance: f64,
    pub abs_tolerance: f64,
    pub unordered_arrays: bool,
    /// Noise learning; `None` learns nothing.
    pub noise: Option<Noise>,
}

/// Noise learning (as Diffy does it): some exchanges are asked of the
/// incumbent twice, and the pointers where its two answers differ are left out
/// of every later verdict of the route.
#[derive(Debug, Clone, PartialEq)]
pub struct Noise {
    /// A second incumbent instance; `None` re-sends to the incumbent itself.
    pub secondary: Option<Upstream>,
    /// Share of exchanges asked twice, in `0..=1`.
    pub sample: f64,
    /// Most pointers learned per route.
    pub max_pointers: usize,
}

#[derive(Debug, Clone)]
pub struct TextCompare {
    pub field: Option<Pointer>,
    pub threshold: f64,
}

#[derive(Debug, Clone)]
pub struct JudgeCompare {
    pub url: Uri,
    pub timeout: Duration,
    pub max_in_flight: usize,
}

#[derive(Debug, Clone)]
pub struct Rollout {
    /// Weight in percent for segments not listed in `segments`.
    pub default: f64,
    pub segments: BTreeMap<String, f64>,
    pub salt: String,
    pub fallback: bool,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub source: Source,
    pub values: Vec<String>,
    pub serve: Side,
}

/// Which upstream serves (or is mirrored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Incumbent,
    Candidate,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Incumbent => "incumbent",
            Side::Candidate => "candidate",
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::Incumbent => Side::Candidate,
            Side::Candidate => Side::Incumbent,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    /// How evidence is turned into bounds (docs/src/concepts/guards.md).
    pub method: GuardMethod,
    pub window: Window,
    pub min_samples: u64,
    pub min_agreement: f64,
    pub max_candidate_error_rate: f64,
    /// Candidate p99 / incumbent p99; `None` disables the check.
    pub max_latency_ratio: Option<f64>,
    /// Candidate p99 / incumbent p99 time to first token; `None` disables it.
    pub max_ttft_ratio: Option<f64>,
    pub on_breach: OnBreach,
    pub auto_promote: bool,
    pub steps: Vec<f64>,
    pub hold: Duration,
    /// External gates checked before each raise.
    pub gates: Vec<Gate>,
    /// Share of rated exchanges with `rating > 0`; confidently below it breaches.
    pub min_satisfaction: Option<f64>,
    /// Share of reviewed answers reversed; confidently above it breaches.
    pub max_reversal_rate: Option<f64>,
}

/// An external gate (docs/src/concepts/canary.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub name: String,
    pub upstream: Upstream,
    pub path: http::uri::PathAndQuery,
    pub check: GateCheck,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GateCheck {
    /// 2xx passes.
    Http,
    /// An instant query's first value against a bound.
    Prometheus {
        query: String,
        max: Option<f64>,
        min: Option<f64>,
    },
}

/// One `[[notify]]` sink.
#[derive(Debug, Clone)]
pub struct Notify {
    pub upstream: Upstream,
    pub path: http::uri::PathAndQuery,
    pub format: NotifyFormat,
    pub events: Vec<Kind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    Json,
    Slack,
}

/// `guard.method`: the bounds a guard decides on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GuardMethod {
    /// Anytime-valid one-sided tests and change detectors, at the route's
    /// `guard.alpha` for passes and its share of it for breaches
    /// ([`crate::stats::alpha::Levels`]).
    Sequential(crate::stats::alpha::Levels),
    /// Wilson 95 % bounds over the sliding window.
    Wilson,
}

impl GuardMethod {
    /// The sequential method at `alpha` for a guard that tests agreement and
    /// errors in one segment (routes split by what they test:
    /// [`crate::stats::alpha::Levels`]).
    pub fn sequential(alpha: f64) -> GuardMethod {
        GuardMethod::Sequential(crate::stats::alpha::Levels::new(alpha, 2, 1))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Window {
    Count(usize),
    Time(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBreach {
    StepBack,
    Shadow,
}

#[derive(Debug, Clone, Default)]
pub struct Safety {
    pub deny: Vec<Regex>,
}
