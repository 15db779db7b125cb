"""Issue 17: sudden shifts, monitoring the live model, triggered retraining (and the monitor's
selfcheck rows). Statistical tolerances say where they come from."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from advisor import advise, design_for, predict
from advisor import triggered as trig
from scenarios import load_scenario
from scenarios.design import Design
from scenarios.drift import concept_cos
from scenarios.shifts import blend_cos, edge_after_shift, shift_angle_rad, shift_rotation, shift_times_s
from simulator import simulate
from simulator.monitor import Monitor
from simulator.traffic import Concept

from .conftest import SPAM_MIN

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "monthly-shifts.yaml"


# --------------------------------------------------------------------- scenario fields

@pytest.mark.parametrize("extra, field", [
    ("  shifts: {every: 30d, at: [3d], magnitude: 0.5}\n", "data.shifts"),
    ("  shifts: {every: 30d, magnitude: 1.5}\n", "data.shifts.magnitude"),
    ("  shifts: {at: [3d]}\n", "data.shifts.magnitude"),
    ("  shifts: {every: 30d, magnitude: 0.5, size: 2}\n", "data.shifts.size"),
])
def test_bad_shifts_are_one_line_errors(cli, write, extra, field):
    p = write(SPAM_MIN.replace("  concept_half_life: 3d\n", "  concept_half_life: 3d\n" + extra))
    res = cli("advise", p)
    assert res.exit_code == 2
    lines = res.stderr.strip().split("\n")
    assert len(lines) == 1 and f"{p}:9: {field}" in lines[0], res.stderr


@pytest.mark.parametrize("extra, field, msg", [
    ("monitoring: {window: 30m, alert_below: 0.8}\n", "monitoring.window", "shorter than data.batch_interval"),
    ("monitoring: {window: 6h}\n", "monitoring", "exactly one of alert_below"),
    ("monitoring: {window: 6h, alert_below: 0.8, alert_drop: 0.1}\n", "monitoring", "exactly one"),
    ("architecture: {training: triggered, trigger: {on: alert}}\n", "architecture.trigger", "needs a `monitoring:`"),
    ("architecture: {training: triggered}\n", "architecture", "needs `trigger:"),
    ("architecture: {training: periodic, trigger: {on: alert}}\n", "architecture", "only to training: triggered"),
    ("architecture: {training: triggered, trigger: {on: new_examples}}\n", "architecture.trigger.on", "needs `new_examples: N`"),
    ("architecture: {training: triggered, trigger: {on: sometimes}}\n", "architecture.trigger.on", ""),
])
def test_bad_monitoring_and_trigger(cli, write, extra, field, msg):
    p = write(SPAM_MIN + extra)
    res = cli("advise", p)
    assert res.exit_code == 2, res.stdout
    line = res.stderr.strip()
    assert "\n" not in line and f": {field}:" in line and msg in line, line
    assert f"{p}:" in line


def test_new_fields_parse():
    sc = load_scenario(str(EXAMPLE), ["architecture={training: triggered, trigger: {new_examples: 5e4, min_interval: 2h}}"])
    assert sc.data.shifts.at == (20 * 86400.0, 50 * 86400.0, 80 * 86400.0)
    assert sc.monitoring.window == 6 * 3600.0 and sc.monitoring.alert_below == 0.87
    assert sc.architecture.trigger.kind == "new_examples" and sc.architecture.trigger.new_examples == 50000
    assert sc.architecture.trigger.min_interval == 7200.0


# ----------------------------------------------------------------------- the shift law

def test_shift_turns_a_fresh_concept_by_exactly_phi():
    rng = np.random.default_rng(1)
    v = rng.standard_normal(16)
    v /= np.linalg.norm(v)
    for mag in (0.1, 0.6, 1.0):
        r = shift_rotation(v, rng.standard_normal(16), mag)
        assert np.allclose(r @ r.T, np.eye(16), atol=1e-12)           # a rotation
        assert math.isclose(float(v @ (r @ v)), math.cos(shift_angle_rad(mag)), abs_tol=1e-12)
        assert math.isclose(edge_after_shift(mag), 1 - mag)          # the share of the edge destroyed
    assert math.isclose(float(blend_cos(0.0, 0.6)), math.cos(shift_angle_rad(0.6)))
    assert math.isclose(float(blend_cos(1.0, 0.6)), 1.0)
    assert math.isclose(float(blend_cos(0.5, 0.6)), math.cos(shift_angle_rad(0.3)), abs_tol=1e-12)  # the mean bisects


def test_concept_with_shifts_jumps_then_ages_by_the_smooth_law():
    c = Concept(np.random.default_rng(3), 16, 86400.0, 0.0)
    times = np.array([3600.0, 7200.0])
    c.set_shifts(times, np.random.default_rng(4), 0.5)
    before, after = c.u(3600.0 - 1e-6), c.u(3600.0)
    assert math.isclose(float(before @ after), math.cos(shift_angle_rad(0.5)), abs_tol=1e-6)
    # between shifts the correlation is the smooth law's, whatever the rotation in force
    a, b = c.u(4000.0), c.u(6000.0)
    assert math.isclose(float(a @ b), float(concept_cos(2000.0, c.p, c.omega)), abs_tol=1e-12)
    # per-row times give the same vectors as one time at a time
    ts = np.array([100.0, 3700.0, 9000.0])
    assert np.allclose(c.u(ts), np.stack([c.u(t) for t in ts]))


def test_poisson_shift_count():
    from scenarios.schema import Shifts
    sh = Shifts(every=86400.0, magnitude=0.3)
    counts = [shift_times_s(sh, 100 * 86400.0, np.random.default_rng(s)).size for s in range(200)]
    # mean of 200 Poisson(100) counts: sd 10/sqrt(200) = 0.71; 4 sd
    assert abs(np.mean(counts) - 100) < 4 * 0.71


# -------------------------------------------------------------------------- the monitor

def test_monitor_window_crossings_and_reset():
    m = Monitor(3 * 3600.0, 3600.0, alert_below=0.8, alert_drop=None)
    seq = [90, 90, 90, 70, 70, 70, 70, 90, 90, 90, 60, 60]
    fired = [m.observe(i * 3600.0, c, 100) for i, c in enumerate(seq)]
    # window of 3: estimates from the third batch: .9 .833 .767 .7 .7 .767 .833 .9 .8 .7
    assert fired == [False, False, False, False, True, False, False, False, False, False, False, True]
    assert m.checks == 10 and m.below == 5
    m.reset()
    assert not m.observe(0.0, 0, 100)      # a new model: no estimate until its window fills


def test_monitor_alert_drop_uses_first_full_window():
    m = Monitor(2 * 3600.0, 3600.0, alert_below=None, alert_drop=0.05)
    fired = [m.observe(0, c, 100) for c in (90, 90, 88, 84, 80)]
    # baseline .90; estimates .89 .86 .82 -> the level .85 is crossed at the last
    assert fired == [False, False, False, False, True]


def test_false_alarm_formula_matches_a_moving_average_of_binomials():
    """Φ(z) − Φ₂(z,z;(k−1)/k) against 200k simulated checks (binomial interval, 4 sd)."""
    rng = np.random.default_rng(0)
    k, n_b, p = 6, 2000, 0.88
    se = trig.monitor_se(p, k * n_b)
    level = p - 1.2 * se
    batches = rng.binomial(n_b, p, 200_000 + k) / n_b
    est = np.convolve(batches, np.ones(k) / k, mode="valid")
    below = est < level
    sim = np.count_nonzero(below[1:] & ~below[:-1]) / (est.size - 1)
    th = trig.false_alarm_per_check(p, level, k * n_b, k)
    assert abs(sim - th) < 4 * math.sqrt(th / est.size) + 1e-4, (sim, th)
    # checks treated as independent would be ~5x off: the test can tell
    ind = float(0.5 * math.erfc(1.2 / math.sqrt(2)))
    assert abs(ind * (1 - ind) - sim) > 10 * math.sqrt(th / est.size)


# ---------------------------------------------------------------- the simulator's monitor

def _small(**over):
    base = dict(name="mon", horizon=2 * 86400.0, traffic=dict(rate=0.2, cardinality="unbounded"),
                data=dict(velocity="12000/h", concept_half_life="never", label_noise=0.1, batch_interval=600,
                          label_delay=3600),
                model=dict(inference_time=dict(distribution="exponential", mean=0.001), training_window="1d"),
                slo=dict(latency_p99=1))
    for k, v in over.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    from scenarios.schema import Scenario
    return Scenario.model_validate(base)


def test_off_by_default_and_monitoring_changes_nothing_it_watches():
    sc = _small()
    d = Design("static", None, "dynamic", None, 1)
    plain = simulate(sc, d, seed=2).metrics
    assert "monitoring" not in plain and "shifts" not in plain
    watched = simulate(_small(monitoring=dict(window="1h", alert_below=0.5)), d, seed=2).metrics
    mon = watched.pop("monitoring")
    val = watched.pop("validation")
    assert val["batches"] > 0 and plain.pop("validation")["batches"] == 0
    # 288 batches in 2 d, the first 6 before any label arrives (label_delay 1 h); a batch
    # quarantined as a false alarm (0.5% per batch and check kind, simulator/thresholds.py)
    # is not scored by the monitor either
    checks = 288 - 6 - val["quarantined"]
    assert watched.pop("notes") == [f"monitoring: 0 alerts (0 true, 0 false) in {checks} checks"]
    assert plain.pop("notes") == []
    for m in (plain, watched):
        m.pop("wall_s")
        m.pop("scenario")
    assert watched == plain          # watching the model draws nothing and changes nothing else
    assert mon["checks"] > 0 and mon["alerts"] == 0 and mon["labels_per_check_mean"] == 12000


def test_a_shift_is_detected_after_the_label_delay():
    sc = _small(horizon=12 * 3600.0, data=dict(shifts=dict(at=["4h"], magnitude=0.8)),
                monitoring=dict(window="1h", alert_below=0.8))
    res = simulate(sc, Design("static", None, "dynamic", None, 1), seed=5)
    m = res.metrics
    assert m["shifts"]["times_s"] == [4 * 3600.0]
    mon = m["monitoring"]
    assert mon["shifts_detected"] == 1 and mon["true_alerts"] >= 1 and mon["false_alerts"] == 0
    assert mon["true_alerts_by_cause"]["shift"] >= 1
    delay = mon["detection_delay_s"]["values"][0]
    # labels of post-shift requests arrive one label delay later; the window fills within 1 h
    assert 3600.0 < delay <= 3600.0 + 3600.0 + 600.0
    # the served accuracy falls after the shift (the damage is visible in the time series)
    ts = res.timeseries
    pre = np.mean([r["served_expected_accuracy"] for r in ts if r["t_end_s"] <= 4 * 3600])
    post = np.mean([r["served_expected_accuracy"] for r in ts if r["t_start_s"] >= 5 * 3600])
    assert pre - post > 0.15
    assert any(e["event"] == "shift" for e in res.events)


def test_triggered_on_new_examples_retrains_every_n():
    sc = _small(horizon=86400.0)
    d = Design("triggered", None, "dynamic", None, 1, trigger_on="new_examples", trigger_examples=24000)
    m = simulate(sc, d, seed=1).metrics
    # 2000 validated examples per 10-minute batch: a retrain every 12 batches (2 h) -> 11 starts
    # before the end (the 12th at 24 h is past the horizon)
    assert m["training"]["triggers"] == 11
    assert m["architecture"]["trigger"]["on"] == "new_examples"


def test_triggered_on_alert_recovers_after_a_shift():
    over = dict(horizon=18 * 3600.0, data=dict(shifts=dict(at=["4h"], magnitude=0.8)),
                model=dict(training_window="2h"), monitoring=dict(window="1h", alert_below=0.8))
    sc = _small(**over)
    trig_d = Design("triggered", None, "dynamic", None, 1, trigger_on="alert", trigger_min_interval_s=3600.0)
    t = simulate(sc, trig_d, seed=3).metrics
    s = simulate(sc, Design("static", None, "dynamic", None, 1), seed=3).metrics
    assert t["training"]["triggers"] >= 1 and t["training"]["deployed"] >= 2
    assert t["accuracy"]["served_expected"] > s["accuracy"]["served_expected"] + 0.1


# ------------------------------------------------------------------------ the advisor

def test_advisor_names_triggered_for_monthly_shifts():
    sc = load_scenario(str(EXAMPLE))
    a = advise(sc)
    j = a.to_json()
    assert j["training"]["mode"] == "triggered" and j["architecture"]["training"] == "triggered"
    dyn = j["training"]["dynamic_architecture"]
    assert dyn["name"] == "triggered"
    o = dyn["options"]
    assert o["triggered"]["accuracy_loss"] <= sc.slo.max_accuracy_loss
    assert o["triggered"]["retrains"] < o["scheduled"]["retrains"]
    assert o["static"]["accuracy_loss"] > 0.1
    assert any("Course architecture: triggered" in r for r in j["training"]["reasons"])
    assert a.predicted.accuracy_loss == pytest.approx(o["triggered"]["accuracy_loss"])


def test_presets_keep_their_advice_shape():
    j = advise(load_scenario("spam")).to_json()
    assert "dynamic_architecture" not in j["training"] and "trigger" not in j["architecture"]


def test_shifts_make_static_lose_and_schedules_pay():
    sc = load_scenario(str(EXAMPLE))
    static = trig.timeline(sc, "static")["accuracy_loss"]
    fast = trig.timeline(sc, "scheduled", every_s=6 * 3600)["accuracy_loss"]
    slow = trig.timeline(sc, "scheduled", every_s=96 * 3600)["accuracy_loss"]
    assert static > slow > fast


def test_detection_delay_formula_bounds():
    sc = _small(monitoring=dict(window="1h", alert_below=0.8))
    # a quarter of the fall: 1.5 of the 6 window batches must be post-shift. With the shift at
    # u into its batch (uniform), the first post-shift batch is (B − u)/B post-shift and arrives
    # at L + (B − u): u <= B/2 needs 2 batches (mean L + 1.75B), u > B/2 needs 3 (L + 2.25B):
    # L + 2B on average (the monitor noise is negligible against this fall)
    d = trig.detection_delay_s(sc, 0.9, 0.5, 0.8)
    assert d == pytest.approx(3600 + 2 * 600, abs=5)
    # a level barely below the old accuracy waits for more of the window; the delay grows
    assert trig.detection_delay_s(sc, 0.9, 0.7, 0.8) > d


def test_predict_triggered_design_costs_its_retrains():
    sc = load_scenario(str(EXAMPLE))
    d = design_for(sc)
    p = predict(sc, d)
    r = trig.timeline(sc, "triggered", level=0.87, min_interval_s=6 * 3600)
    job_usd = trig._usd(sc, 1)
    from scenarios.accounting import MONTH_S
    assert p.training_usd_per_month == pytest.approx(r["retrains"] * job_usd * MONTH_S / sc.horizon)


# -------------------------------------------------------------------------- selfcheck

def test_selfcheck_monitor_rows_pass():
    from mlarch import selfcheck_monitor
    checks = selfcheck_monitor.checks(1, quick=True)
    assert [c.passed for c in checks] == [True, True], [c.to_json() for c in checks]


@pytest.mark.slow
def test_selfcheck_loss_under_shifts_rows_pass():
    from mlarch import selfcheck_monitor
    checks = selfcheck_monitor.loss_under_shifts_checks(1)
    assert all(c.passed for c in checks), [c.to_json() for c in checks]


@pytest.mark.slow
def test_done_when_monthly_shifts_simulated(cli):
    """The example as advised (triggered) stays within the budget with fewer retrains than the
    best schedule, which the simulator also runs."""
    sc = load_scenario(str(EXAMPLE))
    a = advise(sc).to_json()
    sched = a["training"]["dynamic_architecture"]["options"]["scheduled"]
    res = cli("simulate", EXAMPLE, "--json")
    assert res.exit_code == 0, res.stderr
    m = json.loads(res.stdout)
    assert m["architecture"]["training"] == "triggered"
    fresh = a["predicted"]["fresh_accuracy"]     # a clean model trained on the current concept
    assert fresh - m["accuracy"]["served_expected"] <= sc.slo.max_accuracy_loss
    assert m["accuracy"]["lost_to_staleness"] <= sc.slo.max_accuracy_loss
    assert m["training"]["triggers"] < sched["retrains"]
    assert m["monitoring"]["shifts_detected"] == 3
    res = cli("simulate", EXAMPLE, "--json", "--set",
              f"architecture={{training: periodic, retrain_every: {sched['retrain_every_s']:.0f}s}}")
    p = json.loads(res.stdout)
    assert fresh - p["accuracy"]["served_expected"] <= sc.slo.max_accuracy_loss
    assert p["training"]["runs"] - 1 > m["training"]["triggers"]


# ------------------------------------------------------------- training–serving skew

# thresholds set for the check's sample size (simulator/thresholds.py) catch even a x2 change
# at the first check after it, when half of the hour's requests are skewed
@pytest.mark.parametrize("factor, checks_to_catch", [(1000.0, 1), (2.0, 1)])
def test_serving_skew_is_caught_by_serving_input_validation(factor, checks_to_catch):
    sc = _small(horizon=8 * 3600.0, traffic=dict(rate=5),
                data=dict(batch_interval=3600,
                          faults=[dict(at="3.5h", kind="serving_skew", feature=0, factor=factor)]))
    res = simulate(sc, Design("static", None, "dynamic", None, 1), seed=1)
    m = res.metrics
    sv = m["serving_validation"]
    assert sv["skews"] == 1 and sv["skews_detected"] == 1
    # checks run at every batch over the last hour's requests: at 4 h half of them are skewed
    # (a x1000 unit change breaks the range at once; a x2 change moves the distribution
    # beyond the Jensen–Shannon threshold for that many rows)
    assert sv["detections"][0]["delay_s"] == pytest.approx(1800.0 + 3600.0 * (checks_to_catch - 1))
    assert m["validation"]["quarantined"] == 0          # the training data were never touched
    ts = res.timeseries
    at, caught = 3.5 * 3600, 3.5 * 3600 + sv["detections"][0]["delay_s"]
    before = np.mean([r["served_expected_accuracy"] for r in ts if r["t_end_s"] <= at])
    during = np.mean([r["served_expected_accuracy"] for r in ts if r["t_start_s"] >= at and r["t_end_s"] <= caught])
    after = np.mean([r["served_expected_accuracy"] for r in ts if r["t_start_s"] >= caught])
    assert before - during > 0.01 and abs(after - before) < 0.01   # damage until caught, then fixed
    assert [e["event"] for e in res.events if e["event"] in ("serving_skew", "skew_detected")] == \
        ["serving_skew", "skew_detected"]


def test_skew_fault_field_validation(cli, write):
    p = write(SPAM_MIN.replace("  concept_half_life: 3d\n", "  concept_half_life: 3d\n"
                               "  faults: [{at: 1h, kind: serving_skew}]\n"))
    res = cli("advise", p)
    assert res.exit_code == 2 and f"{p}:9: data.faults[0]:" in res.stderr and "needs `feature:`" in res.stderr


def test_an_autoscaled_pool_under_shifts_keeps_its_policy(cli):
    """With sudden shifts the advisor predicts a triggered or scheduled design through a
    periodic stand-in; the stand-in must keep the autoscaling policy (it was dropped, and
    `advise` crashed on the missing autoscaled figures; found by make fuzz)."""
    ex = str(Path(__file__).resolve().parents[1] / "examples" / "monthly-shifts.yaml")
    res = cli("advise", ex, "--set", "serving.autoscale.cold_start=30s", "--json")
    assert res.exit_code == 0, res.stderr
    auto = json.loads(res.stdout)["predicted"]["autoscale"]
    assert auto is not None and auto["replica_hours"] > 0


def test_a_timeline_of_too_many_batches_is_refused_up_front(cli):
    """With shifts or monitoring the advisor follows every data batch: 3 s batches over 90 days
    (2.6M of them) took minutes and 5 GB (found by make fuzz); now one line naming the field
    and the smallest interval that works, while the limit itself still runs."""
    ex = str(Path(__file__).resolve().parents[1] / "examples" / "monthly-shifts.yaml")
    res = cli("advise", ex, "--set", "data.batch_interval=3s")
    assert res.exit_code == 2
    lines = res.stderr.strip().split("\n")
    assert len(lines) == 1 and "data.batch_interval: 3s gives 2,592,000 data batches" in lines[0]
    assert "at least 6.48m" in lines[0]
    from scenarios import load_scenario
    load_scenario(ex, ["data.batch_interval=6.48m"])     # 20,000 batches: accepted


def test_shift_timeline_loss_carries_its_own_spread_and_confidence_quantile():
    # with sudden shifts the loss comes from the timeline; its band and its quantile at the
    # stated confidence must be those of that loss (they were left from the smooth prediction:
    # a 12% loss reported with a 1.6% 90% quantile and the budget "met at confidence")
    from statistics import NormalDist
    from advisor import design_for, predict
    from advisor.accuracy import loss_sd
    sc = load_scenario("voice-personalized", ["data.shifts={every: 12h, magnitude: 0.5}", "horizon=4d"])
    p = predict(sc, design_for(sc))
    k, r = loss_sd(sc, p.accuracy_loss)
    sd = (k * k + r * r) ** 0.5
    assert p.accuracy_loss_sd == pytest.approx(sd, rel=1e-12)
    assert p.accuracy_loss_at_confidence == pytest.approx(p.accuracy_loss + NormalDist().inv_cdf(0.9) * sd, rel=1e-12)
    lo, hi = p.accuracy_loss_band90
    assert lo <= p.accuracy_loss <= hi
    assert p.accuracy_budget_met_at_confidence == (p.accuracy_loss_at_confidence <= sc.slo.max_accuracy_loss)
