//! Body handling: buffer a request under the cap (or stream it on), and tee an
//! upstream's response to the client while keeping a capped copy for the log.
//!
//! The tee never holds data back: each frame is passed on as it arrives. Its
//! capture goes to the settle task when the body ends, fails or is dropped.

use crate::budget::Charge;
use crate::coding::Coding;
use crate::observation::{Arrival, Observation, note_arrival};
use crate::upstream::body::{Once, UpBody};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::oneshot;

/// A request body after `prepare`.
pub enum Prepared {
    /// The whole body, within the cap: shareable by both upstreams.
    Buffered(Bytes),
    /// Over the cap: what was read so far, then the rest, for the serving side only.
    Streaming(UpBody),
}

/// Reads the request body until it ends or passes `cap` bytes; the rest of
/// a body over the cap must arrive by `deadline` too.
pub async fn prepare(
    mut body: Incoming,
    cap: usize,
    deadline: tokio::time::Instant,
) -> Result<Prepared, hyper::Error> {
    if body.is_end_stream() {
        return Ok(Prepared::Buffered(Bytes::new()));
    }
    let mut chunks: VecDeque<Bytes> = VecDeque::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // request trailers are not forwarded
        };
        len += data.len();
        chunks.push_back(data);
        if len > cap {
            return Ok(Prepared::Streaming(UpBody::Chained {
                prefix: chunks,
                rest: body,
                deadline: Box::pin(tokio::time::sleep_until(deadline)),
            }));
        }
    }
    Ok(Prepared::Buffered(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks
            .pop_front()
            .map(|c| own(&c, c.len()))
            .unwrap_or_default(),
        _ => {
            let mut all = BytesMut::with_capacity(len);
            chunks.iter().for_each(|c| all.extend_from_slice(c));
            all.freeze()
        }
    }))
}

/// The first buffer of a capture that arrives in several frames.
const STREAM_START: usize = 4096;

/// Frames up to this size are copied when kept past their write.
const SMALL: usize = 4096;

/// The first `n` bytes of `data`, to keep while the exchange settles. A
/// frame is a slice of its connection's read buffer (8 KiB): keeping the
/// slice until the candidate answers pins that buffer, so hyper allocates a
/// new one for the connection's next read, per exchange. A small frame is
/// copied instead (one exact allocation; the read buffer is reused); a large
/// one is shared, since a copy would cost as much as the buffer it frees.
fn own(data: &Bytes, n: usize) -> Bytes {
    if n <= SMALL {
        Bytes::copy_from_slice(&data[..n])
    } else {
        data.slice(..n)
    }
}

/// Keeps the first `cap` bytes of a body and reports them once.
pub struct Capture {
    status: u16,
    coding: Option<Coding>,
    started: Instant,
    cap: usize,
    kept: Kept,
    truncated: bool,
    /// When the kept bytes arrived; `None` when the route does not time the
    /// first token (one clock read per frame when it does).
    arrivals: Option<Vec<Arrival>>,
    /// The kept bytes against `store.capture_budget`.
    charge: Charge,
    tx: Option<oneshot::Sender<Observation>>,
}

impl Capture {
    pub fn new(
        status: u16,
        started: Instant,
        cap: usize,
        tx: oneshot::Sender<Observation>,
    ) -> Capture {
        Capture {
            status,
            coding: None,
            started,
            cap,
            kept: Kept::Nothing,
            truncated: false,
            arrivals: None,
            charge: Charge::default(),
            tx: Some(tx),
        }
    }

    /// Charges the kept bytes to the capture budget's gauge.
    pub fn charged(mut self, gauge: &prometheus::IntGauge) -> Capture {
        self.charge = Charge::on(gauge);
        self
    }

    /// Notes when each frame's bytes arrive (for the time to first token).
    pub fn timed(mut self, timed: bool) -> Capture {
        if timed {
            self.arrivals = Some(Vec::new());
        }
        self
    }

    /// The body's `Content-Encoding`, decoded by the settle task.
    pub fn coded(mut self, coding: Option<Coding>) -> Capture {
        self.coding = coding;
        self
    }

    fn keep(&mut self, data: &Bytes) {
        let room = self.cap.saturating_sub(self.kept.len());
        if data.len() > room {
            self.truncated = true;
        }
        let n = data.len().min(room);
        if n == 0 {
            // Past the cap (or an empty frame): nothing kept, no clock read.
            return;
        }
        self.charge.add(n);
        match &mut self.kept {
            // Most bodies arrive in one frame: keep it as it is (see `own`).
            Kept::Nothing => self.kept = Kept::One(own(data, n)),
            Kept::One(first) => {
                // A stream: room for a few more frames before the first regrowth.
                let want = (first.len() + n).max(STREAM_START).min(self.cap);
                let mut buf = BytesMut::with_capacity(want);
                buf.extend_from_slice(first);
                buf.extend_from_slice(&data[..n]);
                self.kept = Kept::Many(buf);
            }
            Kept::Many(buf) => buf.extend_from_slice(&data[..n]),
        }
        if let Some(arrivals) = &mut self.arrivals {
            note_arrival(arrivals, self.kept.len(), self.started.elapsed());
        }
    }

