"""Fidelity, part 2 (issue 11): validation thresholds that know their sample size, latency
tails for any service law, accuracy as a distribution, the random-scenario agreement check."""
import math

import numpy as np
import pytest
from scipy import stats

from scenarios import load_scenario
from scenarios.design import Design
from scenarios.schema import Fault
from simulator import simulate
from simulator import thresholds as th
from simulator import validate as V
from simulator.ingest import DataSource, segment_of

# ------------------------------------------------------------------ validation thresholds


def clean_columns(rng, n, d=16):
    x = rng.standard_normal((n, d))
    cols = {f"f{i}": x[:, i].copy() for i in range(d)}
    cols["segment"] = segment_of(x[:, 0])
    cols["y"] = np.ones(n)
    return cols


def upper(count_rate, trials, z=3.0):
    """Upper end of the binomial interval (normal approximation, z standard errors) of the
    number of alarms in `trials` batches at a true rate `count_rate`."""
    return trials * count_rate + z * math.sqrt(trials * count_rate * (1 - count_rate))


@pytest.mark.parametrize("n,m", [(50, 2000), (400, 50), (20_000, 50_000), (10**6, 2000)])
def test_outside_range_threshold_is_the_beta_binomial_quantile(n, m):
    a = 0.005
    t = th.outside_range_threshold(n, m, a)
    assert stats.betabinom.sf(t, n, 2, m - 1) <= a < stats.betabinom.sf(t - 1, n, 2, m - 1)


@pytest.mark.parametrize("n,m,t", [(50, 3, 49), (50, 50000, 0), (400, 10, 220), (3000, 50, 421), (3000, 50000, 2)])
def test_outside_range_tail_equals_the_exact_rational_sum(n, m, t):
    """The numpy Beta-binomial tail against exact rational arithmetic (Fractions) of
    C(n, k)·B(k + 2, n − k + m − 1)/B(2, m − 1), written as Γ-ratios: a wrong recurrence
    factor or starting probability is off by far more than 1e-12."""
    from fractions import Fraction
    from math import comb, factorial
    def pmf(k):   # B(a, b) = (a−1)!(b−1)!/(a+b−1)! for integers
        beta = lambda a, b: Fraction(factorial(a - 1) * factorial(b - 1), factorial(a + b - 1))  # noqa: E731
        return comb(n, k) * beta(k + 2, n - k + m - 1) / beta(2, m - 1)
    exact = 1 - sum(pmf(k) for k in range(t + 1))
    assert th.outside_range_sf(t, n, m) == pytest.approx(float(exact), rel=1e-12)


def test_range_mass_outside_a_sample_range_is_beta_2_m_minus_1():
    # the Beta(2, m − 1) law behind the range check: mean outside share 2/(m + 1)
    rng = np.random.default_rng(0)
    m = 20
    ref = np.sort(rng.standard_normal((20_000, m)), axis=1)
    outside = stats.norm.cdf(ref[:, 0]) + stats.norm.sf(ref[:, -1])
    se = outside.std() / math.sqrt(outside.size)
    assert abs(outside.mean() - 2 / (m + 1)) < 4 * se


def test_order_statistic_bins_have_dirichlet_parameters_summing_to_m_plus_1():
    for m in (1, 7, 20, 21, 1000):
        ranks = th.order_stat_ranks(m)
        a = th.spacing_counts(m, ranks)
        assert a.sum() == m + 1 and (a >= 1).all() and a.size <= th.HIST_BINS
    ref = V.infer_reference(clean_columns(np.random.default_rng(1), 1000, d=2))
    r = ref.numeric["f0"]
    assert r.shares.sum() == pytest.approx(1.0) and r.m == 1000 and r.edges.size == 19


def test_thresholds_shrink_with_the_batch_and_are_deterministic():
    js = [th.js_threshold(n, 5000, 20, 0.01) for n in (50, 500, 5000)]
    assert js[0] > js[1] > js[2] > 0
    assert th.js_threshold.__wrapped__(500, 5000, 20, 0.01) == js[1]   # fixed seed: same every run
    linf = [th.linf_threshold(n, (400, 250, 150, 100, 50, 50), 0.01) for n in (50, 500, 5000)]
    assert linf[0] > linf[1] > linf[2] > 0


