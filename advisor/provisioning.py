"""Provisioning a model-server pool over the day (issue 16): a fixed pool sized for the peak
against an autoscaled pool that follows the load.

- Staffing (pointwise-stationary approximation, Green & Kolesar 1991; Whitt 1991, Mgmt Sci
  37:307): at each instant the pool needs the fewest replicas c that meet the SLO at the
  instantaneous rate λ(t), as if that rate held for ever. Service times (ms) are tiny against
  the daily cycle, so the approximation is close to exact. The table this gives (for each c,
  the highest offered load it takes within the SLO) is the autoscaler's policy; with
  `target_utilization` the table is simply u·c.
- Lag ("shifted by the cold start"): a reactive autoscaler acts on the load of its last
  interval and its replicas serve a cold start later, so every entry is lowered by the most
  the rate can grow over interval + cold start: A·ω·lag/(1 − A) of the rate.
- Schedule: the autoscaler's control rule run on the fluid load (the expected arrivals of
  each interval): allocated replicas, live replicas (allocated a cold start ago and still
  there) and replica-hours; the request-weighted p99 mixes the M/G/c response time
  (Allen–Cunneen wait with an exponential tail, advisor.theory.mgc_wait_tail, for every
  service distribution: advisor.theory.pooled_response_cdf) of every interval with its live
  replicas.
"""
from __future__ import annotations

import math

import numpy as np

from scenarios.design import AutoscalePolicy
from scenarios.schema import Scenario, cs2

from . import theory
from .latency import STABLE_UTILISATION, _service_points

DAY_S = 86400.0
OMEGA = 2 * math.pi / DAY_S
TABLE_MAX = 4096           # staffing-table entries; beyond, the last entry's utilisation
P_SLO = 0.99


def _slo_margin(sc: Scenario, hit: float, c: int, lam_miss: float, pts: np.ndarray) -> float:
    """hit·F_lookup(SLO) + miss·F_response(SLO) − 0.99 at miss rate lam_miss with c replicas:
    ≥ 0 when the request mixture meets the p99 SLO (the criterion of
    advisor.latency.replicas_for_slo, read at the SLO instead of by bisection); continuous and
    falling in the rate, −0.99 (nothing answers in time) once the pool is unstable."""
    inf = sc.model.inference_time
    slo = sc.slo.latency_p99
    miss = 1.0 - hit
    if lam_miss * inf.mean_s >= c:
        return -P_SLO
    f = hit * float(sc.serving.lookup_time.cdf(slo))
    f += miss * theory.response_cdf(slo, pts, lam_miss, inf.mean_s, cs2(inf), c)
    return f - P_SLO


def _slo_cdf_ok(sc: Scenario, hit: float, c: int, lam_miss: float, pts: np.ndarray) -> bool:
    """Whether the request mixture meets the p99 SLO at miss rate lam_miss with c replicas."""
    return _slo_margin(sc, hit, c, lam_miss, pts) >= 0.0


def max_load_erlangs(sc: Scenario, hit: float, c: int, pts: np.ndarray | None = None) -> float:
    """The highest offered load λ_miss·E[S] (Erlangs) c replicas serve within the SLO, to a
    relative 1e-10 (0 if none): the root of the SLO margin, which falls as the rate grows, by
    Brent's method (about 10 response-CDF evaluations where bisection took 40; each can be an
    exact M/D/c chain solve)."""
    from scipy.optimize import brentq
    es = sc.model.inference_time.mean_s
    pts = _service_points(sc.model.inference_time) if pts is None else pts
    hi = c / es
    if not _slo_cdf_ok(sc, hit, c, 1e-12 / es, pts):
        return 0.0
    g = lambda lam: _slo_margin(sc, hit, c, lam, pts)   # noqa: E731
    root = brentq(g, 1e-12 / es, hi, xtol=1e-10 * hi, rtol=1e-12)
    # the largest rate known to meet the SLO: Brent's last iterate may sit just past the root
    for i in range(64):
        if root <= 0 or g(root) >= 0:
            break
        root -= 1e-10 * hi * 2 ** i
    return max(root, 0.0) * es


def lag_growth(sc: Scenario) -> float:
    """The most the rate grows, relative to itself, between the observation an autoscaler acts
    on and its new replicas serving (interval + cold start): max λ'/λ · lag = A·ω·lag/(1 − A)."""
    a = sc.serving.autoscale
    amp = sc.traffic.diurnal_amplitude
    if amp == 0:
        return 0.0
    return amp * OMEGA * (a.interval + a.cold_start) / (1.0 - amp)


