//! The slice search over a coded [`Table`]: count every slice of one and two
//! conditions (and, when asked, three), test each against the rest of the
//! route, control false discoveries over every slice looked at, then keep
//! the slices that are not explained by a simpler or a better one.
//!
//! - **Counting** is integer work on `u8` columns: one pass per attribute
//!   pair into a dense count array (no hashing, no allocation per row).
//! - **The test** is one-sided Fisher exact: does the slice hold more
//!   mismatches than its size predicts? Conditional on the route's totals it
//!   is exact, whatever the agreement, so a route at 99.9 % is tested as
//!   fairly as one at 90 %.
//! - **The family** is every slice with at least `min_support` comparisons
//!   (support does not depend on the verdicts, so the family is fixed before
//!   any outcome is seen); slices of three conditions are counted by the
//!   apriori bound (all three of their pairs have the support), an upper
//!   bound, which only makes the procedure more careful.
//! - **Pruning** as SliceLine does: a slice's children can hold at most its
//!   mismatches, so the smallest p-value any child can reach is known from
//!   the slice's size and mismatches alone; when it is above the largest
//!   threshold the procedure can use, no child is counted.
//! - **Explained slices** are dropped: a refinement that is not itself worse
//!   than the rest of each parent (`country=BR & plan=pro` when all of BR is
//!   bad), and, taking slices best first, one whose comparisons outside the
//!   slices already kept are not worse than the rest (`region=eu` when only
//!   `region=eu & plan=pro` is bad). What is left goes through the step-up
//!   procedure once more on those residual p-values: the many slices that
//!   merely overlap a bad one are true discoveries too, and their number
//!   raises the first threshold enough to let a chance slice through.

use super::stats::{Rate, fisher_worse, gap, max_threshold, step_up};
use super::table::Table;
use crate::config::slices::{Fdr, Slices};

/// How the search runs (from `[routes.slices]`).
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub max_conditions: usize,
    pub min_support: u64,
    pub alpha: f64,
    pub fdr: Fdr,
    pub max_slices: usize,
}

impl From<&Slices> for Params {
    fn from(s: &Slices) -> Params {
        Params {
            max_conditions: s.max_conditions,
            min_support: s.min_support,
            alpha: s.alpha,
            fdr: s.fdr,
            max_slices: s.max_slices,
        }
    }
}

/// `column = value`, both as indexes into the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cond {
    pub col: u16,
    pub code: u8,
}

/// A slice that passed: its conditions (ascending by column) and numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub conds: Vec<Cond>,
    /// Comparisons and mismatches in the slice.
    pub n: u64,
    pub bad: u64,
    /// One-sided Fisher p-value against the rest of the route.
    pub p: f64,
    pub agreement: Rate,
    /// The rest of the route (every comparison outside the slice).
    pub rest: Rate,
    /// `rest − agreement`, with Newcombe's interval; slices are ranked by its
    /// lower bound (a large slice clearly worse before a small one that might be).
    pub gap: Rate,
}

/// What a search found and how much it looked at.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub comparisons: u64,
    pub mismatches: u64,
    /// Slices in the family (at least `min_support` comparisons).
    pub looked_at: u64,
    /// Slices counted one by one (the rest of the family pruned).
    pub counted: u64,
    /// Attribute combinations whose slices were all pruned.
    pub pruned: u64,
    /// The p-value at or below which a slice is a discovery (0: none).
    pub threshold: f64,
    /// Discoveries kept, best first; `declared` ones are not in it.
    pub found: Vec<Found>,
    /// Discoveries dropped as explained by a parent or by a better slice.
    pub explained: u64,
}

/// Counts of slices of one attribute combination, dense over its codes.
struct Cells {
    cols: Vec<usize>,
    n: Vec<u32>,
    bad: Vec<u32>,
}

/// At most this many discoveries go through the explanation stage (each
/// needs a bitmap of the route's comparisons).
const MAX_CANDIDATES: usize = 64;

