//! One client connection's clock: the limits hyper does not enforce by itself
//! (docs/src/reference/limits.md). A [`Watched`] stream notes when bytes last moved; [`Activity`]
//! counts the requests in progress (a [`Tracked`] body ends one when it is
//! dropped); the [`Sentinel`] looks at every connection of a listener on one
//! coarse tick and flags (and wakes) a connection that has broken a limit:
//!
//! - no complete first request head within `header_read_timeout` of accept
//!   (first byte, TLS handshake and HTTP/2 preface included);
//! - no request in progress for `idle_timeout`;
//! - a request in progress but no byte read or written for `idle_timeout`
//!   (a client that stopped reading, a stalled upload or answer).
//!
//! A limit is never enforced early, and late by at most one tick (an eighth
//! of the shorter limit, at most 1 s). The sentinel also delivers the stop.
//! One timer for the listener instead of one per connection, and a
//! connection reads its flags with one atomic load per wake-up (no shared
//! channel polled on every wake).
//!
//! Later HTTP/1 heads on a kept-alive connection are timed by hyper's own
//! `header_read_timeout`.

use crate::metrics::Rejected;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The listener is stopping: finish the request in progress (or the first
/// one, on a connection that has sent none yet) and close.
pub const STOP: u8 = 1;
/// Close now (the drain timed out).
pub const CLOSE: u8 = 2;
/// `header_read_timeout` broken.
const HEADER_TIMEOUT: u8 = 4;
/// `idle_timeout` broken.
const IDLE: u8 = 8;

/// What a connection's sentinel reads: shared by its stream and its bodies.
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
    /// [`STOP`], [`CLOSE`] and the broken limits, set by the sentinel.
    flags: AtomicU8,
    /// The connection's task, woken when a flag is set.
    waker: Mutex<Option<Waker>>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            last_io: AtomicU64::new(0),
            last_idle: AtomicU64::new(0),
            heads: AtomicU64::new(0),
            in_progress: AtomicU64::new(0),
            flags: AtomicU8::new(0),
            waker: Mutex::new(None),
        }
    }

    fn ms_at(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.opened).as_millis()).unwrap_or(u64::MAX)
    }

    fn now_ms(&self) -> u64 {
        self.ms_at(Instant::now())
    }

    fn moved(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A request head arrived: the request is in progress until the guard is
    /// dropped (with its answer's [`Tracked`] body, or with the request).
    pub fn begin(self: &Arc<Self>) -> InProgress {
        self.heads.fetch_add(1, Ordering::Relaxed);
        self.in_progress.fetch_add(1, Ordering::Relaxed);
        InProgress(self.clone())
    }

    /// Whether a request head has arrived on this connection.
    pub fn has_begun(&self) -> bool {
        self.heads.load(Ordering::Relaxed) > 0
    }

    fn end(&self) {
        if self.in_progress.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.last_idle.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// The limit this connection broke, at `now`, if any.
    fn broken_at(&self, now: Instant, clock: &Clock) -> Option<u8> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (deadline, broken) = if self.heads.load(Ordering::Relaxed) == 0 {
            (ms(clock.header_read_timeout), HEADER_TIMEOUT)
        } else if self.in_progress.load(Ordering::Relaxed) == 0 {
            let since = self.last_idle.load(Ordering::Relaxed);
            (since.saturating_add(ms(clock.idle_timeout)), IDLE)
        } else {
            let since = self.last_io.load(Ordering::Relaxed);
            (since.saturating_add(ms(clock.idle_timeout)), IDLE)
        };
        (self.ms_at(now) >= deadline).then_some(broken)
    }

    /// Sets `flag` and wakes the connection's task.
    fn raise(&self, flag: u8) {
        self.flags.fetch_or(flag, Ordering::Release);
        let waker = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = waker.as_ref() {
            w.wake_by_ref();
        }
    }

    /// A reader of this connection's flags for its task (see [`Flags`]).
    pub fn flags(self: &Arc<Self>) -> Flags {
        Flags {
            activity: self.clone(),
            registered: None,
        }
    }
}

/// The flags of one connection, read by its own task: [`Flags::poll`]
/// registers the task's waker once (again only if the task's waker
/// changes) and then costs one atomic load per wake-up.
pub struct Flags {
    activity: Arc<Activity>,
    registered: Option<Waker>,
}

impl Flags {
    /// The flags now; the task is woken when one is raised later.
    pub fn poll(&mut self, cx: &Context<'_>) -> u8 {
        if !self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            let w = cx.waker().clone();
            *self
                .activity
                .waker
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(w.clone());
            self.registered = Some(w);
        }
        // The sentinel sets a flag before it takes the waker's lock: either
        // this load sees the flag, or the sentinel finds the waker.
        self.activity.flags.load(Ordering::Acquire)
    }
}

