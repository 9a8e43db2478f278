//! Figures from `scripts/sequence/reference.py` (mpmath: Lambert W, quadrature of the
//! mixture, 60-digit closed form, Illinois root finding); its output, as
//! committed in `reference.out`, is quoted below. The intervals
//! also agree with the authors' confseq to 4.4e-12 (checked in the session that wrote this module, against `gostevehoward/confseq` built from source).

use super::*;

// `python3 reference.py` output, verbatim (also in reference.out):
// # ln Gamma (mpmath.loggamma, 50 digits)
// lngamma 1e-300 690.77552789821370521
// lngamma 1e-10 23.025850929882735274
// lngamma 0.001 6.9071788853838536825
// lngamma 0.5 0.57236494292470008707
// lngamma 1 0.0
// lngamma 1.5 -0.12078223763524522235
// lngamma 2 0.0
// lngamma 3.7 1.4280723266653879219
// lngamma 9.99 12.77931521435019288
// lngamma 10 12.801827480081469611
// lngamma 10.5 13.940625219403763633
// lngamma 57.3 173.56386827969143042
// lngamma 120.77 456.7105275187157887
// lngamma 1000.5 5908.6741758486774887
// lngamma 1000000.25 12815508.023025157401
// lngamma 1e9 19723265827.503716771
// lngamma 1.2e15 40465317542045551.422
// # tuning: k = -W_{-1}(-alpha^2/e) - 1 and c = 1000/k - 1
// tune alpha=0.05 k=8.2119680620682542 c=120.77348869865691
// tune alpha=0.01 k=11.756371222495419 c=84.060260608863198
// tune alpha=0.1 k=6.6383520679938123 c=149.63979580435415
// tune alpha=0.5 k=2.6926345288896958 c=370.383486793638
// tune alpha=1e-9 k=45.281268995803561 c=21.08418673276747
// # ln M_n(p) at alpha=0.05 tuning: quad (n<=1e4) and closed form
// lnm s=0 n=1 p=0.5 quad=-7.2320453224418079e-40 closed=-3.3604282500450165e-59 diff=7.23e-40
// lnm s=1 n=1 p=0.5 quad=-7.2320453224418079e-40 closed=-3.3604282500450165e-59 diff=7.23e-40
// lnm s=5 n=10 p=0.2 quad=0.12915603159734885 closed=0.12915603159734885 diff=2.25e-39
// lnm s=92 n=100 p=0.9 quad=-0.15843572201675291 closed=-0.15843572201675291 diff=9.77e-41
// lnm s=920 n=1000 p=0.9 quad=1.066700314605543 closed=1.066700314605543 diff=2.57e-39
// lnm s=920 n=1000 p=0.95 quad=5.9892991692035204 closed=5.9892991692035204 diff=7.53e-40
// lnm s=850 n=1000 p=0.9 quad=9.7686341583211682 closed=9.7686341583211682 diff=2.52e-39
// lnm s=0 n=1000 p=0.01 quad=7.3497736541045384 closed=7.3497736541045384 diff=3.46e-39
// lnm s=3 n=1000 p=0.0001 quad=2.9385917769432592 closed=2.9385917769432592 diff=3.04e-39
// lnm s=9200 n=10000 p=0.9 quad=21.267189966122948 closed=21.267189966122948 diff=2.65e-38
// lnm s=92000 n=100000 p=0.9 closed=233.33881551242318
// lnm s=920000 n=1000000 p=0.919 closed=2.2276894961507479
// lnm s=920000000 n=1000000000 p=0.92001 closed=-7.2940151691887311
// lnm s=1000 n=1000000000 p=1.2e-06 closed=6.3029904364694906
// # intervals (lo, hi)
// interval s=0 n=1 alpha=0.05 lo=0.0 hi=1.0
// interval s=1 n=1 alpha=0.05 lo=0.0 hi=1.0
// interval s=0 n=10 alpha=0.05 lo=0.0 hi=0.91247669061811522
// interval s=5 n=10 alpha=0.05 lo=0.015347524711001988 hi=0.98465247528899801
// interval s=10 n=10 alpha=0.05 lo=0.087523309381884777 hi=1.0
// interval s=1 n=100 alpha=0.05 lo=0.0 hi=0.1219289568427004
// interval s=92 n=100 alpha=0.05 lo=0.7684844879531796 hi=0.98346884620142503
// interval s=184 n=200 alpha=0.05 lo=0.83913176329195339 hi=0.9686915962989317
// interval s=460 n=500 alpha=0.05 lo=0.87767790932417569 hi=0.95243346159929077
// interval s=920 n=1000 alpha=0.05 lo=0.89166508027822429 hi=0.94375594347662517
// interval s=900 n=1000 alpha=0.05 lo=0.86903189610212798 hi=0.92660546028883743
// interval s=850 n=1000 alpha=0.05 lo=0.81385016327214435 hi=0.8823305468701656
// interval s=999 n=1000 alpha=0.05 lo=0.99287281300518613 hi=1.0
// interval s=1 n=1000 alpha=0.05 lo=0.0 hi=0.0071271869948138701
// interval s=20 n=1000 alpha=0.05 lo=0.0090558424870856993 hi=0.036146762463994219
// interval s=9200 n=10000 alpha=0.05 lo=0.91092935380309109 hi=0.92856130834666663
// interval s=92000 n=100000 alpha=0.05 lo=0.91690596377296917 hi=0.92303118430499697
// interval s=920000 n=1000000 alpha=0.05 lo=0.91894437354511096 hi=0.92104806359622258
// interval s=20000 n=1000000 alpha=0.05 lo=0.01946058362854649 hi=0.020548043870531111
// interval s=920000000 n=1000000000 alpha=0.05 lo=0.91995981157678979 hi=0.92004017699356169
// interval s=1000 n=1000000000 alpha=0.05 lo=8.3803798703590063e-7 hi=1.1793628509227611e-6
// interval s=0 n=1000000000 alpha=0.05 lo=0.0 hi=2.9957380338965628e-9
// interval s=920 n=1000 alpha=0.01 lo=0.88607639456142517 hi=0.94737811307971942
// interval s=920 n=1000 alpha=0.1 lo=0.89443169600943921 hi=0.94186423873110149
// interval s=920 n=1000 alpha=0.5 lo=0.9027578241439941 hi=0.93573691811817169
// interval s=920 n=1000 alpha=1e-9 lo=0.84914621255305664 hi=0.96598454062704811
// # samples_to_decide(p_hat, bar, n, alpha)
// decide p_hat=0.92 bar=0.9 n=0 alpha=0.05 N=1949
// decide p_hat=0.85 bar=0.9 n=0 alpha=0.05 N=402
// decide p_hat=0.97 bar=0.9 n=0 alpha=0.05 N=173
// decide p_hat=0.91 bar=0.9 n=0 alpha=0.05 N=9063
// decide p_hat=0.02 bar=0.01 n=0 alpha=0.05 N=1265
// decide p_hat=0.005 bar=0.01 n=0 alpha=0.05 N=2958
// decide p_hat=0.92 bar=0.9 n=5000 alpha=0.05 N=5000
// decide p_hat=0.92 bar=0.9 n=0 alpha=0.01 N=2736
// decide p_hat=0.9000001 bar=0.9 n=0 alpha=0.05 N=311247877659961
// decide p_hat=0.9000000001 bar=0.9 n=0 alpha=0.05 N=None
// interval check on a 46001-point grid: 464/464 cases are intervals

