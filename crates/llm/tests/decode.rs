//! Fixtures of the three protocols, streamed and not: decoding, equality
//! across chunkings and framings, and `auto` detection.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use understudy_llm::{
    Completion, Finish, Protocol, ToolCall, Usage, decode, decode_json, is_event_stream,
};

fn weather_calls() -> Vec<ToolCall> {
    vec![
        ToolCall {
            name: "get_weather".into(),
            arguments: json!({"location": "Paris, France", "unit": "celsius"}),
        },
        ToolCall {
            name: "get_time".into(),
            arguments: json!({"timezone": "Europe/Paris"}),
        },
    ]
}

fn clean(c: &Completion) {
    assert!(!c.incomplete, "{:?}", c.notes);
    assert!(!c.truncated);
    assert!(c.notes.is_empty(), "{:?}", c.notes);
}

#[test]
fn chat_text_stream() {
    let c = whole(Protocol::OpenAiChat, &fixture("chat_text_a.sse")).unwrap();
    clean(&c);
    assert_eq!(c.text, TEXT);
    assert!(c.tool_calls.is_empty());
    assert_eq!(c.finish_reason.as_deref(), Some("stop"));
    assert_eq!(c.finish(), Some(Finish::Stop));
    assert_eq!(
        c.usage,
        Some(Usage {
            input: 31,
            output: 27
        })
    );
    assert_eq!(c.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
}

#[test]
fn chat_tools_stream_joins_fragments_by_index() {
    let c = whole(Protocol::OpenAiChat, &fixture("chat_tools.sse")).unwrap();
    clean(&c);
    assert_eq!(c.text, "");
    assert_eq!(c.tool_calls, weather_calls());
    assert_eq!(c.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        c.usage,
        Some(Usage {
            input: 31,
            output: 52
        })
    );
}

#[test]
fn responses_streams() {
    let c = whole(Protocol::OpenAiResponses, &fixture("responses_text.sse")).unwrap();
    clean(&c);
    assert_eq!(c.text, TEXT);
    assert_eq!(c.finish_reason.as_deref(), Some("completed"));
    assert_eq!(c.finish(), Some(Finish::Stop));
    assert_eq!(
        c.usage,
        Some(Usage {
            input: 37,
            output: 27
        })
    );
    assert_eq!(c.model.as_deref(), Some("gpt-4.1-2025-04-14"));

    let c = whole(Protocol::OpenAiResponses, &fixture("responses_tools.sse")).unwrap();
    clean(&c);
    assert_eq!(c.text, "");
    assert_eq!(c.tool_calls, weather_calls());
    assert_eq!(c.finish(), Some(Finish::ToolCalls));
    assert_eq!(
        c.usage,
        Some(Usage {
            input: 37,
            output: 61
        })
    );
}

#[test]
fn anthropic_streams() {
    let c = whole(Protocol::AnthropicMessages, &fixture("anthropic_text.sse")).unwrap();
    clean(&c);
    assert_eq!(c.text, TEXT);
    assert_eq!(c.finish_reason.as_deref(), Some("end_turn"));
    assert_eq!(
        c.usage,
        Some(Usage {
            input: 25,
            output: 33
        })
    );
    assert_eq!(c.model.as_deref(), Some("claude-sonnet-4-20250514"));

    let c = whole(Protocol::AnthropicMessages, &fixture("anthropic_tools.sse")).unwrap();
    clean(&c);
    assert_eq!(c.text, "I'll check the weather and the time in Paris.");
    assert_eq!(c.tool_calls, weather_calls());
    assert_eq!(c.finish_reason.as_deref(), Some("tool_use"));
    assert_eq!(c.finish(), Some(Finish::ToolCalls));
    assert_eq!(
        c.usage,
        Some(Usage {
            input: 472,
            output: 89
        })
    );
}

#[test]
fn same_words_other_chunking_and_ids_decode_equal() {
    for (a, b, p) in [
        ("chat_text_a.sse", "chat_text_b.sse", Protocol::OpenAiChat),
        (
            "responses_text.sse",
            "responses_text_b.sse",
            Protocol::OpenAiResponses,
        ),
        (
            "anthropic_text.sse",
            "anthropic_text_b.sse",
            Protocol::AnthropicMessages,
        ),
    ] {
        let (x, y) = (fixture(a), fixture(b));
        assert_ne!(x, y);
        assert_eq!(whole(p, &x).unwrap(), whole(p, &y).unwrap(), "{a} vs {b}");
    }
}

#[test]
fn stream_and_json_of_one_answer_decode_equal() {
    for &(sse, body, p) in PAIRS {
        let streamed = whole(p, &fixture(sse)).unwrap();
        let plain = decode_json(p, &fixture(body)).unwrap();
        clean(&plain);
        assert_eq!(streamed, plain, "{sse} vs {body}");
    }
}

#[test]
fn auto_detects_all_six_forms() {
    for &(sse, body, p) in PAIRS {
        let expected = whole(p, &fixture(sse)).unwrap();
        for ct in [Some("text/event-stream; charset=utf-8"), None] {
            assert_eq!(
                decode(Protocol::Auto, ct, &fixture(sse)).unwrap(),
                expected,
                "{sse} {ct:?}"
            );
        }
        for ct in [Some("application/json"), None] {
            assert_eq!(
                decode(Protocol::Auto, ct, &fixture(body)).unwrap(),
                expected,
                "{body} {ct:?}"
            );
        }
        assert_eq!(decode(p, None, &fixture(body)).unwrap(), expected);
    }
}

#[test]
fn wrong_protocol_is_an_error() {
    let chat = fixture("chat_text_a.sse");
    assert!(whole(Protocol::AnthropicMessages, &chat).is_err());
    assert!(whole(Protocol::OpenAiResponses, &chat).is_err());
    let body = fixture("anthropic_text.json");
    assert!(decode_json(Protocol::OpenAiChat, &body).is_err());
    assert!(decode_json(Protocol::OpenAiResponses, &body).is_err());
}

#[test]
fn sniffing() {
    assert!(is_event_stream(None, b"data: {}\n\n"));
    assert!(is_event_stream(None, b"event: ping\ndata: {}\n\n"));
    assert!(is_event_stream(None, b": keep-alive\n\n"));
    assert!(is_event_stream(
        Some("application/json"),
        b"\xEF\xBB\xBFdata: {}"
    ));
    assert!(!is_event_stream(
        Some("text/event-stream"),
        b"  {\"error\":{}}"
    ));
    assert!(is_event_stream(
        Some("Text/Event-Stream;charset=UTF-8"),
        b""
    ));
    assert!(!is_event_stream(Some("application/json"), b""));
}

#[test]
fn protocol_strings() {
    for p in [
        Protocol::OpenAiChat,
        Protocol::OpenAiResponses,
        Protocol::AnthropicMessages,
        Protocol::Auto,
    ] {
        assert_eq!(p.as_str().parse::<Protocol>().unwrap(), p);
    }
    assert!("openai".parse::<Protocol>().is_err());
}