/// The limit a set of flags reports broken, if any.
pub fn broken(flags: u8) -> Option<Rejected> {
    if flags & HEADER_TIMEOUT != 0 {
        Some(Rejected::HeaderTimeout)
    } else if flags & IDLE != 0 {
        Some(Rejected::Idle)
    } else {
        None
    }
}

/// The limits the [`Sentinel`] enforces.
#[derive(Clone, Copy)]
pub struct Clock {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Clock {
    /// How often the sentinel looks: an eighth of the shorter limit, within
    /// 5 ms and 1 s.
    fn tick(&self) -> Duration {
        (self.header_read_timeout.min(self.idle_timeout) / 8)
            .clamp(Duration::from_millis(5), Duration::from_secs(1))
    }
}

/// Every open connection of one listener, looked at on one coarse tick.
pub struct Sentinel {
    clock: Clock,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    /// Connections in accept order; ended ones are swept on the tick.
    open: Vec<Weak<Activity>>,
    /// Flags every connection gets, including one registered later.
    raised: u8,
}

impl Sentinel {
    /// A sentinel for `clock`, with its tick task; the task ends when the
    /// sentinel is dropped.
    pub fn start(clock: Clock) -> Arc<Sentinel> {
        let sentinel = Arc::new(Sentinel {
            clock,
            registry: Mutex::new(Registry::default()),
        });
        let weak = Arc::downgrade(&sentinel);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(clock.tick());
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(sentinel) = weak.upgrade() else {
                    return;
                };
                sentinel.sweep();
            }
        });
        sentinel
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A newly accepted connection, watched from now on.
    pub fn watch(&self) -> Arc<Activity> {
        let activity = Arc::new(Activity::new());
        let mut registry = self.registry();
        activity.flags.store(registry.raised, Ordering::Release);
        registry.open.push(Arc::downgrade(&activity));
        activity
    }

    /// Raises `flag` on every connection, open or accepted later.
    fn raise_all(&self, flag: u8) {
        let mut registry = self.registry();
        registry.raised |= flag;
        for a in registry.open.iter().filter_map(Weak::upgrade) {
            a.raise(flag);
        }
    }

    /// The listener stops: each connection finishes what it serves and closes.
    pub fn stop(&self) {
        self.raise_all(STOP);
    }

    /// The drain timed out: every connection closes now.
    pub fn close_all(&self) {
        self.raise_all(CLOSE);
    }

    /// One tick: flags the connections that broke a limit, forgets ended ones.
    fn sweep(&self) {
        let now = Instant::now();
        let mut registry = self.registry();
        registry.open.retain(|w| {
            let Some(a) = w.upgrade() else {
                return false;
            };
            match a.broken_at(now, &self.clock) {
                // Flagged once; the connection ends and is swept next time.
                Some(flag) if a.flags.load(Ordering::Relaxed) & flag == 0 => a.raise(flag),
                _ => {}
            }
            true
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(header_ms: u64, idle_ms: u64) -> Clock {
        Clock {
            header_read_timeout: Duration::from_millis(header_ms),
            idle_timeout: Duration::from_millis(idle_ms),
        }
    }

    #[test]
    fn the_tick_is_an_eighth_of_the_shorter_limit_within_5ms_and_1s() {
        assert_eq!(clock(300, 10_000).tick(), Duration::from_micros(37_500));
        assert_eq!(clock(10_000, 60_000).tick(), Duration::from_secs(1));
        assert_eq!(clock(10, 10).tick(), Duration::from_millis(5));
    }

    #[test]
    fn a_limit_is_broken_at_its_deadline_and_not_before() {
        let c = clock(300, 1_000);
        let a = Arc::new(Activity::new());
        let at = |ms: u64| a.opened + Duration::from_millis(ms);
        // No head yet: header_read_timeout from accept.
        assert_eq!(a.broken_at(at(299), &c), None);
        assert_eq!(a.broken_at(at(300), &c), Some(HEADER_TIMEOUT));
        // A request in progress: idle_timeout from the last byte moved.
        let in_progress = a.begin();
        a.last_io.store(500, Ordering::Relaxed);
        assert_eq!(a.broken_at(at(1_499), &c), None);
        assert_eq!(a.broken_at(at(1_500), &c), Some(IDLE));
        // None in progress: idle_timeout from when the last one ended.
        drop(in_progress);
        a.last_idle.store(2_000, Ordering::Relaxed);
        assert_eq!(a.broken_at(at(2_999), &c), None);
        assert_eq!(a.broken_at(at(3_000), &c), Some(IDLE));
        assert_eq!(broken(IDLE | STOP), Some(Rejected::Idle));
        assert_eq!(broken(STOP | CLOSE), None);
    }
}
