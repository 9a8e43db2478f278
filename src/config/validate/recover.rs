//! Deserialises `proxy.toml` without stopping at the first unknown key or wrong type.
//!
//! serde stops at its first error. To report them all in one run, each error
//! is recorded, the key-value it names is blanked out of a copy of the text
//! (overwritten with spaces, newlines kept, so every offset still points into
//! the original) and the copy is read again, until it deserialises or cannot
//! be repaired (a missing required key, a repair that breaks the syntax). The
//! semantic checks then run on the repaired file, so their issues join these.
//! A syntax error in the original text stays [`Error::Parse`]: nothing after
//! it can be read.

use super::super::file::ConfigFile;
use super::super::suggest;
use super::{Error, route};
use std::ops::Range;
use toml_edit::{ImDocument, Item, Key, Table, Value};

/// A problem serde found, located and named by its key path.
pub(super) struct Problem {
    pub span: Range<usize>,
    pub route: Option<String>,
    pub field: String,
    pub message: String,
}

/// What could be read, and every problem met on the way.
pub(super) struct Recovered {
    /// The repaired file, when it deserialises.
    pub file: Option<ConfigFile>,
    pub problems: Vec<Problem>,
}

/// Repairs at most this many problems (a file of nothing but typos ends here).
const MAX_REPAIRS: usize = 64;

/// Deserialises `text`, repairing and recording each unknown key and wrong type.
pub(super) fn deserialize(text: &str) -> Result<Recovered, Error> {
    let mut current = text.to_string();
    let mut problems = Vec::new();
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..MAX_REPAIRS {
        let error = match toml::from_str::<ConfigFile>(&current) {
            Ok(file) => {
                return Ok(Recovered {
                    file: Some(file),
                    problems,
                });
            }
            Err(e) => e,
        };
        let Ok(doc) = ImDocument::parse(current.as_str()) else {
            if problems.is_empty() {
                return Err(super::parse_error(text, &error));
            }
            break; // the repair broke the syntax: what was found stands
        };
        let span = error.span().unwrap_or(0..0);
        let raw = error.message().trim().replace('\n', "; ");
        let found = locate(&doc, span.start);
        if let Some(key) = quoted_after(&raw, "missing field ") {
            // A key blanked out by an earlier repair is not missing from the file.
            if !removed.iter().any(|r| r == key) {
                let mut path = found.map(|f| f.path).unwrap_or_default();
                path.push(Seg::Key(key.to_string()));
                problems.push(problem(&doc, span, &path, format!("missing key `{key}`")));
            }
            break; // nothing to blank out: a missing key cannot be repaired
        }
        let Some(found) = found else {
            problems.push(problem(&doc, span, &[], explain(&raw)));
            break;
        };
        problems.push(problem(&doc, span, &found.path, explain(&raw)));
        if let Some(Seg::Key(key)) = found.path.last() {
            removed.push(key.clone());
        }
        let before = current.clone();
        for range in &found.blank {
            blank(&mut current, range.clone(), found.inline);
        }
        if current == before {
            break;
        }
    }
    Ok(Recovered {
        file: None,
        problems,
    })
}

fn problem(doc: &ImDocument<&str>, span: Range<usize>, path: &[Seg], message: String) -> Problem {
    let (route, rest) = match path {
        [Seg::Key(routes), Seg::Index(i), rest @ ..] if routes == "routes" => {
            let name = doc
                .get("routes")
                .and_then(|r| r.get(*i))
                .and_then(|r| r.get("name"))
                .and_then(Item::as_str)
                .unwrap_or_default();
            (Some(route::label(name, *i)), rest)
        }
        _ => (None, path),
    };
    let mut field = String::new();
    for seg in rest {
        match seg {
            Seg::Key(k) if field.is_empty() => field.push_str(k),
            Seg::Key(k) => {
                field.push('.');
                field.push_str(k);
            }
            Seg::Index(i) => field.push_str(&format!("[{i}]")),
        }
    }
    Problem {
        span,
        route,
        field,
        message,
    }
}

