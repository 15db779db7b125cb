"""The scenario schema: immutable pydantic models for every scenario field (README, docs/).

Values are converted to base units on load (seconds, per second, bytes, fractions);
the unit syntax lives in scenarios.units. Models are frozen: a run never mutates them.
"""
from __future__ import annotations

import math
import re
from statistics import NormalDist
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, field_validator,
                      model_validator)
from . import units

_NORMAL = NormalDist()


def _norm_ppf(p: float) -> float:
    """Standard normal quantile (±inf at 0 and 1), without importing scipy at start-up."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return _NORMAL.inv_cdf(p)

MAX_HORIZON_S = 366 * 86400.0
# Smallest meaningful values of durations that divide time into events or scale rates: below
# them a value is a typo (5e-324) that would overflow a count of events or divide by ~zero.
MIN_INTERVAL_S = 1.0          # data.batch_interval, architecture.retrain_every, model.training_window
MIN_HALF_LIFE_S = 1.0         # data.concept_half_life
MIN_SERVICE_S = 1e-6          # a time distribution's median or mean: one microsecond
MAX_RATE_PER_S = 1e7
MAX_CARDINALITY = 10**18
Z99 = 2.3263478740408408  # standard normal 0.99 quantile


def _duration(v):
    return units.parse_duration_s(v)


def _half_life(v):
    if isinstance(v, str) and v.strip().lower() == "never":
        return math.inf
    return units.parse_duration_s(v)


def _cardinality(v):
    if isinstance(v, str) and v.strip().lower() == "unbounded":
        return None
    n = units.parse_count(v)
    if n < 1:
        raise ValueError("cardinality must be at least 1 (or 'unbounded')")
    if n > MAX_CARDINALITY:
        raise ValueError(f"cardinality above 1e18 is not supported; write 'unbounded' (got {v!r})")
    return n


def _keys(v):
    """top_share.keys: a fraction (< 1 or written with %) or a whole count of keys (>= 1)."""
    if isinstance(v, str) and v.strip().endswith("%"):
        return units.parse_fraction(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1:
        return float(v)
    return float(units.parse_count(v))


Duration = Annotated[float, BeforeValidator(_duration)]
HalfLife = Annotated[float, Field(allow_inf_nan=True), BeforeValidator(_half_life)]
Rate = Annotated[float, BeforeValidator(units.parse_rate_per_s)]
Size = Annotated[float, BeforeValidator(units.parse_size_bytes)]
Fraction = Annotated[float, BeforeValidator(units.parse_fraction)]
Count = Annotated[int, BeforeValidator(units.parse_count)]
Cardinality = Annotated[int | None, BeforeValidator(_cardinality)]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# ------------------------------------------------------------------ distributions

class Lognormal(Frozen):
    """Lognormal time given by its median and 99th percentile."""
    distribution: Literal["lognormal"]
    median: Duration = Field(ge=MIN_SERVICE_S)
    p99: Duration

    @model_validator(mode="after")
    def _p99_above_median(self):
        if not self.p99 > self.median:
            raise ValueError(f"p99 ({units.format_duration(self.p99)}) must be above the median "
                             f"({units.format_duration(self.median)})")
        if self.p99 > 1e4 * self.median:
            raise ValueError("p99 more than 10,000 times the median is outside what the tool models "
                             f"(got p99 {units.format_duration(self.p99)}, median {units.format_duration(self.median)})")
        return self

    @property
    def sigma(self) -> float:
        return math.log(self.p99 / self.median) / Z99  # σ = ln(q/m)/z_0.99, since q_p = m·exp(σ z_p)

    @property
    def mean_s(self) -> float:
        return self.median * math.exp(self.sigma ** 2 / 2)

    @property
    def second_moment_s2(self) -> float:
        return self.median ** 2 * math.exp(2 * self.sigma ** 2)

    def quantile_s(self, p):
        z = np.vectorize(_norm_ppf, otypes=[float])(np.asarray(p, dtype=float))
        return self.median * np.exp(self.sigma * z)

    def cdf(self, t_s):
        t = np.maximum(np.asarray(t_s, dtype=float), 1e-300)
        # Φ(x) = erfc(−x/√2)/2, accurate in both tails
        x = np.log(t / self.median) / self.sigma
        return 0.5 * np.vectorize(math.erfc, otypes=[float])(-x / math.sqrt(2.0))

    def sample_s(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.median * np.exp(self.sigma * rng.standard_normal(n))


class Exponential(Frozen):
    """Exponential time given by its mean."""
    distribution: Literal["exponential"]
    mean: Duration = Field(ge=MIN_SERVICE_S)

    @property
    def mean_s(self) -> float:
        return self.mean

    @property
    def second_moment_s2(self) -> float:
        return 2 * self.mean ** 2

    def quantile_s(self, p):
        return -self.mean * np.log1p(-np.asarray(p, dtype=float))

    def cdf(self, t_s):
        return -np.expm1(-np.maximum(np.asarray(t_s, dtype=float), 0.0) / self.mean)

    def sample_s(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.exponential(self.mean, n)


class Deterministic(Frozen):
    """A fixed time."""
    distribution: Literal["deterministic"]
    value: Duration

    @property
    def mean_s(self) -> float:
        return self.value

    @property
    def second_moment_s2(self) -> float:
        return self.value ** 2

    def quantile_s(self, p):
        return np.full_like(np.asarray(p, dtype=float), self.value)

    def cdf(self, t_s):
        return (np.asarray(t_s, dtype=float) >= self.value).astype(float)

    def sample_s(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(n, self.value)


Distribution = Annotated[Union[Lognormal, Exponential, Deterministic], Field(discriminator="distribution")]


def cs2(dist) -> float:
    """Squared coefficient of variation of a time distribution."""
    m = dist.mean_s
    return 0.0 if m == 0 else dist.second_moment_s2 / m ** 2 - 1.0


# ------------------------------------------------------------------------ traffic

class TopShare(Frozen):
    keys: Annotated[float, BeforeValidator(_keys)] = Field(gt=0)
    traffic: Fraction


class Peakedness(Frozen):
    zipf_s: float | None = Field(default=None, ge=0, le=10)
    top_share: TopShare | None = None

    @model_validator(mode="after")
    def _exactly_one(self):
        if (self.zipf_s is None) == (self.top_share is None):
            raise ValueError("give exactly one of zipf_s or top_share")
        return self


class Traffic(Frozen):
    rate: Rate = Field(gt=0, le=MAX_RATE_PER_S)
    diurnal_amplitude: Fraction = Field(default=0.0, lt=1)
    cardinality: Cardinality = None
    peakedness: Peakedness = Peakedness(zipf_s=0.0)
    _zipf_s: float = PrivateAttr(default=0.0)

    @model_validator(mode="after")
    def _resolve_zipf(self):
        pk = self.peakedness
        if pk.zipf_s is not None:
            self._zipf_s = pk.zipf_s
            return self
        if self.cardinality is None:
            raise ValueError("peakedness.top_share needs a finite cardinality; give zipf_s instead")
        n = float(self.cardinality)
        frac = pk.top_share.keys if pk.top_share.keys < 1 else pk.top_share.keys / n
        if frac >= 1:
            raise ValueError("peakedness.top_share.keys must be fewer than the cardinality")
        from .popularity import solve_zipf_s  # the one home of the Zipf formulas
        self._zipf_s = solve_zipf_s(frac, pk.top_share.traffic, n)
        return self

    @property
    def zipf_s(self) -> float:
        """The Zipf exponent, given or solved from top_share."""
        return self._zipf_s

    @property
    def peak_rate_per_s(self) -> float:
        return self.rate * (1.0 + self.diurnal_amplitude)


# --------------------------------------------------------------------------- data

FAULT_KINDS = ("missing_feature", "unexpected_feature", "type_change", "category_remap",
               "scale_shift", "null_fraction")
FaultKind = Literal["missing_feature", "unexpected_feature", "type_change", "category_remap",
                    "scale_shift", "null_fraction"]


class Fault(Frozen):
    at: Duration
    kind: FaultKind
    feature: int | None = Field(default=None, ge=0)
    fraction: Fraction | None = None
    factor: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _needs(self):
        if self.kind in ("missing_feature", "type_change", "scale_shift", "null_fraction") \
                and self.feature is None:
            raise ValueError(f"fault kind {self.kind} needs `feature:` (the feature's index)")
        if self.kind == "null_fraction" and self.fraction is None:
            raise ValueError("fault kind null_fraction needs `fraction:`")
        if self.kind != "null_fraction" and self.fraction is not None:
            raise ValueError(f"`fraction:` applies to null_fraction faults, not {self.kind}")
        if self.kind != "scale_shift" and self.factor is not None:
            raise ValueError(f"`factor:` applies to scale_shift faults, not {self.kind}")
        return self


class Data(Frozen):
    velocity: Rate = Field(gt=0, le=MAX_RATE_PER_S)
    concept_half_life: HalfLife = Field(ge=MIN_HALF_LIFE_S)
    label_delay: Duration = 0.0
    label_noise: Fraction = Field(default=0.0, lt=0.5)
    features: int = Field(default=16, ge=2, le=1024)
    batch_interval: Duration = Field(default=3600.0, ge=MIN_INTERVAL_S)
    faults: tuple[Fault, ...] = ()

    @model_validator(mode="after")
    def _fault_features(self):
        for i, f in enumerate(self.faults):
            if f.feature is not None and f.feature >= self.features:
                raise ValueError(f"faults[{i}].feature: is {f.feature} but features are numbered "
                                 f"0..{self.features - 1}")
        return self


# -------------------------------------------------------------------------- model

class TrainTime(Frozen):
    fixed: Duration = 0.0
    per_million_examples: Duration = 0.0

    def seconds(self, examples: float, trainers: int = 1) -> float:
        """Duration of a training job over `examples` examples on `trainers` data-parallel
        workers. Speed-up law (Amdahl 1967): the fixed part (start-up, loading, evaluation,
        gradient exchange) is serial; the per-example part splits evenly across workers."""
        return self.fixed + self.per_million_examples * examples / 1e6 / trainers


class Model(Frozen):
    inference_time: Distribution
    train_time: TrainTime = TrainTime()
    training_window: Duration = Field(default=7 * 86400.0, ge=MIN_INTERVAL_S)
    prediction_bytes: Size = Field(default=64.0, gt=0, le=1e6)
    trainers: int = Field(default=1, ge=1, le=4096)   # data-parallel training workers (1 vCPU each)


class Serving(Frozen):
    replicas: int | None = Field(default=None, ge=1, le=100000)
    min_replicas: int = Field(default=2, ge=1, le=100000)   # redundancy floor for a model path
    lookup_time: Distribution = Deterministic(distribution="deterministic", value=0.002)
    batch_workers: int = Field(default=8, ge=1, le=100000)


class Slo(Frozen):
    latency_p99: Duration = Field(gt=0)
    max_accuracy_loss: Fraction = 0.02
    accuracy_confidence: Fraction = Field(default=0.9, ge=0.5, lt=1.0)   # budget met with this probability


class Costs(Frozen):
    table_storage_per_gb_month: float = Field(default=0.25, ge=0, le=1e6)
    data_storage_per_gb_month: float = Field(default=0.02, ge=0, le=1e6)
    vcpu_hour: float = Field(default=0.0864, ge=0, le=1e6)


class Architecture(Frozen):
    training: Literal["static", "periodic", "continuous"] | None = None
    retrain_every: Duration | None = Field(default=None, ge=MIN_INTERVAL_S)
    serving: Literal["static", "dynamic", "hybrid"] | None = None
    cache_top_k: Count | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _consistent(self):
        if self.retrain_every is not None and self.training not in (None, "periodic"):
            raise ValueError("retrain_every applies only to training: periodic")
        if self.cache_top_k is not None and self.serving not in (None, "hybrid"):
            raise ValueError("cache_top_k applies only to serving: hybrid")
        return self


NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class Scenario(Frozen):
    """One ML use case. Immutable; all quantities in base units."""
    name: str
    description: str = ""
    horizon: Duration = Field(default=86400.0, gt=0, le=MAX_HORIZON_S)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    traffic: Traffic
    data: Data
    model: Model
    serving: Serving = Serving()
    slo: Slo
    costs: Costs = Costs()
    architecture: Architecture = Architecture()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("name must be lowercase letters, digits and dashes (at most 64)")
        return v

    @model_validator(mode="after")
    def _cross(self):
        arch, n = self.architecture, self.traffic.cardinality
        if arch.retrain_every is not None and arch.retrain_every < self.data.batch_interval:
            raise ValueError(f"architecture.retrain_every: {units.format_duration(arch.retrain_every)} is "
                             f"shorter than data.batch_interval ({units.format_duration(self.data.batch_interval)}); "
                             "a periodic job trains when a batch has arrived, so retrain at most once per "
                             "batch (or use training: continuous)")
        if arch.serving == "static" and n is None:
            raise ValueError("architecture.serving: static serving needs a finite "
                             "traffic.cardinality (a table cannot hold unbounded inputs)")
        if arch.cache_top_k is not None and n is not None and arch.cache_top_k >= n:
            raise ValueError(f"architecture.cache_top_k: {arch.cache_top_k} must be below the "
                             f"cardinality ({n}); use serving: static to precompute everything")
        return self
