//! Issue 27, "what a new user stumbled on", end to end on a real proxy in
//! front of a small pricing API: each test is one stumble, fixed.

use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
use std::time::Duration;

/// A pricing upstream: `total` and `discount` for the requested quantity, and
/// a fresh `request_id` every time.
async fn pricing(total: f64, discount: f64) -> understudy::loopback::Server {
    crate::report::json_upstream(
        move |req: &Value| {
            json!({
                "total": total * req["qty"].as_f64().unwrap_or(1.0),
                "discount": discount,
                "request_id": format!("r-{}", rand::random::<u32>()),
            })
        },
        Duration::ZERO,
    )
    .await
}

/// The pricing route: JSON compared, `request_id` ignored, 5 % tolerated.
fn pricing_route(incumbent: &str, candidate: &str) -> String {
    route(
        "pricing",
        "/v1/price",
        incumbent,
        candidate,
        "mirror = { methods = [\"POST\"] }\n\
         segment = { header = \"x-plan\", values = [\"enterprise\", \"smb\"] }\n\
         compare = { mode = \"json\", ignore = [\"/request_id\"], tolerance = 0.05 }\n",
    )
}

/// Sends `n` priced requests for `plan`; the exchange ids.
async fn price(p: &TestProxy, plan: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let req = Request::post(p.url("/v1/price"))
            .header("x-plan", plan)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{\"qty\":1}")))
            .unwrap();
        let (_, headers, _) = send(req).await;
        ids.push(
            headers["x-understudy-exchange-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    ids
}

pub(crate) fn cli(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("UNDERSTUDY_ADMIN_TOKEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Issue 27: the report listed `/discount (919)` with no exchange to `show`,
/// and `show` did not say which fields were tolerated or ignored (a 5 %
/// tolerance hid a 299-unit gap on a money field).
#[tokio::test]
async fn report_names_an_example_and_show_marks_tolerated_and_ignored_fields() {
    let incumbent = pricing(6000.0, 100.0).await;
    let candidate = pricing(6299.0, 50.0).await;
    let routes = pricing_route(&incumbent.url(), &candidate.url());
    let mut p = proxy(&routes).await;
    let ids = price(&p, "enterprise", 3).await;
    p.stop().await;
    let db = p.db.to_str().unwrap().to_string();
    let config = p.dir.path().join("proxy.toml");
    std::fs::write(&config, config_text(p.dir.path(), "[store]\n", &routes)).unwrap();
    let config = config.to_str().unwrap().to_string();

    let (ok, text, err) = cli(&["report", "--db", &db]);
    assert!(ok, "{err}");
    let line = text
        .lines()
        .find(|l| l.contains("top differences:"))
        .unwrap_or_else(|| panic!("no top differences in:\n{text}"));
    let example = ids.iter().find(|id| line.contains(id.as_str()));
    assert!(
        line.contains("/discount (3, e.g. ") && example.is_some(),
        "{line}"
    );
    let example = example.unwrap().clone();
    let html = p.dir.path().join("r.html");
    let (ok, _, err) = cli(&[
        "report",
        "--db",
        &db,
        "--format",
        "html",
        "-o",
        html.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains(&format!("understudy show {example}")),
        "no example id in the HTML report"
    );

    let (ok, shown, err) = cli(&[
        "show", &example, "--db", &db, "-c", &config, "--width", "40",
    ]);
    assert!(ok, "{err}");
    let at = |key: &str| -> &str {
        shown
            .lines()
            .find(|l| l.contains(&format!("\"{key}\"")))
            .unwrap_or_else(|| panic!("no {key} line in:\n{shown}"))
    };
    assert!(at("total").contains("tolerated (±5%)"), "{shown}");
    assert!(at("request_id").contains("ignored"), "{shown}");
    assert!(at("discount").starts_with('>'), "{shown}");
    assert!(!at("discount").contains("tolerated"), "{shown}");
    assert!(shown.contains("tolerated (±5%): /total"), "{shown}");
    assert!(shown.contains("ignored: /request_id"), "{shown}");
}
