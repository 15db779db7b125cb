"""The advisor: choose the training and serving design for a scenario and predict its figures.

Pure functions over an immutable Scenario. `advise()` picks the design; `predict()` gives
the closed-form figures for any design (the advisor's choice or a pinned architecture),
which is what `selfcheck` compares with the simulator.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from scenarios.schema import Scenario, cs2
from scenarios.units import format_bytes, format_count, format_duration

from . import theory

MONTH_S = 730 * 3600.0          # the cloud billing month (730 h)
EXAMPLE_OVERHEAD_BYTES = 16     # label and timestamp stored with each training example
SERVICE_QUANTILE_POINTS = 1000  # quantile grid used for the response-time convolution
DIURNAL_PHASES = 48             # phases of the day averaged for request-weighted latency


def example_bytes(features: int) -> int:
    """Bytes per stored training example: float64 features plus label and timestamp."""
    return 8 * features + EXAMPLE_OVERHEAD_BYTES


def model_bytes(features: int) -> int:
    """Bytes of a stored model: weights, bias and the transform's mean and scale."""
    return 8 * (3 * features + 1)


# ------------------------------------------------------------------- designs

@dataclass(frozen=True)
class Design:
    """One concrete architecture: what the simulator runs and the advisor predicts."""
    training: str                 # static | periodic | continuous
    retrain_every_s: float | None
    serving: str                  # static | dynamic | hybrid
    cache_top_k: int | None
    replicas: int

    def to_json(self) -> dict:
        return {"training": self.training, "retrain_every_s": self.retrain_every_s,
                "serving": self.serving, "cache_top_k": self.cache_top_k, "replicas": self.replicas}


def table_keys(sc: Scenario, d: Design) -> int:
    """How many keys the design precomputes."""
    if d.serving == "static":
        return int(sc.traffic.cardinality)
    if d.serving == "hybrid":
        return int(d.cache_top_k or 0)
    return 0


def hit_ratio(sc: Scenario, keys: float) -> float:
    return theory.zipf_coverage(keys, sc.traffic.cardinality, sc.traffic.zipf_s)


def batch_predict_s(sc: Scenario, keys: float) -> float:
    """Simulated duration of one batch-prediction job over `keys` keys on batch_workers vCPUs."""
    return keys * sc.model.inference_time.mean_s / sc.serving.batch_workers


def window_examples(sc: Scenario) -> float:
    return sc.data.velocity * sc.model.training_window


def train_job_s(sc: Scenario, mode: str) -> float:
    """Duration of one training job: a full window for static/periodic, one batch for continuous."""
    if mode == "continuous":
        return sc.model.train_time.seconds(sc.data.velocity * sc.data.batch_interval)
    return sc.model.train_time.seconds(window_examples(sc))


def period_s(sc: Scenario, d: Design) -> float:
    """Time between deployments (the horizon for static training)."""
    if d.training == "static":
        return sc.horizon
    if d.training == "continuous":
        return sc.data.batch_interval
    return float(d.retrain_every_s)


def lag_s(sc: Scenario, mode: str) -> float:
    """D: model age at deployment = label delay + training job (the data ends when its labels are in)."""
    return sc.data.label_delay + train_job_s(sc, mode)


def _acc_kw(sc: Scenario) -> dict:
    return dict(features=sc.data.features, half_life_s=sc.data.concept_half_life,
                window_s=sc.model.training_window, label_noise=sc.data.label_noise,
                examples=window_examples(sc))


def fresh_accuracy(sc: Scenario) -> float:
    """Expected accuracy of a just-trained model (estimation error and window blur included)."""
    return float(theory.accuracy_vs_age(0.0, **_acc_kw(sc)))


