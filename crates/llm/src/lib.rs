//! Decodes AI answers (OpenAI chat, OpenAI Responses, Anthropic Messages; plain
//! JSON or a server-sent-event stream) into one [`Completion`] and compares two
//! completions' tool calls (docs/src/guide/llm.md).
//!
//! Pure and standalone: no I/O, no clocks. The caller feeds body chunks to a
//! [`StreamDecoder`] as they arrive (and times the first content from its
//! [`Progress`]), or hands a whole body to [`decode`].

mod agree;
mod builder;
mod completion;
mod decode;
mod detect;
mod error;
mod proto;
mod sse;
mod stream;

pub use agree::{MAX_DIFFS, ToolAgreement, agree, exact_text, structural_diff};
pub use completion::{Completion, Finish, Limits, MAX_NOTES, Protocol, ToolCall, Usage};
pub use decode::{decode, decode_json, decode_with_limits, is_event_stream};
pub use error::DecodeError;
pub use stream::{Progress, StreamDecoder};
