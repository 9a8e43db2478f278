//! `recommend`: the suggestion inserted (JSON) or in a header, its bound with
//! a fast, slow and dead candidate, compressed answers left alone.

use super::*;
use crate::support::*;
use serde_json::Value;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommend_inserts_the_candidates_answer_and_measures_what_it_costs() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let extra = "rollout = { segments = { gold = 100.0 } }\n\
                 [routes.autonomy]\nstages = { gold = \"recommend\" }\n\
                 suggest_pointer = \"/suggestion\"\nsuggest_timeout = \"300ms\"\n";
    let mut proxy = proxy(&routes(&incumbent.url(), &candidate.url(), extra)).await;
    let (status, h, body, _) = ask(proxy.addr, "gold", 1).await;
    assert_eq!(status, 200);
    assert_eq!(h["x-understudy-served-by"], "incumbent");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["score"], 0.5);
    assert_eq!(
        v["suggestion"],
        serde_json::from_str::<Value>(CANDIDATE).unwrap()
    );
    assert_eq!(h["content-length"], body.len().to_string().as_str());

    // What the wait costs with a fast candidate: recommend (gold) against
    // the same route without it (silver, shadow only), alternated.
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..300 {
        with.push(ask(proxy.addr, "gold", i).await.3);
        without.push(ask(proxy.addr, "silver", i).await.3);
    }
    with.sort();
    without.sort();
    let (p50, p99) = (percentile(&with, 0.5), percentile(&with, 0.99));
    let (b50, b99) = (percentile(&without, 0.5), percentile(&without, 0.99));
    println!(
        "recommend, fast candidate: p50 {p50:?} p99 {p99:?}; without: p50 {b50:?} p99 {b99:?}; \
         added p50 {:?} p99 {:?}",
        p50.saturating_sub(b50),
        p99.saturating_sub(b99)
    );
    assert!(p99 < Duration::from_millis(300), "p99 {p99:?}");
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"understudy_suggestions_total{outcome="inserted",route="r"}"#
        ),
        301.0
    );
    assert_eq!(
        metric(&m, r#"understudy_autonomy_stage{route="r",segment="gold"}"#),
        1.0
    );
    proxy.stop().await;
    // Every recommended exchange is compared like any other.
    let gold = proxy
        .rows()
        .into_iter()
        .filter(|r| r.segment == "gold")
        .count();
    assert_eq!(gold, 301);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_json_answer_carries_the_suggestion_in_a_header_cut_at_4_kib() {
    let incumbent = upstream()
        .headers_only(&[("content-type", "text/plain")])
        .json("plain incumbent")
        .spawn()
        .await;
    let long = format!("line one\r\nline two {}", "x".repeat(10_000));
    let candidate = upstream()
        .headers_only(&[("content-type", "text/plain")])
        .json(&long)
        .spawn()
        .await;
    let extra = "rollout = { segments = { gold = 100.0 } }\n\
                 [routes.autonomy]\nstages = { gold = \"recommend\" }\nsuggest_pointer = \"/s\"\n";
    let mut proxy = proxy(&routes(&incumbent.url(), &candidate.url(), extra)).await;
    let (status, h, body, _) = ask(proxy.addr, "gold", 1).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"plain incumbent");
    let s = h["x-understudy-suggestion"].as_bytes();
    assert!(s.starts_with(b"line one  line two xxx"), "{s:?}");
    assert!(s.len() <= 4096, "{}", s.len());
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"understudy_suggestions_total{outcome="header",route="r"}"#
        ),
        1.0
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_dead_candidate_never_delays_the_answer_beyond_suggest_timeout() {
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let slow = upstream()
        .json(CANDIDATE)
        .delay(Duration::from_millis(1500))
        .spawn()
        .await;
    let dead = format!("http://{}", dead_addr().await);
    let extra = "rollout = { segments = { gold = 100.0 } }\n\
                 [routes.autonomy]\nstages = { gold = \"recommend\" }\n\
                 suggest_pointer = \"/suggestion\"\nsuggest_timeout = \"200ms\"\n";
    for (candidate, outcome) in [(slow.url(), "late"), (dead, "failed")] {
        let mut proxy = proxy(&routes(&incumbent.url(), &candidate, extra)).await;
        let mut worst = Duration::ZERO;
        for i in 0..5 {
            let (status, h, body, took) = ask(proxy.addr, "gold", i).await;
            assert_eq!(status, 200);
            assert_eq!(h["x-understudy-served-by"], "incumbent");
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert!(v.get("suggestion").is_none(), "{outcome}: {v}");
            worst = worst.max(took);
        }
        println!("{outcome} candidate: slowest answer {worst:?} (suggest_timeout 200ms)");
        assert!(worst < Duration::from_millis(450), "{outcome}: {worst:?}");
        let m = proxy.metrics().await;
        let series = format!(r#"understudy_suggestions_total{{outcome="{outcome}",route="r"}}"#);
        assert_eq!(metric(&m, &series), 5.0, "{m}");
        proxy.stop().await;
        // A late candidate's answer still reaches the comparison.
        if outcome == "late" {
            let rows = proxy.rows();
            assert_eq!(rows.len(), 5);
            assert!(rows.iter().all(|r| r.verdict == "match"), "{rows:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_answer_is_passed_through_without_a_suggestion_and_counted() {
    // The body is not really gzip: Understudy must not touch it either way.
    let incumbent = upstream()
        .header("content-encoding", "gzip")
        .json(INCUMBENT)
        .spawn()
        .await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let extra = "rollout = { segments = { gold = 100.0 } }\n\
                 [routes.autonomy]\nstages = { gold = \"recommend\" }\nsuggest_pointer = \"/s\"\n";
    let mut proxy = proxy(&routes(&incumbent.url(), &candidate.url(), extra)).await;
    let (status, h, body, _) = ask(proxy.addr, "gold", 1).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], INCUMBENT.as_bytes());
    assert_eq!(h["content-encoding"], "gzip");
    assert!(h.get("x-understudy-suggestion").is_none());
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"understudy_suggestions_total{outcome="compressed",route="r"}"#
        ),
        1.0
    );
    proxy.stop().await;
}
