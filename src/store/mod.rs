//! The exchange log: a bounded queue in front of one SQLite writer thread.
//!
//! The request path only ever calls [`Store::record`], which never blocks: a
//! full queue drops the row and counts it (`store_rows_dropped_total`).
//! [`Store::close`] flushes every queued row; a graceful stop calls it last.
//!
//! The writer thread owns every write to the file: exchange rows, skip
//! counts, and (as messages with a reply) rollout events and feedback
//! ([`Store::append_event`], [`Store::add_feedback`]). Reading (reports,
//! `show`, the audit) goes through [`read`] on read-only connections, which
//! WAL lets run beside the writer.

pub mod approvals;
mod blob;
pub mod columns;
pub mod deliveries;
pub mod events;
pub mod policy;
pub mod read;
pub mod redact;
pub mod schema;
pub mod skips;
pub mod writer;

#[cfg(test)]
mod tests;

use crate::metrics::Metrics;
use bytes::Bytes;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// One exchange as it is written to the `exchanges` table (already redacted).
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub id: String,
    pub ts_ms: i64,
    pub route: String,
    pub segment: String,
    pub served_by: &'static str,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// JSON object of request headers.
    pub request_headers: String,
    pub request_body: Option<Bytes>,
    pub verdict: &'static str,
    /// JSON array of differing pointers.
    pub diff: String,
    pub score: Option<f64>,
    pub skip_reason: Option<String>,
    pub incumbent_status: Option<u16>,
    pub incumbent_ms: Option<f64>,
    pub incumbent_body: Option<Bytes>,
    pub incumbent_error: Option<String>,
    pub candidate_status: Option<u16>,
    pub candidate_ms: Option<f64>,
    pub candidate_body: Option<Bytes>,
    pub candidate_error: Option<String>,
    pub fallback: bool,
    pub safety: Option<String>,
    /// Pointers seen differing between two incumbent answers on this exchange
    /// (noise learning); upserted into the `noise` table with the row.
    pub noise: Vec<String>,
    /// llm mode: the text stage that decided (`decided_by`).
    pub decided_by: Option<&'static str>,
    /// llm mode: time to first token, tokens and cost of each side (docs/src/guide/llm.md).
    pub incumbent_llm: crate::reading::Figures,
    pub candidate_llm: crate::reading::Figures,
    /// `approve` stage (docs/src/concepts/stages.md): a pending approval written with the row.
    pub approval: Option<Box<approvals::NewApproval>>,
}

/// Errors at the store boundary; each names the database file involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the directory of the store file {path} does not exist (create it first)")]
    MissingDir { path: PathBuf },
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no exchange with id {id:?}")]
    UnknownExchange { path: PathBuf, id: String },
    #[error("{path}: the store is closed")]
    Closed { path: PathBuf },
    #[error("no approval with id {id}")]
    UnknownApproval { id: i64 },
    #[error("approval {id} was pending longer than approval_ttl: it expired")]
    Expired { id: i64 },
    #[error("approval {id} is {status}, not pending")]
    NotPending { id: i64, status: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a rusqlite error with the file it happened on.
    pub(crate) fn sqlite(path: impl Into<PathBuf>) -> impl FnOnce(rusqlite::Error) -> Error {
        let path = path.into();
        move |source| Error::Sqlite { path, source }
    }

    /// Like [`Error::sqlite`], for a bare connection (its file, or `:memory:`).
    pub(crate) fn on(conn: &Connection) -> impl FnOnce(rusqlite::Error) -> Error {
        Error::sqlite(conn_path(conn))
    }
}

pub(crate) fn conn_path(conn: &Connection) -> PathBuf {
    PathBuf::from(conn.path().filter(|p| !p.is_empty()).unwrap_or(":memory:"))
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Opens (creating it if needed) a database file for writing and migrates it.
/// The parent directory must exist: a typo in `store.path` should be an error,
/// not a directory tree appearing somewhere.
pub(crate) fn open_rw(path: &Path) -> Result<Connection> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::MissingDir {
            path: path.to_path_buf(),
        });
    }
    create_private(path)?;
    let mut conn = Connection::open(path).map_err(Error::sqlite(path))?;
    schema::migrate(&mut conn).map_err(Error::sqlite(path))?;
    Ok(conn)
}

/// Creates the database file owner-only (`0600`, whatever the umask) when it
/// does not exist yet, before SQLite opens it: it holds request and answer
/// bodies. SQLite gives the `-wal` and `-shm` files it creates beside it the
/// mode of the database file. An existing file keeps the mode its owner gave it.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if path == Path::new(":memory:") {
        return Ok(());
    }
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        // The umask can only have taken bits away; set exactly 0600.
        Ok(_file) => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// The writer's last outcome, read by `/readyz`.
#[derive(Debug, Default)]
pub(crate) struct Health(Mutex<Option<(i64, String)>>);

