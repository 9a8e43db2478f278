//! The structural walk over two JSON documents of either kind ([`Doc`]): the
//! differing pointers under `ignore`, `only`, noise, number tolerances and
//! unordered arrays.
//!
//! The walk keeps the current path as a stack of borrowed segments and only
//! renders a pointer string when it records a difference. An object's
//! members are sorted by key onto one stack shared by every level (the last
//! of equal keys kept): members are visited in key order whatever the
//! document order, as in `serde_json::Map`, so which [`MAX_DIFFS`] pointers
//! are kept and how much of the unordered-array budget a probe spends never
//! depend on how a body was spelt; and no object allocates. Two small
//! objects with the same keys in the same order (one serializer's output)
//! are sorted together, once. Which ignored pointers can still apply is
//! carried down the path ([`Reach`]), so a step checks one token of each.

use super::doc::{Doc, View};
use super::{MAX_DIFFS, MAX_UNORDERED_WORK};
use crate::config::JsonCompare;
use crate::pointer::{self, Pointer, Token};
use serde_json::Number;
use std::cell::Cell;
use std::cmp::Ordering;
use std::fmt::Write as _;
use std::ops::ControlFlow;

/// One step of a concrete path: an object key (borrowed from a document) or an
/// array index (kept as a number, so no string is built per element).
#[derive(Debug, Clone, Copy)]
pub(super) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// What the rules make of the path the walk is at, carried down so that each
/// step checks only what can still change.
#[derive(Debug, Clone, Copy)]
struct Reach {
    /// An `only` pointer covers the path: its whole subtree is in.
    covered: bool,
    /// The ignored pointers (bit `i`: the `i`-th of `ignore` then `noise`)
    /// that touch the path and are longer than it: only these can cover a
    /// path below. Unused when there are more than 64 ([`Walk::tracked`]).
    live: u64,
}

/// The comparison rules, borrowed from the config for one walk.
pub(super) struct Walk<'s> {
    ignore: &'s [Pointer],
    noise: &'s [Pointer],
    only: &'s [Pointer],
    tolerance: f64,
    abs_tolerance: f64,
    unordered_arrays: bool,
    /// Whether [`Reach::live`] tracks the ignored pointers (at most 64);
    /// otherwise each path is checked against all of them.
    tracked: bool,
    /// What is left of [`MAX_UNORDERED_WORK`]: one per value a probe visits.
    work: Cell<u64>,
    /// The first array compared in order because `work` ran out.
    ordered_from: Cell<Option<String>>,
}

/// Where differences go: collected (up to [`MAX_DIFFS`]), or, for a probe,
/// only noticed (unordered-array matching wants a yes or no).
struct Sink {
    probe: bool,
    diffs: Vec<String>,
    capped: bool,
}

/// Where the walk is: the two documents, the concrete path, and the sorted
/// members of the objects being compared, the innermost last.
struct Trail<'a, D: Doc> {
    /// The incumbent's document (`a`'s nodes) and the candidate's (`b`'s).
    docs: (&'a D, &'a D),
    path: Vec<Seg<'a>>,
    members: Vec<(&'a str, &'a D::Node)>,
}

impl Sink {
    fn collect() -> Sink {
        Sink {
            probe: false,
            diffs: Vec::new(),
            capped: false,
        }
    }

    fn probe() -> Sink {
        Sink {
            probe: true,
            ..Sink::collect()
        }
    }

    /// Records a difference at `path`; `Break` when the walk should stop.
    fn record(&mut self, path: &[Seg<'_>]) -> ControlFlow<()> {
        if self.probe {
            return ControlFlow::Break(());
        }
        if self.diffs.len() == MAX_DIFFS {
            self.capped = true;
            return ControlFlow::Break(());
        }
        self.diffs.push(render(path));
        ControlFlow::Continue(())
    }
}

/// Objects of at most this many members with the same keys in the same
/// order on both sides are sorted together (by insertion, so kept small).
const SAME_KEYS_MAX: usize = 16;

impl<'a, D: Doc> Trail<'a, D> {
    /// Pushes the members of `node` (of `doc`) sorted by key, one per key
    /// (the last given: the sort is stable), and returns where they end.
    fn push_members(&mut self, doc: &'a D, node: &'a D::Node) -> usize {
        let start = self.members.len();
        doc.members(node, &mut self.members);
        self.sort_members(start)
    }

