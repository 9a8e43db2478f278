//! `understudy replay` (docs/src/guide/replay.md): logged requests re-sent to a new
//! candidate at a bounded rate and concurrency, each answer compared with the
//! stored incumbent answer under the route's compare settings, and written to
//! `replays` under a label. Resumable (exchanges already replayed under the
//! label are skipped); Ctrl-C stops sending, lets what is in flight finish,
//! and leaves every written row intact (each is its own transaction).
//!
//! Like the proxy: the selection is streamed (a page of rows at a time, a
//! few in memory), the candidate's answer is read and decoded only up to
//! `store.max_body_bytes`, and redacted by the store's [`Redactor`] before it
//! is compared with the stored (redacted) incumbent answer and written.

use crate::compare::{self, Observation};
use crate::config::{Config, Route, Upstream};
use crate::pointer::Pointer;
use crate::proxy::headers::strip_hop_by_hop;
use crate::store::{
    self,
    redact::{REDACTED, Redactor},
};
use crate::upstream::{
    self, Client,
    body::{UpBody, collect_capped},
};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use rusqlite::{Connection, params};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to replay, and how fast.
#[derive(Debug, Clone)]
pub struct Options {
    pub db: PathBuf,
    pub route: String,
    pub candidate: http::Uri,
    pub label: String,
    pub since: Option<Duration>,
    pub segment: Option<String>,
    /// Requests per second.
    pub rate: f64,
    pub concurrency: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Show a progress bar (a terminal).
    pub progress: bool,
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub replayed: u64,
    /// Already replayed under the label (a resumed run).
    pub already: u64,
    /// Logged without what a replay needs, with why.
    pub not_replayable: Vec<(String, u64)>,
    pub interrupted: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no route named {0:?} in the config")]
    UnknownRoute(String),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("{0}: {1}")]
    Sqlite(PathBuf, rusqlite::Error),
    #[error("--rate: {0}")]
    Rate(String),
    #[error("reading the logged exchanges stopped: {0}")]
    Reader(String),
}

/// The highest `--rate`: one request a nanosecond (in effect, no limit).
pub const MAX_RATE: f64 = 1e9;

/// A rate of requests per second: a number above 0 and at most [`MAX_RATE`].
pub fn check_rate(rate: f64) -> Result<f64, String> {
    if rate.is_finite() && rate > 0.0 && rate <= MAX_RATE {
        Ok(rate)
    } else {
        Err(format!(
            "{rate} is not a rate: give requests per second, above 0 and at most {MAX_RATE:e}"
        ))
    }
}

/// `--rate` as the command line gives it.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of requests per second"))?;
    check_rate(rate)
}

/// Rows read from the database per query while the replay runs.
const PAGE: i64 = 256;

/// One logged exchange to re-send.
struct Logged {
    id: String,
    segment: String,
    method: String,
    path: String,
    query: Option<String>,
    headers: String,
    body: Option<Vec<u8>>,
    incumbent_status: Option<u16>,
    incumbent_body: Option<Vec<u8>>,
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS replays (
    label TEXT NOT NULL,
    exchange_id TEXT NOT NULL,
    segment TEXT NOT NULL,
    ts INTEGER NOT NULL,
    verdict TEXT NOT NULL,
    score REAL,
    diff TEXT NOT NULL,
    candidate_status INTEGER,
    candidate_ms REAL,
    candidate_body BLOB,
    PRIMARY KEY (label, exchange_id)
)";

/// Runs a replay to the end (or to Ctrl-C).
pub async fn run(config: &Config, opts: &Options) -> Result<Summary, Error> {
    check_rate(opts.rate).map_err(Error::Rate)?;
    let route = config
        .routes
        .iter()
        .find(|r| r.name == opts.route)
        .ok_or_else(|| Error::UnknownRoute(opts.route.clone()))?
        .clone();
    let sql = |e| Error::Sqlite(opts.db.clone(), e);
    let conn = store::open_rw(&opts.db)?;
    conn.execute_batch(CREATE).map_err(sql)?;
    let total = count(&conn, opts).map_err(sql)?;
    let mut summary = Summary::default();
    let noise: Vec<Pointer> =
        crate::store::read::noise(std::slice::from_ref(&opts.db), Some(&route.name))
            .map(|rows| {
                rows.iter()
                    .filter_map(|n| Pointer::parse(&n.pointer).ok())
                    .collect()
            })
            .unwrap_or_default();
    let client = candidate_client(opts);
    let bar = opts.progress.then(|| progress(total));
    let concurrency = opts.concurrency.max(1);
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let conn = Arc::new(std::sync::Mutex::new(conn));
    let side = Side {
        redactor: Redactor::of(&config.store),
        cap: config.store.max_body_bytes,
    };
    let ctx = Arc::new((route, noise, client, opts.clone(), side));
    // The selection streams in from a blocking reader, a few rows ahead.
    let (tx, mut todo) = tokio::sync::mpsc::channel(concurrency * 2);
    let reader = {
        let opts = opts.clone();
        tokio::task::spawn_blocking(move || select(&opts, &tx))
    };
    let mut tasks = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / opts.rate));
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    loop {
        let logged = tokio::select! {
            next = todo.recv() => match next {
                Some(logged) => logged,
                None => break,
            },
            _ = &mut interrupt => { summary.interrupted = true; break; }
        };
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut interrupt => { summary.interrupted = true; break; }
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (ctx, conn, bar) = (ctx.clone(), conn.clone(), bar.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let (route, noise, client, opts, side) = &*ctx;
            let row = replay_one(route, noise, client, opts, side, logged).await;
            let written = write(&conn, &opts.label, &row);
            if let Some(b) = &bar {
                b.inc(1);
            }
            written
        });
    }
    // An interrupted run stops the reader at its next row.
    drop(todo);
    while let Some(done) = tasks.join_next().await {
        if matches!(done, Ok(Ok(()))) {
            summary.replayed += 1;
        }
    }
    let (not_replayable, already) = reader
        .await
        .map_err(|e| Error::Reader(e.to_string()))?
        .map_err(sql)?;
    summary.not_replayable = not_replayable;
    summary.already = already;
    if let Some(b) = bar {
        b.finish();
    }
    Ok(summary)
}

