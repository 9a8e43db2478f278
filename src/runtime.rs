//! The runtime owner: what a request needs from the config ([`Runtime`],
//! swapped whole on reload) kept apart from what lives across reloads
//! ([`Live`]: pooled clients with their connect back-off, mirror and judge
//! permits, learned noise), and [`reload`], which the file watcher and the
//! admin API both call.
//!
//! A reload never rebuilds live state it can keep: a route keeps its permits
//! (their ceiling follows the file), and keeps each client, pool and back-off
//! while that upstream's settings are unchanged. So a route never runs more
//! than its mirror bound, however often the file is reloaded.

use crate::compare::noise::Learner;
use crate::config::{self, Compare, Config, Route, Upstream};
use crate::limit::Limit;
use crate::metrics::Metrics;
use crate::rollout::{self, Rollout};
use crate::store::redact::Redactor;
use crate::upstream::{Client, tls_client_config};
use arc_swap::ArcSwap;
use http::uri::PathAndQuery;
use std::sync::{Arc, Mutex};

/// A route's judge (`compare.mode = "judge"`): its client and permits.
pub struct Judge {
    pub client: Client,
    /// The judge URL's path and query.
    pub path: Option<PathAndQuery>,
    pub permits: Arc<Limit>,
}

/// A route's embeddings endpoint (`compare.text` names `embedding`).
pub struct Embedder {
    pub client: Client,
    /// The endpoint URL's path and query.
    pub path: Option<PathAndQuery>,
    pub permits: Arc<Limit>,
}

/// A route's noise learning (`compare.noise`): the learned pointers and the
/// second incumbent, if one is configured.
pub struct Noise {
    pub learner: Arc<Learner>,
    pub secondary: Option<Client>,
}

/// What lives across reloads for one route (by name).
pub struct Live {
    pub incumbent: Client,
    pub candidate: Option<Client>,
    pub mirror_permits: Arc<Limit>,
    pub judge: Option<Judge>,
    pub noise: Option<Noise>,
    pub embedder: Option<Embedder>,
    /// Candidate spend on mirrors today, and the sample's focus (docs/src/guide/llm.md).
    pub spend: Arc<crate::spend::Spend>,
}

/// One route: its settings from the file and its live state.
pub struct RouteRuntime {
    pub cfg: Route,
    pub live: Live,
}

/// Everything a request needs from the config, swapped whole on reload.
pub struct Runtime {
    pub config: Arc<Config>,
    pub routes: Vec<Arc<RouteRuntime>>,
    pub redactor: Redactor,
}

impl Runtime {
    /// The first route, in file order, that takes this request.
    pub fn find(&self, parts: &http::request::Parts) -> Option<&Arc<RouteRuntime>> {
        self.routes
            .iter()
            .find(|r| crate::route::matches(&r.cfg, parts))
    }

    fn route(&self, name: &str) -> Option<&RouteRuntime> {
        self.routes
            .iter()
            .find(|r| r.cfg.name == name)
            .map(|r| &**r)
    }

    /// The runtime for `config`, carrying the live state of `previous`'s
    /// routes of the same name.
    fn build(config: Arc<Config>, previous: Option<&Runtime>) -> Runtime {
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let before = previous.and_then(|p| p.route(&r.name));
                Arc::new(RouteRuntime {
                    cfg: r.clone(),
                    live: Live::carry(r, before.map(|b| &b.live), &config.store.path),
                })
            })
            .collect();
        let redactor = Redactor::new(
            &config.store.redact_headers,
            &config.store.redact_json,
            &config.store.redact_query,
        );
        Runtime {
            config,
            routes,
            redactor,
        }
    }
}

impl Live {
    /// The live state of `route`: what `before` has that still fits the
    /// route's settings, and new parts for the rest.
    fn carry(route: &Route, before: Option<&Live>, store: &std::path::Path) -> Live {
        let before_candidate = before.and_then(|b| b.candidate.as_ref());
        Live {
            incumbent: client(
                route,
                before.map(|b| &b.incumbent),
                &route.incumbent,
                "incumbent",
            ),
            candidate: route
                .candidate
                .as_ref()
                .map(|c| client(route, before_candidate, c, "candidate")),
            mirror_permits: limit(
                before.map(|b| &b.mirror_permits),
                route.mirror.max_in_flight,
            ),
            judge: judge(route, before.and_then(|b| b.judge.as_ref())),
            noise: noise(route, before.and_then(|b| b.noise.as_ref()), store),
            embedder: embedder(route, before.and_then(|b| b.embedder.as_ref())),
            spend: before.map_or_else(|| spend(route, store), |b| b.spend.clone()),
        }
    }
}

/// The client `before` had, while its upstream settings are the same (its
/// pool and back-off go on), else a new one. The route's private CA, if any,
/// is trusted for every call of the route.
fn client(route: &Route, before: Option<&Client>, u: &Upstream, target: &'static str) -> Client {
    match before {
        Some(c) if c.upstream() == u => c.clone(),
        _ => Client::new(u, target, &route_tls(route)),
    }
}

/// The limit `before` had, with the new ceiling (slots out stay out), else a new one.
fn limit(before: Option<&Arc<Limit>>, max: usize) -> Arc<Limit> {
    match before {
        Some(l) => {
            l.set_max(max);
            l.clone()
        }
        None => Arc::new(Limit::new(max)),
    }
}

