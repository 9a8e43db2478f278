//! Matches a request to a route: in file order, by path prefix, then methods and host.
//!
//! A `path_prefix` matches whole path segments: `/v1/score` takes
//! `/v1/score`, `/v1/score/x` and `/v1/score?q`, never `/v1/scoreboard`; a
//! prefix that ends in `/` matches as written. A path with a dot-segment
//! (`/v1/../admin`, also as `%2e`, behind `%2f` or `\`, or as Tomcat's `..;`)
//! matches nothing: [`has_dot_segment`] lets the proxy refuse it (400) rather
//! than forward a path that an upstream would resolve outside the route.

use crate::config::Route;
use http::request::Parts;

/// Whether `route` takes this request (whose path has no dot-segment: see
/// [`has_dot_segment`]).
pub fn matches(route: &Route, parts: &Parts) -> bool {
    prefix_matches(&route.path_prefix, parts.uri.path())
        && route
            .methods
            .as_ref()
            .is_none_or(|m| m.contains(&parts.method))
        && route
            .host
            .as_ref()
            .is_none_or(|want| request_host(parts).is_some_and(|h| h.eq_ignore_ascii_case(want)))
}

/// Whether `path` starts with `prefix` on a segment boundary.
pub fn prefix_matches(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'))
}

/// Whether `path` has a `.` or `..` segment as an upstream might see it:
/// `%2e` read as `.`, `%2f` and `\` as segment separators (some servers
/// decode or accept them), and a segment's `;parameters` dropped (`..;`).
pub fn has_dot_segment(path: &str) -> bool {
    let bytes = path.as_bytes();
    // Without a `.` or an escape there is no dot segment to find (most
    // paths): no copy to decode.
    if !bytes.iter().any(|&b| b == b'.' || b == b'%') {
        return false;
    }
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => match hex.to_ascii_lowercase().as_slice() {
                b"2e" => Some(b'.'),
                b"2f" | b"5c" => Some(b'/'),
                _ => None,
            },
            _ => None,
        };
        match escaped {
            Some(b) => {
                decoded.push(b);
                i += 3;
            }
            None => {
                decoded.push(if bytes[i] == b'\\' { b'/' } else { bytes[i] });
                i += 1;
            }
        }
    }
    decoded.split(|b| *b == b'/').any(|segment| {
        let name = segment.split(|b| *b == b';').next().unwrap_or(segment);
        name == b"." || name == b".."
    })
}

/// The host the client asked for, without port: the request's one `Host`
/// header, where the request path's conformance check (`proxy::conform`) leaves the host it
/// decided on (the target's authority, or HTTP/2 `:authority`, when there is
/// one). Used for matching only, never to pick a destination.
pub fn request_host(parts: &Parts) -> Option<&str> {
    let raw = parts.headers.get(http::header::HOST)?.to_str().ok()?;
    Some(strip_port(raw))
}

/// `host` without its `:port`; an IPv6 literal keeps its brackets.
pub fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ports() {
        assert_eq!(strip_port("api.example.com:8080"), "api.example.com");
        assert_eq!(strip_port("api.example.com"), "api.example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }

    #[test]
    fn a_prefix_matches_on_a_segment_boundary() {
        for path in ["/v1/score", "/v1/score/", "/v1/score/x", "/v1/score/x/y"] {
            assert!(prefix_matches("/v1/score", path), "{path}");
        }
        for path in ["/v1/scoreboard", "/v1/scores/x", "/v1/scor", "/v1", "/"] {
            assert!(!prefix_matches("/v1/score", path), "{path}");
        }
        // A prefix ending in `/` matches as written.
        assert!(prefix_matches("/v1/", "/v1/anything"));
        assert!(!prefix_matches("/v1/", "/v1"));
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/", "/"));
    }

    #[test]
    fn a_query_does_not_stop_a_match() {
        let cfg = crate::config::for_test(
            "[[routes]]\nname = \"s\"\npath_prefix = \"/v1/score\"\nincumbent = \"http://127.0.0.1:1\"\n",
        );
        let parts = |uri: &str| http::Request::get(uri).body(()).unwrap().into_parts().0;
        let route = &cfg.routes[0];
        assert!(matches(route, &parts("/v1/score?q=1")));
        assert!(matches(route, &parts("http://h/v1/score/x?q")));
        assert!(!matches(route, &parts("/v1/scoreboard?q")));
    }

    #[test]
    fn dot_segments_are_found_however_they_are_written() {
        for path in [
            "/v1/../admin",
            "/v1/score/..",
            "/./v1",
            "/v1/%2e%2e/admin",
            "/v1/%2E./admin",
            "/v1/.%2e",
            "/v1/score%2f..%2fadmin",
            "/v1/score%2F%2e%2e",
            "/v1\\..\\admin",
            "/v1/score%5c..",
            "/v1/..;/admin",
            "/v1/.;x/a",
            "..",
        ] {
            assert!(has_dot_segment(path), "{path}");
        }
        for path in [
            "/",
            "/v1/score",
            "/v1/...",
            "/v1/.well-known/x",
            "/v1/a..b",
            "/v1/..x",
            "/v1/%2e%2e%2e",
            "/v1/%2",
            "/v1/%",
            "/v1/score.json",
        ] {
            assert!(!has_dot_segment(path), "{path}");
        }
    }
}
