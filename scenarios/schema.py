"""The scenario schema: immutable pydantic models for every scenario field (README, docs/).

Values are converted to base units on load (seconds, per second, bytes, fractions);
the unit syntax lives in scenarios.units. Models are frozen: a run never mutates them.
"""
from __future__ import annotations

import math
import re
from statistics import NormalDist
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, field_validator,
                      model_validator)
from . import units
from .serving_ops import Autoscale, BatchTime, Batching, Failures, Rollout

_NORMAL = NormalDist()


def _norm_ppf(p: float) -> float:
    """Standard normal quantile (±inf at 0 and 1), without importing scipy at start-up."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return _NORMAL.inv_cdf(p)

MAX_HORIZON_S = 366 * 86400.0
MAX_TIMELINE_BATCHES = 20_000   # data batches the shifts/monitoring timeline follows (advisor.triggered)
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
        z = rng.standard_normal(n)
        z *= self.sigma                   # median · exp(σ z), computed in place
        np.exp(z, out=z)
        z *= self.median
        return z


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
               "scale_shift", "null_fraction", "serving_skew")
# serving_skew: training–serving skew, the serving path multiplies `feature` by `factor` (a unit
# change) from `at` until serving-input validation catches it; the training data are untouched
FaultKind = Literal["missing_feature", "unexpected_feature", "type_change", "category_remap",
                    "scale_shift", "null_fraction", "serving_skew"]


class Fault(Frozen):
    at: Duration
    kind: FaultKind
    feature: int | None = Field(default=None, ge=0)
    fraction: Fraction | None = None
    factor: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _needs(self):
        if self.kind in ("missing_feature", "type_change", "scale_shift", "null_fraction", "serving_skew") \
                and self.feature is None:
            raise ValueError(f"fault kind {self.kind} needs `feature:` (the feature's index)")
        if self.kind == "null_fraction" and self.fraction is None:
            raise ValueError("fault kind null_fraction needs `fraction:`")
        if self.kind != "null_fraction" and self.fraction is not None:
            raise ValueError(f"`fraction:` applies to null_fraction faults, not {self.kind}")
        if self.kind not in ("scale_shift", "serving_skew") and self.factor is not None:
            raise ValueError(f"`factor:` applies to scale_shift and serving_skew faults, not {self.kind}")
        return self


class Shifts(Frozen):
    """Sudden concept shifts on top of the smooth drift (scenarios.shifts): Poisson with a mean
    interval (`every`) or at listed times (`at`); `magnitude` is the share of a fresh model's
    edge over chance that one shift destroys."""
    every: Duration | None = Field(default=None, ge=MIN_INTERVAL_S)
    at: tuple[Duration, ...] | None = None
    magnitude: Fraction = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _one_form(self):
        if (self.every is None) == (self.at is None):
            raise ValueError("give exactly one of every (mean interval, Poisson) or at (a list of times)")
        if self.at is not None and any(a < 0 for a in self.at):
            raise ValueError("at: shift times must be >= 0")
        return self


class Data(Frozen):
    velocity: Rate = Field(gt=0, le=MAX_RATE_PER_S)
    concept_half_life: HalfLife = Field(ge=MIN_HALF_LIFE_S)
    label_delay: Duration = 0.0
    label_noise: Fraction = Field(default=0.0, lt=0.5)
    features: int = Field(default=16, ge=2, le=1024)
    batch_interval: Duration = Field(default=3600.0, ge=MIN_INTERVAL_S)
    faults: tuple[Fault, ...] = ()
    shifts: Shifts | None = None

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


class BatchPredictTime(Frozen):
    """Cost of one batch `predict` call over b keys: fixed + per_key·b (measured by calibrate)."""
    fixed: Duration = 0.0
    per_key: Duration = Field(ge=1e-9)


_CLASS_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_PARAM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _numeric(v):
    """'1e-4' -> 0.0001 (and inside lists); every other value as written."""
    if isinstance(v, str) and _NUMBER_RE.match(v.strip()):
        return float(v)
    if isinstance(v, list):
        return [_numeric(x) for x in v]
    return v


class Estimator(Frozen):
    """A scikit-learn-compatible classifier the simulator trains and serves instead of the
    built-in least-squares model: `class` is its dotted import path, `params` its keyword
    arguments. Validation here is textual; the class is imported only by the simulator
    (simulator.estimator), and only from modules the user allowed (`sklearn.` by default)."""
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, populate_by_name=True)
    class_: str = Field(alias="class")
    params: dict[str, Any] = {}

    @field_validator("class_")
    @classmethod
    def _dotted(cls, v: str) -> str:
        if not _CLASS_RE.match(v):
            raise ValueError(f"expected a dotted class path such as sklearn.linear_model.SGDClassifier (got {v!r})")
        return v

    @field_validator("params")
    @classmethod
    def _names(cls, v: dict) -> dict:
        for k in v:
            if not isinstance(k, str) or not _PARAM_RE.match(k):
                raise ValueError(f"params: {k!r} is not a keyword argument name")
        # YAML 1.1 reads 1e-4 (no dot) as text: a parameter written as a number is a number
        return {k: _numeric(x) for k, x in v.items()}

    def __hash__(self) -> int:   # params is a dict: hash its canonical text (scenarios are cached by hash)
        import json
        return hash((self.class_, json.dumps(self.params, sort_keys=True, default=repr)))


class Model(Frozen):
    inference_time: Distribution
    train_time: TrainTime = TrainTime()
    training_window: Duration = Field(default=7 * 86400.0, ge=MIN_INTERVAL_S)
    prediction_bytes: Size = Field(default=64.0, gt=0, le=1e6)
    trainers: int = Field(default=1, ge=1, le=4096)   # data-parallel training workers (1 vCPU each)
    estimator: Estimator | None = None        # None: the built-in least-squares classifier
    batch_predict_time: BatchPredictTime | None = None   # None: a table fill costs the mean inference time per key
    update_time: TrainTime | None = None      # continuous updates (partial_fit per batch); None: train_time

    def job_time(self, mode: str) -> TrainTime:
        """The duration law of one training job: update_time (when given) for continuous
        training's per-batch updates, train_time otherwise."""
        return self.update_time if mode == "continuous" and self.update_time is not None else self.train_time

    def fill_vcpu_s(self, keys: float) -> float:
        """vCPU-seconds of one batch-prediction job over `keys` keys: fixed + per_key·keys
        when batch_predict_time is given, else keys × the mean single-request inference time."""
        if keys <= 0:
            return 0.0
        b = self.batch_predict_time
        return b.fixed + b.per_key * keys if b is not None else keys * self.inference_time.mean_s
    batch_time: BatchTime | None = None   # T(b) = fixed + per_item·b, for serving.batching


