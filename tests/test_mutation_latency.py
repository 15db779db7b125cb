"""advisor.latency against closed forms (issue 18, item 5; docs/testing.md): the service time
alone (exponential quantiles), M/M/1 response time Exp(μ − λ), Erlang's M/D/1 waiting time,
and the replica search against a scan of pool sizes.

Tolerances: 2e-7 relative is the quantile bisection's stopping width (1e-7); the M/M/1 checks
allow 1%, the documented resolution of the 1,000-point service quantile grid (advisor/tails.py);
where the reference uses that same grid (theory.response_cdf, tested against closed forms in
test_mutation_theory.py) the tolerance is the bisection's."""
import math

import numpy as np
import pytest
from scipy import optimize, stats

from advisor import latency, tails, theory
from scenarios import load_scenario

BASE = """\
name: lat
horizon: 2d
traffic:
  rate: {rate}/s
  diurnal_amplitude: {amp}
data:
  velocity: 1e5/d
  concept_half_life: 3d
model:
  inference_time: {inference}
serving:
  min_replicas: {min_replicas}
slo:
  latency_p99: {slo}ms
"""
EXP10 = "{distribution: exponential, mean: 10ms}"
BISECT = 2e-7
GRID = 0.01


def _sc(tmp_path, rate=40, amp=0.5, inference=EXP10, slo=100, min_replicas=2, horizon=None, sets=()):
    text = BASE.format(rate=rate, amp=amp, inference=inference, slo=slo, min_replicas=min_replicas)
    if horizon:
        text = text.replace("horizon: 2d", f"horizon: {horizon}")
    p = tmp_path / "lat.yaml"
    p.write_text(text)
    return load_scenario(str(p), list(sets))


def _quantile(f, p, hi):
    """Root of f(t) = p by Brent's method (scipy), an independent quantile search."""
    return optimize.brentq(lambda t: f(t) - p, 1e-9, hi, xtol=1e-14, rtol=1e-12)


ONE = (np.array([1.0]),)


def test_service_points_are_read_only_midpoint_quantiles(tmp_path):
    sc = _sc(tmp_path)
    pts = latency._service_points(sc.model.inference_time)
    p = (np.arange(1000) + 0.5) / 1000
    np.testing.assert_allclose(pts, stats.expon.ppf(p, scale=0.01), rtol=1e-12)
    assert pts.dtype == np.float64
    with pytest.raises(ValueError):
        pts[0] = 1.0


def test_phase_rates(tmp_path):
    sc = _sc(tmp_path)                             # 2 days: the whole day, 48 phases
    lam, w = latency._phase_rates(sc)
    ph = (np.arange(48) + 0.5) / 48
    ref = 40 * (1 + 0.5 * np.sin(2 * np.pi * ph))
    np.testing.assert_allclose(lam, ref, rtol=1e-12)
    np.testing.assert_allclose(w, ref / ref.sum(), rtol=1e-12)
    lam6, _ = latency._phase_rates(_sc(tmp_path, horizon="6h"))     # the first quarter of the day
    np.testing.assert_allclose(lam6, 40 * (1 + 0.5 * np.sin(2 * np.pi * ph / 4)), rtol=1e-12)
    lam0, w0 = latency._phase_rates(_sc(tmp_path, amp=0.0))
    assert lam0.tolist() == [40.0] and w0.tolist() == [1.0]


def test_service_time_alone(tmp_path):
    sc = _sc(tmp_path)
    r, w = np.array([40.0]), np.array([1.0])
    # Exp(10 ms) p99: 10 ms · ln 100; half the requests from the table at 2 ms: 10 ms · ln 50
    assert latency.latency_quantile_s(sc, 0.99, 0.0, None, r, w) == pytest.approx(0.01 * math.log(100), rel=BISECT)
    assert latency.latency_quantile_s(sc, 0.99, 0.5, None, r, w) == pytest.approx(0.01 * math.log(50), rel=BISECT)
    assert latency.latency_quantile_s(sc, 0.99, 1.0, 3, r, w) == pytest.approx(0.002, rel=BISECT)
    assert latency.latency_quantile_s(sc, 0.4, 0.5, None) == pytest.approx(0.002, rel=BISECT)


