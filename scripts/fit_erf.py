#!/usr/bin/env python3
"""Fits the rational erf approximation of kernels/elementwise.cpp (erf_approx):
erf(x) ~ x P(x^2) / Q(x^2) on |x| <= 4, P and Q of degree 5, Q(0) = 1, by least squares on
x P(t) - erf(x) Q(t) = 0, reweighted by 1 / |Q| until it settles. Prints the coefficients and
their largest error from math.erf when evaluated in float32 as the kernel does (Horner, clamp).
Deterministic: no random input. Usage: python3 scripts/fit_erf.py"""
import math

import numpy as np

X, N, M = 4.0, 5, 5


def fit():
    xs = np.linspace(0, X, 20001)[1:]
    f = np.array([math.erf(v) for v in xs])
    t = xs * xs
    w = np.ones_like(xs)
    for _ in range(30):
        a = np.hstack([xs[:, None] * t[:, None] ** np.arange(N + 1), -f[:, None] * t[:, None] ** np.arange(1, M + 1)])
        sol, *_ = np.linalg.lstsq(a * w[:, None], f * w, rcond=None)
        p, q = sol[:N + 1], np.concatenate([[1.0], sol[N + 1:]])
        w = 1 / np.abs(np.polyval(q[::-1], t))
    return [float(np.float32(c)) for c in p], [float(np.float32(c)) for c in q]


def max_error(p, q):
    x = np.linspace(-5, 5, 200001).astype(np.float32)
    xc = np.clip(x, np.float32(-X), np.float32(X))
    t = xc * xc
    num, den = np.float32(p[-1]), np.float32(q[-1])
    for a, b in zip(p[-2::-1], q[-2::-1]):
        num = (np.float32(a) + t * num).astype(np.float32)
        den = (np.float32(b) + t * den).astype(np.float32)
    r = np.clip(xc * num / den, -1, 1)
    ref = np.array([math.erf(float(v)) for v in x])
    return float(np.abs(r - ref).max())


if __name__ == "__main__":
    p, q = fit()
    print("p:", ", ".join(f"{c:.9e}f" for c in p))
    print("q:", ", ".join(f"{c:.9e}f" for c in q))
    print(f"max |error| in float32 on [-5, 5]: {max_error(p, q):.2e}")
