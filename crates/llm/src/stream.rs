//! [`StreamDecoder`]: a server-sent-event answer fed chunk by chunk, with the
//! moment of the first content reported for time-to-first-token.
//!
//! Per chunk the cost is one byte scan for line ends plus one JSON parse per
//! completed event (into borrowed, typed structs); memory is bounded by
//! [`Limits`]: about two events' worth of buffers plus the kept content.

use crate::builder::Builder;
use crate::completion::{Completion, Limits, Protocol};
use crate::detect;
use crate::error::DecodeError;
use crate::proto::{self, Fault, Step};
use crate::sse::{Frame, Framer};
use serde_json::Value;

/// What one [`StreamDecoder::push`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// This chunk carried the first content (a non-empty text or refusal
    /// fragment, or the start of a tool call): stop the TTFT clock now.
    /// True on exactly one push of a stream, if any.
    pub first_content: bool,
    /// The stream's end marker (`[DONE]`, `message_stop`,
    /// `response.completed`/`.incomplete`) or an error event was seen; later
    /// chunks are ignored.
    pub done: bool,
}

/// Decodes one streamed answer incrementally.
#[derive(Debug)]
pub struct StreamDecoder {
    requested: Protocol,
    framer: Framer,
    state: State,
}

/// Everything but the framer, so the framer's sink can borrow it.
#[derive(Debug)]
struct State {
    /// The protocol in use; `None` while `auto` has not recognised one.
    protocol: Option<Protocol>,
    builder: Builder,
    used: usize,
    malformed: usize,
    oversized: usize,
    ended: bool,
    error: Option<String>,
}

impl StreamDecoder {
    /// A decoder for `protocol` with the default [`Limits`].
    pub fn new(protocol: Protocol) -> StreamDecoder {
        StreamDecoder::with_limits(protocol, Limits::default())
    }

    /// A decoder for `protocol` with explicit bounds.
    pub fn with_limits(protocol: Protocol, limits: Limits) -> StreamDecoder {
        StreamDecoder {
            requested: protocol,
            framer: Framer::new(limits.max_event_bytes.max(1)),
            state: State {
                protocol: (protocol != Protocol::Auto).then_some(protocol),
                builder: Builder::new(limits),
                used: 0,
                malformed: 0,
                oversized: 0,
                ended: false,
                error: None,
            },
        }
    }

    /// Feeds the next chunk of the body, split anywhere.
    pub fn push(&mut self, chunk: &[u8]) -> Progress {
        if self.is_done() {
            return Progress {
                first_content: false,
                done: true,
            };
        }
        let before = self.state.builder.content_seen();
        let state = &mut self.state;
        self.framer.push(chunk, &mut |frame| state.frame(frame));
        Progress {
            first_content: !before && self.state.builder.content_seen(),
            done: self.is_done(),
        }
    }

    /// Whether any content has been seen so far.
    pub fn content_seen(&self) -> bool {
        self.state.builder.content_seen()
    }

    /// The protocol being decoded (`None` while `auto` has not recognised one).
    pub fn protocol(&self) -> Option<Protocol> {
        self.state.protocol
    }

    fn is_done(&self) -> bool {
        self.state.ended || self.state.error.is_some()
    }

    /// Ends the stream and returns the completion.
    ///
    /// Errors: an upstream error event; no event of the protocol at all
    /// (garbage, an empty body, another protocol). A stream that stops early,
    /// or had unreadable events, is `Ok` with [`Completion::incomplete`] set.
    pub fn finish(mut self) -> Result<Completion, DecodeError> {
        if !self.is_done() {
            let state = &mut self.state;
            self.framer.finish(&mut |frame| state.frame(frame));
        }
        let mut state = self.state;
        if let Some(message) = state.error {
            return Err(DecodeError::Upstream(message));
        }
        if state.used == 0 {
            let name = match state.protocol.unwrap_or(self.requested) {
                Protocol::Auto => "openai-chat, openai-responses or anthropic-messages",
                p => p.as_str(),
            };
            return Err(DecodeError::NoEvents(name));
        }
        if state.malformed > 0 {
            let n = state.malformed;
            state
                .builder
                .lossy(format!("{n} unreadable events skipped"));
        }
        if state.oversized > 0 {
            let n = state.oversized;
            state.builder.lossy(format!("{n} oversized events skipped"));
        }
        let ended = state.ended || state.builder.has_finish_reason();
        Ok(state.builder.build(ended))
    }
}

impl State {
    fn frame(&mut self, frame: Frame<'_>) {
        if self.ended || self.error.is_some() {
            return;
        }
        let (name, data) = match frame {
            Frame::Oversized => {
                self.oversized += 1;
                return;
            }
            Frame::Event { name, data } => (name, data.trim_ascii()),
        };
        if data.is_empty() {
            return;
        }
        if data == b"[DONE]" {
            // Chat's end marker; some gateways append it to the others too.
            self.ended = self.used > 0 || self.protocol.is_some();
            return;
        }
        let protocol = match self.protocol {
            Some(p) => p,
            None => match detect::event(name, data) {
                Some(p) => {
                    self.protocol = Some(p);
                    p
                }
                None => {
                    self.unrecognised(data);
                    return;
                }
            },
        };
        match proto::event(protocol, &mut self.builder, name, data) {
            Ok(Step::Used) => self.used += 1,
            Ok(Step::End) => {
                self.used += 1;
                self.ended = true;
            }
            Ok(Step::Foreign) => {}
            Err(Fault::Malformed) => self.malformed += 1,
            Err(Fault::Upstream(message)) => self.error = Some(message),
        }
    }

    /// An event `auto` could not place: an error, or noise.
    fn unrecognised(&mut self, data: &[u8]) {
        match serde_json::from_slice::<Value>(data) {
            Ok(v) => {
                if let Some(message) = proto::upstream_error(&v) {
                    self.error = Some(message);
                }
            }
            Err(_) => self.malformed += 1,
        }
    }
}
