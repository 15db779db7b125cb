"""Advice for a scenario: both decisions, the design that will run, and its predicted figures."""
from __future__ import annotations

from dataclasses import dataclass

from scenarios.design import Design
from scenarios.schema import Scenario

import dataclasses
import math

from scenarios.errors import ScenarioError
from scenarios.loader import with_overrides

from .costs import Prediction, predict
from .latency import provisioned_replicas
from .provisioning import day_schedule, policy_for
from .schedule import default_retrain_every_s, hit_ratio
from .serving import ServingAdvice, advise_serving
from .serving import SCORE_LEGEND as SERVING_LEGEND
from .training import SCORE_LEGEND as TRAINING_LEGEND
from .training import TrainingAdvice, advise_training, remedies_sentence


@dataclass(frozen=True)
class Advice:
    scenario: str
    training: TrainingAdvice
    serving: ServingAdvice
    design: Design
    predicted: Prediction
    provisioning: dict | None = None     # fixed peak vs autoscaled pool (advice.provisioning)

    def to_json(self) -> dict:
        t, s = self.training, self.serving
        return {
            "scenario": self.scenario,
            "training": {"decision": t.decision, "mode": t.mode, "retrain_every_s": t.retrain_every_s,
                         "scores": t.scores, "score_legend": TRAINING_LEGEND, "axes": t.axes,
                         "reasons": list(t.reasons), "budget_met": t.budget_met,
                         "feasible": t.feasible, "binding": t.binding, "remedies": list(t.remedies),
                         **({"dynamic_architecture": t.options["dynamic_architecture"]}
                            if "dynamic_architecture" in t.options else {})},
            "serving": {"decision": s.decision, "cache_top_k": s.cache_top_k, "replicas": s.replicas,
                        "scores": s.scores, "score_legend": SERVING_LEGEND, "axes": s.axes,
                        "reasons": list(s.reasons), "slo_met": s.slo_met,
                        "feasible": s.feasible, "binding": s.binding, "remedies": list(s.remedies),
                        "provisioning": self.provisioning},
            "architecture": self.design.to_json(),
            "predicted": self.predicted.to_json(),
        }


def design_for(sc: Scenario, training: TrainingAdvice | None = None,
               serving: ServingAdvice | None = None) -> Design:
    """The design to run: the scenario's `architecture:` block where given, else the advice."""
    arch = sc.architecture
    training = training or _advise_training(sc)
    mode = arch.training or training.mode
    every = None
    if mode == "periodic":
        every = arch.retrain_every or training.retrain_every_s or default_retrain_every_s(sc)
    trig = {}
    if mode == "triggered":
        from .triggered import trigger_fields
        trig = trigger_fields(sc)
    if serving is None:
        serving = advise_serving(sc, *_serving_schedule(sc, mode, every))
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
        replicas, _ = provisioned_replicas(sc, hit_ratio(sc, keys) if keys else 0.0)
    policy = None
    if kind != "static" and sc.serving.autoscale is not None:
        policy = policy_for(sc, hit_ratio(sc, keys) if keys else 0.0)
        if policy is not None:
            replicas = int(day_schedule(sc, hit_ratio(sc, keys) if keys else 0.0, policy)[0]["allocated"].max())
    return Design(mode, every, kind, k, int(replicas), policy, **trig)


def provisioning(sc: Scenario, d: Design, p: Prediction) -> dict:
    """Fixed pool sized for the peak against an autoscaled pool, side by side (per month).
    Without serving.autoscale the autoscaled column is what the default autoscaler
    (scenarios.serving_ops.Autoscale) would cost; `configured` says which one runs."""
    from scenarios.accounting import MONTH_S
    from scenarios.serving_ops import Autoscale
    vcpu_h = sc.costs.vcpu_hour
    to_month = MONTH_S / sc.horizon
    keys = d.table_keys(sc.traffic.cardinality)
    hit = hit_ratio(sc, keys) if keys else 0.0
    out = {"configured": sc.serving.autoscale is not None, "fixed_peak": None, "autoscaled": None,
           "saving_usd_per_month": None}
    if d.serving == "static" or hit >= 1.0 - 1e-12:
        return out
    fixed_c = sc.serving.replicas if sc.serving.replicas is not None else provisioned_replicas(sc, hit)[0]
    fixed_h = fixed_c * MONTH_S / 3600.0
    out["fixed_peak"] = {"replicas": int(fixed_c), "replica_hours_per_month": fixed_h,
                         "usd_per_month": fixed_h * vcpu_h}
    if sc.serving.replicas is not None:
        return out            # a pinned pool: nothing to autoscale
    if d.autoscale is not None:
        a = p.autoscale
        policy = d.autoscale
    else:
        alt = sc.model_copy(update={"serving": sc.serving.model_copy(update={"autoscale": Autoscale()})})
        policy = policy_for(alt, hit)
        from .provisioning import autoscaled_figures
        a = autoscaled_figures(alt, hit, policy, with_p99=False)
    auto_h = a["replica_hours"] * to_month
    out["autoscaled"] = {"replicas_min": a["replicas_min"], "replicas_max": a["replicas_max"],
                         "mean_replicas": a["mean_replicas"], "replica_hours_per_month": auto_h,
                         "usd_per_month": auto_h * vcpu_h,
                         "latency_p99_ms": a["latency_p99_s"] * 1e3 if a["latency_p99_s"] is not None else None,
                         "policy": policy.to_json()}
    out["saving_usd_per_month"] = (fixed_h - auto_h) * vcpu_h
    return out


