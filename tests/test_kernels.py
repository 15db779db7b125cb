"""The compiled data-plane kernels equal their pure-Python twins bit for bit, and a whole
simulation gives the same metrics with and without them; BLAS runs one thread per run."""
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


@pytest.mark.parametrize("c", [1, 2, 7, 12, 64])
def test_fifo_kernel_equals_python_twin_bit_for_bit_across_windows(c):
    arrival, service = _queue(c, 30_000, c, 0.95)
    pools = [ReplicaPool(c, compiled=True), ReplicaPool(c, compiled=False)]
    cuts = [(0, 1), (1, 5000), (5000, 5001), (5001, 30_000)]   # state carried between windows
    out = []
    for pool in pools:
        starts, seen = [], []
        for a, b in cuts:
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
        u = sim.concept.u(123.0)
        m_c, near_c = kernels.concept_margins(dp.za, dp.zb, i, j, u, dp.za_norm, dp.zb_norm, 1e-3, True)
        m_p, near_p = kernels.concept_margins(dp.za, dp.zb, i, j, u, dp.za_norm, dp.zb_norm, 1e-3, False)
        # summation order differs, so margins agree to rounding; the labels they decide do not differ
        np.testing.assert_allclose(m_c, m_p, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(near_c, near_p)
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