@pytest.mark.parametrize("lam", [50.0, 90.0])
def test_mm1_response_time_closed_form(tmp_path, lam):
    sc = _sc(tmp_path)
    q = latency.latency_quantile_s(sc, 0.99, 0.0, 1, np.array([lam]), np.array([1.0]))
    assert q == pytest.approx(math.log(100) / (100 - lam), rel=GRID)


def test_mm1_near_saturation_widens_the_search(tmp_path):
    # ρ = 0.999: p99 = ln 100 / 0.1 s = 46 s, far above the first bracket (10 × the 0.9999
    # service quantile, 0.92 s); the wait dominates, so the grid's error is negligible (1e-4)
    sc = _sc(tmp_path)
    q = latency.latency_quantile_s(sc, 0.99, 0.0, 1, np.array([99.9]), np.array([1.0]))
    assert q == pytest.approx(math.log(100) / 0.1, rel=1e-4)
    assert latency.model_path_p99_s(_sc(tmp_path, rate=99.9, amp=0.0), 0.0, 1) == pytest.approx(
        math.log(100) / 0.1, rel=1e-4)


def test_unstable_or_empty_pool_has_no_quantile(tmp_path):
    sc = _sc(tmp_path)
    r, w = np.array([100.0]), np.array([1.0])
    assert latency.latency_quantile_s(sc, 0.99, 0.0, 1, r, w) == math.inf          # ρ = 1
    assert latency.latency_quantile_s(sc, 0.99, 0.5, 1, np.array([250.0]), w) == math.inf     # misses: ρ 1.25
    assert latency.latency_quantile_s(sc, 0.99, 0.5, 0, np.array([1.0]), w) == math.inf
    assert latency.latency_cdf(sc, 0.0, 1, r, w) == (None, 0.0)
    # everything from the table: no pool needed
    assert latency.latency_quantile_s(sc, 0.99, 1.0, 0, r, w) == pytest.approx(0.002, rel=BISECT)


def test_overloaded_phases_never_answer(tmp_path):
    sc = _sc(tmp_path)
    rates, w = np.array([50.0, 150.0]), np.array([0.5, 0.5])
    # hit 0.2: misses 40/s (stable at 1 replica) and 120/s (not); with overloaded_miss the second
    # phase's misses never answer: F(∞) = 0.2 + 0.8 · 0.5
    cdf, hi = latency.latency_cdf(sc, 0.2, 1, rates, w, overloaded_miss=True)
    assert cdf(1e3) == pytest.approx(0.6, abs=1e-9)
    assert hi == pytest.approx(10 * 0.01 * math.log(1e4), rel=1e-9)    # 10 × the 0.9999 quantile
    # the answering part: table hits at 2 ms plus the stable phase's M/M/1 (μ − λ = 60/s)
    t = 0.05
    ref = 0.2 + 0.8 * 0.5 * theory.response_cdf(t, latency._service_points(sc.model.inference_time), 40.0, 0.01,
                                                1.0, 1)
    assert cdf(t) == pytest.approx(ref, rel=1e-12)
    assert latency.latency_cdf(sc, 0.2, 1, rates, w)[0] is None
    # all phases overloaded: nothing to answer even with overloaded_miss
    assert latency.latency_cdf(sc, 0.0, 1, np.array([150.0]), np.array([1.0]), overloaded_miss=True) == (None, 0.0)


def test_diurnal_mixture_equals_phase_mixture_of_response_cdfs(tmp_path):
    sc = _sc(tmp_path, rate=150)
    lam, w = latency._phase_rates(sc)
    pts = latency._service_points(sc.model.inference_time)
    hit, c = 0.3, 2
    miss = 1 - hit

    def f(t):
        return hit * (t >= 0.002) + miss * sum(wi * theory.response_cdf(t, pts, li * miss, 0.01, 1.0, c)
                                               for li, wi in zip(lam, w))
    ref = _quantile(f, 0.99, 5.0)
    assert latency.latency_quantile_s(sc, 0.99, hit, c) == pytest.approx(ref, rel=BISECT)


