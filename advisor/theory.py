"""Closed-form theory: queueing, caching and staleness formulas used by the advisor.

Pure functions only (no I/O, no state). Every formula names its source; see
docs/fidelity.md. Units are in the names. The popularity and drift laws that define what a
scenario means live in scenarios.popularity and scenarios.drift (re-exported here).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from scenarios.drift import (DRIFT_FIT_HALF_LIVES, concept_cos, drift_spectrum,  # noqa: F401
                             fit_unit_drift_spectrum, unit_drift_spectrum)
from scenarios.popularity import harmonic, solve_zipf_s, top_k_for_coverage, zipf_coverage  # noqa: F401

# ------------------------------------------------------------------------ queueing

def _erlang_b(c: int, a: float) -> float:
    """Erlang B blocking probability: the stable recursion B_k = aB/(k + aB) for c <= 64; for
    more servers the same value in O(1) as a Poisson(a) pmf/cdf ratio, (a^c/c!)/Σ_{k<=c} a^k/k!
    (regularised incomplete gamma, no factorials)."""
    if c <= 64:
        b = 1.0
        for k in range(1, c + 1):
            b = a * b / (k + a * b)
        return b
    if a <= 0:
        return 0.0
    log_pmf = c * math.log(a) - a - math.lgamma(c + 1)
    from scipy import special
    cdf = float(special.gammaincc(c + 1, a))
    return math.exp(log_pmf) / cdf if cdf > 0 else 1.0


# memoised: the advisor's quantile searches ask for the same (c, a) tens of thousands of times
# (one p99 bisection evaluates the wait tail at ~30 points, each needing C(c, a))
erlang_b = functools.lru_cache(maxsize=65536)(_erlang_b)


def erlang_c(c: int, a: float) -> float:
    """Erlang C probability that an arrival waits in M/M/c: c·B / (c − a(1 − B)); 1 if a >= c."""
    if a >= c:
        return 1.0
    b = erlang_b(c, a)
    return c * b / (c - a * (1.0 - b))


def mmc_wait_mean_s(lam_per_s: float, mu_per_s: float, c: int) -> float:
    """M/M/c mean queue wait Wq = C / (cμ − λ); inf when unstable."""
    if lam_per_s >= c * mu_per_s:
        return math.inf
    return erlang_c(c, lam_per_s / mu_per_s) / (c * mu_per_s - lam_per_s)


def mmc_wait_quantile_s(p: float, lam_per_s: float, mu_per_s: float, c: int) -> float:
    """M/M/c wait quantile: 0 if p <= 1 − C else ln(C/(1 − p)) / (cμ − λ)."""
    if lam_per_s >= c * mu_per_s:
        return math.inf
    cw = erlang_c(c, lam_per_s / mu_per_s)
    if p <= 1.0 - cw:
        return 0.0
    return math.log(cw / (1.0 - p)) / (c * mu_per_s - lam_per_s)


def mg1_wait_mean_s(lam_per_s: float, es_s: float, es2_s2: float) -> float:
    """Pollaczek–Khinchine M/G/1 mean wait λE[S²] / (2(1 − ρ))."""
    rho = lam_per_s * es_s
    if rho >= 1:
        return math.inf
    return lam_per_s * es2_s2 / (2.0 * (1.0 - rho))


def md1_wait_cdf(t_s: float, lam_per_s: float, d_s: float) -> float:
    """M/D/1 waiting-time CDF, Erlang's formula P(W <= t) = (1−ρ) Σ_{k=0}^{⌊t/D⌋}
    (λ(kD − t))^k / k! · e^{−λ(kD − t)} (Erlang 1909; Franx 2001, Queueing Systems 37).
    Alternating sum: accurate for t/D up to ~30."""
    rho = lam_per_s * d_s
    if t_s < 0:
        return 0.0
    total = 0.0
    for k in range(int(math.floor(t_s / d_s)) + 1):
        x = lam_per_s * (k * d_s - t_s)
        total += (x ** k) / math.factorial(k) * math.exp(-x)
    return (1.0 - rho) * total


def mgc_wait_mean_s(lam_per_s: float, es_s: float, cs2: float, c: int) -> float:
    """Allen–Cunneen M/G/c approximation: Wq(M/M/c) · (1 + c_s²)/2."""
    return mmc_wait_mean_s(lam_per_s, 1.0 / es_s, c) * (1.0 + cs2) / 2.0


def mgc_wait_tail(t_s: np.ndarray, lam_per_s: float, es_s: float, cs2: float, c: int) -> np.ndarray:
    """Approximate P(Wq > t) for M/G/c: C·exp(−θt) with θ = 2(cμ − λ)/(1 + c_s²), the
    M/M/c tail P(Wq > t) = C·e^{−(cμ−λ)t} (Gross & Harris, Fundamentals of Queueing Theory §2.3) rescaled so that its mean equals Allen–Cunneen's."""
    mu = 1.0 / es_s
    if lam_per_s >= c * mu:
        return np.ones_like(np.asarray(t_s, dtype=float))
    cw = erlang_c(c, lam_per_s / mu)
    theta = 2.0 * (c * mu - lam_per_s) / (1.0 + cs2)
    return cw * np.exp(-theta * np.maximum(np.asarray(t_s, dtype=float), 0.0))


