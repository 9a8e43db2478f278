//! Puts the `recommend` stage's suggestion into the incumbent's JSON answer
//! without rewriting anything else of it (docs/src/concepts/stages.md): along the pointer's
//! path each object keeps its members in their order, duplicates included,
//! and every value keeps its text as sent (big integers, number spellings,
//! escapes) through serde_json's `RawValue`; only the member the pointer
//! names is added or replaced. The objects and arrays on the path are
//! written back without their insignificant whitespace; nothing else moves.

use crate::pointer::{Pointer, Token};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// `doc` with `value` (JSON text) at `pointer`, or `None` when the path
/// does not lead to an object member (or an existing array element), or
/// `doc` is not JSON. The empty pointer and wildcards never splice (the
/// config check refuses them).
pub fn insert(doc: &[u8], pointer: &Pointer, value: &str) -> Option<Vec<u8>> {
    let doc = std::str::from_utf8(doc).ok()?;
    let tokens: Vec<&str> = pointer
        .tokens()
        .iter()
        .map(|t| match t {
            Token::Key(k) => Some(k.as_str()),
            Token::Any => None,
        })
        .collect::<Option<_>>()?;
    if tokens.is_empty() {
        return None;
    }
    at(doc.trim(), &tokens, value).map(String::into_bytes)
}

fn at(doc: &str, tokens: &[&str], value: &str) -> Option<String> {
    let (first, rest) = tokens.split_first()?;
    let step = |old: Option<&str>| match (rest.is_empty(), old) {
        (true, _) => Some(value.to_string()),
        (false, Some(old)) => at(old.trim(), rest, value),
        (false, None) => None,
    };
    if doc.starts_with('{') {
        let Members(mut members) = serde_json::from_str(doc).ok()?;
        // The last of duplicate keys is the one most readers see.
        match members.iter().rposition(|(k, _)| k == first) {
            Some(i) => members[i].1 = step(Some(&members[i].1))?,
            None => members.push(((*first).to_string(), step(None)?)),
        }
        let text: Vec<String> = members
            .iter()
            .map(|(k, v)| Some(format!("{}:{v}", serde_json::to_string(k).ok()?)))
            .collect::<Option<_>>()?;
        Some(format!("{{{}}}", text.join(",")))
    } else if doc.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(doc).ok()?;
        let mut items: Vec<String> = items.iter().map(|v| v.get().to_string()).collect();
        let i: usize = first.parse().ok()?;
        let new = step(Some(items.get(i)?))?;
        items[i] = new;
        Some(format!("[{}]", items.join(",")))
    } else {
        None
    }
}

/// An object's members in order, duplicates kept, values as their JSON text.
struct Members(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push((k, v.get().to_string()));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(Ordered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pointer {
        Pointer::parse(s).unwrap()
    }

    #[test]
    fn the_incumbents_json_keeps_its_order_duplicates_and_numbers() {
        let doc =
            br#"{ "z": 1, "a": 123456789012345678901234567890, "dup": 1, "dup": 2, "f": 1.10 }"#;
        let out = insert(doc, &p("/suggestion"), r#"{"b":2,"a":1}"#).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"z":1,"a":123456789012345678901234567890,"dup":1,"dup":2,"f":1.10,"suggestion":{"b":2,"a":1}}"#
        );
    }

    #[test]
    fn nested_paths_replace_or_add_one_member() {
        let doc = br#"{"data":{"score":0.5,"x":[1,{"k":1}]}}"#;
        let out = insert(doc, &p("/data/suggestion"), "7").unwrap();
        assert_eq!(
            out,
            br#"{"data":{"score":0.5,"x":[1,{"k":1}],"suggestion":7}}"#
        );
        let out = insert(doc, &p("/data/x/1/k"), "\"s\"").unwrap();
        assert_eq!(out, br#"{"data":{"score":0.5,"x":[1,{"k":"s"}]}}"#);
    }

    #[test]
    fn what_cannot_take_a_member_is_refused() {
        assert_eq!(insert(br#"{"a":1}"#, &p(""), "1"), None, "the whole answer");
        assert_eq!(
            insert(br#"{"a":1}"#, &p("/a/b"), "1"),
            None,
            "into a number"
        );
        assert_eq!(
            insert(br#"{"a":[1]}"#, &p("/a/5"), "1"),
            None,
            "past an array"
        );
        assert_eq!(insert(br#"{"a":"#, &p("/b"), "1"), None, "not JSON");
        assert_eq!(insert(br#"{"a":1}"#, &p("/*"), "1"), None, "a wildcard");
    }
}
