//! `understudy show ID`: one exchange, the request, both answers side by side
//! with the lines of the differing pointers marked (`>` in the gutter, and in
//! colour when asked for: a terminal without `NO_COLOR`).

use crate::store::read::ExchangeRow;
use serde_json::Value;
use std::io::{self, Write};

const RED: &str = "\x1b[1;31m";
const GREEN: &str = "\x1b[1;32m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Whether `show` should colour its output: stdout is a terminal and
/// `NO_COLOR` is unset or empty (<https://no-color.org>).
pub fn use_color() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    io::stdout().is_terminal() && !no_color
}

/// Writes the exchange; `width` is the width of each side's column.
pub fn show(row: &ExchangeRow, color: bool, width: usize, out: &mut dyn Write) -> io::Result<()> {
    let paint = |code: &str, s: &str| {
        if color {
            format!("{code}{s}{RESET}")
        } else {
            s.to_string()
        }
    };
    let diffs: Vec<String> = serde_json::from_str(&row.diff).unwrap_or_default();
    writeln!(
        out,
        "exchange {}  {} UTC  route {}  segment {}  served by {}",
        row.id,
        super::period(row.ts_ms, super::By::Hour),
        row.route,
        row.segment,
        row.served_by
    )?;
    let query = row
        .query
        .as_ref()
        .map_or(String::new(), |q| format!("?{q}"));
    writeln!(out, "{} {}{query}", row.method, row.path)?;
    let mut verdict = format!("verdict {}", row.verdict);
    if let Some(s) = row.score {
        verdict.push_str(&format!("  score {s:.3}"));
    }
    if let Some(r) = &row.skip_reason {
        verdict.push_str(&format!("  ({r})"));
    }
    if row.fallback {
        verdict.push_str("  (candidate failed while serving; incumbent answered)");
    }
    let code = if row.verdict == "match" { GREEN } else { RED };
    writeln!(out, "{}", paint(code, &verdict))?;
    if !diffs.is_empty() {
        let shown: Vec<&str> = (diffs.iter())
            .map(|d| if d.is_empty() { "(whole body)" } else { d })
            .collect();
        writeln!(out, "differs at: {}", shown.join(", "))?;
    }
    if let Some(s) = &row.safety {
        writeln!(out, "{}", paint(RED, &format!("safety hit: {s}")))?;
    }
    for line in ai_lines(row) {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "\n{}", paint(DIM, "request"))?;
    if let Some(h) = &row.request_headers {
        writeln!(out, "headers {h}")?;
    }
    for (_, line) in pretty(row.request_body.as_deref()) {
        writeln!(out, "  {line}")?;
    }
    let side = |name: &str, status: Option<u16>, ms: Option<f64>, err: &Option<String>| {
        let mut h = format!(
            "{name} {}",
            status.map_or_else(|| "no response".into(), |s| s.to_string())
        );
        if let Some(ms) = ms {
            h.push_str(&format!(" {ms:.1} ms"));
        }
        if let Some(e) = err {
            h.push_str(&format!(" error: {e}"));
        }
        h
    };
    let left = pretty(row.incumbent_body.as_deref());
    let right = pretty(row.candidate_body.as_deref());
    let head_l = side(
        "INCUMBENT",
        row.incumbent_status,
        row.incumbent_ms,
        &row.incumbent_error,
    );
    let head_r = side(
        "CANDIDATE",
        row.candidate_status,
        row.candidate_ms,
        &row.candidate_error,
    );
    writeln!(out)?;
    writeln!(out, "  {} | {}", fit(&head_l, width), head_r)?;
    writeln!(out, "  {}-+-{}", "-".repeat(width), "-".repeat(width))?;
    for i in 0..left.len().max(right.len()) {
        let cell = |lines: &[(String, String)], code: &str| -> (bool, String) {
            match lines.get(i) {
                None => (false, " ".repeat(width)),
                Some((ptr, text)) => {
                    let hit = differs(ptr, &diffs);
                    let text = fit(text, width);
                    (hit, if hit { paint(code, &text) } else { text })
                }
            }
        };
        let (hl, l) = cell(&left, RED);
        let (hr, r) = cell(&right, GREEN);
        let mark = if hl || hr { '>' } else { ' ' };
        writeln!(out, "{mark} {l} | {}", r.trim_end())?;
    }
    Ok(())
}

