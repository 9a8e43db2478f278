#!/usr/bin/env python3
"""Independent reference of the guard primitives in src/stats (onesided, detector,
latency, cluster), written from their module docs with scipy, vectorised with numpy,
not ported line by line. Random numbers are the same SplitMix64 streams as
src/stats/sim.rs (output i of stream `seed` is mix(seed + (i+1)*GOLDEN),
seed = tag << 32 | run), so for the i.i.d. and latency scenarios the figures must
agree EXACTLY, run by run; the session scenarios draw users' rates from numpy's
Beta and agree only in distribution.

  python3 reference.py exact [RUNS]     per-run figures, to diff with the Rust sim's "exact" lines
  python3 reference.py sessions [RUNS] [P]  false alarms / breaches, sessions of 20 (statistical)

Needs numpy and scipy."""
import math, sys
import numpy as np
from scipy.special import betainc, betaln, lambertw

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
ALPHA, BAR = 0.05, 0.9
THETAS = [0.25, 0.5, 1.0, 2.0, 4.0]


def uniforms(seed, start, count):
    """Outputs start..start+count of SplitMix64 stream `seed`, as floats in [0, 1)."""
    with np.errstate(over="ignore"):
        i = np.arange(start + 1, start + count + 1, dtype=np.uint64)
        z = np.uint64(seed) + i * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0**53)


def seed(tag, run):
    return (tag << 32) | run


# ---- one-sided mixture test (Howard et al. 2021 beta-binomial, truncated) ----
def concentration(alpha):
    k = float(np.real(-lambertw(-alpha**2 / math.e, -1))) - 1.0   # eq. (3.14)
    return 1000.0 / k - 1.0


C = concentration(ALPHA)


def ln_m(s, n, p, c=C):
    s = np.asarray(s, float); n = np.asarray(n, float); f = n - s
    return (betaln(c * p + s, c * (1 - p) + f) - betaln(c * p, c * (1 - p))
            - s * math.log(p) - f * math.log1p(-p))


def thresholds(p, alpha=ALPHA, c=C):
    i0 = betainc(c * p, c * (1 - p), p)               # prior mass below the bar
    return math.log(i0 / alpha + 1 - i0), math.log((1 - i0) / alpha + i0)


def one_sided(s, n, p, alpha=ALPHA, tune=1000.0):
    """+1 confidently above p, -1 confidently below, 0 neither (n > 0)."""
    c = (concentration(alpha) + 1) * tune / 1000.0 - 1
    lo, hi = thresholds(p, alpha, c)
    lm = ln_m(s, n, p, c)
    s = np.asarray(s, float); n = np.asarray(n, float)
    return np.where((s < p * n) & (lm >= lo), -1, np.where((s > p * n) & (lm >= hi), 1, 0))


def two_sided(s, n, p):
    lm = ln_m(s, n, p)
    s = np.asarray(s, float); n = np.asarray(n, float)
    return np.where(lm >= math.log(1 / ALPHA), np.where(s > p * n, 1, -1), 0)


# ---- mixture of Bernoulli CUSUMs ----
class Cusum:
    def __init__(self, bar=BAR, arl=1e6 / 0.05):
        b = 1 - bar
        q = [b / (1 - b) * math.exp(t) / (1 + b / (1 - b) * math.exp(t)) for t in THETAS]
        self.bad = np.array([math.log(x / b) for x in q])
        self.good = np.array([math.log((1 - x) / (1 - b)) for x in q])
        self.h = math.log(len(THETAS) * arl)
        self.c = np.zeros(len(THETAS))

    def run(self, success, lam=None):
        """Feeds outcomes; returns the 1-based index of the first alarm in this chunk, or None.
        C_n = S_n - min(-C_0, min_{k<=n} S_k), S the cumulative sum of the increments."""
        inc = np.where(success[:, None], self.good[None, :], self.bad[None, :])
        if lam is not None:
            inc = inc * lam[:, None]
        s = np.cumsum(inc, axis=0)
        m = np.minimum(np.minimum.accumulate(s, axis=0), -self.c[None, :])
        cus = s - m
        hit = np.flatnonzero(cus.max(axis=1) >= self.h)
        if len(hit):
            self.c = cus[hit[0]]
            return int(hit[0]) + 1
        self.c = cus[-1]
        return None


def drift(tag, run, p0, n0, p1, n1, arl):
    d, pos, chunk = Cusum(arl=arl), 0, 1 << 20
    while pos < n0:
        k = min(chunk, n0 - pos)
        x = uniforms(seed(tag, run), pos, k) < p0
        a = d.run(x)
        if a is not None:                      # false alarm in the good stretch: reset, go on
            d.c[:] = 0; pos += a; continue
        pos += k
    x = uniforms(seed(tag, run), n0, n1) < p1
    a = d.run(x)
    return a if a is not None else "none"


