"""An autoscaled replica pool (serving.autoscale): exact FIFO with a time-varying number of
servers, and the autoscaler that changes it.

- ElasticPool: the Kiefer–Wolfowitz heap of free times (simulator.serve.ReplicaPool) whose
  size changes at control events. A replica added at t with a cold start s enters the heap
  free at t + s: exact, since a server that appears at t + s is the same as one busy until
  then. A replica told to leave is the one free soonest; it finishes the work already given
  to it and leaves (billed until then). The numba queue kernel runs unchanged between events.
- Autoscaler: driven by the data plane. Every interval it observes what a real autoscaler sees, the
  offered load of the interval (service seconds of the requests that arrived, per second:
  busy replicas), asks the design's policy for the replicas that load needs, adds them at
  once (serving after the cold start) and scales down only to the most any observation of
  the last `scale_down_after` needed (Kubernetes HPA's stabilisation window). In time the
  run does not simulate (between the slices of a sampled lifetime) it observes the expected
  load instead: the scenario's rate over the interval × the measured model-path share ×
  the mean inference time.
"""
from __future__ import annotations

import heapq
from collections import deque

import numpy as np

from scenarios.design import AutoscalePolicy
from scenarios.schema import Scenario

from .serve import ReplicaPool
from .traffic import integrated_rate


class ElasticPool(ReplicaPool):
    """A FIFO pool whose replicas come and go (see the module docstring)."""

    def __init__(self, replicas: int, compiled: bool | None = None):
        super().__init__(replicas, compiled)
        self.ready_at: list = []          # cold-start ends of replicas added (for restarts)

    def add(self, ready_at_s: float) -> None:
        h = self.free_at.tolist()
        heapq.heappush(h, ready_at_s)
        self.free_at = np.asarray(h, dtype=float)
        self.replicas = len(h)
        if len(self.ready_at) > 256:
            # a cold start is at most a day: earlier ready times are in the past, of no use to restarted()
            self.ready_at = [r for r in self.ready_at if r > ready_at_s - 86400.0]
        self.ready_at.append(ready_at_s)

    def remove(self, t_s: float) -> float:
        """Retire the replica free soonest; returns when it leaves (it drains first)."""
        h = self.free_at.tolist()
        f = heapq.heappop(h)
        self.free_at = np.asarray(h, dtype=float)
        self.replicas = len(h)
        return max(f, t_s)

    def restarted(self, t_s: float) -> "ElasticPool":
        """An empty queue at t (a new slice of a sampled lifetime), the same replicas; those
        still cold-starting come up when they would have."""
        starting = sorted(r for r in self.ready_at if r > t_s)[-self.replicas:] if self.replicas else []
        p = ElasticPool(self.replicas, self.compiled)
        free = [t_s] * (self.replicas - len(starting)) + starting
        heapq.heapify(free)
        p.free_at = np.asarray(free, dtype=float)
        p.ready_at = starting
        return p


