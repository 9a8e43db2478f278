//! The documentation cannot drift from the code: the configuration, CLI and
//! metrics reference pages in `docs/src/reference/` are checked against what
//! the code accepts and exports, in both directions, and the README against
//! its promised shape. Fast (no servers, no network): a test binary of its own.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use clap::CommandFactory;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Backticked spans of a Markdown fragment.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The cells of a Markdown table row (`| a | b |`), `\|` kept inside a cell.
fn cells(line: &str) -> Option<Vec<String>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    Some(out.into_iter().map(|c| c.trim().to_string()).collect())
}

// ---------------------------------------------------------------------------
// Configuration

/// The keys the parser accepts, found by asking it: an unknown key in a
/// table is refused with the list of the keys that table accepts
/// (`deny_unknown_fields`). A key whose value is itself a table (or an array
/// of tables) is probed the same way, so nested keys are found too.
/// Returns every accepted key as a dotted path (`routes.mirror.timeout`),
/// and which of them are tables.
fn accepted_keys() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut leaves = BTreeSet::new();
    let mut tables = BTreeSet::new();
    let top = probe(&[]).expect("the top level is a table that refuses unknown keys");
    walk(&mut Vec::new(), top, &mut leaves, &mut tables);
    (leaves, tables)
}

/// One step of a key path: the key, and whether it is an array of tables.
type Step = (String, bool);

fn walk(
    path: &mut Vec<Step>,
    keys: Vec<String>,
    leaves: &mut BTreeSet<String>,
    tables: &mut BTreeSet<String>,
) {
    for key in keys {
        let name = dotted(path, &key);
        let mut is_table = false;
        for array in [false, true] {
            path.push((key.clone(), array));
            if let Some(inner) = probe(path) {
                tables.insert(name.clone());
                walk(path, inner, leaves, tables);
                is_table = true;
            }
            path.pop();
            if is_table {
                break;
            }
        }
        if !is_table {
            leaves.insert(name);
        }
    }
}

fn dotted(path: &[Step], key: &str) -> String {
    path.iter()
        .map(|(k, _)| k.as_str())
        .chain([key])
        .collect::<Vec<_>>()
        .join(".")
}

/// Parses a file whose only content is `path` holding an unknown key; when
/// the innermost value is a table that refuses unknown keys, returns the
/// keys it accepts.
fn probe(path: &[Step]) -> Option<Vec<String>> {
    let mut value = "{ __probe__ = 1 }".to_string();
    for (key, array) in path.iter().rev() {
        value = if *array {
            format!("{{ {key} = [{value}] }}")
        } else {
            format!("{{ {key} = {value} }}")
        };
    }
    let text = format!("v = {value}");
    let table: toml::Table = toml::from_str(&text).expect("probe is TOML");
    let doc = toml::to_string(&table["v"]).expect("probe serializes");
    let err = match understudy::config::parse(&doc) {
        Ok(_) => return None,
        Err(e) => e.to_string(),
    };
    // `check`'s words: "unknown key `__probe__`; expected one of a, b, c".
    let rest = err
        .split("unknown key `__probe__`; expected one of ")
        .nth(1)?;
    let list = rest.lines().next().unwrap_or_default();
    let keys: Vec<String> = (list.split(", "))
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .collect();
    (!keys.is_empty()).then_some(keys)
}

/// A documented key: its dotted path and its default cell.
struct DocKey {
    default: String,
    line: usize,
}

