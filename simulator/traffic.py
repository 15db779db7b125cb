"""Synthetic traffic: arrivals, request keys, each key's features, and the drifting concept.

- Arrivals: exact non-homogeneous Poisson process with the diurnal rate, by thinning
  (Lewis & Shedler 1979).
- Keys: bounded Zipf over the cardinality by rejection-inversion (Hörmann & Derflinger
  1996, ACM TOMACS 6(3)), without any array of size N; N up to 1e18, or infinite for s > 1.
  Key 1 is the most popular.
- Features: a key always means the same input. x(key) = (A[h1(key)] + B[h2(key)]) / √2 with
  A, B fixed tables of standard normal rows and h1, h2 two halves of a 64-bit hash, so every
  key's features are exactly N(0, I) and two keys share a row only with probability 2^-17
  (fewer rows above 32 features, to bound memory).
- Concept: the drift law of scenarios.drift (rotation in planes); labels are
  sign(w(t)·x) flipped with probability label_noise.
"""
from __future__ import annotations

import math

import numpy as np

from scenarios.drift import drift_spectrum
from scenarios.schema import Scenario

from . import kernels

TABLE_BITS = 17
TABLE_ROWS = 1 << TABLE_BITS
TABLE_FLOATS = 1 << 22     # per table: at most 32 MB of features however many there are
UNBOUNDED_FLAT_N = 1e18   # "unbounded" with s <= 1 has no normalisable Zipf: sample over 1e18 keys
MAX_KEY = 9.0e18          # keys are uint64; ranks beyond this (an unbounded law with s near 1 puts
                          # 46% of its mass there at s = 1.018) become distinct keys above it
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


# ------------------------------------------------------------------- arrivals

def rate_at(t_s, rate_per_s: float, amplitude: float):
    """rate(t) = rate · (1 + A sin(2π t / 1 d))."""
    return rate_per_s * (1.0 + amplitude * np.sin(2 * np.pi * np.asarray(t_s) / 86400.0))


def integrated_rate(t0: float, t1: float, rate_per_s: float, amplitude: float) -> float:
    """∫ rate(t) dt over [t0, t1): the expected number of arrivals."""
    w = 2 * math.pi / 86400.0
    return rate_per_s * ((t1 - t0) - amplitude * (math.cos(w * t1) - math.cos(w * t0)) / w)


def arrivals(rng: np.random.Generator, t0: float, t1: float, rate_per_s: float, amplitude: float) -> np.ndarray:
    """Sorted arrival times on [t0, t1) of a Poisson process with the diurnal rate (thinning:
    candidates at the peak rate, each kept with probability rate(t)/peak)."""
    peak = rate_per_s * (1.0 + amplitude)
    n = rng.poisson(peak * (t1 - t0))
    t = rng.uniform(t0, t1, n)
    t.sort()        # in place; numpy's vectorised sort was faster than a compiled bucket sort
    if amplitude > 0:
        v = rng.random(n)
        v *= peak
        # squeeze: below the least rate on [t0, t1) a candidate is kept, and at or above the
        # most it is not, without evaluating the sine (the same decisions as comparing every
        # candidate with rate(t)); only the thin band between the two needs it
        least, most = _rate_bounds(t0, t1, rate_per_s, amplitude)
        keep = v < least
        band = np.nonzero(~keep & (v < most))[0]
        keep[band] = v[band] < rate_at(t[band], rate_per_s, amplitude)
        t = t[keep]
    return t


def _rate_bounds(t0: float, t1: float, rate_per_s: float, amplitude: float) -> tuple[float, float]:
    """Lower and upper bounds (to rounding, 1e-12 relative outside) on rate(t) over [t0, t1]:
    the least and most of its ends, or the trough r·(1 − A) and crest r·(1 + A) if inside."""
    day = 86400.0

    def inside(phase: float) -> bool:     # a time of day `phase` (a fraction of it) in [t0, t1]?
        t = day * phase + day * math.floor((t0 - day * phase) / day)
        return (t if t >= t0 else t + day) <= t1
    ends = rate_at(np.array([t0, t1]), rate_per_s, amplitude)
    least = rate_per_s * (1.0 - amplitude) if inside(0.75) else float(ends.min())   # sin = −1
    most = rate_per_s * (1.0 + amplitude) if inside(0.25) else float(ends.max())    # sin = +1
    return least * (1 - 1e-12), most * (1 + 1e-12)


# ----------------------------------------------------------------------- Zipf

def _h_integral(x, s):
    """H(x) = ∫_1^x t^-s dt = (x^(1−s) − 1)/(1 − s), stable near s = 1."""
    lx = np.log(x)
    e = (1.0 - s) * lx
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(e) > 1e-8, np.expm1(e) / np.where(e == 0, 1, e), 1.0 + e / 2) * lx


