"""Costs and the predicted figures of a design: `predict()` gives the closed-form figures for
any design (the advisor's choice or a pinned architecture), which is what `mlarch selfcheck`
compares with the simulator."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from scenarios.accounting import MONTH_S, example_bytes
from scenarios.design import Design
from scenarios.schema import Scenario

from .latency import latency_quantile_s
from .schedule import batch_predict_s, cycle_s, hit_ratio, period_s, table_keys, train_job_s, window_examples
from .accuracy import loss_distribution, negative_loss_note
from .staleness import age_range, fresh_accuracy, mean_age_and_accuracy


def model_bytes(features: int) -> int:
    """Bytes of a stored model: weights, bias and the transform's mean and scale (float64)."""
    return 8 * (3 * features + 1)


@dataclass(frozen=True)
class Prediction:
    """Closed-form figures for one design (keys as in CONTRACT.md `predicted`, plus extras)."""
    latency_p99_ms: float
    cache_hit_ratio: float
    table_bytes: float
    storage_usd_per_month: float
    compute_usd_per_month: float
    mean_model_age_s: float
    accuracy_loss: float
    fresh_accuracy: float
    served_accuracy: float
    replicas: int
    cost_usd_per_month: float
    serving_usd_per_month: float
    training_usd_per_month: float
    batch_prediction_usd_per_month: float
    table_usd_per_month: float
    data_bytes: float
    train_job_s: float
    batch_predict_s: float
    model_age_range_s: tuple[float, float]
    table_age_range_s: tuple[float, float] | None
    one_off_usd: dict                 # {"initial_training", "initial_table_fill", "total"}
    recurring_usd_per_month: dict     # {"serving", "retraining", "table_refreshes", "storage", "total"}
    total_usd_over_horizon: float     # one-off + recurring over the lifetime
    replica_hours: float = 0.0        # model-server replica-hours billed over the horizon
    autoscale: dict | None = None     # autoscaled pool: advisor.provisioning.autoscaled_figures
    batching: dict | None = None      # serving.batching at the mean rate: advisor.batching.figures
    failures: dict | None = None      # serving.failures: advisor.failures.figures
    rollout: dict | None = None       # serving.rollout: advisor.rollout.figures
    # the loss as a distribution across worlds (advisor/accuracy.py): sd, 90% band, the
    # quantile at slo.accuracy_confidence and whether the budget holds at that confidence
    accuracy_loss_sd: float = 0.0
    accuracy_loss_band90: tuple[float, float] = (0.0, 0.0)
    accuracy_confidence: float = 0.9
    accuracy_loss_at_confidence: float = 0.0
    accuracy_budget_met_at_confidence: bool = True
    notes: tuple = ()                 # conditions worth a sentence (e.g. a negative loss)

    def to_json(self) -> dict:
        out = asdict(self)
        out["model_age_range_s"] = list(self.model_age_range_s)
        out["table_age_range_s"] = list(self.table_age_range_s) if self.table_age_range_s else None
        out["accuracy_loss_band90"] = list(self.accuracy_loss_band90)
        out["notes"] = list(self.notes)
        return out


def _jobs_within(horizon_s: float, every_s: float, job_s: float, first_s: float | None = None) -> float:
    """Jobs started at first_s + (k − 1)·every_s (k >= 1; first_s defaults to every_s, before
    the horizon) that finish by the horizon."""
    first = every_s if first_s is None else first_s
    started = max(0, math.ceil((horizon_s - first) / every_s - 1e-9))
    if job_s <= 0:
        return float(started)
    # the 1e-9 slack admits a job ending at the horizon up to rounding; never one started at it
    return float(min(started, max(0, math.floor((horizon_s - job_s - first) / every_s + 1 + 1e-9))))


def retrains_per_horizon(sc: Scenario, d: Design) -> float:
    """Retraining jobs that finish within the horizon (the initial model is a one-off); a job
    longer than its period waits for the one before it (schedule.cycle_s)."""
    if d.training == "static":
        return 0.0
    return _jobs_within(sc.horizon, cycle_s(sc, d), train_job_s(sc, d.training), period_s(sc, d))


