"""Simulator speed and memory benchmark (issue 14). Prints, in one invocation:

- requests/s of `mlarch simulate` for every preset at 1h and 24h, process start included
  (wall time of the whole process) and excluded (the run's own wall_s), and peak RSS;
- on the spam preset's configuration: the per-request SimPy reference queue and the
  pure-Python fallback of the data plane (MLARCH_JIT=0), with their ratios to mlarch;
- spam over 24h with `--threads 1` and `--threads 2`, and spam over 7 days;
- `sweep --jobs 1` against `--jobs 2` (speed-up), on 8 runs of 1h, 6h and 24h, and how much
  two identical runs at once slow each other (one alone against the slower of the two);
- simulated requests/s with the built-in model and with a scikit-learn SGDClassifier
  (`model.estimator`), side by side, on spam's configuration (--estimator-only runs just this).

Every figure is the minimum over --repeat runs (default 3); the machine's load average is
printed with them. Machines here are shared and noisy: compare ratios within one run.

    python benchmarks/bench_simulate.py [--quick] [--repeat N] [--presets spam,ad-conversion]
                                        [--estimator-only | --sweep-only]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

MLARCH = [sys.executable, "-m", "mlarch"]


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def run_cli(args: list[str], env: dict | None = None) -> tuple[float, float, dict | None]:
    """(wall seconds, peak RSS MiB, JSON on stdout or None) of one `mlarch` process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(MLARCH + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"mlarch {' '.join(args)} failed with status {status}")
    return wall, usage.ru_maxrss / 1024.0, (json.loads(out) if out.strip() else None)


def simulate_rps(preset: str, horizon: str, repeat: int, env: dict | None = None, extra: tuple = ()) -> dict:
    def one():
        wall, rss, m = run_cli(["simulate", preset, "--horizon", horizon, "--json", *extra], env)
        return wall, rss, m
    walls = [one() for _ in range(repeat)]
    wall, _, m = min(walls, key=lambda r: r[0])
    inner = min(w[2]["wall_s"] for w in walls)
    return {"requests": m["requests"], "wall_s": wall, "inner_s": inner, "rss_mib": max(w[1] for w in walls),
            "rps_with_start": m["requests"] / wall, "rps_no_start": m["requests"] / inner}


def simpy_reference_rps(n: int, repeat: int) -> float:
    """Requests/s of one SimPy process per request on the spam preset's queue (12 replicas,
    its lognormal service time, Poisson arrivals at its mean rate)."""
    from scenarios import load_scenario
    from simulator.reference import simpy_fifo_waits
    sc = load_scenario("spam")
    rng = np.random.default_rng(0)
    service = sc.model.inference_time.sample_s(rng, n)
    arrival = np.cumsum(rng.exponential(1 / sc.traffic.rate, n))
    best = math.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        simpy_fifo_waits(arrival, service, 12)
        best = min(best, time.perf_counter() - t0)
    return n / best


def side_by_side_s(horizon: str, repeat: int) -> tuple[float, float]:
    """(one run alone, the slower of two identical runs started together): `simulate spam
    --threads 1`'s own wall_s, min over repeats."""
    args = MLARCH + ["simulate", "spam", "--horizon", horizon, "--threads", "1", "--json"]
    alone, both = math.inf, math.inf
    for _ in range(repeat):
        alone = min(alone, json.loads(subprocess.run(args, capture_output=True, check=True).stdout)["wall_s"])
        procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for _ in range(2)]
        walls = [json.loads(p.communicate()[0])["wall_s"] for p in procs]
        both = min(both, max(walls))
    return alone, both


def sweep_s(horizon: str, repeat: int) -> tuple[list[float], list[float]]:
    """(--jobs 1, --jobs 2) wall seconds of one sweep process, one per repeat. The two
    alternate (1, 2, 1, 2, ...) so that a drift in the shared machine's speed, which can reach
    30% within minutes, falls on both alike instead of on whichever ran second."""
    walls: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(repeat):
            for jobs in (1, 2):
                args = ["sweep", "spam", "--vary", "traffic.rate=200/s,250/s,300/s,350/s", "--seeds", "2",
                        "--horizon", horizon, "--jobs", str(jobs), "--fresh", "--out", os.path.join(d, "s.csv")]
                walls[jobs].append(run_cli(args)[0])
    return walls[1], walls[2]


