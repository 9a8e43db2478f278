#!/usr/bin/env python3
"""Checks the one-sided bound of src/stats/onesided.rs with mpmath (60 digits):
the truncated mixture M-(p) = int_{q<p} LR dpi / I0 computed by quadrature is at least
the bound (M - (1 - I0)) / I0 used by the code (and M+ likewise), and the incomplete
beta values quoted in its tests."""
import mpmath as mp
mp.mp.dps = 60
c = mp.mpf(1000) / (-mp.lambertw(-mp.mpf(0.05) ** 2 / mp.e, -1).real - 1) - 1


def parts(s, n, p):
    a, b = c * p, c * (1 - p)
    f = n - s
    dens = lambda q: mp.exp((a + s - 1) * mp.log(q) + (b + f - 1) * mp.log(1 - q) - mp.log(mp.beta(a, b))
                            - s * mp.log(p) - f * mp.log(1 - p))
    below = mp.quad(dens, [0, p * 0.5, p * 0.9, p])
    above = mp.quad(dens, [p, p + (1 - p) * 0.1, p + (1 - p) * 0.5, 1])
    i0 = mp.betainc(a, b, 0, p, regularized=True)
    return below, above, i0


worst = None
for s, n, p in [(80, 100, 0.9), (170, 200, 0.9), (850, 1000, 0.9), (960, 1000, 0.9), (30, 1000, 0.02),
                (5, 1000, 0.02), (0, 300, 0.02), (600, 1000, 0.5), (9000, 10000, 0.92)]:
    below, above, i0 = parts(s, n, p)
    m = below + above
    if s < p * n:
        exact, bound = below / i0, (m - (1 - i0)) / i0
    else:
        exact, bound = above / (1 - i0), (m - i0) / (1 - i0)
    assert exact >= bound, (s, n, p)
    print(f"S={s} n={n} p={p}: one-sided e-value {mp.nstr(exact, 8)} >= bound {mp.nstr(bound, 8)} (I0 {mp.nstr(i0, 6)})")
print("I_0.4(2,3) =", mp.nstr(mp.betainc(2, 3, 0, 0.4, regularized=True), 20))
print("I_0.3(.5,.5) =", mp.nstr(mp.betainc(0.5, 0.5, 0, 0.3, regularized=True), 20))
print(f"I_0.9({mp.nstr(c*0.9, 17)}, {mp.nstr(c*0.1, 17)}) =", mp.nstr(mp.betainc(c * 0.9, c * 0.1, 0, 0.9, regularized=True), 20))