def table_refreshes_per_horizon(sc: Scenario, d: Design) -> float:
    """Table refreshes that finish within the horizon (the initial fill is a one-off); they
    coalesce when a batch-prediction job is longer than the deployment cycle."""
    if d.training == "static":
        return 0.0
    keys = table_keys(sc, d)
    per = max(cycle_s(sc, d), batch_predict_s(sc, keys))
    return _jobs_within(sc.horizon, per, train_job_s(sc, d.training) + batch_predict_s(sc, keys), period_s(sc, d))


def initial_job_s(sc: Scenario) -> float:
    """The job that trains the initial model: a full window, on model.trainers workers."""
    return sc.model.train_time.seconds(window_examples(sc), sc.model.trainers)


def predict(sc: Scenario, d: Design, planning_horizon_s: float | None = None) -> Prediction:
    """The advisor's closed-form figures for design d over sc.horizon. Costs are split into
    one-off jobs (the initial model and table, never scaled to a month) and recurring costs
    per month; total_usd_over_horizon adds them over planning_horizon_s (default sc.horizon,
    the deployment's lifetime). With sudden shifts or a triggered design, accuracy and
    retraining cost come from advisor.triggered's timeline."""
    if d.training == "triggered" or sc.data.shifts is not None:
        from .triggered import as_periodic, predict_with_shifts
        base = _predict(sc, as_periodic(sc, d) if d.training == "triggered" else d, planning_horizon_s)
        return predict_with_shifts(sc, d, base, planning_horizon_s or sc.horizon)
    return _predict(sc, d, planning_horizon_s)


