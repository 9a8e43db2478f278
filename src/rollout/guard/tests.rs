use super::*;
use crate::config;
use crate::rollout::bucket;
use rand::{Rng, SeedableRng};

fn defaults() -> Guard {
    let cfg = config::for_test(
        r#"
[[routes]]
name = "r"
path_prefix = "/"
incumbent = "http://127.0.0.1:1"
"#,
    );
    cfg.routes[0].guard.clone()
}

fn sample(at: Instant, verdict: Verdict) -> Sample {
    Sample {
        at,
        verdict,
        safety: false,
        incumbent_ms: Some(10.0),
        candidate_ms: Some(12.0),
        incumbent_ttft_ms: None,
        candidate_ttft_ms: None,
        user: None,
        excluded: false,
    }
}

/// Feeds `n` samples (`agree` of every 100 match, spread over the hundred
/// rather than in one run: a run of mismatches is a change the detectors
/// catch) one ms apart; returns the first action.
fn feed(g: &mut SegmentGuard, cfg: &Guard, n: usize, agree: usize, weight: f64) -> Option<Action> {
    let t0 = Instant::now();
    (0..n).find_map(|i| {
        let v = if (i % 100) * 37 % 100 < agree {
            Verdict::Match
        } else {
            Verdict::Mismatch
        };
        g.observe(cfg, sample(t0 + Duration::from_millis(i as u64), v), weight)
    })
}

#[test]
fn ladder_steps_up_and_back() {
    let steps = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0];
    assert_eq!(next_step(&steps, 0.0), Some(1.0));
    assert_eq!(next_step(&steps, 5.0), Some(10.0));
    assert_eq!(next_step(&steps, 7.0), Some(10.0));
    assert_eq!(next_step(&steps, 100.0), None);
    assert_eq!(step_back(&steps, 5.0), 1.0);
    assert_eq!(step_back(&steps, 7.0), 5.0);
    assert_eq!(step_back(&steps, 1.0), 0.0);
    assert_eq!(step_back(&[], 30.0), 0.0);
}

#[test]
fn a_bad_candidate_breaches_only_after_min_samples() {
    let cfg = defaults();
    let mut g = SegmentGuard::default();
    let action = feed(&mut g, &cfg, 1000, 60, 5.0).expect("breach");
    assert_eq!(action.breach, Some(Reason::Agreement));
    assert_eq!(action.to, 1.0);
    assert_eq!(action.figures.samples, cfg.min_samples);
    assert!(action.figures.agreement_upper < 0.9);
    assert!(action.reason.contains("agreement 0.6"), "{}", action.reason);
}

#[test]
fn a_good_candidate_passes_and_promotes_after_hold() {
    let mut cfg = defaults();
    cfg.auto_promote = true;
    cfg.hold = Duration::from_millis(100);
    let mut g = SegmentGuard::default();
    // 99 % agreement; 200 samples reach pass, then 100 ms of passing promote.
    let action = feed(&mut g, &cfg, 1000, 99, 1.0).expect("promotion");
    assert_eq!((action.to, action.breach), (5.0, None));
    assert!(action.figures.agreement_lower >= 0.9);
    assert!(action.figures.samples >= 300);
    // In shadow nothing is promoted automatically.
    let mut g = SegmentGuard::default();
    assert_eq!(feed(&mut g, &cfg, 1000, 99, 0.0), None);
    assert_eq!(g.status(Instant::now()).unwrap().1, Decision::Pass);
}

#[test]
fn in_between_evidence_holds() {
    let mut cfg = defaults();
    cfg.auto_promote = true;
    cfg.hold = Duration::ZERO;
    let mut g = SegmentGuard::default();
    // 90 % agreement: neither bound clears 0.9 with any confidence.
    assert_eq!(feed(&mut g, &cfg, 1000, 90, 5.0), None);
    assert_eq!(g.status(Instant::now()).unwrap().1, Decision::Hold);
}

#[test]
fn safety_breaches_at_once_and_shadow_mode_goes_to_zero() {
    let mut cfg = defaults();
    cfg.on_breach = OnBreach::Shadow;
    let mut g = SegmentGuard::default();
    let mut s = sample(Instant::now(), Verdict::Match);
    s.safety = true;
    let action = g.observe(&cfg, s, 25.0).expect("breach");
    assert_eq!((action.to, action.breach), (0.0, Some(Reason::Safety)));
}

