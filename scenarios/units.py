"""Unit syntax of the scenario language: durations, rates, sizes, fractions, counts.

Every parser takes the raw YAML value (str, int or float) and returns a float or int in
base units (seconds, per second, bytes, fraction in [0, 1]) or raises ValueError with a
message fit for a user.

One reading of `m` and `M`: `m` (or `min`) is minutes in durations and rates; `M` is millions,
and only in counts (`5M` keys). A duration written `5M` is refused with a hint rather than
guessed. Numbers use ASCII digits only: a full-width or other non-ASCII digit is refused
(Python's float() would silently accept it).
"""
from __future__ import annotations

import math
import re
import unicodedata

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
DURATION_UNITS_S = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0,
                    "h": 3600.0, "d": 86400.0, "w": 604800.0}
RATE_UNITS_S = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
SIZE_UNITS_B = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
                "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}

# re.ASCII: \d and \s match ASCII only, so "５d" is not a duration
_DURATION_RE = re.compile(rf"^\s*({_NUM})\s*([a-zA-Z]*)\s*$", re.ASCII)
_RATE_RE = re.compile(rf"^\s*({_NUM})\s*(?:/\s*([a-zA-Z]+))?\s*$", re.ASCII)
_PCT_RE = re.compile(rf"^\s*({_NUM})\s*%\s*$", re.ASCII)
_COUNT_RE = re.compile(rf"^\s*({_NUM})\s*([kMBT]?)\s*$", re.ASCII)
COUNT_SUFFIXES = {"": 1, "k": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}   # as format_count prints them
_MINUTES_HINT = "M means millions; write m or min for minutes"


def _ascii_digits(value: str) -> None:
    """Refuse digits outside 0-9 (full-width, Arabic-Indic, ...): they are easy to paste by
    accident and Python would read them as numbers."""
    for ch in value:
        if not ch.isascii() and unicodedata.category(ch) == "Nd":
            raise ValueError(f"{value!r} contains the non-ASCII digit {ch!r}; write digits 0-9")


def _finite(x: float, what: str) -> float:
    if not math.isfinite(x):
        raise ValueError(f"{what} must be a finite number, got {x!r}")
    return x


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected {what}, got {value!r}")
    if isinstance(value, (int, float)):
        return _finite(float(value), what)
    raise ValueError(f"expected {what}, got {value!r}")


MAX_DURATION_S = 3650 * 86400.0   # ten years: anything longer is a typo, not a plan


def parse_duration_s(value: object) -> float:
    """'250ms', '30s', '15m', '6h', '7d', '2w' or a bare number of seconds -> seconds, in
    [0, ten years]."""
    if isinstance(value, str):
        _ascii_digits(value)
        m = _DURATION_RE.match(value)
        if not m:
            raise ValueError(f"not a duration: {value!r} (write e.g. 250ms, 30s, 15m, 6h, 7d)")
        if m.group(2) == "M":
            raise ValueError(f"{value!r} is not a duration: {_MINUTES_HINT}")
        unit = m.group(2).lower() or "s"
        if unit not in DURATION_UNITS_S:
            raise ValueError(f"unknown duration unit {m.group(2)!r} in {value!r} "
                             f"(use one of {', '.join(DURATION_UNITS_S)})")
        x = _finite(float(m.group(1)), "a duration") * DURATION_UNITS_S[unit]
    else:
        x = _number(value, "a duration such as 30s")
    if x < 0:
        raise ValueError(f"a duration must be >= 0, got {value!r}")
    if x > MAX_DURATION_S:
        raise ValueError(f"a duration must be at most 3650d (ten years), got {value!r}")
    return x


def parse_rate_per_s(value: object) -> float:
    """'50/s', '3000/min', '1e6/h', '2e7/d' or a bare number per second -> per second (>= 0)."""
    if isinstance(value, str):
        _ascii_digits(value)
        m = _RATE_RE.match(value)
        if not m:
            raise ValueError(f"not a rate: {value!r} (write e.g. 50/s, 3000/min, 2e7/d)")
        if m.group(2) == "M":
            raise ValueError(f"{value!r} is not a rate: {_MINUTES_HINT} (e.g. 3000/min)")
        unit = (m.group(2) or "s").lower()
        if unit not in RATE_UNITS_S:
            raise ValueError(f"unknown rate unit {m.group(2)!r} in {value!r} "
                             f"(use /s, /min, /h or /d)")
        x = _finite(float(m.group(1)), "a rate") / RATE_UNITS_S[unit]
    else:
        x = _number(value, "a rate such as 50/s")
    if x < 0:
        raise ValueError(f"a rate must be >= 0, got {value!r}")
    return x


def parse_size_bytes(value: object) -> float:
    """'64', '1.5KB', '2GB', '4MiB' -> bytes (>= 0). Decimal KB/MB/GB; KiB/MiB/GiB binary."""
    if isinstance(value, str):
        _ascii_digits(value)
        m = _DURATION_RE.match(value)
        if not m:
            raise ValueError(f"not a size: {value!r} (write e.g. 64, 1.5KB, 2GB)")
        unit = (m.group(2) or "b").lower()
        if unit not in SIZE_UNITS_B:
            raise ValueError(f"unknown size unit {m.group(2)!r} in {value!r} (use B, KB, MB, GB, TB)")
        x = _finite(float(m.group(1)), "a size") * SIZE_UNITS_B[unit]
    else:
        x = _number(value, "a size such as 64 or 1.5KB")
    if x < 0:
        raise ValueError(f"a size must be >= 0, got {value!r}")
    return x


def parse_fraction(value: object) -> float:
    """0.4 or '40%' -> 0.4; must lie in [0, 1]."""
    if isinstance(value, str):
        _ascii_digits(value)
        m = _PCT_RE.match(value)
        if m:
            x = _finite(float(m.group(1)), "a percentage") / 100.0
        else:
            try:
                if not value.isascii():
                    raise ValueError
                x = _finite(float(value), "a fraction")
            except ValueError:
                raise ValueError(f"not a fraction: {value!r} (write e.g. 0.4 or 40%)") from None
    else:
        x = _number(value, "a fraction such as 0.4 or 40%")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"a fraction must lie between 0 and 1 (0% and 100%), got {value!r}")
    return x


def parse_count(value: object) -> int:
    """An integer, possibly written '1e9', 1e9, '5M' or '2.5k' (k, M, B, T: thousand to
    trillion); must be a whole number >= 0."""
    if isinstance(value, str):
        _ascii_digits(value)
        m = _COUNT_RE.match(value.replace("_", ""))
        if not m:
            raise ValueError(f"not a count: {value!r} (write e.g. 1000, 1e9 or 5M)")
        x = float(m.group(1)) * COUNT_SUFFIXES[m.group(2)]
    elif isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"a count must be >= 0, got {value!r}")
        return value
    else:
        x = _number(value, "a count such as 1000 or 1e9")
    _finite(x, "a count")
    if x < 0:
        raise ValueError(f"a count must be >= 0, got {value!r}")
    if x != int(x):
        raise ValueError(f"a count must be a whole number, got {value!r}")
    return int(x)


def format_duration(seconds: float) -> str:
    """Human form of a duration: 0.25 -> '250ms', 90 -> '1.5m', 86400 -> '1d'."""
    if seconds is None or math.isinf(seconds):
        return "never"
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds * 1e3:.3g}ms"


def format_bytes(n: float) -> str:
    """Human form of a size in decimal units: 77e6 -> '77 MB'."""
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def format_count(n: float) -> str:
    """Human form of a count: 1.2e6 -> '1.2M'."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.3g}"
