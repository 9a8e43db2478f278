//! A whole running Understudy: store, rollout history, proxy listener and admin
//! listener, config reloads, and the order of a graceful stop: stop accepting →
//! drain requests → finish settle tasks → flush every queued row.
//!
//! A reload (SIGHUP, a change of the file, `POST /api/v1/reload`) goes through
//! [`crate::runtime::reload`]; an invalid file leaves the running one.

use crate::admin::{self, auth::Auth};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::{Proxy, server};
use crate::rollout;
use crate::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Tls(#[from] crate::tls::Error),
    #[error("cannot restore the rollout state: {0}")]
    Rollout(#[from] rollout::Error),
    #[error("fleet: {0}")]
    Fleet(#[from] crate::fleet::Error),
}

/// Start-time settings that do not come from the config file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The admin bearer token. [`start`] reads it once from the environment
    /// variable named by `admin.token_env`; tests pass it here.
    pub admin_token: Option<String>,
    /// Serve on this many threads, each with its own current-thread runtime,
    /// `SO_REUSEPORT` listener and upstream pools (`serve --thread-per-core`);
    /// `None`: every connection on the caller's runtime.
    pub serving_threads: Option<usize>,
}

/// A started Understudy. Dropping it does not stop it: call [`Running::stop`].
pub struct Running {
    pub proxy: Arc<Proxy>,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    stop_tx: watch::Sender<bool>,
    proxy_task: JoinHandle<()>,
    admin_task: JoinHandle<()>,
    reload_task: Option<JoinHandle<()>>,
    /// The fleet session and row shipping, stopped after the settle tasks.
    fleet: Option<(watch::Sender<bool>, Vec<JoinHandle<()>>)>,
}

/// Opens the store, binds both listeners and starts serving, with the admin
/// token from the environment.
pub async fn start(config: Config) -> Result<Running, Error> {
    let admin_token = std::env::var(&config.admin.token_env).ok();
    let options = Options {
        admin_token,
        ..Options::default()
    };
    start_with(config, options).await
}

/// Like [`start`], with explicit [`Options`].
pub async fn start_with(config: Config, options: Options) -> Result<Running, Error> {
    let config = Arc::new(config);
    let metrics = Metrics::new();
    let store = Store::open(&config.store, metrics.clone())?;
    let acceptor = match &config.listen.tls {
        Some(t) => Some(crate::tls::acceptor(&t.cert, &t.key)?),
        None => None,
    };
    let bind = |addr: SocketAddr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })
    };
    let threads = options.serving_threads.unwrap_or(1).max(1);
    let listeners = reuse_port_listeners(
        config.listen.addr,
        threads,
        options.serving_threads.is_some(),
    )
    .map_err(|source| Error::Bind {
        addr: config.listen.addr,
        source,
    })?;
    let admin_listener = bind(config.admin.addr).await?;
    let addr = listeners
        .first()
        .map_or(Ok(config.listen.addr), std::net::TcpListener::local_addr)
        .map_err(|source| Error::Bind {
            addr: config.listen.addr,
            source,
        })?;
    // Clients built from here on keep one pool per serving thread.
    crate::shard::set_count(if options.serving_threads.is_some() {
        threads
    } else {
        1
    });
    let admin_addr = admin_listener.local_addr().map_err(|source| Error::Bind {
        addr: config.admin.addr,
        source,
    })?;
    let proxy = Arc::new(Proxy::new(config.clone(), store.clone(), metrics));
    proxy.rollout.notify_with(crate::notify::Notifier::start(
        &config.notify,
        &proxy.metrics,
    ));
    let fleet = match &config.fleet {
        Some(cfg) => {
            let fleet = crate::fleet::Fleet::new(cfg, &proxy.metrics)?;
            fleet.restore(&store)?;
            proxy.rollout.join_fleet(std::sync::Arc::new(fleet.clone()));
            Some(fleet)
        }
        None => None,
    };
    for c in proxy.rollout.attach(store, &config, &proxy.metrics).await? {
        tracing::info!(route = %c.route, segment = %c.segment, from = c.from, to = c.to, "Config weight applied");
    }
    let auth = Arc::new(Auth::new(options.admin_token, admin_addr));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _closed = rx.wait_for(|s| *s).await;
    };
    let connections = Arc::new(Semaphore::new(config.listen.max_connections));
    let proxy_task = if options.serving_threads.is_some() {
        per_core(&proxy, listeners, acceptor.as_ref(), &connections, &stop_rx)
    } else {
        let listen = config.listen.clone();
        let serving = proxy.clone();
        let stop = stopped(stop_rx.clone());
        let listener = listeners
            .into_iter()
            .next()
            .map(TcpListener::from_std)
            .transpose()
            .and_then(|l| l.ok_or_else(|| std::io::Error::other("no listener")))
            .map_err(|source| Error::Bind { addr, source })?;
        tokio::spawn(async move {
            server::serve(serving, listener, acceptor, &listen, connections, stop).await;
        })
    };
    let admin_task = tokio::spawn(admin::serve(
        proxy.clone(),
        admin_listener,
        auth,
        admin::limits::Limits::from(&config.admin),
        stopped(stop_rx.clone()),
    ));
    tokio::spawn(crate::admin::people::expire_loop(
        proxy.clone(),
        stopped(stop_rx.clone()),
    ));
    tokio::spawn(crate::slices::watch::run(
        proxy.clone(),
        crate::notify::Notifier::start(&config.notify, &proxy.metrics),
        stopped(stop_rx.clone()),
    ));
    let reload_task = config
        .source
        .clone()
        .map(|path| tokio::spawn(watch(proxy.clone(), path, stopped(stop_rx))));
    let fleet = fleet.map(|fleet| {
        let (tx, rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(crate::fleet::run(
            fleet.clone(),
            proxy.clone(),
            rx.clone(),
        ))];
        if fleet.ship_rows() {
            tasks.push(tokio::spawn(crate::fleet::ship::run(
                fleet,
                proxy.clone(),
                rx,
            )));
        }
        (tx, tasks)
    });
    tracing::info!(%addr, %admin_addr, routes = config.routes.len(), "Understudy listening");
    Ok(Running {
        proxy,
        addr,
        admin_addr,
        stop_tx,
        proxy_task,
        admin_task,
        reload_task,
        fleet,
    })
}