def test_md1_response_time_erlang_formula(tmp_path):
    # deterministic 10 ms service, one replica, 50/s: response = D + W, P(W ≤ x) Erlang's M/D/1
    sc = _sc(tmp_path, inference="{distribution: deterministic, value: 10ms}")
    ref = _quantile(lambda t: theory.md1_wait_cdf(t - 0.01, 50.0, 0.01) if t >= 0.01 else 0.0, 0.99, 1.0)
    assert latency.latency_quantile_s(sc, 0.99, 0.0, 1, np.array([50.0]), np.array([1.0])) == pytest.approx(
        ref, rel=1e-6)
    assert latency.model_path_p99_s(_sc(tmp_path, rate=50, amp=0.0,
                                        inference="{distribution: deterministic, value: 10ms}"), 0.0, 1) == \
        pytest.approx(ref, rel=1e-6)


def test_model_path_p99(tmp_path):
    sc = _sc(tmp_path)                 # peak 60/s; half from the table: 30/s at the model
    assert latency.model_path_p99_s(sc, 0.5, 1) == pytest.approx(math.log(100) / 70, rel=GRID)
    pts = latency._service_points(sc.model.inference_time)
    ref = _quantile(lambda t: theory.response_cdf(t, pts, 30.0, 0.01, 1.0, 1), 0.99, 1.0)
    assert latency.model_path_p99_s(sc, 0.5, 1) == pytest.approx(ref, rel=BISECT)
    assert latency.model_path_p99_s(_sc(tmp_path, rate=100, amp=0.0), 0.0, 1) == math.inf
    assert latency.model_path_p99_s(_sc(tmp_path, rate=200, amp=0.0), 0.0, 1) == math.inf


def test_offered_erlangs(tmp_path):
    assert latency.offered_erlangs(_sc(tmp_path), 250.0) == pytest.approx(2.5, rel=1e-12)


def _p99_at_peak(sc, hit, c):
    return latency.latency_quantile_s(sc, 0.99, hit, c, np.array([sc.traffic.peak_rate_per_s]), np.array([1.0]))


@pytest.mark.parametrize("slo,rate,hit", [(100, 400, 0.0), (50, 400, 0.0), (48, 400, 0.25), (100, 30, 0.0)])
def test_replicas_for_slo_is_the_fewest_that_meet_it(tmp_path, slo, rate, hit):
    # scan: the answer meets the SLO at the peak rate and one replica fewer does not (or is 1)
    sc = _sc(tmp_path, rate=rate, slo=slo)
    c = latency.replicas_for_slo(sc, hit)
    assert type(c) is int and c >= 1
    assert _p99_at_peak(sc, hit, c) * (1 + tails.p99_margin(1.0, c)) <= slo / 1e3
    assert c == 1 or _p99_at_peak(sc, hit, c - 1) > slo / 1e3


def test_replicas_for_slo_edge_cases(tmp_path):
    sc = _sc(tmp_path, rate=400, slo=40)           # the service time alone: p99 46 ms > 40 ms
    assert latency.replicas_for_slo(sc, 0.0) is None
    c = latency.replicas_for_slo(_sc(tmp_path, rate=400, slo=60), 0.0)
    assert type(c) is int
    # half from the table (2 ms): the misses' service alone has p99 10 ms · ln 50 = 39.1 ms > 38 ms;
    # the fallback keeps the misses' 600/s · 0.5 · 10 ms = 3 erlangs under 0.8: 4 replicas
    half = _sc(tmp_path, rate=400, slo=38, min_replicas=1)
    assert latency.provisioned_replicas(half, 0.5) == (4, False)
    # no queue can help: keep utilisation at the peak (600/s · 10 ms = 6 erlangs) under 0.8
    assert latency.provisioned_replicas(sc, 0.0) == (math.ceil(6 / 0.8), False)
    assert latency.provisioned_replicas(_sc(tmp_path, rate=4, slo=40), 0.0) == (2, False)   # min_replicas
    assert latency.replicas_for_slo(sc, 1.0) == 0 and latency.provisioned_replicas(sc, 1.0) == (0, True)
    ok = _sc(tmp_path, rate=400, slo=100)
    c = latency.replicas_for_slo(ok, 0.0)
    assert latency.provisioned_replicas(ok, 0.0) == (c, True)
    # a floor above the need
    assert latency.provisioned_replicas(_sc(tmp_path, rate=10, slo=100, min_replicas=5), 0.0) == (5, True)


