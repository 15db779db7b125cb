"""Latency: request-weighted p99 of a design (table lookups and M/G/c model servers) and the
fewest replicas that meet the SLO."""
from __future__ import annotations

import functools
import math

import numpy as np

from scenarios.schema import Scenario, cs2

from . import tails, theory

SERVICE_QUANTILE_POINTS = 1000  # quantile grid used for the response-time convolution
DIURNAL_PHASES = 48             # phases of the day averaged for request-weighted latency


@functools.lru_cache(maxsize=64)
def _service_points(dist) -> np.ndarray:
    """SERVICE_QUANTILE_POINTS equally weighted quantiles of a (frozen, hashable) service-time
    distribution; memoised and read-only, since every p99 evaluation of a search needs them."""
    p = (np.arange(SERVICE_QUANTILE_POINTS) + 0.5) / SERVICE_QUANTILE_POINTS
    pts = np.asarray(dist.quantile_s(p), dtype=float)
    pts.setflags(write=False)
    return pts


def _phase_rates(sc: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """Arrival rates over the horizon's part of the day (all of it for horizons of a day or
    more) and their request weights (rate-proportional)."""
    tr = sc.traffic
    if tr.diurnal_amplitude == 0:
        return np.array([tr.rate]), np.array([1.0])
    span = min(sc.horizon, 86400.0) / 86400.0
    ph = (np.arange(DIURNAL_PHASES) + 0.5) / DIURNAL_PHASES * span
    lam = tr.rate * (1 + tr.diurnal_amplitude * np.sin(2 * np.pi * ph))
    return lam, lam / lam.sum()


def latency_quantile_s(sc: Scenario, p: float, hit: float, replicas: int | None,
                       rates: np.ndarray | None = None, weights: np.ndarray | None = None) -> float:
    """Quantile p of request latency (queue wait + service, or table lookup), request-weighted
    over the day: table hits take lookup_time; misses queue at `replicas` M/G/c servers
    (Allen–Cunneen wait with an exponential tail, convolved with the service time).
    replicas=None means no queueing at all (the service time alone). With serving.failures,
    a mixture over how many replicas are down (advisor.failures)."""
    if rates is None:
        rates, weights = _phase_rates(sc)
    if sc.serving.failures is not None and replicas is not None and replicas >= 1:
        from . import failures
        return failures.latency_quantile_s(sc, p, hit, replicas, rates, weights)
    cdf, hi = latency_cdf(sc, hit, replicas, rates, weights)
    if cdf is None:
        return math.inf
    for _ in range(8):
        if cdf(hi) >= p:
            break
        hi *= 10
    return theory.mixture_quantile(p, [cdf], [1.0], hi)


def latency_cdf(sc: Scenario, hit: float, replicas: int | None, rates: np.ndarray, weights: np.ndarray,
                overloaded_miss: bool = False):
    """(P(latency <= t) as a function, a starting upper bound for its quantiles); (None, 0) when
    the pool cannot keep up with some phase's rate — or, with overloaded_miss, those phases'
    model-path requests never answer and the others queue as usual (a state that lasts long
    against the queue's relaxation, e.g. replicas down for repair)."""
    if sc.serving.batching is not None:
        from . import batching   # replicas serve batches (serving.batching)
        return batching.latency_cdf(sc, hit, replicas, rates, weights)
    inf = sc.model.inference_time
    lookup = sc.serving.lookup_time
    es, c2 = inf.mean_s, cs2(inf)
    pts = _service_points(inf)
    miss = 1.0 - hit
    if miss > 1e-12 and replicas is not None:
        stable = rates * miss * es < replicas
        if replicas < 1 or not (stable.all() or (overloaded_miss and stable.any())):
            return None, 0.0
        rates, weights = rates[stable], weights[stable]   # the rest adds only its table hits

    queued = (theory.pooled_response_cdf(pts, rates * miss, replicas, weights, es, c2)
              if miss > 1e-12 and replicas is not None else None)

    def cdf(t):
        total = hit * float(lookup.cdf(t))
        if miss > 1e-12 and replicas is None:
            total += miss * float(inf.cdf(t))
        elif miss > 1e-12:
            total += miss * queued(t)
        return total

    return cdf, 10.0 * max(float(inf.quantile_s(0.9999)), float(lookup.quantile_s(0.9999)), 1e-3)


MAX_REPLICAS = 100_000     # the largest pool serving.replicas accepts


def replicas_for_slo(sc: Scenario, hit: float) -> int | None:
    """Fewest replicas whose p99 at the peak rate meets slo.latency_p99 (None if none can)."""
    miss = 1.0 - hit
    if miss <= 1e-12:
        return 0
    inf = sc.model.inference_time
    slo = sc.slo.latency_p99
    peak = np.array([sc.traffic.peak_rate_per_s])
    one = np.array([1.0])
    # the service time alone must meet the SLO share of the misses
    if latency_quantile_s(sc, 0.99, hit, None, peak, one) > slo:
        return None
    c = max(1, math.floor(offered_erlangs(sc, peak[0] * miss)) + 1)
    # keep the measured worst under-estimate of the p99 approximation as a margin (0 for
    # deterministic, exponential and moderate lognormal service; advisor/tails.py)
    c2 = cs2(inf)
    ok = lambda n: latency_quantile_s(sc, 0.99, hit, n, peak, one) * (1 + tails.p99_margin(c2, n)) <= slo  # noqa: E731
    if ok(c):
        return c
    hi = c * 2
    while not ok(hi):
        if hi > MAX_REPLICAS:
            # the SLO sits within the bisection's tolerance of the no-queue floor: no finite
            # pool reaches it (serving.replicas accepts at most MAX_REPLICAS anyway)
            return None
        hi *= 2
    lo = c
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


STABLE_UTILISATION = 0.8   # replicas for a model path that cannot meet the SLO: keep the queue stable


def provisioned_replicas(sc: Scenario, hit: float) -> tuple[int, bool]:
    """(replicas for the model path, whether they meet the SLO): the fewest that meet it, or,
    when no count can (the service time alone is too slow), enough to keep utilisation at
    the peak under STABLE_UTILISATION; never below serving.min_replicas when there is a model path."""
    miss = 1.0 - hit
    if miss <= 1e-12:
        return 0, True
    c = replicas_for_slo(sc, hit)
    meets = c is not None
    if c is None:
        c = math.ceil(offered_erlangs(sc, sc.traffic.peak_rate_per_s * miss) / STABLE_UTILISATION)
    return max(int(c), sc.serving.min_replicas), meets


def offered_erlangs(sc: Scenario, lam_miss_per_s: float) -> float:
    """Busy replicas the model path needs at this rate: λ·E[S], or with serving.batching the
    batches' rate × mean batch time."""
    if sc.serving.batching is not None:
        from . import batching
        return batching.offered_erlangs(sc, lam_miss_per_s)
    return lam_miss_per_s * sc.model.inference_time.mean_s


def model_path_p99_s(sc: Scenario, hit: float, replicas: int) -> float:
    """p99 of the requests that reach the model (queue wait + inference), at the peak rate."""
    if sc.serving.batching is not None:
        return latency_quantile_s(sc, 0.99, 0.0, replicas, np.array([sc.traffic.peak_rate_per_s * (1.0 - hit)]),
                                  np.array([1.0]))
    peak = np.array([sc.traffic.peak_rate_per_s * (1.0 - hit)])
    inf = sc.model.inference_time
    es, c2 = inf.mean_s, cs2(inf)
    if peak[0] * es >= replicas:
        return math.inf
    pts = _service_points(inf)
    cdf = lambda t: theory.response_cdf(t, pts, float(peak[0]), es, c2, replicas)  # noqa: E731
    hi = 10.0 * max(float(inf.quantile_s(0.9999)), 1e-3)
    for _ in range(8):
        if cdf(hi) >= 0.99:
            break
        hi *= 10
    return theory.mixture_quantile(0.99, [cdf], [1.0], hi)
