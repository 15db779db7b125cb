"""Output files: checked before any work, then written completely or not at all.

Every command that writes checks its outputs first (`check_file_output`, `check_dir_output`),
so a path that cannot be written fails in well under a second with one line, before a long
simulation. Files are written to a temporary sibling and renamed into place; a run
directory is built as a temporary sibling directory and renamed into place whole. Files and
directories are created with mode 0666/0777 less the umask (0644/0755 typically), as any
other program's would be. The CLI and the report use these.
"""
from __future__ import annotations

import io
import os
import secrets
import shutil
from pathlib import Path

MIN_FREE_BYTES = 16 * 1024 * 1024   # every output mlarch writes is smaller: a fuller disk fails up front


class OutputError(ValueError):
    """An output path that cannot be written (the message names it)."""


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _why(e: OSError) -> str:
    return e.strerror or str(e)


def _check_writable_dir(parent: Path, flag: str, path: Path) -> None:
    """Fail unless `parent` is an existing directory we can create files in, with room left.

    Creating (and removing) a probe file is the only check that sees read-only mounts,
    ACLs and quotas; os.access does not, and root passes it everywhere."""
    flag = f"{flag} " if flag else ""
    if not parent.exists():
        raise OutputError(f"{flag}{path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{flag}{path}: {parent} is not a directory")
    probe = parent / f".mlarch-probe-{secrets.token_hex(6)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"{flag}{path}: cannot write in {parent}: {_why(e)}") from None
    try:
        st = os.statvfs(parent)
    except OSError:
        return
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE_BYTES:
        raise OutputError(f"{flag}{path}: only {free:,} bytes free on the file system of {parent} "
                          f"(need at least {MIN_FREE_BYTES:,})")


def check_file_output(path: Path, flag: str) -> None:
    """Pre-flight for an output file: the parent is a writable directory with room, and the
    target is not a directory or a special file."""
    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    if path.is_dir():
        raise OutputError(f"{where}: is a directory; give a file name")
    if path.exists() and not path.is_file():
        raise OutputError(f"{where}: exists and is not a regular file")
    _check_writable_dir(_parent(path), flag, path)


def _protected(path: Path) -> bool:
    """Directories --force must never replace: the working directory or one of its
    ancestors, the home directory, the root."""
    try:
        target = path.resolve()
        cwd = Path.cwd().resolve()
    except OSError:
        return True
    return target == Path(target.anchor) or target == Path.home().resolve() or target in (cwd, *cwd.parents)


def check_dir_output(path: Path, flag: str, force: bool, replaceable=None) -> None:
    """Pre-flight for an output directory written whole: it does not exist, or is empty, or
    `force` is given (it will be replaced whole), or `replaceable(path)` says its contents
    are ours to replace; and its parent is a writable directory with room."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise OutputError(f"{flag} {path}: exists and is not a directory")
        try:
            empty = not any(path.iterdir())
        except OSError as e:
            raise OutputError(f"{flag} {path}: cannot list: {_why(e)}") from None
        if not empty and not force and not (replaceable and replaceable(path)):
            raise OutputError(f"{flag} {path}: directory is not empty (use --force to replace it whole)")
        if not empty and _protected(path):
            raise OutputError(f"{flag} {path}: refusing to replace the working, home or root directory")
    _check_writable_dir(_parent(path), flag, path)


def _write_all(fd: int, raw: bytes) -> None:
    view = memoryview(raw)
    while view:
        view = view[os.write(fd, view):]


def _write_new(path: Path, raw: bytes) -> None:
    """Create `path` (which must not exist) with mode 0666 less the umask and write `raw`."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        _write_all(fd, raw)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write a file completely or not at all (a temporary sibling, then rename); any OS error
    (disk full, read-only) is an OutputError naming the path, and leaves nothing behind."""
    path = Path(path)
    parent = _parent(path)
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: directory {parent} does not exist")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        _write_new(tmp, raw)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {_why(e)}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class RunDir:
    """A directory written whole: files go into a temporary sibling, which `commit()` renames
    into place (replacing an existing directory whole when allowed). Leaving the `with`
    block without committing removes the temporary directory, so nothing appears under the
    final name.

        with RunDir(out, "--out", force) as rd:
            rd.write("metrics.json", text)
            rd.commit()
    """

    def __init__(self, path: Path, flag: str = "--out", force: bool = False, replaceable=None):
        self.path, self.flag, self.force, self.replaceable = Path(path), flag, force, replaceable
        self.tmp: Path | None = None

    def __enter__(self) -> "RunDir":
        check_dir_output(self.path, self.flag, self.force, self.replaceable)
        self.tmp = _parent(self.path) / f".{self.path.name}.{secrets.token_hex(6)}.tmp"
        try:
            os.mkdir(self.tmp, 0o777)
        except OSError as e:
            raise OutputError(f"{self.flag} {self.path}: cannot create a directory next to it: {_why(e)}") from None
        return self

    def write(self, name: str, data: bytes | str) -> Path:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        try:
            _write_new(self.tmp / name, raw)
        except OSError as e:
            raise OutputError(f"cannot write {self.path / name}: {_why(e)}") from None
        return self.path / name

    def commit(self) -> None:
        """Rename the finished directory into place (the existing one, if any, is replaced whole)."""
        # checked again: the directory may have been filled while we worked
        check_dir_output(self.path, self.flag, self.force, self.replaceable)
        old = None
        try:
            if self.path.exists() or self.path.is_symlink():
                old = _parent(self.path) / f".{self.path.name}.{secrets.token_hex(6)}.old"
                os.rename(self.path, old)
            os.rename(self.tmp, self.path)
        except OSError as e:
            if old is not None and not self.path.exists():
                os.rename(old, self.path)   # put the previous directory back
                old = None
            raise OutputError(f"{self.flag} {self.path}: cannot move the new directory into place: {_why(e)}") from None
        self.tmp = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def __exit__(self, *exc) -> bool:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False


def run_files(result) -> dict[str, str]:
    """The text of metrics.json, timeseries.csv, latency_hist.csv and events.json for a run."""
    import pandas as pd

    from . import render
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
    return files


def write_run(out_dir: Path, result, force: bool = False) -> list[Path]:
    """Write metrics.json, timeseries.csv, latency_hist.csv and events.json as the directory
    out_dir, whole (see RunDir): a non-empty out_dir is refused unless `force`."""
    with RunDir(out_dir, "--out", force) as rd:
        written = [rd.write(name, text) for name, text in run_files(result).items()]
        rd.commit()
    return written
