"""The engine: SimPy moves time for the control plane; requests are processed in numpy
windows between control events (the data plane), with exact FIFO queueing carried across.

Control plane (SimPy processes): data batches arriving and being validated, training jobs
taking simulated time, the evaluation gate, deployments, table refreshes by batch
prediction, and a reporting ticker. Every state change first calls `advance(now)`, so a
window of requests always sees one constant system state.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import simpy

from advisor.decide import (MONTH_S, Design, design_for, example_bytes, model_bytes,
                            train_job_s)
from scenarios.schema import Scenario

from . import validate as validation
from .evaluate import gate
from .ingest import HISTORY_ROWS, MAX_ROWS, Batch, DataSource, feature_names
from .metrics import LogHistogram
from .serve import ReplicaPool, Scorer, Table, batch_predict
from .traffic import Concept, KeyFeatures, arrivals, zipf_for
from .train import Model, Stats, fit

CHUNK_REQUESTS = 1 << 18
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


class _Bucket:
    """Exact aggregates of one reporting window."""

    def __init__(self, start_s: float):
        self.start_s = start_s
        self.hist = LogHistogram()
        self.requests = self.correct = self.hits = 0
        self.age_sum = 0.0
        self.wait = LogHistogram()
        self.waited = 0
        self.queue_seen = 0.0
        self.served_expected = self.fresh_expected = 0.0
        self.anomalies = 0
        self.deployments = 0


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
        self.rng_arr, self.rng_keys, self.rng_svc, self.rng_lab, self.rng_split = arr, keys, svc, lab, split
        d = sc.data
        self.features = KeyFeatures(world, d.features)
        self.concept = Concept(world, d.features, d.concept_half_life, d.label_noise)
        self.za = self.concept.rotate(self.features.a) / math.sqrt(2)
        self.zb = self.concept.rotate(self.features.b) / math.sqrt(2)
        self.za_norm = np.linalg.norm(self.za, axis=1)
        self.zb_norm = np.linalg.norm(self.zb, axis=1)
        self.zipf = zipf_for(sc)
        self.source = DataSource(sc, self.concept, data)
        self.pool = ReplicaPool(design.replicas) if design.replicas else None
        self.keys_in_table = (int(sc.traffic.cardinality) if design.serving == "static"
                              else int(design.cache_top_k or 0) if design.serving == "hybrid" else 0)
        self.progress = progress
        # metrics
        self.lat = LogHistogram()
        self.lat_path = {"table": LogHistogram(), "model": LogHistogram(), "fallback": LogHistogram()}
        self.wait = LogHistogram()
        self.model_age = LogHistogram()
        self.table_age = LogHistogram()
        self.requests = self.waited = self.slo_viol = self.hits = 0
        self.queue_seen = 0.0
        self.served_correct = 0
        self.served_expected = 0.0
        self.fresh_expected = 0.0
        self.val = {"batches": 0, "anomalies": 0, "quarantined": 0, "by_kind": {}}
        self.train = {"runs": 0, "deployed": 0, "rejected_by_gate": 0}
        self.cost = {"serving": 0.0, "training": 0.0, "batch_prediction": 0.0, "storage": 0.0}
        self.events: list = []
        self.timeseries: list = []
        self.t_done = 0.0
        self.version = 0
        self.store: list[Stats] = []
        self.holdout = None
        self.bucket = _Bucket(0.0)
        self.vcpu_s = sc.costs.vcpu_hour / 3600.0

    # ------------------------------------------------------------------ setup
    def _bootstrap(self) -> None:
        """History before t = 0: a window of batches, the reference schema, the initial model
        and (for table serving) the initial table."""
        sc, d = self.sc, self.sc.data
        job0 = train_job_s(sc, self.design.training)
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
                self.bucket.anomalies += len(anomalies)
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
        self.scorer = Scorer(m, self.features)
        self.end_proj_model = self._proj(m.data_end_s)
        if count:
            self.bucket.deployments += 1

    def _fill_table(self, m: Model, at_s: float, cost_share: float = 1.0) -> None:
        self.advance(at_s)
        preds = batch_predict(m, self.features, self.keys_in_table)
        self.table = Table(self.keys_in_table, preds, m, at_s)
        self.end_proj_table = self._proj(m.data_end_s)
        self.cost["batch_prediction"] += (self.keys_in_table * self.sc.model.inference_time.mean_s
                                          * self.vcpu_s * cost_share)

    # --------------------------------------------------------------- data plane
    def advance(self, t_to: float) -> None:
        """Serve every request that arrives in [t_done, t_to) with the current state."""
        t_to = min(t_to, self.horizon)
        tr = self.sc.traffic
        peak = tr.rate * (1 + tr.diurnal_amplitude)
        step = max(CHUNK_REQUESTS / peak, 1e-3)
        while self.t_done < t_to - 1e-12:
            t1 = min(t_to, self.t_done + step)
            self._serve_chunk(arrivals(self.rng_arr, self.t_done, t1, tr.rate, tr.diurnal_amplitude))
            self.t_done = t1

    def _serve_chunk(self, t: np.ndarray) -> None:
        n = t.size
        if n == 0:
            return
        sc = self.sc
        keys = self.zipf.sample(self.rng_keys, n)
        i, j = self.features.index(keys)
        hit = keys <= np.uint64(self.keys_in_table) if self.keys_in_table else np.zeros(n, bool)
        miss = ~hit
        fallback = miss & (self.pool is None)
        model_path = miss & ~fallback
        pred = np.empty(n, dtype=np.int8)
        latency = np.empty(n)
        if hit.any():
            pred[hit] = self.table.lookup(keys[hit])
            latency[hit] = sc.serving.lookup_time.sample_s(self.rng_svc, int(hit.sum()))
        if model_path.any():
            idx = np.nonzero(model_path)[0]
            pred[idx] = self.scorer.predict(i[idx], j[idx])
            svc = sc.model.inference_time.sample_s(self.rng_svc, idx.size)
            starts = self.pool.serve(t[idx], svc)
            w = starts - t[idx]
            latency[idx] = w + svc
            self.wait.add(w)
            waited = int(np.count_nonzero(w > 0))
            self.waited += waited
            seen = float(self.pool.queue_seen(t[idx], starts).sum())
            self.queue_seen += seen
            self.bucket.wait.add(w)
            self.bucket.waited += waited
            self.bucket.queue_seen += seen
            self.lat_path["model"].add(latency[idx])
        if fallback.any():
            # no path can answer: the client gets a default answer after a failed lookup
            pred[fallback] = 1
            latency[fallback] = sc.serving.lookup_time.sample_s(self.rng_svc, int(fallback.sum()))
            self.lat_path["fallback"].add(latency[fallback])
        if hit.any():
            self.lat_path["table"].add(latency[hit])
        # truth at the request's time, and at the end of the serving model's data
        y_true = self._true_labels(t, i, j)
        eps = sc.data.label_noise
        flip = self.rng_lab.random(n) < eps if eps > 0 else np.zeros(n, bool)
        y_obs = np.where(flip, -y_true, y_true)
        m_end = self.end_proj_model[0][i] + self.end_proj_model[1][j]
        if self.keys_in_table and hit.any():
            m_end = np.where(hit, self.end_proj_table[0][i] + self.end_proj_table[1][j], m_end)
        y_end = np.where(m_end >= 0, 1, -1)
        age = t - np.where(hit, self.table.model.data_end_s if self.keys_in_table else 0.0,
                           self.live.data_end_s)
        self.lat.add(latency)
        self.model_age.add(np.maximum(age, 0.0))
        if hit.any():
            self.table_age.add(np.maximum(age[hit], 0.0))
        correct = pred == y_obs
        self.requests += n
        self.hits += int(hit.sum())
        self.slo_viol += int(np.count_nonzero(latency > sc.slo.latency_p99))
        self.served_correct += int(correct.sum())
        # expected correctness over the label noise: 1−ε if the prediction matches the
        # concept, else ε (paired per request, so staleness loss has low variance)
        served_exp = float(np.sum(np.where(pred == y_true, 1 - eps, eps)))
        fresh_exp = float(np.sum(np.where(pred == y_end, 1 - eps, eps)))
        self.served_expected += served_exp
        self.fresh_expected += fresh_exp
        self.bucket.served_expected += served_exp
        self.bucket.fresh_expected += fresh_exp
        b = self.bucket
        b.hist.add(latency)
        b.requests += n
        b.correct += int(correct.sum())
        b.hits += int(hit.sum())
        b.age_sum += float(age.sum())

    def _proj(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Concept margins of every feature-table row at time t: w(t)·x = pa[i] + pb[j]."""
        u = self.concept.u(t_s)
        return self.za @ u, self.zb @ u

    def _true_labels(self, t: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """sign(w(t)·x) per request, exactly. The margin at the chunk's start time t0 decides
        every request whose margin exceeds the most the concept can move within the chunk
        (‖z‖·drift_bound, with ‖z‖ <= ‖za_i‖ + ‖zb_j‖); the rest are evaluated exactly."""
        t0 = float(t[0])
        pa, pb = self._proj(t0)
        m0 = pa[i] + pb[j]
        bound = (self.za_norm[i] + self.zb_norm[j]) * self.concept.drift_bound(float(t[-1]) - t0)
        near = np.nonzero(np.abs(m0) <= bound * (1 + 1e-9) + 1e-12)[0]
        if near.size:
            z = self.za[i[near]] + self.zb[j[near]]
            m0[near] = self.concept.margin(z, t[near])
        return np.where(m0 >= 0, 1, -1).astype(np.int8)

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
        b = self.bucket
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
        self.bucket = _Bucket(t)

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
                     {"all": self.lat, **self.lat_path}, self.events)
        res.wait_hist, res.bucket_wait_hists = self.wait, self.bucket_hists
        return res

    def _metrics(self, wall_s: float) -> dict:
        sc, d, H = self.sc, self.design, self.horizon
        n = max(self.requests, 1)
        model_n = self.lat_path["model"].n
        table_b = self.keys_in_table * sc.model.prediction_bytes
        # training data kept: one window back from the newest validated data
        newest = max((s.data_end_s for s in self.store), default=0.0)
        data_nominal = sum(s.nominal for s in self.store
                           if s.data_end_s > newest - sc.model.training_window + 1e-9)
        data_b = data_nominal * example_bytes(sc.data.features)
        mb = model_bytes(sc.data.features)
        storage_month = (table_b / 1e9 * sc.costs.table_storage_per_gb_month
                         + (data_b + mb) / 1e9 * sc.costs.data_storage_per_gb_month)
        self.cost["storage"] = storage_month * H / MONTH_S
        self.cost["serving"] = d.replicas * H * self.vcpu_s
        total = sum(self.cost.values())
        cost = dict(self.cost, total=total)
        fresh = self.fresh_expected / n
        served_exp = self.served_expected / n
        return {
            "scenario": sc.name, "seed": self.seed, "horizon_s": H,
            "architecture": d.to_json(),
            "requests": self.requests,
            "latency_ms": self.lat.summary_ms(),
            "latency_ms_by_path": {k: h.summary_ms() for k, h in self.lat_path.items() if h.n},
            "queue_wait_ms": self.wait.summary_ms(("mean", "p50", "p95", "p99", "max")) if model_n else
            {"mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0},
            "waited_fraction": self.waited / model_n if model_n else 0.0,
            "queue_length_seen_mean": self.queue_seen / model_n if model_n else 0.0,
            "slo_violation_fraction": self.slo_viol / n,
            "cache_hit_ratio": self.hits / n,
            "fallback_requests": self.lat_path["fallback"].n,
            "storage": {"table_bytes": table_b, "data_bytes": data_b, "model_bytes": mb,
                        "usd_per_month": storage_month},
            "cost_usd": cost,
            "cost_usd_per_month": total * MONTH_S / H,
            "staleness": {"model_age_s": self.model_age.summary_s(),
                          "table_age_s": self.table_age.summary_s() if self.table_age.n else None},
            "accuracy": {"served": self.served_correct / n, "fresh_model": fresh,
                         "lost_to_staleness": fresh - served_exp, "served_expected": served_exp},
            "validation": self.val,
            "training": self.train,
            "wall_s": wall_s,
        }


def report_interval_s(horizon_s: float) -> float:
    """Time-series window: one hour, or 1/24 of shorter horizons."""
    return 3600.0 if horizon_s >= 86400.0 else horizon_s / 24.0


def simulate(scenario: Scenario, seed: int | None = None, horizon_s: float | None = None,
             design: Design | None = None, progress: bool | object = False,
             report_every_s: float | None = None, keep_bucket_hists: bool = False,
             planning_horizon_s: float | None = None) -> Result:
    """Run the scenario's architecture (its `architecture:` block, else the advisor's design)
    on synthetic traffic. Same scenario, seed and version give identical metrics (wall_s aside).

    progress: False, True (a rich progress bar on stderr for runs longer than a second), or a
    callable taking the completed fraction. planning_horizon_s (default: the scenario's
    horizon) is the span over which the initial model and table are amortised."""
    seed = scenario.seed if seed is None else seed
    horizon = scenario.horizon if horizon_s is None else horizon_s
    design = design or design_for(scenario)
    check_size(scenario, design, horizon)
    kw = dict(report_every_s=report_every_s, keep_bucket_hists=keep_bucket_hists,
              planning_horizon_s=planning_horizon_s)
    if progress is True:
        with _ProgressBar(scenario.name) as bar:
            return Simulation(scenario, design, seed, horizon, bar.update, **kw).run()
    return Simulation(scenario, design, seed, horizon, progress or None, **kw).run()


class _ProgressBar:
    """A rich progress bar on stderr that appears only once a run has taken a second."""

    def __init__(self, name: str):
        self.name, self.t0, self.bar, self.task = name, time.perf_counter(), None, None

    def __enter__(self):
        return self

    def update(self, frac: float) -> None:
        if self.bar is None and time.perf_counter() - self.t0 > 1.0:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
            self.bar = Progress(TextColumn(f"simulating {self.name}"), BarColumn(),
                                TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("sim", total=1.0)
        if self.bar is not None:
            self.bar.update(self.task, completed=frac)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False
