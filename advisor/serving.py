"""The serving decision: static (a precomputed table), dynamic (model servers) or hybrid
(the popular head precomputed), the cheapest that meets the latency SLO."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from scenarios.accounting import MONTH_S
from scenarios.design import Design
from scenarios.schema import Scenario
from scenarios.units import format_bytes, format_count, format_duration

from .costs import table_refreshes_per_horizon
from .latency import latency_quantile_s, replicas_for_slo
from .schedule import batch_predict_s, hit_ratio
from .training import _training_option


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
