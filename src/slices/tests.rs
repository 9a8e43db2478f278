//! The search measured on seeded synthetic routes: a planted slice is found
//! and ranked first, a planted two-condition slice likewise, and without a
//! planted slice nothing is reported (the false-discovery control works).
//! `cargo test` runs a fast subset; the full targets (100 runs each, issue
//! 26) run in release with `--ignored`.

use super::search::{Cond, Params, search};
use super::table::{Column, NONE, Table};
use crate::config::slices::Fdr;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Ten attributes of 2 to 50 values, uniform.
const CARDINALITIES: [usize; 10] = [2, 3, 5, 5, 8, 10, 12, 20, 30, 50];

/// What is planted: conditions (column, value code) and the slice's agreement.
#[derive(Clone, Copy)]
enum Plant {
    None,
    /// `a9 = v0`: 2 % of traffic (one of 50 values).
    One,
    /// `a5 = v0 & a3 = v0` (region × plan): 10 % × 20 % = 2 %.
    Two,
}

impl Plant {
    fn conds(self) -> Vec<Cond> {
        let c = |col: u16| Cond { col, code: 1 };
        match self {
            Plant::None => vec![],
            Plant::One => vec![c(9)],
            Plant::Two => vec![c(3), c(5)],
        }
    }
}

/// A route at `base` agreement, `rows` comparisons, with the plant at 0.6.
fn route(rows: usize, seed: u64, plant: Plant, base: f64) -> Table {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut columns: Vec<Column> = CARDINALITIES
        .iter()
        .enumerate()
        .map(|(i, &k)| Column {
            name: format!("a{i}"),
            values: std::iter::once(NONE.to_string())
                .chain((0..k).map(|v| format!("v{v}")))
                .collect(),
            codes: Vec::with_capacity(rows),
        })
        .collect();
    let conds = plant.conds();
    let mut bad = Vec::with_capacity(rows);
    for _ in 0..rows {
        for (c, &k) in columns.iter_mut().zip(&CARDINALITIES) {
            c.codes.push(rng.gen_range(1..=k) as u8);
        }
        let inside = !conds.is_empty()
            && conds
                .iter()
                .all(|c| columns[c.col as usize].codes.last() == Some(&c.code));
        let agree = if inside { 0.6 } else { base };
        bad.push(u8::from(!rng.gen_bool(agree)));
    }
    Table { columns, bad }
}

fn params() -> Params {
    Params {
        max_conditions: 2,
        min_support: 100,
        alpha: 0.05,
        fdr: Fdr::By,
        max_slices: 10,
    }
}

/// Of `runs` seeded routes: (planted slice found first, runs reporting any slice).
fn measure(runs: u64, rows: usize, plant: Plant, p: &Params) -> (u64, u64) {
    let (mut first, mut any) = (0, 0);
    for seed in 0..runs {
        let t = route(rows, 1000 + seed, plant, 0.95);
        let out = search(&t, p, |_| false);
        any += u64::from(!out.found.is_empty());
        first += u64::from(out.found.first().is_some_and(|f| f.conds == plant.conds()));
    }
    (first, any)
}

#[test]
fn a_planted_slice_is_found_first_with_its_numbers() {
    let t = route(100_000, 7, Plant::One, 0.95);
    let out = search(&t, &params(), |_| false);
    let f = &out.found[0];
    assert_eq!(f.conds, Plant::One.conds());
    assert_eq!(out.found.len(), 1, "nothing else: {:?}", out.found);
    assert!((f.agreement.value - 0.6).abs() < 0.05, "{:?}", f.agreement);
    assert!(f.agreement.lo < f.agreement.value && f.agreement.value < f.agreement.hi);
    assert!((f.rest.value - 0.95).abs() < 0.01, "{:?}", f.rest);
    assert!(f.gap.lo > 0.25 && f.p < out.threshold.max(1e-300) * 1.0001 + 1e-300);
    // Its refinements and overlaps were looked at and explained away.
    assert!(out.explained > 0);
    assert!(out.looked_at > 100);
}

#[test]
fn planted_slices_fast_subset() {
    // 3 runs each of 40,000 comparisons (debug builds are slow; the full
    // 100 runs of 100,000 run in release with --ignored).
    let p = params();
    let (one, _) = measure(3, 40_000, Plant::One, &p);
    assert_eq!(one, 3, "one-condition slice ranked first");
    let (two, _) = measure(3, 40_000, Plant::Two, &p);
    assert_eq!(two, 3, "two-condition slice ranked first");
    let (_, any) = measure(3, 40_000, Plant::None, &p);
    assert_eq!(any, 0, "no plant, yet a run reported a slice");
}

#[test]
fn three_conditions_are_searched_and_pruned() {
    // a1 × a2 × a4 = 3 × 5 × 8 = 1/120 of traffic at 0.2 agreement.
    let mut t = route(60_000, 3, Plant::None, 0.97);
    let mut rng = StdRng::seed_from_u64(99);
    for r in 0..t.rows() {
        let inside = [1, 2, 4].iter().all(|&c| t.columns[c].codes[r] == 1);
        if inside {
            t.bad[r] = u8::from(rng.gen_bool(0.8));
        }
    }
    let mut p = params();
    p.max_conditions = 3;
    p.min_support = 50;
    let out = search(&t, &p, |_| false);
    let want: Vec<Cond> = [1, 2, 4]
        .iter()
        .map(|&c| Cond { col: c, code: 1 })
        .collect();
    assert_eq!(
        out.found.first().map(|f| &f.conds),
        Some(&want),
        "{:?}",
        out.found
    );
    // Not every triple of attributes could hold a discovery.
    assert!(
        out.counted < out.looked_at,
        "{} < {}",
        out.counted,
        out.looked_at
    );
}

#[test]
fn a_route_without_mismatches_or_rows_has_no_slice() {
    let mut t = route(5_000, 1, Plant::None, 0.95);
    t.bad.iter_mut().for_each(|b| *b = 0);
    let out = search(&t, &params(), |_| false);
    assert!(out.found.is_empty() && out.threshold == 0.0);
    let out = search(&Table::default(), &params(), |_| false);
    assert!(out.found.is_empty());
}

#[test]
fn a_declared_segment_explains_but_is_not_reported() {
    let t = route(50_000, 5, Plant::One, 0.95);
    let out = search(&t, &params(), |conds| conds.iter().all(|c| c.col == 9));
    assert!(out.found.is_empty(), "{:?}", out.found);
}

/// The targets, 100 seeded runs each (release: about 30 s).
#[test]
#[ignore = "full targets: cargo test --release --lib slices::tests::targets -- --ignored"]
fn targets() {
    let p = params();
    let started = std::time::Instant::now();
    let (one, _) = measure(100, 100_000, Plant::One, &p);
    let (two, _) = measure(100, 100_000, Plant::Two, &p);
    let (_, any) = measure(100, 100_000, Plant::None, &p);
    let bh = Params {
        fdr: Fdr::Bh,
        ..params()
    };
    let (_, any_bh) = measure(100, 100_000, Plant::None, &bh);
    println!(
        "one-condition first: {one}/100; two-condition first: {two}/100; no plant, any slice: {any}/100 (Benjamini-Hochberg: {any_bh}/100) ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    assert!(one >= 95 && two >= 90 && any <= 5 && any_bh <= 5);
}
