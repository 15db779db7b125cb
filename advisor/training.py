"""The training decision: static, or dynamic (periodic retraining or continuous updates),
from drift, label delay, training time and the accuracy budget."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from scenarios.design import Design
from scenarios.errors import ScenarioError
from scenarios.loader import with_overrides
from scenarios.schema import Scenario
from scenarios.units import format_duration

from . import theory
from .schedule import default_retrain_every_s, hit_ratio, period_s, train_job_s
from .accuracy import loss_at_confidence
from .staleness import fresh_accuracy, mean_age_and_accuracy


@dataclass(frozen=True)
class TrainingOption:
    mode: str
    retrain_every_s: float | None
    accuracy_loss: float
    mean_model_age_s: float
    feasible: bool
    why_not: str = ""
    # the loss's slo.accuracy_confidence quantile across worlds (advisor.accuracy): what the
    # budget is compared with
    decision_loss: float = 0.0


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
    feasible: bool = True            # the decision meets the accuracy budget as given
    binding: str | None = None       # the input that makes the budget impossible
    remedies: list = field(default_factory=list)   # [{"set": "PATH=VALUE", "effect": str}]


@lru_cache(maxsize=4096)
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
    loss = fresh_accuracy(sc) - acc    # never clamped: a negative loss is reported (advisor/accuracy.py)
    job = train_job_s(sc, mode)
    per = period_s(sc, d)
    feasible, why = True, ""
    if mode != "static" and job > per:
        feasible, why = False, (f"a training job takes {format_duration(job)}, longer than the "
                                f"{format_duration(per)} between jobs")
    return TrainingOption(mode, every, loss, age, feasible, why, loss_at_confidence(sc, loss))


def _loss_words(sc: Scenario, opt: TrainingOption) -> str:
    """'1.83%', or '1.63% (2.09% at 90% confidence)' when worlds spread the loss."""
    if opt.decision_loss <= opt.accuracy_loss + 5e-5:
        return f"{opt.accuracy_loss:.2%}"
    return f"{opt.accuracy_loss:.2%} ({opt.decision_loss:.2%} at {sc.slo.accuracy_confidence:.0%} confidence)"


def _training_axes(opt: TrainingOption, budget: float) -> dict:
    """Scores 0–10 on the course's axes (higher is better)."""
    stale = 10.0 if opt.decision_loss <= budget else 10.0 * budget / opt.decision_loss
    build = {"static": 10.0, "periodic": 6.0, "continuous": 4.0}[opt.mode]
    validation = {"static": 10.0, "periodic": 5.0, "continuous": 4.0}[opt.mode]
    return {"staleness": round(stale, 2), "staleness_raw": stale, "build_test_effort": build,
            "engineering_validation_effort": validation}


SCORE_LEGEND = ("scores 0-10, higher is better: within the budget 7-10 by the effort to build, "
                "test and validate; outside it at most 5, by how close it comes")


def _training_score(axes: dict, meets: bool, feasible: bool) -> float:
    """0–10. Within the accuracy budget: 7 to 10 by effort (build/test and validation), so
    static wins whenever it is good enough. Outside it: at most 5, by accuracy alone
    (5 × budget / loss). A schedule that cannot run (a job longer than its period) scores 0."""
    if not feasible:
        return 0.0
    if not meets:
        return round(0.5 * axes["staleness_raw"], 2)
    effort = (axes["build_test_effort"] + axes["engineering_validation_effort"]) / 2
    return round(10.0 * (0.7 + 0.03 * effort), 2)