#[test]
fn errors_and_latency_breach() {
    let mut cfg = defaults();
    let mut g = SegmentGuard::default();
    let t0 = Instant::now();
    let action = (0..1000)
        .find_map(|i| {
            let v = if i % 10 == 0 {
                Verdict::CandidateError
            } else {
                Verdict::Match
            };
            g.observe(&cfg, sample(t0, v), 10.0)
        })
        .expect("breach");
    assert_eq!(
        (action.to, action.breach),
        (5.0, Some(Reason::CandidateErrors))
    );

    cfg.max_latency_ratio = Some(1.1);
    let mut g = SegmentGuard::default();
    // Latencies that vary (as real ones do: the tail test compares each
    // side against the incumbent's quantile), the candidate 3× as slow.
    let spread = |i: usize| 5.0 + (i * 37 % 100) as f64 / 10.0;
    let action = (0..1000)
        .find_map(|i| {
            let mut s = sample(t0, Verdict::Match);
            s.incumbent_ms = Some(spread(i));
            s.candidate_ms = Some(3.0 * spread(i));
            g.observe(&cfg, s, 10.0)
        })
        .expect("breach");
    assert_eq!(action.breach, Some(Reason::Latency));
    // The ratio shown: percentiles from 2 % buckets, within 1 % each.
    assert!((action.figures.latency_ratio.unwrap() - 3.0).abs() < 0.1);

    // docs/src/guide/llm.md: the time to first token has its own ratio.
    cfg.max_latency_ratio = None;
    cfg.max_ttft_ratio = Some(1.5);
    let mut g = SegmentGuard::default();
    let ttft = |s: &mut Sample, inc: f64, cand: f64| {
        s.incumbent_ttft_ms = Some(inc);
        s.candidate_ttft_ms = Some(cand);
    };
    let calm = (0..3000).find_map(|i| {
        let mut s = sample(t0, Verdict::Match);
        ttft(&mut s, 10.0 * spread(i), 14.0 * spread(i));
        g.observe(&cfg, s, 10.0)
    });
    assert_eq!(calm, None, "1.4 is within 1.5");
    let action = (0..1000)
        .find_map(|i| {
            let mut s = sample(t0, Verdict::Match);
            ttft(&mut s, 10.0 * spread(i), 40.0 * spread(i));
            g.observe(&cfg, s, 10.0)
        })
        .expect("breach");
    assert_eq!(action.breach, Some(Reason::Ttft));
    assert!(
        action.figures.ttft_ratio.unwrap() > 1.5,
        "{:?}",
        action.figures
    );
}

#[test]
fn a_time_window_forgets_old_samples() {
    let mut cfg = defaults();
    cfg.method = GuardMethod::Wilson;
    cfg.window = Window::Time(Duration::from_secs(1));
    cfg.min_samples = 10;
    let mut g = SegmentGuard::default();
    let t0 = Instant::now();
    for i in 0..5 {
        g.observe(
            &cfg,
            sample(t0 + Duration::from_millis(i), Verdict::Mismatch),
            0.0,
        );
    }
    for i in 0..40 {
        let at = t0 + Duration::from_secs(5) + Duration::from_millis(i);
        g.observe(&cfg, sample(at, Verdict::Match), 0.0);
    }
    let (f, d, _) = g.status(t0).unwrap();
    assert_eq!((f.mismatches, f.matches, d), (0, 40, Decision::Pass));
}

#[test]
fn running_counts_equal_a_recount_of_the_window() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let t0 = Instant::now();
    for window in [Window::Count(50), Window::Time(Duration::from_millis(40))] {
        let mut cfg = defaults();
        cfg.window = window;
        cfg.min_samples = 10;
        let mut g = SegmentGuard::default();
        for i in 0..2_000u64 {
            let verdict = [
                Verdict::Match,
                Verdict::Mismatch,
                Verdict::CandidateError,
                Verdict::IncumbentError,
                Verdict::Skipped,
            ][rng.gen_range(0..5)];
            let mut s = sample(t0 + Duration::from_millis(i), verdict);
            s.safety = rng.gen_bool(0.05); // breaches, but at weight 0 keeps the window
            g.observe(&cfg, s, 0.0);
            assert_eq!(g.counts, Counts::of(&g.window), "after {i} samples");
        }
        assert!(!g.window.is_empty());
    }
}

