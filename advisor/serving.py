"""The serving decision: static (a precomputed table), dynamic (model servers) or hybrid
(the popular head precomputed), the cheapest that meets the latency SLO."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from scenarios.accounting import MONTH_S
from scenarios.design import Design
from scenarios.schema import Scenario
from scenarios.units import format_bytes, format_count, format_duration

from .costs import table_refreshes_per_horizon
from .latency import latency_quantile_s, model_path_p99_s, provisioned_replicas
from .provisioning import day_schedule, policy_for, replica_seconds
from .schedule import batch_predict_s, hit_ratio
from .training import _training_option


SCORE_LEGEND = ("scores 0-10, higher is better: cost over the lifetime relative to the cheapest "
                "design that meets the SLO, less a little for upkeep; a design that misses the SLO "
                "scores at most 3")


@dataclass(frozen=True)
class ServingOption:
    kind: str
    keys: int
    hit: float
    replicas: int
    p99_s: float
    cost_usd_per_month: float          # recurring: replicas + table refreshes + table storage
    table_bytes: float
    storage_usd_per_month: float
    batch_usd_per_month: float         # recurring table refreshes
    replicas_usd_per_month: float
    one_off_usd: float                 # the initial table fill
    lifetime_usd: float                # one-off + recurring over the lifetime
    model_p99_s: float | None          # p99 of the requests that reach the model (None: no model path)
    feasible: bool
    why_not: str = ""
    replicas_min: int | None = None    # autoscaled pool (serving.autoscale): the fewest over the day


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
    feasible: bool = True
    binding: str | None = None
    remedies: list = field(default_factory=list)


def _serving_option(sc: Scenario, kind: str, keys: int, training: str, every: float | None,
                    replicas: int | None) -> ServingOption:
    hit = hit_ratio(sc, keys) if keys else 0.0
    policy, c_min = None, None
    if kind == "static":
        c = 0
    elif replicas is not None:
        c = replicas
    else:
        c, _ = provisioned_replicas(sc, hit)
        policy = policy_for(sc, hit)      # serving.autoscale: the pool follows the load
    vcpu_s = sc.costs.vcpu_hour / 3600.0
    d = Design(training, every, kind, keys if kind == "hybrid" else None, c)
    to_month = MONTH_S / sc.horizon
    table_b = keys * sc.model.prediction_bytes
    storage = table_b / 1e9 * sc.costs.table_storage_per_gb_month
    fill = sc.model.fill_vcpu_s(keys) * vcpu_s
    batch = table_refreshes_per_horizon(sc, d) * fill * to_month if keys else 0.0
    rep_usd = c * MONTH_S * vcpu_s
    if policy is not None:
        # the design at its best provisioning: billed replica-hours of the autoscaled pool
        # (its p99 below is that of its largest pool, a conservative stand-in)
        sch, scale = day_schedule(sc, hit, policy)
        c, c_min = int(sch["allocated"].max()), int(sch["allocated"].min())
        rep_usd = replica_seconds(sch) * scale * MONTH_S / sc.horizon * vcpu_s
    recurring = storage + batch + rep_usd
    p99 = latency_quantile_s(sc, 0.99, hit, c)
    model_p99 = model_path_p99_s(sc, hit, c) if (c and hit < 1.0) else None
    feasible, why = True, ""
    if not math.isfinite(p99) or p99 > sc.slo.latency_p99 * (1 + 1e-9):
        feasible = False
        why = (f"its p99 latency is {_ms(p99)}, above the {_ms(sc.slo.latency_p99)} SLO"
               if math.isfinite(p99) else f"{c} replica{'s' if c != 1 else ''} cannot keep up with the "
                                          f"peak of {sc.traffic.peak_rate_per_s * (1 - hit):,.0f} requests/s")
    if keys and training != "static" and feasible:
        # table rows are older than the model by one batch-prediction job: a table too big
        # to refresh quickly costs accuracy, and must not break the accuracy budget
        bp = batch_predict_s(sc, keys)
        budget = sc.slo.max_accuracy_loss
        base = _training_option(sc, training, every).decision_loss       # at slo.accuracy_confidence
        with_table = _training_option(sc, training, every, keys).decision_loss
        if with_table > budget and base <= budget:
            feasible, why = False, (f"filling its table takes {format_duration(bp)}, so rows are old "
                                    f"enough to lose {with_table:.2%} accuracy (budget {budget:.2%})")
    return ServingOption(kind, keys, hit, c, p99, recurring, table_b, storage, batch, rep_usd,
                         fill if keys else 0.0, (fill if keys else 0.0) + recurring * sc.horizon / MONTH_S,
                         model_p99, feasible, why, c_min)


def _ms(x_s: float) -> str:
    return "unbounded" if not math.isfinite(x_s) else f"{x_s * 1e3:,.0f} ms"


def _usd(x: float) -> str:
    return f"${x:,.2f}"


def _replicas(n: int) -> str:
    return f"{n} replica{'s' if n != 1 else ''}"


def _hybrid_grid(sc: Scenario, points: int = 30) -> list[int]:
    n = sc.traffic.cardinality
    top = float(n - 1) if n is not None else 1e12
    if top < 1:
        return []
    ks = np.unique(np.round(np.geomspace(10, max(top, 10), points)).astype(np.int64))
    return [int(k) for k in ks if 1 <= k <= top]


def _serving_axes(opt: ServingOption, cheapest: float, best_p99: float) -> dict:
    cost = 10.0 * cheapest / opt.lifetime_usd if opt.lifetime_usd > 0 else 10.0
    lat = 10.0 * best_p99 / opt.p99_s if math.isfinite(opt.p99_s) and opt.p99_s > 0 else 0.0
    variability = {"static": 10.0, "hybrid": 7.0, "dynamic": 4.0}[opt.kind]
    maintenance = {"static": 10.0, "hybrid": 5.0, "dynamic": 7.0}[opt.kind]
    space_vs_time = {"static": "space", "hybrid": "both", "dynamic": "time"}[opt.kind]
    return {"cost": round(min(cost, 10.0), 2), "latency_level": round(min(lat, 10.0), 2),
            "latency_variability": variability, "maintenance": maintenance,
            "space_vs_time": space_vs_time}


def _score(axes: dict, feasible: bool) -> float:
    """0–10: the cost axis, less up to 4% for upkeep (a hybrid must save more than about 2% to
    be worth its two paths); at most 3 when the SLO is missed."""
    score = axes["cost"] * (1.0 - 0.004 * (10.0 - axes["maintenance"]))
    return round(score if feasible else 0.3 * score, 2)


def advise_serving(sc: Scenario, training: str, every: float | None, hybrid_points: int = 30) -> ServingAdvice:
    """Cheapest of static / dynamic / hybrid (best cache_top_k) over the lifetime whose p99
    meets the SLO: one-off table fill + (replicas + table refreshes + table storage) per month.
    hybrid_points: table sizes tried, log-spaced (fewer: a coarser, faster search)."""
    n, s = sc.traffic.cardinality, sc.traffic.zipf_s
    pinned_c = sc.serving.replicas
    dyn = _serving_option(sc, "dynamic", 0, training, every, pinned_c)
    opts = {"dynamic": dyn}
    if n is not None:
        opts["static"] = _serving_option(sc, "static", int(n), training, every, None)
    hybrids = [_serving_option(sc, "hybrid", k, training, every, pinned_c) for k in _hybrid_grid(sc, hybrid_points)
               if hit_ratio(sc, k) > 1e-3]
    if hybrids:
        feas = [h for h in hybrids if h.feasible] or hybrids
        opts["hybrid"] = min(feas, key=lambda h: (h.lifetime_usd, h.p99_s))
    feasible = [o for o in opts.values() if o.feasible]
    pool = feasible or list(opts.values())
    cheapest = min(o.lifetime_usd for o in pool)
    best_p99 = min(o.p99_s for o in opts.values())
    axes = {k: _serving_axes(o, cheapest, best_p99) for k, o in opts.items()}
    scores = {k: _score(axes[k], o.feasible) for k, o in opts.items()}
    scores.setdefault("static", 0.0)
    scores.setdefault("hybrid", 0.0)
    if not feasible:
        # nothing meets the SLO: the closest p99 wins
        decision = min(opts, key=lambda k: opts[k].p99_s)
    else:
        decision = max(opts, key=lambda k: scores[k])
    ch = opts[decision]
    if ch.replicas_min is not None:
        # the autoscaled pool's own p99 (its options were screened at their largest pool)
        from .provisioning import autoscaled_p99_s, day_schedule, policy_for
        pol = policy_for(sc, ch.hit)
        ch = dataclasses.replace(ch, p99_s=autoscaled_p99_s(sc, ch.hit, day_schedule(sc, ch.hit, pol)[0]))
        opts[decision] = ch
    slo_ms = _ms(sc.slo.latency_p99)
    life = format_duration(sc.horizon)
    reasons = []
    if n is None:
        reasons.append("Cardinality is unbounded, so no table can hold every input: static serving "
                       "is impossible.")
    else:
        st = opts["static"]
        reasons.append(f"Precomputing all {format_count(n)} inputs takes {format_bytes(st.table_bytes)}: "
                       f"a one-off table fill of {_usd(st.one_off_usd)}, then {_usd(st.cost_usd_per_month)}/month "
                       f"(storage {_usd(st.storage_usd_per_month)}, refreshes {_usd(st.batch_usd_per_month)}).")
    if dyn.feasible and dyn.replicas_min is not None:
        reasons.append(f"Serving every request online at {sc.traffic.rate:,.0f}/s (peak "
                       f"{sc.traffic.peak_rate_per_s:,.0f}/s) needs {dyn.replicas_min} to {_replicas(dyn.replicas)} "
                       f"over the day for the {slo_ms} p99 SLO, autoscaled: {_usd(dyn.cost_usd_per_month)}/month.")
    elif dyn.feasible:
        reasons.append(f"Serving every request online at {sc.traffic.rate:,.0f}/s (peak "
                       f"{sc.traffic.peak_rate_per_s:,.0f}/s) needs {_replicas(dyn.replicas)} for the "
                       f"{slo_ms} p99 SLO: {_usd(dyn.cost_usd_per_month)}/month.")
    else:
        reasons.append(f"Online serving with {_replicas(dyn.replicas)} cannot meet the {slo_ms} p99 SLO: "
                       f"{dyn.why_not}.")
    if "hybrid" in opts:
        h = opts["hybrid"]
        reasons.append(f"The top {format_count(h.keys)} inputs receive {h.hit:.0%} of requests "
                       f"(Zipf s = {s:.2f}); precomputing them takes {format_bytes(h.table_bytes)} "
                       f"(a one-off fill of {_usd(h.one_off_usd)}) and leaves "
                       f"{_replicas(h.replicas) if h.replicas_min is None else f'{h.replicas_min} to {_replicas(h.replicas)}, autoscaled'}: "
                       f"{_usd(h.cost_usd_per_month)}/month for serving (replicas, table storage and refreshes).")
    elif n is None and s <= 1:
        reasons.append(f"Popularity is flat (Zipf s = {s:.2f} <= 1 over unbounded inputs): any finite "
                       f"head gets a vanishing share of requests, so a cache does not pay.")
    label = {"static": "Static serving (a precomputed table)", "dynamic": "Dynamic serving",
             "hybrid": "Hybrid serving"}[decision]
    if ch.feasible:
        reasons.append(f"{label} is the cheapest design that meets the latency SLO, at p99 {_ms(ch.p99_s)}: "
                       f"serving costs {_usd(ch.lifetime_usd)} over the {life} lifetime "
                       f"({_usd(ch.one_off_usd)} one-off table fill + {_usd(ch.cost_usd_per_month)}/month).")
    elif ch.p99_s <= sc.slo.latency_p99 * (1 + 1e-9):
        reasons.append(f"No design meets both the {slo_ms} p99 SLO and the accuracy budget as given: "
                       f"{label.lower()} meets the SLO (p99 {_ms(ch.p99_s)}), but {ch.why_not}.")
    else:
        reasons.append(f"No design meets the {slo_ms} p99 SLO as given; {label.lower()} comes closest "
                       f"(p99 {_ms(ch.p99_s)}).")
    if ch.why_not and ch.feasible:
        reasons.append("Warning: " + ch.why_not + ".")
    if ch.feasible and ch.kind == "hybrid" and ch.model_p99_s is not None \
            and ch.model_p99_s > sc.slo.latency_p99 * (1 + 1e-9):
        reasons.append(f"Warning: the overall p99 meets the SLO only because {ch.hit:.0%} of requests hit "
                       f"the table; the {1 - ch.hit:.0%} that reach the model see p99 {_ms(ch.model_p99_s)}.")
    if ch.replicas == 1:
        reasons.append("Warning: 1 replica has no redundancy: a failure or a deployment stops the model path "
                       "(serving.min_replicas is 1).")
    elif ch.replicas and pinned_c is None and ch.replicas == sc.serving.min_replicas:
        reasons.append(f"{_replicas(ch.replicas)} is the redundancy floor (serving.min_replicas), more than "
                       f"the SLO alone needs.")
    options = {k: asdict(o) for k, o in opts.items()}
    return ServingAdvice(decision, ch.keys if decision == "hybrid" else None, int(ch.replicas),
                         scores, axes, reasons, ch.feasible, options, ch.feasible)