    /// Sorts the members from `start` on by key, keeps one per key (the
    /// last given: the sort is stable), and returns where they end.
    fn sort_members(&mut self, start: usize) -> usize {
        self.members[start..].sort_by(|x, y| key_order(x.0, y.0));
        let Some(first) =
            (start + 1..self.members.len()).find(|&i| self.members[i - 1].0 == self.members[i].0)
        else {
            return self.members.len();
        };
        let mut kept = first - 1;
        for i in first - 1..self.members.len() {
            let next = self.members.get(i + 1);
            if next.is_some_and(|next| next.0 == self.members[i].0) {
                continue;
            }
            self.members[kept] = self.members[i];
            kept += 1;
        }
        self.members.truncate(kept);
        kept
    }

    /// The members of `a` and `b` as [`push_members`](Self::push_members)
    /// pushes them, one object after the other; returns where `a`'s end and
    /// `b`'s end. When both have the same keys in the same order, none twice
    /// (one serializer's output), they are sorted together, one sort for
    /// both, and `true` says so: then each of `b`'s members sits as far from
    /// the middle as its namesake of `a` from the start.
    fn push_both(&mut self, a: &'a D::Node, b: &'a D::Node) -> (usize, usize, bool) {
        let (da, db) = self.docs;
        let start = self.members.len();
        da.members(a, &mut self.members);
        let mid = self.members.len();
        let n = mid - start;
        if n <= SAME_KEYS_MAX {
            db.members(b, &mut self.members);
            if self.sort_same_keys(start, n) {
                return (mid, self.members.len(), true);
            }
            self.members.truncate(mid);
        }
        // `a`'s members are in document order, or already stably sorted.
        let mid = self.sort_members(start);
        let end = self.push_members(db, b);
        (mid, end, false)
    }

    /// Whether the `n` members from `start` and the members after them have
    /// the same keys in the same order, none twice; if so, sorts both lists
    /// by key together (stably, by insertion: `n` is small).
    fn sort_same_keys(&mut self, start: usize, n: usize) -> bool {
        let (x, y) = self.members[start..].split_at_mut(n);
        if x.len() != y.len() || x.iter().zip(y.iter()).any(|(p, q)| p.0 != q.0) {
            return false;
        }
        for i in 1..n {
            let mut j = i;
            while j > 0 && key_order(x[j - 1].0, x[j].0) == Ordering::Greater {
                x.swap(j - 1, j);
                y.swap(j - 1, j);
                j -= 1;
            }
        }
        x.windows(2).all(|w| w[0].0 != w[1].0)
    }
}

// === impl Walk ===

impl<'s> Walk<'s> {
    /// `spec`'s rules, with `noise` ignored like `spec.ignore`.
    pub(super) fn new(spec: &'s JsonCompare, noise: &'s [Pointer]) -> Walk<'s> {
        Walk {
            ignore: &spec.ignore,
            noise,
            only: &spec.only,
            tolerance: spec.tolerance,
            abs_tolerance: spec.abs_tolerance,
            unordered_arrays: spec.unordered_arrays,
            tracked: spec.ignore.len() + noise.len() <= 64,
            work: Cell::new(MAX_UNORDERED_WORK),
            ordered_from: Cell::new(None),
        }
    }

