//! A seeded simulation of the guard primitives (`onesided`, `detector`,
//! `latency`, `cluster`) over the scenarios of `../shared/sim/sequential`:
//! drift after a good day, false alarms (i.i.d. and in sessions), latency
//! equal and 2× slower, a bad candidate at 5 % of 100 req/s, and the first
//! pass at 0.95.
//!
//! Random numbers come from SplitMix64 (output `i` of stream `seed` is
//! `mix(seed + (i+1)·γ)`), which `scripts/sim/reference.py` reproduces in
//! numpy, so for the i.i.d. scenarios the independent Python reference sees
//! the very same outcomes and must find the very same alarm times.
//!
//! The fast subset runs in `cargo test --lib stats::sim` (a few seconds);
//! the full table in
//! `cargo test --release --lib stats::sim::full -- --ignored --nocapture`.

use super::cluster::Inflation;
use super::detector::{Detector, Watch, arl_for};
use super::latency::SlowdownTest;
use super::onesided::OneSided;
use super::sequence::{Position, Sequence};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 (Steele, Lea & Flood 2014).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 bits.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(crate) fn bernoulli(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal (Box–Muller, one of the pair).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Gamma(shape, 1) by Marsaglia & Tsang (2000), boosted below 1.
    fn gamma(&mut self, shape: f64) -> f64 {
        if shape < 1.0 {
            let u = 1.0 - self.uniform();
            return self.gamma(shape + 1.0) * u.powf(1.0 / shape);
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = 1.0 - self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v;
            }
        }
    }

    pub(crate) fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a);
        let y = self.gamma(b);
        x / (x + y)
    }
}

/// The seed of run `run` of scenario `tag` (the Python reference uses the same).
pub(crate) fn seed(tag: u64, run: u64) -> u64 {
    (tag << 32) | run
}

