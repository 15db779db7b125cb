"""A replica as a server of batches (serving.batching with model.batch_time, issue 16).

A batch opens at a request that finds none open and closes at max_batch B requests or a
timeout τ after it opened. With Poisson arrivals at rate λ the batch holds b = min(1 + N, B)
requests, N ~ Poisson(λτ); a replica serving batches of b has throughput b/T(b), T(b) =
t₀ + t₁·b (TF Serving, Triton, Clipper NSDI 2017). Closed batches queue FIFO for c replicas:
batches arrive as a renewal process (fill time, then an exponential gap to the next opener),
so the batch queue is GI/G/c, approximated by Allen–Cunneen Wq(M/M/c)·(c_a² + c_s²)/2 with
an exponential tail of that mean (as advisor.theory.mgc_wait_tail does for M/G/c). A request
waits for its batch to close (the opener the whole fill, the others a uniform part of it),
then for a replica, then T(b): latency = fill wait + queue wait + T(b).
"""
from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

from scenarios.schema import Scenario

from . import theory


@functools.lru_cache(maxsize=4096)
def batch_law(lam_per_s: float, max_batch: int, timeout_s: float) -> dict:
    """Batch sizes and fill times at arrival rate λ: P(b), the batches' rate, and the fill time
    F of a batch (τ unless it fills first: the (B−1)-th further arrival, Gamma(B − 1, λ))."""
    B = max_batch
    k = np.arange(1, B + 1)
    x = lam_per_s * timeout_s
    if B == 1:
        pb = np.array([1.0])
    else:
        pb = np.exp((k[:-1] - 1) * math.log(max(x, 1e-300)) - x - special.gammaln(k[:-1])) if x > 0 \
            else np.r_[1.0, np.zeros(B - 2)]
        pb = np.r_[pb, max(0.0, 1.0 - pb.sum())]
    eb = float(np.sum(k * pb))
    # F: P(F > t) = P(Poisson(λt) < B − 1) = Q(B − 1, λt) on t < τ (regularised upper gamma)
    if B == 1 or timeout_s == 0:
        ef = ef2 = 0.0
        full_fill = 0.0
    else:
        t = np.linspace(0.0, timeout_s, 401)
        surv = special.gammaincc(B - 1, lam_per_s * t)
        ef = float(np.trapezoid(surv, t))
        ef2 = float(np.trapezoid(2 * t * surv, t))
        p_full = pb[-1]
        # mean fill of a full batch: E[F; full] / P(full), E[F; full] = E[F] − τ·P(not full)
        full_fill = (ef - timeout_s * (1 - p_full)) / p_full if p_full > 1e-12 else timeout_s
    # batch interarrival X = F + Exp(λ): mean and squared coefficient of variation
    ex = ef + 1.0 / lam_per_s
    vx = (ef2 - ef ** 2) + 1.0 / lam_per_s ** 2
    return {"sizes": k, "p": pb, "mean_batch": eb, "batch_rate_per_s": lam_per_s / eb,
            "ca2": vx / ex ** 2, "fill_s": np.r_[np.full(B - 1, timeout_s), full_fill] if B > 1
            else np.array([0.0])}


def _service(sc: Scenario, law: dict) -> tuple[np.ndarray, float, float]:
    t = sc.model.batch_time.seconds(law["sizes"].astype(float))
    es = float(np.sum(law["p"] * t))
    es2 = float(np.sum(law["p"] * t * t))
    return t, es, es2


def offered_erlangs(sc: Scenario, lam_per_s: float) -> float:
    """Busy replicas at arrival rate λ: batches per second × mean batch time."""
    if lam_per_s <= 0:
        return 0.0
    bt = sc.serving.batching
    law = batch_law(lam_per_s, bt.max_batch, bt.timeout)
    return law["batch_rate_per_s"] * _service(sc, law)[1]


def throughput_per_replica(sc: Scenario, lam_per_s: float) -> float:
    """Requests per second one busy replica serves at this rate: E[b] / E[T(b)]."""
    bt = sc.serving.batching
    law = batch_law(lam_per_s, bt.max_batch, bt.timeout)
    return law["mean_batch"] / _service(sc, law)[1]


def figures(sc: Scenario, lam_per_s: float) -> dict:
    """Mean batch, busy replicas and throughput per busy replica at rate λ (for `predicted`)."""
    bt = sc.serving.batching
    law = batch_law(lam_per_s, bt.max_batch, bt.timeout)
    es = _service(sc, law)[1]
    return {"mean_batch": law["mean_batch"], "batches_per_s": law["batch_rate_per_s"],
            "offered_erlangs": law["batch_rate_per_s"] * es,
            "throughput_per_busy_replica_per_s": law["mean_batch"] / es,
            "unbatched_throughput_per_replica_per_s": 1.0 / sc.model.batch_time.seconds(1.0)}