/// serde's message in the file's words, with the nearest known name for a typo.
fn explain(raw: &str) -> String {
    for (serde_word, ours) in [("unknown field ", "key"), ("unknown variant ", "value")] {
        let Some(word) = quoted_after(raw, serde_word) else {
            continue;
        };
        // serde lists one (`a`), two (`a` or `b`) or more (one of `a`, `b`).
        let known: Vec<&str> = raw
            .split_once("expected ")
            .map(|(_, list)| list.trim_start_matches("one of "))
            .map(|list| {
                (list.split(", ").flat_map(|k| k.split(" or ")))
                    .map(|k| k.trim().trim_matches('`'))
                    .filter(|k| !k.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        return match suggest::nearest(word, known.iter().copied()) {
            Some(near) => format!("unknown {ours} `{word}`; did you mean `{near}`?"),
            None if known.is_empty() => format!("unknown {ours} `{word}`"),
            None => format!(
                "unknown {ours} `{word}`; expected one of {}",
                known.join(", ")
            ),
        };
    }
    raw.to_string()
}

/// `X` in `{prefix}`X`…`.
fn quoted_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split_once('`').map(|(word, _)| word)
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The innermost key-value (or table header) at an offset, and what to blank.
struct Found {
    path: Vec<Seg>,
    blank: Vec<Range<usize>>,
    /// Inside an inline table: blank a separating comma too.
    inline: bool,
}

fn locate(doc: &ImDocument<&str>, offset: usize) -> Option<Found> {
    let mut best = None;
    walk_table(
        doc.raw(),
        doc.as_table(),
        &mut Vec::new(),
        offset,
        &mut best,
    );
    best
}

fn contains(span: Option<Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
}

fn walk_table(
    raw: &str,
    table: &Table,
    path: &mut Vec<Seg>,
    offset: usize,
    best: &mut Option<Found>,
) {
    for (name, _) in table.iter() {
        let Some((key, item)) = table.get_key_value(name) else {
            continue;
        };
        path.push(Seg::Key(name.to_string()));
        match item {
            Item::Value(value) => walk_value(key, value, path, offset, best, false),
            Item::Table(sub) => {
                let header = contains(key.span(), offset) || contains(sub.span(), offset);
                if header && sub.is_dotted() {
                    *best = Some(Found {
                        path: path.clone(),
                        blank: values_of(sub),
                        inline: false,
                    });
                } else if header {
                    *best = Some(section(raw, path, sub.span()));
                }
                walk_table(raw, sub, path, offset, best);
            }
            Item::ArrayOfTables(tables) => {
                for (i, sub) in tables.iter().enumerate() {
                    path.push(Seg::Index(i));
                    if contains(sub.span(), offset) {
                        *best = Some(section(raw, path, sub.span()));
                    }
                    walk_table(raw, sub, path, offset, best);
                    path.pop();
                }
            }
            Item::None => {}
        }
        path.pop();
    }
}

fn walk_value(
    key: &Key,
    value: &Value,
    path: &mut Vec<Seg>,
    offset: usize,
    best: &mut Option<Found>,
    inline: bool,
) {
    let (Some(k), Some(v)) = (key.span(), value.span()) else {
        return;
    };
    if k.start <= offset && offset < v.end {
        *best = Some(Found {
            path: path.clone(),
            blank: std::iter::once(k.start..v.end).collect(),
            inline,
        });
    }
    let mut walk_inline = |table: &toml_edit::InlineTable, path: &mut Vec<Seg>| {
        for (name, _) in table.iter() {
            if let Some((key, Item::Value(value))) = table.get_key_value(name) {
                path.push(Seg::Key(name.to_string()));
                walk_value(key, value, path, offset, best, true);
                path.pop();
            }
        }
    };
    match value {
        Value::InlineTable(table) => walk_inline(table, path),
        Value::Array(array) => {
            for (i, element) in array.iter().enumerate() {
                if let Value::InlineTable(table) = element {
                    path.push(Seg::Index(i));
                    walk_inline(table, path);
                    path.pop();
                }
            }
        }
        _ => {}
    }
}

/// The key-values of a dotted table (`guard.min_samples = 1` lines).
fn values_of(table: &Table) -> Vec<Range<usize>> {
    table
        .iter()
        .filter_map(|(name, _)| table.get_key_value(name))
        .filter_map(|(key, item)| Some(key.span()?.start..item.span()?.end))
        .collect()
}

/// A `[table]` or `[[table]]` section: its header to the next header.
fn section(raw: &str, path: &[Seg], header: Option<Range<usize>>) -> Found {
    let start = header.map_or(0, |h| h.start);
    let mut end = raw.len();
    let mut at = raw[start..].find('\n').map_or(raw.len(), |i| start + i + 1);
    while at < raw.len() {
        if raw[at..].trim_start_matches([' ', '\t']).starts_with('[') {
            end = at;
            break;
        }
        at = raw[at..].find('\n').map_or(raw.len(), |i| at + i + 1);
    }
    Found {
        path: path.to_vec(),
        blank: std::iter::once(start..end).collect(),
        inline: false,
    }
}

/// Overwrites `range` with spaces (newlines kept). Outside an inline table the
/// whole line up to the value's end goes (a dotted key's prefix with it);
/// inside one, the comma that separated it goes too.
fn blank(text: &mut String, range: Range<usize>, inline: bool) {
    let mut bytes = std::mem::take(text).into_bytes();
    let mut start = range.start.min(bytes.len());
    let mut end = range.end.min(bytes.len());
    if inline {
        let after = end
            + bytes[end..]
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
        if bytes.get(after) == Some(&b',') {
            end = after + 1;
        } else {
            let before = start
                - bytes[..start]
                    .iter()
                    .rev()
                    .take_while(|b| matches!(b, b' ' | b'\t'))
                    .count();
            if before > 0 && bytes[before - 1] == b',' {
                start = before - 1;
            }
        }
    } else {
        start = bytes[..start]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
    }
    for b in &mut bytes[start..end] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
    // Whole characters were replaced by ASCII spaces: still UTF-8.
    *text = String::from_utf8(bytes).unwrap_or_default();
}
