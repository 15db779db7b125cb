"""Simulator speed and memory benchmark (issue: >= 1M simulated requests/s, process start
included; presets' default horizons under 60 s; peak memory flat in the horizon).

Prints figures and a ratio against a one-SimPy-process-per-request model of the same queue
run in this same invocation (machines here are shared and noisy: compare ratios).

    python benchmarks/bench_simulate.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

from simulator.reference import simpy_fifo_waits

MLARCH = [sys.executable, "-m", "mlarch"]


def run_cli(args: list[str]) -> tuple[float, float, dict]:
    """(wall seconds, peak RSS MiB, metrics) of one `mlarch` process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(MLARCH + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"mlarch {' '.join(args)} failed with status {status}")
    return wall, usage.ru_maxrss / 1024.0, json.loads(out)


def simpy_per_request(arrival: np.ndarray, service: np.ndarray, c: int) -> float:
    """Requests per second of the textbook model: one SimPy process per request."""
    t0 = time.perf_counter()
    simpy_fifo_waits(arrival, service, c)
    return len(arrival) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs (for a smoke test)")
    args = ap.parse_args()
    horizon = "2h" if args.quick else "12h"
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")

    # 1. the reference: one SimPy process per request, same queue as the spam preset
    rng = np.random.default_rng(0)
    n = 100_000 if args.quick else 300_000
    sigma = math.log(4.0) / 2.3263
    service = 0.020 * np.exp(sigma * rng.standard_normal(n))
    arrival = np.cumsum(rng.exponential(1 / 300.0, n))
    ref_rps = simpy_per_request(arrival, service, 12)
    print(f"reference  one SimPy process per request (300/s, 12 replicas): {ref_rps / 1e3:,.0f}k requests/s")

    # 2. the whole simulator, process start included, dynamic serving with real predictions
    wall, rss, m = run_cli(["simulate", "spam", "--horizon", horizon, "--json"])
    rps = m["requests"] / wall
    print(f"mlarch     simulate spam --horizon {horizon} (dynamic serving): {m['requests']:,} requests in "
          f"{wall:.1f} s = {rps / 1e6:.2f}M requests/s, peak RSS {rss:.0f} MiB")
    print(f"ratio      mlarch / per-request SimPy = {rps / ref_rps:.1f}x  (target: >= 1M requests/s)")

    # 3. memory against the horizon
    spans = ["1h", "4h"] if args.quick else ["2h", "8h", "24h"]
    rows = []
    for span in spans:
        wall, rss, m = run_cli(["simulate", "spam", "--horizon", span, "--json"])
        rows.append((span, m["requests"], wall, rss))
        print(f"memory     horizon {span:>4}: {m['requests']:>11,} requests, {wall:6.1f} s, peak RSS {rss:6.0f} MiB")
    print(f"memory     RSS ratio longest/shortest horizon = {rows[-1][3] / rows[0][3]:.2f} "
          f"for {rows[-1][1] / max(rows[0][1], 1):.0f}x the requests")

    # 4. every preset at its default horizon
    if not args.quick:
        from scenarios import preset_names
        for name in preset_names():
            wall, rss, m = run_cli(["simulate", name, "--json"])
            print(f"preset     {name:<20} default horizon {m['horizon_s'] / 3600:5.0f} h: {wall:5.1f} s "
                  f"({m['requests'] / wall / 1e6:.2f}M requests/s), peak RSS {rss:.0f} MiB  (target < 60 s)")


if __name__ == "__main__":
    main()
