"""simulator.train (the sufficient-statistics least-squares fit) and simulator.evaluate (the
deploy gate) against direct computations on the raw rows (issue 18, item 5; docs/testing.md).

References: the ridge solution computed from the materialised, weighted, standardised rows
with numpy, and the gate's two-standard-error rule evaluated by hand. Tolerances: 1e-9 relative
is float rounding of a 6×6 solve on well-conditioned data (condition number < 10)."""
import math

import numpy as np
import pytest

from simulator import train
from simulator.evaluate import GateResult, gate
from simulator.ingest import Batch
from simulator.train import RIDGE, Model, Stats, fit
from simulator.transform import Standardize

SOLVE = 1e-9


def _batch(rng, rows, d, nominal, start, end, index=0):
    x = rng.standard_normal((rows, d)) * np.arange(1, d + 1) + np.arange(d)   # unequal means/scales
    y = np.where(x @ np.linspace(1, -1, d) + 0.3 * rng.standard_normal(rows) > 0, 1, -1).astype(np.int8)
    cols = {f"f{i}": x[:, i] for i in range(d)}
    cols["y"] = y
    cols["_t"] = np.linspace(start, end, rows)
    return Batch(index, end, start, end, cols, float(nominal)), x, y


def _reference_fit(xs, ys, ws):
    """Weighted ridge on standardised features, from the rows: mean and population std with
    weights, coef = (ZᵀWZ + RIDGE·N·I)⁻¹ ZᵀWy, intercept = weighted mean of y."""
    x, y, w = np.concatenate(xs), np.concatenate(ys).astype(float), np.concatenate(ws)
    N = w.sum()
    mean = (w[:, None] * x).sum(0) / N
    std = np.sqrt((w[:, None] * (x - mean) ** 2).sum(0) / N)
    z = (x - mean) / std
    coef = np.linalg.solve(z.T @ (w[:, None] * z) + RIDGE * N * np.eye(x.shape[1]), z.T @ (w * y))
    return mean, std, coef, (w * y).sum() / N


def test_stats_of_rows_weighted_sums():
    rng = np.random.default_rng(1)
    b, x, y = _batch(rng, 400, 4, 2000, 10.0, 20.0)
    rows = np.arange(0, 400, 2)            # every other row: 200 rows, weight 2000/400 = 5
    s = Stats.of(b, rows, 4)
    w = 2000 / 400
    xr, yr = x[rows], y[rows].astype(float)
    assert s.n == pytest.approx(w * 200) and s.nominal == 2000.0
    assert (s.data_start_s, s.data_end_s) == (10.0, 20.0)
    np.testing.assert_allclose(s.sum_x, w * xr.sum(0), rtol=1e-12)
    np.testing.assert_allclose(s.sum_xx, w * xr.T @ xr, rtol=1e-12)
    assert s.sum_y == pytest.approx(w * yr.sum(), rel=1e-12)
    np.testing.assert_allclose(s.sum_xy, w * xr.T @ yr, rtol=1e-12)
    assert s.x is None and s.y is None


def test_stats_keeps_the_first_rows_when_asked():
    rng = np.random.default_rng(2)
    b, x, y = _batch(rng, 100, 3, 100, 0.0, 1.0)
    rows = np.arange(10, 60)
    s = Stats.of(b, rows, 3, keep_rows=7)
    np.testing.assert_array_equal(s.x, x[10:17])
    np.testing.assert_array_equal(s.y, y[10:17])
    assert s.y.dtype == np.int8


def test_fit_equals_weighted_ridge_on_the_rows():
    rng = np.random.default_rng(3)
    d = 6
    parts = [_batch(rng, 300, d, 900, 0.0, 60.0, 0), _batch(rng, 500, d, 500, 60.0, 120.0, 1),
             _batch(rng, 200, d, 1000, 120.0, 180.0, 2)]
    stats = [Stats.of(b, np.arange(b.rows), d) for b, _, _ in parts]
    m = fit(stats, version=7, trained_at_s=200.0)
    mean, std, coef, icpt = _reference_fit([x for _, x, _ in parts], [y for _, _, y in parts],
                                           [np.full(b.rows, b.weight) for b, _, _ in parts])
    np.testing.assert_allclose(m.transform.mean, mean, rtol=SOLVE)
    np.testing.assert_allclose(m.transform.scale, std, rtol=SOLVE)
    np.testing.assert_allclose(m.coef, coef, rtol=SOLVE)
    assert m.intercept == pytest.approx(icpt, rel=SOLVE)
    assert m.version == 7 and m.trained_at_s == 200.0
    assert m.data_end_s == 180.0                       # the newest batch's end, not the last listed
    assert m.examples == 2400.0
    m2 = fit(stats[::-1], version=1, trained_at_s=0.0)
    assert m2.data_end_s == 180.0


