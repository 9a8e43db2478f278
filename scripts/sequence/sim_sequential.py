#!/usr/bin/env python3
"""How often does a guard that re-checks a Wilson interval after every comparison roll back a
candidate that is truly above the bar (or promote one truly below)? Mirrors the product's
default guard (docs/src/concepts/guards.md, README): count window 1000, min_samples 200, breach when the Wilson
95 % upper bound < min_agreement, pass when the lower bound >= min_agreement; a breach clears
the window. Usage: guard_false_alarms.py P BAR COMPARISONS RUNS [seed]

sim_sequential.py: a copy of shared/sim/guard_false_alarms.py, extended with the sequential
guard of docs/src/concepts/guards.md (the beta-binomial mixture confidence sequence of src/lib.rs, Howard et al.
2021), so the two can be compared run for run on the same outcomes:

    sim_sequential.py P BAR COMPARISONS RUNS [SEED] [--method wilson|window|cumulative]
                      [--alpha 0.05] [--window 1000] [--min-samples 200] [--kind breach|pass]

  wilson      the original: Wilson 95 % over a sliding count window (the default, as before);
  window      the sequence at level alpha over the same sliding count window (a naive swap);
  cumulative  the sequence at level alpha over all comparisons since the last reset (here: the
              start of the run, since a run ends at its first event).
min_samples applies to all three. --kind defaults to breach when P >= BAR, pass otherwise (as
before); ask for the other (a true breach's or pass's time) with --kind. Needs numpy and scipy.
"""
import argparse
import math
import sys

import numpy as np
from scipy.special import betaln

Z = 1.959963984540054

def wilson(k, n):
    p = k / n
    z2 = Z * Z
    d = 1 + z2 / n
    c = (p + z2 / (2 * n)) / d
    h = Z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / d
    return c - h, c + h

def first_event(x, bar, window=1000, min_samples=200, kind="breach"):
    """Index of the first breach (or pass) of a fresh window over outcomes x, or -1."""
    c = np.concatenate([[0], np.cumsum(x)])
    idx = np.arange(1, len(x) + 1)
    n = np.minimum(idx, window)
    k = c[idx] - c[idx - n]
    lo, hi = wilson(k.astype(float), n.astype(float))
    ok = n >= min_samples
    hit = ok & ((hi < bar) if kind == "breach" else (lo >= bar))
    w = np.flatnonzero(hit)
    return int(w[0]) if len(w) else -1

TUNE_N = 1000


def tuning_ratio(alpha):
    """k = m/rho of Howard et al. (2021) eq. (3.14): the root of k - ln(1+k) = 2 ln(1/alpha)."""
    l = 2 * math.log(1 / alpha)
    k = l + math.log(1 + l)
    for _ in range(50):
        k -= (k - math.log1p(k) - l) * (1 + k) / k
    return k


def ln_mixture(k, n, p, c):
    """ln M_n(p) of the beta-binomial mixture, Beta(c p, c (1-p)) over the alternative."""
    a, b = c * p, c * (1 - p)
    return betaln(a + k, b + n - k) - betaln(a, b) - k * math.log(p) - (n - k) * math.log1p(-p)


def first_event_sequential(x, bar, alpha=0.05, window=None, min_samples=200, kind="breach"):
    """Index of the first breach (or pass) by the confidence sequence, over a sliding count
    window (window=N) or over everything since the start (window=None), or -1. The bar is
    outside the sequence iff ln M_n(bar) >= ln(1/alpha) (the sequence is an interval around
    k/n); breach: outside and k/n < bar; pass: outside and k/n > bar."""
    c = TUNE_N / tuning_ratio(alpha) - 1
    cum = np.concatenate([[0], np.cumsum(x)])
    idx = np.arange(1, len(x) + 1)
    n = idx if window is None else np.minimum(idx, window)
    k = (cum[idx] - cum[idx - n]).astype(float)
    n = n.astype(float)
    out = ln_mixture(k, n, bar, c) >= math.log(1 / alpha)
    side = (k < bar * n) if kind == "breach" else (k > bar * n)
    w = np.flatnonzero((n >= min_samples) & out & side)
    return int(w[0]) if len(w) else -1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("p", type=float)
    ap.add_argument("bar", type=float)
    ap.add_argument("comparisons", type=int)
    ap.add_argument("runs", type=int)
    ap.add_argument("seed", type=int, nargs="?", default=1)
    ap.add_argument("--method", choices=["wilson", "window", "cumulative"], default="wilson")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--window", type=int, default=1000)
    ap.add_argument("--min-samples", type=int, default=200)
    ap.add_argument("--kind", choices=["breach", "pass"])
    a = ap.parse_args()
    p, bar, total, runs = a.p, a.bar, a.comparisons, a.runs
    kind = a.kind or ("breach" if p >= bar else "pass")
    wrong = (kind == "breach") == (p >= bar)
    rng = np.random.default_rng(a.seed)
    hits, firsts = 0, []
    for _ in range(runs):
        x = (rng.random(total) < p).astype(np.int32)
        if a.method == "wilson":
            f = first_event(x, bar, window=a.window, min_samples=a.min_samples, kind=kind)
        else:
            f = first_event_sequential(x, bar, alpha=a.alpha, min_samples=a.min_samples, kind=kind,
                                       window=a.window if a.method == "window" else None)
        if f >= 0:
            hits += 1
            firsts.append(f)
    med = int(np.median(firsts)) if firsts else None
    p90 = int(np.percentile(firsts, 90)) if firsts else None
    label = f"{'false' if wrong else 'true'} {kind}"
    print(f"method={a.method} p={p} bar={bar} comparisons={total} runs={runs}: runs with a {label}:"
          f" {hits}/{runs}; median comparisons to it: {med}; 90th percentile: {p90}")

if __name__ == "__main__":
    main()
