//! Issue 27: the admin API's OpenAPI document is true. It lists exactly the
//! endpoints the router serves (the router's own table, and a real server
//! asked for each), real answers of a running admin server (real SQLite,
//! loopback) validate against its schemas with a documented status and
//! content type, and the docs' copy is the served text.

use crate::rollout::start_in;
use crate::stage::{CANDIDATE, INCUMBENT, ask, routes};
use crate::support::*;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use understudy::admin::endpoint::{self, Found, TABLE};
use understudy::admin::openapi::DOCUMENT;
use understudy::app::Running;

const TOKEN: &str = "openapi-t0ken";
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("the document is JSON")
}

/// Every (METHOD, path template) the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (key, _) in item.as_object().expect("a path item") {
            if METHODS.contains(&key.as_str()) {
                out.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn the_document_lists_exactly_the_routers_endpoints() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let served: BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|(m, path, _)| (m.to_string(), path.to_string()))
        .collect();
    let described = documented(&doc);
    let undocumented: Vec<_> = served.difference(&described).collect();
    let unserved: Vec<_> = described.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served, not in src/admin/openapi.json: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in src/admin/openapi.json, not served: {unserved:?}"
    );
    // Each template parameter is declared, as a required path parameter.
    for (method, path) in &described {
        let op = &doc["paths"][path][method.to_lowercase()];
        let declared: BTreeSet<String> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path" && p["required"] == true)
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        let in_template: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_string)
            .collect();
        assert_eq!(declared, in_template, "{method} {path}");
        assert!(op["operationId"].is_string(), "{method} {path}");
    }
}

#[test]
fn every_schema_in_the_document_is_a_valid_json_schema() {
    let doc = document();
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        assert!(
            jsonschema::draft202012::meta::is_valid(schema),
            "components.schemas.{name}"
        );
        validator(&doc, schema);
    }
}

#[test]
fn the_docs_copy_is_the_served_document() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src/reference/openapi.json");
    let copy = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        copy == DOCUMENT,
        "{} differs from src/admin/openapi.json: cp src/admin/openapi.json {}",
        path.display(),
        path.display()
    );
}

/// A validator for `schema`, whose `$ref`s point into the document's components.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let root = json!({ "allOf": [schema], "components": doc["components"] });
    jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("{e}: {schema}"))
}

/// `$ref` to `#/components/...` resolved, once.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .expect("a $ref that resolves"),
        None => v,
    }
}

/// What the admin server answered, and where.
struct Answer {
    method: String,
    path: String,
    request: String,
    status: u16,
    content_type: String,
    body: Bytes,
}

