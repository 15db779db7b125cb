"""The architecture as a resolved, validated value: what the simulator runs and the advisor
prices. Who chose it (the scenario's `architecture:` block or the advisor) is the caller's
business; a Design is complete and checked against its scenario.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

TRAINING_MODES = ("static", "periodic", "continuous", "triggered")
SERVING_MODES = ("static", "dynamic", "hybrid")


@dataclass(frozen=True)
class AutoscalePolicy:
    """How an autoscaled pool is sized (serving.autoscale, resolved): every interval_s the
    autoscaler observes the model path's offered load (busy replica-seconds per second) over
    the interval and asks for the fewest replicas c whose max_load_erlangs[c − min_replicas]
    covers it; scale-ups are requested at once and serve after cold_start_s; a scale-down
    waits until no request of the last scale_down_after_s asked for more. The table is the
    advisor's staffing rule (or ceil(load / target utilisation)); the simulator only runs it."""
    min_replicas: int
    max_replicas: int
    initial_replicas: int                 # the pool at t = 0 (sized for the load then)
    max_load_erlangs: tuple               # entry i: highest load min_replicas + i replicas take
    interval_s: float
    cold_start_s: float
    scale_down_after_s: float

    def __post_init__(self):
        if not 1 <= self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise ValueError("autoscale needs 1 <= min_replicas <= initial_replicas <= max_replicas")
        if not self.max_load_erlangs or any(b < a for a, b in zip(self.max_load_erlangs, self.max_load_erlangs[1:])):
            raise ValueError("max_load_erlangs must be a non-empty non-decreasing table")
        if self.interval_s <= 0 or self.cold_start_s < 0 or self.scale_down_after_s < 0:
            raise ValueError("autoscale times must be positive")

    def replicas_for_load(self, load_erlangs: float) -> int:
        """The fewest replicas whose table entry covers the load (beyond the table: the last
        entry's utilisation, capped at max_replicas)."""
        tab = self.max_load_erlangs
        i = bisect.bisect_left(tab, load_erlangs)
        if i < len(tab):
            c = self.min_replicas + i
        else:
            last_c = self.min_replicas + len(tab) - 1
            per = tab[-1] / last_c if tab[-1] > 0 else 1.0
            c = last_c + math.ceil((load_erlangs - tab[-1]) / per)
        return max(self.min_replicas, min(self.max_replicas, c))

    def to_json(self) -> dict:
        return {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
                "initial_replicas": self.initial_replicas, "interval_s": self.interval_s,
                "cold_start_s": self.cold_start_s, "scale_down_after_s": self.scale_down_after_s,
                "max_load_erlangs": list(self.max_load_erlangs)}


@dataclass(frozen=True)
class Design:
    """One concrete architecture."""
    training: str                 # static | periodic | continuous | triggered
    retrain_every_s: float | None  # periodic only
    serving: str                  # static | dynamic | hybrid
    cache_top_k: int | None       # hybrid only
    replicas: int                 # dynamic model servers (0 = no model path); autoscaled: the most at once
    autoscale: AutoscalePolicy | None = None   # None: a fixed pool of `replicas`
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
        if self.autoscale is not None and self.replicas == 0:
            raise ValueError("an autoscaled pool needs a model path (replicas >= 1)")

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
        if self.autoscale is not None:
            out["autoscale"] = self.autoscale.to_json()
        if self.training == "triggered":
            out["trigger"] = {"on": self.trigger_on, "new_examples": self.trigger_examples,
                              "min_interval_s": self.trigger_min_interval_s}
        return out
