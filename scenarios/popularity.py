"""The popularity law: what `traffic.peakedness` means.

Requests pick input k (k = 1 is the most popular) with probability k^-s / H(N, s): a Zipf
law over the cardinality N. Both the advisor (hit ratios) and the simulator (key sampling)
take this definition from here. Pure functions; scipy is imported only where needed, so
loading a scenario stays fast.
"""
from __future__ import annotations

import math

import numpy as np

_DIRECT_TERMS = 1000


def harmonic(n: float, s: float) -> float:
    """Generalized harmonic number H(n, s) = sum_{i=1..n} i^-s in O(1) for n up to 1e18.

    Sum the first 1000 terms exactly, then an Euler–Maclaurin tail (Abramowitz & Stegun
    23.1.30) whose error is below 1e-15 relative for n > 1000 (the next term is O(a^{-s-5})).
    """
    if n < 1:
        return 0.0
    n = math.floor(n)
    m = min(n, _DIRECT_TERMS)
    head = float(np.sum(np.arange(1, m + 1, dtype=np.float64) ** (-s)))
    if n <= _DIRECT_TERMS:
        return head
    a, b = float(m + 1), float(n)
    # integral_a^b x^-s dx, written with expm1 so that s -> 1 stays accurate
    la = math.log(a)
    u = (1.0 - s) * math.log(b / a)
    if abs(1.0 - s) < 1e-12:
        integral = math.log(b / a)
    else:
        integral = math.exp((1.0 - s) * la) * math.expm1(u) / (1.0 - s)
    f = lambda x: x ** (-s)  # noqa: E731
    f1 = lambda x: -s * x ** (-s - 1)  # noqa: E731
    f3 = lambda x: -s * (s + 1) * (s + 2) * x ** (-s - 3)  # noqa: E731
    tail = integral + (f(a) + f(b)) / 2 + (f1(b) - f1(a)) / 12 - (f3(b) - f3(a)) / 720
    return head + tail


def zipf_coverage(k: float, n_keys: float | None, s: float) -> float:
    """Share of requests that go to the k most popular of N keys: H(k,s)/H(N,s).

    This is also the exact expected hit ratio of a table holding the top k under independent requests (the independent reference model).
    n_keys=None means unbounded: for s > 1 the limit H(k,s)/zeta(s); for s <= 1 the head's
    share tends to 0 and 0.0 is returned (callers say so in their reasons).
    """
    if k <= 0:
        return 0.0
    if n_keys is None:
        if s <= 1.0:
            return 0.0
        return min(1.0, harmonic(k, s) / zeta(s))
    if k >= n_keys:
        return 1.0
    return harmonic(k, s) / harmonic(n_keys, s)


def solve_zipf_s(keys_fraction: float, traffic_share: float, n_keys: float) -> float:
    """Zipf exponent s such that the top keys_fraction of N keys get traffic_share.

    Coverage is increasing in s, so a bracketed root (Brent) is unique.
    Raises ValueError when no s in [0, 10] reaches the share.
    """
    k = max(1.0, math.floor(keys_fraction * n_keys))
    base = zipf_coverage(k, n_keys, 0.0)
    if traffic_share < base - 1e-12:
        raise ValueError(f"the top {keys_fraction:.3g} of inputs get at least {base:.3g} of "
                         f"requests even with uniform popularity; traffic share {traffic_share:.3g} is lower")
    if traffic_share <= base + 1e-12:
        return 0.0
    from scipy import optimize
    hi = 10.0
    if zipf_coverage(k, n_keys, hi) < traffic_share:
        raise ValueError(f"no Zipf exponent up to {hi} gives the top {k:.0f} keys "
                         f"{traffic_share:.3g} of requests")
    return float(optimize.brentq(lambda s: zipf_coverage(k, n_keys, s) - traffic_share,
                                 0.0, hi, xtol=1e-10))


def top_k_for_coverage(target: float, n_keys: float | None, s: float) -> float | None:
    """Smallest k whose coverage reaches target, or None when no finite k does."""
    if n_keys is None and s <= 1.0:
        return None
    hi = n_keys if n_keys is not None else 1e18
    if zipf_coverage(hi, n_keys, s) < target:
        return None
    lo_log, hi_log = 0.0, math.log(hi)
    for _ in range(200):
        mid = (lo_log + hi_log) / 2
        if zipf_coverage(math.exp(mid), n_keys, s) >= target:
            hi_log = mid
        else:
            lo_log = mid
    return math.ceil(math.exp(hi_log))


def zeta(s: float) -> float:
    """Riemann zeta ζ(s) for s > 1 (the normaliser of an unbounded Zipf law)."""
    from scipy import special
    return float(special.zeta(s))