/// Checks `answer` against the document: its status is documented for its
/// operation, its content type too, and a JSON body validates against the
/// schema. Returns the operation's (METHOD, template).
fn conforms(doc: &Value, answer: &Answer) -> (String, String) {
    let method: http::Method = answer.method.parse().unwrap();
    let path = answer.path.split('?').next().unwrap();
    let Found::Endpoint(found, _) = endpoint::find(&method, path) else {
        panic!("{} {path} is not an endpoint", answer.method);
    };
    let (_, template, _) = TABLE
        .iter()
        .find(|(m, _, e)| *m == method && *e == found)
        .unwrap();
    let op = &doc["paths"][template][answer.method.to_lowercase()];
    let what = format!(
        "{} {} → {}: {}",
        answer.method,
        answer.path,
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    let documented = &op["responses"][answer.status.to_string()];
    assert!(!documented.is_null(), "status not documented: {what}");
    let documented = resolve(doc, documented);
    let content = documented["content"].as_object().expect("content");
    let media = answer.content_type.split(';').next().unwrap().trim();
    let (_, media_type) = content
        .iter()
        .find(|(k, _)| k.split(';').next().unwrap().trim() == media)
        .unwrap_or_else(|| panic!("content type {media} not documented: {what}"));
    if media == "application/json" {
        let value: Value = serde_json::from_slice(&answer.body).expect("JSON");
        let v = validator(doc, &media_type["schema"]);
        let errors: Vec<String> = v
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{what}\nbreaks its schema: {errors:#?}");
    }
    // What the server accepted is what the document describes.
    let request = &op["requestBody"]["content"]["application/json"]["schema"];
    if answer.status < 300 && !request.is_null() && !answer.request.is_empty() {
        let value: Value = serde_json::from_str(&answer.request).expect("a JSON request");
        let errors: Vec<String> = validator(doc, request)
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{what}\naccepted a request outside its schema: {errors:#?}"
        );
    }
    (answer.method.clone(), template.to_string())
}

async fn call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{admin}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let request = body.to_string();
    let (status, h, body) = send(
        req.body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .unwrap(),
    )
    .await;
    Answer {
        method: method.into(),
        path: path.into(),
        request,
        status: status.as_u16(),
        content_type: h
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .into(),
        body,
    }
}

const BEARER: &str = "Bearer openapi-t0ken";

/// An authorised JSON call.
async fn json_call(admin: SocketAddr, method: &str, path: &str, body: Value) -> Answer {
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    call(
        admin,
        method,
        path,
        &[
            ("authorization", BEARER),
            ("content-type", "application/json"),
        ],
        &text,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_of_every_endpoint_validate_against_the_document() {
    assert_eq!(format!("Bearer {TOKEN}"), BEARER);
    let doc = document();
    let incumbent = upstream().json(INCUMBENT).spawn().await;
    let candidate = upstream().json(CANDIDATE).spawn().await;
    let receiver = upstream().status(204).spawn().await;
    let extra = format!(
        "rollout = {{ segments = {{ gold = 100.0 }} }}\n\
         guard = {{ min_samples = 5, min_agreement = 0.5 }}\n\
         [routes.autonomy]\nstages = {{ gold = \"approve\" }}\ndeliver_url = \"{}/deliver\"\n",
        receiver.url()
    );
    let dir = tempfile::tempdir().unwrap();
    let running = start_in(
        dir.path(),
        &routes(&incumbent.url(), &candidate.url(), &extra),
        Some(TOKEN),
    )
    .await;
    let (addr, admin) = (running.addr, running.admin_addr);
    let mut exchange = String::new();
    for i in 0..3 {
        ask(addr, "gold", i).await;
    }
    for i in 0..20 {
        let (_, h, _, _) = ask(addr, "silver", 100 + i).await;
        exchange = h["x-understudy-exchange-id"].to_str().unwrap().to_string();
    }
    // Wait until the guard has figures and the approvals are listed.
    let mut id = 0;
    assert!(
        {
            let deadline = std::time::Instant::now() + PATIENCE;
            loop {
                let routes = json_call(admin, "GET", "/api/v1/routes", Value::Null).await;
                let approvals = json_call(
                    admin,
                    "GET",
                    "/api/v1/approvals?status=pending",
                    Value::Null,
                )
                .await;
                let r: Value = serde_json::from_slice(&routes.body).unwrap();
                let a: Value = serde_json::from_slice(&approvals.body).unwrap();
                let guarded = r.to_string().contains("\"figures\"");
                if let Some(first) = a["approvals"][0]["id"].as_i64() {
                    id = first;
                }
                if guarded && id > 0 || std::time::Instant::now() > deadline {
                    break guarded && id > 0;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        },
        "guard figures and approvals within patience"
    );
    let approval = format!("/api/v1/approvals/{id}");

    let mut answers = Vec::new();
    for path in [
        "/metrics",
        "/healthz",
        "/readyz",
        "/api/v1/openapi.json",
        "/api/v1/routes",
        "/api/v1/audit",
        "/api/v1/audit?route=r&limit=2",
        "/api/v1/audit?limit=many",
        "/api/v1/approvals",
        "/api/v1/approvals?status=pending&limit=1",
        "/api/v1/approvals?cursor=-1",
        &approval,
        "/api/v1/approvals/999999",
        "/api/v1/approvals/not-a-number",
        "/api/v1/routes/r/slices",
        "/api/v1/routes/r/slices?since=1h",
        "/api/v1/routes/r/slices?since=soon",
        "/api/v1/routes/nope/slices",
    ] {
        answers.push(json_call(admin, "GET", path, Value::Null).await);
    }
    // Reads of people's data without the token.
    answers.push(call(admin, "GET", "/api/v1/approvals", &[], "").await);
    let weights = "/api/v1/routes/r/weights";
    for (path, body) in [
        (
            weights,
            json!({"segment": "silver", "weight": 5.0, "reason": "try"}),
        ),
        (
            weights,
            json!({"segment": "silver", "weight": 5.0, "reason": "try", "force": true}),
        ),
        (
            weights,
            json!({"segment": "silver", "weight": 0.0, "reason": "back"}),
        ),
        (
            weights,
            json!({"segment": "silver", "weight": 0.0, "reason": "again"}),
        ),
        (weights, json!({"mirror": "off", "reason": "pause"})),
        (
            weights,
            json!({"mirror": "on", "reason": "resume", "weight": null, "segment": null}),
        ),
        (
            weights,
            json!({"segment": "silver", "weight": 500.0, "reason": "x"}),
        ),
        (
            weights,
            json!({"segment": "nope", "weight": 1.0, "reason": "x"}),
        ),
        (weights, json!({"weight": 1.0})),
        (weights, json!({"bogus": 1})),
        (
            "/api/v1/routes/nope/weights",
            json!({"weight": 1.0, "reason": "x"}),
        ),
        (
            "/api/v1/routes/r/stage",
            json!({"segment": "silver", "stage": "shadow", "reason": "down"}),
        ),
        (
            "/api/v1/routes/r/stage",
            json!({"segment": "silver", "stage": "shadow", "reason": "again"}),
        ),
        (
            "/api/v1/routes/r/stage",
            json!({"segment": null, "stage": "shadow", "reason": "all the rest"}),
        ),
        (
            "/api/v1/routes/r/stage",
            json!({"segment": "silver", "stage": "sideways", "reason": "x"}),
        ),
        (
            "/api/v1/feedback",
            json!({"exchange_id": exchange, "rating": 1, "comment": "fine"}),
        ),
        (
            "/api/v1/feedback",
            json!({"exchange_id": "no-such-exchange", "rating": 1}),
        ),
        ("/api/v1/feedback", json!({"rating": 1})),
        (
            "/api/v1/feedback",
            json!({"exchange_id": exchange, "rating": null, "reversed": true, "rater": null}),
        ),
        // A whole number written as a float (Python's json.dumps(1.0)) is
        // an integer to JSON Schema: found by Schemathesis.
        (
            "/api/v1/feedback",
            json!({"exchange_id": exchange, "rating": 1.0, "rater": "py"}),
        ),
        (
            &approval,
            json!({"decision": "approve", "reason": "looks right"}),
        ),
        (&approval, json!({"decision": "approve", "reason": "twice"})),
        (
            "/api/v1/approvals/999999",
            json!({"decision": "reject", "reason": "x"}),
        ),
        (&approval, json!({"decision": "maybe"})),
        ("/api/v1/reload", json!({})),
    ] {
        answers.push(json_call(admin, "POST", path, body).await);
    }
    // Refusals: no token, a wrong content type, a body over the cap.
    answers.push(
        call(
            admin,
            "POST",
            "/api/v1/reload",
            &[("content-type", "application/json")],
            "{}",
        )
        .await,
    );
    answers.push(
        call(
            admin,
            "POST",
            "/api/v1/reload",
            &[("authorization", BEARER), ("content-type", "text/plain")],
            "{}",
        )
        .await,
    );
    let big = format!("{{\"reason\": \"{}\"}}", "x".repeat(70 * 1024));
    answers.push(
        call(
            admin,
            "POST",
            weights,
            &[
                ("authorization", BEARER),
                ("content-type", "application/json"),
            ],
            &big,
        )
        .await,
    );
    answers.push(call(admin, "GET", "/healthz", &[], &big).await);

    let float_rating = answers
        .iter()
        .find(|a| a.request.contains("\"py\""))
        .unwrap();
    assert_eq!(
        float_rating.status,
        201,
        "{}",
        String::from_utf8_lossy(&float_rating.body)
    );
    let mut succeeded = BTreeSet::new();
    let mut statuses = BTreeSet::new();
    for answer in &answers {
        let op = conforms(&doc, answer);
        statuses.insert(answer.status);
        if answer.status < 300 {
            succeeded.insert(op);
        }
    }
    // Every operation answered with success at least once, and the refusals too.
    let missing: Vec<_> = documented(&doc).difference(&succeeded).cloned().collect();
    assert!(missing.is_empty(), "no 2xx answer seen for {missing:?}");
    for status in [400, 401, 404, 409, 413, 415] {
        assert!(statuses.contains(&status), "no {status} seen: {statuses:?}");
    }
    // The served document is the checked-in text.
    let served = call(admin, "GET", "/api/v1/openapi.json", &[], "").await;
    assert_eq!(served.status, 200);
    assert_eq!(&served.body[..], DOCUMENT.as_bytes());
    running.stop().await;
}

/// A proxy with one route `a` in front of a fresh incumbent and the admin
/// token; the directory and the incumbent live as long as the caller keeps them.
async fn with_route_a() -> (Running, tempfile::TempDir, Upstream) {
    let incumbent = upstream().spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = format!(
        "[[routes]]\nname = \"a\"\npath_prefix = \"/\"\nincumbent = \"{}\"\n",
        incumbent.url()
    );
    let running = start_in(dir.path(), &routes, Some(TOKEN)).await;
    (running, dir, incumbent)
}

#[tokio::test]
async fn every_documented_path_is_served_and_a_wrong_method_gets_405_with_allow() {
    let (running, _dir, _incumbent) = with_route_a().await;
    let admin = running.admin_addr;
    let doc = document();
    for (method, template) in documented(&doc) {
        let path = template.replace("{route}", "a").replace("{id}", "1");
        let answer = json_call(admin, &method, &path, json!({})).await;
        let text = String::from_utf8_lossy(&answer.body);
        assert!(
            answer.status != 405 && !text.contains("no admin endpoint"),
            "{method} {path} → {} {text}",
            answer.status
        );
        conforms(&doc, &answer);
    }
    let answer = json_call(admin, "DELETE", "/api/v1/approvals/1", Value::Null).await;
    assert_eq!(answer.status, 405);
    let (status, headers, _) = send(
        Request::put(format!("http://{admin}/api/v1/routes"))
            .body(Full::default())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET");
    let answer = json_call(admin, "GET", "/api/v1/nothing", Value::Null).await;
    assert_eq!(answer.status, 404);
    let error: Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(error["error"].as_str().unwrap().contains("/api/v1/nothing"));
    running.stop().await;
}

/// Found by Schemathesis: filters and counts a client gets wrong are
/// refused, or clamped, rather than silently answered with nothing or refused
/// for being large.
#[tokio::test]
async fn a_misspelt_approval_status_is_refused_and_a_huge_count_is_clamped() {
    let (running, _dir, _incumbent) = with_route_a().await;
    let admin = running.admin_addr;
    let doc = document();
    let answer = json_call(
        admin,
        "GET",
        "/api/v1/approvals?status=pendnig",
        Value::Null,
    )
    .await;
    conforms(&doc, &answer);
    let text = String::from_utf8_lossy(&answer.body);
    assert_eq!(answer.status, 400, "{text}");
    assert!(
        text.contains("pending") && text.contains("expired"),
        "{text}"
    );
    let huge = "131868150417018006368812201368616960";
    for path in [
        format!("/api/v1/audit?limit={huge}"),
        format!("/api/v1/approvals?limit={huge}"),
        format!("/api/v1/approvals?cursor={huge}"),
    ] {
        let answer = json_call(admin, "GET", &path, Value::Null).await;
        conforms(&doc, &answer);
        assert_eq!(
            answer.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    let answer = json_call(
        admin,
        "POST",
        "/api/v1/feedback",
        json!({"exchange_id": "x", "rating": 1.5}),
    )
    .await;
    assert_eq!(answer.status, 400, "a rating is a whole number");
    assert!(String::from_utf8_lossy(&answer.body).contains("whole number"));
    for path in ["/api/v1/audit?limit=-1", "/api/v1/approvals?cursor=1e3"] {
        let answer = json_call(admin, "GET", path, Value::Null).await;
        assert_eq!(answer.status, 400, "{path}");
    }
    running.stop().await;
}
