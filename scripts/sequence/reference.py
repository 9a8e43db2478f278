#!/usr/bin/env python3
"""Independent reference figures for src/lib.rs (the beta-binomial mixture confidence sequence).

Computes the same sequence a different way from the Rust code:
  * the tuning ratio k = m/rho from Howard et al. (2021) eq. (3.14) with mpmath's Lambert W
    (Rust solves k - ln(1+k) = 2 ln(1/alpha) by Newton's method);
  * ln M_n(p) by numerically integrating the likelihood ratio of q against p over the
    Beta(c p, c (1-p)) density (mpmath.quad, 40 digits) for n <= 10^4, and by the closed form
    with 60-digit mpmath.loggamma above that (Rust uses an f64 Stirling form with the
    n-sized terms cancelled analytically); both are printed where both are computed;
  * the interval ends with mpmath.findroot (Illinois, bracketed) on ln M - ln(1/alpha);
  * samples_to_decide by a scan over N at 60 digits;
  * a dense-grid check (scipy betaln) that {p : M_n(p) < 1/alpha} is an interval.

Needs: pip install mpmath numpy scipy.   Usage: python3 reference.py > reference.out
"""
import math

import mpmath as mp
import numpy as np
from scipy.special import betaln

mp.mp.dps = 40
TUNE_N = 1000


def k_ratio(alpha):
    """m/rho = -W_{-1}(-alpha^2/e) - 1, Howard et al. (2021) eq. (3.14), l0 = 1."""
    a = mp.mpf(alpha)
    return -mp.lambertw(-a * a / mp.e, -1).real - 1


def conc(alpha):
    return TUNE_N / k_ratio(alpha) - 1


def ln_beta(a, b):
    return mp.loggamma(a) + mp.loggamma(b) - mp.loggamma(a + b)


def ln_m_closed(s, n, p, c):
    with mp.workdps(60):
        s, n, p, c = mp.mpf(s), mp.mpf(n), mp.mpf(p), mp.mpf(c)
        a, b = c * p, c * (1 - p)
        return ln_beta(a + s, b + n - s) - ln_beta(a, b) - s * mp.log(p) - (n - s) * mp.log(1 - p)


def ln_m_quad(s, n, p, c):
    """ln of  integral_0^1 q^s (1-q)^f / (p^s (1-p)^f) Beta(q; cp, c(1-p)) dq,  by quadrature."""
    s, n, p, c = mp.mpf(s), mp.mpf(n), mp.mpf(p), mp.mpf(c)
    f = n - s
    a, b = c * p, c * (1 - p)
    A, B = a + s, b + f  # the integrand is proportional to q^(A-1) (1-q)^(B-1)
    mode = min(max((A - 1) / (A + B - 2), mp.mpf(0)), mp.mpf(1)) if A + B > 2 else mp.mpf("0.5")
    sd = mp.sqrt(A * B / ((A + B) ** 2 * (A + B + 1)))
    # log of the integrand's peak height, to integrate a function of order 1
    qm = min(max(mode, mp.mpf(10) ** -30), 1 - mp.mpf(10) ** -30)
    ln_peak = (A - 1) * mp.log(qm) + (B - 1) * mp.log(1 - qm)

    def g(q):
        if q <= 0 or q >= 1:
            return mp.mpf(0)
        return mp.exp((A - 1) * mp.log(q) + (B - 1) * mp.log(1 - q) - ln_peak)

    pts = sorted({mp.mpf(0), mp.mpf(1)} | {min(max(mode + k * sd, mp.mpf(0)), mp.mpf(1))
                                           for k in (-40, -10, -3, 0, 3, 10, 40)})
    integral = mp.quad(g, pts, maxdegree=10)
    return mp.log(integral) + ln_peak - ln_beta(a, b) - s * mp.log(p) - f * mp.log(1 - p)


def ln_m(s, n, p, c, method):
    return ln_m_quad(s, n, p, c) if method == "quad" else ln_m_closed(s, n, p, c)


def interval(s, n, alpha):
    """(lo, hi) of {p : M_n(p) < 1/alpha}; lo = 0 / hi = 1 where no root exists."""
    if n == 0:
        return mp.mpf(0), mp.mpf(1)
    c = conc(alpha)
    th = mp.log(1 / mp.mpf(alpha))
    method = "quad" if n <= 10_000 else "closed"
    F = lambda p: ln_m(s, n, p, c, method) - th
    p_hat = mp.mpf(s) / n
    eps = mp.mpf(10) ** -30
    if s == 0 or F(eps) < 0:
        lo = mp.mpf(0)
    else:
        lo = mp.findroot(F, (eps, min(p_hat, 1 - eps)), solver="illinois", tol=mp.mpf(10) ** -30)
    if s == n or F(1 - eps) < 0:
        hi = mp.mpf(1)
    else:
        hi = mp.findroot(F, (max(p_hat, eps), 1 - eps), solver="illinois", tol=mp.mpf(10) ** -30)
    return lo, hi


def samples_to_decide(p_hat, bar, n, alpha, limit=10**18):
    """Smallest N >= max(n,1) with ln M_N(bar) >= ln(1/alpha) at S = p_hat N (scan: doubling,
    then bisection over integers), at 60 digits."""
    if p_hat == bar:
        return None
    c = conc(alpha)
    th = mp.log(1 / mp.mpf(alpha))
    ok = lambda N: ln_m_closed(mp.mpf(p_hat) * N, N, bar, c) >= th
    start = max(n, 1)
    if ok(start):
        return start
    lo, hi = start, start
    while not ok(hi):
        if hi > limit:
            return None
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    assert ok(hi) and not ok(hi - 1)
    return hi


