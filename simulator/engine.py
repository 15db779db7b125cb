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
from .ingest import HISTORY_ROWS, MAX_ROWS, Batch, DataSource, feature_names
from .window import _Bucket
from .serve import Table, batch_predict
from .traffic import Concept, KeyFeatures, zipf_for
from .train import Model, Stats, fit
from .window import DataPlane
HOLDOUT_SHARE = 0.2
MAX_REQUESTS = 2e10        # ~3 h at 2M requests/s: beyond this a run is refused, not started
MAX_TABLE_KEYS = 200_000_000   # 200 MB of predictions, about a minute per fill


class TooLarge(ValueError):
    """The run would not finish in reasonable time or memory; the message says why."""


def check_size(sc: Scenario, design: Design, horizon_s: float) -> None:
    """Refuse absurd runs up front with a one-line reason."""
    from .traffic import integrated_rate
    n = integrated_rate(0.0, horizon_s, sc.traffic.rate, sc.traffic.diurnal_amplitude)
    if n > MAX_REQUESTS:
        raise TooLarge(f"the run would simulate about {n:.2g} requests (~{n / 2e6 / 3600:,.0f} h at 2M "
                       f"requests/s); shorten the horizon or lower traffic.rate (limit {MAX_REQUESTS:.0g})")
    keys = (sc.traffic.cardinality if design.serving == "static"
            else design.cache_top_k if design.serving == "hybrid" else 0) or 0
    if keys > MAX_TABLE_KEYS:
        raise TooLarge(f"the design precomputes {keys:.3g} keys; the simulator fills real tables of at most "
                       f"{MAX_TABLE_KEYS:.0g} rows (use a smaller cardinality or cache_top_k to simulate)")


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
                 planning_horizon_s: float | None = None):
        self.sc, self.design, self.seed, self.horizon = sc, design, seed, horizon_s
        # the initial model and table are built once per planning horizon: a shorter run
        # is charged its share of them, so that monthly costs do not depend on the span simulated
        plan = planning_horizon_s or sc.horizon
        self.bootstrap_share = min(1.0, horizon_s / plan)
        self.report_every_s = report_every_s or report_interval_s(horizon_s)
        self.keep_bucket_hists = keep_bucket_hists
        self.bucket_hists: list = []
        ss = np.random.SeedSequence(seed)
        world, arr, keys, svc, lab, data, split = (np.random.default_rng(s) for s in ss.spawn(7))
        self.rng_split = split
        d = sc.data
        self.features = KeyFeatures(world, d.features)
        self.concept = Concept(world, d.features, d.concept_half_life, d.label_noise)
        self.source = DataSource(sc, self.concept, data)
        self.keys_in_table = design.table_keys(sc.traffic.cardinality)
        self.dp = DataPlane(sc, horizon_s, self.features, self.concept, zipf_for(sc), design.replicas,
                            self.keys_in_table, (arr, keys, svc, lab))
        self.advance = self.dp.advance
        self.progress = progress
        self.val = {"batches": 0, "anomalies": 0, "quarantined": 0, "by_kind": {}}
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
        for j, (arrived, span) in enumerate(window + gap):
            if j == len(window):
                # the initial model is fitted before the data that arrived while it trained
                end0 = -job0 - d.label_delay
                m = fit([st for st in self._window(-job0) if st.data_end_s <= end0 + 1e-9], 1, 0.0)
            b = self.source.batch(j - len(window) - len(gap), arrived, span_s=span,
                                  max_rows=rows if j else MAX_ROWS)
            if j == 0:
                # the oldest batch is the reference schema and distribution (it predates faults)
                self.reference = validation.infer_reference(b.columns)
            self._accept_or_quarantine(b, count=False)
        if not gap:
            m = fit(self._window(-job0), 1, 0.0)
        self.version = 1
        self.cost["training"] += self._train_cost(m.examples) * self.bootstrap_share
        self.train["runs"] += 1
        self.train["deployed"] += 1
        self._deploy(m, at_s=0.0, count=False)
        if self.keys_in_table:
            self._fill_table(m, 0.0, cost_share=self.bootstrap_share)
        self.events.append({"t_s": 0.0, "event": "deploy", "version": 1})

    def _initial_job_s(self) -> float:
        """Duration of the job that trained the initial model: the scenario's train_time law
        over a full window of data (one batch for continuous training)."""
        sc = self.sc
        examples = sc.data.velocity * (sc.data.batch_interval if self.design.training == "continuous"
                                       else sc.model.training_window)
        return sc.model.train_time.seconds(examples)

    def _train_cost(self, examples: float) -> float:
        return self.sc.model.train_time.seconds(examples) * self.vcpu_s

    def _window(self, now_s: float) -> list[Stats]:
        lo = now_s - self.sc.data.label_delay - self.sc.model.training_window
        return [s for s in self.store if s.data_end_s > lo + 1e-9]

    def _accept_or_quarantine(self, b: Batch, count: bool = True) -> bool:
        # history before t = 0 is the reference itself (it predates every fault): not re-validated
        anomalies = validation.validate(b.columns, self.reference) if count else []
        if count:
            self.val["batches"] += 1
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
        self.store.append(Stats.of(b, tr_rows, self.sc.data.features))
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
        if count:
            self.dp.bucket.deployments += 1

    def _fill_table(self, m: Model, at_s: float, cost_share: float = 1.0) -> None:
        self.advance(at_s)
        preds = batch_predict(m, self.features, self.keys_in_table)
        self.dp.set_table(Table(self.keys_in_table, preds, m, at_s))
        self.cost["batch_prediction"] += (self.keys_in_table * self.sc.model.inference_time.mean_s
                                          * self.vcpu_s * cost_share)

    # ------------------------------------------------------------- SimPy processes
    def _feed(self, env):
        sc, B = self.sc, self.sc.data.batch_interval
        k = 1
        next_retrain = self.design.retrain_every_s or math.inf
        while k * B < self.horizon - 1e-9:   # the run covers [0, horizon)
            yield env.timeout(k * B - env.now)
            b = self.source.batch(k, env.now)
            ok = self._accept_or_quarantine(b)
            mode = self.design.training
            if mode == "continuous" and ok:
                env.process(self._train_job(env, sc.model.train_time.seconds(b.nominal_rows), b.nominal_rows))
            elif mode == "periodic" and env.now >= next_retrain - 1e-9:
                while next_retrain <= env.now + 1e-9:
                    next_retrain += self.design.retrain_every_s
                window = self._window(env.now)
                nominal = sum(s.nominal for s in window)
                env.process(self._train_job(env, sc.model.train_time.seconds(nominal), nominal))
            k += 1

    def _train_job(self, env, job_s: float, examples: float):
        with self.trainer.request() as req:
            yield req
            window = self._window(env.now)
            if not window:
                return
            self.version += 1
            m = fit(window, self.version, env.now + job_s)
            holdout = self.holdout
            yield env.timeout(job_s)
            if env.now > self.horizon:
                return   # still running when the run ends: neither counted nor charged
            self.train["runs"] += 1
            self.cost["training"] += job_s * self.vcpu_s
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
        bp_s = self.keys_in_table * self.sc.model.inference_time.mean_s / self.sc.serving.batch_workers
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
        if self.keep_bucket_hists:
            self.bucket_hists.append(b.wait)
        self.dp.bucket = _Bucket(t)

    # ---------------------------------------------------------------------- run
    def run(self) -> Result:
        wall0 = time.perf_counter()
        self._bootstrap()
        env = simpy.Environment()
        self.trainer = simpy.Resource(env, capacity=1)
        self.refresh_wanted = None
        if self.design.training != "static":
            env.process(self._feed(env))
        elif self.sc.data.faults:
            env.process(self._feed(env))   # static models still validate arriving data
        if self.keys_in_table and self.design.training != "static":
            self.refresh_wanted = env.event()
            env.process(self._refresher(env))
        env.process(self._ticker(env, self.report_every_s))
        env.run(until=self.horizon + 1e-6)
        self.advance(self.horizon)
        res = Result(self._metrics(time.perf_counter() - wall0), self.timeseries,
                     {"all": self.dp.lat, **self.dp.lat_path}, self.events)
        res.wait_hist, res.bucket_wait_hists = self.dp.wait, self.bucket_hists
        return res

    def _metrics(self, wall_s: float) -> dict:
        sc, d, H, dp = self.sc, self.design, self.horizon, self.dp
        n = max(dp.requests, 1)
        model_n = dp.lat_path["model"].n
        # rows of the table it built, each stored as prediction_bytes (key, value, metadata)
        table_b = (dp.table.keys if dp.table is not None else 0) * sc.model.prediction_bytes
        # training data kept: one window back from the newest validated data
        newest = max((s.data_end_s for s in self.store), default=0.0)
        data_nominal = sum(s.nominal for s in self.store
                           if s.data_end_s > newest - sc.model.training_window + 1e-9)
        data_b = data_nominal * example_bytes(sc.data.features)
        mb = self.live.nbytes          # the model it deployed, as stored
        storage_month = (table_b / 1e9 * sc.costs.table_storage_per_gb_month
                         + (data_b + mb) / 1e9 * sc.costs.data_storage_per_gb_month)
        self.cost["storage"] = storage_month * H / MONTH_S
        self.cost["serving"] = d.replicas * H * self.vcpu_s
        total = sum(self.cost.values())
        cost = dict(self.cost, total=total)
        fresh = dp.fresh_expected / n
        served_exp = dp.served_expected / n
        return {
            "scenario": sc.name, "seed": self.seed, "horizon_s": H,
            "architecture": d.to_json(),
            "requests": dp.requests,
            "latency_ms": dp.lat.summary_ms(),
            "latency_ms_by_path": {k: h.summary_ms() for k, h in dp.lat_path.items() if h.n},
            "queue_wait_ms": dp.wait.summary_ms(("mean", "p50", "p95", "p99", "max")) if model_n else
            {"mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0},
            "waited_fraction": dp.waited / model_n if model_n else 0.0,
            "queue_length_seen_mean": dp.queue_seen / model_n if model_n else 0.0,
            "slo_violation_fraction": dp.slo_viol / n,
            "cache_hit_ratio": dp.hits / n,
            "fallback_requests": dp.lat_path["fallback"].n,
            "storage": {"table_bytes": table_b, "data_bytes": data_b, "model_bytes": mb,
                        "usd_per_month": storage_month},
            "cost_usd": cost,
            "cost_usd_per_month": total * MONTH_S / H,
            "staleness": {"model_age_s": dp.model_age.summary_s(),
                          "table_age_s": dp.table_age.summary_s() if dp.table_age.n else None},
            "accuracy": {"served": dp.served_correct / n, "fresh_model": fresh,
                         "lost_to_staleness": fresh - served_exp, "served_expected": served_exp},
            "validation": self.val,
            "training": self.train,
            "wall_s": wall_s,
        }


def report_interval_s(horizon_s: float) -> float:
    """Time-series window: one hour, or 1/24 of shorter horizons."""
    return 3600.0 if horizon_s >= 86400.0 else horizon_s / 24.0


def simulate(scenario: Scenario, design: Design, seed: int | None = None, horizon_s: float | None = None,
             progress=None, report_every_s: float | None = None, keep_bucket_hists: bool = False,
             planning_horizon_s: float | None = None, on_requests=None) -> Result:
    """Run `design` on the scenario's synthetic traffic. Same scenario, design, seed and
    version give identical metrics (wall_s aside).

    progress: None or a callable taking the completed fraction of simulated time.
    planning_horizon_s (default: the scenario's horizon) is the span over which the initial
    model and table are amortised. Raises TooLarge, before any work, for runs that would not
    finish in reasonable time or memory. on_requests: None or a callable(arrival_times_s, keys)
    called with every chunk of requests served (DataPlane.set_request_sink)."""
    seed = scenario.seed if seed is None else seed
    horizon = scenario.horizon if horizon_s is None else horizon_s
    if design.serving == "static" and scenario.traffic.cardinality is None:
        raise ValueError("static serving needs a finite traffic.cardinality")
    check_size(scenario, design, horizon)
    sim = Simulation(scenario, design, seed, horizon, progress, report_every_s=report_every_s,
                     keep_bucket_hists=keep_bucket_hists, planning_horizon_s=planning_horizon_s)
    sim.dp.set_request_sink(on_requests)
    return sim.run()
