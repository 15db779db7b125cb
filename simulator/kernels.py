"""Compiled inner loops of the data plane (numba, compiled once and cached on disk), each
with a pure-Python/numpy twin that gives bit-identical results.

- fifo_starts: exact FIFO c-server start times (Kiefer–Wolfowitz): a binary min-heap of
  the replicas' free times (compiled, for pools of up to FIFO_SCAN_MAX: a sorted array);
  start = max(arrival, earliest free). Max and one addition per request in both versions,
  so starts are equal bit for bit (the heap's layout may differ, its multiset of free times
  does not).
- queue_seen: requests waiting as seen by each arrival, by one merge walk over the sorted
  arrival, start and pending-start times (the twin uses binary searches; integer counts).
- hist_tally: bins each value of an array once (metrics.EDGES) and tallies, per group of
  requests (e.g. table / model / fallback), the counts per bin, the sum (added in order, as
  np.bincount's weights are, so both versions round alike) and the largest value: what
  several histograms need from one array in one pass.
- label_tally: per request, whether the prediction matches the observed label, the concept,
  and the concept at the end of the serving model's data (integer counts).
- key_rows: a key's two feature-table rows (traffic.KeyFeatures.index): SplitMix64 of the
  salted key, its low and high halves masked; integer arithmetic, equal in both versions.
- zipf_round: the rejection-inversion sampler's rounding and squeeze (traffic.ZipfSampler):
  k = clip(floor(x + 1/2), 1, kmax), accepted at once when k − x <= cut; comparisons and
  one rounding, so both versions agree bit for bit.
- concept_margins: the concept margin of each request at its time t, to first order about a
  projection time tp: w(tp)·x + (t − tp)·w'(tp)·x, each term A[i]·v/√2 + B[j]·v/√2 (x's
  feature-table rows projected on w and w' once, or only the rows a small window uses),
  and whether the request is near enough to the boundary to need an exact evaluation.
  Only the sign of a margin is used, and a margin is only trusted when it exceeds the most
  the second-order remainder can be, so summation order cannot change a label.

The compiled versions are used when numba is installed and MLARCH_JIT is not "0"; with
MLARCH_JIT unset, only for runs of at least JIT_MIN_REQUESTS requests, since importing numba
and loading the cached machine code costs about a second per process (results are the same
either way), or once a process has loaded them (warm(): a sweep's workers). numba is
imported on first use, never at `import simulator`.
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
    """Whether a run of this many requests should use the compiled kernels: large runs, and
    any run once this process has loaded them (warm)."""
    flag = os.environ.get(JIT_ENV)
    if flag == "0" or not _numba_installed():
        return False
    return flag == "1" or expected_requests >= JIT_MIN_REQUESTS or _loaded


_loaded = False


def warm() -> bool:
    """Load the compiled kernels now (once per process), e.g. in a sweep worker about to run
    many small simulations that together repay the load; later runs in this process use
    them (use_for). False when they cannot be used (numba missing, MLARCH_JIT=0)."""
    global _loaded
    if not enabled():
        return False
    if not _loaded:
        k = _compiled()
        # the first call of each kernel loads its machine code from numba's cache
        k["fifo_starts"](np.zeros(1), np.zeros(1), np.zeros(1))
        k["queue_seen"](np.zeros(1), np.zeros(1), np.zeros(0))
        hist_tally(np.zeros(1), compiled=True)
        z8, zi = np.zeros(1, np.int8), np.zeros(1, np.int32)       # rows are int32 (key_rows)
        label_tally(z8, z8, z8, np.zeros(1, bool), zi, zi, (np.zeros(1),) * 2, (np.zeros(1),) * 2,
                    (np.zeros(1), np.zeros(1), 0.0), 1, True)
        pn = np.zeros((1, 3))
        concept_margins(np.zeros((1, 1)), np.zeros((1, 1)), zi, zi, np.zeros((1, 2)), pn, pn, 0.0, np.zeros(1), True, True)
        zipf_round(np.ones(1), 0.5, 2.0, 9e18, True)
        key_rows(np.ones(1, np.uint64), np.uint64(1), 1, True)
        _loaded = True
    return True


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
            "queue_seen": jit(_queue_seen_loop), "hist_tally": jit(_hist_tally_loop),
            "label_tally": jit(_label_tally_loop), "zipf_round": jit(_zipf_round_loop),
            "key_rows": jit(_key_rows_loop)}


# ------------------------------------------------------------------ queue

FIFO_SCAN_MAX = 32     # pools up to this size keep their free times sorted (see _fifo_starts_loop)


def _fifo_starts_loop(heap, arrival_s, service_s):
    """Start times; `heap` (free times, min-heap layout of heapq) is updated in place."""
    n = arrival_s.size
    c = heap.size
    starts = np.empty(n)
    # small pools keep the free times sorted (a sorted array is a min-heap too) and insert each
    # new free time by a scan that shifts the smaller ones down, which a branch predictor
    # follows better than a heap's sift-down (12 replicas: 16 ns a request against 23; the
    # heap wins from about 48)
    small = c <= FIFO_SCAN_MAX
    if small:
        heap.sort()
    for k in range(n):
        a = arrival_s[k]
        f = heap[0]
        st = a if a > f else f
        starts[k] = st
        x = st + service_s[k]
        if small:
            p = 1
            while p < c and heap[p] < x:
                heap[p - 1] = heap[p]
                p += 1
            heap[p - 1] = x
            continue
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

def _concept_margins_loop(za, zb, i, j, u, pn_a, pn_b, half_curv, dt_s, project):
    # columns 0 and 1 of pn_a, pn_b hold the rows' projections on the concept at tp and on its
    # rate of change, beside their norms in column 2, so that a request reads one cache line
    # per table row
    rows = za.shape[0]
    d = za.shape[1]
    n = i.size
    if project:
        # project the rows this window uses, marked first and read in row order (a sequential
        # read of the tables, which random per-request row reads are slower than)
        used_a = np.zeros(rows, dtype=np.bool_)
        used_b = np.zeros(rows, dtype=np.bool_)
        for k in range(n):
            used_a[i[k]] = True
            used_b[j[k]] = True
        for r in range(rows):
            if used_a[r]:
                s0 = 0.0
                s1 = 0.0
                for q in range(d):
                    s0 += za[r, q] * u[q, 0]
                    s1 += za[r, q] * u[q, 1]
                pn_a[r, 0] = s0
                pn_a[r, 1] = s1
            if used_b[r]:
                s0 = 0.0
                s1 = 0.0
                for q in range(d):
                    s0 += zb[r, q] * u[q, 0]
                    s1 += zb[r, q] * u[q, 1]
                pn_b[r, 0] = s0
                pn_b[r, 1] = s1
    m0 = np.empty(n)
    near = np.empty(n, dtype=np.bool_)
    for k in range(n):
        a = i[k]
        b = j[k]
        dt = dt_s[k]
        m = (pn_a[a, 0] + pn_b[b, 0]) + (pn_a[a, 1] + pn_b[b, 1]) * dt
        m0[k] = m
        bound = (pn_a[a, 2] + pn_b[b, 2]) * ((half_curv * dt) * dt)
        near[k] = abs(m) <= bound * (1 + 1e-9) + 1e-12
    return m0, near


def project_rows(za, zb, u, pn_a, pn_b) -> None:
    """Columns 0 and 1 of pn_a, pn_b := every feature-table row's projections on u's two
    columns (the concept and its rate of change; BLAS)."""
    pn_a[:, :2] = za @ u
    pn_b[:, :2] = zb @ u


def concept_margins_numpy(za, zb, i, j, u, pn_a, pn_b, half_curv, dt_s, project):
    """The numpy twin (asked to project, it projects the window's rows as gathered)."""
    if project:
        pa, pb = za[i] @ u, zb[j] @ u
        m0 = (pa[:, 0] + pb[:, 0]) + (pa[:, 1] + pb[:, 1]) * dt_s
    else:
        m0 = (pn_a[i, 0] + pn_b[j, 0]) + (pn_a[i, 1] + pn_b[j, 1]) * dt_s
    bound = (pn_a[i, 2] + pn_b[j, 2]) * ((half_curv * dt_s) * dt_s)
    return m0, np.abs(m0) <= bound * (1 + 1e-9) + 1e-12


def concept_margins(za, zb, i, j, u, pn_a, pn_b, half_curv: float, dt_s: np.ndarray, project: bool,
                    compiled: bool | None = None):
    """(margins at the requests' times to first order, mask of requests to evaluate exactly).
    u: d × 2, the concept at the projection time tp and its rate of change (both /√2); a
    margin m(tp + δ) = m(tp) + m'(tp)·δ + ½m''(ξ)·δ² (Taylor, Lagrange remainder), and
    |m''| <= ‖z‖·‖u''‖, so a request is flagged when its first-order margin is within
    ‖z‖·half_curv·δ² of zero, half_curv = ½‖u''‖ (Concept.curvature_bound). pn_a, pn_b:
    rows × 3 arrays, column 2 an upper bound on the norm of each row's moving part, columns
    0 and 1 the rows' projections on u at tp (project_rows). project=True: project the rows
    this window uses on u here instead; columns 0 and 1 are then left partly overwritten
    (compiled) or as they were (numpy), and must be projected again before they are reused."""
    if compiled is None:
        compiled = enabled()
    if compiled:
        return _compiled()["concept_margins"](za, zb, i, j, np.ascontiguousarray(u, dtype=np.float64), pn_a, pn_b,
                                              float(half_curv), np.ascontiguousarray(dt_s, dtype=np.float64),
                                              bool(project))
    return concept_margins_numpy(za, zb, i, j, u, pn_a, pn_b, half_curv, dt_s, project)


# ---------------------------------------------------------------- histograms

def _hist_tally_loop(v, group, groups, edges, cell_bin, lo_cell, cell_shift):
    nb = edges.size - 1
    ncell = cell_bin.size
    counts = np.zeros((groups, nb + 1), dtype=np.int64)
    sums = np.zeros(groups)
    maxs = np.zeros(groups)
    bits = v.view(np.int64)
    s0 = s1 = s2 = 0.0
    m0 = m1 = m2 = 0.0
    for k in range(v.size):
        x = v[k]
        if not (x >= 0.0) or x == np.inf:
            return counts, sums, maxs, False
        # the bin of the value's cell (its exponent and leading mantissa bits), or the next
        # one when an edge splits the cell; no branch, since which one is unpredictable
        b = cell_bin[min(max((bits[k] >> cell_shift) - lo_cell, 0), ncell - 1)]
        b += np.int64(x >= edges[b + 1]) * np.int64(b < nb - 1)
        b = (b + 1) * np.int64(x > 0.0)
        g = group[k]
        counts[g, b] += 1
        if groups <= 3:
            # one register chain per group (added in order, as np.bincount's weights are);
            # x·0 adds nothing to a sum of non-negative values, and cannot raise a maximum
            f0 = x * np.float64(g == 0)
            f1 = x * np.float64(g == 1)
            f2 = x * np.float64(g == 2)
            s0 += f0
            s1 += f1
            s2 += f2
            m0 = max(m0, f0)
            m1 = max(m1, f1)
            m2 = max(m2, f2)
        else:
            sums[g] += x
            if x > maxs[g]:
                maxs[g] = x
    if groups <= 3:
        sums[0], maxs[0] = s0, m0
        if groups > 1:
            sums[1], maxs[1] = s1, m1
        if groups > 2:
            sums[2], maxs[2] = s2, m2
    return counts, sums, maxs, True


def _with_total(counts, sums, maxs):
    """Append the row over all groups: counts and maxima, and the groups' sums added in order."""
    total = sum(sums.tolist(), 0.0)       # in group order, the same in both versions
    return (np.vstack([counts, counts.sum(axis=0)]), np.append(sums, total), np.append(maxs, maxs.max()),
            np.append(counts.sum(axis=1), counts.sum()))


def hist_tally_numpy(v, group, groups):
    """The numpy twin of the compiled tally (same contract, same bits)."""
    from .metrics import _NBINS, bin_index
    b = bin_index(v)
    nb = _NBINS + 1
    g = np.asarray(group, dtype=np.intp)
    counts = np.bincount(g * nb + b, minlength=groups * nb).reshape(groups, nb)
    sums = np.bincount(g, weights=v, minlength=groups)     # each group's values added in order
    maxs = np.zeros(groups)
    present = np.nonzero(counts.any(axis=1))[0]
    if present.size == 1:
        maxs[present[0]] = v.max()
    else:
        for k in present:
            maxs[k] = v[g == k].max()
    return _with_total(counts, sums, maxs)


def hist_tally(v: np.ndarray, group: np.ndarray | None = None, groups: int = 1, compiled: bool | None = None):
    """(counts (groups + 1) × bins, sums, maxima, numbers): per group 0..groups−1 of the
    values (group: int8 per value; None: all in group 0) and, in the last row, over all (its
    sum adds the groups' sums in group order). Each group's values are added in order, as
    np.bincount's weights are, so both versions round alike. Bins as metrics.bin_index;
    raises ValueError on a negative or non-finite value, as it does."""
    from .metrics import CELL_BIN, CELL_SHIFT, EDGES, LO_CELL
    v = np.ascontiguousarray(v, dtype=np.float64)
    if group is None:
        group = np.zeros(v.size, dtype=np.int8)
    if compiled is None:
        compiled = enabled()
    if not compiled:
        return hist_tally_numpy(v, group, groups)
    counts, sums, maxs, ok = _compiled()["hist_tally"](v, np.ascontiguousarray(group, dtype=np.int8), groups,
                                                       EDGES, CELL_BIN, LO_CELL, CELL_SHIFT)
    if not ok:
        raise ValueError("histogram values must be finite and non-negative")
    return _with_total(counts, sums, maxs)


def _label_tally_loop(pred, path, y_true, flip, i, j, pa_score, pb_score, b_score, scored,
                      pa_model, pb_model, pa_table, pb_table):
    correct = 0
    served = 0
    fresh = 0
    for k in range(pred.size):
        g = path[k]
        if g == scored:
            p = 1 if pa_score[i[k]] + pb_score[j[k]] + b_score >= 0 else -1
        else:
            p = pred[k]
        y = y_true[k]
        if p == y:
            served += 1
        if (p == -y) if flip[k] else (p == y):
            correct += 1
        if g == 0:
            m = pa_table[i[k]] + pb_table[j[k]]
        else:
            m = pa_model[i[k]] + pb_model[j[k]]
        if p == (1 if m >= 0 else -1):
            fresh += 1
    return correct, served, fresh


def label_tally_numpy(pred, path, y_true, flip, i, j, pa_score, pb_score, b_score, scored,
                      pa_model, pb_model, pa_table, pb_table):
    """The numpy twin of the compiled label tally (labels and predictions are ±1, so a
    prediction matches the observed label exactly when it matches the concept xor the flip)."""
    sel = path == scored
    if sel.all():
        pred = np.where(pa_score[i] + pb_score[j] + b_score >= 0, 1, -1).astype(np.int8)
    elif sel.any():
        pred = pred.copy()
        pred[sel] = np.where(pa_score[i[sel]] + pb_score[j[sel]] + b_score >= 0, 1, -1)
    hit = np.nonzero(path == 0)[0]
    if hit.size == path.size:
        m_end = pa_table[i] + pb_table[j]
    else:
        m_end = pa_model[i] + pb_model[j]
        if hit.size:
            m_end[hit] = pa_table[i[hit]] + pb_table[j[hit]]
    match = pred == y_true
    return (int(np.count_nonzero(match ^ flip)), int(np.count_nonzero(match)),
            int(np.count_nonzero((pred > 0) == (m_end >= 0))))


def label_tally(pred, path, y_true, flip, i, j, end_model, end_table, score=None, scored: int = -1,
                compiled: bool | None = None):
    """(predictions matching the observed label, the concept at the request's time, the
    concept at the end of the serving model's data), counted over the requests.
    path: per request, 0 if the table answered it (its margin at the end of the table's
    data counts), else another code; pred: the prediction each request got, except on
    path `scored`, whose predictions are computed here from score = (pa, pb, b) as
    serve.Scorer does: sign(pa[i] + pb[j] + b). Predictions and labels are ±1. end_model, end_table: the concept's
    projections (pa, pb) of the feature-table rows at the end of the model's and the table's
    data; flip: the request's label noise flipped its observed label."""
    if compiled is None:
        compiled = enabled()
    if score is None:
        score, scored = (end_model[0], end_model[1], 0.0), -1
    fn = _compiled()["label_tally"] if compiled else label_tally_numpy
    c, s, f = fn(pred, path, y_true, flip, i, j, score[0], score[1], float(score[2]), int(scored),
                 end_model[0], end_model[1], end_table[0], end_table[1])
    return int(c), int(s), int(f)


# ---------------------------------------------------------------- Zipf keys

def _zipf_round_loop(x, cut, kmax, max_key):
    n = x.size
    val = np.empty(n)
    ok = np.empty(n, dtype=np.bool_)
    for q in range(n):
        xv = x[q]
        kv = np.floor(xv + 0.5)
        if kv < 1.0:
            kv = 1.0
        if kv > kmax:
            kv = kmax
        ok[q] = (kv - xv <= cut) or (xv > max_key)
        val[q] = np.inf if xv > max_key else kv
    return val, ok


def zipf_round_numpy(x, cut, kmax, max_key):
    """The numpy twin of the compiled rounding and squeeze."""
    k = np.clip(np.floor(x + 0.5), 1.0, kmax)
    return np.where(x > max_key, np.inf, k), (k - x <= cut) | (x > max_key)


def zipf_round(x: np.ndarray, cut: float, kmax: float, max_key: float, compiled: bool | None = None):
    """(rank k, or inf beyond max_key; accepted by the squeeze or beyond max_key) per draw x."""
    if compiled is None:
        compiled = enabled()
    if compiled:
        return _compiled()["zipf_round"](np.ascontiguousarray(x, dtype=np.float64), float(cut), float(kmax),
                                         float(max_key))
    return zipf_round_numpy(x, cut, kmax, max_key)


# ------------------------------------------------------------- feature rows

def _key_rows_loop(keys, salt, mask):
    n = keys.size
    i = np.empty(n, dtype=np.int32)
    j = np.empty(n, dtype=np.int32)
    # uint64 constants throughout: numba would turn uint64 mixed with int64 into float64
    c0 = np.uint64(0x9E3779B97F4A7C15)
    c1 = np.uint64(0xBF58476D1CE4E5B9)
    c2 = np.uint64(0x94D049BB133111EB)
    for q in range(n):
        z = (keys[q] ^ salt) + c0
        z = (z ^ (z >> np.uint64(30))) * c1
        z = (z ^ (z >> np.uint64(27))) * c2
        z = z ^ (z >> np.uint64(31))
        i[q] = np.int32(z & mask)
        j[q] = np.int32((z >> np.uint64(32)) & mask)
    return i, j


def key_rows(keys: np.ndarray, salt, rows: int, compiled: bool | None = None):
    """(row in table A, row in table B), int32, of each uint64 key: the low and high 32 bits
    of SplitMix64(key ^ salt), masked to `rows` (a power of two, at most 2^31; int32 halves the
    rows' memory: up to three chunks of them are alive when drawing ahead)."""
    if compiled is None:
        compiled = enabled()
    mask = np.uint64(rows - 1)
    if compiled:
        return _compiled()["key_rows"](np.ascontiguousarray(keys, dtype=np.uint64), np.uint64(salt), mask)
    from .traffic import splitmix64
    with np.errstate(over="ignore"):
        h = splitmix64(keys ^ np.uint64(salt))
    return (h & mask).astype(np.int32), ((h >> np.uint64(32)) & mask).astype(np.int32)
