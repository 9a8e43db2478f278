//! The control plane's model test: seeded random interleavings of everything
//! that changes a route's state — a person's raise, forced raise and
//! lowering; the guard's breach (from real comparisons) and promotion; the
//! stage's advance and regression; the mirror switch; a config reload; a
//! restart on the same SQLite file — checked after every step against a
//! small reference model written here, independently of the code:
//!
//! 1. nothing recorded as a lowering raises a weight or a stage (ledger rows
//!    and the live state);
//! 2. every raise passed the evidence gate (the guard or stage said pass
//!    just before it) or is a person's forced raise recorded `forced = 1`;
//! 3. a person's rollback stands until a later raise that passed the gates
//!    (or a forced one, or the file's);
//! 5. every change is in the ledger exactly once (no more rows than changes
//!    that succeeded; none for refusals; none added by a restart);
//! 6. evidence gathered before a change is never counted after it.
//!
//! (4, replicas agreeing after partitions heal, is the fleet's: see
//! `tests/it/fleet.rs`.) `cargo test` runs [`QUICK`] sequences; the ignored
//! `model_long` runs 10,000 (`cargo test --release --lib model_long -- --ignored`).
//! A seed that ever failed goes into [`REGRESSIONS`] and runs every time.

use super::*;
use crate::compare::Verdict;
use crate::rollout::guard::Sample;
use crate::rollout::{Ask, Depth, Intent, Target};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap as Map;
use std::time::Instant;

/// Sequences run by `cargo test`.
const QUICK: u64 = 100;
/// Steps per sequence.
const STEPS: usize = 30;
/// Seeds that once failed (none has yet; add any that does, with a line on why).
const REGRESSIONS: &[u64] = &[];

const SEGMENTS: [&str; 3] = ["default", "enterprise", "smb"];
const STEPS_UP: [f64; 6] = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0];

fn config(file_weight: f64) -> Config {
    crate::config::for_test(&format!(
        r#"
[[routes]]
name = "r"
path_prefix = "/"
incumbent = "http://127.0.0.1:1"
candidate = "http://127.0.0.1:2"
segment = {{ header = "x-tier", values = ["enterprise", "smb"] }}
rollout = {{ default = 0.0, segments = {{ enterprise = {file_weight} }} }}
guard = {{ min_samples = 20, min_agreement = 0.8, max_candidate_error_rate = 0.5 }}
[routes.autonomy]
stage = "autonomous"
criteria = {{ min_agreement = 0.8, min_samples = 20 }}
"#
    ))
}

/// What the model believes of one segment.
#[derive(Debug, Clone, Copy)]
struct Seg {
    /// Its own weight and stage; without one, `default`'s apply.
    own_weight: Option<f64>,
    own_stage: Option<Stage>,
    /// A person's rollback in force: the weight stays at or below it until
    /// a raise that passed the gates (or a forced one, or the file's).
    cap: Option<f64>,
    /// Samples fed since the segment's evidence last started over.
    fresh: u64,
    /// A comparison has been judged since the last change touched it.
    judged: bool,
}

struct World {
    dir: tempfile::TempDir,
    rollout: Rollout,
    metrics: Metrics,
    config: Config,
    file_weight: f64,
    segs: Map<&'static str, Seg>,
    mirror: bool,
    /// Ledger rows the model expects.
    rows: usize,
}

impl World {
    async fn new() -> World {
        // A real SQLite file, on tmpfs where there is one: the ledger's
        // fsyncs are what a step costs otherwise.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .unwrap_or_else(|e| panic!("{e}"));
        let config = config(5.0);
        let metrics = Metrics::new();
        let rollout = start(&dir, &config, &metrics).await;
        let segs = SEGMENTS
            .into_iter()
            .map(|s| {
                let own_weight = match s {
                    "enterprise" => Some(5.0),
                    "default" => Some(0.0),
                    _ => None,
                };
                let seg = Seg {
                    own_weight,
                    own_stage: (s == "default").then_some(Stage::Autonomous),
                    cap: None,
                    fresh: 0,
                    judged: false,
                };
                (s, seg)
            })
            .collect();
        // The file's 5 % for enterprise, and its stage, are recorded at start.
        let rows = history(&rollout).len();
        World {
            dir,
            rollout,
            metrics,
            config,
            file_weight: 5.0,
            segs,
            mirror: true,
            rows,
        }
    }

    fn route(&self) -> &Route {
        &self.config.routes[0]
    }

    fn live(&self, seg: &str) -> (f64, Stage) {
        let rs = self.rollout.route("r").unwrap_or_default();
        (rs.weight(seg), rs.stage(seg))
    }

