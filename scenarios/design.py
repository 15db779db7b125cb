"""The architecture as a resolved, validated value: what the simulator runs and the advisor
prices. Who chose it (the scenario's `architecture:` block or the advisor) is the caller's
business; a Design is complete and checked against its scenario.
"""
from __future__ import annotations

from dataclasses import dataclass

TRAINING_MODES = ("static", "periodic", "continuous")
SERVING_MODES = ("static", "dynamic", "hybrid")


@dataclass(frozen=True)
class Design:
    """One concrete architecture."""
    training: str                 # static | periodic | continuous
    retrain_every_s: float | None  # periodic only
    serving: str                  # static | dynamic | hybrid
    cache_top_k: int | None       # hybrid only
    replicas: int                 # dynamic model servers (0 = no model path)

    def __post_init__(self):
        if self.training not in TRAINING_MODES:
            raise ValueError(f"training must be one of {', '.join(TRAINING_MODES)}, got {self.training!r}")
        if self.serving not in SERVING_MODES:
            raise ValueError(f"serving must be one of {', '.join(SERVING_MODES)}, got {self.serving!r}")
        if self.training == "periodic" and not (self.retrain_every_s and self.retrain_every_s > 0):
            raise ValueError("periodic training needs retrain_every_s > 0")
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
        return {"training": self.training, "retrain_every_s": self.retrain_every_s,
                "serving": self.serving, "cache_top_k": self.cache_top_k, "replicas": self.replicas}
