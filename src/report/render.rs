//! The plain-text report table: one aligned line per route and segment.
//!
//! Only formatting happens here; the numbers come from [`super::Line`].

use super::Line;
use std::io::{self, Write};

const HEADER: [&str; 9] = [
    "ROUTE",
    "SEGMENT",
    "SAMPLES",
    "AGREEMENT [95% CI]",
    "CAND ERR",
    "INC P50",
    "INC P99",
    "CAND P50",
    "CAND P99",
];

/// Columns after the first two are numbers and align right.
const LEFT_ALIGNED: usize = 2;

/// Writes the table; an empty report says so in one line.
pub fn table(lines: &[Line], out: &mut dyn Write) -> io::Result<()> {
    if lines.is_empty() {
        return writeln!(out, "No exchanges recorded.");
    }
    let rows: Vec<[String; 9]> = lines.iter().map(cells).collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    write_row(out, &HEADER.map(String::from), &widths)?;
    for row in &rows {
        write_row(out, row, &widths)?;
    }
    Ok(())
}

fn write_row(out: &mut dyn Write, row: &[String; 9], widths: &[usize; 9]) -> io::Result<()> {
    let mut line = String::new();
    for (i, (cell, &w)) in row.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        // `{:>w$}` pads by chars, which is what a terminal shows for the
        // en dash in the interval.
        if i < LEFT_ALIGNED {
            line.push_str(&format!("{cell:<w$}"));
        } else {
            line.push_str(&format!("{cell:>w$}"));
        }
    }
    writeln!(out, "{}", line.trim_end())
}

fn cells(l: &Line) -> [String; 9] {
    let agreement = match l.agreement {
        Some((a, lo, hi)) => format!("{:.1}% [{:.1}–{:.1}]", a * 100.0, lo * 100.0, hi * 100.0),
        None => "–".to_string(),
    };
    [
        l.route.clone(),
        l.segment.clone(),
        l.samples.to_string(),
        agreement,
        l.candidate_error_rate
            .map_or_else(|| "–".to_string(), |r| format!("{:.1}%", r * 100.0)),
        ms(l.incumbent_p50),
        ms(l.incumbent_p99),
        ms(l.candidate_p50),
        ms(l.candidate_p99),
    ]
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.1} ms"))
}
