"""The compiled data-plane kernels equal their pure-Python twins bit for bit, and a whole
simulation gives the same metrics with and without them; BLAS runs one thread per run."""
import heapq
import math

import numpy as np
import pytest

from scenarios import load_scenario
from scenarios.design import Design
from simulator import kernels, simulate
from simulator.engine import Simulation
from simulator.serve import ReplicaPool

pytestmark = pytest.mark.skipif(kernels._compiled() is None, reason="numba not installed")


def _queue(seed, n, c, rho):
    rng = np.random.default_rng(seed)
    service = rng.lognormal(math.log(0.02), 0.8, n)
    arrival = np.cumsum(rng.exponential(service.mean() / (rho * c), n))
    return arrival, service


@pytest.mark.parametrize("c", [1, 2, 7, 12, kernels.FIFO_SCAN_MAX, kernels.FIFO_SCAN_MAX + 1, 64])
def test_fifo_kernel_equals_python_twin_bit_for_bit_across_windows(c):
    arrival, service = _queue(c, 30_000, c, 0.95)
    pools = [ReplicaPool(c, compiled=True), ReplicaPool(c, compiled=False)]
    cuts = [(0, 1), (1, 5000), (5000, 5001), (5001, 30_000)]   # state carried between windows
    out = []
    for pool in pools:
        starts, seen = [], []
        for a, b in cuts:
            if a == 5000:
                # between windows the autoscaler and failures edit the free times with heapq,
                # which leaves a heap that is not sorted (small pools' loop sorts it first)
                h = sorted(pool.free_at.tolist(), reverse=True)
                heapq.heapify(h)
                pool.free_at = np.asarray(h)
                assert c < 3 or not np.all(np.diff(pool.free_at) >= 0)
            st = pool.serve(arrival[a:b], service[a:b])
            starts.append(st)
            seen.append(pool.queue_seen(arrival[a:b], st))
        out.append((np.concatenate(starts), np.concatenate(seen), np.sort(pool.free_at), pool.pending))
    for x, y in zip(*out):
        np.testing.assert_array_equal(x, y)
    assert (out[0][1] > 0).any()


