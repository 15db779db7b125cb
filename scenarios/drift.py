"""The drift law: what `data.concept_half_life` means.

The ground truth w(t) rotates in floor(features/2) planes (at most 8) so that a frozen
model's edge over chance, 1 − 2θ/π with θ the angle between the concept then and now,
halves every half-life: cos θ(a) = Σ p_k cos(ω_k a) ≈ cos(π/2 · (1 − 2^−a)). The spectrum
(p_k, ω_k) is defined here once; the simulator's Concept rotates by it and the advisor's
accuracy formulas age by it. Checks that compare the two share this law by design.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np


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
    error is 0.0056 of the fresh edge; docs/fidelity.md)."""
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
