"""`mlarch fit`: from a request log (and a label log) to a scenario, with stated uncertainty.

Reading is streamed in chunks (pandas `read_csv(chunksize=...)`, or pyarrow for Parquet), so
memory is bounded whatever the log's length:

- arrival counts in time bins (at most MAX_TIME_BINS bins; the bin width doubles when needed);
- key frequencies exactly for up to MAX_EXACT_KEYS distinct keys (16 bytes each: a 64-bit key
  hash and a count, 32 MiB at the bound). Beyond the bound, two structures of bounded size:
  * the number of distinct keys: an Apache DataSketches HyperLogLog sketch (`hll_sketch`,
    lg_k = HLL_LG_K, 64 KiB), seeded with every key of the table when it first overflows and
    then fed, per chunk, the chunk's distinct key hashes that the table does not already hold
    (re-adding a key leaves an HLL unchanged, so this is exact HLL semantics at a fraction of
    the calls: its Python `update` takes one item per call, 4-7M items/s measured here). Its
    estimate is reported with the sketch's own 95% bounds (get_lower_bound(2)/get_upper_bound(2));
  * key frequencies, which an HLL cannot give and Good–Turing, Chao1 and the Zipf fit need: the
    table becomes a *hash sample* of keys (Wegman's adaptive sampling, analysed by Flajolet
    1990): a key is kept iff its hash is below a threshold that halves whenever the table
    fills, so the kept keys are a uniform random sample of keys (fraction p) with their exact
    frequencies. Good–Turing and Chao1 counts are estimated by dividing by p, and the
    power-law fit uses the sampled keys' frequencies (a uniform sample of the frequency
    distribution);
- label delays in log-spaced bins of 0.1% relative width, plus the example times of rows
  still unlabelled (the log's right-censored tail).

Estimators are pure functions below the reader, each citing its source. Errors in the input
raise LogError with one line `FILE:ROW: column: message` (ROW is the line in a CSV file,
header = line 1; the data row, from 1, in a Parquet file).
"""
from __future__ import annotations

import collections
import gzip
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAX_EXACT_KEYS = 1 << 21          # distinct keys counted exactly (32 MiB); then HLL + a hash sample
HLL_LG_K = 16                     # HLL registers 2^16 (64 KiB): relative standard error 1.04/2^8 = 0.4%
HLL_FEED = 1 << 16                # hashes per Python list handed to the sketch (bounds its memory)
MAX_TIME_BINS = 1 << 20           # arrival-count bins kept while reading (8 MiB)
CHUNK_ROWS = 1 << 20              # rows per pandas chunk
DELAY_BIN_RATIO = 1.001           # label-delay bins: 0.1% relative width ...
DELAY_MIN_S = 1e-3                # ... from 1 ms (delays below fall in one bin [0, 1 ms))
DELAY_MAX_S = 20 * 365 * 86400.0  # ... to 20 years
TARGET_BINS = 2000                # bins of the harmonic regression
MIN_DIURNAL_SPAN_S = 6 * 3600.0   # shorter logs: a flat rate, no daily amplitude
DAY_S = 86400.0
Z95 = 1.959963984540054
_U64 = np.uint64


class LogError(ValueError):
    """Bad input in a log file; the message is one line `FILE:ROW: column: message`."""

    def __init__(self, path, row, column, message):
        where = f"{path}:{row}" if row is not None else str(path)
        col = f" {column}:" if column else ""
        super().__init__(f"{where}:{col} {message}")


# ============================================================================ reading

