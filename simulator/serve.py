"""Serving: the precomputed table (filled by batch prediction), the online model behind a
FIFO pool of replicas, and routing between them.

- Table: a real array of predictions for the keys 1..k (the most popular), filled by
  batch-predicting those keys' features with a deployed model.
- Online path: a model scores a request from its key's features. The transform and weights
  are folded into two projections of the key-feature tables once per model (exactly the
  same arithmetic as model.decision_function on the materialised features; see tests).
- Queue: exact FIFO c-server queueing by Kiefer–Wolfowitz (1955): a heap of the replicas'
  free times; start = max(arrival, earliest free). State carries across windows. The loop
  is compiled (simulator.kernels) with a bit-identical pure-Python twin.
"""
from __future__ import annotations

import math

import numpy as np

from . import kernels
from .traffic import KeyFeatures
from .train import Model

BATCH_CHUNK_KEYS = 1 << 20
DENSE_TABLE_KEYS = 200_000_000   # beyond, a Table keeps no rows (50 MB of row bits)


class Table:
    """Predictions for keys 1..k written by one model (its provenance gives the rows' age).

    A row is computed the first time a request reads it, by batch_predict's arithmetic with
    the model that filled the table: exactly what the fill wrote, since a prediction depends
    only on its key's features and that (immutable) model. Rows no request reads are never
    computed — a 67M-row voice table costs a 2-minute run the rows its 60k requests touch,
    not 45 s of batch prediction — but the fill is billed for all k (engine._fill_table)."""

    def __init__(self, keys: int, model: Model, features: KeyFeatures, ready_at_s: float):
        self.keys = keys
        self.model = model
        self.features = features
        self.ready_at_s = ready_at_s
        if keys > DENSE_TABLE_KEYS:
            # a table too large for a row array (a static design over 1e10 keys): every read
            # scores its key with the filling model through the key-feature tables' projections
            # (Scorer: the same prediction up to float rounding of exact ties)
            self._done, self._scorer = None, Scorer(model, features)
            return
        # two bits per key, packed (1/8 of an int8 row array: a 67M-key voice table is 17 MB
        # at most, and only the pages requests touch are ever resident): whether the row has
        # been computed, and whether its prediction is +1
        n_bytes = (keys + 7) // 8
        self._done = np.zeros(n_bytes, dtype=np.uint8)
        self._plus = np.zeros(n_bytes, dtype=np.uint8)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """The ±1 prediction (int8) the table holds for each key (1-based, <= self.keys)."""
        if self._done is None:
            return self._scorer.predict(*self.features.index(keys))
        idx = keys.astype(np.int64) - 1
        byte, bit = idx >> 3, (idx & 7).astype(np.uint8)
        todo = ((self._done[byte] >> bit) & 1) == 0
        if todo.any():
            new = np.unique(idx[todo])
            plus = self.model.predict(self.features.features((new + 1).astype(np.uint64))) > 0
            nb, nbit = new >> 3, np.left_shift(np.uint8(1), (new & 7).astype(np.uint8))
            np.bitwise_or.at(self._done, nb, nbit)
            np.bitwise_or.at(self._plus, nb[plus], nbit[plus])
        return np.where((self._plus[byte] >> bit) & 1, 1, -1).astype(np.int8)

    def rows_computed(self) -> int:
        """How many rows reads have computed so far (0 for a table without rows)."""
        return 0 if self._done is None else int(np.unpackbits(self._done).sum())


def batch_predict(model: Model, features: KeyFeatures, keys: int) -> np.ndarray:
    """Predict every key 1..k with the model, materialising features chunk by chunk (what a
    Table's rows are, computed as read)."""
    out = np.empty(keys, dtype=np.int8)
    for lo in range(0, keys, BATCH_CHUNK_KEYS):
        hi = min(keys, lo + BATCH_CHUNK_KEYS)
        ks = np.arange(lo + 1, hi + 1, dtype=np.uint64)
        out[lo:hi] = model.predict(features.features(ks))
    return out


class Scorer:
    """Online predictions of one model for requests given by their feature-table indices."""

    def __init__(self, model: Model, features: KeyFeatures, skew: tuple[int, float] | None = None):
        w, b = model.raw_weights()
        if skew is not None:
            # training–serving skew (simulator.skew): serving feeds feature f multiplied by c,
            # i.e. x'·w = x·w' with w'_f = c·w_f
            w = w.copy()
            w[skew[0]] *= skew[1]
        self.model = model
        self.pa = features.a @ w * (1 / math.sqrt(2))
        self.pb = features.b @ w * (1 / math.sqrt(2))
        self.b = b

    def predict(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return np.where(self.pa[i] + self.pb[j] + self.b >= 0, 1, -1).astype(np.int8)


class ReplicaPool:
    """c FIFO servers; `serve` returns start times for arrivals in order (Kiefer–Wolfowitz).

    compiled: use the numba loop (True), its pure-Python twin (False) or whichever is
    available (None); both give the same start times bit for bit."""

    def __init__(self, replicas: int, compiled: bool | None = None):
        self.replicas = replicas
        self.compiled = compiled
        self.free_at = np.zeros(replicas)   # a min-heap (heapq layout)
        self.pending = np.empty(0)          # start times, after the last arrival, of earlier requests

    def restarted(self, t_s: float) -> "ReplicaPool":
        """The same pool with an empty queue (a new slice of a sampled lifetime)."""
        return ReplicaPool(self.replicas)

    def serve(self, arrival_s: np.ndarray, service_s: np.ndarray) -> np.ndarray:
        if self.replicas == 0:
            raise ValueError("no replicas")
        return kernels.fifo_starts(self.free_at, arrival_s, service_s, self.compiled)

    def queue_seen(self, arrival_s: np.ndarray, start_s: np.ndarray) -> np.ndarray:
        """Requests waiting (arrived, not started) as seen by each arrival. FIFO start times
        are non-decreasing, so earlier requests not started by a_n are counted by a binary
        search; by PASTA their mean is the time-average queue length (for Little's law)."""
        seen = kernels.queue_seen(arrival_s, start_s, self.pending, self.compiled)
        last = arrival_s[-1]
        self.pending = np.concatenate([self.pending[self.pending > last], start_s[start_s > last]])
        return seen
