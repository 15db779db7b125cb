"""Training–serving skew and serving-input validation.

A `serving_skew` fault (data.faults) makes the online serving path transform one feature
differently from training from `at` on — a unit change: the feature arrives multiplied by
`factor` (default 1000, metres for kilometres). The training data are untouched, so the
trained model is fine and the evaluation gate sees nothing; only the predictions served
online are wrong (simulator.serve.Scorer applies the skew).

Serving-input validation: at every data batch the pipeline validates a sample of the
serving inputs of the last batch interval (SAMPLE_ROWS requests at uniform times in it, keys
by the traffic's key law, featurised by the serving path — skewed for the requests after the
fault) against the training schema and distribution
(simulator.validate: the same checks and TFDV anomaly names as the training data). The first
anomalous sample detects the skew; the serving path is then fixed (rolled back to the
training transform) at once. Detection delay = detection time − fault time.
"""
from __future__ import annotations

import numpy as np

from . import validate as validation
from .ingest import feature_names, segment_of

SAMPLE_ROWS = 2000     # > validate.SMALL_BATCH_ROWS: divergence checks (JS, L∞), not small-sample tests


class ServingValidator:
    def __init__(self, faults, features, zipf, d: int, rng: np.random.Generator):
        self.faults = [f for f in faults if f.kind == "serving_skew"]
        self.features, self.zipf, self.d, self.rng = features, zipf, d, rng
        self.active: object | None = None      # the skew fault in force (not yet caught)
        self.checks = self.anomalies = 0
        self.by_kind: dict = {}
        self.detected: list[dict] = []

    def skew_of(self, fault) -> tuple[int, float]:
        return int(fault.feature), float(fault.factor if fault.factor is not None else 1000.0)

    def sample(self, t0_s: float, t1_s: float) -> dict:
        """Serving inputs of requests in (t0, t1] as the serving path built them (skewed after
        the fault in force)."""
        keys = self.zipf.sample(self.rng, SAMPLE_ROWS)
        t = self.rng.uniform(t0_s, t1_s, SAMPLE_ROWS)
        x = self.features.features(keys)
        cols = {name: x[:, i].copy() for i, name in enumerate(feature_names(self.d))}
        cols["segment"] = segment_of(x[:, 0])
        if self.active is not None:
            f, c = self.skew_of(self.active)
            cols[f"f{f}"] = np.where(t >= self.active.at, cols[f"f{f}"] * c, cols[f"f{f}"])
        cols["y"] = np.zeros(SAMPLE_ROWS, dtype=np.int8)    # no labels at serving: rows only
        return cols

    def check(self, t0_s: float, t1_s: float, reference) -> list[str]:
        """Validate one sample of the serving inputs of (t0, t1]; returns its anomalies."""
        self.checks += 1
        found = validation.validate(self.sample(t0_s, t1_s), reference)
        self.anomalies += len(found)
        for a in found:
            k = validation.anomaly_kind(a)
            self.by_kind[k] = self.by_kind.get(k, 0) + 1
        return found

    def summary(self) -> dict:
        delays = [d["delay_s"] for d in self.detected]
        return {"checks": self.checks, "rows_per_check": SAMPLE_ROWS, "anomalies": self.anomalies,
                "by_kind": self.by_kind, "skews": len(self.faults), "skews_detected": len(self.detected),
                "detections": self.detected,
                "detection_delay_s": {"mean": float(np.mean(delays)) if delays else None,
                                      "max": float(np.max(delays)) if delays else None}}