def age_range(sc: Scenario, d: Design, table: bool) -> tuple[float, float]:
    """Model age at a request is uniform on this range (REFERENCES.md: D + U(0, T)).

    Table rows were written by the model live when the refresh started, so a hit adds the
    batch-prediction time; a refresh longer than the period runs back to back."""
    lag, per = lag_s(sc, d.training), period_s(sc, d)
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
    the job started at k·T deploys at k·T + job with data ending at k·T − label delay; a table
    refresh adds the batch-prediction time (back to back when longer than T). Weights are
    the diurnal rate, so the averages are per request, as the simulator measures them."""
    H = sc.horizon
    L = sc.data.label_delay
    job = train_job_s(sc, d.training)
    per = period_s(sc, d)
    bp = batch_predict_s(sc, table_keys(sc, d)) if table else 0.0
    n = int(min(AGE_GRID_MAX, max(AGE_GRID_MIN, 20 * H / max(per, 1.0))))
    t = (np.arange(n) + 0.5) * (H / n)
    if d.training == "static":
        age = t + L + job
    else:
        cycle = max(per, bp) if table else per
        lag = job + bp
        k = np.floor((t - lag) / cycle)
        end = np.where(k >= 1, k * cycle - L, -L - job)
        age = t - end
    tr = sc.traffic
    w = 1.0 + tr.diurnal_amplitude * np.sin(2 * np.pi * t / 86400.0)
    return age, w / w.sum()


def mean_age_and_accuracy(sc: Scenario, d: Design, table: bool) -> tuple[float, float]:
    """Request-weighted mean model age and expected served accuracy (see age_profile)."""
    age, w = age_profile(sc, d, table)
    acc = theory.accuracy_vs_age(age, **_acc_kw(sc))
    return float(w @ age), float(w @ acc)


# ------------------------------------------------------------------ latency

def _service_points(dist) -> np.ndarray:
    p = (np.arange(SERVICE_QUANTILE_POINTS) + 0.5) / SERVICE_QUANTILE_POINTS
    return np.asarray(dist.quantile_s(p), dtype=float)


def _phase_rates(sc: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """Arrival rates over the horizon's part of the day (all of it for horizons of a day or
    more) and their request weights (rate-proportional)."""
    tr = sc.traffic
    if tr.diurnal_amplitude == 0:
        return np.array([tr.rate]), np.array([1.0])
    span = min(sc.horizon, 86400.0) / 86400.0
    ph = (np.arange(DIURNAL_PHASES) + 0.5) / DIURNAL_PHASES * span
    lam = tr.rate * (1 + tr.diurnal_amplitude * np.sin(2 * np.pi * ph))
    return lam, lam / lam.sum()


def latency_quantile_s(sc: Scenario, p: float, hit: float, replicas: int | None,
                       rates: np.ndarray | None = None, weights: np.ndarray | None = None) -> float:
    """Quantile p of request latency (queue wait + service, or table lookup), request-weighted
    over the day: table hits take lookup_time; misses queue at `replicas` M/G/c servers
    (Allen–Cunneen wait with an exponential tail, convolved with the service time).
    replicas=None means no queueing at all (the service time alone)."""
    if rates is None:
        rates, weights = _phase_rates(sc)
    inf = sc.model.inference_time
    lookup = sc.serving.lookup_time
    es, c2 = inf.mean_s, cs2(inf)
    pts = _service_points(inf)
    miss = 1.0 - hit
    if miss > 1e-12 and replicas is not None and (replicas < 1 or np.any(rates * miss * es >= replicas)):
        return math.inf

    def cdf(t):
        total = hit * float(lookup.cdf(t))
        if miss > 1e-12 and replicas is None:
            total += miss * float(inf.cdf(t))
        elif miss > 1e-12:
            total += miss * sum(w * theory.response_cdf(t, pts, lam * miss, es, c2, replicas)
                                for lam, w in zip(rates, weights))
        return total

    hi = 10.0 * max(float(inf.quantile_s(0.9999)), float(lookup.quantile_s(0.9999)), 1e-3)
    for _ in range(8):
        if cdf(hi) >= p:
            break
        hi *= 10
    return theory.mixture_quantile(p, [cdf], [1.0], hi)


def replicas_for_slo(sc: Scenario, hit: float) -> int | None:
    """Fewest replicas whose p99 at the peak rate meets slo.latency_p99 (None if none can)."""
    miss = 1.0 - hit
    if miss <= 1e-12:
        return 0
    inf = sc.model.inference_time
    slo = sc.slo.latency_p99
    peak = np.array([sc.traffic.peak_rate_per_s])
    one = np.array([1.0])
    # the service time alone must meet the SLO share of the misses
    if latency_quantile_s(sc, 0.99, hit, None, peak, one) > slo:
        return None
    c = max(1, math.floor(peak[0] * miss * inf.mean_s) + 1)
    ok = lambda n: latency_quantile_s(sc, 0.99, hit, n, peak, one) <= slo  # noqa: E731
    if ok(c):
        return c
    hi = c * 2
    while not ok(hi):
        hi *= 2
    lo = c
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


# ------------------------------------------------------------------ predict

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

    def to_json(self) -> dict:
        out = asdict(self)
        out["model_age_range_s"] = list(self.model_age_range_s)
        out["table_age_range_s"] = list(self.table_age_range_s) if self.table_age_range_s else None
        return out


def _jobs_within(horizon_s: float, every_s: float, job_s: float) -> float:
    """Jobs started at k·every_s (k >= 1, before the horizon) that finish by the horizon."""
    if job_s <= 0:
        return float(max(0, math.ceil(horizon_s / every_s - 1e-9) - 1))
    return float(max(0, math.floor((horizon_s - job_s) / every_s + 1e-9)))


def deployments_per_horizon(sc: Scenario, d: Design, initial_share: float = 1.0) -> float:
    """Model deployments in the horizon: the initial model (trained before t = 0, counted as
    `initial_share` of a job) plus the retrains that finish within the horizon."""
    if d.training == "static":
        return initial_share
    return initial_share + _jobs_within(sc.horizon, period_s(sc, d), train_job_s(sc, d.training))


def table_refreshes_per_horizon(sc: Scenario, d: Design, initial_share: float = 1.0) -> float:
    """Table fills in the horizon: the initial fill (as `initial_share`) plus refreshes, which
    coalesce when a batch-prediction job is longer than the deployment period."""
    if d.training == "static":
        return initial_share
    keys = table_keys(sc, d)
    per = max(period_s(sc, d), batch_predict_s(sc, keys))
    return initial_share + _jobs_within(sc.horizon, per, train_job_s(sc, d.training) + batch_predict_s(sc, keys))


def predict(sc: Scenario, d: Design, planning_horizon_s: float | None = None) -> Prediction:
    """The advisor's closed-form figures for design d over sc.horizon. The initial model and
    table are amortised over planning_horizon_s (default sc.horizon), as the simulator does."""
    costs, to_month = sc.costs, MONTH_S / sc.horizon
    share = min(1.0, sc.horizon / (planning_horizon_s or sc.horizon))
    keys = table_keys(sc, d)
    hit = hit_ratio(sc, keys) if keys else 0.0
    p99 = latency_quantile_s(sc, 0.99, hit, d.replicas)
    table_b = keys * sc.model.prediction_bytes
    data_b = window_examples(sc) * example_bytes(sc.data.features)
    model_b = model_bytes(sc.data.features)
    table_usd = table_b / 1e9 * costs.table_storage_per_gb_month
    storage_usd = table_usd + (data_b + model_b) / 1e9 * costs.data_storage_per_gb_month
    vcpu_s = costs.vcpu_hour / 3600.0
    serving_usd = d.replicas * MONTH_S * vcpu_s
    job = train_job_s(sc, d.training)
    training_usd = deployments_per_horizon(sc, d, share) * job * vcpu_s * to_month
    bp = batch_predict_s(sc, keys)
    batch_usd = (table_refreshes_per_horizon(sc, d, share) * keys * sc.model.inference_time.mean_s
                 * vcpu_s * to_month) if keys else 0.0
    m_lo, m_hi = age_range(sc, d, table=False)
    t_rng = age_range(sc, d, table=True) if keys else None
    fresh = fresh_accuracy(sc)
    age_model, acc_model = mean_age_and_accuracy(sc, d, table=False)
    age_table, acc_table = mean_age_and_accuracy(sc, d, table=True) if keys else (age_model, acc_model)
    served = hit * acc_table + (1 - hit) * acc_model
    age = (1 - hit) * age_model + hit * age_table
    compute = serving_usd + training_usd + batch_usd
    return Prediction(
        latency_p99_ms=p99 * 1e3, cache_hit_ratio=hit, table_bytes=table_b,
        storage_usd_per_month=storage_usd, compute_usd_per_month=compute,
        mean_model_age_s=age, accuracy_loss=max(0.0, fresh - served), fresh_accuracy=fresh,
        served_accuracy=served, replicas=d.replicas, cost_usd_per_month=storage_usd + compute,
        serving_usd_per_month=serving_usd, training_usd_per_month=training_usd,
        batch_prediction_usd_per_month=batch_usd, table_usd_per_month=table_usd, data_bytes=data_b,
        train_job_s=job, batch_predict_s=bp, model_age_range_s=(m_lo, m_hi), table_age_range_s=t_rng)


# ------------------------------------------------------------------ training

@dataclass(frozen=True)
class TrainingOption:
    mode: str
    retrain_every_s: float | None
    accuracy_loss: float
    mean_model_age_s: float
    feasible: bool
    why_not: str = ""


@dataclass(frozen=True)
class TrainingAdvice:
    decision: str
    mode: str
    retrain_every_s: float | None
    scores: dict
    axes: dict
    reasons: list
    budget_met: bool
    options: dict = field(default_factory=dict)


def _training_option(sc: Scenario, mode: str, every: float | None, cache_keys: int = 0) -> TrainingOption:
    """Loss and age of a training design; with cache_keys > 0, table hits (which carry the
    batch-prediction lag) are mixed in by their hit ratio."""
    d = Design(mode, every, "hybrid" if cache_keys else "dynamic", cache_keys or None, 1)
    age, acc = mean_age_and_accuracy(sc, d, table=False)
    if cache_keys:
        h = hit_ratio(sc, cache_keys)
        t_age, t_acc = mean_age_and_accuracy(sc, d, table=True)
        acc = (1 - h) * acc + h * t_acc
        age = (1 - h) * age + h * t_age
    loss = max(0.0, fresh_accuracy(sc) - acc)
    job = train_job_s(sc, mode)
    per = period_s(sc, d)
    feasible, why = True, ""
    if mode != "static" and job > per:
        feasible, why = False, (f"a training job takes {format_duration(job)}, longer than the "
                                f"{format_duration(per)} between jobs")
    return TrainingOption(mode, every, loss, age, feasible, why)


def _training_axes(opt: TrainingOption, budget: float) -> dict:
    """Scores 0–10 on the course's axes (higher is better)."""
    stale = 10.0 if opt.accuracy_loss <= budget else 10.0 * budget / opt.accuracy_loss
    build = {"static": 10.0, "periodic": 6.0, "continuous": 4.0}[opt.mode]
    validation = {"static": 10.0, "periodic": 5.0, "continuous": 4.0}[opt.mode]
    return {"staleness": round(stale, 2), "staleness_raw": stale, "build_test_effort": build,
            "engineering_validation_effort": validation}


