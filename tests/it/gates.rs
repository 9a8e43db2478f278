//! docs/src/concepts/canary.md external gates against a real Prometheus (Debian's `prometheus`,
//! installed by `.ci/run`) and an HTTP check on loopback: a raise passes only
//! when they do, and their results are in the audit row and the API.

use crate::rollout::start_in;
use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A Prometheus server on a loopback port, stopped when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start() -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian's prometheus package; .ci/run installs it)");
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let ready = format!("{}/-/ready", p.url);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let req = Request::get(&ready).body(Full::default()).unwrap();
            if let Ok(Ok(r)) =
                tokio::time::timeout(Duration::from_secs(1), client().request(req)).await
                && r.status() == 200
            {
                return p;
            }
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

async fn raise(admin: std::net::SocketAddr, route: &str, weight: u32) -> (u16, Value) {
    let body = format!(r#"{{"segment":"default","weight":{weight},"reason":"step"}}"#);
    let req = Request::post(format!("http://{admin}/api/v1/routes/{route}/weights"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let (status, _, bytes) = send(req).await;
    (status.as_u16(), serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raises_wait_for_prometheus_and_http_gates() {
    let prometheus = Prometheus::start().await;
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    let check = understudy::loopback::serve(move |_req: Request<hyper::body::Incoming>| {
        let ok = flag.load(Ordering::SeqCst);
        async move {
            let mut resp = http::Response::new(Full::new(Bytes::new()));
            if !ok {
                *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            }
            resp
        }
    })
    .await
    .unwrap();
    let (inc, cand) = (upstream().spawn().await, upstream().spawn().await);
    let guard =
        "[routes.guard]\nmin_samples = 10\nmin_agreement = 0.5\nmax_candidate_error_rate = 0.5";
    let gates = |route: &str, query: &str| {
        format!(
            "[[routes.guard.gates]]\nname = \"budget\"\nprometheus = \"{}\"\nquery = \"{query}\"\nmax = 0.5\n\
             [[routes.guard.gates]]\nname = \"canary_check\"\nhttp = \"http://{}/check/{route}\"\n",
            prometheus.url, check.addr
        )
    };
    let routes = route("good", "/good", &inc.url(), &cand.url(), guard)
        + &gates("good", "vector(0.2)")
        + &route("over", "/over", &inc.url(), &cand.url(), guard)
        + &gates("over", "vector(0.9)");
    let dir = tempfile::tempdir().unwrap();
    let running = start_in(dir.path(), &routes, None).await;
    // Enough agreeing shadow traffic for both guards to say pass.
    for i in 0..80 {
        for r in ["good", "over"] {
            let (status, _, _) = get(&format!("http://{}/{r}/{i}", running.addr)).await;
            assert_eq!(status, 200);
        }
    }
    let passing = |r: &'static str| {
        let proxy = running.proxy.clone();
        move || {
            proxy
                .rollout
                .guard_status(r, "default")
                .is_some_and(|(_, d, _)| d.as_str() == "pass")
        }
    };
    assert!(eventually(passing("good")).await && eventually(passing("over")).await);

    // The HTTP check fails: refused, and the API shows why.
    let (status, v) = raise(running.admin_addr, "good", 5).await;
    assert_eq!(status, 409, "{v}");
    let why = v["error"].as_str().unwrap();
    assert!(why.contains("canary_check: fail (status 503)"), "{why}");
    assert!(
        why.contains("budget: pass (vector(0.2) = 0.2 (must be ≤ 0.5))"),
        "{why}"
    );
    let (_, _, body) = get(&format!("http://{}/api/v1/routes", running.admin_addr)).await;
    let routes: Value = serde_json::from_slice(&body).unwrap();
    let shown = &routes["routes"][0]["gates"];
    assert_eq!(shown[1]["name"], "canary_check");
    assert_eq!(shown[1]["passed"], false);

    // Both pass: applied, with the results in its audit row.
    healthy.store(true, Ordering::SeqCst);
    let (status, v) = raise(running.admin_addr, "good", 5).await;
    assert_eq!(status, 200, "{v}");
    let gates_row = v["change"]["gates"].as_str().unwrap();
    assert!(
        gates_row.contains("canary_check: pass (status 200)"),
        "{gates_row}"
    );
    let (_, _, body) = get(&format!(
        "http://{}/api/v1/audit?route=good",
        running.admin_addr
    ))
    .await;
    let audit: Value = serde_json::from_slice(&body).unwrap();
    let last = audit["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["gates"].as_str(), Some(gates_row));

    // A PromQL value over its max refuses, whatever the HTTP check says.
    let (status, v) = raise(running.admin_addr, "over", 5).await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("vector(0.9) = 0.9"),
        "{v}"
    );
    // Lowering is never gated.
    let down = r#"{"segment":"default","weight":0,"reason":"back"}"#;
    let req = Request::post(format!(
        "http://{}/api/v1/routes/good/weights",
        running.admin_addr
    ))
    .header("content-type", "application/json")
    .body(Full::new(Bytes::from_static(down.as_bytes())))
    .unwrap();
    healthy.store(false, Ordering::SeqCst);
    assert_eq!(send(req).await.0, 200);
    running.stop().await;
}