/// One simulated canary run at 100 requests per second: `agree` is the
/// candidate's true agreement. The real bucket decides who serves each
/// request (2,000 sticky users); every request is compared (the served side
/// plus its mirror). Returns (wrong answers served before the first breach,
/// seconds to the first breach), or `None` without a breach.
fn simulate(seed: u64, requests: usize, agree: f64, weight: f64) -> Option<(u64, f64)> {
    let cfg = defaults();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut g = SegmentGuard::default();
    let t0 = Instant::now();
    let mut wrong_served = 0;
    for i in 0..requests {
        let user = format!("user-{}", rng.gen_range(0..2_000));
        let served = bucket::is_candidate(bucket::bucket("lead-score", "", &user), weight);
        let matches = rng.gen_bool(agree);
        if served && !matches {
            wrong_served += 1;
        }
        let v = if matches {
            Verdict::Match
        } else {
            Verdict::Mismatch
        };
        let at = t0 + Duration::from_millis(10 * i as u64);
        if g.observe(&cfg, sample(at, v), weight).is_some() {
            return Some((wrong_served, (at - t0).as_secs_f64()));
        }
    }
    None
}

/// Issue 3 figure: false alarms. Run with
/// `cargo test --lib rollout::guard::tests::false_alarms -- --nocapture`.
#[test]
fn false_alarms() {
    let alarms = (0..100)
        .filter(|seed| simulate(*seed, 3_000, 0.97, 5.0).is_some())
        .count();
    println!(
        "false alarms: {alarms} of 100 seeded runs of 3000 requests (97 % agreement, min_agreement 0.9, 5 % weight)"
    );
    assert_eq!(alarms, 0);
}

/// Issue 3 figure: harm exposure (simulation; the proxy run is in tests/it/rollout.rs).
#[test]
fn harm_exposure_simulated() {
    let runs: Vec<_> = (0..100)
        .map(|seed| simulate(seed, 3_000, 0.6, 5.0).expect("a 40 % wrong candidate is caught"))
        .collect();
    let worst_wrong = runs.iter().map(|r| r.0).max().unwrap();
    let worst_secs = runs.iter().map(|r| r.1).fold(0.0, f64::max);
    let mean_wrong = runs.iter().map(|r| r.0).sum::<u64>() as f64 / runs.len() as f64;
    println!(
        "harm exposure (simulated, 100 runs): mean {mean_wrong:.1} wrong answers served, worst {worst_wrong}, rolled back after at most {worst_secs:.2} s"
    );
    assert!(worst_wrong <= 10 && worst_secs <= 5.0);
}

#[test]
fn the_sequential_guard_counts_since_its_last_reset_not_over_the_window() {
    let mut cfg = defaults();
    assert!(
        matches!(cfg.method, GuardMethod::Sequential(_)),
        "the default"
    );
    cfg.window = Window::Count(100);
    cfg.min_samples = 10;
    let mut g = SegmentGuard::default();
    // 2,000 samples at 97 %: far more than the window of 100 holds.
    assert_eq!(feed(&mut g, &cfg, 2000, 97, 0.0), None);
    let (f, d, _) = g.status(Instant::now()).unwrap();
    assert_eq!(f.samples, 2000, "every sample since the reset");
    assert_eq!(d, Decision::Pass);
    // The interval shown is the confidence sequence's, wider than Wilson's.
    let (wl, wu) = wilson(f.matches, f.samples, Z95);
    assert!(f.agreement_lower < wl && f.agreement_upper > wu, "{f:?}");
    // A person's change starts the decision over, not the comparisons
    // (their agreement does not depend on the weight): no pass survives it,
    // and the next comparison decides on all of them.
    g.reset_at(Instant::now(), Depth::Decision);
    assert!(
        g.status(Instant::now()).is_none(),
        "no pass survives a change"
    );
    assert_eq!(feed(&mut g, &cfg, 5, 100, 0.0), None);
    assert_eq!(g.status(Instant::now()).unwrap().0.samples, 2005);
    // A breach or the mirror switch starts the evidence over.
    g.reset_at(Instant::now(), Depth::Evidence);
    assert_eq!(feed(&mut g, &cfg, 5, 100, 0.0), None);
    assert_eq!(g.status(Instant::now()).unwrap().0.samples, 5);
    // So does a new guard config.
    cfg.min_agreement = 0.8;
    assert_eq!(feed(&mut g, &cfg, 3, 100, 0.0), None);
    assert_eq!(g.status(Instant::now()).unwrap().0.samples, 3);
}