@pytest.mark.parametrize("n", [50, 1000, 20_000])
def test_false_alarms_per_check_at_most_the_stated_rate(n):
    # a fresh reference every 10 batches (the rate is over references and batches); a high
    # stated rate (5%) so that 400 batches measure it; the slow test below uses the default
    a, trials = 0.05, 400
    rng = np.random.default_rng(n)
    alarms: dict = {}
    for k in range(trials):
        if k % 10 == 0:
            ref = V.infer_reference(clean_columns(rng, 2000, d=2))
        for kind in {V.anomaly_kind(x) for x in V.validate(clean_columns(rng, n, d=2), ref, a)}:
            alarms[kind] = alarms.get(kind, 0) + 1
    for kind, count in alarms.items():
        assert count <= upper(a, trials), (kind, count)
    # and the checks are not blind: the distribution checks do fire at about the stated rate
    # (the threshold is a conservative order statistic, so somewhat below it)
    js = alarms.get("COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH", 0)
    assert js >= 0.3 * a * trials


@pytest.mark.slow
@pytest.mark.parametrize("n", [50, 300, 2000, 20_000, 10**6])
def test_false_alarms_at_the_default_rate_across_batch_sizes(n):
    a = V.FALSE_ALARM_RATE
    trials = 2000 if n <= 20_000 else 100
    rng = np.random.default_rng(n + 1)
    alarms: dict = {}
    for k in range(trials):
        if k % 10 == 0:
            ref = V.infer_reference(clean_columns(rng, 50_000))
        for kind in {V.anomaly_kind(x) for x in V.validate(clean_columns(rng, n), ref)}:
            alarms[kind] = alarms.get(kind, 0) + 1
    for kind, count in alarms.items():
        assert count <= upper(a, trials), (kind, count)


DEFAULT_FAULTS = [Fault(at=0, kind="missing_feature", feature=2), Fault(at=0, kind="unexpected_feature"),
                  Fault(at=0, kind="type_change", feature=3), Fault(at=0, kind="category_remap"),
                  Fault(at=0, kind="scale_shift", feature=1, factor=10.0),
                  Fault(at=0, kind="null_fraction", feature=4, fraction=0.05)]


@pytest.mark.parametrize("n", [300, 20_000])
def test_each_default_fault_kind_is_detected_in_at_least_99_percent_of_batches(n):
    # at n = 300 a 5% null fraction leaves a batch without a null with probability 0.95^300 ≈ 2e-7
    rng = np.random.default_rng(7)
    src = DataSource.__new__(DataSource)
    src.rng = rng
    ref = V.infer_reference(clean_columns(rng, 50_000))
    trials = 100 if n <= 1000 else 20
    for f in DEFAULT_FAULTS:
        if f.kind == "type_change" and n > 1000:
            continue          # formatting 20,000 strings per batch is slow and the check is exact
        detected = 0
        for _ in range(trials):
            cols = clean_columns(rng, n)
            src._apply(f, cols)
            detected += bool(V.validate(cols, ref))
        # all detected: if the true rate were < 99%, seeing 100/100 has probability < 0.37;
        # a broken check (rate ≪ 99%) fails for certain
        assert detected == trials, f.kind


def test_null_fraction_detection_is_information_limited_at_tiny_batches():
    # with 50 rows and a 5% null fraction, P(no null at all) = 0.95^50: nothing can detect those
    rng = np.random.default_rng(8)
    src = DataSource.__new__(DataSource)
    src.rng = rng
    ref = V.infer_reference(clean_columns(rng, 20_000, d=4))
    f, trials = Fault(at=0, kind="null_fraction", feature=1, fraction=0.05), 600
    det = 0
    for _ in range(trials):
        cols = clean_columns(rng, 50, d=4)
        src._apply(f, cols)
        det += "FEATURE_TYPE_LOW_FRACTION_PRESENT:f1" in V.validate(cols, ref)
    p = 1 - 0.95 ** 50
    assert abs(det / trials - p) <= 3 * math.sqrt(p * (1 - p) / trials)