    /// No ignore, no tolerance, ordered arrays.
    pub(super) fn plain() -> Walk<'static> {
        Walk {
            ignore: &[],
            noise: &[],
            only: &[],
            tolerance: 0.0,
            abs_tolerance: 0.0,
            unordered_arrays: false,
            tracked: true,
            work: Cell::new(0),
            ordered_from: Cell::new(None),
        }
    }

    /// The first array compared in order because the unordered budget ran out.
    pub(super) fn ordered_from(&self) -> Option<String> {
        self.ordered_from.take()
    }

    /// The sorted, deduplicated pointers where `a` and `b` differ, both found
    /// at `path`, and whether the list was capped.
    pub(super) fn diffs<'a, D: Doc>(
        &self,
        a: &'a D,
        b: &'a D,
        path: Vec<Seg<'a>>,
    ) -> (Vec<String>, bool) {
        let reach = self.start(&path);
        let mut trail = Trail {
            docs: (a, b),
            path,
            members: Vec::with_capacity(32),
        };
        let mut sink = Sink::collect();
        // Break only means "stop collecting"; what was collected stands.
        if let Some(reach) = reach {
            let _stopped = self.visit(a.root(), b.root(), &mut trail, reach, &mut sink);
        }
        let Sink {
            mut diffs, capped, ..
        } = sink;
        diffs.sort_unstable();
        diffs.dedup();
        (diffs, capped)
    }

    /// The ignored pointers: `ignore`, then `noise`.
    fn ignored(&self) -> impl Iterator<Item = &'s Pointer> {
        self.ignore.iter().chain(self.noise)
    }

    /// [`scope`](Self::scope) for the path a walk starts at, checked whole.
    fn start(&self, path: &[Seg<'_>]) -> Option<Reach> {
        if self.ignored().any(|p| covers(p, path)) {
            return None;
        }
        let mut live = 0;
        if self.tracked {
            for (i, p) in self.ignored().enumerate() {
                if p.tokens().len() > path.len() && touches(p, path) {
                    live |= 1 << i;
                }
            }
        }
        // With `only`, the start may be outside every listed pointer.
        let covered = self.only.is_empty();
        self.only_scope(path, Reach { covered, live })
    }

    /// Whether `path` takes part in the comparison, given what its parent's
    /// path did (`parent`): `None` when it is ignored (or noise) or outside
    /// every `only` pointer; otherwise whether an `only` pointer covers it
    /// (then its whole subtree is in, and `only` need not be checked again
    /// below it), and which ignored pointers can still cover a path below.
    fn scope(&self, path: &[Seg<'_>], parent: Reach) -> Option<Reach> {
        let live = if self.tracked {
            self.step(path, parent.live)?
        } else if self.ignored().any(|p| covers(p, path)) {
            return None;
        } else {
            0
        };
        if parent.covered {
            // The usual case: no `only`, or inside an `only` pointer.
            return Some(Reach {
                covered: true,
                live,
            });
        }
        self.only_scope(
            path,
            Reach {
                covered: false,
                live,
            },
        )
    }

    /// `only`'s part of [`scope`](Self::scope).
    fn only_scope(&self, path: &[Seg<'_>], reach: Reach) -> Option<Reach> {
        if reach.covered || self.only.iter().any(|p| covers(p, path)) {
            return Some(Reach {
                covered: true,
                ..reach
            });
        }
        self.only.iter().any(|p| touches(p, path)).then_some(Reach {
            covered: false,
            ..reach
        })
    }

    /// The live ignored pointers at `path`, given `live`, those at its
    /// parent's path: `None` when one of them covers `path`. (An ignored
    /// pointer that covers `path` touches its parent's and is longer, or it
    /// would have covered the parent, which the walk never enters.)
    fn step(&self, path: &[Seg<'_>], live: u64) -> Option<u64> {
        let Some((seg, parent)) = path.split_last() else {
            return Some(live);
        };
        let depth = parent.len();
        let (mut next, mut bits) = (live, live);
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let p = (self.ignore.get(i)).or_else(|| self.noise.get(i - self.ignore.len()));
            let tokens = p.map_or(&[][..], Pointer::tokens);
            if tokens.get(depth).is_some_and(|t| token_matches(t, seg)) {
                if tokens.len() == depth + 1 {
                    return None;
                }
            } else {
                next &= !(1 << i);
            }
        }
        Some(next)
    }

    /// The values at the trail's path, whose parent's path `parent` reaches.
    fn node<'a, D: Doc>(
        &self,
        a: &'a D::Node,
        b: &'a D::Node,
        trail: &mut Trail<'a, D>,
        parent: Reach,
        sink: &mut Sink,
    ) -> ControlFlow<()> {
        match self.scope(&trail.path, parent) {
            Some(reach) => self.visit(a, b, trail, reach, sink),
            None => ControlFlow::Continue(()),
        }
    }

    /// The values at the trail's path, which takes part as `reach` says.
    fn visit<'a, D: Doc>(
        &self,
        a: &'a D::Node,
        b: &'a D::Node,
        trail: &mut Trail<'a, D>,
        reach: Reach,
        sink: &mut Sink,
    ) -> ControlFlow<()> {
        if sink.probe {
            self.work.set(self.work.get().saturating_sub(1));
        }
        let (da, db) = trail.docs;
        match (da.view(a), db.view(b)) {
            (View::Object, View::Object) => {
                let start = trail.members.len();
                let flow = self.object(a, b, trail, reach, sink);
                trail.members.truncate(start);
                flow
            }
            (View::Array(x), View::Array(y)) if self.unordered_arrays => {
                match self.unordered(x, y, trail, reach, sink) {
                    Some(flow) => flow,
                    None => self.ordered(x, y, trail, reach, sink),
                }
            }
            (View::Array(x), View::Array(y)) => self.ordered(x, y, trail, reach, sink),
            (View::Number(x), View::Number(y)) if self.numbers_equal(&x, &y) => {
                ControlFlow::Continue(())
            }
            (View::Null, View::Null) => ControlFlow::Continue(()),
            (View::Bool(x), View::Bool(y)) if x == y => ControlFlow::Continue(()),
            (View::Str(x), View::Str(y)) if x == y => ControlFlow::Continue(()),
            // Type differences and different scalars.
            _ => sink.record(&trail.path),
        }
    }

    /// Two objects member by member: the incumbent's keys first (in key
    /// order), then the keys only the candidate has. Leaves the members it
    /// pushed on the trail (the caller truncates).
    fn object<'a, D: Doc>(
        &self,
        a: &'a D::Node,
        b: &'a D::Node,
        trail: &mut Trail<'a, D>,
        reach: Reach,
        sink: &mut Sink,
    ) -> ControlFlow<()> {
        let start = trail.members.len();
        let (mid, end, same_keys) = trail.push_both(a, b);
        if same_keys {
            // The general case below would visit the same keys in the same
            // order, each found on both sides.
            for i in start..mid {
                let ((key, va), vb) = (trail.members[i], trail.members[i - start + mid].1);
                trail.path.push(Seg::Key(key));
                let flow = self.node(va, vb, trail, reach, sink);
                trail.path.pop();
                flow?;
            }
            return ControlFlow::Continue(());
        }
        // Both lists are sorted: one pass over each finds the common keys.
        let mut common = 0;
        let mut j = mid;
        for i in start..mid {
            let (key, va) = trail.members[i];
            let mut found = None;
            while j < end {
                match key_order(trail.members[j].0, key) {
                    Ordering::Less => j += 1,
                    Ordering::Equal => {
                        found = Some(trail.members[j].1);
                        break;
                    }
                    Ordering::Greater => break,
                }
            }
            trail.path.push(Seg::Key(key));
            let flow = match found {
                Some(vb) => {
                    common += 1;
                    self.node(va, vb, trail, reach, sink)
                }
                None => self.missing(&trail.path, reach, sink),
            };
            trail.path.pop();
            flow?;
        }
        if common == end - mid {
            // Every key of `b`'s is also `a`'s.
            return ControlFlow::Continue(());
        }
        let mut i = start;
        for j in mid..end {
            let key = trail.members[j].0;
            let mut order = Ordering::Greater;
            while i < mid {
                order = key_order(trail.members[i].0, key);
                if order != Ordering::Less {
                    break;
                }
                i += 1;
            }
            if order == Ordering::Equal {
                continue;
            }
            trail.path.push(Seg::Key(key));
            let flow = self.missing(&trail.path, reach, sink);
            trail.path.pop();
            flow?;
        }
        ControlFlow::Continue(())
    }

    /// A value present on one side only, at `path`.
    fn missing(&self, path: &[Seg<'_>], reach: Reach, sink: &mut Sink) -> ControlFlow<()> {
        match self.scope(path, reach) {
            Some(_) => sink.record(path),
            None => ControlFlow::Continue(()),
        }
    }

    /// Arrays element by element.
    fn ordered<'a, D: Doc>(
        &self,
        x: &'a [D::Node],
        y: &'a [D::Node],
        trail: &mut Trail<'a, D>,
        reach: Reach,
        sink: &mut Sink,
    ) -> ControlFlow<()> {
        for i in 0..x.len().max(y.len()) {
            trail.path.push(Seg::Index(i));
            let flow = match (x.get(i), y.get(i)) {
                (Some(va), Some(vb)) => self.node(va, vb, trail, reach, sink),
                _ => self.missing(&trail.path, reach, sink),
            };
            trail.path.pop();
            flow?;
        }
        ControlFlow::Continue(())
    }

    /// Arrays as multisets: each incumbent element is matched to a distinct
    /// candidate element equal under the same rules (greedily, trying the same
    /// index first). Different lengths or any unmatched element is one
    /// difference at the array's pointer. `None` when the work budget runs
    /// out (before or during): the caller compares the array in order.
    fn unordered<'a, D: Doc>(
        &self,
        x: &'a [D::Node],
        y: &'a [D::Node],
        trail: &mut Trail<'a, D>,
        reach: Reach,
        sink: &mut Sink,
    ) -> Option<ControlFlow<()>> {
        if x.len() != y.len() {
            return Some(sink.record(&trail.path));
        }
        let spent = |walk: &Self, path: &[Seg<'_>]| {
            if walk.work.get() > 0 {
                return false;
            }
            let first = walk.ordered_from.take();
            walk.ordered_from
                .set(Some(first.unwrap_or_else(|| render(path))));
            true
        };
        if spent(self, &trail.path) {
            return None;
        }
        let mut used = vec![false; y.len()];
        for (i, va) in x.iter().enumerate() {
            // Elements are judged at the incumbent's index, so `/items/*/ts` applies.
            trail.path.push(Seg::Index(i));
            let equal = |j: usize, trail: &mut Trail<'a, D>| {
                !used[j]
                    && self
                        .node(va, &y[j], trail, reach, &mut Sink::probe())
                        .is_continue()
            };
            let found = if equal(i, trail) {
                Some(i)
            } else {
                (0..y.len()).find(|&j| j != i && equal(j, trail))
            };
            trail.path.pop();
            // An answer found on a spent budget may be wrong (a nested array
            // fell back to order): start over, in order.
            if spent(self, &trail.path) {
                return None;
            }
            match found {
                Some(j) => used[j] = true,
                None => return Some(sink.record(&trail.path)),
            }
        }
        Some(ControlFlow::Continue(()))
    }

    /// Equal when `|a-b| <= abs_tolerance` or `|a-b| <= tolerance * max(|a|,|b|)`.
    /// `1` and `1.0` are equal.
    fn numbers_equal(&self, x: &Number, y: &Number) -> bool {
        if x == y {
            return true;
        }
        // Two different integers stay different without a tolerance, even
        // above 2^53 where their f64 images could coincide.
        if self.tolerance == 0.0 && self.abs_tolerance == 0.0 && !x.is_f64() && !y.is_f64() {
            return false;
        }
        let (Some(a), Some(b)) = (x.as_f64(), y.as_f64()) else {
            return false;
        };
        let d = (a - b).abs();
        d <= self.abs_tolerance || d <= self.tolerance * a.abs().max(b.abs())
    }
}