def test_replicas_margin_for_heavy_tails(tmp_path):
    # lognormal p99/median 50 (c_s² 15.8): the pool keeps the measured under-estimate as margin
    sc = _sc(tmp_path, rate=20, amp=0.0, slo=400,
             inference="{distribution: lognormal, median: 5ms, p99: 250ms}")
    c = latency.replicas_for_slo(sc, 0.0)
    from scenarios.schema import cs2
    c2 = cs2(sc.model.inference_time)
    assert c2 > 1.7
    assert _p99_at_peak(sc, 0.0, c) * (1 + tails.p99_margin(c2, c)) <= 0.4
    assert c == 1 or _p99_at_peak(sc, 0.0, c - 1) * (1 + tails.p99_margin(c2, c - 1)) > 0.4


BATCHING = """\
name: b
horizon: 2d
traffic:
  rate: 200/s
  diurnal_amplitude: 0.8
data:
  velocity: 1e5/d
  concept_half_life: 3d
model:
  inference_time: {distribution: exponential, mean: 10ms}
  batch_time: {fixed: 5ms, per_item: 1ms}
serving:
  batching: {max_batch: 16, timeout: 50ms}
slo:
  latency_p99: SLOms
"""


def _batching(tmp_path, slo=100):
    p = tmp_path / "b.yaml"
    p.write_text(BATCHING.replace("SLO", str(slo)))
    return load_scenario(str(p))


def test_batching_model_path_is_all_miss_traffic_at_the_misses_peak(tmp_path):
    # with serving.batching the model path's p99 is that of traffic that all misses, at the
    # misses' peak rate (360/s · (1 − hit)); batches fill faster at a higher rate, so it differs
    from advisor import batching
    sc = _batching(tmp_path)
    peak = 360.0
    for hit in (0.0, 0.5):
        ref = latency.latency_quantile_s(sc, 0.99, 0.0, 3, np.array([peak * (1 - hit)]), np.array([1.0]))
        assert latency.model_path_p99_s(sc, hit, 3) == pytest.approx(ref, rel=1e-12)
    assert abs(latency.model_path_p99_s(sc, 0.5, 3) / latency.model_path_p99_s(sc, 0.0, 3) - 1) > 1e-3
    assert latency.offered_erlangs(sc, 100.0) == pytest.approx(batching.offered_erlangs(sc, 100.0), rel=1e-12)


def test_batching_service_floor_is_checked_at_the_peak_rate(tmp_path):
    # without queueing the batching p99 is 68.4 ms at the 360/s peak but 69.0 ms over the day's
    # phases (batches fill more slowly off-peak): an SLO of 68.7 ms is reachable at the peak,
    # which is where the pool is sized
    sc = _batching(tmp_path, slo=68.7)
    peak_floor = latency.latency_quantile_s(sc, 0.99, 0.0, None, np.array([360.0]), np.array([1.0]))
    day_floor = latency.latency_quantile_s(sc, 0.99, 0.0, None)
    assert peak_floor < 0.0687 < day_floor
    c = latency.replicas_for_slo(sc, 0.0)
    assert c is not None
    assert _p99_at_peak(sc, 0.0, c) <= 0.0687


def test_queued_cdf_at_and_below_the_service_points(tmp_path):
    sc = _sc(tmp_path)
    pts = latency._service_points(sc.model.inference_time)
    r, w = np.array([50.0]), np.array([1.0])
    cdf, _ = latency.latency_cdf(sc, 0.0, 1, r, w)
    # at a service point itself that point counts (it finishes at t with no wait: 1 − C)
    for t in (pts[0], pts[500], pts[999]):
        assert cdf(t) == pytest.approx(theory.response_cdf(t, pts, 50.0, 0.01, 1.0, 1), rel=1e-12)
    assert cdf(pts[0] * 0.5) == 0.0              # below every service time nothing has finished
    cdf2, _ = latency.latency_cdf(sc, 0.0, 2, np.array([50.0, 120.0]), np.array([0.3, 0.7]))
    ref = 0.3 * theory.response_cdf(pts[300], pts, 50.0, 0.01, 1.0, 2) + \
        0.7 * theory.response_cdf(pts[300], pts, 120.0, 0.01, 1.0, 2)
    assert cdf2(pts[300]) == pytest.approx(ref, rel=1e-12)


