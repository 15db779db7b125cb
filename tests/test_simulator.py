"""Simulator: exact queueing, samplers vs theory, pipeline behaviour, invariants, determinism."""
import json
import math

import numpy as np
import pytest
from scipy import stats

from advisor import design_for, theory
from scenarios.design import Design
from scenarios import load_scenario
from simulator import simulate
from simulator.engine import Simulation
from simulator.evaluate import gate
from simulator.reference import simpy_fifo_waits
from simulator.ingest import DataSource
from simulator.serve import ReplicaPool, Scorer, batch_predict
from simulator.traffic import Concept, KeyFeatures, ZipfSampler, arrivals, integrated_rate
from simulator.train import Model
from simulator import kernels
from simulator import validate as validation

needs_numba = pytest.mark.skipif(kernels._compiled() is None, reason="numba not installed")

SMALL = ["traffic.rate=200/s", "horizon=2h", "data.batch_interval=15m", "model.training_window=6h",
         "data.velocity=2e6/d"]


def small(*extra):
    return load_scenario("spam", SMALL + list(extra))


# ------------------------------------------------------------------ queueing

@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_numba)], ids=["python", "numba"])
@pytest.mark.parametrize("c,rho", [(1, 0.8), (4, 0.9), (12, 0.7)])
def test_kiefer_wolfowitz_equals_per_request_simpy(c, rho, compiled):
    rng = np.random.default_rng(c)
    n = 20_000
    service = rng.lognormal(math.log(0.02), 0.6, n)
    lam = rho * c / service.mean()
    arrival = np.cumsum(rng.exponential(1 / lam, n))
    pool = ReplicaPool(c, compiled=compiled)
    # carried across windows: serve in three uneven windows
    starts = np.concatenate([pool.serve(arrival[a:b], service[a:b]) for a, b in [(0, 777), (777, 15000), (15000, n)]])
    ours = starts - arrival
    ref = simpy_fifo_waits(arrival, service, c)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)
    assert (ours >= 0).all() and (ours > 0).any()


# ---------------------------------------------------------------- traffic

@pytest.mark.parametrize("n,s", [(1000, 0.8), (10**6, 1.0), (10**9, 1.2), (50, 0.0)])
def test_zipf_head_chi_square(n, s):
    rng = np.random.default_rng(3)
    draws = 400_000
    k = ZipfSampler(n, s).sample(rng, draws)
    assert k.min() >= 1 and k.max() <= n
    head = 20
    h_n = theory.harmonic(n, s)
    p = np.array([i ** -s / h_n for i in range(1, head + 1)])
    obs = np.bincount(k[k <= head].astype(int), minlength=head + 1)[1:]
    expected = np.append(p, 1 - p.sum()) * draws
    chi = stats.chisquare(np.append(obs, draws - obs.sum()), expected)
    assert chi.pvalue > 1e-3  # a correct sampler fails this 1 time in 1000


@pytest.mark.parametrize("s", [1.018, 1.1])
def test_unbounded_zipf_tail_beyond_the_largest_key_is_spread_not_folded(s):
    # an unbounded law with s near 1 has much of its mass at ranks beyond uint64's range
    # (P(rank > x) ≈ x^(1−s)/((s−1)ζ(s)): 46% beyond 9e18 at s = 1.018). Those requests must be
    # (almost surely) distinct keys; folded onto one key, it became the law's top key
    from scipy import special
    from simulator.traffic import MAX_KEY
    draws = 400_000
    k = ZipfSampler(math.inf, s).sample(np.random.default_rng(5), draws)
    tail = k[k > np.uint64(MAX_KEY)]
    p_tail = MAX_KEY ** (1 - s) / ((s - 1) * special.zeta(s))       # integral bound, ±~1e-10 here
    assert abs(tail.size / draws - p_tail) < 4 * math.sqrt(p_tail * (1 - p_tail) / draws)
    assert np.unique(tail).size == tail.size
    # the most requested key is rank 1 with its law share 1/ζ(s) (binomial, 4 sigma)
    vals, counts = np.unique(k, return_counts=True)
    assert vals[np.argmax(counts)] == 1
    p1 = 1 / special.zeta(s)
    assert abs(counts.max() / draws - p1) < 4 * math.sqrt(p1 * (1 - p1) / draws)


