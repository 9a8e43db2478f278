//! The listener: accepts TCP (optionally TLS) connections and serves HTTP/1.1
//! and HTTP/2 on them until told to stop, then drains in-flight requests.

use super::Proxy;
use super::conn::{Activity, Clock, Tracked, Watched, watchdog};
use super::handle::handle;
use crate::config::Listen;
use crate::metrics::{Label, Rejected};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

/// Serves `listener` until `stop` resolves; then stops accepting and waits up to
/// `listen.drain_timeout` for open requests to finish.
pub async fn serve(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    listen: &Listen,
    stop: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(listen.header_read_timeout)
        .max_buf_size(listen.max_header_bytes)
        .max_headers(listen.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(listen.max_concurrent_streams)
        .max_header_list_size(u32::try_from(listen.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(H2_PING)
        .keep_alive_timeout(H2_PING);
    let builder = Arc::new(builder);
    let clock = Clock {
        header_read_timeout: listen.header_read_timeout,
        idle_timeout: listen.idle_timeout,
    };
    let connections = Arc::new(Semaphore::new(listen.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off, don't spin.
                    tracing::warn!(error = %e, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(open) = connections.clone().try_acquire_owned() else {
            // Closed at once: the client sees a reset, not a hang.
            proxy.metrics.record_limit_rejection(Rejected::Connections);
            drop(stream);
            continue;
        };
        let _nodelay = stream.set_nodelay(true);
        let conn = Connection {
            proxy: proxy.clone(),
            builder: builder.clone(),
            peer,
            tls: tls.clone(),
            clock,
            _open: open,
        };
        let watcher = graceful.watcher();
        tokio::spawn(conn.serve(stream, watcher));
    }
    drop(listener);
    if tokio::time::timeout(listen.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        let drain = listen.drain_timeout;
        tracing::warn!(?drain, "Drain timed out; closing the remaining connections");
    }
}

/// HTTP/2 keep-alive: a ping after this long without a frame, and the
/// connection closed when its answer takes longer.
const H2_PING: Duration = Duration::from_secs(20);

/// One accepted client connection and what it needs to be served.
struct Connection {
    proxy: Arc<Proxy>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    clock: Clock,
    /// The connection's place under `max_connections`, released when it ends.
    _open: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves the connection until it ends, is closed by a limit, or the
    /// graceful stop closes it.
    async fn serve(self, stream: TcpStream, watcher: Watcher) {
        let activity = Activity::new();
        let stream = Watched::new(stream, activity.clone());
        let metrics = self.proxy.metrics.clone();
        let peer = self.peer;
        tokio::select! {
            result = self.run(stream, activity.clone(), watcher) => {
                if let Err(e) = result {
                    if let Some(limit) = rejected_by(&*e) {
                        metrics.record_limit_rejection(limit);
                    }
                    tracing::debug!(%peer, error = %e, "Connection ended with an error");
                }
            }
            broken = watchdog(activity, self.clock) => {
                metrics.record_limit_rejection(broken);
                tracing::debug!(%peer, limit = broken.as_label(), "Connection closed by a limit");
            }
        }
    }

    async fn run(
        &self,
        stream: Watched<TcpStream>,
        activity: Arc<Activity>,
        watcher: Watcher,
    ) -> Result<(), BoxError> {
        let is_tls = self.tls.is_some();
        let (proxy, peer) = (self.proxy.clone(), self.peer);
        let service = service_fn(move |req| {
            let in_progress = activity.begin();
            let proxy = proxy.clone();
            async move {
                let resp = handle(proxy, req, peer, is_tls).await;
                Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, in_progress)))
            }
        });
        match &self.tls {
            None => {
                let conn = self.builder.serve_connection(TokioIo::new(stream), service);
                watcher.watch(conn.into_owned()).await
            }
            Some(acceptor) => {
                let tls_stream = acceptor.accept(stream).await?;
                let conn = self
                    .builder
                    .serve_connection(TokioIo::new(tls_stream), service);
                watcher.watch(conn.into_owned()).await
            }
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The limit behind hyper's own refusals: a head too large (hyper answers
/// 431 and cannot tell bytes from count) or too slow.
fn rejected_by(e: &(dyn std::error::Error + 'static)) -> Option<Rejected> {
    let e = e.downcast_ref::<hyper::Error>()?;
    if e.is_parse_too_large() {
        Some(Rejected::Headers)
    } else if e.is_timeout() {
        Some(Rejected::HeaderTimeout)
    } else {
        None
    }
}
