"""Serving operations in the scenario (issue 16): how the model-server pool is run over the day.

`serving.autoscale` — a pool that follows the daily load instead of a fixed pool sized for the
peak; `serving.batching` with `model.batch_time` — replicas that serve requests in batches.
All optional: without them the pool is fixed (`serving.replicas`, or sized by the advisor
for the peak) and serves one request at a time, exactly as before.

Values are in base units (seconds, fractions), like the rest of the schema (scenarios.schema).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from . import units

Duration = Annotated[float, BeforeValidator(units.parse_duration_s)]
Fraction = Annotated[float, BeforeValidator(units.parse_fraction)]

MAX_POOL = 100_000              # the largest pool serving.replicas accepts
MIN_AUTOSCALE_INTERVAL_S = 1.0  # an autoscaler observing less than a second sees noise only
MAX_COLD_START_S = 86400.0


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Autoscale(_Frozen):
    """A reactive autoscaler (Kubernetes HPA-like): every `interval` it observes the offered
    load of the model path over the interval (busy replica-seconds per second), asks for the
    replicas that load needs, adds them at once (each serves after `cold_start`) and removes
    replicas only when no observation in the last `scale_down_after` needed them (HPA's
    scale-down stabilisation window, 5 minutes by default in Kubernetes).

    Replicas needed for a load: `target_utilization` given → ceil(load / target); omitted →
    the fewest that meet slo.latency_p99 at that load (chosen by the advisor, the
    pointwise-stationary staffing rule)."""
    min: int | None = Field(default=None, ge=1, le=MAX_POOL)      # default: serving.min_replicas
    max: int = Field(default=MAX_POOL, ge=1, le=MAX_POOL)
    target_utilization: Fraction | None = Field(default=None, gt=0, lt=1)
    cold_start: Duration = Field(default=60.0, ge=0, le=MAX_COLD_START_S)
    scale_down_after: Duration = Field(default=300.0, ge=0, le=MAX_COLD_START_S)
    interval: Duration = Field(default=60.0, ge=MIN_AUTOSCALE_INTERVAL_S, le=MAX_COLD_START_S)

    @model_validator(mode="after")
    def _bounds(self):
        if self.min is not None and self.min > self.max:
            raise ValueError(f"max: {self.max} is below min ({self.min})")
        return self


MAX_BATCH = 4096


class Batching(_Frozen):
    """Requests wait for a batch (TF Serving's max_batch_size and batch_timeout_micros, Triton's
    max_queue_delay): a batch opens at the first request that finds none open, and closes when
    it holds `max_batch` requests or `timeout` after it opened; closed batches queue FIFO for
    the replicas, each taking model.batch_time T(b) = fixed + per_item·b."""
    max_batch: int = Field(ge=1, le=MAX_BATCH)
    timeout: Duration = Field(default=0.001, ge=0, le=60.0)


class BatchTime(_Frozen):
    """Time to run one batch of b requests: T(b) = fixed + per_item·b (least squares on measured
    batches; `mlarch calibrate` measures both)."""
    fixed: Duration = Field(ge=0, le=3600.0)
    per_item: Duration = Field(ge=0, le=3600.0)

    @model_validator(mode="after")
    def _positive(self):
        if self.fixed + self.per_item < 1e-6:
            raise ValueError("a batch of one must take at least 1 µs (fixed + per_item)")
        return self

    def seconds(self, b):
        return self.fixed + self.per_item * b


class Failures(_Frozen):
    """Replica failures: each replica runs for an exponential time of mean `mtbf`, then is
    down for `mttr` (repair or replacement); a request in service on it is retried on another
    replica. Availability mttr/(mtbf + mttr) of the time down, per replica."""
    mtbf: Duration = Field(ge=60.0, le=366 * 86400.0)
    mttr: Duration = Field(ge=1.0, le=30 * 86400.0)

    @property
    def down_fraction(self) -> float:
        """Long-run share of time a replica is down: mttr / (mtbf + mttr) (alternating renewal)."""
        return self.mttr / (self.mtbf + self.mttr)


class Rollout(_Frozen):
    """How each deployment reaches the replicas (every deployment the training design causes).

    - rolling: `max_unavailable` replicas at a time are replaced; each new one warms up for
      `warmup` before serving, so the pool is short by max_unavailable for
      ceil(replicas / max_unavailable) · warmup;
    - blue_green: a second full pool warms up beside the first, then takes the traffic: no
      dip, a doubled pool billed for `warmup`;
    - canary: ceil(share · replicas) extra new replicas at a time (the first of them the
      canary) warm up beside the pool, then as many old ones leave: no dip, the extra replicas
      billed for ceil(1 / share) warm-ups (a surge-style rolling update)."""
    strategy: Literal["rolling", "blue_green", "canary"]
    max_unavailable: int = Field(default=1, ge=1, le=MAX_POOL)
    share: Fraction = Field(default=0.1, gt=0, le=1)
    warmup: Duration = Field(default=30.0, ge=0, le=3600.0)
