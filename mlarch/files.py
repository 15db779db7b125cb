"""Output files: written completely or not at all. The CLI and the report use these."""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path


class OutputError(ValueError):
    """An output path that cannot be written (the message names it)."""


def check_parent(path: Path, flag: str) -> None:
    """Fail before any long run if `path` could not be written later."""
    parent = Path(path).parent if str(Path(path).parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{flag} {path}: directory {parent} does not exist")


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write a file completely or not at all (temp file in the same directory, then rename)."""
    path = Path(path)
    check_parent(path, "output")
    parent = path.parent if str(path.parent) else Path(".")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_run(out_dir: Path, result) -> list[Path]:
    """Write metrics.json, timeseries.csv, latency_hist.csv and events.json into out_dir."""
    import pandas as pd

    from . import render
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir}: exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"metrics.json": render.dumps(result.metrics) + "\n"}
    buf = io.StringIO()
    result.timeseries_frame().to_csv(buf, index=False)
    files["timeseries.csv"] = buf.getvalue()
    rows = []
    for path, h in result.latency_hist.items():
        edges, counts = h.nonzero_bins()
        rows += [{"path": path, "upper_edge_ms": e * 1e3, "count": c} for e, c in zip(edges, counts)]
    buf = io.StringIO()
    pd.DataFrame(rows, columns=["path", "upper_edge_ms", "count"]).to_csv(buf, index=False)
    files["latency_hist.csv"] = buf.getvalue()
    files["events.json"] = render.dumps(result.events) + "\n"
    written = []
    for name, text in files.items():
        atomic_write(out_dir / name, text)
        written.append(out_dir / name)
    return written
