//! JSON Pointers (RFC 6901) with a `*` wildcard, parsed once at config load.
//!
//! Used by segment extraction, `mirror.rewrite_json`, comparison `ignore`/`only`
//! and `store.redact_json`. The hot path only walks pre-split tokens.

use serde_json::Value;
use std::fmt;

/// One reference token of a pointer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Token {
    /// A literal key (or array index, when the value is an array).
    Key(String),
    /// `*`: any key or any index.
    Any,
}

/// A parsed pointer such as `/items/*/ts`. The empty pointer `""` is the root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pointer {
    tokens: Vec<Token>,
    text: String,
}

/// Why a pointer did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointerError {
    #[error("a JSON pointer must be empty or start with '/', got {0:?}")]
    NoLeadingSlash(String),
    #[error("bad escape in JSON pointer {0:?}: '~' must be followed by '0' or '1'")]
    BadEscape(String),
}

impl Pointer {
    /// Parses `""`, `/a/b`, `/items/*/ts` (`~0` is `~`, `~1` is `/`).
    pub fn parse(text: &str) -> Result<Pointer, PointerError> {
        if text.is_empty() {
            return Ok(Pointer {
                tokens: Vec::new(),
                text: String::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PointerError::NoLeadingSlash(text.to_string()));
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            if raw == "*" {
                tokens.push(Token::Any);
                continue;
            }
            tokens.push(Token::Key(
                unescape(raw).ok_or_else(|| PointerError::BadEscape(text.to_string()))?,
            ));
        }
        Ok(Pointer {
            tokens,
            text: text.to_string(),
        })
    }

    pub fn tokens(&self) -> &[Token] {
        &self.tokens
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn has_wildcard(&self) -> bool {
        self.tokens.contains(&Token::Any)
    }

    /// The value at this pointer (the first match when it has wildcards).
    pub fn get<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        get_in(root, &self.tokens)
    }

    /// Sets the value at this pointer, creating missing object keys on the way.
    /// With wildcards, every existing match is set. Returns whether anything was set.
    pub fn set(&self, root: &mut Value, new: &Value) -> bool {
        let mut done = false;
        self.for_each_mut_create(root, &mut |v| {
            *v = new.clone();
            done = true;
        });
        done
    }

    /// Removes every match of this pointer. Returns how many values were removed.
    pub fn remove(&self, root: &mut Value) -> usize {
        let Some((last, parent)) = self.tokens.split_last() else {
            return 0;
        };
        let mut removed = 0;
        for_each_existing_mut(root, parent, &mut |v| match (v, last) {
            (Value::Object(map), Token::Key(k)) => removed += usize::from(map.remove(k).is_some()),
            (Value::Object(map), Token::Any) => {
                removed += map.len();
                map.clear();
            }
            (Value::Array(items), Token::Key(k)) => {
                if let Some(item) = k.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    *item = Value::Null;
                    removed += 1;
                }
            }
            (Value::Array(items), Token::Any) => {
                removed += items.len();
                items.iter_mut().for_each(|i| *i = Value::Null);
            }
            _ => {}
        });
        removed
    }

    /// Whether a concrete path (as produced by a walk over a document) lies at or
    /// under this pattern: `/a/*` matches `/a/0` and `/a/0/b`.
    pub fn covers(&self, path: &[&str]) -> bool {
        self.tokens.len() <= path.len()
            && self.tokens.iter().zip(path).all(|(t, p)| match t {
                Token::Any => true,
                Token::Key(k) => k == p,
            })
    }

    /// Whether this pattern could match something at or under the concrete
    /// `path` (the path is a prefix of a match, or a match is a prefix of the path).
    pub fn touches(&self, path: &[&str]) -> bool {
        self.tokens.iter().zip(path).all(|(t, p)| match t {
            Token::Any => true,
            Token::Key(k) => k == p,
        })
    }

    fn for_each_mut_create(&self, root: &mut Value, f: &mut dyn FnMut(&mut Value)) {
        walk_create(root, &self.tokens, f);
    }
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Escapes one key for use in a pointer (`~` → `~0`, `/` → `~1`).
pub fn escape(key: &str) -> std::borrow::Cow<'_, str> {
    if key.contains(['~', '/']) {
        key.replace('~', "~0").replace('/', "~1").into()
    } else {
        key.into()
    }
}