def _offered(sc: Scenario, hit: float, lam: np.ndarray) -> np.ndarray:
    return lam * (1.0 - hit) * sc.model.inference_time.mean_s


def policy_for(sc: Scenario, hit: float) -> AutoscalePolicy | None:
    """The autoscaling policy of the scenario's `serving.autoscale` for a model path that
    receives a share 1 − hit of the traffic (None without autoscale or without a model path)."""
    a = sc.serving.autoscale
    if a is None or hit >= 1.0 - 1e-12:
        return None
    lo, top = sc.serving.autoscale_min, a.max
    peak_load = float(_offered(sc, hit, np.array(sc.traffic.peak_rate_per_s)))
    g = lag_growth(sc)
    pts = _service_points(sc.model.inference_time)
    slo_driven = a.target_utilization is None
    if slo_driven and max_load_erlangs(sc, hit, max(lo, math.ceil(peak_load) + 1), pts) == 0.0:
        slo_driven = False            # the service time alone misses the SLO: keep the queue stable
    util = a.target_utilization or STABLE_UTILISATION
    tab = []
    for c in range(lo, top + 1):
        m = max_load_erlangs(sc, hit, c, pts) if slo_driven else util * c
        tab.append(m / (1.0 + g))
        if tab[-1] >= 2.0 * peak_load or len(tab) >= TABLE_MAX:
            break
    tab = tuple(float(x) for x in np.maximum.accumulate(tab))
    probe = AutoscalePolicy(lo, top, lo, tab, a.interval, a.cold_start, a.scale_down_after)
    c0 = probe.replicas_for_load(float(_offered(sc, hit, np.array(sc.traffic.rate))))  # λ(0) = rate
    return AutoscalePolicy(lo, top, c0, tab, a.interval, a.cold_start, a.scale_down_after)


