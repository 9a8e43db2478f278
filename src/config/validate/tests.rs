use super::*;
use crate::config::{Compare, OnBreach, Side, Source, Window};
use http::Method;
use std::time::Duration;

const SHIPPED: &str = include_str!("../../../proxy.toml");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/configs");

/// Each bad fixture: where the first issue is and what it says.
const BAD: &[(&str, usize, usize, &str)] = &[
    ("bad-syntax.toml", 2, 23, "invalid basic string"),
    (
        "bad-unknown-field.toml",
        5,
        32,
        "unknown key `tiemout`; did you mean `timeout`?",
    ),
    (
        "bad-every-kind.toml",
        9,
        1,
        "store.max_body_byte: unknown key `max_body_byte`; did you mean `max_body_bytes`?",
    ),
    (
        "bad-missing-incumbent.toml",
        6,
        1,
        "routes[other].incumbent: missing key `incumbent`",
    ),
    (
        "bad-duplicate-route.toml",
        7,
        8,
        "duplicate route name \"lead-score\" (first defined at 2:8)",
    ),
    (
        "bad-url.toml",
        4,
        13,
        "scheme must be http or https, not \"ftp\"",
    ),
    (
        "bad-weight.toml",
        7,
        39,
        "rollout.segments.enterprise: weight 150 is outside 0..=100",
    ),
    ("bad-pointer.toml", 5, 45, "bad JSON pointer"),
    (
        "bad-regex.toml",
        7,
        9,
        "bad regex \"ssn: (\\\\d+\": unclosed group",
    ),
    ("bad-duration.toml", 5, 11, "bad duration \"2 parsecs\""),
    ("bad-method.toml", 4, 19, "unknown HTTP method \"GTE\""),
    (
        "bad-addr.toml",
        2,
        8,
        "listen.addr: bad socket address \"localhost\"",
    ),
    ("bad-no-routes.toml", 1, 1, "at least one route is needed"),
    (
        "bad-mode-key.toml",
        5,
        40,
        "`threshold` belongs to mode \"text\" or \"llm\", but mode is \"json\"",
    ),
    (
        "bad-judge-without-url.toml",
        5,
        20,
        "mode \"judge\" needs `url`",
    ),
    (
        "bad-segment-not-in-values.toml",
        7,
        26,
        "\"enterprize\" is not one of segment.values",
    ),
    (
        "bad-rule-two-sources.toml",
        9,
        9,
        "rollout.rules[0]: has 2 sources (header, query)",
    ),
    ("bad-steps.toml", 5, 19, "strictly increasing: 5 follows 10"),
    (
        "bad-window.toml",
        5,
        20,
        "window count 0 must be greater than zero",
    ),
    (
        "bad-zero-in-flight.toml",
        5,
        28,
        "mirror.max_in_flight: must be greater than zero",
    ),
    (
        "bad-threshold.toml",
        5,
        40,
        "compare.threshold: 1.5 is outside 0..=1",
    ),
    (
        "bad-header-name.toml",
        5,
        22,
        "segment.header: bad header name \"x customer tier\"",
    ),
    ("bad-many.toml", 3, 8, "bad socket address \"127.0.0.1\""),
];

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

/// `(line, col, text)` of the first problem, whatever kind of error it is.
fn first_problem(text: &str) -> (usize, usize, String) {
    match validate(text) {
        Ok(_) => panic!("config was accepted"),
        Err(Error::Parse { line, col, message }) => (line, col, message),
        Err(Error::Invalid(issues)) => {
            let first = &issues[0];
            (first.line, first.col, first.to_string())
        }
        Err(e @ Error::Read { .. }) => panic!("unexpected {e}"),
    }
}

#[test]
fn bad_configs_report_line_col_and_message() {
    for &(name, line, col, fragment) in BAD {
        let (got_line, got_col, message) = first_problem(&fixture(name));
        assert_eq!((got_line, got_col), (line, col), "{name}: {message}");
        assert!(
            message.contains(fragment),
            "{name}: {message:?} lacks {fragment:?}"
        );
    }
}

#[test]
fn every_bad_fixture_is_in_the_table() {
    for entry in std::fs::read_dir(FIXTURES).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("bad-") {
            assert!(BAD.iter().any(|b| b.0 == name), "{name} is not checked");
        }
    }
}

