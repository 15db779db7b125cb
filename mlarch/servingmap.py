"""The course's central serving question as a map: over (cardinality, peakedness), which
serving design is the cheapest that meets the p99 SLO — the advisor's decision at each point,
everything else in the scenario held as written."""
from __future__ import annotations

import math

import numpy as np

from scenarios import Scenario
from scenarios.loader import with_overrides

# table sizes tried per cell: a decade apart over 1e1..1e12 (the advice itself tries 30, a
# third of a decade apart); the map shows which design wins, not the best size to a third
HYBRID_POINTS = 12


def grid(sc: Scenario, n_cardinality: int = 7, n_zipf: int = 5) -> tuple[list, list[float]]:
    """Cardinalities (log-spaced, 1e3..1e12, widened to include the scenario's; None =
    unbounded, added when the scenario's is) and Zipf exponents (0.5..1.5, widened to
    include the scenario's)."""
    lo, hi = 3.0, 12.0
    if sc.traffic.cardinality is not None:
        c = math.log10(sc.traffic.cardinality)
        lo, hi = min(lo, math.floor(c)), max(hi, math.ceil(c))
    # the scenario's own values are grid points, so the cell under its marker is its own advice
    cards: list = sorted({float(round(10 ** x)) for x in np.linspace(lo, hi, n_cardinality)}
                         | ({float(sc.traffic.cardinality)} if sc.traffic.cardinality is not None else set()))
    if sc.traffic.cardinality is None:
        cards.append(None)   # a column for unbounded inputs, where the scenario sits
    s = sc.traffic.zipf_s
    zipfs = sorted({round(float(z), 6) for z in np.linspace(min(0.5, s), max(1.5, s), n_zipf)} | {round(s, 6)})
    return cards, zipfs


def _cell(sc: Scenario, training: str, every: float | None, card: float, s: float) -> dict:
    from advisor.serving import advise_serving
    n = "unbounded" if card is None else f"{card:.0f}"
    point = with_overrides(sc, [f"traffic.cardinality={n}", f"traffic.peakedness={{zipf_s: {s:.6g}}}"])
    adv = advise_serving(point, training, every, hybrid_points=HYBRID_POINTS)
    opt = adv.options[adv.decision]
    return {"cardinality": card, "zipf_s": s, "decision": adv.decision if adv.feasible else "none",
            "cache_top_k": adv.cache_top_k, "cost_usd_per_month": opt["cost_usd_per_month"],
            "hit_ratio": opt["hit"]}


def serving_map(sc: Scenario, n_cardinality: int = 7, n_zipf: int = 5, jobs: int = 0, progress=None) -> dict:
    """The advisor's serving decision at every grid point ('none' where no design meets the
    SLO), with the training design fixed at the scenario's own advice. progress(k, n)."""
    from joblib import Parallel, delayed

    from advisor import advise
    from advisor.advice import _serving_schedule   # a triggered design is sized as its periodic twin
    base = advise(sc, remedies=False)
    training, every = _serving_schedule(sc, base.design.training, base.design.retrain_every_s)
    cards, zipfs = grid(sc, n_cardinality, n_zipf)
    points = [(c, z) for z in zipfs for c in cards]
    cells = []
    # loky workers; the advisor is pure Python, so processes (not threads) use both cores
    par = Parallel(n_jobs=jobs or -1, return_as="generator")
    for k, cell in enumerate(par(delayed(_cell)(sc, training, every, c, z) for c, z in points)):
        cells.append(cell)
        if progress:
            progress(k + 1, len(points))
    return {"scenario": sc.name, "cardinality": sc.traffic.cardinality, "zipf_s": sc.traffic.zipf_s,
            "decision": base.serving.decision, "training": training, "slo_p99_ms": sc.slo.latency_p99 * 1e3,
            "cardinalities": cards, "zipf_exponents": zipfs, "cells": cells}