def test_search_bracket_covers_a_slow_lookup(tmp_path):
    # the starting bracket is 10 × the slower path's 0.9999 quantile: here the lookup,
    # exponential with mean 200 ms (0.9999 quantile 0.2 · ln 1e4 = 1.84 s)
    slow = _sc(tmp_path, sets=["serving.lookup_time={distribution: exponential, mean: 200ms}"])
    _, hi = latency.latency_cdf(slow, 0.9, 3, np.array([40.0]), np.array([1.0]))
    assert hi >= 10 * 0.2 * math.log(1e4) * (1 - 1e-12)
    # and never below 10 ms, however fast both paths are
    fast = _sc(tmp_path, amp=0.0, inference="{distribution: deterministic, value: 0.01ms}",
               sets=["serving.lookup_time={distribution: deterministic, value: 0.01ms}"])
    _, hi = latency.latency_cdf(fast, 0.5, 3, np.array([40.0]), np.array([1.0]))
    assert hi >= 0.01 * (1 - 1e-12)


def test_failures_take_their_own_latency_model(tmp_path):
    # with serving.failures a pool's latency is the mixture over replicas down (advisor.failures);
    # without a pool (replicas None) it is the service time alone, as without failures
    from advisor import failures
    sc = _sc(tmp_path, rate=50, amp=0.0, sets=["serving.failures={mtbf: 1h, mttr: 30m}"])
    r, w = np.array([50.0]), np.array([1.0])
    # one replica, down a third of the time: its p99 is not that of an always-up replica
    plain1 = latency.latency_quantile_s(_sc(tmp_path, rate=50, amp=0.0), 0.99, 0.2, 1, r, w)
    assert latency.latency_quantile_s(sc, 0.99, 0.2, 1, r, w) != pytest.approx(plain1, rel=1e-3)
    for c in (1, 2, 4):
        assert latency.latency_quantile_s(sc, 0.99, 0.2, c, r, w) == pytest.approx(
            failures.latency_quantile_s(sc, 0.99, 0.2, c, r, w), rel=1e-12)
    assert latency.latency_quantile_s(sc, 0.95, 0.2, 4, r, w) == pytest.approx(
        failures.latency_quantile_s(sc, 0.95, 0.2, 4, r, w), rel=1e-12)
    # replicas down matter: with failures, 4 replicas answer more slowly than without
    plain = _sc(tmp_path, rate=50, amp=0.0)
    assert latency.latency_quantile_s(sc, 0.99, 0.2, 4, r, w) > latency.latency_quantile_s(plain, 0.99, 0.2, 4, r, w)
    assert latency.latency_quantile_s(sc, 0.99, 0.0, None, r, w) == pytest.approx(0.01 * math.log(100), rel=BISECT)


def test_batching_pool_queues(tmp_path):
    # with serving.batching the CDF is advisor.batching's for the given pool; one replica at the
    # 360/s peak queues batches (p99 69.0 ms) where an unbounded pool would not (68.4 ms)
    from advisor import batching
    sc = _batching(tmp_path)
    r, w = np.array([360.0]), np.array([1.0])
    cdf, hi = latency.latency_cdf(sc, 0.1, 1, r, w)
    ref, ref_hi = batching.latency_cdf(sc, 0.1, 1, r, w)
    for t in (0.03, 0.06, 0.07, 0.1):
        assert cdf(t) == pytest.approx(ref(t), rel=1e-12, abs=0)
    assert hi == ref_hi
    one = latency.latency_quantile_s(sc, 0.99, 0.0, 1, r, w)
    unbounded = latency.latency_quantile_s(sc, 0.99, 0.0, None, r, w)
    assert one > unbounded * (1 + 1e-3)


def test_model_path_search_starts_near_the_answer(monkeypatch, tmp_path):
    # the p99 search starts from 10 × the service's 0.9999 quantile (0.92 s here, p99 0.066 s):
    # bisection to 1e-7 relative takes ⌈log2(0.92 / (1e-7 · 0.066))⌉ = 28 halvings, plus the
    # bracket check and the mixture's check at its top: at most 30 CDF evaluations
    sc = _sc(tmp_path)
    calls = []
    real = theory.response_cdf

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(theory, "response_cdf", counting)
    q = latency.model_path_p99_s(sc, 0.5, 1)
    assert q == pytest.approx(math.log(100) / 70, rel=GRID)
    assert len(calls) <= 2 + math.ceil(math.log2(10 * 0.01 * math.log(1e4) / (1e-7 * q)))
