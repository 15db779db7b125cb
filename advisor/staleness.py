"""Staleness: model age at each request under a design's schedule, and the accuracy it costs
under the scenario's drift law (request-weighted over the day, as the simulator measures)."""
from __future__ import annotations

import numpy as np

from scenarios.design import Design
from scenarios.schema import Scenario

from . import theory
from .schedule import batch_predict_s, cycle_s, lag_s, period_s, table_keys, train_job_s, window_examples


def _acc_kw(sc: Scenario) -> dict:
    return dict(features=sc.data.features, half_life_s=sc.data.concept_half_life,
                window_s=sc.model.training_window, label_noise=sc.data.label_noise,
                examples=window_examples(sc))


def fresh_accuracy(sc: Scenario) -> float:
    """Expected accuracy of a just-trained model (estimation error and window blur included)."""
    return float(theory.accuracy_vs_age(0.0, **_acc_kw(sc)))


def age_range(sc: Scenario, d: Design, table: bool) -> tuple[float, float]:
    """Model age at a request is uniform on this range (D + U(0, T); docs/fidelity.md).

    Table rows were written by the model live when the refresh started, so a hit adds the
    batch-prediction time; a refresh longer than the period runs back to back."""
    lag, per = lag_s(sc, d.training), cycle_s(sc, d)
    if d.training == "static":
        return lag, lag + per  # the table is filled before t = 0 with the initial model
    if table:
        bp = batch_predict_s(sc, table_keys(sc, d))
        return lag + bp, lag + bp + max(per, bp)
    return lag, lag + per


AGE_GRID_MIN = 4096
AGE_GRID_MAX = 400_000


def age_profile(sc: Scenario, d: Design, table: bool) -> tuple[np.ndarray, np.ndarray]:
    """(model age at time t, request weight of t) on a grid over [0, horizon).

    Ages follow the schedule exactly: the initial model's data end at −(label delay + job);
    the k-th job starts at s_k = T + (k − 1)·C (C = max(T, job): a job longer than the period
    T waits for the one before it) and deploys at s_k + job with data ending at
    s_k − label delay (the last batch in by s_k, when a job waited); a table refresh adds the
    batch-prediction time (back to back when longer than C). Weights are the diurnal rate, so
    the averages are per request, as the simulator measures them."""
    H = sc.horizon
    L = sc.data.label_delay
    job = train_job_s(sc, d.training)
    per = cycle_s(sc, d)
    offset = period_s(sc, d) - per     # s_k = k·C + offset (0 unless a job outlasts its period)
    bp = batch_predict_s(sc, table_keys(sc, d)) if table else 0.0
    n = int(min(AGE_GRID_MAX, max(AGE_GRID_MIN, 20 * H / max(per, 1.0))))
    t = (np.arange(n) + 0.5) * (H / n)
    if d.training == "static":
        age = t + L + job
    else:
        cycle = max(per, bp) if table else per
        lag = job + bp
        k = np.floor((t - lag - offset) / cycle)
        start = k * cycle + offset
        if offset:
            # a queued job starts between batches: it trains on the batches in by then
            B = sc.data.batch_interval
            start = B * np.floor(start / B + 1e-9)
        end = np.where(k >= 1, start - L, -L - job)
        age = t - end
    tr = sc.traffic
    w = 1.0 + tr.diurnal_amplitude * np.sin(2 * np.pi * t / 86400.0)
    return age, w / w.sum()


def mean_age_and_accuracy(sc: Scenario, d: Design, table: bool) -> tuple[float, float]:
    """Request-weighted mean model age and expected served accuracy (see age_profile)."""
    age, w = age_profile(sc, d, table)
    acc = theory.accuracy_vs_age(age, **_acc_kw(sc))
    return float(w @ age), float(w @ acc)