@pytest.mark.parametrize("n,s,k", [(10**6, 0.9, 1000), (10**12, 1.1, 10**5), (10**18, 1.05, 10**6)])
def test_zipf_coverage_matches_theory(n, s, k):
    rng = np.random.default_rng(4)
    draws = 1_000_000
    share = np.mean(ZipfSampler(n, s).sample(rng, draws) <= k)
    p = theory.zipf_coverage(k, n, s)
    assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / draws)  # binomial, 4 sigma


def test_unbounded_zipf_coverage():
    rng = np.random.default_rng(5)
    share = np.mean(ZipfSampler(math.inf, 1.3).sample(rng, 1_000_000) <= 100)
    p = theory.zipf_coverage(100, None, 1.3)
    assert abs(share - p) < 4 * math.sqrt(p * (1 - p) / 1e6)


def test_diurnal_arrival_counts_match_integrated_rate():
    rng = np.random.default_rng(6)
    rate, amp = 50.0, 0.7
    for t0, t1 in [(0, 21600), (21600, 43200), (43200, 64800), (64800, 86400)]:
        n = arrivals(rng, t0, t1, rate, amp).size
        mu = integrated_rate(t0, t1, rate, amp)
        assert abs(n - mu) < 4 * math.sqrt(mu)  # Poisson, 4 sigma


@pytest.mark.parametrize("t0,t1", [(0.0, 640.0), (64_000.0, 65_000.0), (64_790.0, 64_810.0),
                                   (21_000.0, 22_000.0), (3 * 86_400.0 - 300.0, 3 * 86_400.0 + 300.0)])
def test_thinning_squeeze_keeps_exactly_what_comparing_every_candidate_keeps(t0, t1):
    # the same draws, thinned by comparing every candidate with rate(t) (Lewis & Shedler)
    from simulator.traffic import _rate_bounds, rate_at
    rate, amp = 400.0, 0.6
    got = arrivals(np.random.default_rng(11), t0, t1, rate, amp)
    rng = np.random.default_rng(11)
    peak = rate * (1 + amp)
    n = rng.poisson(peak * (t1 - t0))
    t = np.sort(rng.uniform(t0, t1, n))
    want = t[rng.random(n) * peak < rate * (1 + amp * np.sin(2 * np.pi * t / 86400.0))]
    np.testing.assert_array_equal(got, want)
    # the squeeze's bound: below rate(t) everywhere on the span, and within 1e-9 of its least value
    grid = np.linspace(t0, t1, 200_001)
    least, most = _rate_bounds(t0, t1, rate, amp)
    assert least <= rate_at(grid, rate, amp).min() <= least * (1 + 1e-9) + 1e-9 * rate
    assert most * (1 - 1e-9) - 1e-9 * rate <= rate_at(grid, rate, amp).max() <= most


def test_key_features_are_deterministic_and_standard_normal():
    kf = KeyFeatures(np.random.default_rng(7), 8)
    keys = np.arange(1, 100_001, dtype=np.uint64)
    x1, x2 = kf.features(keys), kf.features(keys)
    np.testing.assert_array_equal(x1, x2)
    assert np.all(np.abs(x1.mean(0)) < 4 / math.sqrt(1e5))
    assert np.all(np.abs(x1.std(0) - 1) < 0.01)


def test_frozen_model_accuracy_falls_as_drift_predicts():
    rng = np.random.default_rng(8)
    hl, d, eps = 86400.0, 16, 0.05
    concept = Concept(rng, d, hl, eps)
    n = 200_000
    x = rng.standard_normal((n, d))
    v = concept.w(0.0)
    for age_hl in (0.5, 1.0, 2.0, 3.0):
        y = concept.labels(rng, x, age_hl * hl)
        acc = np.mean(np.where(x @ v >= 0, 1, -1) == y)
        p = theory.accuracy_vs_age(age_hl * hl, features=d, half_life_s=hl, window_s=0.0, label_noise=eps)
        assert abs(acc - p) < 4 * math.sqrt(p * (1 - p) / n), age_hl


