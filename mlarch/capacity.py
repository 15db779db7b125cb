"""Capacity: the highest traffic rate each candidate serving design sustains within the
latency SLO, and the replicas needed as traffic grows.

For each candidate (static; dynamic; hybrid at the advisor's table size k), with the
replica count the advisor gives it at today's rate:
- capacity by bisection on the advisor's model: the highest mean rate r whose p99 at the
  peak of the day, r·(1 + diurnal amplitude), meets slo.latency_p99 — the criterion the
  advisor sizes replicas by (advisor.latency.replicas_for_slo). A static design has no
  queue, so its capacity is not bounded by serving;
- confirmation by simulation: the same design run at that peak rate held flat, and at
  ABOVE times it (the simulator is independent of the advisor's formulas);
- replicas the advisor would need at 2x and 10x today's rate.

Uses both the advisor and the simulator, hence lives in `mlarch`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from scenarios import ScenarioError, load_scenario
from scenarios.design import Design
from scenarios.schema import Scenario

KINDS = ("static", "dynamic", "hybrid")
ABOVE = 1.10              # "just above" the capacity: 10% more traffic
BISECT_REL_TOL = 1e-4     # capacity to 0.01%
GROWTH = (2.0, 10.0)      # traffic multiples to size replicas for
CURVE_POINTS = 40         # points of each design's model curve (figure)
CONFIRM_TOL = 0.05        # the simulation confirms a capacity if its p99 there is within 5% of the
                          # SLO (the advisor's M/G/c approximation is ~1-3% off, histogram bins 1%)
                          # and 10% more traffic breaks the SLO


@dataclass
class DesignCapacity:
    """One candidate design's capacity (rates are mean rates per second; None = unbounded)."""
    kind: str
    design: dict
    hit_ratio: float
    replicas: int
    today_rate_per_s: float
    today_p99_ms: float
    capacity_rate_per_s: float | None
    headroom: float | None                      # capacity / today's rate
    p99_at_capacity_ms: float | None            # the model's, at the peak of the day
    replicas_for_rate: dict = field(default_factory=dict)   # "2x" -> replicas (None: cannot)
    simulated: list = field(default_factory=list)           # [{rate_per_s, peak_rate_per_s, p99_ms, within_slo}]
    confirmed: bool | None = None                           # by simulation (None: not simulated)
    curve: list = field(default_factory=list)               # [(mean rate /s, model p99 ms at peak)]
    note: str = ""


def model_p99_s(sc: Scenario, hit: float, replicas: int, peak_rate_per_s: float) -> float:
    """The advisor's p99 (queue + service, or lookup) at one arrival rate held flat."""
    from advisor.latency import latency_quantile_s
    return latency_quantile_s(sc, 0.99, hit, replicas if replicas > 0 else None,
                              np.array([peak_rate_per_s]), np.array([1.0]))


def max_peak_rate(sc: Scenario, hit: float, replicas: int) -> float | None:
    """Highest peak rate whose model p99 meets the SLO, by bisection (p99 rises with the
    rate); None when serving does not limit it (no request queues), 0 when no rate does."""
    slo = sc.slo.latency_p99
    miss = 1.0 - hit
    if miss <= 1e-12 or replicas == 0:
        return None
    ok = lambda r: model_p99_s(sc, hit, replicas, r) <= slo  # noqa: E731
    lo, hi = 0.0, replicas / (miss * sc.model.inference_time.mean_s)   # the servers' saturation rate
    if not ok(hi * 1e-9):
        return 0.0
    while hi - lo > BISECT_REL_TOL * hi:
        mid = 0.5 * (lo + hi)
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _candidates(spec: str, sets: list[str], kinds: tuple[str, ...]) -> list[tuple[str, Scenario, Design]]:
    """(kind, scenario pinned to it, the advisor's design for it) for each feasible kind."""
    from advisor import design_for
    base = load_scenario(spec, sets)
    out = []
    for kind in kinds:
        if kind == "static" and base.traffic.cardinality is None:
            continue   # no table can hold an unbounded set of inputs
        if kind == "hybrid" and base.traffic.cardinality is not None and base.traffic.cardinality < 2:
            continue
        try:
            sc = load_scenario(spec, list(sets) + [f"architecture.serving={kind}"])
        except ScenarioError:
            continue   # the scenario pins something this kind cannot have (e.g. a cache size)
        out.append((kind, sc, design_for(sc)))
    return out


