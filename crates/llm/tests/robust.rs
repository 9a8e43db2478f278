//! Hostile and broken input: garbage, truncation, upstream errors, oversize
//! events, the caps, and the SSE corner cases. Never a panic.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use understudy_llm::{DecodeError, Limits, Protocol, StreamDecoder, decode, decode_json};

const ALL: [Protocol; 4] = [
    Protocol::OpenAiChat,
    Protocol::OpenAiResponses,
    Protocol::AnthropicMessages,
    Protocol::Auto,
];

#[test]
fn garbage_never_panics() {
    let mut rng = Lcg(42);
    for len in [0usize, 1, 2, 7, 64, 1000, 20_000] {
        for _ in 0..20 {
            let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            for p in ALL {
                let chunks = random_chunks(&body, &mut rng, 50);
                let _result = feed(p, Limits::default(), chunks);
                let _result = decode(p, None, &body);
                let _result = decode_json(p, &body);
            }
        }
    }
    // Garbage made of SSE-ish pieces.
    let alphabet: [&[u8]; 12] = [
        b"data: ",
        b"event: ",
        b"\n",
        b"\r",
        b"\r\n",
        b":",
        b"{",
        b"}",
        b"[DONE]",
        b"\"type\":\"content_block_delta\"",
        b"\"choices\":[",
        b"\xF0\x9F",
    ];
    for _ in 0..2000 {
        let body: Vec<u8> = (0..rng.below(60))
            .flat_map(|_| alphabet[rng.below(alphabet.len())].to_vec())
            .collect();
        for p in ALL {
            let _result = feed(p, Limits::default(), random_chunks(&body, &mut rng, 9));
        }
    }
}

#[test]
fn garbage_is_an_error_not_a_completion() {
    for p in ALL {
        for body in [
            &b""[..],
            b"\n\n\n",
            b"hello world",
            b"data: not json\n\n",
            b": only a comment\n\n",
            b"\xFF\xFE\x00",
        ] {
            let r = whole(p, body);
            assert!(
                matches!(r, Err(DecodeError::NoEvents(_))),
                "{p} {body:?}: {r:?}"
            );
        }
    }
    assert!(matches!(
        decode_json(Protocol::Auto, b"{\"hello\":1}"),
        Err(DecodeError::Shape(_))
    ));
    assert!(matches!(
        decode_json(Protocol::OpenAiChat, b"{\"choices\":"),
        Err(DecodeError::NotJson(_))
    ));
}

#[test]
fn mutated_fixtures_never_panic() {
    let mut rng = Lcg(3);
    for &(name, p) in STREAMS {
        let body = fixture(name);
        for _ in 0..200 {
            let mut b = body.clone();
            for _ in 0..1 + rng.below(8) {
                let at = rng.below(b.len());
                b[at] = rng.next() as u8;
            }
            let _result = feed(p, Limits::default(), random_chunks(&b, &mut rng, 300));
            let _result = feed(
                Protocol::Auto,
                Limits::default(),
                random_chunks(&b, &mut rng, 300),
            );
        }
    }
}

#[test]
fn every_truncation_is_an_error_or_flagged() {
    for &(name, p) in STREAMS {
        let body = fixture(name);
        let expected = whole(p, &body).unwrap();
        for cut in 0..body.len() {
            match whole(p, &body[..cut]) {
                Err(DecodeError::NoEvents(_)) => {}
                Err(e) => panic!("{name} cut at {cut}: {e}"),
                Ok(c) => {
                    // Complete only when the finish reason already arrived
                    // (chat's usage chunk or an end marker may still follow).
                    assert!(
                        c.incomplete || c.finish_reason.is_some(),
                        "{name} cut at {cut}"
                    );
                    assert!(expected.text.starts_with(&c.text), "{name} cut at {cut}");
                }
            }
        }
    }
}

#[test]
fn cut_tool_arguments_are_kept_as_a_string() {
    let body = String::from_utf8(fixture("chat_tools.sse")).unwrap();
    // Up to and including the fragment `Paris` of the first call.
    let end = body.find("\"Paris\"").unwrap();
    let end = end + body[end..].find("\n\n").unwrap() + 2;
    let c = whole(Protocol::OpenAiChat, &body.as_bytes()[..end]).unwrap();
    assert!(c.incomplete);
    assert_eq!(c.tool_calls.len(), 1);
    assert_eq!(c.tool_calls[0].name, "get_weather");
    assert_eq!(c.tool_calls[0].arguments, json!("{\"location\":\"Paris"));
    assert!(
        c.notes.iter().any(|n| n.contains("not JSON")),
        "{:?}",
        c.notes
    );
}

