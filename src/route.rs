//! Matches a request to a route: in file order, by path prefix, then methods and host.

use crate::config::Route;
use http::request::Parts;

/// Whether `route` takes this request.
pub fn matches(route: &Route, parts: &Parts) -> bool {
    parts.uri.path().starts_with(route.path_prefix.as_str())
        && route
            .methods
            .as_ref()
            .is_none_or(|m| m.contains(&parts.method))
        && route
            .host
            .as_ref()
            .is_none_or(|want| request_host(parts).is_some_and(|h| h.eq_ignore_ascii_case(want)))
}

/// The host the client asked for, without port: the `Host` header (HTTP/1.1) or
/// the URI authority (HTTP/2). Used for matching only, never to pick a destination.
pub fn request_host(parts: &Parts) -> Option<&str> {
    let raw = parts
        .uri
        .host()
        .or_else(|| parts.headers.get(http::header::HOST)?.to_str().ok())?;
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
}