def _training_score(axes: dict, meets: bool, feasible: bool) -> float:
    """0–10. Within the accuracy budget: 7 to 10 by effort (build/test and validation), so
    static wins whenever it is good enough. Outside it: at most 5, by accuracy alone
    (5 × budget / loss), so the design that loses least wins when nothing is good enough."""
    if not feasible:
        return 0.0
    if not meets:
        return round(0.5 * axes["staleness_raw"], 2)
    effort = (axes["build_test_effort"] + axes["engineering_validation_effort"]) / 2
    return round(10.0 * (0.7 + 0.03 * effort), 2)


def advise_training(sc: Scenario, cache_keys: int = 0) -> TrainingAdvice:
    """Static if the frozen model stays within slo.max_accuracy_loss over the horizon, else the
    least frequent retraining that does (continuous when only every batch does).
    cache_keys: size of the precomputed table, whose rows are older than the model."""
    budget = sc.slo.max_accuracy_loss
    B = sc.data.batch_interval
    static = _training_option(sc, "static", None, cache_keys)
    cont = _training_option(sc, "continuous", None, cache_keys)
    # periodic candidates: whole numbers of data batches up to the horizon
    steps = max(1, int(sc.horizon // B))
    # loss grows with the interval, so bisect for the longest interval within budget, from
    # the shortest interval that fits one training job
    opt = lambda m: _training_option(sc, "periodic", B * m, cache_keys)  # noqa: E731
    m_min = max(1, math.ceil(train_job_s(sc, "periodic") / B - 1e-9))
    periodic = [opt(m_min)] if m_min <= steps else []
    ok_periodic = [o for o in periodic if o.feasible and o.accuracy_loss <= budget]
    if ok_periodic:
        lo, hi = m_min, steps
        if opt(hi).accuracy_loss <= budget:
            lo = hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if opt(mid).accuracy_loss <= budget:
                lo = mid
            else:
                hi = mid
        dyn = opt(lo)  # fewest retrains within budget
        if dyn.retrain_every_s <= B and cont.feasible:
            dyn = cont   # retraining on every batch: update incrementally instead
    elif cont.feasible and cont.accuracy_loss <= budget:
        dyn = cont
    else:
        cands = [o for o in periodic + [cont] if o.feasible]
        dyn = min(cands, key=lambda o: o.accuracy_loss) if cands else cont
    axes = {"static": _training_axes(static, budget), "dynamic": _training_axes(dyn, budget)}
    scores = {"static": _training_score(axes["static"], static.accuracy_loss <= budget, True),
              "dynamic": _training_score(axes["dynamic"], dyn.accuracy_loss <= budget, dyn.feasible)}
    for a in axes.values():
        a.pop("staleness_raw")
    decision = "static" if scores["static"] >= scores["dynamic"] else "dynamic"
    chosen = static if decision == "static" else dyn
    met = chosen.accuracy_loss <= budget
    hl = sc.data.concept_half_life
    reasons = []
    if math.isinf(hl):
        reasons.append("The concept never drifts (concept_half_life: never), so a model trained once "
                       "keeps its accuracy.")
    else:
        reasons.append(f"A frozen model loses half its edge over chance every {format_duration(hl)}; "
                       f"over the {format_duration(sc.horizon)} horizon a static model's mean age is "
                       f"{format_duration(static.mean_model_age_s)} and it gives up "
                       f"{static.accuracy_loss:.2%} accuracy (budget {budget:.2%}).")
    if decision == "static":
        reasons.append(f"Static training stays within the budget, and it is the easiest to build, test "
                       f"and validate; dynamic retraining would only save "
                       f"{max(0.0, static.accuracy_loss - cont.accuracy_loss):.2%} by updating on "
                       f"every data batch.")
    else:
        what = ("continuous updates on every data batch (every "
                f"{format_duration(B)})" if dyn.mode == "continuous" else
                f"periodic retraining every {format_duration(dyn.retrain_every_s)}")
        reasons.append(f"Dynamic training with {what} keeps the mean model age at "
                       f"{format_duration(dyn.mean_model_age_s)} and the loss at "
                       f"{dyn.accuracy_loss:.2%}.")
        if not met:
            reasons.append(f"No feasible design meets the {budget:.2%} budget: labels arrive "
                           f"{format_duration(sc.data.label_delay)} late and a training job takes "
                           f"{format_duration(train_job_s(sc, dyn.mode))}; this is the best available.")
        elif dyn.mode == "periodic":
            reasons.append(f"Retraining less often than every {format_duration(dyn.retrain_every_s)} "
                           f"would exceed the budget; more often would cost more training compute "
                           f"for little gain.")
    if not static.feasible:
        reasons.append(static.why_not)
    if not math.isinf(hl) and sc.model.training_window > hl:
        reasons.append(f"Warning: the {format_duration(sc.model.training_window)} training window spans "
                       f"{sc.model.training_window / hl:.1f} half-lives, so even a fresh model averages "
                       f"old and new concepts (fresh accuracy {fresh_accuracy(sc):.1%} of a possible "
                       f"{1 - sc.data.label_noise:.1%}); shorten model.training_window.")
    horizon_half_lives = sc.horizon / hl if not math.isinf(hl) else 0.0
    if horizon_half_lives > theory.DRIFT_FIT_HALF_LIVES:
        reasons.append(f"Note: the horizon spans {horizon_half_lives:.0f} half-lives; the drift model "
                       f"is calibrated for up to {theory.DRIFT_FIT_HALF_LIVES:.0f}.")
    options = {"static": asdict(static), "continuous": asdict(cont)}
    return TrainingAdvice(decision, chosen.mode, chosen.retrain_every_s, scores, axes, reasons, met,
                          options)


# ------------------------------------------------------------------- serving

@dataclass(frozen=True)
class ServingOption:
    kind: str
    keys: int
    hit: float
    replicas: int | None
    p99_s: float
    cost_usd_per_month: float
    table_bytes: float
    storage_usd_per_month: float
    batch_usd_per_month: float
    replicas_usd_per_month: float
    feasible: bool
    why_not: str = ""


@dataclass(frozen=True)
class ServingAdvice:
    decision: str
    cache_top_k: int | None
    replicas: int
    scores: dict
    axes: dict
    reasons: list
    slo_met: bool
    options: dict = field(default_factory=dict)


def _serving_option(sc: Scenario, kind: str, keys: int, training: str, every: float | None,
                    replicas: int | None) -> ServingOption:
    hit = hit_ratio(sc, keys) if keys else 0.0
    c = replicas_for_slo(sc, hit) if replicas is None else replicas
    if kind == "static":
        c = 0
    d = Design(training, every, kind, keys if kind == "hybrid" else None, c or 0)
    vcpu_s = sc.costs.vcpu_hour / 3600.0
    to_month = MONTH_S / sc.horizon
    table_b = keys * sc.model.prediction_bytes
    storage = table_b / 1e9 * sc.costs.table_storage_per_gb_month
    batch = (table_refreshes_per_horizon(sc, d) * keys * sc.model.inference_time.mean_s * vcpu_s
             * to_month) if keys else 0.0
    rep_usd = (c or 0) * MONTH_S * vcpu_s
    feasible, why = True, ""
    if c is None:
        feasible, why = False, "the model's own service time exceeds the latency SLO"
        p99 = math.inf
    else:
        p99 = latency_quantile_s(sc, 0.99, hit, c)
        if p99 > sc.slo.latency_p99 * (1 + 1e-9):
            feasible, why = False, (f"its p99 latency is {p99 * 1e3:.0f} ms, above the "
                                    f"{sc.slo.latency_p99 * 1e3:.0f} ms SLO")
    if keys and training != "static" and feasible:
        # table rows are older than the model by one batch-prediction job: a table too big
        # to refresh quickly costs accuracy, and must not break the accuracy budget
        bp = batch_predict_s(sc, keys)
        budget = sc.slo.max_accuracy_loss
        base = _training_option(sc, training, every).accuracy_loss
        with_table = _training_option(sc, training, every, keys).accuracy_loss
        if with_table > budget and base <= budget:
            feasible, why = False, (f"filling its table takes {format_duration(bp)}, so rows are old "
                                    f"enough to lose {with_table:.2%} accuracy (budget {budget:.2%})")
    return ServingOption(kind, keys, hit, c, p99, storage + batch + rep_usd, table_b, storage, batch,
                         rep_usd, feasible, why)


def _hybrid_grid(sc: Scenario) -> list[int]:
    n = sc.traffic.cardinality
    top = float(n - 1) if n is not None else 1e12
    if top < 1:
        return []
    ks = np.unique(np.round(np.geomspace(10, max(top, 10), 30)).astype(np.int64))
    return [int(k) for k in ks if 1 <= k <= top]


def _serving_axes(opt: ServingOption, cheapest: float, best_p99: float) -> dict:
    cost = 10.0 * cheapest / opt.cost_usd_per_month if opt.cost_usd_per_month > 0 else 10.0
    lat = 10.0 * best_p99 / opt.p99_s if math.isfinite(opt.p99_s) and opt.p99_s > 0 else 0.0
    variability = {"static": 10.0, "hybrid": 7.0, "dynamic": 4.0}[opt.kind]
    maintenance = {"static": 10.0, "hybrid": 5.0, "dynamic": 7.0}[opt.kind]
    space_vs_time = {"static": "space", "hybrid": "both", "dynamic": "time"}[opt.kind]
    return {"cost": round(cost, 2), "latency_level": round(lat, 2),
            "latency_variability": variability, "maintenance": maintenance,
            "space_vs_time": space_vs_time}


def advise_serving(sc: Scenario, training: str, every: float | None) -> ServingAdvice:
    """Cheapest of static / dynamic / hybrid (best cache_top_k) whose p99 meets the SLO;
    monthly cost = table storage + batch prediction for every refresh + replicas."""
    n, s = sc.traffic.cardinality, sc.traffic.zipf_s
    pinned_c = sc.serving.replicas
    dyn = _serving_option(sc, "dynamic", 0, training, every, pinned_c)
    opts = {"dynamic": dyn}
    if n is not None:
        opts["static"] = _serving_option(sc, "static", int(n), training, every, None)
    hybrids = [_serving_option(sc, "hybrid", k, training, every, pinned_c) for k in _hybrid_grid(sc)
               if hit_ratio(sc, k) > 1e-3]
    if hybrids:
        feas = [h for h in hybrids if h.feasible] or hybrids
        opts["hybrid"] = min(feas, key=lambda h: (h.cost_usd_per_month, h.p99_s))
    feasible = [o for o in opts.values() if o.feasible]
    pool = feasible or list(opts.values())
    cheapest = min(o.cost_usd_per_month for o in pool)
    best_p99 = min(o.p99_s for o in opts.values())
    axes = {k: _serving_axes(o, cheapest, best_p99) for k, o in opts.items()}
    scores = {}
    for k, o in opts.items():
        a = axes[k]
        # cost decides; maintenance breaks near-ties (a hybrid must save > ~2% to be worth it)
        score = a["cost"] - (10.0 - a["maintenance"]) * 0.04
        scores[k] = round(score if o.feasible else 0.3 * score, 2)
    scores.setdefault("static", 0.0)
    scores.setdefault("hybrid", 0.0)
    decision = max(opts, key=lambda k: scores[k])
    ch = opts[decision]
    reasons = []
    rate = sc.traffic.rate
    if n is None:
        reasons.append("Cardinality is unbounded, so no table can hold every input: static serving "
                       "is impossible.")
    else:
        st = opts["static"]
        reasons.append(f"Precomputing all {format_count(n)} inputs takes {format_bytes(st.table_bytes)} "
                       f"(${st.storage_usd_per_month:,.2f}/month storage) and "
                       f"${st.batch_usd_per_month:,.2f}/month of batch prediction.")
    reasons.append(f"Serving every request online at {rate:,.0f}/s (peak "
                   f"{sc.traffic.peak_rate_per_s:,.0f}/s) needs {dyn.replicas} replicas for the "
                   f"{sc.slo.latency_p99 * 1e3:.0f} ms p99 SLO: ${dyn.cost_usd_per_month:,.2f}/month."
                   if dyn.replicas else "Online serving cannot meet the latency SLO: " + dyn.why_not + ".")
    if "hybrid" in opts:
        h = opts["hybrid"]
        reasons.append(f"The top {format_count(h.keys)} inputs receive {h.hit:.0%} of requests "
                       f"(Zipf s = {s:.2f}); precomputing them takes {format_bytes(h.table_bytes)}, "
                       f"${h.storage_usd_per_month + h.batch_usd_per_month:,.2f}/month, and leaves "
                       f"{h.replicas} replicas: ${h.cost_usd_per_month:,.2f}/month in all.")
    elif n is None and s <= 1:
        reasons.append(f"Popularity is flat (Zipf s = {s:.2f} <= 1 over unbounded inputs): any finite "
                       f"head gets a vanishing share of requests, so a cache does not pay.")
    label = {"static": "Static serving (a precomputed table)", "dynamic": "Dynamic serving",
             "hybrid": "Hybrid serving"}[decision]
    reasons.append(f"{label} is the cheapest design that meets the latency SLO: "
                   f"${ch.cost_usd_per_month:,.2f}/month at p99 {ch.p99_s * 1e3:.0f} ms."
                   if ch.feasible else
                   f"No design meets the {sc.slo.latency_p99 * 1e3:.0f} ms p99 SLO; {label.lower()} "
                   f"comes closest ({ch.p99_s * 1e3:.0f} ms).")
    if ch.why_not and ch.feasible:
        reasons.append("Warning: " + ch.why_not + ".")
    options = {k: asdict(o) for k, o in opts.items()}
    return ServingAdvice(decision, ch.keys if decision == "hybrid" else None, int(ch.replicas or 0),
                         scores, axes, reasons, ch.feasible, options)


# ------------------------------------------------------------------- advise

@dataclass(frozen=True)
class Advice:
    scenario: str
    training: TrainingAdvice
    serving: ServingAdvice
    design: Design
    predicted: Prediction

    def to_json(self) -> dict:
        t, s = self.training, self.serving
        return {
            "scenario": self.scenario,
            "training": {"decision": t.decision, "mode": t.mode, "retrain_every_s": t.retrain_every_s,
                         "scores": t.scores, "axes": t.axes, "reasons": list(t.reasons),
                         "budget_met": t.budget_met},
            "serving": {"decision": s.decision, "cache_top_k": s.cache_top_k, "replicas": s.replicas,
                        "scores": s.scores, "axes": s.axes, "reasons": list(s.reasons),
                        "slo_met": s.slo_met},
            "architecture": self.design.to_json(),
            "predicted": self.predicted.to_json(),
        }


def design_for(sc: Scenario, training: TrainingAdvice | None = None,
               serving: ServingAdvice | None = None) -> Design:
    """The design to run: the scenario's `architecture:` block where given, else the advice."""
    arch = sc.architecture
    training = training or advise_training(sc)
    mode = arch.training or training.mode
    every = None
    if mode == "periodic":
        every = arch.retrain_every or training.retrain_every_s or sc.data.batch_interval
    if serving is None:
        serving = advise_serving(sc, mode, every)
    kind = arch.serving or serving.decision
    k = None
    if kind == "hybrid":
        k = arch.cache_top_k or serving.cache_top_k or (serving.options.get("hybrid") or {}).get("keys")
        if not k:
            k = min(100_000, (sc.traffic.cardinality or 10**12) - 1)
    keys = int(sc.traffic.cardinality) if kind == "static" else (k or 0)
    if kind == "static":
        replicas = 0
    elif sc.serving.replicas is not None:
        replicas = sc.serving.replicas
    elif kind == serving.decision and (kind != "hybrid" or k == serving.cache_top_k):
        replicas = serving.replicas
    else:
        replicas = replicas_for_slo(sc, hit_ratio(sc, keys) if keys else 0.0) or 1
    return Design(mode, every, kind, k, int(replicas))


def advise(sc: Scenario) -> Advice:
    """Advice for a scenario: decisions, scores, reasons, and the predicted figures of the
    design that will run (pinned `architecture:` fields take precedence)."""
    arch = sc.architecture
    # training first (from drift, delay and budget); serving then picks the table size whose
    # refresh lag still keeps that training schedule within the accuracy budget
    tr = advise_training(sc)
    mode = arch.training or tr.mode
    every = (arch.retrain_every or tr.retrain_every_s or sc.data.batch_interval) \
        if mode == "periodic" else None
    sv = advise_serving(sc, mode, every)
    d = design_for(sc, tr, sv)
    return Advice(sc.name, tr, sv, d, predict(sc, d))
