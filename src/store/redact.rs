//! Header and JSON-pointer redaction, applied before a row is queued.
//!
//! A redacted value is replaced by the string `"[redacted]"`, never logged or
//! written. Bodies that are not JSON, or that no pointer matches, are passed
//! through untouched (a cheap `Bytes` clone); the caller caps their size.

use super::Record;
use crate::pointer::{Pointer, Token};
use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use serde_json::Value;

/// What a redacted value becomes.
pub use crate::query::REDACTED;

/// Built once from `store.redact_headers` and `store.redact_json`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    headers: Vec<HeaderName>,
    pointers: Vec<Pointer>,
    query: Vec<String>,
}

impl Redactor {
    pub fn new(headers: &[HeaderName], pointers: &[Pointer], query: &[String]) -> Redactor {
        Redactor {
            headers: headers.to_vec(),
            pointers: pointers.to_vec(),
            query: query.to_vec(),
        }
    }

    /// The redaction `[store]` configures.
    pub fn of(store: &crate::config::Store) -> Redactor {
        Redactor::new(
            &store.redact_headers,
            &store.redact_json,
            &store.redact_query,
        )
    }

    /// The request headers as a JSON object `{name: value}`; repeated headers
    /// are joined with `", "`, non-UTF-8 bytes are replaced lossily and the
    /// values of redacted headers are `"[redacted]"`.
    pub fn headers_json(&self, headers: &HeaderMap) -> String {
        // Written straight into one buffer, keys sorted (as a JSON map would be).
        let mut names: Vec<&http::HeaderName> = headers.keys().collect();
        names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        let mut out = Vec::with_capacity(64 * names.len() + 2);
        out.push(b'{');
        for (i, name) in names.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_str(&mut out, name.as_str());
            out.push(b':');
            if self.headers.contains(name) {
                json_str(&mut out, REDACTED);
                continue;
            }
            let mut values = headers.get_all(name).iter();
            match (values.next(), values.next()) {
                (Some(only), None) => json_str(&mut out, &String::from_utf8_lossy(only.as_bytes())),
                _ => {
                    let joined: Vec<_> = headers
                        .get_all(name)
                        .iter()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()))
                        .collect();
                    json_str(&mut out, &joined.join(", "));
                }
            }
        }
        out.push(b'}');
        // Only JSON (UTF-8) was written.
        String::from_utf8(out).unwrap_or_default()
    }

    /// The body with every value matched by a pointer replaced by
    /// `"[redacted]"`, re-serialised; unchanged when it is not a JSON object or
    /// array or when nothing matches. A body that starts like JSON but does not
    /// parse (cut at the cap, or malformed) cannot be redacted: only its length
    /// and SHA-256 are kept.
    pub fn body(&self, body: &Bytes) -> Bytes {
        if self.pointers.is_empty() {
            return body.clone();
        }
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if !matches!(first, Some(b'{' | b'[')) {
            return body.clone();
        }
        let Ok(mut doc) = serde_json::from_slice::<Value>(body) else {
            return withheld(body);
        };
        let mut hits = 0;
        for p in &self.pointers {
            hits += redact_in(&mut doc, p.tokens());
        }
        if hits == 0 {
            return body.clone();
        }
        match serde_json::to_vec(&doc) {
            Ok(v) => Bytes::from(v),
            // Serialising a Value cannot fail; if it ever did, storing nothing
            // is the only answer that cannot leak what was meant to be hidden.
            Err(_) => Bytes::from_static(b"\"[redacted]\""),
        }
    }

    /// Redacts the three bodies of a record (its headers come from
    /// [`Redactor::headers_json`], called by whoever builds the record).
    pub fn apply(&self, rec: &mut Record) {
        if let Some(q) = &rec.query
            && let std::borrow::Cow::Owned(redacted) = crate::query::redact(q, &self.query)
        {
            rec.query = Some(redacted);
        }
        for body in [
            &mut rec.request_body,
            &mut rec.incumbent_body,
            &mut rec.candidate_body,
        ]
        .into_iter()
        .flatten()
        {
            *body = self.body(body);
        }
    }
}

/// What is stored in place of a JSON body that could not be parsed to redact.
fn withheld(body: &[u8]) -> Bytes {
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Bytes::from(format!(
        "[withheld: JSON that could not be parsed to redact, {} bytes, sha256 {hex}]",
        body.len()
    ))
}

