//! The request head path on arbitrary bytes: parse a head as hyper would
//! (httparse), then what the proxy does with it before any upstream is
//! called: the dot-segment check, the conformance checks and the one host,
//! route matching (path, method, host), the segment and sticky key, and the
//! upstream's headers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use understudy::config::Config;
use understudy::proxy::{conform, headers};
use understudy::route;
use understudy::segment::{self, JsonBody};

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = "[[routes]]\nname = \"score\"\npath_prefix = \"/v1/score\"\nmethods = [\"POST\"]\n\
            host = \"api.example.com\"\nincumbent = \"http://127.0.0.1:1\"\n\
            segment = { header = \"x-tier\", values = [\"a\"] }\nsticky = { query = \"user\" }\n\
            [[routes]]\nname = \"v1\"\npath_prefix = \"/v1/\"\nincumbent = \"http://127.0.0.1:1\"\n\
            segment = { path = \"^/v1/([^/]+)\" }\n\
            [[routes]]\nname = \"all\"\npath_prefix = \"/\"\nincumbent = \"http://127.0.0.1:1\"\n";
        understudy::config::parse(text).expect("the fuzz config is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Request::new(&mut fields);
    let Ok(httparse::Status::Complete(len)) = head.parse(data) else { return };
    let (Some(method), Some(target)) = (head.method, head.path) else { return };
    let mut req = http::Request::builder().method(method).uri(target);
    for h in head.headers.iter() {
        req = req.header(h.name, h.value);
    }
    let Ok(req) = req.body(()) else { return };
    let (mut parts, ()) = req.into_parts();
    if route::has_dot_segment(parts.uri.path()) {
        return;
    }
    if conform::check(&mut parts, false).is_err() {
        return;
    }
    // The one host is now the only `Host`, and a valid one.
    let mut hosts = parts.headers.get_all(http::header::HOST).iter();
    let host = hosts.next();
    assert!(hosts.next().is_none(), "one Host at most");
    if let Some(h) = host {
        assert!(conform::valid_authority(h.as_bytes()), "{h:?}");
    }
    let _host = route::request_host(&parts);
    let body = &data[len..];
    if let Some(r) = config().routes.iter().find(|r| route::matches(r, &parts)) {
        let path = parts.uri.path();
        assert!(route::prefix_matches(&r.path_prefix, path), "{path} for {}", r.path_prefix);
        let mut json = JsonBody::new(body);
        let _segment = segment::of(r.segment.as_ref(), &parts, &mut json);
        if let Some(sticky) = &r.sticky {
            let _key = segment::extract(sticky, &parts, &mut json);
        }
    }
    let via = headers::via_value(parts.version);
    let hop = headers::Forwarding::new(std::net::IpAddr::from([127, 0, 0, 1]), false);
    headers::prepare_request(&mut parts.headers, &hop, &via);
    for name in ["connection", "transfer-encoding", "upgrade", "te", "keep-alive"] {
        assert!(!parts.headers.contains_key(name), "{name} was forwarded");
    }
    // A client's own mirror marker never reaches an upstream (docs/src/reference/limits.md).
    assert!(!parts.headers.contains_key(headers::MIRROR));
});