fn judge(route: &Route, before: Option<&Judge>) -> Option<Judge> {
    let cfg = match &route.compare {
        Compare::Judge(cfg) => cfg,
        Compare::Llm(l) => l.judge.as_ref()?,
        _ => return None,
    };
    let (upstream, path) = Upstream::endpoint(&cfg.url, cfg.timeout);
    Some(Judge {
        client: client(route, before.map(|b| &b.client), &upstream, "judge"),
        path: Some(path),
        permits: limit(before.map(|b| &b.permits), cfg.max_in_flight),
    })
}

fn embedder(route: &Route, before: Option<&Embedder>) -> Option<Embedder> {
    let cfg = route.llm()?.embedding.as_ref()?;
    let (upstream, path) = Upstream::endpoint(&cfg.url, cfg.timeout);
    Some(Embedder {
        client: client(route, before.map(|b| &b.client), &upstream, "embedding"),
        path: Some(path),
        permits: limit(before.map(|b| &b.permits), cfg.max_in_flight),
    })
}

/// A route's spend state, seeded with today's mirror spend from the store
/// when it has a budget (a missing or unreadable store seeds nothing).
fn spend(route: &Route, store: &std::path::Path) -> Arc<crate::spend::Spend> {
    use crate::spend::Spend;
    let Some(budget) = route.mirror.budget else {
        return Arc::default();
    };
    let now = crate::store::now_ms();
    let spent = crate::store::read::ai::mirror_spend(store, &route.name, Spend::day_start_ms(now))
        .unwrap_or_else(|e| {
            tracing::warn!(route = %route.name, error = %e, "Cannot read today's mirror spend; the budget starts at 0");
            0.0
        });
    Arc::new(Spend::seeded(spent, Some(budget), now))
}

/// The route's noise learner: kept across reloads while its settings are the
/// same, else seeded with the pointers the store already holds (a missing or
/// unreadable store seeds nothing).
fn noise(route: &Route, before: Option<&Noise>, store: &std::path::Path) -> Option<Noise> {
    let Compare::Json(spec) = &route.compare else {
        return None;
    };
    let cfg = spec.noise.as_ref()?;
    let learner = match before {
        Some(b) if b.learner.config() == cfg => b.learner.clone(),
        _ => {
            let persisted = crate::store::read::noise(&[store.to_path_buf()], Some(&route.name))
                .map(|rows| rows.into_iter().map(|n| n.pointer).collect())
                .unwrap_or_default();
            Arc::new(Learner::new(cfg, persisted))
        }
    };
    let before_secondary = before.and_then(|b| b.secondary.as_ref());
    let secondary = cfg
        .secondary
        .as_ref()
        .map(|u| client(route, before_secondary, u, "incumbent"));
    Some(Noise { learner, secondary })
}

/// The TLS settings for a route's own calls: the web roots plus its `tls_ca`.
fn route_tls(route: &Route) -> rustls::ClientConfig {
    tls_client_config(route.incumbent.tls_ca.as_slice())
}

/// Owns the current [`Runtime`]: read on every request without a lock,
/// replaced whole by [`reload`].
pub struct Owner {
    current: ArcSwap<Runtime>,
    /// One reload at a time (each builds on the one before).
    reloading: Mutex<()>,
}

impl Owner {
    pub fn new(config: Arc<Config>) -> Owner {
        Owner {
            current: ArcSwap::from_pointee(Runtime::build(config, None)),
            reloading: Mutex::new(()),
        }
    }

    /// One snapshot per request: a reload never changes a request midway.
    pub fn load(&self) -> Arc<Runtime> {
        self.current.load_full()
    }

    /// [`Owner::load`] for a short, synchronous read on the hot path (no
    /// reference count touched; do not hold it across an `.await`).
    pub fn now(&self) -> arc_swap::Guard<Arc<Runtime>> {
        self.current.load()
    }

    /// Swaps in the runtime for `config`, carrying the live state over.
    pub fn replace(&self, config: Arc<Config>) {
        let _one = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let next = Runtime::build(config, Some(&self.current.load()));
        self.current.store(Arc::new(next));
    }
}

/// Why a reload was refused; the running config stays in every case.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the running config was not loaded from a file: nothing to reload")]
    NoSource,
    #[error("{0} (the running config stays)")]
    Invalid(String),
    #[error(transparent)]
    Rollout(#[from] rollout::Error),
}

/// Reloads the config file: applies (and audits as `config`) initial weights
/// that changed, then swaps in a new runtime; all of it, or none when a step fails. Listener and store settings need a restart.
pub async fn reload(
    owner: &Owner,
    rollout: &Rollout,
    metrics: &Metrics,
) -> Result<Vec<rollout::Change>, ReloadError> {
    let current = owner.load().config.clone();
    let Some(path) = current.source.clone() else {
        return Err(ReloadError::NoSource);
    };
    let count = |result: &str| metrics.record_reload(result == "ok");
    let next = match config::load(&path) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            count("error");
            let message = e.located(&path.display().to_string()).to_string();
            tracing::error!(%message, "Config reload rejected");
            return Err(ReloadError::Invalid(message));
        }
    };
    if next.listen.addr != current.listen.addr
        || next.admin.addr != current.admin.addr
        || next.store.path != current.store.path
    {
        tracing::warn!("listen, admin and store changes take effect at the next restart");
    }
    // Whole or not at all: the rollout state is reconciled (its config
    // changes recorded together) before the new runtime is swapped in, and a
    // failure leaves both as they were.
    let changes = rollout
        .reconcile(&next, metrics)
        .await
        .inspect_err(|_| count("error"))?;
    owner.replace(next.clone());
    count("ok");
    tracing::info!(path = %path.display(), changes = changes.len(), "Config reloaded");
    Ok(changes)
}