def response_cdf(t_s: float, service_q: np.ndarray, lam_per_s: float, es_s: float, cs2: float,
                 c: int) -> float:
    """P(Wq + S <= t) with S given by equally weighted quantile points service_q and Wq from
    tails.mgc_wait_tail (independent of S, as in FIFO): E_S[1{S<=t}(1 − P(Wq > t − S))]."""
    ok = service_q <= t_s
    if not ok.any():
        return 0.0
    from .tails import mgc_wait_tail as wait_tail   # exact M/D/c, Allen–Cunneen otherwise
    tail = wait_tail(t_s - service_q[ok], lam_per_s, es_s, cs2, c)
    return float(np.sum(1.0 - tail) / service_q.size)


def pooled_response_cdf(service_q: np.ndarray, lams_per_s, servers, weights, es_s: float, cs2: float,
                        exact_mdc: bool = True):
    """t -> Σ_i w_i·P(Wq + S <= t) over phases i, each an M/G/c queue with arrival rate
    lams_per_s[i] and servers[i] replicas (response_cdf per phase); an overloaded phase
    contributes nothing. Deterministic service takes the exact M/D/c wait phase by phase (as
    tails.mgc_wait_tail chooses), unless not exact_mdc; otherwise Allen–Cunneen's tail
    (mgc_wait_tail), with C(c, a) and the decay rate computed once per phase, not at every
    point of a quantile search."""
    lams = np.asarray(lams_per_s, dtype=float)
    cs = np.broadcast_to(np.asarray(servers), lams.shape).astype(np.int64)
    w = np.asarray(weights, dtype=float)
    if cs2 == 0.0 and exact_mdc:
        return lambda t: sum(wi * response_cdf(t, service_q, lam, es_s, cs2, int(c))
                             for lam, c, wi in zip(lams, cs, w))
    stable = lams * es_s < cs
    lams, cs, w = lams[stable], cs[stable], w[stable]
    mu = 1.0 / es_s
    cw = np.array([erlang_c(int(c), lam * es_s) for lam, c in zip(lams, cs)]).reshape(-1, 1)
    theta = (2.0 * (cs * mu - lams) / (1.0 + cs2))[:, None]     # mgc_wait_tail's decay rate

    def f(t):
        ok = service_q <= t
        if not ok.any():
            return 0.0
        tail = cw * np.exp(-theta * (t - service_q[ok])[None, :])
        return float(np.dot(w, np.sum(1.0 - tail, axis=1)) / service_q.size)
    return f


def mixture_quantile(p: float, cdfs: list, weights: list[float], hi_s: float) -> float:
    """Quantile of a mixture: the t with Σ w_i F_i(t) = p, by bisection on [0, hi_s] (inf if
    the mixture has not reached p by hi_s)."""
    f = lambda t: sum(w * cdf(t) for w, cdf in zip(weights, cdfs) if w > 0)  # noqa: E731
    if f(hi_s) < p:
        return math.inf
    lo, hi = 0.0, hi_s
    for _ in range(100):
        mid = (lo + hi) / 2
        if f(mid) >= p:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-7 * max(hi, 1e-6):
            break
    return hi


