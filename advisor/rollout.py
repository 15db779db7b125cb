"""Version rollouts (serving.rollout, issue 16): what each deployment costs the serving pool.

Every deployment the training design causes (advisor.costs.retrains_per_horizon) goes to the
replicas by the scenario's strategy: `rolling` takes max_unavailable replicas out at a time,
each new one warming up, so the pool is short for ceil(c/u)·warmup per deployment (a
capacity dip); `blue_green` warms a second full pool (c extra replicas for the warm-up);
`canary` warms ceil(share·c) extra at a time, ceil(c/k) times (a surge). The p99 mixes the
pool outside rollouts with the short pool during them, weighted by the share of time
(pointwise-stationary: a warm-up of seconds against service times of milliseconds).
"""
from __future__ import annotations

import math

from scenarios.accounting import MONTH_S
from scenarios.schema import Scenario


def plan(sc: Scenario, replicas: int) -> dict:
    """Per deployment: replicas short, seconds short, extra replica-seconds (surge)."""
    r = sc.serving.rollout
    c = replicas
    if r.strategy == "rolling":
        u = min(r.max_unavailable, c)
        return {"short": u, "short_s": math.ceil(c / u) * r.warmup, "extra_replica_s": 0.0}
    k = c if r.strategy == "blue_green" else max(1, math.ceil(r.share * c))
    return {"short": 0, "short_s": 0.0, "extra_replica_s": k * r.warmup * math.ceil(c / k)}


def figures(sc: Scenario, hit: float, replicas: int, deployments: float, vcpu_hour: float) -> dict:
    """Rollout figures over the horizon: the dip (share of time, p99 during it, whether the SLO
    holds then) and the surge's extra replica-hours and cost per month."""
    import numpy as np
    from .latency import latency_quantile_s
    p = plan(sc, replicas)
    H = sc.horizon
    share = min(1.0, deployments * p["short_s"] / H)
    dip_p99 = None
    if p["short"]:
        left = replicas - p["short"]
        peak, one = np.array([sc.traffic.peak_rate_per_s]), np.array([1.0])
        dip_p99 = latency_quantile_s(sc, 0.99, hit, left, peak, one) if left >= 1 else math.inf
    extra_h = deployments * p["extra_replica_s"] / 3600.0 * MONTH_S / H
    return {"strategy": sc.serving.rollout.strategy, "deployments_per_month": deployments * MONTH_S / H,
            "replicas_short": p["short"], "seconds_short_per_deployment": p["short_s"],
            "share_of_time_short": share,
            "dip_p99_ms": dip_p99 * 1e3 if dip_p99 is not None and math.isfinite(dip_p99) else None,
            "dip_slo_met": None if dip_p99 is None else bool(dip_p99 <= sc.slo.latency_p99 * (1 + 1e-9)),
            "extra_replica_hours_per_month": extra_h, "extra_usd_per_month": extra_h * vcpu_hour}


def p99_with_dips_s(sc: Scenario, hit: float, replicas: int, share_short: float, short: int) -> float:
    """Request-weighted p99 over the day, a share of the time with `short` replicas fewer."""
    from . import theory
    from .latency import _phase_rates, latency_cdf
    rates, weights = _phase_rates(sc)
    full, hi = latency_cdf(sc, hit, replicas, rates, weights)
    if full is None:
        return math.inf
    dip, hi2 = latency_cdf(sc, hit, replicas - short, rates, weights) if replicas - short >= 1 else (None, 0.0)
    lookup = sc.serving.lookup_time
    if dip is None:
        dip = lambda t: hit * float(lookup.cdf(t))   # noqa: E731  the short pool cannot keep up
    mix = lambda t: (1 - share_short) * full(t) + share_short * dip(t)  # noqa: E731
    hi = max(hi, hi2)
    for _ in range(8):
        if mix(hi) >= 0.99:
            break
        hi *= 10
    return theory.mixture_quantile(0.99, [mix], [1.0], hi)
