"""`mlarch selfcheck`: run the simulator (the same code path as `simulate`) on scenarios built
here and compare each figure with closed-form theory, and the advisor's predictions with
the simulator on every preset.

Tolerances (docs/fidelity.md): a statistical check has a standard error `se` (batch means over
report windows after a warm-up cut, Student t; or a binomial / Poisson / renewal-CLT sd) and an
`allowance` (the histogram's 1% resolution for quantiles, the measured error of an
approximation where theory is approximate). It passes when |simulated − theory| <= z·se +
allowance, z the two-sided quantile for FALSE_FAILURE_RATE; it then detects, with probability
POWER, any systematic error above `detectable_bias` = z·se + allowance + z_POWER·se.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from scenarios import load_scenario, preset_names
from scenarios.schema import Scenario

from advisor import design_for, predict, theory
from scenarios.design import Design

HIST_REL = 0.01          # LogHistogram quantile resolution
BATCHES = 50
WARMUP_BATCHES = 1
FALSE_FAILURE_RATE = 1e-3   # per statistical check, when its allowance covers the approximation
POWER = 0.9                 # a bias of detectable_bias fails the check with this probability


def z_tolerance(df: int | None = None) -> float:
    """Two-sided quantile for FALSE_FAILURE_RATE: Student t on df degrees of freedom (batch
    means), else normal."""
    q = 1.0 - FALSE_FAILURE_RATE / 2
    return float(stats.t.ppf(q, df)) if df else float(stats.norm.ppf(q))


@dataclass
class Check:
    group: str
    name: str
    theory: float
    simulated: float
    ci_low: float | None
    ci_high: float | None
    tolerance: float          # absolute: pass iff |simulated − theory| <= tolerance
    unit: str = ""
    note: str = ""
    se: float | None = None          # standard error of `simulated` (None: a deterministic check)
    allowance: float = 0.0           # stated error of the theory or the measurement, in the tolerance
    df: int | None = None            # degrees of freedom of se (batch means), None for normal

    @property
    def false_failure_rate(self) -> float | None:
        """Chance that a correct simulator fails this check (statistical checks)."""
        return FALSE_FAILURE_RATE if self.se else None

    @property
    def detectable_bias(self) -> float:
        """Smallest systematic error that fails the check with probability POWER: the tolerance
        plus z_POWER standard errors (the far tail adds under FALSE_FAILURE_RATE); for a
        deterministic check, the tolerance itself."""
        if not self.se:
            return self.tolerance
        return self.tolerance + float(stats.norm.ppf(POWER)) * self.se

    @property
    def abs_error(self) -> float:
        return abs(self.simulated - self.theory)

    @property
    def rel_error(self) -> float | None:
        return self.abs_error / abs(self.theory) if self.theory else None

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.simulated)) and self.abs_error <= self.tolerance + 1e-15

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(check=f"{self.group}: {self.name}", rel_error=self.rel_error, abs_error=self.abs_error,
                 passed=self.passed, ci95=[self.ci_low, self.ci_high],
                 false_failure_rate=self.false_failure_rate, detectable_bias=self.detectable_bias,
                 detectable_bias_rel=self.detectable_bias / abs(self.theory) if self.theory else None,
                 error_in_se=self.abs_error / self.se if self.se else None)
        return d


def batch_se(values) -> tuple[float, float, int]:
    """Mean, standard error and degrees of freedom of batch means, after the warm-up cut."""
    v = np.asarray(values, dtype=float)[WARMUP_BATCHES:]
    v = v[np.isfinite(v)]
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)), int(v.size - 1)


def stat_check(group, name, th, sim, se, allowance=0.0, unit="", note="", df=None) -> Check:
    """A statistical check: passes when |sim − th| <= z_tolerance(df)·se + allowance; its 95%
    interval is sim ± the 97.5% quantile times se."""
    z95 = float(stats.t.ppf(0.975, df)) if df else 1.959963984540054
    return Check(group, name, th, sim, sim - z95 * se, sim + z95 * se, z_tolerance(df) * se + allowance,
                 unit, note, se=se, allowance=allowance, df=df)


def _check(group, name, th, values, unit="", extra_tol=0.0, note="", point=None) -> Check:
    mean, se, df = batch_se(values)
    return stat_check(group, name, th, mean if point is None else point, se, extra_tol, unit, note, df)


def _scenario(name: str, **kw) -> Scenario:
    import re
    base = dict(name=re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-"), horizon=3600, traffic=dict(rate=1000, cardinality="unbounded"),
                data=dict(velocity=1000, concept_half_life="never"),
                model=dict(inference_time=dict(distribution="exponential", mean=0.001)),
                slo=dict(latency_p99=1))
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return Scenario.model_validate(base)


def _run(sc: Scenario, design: Design, seed: int, batches: int = BATCHES, hists: bool = False):
    from simulator import simulate
    return simulate(sc, design, seed=seed, report_every_s=sc.horizon / batches, keep_bucket_hists=hists)


# ------------------------------------------------------------------ queueing

def _queue_checks(label: str, dist: dict, rate: float, c: int, n: float, seed: int, *, mean_s: float,
                  es2: float | None = None, exact_mmc: bool = False, md1: bool = False) -> list[Check]:
    horizon = n / rate
    sc = _scenario(label, horizon=horizon, traffic=dict(rate=rate),
                   model=dict(inference_time=dist))
    res = _run(sc, Design("static", None, "dynamic", None, c), seed, hists=True)
    ts = res.timeseries
    wq = [r["queue_wait_mean_ms"] / 1e3 for r in ts]
    out = []
    g = f"{label} (ρ={rate * mean_s / c:.2f}, c={c})"
    mu = 1.0 / mean_s
    if exact_mmc:
        out.append(_check(g, "mean wait", theory.mmc_wait_mean_s(rate, mu, c), wq, "s"))
        out.append(_check(g, "P(wait)", theory.erlang_c(c, rate / mu), [r["waited_fraction"] for r in ts]))
        p99 = theory.mmc_wait_quantile_s(0.99, rate, mu, c)
        b99 = [h.quantile(0.99) for h in res.bucket_wait_hists]
        out.append(_check(g, "p99 wait", p99, b99, "s", extra_tol=HIST_REL * p99,
                          point=res.wait_hist.quantile(0.99)))
    else:
        out.append(_check(g, "mean wait (Pollaczek–Khinchine)", theory.mg1_wait_mean_s(rate, mean_s, es2), wq, "s"))
    if md1:
        d = mean_s
        for mult in (0.5, 1.0, 2.0):
            t = mult * d
            vals = [h.cdf_at(t) for h in res.bucket_wait_hists]
            # a 2% bin at t moves the CDF by at most density × 2% t; the M/D/1 wait density is <= λ
            out.append(_check(g, f"P(wait <= {mult:g}D)", theory.md1_wait_cdf(t, rate, d), vals,
                              extra_tol=rate * 0.02 * t, point=res.wait_hist.cdf_at(t)))
    if c == 1 and exact_mmc:
        # Little's law L = λW: queue length seen by arrivals (PASTA) vs λ × mean wait, per window
        lq = [r["queue_length_seen_mean"] for r in ts]
        lam_w = res.metrics["requests"] / sc.horizon * res.metrics["queue_wait_ms"]["mean"] / 1e3
        out.append(_check(g, "Little's law Lq = λWq", lam_w, lq, "requests",
                          note="Lq measured as the queue seen by arrivals (PASTA)"))
    return out


# -------------------------------------------------------------------- caching

def _hit_checks(n_req: float, seed: int, quick: bool) -> list[Check]:
    cases = [(10**6, 0.8, 10**4), (10**9, 1.0, 10**5), (10**15, 1.2, 10**5), (None, 1.3, 1000)]
    if quick:
        cases = cases[1:3]
    out = []
    for n, s, k in cases:
        rate = 20000.0
        sc = _scenario("hit", horizon=n_req / rate, traffic=dict(rate=rate, cardinality=n if n else "unbounded",
                                                                  peakedness=dict(zipf_s=s)),
                       model=dict(inference_time=dict(distribution="exponential", mean=1e-5)))
        res = _run(sc, Design("static", None, "hybrid", k, 4), seed)
        th = theory.zipf_coverage(k, n, s)
        hits = [r["hit_ratio"] for r in res.timeseries]
        label = "unbounded" if n is None else f"N=1e{round(math.log10(n))}"
        out.append(_check("hit ratio vs H(k,s)/H(N,s)", f"{label}, s={s}, k={k:g}", th, hits,
                          point=res.metrics["cache_hit_ratio"]))
    return out


# ------------------------------------------------------------------ staleness

def _age_check(seed: int, quick: bool) -> Check:
    T, delay, train = 3600.0, 600.0, 300.0
    horizon = (6 if quick else 12) * T
    sc = _scenario("age", horizon=horizon, traffic=dict(rate=50),
                   data=dict(velocity="1e5/h", concept_half_life="1d", label_delay=delay, batch_interval=900),
                   model=dict(train_time=dict(fixed=train), training_window="2h"))
    res = _run(sc, Design("periodic", T, "dynamic", None, 2), seed, batches=int(horizon / T))
    ages = [r["model_age_mean_s"] for r in res.timeseries]
    # per whole period the age is U(D, D+T) sampled by Poisson arrivals: batch means over periods
    return _check("staleness", "periodic mean model age D + T/2 (T=1h, D=15m)", theory.periodic_mean_age_s(
        delay + train, T), ages, "s", point=res.metrics["staleness"]["model_age_s"]["mean"])


def _drift_checks(seed: int, quick: bool) -> list[Check]:
    hl = 6 * 3600.0
    horizon = (12 if quick else 24) * 3600.0
    eps, window = 0.05, 1800.0
    sc = _scenario("drift", horizon=horizon, traffic=dict(rate=50 if quick else 100),
                   data=dict(velocity="2e6/h", concept_half_life=hl, label_noise=eps, batch_interval=900),
                   model=dict(training_window=window))
    res = _run(sc, Design("static", None, "dynamic", None, 2), seed, batches=int(horizon / 3600))
    out = []
    examples = 2e6 / 3600 * window
    for r in res.timeseries[1::4]:
        lo, hi = r["t_start_s"], r["t_end_s"]   # model data end is at t = 0 (no delay, no job time)
        th = theory.mean_accuracy_over_ages(lo, hi, features=16, half_life_s=hl, window_s=window,
                                            label_noise=eps, examples=examples)
        n = r["requests"]
        sim = r["served_expected_accuracy"]
        # per-request correctness is Bernoulli (variance <= 1/4 n); the fitted model's own
        # estimation error moves accuracy by < 0.003 at this many examples (estimation_cos)
        out.append(stat_check("frozen model under drift (half-life 6h)",
                              f"accuracy at age {lo / 3600:.0f}–{hi / 3600:.0f}h", th, sim,
                              math.sqrt(th * (1 - th) / n), 0.003,
                              note="expected accuracy over label noise, per request"))
    return out


# --------------------------------------------------------------------- traffic

def _diurnal_check(seed: int, rate: float = 100.0) -> list[Check]:
    from simulator.traffic import integrated_rate
    sc = _scenario("diurnal", horizon=86400, traffic=dict(rate=rate, diurnal_amplitude=0.8),
                   model=dict(inference_time=dict(distribution="exponential", mean=1e-4)))
    res = _run(sc, Design("static", None, "dynamic", None, 1), seed, batches=24)
    counts = np.array([r["requests"] for r in res.timeseries], dtype=float)
    expect = np.array([integrated_rate(r["t_start_s"], r["t_end_s"], rate, 0.8) for r in res.timeseries])
    chi = float(np.sum((counts - expect) ** 2 / expect))
    p = float(stats.chi2.sf(chi, counts.size))
    total, mu = counts.sum(), expect.sum()
    g = "arrivals (A=0.8, hourly counts over a day)"
    # the day's total alone passes a phase or shape error (the sine integrates to 0 over a
    # day); the hourly χ² (Poisson counts, 24 df) tests the shape: it fails when χ² exceeds its
    # (1 − FALSE_FAILURE_RATE) quantile
    return [stat_check(g, "requests over the day vs ∫rate", mu, total, math.sqrt(mu), unit="requests"),
            Check(g, f"hourly shape: χ² on {counts.size} df (p={p:.2g})", float(counts.size), chi, None, None,
                  float(stats.chi2.ppf(1 - FALSE_FAILURE_RATE, counts.size)) - counts.size,
                  note="χ² of hourly counts against ∫rate; fails above its 0.999 quantile")]


# ------------------------------------------------------ advisor vs simulator

def _loss_sd_from_keys(sc: Scenario, loss: float) -> float:
    """Standard deviation of a measured staleness loss due to popular keys: one key's
    prediction is right or wrong for all its requests, so the loss averages over
    Σ share_i² 'effective' draws: sd = (1 − 2ε) sqrt(Σ share_i² · p(1 − p))."""
    n, s, eps = sc.traffic.cardinality, sc.traffic.zipf_s, sc.data.label_noise
    if n is None and s <= 1:
        conc = 0.0
    elif n is None:
        from scipy import special
        conc = float(special.zeta(2 * s)) / float(special.zeta(s)) ** 2
    else:
        conc = theory.harmonic(n, 2 * s) / theory.harmonic(n, s) ** 2
    p = min(0.5, max(loss, 1e-6) / max(1 - 2 * eps, 1e-9))
    return (1 - 2 * eps) * math.sqrt(conc * p * (1 - p))


P99_GRID_REL = 0.015   # the advisor's p99 from a 1,000-point service quantile grid: measured within
#                        1.5% both ways for deterministic, exponential and lognormal c_s² <= 1
#                        service (advisor/tails.py, docs/fidelity.md "Latency tails")


def p99_approx_rel(sc: Scenario, design: Design) -> float:
    """Relative error the advisor's p99 may have for this design: none without a queue (table
    lookups only), else the measured grid error or, for high-variance service, the measured
    worst under-estimate of the Allen–Cunneen tail (advisor.tails.MEASURED_UNDERESTIMATE)."""
    from advisor import tails
    from scenarios.schema import cs2
    if not design.replicas:
        return 0.0
    return max(P99_GRID_REL, tails.p99_margin(cs2(sc.model.inference_time), design.replicas))


def _preset_checks(name: str, seed: int, quick: bool, sets: tuple = ()) -> list[Check]:
    """The advisor's figures against a simulation of its own design, for a preset (with
    `--set` overrides `sets`, e.g. to pin another training or serving mode)."""
    from simulator import simulate
    sets = list(sets)
    base = load_scenario(name, sets)
    design = design_for(base)
    g = f"advisor vs simulator: {name}" + (f" ({', '.join(sets)})" if sets else "")
    out = []
    # (a) latency and caching at the full rate over a short span
    span = "20m" if quick else "2h"
    sc = load_scenario(name, sets + [f"horizon={span}"])
    p = predict(sc, design)
    res = simulate(sc, design, seed=seed, report_every_s=sc.horizon / BATCHES)
    m = res.metrics
    lat = m["latency_ms"]["p99"]
    b99 = [r["latency_p99_ms"] for r in res.timeseries]
    mean, se, df = batch_se(b99)
    out.append(stat_check(g, "p99 latency", p.latency_p99_ms, lat, se,
                          (p99_approx_rel(sc, design) + HIST_REL) * p.latency_p99_ms, "ms",
                          "measured error of the tail approximation + histogram resolution", df))
    hits = [r["hit_ratio"] for r in res.timeseries]
    out.append(_check(g, "cache hit ratio", p.cache_hit_ratio, hits, point=m["cache_hit_ratio"]))
    # (table bytes are keys × prediction_bytes on both sides: not a check)
    # (b) staleness and accuracy over the full horizon at a low rate (they do not depend on it):
    # about 1M (quick) or 2M requests
    # over a span of up to 14 days (a 90-day lifetime's control plane would dominate the check;
    # the design is still the one planned for the lifetime, and both sides see the same span)
    span_s = min(base.horizon, 14 * 86400.0)
    rate = min(20.0, (1e6 if quick else 2e6) / span_s)
    sc = load_scenario(name, sets + [f"traffic.rate={rate:.6g}", f"horizon={span_s:.0f}s"])
    p = predict(sc, design)
    m = simulate(sc, design, seed=seed).metrics
    age = m["staleness"]["model_age_s"]["mean"]
    # Poisson sampling of a sawtooth of width T: sd = T/sqrt(12 n); scheduling is exact
    lo_hi = p.model_age_range_s
    width = max(lo_hi[1] - lo_hi[0], 1.0)
    # the advisor predicts the schedule without validation false alarms; a continuous design
    # skips the update on each clean batch quarantined (at most the stated rate), which keeps
    # the model one batch interval T older for one interval: + skips·T²/span on the mean
    expected_age = p.mean_model_age_s
    if design.training == "continuous":
        T = sc.data.batch_interval
        expected_age += m["validation"].get("false_alarms", 0) * T * T / sc.horizon
    out.append(stat_check(g, "mean model age", expected_age, age, width / math.sqrt(12 * m["requests"]),
                          0.01 * p.mean_model_age_s, "s",
                          note="1% for the table-refresh approximation; continuous: plus the updates skipped on false alarms"))
    loss = m["accuracy"]["lost_to_staleness"]
    # per request the paired difference is ±(1 − 2ε) with probability ~p: its sampling sd,
    # combined with the popular keys' concentration
    eps = sc.data.label_noise
    p_flip = min(0.5, max(p.accuracy_loss, 1e-6) / max(1 - 2 * eps, 1e-9))
    sd = math.hypot(_loss_sd_from_keys(sc, p.accuracy_loss),
                    (1 - 2 * eps) * math.sqrt(p_flip / max(m["requests"], 1)))
    out.append(stat_check(g, "accuracy lost to staleness", p.accuracy_loss, loss, sd,
                          0.15 * p.accuracy_loss + 0.0005,
                          note="15% for the window-mean (Brillinger) approximation; key concentration sd"))
    return out


# --------------------------------------------------------------------- driver

def run(quick: bool = False, seed: int = 1, progress=None, presets: list[str] | None = None) -> list[Check]:
    """All checks. progress: optional callable(step_name, fraction)."""
    n = 2e5 if quick else 1e6
    steps = [
        ("M/M/1", lambda: _queue_checks("M/M/1", dict(distribution="exponential", mean=0.0004), 2000, 1, n, seed,
                                         mean_s=0.0004, exact_mmc=True)),
        ("M/M/c", lambda: _queue_checks("M/M/8", dict(distribution="exponential", mean=0.004), 1600, 8, n, seed,
                                         mean_s=0.004, exact_mmc=True)),
        ("M/D/1", lambda: _queue_checks("M/D/1", dict(distribution="deterministic", value=0.0005), 1400, 1, n,
                                         seed, mean_s=0.0005, es2=0.0005 ** 2, md1=True)),
        ("M/G/1", lambda: _lognormal_mg1(n, seed)),
        ("hit ratio", lambda: _hit_checks(n, seed, quick)),
        ("model age", lambda: [_age_check(seed, quick)]),
        ("drift", lambda: _drift_checks(seed, quick)),
        ("arrivals", lambda: _diurnal_check(seed, 30.0 if quick else 100.0)),
        ("monitoring", lambda: _monitor_checks(seed, quick)),
    ]
    steps.append(("autoscaling", lambda: _autoscale_checks(seed, quick)))
    steps.append(("batching", lambda: _batching_checks(seed, quick)))
    steps.append(("failures", lambda: _failure_checks(seed, quick)))
    for name in (presets if presets is not None else preset_names()):
        steps.append((name, lambda name=name: _preset_checks(name, seed, quick)))
    out = []
    for k, (label, fn) in enumerate(steps):
        if progress:
            progress(label, k / len(steps))
        out.extend(fn())
    if progress:
        progress("done", 1.0)
    return out


# ---------------------------------------------------------------- autoscaling

AUTOSCALE_HOURS_TOL = 0.03   # the bar for replica-hours; seed-to-seed sd is ~0.3% (docs/fidelity.md)
AUTOSCALE_P99_TOL = 0.10     # the bar for p99: pointwise-stationary M/M/c per interval


def _autoscale_checks(seed: int, quick: bool) -> list[Check]:
    """An autoscaled pool on a slowly varying load (a ±50% daily swing, 30 s cold start) over a
    day: the simulator's billed replica-hours and p99 against the advisor's pointwise-stationary
    schedule (advisor.provisioning)."""
    from simulator import simulate
    rate = 20.0 if quick else 30.0
    sc = _scenario("autoscale", horizon=86400, traffic=dict(rate=rate, diurnal_amplitude=0.5),
                   model=dict(inference_time=dict(distribution="exponential", mean=0.1)),
                   serving=dict(autoscale=dict(cold_start=30, interval=60, scale_down_after=300)),
                   slo=dict(latency_p99=0.5))
    design = design_for(sc)
    p = predict(sc, design)
    res = simulate(sc, design, seed=seed, request_budget=None, report_every_s=3600)
    m = res.metrics
    g = f"autoscaling (PSA, A=0.5, cold start 30s, {rate:g}/s)"
    hours = m["autoscale"]["replica_hours"]
    lat = m["latency_ms"]["p99"]
    return [
        Check(g, "replica-hours", p.replica_hours, hours, None, None, AUTOSCALE_HOURS_TOL * p.replica_hours, "h",
              note="the autoscaler's rule on the fluid load, with its observation noise"),
        Check(g, "p99 latency", p.latency_p99_ms, lat, None, None,
              AUTOSCALE_P99_TOL * p.latency_p99_ms, "ms", note="pointwise-stationary M/M/c mixture"),
    ]


def _batching_checks(seed: int, quick: bool) -> list[Check]:
    """Batching replicas on a vectorised model (T(b) = 20 ms + 0.5 ms·b, batches of up to 32,
    10 ms timeout) at 2000/s: mean batch and throughput per busy replica against the Poisson
    batch law, p99 against the GI/G/c batch-server formula (advisor.batching)."""
    sc = _scenario("batching", horizon=300 if quick else 900, traffic=dict(rate=2000),
                   model=dict(inference_time=dict(distribution="deterministic", value=0.02),
                              batch_time=dict(fixed=0.02, per_item=0.0005)),
                   serving=dict(batching=dict(max_batch=32, timeout=0.01)), slo=dict(latency_p99=0.15))
    design = design_for(sc)
    p = predict(sc, design)
    res = _run(sc, design, seed)
    m, g = res.metrics, f"batching (b <= 32, timeout 10 ms, {design.replicas} replicas)"
    b99 = [r["latency_p99_ms"] for r in res.timeseries]
    lat = m["latency_ms"]["p99"]
    mean, se, df = batch_se(b99)
    pb, sb = p.batching, m["batching"]
    # a ratio of means over ~10^5 batches: its sd is well under 0.5%; 1% covers it with margin
    return [
        Check(g, "mean batch size", pb["mean_batch"], sb["mean_batch"], None, None, 0.01 * pb["mean_batch"]),
        Check(g, "throughput per busy replica", pb["throughput_per_busy_replica_per_s"],
              sb["throughput_per_busy_replica_per_s"], None, None, 0.01 * pb["throughput_per_busy_replica_per_s"],
              "req/s"),
        stat_check(g, "p99 latency", p.latency_p99_ms, lat, se, 0.10 * p.latency_p99_ms, "ms",
                   "GI/G/c Allen–Cunneen batch queue + batch fill + T(b): measured 6–8%", df),
    ]


def _failure_checks(seed: int, quick: bool) -> list[Check]:
    """8 replicas for 3 Erlangs, each failing every 2 h on average and down 10 min, over a day:
    the replica-time up against the availability mtbf/(mtbf + mttr), and the p99 against the
    advisor's mixture over replicas down."""
    mtbf, mttr, c, H = 7200.0, 600.0, 8, 24 * 3600.0   # a day: ~90 failures (shorter runs see too few)
    sc = _scenario("failures", horizon=H, traffic=dict(rate=30),
                   model=dict(inference_time=dict(distribution="exponential", mean=0.1)),
                   serving=dict(replicas=c, failures=dict(mtbf=mtbf, mttr=mttr)), slo=dict(latency_p99=0.5))
    design = design_for(sc)
    p = predict(sc, design)
    res = _run(sc, design, seed, batches=24)
    m = res.metrics
    g = f"failures ({c} replicas, MTBF 2h, MTTR 10m)"
    avail = m["failures"]["availability"]
    # renewal CLT: failures N over c·H have sd sqrt(c·H·mtbf²/(mtbf + mttr)³) (exponential up
    # times), each costing mttr of one replica's time
    sd = mttr * math.sqrt(c * H * mtbf ** 2 / (mtbf + mttr) ** 3) / (c * H)
    lat = m["latency_ms"]["p99"]
    b99 = [r["latency_p99_ms"] for r in res.timeseries]
    mean, se, df = batch_se(b99)
    return [
        stat_check(g, "availability (replica-time up)", p.failures["availability"], avail, sd,
                   note="alternating renewal; renewal-CLT interval"),
        # hourly p99s vary with the failures each hour saw: their batch-means interval, plus 10%
        # for the mixture's neglect of the queue's transient after each failure
        stat_check(g, "p99 latency", p.latency_p99_ms, lat, se, 0.10 * p.latency_p99_ms, "ms",
                   "mixture over Binomial(c, mttr/(mtbf+mttr)) replicas down", df),
    ]
def _monitor_checks(seed: int, quick: bool) -> list[Check]:
    from . import selfcheck_monitor   # issue 17: false alarms and detection delay of the live-model monitor
    return selfcheck_monitor.checks(seed, quick)


def _lognormal_mg1(n: float, seed: int) -> list[Check]:
    from scenarios.schema import Lognormal
    dist = Lognormal(distribution="lognormal", median=0.001, p99=0.004)
    rate = 0.7 / dist.mean_s
    return _queue_checks("M/G/1 lognormal", dict(distribution="lognormal", median=0.001, p99=0.004), rate, 1, n,
                         seed, mean_s=dist.mean_s, es2=dist.second_moment_s2)