SMALL = ["traffic.rate=5/s", "horizon=2h", "data.batch_interval=15m", "model.training_window=6h",
         "data.velocity=2e6/d"]


def test_simulator_reports_false_alarm_and_detection_rates():
    sc = load_scenario("spam", SMALL + ["data.faults=[{at: 30m, kind: scale_shift, feature: 1, factor: 10}]"])
    v = simulate(sc, seed=1, design=Design("periodic", 1800.0, "dynamic", None, 2)).metrics["validation"]
    assert v["false_alarm_rate_stated"] == V.FALSE_ALARM_RATE
    assert v["clean_batches"] == 1 and v["false_alarms"] == 0 and v["false_alarm_rate"] == 0.0
    assert v["detection"] == {"scale_shift": {"batches": 6, "detected": 6, "rate": 1.0}}


def test_small_batches_of_a_clean_run_are_not_quarantined():
    # the symptom: batches of a few hundred rows, no faults, most were quarantined
    sc = load_scenario("spam", SMALL + ["data.velocity=2e4/d", "horizon=1d", "data.batch_interval=30m"])
    v = simulate(sc, seed=2, design=Design("periodic", 3600.0, "dynamic", None, 2)).metrics["validation"]
    assert v["clean_batches"] == 47 and v["detection"] == {}
    # P(≥ 3 of 47 alarms) at a per-batch rate ≤ 3 checks × 0.5% is 0.03
    assert v["false_alarms"] <= 3


# ------------------------------------------------------------------ latency tails

from advisor import tails, theory  # noqa: E402
from advisor.latency import model_path_p99_s, provisioned_replicas  # noqa: E402
from simulator import kernels  # noqa: E402


@pytest.mark.parametrize("rho", [0.3, 0.7, 0.95])
def test_mdc_with_one_server_is_erlangs_md1_formula(rho):
    for t in (0.0, 0.4, 1.0, 2.5, 7.0):
        exact = theory.md1_wait_cdf(t, rho, 1.0)
        assert tails.mdc_wait_cdf(t, rho, 1.0, 1) == pytest.approx(exact, abs=1e-8)


@pytest.mark.parametrize("c,rho", [(2, 0.8), (8, 0.9), (64, 0.97), (256, 0.95)])
def test_mdc_mean_wait_is_littles_law_on_the_queue_length_law(c, rho):
    # E[W] = ∫ P(W > t) dt must equal E[(N − c)+]/λ from the stationary law of N (Little)
    lam = rho * c
    q = tails.mdc_queue_probs(round(lam, 12), c)
    lq = float(np.sum(np.arange(q.size) * q))
    t = np.linspace(0, 1, 20_001)
    span = 1.0
    while 1 - tails.mdc_wait_cdf(span, lam, 1.0, c) > 1e-9:
        span *= 2
    tt = t * span
    ew = np.trapezoid(1 - tails.mdc_wait_cdf(tt, lam, 1.0, c), tt)
    assert ew == pytest.approx(lq / lam, rel=5e-3)