def _h_integral_inv(y, s):
    """H⁻¹(y) = exp(y · log1p(y(1 − s)) / (y(1 − s))), stable near s = 1 (the ratio → 1 − t/2)."""
    shape = np.shape(y)
    y = np.atleast_1d(np.asarray(y, dtype=float))
    t = y * (1.0 - s)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.log1p(t)
        f /= t          # in place: the draws are many, and this is on every request's path
    small = np.abs(t) <= 1e-8
    if small.any():
        f[small] = 1.0 - t[small] / 2
    f *= y
    return np.exp(f, out=f).reshape(shape)


class ZipfSampler:
    """Bounded Zipf(s) on {1..N} (N may be math.inf when s > 1) by rejection-inversion.

    Expected acceptance rate is above 90% for all s; draws are vectorised in numpy."""

    def __init__(self, n_keys: float, s: float):
        if math.isinf(n_keys) and s <= 1:
            raise ValueError("an unbounded Zipf needs s > 1")
        self.n, self.s = float(n_keys), float(s)
        if self.s == 0.0:
            return
        self.h_x1 = float(_h_integral(1.5, s)) - 1.0
        self.h_n = (1.0 / (s - 1.0)) if math.isinf(self.n) else float(_h_integral(self.n + 0.5, s))
        self.cut = 2.0 - float(_h_integral_inv(_h_integral(2.5, s) - 2.0 ** (-s), s))

    def sample(self, rng: np.random.Generator, size: int, compiled: bool | None = False) -> np.ndarray:
        """`size` keys as uint64 (ranks from 1; exact integers up to 2^53, then rounded).
        compiled: the rounding and squeeze in simulator.kernels' compiled loop (None: whenever
        available); the keys are the same either way."""
        if self.s == 0.0:
            u = rng.random(size)
            return (np.floor(u * self.n) + 1).astype(np.uint64)
        out = None
        todo = None            # indices still to draw after the first round (all of them in it)
        s = self.s
        kmax = min(self.n, MAX_KEY)
        while todo is None or todo.size:
            u = self.h_n + rng.random(size if todo is None else todo.size) * (self.h_x1 - self.h_n)
            with np.errstate(over="ignore"):
                x = _h_integral_inv(u, s)
            # the squeeze k − x <= cut accepts most draws; the exact test only for the rest
            val, ok = kernels.zipf_round(x, self.cut, kmax, MAX_KEY, compiled)
            rest = np.nonzero(~ok)[0]
            if rest.size:
                kr = val[rest]
                ok[rest] = u[rest] >= _h_integral(kr + 0.5, s) - kr ** (-s)
            if out is None:
                out = val               # the first round draws every key: rejected ones are redrawn
                todo = np.nonzero(~ok)[0]
            else:
                out[todo[ok]] = val[ok]
                todo = todo[~ok]
        tail = np.isinf(out)
        if not tail.any():
            return out.astype(np.uint64)
        keys = np.where(tail, 0.0, out).astype(np.uint64)
        # a rank beyond MAX_KEY: each such key has probability < MAX_KEY^−s, so a request for
        # one is (almost surely) its only one: a fresh uniform key above MAX_KEY (a repeat
        # among 10^9 of them has probability ~ 10^18 / 2^65). Folding them onto one key made
        # it the most popular key of the law (46% of requests at s = 1.018).
        keys[tail] = rng.integers(np.uint64(MAX_KEY) + np.uint64(1), np.iinfo(np.uint64).max,
                                  size=int(tail.sum()), dtype=np.uint64, endpoint=True)
        return keys


def zipf_for(sc: Scenario) -> ZipfSampler:
    n, s = sc.traffic.cardinality, sc.traffic.zipf_s
    if n is None:
        n = math.inf if s > 1 else UNBOUNDED_FLAT_N
    return ZipfSampler(n, s)


# ------------------------------------------------------------------ features