/// Runs the search. `declared` says whether a slice only restates a
/// declared segment: such a slice may explain others but is not reported.
pub fn search(t: &Table, p: &Params, declared: impl Fn(&[Cond]) -> bool) -> Outcome {
    let total = t.rows() as u64;
    let bad_total = t.mismatches();
    let mut out = Outcome {
        comparisons: total,
        mismatches: bad_total,
        ..Outcome::default()
    };
    if total == 0 || bad_total == 0 || t.columns.is_empty() {
        return out;
    }
    let s = p.min_support;
    let in_family = |n: u32| u64::from(n) >= s && u64::from(n) < total;
    let widths: Vec<usize> = t.columns.iter().map(|c| c.values.len()).collect();

    // Level 1 and 2: every slice counted.
    let mut levels: Vec<Cells> = (0..t.columns.len())
        .map(|a| count(t, &[a], &widths))
        .collect();
    let ncols = t.columns.len();
    let mut pair_at = vec![usize::MAX; ncols * ncols];
    if p.max_conditions >= 2 {
        for a in 0..ncols {
            for b in a + 1..ncols {
                pair_at[a * ncols + b] = levels.len();
                levels.push(count(t, &[a, b], &widths));
            }
        }
    }
    let mut looked_at: u64 = levels
        .iter()
        .map(|c| c.n.iter().filter(|&&n| in_family(n)).count() as u64)
        .sum();
    out.counted = looked_at;

    // Level 3: the family by the apriori bound; counted only where pruning allows.
    let mut triples: Vec<(usize, usize, usize)> = Vec::new();
    if p.max_conditions >= 3 {
        for a in 0..ncols {
            for b in a + 1..ncols {
                for c in b + 1..ncols {
                    let (ab, ac, bc) = (
                        &levels[pair_at[a * ncols + b]],
                        &levels[pair_at[a * ncols + c]],
                        &levels[pair_at[b * ncols + c]],
                    );
                    let (wb, wc) = (widths[b], widths[c]);
                    let mut k = 0u64;
                    for va in 0..widths[a] {
                        for vb in 0..wb {
                            if !in_family(ab.n[va * wb + vb]) {
                                continue;
                            }
                            for vc in 0..wc {
                                k += u64::from(
                                    in_family(ac.n[va * wc + vc]) && in_family(bc.n[vb * wc + vc]),
                                );
                            }
                        }
                    }
                    if k > 0 {
                        triples.push((a, b, c));
                        looked_at += k;
                    }
                }
            }
        }
    }
    out.looked_at = looked_at;
    let cap = max_threshold(p.fdr, looked_at, p.alpha);
    // The smallest p-value a child of a slice of (n, bad) can reach: all of
    // its mismatches in a child as small as the support allows.
    let child_bound = |n: u32, b: u32| -> f64 {
        let (n, b) = (u64::from(n), u64::from(b));
        let size = b.clamp(s, n.max(s));
        fisher_worse(total, bad_total, size, b.min(size), 1.0)
    };
    for (a, b, c) in triples {
        let pairs = [(a, b), (a, c), (b, c)];
        let alive = pairs.iter().any(|&(x, y)| {
            let cells = &levels[pair_at[x * ncols + y]];
            cells
                .n
                .iter()
                .zip(&cells.bad)
                .any(|(&n, &e)| in_family(n) && child_bound(n, e) <= cap)
        });
        if alive {
            let cells = count(t, &[a, b, c], &widths);
            out.counted += cells.n.iter().filter(|&&n| in_family(n)).count() as u64;
            levels.push(cells);
        } else {
            out.pruned += 1;
        }
    }

    // Test every counted slice; keep the p-values that can be discoveries.
    let mut tested: Vec<(f64, usize, usize)> = Vec::new(); // (p, level, cell)
    for (li, cells) in levels.iter().enumerate() {
        for (i, (&n, &e)) in cells.n.iter().zip(&cells.bad).enumerate() {
            if !in_family(n) {
                continue;
            }
            let pv = fisher_worse(total, bad_total, u64::from(n), u64::from(e), cap);
            if pv <= cap {
                tested.push((pv, li, i));
            }
        }
    }
    let mut ps: Vec<f64> = tested.iter().map(|x| x.0).collect();
    let threshold = step_up(&mut ps, looked_at, p.alpha, p.fdr);
    out.threshold = threshold;
    if threshold <= 0.0 {
        return out;
    }
    let lookup = Lookup {
        levels: &levels,
        widths: &widths,
    };

    // A refinement must be worse than the rest of each of its parents.
    let mut cands: Vec<Found> = Vec::new();
    for &(pv, li, i) in tested.iter().filter(|x| x.0 <= threshold) {
        let cells = &levels[li];
        let conds = decode(&cells.cols, i, &widths);
        let (n, e) = (u64::from(cells.n[i]), u64::from(cells.bad[i]));
        let specific = conds.len() < 2
            || (0..conds.len()).all(|drop| {
                let parent: Vec<Cond> = conds
                    .iter()
                    .enumerate()
                    .filter_map(|(j, c)| (j != drop).then_some(*c))
                    .collect();
                match lookup.counts(&parent) {
                    Some((pn, pe)) => fisher_worse(pn, pe, n, e, threshold) <= threshold,
                    None => true,
                }
            });
        if !specific {
            out.explained += 1;
            continue;
        }
        cands.push(found(conds, n, e, pv, total, bad_total));
    }
    cands.sort_by(|a, b| {
        b.gap
            .lo
            .total_cmp(&a.gap.lo)
            .then(a.conds.len().cmp(&b.conds.len()))
            .then_with(|| a.conds.cmp(&b.conds))
    });
    if cands.len() > MAX_CANDIDATES {
        out.explained += (cands.len() - MAX_CANDIDATES) as u64;
        cands.truncate(MAX_CANDIDATES);
    }

    // Best first: keep a slice only if what it adds to the kept ones is worse
    // than everything outside them.
    let maps = Bitmaps::of(t, &cands);
    let words = maps.bad.len();
    let mut kept = vec![0u64; words];
    let mut kept_slices: Vec<(f64, Found)> = Vec::new();
    for (k, cand) in cands.into_iter().enumerate() {
        let slice = &maps.slices[k];
        let (mut new_n, mut new_bad, mut union_n, mut union_bad) = (0u64, 0u64, 0u64, 0u64);
        for w in 0..words {
            let fresh = slice[w] & !kept[w];
            let union = slice[w] | kept[w];
            new_n += u64::from(fresh.count_ones());
            new_bad += u64::from((fresh & maps.bad[w]).count_ones());
            union_n += u64::from(union.count_ones());
            union_bad += u64::from((union & maps.bad[w]).count_ones());
        }
        let pool = new_n + (total - union_n);
        let pool_bad = new_bad + (bad_total - union_bad);
        let residual = fisher_worse(pool, pool_bad, new_n, new_bad, threshold);
        if residual > threshold {
            out.explained += 1;
            continue;
        }
        for w in 0..words {
            kept[w] |= slice[w];
        }
        kept_slices.push((residual, cand));
    }
    // The step-up again, over what the slices kept add: the slices that only
    // overlap a true one are all discoveries too, and their number raised
    // the first threshold; a slice shown must pass as if they were not there.
    let mut residuals: Vec<f64> = kept_slices.iter().map(|k| k.0).collect();
    let shown = step_up(&mut residuals, looked_at, p.alpha, p.fdr);
    for (residual, cand) in kept_slices {
        if residual > shown {
            out.explained += 1;
        } else if !declared(&cand.conds) && out.found.len() < p.max_slices {
            out.found.push(cand);
        }
    }
    out
}

