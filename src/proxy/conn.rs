//! One client connection's clock: the limits hyper does not enforce by itself
//! (SPEC §9). A [`Watched`] stream notes when bytes last moved; [`Activity`]
//! counts the requests in progress (a [`Tracked`] body ends one when it is
//! dropped); [`watchdog`] resolves when the connection has broken a limit:
//!
//! - no complete first request head within `header_read_timeout` of accept
//!   (first byte, TLS handshake and HTTP/2 preface included);
//! - no request in progress for `idle_timeout`;
//! - a request in progress but no byte read or written for `idle_timeout`
//!   (a client that stopped reading, a stalled upload or answer).
//!
//! Later HTTP/1 heads on a kept-alive connection are timed by hyper's own
//! `header_read_timeout`.

use crate::metrics::Rejected;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a connection's watchdog reads: shared by its stream and its bodies.
pub struct Activity {
    opened: Instant,
    /// Milliseconds from `opened` to the last byte read or written.
    last_io: AtomicU64,
    /// Milliseconds from `opened` to the last time no request was in progress.
    last_idle: AtomicU64,
    /// Request heads completed on this connection.
    heads: AtomicU64,
    /// Requests whose answer is not yet sent (or dropped).
    in_progress: AtomicU64,
    /// Woken when the first request head arrives.
    first: tokio::sync::Notify,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_io: AtomicU64::new(0),
            last_idle: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            in_progress: AtomicU64::new(0),
            first: tokio::sync::Notify::new(),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn moved(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A request head arrived: the request is in progress until the guard is
    /// dropped (with its answer's [`Tracked`] body, or with the request).
    pub fn begin(self: &Arc<Self>) -> InProgress {
        if self.heads.fetch_add(1, Ordering::Relaxed) == 0 {
            self.first.notify_waiters();
        }
        self.in_progress.fetch_add(1, Ordering::Relaxed);
        InProgress(self.clone())
    }

    /// Whether a request head has arrived on this connection.
    pub fn has_begun(&self) -> bool {
        self.heads.load(Ordering::Relaxed) > 0
    }

    /// Resolves once the first request head has arrived.
    pub async fn first_head(&self) {
        let notified = self.first.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.has_begun() {
            notified.await;
        }
    }

    fn end(&self) {
        if self.in_progress.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.last_idle.store(self.now_ms(), Ordering::Relaxed);
        }
    }
}

/// The limits a [`watchdog`] enforces.
#[derive(Clone, Copy)]
pub struct Clock {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Resolves with the limit broken when the connection must be closed; never
/// resolves for a connection that keeps within its limits.
pub async fn watchdog(activity: Arc<Activity>, clock: Clock) -> Rejected {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    loop {
        let a = &activity;
        let (deadline, broken) = if a.heads.load(Ordering::Relaxed) == 0 {
            (ms(clock.header_read_timeout), Rejected::HeaderTimeout)
        } else if a.in_progress.load(Ordering::Relaxed) == 0 {
            let since = a.last_idle.load(Ordering::Relaxed);
            (since.saturating_add(ms(clock.idle_timeout)), Rejected::Idle)
        } else {
            let since = a.last_io.load(Ordering::Relaxed);
            (since.saturating_add(ms(clock.idle_timeout)), Rejected::Idle)
        };
        let now = a.now_ms();
        if now >= deadline {
            return broken;
        }
        // The state may change while this sleeps (the first head arrives and
        // a shorter idle rule takes over): look again within the shorter limit.
        let step = clock.idle_timeout.min(clock.header_read_timeout);
        let wait = Duration::from_millis(deadline.saturating_sub(now).max(1)).min(step);
        tokio::time::sleep(wait).await;
    }
}

/// A client stream that notes in its [`Activity`] when bytes move.
pub struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.moved();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled
            && *n > 0
        {
            this.activity.moved();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &polled
            && *n > 0
        {
            this.activity.moved();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// One request in progress on a connection, until dropped.
pub struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// An answer's body that keeps its request in progress until it is dropped
/// (sent in full, or abandoned with the connection).
pub struct Tracked<B> {
    inner: B,
    _in_progress: InProgress,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, in_progress: InProgress) -> Self {
        Tracked {
            inner,
            _in_progress: in_progress,
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