# ----------------------------------------------------------------- pipeline

def test_scorer_equals_model_on_materialised_features():
    sim = Simulation(small(), Design("static", None, "dynamic", None, 2), 1, 3600.0)
    sim._bootstrap()
    keys = np.random.default_rng(1).integers(1, 10**12, 50_000).astype(np.uint64)
    i, j = sim.features.index(keys)
    ours = Scorer(sim.live, sim.features).predict(i, j)
    x = sim.features.features(keys)
    margin = sim.live.decision_function(x)
    ref = sim.live.predict(x)
    clear = np.abs(margin) > 1e-9   # folding the transform changes rounding only
    np.testing.assert_array_equal(ours[clear], ref[clear])
    # the table is filled by the same model on materialised features
    np.testing.assert_array_equal(batch_predict(sim.live, sim.features, 1000),
                                  sim.live.predict(sim.features.features(np.arange(1, 1001, dtype=np.uint64))))


def test_table_rows_computed_when_read_equal_a_full_batch_prediction():
    """The table computes a row the first time it is read; every read, first or repeated, in
    any order and across batch-prediction chunks, must give what a full fill would have written."""
    from simulator.serve import BATCH_CHUNK_KEYS, Table
    sim = Simulation(small(), Design("static", None, "dynamic", None, 2), 1, 3600.0)
    sim._bootstrap()
    k = BATCH_CHUNK_KEYS + 5000
    full = batch_predict(sim.live, sim.features, k)
    table = Table(k, sim.live, sim.features, 0.0)
    rng = np.random.default_rng(3)
    for n in (1, 10, 5000, 200_000, 200_000):      # later reads repeat earlier keys
        keys = rng.integers(1, k + 1, n).astype(np.uint64)
        np.testing.assert_array_equal(table.lookup(keys), full[keys.astype(np.int64) - 1])
    edge = np.array([1, k, BATCH_CHUNK_KEYS, BATCH_CHUNK_KEYS + 1, k, 1], dtype=np.uint64)
    np.testing.assert_array_equal(table.lookup(edge), full[edge.astype(np.int64) - 1])


def test_a_table_too_large_for_rows_scores_each_read_with_the_filling_model():
    # a static design over 1e11 keys (refused before as too large): no row array, every read is
    # the filling model's prediction for that key (materialised features, up to exact ties)
    from simulator.serve import DENSE_TABLE_KEYS, Table
    sim = Simulation(small(), Design("static", None, "dynamic", None, 2), 1, 3600.0)
    sim._bootstrap()
    k = 10**11
    assert k > DENSE_TABLE_KEYS
    table = Table(k, sim.live, sim.features, 0.0)
    keys = np.random.default_rng(4).integers(1, k + 1, 100_000).astype(np.uint64)
    x = sim.features.features(keys)
    clear = np.abs(sim.live.decision_function(x)) > 1e-9
    np.testing.assert_array_equal(table.lookup(keys)[clear], sim.live.predict(x)[clear])
    assert table.rows_computed() == 0                   # no row is kept


def test_true_labels_fast_path_is_exact():
    sim = Simulation(small("data.concept_half_life=1h"), Design("static", None, "dynamic", None, 2), 2, 3600.0)
    rng = np.random.default_rng(2)
    t = np.sort(rng.uniform(1000.0, 1900.0, 100_000))
    keys = rng.integers(1, 10**9, t.size).astype(np.uint64)
    i, j = sim.features.index(keys)
    fast = sim.dp._true_labels(t, i, j)
    z = sim.concept.rotate(sim.features.features(keys))
    exact = np.where(sim.concept.margin(z, t) >= 0, 1, -1)
    np.testing.assert_array_equal(fast, exact)