fn unescape(raw: &str) -> Option<String> {
    if !raw.contains('~') {
        return Some(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn get_in<'a>(v: &'a Value, tokens: &[Token]) -> Option<&'a Value> {
    let Some((first, rest)) = tokens.split_first() else {
        return Some(v);
    };
    match (v, first) {
        (Value::Object(map), Token::Key(k)) => get_in(map.get(k)?, rest),
        (Value::Array(items), Token::Key(k)) => get_in(items.get(k.parse::<usize>().ok()?)?, rest),
        (Value::Object(map), Token::Any) => map.values().find_map(|c| get_in(c, rest)),
        (Value::Array(items), Token::Any) => items.iter().find_map(|c| get_in(c, rest)),
        _ => None,
    }
}

fn for_each_existing_mut(v: &mut Value, tokens: &[Token], f: &mut dyn FnMut(&mut Value)) {
    let Some((first, rest)) = tokens.split_first() else {
        f(v);
        return;
    };
    match (v, first) {
        (Value::Object(map), Token::Key(k)) => {
            if let Some(c) = map.get_mut(k) {
                for_each_existing_mut(c, rest, f);
            }
        }
        (Value::Array(items), Token::Key(k)) => {
            if let Some(c) = k.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                for_each_existing_mut(c, rest, f);
            }
        }
        (Value::Object(map), Token::Any) => map
            .values_mut()
            .for_each(|c| for_each_existing_mut(c, rest, f)),
        (Value::Array(items), Token::Any) => items
            .iter_mut()
            .for_each(|c| for_each_existing_mut(c, rest, f)),
        _ => {}
    }
}

fn walk_create(v: &mut Value, tokens: &[Token], f: &mut dyn FnMut(&mut Value)) {
    let Some((first, rest)) = tokens.split_first() else {
        f(v);
        return;
    };
    match first {
        Token::Any => match v {
            Value::Object(map) => map.values_mut().for_each(|c| walk_create(c, rest, f)),
            Value::Array(items) => items.iter_mut().for_each(|c| walk_create(c, rest, f)),
            _ => {}
        },
        Token::Key(k) => match v {
            Value::Array(items) => {
                if let Some(c) = k.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    walk_create(c, rest, f);
                }
            }
            Value::Object(map) => walk_create(map.entry(k.clone()).or_insert(Value::Null), rest, f),
            Value::Null => {
                *v = Value::Object(serde_json::Map::new());
                if let Value::Object(map) = v {
                    walk_create(map.entry(k.clone()).or_insert(Value::Null), rest, f);
                }
            }
            _ => {}
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_gets() {
        let doc = json!({"a": {"b/c": 1, "m~n": 2}, "items": [{"ts": 1}, {"ts": 2}]});
        assert_eq!(
            Pointer::parse("/a/b~1c").unwrap().get(&doc),
            Some(&json!(1))
        );
        assert_eq!(
            Pointer::parse("/a/m~0n").unwrap().get(&doc),
            Some(&json!(2))
        );
        assert_eq!(
            Pointer::parse("/items/1/ts").unwrap().get(&doc),
            Some(&json!(2))
        );
        assert_eq!(Pointer::parse("").unwrap().get(&doc), Some(&doc));
        assert!(Pointer::parse("/nope").unwrap().get(&doc).is_none());
        assert!(matches!(
            Pointer::parse("a"),
            Err(PointerError::NoLeadingSlash(_))
        ));
        assert!(matches!(
            Pointer::parse("/a~2"),
            Err(PointerError::BadEscape(_))
        ));
    }

    #[test]
    fn set_creates_and_remove_deletes_wildcards() {
        let mut doc = json!({"model": "v1", "items": [{"email": "a"}, {"email": "b"}]});
        assert!(
            Pointer::parse("/model")
                .unwrap()
                .set(&mut doc, &json!("candidate-v2"))
        );
        assert!(
            Pointer::parse("/opts/key")
                .unwrap()
                .set(&mut doc, &json!(1))
        );
        assert_eq!(
            Pointer::parse("/items/*/email").unwrap().remove(&mut doc),
            2
        );
        assert_eq!(
            doc,
            json!({"model": "candidate-v2", "opts": {"key": 1}, "items": [{}, {}]})
        );
    }

    #[test]
    fn covers_and_touches() {
        let p = Pointer::parse("/items/*/ts").unwrap();
        assert!(p.covers(&["items", "3", "ts"]));
        assert!(p.covers(&["items", "3", "ts", "x"]));
        assert!(!p.covers(&["items", "3"]));
        assert!(p.touches(&["items", "3"]));
        assert!(!p.touches(&["other"]));
    }
}