impl Health {
    /// A write failed: remembered with the time of the first failure in a row.
    pub(crate) fn failed(&self, error: &dyn std::fmt::Display) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let since = h.as_ref().map_or_else(now_ms, |(since, _)| *since);
        *h = Some((since, error.to_string()));
    }

    pub(crate) fn ok(&self) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if h.is_some() {
            tracing::info!("Store writes succeed again");
            *h = None;
        }
    }

    fn get(&self) -> Option<(i64, String)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What travels to the writer thread.
pub(crate) enum Msg {
    Row(Box<Record>),
    /// Commit everything queued before this message, then answer.
    Flush(oneshot::Sender<()>),
    /// Commit what is queued, append rollout events in one transaction,
    /// answer with their versions.
    Events(Vec<events::NewEvent>, oneshot::Sender<Result<Vec<i64>>>),
    /// Commit what is queued (the rated exchange may be in it), then record
    /// the rating.
    Feedback(events::NewFeedback, oneshot::Sender<Result<events::Rated>>),
    /// A local event reached the fleet's PostgreSQL as this version.
    Pushed(i64, i64, oneshot::Sender<Result<()>>),
    /// Commit what is queued, then run one change of `approvals`.
    Approvals(approvals::Op, oneshot::Sender<Result<approvals::Done>>),
    /// Commit what is queued, then run one change of `deliveries`.
    Deliveries(deliveries::Op, oneshot::Sender<Result<()>>),
}

/// A cheap, cloneable handle on the exchange log.
///
/// Every clone feeds the same writer thread. The sender sits behind an
/// `RwLock` only so that [`Store::close`] can take it away: `record` takes the
/// read side, which is never contended except for the instant `close` swaps
/// the sender out.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    health: Arc<Health>,
    tx: RwLock<Option<SyncSender<Msg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    skips: Arc<skips::Tally>,
    metrics: Metrics,
}