def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective 64-bit mix."""
    z = (x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)) & _M64
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
    return z ^ (z >> np.uint64(31))


class KeyFeatures:
    """The deterministic map key -> feature vector x(key) ~ N(0, I_d)."""

    def __init__(self, rng: np.random.Generator, features: int):
        self.d = features
        # 2^17 rows each (2^34 feature vectors) up to 32 features; fewer rows for wider inputs
        self.rows = min(TABLE_ROWS, 1 << int(math.log2(TABLE_FLOATS // features)))
        self.a = rng.standard_normal((self.rows, features))
        self.b = rng.standard_normal((self.rows, features))
        self.salt = np.uint64(int(rng.integers(0, 2**63)))

    def index(self, keys: np.ndarray, compiled: bool | None = False) -> tuple[np.ndarray, np.ndarray]:
        """Each key's rows in A and in B (kernels.key_rows; compiled: its compiled loop, None:
        whenever available; the rows are the same either way)."""
        return kernels.key_rows(keys, self.salt, self.rows, compiled)

    def features(self, keys: np.ndarray) -> np.ndarray:
        """Materialised feature matrix (n × d) for the given keys."""
        i, j = self.index(keys)
        return (self.a[i] + self.b[j]) * (1.0 / math.sqrt(2.0))


# ------------------------------------------------------------------- concept

class Concept:
    """The ground truth w(t) = Q u(t), u(t) = (√p_k cos(ω_k t + φ_k), √p_k sin(ω_k t + φ_k))_k,
    so that w(t)·w(t + a) = Σ p_k cos(ω_k a) (scenarios.drift.concept_cos)."""

    def __init__(self, rng: np.random.Generator, features: int, half_life_s: float, label_noise: float):
        self.d, self.noise = features, label_noise
        self.p, self.omega = drift_spectrum(features, half_life_s)
        self.planes = self.p.size
        self.phase = rng.uniform(0, 2 * np.pi, self.planes)
        q, r = np.linalg.qr(rng.standard_normal((features, features)))
        self.q = q * np.sign(np.diag(r))  # Haar-random orthogonal (Mezzadri 2007)
        self.sqrt_p = np.sqrt(self.p)

    shift_t: np.ndarray | None = None     # sudden shifts (set_shifts): times, sorted
    shift_m: np.ndarray | None = None     # rotation in force after 0, 1, 2, ... shifts

    def u(self, t_s) -> np.ndarray:
        """Concept coordinates in the rotated basis: (..., 2·planes)."""
        ang = np.multiply.outer(np.asarray(t_s, dtype=float), self.omega) + self.phase
        return self._shifted(np.concatenate([self.sqrt_p * np.cos(ang), self.sqrt_p * np.sin(ang)], axis=-1), t_s)

    def u_dot(self, t_s: float) -> np.ndarray:
        """du/dt at one time t: (−√p_k ω_k sin, √p_k ω_k cos)_k, turned by the shifts in force
        (constant between shifts)."""
        ang = float(t_s) * self.omega + self.phase
        a = self.sqrt_p * self.omega
        return self._shifted(np.concatenate([-a * np.sin(ang), a * np.cos(ang)]), t_s)

    def _shifted(self, out: np.ndarray, t_s) -> np.ndarray:
        """Coordinates `out` at times t_s with the sudden shifts in force then applied."""
        if self.shift_t is None:
            return out
        # sudden shifts (scenarios.shifts): the rotation in force at each time, applied on top
        k = np.searchsorted(self.shift_t, np.asarray(t_s, dtype=float), side="right")
        if out.ndim == 1:
            return self.shift_m[int(k)] @ out
        res = np.empty_like(out)
        for kk in np.unique(k):
            sel = k == kk
            res[sel] = out[sel] @ self.shift_m[kk].T
        return res

    def set_shifts(self, times_s: np.ndarray, rng: np.random.Generator, magnitude: float) -> None:
        """Turn the concept by scenarios.shifts.shift_angle_rad(magnitude) at each time, towards
        a random direction (drawn from rng) orthogonal to the concept just before."""
        from scenarios.shifts import shift_rotation
        n = 2 * self.planes
        times = np.asarray(times_s, dtype=float)
        mats = [np.eye(n)]
        for j, s in enumerate(times):
            self.shift_t, self.shift_m = times[:j], np.array(mats)
            before = self.u(float(s))     # the concept at s under the shifts before it
            mats.append(shift_rotation(before, rng.standard_normal(n), magnitude) @ mats[-1])
        self.shift_t, self.shift_m = times, np.array(mats)

    def w(self, t_s: float) -> np.ndarray:
        """The unit concept vector at time t."""
        return self.q[:, : 2 * self.planes] @ self.u(t_s)

    def w_dot(self, t_s: float) -> np.ndarray:
        """dw/dt at time t (between shifts)."""
        return self.q[:, : 2 * self.planes] @ self.u_dot(t_s)

    def rotate(self, x: np.ndarray) -> np.ndarray:
        """Feature rows in the concept's basis (only the moving coordinates)."""
        return x @ self.q[:, : 2 * self.planes]

    def margin(self, z: np.ndarray, t_s) -> np.ndarray:
        """w(t)·x for rows z = rotate(x) at per-row (or one) times."""
        u = self.u(t_s)
        return np.einsum("ij,ij->i", z, u) if u.ndim == 2 else z @ u

    def curvature_bound(self) -> float:
        """‖d²u/dt²‖ = sqrt(Σ p_k ω_k⁴), the same at every time (the shifts' rotations keep
        norms): a margin z·u(t) has |m''| <= ‖z‖ times this between shifts."""
        return float(np.sqrt(np.sum(self.p * self.omega ** 4)))

    def labels(self, rng: np.random.Generator, x: np.ndarray, t_s) -> np.ndarray:
        """Observed labels in {−1, +1}: sign(w(t)·x), flipped with probability label_noise."""
        y = np.where(self.margin(self.rotate(x), t_s) >= 0, 1, -1).astype(np.int8)
        if self.noise > 0:
            y = np.where(rng.random(y.size) < self.noise, -y, y).astype(np.int8)
        return y