/// Binds `n` listeners to `addr` (the first one's port for the others, when
/// `addr` asks for any port), with `SO_REUSEPORT` when `reuse` is set: the
/// kernel spreads new connections over them.
fn reuse_port_listeners(
    addr: SocketAddr,
    n: usize,
    reuse: bool,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut listeners: Vec<std::net::TcpListener> = Vec::with_capacity(n);
    for _ in 0..n {
        let at = match listeners.first() {
            Some(first) => first.local_addr()?,
            None => addr,
        };
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(at),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        if reuse {
            socket.set_reuse_port(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&at.into())?;
        socket.listen(1024)?;
        listeners.push(socket.into());
    }
    Ok(listeners)
}

/// Thread per core: one thread per listener, each with its own
/// current-thread runtime serving its listener, its connections' requests
/// and their settle tasks (which run on the runtime that spawned them; the
/// thread waits for them before its runtime goes). Returns a task that ends
/// when every serving thread has.
fn per_core(
    proxy: &Arc<Proxy>,
    listeners: Vec<std::net::TcpListener>,
    acceptor: Option<&tokio_rustls::TlsAcceptor>,
    connections: &Arc<Semaphore>,
    stop_rx: &watch::Receiver<bool>,
) -> JoinHandle<()> {
    let mut threads = Vec::with_capacity(listeners.len());
    for (i, listener) in listeners.into_iter().enumerate() {
        let (proxy, acceptor) = (proxy.clone(), acceptor.cloned());
        let (connections, mut stop) = (connections.clone(), stop_rx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("understudy-serve-{i}"))
            .spawn(move || {
                crate::shard::enter(i);
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "Cannot start a serving thread's runtime");
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "Cannot serve on a listener");
                            return;
                        }
                    };
                    let listen = proxy.runtime.load().config.listen.clone();
                    let stopped = async move {
                        let _closed = stop.wait_for(|s| *s).await;
                    };
                    server::serve(
                        proxy.clone(),
                        listener,
                        acceptor,
                        &listen,
                        connections,
                        stopped,
                    )
                    .await;
                    proxy.tasks.wait_idle(listen.drain_timeout).await;
                });
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!(error = %e, "Cannot start a serving thread"),
        }
    }
    tokio::task::spawn_blocking(move || {
        for t in threads {
            if t.join().is_err() {
                tracing::error!("A serving thread panicked");
            }
        }
    })
}

/// Reloads on SIGHUP and when the file's modification time changes (polled).
async fn watch(proxy: Arc<Proxy>, path: std::path::PathBuf, stop: impl Future<Output = ()>) {
    const POLL: Duration = Duration::from_secs(1);
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen: Option<SystemTime> = modified(&path);
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let hangup = async |hup: &mut Option<tokio::signal::unix::Signal>| match hup {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    };
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = hangup(&mut hup) => {}
            _ = tick.tick() => {
                if modified(&path) == seen {
                    continue;
                }
            }
        }
        // Errors are logged and counted inside.
        let _result = proxy.reload().await;
        seen = modified(&path);
    }
}

impl Running {
    /// Graceful stop. Returns once every row is in SQLite.
    pub async fn stop(self) {
        let _sent = self.stop_tx.send(true);
        if let Err(e) = self.proxy_task.await {
            tracing::error!(error = %e, "Proxy listener task failed");
        }
        let drain = self.proxy.runtime.load().config.listen.drain_timeout;
        if !self.proxy.tasks.wait_idle(drain).await {
            tracing::warn!(
                left = self.proxy.tasks.running(),
                "Settle tasks still running at stop"
            );
        }
        if let Some(t) = self.reload_task {
            t.abort();
        }
        if let Some((stop, tasks)) = self.fleet {
            // Every row is queued by now: flush them, then the last evidence
            // and rows go to the fleet (bounded: a dead PostgreSQL cannot
            // hold the stop).
            self.proxy.store.flush().await;
            let _sent = stop.send(true);
            for t in tasks {
                if tokio::time::timeout(Duration::from_secs(10), t)
                    .await
                    .is_err()
                {
                    tracing::warn!("The fleet session did not finish within 10 s at stop");
                }
            }
        }
        self.proxy.store.close_async().await;
        if let Err(e) = self.admin_task.await {
            tracing::error!(error = %e, "Admin listener task failed");
        }
        tracing::info!("Stopped; every queued row is written");
    }
}
