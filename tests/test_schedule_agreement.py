"""Training schedules whose jobs outlast their period, the default period of a pinned periodic
design, and the exact M/D/c chain's banded solve (issue 11: costs and latency that agree)."""

import numpy as np
import pytest

from advisor import advise, design_for, predict
from advisor import tails
from advisor.costs import retrains_per_horizon
from advisor.provisioning import _slo_margin, max_load_erlangs
from advisor.latency import _service_points
from advisor.schedule import cycle_s, default_retrain_every_s, train_job_s
from scenarios import load_scenario
from simulator import simulate

# a 72 h window of 3.37M examples/day: one training job takes 1.77 h (300 s + 600 s per 1M)
SLOW_JOB = ["horizon=6h", "traffic.rate=5/s", "traffic.cardinality=1e6", "data.velocity=3.37e6/d",
            "data.batch_interval=30m", "model.training_window=72h", "architecture.training=periodic",
            "architecture.serving=dynamic"]


def test_jobs_longer_than_the_period_run_back_to_back_on_both_sides():
    # retraining every 30 min with 1.77 h jobs: the simulator queues each job behind the running
    # one; the advisor must count the jobs that actually finish, bill them, and age the models
    # by the back-to-back schedule (it counted one job per period: 8 instead of 3, before)
    sc = load_scenario("spam", SLOW_JOB + ["architecture.retrain_every=30m"])
    d = design_for(sc, advise(sc, remedies=False).training)
    assert d.retrain_every_s == 1800
    job = train_job_s(sc, "periodic")
    assert job > 1800 and cycle_s(sc, d) == job
    p = predict(sc, d)
    assert any("back to back" in n for n in p.notes)
    r = simulate(sc, d, seed=3)
    m = r.metrics
    # starts at 30 min, then every job: 1800 + k·6366 + 6366 <= 21600 for k = 0, 1, 2
    # (training.runs counts the initial model too)
    deploys = [e["t_s"] for e in r.events if e["event"] == "deploy" and e["t_s"] > 0]
    assert retrains_per_horizon(sc, d) == len(deploys) == m["training"]["runs"] - 1 == 3
    # back to back: one job apart, the first a period plus a job in (to the job time's 1%)
    assert np.diff(deploys) == pytest.approx([job, job], rel=0.01)
    assert deploys[0] == pytest.approx(1800 + job, rel=0.01)
    # billed job time and data kept: the simulator's window counts a straddling batch by its
    # share (Stats.since), so both sides train on and store velocity × window examples
    assert m["cost_usd"]["recurring_usd_per_month"]["retraining"] == pytest.approx(
        p.recurring_usd_per_month["retraining"], rel=1e-9)
    assert m["storage"]["data_bytes"] == pytest.approx(p.data_bytes, rel=1e-9)
    assert m["cost_usd"]["one_off_usd"]["initial_training"] == pytest.approx(
        p.one_off_usd["initial_training"], rel=1e-9)
    # mean model age over 108k requests (sd of the mean ~15 s: the age's sd / sqrt(n));
    # 1% ≈ 9 sd. Ages one period apart (the old schedule) differ by ~10%
    assert m["staleness"]["model_age_s"]["mean"] == pytest.approx(p.mean_model_age_s, rel=0.01)


def test_a_pinned_periodic_design_without_a_period_gets_one_that_fits_a_job():
    sc = load_scenario("spam", SLOW_JOB)
    job = train_job_s(sc, "periodic")
    every = default_retrain_every_s(sc)
    assert every >= job and every - job < sc.data.batch_interval
    assert every % sc.data.batch_interval == 0
    d = design_for(sc)
    assert d.retrain_every_s >= job
    assert not any("back to back" in n for n in predict(sc, d).notes)


def _dense_queue_probs(a: float, c: int, K: int) -> np.ndarray:
    """Reference: the same chain's stationary law by a dense eigen-solve of the full K-state
    matrix (the Poisson row untruncated, its tail lumped into the last state)."""
    from scipy.stats import poisson
    n = np.arange(K)
    base = np.maximum(n - c, 0)
    P = np.zeros((K, K))
    for i in range(K):
        P[i, base[i]:] = poisson.pmf(np.arange(K - base[i]), a)
        P[i, K - 1] += poisson.sf(K - 1 - base[i], a)
    w, v = np.linalg.eig(P.T)
    pi = np.real(v[:, np.argmin(np.abs(w - 1))])
    pi = pi / pi.sum()
    return np.concatenate([[pi[: c + 1].sum()], pi[c + 1:]])


@pytest.mark.parametrize("c,rho", [(1, 0.5), (1, 0.95), (3, 0.9), (8, 0.97), (30, 0.8), (64, 0.95),
                                   (200, 0.9)])
def test_mdc_banded_solve_equals_a_dense_eigen_solve(c, rho):
    a = round(rho * c, 12)
    q = tails.mdc_queue_probs(a, c)
    ref = _dense_queue_probs(a, c, tails.mdc_states(a, c))
    # both are the same truncated chain: agreement to rounding (1e-10 on the CDF; the dense
    # eigen-solve itself is good to ~1e-12 at K ≤ 600)
    assert np.max(np.abs(np.cumsum(q) - np.cumsum(ref))) < 1e-10
    assert q.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("service", ["{distribution: deterministic, value: 8ms}",
                                     "{distribution: lognormal, median: 8ms, p99: 16ms}"])
def test_max_load_is_the_edge_of_the_slo(service):
    # Brent's root of the SLO margin: met at the returned load, missed 1e-6 above it
    sc = load_scenario("spam", [f"model.inference_time={service}", "slo.latency_p99=25ms"])
    es = sc.model.inference_time.mean_s
    pts = _service_points(sc.model.inference_time)
    for c in (1, 4, 20):
        load = max_load_erlangs(sc, 0.0, c, pts)
        assert 0 < load < c
        assert _slo_margin(sc, 0.0, c, load / es, pts) >= 0
        assert _slo_margin(sc, 0.0, c, load * (1 + 1e-6) / es, pts) < 0
