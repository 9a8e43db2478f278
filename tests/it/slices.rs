//! Slice discovery (issue 26) over real traffic on loopback: a candidate
//! wrong for an undeclared region (a header) is found by `understudy
//! slices` (table, JSON, Markdown), in the report (text, HTML), by `report
//! --slice`, by `GET /api/v1/routes/{route}/slices`, and notified (`slice`)
//! while the proxy runs; a route whose candidate is wrong at random has no
//! slice.

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// Regions as the client sends them (header `x-region`), one in five `apac`.
const REGIONS: [&str; 5] = ["amer", "emea", "apac", "amer", "emea"];

/// A candidate that agrees with the incumbent (`{"score":1}`) except: on
/// `/r`, for `apac` two requests in three; on `/flat`, one request in ten
/// whatever its attributes. Which ones is the client's seeded roll (header
/// `x-roll`, 0..100), independent of every attribute.
async fn candidate() -> understudy::loopback::Server {
    understudy::loopback::serve(move |req: Request<hyper::body::Incoming>| async move {
        let apac = req.headers().get("x-region").is_some_and(|v| v == "apac");
        let roll: u32 = (req.headers().get("x-roll"))
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0);
        let wrong = match req.uri().path() {
            "/r" => apac && roll < 67,
            _ => roll < 10,
        };
        let body = if wrong {
            r#"{"score":2}"#
        } else {
            r#"{"score":1}"#
        };
        let mut resp = http::Response::new(Full::new(Bytes::from(body)));
        resp.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        resp
    })
    .await
    .unwrap()
}

