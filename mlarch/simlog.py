"""`mlarch simulate --log FILE`: the simulated request log and label log, in the format
`mlarch fit` reads (CSV, gzipped when the name ends in .gz).

- Request log `FILE`: columns `time` (epoch seconds; simulated t = 0 is LOG_ORIGIN) and
  `key` (the Zipf rank the simulator drew: 1 = most popular), one row per request, fed by
  the data plane's request hook (simulator.window.DataPlane.set_request_sink), each request
  kept with probability `sample` (a Bernoulli thinning, so a Poisson stream stays Poisson).
- Label log `<FILE stem>-labels.csv[.gz]`: columns `time` (example time), `label_time`
  (example time + data.label_delay) and `ingested_time` (when the engine's data batch
  delivered it), one row per labelled example, fed by the engine's batch hook
  (simulator.simulate(on_batches=...)): the examples of every data batch the run ingested
  (simulator.ingest.DataSource), quarantined ones included, as a real label log would hold
  them. A batch stands for `nominal_rows` examples of which at most ingest.MAX_ROWS (20,000,
  fewer on long runs) are materialised as rows: the log holds the materialised rows' example times and, for
  the rest of the batch, times drawn uniformly over the batch's own window (the law its
  materialised rows follow); the count per batch is nominal_rows rounded at random (unbiased
  also below one example per batch). Examples after the last batch's window (labels that
  arrive in the run but after its last batch, or after the run: `label_time` empty,
  right-censored as a real log cut at its end) are drawn at data.velocity (Poisson,
  uniform times), and so are those of runs with no data batch at all.
  Each example is kept with probability `sample`, like the requests.

Files are written to a temporary name in the same directory and renamed when complete, so a
failed or interrupted run leaves no half-written log.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

LOG_ORIGIN = 1704067200.0     # 2024-01-01T00:00:00Z: simulated t = 0 in the logs' epoch seconds


def label_log_path(path: Path) -> Path:
    """requests.csv -> requests-labels.csv; requests.csv.gz -> requests-labels.csv.gz."""
    name = path.name
    for suf in (".csv.gz", ".csv", ".gz"):
        if name.endswith(suf):
            return path.with_name(name[: -len(suf)] + "-labels" + suf)
    return path.with_name(name + "-labels.csv")


class _CsvStream:
    """Append-only CSV writer to a temp file, renamed over `path` by commit()."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = Path(path), columns
        parent = self.path.parent if str(self.path.parent) else Path(".")
        fd, self.tmp = tempfile.mkstemp(dir=parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)
        self.gz = self.path.name.endswith(".gz")
        import gzip
        # gzip level 1: the default level triples the cost of a simulated run for ~15% smaller files
        self.fh = gzip.open(self.tmp, "wb", compresslevel=1) if self.gz else open(self.tmp, "wb")
        self.fh.write((",".join(columns) + "\n").encode())
        try:
            import pyarrow as pa
            import pyarrow.csv as pacsv
            self.pa, self.pacsv = pa, pacsv
        except ImportError:
            self.pa = None
        self.rows = 0

    def write(self, cols: dict) -> None:
        """Append rows (NaN is written as an empty field)."""
        n = len(next(iter(cols.values())))
        if n == 0:
            return
        if self.pa is not None:
            tab = self.pa.table({k: self.pa.array(v, from_pandas=True) for k, v in cols.items()})
            buf = self.pa.BufferOutputStream()
            self.pacsv.write_csv(tab, buf, write_options=self.pacsv.WriteOptions(include_header=False))
            self.fh.write(buf.getvalue().to_pybytes())
        else:
            import io

            import pandas as pd
            text = io.StringIO()
            pd.DataFrame(cols).to_csv(text, header=False, index=False, float_format="%.6f")
            self.fh.write(text.getvalue().encode())
        self.rows += n

    def commit(self) -> None:
        self.fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.fh.close()
        finally:
            Path(self.tmp).unlink(missing_ok=True)


class RequestLog:
    """The request hook: writes (time, key) of each request kept with probability `sample`."""

    def __init__(self, path: Path, sample: float, seed: int):
        self.sample = sample
        self.rng = np.random.default_rng([seed, 0x10C])   # its own stream: the run is unchanged
        self.out = _CsvStream(path, ["time", "key"])

    def __call__(self, t_s: np.ndarray, keys: np.ndarray) -> None:
        if self.sample < 1.0:
            keep = self.rng.random(t_s.size) < self.sample
            t_s, keys = t_s[keep], keys[keep]
        self.out.write({"time": LOG_ORIGIN + t_s, "key": keys.astype(np.uint64)})


class LabelLog:
    """The batch hook: writes the labelled examples of each data batch the engine ingests
    (call finish() after the run for the examples no batch delivered)."""

    def __init__(self, path: Path, sc, horizon_s: float, sample: float, seed: int):
        self.delay, self.velocity = sc.data.label_delay, sc.data.velocity
        self.horizon, self.sample = horizon_s, sample
        self.rng = np.random.default_rng([seed, 0x1AB])   # its own stream: the run is unchanged
        self.out = _CsvStream(path, ["time", "label_time", "ingested_time"])
        self.covered_s = 0.0       # example times up to here came from the engine's batches
        self.batches = self.from_batches = 0

    def __call__(self, b) -> None:
        rng = self.rng
        t_mat = b.columns["_t"]
        whole = int(math.floor(b.nominal_rows + rng.random()))   # E = nominal_rows
        m = min(t_mat.size, whole)
        mat = t_mat[rng.choice(t_mat.size, m, replace=False)] if m < t_mat.size else t_mat
        mat = mat[rng.random(m) < self.sample]
        extra = rng.uniform(b.data_start_s, b.data_end_s, rng.binomial(whole - m, self.sample))
        t = np.sort(np.concatenate([mat, extra]))
        t = t[t >= 0.0]                       # the log starts with the requests, at t = 0
        self.out.write({"time": LOG_ORIGIN + t, "label_time": LOG_ORIGIN + t + self.delay,
                        "ingested_time": np.full(t.size, LOG_ORIGIN + b.arrived_s)})
        self.covered_s = max(self.covered_s, b.data_end_s)
        self.batches += 1
        self.from_batches += t.size

    def finish(self) -> None:
        """Examples after the last batch's window, to the run's end: at data.velocity, labelled
        after data.label_delay when that is within the run (else empty: right-censored)."""
        rng, H = self.rng, self.horizon
        step = max(1.0, 1e6 / max(self.velocity * self.sample, 1e-12))
        t0 = self.covered_s
        while t0 < H:
            t1 = min(H, t0 + step)
            t = np.sort(rng.uniform(t0, t1, rng.poisson(self.velocity * self.sample * (t1 - t0))))
            lab = t + self.delay
            self.out.write({"time": LOG_ORIGIN + t, "label_time": np.where(lab < H, LOG_ORIGIN + lab, np.nan),
                            "ingested_time": np.full(t.size, np.nan)})
            t0 = t1
