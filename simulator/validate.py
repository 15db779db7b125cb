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

Every statistical threshold is set for a stated false-alarm rate (`FALSE_ALARM_RATE`, 0.5% per
batch and check kind, split over the features the check covers) at the batch's row count and
the reference's, from the statistic's null distribution (`thresholds.py`, with sources):
values outside the reference range (Beta-binomial count), the Jensen–Shannon divergence of a
numeric feature's histogram on bins at the reference's order statistics (Dirichlet-multinomial,
exact for any continuous law) and the L∞ distance of a categorical feature's shares
(posterior-predictive Dirichlet-multinomial). The schema checks (columns, types, presence)
cannot fire on clean data. A category never seen in the reference is flagged as unexpected; a
clean batch does so only when the reference missed a category of share q, with probability
(1 − q)^m for m reference rows (< 1e-6 for the 5% segments and m ≥ 300).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import thresholds as th
from .thresholds import FALSE_ALARM_RATE, HIST_BINS

METADATA = ("y", "_t")


@dataclass(frozen=True)
class NumericRef:
    lo: float                # reference range [X(1), X(m)]
    hi: float
    edges: np.ndarray        # bin edges: the reference's order statistics at `order_stat_ranks`
    shares: np.ndarray       # reference share of each bin
    m: int                   # reference values


@dataclass(frozen=True)
class Reference:
    """Schema and distribution inferred from the reference (historical) data."""
    numeric: dict        # name -> NumericRef
    categorical: dict    # name -> (domain set, shares array over codes, counts tuple over the domain)
    dtypes: dict         # name -> numpy dtype kind


def infer_reference(columns: dict) -> Reference:
    numeric, categorical, dtypes = {}, {}, {}
    for name, v in columns.items():
        if name in METADATA:
            continue
        dtypes[name] = v.dtype.kind
        if v.dtype.kind == "f":
            x = np.sort(v[np.isfinite(v)])
            m = x.size
            ranks = th.order_stat_ranks(m, HIST_BINS)
            counts = th.spacing_counts(m, ranks)
            counts[0] -= 1
            numeric[name] = NumericRef(float(x[0]), float(x[-1]), x[ranks - 1], counts / m, m)
        else:
            codes, counts = np.unique(v, return_counts=True)
            size = int(codes.max()) + 1
            shares = np.zeros(size)
            shares[codes] = counts / v.size
            categorical[name] = (set(codes.tolist()), shares, tuple(int(c) for c in counts))
    return Reference(numeric, categorical, dtypes)


def _js(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence (base 2, in [0, 1])."""
    return float(th.js_divergence_rows(p, q)[0])


def validate(columns: dict, ref: Reference, false_alarm_rate: float = FALSE_ALARM_RATE) -> list[str]:
    """Anomaly names (with the feature) found in a batch; empty means the batch is clean.
    Each statistical check flags a clean batch with probability ≤ `false_alarm_rate`."""
    out = []
    names = [n for n in columns if n not in METADATA]
    expected = set(ref.dtypes)
    for n in sorted(expected - set(names)):
        out.append(f"SCHEMA_MISSING_COLUMN:{n}")
    for n in sorted(set(names) - expected):
        out.append(f"SCHEMA_NEW_COLUMN:{n}")
    a_num = false_alarm_rate / max(1, len(ref.numeric))
    a_cat = false_alarm_rate / max(1, len(ref.categorical))
    for n in names:
        if n not in expected:
            continue
        v = columns[n]
        if v.dtype.kind != ref.dtypes[n]:
            out.append(f"UNEXPECTED_DATA_TYPE:{n}")
            continue
        if n in ref.numeric:
            r = ref.numeric[n]
            present = np.isfinite(v)
            complete = bool(present.all())
            if not complete:
                out.append(f"FEATURE_TYPE_LOW_FRACTION_PRESENT:{n}")
            vv = v[present]
            if vv.size == 0 or r.m < 2:
                continue
            outside = int(np.count_nonzero((vv < r.lo) | (vv > r.hi)))
            if outside > th.outside_range_threshold(vv.size, r.m, a_num):
                out.append(f"FLOAT_TYPE_BIG_FLOAT:{n}")
            # a column with missing values is anomalous already; its distribution is checked
            # only when complete (the threshold is tabulated per row count)
            if complete:
                counts = np.bincount(np.searchsorted(r.edges, vv, side="right"), minlength=r.shares.size)
                if _js(counts / vv.size, r.shares) > th.js_threshold(vv.size, r.m, HIST_BINS, a_num):
                    out.append(f"COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH:{n}")
        elif n in ref.categorical:
            domain, shares, ref_counts = ref.categorical[n]
            codes, counts = np.unique(v, return_counts=True)
            if not set(codes.tolist()) <= domain:
                out.append(f"ENUM_TYPE_UNEXPECTED_STRING_VALUES:{n}")
            size = max(shares.size, int(codes.max()) + 1)
            p = np.zeros(size)
            p[codes] = counts / v.size
            q = np.zeros(size)
            q[: shares.size] = shares
            if np.max(np.abs(p - q)) > th.linf_threshold(int(v.size), ref_counts, a_cat):
                out.append(f"COMPARATOR_L_INFTY_HIGH:{n}")
    return out


def anomaly_kind(anomaly: str) -> str:
    """'SCHEMA_MISSING_COLUMN:f2' -> 'SCHEMA_MISSING_COLUMN'."""
    return anomaly.split(":", 1)[0]
