"""Transform: standardisation fitted at training time, applied identically at serving time.

The fitted transform travels inside the model, so serving can never use other statistics
than training did (no training–serving skew by construction)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Standardize:
    mean: np.ndarray
    scale: np.ndarray

    @staticmethod
    def from_moments(n: float, sum_x: np.ndarray, sum_xx_diag: np.ndarray) -> "Standardize":
        """Fit from sufficient statistics: mean and population standard deviation."""
        mean = sum_x / n
        var = np.maximum(sum_xx_diag / n - mean ** 2, 1e-12)
        return Standardize(mean, np.sqrt(var))

    @property
    def nbytes(self) -> int:
        return int(self.mean.nbytes + self.scale.nbytes)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale
