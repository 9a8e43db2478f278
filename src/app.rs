//! A whole running Understudy: store, proxy listener and admin listener, and the
//! order of a graceful stop: stop accepting → drain requests → finish settle
//! tasks → flush every queued row.

use crate::admin;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::proxy::{Proxy, server};
use crate::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
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
}

/// A started Understudy. Dropping it does not stop it: call [`Running::stop`].
pub struct Running {
    pub proxy: Arc<Proxy>,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    stop_tx: watch::Sender<bool>,
    proxy_task: JoinHandle<()>,
    admin_task: JoinHandle<()>,
}

/// Opens the store, binds both listeners and starts serving.
pub async fn start(config: Config) -> Result<Running, Error> {
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
    let listener = bind(config.listen.addr).await?;
    let admin_listener = bind(config.admin.addr).await?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen.addr,
        source,
    })?;
    let admin_addr = admin_listener.local_addr().map_err(|source| Error::Bind {
        addr: config.admin.addr,
        source,
    })?;
    let proxy = Arc::new(Proxy::new(config.clone(), store, metrics));
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _closed = rx.wait_for(|s| *s).await;
    };
    let proxy_task = tokio::spawn(server::serve(
        proxy.clone(),
        listener,
        acceptor,
        config.listen.header_read_timeout,
        config.listen.drain_timeout,
        stopped(stop_rx.clone()),
    ));
    let admin_task = tokio::spawn(admin::serve(
        proxy.clone(),
        admin_listener,
        stopped(stop_rx),
    ));
    tracing::info!(%addr, %admin_addr, routes = config.routes.len(), "Understudy listening");
    Ok(Running {
        proxy,
        addr,
        admin_addr,
        stop_tx,
        proxy_task,
        admin_task,
    })
}

impl Running {
    /// Graceful stop. Returns once every row is in SQLite.
    pub async fn stop(self) {
        let _sent = self.stop_tx.send(true);
        if let Err(e) = self.proxy_task.await {
            tracing::error!(error = %e, "Proxy listener task failed");
        }
        let drain = self.proxy.runtime().config.listen.drain_timeout;
        if !self.proxy.tasks.wait_idle(drain).await {
            tracing::warn!(
                left = self.proxy.tasks.running(),
                "Settle tasks still running at stop"
            );
        }
        self.proxy.store.close_async().await;
        if let Err(e) = self.admin_task.await {
            tracing::error!(error = %e, "Admin listener task failed");
        }
        tracing::info!("Stopped; every queued row is written");
    }
}
