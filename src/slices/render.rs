//! Writes slices found: an aligned table (also the report's text section),
//! JSON, Markdown, and the report's HTML section (a bar and interval per
//! slice beside the rest of the route). Only formatting happens here.

use super::{RouteSlices, Slice, stats::Rate};
use crate::html::esc;
use std::io::{self, Write};

/// Output formats of `understudy slices`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Markdown,
}

pub fn write(
    routes: &[RouteSlices],
    format: Format,
    out: &mut dyn Write,
) -> Result<(), super::Error> {
    match format {
        Format::Table => table(routes, out)?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, routes)?;
            writeln!(out)?;
        }
        Format::Markdown => markdown(routes, out)?,
    }
    Ok(())
}

/// `60.1% [57.9–62.3]`.
pub fn rate(r: &Rate) -> String {
    format!(
        "{:.1}% [{:.1}–{:.1}]",
        r.value * 100.0,
        r.lo * 100.0,
        r.hi * 100.0
    )
}

/// `34.9 pts [32.6–37.2]`: percentage points.
fn points(r: &Rate) -> String {
    format!(
        "{:.1} pts [{:.1}–{:.1}]",
        r.value * 100.0,
        r.lo * 100.0,
        r.hi * 100.0
    )
}

/// `1.2e-37`.
fn p(x: f64) -> String {
    if x == 0.0 {
        "<1e-300".to_string()
    } else {
        format!("{x:.1e}")
    }
}

/// A 20-character bar of an agreement.
fn bar(r: &Rate) -> String {
    let filled = (r.value * 20.0).round().clamp(0.0, 20.0) as usize;
    format!("{}{}", "█".repeat(filled), "·".repeat(20 - filled))
}

/// One line about the search over a route.
pub fn summary(r: &RouteSlices) -> String {
    let found = match r.slices.len() {
        0 => "no slice significantly worse than the rest".to_string(),
        1 => "1 slice significantly worse than the rest".to_string(),
        n => format!("{n} slices significantly worse than the rest"),
    };
    format!(
        "route {}: {} comparisons, agreement {}; {} attributes, {} slices of up to {} conditions with ≥ {} comparisons tested ({}, FDR {}): {found}",
        r.route,
        r.comparisons,
        rate(&r.agreement),
        r.attributes.len(),
        r.looked_at,
        r.max_conditions,
        r.min_support,
        r.fdr,
        r.alpha,
    )
}

pub fn table(routes: &[RouteSlices], out: &mut dyn Write) -> io::Result<()> {
    if routes.is_empty() {
        return writeln!(out, "No decided comparisons to look at.");
    }
    for r in routes {
        writeln!(out, "{}", summary(r))?;
        if r.slices.is_empty() {
            continue;
        }
        let rows: Vec<[String; 6]> = (r.slices.iter().enumerate())
            .map(|(i, s)| {
                [
                    format!("{}", i + 1),
                    s.label.clone(),
                    s.comparisons.to_string(),
                    format!("{} {}", bar(&s.agreement), rate(&s.agreement)),
                    rate(&s.rest),
                    points(&s.gap),
                ]
            })
            .collect();
        let header =
            ["#", "SLICE", "N", "AGREEMENT [95% CI]", "REST", "LOWER BY"].map(String::from);
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from(" ");
            for (i, (c, &w)) in cells.iter().zip(&widths).enumerate() {
                s.push_str("  ");
                if i == 1 || i == 3 {
                    s.push_str(&format!("{c:<w$}"));
                } else {
                    s.push_str(&format!("{c:>w$}"));
                }
            }
            s.trim_end().to_string()
        };
        writeln!(out, "{}", line(&header))?;
        for (row, s) in rows.iter().zip(&r.slices) {
            writeln!(out, "{}", line(row))?;
            writeln!(out, "        p = {}", p(s.p_value))?;
            for d in &s.declare {
                writeln!(out, "        declare it: {d}")?;
            }
        }
    }
    Ok(())
}

fn md(s: &str) -> String {
    s.replace('|', "\\|")
}

pub fn markdown(routes: &[RouteSlices], out: &mut dyn Write) -> io::Result<()> {
    if routes.is_empty() {
        return writeln!(out, "No decided comparisons to look at.");
    }
    for r in routes {
        writeln!(out, "### {}\n\n{}\n", md(&r.route), md(&summary(r)))?;
        if r.slices.is_empty() {
            continue;
        }
        writeln!(
            out,
            "| # | slice | n | agreement [95% CI] | rest | lower by | p | declare it |"
        )?;
        writeln!(out, "|---|---|---:|---:|---:|---:|---:|---|")?;
        for (i, s) in r.slices.iter().enumerate() {
            let declare: Vec<String> = s.declare.iter().map(|d| format!("`{}`", md(d))).collect();
            writeln!(
                out,
                "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
                i + 1,
                md(&s.label),
                s.comparisons,
                rate(&s.agreement),
                rate(&s.rest),
                points(&s.gap),
                p(s.p_value),
                declare.join("<br>")
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// The report's HTML section: per slice, its agreement and the rest's as
/// bars with their intervals drawn as whiskers (inline SVG).
pub fn html(routes: &[RouteSlices], out: &mut dyn Write) -> io::Result<()> {
    if routes.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "<h2>Slices</h2><p class=\"muted\">Groups of requests nobody declared as a segment whose agreement is clearly lower than the rest of the route: every combination of up to a few request attributes was tested, with the false discoveries over all of them kept below the stated rate.</p>"
    )?;
    for r in routes {
        writeln!(out, "<p>{}</p>", esc(&summary(r)))?;
        if r.slices.is_empty() {
            continue;
        }
        writeln!(
            out,
            "<table class=\"slices\"><tr><th>#</th><th>slice</th><th>comparisons</th><th>agreement, slice (orange) and rest of the route (green)</th><th>lower by</th><th>declare it</th></tr>"
        )?;
        for (i, s) in r.slices.iter().enumerate() {
            let declare: Vec<String> = s
                .declare
                .iter()
                .map(|d| format!("<code>{}</code>", esc(d)))
                .collect();
            writeln!(
                out,
                "<tr class=\"slice\"><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}<br>{} · rest {}</td><td>{}</td><td>{}</td></tr>",
                i + 1,
                esc(&s.label),
                s.comparisons,
                svg_bars(s),
                esc(&rate(&s.agreement)),
                esc(&rate(&s.rest)),
                esc(&points(&s.gap)),
                declare.join("<br>")
            )?;
        }
        writeln!(out, "</table>")?;
    }
    Ok(())
}

/// Two horizontal bars (slice, rest) on a 0–100 % scale with whiskers.
fn svg_bars(s: &Slice) -> String {
    const W: f64 = 300.0;
    let one = |y: f64, r: &Rate, color: &str| {
        format!(
            "<rect x=\"0\" y=\"{y}\" width=\"{:.1}\" height=\"10\" fill=\"{color}\"/><line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"#222\"/>",
            r.value * W,
            r.lo * W,
            r.hi * W,
            y + 5.0,
            y + 5.0
        )
    };
    format!(
        "<svg width=\"{W}\" height=\"26\" role=\"img\" aria-label=\"slice {:.1}%, rest {:.1}%\">{}{}</svg>",
        s.agreement.value * 100.0,
        s.rest.value * 100.0,
        one(1.0, &s.agreement, "#D55E00"),
        one(14.0, &s.rest, "#009E73"),
    )
}