#[test]
fn samples_to_decide_shrinks_as_evidence_grows() {
    let cfg = defaults();
    let f = |m: u64, n: u64| Figures::of(m, n - m, 0, 0, None);
    let early = f(93, 100).samples_to_decide(&cfg).unwrap();
    let later = f(465, 500).samples_to_decide(&cfg).unwrap();
    assert!(later < early, "{early} then {later}");
    // Exactly at the bar: never decided.
    assert_eq!(f(90, 100).samples_to_decide(&cfg), None);
    // Wilson needs fewer samples (it is valid at one n only).
    let mut wilson_cfg = defaults();
    wilson_cfg.method = GuardMethod::Wilson;
    let w = f(93, 100).samples_to_decide(&wilson_cfg).unwrap();
    assert!(w < early, "wilson {w}, sequential {early}");
}

/// docs/src/concepts/guards.md's measurement, through this module: 100 seeded runs of 1,000,000
/// comparisons each, checked after every comparison, for both methods.
/// `cargo test --release --lib -- --ignored guard_long_life --nocapture`
#[test]
#[ignore = "a long simulation; run in release (see the README)"]
fn guard_long_life() {
    const RUNS: u64 = 100;
    const N: u64 = 1_000_000;
    let mut base = defaults();
    base.min_samples = 200;
    base.window = Window::Count(1000);
    for (name, method) in [("sequential", base.method), ("wilson", GuardMethod::Wilson)] {
        let cfg = Guard {
            method,
            ..base.clone()
        };
        let (mut false_rollbacks, mut promoting_runs) = (0, 0);
        let (mut pass_instants, mut instants) = (0u64, 0u64);
        for run in 0..RUNS {
            // At 92 % against 0.9: any breach is a false rollback.
            let mut rng = rand::rngs::StdRng::seed_from_u64(run);
            let mut g = SegmentGuard::default();
            let t0 = Instant::now();
            for i in 0..N {
                let v = if rng.r#gen::<f64>() < 0.92 {
                    Verdict::Match
                } else {
                    Verdict::Mismatch
                };
                let at = t0 + Duration::from_millis(i);
                if g.observe(&cfg, sample(at, v), 5.0)
                    .is_some_and(|a| a.breach.is_some())
                {
                    false_rollbacks += 1;
                    break;
                }
            }
            // At 88 %: a pass sustained for `hold` (10 min at 1,000/s) would promote.
            let mut rng = rand::rngs::StdRng::seed_from_u64(1_000 + run);
            let mut g = SegmentGuard::default();
            let mut promote_cfg = cfg.clone();
            promote_cfg.auto_promote = true;
            promote_cfg.on_breach = OnBreach::StepBack;
            let mut promoted = false;
            for i in 0..N {
                let v = if rng.r#gen::<f64>() < 0.88 {
                    Verdict::Match
                } else {
                    Verdict::Mismatch
                };
                let at = t0 + Duration::from_millis(i);
                // A breach would roll it back: weight stays at 5 for the count.
                if let Some(a) = g.observe(&promote_cfg, sample(at, v), 5.0)
                    && a.breach.is_none()
                {
                    promoted = true;
                }
                if let Some((_, d)) = &g.last {
                    instants += 1;
                    pass_instants += u64::from(*d == Decision::Pass);
                }
            }
            promoting_runs += u64::from(promoted);
        }
        println!(
            "{name}: false rollbacks at 92 % in {false_rollbacks}/{RUNS} runs; \
             at 88 %: {promoting_runs}/{RUNS} runs would auto-promote, \
             gate says pass at {:.3} % of instants",
            100.0 * pass_instants as f64 / instants.max(1) as f64
        );
    }
}

