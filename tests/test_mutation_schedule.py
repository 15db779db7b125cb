"""advisor.schedule and advisor.staleness on a scenario whose figures are worked out by hand
(issue 18, item 5; docs/testing.md). The model-age profile is checked against an explicit
enumeration of the deployments."""

import numpy as np
import pytest

from advisor import schedule, staleness, theory
from scenarios import load_scenario
from scenarios.design import Design

from tests.conftest import MUT_SCENARIO as SCENARIO  # noqa: E402
# by hand: window examples 2e5/d · 2 d = 4e5; a training job 300 s + 1200 s · 0.4 / 4 = 420 s;
# a continuous update over one hour's 2e5/24 examples 300 + 1200 · (2e5/24/1e6) / 4 = 302.5 s;
# batch prediction of k keys k · 10 ms / 5 workers; D = 1800 + 420 = 2220 s
H, L, JOB, JOB_CONT = 172_800.0, 1800.0, 420.0, 302.5


@pytest.fixture(scope="module")
def sc(tmp_path_factory):
    p = tmp_path_factory.mktemp("sc") / "s.yaml"
    p.write_text(SCENARIO)
    return load_scenario(str(p))


def _with(sc, tmp_path, *sets):
    p = tmp_path / "s.yaml"
    p.write_text(SCENARIO)
    return load_scenario(str(p), list(sets))


def test_table_keys_and_hit_ratio(sc):
    assert schedule.table_keys(sc, Design("periodic", 3600.0, "static", None, 0)) == 100_000
    assert schedule.table_keys(sc, Design("periodic", 3600.0, "hybrid", 250, 2)) == 250
    assert schedule.table_keys(sc, Design("periodic", 3600.0, "dynamic", None, 2)) == 0
    # Zipf(1.1) over 1e5 keys: share of the top 250 by direct summation
    w = np.arange(1, 100_001, dtype=float) ** -1.1
    assert schedule.hit_ratio(sc, 250) == pytest.approx(w[:250].sum() / w.sum(), rel=1e-9)


def test_job_times_by_hand(sc, tmp_path):
    assert schedule.window_examples(sc) == pytest.approx(4e5, rel=1e-12)
    assert schedule.train_job_s(sc, "periodic") == pytest.approx(JOB, rel=1e-12)
    assert schedule.train_job_s(sc, "static") == pytest.approx(JOB, rel=1e-12)
    assert schedule.train_job_s(sc, "continuous") == pytest.approx(JOB_CONT, rel=1e-12)
    # a separate update law for continuous training: 10 s + 60 s per million, over 2e5/24 examples
    sc2 = _with(sc, tmp_path, "model.update_time={fixed: 10s, per_million_examples: 60s}")
    assert schedule.train_job_s(sc2, "continuous") == pytest.approx(10 + 60 * (2e5 / 24 / 1e6) / 4, rel=1e-12)
    assert schedule.train_job_s(sc2, "periodic") == pytest.approx(JOB, rel=1e-12)
    assert schedule.batch_predict_s(sc, 1000) == pytest.approx(1000 * 0.01 / 5, rel=1e-12)
    assert schedule.lag_s(sc, "periodic") == pytest.approx(L + JOB, rel=1e-12)
    assert schedule.lag_s(sc, "continuous") == pytest.approx(L + JOB_CONT, rel=1e-12)


def test_periods(sc):
    assert schedule.period_s(sc, Design("static", None, "dynamic", None, 2)) == H
    assert schedule.period_s(sc, Design("continuous", None, "dynamic", None, 2)) == 3600.0
    p = schedule.period_s(sc, Design("periodic", 7200, "dynamic", None, 2))
    assert p == 7200.0 and isinstance(p, float)