/// SPEC §11: each side's time to first token, tokens and cost, and the text
/// stage that decided; nothing for an exchange without them.
fn ai_lines(row: &ExchangeRow) -> Vec<String> {
    let (i, c) = (&row.incumbent_llm, &row.candidate_llm);
    let mut out = Vec::new();
    if *i != Default::default() || *c != Default::default() {
        let side = |f: &crate::reading::Figures| {
            let ms = f
                .ttft_ms
                .map_or_else(|| "–".into(), |v| format!("{v:.1} ms"));
            let tokens = match (f.tokens_in, f.tokens_out) {
                (Some(a), Some(b)) => format!("{a}/{b} tokens"),
                _ => "tokens unknown".into(),
            };
            let cost = f
                .cost
                .map_or_else(|| "cost unknown".into(), |v| format!("${v:.6}"));
            format!("first token {ms}, {tokens}, {cost}")
        };
        out.push(format!("incumbent: {}", side(i)));
        out.push(format!("candidate: {}", side(c)));
    }
    if let Some(d) = &row.decided_by {
        out.push(format!("text decided by: {d}"));
    }
    out
}

/// Whether a line at `ptr` lies at or under one of the differing pointers.
fn differs(ptr: &str, diffs: &[String]) -> bool {
    diffs.iter().any(|d| {
        ptr == d
            || (ptr.starts_with(d.as_str()) && ptr.as_bytes().get(d.len()) == Some(&b'/'))
            || (d.is_empty() && !ptr.is_empty())
    })
}

/// Pads or cuts `s` to exactly `width` characters.
fn fit(s: &str, width: usize) -> String {
    let n = s.chars().count();
    if n <= width {
        format!("{s}{}", " ".repeat(width - n))
    } else {
        let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A body as lines, each with the JSON pointer it shows (pretty-printed JSON),
/// or as text lines with the root pointer.
pub fn pretty(body: Option<&[u8]>) -> Vec<(String, String)> {
    let Some(body) = body else {
        return vec![(String::new(), "(no body)".to_string())];
    };
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let mut out = Vec::new();
            emit(&v, String::new(), 0, String::new(), "", &mut out);
            out
        }
        Err(_) => String::from_utf8_lossy(body)
            .lines()
            .map(|l| (String::new(), l.to_string()))
            .collect(),
    }
}

fn emit(
    v: &Value,
    ptr: String,
    depth: usize,
    key: String,
    comma: &str,
    out: &mut Vec<(String, String)>,
) {
    let pad = "  ".repeat(depth);
    let (open, close, items): (&str, &str, Vec<(String, String, &Value)>) = match v {
        Value::Object(m) if !m.is_empty() => (
            "{",
            "}",
            m.iter()
                .map(|(k, v)| {
                    let p = format!("{ptr}/{}", crate::pointer::escape(k));
                    (p, format!("{}: ", Value::String(k.clone())), v)
                })
                .collect(),
        ),
        Value::Array(a) if !a.is_empty() => (
            "[",
            "]",
            a.iter()
                .enumerate()
                .map(|(i, v)| (format!("{ptr}/{i}"), String::new(), v))
                .collect(),
        ),
        leaf => {
            out.push((ptr, format!("{pad}{key}{leaf}{comma}")));
            return;
        }
    };
    out.push((ptr.clone(), format!("{pad}{key}{open}")));
    let n = items.len();
    for (i, (p, k, v)) in items.into_iter().enumerate() {
        emit(v, p, depth + 1, k, if i + 1 < n { "," } else { "" }, out);
    }
    out.push((ptr, format!("{pad}{close}{comma}")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_lines_carry_their_pointers() {
        let lines = pretty(Some(br#"{"a":{"b":1},"c":[true,"x"]}"#));
        let ptrs: Vec<&str> = lines.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            ptrs,
            ["", "/a", "/a/b", "/a", "/c", "/c/0", "/c/1", "/c", ""]
        );
        assert_eq!(lines[2].1, "    \"b\": 1");
        assert_eq!(lines[6].1, "    \"x\"");
        assert!(differs("/a/b", &["/a".into()]));
        assert!(!differs("/ab", &["/a".into()]));
        assert!(differs("/c/1", &["".into()]));
    }
}
