"""`mlarch simulate --log FILE`: the simulated request log and label log, in the format
`mlarch fit` reads (CSV, gzipped when the name ends in .gz).

- Request log `FILE`: columns `time` (epoch seconds; simulated t = 0 is LOG_ORIGIN) and
  `key` (the Zipf rank the simulator drew: 1 = most popular), one row per request, fed by
  the data plane's request hook (simulator.window.DataPlane.set_request_sink), each request
  kept with probability `sample` (a Bernoulli thinning, so a Poisson stream stays Poisson).
- Label log `<FILE stem>-labels.csv[.gz]`: columns `time` (example time) and `label_time`,
  labelled examples at data.velocity over the run, each labelled data.label_delay after its
  request; empty `label_time` when the label would arrive after the run ends (right-censored,
  as a real log cut at its end). This is the law the engine's DataSource draws batches from
  (uniform example times at data.velocity, labels after data.label_delay); the engine's own
  batches cannot be the log because they materialise at most 20,000 rows each (a subsample).

Files are written to a temporary name in the same directory and renamed when complete, so a
failed or interrupted run leaves no half-written log.
"""
from __future__ import annotations

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


def write_label_log(path: Path, sc, horizon_s: float, seed: int, sample: float = 1.0) -> int:
    """The label log of a run over [0, horizon): examples at data.velocity·sample (Poisson,
    uniform times), label time = example time + data.label_delay, empty when after the run."""
    rng = np.random.default_rng([seed, 0x1AB])
    out = _CsvStream(path, ["time", "label_time"])
    try:
        step = max(1.0, 1e6 / max(sc.data.velocity * sample, 1e-12))
        t0 = 0.0
        while t0 < horizon_s:
            t1 = min(horizon_s, t0 + step)
            n = rng.poisson(sc.data.velocity * sample * (t1 - t0))
            t = np.sort(rng.uniform(t0, t1, n))
            lab = t + sc.data.label_delay
            lab = np.where(lab < horizon_s, LOG_ORIGIN + lab, np.nan)
            out.write({"time": LOG_ORIGIN + t, "label_time": lab})
            t0 = t1
        out.commit()
    except BaseException:
        out.abort()
        raise
    return out.rows