ESTIMATOR = "sklearn.linear_model.SGDClassifier"


def estimator_rps(horizon: str, repeat: int) -> None:
    """Requests/s of spam with the built-in model and with SGDClassifier, side by side (the
    estimator predicts on the real features, one call per window of model-path requests)."""
    est = ["--set", f"model.estimator={{class: {ESTIMATOR}}}"]
    print(f"{'model':<38} {'horizon':>7} {'requests':>12} {'run s':>7} {'M req/s excl.':>13} "
          f"{'M req/s incl.':>13} {'accuracy':>9}")
    rows = {}
    for label, extra in (("built-in least squares", []), (ESTIMATOR, est)):
        def one():
            return run_cli(["simulate", "spam", "--horizon", horizon, "--json", *extra])
        runs = [one() for _ in range(repeat)]
        wall, _, m = min(runs, key=lambda r: r[0])
        inner = min(r[2]["wall_s"] for r in runs)
        rows[label] = m["requests"] / inner
        print(f"{label:<38} {horizon:>7} {m['requests']:>12,} {inner:>7.1f} {m['requests'] / inner / 1e6:>13.2f} "
              f"{m['requests'] / wall / 1e6:>13.2f} {m['accuracy']['served']:>9.2%}", flush=True)
    print(f"ratio      SGDClassifier / built-in = {rows[ESTIMATOR] / rows['built-in least squares']:.2f}x "
          f"(start excluded)  [{load()}]")


