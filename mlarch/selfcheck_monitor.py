"""selfcheck rows for monitoring the live model (issue 17): the monitor's false-alarm rate on a
shift-free world and its detection delay after a sudden shift, simulated, against
advisor.triggered's closed forms.

- False alarms: a frozen model in a world without drift or shifts has a steady accuracy p;
  the monitor's window estimate over n labels is binomial, and a false alert is a crossing
  below the level (advisor.triggered.false_alarm_per_check: Φ(z) − Φ₂(z, z; (k − 1)/k)).
  p is the simulated model's own expected accuracy (the simulator knows its angle to the
  concept), so the check tests the monitor's statistics, not the fitted model. Interval:
  alerts are rare, well-separated crossings, so their count is Poisson (95%: ±1.96√count);
  tolerance z·sd (selfcheck.z_tolerance) plus the rate's change over p ± 0.0002 (the model's bias, which the
  hyperplane lemma ignores).
- Detection delay: R runs, each with one shift at a uniformly random offset within a data
  batch, a frozen model, the level between the accuracies before and after; the advisor
  averages the delay over the offset (advisor.triggered.detection_delay_s). Interval: Student t
  on the R delays; tolerance z·se plus 1/16 of a batch (the advisor's offset grid).
"""
from __future__ import annotations

import math

import numpy as np

from advisor import triggered as trig
from scenarios.design import Design
from scenarios.shifts import shift_angle_rad

from .selfcheck import Check, _scenario, stat_check

B_S = 600.0                    # data batch every 10 minutes
WINDOW_S = 3600.0              # monitor window: 6 batches
VELOCITY = "12000/h"           # 2000 labels per batch, 12,000 per window (all materialised)
EPS = 0.1


def _world(name: str, horizon_s: float, level: float, **data) -> object:
    return _scenario(name, horizon=horizon_s, traffic=dict(rate=0.2),
                     data=dict(velocity=VELOCITY, concept_half_life="never", label_noise=EPS,
                               batch_interval=B_S, **data),
                     model=dict(training_window="1d"),
                     monitoring=dict(window=WINDOW_S, alert_below=level))


def _fresh(sc) -> float:
    return trig.timeline(sc, "static")["fresh_accuracy"]


def false_alarm_check(seed: int, quick: bool) -> Check:
    from simulator import simulate
    days = 4.0 if quick else 10.0
    probe = _world("monitor-false-alarms", days * 86400, 0.5)
    p0 = _fresh(probe)
    se = trig.monitor_se(p0, trig.monitor_labels(probe))
    level = p0 - 1.0 * se          # about one crossing per 30 checks: enough alerts to count
    sc = _world("monitor-false-alarms", days * 86400, level)
    m = simulate(sc, Design("static", None, "dynamic", None, 1), seed=seed).metrics["monitoring"]
    p = m["expected_accuracy_mean"]
    k = trig.batches_per_window(sc)
    n = trig.monitor_labels(sc)
    th = trig.false_alarm_per_check(p, level, n, k) * m["checks"]
    count = m["false_alerts"]
    # p is the frozen model's exact expected accuracy (constant without drift); the hyperplane
    # lemma ignores the model's small bias, worth under 0.0002 of accuracy at this many examples
    dp = 0.0002
    span = abs(trig.false_alarm_per_check(p - dp, level, n, k) - trig.false_alarm_per_check(p + dp, level, n, k))
    return stat_check("monitoring (shift-free world)", f"false alerts over {days:g} days (level p − 1 SE, "
                      f"window {k} batches)", th, count, math.sqrt(max(th, 1.0)), span / 2 * m["checks"],
                      "alerts", note="Φ(z) − Φ₂(z,z;(k−1)/k) per check; Poisson sd √(predicted count)")


def detection_delay_check(seed: int, quick: bool) -> Check:
    from simulator import simulate
    runs = 8 if quick else 16
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xDE1A]))
    mag, delay = 0.5, 3600.0
    probe = _world("monitor-delay", 12 * 3600, 0.5, label_delay=delay)
    p_before = _fresh(probe)
    theta0 = math.pi * (1 - EPS - p_before) / (1 - 2 * EPS)
    p_after = float(trig.theory.accuracy_from_cos(math.cos(theta0) * math.cos(shift_angle_rad(mag)), EPS))
    level = p_before - 0.25 * (p_before - p_after)
    sims = []
    for r in range(runs):
        s = 3 * 3600.0 + float(rng.uniform(0, B_S))
        sc = _world("monitor-delay", 12 * 3600, level, label_delay=delay,
                    shifts=dict(at=[s], magnitude=mag))
        m = simulate(sc, Design("static", None, "dynamic", None, 1), seed=seed + r).metrics["monitoring"]
        vals = m["detection_delay_s"]["values"]
        if vals:
            sims.append(vals[0])
    sc = _world("monitor-delay", 12 * 3600, level, label_delay=delay, shifts=dict(at=[3 * 3600.0], magnitude=mag))
    th = trig.detection_delay_s(sc, p_before, p_after, level)
    if len(sims) < 2:
        return Check("monitoring (one sudden shift)", "detection delay", th, math.nan, None, None, 0.0, "s")
    v = np.asarray(sims)
    mean = float(v.mean())
    return stat_check("monitoring (one sudden shift)", f"mean detection delay over {v.size} shifts "
                      f"(label delay 1h, window 1h, magnitude {mag:g})", th, mean,
                      float(v.std(ddof=1) / math.sqrt(v.size)), B_S / 16, "s",
                      "label delay + window fill to the level; Student t over runs", v.size - 1)


def checks(seed: int, quick: bool) -> list[Check]:
    """The monitor's rows; the full run adds served accuracy under shifts (about 30 s)."""
    out = [false_alarm_check(seed, quick), detection_delay_check(seed, quick)]
    if not quick:
        out += loss_under_shifts_checks(seed)
    return out


def loss_under_shifts_checks(seed: int) -> list[Check]:
    """Served accuracy under smooth drift plus two sudden shifts, scheduled and triggered, on the
    advisor's timeline vs the simulator. Served accuracy is compared (not lost_to_staleness:
    the simulator measures each served model against itself when fresh, so a model trained
    across a shift counts as fresh; the advisor's loss is against a clean fresh model).
    Interval: per-request Bernoulli (p(1 − p)/n); tolerance z·se plus 15% of the predicted
    loss (the timeline's approximations: window-mean blend, mean crossing without noise)."""
    from pathlib import Path
    from scenarios import load_scenario
    from advisor import predict
    from simulator import simulate
    ex = Path(__file__).resolve().parents[1] / "examples" / "monthly-shifts.yaml"
    out = []
    sc = load_scenario(str(ex), ["horizon=20d", "data.shifts={at: [5d, 12.3d], magnitude: 0.6}",
                                 "traffic.rate=0.5/s"])
    for label, d in (("scheduled every 24h", Design("periodic", 86400.0, "dynamic", None, 2)),
                     ("triggered on alert", Design("triggered", None, "dynamic", None, 2, trigger_on="alert",
                                                   trigger_min_interval_s=21600.0))):
        p = predict(sc, d)
        m = simulate(sc, d, seed=seed).metrics
        sim = m["accuracy"]["served_expected"]
        out.append(stat_check("accuracy under drift and shifts (20d, 2 shifts)", f"served accuracy, {label}",
                              p.served_accuracy, sim, math.sqrt(sim * (1 - sim) / m["requests"]),
                              0.15 * p.accuracy_loss,
                              note="advisor timeline vs simulator; 15% of the loss for its approximations"))
    return out