const Z95: f64 = 1.959_963_984_540_054;

fn wilson(k: u64, n: u64) -> (f64, f64) {
    let (n, p) = (n as f64, k as f64 / n as f64);
    let z2 = Z95 * Z95;
    let d = 1.0 + z2 / n;
    let c = (p + z2 / (2.0 * n)) / d;
    let h = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / d;
    ((c - h).max(0.0), (c + h).min(1.0))
}

fn close(a: f64, b: f64, abs: f64, rel: f64) -> bool {
    (a - b).abs() <= abs.max(rel * b.abs())
}

#[test]
fn ln_gamma_matches_mpmath() {
    let table: [(f64, f64); 17] = [
        (1e-300, 690.775_527_898_213_7),
        (1e-10, 23.025_850_929_882_735),
        (0.001, 6.907_178_885_383_853_7),
        (0.5, 0.572_364_942_924_700_1),
        (1.0, 0.0),
        (1.5, -0.120_782_237_635_245_22),
        (2.0, 0.0),
        (3.7, 1.428_072_326_665_387_9),
        (9.99, 12.779_315_214_350_193),
        (10.0, 12.801_827_480_081_469),
        (10.5, 13.940_625_219_403_764),
        (57.3, 173.563_868_279_691_43),
        (120.77, 456.710_527_518_715_8),
        (1000.5, 5_908.674_175_848_677),
        (1_000_000.25, 12_815_508.023_025_157),
        (1e9, 19_723_265_827.503_717),
        (1.2e15, 40_465_317_542_045_551.0),
    ];
    for (x, want) in table {
        let got = ln_gamma(x);
        assert!(
            close(got, want, 5e-15, 4e-16),
            "ln_gamma({x}) = {got}, want {want}"
        );
    }
    assert!(ln_gamma(-1.0).is_nan() && ln_gamma(f64::NAN).is_nan());
    assert_eq!(ln_gamma(0.0), f64::INFINITY);
    assert!(close(
        ln_beta(0.5, 0.5),
        std::f64::consts::PI.ln(),
        1e-14,
        0.0
    ));
}

