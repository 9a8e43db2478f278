//! Checks one `[[routes]]` entry: matching, upstreams, segment and sticky
//! sources, mirror and safety. Comparison, rollout and guard live in [`super::policy`].

use super::Checker;
use super::policy;
use super::value::UpstreamUrl;
use crate::config::file::{MirrorFile, RouteFile, SafetyFile, SegmentFile};
use crate::config::{Mirror, Route, Safety, Segment, Upstream};
use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

pub(super) fn routes(c: &mut Checker<'_>, files: &[RouteFile]) -> Vec<Route> {
    if files.is_empty() {
        c.issue(
            0..0,
            "routes",
            "no [[routes]]: at least one route is needed",
        );
    }
    let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
    let mut routes = Vec::with_capacity(files.len());
    for (index, f) in files.iter().enumerate() {
        let name = f.name.get_ref().as_str();
        c.route = Some(label(name, index));
        if let Some(first) = seen.get(name) {
            let (line, col) = super::line_col(c.text, first.start);
            let msg = format!("duplicate route name {name:?} (first defined at {line}:{col})");
            c.issue(f.name.span(), "name", msg);
        } else {
            seen.insert(name, f.name.span());
        }
        routes.push(route(c, f));
        c.route = None;
    }
    routes
}

/// How issues name a route: its name, or `#n` (1-based) when the name is unusable.
pub(super) fn label(name: &str, index: usize) -> String {
    if is_route_name(name) {
        name.to_string()
    } else {
        format!("#{}", index + 1)
    }
}

/// Route names appear in metric labels and admin URLs, so they are kept plain.
fn is_route_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
}

fn route(c: &mut Checker<'_>, f: &RouteFile) -> Route {
    if !is_route_name(f.name.get_ref()) {
        let msg = format!(
            "bad route name {:?}: use letters, digits, '.', '_' and '-'",
            f.name.get_ref()
        );
        c.issue(f.name.span(), "name", msg);
    }
    if !f.path_prefix.get_ref().starts_with('/') {
        let msg = format!("{:?} must start with \"/\"", f.path_prefix.get_ref());
        c.issue(f.path_prefix.span(), "path_prefix", msg);
    }
    let methods = f.methods.as_ref().map(|list| {
        if list.get_ref().is_empty() {
            let msg = "an empty list matches nothing; leave the key out to match every method";
            c.issue(list.span(), "methods", msg);
        }
        c.methods("methods", list.get_ref())
    });
    let host = f.host.as_ref().map(|h| {
        if h.get_ref().is_empty() {
            c.issue(
                h.span(),
                "host",
                "host is empty; leave the key out to match any host",
            );
        }
        h.get_ref().to_ascii_lowercase()
    });
    let timeouts = (
        c.timeout("timeout", &f.timeout),
        c.timeout("connect_timeout", &f.connect_timeout),
    );
    let tls_ca = f.tls_ca.as_ref().and_then(|p| {
        std::fs::read(p.get_ref())
            .map_err(|e| {
                let msg = format!("cannot read {}: {e}", p.get_ref().display());
                c.issue(p.span(), "tls_ca", msg);
            })
            .ok()
    });
    let opts = UpstreamOpts {
        timeouts,
        http2: f.http2,
        tls_ca,
    };
    let incumbent = upstream(c, "incumbent", &f.incumbent, &opts);
    let candidate = (f.candidate.as_ref()).map(|u| upstream(c, "candidate", u, &opts));
    let segment = f.segment.as_ref().and_then(|s| segment(c, s));
    let sticky =
        (f.sticky.as_ref()).and_then(|s| c.source("sticky", s.span(), s.get_ref().source_keys()));
    let mut guard = policy::guard(c, &f.guard);
    let autonomy = super::autonomy::autonomy(
        c,
        f.autonomy.as_ref(),
        segment.as_ref(),
        guard.min_agreement,
    );
    let segments = segment.as_ref().map_or(1, |s| s.values.len() + 1);
    policy::split_alpha(&mut guard, &autonomy, segments);
    Route {
        name: f.name.get_ref().clone(),
        path_prefix: f.path_prefix.get_ref().clone(),
        methods,
        host,
        incumbent,
        mirror: mirror(c, &f.mirror),
        compare: super::compare::compare(c, &f.compare),
        rollout: policy::rollout(
            c,
            &f.rollout,
            f.segment.is_some(),
            segment.as_ref(),
            candidate.is_some(),
        ),
        guard,
        safety: safety(c, &f.safety),
        cost: super::llm::cost(c, &f.cost),
        autonomy,
        slices: super::slices::slices(c, &f.slices),
        candidate,
        segment,
        sticky,
    }
}

/// Settings both upstreams of a route share.
struct UpstreamOpts {
    timeouts: (Duration, Duration),
    http2: bool,
    tls_ca: Option<Vec<u8>>,
}

fn upstream(
    c: &mut Checker<'_>,
    field: &str,
    url: &Spanned<String>,
    opts: &UpstreamOpts,
) -> Upstream {
    let (timeout, connect_timeout) = opts.timeouts;
    let UpstreamUrl { uri, base_path } = c.url(field, url).unwrap_or(UpstreamUrl {
        uri: http::Uri::default(),
        base_path: String::new(),
    });
    Upstream {
        uri,
        base_path,
        connect_timeout,
        timeout,
        http2: opts.http2,
        tls_ca: opts.tls_ca.clone(),
    }
}

fn segment(c: &mut Checker<'_>, f: &Spanned<SegmentFile>) -> Option<Segment> {
    let source = c.source("segment", f.span(), f.get_ref().source_keys())?;
    Some(Segment {
        source,
        values: f.get_ref().values.clone(),
    })
}

fn mirror(c: &mut Checker<'_>, f: &MirrorFile) -> Mirror {
    let mut set_headers = Vec::with_capacity(f.set_headers.len());
    for (name, value) in &f.set_headers {
        let name = c.header_name("mirror.set_headers", name);
        let value = c.header_value("mirror.set_headers", value);
        set_headers.extend(name.zip(value));
    }
    let mut rewrite_json = Vec::with_capacity(f.rewrite_json.len());
    for (pointer, value) in &f.rewrite_json {
        let Some(pointer_parsed) = c.pointer("mirror.rewrite_json", pointer) else {
            continue;
        };
        match super::value::json_value(value) {
            Some(json) => rewrite_json.push((pointer_parsed, json)),
            None => {
                let msg = format!(
                    "value of {:?} is not representable in JSON",
                    pointer.get_ref()
                );
                c.issue(pointer.span(), "mirror.rewrite_json", msg);
            }
        }
    }
    let (sample, budget, focus) = super::llm::spend(c, f);
    Mirror {
        sample,
        budget,
        focus,
        enabled: f.enabled,
        methods: c.methods("mirror.methods", &f.methods),
        timeout: c.timeout("mirror.timeout", &f.timeout),
        max_in_flight: c.nonzero("mirror.max_in_flight", &f.max_in_flight),
        strip_headers: c.header_names("mirror.strip_headers", &f.strip_headers),
        strip_query: f.strip_query.clone(),
        set_headers,
        rewrite_json,
    }
}

fn safety(c: &mut Checker<'_>, f: &SafetyFile) -> Safety {
    Safety {
        deny: f
            .deny
            .iter()
            .filter_map(|r| c.regex("safety.deny", r))
            .collect(),
    }
}
