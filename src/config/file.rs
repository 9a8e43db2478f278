//! The file shape of `proxy.toml`: serde structs, `deny_unknown_fields`, documented defaults.
//!
//! Nothing here is interpreted: strings stay strings (wrapped in [`Spanned`] when
//! a semantic error needs their position) until [`super::validate`] turns them
//! into the runtime [`super::Config`]. Every struct rejects unknown keys, so a typo
//! is an error with a line and column, never a silently ignored setting.
//! The defaults stated on each field are the ones the README's configuration reference documents.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use toml::Spanned;

mod autonomy;
mod llm;
mod policy;
mod slices;

pub use autonomy::{AutonomyFile, CriteriaFile};
pub use slices::SlicesFile;

pub use llm::{BandsFile, BudgetFile, CostFile, EmbeddingFile, FocusFile, PriceFile, TextFile};
pub use policy::{
    CompareFile, GateFile, GuardFile, MethodFile, ModeFile, NoiseFile, OnBreachFile, RolloutFile,
    RuleFile, ServeFile, WindowFile,
};

/// A default value: it has no position in the file (span `0..0`).
fn unspanned<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

fn text(value: &str) -> Spanned<String> {
    unspanned(value.to_string())
}

fn texts(values: &[&str]) -> Vec<Spanned<String>> {
    values.iter().map(|v| text(v)).collect()
}

/// Headers that carry credentials: redacted before a row is written and
/// removed from the candidate's copy by default. Beside the standard ones,
/// the API-key headers of the common AI and cloud APIs (Azure OpenAI's
/// `api-key`, Google's `x-goog-api-key`, AWS's session token) and the usual
/// session/token headers of web APIs.
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-auth-token",
    "x-access-token",
    "x-amz-security-token",
    "x-csrf-token",
];

/// Query parameters that carry credentials (docs/src/design/threat-model.md).
pub const SECRET_QUERY: &[&str] = &[
    "api_key",
    "key",
    "token",
    "sig",
    "signature",
    "access_token",
];

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[listen]`: the proxy listener. Default: every key's default.
    #[serde(default)]
    pub listen: ListenFile,
    /// `[admin]`: the admin listener. Default: every key's default.
    #[serde(default)]
    pub admin: AdminFile,
    /// `[store]`: the SQLite log. Default: every key's default.
    #[serde(default)]
    pub store: StoreFile,
    /// `[[routes]]`, matched in file order. Required: at least one.
    #[serde(default)]
    pub routes: Vec<RouteFile>,
    /// `[[notify]]`: webhooks for rollout events. Default: none.
    #[serde(default)]
    pub notify: Vec<NotifyFile>,
    /// `[fleet]`: several replicas sharing state through PostgreSQL (docs/src/concepts/fleet.md).
    /// Default: none (one replica, SQLite only).
    pub fleet: Option<FleetFile>,
}

/// `[fleet]`: `url` or `url_env`, `replica`, `ship_rows`, `ca`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetFile {
    /// `postgres://user@host/db` (wins over `url_env`).
    pub url: Option<Spanned<String>>,
    /// The environment variable holding the URL. Default `"UNDERSTUDY_FLEET_URL"`.
    pub url_env: Option<Spanned<String>>,
    /// This replica's name, unique in the fleet. Default: the host name.
    pub replica: Option<Spanned<String>>,
    /// Copy exchange rows to PostgreSQL too. Default `false`.
    #[serde(default)]
    pub ship_rows: bool,
    /// A PEM file of CA certificates to trust for TLS to PostgreSQL, beside
    /// the public roots. Default: the public roots only.
    pub ca: Option<PathBuf>,
}

