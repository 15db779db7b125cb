"""The engine: SimPy moves time for the control plane; requests are processed in numpy
windows between control events (the data plane), with exact FIFO queueing carried across.

Control plane (SimPy processes, this module): data batches arriving and being validated,
training jobs taking simulated time, the evaluation gate, deployments, table refreshes by
batch prediction, and a reporting ticker. Every state change first calls
`DataPlane.advance(now)` (simulator.window), so a window of requests always sees one
constant system state. The engine runs the Design it is given; it never chooses one.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import simpy

from scenarios.accounting import MONTH_S, example_bytes
from scenarios.design import Design
from scenarios.schema import Scenario

from . import validate as validation
from .evaluate import gate
from .ingest import HISTORY_ROWS, MAX_ROWS, Batch, BatchesAhead, DataSource, feature_names, feed_times
from .window import _Bucket
from .serve import Table
from .traffic import Concept, KeyFeatures, zipf_for
from .train import Model, Stats, fit
from .slices import DEFAULT_REQUEST_BUDGET, SlicePlan, plan_slices
from .window import CHUNK_REQUESTS, DataPlane, draw_thread
HOLDOUT_SHARE = 0.2
REFERENCE_ROWS = 50_000          # history rows the validation reference is inferred from
MAX_REQUESTS = 2e10        # ~3 h at 2M requests/s: beyond this a run is refused, not started
# The control plane's budget. Work other than serving requests (data batches generated,
# validated and summarised, training fits, table fills, data-plane windows) is estimated
# from counts before the run and refused above this many seconds or bytes, so an accepted
# scenario finishes in (requests / 2M/s) + about CONTROL_BUDGET_S on a 2-core machine.
CONTROL_BUDGET_S = 30.0
MAX_CONTROL_BYTES = 1.5e9      # stored batch statistics and the largest batch in memory
# seconds per unit on the reference machine (measured with benchmarks; deliberately rounded up)
S_PER_BATCH = 2e-3             # fixed cost of one data batch: draw, validate, summarise
S_PER_ROW_VALUE = 4e-9         # per materialised example value (rows x (features + 3))
S_PER_GRAM_FLOP = 3e-10           # rows x features² for a batch's sufficient statistics (BLAS)
S_PER_WINDOW = 6e-3            # one data-plane window: the concept projected on the feature tables
S_PER_FIT_STAT = 1e-5          # one batch's statistics summed into a fit (plus features² each)
S_PER_KEY_FILL = 1e-8          # one key of a table fill, per feature
BYTES_PER_STAT = 600           # a stored batch summary beyond its features² float64s


RUN_ROWS = 5_000_000      # rows materialised over all batches of a run, at most (about 15 s)
MIN_BATCH_ROWS = 2_000


def batch_rows(horizon_s: float, batch_interval_s: float) -> int:
    """Rows materialised per arriving batch: all of them up to MAX_ROWS, fewer when a long
    lifetime brings thousands of batches (each row is weighted to stand for the rest)."""
    return int(min(MAX_ROWS, max(MIN_BATCH_ROWS, RUN_ROWS / max(1.0, horizon_s / batch_interval_s))))


class TooLarge(ValueError):
    """The run would not finish in reasonable time or memory; the message says why."""


def _report_ticks(horizon_s: float) -> float:
    return horizon_s / report_interval_s(horizon_s)


def control_cost(sc: Scenario, design: Design, horizon_s: float, recorded_s: float | None = None) -> dict:
    """Counts of control-plane work for a run and the time and bytes they imply (estimates).

    Keys: batches (history + run), rows (materialised examples), jobs (training fits),
    fit_stats (batch summaries summed by all fits), fills (table fills), windows (data-plane
    windows), seconds, bytes, and `terms` (seconds by kind, for the message). recorded_s: the
    span whose requests are simulated (less than the horizon when the lifetime is sliced)."""
    d, m = sc.data, sc.model
    B, W, H, f = d.batch_interval, m.training_window, horizon_s, d.features
    rows_per = lambda cap: min(cap, max(1.0, d.velocity * B))   # noqa: E731
    examples = d.velocity * (B if design.training == "continuous" else W)
    job0 = m.job_time(design.training).seconds(examples)
    hist = math.ceil(W / B) + math.floor(job0 / B) + 1
    hist_rows = hist * rows_per(max(2000, HISTORY_ROWS // max(hist, 1)))
    feed = design.training != "static" or bool(d.faults)
    run = math.floor(H / B) if feed else 0
    run_rows = run * rows_per(batch_rows(horizon_s, B))
    in_window = math.ceil((W + d.label_delay) / B) + 2
    if design.training == "continuous":
        jobs = run
    elif design.training == "periodic":
        jobs = math.floor(H / max(design.retrain_every_s or H, B))
    elif design.training == "triggered":
        jobs = math.floor(H / max(design.trigger_min_interval_s, B))   # at most one per batch
    else:
        jobs = 0
    keys = design.table_keys(sc.traffic.cardinality) or 0
    bp_s = m.fill_vcpu_s(keys) / sc.serving.batch_workers
    fills = (1 + (min(jobs, H / bp_s if bp_s > 0 else jobs) if design.training != "static" else 0)) if keys else 0
    peak = sc.traffic.peak_rate_per_s
    from .traffic import integrated_rate
    rec = H if recorded_s is None else recorded_s
    requests = integrated_rate(0.0, H, sc.traffic.rate, sc.traffic.diurnal_amplitude) * rec / H
    events = _report_ticks(H) + run + 2 * jobs + fills
    # only events inside the recorded slices split a data-plane window (plus each slice's ends)
    ev_in = events * rec / H + (200 if rec < H else 0)
    windows = min(ev_in + rec / max(CHUNK_REQUESTS / peak, 1e-3), ev_in + requests)
    rows = hist_rows + run_rows
    terms = {
        "data batches": (hist + run) * S_PER_BATCH + rows * ((f + 3) * S_PER_ROW_VALUE + f * f * S_PER_GRAM_FLOP),
        "training fits": jobs * min(in_window, hist + run) * (S_PER_FIT_STAT + f * f * S_PER_GRAM_FLOP),
        # rows are computed as requests read them (serve.Table): at most one new row per request
        "table fills": min(fills * keys, requests) * f * S_PER_KEY_FILL,
        "data-plane windows": windows * S_PER_WINDOW,
    }
    stats_held = min(hist + run, max(hist, in_window))
    nbytes = stats_held * (8.0 * (f * f + 2 * f) + BYTES_PER_STAT) + 4 * MAX_ROWS * (f + 4) * 8.0
    return {"batches": hist + run, "rows": rows, "jobs": jobs, "fit_stats": jobs * in_window,
            "fills": fills, "windows": math.ceil(windows), "seconds": sum(terms.values()), "bytes": nbytes,
            "terms": terms}


def _fix_for(term: str, sc: Scenario, design: Design, horizon_s: float, over: float) -> str:
    """The `--set` (or flag) most likely to bring a term within budget; `over` is how many
    times over budget the run is (the suggested change is at least that large)."""
    from scenarios.units import format_duration as fd
    k = next(x for x in (2, 5, 10, 20, 50, 100, 1e3, 1e4, 1e5, 1e6, 1e9, 1e12) if x >= 1.2 * over)
    B, W = sc.data.batch_interval, sc.model.training_window
    shorter = f"a shorter horizon (--horizon {fd(max(60.0, horizon_s / k))})"
    if term == "data batches":
        if W > horizon_s:
            return (f"--set data.batch_interval={fd(B * k)} (fewer, larger batches) or "
                    f"--set model.training_window={fd(max(B, W / k))}")
        return f"--set data.batch_interval={fd(B * k)} (fewer, larger batches) or {shorter}"
    if term == "training fits":
        if design.training == "periodic":
            return f"--set architecture.retrain_every={fd((design.retrain_every_s or B) * k)} or {shorter}"
        return f"--set data.batch_interval={fd(B * k)} (continuous training fits once per batch) or {shorter}"
    if term == "table fills":
        return "a smaller table (--set architecture.cache_top_k=...) or less frequent retraining"
    return shorter


def check_size(sc: Scenario, design: Design, horizon_s: float, recorded_s: float | None = None) -> None:
    """Refuse absurd runs up front with a one-line reason: the numbers and what would fix it."""
    from scenarios.units import format_bytes, format_count, format_duration
    from .traffic import integrated_rate
    n = integrated_rate(0.0, horizon_s, sc.traffic.rate, sc.traffic.diurnal_amplitude)
    n *= (recorded_s if recorded_s is not None else horizon_s) / horizon_s
    if n > MAX_REQUESTS:
        raise TooLarge(f"the run would simulate about {n:.2g} requests (~{n / 2e6 / 3600:,.0f} h at 2M "
                       f"requests/s); shorten the horizon or lower traffic.rate (limit {MAX_REQUESTS:.0g})")
    c = control_cost(sc, design, horizon_s, recorded_s)
    if c["bytes"] > MAX_CONTROL_BYTES:
        raise TooLarge(f"the run would hold about {format_bytes(c['bytes'])} of training-data summaries "
                       f"({format_count(c['batches'])} data batches of {sc.data.features} features; limit "
                       f"{format_bytes(MAX_CONTROL_BYTES)}); fix: "
                       f"{_fix_for('data batches', sc, design, horizon_s, c['bytes'] / MAX_CONTROL_BYTES)}")
    if c["seconds"] > CONTROL_BUDGET_S:
        term = max(c["terms"], key=c["terms"].get)
        counts = (f"{format_count(c['batches'])} data batches ({format_count(c['rows'])} example rows), "
                  f"{format_count(c['jobs'])} training fits, {format_count(c['fills'])} table fills, "
                  f"{format_count(c['windows'])} data-plane windows")
        raise TooLarge(f"the run's control plane would take about {format_duration(c['seconds'])} "
                       f"(budget {format_duration(CONTROL_BUDGET_S)}), mostly {term}: {counts}; "
                       f"fix: {_fix_for(term, sc, design, horizon_s, c['seconds'] / CONTROL_BUDGET_S)}")


def _score_validation(val: dict, b: Batch, flagged: bool) -> None:
    """False alarms on clean batches and detections per injected fault kind (a batch carrying
    a fault kind counts as detected when it is quarantined)."""
    if not b.faults:
        val["clean_batches"] += 1
        val["false_alarms"] += flagged
        val["false_alarm_rate"] = val["false_alarms"] / val["clean_batches"]
        return
    for kind in sorted({f.kind for f in b.faults}):
        d = val["detection"].setdefault(kind, {"batches": 0, "detected": 0, "rate": None})
        d["batches"] += 1
        d["detected"] += flagged
        d["rate"] = d["detected"] / d["batches"]


@dataclass
class Result:
    """What a run produced: the metrics of CONTRACT.md, the per-window time series and the
    histograms behind them (for plots)."""
    metrics: dict
    timeseries: list
    latency_hist: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    wait_hist: object = None             # LogHistogram of queue waits (model path)
    bucket_wait_hists: list = field(default_factory=list)   # per report window, if kept

    def to_json(self) -> dict:
        return self.metrics

    def timeseries_frame(self):
        import pandas as pd
        return pd.DataFrame(self.timeseries)


class Simulation:
    """One run of one design on one scenario. Use `simulate()`."""

    def __init__(self, sc: Scenario, design: Design, seed: int, horizon_s: float, progress=None,
                 report_every_s: float | None = None, keep_bucket_hists: bool = False,
                 planning_horizon_s: float | None = None, slices: SlicePlan | None = None,
                 threads: int = 1):
        self.sc, self.design, self.seed, self.horizon = sc, design, seed, horizon_s
        # one-off jobs (the initial model and table) are reported apart from recurring costs;
        # the total over the deployment's lifetime adds both
        self.lifetime_s = planning_horizon_s or sc.horizon
        self.one_off = {"initial_training": 0.0, "initial_table_fill": 0.0}
        self.slices = slices
        self.report_every_s = report_every_s or report_interval_s(horizon_s)
        self.keep_bucket_hists = keep_bucket_hists
        self.bucket_hists: list = []
        ss = np.random.SeedSequence(seed)
        world, arr, keys, svc, lab, data, split = (np.random.default_rng(s) for s in ss.spawn(7))
        # model.estimator: a scikit-learn classifier in place of the built-in model (its own
        # child stream, spawned after the others so that built-in runs draw exactly as before)
        self.learner = None
        if sc.model.estimator is not None:
            from .estimator import Learner
            self.learner = Learner(sc, design.training, ss.spawn(1)[0])
        self.keep_rows = self.learner.keep_rows if self.learner is not None else 0
        self.rng_split = split
        d = sc.data
        self.features = KeyFeatures(world, d.features)
        self.concept = Concept(world, d.features, d.concept_half_life, d.label_noise)
        self.shift_times = np.empty(0)
        if d.shifts is not None:
            # their own stream, so a scenario without shifts draws exactly what it always did
            from scenarios.shifts import shift_times_s
            rng_shift = np.random.default_rng(np.random.SeedSequence([seed, 0x5817]))
            self.shift_times = shift_times_s(d.shifts, horizon_s, rng_shift)
            self.concept.set_shifts(self.shift_times, rng_shift, d.shifts.magnitude)
        self.monitor = None
        if sc.monitoring is not None:
            from .monitor import Monitor
            mo = sc.monitoring
            self.monitor = Monitor(mo.window, d.batch_interval, mo.alert_below, mo.alert_drop)
        self.serving_val = None
        if any(f.kind == "serving_skew" for f in d.faults):
            from .skew import ServingValidator
            self.serving_val = ServingValidator(d.faults, self.features, zipf_for(sc), d.features,
                                                np.random.default_rng(np.random.SeedSequence([seed, 0x5E5E])))
        self.job_running = False
        self.trigger_count = 0
        self.last_trigger_s = -math.inf
        self.examples_since = 0.0
        self.source = DataSource(sc, self.concept, data)
        self.on_batch = None     # callable(Batch) for each data batch the run ingests (simulate --log)
        self.batches_ahead: BatchesAhead | None = None
        # rows materialised per arriving batch: all of them up to MAX_ROWS, fewer when a long
        # lifetime brings thousands of batches (each row is weighted to stand for the rest)
        self.rows_per_batch = batch_rows(horizon_s, d.batch_interval)
        self.keys_in_table = design.table_keys(sc.traffic.cardinality)
        self.dp = DataPlane(sc, horizon_s, self.features, self.concept, zipf_for(sc), design.replicas,
                            self.keys_in_table, (arr, keys, svc, lab), threads=threads)
        if slices is not None:
            self.dp.set_slices(slices.pieces)
        self.autoscaler = None
        if design.autoscale is not None and design.replicas:
            from .autoscale import Autoscaler   # serving.autoscale: the pool follows the load
            self.autoscaler = Autoscaler(sc, design.autoscale, self.dp, horizon_s)
            self.dp.scaler = self.autoscaler
        self.failures = self.rollouts = None
        if sc.serving.rollout is not None and design.replicas and design.autoscale is None:
            from .rollout import Rollouts   # serving.rollout: each deployment reaches the replicas
            self.rollouts = Rollouts(sc, self.dp, design.replicas)
        if sc.serving.failures is not None and design.replicas and design.autoscale is None:
            from .failures import ReplicaFailures   # serving.failures: replicas fail and come back
            self.failures = ReplicaFailures(sc, self.dp, design.replicas, np.random.default_rng(ss.spawn(1)[0]),
                                            horizon_s)
        self.advance = self.dp.advance
        self.progress = progress
        self.val = {"batches": 0, "anomalies": 0, "quarantined": 0, "by_kind": {},
                    "false_alarm_rate_stated": validation.FALSE_ALARM_RATE,
                    "clean_batches": 0, "false_alarms": 0, "false_alarm_rate": None,
                    "detection": {}}
        self.train = {"runs": 0, "deployed": 0, "rejected_by_gate": 0}
        self.cost = {"serving": 0.0, "training": 0.0, "batch_prediction": 0.0, "storage": 0.0}
        self.events: list = []
        self.timeseries: list = []
        self.version = 0
        self.store: list[Stats] = []
        self.holdout = None
        self.vcpu_s = sc.costs.vcpu_hour / 3600.0

    # ------------------------------------------------------------------ setup
    def _bootstrap(self) -> None:
        """History before t = 0: a window of batches, the reference schema, the initial model
        and (for table serving) the initial table."""
        sc, d = self.sc, self.sc.data
        job0 = self._initial_job_s()
        B = d.batch_interval
        # batches that arrived by −job0 trained the initial model; those arriving while it
        # trained, up to t = 0, are stored for the first retrain (no gap in the data)
        n_hist = max(1, math.ceil(sc.model.training_window / B))
        window = [(-job0 - i * B, B) for i in reversed(range(n_hist))]
        gap, prev = [], -job0
        for mB in sorted((-m * B for m in range(int(job0 // B) + 1) if -m * B > -job0 + 1e-9)):
            gap.append((mB, mB - prev))
            prev = mB
        rows = max(2000, HISTORY_ROWS // (len(window) + len(gap)))
        ref_cols: list = []
        for j, (arrived, span) in enumerate(window + gap):
            if j == len(window):
                # the initial model is fitted before the data that arrived while it trained
                end0 = -job0 - d.label_delay
                m = self._fit([st for st in self._window(-job0) if st.data_end_s <= end0 + 1e-9], 1, 0.0)
            b = self.source.batch(j - len(window) - len(gap), arrived, span_s=span,
                                  max_rows=rows if j else MAX_ROWS)
            if not b.faults and sum(len(c["y"]) for c in ref_cols) < REFERENCE_ROWS:
                ref_cols.append(b.columns)   # the history (before any fault) is the reference
            self._accept_or_quarantine(b, count=False)
        # schema and distribution from up to REFERENCE_ROWS rows of history: a larger reference
        # makes the sample-size-aware thresholds tighter (simulator/thresholds.py)
        ref_cols = ref_cols or [b.columns]
        self.reference = validation.infer_reference(
            {c: np.concatenate([cols[c] for cols in ref_cols]) for c in ref_cols[0]})
        if not gap:
            m = self._fit(self._window(-job0), 1, 0.0)
        self.version = 1
        self.one_off["initial_training"] = self._train_cost(m.examples)
        self.train["runs"] += 1
        self.train["deployed"] += 1
        self._deploy(m, at_s=0.0, count=False)
        if self.keys_in_table:
            self._fill_table(m, 0.0, initial=True)
        self.events.append({"t_s": 0.0, "event": "deploy", "version": 1})

    def _initial_job_s(self) -> float:
        """Duration of the job that trained the initial model: the scenario's train_time law
        over a full window of data (one batch for continuous training)."""
        sc = self.sc
        examples = sc.data.velocity * (sc.data.batch_interval if self.design.training == "continuous"
                                       else sc.model.training_window)
        return sc.model.job_time(self.design.training).seconds(examples, sc.model.trainers)

    def _train_cost(self, examples: float) -> float:
        """USD of a training job over `examples`: every trainer is billed for the whole job."""
        m = self.sc.model
        return m.train_time.seconds(examples, m.trainers) * m.trainers * self.vcpu_s

    def _fit(self, window: list[Stats], version: int, trained_at_s: float):
        """Train a candidate: the built-in least-squares fit, or the scenario's estimator
        (simulator.estimator: fit on the window, or partial_fit of the live model)."""
        if self.learner is None:
            return fit(window, version, trained_at_s)
        return self.learner.fit(window, version, trained_at_s, getattr(self, "live", None))

    def _window(self, now_s: float) -> list[Stats]:
        """The training window at now_s: data of the last training_window before the labels
        now in (now − label delay), a straddling batch counted by its share (Stats.since), so
        that a job's examples are velocity × window, as the advisor counts them."""
        lo = now_s - self.sc.data.label_delay - self.sc.model.training_window
        return [s.since(lo) for s in self.store if s.data_end_s > lo + 1e-9]

    def _accept_or_quarantine(self, b: Batch, count: bool = True) -> bool:
        # history before t = 0 is the reference itself (it predates every fault): not re-validated
        anomalies = validation.validate(b.columns, self.reference) if count else []
        b.anomalies = list(anomalies)
        if count:
            self.val["batches"] += 1
            _score_validation(self.val, b, bool(anomalies))
        if anomalies:
            if count:
                self.val["anomalies"] += len(anomalies)
                self.val["quarantined"] += 1
                self.dp.bucket.anomalies += len(anomalies)
                for a in anomalies:
                    k = validation.anomaly_kind(a)
                    self.val["by_kind"][k] = self.val["by_kind"].get(k, 0) + 1
                self.events.append({"t_s": b.arrived_s, "event": "quarantine", "anomalies": anomalies})
            return False
        holdout = self.rng_split.random(b.rows) < HOLDOUT_SHARE
        tr_rows = np.nonzero(~holdout)[0]
        self.store.append(Stats.of(b, tr_rows, self.sc.data.features, self.keep_rows))
        ho = np.nonzero(holdout)[0]
        self.holdout = (np.column_stack([b.columns[c][ho] for c in feature_names(self.sc.data.features)]),
                        b.columns["y"][ho])
        # the trainer never reads data older than one window: drop it (memory stays flat)
        keep_after = b.arrived_s - self.sc.data.label_delay - self.sc.model.training_window
        self.store = [s for s in self.store if s.data_end_s > keep_after - self.sc.data.batch_interval]
        return True

    # ------------------------------------------------------------- state changes
    def _deploy(self, m: Model, at_s: float, count: bool = True) -> None:
        self.advance(at_s)
        self.live = m
        self.dp.set_model(m)
        if self.monitor is not None and self.design.training != "continuous":
            self.monitor.reset()   # a continuously updated model is watched over one sliding window
        if count:
            self.dp.bucket.deployments += 1
            if self.rollouts is not None:
                self.env.process(self.rollouts.run(self.env))

    def _fill_table(self, m: Model, at_s: float, initial: bool = False) -> None:
        self.advance(at_s)
        self.dp.set_table(Table(self.keys_in_table, m, self.features, at_s))   # rows computed as read
        usd = self.sc.model.fill_vcpu_s(self.keys_in_table) * self.vcpu_s
        if initial:
            self.one_off["initial_table_fill"] = usd
        else:
            self.cost["batch_prediction"] += usd

    # ------------------------------------------------------------- SimPy processes
    def _feed(self, env):
        sc = self.sc
        next_retrain = self.design.retrain_every_s or math.inf
        for k, t in feed_times(sc.data.batch_interval, self.horizon):
            yield env.timeout(t - env.now)
            b = self._batch(k, env.now)
            if self.on_batch is not None:
                self.on_batch(b)
            ok = self._accept_or_quarantine(b)
            mode = self.design.training
            if mode == "continuous" and ok:
                env.process(self._train_job(env, sc.model.job_time(mode).seconds(b.nominal_rows, sc.model.trainers),
                                            b.nominal_rows))
            elif mode == "periodic" and env.now >= next_retrain - 1e-9:
                while next_retrain <= env.now + 1e-9:
                    next_retrain += self.design.retrain_every_s
                window = self._window(env.now)
                nominal = sum(s.nominal for s in window)
                env.process(self._train_job(env, sc.model.train_time.seconds(nominal, sc.model.trainers), nominal))
            if self.serving_val is not None:
                self._check_serving_inputs(env.now)
            alerted = self._monitor_batch(b, ok) if self.monitor is not None else False
            if mode == "triggered" and self._triggered(env.now, b, ok, alerted):
                window = self._window(env.now)
                nominal = sum(s.nominal for s in window)
                env.process(self._train_job(env, sc.model.train_time.seconds(nominal, sc.model.trainers), nominal))

    def _batch(self, k: int, now: float) -> Batch:
        """Batch k of the feed, arriving now (drawn ahead on the drawing thread, if it is)."""
        if self.batches_ahead is not None:
            return self.batches_ahead.take(k, now)
        return self.source.batch(k, now, max_rows=self.rows_per_batch)

    def _log_batches(self, env):
        """The batches _feed would draw, for the batch hook alone: a static model without
        validation or monitoring never reads arriving data, so the run skips drawing it. The
        data stream is read by nothing else after the bootstrap, so the metrics are unchanged."""
        for k, t in feed_times(self.sc.data.batch_interval, self.horizon):
            yield env.timeout(t - env.now)
            self.on_batch(self._batch(k, env.now))

    def _monitor_batch(self, b: Batch, ok: bool) -> bool:
        """Score the live model on a validated batch's labelled rows; True when an alert fires."""
        if not ok:
            return False
        from .monitor import expected_accuracy, score
        x = np.column_stack([b.columns[c] for c in feature_names(self.sc.data.features)])
        mid = (b.data_start_s + b.data_end_s) / 2
        exp = expected_accuracy(self.live, self.concept.w(mid), self.sc.data.label_noise)
        fired = self.monitor.observe(b.arrived_s, score(self.live, x, b.columns["y"]), b.rows, exp)
        if fired:
            mon, t = self.monitor, b.arrived_s
            past = self.shift_times[self.shift_times <= t]
            start = self.live.data_end_s - self.sc.model.training_window
            true = bool(mon.expected < mon.level())
            cause = "shift" if (past.size and start < past[-1]) else "drift"
            mon.alerts.append({"t_s": t, "true": true, "cause": cause, "estimate": mon.estimate,
                               "expected": mon.expected, "version": self.live.version})
            self.events.append({"t_s": t, "event": "alert", "true": true, "cause": cause,
                                "estimate": mon.estimate, "expected": mon.expected})
        return fired

    def _triggered(self, now: float, b: Batch, ok: bool, alerted: bool) -> bool:
        """Whether the design's trigger starts a retrain now (at most one job at a time, and
        at least trigger_min_interval_s between starts)."""
        d = self.design
        if ok:
            self.examples_since += b.nominal_rows
        if self.job_running or now - self.last_trigger_s < d.trigger_min_interval_s - 1e-9:
            return False
        if d.trigger_on == "alert":
            # fire on the alert, and again after min_interval while it stays unresolved
            fire = self.monitor is not None and (alerted or not self.monitor.armed)
        elif d.trigger_on == "new_examples":
            fire = self.examples_since >= d.trigger_examples - 1e-9
        else:   # input_drift: the batch's feature distribution moved (validation's comparators)
            fire = any(a.startswith("COMPARATOR_") for a in b.anomalies)
        if fire:
            self.last_trigger_s = now
            self.examples_since = 0.0
            self.trigger_count += 1
        return fire

    def _check_serving_inputs(self, now: float) -> None:
        """Serving-input validation (simulator.skew): an anomalous sample while a skew is in
        force detects it, and the serving path is fixed at once."""
        sv = self.serving_val
        found = sv.check(now - self.sc.data.batch_interval, now, self.reference)
        if found and sv.active is not None:
            self.advance(now)
            self.dp.set_skew(None)
            sv.detected.append({"at_s": float(sv.active.at), "detected_s": now, "delay_s": now - float(sv.active.at),
                                "anomalies": found})
            self.events.append({"t_s": now, "event": "skew_detected", "anomalies": found})
            sv.active = None

    def _skew_events(self, env):
        for f in sorted(self.serving_val.faults, key=lambda f: f.at):
            if f.at >= self.horizon:
                return
            yield env.timeout(float(f.at) - env.now)
            self.advance(float(f.at))
            self.serving_val.active = f
            self.dp.set_skew(self.serving_val.skew_of(f))
            self.events.append({"t_s": float(f.at), "event": "serving_skew", "feature": int(f.feature)})

    def _shift_events(self, env):
        for s in self.shift_times:
            yield env.timeout(float(s) - env.now)
            self.advance(float(s))     # no data-plane window straddles a shift
            self.events.append({"t_s": float(s), "event": "shift"})

    def _train_job(self, env, job_s: float, examples: float):
        self.job_running = True
        try:
            yield from self._train_job_body(env, job_s, examples)
        finally:
            self.job_running = False

    def _train_job_body(self, env, job_s: float, examples: float):
        with self.trainer.request() as req:
            yield req
            window = self._window(env.now)
            if not window:
                return
            self.version += 1
            m = self._fit(window, self.version, env.now + job_s)
            holdout = self.holdout
            yield env.timeout(job_s)
            if env.now > self.horizon:
                return   # still running when the run ends: neither counted nor charged
            self.train["runs"] += 1
            self.cost["training"] += job_s * self.sc.model.trainers * self.vcpu_s   # every trainer, the whole job
            g = gate(m, self.live, *holdout) if holdout is not None else None
            if g is None or g.deploy:
                self._deploy(m, env.now)
                self.train["deployed"] += 1
                self.events.append({"t_s": env.now, "event": "deploy", "version": m.version})
                if self.keys_in_table and self.refresh_wanted is not None:
                    if not self.refresh_wanted.triggered:
                        self.refresh_wanted.succeed()
            else:
                self.train["rejected_by_gate"] += 1
                self.events.append({"t_s": env.now, "event": "gate_reject", "version": m.version,
                                    "accuracy_new": g.accuracy_new, "accuracy_live": g.accuracy_live})

    def _refresher(self, env):
        bp_s = self.sc.model.fill_vcpu_s(self.keys_in_table) / self.sc.serving.batch_workers
        while True:
            yield self.refresh_wanted
            self.refresh_wanted = env.event()
            m = self.live            # the batch job predicts with the model live when it starts
            yield env.timeout(bp_s)
            if env.now > self.horizon:
                return
            self._fill_table(m, env.now)
            self.events.append({"t_s": env.now, "event": "table_refresh", "version": m.version})

    def _ticker(self, env, every_s: float):
        k = 1
        while True:
            t = min(k * every_s, self.horizon)
            yield env.timeout(t - env.now)
            self._close_bucket(t)
            if self.progress is not None:
                self.progress(t / self.horizon)
            if t >= self.horizon:
                return
            k += 1

    def _close_bucket(self, t: float) -> None:
        self.advance(t)
        b = self.dp.bucket
        self.timeseries.append({
            "t_start_s": b.start_s, "t_end_s": t, "requests": b.requests,
            "latency_p99_ms": b.hist.quantile(0.99) * 1e3 if b.requests else math.nan,
            "accuracy": b.correct / b.requests if b.requests else math.nan,
            "hit_ratio": b.hits / b.requests if b.requests else math.nan,
            "model_version": self.live.version,
            "model_age_mean_s": b.age_sum / b.requests if b.requests else math.nan,
            "anomalies": b.anomalies, "deployments": b.deployments,
            "model_path_requests": b.wait.n,
            "queue_wait_mean_ms": b.wait.mean * 1e3 if b.wait.n else math.nan,
            "queue_wait_p99_ms": b.wait.quantile(0.99) * 1e3 if b.wait.n else math.nan,
            "waited_fraction": b.waited / b.wait.n if b.wait.n else math.nan,
            "queue_length_seen_mean": b.queue_seen / b.wait.n if b.wait.n else math.nan,
            "served_expected_accuracy": b.served_expected / b.requests if b.requests else math.nan,
            "fresh_expected_accuracy": b.fresh_expected / b.requests if b.requests else math.nan})
        if self.failures is not None:
            self.timeseries[-1].update(replicas_up_mean=self.failures.mean_up(b.start_s, t))
        if self.autoscaler is not None:
            self.timeseries[-1].update(replicas_mean=self.autoscaler.mean_allocated(b.start_s, t),
                                       offered_load_mean=b.work_s / (t - b.start_s) if t > b.start_s else math.nan)
        if self.monitor is not None:
            est = self.monitor.estimate
            self.timeseries[-1]["monitor_accuracy"] = est if est is not None else math.nan
        if self.keep_bucket_hists:
            self.bucket_hists.append(b.wait)
        self.dp.bucket = _Bucket(t)

    # ---------------------------------------------------------------------- run
    def run(self) -> Result:
        try:
            return self._run()
        finally:
            self.dp.close()      # an interrupted run leaves nothing drawing ahead
            if self.batches_ahead is not None:
                self.batches_ahead.close()

    def _run(self) -> Result:
        wall0 = time.perf_counter()
        self.dp.start_drawing()
        self._bootstrap()
        env = simpy.Environment()
        self.env = env
        self.trainer = simpy.Resource(env, capacity=1)
        self.refresh_wanted = None
        feed = None
        if self.design.training != "static":
            feed = self._feed
        elif self.sc.data.faults or self.monitor is not None:
            feed = self._feed   # static models still validate (and monitor) arriving data
        elif self.on_batch is not None:
            feed = self._log_batches
        if feed is not None:
            if self.dp.threads > 1:
                # the feed's batches are drawn on the drawing thread, beside the requests,
                # while memory allows (as the chunks drawn ahead are)
                self.batches_ahead = BatchesAhead(self.source, self.sc.data.batch_interval, self.horizon,
                                                  self.rows_per_batch, draw_thread().submit, self.dp.room_ahead)
            env.process(feed(env))
        if self.shift_times.size:
            env.process(self._shift_events(env))
        if self.serving_val is not None:
            env.process(self._skew_events(env))
        if self.keys_in_table and self.design.training != "static":
            self.refresh_wanted = env.event()
            env.process(self._refresher(env))
        env.process(self._ticker(env, self.report_every_s))
        if self.failures is not None:
            env.process(self.failures.run(env))
        env.run(until=self.horizon + 1e-6)
        self.advance(self.horizon)
        res = Result(self._metrics(time.perf_counter() - wall0), self.timeseries,
                     {"all": self.dp.lat, **self.dp.lat_path}, self.events)
        res.wait_hist, res.bucket_wait_hists = self.dp.wait, self.bucket_hists
        if self.learner is not None:   # the model that answered: the scenario's own estimator
            est = self.sc.model.estimator
            res.metrics["estimator"] = {"class": est.class_, "params": dict(est.params)}
        return res

    def _metrics(self, wall_s: float) -> dict:
        sc, d, H, dp = self.sc, self.design, self.horizon, self.dp
        n = max(dp.requests, 1)
        model_n = dp.lat_path["model"].n
        # rows of the table it built, each stored as prediction_bytes (key, value, metadata)
        table_b = (dp.table.keys if dp.table is not None else 0) * sc.model.prediction_bytes
        # training data kept: one window back from the newest validated data
        newest = max((s.data_end_s for s in self.store), default=0.0)
        lo = newest - sc.model.training_window
        data_nominal = sum(s.since(lo).nominal for s in self.store if s.data_end_s > lo + 1e-9)
        data_b = data_nominal * example_bytes(sc.data.features)
        mb = self.live.nbytes          # the model it deployed, as stored
        storage_month = (table_b / 1e9 * sc.costs.table_storage_per_gb_month
                         + (data_b + mb) / 1e9 * sc.costs.data_storage_per_gb_month)
        self.cost["storage"] = storage_month * H / MONTH_S
        self.cost["serving"] = d.replicas * H * self.vcpu_s if self.autoscaler is None \
            else self.autoscaler.replica_seconds(H) * self.vcpu_s
        if self.rollouts is not None:
            self.cost["serving"] += self.rollouts.extra_replica_s * self.vcpu_s
        total = sum(self.cost.values())
        cost = dict(self.cost, total=total)
        to_month = MONTH_S / H
        recurring = {"serving": self.cost["serving"] * to_month, "retraining": self.cost["training"] * to_month,
                     "table_refreshes": self.cost["batch_prediction"] * to_month, "storage": storage_month}
        recurring["total"] = sum(recurring.values())
        one_off = dict(self.one_off, total=sum(self.one_off.values()))
        cost["one_off_usd"] = one_off
        cost["recurring_usd_per_month"] = recurring
        cost["total_usd_over_horizon"] = one_off["total"] + recurring["total"] * self.lifetime_s / MONTH_S
        sl = self.slices
        sampling = {"mode": "contiguous", "lifetime_s": self.lifetime_s, "simulated_span_s": H,
                    "recorded_s": H, "slices": None, "slice_s": None, "warmup_s": None}
        if sl is not None:
            sampling.update(mode="slices", recorded_s=sl.recorded_s, slices=sl.slices, slice_s=sl.slice_s,
                            warmup_s=sl.warmup_s)
        sampling["requests_over_span_estimate"] = dp.requests * H / sampling["recorded_s"]
        fresh = dp.fresh_expected / n
        served_exp = dp.served_expected / n
        none = dp.requests == 0
        per_req = (lambda x: None) if none else (lambda x: x)   # noqa: E731  undefined without requests
        notes = []
        if none:
            notes.append(f"no requests arrived in the {H:g} s simulated (traffic.rate x horizon is about "
                         f"{sc.traffic.rate * H:.2g}): latency, hit ratio, model age and accuracy are "
                         "undefined (null)")
        elif dp.requests >= 1000 and dp.served_correct / n < 0.5:   # not a small-sample fluke
            notes.append(f"served accuracy {dp.served_correct / n:.1%} is below chance (50%): the model "
                         "is too stale or was trained on too little data for this drift")
        if not none and dp.requests >= 1000 and fresh - served_exp < 0:
            # not clamped: a negative loss is a real condition, and it says something
            notes.append(f"accuracy lost to staleness is negative ({fresh - served_exp:.2%}): a model trained on "
                         f"this {sc.model.training_window / 86400:g}-day window predicts the present no better "
                         "than an older one, because the window spans too much drift; shorten "
                         "model.training_window")
        lat = {k: None for k in ("mean", "p50", "p95", "p99", "p999", "max")} if none else dp.lat.summary_ms()
        waits = ("mean", "p50", "p95", "p99", "max")
        return {
            "scenario": sc.name, "seed": self.seed, "horizon_s": H,
            "architecture": d.to_json(),
            # the goals, so a figure drawn from this file alone can show them
            "slo": {"latency_p99_ms": sc.slo.latency_p99 * 1e3, "max_accuracy_loss": sc.slo.max_accuracy_loss},
            "requests": dp.requests,
            "latency_ms": lat,
            "latency_ms_by_path": {k: h.summary_ms() for k, h in dp.lat_path.items() if h.n},
            "queue_wait_ms": dp.wait.summary_ms(waits) if model_n else
            {k: per_req(0.0) for k in waits},
            "waited_fraction": dp.waited / model_n if model_n else per_req(0.0),
            "queue_length_seen_mean": dp.queue_seen / model_n if model_n else per_req(0.0),
            "slo_violation_fraction": per_req(dp.slo_viol / n),
            "cache_hit_ratio": per_req(dp.hits / n),
            "fallback_requests": dp.lat_path["fallback"].n,
            "storage": {"table_bytes": table_b, "data_bytes": data_b, "model_bytes": mb,
                        "usd_per_month": storage_month},
            "cost_usd": cost,
            "cost_usd_per_month": recurring["total"],
            "sampling": sampling,
            "staleness": {"model_age_s": {k: None for k in ("mean", "p95", "max")} if none
                          else dp.model_age.summary_s(),
                          "table_age_s": dp.table_age.summary_s() if dp.table_age.n else None},
            "accuracy": {"served": per_req(dp.served_correct / n), "fresh_model": per_req(fresh),
                         "lost_to_staleness": per_req(fresh - served_exp), "served_expected": per_req(served_exp)},
            "notes": notes,
            **({"autoscale": self.autoscaler.metrics(H)} if self.autoscaler is not None else {}),
            **({"failures": self.failures.metrics(H)} if self.failures is not None else {}),
            **({"rollout": self.rollouts.metrics()} if self.rollouts is not None else {}),
            **({"batching": {"batches": dp.batches, "mean_batch": model_n / dp.batches if dp.batches else None,
                             "busy_replica_s": dp.batch_busy_s,
                             "throughput_per_busy_replica_per_s": model_n / dp.batch_busy_s if dp.batch_busy_s
                             else None}} if sc.serving.batching is not None else {}),
            "validation": self.val,
            "training": self.train,
            **self._issue17_metrics(notes),
            "wall_s": wall_s,
        }

    def _issue17_metrics(self, notes: list) -> dict:
        """Keys (and notes) present only when the scenario has shifts, monitoring, a trigger or
        a serving skew (so runs without them print exactly what they always did)."""
        from scenarios.units import format_duration
        out = {}
        sh = self.sc.data.shifts
        if sh is not None:
            out["shifts"] = {"times_s": [float(x) for x in self.shift_times], "magnitude": sh.magnitude,
                             "every_s": sh.every}
        if self.monitor is not None:
            from .monitor import summary
            mo = out["monitoring"] = summary(self.monitor, self.shift_times, self.horizon)
            line = (f"monitoring: {mo['alerts']} alerts ({mo['true_alerts']} true, {mo['false_alerts']} false) "
                    f"in {mo['checks']} checks")
            if mo["shifts"]:
                dl = mo["detection_delay_s"]["mean"]
                line += (f"; {mo['shifts_detected']} of {mo['shifts']} sudden shifts detected"
                         + (f", after {format_duration(dl)} on average" if dl is not None else ""))
            notes.append(line)
        if self.design.training == "triggered":
            out["training"] = dict(self.train, triggers=self.trigger_count)
        if self.serving_val is not None:
            sv = out["serving_validation"] = self.serving_val.summary()
            for det in sv["detections"]:
                notes.append(f"training–serving skew from {format_duration(det['at_s'])} caught by serving-input "
                             f"validation after {format_duration(det['delay_s'])} "
                             f"({', '.join(sorted(set(a.split(':')[0] for a in det['anomalies'])))})")
            if sv["skews_detected"] < sv["skews"]:
                notes.append(f"{sv['skews'] - sv['skews_detected']} training–serving skew(s) not caught by the end")
        return out


