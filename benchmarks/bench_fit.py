"""Benchmark `mlarch fit` on a large generated CSV request log: rows/s and peak memory.

    python benchmarks/bench_fit.py                 # 1 GB log (about 42M rows)
    python benchmarks/bench_fit.py --gb 5          # the issue's 5 GB log (needs ~5 GB of disk)
    python benchmarks/bench_fit.py --keep big.csv  # keep the generated log

The log is what a service would write over one day: `time` in epoch seconds with
milliseconds (1704067200.123), `key` an 8-digit integer id drawn from a Zipf law (s = 1.0)
over 10 million keys, Poisson arrivals with a 50% daily swing at the rate that fills the
requested size in a day (about 480/s per GB). Ten million keys is above the
fit's exact-counting bound (a 0.4 GB log already shows 2.8M distinct keys), so the run also
exercises the HyperLogLog count of distinct keys and the hash sample of key frequencies.
The fit runs in a child process (`python -m mlarch fit LOG -o ... --json`); its wall time and peak resident
memory (getrusage of the child) are printed with the machine's load average.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator.traffic import ZipfSampler, arrivals  # noqa: E402

ORIGIN_MS = 1_704_067_200_000
ROW_BYTES = 24            # "1704067200.123,12345678\n"
BLOCK_S = 60.0


def _digits(v: np.ndarray, width: int) -> np.ndarray:
    """Fixed-width decimal digits of non-negative integers as ASCII (n × width uint8)."""
    p = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((v[:, None] // p) % 10 + 48).astype(np.uint8)


def generate(path: Path, target_bytes: float, amp: float = 0.5, n_keys: float = 1e7, s: float = 1.0,
             seed: int = 1, span_s: float = 86400.0) -> int:
    """Write a sorted CSV request log of about target_bytes covering span_s (the rate follows
    from the size); returns the number of rows."""
    rng = np.random.default_rng(seed)
    rate = target_bytes / ROW_BYTES / span_s
    zipf = ZipfSampler(n_keys, s)
    rows, t0 = 0, 0.0
    with open(path, "wb") as f:
        f.write(b"time,key\n")
        while t0 < span_s:
            t = arrivals(rng, t0, t0 + BLOCK_S, rate, amp)
            t0 += BLOCK_S
            ms = ORIGIN_MS + np.floor(t * 1e3).astype(np.int64)
            keys = 10_000_000 + zipf.sample(rng, t.size).astype(np.int64)   # 8 digits, no leading zeros
            out = np.empty((t.size, ROW_BYTES), np.uint8)
            sec, frac = ms // 1000, ms % 1000
            out[:, 0:10] = _digits(sec, 10)
            out[:, 10] = ord(".")
            out[:, 11:14] = _digits(frac, 3)
            out[:, 14] = ord(",")
            out[:, 15:23] = _digits(keys, 8)
            out[:, 23] = ord("\n")
            f.write(out.tobytes())
            rows += t.size
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, default=1.0, help="size of the generated log in GB (default 1)")
    ap.add_argument("--keep", type=Path, default=None, help="write the log here and keep it")
    ap.add_argument("--log", type=Path, default=None, help="fit this existing log instead of generating one")
    args = ap.parse_args()
    if args.keep is not None:
        args.keep.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = tempfile.mkdtemp(prefix="bench_fit_", dir=str(args.keep.parent) if args.keep else None)
    path = args.log or args.keep or Path(tmpdir) / "requests.csv"
    try:
        if args.log is None:
            t = time.perf_counter()
            rows = generate(path, args.gb * 1e9)
            print(f"generated {path}: {rows:,} rows, {path.stat().st_size / 1e9:.2f} GB in "
                  f"{time.perf_counter() - t:.1f} s")
        out = Path(tmpdir) / "fitted.yaml"
        cmd = [sys.executable, "-m", "mlarch", "fit", str(path), "-o", str(out), "--json"]
        load0 = os.getloadavg()
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t
        load1 = os.getloadavg()
        if proc.returncode != 0:
            sys.exit(f"fit failed: {proc.stderr.strip()}")
        doc = json.loads(proc.stdout)
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        rss_mib, cpu = ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime
        n = doc["input"]["rows"]
        e = doc["estimates"]
        print(f"command: {' '.join(cmd[1:])}")
        print(f"fit: {n:,} rows in {wall:.1f} s = {n / wall / 1e6:.2f} million rows/s "
              f"({path.stat().st_size / wall / 1e6:.0f} MB/s), process start included")
        print(f"     CPU time {cpu:.1f} s = {n / cpu / 1e6:.2f} million rows per CPU-second "
              "(what the rate would be on an otherwise idle core)")
        card = e["traffic.cardinality"]
        print(f"peak RSS of the fit: {rss_mib:,.0f} MiB (exact key bound {doc['input']['memory_bound_keys']:,} keys; "
              f"hash-sample fraction {card['sample_fraction']:.3g})")
        print(f"load average before / after: {load0[0]:.2f} / {load1[0]:.2f} on {os.cpu_count()} cores")
        print(f"estimates: rate {e['traffic.rate']['value']:.1f}/s, amplitude "
              f"{e['traffic.diurnal_amplitude']['value']:.3f}, distinct keys "
              f"{card['distinct_observed']:,.0f} ({card['distinct_method']}, 95% "
              f"{card['distinct_ci95'][0]:,.0f} – {card['distinct_ci95'][1]:,.0f}), zipf_s "
              f"{(e['traffic.peakedness.zipf_s'] or {}).get('value', float('nan')):.3f}")
    finally:
        if args.keep is None and args.log is None:
            Path(path).unlink(missing_ok=True)
        for f in Path(tmpdir).glob("*"):
            f.unlink()
        Path(tmpdir).rmdir()


if __name__ == "__main__":
    main()