def test_mdc_wait_distribution_matches_the_exact_fifo_queue():
    # c = 4, ρ = 0.8: P(W = 0) and P(W ≤ D/2, D, 2D) against the simulator's Kiefer–Wolfowitz
    # kernel; 20 batch means give a Student-t interval, tolerance 4 of its half-widths
    c, rho, n = 4, 0.8, 1_000_000
    rng = np.random.default_rng(11)
    arr = np.cumsum(rng.exponential(1 / (rho * c), n))
    w = (kernels.fifo_starts(np.zeros(c), arr, np.ones(n)) - arr)[n // 20:]
    for t in (0.0, 0.5, 1.0, 2.0):
        b = np.array([(x <= t + 1e-12).mean() for x in np.array_split(w, 20)])
        half = stats.t.ppf(0.975, 19) * b.std(ddof=1) / math.sqrt(20)
        assert abs(b.mean() - tails.mdc_wait_cdf(t, rho * c, 1.0, c)) <= 4 * half + 1e-3, t


def test_exponential_service_uses_the_exact_mmc_tail():
    lam, c = 7.0, 8
    t = np.array([0.0, 0.3, 1.0])
    cw = theory.erlang_c(c, lam)
    assert tails.mgc_wait_tail(t, lam, 1.0, 1.0, c) == pytest.approx(cw * np.exp(-(c - lam) * t))
    assert tails.mgc_wait_tail(t, lam, 1.0, 1.0, c) == pytest.approx(tails.mmc_wait_tail(t, lam, 1.0, c))


def test_deterministic_service_no_longer_uses_the_exponential_tail():
    # M/D/1 at ρ = 0.5: the old Allen–Cunneen exponential tail put p99 13% high (measured)
    lam, d = 0.5, 1.0
    p_exact = 1 - theory.md1_wait_cdf(2.0, lam, d)
    assert float(tails.mgc_wait_tail(2.0, lam, d, 0.0, 1)) == pytest.approx(p_exact, abs=1e-6)
    assert abs(float(theory.mgc_wait_tail(2.0, lam, d, 0.0, 1)) - p_exact) > 0.01


def test_p99_margin_follows_the_measured_errors():
    assert tails.p99_margin(0.0, 1) == tails.p99_margin(0.43, 4) == tails.p99_margin(1.0, 64) == 0.0
    assert tails.p99_margin(1.66, 1) > tails.p99_margin(1.66, 4) > tails.p99_margin(1.66, 64) > 0
    assert tails.p99_margin(15.8, 2) >= tails.p99_margin(1.66, 2)
    assert tails.p99_margin(1e3, 2) > tails.p99_margin(15.8, 2)   # beyond the measured range


def test_advisor_replicas_for_deterministic_service_meet_the_slo_in_simulation():
    # a tight SLO on deterministic service: the pool the advisor sizes with the exact M/D/c
    # tail must keep violations at most 1% (plus 3 binomial standard errors) in the simulator
    sc = load_scenario("spam", ["traffic.rate=400/s", "horizon=20m", "traffic.diurnal_amplitude=0",
                                "model.inference_time={distribution: deterministic, value: 20ms}",
                                "slo.latency_p99=32ms", "serving.min_replicas=1"])
    c, meets = provisioned_replicas(sc, 0.0)
    assert meets and model_path_p99_s(sc, 0.0, c) <= 0.032
    m = simulate(sc, seed=4, design=Design("static", None, "dynamic", None, c)).metrics
    n = m["requests"]
    assert m["slo_violation_fraction"] <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / n)
    # and one replica fewer would not meet it (the count is the fewest)
    assert model_path_p99_s(sc, 0.0, c - 1) > 0.032


# ------------------------------------------------------------------ accuracy as a distribution

from statistics import NormalDist  # noqa: E402

from advisor import accuracy, design_for, predict  # noqa: E402


def test_key_concentration_is_the_sum_of_squared_shares():
    sc = load_scenario("spam", ["traffic.cardinality=1000", "traffic.peakedness.zipf_s=1.1"])
    w = np.arange(1, 1001) ** -1.1
    w /= w.sum()
    assert accuracy.key_concentration(sc) == pytest.approx(float(np.sum(w ** 2)), rel=1e-9)
    flat = load_scenario("spam", ["traffic.cardinality=unbounded", "traffic.peakedness.zipf_s=0.8"])
    assert accuracy.key_concentration(flat) == 0.0


def test_key_concentration_sd_matches_a_monte_carlo_of_worlds():
    # each world: every key's stale prediction is wrong with probability p, for all of its
    # requests; the loss is the share-weighted mean. Empirical sd over 4000 worlds has a
    # relative standard error of ~1/sqrt(2·4000) = 1.1%: allow 4.5%
    sc = load_scenario("spam", ["traffic.cardinality=2000", "traffic.peakedness.zipf_s=1.1",
                                "data.label_noise=0.1"])
    eps, p = 0.1, 0.05
    loss = p * (1 - 2 * eps)
    keys_sd, _ = accuracy.loss_sd(sc, loss)
    w = np.arange(1, 2001) ** -1.1
    w /= w.sum()
    rng = np.random.default_rng(5)
    worlds = (rng.random((4000, w.size)) < p) @ w * (1 - 2 * eps)
    assert worlds.mean() == pytest.approx(loss, rel=0.03)
    assert worlds.std(ddof=1) == pytest.approx(keys_sd, rel=0.045)


