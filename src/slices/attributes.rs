//! The attributes of one stored comparison, read from its row: method,
//! declared segment, path (ids collapsed) and its first segments, query
//! parameters, allow-listed headers, top-level and configured JSON values
//! of the request, and on `llm` routes the model, prompt size, whether tools
//! were offered and the first tool the incumbent called.
//!
//! Only what the store kept is read, so the store's redaction bounds what
//! an attribute can reveal (a redacted value reads `[redacted]`). Values are
//! borrowed from the row while parsing: a value seen before costs a lookup,
//! not an allocation.

use super::table::{AttrId, Builder};
use crate::config::{Protocol, Route, slices::Slices};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};

pub const METHOD: &str = "method";
pub const SEGMENT: &str = "segment";
pub const PATH: &str = "path";
/// Path segments that are attributes of their own (`path:1` ...).
const PATH_PARTS: usize = 3;
/// Query parameters and top-level JSON keys that become attributes, at most.
const MAX_QUERY_KEYS: usize = 16;
const MAX_JSON_KEYS: usize = 32;

/// The columns of one row the attributes come from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Row<'a> {
    pub segment: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The stored JSON object of request headers.
    pub headers: Option<&'a str>,
    pub body: Option<&'a [u8]>,
    /// `llm` routes: the incumbent's input tokens, and its answer.
    pub tokens_in: Option<i64>,
    pub answer: Option<&'a [u8]>,
}

/// Turns rows into attribute values of one route.
pub struct Extractor {
    method: Option<AttrId>,
    segment: Option<AttrId>,
    path: Option<AttrId>,
    parts: Vec<AttrId>,
    /// Allow-listed header names (lowercase) and their attributes.
    headers: Vec<(String, AttrId)>,
    pointers: Vec<(crate::pointer::Pointer, AttrId)>,
    top_level: bool,
    query: bool,
    json_keys: HashMap<Box<str>, Option<AttrId>>,
    query_keys: HashMap<Box<str>, Option<AttrId>>,
    llm: Option<Llm>,
    buf: String,
}

struct Llm {
    protocol: Protocol,
    model: Option<AttrId>,
    prompt: Option<AttrId>,
    tools: Option<AttrId>,
    first_tool: Option<AttrId>,
}

impl Extractor {
    /// The attributes `route`'s `[routes.slices]` asks for (the defaults when
    /// the route is not in the config).
    pub fn new(route: Option<&Route>, b: &mut Builder) -> Extractor {
        let default = Slices::default();
        let cfg = route.map_or(&default, |r| &r.slices);
        let mut add = |name: String| b.add(name);
        let method = add(METHOD.to_string());
        let segment = add(SEGMENT.to_string());
        let (path, parts) = if cfg.path {
            let path = add(PATH.to_string());
            let parts = (1..=PATH_PARTS)
                .filter_map(|i| add(format!("{PATH}:{i}")))
                .collect();
            (path, parts)
        } else {
            (None, Vec::new())
        };
        let headers = (cfg.headers.iter())
            .filter_map(|h| Some((h.as_str().to_string(), add(format!("header:{h}"))?)))
            .collect();
        let pointers = (cfg.json.iter())
            // A top-level key is found by the top-level pass already.
            .filter(|p| !(cfg.json_top_level && p.tokens().len() == 1 && !p.has_wildcard()))
            .filter_map(|p| Some((p.clone(), add(format!("json:{}", p.as_str()))?)))
            .collect();
        let llm = route.and_then(Route::llm).map(|l| Llm {
            protocol: l.protocol,
            model: add("llm:model".to_string()),
            prompt: add("llm:prompt_tokens".to_string()),
            tools: add("llm:tools".to_string()),
            first_tool: add("llm:first_tool".to_string()),
        });
        Extractor {
            method,
            segment,
            path,
            parts,
            headers,
            pointers,
            top_level: cfg.json_top_level,
            query: cfg.query,
            json_keys: HashMap::new(),
            query_keys: HashMap::new(),
            llm,
            buf: String::new(),
        }
    }

    /// Whether the request body must be read.
    pub fn needs_body(&self) -> bool {
        self.top_level || !self.pointers.is_empty() || self.llm.is_some()
    }

