"""The training decision: static, or dynamic (periodic retraining or continuous updates),
from drift, label delay, training time and the accuracy budget."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from scenarios.design import Design
from scenarios.schema import Scenario
from scenarios.units import format_duration

from . import theory
from .schedule import hit_ratio, period_s, train_job_s
from .staleness import fresh_accuracy, mean_age_and_accuracy


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