def _with_rate(spec: str, sets: list[str], kind: str, rate_per_s: float, extra: list[str] = ()) -> Scenario:
    return load_scenario(spec, list(sets) + [f"architecture.serving={kind}", f"traffic.rate={rate_per_s!r}/s",
                                             *extra])


def capacity(spec: str, sets: list[str] | None = None, kinds: tuple[str, ...] = KINDS, simulate: bool = True,
             horizon_s: float = 1800.0, seed: int | None = None, progress=None) -> dict:
    """Capacity of each candidate design (see the module docstring); a JSON-ready dict.
    progress: None or a callable(fraction of the designs done, stage)."""
    from advisor.latency import replicas_for_slo
    from advisor.schedule import hit_ratio
    sets = list(sets or [])
    base = load_scenario(spec, sets)
    amp = base.traffic.diurnal_amplitude
    today = base.traffic.rate
    rows = []
    cands = list(_candidates(spec, sets, kinds))
    for i, (kind, sc, design) in enumerate(cands):
        if progress:
            progress(i / len(cands), kind + (": model and simulation" if simulate else ": model"))
        keys = design.table_keys(sc.traffic.cardinality)
        hit = hit_ratio(sc, keys) if keys else 0.0
        c = design.replicas
        peak_cap = max_peak_rate(sc, hit, c)
        cap = None if peak_cap is None else peak_cap / (1 + amp)
        p99_today = model_p99_s(sc, hit, c, today * (1 + amp))
        row = DesignCapacity(
            kind, design.to_json(), hit, c, today, p99_today * 1e3, cap,
            None if cap is None else cap / today,
            None if not cap else model_p99_s(sc, hit, c, peak_cap) * 1e3)
        for g in GROWTH:
            grown = _with_rate(spec, sets, kind, today * g)
            row.replicas_for_rate[f"{g:g}x"] = 0 if kind == "static" else replicas_for_slo(grown, hit)
        top = max((cap or today) * ABOVE * 1.2, today * 1.2)
        for r in np.linspace(top / CURVE_POINTS, top, CURVE_POINTS):
            p = model_p99_s(sc, hit, c, r * (1 + amp))
            row.curve.append((float(r), p * 1e3 if math.isfinite(p) else None))
        if cap is None:
            row.note = "table lookups do not queue: serving does not limit the rate"
        elif cap == 0:
            row.note = "the service time alone exceeds the SLO"
        elif simulate:
            row.simulated = [_simulate_at(spec, sets, kind, design, cap * f, amp, horizon_s, seed)
                             for f in (1.0, ABOVE)]
            at, above = (x["p99_ms"] for x in row.simulated)
            slo_ms = sc.slo.latency_p99 * 1e3
            row.confirmed = bool(at <= slo_ms * (1 + CONFIRM_TOL) and above > slo_ms)
        rows.append(row)
    if progress:
        progress(1.0, "done")
    return {"scenario": base.name, "slo_p99_ms": base.slo.latency_p99 * 1e3, "today_rate_per_s": today,
            "diurnal_amplitude": amp, "above_factor": ABOVE, "confirm_tolerance": CONFIRM_TOL, "simulated_horizon_s": horizon_s if simulate else None,
            "designs": [asdict(r) for r in rows]}


def _simulate_at(spec: str, sets: list[str], kind: str, design: Design, rate_per_s: float, amp: float,
                 horizon_s: float, seed: int | None) -> dict:
    """Simulate the design at the peak of `rate_per_s` held flat (the worst hour, steady)."""
    from simulator import simulate
    peak = rate_per_s * (1 + amp)
    sc = _with_rate(spec, sets, kind, peak, ["traffic.diurnal_amplitude=0", f"horizon={horizon_s!r}"])
    m = simulate(sc, design, seed=seed).metrics
    p99 = m["latency_ms"]["p99"]
    return {"rate_per_s": rate_per_s, "peak_rate_per_s": peak, "requests": m["requests"], "p99_ms": p99,
            "within_slo": bool(p99 <= sc.slo.latency_p99 * 1e3)}