#[test]
fn tuning_matches_lambert_w() {
    for (alpha, k, c) in [
        (0.05, 8.211_968_062_068_254, 120.773_488_698_656_91),
        (0.01, 11.756_371_222_495_419, 84.060_260_608_863_2),
        (0.1, 6.638_352_067_993_812, 149.639_795_804_354_15),
        (0.5, 2.692_634_528_889_696, 370.383_486_793_638),
        (1e-9, 45.281_268_995_803_56, 21.084_186_732_767_47),
    ] {
        assert!(close(tuning_ratio(alpha), k, 0.0, 1e-14), "k({alpha})");
        assert!(
            close(Sequence::new(alpha).concentration(), c, 0.0, 1e-13),
            "c({alpha})"
        );
    }
}

#[test]
fn ln_mixture_matches_quadrature() {
    let table: [(u64, u64, f64, f64); 14] = [
        (0, 1, 0.5, 0.0),
        (1, 1, 0.5, 0.0),
        (5, 10, 0.2, 0.129_156_031_597_348_85),
        (92, 100, 0.9, -0.158_435_722_016_752_9),
        (920, 1000, 0.9, 1.066_700_314_605_543),
        (920, 1000, 0.95, 5.989_299_169_203_520_4),
        (850, 1000, 0.9, 9.768_634_158_321_168),
        (0, 1000, 0.01, 7.349_773_654_104_538),
        (3, 1000, 0.0001, 2.938_591_776_943_259_2),
        (9200, 10_000, 0.9, 21.267_189_966_122_948),
        (92_000, 100_000, 0.9, 233.338_815_512_423_18),
        (920_000, 1_000_000, 0.919, 2.227_689_496_150_748),
        (920_000_000, 1_000_000_000, 0.92001, -7.294_015_169_188_731),
        (1000, 1_000_000_000, 1.2e-6, 6.302_990_436_469_491),
    ];
    for (s, n, p, want) in table {
        let got = ln_mixture(s, n, p, 0.05);
        // Observed: within 6e-13 of the 60-digit value, n = 1e9 included.
        assert!(
            close(got, want, 2e-12, 1e-14),
            "ln M({s}, {n}, {p}) = {got}, want {want}"
        );
    }
    assert_eq!(ln_mixture(0, 0, 0.3, 0.05), 0.0);
    assert_eq!(ln_mixture(1, 5, 0.0, 0.05), f64::INFINITY);
    assert_eq!(ln_mixture(0, 5, 0.0, 0.05), 0.0);
    assert_eq!(ln_mixture(4, 5, 1.0, 0.05), f64::INFINITY);
    assert_eq!(ln_mixture(5, 5, 1.0, 0.05), 0.0);
}