def test_band_and_confidence_quantile_are_normal_quantiles():
    sc = load_scenario("voice-to-text", ["slo.accuracy_confidence=0.9"])   # the preset decides at 0.5
    p = predict(sc, design_for(load_scenario("voice-to-text")))
    sd = p.accuracy_loss_sd
    assert sd > 0
    lo, hi = p.accuracy_loss_band90
    z = NormalDist().inv_cdf(0.95)
    assert lo == pytest.approx(p.accuracy_loss - z * sd) and hi == pytest.approx(p.accuracy_loss + z * sd)
    assert p.accuracy_loss_at_confidence == pytest.approx(p.accuracy_loss + NormalDist().inv_cdf(0.9) * sd)
    half = predict(load_scenario("voice-to-text", ["slo.accuracy_confidence=0.5"]), design_for(load_scenario("voice-to-text")))
    assert half.accuracy_loss_at_confidence == pytest.approx(half.accuracy_loss)
    # the budget verdict at confidence is reported beside the mean's
    assert p.accuracy_budget_met_at_confidence == (p.accuracy_loss_at_confidence <= sc.slo.max_accuracy_loss)


def test_flat_traffic_has_only_per_request_spread():
    sc = load_scenario("spam")
    p = predict(sc, design_for(sc))
    k, r = accuracy.loss_sd(sc, p.accuracy_loss)
    assert k == 0.0 and r > 0 and p.accuracy_loss_sd == pytest.approx(r)


def test_negative_loss_is_reported_with_a_note_never_clamped():
    sc = load_scenario("spam", ["model.training_window=20d", "data.concept_half_life=12h", "horizon=20d"])
    p = predict(sc, design_for(sc))
    assert p.accuracy_loss < 0
    assert p.notes and "negative" in p.notes[0] and "model.training_window" in p.notes[0]


def test_accuracy_confidence_is_validated(cli):
    res = cli("advise", "spam", "--set", "slo.accuracy_confidence=0.3", "--json")
    assert res.exit_code == 2
    res = cli("advise", "voice-to-text", "--json")
    pred = __import__("json").loads(res.stdout)["predicted"]
    for key in ("accuracy_loss_sd", "accuracy_loss_band90", "accuracy_confidence",
                "accuracy_loss_at_confidence", "accuracy_budget_met_at_confidence", "notes"):
        assert key in pred


# ------------------------------------------------------------------ selfcheck --random

from mlarch import randomcheck  # noqa: E402


def test_random_scenarios_are_valid_seeded_and_cover_the_fields():
    a = [randomcheck.draw(np.random.default_rng(3))[0] for _ in range(1)]
    b = [randomcheck.draw(np.random.default_rng(3))[0] for _ in range(1)]
    assert a == b
    rng = np.random.default_rng(4)
    kinds, modes = set(), set()
    for _ in range(40):
        o, sc = randomcheck.draw(rng)
        kinds.add(sc.model.inference_time.distribution)
        modes.add(sc.architecture.training)
        assert 1 <= sc.traffic.rate <= 5000 and 0.5 <= sc.traffic.zipf_s <= 1.5
    assert kinds == {"lognormal", "exponential", "deterministic"}
    assert {"static", "periodic", "continuous"} <= modes