def sweeps(horizons: list[str], rep: int) -> None:
    """3. sweep --jobs 1 against --jobs 2 on 8 runs: of 24h (the target), and of 6h and 1h,
    where the sweep's own start (imports, loading the compiled kernels: about 1.1 s, paid once
    by either) weighs more (Amdahl)."""
    for hs in horizons:
        w1, w2 = sweep_s(hs, rep)
        s1, s2 = min(w1), min(w2)
        each = " ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(w1, w2))
        print(f"sweep      spam, 8 runs of {hs}: --jobs 1 {s1:.1f} s, --jobs 2 {s2:.1f} s, speed-up {s1 / s2:.2f}x"
              f"{' (target >= 1.8x)' if hs == '24h' else ''}; each pair {each} s  [{load()}]", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short horizons and one preset (a smoke test)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the minimum is reported")
    ap.add_argument("--presets", default=None, help="comma-separated presets (default: all)")
    ap.add_argument("--estimator-only", action="store_true",
                    help="only the built-in model against SGDClassifier (needs scikit-learn)")
    ap.add_argument("--sweep-only", action="store_true", help="only the sweep --jobs 1 / --jobs 2 rows")
    args = ap.parse_args()
    if args.sweep_only:
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; min of {args.repeat} runs; {load()}")
        sweeps(["10m"] if args.quick else ["1h", "6h", "24h"], args.repeat)
        return
    if args.estimator_only:
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; min of {args.repeat} runs; {load()}")
        estimator_rps("10m" if args.quick else "1h", args.repeat)
        return
    from scenarios import preset_names
    from simulator import kernels
    presets = args.presets.split(",") if args.presets else (["spam"] if args.quick else preset_names())
    horizons = ["10m", "1h"] if args.quick else ["1h", "24h"]
    rep = args.repeat
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, numba kernels: "
          f"{'on' if kernels.enabled() else 'OFF (pure-Python fallback)'}; min of {rep} runs; {load()}")

    # 1. the references on the spam preset's configuration
    n_ref = 30_000 if args.quick else 200_000
    ref = simpy_reference_rps(n_ref, rep)
    print(f"reference  per-request SimPy, spam's queue (300/s, 12 replicas): {ref / 1e3:,.0f}k requests/s  [{load()}]")
    h_fb = horizons[0]
    fb = simulate_rps("spam", h_fb, rep, env={"MLARCH_JIT": "0"})
    jit = simulate_rps("spam", h_fb, rep, env={"MLARCH_JIT": "1"})
    print(f"fallback   simulate spam --horizon {h_fb}, MLARCH_JIT=0: {fb['rps_no_start'] / 1e6:.2f}M requests/s "
          f"(start excluded), {fb['rps_with_start'] / 1e6:.2f}M (included)  [{load()}]")
    print(f"mlarch     simulate spam --horizon {h_fb}, MLARCH_JIT=1: {jit['rps_no_start'] / 1e6:.2f}M requests/s "
          f"(start excluded), {jit['rps_with_start'] / 1e6:.2f}M (included)")
    print(f"ratio      compiled / pure-Python fallback = {jit['rps_no_start'] / fb['rps_no_start']:.2f}x; "
          f"compiled / per-request SimPy = {jit['rps_no_start'] / ref:.1f}x (start excluded), "
          f"{jit['rps_with_start'] / ref:.1f}x (included)")

    # 2. every preset at 1h and 24h (MLARCH_JIT unset: compiled for runs of >= 2M requests)
    print(f"{'preset':<20} {'horizon':>7} {'requests':>12} {'process s':>9} {'run s':>7} "
          f"{'M req/s incl.':>13} {'M req/s excl.':>13} {'x SimPy':>8} {'peak RSS':>9}")
    for name in presets:
        for h in horizons:
            r = simulate_rps(name, h, rep)
            print(f"{name:<20} {h:>7} {r['requests']:>12,} {r['wall_s']:>9.1f} {r['inner_s']:>7.1f} "
                  f"{r['rps_with_start'] / 1e6:>13.2f} {r['rps_no_start'] / 1e6:>13.2f} "
                  f"{r['rps_no_start'] / ref:>8.1f} {r['rss_mib']:>6.0f} MiB", flush=True)
    print(f"           [{load()}]")

    # 2b. one run on one thread or two (simulate --threads; the default is 2 on 2+ CPUs), and
    # the 7-day run
    if "spam" in presets:
        h = horizons[-1]
        one = simulate_rps("spam", h, rep, extra=("--threads", "1"))
        two = simulate_rps("spam", h, rep, extra=("--threads", "2"))
        print(f"threads    spam {h}: --threads 1 {one['rps_no_start'] / 1e6:.2f}M requests/s, --threads 2 "
              f"{two['rps_no_start'] / 1e6:.2f}M (start excluded{'; target >= 6M' if h == '24h' else ''}), "
              f"{two['rps_no_start'] / one['rps_no_start']:.2f}x; "
              f"{two['rps_no_start'] / ref:.1f}x per-request SimPy; peak RSS {one['rss_mib']:.0f} / {two['rss_mib']:.0f} MiB  [{load()}]",
              flush=True)
        if not args.quick:
            week = simulate_rps("spam", "7d", rep)
            print(f"week       spam 7d: {week['inner_s']:.1f} s run, {week['wall_s']:.1f} s with process start "
                  f"(target < 40 s), {week['rps_no_start'] / 1e6:.2f}M requests/s, peak RSS {week['rss_mib']:.0f} MiB  "
                  f"[{load()}]", flush=True)

    sweeps(["10m"] if args.quick else ["1h", "6h", "24h"], rep)
    # two simulations at once slow each other (shared memory bus and caches): what --jobs 2
    # loses besides each worker's start
    alone, both = side_by_side_s("10m" if args.quick else "6h", rep)
    print(f"contention one {'10m' if args.quick else '6h'} run alone {alone:.2f} s, the slower of two at once "
          f"{both:.2f} s ({both / alone - 1:+.0%})  [{load()}]", flush=True)

    # 4. your own model in the loop: built-in against a scikit-learn estimator
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("estimator  skipped: scikit-learn is not installed (pip install 'mlarch[sklearn]')")
        return
    estimator_rps(horizons[0], rep)


if __name__ == "__main__":
    main()