# ------------------------------------------------------------- staleness and drift

def periodic_mean_age_s(lag_s: float, period_s: float) -> float:
    """Mean model age at a random request under periodic retraining: D + T/2 (uniform on (D, D+T))."""
    return lag_s + period_s / 2.0


def accuracy_from_cos(cos_theta, label_noise: float):
    """Accuracy of sign(v·x) against labels sign(w·x) flipped w.p. ε, x ~ N(0, I):
    (1 − ε)(1 − θ/π) + εθ/π with θ = angle(v, w) (Goemans–Williamson hyperplane lemma)."""
    theta = np.arccos(np.clip(cos_theta, -1.0, 1.0))
    return (1.0 - label_noise) * (1.0 - theta / np.pi) + label_noise * theta / np.pi


def window_model_cos(age_s, window_s: float, weights: np.ndarray, omega: np.ndarray):
    """cos angle between the mean concept over a training window [t−W, t] and w(t + age).

    A least-squares classifier on Gaussian features estimates E[x y] ∝ mean_s w(s)
    (Brillinger 1982), so this is the direction a model trained on that window converges to:
    numerator Σ p_k (sin(ω(a+W)) − sin(ωa))/(ωW), norm² Σ p_k sinc²(ωW/2).
    """
    age = np.asarray(age_s, dtype=float)
    if window_s <= 0:
        return concept_cos(age, weights, omega)
    wa = np.multiply.outer(age, omega)
    ww = omega * window_s
    with np.errstate(invalid="ignore", divide="ignore"):
        num_k = np.where(ww > 0, (np.sin(wa + ww) - np.sin(wa)) / np.where(ww > 0, ww, 1.0), np.cos(wa))
        half = ww / 2
        sinc_k = np.where(half > 0, np.sin(half) / np.where(half > 0, half, 1.0), 1.0)
    norm = math.sqrt(float(np.sum(weights * sinc_k ** 2)))
    return np.tensordot(num_k, weights, axes=([-1], [0])) / max(norm, 1e-300)


def estimation_cos(examples: float, features: int, label_noise: float, signal_cos: float = 1.0) -> float:
    """cos of the angle between a least-squares classifier fitted on n examples and its
    population direction: tan²θ ≈ (d − 1)σ²/(n|β|²), β = √(2/π)(1 − 2ε)|w̄|, σ² = 1 − |β|²
    (OLS coefficient covariance σ²/n · I for x ~ N(0, I))."""
    if examples <= features + 1:
        return 0.0
    beta2 = (2.0 / math.pi) * (1.0 - 2.0 * label_noise) ** 2 * signal_cos ** 2
    sigma2 = max(1.0 - beta2, 1e-12)
    tan2 = (features - 1) * sigma2 / (examples * beta2)
    return 1.0 / math.sqrt(1.0 + tan2)


def accuracy_vs_age(age_s, *, features: int, half_life_s: float, window_s: float, label_noise: float,
                    examples: float | None = None):
    """Expected accuracy of a model trained on a window of data ending `age_s` ago."""
    w, om = drift_spectrum(features, half_life_s)
    cos = window_model_cos(age_s, window_s, w, om)
    if examples is not None:
        cos = cos * estimation_cos(examples, features, label_noise)
    return accuracy_from_cos(cos, label_noise)


def mean_accuracy_over_ages(lo_s: float, hi_s: float, points: int = 257, **kw) -> float:
    """Mean of accuracy_vs_age for age uniform on [lo_s, hi_s] (Simpson's rule)."""
    from scipy.integrate import simpson
    if hi_s <= lo_s:
        return float(accuracy_vs_age(lo_s, **kw))
    ages = np.linspace(lo_s, hi_s, points)
    return float(simpson(accuracy_vs_age(ages, **kw), x=ages) / (hi_s - lo_s))