#[rustfmt::skip]
const INTERVALS: [(u64, u64, f64, f64, f64); 26] = [
    (0, 1, 0.05, 0.0, 1.0),
    (1, 1, 0.05, 0.0, 1.0),
    (0, 10, 0.05, 0.0, 0.912_476_690_618_115_22),
    (5, 10, 0.05, 0.015_347_524_711_001_988, 0.984_652_475_288_998_01),
    (10, 10, 0.05, 0.087_523_309_381_884_777, 1.0),
    (1, 100, 0.05, 0.0, 0.121_928_956_842_700_4),
    (92, 100, 0.05, 0.768_484_487_953_179_6, 0.983_468_846_201_425_03),
    (184, 200, 0.05, 0.839_131_763_291_953_39, 0.968_691_596_298_931_7),
    (460, 500, 0.05, 0.877_677_909_324_175_69, 0.952_433_461_599_290_77),
    (920, 1000, 0.05, 0.891_665_080_278_224_29, 0.943_755_943_476_625_17),
    (900, 1000, 0.05, 0.869_031_896_102_127_98, 0.926_605_460_288_837_43),
    (850, 1000, 0.05, 0.813_850_163_272_144_35, 0.882_330_546_870_165_6),
    (999, 1000, 0.05, 0.992_872_813_005_186_13, 1.0),
    (1, 1000, 0.05, 0.0, 0.007_127_186_994_813_870_1),
    (20, 1000, 0.05, 0.009_055_842_487_085_699_3, 0.036_146_762_463_994_219),
    (9200, 10_000, 0.05, 0.910_929_353_803_091_09, 0.928_561_308_346_666_63),
    (92_000, 100_000, 0.05, 0.916_905_963_772_969_17, 0.923_031_184_304_996_97),
    (920_000, 1_000_000, 0.05, 0.918_944_373_545_110_96, 0.921_048_063_596_222_58),
    (20_000, 1_000_000, 0.05, 0.019_460_583_628_546_49, 0.020_548_043_870_531_111),
    (920_000_000, 1_000_000_000, 0.05, 0.919_959_811_576_789_79, 0.920_040_176_993_561_69),
    (1000, 1_000_000_000, 0.05, 8.380_379_870_359_006_3e-7, 1.179_362_850_922_761_1e-6),
    (0, 1_000_000_000, 0.05, 0.0, 2.995_738_033_896_562_8e-9),
    (920, 1000, 0.01, 0.886_076_394_561_425_17, 0.947_378_113_079_719_42),
    (920, 1000, 0.1, 0.894_431_696_009_439_21, 0.941_864_238_731_101_49),
    (920, 1000, 0.5, 0.902_757_824_143_994_1, 0.935_736_918_118_171_69),
    (920, 1000, 1e-9, 0.849_146_212_553_056_64, 0.965_984_540_627_048_11),
];

#[test]
fn interval_matches_reference() {
    for (s, n, alpha, lo, hi) in INTERVALS {
        let (got_lo, got_hi) = interval(s, n, alpha);
        // Observed: within 4e-15 of the 17-digit reference, n = 1e9 included.
        assert!(
            close(got_lo, lo, 1e-13, 1e-12),
            "lo({s}, {n}, {alpha}) = {got_lo}, want {lo}"
        );
        assert!(
            close(got_hi, hi, 1e-13, 1e-12),
            "hi({s}, {n}, {alpha}) = {got_hi}, want {hi}"
        );
    }
    assert_eq!(interval(0, 0, 0.05), (0.0, 1.0));
}