#[test]
fn unparseable_arguments_are_noted() {
    let body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{'a': 1}\"}}]}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n";
    let c = whole(Protocol::OpenAiChat, body).unwrap();
    assert!(!c.incomplete);
    assert_eq!(c.tool_calls[0].arguments, json!("{'a': 1}"));
    assert_eq!(
        c.notes,
        vec!["tool call 0 arguments not JSON; kept as a string".to_string()]
    );
}

#[test]
fn empty_arguments_are_an_empty_object() {
    let body = br#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"now","arguments":""}}]}}]}

data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

"#;
    let c = whole(Protocol::OpenAiChat, body).unwrap();
    assert_eq!(c.tool_calls[0].arguments, json!({}));
    assert!(
        !c.incomplete,
        "finish reason without [DONE] counts as complete"
    );
}

#[test]
fn upstream_errors() {
    let anthropic = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-20250514\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n\
event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
    assert_eq!(
        whole(Protocol::AnthropicMessages, anthropic),
        Err(DecodeError::Upstream("Overloaded".into()))
    );
    assert_eq!(
        whole(Protocol::Auto, anthropic),
        Err(DecodeError::Upstream("Overloaded".into()))
    );

    let chat = b"data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n\
data: {\"error\":{\"message\":\"The server had an error while processing your request.\",\"type\":\"server_error\"}}\n\n";
    let e = whole(Protocol::OpenAiChat, chat).unwrap_err();
    assert!(matches!(e, DecodeError::Upstream(m) if m.starts_with("The server had an error")));

    let responses = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"object\":\"response\",\"model\":\"gpt-4.1\",\"status\":\"in_progress\"}}\n\n\
event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"boom\"}}}\n\n";
    assert_eq!(
        whole(Protocol::Auto, responses),
        Err(DecodeError::Upstream("boom".into()))
    );
    let stream_error = b"event: error\ndata: {\"type\":\"error\",\"code\":\"ERR_SOMETHING\",\"message\":\"Something went wrong\",\"param\":null,\"sequence_number\":1}\n\n";
    assert_eq!(
        whole(Protocol::OpenAiResponses, stream_error),
        Err(DecodeError::Upstream("Something went wrong".into()))
    );
    assert_eq!(
        whole(Protocol::Auto, stream_error),
        Err(DecodeError::Upstream("Something went wrong".into()))
    );

    let openai_json = br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
    for p in ALL {
        assert_eq!(
            decode_json(p, openai_json),
            Err(DecodeError::Upstream("Rate limit reached".into())),
            "{p}"
        );
    }
    let anthropic_json = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: field required"}}"#;
    assert_eq!(
        decode(Protocol::Auto, Some("application/json"), anthropic_json),
        Err(DecodeError::Upstream("max_tokens: field required".into()))
    );
}

#[test]
fn content_cap_truncates_on_a_char_boundary() {
    let limits = Limits {
        max_content_bytes: 12,
        ..Limits::default()
    };
    let c = feed(
        Protocol::AnthropicMessages,
        limits,
        [&fixture("anthropic_text.sse")[..]],
    )
    .unwrap();
    assert!(c.truncated);
    // "Bonjour ! Vo" is 12 bytes.
    assert_eq!(c.text, "Bonjour ! Vo");
    // "à" takes bytes 27 and 28 (1-based): a cap of 27 cuts before it.
    let limits = Limits {
        max_content_bytes: 27,
        ..Limits::default()
    };
    let c = feed(
        Protocol::OpenAiChat,
        limits,
        [&fixture("chat_text_a.sse")[..]],
    )
    .unwrap();
    assert!(c.truncated && TEXT.starts_with(&c.text));
    assert_eq!(c.text, "Bonjour ! Voici la météo ");
    assert_eq!(c.notes, vec!["content cut at 27 bytes".to_string()]);
    // Arguments share the budget.
    let limits = Limits {
        max_content_bytes: 20,
        ..Limits::default()
    };
    let c = feed(
        Protocol::OpenAiChat,
        limits,
        [&fixture("chat_tools.sse")[..]],
    )
    .unwrap();
    assert!(c.truncated);
    assert_eq!(c.tool_calls[0].arguments, json!("{\"location\":\"Paris, "));
    assert_eq!(c.tool_calls[1].arguments, json!({}));
}

