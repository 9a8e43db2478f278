//! Shared helpers for the integration tests: fixtures and chunked feeding.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;
use understudy_llm::{Completion, DecodeError, Limits, Protocol, StreamDecoder};

/// The six streamed fixtures with their protocol.
pub const STREAMS: &[(&str, Protocol)] = &[
    ("chat_text_a.sse", Protocol::OpenAiChat),
    ("chat_text_b.sse", Protocol::OpenAiChat),
    ("chat_tools.sse", Protocol::OpenAiChat),
    ("responses_text.sse", Protocol::OpenAiResponses),
    ("responses_text_b.sse", Protocol::OpenAiResponses),
    ("responses_tools.sse", Protocol::OpenAiResponses),
    ("anthropic_text.sse", Protocol::AnthropicMessages),
    ("anthropic_text_b.sse", Protocol::AnthropicMessages),
    ("anthropic_tools.sse", Protocol::AnthropicMessages),
];

/// Stream fixture, JSON fixture and protocol of the same answer.
pub const PAIRS: &[(&str, &str, Protocol)] = &[
    ("chat_text_a.sse", "chat_text.json", Protocol::OpenAiChat),
    ("chat_tools.sse", "chat_tools.json", Protocol::OpenAiChat),
    (
        "responses_text.sse",
        "responses_text.json",
        Protocol::OpenAiResponses,
    ),
    (
        "responses_tools.sse",
        "responses_tools.json",
        Protocol::OpenAiResponses,
    ),
    (
        "anthropic_text.sse",
        "anthropic_text.json",
        Protocol::AnthropicMessages,
    ),
    (
        "anthropic_tools.sse",
        "anthropic_tools.json",
        Protocol::AnthropicMessages,
    ),
];

pub const TEXT: &str =
    "Bonjour ! Voici la météo à Paris :\n- 18 °C, \"nuageux\" ☁️\n- vent 12 km/h 🌬️";

pub fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", name]
        .iter()
        .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Feeds `chunks` to a fresh decoder.
pub fn feed<'a>(
    p: Protocol,
    limits: Limits,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Completion, DecodeError> {
    let mut d = StreamDecoder::with_limits(p, limits);
    for c in chunks {
        d.push(c);
    }
    d.finish()
}

pub fn whole(p: Protocol, body: &[u8]) -> Result<Completion, DecodeError> {
    feed(p, Limits::default(), [body])
}

/// The stream with every `\n` replaced by `sep`.
pub fn with_line_ends(body: &[u8], sep: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() * 2);
    for &b in body {
        if b == b'\n' {
            out.extend_from_slice(sep);
        } else {
            out.push(b);
        }
    }
    out
}

/// A small deterministic generator (no `rand` dependency).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Splits `body` into random-sized chunks (1..=max).
pub fn random_chunks<'a>(body: &'a [u8], rng: &mut Lcg, max: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let n = 1 + rng.below(max.min(rest.len()));
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
    }
    out
}