class Autoscaler:
    """Runs an AutoscalePolicy on a data plane's pool; counts billed replica-seconds.

    The data plane drives it (no SimPy event per decision, so decisions do not split its
    windows): `begin_span(t)` before requests of a span starting at t (decisions in time not
    simulated are taken on the expected load), `serve(pool, arrivals, services)` for each
    chunk of model-path requests in arrival order (requests arriving before a decision time
    are queued before the decision), `end_span(t)` when the span's requests are all served."""

    def __init__(self, sc: Scenario, policy: AutoscalePolicy, dp, horizon_s: float):
        self.sc, self.policy, self.dp, self.horizon = sc, policy, dp, horizon_s
        dp.pool = ElasticPool(policy.initial_replicas, dp.compiled)
        self.n = policy.initial_replicas
        self.changes = [(0.0, self.n)]          # (time, allocated replicas from then on)
        self.replica_s = 0.0
        self.last_t = 0.0
        self.history = deque([(0.0, self.n)])
        self.clock = 0.0                        # time accounted so far
        self.next_k = 1                         # the next decision is at next_k · interval
        self.work = 0.0                         # service seconds observed since the last decision
        self.covered = 0.0                      # simulated time since the last decision
        self.scale_ups = self.scale_downs = 0

    # ------------------------------------------------------------ driven by the data plane
    def _next(self) -> float:
        t = self.next_k * self.policy.interval_s
        return t if t < self.horizon - 1e-9 else np.inf

    def begin_span(self, t_s: float) -> None:
        """Time up to t_s was not simulated: take its decisions on the expected load."""
        while self._next() <= t_s:
            self._decide(self._next())
        self.clock = max(self.clock, t_s)

    def serve(self, pool, arrival_s: np.ndarray, service_s: np.ndarray) -> np.ndarray:
        """FIFO start times of a chunk, with the decisions due among its arrivals."""
        out = np.empty(arrival_s.size)
        pos = 0
        while arrival_s.size and self._next() <= arrival_s[-1]:
            d = self._next()
            j = int(np.searchsorted(arrival_s, d, side="left"))
            if j > pos:
                out[pos:j] = self.dp.pool.serve(arrival_s[pos:j], service_s[pos:j])
                self.work += float(service_s[pos:j].sum())
            pos = j
            self.covered += d - self.clock
            self.clock = d
            self._decide(d)
        if pos < arrival_s.size:
            out[pos:] = self.dp.pool.serve(arrival_s[pos:], service_s[pos:])
            self.work += float(service_s[pos:].sum())
        return out

    def end_span(self, t_s: float) -> None:
        """Every request before t_s has been served: the decisions due by then."""
        while self._next() <= t_s:
            d = self._next()
            self.covered += d - self.clock
            self.clock = d
            self._decide(d)
        self.covered += max(0.0, t_s - self.clock)
        self.clock = max(self.clock, t_s)

    # ------------------------------------------------------------------ the policy
    def observe(self, t: float) -> float:
        """Offered load (Erlangs) of the model path over the interval ending at t."""
        I, dp = self.policy.interval_s, self.dp
        work, covered = self.work, min(self.covered, I)
        if covered < I * (1 - 1e-9):
            tr = self.sc.traffic
            seen = dp.requests
            share = dp.lat_path["model"].n / seen if seen else 1.0
            expected = integrated_rate(t - I, t, tr.rate, tr.diurnal_amplitude) * share \
                * self.sc.model.inference_time.mean_s
            work += expected * (I - covered) / I
        self.work = self.covered = 0.0
        return work / I

    def _decide(self, t: float) -> None:
        self.next_k += 1
        desired = self.policy.replicas_for_load(self.observe(t))
        self.history.append((t, desired))
        while self.history and self.history[0][0] < t - self.policy.scale_down_after_s - 1e-9:
            self.history.popleft()
        self._set(t, max(d for _, d in self.history))

    def _set(self, t: float, target: int) -> None:
        if target == self.n:
            return
        self.replica_s += self.n * (t - self.last_t)
        self.last_t = t
        pool = self.dp.pool
        if target > self.n:
            for _ in range(target - self.n):
                pool.add(t + self.policy.cold_start_s)
            self.scale_ups += 1
        else:
            for _ in range(self.n - target):
                self.replica_s += pool.remove(t) - t     # drains what it was given
            self.scale_downs += 1
        self.n = target
        self.changes.append((t, target))

    # --------------------------------------------------------------------- figures
    def replica_seconds(self, t_end: float) -> float:
        return self.replica_s + self.n * (t_end - self.last_t)

    def mean_allocated(self, t0: float, t1: float) -> float:
        """Time-average of allocated replicas over [t0, t1)."""
        if t1 <= t0:
            return float("nan")
        total = 0.0
        ch = self.changes
        for i, (ts, n) in enumerate(ch):
            te = ch[i + 1][0] if i + 1 < len(ch) else np.inf
            lo, hi = max(ts, t0), min(te, t1)
            if hi > lo:
                total += n * (hi - lo)
        return total / (t1 - t0)

    def metrics(self, t_end: float) -> dict:
        rs = self.replica_seconds(t_end)
        ns = [n for _, n in self.changes]
        return {"replica_hours": rs / 3600.0, "mean_replicas": rs / t_end if t_end > 0 else None,
                "replicas_min": min(ns), "replicas_max": max(ns), "scale_ups": self.scale_ups,
                "scale_downs": self.scale_downs, "policy": self.policy.to_json()}
