"""Validation thresholds that know their sample size (issue 11, part 4).

Every statistical check of `validate.py` alarms when its statistic exceeds the (1 − α)
quantile of the statistic's *null distribution at the batch's row count n and the
reference's row count m*, so that a clean batch is flagged with probability at most α
(`FALSE_ALARM_RATE`, 0.5% per batch and check kind; a check applied to F features splits
α equally among them, Bonferroni). The null distributions:

- **Range** (FLOAT_TYPE_BIG_FLOAT): the probability mass outside the range [X(1), X(m)] of
  m reference values from any continuous law is Beta(2, m − 1) (coverage of the sample
  range: Wilks 1941; David & Nagaraja, *Order Statistics*, 3rd ed., §7.2), so the number of
  the n batch values outside it is Beta-binomial(n, 2, m − 1) — exact and distribution-free.
- **Numeric distribution** (COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH): the reference's
  histogram bins are bounded by its own order statistics; the probability contents of the
  m + 1 spacings of a continuous sample are Dirichlet(1, …, 1) (David & Nagaraja §6.4), so
  the contents of bins spanning k_j spacings are Dirichlet(k_1, …, k_B) and the batch's bin
  counts are Dirichlet-multinomial(n; k) — again exact and free of the feature's law. The
  quantile of the Jensen–Shannon divergence under it is simulated (fixed seed) and
  tabulated per (n, m, bins, α).
- **Categorical distribution** (COMPARATOR_L_INFTY_HIGH): the category shares are unknown;
  the batch counts are drawn from the posterior predictive given the reference counts c,
  Dirichlet-multinomial(n; c + ½) (Jeffreys prior; Gelman et al., *Bayesian Data Analysis*,
  3rd ed., §3.4), and the L∞ distance to the reference shares is simulated as above.

A simulated quantile is an order statistic of R draws; it is taken one-sided-95% high
(the rank R(1 − α) + 1.645·sqrt(Rα(1 − α)), the normal approximation to the binomial
count of draws above it), so that the threshold's own sampling error errs towards fewer
false alarms.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
from functools import lru_cache

import numpy as np

FALSE_ALARM_RATE = 0.005      # per batch and check kind (split over the features a check covers)
NULL_SEED = 20261127          # the tabulation is deterministic: same thresholds every run
MIN_DRAWS, MAX_DRAWS = 20_000, 100_000
Z_95 = 1.6448536269514722     # one-sided 95% normal quantile
HIST_BINS = 20


def draws_for(alpha: float) -> int:
    """Null draws for a quantile at tail probability alpha: ~30 draws beyond it, bounded (a
    smaller alpha takes the largest draws, which only errs towards fewer false alarms)."""
    return int(min(MAX_DRAWS, max(MIN_DRAWS, math.ceil(30.0 / alpha))))


def conservative_rank(draws: int, alpha: float) -> int:
    """0-based index into R sorted null draws of the threshold whose tail probability is
    ≤ alpha with ~95% confidence (binomial count of draws above it, normal approximation)."""
    r = draws * (1 - alpha) + Z_95 * math.sqrt(draws * alpha * (1 - alpha))
    return int(min(draws - 1, math.ceil(r) - 1))


def js_divergence_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence (base 2, in [0, 1]) of each row of p against q
    (Lin 1991, "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory 37)."""
    p = np.atleast_2d(p)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=1)
        kq = np.where(q > 0, q * np.log2(q / m), 0.0).sum(axis=1)
    return (kp + kq) / 2


def order_stat_ranks(m: int, bins: int = HIST_BINS) -> np.ndarray:
    """1-based ranks k_1 < … < k_{B−1} of the reference order statistics used as bin edges
    (at most `bins` bins; fewer when the reference has fewer than `bins` values)."""
    b = max(1, min(bins, m))
    ks = np.unique(np.round(np.arange(1, b) * m / b).astype(int))
    return ks[(ks >= 1) & (ks <= m)]


def spacing_counts(m: int, ranks: np.ndarray) -> np.ndarray:
    """Dirichlet parameters of the bins (−∞, X(k_1)), [X(k_1), X(k_2)), …, [X(k_last), ∞):
    the number of sample spacings each bin spans (they sum to m + 1)."""
    edges = np.concatenate([[0], ranks, [m + 1]])
    return np.diff(edges).astype(float)


def _multinomial_rows(rng: np.random.Generator, n: int, p: np.ndarray) -> np.ndarray:
    p = p / p.sum(axis=1, keepdims=True)
    return rng.multinomial(n, p)


CACHE_ENV = "MLARCH_CACHE_DIR"   # where tabulated thresholds are kept between processes ("": nowhere)


def cache_dir() -> str | None:
    """$MLARCH_CACHE_DIR, else $XDG_CACHE_HOME/mlarch, else ~/.cache/mlarch; None when
    MLARCH_CACHE_DIR is set empty."""
    d = os.environ.get(CACHE_ENV)
    if d is None:
        d = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                         "mlarch")
    return d or None