@pytest.mark.parametrize("shifts", [False, True])
def test_true_labels_exact_when_a_projection_serves_many_windows(shifts):
    # windows of 100 s over 2 h of a concept with a 6-hour half-life (a 14-min epoch): one projection serves
    # the windows of its epoch (the drift since it was made widens the exact band), a new one
    # is made after the epoch and after every sudden shift; every label stays exact
    extra = ["data.shifts={every: 30m, magnitude: 0.5}"] if shifts else []
    sim = Simulation(small("data.concept_half_life=6h", *extra), Design("static", None, "dynamic", None, 2), 2, 7200.0)
    dp = sim.dp
    rng = np.random.default_rng(4)
    # windows end at every shift, as the engine's do (no window straddles a shift)
    edges = np.union1d(np.arange(0.0, 7300.0, 100.0), sim.shift_times[sim.shift_times < 7200.0])
    made = []
    for t0, t1 in zip(edges[:-1], edges[1:]):
        t = np.sort(rng.uniform(t0, t1, int(500 * (t1 - t0)) + 1))
        keys = rng.integers(1, 10**9, t.size).astype(np.uint64)
        i, j = sim.features.index(keys)
        fast = dp._true_labels(t, i, j)
        made.append((float(t[0]), dp._proj_at))
        z = sim.concept.rotate(sim.features.features(keys))
        np.testing.assert_array_equal(fast, np.where(sim.concept.margin(z, t) >= 0, 1, -1))
    made = [(t0, p) for t0, p in made if p is not None]  # None: a short window projected its own rows
    at = [p for _, p in made]
    assert len(set(at)) > 1                              # re-projected as the epoch ran out
    assert len(set(at)) < len(at) / 2                    # and reused for most windows
    assert all(0 <= t0 - p <= dp._proj_epoch_s for t0, p in made)
    if shifts:
        assert sim.shift_times.size >= 2
        # no projection made before a shift serves a window after it
        assert not any(p < s <= t0 for t0, p in made for s in sim.shift_times)


def test_periodic_retraining_mean_age_is_d_plus_half_t():
    sc = small("data.label_delay=10m", "model.train_time={fixed: 5m, per_million_examples: 0s}",
               "horizon=12h", "traffic.rate=20/s")
    d = Design("periodic", 3600.0, "dynamic", None, 4)
    m = simulate(sc, seed=3, design=d).metrics
    D, T = 600.0 + 300.0, 3600.0
    # mean of U(D, D+T) over a whole number of periods, sampled by ~860k Poisson requests:
    # its standard error is T/sqrt(12 n) < 2 s; allow 1% for the histogram-free exact mean
    assert m["staleness"]["model_age_s"]["mean"] == pytest.approx(D + T / 2, rel=0.01)
    # jobs at 1h..11h finish inside the 12h run (the one at 12h would start at the end)
    assert m["training"]["runs"] == 1 + 11 and m["training"]["deployed"] >= 11


FAULTS = {
    "missing_feature": ("{at: 30m, kind: missing_feature, feature: 2}", "SCHEMA_MISSING_COLUMN"),
    "unexpected_feature": ("{at: 30m, kind: unexpected_feature}", "SCHEMA_NEW_COLUMN"),
    "type_change": ("{at: 30m, kind: type_change, feature: 3}", "UNEXPECTED_DATA_TYPE"),
    "category_remap": ("{at: 30m, kind: category_remap}", "COMPARATOR_L_INFTY_HIGH"),
    "scale_shift": ("{at: 30m, kind: scale_shift, feature: 1, factor: 10}", "FLOAT_TYPE_BIG_FLOAT"),
    "null_fraction": ("{at: 30m, kind: null_fraction, feature: 4, fraction: 5%}", "FEATURE_TYPE_LOW_FRACTION_PRESENT"),
}


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_each_fault_kind_is_detected_and_quarantined(kind):
    fault, anomaly = FAULTS[kind]
    sc = small(f"data.faults=[{fault}]", "traffic.rate=5/s")
    m = simulate(sc, seed=1, design=Design("periodic", 1800.0, "dynamic", None, 2)).metrics
    v = m["validation"]
    # batches every 15m in [0, 2h): the first at 15m is clean, the 6 from 30m on are faulty
    assert v["batches"] == 7 and v["quarantined"] == 6
    assert v["by_kind"].get(anomaly, 0) == 6
    assert m["training"]["runs"] >= 2   # retrains still run, on the clean data only


