//! The hot path's shared state: the runtime snapshot, the store handle, metrics
//! and rollout state.
//!
//! The client's path never blocks on side work: mirroring, comparison and
//! logging run on settle tasks, bounded and counted.

pub mod body;
pub mod error;
pub mod forward;
pub mod handle;
pub mod headers;
pub mod health;
pub mod limit;
pub mod server;

use crate::config::{Config, Route};
use crate::metrics::Metrics;
use crate::rollout::Rollout;
use crate::store::Store;
use crate::store::redact::Redactor;
use arc_swap::ArcSwap;
use forward::Client;
use limit::Limit;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

pub use error::Error;

/// One route with its upstream clients and mirror permits, built at load.
pub struct RouteRuntime {
    pub cfg: Route,
    pub incumbent: Client,
    pub candidate: Option<Client>,
    pub mirror_permits: Arc<Limit>,
    /// `judge` mode's client and permits.
    pub judge: Option<crate::compare::judge::Judge>,
    /// Learned noise (`compare.noise`), shared by the route's settle tasks.
    pub noise: Option<crate::compare::noise::Learner>,
}

/// Everything a request needs from the config, swapped whole on reload.
pub struct Runtime {
    pub config: Arc<Config>,
    pub routes: Vec<Arc<RouteRuntime>>,
    pub redactor: Redactor,
}

impl Runtime {
    pub fn new(config: Arc<Config>) -> Runtime {
        let public = forward::tls_client_config(&[]);
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let private;
                let tls = match &r.incumbent.tls_ca {
                    Some(pem) => {
                        private = forward::tls_client_config(std::slice::from_ref(pem));
                        &private
                    }
                    None => &public,
                };
                Arc::new(RouteRuntime {
                    cfg: r.clone(),
                    incumbent: Client::new(&r.incumbent, "incumbent", tls),
                    candidate: r
                        .candidate
                        .as_ref()
                        .map(|c| Client::new(c, "candidate", tls)),
                    mirror_permits: Arc::new(Limit::new(r.mirror.max_in_flight)),
                    judge: crate::compare::judge::for_route(r, tls),
                    noise: crate::compare::noise::for_route(r, tls, &config.store.path),
                })
            })
            .collect();
        let redactor = Redactor::new(&config.store.redact_headers, &config.store.redact_json);
        Runtime {
            config,
            routes,
            redactor,
        }
    }

    /// The first route, in file order, that takes this request.
    pub fn find(&self, parts: &http::request::Parts) -> Option<&Arc<RouteRuntime>> {
        self.routes
            .iter()
            .find(|r| crate::route::matches(&r.cfg, parts))
    }
}

/// The proxy: shared by every connection and request.
pub struct Proxy {
    /// Swapped whole on reload; read on every request without a lock.
    runtime: ArcSwap<Runtime>,
    pub store: Store,
    pub metrics: Metrics,
    pub rollout: Rollout,
    pub tasks: Arc<Tasks>,
    /// Client requests waiting for an upstream's answer; none left means 503.
    pub in_flight: Limit,
}

impl Proxy {
    pub fn new(config: Arc<Config>, store: Store, metrics: Metrics) -> Proxy {
        let rollout = Rollout::from_config(&config);
        let in_flight = Limit::new(config.listen.max_in_flight);
        Proxy {
            in_flight,
            runtime: ArcSwap::from_pointee(Runtime::new(config)),
            store,
            metrics,
            rollout,
            tasks: Arc::default(),
        }
    }

    /// One snapshot per request: a reload never changes a request midway.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// [`Proxy::runtime`] for a short, synchronous read on the hot path (no
    /// reference count touched; do not hold it across an `.await`).
    pub fn runtime_now(&self) -> arc_swap::Guard<Arc<Runtime>> {
        self.runtime.load()
    }

    pub fn swap_runtime(&self, next: Runtime) {
        self.runtime.store(Arc::new(next));
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