def test_age_ranges_by_hand(sc, tmp_path):
    D = L + JOB
    assert staleness.age_range(sc, Design("static", None, "dynamic", None, 2), False) == pytest.approx((D, D + H))
    assert staleness.age_range(sc, Design("static", None, "static", None, 0), True) == pytest.approx((D, D + H))
    assert staleness.age_range(sc, Design("periodic", 3600.0, "dynamic", None, 2), False) == pytest.approx(
        (D, D + 3600))
    # continuous: D = 1800 + 302.5 s, a new model every batch interval
    assert staleness.age_range(sc, Design("continuous", None, "dynamic", None, 2), False) == pytest.approx(
        (L + JOB_CONT, L + JOB_CONT + 3600))
    # hybrid top 1,000: batch prediction 2 s added to the table's rows
    assert staleness.age_range(sc, Design("periodic", 3600.0, "hybrid", 1000, 2), True) == pytest.approx(
        (D + 2, D + 2 + 3600))
    # retrains every 100 s of 420 s jobs run back to back (schedule.cycle_s): a deployment every
    # 420 s, and the full table (1e5 keys: 200 s) refreshed after each
    assert staleness.age_range(sc, Design("periodic", 100.0, "static", None, 0), True) == pytest.approx(
        (D + 200, D + 200 + 420))
    # a full table whose refresh (200 s) outlasts the deployment cycle runs back to back: the
    # same scenario with 10 s jobs retrained every 100 s refreshes every 200 s
    fast = _with(sc, tmp_path, "model.train_time={fixed: 10s, per_million_examples: 0s}")
    assert staleness.age_range(fast, Design("periodic", 100.0, "static", None, 0), True) == pytest.approx(
        (L + 10 + 200, L + 10 + 200 + 200))


def _ages_by_enumeration(t, cycle, job, bp, label_delay, static):
    """Age of the serving model at each t: the deployment with the latest start ≤ t. The
    initial model's data end at −(label delay + job); retrain k ≥ 1 starts at k·cycle with data
    ending k·cycle − label delay and serves from k·cycle + job + bp."""
    if static:
        return t + label_delay + job
    k = np.arange(1, int(t.max() / cycle) + 2)
    deploy_at = k * cycle + job + bp                       # the list of deployments
    live = np.searchsorted(deploy_at, t, side="right")     # how many have deployed by t
    end = np.where(live >= 1, live * cycle - label_delay, -label_delay - job)
    return t - end


@pytest.mark.parametrize("design,table,cycle,bp,static", [
    (Design("periodic", 3600.0, "dynamic", None, 2), False, 3600.0, 0.0, False),
    (Design("periodic", 3600.0, "hybrid", 1000, 2), True, 3600.0, 2.0, False),
    (Design("periodic", 450.0, "static", None, 0), True, 450.0, 200.0, False),
    (Design("static", None, "dynamic", None, 2), False, None, 0.0, True),
    # the model path of a hybrid design does not wait for the table's batch prediction (top
    # 50,000 keys: 100 s, several grid steps)
    (Design("periodic", 3600.0, "hybrid", 50_000, 2), False, 3600.0, 0.0, False),
    (Design("periodic", 3600.0, "hybrid", 50_000, 2), True, 3600.0, 100.0, False),
    # retrains every job time (420 s): back to back with no offset, a 21 s grid
    (Design("periodic", 420.0, "dynamic", None, 2), False, 420.0, 0.0, False),
])
def test_age_profile_equals_enumerated_deployments(sc, design, table, cycle, bp, static):
    age, w = staleness.age_profile(sc, design, table)
    per = H if static else design.retrain_every_s
    n = int(min(400_000, max(4096, 20 * H / per)))      # 20 grid points per period, within [4096, 4e5]
    assert age.size == n and w.size == n
    t = (np.arange(n) + 0.5) * H / n
    np.testing.assert_allclose(age, _ages_by_enumeration(t, cycle, JOB, bp, L, static), rtol=1e-12, atol=1e-6)
    # request weights: the diurnal rate 1 + 0.5 sin(2πt/1 d), normalised
    diurnal = 1 + 0.5 * np.sin(2 * np.pi * t / 86400.0)
    np.testing.assert_allclose(w, diurnal / diurnal.sum(), rtol=1e-12)


