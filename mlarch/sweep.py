"""Sweeps: a grid of simulations over varied scenario fields, one row per (point, seed).

Runs go in parallel on local cores with joblib (loky processes, BLAS threads pinned to 1,
runs grouped into batches), or on a Dask cluster. Rows do not depend on where they ran:
the same seeds give identical rows serially, in parallel or on Dask.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from scenarios import ScenarioError, load_scenario


@dataclass(frozen=True)
class Run:
    """One simulation of the grid: overrides to apply and the seed."""
    point: tuple          # ((path, raw value), ...)
    seed: int


def parse_vary(spec: str) -> tuple[str, list[str]]:
    """'architecture.cache_top_k=1e3,1e4,1e5' -> ('architecture.cache_top_k', ['1e3', '1e4', '1e5'])."""
    if "=" not in spec:
        raise ScenarioError(f"--vary {spec}", None, None, "expected PATH=V1,V2,... e.g. --vary traffic.rate=100/s,200/s")
    path, values = spec.split("=", 1)
    vals = [v.strip() for v in _split_values(values)]
    if not path.strip() or not vals or any(v == "" for v in vals):
        raise ScenarioError(f"--vary {spec}", None, None, "expected PATH=V1,V2,... with no empty value")
    return path.strip(), vals


def _split_values(text: str) -> list[str]:
    """Split on commas that are not inside {...} or [...] (so flow YAML values work)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def plan(scenario: str, sets: list[str], varies: list[str], seeds: int) -> tuple[list[str], list[Run]]:
    """Validate every grid point up front (bad input fails before any run) and list the runs."""
    axes = [parse_vary(v) for v in varies]
    if not axes:
        raise ScenarioError("--vary", None, None, "give at least one --vary PATH=V1,V2,...")
    names = [p for p, _ in axes]
    if len(set(names)) != len(names):
        raise ScenarioError("--vary", None, None, "each field may be varied once")
    base_seed = load_scenario(scenario, sets).seed
    runs = []
    for combo in itertools.product(*[[(p, v) for v in vals] for p, vals in axes]):
        load_scenario(scenario, list(sets) + point_overrides(combo))  # validates
        for k in range(seeds):
            runs.append(Run(tuple(combo), base_seed + k))
    return names, runs


def flatten(prefix: str, obj, out: dict) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            flatten(f"{prefix}_{k}" if prefix else k, v, out)
    elif isinstance(obj, (list, tuple)):
        return
    else:
        out[prefix] = obj


def point_overrides(point: tuple) -> list[str]:
    """--set overrides for one grid point. `architecture.cache_top_k` also takes 0 (serve
    everything online: dynamic) and `all` (precompute everything: static); any other value
    means hybrid with that many precomputed keys."""
    out = []
    for p, v in point:
        if p == "architecture.cache_top_k":
            if v.strip().lower() in ("0", "dynamic"):
                out.append("architecture.serving=dynamic")
                continue
            if v.strip().lower() in ("all", "static"):
                out.append("architecture.serving=static")
                continue
            out.append("architecture.serving=hybrid")
        out.append(f"{p}={v}")
    return out


def run_one(scenario: str, sets: tuple, run: Run, horizon_s: float | None = None) -> dict:
    """Simulate one grid point with one seed; a flat dict (the CSV row). wall_s is left out so
    that rows are reproducible."""
    from advisor import design_for, predict
    from simulator import simulate
    sc = load_scenario(scenario, list(sets) + point_overrides(run.point))
    design = design_for(sc)
    m = dict(simulate(sc, design, seed=run.seed, horizon_s=horizon_s).metrics)
    m.pop("wall_s", None)
    row = {p: v for p, v in run.point}
    row["seed"] = run.seed
    flat: dict = {}
    flatten("", m, flat)
    flat.pop("scenario", None)
    flat.pop("seed", None)
    row.update(flat)
    p = predict(sc, design)
    for k in ("latency_p99_ms", "cache_hit_ratio", "cost_usd_per_month", "mean_model_age_s", "accuracy_loss"):
        row[f"predicted_{k}"] = getattr(p, k)
    return row


def run_grid(scenario: str, sets: list[str], runs: list[Run], jobs: int = 0, scheduler: str | None = None,
             progress=None, horizon_s: float | None = None) -> list[dict]:
    """All runs, in grid order. jobs: 1 = serial in this process; 0 = all local cores."""
    sets_t = tuple(sets)
    if jobs == 1 and scheduler is None:
        rows = []
        for k, r in enumerate(runs):
            rows.append(run_one(scenario, sets_t, r, horizon_s))
            if progress:
                progress(k + 1)
        return rows
    import joblib
    tasks = (joblib.delayed(run_one)(scenario, sets_t, r, horizon_s) for r in runs)
    if scheduler is not None:
        try:
            from dask.distributed import Client
        except ImportError:
            raise ScenarioError(f"--scheduler {scheduler}", None, None,
                                "Dask is not installed; install the extra: pip install 'mlarch[dask]'") from None
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as e:
            raise ScenarioError(f"--scheduler {scheduler}", None, None, f"cannot reach the scheduler: {e}") from None
        with client, joblib.parallel_config(backend="dask"):
            return _collect(joblib.Parallel(return_as="generator")(tasks), progress)
    n_jobs = jobs if jobs > 0 else -1
    # one BLAS thread per worker: the workers are the parallelism; batches amortise dispatch
    with joblib.parallel_config(backend="loky", inner_max_num_threads=1):
        par = joblib.Parallel(n_jobs=n_jobs, batch_size="auto", return_as="generator")
        return _collect(par(tasks), progress)


def _collect(gen, progress) -> list[dict]:
    rows = []
    for k, row in enumerate(gen):
        rows.append(row)
        if progress:
            progress(k + 1)
    return rows
