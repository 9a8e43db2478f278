//! Query-string parameters named in a list (`store.redact_query`,
//! `mirror.strip_query`): their values replaced before a row is written, or
//! the parameters removed before the candidate's copy is sent. Names are
//! compared after percent-decoding, ASCII case-insensitively; every other
//! parameter keeps its bytes exactly.

/// What a redacted value is replaced with, in queries, headers and JSON bodies.
pub const REDACTED: &str = "[redacted]";

use std::borrow::Cow;

/// `query` with the value of each parameter named in `names` replaced by
/// `[redacted]` (percent-encoded as `%5Bredacted%5D`).
pub fn redact<'q>(query: &'q str, names: &[String]) -> Cow<'q, str> {
    rewrite(query, names, |key, out| {
        out.push_str(key);
        out.push('=');
        out.extend(form_urlencoded::byte_serialize(REDACTED.as_bytes()));
    })
}

/// `query` without the parameters named in `names`; `None` when none is left.
pub fn strip<'q>(query: &'q str, names: &[String]) -> Option<Cow<'q, str>> {
    let kept = rewrite(query, names, |_, _| {});
    (!kept.is_empty()).then_some(kept)
}

/// Rebuilds `query` with each named parameter written by `named` (which may
/// write nothing); borrowed when no parameter is named.
fn rewrite<'q>(
    query: &'q str,
    names: &[String],
    mut named: impl FnMut(&str, &mut String),
) -> Cow<'q, str> {
    if names.is_empty() || !query.split('&').any(|p| is_named(p, names)) {
        return Cow::Borrowed(query);
    }
    let mut out = String::with_capacity(query.len());
    for part in query.split('&') {
        let mark = out.len();
        if !out.is_empty() {
            out.push('&');
        }
        if is_named(part, names) {
            let key = part.split('=').next().unwrap_or_default();
            named(key, &mut out);
            if out.len() == mark + 1 {
                out.truncate(mark); // nothing written: drop the separator too
            }
        } else {
            out.push_str(part);
        }
    }
    if out.starts_with('&') {
        out.remove(0);
    }
    Cow::Owned(out)
}

fn is_named(part: &str, names: &[String]) -> bool {
    let Some((key, _)) = form_urlencoded::parse(part.as_bytes()).next() else {
        return false;
    };
    names.iter().any(|n| n.eq_ignore_ascii_case(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn named_values_are_redacted_and_the_rest_kept_byte_for_byte() {
        let n = names(&["api_key", "token"]);
        assert_eq!(
            redact("q=a%20b+c&API_KEY=s3cret&x=1&tok%65n=t&token", &n),
            "q=a%20b+c&API_KEY=%5Bredacted%5D&x=1&tok%65n=%5Bredacted%5D&token=%5Bredacted%5D"
        );
        assert!(matches!(redact("q=1&x=2", &n), Cow::Borrowed("q=1&x=2")));
    }

    #[test]
    fn named_parameters_are_stripped() {
        let n = names(&["key", "sig"]);
        assert_eq!(strip("key=k&q=1&sig=s", &n).as_deref(), Some("q=1"));
        assert_eq!(strip("q=1&key=k", &n).as_deref(), Some("q=1"));
        assert_eq!(strip("key=k&sig=s", &n), None);
        assert_eq!(strip("keys=1", &n).as_deref(), Some("keys=1"));
    }
}
