"""Train: a least-squares linear classifier (ridge regression on ±1 labels, i.e. Fisher's
linear discriminant up to scale) fitted on validated data in the training window.

Fitting uses per-batch sufficient statistics (n, Σx, Σxxᵀ, Σy, Σxy), so a retrain over a
long window and a continuous update over one new batch are both exact least-squares fits
on every validated row in the window. For Gaussian features the population solution is
∝ E[x·y] ∝ the window's mean concept (Brillinger 1982), which is what the advisor assumes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ingest import Batch, feature_names
from .transform import Standardize

RIDGE = 1e-6


@dataclass(frozen=True)
class Stats:
    """Sufficient statistics of one validated batch (training rows only)."""
    data_start_s: float
    data_end_s: float
    n: float
    nominal: float
    sum_x: np.ndarray
    sum_xx: np.ndarray
    sum_y: float
    sum_xy: np.ndarray
    # raw training rows kept for a scikit-learn estimator (simulator.estimator), else None:
    # a uniform subsample of at most `keep_rows` rows, each standing for n / len(y) examples
    x: np.ndarray | None = None
    y: np.ndarray | None = None

    @staticmethod
    def of(batch: Batch, rows: np.ndarray, features: int, keep_rows: int = 0) -> "Stats":
        """Statistics of the given rows of a validated batch (and, with keep_rows > 0, the
        first keep_rows of those rows themselves: the batch's rows are i.i.d., so they are a
        uniform subsample)."""
        x = np.column_stack([batch.columns[c][rows] for c in feature_names(features)])
        y = batch.columns["y"][rows].astype(float)
        # each materialised row stands for `weight` examples: weighted sums keep every
        # stretch of time in the window at its true share, whatever the subsampling
        w = batch.weight
        kept = (x[:keep_rows].copy(), batch.columns["y"][rows][:keep_rows].astype(np.int8)) if keep_rows else (None, None)
        # `nominal` counts the whole batch (held-out rows are stored examples too): it sizes
        # the training job and the stored data
        return Stats(batch.data_start_s, batch.data_end_s, w * x.shape[0], batch.nominal_rows,
                     w * x.sum(0), w * (x.T @ x), w * float(y.sum()), w * (x.T @ y), *kept)

    def since(self, lo_s: float) -> "Stats":
        """The part of this batch's data after lo_s: its examples are spread evenly over
        [data_start_s, data_end_s), so a batch that straddles a window's start counts the
        window's share f of its examples (every sum and count scaled by f; kept rows stand for
        n / len(y) examples, so they follow). The whole batch when it starts after lo_s."""
        span = self.data_end_s - self.data_start_s
        if lo_s <= self.data_start_s + 1e-9 or span <= 0:
            return self
        f = max(0.0, (self.data_end_s - lo_s) / span)
        return Stats(lo_s, self.data_end_s, f * self.n, f * self.nominal, f * self.sum_x, f * self.sum_xx,
                     f * self.sum_y, f * self.sum_xy, self.x, self.y)


@dataclass(frozen=True)
class Model:
    """A deployed-able model: the fitted transform plus linear weights, and its provenance."""
    version: int
    transform: Standardize
    coef: np.ndarray
    intercept: float
    data_end_s: float          # end of the newest data it was trained on (model age is from here)
    trained_at_s: float
    examples: float            # nominal examples in its window

    @property
    def nbytes(self) -> int:
        """Bytes of the stored model: its weights, bias and the transform's parameters."""
        return int(self.coef.nbytes + np.float64(self.intercept).nbytes + self.transform.nbytes)

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return self.transform.apply(x) @ self.coef + self.intercept

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Labels in {−1, +1}."""
        return np.where(self.decision_function(x) >= 0, 1, -1).astype(np.int8)

    def raw_weights(self) -> tuple[np.ndarray, float]:
        """(w, b) with decision_function(x) = x·w + b: the transform folded into the weights,
        so that serving can score rows of the key-feature tables once per model."""
        w = self.coef / self.transform.scale
        return w, float(self.intercept - self.transform.mean @ w)


def fit(window: list[Stats], version: int, trained_at_s: float) -> Model:
    """Least-squares fit on the union of the batches in the window."""
    n = sum(s.n for s in window)
    sum_x = sum(s.sum_x for s in window)
    sum_xx = sum(s.sum_xx for s in window)
    sum_y = sum(s.sum_y for s in window)
    sum_xy = sum(s.sum_xy for s in window)
    tr = Standardize.from_moments(n, sum_x, np.diag(sum_xx))
    mean, scale = tr.mean, tr.scale
    # Gram matrix and moment vector of the standardised features, from the raw sums
    gram = (sum_xx - n * np.outer(mean, mean)) / np.outer(scale, scale)
    xty = (sum_xy - mean * sum_y) / scale
    coef = np.linalg.solve(gram + RIDGE * n * np.eye(len(mean)), xty)
    return Model(version, tr, coef, sum_y / n, max(s.data_end_s for s in window), trained_at_s,
                 sum(s.nominal for s in window))
