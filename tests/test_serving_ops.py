"""Issue 16: serving operations — an autoscaled pool over the day (advisor: pointwise-stationary
schedule; simulator: FIFO with a time-varying number of servers and a reactive autoscaler)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from advisor import advise, design_for, predict
from advisor import provisioning
from advisor.latency import latency_quantile_s
from scenarios import load_scenario
from scenarios.accounting import MONTH_S
from scenarios.design import AutoscalePolicy
from simulator import simulate
from simulator.autoscale import ElasticPool

AUTO = ["traffic.rate=30/s", "model.inference_time={distribution: exponential, mean: 100ms}",
        "slo.latency_p99=500ms", "serving.autoscale={cold_start: 30s}"]


def _policy(**kw):
    base = dict(min_replicas=2, max_replicas=6, initial_replicas=3, max_load_erlangs=(1.0, 1.8, 2.5, 3.0),
                interval_s=60.0, cold_start_s=30.0, scale_down_after_s=300.0)
    base.update(kw)
    return AutoscalePolicy(**base)


# ------------------------------------------------------------------ the scenario

YAML = """\
name: auto
traffic: {rate: 30/s, diurnal_amplitude: 0.5}
data: {velocity: 1e5/d, concept_half_life: 3d}
model:
  inference_time: {distribution: exponential, mean: 100ms}
serving:
  autoscale:
    {field}