#[test]
fn position_agrees_with_interval() {
    let bars = [
        0.001, 0.01, 0.02, 0.05, 0.5, 0.8, 0.85, 0.9, 0.92, 0.95, 0.99, 0.999,
    ];
    for n in [
        1,
        2,
        5,
        10,
        50,
        100,
        200,
        500,
        1000,
        5000,
        100_000,
        1_000_000_000,
    ] {
        for k in 0..=40u64 {
            let s = n * k / 40;
            for alpha in [0.05, 0.01, 0.2] {
                let (lo, hi) = interval(s, n, alpha);
                for bar in bars {
                    let near = (bar - lo).abs() < 1e-9 || (bar - hi).abs() < 1e-9;
                    let want = if bar <= lo {
                        Position::Above
                    } else if bar > hi {
                        Position::Below
                    } else {
                        Position::Inside
                    };
                    let got = position(s, n, bar, alpha);
                    assert!(
                        near || got == want,
                        "{s}/{n} bar {bar} alpha {alpha}: {got:?}, CS ({lo}, {hi})"
                    );
                }
            }
        }
    }
    // The ends and odd bars.
    assert_eq!(position(0, 0, 0.9, 0.05), Position::Inside);
    assert_eq!(position(5, 10, f64::NAN, 0.05), Position::Inside);
    assert_eq!(position(5, 10, 0.0, 0.05), Position::Above);
    assert_eq!(position(5, 10, -1.0, 0.05), Position::Above);
    assert_eq!(position(5, 10, 1.0, 0.05), Position::Below);
    assert_eq!(position(10, 10, 1.0, 0.05), Position::Inside);
    assert_eq!(position(10, 10, 1.5, 0.05), Position::Below);
    let seq = Sequence::new(0.05);
    assert!(seq.error_rate_within(3, 10, 1.0));
    assert!(seq.error_rate_within(0, 1000, 0.01));
    assert!(!seq.error_rate_within(20, 1000, 0.01));
    assert_eq!(seq.position(20, 1000, 0.01), Position::Inside); // CS (0.0091, 0.036)
    assert!(seq.interval(30, 1000).0 > 0.01);
    assert_eq!(seq.position(30, 1000, 0.01), Position::Above);
}

#[test]
fn contains_wilson() {
    // Every (s, n) up to n = 100, then ~100 points at each larger n up to
    // 10⁷ (kept small: this runs in every `cargo test`). At s = 0 or s = n
    // with n ≥ ~2000 the sequence's far end is the *tighter* one
    // (≈ ln(1/α)/(n − c ln(1 + n/c)) against Wilson's z²/(n + z²)), so those
    // two corners are left out there.
    let mut cases = 0;
    for n in (1..=100u64).chain([200, 400, 1000, 1999, 2000, 5000, 100_000, 10_000_000]) {
        let step = (n / 100).max(1);
        for s in (0..=n).step_by(step as usize).chain([1, n - 1]) {
            if n > 1000 && (s == 0 || s == n) {
                continue;
            }
            let (lo, hi) = interval(s, n, 0.05);
            let (wl, wh) = wilson(s, n);
            assert!(
                lo <= wl + 1e-12 && hi >= wh - 1e-12,
                "{s}/{n}: CS ({lo}, {hi}) Wilson ({wl}, {wh})"
            );
            cases += 1;
        }
    }
    assert!(cases > 5_000, "{cases}");
}

#[test]
fn shrinks_with_n_and_is_monotone_in_successes() {
    for rate in [0.02, 0.5, 0.9, 0.92, 0.99] {
        let mut last = f64::INFINITY;
        for n in [
            100u64,
            200,
            500,
            1000,
            2000,
            5000,
            10_000,
            100_000,
            1_000_000,
            1_000_000_000,
        ] {
            let s = (rate * n as f64).round() as u64;
            let (lo, hi) = interval(s, n, 0.05);
            assert!(hi - lo < last, "width at {s}/{n}");
            last = hi - lo;
        }
    }
    for n in [1u64, 7, 100, 1000, 12_345] {
        let (mut last_lo, mut last_hi) = (-1.0, -1.0);
        for s in 0..=n.min(2000) {
            let (lo, hi) = interval(s, n, 0.05);
            assert!(lo >= last_lo && hi >= last_hi, "{s}/{n}");
            assert!((0.0..=1.0).contains(&lo) && lo < hi && hi <= 1.0);
            (last_lo, last_hi) = (lo, hi);
        }
    }
    // Lower α, wider sequence.
    let widths: Vec<f64> = [0.5, 0.1, 0.05, 0.01, 1e-9]
        .iter()
        .map(|&a| {
            let (lo, hi) = interval(920, 1000, a);
            hi - lo
        })
        .collect();
    assert!(widths.windows(2).all(|w| w[0] < w[1]), "{widths:?}");
}

