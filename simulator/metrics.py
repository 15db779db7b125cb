"""Streaming metrics: mergeable log-binned histograms and exact running aggregates, so memory
does not grow with the horizon (no per-request storage)."""
from __future__ import annotations

import math

import numpy as np

HIST_RATIO = 1.02          # bin width 2%: the bin's geometric midpoint is within 1% of any value in it
HIST_LO_S = 1e-7
HIST_HI_S = 1e8
_NBINS = int(math.ceil(math.log(HIST_HI_S / HIST_LO_S) / math.log(HIST_RATIO)))
_LOG_R = math.log(HIST_RATIO)


# bin edges: bin 1 + k holds [EDGES[k], EDGES[k + 1]) (the first and last bins also take what
# lies below and above the range). A value's bin is defined by these edges, not by its rounded
# log, so the compiled kernels (simulator.kernels) and numpy bin every value alike.
EDGES = HIST_LO_S * HIST_RATIO ** np.arange(_NBINS + 1, dtype=float)


def bin_index(v: np.ndarray) -> np.ndarray:
    """Bin of each value (0: exact zero). Raises ValueError on negative or non-finite values."""
    v = np.asarray(v, dtype=float)
    if v.size and (np.any(v < 0) or not np.all(np.isfinite(v))):
        raise ValueError("histogram values must be finite and non-negative")
    idx = np.zeros(v.size, dtype=np.int64)
    pos = v > 0
    vp = v[pos]
    idx[pos] = 1 + edge_corrected(vp, np.log(vp))
    return idx


_LOG_LO = math.log(HIST_LO_S)

# A faster route to the same bins (simulator.kernels.hist_tally), without a logarithm: a
# positive double's bits shifted right by CELL_SHIFT (its exponent and 7 leading mantissa
# bits) name a cell no wider than 2^-7 ≈ 0.8% of its values, narrower than a bin (2%), so at
# most one edge falls inside a cell: a value lies in its cell's bin, CELL_BIN (the bin of the
# cell's least value, by the edges), or in the next one when it is at or above that bin's upper
# edge. Cells below and above the range clip to its first and last cell.
CELL_SHIFT = 52 - 7
LO_CELL = int(np.float64(HIST_LO_S).view(np.int64)) >> CELL_SHIFT
_CELL_LEAST = ((np.arange((int(np.float64(EDGES[-1]).view(np.int64)) >> CELL_SHIFT) - LO_CELL + 1, dtype=np.int64)
                + LO_CELL) << CELL_SHIFT).view(np.float64)
CELL_BIN = np.clip(np.searchsorted(EDGES, _CELL_LEAST, side="right") - 1, 0, _NBINS - 1).astype(np.int64)


def edge_corrected(v: np.ndarray, log_v: np.ndarray) -> np.ndarray:
    """0-based bin k of positive values (EDGES[k] <= v < EDGES[k + 1], clipped to the range)
    from their logs: the log's estimate, moved across an edge where its rounding put it."""
    k = np.clip(np.floor((log_v - _LOG_LO) * (1.0 / _LOG_R)), 0, _NBINS - 1).astype(np.int64)
    k -= (k > 0) & (v < EDGES[k])
    k += (k < _NBINS - 1) & (v >= EDGES[np.minimum(k + 1, _NBINS)])
    return k


class LogHistogram:
    """Counts of non-negative values in log-spaced bins (ratio 1.02) plus an exact-zero bin.

    Quantiles are accurate to 1% relative; mean, count and max are exact."""

    def __init__(self):
        self.counts = np.zeros(_NBINS + 1, dtype=np.int64)   # index 0: exact zeros
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, v: np.ndarray) -> None:
        v = np.asarray(v, dtype=float)
        self.add_binned(v, bin_index(v))

    def add_binned(self, v: np.ndarray, idx: np.ndarray) -> None:
        """Add values whose bins are already known (idx = bin_index(v), or a subset of it
        taken with the same mask): one array binned once can feed several histograms."""
        if v.size == 0:
            return
        self.counts += np.bincount(idx, minlength=_NBINS + 1)
        self.n += v.size
        self.total += float(v.sum())
        self.max = max(self.max, float(v.max()))

    def add_counts(self, counts: np.ndarray, n: int, total: float, vmax: float) -> None:
        """Add values already tallied: their counts per bin, number, sum and largest value."""
        if n == 0:
            return
        self.counts += counts
        self.n += int(n)
        self.total += float(total)
        self.max = max(self.max, float(vmax))

    def merge(self, other: "LogHistogram") -> None:
        self.counts += other.counts
        self.n += other.n
        self.total += other.total
        self.max = max(self.max, other.max)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def quantile(self, p: float) -> float:
        """Smallest bin value whose cumulative share reaches p (geometric bin midpoint)."""
        if self.n == 0:
            return math.nan
        cum = np.cumsum(self.counts)
        i = int(np.searchsorted(cum, p * self.n - 1e-9))
        if i == 0:
            return 0.0
        return min(HIST_LO_S * HIST_RATIO ** (i - 1 + 0.5), self.max)

    def cdf_at(self, t: float) -> float:
        """Share of values <= t (to bin resolution)."""
        if self.n == 0:
            return math.nan
        if t <= 0:
            return self.counts[0] / self.n
        i = 1 + int(min(max(math.floor(math.log(t / HIST_LO_S) / _LOG_R), -1), _NBINS - 1))
        return float(self.counts[: i + 1].sum() / self.n)

    def summary_ms(self, keys=("mean", "p50", "p95", "p99", "p999", "max")) -> dict:
        q = {"p50": 0.5, "p95": 0.95, "p99": 0.99, "p999": 0.999}
        out = {}
        for k in keys:
            if k == "mean":
                out[k] = self.mean * 1e3
            elif k == "max":
                out[k] = self.max * 1e3
            else:
                out[k] = self.quantile(q[k]) * 1e3
        return out

    def summary_s(self) -> dict:
        return {"mean": self.mean, "p95": self.quantile(0.95), "max": self.max}

    def nonzero_bins(self) -> tuple[list, list]:
        """(upper bin edges in seconds, counts) of occupied bins, for plotting a CDF."""
        idx = np.nonzero(self.counts)[0]
        edges = [0.0 if i == 0 else HIST_LO_S * HIST_RATIO ** i for i in idx]
        return edges, self.counts[idx].tolist()