#[test]
fn every_issue_is_reported_in_file_order() {
    let Err(Error::Invalid(issues)) = validate(&fixture("bad-many.toml")) else {
        panic!("expected issues");
    };
    let got: Vec<(usize, usize, Option<&str>, &str)> = issues
        .iter()
        .map(|i| (i.line, i.col, i.route.as_deref(), i.field.as_str()))
        .collect();
    let route = Some("lead-score");
    assert_eq!(
        got,
        [
            (3, 8, None, "listen.addr"),
            (6, 18, None, "store.queue_capacity"),
            (10, 15, route, "path_prefix"),
            (12, 13, route, "candidate"),
            (13, 40, route, "compare.tolerance"),
            (14, 27, route, "guard.min_agreement"),
            (17, 8, route, "name"),
            (20, 23, route, "rollout.default"),
            (20, 23, route, "rollout"),
        ]
    );
}

#[test]
fn error_prints_one_issue_per_line_with_the_file_name() {
    let err = validate(&fixture("bad-many.toml")).unwrap_err();
    let plain = err.to_string();
    assert_eq!(plain.lines().count(), 9);
    assert!(plain.starts_with("3:8: listen.addr: bad socket address"));
    let located = err.located("proxy.toml").to_string();
    assert_eq!(located.lines().count(), 9);
    assert!(located.lines().all(|l| l.starts_with("proxy.toml:")));
    assert!(located.contains(
        "proxy.toml:20:23: routes[lead-score].rollout.default: weight 101 is outside 0..=100"
    ));
    let parse = validate("[listen\n").unwrap_err();
    assert!(parse.located("x.toml").to_string().starts_with("x.toml:1:"));
}

#[test]
fn line_col_counts_characters_from_one() {
    let text = "a = 1\nb = \"é\" x\n";
    assert_eq!(line_col(text, 0), (1, 1));
    assert_eq!(line_col(text, 4), (1, 5));
    assert_eq!(line_col(text, 6), (2, 1));
    // "é" is two bytes; the 'x' after it is the 9th character of line 2.
    assert_eq!(line_col(text, text.find('x').unwrap()), (2, 9));
    // Inside a multi-byte character and past the end: clamped, no panic.
    assert_eq!(line_col(text, text.find('é').unwrap() + 1), (2, 6));
    assert_eq!(line_col(text, 1000), (3, 1));
}

#[test]
fn shipped_proxy_toml_loads() {
    let config = validate(SHIPPED).unwrap();
    assert_eq!(config.routes.len(), 1);
    let route = &config.routes[0];
    assert_eq!(route.name, "lead-score");
    assert_eq!(route.rollout.segments.get("enterprise"), Some(&5.0));
    assert_eq!(route.mirror.methods, [Method::POST]);
    let Compare::Json(json) = &route.compare else {
        panic!("json mode expected");
    };
    assert_eq!(json.tolerance, 0.05);
    assert_eq!(config.store.redact_json[0].as_str(), "/email");
}

