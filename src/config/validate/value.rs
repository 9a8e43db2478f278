//! Parsers for single values (durations, addresses, URLs, header names, methods,
//! pointers, regexes, weights, sources), each recording an issue at the value's
//! position instead of failing. On error they return a placeholder or `None`.

use super::Checker;
use crate::config::Source;
use crate::config::file::SourceKeys;
use crate::pointer::Pointer;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderName, HeaderValue, Method};
use regex::Regex;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

/// Methods a route or mirror may name; anything else is more likely a typo
/// than a WebDAV verb.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::TRACE,
    Method::CONNECT,
];

/// A parsed upstream URL: `uri` holds scheme and authority, `base_path` the path without
/// its trailing `/` ("" when none).
pub(crate) struct UpstreamUrl {
    pub uri: Uri,
    pub base_path: String,
}

impl Checker<'_> {
    /// `"2s"`, `"250ms"`, `"14d"` (humantime).
    pub(crate) fn duration(&mut self, field: &str, s: &Spanned<String>) -> Duration {
        match humantime::parse_duration(s.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                let msg = format!(
                    "bad duration {:?} (want e.g. \"250ms\", \"2s\", \"14d\"): {e}",
                    s.get_ref()
                );
                self.issue(s.span(), field, msg);
                Duration::ZERO
            }
        }
    }

    /// A duration that must not be zero.
    pub(crate) fn timeout(&mut self, field: &str, s: &Spanned<String>) -> Duration {
        let before = self.issues.len();
        let d = self.duration(field, s);
        if d.is_zero() && self.issues.len() == before {
            self.issue(s.span(), field, "must be greater than zero");
        }
        d
    }

    pub(crate) fn addr(&mut self, field: &str, s: &Spanned<String>) -> Option<SocketAddr> {
        let parsed = s.get_ref().parse::<SocketAddr>();
        if parsed.is_err() {
            let msg = format!(
                "bad socket address {:?}: expected IP:port such as \"127.0.0.1:8080\"",
                s.get_ref()
            );
            self.issue(s.span(), field, msg);
        }
        parsed.ok()
    }

    pub(crate) fn header_name(&mut self, field: &str, s: &Spanned<String>) -> Option<HeaderName> {
        let parsed = HeaderName::from_bytes(s.get_ref().as_bytes());
        if parsed.is_err() {
            let msg = format!("bad header name {:?}", s.get_ref());
            self.issue(s.span(), field, msg);
        }
        parsed.ok()
    }

    pub(crate) fn header_names(
        &mut self,
        field: &str,
        list: &[Spanned<String>],
    ) -> Vec<HeaderName> {
        list.iter()
            .filter_map(|s| self.header_name(field, s))
            .collect()
    }

    pub(crate) fn header_value(&mut self, field: &str, s: &Spanned<String>) -> Option<HeaderValue> {
        let parsed = HeaderValue::from_str(s.get_ref());
        if parsed.is_err() {
            let msg = format!("bad header value {:?}", s.get_ref());
            self.issue(s.span(), field, msg);
        }
        parsed.ok()
    }

    /// A standard method, case-insensitive (`"post"` is `POST`).
    pub(crate) fn method(&mut self, field: &str, s: &Spanned<String>) -> Option<Method> {
        let upper = s.get_ref().to_ascii_uppercase();
        let found = METHODS.iter().find(|m| m.as_str() == upper).cloned();
        if found.is_none() {
            let msg = format!("unknown HTTP method {:?}", s.get_ref());
            self.issue(s.span(), field, msg);
        }
        found
    }

    pub(crate) fn methods(&mut self, field: &str, list: &[Spanned<String>]) -> Vec<Method> {
        list.iter().filter_map(|s| self.method(field, s)).collect()
    }

    pub(crate) fn pointer(&mut self, field: &str, s: &Spanned<String>) -> Option<Pointer> {
        match Pointer::parse(s.get_ref()) {
            Ok(p) => Some(p),
            Err(e) => {
                self.issue(s.span(), field, format!("bad JSON pointer: {e}"));
                None
            }
        }
    }

    pub(crate) fn pointers(&mut self, field: &str, list: &[Spanned<String>]) -> Vec<Pointer> {
        list.iter().filter_map(|s| self.pointer(field, s)).collect()
    }

    pub(crate) fn regex(&mut self, field: &str, s: &Spanned<String>) -> Option<Regex> {
        match Regex::new(s.get_ref()) {
            Ok(r) => Some(r),
            Err(e) => {
                // regex errors draw a multi-line caret diagram; keep its last line.
                let why = e.to_string();
                let why = why.lines().last().unwrap_or("invalid").trim().to_string();
                let why = why.strip_prefix("error: ").unwrap_or(&why).to_string();
                let msg = format!("bad regex {:?}: {why}", s.get_ref());
                self.issue(s.span(), field, msg);
                None
            }
        }
    }

    /// A weight in percent, `0.0..=100.0`.
    pub(crate) fn weight(&mut self, field: &str, w: &Spanned<f64>) -> f64 {
        let v = *w.get_ref();
        if !(0.0..=100.0).contains(&v) {
            self.issue(w.span(), field, format!("weight {v} is outside 0..=100"));
        }
        v
    }

    /// A ratio in `0.0..=1.0`.
    pub(crate) fn fraction(&mut self, field: &str, x: &Spanned<f64>) -> f64 {
        let v = *x.get_ref();
        if !(0.0..=1.0).contains(&v) {
            self.issue(x.span(), field, format!("{v} is outside 0..=1"));
        }
        v
    }

    pub(crate) fn nonzero(&mut self, field: &str, n: &Spanned<usize>) -> usize {
        if *n.get_ref() == 0 {
            self.issue(n.span(), field, "must be greater than zero");
        }
        *n.get_ref()
    }

    /// An `http://` or `https://` URL with a host and no query.
    pub(crate) fn url(&mut self, field: &str, s: &Spanned<String>) -> Option<UpstreamUrl> {
        let found = parse_url(s.get_ref());
        if let Err(why) = &found {
            let msg = format!("bad URL {:?}: {why}", s.get_ref());
            self.issue(s.span(), field, msg);
        }
        found.ok()
    }

    /// Exactly one of `header`, `query`, `json`, `path`; `span` locates the table.
    pub(crate) fn source(
        &mut self,
        field: &str,
        span: Range<usize>,
        keys: SourceKeys<'_>,
    ) -> Option<Source> {
        let given: Vec<_> = keys
            .iter()
            .filter_map(|(name, v)| v.map(|v| (*name, v)))
            .collect();
        let [(name, value)] = given[..] else {
            let msg = match given.len() {
                0 => "needs one source: header, query, json or path".to_string(),
                _ => {
                    let names: Vec<&str> = given.iter().map(|(n, _)| *n).collect();
                    format!(
                        "has {} sources ({}); give exactly one",
                        names.len(),
                        names.join(", ")
                    )
                }
            };
            let span = given.get(1).map_or(span, |(_, v)| v.span());
            self.issue(span, field, msg);
            return None;
        };
        let field = format!("{field}.{name}");
        match name {
            "header" => self.header_name(&field, value).map(Source::Header),
            "query" if value.get_ref().is_empty() => {
                self.issue(value.span(), field, "query parameter name is empty");
                None
            }
            "query" => Some(Source::Query(value.get_ref().clone())),
            "json" => self.pointer(&field, value).map(Source::Json),
            _ => self.regex(&field, value).map(Source::Path),
        }
    }
}