/// `str`'s order (that of `serde_json::Map`'s keys), deciding on the first
/// byte where it can: most keys of an object differ there, and that spares
/// a call to `memcmp`.
fn key_order(a: &str, b: &str) -> Ordering {
    match (a.as_bytes().first(), b.as_bytes().first()) {
        (Some(x), Some(y)) if x != y => x.cmp(y),
        _ => a.cmp(b),
    }
}

// === path helpers ===

/// The JSON pointer text of a concrete path.
fn render(path: &[Seg<'_>]) -> String {
    let mut out = String::with_capacity(path.len() * 8);
    for seg in path {
        out.push('/');
        match seg {
            Seg::Key(k) => out.push_str(&pointer::escape(k)),
            Seg::Index(i) => {
                // Writing to a String cannot fail.
                let _infallible = write!(out, "{i}");
            }
        }
    }
    out
}

/// [`Pointer::covers`] over a path whose indices are numbers.
fn covers(p: &Pointer, path: &[Seg<'_>]) -> bool {
    p.tokens().len() <= path.len() && touches(p, path)
}

/// [`Pointer::touches`] over a path whose indices are numbers.
fn touches(p: &Pointer, path: &[Seg<'_>]) -> bool {
    p.tokens()
        .iter()
        .zip(path)
        .all(|(t, s)| token_matches(t, s))
}

/// Whether a pointer's token names a step of a concrete path.
fn token_matches(t: &Token, s: &Seg<'_>) -> bool {
    match (t, s) {
        (Token::Any, _) => true,
        (Token::Key(k), Seg::Key(s)) => k == s,
        (Token::Key(k), Seg::Index(i)) => is_index(k, *i),
    }
}

/// Whether the pointer token `k` is the array index `i` (RFC 6901: digits, no
/// leading zero).
fn is_index(k: &str, i: usize) -> bool {
    !k.is_empty()
        && k.bytes().all(|b| b.is_ascii_digit())
        && (k.len() == 1 || !k.starts_with('0'))
        && k.parse::<usize>() == Ok(i)
}

#[cfg(test)]
mod tests {
    use super::super::Tape;
    use super::*;
    use crate::config::JsonCompare;

    #[test]
    fn render_escapes_keys_and_writes_indices() {
        let path = [Seg::Key("a/b"), Seg::Index(12), Seg::Key("m~n")];
        assert_eq!(render(&path), "/a~1b/12/m~0n");
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn index_tokens_are_canonical() {
        assert!(is_index("0", 0));
        assert!(is_index("12", 12));
        assert!(!is_index("012", 12));
        assert!(!is_index("+1", 1));
        assert!(!is_index("", 0));
        let p = Pointer::parse("/items/1/ts").unwrap();
        assert!(covers(
            &p,
            &[Seg::Key("items"), Seg::Index(1), Seg::Key("ts")]
        ));
        assert!(!covers(
            &p,
            &[Seg::Key("items"), Seg::Index(2), Seg::Key("ts")]
        ));
        assert!(touches(&p, &[Seg::Key("items")]));
    }

    /// Whether `path` is ignored, checked whole against every ignored
    /// pointer (what each step of the walk once did).
    fn ignored_whole(walk: &Walk<'_>, path: &[Seg<'_>]) -> bool {
        walk.ignored().any(|p| covers(p, path))
    }

    /// The scope carried down a path step by step agrees with checking each
    /// path whole, on random paths and pointers (wildcards, indices, keys
    /// that look like indices), with the pointers tracked and with too many
    /// of them to track.
    #[test]
    fn scope_step_by_step_agrees_with_the_whole_path() {
        use rand::Rng as _;
        use rand::seq::SliceRandom as _;
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
        let tokens = ["a", "b", "*", "0", "1", "01", "items", "a/b"];
        let segs = [
            Seg::Key("a"),
            Seg::Key("b"),
            Seg::Key("0"),
            Seg::Key("items"),
            Seg::Key("a/b"),
            Seg::Index(0),
            Seg::Index(1),
        ];
        let pointer = |rng: &mut rand::rngs::StdRng| {
            let text: String = (0..rng.gen_range(1..4))
                .map(|_| format!("/{}", tokens.choose(rng).unwrap().replace('/', "~1")))
                .collect();
            Pointer::parse(&text).unwrap()
        };
        let (mut ignored, mut kept) = (0, 0);
        for case in 0..10_000 {
            let many = case % 10 == 0;
            let ignore: Vec<Pointer> = (0..rng.gen_range(0..if many { 80 } else { 4 }))
                .map(|_| pointer(&mut rng))
                .collect();
            let noise: Vec<Pointer> = (0..rng.gen_range(0..3))
                .map(|_| pointer(&mut rng))
                .collect();
            let only: Vec<Pointer> = (0..u32::from(rng.gen_bool(0.2)))
                .map(|_| pointer(&mut rng))
                .collect();
            let spec = JsonCompare {
                ignore,
                only,
                ..JsonCompare::default()
            };
            let walk = Walk::new(&spec, &noise);
            assert_eq!(walk.tracked, spec.ignore.len() + noise.len() <= 64);
            let path: Vec<Seg<'_>> = (0..rng.gen_range(0..6))
                .map(|_| *segs.choose(&mut rng).unwrap())
                .collect();
            // Start part-way down, as `diffs_at` does.
            let from = rng.gen_range(0..=path.len());
            let mut reach = walk.start(&path[..from]);
            assert_eq!(
                reach.is_none(),
                ignored_whole(&walk, &path[..from]) || {
                    let covered =
                        walk.only.is_empty() || walk.only.iter().any(|p| covers(p, &path[..from]));
                    !covered && !walk.only.iter().any(|p| touches(p, &path[..from]))
                }
            );
            for end in from + 1..=path.len() {
                let Some(parent) = reach else { break };
                reach = walk.scope(&path[..end], parent);
                let whole = ignored_whole(&walk, &path[..end]);
                if whole {
                    assert!(reach.is_none(), "case {case}: {path:?} {end}");
                    ignored += 1;
                } else {
                    // Not ignored: in or out by `only` alone, as before.
                    let covered =
                        parent.covered || walk.only.iter().any(|p| covers(p, &path[..end]));
                    let want = covered || walk.only.iter().any(|p| touches(p, &path[..end]));
                    assert_eq!(reach.is_some(), want, "case {case}: {path:?} {end}");
                    assert_eq!(reach.map(|r| r.covered), want.then_some(covered));
                    kept += 1;
                }
            }
        }
        assert!(
            ignored > 500 && kept > 5000,
            "{ignored} ignored, {kept} kept"
        );
    }

    #[test]
    fn key_order_is_str_order() {
        let keys = ["", "a", "ab", "b", "B", "é", "a/b", "10", "9", "~"];
        for a in keys {
            for b in keys {
                assert_eq!(key_order(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }

    /// Members in one order on both sides are sorted together, each of the
    /// candidate's beside its namesake; any other pair of objects is not.
    #[test]
    fn same_keys_in_the_same_order_are_sorted_together() {
        let a = Tape::parse(r#"{"c": 1, "a": 2, "b": 3}"#).unwrap();
        let b = Tape::parse(r#"{"c": 4, "a": 5, "b": 6}"#).unwrap();
        let mut trail = Trail {
            docs: (&a, &b),
            path: Vec::new(),
            members: Vec::new(),
        };
        assert_eq!(trail.push_both(a.root(), b.root()), (3, 6, true));
        // `a`'s members, then `b`'s, each list sorted: the values show that
        // they moved together.
        let mut got = Vec::new();
        for (k, v) in &trail.members {
            let doc = if got.len() < 3 { &a } else { &b };
            match doc.view(v) {
                View::Number(n) => got.push(format!("{k}={n}")),
                _ => got.push(format!("{k}=?")),
            }
        }
        assert_eq!(got, ["a=2", "b=3", "c=1", "a=5", "b=6", "c=4"]);
        for (x, y) in [
            (r#"{"c": 1, "a": 2, "b": 3}"#, r#"{"a": 1, "c": 2, "b": 3}"#),
            (r#"{"c": 1, "a": 2, "c": 3}"#, r#"{"c": 1, "a": 2, "c": 3}"#),
            (r#"{"c": 1, "a": 2}"#, r#"{"c": 1, "a": 2, "b": 3}"#),
        ] {
            let (a, b) = (Tape::parse(x).unwrap(), Tape::parse(y).unwrap());
            let mut trail = Trail {
                docs: (&a, &b),
                path: Vec::new(),
                members: Vec::new(),
            };
            let (mid, end, same) = trail.push_both(a.root(), b.root());
            assert!(!same, "{x} {y}");
            // As two separate sorts leave them.
            let mut apart = Trail {
                docs: (&a, &b),
                path: Vec::new(),
                members: Vec::new(),
            };
            let want_mid = apart.push_members(&a, a.root());
            let want_end = apart.push_members(&b, b.root());
            assert_eq!((mid, end), (want_mid, want_end), "{x} {y}");
            let names = |t: &Trail<'_, Tape<'_>>| -> Vec<String> {
                t.members.iter().map(|(k, _)| k.to_string()).collect()
            };
            assert_eq!(names(&trail), names(&apart), "{x} {y}");
        }
    }

    #[test]
    fn members_are_sorted_and_the_last_of_a_key_stays() {
        let doc = Tape::parse(r#"{"b": 1, "a": 2, "b": 3, "c": 4, "a": 5}"#).unwrap();
        let mut trail = Trail {
            docs: (&doc, &doc),
            path: Vec::new(),
            members: Vec::new(),
        };
        let end = trail.push_members(&doc, doc.root());
        let got: Vec<(&str, String)> = (trail.members.iter())
            .map(|(k, v)| match doc.view(v) {
                View::Number(n) => (*k, n.to_string()),
                _ => (*k, "not a number".into()),
            })
            .collect();
        assert_eq!(end, 3);
        assert_eq!(
            got,
            [("a", "5".into()), ("b", "3".into()), ("c", "4".into())]
        );
    }
}
