"""The textbook reference the engine is checked and benchmarked against: a FIFO c-server
queue with one SimPy process per request (what the vectorised data plane replaces)."""
from __future__ import annotations

import numpy as np
import simpy


def simpy_fifo_waits(arrival_s: np.ndarray, service_s: np.ndarray, replicas: int) -> np.ndarray:
    """Per-request queue waits of a c-server FIFO queue, one SimPy process per request."""
    env = simpy.Environment()
    res = simpy.Resource(env, capacity=replicas)
    waits = np.empty(len(arrival_s))

    def customer(k):
        with res.request() as req:
            t0 = env.now
            yield req
            waits[k] = env.now - t0
            yield env.timeout(service_s[k])

    def source():
        for k in range(len(arrival_s)):
            yield env.timeout(arrival_s[k] - env.now)
            env.process(customer(k))
    env.process(source())
    env.run()
    return waits