def response_cdf(sc: Scenario, x_s: float, lam_per_s: float, c: int) -> float:
    """P(latency <= x) of a model-path request at rate λ on c batching replicas."""
    bt = sc.serving.batching
    law = batch_law(lam_per_s, bt.max_batch, bt.timeout)
    t, es, es2 = _service(sc, law)
    lam_b = law["batch_rate_per_s"]
    mu = 1.0 / es
    if lam_b >= c * mu:
        return 0.0
    cs2 = es2 / es ** 2 - 1.0
    cw = theory.erlang_c(c, lam_b / mu)
    theta = 2.0 * (c * mu - lam_b) / (law["ca2"] + cs2)     # Allen–Cunneen GI/G/c, exponential tail
    w = law["sizes"] * law["p"] / law["mean_batch"]        # a request's batch is size-biased
    f = law["fill_s"]
    y0 = x_s - t                                           # time left for fill wait + queue wait

    def g(y):  # P(Wq <= y)
        return np.where(y >= 0, 1.0 - cw * np.exp(-theta * np.maximum(y, 0.0)), 0.0)

    opener = g(y0 - f)
    # the others wait a uniform part r of the fill: (1/f) ∫_0^f G(y0 − r) dr, in closed form
    m = np.clip(np.minimum(f, y0), 0.0, None)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        integral = m - cw / theta * (np.exp(-theta * np.maximum(y0 - m, 0.0)) - np.exp(-theta * np.maximum(y0, 0.0)))
        others = np.where(f > 0, integral / np.where(f > 0, f, 1.0), g(y0))
    b = law["sizes"]
    return float(np.sum(w * (opener / b + others * (b - 1) / b)))


def latency_cdf(sc: Scenario, hit: float, replicas: int | None, rates: np.ndarray, weights: np.ndarray):
    """(P(latency <= x), a starting upper bound) request-weighted over the day's phases: table
    hits take lookup_time, misses the batching model path (replicas=None: no queueing, the
    batch fill and T(b) alone); (None, 0) when the pool cannot keep up."""
    lookup = sc.serving.lookup_time
    miss = 1.0 - hit
    if miss > 1e-12 and replicas is not None:
        if replicas < 1 or any(offered_erlangs(sc, lam * miss) >= replicas for lam in rates):
            return None, 0.0
    c = replicas if replicas is not None else 10 ** 6

    def cdf(x):
        total = hit * float(lookup.cdf(x))
        if miss > 1e-12:
            total += miss * sum(w * response_cdf(sc, x, lam * miss, c) for lam, w in zip(rates, weights))
        return total

    bt = sc.serving.batching
    return cdf, 10.0 * max(bt.timeout + sc.model.batch_time.seconds(bt.max_batch),
                           float(lookup.quantile_s(0.9999)), 1e-3)


GRID_BATCH = (4, 8, 16, 32, 64, 128, 256)
GRID_TIMEOUT_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05)


def best_batching(sc: Scenario, hit: float) -> dict | None:
    """The (max_batch, timeout) on a small grid (and the scenario's own) that needs the fewest
    replicas to meet the SLO at the peak, then the lowest p99 — the choice TF Serving and Triton
    leave to the operator (Clipper adapts it online). None if no point meets the SLO."""
    from .latency import latency_quantile_s, replicas_for_slo
    given = sc.serving.batching
    peak, one = np.array([sc.traffic.peak_rate_per_s]), np.array([1.0])
    best = None
    points = {(b, t) for b in GRID_BATCH for t in GRID_TIMEOUT_S} | {(given.max_batch, given.timeout)}
    for b, t in sorted(points):
        alt = sc.model_copy(update={"serving": sc.serving.model_copy(
            update={"batching": given.model_copy(update={"max_batch": b, "timeout": t})})})
        c = replicas_for_slo(alt, hit)
        if c is None:
            continue
        c = max(c, sc.serving.min_replicas)
        key = (c, latency_quantile_s(alt, 0.99, hit, c, peak, one))   # at the peak, as sized
        if best is None or key < best[0]:
            best = (key, b, t)
    if best is None:
        return None
    (c, p99), b, t = best
    return {"max_batch": b, "timeout_s": t, "replicas": c, "peak_latency_p99_ms": p99 * 1e3}
