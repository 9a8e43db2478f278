//! The layers hold: no top-level module of `src/` reaches back to one that
//! reaches it (no import cycles between modules, so none runs back up a
//! layer). Read from the source as text: every `crate::name` path outside a
//! `#[cfg(test)]` module counts, in code and doc links alike.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules it names, with a file that does.
fn graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let re = regex::Regex::new(r"crate::([a-z_][a-z0-9_]*)").unwrap();
    let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut stack = vec![Path::new("src").to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix("src")
                .unwrap()
                .to_string_lossy()
                .to_string();
            let name = rel.trim_end_matches(".rs");
            if !rel.ends_with(".rs") || name.ends_with("tests") || rel.contains("/tests/") {
                continue;
            }
            let top = name.split('/').next().unwrap().to_string();
            if matches!(top.as_str(), "lib" | "main") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]\nmod tests {").next().unwrap();
            for m in re.captures_iter(code) {
                let to = m[1].to_string();
                let module = Path::new("src").join(format!("{to}.rs")).exists()
                    || Path::new("src").join(&to).is_dir();
                if to != top && module {
                    g.entry(top.clone())
                        .or_default()
                        .entry(to)
                        .or_insert_with(|| rel.clone());
                }
            }
        }
    }
    g
}

#[test]
fn no_module_reaches_back_to_one_that_reaches_it() {
    let g = graph();
    // Everything each module reaches, by a walk from it.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(m) = todo.pop() {
            for to in g.get(&m).into_iter().flat_map(|t| t.keys()) {
                if seen.insert(to.clone()) {
                    todo.push(to.clone());
                }
            }
        }
        seen
    };
    let mut back = Vec::new();
    for (from, tos) in &g {
        for (to, file) in tos {
            if reach(to).contains(from) {
                back.push(format!("{from} -> {to} (src/{file})"));
            }
        }
    }
    assert!(g.len() > 10, "the source was not read: {g:?}");
    assert!(back.is_empty(), "imports in a cycle:\n{}", back.join("\n"));
}
