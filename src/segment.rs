//! Reads the segment and the sticky key of a request from a header, a query
//! parameter, a JSON body pointer or a path regex, and bounds metric labels.

use crate::config::{Segment, Source};
use http::request::Parts;

pub use crate::config::{DEFAULT, OTHER};

/// A request body parsed as JSON at most once, and only if some source needs it.
pub struct JsonBody<'a> {
    raw: &'a [u8],
    parsed: Option<Option<serde_json::Value>>,
}

impl<'a> JsonBody<'a> {
    pub fn new(raw: &'a [u8]) -> JsonBody<'a> {
        JsonBody { raw, parsed: None }
    }

    fn value(&mut self) -> Option<&serde_json::Value> {
        let raw = self.raw;
        self.parsed
            .get_or_insert_with(|| serde_json::from_slice(raw).ok())
            .as_ref()
    }
}

/// The value `source` finds in the request, if any.
pub fn extract(source: &Source, parts: &Parts, body: &mut JsonBody<'_>) -> Option<String> {
    match source {
        Source::Header(name) => parts.headers.get(name)?.to_str().ok().map(str::to_string),
        Source::Query(key) => query_param(parts.uri.query()?, key),
        Source::Json(pointer) => match pointer.get(body.value()?)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        },
        Source::Path(re) => {
            let caps = re.captures(parts.uri.path())?;
            caps.get(1)
                .or_else(|| caps.get(0))
                .map(|m| m.as_str().to_string())
        }
    }
    .filter(|v| !v.is_empty())
}

/// The request's segment: its raw value, or `default`.
pub fn of(segment: Option<&Segment>, parts: &Parts, body: &mut JsonBody<'_>) -> String {
    segment
        .and_then(|s| extract(&s.source, parts, body))
        .map(cut)
        .unwrap_or_else(|| DEFAULT.to_string())
}

/// Longest segment value kept (docs/src/reference/limits.md): a client cannot make rows or the
/// rollout state grow by sending a huge tenant name.
pub const MAX_SEGMENT_BYTES: usize = 128;

/// `value` cut to [`MAX_SEGMENT_BYTES`] at a character boundary.
fn cut(mut value: String) -> String {
    if value.len() > MAX_SEGMENT_BYTES {
        let mut end = MAX_SEGMENT_BYTES;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
    }
    value
}

/// The metric label for a raw segment value: itself when configured, else `other`.
/// This is the only place a segment becomes a label, so cardinality stays bounded.
pub fn label<'a>(segment: Option<&'a Segment>, raw: &str) -> &'a str {
    match segment {
        _ if raw == DEFAULT => DEFAULT,
        None => DEFAULT,
        Some(s) => s
            .values
            .iter()
            .find(|v| v.as_str() == raw)
            .map_or(OTHER, String::as_str),
    }
}

/// `; did you mean "enterprise"?` when `segment` is a near miss of a known
/// segment (another case, a typo), else empty: the tail of every refusal of
/// an unknown segment.
pub fn did_you_mean<'a>(segment: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    crate::config::suggest::nearest(segment, known)
        .map_or(String::new(), |near| format!("; did you mean {near:?}?"))
}

/// The first value of `key` in a query string, percent-decoded.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(k) == key).then(|| decode(v))
    })
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pointer::Pointer;
    use http::Request;

    fn parts(uri: &str, header: Option<(&str, &str)>) -> Parts {
        let mut b = Request::builder().uri(uri);
        if let Some((k, v)) = header {
            b = b.header(k, v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn extracts_from_each_source() {
        let p = parts(
            "/v1/t/acme/score?tier=mid%2Dmarket&x=1",
            Some(("x-tier", "enterprise")),
        );
        let mut body = JsonBody::new(br#"{"account": {"plan": "smb", "seats": 12}}"#);
        let header = Source::Header("x-tier".parse().unwrap());
        let query = Source::Query("tier".into());
        let json = Source::Json(Pointer::parse("/account/plan").unwrap());
        let seats = Source::Json(Pointer::parse("/account/seats").unwrap());
        let path = Source::Path(regex::Regex::new("^/v1/t/([^/]+)/").unwrap());
        assert_eq!(
            extract(&header, &p, &mut body).as_deref(),
            Some("enterprise")
        );
        assert_eq!(
            extract(&query, &p, &mut body).as_deref(),
            Some("mid-market")
        );
        assert_eq!(extract(&json, &p, &mut body).as_deref(), Some("smb"));
        assert_eq!(extract(&seats, &p, &mut body).as_deref(), Some("12"));
        assert_eq!(extract(&path, &p, &mut body).as_deref(), Some("acme"));
        let none = Source::Query("missing".into());
        assert_eq!(extract(&none, &p, &mut body), None);
    }

    #[test]
    fn stored_segment_values_are_cut_to_128_bytes_at_a_char_boundary() {
        let seg = Segment {
            source: Source::Query("tier".into()),
            values: vec![],
        };
        let long = format!("/?tier={}%C3%A9{}", "a".repeat(127), "b".repeat(500));
        let got = of(Some(&seg), &parts(&long, None), &mut JsonBody::new(b""));
        assert_eq!(got, "a".repeat(127), "the 2-byte é would cross byte 128");
        let p = parts("/?tier=smb", None);
        assert_eq!(of(Some(&seg), &p, &mut JsonBody::new(b"")), "smb");
    }

    #[test]
    fn labels_are_bounded() {
        let seg = Segment {
            source: Source::Header("x-tier".parse().unwrap()),
            values: vec!["enterprise".into(), "smb".into()],
        };
        assert_eq!(label(Some(&seg), "enterprise"), "enterprise");
        assert_eq!(label(Some(&seg), "pirates"), OTHER);
        assert_eq!(label(Some(&seg), DEFAULT), DEFAULT);
        assert_eq!(label(None, "anything"), DEFAULT);
    }

    #[test]
    fn decodes_queries() {
        assert_eq!(query_param("a=1&b=x+y%21", "b").as_deref(), Some("x y!"));
        assert_eq!(query_param("a=%zz", "a").as_deref(), Some("%zz"));
        assert_eq!(query_param("a=%é", "a").as_deref(), Some("%é"));
        assert_eq!(query_param("flag", "flag").as_deref(), Some(""));
    }
}
