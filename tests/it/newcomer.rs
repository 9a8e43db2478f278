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

/// `understudy report --format html` on `p`'s database: the page.
fn html_report(p: &TestProxy) -> String {
    let html = p.dir.path().join("r.html");
    let (ok, _, err) = cli(&[
        "report",
        "--db",
        p.db.to_str().unwrap(),
        "--format",
        "html",
        "-o",
        html.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    std::fs::read_to_string(&html).unwrap()
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
    let page = html_report(&p);
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

/// Runs the CLI off the runtime's threads (the proxy under test runs on them).
async fn cli_async(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&args)
    })
    .await
    .unwrap()
}

/// Issue 27: approvals and feedback needed curl. `understudy approvals` lists,
/// shows, approves and rejects; `understudy feedback` rates or reverses an
/// exchange; both through the admin API of a real proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_and_feedback_have_cli_commands() {
    use crate::stage::{CANDIDATE, INCUMBENT, ask, routes, wait_for};
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let extra = "rollout = { segments = { gold = 100.0 } }\n\
                 [routes.autonomy]\nstages = { gold = \"approve\" }\n";
    let mut p = proxy(&routes(&incumbent.url(), &candidate.url(), extra)).await;
    let mut exchanges = Vec::new();
    for user in 0..2 {
        let (_, h, _, _) = ask(p.addr, "gold", user).await;
        exchanges.push(h["x-understudy-exchange-id"].to_str().unwrap().to_string());
    }
    wait_for(p.admin, "/api/v1/approvals?status=pending", |v| {
        v["approvals"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    let admin = p.admin.to_string();
    let no_config = p.dir.path().join("absent.toml");
    let base = ["--admin", &admin, "-c", no_config.to_str().unwrap()];
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(base);
        let all: Vec<String> = all.iter().map(|a| a.to_string()).collect();
        async move {
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            cli_async(&all).await
        }
    };

    let (ok, list, err) = run(&["approvals", "list", "--status", "pending"]).await;
    assert!(ok, "{err}");
    let rows: Vec<&str> = list.lines().filter(|l| l.contains(" pending ")).collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(list.lines().next().unwrap().starts_with("ID"), "{list}");
    let first: String = rows[0].split_whitespace().next().unwrap().to_string();
    let second: String = rows[1].split_whitespace().next().unwrap().to_string();

    let (ok, shown, err) = run(&["approvals", "show", &first]).await;
    assert!(ok, "{err}");
    assert!(shown.contains("\"model\": \"v2\""), "{shown}");
    assert!(shown.contains("status     pending"), "{shown}");

    let (ok, out, err) = run(&["approvals", "approve", &first, "--reason", "looks right"]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&format!("approval {first} approved")), "{out}");
    // A rejection needs a reason (clap refuses without one: exit 2 is clap's usage code).
    let (ok, _, err) = run(&["approvals", "reject", &second]).await;
    assert!(!ok && err.contains("--reason"), "{err}");
    let (ok, out, err) = run(&["approvals", "reject", &second, "--reason", "wrong tier"]).await;
    assert!(ok && out.contains("rejected"), "{out}{err}");
    // Decided once only: the API's 409, as a user error.
    let (ok, _, err) = run(&["approvals", "reject", &first, "--reason", "again"]).await;
    assert!(!ok && err.contains("409"), "{err}");
    let (ok, list, _) = run(&["approvals", "list", "--status", "approved"]).await;
    assert!(
        ok && list.contains(&format!("{first} ")) && list.contains("cli"),
        "{list}"
    );

    let (ok, out, err) = run(&[
        "feedback",
        &exchanges[0],
        "--rating",
        "1",
        "--comment",
        "better than before",
    ])
    .await;
    assert!(ok, "{err}");
    assert!(out.contains("recorded"), "{out}");
    let (ok, _, err) = run(&["feedback", &exchanges[1]]).await;
    assert!(
        !ok && err.contains("--rating") && err.contains("--reversed"),
        "{err}"
    );
    let (ok, _, err) = run(&["feedback", "no-such-exchange", "--rating", "1"]).await;
    assert!(!ok && err.contains("404"), "{err}");
    p.stop().await;
    let conn = rusqlite::Connection::open(&p.db).unwrap();
    let (rating, comment): (i64, String) = conn
        .query_row(
            "SELECT rating, comment FROM feedback WHERE exchange_id = ?1",
            [&exchanges[0]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rating, comment.as_str()), (1, "better than before"));
}

/// Runs the CLI against `p`'s admin API (no config file: `--admin` names it).
async fn admin_cli(p: &TestProxy, args: &[&str]) -> (bool, String, String) {
    let admin = p.admin.to_string();
    let absent = p.dir.path().join("absent.toml");
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--admin", &admin, "-c", absent.to_str().unwrap()]);
    cli_async(&all).await
}