fn parse_url(text: &str) -> Result<UpstreamUrl, String> {
    let uri: Uri = text
        .parse()
        .map_err(|e: http::uri::InvalidUri| e.to_string())?;
    let parts = uri.into_parts();
    match parts.scheme.as_ref().map(|s| s.as_str()) {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("scheme must be http or https, not {other:?}")),
        None => return Err("needs a scheme, e.g. http://127.0.0.1:9001".to_string()),
    }
    match &parts.authority {
        Some(a) if !a.host().is_empty() => {}
        _ => return Err("needs a host".to_string()),
    }
    if parts
        .path_and_query
        .as_ref()
        .and_then(|p| p.query())
        .is_some()
    {
        return Err("must not have a query".to_string());
    }
    let base_path = parts
        .path_and_query
        .as_ref()
        .map_or("", |p| p.path())
        .trim_end_matches('/')
        .to_string();
    let mut base = http::uri::Parts::default();
    base.scheme = parts.scheme;
    base.authority = parts.authority;
    base.path_and_query = Some(PathAndQuery::from_static("/"));
    let uri = Uri::from_parts(base).map_err(|e| e.to_string())?;
    Ok(UpstreamUrl { uri, base_path })
}

/// Converts a TOML value (from `mirror.rewrite_json`) to JSON; datetimes become strings.
pub(crate) fn json_value(v: &toml::Value) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => J::Number(serde_json::Number::from_f64(*f)?),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(items) => J::Array(items.iter().map(json_value).collect::<Option<_>>()?),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| Some((k.clone(), json_value(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}