def test_concept_margins_kernel_equals_numpy_twin():
    sim = Simulation(load_scenario("spam", ["data.concept_half_life=1h"]), Design("static", None, "dynamic", None, 2),
                     3, 3600.0)
    dp = sim.dp
    rng = np.random.default_rng(3)
    for n in (1, 100, 200_000):
        keys = rng.integers(1, 10**12, n).astype(np.uint64)
        i, j = sim.features.index(keys)
        u = dp._w_taylor(123.0)
        dt = rng.uniform(0.0, 300.0, n)
        hc = dp._half_curv
        # the compiled loop projecting the rows it uses, against numpy projecting every row
        m_c, near_c = kernels.concept_margins(dp.xa, dp.xb, i, j, u, dp.xa_pn, dp.xb_pn, hc, dt, True, True)
        m_p, near_p = kernels.concept_margins(dp.xa, dp.xb, i, j, u, dp.xa_pn, dp.xb_pn, hc, dt, True, False)
        # summation order differs, so margins agree to rounding; the labels they decide do not differ
        np.testing.assert_allclose(m_c, m_p, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(near_c, near_p)
        # with every row projected beforehand, both gather the same projections: equal bit for bit
        kernels.project_rows(dp.xa, dp.xb, u, dp.xa_pn, dp.xb_pn)
        m_c, near_c = kernels.concept_margins(dp.xa, dp.xb, i, j, u, dp.xa_pn, dp.xb_pn, hc, dt, False, True)
        m_p, near_p = kernels.concept_margins(dp.xa, dp.xb, i, j, u, dp.xa_pn, dp.xb_pn, hc, dt, False, False)
        np.testing.assert_array_equal(m_c, m_p)
        np.testing.assert_array_equal(near_c, near_p)
        assert 0 < near_c.sum() < n or n < 1000      # the exact band is neither empty nor everything
        t = np.sort(rng.uniform(100.0, 400.0, n))
        dp.compiled = True
        lab_c = dp._true_labels(t, i, j)
        dp.compiled = False
        np.testing.assert_array_equal(lab_c, dp._true_labels(t, i, j))


@pytest.mark.parametrize("serving", ["dynamic", "hybrid"])
def test_simulation_metrics_identical_with_and_without_jit(monkeypatch, serving):
    sc = load_scenario("spam", ["traffic.rate=150/s", "horizon=1h", "data.batch_interval=15m",
                                "traffic.cardinality=1e6", "traffic.peakedness.zipf_s=1.1"])
    design = Design("periodic", 1800.0, serving, 1000 if serving == "hybrid" else None, 4)
    runs = []
    for flag in ("1", "0"):
        monkeypatch.setenv(kernels.JIT_ENV, flag)
        assert kernels.enabled() is (flag == "1")
        r = simulate(sc, design, seed=5)
        m = dict(r.metrics)
        m.pop("wall_s")
        runs.append((m, r.timeseries))
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(np.array([list(x.values()) for x in runs[0][1]], float),
                                  np.array([list(x.values()) for x in runs[1][1]], float))


def test_simulation_runs_blas_on_one_thread():
    from threadpoolctl import threadpool_info
    seen = []

    def progress(_):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
    sc = load_scenario("spam", ["traffic.rate=20/s", "horizon=1h"])
    simulate(sc, Design("static", None, "dynamic", None, 2), seed=1, progress=progress)
    assert seen and set(seen) == {1}


@pytest.mark.parametrize("n", [0, 1, 1000, 300_000])
def test_hist_tally_kernel_equals_numpy_twin_and_a_brute_force_tally(n):
    from simulator.metrics import EDGES, _NBINS, bin_index
    rng = np.random.default_rng(n)
    v = rng.lognormal(math.log(0.02), 2.0, n)
    v[rng.random(n) < 0.1] = 0.0                       # exact zeros (no wait)
    if n >= 1000:
        v[:4] = [1e-12, 1e12, EDGES[7], np.nextafter(EDGES[9], 0)]   # clipped ends; on and just below an edge
    group = rng.integers(0, 3, n).astype(np.int8)
    c1 = kernels.hist_tally(v, group, 3, compiled=True)
    c0 = kernels.hist_tally(v, group, 3, compiled=False)
    for a, b in zip(c1, c0):
        np.testing.assert_array_equal(a, b)             # bit for bit, sums included
    counts, sums, maxs, ns = c1
    assert counts.shape == (4, _NBINS + 1)
    b = bin_index(v)
    for g in range(3):
        sel = group == g
        np.testing.assert_array_equal(counts[g], np.bincount(b[sel], minlength=_NBINS + 1))
        assert ns[g] == sel.sum()
        assert sums[g] == pytest.approx(math.fsum(v[sel].tolist()), rel=1e-12, abs=0)
        assert maxs[g] == (v[sel].max() if sel.any() else 0.0)
    np.testing.assert_array_equal(counts[3], np.bincount(b, minlength=_NBINS + 1))
    assert ns[3] == n and maxs[3] == (v.max() if n else 0.0)
    assert sums[3] == pytest.approx(math.fsum(v.tolist()), rel=1e-12, abs=0)
    if n >= 1000:
        assert b[2] == 1 + 7 and b[3] == 1 + 8          # the edge belongs to the bin above it


@pytest.mark.parametrize("groups", [1, 3, 5])
def test_hist_tally_bins_every_edge_and_its_neighbours_as_the_edges_say(groups):
    """The compiled tally bins by cells of the float's bits (metrics.CELL_BIN): every edge, the
    doubles either side of it, values beyond the range, subnormals and the largest double land
    in the bin the edges define (bin_index, which goes through logarithms instead)."""
    from simulator.metrics import EDGES, _NBINS, bin_index
    v = np.concatenate([EDGES, np.nextafter(EDGES, 0), np.nextafter(EDGES, np.inf),
                        [0.0, 5e-324, 1e-300, 1e-8, 1e9, 1.7e308]])
    rng = np.random.default_rng(groups)
    v = rng.permutation(v)
    group = rng.integers(0, groups, v.size).astype(np.int8)
    counts, sums, maxs, ns = kernels.hist_tally(v, group, groups, compiled=True)
    b = bin_index(v)
    for g in range(groups):
        np.testing.assert_array_equal(counts[g], np.bincount(b[group == g], minlength=_NBINS + 1))
        assert maxs[g] == v[group == g].max()
    for a, c in zip((counts, sums, maxs, ns), kernels.hist_tally(v, group, groups, compiled=False)):
        np.testing.assert_array_equal(a, c)


def test_cells_are_narrower_than_bins_and_name_their_least_values_bin():
    """The premise of the compiled binning: at most one edge inside any cell, and CELL_BIN is
    the bin of the cell's least value."""
    from simulator.metrics import CELL_BIN, CELL_SHIFT, EDGES, LO_CELL, _NBINS
    cells = np.arange(CELL_BIN.size, dtype=np.int64) + LO_CELL
    least = (cells << CELL_SHIFT).view(np.float64)
    nxt = ((cells + 1) << CELL_SHIFT).view(np.float64)
    inside = np.searchsorted(EDGES, nxt, side="left") - np.searchsorted(EDGES, least, side="right")
    assert inside.max() <= 1
    np.testing.assert_array_equal(CELL_BIN, np.clip(np.searchsorted(EDGES, least, side="right") - 1, 0, _NBINS - 1))
    assert least[0] <= EDGES[0] < nxt[0] and least[-1] <= EDGES[-1] < nxt[-1]


@pytest.mark.parametrize("bad", [-1e-9, math.nan, math.inf])
@pytest.mark.parametrize("compiled", [True, False])
def test_hist_tally_rejects_what_a_histogram_cannot_hold(bad, compiled):
    v = np.array([0.1, 0.2, bad, 0.3])
    with pytest.raises(ValueError, match="finite and non-negative"):
        kernels.hist_tally(v, compiled=compiled)


def test_label_tally_kernel_equals_numpy_twin_and_counts_by_hand():
    rng = np.random.default_rng(8)
    n, rows = 20_000, 500
    pred = rng.choice(np.array([-1, 1], np.int8), n)
    y_true = rng.choice(np.array([-1, 1], np.int8), n)
    flip = rng.random(n) < 0.2
    path = rng.integers(0, 3, n).astype(np.int8)          # 0 table, 1 model (scored here), 2 fallback
    i, j = rng.integers(0, rows, n), rng.integers(0, rows, n)
    end_model = (rng.standard_normal(rows), rng.standard_normal(rows))
    end_table = (rng.standard_normal(rows), rng.standard_normal(rows))
    score = (rng.standard_normal(rows), rng.standard_normal(rows), 0.3)
    for sc, scored in ((score, 1), (None, -1)):
        got = kernels.label_tally(pred, path, y_true, flip, i, j, end_model, end_table, sc, scored, compiled=True)
        assert got == kernels.label_tally(pred, path, y_true, flip, i, j, end_model, end_table, sc, scored,
                                          compiled=False)
        correct = served = fresh = 0
        for k in range(n):
            p = pred[k]
            if path[k] == scored:
                p = 1 if score[0][i[k]] + score[1][j[k]] + score[2] >= 0 else -1
            y_obs = -y_true[k] if flip[k] else y_true[k]
            pa, pb = end_table if path[k] == 0 else end_model
            correct += p == y_obs
            served += p == y_true[k]
            fresh += p == (1 if pa[i[k]] + pb[j[k]] >= 0 else -1)
        assert got == (correct, served, fresh)


@pytest.mark.parametrize("n_keys,s", [(1e6, 1.1), (math.inf, 1.5), (1e9, 0.8), (10.0, 0.5), (math.inf, 1.018)])
def test_zipf_keys_are_the_same_with_the_compiled_rounding(n_keys, s):
    from simulator.traffic import MAX_KEY, ZipfSampler
    z = ZipfSampler(n_keys, s)
    keys = [z.sample(np.random.default_rng(4), 300_000, compiled) for compiled in (True, False)]
    np.testing.assert_array_equal(keys[0], keys[1])
    assert keys[0].min() >= 1
    if n_keys == math.inf and s < 1.05:
        assert (keys[0] > np.uint64(MAX_KEY)).any()       # the tail beyond the largest rank is drawn too
    else:
        assert keys[0].max() <= min(n_keys, MAX_KEY)


def _splitmix64_by_hand(x: int) -> int:
    """SplitMix64's finaliser in Python integers (Steele, Lea & Flood 2014)."""
    m = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


@pytest.mark.parametrize("rows", [1 << 17, 1 << 11])
def test_key_rows_kernel_equals_numpy_twin_and_splitmix_by_hand(rows):
    rng = np.random.default_rng(rows)
    keys = rng.integers(0, np.iinfo(np.uint64).max, 50_000, dtype=np.uint64, endpoint=True)
    keys[:3] = [0, 1, np.iinfo(np.uint64).max]
    salt = np.uint64(0x1234_5678_9ABC_DEF1)
    i1, j1 = kernels.key_rows(keys, salt, rows, compiled=True)
    i0, j0 = kernels.key_rows(keys, salt, rows, compiled=False)
    np.testing.assert_array_equal(i1, i0)
    np.testing.assert_array_equal(j1, j0)
    assert i1.dtype == j1.dtype == i0.dtype == np.int32
    for q in list(range(3)) + [int(k) for k in rng.integers(3, keys.size, 20)]:
        h = _splitmix64_by_hand(int(keys[q]) ^ int(salt))
        assert (i1[q], j1[q]) == (h & (rows - 1), (h >> 32) & (rows - 1))