def _advise_training(sc: Scenario, remedies: bool = True) -> TrainingAdvice:
    """advise_training, revised for sudden shifts and monitoring (advisor.triggered) when the
    scenario has them."""
    tr = advise_training(sc, remedies=remedies)
    if sc.data.shifts is not None or sc.monitoring is not None:
        from .triggered import revise_training
        tr = revise_training(sc, tr)
    return tr


def _serving_schedule(sc: Scenario, mode: str, every: float | None) -> tuple[str, float | None]:
    """The schedule serving is sized for: a triggered design as the periodic one with as many
    retrains (advisor.triggered.as_periodic)."""
    if mode != "triggered":
        return mode, every
    from .triggered import as_periodic, trigger_fields
    d = as_periodic(sc, Design("triggered", None, "dynamic", None, 1, **trigger_fields(sc)))
    return "periodic", d.retrain_every_s


def _serving_binding(sc: Scenario, design: Design) -> str:
    """Which input makes the latency SLO impossible for the design that runs."""
    slo = sc.slo.latency_p99
    if design.serving != "static" and float(sc.model.inference_time.quantile_s(0.99)) > slo:
        return "model.inference_time"
    if design.serving != "dynamic" and float(sc.serving.lookup_time.quantile_s(0.99)) > slo:
        return "serving.lookup_time"
    if sc.serving.replicas is not None:
        return "serving.replicas"
    return "model.inference_time"


def _serving_remedies(sc: Scenario, binding: str, p: Prediction) -> list[dict]:
    """Concrete `--set` changes, each checked here to give a design that meets the SLO."""
    slo = sc.slo.latency_p99

    def meets(change: str) -> Prediction | None:
        try:
            alt = with_overrides(sc, [change])
        except ScenarioError:
            return None
        p = predict(alt, design_for(alt))
        return p if p.latency_p99_ms <= alt.slo.latency_p99 * 1e3 * (1 + 1e-9) else None

    out = []
    if binding == "serving.replicas":
        for c in (2 * sc.serving.replicas, 4 * sc.serving.replicas, 16 * sc.serving.replicas):
            ch = f"serving.replicas={min(c, 100000)}"
            if meets(ch):
                out.append({"set": ch, "effect": f"{c} replicas keep the queue short enough"})
                break
    n = sc.traffic.cardinality
    if binding == "model.inference_time" and (n is not None or sc.traffic.zipf_s > 1):
        from . import theory
        # a table must answer nearly every request for lookups to set the p99
        for target in (0.995, 0.999, 0.9999):
            k = theory.top_k_for_coverage(target, n, sc.traffic.zipf_s)
            if k is None or (n is not None and k >= n):
                continue
            ch = f"architecture={{serving: hybrid, cache_top_k: {int(k)}}}"
            if meets(ch):
                out.append({"set": ch, "effect": f"precompute the top {int(k):,} inputs ({target:.2%} of "
                                                 f"requests), so lookups set the p99"})
                break
    if binding == "model.inference_time":
        inf = sc.model.inference_time
        q99 = float(inf.quantile_s(0.99))
        f = 0.5 * slo / q99
        if inf.distribution == "lognormal":
            val = f"{{distribution: lognormal, median: {inf.median * f * 1e3:.4g}ms, p99: {inf.p99 * f * 1e3:.4g}ms}}"
        elif inf.distribution == "exponential":
            val = f"{{distribution: exponential, mean: {inf.mean * f * 1e3:.4g}ms}}"
        else:
            val = f"{{distribution: deterministic, value: {inf.value * f * 1e3:.4g}ms}}"
        ch = f"model.inference_time={val}"
        if meets(ch):
            out.append({"set": ch, "effect": f"a model {1 / f:.3g}x faster (p99 {q99 * f * 1e3:.3g} ms)"})
    # accepting the latency the design achieves (p: its prediction as given)
    if math.isfinite(p.latency_p99_ms):
        ch = f"slo.latency_p99={math.ceil(p.latency_p99_ms * 1.02)}ms"
        if meets(ch):
            out.append({"set": ch, "effect": "accept the p99 the design achieves as given"})
    return out


