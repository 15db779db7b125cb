"""Closed-form theory: Zipf coverage, queueing, staleness and drift.

Pure functions only (no I/O, no state). Every formula names its source; see
../shared/REFERENCES.md and docs/fidelity.md. Units are in the names.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import special

# ----------------------------------------------------------------------------- Zipf

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

    This is also the exact expected hit ratio of a table holding the top k (REFERENCES.md).
    n_keys=None means unbounded: for s > 1 the limit H(k,s)/zeta(s); for s <= 1 the head's
    share tends to 0 and 0.0 is returned (callers say so in their reasons).
    """
    if k <= 0:
        return 0.0
    if n_keys is None:
        if s <= 1.0:
            return 0.0
        return min(1.0, harmonic(k, s) / float(special.zeta(s)))
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


# ------------------------------------------------------------------------ queueing

def erlang_b(c: int, a: float) -> float:
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
    cdf = float(special.gammaincc(c + 1, a))
    return math.exp(log_pmf) / cdf if cdf > 0 else 1.0


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
    M/M/c tail (REFERENCES.md) rescaled so that its mean equals Allen–Cunneen's."""
    mu = 1.0 / es_s
    if lam_per_s >= c * mu:
        return np.ones_like(np.asarray(t_s, dtype=float))
    cw = erlang_c(c, lam_per_s / mu)
    theta = 2.0 * (c * mu - lam_per_s) / (1.0 + cs2)
    return cw * np.exp(-theta * np.maximum(np.asarray(t_s, dtype=float), 0.0))


def response_cdf(t_s: float, service_q: np.ndarray, lam_per_s: float, es_s: float, cs2: float,
                 c: int) -> float:
    """P(Wq + S <= t) with S given by equally weighted quantile points service_q and Wq from
    mgc_wait_tail (independent of S, as in FIFO): E_S[1{S<=t}(1 − P(Wq > t − S))]."""
    ok = service_q <= t_s
    if not ok.any():
        return 0.0
    tail = mgc_wait_tail(t_s - service_q[ok], lam_per_s, es_s, cs2, c)
    return float(np.sum(1.0 - tail) / service_q.size)


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


DRIFT_FIT_HALF_LIVES = 8.0


# Output of fit_unit_drift_spectrum(planes) for 2..8 planes, stored so that `advise` need not
# run the optimiser on every start; tests/test_theory.py refits and compares.
_FITTED_UNIT_SPECTRA = {
    2: ((0.794680977279, 0.205319022721),
        (0.272622008177, 3.312624196098)),
    3: ((0.640246567597, 0.296941503888, 0.062811928515),
        (0.280116060481, 0.886318855627, 3.245726839584)),
    4: ((0.606831832499, 0.266533487514, 0.096491949174, 0.030142730813),
        (0.27604420991, 0.886471960786, 1.562431064448, 3.167544050325)),
    5: ((0.596153099157, 0.260801283237, 0.090039474689, 0.0349685891, 0.018037553818),
        (0.272187240345, 0.872789414876, 1.553397633868, 2.285081979898, 3.011888635602)),
    6: ((0.594949592123, 0.260624621522, 0.089434331631, 0.033151623515, 0.014817418285, 0.007022412924),
        (0.271578462678, 0.870369806484, 1.547803499393, 2.275027195718, 3.010642274586, 4.645818027027)),
    7: ((0.592032425161, 0.26097199961, 0.089678100521, 0.03232620357, 0.013352396824, 0.006920241767, 0.004718632546),
        (0.269944192883, 0.864256591116, 1.535579049642, 2.256687196256, 3.010479369067, 3.782796684312, 4.517742795503)),
    8: ((0.590877243814, 0.261206048091, 0.032350391328, 0.089960255698, 0.013059616137, 0.002769383856, 0.006136139874, 0.003640921202),
        (0.269268432944, 0.861728401395, 2.248130319787, 1.530468551319, 2.997237732891, 5.2823640755, 3.768178723593, 4.549107958306)),
}


def unit_drift_spectrum(planes: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(weights, ω per half-life) for `planes` rotation planes (see fit_unit_drift_spectrum)."""
    if planes <= 1:
        # one rotation plane: constant angular speed that halves the edge exactly at a = 1
        return (1.0,), (math.pi / 4.0,)
    if planes in _FITTED_UNIT_SPECTRA:
        return _FITTED_UNIT_SPECTRA[planes]
    return fit_unit_drift_spectrum(planes)


@lru_cache(maxsize=16)
def fit_unit_drift_spectrum(planes: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Weights p_k > 0 (Σ = 1) and angular frequencies ω_k (rad per half-life) such that the
    edge of a frozen model, 1 − 2θ(a)/π with cos θ(a) = Σ p_k cos(ω_k a), is as close as
    possible to 2^−a on a ∈ [0, 8] half-lives (least squares; with 8 planes the largest
    error is below 0.005 of the fresh edge; docs/fidelity.md)."""
    from scipy import optimize
    ages = np.linspace(0.0, DRIFT_FIT_HALF_LIVES, 200)
    target = 0.5 ** ages

    def unpack(x):
        p = np.exp(np.clip(x[:planes], -30.0, 30.0))
        return p / p.sum(), np.exp(np.clip(x[planes:], -30.0, 30.0))

    def resid(x):
        p, w = unpack(x)
        c = np.cos(np.outer(ages, w)) @ p
        return 1.0 - 2.0 * np.arccos(np.clip(c, -1.0, 1.0)) / np.pi - target

    x0 = np.concatenate([np.zeros(planes), np.log(np.geomspace(0.2, 3.0, planes))])
    p, w = unpack(optimize.least_squares(resid, x0).x)
    return tuple(float(x) for x in p), tuple(float(x) for x in w)


def drift_spectrum(features: int, half_life_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(weights, ω in rad/s) of the concept's rotation in floor(features/2) planes (max 8).

    The concept w(t) = Q Σ_k √p_k (cos(ω_k t + φ_k) e_2k + sin(ω_k t + φ_k) e_2k+1) has the
    stationary correlation w(t)·w(t+a) = Σ p_k cos(ω_k a): every model ages the same way,
    whenever it was trained. Infinite half-life: no planes move (ω = 0)."""
    planes = max(1, min(8, features // 2))
    p, w = unit_drift_spectrum(planes)
    p_arr = np.asarray(p)
    if math.isinf(half_life_s):
        return p_arr, np.zeros_like(p_arr)
    return p_arr, np.asarray(w) / half_life_s


def concept_cos(age_s, weights: np.ndarray, omega: np.ndarray):
    """cos angle(w(t), w(t + age)) = Σ p_k cos(ω_k · age)."""
    age = np.asarray(age_s, dtype=float)
    return np.tensordot(np.cos(np.multiply.outer(age, omega)), weights, axes=([-1], [0]))


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