@dataclass
class KeyTable:
    """Exact frequencies of the keys whose 64-bit hash is below `threshold` (all keys until
    the table first fills): sorted hashes and their counts; and, once it has filled, a
    HyperLogLog sketch of every key seen (`hll`)."""
    bound: int = MAX_EXACT_KEYS
    keys: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    counts: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    threshold: int = 1 << 64      # keep hashes < threshold; 2^64 = keep all
    sampled_requests: int = 0     # requests whose key is in the sample
    hll: object = None            # datasketches.hll_sketch, from the first overflow on
    hll_updates: int = 0          # items handed to the sketch (its cost: one Python call each)

    @property
    def fraction(self) -> float:
        """p: the share of the key space kept (1.0 while exact)."""
        return self.threshold / 2.0 ** 64

    @property
    def exact(self) -> bool:
        return self.threshold == 1 << 64

    def distinct(self) -> float:
        """Distinct keys seen: exact while the table holds them all, else the HLL estimate."""
        return float(self.keys.size) if self.hll is None else float(self.hll.get_estimate())

    def _hll_feed(self, u: np.ndarray) -> None:
        # the sketch takes one item per call: hand it Python ints in bounded slices
        upd = self.hll.update
        v = u.view(np.int64)
        for i in range(0, v.size, HLL_FEED):
            collections.deque(map(upd, v[i:i + HLL_FEED].tolist()), maxlen=0)
        self.hll_updates += int(u.size)

    def add(self, h: np.ndarray) -> None:
        """Count a chunk of key hashes (sort, run-length, merge into the sorted table)."""
        if h.size == 0:
            return
        h = np.sort(h)
        first = np.empty(h.size, bool)
        first[0] = True
        np.not_equal(h[1:], h[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        u = h[starts]
        c = np.diff(np.append(starts, h.size)).astype(np.int64)
        if not self.exact:
            out = u >= _U64(self.threshold)
            self._hll_feed(u[out])                  # outside the sample: the sketch alone counts them
            u, c = u[~out], c[~out]
            if u.size == 0:
                return
        self.sampled_requests += int(c.sum())
        pos = np.searchsorted(self.keys, u)
        found = pos < self.keys.size
        found[found] = self.keys[pos[found]] == u[found]
        self.counts[pos[found]] += c[found]          # u is unique, so pos[found] is too
        new = np.flatnonzero(~found)
        if new.size:
            if self.hll is not None:
                self._hll_feed(u[new])               # keys already in the table were fed when they entered
            size = self.keys.size + new.size
            at = pos[new] + np.arange(new.size)      # final positions of the new keys
            old = np.ones(size, bool)
            old[at] = False
            keys, counts = np.empty(size, np.uint64), np.empty(size, np.int64)
            keys[at], counts[at] = u[new], c[new]
            keys[old], counts[old] = self.keys, self.counts
            self.keys, self.counts = keys, counts
        while self.keys.size > self.bound:
            if self.hll is None:
                # first overflow: the table still holds every key seen, the sketch starts from them
                import datasketches
                self.hll = datasketches.hll_sketch(HLL_LG_K, datasketches.tgt_hll_type.HLL_8)
                self._hll_feed(self.keys)
            self.threshold //= 2
            keep = self.keys < _U64(self.threshold)
            self.sampled_requests -= int(self.counts[~keep].sum())
            self.keys, self.counts = self.keys[keep], self.counts[keep]

    def freq_of_freq(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, m): m keys of the sample were seen exactly x times, x ascending."""
        return np.unique(self.counts, return_counts=True)

    def n_with_count(self, x: int) -> float:
        """Estimated number of keys (whole key space) seen exactly x times."""
        return float(np.count_nonzero(self.counts == x)) / self.fraction


@dataclass
class RequestScan:
    """What one pass over the request logs keeps (bounded memory)."""
    files: list
    time_format: str = ""
    rows: int = 0
    t_min: float = math.inf
    t_max: float = -math.inf
    bin_s: float = 1.0
    bin0: int | None = None        # index (in bin_s units from t=0) of counts[0]
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    keys: KeyTable = field(default_factory=KeyTable)
    curve: list = field(default_factory=list)   # [(requests, distinct_est, n1_est)] at doublings
    next_checkpoint: int = 1 << 12
    keys_are: str = ""                  # "integers" or "text"

    def add_times(self, t: np.ndarray) -> None:
        self.t_min = min(self.t_min, float(t[0]))
        self.t_max = max(self.t_max, float(t[-1]))
        while True:
            b = np.floor(t / self.bin_s).astype(np.int64)
            if self.bin0 is None:
                self.bin0 = int(b[0])
            lo = min(self.bin0, int(b.min()))
            hi = max(self.bin0 + self.counts.size, int(b.max()) + 1)
            if hi - lo <= MAX_TIME_BINS:
                break
            self._coarsen()
        if lo < self.bin0:
            self.counts = np.concatenate([np.zeros(self.bin0 - lo, np.int64), self.counts])
            self.bin0 = lo
        if hi > self.bin0 + self.counts.size:
            self.counts = np.concatenate([self.counts, np.zeros(hi - self.bin0 - self.counts.size, np.int64)])
        self.counts += np.bincount(b - self.bin0, minlength=self.counts.size)

    def _coarsen(self) -> None:
        """Double the bin width (sum pairs of bins, aligned to even indices)."""
        if self.bin0 % 2:
            self.counts = np.concatenate([[0], self.counts])
            self.bin0 -= 1
        if self.counts.size % 2:
            self.counts = np.concatenate([self.counts, [0]])
        self.counts = self.counts.reshape(-1, 2).sum(axis=1)
        self.bin0 //= 2
        self.bin_s *= 2

    def add_keys(self, h: np.ndarray) -> None:
        """Count key hashes; record the unseen-mass curve each time the log doubles."""
        start = 0
        while self.rows + (h.size - start) >= self.next_checkpoint:
            cut = start + self.next_checkpoint - self.rows
            self.keys.add(h[start:cut])
            self.rows += cut - start
            start = cut
            self._checkpoint()
            self.next_checkpoint *= 2
        self.keys.add(h[start:])
        self.rows += h.size - start

    def _checkpoint(self) -> None:
        k = self.keys
        self.curve.append((self.rows, k.distinct(), k.n_with_count(1)))


def _time_kind(values, path, col, first_row):
    """Decide how a time column is written, from the first chunk: ('epoch', scale) or ('iso', aware)."""
    import pandas as pd
    s = pd.Series(values).dropna().reset_index(drop=True)
    num = pd.to_numeric(s, errors="coerce")
    if s.size == 0:
        raise LogError(path, first_row, col, "empty time")
    if num.notna().iloc[0]:     # the first time decides: a number is epoch time
        med = float(np.nanmedian(np.abs(num.to_numpy(dtype=float))))
        for scale, name, limit in ((1.0, "epoch seconds", 1e11), (1e-3, "epoch milliseconds", 1e14),
                                   (1e-6, "epoch microseconds", 1e17), (1e-9, "epoch nanoseconds", math.inf)):
            if med < limit:
                return ("epoch", scale), f"{name} (auto-detected from magnitude {med:.3g})"
    aware = _has_offset(s.astype(str))
    kind = "ISO-8601 with UTC offsets" if aware.iloc[0] else "ISO-8601 without offsets (read as UTC)"
    return ("iso", bool(aware.iloc[0])), kind


def _has_offset(s):
    return s.str.contains(r"(?:[Zz]|[+-]\d\d:?\d\d)\s*$", regex=True)


def _row(rows, i: int) -> int:
    """File row of position i: rows is the chunk's first row, or an array of row numbers."""
    return int(rows[i]) if isinstance(rows, np.ndarray) else rows + i


def parse_times(values, kind, path, col, rows) -> np.ndarray:
    """Times of one chunk in epoch seconds (float64), or LogError naming the first bad row.
    rows: the chunk's first file row, or each value's row number."""
    import pandas as pd
    s = pd.Series(values).reset_index(drop=True)
    if kind[0] == "epoch":
        if s.dtype.kind in "iuf":
            t = s.to_numpy(dtype=np.float64)
        else:
            t = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(t)
        if bad.any():
            i = int(np.argmax(bad))
            raise LogError(path, _row(rows, i), col, f"unparseable time {_show(s.iloc[i])} "
                                                     "(expected a number, epoch time, like the first row)")
        return t * kind[1] if kind[1] != 1.0 else t
    txt = s.astype(str)
    aware = _has_offset(txt).to_numpy()
    wrong = aware != kind[1]
    if wrong.any():
        i = int(np.argmax(wrong))
        what = "has a UTC offset" if aware[i] else "has no UTC offset"
        raise LogError(path, _row(rows, i), col, f"mixed time zones: {_show(s.iloc[i])} {what}, "
                                                 "unlike the first row; write every time with an offset (or none)")
    dt = pd.to_datetime(txt, format="ISO8601", utc=True, errors="coerce")
    bad = dt.isna().to_numpy() | s.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise LogError(path, _row(rows, i), col, f"unparseable time {_show(s.iloc[i])} (expected ISO-8601 "
                                                 "like 2024-01-31T12:00:00Z, or epoch seconds)")
    return (dt - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)


def _show(v) -> str:
    text = repr(v) if not isinstance(v, float) or not math.isnan(v) else "(empty)"
    return text if len(text) <= 40 else text[:37] + "..."


def hash_keys(values, path, col, first_row, int_mode: bool) -> np.ndarray:
    """64-bit hashes of a chunk of keys (pandas' hash_array: SipHash of the value); integer
    keys hash as integers, any other key as its text."""
    import pandas as pd
    s = pd.Series(values)
    if int_mode:
        if s.dtype.kind not in "iu":
            num = pd.to_numeric(s, errors="coerce")
            ok = num.notna().to_numpy() & (num.to_numpy(dtype=float) == np.round(num.to_numpy(dtype=float)))
            i = int(np.argmax(~ok)) if not ok.all() else None
            if i is not None:
                raise LogError(path, first_row + i, col, f"key {_show(s.iloc[i])} is not an integer, "
                                                         "unlike the keys before it (quote all keys as text)")
            s = num.astype(np.int64)
        return pd.util.hash_array(s.to_numpy(dtype=np.int64), categorize=False)
    miss = s.isna().to_numpy()
    if miss.any():
        i = int(np.argmax(miss))
        raise LogError(path, first_row + i, col, "empty key")
    return pd.util.hash_array(s.astype(str).to_numpy(dtype=object), categorize=False)


class _Progress:
    """Bytes read over total bytes, as mlarch.progress.Bar shows it on stderr (a bar on a
    terminal, a line per quarter otherwise)."""

    def __init__(self, total: int, label: str, enabled: bool):
        from .progress import Bar
        self.total = max(total, 1)
        self.bar = Bar(label) if enabled else None

    def update(self, done_bytes: int) -> None:
        if self.bar is not None:
            self.bar.update(done_bytes / self.total)

    def close(self):
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


class _FieldCount(io.RawIOBase):
    """A binary stream that counts the commas of each line it passes on and keeps the first
    line (from 1) whose count differs from the header's: pandas reading only some columns
    (`usecols`) drops a row's extra fields and fills missing ones without a word. Lines are
    rows while no field is quoted; the count stops at the line of the first quote character (a
    quoted field may hold commas and line breaks). Empty lines are left to the reader."""

    def __init__(self, raw):
        self.raw = raw
        self.line = 1                # the line the next byte belongs to
        self.open_commas = 0         # commas so far on that line
        self.open_bytes = 0          # its bytes so far, carriage returns aside
        self.expected: int | None = None
        self.bad: tuple[int, int] | None = None     # (line, fields) of the first ragged line
        self.checking = True

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = self.raw.readinto(buf)
        if n and self.checking and self.bad is None:
            self._count(np.frombuffer(buf, np.uint8, n))
        elif not n and self.checking and self.bad is None and self.open_bytes:
            self._line(self.open_commas, self.line)       # a last line with no line feed
        return n

    def _count(self, b: np.ndarray) -> None:
        q = b.tobytes().find(b'"')
        if q >= 0:              # count the lines ended before the first quote, then stop
            self.checking = False
            before = np.flatnonzero(b[:q] == 0x0A)
            b = b[:before[-1] + 1] if before.size else b[:0]
        nl = np.flatnonzero(b == 0x0A)
        done = nl.size                      # lines ended in this block; the last one is open
        # commas per line: each comma's line by binary search over the line feeds (a pass or
        # two over the bytes: a cumulative count over every byte cost 10 ns a byte)
        per = np.bincount(np.searchsorted(nl, np.flatnonzero(b == 0x2C)), minlength=done + 1)
        per[0] += self.open_commas
        if self.expected is None and done:
            self.expected = int(per[0])
        if self.expected is not None:
            for i in np.flatnonzero(per[:done] != self.expected).tolist():
                if self._has_content(b, nl, i):
                    self.bad = (self.line + i, int(per[i]) + 1)
                    break
        last = nl[-1] + 1 if done else 0
        tail = b[last:]
        self.open_bytes = ((self.open_bytes if not done else 0)
                           + int(tail.size - np.count_nonzero(tail == 0x0D)))
        self.line += done
        self.open_commas = int(per[done])

    def _has_content(self, b: np.ndarray, nl: np.ndarray, i: int) -> bool:
        """Whether line i of this block (ended by nl[i]) holds more than carriage returns."""
        seg = b[(nl[i - 1] + 1 if i else 0):nl[i]]
        return bool(np.count_nonzero(seg != 0x0D)) or (i == 0 and self.open_bytes > 0)

    def _line(self, commas: int, line: int) -> None:
        if self.expected is not None and commas != self.expected:
            self.bad = (line, commas + 1)


def _chunks(path: Path, columns: list[str], chunk_rows: int, on_bytes):
    """Yield (first_row, {column: values}) chunks of a CSV (optionally .gz) or Parquet file.
    first_row is the CSV line of the chunk's first row (header = 1) or the Parquet row (from 1)."""
    import pandas as pd
    src = str(path)
    if not path.exists():
        raise LogError(src, None, None, "no such file")
    if path.is_dir():
        raise LogError(src, None, None, "is a directory, not a log file")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise LogError(src, None, None, "reading Parquet needs pyarrow: pip install 'mlarch[fit]'") from None
        try:
            pf = pq.ParquetFile(src)
        except Exception as e:  # pyarrow raises its own error types for a corrupt file
            raise LogError(src, None, None, f"not a readable Parquet file: {_oneline(e)}") from None
        names = pf.schema_arrow.names
        for c in columns:
            if c not in names:
                raise LogError(src, 1, c, f"no such column (columns: {', '.join(names)})")
        if pf.metadata.num_rows == 0:
            raise LogError(src, 1, None, "empty log (no rows)")
        row = 1
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=columns):
            data = {}
            for c in columns:
                col = batch.column(c)
                import pyarrow as pa
                if pa.types.is_timestamp(col.type):
                    tz = col.type.tz
                    v = col.cast(pa.timestamp("ns", tz=tz)).to_numpy(zero_copy_only=False).astype("int64") / 1e9
                    data[c] = pd.Series(v)
                else:
                    data[c] = col.to_pandas()
            yield row, data
            row += batch.num_rows
            on_bytes(int(path.stat().st_size * min(1.0, row / max(pf.metadata.num_rows, 1))))
        return
    raw = open(path, "rb")
    try:
        fh = gzip.GzipFile(fileobj=raw) if path.suffix.lower() == ".gz" else raw
        try:
            header = pd.read_csv(fh, nrows=0)
        except pd.errors.EmptyDataError:
            raise LogError(src, 1, None, "empty file (no header row)") from None
        except (UnicodeDecodeError, gzip.BadGzipFile, EOFError, OSError) as e:
            raise LogError(src, 1, None, f"not a readable CSV file: {_oneline(e)}") from None
        names = [str(c) for c in header.columns]
        for c in columns:
            if c not in names:
                raise LogError(src, 1, c, f"no such column in the header (columns: {', '.join(names)})")
        fh.seek(0)
        counted = _FieldCount(fh)
        reader = pd.read_csv(io.BufferedReader(counted), usecols=columns, chunksize=chunk_rows,
                             skip_blank_lines=False, low_memory=False)
        row, any_rows = 2, False

        def ragged(last_row: int) -> None:
            if counted.bad is not None and counted.bad[0] <= last_row:
                line, fields = counted.bad
                raise LogError(src, line, None, f"malformed CSV: {fields} fields where the header "
                                                f"has {counted.expected + 1}")
        try:
            for chunk in reader:
                ragged(row + len(chunk) - 1)
                any_rows = any_rows or len(chunk) > 0
                yield row, {c: chunk[c] for c in columns}
                row += len(chunk)
                on_bytes(raw.tell())
        except pd.errors.ParserError as e:
            m = re.search(r"line (\d+)", str(e))
            raise LogError(src, int(m.group(1)) if m else row, None, f"malformed CSV: {_oneline(e)}") from None
        except UnicodeDecodeError as e:
            raise LogError(src, _bad_utf8_line(path) or row, None, f"not UTF-8 text: {_oneline(e)}") from None
        except (gzip.BadGzipFile, EOFError, OSError) as e:
            raise LogError(src, row, None, f"not a readable CSV file: {_oneline(e)}") from None
        if not any_rows:
            raise LogError(src, 2, None, "empty log (a header but no rows)")
    finally:
        raw.close()


def _bad_utf8_line(path: Path) -> int | None:
    """The first line (from 1) that is not UTF-8: pandas names only the chunk, this is read
    again on the error path alone."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            for i, line in enumerate(fh, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    return i
    except (OSError, EOFError):
        return None
    return None


def _oneline(e) -> str:
    return " ".join(str(e).split())[:200]


def _check_sorted(t: np.ndarray, prev: float, path, col, first_row) -> None:
    bad = np.diff(t, prepend=prev) < 0
    if bad.any():
        i = int(np.argmax(bad))
        raise LogError(path, first_row + i, col, f"time goes backwards ({t[i]:.6f} after "
                                                 f"{(t[i - 1] if i else prev):.6f} in epoch seconds); "
                                                 "sort the log by time")


def scan_requests(paths: list[Path], time_col: str, key_col: str, chunk_rows: int = CHUNK_ROWS,
                  max_keys: int = MAX_EXACT_KEYS, progress: bool = False) -> RequestScan:
    """One pass over the request logs (each sorted by time; files in any order)."""
    scan = RequestScan(files=[str(p) for p in paths], keys=KeyTable(bound=max_keys))
    total = sum(p.stat().st_size for p in paths if p.exists() and p.is_file())
    bar = _Progress(total, "fit: reading", progress)
    kind = int_mode = None
    done_before = 0
    try:
        for p in paths:
            prev = -math.inf
            for row, data in _chunks(p, [time_col, key_col], chunk_rows,
                                     lambda b: bar.update(done_before + b)):
                tv, kv = data[time_col], data[key_col]
                if len(tv) == 0:
                    continue
                if kind is None:
                    kind, scan.time_format = _time_kind(tv.iloc[:10000], p, time_col, row)
                    int_mode = kv.dtype.kind in "iu"
                t = parse_times(tv, kind, p, time_col, row)
                _check_sorted(t, prev, p, time_col, row)
                prev = float(t[-1])
                h = hash_keys(kv, p, key_col, row, int_mode)
                scan.add_times(t)
                scan.add_keys(h)
            done_before += p.stat().st_size
    finally:
        bar.close()
    scan.keys_are = "integers" if int_mode else "text"
    return scan


@dataclass
class LabelScan:
    """What one pass over a label log keeps: delay histogram and unlabelled example times."""
    file: str
    rows: int = 0
    t_min: float = math.inf
    t_max: float = -math.inf      # latest time seen (example or label): the log's end
    t_max_example: float = -math.inf
    time_format: str = ""
    events: np.ndarray = None     # labelled examples per delay bin
    delay_sum_s: np.ndarray = None   # sum of their delays per bin (the bin's mean delay reports a quantile)
    pending: list = field(default_factory=list)   # example times of unlabelled rows


def delay_edges_s() -> np.ndarray:
    """Bin edges of label delays: [0, 1 ms), then 0.1%-wide log bins up to 20 years."""
    k = int(math.ceil(math.log(DELAY_MAX_S / DELAY_MIN_S) / math.log(DELAY_BIN_RATIO)))
    return np.concatenate([[0.0], DELAY_MIN_S * DELAY_BIN_RATIO ** np.arange(k + 1)])


def delay_bins(d_s: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(edges, d_s, side="right") - 1, 0, edges.size - 2)


def scan_labels(path: Path, time_col: str, label_time_col: str, chunk_rows: int = CHUNK_ROWS) -> LabelScan:
    """One pass over a label log: rows (example time, label time); an empty label time means
    the label had not arrived when the log ends (right-censored)."""
    edges = delay_edges_s()
    scan = LabelScan(file=str(path), events=np.zeros(edges.size - 1, np.int64),
                     delay_sum_s=np.zeros(edges.size - 1))
    kind = None
    prev = -math.inf
    for row, data in _chunks(path, [time_col, label_time_col], chunk_rows, lambda b: None):
        tv, lv = data[time_col], data[label_time_col]
        if len(tv) == 0:
            continue
        if kind is None:
            kind, scan.time_format = _time_kind(tv.iloc[:10000], path, time_col, row)
        t = parse_times(tv, kind, path, time_col, row)
        _check_sorted(t, prev, path, time_col, row)
        prev = float(t[-1])
        has = lv.notna().to_numpy() & (lv.astype(str).str.strip() != "").to_numpy()
        if has.any():
            idx = np.nonzero(has)[0]
            lab = parse_times(lv[has], kind, path, label_time_col, row + idx)
            d = lab - t[idx]
            if (d < 0).any():
                i = int(idx[np.argmax(d < 0)])
                raise LogError(path, row + i, label_time_col, "label time is before the example time")
            bins = delay_bins(d, edges)
            scan.events += np.bincount(bins, minlength=scan.events.size)
            scan.delay_sum_s += np.bincount(bins, weights=d, minlength=scan.events.size)
            scan.t_max = max(scan.t_max, float(np.max(lab)))
        if (~has).any():
            scan.pending.append(t[~has])
        scan.rows += t.size
        scan.t_min = min(scan.t_min, float(t[0]))
        scan.t_max = max(scan.t_max, float(t[-1]))
        scan.t_max_example = max(scan.t_max_example, float(t[-1]))
    if kind is None:
        raise LogError(path, 2, None, "empty log (a header but no rows)")
    return scan


# ========================================================================= estimators

def harmonic_regression(counts: np.ndarray, t_start_s: np.ndarray, exposure_s: np.ndarray,
                        period_s: float = DAY_S) -> dict:
    """Rate and daily amplitude from counts per time bin.

    Model (the simulator's, scenarios.schema.Traffic): counts_i ≈ w_i·(a + b sin ωt_i + c cos ωt_i),
    fitted by weighted least squares on counts_i/w_i with weights w_i (Poisson variance ∝ w_i),
    t_i the bin's midpoint. rate = a; amplitude A = √(b²+c²)/a. Standard errors use the
    residual variance (quasi-Poisson, so overdispersion widens them). The amplitude interval
    inverts the Rice distribution of |(b, c)|/a (the exact law of the norm of a bivariate
    normal with isotropic variance; the larger eigenvalue of its covariance is used, which
    is conservative when the log does not cover whole days). Dispersion = Pearson χ²/(n−3)
    against the fitted means (1 for Poisson arrivals).
    Source: harmonic (cosinor) regression, Bliss 1970; Rice 1944 for |N₂(μ, σ²I)|."""
    from scipy import optimize, stats
    w = exposure_s
    tm = t_start_s + w / 2
    om = 2 * math.pi / period_s
    X = np.column_stack([np.ones_like(tm), np.sin(om * tm), np.cos(om * tm)])
    y = counts / w
    sw = np.sqrt(w)
    beta, *_ = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)
    mu = np.maximum(X @ beta, 1e-12) * w
    n, k = counts.size, 3
    pearson = float(np.sum((counts - mu) ** 2 / mu)) / max(n - k, 1)
    xtwx_inv = np.linalg.inv((X * w[:, None]).T @ X)
    # WLS with Var(y_i) = φ·λ_i/w_i ≈ φ·a/w_i: cov = φ·a·(XᵀWX)⁻¹
    cov = pearson * max(beta[0], 1e-12) * xtwx_inv
    a, b, c = beta
    se_a = math.sqrt(cov[0, 0])
    # v = (b/a, c/a); Jacobian of v in (a, b, c)
    J = np.array([[-b / a ** 2, 1 / a, 0], [-c / a ** 2, 0, 1 / a]])
    cv = J @ cov @ J.T
    sig = math.sqrt(max(float(np.linalg.eigvalsh(cv).max()), 1e-300))
    amp = math.hypot(b, c) / a
    x = amp / sig

    def cdf(nu):
        return stats.rice.cdf(x, nu) if nu > 0 else stats.rayleigh.cdf(x)
    # the interval for ν = A/σ: {ν : 0.025 <= F(x; ν) <= 0.975}; F decreases in ν
    # (when even ν = 0 puts x below its 2.5% point the set is empty; report [0, 0])
    lo = 0.0 if cdf(0.0) <= 0.975 else optimize.brentq(lambda nu: cdf(nu) - 0.975, 0.0, x + 10)
    hi = 0.0 if cdf(0.0) <= 0.025 else optimize.brentq(lambda nu: cdf(nu) - 0.025, 0.0, x + 10)
    return {"rate_per_s": float(a), "rate_ci95": [float(a - Z95 * se_a), float(a + Z95 * se_a)],
            "amplitude": float(amp), "amplitude_ci95": [float(lo * sig), float(hi * sig)],
            "amplitude_se": sig, "dispersion": pearson, "bins": int(n),
            "dispersion_ci95_if_poisson": [float(stats.chi2.ppf(0.025, n - k) / (n - k)),
                                           float(stats.chi2.ppf(0.975, n - k) / (n - k))]}


def flat_rate(counts: np.ndarray, exposure_s: np.ndarray) -> dict:
    """Rate of a log too short for a daily curve: Σcounts/Σexposure, with a quasi-Poisson
    95% interval (Poisson variance times the Pearson dispersion of the bins)."""
    from scipy import stats
    T, n = float(exposure_s.sum()), float(counts.sum())
    rate = n / T
    mu = np.maximum(rate * exposure_s, 1e-12)
    k = counts.size
    disp = float(np.sum((counts - mu) ** 2 / mu)) / max(k - 1, 1)
    se = math.sqrt(max(disp, 1e-12) * n) / T
    return {"rate_per_s": rate, "rate_ci95": [rate - Z95 * se, rate + Z95 * se], "amplitude": None,
            "amplitude_ci95": None, "dispersion": disp, "bins": k,
            "dispersion_ci95_if_poisson": [float(stats.chi2.ppf(0.025, k - 1) / (k - 1)),
                                           float(stats.chi2.ppf(0.975, k - 1) / (k - 1))]}


def regression_bins(scan: RequestScan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts, start times and exposures of about TARGET_BINS bins covering [t_min, t_max]."""
    span = scan.t_max - scan.t_min
    group = max(1, int(math.ceil(span / scan.bin_s / TARGET_BINS)))
    c = scan.counts
    pad = (-c.size) % group
    c = np.concatenate([c, np.zeros(pad, np.int64)]).reshape(-1, group).sum(axis=1)
    width = scan.bin_s * group
    start = (scan.bin0 * scan.bin_s) + width * np.arange(c.size)
    lo = np.maximum(start, scan.t_min)
    hi = np.minimum(start + width, scan.t_max if span > 0 else scan.t_max + 1.0)
    exp = hi - lo
    keep = exp > width * 1e-3            # drop slivers at the ends (their counts stay tiny)
    return c[keep].astype(float), lo[keep], exp[keep]


def good_turing_unseen(n1: float, n: float) -> float:
    """Probability that the next request is a key never seen so far: n₁/n (Good 1953)."""
    return n1 / n if n > 0 else 1.0


def chao1(d: float, n1: float, n2: float) -> dict:
    """Chao1 lower bound on the number of distinct keys and its 95% interval.

    Bias-corrected form D + n₁(n₁−1)/(2(n₂+1)) (Chao 1987; Colwell et al. 2012), variance
    from Chao 1987 and the log-normal interval D + f₀/C .. D + f₀·C with
    C = exp(1.96·√(ln(1 + var/f₀²))), which never falls below D."""
    f0 = n1 * (n1 - 1) / (2 * (n2 + 1))
    est = d + f0
    if n1 <= 0 or f0 <= 0:
        return {"value": d, "ci95": [d, d]}
    r = n1 / max(n2, 1.0)
    var = max(n2, 1.0) * (r ** 4 / 4 + r ** 3 + r ** 2 / 2)
    C = math.exp(Z95 * math.sqrt(math.log(1 + var / f0 ** 2)))
    return {"value": est, "ci95": [d + f0 / C, d + f0 * C]}


def unseen_slope(curve: list) -> float | None:
    """Log-log slope of the Good–Turing unseen mass against log size over the last two
    doublings (≥ 3 points with n₁ > 0), or None when too few points.

    An unbounded Zipf key space with rank exponent s > 1 gives slope 1/s − 1 ∈ (−1, 0), and
    ≈ 0 for s <= 1 (Karlin 1967: distinct keys grow as n^(1/s)); a bounded key space, once
    the log has seen it, falls faster than 1/n."""
    pts = [(n, n1 / n) for n, _, n1 in curve if n1 > 0]
    if len(pts) < 3:
        return None
    pts = pts[-3:]
    x = np.log([p[0] for p in pts])
    y = np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def power_law_mle(x_vals: np.ndarray, mult: np.ndarray, x_min: int) -> tuple[float, float, int]:
    """Maximum-likelihood exponent α of the discrete power law P(x) = x^−α/ζ(α, x_min) on the
    frequencies x >= x_min (given as distinct values and multiplicities), its standard error
    from the observed Fisher information, and the tail size. Clauset, Shalizi & Newman 2009,
    SIAM Review 51(4), eqs. 3.5 and 3.6 (solved numerically, not by the 1/2 approximation)."""
    from scipy import optimize, special
    sel = x_vals >= x_min
    xs, ms = x_vals[sel].astype(float), mult[sel].astype(float)
    n = float(ms.sum())
    slog = float(np.sum(ms * np.log(xs)))

    def nll(a):
        return n * math.log(special.zeta(a, x_min)) + a * slog
    r = optimize.minimize_scalar(nll, bounds=(1.0 + 1e-6, 30.0), method="bounded",
                                 options={"xatol": 1e-9})
    a = float(r.x)
    h = 1e-4 * max(1.0, a - 1.0)
    lz = lambda v: math.log(special.zeta(v, x_min))  # noqa: E731
    d2 = (lz(a + h) - 2 * lz(a) + lz(a - h)) / h ** 2 if a - h > 1 else math.nan
    se = 1.0 / math.sqrt(n * d2) if d2 > 0 else math.nan
    return a, se, int(n)


def power_law_ks(x_vals, mult, x_min, a) -> float:
    """KS distance between the tail's empirical CDF and the fitted discrete power law."""
    from scipy import special
    sel = x_vals >= x_min
    xs, ms = x_vals[sel].astype(float), mult[sel].astype(float)
    emp = np.cumsum(ms) / ms.sum()
    fit = 1.0 - special.zeta(a, xs + 1) / special.zeta(a, x_min)
    return float(np.max(np.abs(emp - fit)))


def poisson_power_law_loglik(a: float, xs: np.ndarray, ms: np.ndarray, x_min: int) -> float:
    """Log-likelihood of frequencies x >= x_min (values xs, multiplicities ms) when each key's
    request rate follows a continuous power law of exponent α and its count is Poisson:
    P(x) = (α−1)·Γ(x_min)·Γ(x+1−α) / (Γ(x_min+1−α)·Γ(x+1)), the normalised Poisson mixture
    ∫ Pois(x; λ) λ^−α dλ (a Waring/Yule–Simon form; Simon 1955). It tends to the discrete power
    law x^−α for large x, but keeps the curvature Poisson counting adds at small x, which
    biases the plain discrete power law's α upward when x_min is small. Needs α < x_min + 1."""
    from scipy.special import gammaln
    n = float(ms.sum())
    return (float(np.sum(ms * (gammaln(xs + 1 - a) - gammaln(xs + 1))))
            + n * (math.log(a - 1) + gammaln(x_min) - gammaln(x_min + 1 - a)))


def poisson_power_law_mle(x_vals, mult, x_min: int) -> tuple[float, float, float, int]:
    """(α̂, SE from the observed Fisher information, KS distance, tail size) at x_min."""
    from scipy import optimize
    from scipy.special import gammaln
    sel = x_vals >= x_min
    xs, ms = x_vals[sel].astype(float), mult[sel].astype(float)
    hi = min(30.0, x_min + 1 - 1e-6)
    r = optimize.minimize_scalar(lambda a: -poisson_power_law_loglik(a, xs, ms, x_min),
                                 bounds=(1.0 + 1e-6, hi), method="bounded", options={"xatol": 1e-10})
    a = float(r.x)
    h = 1e-4
    if a - h <= 1.0 or a + h >= x_min + 1:
        return a, math.nan, math.inf, int(ms.sum())
    f = lambda v: poisson_power_law_loglik(v, xs, ms, x_min)  # noqa: E731
    d2 = (f(a + h) - 2 * f(a) + f(a - h)) / h ** 2
    se = 1.0 / math.sqrt(-d2) if d2 < 0 else math.nan
    # P(X >= x+1) = Γ(x_min)Γ(x+2−α) / (Γ(x_min+1−α)Γ(x+1)), so the CDF at x is one minus it
    cdf = 1.0 - np.exp(gammaln(x_min) + gammaln(xs + 2 - a) - gammaln(x_min + 1 - a) - gammaln(xs + 1))
    ks = float(np.max(np.abs(np.cumsum(ms) / ms.sum() - cdf)))
    return a, se, ks, int(ms.sum())


def fit_power_law(x_vals: np.ndarray, mult: np.ndarray, min_tail: int = 50, max_candidates: int = 120) -> dict | None:
    """The CSN 2009 procedure (§3.3) on key frequencies: for each candidate x_min (values
    leaving at least `min_tail` keys, the first `max_candidates`), α by maximum likelihood of
    the Poisson-observed power law (poisson_power_law_loglik); x_min minimises the KS
    distance. Also reports the plain discrete power law (CSN eq. 3.5, power_law_mle) at the
    same x_min for comparison. None when fewer than `min_tail` keys were seen twice or more.
    Candidates start at 2 (see below)."""
    if mult[x_vals >= 2].sum() < min_tail:
        return None
    tail = np.cumsum(mult[::-1])[::-1]
    # x_min >= 2: singletons are where the rank law's finite-size corrections (and, in real
    # logs, one-off junk keys) concentrate; at x_min = 1 the fit is pinned by n1/D alone and
    # its tiny SE hides that bias (s = 1.1 unbounded: 4.6 SE off)
    cands = x_vals[(tail >= min_tail) & (x_vals >= 2)][:max_candidates]
    best = None
    for xm in cands:
        a, se, ks, nt = poisson_power_law_mle(x_vals, mult, int(xm))
        if math.isfinite(se) and (best is None or ks < best["ks_distance"]):
            best = {"alpha": a, "alpha_se": se, "x_min": int(xm), "n_tail": nt, "ks_distance": ks}
    if best is None:
        return None
    a0, se0, _ = power_law_mle(x_vals, mult, best["x_min"])
    best["plain_discrete_power_law"] = {"alpha": a0, "alpha_se": se0,
                                        "ks_distance": power_law_ks(x_vals, mult, best["x_min"], a0)}
    return best


def vuong_lognormal(x_vals, mult, x_min, alpha) -> dict:
    """Vuong's normalised log-likelihood ratio of the fitted (Poisson-observed) power law
    against a discretised lognormal fitted to the same tail x >= x_min (CSN 2009 §5.1,
    Vuong 1989). R > 0 favours the power law; p is the two-sided significance of the sign."""
    from scipy import optimize, stats
    from scipy.special import gammaln
    sel = x_vals >= x_min
    xs, ms = x_vals[sel].astype(float), mult[sel].astype(float)
    n = ms.sum()
    lp = (math.log(alpha - 1) + gammaln(x_min) - gammaln(x_min + 1 - alpha)
          + gammaln(xs + 1 - alpha) - gammaln(xs + 1))

    def ll_ln(par):
        mu, ls = par
        sg = math.exp(ls)
        up = stats.norm.logsf((np.log(xs) - mu) / sg)
        up1 = stats.norm.logsf((np.log(xs + 1) - mu) / sg)
        norm = stats.norm.logsf((math.log(x_min) - mu) / sg)
        with np.errstate(divide="ignore"):
            return up + np.log1p(-np.exp(np.minimum(up1 - up, -1e-300))) - norm
    lx = np.log(xs)
    m0 = float(np.sum(ms * lx) / n)
    s0 = float(math.sqrt(max(np.sum(ms * (lx - m0) ** 2) / n, 1e-4)))
    r = optimize.minimize(lambda p: -float(np.sum(ms * ll_ln(p))), [m0, math.log(s0)],
                          method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-6, "maxiter": 2000})
    ll = ll_ln(r.x)
    d = lp - ll
    R = float(np.sum(ms * d))
    mean = R / n
    sd = math.sqrt(max(float(np.sum(ms * (d - mean) ** 2) / n), 1e-300))
    z = R / (sd * math.sqrt(n)) if sd > 1e-9 * max(abs(mean), 1.0) else 0.0
    p = float(math.erfc(abs(z) / math.sqrt(2)))
    return {"loglik_ratio": R, "z": float(z), "p": p,
            "lognormal_mu": float(r.x[0]), "lognormal_sigma": float(math.exp(r.x[1]))}


def top_share_observed(counts: np.ndarray, k: int) -> float:
    """Share of (sampled) requests that went to the k most frequent (sampled) keys."""
    if counts.size == 0:
        return 0.0
    top = np.partition(counts, counts.size - k)[counts.size - k:] if k < counts.size else counts
    return float(top.sum() / counts.sum())


def poisson_rate_ci(n: int, t_s: float) -> tuple[float, list]:
    """Rate n/T and its exact (Garwood 1936) 95% interval."""
    from scipy import stats
    lo = stats.chi2.ppf(0.025, 2 * n) / 2 if n > 0 else 0.0
    hi = stats.chi2.ppf(0.975, 2 * n + 2) / 2
    return n / t_s, [float(lo / t_s), float(hi / t_s)]


def kaplan_meier(events: np.ndarray, censored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan–Meier survival after each bin and Greenwood's variance of log S, from counts of
    events and of right-censored observations per ordered bin (censorings in a bin count as
    at risk for that bin's events). Kaplan & Meier 1958; Greenwood 1926."""
    at_risk = np.cumsum((events + censored)[::-1])[::-1].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(at_risk > 0, events / at_risk, 0.0)
        S = np.cumprod(1.0 - h)
        g = np.where((at_risk - events) > 0, events / (at_risk * (at_risk - events)), 0.0)
    return S, np.cumsum(g)


def km_quantile(edges, S, var_log, q: float, bin_mean_s=None) -> dict:
    """q-quantile of the delay (first bin where S <= 1 − q) with a 95% interval from the
    log-log pointwise band of S (Kalbfleisch & Prentice 1980; Brookmeyer & Crowley 1982):
    the lower end where the band's lower edge crosses 1 − q, the upper end where its upper
    edge does. Bins are reported by their edges, so the interval contains the bin's whole width."""
    target = 1.0 - q
    with np.errstate(divide="ignore", invalid="ignore"):
        lS = np.log(S)
        se = np.sqrt(var_log) / np.abs(lS)
        lo_band = np.where((S > 0) & (S < 1), S ** np.exp(-Z95 * se), S)
        hi_band = np.where((S > 0) & (S < 1), S ** np.exp(Z95 * se), S)
    lo_band, hi_band = np.minimum(lo_band, hi_band), np.maximum(lo_band, hi_band)

    def first(arr):
        i = np.nonzero(arr <= target + 1e-12)[0]
        return int(i[0]) if i.size else None
    i, i_lo, i_hi = first(S), first(lo_band), first(hi_band)
    if i is None:
        return {"value_s": None, "ci95_s": [float(edges[i_lo]) if i_lo is not None else None, None]}
    mid = (float(bin_mean_s[i]) if bin_mean_s is not None and np.isfinite(bin_mean_s[i]) else
           0.0 if i == 0 else math.sqrt(edges[i] * edges[i + 1]))
    return {"value_s": mid, "ci95_s": [float(edges[i_lo]) if i_lo is not None else 0.0,
                                       float(edges[i_hi + 1]) if i_hi is not None else None]}


# =========================================================================== the fit

RATE_METHOD = ("harmonic regression of counts per bin on a 24h sinusoid (weighted least "
               "squares; rate = a; 95% interval a ± 1.96·SE with quasi-Poisson SE)")
FLAT_METHOD = ("requests over the log's span (under 6h: no daily curve); 95% interval with "
               "quasi-Poisson SE (Poisson variance times the bins' Pearson dispersion)")
AMP_METHOD = ("harmonic regression: amplitude = sqrt(b^2+c^2)/a; 95% interval by inverting the "
              "Rice distribution of the fitted (b, c)/a")
CARD_METHOD = ("distinct keys {how}; Good-Turing unseen mass n1/n; Chao1 lower bound "
               "(Chao 1987, log-normal 95% interval); bounded only when the unseen mass falls faster "
               "than 1/n over the last two doublings of the log")
ZIPF_METHOD = ("maximum likelihood of the power law of key frequencies (Clauset, Shalizi & Newman "
               "2009: x_min by KS distance), the law written for Poisson counts of power-law key rates "
               "P(x) ~ Gamma(x+1-alpha)/Gamma(x+1); s = 1/(alpha-1); 95% interval alpha +- 1.96 SE "
               "(observed Fisher information)")
VEL_METHOD = "labelled examples per second over the label log's span; exact Poisson (Garwood) 95% interval"
DELAY_METHOD = ("Kaplan-Meier on (label time - example time), unlabelled rows right-censored at the "
                "log's end; the median is written; 95% interval from the log-log Greenwood band")


def _interval(v) -> list:
    return [float(x) if x is not None else None for x in v]


def estimate_traffic(scan: RequestScan, sample: float = 1.0) -> tuple[dict, list]:
    """Estimates of the traffic block from a request scan; (estimates, warnings)."""
    from scenarios.popularity import zipf_coverage
    warnings: list[str] = []
    est: dict = {}
    span = scan.t_max - scan.t_min
    if scan.rows < 2 or span <= 0:
        raise LogError(scan.files[0], None, None, "the log spans no time (need at least two distinct times)")
    c, t0, w = regression_bins(scan)
    hr = harmonic_regression(c, t0, w) if span >= MIN_DIURNAL_SPAN_S else flat_rate(c, w)
    r_lo, r_hi = hr["rate_ci95"]
    est["traffic.rate"] = {"value": hr["rate_per_s"] / sample, "unit": "1/s",
                           "model": "24h harmonic" if hr["amplitude"] is not None else "flat (log under 6h)",
                           "ci95": [r_lo / sample, r_hi / sample],
                           "method": RATE_METHOD if hr["amplitude"] is not None else FLAT_METHOD,
                           "written": f"{hr['rate_per_s'] / sample:.6g}/s", "bins": hr["bins"],
                           "bin_s": float(np.median(w))}
    amp = min(hr["amplitude"] or 0.0, 0.99)
    if hr["amplitude"] is not None:
        est["traffic.diurnal_amplitude"] = {"value": hr["amplitude"], "ci95": hr["amplitude_ci95"],
                                            "method": AMP_METHOD, "written": round(amp, 4)}
    else:
        est["traffic.diurnal_amplitude"] = None
        warnings.append(f"the log spans {span / 3600:.3g}h, under {MIN_DIURNAL_SPAN_S / 3600:.0f}h: the daily swing "
                        "cannot be told from it; traffic.rate is the mean over the log and "
                        "diurnal_amplitude is taken from the base scenario")
    if hr["amplitude"] is not None and hr["amplitude"] >= 1:
        warnings.append(f"diurnal amplitude {hr['amplitude']:.2f} >= 1 (traffic stops at night?): "
                        "the scenario language needs < 1; wrote 0.99")
    if MIN_DIURNAL_SPAN_S <= span < 0.95 * DAY_S:
        warnings.append(f"the log spans {span / 3600:.3g}h, less than a day: the daily amplitude is "
                        "poorly identified (see its interval)")
    disp = hr["dispersion"]
    lo, hi = hr["dispersion_ci95_if_poisson"]
    est["traffic.dispersion"] = {"value": disp, "poisson_range95": [lo, hi], "written": None,
                                 "method": "Pearson chi^2/(bins-3) of counts per bin around the fitted "
                                           "curve (1 for Poisson arrivals)"}
    if sample < 1:
        pass  # thinning a Poisson process keeps it Poisson; no adjustment
    if disp > max(hi, 1.5) or disp < min(lo, 0.67):
        warnings.append(f"arrivals are far from Poisson: dispersion {disp:.2f} per "
                        f"{est['traffic.rate']['bin_s']:.3g}s bin (Poisson: 1, 95% range {lo:.2f}-{hi:.2f}); "
                        "the simulator assumes Poisson arrivals, so queueing figures will be optimistic"
                        if disp > 1 else "; the simulator assumes Poisson arrivals")

    k = scan.keys
    p = k.fraction
    n = scan.rows
    d_obs = k.distinct()
    n1, n2 = k.n_with_count(1), k.n_with_count(2)
    gt = good_turing_unseen(n1, n)
    scan._checkpoint() if not scan.curve or scan.curve[-1][0] != n else None
    slope = unseen_slope(scan.curve)
    bounded = (n1 == 0) or (slope is not None and slope < -1.0)
    if k.exact:
        how = f"counted exactly (up to {k.bound:,} distinct keys)"
        d_ci = [d_obs, d_obs]
        d_method = "exact"
    else:
        how = (f"beyond {k.bound:,} distinct keys: Apache DataSketches HyperLogLog (lg_k {HLL_LG_K}, HLL_8) "
               f"estimate with the sketch's own 95% bounds; key frequencies (n1, n2, the Zipf fit) from a "
               f"hash sample of {k.keys.size:,} keys (fraction {p:.3g} of the key space)")
        d_ci = [float(k.hll.get_lower_bound(2)), float(k.hll.get_upper_bound(2))]
        d_method = "hyperloglog"
    ch = chao1(d_obs, n1, n2)
    if not k.exact:
        # Chao1's interval is conditional on D: widen it by the sketch's interval on D
        ch["ci95"] = [ch["ci95"][0] + d_ci[0] - d_obs, ch["ci95"][1] + d_ci[1] - d_obs]
    card = {"value": (math.ceil(ch["value"]) if bounded else None),
            "ci95": ([math.floor(ch["ci95"][0]), math.ceil(ch["ci95"][1])] if bounded else None),
            "written": (int(math.ceil(ch["value"])) if bounded else "unbounded"),
            "bounded": bool(bounded), "distinct_observed": d_obs, "distinct_ci95": d_ci,
            "distinct_method": d_method, "exact": k.exact, "sample_fraction": p, "memory_bound_keys": k.bound,
            "unseen_mass": gt, "unseen_mass_slope": slope,
            "unseen_mass_curve": [{"requests": int(a), "distinct": float(b), "unseen_mass": float(c_ / a)}
                                  for a, b, c_ in scan.curve],
            "chao1": ch["value"], "chao1_ci95": ch["ci95"], "method": CARD_METHOD.format(how=how)}
    if not k.exact:
        # the hash sample's own count, a cross-check of the sketch (relative error ~1/sqrt(keys kept))
        card["distinct_hash_sample"] = k.keys.size / p
    if sample < 1:
        card["note"] = (f"the log is a {sample:.3g} sample of requests: distinct keys and unseen mass "
                        "describe the sample")
    est["traffic.cardinality"] = card
    if not bounded:
        why = ("too few points to tell" if slope is None else
               f"the unseen mass {gt:.3g} falls as n^{slope:.2f}, slower than 1/n")
        warnings.append(f"key space looks unbounded ({why}): wrote cardinality: unbounded "
                        f"({d_obs:,.0f} distinct keys seen, Chao1 lower bound {ch['value']:,.0f})")

    x_vals, mult = k.freq_of_freq()
    pl = fit_power_law(x_vals, mult)
    if pl is None or not math.isfinite(pl["alpha_se"]):
        est["traffic.peakedness.zipf_s"] = None
        warnings.append("fewer than 50 keys were seen more than once: popularity is flat over this "
                        "log and its Zipf exponent cannot be fitted; zipf_s taken from the base scenario")
    else:
        a, se = pl["alpha"], pl["alpha_se"]
        s = 1.0 / (a - 1.0)
        s_lo = 1.0 / (a + Z95 * se - 1.0)
        s_hi = 1.0 / (a - Z95 * se - 1.0) if a - Z95 * se > 1 else math.inf
        s_w = min(s, 10.0)
        kk = max(1, int(math.ceil(0.01 * k.keys.size)))
        obs_share = top_share_observed(k.counts, kk)
        kk_all = kk / p
        n_keys = card["value"] if bounded else None
        fit_share = zipf_coverage(kk_all, n_keys, s_w) if (n_keys is not None or s_w > 1) else 0.0
        ln = vuong_lognormal(x_vals, mult, pl["x_min"], a)
        zest = {"value": s, "ci95": [s_lo, s_hi], "written": round(s_w, 4), "method": ZIPF_METHOD,
                "alpha": a, "alpha_se": se, "alpha_ci95": [a - Z95 * se, a + Z95 * se],
                "x_min": pl["x_min"], "n_tail": pl["n_tail"], "ks_distance": pl["ks_distance"],
                "plain_discrete_power_law": pl["plain_discrete_power_law"],
                "top_share": {"keys_fraction": 0.01, "keys": kk_all, "observed": obs_share,
                              "fitted": fit_share},
                "lognormal_comparison": ln}
        est["traffic.peakedness.zipf_s"] = zest
        if abs(fit_share - obs_share) > 0.1:
            warnings.append(f"the fitted law gives the top 1% of keys {fit_share:.0%} of requests but the log "
                            f"shows {obs_share:.0%}" + (": the key space is probably bounded at a size this log "
                                                        f"cannot pin down (Chao1 lower bound {ch['value']:,.0f})"
                                                        if not bounded else ""))
        if ln["loglik_ratio"] < 0 and ln["p"] < 0.1:
            warnings.append(f"a lognormal fits the key frequencies clearly better than a power law "
                            f"(Vuong z = {ln['z']:.2f}, p = {ln['p']:.2g}): zipf_s is a rough summary")
        if s > 10:
            warnings.append(f"fitted zipf_s {s:.3g} is above the scenario limit 10: wrote 10")
    return est, warnings


def estimate_labels(ls: LabelScan, sample: float = 1.0) -> tuple[dict, list]:
    """data.velocity and data.label_delay from a label-log scan; (estimates, warnings)."""
    warnings: list[str] = []
    span = ls.t_max - ls.t_min
    if ls.rows < 1 or span <= 0:
        raise LogError(ls.file, None, None, "the label log spans no time")
    # velocity: examples over the span of example times (every row is an example that gets a label)
    ex_span = max(ls.t_max_example - ls.t_min, 1e-9)
    v, v_ci = poisson_rate_ci(ls.rows, ex_span)
    est = {"data.velocity": {"value": v / sample, "unit": "1/s", "ci95": [x / sample for x in v_ci],
                             "written": f"{v / sample:.6g}/s", "method": VEL_METHOD}}
    edges = delay_edges_s()
    pend = np.concatenate(ls.pending) if ls.pending else np.zeros(0)
    cens = np.bincount(delay_bins(np.maximum(ls.t_max - pend, 0.0), edges), minlength=edges.size - 1) \
        if pend.size else np.zeros(edges.size - 1, np.int64)
    S, var = kaplan_meier(ls.events, cens)
    with np.errstate(invalid="ignore", divide="ignore"):
        bin_mean = ls.delay_sum_s / ls.events
    med, p90 = km_quantile(edges, S, var, 0.5, bin_mean), km_quantile(edges, S, var, 0.9, bin_mean)
    n_ev = int(ls.events.sum())
    written = med["value_s"]
    if written is None:
        warnings.append("fewer than half of the examples are labelled by the log's end: the median "
                        "label delay is beyond the log; label_delay taken from the base scenario")
    est["data.label_delay"] = {"value": written, "unit": "s", "ci95": _interval(med["ci95_s"]),
                               "median_s": med["value_s"], "median_ci95_s": _interval(med["ci95_s"]),
                               "p90_s": p90["value_s"], "p90_ci95_s": _interval(p90["ci95_s"]),
                               "labelled": n_ev, "censored": int(pend.size),
                               "written": (f"{written:.6g}s" if written is not None else None),
                               "method": DELAY_METHOD,
                               "survival": _survival_points(edges, S)}
    if n_ev == 0:
        warnings.append("no row of the label log has a label time")
    return est, warnings


def _survival_points(edges, S, max_points: int = 400) -> list:
    """The KM step function thinned to at most max_points (for figures and JSON)."""
    change = np.nonzero(np.diff(np.concatenate([[1.0], S])) != 0)[0]
    if change.size > max_points:
        change = change[np.linspace(0, change.size - 1, max_points).astype(int)]
    return [[float(edges[i + 1]), float(S[i])] for i in change]


# ------------------------------------------------------------------ the scenario

FITTED_TRAFFIC = ("traffic.rate", "traffic.diurnal_amplitude", "traffic.cardinality",
                  "traffic.peakedness.zipf_s")
FITTED_LABELS = ("data.velocity", "data.label_delay")


def _leaf_paths(d, prefix=""):
    out = []
    for k, v in d.items():
        p = f"{prefix}{k}"
        if isinstance(v, dict) and v and not ("distribution" in v):
            out += _leaf_paths(v, p + ".")
        else:
            out.append(p)
    return out


def base_mapping(spec: str) -> tuple[dict, str]:
    """The raw YAML mapping of a preset or scenario file (validated first), and its name."""
    from scenarios import load_scenario
    from scenarios.loader import parse_yaml_text, preset_names, preset_text, read_text
    load_scenario(spec)
    if spec in preset_names() and not Path(spec).exists():
        return parse_yaml_text(preset_text(spec), spec)[0], f"preset {spec}"
    return parse_yaml_text(read_text(Path(spec)), spec)[0], spec


def _fmt_ci(lo, hi, unit=""):
    f = lambda v: "inf" if v is None or (isinstance(v, float) and math.isinf(v)) else f"{v:.4g}{unit}"  # noqa: E731
    return f"[{f(lo)}, {f(hi)}]"


def build_scenario(est: dict, base: dict, base_name: str, name: str, logs: list[str],
                   label_log: str | None, base_zipf_s: float | None = None) -> tuple[str, list, list]:
    """The fitted scenario as commented YAML text; (text, fitted paths, taken paths)."""
    import copy

    import yaml
    data = copy.deepcopy(base)
    data["name"] = name
    data["description"] = f"fitted by mlarch fit from {', '.join(Path(x).name for x in logs)}"[:200]
    fitted = []
    tr = data.setdefault("traffic", {})
    comments = {}

    def put(section, key, path, value, comment):
        section[key] = value
        fitted.append(path)
        comments[path] = comment
    r = est["traffic.rate"]
    put(tr, "rate", "traffic.rate", r["written"], f"fitted: 95% CI {_fmt_ci(*r['ci95'], '/s')}; harmonic regression")
    a = est["traffic.diurnal_amplitude"]
    if a is not None:
        put(tr, "diurnal_amplitude", "traffic.diurnal_amplitude", a["written"],
            f"fitted: 95% CI {_fmt_ci(*a['ci95'])}; harmonic regression, Rice interval")
    c = est["traffic.cardinality"]
    seen = f"{c['distinct_observed']:,.0f} distinct seen" + (
        " (HyperLogLog estimate, 95% [{:,.0f}, {:,.0f}])".format(*c["distinct_ci95"])
        if c["distinct_method"] == "hyperloglog" else " (counted exactly)")
    cc = (f"fitted: Chao1, 95% CI [{c['ci95'][0]:,}, {c['ci95'][1]:,}]; {seen}"
          if c["bounded"] else f"fitted: unseen mass {c['unseen_mass']:.3g} not falling like a bounded "
                               f"space; {seen}")
    put(tr, "cardinality", "traffic.cardinality", c["written"], cc)
    z = est.get("traffic.peakedness.zipf_s")
    if z is None and isinstance(tr.get("peakedness"), dict) and "top_share" in tr["peakedness"] \
            and base_zipf_s is not None:
        # top_share needs a finite cardinality, which the fit may have replaced: keep the
        # base's popularity as the exponent it resolves to
        tr["peakedness"] = {"zipf_s": round(base_zipf_s, 6)}
        comments["traffic.peakedness.zipf_s"] = f"taken from {base_name} (its top_share, as zipf_s)"
    if z is not None:
        tr["peakedness"] = {}
        put(tr["peakedness"], "zipf_s", "traffic.peakedness.zipf_s", z["written"],
            f"fitted: 95% CI {_fmt_ci(*z['ci95'])}; power-law MLE (CSN 2009), x_min {z['x_min']}")
    if label_log is not None:
        dd = data.setdefault("data", {})
        v = est["data.velocity"]
        put(dd, "velocity", "data.velocity", v["written"], f"fitted: 95% CI {_fmt_ci(*v['ci95'], '/s')}")
        ld = est["data.label_delay"]
        if ld["written"] is not None:
            p90 = "beyond the log" if ld["p90_s"] is None else f"{ld['p90_s']:.4g}s"
            put(dd, "label_delay", "data.label_delay", ld["written"],
                f"fitted: Kaplan-Meier median, 95% CI {_fmt_ci(*ld['ci95'], 's')}; p90 {p90}")
    taken = [p for p in _leaf_paths(data) if p not in fitted and p not in ("name", "description")]
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=200, allow_unicode=True)
    for p in taken:
        comments.setdefault(p, f"taken from {base_name}")
    text = _annotate(text, comments)
    head = [f"# Fitted by `mlarch fit` from {', '.join(logs)}" + (f" and labels {label_log}" if label_log else ""),
            f"# Fitted (from the log): {', '.join(fitted)}",
            f"# Taken from {base_name}: every other field",
            "# Methods and intervals: mlarch fit ... --json (keys in docs/json.md)"]
    for p in fitted:
        e = est[p]
        head.append(f"#   {p}: {e['method']}")
    return "\n".join(head) + "\n" + text, fitted, taken


def _annotate(text: str, comments: dict) -> str:
    """Append `# comment` to the YAML lines of the given dotted paths (block style, 2-space indent)."""
    out, stack = [], []
    for line in text.splitlines():
        m = re.match(r"^( *)([A-Za-z_][A-Za-z0-9_]*):", line)
        if m:
            depth = len(m.group(1)) // 2
            stack = stack[:depth] + [m.group(2)]
            path = ".".join(stack)
            if path in comments:
                line = f"{line}  # {comments[path]}"
        out.append(line)
    return "\n".join(out) + "\n"


@dataclass
class Fit:
    scenario_text: str
    doc: dict
    scan: RequestScan
    labels: LabelScan | None


def fit(logs: list[Path], time_col: str = "time", key_col: str = "key", labels: Path | None = None,
        label_time_col: str = "label_time", label_example_col: str | None = None,
        base: str = "spam", name: str = "fitted", sample: float = 1.0,
        max_keys: int = MAX_EXACT_KEYS, progress: bool = False, chunk_rows: int = CHUNK_ROWS) -> Fit:
    """Read the logs, estimate, and build the scenario text and the JSON document.
    Raises LogError (bad log) or ScenarioError (bad base scenario)."""
    from scenarios import load_scenario
    base_map, base_name = base_mapping(base)
    scan = scan_requests(logs, time_col, key_col, chunk_rows=chunk_rows, max_keys=max_keys, progress=progress)
    est, warns = estimate_traffic(scan, sample)
    ls = None
    if labels is not None:
        ls = scan_labels(labels, label_example_col or time_col, label_time_col, chunk_rows=chunk_rows)
        e2, w2 = estimate_labels(ls, sample=sample)
        est.update(e2)
        warns += w2
    text, fitted, taken = build_scenario(est, base_map, base_name, name, [str(x) for x in logs],
                                         str(labels) if labels else None,
                                         base_zipf_s=load_scenario(base).traffic.zipf_s)
    # the written file must load: check it now, before anything is written
    import tempfile

    from scenarios.errors import ScenarioError
    with tempfile.TemporaryDirectory() as td:
        p = Path(td) / "fitted.yaml"
        p.write_text(text)
        try:
            load_scenario(p)
        except ScenarioError as e:
            msg = str(e).split(": ", 1)[-1]
            raise LogError(base, None, None, f"the fitted values do not fit this base scenario: {msg} "
                                             "(use another --from)") from None
    doc = {"base": base_name, "fitted": fitted, "taken": taken,
           "input": {"files": [str(x) for x in logs], "rows": scan.rows, "time_format": scan.time_format,
                     "keys_are": scan.keys_are, "span_s": scan.t_max - scan.t_min,
                     "t_start": scan.t_min, "t_end": scan.t_max, "log_sample": sample,
                     "memory_bound_keys": max_keys,
                     "label_log": (None if ls is None else {"file": ls.file, "rows": ls.rows,
                                                            "span_s": ls.t_max - ls.t_min})},
           "estimates": est, "warnings": warns}
    return Fit(text, doc, scan, ls)


def counts_per_hour(scan: RequestScan) -> tuple[np.ndarray, np.ndarray]:
    """(hour start times, counts) for figures (hours cut by the log's ends are scaled up)."""
    width = max(3600.0, scan.bin_s)
    t = (scan.bin0 + np.arange(scan.counts.size)) * scan.bin_s
    origin = math.floor(scan.t_min / width) * width
    h = np.floor((t - origin) / width).astype(np.int64)
    c = np.bincount(h, weights=scan.counts.astype(float))
    starts = origin + width * np.arange(c.size)
    exp = np.minimum(starts + width, scan.t_max) - np.maximum(starts, scan.t_min)
    return starts, c * width / np.maximum(exp, 1e-9)



# ========================================================================= the fit record
# `mlarch fit -o X.yaml` also writes X.fit.json: the --json document plus the little data the
# figures need (hourly counts, a thinned rank-frequency curve), so that `mlarch report X.yaml`
# can draw the fit's figures without the log. The scenario schema is untouched.

RECORD_SUFFIX = ".fit.json"
RANK_POINTS = 800                 # rank-frequency points kept (log-spaced ranks)


def record_path(scenario_path: Path) -> Path:
    """mine.yaml -> mine.fit.json (beside the scenario)."""
    p = Path(scenario_path)
    stem = p.name[: -len(p.suffix)] if p.suffix.lower() in (".yaml", ".yml") else p.name
    return p.with_name(stem + RECORD_SUFFIX)


def figure_data(scan: RequestScan) -> dict:
    """What the fit's figures draw besides the estimates, small whatever the log's length."""
    starts, c = counts_per_hour(scan)
    counts = np.sort(scan.keys.counts)[::-1]
    idx = (np.unique(np.geomspace(1, counts.size, RANK_POINTS).astype(np.int64)) - 1
           if counts.size else np.zeros(0, np.int64))
    return {"rows": scan.rows, "t_start": scan.t_min, "t_end": scan.t_max,
            "counts_per_hour": {"start": starts.tolist(), "requests": c.tolist()},
            "rank_frequency": {"rank": ((idx + 1) / scan.keys.fraction).tolist(),
                               "requests": counts[idx].tolist(), "sample_fraction": scan.keys.fraction}}


def fit_record(res: Fit) -> dict:
    """The sidecar document: the --json document, figure data and the scenario text's hash."""
    import hashlib
    return dict(res.doc, figure_data=figure_data(res.scan),
                scenario_sha256=hashlib.sha256(res.scenario_text.encode()).hexdigest())


def load_record(scenario: str) -> tuple[dict | None, str | None]:
    """(record, note) for a scenario file with a fit record beside it; (None, None) when there
    is none (a preset, a hand-written scenario); (None, why) when it cannot be read."""
    import hashlib
    import json
    p = Path(scenario)
    if not p.is_file():
        return None, None
    rp = record_path(p)
    if not rp.is_file():
        return None, None
    try:
        rec = json.loads(rp.read_text())
        rec["estimates"], rec["figure_data"]["counts_per_hour"], rec["figure_data"]["rank_frequency"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"{rp}: not a readable fit record ({_oneline(e)})"
    note = None
    if rec.get("scenario_sha256") != hashlib.sha256(p.read_bytes()).hexdigest():
        note = f"{p.name} was edited after the fit: the figures show the fit as recorded in {rp.name}"
    return rec, note