/// Issue 27: `audit` did not say a change was forced (the API did); the HTML
/// history showed stage changes as `– → –`; a route without
/// `[routes.autonomy]` showed stage `autonomous` (metric 4) where none is meant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_says_forced_history_shows_stages_and_no_autonomy_is_none() {
    let incumbent = pricing(6000.0, 100.0).await;
    let candidate = pricing(6000.0, 100.0).await;
    let staged = route(
        "staged",
        "/v2",
        &incumbent.url(),
        &candidate.url(),
        "[routes.autonomy]\nstage = \"shadow\"\n",
    );
    let routes = pricing_route(&incumbent.url(), &candidate.url()) + &staged;
    let mut p = proxy(&routes).await;
    let (ok, _, err) = admin_cli(
        &p,
        &[
            "promote",
            "pricing",
            "--segment",
            "enterprise",
            "--to",
            "5",
            "--reason",
            "try it",
            "--force",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let (ok, _, err) = admin_cli(
        &p,
        &[
            "stage",
            "staged",
            "--to",
            "recommend",
            "--reason",
            "suggest first",
            "--force",
        ],
    )
    .await;
    assert!(ok, "{err}");

    let (ok, audit, err) = admin_cli(&p, &["audit"]).await;
    assert!(ok, "{err}");
    let forced = audit
        .lines()
        .find(|l| l.contains("pricing/enterprise"))
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(forced.contains("forced"), "{audit}");
    let stage = (audit.lines())
        .find(|l| l.contains("staged/default") && l.contains("recommend"))
        .unwrap();
    assert!(
        stage.contains("shadow → recommend") && stage.contains("forced"),
        "{audit}"
    );

    let (ok, status, err) = admin_cli(&p, &["status"]).await;
    assert!(ok, "{err}");
    let enterprise = status
        .lines()
        .find(|l| l.trim_start().starts_with("enterprise"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        enterprise.contains(" none ") && !enterprise.contains("autonomous"),
        "{status}"
    );
    let metrics = p.metrics().await;
    assert!(
        metrics.contains("understudy_autonomy_stage{route=\"pricing\",segment=\"enterprise\"} -1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("understudy_autonomy_stage{route=\"staged\",segment=\"default\"} 1"),
        "{metrics}"
    );
    p.stop().await;

    let page = html_report(&p);
    assert!(
        page.contains("shadow → recommend"),
        "no stage change in the history"
    );
    assert!(page.contains("forced"), "no forced change in the history");
}

/// Issue 27: the report showed weight `–` where `status` showed `0.000%`;
/// `status` columns slid apart on a long segment name; an unknown segment
/// (`Enterprise`) was refused without the known ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_agree_columns_align_and_an_unknown_segment_lists_the_known() {
    let incumbent = pricing(6000.0, 100.0).await;
    let candidate = pricing(6000.0, 100.0).await;
    let routes = pricing_route(&incumbent.url(), &candidate.url()).replace(
        "values = [\"enterprise\", \"smb\"]",
        "values = [\"enterprise\", \"smb\", \"public-sector-and-education\"]",
    );
    let mut p = proxy(&routes).await;
    price(&p, "enterprise", 2).await;
    price(&p, "public-sector-and-education", 2).await;

    let (ok, status, err) = admin_cli(&p, &["status"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = admin_cli(
        &p,
        &[
            "promote",
            "pricing",
            "--segment",
            "Enterprise",
            "--to",
            "5",
            "--reason",
            "x",
        ],
    )
    .await;
    assert!(!ok, "an unknown segment is refused");
    assert!(
        err.contains("enterprise, ") && err.contains("did you mean \"enterprise\"?"),
        "{err}"
    );
    let (ok, _, err) = admin_cli(
        &p,
        &[
            "promote",
            "pricing",
            "--segment",
            "Enterprise",
            "--next",
            "--reason",
            "x",
        ],
    )
    .await;
    assert!(!ok && err.contains("did you mean \"enterprise\"?"), "{err}");
    p.stop().await;

    // Columns: each segment row starts its weight column where the header does.
    let lines: Vec<&str> = status.lines().collect();
    let header = lines
        .iter()
        .find(|l| l.contains("segment") && l.contains("weight"))
        .unwrap();
    let at = |l: &str, s: &str| l.find(s).map(|b| l[..b].chars().count());
    let stage_col = at(header, "stage");
    for seg in ["enterprise", "public-sector-and-education"] {
        let row = lines
            .iter()
            .find(|l| l.trim_start().starts_with(seg))
            .unwrap();
        assert_eq!(at(row, "none"), stage_col, "{status}");
        assert!(row.contains(" 0% "), "status weight: {status}");
    }

    let db = p.db.to_str().unwrap().to_string();
    let (ok, report, err) = cli(&["report", "--db", &db]);
    assert!(ok, "{err}");
    let row = report.lines().find(|l| l.contains("enterprise")).unwrap();
    assert!(row.contains("  0%  "), "report weight: {report}");
}

/// Issue 27: logs written to a file carried ANSI colour codes.
#[test]
fn logs_to_a_file_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["demo", "--requests", "10", "--db", db.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(out.status.success());
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.contains("INFO"), "the demo logged nothing: {logs}");
    assert!(!logs.contains('\x1b'), "colour codes in piped logs: {logs}");
}

/// Issue 27: every `--help` repeated the same 8-line `--log-format` block and
/// cited a numbered section of a specification users do not have.
#[test]
fn help_says_the_log_format_once_and_cites_no_spec() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_understudy"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let top = help(&["--help"]);
    assert!(top.contains("One JSON object per line"), "{top}");
    for command in [
        "status",
        "stage",
        "serve",
        "report",
        "approvals",
        "feedback",
    ] {
        let text = help(&[command, "--help"]);
        let log_lines = text
            .lines()
            .filter(|l| l.contains("Log lines on stderr"))
            .count();
        assert_eq!(log_lines, 1, "{command}:\n{text}");
        assert!(
            !text.contains("Human-readable lines") && !text.contains("One JSON object per line"),
            "{command}: the log formats again:\n{text}"
        );
        assert!(!text.contains("SPEC"), "{command}:\n{text}");
    }
    assert!(!top.contains("SPEC"), "{top}");
}