#[test]
fn oversized_events_are_skipped_and_flagged() {
    let limits = Limits {
        max_event_bytes: 200,
        ..Limits::default()
    };
    // Responses lifecycle events (with the whole response object) exceed 200
    // bytes; the deltas do not.
    let body = fixture("responses_text.sse");
    let c = feed(Protocol::OpenAiResponses, limits, body.chunks(64)).unwrap();
    assert_eq!(c.text, TEXT);
    assert!(c.incomplete);
    assert!(c.usage.is_none());
    assert!(
        c.notes.iter().any(|n| n.contains("oversized")),
        "{:?}",
        c.notes
    );

    // A line that never ends, fed in pieces, is dropped, not buffered.
    let mut d = StreamDecoder::with_limits(Protocol::OpenAiChat, limits);
    d.push(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"");
    for _ in 0..10_000 {
        d.push(&[b'a'; 100]);
    }
    d.push(b"\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\n");
    let c = d.finish().unwrap();
    assert_eq!(c.text, "ok");
    assert!(c.incomplete);
}

#[test]
fn tool_call_cap() {
    let limits = Limits {
        max_tool_calls: 1,
        ..Limits::default()
    };
    let c = feed(
        Protocol::AnthropicMessages,
        limits,
        [&fixture("anthropic_tools.sse")[..]],
    )
    .unwrap();
    assert_eq!(c.tool_calls.len(), 1);
    assert!(c.incomplete);
    // Huge indexes cost nothing.
    let body = br#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":18446744073709551615,"id":"a","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}

"#;
    let c = whole(Protocol::OpenAiChat, body).unwrap();
    assert_eq!(c.tool_calls.len(), 1);
}

#[test]
fn sse_corner_cases() {
    // BOM, comments, id/retry, no space after the colon, one JSON split over
    // two data lines, an event without its closing blank line at EOF.
    let body = "\u{FEFF}: OPENROUTER PROCESSING\n\nretry: 3000\nid: 1\n\
data:{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n\
: keep-alive\n\
data: {\"choices\":[{\"index\":0,\n\
data: \"delta\":{\"content\":\"lo\"}}]}\n\n\
event: message\n\
data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]";
    for p in [Protocol::OpenAiChat, Protocol::Auto] {
        let c = whole(p, body.as_bytes()).unwrap();
        assert_eq!(c.text, "Hello");
        assert!(!c.incomplete, "{:?}", c.notes);
        let c = feed(p, Limits::default(), body.as_bytes().chunks(1)).unwrap();
        assert_eq!(c.text, "Hello");
    }
}

#[test]
fn chat_other_choices_and_missing_indexes() {
    // n = 2: choice 1 is ignored. A compatible server without tool-call
    // indexes: ids tell the calls apart, fragments without id continue.
    let body = br#"data: {"choices":[{"index":1,"delta":{"content":"other"}}]}

data: {"choices":[{"index":0,"delta":{"content":"mine"}}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"x\":"}}]}}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":"1}"}}]}}]}

data: {"choices":[{"index":0,"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{}"}}]}}]}

data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}

data: [DONE]

"#;
    let c = whole(Protocol::OpenAiChat, body).unwrap();
    assert_eq!(c.text, "mine");
    assert_eq!(c.tool_calls.len(), 2);
    assert_eq!(c.tool_calls[0].arguments, json!({"x": 1}));
    assert_eq!(c.tool_calls[1].name, "g");
}

#[test]
fn chat_usage_chunk_without_choices_key() {
    let body = br#"data: {"object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":"stop"}]}

data: {"object":"chat.completion.chunk","model":"m","usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}

data: [DONE]

"#;
    let c = whole(Protocol::Auto, body).unwrap();
    assert_eq!(
        c.usage,
        Some(understudy_llm::Usage {
            input: 3,
            output: 1
        })
    );
}

#[test]
fn responses_stream_without_deltas_uses_the_final_output() {
    let full = fixture("responses_tools.json");
    let response: serde_json::Value = serde_json::from_slice(&full).unwrap();
    let event = json!({"type": "response.completed", "sequence_number": 1, "response": response});
    let body = format!("event: response.completed\ndata: {event}\n\n");
    let c = whole(Protocol::Auto, body.as_bytes()).unwrap();
    assert_eq!(c, decode_json(Protocol::OpenAiResponses, &full).unwrap());
}

#[test]
fn after_the_end_marker_nothing_counts() {
    let mut body = fixture("anthropic_text.sse");
    body.extend_from_slice(b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"extra\"}}\n\n");
    assert_eq!(
        whole(Protocol::AnthropicMessages, &body).unwrap().text,
        TEXT
    );
}