#[test]
fn edge_cases_clamp() {
    // α outside (0, 1) clamps to [ALPHA_MIN, ALPHA_MAX]; NaN is the strictest.
    assert_eq!(interval(920, 1000, 0.0), interval(920, 1000, ALPHA_MIN));
    assert_eq!(interval(920, 1000, -3.0), interval(920, 1000, ALPHA_MIN));
    assert_eq!(
        interval(920, 1000, f64::NAN),
        interval(920, 1000, ALPHA_MIN)
    );
    assert_eq!(interval(920, 1000, 1.0), interval(920, 1000, ALPHA_MAX));
    assert_eq!(interval(920, 1000, 7.0), interval(920, 1000, ALPHA_MAX));
    let (lo, hi) = interval(920, 1000, f64::INFINITY);
    assert!(lo > 0.89 && hi < 0.95);
    // successes > n counts as n.
    assert_eq!(interval(2000, 1000, 0.05), interval(1000, 1000, 0.05));
    assert_eq!(
        position(2000, 1000, 0.9, 0.05),
        position(1000, 1000, 0.9, 0.05)
    );
    // Huge n: no overflow, and the answer is the reference one (see table).
    let (lo, hi) = interval(u64::MAX / 2, u64::MAX, 0.05);
    assert!(lo < 0.5 && hi > 0.5 && hi - lo < 1e-8, "({lo}, {hi})");
    assert_eq!(interval(u64::MAX, u64::MAX, 0.05).1, 1.0);
    assert_eq!(
        position(920_000_000, 1_000_000_000, 0.9199, 0.05),
        Position::Above
    );
    assert_eq!(
        position(920_000_000, 1_000_000_000, 0.92, 0.05),
        Position::Inside
    );
    assert_eq!(
        position(920_000_000, 1_000_000_000, 0.9201, 0.05),
        Position::Below
    );
}

#[test]
fn samples_to_decide_matches_reference() {
    let table: [(f64, f64, u64, f64, Option<u64>); 10] = [
        (0.92, 0.9, 0, 0.05, Some(1949)),
        (0.85, 0.9, 0, 0.05, Some(402)),
        (0.97, 0.9, 0, 0.05, Some(173)),
        (0.91, 0.9, 0, 0.05, Some(9063)),
        (0.02, 0.01, 0, 0.05, Some(1265)),
        (0.005, 0.01, 0, 0.05, Some(2958)),
        (0.92, 0.9, 5000, 0.05, Some(5000)),
        (0.92, 0.9, 0, 0.01, Some(2736)),
        (0.9000001, 0.9, 0, 0.05, Some(311_247_877_659_961)),
        (0.9000000001, 0.9, 0, 0.05, None),
    ];
    for (p_hat, bar, n, alpha, want) in table {
        let got = samples_to_decide(p_hat, bar, n, alpha);
        let ok = match (got, want) {
            // The 3e14 row is a threshold crossing at a slope of ~1e-14 per
            // sample: f64 can place it only to within a few parts in 1e6.
            (Some(g), Some(w)) if w > 1_000_000 => (g as f64 / w as f64 - 1.0).abs() < 1e-5,
            _ => got == want,
        };
        assert!(
            ok,
            "samples_to_decide({p_hat}, {bar}, {n}, {alpha}) = {got:?}, want {want:?}"
        );
    }
    assert_eq!(samples_to_decide(0.9, 0.9, 100, 0.05), None);
    assert_eq!(samples_to_decide(f64::NAN, 0.9, 100, 0.05), None);
    assert_eq!(samples_to_decide(0.9, f64::NAN, 100, 0.05), None);
    assert_eq!(samples_to_decide(0.95, 1.0, 10, 0.05), Some(10));
    assert_eq!(samples_to_decide(1.0, 1.0, 10, 0.05), None);
    // It agrees with `position` for whole counts along the way.
    let n = samples_to_decide(0.85, 0.9, 0, 0.05).unwrap();
    assert_eq!(position(85 * n / 100, n, 0.9, 0.05), Position::Below);
    assert_eq!(
        position((0.85 * (n / 2) as f64) as u64, n / 2, 0.9, 0.05),
        Position::Inside
    );
}
