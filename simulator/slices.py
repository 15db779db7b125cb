"""Sampling a long lifetime: requests are simulated in short time slices, one at a uniformly
random position in each of n equal strata of [0, horizon), wrapping around inside its
stratum. Every instant then has the same probability, L / (H/n), of being recorded, so
request-weighted figures (means, shares, quantiles) estimated from the recorded requests are
unbiased for the whole lifetime whatever the daily cycle or retraining sawtooth. The control
plane (data batches, training, deployments, table refreshes) always runs the whole horizon.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_REQUEST_BUDGET = 2e7
SLICE_S = 1800.0          # preferred slice length (30 min: a few hundred queue relaxation times)
MIN_SLICES = 20           # fewer slices would sample the day and the retraining cycle too coarsely
MIN_SLICE_S = 60.0
WARMUP_SHARE = 0.2        # each piece starts with an unrecorded warm-up of this share of a slice


@dataclass(frozen=True)
class SlicePlan:
    """Where requests are recorded: `pieces` (warm_start, start, end); `slices` and `slice_s`
    as planned; `recorded_s` the total recorded span."""
    slices: int
    slice_s: float
    warmup_s: float
    pieces: list

    @property
    def recorded_s(self) -> float:
        return sum(e - s for _, s, e in self.pieces)


def plan_slices(horizon_s: float, expected_requests: float, budget: float,
                rng: np.random.Generator) -> SlicePlan | None:
    """A slice plan whose expected recorded requests fit `budget`, or None when the whole
    horizon fits (then every request is simulated)."""
    if expected_requests <= budget:
        return None
    rate = expected_requests / horizon_s
    slice_s = SLICE_S
    n = int(budget // (rate * slice_s))
    if n < MIN_SLICES:
        n = MIN_SLICES
        slice_s = max(MIN_SLICE_S, budget / (rate * n))
    n = max(1, min(n, int(horizon_s // (2 * slice_s))))
    stratum = horizon_s / n
    warm = WARMUP_SHARE * slice_s
    pieces = []
    for k in range(n):
        a = k * stratum
        s = a + rng.uniform(0.0, stratum)
        e = s + slice_s
        if e <= a + stratum:
            pieces.append((max(a, s - warm), s, e))
        else:   # wrap inside the stratum: two pieces, each with its own warm-up
            pieces.append((max(a, s - warm), s, a + stratum))
            pieces.append((max(0.0, a - warm), a, a + (e - (a + stratum))))
    pieces.sort()
    # a warm-up never reaches back into the previous recorded piece: where they would
    # overlap, the queue simply carries on from it (time is contiguous there)
    merged, prev_end = [], 0.0
    for w, s, e in pieces:
        merged.append((min(max(w, prev_end), s), s, e))
        prev_end = e
    return SlicePlan(n, slice_s, warm, merged)


def describe(plan: SlicePlan | None, horizon_s: float) -> str:
    """'90d lifetime, 40 slices of 30m' (or 'contiguous')."""
    from scenarios.units import format_duration
    if plan is None:
        return f"{format_duration(horizon_s)} contiguous"
    return (f"{format_duration(horizon_s)} lifetime, {plan.slices} slices of "
            f"{format_duration(plan.slice_s)} ({plan.recorded_s / horizon_s:.2%} of the time)")
