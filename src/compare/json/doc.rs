//! What the walk reads of a parsed JSON document, for the two trees it meets:
//! the borrowed one a comparison parses bodies into (`serde_json_borrow`: strings
//! and keys point into the body, an object is a list of members) and
//! `serde_json::Value` (decoded tool-call arguments, `show`'s marks).
//!
//! Both read the same: numbers as serde_json's [`Number`], and an object's
//! members in document order, duplicates included (the walk keeps the last,
//! as `serde_json::Value` does).

use serde_json::Number;

/// A JSON value as the walk sees it.
pub enum View<'a, D> {
    Null,
    Bool(bool),
    Number(Number),
    Str(&'a str),
    Array(&'a [D]),
    /// Its members come from [`Doc::members`].
    Object,
}

/// A parsed JSON document: [`serde_json::Value`] or [`serde_json_borrow::Value`].
pub trait Doc: Sized {
    fn view(&self) -> View<'_, Self>;

    /// Pushes an object's members onto `out` in document order (nothing for
    /// any other value).
    fn members<'a>(&'a self, out: &mut Vec<(&'a str, &'a Self)>);
}

impl Doc for serde_json::Value {
    fn view(&self) -> View<'_, Self> {
        use serde_json::Value as V;
        match self {
            V::Null => View::Null,
            V::Bool(b) => View::Bool(*b),
            V::Number(n) => View::Number(n.clone()),
            V::String(s) => View::Str(s),
            V::Array(items) => View::Array(items),
            V::Object(_) => View::Object,
        }
    }

    fn members<'a>(&'a self, out: &mut Vec<(&'a str, &'a Self)>) {
        if let serde_json::Value::Object(map) = self {
            out.extend(map.iter().map(|(k, v)| (k.as_str(), v)));
        }
    }
}

impl Doc for serde_json_borrow::Value<'_> {
    fn view(&self) -> View<'_, Self> {
        use serde_json_borrow::Value as V;
        match self {
            V::Null => View::Null,
            V::Bool(b) => View::Bool(*b),
            // serde_json's own form (an integer ≥ 0 is always unsigned). The
            // conversion expects a finite float, which is all a parse yields.
            V::Number(n) => View::Number((*n).into()),
            V::Str(s) => View::Str(s),
            V::Array(items) => View::Array(items),
            V::Object(_) => View::Object,
        }
    }

    fn members<'a>(&'a self, out: &mut Vec<(&'a str, &'a Self)>) {
        if let serde_json_borrow::Value::Object(map) = self {
            out.extend(map.iter());
        }
    }
}
