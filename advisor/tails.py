"""Waiting-time tails of the M/G/c queue for any service law (issue 11, part 1).

- **M/D/c, exact.** The number in system N observed D apart obeys N(t + D) = (N(t) − c)⁺ +
  A(D), A ~ Poisson(λD): every customer present at t that is in service or among the first
  c finishes by t + D, and nobody arriving later does (Crommelin 1932, "Delay probability
  formulae when the holding times are constant", P.O. Elec. Eng. J. 25; Franx 2001, "A
  simple solution for the M/D/c waiting time distribution", Oper. Res. Lett. 29). Its
  stationary law p_n is the time-stationary one. An arrival at τ has waited at most kD + x
  (0 ≤ x < D) iff the customers ahead of it still in the system at τ + x, (N(τ − D + x) − c)⁺
  + A(D − x), number at most (k + 1)c − 1 (each D, c of them leave; FIFO), so
  P(W ≤ kD + x) = Σ_j q_j · P(Poisson(λ(D − x)) ≤ (k + 1)c − 1 − j), q_j = P((N − c)⁺ = j)
  (PASTA: N at a fixed time before an arrival is time-stationary and independent of the
  Poisson arrivals after it). For c = 1 this is Erlang's M/D/1 formula.
- **M/M/c, exact.** P(W > t) = C(c, a)·e^{−(cμ − λ)t} (Erlang C; Gross & Harris §2.3).
- **Lognormal service: Allen–Cunneen's mean with an exponential tail** (theory.mgc_wait_tail).
  Chosen by measured error against the simulator's exact FIFO queue (docs/fidelity.md,
  "Latency tails") over the two-moment interpolation (1 − c_s²)·P_{M/D/c}(W > t) +
  c_s²·P_{M/M/c}(W > t) (Cosmetatos 1976; Tijms, Van Hoorn & Federgruen 1981, Adv. Appl. Prob.
  13), which was 8–19% high at c_s² = 0.43 (`interpolated_wait_tail`, kept for comparison).
  For heavy tails (c_s² > 1) and small pools it under-estimates; the advisor sizes pools with
  the measured margin `p99_margin`.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

STATE_TAIL = 1e-13      # probability mass of N beyond the truncation of the M/D/c chain
MAX_STATES = 800        # largest M/D/c chain solved directly (a banded K×K solve, at most ~0.05 s);
                        # beyond it (c ≳ 600, or ρ very near 1) Allen–Cunneen is used, measured
                        # within 2.2% for deterministic service at c ≥ 64 (docs/fidelity.md)


def _poisson_pmf(mean: float, k: np.ndarray) -> np.ndarray:
    """Poisson(mean) pmf at integers k ≥ 0, in logs (no overflow for large k or mean)."""
    from scipy.special import gammaln
    k = np.asarray(k, dtype=float)
    if mean <= 0:
        return (k == 0).astype(float)
    return np.exp(k * math.log(mean) - mean - gammaln(k + 1))


@lru_cache(maxsize=65536)
def mdc_states(a: float, c: int) -> int:
    """States of the truncated M/D/c chain: c plus queue lengths up to mass ~STATE_TAIL, from
    the decay rate ln z0 of the queue's geometric tail, z0 > 1 the root of z^c = e^{a(z − 1)}
    (Crommelin), by Newton on f(z) = c ln z − a(z − 1)."""
    if a >= c:
        return 10**12
    rho = a / c
    z = 1.0 + 2.0 * (1.0 - rho) / max(rho, 1e-9)
    for _ in range(60):
        f, df = c * math.log(z) - a * (z - 1.0), c / z - a
        step = f / df
        z = max(1.0 + 1e-12, z - step)
        if abs(step) < 1e-14 * z:
            break
    decay = max(math.log(z), 1e-9)
    return int(min(10**12, c + 6 * math.sqrt(a + 1) + math.log(1 / STATE_TAIL) / decay + 20))


PMF_TAIL = 1e-20         # Poisson mass left out of a row of the chain (beyond its band)


@lru_cache(maxsize=4096)
def mdc_queue_probs(a: float, c: int) -> np.ndarray:
    """q_j = P((N − c)⁺ = j), j = 0, 1, …, for the M/D/c queue with offered load a = λD < c:
    the stationary law of N(t + D) = (N(t) − c)⁺ + Poisson(a), solved directly on a
    truncation that leaves out at most ~STATE_TAIL of the mass (at most MAX_STATES states).

    The balance equations π = πP are banded: from n the chain moves to (n − c)⁺ + A, and A
    stays below W (Poisson mass beyond W < PMF_TAIL), so P[n, m] ≠ 0 only for
    −c ≤ m − n ≤ W. They are solved as a banded system (LAPACK gbsv, O(K·W·(W + c)) instead of
    the dense O(K³)) with one equation replaced by π_r = 1 (r the Poisson mode: that equation
    is implied by the others, P being stochastic) and then normalised."""
    if not 0 <= a < c:
        raise ValueError(f"M/D/c needs a = λD < c (got a = {a}, c = {c})")
    K = mdc_states(a, c)
    if K > MAX_STATES:
        raise OverflowError(f"M/D/c chain of {K} states (c = {c}, a = {a:.6g}) exceeds {MAX_STATES}")
    from scipy import linalg
    pmf = _poisson_pmf(a, np.arange(K))
    sf = np.maximum(0.0, 1.0 - np.cumsum(pmf))
    W = int(min(K - 1, np.searchsorted(-(sf + pmf), -PMF_TAIL)))    # last A with mass ≥ PMF_TAIL
    base = np.maximum(np.arange(K) - c, 0)
    # A = Pᵀ − I in LAPACK band storage: ab[u + m − n, n] = A[m, n], u = c upper, W lower diagonals
    lo, up = W, c
    n = np.arange(K)[None, :]
    w = np.arange(W + 1)[:, None]
    m = base[None, :] + w                                           # state reached with A = w
    ok = m < K
    ab = np.zeros((lo + up + 1, K))
    rows = up + w - np.minimum(n, c)                                # up + m − n
    ab[rows[ok], np.broadcast_to(n, ok.shape)[ok]] = np.broadcast_to(pmf[:W + 1, None], ok.shape)[ok]
    last = base + W >= K - 1                                        # columns whose band reaches K − 1
    ab[up + K - 1 - np.arange(K)[last], np.arange(K)[last]] += sf[K - 1 - base[last]]   # lumped tail
    ab[up, :] -= 1.0
    # equation r (implied by the others) becomes π_r = 1: row r of A the unit row, which stays
    # inside the band
    r = int(min(K - 1, math.floor(a)))
    cols = np.arange(max(0, r - lo), min(K, r + up + 1))
    ab[up + r - cols, cols] = 0.0
    ab[up, r] = 1.0
    rhs = np.zeros(K)
    rhs[r] = 1.0
    pi = linalg.solve_banded((lo, up), ab, rhs, check_finite=False)
    pi = np.maximum(pi, 0.0)
    pi /= pi.sum()
    return np.concatenate([[pi[: c + 1].sum()], pi[c + 1:]])


def mdc_wait_cdf(t_s, lam_per_s: float, d_s: float, c: int) -> np.ndarray:
    """Exact M/D/c waiting-time CDF P(W ≤ t) (Crommelin 1932; Franx 2001; module text):
    for t = kD + x, Σ_i Poisson_{λ(D − x)}(i) · Q((k + 1)c − 1 − i), Q the CDF of (N − c)⁺."""
    t = np.asarray(t_s, dtype=float)
    a = round(lam_per_s * d_s, 12)
    Q = np.cumsum(mdc_queue_probs(a, c))
    flat = t.reshape(-1)
    out = np.zeros(flat.size)
    uniq, inv = np.unique(flat, return_inverse=True)
    vals = np.zeros(uniq.size)
    for u, tu in enumerate(uniq):
        if tu < 0:
            continue
        k = math.floor(tu / d_s)
        x = tu - k * d_s
        L = (k + 1) * c - 1
        if L - Q.size > a + 40 * math.sqrt(a + 1) + 40:
            vals[u] = 1.0            # every Poisson term reaches Q = 1 (mass left out < 1e-13)
            continue
        i_ = np.arange(L + 1)
        vals[u] = float(np.dot(_poisson_pmf(a * (1.0 - x / d_s), i_), Q[np.minimum(L - i_, Q.size - 1)]))
    out = np.minimum(vals[inv], 1.0)
    return out.reshape(t.shape)


def mmc_wait_tail(t_s, lam_per_s: float, es_s: float, c: int) -> np.ndarray:
    """Exact M/M/c P(W > t) = C(c, a)·exp(−(cμ − λ)t)."""
    from .theory import erlang_c
    mu = 1.0 / es_s
    cw = erlang_c(c, lam_per_s / mu)
    return cw * np.exp(-(c * mu - lam_per_s) * np.maximum(np.asarray(t_s, dtype=float), 0.0))


def mgc_wait_tail(t_s, lam_per_s: float, es_s: float, cs2: float, c: int) -> np.ndarray:
    """P(W > t) for M/G/c, chosen by measured error (docs/fidelity.md, "Latency tails"):
    exact M/D/c for deterministic service (c_s² = 0); otherwise Allen–Cunneen's mean with an
    exponential tail (theory.mgc_wait_tail), exact for exponential service and measured within
    about 1% (the quantile grid's resolution) for lognormal service with c_s² ≤ 1, and low by up
    to `ac_underestimate(cs2, c)` above (the advisor adds that as a margin)."""
    t = np.asarray(t_s, dtype=float)
    if lam_per_s * es_s >= c:
        return np.ones_like(t)
    if cs2 == 0.0 and mdc_states(round(lam_per_s * es_s, 12), c) <= MAX_STATES:
        return 1.0 - mdc_wait_cdf(t, lam_per_s, es_s, c)
    from .theory import mgc_wait_tail as ac_tail
    return ac_tail(t, lam_per_s, es_s, cs2, c)


def interpolated_wait_tail(t_s, lam_per_s: float, es_s: float, cs2: float, c: int) -> np.ndarray:
    """The Tijms–Cosmetatos two-moment interpolation (1 − c_s²)·P_D(W > t) + c_s²·P_M(W > t)
    (Tijms, Van Hoorn & Federgruen 1981): measured and rejected — 8–19% high for lognormal
    service with c_s² = 0.43 at c ≤ 16, ρ ≥ 0.8 (docs/fidelity.md); kept for the comparison."""
    t = np.asarray(t_s, dtype=float)
    m = mmc_wait_tail(t, lam_per_s, es_s, c)
    d = 1.0 - mdc_wait_cdf(t, lam_per_s, es_s, c)
    return (1.0 - cs2) * d + cs2 * m


# Measured relative error of the advisor's response-time p99 against the simulator's exact
# FIFO queue (2·10^7 requests per point, c = 1…512, ρ = 0.5…0.97; docs/fidelity.md, "Latency
# tails"): the worst *under*-estimate beyond two standard errors of the simulated p99, by
# service c_s² (lognormal p99/median 10 → c_s² 1.66; 50 → 15.8) and pool size. Deterministic,
# exponential and lognormal service with c_s² ≤ 1 are within about 1.5% both ways (the quantile
# grid's resolution): no margin.
MEASURED_UNDERESTIMATE = (
    # (c_s² up to, c from, c to, worst under-estimate)
    (1.0, 1, 10**9, 0.0),
    (1.7, 1, 1, 0.19), (1.7, 2, 15, 0.05), (1.7, 16, 10**9, 0.02),
    (16.0, 1, 1, 0.56), (16.0, 2, 15, 0.19), (16.0, 16, 10**9, 0.0),
)


def p99_margin(cs2: float, c: int) -> float:
    """Relative margin the advisor keeps between its predicted p99 and the SLO when it sizes
    the pool: the measured worst under-estimate for this service variability and pool size
    (MEASURED_UNDERESTIMATE); above the measured range the last row, doubled."""
    for top, lo, hi, under in MEASURED_UNDERESTIMATE:
        if cs2 <= top + 1e-12 and lo <= c <= hi:
            return under
    if cs2 <= MEASURED_UNDERESTIMATE[-1][0]:
        return 0.0
    return 2 * max(u for top, lo, hi, u in MEASURED_UNDERESTIMATE if lo <= c <= hi)
