//! The llm mode's text cascade (similarity, embeddings, judge) through the
//! real proxy, and what `report` makes of it: AI figures per segment, pairs
//! decided per stage, the judge's calibration against people.

use crate::support::*;
use std::time::Duration;

/// A chat completion (not streamed) saying `text`, with usage.
fn chat_answer(text: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
    })
}

/// A toy embeddings endpoint: a text about Paris is `[1, 0]`, about Lyon
/// `[0.9, 0.436]` (cosine 0.9 with Paris), anything else `[0, 1]`.
fn embed(text: &str) -> serde_json::Value {
    if text.contains("Paris") {
        serde_json::json!([1.0, 0.0])
    } else if text.contains("Lyon") {
        serde_json::json!([0.9, (1.0f64 - 0.81).sqrt()])
    } else {
        serde_json::json!([0.0, 1.0])
    }
}

const WEATHER: &str = "The weather in Paris is sunny and warm today with a light breeze";

/// The cascade `["similarity", "embedding", "judge"]`: each stage decides
/// outside its band and only undecided pairs go on, so the judge sees only
/// the pairs the cheaper stages could not settle; an unreachable embeddings
/// endpoint makes the pair `skipped`, counted. The report says which stage
/// decided how many pairs, the AI figures per segment, and how the judge's
/// verdicts compare with people's ratings (Cohen's kappa).
#[tokio::test]
async fn the_cascade_calls_the_judge_only_for_undecided_pairs() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let incumbent = crate::report::json_upstream(|_| chat_answer(WEATHER), Duration::ZERO).await;
    let candidate = crate::report::json_upstream(
        |req| chat_answer(req["answer"].as_str().unwrap_or("")),
        Duration::ZERO,
    )
    .await;
    let embeddings_calls = std::sync::Arc::new(AtomicU64::new(0));
    let counter = embeddings_calls.clone();
    let embeddings = crate::report::json_upstream(
        move |req| {
            counter.fetch_add(1, Ordering::Relaxed);
            assert_eq!(req["model"], "toy-embed");
            let data: Vec<serde_json::Value> = (req["input"].as_array().unwrap().iter())
                .enumerate()
                .map(|(i, t)| serde_json::json!({"object": "embedding", "index": i, "embedding": embed(t.as_str().unwrap())}))
                .collect();
            serde_json::json!({"object": "list", "data": data, "model": "toy-embed"})
        },
        Duration::ZERO,
    )
    .await;
    let judge_calls = std::sync::Arc::new(AtomicU64::new(0));
    let counter = judge_calls.clone();
    let judge = crate::report::json_upstream(
        move |q| {
            counter.fetch_add(1, Ordering::Relaxed);
            assert!(
                q["incumbent"].as_str().is_some_and(|t| t.contains("Paris")),
                "{q}"
            );
            serde_json::json!({"agree": q["request"]["label"] == "agree", "score": 0.5})
        },
        Duration::ZERO,
    )
    .await;
    let dead = dead_addr().await;
    let cascade = format!(
        "compare = {{ mode = \"llm\", text = [\"similarity\", \"embedding\", \"judge\"], url = \"{}/judge\", bands = {{ similarity = [0.4, 0.95] }}, embedding = {{ url = \"{}/v1/embeddings\", model = \"toy-embed\" }} }}
cost = {{ candidate = {{ input_per_mtok = 1.0, output_per_mtok = 2.0 }} }}",
        judge.url(),
        embeddings.url()
    );
    let broken = format!(
        "compare = {{ mode = \"llm\", text = [\"similarity\", \"embedding\"], bands = {{ similarity = [0.4, 0.95] }}, embedding = {{ url = \"http://{dead}/v1/embeddings\", model = \"toy-embed\", timeout = \"500ms\" }} }}"
    );
    let (inc, cand) = (incumbent.url(), candidate.url());
    let mirror = "mirror = { methods = [\"POST\"] }";
    let routes = [
        route(
            "cascade",
            "/cascade",
            &inc,
            &cand,
            &format!("{mirror}\n{cascade}"),
        ),
        route(
            "broken",
            "/broken",
            &inc,
            &cand,
            &format!("{mirror}\n{broken}"),
        ),
    ]
    .join("\n");
    let mut proxy = proxy(&routes).await;
    let ask = |answer: &str, label: &str| {
        serde_json::json!({"model": "m", "answer": answer, "label": label}).to_string()
    };
    let paraphrase = "Today in Paris the weather is warm and sunny, with a gentle wind";
    let cases = [
        (WEATHER, "", "match", Some("similarity")),
        (paraphrase, "", "match", Some("embedding")),
        (
            "Today the weather is warm and sunny, with a gentle wind",
            "",
            "mismatch",
            Some("embedding"),
        ),
        (
            "I cannot help with that request.",
            "",
            "mismatch",
            Some("similarity"),
        ),
        (
            "Today in Lyon the weather is warm and sunny, with a gentle wind",
            "agree",
            "match",
            Some("judge"),
        ),
        (
            "Today in Lyon the weather is warm and sunny, with a gentle wind",
            "agree",
            "match",
            Some("judge"),
        ),
        (
            "Today in Lyon the weather is warm and sunny, with a gentle wind",
            "no",
            "mismatch",
            Some("judge"),
        ),
        (
            "Today in Lyon the weather is warm and sunny, with a gentle wind",
            "no",
            "mismatch",
            Some("judge"),
        ),
    ];
    let mut ids = Vec::new();
    for (answer, label, _, _) in &cases {
        let (_, headers, _) = post(&proxy.url("/cascade/v1"), &ask(answer, label)).await;
        ids.push(
            headers["x-understudy-exchange-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    post(&proxy.url("/broken/v1"), &ask(paraphrase, "")).await;
    proxy.stop().await;
    let conn = rusqlite::Connection::open(&proxy.db).unwrap();
    for (id, (answer, _, verdict, stage)) in ids.iter().zip(&cases) {
        let got: (String, Option<String>, String) = conn
            .query_row(
                "SELECT verdict, decided_by, diff FROM exchanges WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (got.0.as_str(), got.1.as_deref()),
            (*verdict, *stage),
            "{answer}"
        );
        let diff = if *verdict == "match" {
            "[]"
        } else {
            "[\"/text\"]"
        };
        assert_eq!(got.2, diff);
    }
    assert_eq!(
        judge_calls.load(Ordering::Relaxed),
        4,
        "only the undecided pairs"
    );
    assert_eq!(embeddings_calls.load(Ordering::Relaxed), 6);
    let broken: (String, Option<String>) = conn
        .query_row(
            "SELECT verdict, skip_reason FROM exchanges WHERE route = 'broken'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(broken.0, "skipped");
    assert!(broken.1.unwrap().starts_with("embedding failed"));

    // People rate the four judged exchanges: agree, disagree, disagree, disagree.
    let rw = understudy::store::events::open(&proxy.db).unwrap();
    for (id, rating) in ids[4..].iter().zip([1, -1, -1, -1]) {
        let feedback = understudy::store::events::NewFeedback {
            exchange_id: id.clone(),
            rating: Some(rating),
            comment: String::new(),
            reversed: false,
            rater: None,
        };
        understudy::store::events::insert_feedback(&rw, &feedback).unwrap();
    }
    drop(rw);
    let opts = understudy::report::ReportOptions {
        dbs: vec![proxy.db.clone()],
        route: Some("cascade".into()),
        ..Default::default()
    };
    let report = understudy::report::build(&opts).unwrap();
    let ai = report.lines[0].ai.as_ref().expect("AI figures");
    assert_eq!(
        ai.decided_by,
        [
            ("judge".to_string(), 4),
            ("embedding".to_string(), 2),
            ("similarity".to_string(), 2)
        ]
    );
    assert_eq!(ai.candidate.tokens_out_per_request, Some(20.0));
    assert!(
        (ai.candidate.cost_per_1k.unwrap() - 0.05).abs() < 1e-12,
        "{ai:?}"
    );
    assert_eq!(ai.incumbent.cost_unknown, 8, "no incumbent prices");
    assert!(ai.candidate.ttft_p50.is_some());
    let cal = &report.calibration[0];
    assert_eq!((cal.route.as_str(), cal.pairs), ("cascade", 4));
    assert!((cal.agreement.unwrap() - 0.75).abs() < 1e-12);
    assert!((cal.kappa.unwrap() - 0.5).abs() < 1e-12, "{cal:?}");
    let mut text = Vec::new();
    understudy::report::write(&report, understudy::report::Format::Table, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("text decided by: judge 4, embedding 2, similarity 2"),
        "{text}"
    );
    assert!(text.contains("Cohen's kappa 0.50"), "{text}");
    let mut html = Vec::new();
    understudy::report::write(&report, understudy::report::Format::Html, &mut html).unwrap();
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains("<h2>AI answers</h2>") && html.contains("judge 4, embedding 2"));
    assert!(html.contains("Can the judge be trusted?"));
}
