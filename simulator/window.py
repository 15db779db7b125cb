"""The data plane: requests processed in numpy windows between control events.

Between two control events the system state is constant (which model, which table, how
many replicas), so a window's requests are generated, routed (table hit, model, or
fallback), predicted and queued in vectorised calls, with exact FIFO queueing
(Kiefer–Wolfowitz, simulator.serve.ReplicaPool) carried across windows. The control plane
(simulator.engine) calls `advance(t)` before every state change.
"""
from __future__ import annotations

import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from scenarios.schema import Scenario

from . import kernels
from .metrics import LogHistogram
from .serve import ReplicaPool, Scorer, Table
from .traffic import Concept, KeyFeatures, ZipfSampler, arrivals, integrated_rate
from .train import Model

CHUNK_REQUESTS = 1 << 18
PROJECTION_EPOCH_S = 4 * 3600.0   # longest a projection of the feature tables on the concept is kept
EPOCH_DRIFT = 2e-3                # a projection is kept while a unit-norm row's margin departs from its
                                  # first-order projection by at most this (longer epochs project less
                                  # often but evaluate more requests exactly)
_TABLE, _MODEL, _FALLBACK = 0, 1, 2     # the path that answered a request (kernels.hist_tally groups)
AHEAD_CHUNKS = 2                  # chunks drawn ahead (threads=2) at most: a second keeps the drawing
                                  # thread busy through the control plane's work (spam 24h, every
                                  # request, best of 3: 8.0M requests/s against 7.4M with one), but
                                  # costs memory:
AHEAD_RSS_MIB = 270               # it is drawn only while the process's resident memory is below this
                                  # (voice-to-text, near 280 MiB, peaked at 307 MiB with two, 295 with one)
THREADS_ENV = "MLARCH_THREADS"    # "1": a run uses one thread (no draws ahead); unset: see threads_default


def threads_default() -> int:
    """Threads a run uses unless told (simulate(threads=...)): 2 (the next chunk's random numbers
    are drawn while this one is served; the results are the same) when this process may run
    on 2 or more CPUs and MLARCH_THREADS is not "1", else 1."""
    if os.environ.get(THREADS_ENV, "") == "1":
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:      # not on Linux
        cpus = os.cpu_count() or 1
    return 2 if cpus >= 2 else 1


def _rss_mib() -> float:
    """This process's resident memory (Linux; elsewhere +inf, i.e. unknown)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        return math.inf


_drawer: ThreadPoolExecutor | None = None


def draw_thread() -> ThreadPoolExecutor:
    """The process's one drawing thread, shared by its runs (they run one at a time)."""
    global _drawer
    if _drawer is None:
        _drawer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlarch-draws")
    return _drawer


class _Draws:
    """One chunk's random draws: everything about its requests that does not depend on the
    system's state (which model, which table, how many replicas), in the order the serial
    code draws them from each stream. Chunks drawn ahead are alive beside the one served,
    so a chunk keeps only what serving it reads."""
    __slots__ = ("t", "keys", "hit_keys", "i", "j", "hit", "n_hit", "lookup_s", "fallback_s", "svc_s", "flip",
                 "y_true")

    def __init__(self, t: np.ndarray):
        self.t = t
        self.keys = self.hit_keys = self.i = self.j = self.hit = None      # keys: only for a request sink
        self.lookup_s = self.fallback_s = self.svc_s = self.flip = self.y_true = None
        self.n_hit = 0


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
        self.work_s = 0.0          # service seconds of model-path arrivals (offered load × time)