/// Issue 10: with `max_latency_ratio` set, a long time window at a high
/// rate neither keeps every sample nor sorts them on each comparison: the
/// window holds at most `MAX_TIME_WINDOW` samples, the latencies live in a
/// fixed set of buckets, and the ratio stays right on a known distribution.
#[test]
fn a_latency_window_stays_bounded_and_its_ratio_right() {
    let mut cfg = defaults();
    cfg.method = GuardMethod::Wilson;
    cfg.window = Window::Time(Duration::from_secs(3600));
    cfg.max_latency_ratio = Some(10.0);
    cfg.min_samples = 1;
    cfg.min_agreement = 0.0;
    let mut g = SegmentGuard::default();
    let t0 = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let n = MAX_TIME_WINDOW + 30_000;
    let started = Instant::now();
    for i in 0..n {
        // Incumbent uniform on [1, 100) ms (p99 ≈ 99), candidate twice as slow.
        let inc: f64 = rng.gen_range(1.0..100.0);
        let s = Sample {
            at: t0 + Duration::from_micros(i as u64),
            verdict: Verdict::Match,
            safety: false,
            incumbent_ms: Some(inc),
            candidate_ms: Some(inc * 2.0),
            incumbent_ttft_ms: None,
            candidate_ttft_ms: None,
            user: None,
            excluded: false,
        };
        assert!(g.observe(&cfg, s, 0.0).is_none());
    }
    let took = started.elapsed();
    assert_eq!(g.window.len(), MAX_TIME_WINDOW);
    assert_eq!(g.latencies.incumbent.len(), MAX_TIME_WINDOW as u64);
    let (f, _, _) = g.status(t0).unwrap();
    assert_eq!(f.samples, MAX_TIME_WINDOW as u64);
    let r = f.latency_ratio.unwrap();
    assert!((r - 2.0).abs() < 0.05, "ratio {r}");
    // Sorting the whole window on each of these comparisons (the old way)
    // takes hours; the buckets take about a second unoptimised.
    assert!(took < Duration::from_secs(60), "{took:?}");
    // The exact p99 ratio of the samples the window holds agrees.
    let sorted = |side: fn(&Sample) -> Option<f64>| {
        let mut v: Vec<f64> = g.window.iter().filter_map(side).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let p99 = |v: &[f64]| crate::stats::percentile(v, 99.0).unwrap();
    let exact = p99(&sorted(|s| s.candidate_ms)) / p99(&sorted(|s| s.incumbent_ms));
    assert!((exact - r).abs() / exact < 0.02, "{exact} vs {r}");
}

/// docs/src/concepts/guards.md's "samples to a decision": a candidate at 97 % and one at 60 %
/// against 0.9, for both methods (printed with `--nocapture`).
#[test]
fn samples_to_a_decision_for_good_and_bad_candidates() {
    let sequential = defaults();
    let mut wilson_cfg = defaults();
    wilson_cfg.method = GuardMethod::Wilson;
    wilson_cfg.min_samples = 1;
    let mut seq_cfg = sequential;
    seq_cfg.min_samples = 1;
    for p in [0.97, 0.60] {
        let f = Figures::of(0, 0, 0, 0, None);
        let f = Figures {
            agreement: Some(p),
            ..f
        };
        let s = f.samples_to_decide(&seq_cfg).unwrap();
        let w = f.samples_to_decide(&wilson_cfg).unwrap();
        println!("agreement {p} vs 0.9: sequential {s} samples, wilson {w}");
        assert!(w <= s, "the sequence pays for its validity in samples");
    }
}

/// Issue 16: people's verdicts judged by the guard's own rule, both methods.
#[test]
fn rates_are_judged_asymmetrically_by_either_method() {
    let seq = GuardMethod::sequential(0.05);
    for method in [seq, GuardMethod::Wilson] {
        // Below min_samples nothing is decided, whatever the rate.
        assert_eq!(
            judge_rate(&method, 0, 10, 0.8, Bar::Min, 20),
            RateCheck::Unknown
        );
        assert_eq!(
            judge_rate(&method, 0, 200, 0.8, Bar::Min, 20),
            RateCheck::Bad
        );
        assert_eq!(
            judge_rate(&method, 200, 200, 0.8, Bar::Min, 20),
            RateCheck::Good
        );
        assert_eq!(
            judge_rate(&method, 100, 200, 0.1, Bar::Max, 20),
            RateCheck::Bad
        );
        assert_eq!(
            judge_rate(&method, 0, 200, 0.1, Bar::Max, 20),
            RateCheck::Good
        );
        // Near the bar: undecided.
        assert_eq!(
            judge_rate(&method, 16, 20, 0.8, Bar::Min, 20),
            RateCheck::Unknown
        );
    }
}

#[test]
fn low_satisfaction_steps_the_weight_back_once_confident() {
    let cfg = Guard {
        min_samples: 20,
        min_satisfaction: Some(0.8),
        ..defaults()
    };
    let mut g = SegmentGuard::default();
    let unhappy = Feedback {
        rated: 1,
        ..Feedback::default()
    };
    let mut action = None;
    let mut n = 0;
    while action.is_none() && n < 100 {
        action = g.observe_feedback(&cfg, unhappy, 50.0);
        n += 1;
    }
    let a = action.expect("a breach");
    assert!(n >= 20, "not before min_samples: {n}");
    assert_eq!((a.to, a.breach), (25.0, Some(Reason::Satisfaction)));
    assert!(a.reason.contains("satisfaction 0.000"), "{}", a.reason);
    // At weight 0 there is nothing to roll back.
    let mut g = SegmentGuard::default();
    assert!((0..100).all(|_| g.observe_feedback(&cfg, unhappy, 0.0).is_none()));
}

/// Issue 22: comparisons the judge could not decide cannot make a candidate
/// look better. At 1,000 matches and 50 mismatches (95 %) a pass is clear;
/// when 300 more comparisons were skipped because the judge failed on them
/// (the hard cases), they count against the pass: 1,000 of 1,350 is no pass.
/// They cannot breach it either (they count for it on that side), and the
/// figures say how many there were.
#[test]
fn comparisons_the_judge_failed_on_count_against_a_pass() {
    let cfg = defaults();
    let t0 = Instant::now();
    let run = |hard: usize| {
        let mut g = SegmentGuard::default();
        for i in 0..1350 {
            let at = t0 + Duration::from_millis(i as u64);
            let mut s = match i % 27 {
                0 => sample(at, Verdict::Mismatch),
                1..=6 if hard > 0 => sample(at, Verdict::Skipped),
                _ => sample(at, Verdict::Match),
            };
            s.excluded = s.verdict == Verdict::Skipped;
            g.observe(&cfg, s, 0.0);
        }
        g.status(t0).unwrap()
    };
    let (clean, d, _) = run(0);
    assert_eq!((clean.excluded, d), (0, Decision::Pass), "{clean:?}");
    let (hard, d, _) = run(300);
    assert_eq!(hard.excluded, 300, "{hard:?}");
    assert_eq!(d, Decision::Hold, "{hard:?}");
    assert!(
        hard.to_string().contains("300 undecided by the judge"),
        "{hard}"
    );
    assert!(judge_failed("judge failed: timed out") && !judge_failed("in_flight"));
}

/// Issue 22: the feedback rates have change detectors too. After 5,000
/// ratings at 95 % satisfied (bar 0.8), unhappy users are noticed within a
/// few dozen ratings; the cumulative test alone needed some 940.
#[test]
fn satisfaction_that_drops_after_a_good_stretch_is_caught_soon() {
    let mut cfg = defaults();
    cfg.min_satisfaction = Some(0.8);
    let mut g = SegmentGuard::default();
    let rate = |satisfied: bool| Feedback {
        rated: 1,
        satisfied: u64::from(satisfied),
        ..Feedback::default()
    };
    for i in 0..5000 {
        let action = g.observe_feedback(&cfg, rate((i * 37) % 100 >= 5), 10.0);
        assert_eq!(action, None, "a false breach at rating {i}");
    }
    let caught = (1..=1000).find(|_| g.observe_feedback(&cfg, rate(false), 10.0).is_some());
    assert!(caught.is_some_and(|k| k <= 60), "{caught:?}");
}
