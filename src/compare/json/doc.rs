//! What the walk reads of a parsed JSON document, for the two kinds it meets:
//! the tape a comparison parses bodies into ([`super::tape`]: strings and keys
//! point into the body, a container is a range of one vector of nodes) and
//! `serde_json::Value` (decoded tool-call arguments, `show`'s marks).
//!
//! A document hands out its root node and reads its nodes: numbers as
//! serde_json's [`Number`], and an object's members in document order,
//! duplicates included (the walk keeps the last, as `serde_json::Value` does).

use serde_json::Number;

/// A JSON value as the walk sees it.
pub enum View<'a, N> {
    Null,
    Bool(bool),
    Number(Number),
    Str(&'a str),
    Array(&'a [N]),
    /// Its members come from [`Doc::members`].
    Object,
}

/// A parsed JSON document: [`serde_json::Value`] or [`super::Tape`].
pub trait Doc {
    /// One value of the document.
    type Node;

    fn root(&self) -> &Self::Node;

    /// What `node`, a node of this document, is.
    fn view<'a>(&'a self, node: &'a Self::Node) -> View<'a, Self::Node>;

    /// Pushes the members of `node`, a node of this document, onto `out` in
    /// document order (nothing when it is not an object).
    fn members<'a>(&'a self, node: &'a Self::Node, out: &mut Vec<(&'a str, &'a Self::Node)>);
}

/// A value is its own document.
impl Doc for serde_json::Value {
    type Node = serde_json::Value;

    fn root(&self) -> &Self {
        self
    }

    fn view<'a>(&'a self, node: &'a Self) -> View<'a, Self> {
        use serde_json::Value as V;
        match node {
            V::Null => View::Null,
            V::Bool(b) => View::Bool(*b),
            V::Number(n) => View::Number(n.clone()),
            V::String(s) => View::Str(s),
            V::Array(items) => View::Array(items),
            V::Object(_) => View::Object,
        }
    }

    fn members<'a>(&'a self, node: &'a Self, out: &mut Vec<(&'a str, &'a Self)>) {
        if let serde_json::Value::Object(map) = node {
            out.extend(map.iter().map(|(k, v)| (k.as_str(), v)));
        }
    }
}
