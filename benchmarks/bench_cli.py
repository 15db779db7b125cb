"""Wall time of the user-facing commands whose times README.md and docs/ quote.

    python benchmarks/bench_cli.py                  # every command, min of 3 runs (about 1.5 h on 2 cores)
    python benchmarks/bench_cli.py --only simulate  # the commands whose name contains a word
    python benchmarks/bench_cli.py --runs 1 --list

Each run is a fresh process (`python -m mlarch ...`, process start included, as a user
waits for it) in a fresh temporary directory (so a sweep never resumes stored rows), with
progress off. Prints the machine (CPU, cores, Python, mlarch commit), the load average
before each command, and a Markdown table: the minimum over the runs is the figure to
quote (the least disturbed by other work), the maximum shows the spread. Quote a figure
together with the machine and the load it was measured at.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (name, where the figure is quoted, commands run in order in one directory; the time is their sum)
COMMANDS = [
    ("advise spam", "README: worked example", [["advise", "spam"]]),
    ("simulate spam --horizon 6h", "README: Simulating the design", [["simulate", "spam", "--horizon", "6h"]]),
    ("simulate spam (90d lifetime, sampled)", "README: Speed", [["simulate", "spam"]]),
    ("simulate examples/monthly-shifts.yaml", "README: Sudden shifts",
     [["simulate", str(ROOT / "examples" / "monthly-shifts.yaml")]]),
    ("compare spam voice-to-text ad-conversion", "README: make demo",
     [["compare", "spam", "voice-to-text", "ad-conversion"]]),
    ("simulate --log (1d) then fit", "README: Bring your own traffic",
     [["simulate", "spam", "--set", "traffic.rate=20/s", "--set", "traffic.cardinality=200000",
       "--set", "traffic.peakedness.zipf_s=1.1", "--horizon", "1d", "--log", "requests.csv.gz"],
      ["fit", "requests.csv.gz", "--labels", "requests-labels.csv.gz", "--from", "spam", "-o", "mine.yaml",
       "--figures", "figs"]]),
    ("calibrate spam --estimator SGDClassifier", "README: Your own model",
     [["calibrate", "spam", "--estimator", "sklearn.linear_model.SGDClassifier", "-o", "my.yaml"]]),
    ("capacity ad-conversion", "README: Capacity", [["capacity", "ad-conversion"]]),
    ("sweep voice-to-text cache_top_k (12 runs)", "README: Exploring trade-offs",
     [["sweep", "voice-to-text", "--set", "traffic.cardinality=1e7", "--vary",
       "architecture.cache_top_k=0,1e3,1e4,1e5,1e6,all", "--horizon", "30m", "--seeds", "2", "--out", "voice.csv"]]),
    ("sweep spam retrain_every (5 runs)", "README: Exploring trade-offs",
     [["sweep", "spam", "--set", "architecture.training=periodic", "--vary",
       "architecture.retrain_every=1h,2h,4h,8h,12h", "--set", "traffic.rate=20/s", "--out", "retrain.csv"]]),
    ("report spam", "README: Exploring trade-offs", [["report", "spam", "-o", "spam.html"]]),
    ("plot --map voice-to-text", "README: Exploring trade-offs (serving map)", [["plot", "--map", "voice-to-text"]]),
    ("selfcheck --quick", "README: Does the simulator agree (--quick); docs/fidelity.md",
     [["selfcheck", "--quick", "--json"]]),
    ("selfcheck", "docs/fidelity.md (full results table)", [["selfcheck", "--json"]]),
    ("selfcheck --random 5 --random-seeds 2", "docs/fidelity.md (random scenarios)",
     [["selfcheck", "--random", "5", "--random-seeds", "2", "--json"]]),
]


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        commit = (commit + (" + uncommitted changes" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}", "mlarch commit": commit}


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run_once(steps: list[list[str]]) -> float:
    d = Path(tempfile.mkdtemp(prefix="mlarch-bench-"))
    env = dict(os.environ, MLARCH_QUIET="1")
    try:
        total = 0.0
        for args in steps:
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "mlarch", *args], cwd=d, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            total += time.perf_counter() - t0
            # selfcheck exits 1 when a check fails: still a timing, but say so
            if r.returncode not in (0, 1) or (r.returncode == 1 and args[0] != "selfcheck"):
                raise SystemExit(f"mlarch {' '.join(args)}: exit {r.returncode}\n{r.stderr[-2000:]}")
        return total
    finally:
        shutil.rmtree(d, ignore_errors=True)


# A fixed CPU-bound workload timed in the same invocation (before and after the commands), so
# figures from different machines or loads can be compared as multiples of it.
REFERENCE = ("import numpy as np\nrng = np.random.default_rng(0)\nx = rng.standard_normal(2_000_000)\n"
             "for _ in range(40):\n    np.sort(x)\n")


def reference_s(runs: int) -> float:
    """Min wall time of REFERENCE in a fresh interpreter (one BLAS thread, like the simulator)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", REFERENCE], env=env, check=True)
        out.append(time.perf_counter() - t0)
    return min(out)


def fmt(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min ({s:.0f} s)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per command (the minimum is reported)")
    ap.add_argument("--only", action="append", default=[], help="commands whose name contains this (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the commands and exit")
    a = ap.parse_args()
    chosen = [c for c in COMMANDS if not a.only or any(w in c[0] for w in a.only)]
    if a.list:
        for name, where, _ in chosen:
            print(f"{name:45s} {where}")
        return
    m = machine()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in m.items()))
    print(f"load average (1/5/15 min) at start: {load()}; uptime: "
          + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    ref0 = reference_s(a.runs)
    print(f"reference (40 sorts of 2M floats in numpy, fresh interpreter): {ref0:.2f} s", flush=True)
    rows = []
    for name, where, steps in chosen:
        before = load()
        times = [run_once(steps) for _ in range(a.runs)]
        rows.append((name, min(times), max(times), before, load(), where))
        print(f"  {name}: min {fmt(min(times))}, max {fmt(max(times))} (load {before})", file=sys.stderr, flush=True)
    ref1 = reference_s(a.runs)
    ref = min(ref0, ref1)
    print(f"\nreference before / after the commands: {ref0:.2f} s / {ref1:.2f} s (the '× ref' column "
          f"divides by {ref:.2f} s)")
    print(f"min of {a.runs} run(s), process start included; load average (1/5/15 min) before and after\n")
    print("| command | min | max | × ref | load before | load after | quoted in |")
    print("|---|---|---|---|---|---|---|")
    for name, lo, hi, before, after, where in rows:
        print(f"| `mlarch {name}` | {fmt(lo)} | {fmt(hi)} | {lo / ref:.1f} | {before} | {after} | {where} |")
    print(f"\nload average at end: {load()}")


if __name__ == "__main__":
    main()