class Serving(Frozen):
    replicas: int | None = Field(default=None, ge=1, le=100000)
    min_replicas: int = Field(default=2, ge=1, le=100000)   # redundancy floor for a model path
    lookup_time: Distribution = Deterministic(distribution="deterministic", value=0.002)
    batch_workers: int = Field(default=8, ge=1, le=100000)
    autoscale: Autoscale | None = None   # scenarios.serving_ops: a pool that follows the load
    batching: Batching | None = None     # scenarios.serving_ops: replicas serve batches
    failures: Failures | None = None     # scenarios.serving_ops: replicas fail and come back
    rollout: Rollout | None = None       # scenarios.serving_ops: how a deployment reaches the replicas

    @model_validator(mode="after")
    def _pool(self):
        if self.autoscale is not None and self.replicas is not None:
            raise ValueError("autoscale: the autoscaler sizes the pool over the day; drop serving.replicas "
                             "(or drop autoscale to pin a fixed pool)")
        if self.autoscale is not None and self.autoscale.min is None and self.autoscale.max < self.min_replicas:
            raise ValueError(f"autoscale: max {self.autoscale.max} is below the pool's floor of {self.min_replicas} "
                             "replicas (serving.min_replicas, autoscale.min's default); raise autoscale.max or "
                             "lower serving.min_replicas")
        return self

    @property
    def autoscale_min(self) -> int:
        """The autoscaler's floor: autoscale.min, else serving.min_replicas."""
        a = self.autoscale
        return a.min if a is not None and a.min is not None else self.min_replicas


class Slo(Frozen):
    latency_p99: Duration = Field(gt=0)
    max_accuracy_loss: Fraction = 0.02
    accuracy_confidence: Fraction = Field(default=0.9, ge=0.5, lt=1.0)   # budget met with this probability


class Costs(Frozen):
    table_storage_per_gb_month: float = Field(default=0.25, ge=0, le=1e6)
    data_storage_per_gb_month: float = Field(default=0.02, ge=0, le=1e6)
    vcpu_hour: float = Field(default=0.0864, ge=0, le=1e6)


class Monitoring(Frozen):
    """Validation of the live model: its accuracy estimated from labels as they arrive, over a
    sliding window, with an alert below a level (`alert_below`) or a drop from the level it
    had when its first window filled after deployment (`alert_drop`)."""
    window: Duration = Field(ge=MIN_INTERVAL_S)
    alert_below: Fraction | None = Field(default=None, gt=0, lt=1)
    alert_drop: Fraction | None = Field(default=None, gt=0, lt=1)

    @model_validator(mode="after")
    def _one_rule(self):
        if (self.alert_below is None) == (self.alert_drop is None):
            raise ValueError("give exactly one of alert_below (a level) or alert_drop (a fall from "
                             "the level after deployment)")
        return self