class DataPlane:
    """Serves every request of [0, horizon) with whatever model and table the control plane
    has installed, and accumulates the request metrics (histograms and exact sums)."""

    on_requests = None   # optional callable(arrival_times_s, keys) seeing every request (set_request_sink)
    scaler = None        # optional simulator.autoscale.Autoscaler resizing the pool (serving.autoscale)
    down = 0             # replicas down (serving.failures); their requests also go to lat_down
    lat_down = None
    skew: tuple[int, float] | None = None   # (feature, factor) while the serving path is skewed

    def __init__(self, sc: Scenario, horizon_s: float, features: KeyFeatures, concept: Concept,
                 zipf: ZipfSampler, replicas: int, keys_in_table: int, rngs: tuple,
                 compiled: bool | None = None, threads: int = 1):
        self.sc, self.horizon = sc, horizon_s
        self.features, self.concept, self.zipf = features, concept, zipf
        self.rng_arr, self.rng_keys, self.rng_svc, self.rng_lab = rngs
        # a key's margin is w(t)·x = (A[i] + B[j])·w(t)/√2: the feature tables' rows are
        # projected on w(t)/√2 (no rotated copy of the tables is kept)
        self.xa, self.xb = features.a, features.b
        # per row: scratch for its projections on the concept and on its rate of change
        # (kernels.concept_margins), and an upper bound on the norm of its moving part
        # (rotation keeps norms; the rest does not move): ‖A_r‖/√2
        zeros = np.zeros(features.rows)
        self.xa_pn = np.column_stack([zeros, zeros, np.linalg.norm(features.a, axis=1) / math.sqrt(2)])
        self.xb_pn = np.column_stack([zeros, zeros, np.linalg.norm(features.b, axis=1) / math.sqrt(2)])
        self._proj_at: float | None = None      # time of the projections in their columns 0 and 1
        # how long one projection serves: a margin departs from its first-order projection by at
        # most ‖z‖·½‖u''‖·δ² after δ seconds, so over this epoch a unit-norm row's by at most
        # EPOCH_DRIFT, and only the few requests that close to the boundary are evaluated
        # exactly (for a 3-day half-life, 2.7 h; a frozen concept: the cap)
        self._half_curv = curv = concept.curvature_bound() / 2
        self._proj_epoch_s = min(PROJECTION_EPOCH_S, math.sqrt(EPOCH_DRIFT / curv)) if curv > 0 else PROJECTION_EPOCH_S
        if compiled is None:
            tr = sc.traffic
            compiled = kernels.use_for(integrated_rate(0.0, horizon_s, tr.rate, tr.diurnal_amplitude))
        self.compiled = compiled          # simulator.kernels: the numba loops or their Python twins
        self.pool = ReplicaPool(replicas, compiled) if replicas else None
        self.keys_in_table = keys_in_table
        self.live: Model | None = None
        self.table: Table | None = None
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
        self.bucket = _Bucket(0.0)
        self.t_done = 0.0
        self.pieces: list | None = None     # recorded slices (set_slices); None: every request
        self.piece_i = 0
        # threads >= 2: the next chunk is drawn on another thread while this one is served. The
        # four streams are this plane's alone, and only the drawing thread uses them, so the
        # draws, and the run, are the same bit for bit.
        self.threads = threads
        self._ahead: deque = deque()     # (future of (draws, streams' states before), (t0, t1, record))

    def set_model(self, m: Model) -> None:
        """Serve model-path requests with m from now on."""
        self.live = m
        if isinstance(m, Model):
            self.scorer = Scorer(m, self.features, self.skew)
        else:   # a scikit-learn estimator (simulator.estimator): predict on the keys' features
            from .estimator import FeatureScorer
            self.scorer = FeatureScorer(m, self.features, self.skew)
        self.end_proj_model = self._proj(m.data_end_s)

    def set_skew(self, skew: tuple[int, float] | None) -> None:
        """From now on the online path feeds feature skew[0] multiplied by skew[1] (None: fixed)."""
        self.skew = skew
        if self.live is not None:
            self.set_model(self.live)

    def set_request_sink(self, fn) -> None:
        """Call fn(arrival_times_s, keys) with every chunk of requests served (e.g. to log them)."""
        self.on_requests = fn

    def set_table(self, table: Table) -> None:
        """Answer table hits from this table from now on."""
        self.table = table
        self.end_proj_table = self._proj(table.model.data_end_s)

    def set_slices(self, pieces: list[tuple[float, float, float]]) -> None:
        """Record requests only inside pieces (warm_start, start, end), sorted and disjoint;
        requests in [warm_start, start) run through the queue (which starts empty) but are not
        recorded. Without pieces every request of [0, horizon) is recorded."""
        self.pieces, self.piece_i = pieces, 0

    def advance(self, t_to: float) -> None:
        """Serve every request that arrives in [t_done, t_to) with the current state (only
        the sampled pieces of time when slices are set)."""
        t_to = min(t_to, self.horizon)
        pieces = self.pieces
        if pieces is None:
            self._advance_span(t_to, record=True)
            return
        while self.t_done < t_to - 1e-12:
            if self.piece_i >= len(pieces) or pieces[self.piece_i][0] >= t_to:
                self.t_done = t_to
                if self.scaler is not None:
                    self.scaler.begin_span(t_to)
                return
            warm, start, end = pieces[self.piece_i]
            if self.t_done < warm:
                # time jumped over an unsampled stretch: the queue starts empty again
                self.t_done = warm
                if self.scaler is not None:
                    self.scaler.begin_span(warm)
                if self.pool is not None:
                    self.pool = self.pool.restarted(self.t_done)
            if self.t_done < start - 1e-12:
                self._advance_span(min(start, t_to), record=False)
                continue
            self._advance_span(min(end, t_to), record=True)
            if self.t_done >= end - 1e-12:
                self.piece_i += 1

    def _advance_span(self, t_to: float, record: bool) -> None:
        step = self._step_s()
        # guess past this span's end only after a span of a chunk or more: short spans (frequent
        # control events) make wrong guesses, and a wrong guess costs its draws
        guess = t_to - self.t_done >= step
        while self.t_done < t_to - 1e-12:
            t1 = min(t_to, self.t_done + step)
            d = self._take(self.t_done, t1, record)
            if self.threads > 1:
                self._draw_ahead(t1, t_to, step, record, guess)
            if self.scaler is not None:
                self.scaler.begin_span(self.t_done)
            if record:
                self._serve_chunk(d)
            else:
                self._warm_chunk(d)
            if self.scaler is not None:
                self.scaler.end_span(t1)
            self.t_done = t1

    def _draw(self, t0: float, t1: float, record: bool) -> _Draws:
        """The random draws of the chunk [t0, t1): arrivals, keys, service and lookup times,
        label noise. Uses only the plane's four streams and state fixed for the whole run."""
        tr, sc = self.sc.traffic, self.sc
        t = arrivals(self.rng_arr, t0, t1, tr.rate, tr.diurnal_amplitude)
        d = _Draws(t)
        n = t.size
        if n == 0 or (not record and self.pool is None):
            return d
        keys = self.zipf.sample(self.rng_keys, n, self.compiled)
        if self.keys_in_table:
            d.hit = keys <= np.uint64(self.keys_in_table)
            d.n_hit = int(np.count_nonzero(d.hit))
            if record and d.n_hit:
                d.hit_keys = keys[d.hit]
        else:
            d.hit = np.zeros(n, bool)
        if record:
            if self.on_requests is not None:
                d.keys = keys
            d.i, d.j = self.features.index(keys, self.compiled)
            if d.n_hit:
                d.lookup_s = sc.serving.lookup_time.sample_s(self.rng_svc, d.n_hit)
            if d.n_hit < n and self.pool is None:
                # no path can answer: the client gets a default answer after a failed lookup
                d.fallback_s = sc.serving.lookup_time.sample_s(self.rng_svc, n - d.n_hit)
        if d.n_hit < n and self.pool is not None and sc.serving.batching is None:
            d.svc_s = sc.model.inference_time.sample_s(self.rng_svc, n - d.n_hit)
        if record:
            eps = sc.data.label_noise
            d.flip = self.rng_lab.random(n) < eps if eps > 0 else np.zeros(n, bool)
            # the truth at each request's time: the concept is fixed for the run (its sudden
            # shifts included), and its projections (_true_labels' scratch) are used only here
            d.y_true = self._true_labels(t, d.i, d.j)
        return d

    def _streams(self) -> tuple:
        return self.rng_arr, self.rng_keys, self.rng_svc, self.rng_lab

    def _step_s(self) -> float:
        tr = self.sc.traffic
        return max(CHUNK_REQUESTS / (tr.rate * (1 + tr.diurnal_amplitude)), 1e-3)

    def start_drawing(self) -> None:
        """With threads > 1, start drawing the first chunks now, while the control plane
        bootstraps (for runs of a few chunks or more: a guess that the run starts with a
        recorded span of a chunk or more)."""
        if self.threads > 1 and not self._ahead:
            if self.compiled:
                # loading the kernels' machine code takes most of a second: off the main thread
                draw_thread().submit(kernels.warm)
            tr = self.sc.traffic
            if integrated_rate(0.0, self.horizon, tr.rate, tr.diurnal_amplitude) >= 4 * CHUNK_REQUESTS:
                self._draw_ahead(self.t_done, self.t_done, self._step_s(), self.pieces is None, True)

    def _draw_ahead(self, t0: float, t_to: float, step: float, record: bool, guess: bool) -> None:
        """Keep AHEAD_CHUNKS chunk(s) drawn ahead, from t0 (where the chunk being served ends)
        on: within this span, up to t_to, their bounds are known; past its end (if `guess`), a
        guess that the next span goes on as this one (_take undoes a wrong guess)."""
        q = self._ahead
        if q:
            t0 = q[-1][1][1]
        ahead = AHEAD_CHUNKS if self.room_ahead() else 1
        while len(q) < ahead and t0 < self.horizon - 1e-12 and (guess or t0 < t_to - 1e-12):
            t1 = min(t_to, t0 + step) if t0 < t_to - 1e-12 else min(self.horizon, t0 + step)
            q.append((draw_thread().submit(self._ahead_task, t0, t1, record), (t0, t1, record)))
            t0 = t1

    @staticmethod
    def room_ahead() -> bool:
        """Whether memory allows drawing more ahead than one chunk (the process under
        AHEAD_RSS_MIB resident)."""
        return _rss_mib() < AHEAD_RSS_MIB

    def _ahead_task(self, t0: float, t1: float, record: bool) -> tuple[_Draws, list]:
        """On the drawing thread: the draws of [t0, t1) and the streams' states before them
        (read here, where the streams are used, in the order the chunks are drawn)."""
        states = [r.bit_generator.state for r in self._streams()]
        return self._draw(t0, t1, record), states

    def _take(self, t0: float, t1: float, record: bool) -> _Draws:
        """The draws of [t0, t1): drawn ahead if they were, else now."""
        q = self._ahead
        if q:
            if q[0][1] == (t0, t1, record):
                return q.popleft()[0].result()[0]
            # a guess past a span's end that did not come true: stop the chunks not yet begun,
            # and rewind the streams to before the first that was drawn, as if none had been
            states = self._drain(q)
            if states is not None:
                for r, st in zip(self._streams(), states):
                    r.bit_generator.state = st
        return self._draw(t0, t1, record)

    @staticmethod
    def _drain(q: deque) -> list | None:
        """Cancel the chunks drawn ahead that have not begun, wait for those that have, empty
        the queue; the streams' states before the first that began (None: none began)."""
        futures = [f for f, _ in q]
        q.clear()
        for f in reversed(futures):      # the last first, so none begins after its turn passed
            f.cancel()
        began = [f for f in futures if not f.cancelled()]
        for f in began:
            f.exception()
        return began[0].result()[1] if began else None

    def close(self) -> None:
        """Drop the chunks drawn ahead: call at the end of a run."""
        self._drain(self._ahead)

    def _queue(self, arrival_s: np.ndarray, service_s: np.ndarray) -> np.ndarray:
        """FIFO start times on the pool (resized between arrivals by the autoscaler, if any)."""
        if self.scaler is None:
            return self.pool.serve(arrival_s, service_s)
        return self.scaler.serve(self.pool, arrival_s, service_s)

    batches = 0          # serving.batching: batches served (recorded time) and their busy seconds
    batch_busy_s = 0.0

    def _model_path(self, arrival_s: np.ndarray, svc: np.ndarray | None,
                    record: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(FIFO start, service time) of each model-path request: one request per replica, with
        service times svc (drawn with the chunk), or with serving.batching its batch's start
        and T(b) (simulator.batching)."""
        if self.sc.serving.batching is not None:
            from .batching import serve_batched
            starts, svc, nb, busy = serve_batched(self._queue, self.sc, arrival_s, self.compiled)
            if record:
                self.batches += nb
                self.batch_busy_s += busy
            return starts, svc
        return self._queue(arrival_s, svc), svc

    def _warm_chunk(self, d: _Draws) -> None:
        """Warm-up requests: they load the queue like any other, and are not recorded."""
        if d.hit is None:       # no requests, or no pool to load
            return
        idx = np.nonzero(~d.hit)[0]
        if idx.size:
            starts, _ = self._model_path(d.t[idx], d.svc_s, record=False)
            self.pool.queue_seen(d.t[idx], starts)

    def _serve_chunk(self, d: _Draws) -> None:
        t = d.t
        n = t.size
        if n == 0:
            return
        sc = self.sc
        i, j, hit, n_hit = d.i, d.j, d.hit, d.n_hit
        if self.on_requests is not None: self.on_requests(t, d.keys)  # noqa: E701
        # the path that answers each request: the table (a hit), the model, or neither
        path = np.full(n, _MODEL if self.pool is not None else _FALLBACK, dtype=np.int8)
        if n_hit:
            path[hit] = _TABLE
        pred = np.empty(n, dtype=np.int8)
        latency = np.empty(n)
        # the built-in model's predictions are made in the label tally (kernels.label_tally)
        score = (self.scorer.pa, self.scorer.pb, self.scorer.b) if isinstance(self.scorer, Scorer) else None
        if n_hit:
            pred[hit] = self.table.lookup(d.hit_keys)
            latency[hit] = d.lookup_s
        if n_hit < n:
            idx = np.nonzero(~hit)[0] if n_hit else slice(None)
            if self.pool is not None:
                ta = t[idx]
                if score is None:
                    pred[idx] = self.scorer.predict(i[idx], j[idx])
                starts, svc = self._model_path(ta, d.svc_s)
                if self.scaler is not None:
                    self.bucket.work_s += float(svc.sum())
                w = starts - ta
                latency[idx] = w + svc
                counts, sums, maxs, ns = kernels.hist_tally(w, compiled=self.compiled)
                waited = int(ns[1] - counts[1, 0])           # not in the exact-zero bin
                seen = float(self.pool.queue_seen(ta, starts).sum())
                for h in (self.wait, self.bucket.wait):
                    h.add_counts(counts[1], ns[1], sums[1], maxs[1])
                self.waited += waited
                self.queue_seen += seen
                self.bucket.waited += waited
                self.bucket.queue_seen += seen
            else:
                # no path can answer: the client gets a default answer after a failed lookup
                pred[idx] = 1
                latency[idx] = d.fallback_s
        # each latency is binned once and feeds the overall, per-path and per-window histograms
        counts, sums, maxs, ns = kernels.hist_tally(latency, path, 3, compiled=self.compiled)
        for p, name in ((_TABLE, "table"), (_MODEL, "model"), (_FALLBACK, "fallback")):
            self.lat_path[name].add_counts(counts[p], ns[p], sums[p], maxs[p])
        if self.down:
            self.lat_down.add_counts(counts[_MODEL], ns[_MODEL], sums[_MODEL], maxs[_MODEL])
        for h in (self.lat, self.bucket.hist):
            h.add_counts(counts[3], ns[3], sums[3], maxs[3])
        self.slo_viol += int(np.count_nonzero(latency > sc.slo.latency_p99))
        # truth at the request's time, and at the end of the serving model's data
        y_true = d.y_true
        eps = sc.data.label_noise
        flip = d.flip
        end_table = self.end_proj_table if self.keys_in_table and n_hit else self.end_proj_model
        correct, served_match, fresh_match = kernels.label_tally(pred, path, y_true, flip, i, j, self.end_proj_model,
                                                                 end_table, score, _MODEL, self.compiled)
        age = t - self.live.data_end_s
        if n_hit:
            age[hit] = t[hit] - self.table.model.data_end_s
        # a model serves only after its data ended: a negative age is a bug, not a value to clamp
        # (float rounding of times ~1e7 s aside)
        if age.min() < -1e-6:
            raise AssertionError(f"negative model age {age.min():.3g} s at t = {t[np.argmin(age)]:.6g} s")
        np.maximum(age, 0.0, out=age)
        counts, sums, maxs, ns = kernels.hist_tally(age, hit.view(np.int8), 2, compiled=self.compiled)
        self.model_age.add_counts(counts[2], ns[2], sums[2], maxs[2])
        self.table_age.add_counts(counts[1], ns[1], sums[1], maxs[1])
        self.requests += n
        self.hits += n_hit
        self.served_correct += correct
        # expected correctness over the label noise: 1−ε if the prediction matches the
        # concept, else ε (paired per request, so staleness loss has low variance)
        served_exp = served_match * (1 - eps) + (n - served_match) * eps
        fresh_exp = fresh_match * (1 - eps) + (n - fresh_match) * eps
        self.served_expected += served_exp
        self.fresh_expected += fresh_exp
        b = self.bucket
        b.served_expected += served_exp
        b.fresh_expected += fresh_exp
        b.requests += n
        b.correct += correct
        b.hits += n_hit
        b.age_sum += float(sums[2])

    def _segment(self, t_s: float) -> int:
        """How many sudden concept shifts happened by t (projections do not span a shift)."""
        st = self.concept.shift_t
        return 0 if st is None else int(np.searchsorted(st, t_s, side="right"))

    def _w_half(self, t_s: float) -> np.ndarray:
        """w(t)/√2: the feature tables' rows projected on it add up to a key's margin."""
        return self.concept.w(t_s) * (1 / math.sqrt(2))

    def _w_taylor(self, t_s: float) -> np.ndarray:
        """d × 2: w(t)/√2 and w'(t)/√2, a margin's value and rate of change at t (projected
        on by kernels.concept_margins)."""
        return np.column_stack([self._w_half(t_s), self.concept.w_dot(t_s) * (1 / math.sqrt(2))])

    def _proj(self, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Concept margins of every feature-table row at time t: w(t)·x = pa[i] + pb[j]."""
        w = self._w_half(t_s)
        return self.xa @ w, self.xb @ w

    def _true_labels(self, t: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """sign(w(t)·x) per request, exactly. The margin's first-order expansion about a
        projection time tp <= t, m(tp) + m'(tp)·(t − tp), decides every request whose
        expansion exceeds the most its remainder can be (‖z‖·½‖u''‖·(t − tp)², z the moving
        part of x, ‖z‖ <= (‖A_i‖ + ‖B_j‖)/√2; Concept.curvature_bound); the rest are
        evaluated exactly. Every row's projections at tp are kept for the windows of one
        epoch (PROJECTION_EPOCH_S, at most) and one concept shift; when the epoch's windows
        are too few to repay projecting every row, they project the rows they use. Labels are
        exact either way, whatever tp <= t."""
        t0 = float(t[0])
        tp = self._proj_at
        # (a chunk drawn ahead and undone may have projected later than t0: not reused then)
        reuse = tp is not None and 0 <= t0 - tp <= self._proj_epoch_s and self._segment(tp) == self._segment(t0)
        if reuse:
            w, project = self._w_taylor(tp), False
        else:
            tp, w = t0, self._w_taylor(t0)
            # the rows this projection's windows will use: a few (project only those) or most (all)
            tr = self.sc.traffic
            uses = max(t.size, tr.rate * (1 - tr.diurnal_amplitude) * min(self._proj_epoch_s, self.horizon - t0))
            project = 4 * uses < self.xa.shape[0]
            if not project:
                kernels.project_rows(self.xa, self.xb, w, self.xa_pn, self.xb_pn)
            self._proj_at = None if project else tp      # after a partial projection, columns 0 and 1 are stale
        m0, near_mask = kernels.concept_margins(self.xa, self.xb, i, j, w, self.xa_pn, self.xb_pn,
                                                self._half_curv, t - tp, project, self.compiled)
        near = np.nonzero(near_mask)[0]
        if near.size:
            x = (self.xa[i[near]] + self.xb[j[near]]) * (1 / math.sqrt(2))     # KeyFeatures.features
            m0[near] = self.concept.margin(self.concept.rotate(x), t[near])
        return np.where(m0 >= 0, np.int8(1), np.int8(-1))