    /// Whether the incumbent's answer must be read (`llm:first_tool`).
    pub fn needs_answer(&self) -> bool {
        self.llm.as_ref().is_some_and(|l| l.first_tool.is_some())
    }

    /// Sets every attribute of `row` in the builder's current row.
    pub fn extract(&mut self, b: &mut Builder, row: &Row<'_>) {
        if let Some(a) = self.method {
            b.set(a, row.method);
        }
        if let Some(a) = self.segment {
            b.set(a, row.segment);
        }
        if let Some(a) = self.path {
            self.buf.clear();
            for (i, part) in row.path.split('/').filter(|p| !p.is_empty()).enumerate() {
                let part = collapse(part);
                self.buf.push('/');
                self.buf.push_str(part);
                if let Some(&attr) = self.parts.get(i) {
                    b.set(attr, part);
                }
            }
            if self.buf.is_empty() {
                self.buf.push('/');
            }
            b.set(a, &self.buf);
        }
        if !self.headers.is_empty()
            && let Some(h) = row.headers
        {
            let wanted = &self.headers;
            each_entry(h.as_bytes(), &mut |k, v| {
                if let (Some((_, attr)), Scalar::Str(s)) = (wanted.iter().find(|(n, _)| n == k), v)
                {
                    b.set(*attr, &s);
                }
            });
        }
        if self.query
            && let Some(q) = row.query
        {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                if let Some(attr) = dynamic(&mut self.query_keys, MAX_QUERY_KEYS, b, &k, "query:") {
                    b.set(attr, &v);
                }
            }
        }
        if let Some(body) = row.body.filter(|_| self.needs_body()) {
            self.body(b, body, row);
        }
        if let Some(l) = &self.llm
            && let (Some(attr), Some(answer)) = (l.first_tool, row.answer)
            && let Ok(c) = understudy_llm::decode(l.protocol, None, answer)
        {
            b.set(
                attr,
                c.tool_calls
                    .first()
                    .map_or("(no tool)", |t| t.name.as_str()),
            );
        }
    }

    fn body(&mut self, b: &mut Builder, body: &[u8], row: &Row<'_>) {
        let (keys, buf, top_level) = (&mut self.json_keys, &mut self.buf, self.top_level);
        let llm = self.llm.as_ref();
        each_entry(body, &mut |k, v| {
            if let Some(l) = llm {
                match (k, &v) {
                    ("model", Scalar::Str(s)) => l.model.into_iter().for_each(|a| b.set(a, s)),
                    ("tools", Scalar::Array(n)) => (l.tools.into_iter())
                        .for_each(|a| b.set(a, if *n > 0 { "yes" } else { "no" })),
                    _ => {}
                }
            }
            if !top_level || matches!(v, Scalar::Array(_) | Scalar::Object) {
                return;
            }
            let name = crate::pointer::escape(k);
            if let Some(attr) = dynamic(keys, MAX_JSON_KEYS, b, &name, "json:/") {
                label(&v, buf);
                b.set(attr, buf);
            }
        });
        if let Some(a) = llm.and_then(|l| l.prompt) {
            let tokens = row.tokens_in.unwrap_or((body.len() / 4) as i64);
            b.set(a, prompt_bucket(tokens));
        }
        if !self.pointers.is_empty()
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        {
            for (p, attr) in &self.pointers {
                let scalar = match p.get(&v) {
                    Some(serde_json::Value::String(s)) => Scalar::Str(Cow::Borrowed(s)),
                    Some(serde_json::Value::Bool(x)) => Scalar::Bool(*x),
                    Some(serde_json::Value::Number(n)) => Scalar::Num(n.as_f64().unwrap_or(0.0)),
                    Some(serde_json::Value::Null) => Scalar::Null,
                    _ => continue,
                };
                label(&scalar, &mut self.buf);
                b.set(*attr, &self.buf);
            }
        }
    }
}

