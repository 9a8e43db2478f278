//! The tree a comparison parses a body into: a tape, one vector of nodes in
//! which each container's children lie side by side (an array's elements; an
//! object's keys and values, alternating), so that a container is a range of
//! the tape and an array a slice of it.
//!
//! It is built by serde_json's own parser driving our visitor: the same
//! numbers (`float_roundtrip`, integers beyond `i64` as floats, `-0` as a
//! float, as in `serde_json::Value`), and the same bodies refused (trailing
//! characters, nesting past serde_json's depth limit, numbers out of range,
//! invalid escapes and UTF-8). Strings and keys without escapes point into
//! the body; the few with escapes are unescaped into one side buffer. An
//! object keeps its members in document order, duplicates included (the walk
//! keeps the last, as `serde_json::Value` does).
//!
//! A document costs two allocations (the tape and a scratch stack where a
//! container's children wait until it closes), three when a string has
//! escapes, plus the doublings of a tape that was sized too small.

use super::doc::{Doc, View};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use std::fmt;

/// A parsed body: the tape and its root.
#[derive(Debug)]
pub struct Tape<'de> {
    /// Every container's children, each container's side by side.
    nodes: Vec<Node<'de>>,
    root: Node<'de>,
    /// The text of strings and keys that had escapes.
    unescaped: String,
}

/// One value on the tape.
#[derive(Debug, Clone, Copy)]
pub struct Node<'de>(Kind<'de>);

/// Plain data (numbers as their parts, not serde_json's `Number`), so that
/// closing a container moves its children with one copy.
#[derive(Debug, Clone, Copy)]
enum Kind<'de> {
    Null,
    Bool(bool),
    PosInt(u64),
    NegInt(i64),
    /// Finite, as the parser yields them.
    Float(f64),
    /// A string without escapes, in the body.
    Str(&'de str),
    /// A string with escapes: its text in [`Tape::unescaped`].
    Unescaped {
        start: usize,
        len: usize,
    },
    /// `len` elements from `start` on the tape.
    Array {
        start: usize,
        len: usize,
    },
    /// `len` members from `start` on the tape: key, value, key, value...
    Object {
        start: usize,
        len: usize,
    },
}

impl<'de> Tape<'de> {
    /// Parses `text` as one JSON document, as `serde_json::from_str` would.
    pub fn parse(text: &'de str) -> Result<Tape<'de>, serde_json::Error> {
        let mut builder = Builder {
            nodes: Vec::with_capacity(reserve(text.len())),
            stack: Vec::with_capacity(32),
            unescaped: String::new(),
        };
        let mut de = serde_json::Deserializer::from_str(text);
        Seed(&mut builder).deserialize(&mut de)?;
        de.end()?;
        let Builder {
            nodes,
            mut stack,
            unescaped,
        } = builder;
        // A successful parse leaves exactly the root on the stack.
        let root = stack.pop().unwrap_or(Node(Kind::Null));
        Ok(Tape {
            nodes,
            root,
            unescaped,
        })
    }

    #[inline]
    fn text<'a>(&'a self, node: &'a Node<'de>) -> &'a str {
        match node.0 {
            Kind::Str(s) => s,
            Kind::Unescaped { start, len } => self.unescaped.get(start..start + len).unwrap_or(""),
            _ => "",
        }
    }
}

impl<'de> Doc for Tape<'de> {
    type Node = Node<'de>;

    #[inline]
    fn root(&self) -> &Node<'de> {
        &self.root
    }

    #[inline]
    fn view<'a>(&'a self, node: &'a Node<'de>) -> View<'a, Node<'de>> {
        match node.0 {
            Kind::Null => View::Null,
            Kind::Bool(b) => View::Bool(b),
            Kind::PosInt(n) => View::Number(n.into()),
            Kind::NegInt(n) => View::Number(n.into()),
            // `serde_json::Value`'s rule for a float that is not finite
            // (which a parse never yields).
            Kind::Float(n) => Number::from_f64(n).map_or(View::Null, View::Number),
            Kind::Str(s) => View::Str(s),
            Kind::Unescaped { .. } => View::Str(self.text(node)),
            Kind::Array { start, len } => View::Array(&self.nodes[start..start + len]),
            Kind::Object { .. } => View::Object,
        }
    }

    #[inline]
    fn members<'a>(&'a self, node: &'a Node<'de>, out: &mut Vec<(&'a str, &'a Node<'de>)>) {
        if let Kind::Object { start, len } = node.0 {
            let pairs = self.nodes[start..start + 2 * len].chunks_exact(2);
            out.extend(pairs.map(|kv| (self.text(&kv[0]), &kv[1])));
        }
    }
}

