"""Compiled inner loops of the data plane (numba, compiled once and cached on disk), each
with a pure-Python/numpy twin that gives bit-identical results.

- fifo_starts: exact FIFO c-server start times (Kiefer–Wolfowitz): a binary min-heap of
  the replicas' free times; start = max(arrival, earliest free). Max and one addition per
  request in both versions, so starts are equal bit for bit (the heap's layout may differ,
  its multiset of free times does not).
- queue_seen: requests waiting as seen by each arrival, by one merge walk over the sorted
  arrival, start and pending-start times (the twin uses binary searches; integer counts).
- concept_margins: the concept margin of each request at the window's start time,
  w(t0)·x = za[i]·u + zb[j]·u, touching only the rows the window uses, and whether the
  request is near enough to the boundary to need an exact evaluation at its own time.
  Only the sign of a margin is used, and a margin is only trusted when it exceeds the most
  the concept can move within the window, so summation order cannot change a label.

The compiled versions are used when numba is installed and MLARCH_JIT is not "0"; with
MLARCH_JIT unset, only for runs of at least JIT_MIN_REQUESTS requests, since importing numba
and loading the cached machine code costs about a second per process (results are the same
either way). numba is imported on first use, never at `import simulator`.
"""
from __future__ import annotations

import functools
import heapq
import importlib.util
import os

import numpy as np

JIT_ENV = "MLARCH_JIT"          # "0": never compile; "1": always; unset: runs >= JIT_MIN_REQUESTS
JIT_MIN_REQUESTS = 2e6          # ~1 s of fixed cost is repaid by ~0.3 us saved per request


def enabled() -> bool:
    """True when the compiled kernels may be used (numba installed, MLARCH_JIT != '0')."""
    return os.environ.get(JIT_ENV, "1") != "0" and _numba_installed()


def use_for(expected_requests: float) -> bool:
    """Whether a run of this many requests should use the compiled kernels."""
    flag = os.environ.get(JIT_ENV)
    if flag == "0" or not _numba_installed():
        return False
    return flag == "1" or expected_requests >= JIT_MIN_REQUESTS


@functools.cache
def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


@functools.cache
def _compiled():
    """The numba-compiled kernels, or None without numba. cache=True writes the machine
    code beside this file (or numba's user cache) so later processes skip compilation."""
    try:
        import numba
    except ImportError:
        return None
    jit = numba.njit(cache=True, nogil=True, fastmath=False)
    return {"fifo_starts": jit(_fifo_starts_loop), "concept_margins": jit(_concept_margins_loop),
            "queue_seen": jit(_queue_seen_loop)}


# ------------------------------------------------------------------ queue

def _fifo_starts_loop(heap, arrival_s, service_s):
    """Start times; `heap` (free times, min-heap layout of heapq) is updated in place."""
    n = arrival_s.size
    c = heap.size
    starts = np.empty(n)
    for k in range(n):
        a = arrival_s[k]
        f = heap[0]
        st = a if a > f else f
        starts[k] = st
        x = st + service_s[k]
        # replace the root by x and sift it down
        pos = 0
        while True:
            child = 2 * pos + 1
            if child >= c:
                break
            right = child + 1
            if right < c and heap[right] < heap[child]:
                child = right
            if heap[child] < x:
                heap[pos] = heap[child]
                pos = child
            else:
                break
        heap[pos] = x
    return starts


def fifo_starts_python(heap: np.ndarray, arrival_s: np.ndarray, service_s: np.ndarray) -> np.ndarray:
    """The pure-Python twin of the compiled loop (heapq); same contract."""
    h = heap.tolist()
    replace = heapq.heapreplace
    starts = []
    append = starts.append
    for a, s in zip(arrival_s.tolist(), service_s.tolist()):
        f = h[0]
        st = a if a > f else f
        append(st)
        replace(h, st + s)
    heap[:] = h
    return np.asarray(starts, dtype=float)