def test_age_profile_continuous(sc):
    age, _ = staleness.age_profile(sc, Design("continuous", None, "dynamic", None, 2), False)
    n = 4096
    t = (np.arange(n) + 0.5) * H / n
    np.testing.assert_allclose(age, _ages_by_enumeration(t, 3600.0, JOB_CONT, 0.0, L, False), rtol=1e-12, atol=1e-6)


def test_age_profile_grid_below_one_second_periods(sc, tmp_path):
    # periods under a second count as 1 s: 20 · 3 h / 1 s = 216,000 points (instant jobs, so the
    # deployment cycle is the period: schedule.cycle_s)
    sc3 = _with(sc, tmp_path, "horizon=3h", "model.train_time={fixed: 0s, per_million_examples: 0s}")
    assert staleness.age_profile(sc3, Design("periodic", 0.5, "dynamic", None, 2), False)[0].size == 216_000


def test_age_profile_grid_size_limits(sc, tmp_path):
    # 20·H/C points, C the deployment cycle max(T, job): 345,600 for T = 10 s with instant jobs;
    # capped at 400,000 for T = 1 s; at least 4096; 8,228 for T = 10 s and 420 s jobs
    fast = _with(sc, tmp_path, "model.train_time={fixed: 0s, per_million_examples: 0s}")
    assert staleness.age_profile(fast, Design("periodic", 10.0, "dynamic", None, 2), False)[0].size == 345_600
    assert staleness.age_profile(fast, Design("periodic", 0.5, "dynamic", None, 2), False)[0].size == 400_000
    assert staleness.age_profile(sc, Design("periodic", 86400.0, "dynamic", None, 2), False)[0].size == 4096
    assert staleness.age_profile(sc, Design("periodic", 10.0, "dynamic", None, 2), False)[0].size == 8228


def _kw(sc):
    return dict(features=8, half_life_s=3 * 86400.0, window_s=H, label_noise=0.05, examples=4e5)


def test_fresh_accuracy_and_request_weighted_means(sc):
    kw = _kw(sc)
    w_, om = theory.drift_spectrum(8, 3 * 86400.0)
    fresh = theory.accuracy_from_cos(theory.window_model_cos(0.0, H, w_, om) * theory.estimation_cos(4e5, 8, 0.05),
                                     0.05)
    assert staleness.fresh_accuracy(sc) == pytest.approx(float(fresh), rel=1e-12)
    d = Design("periodic", 3600.0, "hybrid", 1000, 2)
    n = 4096
    t = (np.arange(n) + 0.5) * H / n
    for table, bp in ((False, 0.0), (True, 2.0)):
        ages = _ages_by_enumeration(t, 3600.0, JOB, bp, L, False)
        wt = 1 + 0.5 * np.sin(2 * np.pi * t / 86400.0)
        wt /= wt.sum()
        mean_age, acc = staleness.mean_age_and_accuracy(sc, d, table)
        assert mean_age == pytest.approx(float(wt @ ages), rel=1e-9)
        assert acc == pytest.approx(float(wt @ theory.accuracy_vs_age(ages, **kw)), rel=1e-9)
    # the full table (200 s batch prediction, hourly): the table's ages and the model's differ
    d_full = Design("periodic", 3600.0, "static", None, 0)
    ages = _ages_by_enumeration(t, 3600.0, JOB, 200.0, L, False)
    assert staleness.mean_age_and_accuracy(sc, d_full, True)[0] == pytest.approx(float(wt @ ages), rel=1e-9)
    # about D + T/2 (the uniform-age law): within the diurnal weighting's few percent
    assert staleness.mean_age_and_accuracy(sc, d, False)[0] == pytest.approx(L + JOB + 1800, rel=0.05)