/// The tape's first capacity for a body of `len` bytes: about one node per
/// six bytes of typical JSON (keys, short values), so that most bodies need
/// no growth; denser bodies grow the tape a few times. At most 4,096 nodes
/// (96 KiB), so that a large body that is mostly one string does not
/// reserve five times its size.
fn reserve(len: usize) -> usize {
    (len / 5 + 8).min(4096)
}

/// The tape being built.
struct Builder<'de> {
    nodes: Vec<Node<'de>>,
    /// The children of the open containers, the innermost's last.
    stack: Vec<Node<'de>>,
    unescaped: String,
}

impl<'de> Builder<'de> {
    fn push(&mut self, kind: Kind<'de>) {
        self.stack.push(Node(kind));
    }

    /// Moves the children from `base` on the stack to the tape and leaves
    /// their container on the stack in their place.
    fn close(&mut self, base: usize, object: bool) {
        let start = self.nodes.len();
        let children = self.stack.get(base..).unwrap_or_default();
        self.nodes.extend_from_slice(children);
        let len = children.len();
        self.stack.truncate(base);
        self.push(if object {
            Kind::Object {
                start,
                len: len / 2,
            }
        } else {
            Kind::Array { start, len }
        });
    }
}

/// Parses one value (or key) onto the builder's stack.
struct Seed<'b, 'de>(&'b mut Builder<'de>);

impl<'de> DeserializeSeed<'de> for Seed<'_, 'de> {
    type Value = ();