def false_iid(tag, run, p, n, arl):
    d = Cusum(arl=arl)
    for pos in range(0, n, 1 << 20):
        k = min(1 << 20, n - pos)
        if d.run(uniforms(seed(tag, run), pos, k) < p) is not None:
            return 1
    return 0


def detect(run, p, weight, min_samples, arl, n=4000):
    u = uniforms(seed(6, run), 0, 2 * n)
    x = u[0::2] < p; served = u[1::2] < weight
    d = Cusum(arl=arl)
    inc = np.where(x[:, None], d.good[None, :], d.bad[None, :])
    s = np.cumsum(inc, axis=0)
    cus = s - np.minimum(np.minimum.accumulate(s, axis=0), 0)
    alarm = cus.max(axis=1) >= d.h
    k = np.arange(1, n + 1)
    below = one_sided(np.cumsum(x), k, BAR) == -1
    hit = np.flatnonzero((k >= min_samples) & (alarm | below))
    first = int(hit[0]) + 1
    return first, int(np.count_nonzero(served[:first] & ~x[:first]))


def first_pass(run, p, two, n=5000):
    x = uniforms(seed(7, run), 0, n) < p
    k = np.arange(1, n + 1); s = np.cumsum(x)
    if two:
        ok = (two_sided(s, k, BAR) == 1) & (two_sided(np.zeros(n), k, 0.02) == -1)
    else:
        ok = (one_sided(s, k, BAR) == 1) & (one_sided(np.zeros(n), k, 0.02) == -1)
    hit = np.flatnonzero(ok & (k >= 200))
    return int(hit[0]) + 1


def at_the_bar(run, n):
    x = uniforms(seed(5, run), 0, n) < BAR
    k = np.arange(1, n + 1); s = np.cumsum(x)
    return int((two_sided(s, k, BAR) == -1).any()), int((one_sided(s, k, BAR) == -1).any())


# ---- the paired tail test for latency ----
GAMMA, MIN_MS, NB = 1.05, 0.001, 400


def latency(tag, run, sigma, slow, ratio, n, levels=(0.9, 0.95, 0.99)):
    """First comparison at which any level's test says slower (Bonferroni over levels)."""
    firsts = [latency_level(tag, run, sigma, slow, ratio, n, p, ALPHA / len(levels)) for p in levels]
    firsts = [f for f in firsts if f != "none"]
    return min(firsts) if firsts else "none"


def latency_level(tag, run, sigma, slow, ratio, n, p, alpha):
    u = uniforms(seed(tag, run), 0, 4 * n)
    inc = np.exp(sigma * np.sqrt(-2 * np.log(1 - u[0::4])) * np.cos(2 * math.pi * u[1::4]))
    cand = slow * np.exp(sigma * np.sqrt(-2 * np.log(1 - u[2::4])) * np.cos(2 * math.pi * u[3::4]))
    b = np.where(inc > MIN_MS, np.floor(np.log(np.maximum(inc, MIN_MS) / MIN_MS) / math.log(GAMMA)), 0)
    b = np.minimum(b, NB - 1).astype(int)
    # Thresholds are refreshed after comparison j = 20 and every multiple of 16: the
    # incumbent's nearest-rank p-quantile over the first j, as its bucket's middle.
    js = np.array(sorted({20} | set(range(32, n + 1, 16))))
    js = js[js <= n]
    # Bucket counts of each prefix b[:j], one row per refresh point.
    first = np.searchsorted(js, np.arange(n), side="right")   # first refresh whose prefix holds i
    keep = first < len(js)
    h = np.zeros((len(js), NB), dtype=np.int64)
    np.add.at(h, (first[keep], b[keep]), 1)
    below = np.cumsum(np.cumsum(h, axis=0), axis=1)            # values in buckets <= i, per prefix
    ranks = np.array([min(max(math.ceil(p * j), 1), j) for j in js])
    qb = np.argmax(below >= ranks[:, None], axis=1)             # bucket of the rank-th smallest
    thr = np.full(n, np.nan)
    for a, j in enumerate(js):
        end = js[a + 1] if a + 1 < len(js) else n
        thr[j:end] = MIN_MS * GAMMA ** (qb[a] + 0.5)   # used by comparisons j+1 .. end
    valid = ~np.isnan(thr)
    c_only = valid & (cand > ratio * np.nan_to_num(thr)) & ~(inc > np.nan_to_num(thr))
    i_only = valid & ~(cand > ratio * np.nan_to_num(thr)) & (inc > np.nan_to_num(thr))
    cc, ii = np.cumsum(c_only), np.cumsum(i_only)
    tot = cc + ii
    pos = np.zeros(n, int)
    m = tot > 0
    pos[m] = one_sided(cc[m], tot[m], 0.5, alpha, tune=100.0)
    hit = np.flatnonzero(pos == 1)
    return int(hit[0]) + 1 if len(hit) else "none"