def grid_check():
    """Is {p : ln M_n(p) < ln(1/alpha)} an interval around p_hat on a dense grid?"""
    ps = np.unique(np.concatenate([np.logspace(-12, -1, 3000), np.linspace(0.05, 0.95, 40001),
                                   1 - np.logspace(-1, -12, 3000)]))
    cases = bad = 0
    for alpha in (0.05, 0.01, 0.2, 0.5):
        c = float(conc(alpha))
        th = math.log(1 / alpha)
        for n in (1, 2, 3, 5, 10, 30, 100, 300, 1000, 3000, 10**4, 10**5, 10**6):
            for s in sorted({0, 1, 2, n // 100, n // 10, n // 3, n // 2, (9 * n) // 10,
                             (92 * n) // 100, n - 2, n - 1, n}):
                if not 0 <= s <= n:
                    continue
                a, b = c * ps, c * (1 - ps)
                v = betaln(a + s, b + n - s) - betaln(a, b) - s * np.log(ps) - (n - s) * np.log1p(-ps)
                inside = np.flatnonzero(v < th)
                cases += 1
                if len(inside) and inside[-1] - inside[0] + 1 != len(inside):
                    bad += 1
                    print(f"  NOT AN INTERVAL alpha={alpha} n={n} s={s}")
    print(f"interval check on a {len(ps)}-point grid: {cases - bad}/{cases} cases are intervals")


def main():
    print("# ln Gamma (mpmath.loggamma, 50 digits)")
    with mp.workdps(50):
        for x in ("1e-300", "1e-10", "0.001", "0.5", "1", "1.5", "2", "3.7", "9.99", "10", "10.5",
                  "57.3", "120.77", "1000.5", "1000000.25", "1e9", "1.2e15"):
            print(f"lngamma {x} {mp.nstr(mp.loggamma(mp.mpf(x)), 20)}")
    print("# tuning: k = -W_{-1}(-alpha^2/e) - 1 and c = 1000/k - 1")
    for alpha in ("0.05", "0.01", "0.1", "0.5", "1e-9"):
        print(f"tune alpha={alpha} k={mp.nstr(k_ratio(alpha), 17)} c={mp.nstr(conc(alpha), 17)}")
    print("# ln M_n(p) at alpha=0.05 tuning: quad (n<=1e4) and closed form")
    c05 = conc("0.05")
    for s, n, p in ((0, 1, 0.5), (1, 1, 0.5), (5, 10, 0.2), (92, 100, 0.9), (920, 1000, 0.9),
                    (920, 1000, 0.95), (850, 1000, 0.9), (0, 1000, 0.01), (3, 1000, 0.0001),
                    (9200, 10000, 0.9)):
        q = ln_m_quad(s, n, p, c05)
        cl = ln_m_closed(s, n, p, c05)
        print(f"lnm s={s} n={n} p={p} quad={mp.nstr(q, 17)} closed={mp.nstr(cl, 17)}"
              f" diff={mp.nstr(abs(q - cl), 3)}")
    for s, n, p in ((92000, 100000, 0.9), (920000, 1000000, 0.919), (920000000, 1000000000, 0.92001),
                    (1000, 1000000000, 1.2e-6)):
        print(f"lnm s={s} n={n} p={p} closed={mp.nstr(ln_m_closed(s, n, p, c05), 17)}")
    print("# intervals (lo, hi)")
    cases = [(0, 1, "0.05"), (1, 1, "0.05"), (0, 10, "0.05"), (5, 10, "0.05"), (10, 10, "0.05"),
             (1, 100, "0.05"), (92, 100, "0.05"), (184, 200, "0.05"), (460, 500, "0.05"),
             (920, 1000, "0.05"), (900, 1000, "0.05"), (850, 1000, "0.05"), (999, 1000, "0.05"),
             (1, 1000, "0.05"), (20, 1000, "0.05"), (9200, 10000, "0.05"), (92000, 100000, "0.05"),
             (920000, 1000000, "0.05"), (20000, 1000000, "0.05"), (920000000, 1000000000, "0.05"),
             (1000, 1000000000, "0.05"), (0, 1000000000, "0.05"), (920, 1000, "0.01"),
             (920, 1000, "0.1"), (920, 1000, "0.5"), (920, 1000, "1e-9")]
    for s, n, alpha in cases:
        lo, hi = interval(s, n, alpha)
        print(f"interval s={s} n={n} alpha={alpha} lo={mp.nstr(lo, 17)} hi={mp.nstr(hi, 17)}")
    print("# samples_to_decide(p_hat, bar, n, alpha)")
    for p_hat, bar, n, alpha in ((0.92, 0.9, 0, 0.05), (0.85, 0.9, 0, 0.05), (0.97, 0.9, 0, 0.05),
                                 (0.91, 0.9, 0, 0.05), (0.02, 0.01, 0, 0.05), (0.005, 0.01, 0, 0.05),
                                 (0.92, 0.9, 5000, 0.05), (0.92, 0.9, 0, 0.01),
                                 (0.9000001, 0.9, 0, 0.05), (0.9 + 1e-10, 0.9, 0, 0.05)):
        print(f"decide p_hat={p_hat!r} bar={bar} n={n} alpha={alpha}"
              f" N={samples_to_decide(p_hat, bar, n, alpha)}")
    grid_check()


if __name__ == "__main__":
    main()