class Trigger(Frozen):
    """What starts a retrain under training: triggered (alert | new_examples | input_drift),
    at most once per min_interval."""
    on: Literal["alert", "new_examples", "input_drift"] | None = None
    new_examples: Count | None = Field(default=None, ge=1)
    min_interval: Duration = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _consistent(self):
        if self.on is None and self.new_examples is None:
            raise ValueError("give on: alert | new_examples | input_drift")
        if self.new_examples is not None and self.on not in (None, "new_examples"):
            raise ValueError(f"new_examples applies to on: new_examples, not on: {self.on}")
        if self.on == "new_examples" and self.new_examples is None:
            raise ValueError("on: new_examples needs `new_examples: N` (labelled examples per retrain)")
        return self

    @property
    def kind(self) -> str:
        return self.on or "new_examples"


class Architecture(Frozen):
    training: Literal["static", "periodic", "continuous", "triggered"] | None = None
    retrain_every: Duration | None = Field(default=None, ge=MIN_INTERVAL_S)
    trigger: Trigger | None = None
    serving: Literal["static", "dynamic", "hybrid"] | None = None
    cache_top_k: Count | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _consistent(self):
        if self.retrain_every is not None and self.training not in (None, "periodic"):
            raise ValueError("retrain_every applies only to training: periodic")
        if self.trigger is not None and self.training not in (None, "triggered"):
            raise ValueError("trigger applies only to training: triggered")
        if self.training == "triggered" and self.trigger is None:
            raise ValueError("triggered training needs `trigger: {on: alert | new_examples | input_drift}`")
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
    monitoring: Monitoring | None = None

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
        if self.serving.batching is not None and self.model.batch_time is None:
            raise ValueError("serving.batching: needs model.batch_time {fixed, per_item}, the time of a batch")
        if self.serving.failures is not None and self.serving.autoscale is not None:
            raise ValueError("serving.failures: failures of an autoscaled pool are not modelled yet; "
                             "use a fixed pool (serving.replicas or the advisor's)")
        if self.serving.rollout is not None and (self.serving.autoscale is not None
                                                 or self.serving.failures is not None):
            raise ValueError("serving.rollout: rollouts with serving.autoscale or serving.failures are not "
                             "modelled yet; use a fixed pool without failures")
        if self.serving.batching is not None and self.serving.autoscale is not None:
            raise ValueError("serving.batching: batching together with serving.autoscale is not modelled yet; "
                             "use one of the two")
        tr = arch.trigger
        if tr is not None and tr.kind == "alert" and self.monitoring is None:
            raise ValueError("architecture.trigger: on: alert needs a `monitoring:` block (window and "
                             "alert_below or alert_drop)")
        timeline = self.data.shifts is not None or self.monitoring is not None or arch.training == "triggered"
        if timeline and self.horizon / self.data.batch_interval > MAX_TIMELINE_BATCHES:
            # advisor.triggered follows every data batch in Python (about 0.6 ms each): beyond this
            # the advice takes minutes and gigabytes (found by make fuzz: 3s batches over 90d)
            raise ValueError(
                f"data.batch_interval: {units.format_duration(self.data.batch_interval)} gives "
                f"{self.horizon / self.data.batch_interval:,.0f} data batches over the "
                f"{units.format_duration(self.horizon)} horizon; with data.shifts, monitoring or triggered "
                f"training the advisor follows every batch and handles at most {MAX_TIMELINE_BATCHES:,} "
                f"(batch_interval at least {units.format_duration(self.horizon / MAX_TIMELINE_BATCHES)} here, "
                "or a shorter horizon)")
        if self.monitoring is not None and self.monitoring.window < self.data.batch_interval:
            raise ValueError(f"monitoring.window: {units.format_duration(self.monitoring.window)} is shorter "
                             f"than data.batch_interval ({units.format_duration(self.data.batch_interval)}); "
                             "the monitor sees labels one batch at a time")
        if arch.serving == "static" and n is None:
            raise ValueError("architecture.serving: static serving needs a finite "
                             "traffic.cardinality (a table cannot hold unbounded inputs)")
        if arch.cache_top_k is not None and n is not None and arch.cache_top_k >= n:
            raise ValueError(f"architecture.cache_top_k: {arch.cache_top_k} must be below the "
                             f"cardinality ({n}); use serving: static to precompute everything")
        return self
