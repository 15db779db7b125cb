"""Replica failures (serving.failures): replicas of a fixed pool fail and come back.

Each replica alternates an exponential up time of mean mtbf and a repair of mttr, on its own
(the timelines are drawn up front from the run's own stream). A failure is a control event:
the data plane is advanced to it, a replica chosen uniformly at random leaves the FIFO pool
(simulator.autoscale.ElasticPool), and the work it had been given — the request in service
and any queued behind it — is retried on the other replicas as one job arriving at the
failure. The replica rejoins, idle, when its repair ends. Requests arriving while a replica is
down are also counted apart (`latency_ms_while_down`), and the time series carries the
replicas up per window.
"""
from __future__ import annotations

import heapq

import numpy as np

from scenarios.schema import Scenario

from .autoscale import ElasticPool
from .metrics import LogHistogram


def timelines(rng: np.random.Generator, replicas: int, mtbf_s: float, mttr_s: float,
              horizon_s: float) -> list[tuple[float, int]]:
    """Sorted (time, −1 failure | +1 repair) events of `replicas` independent replicas."""
    ev = []
    for _ in range(replicas):
        t = 0.0
        while True:
            t += rng.exponential(mtbf_s)
            if t >= horizon_s:
                break
            ev.append((t, -1))
            t += mttr_s
            if t >= horizon_s:
                break
            ev.append((t, +1))
    ev.sort()
    return ev


class ReplicaFailures:
    """Runs failure and repair events on a data plane's pool."""

    def __init__(self, sc: Scenario, dp, replicas: int, rng: np.random.Generator, horizon_s: float):
        f = sc.serving.failures
        self.dp, self.rng, self.horizon = dp, rng, horizon_s
        self.events = timelines(rng, replicas, f.mtbf, f.mttr, horizon_s)
        dp.pool = ElasticPool(replicas, dp.compiled)
        dp.lat_down = LogHistogram()
        self.replicas = replicas
        self.up = replicas
        self.changes = [(0.0, replicas)]
        self.failures = self.retried = 0
        self.down_s = 0.0

    def run(self, env):
        """The SimPy process: one control event per failure or repair."""
        for t, kind in self.events:
            yield env.timeout(t - env.now)
            self.dp.advance(t)
            pool = self.dp.pool
            if kind < 0:
                self.failures += 1
                h = pool.free_at.tolist()
                j = int(self.rng.integers(len(h)))
                f = h.pop(j)
                heapq.heapify(h)
                pool.free_at = np.asarray(h, dtype=float)
                pool.replicas = len(h)
                self.up -= 1
                if f > t and pool.replicas:
                    # the work it had been given is retried on the replicas still up
                    self.retried += 1
                    pool.serve(np.array([t]), np.array([f - t]))
            else:
                pool.add(t)
                self.up += 1
            self.dp.down = self.replicas - self.up
            self.changes.append((t, self.up))

    def mean_up(self, t0: float, t1: float) -> float:
        total, ch = 0.0, self.changes
        for i, (ts, n) in enumerate(ch):
            te = ch[i + 1][0] if i + 1 < len(ch) else np.inf
            lo, hi = max(ts, t0), min(te, t1)
            if hi > lo:
                total += n * (hi - lo)
        return total / (t1 - t0) if t1 > t0 else float("nan")

    def metrics(self, t_end: float) -> dict:
        up_s = self.mean_up(0.0, t_end) * t_end
        h = self.dp.lat_down
        return {"failures": self.failures, "retried_jobs": self.retried,
                "replica_hours_down": (self.replicas * t_end - up_s) / 3600.0,
                "availability": up_s / (self.replicas * t_end) if t_end > 0 else None,
                "model_requests_while_down": h.n,
                "latency_ms_while_down": h.summary_ms() if h.n else None}
