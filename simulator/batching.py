"""A batching server (serving.batching, model.batch_time): requests wait for a batch, batches
queue FIFO for the replicas.

A batch opens at the first request that finds none open and closes when it holds max_batch
requests or `timeout` after it opened (at the closing request's arrival, or at open + timeout).
Closed batches are the queue's customers: exact FIFO over the replicas (Kiefer–Wolfowitz,
simulator.kernels.fifo_starts) with service T(b) = fixed + per_item·b. A request's start is
its batch's start and its service time its batch's T(b), so latency = (start − arrival) + T(b)
as for a single request. A batch still open when a data-plane window ends is closed with what
it has (once per window; windows are minutes long, timeouts milliseconds).

form_batches has a numba version and a pure-Python twin giving the same integers and times.
"""
from __future__ import annotations

import functools

import numpy as np

from . import kernels


def _form_batches_loop(arrival_s, timeout_s, max_batch):
    """Batch index of each request and each batch's close time (arrays sized n; the first
    `count` close times are used)."""
    n = arrival_s.size
    idx = np.empty(n, dtype=np.int64)
    close = np.empty(n)
    k = -1
    open_t = 0.0
    size = 0
    for i in range(n):
        a = arrival_s[i]
        if size == 0 or a > open_t + timeout_s:
            if size > 0:
                close[k] = open_t + timeout_s
            k += 1
            open_t = a
            size = 0
        idx[i] = k
        size += 1
        if size == max_batch:
            close[k] = a
            size = 0
    if size > 0:
        close[k] = open_t + timeout_s
    return idx, close, k + 1


def form_batches_python(arrival_s: np.ndarray, timeout_s: float, max_batch: int):
    """The pure-Python twin of the compiled loop."""
    idx = []
    close = []
    k = -1
    open_t = 0.0
    size = 0
    for a in arrival_s.tolist():
        if size == 0 or a > open_t + timeout_s:
            if size > 0:
                close[k] = open_t + timeout_s
            k += 1
            close.append(0.0)
            open_t = a
            size = 0
        idx.append(k)
        size += 1
        if size == max_batch:
            close[k] = a
            size = 0
    if size > 0:
        close[k] = open_t + timeout_s
    return np.asarray(idx, dtype=np.int64), np.asarray(close, dtype=float), k + 1


@functools.cache
def _compiled():
    try:
        import numba
    except ImportError:
        return None
    return numba.njit(cache=True, nogil=True)(_form_batches_loop)


def form_batches(arrival_s: np.ndarray, timeout_s: float, max_batch: int, compiled: bool | None = None):
    """(batch index per request, close time per batch, batch sizes)."""
    if compiled is None:
        compiled = kernels.enabled()
    if arrival_s.size == 0:
        return np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64)
    if compiled and _compiled() is not None:
        idx, close, count = _compiled()(np.ascontiguousarray(arrival_s, dtype=np.float64), float(timeout_s),
                                        int(max_batch))
        close = close[:count]
    else:
        idx, close, count = form_batches_python(arrival_s, timeout_s, max_batch)
    sizes = np.bincount(idx, minlength=count)
    return idx, close, sizes


def serve_batched(queue, sc, arrival_s: np.ndarray, compiled: bool | None = None):
    """(start, service) per request: its batch's FIFO start on the replicas and T(b); and the
    number of batches and their busy replica-seconds.
    queue(arrivals, services) -> starts is the pool's (or the autoscaler's) FIFO."""
    bt, law = sc.serving.batching, sc.model.batch_time
    idx, close, sizes = form_batches(arrival_s, bt.timeout, bt.max_batch, compiled)
    t_batch = law.seconds(sizes.astype(float))
    starts = queue(close, t_batch)
    return starts[idx], t_batch[idx], sizes.size, float(t_batch.sum())