/// Replaces every existing match of `tokens` (never creating keys); returns
/// how many values were replaced.
fn redact_in(v: &mut Value, tokens: &[Token]) -> usize {
    let Some((first, rest)) = tokens.split_first() else {
        *v = Value::String(REDACTED.to_string());
        return 1;
    };
    match (v, first) {
        (Value::Object(map), Token::Key(k)) => map.get_mut(k).map_or(0, |c| redact_in(c, rest)),
        (Value::Array(items), Token::Key(k)) => k
            .parse::<usize>()
            .ok()
            .and_then(|i| items.get_mut(i))
            .map_or(0, |c| redact_in(c, rest)),
        (Value::Object(map), Token::Any) => map.values_mut().map(|c| redact_in(c, rest)).sum(),
        (Value::Array(items), Token::Any) => items.iter_mut().map(|c| redact_in(c, rest)).sum(),
        _ => 0,
    }
}

/// Appends `s` as a JSON string.
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string into a Vec cannot fail.
    let _ignored = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    fn redactor(pointers: &[&str]) -> Redactor {
        let ptrs: Vec<Pointer> = pointers
            .iter()
            .map(|p| Pointer::parse(p).unwrap())
            .collect();
        Redactor::new(
            &[
                HeaderName::from_static("authorization"),
                HeaderName::from_static("cookie"),
            ],
            &ptrs,
            &["api_key".to_string()],
        )
    }

    #[test]
    fn headers_are_joined_and_redacted() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer s3cret"));
        h.append("cookie", HeaderValue::from_static("a=1"));
        h.append("cookie", HeaderValue::from_static("b=2"));
        h.append("accept", HeaderValue::from_static("text/html"));
        h.append("accept", HeaderValue::from_static("application/json"));
        h.insert("x-bin", HeaderValue::from_bytes(b"caf\xe9").unwrap());
        let out = redactor(&[]).headers_json(&h);
        assert!(!out.contains("s3cret") && !out.contains("a=1"), "{out}");
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            json!({
                "authorization": "[redacted]",
                "cookie": "[redacted]",
                "accept": "text/html, application/json",
                "x-bin": "caf\u{fffd}",
            })
        );
    }

    #[test]
    fn json_fields_are_redacted_with_wildcards() {
        let r = redactor(&["/email", "/contacts/*/phone", "/missing/deep"]);
        let body = Bytes::from_static(
            br#" {"email":"ann@example.com","score":0.9,"contacts":[{"phone":"555-1234"},{"name":"x"}]}"#,
        );
        let out = r.body(&body);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"email": "[redacted]", "score": 0.9,
                   "contacts": [{"phone": "[redacted]"}, {"name": "x"}]})
        );
        // A pointer that matches nothing creates nothing.
        assert!(v.get("missing").is_none());
    }

    #[test]
    fn unmatched_or_non_json_bodies_are_unchanged() {
        let r = redactor(&["/email"]);
        // Same allocation back: no parse, no copy.
        for raw in [
            &b"email=ann@example.com"[..],
            br#"{"score": 1,   "x": 2}"#,
            b"",
        ] {
            let body = Bytes::copy_from_slice(raw);
            let out = r.body(&body);
            assert_eq!(out, body);
            assert_eq!(out.as_ptr(), body.as_ptr());
        }
        let none = redactor(&[]);
        let body = Bytes::from_static(br#"{"email":"a"}"#);
        assert_eq!(none.body(&body), body);
    }

    #[test]
    fn a_json_body_cut_at_the_cap_is_withheld_not_stored() {
        let r = redactor(&["/email"]);
        let cut = Bytes::from_static(br#"{"score": 1, "email": "ann@exam"#);
        let out = String::from_utf8(r.body(&cut).to_vec()).unwrap();
        assert!(!out.contains("ann@"), "{out}");
        assert!(
            out.starts_with("[withheld: JSON that could not be parsed"),
            "{out}"
        );
        assert!(out.contains(&format!("{} bytes", cut.len())), "{out}");
        // Same input, same digest: two cut bodies can still be told equal.
        assert_eq!(r.body(&cut), r.body(&cut.clone()));
    }

    #[test]
    fn apply_redacts_named_query_parameters() {
        let r = redactor(&[]);
        let mut rec = Record {
            query: Some("q=1&api_key=s3cret".into()),
            ..Record::default()
        };
        r.apply(&mut rec);
        assert_eq!(rec.query.as_deref(), Some("q=1&api_key=%5Bredacted%5D"));
    }

    #[test]
    fn apply_covers_all_three_bodies() {
        let r = redactor(&["/email"]);
        let b = Bytes::from_static(br#"{"email":"ann@example.com"}"#);
        let mut rec = Record {
            request_body: Some(b.clone()),
            incumbent_body: Some(b.clone()),
            candidate_body: Some(b),
            ..Record::default()
        };
        r.apply(&mut rec);
        for body in [rec.request_body, rec.incumbent_body, rec.candidate_body] {
            assert_eq!(
                body.unwrap(),
                Bytes::from_static(br#"{"email":"[redacted]"}"#)
            );
        }
    }
}