def fifo_starts(heap: np.ndarray, arrival_s: np.ndarray, service_s: np.ndarray,
                compiled: bool | None = None) -> np.ndarray:
    """FIFO start times of requests arriving in order at a pool whose free times are `heap`
    (float64 min-heap, updated in place). compiled: None = whenever available."""
    if compiled is None:
        compiled = enabled()
    if compiled:
        k = _compiled()
        if k is None:
            raise RuntimeError("numba is not installed")
        return k["fifo_starts"](heap, np.ascontiguousarray(arrival_s, dtype=np.float64),
                                np.ascontiguousarray(service_s, dtype=np.float64))
    return fifo_starts_python(heap, arrival_s, service_s)


def _queue_seen_loop(arrival_s, start_s, pending_s):
    n = arrival_s.size
    seen = np.empty(n, dtype=np.int64)
    p = 0
    q = 0
    for k in range(n):
        a = arrival_s[k]
        while p < start_s.size and start_s[p] <= a:
            p += 1
        while q < pending_s.size and pending_s[q] <= a:
            q += 1
        started = p - (1 if start_s[k] <= a else 0)
        seen[k] = k - started + (pending_s.size - q)
    return seen


def queue_seen_numpy(arrival_s, start_s, pending_s):
    n = np.arange(arrival_s.size)
    started = np.searchsorted(start_s, arrival_s, side="right") - (start_s <= arrival_s)
    carried = pending_s.size - np.searchsorted(pending_s, arrival_s, side="right")
    return n - started + carried


def queue_seen(arrival_s, start_s, pending_s, compiled: bool | None = None) -> np.ndarray:
    """For each arrival n (all arrays sorted): earlier requests of this window not started by
    a_n, plus pending starts (earlier windows) after a_n."""
    if compiled is None:
        compiled = enabled()
    if compiled:
        return _compiled()["queue_seen"](arrival_s, start_s, pending_s)
    return queue_seen_numpy(arrival_s, start_s, pending_s)


# ---------------------------------------------------------------- labels

def _concept_margins_loop(za, zb, i, j, u, za_norm, zb_norm, drift):
    # mark the rows this window uses, project them in row order (a sequential read of the
    # tables, which random per-request row reads are several times slower than), then gather
    rows = za.shape[0]
    d = u.size
    used_a = np.zeros(rows, dtype=np.bool_)
    used_b = np.zeros(rows, dtype=np.bool_)
    for k in range(i.size):
        used_a[i[k]] = True
        used_b[j[k]] = True
    pa = np.empty(rows)
    pb = np.empty(rows)
    for r in range(rows):
        if used_a[r]:
            s = 0.0
            for q in range(d):
                s += za[r, q] * u[q]
            pa[r] = s
        if used_b[r]:
            s = 0.0
            for q in range(d):
                s += zb[r, q] * u[q]
            pb[r] = s
    n = i.size
    m0 = np.empty(n)
    near = np.empty(n, dtype=np.bool_)
    for k in range(n):
        m = pa[i[k]] + pb[j[k]]
        m0[k] = m
        bound = (za_norm[i[k]] + zb_norm[j[k]]) * drift
        near[k] = abs(m) <= bound * (1 + 1e-9) + 1e-12
    return m0, near


def concept_margins_numpy(za, zb, i, j, u, za_norm, zb_norm, drift):
    """The numpy twin: projects every feature-table row once (cheaper than gathering when a
    window uses most rows), then picks the window's rows."""
    m0 = (za @ u)[i] + (zb @ u)[j]
    bound = (za_norm[i] + zb_norm[j]) * drift
    return m0, np.abs(m0) <= bound * (1 + 1e-9) + 1e-12


def concept_margins(za, zb, i, j, u, za_norm, zb_norm, drift: float, compiled: bool | None = None):
    """(margins at the window start, mask of requests to evaluate exactly)."""
    if compiled is None:
        compiled = enabled()
    if compiled:
        return _compiled()["concept_margins"](za, zb, i, j, u, za_norm, zb_norm, float(drift))
    return concept_margins_numpy(za, zb, i, j, u, za_norm, zb_norm, drift)
