//! Criterion benchmark of the llm mode's work per exchange (docs/src/guide/llm.md): two
//! streamed OpenAI chat answers of 2,000 tokens each (one token per event,
//! as the API streams them; the candidate's chunk boundaries, ids and
//! timestamps differ), each decoded frame by frame from its captured bytes
//! with the time to first token, then compared (tool calls, then text
//! similarity). This is what the settle task does; the client's stream only
//! pays for the tee noting each frame's arrival.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use understudy::compare::llm::{self, Step};
use understudy::config::{Bands, JsonCompare, LlmCompare, Protocol, TextStage};
use understudy::observation::{Arrival, Observation};
use understudy::reading::Reading;

const TOKENS: usize = 2_000;

/// A chat-completions stream of `TOKENS` tokens; `per_frame` events arrive
/// together (the network's chunking).
fn stream(id: &str, created: u64, words: &[String], per_frame: usize) -> Observation {
    let event = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":\"{id}\",\"object\":\"chat.completion.chunk\",\"created\":{created},\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_{created}\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}],\"usage\":null}}\n\n"
        )
    };
    let mut events = vec![event(r#"{"role":"assistant","content":""}"#, "null")];
    for w in words {
        events.push(event(
            &format!("{{\"content\":{}}}", serde_json::json!(w)),
            "null",
        ));
    }
    events.push(event("{}", "\"stop\""));
    events.push(format!(
        "data: {{\"id\":\"{id}\",\"object\":\"chat.completion.chunk\",\"created\":{created},\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{{\"prompt_tokens\":412,\"completion_tokens\":{TOKENS},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
        412 + TOKENS
    ));
    let mut body = String::new();
    let mut arrivals = Vec::new();
    for (n, chunk) in events.chunks(per_frame).enumerate() {
        body.extend(chunk.iter().map(String::as_str));
        arrivals.push(Arrival {
            end: body.len(),
            at: Duration::from_millis(n as u64),
        });
    }
    Observation {
        status: Some(200),
        body: Bytes::from(body),
        arrivals,
        latency: Duration::from_secs(2),
        ..Observation::default()
    }
}

fn words(seed: usize) -> Vec<String> {
    const VOCAB: &[&str] = &[
        " the",
        " model",
        " weather",
        " in",
        " Paris",
        " is",
        " mild",
        ",",
        " with",
        " a",
        " chance",
        " of",
        " rain",
        " tomorrow",
        ".",
        " Temperatures",
        " stay",
        " near",
        " 18",
        " °C",
        " and",
        " winds",
        " are",
        " light",
        "\n",
    ];
    (0..TOKENS)
        .map(|i| VOCAB[(i * 7 + seed * (i % 13 == 0) as usize) % VOCAB.len()].to_string())
        .collect()
}

fn bench(c: &mut Criterion) {
    let spec = LlmCompare {
        protocol: Protocol::OpenAiChat,
        arguments: JsonCompare::default(),
        text: vec![TextStage::Similarity],
        threshold: 0.8,
        bands: Bands::default(),
        embedding: None,
        judge: None,
    };
    let incumbent = stream("chatcmpl-A", 1718000000, &words(0), 1);
    let candidate = stream("chatcmpl-B", 1718000456, &words(3), 3);
    let mut g = c.benchmark_group("llm");
    g.throughput(Throughput::Bytes(
        (incumbent.body.len() + candidate.body.len()) as u64,
    ));
    g.bench_function("decode_and_compare_2x2000_tokens", |b| {
        b.iter(|| {
            let i = Reading::of(spec.protocol, black_box(&incumbent)).expect("read");
            let c = Reading::of(spec.protocol, black_box(&candidate)).expect("read");
            match llm::structure(&spec, i.completion.as_ref(), c.completion.as_ref()) {
                Step::Texts {
                    incumbent,
                    candidate,
                } => black_box(llm::similarity(&spec, incumbent, candidate, true)),
                Step::Done(o) => panic!("decided without the text: {o:?}"),
            }
        })
    });
    g.bench_function("decode_one_2000_token_stream", |b| {
        b.iter(|| Reading::of(spec.protocol, black_box(&incumbent)).expect("read"))
    });
    let (i, c) = (
        Reading::of(spec.protocol, &incumbent).expect("read"),
        Reading::of(spec.protocol, &candidate).expect("read"),
    );
    let (a, b) = match (&i.completion, &c.completion) {
        (Ok(a), Ok(b)) => (a.text.clone(), b.text.clone()),
        _ => panic!("decoded"),
    };
    g.bench_function("similarity_of_two_2000_token_texts", |bench| {
        bench.iter(|| llm::similarity(&spec, black_box(&a), black_box(&b), true))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
