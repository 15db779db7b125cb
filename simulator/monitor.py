"""Monitoring the live model (the course's *validation*, as opposed to the evaluation gate):
its accuracy is estimated from labels as they arrive (each validated data batch, which
arrives data.label_delay after its requests) over a sliding window of the last
⌊window / batch_interval⌋ batches, and an alert is raised when the estimate falls below a
level (`alert_below`) or by `alert_drop` below the estimate of the model's first full window.

- The window restarts when a new model is deployed (its estimate is the new model's only),
  except under continuous training, where the model changes every batch and one window
  slides over all of them.
- An alert is one crossing: it fires when the estimate goes below the level and re-arms
  when the estimate is back at or above it (or a new model is deployed).
- Each alert is judged against the truth the simulator knows: it is *false* when the live
  model's expected accuracy over the window (its angle to the true concept at each batch's
  time, by the hyperplane lemma (1 − ε)(1 − θ/π) + εθ/π) is at or above the level — the
  monitor's noise raised it — and *true* otherwise, with cause `shift` when the live model's
  training window began before the latest shift, else `drift`. A shift's detection delay is
  the time from the shift to the first alert after it (before the next shift).
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np


class Monitor:
    def __init__(self, window_s: float, batch_interval_s: float, alert_below: float | None,
                 alert_drop: float | None):
        self.k = max(1, int(math.floor(window_s / batch_interval_s + 1e-9)))
        self.window_s = window_s
        self.alert_below, self.alert_drop = alert_below, alert_drop
        self.win: deque = deque()
        self.armed = True
        self.baseline: float | None = None
        self.checks = 0
        self.below = 0
        self.labels = 0
        self.alerts: list[dict] = []
        self.estimate: float | None = None
        self.expected = math.nan
        self.expected_sum = 0.0

    def reset(self) -> None:
        """A new model is live: start its window afresh."""
        self.win.clear()
        self.armed = True
        self.baseline = None
        self.estimate = None

    def level(self) -> float | None:
        if self.alert_below is not None:
            return self.alert_below
        return None if self.baseline is None else self.baseline - self.alert_drop

    def observe(self, t_s: float, correct: int, n: int, expected: float = math.nan) -> bool:
        """One batch of labelled examples scored by the live model (and its expected accuracy
        on them, for judging alerts); True when an alert fires."""
        self.win.append((correct, n, expected))
        if len(self.win) > self.k:
            self.win.popleft()
        if len(self.win) < self.k:
            return False
        c = sum(w[0] for w in self.win)
        m = sum(w[1] for w in self.win)
        self.expected = sum(w[2] for w in self.win) / len(self.win)
        self.expected_sum += self.expected
        est = c / m if m else math.nan
        self.estimate = est
        self.checks += 1
        self.labels += m
        if self.alert_drop is not None and self.baseline is None:
            self.baseline = est      # the model's first full window sets its level
            return False
        lvl = self.level()
        if est < lvl:
            self.below += 1
            if self.armed:
                self.armed = False
                return True
        else:
            self.armed = True
        return False


def expected_accuracy(model, concept_w: np.ndarray, label_noise: float) -> float:
    """Expected accuracy of the model's direction against the concept w on x ~ N(0, I):
    (1 − ε)(1 − θ/π) + εθ/π (hyperplane lemma, Goemans & Williamson 1995; the model's small
    bias is ignored). Used only to judge alerts, never to make them."""
    w, _ = model.raw_weights()
    c = float(w @ concept_w) / max(float(np.linalg.norm(w) * np.linalg.norm(concept_w)), 1e-300)
    th = math.acos(max(-1.0, min(1.0, c)))
    return (1 - label_noise) * (1 - th / math.pi) + label_noise * th / math.pi


def score(model, x: np.ndarray, y: np.ndarray) -> int:
    """Correct predictions of the model on labelled rows."""
    return int(np.count_nonzero(model.predict(x) == y))


def summary(mon: Monitor, shift_times_s, horizon_s: float) -> dict:
    """The `monitoring` block of simulate --json."""
    alerts = mon.alerts
    true = [a for a in alerts if a["true"]]
    false = [a for a in alerts if not a["true"]]
    by_cause = {"shift": sum(1 for a in true if a["cause"] == "shift"),
                "drift": sum(1 for a in true if a["cause"] == "drift")}
    delays, missed = [], 0
    shifts = list(shift_times_s)
    for i, s in enumerate(shifts):
        nxt = shifts[i + 1] if i + 1 < len(shifts) else math.inf
        first = next((a["t_s"] for a in alerts if s <= a["t_s"] < nxt), None)
        if first is None:
            missed += 1
        else:
            delays.append(first - s)
    days = horizon_s / 86400.0
    return {"window_s": mon.window_s, "batches_per_window": mon.k,
            "alert_below": mon.alert_below, "alert_drop": mon.alert_drop,
            "checks": mon.checks, "checks_below_level": mon.below,
            "labels_per_check_mean": mon.labels / mon.checks if mon.checks else None,
            "expected_accuracy_mean": mon.expected_sum / mon.checks if mon.checks else None,
            "alerts": len(alerts), "true_alerts": len(true), "false_alerts": len(false),
            "true_alerts_by_cause": by_cause,
            "false_alerts_per_day": len(false) / days if days > 0 else None,
            "shifts": len(shifts), "shifts_detected": len(delays), "shifts_missed": missed,
            "detection_delay_s": {"mean": float(np.mean(delays)) if delays else None,
                                  "max": float(np.max(delays)) if delays else None,
                                  "values": [float(x) for x in delays]},
            "alert_times_s": [a["t_s"] for a in alerts]}