/// A webhook receiver keeping every JSON body it is sent.
async fn receiver() -> (understudy::loopback::Server, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let server = understudy::loopback::serve(move |req: Request<hyper::body::Incoming>| {
        let kept = kept.clone();
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                kept.lock().unwrap().push(v);
            }
            http::Response::new(Full::new(Bytes::new()))
        }
    })
    .await
    .unwrap();
    (server, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slice_nobody_declared_is_found_shown_and_notified() {
    let incumbent = upstream().json(r#"{"score":1}"#).spawn().await;
    let cand = candidate().await;
    let (hook, notified) = receiver().await;
    let route = |name: &str, prefix: &str| {
        format!(
            "[[routes]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nincumbent = \"{}\"\ncandidate = \"{}\"\n\
             mirror = {{ methods = [\"POST\"] }}\n\
             [routes.slices]\nheaders = [\"x-region\"]\nmin_support = 30\nevery = \"200ms\"\nwindow = \"1h\"\n",
            incumbent.url(),
            cand.url()
        )
    };
    let routes = format!(
        "[[notify]]\nurl = \"{}/hook\"\nevents = [\"slice\"]\n\n{}\n{}",
        hook.url(),
        route("r", "/r"),
        route("flat", "/flat")
    );
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), "[store]\nflush_interval = \"20ms\"\n", &routes);
    let config_path = dir.path().join("proxy.toml");
    std::fs::write(&config_path, &text).unwrap();
    let config = understudy::config::parse(&text).unwrap();
    let db = config.store.path.clone();
    let running = understudy::app::start(config).await.unwrap();
    let (addr, admin) = (running.addr, running.admin_addr);

    let mut apac = 0;
    let mut rng = StdRng::seed_from_u64(26);
    for i in 0..600 {
        let region = REGIONS[rng.gen_range(0..REGIONS.len())];
        apac += usize::from(region == "apac");
        for path in ["/r", "/flat"] {
            let plan = ["free", "pro", "team"][rng.gen_range(0..3)];
            let req = Request::post(format!("http://{addr}{path}"))
                .header("content-type", "application/json")
                .header("x-region", region)
                .header("x-roll", rng.gen_range(0..100u32).to_string())
                .body(Full::new(Bytes::from(format!(
                    r#"{{"plan":"{plan}","n":{i}}}"#
                ))))
                .unwrap();
            assert_eq!(send(req).await.0, 200);
        }
    }

    // The notification, while the proxy runs.
    let slice_of = |v: &Value| v["event"] == "slice" && v["route"] == "r";
    assert!(
        eventually(|| notified.lock().unwrap().iter().any(slice_of)).await,
        "no slice notification: {:?}",
        notified.lock().unwrap()
    );
    let events = notified.lock().unwrap().clone();
    let event = events.iter().find(|v| slice_of(v)).unwrap();
    assert_eq!(event["segment"], "header:x-region=apac", "{event}");
    assert!(
        event["reason"]
            .as_str()
            .unwrap()
            .contains("the rest of the route 100.0%"),
        "{event}"
    );
    assert!(
        event["figures"]
            .as_str()
            .unwrap()
            .contains(r#"header = "x-region""#)
    );
    assert!(
        !events.iter().any(|v| v["route"] == "flat"),
        "the flat route has no slice: {events:?}"
    );

    // The admin API.
    let (status, _, body) = get(&format!("http://{admin}/api/v1/routes/r/slices")).await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["slices"][0]["label"], "header:x-region=apac", "{v}");
    let (status, _, _) = get(&format!("http://{admin}/api/v1/routes/nope/slices")).await;
    assert_eq!(status, 404);
    let (status, _, body) = get(&format!(
        "http://{admin}/api/v1/routes/r/slices?since=bogus"
    ))
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    running.stop().await;

    // The real binary: `understudy slices` in each format.
    let db = db.to_str().unwrap();
    let cfg = config_path.to_str().unwrap();
    let (ok, out, err) = cli(&["slices", "--db", db, "-c", cfg, "--format", "json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let by_route = |name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == name)
            .unwrap()
    };
    let r = by_route("r");
    assert_eq!(r["slices"].as_array().unwrap().len(), 1, "{r}");
    let s = &r["slices"][0];
    assert_eq!(s["label"], "header:x-region=apac");
    assert_eq!(s["comparisons"], apac as u64);
    let a = s["agreement"]["value"].as_f64().unwrap();
    assert!((0.2..0.5).contains(&a), "{s}");
    assert!(
        s["agreement"]["lo"].as_f64().unwrap() < a && a < s["agreement"]["hi"].as_f64().unwrap()
    );
    assert_eq!(s["rest"]["value"], 1.0);
    assert_eq!(by_route("flat")["slices"].as_array().unwrap().len(), 0);
    assert!(by_route("flat")["looked_at"].as_u64().unwrap() > 3);

    let (ok, out, err) = cli(&["slices", "--db", db, "-c", cfg, "--route", "r"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("1 slice significantly worse than the rest"),
        "{out}"
    );
    assert!(out.contains("header:x-region=apac"), "{out}");
    assert!(
        out.contains(r#"declare it: segment = { header = "x-region", values = ["apac"] }"#),
        "{out}"
    );
    assert!(!out.contains("route flat"), "{out}");
    let (ok, out, _) = cli(&["slices", "--db", db, "-c", cfg, "--format", "markdown"]);
    assert!(
        ok && out.contains("| 1 | `header:x-region=apac` |"),
        "{out}"
    );

    // The report: a Slices section in text and HTML.
    let (ok, out, err) = cli(&["report", "--db", db, "-c", cfg]);
    assert!(ok, "{err}");
    assert!(
        out.contains("\nSlices\n") && out.contains("header:x-region=apac"),
        "{out}"
    );
    let (ok, out, _) = cli(&["report", "--db", db, "-c", cfg, "--no-slices"]);
    assert!(ok && !out.contains("\nSlices\n"), "{out}");
    let (ok, html, _) = cli(&["report", "--db", db, "-c", cfg, "--format", "html"]);
    assert!(ok);
    assert!(html.contains("<h2>Slices</h2>"), "no Slices section");
    assert!(html.contains("<code>header:x-region=apac</code>"));
    assert!(html.contains("<tr class=\"slice\">") && html.contains("<svg"));

    // `report --slice`: the usual report over the slice's exchanges only.
    let (ok, out, err) = cli(&[
        "report",
        "--db",
        db,
        "-c",
        cfg,
        "--route",
        "r",
        "--slice",
        "x-region=apac",
        "--format",
        "json",
    ]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let samples: u64 = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["samples"].as_u64().unwrap())
        .sum();
    assert_eq!(samples, apac as u64, "{v}");
    assert_eq!(v["slice"], "x-region=apac");
    let (ok, _, err) = cli(&["report", "--db", db, "-c", cfg, "--slice", "x-planet=mars"]);
    assert!(!ok);
    assert!(err.contains("no attribute \"x-planet\""), "{err}");
    let (ok, _, err) = cli(&["report", "--db", db, "-c", cfg, "--slice", "x-region"]);
    assert!(!ok && err.contains("is not attribute=value"), "{err}");
}

/// Issue 26's scale target: 1,000,000 stored comparisons with 10 attributes
/// of up to 50 values (5 headers, 4 JSON keys, a query parameter; the path
/// has an id, collapsed, so it splits nothing), a planted slice of 2 % at 0.6 in a route at 0.95; then
/// `understudy slices` (this build's binary) under `/usr/bin/time -v`.
/// Set `SLICES_BENCH_DB` to keep the file.
/// `cargo test --release --test it -- --ignored slices_at_a_million --nocapture`
#[test]
#[ignore = "a measurement; run in release"]
fn slices_at_a_million() {
    let dir = tempfile::tempdir().unwrap();
    let db = std::env::var_os("SLICES_BENCH_DB")
        .map_or_else(|| dir.path().join("million.db"), std::path::PathBuf::from);
    let config = dir.path().join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\naddr = \"127.0.0.1:0\"\n[admin]\naddr = \"127.0.0.1:0\"\n[store]\npath = \"{}\"\n\
             [[routes]]\nname = \"score\"\npath_prefix = \"/\"\nincumbent = \"http://127.0.0.1:1\"\n\
             [routes.slices]\nheaders = [\"x-region\", \"x-plan\", \"accept-language\", \"x-client\", \"x-tier\"]\n",
            db.display()
        ),
    )
    .unwrap();
    if !db.exists() {
        let started = std::time::Instant::now();
        generate(&db, 1_000_000);
        println!(
            "generated {} in {:.1} s",
            db.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let size = std::fs::metadata(&db).unwrap().len();
    let out = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_understudy"))
        .args(["slices", "--format", "json", "-c"])
        .arg(&config)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let field = |name: &str| {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):");
    let (user, sys) = (
        field("User time (seconds):"),
        field("System time (seconds):"),
    );
    let rss_kib: f64 = field("Maximum resident set size (kbytes):")
        .parse()
        .unwrap_or(0.0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v[0];
    println!(
        "{} comparisons ({:.0} MiB file), {} attributes, {} slices tested: wall {wall}, user {user} s, sys {sys} s, max RSS {:.0} MiB; found {}",
        r["comparisons"],
        size as f64 / 1048576.0,
        r["attributes"].as_array().map_or(0, Vec::len),
        r["looked_at"],
        rss_kib / 1024.0,
        r["slices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["label"].to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(r["comparisons"], 1_000_000);
    assert_eq!(
        r["slices"][0]["label"],
        "header:x-region=r3 & json:/channel=c7"
    );
    assert!(rss_kib / 1024.0 <= 500.0, "memory {rss_kib} KiB");
    let cpu: f64 = user.parse::<f64>().unwrap_or(f64::MAX) + sys.parse::<f64>().unwrap_or(0.0);
    assert!(cpu <= 10.0, "CPU {cpu} s");
}

/// Writes `n` comparisons of one route, shaped like the proxy's rows.
fn generate(db: &std::path::Path, n: usize) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    understudy::store::schema::migrate(&mut conn).unwrap();
    let mut rng = StdRng::seed_from_u64(1_000_000);
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare(
                "INSERT INTO exchanges (id, ts, route, segment, served_by, method, path, query,
                    request_headers, request_body, verdict, diff, incumbent_status, incumbent_ms,
                    incumbent_body, candidate_status, candidate_ms, candidate_body)
                 VALUES (?1, ?2, 'score', 'default', 'incumbent', 'POST', ?3, ?4, ?5, ?6, ?7, ?8,
                    200, ?9, ?10, 200, ?11, ?12)",
            )
            .unwrap();
        let now = understudy::store::now_ms();
        for i in 0..n {
            // 10 attributes: 2 to 50 values each.
            let region = rng.gen_range(0..10); // × channel(5) = 2 % planted
            let plan = rng.gen_range(0..5);
            let lang = rng.gen_range(0..20);
            let client = rng.gen_range(0..50);
            let tier = rng.gen_range(0..8);
            let country = rng.gen_range(0..50);
            let currency = rng.gen_range(0..30);
            let channel = rng.gen_range(0..5) + 5;
            let device = rng.gen_range(0..3);
            let source = rng.gen_range(0..40);
            let planted = region == 3 && channel == 7;
            let agree = rng.gen_bool(if planted { 0.6 } else { 0.95 });
            let headers = format!(
                r#"{{"accept":"application/json","accept-language":"l{lang}","authorization":"[redacted]","content-type":"application/json","user-agent":"sales-tool/4.2","x-client":"k{client}","x-plan":"p{plan}","x-region":"r{region}","x-tier":"t{tier}","x-user-id":"u{}"}}"#,
                rng.gen_range(0..100_000)
            );
            let body = format!(
                r#"{{"country":"C{country}","currency":"X{currency}","channel":"c{channel}","device":"d{device}"}}"#
            );
            let score = rng.gen_range(0.0..1.0f64);
            let mut answer = |s: f64| {
                format!(
                    r#"{{"request_id":"{:016x}","score":{s:.3},"label":"warm"}}"#,
                    rng.gen_range(0..u64::MAX)
                )
            };
            let (inc, cand) = (
                answer(score),
                answer(if agree { score } else { 1.0 - score }),
            );
            stmt.execute(rusqlite::params![
                format!("{i:032x}"),
                now - (n - i) as i64,
                format!("/v2/score/{}", rng.gen_range(0..1_000_000)),
                format!("src=s{source}"),
                headers,
                body,
                if agree { "match" } else { "mismatch" },
                if agree { "[]" } else { r#"["/score"]"# },
                rng.gen_range(5.0..50.0f64),
                inc,
                rng.gen_range(5.0..80.0f64),
                cand,
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
}