/// The keys `configuration.md` documents: each table under a heading that
/// names its TOML table (`` ## `[listen]` ``, `` ### `[routes.mirror]` ``),
/// each key in the first column (several may share a row), its default in
/// the column headed `default`.
fn documented_keys(page: &str) -> BTreeMap<String, DocKey> {
    let mut keys = BTreeMap::new();
    let mut table: Option<String> = None;
    let mut default_col = None;
    let mut fence = false;
    for (i, line) in page.lines().enumerate() {
        if line.starts_with("```") {
            fence = !fence;
        }
        if fence {
            continue;
        }
        if line.starts_with('#') {
            table = code_spans(line)
                .into_iter()
                .find(|s| s.starts_with('['))
                .map(|s| s.trim_matches(['[', ']']).to_string());
            default_col = None;
            continue;
        }
        let (Some(table), Some(row)) = (&table, cells(line)) else {
            continue;
        };
        if row
            .iter()
            .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
        {
            continue;
        }
        if row.first().is_some_and(|c| c == "key") {
            default_col = row.iter().position(|c| c == "default");
            continue;
        }
        let default = default_col
            .and_then(|c| row.get(c))
            .cloned()
            .unwrap_or_default();
        for key in code_spans(&row[0]) {
            let path = if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            };
            keys.insert(
                path,
                DocKey {
                    default: default.clone(),
                    line: i + 1,
                },
            );
        }
    }
    keys
}

const BASE: &str = r#"
[[routes]]
name = "r"
path_prefix = "/"
incumbent = "http://127.0.0.1:9"
candidate = "http://127.0.0.1:10"
"#;

/// Sets `path` (dotted) in a TOML document to `value`, going into the first
/// element of an array of tables on the way and creating tables as needed.
fn set(doc: &mut toml::Table, path: &str, value: toml::Value) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap();
    parent(doc, &parts).insert(last.to_string(), value);
}

/// The table at `parts`, created (empty) where missing.
fn parent<'a>(doc: &'a mut toml::Table, parts: &[&str]) -> &'a mut toml::Table {
    let mut table = doc;
    for part in parts {
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Array(items) => {
                if items.is_empty() {
                    items.push(toml::Value::Table(toml::Table::new()));
                }
                items[0].as_table_mut().expect("an array of tables")
            }
            other => other.as_table_mut().expect("a table"),
        };
    }
    table
}

/// The validated config of a document, as text (no positions in it).
fn validated(doc: &toml::Table) -> Result<String, String> {
    let text = toml::to_string(doc).map_err(|e| e.to_string())?;
    understudy::config::parse(&text)
        .map(|c| format!("{c:?}"))
        .map_err(|e| e.to_string())
}