impl Store {
    /// Opens or creates the database, migrates it and starts the writer thread.
    pub fn open(cfg: &crate::config::Store, metrics: Metrics) -> Result<Store> {
        let conn = open_rw(&cfg.path)?;
        let (tx, rx) = sync_channel(cfg.queue_capacity);
        let skips = Arc::new(skips::Tally::default());
        let health = Arc::new(Health::default());
        let writer = writer::Writer::new(conn, cfg, skips.clone(), metrics.clone(), health.clone());
        let handle = std::thread::Builder::new()
            .name("understudy-store".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| Error::Io {
                path: cfg.path.clone(),
                source,
            })?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: cfg.path.clone(),
                health,
                tx: RwLock::new(Some(tx)),
                writer: Mutex::new(Some(handle)),
                skips,
                metrics,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Why the last write failed and since when (unix ms); `None` when the
    /// last write succeeded.
    pub fn failing(&self) -> Option<(i64, String)> {
        self.inner.health.get()
    }

    /// Queues one row. Never blocks: a full queue, or a closed store, drops
    /// the row, counts it in `store_rows_dropped_total` and returns false.
    pub fn record(&self, rec: Record) -> bool {
        let m = &self.inner.metrics;
        let tx = self.inner.tx.read().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = tx.as_ref() else {
            m.store_rows_dropped.inc();
            return false;
        };
        // Count before sending so the writer's decrement can never come first.
        m.store_queue_depth.inc();
        match tx.try_send(Msg::Row(Box::new(rec))) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                m.store_queue_depth.dec();
                m.store_rows_dropped.inc();
                false
            }
        }
    }

    /// Counts one skipped mirror of an exchange that gets no row (the
    /// incumbent served it and there is nothing to compare). Never blocks for
    /// long: a short lock on the tally, which the writer commits with its next
    /// batch (or within `store.flush_interval`).
    pub fn skip(&self, route: &str, segment: String, reason: &'static str, ts_ms: i64) {
        self.inner.skips.add(route, segment, reason, ts_ms);
    }

    /// Returns once every row queued before the call is committed (at once
    /// when the store is closed: closing committed them already).
    pub async fn flush(&self) {
        let Some(tx) = self.sender() else { return };
        let (done, wait) = oneshot::channel();
        // The control message must not be lost to a full queue, so it takes the
        // blocking `send`, on a blocking thread rather than a runtime worker.
        let sent = tokio::task::spawn_blocking(move || tx.send(Msg::Flush(done)).is_ok()).await;
        if matches!(sent, Ok(true)) {
            // An error means the writer is gone, and with it anything to wait for.
            wait.await.ok();
        }
    }

    /// Appends a rollout event through the writer and returns its version.
    pub async fn append_event(&self, event: events::NewEvent) -> Result<i64> {
        let versions = self.append_events(vec![event]).await?;
        versions.first().copied().ok_or_else(|| Error::Closed {
            path: self.inner.path.clone(),
        })
    }

    /// Appends rollout events through the writer, all or none; their versions.
    pub async fn append_events(&self, events: Vec<events::NewEvent>) -> Result<Vec<i64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.ask(|reply| Msg::Events(events, reply)).await
    }

    /// Records a rating through the writer; an unknown exchange id is an
    /// error. Returns the rated exchange's route, segment and server.
    pub async fn add_feedback(&self, feedback: events::NewFeedback) -> Result<events::Rated> {
        self.ask(|reply| Msg::Feedback(feedback, reply)).await
    }

    /// Notes that local event `local` became version `fleet` in PostgreSQL.
    pub async fn mark_pushed(&self, local: i64, fleet: i64) -> Result<()> {
        self.ask(|reply| Msg::Pushed(local, fleet, reply)).await
    }

    /// Per route, the newest fleet version this replica has.
    pub fn fleet_applied(&self) -> Result<Vec<(String, i64)>> {
        events::fleet_applied(&read::open_ro(self.path())?)
    }

    /// Which of these fleet versions (route, version) this replica already has.
    pub fn has_fleet_versions(&self, wanted: &[(String, i64)]) -> Result<Vec<bool>> {
        let conn = read::open_ro(self.path())?;
        wanted
            .iter()
            .map(|(route, v)| events::has_fleet_version(&conn, route, *v))
            .collect()
    }

    /// Local events the fleet does not have yet, oldest first.
    pub fn unpushed(&self) -> Result<Vec<events::RolloutEvent>> {
        events::unpushed(&read::open_ro(self.path())?)
    }

    /// Changes `approvals` through the writer (a decision, an expiry sweep).
    pub async fn approvals(&self, op: approvals::Op) -> Result<approvals::Done> {
        self.ask(|reply| Msg::Approvals(op, reply)).await
    }

    /// Changes `deliveries` through the writer (a queued answer, a try).
    pub async fn deliveries(&self, op: deliveries::Op) -> Result<()> {
        self.ask(|reply| Msg::Deliveries(op, reply)).await
    }

    /// The latest stage of every route and segment that has one recorded.
    pub fn latest_stages(&self) -> Result<Vec<(String, String, String)>> {
        events::latest_stages(&read::open_ro(self.path())?)
    }

    /// The last `limit` rollout events (of one route, or all), oldest first,
    /// on a read-only connection.
    pub fn history(&self, route: Option<&str>, limit: usize) -> Result<Vec<events::RolloutEvent>> {
        events::list(&read::open_ro(self.path())?, route, limit)
    }

    /// The latest weight of every route and segment that has one.
    pub fn latest_weights(&self) -> Result<Vec<(String, String, f64)>> {
        events::latest_weights(&read::open_ro(self.path())?)
    }

    /// Sends a control message the writer answers. It must not be lost to a
    /// full queue, so it takes the blocking `send`, on a blocking thread.
    async fn ask<T: Send + 'static>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T>>) -> Msg,
    ) -> Result<T> {
        let closed = || Error::Closed {
            path: self.inner.path.clone(),
        };
        let tx = self.sender().ok_or_else(closed)?;
        let (reply, answer) = oneshot::channel();
        let msg = make(reply);
        let sent = tokio::task::spawn_blocking(move || tx.send(msg).is_ok()).await;
        if !matches!(sent, Ok(true)) {
            return Err(closed());
        }
        answer.await.map_err(|_| closed())?
    }

    /// The synchronous form of [`Store::flush`], for non-async callers (it
    /// panics inside a tokio runtime, like every `blocking_recv`).
    pub fn flush_blocking(&self) {
        let Some(tx) = self.sender() else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Msg::Flush(done)).is_ok() {
            wait.blocking_recv().ok();
        }
    }

    /// Commits everything queued, stops and joins the writer thread. Later
    /// `record` calls return false and count as dropped. Blocking: from async
    /// code use [`Store::close_async`]. Calling it again is harmless.
    pub fn close(&self) {
        let mut writer = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
        // Dropping the last sender ends the writer's loop once it has drained
        // (and committed) everything still in the queue.
        drop(
            self.inner
                .tx
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        if let Some(handle) = writer.take()
            && handle.join().is_err()
        {
            tracing::error!(path = %self.inner.path.display(), "Store writer thread panicked");
        }
    }

    /// [`Store::close`] on a blocking thread.
    pub async fn close_async(&self) {
        let store = self.clone();
        if tokio::task::spawn_blocking(move || store.close())
            .await
            .is_err()
        {
            tracing::error!(path = %self.inner.path.display(), "Store close task failed");
        }
    }

    /// Whether [`Store::close`] has run.
    pub fn is_closed(&self) -> bool {
        self.sender().is_none()
    }

    fn sender(&self) -> Option<SyncSender<Msg>> {
        self.inner
            .tx
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
