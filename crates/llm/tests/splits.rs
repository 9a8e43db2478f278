//! Chunk boundaries: every split of every stream fixture, byte by byte, with
//! `\n`, `\r\n` and `\r` line ends, gives the same completion; the first
//! content is reported on the chunk that completes its event.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use understudy_llm::{Limits, Protocol, StreamDecoder};

#[test]
fn byte_by_byte_with_every_line_ending() {
    for &(name, p) in STREAMS {
        let body = fixture(name);
        let expected = whole(p, &body).unwrap();
        for sep in [&b"\n"[..], b"\r\n", b"\r"] {
            let framed = with_line_ends(&body, sep);
            assert_eq!(whole(p, &framed).unwrap(), expected, "{name} {sep:?} whole");
            let got = feed(p, Limits::default(), framed.chunks(1)).unwrap();
            assert_eq!(got, expected, "{name} {sep:?} byte by byte");
            let auto = feed(Protocol::Auto, Limits::default(), framed.chunks(1)).unwrap();
            assert_eq!(auto, expected, "{name} {sep:?} auto byte by byte");
        }
    }
}

#[test]
fn every_two_way_split() {
    for &(name, p) in STREAMS {
        let body = fixture(name);
        let expected = whole(p, &body).unwrap();
        for sep in [&b"\n"[..], b"\r\n"] {
            let framed = with_line_ends(&body, sep);
            for at in 0..=framed.len() {
                let (a, b) = framed.split_at(at);
                let got = feed(p, Limits::default(), [a, b]).unwrap();
                assert_eq!(got, expected, "{name} {sep:?} split at {at}");
            }
        }
    }
}

#[test]
fn random_chunkings() {
    let mut rng = Lcg(7);
    for &(name, p) in STREAMS {
        let body = with_line_ends(&fixture(name), b"\r\n");
        let expected = whole(p, &body).unwrap();
        for _ in 0..50 {
            let chunks = random_chunks(&body, &mut rng, 97);
            assert_eq!(
                feed(p, Limits::default(), chunks).unwrap(),
                expected,
                "{name}"
            );
        }
    }
}

/// Index of the first event carrying content in each fixture (0-based, events
/// separated by blank lines).
const FIRST_CONTENT_EVENT: &[(&str, usize)] = &[
    ("chat_text_a.sse", 1), // 0 is the role chunk with content ""
    ("chat_text_b.sse", 1),
    ("chat_tools.sse", 1),     // the first tool_calls delta (id and name)
    ("responses_text.sse", 4), // created, in_progress, item added, part added
    ("responses_text_b.sse", 4),
    ("responses_tools.sse", 4), // a reasoning item (added, done) comes first
    ("anthropic_text.sse", 3),  // message_start, empty text block, ping
    ("anthropic_text_b.sse", 3),
    ("anthropic_tools.sse", 3),
];

#[test]
fn first_content_fires_on_its_event() {
    for &(name, event) in FIRST_CONTENT_EVENT {
        let p = STREAMS.iter().find(|s| s.0 == name).unwrap().1;
        let body = String::from_utf8(fixture(name)).unwrap();
        let events: Vec<&str> = body.split_inclusive("\n\n").collect();

        // Event by event, named protocol and auto.
        for q in [p, Protocol::Auto] {
            let mut d = StreamDecoder::new(q);
            let fired: Vec<usize> = events
                .iter()
                .enumerate()
                .filter(|(_, e)| d.push(e.as_bytes()).first_content)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(fired, vec![event], "{name} {q}");
            assert_eq!(d.protocol(), Some(p));
        }

        // Byte by byte: it fires on the blank line closing that event.
        let end: usize = events[..=event].iter().map(|e| e.len()).sum();
        let mut d = StreamDecoder::new(p);
        let fired: Vec<usize> = body
            .as_bytes()
            .iter()
            .enumerate()
            .filter(|(_, b)| d.push(std::slice::from_ref(b)).first_content)
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(fired, vec![end], "{name} byte by byte");
    }
}

#[test]
fn done_is_reported_at_the_end_marker() {
    for &(name, p) in STREAMS {
        let body = fixture(name);
        let mut d = StreamDecoder::new(p);
        let done_at = body
            .iter()
            .position(|b| d.push(std::slice::from_ref(b)).done);
        // The marker's event is the last one: done on the final newline.
        assert_eq!(done_at, Some(body.len() - 1), "{name}");
    }
}
