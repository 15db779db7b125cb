"""Accuracy lost to staleness as a distribution across worlds (issue 11, part 2).

The expected loss (staleness.py) is the mean over worlds and requests. One world's measured
loss differs from it for two reasons:

- **key concentration**: a key's prediction is right or wrong for all of its requests, so
  the loss averages over about 1/Σ share_i² independent keys, not over requests. With p the
  share of requests whose stale and fresh predictions disagree (p = loss/(1 − 2ε): each
  disagreement costs 1 − 2ε of accuracy, label noise ε), the variance of a share-weighted mean
  of Bernoulli(p) keys is Σ share_i² · p(1 − p) (Kish 1965, *Survey Sampling*, design effect of
  unequal weights), so sd_keys = (1 − 2ε)·sqrt(Σ share_i² · p(1 − p));
- **per-request sampling** over the n requests of the horizon: sd_req = (1 − 2ε)·sqrt(p/n)
  (binomial count of disagreements, p ≪ 1).

They are independent and add in variance. The band is the normal interval (central limit
theorem over keys and requests); the budget is met at confidence γ (slo.accuracy_confidence)
when the γ-quantile, mean + z_γ·sd, is within slo.max_accuracy_loss.
"""
from __future__ import annotations

import math
from statistics import NormalDist

from scenarios.schema import Scenario

from . import theory

BAND = 0.90


def key_concentration(sc: Scenario) -> float:
    """Σ share_i² of the request popularity law (0 for an unbounded law with s ≤ 1)."""
    n, s = sc.traffic.cardinality, sc.traffic.zipf_s
    if n is None and s <= 1:
        return 0.0
    if n is None:
        from scipy import special
        return float(special.zeta(2 * s)) / float(special.zeta(s)) ** 2
    return theory.harmonic(n, 2 * s) / theory.harmonic(n, s) ** 2


def loss_sd(sc: Scenario, loss: float, requests: float | None = None) -> tuple[float, float]:
    """(sd from key concentration, sd from per-request sampling) of one world's measured loss
    around the expected `loss` (module text). requests: default rate × horizon."""
    eps = sc.data.label_noise
    p = min(0.5, max(loss, 0.0) / max(1 - 2 * eps, 1e-9))
    n = requests if requests is not None else sc.traffic.rate * sc.horizon
    keys = (1 - 2 * eps) * math.sqrt(key_concentration(sc) * p * (1 - p))
    req = (1 - 2 * eps) * math.sqrt(p / max(n, 1.0))
    return keys, req


def loss_distribution(sc: Scenario, loss: float, requests: float | None = None) -> dict:
    """Mean, sd, the 90% band and the quantile at slo.accuracy_confidence of the loss (over
    `requests` measured requests; default rate × horizon)."""
    k, r = loss_sd(sc, loss, requests)
    sd = math.hypot(k, r)
    z_band = NormalDist().inv_cdf(0.5 + BAND / 2)
    conf = sc.slo.accuracy_confidence
    return {"mean": loss, "sd": sd, "sd_keys": k, "sd_requests": r,
            "band90": [loss - z_band * sd, loss + z_band * sd],
            "confidence": conf, "at_confidence": loss + NormalDist().inv_cdf(conf) * sd}


def loss_at_confidence(sc: Scenario, loss: float) -> float:
    """The slo.accuracy_confidence quantile of the loss: what the budget is compared with."""
    k, r = loss_sd(sc, loss)
    return loss + NormalDist().inv_cdf(sc.slo.accuracy_confidence) * math.hypot(k, r)


def negative_loss_note(loss: float, sc: Scenario) -> str | None:
    """A negative expected loss is reported, never clamped: it means the serving models are
    more accurate than a freshly trained one (a window of many half-lives)."""
    if loss >= 0:
        return None
    hl = sc.data.concept_half_life
    spans = sc.model.training_window / hl if hl and math.isfinite(hl) else 0.0
    return (f"predicted accuracy loss is negative ({loss:.2%}): a model fresh from a training window of "
            f"{spans:.1f} concept half-lives is less accurate than the older models serving; "
            f"shorten model.training_window")