# ---- sessions (statistical) ----
def design_effect(nb, sb):
    """Kish's design effect from hashed user buckets (src/stats/cluster.rs docs): the
    worst case n/m under 30 non-empty buckets, else the dispersion ratio times an upper
    margin 1 + 2 sqrt(2/(m-1)); at least 1."""
    n, s, m = nb.sum(), sb.sum(), np.count_nonzero(nb)
    if n == 0:
        return 1.0
    if m < 30:
        return max(1.0, n / max(m, 1))
    if s == 0 or s == n:
        return 1.0
    p = s / n
    d = float(((sb - p * nb) ** 2).sum() / (p * (1 - p) * (n - (nb ** 2).sum() / n)))
    return max(1.0, d * (1 + 2 * math.sqrt(2 / (m - 1))))


def sessions(runs, p=0.92, n=1_000_000, L=20, kappa=10.0, block=200):
    rng = np.random.default_rng(2203)
    arl = 1e6 / 0.05
    raw = tempered = cs_raw = cs_eff = 0
    for _ in range(runs):
        users = n // L
        pu = rng.beta(kappa * p, kappa * (1 - p), users)
        x = rng.random(n) < np.repeat(pu, L)
        raw += Cusum(arl=arl).run(x) is not None
        # Tempered by 1/D, D re-estimated every `block` outcomes over 1024 hashed buckets
    # (the Rust code re-estimates it at every outcome; here at every one of the first 2,000).
        user = np.repeat(np.arange(users), L)
        bucket = (user * 2654435761) % 1024
        d, nb, sb, hit = Cusum(arl=arl), np.zeros(1024), np.zeros(1024), False
        dd = np.ones(n)
        # D before every outcome for the first 2,000, then once per block.
        starts = list(range(0, 2000)) + list(range(2000, n, block))
        for pos, end in zip(starts, starts[1:] + [n]):
            dd[pos:end] = design_effect(nb, sb)
            if not hit and d.run(x[pos:end], np.full(end - pos, 1.0 / dd[pos])) is not None:
                hit = True
            np.add.at(nb, bucket[pos:end], 1); np.add.at(sb, bucket[pos:end], x[pos:end])
        tempered += hit
        # The one-sided agreement test on raw and on effective counts (s/D, n/D).
        k, sc = np.arange(1, n + 1), np.cumsum(x)
        under = sc < BAR * k
        cs_raw += bool((one_sided(sc[under], k[under], BAR) == -1).any())
        cs_eff += bool((one_sided(sc[under] / dd[under], k[under] / dd[under], BAR) == -1).any())
    print(f"sessions of {L} at {p} (Beta({kappa*p:g}, {kappa*(1-p):g})), {runs} runs of {n}: "
          f"detector raw {raw}/{runs}, tempered by 1/D {tempered}/{runs}; one-sided sequence "
          f"raw {cs_raw}/{runs}, effective counts {cs_eff}/{runs}; last D {design_effect(nb, sb):.2f}")


def exact(runs):
    arl = 1e6 / 0.05
    print("exact drift day 0.60:", *[drift(1, r, 0.95, 8_640_000, 0.6, 100_000, arl) for r in range(runs)])
    print("exact drift day 0.85:", *[drift(11, r, 0.95, 8_640_000, 0.85, 100_000, arl) for r in range(runs)])
    print("exact drift 240k 0.60 A(0.005):", *[drift(12, r, 0.95, 240_000, 0.6, 100_000, 1e6 / 0.005) for r in range(runs)])
    print("exact false 0.92:", *[false_iid(2, r, 0.92, 1_000_000, arl) for r in range(runs)])
    print("exact false 0.90:", *[false_iid(13, r, 0.90, 1_000_000, arl) for r in range(runs)])
    print("exact at the bar:", *[f"{a}{b}" for a, b in (at_the_bar(r, 1_000_000) for r in range(runs))])
    print("exact latency equal:", *[latency(8, r, 1.0, 1.0, 1.5, 100_000) for r in range(runs)])
    print("exact latency 2x:", *[latency(9, r, 1.0, 2.0, 1.5, 100_000) for r in range(runs)])
    print("exact detect:", *[f"{a}/{b}" for a, b in (detect(r, 0.6, 0.05, 1, arl) for r in range(runs))])
    print("exact pass two:", *[first_pass(r, 0.95, True) for r in range(runs)])
    print("exact pass one:", *[first_pass(r, 0.95, False) for r in range(runs)])


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "exact"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    if what == "sessions":
        sessions(runs, float(sys.argv[3]) if len(sys.argv) > 3 else 0.92)
    else:
        exact(runs)