slo: {latency_p99: 500ms}
"""


@pytest.mark.parametrize("field,needle", [
    ("{min: 5, max: 3}", "serving.autoscale.max: 3 is below min (5)"),
    ("{interval: 0.1s}", "serving.autoscale.interval: must be at least 1s"),
    ("{target_utilization: 1.2}", "serving.autoscale.target_utilization"),
    ("{cold_start: -5s}", "serving.autoscale.cold_start"),
    ("{cold_strat: 5s}", "serving.autoscale.cold_strat: unknown key"),
])
def test_bad_autoscale_fields_are_one_line_naming_file_line_field(cli, write, field, needle):
    p = write(YAML.replace("{field}", field))
    res = cli("advise", p)
    assert res.exit_code == 2
    lines = res.stderr.strip().split("\n")
    assert len(lines) == 1 and f"{p}:8: " in lines[0] and needle in lines[0], res.stderr


def test_an_autoscaler_max_below_the_replica_floor_is_refused(cli, write):
    """autoscale.max under serving.min_replicas (autoscale.min's default) was a traceback from
    the policy (found by make fuzz): one line, naming the block and the fix."""
    p = write(YAML.replace("{field}", "{max: 1}"))
    res = cli("advise", p)
    assert res.exit_code == 2
    lines = res.stderr.strip().split("\n")
    assert len(lines) == 1 and f"{p}:7: serving.autoscale: max 1 is below the pool's floor of 2" in lines[0]
    res = cli("advise", p, "--set", "serving.min_replicas=1")
    assert res.exit_code == 0, res.stderr


def test_a_fixed_pool_and_an_autoscaler_together_are_refused(cli):
    res = cli("advise", "spam", "--set", "serving.replicas=4", "--set", "serving.autoscale={}")
    assert res.exit_code == 2 and "serving.autoscale: the autoscaler sizes the pool" in res.stderr


def test_without_autoscale_nothing_changes():
    sc = load_scenario("spam")
    d = design_for(sc)
    assert d.autoscale is None and "autoscale" not in d.to_json()
    p = predict(sc, d)
    assert p.autoscale is None and p.replica_hours == d.replicas * sc.horizon / 3600
    # the fixed pool's expression, bit for bit (preset outputs must not move)
    assert p.recurring_usd_per_month["serving"] == d.replicas * MONTH_S * (sc.costs.vcpu_hour / 3600.0)


# ------------------------------------------------------------------ the policy

def test_replicas_for_load_is_the_fewest_whose_entry_covers_it():
    pol = _policy()
    assert [pol.replicas_for_load(a) for a in (0.0, 1.0, 1.01, 1.8, 2.6, 3.0)] == [2, 2, 3, 3, 5, 5]
    # beyond the table: the last entry's utilisation (3.0 / 5 per replica), capped at max
    assert pol.replicas_for_load(3.5) == 6 and pol.replicas_for_load(50) == 6


def test_policy_table_is_the_slo_staffing_rule():
    sc = load_scenario("spam", AUTO)
    pol = provisioning.policy_for(sc, 0.0)
    es = sc.model.inference_time.mean_s
    g = provisioning.lag_growth(sc)
    for i, load in enumerate(pol.max_load_erlangs[:6]):
        c = pol.min_replicas + i
        lam = load * (1 + g) / es
        one = np.array([1.0])
        # at the entry's load the p99 is the SLO; 2% more load breaks it
        assert latency_quantile_s(sc, 0.99, 0.0, c, np.array([lam * 0.98]), one) <= sc.slo.latency_p99
        assert latency_quantile_s(sc, 0.99, 0.0, c, np.array([lam * 1.02]), one) > sc.slo.latency_p99


def test_target_utilization_table_is_u_times_c():
    sc = load_scenario("spam", ["traffic.rate=25/s"] + AUTO[1:3] + [
        "serving.autoscale={target_utilization: 0.6, cold_start: 0s}", "traffic.diurnal_amplitude=0"])
    pol = provisioning.policy_for(sc, 0.0)
    assert pol.max_load_erlangs[:3] == pytest.approx((1.2, 1.8, 2.4))
    # a flat 2.5 Erlangs: ceil(2.5 / 0.6) = 5 all day. The observed load's sd over a minute is
    # sqrt(λE[S²]/I) = 0.09, so 3.0 (6 replicas) is 5.5 sd away: 5 x 24 replica-hours
    assert pol.initial_replicas == 5
    f = provisioning.autoscaled_figures(sc, 0.0, pol, 86400.0, with_p99=False)
    assert f["replicas_min"] == f["replicas_max"] == 5
    assert f["replica_hours"] == pytest.approx(5 * 24, rel=1e-3)
    # at exactly 3.0 Erlangs half the observations ask for a 6th replica, and the scale-down
    # window keeps it while any of its 6 decisions did: 1 − 0.5^6 of the time
    at = load_scenario("spam", sc_sets := ["traffic.rate=30/s"] + AUTO[1:3] + [
        "serving.autoscale={target_utilization: 0.6, cold_start: 0s}", "traffic.diurnal_amplitude=0"])
    del sc_sets
    f = provisioning.autoscaled_figures(at, 0.0, provisioning.policy_for(at, 0.0), 86400.0, with_p99=False)
    assert f["mean_replicas"] == pytest.approx(5 + (1 - 0.5 ** 6), abs=0.01)


def test_fluid_schedule_follows_the_control_rule_step_by_step():
    sc = load_scenario("spam", ["traffic.rate=25/s"] + AUTO[1:3] + ["serving.autoscale={}"])
    pol = _policy(max_load_erlangs=(1.0, 2.0, 3.0, 4.0, 5.0, 6.0), max_replicas=10, initial_replicas=3)
    sch = provisioning.schedule(sc, 0.0, pol, 86400.0)
    # a naive loop: decision k acts on the mean load of interval k − 1 (∫rate by the trapezoid
    # rule on 600 points), scale-down to the most of the last 5 minutes' 6 decisions
    I, amp = 60.0, 0.5
    desired = [3]
    for k in range(1, 1440):
        t = np.linspace((k - 1) * I, k * I, 601)
        lam = 25 * (1 + amp * np.sin(2 * np.pi * t / 86400))
        desired.append(pol.replicas_for_load(float(np.trapezoid(lam, t) / I * 0.1)))
    alloc = [max(desired[max(0, k - 5): k + 1]) for k in range(1440)]
    assert sch["allocated"].tolist() == alloc
    # live replicas: a replica requested at t_k serves from t_k + 30 s, mid-interval
    assert sch["live"].min() >= 2 and provisioning.replica_seconds(sch) > 0


# ---------------------------------------------------------------- the elastic pool

def _reference(arrivals, services, changes):
    """Per-request FIFO with explicit servers: changes = [(t, +1 | -1)] applied before any
    arrival after t; a new server is free from t + cold (here 5), a retired one is the server
    free soonest, which keeps what it was given."""
    free = [0.0, 0.0]
    starts = []
    ch = list(changes)
    for a, s in zip(arrivals, services):
        while ch and ch[0][0] <= a:
            t, d = ch.pop(0)
            if d > 0:
                free.append(t + 5.0)
            else:
                free.remove(min(free))
        k = min(range(len(free)), key=lambda i: free[i])
        st = max(a, free[k])
        starts.append(st)
        free[k] = st + s
    return np.array(starts)


@pytest.mark.parametrize("compiled", [False, True])
def test_elastic_pool_equals_a_per_request_reference(compiled):
    pytest.importorskip("numba") if compiled else None
    rng = np.random.default_rng(3)
    arr = np.sort(rng.uniform(0, 100, 3000))
    svc = rng.exponential(0.09, arr.size)
    changes = [(20.0, +1), (20.0, +1), (50.0, -1), (70.0, -1), (80.0, +1)]
    ref = _reference(arr.tolist(), svc.tolist(), changes)
    pool = ElasticPool(2, compiled)
    out = np.empty(arr.size)
    pos = 0
    for t, d in changes + [(math.inf, 0)]:
        j = int(np.searchsorted(arr, t, side="right"))
        if j > pos:
            out[pos:j] = pool.serve(arr[pos:j], svc[pos:j])
        pos = j
        if d > 0:
            pool.add(t + 5.0)
        elif d < 0:
            pool.remove(t)
    assert np.array_equal(out, ref)
    assert pool.replicas == 3


def test_a_retired_replica_leaves_after_its_work():
    pool = ElasticPool(2)
    pool.serve(np.array([0.0, 0.0]), np.array([4.0, 1.0]))   # busy until 4 and 1
    assert pool.remove(2.0) == 2.0        # the one free at 1 leaves at once
    assert pool.remove(2.0) == 4.0        # the other drains until 4
    assert pool.replicas == 0


def test_a_restarted_pool_keeps_its_cold_starting_replicas():
    pool = ElasticPool(2)
    pool.add(130.0)
    p2 = pool.restarted(100.0)
    assert p2.replicas == 3 and sorted(p2.free_at.tolist()) == [100.0, 100.0, 130.0]


# ------------------------------------------------------ the advisor against the simulator

def test_autoscaled_pool_simulated_agrees_with_the_advisor():
    """The issue's bar: replica-hours within 3% and p99 within 10% on a slowly varying load
    (a ±50% daily swing, 30 s cold start). Over 3 seeds the replica-hours differ from the
    advisor by 0.1–0.3% (their seed-to-seed sd is about 0.2%), so 3% is > 10 sd; p99 is the
    pointwise-stationary M/M/c mixture, measured within 0.1% (1% histogram bins)."""
    sc = load_scenario("spam", AUTO + ["horizon=1d"])
    d = design_for(sc)
    assert d.autoscale is not None and d.autoscale.cold_start_s == 30.0
    p = predict(sc, d)
    m = simulate(sc, d, seed=2, request_budget=None).metrics
    a = m["autoscale"]
    assert a["replica_hours"] == pytest.approx(p.replica_hours, rel=0.03)
    assert m["latency_ms"]["p99"] == pytest.approx(p.latency_p99_ms, rel=0.10)
    # the extremes are single noisy decisions: within one replica of the fluid schedule's
    assert abs(a["replicas_min"] - p.autoscale["replicas_min"]) <= 1
    assert abs(a["replicas_max"] - p.autoscale["replicas_max"]) <= 1
    # billing: serving cost is the billed replica-hours, not the largest pool all day
    assert m["cost_usd"]["serving"] == pytest.approx(a["replica_hours"] * sc.costs.vcpu_hour, rel=1e-9)
    assert a["replica_hours"] < d.replicas * 24 * 0.85


def test_autoscaling_saves_against_the_fixed_peak_pool_in_advise_json(cli):
    res = cli("advise", "spam", "--set", "serving.autoscale={}", "--json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    prov = doc["serving"]["provisioning"]
    assert prov["configured"] is True
    f, a = prov["fixed_peak"], prov["autoscaled"]
    assert a["usd_per_month"] < f["usd_per_month"]
    assert prov["saving_usd_per_month"] == pytest.approx(f["usd_per_month"] - a["usd_per_month"])
    assert doc["predicted"]["recurring_usd_per_month"]["serving"] == pytest.approx(a["usd_per_month"])
    assert doc["architecture"]["autoscale"]["cold_start_s"] == 60.0
    assert any("Autoscaling between" in r for r in doc["serving"]["reasons"])


def test_presets_report_both_provisionings_without_changing_the_design():
    adv = advise(load_scenario("spam"))
    prov = adv.to_json()["serving"]["provisioning"]
    assert prov["configured"] is False and adv.design.autoscale is None
    assert prov["fixed_peak"]["replicas"] == adv.design.replicas
    # a ±50% swing leaves roughly a quarter of a peak-sized pool idle
    assert 0.1 < prov["saving_usd_per_month"] / prov["fixed_peak"]["usd_per_month"] < 0.5
    static = advise(load_scenario("ad-conversion")).to_json()["serving"]["provisioning"]
    assert static["fixed_peak"] is None and static["autoscaled"] is None


@pytest.mark.slow
def test_a_sampled_lifetime_takes_decisions_between_slices():
    # the control plane covers every interval; outside the slices the autoscaler acts on the
    # expected load, so the lifetime's replica-hours still follow the schedule
    sc = load_scenario("spam", AUTO + ["horizon=3d"])
    d = design_for(sc)
    p = predict(sc, d)
    m = simulate(sc, d, seed=1, request_budget=2e5).metrics
    assert m["sampling"]["mode"] == "slices"
    assert m["autoscale"]["replica_hours"] == pytest.approx(p.replica_hours, rel=0.03)


def test_simulate_json_and_timeseries_carry_the_pool(cli, tmp_path):
    out = tmp_path / "run"
    res = cli("simulate", "spam", *sum((["--set", s] for s in AUTO), []), "--horizon", "30m", "--out", out)
    assert res.exit_code == 0, res.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["autoscale"]) >= {"replica_hours", "mean_replicas", "replicas_min", "replicas_max"}
    head = (out / "timeseries.csv").read_text().splitlines()[0].split(",")
    assert "replicas_mean" in head and "offered_load_mean" in head


# ------------------------------------------------------------------------ batching

from simulator.batching import _form_batches_loop, form_batches, form_batches_python  # noqa: E402

BATCH = ["traffic.rate=2000/s", "traffic.diurnal_amplitude=0",
         "model.inference_time={distribution: deterministic, value: 20ms}",
         "model.batch_time={fixed: 20ms, per_item: 0.5ms}", "serving.batching={max_batch: 32, timeout: 10ms}",
         "slo.latency_p99=150ms"]


def test_batches_close_at_max_batch_or_timeout_by_hand():
    a = np.array([0.0, 0.001, 0.002, 0.0105, 0.03, 0.031, 0.0311, 0.0312])
    idx, close, sizes = form_batches(a, 0.01, 3, compiled=False)
    # [0, 1, 2] fills at 0.002; 0.0105 waits alone until 0.0205; [0.03 .. 0.0311] fills; 0.0312 times out
    assert idx.tolist() == [0, 0, 0, 1, 2, 2, 2, 3]
    assert close.tolist() == [0.002, 0.0205, 0.0311, 0.0412]
    assert sizes.tolist() == [3, 1, 3, 1]


@pytest.mark.parametrize("compiled", [False, True])
def test_batch_kernel_and_its_twin_agree_bit_for_bit(compiled):
    rng = np.random.default_rng(5)
    a = np.cumsum(rng.exponential(1e-3, 20000))
    ref = form_batches_python(a, 0.004, 7)
    if compiled:
        pytest.importorskip("numba")
        idx, close, sizes = form_batches(a, 0.004, 7, compiled=True)
    else:
        i2, c2, n2 = _form_batches_loop(a, 0.004, 7)     # the loop itself, interpreted
        idx, close = i2, c2[:n2]
    assert np.array_equal(idx, ref[0]) and np.array_equal(close, ref[1])


def test_batching_needs_a_batch_time_and_is_one_line(cli):
    res = cli("advise", "spam", "--set", "serving.batching={max_batch: 8}")
    assert res.exit_code == 2 and "needs model.batch_time" in res.stderr and len(res.stderr.strip().split("\n")) == 1
    res = cli("advise", "spam", "--set", "serving.batching={max_batch: 0}", "--set",
              "model.batch_time={fixed: 1ms, per_item: 1ms}")
    assert res.exit_code == 2 and "serving.batching.max_batch" in res.stderr


def test_batching_predicted_and_simulated_agree_on_a_vectorised_model():
    """t0 = 20 ms >> t1 = 0.5 ms: a batch of 21 takes 30.5 ms, 14x the throughput of one request
    per replica, for ~10 ms of batch fill. Throughput per busy replica is a ratio of means over
    ~57k batches (relative sd < 0.1%); p99: the GI/G/c Allen–Cunneen tail, within 10% (the
    issue's bar; measured 6%)."""
    sc = load_scenario("spam", BATCH)
    d = design_for(sc)
    p = predict(sc, d)
    unbatched = design_for(load_scenario("spam", BATCH[:3] + BATCH[-1:]))
    assert d.replicas * 5 < unbatched.replicas          # the throughput gain, in replicas
    m = simulate(sc, d, seed=1, horizon_s=600, request_budget=None).metrics
    b = m["batching"]
    assert b["mean_batch"] == pytest.approx(p.batching["mean_batch"], rel=0.01)
    assert b["throughput_per_busy_replica_per_s"] == pytest.approx(p.batching["throughput_per_busy_replica_per_s"],
                                                                   rel=0.01)
    assert p.batching["throughput_per_busy_replica_per_s"] > 10 * p.batching["unbatched_throughput_per_replica_per_s"]
    assert m["latency_ms"]["p99"] == pytest.approx(p.latency_p99_ms, rel=0.10)
    # the latency price: every request waits for its batch (mean fill about half the timeout)
    assert m["latency_ms"]["p50"] > 20.0 + 10.0 * 0.3


# ------------------------------------------------------------------------ failures

from advisor import failures as afail  # noqa: E402
from simulator.failures import timelines  # noqa: E402

FAIL = ["traffic.rate=30/s", "traffic.diurnal_amplitude=0",
        "model.inference_time={distribution: exponential, mean: 100ms}", "slo.latency_p99=500ms",
        "serving.failures={mtbf: 2h, mttr: 10m}"]


def test_failure_fields_are_validated(cli):
    res = cli("advise", "spam", "--set", "serving.failures={mtbf: 10s, mttr: 1m}")
    assert res.exit_code == 2 and "serving.failures.mtbf" in res.stderr
    res = cli("advise", "spam", "--set", "serving.failures={mtbf: 1d, mttr: 1m}", "--set", "serving.autoscale={}")
    assert res.exit_code == 2 and "serving.failures: failures of an autoscaled pool" in res.stderr


def test_down_states_are_binomial():
    st = afail.down_states(5, 0.1)
    assert st[0] == (0, pytest.approx(0.9 ** 5)) and st[1] == (1, pytest.approx(5 * 0.1 * 0.9 ** 4))
    assert sum(p for _, p in st) == pytest.approx(1.0, abs=1e-6)


def test_failure_timelines_give_the_availability():
    # 400 replicas over 30 days, mtbf 2h, mttr 10m: each replica's down share is a renewal
    # average; the mean over replicas is within 3 standard errors of mttr/(mtbf + mttr)
    rng = np.random.default_rng(11)
    H, reps = 30 * 86400.0, 400
    down = np.zeros(reps)
    for r in range(reps):
        ev = timelines(rng, 1, 7200.0, 600.0, H)
        t_down = [t for t, k in ev if k < 0]
        t_up = [t for t, k in ev if k > 0]
        t_up += [H] * (len(t_down) - len(t_up))      # a repair still running at the end
        down[r] = sum(u - d for d, u in zip(t_down, t_up)) / H
    se = down.std(ddof=1) / math.sqrt(reps)
    assert abs(down.mean() - 600 / 7800) < 3 * se


def test_the_one_replica_down_check_predicts_the_simulated_slo():
    """A tight pool (5 replicas for 3 Erlangs): the advisor says one replica down breaks the
    SLO, and requests arriving while replicas are down see a p99 far above it, which the
    hourly p99 shows; a pool of 8 holds the SLO with one down, and so does the simulation."""
    tight = load_scenario("spam", FAIL + ["serving.replicas=5"])
    d = design_for(tight)
    pf = predict(tight, d).failures
    assert pf["one_down_slo_met"] is False and pf["availability"] == pytest.approx(7200 / 7800)
    r = simulate(tight, d, seed=1, horizon_s=3 * 3600, request_budget=None)
    f = r.metrics["failures"]
    assert f["failures"] > 0 and f["latency_ms_while_down"]["p99"] > 500
    assert max(x["latency_p99_ms"] for x in r.timeseries) > 500
    assert min(x["replicas_up_mean"] for x in r.timeseries) < 5
    roomy = load_scenario("spam", FAIL + ["serving.replicas=8"])
    d = design_for(roomy)
    assert predict(roomy, d).failures["one_down_slo_met"] is True
    m = simulate(roomy, d, seed=1, horizon_s=3 * 3600, request_budget=None).metrics
    # while down it is mostly one replica of 8: the p99 stays within the SLO (1% histogram bins)
    assert m["failures"]["latency_ms_while_down"]["p99"] <= 500 * 1.01
    assert m["failures"]["retried_jobs"] <= m["failures"]["failures"]


# ------------------------------------------------------------------------- rollouts

from advisor import rollout as aroll  # noqa: E402

ROLL = ["traffic.rate=30/s", "traffic.diurnal_amplitude=0",
        "model.inference_time={distribution: exponential, mean: 100ms}", "slo.latency_p99=500ms",
        "architecture.training=continuous"]


def test_rollout_plans_by_hand():
    sc = load_scenario("spam", ROLL + ["serving.rollout={strategy: rolling, max_unavailable: 2, warmup: 1m}"])
    assert aroll.plan(sc, 5) == {"short": 2, "short_s": 180.0, "extra_replica_s": 0.0}
    sc = load_scenario("spam", ROLL + ["serving.rollout={strategy: blue_green, warmup: 1m}"])
    assert aroll.plan(sc, 5) == {"short": 0, "short_s": 0.0, "extra_replica_s": 300.0}
    sc = load_scenario("spam", ROLL + ["serving.rollout={strategy: canary, share: 20%, warmup: 1m}"])
    assert aroll.plan(sc, 5)["extra_replica_s"] == 300.0     # 1 extra replica, 5 times
    res_sets = ["serving.rollout={strategy: rolling}", "serving.autoscale={}"]
    with pytest.raises(Exception, match="serving.rollout"):
        load_scenario("spam", res_sets)


@pytest.mark.parametrize("replicas,holds", [(5, False), (8, True)])
def test_a_rolling_update_dips_as_predicted(replicas, holds):
    """The advisor's check of the SLO during a rolling update (one replica out at a time)
    against the requests that arrived while the pool was short in the simulation."""
    sc = load_scenario("spam", ROLL + [f"serving.replicas={replicas}",
                                       "serving.rollout={strategy: rolling, max_unavailable: 2, warmup: 2m}"])
    d = design_for(sc)
    p = predict(sc, d)
    assert p.rollout["dip_slo_met"] is holds
    m = simulate(sc, d, seed=1, horizon_s=6 * 3600, request_budget=None).metrics
    r = m["rollout"]
    assert r["deployments"] >= 4 and r["seconds_short"] == r["deployments"] * math.ceil(replicas / 2) * 120.0
    if holds:
        assert r["latency_ms_while_short"]["p99"] <= 500 * 1.05
    else:
        assert r["latency_ms_while_short"]["p99"] > 500


def test_a_blue_green_rollout_bills_the_doubled_pool():
    sc = load_scenario("spam", ROLL + ["serving.replicas=5", "serving.rollout={strategy: blue_green, warmup: 2m}"])
    d = design_for(sc)
    p = predict(sc, d)
    m = simulate(sc, d, seed=1, horizon_s=6 * 3600, request_budget=None).metrics
    r = m["rollout"]
    # 5 replicas x 2 min per deployment, plus the old pool's drain (milliseconds)
    assert r["replica_hours_extra"] == pytest.approx(r["deployments"] * 5 * 120 / 3600, rel=0.01)
    assert p.rollout["replicas_short"] == 0 and r["model_requests_while_short"] == 0
    assert m["cost_usd"]["serving"] == pytest.approx((5 * 6 + r["replica_hours_extra"]) * sc.costs.vcpu_hour)


def test_advise_finds_a_batching_setting_that_needs_fewer_replicas():
    sets = BATCH[:4] + ["serving.batching={max_batch: 8, timeout: 1ms}", BATCH[-1]]
    adv = advise(load_scenario("spam", sets), remedies=False)
    choice = adv.to_json()["serving"]["provisioning"]["batching_choice"]
    assert choice["replicas"] < adv.design.replicas
    # the suggestion is checked: applied, it sizes the pool it promised and meets the SLO
    better = load_scenario("spam", sets[:4] + [f"serving.batching={{max_batch: {choice['max_batch']}, "
                                               f"timeout: {choice['timeout_s'] * 1e3:g}ms}}", sets[-1]])
    d = design_for(better)
    assert d.replicas == choice["replicas"]
    assert predict(better, d).latency_p99_ms <= 150
    assert any("would need" in r and "--set 'serving.batching=" in r for r in adv.serving.reasons)


def test_a_pool_overloaded_only_at_the_peak_with_two_down_keeps_a_finite_p99():
    """spam on 12 replicas: with two of them down the daily peak overloads the pool, but only
    the busiest hours; the p99 is finite, above the no-failure p99 and below the one-down p99."""
    from advisor import design_for, predict
    from scenarios import load_scenario
    base = load_scenario("spam", ["serving.replicas=12"])
    plain = predict(base, design_for(base)).latency_p99_ms
    sc = load_scenario("spam", ["serving.replicas=12", "serving.failures={mtbf: 12h, mttr: 10m}"])
    p = predict(sc, design_for(sc))
    assert math.isfinite(p.latency_p99_ms)
    assert plain < p.latency_p99_ms < p.failures["one_down_p99_ms"]


@pytest.mark.parametrize("sets", [["serving.autoscale.interval=60"],
                                  ["serving.autoscale.interval=20", "serving.autoscale.scale_down_after=0"],
                                  ["serving.autoscale.interval=30", "serving.autoscale.cold_start=95s",
                                   "traffic.diurnal_amplitude=0.9"]])
def test_expected_allocation_equals_the_direct_product_over_each_window(sets):
    """E[allocated] = lo + Σ_c P(max of the window's noisy decisions >= c). The advisor forms each
    window's product of P(decision < c) in O(n) (block prefix/suffix products); here it is
    formed directly, decision by decision, as the formula reads."""
    from scipy.special import ndtr
    sc = load_scenario("spam", ["serving.autoscale={target_utilization: 0.6}", "horizon=6h"] + sets)
    pol = provisioning.policy_for(sc, 0.0)
    got = provisioning.schedule(sc, 0.0, pol)
    inf, I = sc.model.inference_time, pol.interval_s
    K = got["allocated"].size
    tk = np.arange(K) * I
    lam = provisioning._mean_rate(sc, np.maximum(tk - I, 0.0), np.maximum(tk, 1e-9))
    mu, sd = lam * inf.mean_s, np.sqrt(lam * inf.second_moment_s2 / I)
    w = int(math.floor(pol.scale_down_after_s / I + 1e-9))
    tab = np.asarray(pol.max_load_erlangs)
    last = pol.min_replicas + tab.size - 1
    want = np.empty(K)
    for k in range(K):
        lo = max(got["allocated"][k] - provisioning.NOISE_SPAN, pol.min_replicas)
        e = float(lo)
        for c in range(lo + 1, lo + 2 * provisioning.NOISE_SPAN + 1):
            if c > pol.max_replicas:
                continue
            lim = tab[min(max(c - 1 - pol.min_replicas, 0), tab.size - 1)] if c - 1 <= last \
                else tab[-1] * (c - 1) / max(last, 1)
            below = 1.0
            for i in range(k - w, k + 1):     # the decisions of the window; i <= 0: the initial pool
                below *= float(pol.initial_replicas < c) if i <= 0 else float(ndtr((lim - mu[i]) / sd[i]))
            e += 1.0 - below
        want[k] = e
    np.testing.assert_allclose(got["allocated_mean"], want, rtol=1e-12, atol=1e-12)