def _predict(sc: Scenario, d: Design, planning_horizon_s: float | None = None) -> Prediction:
    """predict() on the schedule alone (smooth drift)."""
    costs, to_month = sc.costs, MONTH_S / sc.horizon
    life_s = planning_horizon_s or sc.horizon
    keys = table_keys(sc, d)
    hit = hit_ratio(sc, keys) if keys else 0.0
    auto = None
    if d.autoscale is not None:
        from .provisioning import autoscaled_figures
        auto = autoscaled_figures(sc, hit, d.autoscale)
        p99 = auto["latency_p99_s"]
        replica_s = auto["replica_hours"] * 3600.0
    else:
        p99 = latency_quantile_s(sc, 0.99, hit, d.replicas)
        replica_s = d.replicas * sc.horizon
    table_b = keys * sc.model.prediction_bytes
    data_b = window_examples(sc) * example_bytes(sc.data.features)
    model_b = model_bytes(sc.data.features)
    table_usd = table_b / 1e9 * costs.table_storage_per_gb_month
    storage_usd = table_usd + (data_b + model_b) / 1e9 * costs.data_storage_per_gb_month
    vcpu_s = costs.vcpu_hour / 3600.0
    trainers = sc.model.trainers
    serving_usd = (replica_s * to_month if auto is not None else d.replicas * MONTH_S) * vcpu_s
    roll = None
    if sc.serving.rollout is not None and d.replicas and d.autoscale is None:
        # every deployment reaches the replicas by the rollout: a dip, or a surge billed
        from .rollout import figures, p99_with_dips_s
        roll = figures(sc, hit, d.replicas, retrains_per_horizon(sc, d), costs.vcpu_hour)
        serving_usd += roll["extra_usd_per_month"]
        replica_s += roll["extra_replica_hours_per_month"] * 3600.0 / to_month
        if roll["replicas_short"]:
            p99 = p99_with_dips_s(sc, hit, d.replicas, roll["share_of_time_short"], roll["replicas_short"])
    job = train_job_s(sc, d.training)
    # every trainer is billed for the whole job
    training_usd = retrains_per_horizon(sc, d) * job * trainers * vcpu_s * to_month
    bp = batch_predict_s(sc, keys)
    fill_usd = sc.model.fill_vcpu_s(keys) * vcpu_s
    batch_usd = table_refreshes_per_horizon(sc, d) * fill_usd * to_month if keys else 0.0
    one_off = {"initial_training": initial_job_s(sc) * trainers * vcpu_s,
               "initial_table_fill": fill_usd if keys else 0.0}
    one_off["total"] = one_off["initial_training"] + one_off["initial_table_fill"]
    recurring = {"serving": serving_usd, "retraining": training_usd, "table_refreshes": batch_usd,
                 "storage": storage_usd}
    recurring["total"] = sum(recurring.values())
    m_lo, m_hi = age_range(sc, d, table=False)
    t_rng = age_range(sc, d, table=True) if keys else None
    fresh = fresh_accuracy(sc)
    age_model, acc_model = mean_age_and_accuracy(sc, d, table=False)
    age_table, acc_table = mean_age_and_accuracy(sc, d, table=True) if keys else (age_model, acc_model)
    served = hit * acc_table + (1 - hit) * acc_model
    age = (1 - hit) * age_model + hit * age_table
    compute = serving_usd + training_usd + batch_usd
    # the expected loss is reported as computed, never clamped at 0 (a note says why it is negative)
    loss = fresh - served
    dist = loss_distribution(sc, loss)
    notes = tuple(n for n in (negative_loss_note(loss, sc), _back_to_back_note(sc, d)) if n)
    return Prediction(
        latency_p99_ms=p99 * 1e3, cache_hit_ratio=hit, table_bytes=table_b,
        storage_usd_per_month=storage_usd, compute_usd_per_month=compute,
        mean_model_age_s=age, accuracy_loss=loss, fresh_accuracy=fresh,
        served_accuracy=served, replicas=d.replicas, cost_usd_per_month=recurring["total"],
        serving_usd_per_month=serving_usd, training_usd_per_month=training_usd,
        batch_prediction_usd_per_month=batch_usd, table_usd_per_month=table_usd, data_bytes=data_b,
        train_job_s=job, batch_predict_s=bp, model_age_range_s=(m_lo, m_hi), table_age_range_s=t_rng,
        one_off_usd=one_off, recurring_usd_per_month=recurring,
        total_usd_over_horizon=one_off["total"] + recurring["total"] * life_s / MONTH_S,
        replica_hours=replica_s / 3600.0, autoscale=auto,
        batching=_batching_figures(sc, hit) if sc.serving.batching is not None and d.replicas else None,
        failures=_failure_figures(sc, hit, d.replicas) if sc.serving.failures is not None and d.replicas else None,
        rollout=roll,
        accuracy_loss_sd=dist["sd"], accuracy_loss_band90=tuple(dist["band90"]),
        accuracy_confidence=dist["confidence"], accuracy_loss_at_confidence=dist["at_confidence"],
        accuracy_budget_met_at_confidence=dist["at_confidence"] <= sc.slo.max_accuracy_loss * (1 + 1e-9),
        notes=notes)


def _back_to_back_note(sc: Scenario, d: Design) -> str | None:
    """A schedule whose training job outlasts its period: jobs queue and run back to back."""
    if d.training not in ("periodic", "continuous"):
        return None
    job, per = train_job_s(sc, d.training), period_s(sc, d)
    if job <= per * (1 + 1e-9):
        return None
    from scenarios.units import format_duration
    return (f"a training job takes {format_duration(job)}, longer than the {format_duration(per)} between "
            f"scheduled starts: jobs wait for the one before them and run back to back, one deployment "
            f"every {format_duration(job)}")


def _failure_figures(sc: Scenario, hit: float, replicas: int) -> dict:
    from .failures import figures
    return figures(sc, hit, replicas)


def _batching_figures(sc: Scenario, hit: float) -> dict:
    from .batching import figures
    return figures(sc, sc.traffic.rate * (1.0 - hit))