fn found(conds: Vec<Cond>, n: u64, e: u64, p: f64, total: u64, bad_total: u64) -> Found {
    let agreement = Rate::of(n - e, n);
    let (rn, re) = (total - n, bad_total - e);
    let rest = Rate::of(rn - re, rn);
    Found {
        conds,
        n,
        bad: e,
        p,
        agreement,
        rest,
        gap: gap(rest, agreement),
    }
}

/// Counts the slices of attributes `cols` in one pass over the table.
fn count(t: &Table, cols: &[usize], widths: &[usize]) -> Cells {
    let size: usize = cols.iter().map(|&c| widths[c]).product();
    let mut n = vec![0u32; size];
    let mut bad = vec![0u32; size];
    match *cols {
        [a] => {
            for (&x, &e) in t.columns[a].codes.iter().zip(&t.bad) {
                n[x as usize] += 1;
                bad[x as usize] += u32::from(e);
            }
        }
        [a, b] => {
            let wb = widths[b];
            let (ca, cb) = (&t.columns[a].codes, &t.columns[b].codes);
            for ((&x, &y), &e) in ca.iter().zip(cb).zip(&t.bad) {
                let i = x as usize * wb + y as usize;
                n[i] += 1;
                bad[i] += u32::from(e);
            }
        }
        [a, b, c] => {
            let (wb, wc) = (widths[b], widths[c]);
            let (ca, cb, cc) = (
                &t.columns[a].codes,
                &t.columns[b].codes,
                &t.columns[c].codes,
            );
            for (((&x, &y), &z), &e) in ca.iter().zip(cb).zip(cc).zip(&t.bad) {
                let i = (x as usize * wb + y as usize) * wc + z as usize;
                n[i] += 1;
                bad[i] += u32::from(e);
            }
        }
        _ => {}
    }
    Cells {
        cols: cols.to_vec(),
        n,
        bad,
    }
}