def test_model_predict_raw_weights_and_size():
    rng = np.random.default_rng(4)
    d = 5
    tr = Standardize(rng.standard_normal(d), rng.uniform(0.5, 2.0, d))
    coef = rng.standard_normal(d)
    m = Model(1, tr, coef, 0.25, 0.0, 0.0, 100.0)
    x = rng.standard_normal((1000, d))
    ref = ((x - tr.mean) / tr.scale) @ coef + 0.25
    np.testing.assert_allclose(m.decision_function(x), ref, rtol=1e-12, atol=1e-12)
    p = m.predict(x)
    assert p.dtype == np.int8 and set(np.unique(p)) <= {-1, 1}
    np.testing.assert_array_equal(p, np.where(ref >= 0, 1, -1))
    w, b = m.raw_weights()
    np.testing.assert_allclose(x @ w + b, ref, rtol=1e-10, atol=1e-12)
    assert isinstance(b, float)
    # d weights + bias + d means + d scales, 8 bytes each
    assert m.nbytes == 8 * (3 * d + 1)
    # a row exactly on the boundary is +1
    zero = Model(1, Standardize(np.zeros(2), np.ones(2)), np.array([1.0, -1.0]), 0.0, 0, 0, 1)
    assert zero.predict(np.array([[0.5, 0.5]])).tolist() == [1]


class _Fixed:
    """A model stand-in: its prediction for held-out row r is labels[r] (x holds row numbers)."""

    def __init__(self, labels):
        self.labels = np.asarray(labels)

    def predict(self, x):
        return self.labels[np.asarray(x, dtype=int)]


def test_gate_two_standard_errors_by_hand():
    n = 400
    y = np.ones(n, dtype=np.int8)

    def acc(k):      # predictions right on the first k rows
        return _Fixed(np.where(np.arange(n) < k, 1, -1))
    # live 0.80; new 0.75: SE = sqrt((.75·.25 + .8·.2)/400) = 0.02947, 0.80 − 2 SE = 0.7411 ≤ 0.75
    r = gate(acc(300), acc(320), np.arange(len(y)), y)
    assert r == GateResult(True, 0.75, 0.80, 400)
    # new 0.74 < 0.80 − 2·sqrt((.74·.26 + .16)/400) = 0.7404: rejected
    assert not gate(acc(296), acc(320), np.arange(len(y)), y).deploy
    # equal and better models pass
    rows = np.arange(n)
    assert gate(acc(320), acc(320), rows, y).deploy and gate(acc(330), acc(320), rows, y).deploy


def test_gate_boundary_is_inclusive():
    # both perfect: SE = 0 and acc_new = acc_live − 0 exactly: deployed (≥, not >)
    y = np.ones(50, dtype=np.int8)
    assert gate(_Fixed(y), _Fixed(y), np.arange(len(y)), y).deploy
    # both always wrong: SE = 0, 0 ≥ 0
    assert gate(_Fixed(-y), _Fixed(-y), np.arange(len(y)), y).deploy
    # new all wrong vs live all right: rejected
    assert not gate(_Fixed(-y), _Fixed(y), np.arange(len(y)), y).deploy


def test_gate_without_rows_or_live_model():
    r = gate(_Fixed([]), _Fixed([]), np.arange(0), np.array([]))
    assert r.deploy and r.rows == 0 and math.isnan(r.accuracy_new) and math.isnan(r.accuracy_live)
    y = np.array([1, 1, -1, -1])
    r = gate(_Fixed([1, -1, -1, -1]), None, np.arange(len(y)), y)
    assert r.deploy and r.accuracy_new == 0.75 and math.isnan(r.accuracy_live) and r.rows == 4


def test_ridge_constant_is_tiny():
    # the ridge only regularises a singular Gram matrix; it must not bias a well-posed fit
    assert 0 < train.RIDGE <= 1e-6
