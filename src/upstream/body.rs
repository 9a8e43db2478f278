//! Bodies on their way to an upstream ([`UpBody`]: a buffer, or a buffered
//! prefix and the rest of a client's stream) and the capped read of an
//! upstream's answer.

use crate::observation::{Arrival, note_arrival};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// One buffer (or nothing), sent as a single frame.
pub struct Once(Option<Bytes>);

impl Once {
    pub fn new(bytes: Bytes) -> Once {
        Once((!bytes.is_empty()).then_some(bytes))
    }

    pub(crate) fn poll(&mut self) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Poll::Ready(self.0.take().map(|d| Ok(Frame::data(d))))
    }

    pub(crate) fn is_end(&self) -> bool {
        self.0.is_none()
    }

    pub(crate) fn hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// A request body on its way to an upstream.
pub enum UpBody {
    Full(Once),
    /// A client's body over the cap: what was read, then the rest as the
    /// client sends it, which must end before `deadline` (docs/src/reference/limits.md).
    Chained {
        prefix: VecDeque<Bytes>,
        rest: Incoming,
        deadline: Pin<Box<tokio::time::Sleep>>,
    },
}

/// Why a client's body stopped on its way to the upstream.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Client(#[from] hyper::Error),
    #[error("the client did not finish sending its body within body_read_timeout")]
    TimedOut,
}

impl UpBody {
    pub fn full(bytes: Bytes) -> UpBody {
        UpBody::Full(Once::new(bytes))
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            UpBody::Full(once) => once.poll().map_err(BodyError::Client),
            UpBody::Chained {
                prefix,
                rest,
                deadline,
            } => {
                if let Some(d) = prefix.pop_front() {
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                if let Poll::Ready(frame) = Pin::new(rest).poll_frame(cx) {
                    return Poll::Ready(frame.map(|f| f.map_err(BodyError::Client)));
                }
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::TimedOut))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Full(once) => once.is_end(),
            UpBody::Chained { prefix, rest, .. } => prefix.is_empty() && rest.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Full(once) => once.hint(),
            UpBody::Chained { prefix, rest, .. } => {
                let buffered: u64 = prefix.iter().map(|c| c.len() as u64).sum();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.size_hint().lower() + buffered);
                if let Some(upper) = rest.size_hint().upper() {
                    hint.set_upper(upper + buffered);
                }
                hint
            }
        }
    }
}

/// [`collect_capped`] that also notes when the kept bytes arrived, relative
/// to `started` (for the time to first token).
pub async fn collect_timed(
    mut body: Incoming,
    cap: usize,
    started: std::time::Instant,
) -> Result<(Bytes, bool, Vec<Arrival>), hyper::Error> {
    let mut buf = BytesMut::new();
    let mut truncated = false;
    let mut arrivals = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            let room = cap.saturating_sub(buf.len());
            truncated |= data.len() > room;
            buf.extend_from_slice(&data[..data.len().min(room)]);
            note_arrival(&mut arrivals, buf.len(), started.elapsed());
        }
    }
    Ok((buf.freeze(), truncated, arrivals))
}

/// Reads a whole upstream body, keeping at most `cap` bytes (for shadow calls).
pub async fn collect_capped(mut body: Incoming, cap: usize) -> Result<(Bytes, bool), hyper::Error> {
    let mut buf = BytesMut::new();
    let mut truncated = false;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            let room = cap.saturating_sub(buf.len());
            truncated |= data.len() > room;
            buf.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok((buf.freeze(), truncated))
}