/// The conditions of cell `i` of a dense array over `cols`.
fn decode(cols: &[usize], mut i: usize, widths: &[usize]) -> Vec<Cond> {
    let mut conds = vec![Cond { col: 0, code: 0 }; cols.len()];
    for (k, &c) in cols.iter().enumerate().rev() {
        conds[k] = Cond {
            col: c as u16,
            code: (i % widths[c]) as u8,
        };
        i /= widths[c];
    }
    conds
}

/// Finds the counts of any counted slice by its conditions.
struct Lookup<'a> {
    levels: &'a [Cells],
    widths: &'a [usize],
}

impl Lookup<'_> {
    fn counts(&self, conds: &[Cond]) -> Option<(u64, u64)> {
        let cells = self.levels.iter().find(|c| {
            c.cols.len() == conds.len()
                && c.cols.iter().zip(conds).all(|(&a, b)| a == b.col as usize)
        })?;
        let mut i = 0usize;
        for c in conds {
            i = i * self.widths[c.col as usize] + c.code as usize;
        }
        Some((u64::from(cells.n[i]), u64::from(cells.bad[i])))
    }
}

/// One bit per comparison: each candidate's rows, and the mismatches.
struct Bitmaps {
    slices: Vec<Vec<u64>>,
    bad: Vec<u64>,
}

impl Bitmaps {
    fn of(t: &Table, cands: &[Found]) -> Bitmaps {
        let words = t.rows().div_ceil(64);
        let mut bad = vec![0u64; words];
        for (r, &e) in t.bad.iter().enumerate() {
            bad[r / 64] |= u64::from(e) << (r % 64);
        }
        let slices = cands
            .iter()
            .map(|cand| {
                let mut bits = vec![u64::MAX; words];
                for c in &cand.conds {
                    let codes = &t.columns[c.col as usize].codes;
                    for (w, chunk) in codes.chunks(64).enumerate() {
                        let mut m = 0u64;
                        for (j, &x) in chunk.iter().enumerate() {
                            m |= u64::from(x == c.code) << j;
                        }
                        bits[w] &= m;
                    }
                }
                bits
            })
            .collect();
        Bitmaps { slices, bad }
    }
}
