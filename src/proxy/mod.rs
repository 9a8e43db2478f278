//! The exchange path and its shared state; the flow, step by step, is
//! `docs/src/design/architecture.md`. The client's path never blocks on side
//! work: mirroring, comparison and logging are bounded and counted. The one
//! wait is [`suggest`]'s (`recommend` stage), bounded by
//! `autonomy.suggest_timeout`.

mod answer;
pub mod body;
pub mod cascade;
pub mod conform;
pub mod conn;
pub mod error;
pub mod handle;
pub mod headers;
pub mod mirror;
mod outcome;
pub mod server;
pub mod settle;
mod splice;
pub mod sse;
mod stage;
pub mod suggest;

use crate::config::Config;
use crate::limit::Limit;
use crate::metrics::Metrics;
use crate::rollout::{self, Rollout};
use crate::runtime::{self, Owner, ReloadError};
use crate::store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

pub use error::Error;

/// The proxy: shared by every connection, request and settle task.
pub struct Proxy {
    /// The current runtime, swapped whole on reload; read on every request
    /// without a lock.
    pub runtime: Owner,
    pub store: Store,
    pub metrics: Metrics,
    pub rollout: Rollout,
    pub tasks: Arc<Tasks>,
    /// Client requests waiting for an upstream's answer; none left means 503.
    pub in_flight: Limit,
    /// Deliveries of approved answers and reviews (docs/src/concepts/stages.md).
    pub outbox: crate::autonomy::outbox::Outbox,
}

impl Proxy {
    pub fn new(config: Arc<Config>, store: Store, metrics: Metrics) -> Proxy {
        let rollout = Rollout::from_config(&config);
        let in_flight = Limit::new(config.listen.max_in_flight);
        let outbox = crate::autonomy::outbox::Outbox::new(&store, &config, &metrics);
        Proxy {
            in_flight,
            runtime: Owner::new(config),
            store,
            metrics,
            rollout,
            tasks: Arc::default(),
            outbox,
        }
    }

    /// Reloads the config file (see [`runtime::reload`]).
    pub async fn reload(&self) -> Result<Vec<rollout::Change>, ReloadError> {
        runtime::reload(&self.runtime, &self.rollout, &self.metrics).await
    }
}

/// Counts settle tasks so a graceful stop can wait for their rows.
#[derive(Default)]
pub struct Tasks {
    running: AtomicUsize,
    idle: Notify,
}

impl Tasks {
    /// Spawns `fut`, counted until it ends.
    pub fn spawn(self: &Arc<Self>, fut: impl Future<Output = ()> + Send + 'static) {
        self.running.fetch_add(1, Ordering::AcqRel);
        let tasks = self.clone();
        tokio::spawn(async move {
            fut.await;
            if tasks.running.fetch_sub(1, Ordering::AcqRel) == 1 {
                tasks.idle.notify_waiters();
            }
        });
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Waits until no task runs, or `limit` passes. Returns whether all ended.
    pub async fn wait_idle(&self, limit: Duration) -> bool {
        let wait = async {
            loop {
                let notified = self.idle.notified();
                if self.running() == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}