LONG_HORIZON_S = 60 * 86400.0


def report_interval_s(horizon_s: float) -> float:
    """Time-series window: one hour, 1/24 of horizons under a day, one day beyond 60 days
    (each window is a data-plane step, so a year of hourly windows would dominate the run)."""
    if horizon_s > LONG_HORIZON_S:
        return 86400.0
    return 3600.0 if horizon_s >= 86400.0 else horizon_s / 24.0


def simulate(scenario: Scenario, design: Design, seed: int | None = None, horizon_s: float | None = None,
             progress=None, report_every_s: float | None = None, keep_bucket_hists: bool = False,
             planning_horizon_s: float | None = None, request_budget: float | None = DEFAULT_REQUEST_BUDGET,
             on_requests=None, on_batches=None, threads: int | None = None) -> Result:
    """Run `design` on the scenario's synthetic traffic over [0, horizon_s) (default: the
    scenario's horizon, its lifetime). The control plane always covers the whole span; when
    the span holds more than `request_budget` requests, requests are simulated in stratified
    time slices (simulator.slices) and the metrics say so under "sampling"
    (request_budget=None simulates every request). Same scenario, design, seed, budget and
    version give identical metrics (wall_s aside).

    progress: None or a callable taking the completed fraction of simulated time.
    planning_horizon_s (default: the scenario's horizon) is the lifetime over which
    total_usd_over_horizon adds one-off and recurring costs. Raises TooLarge, before any
    work, for runs that would not finish in reasonable time or memory. on_requests: None or a
    callable(arrival_times_s, keys) called with every chunk of recorded requests
    (DataPlane.set_request_sink). on_batches: None or a callable(Batch) called with every data
    batch of the run as it arrives, before validation (history batches before t = 0 excluded).
    threads: 1, or 2 to draw the next chunk of requests' random numbers on a second thread
    while this one is served (the same results, bit for bit; a sweep's runs use 1, since its
    --jobs own the cores); None: simulator.window.threads_default()."""
    from .traffic import integrated_rate
    from .window import threads_default
    seed = scenario.seed if seed is None else seed
    horizon = scenario.horizon if horizon_s is None else horizon_s
    if design.serving == "static" and scenario.traffic.cardinality is None:
        raise ValueError("static serving needs a finite traffic.cardinality")
    expected = integrated_rate(0.0, horizon, scenario.traffic.rate, scenario.traffic.diurnal_amplitude)
    plan = None
    if request_budget is not None:
        # the slice positions have their own stream, so they never shift the traffic's draws
        plan = plan_slices(horizon, expected, request_budget,
                           np.random.default_rng(np.random.SeedSequence([seed, 0x511CE])))
    check_size(scenario, design, horizon, recorded_s=plan.recorded_s if plan else horizon)
    # one BLAS thread: the matrix products here are small, so more threads only spin;
    # parallelism belongs to the caller (sweep --jobs), one run per core
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        sim = Simulation(scenario, design, seed, horizon, progress, report_every_s=report_every_s,
                         keep_bucket_hists=keep_bucket_hists, planning_horizon_s=planning_horizon_s,
                         slices=plan, threads=threads_default() if threads is None else threads)
        sim.dp.set_request_sink(on_requests)
        sim.on_batch = on_batches
        return sim.run()