/// What the candidate's answer goes through before it is compared and kept:
/// the store's redaction and its body cap.
struct Side {
    redactor: Redactor,
    cap: usize,
}

fn progress(len: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:40} {pos}/{len} replayed, {per_sec}, ETA {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

fn candidate_client(opts: &Options) -> (Client, http::uri::PathAndQuery) {
    let (upstream, base): (Upstream, _) = Upstream::endpoint(&opts.candidate, opts.timeout);
    let tls = upstream::tls_client_config(&[]);
    (Client::new(&upstream, "candidate", &tls), base)
}

/// Why exchanges could not be replayed (with counts), and how many were
/// replayed under this label already.
type Selected = (Vec<(String, u64)>, u64);

const SELECTION: &str = "FROM exchanges e
    WHERE e.route = ?1 AND e.ts >= ?2 AND (?3 IS NULL OR e.segment = ?3)";

fn since_ms(opts: &Options) -> i64 {
    opts.since.map_or(i64::MIN, |d| {
        store::now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// How many exchanges the selection holds (the progress bar's length).
fn count(conn: &Connection, opts: &Options) -> rusqlite::Result<u64> {
    let n: i64 = conn.query_row(
        &format!("SELECT count(*) {SELECTION}"),
        params![opts.route, since_ms(opts), opts.segment],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Sends the exchanges to replay to `todo`, oldest first, a page of
/// [`PAGE`] rows per query on a read-only connection (no read transaction
/// is held across pages); stops early when `todo` is closed.
fn select(opts: &Options, todo: &tokio::sync::mpsc::Sender<Logged>) -> rusqlite::Result<Selected> {
    let conn = store::read::open_ro(&opts.db).map_err(|e| match e {
        store::Error::Sqlite { source, .. } => source,
        other => rusqlite::Error::InvalidPath(other.to_string().into()),
    })?;
    let mut stmt = conn.prepare(&format!(
        "SELECT e.id, e.segment, e.method, e.path, e.query, e.request_headers, e.request_body,
                e.incumbent_status, e.incumbent_body, e.incumbent_error,
                (SELECT 1 FROM replays r WHERE r.label = ?4 AND r.exchange_id = e.id), e.ts
         {SELECTION} AND (e.ts > ?5 OR (e.ts = ?5 AND e.id > ?6))
         ORDER BY e.ts, e.id LIMIT ?7"
    ))?;
    let (mut why, mut already) = (std::collections::BTreeMap::new(), 0);
    let (mut after_ts, mut after_id) = (i64::MIN, String::new());
    loop {
        let mut rows = stmt.query(params![
            opts.route,
            since_ms(opts),
            opts.segment,
            opts.label,
            after_ts,
            after_id,
            PAGE
        ])?;
        let mut n = 0;
        while let Some(r) = rows.next()? {
            n += 1;
            after_ts = r.get(11)?;
            after_id = r.get(0)?;
            if r.get::<_, Option<i64>>(10)?.is_some() {
                already += 1;
                continue;
            }
            let method: String = r.get(2)?;
            let body = bytes(r, 6)?;
            let incumbent_body = bytes(r, 8)?;
            let incumbent_error: Option<String> = r.get(9)?;
            let takes_body = !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS" | "DELETE");
            let reason = if body.is_none() && takes_body {
                Some(
                    "request body not stored (store.request_bodies = false, or over store.max_body_bytes)",
                )
            } else if incumbent_body.is_none() && incumbent_error.is_none() {
                Some("incumbent answer not stored (store.bodies)")
            } else {
                None
            };
            if let Some(reason) = reason {
                *why.entry(reason.to_string()).or_insert(0u64) += 1;
                continue;
            }
            let logged = Logged {
                id: after_id.clone(),
                segment: r.get(1)?,
                method,
                path: r.get(3)?,
                query: r.get(4)?,
                headers: r.get(5)?,
                body,
                incumbent_status: r.get(7)?,
                incumbent_body,
            };
            if todo.blocking_send(logged).is_err() {
                return Ok((why.into_iter().collect(), already));
            }
        }
        if n < PAGE {
            return Ok((why.into_iter().collect(), already));
        }
    }
}

/// A body column (TEXT when it was UTF-8, BLOB otherwise).
fn bytes(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<Vec<u8>>> {
    match r.get_ref(i)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        v => Ok(Some(v.as_bytes()?.to_vec())),
    }
}

/// A written `replays` row.
struct Row {
    exchange_id: String,
    segment: String,
    outcome: compare::Outcome,
    candidate: Observation,
}

async fn replay_one(
    route: &Route,
    noise: &[Pointer],
    (client, base): &(Client, http::uri::PathAndQuery),
    opts: &Options,
    side: &Side,
    logged: Logged,
) -> Row {
    let started = Instant::now();
    let method = Method::from_bytes(logged.method.as_bytes()).unwrap_or(Method::GET);
    let headers = headers(&logged.headers, route);
    let base = base.path().trim_end_matches('/');
    let pq = match &logged.query {
        Some(q) => format!("{base}{}?{q}", logged.path),
        None => format!("{base}{}", logged.path),
    };
    let uri = client.uri_for(http::uri::PathAndQuery::try_from(pq).ok().as_ref());
    let body = Bytes::from(logged.body.unwrap_or_default());
    let req = upstream::request(method, uri, headers, UpBody::full(body));
    let mut candidate = match client.send_within(req, opts.timeout).await {
        Err(e) => Observation::failed(e.to_string(), started.elapsed()),
        Ok(resp) => {
            let status = resp.status().as_u16();
            let coding = crate::coding::Coding::of(resp.headers());
            let read = collect_capped(resp.into_body(), side.cap);
            match tokio::time::timeout(opts.timeout, read).await {
                Ok(Ok((body, truncated))) => {
                    let mut o = Observation {
                        status: Some(status),
                        body,
                        truncated,
                        latency: started.elapsed(),
                        coding,
                        ..Observation::default()
                    };
                    o.decode(side.cap);
                    o
                }
                Ok(Err(e)) => {
                    Observation::failed(format!("body broke off: {e}"), started.elapsed())
                }
                Err(_) => Observation::failed("timed out", started.elapsed()),
            }
        }
    };
    // Redacted before it is compared: the stored incumbent answer is too.
    candidate.body = side.redactor.body(&candidate.body);
    let incumbent = Observation {
        status: logged.incumbent_status,
        body: Bytes::from(logged.incumbent_body.unwrap_or_default()),
        ..Observation::default()
    };
    let mut outcome = compare::compare(&route.compare, &incumbent, &candidate, noise);
    if let (Some(spec), Some(compare::Pending::Llm)) = (route.llm(), outcome.pending) {
        // llm mode: both answers decoded; stages that call out are not run here.
        let read = |o: &Observation| crate::reading::Reading::of(spec.protocol, o);
        if let (Some(i), Some(c)) = (read(&incumbent), read(&candidate)) {
            outcome =
                compare::llm::decide_offline(spec, i.completion.as_ref(), c.completion.as_ref());
        }
    }
    Row {
        exchange_id: logged.id,
        segment: logged.segment,
        outcome,
        candidate,
    }
}

/// The stored request headers, without redacted values and hop-by-hop
/// headers, with the route's `mirror.set_headers`.
fn headers(stored: &str, route: &Route) -> HeaderMap {
    let mut out = HeaderMap::new();
    let parsed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(stored).unwrap_or_default();
    for (name, value) in parsed {
        let Some(value) = value.as_str() else {
            continue;
        };
        if value == REDACTED || name == "host" || name == "content-length" {
            continue;
        }
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            out.insert(n, v);
        }
    }
    strip_hop_by_hop(&mut out);
    for name in &route.mirror.strip_headers {
        out.remove(name);
    }
    for (name, value) in &route.mirror.set_headers {
        out.insert(name.clone(), value.clone());
    }
    out
}

fn write(conn: &std::sync::Mutex<Connection>, label: &str, row: &Row) -> rusqlite::Result<()> {
    let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
    let c = &row.candidate;
    let diff = serde_json::to_string(&row.outcome.diffs).unwrap_or_else(|_| "[]".into());
    conn.execute(
        "INSERT OR REPLACE INTO replays (label, exchange_id, segment, ts, verdict, score, diff,
             candidate_status, candidate_ms, candidate_body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            label,
            row.exchange_id,
            row.segment,
            store::now_ms(),
            row.outcome.verdict.as_str(),
            row.outcome.score,
            diff,
            c.status,
            c.latency.as_secs_f64() * 1000.0,
            c.body.as_ref(),
        ],
    )?;
    Ok(())
}