def test_cycle_and_default_period_by_hand(sc, tmp_path):
    # the deployment cycle is max(period, job): 420 s jobs retrained every 100 s run back to
    # back; hourly retrains and continuous hourly updates (302.5 s) keep their period
    assert schedule.cycle_s(sc, Design("periodic", 100.0, "dynamic", None, 2)) == 420.0
    assert schedule.cycle_s(sc, Design("periodic", 3600.0, "dynamic", None, 2)) == 3600.0
    assert schedule.cycle_s(sc, Design("continuous", None, "dynamic", None, 2)) == 3600.0
    assert schedule.cycle_s(sc, Design("static", None, "dynamic", None, 2)) == H
    slow = _with(sc, tmp_path, "model.update_time={fixed: 2h}")
    assert schedule.cycle_s(slow, Design("continuous", None, "dynamic", None, 2)) == 7200.0
    # the default period: the shortest multiple of the 1 h batch interval that fits one job
    assert schedule.default_retrain_every_s(sc) == 3600.0                       # 420 s job
    assert schedule.default_retrain_every_s(_with(sc, tmp_path, "model.train_time={fixed: 5000s}")) == 7200.0
    assert schedule.default_retrain_every_s(_with(sc, tmp_path, "model.train_time={fixed: 3600s}")) == 3600.0
    assert schedule.default_retrain_every_s(_with(sc, tmp_path, "model.train_time={fixed: 0s}")) == 3600.0


@pytest.mark.parametrize("period,job_time", [(100.0, None), (3600.0, 5000.0)])
def test_age_profile_back_to_back_equals_enumerated_jobs(sc, tmp_path, period, job_time):
    # jobs longer than their period queue: job k starts at s_k = T + (k − 1)·job, trains on the
    # batches in by then (data end ⌊s_k/3600⌋·3600 − L) and deploys at s_k + job; before the
    # first, the initial model (data end −L − job). With T = 1 h and 5000 s jobs, job 19 starts
    # exactly on a batch (3600 + 18·5000 = 26 h): its data end is that batch's
    scn = sc if job_time is None else _with(sc, tmp_path, f"model.train_time={{fixed: {job_time:g}s}}")
    job = JOB if job_time is None else job_time
    age, _ = staleness.age_profile(scn, Design("periodic", period, "dynamic", None, 2), False)
    n = age.size
    assert n == int(min(400_000, max(4096, 20 * H / job)))
    t = (np.arange(n) + 0.5) * H / n
    s_k = period + job * np.arange(0, int(H / job) + 2)
    deployed = np.searchsorted(s_k + job, t, side="right")        # jobs deployed by t
    start = s_k[np.maximum(deployed - 1, 0)]
    end = np.where(deployed >= 1, 3600.0 * (start // 3600.0) - L, -L - job)
    np.testing.assert_allclose(age, t - end, rtol=1e-12, atol=1e-6)
    if job_time is not None:
        on_batch = np.isclose(start, 26 * 3600.0) & (deployed >= 1)
        assert on_batch.any() and np.all(end[on_batch] == 26 * 3600.0 - L)


def test_age_profile_table_refresh_longer_than_the_cycle(sc, tmp_path):
    # 10 s jobs every 100 s, the full table (200 s of batch prediction): refreshes back to back,
    # one every 200 s, the rows 10 + 200 s behind their job's start
    fast = _with(sc, tmp_path, "model.train_time={fixed: 10s, per_million_examples: 0s}")
    age, _ = staleness.age_profile(fast, Design("periodic", 100.0, "static", None, 0), True)
    t = (np.arange(age.size) + 0.5) * H / age.size
    np.testing.assert_allclose(age, _ages_by_enumeration(t, 200.0, 10.0, 200.0, L, False), rtol=1e-12, atol=1e-6)


def test_static_cycle_is_the_horizon_even_for_a_job_longer_than_it(sc, tmp_path):
    slow = _with(sc, tmp_path, "model.train_time={fixed: 3d}")
    assert schedule.cycle_s(slow, Design("static", None, "dynamic", None, 2)) == H