@pytest.mark.parametrize("rows", [500, 20_000])
def test_clean_batches_pass_validation(rows):
    sc = small()
    src = DataSource(sc, Concept(np.random.default_rng(1), 16, 86400.0, 0.03), np.random.default_rng(2))
    ref = validation.infer_reference(src.batch(0, 0.0).columns)
    false_alarms = 0
    for k in range(1, 41):
        cols = src.batch(k, k * 900.0).columns
        if rows < 20_000:
            cols = {n: v[:rows] for n, v in cols.items()}
        false_alarms += bool(validation.validate(cols, ref))
    assert false_alarms <= 2  # Bonferroni keeps the family-wise false alarm rate near 5%


def test_gate_rejects_a_corrupted_model():
    sim = Simulation(small(), Design("static", None, "dynamic", None, 2), 1, 3600.0)
    sim._bootstrap()
    live = sim.live
    corrupted = Model(2, live.transform, -live.coef, -live.intercept, 0.0, 0.0, 1.0)
    x, y = sim.holdout
    assert not gate(corrupted, live, x, y).deploy
    assert gate(live, live, x, y).deploy


def test_every_finished_training_run_is_deployed_or_rejected():
    sc = small("data.label_noise=0.45", "horizon=1h")
    m = simulate(sc, seed=2, design=Design("periodic", 900.0, "dynamic", None, 2)).metrics
    assert m["training"]["runs"] >= 2
    assert m["training"]["rejected_by_gate"] + m["training"]["deployed"] == m["training"]["runs"]


# --------------------------------------------------------------- invariants

@pytest.mark.parametrize("serving,k", [("dynamic", None), ("hybrid", 5000), ("static", None)])
def test_invariants(serving, k):
    extra = ["traffic.cardinality=20000", "traffic.peakedness={zipf_s: 1.0}"]
    sc = small(*extra)
    d = Design("periodic", 1800.0, serving, k, 0 if serving == "static" else 3)
    m = simulate(sc, seed=4, design=d).metrics
    by_path = m["latency_ms_by_path"]
    assert m["requests"] > 0
    assert m["queue_wait_ms"]["p50"] >= 0 and m["queue_wait_ms"]["max"] >= 0
    assert 0 <= m["cache_hit_ratio"] <= 1 and 0 <= m["waited_fraction"] <= 1
    def leaves(d):
        return [x for v in d.values() for x in (leaves(v) if isinstance(v, dict) else [v])]
    assert all(v >= 0 for v in leaves(m["cost_usd"]))
    c = m["cost_usd"]
    assert c["total"] == pytest.approx(c["serving"] + c["training"] + c["batch_prediction"] + c["storage"])
    for part in ("one_off_usd", "recurring_usd_per_month"):
        assert c[part]["total"] == pytest.approx(sum(v for kk, v in c[part].items() if kk != "total"))
    # recurring per month = the span's recurring costs scaled to a month (storage is already monthly)
    assert c["recurring_usd_per_month"]["serving"] == pytest.approx(c["serving"] * 730 * 3600 / m["horizon_s"])
    assert 0 <= m["accuracy"]["served"] <= 1
    if serving == "static":
        assert m["cache_hit_ratio"] == 1.0 and set(by_path) == {"table"}
    if serving == "dynamic":
        assert m["cache_hit_ratio"] == 0.0 and set(by_path) == {"model"}
    if serving == "hybrid":
        assert set(by_path) == {"table", "model"}
        assert m["staleness"]["table_age_s"]["mean"] >= m["staleness"]["model_age_s"]["mean"] * 0.5


def test_requests_conserved_across_paths():
    sim = Simulation(small("traffic.cardinality=1000", "traffic.peakedness={zipf_s: 1.0}"),
                     Design("static", None, "hybrid", 100, 2), 5, 1800.0)
    res = sim.run()
    assert sum(h.n for k, h in res.latency_hist.items() if k != "all") == res.metrics["requests"]
    assert sum(r["requests"] for r in res.timeseries) == res.metrics["requests"]