def test_random_check_compares_every_cost_line_and_summarises(cli, monkeypatch):
    from mlarch import selfcheck as sc_mod
    monkeypatch.setattr(sc_mod, "run", lambda **kw: [])
    small = ["traffic.rate=5/s", "horizon=1h", "data.batch_interval=15m", "model.training_window=6h",
             "architecture.training=periodic", "architecture.retrain_every=30m", "architecture.serving=hybrid",
             "traffic.cardinality=1e5", "traffic.peakedness.zipf_s=1.1"]
    monkeypatch.setattr(randomcheck, "draw", lambda rng: (small, load_scenario("spam", small)))
    res = cli("selfcheck", "--random", "1", "--random-seeds", "1", "--json")
    assert res.exit_code == 0, res.stderr
    doc = __import__("json").loads(res.stdout)["random"]
    row = doc["rows"][0]
    for part, line in randomcheck.COST_LINES:
        assert f"cost:{part}.{line}" in row
    assert {"p99_rel", "bytes:data", "bytes:table", "loss_in_band", "slo_holds"} <= set(row)
    s = doc["summary"]
    assert s["runs"] == 1 and "slo_holds_where_claimed" in s["claims"]
    assert s["errors"]["cost:recurring_usd_per_month.serving"]["max"] < 1e-9   # replicas × month, both sides
    # one definition of every cost line on both sides (issue 11): this run has no false alarm,
    # so every line and byte count agrees to rounding (the data by window, not by whole batch)
    assert s["runs_with_false_alarms"] == 0
    for k, d in s["errors"].items():
        if k.startswith(("cost:", "bytes:")):
            assert d["max"] < 1e-9, k
    assert s["claims"]["loss_seed_mean_within_max_10pct_2se"]["runs"] == 1


def _row(scenario, loss_sim, loss_pred=0.01, sd=0.004, false_alarms=0, clean=10):
    return {"scenario": scenario, "loss_sim": loss_sim, "loss_pred": loss_pred, "loss_sd_run": sd,
            "false_alarms": false_alarms, "clean_batches": clean, "p99_rel": 0.0, "hit_abs": 0.0,
            "age_rel": 0.0, "cost:x": 0.0, "slo_holds": True, "slo_claimed": True, "budget_holds": True,
            "budget_claimed": True, "loss_in_band": True, "negative_loss": loss_sim < 0,
            "negative_loss_outside_band": False}


def test_seed_mean_check_uses_the_predicted_standard_error():
    # 4 seeds with sd 0.004 each: SE = 0.002, tolerance max(0.001, 0.004) = 0.004 around 0.01
    ok = [_row(0, v) for v in (0.012, 0.013, 0.014, 0.013)]        # mean 0.013: |0.003| ≤ 0.004
    bad = [_row(1, v) for v in (0.016, 0.015, 0.015, 0.014)]       # mean 0.015: |0.005| > 0.004
    tight = [_row(2, v, sd=0.0) for v in (0.0109, 0.0109)]         # SE 0: within 10% of 0.01
    m = {x["scenario"]: x for x in randomcheck.seed_means(ok + bad + tight)}
    assert m[0]["se"] == pytest.approx(0.002) and m[0]["tolerance"] == pytest.approx(0.004)
    assert m[0]["holds"] and not m[1]["holds"] and m[2]["holds"]


def test_false_alarms_are_judged_against_the_stated_rate_and_cost_lines_skip_those_runs():
    # stated: 1 − 0.995³ = 1.49% per clean batch; 2000 batches: allowed 1.49% + 3 × 0.27%
    rows = [_row(i, 0.01, clean=100, false_alarms=(1 if i < 20 else 0)) for i in range(20 + 180)]
    rows[0]["cost:x"] = 0.5            # a run with a false alarm: its cost error is not counted
    s = randomcheck.summarise(rows)
    v = s["validation"]
    assert v["stated_rate_any_check"] == pytest.approx(1 - 0.995 ** 3)
    assert v["rate"] == pytest.approx(20 / 20000) and v["within_stated_rate"]
    assert s["runs_with_false_alarms"] == 20 and s["errors"]["cost:x"]["max"] == 0.0
    worse = [_row(i, 0.01, clean=100, false_alarms=3) for i in range(200)]   # 3%: beyond
    assert not randomcheck.summarise(worse)["validation"]["within_stated_rate"]


def test_huge_mdc_chains_fall_back_to_allen_cunneen_without_a_dense_solve():
    # c = 5000 would need a 5000×5000 solve (and c = 50,000 25 GB): the measured fallback
    c, rho = 5000, 0.9
    assert tails.mdc_states(rho * c, c) > tails.MAX_STATES
    t = np.array([0.0, 0.01, 0.05])
    assert tails.mgc_wait_tail(t, rho * c, 1.0, 0.0, c) == pytest.approx(theory.mgc_wait_tail(t, rho * c, 1.0, 0.0, c))
    with pytest.raises(OverflowError):
        tails.mdc_queue_probs(rho * c, c)