    /// The model's weight and stage of `seg` (its own, else `default`'s).
    fn model(&self, seg: &str) -> (f64, Stage) {
        let d = self.segs["default"];
        let s = self.segs[seg];
        (
            s.own_weight.or(d.own_weight).unwrap_or(0.0),
            s.own_stage.or(d.own_stage).unwrap_or_default(),
        )
    }

    fn set_weight(&mut self, seg: &str, w: f64, cap: Option<f64>) {
        self.set_weight_by(seg, w, cap, Depth::Decision);
    }

    fn set_weight_by(&mut self, seg: &str, w: f64, cap: Option<f64>, depth: Depth) {
        let s = self.segs.get_mut(seg).unwrap_or_else(|| panic!("{seg}"));
        s.own_weight = Some(w);
        s.cap = cap;
        self.reset(Some(seg), depth);
    }

    fn set_stage(&mut self, seg: &str, st: Stage) {
        let s = self.segs.get_mut(seg).unwrap_or_else(|| panic!("{seg}"));
        s.own_stage = Some(st);
        self.reset(Some(seg), Depth::Decision);
    }

    fn pass(&self, seg: &str, target: Target) -> bool {
        let decision = match target {
            Target::Stage(_) => self
                .rollout
                .autonomy_status("r", seg)
                .and_then(|(_, d, _)| d),
            _ => self.rollout.guard_status("r", seg).map(|(_, d, _)| d),
        };
        decision == Some(Decision::Pass)
    }

    /// Resets `seg` (or every segment: the mirror, or `default`, which the
    /// others follow), in the model: a person's change the decision, a
    /// breach, the mirror switch and a restart the comparisons too.
    fn reset(&mut self, seg: Option<&str>, depth: Depth) {
        let seg = seg.filter(|s| *s != "default");
        for (name, s) in self.segs.iter_mut() {
            if seg.is_none_or(|x| x == *name) {
                s.judged = false;
                if depth == Depth::Evidence {
                    s.fresh = 0;
                }
            }
        }
    }

    async fn feed(&mut self, seg: &'static str, n: u64, agree: bool) {
        let verdict = if agree {
            Verdict::Match
        } else {
            Verdict::Mismatch
        };
        for _ in 0..n {
            let before = self.live(seg).0;
            let s = Sample::verdict(Instant::now(), verdict);
            let route = self.config.routes[0].clone();
            self.rollout.observe(&route, seg, s, &self.metrics).await;
            if let Some(s) = self.segs.get_mut(seg) {
                s.fresh += 1;
                s.judged = true;
            }
            let after = self.live(seg).0;
            if after != before {
                // Only a breach moves a weight here (auto_promote is off):
                // one step back, recorded once, evidence started over.
                assert!(after < before, "a breach raised: {before} -> {after}");
                assert_eq!(after, crate::rollout::guard::step_back(&STEPS_UP, before));
                self.rows += 1;
                let cap = self.segs[seg].cap;
                self.set_weight_by(seg, after, cap, Depth::Decision);
            }
        }
    }
}

async fn start(dir: &tempfile::TempDir, config: &Config, metrics: &Metrics) -> Rollout {
    let mut cfg = config.store.clone();
    cfg.path = dir.path().join("u.db");
    let store = crate::store::Store::open(&cfg, Metrics::new()).unwrap_or_else(|e| panic!("{e}"));
    let r = Rollout::from_config(config);
    r.attach(store, config, metrics)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    r
}