/// The attribute for a key found in the data (a query parameter, a JSON
/// key), added the first time it is seen, while there is room.
fn dynamic(
    keys: &mut HashMap<Box<str>, Option<AttrId>>,
    max: usize,
    b: &mut Builder,
    key: &str,
    prefix: &str,
) -> Option<AttrId> {
    if let Some(&a) = keys.get(key) {
        return a;
    }
    if keys.len() >= max {
        return None;
    }
    let attr = b.add(format!("{prefix}{key}"));
    keys.insert(key.into(), attr);
    attr
}

/// A path segment with ids collapsed: `{n}` numbers, `{uuid}`, `{hash}`
/// (hex of 16 or more), `{id}` (long tokens with digits).
pub fn collapse(part: &str) -> &str {
    let bytes = part.as_bytes();
    if bytes.iter().all(u8::is_ascii_digit) {
        return "{n}";
    }
    if bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
    {
        return "{uuid}";
    }
    if bytes.len() >= 16 && bytes.iter().all(u8::is_ascii_hexdigit) {
        return "{hash}";
    }
    if bytes.len() >= 20 && bytes.iter().any(u8::is_ascii_digit) {
        return "{id}";
    }
    part
}

/// A JSON value as an attribute value: strings as they are, numbers in
/// 1-2-5 buckets (small integers exactly).
fn label(v: &Scalar<'_>, buf: &mut String) {
    buf.clear();
    match v {
        Scalar::Str(s) if s.is_empty() => buf.push_str("\"\""),
        Scalar::Str(s) => buf.push_str(s),
        Scalar::Bool(x) => buf.push_str(if *x { "true" } else { "false" }),
        Scalar::Null => buf.push_str("null"),
        Scalar::Num(x) => bucket(*x, buf),
        Scalar::Array(_) | Scalar::Object => {}
    }
}

/// `3`, `[10, 20)`, `-[100, 200)`: integers below 10 exactly, the rest in
/// a 1-2-5 series of buckets by magnitude.
pub fn bucket(x: f64, buf: &mut String) {
    if !x.is_finite() {
        buf.push_str("NaN");
        return;
    }
    let a = x.abs();
    if a < 10.0 && x.fract() == 0.0 {
        // Writing to a String cannot fail.
        let _written: fmt::Result = write!(buf, "{}", x as i64);
        return;
    }
    if x < 0.0 {
        buf.push('-');
    }
    if a < 1.0 {
        buf.push_str("(0, 1)");
        return;
    }
    let decade = 10f64.powi(a.log10().floor() as i32);
    let m = a / decade;
    let (lo, hi) = if m < 2.0 {
        (1.0, 2.0)
    } else if m < 5.0 {
        (2.0, 5.0)
    } else {
        (5.0, 10.0)
    };
    let _written: fmt::Result = write!(buf, "[{}, {})", lo * decade, hi * decade);
}

/// The prompt's size in tokens as a bucket.
fn prompt_bucket(tokens: i64) -> &'static str {
    match tokens {
        i64::MIN..=499 => "<500",
        500..=999 => "500–1k",
        1000..=1999 => "1k–2k",
        2000..=3999 => "2k–4k",
        4000..=7999 => "4k–8k",
        8000..=15999 => "8k–16k",
        _ => "≥16k",
    }
}

