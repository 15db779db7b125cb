"""Validation: the course's six checks against a reference schema and distribution, with
TensorFlow Data Validation's anomaly names (docs/fidelity.md). An anomalous batch is
quarantined and never trained on.

| check                                   | anomaly                                              |
|-----------------------------------------|------------------------------------------------------|
| all expected features present           | SCHEMA_MISSING_COLUMN                                |
| no unexpected features                  | SCHEMA_NEW_COLUMN                                    |
| expected types                          | UNEXPECTED_DATA_TYPE                                 |
| expected fraction present (1.0)         | FEATURE_TYPE_LOW_FRACTION_PRESENT                    |
| values in the reference range / domain  | FLOAT_TYPE_BIG_FLOAT, ENUM_TYPE_UNEXPECTED_STRING_VALUES |
| distribution like the reference         | COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH (numeric), COMPARATOR_L_INFTY_HIGH (categorical) |

Distribution thresholds: JS > 0.1 and L∞ > 0.1 (TFDV/Evidently defaults). Batches of at
most 1000 rows use a KS test (numeric) and χ² (categorical) at p < 0.05/(number of
features) (Bonferroni), since divergences are noisy on few rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

JS_MAX = 0.1
LINF_MAX = 0.1
SMALL_BATCH_ROWS = 1000
RANGE_MARGIN = 0.5     # a value may exceed the reference range by half its width
HIST_BINS = 20
METADATA = ("y", "_t")


@dataclass(frozen=True)
class Reference:
    """Schema and distribution inferred from the reference (first historical) batch."""
    numeric: dict        # name -> (lo, hi, bin edges, bin shares, sample)
    categorical: dict    # name -> (domain set, shares array over codes)
    dtypes: dict         # name -> numpy dtype kind


def infer_reference(columns: dict) -> Reference:
    numeric, categorical, dtypes = {}, {}, {}
    for name, v in columns.items():
        if name in METADATA:
            continue
        dtypes[name] = v.dtype.kind
        if v.dtype.kind == "f":
            lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
            edges = np.quantile(v, np.linspace(0, 1, HIST_BINS + 1))
            edges[0], edges[-1] = -np.inf, np.inf
            shares = np.histogram(v, edges)[0] / v.size
            numeric[name] = (lo, hi, edges, shares, v[:2000].copy())
        else:
            codes, counts = np.unique(v, return_counts=True)
            size = int(codes.max()) + 1
            shares = np.zeros(size)
            shares[codes] = counts / v.size
            categorical[name] = (set(codes.tolist()), shares)
    return Reference(numeric, categorical, dtypes)


def _js(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1])."""
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = lambda a: np.nansum(np.where(a > 0, a * np.log2(a / m), 0.0))  # noqa: E731
    return float((kl(p) + kl(q)) / 2)


def validate(columns: dict, ref: Reference) -> list[str]:
    """Anomaly names (with the feature) found in a batch; empty means the batch is clean."""
    out = []
    names = [n for n in columns if n not in METADATA]
    expected = set(ref.dtypes)
    for n in sorted(expected - set(names)):
        out.append(f"SCHEMA_MISSING_COLUMN:{n}")
    for n in sorted(set(names) - expected):
        out.append(f"SCHEMA_NEW_COLUMN:{n}")
    rows = len(columns["y"])
    small = rows <= SMALL_BATCH_ROWS
    alpha = 0.05 / max(1, len(expected))
    for n in names:
        if n not in expected:
            continue
        v = columns[n]
        if v.dtype.kind != ref.dtypes[n]:
            out.append(f"UNEXPECTED_DATA_TYPE:{n}")
            continue
        if n in ref.numeric:
            present = np.isfinite(v)
            if present.mean() < 1.0:
                out.append(f"FEATURE_TYPE_LOW_FRACTION_PRESENT:{n}")
            vv = v[present]
            if vv.size == 0:
                continue
            lo, hi, edges, shares, sample = ref.numeric[n]
            margin = RANGE_MARGIN * (hi - lo)
            if vv.min() < lo - margin or vv.max() > hi + margin:
                out.append(f"FLOAT_TYPE_BIG_FLOAT:{n}")
            if small:
                from scipy import stats   # only small batches need it; keeps start-up light
                if stats.ks_2samp(vv, sample).pvalue < alpha:
                    out.append(f"COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH:{n}")
            elif _js(np.histogram(vv, edges)[0] / vv.size, shares) > JS_MAX:
                out.append(f"COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH:{n}")
        elif n in ref.categorical:
            domain, shares = ref.categorical[n]
            codes, counts = np.unique(v, return_counts=True)
            if not set(codes.tolist()) <= domain:
                out.append(f"ENUM_TYPE_UNEXPECTED_STRING_VALUES:{n}")
            size = max(shares.size, int(codes.max()) + 1)
            p = np.zeros(size)
            p[codes] = counts / v.size
            q = np.zeros(size)
            q[: shares.size] = shares
            if small:
                from scipy import stats
                expect = q * v.size
                ok = expect > 0
                if (p[~ok] > 0).any() or stats.chisquare(p[ok] * v.size, expect[ok] * (p[ok].sum() / q[ok].sum())).pvalue < alpha:
                    out.append(f"COMPARATOR_L_INFTY_HIGH:{n}")
            elif np.max(np.abs(p - q)) > LINF_MAX:
                out.append(f"COMPARATOR_L_INFTY_HIGH:{n}")
    return out


def anomaly_kind(anomaly: str) -> str:
    """'SCHEMA_MISSING_COLUMN:f2' -> 'SCHEMA_MISSING_COLUMN'."""
    return anomaly.split(":", 1)[0]
