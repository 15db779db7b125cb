"""simulator.serve against brute force (issue 18, item 5; docs/testing.md): the FIFO pool
against a per-request simulation that scans every server, queue lengths by counting, the
Scorer and the Table against the model on materialised features."""

import numpy as np
import pytest

from simulator import serve
from simulator.serve import ReplicaPool, Scorer, Table, batch_predict
from simulator.traffic import KeyFeatures
from simulator.train import Model
from simulator.transform import Standardize


def _model(d, seed=0):
    rng = np.random.default_rng(seed)
    return Model(3, Standardize(rng.normal(0, 0.1, d), rng.uniform(0.8, 1.2, d)), rng.standard_normal(d),
                 0.1, 0.0, 0.0, 1000.0)


def _fifo_brute(free, arrivals, services):
    """c servers with the given free times; each request in arrival order takes the server free
    earliest (a linear scan) and starts at max(arrival, that time)."""
    free = list(free)
    starts = []
    for a, s in zip(arrivals, services):
        k = min(range(len(free)), key=lambda i: free[i])
        st = max(a, free[k])
        starts.append(st)
        free[k] = st + s
    return np.array(starts), sorted(free)


@pytest.mark.parametrize("c", [1, 3])
def test_pool_starts_and_state_across_windows_equal_brute_force(c):
    rng = np.random.default_rng(c)
    arr = np.cumsum(rng.exponential(1.0, 400))
    svc = rng.exponential(0.9 * c, 400)
    pool = ReplicaPool(c, compiled=False)
    assert pool.replicas == c and pool.free_at.tolist() == [0.0] * c and pool.pending.size == 0
    got = np.concatenate([pool.serve(arr[:150], svc[:150]), pool.serve(arr[150:], svc[150:])])
    ref, free = _fifo_brute([0.0] * c, arr, svc)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    assert sorted(pool.free_at.tolist()) == pytest.approx(free, abs=1e-12)


def test_pool_without_replicas_refuses():
    with pytest.raises(ValueError, match="^no replicas$"):
        ReplicaPool(0, compiled=False).serve(np.array([1.0]), np.array([1.0]))


def test_restarted_pool_is_empty_with_the_same_size():
    pool = ReplicaPool(2, compiled=False)
    pool.serve(np.array([0.0, 0.1, 0.2]), np.array([5.0, 5.0, 5.0]))
    pool.queue_seen(np.array([0.0, 0.1, 0.2]), np.array([0.0, 0.1, 5.0]))
    fresh = pool.restarted(100.0)
    assert fresh is not pool and fresh.replicas == 2
    assert fresh.free_at.tolist() == [0.0, 0.0] and fresh.pending.size == 0
    np.testing.assert_array_equal(fresh.serve(np.array([1.0]), np.array([1.0])), [1.0])


def test_queue_seen_counts_waiting_requests_across_windows():
    # brute force: for arrival n, requests (this window or earlier) that arrived before it and
    # have not started by its arrival time
    rng = np.random.default_rng(5)
    arr = np.cumsum(rng.exponential(1.0, 300))
    svc = rng.exponential(1.8, 300)
    pool = ReplicaPool(2, compiled=False)
    starts = [pool.serve(arr[:100], svc[:100]), pool.serve(arr[100:], svc[100:])]
    pool2 = ReplicaPool(2, compiled=False)
    seen = np.concatenate([pool2.queue_seen(arr[:100], starts[0]), pool2.queue_seen(arr[100:], starts[1])])
    st = np.concatenate(starts)
    ref = np.array([np.sum((arr[:n] <= arr[n]) & (st[:n] > arr[n])) for n in range(arr.size)])
    np.testing.assert_array_equal(seen, ref)
    assert seen.max() >= 3                      # the case is a real queue
    # what is left pending after the last window: starts after the last arrival
    np.testing.assert_array_equal(np.sort(pool2.pending), np.sort(st[st > arr[-1]]))


def test_scorer_equals_model_on_materialised_features_and_skew():
    d = 6
    feats = KeyFeatures(np.random.default_rng(1), d)
    m = _model(d)
    keys = np.random.default_rng(2).integers(1, 10**9, 20_000).astype(np.uint64)
    i, j = feats.index(keys)
    x = feats.features(keys)
    margin = m.decision_function(x)
    clear = np.abs(margin) > 1e-9        # folding the transform into the weights changes rounding only
    sc = Scorer(m, feats)
    assert sc.model is m
    got = sc.predict(i, j)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got[clear], m.predict(x)[clear])
    # skew: serving multiplies feature 2 by 3.0 — the model applied to the skewed rows
    xs = x.copy()
    xs[:, 2] *= 3.0
    ms = m.decision_function(xs)
    ok = np.abs(ms) > 1e-9
    skewed = Scorer(m, feats, skew=(2, 3.0)).predict(i, j)
    np.testing.assert_array_equal(skewed[ok], m.predict(xs)[ok])
    assert np.any(skewed != got)
    # the unskewed scorer's weights are untouched by a skewed one built from the same model
    np.testing.assert_array_equal(Scorer(m, feats).predict(i, j), got)