def test_determinism_per_seed():
    sc = small("horizon=30m")
    d = design_for(sc)
    a = simulate(sc, d, seed=11).metrics
    b = simulate(sc, d, seed=11).metrics
    c = simulate(sc, d, seed=12).metrics
    a.pop("wall_s"), b.pop("wall_s"), c.pop("wall_s")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert a["latency_ms"] != c["latency_ms"]


# --------------------------------------------------------------------- CLI

def test_simulate_cli_writes_outputs(cli, tmp_path):
    out = tmp_path / "run"
    res = cli("simulate", "spam", "--horizon", "20m", "--set", "traffic.rate=50/s", "--out", out, "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    for key in ("scenario", "seed", "horizon_s", "architecture", "requests", "latency_ms", "latency_ms_by_path",
                "queue_wait_ms", "waited_fraction", "slo_violation_fraction", "cache_hit_ratio", "storage",
                "cost_usd", "cost_usd_per_month", "staleness", "accuracy", "validation", "training", "wall_s"):
        assert key in doc
    assert set(doc["latency_ms"]) == {"mean", "p50", "p95", "p99", "p999", "max"}
    assert json.loads((out / "metrics.json").read_text())["requests"] == doc["requests"]
    import pandas as pd
    ts = pd.read_csv(out / "timeseries.csv")
    assert ts["requests"].sum() == doc["requests"]


def test_simulate_cli_bad_inputs(cli, tmp_path):
    res = cli("simulate", "spam", "--horizon", "-3h")
    assert res.exit_code == 2 and "--horizon" in res.stderr
    f = tmp_path / "file"
    f.write_text("x")
    res = cli("simulate", "spam", "--horizon", "1m", "--out", f)
    assert res.exit_code == 2 and "not a directory" in res.stderr
    assert f.read_text() == "x"


def test_requests_no_path_can_answer_are_counted_as_fallbacks():
    # a hybrid table with no model replicas: every miss is a fallback, never dropped
    sc = small("traffic.cardinality=1000", "traffic.peakedness={zipf_s: 1.0}", "horizon=10m")
    m = simulate(sc, seed=1, design=Design("static", None, "hybrid", 100, 0)).metrics
    by_path = m["latency_ms_by_path"]
    assert set(by_path) == {"table", "fallback"}
    assert 0 < m["cache_hit_ratio"] < 1
    assert m["fallback_requests"] == round(m["requests"] * (1 - m["cache_hit_ratio"]))


def test_a_static_table_of_1e12_keys_simulates_and_bills_every_key(cli):
    # refused as too large until tables computed their rows as read
    res = cli("simulate", "ad-conversion", "--horizon", "10m", "--set", "traffic.cardinality=1e12",
              "--set", "architecture.serving=static", "--json", "-q")
    assert res.exit_code == 0, res.stderr
    m = __import__("json").loads(res.stdout)
    sc = load_scenario("ad-conversion", ["traffic.cardinality=1e12"])
    assert m["cache_hit_ratio"] == 1.0
    assert m["storage"]["table_bytes"] == 1e12 * sc.model.prediction_bytes
    assert m["cost_usd"]["one_off_usd"]["initial_table_fill"] == pytest.approx(
        sc.model.fill_vcpu_s(1e12) * sc.costs.vcpu_hour / 3600, rel=1e-12)


