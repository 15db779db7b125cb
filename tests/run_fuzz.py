"""`make fuzz`: tests/test_fuzz.py over many fresh inputs, in parallel shards.

Each shard is its own pytest process drawing MLARCH_FUZZ_EXAMPLES / jobs fresh examples
(MLARCH_FUZZ_RANDOM: a new Hypothesis seed per process); the summary adds the shards' outcome
counts and counts distinct inputs across all of them by their digests. Exit status 1 when any
shard failed (its log's failing input is printed).

    python tests/run_fuzz.py [--examples 10000] [--jobs 2]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^fuzz: (\d+) examples; (.*?); (\d+) distinct inputs .*?max time ([\d.]+) s; "
                  r"max CPU ([\d.]+) s; max RSS (\d+) MB",
                  re.M)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=10_000)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = ap.parse_args(argv)
    per = -(-a.examples // a.jobs)
    tmp = Path(tempfile.mkdtemp(prefix="mlarch-fuzz-"))
    t0 = time.time()
    procs = []
    for i in range(a.jobs):
        env = {**os.environ, "MLARCH_FUZZ_EXAMPLES": str(per), "MLARCH_FUZZ_RANDOM": "1",
               "MLARCH_FUZZ_DIGESTS": str(tmp / f"{i}.digests")}
        log = open(tmp / f"{i}.log", "w")
        procs.append((subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                                        str(ROOT / "tests" / "test_fuzz.py")], cwd=ROOT, env=env,
                                       stdout=log, stderr=subprocess.STDOUT), log))
    print(f"fuzz: {a.jobs} shards of {per} examples; logs in {tmp}", flush=True)
    try:
        codes = [p.wait() for p, _ in procs]
    except KeyboardInterrupt:
        for p, _ in procs:
            p.terminate()
        return 130
    total, outcomes, worst_s, worst_cpu, worst_mb, failed = 0, Counter(), 0.0, 0.0, 0, []
    for i, (code, (_, log)) in enumerate(zip(codes, procs)):
        log.close()
        text = (tmp / f"{i}.log").read_text(errors="replace")
        m = LINE.search(text)
        if m:
            total += int(m.group(1))
            for part in m.group(2).split(", "):
                k, v = part.rsplit(" ", 1)
                outcomes[k] += int(v)
            worst_s, worst_cpu = max(worst_s, float(m.group(4))), max(worst_cpu, float(m.group(5)))
            worst_mb = max(worst_mb, int(m.group(6)))
        if code != 0:
            failed.append(i)
            print(f"--- shard {i} failed (exit {code}); end of {tmp / f'{i}.log'}:\n" + text[-6000:])
    seen = set()
    for f in tmp.glob("*.digests"):
        seen.update(f.read_text().split())
    print(f"fuzz: {total} examples in {time.time() - t0:.0f} s; "
          + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
          + f"; {len(seen)} distinct inputs; tracebacks {outcomes['traceback']}; hangs {outcomes['hang']}; "
          f"max time {worst_s:.1f} s; max CPU {worst_cpu:.1f} s; max RSS per shard {worst_mb} MB; failed shards {failed or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
