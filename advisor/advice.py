"""Advice for a scenario: both decisions, the design that will run, and its predicted figures."""
from __future__ import annotations

from dataclasses import dataclass

from scenarios.design import Design
from scenarios.schema import Scenario

from .costs import Prediction, predict
from .latency import replicas_for_slo
from .schedule import hit_ratio
from .serving import ServingAdvice, advise_serving
from .training import TrainingAdvice, advise_training


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