def _mean_rate(sc: Scenario, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """Mean of rate(t) = rate·(1 + A sin ωt) over [t0, t1): ∫ rate dt / (t1 − t0)."""
    tr = sc.traffic
    dt = np.maximum(t1 - t0, 1e-300)
    return tr.rate * (dt - tr.diurnal_amplitude * (np.cos(OMEGA * t1) - np.cos(OMEGA * t0)) / OMEGA) / dt


def _replicas_for_loads(policy: AutoscalePolicy, loads: np.ndarray) -> np.ndarray:
    tab = np.asarray(policy.max_load_erlangs)
    i = np.searchsorted(tab, loads, side="left")
    last_c = policy.min_replicas + tab.size - 1
    per = tab[-1] / last_c if tab[-1] > 0 else 1.0
    beyond = last_c + np.ceil((loads - tab[-1]) / per)
    c = np.where(i < tab.size, policy.min_replicas + i, beyond)
    return np.clip(c, policy.min_replicas, policy.max_replicas).astype(np.int64)


def _window(x: np.ndarray, w: int, fn) -> np.ndarray:
    """fn (max or min) over x[k − w .. k] for every k (the window clipped at 0)."""
    if w <= 0:
        return x.copy()
    padded = np.concatenate([np.full(w, x[0]), x])
    return fn(np.lib.stride_tricks.sliding_window_view(padded, w + 1), axis=1)


def schedule(sc: Scenario, hit: float, policy: AutoscalePolicy, horizon_s: float | None = None) -> dict:
    """The autoscaler's control rule on the fluid load over [0, horizon): per interval k
    (decision at t_k = k·interval, acting on the mean load of the interval before), the
    allocated replicas (billed), the live replicas (serving) and the mean miss rate.

    Returns arrays t0, t1 (sub-steps: each interval is split where replicas added a cold start
    earlier come up), live, lam_miss, and allocated per interval with interval ends."""
    H = sc.horizon if horizon_s is None else horizon_s
    I = policy.interval_s
    K = max(1, math.ceil(H / I - 1e-9))
    tk = np.arange(K) * I
    te = np.minimum(tk + I, H)
    lam = _mean_rate(sc, np.maximum(tk - I, 0.0), np.maximum(tk, 1e-9))
    desired = _replicas_for_loads(policy, _offered(sc, hit, lam))
    desired[0] = policy.initial_replicas
    # scale down only to the most any decision of the last scale_down_after asked for
    w = int(math.floor(policy.scale_down_after_s / I + 1e-9))
    alloc = _window(desired, w, np.max)
    alloc_mean = _expected_alloc(sc, hit, policy, lam, alloc, w)
    # a replica requested at t_j serves from t_j + cold_start: live = min of alloc since then
    q = policy.cold_start_s / I
    n = int(math.floor(q + 1e-9))
    r = q - n if q - n > 1e-9 else 0.0
    live_late = _window(alloc, n, np.min)            # from t_k + r·I to the interval's end
    live_early = _window(alloc, n + 1, np.min) if r > 0 else live_late
    split = np.minimum(tk + r * I, te)
    t0 = np.concatenate([tk, split])
    t1 = np.concatenate([split, te])
    live = np.concatenate([live_early, live_late])
    keep = t1 > t0 + 1e-12           # (the initial pool, padded in, serves from t = 0)
    t0, t1, live = t0[keep], t1[keep], live[keep]
    lam_miss = _mean_rate(sc, t0, t1) * (1.0 - hit)
    return {"t0": t0, "t1": t1, "live": live, "lam_miss": lam_miss,
            "interval_t0": tk, "interval_t1": te, "allocated": alloc, "allocated_mean": alloc_mean}


NOISE_SPAN = 4             # replicas above the fluid count whose chance the noise correction adds


def _expected_alloc(sc: Scenario, hit: float, policy: AutoscalePolicy, lam: np.ndarray,
                    alloc: np.ndarray, w: int) -> np.ndarray:
    """Expected allocated replicas when the autoscaler observes a noisy load. The service
    seconds of one interval's arrivals are compound Poisson: variance λ·E[S²]·I, so the
    observed load has sd √(λ E[S²] / I) (normal approximation). Allocated = the most any
    decision of the window asked for, and P(max >= c) = 1 − Π_j P(load_j <= L(c − 1)), with
    L(c) the policy's table: E[alloc] = c_lo + Σ_{c > c_lo} P(max >= c)."""
    from scipy.special import ndtr
    inf = sc.model.inference_time
    lam_m = lam * (1.0 - hit)
    mu = lam_m * inf.mean_s
    sd = np.sqrt(np.maximum(lam_m * inf.second_moment_s2 / policy.interval_s, 1e-300))
    mu[0], sd[0] = np.nan, np.nan        # the initial pool is set, not observed
    lo = np.maximum(alloc - NOISE_SPAN, policy.min_replicas)
    out = lo.astype(float)
    tab = np.asarray(policy.max_load_erlangs)
    last = policy.min_replicas + tab.size - 1
    K = mu.size
    below: dict = {}   # c -> P(no decision of the window ending at k asked for c or more), per k

    def p_below(c: int) -> np.ndarray:
        # the load below which a decision asks for fewer than c replicas
        lim = tab[min(max(c - 1 - policy.min_replicas, 0), tab.size - 1)] if c - 1 <= last \
            else tab[-1] * (c - 1) / max(last, 1)
        v = np.empty(K + w)
        v[: w + 1] = float(policy.initial_replicas < c)   # the initial pool, and before any decision
        v[w + 1:] = ndtr((lim - mu[1:]) / sd[1:])
        return _window_products(v, w + 1)[:K]

    for step in range(1, 2 * NOISE_SPAN + 1):
        c = lo + step
        valid = c <= policy.max_replicas
        pb = np.empty(K)
        values, inv = np.unique(c, return_inverse=True)
        order = np.argsort(inv, kind="stable")
        for cv, at in zip(values.tolist(), np.split(order, np.cumsum(np.bincount(inv))[:-1])):
            if cv not in below:
                below[cv] = p_below(cv)
            pb[at] = below[cv][at]
        out += np.where(valid, 1.0 - pb, 0.0)
    return out


def _window_products(v: np.ndarray, b: int) -> np.ndarray:
    """prod(v[k : k + b]) for every k with k + b <= v.size, in O(n): blocks of b, each window
    the product of a block suffix and the next block's prefix (van Herk / Gil–Werman)."""
    n = v.size
    nb = -(-n // b)
    blocks = np.concatenate([v, np.ones(nb * b - n)]).reshape(nb, b)
    pre = np.cumprod(blocks, axis=1).ravel()
    suf = np.cumprod(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    k = np.arange(n - b + 1)
    return np.where(k % b == 0, suf[k], suf[k] * pre[np.minimum(k + b - 1, pre.size - 1)])


def replica_seconds(sched: dict) -> float:
    """Billed replica-seconds: expected allocated replicas (cold-starting ones included) × time."""
    return float(np.sum(sched["allocated_mean"] * (sched["interval_t1"] - sched["interval_t0"])))


def autoscaled_p99_s(sc: Scenario, hit: float, sched: dict, p: float = P_SLO) -> float:
    """Request-weighted latency quantile p of an autoscaled pool: each sub-interval's M/G/c
    response time at its mean rate and live replicas (pointwise-stationary), mixed by its
    expected requests, with table hits taking lookup_time."""
    inf = sc.model.inference_time
    es, c2 = inf.mean_s, cs2(inf)
    pts = _service_points(inf)
    lam, live = sched["lam_miss"], sched["live"].astype(np.int64)
    w = lam * (sched["t1"] - sched["t0"])
    miss = 1.0 - hit
    if miss <= 1e-12 or w.sum() <= 0:
        return float(sc.serving.lookup_time.quantile_s(p))
    if np.any(lam * es >= live):
        return math.inf
    # group sub-intervals by live replicas and rate (0.2% bins) to bound the work
    key_lam = np.round(np.log(np.maximum(lam, 1e-300)) / 0.002).astype(np.int64)
    groups: dict = {}
    for c, kl, wi, li in zip(live.tolist(), key_lam.tolist(), w.tolist(), lam.tolist()):
        g = groups.setdefault((c, kl), [0.0, 0.0])
        g[0] += wi
        g[1] += wi * li
    cs_, lams, ws = [], [], []
    for (c, _), (wi, wl) in groups.items():
        cs_.append(c)
        lams.append(wl / wi)
        ws.append(wi)
    lookup = sc.serving.lookup_time
    # Allen–Cunneen even for deterministic service: the exact M/D/c for each of hundreds of
    # sub-intervals at every step of the quantile search made `advise` 0.22 → 2.3 s (spam,
    # autoscaled, 20 ms service; min of 3) for a p99 1.4% lower: 63.08 against Allen–Cunneen's
    # 63.94 ms, where a day's simulation measures 61.97 ms (both on the safe side)
    model_cdf = theory.pooled_response_cdf(pts, lams, cs_, np.array(ws) / sum(ws), es, c2,
                                           exact_mdc=False)

    def cdf(x: float) -> float:
        return hit * float(lookup.cdf(x)) + miss * model_cdf(x)

    hi = 10.0 * max(float(inf.quantile_s(0.9999)), float(lookup.quantile_s(0.9999)), 1e-3)
    for _ in range(8):
        if cdf(hi) >= p:
            break
        hi *= 10
    return theory.mixture_quantile(p, [cdf], [1.0], hi)


EXACT_SPAN_S = 2 * DAY_S   # longer horizons: one day of the schedule, scaled (the load is daily)


def day_schedule(sc: Scenario, hit: float, policy: AutoscalePolicy,
                 horizon_s: float | None = None) -> tuple[dict, float]:
    """(schedule, scale): the whole horizon up to two days; beyond, the first day, whose
    replica-seconds times `scale` = horizon / 1 d stand for the horizon (the rate repeats daily)."""
    H = sc.horizon if horizon_s is None else horizon_s
    if H <= EXACT_SPAN_S:
        return schedule(sc, hit, policy, H), 1.0
    return schedule(sc, hit, policy, DAY_S), H / DAY_S


def autoscaled_figures(sc: Scenario, hit: float, policy: AutoscalePolicy,
                       horizon_s: float | None = None, with_p99: bool = True) -> dict:
    """Replica-hours, replicas (mean, least, most) and p99 of the autoscaled pool over the
    horizon (default the scenario's)."""
    H = sc.horizon if horizon_s is None else horizon_s
    sch, scale = day_schedule(sc, hit, policy, H)
    rs = replica_seconds(sch) * scale
    return {"replica_hours": rs / 3600.0, "mean_replicas": rs / H,
            "replicas_min": int(sch["allocated"].min()), "replicas_max": int(sch["allocated"].max()),
            "latency_p99_s": autoscaled_p99_s(sc, hit, sch) if with_p99 else None}
