"""What runs when, for a design on a scenario: table size and hit ratio, training and
batch-prediction job times, the period between deployments and the lag of a fresh model.
Pure functions; the building blocks of the staleness, latency and cost predictions."""
from __future__ import annotations

import math

from scenarios.design import Design
from scenarios.schema import Scenario

from . import theory


def table_keys(sc: Scenario, d: Design) -> int:
    """How many keys the design precomputes."""
    return d.table_keys(sc.traffic.cardinality)


def hit_ratio(sc: Scenario, keys: float) -> float:
    return theory.zipf_coverage(keys, sc.traffic.cardinality, sc.traffic.zipf_s)


def batch_predict_s(sc: Scenario, keys: float) -> float:
    """Simulated duration of one batch-prediction job over `keys` keys on batch_workers vCPUs."""
    return sc.model.fill_vcpu_s(keys) / sc.serving.batch_workers


def window_examples(sc: Scenario) -> float:
    return sc.data.velocity * sc.model.training_window


def train_job_s(sc: Scenario, mode: str) -> float:
    """Duration of one training job: a full window for static/periodic, one batch for continuous."""
    trainers = sc.model.trainers
    if mode == "continuous":
        return sc.model.job_time("continuous").seconds(sc.data.velocity * sc.data.batch_interval, trainers)
    return sc.model.train_time.seconds(window_examples(sc), trainers)


def period_s(sc: Scenario, d: Design) -> float:
    """Time between deployments (the horizon for static training)."""
    if d.training == "static":
        return sc.horizon
    if d.training == "continuous":
        return sc.data.batch_interval
    return float(d.retrain_every_s)


def cycle_s(sc: Scenario, d: Design) -> float:
    """Time between deployments once the schedule runs: the period, or the training job when
    it is longer. Jobs queue behind the running one (one training pipeline, as the simulator
    runs them), so jobs longer than the period run back to back; the first starts one period
    in (period_s)."""
    per = period_s(sc, d)
    if d.training == "static":
        return per
    return max(per, train_job_s(sc, d.training))


def default_retrain_every_s(sc: Scenario) -> float:
    """The period of a periodic design when neither the scenario nor the advice gives one:
    the shortest multiple of the batch interval that fits one training job."""
    B = sc.data.batch_interval
    return B * max(1, math.ceil(train_job_s(sc, "periodic") / B - 1e-9))


def lag_s(sc: Scenario, mode: str) -> float:
    """D: model age at deployment = label delay + training job (the data ends when its labels are in)."""
    return sc.data.label_delay + train_job_s(sc, mode)
