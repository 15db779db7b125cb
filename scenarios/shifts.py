"""The sudden-shift law: what `data.shifts` means, on top of the smooth drift (scenarios.drift).

A shift at time s turns the concept, at once, by the angle

    φ = magnitude · π/2

in the plane spanned by the concept just before the shift and a random direction orthogonal
to it. A model that was exactly right just before the shift (θ = 0) is then at θ = φ: its
edge over chance, 1 − 2θ/π, falls from 1 to 1 − magnitude — "magnitude is the share of the
model's edge a shift destroys" (1 = the model is back to chance). Between shifts the concept
keeps drifting by the smooth law, so w(t) = S_k w_smooth(t) on the k-th stretch with S_k a
fixed rotation: every model ages by the smooth law whenever it was trained, and a shift adds
the rotation on top.

Closed forms (both the advisor and the simulator's checks use these; the simulator only
draws the times and rotates its concept):

- a model whose concept is at angle θ_a from the pre-shift concept (its smooth age) keeps,
  after one shift, on average over the shift's random direction in 2P dimensions,
  cos θ' = cos θ_a·cos φ + (cos φ − 1)(1 − cos θ_a)·c  with c ≈ 0 (the cross term is
  O(1/(2P − 1)) of the already-small 1 − cos θ_a): `cos_after_shifts` uses
  cos θ' ≈ cos θ_a · cos^k φ for k shifts since the model's data.
- a least-squares model trained on a window whose share f lies after the shift points at the
  window's mean concept (Brillinger 1982): f·w_post + (1 − f)·w_pre, so its cosine with the
  post-shift concept is (f + (1 − f) cos φ) / sqrt(f² + (1 − f)² + 2f(1 − f) cos φ)
  (`blend_cos`).
- Poisson shifts with mean interval τ: N(H) ~ Poisson(H/τ) over a lifetime H; listed times
  happen exactly then.
"""
from __future__ import annotations

import math

import numpy as np


def shift_angle_rad(magnitude: float) -> float:
    """φ = magnitude · π/2: the turn that takes a fresh model's edge 1 − 2θ/π to 1 − magnitude."""
    return float(magnitude) * math.pi / 2.0


def edge_after_shift(magnitude: float) -> float:
    """Edge over chance (1 − 2θ/π) of a model that was exact just before one shift."""
    return 1.0 - 2.0 * shift_angle_rad(magnitude) / math.pi


def cos_after_shifts(cos_smooth, magnitude: float, shifts: int):
    """cos angle(model, concept) after `shifts` shifts on top of a smooth-drift cosine
    (multiplicative approximation; see the module docstring)."""
    return np.asarray(cos_smooth, dtype=float) * math.cos(shift_angle_rad(magnitude)) ** shifts


def blend_cos(post_share, magnitude: float):
    """cos between the post-shift concept and a least-squares model whose training window has
    share f = post_share after the shift (the window's mean concept, Brillinger 1982)."""
    f = np.clip(np.asarray(post_share, dtype=float), 0.0, 1.0)
    c = math.cos(shift_angle_rad(magnitude))
    norm = np.sqrt(f ** 2 + (1 - f) ** 2 + 2 * f * (1 - f) * c)
    return (f + (1 - f) * c) / np.maximum(norm, 1e-300)


def expected_shifts(shifts, horizon_s: float) -> float:
    """Expected number of shifts in [0, horizon): H/τ for Poisson shifts, the listed ones in range."""
    if shifts is None:
        return 0.0
    if shifts.at is not None:
        return float(sum(1 for s in shifts.at if 0.0 <= s < horizon_s))
    return horizon_s / shifts.every


def shift_times_s(shifts, horizon_s: float, rng: np.random.Generator) -> np.ndarray:
    """The shift times in [0, horizon): the listed ones, or a Poisson process with mean
    interval `every` (exponential gaps drawn from rng)."""
    if shifts is None:
        return np.empty(0)
    if shifts.at is not None:
        return np.array(sorted(s for s in shifts.at if 0.0 <= s < horizon_s), dtype=float)
    out, t = [], 0.0
    while True:
        t += float(rng.exponential(shifts.every))
        if t >= horizon_s:
            return np.array(out, dtype=float)
        out.append(t)


def shift_rotation(before: np.ndarray, direction: np.ndarray, magnitude: float) -> np.ndarray:
    """The orthogonal matrix turning unit vector `before` by φ towards `direction` (which is
    orthogonalised against it): a rotation in that plane only, the identity elsewhere."""
    e1 = before / np.linalg.norm(before)
    r = direction - (direction @ e1) * e1
    e2 = r / np.linalg.norm(r)
    phi = shift_angle_rad(magnitude)
    n = before.size
    return (np.eye(n) + (math.cos(phi) - 1.0) * (np.outer(e1, e1) + np.outer(e2, e2))
            + math.sin(phi) * (np.outer(e2, e1) - np.outer(e1, e2)))
