//! One AI answer read for docs/src/guide/llm.md: decoded into a completion, with its time
//! to first token, its tokens and its cost.
//!
//! Runs on the settle task, off the client's path: the tee (or the bounded
//! call) only noted when each frame arrived ([`Arrival`]); here the captured
//! bytes are fed to the stream decoder frame by frame, so the frame that
//! carried the first content gives the time to first token exactly as the
//! client's stream saw it.

use crate::config::{Price, Protocol};
use crate::observation::{Arrival, Observation};
use std::time::Duration;
use understudy_llm::{Completion, DecodeError, StreamDecoder};

/// One side's answer, read.
#[derive(Debug, Clone)]
pub struct Reading {
    pub completion: Result<Completion, DecodeError>,
    /// From sending the request to the first content (text or tool call):
    /// the arrival of the frame that carried it when streamed, the whole
    /// answer when not; `None` when unknown (no content, not decoded).
    pub ttft: Option<Duration>,
}

/// What a row and the metrics get from one side's reading.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    pub ttft_ms: Option<f64>,
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    /// Dollars, when the answer reported usage and the side has prices.
    pub cost: Option<f64>,
}

impl Reading {
    /// Reads an answer that came (a response head without a transport
    /// error); `None` for a failure, which has nothing to decode.
    pub fn of(protocol: Protocol, obs: &Observation) -> Option<Reading> {
        if obs.error.is_some() || obs.status.is_none() {
            return None;
        }
        let body = &obs.body[..];
        if !understudy_llm::is_event_stream(None, body) {
            let completion = understudy_llm::decode_json(protocol, body);
            let has_content = completion
                .as_ref()
                .is_ok_and(|c| !c.text.is_empty() || !c.tool_calls.is_empty());
            return Some(Reading {
                completion,
                ttft: has_content.then_some(obs.latency),
            });
        }
        let mut decoder = StreamDecoder::new(protocol);
        let mut ttft = None;
        let mut fed = 0;
        // Without arrivals (a body not timed) the whole body is one frame.
        let whole = [Arrival {
            end: body.len(),
            at: obs.latency,
        }];
        let arrivals = if obs.arrivals.is_empty() {
            &whole[..]
        } else {
            &obs.arrivals[..]
        };
        for a in arrivals {
            let end = a.end.min(body.len());
            if end <= fed {
                continue;
            }
            let progress = decoder.push(&body[fed..end]);
            fed = end;
            if progress.first_content {
                ttft = Some(a.at);
            }
            if progress.done {
                break;
            }
        }
        if fed < body.len() && decoder.push(&body[fed..]).first_content {
            ttft = ttft.or(Some(obs.latency));
        }
        Some(Reading {
            completion: decoder.finish(),
            ttft,
        })
    }

    /// The row's figures, with the side's prices (if any).
    pub fn figures(&self, price: Option<&Price>) -> Figures {
        let usage = self.completion.as_ref().ok().and_then(|c| c.usage);
        Figures {
            ttft_ms: self.ttft.map(|d| d.as_secs_f64() * 1000.0),
            tokens_in: usage.map(|u| u.input),
            tokens_out: usage.map(|u| u.output),
            cost: usage.zip(price).map(|(u, p)| p.dollars(u.input, u.output)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const CHAT: &str = concat!(
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2,\"total_tokens\":12}}\n\n",
        "data: [DONE]\n\n"
    );

    fn obs(body: &str, arrivals: Vec<Arrival>) -> Observation {
        Observation {
            status: Some(200),
            body: Bytes::copy_from_slice(body.as_bytes()),
            latency: Duration::from_millis(90),
            arrivals,
            ..Observation::default()
        }
    }

    #[test]
    fn the_frame_with_the_first_content_times_it() {
        // Frame 1: the role chunk (no content); frame 2: "Hi"; frame 3: the rest.
        let first = CHAT.find("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\"").unwrap();
        let second = first + 40; // mid-event: the event completes in frame 3
        let arrivals = vec![
            Arrival {
                end: first,
                at: Duration::from_millis(10),
            },
            Arrival {
                end: second,
                at: Duration::from_millis(20),
            },
            Arrival {
                end: CHAT.len(),
                at: Duration::from_millis(30),
            },
        ];
        let r = Reading::of(Protocol::Auto, &obs(CHAT, arrivals)).unwrap();
        assert_eq!(r.ttft, Some(Duration::from_millis(30)));
        let price = Price {
            input_per_mtok: 1.0,
            output_per_mtok: 10.0,
        };
        let f = r.figures(Some(&price));
        assert_eq!((f.tokens_in, f.tokens_out), (Some(10), Some(2)));
        assert!((f.cost.unwrap() - 30e-6).abs() < 1e-12);
        assert_eq!(r.completion.unwrap().text, "Hi");
    }

    #[test]
    fn json_answers_take_the_whole_latency_and_garbage_is_an_error() {
        let body = r#"{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}]}"#;
        let r = Reading::of(Protocol::OpenAiChat, &obs(body, vec![])).unwrap();
        assert_eq!(r.ttft, Some(Duration::from_millis(90)));
        // No usage: tokens and cost unknown.
        assert_eq!(
            r.figures(None),
            Figures {
                ttft_ms: Some(90.0),
                ..Figures::default()
            }
        );
        let r = Reading::of(Protocol::OpenAiChat, &obs("<html>oops</html>", vec![])).unwrap();
        assert!(r.completion.is_err());
        assert_eq!(r.ttft, None);
        let failed = Observation::failed("reset", Duration::from_millis(5));
        assert!(Reading::of(Protocol::Auto, &failed).is_none());
    }
}