@pytest.mark.parametrize("sets,expect", [(["traffic.rate=1e7/s", "horizon=300d"], "requests")])
def test_absurd_runs_are_refused_up_front(cli, sets, expect):
    # --horizon: simulate every request of the span (a sliced lifetime would sample it)
    args = ["simulate", "ad-conversion", "--horizon", "300d"]
    for s in sets:
        args += ["--set", s]
    res = cli(*args)
    assert res.exit_code == 2 and expect in res.stderr and len(res.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------ lifetime slices

def _weighted_and_se(ts, key, units):
    """Request-weighted mean of a time-series column over the buckets that saw requests, and
    a conservative standard error: the spread of bucket means over sqrt(units) (the slices,
    which are the independent sampling units of a stratified sample)."""
    rows = [r for r in ts if r["requests"] and r[key] == r[key]]
    n = np.array([r["requests"] for r in rows], float)
    v = np.array([r[key] for r in rows], float)
    mean = float(np.sum(n * v) / n.sum())
    return mean, float(np.std(v, ddof=1) / math.sqrt(units))


def test_sliced_lifetime_agrees_with_contiguous_run():
    """Slices are unbiased for the whole span: model age, accuracy, hit ratio and p99 from a
    sliced run agree with a run that simulates every request, within 4 combined standard
    errors (false failure ~1e-4 per figure under normality; a bias such as slices that all
    sit at one time of day, or no warm-up after the empty queue, shifts p99 and age by more)."""
    sc = small("traffic.rate=10/s", "traffic.cardinality=1e6", "traffic.peakedness={zipf_s: 1.1}",
               "horizon=4d", "traffic.diurnal_amplitude=0.5")
    d = Design("periodic", 6 * 3600.0, "hybrid", 1000, 2)
    full = simulate(sc, d, seed=3, request_budget=None)
    part = simulate(sc, d, seed=3, request_budget=4e5)
    sm = part.metrics["sampling"]
    assert sm["mode"] == "slices" and sm["slices"] >= 20
    assert part.metrics["requests"] < full.metrics["requests"] / 5
    # the control plane is the same run: same deployments, same costs
    assert part.metrics["training"] == full.metrics["training"]
    assert part.metrics["cost_usd"]["total"] == pytest.approx(full.metrics["cost_usd"]["total"], rel=1e-12)
    for key, metric in [("model_age_mean_s", lambda m: m["staleness"]["model_age_s"]["mean"]),
                        ("served_expected_accuracy", lambda m: m["accuracy"]["served_expected"]),
                        ("hit_ratio", lambda m: m["cache_hit_ratio"]),
                        ("latency_p99_ms", lambda m: m["latency_ms"]["p99"])]:
        _, se_part = _weighted_and_se(part.timeseries, key, sm["slices"])
        _, se_full = _weighted_and_se(full.timeseries, key, len(full.timeseries))
        a, b = metric(part.metrics), metric(full.metrics)
        tol = 4 * math.hypot(se_part, se_full) + (0.01 * b if key == "latency_p99_ms" else 0.0)
        assert abs(a - b) <= tol, (key, a, b, tol)


def test_slice_plan_covers_every_instant_with_equal_probability():
    """Wrapping inside each stratum makes the inclusion probability of every instant L/(H/n):
    over many random plans, the recorded share of each small time cell matches it."""
    from simulator.slices import plan_slices
    H, rng = 86400.0 * 3, np.random.default_rng(0)
    cells = np.zeros(300)
    edges = np.linspace(0, H, cells.size + 1)
    plans = 2000
    for _ in range(plans):
        p = plan_slices(H, 1e8, 2e7, rng)
        for _, s, e in p.pieces:
            cells += np.clip(np.minimum(edges[1:], e) - np.maximum(edges[:-1], s), 0, None)
    share = cells / (plans * (H / cells.size))
    expect = p.slices * p.slice_s / H
    # a cell's covered share per plan lies in [0, 1] with mean `expect`, so its variance is at
    # most expect(1 - expect): 4.5 sigma over 300 cells keeps false failures below 1e-3, while
    # slices that never wrap (starts uniform in [a, b - L]) halve the coverage at stratum edges
    assert p.slices >= 20 and 0.1 < expect < 0.5
    assert np.all(np.abs(share - expect) < 4.5 * math.sqrt(expect * (1 - expect) / plans)), share


def test_a_model_serving_before_its_data_ended_is_an_error_not_a_clamped_age():
    """Model age = request time − end of the model's data; a model whose data ends after the
    requests it serves is a control-plane bug, which the data plane refuses instead of
    recording age 0 (issue: clamps hide bugs)."""
    import dataclasses
    sim = Simulation(small(), Design("static", None, "dynamic", None, 2), 1, 3600.0)
    sim._bootstrap()
    sim.dp.set_model(dataclasses.replace(sim.live, data_end_s=1e6))
    with pytest.raises(AssertionError, match="negative model age"):
        sim.dp.advance(600.0)
