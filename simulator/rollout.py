"""Version rollouts (serving.rollout): each deployment reaches the replicas of a fixed pool.

A SimPy process per deployment changes the FIFO pool (simulator.autoscale.ElasticPool) at the
rollout's steps, advancing the data plane first:
- rolling: max_unavailable old replicas leave (each finishes the work it was given) and as
  many new ones join, serving after `warmup`; repeated until every replica is new — the pool
  is short meanwhile;
- blue_green / canary: k new replicas (the whole pool, or ceil(share·c)) join, warm up, then
  k old ones leave: the pool never shrinks, and the surge is billed.
Billed replica-seconds beyond the fixed pool (surges, and old replicas draining while their
replacement warms) are measured; requests arriving while the pool is short are also counted
apart (DataPlane.lat_down).
"""
from __future__ import annotations

import math

from scenarios.schema import Scenario

from .autoscale import ElasticPool
from .metrics import LogHistogram


class Rollouts:
    def __init__(self, sc: Scenario, dp, replicas: int):
        self.r, self.dp, self.c = sc.serving.rollout, dp, replicas
        dp.pool = ElasticPool(replicas, dp.compiled)
        dp.lat_down = LogHistogram()
        self.deployments = 0
        self.extra_replica_s = 0.0
        self.short_s = 0.0

    def run(self, env):
        """One deployment's rollout, from now."""
        r, c, dp = self.r, self.c, self.dp
        self.deployments += 1
        if r.strategy == "rolling":
            u = min(r.max_unavailable, c)
            left = c
            while left > 0:
                n = min(u, left)
                t = env.now
                dp.advance(t)
                for _ in range(n):
                    self.extra_replica_s += dp.pool.remove(t) - t   # the old one drains
                    dp.pool.add(t + r.warmup)
                dp.down += n
                yield env.timeout(r.warmup)
                dp.advance(env.now)
                dp.down -= n
                self.short_s += r.warmup
                left -= n
            return
        k = c if r.strategy == "blue_green" else max(1, math.ceil(r.share * c))
        left = c
        while left > 0:
            n = min(k, left)
            t = env.now
            dp.advance(t)
            for _ in range(n):
                dp.pool.add(t + r.warmup)
            yield env.timeout(r.warmup)
            t2 = env.now
            dp.advance(t2)
            for _ in range(n):
                self.extra_replica_s += (t2 - t) + (dp.pool.remove(t2) - t2)
            left -= n

    def metrics(self) -> dict:
        h = self.dp.lat_down
        return {"strategy": self.r.strategy, "deployments": self.deployments,
                "replica_hours_extra": self.extra_replica_s / 3600.0, "seconds_short": self.short_s,
                "model_requests_while_short": h.n, "latency_ms_while_short": h.summary_ms() if h.n else None}