    fn finish(&mut self, error: Option<String>) {
        if let Some(tx) = self.tx.take() {
            let obs = Observation {
                status: Some(self.status),
                body: std::mem::take(&mut self.kept).into_bytes(),
                truncated: self.truncated,
                error,
                latency: self.started.elapsed(),
                arrivals: self.arrivals.take().unwrap_or_default(),
                coding: self.coding,
                charge: std::mem::take(&mut self.charge),
            };
            // The settle task may be gone (shutdown); nothing to do then.
            let _ignored = tx.send(obs);
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if self.tx.is_some() {
            // The client went away before the end: what we kept is incomplete.
            self.truncated = true;
            self.finish(None);
        }
    }
}

/// Observes the time since `started` into `histogram` when dropped: the
/// upstream duration of an exchange that has no settle task to record it.
pub struct Timer {
    pub histogram: prometheus::Histogram,
    pub started: Instant,
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}

/// What a [`Capture`] has kept so far.
#[derive(Default)]
enum Kept {
    #[default]
    Nothing,
    One(Bytes),
    Many(BytesMut),
}

impl Kept {
    fn len(&self) -> usize {
        match self {
            Kept::Nothing => 0,
            Kept::One(b) => b.len(),
            Kept::Many(b) => b.len(),
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Kept::Nothing => Bytes::new(),
            Kept::One(b) => b,
            Kept::Many(b) => b.freeze(),
        }
    }
}

/// The body the client receives.
pub enum ProxyBody {
    /// An upstream's body, passed through frame by frame while captured.
    Tee { inner: Incoming, capture: Capture },
    /// An upstream's body nobody logs, passed through; its upstream's
    /// duration is observed when it is dropped (sent, or abandoned).
    Pass { inner: Incoming, _timer: Timer },
    /// A body we made (errors, admin answers, buffered bodies).
    Full(Once),
    /// An upstream's body of which the first bytes were read already
    /// (`recommend` found it over the cap): those, then the rest as it comes.
    Resumed {
        head: Option<Bytes>,
        inner: Incoming,
    },
    /// A body a later stage wraps around one of these (`recommend` on an
    /// event stream: the incumbent's stream, then the suggestion event,
    /// `proxy::sse`).
    Made(Pin<Box<dyn Body<Data = Bytes, Error = hyper::Error> + Send>>),
}

impl ProxyBody {
    pub fn text(s: impl Into<String>) -> ProxyBody {
        ProxyBody::Full(Once::new(Bytes::from(s.into())))
    }

    pub fn bytes(b: Bytes) -> ProxyBody {
        ProxyBody::Full(Once::new(b))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Full(once) => once.poll(),
            ProxyBody::Pass { inner, .. } => Pin::new(inner).poll_frame(cx),
            ProxyBody::Made(b) => b.as_mut().poll_frame(cx),
            ProxyBody::Resumed { head, inner } => match head.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => Pin::new(inner).poll_frame(cx),
            },
            ProxyBody::Tee { inner, capture } => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                match &polled {
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(data) = frame.data_ref() {
                            capture.keep(data);
                        }
                        // With a known length hyper stops polling after the last
                        // byte, so the end is seen here rather than as `None`.
                        if inner.is_end_stream() {
                            capture.finish(None);
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        capture.finish(Some(format!("body broke off: {e}")))
                    }
                    Poll::Ready(None) => capture.finish(None),
                    Poll::Pending => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(once) => once.is_end(),
            ProxyBody::Tee { inner, .. } | ProxyBody::Pass { inner, .. } => inner.is_end_stream(),
            ProxyBody::Resumed { head, inner } => head.is_none() && inner.is_end_stream(),
            ProxyBody::Made(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(once) => once.hint(),
            ProxyBody::Tee { inner, .. } | ProxyBody::Pass { inner, .. } => inner.size_hint(),
            ProxyBody::Resumed { head: None, inner } => inner.size_hint(),
            ProxyBody::Made(b) => b.size_hint(),
            ProxyBody::Resumed { .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What hyper does with a connection's read buffer: a frame is split off
    /// it, and the next read reserves room again. A kept small frame must
    /// not pin the buffer (else every exchange costs a new 8 KiB one).
    #[test]
    fn a_kept_small_frame_leaves_the_read_buffer_free_for_the_next_read() {
        let mut read = BytesMut::with_capacity(8192);
        let base = read.as_ptr();
        read.extend_from_slice(&[b'x'; 190]);
        let frame = read.split_to(190).freeze();
        let kept = own(&frame, frame.len());
        drop(frame);
        read.reserve(8192);
        assert_eq!(read.as_ptr(), base, "the read buffer was not reused");
        assert_eq!(&kept[..], &[b'x'; 190][..]);
    }

    #[test]
    fn a_large_frame_is_shared_not_copied() {
        let frame = Bytes::from(vec![7u8; SMALL + 1]);
        let kept = own(&frame, SMALL + 1);
        assert_eq!(kept.as_ptr(), frame.as_ptr());
        assert_eq!(own(&frame, 10).len(), 10);
    }
}