def _best_dynamic(sc: Scenario, cache_keys: int) -> tuple[TrainingOption | None, TrainingOption, list]:
    """(the cheapest dynamic option within budget or None, the lowest-loss runnable dynamic
    option, the options looked at). Loss grows with the retrain interval, so bisect for the
    longest interval within budget, from the shortest interval that fits one training job;
    continuous updates when retraining on every batch is needed."""
    budget = sc.slo.max_accuracy_loss
    B = sc.data.batch_interval
    cont = _training_option(sc, "continuous", None, cache_keys)
    steps = max(1, int(sc.horizon // B))
    opt = lambda m: _training_option(sc, "periodic", B * m, cache_keys)  # noqa: E731
    m_min = round(default_retrain_every_s(sc) / B)      # the shortest interval that fits one job
    first = opt(m_min) if m_min <= steps else None
    looked = [o for o in (first, cont) if o is not None]
    if first is not None and first.feasible and first.decision_loss <= budget:
        lo, hi = m_min, steps
        if opt(hi).decision_loss <= budget:
            lo = hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if opt(mid).decision_loss <= budget:
                lo = mid
            else:
                hi = mid
        dyn = opt(lo)  # fewest retrains within budget
        if dyn.retrain_every_s <= B and cont.feasible:
            dyn = cont   # retraining on every batch: update incrementally instead
        return dyn, dyn, looked
    if cont.feasible and cont.decision_loss <= budget:
        return cont, cont, looked
    runnable = [o for o in looked if o.feasible]
    best = min(runnable, key=lambda o: o.accuracy_loss) if runnable else (first or cont)
    return None, best, looked


def _binding_input(sc: Scenario, cache_keys: int) -> str:
    """Which input makes the budget impossible for dynamic training: with instant training
    jobs, the label delay (or the batch interval) alone may already cost more than the budget;
    otherwise the training job is too slow for the drift."""
    instant = with_overrides(sc, ["model.train_time={fixed: 0s, per_million_examples: 0s}"])
    if _training_option(instant, "continuous", None, cache_keys).decision_loss > sc.slo.max_accuracy_loss:
        return "data.label_delay" if sc.data.label_delay >= sc.data.batch_interval else "data.batch_interval"
    return "model.train_time"


def _halvings(x: float, floor: float, n: int = 12) -> list[float]:
    out, v = [], x
    for _ in range(n):
        v /= 2
        if v < floor:
            break
        out.append(v)
    return out


def _remedies(sc: Scenario, binding: str, best: TrainingOption, cache_keys: int) -> list[dict]:
    """Concrete `--set` changes, each checked here to make dynamic training meet the budget;
    the effect names the design that then meets it."""
    def result(change: str) -> TrainingOption | None:
        try:
            alt = with_overrides(sc, [change])
        except ScenarioError:
            return None
        return _best_dynamic(alt, cache_keys)[0]

    def fix(change: str, why: str, o: TrainingOption) -> dict:
        how = ("continuous updates on every batch" if o.mode == "continuous"
               else f"retraining every {format_duration(o.retrain_every_s)}")
        return {"set": change, "effect": f"{why}: {how} then loses {_loss_words(sc, o)}"}

    out = []
    if binding == "model.train_time":
        if sc.model.train_time.per_million_examples > 0:
            k = sc.model.trainers
            while k < 4096:
                k = min(4096, k * 2)
                o = result(f"model.trainers={k}")
                if o is not None:
                    out.append(fix(f"model.trainers={k}", f"{k} data-parallel trainers make each job shorter", o))
                    break
        for w in _halvings(sc.model.training_window, sc.data.batch_interval):
            ch = f"model.training_window={format_duration_exact(w)}"
            o = result(ch)
            if o is not None:
                out.append(fix(ch, f"a {format_duration(w)} window trains on fewer examples, so each job is shorter", o))
                break
    else:
        field = binding
        cur = sc.data.label_delay if field == "data.label_delay" else sc.data.batch_interval
        for v in _halvings(cur, 1.0):
            ch = f"{field}={format_duration_exact(v)}"
            o = result(ch)
            if o is not None:
                what = "labels arrive" if field == "data.label_delay" else "labelled data lands"
                out.append(fix(ch, f"{what} within {format_duration(v)}", o))
                break
    # accepting the loss the best runnable schedule achieves always makes the budget met
    need = math.ceil(best.decision_loss * 1000 + 1e-9) / 1000
    if need < 0.5:
        ch = f"slo.max_accuracy_loss={need:.3f}"
        o = result(ch)
        if o is not None:
            out.append(fix(ch, "accept the loss of the best schedule as given", o))
    return out


def remedies_sentence(what: str, fixes: list[dict]) -> str:
    """'Any of these changes <what>: --set A (effect); --set B (effect).'"""
    return f"Any of these changes {what}: " + "; ".join(f"--set {f['set']} ({f['effect']})" for f in fixes) + "."


def format_duration_exact(seconds: float) -> str:
    """A duration in the scenario syntax that parses back to (about) the same seconds."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= size and abs(seconds / size - round(seconds / size, 3)) < 1e-9:
            return f"{round(seconds / size, 3):g}{unit}"
    return f"{seconds:.6g}s"


def advise_training(sc: Scenario, cache_keys: int = 0, remedies: bool = True) -> TrainingAdvice:
    """Static if the frozen model stays within slo.max_accuracy_loss over the lifetime, else
    dynamic: the least frequent retraining that meets the budget (continuous when only every
    batch does). When drift demands dynamic training and nothing dynamic meets the budget as
    given, the decision is still dynamic, with feasible=False, the binding input and
    remedies (each checked). cache_keys: size of the precomputed table, whose rows are older
    than the model."""
    budget = sc.slo.max_accuracy_loss
    B = sc.data.batch_interval
    static = _training_option(sc, "static", None, cache_keys)
    ok_dyn, best_dyn, looked = _best_dynamic(sc, cache_keys)
    cont = next(o for o in looked if o.mode == "continuous")
    static_ok = static.decision_loss <= budget
    decision = "static" if static_ok else "dynamic"
    chosen = static if static_ok else (ok_dyn or best_dyn)
    feasible = static_ok or ok_dyn is not None
    binding, fixes = None, []
    if not feasible:
        binding = _binding_input(sc, cache_keys)
        fixes = _remedies(sc, binding, best_dyn, cache_keys) if remedies else []
    dyn = ok_dyn or best_dyn
    axes = {"static": _training_axes(static, budget), "dynamic": _training_axes(dyn, budget)}
    scores = {"static": _training_score(axes["static"], static_ok, True),
              "dynamic": _training_score(axes["dynamic"], ok_dyn is not None, dyn.feasible)}
    if not feasible:
        # drift demands dynamic training and a listed change makes it work: it outranks static,
        # which can never meet the budget however it is built
        scores["dynamic"] = max(scores["dynamic"], 5.0 if fixes else scores["static"] + 0.01)
    for a in axes.values():
        a.pop("staleness_raw")
    hl = sc.data.concept_half_life
    reasons = []
    if math.isinf(hl):
        reasons.append("The concept never drifts (concept_half_life: never), so a model trained once "
                       "keeps its accuracy.")
    else:
        reasons.append(f"A frozen model loses half its edge over chance every {format_duration(hl)}; "
                       f"over the {format_duration(sc.horizon)} lifetime a static model's mean age is "
                       f"{format_duration(static.mean_model_age_s)} and it gives up "
                       f"{_loss_words(sc, static)} accuracy (budget {budget:.2%}).")
    what = ("continuous updates on every data batch (every "
            f"{format_duration(B)})" if dyn.mode == "continuous" else
            f"periodic retraining every {format_duration(dyn.retrain_every_s)}")
    if decision == "static":
        reasons.append(f"Static training stays within the budget, and it is the easiest to build, test "
                       f"and validate; dynamic retraining would only save "
                       f"{max(0.0, static.accuracy_loss - cont.accuracy_loss):.2%} by updating on "
                       f"every data batch.")
    elif feasible:
        reasons.append(f"Dynamic training with {what} keeps the mean model age at "
                       f"{format_duration(dyn.mean_model_age_s)} and the loss at "
                       f"{_loss_words(sc, dyn)}.")
        if dyn.mode == "periodic":
            reasons.append(f"Retraining less often than every {format_duration(dyn.retrain_every_s)} "
                           f"would exceed the budget; more often would cost more training compute "
                           f"for little gain.")
    else:
        job = train_job_s(sc, "periodic")
        why = {"model.train_time": f"a full-window training job takes {format_duration(job)} "
                                   f"({sc.model.trainers} trainer{'s' if sc.model.trainers > 1 else ''}), "
                                   f"too long for the drift",
               "data.label_delay": f"labels arrive {format_duration(sc.data.label_delay)} late, so even an "
                                   f"instantly retrained model is already too old",
               "data.batch_interval": f"labelled data lands only every {format_duration(B)}, so even an "
                                      f"instantly retrained model is already too old"}[binding]
        reasons.append(f"The drift demands dynamic training, but no dynamic design meets the "
                       f"{budget:.2%} budget as given: {why} ({binding}). The best runnable schedule, "
                       f"{what}, loses {_loss_words(sc, dyn)}.")
        if fixes:
            reasons.append(remedies_sentence("makes dynamic training meet the budget", fixes))
    if not static.feasible:
        reasons.append(static.why_not)
    if not math.isinf(hl) and sc.model.training_window > hl:
        reasons.append(f"Warning: the {format_duration(sc.model.training_window)} training window spans "
                       f"{sc.model.training_window / hl:.1f} half-lives, so even a fresh model averages "
                       f"old and new concepts (fresh accuracy {fresh_accuracy(sc):.1%} of a possible "
                       f"{1 - sc.data.label_noise:.1%}); shorten model.training_window.")
    horizon_half_lives = sc.horizon / hl if not math.isinf(hl) else 0.0
    if horizon_half_lives > theory.DRIFT_FIT_HALF_LIVES:
        reasons.append(f"Note: the lifetime spans {horizon_half_lives:.0f} half-lives; the drift model "
                       f"is calibrated for up to {theory.DRIFT_FIT_HALF_LIVES:.0f}.")
    options = {"static": asdict(static), "continuous": asdict(cont)}
    return TrainingAdvice(decision, chosen.mode, chosen.retrain_every_s, scores, axes, reasons,
                          chosen.decision_loss <= budget, options, feasible, binding, fixes)