def _stored(fn, *args) -> float:
    """fn(*args), kept on disk under a key naming the arguments, fn's source code and numpy's
    version (its generators make the draws), so any change to either computes afresh. The
    simulated quantiles take ~0.3 s each and are the same every time: every process (a
    sweep's workers, each CLI call) would otherwise pay that before its first request. A
    missing, unreadable or unwritable store only means computing."""
    d = cache_dir()
    if d is None:
        return fn(*args)
    key = json.dumps([fn.__name__, [repr(a) for a in args], np.__version__, inspect.getsource(fn)])
    path = os.path.join(d, "thresholds", hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")
    try:
        with open(path) as f:
            rec = json.load(f)
        if rec.get("key") == key and isinstance(rec.get("value"), float):
            return rec["value"]
    except (OSError, ValueError, AttributeError):
        pass
    value = float(fn(*args))
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"          # written whole, then renamed: never half a file
        with open(tmp, "w") as f:
            json.dump({"key": key, "value": value}, f)
        os.replace(tmp, path)
    except OSError:
        pass
    return value


@lru_cache(maxsize=256)
def js_threshold(n: int, m: int, bins: int = HIST_BINS, alpha: float = FALSE_ALARM_RATE) -> float:
    """(1 − alpha) quantile of the Jensen–Shannon divergence between the histogram of n batch
    values and the reference's bin shares, for bins at the order statistics of m reference
    values (`order_stat_ranks`): Dirichlet-multinomial null, exact for any continuous law.
    Kept on disk between processes (_stored)."""
    return _stored(_js_quantile, n, m, bins, alpha)


def _js_quantile(n: int, m: int, bins: int, alpha: float) -> float:
    ranks = order_stat_ranks(m, bins)
    a = spacing_counts(m, ranks)
    ref_counts = a.copy()
    ref_counts[0] -= 1                      # bin 0 holds k_1 − 1 reference values, the others k_j
    q = ref_counts / m
    R = draws_for(alpha)
    rng = np.random.default_rng([NULL_SEED, n, m, bins])
    stats = np.empty(R)
    for lo in range(0, R, 50_000):
        hi = min(R, lo + 50_000)
        p = rng.dirichlet(a, size=hi - lo)
        counts = _multinomial_rows(rng, n, p)
        stats[lo:hi] = js_divergence_rows(counts / n, q)
    stats.sort()
    return float(stats[conservative_rank(R, alpha)])


@lru_cache(maxsize=256)
def linf_threshold(n: int, ref_counts: tuple, alpha: float = FALSE_ALARM_RATE) -> float:
    """(1 − alpha) quantile of max_k |p̂_k − q_k| between the shares p̂ of n batch values and
    the reference shares q = c / m, under the posterior predictive Dirichlet-multinomial(n; c + ½).
    Kept on disk between processes (_stored)."""
    return _stored(_linf_quantile, n, tuple(int(x) for x in ref_counts), alpha)


def _linf_quantile(n: int, ref_counts: tuple, alpha: float) -> float:
    c = np.asarray(ref_counts, dtype=float)
    q = c / c.sum()
    R = draws_for(alpha)
    rng = np.random.default_rng([NULL_SEED + 1, n, int(c.sum()), c.size])
    stats = np.empty(R)
    for lo in range(0, R, 50_000):
        hi = min(R, lo + 50_000)
        p = rng.dirichlet(c + 0.5, size=hi - lo)
        counts = _multinomial_rows(rng, n, p)
        stats[lo:hi] = np.abs(counts / n - q).max(axis=1)
    stats.sort()
    return float(stats[conservative_rank(R, alpha)])


PMF_CHUNK = 1 << 16


def _betabinom_pmf_chunks(n: int, m: int):
    """(k, P(K = k)) for K ~ Beta-binomial(n, 2, m − 1), k = 0..n in chunks, by the exact
    recurrences P(0) = m(m − 1) / ((n + m)(n + m − 1)) and
    P(k + 1) / P(k) = (n − k)(k + 2) / ((k + 1)(n − k + m − 2)) (ratios of the Beta-function
    form C(n, k)·B(k + 2, n − k + m − 1)/B(2, m − 1)), summed in logs: numpy only, since
    importing scipy.stats costs a simulation about a second before its first request."""
    log_p = math.log(m) + math.log(m - 1) - math.log(n + m) - math.log(n + m - 1)
    for lo in range(0, n + 1, PMF_CHUNK):
        k = np.arange(lo, min(n, lo + PMF_CHUNK - 1) + 1, dtype=float)
        steps = np.log((n - k[:-1]) * (k[:-1] + 2)) - np.log((k[:-1] + 1) * (n - k[:-1] + m - 2))
        logs = log_p + np.concatenate([[0.0], np.cumsum(steps)])
        yield k, np.exp(logs)
        if k[-1] < n:   # step from the chunk's last k to the next chunk's first
            last = k[-1]
            log_p = logs[-1] + math.log((n - last) * (last + 2)) - math.log((last + 1) * (n - last + m - 2))


@lru_cache(maxsize=1024)
def outside_range_threshold(n: int, m: int, alpha: float = FALSE_ALARM_RATE) -> int:
    """Largest count of batch values outside the reference range [X(1), X(m)] that a clean
    batch exceeds with probability ≤ alpha: the Beta-binomial(n, 2, m − 1) upper quantile
    (the smallest t with P(K > t) ≤ alpha)."""
    if m < 2:
        return n                              # a one-value reference has no range to check
    cdf = 0.0
    for k, pmf in _betabinom_pmf_chunks(n, m):   # the quantile sits near the mean 2n/(m + 1)
        run = cdf + np.cumsum(pmf)
        hit = np.flatnonzero(1.0 - run <= alpha)
        if hit.size:
            return int(k[hit[0]])
        cdf = float(run[-1])
    return n


def outside_range_sf(t: int, n: int, m: int) -> float:
    """P(more than t of n clean values fall outside the range of m reference values)."""
    return float(sum(pmf[k > t].sum() for k, pmf in _betabinom_pmf_chunks(n, m)))
