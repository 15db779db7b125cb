"""Ingest: labelled examples arrive at data.velocity in batches; injected faults corrupt them.

A batch is a dict of named columns (numpy arrays) plus metadata: `f0..f{d-1}` float64
features, `segment` an int64 category (a coarse bucket of f0 with unequal shares, standing
in for a categorical feature such as a country code), and the label `y` in {−1, +1}.
At most MAX_ROWS rows are materialised per batch (a uniform subsample); each row then
stands for `weight` examples, which is what sizes, costs and training time count.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scenarios.schema import Fault, Scenario

from .traffic import Concept

MAX_ROWS = 20_000
HISTORY_ROWS = 400_000     # rows materialised for the whole pre-t=0 history (reference + first model)
# cut points on f0 ~ N(0,1) giving segment shares of about 40/25/15/10/5/5 %
SEGMENT_CUTS = np.array([-0.2533, 0.4399, 0.9945, 1.6449, 1.9600])


@dataclass
class Batch:
    """One delivery of labelled examples."""
    index: int
    arrived_s: float
    data_start_s: float        # request times covered: [data_start_s, data_end_s)
    data_end_s: float
    columns: dict
    nominal_rows: float        # examples this batch stands for
    faults: tuple = ()
    anomalies: list = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.columns["y"])

    @property
    def weight(self) -> float:
        return self.nominal_rows / max(self.rows, 1)


def feature_names(d: int) -> list[str]:
    return [f"f{i}" for i in range(d)]


def segment_of(f0: np.ndarray) -> np.ndarray:
    return np.searchsorted(SEGMENT_CUTS, f0).astype(np.int64)


class DataSource:
    """Produces the batch that arrives at a given time, faults applied."""

    def __init__(self, sc: Scenario, concept: Concept, rng: np.random.Generator):
        self.sc, self.concept, self.rng = sc, concept, rng
        self.d = sc.data.features
        self.faults: tuple[Fault, ...] = sc.data.faults

    def batch(self, index: int, arrived_s: float, span_s: float | None = None,
              max_rows: int = MAX_ROWS) -> Batch:
        """The batch arriving at `arrived_s`: examples whose requests happened in
        (arrived − span − label_delay, arrived − label_delay], labelled by the concept then."""
        span = span_s if span_s is not None else self.sc.data.batch_interval
        end = arrived_s - self.sc.data.label_delay
        start = end - span
        nominal = self.sc.data.velocity * span
        n = int(min(max_rows, max(1, round(nominal))))
        t = self.rng.uniform(start, end, n)
        x = self.rng.standard_normal((n, self.d))
        y = self.concept.labels(self.rng, x, t)
        cols = {name: x[:, i].copy() for i, name in enumerate(feature_names(self.d))}
        cols["segment"] = segment_of(x[:, 0])
        cols["y"] = y
        cols["_t"] = t  # example times (metadata: not a feature, never validated or trained on)
        # serving_skew corrupts the serving path only (simulator.skew), never the training data
        active = tuple(f for f in self.faults if f.at <= arrived_s and f.kind != "serving_skew")
        for f in active:
            self._apply(f, cols)
        return Batch(index, arrived_s, start, end, cols, nominal, active)

    def _apply(self, f: Fault, cols: dict) -> None:
        name = f"f{f.feature}" if f.feature is not None else None
        if f.kind == "missing_feature":
            cols.pop(name, None)
        elif f.kind == "unexpected_feature":
            cols["extra_feature"] = self.rng.standard_normal(len(cols["y"]))
        elif f.kind == "type_change":
            if name in cols:
                cols[name] = np.array([f"{v:.4f}" for v in cols[name]], dtype=object)
        elif f.kind == "category_remap":
            # the upstream system reassigns category codes: same data, permuted labels
            cols["segment"] = (cols["segment"] + 1) % (len(SEGMENT_CUTS) + 1)
        elif f.kind == "scale_shift":
            if name in cols:
                cols[name] = cols[name] * (f.factor if f.factor is not None else 10.0)
        elif f.kind == "null_fraction":
            if name in cols:
                v = cols[name].astype(float)
                v[self.rng.random(v.size) < f.fraction] = np.nan
                cols[name] = v


def feed_times(interval_s: float, horizon_s: float):
    """(k, k·B) for the batches a run's feed takes after the bootstrap, k = 1, 2, ... while
    k·B < horizon (the run covers [0, horizon)): the schedule of the engine's feed processes
    and of the batches drawn ahead for them. A process waking at k·B after a timeout of
    k·B − (k−1)·B lands on k·B exactly (the difference of two floats within a factor of 2 is
    exact: Sterbenz), so SimPy's clock reads these very values."""
    k = 1
    while k * interval_s < horizon_s - 1e-9:
        yield k, k * interval_s
        k += 1


class BatchesAhead:
    """The batches of feed_times, in order, each drawn by `submit` (an executor's: the data
    plane's drawing thread) while the one before it is used, when `room()` says memory allows
    (else by `take`, when it is needed). The data stream is read by nothing else after the
    bootstrap, so these are the batches the feed would draw itself."""

    def __init__(self, source: DataSource, interval_s: float, horizon_s: float, max_rows: int, submit,
                 room=lambda: True):
        self.source, self.max_rows, self.submit, self.room = source, max_rows, submit, room
        self.times = feed_times(interval_s, horizon_s)
        self.next = None     # (future of the batch or None: not drawn yet, (k, arrival time))
        self._ahead()

    def _draw(self, kt: tuple) -> Batch:
        return self.source.batch(kt[0], kt[1], max_rows=self.max_rows)

    def _ahead(self) -> None:
        kt = next(self.times, None)
        self.next = None if kt is None else (self.submit(self._draw, kt) if self.room() else None, kt)

    def take(self, k: int, arrived_s: float) -> Batch:
        """Batch k, arriving at arrived_s (as feed_times says it does)."""
        if self.next is None or self.next[1] != (k, arrived_s):
            raise AssertionError(f"batch {k} at {arrived_s!r} s was not the next drawn ahead ({self.next and self.next[1]})")
        f, kt = self.next
        b = f.result() if f is not None else self._draw(kt)
        self._ahead()
        return b

    def close(self) -> None:
        """Stop drawing (the end of a run)."""
        if self.next is not None and self.next[0] is not None:
            self.next[0].cancel()
        self.next = None