/// The commented-out second route in `proxy.toml` must stay valid too.
#[test]
fn shipped_commented_example_route_loads() {
    let start = SHIPPED.find("# A second route").unwrap();
    let start = start + SHIPPED[start..].find("# [[routes]]").unwrap();
    let (head, example) = SHIPPED.split_at(start);
    let uncommented: String = example
        .lines()
        .map(|l| l.strip_prefix("# ").or(l.strip_prefix('#')).unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = format!("{head}{uncommented}");
    let config = validate(&text).unwrap();
    let route = &config.routes[1];
    assert_eq!(route.name, "summarize");
    assert!(matches!(&route.compare, Compare::Text(t) if t.threshold == 0.75 && t.field.is_some()));
    assert_eq!(route.rollout.rules.len(), 2);
    assert_eq!(route.rollout.rules[0].serve, Side::Candidate);
    assert!(matches!(&route.rollout.rules[1].source, Source::Query(q) if q == "no_ai"));
    assert_eq!(
        route.guard.window,
        Window::Time(Duration::from_secs(15 * 60))
    );
    assert_eq!(route.guard.on_breach, OnBreach::Shadow);
    assert!(route.guard.auto_promote);
    assert_eq!(route.candidate.as_ref().unwrap().base_path, "/openai");
    assert!(route.incumbent.is_https());
}

const MINIMAL: &str = r#"
[[routes]]
name = "score"
path_prefix = "/v1/score"
incumbent = "http://127.0.0.1:9001"
"#;

#[test]
fn omitted_keys_take_their_documented_defaults() {
    let config = validate(MINIMAL).unwrap();
    assert_eq!(config.listen.addr.to_string(), "127.0.0.1:8080");
    assert_eq!(config.listen.header_read_timeout, Duration::from_secs(10));
    assert_eq!(config.listen.drain_timeout, Duration::from_secs(30));
    assert!(config.listen.tls.is_none());
    let l = &config.listen;
    assert_eq!(
        (l.body_read_timeout, l.idle_timeout),
        (Duration::from_secs(30), Duration::from_secs(60))
    );
    assert_eq!(
        (l.max_connections, l.max_header_bytes, l.max_headers),
        (10_000, 65_536, 100)
    );
    assert_eq!(l.max_concurrent_streams, 100);
    assert_eq!(config.admin.addr.to_string(), "127.0.0.1:9090");
    assert_eq!(config.admin.token_env, "UNDERSTUDY_ADMIN_TOKEN");
    let store = &config.store;
    assert_eq!(store.path.to_str(), Some("understudy.db"));
    assert_eq!(
        (store.max_body_bytes, store.queue_capacity, store.batch_size),
        (65536, 65536, 1024)
    );
    assert_eq!(store.retention, Duration::from_secs(14 * 86400));
    assert_eq!(store.flush_interval, Duration::from_millis(100));
    let secret: Vec<&str> = crate::config::file::SECRET_HEADERS.to_vec();
    let redacted: Vec<&str> = store.redact_headers.iter().map(|h| h.as_str()).collect();
    assert_eq!(redacted, secret);
    assert!(redacted.contains(&"api-key") && redacted.contains(&"x-goog-api-key"));
    let query = [
        "api_key",
        "key",
        "token",
        "sig",
        "signature",
        "access_token",
    ];
    assert_eq!(store.redact_query, query);
    let r = &config.routes[0];
    assert!(r.methods.is_none() && r.host.is_none() && r.candidate.is_none());
    assert!(r.segment.is_none() && r.sticky.is_none());
    assert_eq!(r.incumbent.timeout, Duration::from_secs(30));
    assert_eq!(r.incumbent.connect_timeout, Duration::from_secs(2));
    assert_eq!(r.incumbent.base_path, "");
    assert!(!r.incumbent.http2);
    let m = &r.mirror;
    assert!(m.enabled);
    assert_eq!(m.methods, [Method::GET, Method::HEAD, Method::OPTIONS]);
    assert_eq!((m.timeout, m.max_in_flight), (Duration::from_secs(2), 256));
    let strip: Vec<&str> = m.strip_headers.iter().map(|h| h.as_str()).collect();
    assert_eq!(strip, secret);
    assert_eq!(m.strip_query, query);
    assert!(m.set_headers.is_empty() && m.rewrite_json.is_empty());
    let Compare::Json(json) = &r.compare else {
        panic!("json is the default mode");
    };
    assert!(json.ignore.is_empty() && json.only.is_empty() && !json.unordered_arrays);
    assert_eq!((json.tolerance, json.abs_tolerance), (0.0, 0.0));
    assert_eq!((r.rollout.default, r.rollout.fallback), (0.0, true));
    assert!(r.rollout.segments.is_empty() && r.rollout.rules.is_empty());
    let g = &r.guard;
    assert_eq!(g.window, Window::Count(1000));
    assert_eq!(g.min_samples, 200);
    assert_eq!((g.min_agreement, g.max_candidate_error_rate), (0.9, 0.02));
    assert_eq!(g.max_latency_ratio, None);
    assert_eq!(g.on_breach, OnBreach::StepBack);
    assert!(!g.auto_promote);
    assert_eq!(g.steps, [1.0, 5.0, 10.0, 25.0, 50.0, 100.0]);
    assert_eq!(g.hold, Duration::from_secs(600));
    assert!(r.safety.deny.is_empty());
}

const FULL: &str = r#"
[listen]
addr = "0.0.0.0:8443"
tls = { cert = "c.pem", key = "k.pem" }
header_read_timeout = "250ms"

[store]
redact_headers = ["X-Secret"]
redact_json = ["/items/*/email"]

[[routes]]
name = "score"
path_prefix = "/v1/score"
methods = ["post", "GET"]
host = "API.example.com"
incumbent = "https://incumbent.example.com:8443/base/"
candidate = "http://127.0.0.1:9002"
timeout = "5s"
connect_timeout = "500ms"
http2 = true
segment = { path = "^/v1/score/([a-z]+)", values = ["enterprise"] }
sticky = { query = "user" }
mirror = { enabled = false, methods = ["POST"], strip_headers = [], set_headers = { "X-Api-Key" = "k2" }, rewrite_json = { "/model" = "v2", "/opts" = { n = 2, ok = true } } }
compare = { mode = "judge", url = "http://judge.local/v1/judge", judge_timeout = "3s", judge_max_in_flight = 4 }
guard = { window = "90s", max_latency_ratio = 1.5, on_breach = "shadow" }
safety = { deny = ["(?i)password"] }

[routes.rollout]
default = 1.5
segments = { enterprise = 100 }
salt = "s1"
fallback = false

[[routes.rollout.rules]]
json = "/cohort"
values = ["internal", "beta"]
serve = "incumbent"
"#;

#[test]
fn full_config_round_trips_into_typed_values() {
    let config = validate(FULL).unwrap();
    assert_eq!(config.listen.addr.to_string(), "0.0.0.0:8443");
    assert_eq!(
        config.listen.tls.as_ref().unwrap().key.to_str(),
        Some("k.pem")
    );
    assert_eq!(
        config.listen.header_read_timeout,
        Duration::from_millis(250)
    );
    assert_eq!(config.store.redact_headers[0].as_str(), "x-secret");
    assert!(config.store.redact_json[0].has_wildcard());
    let r = &config.routes[0];
    assert_eq!(r.methods.as_deref(), Some(&[Method::POST, Method::GET][..]));
    assert_eq!(r.host.as_deref(), Some("api.example.com"));
    assert_eq!(r.incumbent.uri.scheme_str(), Some("https"));
    assert_eq!(
        r.incumbent.uri.authority().unwrap().as_str(),
        "incumbent.example.com:8443"
    );
    assert_eq!(r.incumbent.base_path, "/base");
    assert_eq!(r.incumbent.timeout, Duration::from_secs(5));
    let candidate = r.candidate.as_ref().unwrap();
    assert_eq!(candidate.connect_timeout, Duration::from_millis(500));
    assert!(candidate.http2 && !candidate.is_https());
    let segment = r.segment.as_ref().unwrap();
    let Source::Path(re) = &segment.source else {
        panic!("path source expected");
    };
    assert_eq!(
        &re.captures("/v1/score/enterprise").unwrap()[1],
        "enterprise"
    );
    assert!(matches!(&r.sticky, Some(Source::Query(q)) if q == "user"));
    let m = &r.mirror;
    assert!(!m.enabled && m.strip_headers.is_empty());
    assert_eq!(m.set_headers[0].0.as_str(), "x-api-key");
    assert_eq!(m.set_headers[0].1, "k2");
    let rewrites: Vec<(&str, String)> = (m.rewrite_json.iter())
        .map(|(p, v)| (p.as_str(), v.to_string()))
        .collect();
    assert_eq!(
        rewrites,
        [
            ("/model", "\"v2\"".to_string()),
            ("/opts", r#"{"n":2,"ok":true}"#.to_string())
        ]
    );
    let Compare::Judge(judge) = &r.compare else {
        panic!("judge mode expected");
    };
    assert_eq!(judge.url.to_string(), "http://judge.local/v1/judge");
    assert_eq!(
        (judge.timeout, judge.max_in_flight),
        (Duration::from_secs(3), 4)
    );
    assert_eq!(
        (r.rollout.default, r.rollout.segments["enterprise"]),
        (1.5, 100.0)
    );
    assert_eq!((r.rollout.salt.as_str(), r.rollout.fallback), ("s1", false));
    let rule = &r.rollout.rules[0];
    assert!(matches!(&rule.source, Source::Json(p) if p.as_str() == "/cohort"));
    assert_eq!((rule.values.len(), rule.serve), (2, Side::Incumbent));
    assert_eq!(r.guard.window, Window::Time(Duration::from_secs(90)));
    assert_eq!(r.guard.max_latency_ratio, Some(1.5));
    assert!(r.safety.deny[0].is_match("PassWord"));
}

#[test]
fn weights_need_a_candidate_and_a_segment_source() {
    let text = format!("{MINIMAL}rollout = {{ default = 5, segments = {{ gold = 1 }} }}\n");
    let Err(Error::Invalid(issues)) = validate(&text) else {
        panic!("expected issues");
    };
    let messages: Vec<String> = issues.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert!(messages[0].ends_with("routes[score].rollout: weight 5 needs a `candidate` to serve"));
    assert!(messages[1].contains("rollout.segments.gold: a per-segment weight needs a `segment`"));
    assert!(messages[2].contains("weight 1 needs a `candidate`"));
}

#[test]
fn sources_need_exactly_one_key_and_rules_need_values() {
    let text = format!(
        "{MINIMAL}candidate = \"http://127.0.0.1:9002\"\nsticky = {{}}\n\
         rollout = {{ rules = [{{ values = [], serve = \"candidate\" }}] }}\n"
    );
    let Err(Error::Invalid(issues)) = validate(&text) else {
        panic!("expected issues");
    };
    let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
    assert_eq!(
        fields,
        ["sticky", "rollout.rules[0]", "rollout.rules[0].values"]
    );
    assert!(issues[0].message.contains("needs one source"));
}

#[test]
fn route_names_and_prefixes_are_checked() {
    let text = MINIMAL.replace("\"score\"", "\"lead score\"");
    let (line, col, message) = first_problem(&text);
    assert_eq!((line, col), (3, 8));
    assert!(message.starts_with("3:8: routes[#1].name: bad route name \"lead score\""));
}

/// Issue 27: unknown keys and wrong types no longer stop the check: each is
/// reported where it stands and the rest of the file is still checked.
#[test]
fn unknown_keys_and_wrong_types_are_all_reported_issue_27() {
    let head = "[listen]\naddr = \"127.0.0.1:0\"\n[store]\npath = \"x.db\"\n";
    let text = format!(
        "{head}[[routes]]\nname = \"a\"\npath_prefix = \"/\"\nincumbent = \"http://127.0.0.1:1\"\n\
         compare = {{ mode = \"jsn\", tolerence = 0.1, ignore = [\"/x\"] }}\n\
         guard.min_sampels = 5\n\
         mirror = {{ methods = [\"POST\", 3], timeout = \"1s\" }}\n\
         [routes.gaurd]\nmin_samples = 1\n\
         [routes.rollout]\ndefault = 500.0\n"
    );
    let Err(Error::Invalid(issues)) = validate(&text) else {
        panic!("expected issues");
    };
    let got: Vec<String> = issues.iter().map(Issue::to_string).collect();
    let expected = [
        "9:20: routes[a].compare.mode: unknown value `jsn`; did you mean `json`?",
        "9:27: routes[a].compare.tolerence: unknown key `tolerence`; did you mean `tolerance`?",
        "10:7: routes[a].guard.min_sampels: unknown key `min_sampels`; did you mean `min_samples`?",
        "11:31: routes[a].mirror.methods: invalid type: integer `3`, expected a string",
        "12:9: routes[a].gaurd: unknown key `gaurd`; did you mean `guard`?",
        "15:11: routes[a].rollout.default: weight 500 is outside 0..=100",
    ];
    for want in expected {
        assert!(got.iter().any(|g| g == want), "{want:?} not in {got:#?}");
    }
    // A key blanked out for being wrong is not also reported missing.
    let text = format!(
        "{head}[[routes]]\nname = \"a\"\npath_prefix = 7\nincumbent = \"http://127.0.0.1:1\"\n"
    );
    let Err(Error::Invalid(issues)) = validate(&text) else {
        panic!("expected issues");
    };
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].field, "path_prefix");
    // A syntax error still stops at once: nothing after it can be read.
    assert!(matches!(
        validate("[listen]\naddr = \"x\ntolerence = 1\n"),
        Err(Error::Parse { line: 2, .. })
    ));
}
