"""Scheduled, triggered and continuous retraining under smooth drift plus sudden shifts
(the course's three dynamic-training architectures), and the live-model monitor's own
statistics: false-alarm rate and detection delay.

Policies are priced by a *fluid* timeline (pure functions, no randomness): the horizon is
stepped one data batch at a time; the live model's expected accuracy at every moment is the
closed form of scenarios.drift (its smooth age, window blur and estimation error;
theory.accuracy_vs_age) times the shift law of scenarios.shifts (cos φ per shift since its
data, or the window blend when its training window straddles a shift). The monitor sees,
at each batch, the mean expected accuracy of the last ⌊window/batch⌋ batches scored by the
live model, and alerts below its level; retraining jobs start on the policy's rule, take
model.train_time, and deploy. Poisson shifts are placed at their mean spacing (the loss is
linear in their number while episodes do not overlap; CARA, arXiv 2310.04216, prices
threshold and periodic policies the same way: staleness cost plus retraining cost).

Monitor noise (the estimate over n labels is binomial): the standard error is
sqrt(p(1 − p)/n) with n = labelled examples in the window; consecutive windows of k batches
share k − 1 of them (correlation (k − 1)/k), so the rate of false alerts (crossings below
the level in a shift-free world) per check is Φ(z) − Φ₂(z, z; ρ), z = (level − p)/SE
(bivariate normal; Rice 1944 for level crossings of a stationary sequence).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from scenarios.design import Design
from scenarios.schema import Scenario
from scenarios.shifts import blend_cos, expected_shifts, shift_angle_rad

from . import theory
from .schedule import train_job_s, window_examples


@dataclass(frozen=True)
class PolicyResult:
    """Figures of one retraining policy over the lifetime (fluid timeline)."""
    name: str                     # scheduled | triggered | continuous | static
    accuracy_loss: float          # fresh accuracy − mean served accuracy
    retrains: float               # retraining jobs over the lifetime
    retrain_usd: float            # their compute cost
    retrain_every_s: float | None = None
    alert_below: float | None = None
    min_interval_s: float = 0.0
    false_alarms_per_day: float | None = None
    detection_delay_s: float | None = None
    alerts: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- the monitor

def monitor_labels(sc: Scenario) -> float:
    """Labelled examples in one monitor window: ⌊window/batch⌋ batches of velocity × batch."""
    mo, B = sc.monitoring, sc.data.batch_interval
    return batches_per_window(sc) * sc.data.velocity * B if mo else 0.0


def batches_per_window(sc: Scenario) -> int:
    return max(1, int(math.floor(sc.monitoring.window / sc.data.batch_interval + 1e-9)))


def monitor_se(p: float, labels: float) -> float:
    """Standard error of an accuracy estimated on `labels` labelled examples (binomial)."""
    return math.sqrt(max(p * (1 - p), 1e-12) / max(labels, 1.0))


def false_alarm_per_check(p: float, level: float, labels: float, k: int) -> float:
    """P(a check's estimate crosses below `level` from at or above it) when the true accuracy
    is p: Φ(z) − Φ₂(z, z; ρ), z = (level − p)/SE, ρ = (k − 1)/k for windows of k batches
    sliding by one (the windows share k − 1 batches)."""
    from scipy import stats
    z = (level - p) / monitor_se(p, labels)
    rho = (k - 1) / k
    if rho <= 0:
        below = float(stats.norm.cdf(z))
        return below * (1 - below)
    both = float(stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([z, z]))
    return max(0.0, float(stats.norm.cdf(z)) - both)


def false_alarms_per_day(sc: Scenario, p: float, level: float) -> float:
    """Expected false alerts per day of a monitor watching a model of steady accuracy p."""
    k = batches_per_window(sc)
    return false_alarm_per_check(p, level, monitor_labels(sc), k) * 86400.0 / sc.data.batch_interval


def detection_delay_s(sc: Scenario, p_before: float, p_after: float, level: float) -> float:
    """Expected time from a shift to the first alert, for a live model whose accuracy falls
    from p_before to p_after at the shift (no retrain in between). A batch arriving at t holds
    requests from (t − B − L, t − L]; the window mixes the last k batches; the shift falls
    uniformly within a batch interval. Each check alerts with probability Φ((level − mean)/SE)
    (checks treated as independent once the mean moves; exact when SE ≪ the fall)."""
    B, L, k = sc.data.batch_interval, sc.data.label_delay, batches_per_window(sc)
    n_b = sc.data.velocity * B
    offsets = (np.arange(16) + 0.5) / 16 * B       # shift time within its batch interval
    total = 0.0
    for u in offsets:
        # batch j (j = 1, 2, ...) arrives at s + (B − u) + L + (j − 1)B; its post-shift share
        none = 1.0
        exp_t = 0.0
        for j in range(1, 10 * k + 50):
            t = (B - u) + L + (j - 1) * B
            shares = []
            for i in range(k):          # the window's batches, newest first
                jj = j - i
                if jj <= 0:
                    shares.append(0.0)
                elif jj == 1:
                    shares.append((B - u) / B)
                else:
                    shares.append(1.0)
            f = float(np.mean(shares))
            mean = (1 - f) * p_before + f * p_after
            se = monitor_se(mean, k * n_b)
            q = 0.5 * math.erfc(-(level - mean) / se / math.sqrt(2.0))   # Φ((level − mean)/SE)
            exp_t += none * q * t
            none *= 1 - q
            if none < 1e-9:
                break
        total += exp_t + none * t
    return total / offsets.size


# ---------------------------------------------------------------- the timeline

def _shift_positions(sc: Scenario) -> np.ndarray:
    sh, H = sc.data.shifts, sc.horizon
    if sh is None:
        return np.empty(0)
    if sh.at is not None:
        return np.array(sorted(a for a in sh.at if 0 <= a < H), dtype=float)
    n = expected_shifts(sh, H)
    return (np.arange(int(math.floor(n))) + 0.5) * sh.every


class _Accuracy:
    """Expected accuracy of a model (data ending at e, window W) at time t, shifts included.
    Scalar and table-driven: the timeline calls it a few times per batch."""

    def __init__(self, sc: Scenario):
        d = sc.data
        self.eps, self.W, self.L = d.label_noise, sc.model.training_window, d.label_delay
        from scenarios.drift import drift_spectrum
        wts, om = drift_spectrum(d.features, d.concept_half_life)
        est = theory.estimation_cos(window_examples(sc), d.features, d.label_noise)
        self.step = d.batch_interval / 8
        ages = np.arange(0.0, sc.horizon + 4 * self.W + 10 * d.batch_interval + d.label_delay
                         + train_job_s(sc, "periodic") + self.step, self.step)
        self.cos = (theory.window_model_cos(ages, self.W, wts, om) * est).tolist()
        self.n = len(self.cos)
        self.shifts = _shift_positions(sc).tolist()
        self.mag = d.shifts.magnitude if d.shifts is not None else 0.0
        self.cphi = math.cos(shift_angle_rad(self.mag))
        self.c0 = self.cos[0]

    def cos_at(self, e: float, t: float) -> float:
        x = max(0.0, (t - e) / self.step)
        i = min(int(x), self.n - 2)
        fr = min(x - i, 1.0)
        c = self.cos[i] * (1 - fr) + self.cos[i + 1] * fr
        if self.shifts:
            from bisect import bisect_right
            s = self.shifts
            after, upto_e = bisect_right(s, t), bisect_right(s, e)
            c *= self.cphi ** (after - upto_e)                 # shifts in (e, t]
            if upto_e > 0 and s[upto_e - 1] > e - self.W:
                # the window straddles its latest shift: the mean-concept blend (scenarios.shifts)
                c *= float(blend_cos((e - s[upto_e - 1]) / self.W, self.mag))
        return c

    def at(self, e: float, t: float) -> float:
        return _acc(self.cos_at(e, t), self.eps)


def _acc(cos: float, eps: float) -> float:
    """theory.accuracy_from_cos for one value, without numpy's overhead."""
    th = math.acos(max(-1.0, min(1.0, cos)))
    return (1 - eps) * (1 - th / math.pi) + eps * th / math.pi


def timeline(sc: Scenario, policy: str, *, every_s: float | None = None, level: float | None = None,
             min_interval_s: float = 0.0, record: bool = False) -> dict:
    """Run one policy on the fluid timeline. policy: static | scheduled (every_s) | continuous |
    triggered (alert below `level`, at most every min_interval_s). Returns mean served accuracy,
    retrains, alerts (and, with record, the per-step series). Served accuracy is integrated
    by the midpoint rule on each stretch between deployments."""
    H, B, L = sc.horizon, sc.data.batch_interval, sc.data.label_delay
    acc = _Accuracy(sc)
    job = train_job_s(sc, "continuous" if policy == "continuous" else "periodic")
    job0 = train_job_s(sc, "periodic")
    live_end = -job0 - L
    k = batches_per_window(sc) if sc.monitoring is not None else 1
    monitored = sc.monitoring is not None
    win: list[float] = []
    pending: list[tuple[float, float]] = []      # (deploy time, data end), in time order
    busy_until = -math.inf
    last_start = -math.inf
    next_sched = every_s if every_s else math.inf
    retrains = alerts = 0
    armed = True
    served = 0.0
    steps = int(math.ceil(H / B))
    series = []
    for j in range(steps):
        t0, t1 = j * B, min(H, (j + 1) * B)
        seg = t0
        while pending and pending[0][0] < t1:
            dep_t, dep_end = pending.pop(0)
            if dep_t > seg:
                served += acc.at(live_end, (seg + dep_t) / 2) * (dep_t - seg)
            live_end, seg = dep_end, max(seg, dep_t)
            if policy != "continuous":
                win, armed = [], True       # the monitor restarts its window for a new model
        if t1 > seg:
            served += acc.at(live_end, (seg + t1) / 2) * (t1 - seg)
        t = t1                                     # a batch arrives at the end of the step
        if t >= H:
            break
        est = None
        if monitored:
            # the monitor scores the live model on the batch just arrived (requests ~ t − L − B/2)
            win.append(acc.at(live_end, t - L - B / 2))
            if len(win) > k:
                win.pop(0)
            if len(win) == k:
                est = sum(win) / k
        fire_alert = False
        if est is not None and level is not None:
            if est < level:
                if armed:
                    alerts += 1
                    armed = False
                fire_alert = True
            else:
                armed = True
        start = False
        if policy == "continuous":
            start = True
        elif policy == "scheduled" and t >= next_sched - 1e-9:
            while next_sched <= t + 1e-9:
                next_sched += every_s
            start = True
        elif policy == "triggered" and fire_alert and t >= busy_until and t - last_start >= min_interval_s - 1e-9:
            start = True
        if start:
            last_start = t
            busy_until = t + job
            if t + job < H:
                retrains += 1
                pending.append((t + job, t - L))
        if record:
            series.append((t, est, acc.at(live_end, t)))
    fresh = _acc(acc.c0, acc.eps)
    mean_acc = served / H
    out = {"served_accuracy": mean_acc, "fresh_accuracy": fresh, "accuracy_loss": fresh - mean_acc,
           "retrains": retrains, "alerts": alerts}
    if record:
        out["series"] = series
    return out


def _usd(sc: Scenario, retrains: float, continuous: bool = False) -> float:
    job = train_job_s(sc, "continuous" if continuous else "periodic")
    return retrains * job * sc.model.trainers * sc.costs.vcpu_hour / 3600.0


@dataclass(frozen=True)
class DynamicChoice:
    """The course's name for the dynamic architecture, why, and the options compared."""
    name: str | None                  # scheduled | triggered | continuous | None (static suffices)
    why: str
    options: dict = field(default_factory=dict)    # name -> PolicyResult.to_json()

    def to_json(self) -> dict:
        return {"name": self.name, "why": self.why, "options": self.options}


def _best_schedule(sc: Scenario) -> PolicyResult | None:
    """The longest schedule (a multiple of the batch interval) within the budget, by bisection."""
    B, budget = sc.data.batch_interval, sc.slo.max_accuracy_loss
    lo_m = max(1, math.ceil(train_job_s(sc, "periodic") / B - 1e-9))
    hi_m = max(lo_m, int(sc.horizon // B))
    f = lambda m: timeline(sc, "scheduled", every_s=m * B)  # noqa: E731
    first = f(lo_m)
    if first["accuracy_loss"] > budget:
        return None
    lo, hi = lo_m, hi_m
    if f(hi)["accuracy_loss"] <= budget:
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if f(mid)["accuracy_loss"] <= budget:
            lo = mid
        else:
            hi = mid
    r = f(lo)
    return PolicyResult("scheduled", r["accuracy_loss"], r["retrains"], _usd(sc, r["retrains"]), retrain_every_s=lo * B)


def best_trigger(sc: Scenario, min_interval_s: float | None = None) -> PolicyResult | None:
    """The lowest alert level (fewest retrains) whose triggered policy keeps the loss within
    the budget, from a grid of levels below the fresh accuracy; None if none does."""
    if sc.monitoring is None:
        return None
    budget = sc.slo.max_accuracy_loss
    fresh = timeline(sc, "static")["fresh_accuracy"]
    mi = min_interval_s if min_interval_s is not None else (
        sc.architecture.trigger.min_interval if sc.architecture.trigger is not None else sc.monitoring.window)
    best = None
    for drop in np.arange(0.0025, 0.2, 0.0025):
        level = fresh - drop
        r = timeline(sc, "triggered", level=level, min_interval_s=mi)
        if r["accuracy_loss"] > budget:
            break
        best = (level, r)
    if best is None:
        return None
    level, r = best
    p_steady = fresh - 0.5 * (fresh - level)     # a model between fresh and the level, on average
    fa = false_alarms_per_day(sc, p_steady, level)
    return PolicyResult("triggered", r["accuracy_loss"], r["retrains"], _usd(sc, r["retrains"]),
                        alert_below=float(level), min_interval_s=mi, false_alarms_per_day=fa, alerts=r["alerts"],
                        detection_delay_s=_shift_delay(sc, fresh, level))


def _shift_delay(sc: Scenario, fresh: float, level: float) -> float | None:
    if sc.data.shifts is None:
        return None
    eps = sc.data.label_noise
    # θ of a model of accuracy `fresh` (inverting accuracy_from_cos), then one shift on top
    theta0 = math.pi * (1 - eps - fresh) / (1 - 2 * eps)
    cos1 = math.cos(theta0) * math.cos(shift_angle_rad(sc.data.shifts.magnitude))
    after = float(theory.accuracy_from_cos(cos1, eps))
    return float(detection_delay_s(sc, fresh, after, level))


def scenario_level(sc: Scenario) -> float | None:
    """The monitor's alert level: alert_below, or (alert_drop) the fresh accuracy less the drop."""
    mo = sc.monitoring
    if mo is None:
        return None
    if mo.alert_below is not None:
        return mo.alert_below
    return timeline(sc, "static")["fresh_accuracy"] - mo.alert_drop


def min_interval_of(sc: Scenario) -> float:
    """The trigger's min_interval (pinned), else one monitor window (a retrained model needs one
    full window of labels before the monitor can judge it)."""
    tr = sc.architecture.trigger
    if tr is not None:
        return tr.min_interval
    return sc.monitoring.window if sc.monitoring is not None else 0.0


def triggered_option(sc: Scenario) -> PolicyResult | None:
    """The triggered policy as the scenario's monitor would run it (its own alert level)."""
    level = scenario_level(sc)
    if level is None:
        return None
    mi = min_interval_of(sc)
    r = timeline(sc, "triggered", level=level, min_interval_s=mi)
    fresh = r["fresh_accuracy"]
    p_steady = fresh - 0.5 * max(fresh - level, 0.0)
    return PolicyResult("triggered", r["accuracy_loss"], r["retrains"], _usd(sc, r["retrains"]),
                        alert_below=float(level), min_interval_s=mi,
                        false_alarms_per_day=false_alarms_per_day(sc, p_steady, level) if level < fresh else None,
                        detection_delay_s=_shift_delay(sc, fresh, level), alerts=r["alerts"])


def choose_dynamic(sc: Scenario) -> DynamicChoice:
    """Scheduled vs triggered vs continuous under the scenario's drift and shifts: the one that
    meets the budget with the fewest retrains (continuous only when nothing slower does)."""
    budget = sc.slo.max_accuracy_loss
    opts: dict = {}
    static = timeline(sc, "static")
    opts["static"] = PolicyResult("static", static["accuracy_loss"], 0, 0.0).to_json()
    sched = _best_schedule(sc)
    if sched is not None:
        opts["scheduled"] = sched.to_json()
    trig = triggered_option(sc)
    if trig is not None:
        opts["triggered"] = trig.to_json()
        low = best_trigger(sc, trig.min_interval_s)
        if low is not None:
            opts["triggered_lowest_level"] = low.to_json()
    c = timeline(sc, "continuous")
    cont = PolicyResult("continuous", c["accuracy_loss"], c["retrains"], _usd(sc, c["retrains"], True),
                        retrain_every_s=sc.data.batch_interval)
    opts["continuous"] = cont.to_json()
    if static["accuracy_loss"] <= budget:
        return DynamicChoice(None, f"a static model loses {static['accuracy_loss']:.2%}, within the "
                                   f"{budget:.2%} budget", opts)
    within = [o for o in (sched, trig) if o is not None and o.accuracy_loss <= budget]
    if not within:
        if cont.accuracy_loss <= budget:
            return DynamicChoice("continuous", f"only updating on every batch keeps the loss "
                                               f"({cont.accuracy_loss:.2%}) within the {budget:.2%} budget", opts)
        return DynamicChoice("continuous", f"no policy meets the {budget:.2%} budget; continuous updates "
                                           f"come closest ({cont.accuracy_loss:.2%})", opts)
    best = min(within, key=lambda o: (o.retrains, o.accuracy_loss))
    if best.name == "triggered":
        why = (f"retraining when the live model's accuracy (monitored over "
               f"{sc.monitoring.window / 3600:g} h of labels) falls below {best.alert_below:.1%} keeps the "
               f"loss at {best.accuracy_loss:.2%} with {best.retrains:.0f} retrains over the lifetime")
        if sched is not None:
            why += (f", fewer than the {sched.retrains:.0f} of the best schedule (every "
                    f"{sched.retrain_every_s / 3600:g} h, loss {sched.accuracy_loss:.2%})")
        if sc.data.shifts is not None:
            why += ": sudden shifts are caught when they happen instead of at the next scheduled run"
        if best.false_alarms_per_day is not None:
            why += f"; the monitor implies {best.false_alarms_per_day:.2g} false alerts per day"
        if best.detection_delay_s is not None:
            why += f" and detects a shift after {best.detection_delay_s / 3600:.2g} h on average"
        low = opts.get("triggered_lowest_level")
        if low is not None and low["alert_below"] < best.alert_below - 1e-9:
            why += (f"; the lowest level within the budget is {low['alert_below']:.1%} "
                    f"({low['retrains']:.0f} retrains, loss {low['accuracy_loss']:.2%})")
    else:
        why = (f"retraining every {best.retrain_every_s / 3600:g} h keeps the loss at "
               f"{best.accuracy_loss:.2%} with {best.retrains:.0f} retrains")
        if trig is not None:
            why += (f", no more than a trigger on alerts needs ({trig.retrains:.0f} retrains, loss "
                    f"{trig.accuracy_loss:.2%})")
        else:
            why += "; add a `monitoring:` block to compare a triggered policy"
    return DynamicChoice(best.name, why, opts)


COURSE_NAMES = {"periodic": "scheduled", "continuous": "continuous", "triggered": "triggered"}


def trigger_fields(sc: Scenario) -> dict:
    """Design fields of the scenario's trigger (pinned), or the advisor's: on alert."""
    tr = sc.architecture.trigger
    if tr is not None:
        return {"trigger_on": tr.kind, "trigger_examples": float(tr.new_examples) if tr.new_examples else None,
                "trigger_min_interval_s": tr.min_interval}
    return {"trigger_on": "alert", "trigger_examples": None, "trigger_min_interval_s": min_interval_of(sc)}


def predict_with_shifts(sc: Scenario, d: Design, smooth_prediction, life_s: float):
    """The schedule-based prediction (of the periodic equivalent of a triggered design) with
    accuracy and retraining cost replaced by the fluid timeline's, which sees shifts and
    triggers. Table rows are taken to be as fresh as the model (not modelled under shifts)."""
    import dataclasses
    from scenarios.accounting import MONTH_S
    if d.training == "static":
        r = timeline(sc, "static")
    elif d.training == "continuous":
        r = timeline(sc, "continuous")
    elif d.training == "periodic":
        r = timeline(sc, "scheduled", every_s=d.retrain_every_s)
    elif d.trigger_on == "alert":
        r = timeline(sc, "triggered", level=scenario_level(sc), min_interval_s=d.trigger_min_interval_s)
    else:
        r = timeline(sc, "scheduled", every_s=as_periodic(sc, d).retrain_every_s) \
            if d.trigger_on == "new_examples" else timeline(sc, "static")
    p = smooth_prediction
    train = _usd(sc, r["retrains"], d.training == "continuous") * MONTH_S / sc.horizon
    rec = dict(p.recurring_usd_per_month, retraining=train)
    rec["total"] = rec["serving"] + rec["retraining"] + rec["table_refreshes"] + rec["storage"]
    months = life_s / MONTH_S
    # the loss as the timeline gives it (never clamped: a negative one is noted), and its spread
    # across worlds and the quantile at slo.accuracy_confidence recomputed for that loss
    from .accuracy import loss_distribution, negative_loss_note
    loss = r["accuracy_loss"]
    dist = loss_distribution(sc, loss)
    notes = tuple(n for n in p.notes if not n.startswith("predicted accuracy loss is negative"))
    note = negative_loss_note(loss, sc)
    return dataclasses.replace(
        p, accuracy_loss=loss, served_accuracy=r["served_accuracy"],
        fresh_accuracy=r["fresh_accuracy"], training_usd_per_month=train,
        compute_usd_per_month=p.serving_usd_per_month + train + p.batch_prediction_usd_per_month,
        cost_usd_per_month=rec["total"], recurring_usd_per_month=rec,
        total_usd_over_horizon=p.one_off_usd["total"] + rec["total"] * months,
        accuracy_loss_sd=dist["sd"], accuracy_loss_band90=tuple(dist["band90"]),
        accuracy_loss_at_confidence=dist["at_confidence"],
        accuracy_budget_met_at_confidence=dist["at_confidence"] <= sc.slo.max_accuracy_loss * (1 + 1e-9),
        notes=notes + ((note,) if note else ()))


def as_periodic(sc: Scenario, d: Design) -> Design:
    """A periodic design with the same number of retrains as a triggered one (for the
    schedule-based latency, age and cost formulas)."""
    if d.trigger_on == "new_examples":
        every = max(sc.data.batch_interval,
                    math.ceil(d.trigger_examples / (sc.data.velocity * sc.data.batch_interval) - 1e-9)
                    * sc.data.batch_interval)
    elif d.trigger_on == "alert" and sc.monitoring is not None:
        level = sc.monitoring.alert_below
        if level is None:
            level = timeline(sc, "static")["fresh_accuracy"] - sc.monitoring.alert_drop
        r = timeline(sc, "triggered", level=level, min_interval_s=d.trigger_min_interval_s)
        every = sc.horizon / max(r["retrains"] + 1, 1)
    else:
        every = sc.horizon
    every = max(sc.data.batch_interval, every)
    return Design("periodic", every, d.serving, d.cache_top_k, d.replicas, autoscale=d.autoscale)


def revise_training(sc: Scenario, tr):
    """The training advice revised for sudden shifts and monitoring: the course's name for the
    dynamic architecture (scheduled / triggered / continuous) and why, with the options
    compared on the timeline. Without shifts a scheduled or continuous choice keeps the
    schedule analysis of advisor.training (exact for smooth drift); triggered replaces it when
    it needs fewer retrains."""
    import dataclasses
    from scenarios.units import format_duration
    choice = choose_dynamic(sc)
    opts = dict(tr.options, dynamic_architecture=choice.to_json())
    budget = sc.slo.max_accuracy_loss
    o = choice.options
    if sc.data.shifts is None and choice.name != "triggered":
        name = COURSE_NAMES.get(tr.mode)
        extra = []
        if name:
            mine = timeline(sc, "continuous" if tr.mode == "continuous" else "scheduled",
                            every_s=tr.retrain_every_s)
            line = f"Course architecture: {name}, with {mine['retrains']} retrains over the lifetime"
            t = o.get("triggered")
            if t is not None:
                line += (f"; a trigger on the monitor's alerts (below {t['alert_below']:.1%}) would need "
                         f"{t['retrains']:.0f} (loss {t['accuracy_loss']:.2%})")
            extra.append(line + ".")
        return dataclasses.replace(tr, options=opts, reasons=list(tr.reasons) + extra)
    if choice.name is None:
        decision, mode, every, loss = "static", "static", None, o["static"]["accuracy_loss"]
    else:
        decision = "dynamic"
        mode = {"scheduled": "periodic", "triggered": "triggered", "continuous": "continuous"}[choice.name]
        every = o["scheduled"]["retrain_every_s"] if choice.name == "scheduled" else None
        loss = o[choice.name]["accuracy_loss"]
    met = loss <= budget
    reasons = [tr.reasons[0]] if tr.reasons else []
    sh = sc.data.shifts
    if sh is not None:
        when = (f"about every {format_duration(sh.every)} (Poisson)" if sh.every is not None
                else f"at {len(sh.at)} listed times")
        reasons.append(f"Sudden shifts {when} each destroy {sh.magnitude:.0%} of a fresh model's edge over "
                       f"chance; a static model would lose {o['static']['accuracy_loss']:.2%} "
                       f"(budget {budget:.2%}).")
    name = choice.name or "static"
    reasons.append(f"Course architecture: {name} — {choice.why}.")
    static_loss = o["static"]["accuracy_loss"]
    scores = {"static": 10.0 if static_loss <= budget else round(5.0 * budget / max(static_loss, 1e-12), 2),
              "dynamic": (8.5 if met else round(5.0 * budget / max(loss, 1e-12), 2)) if decision == "dynamic"
              else tr.scores.get("dynamic", 0.0)}
    return dataclasses.replace(tr, decision=decision, mode=mode, retrain_every_s=every, scores=scores,
                               reasons=reasons, budget_met=met, options=opts, feasible=met,
                               binding=None if met else tr.binding, remedies=[] if met else tr.remedies)
