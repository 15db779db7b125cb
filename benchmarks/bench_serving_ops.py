"""Speed of the serving-operations paths (issue 16) against the fixed-pool path, in one
invocation: the spam preset over a contiguous span with

- a fixed pool (the advisor's peak-sized pool): the numba queue kernel alone;
- `serving.autoscale` (the pool resized every minute from the observed load);
- `serving.batching` on a vectorised model (T(b) = 20 ms + 0.5 ms·b, batches of up to 32),
  against a fixed pool serving the same model one request at a time.

Each figure is the best of --repeat runs of `simulate()` in this process (numba compiled and
warmed first), as requests per second of the run's own wall time; the target is each feature
within 2x of its fixed-pool path. The machine's load average is printed with them: compare
the ratios, not the absolute speeds, on a shared machine.

    python benchmarks/bench_serving_ops.py [--horizon 6h] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--horizon", default="6h")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("MLARCH_JIT", "1")
    from advisor import design_for
    from scenarios import load_scenario
    from scenarios.units import parse_duration_s
    from simulator import simulate
    H = parse_duration_s(args.horizon)
    vec = ["model.batch_time={fixed: 20ms, per_item: 0.5ms}",
           "model.inference_time={distribution: deterministic, value: 20.5ms}"]
    cases = [
        ("fixed pool", []),
        ("autoscale", ["serving.autoscale={cold_start: 30s}"]),
        ("fixed pool, vectorised model", vec),
        ("batching", vec + ["serving.batching={max_batch: 32, timeout: 10ms}"]),
    ]
    # warm numba's cache and imports on a short run of each path
    for _, sets in cases:
        sc = load_scenario("spam", sets)
        simulate(sc, design_for(sc), seed=1, horizon_s=60, request_budget=None)
    print(f"spam over {args.horizon} contiguous; best of {args.repeat}; {_load()}")
    speed = {}
    for name, sets in cases:
        sc = load_scenario("spam", sets)
        d = design_for(sc)
        best = None
        for r in range(args.repeat):
            t0 = time.perf_counter()
            m = simulate(sc, d, seed=1 + r, horizon_s=H, request_budget=None).metrics
            wall = time.perf_counter() - t0
            rate = m["requests"] / wall
            best = rate if best is None else max(best, rate)
        speed[name] = best
        print(f"  {name:30s} {best / 1e6:6.2f}M requests/s   ({d.replicas} replicas"
              + (", autoscaled" if d.autoscale else "") + ")")
    print(f"autoscale / fixed pool: {speed['autoscale'] / speed['fixed pool']:.2f}x the speed; "
          f"batching / fixed pool (same model): {speed['batching'] / speed['fixed pool, vectorised model']:.2f}x "
          f"(target: at least 0.5x)   {_load()}")


def _load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


if __name__ == "__main__":
    main()
