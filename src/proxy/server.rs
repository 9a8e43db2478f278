//! The listener: accepts TCP (optionally TLS) connections and serves HTTP/1.1
//! and HTTP/2 on them until told to stop, then drains in-flight requests.

use super::Proxy;
use super::handle::handle;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Serves `listener` until `stop` resolves; then stops accepting and waits up to
/// `drain` for open requests to finish.
pub async fn serve(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    header_read_timeout: Duration,
    drain: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
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
        let _nodelay = stream.set_nodelay(true);
        spawn_connection(&proxy, &builder, &graceful, stream, peer, tls.clone());
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(?drain, "Drain timed out; closing the remaining connections");
    }
}

fn spawn_connection(
    proxy: &Arc<Proxy>,
    builder: &Arc<auto::Builder<TokioExecutor>>,
    graceful: &GracefulShutdown,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
) {
    let proxy = proxy.clone();
    let builder = builder.clone();
    let watcher = graceful.watcher();
    tokio::spawn(async move {
        let is_tls = tls.is_some();
        let service = service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(proxy, req, peer, is_tls).await) }
        });
        let result = match tls {
            None => {
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                watcher.watch(conn.into_owned()).await
            }
            Some(acceptor) => match acceptor.accept(stream).await {
                Ok(tls_stream) => {
                    let conn = builder.serve_connection(TokioIo::new(tls_stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            },
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "Connection ended with an error");
        }
    });
}
