//! docs/src/reference/configuration.md notifications: webhooks on loopback receive rollout events within
//! a second, in `json` and `slack` format; a receiver that fails is retried
//! until it takes them.

use crate::rollout::start_in;
use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A webhook receiver: what it accepted (and when); it answers 500 to its
/// first `fail_first` posts.
struct Receiver {
    server: understudy::loopback::Server,
    got: Arc<Mutex<Vec<(Instant, Value)>>>,
}

async fn receiver(fail_first: usize) -> Receiver {
    let got = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (kept, counted) = (got.clone(), calls.clone());
    let server = understudy::loopback::serve(move |req: Request<hyper::body::Incoming>| {
        let (kept, counted) = (kept.clone(), counted.clone());
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let mut resp = http::Response::new(Full::new(Bytes::new()));
            if counted.fetch_add(1, Ordering::SeqCst) < fail_first {
                *resp.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            } else {
                let v: Value = serde_json::from_slice(&body).unwrap();
                kept.lock().unwrap().push((Instant::now(), v));
            }
            resp
        }
    })
    .await
    .unwrap();
    Receiver { server, got }
}

impl Receiver {
    fn url(&self) -> String {
        format!("http://{}/hooks/understudy", self.server.addr)
    }
    fn events(&self) -> Vec<(Instant, Value)> {
        self.got.lock().unwrap().clone()
    }
}

async fn change(admin: std::net::SocketAddr, body: &str) -> u16 {
    let req = Request::post(format!("http://{admin}/api/v1/routes/r/weights"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap();
    send(req).await.0.as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_events_reach_webhooks_within_a_second_and_survive_a_failing_receiver() {
    let (inc, cand) = (upstream().spawn().await, upstream().spawn().await);
    let json = receiver(0).await;
    let flaky = receiver(2).await;
    let dir = tempfile::tempdir().unwrap();
    let routes = format!(
        "{}\n[[notify]]\nurl = \"{}\"\n\n[[notify]]\nurl = \"{}\"\nformat = \"slack\"\nevents = [\"rollback\"]\n",
        route("r", "/", &inc.url(), &cand.url(), ""),
        json.url(),
        flaky.url()
    );
    let running = start_in(dir.path(), &routes, None).await;
    let admin = running.admin_addr;

    let refused = r#"{"segment":"default","weight":50,"reason":"try"}"#;
    assert_eq!(change(admin, refused).await, 409);
    let forced = r#"{"segment":"default","weight":50,"reason":"go","force":true}"#;
    assert_eq!(change(admin, forced).await, 200);
    let sent = Instant::now();
    let back = r#"{"segment":"default","weight":0,"reason":"bad answers"}"#;
    assert_eq!(change(admin, back).await, 200);
    let off = r#"{"mirror":"off","reason":"stop"}"#;
    assert_eq!(change(admin, off).await, 200);

    assert!(
        eventually(|| json.events().len() == 4).await,
        "{:?}",
        json.events()
    );
    let events = json.events();
    let kinds: Vec<&str> = events
        .iter()
        .map(|(_, v)| v["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["gate_failed", "promote", "rollback", "mirror_off"]);
    let (at, rollback) = &events[2];
    assert!(
        at.duration_since(sent) < Duration::from_secs(1),
        "within a second"
    );
    assert_eq!(
        (rollback["from"].as_f64(), rollback["to"].as_f64()),
        (Some(50.0), Some(0.0))
    );
    assert_eq!(rollback["actor"], "api");
    assert_eq!(rollback["reason"], "bad answers");
    assert!(rollback["version"].as_i64().is_some(), "{rollback}");
    assert!(
        events[0].1["reason"]
            .as_str()
            .unwrap()
            .contains("promotion gate")
    );

    // The flaky receiver wanted only rollbacks, in Slack's shape: it gets it
    // after two refusals (retried at 1 s, then 2 s).
    let late = Instant::now() + Duration::from_secs(10);
    while flaky.events().is_empty() && Instant::now() < late {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = flaky.events();
    assert_eq!(got.len(), 1, "{got:?}");
    let text = got[0].1["text"].as_str().unwrap();
    assert!(
        text.contains("rollback") && text.contains("50% → 0%"),
        "{text}"
    );
    running.stop().await;
}

/// Issue 23: a receiver that accepts and then never finishes its answer (an
/// endless body) holds its queue for a bounded time only: the next event
/// still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_does_not_hold_the_queue() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (inc, cand) = (upstream().spawn().await, upstream().spawn().await);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let posts = Arc::new(AtomicUsize::new(0));
    let seen = posts.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                // One POST per connection (the answer never ends).
                match s.read(&mut buf).await {
                    Ok(n) if n > 0 && buf[..n].starts_with(b"POST ") => {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => return,
                }
                let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                // An endless body, a chunk of 64 KiB at a time.
                let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                while s.write_all(chunk.as_bytes()).await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let routes = format!(
        "{}\n[[notify]]\nurl = \"http://{addr}/hook\"\n",
        route("r", "/", &inc.url(), &cand.url(), ""),
    );
    let running = start_in(dir.path(), &routes, None).await;
    let admin = running.admin_addr;
    let up = r#"{"segment":"default","weight":50,"reason":"go","force":true}"#;
    assert_eq!(change(admin, up).await, 200);
    let back = r#"{"segment":"default","weight":0,"reason":"back"}"#;
    assert_eq!(change(admin, back).await, 200);
    let deadline = Instant::now() + Duration::from_secs(15);
    while posts.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        posts.load(Ordering::SeqCst),
        2,
        "the second event never left"
    );
    running.stop().await;
}