def test_scorer_boundary_is_plus_one():
    d = 2
    feats = KeyFeatures(np.random.default_rng(3), d)
    m = Model(1, Standardize(np.zeros(d), np.ones(d)), np.zeros(d), 0.0, 0.0, 0.0, 1.0)
    assert Scorer(m, feats).predict(np.array([0, 1]), np.array([2, 3])).tolist() == [1, 1]


def test_batch_predict_and_table_equal_the_model(monkeypatch):
    # small chunks so that several chunk boundaries are crossed
    monkeypatch.setattr(serve, "BATCH_CHUNK_KEYS", 64)
    d = 4
    feats = KeyFeatures(np.random.default_rng(4), d)
    m = _model(d, 1)
    k = 64 * 3 + 5
    ref = m.predict(feats.features(np.arange(1, k + 1, dtype=np.uint64)))
    # leave a freed buffer of k non-label bytes behind: np.empty may hand it back to batch_predict,
    # so a key no chunk writes shows up as 5 instead of passing by the luck of recycled memory
    junk = np.full(k, 5, dtype=np.int8)
    del junk
    out = batch_predict(m, feats, k)
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, ref)
    table = Table(k, m, feats, 12.5)
    assert table.keys == k and table.model is m and table.ready_at_s == 12.5
    rng = np.random.default_rng(5)
    read = []
    for n in (1, 7, 300, 300):
        keys = rng.integers(1, k + 1, n).astype(np.uint64)
        read.append(keys)
        got = table.lookup(keys)
        assert got.dtype == np.int8
        np.testing.assert_array_equal(got, ref[keys.astype(np.int64) - 1])
    edge = np.array([1, k, 64, 65, k, 1], dtype=np.uint64)
    np.testing.assert_array_equal(table.lookup(edge), ref[edge.astype(np.int64) - 1])
    # every key read, and no other, has its row computed (the packed bits of k = 8·24 + 5 keys)
    assert table.rows_computed() == np.unique(np.concatenate(read + [edge])).size


def test_table_computes_rows_only_when_read():
    d = 3
    feats = KeyFeatures(np.random.default_rng(6), d)
    calls = []

    class Counting:
        def predict(self, x):
            calls.append(len(x))
            return np.ones(len(x), dtype=np.int8)
    t = Table(1000, Counting(), feats, 0.0)
    t.lookup(np.array([5, 5, 7], dtype=np.uint64))
    t.lookup(np.array([7, 5], dtype=np.uint64))
    assert calls == [2]                      # keys 5 and 7 once each; the second read computes nothing
    assert t.rows_computed() == 2


@pytest.mark.parametrize("k", [1, 63, 64, 65, 130])
def test_batch_predict_any_size(monkeypatch, k):
    monkeypatch.setattr(serve, "BATCH_CHUNK_KEYS", 64)
    feats = KeyFeatures(np.random.default_rng(7), 3)
    m = _model(3, 2)
    ref = m.predict(feats.features(np.arange(1, k + 1, dtype=np.uint64)))
    junk = np.full(k, 5, dtype=np.int8)
    del junk
    np.testing.assert_array_equal(batch_predict(m, feats, k), ref)


def test_a_table_beyond_the_row_limit_scores_reads_with_its_model_and_keeps_no_rows(monkeypatch):
    # a table larger than DENSE_TABLE_KEYS (here lowered to 100) keeps no row bits: each read is
    # the filling model's prediction on the key's features, through the Scorer's projections
    monkeypatch.setattr(serve, "DENSE_TABLE_KEYS", 100)
    d = 4
    feats = KeyFeatures(np.random.default_rng(14), d)
    m = _model(d, 3)
    table = Table(101, m, feats, 0.0)
    keys = np.arange(1, 102, dtype=np.uint64)
    x = feats.features(keys)
    clear = np.abs(m.decision_function(x)) > 1e-9
    assert clear.sum() > 90
    np.testing.assert_array_equal(table.lookup(keys)[clear], m.predict(x)[clear])
    assert table.rows_computed() == 0
    small = Table(100, m, feats, 0.0)                   # at the limit: row bits
    small.lookup(keys[:7])
    assert small.rows_computed() == 7
