"""Evaluation gate: deploy a new model only if it is not worse than the live one on recent
held-out data.

Rule: with n held-out rows, deploy iff acc_new >= acc_live − 2·SE, where
SE = sqrt((p_new(1−p_new) + p_live(1−p_live)) / n) is the standard error of the difference
(a one-sided test at about 2.3%). A model that is clearly worse — e.g. trained on corrupted
data, or with flipped weights — is rejected; one within sampling noise is accepted so that
a fresh model is not held back by chance."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .train import Model


@dataclass(frozen=True)
class GateResult:
    deploy: bool
    accuracy_new: float
    accuracy_live: float
    rows: int


def gate(new: Model, live: Model | None, x: np.ndarray, y: np.ndarray) -> GateResult:
    """Compare new and live models on the held-out rows (x, y)."""
    n = len(y)
    if n == 0:
        return GateResult(True, math.nan, math.nan, 0)
    p_new = float(np.mean(new.predict(x) == y))
    if live is None:
        return GateResult(True, p_new, math.nan, n)
    p_live = float(np.mean(live.predict(x) == y))
    se = math.sqrt((p_new * (1 - p_new) + p_live * (1 - p_live)) / n)
    return GateResult(p_new >= p_live - 2 * se, p_new, p_live, n)
