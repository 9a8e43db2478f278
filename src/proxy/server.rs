//! The listener: accepts TCP (optionally TLS) connections and serves HTTP/1.1
//! and HTTP/2 on them until told to stop, then drains in-flight requests. On
//! TLS, ALPN decides the protocol (`h2`: HTTP/2 only; `http/1.1` or none:
//! HTTP/1.1 only); a plain connection is served by what its first bytes are
//! (HTTP/2 with prior knowledge, h2c, or HTTP/1).

use super::Proxy;
use super::conn::{self, Activity, CLOSE, Clock, STOP, Sentinel, Tracked, Watched};
use super::handle::handle;
use super::headers::Forwarding;
use crate::config::Listen;
use crate::metrics::{Label, Rejected};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

/// Serves `listener` until `stop` resolves; then stops accepting and waits up to
/// `listen.drain_timeout` for open requests to finish. Every open connection
/// holds one of `connections`' permits (`max_connections` of them, shared by
/// every listener of a thread-per-core proxy): all of them back means drained.
///
/// The stop is ours rather than hyper-util's `GracefulShutdown`: a
/// connection accepted just before it (or still in the kernel's backlog)
/// has its first request answered before the connection is closed, so no
/// client whose connection was accepted goes without an answer.
pub async fn serve(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    listen: &Listen,
    connections: Arc<Semaphore>,
    stop: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(listen.header_read_timeout)
        .max_buf_size(listen.max_header_bytes)
        .keep_alive(true);
    // hyper's own limit is 100 header fields, parsed on the stack; setting
    // any value moves the parse to a heap buffer per request (hyper's docs
    // measure some 5 %), so only a different limit is set.
    if listen.max_headers != HYPER_MAX_HEADERS {
        builder.http1().max_headers(listen.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(listen.max_concurrent_streams)
        .max_header_list_size(u32::try_from(listen.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(H2_PING)
        .keep_alive_timeout(H2_PING);
    let builders = Arc::new(Builders {
        http1: builder.clone().http1_only(),
        http2: builder.clone().http2_only(),
        sniff: builder,
    });
    let sentinel = Sentinel::start(Clock {
        header_read_timeout: listen.header_read_timeout,
        idle_timeout: listen.idle_timeout,
    });
    let accept = |stream: TcpStream, peer: SocketAddr| {
        let Ok(open) = connections.clone().try_acquire_owned() else {
            // Closed at once: the client sees a reset, not a hang.
            proxy.metrics.record_limit_rejection(Rejected::Connections);
            return;
        };
        let _nodelay = stream.set_nodelay(true);
        let conn = Connection {
            proxy: proxy.clone(),
            builders: builders.clone(),
            peer,
            tls: tls.clone(),
            // Registered here, not in the task: a stop right after this
            // accept reaches the connection.
            activity: sentinel.watch(),
            _open: open,
        };
        tokio::spawn(conn.serve(stream));
    };
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
        accept(stream, peer);
    }
    // Connections the kernel completed but we had not yet accepted would be
    // reset when the listener closes: take them in too.
    while let Some((stream, peer)) = backlog(&listener).await {
        accept(stream, peer);
    }
    drop(listener);
    sentinel.stop();
    if tokio::time::timeout(
        listen.drain_timeout,
        drained(&connections, listen.max_connections),
    )
    .await
    .is_err()
    {
        let drain = listen.drain_timeout;
        tracing::warn!(?drain, "Drain timed out; closing the remaining connections");
        sentinel.close_all();
    }
}

/// Resolves once every connection's permit is back. It watches rather than
/// queues for them: a queued `acquire_many` would take each permit as it
/// comes back (the semaphore is fair), and another listener of a
/// thread-per-core proxy, still taking in its backlog, would find none and
/// close connections it had accepted, unanswered.
async fn drained(connections: &Semaphore, all: usize) {
    while connections.available_permits() < all {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A connection already waiting in the listener's backlog, without waiting for one.
async fn backlog(listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
    std::future::poll_fn(|cx| match listener.poll_accept(cx) {
        Poll::Ready(Ok(pair)) => Poll::Ready(Some(pair)),
        _ => Poll::Ready(None),
    })
    .await
}

/// hyper's default `max_headers`.
const HYPER_MAX_HEADERS: usize = 100;

/// HTTP/2 keep-alive: a ping after this long without a frame, and the
/// connection closed when its answer takes longer.
const H2_PING: Duration = Duration::from_secs(20);

/// A listener's connection builders, all with the same settings.
struct Builders {
    /// Plain connections: HTTP/2 when the first bytes are its preface.
    sniff: auto::Builder<TokioExecutor>,
    /// TLS connections that negotiated `http/1.1`, or nothing, by ALPN.
    http1: auto::Builder<TokioExecutor>,
    /// TLS connections that negotiated `h2`.
    http2: auto::Builder<TokioExecutor>,
}

impl Builders {
    /// The builder for `stream`: on TLS, the protocol ALPN chose (RFC 9113
    /// §3.2; RFC 7301), never a guess from the first bytes.
    fn for_stream(&self, stream: &ClientStream) -> &auto::Builder<TokioExecutor> {
        match stream {
            ClientStream::Plain(_) => &self.sniff,
            ClientStream::Tls(tls) if tls.get_ref().1.alpn_protocol() == Some(b"h2") => &self.http2,
            ClientStream::Tls(_) => &self.http1,
        }
    }
}

/// One accepted client connection and what it needs to be served.
struct Connection {
    proxy: Arc<Proxy>,
    builders: Arc<Builders>,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    /// Its clock and flags, watched by the listener's [`Sentinel`].
    activity: Arc<Activity>,
    /// The connection's place under `max_connections`, released when it ends.
    _open: OwnedSemaphorePermit,
}

/// How a connection ended.
enum End {
    Served(Result<(), BoxError>),
    Broken(Rejected),
    /// Closed by [`CLOSE`] (the drain timed out).
    Closed,
}

impl Connection {
    /// Serves the connection until it ends, is closed by a limit, or is
    /// closed by the stop once its requests are answered.
    async fn serve(self, stream: TcpStream) {
        let metrics = self.proxy.metrics.clone();
        let peer = self.peer;
        match self.run(stream).await {
            End::Served(Ok(())) | End::Closed => {}
            End::Served(Err(e)) => {
                if let Some(limit) = rejected_by(&*e) {
                    metrics.record_limit_rejection(limit);
                }
                tracing::debug!(%peer, error = %e, "Connection ended with an error");
            }
            End::Broken(limit) => {
                metrics.record_limit_rejection(limit);
                tracing::debug!(%peer, limit = limit.as_label(), "Connection closed by a limit");
            }
        }
    }

    async fn run(self, stream: TcpStream) -> End {
        let activity = self.activity.clone();
        let mut flags = activity.flags();
        let stream = Watched::new(stream, activity.clone());
        let stream = match &self.tls {
            None => ClientStream::Plain(stream),
            Some(acceptor) => {
                // The handshake is timed too (the stop waits for it).
                let mut handshake = acceptor.accept(stream);
                let accepted = std::future::poll_fn(|cx| {
                    let f = flags.poll(cx);
                    if let Some(limit) = conn::broken(f) {
                        return Poll::Ready(Err(End::Broken(limit)));
                    }
                    if f & CLOSE != 0 {
                        return Poll::Ready(Err(End::Closed));
                    }
                    Pin::new(&mut handshake).poll(cx).map(Ok)
                })
                .await;
                match accepted {
                    Ok(Ok(s)) => ClientStream::Tls(Box::new(s)),
                    Ok(Err(e)) => return End::Served(Err(e.into())),
                    Err(end) => return end,
                }
            }
        };
        let is_tls = self.tls.is_some();
        let forwarding = Arc::new(Forwarding::new(self.peer.ip(), is_tls));
        let (proxy, served) = (self.proxy.clone(), activity.clone());
        let service = service_fn(move |req| {
            let in_progress = served.begin();
            let proxy = proxy.clone();
            let forwarding = forwarding.clone();
            async move {
                let resp = handle(proxy, req, &forwarding).await;
                Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, in_progress)))
            }
        });
        let builder = self.builders.for_stream(&stream);
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        drive(conn, flags, &activity, |c| c.graceful_shutdown()).await
    }
}

/// Serves one connection until it ends, breaks a limit, or is closed.
///
/// Stopping: a connection that has not sent its first request yet is let
/// send it (it was accepted, so it gets its answer; the sentinel bounds the
/// wait by `header_read_timeout`); then `graceful` has hyper finish the
/// request in progress and close.
async fn drive<C, E>(
    conn: C,
    mut flags: conn::Flags,
    activity: &Activity,
    graceful: impl Fn(Pin<&mut C>),
) -> End
where
    C: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    tokio::pin!(conn);
    let mut draining = false;
    std::future::poll_fn(|cx| {
        let f = flags.poll(cx);
        if let Some(limit) = conn::broken(f) {
            return Poll::Ready(End::Broken(limit));
        }
        if f & CLOSE != 0 {
            return Poll::Ready(End::Closed);
        }
        if !draining && f & STOP != 0 && activity.has_begun() {
            draining = true;
            graceful(conn.as_mut());
        }
        match conn.as_mut().poll(cx) {
            Poll::Ready(result) => Poll::Ready(End::Served(result.map_err(Into::into))),
            Poll::Pending => {
                // The first head arrived during this poll: drain now.
                if !draining && f & STOP != 0 && activity.has_begun() {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    })
    .await
}

/// A client connection, plain or TLS.
enum ClientStream {
    Plain(Watched<TcpStream>),
    Tls(Box<tokio_rustls::server::TlsStream<Watched<TcpStream>>>),
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(s) => s.is_write_vectored(),
            ClientStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
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
