"""advisor.costs: every figure of predict() worked out by hand for one scenario and design
(issue 18, item 5; docs/testing.md). The latency p99, ages and accuracies come from the
modules that compute them (tested on their own in test_mutation_latency.py and
test_mutation_schedule.py); the cost arithmetic, job counts and the assembly are checked here
against the scenario's prices and the schedule counted by hand."""

import numpy as np
import pytest

from advisor import costs, latency, staleness
from advisor.accuracy import loss_distribution
from scenarios import load_scenario
from scenarios.accounting import MONTH_S
from scenarios.design import Design

from tests.conftest import MUT_SCENARIO as SCENARIO  # noqa: E402
H = 172_800.0
JOB = 420.0                        # 300 s + 1200 s · 4e5/1e6 / 4 trainers
VCPU_S = 0.0864 / 3600             # the default price per vCPU-second
EXAMPLE_B = 8 * 8 + 16             # 8 float64 features, label and timestamp
MODEL_B = 8 * (3 * 8 + 1)          # weights, bias, the transform's mean and scale


def _load(tmp_path, *sets, text=SCENARIO):
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return load_scenario(str(p), list(sets))


def test_jobs_within_by_counting():
    # jobs start at k·every (k ≥ 1) and count when they finish by the horizon
    def brute(h, every, job):
        ks = range(1, int(h // every) + 2)
        if job > 0:
            return float(sum(k * every + job <= h for k in ks))
        return float(sum(k * every < h for k in ks))      # instant jobs: started before the horizon
    for h, every, job in [(10, 5, 0), (11, 5, 0), (10, 5, 5), (10, 5, 5.5), (3, 5, 1), (3, 5, 0),
                          (172_800, 3600, 420), (172_800, 200, 620), (100, 10, 1e-3), (7200, 3600, 0),
                          (100.3, 10, 0.5), (7200, 3600, 1e-7), (86400, 86400, 1e-6)]:
        assert costs._jobs_within(h, every, job) == brute(h, every, job), (h, every, job)
        assert isinstance(costs._jobs_within(h, every, job), float)


def test_model_bytes():
    assert costs.model_bytes(8) == MODEL_B and costs.model_bytes(1) == 32


def test_job_counts(tmp_path):
    sc = _load(tmp_path)
    assert costs.retrains_per_horizon(sc, Design("static", None, "dynamic", None, 2)) == 0.0
    assert costs.table_refreshes_per_horizon(sc, Design("static", None, "static", None, 0)) == 0.0
    # periodic hourly: k·3600 + 420 ≤ 172,800 for k = 1..47
    assert costs.retrains_per_horizon(sc, Design("periodic", 3600.0, "dynamic", None, 2)) == 47.0
    # continuous: hourly updates of 302.5 s: also 47
    assert costs.retrains_per_horizon(sc, Design("continuous", None, "dynamic", None, 2)) == 47.0
    # hybrid top 1000: refresh = job + 2 s batch prediction, hourly: 47
    assert costs.table_refreshes_per_horizon(sc, Design("periodic", 3600.0, "hybrid", 1000, 2)) == 47.0
    # the full table (1e5 keys, 200 s) with retrains every 100 s of 420 s jobs: the jobs run
    # back to back (docs/fidelity.md, "Costs"), one deployment every 420 s from 100 s on, each
    # refresh done 620 s after its job's start: 100 + (k − 1)·420 + 620 ≤ 172,800 for k = 1..410
    assert costs.table_refreshes_per_horizon(sc, Design("periodic", 100.0, "static", None, 0)) == 410.0
    assert costs.initial_job_s(sc) == pytest.approx(JOB, rel=1e-12, abs=0)
    # continuous updates that take 2 h (update_time) on hourly batches queue and run back to
    # back: 3600 + (k − 1)·7200 + 7200 ≤ 172,800 for k ≤ 23.5; with a hybrid table each refresh
    # adds 2 s: k ≤ 23.4997, so 23 as well
    slow = _load(tmp_path, "model.update_time={fixed: 2h}")
    assert costs.retrains_per_horizon(slow, Design("continuous", None, "dynamic", None, 2)) == 23.0
    assert costs.table_refreshes_per_horizon(slow, Design("continuous", None, "hybrid", 1000, 2)) == 23.0
    # a job far shorter than the 1e-9 rounding slack: the job that would start at the horizon
    # itself is not counted (static training has none at all)
    tiny = _load(tmp_path, "model.train_time={fixed: 0.0001ms}", "horizon=2h")
    assert costs.retrains_per_horizon(tiny, Design("periodic", 3600.0, "dynamic", None, 2)) == 1.0
    assert costs.retrains_per_horizon(tiny, Design("static", None, "dynamic", None, 2)) == 0.0
    # 6 h every 2 h, job 3 h: k·7200 + 10800 ≤ 21600 for k = 1 only
    sc6 = _load(tmp_path, "horizon=6h", "model.train_time={fixed: 3h}")
    assert costs.retrains_per_horizon(sc6, Design("periodic", 7200.0, "dynamic", None, 2)) == 1.0


@pytest.mark.parametrize("life", [None, 30 * 86400.0])
def test_predict_every_figure_by_hand(tmp_path, life):
    sc = _load(tmp_path)
    d = Design("periodic", 3600.0, "hybrid", 1000, 3)
    p = costs.predict(sc, d, life)
    to_month = MONTH_S / H
    w = np.arange(1, 100_001, dtype=float) ** -1.1
    hit = w[:1000].sum() / w.sum()
    assert p.cache_hit_ratio == pytest.approx(hit, rel=1e-9, abs=0)
    assert p.latency_p99_ms == pytest.approx(latency.latency_quantile_s(sc, 0.99, hit, 3) * 1e3, rel=1e-12, abs=0)
    assert p.table_bytes == 1000 * 64
    assert p.data_bytes == pytest.approx(4e5 * EXAMPLE_B, rel=1e-12, abs=0)
    table_usd = 64_000 / 1e9 * 0.25
    storage = table_usd + (4e5 * EXAMPLE_B + MODEL_B) / 1e9 * 0.02
    assert p.table_usd_per_month == pytest.approx(table_usd, rel=1e-12, abs=0)
    assert p.storage_usd_per_month == pytest.approx(storage, rel=1e-12, abs=0)
    serving = 3 * MONTH_S * VCPU_S
    training = 47 * JOB * 4 * VCPU_S * to_month
    fill = 1000 * 0.01 * VCPU_S                       # 10 vCPU-s per fill
    batch = 47 * fill * to_month
    assert p.serving_usd_per_month == pytest.approx(serving, rel=1e-12, abs=0)
    assert p.training_usd_per_month == pytest.approx(training, rel=1e-12, abs=0)
    assert p.batch_prediction_usd_per_month == pytest.approx(batch, rel=1e-12, abs=0)
    assert p.compute_usd_per_month == pytest.approx(serving + training + batch, rel=1e-12, abs=0)
    assert p.one_off_usd == pytest.approx({"initial_training": JOB * 4 * VCPU_S, "initial_table_fill": fill,
                                           "total": JOB * 4 * VCPU_S + fill}, rel=1e-12, abs=0)
    rec = {"serving": serving, "retraining": training, "table_refreshes": batch, "storage": storage}
    rec["total"] = sum(rec.values())
    assert p.recurring_usd_per_month == pytest.approx(rec, rel=1e-12, abs=0)
    assert p.cost_usd_per_month == pytest.approx(rec["total"], rel=1e-12, abs=0)
    assert p.total_usd_over_horizon == pytest.approx(JOB * 4 * VCPU_S + fill + rec["total"] * (life or H) / MONTH_S,
                                                     rel=1e-12, abs=0)
    assert p.replica_hours == pytest.approx(3 * H / 3600, rel=1e-12, abs=0)
    assert p.replicas == 3 and p.train_job_s == pytest.approx(JOB) and p.batch_predict_s == pytest.approx(2.0)
    D = 1800 + JOB
    assert p.model_age_range_s == pytest.approx((D, D + 3600))
    assert p.table_age_range_s == pytest.approx((D + 2, D + 2 + 3600))
    fresh = staleness.fresh_accuracy(sc)
    age_m, acc_m = staleness.mean_age_and_accuracy(sc, d, False)
    age_t, acc_t = staleness.mean_age_and_accuracy(sc, d, True)
    served = hit * acc_t + (1 - hit) * acc_m
    assert p.fresh_accuracy == pytest.approx(fresh, rel=1e-12, abs=0)
    assert p.served_accuracy == pytest.approx(served, rel=1e-12, abs=0)
    assert p.mean_model_age_s == pytest.approx(hit * age_t + (1 - hit) * age_m, rel=1e-12, abs=0)
    assert p.accuracy_loss == pytest.approx(fresh - served, rel=1e-9, abs=0)
    dist = loss_distribution(sc, fresh - served)
    assert p.accuracy_loss_sd == pytest.approx(dist["sd"], rel=1e-9, abs=0)
    assert p.accuracy_loss_band90 == pytest.approx(tuple(dist["band90"]), rel=1e-9, abs=0)
    assert p.accuracy_confidence == 0.9
    assert p.accuracy_loss_at_confidence == pytest.approx(dist["at_confidence"], rel=1e-9, abs=0)
    assert p.accuracy_budget_met_at_confidence == (dist["at_confidence"] <= 0.02)
    assert p.autoscale is None and p.batching is None and p.failures is None and p.rollout is None
    assert p.notes == ()


def test_predict_dynamic_design_has_no_table(tmp_path):
    sc = _load(tmp_path)
    d = Design("periodic", 3600.0, "dynamic", None, 2)
    p = costs.predict(sc, d)
    assert p.cache_hit_ratio == 0.0 and p.table_bytes == 0 and p.table_age_range_s is None
    assert p.batch_prediction_usd_per_month == 0.0 and p.one_off_usd["initial_table_fill"] == 0.0
    assert p.table_usd_per_month == 0.0
    age, acc = staleness.mean_age_and_accuracy(sc, d, False)
    assert p.mean_model_age_s == pytest.approx(age, rel=1e-12, abs=0)
    assert p.served_accuracy == pytest.approx(acc, rel=1e-12, abs=0)
    assert p.latency_p99_ms == pytest.approx(latency.latency_quantile_s(sc, 0.99, 0.0, 2) * 1e3, rel=1e-12, abs=0)
    j = p.to_json()
    assert j["table_age_range_s"] is None and j["model_age_range_s"] == list(p.model_age_range_s)
    assert isinstance(j["accuracy_loss_band90"], list) and j["notes"] == []
    assert j["one_off_usd"] == p.one_off_usd and j["replicas"] == 2


def test_predict_static_table_to_json(tmp_path):
    sc = _load(tmp_path)
    p = costs.predict(sc, Design("static", None, "static", None, 0))
    assert p.cache_hit_ratio == pytest.approx(1.0) and p.replicas == 0
    assert p.training_usd_per_month == 0.0 and p.batch_prediction_usd_per_month == 0.0
    assert p.serving_usd_per_month == 0.0
    j = p.to_json()
    assert j["table_age_range_s"] == list(p.table_age_range_s) and isinstance(j["table_age_range_s"], list)
    assert p.latency_p99_ms == pytest.approx(2.0, rel=2e-7)          # lookups of 2 ms only


def test_predict_dispatches_triggered_and_shifts(tmp_path):
    from advisor.triggered import as_periodic, predict_with_shifts
    sc = _load(tmp_path)
    d = Design("triggered", None, "dynamic", None, 2, trigger_on="new_examples", trigger_examples=1e5)
    p = costs.predict(sc, d)
    ref = predict_with_shifts(sc, d, costs._predict(sc, as_periodic(sc, d)), H)
    assert p == ref
    shifted = _load(tmp_path, "data.shifts={every: 12h, magnitude: 0.5}")
    dp = Design("periodic", 3600.0, "dynamic", None, 2)
    assert costs.predict(shifted, dp, 5 * H) == predict_with_shifts(shifted, dp, costs._predict(shifted, dp, 5 * H),
                                                                     5 * H)
    # a smooth scenario with a periodic design: the schedule alone
    assert costs.predict(sc, dp) == costs._predict(sc, dp)


def test_predict_autoscaled_pool_is_billed_by_replica_hours(tmp_path):
    from advisor.provisioning import autoscaled_figures, policy_for
    sc = _load(tmp_path, "serving.autoscale={target_utilization: 0.6, interval: 5m}", "traffic.rate=400/s")
    policy = policy_for(sc, 0.0)
    d = Design("periodic", 3600.0, "dynamic", None, policy.max_replicas, autoscale=policy)
    p = costs.predict(sc, d)
    auto = autoscaled_figures(sc, 0.0, policy)
    assert p.autoscale == auto
    assert p.latency_p99_ms == pytest.approx(auto["latency_p99_s"] * 1e3, rel=1e-12, abs=0)
    assert p.replica_hours == pytest.approx(auto["replica_hours"], rel=1e-12, abs=0)
    # the replica-hours actually run, scaled from the horizon to a month
    serving = auto["replica_hours"] * 3600 * (MONTH_S / H) * VCPU_S
    assert p.serving_usd_per_month == pytest.approx(serving, rel=1e-12, abs=0)
    assert p.recurring_usd_per_month["serving"] == pytest.approx(serving, rel=1e-12, abs=0)
    assert p.rollout is None


@pytest.mark.parametrize("rollout", ["{strategy: blue_green, warmup: 10m}",
                                     "{strategy: rolling, max_unavailable: 1, warmup: 10m}"])
def test_predict_rollout_adds_its_surge_and_dips(tmp_path, rollout):
    from advisor import rollout as ro
    sc = _load(tmp_path, f"serving.rollout={rollout}", "traffic.rate=150/s")
    d = Design("periodic", 3600.0, "dynamic", None, 3)
    p = costs.predict(sc, d)
    roll = ro.figures(sc, 0.0, 3, 47.0, 0.0864)          # 47 hourly deployments over the horizon
    assert p.rollout == roll
    to_month = MONTH_S / H
    assert p.serving_usd_per_month == pytest.approx(3 * MONTH_S * VCPU_S + roll["extra_usd_per_month"], rel=1e-12, abs=0)
    assert p.replica_hours == pytest.approx(3 * H / 3600 + roll["extra_replica_hours_per_month"] / to_month,
                                            rel=1e-12, abs=0)
    if roll["replicas_short"]:
        assert p.latency_p99_ms == pytest.approx(
            ro.p99_with_dips_s(sc, 0.0, 3, roll["share_of_time_short"], roll["replicas_short"]) * 1e3, rel=1e-12, abs=0)
    else:
        assert p.latency_p99_ms == pytest.approx(latency.latency_quantile_s(sc, 0.99, 0.0, 3) * 1e3, rel=1e-12, abs=0)
    # a static table has no replicas to roll
    assert costs.predict(sc, Design("static", None, "static", None, 0)).rollout is None


def test_predict_failures_and_batching_figures(tmp_path):
    from advisor import batching, failures
    sc = _load(tmp_path, "serving.failures={mtbf: 1d, mttr: 1h}")
    d = Design("periodic", 3600.0, "hybrid", 1000, 3)
    p = costs.predict(sc, d)
    hit = p.cache_hit_ratio
    assert p.failures == failures.figures(sc, hit, 3)
    assert costs.predict(sc, Design("static", None, "static", None, 0)).failures is None
    sb = _load(tmp_path, "serving.batching={max_batch: 16, timeout: 5ms}",
               "model.batch_time={fixed: 5ms, per_item: 1ms}")
    pb = costs.predict(sb, d)
    assert pb.batching == batching.figures(sb, 40.0 * (1 - pb.cache_hit_ratio))   # at the mean rate
    assert costs.predict(sb, Design("static", None, "static", None, 0)).batching is None


def test_predict_table_and_model_ages_are_separate(tmp_path):
    # top 50,000 keys: a 100 s batch prediction makes table rows older than the model's
    sc = _load(tmp_path)
    d = Design("periodic", 3600.0, "hybrid", 50_000, 3)
    p = costs.predict(sc, d)
    hit = p.cache_hit_ratio
    age_m, acc_m = staleness.mean_age_and_accuracy(sc, d, False)
    age_t, acc_t = staleness.mean_age_and_accuracy(sc, d, True)
    assert age_t > age_m + 50
    assert p.mean_model_age_s == pytest.approx(hit * age_t + (1 - hit) * age_m, rel=1e-12, abs=0)
    assert p.served_accuracy == pytest.approx(hit * acc_t + (1 - hit) * acc_m, rel=1e-12, abs=0)
    assert p.model_age_range_s == pytest.approx((1800 + JOB, 1800 + JOB + 3600), rel=1e-12, abs=0)
    assert p.table_age_range_s == pytest.approx((1800 + JOB + 100, 1800 + JOB + 100 + 3600), rel=1e-12, abs=0)


def test_predict_continuous_training_job(tmp_path):
    sc = _load(tmp_path)
    p = costs.predict(sc, Design("continuous", None, "dynamic", None, 2))
    # hourly updates of 300 + 1200 · (2e5/24/1e6) / 4 = 302.5 s; 47 finish within the horizon
    assert p.train_job_s == pytest.approx(302.5, rel=1e-12, abs=0)
    assert p.training_usd_per_month == pytest.approx(47 * 302.5 * 4 * VCPU_S * MONTH_S / H, rel=1e-12, abs=0)
    # the initial model is a full-window job either way
    assert p.one_off_usd["initial_training"] == pytest.approx(JOB * 4 * VCPU_S, rel=1e-12, abs=0)


def test_predict_accuracy_budget_at_confidence(tmp_path):
    d = Design("periodic", 3600.0, "dynamic", None, 2)
    sc = _load(tmp_path, "slo.accuracy_confidence=0.95")
    p = costs.predict(sc, d)
    assert p.accuracy_confidence == 0.95
    dist = loss_distribution(sc, p.accuracy_loss)
    at = dist["at_confidence"]
    assert p.accuracy_loss_at_confidence == pytest.approx(at, rel=1e-12, abs=0)
    assert at > p.accuracy_loss > 0
    # the budget holds at the confidence quantile, with a 1e-9 relative allowance for rounding:
    # met exactly at it, not met 1e-8 below it, not met at 0.8 of it
    for budget, met in ((at, True), (at * (1 - 1e-8), False), (at * 0.8, False), (at * 1.25, True)):
        sb = _load(tmp_path, "slo.accuracy_confidence=0.95", f"slo.max_accuracy_loss={budget!r}")
        assert costs.predict(sb, d).accuracy_budget_met_at_confidence is met, budget


def test_back_to_back_jobs_counted_and_noted(tmp_path):
    # 420 s jobs retrained every 100 s queue: job k starts at 100 + (k − 1)·420 and finishes by
    # the horizon when 100 + k·420 ≤ 172,800, k = 1..411 (counted from the period, not the cycle)
    sc = _load(tmp_path)
    from scenarios.units import format_duration
    d = Design("periodic", 100.0, "dynamic", None, 2)
    assert costs.retrains_per_horizon(sc, d) == 411.0
    # every 300 s: 300 + k·420 ≤ 172,800 for k = 1..410
    assert costs.retrains_per_horizon(sc, Design("periodic", 300.0, "dynamic", None, 2)) == 410.0
    note = costs._back_to_back_note(sc, d)
    assert note.startswith(f"a training job takes {format_duration(JOB)}, longer than the {format_duration(100.0)} ")
    assert note.endswith(f"one deployment every {format_duration(JOB)}")
    # 300 s: still shorter than the job; 420 s (= the job) and hourly: no note; static: none
    assert costs._back_to_back_note(sc, Design("periodic", 300.0, "dynamic", None, 2)) is not None
    assert costs._back_to_back_note(sc, Design("periodic", JOB, "dynamic", None, 2)) is None
    assert costs._back_to_back_note(sc, Design("periodic", 3600.0, "dynamic", None, 2)) is None
    assert costs._back_to_back_note(sc, Design("static", None, "dynamic", None, 2)) is None
    # continuous updates of 2 h on hourly batches: noted with the update's own time
    slow = _load(tmp_path, "model.update_time={fixed: 2h}")
    n = costs._back_to_back_note(slow, Design("continuous", None, "dynamic", None, 2))
    assert n.startswith(f"a training job takes {format_duration(7200.0)}, longer than the {format_duration(3600.0)} ")
    # and the prediction carries the note
    assert note in costs.predict(sc, d).notes
