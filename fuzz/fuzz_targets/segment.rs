//! Segment and sticky-key extraction from a hostile request: a header, a
//! query string, a JSON body and a path, read by every kind of source.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use understudy::config::Config;
use understudy::segment::{self, JsonBody};

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let route = |name: &str, source: &str| {
            format!(
                "[[routes]]\nname = \"{name}\"\npath_prefix = \"/\"\nincumbent = \"http://127.0.0.1:1\"\n\
                 segment = {{ {source}, values = [\"a\", \"b\"] }}\nsticky = {{ {source} }}\n"
            )
        };
        let text = [
            route("h", "header = \"x-tier\""),
            route("q", "query = \"tier\""),
            route("j", "json = \"/account/*/tier\""),
            route("p", "path = \"^/v1/([^/]+)/(x|y)?\""),
            route("w", "path = \"^/(t.*)$\""),
        ]
        .concat();
        understudy::config::parse(&text).expect("the fuzz config is valid")
    })
}

/// Splits `data` at the first four 0xff bytes: header value, query, path, body.
fn parts(data: &[u8]) -> [&[u8]; 4] {
    let mut it = data.splitn(4, |b| *b == 0xff);
    [(); 4].map(|()| it.next().unwrap_or(&[]))
}

fuzz_target!(|data: &[u8]| {
    let [header, query, path, body] = parts(data);
    let path = String::from_utf8_lossy(path);
    let query = String::from_utf8_lossy(query);
    let mut req = http::Request::builder().uri(format!("/{path}?{query}"));
    if let Ok(value) = http::HeaderValue::from_bytes(header) {
        req = req.header("x-tier", value);
    }
    let Ok(req) = req.body(()) else { return };
    let (parts, ()) = req.into_parts();
    for route in &config().routes {
        let mut json = JsonBody::new(body);
        let raw = segment::of(route.segment.as_ref(), &parts, &mut json);
        let _label = segment::label(route.segment.as_ref(), &raw);
        if let Some(sticky) = &route.sticky {
            let _key = segment::extract(sticky, &parts, &mut json);
        }
    }
    if let Some(q) = parts.uri.query() {
        let _value = segment::query_param(q, "tier");
    }
});
