"""The architecture as a resolved, validated value: what the simulator runs and the advisor
prices. Who chose it (the scenario's `architecture:` block or the advisor) is the caller's
business; a Design is complete and checked against its scenario.
"""
from __future__ import annotations

from dataclasses import dataclass

TRAINING_MODES = ("static", "periodic", "continuous", "triggered")
SERVING_MODES = ("static", "dynamic", "hybrid")


@dataclass(frozen=True)
class Design:
    """One concrete architecture."""
    training: str                 # static | periodic | continuous | triggered
    retrain_every_s: float | None  # periodic only
    serving: str                  # static | dynamic | hybrid
    cache_top_k: int | None       # hybrid only
    replicas: int                 # dynamic model servers (0 = no model path)
    trigger_on: str | None = None           # triggered only: alert | new_examples | input_drift
    trigger_examples: float | None = None   # on new_examples: labelled examples per retrain
    trigger_min_interval_s: float = 0.0     # triggered: at least this long between retrain starts

    def __post_init__(self):
        if self.training not in TRAINING_MODES:
            raise ValueError(f"training must be one of {', '.join(TRAINING_MODES)}, got {self.training!r}")
        if self.serving not in SERVING_MODES:
            raise ValueError(f"serving must be one of {', '.join(SERVING_MODES)}, got {self.serving!r}")
        if self.training == "periodic" and not (self.retrain_every_s and self.retrain_every_s > 0):
            raise ValueError("periodic training needs retrain_every_s > 0")
        if self.training == "triggered" and self.trigger_on not in ("alert", "new_examples", "input_drift"):
            raise ValueError("triggered training needs trigger_on: alert, new_examples or input_drift")
        if self.trigger_on == "new_examples" and not (self.trigger_examples and self.trigger_examples > 0):
            raise ValueError("a new_examples trigger needs trigger_examples > 0")
        if self.serving == "hybrid" and not (self.cache_top_k and self.cache_top_k >= 1):
            raise ValueError("hybrid serving needs cache_top_k >= 1")
        if self.replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {self.replicas}")

    def table_keys(self, cardinality: int | None) -> int:
        """How many keys the design precomputes into its table."""
        if self.serving == "static":
            if cardinality is None:
                raise ValueError("static serving needs a finite cardinality")
            return int(cardinality)
        if self.serving == "hybrid":
            return int(self.cache_top_k)
        return 0

    def to_json(self) -> dict:
        out = {"training": self.training, "retrain_every_s": self.retrain_every_s,
               "serving": self.serving, "cache_top_k": self.cache_top_k, "replicas": self.replicas}
        if self.training == "triggered":
            out["trigger"] = {"on": self.trigger_on, "new_examples": self.trigger_examples,
                              "min_interval_s": self.trigger_min_interval_s}
        return out
