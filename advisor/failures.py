"""Replica failures (serving.failures, issue 16): capacity lost to repairs, and what one
replica down does to the SLO.

Each replica is down a share q = mttr/(mtbf + mttr) of the time (alternating renewal), on
its own, so the replicas down at a random instant are Binomial(c, q) and the expected
capacity is c·(1 − q) (availability-weighted). Repairs last minutes and service times
milliseconds, so the latency of a request is that of the pool with the replicas up at its
arrival (pointwise-stationary, as advisor.provisioning does over the day): the p99 is the
mixture over k down of the pool of c − k, weighted by P(k down). A state whose pool cannot
keep up counts its model-path requests as over every latency (no finite answer is claimed).
"""
from __future__ import annotations

import math

import numpy as np

from scenarios.schema import Scenario

from . import theory

TAIL_MASS = 1e-6        # states beyond this binomial tail are left out


def down_states(c: int, q: float) -> list[tuple[int, float]]:
    """(k replicas down, probability) for k = 0, 1, ... until the tail is below TAIL_MASS."""
    out, total = [], 0.0
    for k in range(c + 1):
        pk = math.comb(c, k) * q ** k * (1 - q) ** (c - k)
        out.append((k, pk))
        total += pk
        if 1.0 - total < TAIL_MASS:
            break
    return out


def latency_quantile_s(sc: Scenario, p: float, hit: float, replicas: int, rates: np.ndarray,
                       weights: np.ndarray) -> float:
    from .latency import latency_cdf
    q = sc.serving.failures.down_fraction
    lookup = sc.serving.lookup_time
    cdfs, ws, hi = [], [], 1e-3
    for k, pk in down_states(replicas, q):
        n = replicas - k
        cdf, h = latency_cdf(sc, hit, n, rates, weights, overloaded_miss=True) if n >= 1 else (None, 0.0)
        if cdf is None:
            cdf = lambda t: hit * float(lookup.cdf(t))   # noqa: E731  overloaded: the model path never answers in time
        cdfs.append(cdf)
        ws.append(pk)
        hi = max(hi, h)
    total = sum(ws)
    ws = [w / total for w in ws]
    mix = lambda t: sum(w * f(t) for w, f in zip(ws, cdfs))  # noqa: E731
    for _ in range(8):
        if mix(hi) >= p:
            break
        hi *= 10
    return theory.mixture_quantile(p, [mix], [1.0], hi)


def figures(sc: Scenario, hit: float, replicas: int) -> dict:
    """Availability, expected replicas up, and the SLO check with one replica down at the peak."""
    from .latency import latency_cdf
    f = sc.serving.failures
    q = f.down_fraction
    peak, one = np.array([sc.traffic.peak_rate_per_s]), np.array([1.0])
    p99_one_down = math.inf
    if replicas >= 2:
        cdf, hi = latency_cdf(sc, hit, replicas - 1, peak, one)
        if cdf is not None:
            for _ in range(8):
                if cdf(hi) >= 0.99:
                    break
                hi *= 10
            p99_one_down = theory.mixture_quantile(0.99, [cdf], [1.0], hi)
    return {"availability": 1.0 - q, "expected_replicas_up": replicas * (1.0 - q),
            "p_any_down": 1.0 - (1.0 - q) ** replicas,
            "failures_per_day": replicas * 86400.0 / (f.mtbf + f.mttr),
            "one_down_p99_ms": p99_one_down * 1e3 if math.isfinite(p99_one_down) else None,
            "one_down_slo_met": bool(p99_one_down <= sc.slo.latency_p99 * (1 + 1e-9))}
