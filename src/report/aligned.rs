//! Plain-text tables whose columns line up whatever their values' lengths:
//! the report, `status`, `audit` and `approvals list` all print through here.
//!
//! Widths are counted in characters (what a terminal shows for `–` or `→`).

use std::io::{self, Write};

/// Writes `header` and `rows`, two spaces between columns; the columns whose
/// `right` flag is set (numbers) align right, the others left. Trailing
/// spaces are cut.
pub fn write(
    out: &mut dyn Write,
    header: &[String],
    rows: &[Vec<String>],
    right: &[bool],
    indent: &str,
) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let n = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(n),
                None => widths.push(n),
            }
        }
    }
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let mut line = String::from(indent);
        for (i, (cell, &w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            if right.get(i).copied().unwrap_or(false) {
                line.push_str(&format!("{cell:>w$}"));
            } else {
                line.push_str(&format!("{cell:<w$}"));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up_on_long_values() {
        let row = |cells: &[&str]| -> Vec<String> { cells.iter().map(|c| c.to_string()).collect() };
        let header = row(&["ROUTE", "SEGMENT", "N"]);
        let rows = [
            row(&["a", "enterprise-customers-emea", "7"]),
            row(&["a-much-longer-route-name", "–", "1234"]),
        ];
        let mut out = Vec::new();
        super::write(&mut out, &header, &rows, &[false, false, true], "  ").unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let col = |l: &str, s: &str| l.find(s).map(|b| l[..b].chars().count());
        assert_eq!(col(lines[0], "SEGMENT"), col(lines[1], "enterprise"));
        assert_eq!(col(lines[0], "SEGMENT"), col(lines[2], "–"));
        // Numbers align right: their last characters share a column.
        let end = |l: &str| l.chars().count();
        assert_eq!(end(lines[1]), end(lines[2]));
        assert_eq!(end(lines[0]), end(lines[2]));
        assert!(lines.iter().all(|l| l.starts_with("  ")));
    }
}