/// `[[notify]]`: `url`, `format`, `events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    /// Where events are POSTed. Required.
    pub url: Spanned<String>,
    /// `"json"` (the event as JSON) or `"slack"` (`{"text": ...}`). Default `"json"`.
    #[serde(default)]
    pub format: NotifyFormatFile,
    /// Which events: `breach`, `rollback`, `promote`, `gate_failed`,
    /// `mirror_off`, `slice`. Default: all.
    pub events: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormatFile {
    #[default]
    Json,
    Slack,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenFile {
    /// Socket address (`IP:port`) of the proxy. Default `"127.0.0.1:8080"`.
    pub addr: Spanned<String>,
    /// TLS on the listener. Default: none (plain HTTP).
    pub tls: Option<TlsFile>,
    /// A client must send its request headers within this. Default `"10s"`.
    pub header_read_timeout: Spanned<String>,
    /// How long a graceful stop waits for in-flight requests. Default `"30s"`.
    pub drain_timeout: Spanned<String>,
    /// Client requests handled at once; beyond it the proxy answers 503. Default `10000`.
    pub max_in_flight: Spanned<usize>,
    /// A client must send its whole request body within this, or get 408. Default `"30s"`.
    pub body_read_timeout: Spanned<String>,
    /// A connection with no request in progress is closed after this;
    /// one with a request in progress, after this long without a byte either way. Default `"60s"`.
    pub idle_timeout: Spanned<String>,
    /// Open client connections; beyond it new ones are closed at accept. Default `10000`.
    pub max_connections: Spanned<usize>,
    /// Largest request head (request line and headers), in bytes; beyond it 431. Default `65536`.
    pub max_header_bytes: Spanned<usize>,
    /// Most header fields in a request; beyond it 431. Default `100`.
    pub max_headers: Spanned<usize>,
    /// Concurrent streams on one HTTP/2 connection. Default `100`.
    pub max_concurrent_streams: Spanned<usize>,
    /// Forward request header names with `_` (`X_Api_Key`). Default `false`:
    /// dropped, as nginx does, since some servers read `_` as `-`.
    pub underscores_in_headers: bool,
}

impl Default for ListenFile {
    fn default() -> Self {
        ListenFile {
            addr: text("127.0.0.1:8080"),
            tls: None,
            header_read_timeout: text("10s"),
            drain_timeout: text("30s"),
            max_in_flight: Spanned::new(0..0, 10_000),
            body_read_timeout: text("30s"),
            idle_timeout: text("60s"),
            max_connections: Spanned::new(0..0, 10_000),
            max_header_bytes: Spanned::new(0..0, 64 * 1024),
            max_headers: Spanned::new(0..0, 100),
            max_concurrent_streams: Spanned::new(0..0, 100),
            underscores_in_headers: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// PEM certificate chain. Required.
    pub cert: PathBuf,
    /// PEM private key. Required.
    pub key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminFile {
    /// Socket address of the admin listener. Default `"127.0.0.1:9090"`.
    pub addr: Spanned<String>,
    /// Environment variable holding the bearer token. Default `"UNDERSTUDY_ADMIN_TOKEN"`.
    pub token_env: String,
    /// Cap on a request body on every admin path; larger is 413. Default `65536`.
    pub max_body_bytes: Spanned<usize>,
    /// A client must send its request head (from the first byte, and between
    /// keep-alive requests) within this, or the connection is closed. Default `"10s"`.
    pub header_read_timeout: Spanned<String>,
    /// A whole request, head to answer, within this, or 408. Default `"30s"`.
    pub request_timeout: Spanned<String>,
    /// Open admin connections at most; beyond it a new one is closed at
    /// accept (counted: `limit="admin_connections"`). Default `64`.
    pub max_connections: Spanned<usize>,
}

impl Default for AdminFile {
    fn default() -> Self {
        AdminFile {
            addr: text("127.0.0.1:9090"),
            token_env: "UNDERSTUDY_ADMIN_TOKEN".to_string(),
            max_body_bytes: Spanned::new(0..0, 65536),
            header_read_timeout: text("10s"),
            request_timeout: text("30s"),
            max_connections: Spanned::new(0..0, 64),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreFile {
    /// SQLite file. Default `"understudy.db"`.
    pub path: PathBuf,
    /// Cap on each stored body; larger request bodies are not mirrored. Default `65536`.
    pub max_body_bytes: usize,
    /// Headers replaced by `[redacted]` before a row is written. Default
    /// [`SECRET_HEADERS`].
    pub redact_headers: Vec<Spanned<String>>,
    /// Query parameters whose values are replaced by `[redacted]` before a
    /// row is written. Default [`SECRET_QUERY`].
    pub redact_query: Vec<String>,
    /// JSON pointers (with `*`) removed from stored bodies. Default `[]`.
    pub redact_json: Vec<Spanned<String>>,
    /// How long exchanges are kept. Default `"14d"`.
    pub retention: Spanned<String>,
    /// Rows waiting for the writer; beyond it rows are dropped and counted. Default `65536`.
    pub queue_capacity: Spanned<usize>,
    /// Rows per write transaction. Default `1024`.
    pub batch_size: Spanned<usize>,
    /// Longest wait before a partial batch is written. Default `"100ms"`.
    pub flush_interval: Spanned<String>,
    /// Which answers keep their bodies: `"all"`, `"mismatches"` (rows whose
    /// verdict is not `match`) or `"none"`. Default `"all"`.
    pub bodies: BodiesFile,
    /// Keep request bodies (replay needs them). Default `true`.
    pub request_bodies: bool,
    /// Size cap of the database (main file and WAL), e.g. `"10 GiB"`; above
    /// it the oldest rows are deleted. Default: none.
    pub max_bytes: Option<Spanned<String>>,
    /// Answer bytes held for comparison across all exchanges in flight;
    /// when spent, new exchanges are not mirrored (`capture_budget`). Default `"256 MiB"`.
    pub capture_budget: Spanned<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodiesFile {
    #[default]
    All,
    Mismatches,
    None,
}

impl Default for StoreFile {
    fn default() -> Self {
        StoreFile {
            path: PathBuf::from("understudy.db"),
            max_body_bytes: 65536,
            redact_headers: texts(SECRET_HEADERS),
            redact_query: SECRET_QUERY.iter().map(|s| s.to_string()).collect(),
            redact_json: Vec::new(),
            retention: text("14d"),
            queue_capacity: unspanned(65536),
            batch_size: unspanned(1024),
            flush_interval: text("100ms"),
            bodies: BodiesFile::All,
            request_bodies: true,
            max_bytes: None,
            capture_budget: text("256 MiB"),
        }
    }
}

/// One `[[routes]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// Unique name (letters, digits, `.`, `_`, `-`). Required.
    pub name: Spanned<String>,
    /// Requests whose path starts with this are routed here; starts with `/`. Required.
    pub path_prefix: Spanned<String>,
    /// Methods this route matches. Default: every method.
    #[serde(default)]
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
    /// Host (without port) this route matches. Default: any host.
    #[serde(default)]
    pub host: Option<Spanned<String>>,
    /// Base URL of the incumbent (`http` or `https`; a path becomes a prefix). Required.
    pub incumbent: Spanned<String>,
    /// Base URL of the candidate. Default: none (nothing is mirrored).
    #[serde(default)]
    pub candidate: Option<Spanned<String>>,
    /// Response-head timeout of the incumbent and of a serving candidate. Default `"30s"`.
    #[serde(default = "default_route_timeout")]
    pub timeout: Spanned<String>,
    /// Connect timeout to either upstream. Default `"2s"`.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Spanned<String>,
    /// Speak HTTP/2 with prior knowledge (h2c) to `http://` upstreams. Default `false`.
    #[serde(default)]
    pub http2: bool,
    /// Extra PEM CA certificates trusted for `https://` upstreams (private CAs).
    /// Default: none (the public web roots only).
    #[serde(default)]
    pub tls_ca: Option<Spanned<std::path::PathBuf>>,
    /// Where the request's segment is read from. Default: none (every request is `default`).
    #[serde(default)]
    pub segment: Option<Spanned<SegmentFile>>,
    /// Where the sticky key for canary buckets is read from. Default: none (random bucket).
    #[serde(default)]
    pub sticky: Option<Spanned<SourceFile>>,
    /// `mirror = { ... }`. Default: every key's default.
    #[serde(default)]
    pub mirror: MirrorFile,
    /// `compare = { ... }`. Default: mode `"json"` with every key's default.
    #[serde(default)]
    pub compare: CompareFile,
    /// `rollout = { ... }`. Default: every key's default (shadow only).
    #[serde(default)]
    pub rollout: RolloutFile,
    /// `guard = { ... }`. Default: every key's default.
    #[serde(default)]
    pub guard: GuardFile,
    /// `safety = { ... }`. Default: no deny patterns.
    #[serde(default)]
    pub safety: SafetyFile,
    /// `cost = { incumbent = {...}, candidate = {...} }`. Default: prices unknown.
    #[serde(default)]
    pub cost: CostFile,
    /// `[routes.autonomy]` (docs/src/concepts/stages.md). Default: none (every segment
    /// `autonomous`, and stages never move by themselves).
    #[serde(default)]
    pub autonomy: Option<AutonomyFile>,
    /// `[routes.slices]`: slice discovery. Default: every key's default (on).
    #[serde(default)]
    pub slices: SlicesFile,
}

fn default_route_timeout() -> Spanned<String> {
    text("30s")
}

fn default_connect_timeout() -> Spanned<String> {
    text("2s")
}

/// A value source: exactly one of the four keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    /// Request header name. Default: unset.
    pub header: Option<Spanned<String>>,
    /// Query parameter name. Default: unset.
    pub query: Option<Spanned<String>>,
    /// JSON pointer into the request body. Default: unset.
    pub json: Option<Spanned<String>>,
    /// Regex on the path: first capture group, or the whole match. Default: unset.
    pub path: Option<Spanned<String>>,
}

impl SourceFile {
    pub fn source_keys(&self) -> SourceKeys<'_> {
        source_keys(&self.header, &self.query, &self.json, &self.path)
    }
}

/// The four source keys of a table, by name, whether given or not.
pub type SourceKeys<'a> = [(&'static str, Option<&'a Spanned<String>>); 4];

fn source_keys<'a>(
    header: &'a Option<Spanned<String>>,
    query: &'a Option<Spanned<String>>,
    json: &'a Option<Spanned<String>>,
    path: &'a Option<Spanned<String>>,
) -> SourceKeys<'a> {
    [
        ("header", header.as_ref()),
        ("query", query.as_ref()),
        ("json", json.as_ref()),
        ("path", path.as_ref()),
    ]
}

/// `segment = { <source>, values = [...] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentFile {
    /// Request header name. Default: unset.
    pub header: Option<Spanned<String>>,
    /// Query parameter name. Default: unset.
    pub query: Option<Spanned<String>>,
    /// JSON pointer into the request body. Default: unset.
    pub json: Option<Spanned<String>>,
    /// Regex on the path: first capture group, or the whole match. Default: unset.
    pub path: Option<Spanned<String>>,
    /// Known values; others are stored as they are but labelled `other`. Default `[]`.
    #[serde(default)]
    pub values: Vec<String>,
}

impl SegmentFile {
    pub fn source_keys(&self) -> SourceKeys<'_> {
        source_keys(&self.header, &self.query, &self.json, &self.path)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorFile {
    /// Initial state of the mirror kill switch. Default `true`.
    pub enabled: bool,
    /// Methods that are mirrored. Default `["GET", "HEAD", "OPTIONS"]`.
    pub methods: Vec<Spanned<String>>,
    /// Whole-exchange timeout of a mirrored request. Default `"2s"`.
    pub timeout: Spanned<String>,
    /// Mirrored requests in flight per route; beyond it mirrors are skipped. Default `256`.
    pub max_in_flight: Spanned<usize>,
    /// Headers removed from the candidate's copy (replaces the default list).
    /// Default [`SECRET_HEADERS`].
    pub strip_headers: Vec<Spanned<String>>,
    /// Query parameters removed from the candidate's copy. Default [`SECRET_QUERY`].
    pub strip_query: Vec<String>,
    /// Headers set on the candidate's copy, name → value. Default `{}`.
    pub set_headers: BTreeMap<Spanned<String>, Spanned<String>>,
    /// JSON body fields set for the candidate, pointer → value. Default `{}`.
    pub rewrite_json: BTreeMap<Spanned<String>, toml::Value>,
    /// Share (0..=1) of exchanges mirrored, by the sticky key's own hash. Default `1.0`.
    pub sample: Spanned<f64>,
    /// `{ dollars_per_day }`: candidate spend per UTC day on mirrors. Default: none.
    pub budget: Option<BudgetFile>,
    /// `"all"` or `"undecided"` (decided segments at a tenth of `sample`). Default `"all"`.
    pub focus: FocusFile,
}

impl Default for MirrorFile {
    fn default() -> Self {
        MirrorFile {
            enabled: true,
            methods: texts(&["GET", "HEAD", "OPTIONS"]),
            timeout: text("2s"),
            max_in_flight: unspanned(256),
            strip_headers: texts(SECRET_HEADERS),
            strip_query: SECRET_QUERY.iter().map(|s| s.to_string()).collect(),
            set_headers: BTreeMap::new(),
            rewrite_json: BTreeMap::new(),
            sample: unspanned(1.0),
            budget: None,
            focus: FocusFile::All,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafetyFile {
    /// Regexes on the candidate's body; a hit is a safety event. Default `[]`.
    pub deny: Vec<Spanned<String>>,
}