def advise(sc: Scenario, remedies: bool = True) -> Advice:
    """Advice for a scenario: decisions, scores, reasons, and the predicted figures of the
    design that will run (pinned `architecture:` fields take precedence). When a goal
    cannot be met as given, the decision says so (feasible=False), names the binding input
    and lists remedies, each checked to make the goal met."""
    arch = sc.architecture
    # training first (from drift, delay and budget); serving then picks the table size whose
    # refresh lag still keeps that training schedule within the accuracy budget
    tr = _advise_training(sc, remedies=remedies)
    mode = arch.training or tr.mode
    every = (arch.retrain_every or tr.retrain_every_s or default_retrain_every_s(sc)) \
        if mode == "periodic" else None
    sv = advise_serving(sc, *_serving_schedule(sc, mode, every))
    d = design_for(sc, tr, sv)
    pred = predict(sc, d)
    slo_met = pred.latency_p99_ms <= sc.slo.latency_p99 * 1e3 * (1 + 1e-9)
    if slo_met and not sv.feasible:
        # latency is met; the table's refresh lag breaks the accuracy budget (said in the reasons)
        sv = dataclasses.replace(sv, slo_met=True, binding="serving.batch_workers",
                                 remedies=_table_remedies(sc, pred) if remedies else [])
    elif not slo_met:
        binding = _serving_binding(sc, d)
        fixes = _serving_remedies(sc, binding, pred) if remedies else []
        reasons = list(sv.reasons)
        floor = float(sc.model.inference_time.quantile_s(0.99)) * 1e3
        if binding == "model.inference_time":
            reasons.append(f"Inference alone has p99 {floor:,.0f} ms, above the "
                           f"{sc.slo.latency_p99 * 1e3:,.0f} ms SLO (model.inference_time): no number "
                           f"of replicas meets it.")
        if fixes:
            reasons.append(remedies_sentence("meets the SLO", fixes))
        sv = dataclasses.replace(sv, slo_met=False, feasible=False, binding=binding, remedies=fixes,
                                 reasons=reasons)
    budget = sc.slo.max_accuracy_loss
    if pred.accuracy_loss_at_confidence > budget * (1 + 1e-9) and tr.budget_met:
        # the schedule alone meets the budget, but the design that runs also serves from a
        # table whose rows are older by a batch-prediction job
        reasons = list(tr.reasons) + [
            f"The design that runs answers {pred.cache_hit_ratio:.0%} of requests from a table whose rows "
            f"are one {pred.batch_predict_s / 3600:.3g} h batch-prediction job older than the model: the loss "
            f"is {pred.accuracy_loss:.2%} ({pred.accuracy_loss_at_confidence:.2%} at "
            f"{pred.accuracy_confidence:.0%} confidence), above the {budget:.2%} budget (serving.batch_workers)."]
        fixes = _table_remedies(sc, pred) if remedies else []
        if fixes:
            reasons.append(remedies_sentence("makes the budget met", fixes))
        tr = dataclasses.replace(tr, budget_met=False, feasible=False, binding="serving.batch_workers",
                                 remedies=fixes, reasons=reasons)
    prov = provisioning(sc, d, pred)
    if sc.serving.batching is not None and d.replicas and sc.serving.replicas is None:
        from .batching import best_batching
        keys = d.table_keys(sc.traffic.cardinality)
        choice = best_batching(sc, hit_ratio(sc, keys) if keys else 0.0)
        prov["batching_choice"] = choice
        if choice is not None and choice["replicas"] < d.replicas:
            sv = dataclasses.replace(sv, reasons=list(sv.reasons) + [
                f"Batches of up to {choice['max_batch']} with a {choice['timeout_s'] * 1e3:g} ms timeout would need "
                f"{choice['replicas']} replicas instead of {d.replicas} (p99 {choice['peak_latency_p99_ms']:,.0f} ms at "
                f"the peak): --set 'serving.batching={{max_batch: {choice['max_batch']}, "
                f"timeout: {choice['timeout_s'] * 1e3:g}ms}}'."])
    if pred.rollout is not None:
        r = pred.rollout
        if r["replicas_short"]:
            dip = (f"p99 {r['dip_p99_ms']:,.0f} ms at the peak" if r["dip_p99_ms"] is not None
                   else "a pool that cannot keep up at the peak")
            text = (f"Each of the {r['deployments_per_month']:,.0f} deployments a month rolls {r['replicas_short']} "
                    f"replica{'s' if r['replicas_short'] != 1 else ''} at a time: the pool is short for "
                    f"{r['seconds_short_per_deployment'] / 60:.3g} min ({r['share_of_time_short']:.1%} of the time), "
                    f"with {dip}: the SLO " + ("holds during a rollout." if r["dip_slo_met"] else
                                              "does not hold during a rollout (a blue_green or canary rollout "
                                              "avoids the dip for the cost of a surge)."))
        else:
            text = (f"Each of the {r['deployments_per_month']:,.0f} deployments a month warms new replicas beside "
                    f"the pool ({r['strategy']}): no dip, {r['extra_replica_hours_per_month']:,.1f} extra "
                    f"replica-hours a month (${r['extra_usd_per_month']:,.2f}).")
        sv = dataclasses.replace(sv, reasons=list(sv.reasons) + [text])
    if pred.failures is not None:
        f = pred.failures
        one = f["one_down_p99_ms"]
        sv = dataclasses.replace(sv, reasons=list(sv.reasons) + [
            f"Each replica fails every {sc.serving.failures.mtbf / 3600:.3g} h on average and is down "
            f"{sc.serving.failures.mttr / 60:.3g} min: available {f['availability']:.2%} of the time, "
            f"{f['expected_replicas_up']:.2f} of {d.replicas} replicas up on average (the p99 above counts it). "
            + (f"With one replica down at the peak the p99 is {one:,.0f} ms: the SLO "
               + ("still holds." if f["one_down_slo_met"] else "does not hold (add a replica).")
               if one is not None else "With one replica down at the peak the pool cannot keep up (add a replica).")])
    if prov["configured"] and prov["autoscaled"] is not None:
        f, a = prov["fixed_peak"], prov["autoscaled"]
        saving = prov["saving_usd_per_month"]
        sv = dataclasses.replace(sv, reasons=list(sv.reasons) + [
            f"Autoscaling between {a['replicas_min']} and {a['replicas_max']} replicas (mean "
            f"{a['mean_replicas']:.1f}) costs ${a['usd_per_month']:,.2f}/month against ${f['usd_per_month']:,.2f}/month "
            f"for a fixed pool of {f['replicas']} sized for the peak: "
            + (f"{saving / f['usd_per_month']:.0%} less." if saving >= 0 else
               f"{-saving / f['usd_per_month']:.0%} more (the cold start and scale-down delay need headroom).")])
    return Advice(sc.name, tr, sv, d, pred, prov)


def _table_remedies(sc: Scenario, p: Prediction) -> list[dict]:
    """More batch-prediction workers refresh the table sooner; or accept the loss."""
    out = []
    for k in (4, 16, 64, 256, 1024):
        workers = sc.serving.batch_workers * k
        if workers > 100000:
            break
        ch = f"serving.batch_workers={workers}"
        try:
            alt = advise(with_overrides(sc, [ch]), remedies=False)
        except ScenarioError:
            continue
        if alt.training.budget_met:
            out.append({"set": ch, "effect": f"{workers} batch-prediction vCPUs refresh the table {k}x sooner"})
            break
    need = math.ceil(p.accuracy_loss_at_confidence * 1000 + 1e-9) / 1000
    if need < 0.5:
        ch = f"slo.max_accuracy_loss={need:.3f}"
        try:
            if advise(with_overrides(sc, [ch]), remedies=False).training.budget_met:
                out.append({"set": ch, "effect": f"accept the {p.accuracy_loss_at_confidence:.2%} loss "
                                                 f"({p.accuracy_confidence:.0%} confidence) of the design as given"})
        except ScenarioError:
            pass
    return out