/// The settings a key needs beside it to be valid at all (a mode's keys
/// need the mode).
fn contexts(key: &str) -> Vec<Vec<(&'static str, &'static str)>> {
    let mut out = vec![vec![]];
    if key.starts_with("routes.compare.") {
        out.push(vec![("routes.compare.mode", r#""llm""#)]);
        out.push(vec![("routes.compare.mode", r#""text""#)]);
        out.push(vec![
            ("routes.compare.mode", r#""judge""#),
            ("routes.compare.url", r#""http://127.0.0.1:11""#),
        ]);
        out.push(vec![("routes.compare.noise.sample", "0.5")]);
    }
    if key.starts_with("routes.autonomy.") {
        out.push(vec![("routes.autonomy.stage", r#""shadow""#)]);
    }
    if key.starts_with("fleet.") {
        out.push(vec![("fleet.url", r#""postgres://u@127.0.0.1/db""#)]);
    }
    out
}

#[test]
fn every_configuration_key_is_documented_with_its_default_and_every_documented_key_exists() {
    let (leaves, tables) = accepted_keys();
    if std::env::var_os("PRINT_KEYS").is_some() {
        eprintln!("LEAVES {leaves:#?}\nTABLES {tables:#?}");
    }
    assert!(
        leaves.len() > 100 && leaves.contains("routes.mirror.timeout"),
        "the parser's keys were not found: {leaves:?}"
    );
    let page = read("docs/src/reference/configuration.md");
    let documented = documented_keys(&page);
    let missing: Vec<_> = leaves
        .iter()
        .filter(|k| !documented.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "accepted by the parser but not in docs/src/reference/configuration.md: {missing:#?}"
    );
    let unknown: Vec<_> = documented
        .keys()
        .filter(|k| !leaves.contains(*k) && !tables.contains(*k))
        .collect();
    assert!(
        unknown.is_empty(),
        "documented in configuration.md but refused by the parser: {unknown:#?}"
    );
    // Every key states its default (or that it is required, or has none) ...
    let no_default: Vec<_> = documented
        .iter()
        .filter(|(_, d)| d.default.is_empty())
        .map(|(k, d)| format!("{k} (line {})", d.line))
        .collect();
    assert!(no_default.is_empty(), "no default stated: {no_default:#?}");
    // ... and a default written as one TOML value is the default: setting
    // it explicitly changes nothing in the validated config.
    let base: toml::Table = toml::from_str(BASE).unwrap();
    let (mut checked, mut wrong, mut unchecked) = (0, Vec::new(), Vec::new());
    for (key, doc) in &documented {
        let spans = code_spans(&doc.default);
        let literal = match spans.as_slice() {
            [one] if doc.default == format!("`{one}`") => *one,
            _ => continue,
        };
        let Ok(value) = toml::from_str::<toml::Table>(&format!("v = {literal}")) else {
            continue;
        };
        let value = value["v"].clone();
        let mut verdict = None;
        for context in contexts(key) {
            let mut without = base.clone();
            // The key's own table is there in both: only the key differs.
            let parts: Vec<&str> = key.split('.').collect();
            parent(&mut without, &parts[..parts.len() - 1]);
            for (k, v) in &context {
                let v: toml::Table = toml::from_str(&format!("v = {v}")).unwrap();
                set(&mut without, k, v["v"].clone());
            }
            let mut with = without.clone();
            set(&mut with, key, value.clone());
            if let (Ok(a), Ok(b)) = (validated(&without), validated(&with)) {
                verdict = Some(a == b);
                break;
            }
        }
        match verdict {
            Some(true) => checked += 1,
            Some(false) => wrong.push(format!("{key} = {literal} (line {})", doc.line)),
            None => unchecked.push(key.clone()),
        }
    }
    eprintln!("{checked} documented defaults checked; not checkable alone: {unchecked:?}");
    assert!(
        wrong.is_empty(),
        "documented default is not the default (setting it changes the config): {wrong:#?}"
    );
    assert!(
        checked >= 80,
        "only {checked} documented defaults could be checked; not checked: {unchecked:#?}"
    );
}

// ---------------------------------------------------------------------------
// Command line

/// Each `` ## `understudy CMD` `` section of `cli.md` (and `Global options`):
/// the flags (`--x`, `-x`) and positionals (`<X>`) its tables name.
fn documented_cli(page: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            current = if h.trim() == "Global options" {
                Some(String::new())
            } else {
                code_spans(h)
                    .first()
                    .and_then(|s| s.strip_prefix("understudy "))
                    .map(str::to_string)
            };
            if let Some(c) = &current {
                sections.entry(c.clone()).or_default();
            }
            continue;
        }
        let (Some(cmd), Some(row)) = (&current, cells(line)) else {
            continue;
        };
        for span in code_spans(&row[0]) {
            let first = span.split([' ', '=']).next().unwrap_or_default();
            if first.starts_with('-') || (first.starts_with('<') && first.ends_with('>')) {
                sections.get_mut(cmd).unwrap().insert(first.to_string());
            }
        }
    }
    sections
}

/// What clap knows: for each subcommand (and `""` for the global options),
/// its flags and positionals as `--long`, `-s` and `<NAME>`.
fn clap_cli() -> BTreeMap<String, BTreeSet<String>> {
    fn args(cmd: &clap::Command, globals: bool) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for a in cmd.get_arguments() {
            if a.is_global_set() != globals {
                continue;
            }
            if a.is_positional() {
                out.insert(format!("<{}>", a.get_id().as_str().to_uppercase()));
            }
            if let Some(l) = a.get_long() {
                out.insert(format!("--{l}"));
            }
            if let Some(s) = a.get_short() {
                out.insert(format!("-{s}"));
            }
        }
        out
    }
    let mut root = understudy::cli::Cli::command();
    root.build();
    let mut out = BTreeMap::new();
    let mut globals = args(&root, true);
    globals.extend(["--help", "-h", "--version", "-V"].map(String::from));
    out.insert(String::new(), globals);
    fn walk(prefix: &str, cmd: &clap::Command, out: &mut BTreeMap<String, BTreeSet<String>>) {
        for sub in cmd.get_subcommands() {
            let name = format!("{prefix}{}", sub.get_name());
            if sub.get_name() == "help" {
                continue;
            }
            let mut own = args(sub, false);
            own.retain(|a| !["--help", "-h", "--version", "-V"].contains(&a.as_str()));
            out.insert(name.clone(), own);
            walk(&format!("{name} "), sub, out);
        }
    }
    walk("", &root, &mut out);
    out
}

#[test]
fn every_command_and_flag_is_documented_and_every_documented_one_exists() {
    let page = read("docs/src/reference/cli.md");
    let documented = documented_cli(&page);
    let real = clap_cli();
    assert!(real.contains_key("serve") && real["report"].contains("--format"));
    let mut problems = Vec::new();
    for (cmd, args) in &real {
        let Some(doc) = documented.get(cmd) else {
            problems.push(format!("command `understudy {cmd}` has no section"));
            continue;
        };
        for a in args.difference(doc) {
            problems.push(format!("`understudy {cmd}`: {a} is not documented"));
        }
        for a in doc.difference(args) {
            problems.push(format!(
                "`understudy {cmd}`: {a} is documented but does not exist"
            ));
        }
    }
    for cmd in documented.keys().filter(|c| !real.contains_key(*c)) {
        problems.push(format!(
            "`understudy {cmd}` is documented but does not exist"
        ));
    }
    assert!(
        problems.is_empty(),
        "docs/src/reference/cli.md and the CLI differ:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------
// Metrics

#[test]
fn every_metric_is_documented_and_every_documented_metric_exists() {
    let metrics = understudy::metrics::Metrics::new();
    let real: BTreeSet<String> = metrics.names().iter().cloned().collect();
    assert!(real.contains("understudy_requests_total") && real.len() > 30);
    let page = read("docs/src/reference/metrics.md");
    // The first column of the page's tables names each metric.
    let documented: BTreeSet<String> = page
        .lines()
        .filter_map(cells)
        .filter_map(|row| {
            code_spans(&row[0])
                .first()
                .map(|s| s.split('{').next().unwrap_or_default().to_string())
        })
        .filter(|name| name.starts_with("understudy_"))
        .collect();
    let missing: Vec<_> = real.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&real).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "docs/src/reference/metrics.md and the registry differ\nnot documented: {missing:#?}\ndocumented, not exported: {unknown:#?}"
    );
}

// ---------------------------------------------------------------------------
// README

#[test]
fn the_readme_is_short_and_opens_with_the_two_commands() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(lines <= 250, "README.md has {lines} lines (at most 250)");
    let start = readme.find("```").expect("a code block");
    assert!(
        readme[..start].lines().count() <= 25,
        "the two commands come first"
    );
    let block = readme[start..].lines().skip(1);
    let commands: Vec<&str> = block.take_while(|l| !l.starts_with("```")).collect();
    assert_eq!(commands, ["cargo run --release -- demo", "cargo test"]);
}

// ---------------------------------------------------------------------------
// The book

/// mdBook renders only the pages `SUMMARY.md` names: a page dropped into
/// `docs/src/` and not listed there would silently be missing from the site.
/// (`_incoming/` holds drafts waiting to be folded into other pages.)
#[test]
fn every_page_of_the_book_is_in_its_summary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src");
    let summary = read("docs/src/SUMMARY.md");
    let mut pages = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .to_string();
            if path.is_dir() {
                if !rel.starts_with('_') {
                    dirs.push(path);
                }
            } else if rel.ends_with(".md") && rel != "SUMMARY.md" {
                pages.push(rel);
            }
        }
    }
    assert!(pages.len() > 20, "{pages:?}");
    let missing: Vec<_> = pages
        .iter()
        .filter(|p| !summary.contains(&format!("]({p})")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/src/SUMMARY.md: {missing:?}"
    );
}