fn history(r: &Rollout) -> Vec<events::RolloutEvent> {
    r.history(None, usize::MAX)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs one seeded sequence; panics with the seed and the step on a broken invariant.
async fn run(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut w = World::new().await;
    let mut trace = Vec::new();
    for step in 0..STEPS {
        let seg = SEGMENTS[rng.gen_range(0..SEGMENTS.len())];
        let op = rng.gen_range(0..12);
        trace.push(format!("{op}:{seg}"));
        let ctx = format!("seed {seed} step {step} trace {trace:?}");
        let (before_weight, before_stage) = w.model(seg);
        let route = w.route().clone();
        let m = w.metrics.clone();
        match op {
            // A person lowers the weight (a rollback).
            0 | 1 => {
                let to = STEPS_UP[rng.gen_range(0..3)] * f64::from(rng.gen_range(0..2u8));
                let pass = w.pass(seg, Target::Weight(to));
                let got = w
                    .rollout
                    .set_weight(&route, seg, to, Actor::Api, "down", false, &m)
                    .await;
                if to < before_weight {
                    got.unwrap_or_else(|e| panic!("a lowering refused: {e} ({ctx})"));
                    w.rows += 1;
                    w.set_weight(seg, to, Some(to));
                } else if to == before_weight {
                    assert!(
                        matches!(got, Err(Error::Unchanged { .. })),
                        "{got:?} ({ctx})"
                    );
                } else {
                    // A raise: gated, like op 2.
                    check_raise_with(&mut w, seg, Target::Weight(to), got, false, pass, &ctx);
                }
            }
            // A person raises, unforced: only on a pass.
            2 => {
                let to =
                    crate::rollout::guard::next_step(&STEPS_UP, before_weight).unwrap_or(100.0);
                let pass = w.pass(seg, Target::Weight(to));
                let got = w
                    .rollout
                    .set_weight(&route, seg, to, Actor::Cli, "up", false, &m)
                    .await;
                check_raise_with(&mut w, seg, Target::Weight(to), got, false, pass, &ctx);
            }
            // A person forces a raise.
            3 => {
                let to = STEPS_UP[rng.gen_range(0..STEPS_UP.len())];
                let got = w
                    .rollout
                    .set_weight(&route, seg, to, Actor::Api, "force", true, &m)
                    .await;
                if to > before_weight {
                    let c = got.unwrap_or_else(|e| panic!("a forced raise refused: {e} ({ctx})"));
                    assert!(c.forced && c.intent == Intent::Raise, "2: {c:?} ({ctx})");
                    w.rows += 1;
                    w.set_weight(seg, to, None);
                } else if to < before_weight {
                    got.unwrap_or_else(|e| panic!("{e} ({ctx})"));
                    w.rows += 1;
                    w.set_weight(seg, to, Some(to));
                } else {
                    assert!(got.is_err(), "{ctx}");
                }
            }
            // Good comparisons (the guard and the stage gather evidence).
            4 | 5 => {
                let n = rng.gen_range(1..40);
                w.feed(seg, n, true).await;
                for _ in 0..n {
                    let ev = crate::autonomy::evidence::Event::Compared { agree: true };
                    w.rollout
                        .observe_stage(&route, seg, ev, Instant::now(), &m)
                        .await;
                }
            }
            // Bad comparisons: the guard may breach (a lowering).
            6 => {
                let n = rng.gen_range(1..60);
                w.feed(seg, n, false).await;
            }
            // The guard's own promotion (as `act` asks it): a gated raise.
            7 => {
                let to =
                    crate::rollout::guard::next_step(&STEPS_UP, before_weight).unwrap_or(100.0);
                let pass = w.pass(seg, Target::Weight(to));
                let ask = Ask {
                    intent: Some(Intent::Raise),
                    ..Ask::new(seg, Target::Weight(to), Actor::Guard, "guard promotion")
                };
                let got = w.rollout.change(&route, ask, &m).await;
                check_raise_with(&mut w, seg, Target::Weight(to), got, false, pass, &ctx);
            }
            // A stage: a person's lowering, or an advance (gated).
            8 => {
                let down = rng.gen_bool(0.5);
                let to = if down {
                    before_stage.previous().unwrap_or(Stage::Shadow)
                } else {
                    before_stage.next().unwrap_or(Stage::Autonomous)
                };
                let pass = w.pass(seg, Target::Stage(to));
                let got = w
                    .rollout
                    .set_stage(&route, seg, to, Actor::Api, "stage", false, &m)
                    .await;
                if to < before_stage {
                    got.unwrap_or_else(|e| panic!("a stage lowering refused: {e} ({ctx})"));
                    w.rows += 1;
                    w.set_stage(seg, to);
                } else if to == before_stage {
                    assert!(got.is_err(), "{ctx}");
                } else {
                    check_raise_with(&mut w, seg, Target::Stage(to), got, false, pass, &ctx);
                }
            }
            // The kill switch.
            9 => {
                let on = rng.gen_bool(0.5);
                w.rollout
                    .set_mirror(&route, on, Actor::Api, "switch", &m)
                    .await
                    .unwrap_or_else(|e| panic!("the mirror switch refused: {e} ({ctx})"));
                w.rows += 1;
                w.mirror = on;
                w.reset(None, Depth::Evidence);
            }
            // A reload with the file's enterprise weight changed (a set).
            10 => {
                let to = STEPS_UP[rng.gen_range(0..4)];
                let cfg = config(to);
                let changes = w
                    .rollout
                    .reconcile(&cfg, &m)
                    .await
                    .unwrap_or_else(|e| panic!("{e} ({ctx})"));
                let changed = (to - w.file_weight).abs() > 1e-9;
                assert_eq!(changes.len(), usize::from(changed), "{changes:?} ({ctx})");
                if changed {
                    w.rows += 1;
                    w.set_weight("enterprise", to, None);
                }
                w.file_weight = to;
                w.config = cfg;
            }
            // A restart on the same file: the same state, no new rows, no evidence.
            _ => {
                let before_state = w.rollout.route("r").unwrap_or_default();
                let cfg = w.config.clone();
                w.rollout = start(&w.dir, &cfg, &w.metrics).await;
                let after = w.rollout.route("r").unwrap_or_default();
                for s in SEGMENTS {
                    assert_eq!(
                        (after.weight(s), after.stage(s)),
                        (before_state.weight(s), before_state.stage(s)),
                        "restart changed {s} ({ctx})"
                    );
                }
                assert_eq!(after.mirror, before_state.mirror, "{ctx}");
                w.reset(None, Depth::Evidence);
            }
        }
        // After every step: the model and the live state agree, and the invariants hold.
        for s in SEGMENTS {
            let (weight, stage) = w.live(s);
            let model = w.segs[s];
            assert_eq!((weight, stage), w.model(s), "{s} ({ctx})");
            if let Some(cap) = model.cap {
                assert!(
                    weight <= cap,
                    "3: {s} at {weight} above a person's rollback to {cap} ({ctx})"
                );
            }
            let counted = w
                .rollout
                .guard_status("r", s)
                .map_or(0, |(f, _, _)| f.samples);
            assert!(
                counted <= model.fresh,
                "6: {s} counts {counted} > {} fresh ({ctx})",
                model.fresh
            );
            if !model.judged {
                let decision = w.rollout.guard_status("r", s).map(|(_, d, _)| d);
                assert_eq!(
                    decision, None,
                    "7: {s}: a decision survived a change ({ctx})"
                );
            }
        }
        assert_eq!(
            w.rollout.route("r").map(|r| r.mirror),
            Some(w.mirror),
            "{ctx}"
        );
        let rows = history(&w.rollout);
        assert_eq!(rows.len(), w.rows, "5: ledger rows ({ctx})");
        for e in &rows {
            let c = Change::from(e.clone());
            if c.intent == Intent::Lower {
                let up_w = matches!((c.from, c.to), (Some(f), Some(t)) if t > f);
                let up_s = matches!((c.from_stage.as_deref().and_then(Stage::parse),
                    c.to_stage.as_deref().and_then(Stage::parse)), (Some(f), Some(t)) if t > f);
                assert!(!up_w && !up_s, "1: a lowering raises: {e:?} ({ctx})");
            }
        }
    }
}

/// 2: an unforced raise succeeds only when the evidence said pass, and then
/// moves exactly to its target, recorded once as a raise; a refusal records nothing.
fn check_raise_with(
    w: &mut World,
    seg: &'static str,
    target: Target,
    got: Result<Change, Error>,
    forced: bool,
    pass: bool,
    ctx: &str,
) {
    match got {
        Ok(c) => {
            assert!(pass || forced, "2: a raise without a pass: {c:?} ({ctx})");
            assert_eq!(
                (c.intent, c.forced),
                (Intent::Raise, forced),
                "2: {c:?} ({ctx})"
            );
            w.rows += 1;
            match target {
                Target::Weight(t) => w.set_weight(seg, t, None),
                Target::Stage(t) => w.set_stage(seg, t),
                Target::Mirror(_) => {}
            }
        }
        Err(Error::Gated { .. }) => assert!(!pass, "refused on a pass ({ctx})"),
        Err(Error::Unchanged { .. } | Error::StageUnchanged { .. }) => {
            let (weight, stage) = w.model(seg);
            let same = match target {
                Target::Weight(t) => t == weight,
                Target::Stage(t) => t == stage,
                Target::Mirror(_) => false,
            };
            assert!(same, "refused as unchanged but it was not ({ctx})");
        }
        Err(e) => panic!("unexpected refusal: {e} ({ctx})"),
    }
}

/// Runs `seeds`, eight sequences at a time (a step mostly waits on the
/// writer thread, so they overlap well).
async fn run_all(seeds: impl Iterator<Item = u64>) {
    let mut running = tokio::task::JoinSet::new();
    for seed in seeds {
        if running.len() == 8
            && let Some(done) = running.join_next().await
        {
            done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        }
        running.spawn(run(seed));
    }
    while let Some(done) = running.join_next().await {
        done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_quick() {
    run_all(REGRESSIONS.iter().copied().chain(0..QUICK)).await;
}

/// 10,000 sequences: `cargo test --release --lib model_long -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn model_long() {
    let t = Instant::now();
    run_all(1_000_000..1_010_000).await;
    eprintln!("10,000 sequences of {STEPS} steps in {:?}", t.elapsed());
}
