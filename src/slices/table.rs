//! A route's comparisons as integer-coded columns: one `u8` code per
//! attribute and comparison, and whether the comparison mismatched.
//!
//! The [`Builder`] interns each value once (a lookup by `&str`, no
//! allocation for a value already seen) and keeps at most [`MAX_TRACKED`]
//! distinct values per attribute; [`Builder::finish`] keeps the
//! `max_values` most frequent and codes the rest `(other)`. Code 0 is
//! `(none)`: the attribute is absent from that request.

use std::collections::HashMap;

/// The value of a request that does not have the attribute.
pub const NONE: &str = "(none)";
/// The value that stands for every value beyond the most frequent ones.
pub const OTHER: &str = "(other)";
/// Distinct values tracked per attribute while reading; later new values
/// count as `(other)` (bounds memory on a high-cardinality attribute).
pub const MAX_TRACKED: usize = 4096;
/// Attributes per route at most (JSON keys and query parameters are found as
/// they come; later new ones are ignored).
pub const MAX_ATTRIBUTES: usize = 64;
/// Longest value kept, in bytes.
pub const MAX_VALUE_BYTES: usize = 64;

const OVERFLOW: u16 = u16::MAX;

/// One attribute: its name, its values (`values[code]`) and a code per comparison.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub values: Vec<String>,
    pub codes: Vec<u8>,
}

/// The coded comparisons of one route.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    /// 1 when the comparison mismatched, else 0 (summed without a branch).
    pub bad: Vec<u8>,
}

impl Table {
    pub fn rows(&self) -> usize {
        self.bad.len()
    }

    pub fn mismatches(&self) -> u64 {
        self.bad.iter().map(|&b| u64::from(b)).sum()
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// An attribute's index in the builder.
pub type AttrId = usize;

struct RawColumn {
    name: String,
    intern: HashMap<Box<str>, u16>,
    /// Raw code `i + 1` is `values[i]`.
    values: Vec<Box<str>>,
    codes: Vec<u16>,
}

/// Collects coded rows; see the module documentation.
#[derive(Default)]
pub struct Builder {
    columns: Vec<RawColumn>,
    /// The codes of the row being read, one per column (0: absent).
    row: Vec<u16>,
    bad: Vec<u8>,
}

impl Builder {
    /// Adds an attribute (absent from the rows read so far), or `None` when
    /// the route already has [`MAX_ATTRIBUTES`].
    pub fn add(&mut self, name: String) -> Option<AttrId> {
        if self.columns.len() >= MAX_ATTRIBUTES {
            return None;
        }
        self.columns.push(RawColumn {
            name,
            intern: HashMap::new(),
            values: Vec::new(),
            codes: vec![0; self.bad.len()],
        });
        self.row.push(0);
        Some(self.columns.len() - 1)
    }

    /// Sets `attr`'s value in the row being read (cut to [`MAX_VALUE_BYTES`]).
    pub fn set(&mut self, attr: AttrId, value: &str) {
        let value = cut(value);
        let col = &mut self.columns[attr];
        let code = match col.intern.get(value) {
            Some(&c) => c,
            None if col.values.len() < MAX_TRACKED => {
                col.values.push(value.into());
                let c = col.values.len() as u16;
                col.intern.insert(value.into(), c);
                c
            }
            None => OVERFLOW,
        };
        self.row[attr] = code;
    }

    /// Ends the row being read.
    pub fn end_row(&mut self, mismatch: bool) {
        for (col, code) in self.columns.iter_mut().zip(self.row.iter_mut()) {
            col.codes.push(*code);
            *code = 0;
        }
        self.bad.push(u8::from(mismatch));
    }

    pub fn rows(&self) -> usize {
        self.bad.len()
    }

    /// Codes each attribute's `max_values` most frequent values `1..=k`,
    /// `(other)` the rest; drops attributes that do not split the rows.
    pub fn finish(self, max_values: usize) -> Table {
        let max_values = max_values.clamp(1, 253);
        let mut columns = Vec::with_capacity(self.columns.len());
        for raw in self.columns {
            let mut counts = vec![0u64; raw.values.len() + 1];
            let mut overflow = 0u64;
            for &c in &raw.codes {
                match c {
                    OVERFLOW => overflow += 1,
                    c => counts[c as usize] += 1,
                }
            }
            let mut order: Vec<usize> = (1..counts.len()).filter(|&i| counts[i] > 0).collect();
            order.sort_by(|&a, &b| {
                counts[b]
                    .cmp(&counts[a])
                    .then_with(|| raw.values[a - 1].cmp(&raw.values[b - 1]))
            });
            let kept = order.len().min(max_values);
            let has_other = overflow > 0 || order.len() > kept;
            let other = (kept + 1) as u8;
            let mut remap = vec![other; counts.len()];
            remap[0] = 0;
            let mut values = vec![NONE.to_string()];
            for (i, &raw_code) in order[..kept].iter().enumerate() {
                remap[raw_code] = (i + 1) as u8;
                values.push(raw.values[raw_code - 1].to_string());
            }
            if has_other {
                values.push(OTHER.to_string());
            }
            let codes: Vec<u8> = raw
                .codes
                .iter()
                .map(|&c| {
                    if c == OVERFLOW {
                        other
                    } else {
                        remap[c as usize]
                    }
                })
                .collect();
            // An attribute with one value for every row splits nothing.
            let distinct = usize::from(counts[0] > 0) + kept + usize::from(has_other);
            if distinct >= 2 {
                columns.push(Column {
                    name: raw.name,
                    values,
                    codes,
                });
            }
        }
        Table {
            columns,
            bad: self.bad,
        }
    }
}

/// `value` cut to [`MAX_VALUE_BYTES`] at a character boundary.
fn cut(value: &str) -> &str {
    if value.len() <= MAX_VALUE_BYTES {
        return value;
    }
    let mut end = MAX_VALUE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_values_are_kept_and_the_rest_is_other() {
        let mut b = Builder::default();
        let a = b.add("a".into()).unwrap();
        for (v, n) in [("x", 5), ("y", 3), ("z", 1)] {
            for _ in 0..n {
                b.set(a, v);
                b.end_row(v == "z");
            }
        }
        b.end_row(false); // absent
        // Added late: absent from the first rows.
        let late = b.add("late".into()).unwrap();
        b.set(late, "q");
        b.end_row(false);
        let t = b.finish(2);
        assert_eq!(t.rows(), 11);
        assert_eq!(t.mismatches(), 1);
        let c = &t.columns[0];
        assert_eq!(c.values, ["(none)", "x", "y", "(other)"]);
        assert_eq!(&c.codes[..], &[1, 1, 1, 1, 1, 2, 2, 2, 3, 0, 0]);
        let l = &t.columns[1];
        assert_eq!(l.values, ["(none)", "q"]);
        assert_eq!(l.codes.iter().filter(|&&c| c == 1).count(), 1);
    }

    #[test]
    fn constant_attributes_are_dropped() {
        let mut b = Builder::default();
        let a = b.add("same".into()).unwrap();
        for _ in 0..3 {
            b.set(a, "v");
            b.end_row(false);
        }
        assert!(b.finish(50).columns.is_empty());
    }

    #[test]
    fn long_values_are_cut_at_a_char_boundary() {
        let long = "é".repeat(40);
        let c = cut(&long);
        assert!(c.len() <= MAX_VALUE_BYTES && long.starts_with(c));
    }
}
