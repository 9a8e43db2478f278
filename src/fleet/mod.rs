//! The fleet (docs/src/concepts/fleet.md): several replicas sharing one rollout state, pooled
//! evidence and, optionally, their rows through PostgreSQL.
//!
//! What is shared: `rollout_events` (append-only, one version sequence per
//! route), per-second `evidence`, the `replicas` heartbeat and shipped
//! `exchanges`. What stays per replica: the live weights (a copy of the
//! fleet's, applied within a second), the SQLite log, and a local guard that
//! may lower a weight at once but never raise one. Nothing on the client's
//! path touches PostgreSQL: requests read the in-memory weights, settle tasks
//! add to an in-memory evidence buffer, and one background session
//! ([`sync`]) does all the talking.

mod connect;
pub mod evidence;
mod pg;
pub mod read;
mod schema;
pub mod ship;
mod sync;

use crate::metrics::FleetMetrics;
use crate::rollout::Change;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

pub use connect::connect_once;
pub use sync::run;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("PostgreSQL: {0}")]
    Pg(#[from] tokio_postgres::Error),
    #[error("PostgreSQL pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("cannot set up the PostgreSQL pool: {0}")]
    Build(String),
    #[error("cannot read the CA file {path}: {source}")]
    Ca {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(
        "route {route:?} changed in the fleet after version {applied}, the last this replica \
         applied; look again and retry"
    )]
    Conflict { route: String, applied: i64 },
    #[error(
        "the fleet's PostgreSQL is unreachable (since {since}): a raise needs the fleet; \
         lowering a weight does not"
    )]
    Disconnected { since: String },
    #[error("PostgreSQL did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("another live replica is named {0:?}: this one stays out of the fleet until it goes")]
    NameInUse(String),
    #[error("cannot read the local store: {0}")]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Rollout(#[from] crate::rollout::Error),
}

impl crate::rollout::FleetLink for Fleet {
    fn replica(&self) -> &str {
        Fleet::replica(self)
    }

    fn connected(&self) -> bool {
        Fleet::connected(self)
    }

    fn readiness(&self) -> String {
        Fleet::readiness(self)
    }

    fn kick(&self) {
        Fleet::kick(self);
    }

    fn set_applied(&self, route: &str, version: i64) {
        Fleet::set_applied(self, route, version);
    }

    fn add_evidence(&self, route: &str, segment: &str, sample: &crate::rollout::guard::Sample) {
        Fleet::add_evidence(self, route, segment, sample);
    }

    fn insert_raise<'a>(
        &'a self,
        change: &'a Change,
    ) -> crate::rollout::Pending<'a, Result<i64, crate::rollout::FleetError>> {
        Box::pin(async move {
            Fleet::insert_raise(self, change)
                .await
                .map_err(|e| match e {
                    Error::Conflict { .. } => crate::rollout::FleetError::Conflict(e.to_string()),
                    other => crate::rollout::FleetError::Unavailable(other.to_string()),
                })
        })
    }
}

/// A cheap, cloneable handle on this replica's link to the fleet.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: crate::config::Fleet,
    pool: deadpool_postgres::Pool,
    pg: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// Whether the session reaches PostgreSQL, and since when it does not (unix ms).
    connected: AtomicBool,
    down_since: AtomicI64,
    /// Per route, the newest fleet version applied here.
    applied: Mutex<HashMap<String, i64>>,
    evidence: evidence::Buffer,
    metrics: FleetMetrics,
    /// Wakes the session: a local event waits to be pushed.
    kick: tokio::sync::Notify,
}

impl Fleet {
    /// The handle for `cfg` (no connection is made yet).
    pub fn new(
        cfg: &crate::config::Fleet,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Fleet, Error> {
        let (pg, tls) = connect::config(cfg)?;
        let pool = connect::pool(&pg, &tls)?;
        metrics.fleet.connected.set(0);
        Ok(Fleet {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                pool,
                pg,
                tls,
                connected: AtomicBool::new(false),
                down_since: AtomicI64::new(crate::store::now_ms()),
                applied: Mutex::new(HashMap::new()),
                evidence: evidence::Buffer::default(),
                metrics: metrics.fleet.clone(),
                kick: tokio::sync::Notify::new(),
            }),
        })
    }

    pub fn replica(&self) -> &str {
        &self.inner.cfg.replica
    }

    pub fn ship_rows(&self) -> bool {
        self.inner.cfg.ship_rows
    }

    pub fn connected(&self) -> bool {
        self.inner.connected.load(Ordering::Acquire)
    }

    /// The `/readyz` line: `fleet: connected` or `fleet: disconnected since <time>`.
    pub fn readiness(&self) -> String {
        if self.connected() {
            "fleet: connected".to_string()
        } else {
            format!("fleet: disconnected since {}", self.down_since())
        }
    }

    fn down_since(&self) -> String {
        let ms = self.inner.down_since.load(Ordering::Acquire).max(0) as u64;
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        )
        .to_string()
    }

    fn set_connected(&self, up: bool) {
        let was = self.inner.connected.swap(up, Ordering::AcqRel);
        if was && !up {
            self.inner
                .down_since
                .store(crate::store::now_ms(), Ordering::Release);
        }
        self.inner.metrics.connected.set(i64::from(up));
        if !up {
            self.inner.metrics.evaluator.set(0);
        }
    }

    /// The newest fleet version of `route` applied here (0: none).
    pub fn applied(&self, route: &str) -> i64 {
        lock(&self.inner.applied).get(route).copied().unwrap_or(0)
    }

    /// Notes that `version` of `route` is in effect here (an older one is ignored).
    pub fn set_applied(&self, route: &str, version: i64) {
        let mut applied = lock(&self.inner.applied);
        let v = applied.entry(route.to_string()).or_insert(0);
        *v = (*v).max(version);
    }

    fn applied_all(&self) -> (Vec<String>, Vec<i64>) {
        lock(&self.inner.applied)
            .iter()
            .map(|(r, v)| (r.clone(), *v))
            .unzip()
    }

    /// Seeds the applied versions from this replica's SQLite cache.
    pub fn restore(&self, store: &crate::store::Store) -> Result<(), Error> {
        for (route, v) in store.fleet_applied()? {
            self.set_applied(&route, v);
        }
        Ok(())
    }

    /// Adds a settled exchange to this second's evidence (never blocks on IO).
    pub fn add_evidence(&self, route: &str, segment: &str, sample: &crate::rollout::guard::Sample) {
        self.inner.evidence.add(route, segment, sample);
    }

    /// Wakes the session to push local events now.
    pub fn kick(&self) {
        self.inner.kick.notify_one();
    }

    /// Appends a raise (or a mirror switched on) as the next version of its
    /// route, based on the version this replica applied last: [`Error::Conflict`]
    /// when the fleet holds a newer one. Returns the new version.
    pub async fn insert_raise(&self, change: &Change) -> Result<i64, Error> {
        if !self.connected() {
            return Err(Error::Disconnected {
                since: self.down_since(),
            });
        }
        let base = self.applied(&change.route);
        let pooled = pg::timed(self.inner.pool.get()).await??;
        let client: &tokio_postgres::Client = &pooled;
        let version = pg::insert_at(client, change, self.replica(), base + 1).await?;
        match version {
            Some(v) => Ok(v),
            None => Err(Error::Conflict {
                route: change.route.clone(),
                applied: base,
            }),
        }
    }
}

/// Resolves once `stop` says so (the borrow ends inside, so a future that
/// awaits this stays `Send`).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _stopping = stop.wait_for(|s| *s).await.is_ok();
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
