//! understudy-llm's decoding of hostile answers: server-sent events pushed in
//! chunks split anywhere, and JSON bodies, for every protocol. The result
//! must not depend on where the chunks were split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use understudy_llm::{Protocol, StreamDecoder, decode};

const PROTOCOLS: [Protocol; 4] = [
    Protocol::OpenAiChat,
    Protocol::OpenAiResponses,
    Protocol::AnthropicMessages,
    Protocol::Auto,
];

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else { return };
    for protocol in PROTOCOLS {
        // `decode` lets the body pick JSON or a stream; both paths run.
        let _sniffed = decode(protocol, Some("text/event-stream"), body);
        let _json = decode(protocol, Some("application/json"), body);
        // As a stream: pushed whole, and in pieces of `split + 1` bytes.
        let mut decoder = StreamDecoder::new(protocol);
        let _progress = decoder.push(body);
        let whole = decoder.finish();
        let mut decoder = StreamDecoder::new(protocol);
        for chunk in body.chunks(usize::from(split) + 1) {
            let _progress = decoder.push(chunk);
        }
        let pieces = decoder.finish();
        assert_eq!(
            format!("{whole:?}"),
            format!("{pieces:?}"),
            "{protocol:?}: chunking changed the result"
        );
    }
});