/// A JSON value, borrowed when it can be: containers are skipped (their
/// length kept for arrays).
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Num(f64),
    Null,
    Array(usize),
    Object,
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(s.to_string())))
            }
            fn visit_bool<E>(self, x: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Bool(x))
            }
            fn visit_i64<E>(self, x: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Num(x as f64))
            }
            fn visit_u64<E>(self, x: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Num(x as f64))
            }
            fn visit_f64<E>(self, x: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Num(x))
            }
            fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Scalar::Array(n))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Object)
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Calls `f` for each entry of a JSON object; anything else (or bad JSON,
/// such as a body cut at the cap) calls it for the entries read so far.
fn each_entry(json: &[u8], f: &mut dyn FnMut(&str, Scalar<'_>)) {
    struct V<'f>(&'f mut dyn FnMut(&str, Scalar<'_>));
    impl<'de> Visitor<'de> for V<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(k) = map.next_key::<Key<'de>>()? {
                let v = map.next_value::<Scalar<'de>>()?;
                (self.0)(&k.0, v);
            }
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_slice(json);
    let _ignored: Result<(), _> = de::Deserializer::deserialize_map(&mut de, V(f));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_collapse_and_words_stay() {
        assert_eq!(collapse("12345"), "{n}");
        assert_eq!(collapse("3f2b8c1e-9d4a-4b6e-8f00-123456789abc"), "{uuid}");
        assert_eq!(collapse("deadbeefdeadbeef00"), "{hash}");
        assert_eq!(collapse("cus_A1b2C3d4E5f6G7h8I9"), "{id}");
        assert_eq!(collapse("users"), "users");
        assert_eq!(collapse("v2"), "v2");
    }

    #[test]
    fn numbers_are_bucketed() {
        let b = |x: f64| {
            let mut s = String::new();
            bucket(x, &mut s);
            s
        };
        assert_eq!(b(3.0), "3");
        assert_eq!(b(12.0), "[10, 20)");
        assert_eq!(b(4321.5), "[2000, 5000)");
        assert_eq!(b(-150.0), "-[100, 200)");
        assert_eq!(b(0.25), "(0, 1)");
        assert_eq!(b(f64::NAN), "NaN");
    }

    #[test]
    fn a_row_becomes_attributes() {
        let cfg = crate::config::for_test(
            "[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nincumbent = \"http://127.0.0.1:1\"\n\
             [routes.slices]\nheaders = [\"x-region\"]\njson = [\"/customer/country\"]\n",
        );
        let mut b = Builder::default();
        let mut x = Extractor::new(Some(&cfg.routes[0]), &mut b);
        let body =
            br#"{"plan":"pro","seats":120,"trial":false,"customer":{"country":"BR"},"tags":[1]}"#;
        for region in ["eu", "us"] {
            x.extract(
                &mut b,
                &Row {
                    segment: "default",
                    method: "POST",
                    path: "/v2/users/42/score",
                    query: Some("currency=JPY&debug"),
                    headers: Some(&format!(r#"{{"accept":"*/*","x-region":"{region}"}}"#)),
                    body: Some(body),
                    ..Row::default()
                },
            );
            b.end_row(region == "us");
        }
        let t = b.finish(50);
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        // Only what differs between the rows splits them.
        assert_eq!(names, ["header:x-region"]);
        let mut b = Builder::default();
        let mut x = Extractor::new(Some(&cfg.routes[0]), &mut b);
        x.extract(
            &mut b,
            &Row {
                segment: "default",
                method: "POST",
                path: "/v2/users/42/score",
                query: Some("currency=JPY&debug"),
                headers: Some(r#"{"x-region":"eu"}"#),
                body: Some(body),
                ..Row::default()
            },
        );
        b.end_row(false);
        b.end_row(false); // an empty row: every attribute absent
        let t = b.finish(50);
        let value = |name: &str| {
            let c = &t.columns[t.column(name).unwrap_or_else(|| panic!("{name}"))];
            c.values[c.codes[0] as usize].clone()
        };
        assert_eq!(value("path"), "/v2/users/{n}/score");
        assert_eq!(value("path:1"), "v2");
        assert_eq!(value("path:3"), "{n}");
        assert_eq!(value("query:currency"), "JPY");
        assert_eq!(value("query:debug"), "");
        assert_eq!(value("header:x-region"), "eu");
        assert_eq!(value("json:/plan"), "pro");
        assert_eq!(value("json:/seats"), "[100, 200)");
        assert_eq!(value("json:/trial"), "false");
        assert_eq!(value("json:/customer/country"), "BR");
        assert!(t.column("json:/tags").is_none(), "arrays are not values");
        assert!(
            t.column("json:/customer").is_none(),
            "objects are not values"
        );
    }

    #[test]
    fn bad_json_gives_what_was_read() {
        let mut seen = Vec::new();
        each_entry(br#"{"a":"x","b":tru"#, &mut |k, _| seen.push(k.to_string()));
        assert_eq!(seen, ["a"]);
        each_entry(b"[1,2]", &mut |k, _| seen.push(k.to_string()));
        each_entry(b"", &mut |k, _| seen.push(k.to_string()));
        assert_eq!(seen, ["a"]);
    }
}