/// Nearest-rank quantile of a sample (sorted here).
fn quantile(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Comparisons after the drop until the detector alarms (`u64::MAX` if not
/// within `n1`), for a good stretch of `n0` at `p0` then `p1`, i.i.d.
pub(crate) fn drift(tag: u64, run: u64, p0: f64, n0: u64, p1: f64, n1: u64, arl: f64) -> u64 {
    let mut rng = Rng::new(seed(tag, run));
    let mut d = Detector::new(Watch::Min, 0.9, arl);
    for _ in 0..n0 {
        // An alarm during the good stretch is a false alarm: reset and go on.
        if d.observe(rng.bernoulli(p0)) {
            d.reset();
        }
    }
    for k in 1..=n1 {
        if d.observe(rng.bernoulli(p1)) {
            return k;
        }
    }
    u64::MAX
}

/// Whether the detector alarms within `n` i.i.d. outcomes at `p`.
pub(crate) fn false_alarm_iid(tag: u64, run: u64, p: f64, n: u64, arl: f64) -> bool {
    let mut rng = Rng::new(seed(tag, run));
    let mut d = Detector::new(Watch::Min, 0.9, arl);
    (0..n).any(|_| d.observe(rng.bernoulli(p)))
}

/// Sessions of `len` outcomes per user, each user's rate from
/// `Beta(kappa·p, kappa·(1−p))`; whether the detector (tempered by the
/// online design effect when `temper`) alarms within `n`, and the design
/// effect estimated at the end.
fn false_alarm_sessions(
    run: u64,
    p: f64,
    n: u64,
    len: u64,
    kappa: f64,
    arl: f64,
    temper: bool,
) -> (bool, f64) {
    let mut rng = Rng::new(seed(3, run));
    let mut d = Detector::new(Watch::Min, 0.9, arl);
    let mut inflation = Inflation::default();
    let mut alarmed = false;
    let (mut user, mut rate) = (0u64, p);
    for i in 0..n {
        if i % len == 0 {
            user = i / len;
            rate = rng.beta(kappa * p, kappa * (1.0 - p));
        }
        let x = rng.bernoulli(rate);
        let lambda = if temper {
            1.0 / inflation.design_effect()
        } else {
            1.0
        };
        inflation.observe(user, x);
        if d.observe_tempered(x, lambda) {
            alarmed = true;
            break;
        }
    }
    (alarmed, inflation.design_effect())
}

/// Runs out of `runs` in which the one-sided agreement test (bar 0.9)
/// breaches falsely within `n` outcomes at `p` (counts from the start, as
/// the guard after a reset), i.i.d. (`len = 1`) or in sessions, on raw or
/// inflation-adjusted counts.
fn cs_false_breaches(p: f64, n: u64, runs: u64, len: u64, inflate: bool) -> u64 {
    let test = Sequence::new(0.05).one_sided(0.9);
    let mut hits = 0;
    for run in 0..runs {
        let mut rng = Rng::new(seed(4, run));
        let mut inflation = Inflation::default();
        let (mut s, mut rate, mut user) = (0u64, p, 0u64);
        for i in 0..n {
            if len > 1 && i % len == 0 {
                user = i / len;
                rate = rng.beta(10.0 * p, 10.0 * (1.0 - p));
            }
            let x = rng.bernoulli(rate);
            s += u64::from(x);
            if inflate {
                inflation.observe(if len > 1 { user } else { i }, x);
            }
            // Only a rate under the bar can be "below" it: skip the rest.
            if s as f64 >= 0.9 * (i + 1) as f64 {
                continue;
            }
            let pos = if inflate {
                let (se, ne) = inflation.effective(s, i + 1);
                test.position_f(se, ne)
            } else {
                test.position(s, i + 1)
            };
            if pos == Position::Below {
                hits += 1;
                break;
            }
        }
    }
    hits
}

/// Runs out of `runs` in which the two-sided sequence (as the guard today)
/// and the one-sided test breach falsely at exactly the bar within `n`.
fn at_the_bar(runs: u64, n: u64) -> (u64, u64) {
    (0..runs).fold((0, 0), |(two, one), run| {
        let (a, b) = at_the_bar_run(run, n);
        (two + u64::from(a), one + u64::from(b))
    })
}

/// Whether run `run` at exactly the bar breaches falsely within `n`: by the
/// two-sided sequence, by the one-sided test.
fn at_the_bar_run(run: u64, n: u64) -> (bool, bool) {
    let seq = Sequence::new(0.05);
    let one = seq.one_sided(0.9);
    let mut rng = Rng::new(seed(5, run));
    let (mut s, mut two_done, mut one_done) = (0u64, false, false);
    for i in 1..=n {
        s += u64::from(rng.bernoulli(0.9));
        two_done = two_done || seq.position(s, i, 0.9) == Position::Below;
        one_done = one_done || one.position(s, i) == Position::Below;
        if one_done && two_done {
            break;
        }
    }
    (two_done, one_done)
}

/// Lognormal latencies (σ) on both sides, the candidate `slow` times the
/// incumbent's scale; comparisons until the test says slower (`u64::MAX`:
/// not within `n`).
pub(crate) fn latency(tag: u64, run: u64, sigma: f64, slow: f64, ratio: f64, n: u64) -> u64 {
    let mut rng = Rng::new(seed(tag, run));
    let mut t = SlowdownTest::new(ratio, 0.05, &[]);
    for k in 1..=n {
        let inc = (sigma * rng.normal()).exp();
        let cand = slow * (sigma * rng.normal()).exp();
        if t.observe(inc, cand) {
            return k;
        }
    }
    u64::MAX
}

/// A fresh candidate at `p` served at `weight` of the traffic, every request
/// compared: comparisons until a breach (one-sided agreement test or
/// detector, not before `min_samples`) and wrong answers served until then.
pub(crate) fn detect(run: u64, p: f64, weight: f64, min_samples: u64, arl: f64) -> (u64, u64) {
    let mut rng = Rng::new(seed(6, run));
    let test = Sequence::new(0.05).one_sided(0.9);
    let mut d = Detector::new(Watch::Min, 0.9, arl);
    let (mut s, mut wrong) = (0u64, 0u64);
    for k in 1..=100_000u64 {
        let x = rng.bernoulli(p);
        let served = rng.bernoulli(weight);
        s += u64::from(x);
        wrong += u64::from(served && !x);
        let alarm = d.observe(x);
        if k >= min_samples && (alarm || test.position(s, k) == Position::Below) {
            return (k, wrong);
        }
    }
    (u64::MAX, wrong)
}

/// The first comparison at which a candidate at `p` (no errors) passes:
/// agreement confidently above 0.9 and the error rate confidently below 0.02
/// (one-sided), or (`two_sided`) the same with today's two-sided sequence.
pub(crate) fn first_pass(run: u64, p: f64, two_sided: bool) -> u64 {
    let mut rng = Rng::new(seed(7, run));
    let seq = Sequence::new(0.05);
    let (agree, errors): (OneSided, OneSided) = (seq.one_sided(0.9), seq.one_sided(0.02));
    let mut s = 0u64;
    for k in 1..=100_000u64 {
        s += u64::from(rng.bernoulli(p));
        let pass = if two_sided {
            k >= 200
                && seq.position(s, k, 0.9) == Position::Above
                && seq.error_rate_within(0, k, 0.02)
        } else {
            k >= 200 && agree.at_least(s, k) && errors.at_most(0, k)
        };
        if pass {
            return k;
        }
    }
    u64::MAX
}

fn summary(v: &mut [u64]) -> String {
    let within = v.iter().filter(|k| **k != u64::MAX).count();
    format!(
        "median {}, p99 {}, max {} ({}/{} within the cap)",
        show(quantile(v, 0.5)),
        show(quantile(v, 0.99)),
        show(*v.iter().max().unwrap_or(&0)),
        within,
        v.len()
    )
}

fn show(k: u64) -> String {
    if k == u64::MAX {
        "none".into()
    } else {
        k.to_string()
    }
}

/// The brief's false-alarm budget: 5 % over 10⁶ outcomes.
fn arl() -> f64 {
    arl_for(0.05, 1e6)
}

#[test]
fn fast_drift_is_caught_quickly_after_a_good_stretch() {
    // 100k good comparisons (the day in the full run), then 0.60.
    let mut v: Vec<u64> = (0..20)
        .map(|r| drift(1, r, 0.95, 100_000, 0.6, 10_000, arl()))
        .collect();
    let med = quantile(&mut v, 0.5);
    let max = *v.iter().max().unwrap();
    assert!(med <= 100 && max <= 200, "median {med}, max {max}");
}

#[test]
fn fast_no_false_alarm_at_092_and_latency_equal_holds() {
    for r in 0..5 {
        assert!(!false_alarm_iid(2, r, 0.92, 100_000, arl()), "run {r}");
    }
    for r in 0..3 {
        assert_eq!(latency(8, r, 1.0, 1.0, 1.5, 20_000), u64::MAX, "run {r}");
    }
    // A 3× slower candidate is caught within 2,000 comparisons.
    let k = latency(9, 0, 1.0, 3.0, 1.5, 2_000);
    assert!(k < 2_000, "{k}");
}

#[test]
fn fast_a_bad_candidate_is_stopped_with_few_wrong_answers() {
    for r in 0..20 {
        let (k, wrong) = detect(r, 0.6, 0.05, 1, arl());
        assert!(
            k <= 500 && wrong <= 10,
            "run {r}: {k} comparisons, {wrong} wrong"
        );
    }
    let k = first_pass(0, 0.95, false);
    assert!(k < 400, "{k}");
}

/// The full table (release mode: about a minute on one core).
#[test]
#[ignore]
fn full() {
    let t0 = std::time::Instant::now();
    let runs = 100;
    println!("| scenario | figure |\n|---|---|");
    // Drift after one day at 0.95 (weight 100 %).
    let mut v: Vec<u64> = (0..runs)
        .map(|r| drift(1, r, 0.95, 8_640_000, 0.6, 100_000, arl()))
        .collect();
    println!(
        "| a day (8.64M) at 0.95, then 0.60: comparisons to alarm | {} |",
        summary(&mut v)
    );
    let mut v: Vec<u64> = (0..runs)
        .map(|r| drift(11, r, 0.95, 8_640_000, 0.85, 100_000, arl()))
        .collect();
    println!(
        "| a day at 0.95, then 0.85: comparisons to alarm | {} |",
        summary(&mut v)
    );
    let mut v: Vec<u64> = (0..runs)
        .map(|r| drift(12, r, 0.95, 240_000, 0.6, 100_000, arl_for(0.005, 1e6)))
        .collect();
    println!(
        "| 240k at 0.95, then 0.60, A for α = 0.005 (route split 10 ways) | {} |",
        summary(&mut v)
    );
    // False alarms at 0.92 over 10⁶.
    let hits = (0..runs)
        .filter(|r| false_alarm_iid(2, *r, 0.92, 1_000_000, arl()))
        .count();
    println!("| detector, 0.92 vs 0.9, i.i.d., runs of 10⁶ with a false alarm | {hits}/{runs} |");
    let hits = (0..runs)
        .filter(|r| false_alarm_iid(13, *r, 0.90, 1_000_000, arl()))
        .count();
    println!("| detector, exactly 0.9, i.i.d., runs of 10⁶ with a false alarm | {hits}/{runs} |");
    for (temper, name) in [(false, "raw"), (true, "tempered by 1/D̂")] {
        let mut d_hat = 0.0;
        let hits = (0..runs)
            .filter(|r| {
                let (hit, d) = false_alarm_sessions(*r, 0.92, 1_000_000, 20, 10.0, arl(), temper);
                d_hat += d;
                hit
            })
            .count();
        println!(
            "| detector, 0.92, sessions of 20 (Beta(9.2, 0.8)), {name}: runs with a false alarm | {hits}/{runs} (mean D̂ {:.2}) |",
            d_hat / runs as f64
        );
    }
    let (two, one) = at_the_bar(200, 1_000_000);
    println!(
        "| agreement exactly at the bar, 200 runs of 10⁶: false breaches two-sided / one-sided | {two}/200 / {one}/200 |"
    );
    for (p, len, inflate) in [
        (0.92, 1, false),
        (0.92, 20, false),
        (0.92, 20, true),
        (0.91, 20, false),
        (0.91, 20, true),
    ] {
        let hits = cs_false_breaches(p, 1_000_000, runs, len, inflate);
        println!(
            "| one-sided sequence, {p} vs 0.9, sessions of {len}, {}: runs of 10⁶ with a false breach | {hits}/{runs} |",
            if inflate {
                "effective counts"
            } else {
                "raw counts"
            }
        );
    }
    // Latency.
    let hits = (0..runs)
        .filter(|r| latency(8, *r, 1.0, 1.0, 1.5, 100_000) != u64::MAX)
        .count();
    println!(
        "| latency identical (lognormal σ = 1), ratio 1.5, runs of 10⁵ that breach | {hits}/{runs} |"
    );
    let mut v: Vec<u64> = (0..runs)
        .map(|r| latency(9, r, 1.0, 2.0, 1.5, 100_000))
        .collect();
    println!(
        "| latency: candidate 2× slower, ratio 1.5: comparisons to breach | {} |",
        summary(&mut v)
    );
    // A bad candidate at 5 % of 100 req/s.
    for min in [1, 200] {
        let mut k: Vec<u64> = Vec::new();
        let mut w: Vec<u64> = Vec::new();
        for r in 0..1000 {
            let (a, b) = detect(r, 0.6, 0.05, min, arl());
            k.push(a);
            w.push(b);
        }
        println!(
            "| 0.60 at 5 % of 100 req/s, min_samples {min}: comparisons (= s/100) | {} |",
            summary(&mut k)
        );
        println!("| … wrong answers served | {} |", summary(&mut w));
    }
    // First pass at 0.95.
    for (two, name) in [(true, "two-sided (today)"), (false, "one-sided")] {
        let mut v: Vec<u64> = (0..runs).map(|r| first_pass(r, 0.95, two)).collect();
        println!(
            "| first pass at 0.95 (no errors), {name} | {} |",
            summary(&mut v)
        );
    }
    println!("(simulated in {:.0} s)", t0.elapsed().as_secs_f64());
}

/// Cost per outcome of the detector and of a one-sided position (release;
/// wall clock, so noisy on a loaded machine).
#[test]
#[ignore]
fn cost() {
    use std::hint::black_box;
    let mut rng = Rng::new(1);
    let xs: Vec<bool> = (0..1 << 20).map(|_| rng.bernoulli(0.95)).collect();
    let mut d = Detector::new(Watch::Min, 0.9, arl());
    let t = std::time::Instant::now();
    let mut alarms = 0u64;
    for _ in 0..100 {
        for x in &xs {
            alarms += u64::from(d.observe(black_box(*x)));
        }
    }
    let per = t.elapsed().as_secs_f64() * 1e9 / (100.0 * xs.len() as f64);
    println!("detector: {per:.2} ns per outcome ({alarms} alarms)");
    let test = Sequence::new(0.05).one_sided(0.9);
    let t = std::time::Instant::now();
    let mut below = 0u64;
    for (i, x) in xs.iter().enumerate() {
        let n = i as u64 + 1;
        below += u64::from(test.position(black_box(n - u64::from(!x)), n) == Position::Below);
    }
    let per = t.elapsed().as_secs_f64() * 1e9 / xs.len() as f64;
    println!("one-sided position: {per:.1} ns ({below})");
    let mut f = Inflation::default();
    let t = std::time::Instant::now();
    for (i, x) in xs.iter().enumerate() {
        f.observe(i as u64 / 20, *x);
    }
    let per = t.elapsed().as_secs_f64() * 1e9 / xs.len() as f64;
    println!(
        "inflation observe: {per:.1} ns (D̂ {:.3})",
        f.design_effect()
    );
}

/// Per-run figures of the first `US_RUNS` runs (default 10), in the form
/// `scripts/sim/reference.py exact` prints, to diff the two.
#[test]
#[ignore]
fn exact() {
    let runs: u64 = std::env::var("US_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let line = |name: &str, v: Vec<String>| println!("exact {name}: {}", v.join(" "));
    let join = |v: Vec<u64>| v.into_iter().map(show).collect::<Vec<_>>();
    let a = arl();
    line(
        "drift day 0.60",
        join(
            (0..runs)
                .map(|r| drift(1, r, 0.95, 8_640_000, 0.6, 100_000, a))
                .collect(),
        ),
    );
    line(
        "drift day 0.85",
        join(
            (0..runs)
                .map(|r| drift(11, r, 0.95, 8_640_000, 0.85, 100_000, a))
                .collect(),
        ),
    );
    line(
        "drift 240k 0.60 A(0.005)",
        join(
            (0..runs)
                .map(|r| drift(12, r, 0.95, 240_000, 0.6, 100_000, arl_for(0.005, 1e6)))
                .collect(),
        ),
    );
    line(
        "false 0.92",
        join(
            (0..runs)
                .map(|r| u64::from(false_alarm_iid(2, r, 0.92, 1_000_000, a)))
                .collect(),
        ),
    );
    line(
        "false 0.90",
        join(
            (0..runs)
                .map(|r| u64::from(false_alarm_iid(13, r, 0.90, 1_000_000, a)))
                .collect(),
        ),
    );
    line(
        "at the bar",
        (0..runs)
            .map(|r| {
                let (two, one) = at_the_bar_run(r, 1_000_000);
                format!("{}{}", u8::from(two), u8::from(one))
            })
            .collect(),
    );
    line(
        "latency equal",
        join(
            (0..runs)
                .map(|r| latency(8, r, 1.0, 1.0, 1.5, 100_000))
                .collect(),
        ),
    );
    line(
        "latency 2x",
        join(
            (0..runs)
                .map(|r| latency(9, r, 1.0, 2.0, 1.5, 100_000))
                .collect(),
        ),
    );
    line(
        "detect",
        (0..runs)
            .map(|r| {
                let (k, w) = detect(r, 0.6, 0.05, 1, a);
                format!("{k}/{w}")
            })
            .collect(),
    );
    line(
        "pass two",
        join((0..runs).map(|r| first_pass(r, 0.95, true)).collect()),
    );
    line(
        "pass one",
        join((0..runs).map(|r| first_pass(r, 0.95, false)).collect()),
    );
}