    #[inline]
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.push(Kind::Null);
        Ok(())
    }

    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        self.0.push(Kind::Bool(b));
        Ok(())
    }

    /// serde_json's own form: `serde_json::Number::from(n)`, negative.
    fn visit_i64<E>(self, n: i64) -> Result<(), E> {
        self.0.push(if n < 0 {
            Kind::NegInt(n)
        } else {
            Kind::PosInt(n.unsigned_abs())
        });
        Ok(())
    }

    fn visit_u64<E>(self, n: u64) -> Result<(), E> {
        self.0.push(Kind::PosInt(n));
        Ok(())
    }

    /// `serde_json::Value`'s rule: a float that is not finite (which a
    /// parse never yields) is null.
    fn visit_f64<E>(self, n: f64) -> Result<(), E> {
        self.0.push(if n.is_finite() {
            Kind::Float(n)
        } else {
            Kind::Null
        });
        Ok(())
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<(), E> {
        self.0.push(Kind::Str(s));
        Ok(())
    }

    /// A string with escapes, unescaped by the parser into its scratch buffer.
    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        let start = self.0.unescaped.len();
        self.0.unescaped.push_str(s);
        self.0.push(Kind::Unescaped {
            start,
            len: s.len(),
        });
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let base = self.0.stack.len();
        while seq.next_element_seed(Seed(&mut *self.0))?.is_some() {}
        self.0.close(base, false);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let base = self.0.stack.len();
        while map.next_key_seed(Seed(&mut *self.0))?.is_some() {
            map.next_value_seed(Seed(&mut *self.0))?;
        }
        self.0.close(base, true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, to_value};
    use super::*;

    /// What serde_json makes of `body`: the value written out (one spelling
    /// per value, so `-0.0` and `0.0`, `1` and `1.0` stay apart), or `None`.
    fn serde_json(body: &[u8]) -> Option<String> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        Some(value.to_string())
    }

    /// The same through the tape.
    fn tape(body: &[u8]) -> Option<String> {
        let tape = parse(body)?;
        Some(to_value(&tape, tape.root()).to_string())
    }

    fn agree(bodies: &[&[u8]]) {
        for body in bodies {
            assert_eq!(
                tape(body),
                serde_json(body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn escaped_keys_and_strings_read_as_their_text() {
        let body = br#"{"a\u0062": "x\ny", "plain": "p", "\"q\"": ["\u00e9\ud83d\ude00", "z"], "a\/b": 1}"#;
        agree(&[body]);
        let tape = parse(body).unwrap();
        let mut members = Vec::new();
        tape.members(tape.root(), &mut members);
        let keys: Vec<&str> = members.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["ab", "plain", "\"q\"", "a/b"]);
        // Only the escaped texts are copied, one after the other.
        assert_eq!(tape.unescaped, "abx\ny\"q\"é😀a/b");
        let View::Str(s) = tape.view(members[1].1) else {
            panic!("a string")
        };
        let at = body.windows(3).position(|w| w == br#""p""#).unwrap() + 1;
        assert!(std::ptr::eq(s.as_ptr(), body[at..].as_ptr()), "borrowed");
    }

    #[test]
    fn duplicate_keys_stay_in_document_order_and_the_last_wins() {
        let body = br#"{"a": 1, "b": true, "a": {"c": [1]}, "a": [3]}"#;
        agree(&[body]);
        let tape = parse(body).unwrap();
        let mut members = Vec::new();
        tape.members(tape.root(), &mut members);
        let keys: Vec<&str> = members.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["a", "b", "a", "a"]);
    }

    #[test]
    fn numbers_are_serde_json_numbers() {
        agree(&[
            b"[18446744073709551615, 18446744073709551616, -9223372036854775808]",
            b"[-9223372036854775809, 9007199254740993, 9007199254740992, 0, 1]",
            b"[-0, -0.0, 0.0, -0e5, 1.0, 1e0, 10E-1, 1e-400, 2.5e-324]",
            b"[20E200, 2e201, 123456789012345678e-20, 1.7976931348623157e308]",
            b"-0",
            b"1e400",
            b"-1e400",
            b"[1, 1e309]",
            b"01",
            b"1.",
            b"+1",
            b".5",
            b"NaN",
            b"[Infinity]",
        ]);
        assert!(tape(b"1e400").is_none(), "out of range");
        assert_eq!(tape(b"-0").as_deref(), Some("-0.0"));
        assert_eq!(
            tape(b"[18446744073709551616]").as_deref(),
            Some("[1.8446744073709552e+19]")
        );
    }

    #[test]
    fn what_is_not_json_is_refused_as_serde_json_refuses_it() {
        agree(&[
            b"",
            b" ",
            b"[1, 2] x",
            b"[1, 2] \n\t",
            b"{} {}",
            b"[1,]",
            b"{\"a\": 1,}",
            b"{\"a\" 1}",
            b"{1: 2}",
            b"[1",
            b"\"abc",
            b"\"\\ud800\"",
            b"\"\\x\"",
            b"\"a\x01b\"",
            b"\"\xff\"",
            b"[1]\xff",
            b"\xef\xbb\xbf[1]",
            b"nul",
            b"[true, false, null]",
        ]);
    }

    #[test]
    fn the_depth_limit_is_serde_json_s() {
        let (mut accepted, mut refused) = (0, 0);
        for depth in 120..=132 {
            let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
            agree(&[arrays.as_bytes(), objects.as_bytes()]);
            accepted += usize::from(parse(arrays.as_bytes()).is_some());
            refused += usize::from(parse(objects.as_bytes()).is_none());
        }
        assert!(accepted > 0 && refused > 0, "{accepted} {refused}");
        // Too deep is "not JSON" to a comparison.
        let deep = "[".repeat(200) + &"]".repeat(200);
        let out = super::super::compare(
            &crate::config::JsonCompare::default(),
            &[],
            deep.as_bytes(),
            b"[]",
        );
        assert_eq!(
            out.note.as_deref(),
            Some("incumbent body is not JSON; compared as bytes")
        );
    }

    /// A large body reserves a bounded tape, and one denser than the guess
    /// grows it: every node is kept.
    #[test]
    fn the_tape_is_reserved_within_bounds_and_grows() {
        assert_eq!(reserve(190), 46);
        let long = format!("[\"{}\"]", "x".repeat(1 << 20));
        let tape = parse(long.as_bytes()).unwrap();
        assert_eq!((tape.nodes.len(), tape.nodes.capacity()), (1, 4096));
        let dense = format!("[{}0]", "0,".repeat(50_000));
        agree(&[dense.as_bytes()]);
        assert_eq!(parse(dense.as_bytes()).unwrap().nodes.len(), 50_001);
    }

    #[test]
    fn containers_are_ranges_of_one_tape() {
        let body = br#"{"a": [1, [2, 3], {"b": []}], "c": {}}"#;
        agree(&[body]);
        let tape = parse(body).unwrap();
        // Every key and value but the root, each once, in the one
        // allocation sized from the body.
        assert_eq!(tape.nodes.len(), 2 * 2 + 3 + 2 + 2);
        assert_eq!(tape.nodes.capacity(), reserve(body.len()));
        let mut members = Vec::new();
        tape.members(tape.root(), &mut members);
        let View::Array(a) = tape.view(members[0].1) else {
            panic!("an array")
        };
        assert_eq!(a.len(), 3);
        assert!(matches!(tape.view(&a[1]), View::Array(inner) if inner.len() == 2));
    }
}
