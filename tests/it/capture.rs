//! `store.capture_budget` (issue 25): the answer bytes held for comparison
//! across exchanges in flight are bounded; beyond the budget new exchanges
//! are not captured and are counted as skipped (`capture_budget`), and every
//! byte is given back once its exchange has settled.

use crate::support::*;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::time::{Duration, Instant};

/// `understudy_capture_bytes` once `check` holds (panics after `PATIENCE`).
async fn capture_bytes_when(p: &TestProxy, check: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let held = metric(&p.metrics().await, "understudy_capture_bytes");
        if check(held) {
            return held;
        }
        assert!(Instant::now() < deadline, "capture bytes stuck at {held}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_capture_budget_skips_new_exchanges_visibly_and_every_byte_comes_back() {
    // Route `a`: an incumbent stream the test holds open, a 30 KiB candidate.
    let (held, chunks) = upstream().streaming();
    let held = held.spawn().await;
    let big = format!("\"{}\"", "x".repeat(30 * 1024));
    let candidate = upstream().json(&big).spawn().await;
    // Route `b`: plain JSON on both sides.
    let plain = upstream().json(r#"{"ok":1}"#).spawn().await;
    let plain_candidate = upstream().json(r#"{"ok":1}"#).spawn().await;
    let routes = route("a", "/a", &held.url(), &candidate.url(), "")
        + &route("b", "/b", &plain.url(), &plain_candidate.url(), "");
    let mut p = proxy_with("capture_budget = \"64 KiB\"", &routes).await;
    assert_eq!(metric(&p.metrics().await, "understudy_capture_bytes"), 0.0);

    // 40 KiB of the incumbent's answer and the candidate's 30 KiB: spent.
    chunks
        .send(Bytes::from(vec![b'a'; 40 * 1024]))
        .await
        .unwrap();
    let resp = client()
        .request(
            http::Request::get(p.url("/a"))
                .body(Default::default())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(!first.is_empty());
    let spent = capture_bytes_when(&p, |b| b >= 64.0 * 1024.0).await;
    println!("capture bytes held by the open exchange: {spent}");

    // A new exchange meanwhile is answered, not captured, and counted.
    for _ in 0..3 {
        let (status, _, body) = get(&p.url("/b")).await;
        assert_eq!(status, 200);
        assert_eq!(&body[..], br#"{"ok":1}"#);
    }
    let m = p.metrics().await;
    assert_eq!(
        metric(
            &m,
            r#"understudy_mirror_skipped_total{reason="capture_budget",route="b"}"#
        ),
        3.0,
        "{m}"
    );

    // The open exchange ends: its bytes come back once it has settled.
    chunks.send(Bytes::from_static(b"end")).await.unwrap();
    drop(chunks);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(first.len() + rest.len(), 40 * 1024 + 3);
    capture_bytes_when(&p, |b| b == 0.0).await;

    // With the budget free again, exchanges are compared as before.
    let (status, _, _) = get(&p.url("/b")).await;
    assert_eq!(status, 200);
    capture_bytes_when(&p, |b| b == 0.0).await;
    p.stop().await;
    let rows = p.rows();
    let by = |r: &str| rows.iter().filter(|x| x.route == r).count();
    assert_eq!((by("a"), by("b")), (1, 1), "{rows:?}");
    // Every exchange is accounted for: the three skips are in the table.
    assert_eq!(
        p.skips(),
        vec![("b".into(), "default".into(), "capture_budget".into(), 3)]
    );
}

#[test]
fn a_capture_budget_below_one_answer_or_not_a_size_is_refused() {
    for (value, says) in [
        ("\"1 KiB\"", "at least store.max_body_bytes"),
        ("\"lots\"", "is not a size"),
    ] {
        let text = format!(
            "[listen]\naddr = \"127.0.0.1:0\"\n[store]\ncapture_budget = {value}\n\
             [[routes]]\nname = \"a\"\npath_prefix = \"/\"\nincumbent = \"http://127.0.0.1:1\"\n"
        );
        let err = understudy::config::parse(&text).unwrap_err().to_string();
        assert!(
            err.contains("store.capture_budget") && err.contains(says),
            "{err}"
        );
    }
    let ok = "[listen]\naddr = \"127.0.0.1:0\"\n[[routes]]\nname = \"a\"\npath_prefix = \"/\"\nincumbent = \"http://127.0.0.1:1\"\n";
    assert_eq!(
        understudy::config::parse(ok).unwrap().store.capture_budget,
        256 << 20
    );
}
