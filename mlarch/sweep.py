"""Sweeps: a grid of simulations over varied scenario fields, one row per (point, seed).

Runs go in parallel on local cores (this process and worker processes, forked from it on
Linux, else loky's; BLAS threads pinned to 1), or on a Dask cluster (`local:N` starts one here). Rows do not
depend on where they ran: the same seeds give identical rows serially, in parallel or on
Dask. Each finished row is stored under a key of (resolved scenario, seed, horizon, mlarch
version) in a directory beside the CSV, so an interrupted sweep resumes where it stopped.
Local workers exit when the process that started them dies (they never outlive a kill -9).
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from scenarios import ScenarioError, load_scenario

PARENT_POLL_S = 1.0      # how often a local worker checks that its parent is alive
WORKERS_WAIT_S = 30.0    # how long to wait for a Dask cluster to have a worker


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
    from threadpoolctl import threadpool_limits
    # one BLAS thread for the whole run, the advisor's model included: after each of its small
    # matrix products a second OpenBLAS thread would spin (about 0.1 s of CPU a run), taking
    # the core --jobs gave another run
    with threadpool_limits(limits=1, user_api="blas"):
        return _run_one(scenario, sets, run, horizon_s)


def _run_one(scenario: str, sets: tuple, run: Run, horizon_s: float | None) -> dict:
    from advisor import design_for, predict
    from simulator import simulate
    sc = load_scenario(scenario, list(sets) + point_overrides(run.point))
    design = design_for(sc)
    # one thread per run: --jobs decides how many cores the sweep uses
    m = dict(simulate(sc, design, seed=run.seed, horizon_s=horizon_s, threads=1).metrics)
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


def csv_text(rows: list[dict]) -> str:
    """The sweep's CSV: one column per key in order of first appearance, a missing, None or
    NaN value empty, floats to the last digit; pandas reads it back as DataFrame(rows). Written
    with the csv module so that a sweep does not load pandas (about 0.35 s per process to
    import and unload: every sweep pays it, serial or parallel)."""
    import csv
    import io
    import math
    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow(["" if v is None or (isinstance(v, float) and math.isnan(v)) else v
                    for v in (r.get(c) for c in cols)])
    return buf.getvalue()


def run_key(scenario: str, sets: tuple, run: Run, horizon_s: float | None) -> str:
    """The store key of one run: a hash of the resolved scenario (every field, defaults
    filled in), the seed, the simulated span and the mlarch version."""
    from . import __version__
    resolved, horizon = _resolved(scenario, tuple(sets), run.point)
    doc = {"scenario": resolved, "seed": run.seed,
           "horizon_s": horizon if horizon_s is None else float(horizon_s), "mlarch": __version__}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=4096)
def _resolved(scenario: str, sets: tuple, point: tuple):
    """(resolved scenario as JSON text, horizon) of one grid point: loaded once for all its seeds."""
    sc = load_scenario(scenario, list(sets) + point_overrides(point))
    return json.dumps(sc.model_dump(mode="json"), sort_keys=True), sc.horizon


class RunStore:
    """Finished rows of sweeps, one JSON file per run named by its key (`run_key`).

    A file is written whole or not at all, so a sweep killed at any moment leaves only
    complete rows; rows of other sweeps sharing the directory are keyed apart."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)

    @staticmethod
    def beside(out_csv: Path) -> "RunStore":
        """The store of a sweep writing out_csv: the directory OUT.csv.runs next to it."""
        out_csv = Path(out_csv)
        return RunStore(out_csv.with_name(out_csv.name + ".runs"))

    def get(self, key: str) -> dict | None:
        try:
            return json.loads((self.dir / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None   # missing or unreadable: run it again

    def put(self, key: str, row: dict) -> None:
        from .files import atomic_write
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / f"{key}.json", json.dumps(row))


def run_grid(scenario: str, sets: list[str], runs: list[Run], jobs: int = 0, scheduler: str | None = None,
             progress=None, horizon_s: float | None = None, store: RunStore | None = None,
             keys: list[str] | None = None, reuse: bool = True) -> list[dict]:
    """All runs, in grid order. jobs: 1 = serial in this process; 0 = all local cores.
    scheduler: 'local:N' (a Dask LocalCluster of N worker processes) or a Dask scheduler
    address. store: each new row is stored as soon as it arrives, under its key (`keys`,
    computed when not given); with reuse, rows already stored are not run again."""
    sets_t = tuple(sets)
    if store is not None and keys is None:
        keys = [run_key(scenario, sets_t, r, horizon_s) for r in runs]
    rows: dict[int, dict] = {}
    if store is not None and reuse:
        for k, key in enumerate(keys):
            row = store.get(key)
            if row is not None:
                rows[k] = row
    todo = [k for k in range(len(runs)) if k not in rows]

    def finished(k: int, row: dict) -> None:
        rows[k] = row
        if store is not None:
            store.put(keys[k], row)
        if progress:
            progress(len(rows))

    if todo:
        if scheduler is not None:
            workers = local_workers(scheduler) or 1     # a remote cluster: its size is unknown here
        else:
            workers = jobs if jobs > 0 else (os.cpu_count() or 1)
        warm = _worth_warming(scenario, sets_t, [runs[k] for k in todo], horizon_s, workers)
        args = [(k, scenario, sets_t, runs[k], horizon_s, warm) for k in todo]
        if jobs != 1 or scheduler is not None:
            # in parallel, the longest runs first (LPT scheduling: the last runs to start are
            # short, so the workers finish together); rows keep their grid order
            args.sort(key=lambda a: -_expected_requests(scenario, sets_t, a[3].point, horizon_s))
        if scheduler is not None:
            _run_dask(scheduler, args, finished)
        elif jobs == 1:
            for a in args:
                finished(*_indexed_run(*a))
        else:
            _run_local(jobs, args, warm, finished)
    return [rows[k] for k in range(len(runs))]


def _worth_warming(scenario: str, sets: tuple, runs: list[Run], horizon_s: float | None, workers: int) -> bool:
    """Whether each process should load the compiled kernels before its first run: when its
    share of the runs, small ones too, together repays the load (simulator.kernels.warm)."""
    from simulator.kernels import JIT_MIN_REQUESTS
    expected = sum(_expected_requests(scenario, sets, r.point, horizon_s) for r in runs)
    return bool(runs) and expected / min(workers, len(runs)) >= JIT_MIN_REQUESTS


_started: tuple | None = None     # (workers + 1, executor) started by start_workers for run_grid


def start_workers(scenario: str, sets: list[str], runs: list[Run], jobs: int, horizon_s: float | None = None) -> None:
    """Start the worker processes of a parallel local sweep (jobs != 1) now, before this
    process starts any thread (the CLI calls it before its progress bar): on Linux they are
    forked from this process once it has imported what a run needs and loaded the compiled
    kernels (when the runs repay them), so each starts at once instead of paying about
    1.5 s for those itself. The next run_grid with the same jobs uses them."""
    global _started
    n = jobs if jobs > 0 else (os.cpu_count() or 1)
    if jobs == 1 or n < 2 or not runs:
        return
    _started = (n, _workers(n, _worth_warming(scenario, tuple(sets), runs, horizon_s, n)))


def _workers(n: int, warm: bool):
    """n − 1 worker processes that run beside this one. Forked (Linux, and only from a
    process with one thread, where forking is safe) after this process has imported what a
    run needs and loaded the compiled kernels if `warm`; else loky's, which start a fresh
    interpreter each and prepare it themselves."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        _prepare_worker(warm)
        ex = ProcessPoolExecutor(max_workers=n - 1, mp_context=multiprocessing.get_context("fork"),
                                 initializer=die_with_parent)
        ex.submit(int).result()     # the workers are forked at the first task: now, while one thread runs
        return ex
    from joblib.externals.loky import get_reusable_executor
    # one BLAS thread per worker: the processes are the parallelism
    ex = get_reusable_executor(max_workers=n - 1, initializer=die_with_parent, env=BLAS_ENV)
    for _ in range(n - 1):
        ex.submit(_prepare_worker, warm)
    return ex


def _stop_workers(ex, now: bool) -> None:
    """Shut the workers down: after their runs, or now (killed mid-run)."""
    from concurrent.futures import ProcessPoolExecutor
    if not isinstance(ex, ProcessPoolExecutor):    # loky's: reused by the next sweep of this process
        if now:
            ex.shutdown(wait=False, kill_workers=True)
        return
    procs = list((ex._processes or {}).values()) if now else []
    ex.shutdown(wait=not now, cancel_futures=now)
    for p in procs:
        p.terminate()


def _prepare_worker(warm: bool) -> None:
    """Import what a run needs, and load the compiled kernels if `warm`."""
    import advisor  # noqa: F401
    import simulator.engine  # noqa: F401
    if warm:
        from simulator import kernels
        kernels.warm()


def _indexed_run(k: int, scenario: str, sets: tuple, run: Run, horizon_s: float | None,
                 warm: bool = False) -> tuple[int, dict]:
    if warm:
        from simulator import kernels
        kernels.warm()
    return k, run_one(scenario, sets, run, horizon_s)


@functools.lru_cache(maxsize=4096)
def _expected_requests(scenario: str, sets: tuple, point: tuple, horizon_s: float | None) -> float:
    """Requests one run of this grid point simulates: at most the default request budget,
    with or without --horizon (run_one samples a longer span in slices)."""
    from simulator.engine import DEFAULT_REQUEST_BUDGET
    from simulator.traffic import integrated_rate
    sc = load_scenario(scenario, list(sets) + point_overrides(point))
    n = integrated_rate(0.0, sc.horizon if horizon_s is None else horizon_s, sc.traffic.rate,
                        sc.traffic.diurnal_amplitude)
    return min(n, DEFAULT_REQUEST_BUDGET)


def _run_local(jobs: int, args: list, warm: bool, finished) -> None:
    """Local parallel runs: this process runs them itself beside jobs − 1 worker processes
    (start_workers' or new ones), each taking the next run as it becomes free; this process
    is ready at once, while new workers take about 1.5 s to start. Results are stored in the
    order they finish, so an interrupted sweep keeps them all."""
    global _started
    from concurrent.futures import FIRST_COMPLETED, wait
    n = jobs if jobs > 0 else (os.cpu_count() or 1)
    ex = _started[1] if _started is not None and _started[0] == n else _workers(n, warm)
    if _started is not None and _started[1] is not ex:
        _stop_workers(_started[1], now=True)
    _started = None
    todo = iter(args)
    lock = threading.Lock()
    stop = threading.Event()
    failed: list[BaseException] = []

    def take():
        with lock:
            return None if stop.is_set() else next(todo, None)

    def done(k: int, row: dict) -> None:
        with lock:
            finished(k, row)

    def feed_workers() -> None:
        pending: set = set()
        try:
            while True:
                while len(pending) < n - 1:
                    a = take()
                    if a is None:
                        break
                    pending.add(ex.submit(_indexed_run, *a))
                if not pending:
                    return
                ready, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in ready:
                    done(*f.result())
        except BaseException as e:      # a run's error: the sweep stops and reports it
            failed.append(e)
            stop.set()

    feeder = threading.Thread(target=feed_workers, name="mlarch-sweep-workers", daemon=True)
    feeder.start()
    try:
        while (a := take()) is not None:
            done(*_indexed_run(*a))
        feeder.join()
    except BaseException:       # this process's run failed, or Ctrl-C: stop the workers' runs too
        stop.set()
        _stop_workers(ex, now=True)
        raise
    _stop_workers(ex, now=bool(failed))
    if failed:
        raise failed[0]


BLAS_ENV = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")}


def die_with_parent() -> None:
    """Worker initializer: exit as soon as the parent process is gone (kill -9 included),
    so workers and the resource tracker they keep alive never outlive the sweep. A worker
    whose parent dies is re-parented, so its parent pid changes; a thread polls it. Ctrl-C is
    left to the parent, which stops the workers itself (a worker would otherwise print its
    own traceback)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)
    threading.Thread(target=watch, name="mlarch-parent-watch", daemon=True).start()


def worker_version() -> str:
    """The mlarch version installed where this runs (called on Dask workers)."""
    from . import __version__
    return __version__


def _run_dask(scheduler: str, args: list, finished) -> None:
    flag = f"--scheduler {scheduler}"
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise ScenarioError(flag, None, None,
                            "Dask is not installed; install the extra: pip install 'mlarch[dask]'") from None
    cluster = None
    n = local_workers(scheduler)
    if n is not None:
        import logging

        from dask.distributed import LocalCluster
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
        address = cluster.scheduler_address
    else:
        address = scheduler
    try:
        try:
            client = Client(address, timeout="10s")
        except (OSError, TimeoutError, ValueError) as e:
            raise ScenarioError(flag, None, None, f"cannot reach the scheduler: {e}") from None
        with client:
            check_worker_versions(client, flag)
            futures = {client.submit(_indexed_run, *a, pure=False): a[0] for a in args}
            for fut in as_completed(futures):
                finished(*fut.result())
    finally:
        if cluster is not None:
            cluster.close()


def local_workers(scheduler: str) -> int | None:
    """N for --scheduler local:N, None for an address; bad N is bad input (checked up front)."""
    if not scheduler.startswith("local:"):
        return None
    n = scheduler[len("local:"):]
    if not (n.isascii() and n.isdigit()) or not 1 <= int(n) <= 1024:
        raise ScenarioError(f"--scheduler {scheduler}", None, None,
                            "expected local:N with N from 1 to 1024 worker processes, e.g. local:4")
    return int(n)


def check_worker_versions(client, flag: str = "--scheduler", expected: str | None = None) -> None:
    """Refuse (one line) a cluster with no worker or whose workers run another mlarch."""
    from . import __version__
    expected = expected or __version__
    try:
        client.wait_for_workers(1, timeout=WORKERS_WAIT_S)
    except TimeoutError:
        raise ScenarioError(flag, None, None, f"no worker joined the scheduler within {WORKERS_WAIT_S:.0f} s "
                            "(start some with: dask worker ADDRESS)") from None
    try:
        versions = client.run(worker_version)
    except Exception as e:   # a worker without mlarch cannot unpickle the call
        raise ScenarioError(flag, None, None, f"the workers cannot run mlarch ({type(e).__name__}: {e}); "
                            f"install mlarch {expected} on every worker") from None
    bad = {w: v for w, v in versions.items() if v != expected}
    if bad:
        w, v = sorted(bad.items())[0]
        raise ScenarioError(flag, None, None, f"worker {w} runs mlarch {v} but this is mlarch {expected} "
                            f"({len(bad)} of {len(versions)} workers differ); install the same version everywhere")
